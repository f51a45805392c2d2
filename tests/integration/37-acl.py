#!/usr/bin/python3
"""37: the ACL (acl_file, mosquitto 2.0's format) end to end, with paho
3.1.1 and 5.0, hand-made packets and mosquitto_pub/mosquitto_sub.

A denied PUBLISH gets 5.0 PUBACK/PUBREC 0x87 (3.1.1: acknowledged and
dropped) and reaches nobody, not even a subscriber on `#` that may read
everything: each absence is proven by a marker published after it on the
same connection; `$SYS/broker/acl/denied publish` counts them. One
SUBSCRIBE gets 0x87 / 0x80 for each refused filter and the QoS for the
others (the Paho interop case: `test/nosubscribe` under a deny). A broad
filter is granted and filtered per message, retained messages on
subscribe too. `%u` / `%c` patterns, names that are not one safe topic
level ('+', '#', 'x/y') filling nothing, a deny pattern for client "a/b",
a username without a password file counting as anonymous, the anonymous
block, `$SYS` readable only by a rule naming it and never writable, wills
(CONNACK 0x87 / 5). Reloads: SIGHUP and a file renamed into the watched
folder widen an existing `#` subscription at once; a broken file keeps
the old rules and the log names file:line; 20 SIGHUPs with alternating
files while QoS 1 flows across 4 shards lose nothing. Password files from
Debian's mosquitto_passwd ($7$) and ringmq-passwd (argon2id); mosquitto
2.0 scoping of allow_anonymous / acl_file with and without
per_listener_settings, and its --test-config warnings and errors. A
persistent session gets only the queued messages it may read, and a
shared group delivers a message only to a member that may read it."""
import subprocess
import threading
import harness
from harness import *

WAIT = 5.0 + 3 * SLACK_S
PW = {"spy": "spy-pw", "alice": "alice-pw", "writer": "writer-pw", "all": "all-pw",
      "sysw": "sysw-pw", "tall": "tall-pw", "tpart": "tpart-pw"}

ACL_A = """\
# anonymous clients
topic readwrite anon/#

user spy
topic read #
topic read $SYS/#

user alice
topic read a/#
topic readwrite test/#
topic deny test/nosubscribe

user writer
topic write pub/ok/#
topic write a/#
topic write b/#
topic write t/#
topic write test/#

user all
topic readwrite #

user sysw
topic readwrite $SYS/#
topic readwrite sysw/#

user tall
topic read t/#

user tpart
topic read t/#
topic deny t/secret

pattern readwrite users/%u/#
pattern readwrite clients/%c/#
"""

ACL_B = """\
topic readwrite anon/#
user alice
topic readwrite alice-only/#
pattern read clients/#
pattern write clients/#
pattern deny clients/%c/secret
"""


class Raw(harness.Raw):
    """harness.Raw with WAIT bounds, packet ids of its own, and PUBLISHes
    that arrive while it waits for something else kept in self.pubs
    (acknowledged)."""

    def __init__(self, broker, version=4):
        super().__init__(broker, version, WAIT)
        self.pubs = []
        self.next_pid = 0

    def pid(self):
        self.next_pid = self.next_pid % 65535 + 1
        return self.next_pid

    def want(self, ptype, what=None):
        deadline = time.monotonic() + WAIT
        while True:
            try:
                p = self.recv(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise Fail("%s: nothing within %.1f s" % (what or TYPE_NAMES[ptype], WAIT))
            except Closed:
                raise Fail("%s: closed by the broker (%s)" % (what or TYPE_NAMES[ptype],
                                                              self.eof_reason))
            if p.type == 3:
                self.pubs.append(p)
                if p.qos == 1:
                    self.send(ack_pkt(4, p.pid, version=self.version))
                elif p.qos == 2:
                    self.send(ack_pkt(5, p.pid, version=self.version))
            if p.type == ptype:
                return p
            if p.type == 3:
                pass
            elif p.type == 6:
                self.send(ack_pkt(7, p.pid, version=self.version))
            else:
                raise Fail("%s: got %r" % (what or "want " + TYPE_NAMES[ptype], p))

    def sub(self, filters):
        """filters: a filter or a list of (filter, qos). Returns the codes."""
        if isinstance(filters, str):
            filters = [(filters, 1)]
        pid = self.pid()
        self.send(subscribe_pkt(pid, filters, self.version))
        return self.want(9, "SUBACK").codes

    def pub(self, topic, payload="x", qos=1, retain=False):
        """Publishes; returns the PUBACK / PUBREC reason code (None for QoS 0)."""
        pid = self.pid()
        self.send(publish_pkt(topic, payload, qos, pid, retain, version=self.version))
        if qos == 0:
            return None
        a = self.want(4 if qos == 1 else 5, "ack of %s" % topic)
        if qos == 2 and a.rc < 0x80:
            self.send(ack_pkt(6, pid, version=self.version))
            self.want(7, "PUBCOMP")
        return a.rc

    def until_pkts(self, topic):
        """PUBLISHes received up to and including one on topic; clears them."""
        while not any(p.topic == topic for p in self.pubs):
            self.want(3, "a PUBLISH on %s" % topic)
        i = [p.topic for p in self.pubs].index(topic)
        got, self.pubs = self.pubs[:i + 1], self.pubs[i + 1:]
        return got

    def until(self, topic):
        return [p.topic for p in self.until_pkts(topic)]


def raw(b, cid, version=5, user=None, expect_rc=0, password=True, **kw):
    """A connected Raw; password True: the user's from PW, None: none sent."""
    r = Raw(b, version)
    r.ack = r.connect(cid, expect_rc=expect_rc, username=user,
                      password=PW.get(user) if password is True else password, **kw)
    return r


class Client(harness.Client):
    def connect(self, timeout=WAIT, expect_rc=0):
        return super().connect(timeout, expect_rc)

    def subscribe(self, topics, qos=1, timeout=WAIT):
        return super().subscribe(topics, qos, timeout)

    def wait_messages(self, n, timeout=WAIT, pred=None):
        return super().wait_messages(n, timeout, pred)


def paho(b, cid, version=5, user=None, password=None, **kw):
    c = Client(b, cid, version=version, username=user,
               password=password if password is not None else PW.get(user), **kw)
    c.connect()
    return c


def connack_rc(b, cid, version, **kw):
    r = Raw(b, version)
    try:
        return r.connect(cid, expect_rc=None, **kw).rc
    finally:
        r.close()


_tok = [0]


def marker(spy, r, topic):
    """Publishes a marker on topic through r (QoS 1) and waits until spy
    (a paho client) has it: what r published before it has arrived too."""
    _tok[0] += 1
    tok = ("marker-%d" % _tok[0]).encode()
    r.pub(topic, tok)
    spy.wait_messages(1, pred=lambda m: m.topic == topic and m.payload == tok)


def topics(c, pred=lambda t: True):
    return [m.topic for m in c.messages() if pred(m.topic)]


def write_file(path, text):
    """Replaces path by a rename, as editors and deploy tools do."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def mosq_passwd_file(path, users):
    first = True
    for u in users:
        subprocess.run(["mosquitto_passwd"] + (["-c"] if first else []) +
                       ["-b", path, u, PW[u]], check=True, timeout=2 * WAIT,
                       stdout=subprocess.DEVNULL)
        first = False


def passwd_tool():
    p = os.environ.get("RINGMQ_PASSWD") or os.path.join(os.path.dirname(ringmq_bin()),
                                                        "ringmq-passwd")
    if not os.access(p, os.X_OK):
        raise Fail("RINGMQ_PASSWD not set and no %s" % p)
    return p


def sys_value(c, name):
    got = [m.payload for m in c.messages() if m.topic == "$SYS/broker/" + name]
    return int(got[-1]) if got else None


def reloaded(b, cause, before):
    return wait_until(lambda: len(b.log_grep(cause + ": reloaded")) > before, WAIT)


# ---------------------------------------------------------------------------


def main_broker(d):
    """Items 1-7 and 11 on one broker with a password file and ACL_A."""
    pw, acl = os.path.join(d, "passwd"), os.path.join(d, "acl")
    mosq_passwd_file(pw, PW)
    write_file(acl, ACL_A)
    b = Broker(sys_interval=1, password_file=pw, acl_file=acl).start()

    spy = paho(b, "spy", user="spy")
    check_eq(spy.subscribe([("#", 1), ("$SYS/#", 0)]), [1, 0],
             "spy (read # and $SYS/#) subscribes to # and $SYS/#")
    w5 = raw(b, "writer5", user="writer")
    w4 = raw(b, "writer4", 4, user="writer")

    # --- 1. publish allowed and denied ---------------------------------------
    check_eq(w5.pub("pub/ok/1"), 0, "5.0 QoS 1 to a writable topic: PUBACK 0x00")
    spy.wait_topic("pub/ok/1")
    check_eq(w5.pub("pub/no/q1"), 0x87, "5.0 QoS 1 to a topic not writable: PUBACK 0x87")
    check_eq(w5.pub("pub/no/q2", qos=2), 0x87, "5.0 QoS 2 not writable: PUBREC 0x87")
    w5.pub("pub/no/q0", qos=0)
    marker(spy, w5, "pub/ok/m5")
    check_eq(topics(spy, lambda t: t.startswith("pub/no/")), [],
             "5.0: no denied message (QoS 0, 1, 2) reached the spy on # before the marker")
    w4.send(publish_pkt("pub/no/311", "x", 1, 77, version=4))
    ack = w4.want(4, "3.1.1 PUBACK")
    check(ack.pid == 77 and len(ack.body) == 2,
          "3.1.1 QoS 1 not writable: acknowledged with a plain PUBACK", ack)
    marker(spy, w4, "pub/ok/m4")
    check_eq(topics(spy, lambda t: t.startswith("pub/no/")), [],
             "3.1.1: the denied message was dropped")
    for v in ("5", "311"):
        rc, out = mosq_pub(b, "-V", v, "-i", "mp-" + v, "-u", "writer", "-P", PW["writer"],
                           "-q", "1", "-t", "pub/no/mp" + v, "-m", "x", timeout=2 * WAIT)
        if v == "5":
            check("Not authorized" in out, "mosquitto_pub -V 5 to a denied topic is told "
                  "'Not authorized' (PUBACK 0x87)", (rc, out))
        else:
            check_eq(rc, 0, "mosquitto_pub -V 311 to a denied topic: acknowledged")
    marker(spy, w5, "pub/ok/mp")
    check_eq(topics(spy, lambda t: t.startswith("pub/no/")), [],
             "mosquitto_pub's denied messages reached nobody")
    check(wait_until(lambda: (sys_value(spy, "acl/denied publish") or 0) >= 6, 3 + WAIT),
          "$SYS/broker/acl/denied publish grows to the 6 denied publishes",
          sys_value(spy, "acl/denied publish"))
    check_eq(sys_value(spy, "acl/denied publish"), 6, "... and counts exactly those 6")

    # --- 2. subscribe refused and granted, per filter ------------------------
    a5 = raw(b, "alice5", user="alice")
    check_eq(a5.sub([("a/x", 1), ("b/x", 1), ("a/#", 2), ("test/nosubscribe", 0),
                     ("test/#", 1)]), [1, 0x87, 2, 0x87, 1],
             "5.0 SUBSCRIBE of 5 filters: 0x87 exactly for b/x and test/nosubscribe")
    a4 = raw(b, "alice4", 4, user="alice")
    check_eq(a4.sub([("a/x", 1), ("b/x", 1), ("a/#", 2), ("test/nosubscribe", 0),
                     ("test/#", 1)]), [1, 0x80, 2, 0x80, 1], "3.1.1: the same with 0x80")
    pa = paho(b, "alice-paho4", 4, user="alice")
    check_eq(pa.subscribe([("test/nosubscribe", 0), ("test/#", 1)]), [0x80, 1],
             "paho 3.1.1 (Paho interop case): test/nosubscribe refused 0x80, test/# granted")
    pa.close()
    for v, want in (("311", "128"), ("5", "135")):
        ms = MosqSub(b, "-V", v, "-i", "ms-alice" + v, "-u", "alice", "-P", PW["alice"],
                     "-t", "test/nosubscribe", "-t", "test/#")
        line = ms.wait_line(lambda l: l.startswith("Subscribed (mid"), WAIT, "SUBACK line")
        check(line.endswith(": %s, 0" % want),
              "mosquitto_sub -V %s: test/nosubscribe gets %s, test/# QoS 0" % (v, want), line)
        ms.proc.kill()
        ms.wait_exit(WAIT)
    w5.pub("test/nosubscribe")
    w5.pub("test/ok")
    check_eq(a5.until("test/ok"), ["test/ok"],
             "under test/# a denied test/nosubscribe is not delivered")

    # --- 3. per-message filtering under #, retained too ----------------------
    check_eq(a5.sub("#"), [1], "alice (read a/#) subscribes to #: granted")
    w5.pub("b/x")
    w5.pub("a/x")
    check_eq(a5.until("a/x"), ["a/x"], "alice on # gets a/x but not b/x published before it")
    w5.pub("b/r", "rb", retain=True)
    w5.pub("a/r", "ra", retain=True)
    a5b = raw(b, "alice5b", user="alice")
    check_eq(a5b.sub("#"), [1], "a new alice client subscribes to #")
    w5.pub("a/live")
    got = a5b.until_pkts("a/live")
    check_eq([(p.topic, p.retain) for p in got], [("a/r", True), ("a/live", False)],
             "retained on subscribe filtered too: a/r sent, b/r not (then the live a/live)")
    ms = MosqSub(b, "-i", "ms-ret", "-u", "alice", "-P", PW["alice"], "-t", "#", "-v",
                 "--retained-only")
    ms.wait_suback(WAIT)
    w5.pub("a/live2")
    ms.wait_exit(WAIT)
    data = ms.data_lines()
    check("a/r ra" in data and not any(l.startswith("b/r") for l in data),
          "mosquitto_sub --retained-only -t #: a/r and not b/r", data)

    # --- 4. %u and %c patterns -----------------------------------------------
    check_eq(a5.sub([("users/alice/#", 1), ("users/bob/#", 1)]), [1, 0x87],
             "%u: alice subscribes to users/alice/#, not users/bob/#")
    check_eq(a5.pub("users/alice/x"), 0, "%u: alice publishes to users/alice/x")
    check_eq(a5.pub("users/bob/x"), 0x87, "%u: alice may not publish to users/bob/x (0x87)")
    check("users/alice/x" in a5.until("users/alice/x"), "alice reads users/alice/x")
    marker(spy, a5, "users/alice/m")
    check("users/bob/x" not in topics(spy), "users/bob/x reached nobody")
    dev1 = raw(b, "dev1")
    check_eq(dev1.sub([("clients/dev1/#", 1), ("clients/dev2/#", 1)]), [1, 0x87],
             "%c: dev1 subscribes to clients/dev1/#, not clients/dev2/#")
    check_eq(dev1.pub("clients/dev1/x"), 0, "%c: dev1 publishes to clients/dev1/x")
    check_eq(dev1.pub("clients/dev2/x"), 0x87, "%c: dev1 may not publish to clients/dev2/x")
    check_eq(dev1.until("clients/dev1/x"), ["clients/dev1/x"], "dev1 reads clients/dev1/x")
    marker(spy, dev1, "clients/dev1/m")
    check("clients/dev2/x" not in topics(spy), "clients/dev2/x reached nobody")
    for cid in ("+", "#", "x/y"):
        r = Raw(b, 4)
        ack = r.connect(cid, expect_rc=None)
        check_eq(ack.rc, 0, "3.1.1 CONNECT with client id %r is let in (anonymous)" % cid)
        if ack.rc != 0:
            continue
        check_eq(r.sub([("clients/dev1/#", 1), ("clients/+/#", 1), ("clients/#", 1),
                        ("clients/x/y/#", 1), ("clients/x/#", 1)]), [0x80] * 5,
                 "client id %r fills no %%c: every clients/ filter refused" % cid)
        tag = {"+": "plus", "#": "hash", "x/y": "xy"}[cid]
        r.send(publish_pkt("clients/dev1/from-" + tag, "x", 1, 9))
        r.send(publish_pkt("clients/x/y/from-" + tag, "x", 1, 10))
        check_eq([r.want(4).pid, r.want(4).pid], [9, 10],
                 "client id %r: its clients/ publishes are acknowledged" % cid)
        r.close()
    marker(spy, w5, "pub/ok/cid")
    check_eq(topics(spy, lambda t: "/from-" in t), [],
             "... and dropped: a name with + # / widens no pattern (CVE-2017-7650)")
    ms = MosqSub(b, "-i", "x/y", "-t", "clients/x/y/#")
    line = ms.wait_line(lambda l: l.startswith("Subscribed (mid"), WAIT, "SUBACK line")
    check(line.endswith(": 128"), "mosquitto_sub -i x/y -t clients/x/y/#: 128", line)
    ms.proc.kill()
    ms.wait_exit(WAIT)

    # --- 5. the anonymous block ----------------------------------------------
    anon = raw(b, "anon5")
    check_eq(anon.sub("anon/#"), [1], "an anonymous client subscribes to anon/# (topic lines "
             "before any user line)")
    check_eq(a5.sub("anon/#"), [0x87], "alice (logged in) may not subscribe to anon/#")
    check_eq(a5.pub("anon/from-alice"), 0x87, "alice may not publish to anon/...")
    check_eq(anon.pub("anon/x"), 0, "the anonymous client publishes to anon/x")
    check_eq(anon.until("anon/x"), ["anon/x"], "... and reads it")
    w5.pub("a/after-anon")
    check_eq([t for t in a5.until("a/after-anon") if t.startswith(("anon/", "a/"))],
             ["a/after-anon"], "alice, subscribed to #, did not get anon/x")
    check_eq(anon.pub("pub/ok/anon"), 0x87, "the anonymous client may not publish to pub/ok")

    # --- 6. $SYS ---------------------------------------------------------------
    allc = paho(b, "all5", user="all")
    check_eq(allc.subscribe([("#", 1), ("$SYS/#", 0)]), [1, 0x87],
             "`topic readwrite #`: # granted, $SYS/# refused 0x87 (no rule names $SYS)")
    n = len(spy.messages(lambda m: m.topic == "$SYS/broker/acl/denied publish"))
    check(wait_until(lambda: len(spy.messages(
        lambda m: m.topic == "$SYS/broker/acl/denied publish")) >= n + 2, 3 + WAIT),
        "two $SYS rounds published meanwhile (spy sees them)")
    marker(allc, w5, "pub/ok/sys")
    check_eq(topics(allc, lambda t: t.startswith("$")), [],
             "`topic readwrite #` on # gets no $SYS message")
    sysw = raw(b, "sysw5", user="sysw")
    check_eq(sysw.sub("$SYS/broker/acl/#"), [1], "`topic readwrite $SYS/#` subscribes to $SYS")
    check("$SYS/broker/acl/denied publish" in sysw.until("$SYS/broker/acl/denied publish"),
          "... and reads $SYS/broker/acl/denied publish")
    check_eq(sysw.pub("$SYS/x"), 0x87, "publishing to $SYS/x with readwrite $SYS/#: 0x87")
    check_eq(sysw.pub("$SYS/broker/uptime", qos=2), 0x87, "... QoS 2 into $SYS/broker: 0x87")
    sysw4 = raw(b, "sysw4", 4, user="sysw")
    sysw4.pub("$SYS/x311")
    marker(spy, sysw, "sysw/m")
    marker(spy, sysw4, "sysw/m4")
    check_eq(topics(spy, lambda t: t in ("$SYS/x", "$SYS/x311")), [],
             "nothing published into $SYS was delivered (spy reads $SYS/#)")
    check(all(not m.payload.startswith(b"x") for m in
              spy.messages(lambda m: m.topic == "$SYS/broker/uptime")),
          "$SYS/broker/uptime still the broker's")

    # --- 7. wills --------------------------------------------------------------
    check_eq(connack_rc(b, "will5", 5, will=("forbidden/w", "bye", 0, False)), 0x87,
             "5.0 CONNECT with a will topic it may not write: CONNACK 0x87")
    check_eq(connack_rc(b, "will4", 4, will=("forbidden/w", "bye", 1, False)), 5,
             "3.1.1 CONNECT with such a will: CONNACK code 5")
    check_eq(connack_rc(b, "will-ok", 5, will=("anon/w", "bye", 0, False)), 0,
             "a will on a writable topic is accepted")
    rc, out = mosq_pub(b, "-i", "mp-will", "--will-topic", "forbidden/w", "--will-payload", "b",
                       "-t", "anon/x", "-m", "x", timeout=2 * WAIT)
    check(rc != 0 and "not authori" in out.lower(),
          "mosquitto_pub --will-topic forbidden/w is refused (not authorised)", (rc, out))

    # --- 11. offline queue and shared subscriptions ----------------------------
    for v in (4, 5):
        cp = [(0x11, 300)] if v == 5 else None
        off = raw(b, "alice-off%d" % v, v, user="alice", clean=False, cprops=cp)
        check_eq(off.sub("#"), [1], "persistent %d session of alice subscribes to #" % v)
        off.send(disconnect_pkt(v))
        off.wait_closed(WAIT)
        for t in ("b/o%d-1" % v, "a/o%d-1" % v, "b/o%d-2" % v, "a/o%d-2" % v):
            w5.pub(t)
        back = raw(b, "alice-off%d" % v, v, user="alice", clean=False, cprops=cp)
        check_eq(back.ack.session_present, 1, "MQTT %d: the session is resumed" % v)
        w5.pub("a/o%d-live" % v)
        got = [t for t in back.until("a/o%d-live" % v) if "/o%d-" % v in t]
        check_eq(got, ["a/o%d-1" % v, "a/o%d-2" % v, "a/o%d-live" % v],
                 "MQTT %d: queued while offline, only a/ came back (b/ not), in order" % v)
        back.send(disconnect_pkt(v))
        back.close()
    # Shared: tall may read t/secret, tpart may not. A member on the same
    # shard as tall, then one on another shard (home shards are keyed
    # hashes of the client id: found from the log).
    m1 = paho(b, "tall", 5, user="tall")
    home = b.home_shard("tall")
    same = far = None
    for i in range(24):
        c = paho(b, "tpart-%d" % i, 4, user="tpart")
        h = b.home_shard("tpart-%d" % i)
        if h == home and same is None:
            same = c
        elif h != home and far is None:
            far = c
        else:
            c.close()
        if same and far:
            break
    for g, m2, where in (("g1", same, "on tall's shard"), ("g2", far, "on another shard")):
        if m2 is None:
            log("# no tpart client id found %s in 24 tries" % where)
            continue
        f = "$share/%s/t/#" % g
        check_eq((m1.subscribe(f), m2.subscribe(f)), ([1], [1]),
                 "tall and tpart (deny t/secret) %s join %s: granted (the deny does not "
                 "cover t/#)" % (where, f))
        n1 = len(topics(m1, lambda t: t == "t/secret"))
        n2 = len(topics(m1, lambda t: t == "t/open")) + len(topics(m2, lambda t: t == "t/open"))
        for k in range(10):
            w5.pub("t/secret", "s%d" % k)
        for k in range(10):
            w5.pub("t/open", "o%d" % k)
        ok = wait_until(lambda: len(topics(m1, lambda t: t == "t/open")) +
                        len(topics(m2, lambda t: t == "t/open")) >= n2 + 10, WAIT)
        check(ok, "%s got the 10 t/open messages" % f, (topics(m1), topics(m2)))
        check_eq(len(topics(m1, lambda t: t == "t/secret")) - n1, 10,
                 "%s (tpart %s): all 10 t/secret went to tall, the member that may read "
                 "them" % (f, where))
        check_eq(topics(m2, lambda t: t == "t/secret"), [], "... none to tpart")
        m1.unsubscribe(f)
        m2.close()

    for name in ("subscribe", "read", "will"):
        check(wait_until(lambda: (sys_value(spy, "acl/denied " + name) or 0) > 0, 3 + WAIT),
              "$SYS/broker/acl/denied %s counts" % name, sys_value(spy, "acl/denied " + name))
    for c in (spy, allc, m1):
        c.close()
    b.stop()


def patterns_without_passwords(d):
    """Item 4's other half: no password file (a claimed username is no
    identity) and a deny pattern against a client id holding '/'."""
    acl = os.path.join(d, "acl-b")
    write_file(acl, ACL_B)
    b = Broker(acl_file=acl).start()
    claimed = raw(b, "claims-alice", 5, user="alice", password=None)
    check_eq(claimed.ack.rc, 0, "no password_file: a client naming itself alice is let in")
    check_eq(claimed.sub([("alice-only/#", 1), ("anon/#", 1)]), [0x87, 1],
             "... as anonymous: alice's block does not apply (0x87), the anonymous one does")
    check_eq(claimed.pub("alice-only/x"), 0x87, "... nor may it publish to alice-only/x")
    ms = MosqSub(b, "-i", "ms-claim", "-u", "alice", "-t", "alice-only/#")
    line = ms.wait_line(lambda l: l.startswith("Subscribed (mid"), WAIT, "SUBACK line")
    check(line.endswith(": 128"), "mosquitto_sub -u alice (no password file): alice-only/# "
          "refused", line)
    ms.proc.kill()
    ms.wait_exit(WAIT)
    w = raw(b, "w1")
    w.pub("anon/x")
    check("anon/x" in claimed.until("anon/x"), "the claimed alice reads anon/x")

    ab = raw(b, "a/b", 4)
    check_eq(ab.sub([("clients/#", 1)]), [1], "client a/b subscribes to clients/# "
             "(pattern read clients/#)")
    check_eq(ab.sub([("clients/a/b/secret", 1)]), [0x80],
             "client a/b: subscribing to clients/a/b/secret refused (pattern deny "
             "clients/%c/secret)")
    d1 = raw(b, "dev1", 4)
    check_eq(d1.sub([("clients/#", 1), ("clients/dev1/secret", 1)]), [1, 0x80],
             "client dev1: clients/# granted, clients/dev1/secret refused")
    for t in ("clients/a/b/secret", "clients/dev1/secret", "clients/a/b/open"):
        check_eq(w.pub(t), 0, "w1 publishes %s" % t)
    check_eq(ab.until("clients/a/b/open"), ["clients/dev1/secret", "clients/a/b/open"],
             "client a/b on clients/# does not get clients/a/b/secret (its deny), does get "
             "clients/dev1/secret")
    check_eq(d1.until("clients/a/b/open"), ["clients/a/b/secret", "clients/a/b/open"],
             "client dev1 on clients/# does not get clients/dev1/secret")
    b.stop()


ACL_R1 = "topic readwrite r/#\ntopic write s/#\ntopic write t/#\n"
ACL_R2 = ACL_R1 + "topic read s/#\n"
ACL_R3 = ACL_R2 + "topic read t/#\n"


def reload_checks(d):
    """Item 8. The ACL path is a symlink in a watched folder to a file in
    another (unwatched) one: changing that file takes a SIGHUP; replacing
    the symlink is seen by the watcher."""
    live, store = os.path.join(d, "live"), os.path.join(d, "store")
    os.makedirs(live)
    os.makedirs(store)
    acl = os.path.join(live, "acl")
    write_file(os.path.join(store, "v1"), ACL_R1)
    os.symlink(os.path.join(store, "v1"), acl)
    b = Broker(acl_file=acl).start()
    sub = paho(b, "r-sub", 5)
    check_eq(sub.subscribe("#"), [1], "reload: a subscriber on # (r/# readable)")
    p = raw(b, "r-pub", 5)
    p.pub("s/1")
    marker(sub, p, "r/m1")
    check_eq(topics(sub, lambda t: t.startswith(("s/", "t/"))), [], "s/1 not readable yet")

    write_file(os.path.join(store, "v1"), ACL_R2)
    n = len(b.log_grep("SIGHUP: reloaded"))
    b.send_signal(signal.SIGHUP)
    check(reloaded(b, "SIGHUP", n), "SIGHUP reloads the ACL", b.log_grep("reload"))
    check_eq(b.log_grep("SIGHUP: reloaded")[-1].split("SIGHUP: ")[-1],
             "reloaded %s (4 rules)" % acl, "the log names the file and counts its rules")
    p.pub("s/2")
    marker(sub, p, "r/m2")
    check_eq(topics(sub, lambda t: t.startswith(("s/", "t/"))), ["s/2"],
             "after SIGHUP the existing # subscription gets s/2 (no resubscribe)")

    write_file(os.path.join(store, "v3"), ACL_R3)
    n = len(b.log_grep("password, ACL or ban file changed: reloaded"))
    tmp = os.path.join(live, ".acl-new")
    os.symlink(os.path.join(store, "v3"), tmp)
    os.rename(tmp, acl)
    check(reloaded(b, "password, ACL or ban file changed", n),
          "a new ACL renamed into the watched folder is reloaded without a signal",
          b.log_grep("reload"))
    p.pub("t/1")
    marker(sub, p, "r/m3")
    check_eq(topics(sub, lambda t: t.startswith(("s/", "t/"))), ["s/2", "t/1"],
             "... and the existing subscription gets t/1 at once")

    with open(os.path.join(store, "v3"), "w") as f:
        f.write(ACL_R1 + "topic read t/#\ntopic raed s/#\n")
    n = len(b.log_grep("SIGHUP: reload failed"))
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: len(b.log_grep("SIGHUP: reload failed")) > n, WAIT),
          "a broken ACL on SIGHUP: the reload fails", b.log_grep("reload"))
    line = b.log_grep("SIGHUP: reload failed")[-1]
    check("reload failed, the previous credentials stay: %s:5: " % acl in line,
          "the log names the file and line 5: 'reload failed, the previous credentials "
          "stay: FILE:5: what'", line)
    p.pub("s/3")
    p.pub("t/2")
    marker(sub, p, "r/m4")
    check_eq(topics(sub, lambda t: t.startswith(("s/", "t/"))), ["s/2", "t/1", "s/3", "t/2"],
             "the previous rules stay: s/3 and t/2 still delivered")
    sub.close()

    # Concurrent: QoS 1 flows while 20 SIGHUPs swap the ACL.
    csub = paho(b, "r-csub", 5)
    check_eq(csub.subscribe("#"), [1], "concurrent: subscriber on #")
    cpub = paho(b, "r-cpub", 4)
    stop, sent, errs = threading.Event(), [], []

    def pump():
        i = 0
        try:
            while not stop.is_set() and i < 20000:
                mids = []
                for k in range(10):
                    mids.append(cpub.publish("r/c", b"%d" % (i + k), qos=1, wait=False))
                    mids.append(cpub.publish("s/c", b"%d" % (i + k), qos=1, wait=False))
                cpub.wait_acked(mids, WAIT)
                i += 10
        except Exception as e:
            errs.append(repr(e))
        sent.append(i)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    ok = 0
    for k in range(20):
        write_file(os.path.join(store, "v3"), ACL_R1 if k % 2 == 0 else ACL_R3)
        n = len(b.log_grep("SIGHUP: reloaded"))
        b.send_signal(signal.SIGHUP)
        ok += bool(reloaded(b, "SIGHUP", n))
        time.sleep(0.08)
    stop.set()
    t.join(3 * WAIT)
    check_eq((ok, errs), (20, []), "20 SIGHUP reloads done while publishing, the publisher "
             "had every PUBACK")
    n = sent[0] if sent else 0
    wait_until(lambda: len(topics(csub, lambda t: t == "r/c")) >= n, WAIT)
    pl = [int(m.payload) for m in csub.messages(lambda m: m.topic == "r/c")]
    check(n >= 200 and pl == list(range(n)), "all %d always-readable messages arrived once, "
          "in order, across the reloads" % n, (len(pl), pl[:5], pl[-5:]))
    sl = [int(m.payload) for m in csub.messages(lambda m: m.topic == "s/c")]
    check(sl == sorted(set(sl)), "the sometimes-readable s/c ones in order, no duplicate "
          "(%d of %d delivered)" % (len(sl), n))
    csub.close()
    cpub.close()
    b.stop()


def password_files(d):
    """Item 9: $7$ from mosquitto_passwd, argon2id from ringmq-passwd."""
    acl = os.path.join(d, "acl-pw")
    write_file(acl, "user mq\ntopic readwrite mq/#\nuser ar\ntopic readwrite ar/#\n")
    f7, fa = os.path.join(d, "pw7"), os.path.join(d, "pwa")
    subprocess.run(["mosquitto_passwd", "-c", "-b", f7, "mq", "mq-pass"], check=True,
                   timeout=2 * WAIT, stdout=subprocess.DEVNULL)
    r = subprocess.run([passwd_tool(), "-c", "-b", fa, "ar", "ar-pass"], timeout=4 * WAIT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(r.returncode == 0 and open(fa).read().startswith("ar:$argon2id$"),
          "ringmq-passwd -c -b writes an argon2id entry", r.stdout)
    check(open(f7).read().startswith("mq:$7$"), "mosquitto_passwd writes a $7$ entry")
    for f, user, own, other in ((f7, "mq", "mq", "ar"), (fa, "ar", "ar", "mq")):
        b = Broker(allow_anonymous="false", password_file=f, acl_file=acl).start()
        kind = "$7$" if f == f7 else "argon2id"
        c = paho(b, user + "-4", 4, user=user, password=user + "-pass")
        check_eq(c.subscribe([(own + "/#", 1), (other + "/#", 1)]), [1, 0x80],
                 "%s: %s logs in (3.1.1) and its block applies: %s/# granted, %s/# 0x80" %
                 (kind, user, own, other))
        r5 = Raw(b, 5)
        check_eq(r5.connect(user + "-5", expect_rc=None, username=user,
                            password=user + "-pass").rc, 0, "%s: 5.0 right password" % kind)
        check_eq(r5.sub(other + "/#"), [0x87], "%s: 5.0 %s/# refused 0x87" % (kind, other))
        check_eq(r5.pub(own + "/x"), 0, "%s: publishes to %s/x" % (kind, own))
        check_eq(c.wait_topic(own + "/x").payload, b"x",
                 "%s: ... and the 3.1.1 client reads it" % kind)
        check_eq(connack_rc(b, "bad5", 5, username=user, password="wrong"), 0x86,
                 "%s: 5.0 wrong password 0x86" % kind)
        check_eq(connack_rc(b, "bad4", 4, username=user, password="wrong"), 4,
                 "%s: 3.1.1 wrong password code 4" % kind)
        check_eq((connack_rc(b, "anon5", 5), connack_rc(b, "anon4", 4)), (0x87, 5),
                 "%s: allow_anonymous false: anonymous 0x87 / code 5" % kind)
        rc, out = mosq_pub(b, "-u", user, "-P", user + "-pass", "-t", own + "/m", "-m", "x",
                           timeout=2 * WAIT)
        check_eq(rc, 0, "%s: mosquitto_pub with the right password" % kind)
        rc, out = mosq_pub(b, "-u", user, "-P", "nope", "-t", own + "/m", "-m", "x",
                           timeout=2 * WAIT)
        check(rc != 0, "%s: mosquitto_pub with a wrong password is refused" % kind, out)
        c.close()
        r5.close()
        b.stop()


class TextBroker(Broker):
    """A broker whose whole config is text(port, port2): two listeners."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def config_text(self):
        self.port2 = free_port()
        return self.text(self.port, self.port2)

    def start(self):
        super().start()
        check(wait_until(lambda: self._open(self.port2), WAIT), "second listener accepts")
        return self

    def _open(self, port):
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            return False


def scoping(d):
    """Item 10."""
    pw = os.path.join(d, "pw-scope")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "u", "u-pass"], check=True,
                   timeout=2 * WAIT, stdout=subprocess.DEVNULL)
    acl = os.path.join(d, "acl-scope")
    write_file(acl, "topic readwrite l1/#\n")
    b = TextBroker(lambda p1, p2: "shards 2\nlog_level debug\nlistener %d %s\n"
                   "listener %d %s\nallow_anonymous false\npassword_file %s\n" %
                   (p1, HOST, p2, HOST, pw)).start()
    for port in (b.port, b.port2):
        check_eq((connack_rc(port, "an5", 5), connack_rc(port, "an4", 4)), (0x87, 5),
                 "allow_anonymous false after the second listener: anonymous refused on "
                 "port %s" % ("1" if port == b.port else "2"))
        check_eq(connack_rc(port, "u5", 5, username="u", password="u-pass"), 0,
                 "... and the password file's user is let in there")
    b.stop()

    b = TextBroker(lambda p1, p2: "per_listener_settings true\nshards 2\nlog_level debug\n"
                   "listener %d %s\nallow_anonymous true\nacl_file %s\n"
                   "listener %d %s\npassword_file %s\n" % (p1, HOST, acl, p2, HOST, pw)).start()
    check_eq(connack_rc(b.port, "an5", 5), 0,
             "per_listener_settings: listener 1 (allow_anonymous true) lets anonymous in")
    check_eq((connack_rc(b.port2, "an5", 5), connack_rc(b.port2, "an4", 4)), (0x87, 5),
             "per_listener_settings: listener 2 (no allow_anonymous) refuses anonymous "
             "clients (0x87 / 5), as in mosquitto 2.0")
    r1 = raw(b.port, "l1-anon", 5)
    check_eq(r1.sub([("l1/#", 1), ("l2/#", 1)]), [1, 0x87],
             "listener 1's acl_file applies there: l1/# granted, l2/# 0x87")
    r2 = Raw(b.port2, 5)
    r2.connect("l2-u", username="u", password="u-pass")
    check_eq(r2.sub([("l1/#", 1), ("l2/#", 1)]), [1, 1],
             "listener 2 has no acl_file: both granted")
    check_eq(r2.pub("l2/x"), 0, "listener 2: publishing to l2/x allowed")
    check_eq(r1.pub("l2/x"), 0x87, "listener 1: publishing to l2/x denied")
    r1.close()
    r2.close()
    b.stop()

    c1, c2 = os.path.join(d, "tc1.conf"), os.path.join(d, "tc2.conf")
    with open(c1, "w") as f:
        f.write("listener %d %s\nallow_anonymous false\n" % (free_port(), HOST))
    with open(c2, "w") as f:
        f.write("allow_anonymous false\nper_listener_settings true\nlistener %d %s\n" %
                (free_port(), HOST))
    for path, rc_want, needle in ((c1, 0, "no client can ever be let in"),
                                  (c2, 1, "%s:2: " % c2)):
        r = subprocess.run([ringmq_bin(), "-c", path, "--test-config"], timeout=2 * WAIT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = r.stdout.decode("utf-8", "replace")
        check(r.returncode == rc_want and needle in out,
              "--test-config %s: exit %d, output has %r" % (os.path.basename(path), rc_want,
                                                            needle), (r.returncode, out))


def main():
    ringmq_only("acl_file, per-listener scoping and reloads as ringmq does them")
    d = tempfile.mkdtemp(prefix="ringmq-it37-")
    t0 = time.monotonic()
    main_broker(d)
    patterns_without_passwords(d)
    reload_checks(d)
    password_files(d)
    scoping(d)
    log("# 37 took %.1f s" % (time.monotonic() - t0))


run(main)
