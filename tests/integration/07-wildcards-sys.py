#!/usr/bin/python3
"""07: topic filters. '+' and '#' match per [MQTT-4.7]; filters starting
with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1] while
'$foo/#' does; overlapping subscriptions of one client give one copy at the
highest granted QoS; 5.0 No Local."""
from harness import *

TOPICS = ["a", "a/b", "a/b/c", "a/", "/a", "b/b/b", "x/y", "$foo/bar", "$foo", "$SYS/it07"]

# Expected matches, written out by hand (not computed by a matcher of ours).
EXPECT = {
    "#": ["a", "a/b", "a/b/c", "a/", "/a", "b/b/b", "x/y"],
    "$foo/#": ["$foo/bar", "$foo"],
    "$foo/+": ["$foo/bar"],
    "+": ["a"],
    "+/+": ["a/b", "a/", "/a", "x/y"],
    "a/+": ["a/b", "a/"],
    "a/#": ["a", "a/b", "a/b/c", "a/"],
    "+/b/+": ["a/b/c", "b/b/b"],
    "/+": ["/a"],
    "+/#": ["a", "a/b", "a/b/c", "a/", "/a", "b/b/b", "x/y"],
    "a/b": ["a/b"],
    "+/+/+": ["a/b/c", "b/b/b"],
}
MARKER = "zz07-end"


def main():
    b = Broker().start()
    subs = {}
    for i, f in enumerate(EXPECT):
        c = connected(b, "it07-f%d" % i, version=4 if i % 2 else 5)
        codes = c.subscribe([(f, 1), (MARKER, 1)])
        check_eq(codes, [1, 1], "subscribe %r granted QoS 1" % f)
        subs[f] = c

    pub = connected(b, "it07-pub")
    for t in TOPICS:
        pub.publish(t, "payload:" + t, qos=1)
    pub.publish(MARKER, "end", qos=1)
    for f, c in subs.items():
        c.wait_topic(MARKER, 5)
    time.sleep(0.3)
    for f, c in subs.items():
        got = sorted(m.topic for m in c.messages() if m.topic != MARKER)
        check_eq(got, sorted(EXPECT[f]), "filter %r receives exactly %s" % (f, sorted(EXPECT[f])))

    # '#' must never see a '$' topic, the broker's own $SYS included.
    dollar = [m.topic for m in subs["#"].messages() if m.topic.startswith("$")]
    check_eq(dollar, [], "'#' received no '$...' topic (broker $SYS included)")

    # Overlapping subscriptions: one copy at the highest granted QoS.
    for ver in (4, 5):
        o = connected(b, "it07-overlap-v%d" % ver, version=ver)
        codes = o.subscribe([("o7/#", 0), ("o7/+", 2), ("o7/x", 1)])
        check_eq(codes, [0, 2, 1], "v%d overlapping subscribe granted [0, 2, 1]" % ver)
        for qos in (2, 1, 0):
            pub.publish("o7/x", "q%d" % qos, qos=qos)
        pub.publish("o7/end", "end", qos=2)
        o.wait_topic("o7/end", 5)
        time.sleep(0.3)
        # Order across QoS levels is not promised: compare sorted.
        got = sorted((m.payload.decode(), m.qos) for m in o.messages() if m.topic == "o7/x")
        check_eq(got, [("q0", 0), ("q1", 1), ("q2", 2)],
                 "v%d overlapping filters: one copy per publish, at min(publish QoS, 2)" % ver)
        o.disconnect()

    # 5.0 No Local: own publishes are not delivered back.
    nl = connected(b, "it07-nolocal", version=5)
    nl.subscribe([("nl7/#", SubscribeOptions(qos=1, noLocal=True))])
    nl.publish("nl7/own", "own", qos=1)
    pub.publish("nl7/other", "other", qos=1)
    nl.wait_topic("nl7/other", 5)
    time.sleep(0.3)
    check_eq([m.topic for m in nl.messages()], ["nl7/other"],
             "5.0 No Local: only the other client's publish arrives")

    # Unsubscribe stops delivery.
    c = subs["a/b"]
    c.unsubscribe("a/b")
    n = len(c.messages())
    pub.publish("a/b", "after-unsub", qos=1)
    pub.publish(MARKER, "end2", qos=1)
    c.wait_messages(n + 1, 5)
    time.sleep(0.3)
    check_eq([m.topic for m in c.messages()[n:]], [MARKER], "after UNSUBSCRIBE a/b: no a/b")

    for c in list(subs.values()) + [pub, nl]:
        c.disconnect()


run(main)
