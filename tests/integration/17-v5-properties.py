#!/usr/bin/python3
"""17: MQTT 5 properties end to end. Publish properties (payload format,
content type, response topic, correlation data, user properties in order)
reach subscribers unchanged [MQTT-3.3.2-15..18]; subscription identifiers are
delivered, all of them on one copy [MQTT-3.3.4-4]; message expiry drops stale
queued messages and counts down the rest [MQTT-3.3.2-5, -6]; client topic
aliases work within the advertised maximum and 0x94 beyond it; the client's
Maximum Packet Size and Receive Maximum are respected [MQTT-3.1.2-25],
[MQTT-3.3.4-9]; will delay postpones the will, a reconnect cancels it; an
unknown authentication method is refused."""
import threading
from harness import *


def main():
    b = Broker().start()
    pub = Raw(b, version=5)
    pack = pub.connect("it17-pub", version=5)
    tam = pack.props.get(0x22, 0)
    pid = [100]

    def publish(topic, payload, qos=1, pprops=None):
        pid[0] += 1
        return pub.publish(topic, payload, qos=qos, pid=pid[0], pprops=pprops)

    # --- property passthrough
    sub = Raw(b, version=5)
    sub.connect("it17-sub", version=5)
    sub.subscribe([("it17/p/#", 1)])
    v4 = connected(b, "it17-v4")
    v4.subscribe("it17/p/#", qos=1)
    users = [("k", "v1"), ("k", "v2"), ("a", "b")]
    publish("it17/p/x", "hello", pprops=[(0x01, 1), (0x03, "text/plain"), (0x08, "it17/resp"),
                                           (0x09, b"\x01\x02")] + [(0x26, u) for u in users])
    p = sub.recv_publish(5)
    check_eq((p.props.get(0x01), p.props.get(0x03), p.props.get(0x08), p.props.get(0x09)),
             (1, "text/plain", "it17/resp", b"\x01\x02"),
             "payload format, content type, response topic, correlation data passed through")
    check_eq(p.user_props, users, "user properties passed through, in order")
    check(0x23 not in p.props, "no topic alias towards a client that allowed none", p)
    m = v4.wait_topic("it17/p/x")
    check_eq(m.payload, b"hello", "a 3.1.1 subscriber gets the same message (payload only)")
    v4.disconnect()

    # --- subscription identifiers
    s = Raw(b, version=5)
    ack = s.connect("it17-subid", version=5)
    if ack.props.get(0x29, 1) == 0:
        s.send(subscribe_pkt(1, [("it17/sid/#", 1)], 5, sprops=[(0x0B, 42)]))
        got = s.wait_closed(3)
        check(len(got) == 1 and got[0].rc == 0xA1, "subscription ids unavailable: 0xA1", got)
    else:
        s.subscribe([("it17/sid/#", 1)], pid=1, sprops=[(0x0B, 42)])
        s.subscribe([("it17/sid/+", 0)], pid=2, sprops=[(0x0B, 7)])
        publish("it17/sid/x", "both")
        p = s.recv_publish(5)
        check(p.payload == b"both" and sorted(p.props.get(0x0B, [])) == [7, 42] and p.qos == 1,
              "overlapping subscriptions with ids 42 and 7: one QoS 1 copy carrying both ids", p)
        publish("it17/sid/a/b", "one")
        p = s.recv_publish(5)
        check(p.payload == b"one" and p.props.get(0x0B) == [42],
              "a message matching only '#' carries id 42 only", p)
        try:
            extra = s.recv(0.5)
            check(False, "no second copy", extra)
        except TimeoutError:
            check(True, "no second copy of either message")
        s.send(subscribe_pkt(3, [("it17/sid/z", 1)], 5, sprops=[(0x0B, 0)]))
        got = s.wait_closed(3)
        check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x82,
              "subscription identifier 0: DISCONNECT 0x82", got)

    # --- message expiry on a queued message
    e = Raw(b, version=5)
    e.connect("it17-exp", version=5, cprops=[(0x11, 60)])
    e.subscribe([("it17/exp", 1)])
    e.send(disconnect_pkt(5))
    e.wait_closed(3)
    publish("it17/exp", "short", pprops=[(0x02, 1)])
    publish("it17/exp", "long", pprops=[(0x02, 100)])
    t0 = time.monotonic()
    time.sleep(2.2)
    e = Raw(b, version=5)
    ack = e.connect("it17-exp", version=5, clean=False, cprops=[(0x11, 60)])
    check_eq(ack.session_present, 1, "expiry: session resumed")
    p = e.recv_publish(5)
    waited = time.monotonic() - t0
    left = p.props.get(0x02)
    check(p.payload == b"long" and left is not None and 100 - waited - 1.5 <= left < 100,
          "message with expiry 1 s dropped; expiry 100 s delivered with %s s left after %.1f s" %
          (left, waited), p)
    try:
        extra = e.recv(0.7)
        check(False, "nothing else queued", extra)
    except TimeoutError:
        check(True, "the expired message never arrives")

    # --- client topic aliases
    ta = Raw(b, version=5)
    ta.connect("it17-alias-sub", version=5)
    ta.subscribe([("it17/alias", 1)])
    if tam >= 1:
        publish("it17/alias", "a1", pprops=[(0x23, 1)])
        publish("", "a2", pprops=[(0x23, 1)])
        got = [ta.recv_publish(5), ta.recv_publish(5)]
        check_eq([(p.topic, p.payload) for p in got], [("it17/alias", b"a1"), ("it17/alias", b"a2")],
                 "topic alias 1 set, then used with an empty topic")
    bad = Raw(b, version=5)
    bad.connect("it17-alias-bad", version=5)
    bad.send(publish_pkt("it17/alias", "x", 1, 1, version=5, pprops=[(0x23, tam + 1)]))
    got = bad.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x94,
          "topic alias %d above Topic Alias Maximum %d: DISCONNECT 0x94" % (tam + 1, tam), got)
    bad = Raw(b, version=5)
    bad.connect("it17-alias-unset", version=5)
    bad.send(publish_pkt("", "x", 1, 1, version=5, pprops=[(0x23, 1)] if tam >= 1 else []))
    got = bad.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc in (0x82, 0x94),
          "empty topic with an alias never set: DISCONNECT 0x82 (or 0x94)", got)

    # --- the client's Maximum Packet Size
    mp = Raw(b, version=5)
    mp.connect("it17-maxpkt", version=5, cprops=[(0x27, 128)])
    mp.subscribe([("it17/mps", 0)])
    publish("it17/mps", b"L" * 300)
    publish("it17/mps", b"small")
    p = mp.recv_publish(5)
    check_eq(p.payload, b"small", "a message bigger than the client's Maximum Packet Size (128) "
             "is not sent; the next one is")
    check(mp.is_open(0.2), "that client stays connected")

    # --- the client's Receive Maximum
    rm = Raw(b, version=5)
    rm.connect("it17-recvmax", version=5, cprops=[(0x21, 2)])
    rm.subscribe([("it17/rm", 1)])
    for i in range(6):
        publish("it17/rm", str(i))
    held = []
    try:
        while True:
            held.append(rm.expect(3, 1.0))
    except Fail:
        pass
    check_eq(len(held), 2, "client Receive Maximum 2: exactly 2 unacknowledged QoS 1 PUBLISHes")
    seen = [int(p.payload) for p in held]
    for p in held:
        rm.send(ack_pkt(4, p.pid, version=5))
    while len(seen) < 6:
        try:
            p = rm.expect(3, 2.0)
        except Fail:
            break
        seen.append(int(p.payload))
        rm.send(ack_pkt(4, p.pid, version=5))
    check_eq(seen, list(range(6)), "the rest follow as acknowledgements arrive, in order")

    # --- will delay, and a reconnect that cancels it
    ws = connected(b, "it17-will-sub", version=5)
    ws.subscribe("it17/will/#", qos=1)
    w1 = Raw(b, version=5)
    w1.connect("it17-wd", version=5, cprops=[(0x11, 60)],
               will=("it17/will/delayed", "late", 1, False), will_props=[(0x18, 2)])
    w2 = Raw(b, version=5)
    w2.connect("it17-wd2", version=5, cprops=[(0x11, 60)],
               will=("it17/will/cancelled", "never", 1, False), will_props=[(0x18, 3)])
    t0 = time.monotonic()
    w1.close()
    w2.close()
    time.sleep(0.5)
    w2 = Raw(b, version=5)
    w2.connect("it17-wd2", version=5, clean=False, cprops=[(0x11, 60)])
    time.sleep(0.5)
    check_eq(ws.messages(), [], "no will in the first second of a 2 s will delay")
    m = ws.wait_topic("it17/will/delayed", 2 + SLACK_S)
    check(1.5 <= m.t - t0 <= 2 + SLACK_S, "delayed will published %.2f s after the drop "
          "(will delay 2 s)" % (m.t - t0))
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    check_eq(ws.messages(lambda m: m.topic == "it17/will/cancelled"), [],
             "reconnecting within the will delay cancels the will")
    ws.disconnect()

    # --- an authentication method the broker does not know
    au = Raw(b, version=5)
    ack = au.connect("it17-auth", version=5, cprops=[(0x15, "NO-SUCH-METHOD")], expect_rc=None)
    check(ack.rc in (0x8C, 0x87), "unknown authentication method: CONNACK 0x8C or 0x87", ack)
    check_eq(au.wait_closed(3), [], "... then closed")


run(main)
