#!/usr/bin/python3
"""02: QoS 0/1/2 fan-out across shards. 8 subscribers (distinct client ids,
so they hash to different home shards; half 3.1.1, half 5.0) and 4 publishers
each sending 500 messages per QoS. Every subscriber must get every QoS 1 and
QoS 2 message exactly once, at the published QoS, in per-publisher order;
QoS 0 messages may only be dropped under overload, never duplicated or
reordered."""
import threading
from harness import *

N_SUB = 8
N_PUB = 4
N_MSG = 500


def main():
    # The per-session queue must hold a burst: 4 publishers x 1500 messages.
    b = Broker(max_queued_messages=20000, max_inflight_messages=20).start()
    subs = []
    for i in range(N_SUB):
        c = connected(b, "it02-sub-%d" % i, version=4 if i % 2 == 0 else 5)
        granted = c.subscribe("it02/#", qos=2)
        check_eq(granted, [2], "sub %d granted QoS 2 on it02/#" % i)
        subs.append(c)
    pubs = [connected(b, "it02-pub-%d" % i, version=5 if i % 2 == 0 else 4)
            for i in range(N_PUB)]

    errors = []

    def publish_all(i, c):
        try:
            for qos in (0, 1, 2):
                mids = []
                for seq in range(N_MSG):
                    mids.append(c.publish("it02/p%d/q%d" % (i, qos), "p%d:q%d:%d" % (i, qos, seq),
                                          qos=qos, wait=False))
                if qos:
                    c.wait_acked(mids, 30)
        except Exception as e:  # reported below
            errors.append("publisher %d: %s" % (i, e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=publish_all, args=(i, c)) for i, c in enumerate(pubs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    check(not errors and not any(t.is_alive() for t in threads),
          "all %d publishers got every PUBACK/PUBCOMP" % N_PUB, errors)
    log("# published %d messages in %.1f s" % (N_PUB * N_MSG * 3, time.monotonic() - t0))

    want_reliable = N_PUB * N_MSG * 2

    def reliable(m):
        return m.topic.endswith(("q1", "q2"))

    # Wait for everyone (bounded), then report each subscriber.
    deadline = time.monotonic() + 30
    for c in subs:
        try:
            c.wait_messages(want_reliable, max(0.1, deadline - time.monotonic()), pred=reliable)
        except Fail:
            pass
    time.sleep(0.5)  # let duplicates, if any, arrive
    for si, c in enumerate(subs):
        check(c.disconnected is None, "sub %d still connected" % si,
              "disconnected with rc %r" % c.disconnected)
        n = len(c.messages(reliable))
        check(n == want_reliable, "sub %d received %d QoS 1/2 messages, want %d" %
              (si, n, want_reliable))

    for si, c in enumerate(subs):
        streams = {}
        bad_qos = []
        for m in c.messages():
            p, q, seq = m.payload.decode().split(":")
            streams.setdefault((p, q), []).append(int(seq))
            if m.topic != "it02/%s/%s" % (p, q):
                bad_qos.append(("topic", m.topic, m.payload))
            if m.qos != int(q[1]):
                bad_qos.append((m.topic, m.qos))
        check(not bad_qos, "sub %d: every message arrives at its published QoS" % si,
              bad_qos[:5])
        for i in range(N_PUB):
            for q in ("q1", "q2"):
                got = streams.get(("p%d" % i, q), [])
                ok = got == list(range(N_MSG))
                detail = None
                if not ok:
                    dups = len(got) - len(set(got))
                    missing = sorted(set(range(N_MSG)) - set(got))[:10]
                    first_bad = next((k for k in range(min(len(got), N_MSG)) if got[k] != k), None)
                    detail = "%d messages, %d duplicates, missing %s..., first out of order at %s" % (
                        len(got), dups, missing, first_bad)
                if not ok:
                    check(False, "sub %d: publisher %d %s: all %d exactly once in order" %
                          (si, i, q, N_MSG), detail)
            got0 = streams.get(("p%d" % i, "q0"), [])
            check(got0 == sorted(set(got0)),
                  "sub %d: publisher %d q0: %d of %d, no duplicates, in order" %
                  (si, i, len(got0), N_MSG), got0[:20])
        check(True, "sub %d: all QoS 1 and QoS 2 streams complete and ordered" % si)

    homes = b.log_grep("it02-sub-")
    if homes:
        log("# broker log lines about subscribers (shard placement): %d, e.g. %s" %
            (len(homes), homes[:2]))
    for c in subs + pubs:
        c.disconnect()


run(main)
