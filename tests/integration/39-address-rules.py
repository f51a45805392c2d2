#!/usr/bin/python3
"""39: allow_from / deny_from, checked at accept before a byte is read.
Loopback is one interface for all of 127.0.0.0/8, so clients bind source
addresses 127.0.0.2, 127.0.0.3, ... to stand for different hosts.

Global `deny_from 127.0.0.3` and `allow_from 127.0.0.0/8`; a second
listener with its own `allow_from 127.0.0.2`. A denied address never sees
a CONNACK (the socket is closed with nothing sent), plain and over TLS
(no handshake either: the rules come before any TLS work); an allowed one
connects and exchanges a message with mosquitto_sub/pub meanwhile; on the
second listener the block's allow replaces the global one (127.0.0.4
refused there, let in on the first) and the global deny still applies.
The refusals are counted (`connections refused address`). A bad range
stops the start with file:line."""
import signal
import socket
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S


def from_addr(port, src):
    """A TCP connection to port from source address src."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(WAIT)
    s.connect((HOST, port))
    return s


def connack_from(port, src, cid):
    """The first bytes the broker answers a CONNECT from src with (b'' when
    it closed without a word)."""
    s = from_addr(port, src)
    try:
        s.sendall(connect_pkt(cid))
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
        return got
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        s.close()


def counters(b):
    line = stats_line(b, WAIT)
    m = re.search(r"connections refused address (\d+)", line) if line else None
    return int(m.group(1)) if m else None


class RulesBroker(Broker):
    def config_text(self):
        text = super().config_text()
        return text + "listener %d %s\nallow_from 127.0.0.2\ndeny_from 127.0.0.5\n" % (
            self.second_port, HOST)


def main():
    ringmq_only("allow_from / deny_from are ringmq's")
    b = RulesBroker(deny_from="127.0.0.3", allow_from="127.0.0.0/8", log_level="debug")
    b.second_port = free_port()
    b.start()
    check_eq(connack_from(b.port, "127.0.0.2", "it39-a"), b"\x20\x02\x00\x00",
             "127.0.0.2 (inside allow_from 127.0.0.0/8): CONNACK 0")
    check_eq(connack_from(b.port, "127.0.0.3", "it39-d"), b"",
             "127.0.0.3 (deny_from): closed without a byte of MQTT")
    check(any("connection from 127.0.0.3 refused on listener 0" in l
              for l in b.log_grep("refused on listener")),
          "the broker logs the refused address", b.log_grep("refused"))
    check_eq(connack_from(b.port, "127.0.0.4", "it39-4"), b"\x20\x02\x00\x00",
             "127.0.0.4 on the first listener: let in")
    check_eq(connack_from(b.second_port, "127.0.0.4", "it39-4b"), b"",
             "127.0.0.4 on the listener with its own allow_from 127.0.0.2: refused (the "
             "block's allow replaces the global one)")
    check_eq(connack_from(b.second_port, "127.0.0.2", "it39-2b"), b"\x20\x02\x00\x00",
             "127.0.0.2 there: let in")
    check_eq(connack_from(b.second_port, "127.0.0.3", "it39-3b"), b"",
             "127.0.0.3 there: the global deny_from still applies")
    # Meanwhile a client from an allowed address works as usual.
    sub = MosqSub(b, "-i", "it39-sub", "-t", "it39/t", "-q", "1", "-C", "1",
                  "-W", str(int(WAIT) + 5))
    sub.wait_suback(WAIT)
    rc, out = mosq_pub(b, "-i", "it39-pub", "-t", "it39/t", "-m", "hello", "-q", "1")
    check(rc == 0 and sub.wait_exit(WAIT + 5) == 0 and sub.data_lines() == ["hello"],
          "mosquitto_sub/pub from 127.0.0.1 exchange a QoS 1 message", (rc, out))
    n = counters(b)
    check(n is not None and n >= 3, "the refusals are counted (%s)" % n)
    b.stop()

    pki = make_pki(tempfile.mkdtemp(prefix="ringmq-it39-pki-"))
    t = Broker(deny_from="127.0.0.3",
               listener_conf={"certfile": pki.server_cert, "keyfile": pki.server_key}).start()
    s = from_addr(t.port, "127.0.0.3")
    try:
        s.sendall(client_hello(pki.ca))
        got = s.recv(64)
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    s.close()
    check_eq(got, b"", "a TLS listener: a denied address gets no ServerHello, the socket is "
             "closed before any TLS work")
    t.stop()

    bad = Broker(allow_from="10.1.2.3/8")
    bad.port = free_port()
    with open(bad.conf_path, "w") as f:
        f.write(bad.config_text())
    r = subprocess.run([ringmq_bin(), "-c", bad.conf_path, "--test-config"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=WAIT)
    check(r.returncode != 0 and re.search(r"ringmq\.conf:\d+: allow_from `10\.1\.2\.3/8' has bits set "
                                          r"beyond the /8 prefix", r.stdout),
          "a bad range stops the start with file:line", r.stdout)


run(main)
