#!/usr/bin/python3
"""01: mosquitto_sub -t '#' -v sees what mosquitto_pub publishes, in MQTT
3.1.1 and 5.0, at each QoS, and across protocol versions."""
from harness import *


def one(b, sub_v, pub_v, qos, n):
    topic = "it01/%s/%s/q%d" % (sub_v, pub_v, qos)
    payload = "hello-%d" % n
    sub = MosqSub(b, "-V", sub_v, "-i", "it01-sub-%d" % n, "-t", "#", "-q", str(qos), "-v",
                  "-C", "1", "-W", "10")
    sub.wait_suback()
    rc, out = mosq_pub(b, "-V", pub_v, "-i", "it01-pub-%d" % n, "-t", topic, "-m", payload,
                       "-q", str(qos))
    check_eq(rc, 0, "mosquitto_pub -V %s -q %d exits 0 (%s)" % (pub_v, qos, out.strip()))
    rc = sub.wait_exit(10)
    check_eq(rc, 0, "mosquitto_sub -V %s -C 1 exits 0 after one message" % sub_v)
    check_eq(sub.data_lines(), ["%s %s" % (topic, payload)],
             "mosquitto_sub -V %s -t '#' -v printed '%s %s'" % (sub_v, topic, payload))


def main():
    b = Broker().start()
    n = 0
    for v in ("mqttv311", "mqttv5"):
        for qos in (0, 1, 2):
            one(b, v, v, qos, n)
            n += 1
    one(b, "mqttv311", "mqttv5", 1, n)
    one(b, "mqttv5", "mqttv311", 2, n + 1)

    # A retained message reaches a later mosquitto_sub with -R off (default).
    rc, _ = mosq_pub(b, "-V", "mqttv5", "-t", "it01/retained", "-m", "kept", "-r", "-q", "1")
    check_eq(rc, 0, "mosquitto_pub -r exits 0")
    sub = MosqSub(b, "-V", "mqttv311", "-t", "it01/retained", "-v", "-C", "1", "-W", "5")
    check_eq(sub.wait_exit(8), 0, "mosquitto_sub got the retained message")
    check_eq(sub.data_lines(), ["it01/retained kept"], "retained payload printed")


run(main)
