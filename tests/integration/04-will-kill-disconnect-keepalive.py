#!/usr/bin/python3
"""04: will messages. Published when a client process is SIGKILLed (3.1.1
and 5.0), when a client goes silent past 1.5 x keepalive, and on a 5.0
DISCONNECT with reason 0x04; NOT published after a normal DISCONNECT."""
from harness import *

CHILD = r'''
import sys, time
import paho.mqtt.client as mqtt
port, cid, ver, topic, payload, mode = sys.argv[1:7]
proto = mqtt.MQTTv5 if ver == "5" else mqtt.MQTTv311
c = mqtt.Client(client_id=cid, protocol=proto, reconnect_on_failure=False)
c.will_set(topic, payload, qos=1, retain=False)
done = []
c.on_connect = lambda *a: done.append(1)
c.connect("127.0.0.1", int(port), keepalive=60)
c.loop_start()
t = time.time()
while not done and time.time() - t < 5:
    time.sleep(0.01)
print("connected" if done else "no-connack", flush=True)
if mode == "disconnect":
    c.disconnect()
    time.sleep(0.5)
    c.loop_stop()
    print("disconnected", flush=True)
    sys.exit(0)
time.sleep(60)
'''

SILENT_S = 1.0


def child(b, cid, ver, topic, payload, mode):
    p = spawn_python(CHILD, b.port, cid, ver, topic, payload, mode)
    line = read_line(p, 8)
    check_eq(line, "connected", "child client %s (v%s) connected" % (cid, ver))
    return p


def main():
    b = Broker().start()
    sub = connected(b, "it04-sub", version=5)
    sub.subscribe("it04/#", qos=1)

    for ver in ("4", "5"):
        topic = "it04/kill/v" + ver
        p = child(b, "it04-kill-v" + ver, ver, topic, "dead-" + ver, "sleep")
        t0 = time.monotonic()
        p.send_signal(signal.SIGKILL)
        p.wait(5)
        m = sub.wait_topic(topic, timeout=5)
        check(m.payload == ("dead-" + ver).encode(),
              "v%s client SIGKILLed: will published (%.2f s after the kill)" %
              (ver, m.t - t0), m)

        topic = "it04/clean/v" + ver
        p = child(b, "it04-clean-v" + ver, ver, topic, "should-not", "disconnect")
        check_eq(read_line(p, 5), "disconnected", "child sent DISCONNECT")
        p.wait(5)
        time.sleep(SILENT_S)
        check_eq(sub.messages(lambda m: m.topic == topic), [],
                 "v%s client with normal DISCONNECT: no will" % ver)

    # 5.0 DISCONNECT with reason 0x04: publish the will anyway.
    r = Raw(b, version=5)
    r.connect("it04-dw", version=5, will=("it04/dw", "with-will", 1, False))
    r.send(disconnect_pkt(5, 0x04))
    r.wait_closed(3)
    m = sub.wait_topic("it04/dw", 5)
    check_eq(m.payload, b"with-will", "5.0 DISCONNECT 0x04 (with will): will published")

    # 5.0 DISCONNECT 0x00 on a raw connection: no will.
    r = Raw(b, version=5)
    r.connect("it04-d0", version=5, will=("it04/d0", "nope", 1, False))
    r.send(disconnect_pkt(5, 0x00))
    r.wait_closed(3)
    time.sleep(SILENT_S)
    check_eq(sub.messages(lambda m: m.topic == "it04/d0"), [],
             "5.0 DISCONNECT 0x00: no will")

    # Keepalive 2 s, then silence: the broker must drop the client once 1.5 x
    # keepalive (3 s) passes without a packet [MQTT-3.1.2-24] and publish its will.
    for ver in (4, 5):
        topic = "it04/ka/v%d" % ver
        r = Raw(b, version=ver)
        r.connect("it04-ka-v%d" % ver, version=ver, keepalive=2,
                  will=(topic, "timed-out", 1, False))
        t0 = time.monotonic()
        m = sub.wait_topic(topic, timeout=3.0 + SLACK_S + 1.0)
        dt = m.t - t0
        check(2.0 <= dt <= 3.0 + SLACK_S,
              "v%d keepalive 2 s, silent: will after %.2f s (want about 3 s: 1.5 x keepalive)" %
              (ver, dt))
        got = r.wait_closed(2)
        if ver == 5:
            # Closing "as if the network had failed" is allowed; a packet, if
            # any, must be DISCONNECT 0x8D Keep Alive timeout.
            check(got == [] or (len(got) == 1 and got[0].type == 14 and got[0].rc == 0x8D),
                  "v5 connection closed (with DISCONNECT 0x8D if any packet: %s)" % got, got)
        else:
            check_eq(got, [], "v3.1.1 connection closed without any packet")

    # Retained will: stored like any retained publish.
    r = Raw(b, version=4)
    r.connect("it04-rw", version=4, will=("it04r/will", "gone", 1, True))
    r.close()  # TCP close without DISCONNECT
    sub.subscribe("it04r/#", qos=1)
    # (the will may already be stored; either way a later subscriber must see it)
    late = connected(b, "it04-late")
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        late.subscribe("it04r/will", qos=1)
        got = wait_until(lambda: late.messages(), 0.5)
        if not got:
            late.unsubscribe("it04r/will")
    check(got and got[0].payload == b"gone" and got[0].retain,
          "retained will stored: a later subscriber gets it with retain=1", got)
    late.disconnect()
    sub.disconnect()


run(main)
