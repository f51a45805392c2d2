#!/usr/bin/python3
"""38: per-client rates (max_publish_rate, max_inbound_rate,
max_subscribe_rate): token buckets holding one second's worth; a client
over its rate is slowed by TCP back-pressure (its reading pauses), never
disconnected, and nothing it sent is lost.

A flooder writing 500 QoS 0 PUBLISHes at once under max_publish_rate 100
gets them all delivered, in order, over at least the time its rate allows
(100 at once, then 100/s: 4 s), and still answers PINGREQ; a calm client
publishing 10/s on the same listener meanwhile is never paused (its 20
messages arrive, and arrive before the flooder's last one). QoS 1 under the
limit: every PUBACK comes, in order. max_inbound_rate 100000 paces 50
PUBLISHes of 10 KiB (500 KB: at least 4 s) and loses none. max_subscribe_rate
5: 20 SUBSCRIBEs all granted, over at least 3 s. A listener without limits
next to the limited one is not paused. The pauses are counted
(`rate limits publish pauses`, `... inbound pauses`, `... subscribe pauses`
in the SIGUSR1 line). Only lower bounds on time are checked: a busy machine
can only make a paced client slower."""
import re
import signal
import socket
import threading
import harness
from harness import *

WAIT = 10.0 + 3 * SLACK_S


def counters(b):
    """The SIGUSR1 line's numbers by name."""
    c = stats_counters(b, WAIT)
    check(bool(c), "the broker logs its SIGUSR1 line")
    return c


def raw_client(port, cid):
    r = Raw(port)
    r.send(connect_pkt(cid, keepalive=30))
    ack = next_of(r, 2, WAIT)
    check(ack is not None and ack.rc == 0, "%s connects" % cid)
    return r


def subscriber(port, cid, flt, qos=0):
    r = raw_client(port, cid)
    r.send(subscribe_pkt(1, [(flt, qos)]))
    check(next_of(r, 9, WAIT) is not None, "%s subscribed to %s" % (cid, flt))
    return r


def flood_publish(b):
    sub = subscriber(b.port, "it38-sub", "it38/#")
    flooder = raw_client(b.port, "it38-flood")
    calm = raw_client(b.port, "it38-calm")
    n = 500
    t0 = time.monotonic()
    flooder.send(b"".join(publish_pkt("it38/flood", b"%04d" % i) for i in range(n)))

    def calm_run():
        for i in range(20):
            calm.send(publish_pkt("it38/calm", b"%02d" % i))
            time.sleep(0.1)
    th = threading.Thread(target=calm_run)
    th.start()
    got = read_publishes(sub, n + 20, 4 * WAIT)
    th.join()
    elapsed = time.monotonic() - t0
    flood = [p.payload for p in got if p.topic == "it38/flood"]
    calm_got = [i for i, p in enumerate(got) if p.topic == "it38/calm"]
    check_eq(flood, [b"%04d" % i for i in range(n)],
             "max_publish_rate 100: all 500 of the flooder's PUBLISHes arrive, in order")
    check(elapsed >= 3.5, "... over at least the 4 s its rate allows (took %.1f s)" % elapsed)
    check(len(calm_got) == 20 and calm_got[-1] < len(got) - 1,
          "a calm client on the same listener publishing 10/s meanwhile gets its 20 through, "
          "the last before the flooder's last", "calm at %r of %d" % (calm_got[-3:], len(got)))
    flooder.send(pingreq_pkt())
    check(next_of(flooder, 13, WAIT) is not None,
          "the flooder was slowed, not disconnected: it answers PINGREQ")
    c = counters(b)
    check(c.get("rate limits publish pauses", 0) >= 1, "the pauses are counted", c)
    for r in (sub, flooder, calm):
        r.close()


def qos1_paced(b):
    r = raw_client(b.port, "it38-q1")
    n = 250
    r.send(b"".join(publish_pkt("it38/q1", b"x", qos=1, pid=i + 1) for i in range(n)))
    acks = []
    deadline = time.monotonic() + 4 * WAIT
    while len(acks) < n and time.monotonic() < deadline:
        p = next_of(r, 4, deadline - time.monotonic())
        if p is None:
            break
        acks.append(p.pid)
    check_eq(acks, list(range(1, n + 1)),
             "QoS 1 over max_publish_rate: every PUBACK comes, in order")
    r.close()


def inbound_bytes(b):
    sub = subscriber(b.inbound_port, "it38-bsub", "it38/big")
    r = raw_client(b.inbound_port, "it38-big")
    n, size = 50, 10240
    t0 = time.monotonic()
    r.send(b"".join(publish_pkt("it38/big", bytes([i]) * size) for i in range(n)))
    got = read_publishes(sub, n, 4 * WAIT)
    elapsed = time.monotonic() - t0
    check_eq([p.payload[:1] for p in got], [bytes([i]) for i in range(n)],
             "max_inbound_rate 100000: 50 PUBLISHes of 10 KiB all arrive, in order")
    check(elapsed >= 3.5, "... over at least the 4 s that 500 KB at 100 KB/s takes after "
          "the first second's worth (took %.1f s)" % elapsed)
    c = counters(b)
    check(c.get("rate limits inbound pauses", 0) >= 1, "the byte-rate pauses are counted", c)
    sub.close()
    r.close()


def subscribe_paced(b):
    r = raw_client(b.sub_port, "it38-subs")
    t0 = time.monotonic()
    r.send(b"".join(subscribe_pkt(i + 1, [("it38/s/%d" % i, 0)]) for i in range(20)))
    acks = []
    deadline = time.monotonic() + 4 * WAIT
    while len(acks) < 20 and time.monotonic() < deadline:
        p = next_of(r, 9, deadline - time.monotonic())
        if p is None:
            break
        acks.append(p.pid)
    elapsed = time.monotonic() - t0
    check_eq(acks, list(range(1, 21)), "max_subscribe_rate 5: 20 SUBSCRIBEs all granted, in order")
    check(elapsed >= 2.5, "... over at least the 3 s the rate allows (took %.1f s)" % elapsed)
    r.close()


def unlimited_listener(b):
    before = counters(b)
    sub = subscriber(b.free_port, "it38-fsub", "it38/free")
    r = raw_client(b.free_port, "it38-free")
    r.send(b"".join(publish_pkt("it38/free", b"%04d" % i) for i in range(500)))
    got = read_publishes(sub, 500, 4 * WAIT)
    check_eq(len(got), 500, "a listener without limits: 500 PUBLISHes arrive")
    after = counters(b)
    check_eq(after.get("rate limits publish pauses"), before.get("rate limits publish pauses"),
             "... and its client was never paused")
    sub.close()
    r.close()


class RateBroker(Broker):
    """Listeners: the harness's (max_publish_rate 100 from the global
    default), one with max_inbound_rate, one with max_subscribe_rate, one
    with no limits (0 overrides the global default)."""

    def config_text(self):
        text = super().config_text()
        extra = ["listener %d %s" % (self.inbound_port, HOST), "max_publish_rate 0",
                 "max_inbound_rate 100000",
                 "listener %d %s" % (self.sub_port, HOST), "max_publish_rate 0",
                 "max_subscribe_rate 5",
                 "listener %d %s" % (self.free_port, HOST), "max_publish_rate 0"]
        return text + "\n".join(extra) + "\n"


def main():
    ringmq_only("per-client rates are ringmq's")
    b = RateBroker(max_publish_rate=100)
    b.inbound_port, b.sub_port, b.free_port = free_port(), free_port(), free_port()
    b.start()
    flood_publish(b)
    qos1_paced(b)
    inbound_bytes(b)
    subscribe_paced(b)
    unlimited_listener(b)
    check(b.alive(), "the broker is running")


run(main)
