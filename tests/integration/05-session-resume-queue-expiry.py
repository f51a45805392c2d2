#!/usr/bin/python3
"""05: persistent sessions. A 3.1.1 clean_session=0 subscriber that went
away gets the 50 QoS 1 messages published meanwhile, in order, with
session_present=1; max_queued_messages bounds that queue; clean_session=1
discards the session; 5.0 session expiry 0 ends the session at disconnect,
>0 keeps it, and a short expiry really expires."""
from harness import *

N = 50


def publish_n(pub, topic, n, qos=1):
    mids = [pub.publish(topic, "m%d" % i, qos=qos, wait=False) for i in range(n)]
    if qos:
        pub.wait_acked(mids, 20)


def seqs(msgs):
    return [int(m.payload[1:]) for m in msgs]


def settle(c, n_min, quiet=1.0, timeout=10.0):
    """Waits for at least n_min messages, then until none arrived for quiet s."""
    if n_min:
        c.wait_messages(n_min, timeout)
    last = -1
    while len(c.messages()) != last:
        last = len(c.messages())
        time.sleep(quiet)
    return c.messages()


def disconnect_seen(b, c, cid):
    """Disconnects c and waits until the broker has taken the DISCONNECT:
    paho closes at once, and a publish racing ahead of it would reach the
    still-connected session (in flight, not queued)."""
    needle = "client '%s': disconnected" % cid
    before = len(b.log_grep(needle))
    c.disconnect()
    wait_until(lambda: len(b.log_grep(needle)) > before, 5.0 + SLACK_S)


def main():
    b = Broker(max_queued_messages=1000, persistent_client_expiration="1h").start()
    pub = connected(b, "it05-pub")

    # --- 3.1.1 resume
    s = Client(b, "it05-sub", version=4, clean=False)
    sp, _, _ = s.connect()
    check_eq(sp, 0, "first clean_session=0 connect: session_present=0")
    s.subscribe("it05/q", qos=1)
    disconnect_seen(b, s, "it05-sub")
    publish_n(pub, "it05/q", N)
    s = Client(b, "it05-sub", version=4, clean=False)
    sp, _, _ = s.connect()
    check_eq(sp, 1, "reconnect with clean_session=0: session_present=1")
    got = settle(s, N)
    check_eq(seqs(got), list(range(N)), "all %d queued QoS 1 messages, once each, in order" % N)
    check(all(m.qos == 1 for m in got), "queued messages delivered at QoS 1")
    # The subscription survived too: a live publish arrives.
    pub.publish("it05/q", "m999", qos=1)
    s.wait_messages(N + 1)
    check(True, "subscription kept in the resumed session")
    s.disconnect()

    # --- clean_session=1 discards the stored session
    publish_n(pub, "it05/q", 3)
    s = Client(b, "it05-sub", version=4, clean=True)
    sp, _, _ = s.connect()
    check_eq(sp, 0, "clean_session=1 connect: session_present=0")
    time.sleep(0.5)
    check_eq(s.messages(), [], "clean_session=1: queued messages discarded")
    s.disconnect()
    s = Client(b, "it05-sub", version=4, clean=False)
    sp, _, _ = s.connect()
    check_eq(sp, 0, "after a clean session, clean_session=0 connect: session_present=0")
    publish_n(pub, "it05/q", 2)
    time.sleep(0.5)
    check_eq(s.messages(), [], "the old subscription is gone")
    s.disconnect()

    # --- 5.0 session expiry
    def v5_cycle(cid, expiry, wait_s):
        s = Client(b, cid, version=5, clean=True, session_expiry=expiry)
        s.connect()
        s.subscribe("it05/v5/" + cid, qos=1)
        s.disconnect()
        if wait_s:
            time.sleep(wait_s)
        publish_n(pub, "it05/v5/" + cid, 5)
        s = Client(b, cid, version=5, clean=False, session_expiry=expiry)
        sp, _, _ = s.connect()
        got = settle(s, 0, quiet=0.7)
        s.disconnect()
        return sp, seqs(got)

    sp, got = v5_cycle("it05-v5-e0", 0, 0)
    check_eq((sp, got), (0, []), "5.0 session expiry 0: session ends at disconnect "
             "(session_present=0, nothing queued)")
    sp, got = v5_cycle("it05-v5-e60", 60, 0)
    check_eq((sp, got), (1, list(range(5))), "5.0 session expiry 60: session_present=1 and the "
             "5 messages published while away")
    sp, got = v5_cycle("it05-v5-e1", 1, 1.0 + SLACK_S)
    check_eq((sp, got), (0, []), "5.0 session expiry 1 s, back after %.0f s: session gone" %
             (1.0 + SLACK_S))

    # --- max_queued_messages bound (separate broker: limit 10)
    b2 = Broker(max_queued_messages=10, max_inflight_messages=20).start()
    pub2 = connected(b2, "it05-pub2")
    s = Client(b2, "it05-q10", version=4, clean=False)
    s.connect()
    s.subscribe("it05/q10", qos=1)
    disconnect_seen(b2, s, "it05-q10")
    publish_n(pub2, "it05/q10", N)
    s = Client(b2, "it05-q10", version=4, clean=False)
    sp, _, _ = s.connect()
    check_eq(sp, 1, "max_queued_messages 10: session_present=1")
    got = seqs(settle(s, 1))
    log("# queued messages received with max_queued_messages 10: %s" % got)
    check_eq(len(got), 10, "max_queued_messages 10: exactly 10 of %d delivered" % N)
    check(got == sorted(set(got)), "the 10 kept messages arrive in publish order", got)
    # Which ten: mosquitto keeps the oldest (drops new messages once full).
    # ringmq's DESIGN leaves the choice to the broker; report, don't assert.
    log("# kept: %s" % ("the oldest 10" if got == list(range(10)) else
                        "the newest 10" if got == list(range(N - 10, N)) else "other: %s" % got))
    s.disconnect()
    pub.disconnect()
    pub2.disconnect()


run(main)
