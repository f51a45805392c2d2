#!/usr/bin/python3
"""15: configured limits as clients see them. max_qos 1: 5.0 CONNACK Maximum
QoS 1, subscriptions granted at most QoS 1, a 5.0 QoS 2 PUBLISH is refused
with DISCONNECT 0x9B [MQTT-3.2.2-11]. retain_available false: CONNACK Retain
Available 0, a 5.0 retained PUBLISH gets DISCONNECT 0x9A [MQTT-3.2.2-14].
max_inflight_messages 5: a subscriber that does not acknowledge has at most 5
QoS 1 messages in flight, the rest following as it acknowledges, in order."""
from harness import *

INFLIGHT = 5


def main():
    b = Broker(max_qos=1, retain_available="false", max_inflight_messages=INFLIGHT,
               max_queued_messages=1000).start()

    r = Raw(b, version=5)
    ack = r.connect("it15-props", version=5)
    check_eq(ack.props.get(0x24), 1, "5.0 CONNACK Maximum QoS 1")
    check_eq(ack.props.get(0x25), 0, "5.0 CONNACK Retain Available 0")
    # Receive Maximum in CONNACK limits the client's publishes to the broker;
    # max_inflight_messages is the other direction, so it is not asserted.
    log("# CONNACK Receive Maximum: %s" % ack.props.get(0x21))
    check_eq(r.subscribe([("it15/a", 2)]), [1], "5.0 SUBSCRIBE QoS 2 granted QoS 1")
    r.send(publish_pkt("it15/a", "q2", 2, 3, version=5))
    got = r.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x9B,
          "5.0 QoS 2 PUBLISH above Maximum QoS: DISCONNECT 0x9B", got)

    r = Raw(b, version=5)
    r.connect("it15-retain", version=5)
    r.send(publish_pkt("it15/r", "kept?", 1, 4, retain=True, version=5))
    got = r.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x9A,
          "5.0 retained PUBLISH with retain unavailable: DISCONNECT 0x9A", got)

    r = Raw(b, version=4)
    r.connect("it15-v4", version=4)
    check_eq(r.subscribe([("it15/b", 2)]), [1], "3.1.1 SUBSCRIBE QoS 2 granted QoS 1")

    # Flow control towards a slow subscriber.
    for v in (4, 5):
        topic = "it15/flow/v%d" % v
        s = Raw(b, version=v)
        s.connect("it15-slow-v%d" % v, version=v)
        s.subscribe([(topic, 1)])
        pub = connected(b, "it15-pub-v%d" % v)
        mids = [pub.publish(topic, str(i), qos=1, wait=False) for i in range(20)]
        pub.wait_acked(mids, 10)
        held = []
        try:
            while True:
                held.append(s.expect(3, 1.0))
        except Fail:
            pass
        check_eq(len(held), INFLIGHT,
                 "v%d subscriber that does not ack gets exactly %d unacknowledged PUBLISHes" %
                 (v, INFLIGHT))
        seen = [int(p.payload) for p in held]
        for p in held:
            s.send(ack_pkt(4, p.pid, version=v))
        while len(seen) < 20:
            try:
                p = s.expect(3, 2.0)
            except Fail:
                break
            seen.append(int(p.payload))
            s.send(ack_pkt(4, p.pid, version=v))
        check_eq(seen, list(range(20)),
                 "v%d after acknowledging, the other %d follow, in order" % (v, 20 - INFLIGHT))
        pub.disconnect()


run(main)
