#!/usr/bin/python3
"""10: timers. A TCP connection that never sends CONNECT (or only part of
one) is closed after connect_timeout; PINGREQ gets PINGRESP; a client that
pings within its keepalive stays connected and one that goes silent is
closed after 1.5 x keepalive [MQTT-3.1.2-24], also when it trickles a byte
at a time of a packet it never finishes; 5.0 clients asking for more
than max_keepalive get a Server Keep Alive property."""
import threading
from harness import *

CONNECT_TIMEOUT_S = 2
MAX_KEEPALIVE_S = 10


def timed_close(r, timeout):
    """(seconds until the broker closed, packets before) or (inf, 'still open')."""
    t0 = time.monotonic()
    try:
        got = r.wait_closed(timeout)
    except Fail:
        return float("inf"), "still open after %.1f s" % timeout
    return time.monotonic() - t0, got


def main():
    b = Broker(connect_timeout=CONNECT_TIMEOUT_S, max_keepalive=MAX_KEEPALIVE_S).start()
    results = {}

    # Run the slow timer checks side by side.
    def idle():
        r = Raw(b)
        results["idle"] = timed_close(r, CONNECT_TIMEOUT_S + SLACK_S + 1)

    def partial():
        r = Raw(b)
        r.send(connect_pkt("it10-partial")[:5])
        results["partial"] = timed_close(r, CONNECT_TIMEOUT_S + SLACK_S + 1)

    def pinging(v):
        r = Raw(b, version=v)
        r.connect("it10-ping-v%d" % v, version=v, keepalive=2)
        n = 0
        for i in range(6):
            if i:
                time.sleep(1.0)
            r.send(pingreq_pkt())
            t_last = time.monotonic()
            p = r.recv(2.0)
            if p.type == 13:
                n += 1
        results["ping%d" % v] = (n, r.is_open(0.0))
        # Now go silent: closed within 1.5 x 2 s (+ slack) of the last PINGREQ.
        t0 = time.monotonic()
        dt, got = timed_close(r, 3.0 + SLACK_S + 1)
        results["silent%d" % v] = (dt + (t0 - t_last), got)

    def trickle(v):
        # Keepalive counts whole packets: a PUBLISH sent a byte every 0.5 s
        # never finishes, so the client is silent since its CONNECT.
        r = Raw(b, version=v)
        r.connect("it10-trickle-v%d" % v, version=v, keepalive=2)
        t0 = time.monotonic()
        pkt = publish_pkt("it10/trickle", b"x" * 200, version=v)
        closed_at = None
        for i in range(len(pkt) - 1):
            if time.monotonic() - t0 > 3.0 + SLACK_S + 2:
                break
            if not r.send(pkt[i:i + 1]) or not r.is_open(0.5):
                closed_at = time.monotonic() - t0
                break
        results["trickle%d" % v] = closed_at

    errors = []

    def guard(fn, *a):
        def g():
            try:
                fn(*a)
            except BaseException as e:
                errors.append("%s: %r" % (fn.__name__, e))
        return threading.Thread(target=g)

    ts = [guard(idle), guard(partial), guard(pinging, 4), guard(pinging, 5), guard(trickle, 4),
          guard(trickle, 5)]
    for t in ts:
        t.start()

    # Meanwhile: Server Keep Alive for 5.0 clients asking for more.
    r = Raw(b, version=5)
    ack = r.connect("it10-ka-big", version=5, keepalive=60)
    check_eq(ack.props.get(0x13), MAX_KEEPALIVE_S,
             "5.0 keepalive 60 > max_keepalive %d: CONNACK Server Keep Alive %d" %
             (MAX_KEEPALIVE_S, MAX_KEEPALIVE_S))
    r = Raw(b, version=5)
    ack = r.connect("it10-ka-small", version=5, keepalive=5)
    check(ack.props.get(0x13) in (None, 5),
          "5.0 keepalive 5 <= max_keepalive: no Server Keep Alive (or 5)", ack)
    # 3.1.1 has no Server Keep Alive: clients asking more than max_keepalive
    # are refused, as mosquitto does (README).
    r = Raw(b, version=4)
    ack = r.connect("it10-ka-big-v4", version=4, keepalive=60, expect_rc=None)
    got = r.wait_closed(3)
    check(ack.rc != 0 and got == [],
          "3.1.1 keepalive 60 > max_keepalive %d: refused (CONNACK %#x) and closed" %
          (MAX_KEEPALIVE_S, ack.rc), ack)
    for v in (4, 5):
        r = Raw(b, version=v)
        r.connect("it10-pr-v%d" % v, version=v, keepalive=MAX_KEEPALIVE_S)
        r.send(pingreq_pkt())
        p = r.expect(13, 2)
        check_eq(p.raw, b"\xd0\x00", "v%d PINGREQ answered by PINGRESP d0 00" % v)

    for t in ts:
        t.join(20)
    check_eq(errors, [], "timer threads ran without errors")
    inf = (float("inf"), "not measured")
    for k in ("idle", "partial", "silent4", "silent5"):
        results.setdefault(k, inf)
    results.setdefault("ping4", (0, False))
    results.setdefault("ping5", (0, False))

    dt, got = results["idle"]
    check(got == [] and CONNECT_TIMEOUT_S - 0.5 <= dt <= CONNECT_TIMEOUT_S + SLACK_S,
          "connection without CONNECT closed after %.2f s (connect_timeout %d)" %
          (dt, CONNECT_TIMEOUT_S), got)
    dt, got = results["partial"]
    check(got == [] and CONNECT_TIMEOUT_S - 0.5 <= dt <= CONNECT_TIMEOUT_S + SLACK_S,
          "connection with half a CONNECT closed after %.2f s (connect_timeout %d)" %
          (dt, CONNECT_TIMEOUT_S), got)
    for v in (4, 5):
        n, still = results["ping%d" % v]
        check(n == 6 and still, "v%d keepalive 2 s with PINGREQ every 1 s: %d of 6 PINGRESPs over 5 s, "
              "still connected" % (v, n))
        dt, got = results["silent%d" % v]
        ok = got == [] or (v == 5 and len(got) == 1 and got[0].type == 14 and got[0].rc == 0x8D)
        check(ok and 2.0 <= dt <= 3.0 + SLACK_S,
              "v%d then silent: closed after %.2f s (1.5 x keepalive = 3 s)" % (v, dt), got)
        dt = results.get("trickle%d" % v)
        check(dt is not None and 2.0 <= dt <= 3.0 + SLACK_S + 0.6,
              "v%d keepalive 2 s, then a PUBLISH a byte every 0.5 s that never ends: closed "
              "after %s s (whole packets count, not bytes)" % (v, "%.2f" % dt if dt else "no"))


run(main)
