#!/usr/bin/python3
"""08: malformed and protocol-violating input. Each bad packet closes only
its own connection: 3.1.1 silently, 5.0 with a DISCONNECT (or, for a bad
CONNECT, optionally a CONNACK) carrying the reason code the spec names
(0x81 Malformed Packet, 0x82 Protocol Error, ...) [MQTT-4.13]. Meanwhile a
separate subscriber keeps receiving a steady QoS 1 stream. A packet above
max_packet_size closes the connection (5.0: 0x95); one of exactly that size
is accepted."""
import concurrent.futures
import threading
from harness import *

MAX_PACKET = 4096
WAIT_CLOSE_S = 3.0

MALFORMED = {0x81}
PROTOCOL = {0x82}
MAL_OR_PROTO = {0x81, 0x82}  # the spec forbids it but names no code


def hdr(b0, rem_len_bytes, body=b""):
    return bytes([b0]) + bytes(rem_len_bytes) + body


def with_first_byte(pkt, b0):
    return bytes([b0]) + pkt[1:]


def pub_body_raw(topic_bytes, payload=b"x", qos=0, pid=1, v=4, pprops=b""):
    body = u16(len(topic_bytes)) + topic_bytes
    if qos:
        body += u16(pid)
    if v == 5:
        body += pprops or props()
    return packet(3, qos << 1, body + payload)


# --- cases --------------------------------------------------------------
# Each: (name, version, phase, bytes, expectation)
#   phase "pre":     sent instead of CONNECT; must close with no packet.
#   phase "connect": a bad CONNECT. 3.1.1: close, CONNACK allowed only with
#                    rc in want (never 0). 5.0: close, no packet or a CONNACK
#                    with rc in want. If "required", the CONNACK must come.
#   phase "post":    after a good CONNECT/CONNACK. 3.1.1: close with no
#                    packet. 5.0: DISCONNECT with rc in want, then close.

def cases():
    out = []

    def pre(name, data):
        out.append((name, None, "pre", data, None, False))

    def con(name, v, data, want, required=False):
        out.append((name, v, "connect", data, want, required))

    def post(name, data_for_v, want5, versions=(4, 5)):
        for v in versions:
            out.append((name, v, "post", data_for_v(v), want5, False))

    pre("first packet PUBLISH, not CONNECT", publish_pkt("it08/x", "x"))
    pre("first packet PINGREQ, not CONNECT", pingreq_pkt())
    pre("first packet SUBSCRIBE, not CONNECT", subscribe_pkt(1, [("it08/#", 0)]))
    pre("CONNECT with 5-byte remaining length", b"\x10\xff\xff\xff\xff\x7f")

    for v in (4, 5):
        cid = "it08-c%d-" % v
        # 3.1.1: a CONNECT that does not conform is closed without a CONNACK
        # [MQTT-3.1.4-1]; 5.0 may send CONNACK with the reason first.
        MALFORMED = {0x81} if v == 5 else set()
        con("CONNECT reserved flag (bit 0) set", v,
            connect_pkt(cid + "rsv", version=v, flags_extra=0x01), MALFORMED)
        con("CONNECT fixed-header flags 0x1", v,
            with_first_byte(connect_pkt(cid + "fh", version=v), 0x11), MALFORMED)
        con("CONNECT will QoS 3", v,
            connect_pkt(cid + "wq3", version=v, will=("it08/w", "w", 3)), MALFORMED)
        con("CONNECT will QoS 1 without will flag", v,
            connect_pkt(cid + "wq", version=v, flags_extra=0x08), MALFORMED)
        con("CONNECT will retain without will flag", v,
            connect_pkt(cid + "wr", version=v, flags_extra=0x20), MALFORMED)
        con("CONNECT client id not valid UTF-8", v,
            connect_pkt(b"it08-\xff\xfe", version=v), {0x81, 0x85} if v == 5 else {0x02})
        con("CONNECT bad protocol name 'MQTX'", v,
            connect_pkt(cid + "name", version=v, proto_name=b"MQTX"),
            {0x84} if v == 5 else {0x01})
        con("CONNECT truncated (length says more than the fields hold)", v,
            packet(1, 0, s("MQTT") + bytes([v, 0x02]) + u16(60) + (b"\x00" if v == 5 else b"") +
                   u16(10) + b"abc"), MALFORMED)
    con("3.1.1 CONNECT password flag without username flag", 4,
        connect_pkt("it08-pwonly", version=4, password="x"), set())
    MALFORMED = {0x81}
    con("5.0 CONNECT with a PUBLISH-only property (topic alias)", 5,
        connect_pkt("it08-c5-prop", version=5, cprops=[(0x23, 1)]), MALFORMED)
    con("5.0 CONNECT with session expiry twice", 5,
        connect_pkt("it08-c5-dup", version=5, cprops=[(0x11, 1), (0x11, 2)]), PROTOCOL)
    # Unsupported protocol level: 3.1.1 says the server MUST answer CONNACK
    # 0x01 [MQTT-3.1.2-2]; 5.0 allows 0x84. Either wire form is accepted.
    for lvl in (2, 6):
        con("CONNECT unsupported protocol level %d" % lvl, lvl,
            packet(1, 0, s("MQTT") + bytes([lvl, 0x02]) + u16(60) + s("it08-lvl%d" % lvl)),
            {0x01, 0x84}, required=True)

    post("second CONNECT", lambda v: connect_pkt("it08-again", version=v), PROTOCOL)
    post("PUBLISH with QoS 3", lambda v: with_first_byte(publish_pkt("it08/q3", "x", 1, 5, version=v), 0x36),
         MALFORMED)
    post("PUBLISH with 5-byte remaining length", lambda v: b"\x30\xff\xff\xff\xff\x7f", MALFORMED)
    post("SUBSCRIBE with reserved flags 0000", lambda v: with_first_byte(subscribe_pkt(1, [("a", 0)], v), 0x80),
         MALFORMED)
    post("UNSUBSCRIBE with reserved flags 0000", lambda v: with_first_byte(unsubscribe_pkt(1, ["a"], v), 0xA0),
         MALFORMED)
    post("PUBREL with reserved flags 0000", lambda v: packet(6, 0, u16(1)), MALFORMED)
    post("PINGREQ with flags 0001", lambda v: b"\xc1\x00", MALFORMED)
    post("PINGREQ with remaining length 1", lambda v: b"\xc0\x01\x00", MALFORMED)
    post("packet type 0 (forbidden)", lambda v: b"\x00\x00", MAL_OR_PROTO)
    post("PUBLISH topic not valid UTF-8 (0xFF)", lambda v: pub_body_raw(b"it08/\xff", v=v), MALFORMED)
    post("PUBLISH topic with overlong UTF-8 (C0 AF)", lambda v: pub_body_raw(b"it08/\xc0\xaf", v=v),
         MALFORMED)
    post("PUBLISH topic with a UTF-16 surrogate (ED A0 80)", lambda v: pub_body_raw(b"it08/\xed\xa0\x80", v=v),
         MALFORMED)
    post("PUBLISH topic with U+0000", lambda v: pub_body_raw(b"it08/a\x00b", v=v), MALFORMED)
    post("PUBLISH topic length beyond the packet",
         lambda v: packet(3, 0, u16(100) + b"it08/short"), MALFORMED)
    # [MQTT-3.3.2-2] forbids wildcards in a topic name without naming a code:
    # 0x90 Topic Name invalid, 0x82 or 0x81 are all defensible.
    post("PUBLISH topic with '+'", lambda v: publish_pkt("it08/+", "x", version=v), {0x81, 0x82, 0x90})
    post("PUBLISH topic with '#'", lambda v: publish_pkt("it08/#", "x", version=v), {0x81, 0x82, 0x90})
    post("PUBLISH empty topic (no alias)", lambda v: publish_pkt("", "x", version=v),
         {0x81, 0x82, 0x90})
    post("PUBLISH QoS 1 with packet id 0", lambda v: publish_pkt("it08/p0", "x", 1, 0, version=v),
         MAL_OR_PROTO)
    post("PUBLISH QoS 2 with packet id 0", lambda v: publish_pkt("it08/p0", "x", 2, 0, version=v),
         MAL_OR_PROTO)
    post("SUBSCRIBE with no topic filter", lambda v: packet(8, 2, u16(1) + (props() if v == 5 else b"")),
         PROTOCOL)
    post("SUBSCRIBE with packet id 0", lambda v: subscribe_pkt(0, [("it08/s", 0)], v), MAL_OR_PROTO)
    post("SUBSCRIBE requested QoS 3", lambda v: subscribe_pkt(1, [("it08/s", 3)], v),
         PROTOCOL)  # 5.0 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3"
    post("SUBSCRIBE options reserved bits set", lambda v: subscribe_pkt(1, [("it08/s", 0xC1)], v),
         MALFORMED)
    post("SUBSCRIBE filter not valid UTF-8", lambda v: subscribe_pkt(1, [(b"it08/\xff", 0)], v), MALFORMED)
    post("UNSUBSCRIBE with no topic filter",
         lambda v: packet(10, 2, u16(1) + (props() if v == 5 else b"")), PROTOCOL)
    post("5.0 SUBSCRIBE retain handling 3", lambda v: subscribe_pkt(1, [("it08/s", 0x31)], v),
         PROTOCOL, versions=(5,))
    post("5.0 PUBLISH with message expiry twice",
         lambda v: publish_pkt("it08/d", "x", version=5, pprops=[(0x02, 5), (0x02, 6)]), PROTOCOL,
         versions=(5,))
    post("5.0 PUBLISH with an unknown property id 0x7F",
         lambda v: pub_body_raw(b"it08/u", v=5, pprops=b"\x02\x7f\x00"), MALFORMED, versions=(5,))
    post("5.0 PUBLISH with a CONNECT-only property (session expiry)",
         lambda v: publish_pkt("it08/u", "x", version=5, pprops=[(0x11, 5)]), MALFORMED, versions=(5,))
    post("5.0 PUBLISH property length beyond the packet",
         lambda v: pub_body_raw(b"it08/u", b"", v=5, pprops=b"\x40\x01\x00"), MALFORMED, versions=(5,))
    post("packet larger than max_packet_size (%d)" % MAX_PACKET,
         lambda v: publish_pkt("it08/big", b"x" * (MAX_PACKET + 16), version=v), {0x95})
    return out


def run_case(b, idx, case):
    name, v, phase, data, want, required = case
    r = Raw(b, version=v if v in (4, 5) else 4)
    if phase == "post":
        r.connect("it08-post-%d" % idx, version=v)
    r.send(data)
    try:
        got = r.wait_closed(WAIT_CLOSE_S)
        closed = True
    except Fail:
        got, closed = [], False
    reason = r.eof_reason
    r.close()
    return got, closed, reason


def judge(case, got, closed, reason):
    name, v, phase, data, want, required = case
    label = "%s [%s] -> " % (name, {None: "raw", 4: "3.1.1", 5: "5.0"}.get(v, "level %s" % v))
    evidence = "sent %s; received %r; %s" % (data[:24].hex(" "), got,
                                             "closed (%s)" % reason if closed else "NOT closed")
    if phase == "pre":
        check(closed and got == [], label + "closed without a reply", evidence)
    elif phase == "connect":
        if v == 5:
            ok = got == [] or (len(got) == 1 and got[0].type == 2 and got[0].rc in want)
        elif v == 4:
            ok = got == [] or (len(got) == 1 and got[0].type == 2 and got[0].rc in want)
        else:
            ok = (len(got) == 1 and got[0].type == 2 and
                  ((len(got[0].body) == 2 and got[0].rc == 0x01) or
                   (len(got[0].body) > 2 and got[0].rc == 0x84)))
        if required and not got:
            ok = False
        what = "closed" + (", CONNACK %s %s" % ("required:" if required else "if any:",
                                                 "/".join("%#04x" % c for c in sorted(want)))
                           if want else ", no CONNACK")
        check(closed and ok, label + what, evidence)
    else:
        if v == 4:
            check(closed and got == [], label + "closed without a reply", evidence)
        else:
            ok = len(got) == 1 and got[0].type == 14 and got[0].rc in want
            check(closed and ok, label + "DISCONNECT %s then close" %
                  "/".join("%#04x" % c for c in sorted(want)), evidence)


def main():
    b = Broker(max_packet_size=MAX_PACKET).start()

    watch = connected(b, "it08-watch")
    watch.subscribe("it08/stream", qos=1)
    streamer = connected(b, "it08-streamer", version=5)
    stop = threading.Event()
    sent = []

    def stream():
        i = 0
        while not stop.is_set():
            sent.append(streamer.publish("it08/stream", str(i), qos=1, wait=False))
            i += 1
            time.sleep(0.01)

    st = threading.Thread(target=stream, daemon=True)
    st.start()
    time.sleep(0.3)

    # The size limit, exactly and plus one byte, and what 5.0 CONNACK says.
    r = Raw(b, version=5)
    ack = r.connect("it08-size5", version=5)
    check_eq(ack.props.get(0x27), MAX_PACKET,
             "5.0 CONNACK advertises Maximum Packet Size %d" % MAX_PACKET)
    for v in (4, 5):
        r = Raw(b, version=v)
        r.connect("it08-exact-%d" % v, version=v)
        base = len(publish_pkt("it08/exact", b"", 1, 1, version=v))
        pl = MAX_PACKET - base - 1  # the remaining length grows to 2 bytes
        pkt = publish_pkt("it08/exact", b"y" * pl, 1, 7, version=v)
        pl += MAX_PACKET - len(pkt)
        pkt = publish_pkt("it08/exact", b"y" * pl, 1, 7, version=v)
        assert len(pkt) == MAX_PACKET, len(pkt)
        r.send(pkt)
        p = r.expect(4, what="PUBACK for a PUBLISH of exactly max_packet_size")
        check(p.pid == 7, "v%d PUBLISH of exactly %d bytes accepted (PUBACK)" % (v, MAX_PACKET))
        r.close()

    all_cases = cases()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        futs = [ex.submit(run_case, b, i, c) for i, c in enumerate(all_cases)]
        results = [f.result(timeout=WAIT_CLOSE_S + 20) for f in futs]
    log("# %d malformed-input cases ran in %.1f s" % (len(all_cases), time.monotonic() - t0))
    check(b.alive(), "broker still running after %d malformed inputs" % len(all_cases))
    failed = 0
    for case, res in zip(all_cases, results):
        try:  # report every case: each one is a separate finding
            judge(case, *res)
        except Fail:
            failed += 1
    time.sleep(0.3)
    stop.set()
    st.join(5)
    streamer.wait_acked(sent, 10)
    got = watch.wait_messages(len(sent), 10)
    seq = [int(m.payload) for m in got]
    check_eq(seq, list(range(len(sent))),
             "steady stream: subscriber got all %d QoS 1 messages in order" % len(sent))
    gaps = [b2.t - a.t for a, b2 in zip(got, got[1:])]
    check(max(gaps) < 1.0, "steady stream never stalled for 1 s (longest gap %.2f s)" % max(gaps))

    # A fresh client still works.
    c = connected(b, "it08-after")
    c.subscribe("it08/after", 1)
    c.publish("it08/after", "ok", qos=1)
    c.wait_topic("it08/after")
    check(True, "a new client connects, subscribes and receives after all that")
    check_eq(failed, 0, "all %d malformed-input cases behaved as specified" % len(all_cases))
    c.disconnect()
    watch.disconnect()
    streamer.disconnect()


run(main)
