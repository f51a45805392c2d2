#!/usr/bin/python3
"""18: a subscriber that stops reading costs the broker bounded memory
(max_output_buffer: QoS 0 to it is dropped) and does not hold up anyone else:
publishers keep getting PUBACKs and a healthy subscriber on the same topic
gets every QoS 1 message in order."""
import threading
from harness import *

OUT_BUF = 256 * 1024
PAYLOAD = b"x" * 1024
BLAST = 60000            # 60 MB of QoS 0 towards the stuck subscriber
RSS_GROWTH_MAX = 20 << 20  # well below what buffering it all would take


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    b = Broker(max_output_buffer=OUT_BUF, max_queued_messages=100000).start()

    # The stuck subscriber: small receive buffer, never reads after SUBACK.
    r = Raw(b, rcvbuf=4096)
    r.connect("it18-stuck", version=4)
    check_eq(r.subscribe([("it18/#", 0)]), [0], "stuck subscriber subscribed to it18/# at QoS 0")

    pub = connected(b, "it18-pub", version=5)
    base = rss_bytes(b.proc.pid)
    t0 = time.monotonic()
    for i in range(BLAST):
        pub.publish("it18/blast", PAYLOAD, qos=0, wait=False)
    pub.publish("it18/blast-end", b"end", qos=1)  # acked: the broker read everything before
    dt = time.monotonic() - t0
    grown = rss_bytes(b.proc.pid) - base
    log("# %d QoS 0 messages (%d MB) in %.1f s; broker RSS grew %.1f MB" %
        (BLAST, BLAST * len(PAYLOAD) >> 20, dt, grown / 1048576))
    with open("/proc/%d/maps" % b.proc.pid) as f:
        asan = "libasan" in f.read()
    if asan:  # ASan's quarantine keeps freed memory: RSS says nothing here
        log("# sanitizer build: RSS bound not checked")
    else:
        check(grown < RSS_GROWTH_MAX, "broker memory bounded with a stuck subscriber: RSS grew "
              "%.1f MB for %d MB published (limit %d MB)" %
              (grown / 1048576, BLAST * len(PAYLOAD) >> 20, RSS_GROWTH_MAX >> 20))

    # Someone else is served promptly meanwhile.
    t1 = time.monotonic()
    probe = connected(b, "it18-probe")
    probe.subscribe("it18p/x", 1)
    probe.publish("it18p/x", "ping", qos=1)
    probe.wait_topic("it18p/x", 5)
    check(time.monotonic() - t1 < 2.0, "a new client connects and round-trips a message in "
          "%.2f s" % (time.monotonic() - t1))

    # Isolation for reliable traffic: a healthy QoS 1 subscriber on the same topics.
    fast = connected(b, "it18-fast", version=5)
    fast.subscribe("it18/#", qos=1)
    n = 3000
    mids = [pub.publish("it18/q1", str(i), qos=1, wait=False) for i in range(n)]
    pub.wait_acked(mids, 30)
    check(True, "publisher got all %d PUBACKs while the stuck subscriber holds its buffer" % n)
    got = fast.wait_messages(n, 30, lambda m: m.topic == "it18/q1")
    check_eq([int(m.payload) for m in got], list(range(n)),
             "healthy subscriber got all %d QoS 1 messages in order" % n)
    r.close()
    for c in (pub, probe, fast):
        c.disconnect()


run(main)
