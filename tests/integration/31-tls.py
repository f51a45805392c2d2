#!/usr/bin/python3
"""31: TLS listeners, configured with mosquitto's keys inside the listener
block (certfile, keyfile, cafile, require_certificate,
use_identity_as_username, tls_version, ciphers). Real peers over TLS
(mosquitto_pub/mosquitto_sub --cafile, openssl s_client, paho, Python's ssl
with our own packets) connect and exchange messages; ALPN "mqtt" and no ALPN
both work. TLS 1.0/1.1 and weak TLS 1.2 suites (no forward secrecy, no AEAD)
are refused; `tls_version tlsv1.3' and `ciphers' narrow what is offered.
Plain MQTT and junk on a TLS port are closed without an MQTT answer, and a
client that does not finish TLS plus CONNECT within connect_timeout is
closed. With require_certificate, clients without a certificate, with one
from another CA or with an expired one are refused in the handshake, and
use_identity_as_username lets alice in by her certificate's CN.

crlfile (a CRL made with `openssl ca -revoke' and `-gencrl') refuses
mallory, whose certificate from the good CA it revokes, over TLS 1.3 and
1.2 and to mosquitto_pub, while alice still gets in; capath (a directory
holding only the good CA as HASH.0, no cafile) verifies like cafile: alice
and mallory (no CRL there) get in, the foreign CA's certificate and no
certificate do not. use_subject_as_username takes the subject DN as the
username, so a certificate without a CN (O=NoCN) gets in too, while
use_identity_as_username refuses it with CONNACK 5 / 0x87 even when the
CONNECT names alice. A keyfile that is not the certfile's key (another EC
key, an RSA key) stops the start with exit status 1 and FILE:LINE naming
the certfile's line.

Every refusal that openssl s_client is asked to see is first shown possible
with a reference `openssl s_server' that allows it: where this openssl cannot
even offer it (a build without TLS 1.0, say), that check is skipped with a
log line instead of passing for nothing. The RSA-key-exchange suites the
spec names (AES128-SHA, AES256-GCM-SHA384) exist only with an RSA
certificate, so those run against a listener with an RSA one."""
import random
import ssl
import threading
import harness
from harness import *

CONNECT_TIMEOUT_S = 2
# Waits for what must happen, bounded only against a hung broker.
WAIT = 5.0 + 2 * SLACK_S
T12 = ssl.TLSVersion.TLSv1_2
T13 = ssl.TLSVersion.TLSv1_3


def tls_broker(what, listener_conf, **conf):
    """A broker whose one listener has listener_conf; a start-up failure is
    a failed check that quotes the broker's own complaint."""
    conf.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    b = Broker(listener_conf=listener_conf, **conf)
    why = None
    try:
        b.start()
    except Fail as e:
        b.expect_clean_exit = False  # reported here
        said = [l for l in b.log_text().splitlines() if l.strip()][-4:]
        why = "%s; broker log: %s" % (e, " | ".join(said) or "(empty)")
    check(why is None, "broker starts with a TLS listener (%s: %s)" %
          (what, ", ".join("%s %s" % (k, os.path.basename(str(v)))
                           for k, v in listener_conf.items())), why)
    if why is not None:
        raise Fail("no TLS listener (%s), nothing more to test" % what)
    return b


def mqtt_over_tls(b, client_id, username=None, password=None, version=4, **tls):
    """TLS handshake then CONNECT. Returns (outcome, detail, conn):
    ("handshake", error) when the handshake failed; ("closed", reason) when
    the connection ended before a CONNACK; ("connack", rc, conn);
    ("timeout", what) when the broker said nothing (not a refusal);
    ("other", packet)."""
    try:
        r = TlsRaw(b, version=version, timeout=WAIT, **tls)
    except TimeoutError:
        return "timeout", "no TLS handshake within %.1f s" % WAIT, None
    except ConnectionRefusedError as e:
        return "no listener", repr(e), None
    except (ssl.SSLError, OSError) as e:
        return "handshake", repr(e), None
    r.send(connect_pkt(client_id, version=version, username=username, password=password))
    try:
        p = r.recv(WAIT)
    except Closed:
        return "closed", r.eof_reason, None
    except TimeoutError:
        r.close()
        return ("timeout", "no answer to CONNECT within %.1f s (TLS %s)" % (WAIT, r.tls_version),
                None)
    if p.type == 2:
        return "connack", p.rc, r
    r.close()
    return "other", repr(p), None


def refused(outcome):
    return outcome[0] in ("handshake", "closed")


def accepted(outcome):
    return outcome[0] == "connack" and outcome[1] == 0


_SAID = {"handshake": "TLS handshake failed", "closed": "connection closed before CONNACK",
         "connack": "CONNACK rc", "timeout": "no answer", "no listener": "TCP connect refused",
         "other": "not a CONNACK"}


def show(outcome):
    return "%s: %s" % (_SAID.get(outcome[0], outcome[0]), outcome[1])


def done(outcome):
    if outcome[2] is not None:
        outcome[2].close()


def read_until_eof(sock, timeout):
    """Bytes a plain socket receives until EOF: (bytes, closed, seconds)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    got = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(got), False, time.monotonic() - t0
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            return bytes(got), True, time.monotonic() - t0
        got += d


class Reference:
    """openssl s_server allowing everything (TLS 1.0 up, every suite, an
    ECDSA and an RSA certificate): what s_client can negotiate with it, it
    can offer; a broker refusing it then refuses for a reason."""

    def __init__(self, pki):
        self.port = free_port()
        argv = ["openssl", "s_server", "-accept", "%s:%d" % (HOST, self.port), "-www",
                "-cert", pki.server_cert, "-key", pki.server_key,
                "-dcert", pki.server_rsa_cert, "-dkey", pki.server_rsa_key,
                "-cipher", "ALL@SECLEVEL=0", "-min_protocol", "TLSv1"]
        log("# reference server: " + " ".join(argv))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        harness._procs.append(self.proc)

        def up():
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        self.ok = wait_until(up, 5.0, 0.05) and self.proc.poll() is None
        if not self.ok:
            log("# reference openssl s_server did not start: refusal checks are skipped")
        self.cache = {}

    def allows(self, args):
        if not self.ok:
            return False
        key = tuple(args)
        if key not in self.cache:
            rc, out = s_client(self.port, *args)
            self.cache[key] = rc == 0 and s_client_handshake(out) is not None
        return self.cache[key]


def s_client_ok(port, args, ca, want_proto, what):
    rc, out = s_client(port, "-CAfile", ca, "-verify_return_error", *args)
    proto = s_client_handshake(out)
    ok = rc == 0 and proto == want_proto and "Verify return code: 0 (ok)" in out
    check(ok, what, None if ok else "exit %s, protocol %s: %s" %
          (rc, proto, s_client_summary(out)))
    return out


def s_client_refused(b, ref, args, ca, what):
    """s_client with args must fail its handshake with b, having reached it
    over TCP; skipped (logged) when the reference server cannot do it either."""
    if not ref.allows(list(args)):
        log("# SKIP part: this openssl s_client cannot negotiate %s even with a server "
            "that allows it, so the broker refusing it would prove nothing" % " ".join(args))
        return
    rc, out = s_client(b.port, "-CAfile", ca, *args)
    proto = s_client_handshake(out)
    ok = rc not in (0, None) and proto is None and "CONNECTED(" in out
    check(ok, what, None if ok else "exit %s, negotiated %s: %s" %
          (rc, proto, s_client_summary(out)))


def pubsub_raw(b, pki, tag, **tls):
    """Two TLS raw clients: a QoS 1 publish of 100 kB (many TLS records)
    reaches the subscriber intact."""
    sub = TlsRaw(b, timeout=WAIT, ca=pki.ca, **tls)
    sub.connect("it31-%s-sub" % tag)
    codes = sub.subscribe("it31/%s/#" % tag)
    check_eq(codes, [1], "%s: SUBACK over TLS grants QoS 1" % tag)
    pub = TlsRaw(b, timeout=WAIT, ca=pki.ca, **tls)
    pub.connect("it31-%s-pub" % tag)
    payload = bytes(random.Random(31).randrange(256) for _ in range(100000))
    pub.publish("it31/%s/big" % tag, payload, qos=1)
    p = sub.recv_publish(WAIT)
    check(p.topic == "it31/%s/big" % tag and p.payload == payload,
          "%s: a 100 kB QoS 1 message crosses TLS intact (PUBACK to the publisher)" % tag,
          "%r, %d bytes" % (p.topic, len(p.payload)))
    pub.close()
    sub.close()


def paho_pubsub(b, tag, version, tls):
    sub = Client(b, "it31-%s-sub-v%d" % (tag, version), version=version, tls=tls)
    pub = Client(b, "it31-%s-pub-v%d" % (tag, version), version=version, tls=tls)
    try:
        for c in (sub, pub):
            try:
                c.connect(WAIT)
            except (ssl.SSLError, OSError) as e:
                raise Fail("paho %s v%d: TLS connect failed: %r" % (tag, version, e))
        sub.subscribe("it31/paho/%s/v%d" % (tag, version), 1, WAIT)
        pub.publish("it31/paho/%s/v%d" % (tag, version), b"over tls", qos=1, timeout=WAIT)
        m = sub.wait_messages(1, WAIT)[0]
        check(m.payload == b"over tls",
              "paho MQTT %s over TLS (%s): connect, subscribe, publish QoS 1, receive" %
              ({4: "3.1.1", 5: "5.0"}[version], tag), m)
    finally:
        sub.close()
        pub.close()


def timed_close(fn, results, key):
    """Runs fn() (which returns a plain socket or a Raw), then times the
    broker's close."""
    try:
        t0 = time.monotonic()
        conn = fn()
        if isinstance(conn, Raw):
            try:
                got = conn.wait_closed(CONNECT_TIMEOUT_S + SLACK_S + 1)
                results[key] = (time.monotonic() - t0, got)
            except Fail:
                results[key] = (float("inf"), "still open")
        else:
            data, closed, _ = read_until_eof(conn, CONNECT_TIMEOUT_S + SLACK_S + 1)
            results[key] = ((time.monotonic() - t0) if closed else float("inf"), data)
    except BaseException as e:
        results[key] = (float("inf"), "error: %r" % e)


def sys_counter_checks(pki):
    """$SYS/broker/tls/handshakes and tls/failures count what happened."""
    b = tls_broker("TLS counters", {"certfile": pki.server_cert, "keyfile": pki.server_key},
                   sys_interval=1)
    junk = Raw(b)
    junk.send(os.urandom(64))
    junk.wait_closed()
    # Half a ClientHello, then nothing: closed at connect_timeout, and an
    # abandoned handshake is a failure too.
    half = Raw(b)
    hello = client_hello(pki.ca)
    half.send(hello[:len(hello) // 2])
    half.wait_closed(CONNECT_TIMEOUT_S + SLACK_S + 1)
    watcher = TlsRaw(b, ca=pki.ca)
    watcher.connect("it31-sys")
    watcher.subscribe([("$SYS/broker/tls/#", 0)])
    seen = {}
    deadline = time.monotonic() + 3.0 + SLACK_S
    while time.monotonic() < deadline and not ("handshakes" in seen and "failures" in seen and
                                               seen["handshakes"] >= 1 and seen["failures"] >= 2):
        for p in read_publishes(watcher, 2, 1.5):
            seen[p.topic.split("/")[-1]] = int(p.payload)
    check(seen.get("handshakes", 0) >= 1, "$SYS/broker/tls/handshakes counts completed handshakes",
          seen)
    check(seen.get("failures", 0) >= 2,
          "$SYS/broker/tls/failures counts a connection that sent junk instead of a handshake "
          "and one that left its handshake half done until connect_timeout", seen)
    watcher.close()


def main():
    pki = make_pki(tempfile.mkdtemp(prefix="ringmq-it31-pki-"))
    ref = Reference(pki)

    # ---- an ECDSA certificate, default versions and suites
    b = tls_broker("ECDSA certificate, defaults",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key})
    o = mqtt_over_tls(b, "it31-first", ca=pki.ca)
    check(accepted(o), "Python ssl client: TLS handshake (broker certificate verified for "
          "127.0.0.1) and CONNECT over TLS get CONNACK 0", show(o))
    check_eq(getattr(o[2], "tls_version", None), "TLSv1.3",
             "a client offering TLS 1.2 and 1.3 gets TLS 1.3")
    done(o)
    o = mqtt_over_tls(b, "it31-tls12", ca=pki.ca, max_version=T12)
    check(accepted(o) and o[2].tls_version == "TLSv1.2",
          "Python ssl client limited to TLS 1.2: handshake and CONNACK 0", show(o))
    done(o)
    o = mqtt_over_tls(b, "it31-alpn", ca=pki.ca, alpn=["mqtt"])
    check(accepted(o) and o[2].alpn == "mqtt",
          "Python ssl client with ALPN mqtt: ALPN mqtt selected, CONNACK 0",
          "%s, alpn %r" % (show(o), getattr(o[2], "alpn", None)))
    done(o)
    o = mqtt_over_tls(b, "it31-v5", ca=pki.ca, version=5)
    check(accepted(o), "MQTT 5.0 CONNECT over TLS: CONNACK 0", show(o))
    done(o)
    pubsub_raw(b, pki, "raw13")
    pubsub_raw(b, pki, "raw12", max_version=T12)

    # mosquitto_sub / mosquitto_pub --cafile
    sub = MosqSub(b, "--cafile", pki.ca, "-i", "it31-mosq-sub", "-t", "it31/mosq", "-q", "1",
                  "-v", "-C", "1", "-W", str(int(WAIT) + 5))
    sub.wait_suback(WAIT)
    rc, out = mosq_pub(b, "--cafile", pki.ca, "-i", "it31-mosq-pub", "-t", "it31/mosq",
                       "-m", "hello over tls", "-q", "1")
    check_eq(rc, 0, "mosquitto_pub --cafile over TLS exits 0 (%s)" % out.strip())
    check_eq(sub.wait_exit(WAIT + 5), 0, "mosquitto_sub --cafile -C 1 exits 0 after one message")
    check_eq(sub.data_lines(), ["it31/mosq hello over tls"],
             "mosquitto_sub over TLS printed what mosquitto_pub published")
    rc, out = mosq_pub(b, "-i", "it31-mosq-plain", "-t", "it31/mosq", "-m", "x")
    check(rc != 0, "mosquitto_pub without TLS on the TLS port fails", out.strip())

    # openssl s_client: versions, ALPN
    if s_client_has("-tls1_2"):
        s_client_ok(b.port, ["-tls1_2"], pki.ca, "TLSv1.2",
                    "openssl s_client -tls1_2: handshake completes, certificate verifies")
    if s_client_has("-tls1_3"):
        s_client_ok(b.port, ["-tls1_3"], pki.ca, "TLSv1.3",
                    "openssl s_client -tls1_3: handshake completes, certificate verifies")
    out = s_client_ok(b.port, [], pki.ca, "TLSv1.3", "openssl s_client without ALPN: TLS 1.3")
    check("ALPN protocol:" not in out, "without ALPN none is negotiated",
          [l for l in out.splitlines() if "ALPN" in l])
    if s_client_has("-alpn"):
        out = s_client_ok(b.port, ["-alpn", "mqtt"], pki.ca, "TLSv1.3",
                          "openssl s_client -alpn mqtt: handshake completes")
        check("ALPN protocol: mqtt" in out, "s_client -alpn mqtt: 'ALPN protocol: mqtt'",
              [l for l in out.splitlines() if "ALPN" in l])
    for opt, name in (("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")):
        if not s_client_has(opt):
            log("# SKIP part: openssl s_client has no %s" % opt)
            continue
        s_client_refused(b, ref, [opt, "-cipher", "DEFAULT@SECLEVEL=0"], pki.ca,
                         "openssl s_client %s -cipher DEFAULT@SECLEVEL=0: %s refused, no "
                         "handshake" % (opt, name))
    # TLS 1.2 suites with the ECDSA certificate: ECDHE + AEAD only.
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                  "ECDHE-ECDSA-CHACHA20-POLY1305"):
        s_client_ok(b.port, ["-tls1_2", "-cipher", suite], pki.ca, "TLSv1.2",
                    "TLS 1.2 %s (ECDHE, AEAD) accepted" % suite)
    for suite in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
        s_client_refused(b, ref, ["-tls1_2", "-cipher", suite + "@SECLEVEL=0"], pki.ca,
                         "TLS 1.2 %s (CBC, no AEAD) refused" % suite)

    # Plain MQTT and junk on the TLS port; a TLS client meanwhile stays.
    keeper = TlsRaw(b, timeout=WAIT, ca=pki.ca)
    keeper.connect("it31-keeper")
    junk = {
        "a plain (unencrypted) MQTT CONNECT": connect_pkt("it31-plain"),
        "random bytes": bytes(random.Random(310).randrange(256) for _ in range(300)),
        "a TLS handshake record holding junk": b"\x16\x03\x01\x00\x40" + b"\xee" * 64,
    }
    for what, data in junk.items():
        s = socket.create_connection((HOST, b.port), timeout=WAIT)
        s.sendall(data)
        got, closed, dt = read_until_eof(s, CONNECT_TIMEOUT_S + SLACK_S + 1)
        s.close()
        check(closed and (got == b"" or got[:1] == b"\x15"),
              "%s on the TLS port: closed (after %.2f s) with no MQTT answer (nothing or a TLS "
              "alert)" % (what, dt), "closed %s, received %r" % (closed, got[:32]))
    keeper.send(pingreq_pkt())
    p = keeper.expect(13, WAIT, "TLS client connected before the junk: PINGRESP")
    check_eq(p.raw, b"\xd0\x00", "a TLS client connected before the junk still answers PINGREQ")
    keeper.close()

    # connect_timeout covers TLS handshake plus CONNECT.
    hello = client_hello(pki.ca)

    def silent():
        return socket.create_connection((HOST, b.port), timeout=WAIT)

    def half_hello():
        s = socket.create_connection((HOST, b.port), timeout=WAIT)
        s.sendall(hello[:len(hello) // 2])
        return s

    def tls_no_connect():
        return TlsRaw(b, timeout=WAIT, ca=pki.ca)

    results = {}
    ts = [threading.Thread(target=timed_close, args=(fn, results, fn.__name__))
          for fn in (silent, half_hello, tls_no_connect)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(CONNECT_TIMEOUT_S + SLACK_S + WAIT + 5)
    for key, what in (("silent", "a TCP connection that sends nothing"),
                      ("half_hello", "half a ClientHello"),
                      ("tls_no_connect", "a finished TLS handshake and no CONNECT")):
        dt, got = results.get(key, (float("inf"), "not measured"))
        # Nothing came, or a TLS alert: never an MQTT packet.
        quiet = got == [] or (isinstance(got, bytes) and got[:1] in (b"", b"\x15"))
        check(quiet and CONNECT_TIMEOUT_S - 0.5 <= dt <= CONNECT_TIMEOUT_S + SLACK_S,
              "%s on the TLS port: closed after %.2f s (connect_timeout %d)" %
              (what, dt, CONNECT_TIMEOUT_S), got)

    paho_pubsub(b, "cafile", 4, {"ca": pki.ca})
    paho_pubsub(b, "cafile", 5, {"ca": pki.ca})
    check(b.alive(), "the broker is still running after the ECDSA listener's checks")

    # ---- an RSA certificate: no RSA key exchange, no CBC, by default
    b = tls_broker("RSA certificate, defaults",
                   {"certfile": pki.server_rsa_cert, "keyfile": pki.server_rsa_key})
    s_client_ok(b.port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], pki.ca, "TLSv1.2",
                "RSA certificate: TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 accepted")
    s_client_ok(b.port, ["-tls1_3"], pki.ca, "TLSv1.3", "RSA certificate: TLS 1.3 accepted")
    for suite, why in (("AES128-SHA", "RSA key exchange, CBC"),
                       ("AES256-GCM-SHA384", "RSA key exchange: no forward secrecy"),
                       ("ECDHE-RSA-AES128-SHA", "CBC, no AEAD")):
        s_client_refused(b, ref, ["-tls1_2", "-cipher", suite + "@SECLEVEL=0"], pki.ca,
                         "RSA certificate: TLS 1.2 %s (%s) refused" % (suite, why))
    o = mqtt_over_tls(b, "it31-rsa", ca=pki.ca)
    check(accepted(o), "RSA certificate: CONNECT over TLS gets CONNACK 0", show(o))
    done(o)

    # ---- ciphers narrows the TLS 1.2 suites (TLS 1.3 keeps its own)
    b = tls_broker("ciphers", {"certfile": pki.server_cert, "keyfile": pki.server_key,
                               "ciphers": "ECDHE-ECDSA-CHACHA20-POLY1305"})
    s_client_ok(b.port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"], pki.ca,
                "TLSv1.2", "ciphers ECDHE-ECDSA-CHACHA20-POLY1305: that suite accepted")
    s_client_refused(b, ref, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], pki.ca,
                     "ciphers ECDHE-ECDSA-CHACHA20-POLY1305: TLS 1.2 "
                     "ECDHE-ECDSA-AES128-GCM-SHA256 refused")
    s_client_ok(b.port, ["-tls1_3"], pki.ca, "TLSv1.3", "ciphers (TLS 1.2 only): TLS 1.3 accepted")

    # ---- mTLS: the certificate's CN is the username
    b = tls_broker("mTLS, use_identity_as_username",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca,
                    "require_certificate": True, "use_identity_as_username": True},
                   allow_anonymous="false")
    alice = {"ca": pki.ca, "cert": pki.alice_cert, "key": pki.alice_key}
    for vname, v in (("TLS 1.3", None), ("TLS 1.2", T12)):
        o = mqtt_over_tls(b, "it31-cert-%s" % vname[-3:], max_version=v, **alice)
        check(accepted(o), "mTLS %s: alice's certificate, no username or password, "
              "allow_anonymous false: CONNACK 0" % vname, show(o))
        done(o)
    o = mqtt_over_tls(b, "it31-cert-v5", version=5, **alice)
    check(accepted(o), "mTLS: alice's certificate, MQTT 5.0: CONNACK 0", show(o))
    done(o)
    for vname, v in (("TLS 1.3", None), ("TLS 1.2", T12)):
        o = mqtt_over_tls(b, "it31-nocert", ca=pki.ca, max_version=v)
        check(refused(o), "mTLS %s: no client certificate: refused (handshake error or closed "
              "before CONNACK)" % vname, show(o))
        o = mqtt_over_tls(b, "it31-nocert-user", ca=pki.ca, max_version=v, username="alice")
        check(refused(o), "mTLS %s: no client certificate, username alice: refused" % vname,
              show(o))
        o = mqtt_over_tls(b, "it31-foreign", ca=pki.ca, cert=pki.foreign_cert,
                          key=pki.foreign_key, max_version=v)
        check(refused(o), "mTLS %s: a certificate for CN alice from another CA: refused" % vname,
              show(o))
        if pki.expired_cert is None:
            log("# SKIP part: no expired certificate (openssl ca failed)")
            continue
        o = mqtt_over_tls(b, "it31-expired", ca=pki.ca, cert=pki.expired_cert,
                          key=pki.expired_key, max_version=v)
        check(refused(o), "mTLS %s: alice's expired certificate (January 2020): refused" % vname,
              show(o))
    # No client id here says alice: a log line that does is about the username.
    named = b.log_grep("alice")
    if named:
        log("# broker log lines naming the username alice: %r" % named[:4])
    else:
        log("# the broker log does not name usernames at connect: CONNACK 0 without a "
            "username under allow_anonymous false is what shows the CN became one")
    rc, out = mosq_pub(b, "--cafile", pki.ca, "--cert", pki.alice_cert, "--key", pki.alice_key,
                       "-i", "it31-mosq-cert", "-t", "it31/mtls", "-m", "x", "-q", "1")
    check_eq(rc, 0, "mTLS: mosquitto_pub --cert alice exits 0 (%s)" % out.strip())
    rc, out = mosq_pub(b, "--cafile", pki.ca, "-i", "it31-mosq-nocert", "-t", "it31/mtls",
                       "-m", "x", "-q", "1", timeout=WAIT + 5)
    check(rc != 0, "mTLS: mosquitto_pub without a certificate fails", out.strip())
    paho_pubsub(b, "mtls-cert", 4, alice)
    paho_pubsub(b, "mtls-cert", 5, alice)
    check(b.alive(), "the broker is still running after the mTLS checks")

    # ---- without use_identity_as_username a certificate is no username;
    # tls_version tlsv1.3 refuses TLS 1.2.
    b = tls_broker("mTLS, tls_version tlsv1.3, no use_identity_as_username",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca,
                    "require_certificate": True, "tls_version": "tlsv1.3"},
                   allow_anonymous="false")
    o = mqtt_over_tls(b, "it31-cert-noid", **alice)
    check(o[0] == "connack" and o[1] == 0x05,
          "without use_identity_as_username: alice's certificate and no username, "
          "allow_anonymous false: CONNACK 5 (not authorized)", show(o))
    o = mqtt_over_tls(b, "it31-cert-t12", max_version=T12, **alice)
    check(o[0] == "handshake", "tls_version tlsv1.3: a TLS 1.2 client is refused in the handshake",
          show(o))
    certargs = ["-cert", pki.alice_cert, "-key", pki.alice_key]
    s_client_ok(b.port, ["-tls1_3"] + certargs, pki.ca, "TLSv1.3",
                "tls_version tlsv1.3: s_client -tls1_3 with alice's certificate completes")
    s_client_refused(b, ref, ["-tls1_2"] + certargs, pki.ca,
                     "tls_version tlsv1.3: s_client -tls1_2 refused")

    more = extra_pki(pki)
    crlfile_checks(pki, more)
    capath_checks(pki, more)
    subject_checks(pki, more)
    bad_key_checks(pki)
    sys_counter_checks(pki)


VERSIONS = (("TLS 1.3", None), ("TLS 1.2", T12))


def extra_pki(pki):
    """mallory (CN mallory, signed by the good CA), nocn (subject O=NoCN,
    no CN, signed by the good CA), the good CA's CRL revoking mallory, and
    a capath directory holding only the good CA under its subject hash."""
    x = {"mallory": pki_cert(pki, "mallory", "/CN=mallory"),
         "nocn": pki_cert(pki, "nocn", "/O=NoCN")}
    x["crl"] = make_crl(pki, [x["mallory"][0]])
    x["capath"] = make_capath(os.path.join(pki.dir, "capath"), [pki.ca])
    log("# crlfile %s revokes %s; capath %s holds %s" %
        (x["crl"], x["mallory"][0], x["capath"], sorted(os.listdir(x["capath"]))))
    return x


def as_client(pki, cert_key):
    return {"ca": pki.ca, "cert": cert_key[0], "key": cert_key[1]}


def crlfile_checks(pki, x):
    """cafile plus crlfile: the good CA's CRL revokes mallory, alice stays."""
    b = tls_broker("mTLS, cafile, crlfile",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca,
                    "crlfile": x["crl"], "require_certificate": True})
    alice = as_client(pki, (pki.alice_cert, pki.alice_key))
    mallory = as_client(pki, x["mallory"])
    for vname, v in VERSIONS:
        o = mqtt_over_tls(b, "it31-crl-alice", max_version=v, **alice)
        check(accepted(o), "crlfile %s: alice's certificate (not revoked): CONNACK 0" % vname,
              show(o))
        done(o)
        o = mqtt_over_tls(b, "it31-crl-mallory", max_version=v, **mallory)
        check(refused(o), "crlfile %s: mallory's certificate (good CA, revoked in crlfile): "
              "refused (handshake error or closed before CONNACK)" % vname, show(o))
        done(o)
    rc, out = mosq_pub(b, "--cafile", pki.ca, "--cert", x["mallory"][0], "--key",
                       x["mallory"][1], "-i", "it31-crl-mosq-mallory", "-t", "it31/crl",
                       "-m", "x", "-q", "1", timeout=WAIT + 5)
    check(rc != 0, "crlfile: mosquitto_pub --cert mallory fails", "exit %s: %s" %
          (rc, out.strip()))
    rc, out = mosq_pub(b, "--cafile", pki.ca, "--cert", pki.alice_cert, "--key", pki.alice_key,
                       "-i", "it31-crl-mosq-alice", "-t", "it31/crl", "-m", "x", "-q", "1",
                       timeout=WAIT + 5)
    check_eq(rc, 0, "crlfile: mosquitto_pub --cert alice exits 0 (%s)" % out.strip())
    said = b.log_grep("TLS handshake")
    if said:
        log("# crlfile: broker log on refused handshakes: %r" % said[:4])
    check(b.alive(), "the broker is still running after the crlfile checks")


def capath_checks(pki, x):
    """capath only (no cafile, no crlfile): the good CA found by subject
    hash verifies client certificates; mallory, on no CRL here, gets in (the
    control for crlfile_checks)."""
    b = tls_broker("mTLS, capath, no cafile",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key,
                    "capath": x["capath"], "require_certificate": True})
    alice = as_client(pki, (pki.alice_cert, pki.alice_key))
    mallory = as_client(pki, x["mallory"])
    for vname, v in VERSIONS:
        o = mqtt_over_tls(b, "it31-capath-alice", max_version=v, **alice)
        check(accepted(o), "capath %s: alice's certificate (its CA in capath as HASH.0): "
              "CONNACK 0" % vname, show(o))
        done(o)
        o = mqtt_over_tls(b, "it31-capath-mallory", max_version=v, **mallory)
        check(accepted(o), "capath %s, no crlfile: mallory's certificate (good CA) is "
              "accepted, CONNACK 0 (what crlfile refused was the CRL's doing)" % vname, show(o))
        done(o)
        o = mqtt_over_tls(b, "it31-capath-foreign", ca=pki.ca, cert=pki.foreign_cert,
                          key=pki.foreign_key, max_version=v)
        check(refused(o), "capath %s: a certificate from the foreign CA (not in capath): "
              "refused (handshake error or closed before CONNACK)" % vname, show(o))
        done(o)
        o = mqtt_over_tls(b, "it31-capath-nocert", ca=pki.ca, max_version=v)
        check(refused(o), "capath %s: no client certificate: refused" % vname, show(o))
        done(o)
    check(b.alive(), "the broker is still running after the capath checks")


def subject_checks(pki, x):
    """use_subject_as_username: the subject DN is the username, a
    certificate without a CN included; use_identity_as_username: a
    certificate without a CN has no identity and is refused."""
    alice = as_client(pki, (pki.alice_cert, pki.alice_key))
    nocn = as_client(pki, x["nocn"])
    b = tls_broker("mTLS, use_subject_as_username",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca,
                    "require_certificate": True, "use_subject_as_username": True},
                   allow_anonymous="false")
    for vname, v in VERSIONS:
        o = mqtt_over_tls(b, "it31-subj-alice", max_version=v, **alice)
        check(accepted(o), "use_subject_as_username %s: alice's certificate, no username or "
              "password, allow_anonymous false: CONNACK 0" % vname, show(o))
        done(o)
    o = mqtt_over_tls(b, "it31-subj-alice-v5", version=5, **alice)
    check(accepted(o), "use_subject_as_username: alice's certificate, MQTT 5.0: CONNACK 0",
          show(o))
    done(o)
    o = mqtt_over_tls(b, "it31-subj-nocn", **nocn)
    check(accepted(o), "use_subject_as_username: a certificate without a CN (subject O=NoCN, "
          "not an empty DN) is a username too: CONNACK 0", show(o))
    done(o)
    o = mqtt_over_tls(b, "it31-subj-nocert", ca=pki.ca, username="CN=alice")
    check(refused(o), "use_subject_as_username: no client certificate, username CN=alice: "
          "refused (handshake error or closed before CONNACK)", show(o))
    done(o)
    check(b.alive(), "the broker is still running after the use_subject_as_username checks")

    b = tls_broker("mTLS, use_identity_as_username, a certificate without a CN",
                   {"certfile": pki.server_cert, "keyfile": pki.server_key, "cafile": pki.ca,
                    "require_certificate": True, "use_identity_as_username": True},
                   allow_anonymous="false")
    # ringmq answers not authorized (3.1.1's 5, 5.0's 0x87); another broker
    # may refuse otherwise (another code, or a close): any refusal is one.
    for version, want in ((4, 0x05), (5, 0x87)):
        vname = {4: "3.1.1", 5: "5.0"}[version]
        for user, what in ((None, "and no username"),
                           ("alice", "and username alice (the CONNECT's does not stand in for "
                            "the missing CN)")):
            o = mqtt_over_tls(b, "it31-id-nocn-v%d" % version, version=version, username=user,
                              **nocn)
            if FLAVOUR == "ringmq":
                check(o[0] == "connack" and o[1] == want,
                      "use_identity_as_username, MQTT %s: a certificate without a CN (O=NoCN) "
                      "%s: CONNACK 0x%02x (not authorized)" % (vname, what, want), show(o))
            else:
                check(o[0] == "closed" or (o[0] == "connack" and o[1] != 0),
                      "use_identity_as_username, MQTT %s: a certificate without a CN (O=NoCN) "
                      "%s: refused (a CONNACK refusal or closed)" % (vname, what), show(o))
            done(o)
    if FLAVOUR == "ringmq":
        why = b.log_grep("no usable identity")
        if why:
            log("# use_identity_as_username: the broker says why: %r" % why[:2])
    o = mqtt_over_tls(b, "it31-id-alice-after", **alice)
    check(accepted(o), "use_identity_as_username: alice still gets CONNACK 0 after the "
          "refusals", show(o))
    done(o)
    check(b.alive(), "the broker is still running after the use_identity_as_username checks")


def bad_key_checks(pki):
    """A keyfile that is not the certfile's key: the broker does not start,
    exits 1, and says FILE:N: TLS keyfile ..., N the certfile's line in the
    config file written."""
    for what, key in (("another EC P-256 key (alice's)", pki.alice_key),
                      ("an RSA key for the ECDSA certificate", pki.server_rsa_key)):
        b = Broker(listener_conf={"certfile": pki.server_cert, "keyfile": key})
        b.expect_clean_exit = False  # checked here
        try:
            b.start()
            started = True
        except Fail as e:
            started = False
            log("# keyfile %s: %s" % (what, e))
        if started:
            b.stop()
        rc = b.wait_exit(WAIT)
        out = b.log_text()
        check(not started and rc == 1,
              "certfile with %s as keyfile: the broker does not start, exit status 1" % what,
              "started %s, exit status %s, output: %s" % (started, rc, out[-800:]))
        if FLAVOUR != "ringmq":
            log("# SKIP part: the FILE:LINE message is ringmq's")
            continue
        with open(b.conf_path) as f:
            lines = f.read().splitlines()
        at = [i + 1 for i, l in enumerate(lines) if l.split()[:1] == ["certfile"]]
        check(len(at) == 1, "the config written has one certfile line", lines)
        want = ":%d: TLS keyfile" % at[0]
        said = [l for l in out.splitlines() if want in l]
        check(said, "certfile with %s as keyfile: the output says '%s%s ...' (the certfile's "
              "line)" % (what, os.path.basename(b.conf_path), want), out[-800:])
        log("# keyfile %s: %s" % (what, said[0].strip()))


run(main)
