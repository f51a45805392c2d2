#!/usr/bin/python3
"""42: connection limits per address and connect rates, checked at accept:
a connection over a limit is closed without a byte. Loopback is one
interface for all of 127.0.0.0/8, so clients bind source addresses
127.0.0.2, 127.0.0.3, ... to stand for different hosts.

max_connections_per_ip 5: five connections from 127.0.0.2 get CONNACK 0
(the kernel spreads them over the broker's 4 shards), the sixth and more
are closed without a byte while 127.0.0.3 connects; closing one of the
five lets one new connection from 127.0.0.2 in. max_connect_rate_per_ip
10 (a token bucket, burst 10): of 60 connects from 127.0.0.2 as fast as
they go, at most 10 + 10/s of the time they took (+2) get CONNACK, at
least the first 10 do, the rest are closed without a byte, while
127.0.0.3 connects. max_connect_rate 10 on a listener: the same over all
addresses together, while another listener is not limited. A second
later both let connections in again (a rate, not a ban). The refusals
are counted (`connections refused per_ip`, `connections refused rate`).

Without limits: 300 silent TCP sockets from 127.0.0.2..7 are all accepted
and all closed by the broker at connect_timeout (3 s), none before, while
a connected client's PINGREQs keep getting PINGRESPs."""
import resource
import select
import signal
import socket
import threading
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def src_socket(port, src, timeout=WAIT):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class SrcRaw(Raw):
    """Raw from source address src."""

    def __init__(self, port, src="127.0.0.1", version=4, timeout=WAIT):
        Raw.__init__(self, port, version=version, timeout=timeout, src=src)


def outcome(r, timeout=WAIT):
    return connack_outcome(r, timeout)


CONNACK0 = ("connack", 0)
CLOSED = ("closed", b"")


def open_client(port, src, cid):
    """CONNECT from src; returns (outcome, the connection, kept open)."""
    r = SrcRaw(port, src)
    r.send(connect_pkt(cid, keepalive=60))
    return outcome(r), r


def attempt(port, src, cid):
    res, r = open_client(port, src, cid)
    if res == CONNACK0:
        r.send(disconnect_pkt())
    r.close()
    return res


def counters(b, *names):
    """{name: N} for `connections refused NAME N` in a fresh SIGUSR1 line."""
    line = stats_line(b, WAIT)
    out = {}
    for n in names:
        m = re.search(r"connections refused %s (\d+)" % re.escape(n), line) if line else None
        out[n] = int(m.group(1)) if m else None
    return out


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


def shards_of(b, ids):
    """The shards the broker's log says connections landed on: connection
    ids are counter * SHARDS_MAX (64) + shard (informational only)."""
    return sorted({int(i) % 64 for i in ids})


# ---------------------------------------------------------------------------


def per_ip_checks():
    b = started(Broker(max_connections_per_ip=5, connect_timeout=30),
                "max_connections_per_ip 5")
    p = b.port
    five = []
    for i in range(5):
        res, r = open_client(p, "127.0.0.2", "it42-c%d" % i)
        five.append(r)
        check_eq(res, CONNACK0, "connection %d of 5 from 127.0.0.2: CONNACK 0" % (i + 1))
    ids = re.findall(r"new connection (\d+) from 127\.0\.0\.2:", b.log_text())
    log("# the five landed on shards %s" % shards_of(b, ids))
    refused = 0
    got = [attempt(p, "127.0.0.2", "it42-over%d" % i) for i in range(6)]
    refused += len(got)
    check_eq(got, [CLOSED] * 6, "the 6th (and 5 more) from 127.0.0.2: closed without a byte, "
             "whichever shard they land on")
    other, r3 = open_client(p, "127.0.0.3", "it42-other")
    check_eq(other, CONNACK0, "meanwhile 127.0.0.3 connects: CONNACK 0")
    five[0].send(disconnect_pkt())
    five[0].close()
    tries = []

    def one_more():
        res, r = open_client(p, "127.0.0.2", "it42-again")
        tries.append(res)
        if res == CONNACK0:
            five[0] = r
            return True
        r.close()
        return False

    check(wait_until(one_more, WAIT, 0.2),
          "one of the five closed: a new connection from 127.0.0.2 gets CONNACK 0 (within "
          "%.0f s)" % WAIT, tries[-5:])
    refused += sum(1 for t in tries if t != CONNACK0)
    check_eq(attempt(p, "127.0.0.2", "it42-over-again"), CLOSED,
             "... and the next one is refused again (five are open)")
    refused += 1
    c = counters(b, "per_ip")
    check(c["per_ip"] is not None and c["per_ip"] >= refused,
          "the refusals are counted (connections refused per_ip %s, want at least %d)" %
          (c["per_ip"], refused))
    for r in five + [r3]:
        r.close()
    b.stop()


def storm(port, sources, n):
    """n connects (sources in turn) as fast as they go, each sending
    CONNECT; then the outcomes. Returns (outcomes, seconds from the first
    connect to the last outcome, the connections)."""
    conns = []
    t0 = time.monotonic()
    for i in range(n):
        r = SrcRaw(port, sources[i % len(sources)])
        r.send(connect_pkt("it42-s%d" % i, keepalive=60))
        conns.append(r)
    res = [outcome(r) for r in conns]
    return res, time.monotonic() - t0, conns


class RateBroker(Broker):
    """Listener 0 (the harness's): max_connect_rate_per_ip 10. Listener 1:
    max_connect_rate 10. Listener 2: no limit."""

    def config_text(self):
        text = super().config_text()
        return text + "listener %d %s\nmax_connect_rate 10\nlistener %d %s\n" % (
            self.rate_port, HOST, self.free_port, HOST)


def rate_checks():
    b = RateBroker(listener_conf={"max_connect_rate_per_ip": 10}, connect_timeout=30)
    b.rate_port, b.free_port = free_port(), free_port()
    started(b, "max_connect_rate_per_ip 10 and max_connect_rate 10 listeners")
    res, dt, conns = storm(b.port, ["127.0.0.2"], 60)
    other = attempt(b.port, "127.0.0.3", "it42-r-other")
    ok = res.count(CONNACK0)
    closed = res.count(CLOSED)
    bound = 10 + 10 * dt + 2
    check(ok + closed == 60, "max_connect_rate_per_ip 10, 60 connects from 127.0.0.2: each "
          "gets CONNACK 0 or is closed without a byte",
          [x for x in res if x not in (CONNACK0, CLOSED)][:5])
    check(10 <= ok <= bound, "... %d accepted in %.2f s: at least the burst of 10, at most "
          "10 + 10/s x %.2f s + 2 = %.1f" % (ok, dt, dt, bound))
    check_eq(other, CONNACK0, "meanwhile 127.0.0.3 connects: CONNACK 0")
    per_ip_refused = closed
    for r in conns:
        r.close()

    sources = ["127.0.0.%d" % i for i in range(2, 8)]
    res, dt, conns = storm(b.rate_port, sources, 60)
    free = attempt(b.free_port, "127.0.0.2", "it42-r-free")
    ok = res.count(CONNACK0)
    closed = res.count(CLOSED)
    bound = 10 + 10 * dt + 2
    check(ok + closed == 60, "max_connect_rate 10 on a listener, 60 connects from 127.0.0.2..7: "
          "each gets CONNACK 0 or is closed without a byte",
          [x for x in res if x not in (CONNACK0, CLOSED)][:5])
    check(10 <= ok <= bound, "... %d accepted in %.2f s, all addresses together: at least 10, "
          "at most 10 + 10/s x %.2f s + 2 = %.1f" % (ok, dt, dt, bound))
    check_eq(free, CONNACK0, "meanwhile a listener without a rate limit lets 127.0.0.2 in")
    rate_refused = closed
    for r in conns:
        r.close()
    # A rate, not a ban: a second later the buckets hold tokens again.
    time.sleep(1.0)
    late = []
    for port, src, what in ((b.port, "127.0.0.2", "max_connect_rate_per_ip: 127.0.0.2"),
                            (b.rate_port, "127.0.0.4", "max_connect_rate: the listener")):
        check(wait_until(lambda: late.append(attempt(port, src, "it42-later")) or
                         late[-1] == CONNACK0, SLACK_S + 0.5, 0.25),
              "%s lets a connection in again a second after its storm" % what, late[-3:])
    rate_refused += sum(1 for x in late if x != CONNACK0)
    c = counters(b, "per_ip", "rate")
    both = (c["per_ip"] or 0) + (c["rate"] or 0)
    check(c["rate"] is not None and c["rate"] >= rate_refused and
          both >= rate_refused + per_ip_refused,
          "the refusals are counted (connections refused rate %s, per_ip %s: want rate at least "
          "%d, the two together at least %d)" % (c["rate"], c["per_ip"], rate_refused,
                                                 rate_refused + per_ip_refused))
    b.stop()


SILENT = 300
CT = 3


def silent_checks():
    have = raise_nofile(SILENT + 200)
    check(have >= SILENT + 100, "RLIMIT_NOFILE %d leaves room for %d sockets" % (have, SILENT))
    b = started(Broker(connect_timeout=CT), "connect_timeout %d and no limits" % CT)
    keeper = Raw(b)
    keeper.connect("it42-keeper", keepalive=60)
    stop = threading.Event()
    pings = {"sent": 0, "answered": 0, "late": []}

    def ping_loop():
        while not stop.is_set():
            t = time.monotonic()
            pings["sent"] += 1
            keeper.send(pingreq_pkt())
            p = next_of(keeper, 13, WAIT)
            if p is None:
                pings["late"].append(round(t, 2))
                return
            pings["answered"] += 1
            stop.wait(0.25)

    th = threading.Thread(target=ping_loop, daemon=True)
    th.start()
    socks, opened, closed_at, data = [], [], {}, {}
    sources = ["127.0.0.%d" % i for i in range(2, 8)]
    errors = []
    for i in range(SILENT):
        try:
            s = src_socket(b.port, sources[i % len(sources)])
        except OSError as e:
            errors.append(repr(e))
            continue
        s.setblocking(False)
        socks.append(s)
        opened.append(time.monotonic())
    check(not errors and len(socks) == SILENT, "%d silent sockets from 127.0.0.2..7 connect" %
          SILENT, errors[:3])
    poller = select.poll()
    fdmap = {}
    for i, s in enumerate(socks):
        poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        fdmap[s.fileno()] = i
    deadline = time.monotonic() + CT + SLACK_S + WAIT
    while len(closed_at) < len(socks) and time.monotonic() < deadline:
        for fd, ev in poller.poll(50):
            i = fdmap[fd]
            try:
                d = socks[i].recv(4096)
            except BlockingIOError:
                continue
            except (ConnectionResetError, OSError):
                d = b""
            if d:
                data[i] = data.get(i, b"") + d
                continue
            closed_at[i] = time.monotonic()
            poller.unregister(fd)
    stop.set()
    th.join(WAIT + 1)
    lives = [closed_at[i] - opened[i] for i in closed_at]
    check_eq(len(closed_at), len(socks),
             "all %d silent sockets are closed by the broker" % len(socks))
    check(not data, "... without a byte sent", list(data.items())[:3])
    if lives:
        check(min(lives) >= CT - 0.5 and max(lives) <= CT + SLACK_S,
              "... each after connect_timeout %d s (%.2f to %.2f s), none before" %
              (CT, min(lives), max(lives)))
    accepted = len(re.findall(r"new connection \d+ from 127\.0\.0\.[2-7]:", b.log_text()))
    check(accepted >= len(socks), "the broker's log shows every one accepted (%d 'new "
          "connection' lines from 127.0.0.2..7)" % accepted)
    check(not pings["late"] and pings["answered"] >= 4,
          "meanwhile the connected client's PINGREQs all got PINGRESPs (%d of %d)" %
          (pings["answered"], pings["sent"]), pings["late"])
    keeper.send(pingreq_pkt())
    check(next_of(keeper, 13, WAIT) is not None, "... and it is still connected")
    for s in socks:
        s.close()
    keeper.close()
    check(b.alive(), "the broker is running")
    b.stop()


def main():
    ringmq_only("per-address limits and connect rates are ringmq's")
    silent_checks()
    per_ip_checks()
    rate_checks()


run(main)
