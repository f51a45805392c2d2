#!/usr/bin/python3
"""21: normative statements no other test checked (tests/CONFORMANCE.md,
"Gaps worth a test"). Each check names the statements it tests, 5.0 ids
first, 3.1.1 ids as "3.1.1 [MQTT-...]".

- outbound topic aliases: within 1..the client's Topic Alias Maximum, never
  0, the name sent before an alias is used, none left behind by a message
  too large for the client, none carried to a new connection;
- nothing processed after a refused CONNECT (SUBSCRIBE and PUBLISH pipelined
  behind it); Session Present 0 on every refusal, also for a client id that
  has a session; will QoS / retained will refused (0x9B / 0x9A);
- a full Receive Maximum window holds only PUBLISH: PINGREQ, SUBSCRIBE,
  UNSUBSCRIBE and the client's own publishes are still answered;
- UNSUBSCRIBE: one UNSUBACK per packet, reason codes in filter order,
  0x11 for a filter that was not subscribed, exact filter match, QoS 1/2
  deliveries already started still complete;
- PUBACK / PUBREC >= 0x80 end the flow: no PUBREL, no resend on resume, no
  hand-off to another shared-subscription member;
- retained edges: RETAIN 0 leaves the stored message alone, Retain Handling
  0 / 1 on a new subscription, a re-subscription re-sends and loses
  nothing, Retain As Published 0, a retained QoS 0 replaces;
- session state stays whole while connected past its expiry; inbound topic
  aliases do not survive a reconnect;
- wills: non-retained not stored, retained stored (5.0), user properties in
  order, nothing from a client without a will;
- DUP 0 on first sends whatever the inbound DUP; a QoS 1 packet id is new
  after PUBACK; PUBACK/PUBREC 0x10 and 0x99, PUBREL 0x92; a QoS 2 id refused
  with 0x99 is new; Response Information only when asked; no
  Authentication Method unasked; the server DISCONNECT carries no Session
  Expiry Interval and drops its Reason String under a small Maximum Packet
  Size;
- shared subscriptions: each member's granted QoS; a QoS 2 message in flight
  completes with its member on reconnect and goes to nobody else if that
  member's session ends;
- smaller edges: 1- and 23-byte client ids, every inbound alias up to the
  maximum, a DISCONNECT with a reserved flag, U+FEFF kept, no Unicode
  normalization in matching, no message expiry for a QoS 2 PUBLISH once sent.

Four shards (the harness default), so most pairs of clients sit on different
shards. Waits are bounded; short fixed waits only where a check is that
something does not arrive."""
from harness import *

QUIET_S = 0.4  # how long "nothing more arrives" is watched


def quiet(r, wait=QUIET_S):
    """Packets r receives within wait seconds; the connection must stay open."""
    got = []
    deadline = time.monotonic() + wait
    while True:
        try:
            got.append(r.recv(max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            return got
        except Closed:
            raise Fail("connection closed by the broker (%s) after %r" % (r.eof_reason, got))


def next_packet(r, timeout=5.0, what="a packet"):
    try:
        return r.recv(timeout)
    except TimeoutError:
        raise Fail("%s: nothing within %.1f s" % (what, timeout))
    except Closed:
        raise Fail("%s: connection closed by the broker (%s)" % (what, r.eof_reason))


def sync(r):
    """PINGREQ / PINGRESP: the broker has handled everything r sent before
    (closing a socket right after a last acknowledgement can lose it)."""
    r.send(pingreq_pkt())
    p = next_packet(r, what="PINGRESP")
    if p.type != 13:
        raise Fail("want PINGRESP, got %r" % p)


class Pub:
    """A raw publisher that completes each QoS flow."""

    def __init__(self, b, cid, version=5):
        self.r = Raw(b, version=version)
        self.r.connect(cid, version=version)
        self.pid = 0

    def __call__(self, topic, payload, qos=1, retain=False, pprops=None, dup=False):
        self.pid = self.pid % 60000 + 1
        return self.r.publish(topic, payload, qos, self.pid, retain, pprops=pprops, dup=dup)


def raw(b, cid, version=5, **kw):
    r = Raw(b, version=version)
    ack = r.connect(cid, version=version, **kw)
    return r, ack


def no_session_expiry_prop(p):
    return 0x11 not in p.props


def collect_publishes(clients, n, timeout=5.0):
    """PUBLISHes reaching any of clients until n arrived (then QUIET_S more),
    each QoS flow completed whatever the interleaving. Returns {client: [Packet]}."""
    got = {r: [] for r in clients}
    deadline = time.monotonic() + timeout
    settle = None
    while True:
        now = time.monotonic()
        if settle is None and sum(map(len, got.values())) >= n:
            settle = now + QUIET_S
        end = settle if settle is not None else deadline
        if now >= end:
            return got
        for r in clients:
            try:
                p = r.recv(min(0.05, max(0.0, end - time.monotonic())))
            except TimeoutError:
                continue
            except Closed:
                raise Fail("connection closed by the broker (%s)" % r.eof_reason)
            v = r.version
            if p.type == 3:
                got[r].append(p)
                if p.qos == 1:
                    r.send(ack_pkt(4, p.pid, version=v))
                elif p.qos == 2:
                    r.send(ack_pkt(5, p.pid, version=v))
            elif p.type == 6:
                r.send(ack_pkt(7, p.pid, version=v))
            else:
                raise Fail("unexpected %r" % p)


# ---------------------------------------------------------------------------


def outbound_aliases(b, pub):
    """[MQTT-3.1.2-26], [MQTT-3.3.2-11], [MQTT-3.3.2-8], [MQTT-3.1.2-25]"""
    tam, mps = 2, 64
    # Receive Maximum 1: a dropped QoS 1 message must count as sent, or the
    # window stays shut [MQTT-3.1.2-25].
    kw = dict(cprops=[(0x22, tam), (0x27, mps), (0x21, 1)])
    s, _ = raw(b, "it21-alias", **kw)
    s.subscribe([("it21/alias/#", 1)])
    seq = ["aaaa", "aaaa", "bbbb", "aaaa", "cccc", "bbbb", "aaaa", "cccc", "dddd", "dddd",
           "aaaa"]
    sent = []
    for i, t in enumerate(seq):
        if i == 8:
            pub("it21/alias/" + t, b"L" * 200)  # too large for 64: not sent
        pub("it21/alias/" + t, str(i))
        sent.append(("it21/alias/" + t, str(i).encode()))
    table, got, aliases, bad, empties = {}, [], [], [], 0
    for _ in sent:
        try:
            p = s.recv_publish(5)
        except Fail as e:
            check(False, "[MQTT-3.1.2-25] QoS 1 messages keep coming to a client with Receive "
                  "Maximum 1 after one too large for it was dropped", "%d of %d, then %s" %
                  (len(got), len(sent), e))
            break
        a = p.props.get(0x23)
        aliases.append(a)
        empties += not p.topic
        if p.topic:
            if a is not None:
                table[a] = p.topic
            got.append((p.topic, p.payload))
        else:
            if a not in table:
                bad.append(p)
            got.append((table.get(a, "<alias %r never set>" % a), p.payload))
    check(all(a is None or 1 <= a <= tam for a in aliases),
          "[MQTT-3.1.2-26] [MQTT-3.3.2-11] [MQTT-3.3.2-8] outbound topic aliases stay within "
          "1..%d (the client's Topic Alias Maximum), never 0" % tam, aliases)
    check(not bad, "[MQTT-3.3.2-11] an empty topic name comes only with an alias the client "
          "was told before", bad)
    check_eq(got, sent, "[MQTT-3.1.2-25] [MQTT-3.1.2-26] each message resolves to its own topic, "
             "also after a QoS 1 message too large for the client (no alias left behind by it, "
             "and with Receive Maximum 1 the next ones still come: it counts as sent)")
    check(empties > 0, "(ringmq replaces topic names by aliases towards a client that allows "
          "them, so the checks above bite: %d of %d)" % (empties, len(sent)), aliases)
    # A new connection starts without mappings [MQTT-3.3.2-7]: the first
    # PUBLISH of a topic it had an alias for carries the name again.
    s.close()
    s, _ = raw(b, "it21-alias", **kw)
    s.subscribe([("it21/alias/#", 1)])
    pub("it21/alias/aaaa", "again")
    p = s.recv_publish(5)
    check(p.topic == "it21/alias/aaaa" and p.payload == b"again",
          "[MQTT-3.3.2-7] after a reconnect the broker sends the topic name again, not an alias "
          "of the old connection", p)
    s.close()


def refused_connect(b, pub):
    """[MQTT-3.1.4-6] / 3.1.1 [MQTT-3.1.4-5], [MQTT-3.2.2-6] / 3.1.1 [MQTT-3.2.2-4]"""
    w, _ = raw(b, "it21-refw")
    w.subscribe([("it21/refused/#", 1)])
    cases = [(5, "an unknown Authentication Method", dict(cprops=[(0x15, "NO-SUCH-METHOD")]),
              (0x8C, 0x87)),
             (4, "empty client id with CleanSession 0", dict(clean=False), (0x02,))]
    if FLAVOUR == "ringmq":  # mosquitto takes long client ids
        cases += [(5, "300-byte client id", {}, (0x85,)), (4, "300-byte client id", {}, (0x02,))]
    for v, why, kw, codes in cases:
        cid = "R" * 300 if why.startswith("300") else "" if why.startswith("empty") else "it21-x"
        r = Raw(b, version=v)
        r.send(connect_pkt(cid, version=v, **kw) +
               subscribe_pkt(1, [("it21/refused/sub%d" % v, 1)], v) +
               publish_pkt("it21/refused/pub%d" % v, "leak", 1, 2, retain=True, version=v) +
               pingreq_pkt())
        got = r.wait_closed(3)
        ids = "[MQTT-3.1.4-6]" if v == 5 else "3.1.1 [MQTT-3.1.4-5]"
        check(len(got) == 1 and got[0].type == 2 and got[0].rc in codes,
              "%s v%d CONNECT refused (%s) with SUBSCRIBE, PUBLISH, PINGREQ behind it: CONNACK "
              "%s, then closed; no SUBACK, PUBACK or PINGRESP" %
              (ids, v, why, " or ".join("%#04x" % c for c in codes)), got)
        if got and got[0].type == 2:
            check_eq(got[0].session_present, 0,
                     "%s v%d refusing CONNACK has Session Present 0" %
                     ("[MQTT-3.2.2-6]" if v == 5 else "3.1.1 [MQTT-3.2.2-4]", v))
    pub("it21/refused/marker", "m")
    p = w.recv_publish(5)
    extra = quiet(w, 0.2)
    check(p.payload == b"m" and not extra,
          "[MQTT-3.1.4-6] 3.1.1 [MQTT-3.1.4-5] the PUBLISHes behind the refused CONNECTs reached "
          "no subscriber", [p] + extra)
    n, _ = raw(b, "it21-refn")
    n.subscribe([("it21/refused/#", 1)])
    pub("it21/refused/marker2", "m2")
    p = n.recv_publish(5)
    check(p.payload == b"m2" and not p.retain,
          "[MQTT-3.1.4-6] 3.1.1 [MQTT-3.1.4-5] ... and stored no retained message", p)
    w.close()
    n.close()


def limited_broker():
    """max_qos 1, retain unavailable, max_keepalive 100: will refusals
    [MQTT-3.2.2-12], [MQTT-3.2.2-13]; Session Present 0 on a refusal for a
    client id with a session [MQTT-3.2.2-6] / 3.1.1 [MQTT-3.2.2-4]."""
    bl = Broker(max_qos=1, retain_available="false", max_keepalive=100).start()
    wl, _ = raw(bl, "it21-lw")
    wl.subscribe([("it21/lw/#", 1)])
    se = [(0x11, 60)]
    for cid in ("it21-lq", "it21-lr"):
        r, _ = raw(bl, cid, cprops=se)
        r.send(disconnect_pkt(5))
        r.wait_closed(3)
    cases = (("it21-lq", ("it21/lw/will", "w", 2, False), 0x9B, "[MQTT-3.2.2-12] will QoS 2 "
              "over Maximum QoS 1"),
             ("it21-lr", ("it21/lw/will", "w", 1, True), 0x9A, "[MQTT-3.2.2-13] retained will "
              "with Retain Available 0"))
    for cid, will, code, what in cases:
        r = Raw(bl, version=5)
        r.send(connect_pkt(cid, version=5, clean=False, cprops=se, will=will) +
               publish_pkt("it21/lw/leak", "leak", 1, 1, version=5))
        got = r.wait_closed(3)
        check(len(got) == 1 and got[0].type == 2 and got[0].rc == code,
              "%s: CONNACK %#04x, then closed (the PUBLISH behind it unanswered "
              "[MQTT-3.1.4-6])" % (what, code), got)
        if got and got[0].type == 2:
            check_eq(got[0].session_present, 0,
                     "[MQTT-3.2.2-6] that refusal has Session Present 0 although %s has a "
                     "session" % cid)
    r4, _ = raw(bl, "it21-lk4", version=4, clean=False)
    r4.close()
    r4 = Raw(bl, version=4)
    r4.send(connect_pkt("it21-lk4", version=4, clean=False, keepalive=200) +
            publish_pkt("it21/lw/leak4", "leak", 1, 1, version=4))
    got = r4.wait_closed(3)
    check(len(got) == 1 and got[0].type == 2 and got[0].rc == 0x02 and
          got[0].session_present == 0,
          "3.1.1 [MQTT-3.2.2-4] CONNACK 0x02 (keepalive 200 over max_keepalive 100) for a client "
          "id with a session: Session Present 0, then closed", got)
    for cid, v, kw in (("it21-lq", 5, dict(cprops=se)), ("it21-lr", 5, dict(cprops=se)),
                       ("it21-lk4", 4, {})):
        r, ack = raw(bl, cid, version=v, clean=False, **kw)
        check_eq(ack.session_present, 1, "(%s's session existed: a valid CONNECT now gets "
                 "Session Present 1)" % cid)
        r.close()
    p = Pub(bl, "it21-lpub")
    p("it21/lw/marker", "m")
    got = wl.recv_publish(5)
    extra = quiet(wl, 0.2)
    check(got.payload == b"m" and not extra,
          "[MQTT-3.1.4-6] 3.1.1 [MQTT-3.1.4-5] nothing behind the refused CONNECTs was "
          "published, and no refused will either", [got] + extra)


def receive_maximum_full(b, pub):
    """[MQTT-3.3.4-10], [MQTT-4.9.0-3]"""
    r, _ = raw(b, "it21-rm", cprops=[(0x21, 1)])
    r.subscribe([("it21/rm/t", 1)], pid=1)
    for i in range(3):
        pub("it21/rm/t", str(i))
    held = r.expect(3, what="the first PUBLISH")
    r.send(pingreq_pkt())
    p = next_packet(r, what="PINGRESP with the window full")
    check(p.type == 13, "[MQTT-3.3.4-10] [MQTT-4.9.0-3] Receive Maximum 1 used up: PINGREQ still "
          "answered with PINGRESP (and no PUBLISH beyond the window)", p)
    r.send(subscribe_pkt(2, [("it21/rm/other", 1)], 5))
    p = next_packet(r, what="SUBACK with the window full")
    check(p.type == 9 and p.pid == 2 and p.codes == [1],
          "[MQTT-3.3.4-10] [MQTT-4.9.0-3] ... SUBSCRIBE answered with SUBACK", p)
    r.send(publish_pkt("it21/rm/own", "x", 1, 9, version=5))
    p = next_packet(r, what="PUBACK with the window full")
    check(p.type == 4 and p.pid == 9, "[MQTT-3.3.4-10] [MQTT-4.9.0-3] ... the client's own QoS 1 "
          "PUBLISH answered with PUBACK", p)
    r.send(publish_pkt("it21/rm/own", "x", 2, 10, version=5))
    p = next_packet(r, what="PUBREC with the window full")
    r.send(ack_pkt(6, 10, version=5))
    q = next_packet(r, what="PUBCOMP with the window full")
    check(p.type == 5 and p.pid == 10 and q.type == 7 and q.pid == 10,
          "[MQTT-3.3.4-10] [MQTT-4.9.0-3] ... its QoS 2 PUBLISH gets PUBREC and PUBCOMP", [p, q])
    r.send(unsubscribe_pkt(3, ["it21/rm/other"], 5))
    p = next_packet(r, what="UNSUBACK with the window full")
    check(p.type == 11 and p.pid == 3, "[MQTT-3.3.4-10] [MQTT-4.9.0-3] ... UNSUBSCRIBE answered "
          "with UNSUBACK", p)
    seen = [held.payload]
    r.send(ack_pkt(4, held.pid, version=5))
    for _ in range(2):
        p = r.recv_publish(5)
        seen.append(p.payload)
    check_eq(seen, [b"0", b"1", b"2"], "[MQTT-4.9.0-2] the held messages follow as they are "
             "acknowledged, in order")
    r.close()


def unsubscribe(b, pub):
    """[MQTT-3.10.4-1..6], [MQTT-3.11.3-1], [MQTT-3.11.3-2] (3.1.1: 3.10.4-1..6, 2.3.1-7)"""
    for v in (5, 4):
        pre = "" if v == 5 else "3.1.1 "
        base = "it21/un%d/" % v
        r, _ = raw(b, "it21-un%d" % v, version=v)
        r.subscribe([(base + "a", 1), (base + "b", 1), (base + "+", 1), (base + "c", 1)])
        r.send(unsubscribe_pkt(7, [base + "a", base + "none", base + "b"], v))
        p = next_packet(r, what="UNSUBACK")
        want = [0x00, 0x11, 0x00] if v == 5 else []
        check(p.type == 11 and p.pid == 7 and p.codes == want,
              "%s[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6]%s v%d UNSUBSCRIBE [a, none, b]: "
              "one UNSUBACK with its packet id%s" %
              (pre, " [MQTT-3.11.3-1] [MQTT-3.11.3-2]" if v == 5 else " 3.1.1 [MQTT-2.3.1-7]",
               v, ", reasons [0x00, 0x11, 0x00]" if v == 5 else ""), p)
        r.send(unsubscribe_pkt(8, [base + "none"], v))
        p = next_packet(r, what="UNSUBACK")
        check(p.type == 11 and p.pid == 8 and p.codes == ([0x11] if v == 5 else []),
              "%s[MQTT-3.10.4-5] v%d UNSUBSCRIBE of a filter never subscribed: UNSUBACK anyway%s" %
              (pre, v, " (0x11)" if v == 5 else ""), p)
        # a now matches only '+': one copy; x too.
        pub(base + "a", "a")
        pub(base + "x", "x")
        got = [r.recv_publish(5).topic for _ in range(2)] + quiet(r, 0.2)
        check_eq(got, [base + "a", base + "x"],
                 "%s[MQTT-3.10.4-1] v%d unsubscribing a and b left '+' in place (only the "
                 "identical filter goes)" % (pre, v))
        r.send(unsubscribe_pkt(9, [base + "+"], v))
        p = next_packet(r, what="UNSUBACK")
        check(p.type == 11 and p.pid == 9, "v%d UNSUBSCRIBE '+' answered" % v, p)
        for t in ("a", "b", "x", "c"):
            pub(base + t, t)
        p = r.recv_publish(5)
        extra = quiet(r, 0.2)
        check(p.topic == base + "c" and not extra,
              "%s[MQTT-3.10.4-1] [MQTT-3.10.4-2] [MQTT-3.10.4-6] v%d after unsubscribing a, b "
              "and then '+': only c is delivered (c kept, nothing else matches)" % (pre, v),
              [p] + extra)
        r.close()

        # Deliveries already started complete [MQTT-3.10.4-3].
        cid = "it21-unq%d" % v
        kw = dict(cprops=[(0x11, 60)]) if v == 5 else {}
        r, _ = raw(b, cid, version=v, clean=(v == 5), **kw)
        r.subscribe([(base + "q", 2)])
        pub(base + "q", "q1", qos=1)
        pub(base + "q", "q2", qos=2)
        p1 = r.expect(3, what="QoS 1 PUBLISH")
        p2 = r.expect(3, what="QoS 2 PUBLISH")
        r.send(unsubscribe_pkt(10, [base + "q"], v))
        r.expect(11, what="UNSUBACK")
        r.send(ack_pkt(5, p2.pid, version=v))
        rel = next_packet(r, what="PUBREL after unsubscribing")
        check(rel.type == 6 and rel.pid == p2.pid,
              "%s[MQTT-3.10.4-3] v%d QoS 2 delivery started before UNSUBSCRIBE: PUBREC still "
              "answered with PUBREL" % (pre, v), rel)
        r.send(ack_pkt(7, p2.pid, version=v))
        sync(r)
        r.close()  # q1 never acknowledged
        r, ack = raw(b, cid, version=v, clean=False, **kw)
        p = next_packet(r, what="resent QoS 1 PUBLISH")
        check(ack.session_present == 1 and p.type == 3 and p.payload == b"q1" and p.dup and
              p.pid == p1.pid,
              "%s[MQTT-3.10.4-3] v%d QoS 1 delivery started before UNSUBSCRIBE: resent (DUP, "
              "same id) on resume" % (pre, v), p)
        r.send(ack_pkt(4, p.pid, version=v))
        extra = quiet(r, 0.2)
        check_eq(extra, [], "v%d ... and nothing else after it" % v)
        r.send(disconnect_pkt(v, dprops=[(0x11, 0)] if v == 5 else None))
        r.close()


def negative_acks(b, pub):
    """[MQTT-4.4.0-2], [MQTT-4.3.3-4], [MQTT-4.8.2-6]"""
    kw = dict(cprops=[(0x11, 60), (0x21, 1)])
    a, _ = raw(b, "it21-nack", **kw)
    a.subscribe([("it21/nack/t", 2)])
    pub("it21/nack/t", "m1", qos=1)
    p = a.expect(3, what="m1")
    a.send(ack_pkt(4, p.pid, 0x80, version=5))
    pub("it21/nack/t", "m2", qos=1)
    p = next_packet(a, what="m2 after PUBACK 0x80")
    check(p.type == 3 and p.payload == b"m2",
          "[MQTT-4.4.0-2] PUBACK 0x80 counts as acknowledged: with Receive Maximum 1 the next "
          "message follows", p)
    a.send(ack_pkt(4, p.pid, version=5))
    pub("it21/nack/t", "m3", qos=2)
    p = a.expect(3, what="m3")
    a.send(ack_pkt(5, p.pid, 0x80, version=5))
    pub("it21/nack/t", "m4", qos=1)
    p = next_packet(a, what="m4 after PUBREC 0x80")
    check(p.type == 3 and p.payload == b"m4",
          "[MQTT-4.4.0-2] [MQTT-4.3.3-4] PUBREC 0x80 ends the QoS 2 flow: no PUBREL, the next "
          "message follows", p)
    a.send(ack_pkt(4, p.pid, version=5))
    sync(a)
    a.close()
    a, ack = raw(b, "it21-nack", clean=False, **kw)
    pub("it21/nack/t", "m5", qos=1)
    p = next_packet(a, what="m5 after resume")
    check(ack.session_present == 1 and p.type == 3 and p.payload == b"m5" and not p.dup,
          "[MQTT-4.4.0-2] on resume nothing refused with 0x80 is resent (no PUBLISH, no PUBREL): "
          "the first packet is the new message", p)
    a.send(ack_pkt(4, p.pid, version=5))
    a.send(disconnect_pkt(5, dprops=[(0x11, 0)]))
    a.close()

    # Shared: a member that refused a message does not pass it on.
    for qos, ack_type in ((1, 4), (2, 5)):
        grp = "$share/nack%d/it21/shnack%d" % (qos, qos)
        topic = "it21/shnack%d" % qos
        sa, _ = raw(b, "it21-shn%d-a" % qos, cprops=[(0x11, 60)])
        sa.subscribe([(grp, qos)])
        pub(topic, "s", qos=qos)
        p = sa.expect(3, what="shared message")
        sa.send(ack_pkt(ack_type, p.pid, 0x80, version=5))
        sync(sa)
        sb, _ = raw(b, "it21-shn%d-b" % qos)
        sb.subscribe([(grp, qos)])
        # Pull the first member's session away from its connection (takeover):
        # unacknowledged shared messages would now be passed to sb.
        sa2, ack = raw(b, "it21-shn%d-a" % qos, clean=False, cprops=[(0x11, 60)])
        old = sa.wait_closed(3)
        check(len(old) == 1 and old[0].type == 14 and old[0].rc == 0x8E and
              no_session_expiry_prop(old[0]),
              "[MQTT-3.1.4-3] [MQTT-3.14.2-2] taken-over connection: DISCONNECT 0x8E without a "
              "Session Expiry Interval", old)
        got_a = quiet(sa2)
        got_b = quiet(sb, 0.1)
        check(ack.session_present == 1 and got_a == [] and got_b == [],
              "[MQTT-4.8.2-6] [MQTT-4.4.0-2] shared QoS %d message refused with %s 0x80: not "
              "resent to its member, not given to the other member" %
              (qos, "PUBACK" if qos == 1 else "PUBREC"), (got_a, got_b))
        for r in (sa2, sb):
            r.send(disconnect_pkt(5, dprops=[(0x11, 0)]))
            r.close()


def retained_edges(b, pub, pub4):
    """[MQTT-3.3.1-8..12], [MQTT-3.8.4-3], [MQTT-3.8.4-4] (3.1.1: 3.3.1-7, 3.3.1-12, 3.8.4-3)"""
    for v, p in ((5, pub), (4, pub4)):
        t = "it21/ret/k%d" % v
        p(t, "R", qos=1, retain=True)
        p(t, "N", qos=1)
        p(t, "", qos=1)
        s, _ = raw(b, "it21-ret%d" % v, version=v)
        s.subscribe([(t, 1)])
        m = s.recv_publish(5)
        extra = quiet(s, 0.2)
        check(m.payload == b"R" and m.retain and not extra,
              "%s v%d publisher: PUBLISHes with RETAIN 0 (payload, then empty) leave the "
              "retained message alone" % ("[MQTT-3.3.1-8]" if v == 5 else "3.1.1 [MQTT-3.3.1-12]",
                                           v), [m] + extra)
        s.close()
    # 5.0 subscriber: Retain Handling 0 sends them; 1 on a new subscription too.
    t = "it21/ret/k5"
    for rh, ids in ((0, "[MQTT-3.3.1-9]"), (1, "[MQTT-3.3.1-10]")):
        s, _ = raw(b, "it21-rh%d" % rh)
        s.subscribe([(t, 1 | (rh << 4))])
        m = s.recv_publish(5)
        check(m.payload == b"R" and m.retain,
              "%s 5.0 new subscription with Retain Handling %d: retained message sent (RETAIN "
              "1)" % (ids, rh), m)
        if rh == 1:
            s.subscribe([(t, 1 | (1 << 4))], pid=2)
            pub(t, "live", qos=1)
            m = s.recv_publish(5)
            check(m.payload == b"live",
                  "[MQTT-3.3.1-10] ... Retain Handling 1 on the existing subscription: not "
                  "sent again", m)
        else:
            # Retain As Published 0: a live retained message arrives with RETAIN 0.
            pub(t, "R", qos=1, retain=True)
            m = s.recv_publish(5)
            check(m.payload == b"R" and not m.retain,
                  "[MQTT-3.3.1-12] 5.0 subscription with Retain As Published 0: a live retained "
                  "message is forwarded with RETAIN 0", m)
        s.close()
    # Re-subscribing: retained re-sent, new options apply, nothing lost.
    for v in (5, 4):
        t = "it21/ret/re%d" % v
        pub(t, "RC", qos=1, retain=True)
        c, _ = raw(b, "it21-resub%d" % v, version=v)
        c.subscribe([(t, 1)])
        m = c.recv_publish(5)
        check(m.payload == b"RC" and m.retain, "v%d first subscription gets the retained "
              "message" % v, m)
        c.send(publish_pkt(t, "L1", 1, 11, version=v) + publish_pkt(t, "L2", 1, 12, version=v) +
               subscribe_pkt(5, [(t, 0)], v) +
               publish_pkt(t, "L3", 1, 13, version=v) + publish_pkt(t, "L4", 1, 14, version=v))
        pkts = []
        deadline = time.monotonic() + 5
        while len(pkts) < 10 and time.monotonic() < deadline:
            try:
                p = c.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            pkts.append(p)
            if p.type == 3 and p.qos == 1:
                c.send(ack_pkt(4, p.pid, version=v))
        pkts += quiet(c, 0.2)
        acks = sorted(p.pid for p in pkts if p.type == 4)
        subacks = [p.codes for p in pkts if p.type == 9]
        pubs = [(p.payload.decode(), p.qos, int(p.retain)) for p in pkts if p.type == 3]
        live = sorted(x for x in pubs if x[2] == 0)
        ret = [x for x in pubs if x[2] == 1]
        check(acks == [11, 12, 13, 14] and subacks == [[0]] and
              live == [("L1", 1, 0), ("L2", 1, 0), ("L3", 0, 0), ("L4", 0, 0)],
              "%s v%d re-SUBSCRIBE (QoS 1 -> 0) between its own publishes: every message "
              "delivered once, the later ones at the new QoS 0" %
              ("[MQTT-3.8.4-3] [MQTT-3.8.4-4]" if v == 5 else "3.1.1 [MQTT-3.8.4-3]", v),
              (acks, subacks, pubs))
        check(ret == [("RC", 0, 1)],
              "%s v%d ... and the retained message is sent again, with RETAIN 1" %
              ("[MQTT-3.8.4-4]" if v == 5 else "3.1.1 [MQTT-3.8.4-3]", v), pubs)
        c.close()
    # A retained QoS 0 message replaces the stored one (3.1.1 3.3.1-7).
    t = "it21/ret/q0"
    pub4(t, "old", qos=1, retain=True)
    pub4(t, "new", qos=0, retain=True)
    pub4("it21/ret/sync", "s", qos=1)  # its PUBACK: the QoS 0 publish before it was handled
    s, _ = raw(b, "it21-retq0", version=4)
    s.subscribe([(t, 1)])
    m = s.recv_publish(5)
    extra = quiet(s, 0.2)
    check(m.payload == b"new" and m.qos == 0 and m.retain and not extra,
          "3.1.1 [MQTT-3.3.1-7] a retained QoS 0 PUBLISH replaces the retained message (stored "
          "at QoS 0)", [m] + extra)
    s.close()


def inbound_alias_reconnect(b, pub):
    """[MQTT-3.3.2-7]"""
    w, _ = raw(b, "it21-iaw")
    w.subscribe([("it21/ialias/#", 1)])
    a, ack = raw(b, "it21-ialias", cprops=[(0x11, 60)])
    tam = ack.props.get(0x22, 0)
    if tam < 1:
        log("# broker Topic Alias Maximum is 0: inbound alias check skipped")
        return
    a.publish("it21/ialias/t", "a1", qos=1, pid=1, pprops=[(0x23, 1)])
    a.publish("", "a2", qos=1, pid=2, pprops=[(0x23, 1)])
    got = [w.recv_publish(5).payload for _ in range(2)]
    check_eq(got, [b"a1", b"a2"], "inbound topic alias 1 set and used on one connection")
    a.send(disconnect_pkt(5))
    a.wait_closed(3)
    a, ack = raw(b, "it21-ialias", clean=False, cprops=[(0x11, 60)])
    a.send(publish_pkt("", "a3", 1, 3, version=5, pprops=[(0x23, 1)]))
    got = a.wait_closed(3)
    check(ack.session_present == 1 and len(got) == 1 and got[0].type == 14 and
          got[0].rc in (0x82, 0x94) and no_session_expiry_prop(got[0]),
          "[MQTT-3.3.2-7] resumed session, new connection: empty topic with alias 1 is refused "
          "(DISCONNECT 0x82 or 0x94, no Session Expiry Interval [MQTT-3.14.2-2])", got)
    pub("it21/ialias/marker", "m")
    p = w.recv_publish(5)
    extra = quiet(w, 0.2)
    check(p.payload == b"m" and not extra, "[MQTT-3.3.2-7] ... and that message went nowhere",
          [p] + extra)
    w.close()
    a, _ = raw(b, "it21-ialias", clean=True)
    a.close()


def wills(b, pub):
    """[MQTT-3.1.2-14], [MQTT-3.1.2-15], [MQTT-3.1.3-10] (3.1.1: 3.1.2-12, 3.1.2-16)"""
    w, _ = raw(b, "it21-willw")
    w.subscribe([("it21/will/#", 1 | 0x08)])  # retain as published: see the will's RETAIN
    users = [("k", "v1"), ("k", "v2"), ("a", "b")]
    r, _ = raw(b, "it21-will5n", will=("it21/will/n5", "bye", 1, False),
               will_props=[(0x26, u) for u in users] + [(0x03, "text/plain")])
    r.close()
    m = w.recv_publish(5)
    check(m.topic == "it21/will/n5" and m.payload == b"bye" and m.user_props == users and
          m.props.get(0x03) == "text/plain",
          "[MQTT-3.1.3-10] will published with its user properties in order (and its content "
          "type)", (m, m.user_props))
    check(not m.retain, "[MQTT-3.1.2-14] 5.0 will with Will Retain 0 published with RETAIN 0", m)
    r, _ = raw(b, "it21-will4n", version=4, will=("it21/will/n4", "bye4", 1, False))
    r.close()
    m = w.recv_publish(5)
    check(m.topic == "it21/will/n4" and not m.retain,
          "3.1.1 [MQTT-3.1.2-16] will with Will Retain 0 published with RETAIN 0", m)
    r, _ = raw(b, "it21-will5r", will=("it21/will/r5", "kept", 1, True))
    r.close()
    m = w.recv_publish(5)
    check(m.topic == "it21/will/r5" and m.retain,
          "[MQTT-3.1.2-15] 5.0 will with Will Retain 1 published with RETAIN 1", m)
    n, _ = raw(b, "it21-willn")
    n.subscribe([("it21/will/+", 1)])
    pub("it21/will/mark", "mark")
    got = [n.recv_publish(5) for _ in range(2)]
    got += quiet(n, 0.2)
    check_eq([(p.topic, p.payload, p.retain) for p in got],
             [("it21/will/r5", b"kept", True), ("it21/will/mark", b"mark", False)],
             "[MQTT-3.1.2-15] [MQTT-3.1.2-14] 3.1.1 [MQTT-3.1.2-16] a new subscriber gets the "
             "retained 5.0 will only: the non-retained wills were not stored")
    pub("it21/will/r5", "", qos=1, retain=True)
    n.close()
    w.close()
    # No will: nothing at all appears when such a client goes.
    all_, _ = raw(b, "it21-willall")
    all_.subscribe([("#", 1 | (2 << 4))])  # Retain Handling 2: no stored messages
    for v in (4, 5):
        cid = "it21-nowill%d" % v
        r, _ = raw(b, cid, version=v)
        r.close()
        # The same id again: its home shard has dealt with the old connection
        # (closed, or taken over now) before this CONNACK, so a will from it
        # would be routed before the marker this connection publishes.
        r, _ = raw(b, cid, version=v)
        r.publish("it21/nowill/mark%d" % v, "m", qos=1, pid=1)
        p = all_.recv_publish(5)
        extra = quiet(all_, 0.1)
        check(p.topic == "it21/nowill/mark%d" % v and not extra,
              "%s v%d client without a will closes its connection: nothing is published" %
              ("(5.0 likewise)" if v == 5 else "3.1.1 [MQTT-3.1.2-12]", v), [p] + extra)
        r.close()
    all_.close()


def dup_and_reason_codes(b, pub):
    """[MQTT-3.3.1-2], [MQTT-3.3.1-3], [MQTT-4.3.1-1], [MQTT-4.3.2-2], [MQTT-4.3.3-2],
    [MQTT-4.3.2-5], [MQTT-3.4.2-1], [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-4.3.3-9]
    (3.1.1: 3.3.1-2, 3.3.1-3, 4.3.1-1, 4.3.2-1, 4.3.2-2)"""
    subs = {}
    for v in (4, 5):
        for q in (0, 2):
            r, _ = raw(b, "it21-dup%d-q%d" % (v, q), version=v)
            r.subscribe([("it21/dup/#", q)])
            subs[(v, q)] = r
    pub("it21/dup/q1", "d1", qos=1, dup=True)
    d1_pid = pub.pid
    pub("it21/dup/q2", "d2", qos=2, dup=True)
    pub("it21/dup/q0", "d0", qos=0)
    pub("it21/dup/q1", "e1", qos=1)
    last = pub.pid
    pub.pid = d1_pid - 1  # the next publish reuses the id of "d1", acknowledged
    pub("it21/dup/q1", "f1", qos=1)
    pub.pid = last
    every = collect_publishes(list(subs.values()), 5 * len(subs))
    for (v, q), r in subs.items():
        got = sorted(every[r], key=lambda p: p.payload)
        desc = [(p.payload.decode(), p.qos, int(p.dup)) for p in got]
        want = sorted([("d0", 0, 0), ("d1", min(1, q), 0), ("d2", min(2, q), 0),
                       ("e1", min(1, q), 0), ("f1", min(1, q), 0)])
        if v == 5:
            ids = ("[MQTT-3.3.1-2] [MQTT-4.3.1-1]" if q == 0 else
                   "[MQTT-3.3.1-3] [MQTT-4.3.2-2] [MQTT-4.3.3-2]")
        else:
            ids = ("3.1.1 [MQTT-3.3.1-2] [MQTT-4.3.1-1]" if q == 0 else
                   "3.1.1 [MQTT-3.3.1-3] [MQTT-4.3.2-1] [MQTT-4.3.3-1]")
        check_eq(desc, want, "%s v%d subscriber granted QoS %d: first sends have DUP 0, also "
                 "for publishes that came in with DUP 1; %s f1, published with the id of d1 "
                 "after its PUBACK, is a new message" %
                 (ids, v, q, "[MQTT-4.3.2-5]" if v == 5 else "3.1.1 [MQTT-4.3.2-2]"))
    for r in subs.values():
        r.close()

    # Reason codes the broker sends on acknowledgements (5.0).
    s, _ = raw(b, "it21-rc-sub")
    s.subscribe([("it21/rc/sub", 2)])
    r, _ = raw(b, "it21-rc")
    ack = r.publish("it21/rc/nobody", "x", qos=1, pid=1)
    check(ack.rc == 0x10, "[MQTT-3.4.2-1] PUBACK 0x10 (No matching subscribers, a Table 3-4 "
          "code ringmq sends)", ack)
    r.send(publish_pkt("it21/rc/nobody", "x", 2, 2, version=5))
    rec = r.expect(5, what="PUBREC")
    r.send(ack_pkt(6, 2, version=5))
    comp = r.expect(7, what="PUBCOMP")
    check(rec.rc == 0x10 and comp.rc == 0, "[MQTT-3.5.2-1] PUBREC 0x10 (No matching "
          "subscribers), then PUBCOMP 0x00", [rec, comp])
    ack = r.publish("it21/rc/sub", "ok", qos=1, pid=3)
    check(ack.rc == 0x00, "[MQTT-3.4.2-1] PUBACK 0x00 with a subscriber", ack)
    bad = b"\xff\xfe"
    ack = r.publish("it21/rc/sub", bad, qos=1, pid=4, pprops=[(0x01, 1)])
    check(ack.rc == 0x99, "[MQTT-3.4.2-1] PUBACK 0x99: Payload Format Indicator 1 with a "
          "payload that is not UTF-8", ack)
    r.send(publish_pkt("it21/rc/sub", bad, 2, 5, version=5, pprops=[(0x01, 1)]))
    rec = r.expect(5, what="PUBREC 0x99")
    check(rec.pid == 5 and rec.rc == 0x99, "[MQTT-3.5.2-1] PUBREC 0x99 for the same on QoS 2",
          rec)
    r.send(publish_pkt("it21/rc/sub", "again", 2, 5, version=5))
    rec = r.expect(5, what="PUBREC for id 5 reused")
    r.send(ack_pkt(6, 5, version=5))
    comp = r.expect(7, what="PUBCOMP 5")
    check(rec.rc == 0x00 and comp.rc == 0x00, "[MQTT-4.3.3-9] after PUBREC 0x99 the same packet "
          "id is a new message: PUBREC 0x00, PUBCOMP 0x00", [rec, comp])
    got = [s.recv_publish(5).payload for _ in range(2)]
    extra = quiet(s, 0.2)
    check(got == [b"ok", b"again"] and not extra,
          "[MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-4.3.3-9] the subscriber got the accepted messages, "
          "not the refused ones, and the reused id's message", (got, extra))
    r.send(ack_pkt(5, 4242, 0, version=5))
    rel = r.expect(6, what="PUBREL for an unknown PUBREC")
    check(rel.pid == 4242 and rel.rc == 0x92, "[MQTT-3.6.2-1] PUBREC for an id never sent: "
          "PUBREL 0x92 (Packet Identifier not found)", rel)
    r.close()
    s.close()


def connack_and_disconnect_props(b):
    """[MQTT-3.1.2-28], [MQTT-4.12.0-6], [MQTT-3.14.2-2], [MQTT-3.14.2-3]"""
    for cprops, what in (([], "not asked"), ([(0x19, 0)], "Request Response Information 0")):
        r, ack = raw(b, "it21-ri", cprops=cprops)
        check(0x1A not in ack.props, "[MQTT-3.1.2-28] no Response Information when %s" % what,
              ack)
        r.close()
    r, ack = raw(b, "it21-ri", cprops=[(0x19, 1)])
    check(str(ack.props.get(0x1A, "")).startswith("$response/"),
          "(Request Response Information 1: ringmq sends Response Information, so the check "
          "above bites)", ack)
    check(0x15 not in ack.props and 0x16 not in ack.props,
          "[MQTT-4.12.0-6] CONNECT without Authentication Method: CONNACK carries none", ack)
    r.close()
    # [MQTT-3.1.2-24] the CONNACK, too, stays within the client's Maximum
    # Packet Size: optional properties (Response Information, Topic Alias
    # Maximum) go; when the rest still does not fit (an Assigned Client
    # Identifier is required) the broker closes without a CONNACK.
    for cid, cprops, want in (("it21-mps-ri", [(0x27, 20), (0x19, 1)], "connack"),
                              ("", [(0x27, 20)], "closed"),
                              ("it21-mps-12", [(0x27, 12)], "closed"),
                              ("it21-mps-13", [(0x27, 13)], "connack")):
        r = Raw(b, version=5)
        r.send(connect_pkt(cid, version=5, cprops=cprops))
        got = r.wait_closed(3) if want == "closed" else [next_packet(r, what="CONNACK")]
        if want == "connack":
            p = got[0]
            dropped = 0x1A not in p.props and (cid != "it21-mps-13" or 0x22 not in p.props)
            check(p.type == 2 and p.rc == 0 and len(p.raw) <= cprops[0][1] and dropped,
                  "[MQTT-3.1.2-24] CONNACK fits Maximum Packet Size %d without its optional "
                  "properties (%d bytes)" % (cprops[0][1], len(p.raw)), p)
            if cid == "it21-mps-13":
                r.send(publish_pkt("it21/mps", "x", 0, version=5, pprops=[(0x23, 1)]))
                dis = r.wait_closed(3)
                check(len(dis) == 1 and dis[0].type == 14 and dis[0].rc == 0x94,
                      "no Topic Alias Maximum advertised: an alias is refused (0x94)", dis)
        else:
            check(got == [], "[MQTT-3.1.2-24] a CONNACK that cannot fit Maximum Packet Size %d "
                  "is not sent: the connection closes" % cprops[0][1], got)
        r.close()

    viol = publish_pkt("it21/why", "x", 1, 1, version=5, pprops=[(0x0B, 1)])
    r, _ = raw(b, "it21-why", cprops=[(0x11, 60)])
    r.send(viol)
    got = r.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x82 and 0x1F in got[0].props and
          no_session_expiry_prop(got[0]),
          "[MQTT-3.14.2-2] PUBLISH with a Subscription Identifier: DISCONNECT 0x82 with a Reason "
          "String, no Session Expiry Interval", got)
    r, _ = raw(b, "it21-why-small", cprops=[(0x27, 16)])
    r.send(viol)
    got = r.wait_closed(3)
    check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x82 and
          len(got[0].raw) <= 16 and 0x1F not in got[0].props,
          "[MQTT-3.14.2-3] [MQTT-3.1.2-24] the same with Maximum Packet Size 16: DISCONNECT 0x82 "
          "without the Reason String, at most 16 bytes", got)
    r, _ = raw(b, "it21-why", clean=True)
    r.close()


def shared_qos(b, pub):
    """[MQTT-4.8.2-3], [MQTT-4.8.2-4], [MQTT-4.8.2-5]"""
    grp = "$share/gq/it21/sq"
    a, _ = raw(b, "it21-sq-a")
    a.subscribe([(grp, 0)])
    pub("it21/sq", "solo", qos=2)
    m = a.recv_publish(5)
    check(m.payload == b"solo" and m.qos == 0,
          "[MQTT-4.8.2-3] QoS 2 message to the only member, granted QoS 0: sent at QoS 0", m)
    c, _ = raw(b, "it21-sq-c", version=4)
    c.subscribe([(grp, 1)])
    n = 8
    for i in range(n):
        pub("it21/sq", str(i), qos=2)
    got = collect_publishes([a, c], n)
    log("# shares: QoS 0 member %d, QoS 1 member %d" % (len(got[a]), len(got[c])))
    every = sorted(int(p.payload) for r in (a, c) for p in got[r])
    check(every == list(range(n)) and all(p.qos == 0 for p in got[a]) and
          all(p.qos == 1 for p in got[c]),
          "[MQTT-4.8.2-3] QoS 2 messages to a group with members granted QoS 0 and QoS 1: each "
          "delivered once, at its member's granted QoS",
          [(p.payload, p.qos) for p in got[a]] + ["|"] + [(p.payload, p.qos) for p in got[c]])
    a.send(unsubscribe_pkt(2, [grp], 5))
    a.expect(11, what="UNSUBACK")
    pub("it21/sq", "last", qos=2)
    m = c.recv_publish(5)
    check(m.payload == b"last" and m.qos == 1,
          "[MQTT-4.8.2-3] with the QoS 0 member gone, the QoS 1 member gets it at QoS 1", m)
    a.close()
    c.close()

    # QoS 2 in flight to a member that drops: completed with it [MQTT-4.8.2-4].
    grp = "$share/gq2/it21/sq2"
    se = [(0x11, 60)]
    a, _ = raw(b, "it21-sq2-a", cprops=se)
    a.subscribe([(grp, 2)])
    pub("it21/sq2", "k1", qos=2)
    p1 = a.expect(3, what="QoS 2 shared message")
    pub("it21/sq2", "k2", qos=2)
    p2 = a.expect(3, what="second QoS 2 shared message")
    a.send(ack_pkt(5, p2.pid, version=5))
    rel = a.expect(6, what="PUBREL")
    check(p1.payload == b"k1" and p2.payload == b"k2" and rel.pid == p2.pid and rel.rc == 0,
          "[MQTT-4.3.3-4] 5.0 PUBREC 0x00: PUBREL 0x00 with the same id", rel)
    o, _ = raw(b, "it21-sq2-b")
    o.subscribe([(grp, 2)])
    a.close()
    a, ack = raw(b, "it21-sq2-a", clean=False, cprops=se)
    p = next_packet(a, what="resent shared QoS 2 PUBLISH")
    check(ack.session_present == 1 and p.type == 3 and p.payload == b"k1" and p.dup and
          p.pid == p1.pid and p.qos == 2,
          "[MQTT-4.8.2-4] [MQTT-4.4.0-1] [MQTT-3.3.1-1] shared QoS 2 message in flight (no "
          "PUBREC yet) when its member dropped: PUBLISH resent to that member on reconnect "
          "(DUP, same id)", p)
    q = next_packet(a, what="resent PUBREL")
    check(q.type == 6 and q.pid == p2.pid,
          "[MQTT-4.8.2-4] [MQTT-4.4.0-1] [MQTT-4.3.3-6] ... the one it had PUBREC'd: PUBREL "
          "resent (same id), not the PUBLISH", q)
    a.send(ack_pkt(7, q.pid, version=5))
    a.send(ack_pkt(5, p.pid, version=5))
    rel = a.expect(6, what="PUBREL")
    a.send(ack_pkt(7, rel.pid, version=5))
    extra = quiet(o, 0.1)
    check(extra == [], "[MQTT-4.8.2-4] ... and the other member never got either", extra)
    a.send(disconnect_pkt(5, dprops=[(0x11, 0)]))
    a.close()
    o.close()

    # Its session ends instead: nobody else gets it [MQTT-4.8.2-5].
    grp = "$share/gq5/it21/sq5"
    a, _ = raw(b, "it21-sq5-a")  # Session Expiry 0: the session ends with the connection
    a.subscribe([(grp, 2)])
    pub("it21/sq5", "k2", qos=2)
    a.expect(3, what="QoS 2 shared message")
    o, _ = raw(b, "it21-sq5-b")
    o.subscribe([(grp, 2)])
    a.close()
    # The same id again: the old session is gone before this CONNACK.
    a, ack = raw(b, "it21-sq5-a")
    got = quiet(o)
    pub("it21/sq5", "k3", qos=2)
    m = o.recv_publish(5)
    got += [m] + quiet(o, 0.1)
    check(ack.session_present == 0 and [p.payload for p in got] == [b"k3"],
          "[MQTT-4.8.2-5] shared QoS 2 message in flight to a member whose session ended: the "
          "other member never gets it (only the next message)", got)
    a.close()
    o.close()


def small_edges(b, pub, pub4):
    """[MQTT-3.1.3-5], [MQTT-3.3.2-12], [MQTT-3.14.1-1], [MQTT-1.5.4-3], [MQTT-4.7.3-4]
    (3.1.1: 3.1.3-5, 3.14.1-1, 1.5.3-3, 4.7.3-4)"""
    for v in (5, 4):
        for cid in ("Z", "it21Abcdefghijklmnop023"):
            r = Raw(b, version=v)
            r.send(connect_pkt(cid, version=v))
            ack = next_packet(r, what="CONNACK")
            check(ack.type == 2 and ack.rc == 0, "%s[MQTT-3.1.3-5] v%d client id %r (%d "
                  "alphanumeric bytes) accepted" % ("" if v == 5 else "3.1.1 ", v, cid, len(cid)),
                  ack)
            r.close()

    # Every inbound alias 1..the advertised maximum.
    w, _ = raw(b, "it21-alw")
    w.subscribe([("it21/al/#", 0)])
    a, ack = raw(b, "it21-alp")
    tam = ack.props.get(0x22, 0)
    for i in range(1, tam + 1):
        a.publish("it21/al/%d" % i, "set", qos=1, pid=i, pprops=[(0x23, i)])
    for i in range(tam, 0, -1):
        a.publish("", "use", qos=1, pid=100 + i, pprops=[(0x23, i)])
    got = [(p.topic, p.payload) for p in [w.recv_publish(5) for _ in range(2 * tam)]]
    want = ([("it21/al/%d" % i, b"set") for i in range(1, tam + 1)] +
            [("it21/al/%d" % i, b"use") for i in range(tam, 0, -1)])
    check(tam >= 1 and got == want, "[MQTT-3.3.2-12] each Topic Alias 1..%d (CONNACK Topic Alias "
          "Maximum) set and then used" % tam, got)
    a.close()
    w.close()

    # A DISCONNECT with a reserved flag bit set is malformed.
    for v in (5, 4):
        r, _ = raw(b, "it21-dflags%d" % v, version=v)
        r.send(b"\xe1\x00")
        got = r.wait_closed(3)
        want = "DISCONNECT 0x81, then closed" if v == 5 else "closed"
        ok = (len(got) == 1 and got[0].type == 14 and got[0].rc == 0x81) if v == 5 else got == []
        check(ok, "%s[MQTT-3.14.1-1] v%d DISCONNECT with flags 0001: %s" %
              ("" if v == 5 else "3.1.1 ", v, want), got)

    # U+FEFF is kept; topics match without normalization.
    bom = "it21/bom/\ufeffx"
    nfc, nfd = "it21/norm/\u00e9", "it21/norm/e\u0301"
    subs = []
    for v in (5, 4):
        r, _ = raw(b, "it21-bom%d" % v, version=v)
        r.subscribe([(bom, 1), (nfc, 1)])
        subs.append((v, r))
    pub(bom, "\ufeffp", pprops=[(0x26, ("\ufeffk", "\ufeffv")), (0x03, "\ufefftext")])
    pub4(bom, "\ufeffp4")
    pub(nfd, "nfd")
    pub4("it21/norm/\u00c9", "upper")
    pub(nfc, "nfc")
    for v, r in subs:
        got = [r.recv_publish(5) for _ in range(3)] + quiet(r, 0.2)
        # Two publishers on (likely) different shards: no order between them.
        boms = sorted((p for p in got if p.topic == bom), key=lambda p: p.payload)
        desc = [(p.topic, p.payload.decode()) for p in boms]
        rest = [(p.topic, p.payload.decode()) for p in got if p.topic != bom]
        pre = "" if v == 5 else "3.1.1 "
        check_eq(desc, [(bom, "\ufeffp"), (bom, "\ufeffp4")],
                 "%s[MQTT-%s] v%d topic and payload starting with U+FEFF delivered intact" %
                 (pre, "1.5.4-3" if v == 5 else "1.5.3-3", v))
        if v == 5:
            check(boms[0].user_props == [("\ufeffk", "\ufeffv")] and
                  boms[0].props.get(0x03) == "\ufefftext",
                  "[MQTT-1.5.4-3] ... and so are a user property and a content type", boms[0])
        check_eq(rest, [(nfc, "nfc")], "%s[MQTT-4.7.3-4] v%d filter 'it21/norm/\\u00e9' "
                 "matches neither its NFD form 'e\\u0301' nor upper case, only itself" % (pre, v))
        r.close()


def main():
    b = Broker().start()
    # [MQTT-4.1.0-1]: a session with Session Expiry 1 s, connected for 3 s
    # while the other checks run.
    se, _ = raw(b, "it21-expiry", cprops=[(0x11, 1)])
    se.subscribe([("it21/expiry", 1)])
    t_se = time.monotonic()

    pub = Pub(b, "it21-pub")
    pub4 = Pub(b, "it21-pub4", version=4)
    # [MQTT-4.3.3-7]: a QoS 2 message with Message Expiry 1 s, sent and not
    # acknowledged; resent at the end, long after it would have expired.
    qx, _ = raw(b, "it21-qexp", cprops=[(0x11, 60)])
    qx.subscribe([("it21/qexp", 2)])
    pub("it21/qexp", "short-lived", qos=2, pprops=[(0x02, 1)])
    qx_first = qx.expect(3, what="QoS 2 PUBLISH with Message Expiry 1 s")
    qx.close()
    t_qx = time.monotonic()

    outbound_aliases(b, pub)
    refused_connect(b, pub)
    limited_broker()
    receive_maximum_full(b, pub)
    unsubscribe(b, pub)
    negative_acks(b, pub)
    retained_edges(b, pub, pub4)
    inbound_alias_reconnect(b, pub)
    wills(b, pub)
    dup_and_reason_codes(b, pub)
    connack_and_disconnect_props(b)
    shared_qos(b, pub)
    small_edges(b, pub, pub4)

    time.sleep(max(0.0, 2.5 - (time.monotonic() - t_qx)))
    qx, ack = raw(b, "it21-qexp", clean=False, cprops=[(0x11, 60)])
    p = next_packet(qx, what="[MQTT-4.3.3-7] the QoS 2 PUBLISH resent after its expiry")
    check(p.type == 3 and p.payload == b"short-lived" and p.dup and p.pid == qx_first.pid,
          "[MQTT-4.3.3-7] [MQTT-4.4.0-1] QoS 2 PUBLISH sent with Message Expiry 1 s, not "
          "acknowledged: resent on resume %.1f s later (no expiry once sent)" %
          (time.monotonic() - t_qx), p)
    log("# its Message Expiry Interval on the resend: %r" % p.props.get(0x02))
    qx.send(ack_pkt(5, p.pid, version=5))
    qx.expect(6, what="PUBREL")
    qx.send(ack_pkt(7, p.pid, version=5))
    qx.send(disconnect_pkt(5, dprops=[(0x11, 0)]))
    qx.close()

    time.sleep(max(0.0, 3.0 - (time.monotonic() - t_se)))
    pub("it21/expiry", "still", qos=1)
    m = se.recv_publish(5)
    check(m.payload == b"still", "[MQTT-4.1.0-1] a session with Session Expiry 1 s, connected "
          "for %.1f s, still has its subscription" % (time.monotonic() - t_se), m)
    se.close()
    se, ack = raw(b, "it21-expiry", clean=False, cprops=[(0x11, 1)])
    check_eq(ack.session_present, 1, "[MQTT-4.1.0-1] [MQTT-3.1.2-23] ... and it is resumed right "
             "after the connection closes (the expiry counts from the close)")
    se.close()
    acks_over_max_packet(b)


def acks_over_max_packet(b):
    # A SUBACK / UNSUBACK cannot be dropped like a PUBLISH: over the
    # client's Maximum Packet Size the connection ends with 0x95.
    for what, pkt in (("SUBACK", subscribe_pkt(5, [("it21/mps/%d" % i, 0) for i in range(30)], 5)),
                      ("UNSUBACK", unsubscribe_pkt(6, ["it21/mps/%d" % i for i in range(30)], 5))):
        r = Raw(b, version=5)
        r.connect("it21-mps-ack", version=5, cprops=[(0x27, 24)])
        r.send(pkt)
        got = r.wait_closed(3)
        check(len(got) == 1 and got[0].type == 14 and got[0].rc == 0x95 and len(got[0].raw) <= 24,
              "[MQTT-3.1.2-24] a %s of 30 reason codes over Maximum Packet Size 24 is not sent: "
              "DISCONNECT 0x95" % what, got)
    r = Raw(b, version=5)
    r.connect("it21-mps-ack", version=5, cprops=[(0x27, 24)])
    check_eq(r.subscribe([("it21/mps/%d" % i, 0) for i in range(10)], pid=7), [0] * 10,
             "a SUBACK that fits (15 bytes) is sent")
    r.close()


run(main)
