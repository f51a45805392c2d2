#!/usr/bin/env python3
"""Network-level mutation fuzzer for the real broker.

Starts the broker (env RINGMQ_BIN, default build-asan/net/ringmq) on an
ephemeral 127.0.0.1 port with two shards and small queue and inflight
limits, then runs many short raw-socket MQTT sessions at once: 3.1, 3.1.1
and 5.0 clients from a small pool of client ids (so takeovers and resumed
sessions are common) CONNECT, SUBSCRIBE to plain and $share/g/... filters
at QoS 0-2, PUBLISH at QoS 0-2 (retained now and then), acknowledge some of
what they receive and not the rest, and now and then send a packet
mutated (bits flipped, truncated, duplicated, its length field forged,
bytes inserted, spliced with another), trickled a byte at a time, or plain
garbage. Sessions end with a DISCONNECT, an abrupt close, a reset (SO_LINGER
0) with messages in flight, or by being left open until the pool is full.

Every --check-every sessions, and at the end, it checks that the broker is
alive and responsive: a fresh client must get CONNACK and then PINGRESP
within a few seconds. It also checks that every packet the broker sends has
a valid fixed header. It stops at --iterations sessions or --seconds of wall
time, whichever comes first, then stops the broker with SIGTERM.

Exits 0 when the broker survived, answered every check, shut down cleanly
and printed no sanitizer report; 1 otherwise, with the broker's log tail
and the last packets sent (the trace is also written to a file next to
the broker's log). --seed repeats the same sequence of choices (timing still
differs from run to run).

    RINGMQ_BIN=build-asan/net/ringmq python3 tests/fuzz/netfuzz.py --seconds 600
"""

import argparse
import collections
import errno
import importlib.util
import os
import random
import select
import shutil
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

_spec = importlib.util.spec_from_file_location(
    "harness", os.path.join(ROOT, "tests", "integration", "harness.py"))
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)

CLIENT_IDS = ["nf%d" % i for i in range(12)]
TOPICS = ["t/a", "t/b", "t/a/x", "t/b/x", "u/1", "$SYS/nf", "t"]
FILTERS = ["t/#", "t/+", "t/+/x", "#", "u/1", "+/+", "t/a",
           "$share/g/t/#", "$share/g/t/a", "$share/h/t/+", "$share/g/#", "$share/h/u/1"]
POOL_MAX = 24          # sockets open at once
CHECK_TIMEOUT_S = 5.0  # a fresh client's CONNACK and PINGRESP
TRACE_KEEP = 400       # packets remembered for the failure report

# Fixed header flags a broker may send, by packet type [MQTT-2.2.2-1].
SERVER_TYPES = {2: 0, 3: None, 4: 0, 5: 0, 6: 2, 7: 0, 9: 0, 11: 0, 13: 0, 14: 0, 15: 0}


class BrokerGone(Exception):
    pass


class Session:
    """One raw client connection, non-blocking."""

    def __init__(self, fz, port):
        self.fz = fz
        self.rnd = fz.rnd
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(2.0)
        self.sock.connect((H.HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.version = self.rnd.choice([3, 4, 4, 5, 5, 5])
        self.cid = self.rnd.choice(CLIENT_IDS)
        self.inbuf = bytearray()
        self.pid = self.rnd.randrange(1, 65535)
        self.closed = False
        self.name = "%s/v%d/#%d" % (self.cid, self.version, fz.sessions)

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    # --- output

    def send(self, data, what):
        if self.closed:
            return
        self.fz.trace.append("%s %s %s" % (self.name, what, data[:64].hex()))
        self.fz.packets += 1
        try:
            if self.rnd.random() < 0.05 and len(data) > 1:
                # Trickled: the broker must reassemble packets from pieces.
                for i in range(len(data)):
                    self.sock.send(data[i:i + 1])
            else:
                self.sock.send(data)  # a partial send just truncates: fine
        except BlockingIOError:
            pass  # the broker stopped reading this client: back-pressure, fine
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.closed = True

    def send_maybe_mutated(self, pkt, what):
        if self.rnd.random() < self.fz.mutate_rate:
            self.fz.mutated += 1
            pkt, how = mutate(self.rnd, pkt, self.fz)
            what += "~" + how
        self.send(pkt, what)

    # --- input

    def pump(self):
        """Reads what arrived, checks each packet's fixed header, answers the
        QoS flows (not always). Returns False once the connection is closed."""
        if self.closed:
            return False
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except (ConnectionResetError, OSError):
                self.closed = True
                return False
            if not data:
                self.closed = True
                return False
            self.inbuf += data
        while True:
            pkt = take_packet(self.inbuf)
            if pkt is None:
                break
            self.on_packet(*pkt)
        return True

    def on_packet(self, ptype, flags, body):
        want = SERVER_TYPES.get(ptype, -1)
        if want == -1 or (want is not None and flags != want):
            self.fz.fail("broker sent a packet with type %d flags %#x to %s: %s" %
                         (ptype, flags, self.name, body[:32].hex()))
        self.fz.received += 1
        if ptype == 3 and len(body) >= 2:
            qos = (flags >> 1) & 3
            tlen = struct.unpack_from(">H", body, 0)[0]
            if qos and len(body) >= 2 + tlen + 2:
                pid = struct.unpack_from(">H", body, 2 + tlen)[0]
                r = self.rnd.random()
                if r < 0.75:  # the rest stay in flight
                    self.send(H.ack_pkt(4 if qos == 1 else 5, pid), "ack")
        elif ptype == 6 and len(body) >= 2:
            if self.rnd.random() < 0.85:
                self.send(H.ack_pkt(7, struct.unpack_from(">H", body, 0)[0]), "pubcomp")
        elif ptype == 5 and len(body) >= 2:
            if self.rnd.random() < 0.85:
                self.send(H.ack_pkt(6, struct.unpack_from(">H", body, 0)[0]), "pubrel")

    # --- ending

    def close(self, how):
        if self.closed:
            try:
                self.sock.close()
            except OSError:
                pass
            return
        if how == "disconnect":
            self.send(H.disconnect_pkt(self.version), "disconnect")
        elif how == "reset":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def take_packet(buf):
    """(type, flags, body) of the first whole packet in buf, removed; None if
    incomplete. A remaining length over four bytes is the broker's fault."""
    if len(buf) < 2:
        return None
    val, mult, i = 0, 1, 1
    while True:
        if i >= len(buf):
            return None
        c = buf[i]
        val += (c & 0x7F) * mult
        i += 1
        if not c & 0x80:
            break
        mult *= 128
        if i > 4:
            raise ValueError("remaining length over 4 bytes: %s" % bytes(buf[:8]).hex())
    if len(buf) < i + val:
        return None
    first = buf[0]
    body = bytes(buf[i:i + val])
    del buf[:i + val]
    return first >> 4, first & 0x0F, body


# --- packets


def random_props(rnd, kind):
    """A few valid 5.0 properties for a CONNECT ("c"), PUBLISH ("p") or
    SUBSCRIBE ("s")."""
    out = []
    if kind == "c":
        if rnd.random() < 0.6:
            out.append((0x11, rnd.choice([0, 0, 5, 60, 0xFFFFFFFF])))  # session expiry
        if rnd.random() < 0.4:
            out.append((0x21, rnd.choice([1, 2, 5, 65535])))  # receive maximum
        if rnd.random() < 0.3:
            out.append((0x22, rnd.choice([0, 2, 10])))  # topic alias maximum
        if rnd.random() < 0.2:
            out.append((0x27, rnd.choice([64, 128, 1024, 65536])))  # maximum packet size
    elif kind == "p":
        if rnd.random() < 0.3:
            out.append((0x02, rnd.choice([0, 1, 3600])))  # message expiry
        if rnd.random() < 0.2:
            out.append((0x23, rnd.randrange(1, 4)))  # topic alias
        if rnd.random() < 0.2:
            out.append((0x26, ("k", "v" * rnd.randrange(0, 20))))
        if rnd.random() < 0.1:
            out.append((0x08, "resp/t"))
    elif kind == "s":
        if rnd.random() < 0.3:
            out.append((0x0B, rnd.randrange(1, 1000)))  # subscription identifier
    return out


def connect_pkt(rnd, s):
    kw = {"version": s.version, "clean": rnd.random() < 0.4,
          "keepalive": rnd.choice([0, 1, 2, 30, 60, 600])}
    if rnd.random() < 0.2:
        kw["will"] = (rnd.choice(TOPICS[:5]), b"will", rnd.randrange(3), rnd.random() < 0.3)
        if s.version == 5 and rnd.random() < 0.5:
            kw["will_props"] = [(0x18, rnd.choice([0, 1]))]
    if s.version == 5:
        kw["cprops"] = random_props(rnd, "c")
    cid = s.cid if rnd.random() < 0.95 else ""
    return H.connect_pkt(cid, **kw)


def subscribe_pkt(rnd, s):
    n = rnd.randrange(1, 4)
    filters = []
    for _ in range(n):
        f = rnd.choice(FILTERS)
        if s.version < 5 and f.startswith("$share/") and rnd.random() < 0.5:
            f = f.split("/", 2)[2]
        opts = rnd.randrange(3)
        if s.version == 5:
            opts |= rnd.choice([0, 0, 0x04, 0x08, 0x10, 0x20])
            if f.startswith("$share/"):
                opts &= ~0x04  # no-local on a shared subscription is a protocol error
        filters.append((f, opts))
    return H.subscribe_pkt(s.next_pid(), filters, s.version,
                           random_props(rnd, "s") if s.version == 5 else None)


def publish_pkt(rnd, s):
    qos = rnd.randrange(3)
    pid = s.next_pid() if qos else None
    payload = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 8, 100, 3000])))
    return H.publish_pkt(rnd.choice(TOPICS), payload, qos=qos, pid=pid,
                         retain=rnd.random() < 0.15, dup=rnd.random() < 0.05, version=s.version,
                         pprops=random_props(rnd, "p") if s.version == 5 else None)


def unsubscribe_pkt(rnd, s):
    return H.unsubscribe_pkt(s.next_pid(), [rnd.choice(FILTERS)], s.version)


def mutate(rnd, pkt, fz):
    """One random mutation of pkt; returns (bytes, name)."""
    b = bytearray(pkt)
    how = rnd.randrange(9)
    if how == 0 and b:
        for _ in range(rnd.randrange(1, 4)):
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        return bytes(b), "flip"
    if how == 1 and len(b) > 1:
        return bytes(b[:rnd.randrange(1, len(b))]), "truncate"
    if how == 2:
        return bytes(b) * rnd.randrange(2, 4), "dup"
    if how == 3 and len(b) > 1:
        # A forged remaining length: short, long, or over four bytes.
        forged = rnd.choice([b"\x00", b"\x7f", b"\xff\x7f", b"\xff\xff\xff\x7f",
                             b"\xff\xff\xff\xff\x7f", H.varint(rnd.randrange(1 << 21))])
        i = 1
        while i < len(b) and b[i] & 0x80:
            i += 1
        return bytes(b[:1]) + forged + bytes(b[i + 1:]), "length"
    if how == 4:
        i = rnd.randrange(len(b) + 1)
        junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 16)))
        return bytes(b[:i]) + junk + bytes(b[i:]), "insert"
    if how == 5 and b:
        i = rnd.randrange(len(b))
        b[i] = rnd.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, 0xC0])
        return bytes(b), "byte"
    if how == 6 and fz.last_pkt:
        other = fz.last_pkt
        return bytes(b[:rnd.randrange(len(b) + 1)]) + other[rnd.randrange(len(other)):], "splice"
    if how == 7:
        # The first byte: another packet type or reserved flags.
        b[0] = rnd.randrange(256)
        return bytes(b), "type"
    return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64))), "garbage"


# --- the fuzzer


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.mutate_rate = args.mutate_rate
        self.trace = collections.deque(maxlen=TRACE_KEEP)
        self.sessions = 0
        self.packets = 0
        self.mutated = 0
        self.received = 0
        self.checks = 0
        self.last_pkt = b""
        self.pool = []
        self.broker = None

    def fail(self, why):
        raise BrokerGone(why)

    def start_broker(self):
        conf = {"shards": 2, "log_level": self.args.log_level, "max_inflight_messages": 5,
                "max_queued_messages": 50, "max_packet_size": 65536, "max_topic_alias": 4,
                "persistent_client_expiration": "1h", "connect_timeout": 2,
                "max_subscriptions": 20}
        self.broker = H.Broker(**conf).start(ready_timeout=20.0)

    def check_alive(self, when):
        """A fresh client gets CONNACK and PINGRESP within CHECK_TIMEOUT_S."""
        self.checks += 1
        if not self.broker.alive():
            self.fail("broker died (%s), exit status %s" % (when, self.broker.proc.returncode))
        try:
            r = H.Raw(self.broker, version=4, timeout=CHECK_TIMEOUT_S)
            r.send(H.connect_pkt("nf-probe-%d" % self.checks, version=4))
            ack = r.recv(CHECK_TIMEOUT_S)
            if ack.type != 2 or ack.rc != 0:
                self.fail("probe CONNACK (%s): got %r" % (when, ack))
            r.send(H.pingreq_pkt())
            deadline = time.monotonic() + CHECK_TIMEOUT_S
            while True:
                p = r.recv(max(0.01, deadline - time.monotonic()))
                if p.type == 13:
                    break
            r.send(H.disconnect_pkt())
            r.close()
        except (TimeoutError, H.Closed, OSError, H.Fail) as e:
            self.fail("broker did not answer a fresh client within %.0f s (%s): %r" %
                      (CHECK_TIMEOUT_S, when, e))
        reports = self.broker.sanitizer_reports()
        if reports:
            self.fail("%s: %s" % (when, "; ".join(reports)))

    def pump_all(self, wait):
        socks = [s.sock for s in self.pool if not s.closed]
        if socks:
            try:
                select.select(socks, [], [], wait)
            except (ValueError, OSError):
                pass
        for s in list(self.pool):
            try:
                s.pump()
            except ValueError as e:
                self.fail("%s: %s" % (s.name, e))
            if s.closed:
                s.close("gone")
                self.pool.remove(s)

    def one_session(self):
        rnd = self.rnd
        self.sessions += 1
        try:
            s = Session(self, self.broker.port)
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                self.end_some(len(self.pool))
                return
            if not self.broker.alive():
                self.fail("broker died, exit status %s" % self.broker.proc.returncode)
            self.fail("connect to the broker failed: %r" % e)
        self.pool.append(s)
        if rnd.random() < 0.97:
            pkt = connect_pkt(rnd, s)
            s.send_maybe_mutated(pkt, "connect")
        # Some packets before the CONNACK came: the broker must cope.
        if rnd.random() < 0.7:
            self.pump_all(0.01)
        for _ in range(rnd.randrange(0, 10)):
            r = rnd.random()
            if r < 0.3:
                pkt = subscribe_pkt(rnd, s)
            elif r < 0.8:
                pkt = publish_pkt(rnd, s)
            elif r < 0.88:
                pkt = unsubscribe_pkt(rnd, s)
            elif r < 0.95:
                pkt = H.pingreq_pkt()
            else:
                pkt = H.ack_pkt(rnd.choice([4, 5, 6, 7]), rnd.randrange(1, 65536))
            s.send_maybe_mutated(pkt, "p%d" % (pkt[0] >> 4))
            self.last_pkt = pkt
            if rnd.random() < 0.3:
                self.pump_all(0.0)
        self.pump_all(0.005)
        # End it, or leave it open for later sessions to act around.
        r = rnd.random()
        if r < 0.25:
            s.close("disconnect")
        elif r < 0.45:
            s.close("close")
        elif r < 0.6:
            s.close("reset")
        if len(self.pool) > POOL_MAX:
            self.end_some(len(self.pool) - POOL_MAX)
        self.pool = [x for x in self.pool if not x.closed]

    def end_some(self, n):
        for s in self.rnd.sample(self.pool, min(n, len(self.pool))):
            s.close(self.rnd.choice(["disconnect", "close", "reset"]))
        self.pool = [x for x in self.pool if not x.closed]

    def run(self):
        self.start_broker()
        t0 = time.monotonic()
        deadline = t0 + self.args.seconds
        next_check = self.args.check_every
        self.check_alive("at start")
        while self.sessions < self.args.iterations and time.monotonic() < deadline:
            self.one_session()
            if self.sessions >= next_check:
                next_check += self.args.check_every
                self.end_some(len(self.pool) // 2)
                self.check_alive("after %d sessions" % self.sessions)
        self.end_some(len(self.pool))
        self.check_alive("at the end")
        return time.monotonic() - t0

    def report_failure(self, why):
        print("netfuzz: FAIL: %s" % why, flush=True)
        print("netfuzz: seed %d, %d sessions, %d packets sent (%d mutated)" %
              (self.args.seed, self.sessions, self.packets, self.mutated), flush=True)
        if self.broker is None:
            return
        path = os.path.join(self.broker.dir, "netfuzz-trace.txt")
        with open(path, "w") as f:
            f.write("\n".join(self.trace) + "\n")
        print("---- last packets sent (all %d in %s) ----" % (len(self.trace), path))
        for line in list(self.trace)[-30:]:
            print("| " + line)
        if self.broker.alive():
            self.broker.live_report()
        self.broker.print_log_tail(80)
        self.broker.crash_report()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="wall time bound (default 60)")
    ap.add_argument("--iterations", type=int, default=10 ** 9, help="sessions at most")
    ap.add_argument("--check-every", type=int, default=200,
                    help="sessions between responsiveness checks (default 200)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from time)")
    ap.add_argument("--mutate-rate", type=float, default=0.12,
                    help="share of packets mutated (default 0.12)")
    ap.add_argument("--log-level", default="notice", help="broker log_level (default notice)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    if not os.environ.get("RINGMQ_BIN"):
        os.environ["RINGMQ_BIN"] = os.path.join(ROOT, "build-asan", "net", "ringmq")
    # The broker runs in its own temporary directory.
    os.environ["RINGMQ_BIN"] = os.path.abspath(os.environ["RINGMQ_BIN"])
    if not os.access(os.environ["RINGMQ_BIN"], os.X_OK):
        print("netfuzz: FAIL: no broker at %s (set RINGMQ_BIN)" % os.environ["RINGMQ_BIN"])
        return 1
    print("netfuzz: seed %d, broker %s, up to %.0f s" %
          (args.seed, os.environ["RINGMQ_BIN"], args.seconds), flush=True)

    fz = Fuzzer(args)
    rc = 0
    try:
        took = fz.run()
    except (BrokerGone, H.Fail) as e:
        fz.report_failure(str(e))
        rc = 1
    except Exception as e:  # a bug here, not in the broker: still a failure
        import traceback
        traceback.print_exc()
        fz.report_failure("netfuzz raised %r" % e)
        rc = 1
    for s in fz.pool:
        s.close("close")
    b = fz.broker
    if b is not None and b.proc is not None:
        if b.alive():
            status = b.stop(timeout=10.0)
            if status != 0 and rc == 0:
                print("netfuzz: FAIL: broker exit status %s after SIGTERM (want 0)" % status)
                b.print_log_tail(40)
                rc = 1
        elif rc == 0:
            print("netfuzz: FAIL: broker died: exit status %s" % b.proc.returncode)
            rc = 1
        reports = b.sanitizer_reports()
        if reports and rc == 0:
            print("netfuzz: FAIL: " + "; ".join(reports))
            b.print_log_tail(80)
            rc = 1
    if rc == 0 and b is not None:
        shutil.rmtree(b.dir, ignore_errors=True)  # kept on failure, for its log and trace
    if rc == 0:
        print("netfuzz: %d sessions, %d packets (%d mutated), %d received, %d checks, seed %d" %
              (fz.sessions, fz.packets, fz.mutated, fz.received, fz.checks, args.seed))
    return rc


if __name__ == "__main__":
    sys.exit(main())
