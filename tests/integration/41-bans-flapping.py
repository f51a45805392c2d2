#!/usr/bin/python3
"""41: bans (ban_file) and flapping detection. Loopback is one interface
for all of 127.0.0.0/8, so clients bind source addresses 127.0.0.2,
127.0.0.3, ... to stand for different hosts.

ban_file: `clientid ID [EXPIRY]`, `username NAME [EXPIRY]`, `ip CIDR
[EXPIRY]` lines, EXPIRY exactly YYYY-MM-DDThh:mm:ssZ (UTC), `#` comments,
quoted names. A banned address is closed at accept without a byte (a
single address and a range with an expiry still ahead); a banned client
id (bare and quoted) or username gets CONNACK 5 (3.1.1) / 0x8A (5.0); an
expired ban, a prefix of a banned id and another case of it do not match.
The file is reloaded on SIGHUP and when it is replaced on disk: a ban
added takes effect for new connections, a ban removed lifts. Malformed
files stop the start with `path:line: what is wrong`. Refusals are
counted (`connections refused ban`).

Flapping: with flapping_max_connects 5, a sixth connection within
flapping_window from one address is closed at accept without a byte, for
flapping_ban seconds, while another address connects; afterwards the
address connects again. More than 5 CONNECTs by one client id (or one
username) from different addresses: CONNACK 5 / 0x8A, while another id
from the same address gets in. auth_failures_max 3: three wrong
passwords from one address (CONNACK 4 / 0x86) ban that address: the right
password from there is then closed at accept, from another address it
gets CONNACK 0. Refusals are counted (`connections refused flapping`,
`connections refused auth_failures`)."""
import signal
import socket
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S
# Bans and flapping state change on reloads and timers: a few seconds.
RELOAD_WAIT = 5.0 + 2 * SLACK_S
FUTURE = "2099-12-31T23:59:59Z"
PAST = "2001-01-01T00:00:00Z"


class SrcRaw(Raw):
    """Raw from source address src."""

    def __init__(self, port, src="127.0.0.1", version=4, timeout=WAIT):
        Raw.__init__(self, port, version=version, timeout=timeout, src=src)


def outcome(r, timeout=WAIT):
    return connack_outcome(r, timeout)


def attempt(port, cid, src="127.0.0.1", version=4, username=None, password=None):
    """CONNECT from src; returns outcome(). A client that got CONNACK 0
    sends DISCONNECT and leaves."""
    r = SrcRaw(port, src, version)
    try:
        r.send(connect_pkt(cid, version=version, keepalive=30, username=username,
                           password=password))
        res = outcome(r)
        if res == ("connack", 0):
            r.send(disconnect_pkt(version))
        return res
    finally:
        r.close()


CONNACK0 = ("connack", 0)
CLOSED = ("closed", b"")
BANNED = {4: ("connack", 5), 5: ("connack", 0x8A)}


def refused(b, *reasons):
    """The sum of `connections refused REASON N` over reasons, from a fresh
    SIGUSR1 line (None when none of them is there)."""
    line = stats_line(b, WAIT)
    if not line:
        return None
    found = [int(m) for r in reasons
             for m in re.findall(r"connections refused %s (\d+)" % re.escape(r), line)]
    return sum(found) if found else None


def write_file(path, text):
    """Replaces path by a rename, as editors and deploy tools do."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def started(b, what):
    why = None
    try:
        b.start()
    except Fail as e:
        b.expect_clean_exit = False  # reported here
        said = [l for l in b.log_text().splitlines() if l.strip()][-4:]
        why = "%s; broker log: %s" % (e, " | ".join(said) or "(empty)")
    check(why is None, "the broker starts with %s" % what, why)
    if why is not None:
        raise Fail("no broker with %s, nothing more to test" % what)
    return b


# ---------------------------------------------------------------------------
# bans

BANS_1 = """\
# ringmq test bans
clientid banned-id
clientid "a b"            # quoted: a blank inside
clientid "q\\"uote"
username mallory
ip 127.0.0.4
ip 127.0.0.8/30 %(future)s   # 127.0.0.8 .. 127.0.0.11, until 2099
clientid expired-id %(past)s
username "old user" %(past)s
ip 127.0.0.12 %(past)s

""" % {"future": FUTURE, "past": PAST}

# Reload 1: 127.0.0.4 and mallory lifted, newly-banned added.
BANS_2 = """\
clientid banned-id
clientid newly-banned %s
username eve
ip 127.0.0.8/30
""" % FUTURE

# Reload 2 (the file replaced, no signal): newly-banned lifted, 127.0.0.13 banned.
BANS_3 = """\
clientid banned-id
ip 127.0.0.13
"""


def ban_checks():
    d = tempfile.mkdtemp(prefix="ringmq-it41-bans-")
    path = os.path.join(d, "bans")
    write_file(path, BANS_1)
    b = started(Broker(ban_file=path), "a ban_file")
    p = b.port
    ip_refusals = 0
    check_eq(attempt(p, "it41-ip4", "127.0.0.4"), CLOSED,
             "`ip 127.0.0.4`: closed at accept without a byte")
    check_eq(attempt(p, "it41-ip9", "127.0.0.9"), CLOSED,
             "`ip 127.0.0.8/30 %s` (an expiry ahead): 127.0.0.9 closed without a byte" % FUTURE)
    ip_refusals += 2
    check_eq(attempt(p, "it41-ip7", "127.0.0.7"), CONNACK0,
             "127.0.0.7 (outside the /30): CONNACK 0")
    check_eq(attempt(p, "it41-ip12", "127.0.0.12"), CONNACK0,
             "`ip 127.0.0.12 %s` (expired): CONNACK 0" % PAST)
    for v in (4, 5):
        check_eq(attempt(p, "banned-id", version=v), BANNED[v],
                 "`clientid banned-id`, MQTT %s: CONNACK %#x" % ("5" if v == 5 else "3.1.1",
                                                                 BANNED[v][1]))
        check_eq(attempt(p, "a b", version=v), BANNED[v],
                 "`clientid \"a b\"` (quoted), MQTT %d: CONNACK %#x" % (v, BANNED[v][1]))
        check_eq(attempt(p, "it41-u", version=v, username="mallory"), BANNED[v],
                 "`username mallory`, MQTT %d: CONNACK %#x" % (v, BANNED[v][1]))
    check_eq(attempt(p, 'q"uote'), BANNED[4], "`clientid \"q\\\"uote\"` bans the id q\"uote")
    check_eq(attempt(p, "a"), CONNACK0, "client id `a` (a prefix of the banned `a b`): CONNACK 0")
    check_eq(attempt(p, "Banned-ID"), CONNACK0,
             "client id `Banned-ID` (case differs from the ban): CONNACK 0")
    check_eq(attempt(p, "expired-id"), CONNACK0, "`clientid expired-id %s`: CONNACK 0" % PAST)
    check_eq(attempt(p, "it41-old", username="old user"), CONNACK0,
             "`username \"old user\" %s` (expired): CONNACK 0" % PAST)
    check_eq(attempt(p, "it41-mal"), CONNACK0, "no username: not the banned mallory: CONNACK 0")

    # SIGHUP reloads the file.
    write_file(path, BANS_2)
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: attempt(p, "newly-banned") == BANNED[4], RELOAD_WAIT, 0.25),
          "after SIGHUP: a ban added (`clientid newly-banned`) refuses new connections "
          "(CONNACK 5)", attempt(p, "newly-banned"))
    check_eq(attempt(p, "it41-ip4b", "127.0.0.4"), CONNACK0,
             "... and the ban removed (`ip 127.0.0.4`) lifts: CONNACK 0")
    check_eq(attempt(p, "it41-u2", username="mallory"), CONNACK0,
             "... mallory's ban removed: CONNACK 0")
    check_eq(attempt(p, "it41-u3", version=5, username="eve"), BANNED[5],
             "... `username eve` added: CONNACK 0x8A")
    check_eq(attempt(p, "it41-ip10", "127.0.0.10"), CLOSED,
             "... `ip 127.0.0.8/30` (no expiry now): 127.0.0.10 closed without a byte")
    ip_refusals += 1

    # The file replaced on disk, no signal.
    write_file(path, BANS_3)
    check(wait_until(lambda: attempt(p, "newly-banned") == CONNACK0, RELOAD_WAIT, 0.25),
          "the ban file replaced on disk (no signal): `clientid newly-banned` removed lifts "
          "within %.0f s" % RELOAD_WAIT, attempt(p, "newly-banned"))
    check_eq(attempt(p, "it41-ip13", "127.0.0.13"), CLOSED,
             "... and `ip 127.0.0.13` added: closed without a byte")
    check_eq(attempt(p, "it41-ip10b", "127.0.0.10"), CONNACK0,
             "... and 127.0.0.10's range removed: CONNACK 0")
    check_eq(attempt(p, "banned-id", version=5), BANNED[5],
             "... `clientid banned-id` kept: CONNACK 0x8A")
    ip_refusals += 1
    n = refused(b, "ban")
    check(n is not None and n >= ip_refusals,
          "the refusals are counted (connections refused ban %s, want at least %d)" %
          (n, ip_refusals))
    check(b.alive(), "the broker runs on after the reloads")
    b.stop()


BAD_BAN_FILES = [
    ("clientid ok-id\nclientid\n", 2, "clientid without an id"),
    ("ip 127.0.0.2\n# fine\nip 10.0.0.0/33\n", 3, "a /33 IPv4 range"),
    ("ip 10.0.0.1/8\n", 1, "a range with bits set beyond the prefix"),
    ("clientid x 2026-12-31\n", 1, "a date without a time"),
    ("clientid x 2026-12-31T23:59:59\n", 1, "an expiry without Z"),
    ("clientid x 2026-02-30T00:00:00Z\n", 1, "an expiry that is no real day"),
    ("\n\nuser bob\n", 3, "an unknown keyword"),
    ('username "a b\n', 1, "an unterminated quote"),
    ("clientid x %s extra\n" % FUTURE, 1, "a word after the expiry"),
    ('clientid ""\n', 1, "an empty quoted id"),
]


def bad_file_checks():
    """Each malformed file in a broker of its own, all started at once (a
    broker that wrongly starts costs one WAIT, not one each)."""
    d = tempfile.mkdtemp(prefix="ringmq-it41-badbans-")
    runs = []
    for i, (text, line, what) in enumerate(BAD_BAN_FILES):
        path = os.path.join(d, "bans-%d" % i)
        with open(path, "w") as f:
            f.write(text)
        conf = os.path.join(d, "ringmq-%d.conf" % i)
        with open(conf, "w") as f:
            f.write("log_level debug\nban_file %s\nlistener %d %s\n" % (path, free_port(), HOST))
        out = open(os.path.join(d, "out-%d" % i), "w+b")
        proc = subprocess.Popen([ringmq_bin(), "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        harness._procs.append(proc)
        runs.append((proc, out, path, line, what))
    deadline = time.monotonic() + WAIT
    for proc, out, path, line, what in runs:
        try:
            rc = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)
            rc = "still running after %.0f s" % WAIT
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        out.close()
        check(isinstance(rc, int) and rc != 0 and ("%s:%d:" % (path, line)) in text,
              "a ban_file with %s stops the start: non-zero exit and `%s:%d: ...`" %
              (what, os.path.basename(path), line), (rc, text[-400:]))


# ---------------------------------------------------------------------------
# flapping

FLAP_N = 5
FLAP_WINDOW = 3   # all of a burst's connections fall well inside it
FLAP_BAN = 4      # longer than the window: the burst is outside it afterwards


def flapping_checks():
    b = started(Broker(flapping_max_connects=FLAP_N, flapping_window=FLAP_WINDOW,
                       flapping_ban=FLAP_BAN), "flapping_max_connects %d, flapping_window %d, "
                "flapping_ban %d" % (FLAP_N, FLAP_WINDOW, FLAP_BAN))
    p = b.port
    # By address, with a new client id each time.
    got = [attempt(p, "it41-fa-%d" % i, "127.0.0.2") for i in range(1, FLAP_N + 1)]
    check_eq(got, [CONNACK0] * FLAP_N, "connections 1..%d from 127.0.0.2 (ids rotating): "
             "CONNACK 0 each" % FLAP_N)
    got = [attempt(p, "it41-fa-%d" % i, "127.0.0.2") for i in (FLAP_N + 1, FLAP_N + 2)]
    t_last = time.monotonic()
    check_eq(got, [CLOSED] * 2, "the %dth and %dth from 127.0.0.2: closed at accept without a "
             "byte" % (FLAP_N + 1, FLAP_N + 2))
    check_eq(attempt(p, "it41-fb-1", "127.0.0.3"), CONNACK0,
             "meanwhile 127.0.0.3 connects: CONNACK 0")

    # By client id, from different addresses (one connection each).
    cid = "it41-flap-id"
    got = [attempt(p, cid, "127.0.0.%d" % (20 + i)) for i in range(FLAP_N)]
    check_eq(got, [CONNACK0] * FLAP_N, "CONNECTs 1..%d by client id %s from 127.0.0.20..24: "
             "CONNACK 0 each" % (FLAP_N, cid))
    check_eq(attempt(p, cid, "127.0.0.25"), BANNED[4],
             "the %dth CONNECT by %s (from 127.0.0.25): CONNACK 5" % (FLAP_N + 1, cid))
    check_eq(attempt(p, cid, "127.0.0.26", version=5), BANNED[5],
             "another by %s, MQTT 5 (from 127.0.0.26): CONNACK 0x8A" % cid)
    t_cid = time.monotonic()
    check_eq(attempt(p, "it41-other-id", "127.0.0.26"), CONNACK0,
             "another client id from 127.0.0.26: CONNACK 0 (the id is banned, not the address)")

    # By username, with a new client id and address each time.
    user = "flappy"
    got = [attempt(p, "it41-fu-%d" % i, "127.0.0.%d" % (30 + i), username=user)
           for i in range(FLAP_N)]
    check_eq(got, [CONNACK0] * FLAP_N, "CONNECTs 1..%d by username %s (ids and addresses "
             "rotating): CONNACK 0 each" % (FLAP_N, user))
    check_eq(attempt(p, "it41-fu-x", "127.0.0.35", username=user), BANNED[4],
             "the %dth by username %s: CONNACK 5" % (FLAP_N + 1, user))
    check_eq(attempt(p, "it41-fu-y", "127.0.0.36", version=5, username=user), BANNED[5],
             "another by username %s, MQTT 5: CONNACK 0x8A" % user)

    n = refused(b, "flapping")
    check(n is not None and n >= 2, "the flapping refusals are counted (connections refused "
          "flapping %s, want at least the 2 at accept)" % n)

    # The bans end after flapping_ban (one attempt each: every attempt counts).
    time.sleep(max(0.0, t_last + FLAP_BAN + SLACK_S - time.monotonic()))
    check_eq(attempt(p, "it41-fa-after", "127.0.0.2"), CONNACK0,
             "%d s after the address ban began (flapping_ban %d + slack): 127.0.0.2 connects "
             "again" % (FLAP_BAN + SLACK_S, FLAP_BAN))
    time.sleep(max(0.0, t_cid + FLAP_BAN + SLACK_S - time.monotonic()))
    check_eq(attempt(p, cid, "127.0.0.27"), CONNACK0,
             "... and so does the client id %s" % cid)
    check(b.alive(), "the broker is running")
    b.stop()


def passwd_line(user, password):
    """A password_file line: ringmq-passwd (RINGMQ_PASSWD, or next to the
    broker) when there is one, else a SCRAM-SHA-512 entry made here."""
    tool = os.environ.get("RINGMQ_PASSWD") or os.path.join(os.path.dirname(ringmq_bin()),
                                                           "ringmq-passwd")
    if os.access(tool, os.X_OK):
        d = tempfile.mkdtemp(prefix="ringmq-it41-pw-")
        f = os.path.join(d, "pw")
        r = subprocess.run([tool, "-c", "-b", f, user, password], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=4 * WAIT)
        if r.returncode == 0:
            return open(f).read().strip()
        log("# ringmq-passwd failed (%d): %s; a SCRAM entry instead" % (r.returncode, r.stdout))
    return scram_entry(user, password, 4096)


def auth_failure_checks():
    d = tempfile.mkdtemp(prefix="ringmq-it41-auth-")
    pw = os.path.join(d, "passwd")
    with open(pw, "w") as f:
        f.write(passwd_line("alice", "right-secret") + "\n")
    b = started(Broker(allow_anonymous="false", password_file=pw, auth_failures_max=3,
                       flapping_window=60, flapping_ban=60),
                "auth_failures_max 3 and a password_file")
    p = b.port
    check_eq(attempt(p, "it41-ok0", "127.0.0.4", username="alice", password="right-secret"),
             CONNACK0, "alice with the right password: CONNACK 0")
    got = [attempt(p, "it41-bad1", "127.0.0.2", username="alice", password="wrong-1"),
           attempt(p, "it41-bad2", "127.0.0.2", username="alice", password="wrong-2"),
           attempt(p, "it41-bad3", "127.0.0.2", version=5, username="alice", password="wrong-3")]
    check_eq(got, [("connack", 4), ("connack", 4), ("connack", 0x86)],
             "three wrong passwords from 127.0.0.2: CONNACK 4, 4 (3.1.1) and 0x86 (5.0)")
    time.sleep(0.3)  # the third failure's verdict may still be on its way to every shard
    check_eq(attempt(p, "it41-ok1", "127.0.0.2", username="alice", password="right-secret"),
             CLOSED, "then alice with the right password from 127.0.0.2: closed at accept "
             "without a CONNACK")
    check_eq(attempt(p, "it41-ok2", "127.0.0.3", username="alice", password="right-secret"),
             CONNACK0, "... while from 127.0.0.3 she gets CONNACK 0")
    n = refused(b, "auth_failures", "flapping")
    check(n is not None and n >= 1, "the refusal is counted (connections refused "
          "auth_failures + flapping: %s)" % n)
    check(b.alive(), "the broker is running")
    b.stop()


def main():
    ringmq_only("ban_file and flapping detection are ringmq's")
    ban_checks()
    bad_file_checks()
    flapping_checks()
    auth_failure_checks()


run(main)
