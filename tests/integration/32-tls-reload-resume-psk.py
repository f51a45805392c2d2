#!/usr/bin/python3
"""32: TLS contexts by generation. SIGHUP swaps the served certificate (the
serial openssl s_client sees) while a connection made before keeps
publishing to a subscriber; a certificate file broken before a SIGHUP
keeps the old certificate and the log says which file and why; a
certificate replaced on disk (renamed into place, as certbot and editors
do) is picked up without a signal. Session tickets resume on whichever
shard the next connection lands (4 shards, 12 reconnects: per-shard keys
would fail most of them) and a reload ends resumption with the old tickets
(full handshake, still accepted). TLS-PSK from mosquitto's psk_file: the
right key gets in with the identity as the username, a wrong key or an
unknown identity does not. SNI: two certfile/keyfile pairs, the client's
server name picks the certificate that names it, any other gets the
first."""
import random
import shutil
import ssl
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S


def serial_seen(b, *args):
    """The serial of the certificate the broker serves, via s_client ARGS."""
    rc, out = s_client(b, "-showcerts", *args)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    if not pem:
        return None
    r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.group(0).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    return r.stdout.decode().strip()


def cert_serial(path):
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    return r.stdout.decode().strip()


def new_server_cert(pki, name):
    """Another certificate for the server key, signed by the CA."""
    cert, _ = pki_cert(pki, name, "/CN=localhost", ext="server_ext", key=pki.server_key)
    return cert


def tls_connect(b, ctx, session=None):
    """Handshake, CONNECT, CONNACK over Python's ssl: (rc, reused, session)."""
    r = Raw(b, 4, WAIT)
    s = ctx.wrap_socket(r.sock, server_hostname=HOST, session=session)
    r.sock = s
    r.send(connect_pkt("it32-resume-%d" % random.randrange(1 << 30)))
    p = r.recv(WAIT)
    out = (p.rc if p.type == 2 else None, s.session_reused, s.session)
    r.close()
    return out


def reload_checks(pki):
    d = tempfile.mkdtemp(prefix="ringmq-it32-")
    live, archive = os.path.join(d, "live"), os.path.join(d, "archive")
    os.makedirs(live)
    os.makedirs(archive)
    shutil.copy(pki.server_cert, os.path.join(archive, "cert.pem"))
    shutil.copy(pki.server_key, os.path.join(archive, "key.pem"))
    os.symlink(os.path.join(archive, "cert.pem"), os.path.join(live, "cert.pem"))
    os.symlink(os.path.join(archive, "key.pem"), os.path.join(live, "key.pem"))
    b = Broker(listener_conf={"certfile": os.path.join(live, "cert.pem"),
                              "keyfile": os.path.join(live, "key.pem")},
               shards=4, log_level="debug").start()
    s0 = cert_serial(pki.server_cert)
    check_eq(serial_seen(b), s0, "the broker serves the certificate of its certfile")

    old = TlsRaw(b, ca=pki.ca, timeout=WAIT)
    old.connect("it32-old")
    sub = TlsRaw(b, ca=pki.ca, timeout=WAIT)
    sub.connect("it32-sub")
    sub.subscribe([("it32/t", 0)])

    # SIGHUP: the archive folder is not watched, so only the signal sees it.
    c1 = new_server_cert(pki, "server-2")
    shutil.copy(c1, os.path.join(archive, "cert.pem"))
    n = len(b.log_grep("TLS contexts reloaded"))
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: len(b.log_grep("TLS contexts reloaded")) > n, WAIT),
          "SIGHUP: the broker logs the TLS reload", b.log_grep("SIGHUP"))
    check_eq(serial_seen(b), cert_serial(c1), "after SIGHUP s_client sees the new serial")
    check(b.log_grep("expires in"), "the reload logs days until expiry")

    old.publish("it32/t", b"after-sighup")
    p = sub.recv_publish(WAIT)
    check_eq(p.payload, b"after-sighup", "the subscriber gets the older connection's message")

    # A broken certificate on SIGHUP: the old one stays.
    with open(os.path.join(archive, "cert.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: b.log_grep("TLS reload failed"), WAIT),
          "SIGHUP with a broken certfile: the log says the reload failed")
    said = b.log_grep("TLS reload failed")[-1]
    check("certfile" in said and "cert.pem" in said, "the failure names the file", said)
    check_eq(serial_seen(b), cert_serial(c1), "the broken certfile keeps the served certificate")

    # Replaced on disk in the watched folder: no signal needed.
    c2 = new_server_cert(pki, "server-3")
    shutil.copy(c2, os.path.join(archive, "cert3.pem"))
    tmp = os.path.join(live, "cert.pem.new")
    os.symlink(os.path.join(archive, "cert3.pem"), tmp)
    n = len(b.log_grep("TLS files changed: TLS contexts reloaded"))
    os.rename(tmp, os.path.join(live, "cert.pem"))
    check(wait_until(lambda: len(b.log_grep("TLS files changed: TLS contexts reloaded")) > n,
                     WAIT), "a certfile renamed into place is reloaded without a signal",
          b.log_grep("TLS"))
    check_eq(serial_seen(b), cert_serial(c2), "s_client sees the certificate renamed into place")
    old.publish("it32/t", b"after-watch")
    p = sub.recv_publish(WAIT)
    check_eq(p.payload, b"after-watch", "its message arrives")
    check(b.alive(), "the broker is still running after the reloads")
    old.close()
    sub.close()

    # Resumption across shards.
    ctx = tls_context(pki.ca, max_version=ssl.TLSVersion.TLSv1_3)
    rc, reused, sess = tls_connect(b, ctx)
    check_eq(rc, 0, "TLS 1.3: a first connection gets CONNACK 0")
    results = [tls_connect(b, ctx, sess) for _ in range(12)]
    check(all(r[0] == 0 for r in results), "every reconnect gets CONNACK 0")
    check_eq(sum(1 for r in results if r[1]), 12,
             "TLS 1.3: 12 of 12 reconnects resume the session, whichever of 4 shards takes them")
    ctx12 = tls_context(pki.ca, max_version=ssl.TLSVersion.TLSv1_2)
    rc, reused, sess12 = tls_connect(b, ctx12)
    results = [tls_connect(b, ctx12, sess12) for _ in range(12)]
    check_eq(sum(1 for r in results if r[1] and r[0] == 0), 12,
             "TLS 1.2: 12 of 12 reconnects resume the session")
    b.send_signal(signal.SIGHUP)
    n = len(b.log_grep("SIGHUP: TLS contexts reloaded"))
    check(wait_until(lambda: len(b.log_grep("SIGHUP: TLS contexts reloaded")) > n - 1, WAIT),
          "SIGHUP once more")
    time.sleep(0.2)
    rc, reused, _ = tls_connect(b, ctx, sess)
    check(rc == 0 and not reused, "after a reload an old ticket gets a full handshake (and "
          "CONNACK 0)", (rc, reused))


def psk_checks(pki):
    d = tempfile.mkdtemp(prefix="ringmq-it32-psk-")
    key = os.urandom(16).hex()
    psk = os.path.join(d, "psk.txt")
    with open(psk, "w") as f:
        f.write("# devices\ndev1:%s\n" % key)
    b = Broker(listener_conf={"psk_file": psk, "psk_hint": "ringmq",
                              "use_identity_as_username": True,
                              "allow_anonymous": False}, log_level="debug").start()
    rc, out = s_client(b, "-tls1_2", "-psk_identity", "dev1", "-psk", key)
    check("ECDHE-PSK-CHACHA20-POLY1305" in out, "s_client -psk: the handshake uses "
          "ECDHE-PSK-CHACHA20-POLY1305", s_client_summary(out))
    # s_client prints its half of a refused PSK handshake as if it ran: the
    # broker's log and s_client's alert say it did not.
    for what, ident, k in (("a wrong PSK", "dev1", "00" * 16), ("an unknown identity", "nobody",
                                                                 key)):
        n = len(b.log_grep("TLS handshake with"))
        rc, out = s_client(b, "-tls1_2", "-psk_identity", ident, "-psk", k)
        check(wait_until(lambda: len(b.log_grep("TLS handshake with")) > n, WAIT),
              "s_client with %s: the broker refuses the handshake" % what, s_client_summary(out))
        check("alert" in out, "s_client with %s gets an alert" % what, s_client_summary(out))
    rc, out = mosq_pub(b, "--psk", key, "--psk-identity", "dev1", "-i", "it32-psk-pub",
                       "-t", "it32/psk", "-m", "x", "-q", "1")
    check(rc == 0, "mosquitto_pub --psk: CONNACK 0 with the PSK identity as the username "
          "(allow_anonymous false)", out)
    rc, out = mosq_pub(b, "--psk", "11" * 16, "--psk-identity", "dev1", "-i", "it32-psk-bad",
                       "-t", "it32/psk", "-m", "x")
    check(rc != 0, "mosquitto_pub with a wrong PSK fails", out)
    check(b.alive(), "the broker is still running after the PSK checks")


def sni_checks(pki):
    with open(os.path.join(pki.dir, "pki.cnf"), "a") as f:
        f.write("\n[b_ext]\nbasicConstraints = critical, CA:FALSE\n"
                "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:b.example\n")
    cb, _ = pki_cert(pki, "server-b", "/CN=b.example", ext="b_ext", key=pki.server_key)
    b = Broker(listener_conf={"certfile": pki.server_cert, "keyfile": pki.server_key,
                              "certfile#2": cb, "keyfile#2": pki.server_key}).start()

    a, bs = cert_serial(pki.server_cert), cert_serial(cb)
    check_eq(serial_seen(b, "-servername", "b.example"), bs,
             "SNI b.example: the second pair's certificate")
    check_eq(serial_seen(b, "-servername", "localhost"), a,
             "SNI localhost: the first pair's certificate")
    check_eq(serial_seen(b, "-servername", "other.example"), a,
             "SNI naming no certificate: the first pair's (the default)")
    check_eq(serial_seen(b, "-noservername"), a, "no SNI: the first pair's certificate")


def main():
    pki = make_pki(tempfile.mkdtemp(prefix="ringmq-it32-pki-"))
    reload_checks(pki)
    psk_checks(pki)
    sni_checks(pki)


run(main)
