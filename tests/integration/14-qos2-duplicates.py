#!/usr/bin/python3
"""14: QoS 2 exactly-once. A QoS 2 PUBLISH resent with DUP before PUBREL
(3.1.1: on the same connection; both: after a reconnect) is delivered once
[MQTT-4.3.3]; after PUBCOMP the packet id is free and a new PUBLISH with it
is a new message; PUBREL for an unknown id is answered with PUBCOMP (5.0:
reason 0x92 Packet Identifier not found). Outbound, the broker resends an
unacknowledged PUBLISH (DUP=1) and PUBREL on session resume."""
from harness import *


def main():
    b = Broker().start()
    sub = connected(b, "it14-sub", version=5)
    sub.subscribe("it14/#", qos=2)

    for v in (4, 5):
        topic = "it14/dup/v%d" % v
        cid = "it14-pub-v%d" % v
        kw = {"cprops": [(0x11, 60)]} if v == 5 else {}
        r = Raw(b, version=v)
        r.connect(cid, version=v, clean=(v == 5), **kw)
        r.send(publish_pkt(topic, "once", 2, 7, version=v))
        rec = r.expect(5, what="PUBREC 7")
        check(rec.pid == 7 and rec.rc == 0, "v%d QoS 2 PUBLISH id 7: PUBREC 7" % v, rec)
        if v == 4:
            # 3.1.1 lets a client resend on the same connection; 5.0 only
            # after a reconnect [MQTT-4.4.0-1].
            r.send(publish_pkt(topic, "once", 2, 7, dup=True, version=v))
            rec = r.expect(5, what="PUBREC 7 for the DUP resend")
            check(rec.pid == 7 and rec.rc == 0,
                  "v4 DUP resend on the same connection: PUBREC 7 again", rec)
        r.close()  # the PUBREC "got lost": reconnect and resend
        r = Raw(b, version=v)
        ack = r.connect(cid, version=v, clean=False, **kw)
        check_eq(ack.session_present, 1, "v%d reconnect: session_present=1" % v)
        r.send(publish_pkt(topic, "once", 2, 7, dup=True, version=v))
        rec = r.expect(5, what="PUBREC 7 for the DUP resend after reconnect")
        check(rec.pid == 7 and rec.rc == 0, "v%d DUP resend after reconnect: PUBREC 7" % v, rec)
        r.send(ack_pkt(6, 7, version=v))
        comp = r.expect(7, what="PUBCOMP 7")
        check(comp.pid == 7 and comp.rc == 0, "v%d PUBREL 7: PUBCOMP 7" % v, comp)
        if v == 4:
            # A resent PUBREL (our PUBCOMP "got lost") is answered again.
            r.send(ack_pkt(6, 7, version=v))
            comp = r.expect(7, what="PUBCOMP 7 for a resent PUBREL")
            check_eq(comp.pid, 7, "v4 resent PUBREL 7: PUBCOMP 7")
        # The id is free again: a new message.
        r.send(publish_pkt(topic, "second", 2, 7, version=v))
        r.expect(5, what="PUBREC 7 (new message)")
        r.send(ack_pkt(6, 7, version=v))
        r.expect(7, what="PUBCOMP 7 (new message)")
        r.send(publish_pkt(topic + "/end", "end", 1, 8, version=v))
        r.expect(4, what="PUBACK 8")
        sub.wait_topic(topic + "/end", 5)
        time.sleep(0.3)
        got = [m.payload for m in sub.messages(lambda m: m.topic == topic)]
        check_eq(got, [b"once", b"second"],
                 "v%d subscriber got the duplicated QoS 2 message once, then the new one" % v)

        # PUBREL for an id never used.
        r.send(ack_pkt(6, 999, version=v))
        comp = r.expect(7, what="PUBCOMP 999")
        if v == 5:
            check(comp.pid == 999 and comp.rc == 0x92,
                  "5.0 PUBREL for unknown id 999: PUBCOMP 999 reason 0x92", comp)
        else:
            check(comp.pid == 999 and comp.raw == b"\x70\x02\x03\xe7",
                  "3.1.1 PUBREL for unknown id 999: PUBCOMP 999", comp)
        check(r.is_open(0.3), "v%d connection stays open" % v)
        r.send(disconnect_pkt(v))
        r.close()

    # Outbound: the broker resends an unacknowledged QoS 2 PUBLISH with DUP
    # after a reconnect, and a PUBREL after PUBREC, and the client sees the
    # message once.
    r = Raw(b, version=4)
    r.connect("it14-out", version=4, clean=False)
    r.subscribe([("it14/out", 2)])
    pub = connected(b, "it14-pub")
    pub.publish("it14/out", "o1", qos=2)
    p = r.expect(3, what="PUBLISH to it14-out")
    check(p.qos == 2 and not p.dup, "broker sends QoS 2 PUBLISH (dup=0)", p)
    r.close()  # no PUBREC: the broker must resend on resume
    r = Raw(b, version=4)
    ack = r.connect("it14-out", version=4, clean=False)
    check_eq(ack.session_present, 1, "resume: session_present=1")
    p2 = r.expect(3, what="resent PUBLISH after reconnect")
    check(p2.pid == p.pid and p2.dup and p2.payload == b"o1",
          "unacknowledged QoS 2 PUBLISH resent with DUP=1 and the same id [MQTT-4.4.0-1]", p2)
    r.send(ack_pkt(5, p2.pid))
    rel = r.expect(6, what="PUBREL")
    check_eq(rel.pid, p2.pid, "PUBREC answered with PUBREL")
    r.close()  # no PUBCOMP: the broker must resend PUBREL on resume
    r = Raw(b, version=4)
    r.connect("it14-out", version=4, clean=False)
    rel = r.expect(6, what="resent PUBREL after reconnect")
    check_eq(rel.pid, p2.pid, "unacknowledged PUBREL resent after reconnect")
    r.send(ack_pkt(7, rel.pid))
    try:
        extra = r.recv(0.7)
        check(False, "nothing more after PUBCOMP", extra)
    except TimeoutError:
        check(True, "nothing more after PUBCOMP")
    pub.disconnect()
    sub.disconnect()


run(main)
