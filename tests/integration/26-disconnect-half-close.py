#!/usr/bin/python3
"""26: a server DISCONNECT is not lost to a reset (issue 7, defect 19).

After the broker sends DISCONNECT for a violation (0x93: more QoS 2
PUBLISH without PUBREL than its Receive Maximum; 0x82: a second CONNECT),
it half-closes the connection and reads and discards what the client still
sends for a short, bounded time, instead of closing a socket with unread
input (which makes the kernel reset the connection). So a client that goes
on writing for 200 ms after the violation is not refused (no EPIPE /
ECONNRESET), then reads the DISCONNECT with its reason code and a clean end
of stream. And the socket is still closed within a few seconds when the
client never stops writing.

Every wait is bounded."""
from harness import *

KEEP_WRITING_S = 0.2
CLOSE_BOUND_S = 10.0 + SLACK_S  # "a few seconds" (the broker's bound), generously


def qos2_flood(version=5):
    # max_inflight_messages 20 (the default) is the Receive Maximum the
    # broker announces: the 21st unreleased QoS 2 PUBLISH is one too many.
    return b"".join(publish_pkt("it26/q2", b"x", qos=2, pid=i + 1, version=version)
                    for i in range(25))


VIOLATIONS = [
    # (name, packets that violate, reason code, what the client keeps sending)
    ("25 QoS 2 PUBLISH without PUBREL", qos2_flood(), 0x93, ack_pkt(5, 1, version=5) * 20),
    ("a second CONNECT", connect_pkt("it26-again", version=5), 0x82,
     publish_pkt("it26/more", b"y" * 100, version=5) * 10),
]


def write_for(sock, chunk, seconds):
    """Writes chunk every 5 ms for seconds; returns the first error or None."""
    sock.settimeout(2.0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
        except OSError as e:
            return e
        time.sleep(0.005)
    return None


def disconnect_survives_writes(b, i, name, bad, rc, more):
    cid = "it26-v%d" % i
    r = Raw(b, version=5)
    r.connect(cid, version=5, keepalive=0)
    r.sock.settimeout(5.0)
    r.sock.sendall(bad)
    err = write_for(r.sock, more, KEEP_WRITING_S)
    check(err is None, "%s: after %s the client can go on writing for %.0f ms (the broker "
          "half-closes and discards, it does not reset)" % (cid, name, KEEP_WRITING_S * 1000),
          repr(err))
    got = []
    try:
        got = r.wait_closed(5.0 + SLACK_S)
    except Fail as e:
        got = [str(e)]
    discs = [p for p in got if not isinstance(p, str) and p.type == 14]
    check(len(discs) == 1 and discs[0].rc == rc and r.eof_reason == "eof",
          "%s: it then reads DISCONNECT 0x%02x and the end of the stream" % (cid, rc),
          (got[-3:], r.eof_reason))
    r.close()


def closed_while_writing(b, i, name, bad, rc, more):
    """The discarding is bounded: a client that never stops writing is cut."""
    cid = "it26-w%d" % i
    r = Raw(b, version=5)
    r.connect(cid, version=5, keepalive=0)
    r.sock.settimeout(5.0)
    r.sock.sendall(bad)
    t0 = time.monotonic()
    err = write_for(r.sock, more, CLOSE_BOUND_S)
    took = time.monotonic() - t0
    log("# %s: writes refused after %.2f s (%r)" % (cid, took, err))
    check(err is not None, "%s: after %s, a client that keeps writing is disconnected "
          "within %.0f s" % (cid, name, CLOSE_BOUND_S), "still writable after %.1f s" % took)
    r.close()


def main():
    ringmq_only("the half-close after DISCONNECT")
    b = Broker().start()
    for i, v in enumerate(VIOLATIONS):
        disconnect_survives_writes(b, i, *v)
    for i, v in enumerate(VIOLATIONS):
        closed_while_writing(b, i, *v)
    # The broker is unharmed: a new client is served.
    r = Raw(b, version=5)
    r.connect("it26-after", version=5)
    r.send(pingreq_pkt())
    r.expect(13, what="PINGRESP after the violations")
    check(True, "the broker still serves new clients")
    r.send(disconnect_pkt(5))
    r.close()


run(main)
