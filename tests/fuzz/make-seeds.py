#!/usr/bin/env python3
"""Writes the committed seed corpora under tests/fuzz/corpus/<target>/.

The seeds are small, valid (or nearly valid) inputs that take each target
deep at once: real packets for codec, real config and password files, a
complete SCRAM exchange, and programs in the byte formats that
fuzz_session.c and fuzz_topic.c read (see the comments there). Running it
again rewrites the same files; libFuzzer's own finds are never committed
(run-ci.sh fuzzes a temporary copy).

    python3 tests/fuzz/make-seeds.py
"""

import base64
import hashlib
import hmac
import os
import sys
import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

_spec = importlib.util.spec_from_file_location(
    "harness", os.path.join(HERE, "..", "integration", "harness.py"))
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- codec
# Packets the existing seeds lack: the QoS 2 acks, 5.0 reason codes and
# properties, a will, PINGREQ and a stream of several packets.

def codec_seeds():
    P = H.props
    write("codec", "pubrec5", H.ack_pkt(5, 7, rc=0x10, version=5))
    write("codec", "pubrel5", H.ack_pkt(6, 7, rc=0x92, version=5))
    write("codec", "pubcomp", H.ack_pkt(7, 7))
    write("codec", "pingreq", H.pingreq_pkt())
    write("codec", "connect5-will", H.connect_pkt(
        "c1", version=5, will=("w/t", b"bye", 1, True), username="u", password=b"p",
        cprops=[(0x11, 60), (0x21, 10), (0x22, 5), (0x26, ("k", "v"))],
        will_props=[(0x18, 5), (0x01, 1), (0x03, "text/plain"), (0x08, "r/t"),
                    (0x09, b"corr")]))
    write("codec", "publish5-props", H.publish_pkt(
        "a/b", b"payload", qos=2, pid=9, retain=True, version=5,
        pprops=[(0x01, 1), (0x02, 30), (0x23, 3), (0x08, "resp"), (0x09, b"\x00\x01"),
                (0x26, ("k1", "v1")), (0x26, ("k2", "v2")), (0x0B, 12), (0x03, "ct")]))
    write("codec", "subscribe5-opts", H.subscribe_pkt(
        3, [("a/+/c", 0x2E), ("$share/g/x/#", 0x01), ("#", 0x02)], version=5,
        sprops=[(0x0B, 268435455), (0x26, ("k", "v"))]))
    write("codec", "unsubscribe5", H.unsubscribe_pkt(4, ["a/#", "$share/g/b"], version=5))
    write("codec", "disconnect5-props", H.disconnect_pkt(
        version=5, rc=0x04, dprops=[(0x11, 0), (0x1F, "bye")]))
    write("codec", "stream5", H.connect_pkt("s", version=5) +
          H.subscribe_pkt(1, [("t/#", 2)], version=5) +
          H.publish_pkt("t/1", b"x", qos=1, pid=2, version=5) +
          H.ack_pkt(4, 2, rc=0, version=5) + H.pingreq_pkt() + H.disconnect_pkt(version=5))


# ---------------------------------------------------------------- session
# fuzz_session.c's format: three limit bytes, then operations (byte % 10).

def sess_limits(ring, queued, bytes_byte=0):
    return bytes([ring - 1, queued - 1, bytes_byte])


def enq(new=True, pick=0, plen=1, expiry=None, qos=1, retain=False, subids=0, share=None):
    b = bytes([0, 0x80 if new else pick])
    if new:
        b += bytes([plen, 200 if expiry is None else expiry])
    f = (1 if qos == 2 else 0) | (2 if retain else 0) | (subids << 2) | (0x20 if share is not None
                                                                         else 0)
    b += bytes([f])
    if share is not None:
        b += bytes([share])
    return b


NEXT = bytes([2])


def ack(kind, index=0):
    """kind 0 PUBACK, 1 PUBREC, 2 PUBCOMP; index into the model's inflight."""
    return bytes([4, kind, index])


def take(*callback_bytes):
    return bytes([5]) + bytes(callback_bytes)


def qos2_seen(id_small, max_ids):
    return bytes([6, id_small, max_ids])


def qos2_release(id_small):
    return bytes([7, id_small])


def set_limits(ring, queued, bytes_byte=0):
    return bytes([8]) + sess_limits(ring, queued, bytes_byte)


def tick(units):  # 40 ms each
    return bytes([9, units])


def session_seeds():
    # The flow of a QoS 1 and a QoS 2 delivery, acknowledged in order.
    write("session", "qos1-qos2", sess_limits(4, 16) + enq(qos=1) + enq(qos=2, subids=2) +
          NEXT + NEXT + ack(0, 0) + ack(1, 0) + ack(2, 0) + NEXT)
    # A full window, acks out of order, a narrowed window.
    write("session", "window", sess_limits(3, 32) + enq() + enq(new=False) + enq(qos=2) +
          enq() + NEXT + NEXT + NEXT + NEXT + ack(0, 1) + NEXT + set_limits(1, 32) + ack(0, 0) +
          NEXT + ack(1, 0) + NEXT)
    # Queue bounds by count and by bytes.
    write("session", "queue-full", sess_limits(2, 3) + enq() + enq() + enq() + enq() +
          set_limits(2, 8, 130) + enq(plen=200) + enq(new=False) + NEXT + NEXT + NEXT)
    # Messages expiring in the queue.
    write("session", "expiry", sess_limits(1, 8) + enq(expiry=1) + enq(expiry=3) + enq() +
          NEXT + tick(40) + ack(0, 0) + NEXT + tick(100) + ack(0, 0) + NEXT)
    # Incoming QoS 2 ids up to the bound, resent, released.
    write("session", "qos2-in", sess_limits(1, 1) + qos2_seen(1, 3) + qos2_seen(2, 3) +
          qos2_seen(1, 3) + qos2_seen(3, 3) + qos2_seen(4, 3) + qos2_release(2) +
          qos2_release(2) + qos2_seen(4, 3))
    # Shared deliveries taken out of queue and inflight, QoS 2 staying.
    write("session", "take-shared", sess_limits(4, 16) + enq(share=0) + enq(qos=2, share=1) +
          enq() + NEXT + NEXT + enq(share=2) + enq(qos=2, share=0) + take(0, 0, 0) + NEXT +
          ack(1, 0))
    # The take_shared callback queues a taken delivery straight back as a
    # plain one while the taken node was the tail (issue 7: q_tail left NULL
    # and the next enqueue overwrote q_head). Fixed by the lead; kept as a
    # regression seed.
    write("session", "take-requeue-tail", sess_limits(4, 64) + enq() + enq(share=0) +
          take(0x03) + NEXT + NEXT)
    # Re-queued as shared, several times.
    write("session", "take-requeue-shared", sess_limits(2, 64) + enq(share=0) + enq() +
          enq(share=1) + take(0x01, 0x01) + take(0x03, 0x01) + NEXT + NEXT)


# ---------------------------------------------------------------- topic
# fuzz_topic.c's format: operations (byte % 8); strings are a token count
# then token bytes (see the tokens table there).

TOKENS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "/", "/", "/", "/",
          "+", "+", "#", "#", "$", "$share/", "$SYS/", "\u00e9", "ab", "ba", "aa", "/a", "a/",
          "g/", "", "/" * 16]
_BY_LONGEST = sorted(((t, i) for i, t in enumerate(TOKENS) if t), key=lambda x: -len(x[0]))


def tstr(text):
    raw = text.encode() if isinstance(text, str) else text
    items = []  # one per token the target reads: a table index, or 0xF0 and a raw byte
    i = 0
    while i < len(raw):
        for t, idx in _BY_LONGEST:
            tb = t.encode()
            if raw.startswith(tb, i):
                items.append(bytes([idx]))
                i += len(tb)
                break
        else:
            items.append(bytes([0xF0, raw[i]]))
            i += 1
    assert len(items) < 64
    return bytes([len(items)]) + b"".join(items)


def sub(f, owner=0, opts=1):
    return bytes([0]) + tstr(f) + bytes([owner, opts])


def unsub_index(i, other_owner=None):
    b = 1 if other_owner is None else 3 | (other_owner << 2)
    return bytes([2, b, i])


def match(name, filt="#"):
    return bytes([3]) + tstr(name) + tstr(filt)


def route(f, shard, present=True, pick=None, have_routes=False):
    b = bytes([5, (shard << 1) | (1 if present else 0)])
    if have_routes:
        if pick is not None:
            return b + bytes([0, pick])
        b += bytes([200])
    return b + tstr(f)


def retain(name, plen=5, bounded=None):
    """bounded: None, or (count_max, bytes_max or None)."""
    b = 1 if plen else 0
    if bounded:
        b |= 4 | (8 if bounded[1] is not None else 0)
    out = bytes([6]) + tstr(name) + bytes([b])
    if plen:
        out += bytes([plen])
    if bounded:
        out += bytes([bounded[0]])
        if bounded[1] is not None:
            out += bytes([bounded[1]])
    return out


def retain_match(f):
    return bytes([7]) + tstr(f)


def topic_seeds():
    write("topic", "subs-match", sub("a/b/c") + sub("a/+/c", 1) + sub("a/#", 2) + sub("#", 3) +
          sub("+/+/+", 4) + match("a/b/c") + match("a/b") + match("a") + unsub_index(0) +
          match("a/b/c", "a/+/c"))
    write("topic", "dollar", sub("#") + sub("+/x") + sub("$SYS/#", 1) + sub("$SYS/+/x", 2) +
          match("$SYS/a/x") + match("$x", "+") + match("$SYS", "$SYS/#"))
    write("topic", "shared", sub("$share/g/a/#") + sub("$share/g/a/#", 1) + sub("$share/h/a/#") +
          sub("a/#", 0) + match("a/b") + sub("$share/g/a/#", 0, 7) + match("a") +
          sub("$share//a") + sub("$share/g+/a") + sub("$share/g"))
    # Many siblings on one level and many owners on one filter: the hash
    # table of children and the (owner, group) index.
    wide = b"".join(sub("x/" + t, i % 24) for i, t in enumerate(
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "ab", "ba", "aa"]))
    many = b"".join(sub("m/+", i) for i in range(20))
    write("topic", "wide", wide + many + match("x/k") + match("m/z") +
          b"".join(unsub_index(0) for _ in range(12)) + match("m/q"))
    write("topic", "empty-levels", sub("/") + sub("//") + sub("a//b") + sub("+/") + sub("/#") +
          match("/") + match("a//b") + match("//") + match("/x"))
    write("topic", "invalid", sub("a+") + sub("a/#/b") + sub("##") + sub("a\x00b") +
          match("a/+") + match("") + sub("/" * 16 * 8 + "/"))
    write("topic", "routes", route("a/#", 1) + route("a/b", 2, have_routes=True) +
          route("+/b", 63, have_routes=True) + match("a/b") +
          route("", 2, present=False, pick=1, have_routes=True) + match("a/b"))
    write("topic", "retain", retain("a/b") + retain("a/c") + retain("$SYS/x") + retain("a") +
          retain_match("a/+") + retain_match("#") + retain_match("$SYS/#") + retain("a/b", 0) +
          retain_match("a/#") + retain("d", 9, (2, None)) + retain("e", 9, (0, 20)) +
          retain_match("+"))


# ---------------------------------------------------------------- config

CONFIG_FULL = """# every option ringmq reads
shards 2
cpu_affinity false
log_level info
allow_anonymous false
max_packet_size 65536
max_keepalive 600
max_inflight_messages 20
max_queued_messages 0
max_queued_bytes 1048576
persistent_client_expiration 2w
connect_timeout 5
max_output_buffer 65536
retain_available true
max_retained_messages 1000
max_retained_bytes 0
max_qos 2
max_topic_alias 10
max_subscriptions 100
max_topic_levels 32
sys_interval 10
auth_threads 2
password_file /etc/ringmq/passwd
auth_methods SCRAM-SHA-512

listener 1883 127.0.0.1
allow_anonymous true
max_connections -1
protocol mqtt

listener 8883 ::1
max_connections 100

listener 0
"""


def config_seeds():
    for name in ("production.conf", "ringmq.conf", "test.conf"):
        p = os.path.join(HERE, "..", "..", "configs", name)
        if os.path.exists(p):
            with open(p, "rb") as f:
                write("config", name, f.read())
    write("config", "full.conf", CONFIG_FULL)
    write("config", "crlf.conf", CONFIG_FULL.replace("\n", "\r\n"))
    write("config", "dup-listener.conf", "listener 1883 127.0.0.1\nlistener 1883 127.0.0.1\n")
    write("config", "mosquitto.conf", "persistence true\nlistener 1883\n")
    write("config", "ranges.conf", "max_packet_size 268435456\n")
    # Small files, a few options each: the fuzzer mutates values faster in
    # short inputs (every strcmp on a key costs it a hook).
    opts = [l for l in CONFIG_FULL.splitlines() if l and not l.startswith("#")
            and not l.startswith("listener")]
    for i in range(0, len(opts), 4):
        write("config", "opts-%02d.conf" % (i // 4), "\n".join(opts[i:i + 4]) + "\n")
    write("config", "tabs-comments.conf", "\t# x\n  shards\tauto  # c\nlog_level debug#x\n")


# ---------------------------------------------------------------- passwd

def b64(b):
    return base64.b64encode(b).decode()


def sha512_line(user, pw, salt):
    return "%s:$6$%s$%s" % (user, b64(salt), b64(hashlib.sha512(pw + salt).digest()))


def pbkdf2_line(user, pw, salt, it):
    dk = hashlib.pbkdf2_hmac("sha512", pw, salt, it, 64)
    return "%s:$7$%d$%s$%s" % (user, it, b64(salt), b64(dk))


def scram_keys(pw, salt, it):
    salted = hashlib.pbkdf2_hmac("sha512", pw, salt, it, 64)
    ck = hmac.new(salted, b"Client Key", hashlib.sha512).digest()
    return ck, hashlib.sha512(ck).digest(), hmac.new(salted, b"Server Key",
                                                     hashlib.sha512).digest()


def scram_line(user, pw, salt, it):
    _, stored, server = scram_keys(pw, salt, it)
    return "%s:SCRAM-SHA-512$%d:%s$%s:%s" % (user, it, b64(salt), b64(stored), b64(server))


def passwd_seeds():
    write("passwd", "mixed", "\n".join([
        "# mosquitto_passwd output and ringmq --scram-entry output",
        sha512_line("old", b"pw", b"saltsaltsalt"),
        pbkdf2_line("alice", b"wonderland", b"0123456789ab", 101),
        scram_line("carol", b"secret", b"sixteen-bytes-ok", 4096),
        "",
        "  spaced user  :  " + pbkdf2_line("x", b"p", b"s", 1).split(":", 1)[1] + "  ",
    ]) + "\n")
    write("passwd", "crlf", (sha512_line("a", b"1", b"s1") + "\r\n" +
                             pbkdf2_line("b", b"2", b"s2", 3) + "\r\n"))
    write("passwd", "scram-only", scram_line("u\u00e9", b"x", b"\x00\x01\x02", 1) + "\n" +
          scram_line("v", b"y", b"z" * 64, 100000))
    write("passwd", "plain-text", "user:password\n")
    write("passwd", "duplicate", sha512_line("a", b"1", b"s") + "\n" + sha512_line("a", b"2", b"t"))
    write("passwd", "garbled", "a:SCRAM-SHA-512$1:c2FsdA==$AAAA:AAAA\nb:$7$0$$\n")
    write("passwd", "empty", "")


# ---------------------------------------------------------------- scram
# fuzz_scram.c's format: flags, a u16 length and the client-first message,
# then the client-final message (or the extensions it is built with).

SERVER_NONCE = "fuzzServerNonce0123456789abcdefX"
ALICE = (b"wonderland", b"alice-salt-16by", 4096)


def scram_input(flags, first, rest=b""):
    first = first.encode() if isinstance(first, str) else first
    rest = rest.encode() if isinstance(rest, str) else rest
    return bytes([flags]) + len(first).to_bytes(2, "big") + first + rest


def alice_final(first, extensions=""):
    """The client-final message alice's client sends to fuzz_scram's server."""
    gs2, bare = first[:first.index(",", first.index(",") + 1) + 1], None
    bare = first[len(gs2):]
    cnonce = bare.split("r=", 1)[1].split(",")[0]
    pw, salt, it = ALICE
    sf = "r=%s%s,s=%s,i=%d" % (cnonce, SERVER_NONCE, b64(salt), it)
    without = "c=%s,r=%s%s%s" % (b64(gs2.encode()), cnonce, SERVER_NONCE, extensions)
    auth = ("%s,%s,%s" % (bare, sf, without)).encode()
    ck, stored, _ = scram_keys(pw, salt, it)
    sig = hmac.new(stored, auth, hashlib.sha512).digest()
    proof = bytes(a ^ b for a, b in zip(ck, sig))
    return without + ",p=" + b64(proof)


def scram_seeds():
    first = "n,,n=alice,r=clientNonce123"
    write("scram", "alice-ok", scram_input(0, first, alice_final(first)))
    first_x = "y,a=alice,n=alice,r=abc,x=ext"
    write("scram", "alice-ok-ext", scram_input(0, first_x, alice_final(first_x, ",e=more")))
    write("scram", "built-proof", scram_input(2, "n,,n=a=2Cb=3Dc,r=n0nce", ",z=1"))
    write("scram", "built-bad-proof", scram_input(4, "n,,n=alice,r=x", ""))
    write("scram", "unknown-user", scram_input(0, "n,,n=mallory,r=abc",
                                               "c=biws,r=abc" + SERVER_NONCE + ",p=" +
                                               b64(bytes(64))))
    write("scram", "pbkdf2-user", scram_input(2, "n,,n=bob,r=abc"))
    write("scram", "no-table", scram_input(3, "n,,n=alice,r=abc"))
    write("scram", "channel-binding", scram_input(0, "p=tls-unique,,n=alice,r=abc"))
    write("scram", "random-nonce", scram_input(0xF0, "n,,n=alice,r=abc", "c=biws,r=abc,p=AA=="))


# ---------------------------------------------------------------- acl
# fuzz_acl.c's format: an acl_file, then optionally a NUL and NUL-separated
# strings used as names, topics and filters.

ACL_EXAMPLE = """# This affects access control for clients with no username.
topic read $SYS/#

# This only affects clients with username "roger".
user roger
topic foo/bar

# This affects all clients.
pattern write $SYS/broker/connection/%c/state
"""

ACL_MIXED = """# anonymous clients
topic read public/#
topic deny public/private
topic write in/+/data

user alice
topic readwrite alice/#
topic read $SYS/broker/+
user bob smith
topic read my topic/with spaces
topic deny alice/#
user alice
topic write a//b

pattern readwrite home/%u/#
pattern read clients/%c/+/state
pattern deny home/%u/locked
pattern read %c
"""


def acl_seeds():
    write("acl", "aclfile.example", ACL_EXAMPLE)
    write("acl", "man-page", "pattern write sensor/%u/data\n"
          "pattern write $SYS/broker/connection/%c/state\n")
    write("acl", "mixed", ACL_MIXED)
    write("acl", "mixed-queries", ACL_MIXED + "\0alice\0home/alice/x\0public/+\0$SYS/broker/load"
          "\0clients/c/+/state\0+/+/#")
    write("acl", "crlf", ACL_MIXED.replace("\n", "\r\n"))
    write("acl", "wildcards", "topic #\ntopic deny a/+/c\ntopic read +/b/#\nuser u\n"
          "topic read +/+/+/+/+/+\ntopic deny x/#\n\0+/+/+/+/+/+/+/+\0a/b/c\0x")
    write("acl", "placeholders", "pattern read %u/%c/+/#\npattern write in/%c/%c\n"
          "pattern deny %u/%u\n\0u\0u/u\0in/u/u\0#")
    # '$' topics next to first-level wildcards, allows and denies.
    write("acl", "dollar", "topic read $SYS/#\ntopic read $x/+\ntopic deny +/y\ntopic deny +\n"
          "topic read +/z\npattern read %c/q\npattern deny %u/#\n\0$x/y\0$SYS/y\0$c")
    write("acl", "bad-lines", "topic read\nuser\npattern read a/x%u\ntopic a/#/b\nfoo\n")
    write("acl", "bad-access", "topic reed a/b\n")


def main():
    codec_seeds()
    session_seeds()
    topic_seeds()
    config_seeds()
    passwd_seeds()
    scram_seeds()
    acl_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
