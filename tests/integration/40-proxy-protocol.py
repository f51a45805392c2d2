#!/usr/bin/python3
"""40: the PROXY protocol (HAProxy's doc/proxy-protocol.txt) on listeners
with `enable_proxy_protocol 1` (the v1 text line only) or
`enable_proxy_protocol 2` (the v2 binary header only).

The header's source address replaces the socket's peer address for
everything: a header naming an address inside the listener's deny_from is
closed without a byte, one naming an allowed address is let in although
the socket's own address is denied, and the debug log's "new connection N
from ADDR:PORT" shows the proxied address and port. Raw headers: v1 TCP4,
TCP6 and UNKNOWN; v2 TCP4, TCP6 with TLVs (ALPN, authority, NOOP, SSL,
CRC32C), LOCAL (the socket's own address is kept, even when the LOCAL
header carries an address block); a header written one byte at a time.
Closed without an MQTT byte: no header (plain CONNECT first), malformed
headers of each version, the other version's header. A socket that sends
nothing or half a header is closed at connect_timeout, not before.

A TLS listener with enable_proxy_protocol: the header comes first in
plaintext, then the handshake; no header or a denied source gets no
ServerHello.

A real HAProxy in TCP mode (`send-proxy` and `send-proxy-v2` backends)
in front of the two plain listeners, which deny 127.0.0.5: a client from
127.0.0.5 is closed without a CONNACK, one from 127.0.0.6 gets CONNACK 0
and a message goes from a publisher through one haproxy frontend to a
subscriber through the other; the log shows 127.0.0.6 and the client's
own source port. The address refusals are counted (`connections refused
address` in the SIGUSR1 line)."""
import ipaddress
import signal
import socket
import ssl
import struct
import threading
import harness
from harness import *

CONNECT_TIMEOUT_S = 2
WAIT = 5.0 + 2 * SLACK_S
# The broker logs a connection before it answers it: once the answer is in,
# the line is there or on its way.
LOG_WAIT = 1.0 + SLACK_S
DENIED_NET = "10.66.0.0/16"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---------------------------------------------------------------------------
# headers


def v1(proto, src, dst, sport, dport):
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def tlv(t, value):
    return bytes([t]) + struct.pack(">H", len(value)) + value


def v2_raw(cmd, fam, body, ver=2, length=None):
    """The 16 fixed bytes (signature, version/command, family, length) and
    body; length overrides the declared length."""
    n = len(body) if length is None else length
    return V2_SIG + bytes([(ver << 4) | cmd, fam]) + struct.pack(">H", n) + body


def v2_addr(src, dst, sport, dport):
    """(family byte, address block) for TCP over IPv4 or IPv6."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    return fam, s.packed + d.packed + struct.pack(">HH", sport, dport)


def v2(src, dst, sport, dport, tlvs=b"", cmd=1, **kw):
    fam, addr = v2_addr(src, dst, sport, dport)
    return v2_raw(cmd, fam, addr + tlvs, **kw)


def v2_with_crc(src, dst, sport, dport, tlvs=b"", corrupt=False):
    """A v2 header ending in a CRC32C TLV computed over the whole header
    with its own 4 bytes zero (corrupt: one bit of it flipped)."""
    h = bytearray(v2(src, dst, sport, dport, tlvs + tlv(0x03, b"\0\0\0\0")))
    crc = crc32c(bytes(h)) ^ (1 if corrupt else 0)
    h[-4:] = struct.pack(">I", crc)
    return bytes(h)


V2_LOCAL = v2_raw(0, 0x00, b"")
# SSL TLV: client flags PP2_CLIENT_SSL, verify 0, a PP2_SUBTYPE_SSL_VERSION sub-TLV.
SSL_TLV = tlv(0x20, b"\x01" + b"\0\0\0\0" + tlv(0x21, b"TLSv1.3"))


# ---------------------------------------------------------------------------
# connections from a chosen source address


class SrcRaw(Raw):
    """Raw from source address src (loopback stands for other hosts)."""

    def __init__(self, port, src="127.0.0.1", version=4, timeout=WAIT):
        Raw.__init__(self, port, version=version, timeout=timeout, src=src)

    def src_port(self):
        return self.sock.getsockname()[1]


class ProxiedTls(TlsRaw):
    """A PROXY header in plaintext, then TLS (tls_context()'s arguments)."""

    def __init__(self, port, header, src="127.0.0.1", version=4, timeout=WAIT, **tls):
        SrcRaw.__init__(self, port, src, version, timeout)
        tcp = self.sock
        try:
            tcp.sendall(header)
            self.sock = tls_context(**tls).wrap_socket(tcp, server_hostname=HOST)
        except BaseException:
            tcp.close()
            raise
        self.tls_version = self.sock.version()
        self.alpn = None


def outcome(r, timeout=WAIT):
    return connack_outcome(r, timeout)


def attempt(port, header, cid, src="127.0.0.1", bytewise=False, keep=False, **kw):
    """A connection from src that sends header (in one write, or one byte a
    write), then CONNECT; returns outcome() (and the connection if keep)."""
    r = SrcRaw(port, src)
    try:
        if bytewise:
            for i in range(len(header)):
                if not r.send(header[i:i + 1]):
                    break
                time.sleep(0.005)
        elif header:
            r.send(header)
        r.send(connect_pkt(cid, keepalive=30))
        res = outcome(r)
    except BaseException:
        r.close()
        raise
    if keep:
        return res, r
    r.close()
    return res


def seen_in_log(b, pattern):
    rx = re.compile(pattern)
    return bool(wait_until(lambda: rx.search(b.log_text()), LOG_WAIT))


def refused_address(b):
    """`connections refused address N` from a fresh SIGUSR1 line (None if absent)."""
    line = stats_line(b, WAIT)
    m = re.search(r"connections refused address (\d+)", line) if line else None
    return int(m.group(1)) if m else None


def read_until_eof(sock, timeout):
    """Bytes a socket receives until EOF: (bytes, closed, seconds)."""
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


# ---------------------------------------------------------------------------


class ProxyBroker(Broker):
    """Listener 0 (the harness's): enable_proxy_protocol 1. Then a v2
    listener, a TLS listener with v2 and a TLS listener with v1. All deny
    DENIED_NET, 127.0.0.5 and 127.0.0.9."""

    def config_text(self):
        text = super().config_text()
        rules = ["deny_from %s" % DENIED_NET, "deny_from 127.0.0.5/32", "deny_from 127.0.0.9"]
        tls = ["certfile %s" % self.pki.server_cert, "keyfile %s" % self.pki.server_key]
        extra = (["listener %d %s" % (self.v2_port, HOST), "enable_proxy_protocol 2"] + rules +
                 ["listener %d %s" % (self.tls2_port, HOST), "enable_proxy_protocol 2"] + tls +
                 rules +
                 ["listener %d %s" % (self.tls1_port, HOST), "enable_proxy_protocol 1"] + tls +
                 rules)
        return text + "\n".join(extra) + "\n"


def start_broker(pki):
    b = ProxyBroker(connect_timeout=CONNECT_TIMEOUT_S,
                    listener_conf={"enable_proxy_protocol": 1, "deny_from": DENIED_NET,
                                   "deny_from#2": "127.0.0.5/32", "deny_from#3": "127.0.0.9"})
    b.pki = pki
    b.v2_port, b.tls2_port, b.tls1_port = free_port(), free_port(), free_port()
    why = None
    try:
        b.start()
    except Fail as e:
        b.expect_clean_exit = False  # reported here
        said = [l for l in b.log_text().splitlines() if l.strip()][-4:]
        why = "%s; broker log: %s" % (e, " | ".join(said) or "(empty)")
    check(why is None, "the broker starts with enable_proxy_protocol 1 and 2 listeners "
          "(plain and TLS)", why)
    if why is not None:
        raise Fail("no PROXY listeners, nothing more to test")
    return b


CONNACK0 = ("connack", 0)
CLOSED = ("closed", b"")


def v1_checks(b):
    p = b.port
    check_eq(attempt(p, v1("TCP4", "10.1.2.3", "127.0.0.1", 5555, 1883), "it40-v1a"), CONNACK0,
             "v1 listener: 'PROXY TCP4 10.1.2.3 127.0.0.1 5555 1883' then CONNECT: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from 10\.1\.2\.3:5555\b"),
          "the log's 'new connection N from' shows the proxied 10.1.2.3:5555",
          b.log_grep("new connection")[-3:])
    check_eq(attempt(p, v1("TCP6", "2001:db8::7", "::1", 6666, 1883), "it40-v1b"), CONNACK0,
             "v1 'PROXY TCP6 2001:db8::7 ::1 6666 1883': CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from \[?2001:db8::7\]?:6666\b"),
          "the log shows the proxied 2001:db8::7 port 6666", b.log_grep("new connection")[-3:])
    r = SrcRaw(p, "127.0.0.7")
    own = r.src_port()
    r.send(b"PROXY UNKNOWN\r\n" + connect_pkt("it40-v1u"))
    check_eq(outcome(r), CONNACK0, "v1 'PROXY UNKNOWN': CONNACK 0")
    r.close()
    check(seen_in_log(b, r"new connection \d+ from 127\.0\.0\.7:%d\b" % own),
          "... with the socket's own address (127.0.0.7:%d) in the log" % own,
          b.log_grep("new connection")[-3:])
    check_eq(attempt(p, v1("TCP4", "10.66.1.1", "127.0.0.1", 5555, 1883), "it40-v1d"), CLOSED,
             "v1 header from 10.66.1.1 (inside deny_from %s): closed without a byte" % DENIED_NET)
    check(seen_in_log(b, r"connection from 10\.66\.1\.1 refused"),
          "the log names the proxied address as the refused one", b.log_grep("refused")[-3:])
    check_eq(attempt(p, v1("TCP4", "10.1.2.9", "127.0.0.1", 5557, 1883), "it40-v1s",
                     src="127.0.0.9"), CONNACK0,
             "a socket from 127.0.0.9 (denied) whose header says 10.1.2.9: let in (the header's "
             "address replaces the socket's)")
    check_eq(attempt(p, v1("TCP4", "10.1.2.4", "127.0.0.1", 5556, 1883), "it40-v1byte",
                     bytewise=True), CONNACK0,
             "a v1 header written one byte at a time: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from 10\.1\.2\.4:5556\b"),
          "... and the log shows 10.1.2.4:5556", b.log_grep("new connection")[-3:])
    check_eq(attempt(p, b"", "it40-v1none"), CLOSED,
             "v1 listener, no header (CONNECT first): closed without a byte")
    bad = [
        (b"PROXY TCP4 10.1.2.3 127.0.0.1 5555\r\n", "a port missing"),
        (b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 1883 7\r\n", "a word too many"),
        (b"PROXY TCP4 300.1.2.3 127.0.0.1 5555 1883\r\n", "an IPv4 octet over 255"),
        (b"PROXY TCP4 10.1.2.3 127.0.0.1 70000 1883\r\n", "a port over 65535"),
        (b"PROXY TCP4 2001:db8::7 ::1 5555 1883\r\n", "IPv6 addresses under TCP4"),
        (b"PROXY TCP6 10.1.2.3 127.0.0.1 5555 1883\r\n", "IPv4 addresses under TCP6"),
        (b"PROXY TCP5 10.1.2.3 127.0.0.1 5555 1883\r\n", "an unknown protocol TCP5"),
        (b"proxy TCP4 10.1.2.3 127.0.0.1 5555 1883\r\n", "lower-case 'proxy'"),
        (b"PROXY  TCP4 10.1.2.3 127.0.0.1 5555 1883\r\n", "two spaces"),
        (b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 1883\n", "LF without CR"),
        (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n", "no CRLF within 107 bytes"),
        (v2("10.1.2.3", "127.0.0.1", 5555, 1883), "a v2 header (wrong version)"),
    ]
    for i, (hdr, what) in enumerate(bad):
        check_eq(attempt(p, hdr, "it40-v1bad%d" % i), CLOSED,
                 "v1 listener, malformed header (%s): closed without a byte" % what)


def v2_checks(b):
    p = b.v2_port
    check_eq(attempt(p, v2("10.1.2.5", "127.0.0.1", 7777, 1883), "it40-v2a"), CONNACK0,
             "v2 listener: a v2 PROXY TCP4 header from 10.1.2.5:7777: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from 10\.1\.2\.5:7777\b"),
          "the log shows 10.1.2.5:7777", b.log_grep("new connection")[-3:])
    tlvs = (tlv(0x01, b"mqtt") + tlv(0x02, b"broker.example") + tlv(0x04, b"\0" * 7) + SSL_TLV)
    check_eq(attempt(p, v2("2001:db8::9", "::1", 7778, 1883, tlvs), "it40-v2b"), CONNACK0,
             "v2 TCP6 from [2001:db8::9]:7778 with ALPN, authority, NOOP and SSL TLVs: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from \[?2001:db8::9\]?:7778\b"),
          "the log shows 2001:db8::9 port 7778", b.log_grep("new connection")[-3:])
    check_eq(attempt(p, v2_with_crc("10.1.2.6", "127.0.0.1", 7779, 1883, tlv(0x01, b"mqtt")),
                     "it40-v2crc"), CONNACK0, "v2 with a correct CRC32C TLV: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from 10\.1\.2\.6:7779\b"),
          "the log shows 10.1.2.6:7779", b.log_grep("new connection")[-3:])
    r = SrcRaw(p, "127.0.0.7")
    own = r.src_port()
    r.send(V2_LOCAL + connect_pkt("it40-v2local"))
    check_eq(outcome(r), CONNACK0, "v2 LOCAL (a proxy's health check): CONNACK 0")
    r.close()
    check(seen_in_log(b, r"new connection \d+ from 127\.0\.0\.7:%d\b" % own),
          "... with the socket's own address 127.0.0.7:%d in the log" % own,
          b.log_grep("new connection")[-3:])
    check_eq(attempt(p, v2("10.66.1.2", "127.0.0.1", 7780, 1883, cmd=0), "it40-v2localaddr",
                     src="127.0.0.7"), CONNACK0,
             "v2 LOCAL carrying an address block from a denied 10.66.1.2: CONNACK 0 (LOCAL "
             "keeps the socket's own address)")
    check_eq(attempt(p, v2("10.66.1.2", "127.0.0.1", 7781, 1883), "it40-v2d"), CLOSED,
             "v2 header from 10.66.1.2 (denied): closed without a byte")
    check(seen_in_log(b, r"connection from 10\.66\.1\.2 refused"),
          "the log names 10.66.1.2 as refused", b.log_grep("refused")[-3:])
    check_eq(attempt(p, v2("10.1.2.7", "127.0.0.1", 7782, 1883, tlvs), "it40-v2byte",
                     bytewise=True), CONNACK0,
             "a v2 header with TLVs written one byte at a time: CONNACK 0")
    check(seen_in_log(b, r"new connection \d+ from 10\.1\.2\.7:7782\b"),
          "... and the log shows 10.1.2.7:7782", b.log_grep("new connection")[-3:])
    check_eq(attempt(p, b"", "it40-v2none"), CLOSED,
             "v2 listener, no header (CONNECT first): closed without a byte")
    good = v2("10.1.2.3", "127.0.0.1", 5555, 1883)
    fam4, addr4 = v2_addr("10.1.2.3", "127.0.0.1", 5555, 1883)
    bad = [
        (b"\r\n\r\n\x00\r\nQUIT\r" + good[12:], "a wrong signature byte"),
        (v2_raw(1, fam4, addr4, ver=1), "version 1 in the version nibble"),
        (v2_raw(1, fam4, addr4, ver=3), "version 3 in the version nibble"),
        (v2_raw(0xF, fam4, addr4), "an unknown command 0xF"),
        (v2_raw(1, fam4, addr4[:8], length=8), "a TCP4 address block of 8 bytes"),
        (v2("10.1.2.3", "127.0.0.1", 5555, 1883, tlv(0x01, b"mqtt")[:3] + b"\xff"),
         "a TLV running past the header's end"),
        (v2_with_crc("10.1.2.3", "127.0.0.1", 5555, 1883, corrupt=True), "a wrong CRC32C"),
        (v1("TCP4", "10.1.2.3", "127.0.0.1", 5555, 1883), "a v1 line (wrong version)"),
    ]
    for i, (hdr, what) in enumerate(bad):
        check_eq(attempt(p, hdr, "it40-v2bad%d" % i), CLOSED,
                 "v2 listener, malformed header (%s): closed without a byte" % what)


def tls_checks(b, pki):
    for port, ver, hdr, src_re in (
            (b.tls2_port, 2, v2("10.1.2.8", "127.0.0.1", 8888, 8883), r"10\.1\.2\.8:8888"),
            (b.tls1_port, 1, v1("TCP4", "10.1.2.10", "127.0.0.1", 8889, 8883),
             r"10\.1\.2\.10:8889")):
        try:
            r = ProxiedTls(port, hdr, ca=pki.ca)
            r.send(connect_pkt("it40-tls%d" % ver, keepalive=30))
            res = outcome(r)
            r.close()
        except (ssl.SSLError, OSError) as e:
            res = ("handshake failed", repr(e))
        check_eq(res, CONNACK0, "TLS listener with enable_proxy_protocol %d: the header in "
                 "plaintext, then the TLS handshake and CONNECT: CONNACK 0" % ver)
        check(seen_in_log(b, r"new connection \d+ from %s\b" % src_re),
              "... and the log shows the proxied %s" % src_re.replace("\\", ""),
              b.log_grep("new connection")[-3:])
        hello = client_hello(pki.ca)
        denied = (v2("10.66.1.3", "127.0.0.1", 8890, 8883) if ver == 2 else
                  v1("TCP4", "10.66.1.3", "127.0.0.1", 8890, 8883))
        for pre, what in ((b"", "no header (a ClientHello first)"),
                          (denied, "a header from the denied 10.66.1.3")):
            s = socket.create_connection((HOST, port), timeout=WAIT)
            try:
                s.sendall(pre + hello)
            except (ConnectionResetError, BrokenPipeError):
                pass
            got, closed, _ = read_until_eof(s, WAIT)
            s.close()
            check(closed and got == b"", "TLS listener with enable_proxy_protocol %d, %s: closed "
                  "without a ServerHello" % (ver, what), "closed %s, received %r" %
                  (closed, got[:32]))


def timeout_checks(b):
    """Silent sockets and half headers: closed at connect_timeout, not before."""
    def silent(port):
        return lambda: socket.create_connection((HOST, port), timeout=WAIT)

    def partial(port, data):
        def fn():
            s = socket.create_connection((HOST, port), timeout=WAIT)
            s.sendall(data)
            return s
        return fn

    cases = [
        ("v1 listener, a socket that sends nothing", silent(b.port)),
        ("v1 listener, half a header ('PROXY TCP4 10.1')", partial(b.port, b"PROXY TCP4 10.1")),
        ("v2 listener, a socket that sends nothing", silent(b.v2_port)),
        ("v2 listener, the first 10 bytes of the signature", partial(b.v2_port, V2_SIG[:10])),
        ("v2 listener, 16 fixed bytes and half the address block",
         partial(b.v2_port, v2("10.1.2.3", "127.0.0.1", 5555, 1883)[:22])),
        ("TLS v2 listener, a socket that sends nothing", silent(b.tls2_port)),
    ]
    results = {}

    def timed(i, fn):
        try:
            t0 = time.monotonic()
            s = fn()
            got, closed, _ = read_until_eof(s, CONNECT_TIMEOUT_S + SLACK_S + 2)
            s.close()
            results[i] = ((time.monotonic() - t0) if closed else float("inf"), got)
        except BaseException as e:
            results[i] = (float("inf"), "error: %r" % e)

    ts = [threading.Thread(target=timed, args=(i, fn)) for i, (_, fn) in enumerate(cases)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(CONNECT_TIMEOUT_S + SLACK_S + WAIT + 5)
    for i, (what, _) in enumerate(cases):
        dt, got = results.get(i, (float("inf"), "not measured"))
        check(got == b"" and CONNECT_TIMEOUT_S - 0.5 <= dt <= CONNECT_TIMEOUT_S + SLACK_S,
              "%s: closed without a byte after %.2f s (connect_timeout %d)" %
              (what, dt, CONNECT_TIMEOUT_S), got)


HAPROXY_CONF = """\
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend f_v1
    bind 127.0.0.1:%(h1)d
    default_backend b_v1
backend b_v1
    server s1 127.0.0.1:%(p1)d send-proxy
frontend f_v2
    bind 127.0.0.1:%(h2)d
    default_backend b_v2
backend b_v2
    server s1 127.0.0.1:%(p2)d send-proxy-v2
"""


def start_haproxy(b):
    h1, h2 = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="ringmq-it40-haproxy-")
    conf = os.path.join(d, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write(HAPROXY_CONF % {"h1": h1, "h2": h2, "p1": b.port, "p2": b.v2_port})
    logf = open(os.path.join(d, "haproxy.log"), "wb")
    log("# $ haproxy -f %s -db" % conf)
    proc = subprocess.Popen(["haproxy", "-f", conf, "-db"], stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=subprocess.STDOUT, cwd=d)
    harness._procs.append(proc)

    def listening():
        if proc.poll() is not None:
            return True
        for port in (h1, h2):
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
            except OSError:
                return False
        return True

    wait_until(listening, WAIT, 0.05)
    with open(os.path.join(d, "haproxy.log"), "rb") as f:
        said = f.read().decode("utf-8", "replace")
    check(proc.poll() is None and listening(), "haproxy starts (frontends on %d and %d)" %
          (h1, h2), said[-1500:])
    return proc, h1, h2


def haproxy_checks(b):
    if not shutil.which("haproxy"):
        log("# haproxy is not installed (apt-get install haproxy): its checks are skipped")
        return 0
    proc, h1, h2 = start_haproxy(b)
    for port, mode in ((h1, "send-proxy"), (h2, "send-proxy-v2")):
        check_eq(attempt(port, b"", "it40-hap-denied-%s" % mode, src="127.0.0.5"), CLOSED,
                 "through haproxy %s from 127.0.0.5 (denied on the broker): closed without a "
                 "CONNACK" % mode)
    subs = {}
    for port, mode in ((h1, "send-proxy"), (h2, "send-proxy-v2")):
        res, r = attempt(port, b"", "it40-hap-sub-%s" % mode, src="127.0.0.6", keep=True)
        check_eq(res, CONNACK0, "through haproxy %s from 127.0.0.6: CONNACK 0" % mode)
        check(seen_in_log(b, r"new connection \d+ from 127\.0\.0\.6:%d\b" % r.src_port()),
              "... the broker's log shows 127.0.0.6 and the client's own port %d" % r.src_port(),
              b.log_grep("new connection")[-3:])
        r.send(subscribe_pkt(1, [("it40/hap", 1)]))
        ack = next_of(r, 9, WAIT)
        check(ack is not None and ack.codes == [1], "... and subscribes to it40/hap (QoS 1)",
              ack)
        subs[mode] = r
    for port, mode in ((h1, "send-proxy"), (h2, "send-proxy-v2")):
        res, pub = attempt(port, b"", "it40-hap-pub-%s" % mode, src="127.0.0.6", keep=True)
        check_eq(res, CONNACK0, "a publisher through haproxy %s: CONNACK 0" % mode)
        pub.send(publish_pkt("it40/hap", mode, qos=1, pid=7))
        ack = next_of(pub, 4, WAIT)
        check(ack is not None and ack.pid == 7, "... its QoS 1 PUBLISH is acknowledged", ack)
        pub.close()
        for smode, r in subs.items():
            got = read_publishes(r, 1, WAIT, ack=True)
            check(len(got) == 1 and got[0].payload == mode.encode(),
                  "the subscriber through haproxy %s gets the message published through %s" %
                  (smode, mode), got)
    for r in subs.values():
        r.close()
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
    return 2


def main():
    ringmq_only("enable_proxy_protocol is ringmq's")
    pki = make_pki(tempfile.mkdtemp(prefix="ringmq-it40-pki-"))
    b = start_broker(pki)
    v1_checks(b)
    v2_checks(b)
    tls_checks(b, pki)
    timeout_checks(b)
    # 10.66.1.1 (v1), 10.66.1.2 (v2), 10.66.1.3 on each TLS listener, and
    # 127.0.0.5 through each haproxy frontend.
    refusals = 4 + haproxy_checks(b)
    n = refused_address(b)
    check(n is not None and n >= refusals,
          "the address refusals of proxied addresses are counted (connections refused "
          "address %s, want at least %d)" % (n, refusals))
    check(b.alive(), "the broker is running")


run(main)
