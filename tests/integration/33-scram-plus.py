#!/usr/bin/python3
"""33: SCRAM-SHA-512-PLUS, SCRAM bound to the TLS session with the RFC 9266
tls-exporter channel binding, as MQTT 5.0 enhanced authentication. With
`auth_methods SCRAM-SHA-512` and a TLS listener the broker offers the -PLUS
method too; the client's c= must then carry the 32 bytes both ends export
from their TLS session, so a man in the middle holding a certificate the
client trusts (two TLS sessions, two values) is caught.

Python's ssl module cannot export keying material, so the exchanges that
bind are run by tests/tools/ringmq-scram-client (BoringSSL; env
RINGMQ_SCRAM_CLIENT, or next to RINGMQ_BIN's build tree): PLUS over TLS 1.3
and 1.2 logs in (and re-authenticates with AUTH 0x19), its server signature
verifying; a corrupted binding (what a client behind a man in the middle
sends) gets CONNACK 0x87, or DISCONNECT 0x87 in a re-authentication; other
channel binding types and a PLUS exchange without "p=" are refused; the
plain method with gs2 flag "y" over TLS is a downgrade and refused, with
"n" it still logs in, with "p=" it is refused. Over plain TCP, and over a
TLS 1.2 session without the extended master secret (Python's ssl, whose
exporter would not be unique to the session), SCRAM-SHA-512-PLUS is not
offered (CONNACK 0x8C) and "y" is accepted as before."""
import base64
import hashlib
import hmac
import select
import socket
import ssl
import subprocess
import threading
import harness
from harness import *

WAIT = 5.0 + 3 * SLACK_S
PLAIN = "SCRAM-SHA-512"
PLUS = "SCRAM-SHA-512-PLUS"
USER, PASSWORD = "alice", "wonderland"
# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (SSL_OP_BIT(0)); Python's ssl
# has no name for it.
OP_NO_EXTENDED_MASTER_SECRET = 1 << 0


def scram_tool():
    path = os.environ.get("RINGMQ_SCRAM_CLIENT")
    if not path:
        # RINGMQ_BIN is BUILD/net/ringmq; the tool is BUILD/tests/tools/.
        build = os.path.dirname(os.path.dirname(os.path.abspath(ringmq_bin())))
        path = os.path.join(build, "tests", "tools", "ringmq-scram-client")
    if not os.access(path, os.X_OK):
        raise Fail("RINGMQ_SCRAM_CLIENT not set and no %s (build tests/tools)" % path)
    return path


def run_tool(port, cid, *args, ca=None, password=PASSWORD):
    """Runs the C client against port; returns its key=value lines as a dict
    (and the raw output as ["out"])."""
    argv = [scram_tool(), "--port", str(port), "--user", USER, "--password", password,
            "--client-id", cid, "--timeout", str(int(WAIT))]
    if ca:
        argv += ["--ca", ca]
    r = subprocess.run(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=3 * WAIT)
    out = r.stdout.decode("utf-8", "replace")
    got = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and " " not in l)
    got["out"] = out.strip()
    got["rc"] = r.returncode
    return got


def refused_with(got, rc):
    """CONNACK rc, and the broker closed the connection after it."""
    return got.get("connack") == rc and got.get("closed") == "1" and got["rc"] == 0


def logged_in(got):
    return got.get("connack") == "0x00" and got.get("server_final") == "ok" and got["rc"] == 0


def b64(b):
    return base64.b64encode(b).decode()


def python_scram(r, cid, gs2, method=PLAIN):
    """An exchange from Python (no binding: gs2 "n,," or "y,,") on Raw r;
    returns the CONNACK and whether its server signature verified."""
    cnonce = b64(os.urandom(18))
    bare = "n=%s,r=%s" % (USER, cnonce)
    r.send(connect_pkt(cid, version=5, cprops=[(0x15, method), (0x16, (gs2 + bare).encode())]))
    p = r.expect(15, timeout=WAIT) if method == PLAIN else r.recv(WAIT)
    if p.type != 15:
        return p, False
    sf = p.props.get(0x16, b"").decode()
    attrs = dict(kv.split("=", 1) for kv in sf.split(","))
    salted = hashlib.pbkdf2_hmac("sha512", PASSWORD.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    ck = hmac.new(salted, b"Client Key", "sha512").digest()
    without = "c=%s,r=%s" % (b64(gs2.encode()), attrs["r"])
    auth = ",".join([bare, sf, without]).encode()
    sig = hmac.new(hashlib.sha512(ck).digest(), auth, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(ck, sig))
    r.send(packet(15, 0, bytes([0x18]) + props([(0x15, method),
                                                (0x16, (without + ",p=" + b64(proof)).encode())])))
    ack = r.expect(2, timeout=WAIT)
    sk = hmac.new(salted, b"Server Key", "sha512").digest()
    v = "v=" + b64(hmac.new(sk, auth, "sha512").digest())
    return ack, ack.props.get(0x16, b"").decode() == v


class NoEmsRaw(harness.TlsRaw):
    """TlsRaw over TLS 1.2 without the extended master secret: the broker
    keeps no tls-exporter value for such a session (RFC 9266 section 4.2)."""

    def __init__(self, broker, ca):
        harness.Raw.__init__(self, broker, 5, WAIT)
        ctx = tls_context(ca, max_version=ssl.TLSVersion.TLSv1_2)
        ctx.options |= OP_NO_EXTENDED_MASTER_SECRET
        tcp = self.sock
        self.sock = ctx.wrap_socket(tcp, server_hostname=HOST)
        self.tls_version = self.sock.version()


class MitmProxy:
    """A man in the middle that holds a certificate the client trusts (the
    broker's own, valid for 127.0.0.1): it ends the client's TLS session,
    opens its own to the broker and relays the plaintext, one connection
    at a time, in a thread."""

    def __init__(self, broker, pki):
        self.broker = broker
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
        self.client_ctx = tls_context(pki.ca)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(4)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.relayed = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            try:
                c.settimeout(WAIT)
                front = self.server_ctx.wrap_socket(c, server_side=True)
                back = self.client_ctx.wrap_socket(
                    socket.create_connection((HOST, self.broker.port), timeout=WAIT),
                    server_hostname=HOST)
                self._relay(front, back)
                self.relayed += 1
            except (OSError, ssl.SSLError):
                pass
            finally:
                c.close()

    @staticmethod
    def _relay(a, b):
        deadline = time.monotonic() + 3 * WAIT
        while time.monotonic() < deadline:
            ready = [s for s in (a, b) if s.pending()]
            if not ready:
                ready = select.select([a, b], [], [], 0.1)[0]
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)

    def stop(self):
        self.stopping = True
        self.thread.join(2 * WAIT)
        self.lsock.close()


def through_a_man_in_the_middle(b, pki):
    """The client's TLS session ends at the proxy: its certificate checks
    out, its exporter value is not the broker's."""
    m = MitmProxy(b, pki)
    got = run_tool(m.port, "it33-mitm-proxy", ca=pki.ca)
    check(got.get("tls") and refused_with(got, "0x87"),
          "SCRAM-SHA-512-PLUS through a TLS proxy that holds a trusted certificate: the "
          "binding differs, CONNACK 0x87", got["out"])
    got = run_tool(m.port, "it33-mitm-plain", "--method", PLAIN, "--gs2", "n", ca=pki.ca)
    check(logged_in(got),
          "(plain SCRAM-SHA-512 through the same proxy logs in: that is what the binding "
          "adds)", got["out"])
    m.stop()
    check_eq(m.relayed, 2, "the proxy relayed both connections")


def over_tls(b, ca):
    ok = run_tool(b.port, "it33-plus", "--reauth", ca=ca)
    check(logged_in(ok) and ok.get("tls") == "TLSv1.3",
          "SCRAM-SHA-512-PLUS over TLS 1.3 with the tls-exporter binding: CONNACK 0x00, and "
          "the server signature verifies", ok["out"])
    check(ok.get("auth") == "0x18", "the broker continues the PLUS exchange (AUTH 0x18)",
          ok["out"])
    check(ok.get("reauth") == "0x00" and ok.get("reauth_final") == "ok",
          "re-authentication (AUTH 0x19) with PLUS on the same session: AUTH 0x00, the server "
          "signature verifies", ok["out"])
    got = run_tool(b.port, "it33-plus12", "--tls-max", "1.2", ca=ca)
    check(logged_in(got) and got.get("tls") == "TLSv1.2",
          "PLUS over TLS 1.2 (extended master secret): CONNACK 0x00", got["out"])
    got = run_tool(b.port, "it33-authz", "--authzid", ca=ca)
    check(logged_in(got), "PLUS with gs2 header p=tls-exporter,a=<the username>,: CONNACK 0x00",
          got["out"])

    got = run_tool(b.port, "it33-mitm", "--corrupt-binding", ca=ca)
    check(refused_with(got, "0x87"),
          "a binding from another TLS session (a man in the middle): CONNACK 0x87 Not "
          "authorized, then closed", got["out"])
    check(b.log_grep("a man in the middle"), "the broker's log says why")
    got = run_tool(b.port, "it33-mitm-re", "--reauth", "--corrupt-reauth-binding", ca=ca)
    check(got.get("connack") == "0x00" and got.get("disconnect") == "0x87",
          "a wrong binding in a re-authentication: DISCONNECT 0x87", got["out"])
    got = run_tool(b.port, "it33-badpw", ca=ca, password="guess")
    check(refused_with(got, "0x87"), "PLUS with a wrong password: CONNACK 0x87", got["out"])
    for cb in ("tls-unique", "tls-server-end-point"):
        got = run_tool(b.port, "it33-" + cb, "--cb-name", cb, ca=ca)
        check(refused_with(got, "0x87"), "PLUS with channel binding type %s: CONNACK 0x87" % cb,
              got["out"])
    got = run_tool(b.port, "it33-plus-n", "--gs2", "n", ca=ca)
    check(refused_with(got, "0x87"), "PLUS with gs2 flag n: CONNACK 0x87", got["out"])

    got = run_tool(b.port, "it33-down", "--method", PLAIN, "--gs2", "y", ca=ca)
    check(refused_with(got, "0x87"),
          "SCRAM-SHA-512 with gs2 flag y over TLS (the client could bind and was told the "
          "server cannot: a downgrade): CONNACK 0x87", got["out"])
    check(b.log_grep("a downgrade"), "the broker's log names the downgrade")
    got = run_tool(b.port, "it33-plain-n", "--method", PLAIN, "--gs2", "n", "--reauth", ca=ca)
    check(logged_in(got) and got.get("reauth") == "0x00",
          "SCRAM-SHA-512 with gs2 flag n over TLS: CONNACK 0x00, re-authentication too",
          got["out"])
    got = run_tool(b.port, "it33-plain-p", "--method", PLAIN, ca=ca)
    check(refused_with(got, "0x87"), "SCRAM-SHA-512 with p=tls-exporter: CONNACK 0x87",
          got["out"])

    # TLS 1.2 without the extended master secret: no unique exporter.
    r = NoEmsRaw(b, ca)
    check_eq(r.tls_version, "TLSv1.2", "Python's ssl without extended master secret: TLS 1.2")
    ack, _ = python_scram(r, "it33-noems-plus", "p=tls-exporter,,", method=PLUS)
    check(ack.type == 2 and ack.rc == 0x8C,
          "TLS 1.2 without extended master secret: SCRAM-SHA-512-PLUS is not offered "
          "(CONNACK 0x8C)", ack)
    r.close()
    r = NoEmsRaw(b, ca)
    ack, sig_ok = python_scram(r, "it33-noems-y", "y,,")
    check(ack.rc == 0 and sig_ok,
          "and there gs2 flag y with SCRAM-SHA-512 is accepted (the server cannot bind)", ack)
    r.close()


def over_tcp(b):
    got = run_tool(b.port, "it33-tcp-plus")
    check(refused_with(got, "0x8c"),
          "SCRAM-SHA-512-PLUS over plain TCP: CONNACK 0x8C Bad authentication method",
          got["out"])
    check("auth" not in got, "no AUTH before the refusal", got["out"])
    for flag in ("y", "n"):
        got = run_tool(b.port, "it33-tcp-" + flag, "--method", PLAIN, "--gs2", flag)
        check(logged_in(got), "SCRAM-SHA-512 with gs2 flag %s over plain TCP: CONNACK 0x00" %
              flag, got["out"])
    r = Raw(b, version=5, timeout=WAIT)
    ack, sig_ok = python_scram(r, "it33-tcp-py", "y,,")
    check(ack.rc == 0 and sig_ok, "the same from an independent client (Python)", ack)
    r.close()


def main():
    ringmq_only("SCRAM-SHA-512-PLUS")
    scram_tool()
    pki = make_pki(tempfile.mkdtemp(prefix="ringmq-it33-pki-"))
    d = tempfile.mkdtemp(prefix="ringmq-it33-")
    pwfile = os.path.join(d, "passwd")
    with open(pwfile, "w") as f:
        f.write(scram_entry(USER, PASSWORD, 4096) + "\n")
    conf = dict(allow_anonymous="false", password_file=pwfile, auth_methods=PLAIN,
                connect_timeout=max(10, int(WAIT)))
    b = Broker(listener_conf={"certfile": pki.server_cert, "keyfile": pki.server_key},
               **conf).start()
    over_tls(b, pki.ca)
    through_a_man_in_the_middle(b, pki)
    b.stop()
    b = Broker(**conf).start()
    over_tcp(b)
    b.stop()


run(main)
