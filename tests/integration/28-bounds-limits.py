#!/usr/bin/python3
"""28: the configured bounds of issue 7 (defects 7, 9, 10, 11 and 13), as a
client sees them.

- max_connect_size: with 4096, a 5.0 CONNECT of 10000 bytes gets CONNACK
  0x95 and is closed, a 3.1.1 one is closed without CONNACK, whole or in
  pieces; 4096 bytes works, 4097 does not. With the default (64 KiB), 200
  sockets that each send 3 KB of a CONNECT declaring 1000000 bytes (under
  max_packet_size) are closed at once, long before connect_timeout, and
  the broker's RSS hardly moves.
- max_sessions 5: a sixth new client id gets CONNACK 3 (3.1.1) / 0x97
  (5.0); resuming and taking over existing sessions still works; once a
  session has ended a new id is accepted again.
- memory_limit 64M: offline persistent sessions filled with 64 KB QoS 1
  messages until the limit is reached (at 90% new sessions get 0x89, when
  the filler is caught between the marks, and the filler is held: counted,
  slowed, not disconnected); then new sessions get 0x97 / code 3, a 5.0 QoS
  1 PUBLISH gets PUBACK 0x97, a connected QoS 0 pair still exchanges
  messages, and RSS stays under the limit plus an overhead. A stored
  session resumes over the limit and gets its messages; once the stored
  sessions are replaced by clean ones, memory is under 80% again (logged),
  a new session is accepted and the filler's PUBLISH is accepted (0x10: no
  subscribers are left).
- max_keepalive 30: a 3.1.1 (and 3.1) keepalive of 0 is refused with
  CONNACK 2, as one over the maximum; 5.0 keepalive 0 gets Server Keep
  Alive 30. Without max_keepalive, keepalive 0 is accepted in both.
- Many subscriptions and QoS 2 ids (functional, no timing): 5000 of 10000
  subscriptions removed by one UNSUBSCRIBE (5000 success codes; the removed
  ones no longer deliver, the kept ones do); 60000 QoS 2 ids awaiting
  PUBREL released in scrambled order, each PUBCOMP 0x00, a second PUBREL
  0x92.
- max_topic_levels 4: PUBLISH to five levels gets PUBACK 0x90 (5.0) and is
  not delivered, four levels are; SUBSCRIBE to five levels gets 0x8F (5.0)
  / 0x80 (3.1.1); a five-level will topic gets CONNACK 0x90 (5.0).

Every wait is bounded and generous; nothing depends on the machine's speed.
RSS is not checked under ASan (its allocator keeps freed memory)."""
import random
import select
import socket
import threading
from harness import *

ANSWER_S = 5.0 + SLACK_S


def start(what, **conf):
    """A broker with conf, or a failed check (an unknown key stops it)."""
    try:
        return Broker(**conf).start()
    except Fail as e:
        check(False, "a broker configured with %s starts" % what, str(e))
        return None


def send_pieces(r, data, piece, pause=0.005):
    """Sends data in pieces; False once the broker closed the connection."""
    r.sock.settimeout(10.0)
    for i in range(0, len(data), piece):
        try:
            if not r.send(data[i:i + piece]):
                return False
        except OSError:
            return False
        time.sleep(pause)
    return True



def recv_n(r, n, timeout):
    """Up to n packets, each within timeout of the one before."""
    got = []
    try:
        while len(got) < n:
            got.append(r.recv(timeout))
    except (TimeoutError, Closed):
        pass
    return got


def refused(r, timeout=ANSWER_S):
    """What the broker sent before closing (a list of packets), or None if
    the connection is still open after timeout."""
    try:
        return r.wait_closed(timeout)
    except Fail:
        return None


def connect_of_size(cid, version, total):
    """A CONNECT of exactly total bytes: 5.0 pads a user property, 3.1.1 a
    password (with a user name)."""
    def build(n):
        if version == 5:
            return connect_pkt(cid, version=5, keepalive=0, cprops=[(0x26, ("pad", "p" * n))])
        return connect_pkt(cid, version=version, keepalive=0, username="u", password="p" * n)
    n = 0
    for _ in range(4):  # the remaining length's own size may change once
        n += total - len(build(n))
        if len(build(n)) == total:
            return build(n)
    raise Fail("cannot build a CONNECT of %d bytes" % total)


def open_clients(b, prefix, n, version=4, clean=True):
    out = []
    for i in range(n):
        r = Raw(b, version=version)
        r.connect("%s%d" % (prefix, i), version=version, clean=clean, keepalive=0)
        out.append(r)
    return out


def goodbye(*rs):
    for r in rs:
        r.send(disconnect_pkt(r.version))
        r.close()


class Reader:
    """Reads a Raw connection in a thread: PUBLISH packets (QoS 1 / 2
    acknowledged) into got, everything else into other."""

    def __init__(self, r):
        self.r = r
        self.got = []
        self.other = []
        self.closed = False
        self.cv = threading.Condition()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        v = self.r.version
        while not self.stop.is_set():
            try:
                p = self.r.recv(0.2)
            except TimeoutError:
                continue
            except Closed:
                break
            if p.type == 3 and p.qos == 1:
                self.r.send(ack_pkt(4, p.pid, version=v))
            elif p.type == 3 and p.qos == 2:
                self.r.send(ack_pkt(5, p.pid, version=v))
            elif p.type == 6:
                self.r.send(ack_pkt(7, p.pid, version=v))
            with self.cv:
                (self.got if p.type == 3 else self.other).append(p)
                self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def wait(self, pred, timeout):
        with self.cv:
            return self.cv.wait_for(lambda: pred(self.got) or self.closed, timeout=timeout) \
                and pred(self.got)

    def publishes(self):
        with self.cv:
            return list(self.got)

    def close(self):
        self.stop.set()
        self.t.join(timeout=5)


def publish_qos1_all(pub, items, window=50, timeout=30.0):
    """Publishes (topic, payload) at QoS 1 keeping window in flight; returns
    {pid: PUBACK reason} for what was acknowledged within timeout."""
    acks = {}
    pending = set()
    i = 0
    deadline = time.monotonic() + timeout
    try:
        while (i < len(items) or pending) and time.monotonic() < deadline:
            batch = b""
            while i < len(items) and len(pending) < window:
                pid = i % 65535 + 1
                batch += publish_pkt(items[i][0], items[i][1], qos=1, pid=pid,
                                     version=pub.version)
                pending.add(pid)
                i += 1
            if batch:
                pub.send(batch)
            p = pub.recv(max(0.01, deadline - time.monotonic()))
            if p.type == 4 and p.pid in pending:
                pending.discard(p.pid)
                acks[p.pid] = p.rc
    except (TimeoutError, Closed):
        pass
    return acks


# ---------------------------------------------------------------------------
# Defect 7: max_connect_size


def connect_size():
    b = start("max_connect_size 4096", max_connect_size=4096)
    if not b:
        return
    for version in (5, 4):
        name = "5.0" if version == 5 else "3.1.1"
        want = [(2, 0x95)] if version == 5 else []
        what = "CONNACK 0x95, then closed" if version == 5 else "closed without CONNACK"
        for piece in (None, 1000):
            r = Raw(b, version=version)
            pkt = connect_of_size("it28-big-v%d" % version, version, 10000)
            if piece is None:
                r.send(pkt)
            else:
                send_pieces(r, pkt, piece)
            got = refused(r)
            check(got is not None and [(p.type, p.rc) for p in got] == want,
                  "max_connect_size 4096: a %s CONNECT of 10000 bytes%s: %s" %
                  (name, "" if piece is None else " in %d-byte pieces" % piece, what), got)
            r.close()
        # The fixed header alone first: the size is known before the
        # protocol level; the broker waits for the few bytes that tell the
        # version, so a 5.0 client still learns why.
        for first in (3, 6, 9):
            r = Raw(b, version=version)
            pkt = connect_of_size("it28-hdr-v%d" % version, version, 10000)
            r.send(pkt[:first])
            time.sleep(0.2)
            send_pieces(r, pkt[first:], 1000)
            got = refused(r)
            check(got is not None and [(p.type, p.rc) for p in got] == want,
                  "max_connect_size 4096: a %s CONNECT of 10000 bytes whose first piece is "
                  "%d bytes: %s" % (name, first, what), got)
            r.close()
        # The limit itself and one byte over.
        r = Raw(b, version=version)
        r.send(connect_of_size("it28-limit-v%d" % version, version, 4097))
        got = refused(r)
        check(got is not None and [(p.type, p.rc) for p in got] == want,
              "max_connect_size 4096: a %s CONNECT of 4097 bytes: %s" % (name, what), got)
        r.close()
        for total, piece in ((4096, None), (4000, None), (4000, 500)):
            r = Raw(b, version=version)
            pkt = connect_of_size("it28-fits-v%d-%d" % (version, total), version, total)
            sent = r.send(pkt) if piece is None else send_pieces(r, pkt, piece)
            ack = next_of(r, 2, ANSWER_S)
            r.send(pingreq_pkt())
            pong = next_of(r, 13, ANSWER_S)
            check(sent and ack is not None and ack.rc == 0 and pong is not None,
                  "max_connect_size 4096: a %s CONNECT of %d bytes%s gets CONNACK 0 and the "
                  "connection answers PINGREQ" %
                  (name, total, "" if piece is None else " in %d-byte pieces" % piece),
                  (ack, pong))
            goodbye(r)


def declared_too_large(b):
    """200 sockets each send 3 KB of a CONNECT whose fixed header declares
    1000000 bytes: over the default max_connect_size (64 KiB), under
    max_packet_size (1 MiB). connect_timeout is 60 s: only the size check
    closes them within the bound."""
    n, declared = 200, 1000000
    head = packet(1, 0, b"")[:1] + varint(declared)
    body = s("MQTT") + bytes([4, 0x02]) + u16(0) + s("it28-decl") + b"\x00" * 3000
    chunk = head + body[:3072 - len(head)]
    pid = b.proc.pid
    asan = sanitized(pid)
    time.sleep(0.3)
    base = rss_kb(pid)
    socks = []
    for i in range(n):
        sk = socket.socket()
        sk.settimeout(10)
        sk.connect((HOST, b.port))
        try:
            sk.sendall(chunk)
        except OSError:
            pass  # closed already: what the check wants
        socks.append(sk)
    peak = rss_kb(pid)
    # Wait for EOF (or a reset) on every socket; each sent nothing back.
    open_ = set(range(n))
    talked = []
    deadline = time.monotonic() + 5.0 + 2 * SLACK_S
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select([socks[i] for i in open_], [], [],
                                    max(0.01, min(0.5, deadline - time.monotonic())))
        for sk in ready:
            i = socks.index(sk)
            try:
                d = sk.recv(4096)
            except OSError:
                d = b""
            if d:
                talked.append(d[:8])
                continue
            open_.discard(i)
        peak = max(peak, rss_kb(pid))
    check(not open_, "%d sockets each sending 3 KB of a CONNECT declaring %d bytes (over the "
          "default max_connect_size 65536) are all closed within %.0f s (connect_timeout is 60)"
          % (n, declared, 5.0 + 2 * SLACK_S), "%d still open" % len(open_))
    check(not talked, "those sockets got no bytes back (3.1.1: no CONNACK)", talked[:5])
    grown = (peak - base) / 1024.0
    log("# declared-size sockets: RSS %d KiB before, peak %d KiB (%+.1f MiB)" %
        (base, peak, grown))
    if asan:
        log("# ASan build: RSS growth not checked")
    else:
        check(grown < 8.0, "the broker's RSS grew by less than 8 MiB meanwhile",
              "%.1f MiB" % grown)
    for sk in socks:
        sk.close()
    r = Raw(b)
    r.connect("it28-after-decl", keepalive=0)
    r.send(pingreq_pkt())
    check(next_of(r, 13, ANSWER_S) is not None,
          "afterwards a new client connects and gets PINGRESP")
    goodbye(r)


# ---------------------------------------------------------------------------
# Defect 9: max_sessions and memory_limit


def max_sessions():
    b = start("max_sessions 5", max_sessions=5)
    if not b:
        return
    # Five persistent sessions: three disconnected, two connected.
    away = open_clients(b, "it28-sess", 3, clean=False)
    goodbye(*away)
    here = [Raw(b), Raw(b)]
    for i, r in enumerate(here):
        r.connect("it28-sess%d" % (3 + i), clean=False, keepalive=0)

    r = Raw(b)
    ack = r.connect("it28-sess-new", clean=False, keepalive=0, expect_rc=None)
    check_eq(ack.rc, 3, "max_sessions 5, 5 sessions: a 6th client id (3.1.1, clean session "
             "0) gets CONNACK 3 (server unavailable)")
    r.close()
    r = Raw(b)
    ack = r.connect("it28-sess-new-clean", clean=True, keepalive=0, expect_rc=None)
    check_eq(ack.rc, 3, "a 6th client id with clean session 1 (a session while connected) "
             "gets CONNACK 3 too")
    r.close()
    r = Raw(b, version=5)
    ack = r.connect("it28-sess-new5", version=5, keepalive=0, expect_rc=None,
                    cprops=[(0x11, 300)])
    check_eq(ack.rc, 0x97, "a 6th client id (5.0) gets CONNACK 0x97 Quota exceeded")
    r.close()

    r = Raw(b)
    ack = r.connect("it28-sess0", clean=False, keepalive=0, expect_rc=None)
    check(ack.rc == 0 and ack.session_present == 1,
          "at max_sessions a disconnected session is resumed (CONNACK 0, session present)", ack)
    goodbye(r)
    r = Raw(b)
    ack = r.connect("it28-sess3", clean=False, keepalive=0, expect_rc=None)
    check(ack.rc == 0 and ack.session_present == 1,
          "at max_sessions a connected session is taken over (CONNACK 0, session present)", ack)
    check(refused(here[0]) is not None, "the taken-over connection is closed")
    here[0] = r

    # End a session: a clean-session connect and disconnect of an existing id.
    r = Raw(b)
    ack = r.connect("it28-sess1", clean=True, keepalive=0, expect_rc=None)
    check_eq(ack.rc, 0, "at max_sessions an existing id connecting with clean session 1 "
             "is accepted (its old session ends)")
    goodbye(r)

    # The session ends when the broker handles the DISCONNECT; a CONNECT on
    # another shard may come first: retry (refusals create nothing).
    got = []

    def new_id_accepted():
        r = Raw(b)
        ack = r.connect("it28-sess-after", clean=False, keepalive=0, expect_rc=None)
        got.append(ack.rc)
        if ack.rc == 0:
            goodbye(r)
            return True
        r.close()
        return False
    check(wait_until(new_id_accepted, ANSWER_S, 0.1),
          "after one session ended, a new client id gets CONNACK 0", got)
    r = Raw(b, version=5)
    ack = r.connect("it28-sess-after5", version=5, keepalive=0, expect_rc=None)
    check_eq(ack.rc, 0x97, "with 5 sessions again, the next new client id gets 0x97")
    r.close()
    goodbye(*here)


def memory_limit():
    limit_mib = 64
    b = start("memory_limit 64M", memory_limit="%dM" % limit_mib, max_queued_messages=1000000)
    if not b:
        return
    pid = b.proc.pid
    asan = sanitized(pid)
    # Connected before the limit is reached: a QoS 0 pair and a 5.0 prober.
    lsub = Raw(b)
    lsub.connect("it28-mem-lsub", keepalive=0)
    lsub.subscribe([("it28/live", 0)])
    lpub = Raw(b)
    lpub.connect("it28-mem-lpub", keepalive=0)
    probe = Raw(b, version=5)
    probe.connect("it28-mem-probe", version=5, keepalive=0)
    # 20 offline persistent sessions subscribed to fill/#: every stored
    # message stays until they come back.
    subs = open_clients(b, "it28-mem-sub", 20, clean=False)
    for r in subs:
        r.subscribe([("fill/#", 1)])
    goodbye(*subs)

    fill = Raw(b, version=5)
    fill.connect("it28-mem-fill", version=5, keepalive=0)
    payload = b"m" * 65536
    reached = lambda: b.log_grep("reached memory_limit")
    near = lambda: b.log_grep("90% of memory_limit")
    near_probed = False
    pending, sent, refusals, nxt = set(), 0, 0, 0
    cap = 4 * limit_mib * 16  # 4x the limit in 64 KB messages
    # Generous: from 90% on the filler is held, about one message per
    # hold lease (100 ms) gets through.
    deadline = time.monotonic() + 60.0
    try:
        while sent < cap and time.monotonic() < deadline and not refusals:
            batch = b""
            while len(pending) < 8 and sent < cap:
                nxt = nxt % 65535 + 1
                batch += publish_pkt("fill/x", payload, qos=1, pid=nxt, version=5)
                pending.add(nxt)
                sent += 1
            fill.send(batch)
            if not near_probed:
                # Paced until 90%, so that a memory sample (every 50 ms)
                # sees usage between the marks and the hold can engage.
                time.sleep(0.002)
            p = fill.recv(max(0.01, deadline - time.monotonic()))
            if p.type == 4:
                pending.discard(p.pid)
                refusals += p.rc == 0x97
            if sent % 64 == 0 and reached():
                break
            if sent % 8 == 0 and not near_probed and near() and not reached():
                # Between 90% and the limit (when the filler is caught
                # there: one sample may pass both marks).
                near_probed = True
                r = Raw(b, version=5)
                ack = r.connect("it28-mem-near5", version=5, keepalive=0, expect_rc=None)
                r.close()
                if not reached():
                    check_eq(ack.rc, 0x89, "at 90% of memory_limit a new 5.0 session gets "
                             "CONNACK 0x89 Server busy")
    except (TimeoutError, Closed) as e:
        log("# filler stopped: %r" % e)
    log("# filled with %d messages of 64 KB (%d MiB) for 20 offline sessions; 0x97 seen: %d" %
        (sent, sent // 16, refusals))
    check(wait_until(reached, 2.0 + SLACK_S, 0.1),
          "memory_limit 64M: filling offline sessions with 64 KB QoS 1 messages, the log says "
          "the memory limit was reached", b.log_grep("memory")[-3:])

    check(near(), "the log said 90% of memory_limit was reached first (new connections "
          "refused from there)", b.log_grep("memory")[-3:])
    r = Raw(b, version=5)
    ack = r.connect("it28-mem-new5", version=5, keepalive=0, expect_rc=None)
    check_eq(ack.rc, 0x97, "over memory_limit a new 5.0 CONNECT gets CONNACK 0x97")
    r.close()
    r = Raw(b)
    ack = r.connect("it28-mem-new4", keepalive=0, expect_rc=None)
    check_eq(ack.rc, 3, "over memory_limit a new 3.1.1 CONNECT gets CONNACK 3")
    r.close()
    probe.send(publish_pkt("fill/x", b"probe", qos=1, pid=77, version=5))
    ack = next_of(probe, 4, ANSWER_S)
    check(ack is not None and ack.pid == 77 and ack.rc == 0x97,
          "over memory_limit a connected 5.0 client's QoS 1 PUBLISH gets PUBACK 0x97", ack)

    lpub.send(b"".join(publish_pkt("it28/live", b"%d" % i) for i in range(10)))
    got = []
    try:
        while len(got) < 10:
            got.append(lsub.recv_publish(ANSWER_S))
    except (Fail, Closed):
        pass
    check_eq([int(p.payload) for p in got], list(range(10)),
             "over memory_limit a connected QoS 0 pair still exchanges its 10 messages")
    lpub.send(pingreq_pkt())
    check(b.alive() and next_of(lpub, 13, ANSWER_S) is not None,
          "the broker is alive and answers PINGREQ")
    # The hold engages from the sample that saw 90%; one sample may pass
    # both marks (a busy machine delays the sampler), and then nothing was
    # stored while near.
    stamp = lambda lines: lines[0].split()[0] if lines else None
    if stamp(near()) != stamp(reached()):
        c = stats_counters(b, ANSWER_S)
        log("# 90%% of memory_limit at %s, the limit at %s; holds for memory: %s" %
            (stamp(near()), stamp(reached()), c.get("flow publishers held for memory")))
        check(c.get("flow publishers held for memory", 0) > 0,
              "from 90% of memory_limit the filler, whose messages were stored for offline "
              "sessions, was held (counted)", c)
    else:
        log("# one memory sample passed 90% and the limit: the hold is not checked")
    fill.send(pingreq_pkt())
    check(next_of(fill, 13, ANSWER_S) is not None,
          "the held filler is slowed, not disconnected: its PINGREQ is answered")
    rss = rss_kb(pid) / 1024.0
    log("# broker RSS over memory_limit: %.1f MiB" % rss)
    if asan:
        log("# ASan build: RSS not checked")
    else:
        # Overhead: the receive-buffer rings (8 MiB per shard, not counted),
        # the allocator's own pages, thread stacks, code.
        check(rss < limit_mib + 100, "broker RSS %.0f MiB stays under memory_limit %d MiB + "
              "100 MiB" % (rss, limit_mib), "%.1f MiB" % rss)

    # The sessions that hold the memory may come back: a resumed one gets
    # its messages (refusing it would leave the memory held for good).
    r = Raw(b)
    ack = r.connect("it28-mem-sub0", clean=False, keepalive=0, expect_rc=None)
    check(ack.rc == 0 and ack.session_present,
          "over memory_limit a stored session resumes (CONNACK 0, session present)", ack)
    if ack.rc == 0:
        p = next_of(r, 3, ANSWER_S)
        check(p is not None and p.topic == "fill/x" and p.payload == payload,
              "the resumed session gets its first stored 64 KB message", p)
    goodbye(r)
    # Replaced by clean sessions, the stored ones free their messages.
    for i in range(20):
        r = Raw(b)
        ack = r.connect("it28-mem-sub%d" % i, clean=True, keepalive=0, expect_rc=None)
        check_eq(ack.rc, 0, "over or near memory_limit a clean CONNECT replaces stored "
                 "session %d" % i)
        goodbye(r)
    calm = lambda: b.log_grep("under 80% of memory_limit")
    check(wait_until(calm, 5.0 + SLACK_S, 0.1),
          "with the stored sessions gone memory is under 80% of memory_limit again (logged)",
          b.log_grep("memory")[-3:])
    r = Raw(b)
    ack = r.connect("it28-mem-after", keepalive=0, expect_rc=None)
    check_eq(ack.rc, 0, "under 80% of memory_limit a new session is accepted again")
    goodbye(r)
    fill.send(publish_pkt("fill/x", b"after", qos=1, pid=78, version=5))
    ack = next_of(fill, 4, ANSWER_S)
    check(ack is not None and ack.pid == 78 and ack.rc == 0x10,
          "the filler goes on: its QoS 1 PUBLISH gets PUBACK 0x10 (no subscribers now, not "
          "0x97)", ack)
    goodbye(lsub, lpub, probe, fill)


# ---------------------------------------------------------------------------
# Defect 10: keepalive 0 and max_keepalive


def keepalive_zero():
    b = start("max_keepalive 30", max_keepalive=30)
    if not b:
        return
    for version, name in ((4, "3.1.1"), (3, "3.1")):
        r = Raw(b, version=version)
        ack = r.connect("it28-ka0-v%d" % version, version=version, keepalive=0, expect_rc=None)
        check_eq(ack.rc, 2, "max_keepalive 30: a %s CONNECT with keepalive 0 gets CONNACK 2, "
                 "as one over the maximum" % name)
        r.close()
    r = Raw(b)
    ack = r.connect("it28-ka31", keepalive=31, expect_rc=None)
    check_eq(ack.rc, 2, "max_keepalive 30: 3.1.1 keepalive 31 gets CONNACK 2")
    r.close()
    r = Raw(b)
    ack = r.connect("it28-ka30", keepalive=30, expect_rc=None)
    check_eq(ack.rc, 0, "max_keepalive 30: 3.1.1 keepalive 30 gets CONNACK 0")
    goodbye(r)
    r = Raw(b, version=5)
    ack = r.connect("it28-ka0-v5", version=5, keepalive=0, expect_rc=None)
    check(ack.rc == 0 and ack.props.get(0x13) == 30,
          "max_keepalive 30: a 5.0 CONNECT with keepalive 0 gets CONNACK 0 with Server Keep "
          "Alive 30", ack)
    goodbye(r)


def keepalive_zero_default(b):
    r = Raw(b)
    ack = r.connect("it28-ka0-dflt", keepalive=0, expect_rc=None)
    check_eq(ack.rc, 0, "without max_keepalive a 3.1.1 CONNECT with keepalive 0 gets CONNACK 0")
    goodbye(r)
    r = Raw(b, version=5)
    ack = r.connect("it28-ka0-dflt5", version=5, keepalive=0, expect_rc=None)
    check(ack.rc == 0 and 0x13 not in ack.props,
          "without max_keepalive a 5.0 CONNECT with keepalive 0 gets CONNACK 0 and no Server "
          "Keep Alive", ack)
    goodbye(r)


# ---------------------------------------------------------------------------
# Defect 11: many subscriptions, many QoS 2 ids


def many_subscriptions(b):
    n = 10000
    sub = Raw(b, version=5)
    sub.connect("it28-many-sub", version=5, keepalive=0)
    codes = []
    for k in range(10):
        codes += sub.subscribe([("d11/%d" % i, 1) for i in range(k * 1000, (k + 1) * 1000)],
                               pid=k + 1)
    check(len(codes) == n and set(codes) == {1},
          "10000 subscriptions in 10 SUBSCRIBE packets: all granted QoS 1",
          "%d codes, %s" % (len(codes), sorted(set(codes))))
    removed = ["d11/%d" % i for i in range(0, n, 2)]
    sub.send(unsubscribe_pkt(100, removed, version=5))
    ua = sub.expect(11, timeout=10.0 + SLACK_S, what="UNSUBACK")
    check(ua.pid == 100 and len(ua.codes) == 5000 and set(ua.codes) == {0},
          "one UNSUBSCRIBE of 5000 of them: UNSUBACK with 5000 success codes",
          "pid %d, %d codes, %s" % (ua.pid, len(ua.codes), sorted(set(ua.codes))))

    rd = Reader(sub)
    pub = Raw(b, version=5)
    pub.connect("it28-many-pub", version=5, keepalive=0)
    # Every fifth topic, removed (even) and kept (odd) alike; the last one is
    # kept, and one publisher's messages arrive in order: once it is here,
    # any removed one would have arrived before it.
    topics = ["d11/%d" % i for i in range(0, n, 5)]
    acks = publish_qos1_all(pub, [(t, t.encode()) for t in topics], timeout=30.0 + SLACK_S)
    check_eq(len(acks), len(topics), "the publisher gets its %d PUBACKs" % len(topics))
    last = topics[-1]
    rd.wait(lambda got: any(p.topic == last for p in got), 10.0 + SLACK_S)
    got = [p.topic for p in rd.publishes()]
    kept = [t for t in topics if int(t.split("/")[1]) % 2]
    check_eq(sorted(got), sorted(kept),
             "after the UNSUBSCRIBE only the %d kept subscriptions deliver (none of the "
             "removed ones)" % len(kept))
    rd.close()
    goodbye(pub, sub)


def many_qos2_ids(b):
    n = 60000
    watch = Raw(b)
    watch.connect("it28-q2-watch", keepalive=0)
    watch.subscribe([("d11/q2after", 1)])
    pub = Raw(b, version=5)
    ack = pub.connect("it28-q2-pub", version=5, keepalive=0)
    check(ack.props.get(0x21, 65535) >= n,
          "max_inflight_messages 65535: CONNACK's Receive Maximum allows %d QoS 2 in flight" % n,
          ack)
    recs = {}
    batch = 1000
    for start in range(1, n + 1, batch):
        ids = range(start, min(n + 1, start + batch))
        pub.send(b"".join(publish_pkt("d11/q2", b"", qos=2, pid=i, version=5) for i in ids))
        for p in recv_n(pub, len(ids), 10.0 + SLACK_S):
            recs[p.pid] = (p.type, p.rc)
    check(len(recs) == n and all(t == 5 and rc < 0x80 for t, rc in recs.values()),
          "%d QoS 2 PUBLISH without PUBREL: each gets a PUBREC" % n,
          "%d PUBRECs, %r" % (len(recs), [(k, v) for k, v in recs.items()
                                          if v[0] != 5 or v[1] >= 0x80][:5]))
    order = list(range(1, n + 1))
    random.Random(11).shuffle(order)
    comps = {}
    for k in range(0, n, batch):
        ids = order[k:k + batch]
        pub.send(b"".join(ack_pkt(6, i, version=5) for i in ids))
        for p in recv_n(pub, len(ids), 10.0 + SLACK_S):
            comps[p.pid] = (p.type, p.rc)
    bad = [(k, v) for k, v in comps.items() if v != (7, 0)]
    check(len(comps) == n and not bad,
          "PUBREL for all %d in scrambled order: each gets PUBCOMP 0x00" % n,
          "%d PUBCOMPs, bad %r" % (len(comps), bad[:5]))
    again = order[:1000]
    pub.send(b"".join(ack_pkt(6, i, version=5) for i in again))
    twice = {}
    for p in recv_n(pub, len(again), 10.0 + SLACK_S):
        twice[p.pid] = (p.type, p.rc)
    bad = [(k, v) for k, v in twice.items() if v != (7, 0x92)]
    check(len(twice) == len(again) and not bad,
          "a second PUBREL for 1000 of those ids: each gets PUBCOMP 0x92", bad[:5])
    # A released id is free: the same id again is a new message, delivered.
    pub.publish("d11/q2after", b"new", qos=2, pid=order[0])
    try:
        got = watch.recv_publish(ANSWER_S)
    except Fail:
        got = None
    check(got is not None and got.payload == b"new",
          "a released packet id reused for a new QoS 2 message is delivered", got)
    goodbye(pub, watch)


# ---------------------------------------------------------------------------
# Defect 13: max_topic_levels


def topic_levels():
    b = start("max_topic_levels 4", max_topic_levels=4)
    if not b:
        return
    sub = Raw(b, version=5)
    sub.connect("it28-lvl-sub", version=5, keepalive=0)
    sub.subscribe([("#", 1)])
    pub = Raw(b, version=5)
    pub.connect("it28-lvl-pub", version=5, keepalive=0)
    ack = pub.publish("a/b/c/d/e", b"five", qos=1, pid=1)
    check_eq(ack.rc, 0x90, "max_topic_levels 4: a 5.0 QoS 1 PUBLISH to a/b/c/d/e gets "
             "PUBACK 0x90 Topic Name invalid")
    pub4 = Raw(b)
    pub4.connect("it28-lvl-pub4", keepalive=0)
    pub4.publish("a/b/c/d/e4", b"five-311", qos=1, pid=2)
    ack = pub.publish("a/b/c/d", b"four", qos=1, pid=3)
    check(ack.rc in (0, 0x10), "a 5.0 QoS 1 PUBLISH to a/b/c/d gets PUBACK 0", ack)
    got = []
    try:
        while not got or got[-1].topic != "a/b/c/d":
            got.append(sub.recv_publish(ANSWER_S))
    except Fail:
        pass
    try:  # the 3.1.1 publisher's message may come by another shard's queue
        got.append(sub.recv_publish(0.5))
    except Fail:
        pass
    check_eq([(p.topic, p.payload) for p in got], [("a/b/c/d", b"four")],
             "a '#' subscriber gets a/b/c/d, and neither five-level publish (5.0, 3.1.1) "
             "before it")
    check_eq(sub.subscribe([("a/b/c/d/e", 1), ("a/b/c/d", 1)], pid=2), [0x8F, 1],
             "5.0 SUBSCRIBE to a/b/c/d/e gets 0x8F, a/b/c/d is granted")
    check_eq(pub4.subscribe([("a/b/c/d/e", 1), ("a/+/c/d", 1)], pid=3), [0x80, 1],
             "3.1.1 SUBSCRIBE to a/b/c/d/e gets 0x80, a/+/c/d is granted")
    r = Raw(b, version=5)
    ack = r.connect("it28-lvl-will5", version=5, keepalive=0, expect_rc=None,
                    will=("w/x/y/z/v", b"will", 0, False))
    check_eq(ack.rc, 0x90, "a 5.0 CONNECT with a will topic of 5 levels gets CONNACK 0x90")
    r.close()
    r = Raw(b)
    r.send(connect_pkt("it28-lvl-will4", keepalive=0, will=("w/x/y/z/v", b"will", 0, False)))
    got = refused(r)
    check(got is not None and not any(p.type == 2 and p.rc == 0 for p in got),
          "a 3.1.1 CONNECT with a will topic of 5 levels is refused", got)
    r.close()
    r = Raw(b, version=5)
    ack = r.connect("it28-lvl-will5ok", version=5, keepalive=0, expect_rc=None,
                    will=("w/x/y/z", b"will", 0, False))
    check_eq(ack.rc, 0, "a will topic of 4 levels is accepted")
    goodbye(r, sub, pub, pub4)


def timed(f, *args):
    t0 = time.monotonic()
    f(*args)
    log("# %s: %.1f s" % (f.__name__, time.monotonic() - t0))


def main():
    ringmq_only("max_connect_size, max_sessions, memory_limit and max_topic_levels are "
                "ringmq's keys")
    b = Broker(connect_timeout=60).start()
    timed(declared_too_large, b)
    timed(keepalive_zero_default, b)
    timed(connect_size)
    timed(max_sessions)
    timed(keepalive_zero)
    timed(topic_levels)
    b11 = Broker(max_inflight_messages=65535, max_subscriptions=20000).start()
    timed(many_subscriptions, b11)
    timed(many_qos2_ids, b11)
    timed(memory_limit)


run(main)
