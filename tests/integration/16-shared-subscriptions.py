#!/usr/bin/python3
"""16: shared subscriptions ($share/group/filter). Members of one group spread
over shards: each message goes to exactly one member of each group, none is
lost, each member sees its share in order; a plain subscriber still gets
everything; when a member leaves, the others take over its share, including
messages already on their way to the leaver's shard. No Local on a shared
subscription is a Protocol Error [MQTT-3.8.3-4]."""
import re
from harness import *

N = 300


def publish_n(pub, topic, start, n):
    mids = [pub.publish(topic, str(i), qos=1, wait=False) for i in range(start, start + n)]
    pub.wait_acked(mids, 20)


def shard_of(b, cid):
    lines = b.log_grep("client '%s': connected" % cid)
    m = re.search(r"\[shard (\d+)\]", lines[-1]) if lines else None
    return int(m.group(1)) if m else None


def seqs(c, topic):
    return [int(m.payload) for m in c.messages(lambda m: m.topic == topic)]


def main():
    b = Broker().start()
    r = Raw(b, version=5)
    ack = r.connect("it16-probe", version=5)
    if ack.props.get(0x2A, 1) == 0:
        # The broker says it has none: then it must refuse them consistently.
        codes = r.subscribe([("$share/g1/it16/x", 1)])
        check_eq(codes, [0x9E], "5.0 CONNACK says no shared subscriptions: SUBACK 0x9E")
        r4 = Raw(b, version=4)
        r4.connect("it16-probe4", version=4)
        check_eq(r4.subscribe([("$share/g1/it16/x", 1)]), [0x80],
                 "3.1.1 shared subscription refused with SUBACK 0x80")
        skip("the broker does not offer shared subscriptions (CONNACK Shared Subscription "
             "Available 0)")
    r.close()

    g1 = [connected(b, "it16-g1-m%d" % i, version=5 if i % 2 else 4) for i in range(4)]
    g2 = [connected(b, "it16-g2-m%d" % i, version=5) for i in range(2)]
    for c in g1:
        check_eq(c.subscribe("$share/g1/it16/+", qos=1), [1], "%s joined $share/g1/it16/+" %
                 c.client_id)
    for c in g2:
        check_eq(c.subscribe("$share/g2/it16/#", qos=1), [1], "%s joined $share/g2/it16/#" %
                 c.client_id)
    plain = connected(b, "it16-plain")
    plain.subscribe("it16/x", qos=1)

    pub = connected(b, "it16-pub", version=5)
    publish_n(pub, "it16/x", 0, N)
    plain.wait_messages(N, 20)
    check_eq(seqs(plain, "it16/x"), list(range(N)), "plain subscriber got all %d in order" % N)

    def group_ok(group, name, want):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sum(len(seqs(c, "it16/x")) for c in group) >= len(want):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        per = [seqs(c, "it16/x") for c in group]
        allseq = sorted(s for p in per for s in p)
        log("# %s share per member: %s" % (name, [len(p) for p in per]))
        check_eq(allseq, want, "group %s: every message delivered to exactly one member" % name)
        check(all(p == sorted(p) for p in per), "group %s: each member's share in order" % name)
        # Not a spec rule, but what shared subscriptions are for: spreading
        # load. A member that never gets anything out of hundreds is a bug.
        check(all(len(p) > 0 for p in per), "group %s: every member gets part of the load "
              "(shares %s)" % (name, [len(p) for p in per]))
        return per

    group_ok(g1, "g1", list(range(N)))
    group_ok(g2, "g2", list(range(N)))

    # A member leaves: the others get everything that follows.
    g1[0].disconnect()
    for c in g1[1:]:
        with c.cv:
            c.msgs.clear()
    publish_n(pub, "it16/x", N, 100)
    group_ok(g1[1:], "g1 without m0", list(range(N, N + 100)))

    # A member leaves while a stream is flowing. It is the only member on its
    # shard, so messages the publisher's shard already sent there find no
    # member when they arrive: they must go on to the member on another
    # shard, not be dropped (they were acknowledged to the publisher). The
    # leaver never acknowledges, so everything it got is handed over too:
    # the stayer ends up with every message exactly once.
    stay = connected(b, "it16-g4-stay", version=5)
    check_eq(stay.subscribe("$share/g4/it16/s", qos=1), [1], "it16-g4-stay joined g4")
    avoid = {shard_of(b, "it16-g4-stay"), shard_of(b, "it16-pub")}
    M, rounds, nxt = 400, 0, 0
    for i in range(60):
        if rounds == 10:
            break
        cid = "it16-g4-l%d" % i
        leaver = Raw(b, version=4)
        leaver.connect(cid)
        if shard_of(b, cid) in avoid:
            leaver.close()
            continue
        leaver.subscribe([("$share/g4/it16/s", 1)])
        with stay.cv:
            stay.msgs.clear()
        mids = [pub.publish("it16/s", str(k), qos=1, wait=False) for k in range(nxt, nxt + M)]
        wait_until(lambda: len(seqs(stay, "it16/s")) >= M // 4, 10, 0.001)
        leaver.close()
        pub.wait_acked(mids, 20)
        wait_until(lambda: len(seqs(stay, "it16/s")) >= M, 10)
        time.sleep(0.2)
        got = seqs(stay, "it16/s")
        check_eq(sorted(got), list(range(nxt, nxt + M)),
                 "round %d: member %s left mid-stream (shard %s): the other member got all "
                 "%d exactly once" % (rounds, cid, shard_of(b, cid), M))
        nxt += M
        rounds += 1
    check(rounds == 10, "10 rounds with the leaver on a shard of its own (%d)" % rounds)

    # No Local on a shared subscription.
    r = Raw(b, version=5)
    r.connect("it16-nolocal", version=5)
    r.send(subscribe_pkt(1, [("$share/g3/it16/x", 0x04 | 1)], 5))
    got = r.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x82,
          "5.0 shared subscription with No Local: DISCONNECT 0x82", got)

    for c in g1[1:] + g2 + [plain, pub, stay]:
        c.disconnect()


run(main)
