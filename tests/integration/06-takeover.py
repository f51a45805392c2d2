#!/usr/bin/python3
"""06: session takeover. A second CONNECT with a client id already connected
closes the first connection [MQTT-3.1.4-3]; a 5.0 first connection gets
DISCONNECT 0x8E (Session taken over) first. The new connection inherits the
session (subscriptions) unless it asks for a clean one."""
from harness import *


def main():
    b = Broker().start()
    pub = connected(b, "it06-pub")

    for ver in (4, 5):
        cid = "it06-same-v%d" % ver
        kw = {"cprops": [(0x11, 300)]} if ver == 5 else {}
        a = Raw(b, version=ver)
        # 3.1.1: clean_session=0 so the session outlives the connection;
        # 5.0: clean start with a session expiry does the same.
        a.connect(cid, version=ver, clean=(ver == 5), **kw)
        check_eq(a.subscribe("it06/v%d" % ver), [1], "v%d first connection subscribed" % ver)

        bb = Raw(b, version=ver)
        ack = bb.connect(cid, version=ver, clean=False, **kw)
        check_eq(ack.session_present, 1, "v%d second connection: CONNACK 0, session_present=1" %
                 ver)
        got = a.wait_closed(3)
        if ver == 5:
            check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x8E,
                  "v5 first connection got DISCONNECT 0x8E (session taken over), then closed",
                  got)
        else:
            check_eq(got, [], "v3.1.1 first connection closed")

        pub.publish("it06/v%d" % ver, "after-takeover", qos=1)
        p = bb.recv_publish(5)
        check(p.topic == "it06/v%d" % ver and p.payload == b"after-takeover",
              "v%d second connection receives on the inherited subscription" % ver, p)
        check(bb.is_open(0.3), "v%d second connection stays open" % ver)

        # Third connection with a clean start: no session, no subscription.
        cc = Raw(b, version=ver)
        ack = cc.connect(cid, version=ver, clean=True)
        check_eq(ack.session_present, 0, "v%d clean takeover: session_present=0" % ver)
        got = bb.wait_closed(3)
        check(got == [] if ver == 4 else (len(got) == 1 and got[0].rc == 0x8E),
              "v%d second connection closed by the clean takeover (v5: DISCONNECT 0x8E)" % ver, got)
        pub.publish("it06/v%d" % ver, "after-clean", qos=1)
        try:
            p = cc.recv(1.0)
            check(False, "v%d clean takeover dropped the old subscription" % ver, p)
        except TimeoutError:
            check(True, "v%d clean takeover dropped the old subscription" % ver)
        cc.send(disconnect_pkt(ver))
        cc.close()

    # Across versions: a 3.1.1 connection taken over by a 5.0 one.
    a = Raw(b, version=4)
    a.connect("it06-mixed", version=4)
    c5 = Raw(b, version=5)
    c5.connect("it06-mixed", version=5)
    check_eq(a.wait_closed(3), [], "3.1.1 connection taken over by a 5.0 one is closed")
    check(c5.is_open(0.3), "the 5.0 connection stays")

    # Rapid repeated takeovers end with exactly one live connection.
    conns = []
    for i in range(10):
        r = Raw(b, version=4)
        r.connect("it06-rapid", version=4)
        conns.append(r)
    closed = [not r.is_open(0.0) or r.wait_closed(3) == [] for r in conns[:-1]]
    check(all(closed), "10 rapid takeovers: the first 9 connections are closed")
    conns[-1].send(pingreq_pkt())
    conns[-1].expect(13)
    check(True, "the last connection answers PINGREQ")
    pub.disconnect()


run(main)
