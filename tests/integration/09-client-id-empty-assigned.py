#!/usr/bin/python3
"""09: client identifiers. 3.1.1 empty id with clean session is accepted
[MQTT-3.1.3-6], without clean session rejected with CONNACK 0x02
[MQTT-3.1.3-8]; 5.0 empty id gets an Assigned Client Identifier property
[MQTT-3.2.2-16], unique per connection; 3.1 requires 1-23 characters; ids up
to the broker's limit (256 bytes) work, longer ones are refused."""
from harness import *


def roundtrip(r, topic):
    r.subscribe(topic)
    r.publish(topic, "rt", qos=0)
    p = r.recv_publish(5)
    return p.topic == topic and p.payload == b"rt"


def main():
    b = Broker().start()

    r = Raw(b, version=4)
    ack = r.connect("", version=4, clean=True)
    check_eq((ack.rc, ack.session_present), (0, 0),
             "3.1.1 empty client id, clean session: CONNACK 0 session_present=0")
    check(roundtrip(r, "it09/v4"), "3.1.1 empty-id client can subscribe and receive")

    r2 = Raw(b, version=4)
    ack2 = r2.connect("", version=4, clean=True)
    check_eq(ack2.rc, 0, "a second 3.1.1 empty-id client is accepted too")
    check(r.is_open(0.3), "... and does not take over the first one")

    r = Raw(b, version=4)
    ack = r.connect("", version=4, clean=False, expect_rc=None)
    check_eq(ack.rc, 0x02, "3.1.1 empty client id without clean session: CONNACK 0x02")
    check_eq(r.wait_closed(3), [], "... and the connection is closed")

    ids = []
    for i in range(2):
        r = Raw(b, version=5)
        ack = r.connect("", version=5, clean=True)
        aid = ack.props.get(0x12)
        check(ack.rc == 0 and aid, "5.0 empty client id: CONNACK 0 with an Assigned Client "
              "Identifier", ack)
        ids.append(aid)
        check(roundtrip(r, "it09/v5/%d" % i), "5.0 client with assigned id can subscribe and receive")
    check(ids[0] != ids[1], "two assigned client identifiers differ", ids)

    r = Raw(b, version=5)
    ack = r.connect("it09-named", version=5)
    check(0x12 not in ack.props, "5.0 named client: no Assigned Client Identifier", ack)

    r = Raw(b, version=3)
    ack = r.connect("", version=3, clean=True, expect_rc=None)
    check_eq(ack.rc, 0x02, "3.1 (MQIsdp) empty client id: CONNACK 0x02")

    long_ok = "L" * 256
    r = Raw(b, version=4)
    ack = r.connect(long_ok, version=4, expect_rc=None)
    check_eq(ack.rc, 0, "3.1.1 256-byte client id accepted")
    # CLIENT_ID_LEN_MAX in core/limits.h (ringmq's own limit).
    for v, want in (((4, 0x02), (5, 0x85)) if FLAVOUR == "ringmq" else ()):
        r = Raw(b, version=v)
        ack = r.connect("L" * 300, version=v, expect_rc=None)
        check_eq(ack.rc, want, "v%d 300-byte client id refused with CONNACK %#x" % (v, want))
        r.wait_closed(3)


run(main)
