#!/usr/bin/python3
"""03: retained messages. A retained publish is stored and delivered to later
subscribers with the retain flag set; a new one replaces it; an empty payload
deletes it; live delivery to an existing subscriber has retain=0 [MQTT-3.3.1-9]
unless a 5.0 subscriber asked for Retain As Published; 5.0 Retain Handling 2
sends nothing on subscribe."""
from harness import *

QUIET_S = 1.0  # how long "nothing arrives" is watched


def fresh_sub(b, name, filt, qos=1, version=4):
    c = connected(b, name, version=version)
    c.subscribe(filt, qos=qos)
    return c


def main():
    b = Broker().start()
    pub = connected(b, "it03-pub")

    pub.publish("it03/a", "one", qos=1, retain=True)
    s1 = fresh_sub(b, "it03-s1", "it03/a")
    m = s1.wait_topic("it03/a")
    check(m.payload == b"one" and m.retain, "new subscriber gets stored retained 'one' with retain=1",
          m)

    # Live delivery to the existing subscriber: retain flag cleared.
    pub.publish("it03/a", "two", qos=1, retain=True)
    m = s1.wait_messages(2)[1]
    check(m.payload == b"two" and not m.retain,
          "existing subscriber gets live retained publish 'two' with retain=0", m)

    s2 = fresh_sub(b, "it03-s2", "it03/a")
    s2.wait_messages(1)
    time.sleep(QUIET_S)
    got = s2.messages()
    check(len(got) == 1 and got[0].payload == b"two" and got[0].retain,
          "replacement: a later subscriber gets only 'two' (retain=1)", got)

    # Retained delivery QoS is min(message QoS, granted QoS).
    s3 = fresh_sub(b, "it03-s3", "it03/a", qos=0)
    m = s3.wait_topic("it03/a")
    check_eq(m.qos, 0, "retained QoS 1 message to a QoS 0 subscription arrives at QoS 0")

    # Delete with an empty retained payload.
    pub.publish("it03/a", b"", qos=1, retain=True)
    s4 = fresh_sub(b, "it03-s4", "it03/a")
    time.sleep(QUIET_S)
    check_eq(s4.messages(), [], "after an empty retained publish, a new subscriber gets nothing")

    # Wildcard subscribe collects every stored retained message once.
    for i in range(5):
        pub.publish("it03/w/%d" % i, "w%d" % i, qos=1, retain=True)
    pub.publish("it03/w/1", "w1b", qos=1, retain=True)
    pub.publish("it03/w/nonretained", "x", qos=1, retain=False)
    s5 = fresh_sub(b, "it03-s5", "it03/w/#")
    s5.wait_messages(5)
    time.sleep(QUIET_S)
    got = sorted((m.topic, m.payload, m.retain) for m in s5.messages())
    want = sorted([("it03/w/%d" % i, b"w%d" % i, True) for i in (0, 2, 3, 4)] +
                  [("it03/w/1", b"w1b", True)])
    check_eq(got, want, "it03/w/# gets the 5 stored retained messages, latest value each")

    # A retained QoS 0 publish is stored too.
    pub.publish("it03/q0", "zero", qos=0, retain=True)
    pub.publish("it03/barrier", "b", qos=1)  # acked => the QoS 0 publish was handled
    s6 = fresh_sub(b, "it03-s6", "it03/q0")
    m = s6.wait_topic("it03/q0")
    check(m.payload == b"zero" and m.retain, "retained QoS 0 message stored and delivered", m)

    # MQTT 5 subscription options, observed on the wire.
    pub.publish("it03/v5", "five", qos=1, retain=True)
    r = Raw(b, version=5)
    r.connect("it03-raw5", version=5)
    codes = r.subscribe([("it03/v5", 1 | (2 << 4))], pid=1)  # retain handling 2
    check_eq(codes, [1], "5.0 subscribe with retain handling 2 granted QoS 1")
    codes = r.subscribe([("it03/rap", 1 | 0x08)], pid=2)  # retain as published
    check_eq(codes, [1], "5.0 subscribe with retain-as-published granted QoS 1")
    pub.publish("it03/rap", "live", qos=1, retain=True)
    p = r.recv_publish(5)
    check(p.topic == "it03/rap" and p.retain,
          "retain handling 2 sent no stored message, and retain-as-published keeps retain=1 "
          "on live delivery", p)
    codes = r.subscribe([("it03/v5", 1 | (1 << 4))], pid=3)  # retain handling 1: existing sub
    check_eq(codes, [1], "re-subscribe with retain handling 1 granted")
    try:
        p = r.recv(QUIET_S)
        check(False, "retain handling 1 on an existing subscription sends no retained message", p)
    except TimeoutError:
        check(True, "retain handling 1 on an existing subscription sends no retained message")
    r.close()

    for c in (pub, s1, s2, s3, s4, s5, s6):
        c.disconnect()
    if FLAVOUR == "ringmq":
        bounded_store()


def bounded_store():
    """max_retained_messages bounds the store: new topics beyond it are
    delivered but not kept; replacing and deleting still work."""
    b = Broker(max_retained_messages=3, sys_interval=1)
    b.start()
    pub = connected(b, "it03-bpub")
    live = connected(b, "it03-blive")
    live.subscribe("it03b/#", qos=1)
    for i in range(5):
        pub.publish("it03b/%d" % i, "v%d" % i, qos=1, retain=True)
    live.wait_messages(5, 5)
    check_eq(len(live.messages()), 5, "over the bound: every message is still delivered live")
    s = connected(b, "it03-bsub")
    s.subscribe("it03b/#", qos=1)
    time.sleep(QUIET_S)
    check_eq(sorted(m.topic for m in s.messages()), ["it03b/0", "it03b/1", "it03b/2"],
             "max_retained_messages 3: the first three topics are kept, later ones are not")
    pub.publish("it03b/1", "replaced", qos=1, retain=True)
    pub.publish("it03b/2", "", qos=1, retain=True)
    pub.publish("it03b/4", "v4-again", qos=1, retain=True)
    s2 = connected(b, "it03-bsub2")
    s2.subscribe("it03b/#", qos=1)
    time.sleep(QUIET_S)
    check_eq(sorted((m.topic, m.payload) for m in s2.messages()),
             [("it03b/0", b"v0"), ("it03b/1", b"replaced"), ("it03b/4", b"v4-again")],
             "at the bound, replacing and deleting work, and a deletion makes room")
    sysc = connected(b, "it03-bsys")
    sysc.subscribe("$SYS/broker/retained messages/#", qos=0)
    got = wait_until(lambda: {m.topic: m.payload for m in sysc.messages()}
                     if len(sysc.messages()) >= 2 else None, 5)
    check(got and int(got.get("$SYS/broker/retained messages/refused", b"0")) == 2,
          "$SYS counts the two refused retained messages", got)
    for c in (pub, live, s, s2, sysc):
        c.disconnect()


run(main)
