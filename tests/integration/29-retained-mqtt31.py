#!/usr/bin/python3
"""29: many retained messages for one SUBSCRIBE, and MQTT 3.1 details
(issue 7, defects 8 and 16).

- 20000 retained messages on rr/0..rr/19999: a new subscriber to rr/# that
  reads fast gets all 20000, each once, with the retain flag; one with a
  QoS 1 subscription that acknowledges promptly gets all 20000 at QoS 1,
  although max_queued_messages is 1000 (the broker paces them rather than
  queueing them at once and dropping the rest). They are published at
  QoS 1: a QoS 1 subscription gets a retained message at the lower of the
  two QoS, so a QoS 0 store would only test QoS 0 delivery twice.
- A SUBSCRIBE naming rr/# 5000 times is one subscription: SUBACK has 5000
  granted codes, each retained message arrives exactly once, and a client
  homed on every shard gets PINGRESP meanwhile.
- MQTT 3.1 (MQIsdp, level 3): the CONNACK of a resumed session has byte 0
  equal to 0 (3.1 has no session present flag; 3.1.1 sets it); a 3.1
  client resuming a QoS 2 flow re-sends PUBREL with DUP (0x6A) and gets
  PUBCOMP, still connected, while the same 0x6A from a 3.1.1 client is
  malformed and closes the connection; 3.1 SUBSCRIBE / UNSUBSCRIBE with
  DUP (0x8A / 0xAA) are answered.

Every wait is bounded and generous; nothing depends on the machine's speed
(a slower broker only takes longer, within the bounds)."""
import re
from harness import *

N = 20000
ANSWER_S = 5.0 + SLACK_S
# Delivery of 20000 retained messages: generous, and more under sanitizers;
# a delivery that stalls for IDLE_S is over.
DELIVERY_S = 30.0 + 10 * SLACK_S
IDLE_S = 10.0 + 2 * SLACK_S
# 20000 x 100 bytes is more than max_output_buffer (1 MiB): a QoS 0 reader
# gets them all only if the broker paces them by its output.
PAYLOAD = 100



def goodbye(*rs):
    for r in rs:
        r.send(disconnect_pkt(r.version))
        r.close()


def shard_of(b, cid):
    lines = b.log_grep("client '%s': connected" % cid)
    m = re.search(r"\[shard (\d+)\]", lines[-1]) if lines else None
    return int(m.group(1)) if m else None


def pingers_per_shard(b, prefix, shards=4):
    """Connected clients, one homed on each shard (found from the log)."""
    if FLAVOUR != "ringmq":  # no shards to find
        out = {}
        for i in range(shards):
            out[i] = Raw(b)
            out[i].connect("%s%d" % (prefix, i), keepalive=0)
        return out
    found = {}
    for i in range(200):
        if len(found) == shards:
            break
        cid = "%s%d" % (prefix, i)
        r = Raw(b)
        r.connect(cid, keepalive=0)
        sh = wait_until(lambda: shard_of(b, cid), 2.0)
        if sh is not None and sh not in found:
            found[sh] = r
        else:
            goodbye(r)
    if len(found) != shards:
        raise Fail("could not find client ids for all %d shards (found %r)" %
                   (shards, sorted(found)))
    return found


def collect(r, timeout, done, ack=True, idle=None):
    """Reads PUBLISH packets (acknowledging QoS 1) until done(got), the time
    is up, or nothing came for idle seconds; other packets are kept apart.
    Returns (publishes, others)."""
    got, other = [], []
    deadline = time.monotonic() + timeout
    try:
        while not done(got):
            left = max(0.01, deadline - time.monotonic())
            p = r.recv(left if idle is None else min(left, idle))
            if p.type != 3:
                other.append(p)
                continue
            if ack and p.qos == 1:
                r.send(ack_pkt(4, p.pid, version=r.version))
            got.append(p)
    except (TimeoutError, Closed):
        pass
    return got, other


def publish_retained(b):
    watch = Raw(b)
    watch.connect("it29-watch", keepalive=0)
    watch.subscribe([("rr/%d" % (N - 1), 0)])
    pub = Raw(b)
    pub.connect("it29-rpub", keepalive=0)
    pending, acked, i = set(), 0, 0
    deadline = time.monotonic() + DELIVERY_S
    try:
        while acked < N and time.monotonic() < deadline:
            batch = b""
            while i < N and len(pending) < 500:
                pid = i % 65535 + 1
                batch += publish_pkt("rr/%d" % i, (b"%d:" % i).ljust(PAYLOAD, b"r"), qos=1,
                                     pid=pid, retain=True)
                pending.add(pid)
                i += 1
            if batch:
                pub.send(batch)
            p = pub.recv(max(0.01, deadline - time.monotonic()))
            if p.type == 4 and p.pid in pending:
                pending.discard(p.pid)
                acked += 1
    except (TimeoutError, Closed):
        pass
    check_eq(acked, N, "a publisher gets PUBACKs for %d retained QoS 1 messages on rr/0.."
             "rr/%d" % (N, N - 1))
    # The store has them once the last one is routed (stored first).
    last = next_of(watch, 3, ANSWER_S)
    check(last is not None and last.payload.startswith(b"%d:" % (N - 1)),
          "a subscriber to rr/%d gets the last one" % (N - 1), last)
    goodbye(pub, watch)


def fast_reader(b):
    r = Raw(b)
    r.connect("it29-rsub0", keepalive=0)
    check_eq(r.subscribe([("rr/#", 0)]), [0], "a new subscriber to rr/# (QoS 0) is granted")
    t0 = time.monotonic()
    got, other = collect(r, DELIVERY_S, lambda g: len(g) >= N, idle=IDLE_S)
    log("# QoS 0 reader: %d retained in %.1f s" % (len(got), time.monotonic() - t0))
    more, _ = collect(r, 0.5, lambda g: False)
    got += more
    topics = [p.topic for p in got]
    check(len(topics) == N and len(set(topics)) == N and all(p.retain for p in got),
          "a fast-reading QoS 0 subscriber to rr/# gets all %d retained messages, each once, "
          "with the retain flag" % N,
          "%d messages, %d distinct, %d without retain, others %r" %
          (len(topics), len(set(topics)), sum(not p.retain for p in got), other[:3]))
    goodbye(r)


def qos1_reader(b):
    r = Raw(b)
    r.connect("it29-rsub1", keepalive=0)
    check_eq(r.subscribe([("rr/#", 1)]), [1], "a new subscriber to rr/# (QoS 1) is granted")
    t0 = time.monotonic()
    got, other = collect(r, DELIVERY_S, lambda g: len(g) >= N, idle=IDLE_S)
    log("# QoS 1 reader: %d retained in %.1f s" % (len(got), time.monotonic() - t0))
    more, _ = collect(r, 0.5, lambda g: False)
    got += more
    topics = [p.topic for p in got]
    check(len(topics) == N and len(set(topics)) == N and all(p.qos == 1 for p in got),
          "a QoS 1 subscriber acknowledging each at once gets all %d retained messages at "
          "QoS 1, each once (max_queued_messages 1000: paced, not dropped)" % N,
          "%d messages, %d distinct, QoS %r, others %r" %
          (len(topics), len(set(topics)), sorted({p.qos for p in got}), other[:3]))
    goodbye(r)


def repeated_filter(b):
    pingers = pingers_per_shard(b, "it29-ping")
    r = Raw(b)
    r.connect("it29-rsub-rep", keepalive=0)
    r.send(subscribe_pkt(7, [("rr/#", 0)] * 5000))
    for sh, p in sorted(pingers.items()):
        p.send(pingreq_pkt())
    deadline = time.monotonic() + ANSWER_S
    late = [sh for sh, p in sorted(pingers.items())
            if next_of(p, 13, max(0.01, deadline - time.monotonic())) is None]
    check(not late, "right after a SUBSCRIBE naming rr/# 5000 times, a client homed on every "
          "shard gets PINGRESP within %.0f s" % ANSWER_S, "no PINGRESP on shards %r" % late)
    ack = r.expect(9, timeout=DELIVERY_S, what="SUBACK")
    check(ack.pid == 7 and len(ack.codes) == 5000 and set(ack.codes) == {0},
          "the SUBSCRIBE naming rr/# 5000 times gets a SUBACK with 5000 granted codes",
          "pid %d, %d codes, %r" % (ack.pid, len(ack.codes), sorted(set(ack.codes))))
    t0 = time.monotonic()
    seen = set()

    def all_seen(g):  # incremental: called after every packet
        if g:
            seen.add(g[-1].topic)
        return len(seen) >= N
    got, other = collect(r, DELIVERY_S, all_seen, idle=IDLE_S)
    log("# repeated filter: %d retained (%d distinct) in %.1f s" %
        (len(got), len(seen), time.monotonic() - t0))
    more, _ = collect(r, 1.0, lambda g: False)  # copies that would follow
    got += more
    topics = [p.topic for p in got]
    check(len(topics) == N and len(set(topics)) == N,
          "the filter repeated 5000 times is one subscription: each of the %d retained "
          "messages arrives exactly once" % N,
          "%d messages, %d distinct" % (len(topics), len(set(topics))))
    for sh, p in sorted(pingers.items()):
        p.send(pingreq_pkt())
    deadline = time.monotonic() + ANSWER_S
    late = [sh for sh, p in sorted(pingers.items())
            if next_of(p, 13, max(0.01, deadline - time.monotonic())) is None]
    check(not late and b.alive(), "afterwards every shard still answers PINGREQ",
          "no PINGRESP on shards %r" % late)
    goodbye(r, *pingers.values())


# ---------------------------------------------------------------------------
# Defect 16: MQTT 3.1


CONNACK_OK_31 = b"\x20\x02\x00\x00"


def v31_session_resumed(b):
    pub = Raw(b)
    pub.connect("it29-31pub", keepalive=0)
    r = Raw(b, version=3)
    ack = r.connect("it29-31res", version=3, clean=False, keepalive=0)
    r.subscribe([("it29/res", 1)])
    goodbye(r)
    pub.publish("it29/res", b"queued", qos=1, pid=1)
    r = Raw(b, version=3)
    ack = r.connect("it29-31res", version=3, clean=False, keepalive=0)
    check_eq(ack.raw, CONNACK_OK_31, "MQTT 3.1 client resuming its session (clean session 0, "
             "second CONNECT): CONNACK 20 02 00 00, byte 0 (acknowledge flags) is 0")
    try:
        got = r.recv_publish(ANSWER_S)
    except Fail as e:
        got = e
    check(isinstance(got, Packet) and got.payload == b"queued",
          "the session was resumed: the message queued meanwhile arrives", got)
    goodbye(r)
    # The same with 3.1.1 says session present: the check above tells them apart.
    r = Raw(b)
    r.connect("it29-311res", clean=False, keepalive=0)
    goodbye(r)
    r = Raw(b)
    ack = r.connect("it29-311res", clean=False, keepalive=0)
    check_eq(ack.raw, b"\x20\x02\x01\x00", "a 3.1.1 client resuming gets CONNACK 20 02 01 00")
    goodbye(r, pub)


def v31_pubrel_dup(b):
    watch = Raw(b)
    watch.connect("it29-31watch", keepalive=0)
    watch.subscribe([("it29/q2", 2)])
    r = Raw(b, version=3)
    r.connect("it29-31q2", version=3, clean=False, keepalive=0)
    r.send(publish_pkt("it29/q2", b"once", qos=2, pid=9, version=3))
    rec = next_of(r, 5, ANSWER_S)
    check(rec is not None and rec.pid == 9, "a 3.1 client's QoS 2 PUBLISH gets PUBREC", rec)
    r.close()  # lost before its PUBREL
    r = Raw(b, version=3)
    r.connect("it29-31q2", version=3, clean=False, keepalive=0)
    r.send(b"\x6a\x02\x00\x09")  # PUBREL, QoS 1, DUP: 3.1's retry
    comp = next_of(r, 7, ANSWER_S)
    check(comp is not None and comp.raw == b"\x70\x02\x00\x09",
          "the 3.1 client resuming re-sends PUBREL with DUP (6A 02 00 09): PUBCOMP 70 02 00 09",
          comp)
    r.send(pingreq_pkt())
    check(next_of(r, 13, ANSWER_S) is not None,
          "the 3.1 client is still connected afterwards (PINGRESP)")
    got = []
    try:
        while True:
            got.append(watch.recv_publish(0.5))
    except Fail:
        pass
    check_eq([p.payload for p in got], [b"once"], "the QoS 2 message was delivered once")
    goodbye(r, watch)

    r = Raw(b)
    r.connect("it29-311q2", keepalive=0)
    r.send(publish_pkt("it29/q2x", b"x", qos=2, pid=5))
    next_of(r, 5, ANSWER_S)
    r.send(b"\x6a\x02\x00\x05")
    try:
        got = r.wait_closed(ANSWER_S)
    except Fail as e:
        got = e
    check(isinstance(got, list) and not any(p.type == 7 for p in got),
          "the same PUBREL 6A 02 00 05 from a 3.1.1 client is malformed: closed, no PUBCOMP",
          got)
    r.close()


def v31_subscribe_dup(b):
    r = Raw(b, version=3)
    r.connect("it29-31sub", version=3, keepalive=0)
    body = u16(3) + s("it29/dup") + b"\x01"
    r.send(packet(8, 0xA, body))
    ack = next_of(r, 9, ANSWER_S)
    check(ack is not None and ack.pid == 3 and ack.codes == [1],
          "a 3.1 SUBSCRIBE with DUP (0x8A) gets SUBACK granting QoS 1", ack)
    r.send(packet(10, 0xA, u16(4) + s("it29/dup")))
    ack = next_of(r, 11, ANSWER_S)
    check(ack is not None and ack.pid == 4,
          "a 3.1 UNSUBSCRIBE with DUP (0xAA) gets UNSUBACK", ack)
    r.send(pingreq_pkt())
    check(next_of(r, 13, ANSWER_S) is not None, "the 3.1 client is still connected")
    goodbye(r)
    r = Raw(b)
    r.connect("it29-311sub", keepalive=0)
    r.send(packet(8, 0xA, body))
    try:
        got = r.wait_closed(ANSWER_S)
    except Fail as e:
        got = e
    check(isinstance(got, list) and not any(p.type == 9 for p in got),
          "the same SUBSCRIBE (0x8A) from a 3.1.1 client is malformed: closed, no SUBACK", got)
    r.close()


def timed(f, *args):
    t0 = time.monotonic()
    f(*args)
    log("# %s: %.1f s" % (f.__name__, time.monotonic() - t0))


def main():
    # MQTT 3.1 first, on its own broker: it is quick, and on a broker with
    # defect 8 the retained part may take the whole watchdog.
    b31 = Broker().start()
    timed(v31_session_resumed, b31)
    timed(v31_pubrel_dup, b31)
    timed(v31_subscribe_dup, b31)
    b = Broker().start()
    timed(publish_retained, b)
    timed(fast_reader, b)
    timed(qos1_reader, b)
    timed(repeated_filter, b)


run(main)
