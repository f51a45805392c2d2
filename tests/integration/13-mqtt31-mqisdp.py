#!/usr/bin/python3
"""13: MQTT 3.1 ("MQIsdp", level 3) clients connect, subscribe and publish,
and interoperate with 3.1.1 and 5.0 clients."""
from harness import *


def sub_pub(b, n, sub_v, pub_v, qos):
    topic = "it13/%s-to-%s/q%d" % (pub_v, sub_v, qos)
    sub = MosqSub(b, "-V", sub_v, "-i", "it13-sub-%d" % n, "-t", "it13/#", "-q", str(qos), "-v",
                  "-C", "1", "-W", "10")
    sub.wait_suback()
    rc, out = mosq_pub(b, "-V", pub_v, "-i", "it13-pub-%d" % n, "-t", topic, "-m", "m%d" % n,
                       "-q", str(qos))
    check_eq(rc, 0, "mosquitto_pub -V %s -q %d exits 0 %s" % (pub_v, qos, out.strip()))
    check_eq(sub.wait_exit(10), 0, "mosquitto_sub -V %s exits 0 after one message" % sub_v)
    check_eq(sub.data_lines(), ["%s m%d" % (topic, n)],
             "mosquitto_sub -V %s printed what mosquitto_pub -V %s sent" % (sub_v, pub_v))


def main():
    b = Broker().start()

    r = Raw(b, version=3)
    ack = r.connect("it13-raw", version=3)
    check_eq(ack.raw, b"\x20\x02\x00\x00", "raw MQIsdp level 3 CONNECT: CONNACK 20 02 00 00")
    check_eq(r.subscribe([("it13/raw", 1)]), [1], "3.1 SUBSCRIBE granted QoS 1")
    r.send(publish_pkt("it13/raw", "self", 1, 3, version=3))
    got = [r.recv(5), r.recv(5)]
    types = sorted(p.type for p in got)
    check_eq(types, [3, 4], "3.1 client gets its PUBACK and its own message back")

    n = 0
    for qos in (0, 1, 2):
        sub_pub(b, n, "mqttv31", "mqttv31", qos)
        n += 1
    sub_pub(b, n, "mqttv311", "mqttv31", 1)
    sub_pub(b, n + 1, "mqttv5", "mqttv31", 2)
    sub_pub(b, n + 2, "mqttv31", "mqttv5", 1)

    # A 3.1 client id longer than 23 characters: 3.1 says the server may
    # refuse it (0x02); accepting it is fine too. Either way, no crash.
    r = Raw(b, version=3)
    ack = r.connect("it13-" + "x" * 30, version=3, expect_rc=None)
    check(ack.rc in (0, 2), "3.1 client id of 35 characters: CONNACK 0 or 2", ack)


run(main)
