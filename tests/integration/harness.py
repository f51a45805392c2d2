"""Integration test harness for ringmq.

Starts the real broker binary (env RINGMQ_BIN) with a generated config on a
free loopback port, captures its stderr to a file, and stops it (SIGTERM, then
SIGKILL after a bound) when the test ends. Provides paho clients with bounded
waits, a raw-socket MQTT client with packet builders and a small decoder, and
wrappers for mosquitto_pub / mosquitto_sub.

Every wait is bounded; everything talks to 127.0.0.1 only.

For TLS listeners: Broker(listener_conf={...}) writes keys inside the
listener block; make_pki() makes test certificates with the openssl CLI;
TlsRaw is Raw over TLS; Client(tls=...) is paho over TLS; s_client() runs
openssl s_client.

A test script is a plain program:

    from harness import *
    def main():
        b = Broker(max_queued_messages=10).start()
        ...
        check(cond, "what the user would see")
    run(main)

run() exits 0 on pass, 1 on failure (printing the broker log tails), 77 on
skip. It also fails a test whose broker crashed, did not stop on SIGTERM, or
whose log shows a sanitizer report.

Development aid: RINGMQ_TEST_BROKER=mosquitto runs the same tests against
/usr/sbin/mosquitto (the config is translated; ringmq-only tests skip). This
separates test bugs from broker bugs; it is not part of the suite.
"""

import glob
import os
import queue
import re
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

PAHO_PATH_HINT = "use /usr/bin/python3 (it has paho-mqtt 1.6.1)"
try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover - reported by run()
    mqtt = None

HOST = "127.0.0.1"
TEST_TIMEOUT_S = int(os.environ.get("RINGMQ_TEST_TIMEOUT", "110"))
FLAVOUR = os.environ.get("RINGMQ_TEST_BROKER", "ringmq")
# Extra seconds allowed on top of a timer the spec sets (keepalive, connect
# timeout, shutdown). Raise it for slow (sanitizer, valgrind) builds.
SLACK_S = float(os.environ.get("RINGMQ_TEST_SLACK", "2.0"))


# ---------------------------------------------------------------------------
# Outcomes


class Fail(Exception):
    pass


class Skip(Exception):
    pass


_checks = {"n": 0, "failed": []}
# RINGMQ_TEST_KEEP_GOING=1: a failed check is recorded and the test goes on,
# to see every failure in one run (later checks may then fail as a result).
KEEP_GOING = os.environ.get("RINGMQ_TEST_KEEP_GOING") == "1"


def log(msg):
    print(msg, flush=True)


def check(cond, what, detail=None):
    """Assert a user-visible behaviour; prints 'ok - what' or raises Fail."""
    _checks["n"] += 1
    if cond:
        log("ok %d - %s" % (_checks["n"], what))
        return
    msg = what if detail is None else "%s\n    got: %s" % (what, detail)
    log("not ok %d - %s" % (_checks["n"], msg))
    if KEEP_GOING:
        _checks["failed"].append(msg)
        return
    raise Fail(msg)


def check_eq(got, want, what):
    check(got == want, what, None if got == want else "%r, want %r" % (got, want))


def skip(why):
    raise Skip(why)


def ringmq_only(why="behaviour specific to ringmq"):
    if FLAVOUR != "ringmq":
        skip("%s (running against %s)" % (why, FLAVOUR))


_brokers = []
_procs = []


def _dump_logs():
    for b in _brokers:
        b.print_log_tail()
        b.crash_report()


def _allow_core_dump():
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def run(main):
    """Runs main() under a watchdog; exits 0 pass, 1 fail, 77 skip."""
    if mqtt is None:
        log("SKIP: paho-mqtt missing; " + PAHO_PATH_HINT)
        sys.exit(77)

    def on_alarm(signum, frame):
        raise Fail("test exceeded its %d s watchdog" % TEST_TIMEOUT_S)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    rc = 0
    try:
        main()
    except Skip as e:
        log("SKIP: %s" % e)
        rc = 77
    except Fail as e:
        log("FAIL: %s" % e)
        rc = 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        log("FAIL: unexpected exception")
        rc = 1
    if rc == 0 and _checks["failed"]:
        log("FAIL: %d checks failed" % len(_checks["failed"]))
        rc = 1
    if rc == 1:
        for b in _brokers:
            if b.alive():
                b.live_report()
    try:
        problems = _cleanup()
    except Exception:
        traceback.print_exc(file=sys.stdout)
        problems = ["cleanup raised"]
    signal.alarm(0)
    if problems and rc != 77:
        for p in problems:
            log("FAIL: " + p)
        rc = 1
    if rc == 1:
        _dump_logs()
    if rc == 0:
        log("PASS (%d checks)" % _checks["n"])
    sys.stdout.flush()
    os._exit(rc)


def _cleanup():
    problems = []
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=2)
            except Exception:
                pass
    for b in _brokers:
        if b.proc is None:
            continue
        if b.proc.poll() is None:
            rc = b.stop()
            if b.expect_clean_exit and rc != 0:
                problems.append("broker on port %d: exit status %s after SIGTERM (want 0)" %
                                (b.port, rc))
        elif b.expect_clean_exit and not b.stopped_by_us:
            problems.append("broker on port %d died during the test: exit status %s" %
                            (b.port, b.proc.returncode))
        problems += b.sanitizer_reports()
    return problems


def wait_until(pred, timeout, step=0.02):
    """Polls pred() until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ---------------------------------------------------------------------------
# Broker


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ringmq_bin():
    path = os.environ.get("RINGMQ_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        for cand in ("build-it", "build"):
            p = os.path.join(here, "..", "..", cand, "net", "ringmq")
            if os.path.exists(p):
                path = os.path.abspath(p)
                break
    if not path or not os.access(path, os.X_OK):
        raise Fail("RINGMQ_BIN not set or not executable: %r" % path)
    return path


DEFAULT_CONF = {
    "shards": 4,
    "log_level": "debug",
    "allow_anonymous": "true",
}

# mosquitto knows these keys under the same names.
_MOSQ_KEYS = {"allow_anonymous", "max_queued_messages", "max_inflight_messages",
              "max_packet_size", "max_keepalive", "persistent_client_expiration",
              "retain_available", "max_qos"}


def _conf_value(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


class Broker:
    """One broker process. Keyword arguments become config lines.

    listener_conf: keys written inside the listener block, after the
    `listener PORT 127.0.0.1` line (certfile, keyfile, cafile,
    require_certificate, ...), in the dict's order; True/False become
    true/false. mosquitto knows the TLS keys by the same names, so they
    are written for RINGMQ_TEST_BROKER=mosquitto too."""

    def __init__(self, listener_conf=None, **conf):
        self.conf = dict(DEFAULT_CONF)
        self.conf.update(conf)
        self.listener_conf = dict(listener_conf or {})
        self.dir = tempfile.mkdtemp(prefix="ringmq-it-")
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")
        self.conf_path = os.path.join(self.dir, "ringmq.conf")
        self.stopped_by_us = False
        self.expect_clean_exit = True
        _brokers.append(self)

    def config_text(self):
        lines = []
        if FLAVOUR == "mosquitto":
            lines.append("log_dest stderr")
            if self.conf.get("log_level") == "debug":
                lines.append("log_type all")
            for k, v in self.conf.items():
                if k in _MOSQ_KEYS:
                    lines.append("%s %s" % (k, v))
        else:
            for k, v in self.conf.items():
                # "log_dest#2": a key given again, written as "log_dest".
                lines.append("%s %s" % (k.split("#")[0], v))
        lines.append("listener %d %s" % (self.port, HOST))
        for k, v in self.listener_conf.items():
            # "certfile#2": a key given again (SNI pairs), written as "certfile".
            lines.append("%s %s" % (k.split("#")[0], _conf_value(v)))
        return "\n".join(lines) + "\n"

    def start(self, ready_timeout=5.0):
        self.port = free_port()
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        if FLAVOUR == "mosquitto":
            argv = ["/usr/sbin/mosquitto", "-c", self.conf_path]
        else:
            argv = [ringmq_bin(), "-c", self.conf_path]
        self.logf = open(self.log_path, "wb")
        log("# starting %s on %s:%d (config %s)" % (FLAVOUR, HOST, self.port, self.conf_path))
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     preexec_fn=_allow_core_dump)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise Fail("broker exited during start-up with status %d" % self.proc.returncode)
            try:
                s = socket.create_connection((HOST, self.port), timeout=0.5)
                s.close()
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise Fail("broker did not accept connections on port %d within %.1f s" %
                               (self.port, ready_timeout))
                time.sleep(0.05)
        # Every shard has its own SO_REUSEPORT socket, and the kernel queues
        # connections on a shard's socket before that shard runs: a TCP accept
        # only says one socket exists. ringmq logs "running with N shards" once
        # all of them run; wait for that too (bounded, not fatal if missing).
        if FLAVOUR == "ringmq":
            if not wait_until(lambda: "running with" in self.log_text(),
                              max(0.5, deadline - time.monotonic())):
                log("# broker log has no 'running with' line yet; going on")
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Returns the exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """SIGTERM (or sig), then SIGKILL after timeout. Returns the exit status
        (negative when killed by a signal), or 'killed' when SIGKILL was needed."""
        if self.proc is None:
            return None
        self.stopped_by_us = True
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            log("# broker on port %d ignored signal %d for %.1f s: SIGKILLed" %
                (self.port, sig, timeout))
            return "killed"
        return rc

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_grep(self, needle):
        return [l for l in self.log_text().splitlines() if needle in l]

    def home_shard(self, client_id, timeout=5.0):
        """The shard a connected client's session lives on, from the
        broker's log line "[shard N] client 'ID': connected" (the home
        shard follows from a keyed hash with a random key: a test cannot
        compute it). None if no such line appears within timeout."""
        pat = re.compile(r"\[shard (\d+)\] client '%s': connected" % re.escape(client_id))
        found = []

        def seen():
            m = pat.search(self.log_text())
            if m:
                found.append(int(m.group(1)))
            return bool(found)

        wait_until(seen, timeout)
        return found[0] if found else None

    def print_log_tail(self, n=60):
        lines = self.log_text().splitlines()
        log("---- broker log (port %s, %s), last %d of %d lines ----" %
            (self.port, self.log_path, min(n, len(lines)), len(lines)))
        for l in lines[-n:]:
            log("| " + l)
        log("---- end of broker log ----")

    def thread_cpu(self):
        """{thread name/tid: CPU seconds} from /proc, to spot a spinning shard."""
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for task in glob.glob("/proc/%d/task/*" % self.proc.pid):
            try:
                with open(task + "/stat") as f:
                    st = f.read()
                with open(task + "/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            fields = st[st.rindex(")") + 2:].split()
            out["%s/%s" % (name, os.path.basename(task))] = (
                (int(fields[11]) + int(fields[12])) / tick)
        return out

    def live_report(self):
        """On a failure with the broker still running: per-thread CPU over one
        second and a gdb backtrace of every thread (stuck or spinning shards)."""
        a = self.thread_cpu()
        time.sleep(1.0)
        b = self.thread_cpu()
        log("# broker threads, CPU seconds used in the last second: %s" %
            ", ".join("%s %.2f" % (k, b[k] - a.get(k, 0)) for k in sorted(b)))
        if not shutil.which("gdb"):
            return
        try:
            r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(self.proc.pid),
                                "-ex", "thread apply all bt 12"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            lines = [l for l in r.stdout.decode("utf-8", "replace").splitlines()
                     if l.startswith(("#", "Thread"))]
            log("---- gdb backtrace of the running broker (at failure) ----")
            for l in lines[:100]:
                log("| " + l)
            log("---- end of backtrace ----")
        except (subprocess.TimeoutExpired, OSError) as e:
            log("# gdb failed: %r" % e)

    def crash_report(self):
        """A backtrace from the core file of a crashed broker, if there is one
        (core_pattern 'core' in the broker's temp dir) and gdb is installed."""
        if self.proc is None or self.proc.returncode is None or self.proc.returncode >= 0:
            return
        cores = glob.glob(os.path.join(self.dir, "core*"))
        log("# broker on port %s died of signal %d; core files: %s" %
            (self.port, -self.proc.returncode, cores or "none (see /proc/sys/kernel/core_pattern)"))
        if not cores or not shutil.which("gdb"):
            return
        try:
            r = subprocess.run(["gdb", "-batch", "-nx", "-ex", "bt", "-ex", "thread apply all bt 12",
                                self.argv[0], cores[0]], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            lines = [l for l in r.stdout.decode("utf-8", "replace").splitlines()
                     if l.startswith(("#", "Thread", "Program terminated", "Core was"))]
            log("---- gdb backtrace of the crashed broker ----")
            for l in lines[:80]:
                log("| " + l)
            log("---- end of backtrace ----")
        except (subprocess.TimeoutExpired, OSError) as e:
            log("# gdb failed: %r" % e)

    def sanitizer_reports(self):
        out = []
        for l in self.log_text().splitlines():
            if ("ERROR: AddressSanitizer" in l or "runtime error:" in l or
                    "WARNING: ThreadSanitizer" in l or "ERROR: LeakSanitizer" in l):
                out.append("sanitizer report in broker log: " + l.strip())
        return out[:5]


# ---------------------------------------------------------------------------
# paho clients


class Msg:
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "props", "t")

    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.props = getattr(m, "properties", None)
        self.t = time.monotonic()

    def __repr__(self):
        return "Msg(%r, %r, qos=%d, retain=%d)" % (self.topic, self.payload[:40], self.qos,
                                                   self.retain)


_PAHO_PROTO = {3: "MQTTv31", 4: "MQTTv311", 5: "MQTTv5"}


class Client:
    """A paho client with bounded waits. version: 3 (3.1), 4 (3.1.1) or 5.

    Never reconnects on its own: a test decides. Received messages are kept
    in self.msgs in arrival order."""

    def __init__(self, broker, client_id, version=4, clean=True, keepalive=60,
                 session_expiry=None, will=None, connect_props=None, username=None,
                 password=None, tls=None):
        """tls: None (plain TCP) or tls_context()'s keyword arguments, e.g.
        {"ca": pki.ca, "cert": pki.alice_cert, "key": pki.alice_key}; the
        handshake then runs inside connect() (an ssl.SSLError from there is
        a refused handshake)."""
        self.broker = broker
        self.port = broker if isinstance(broker, int) else broker.port
        self.client_id = client_id
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connect_props = connect_props
        proto = getattr(mqtt, _PAHO_PROTO[version])
        if version == 5:
            self.c = mqtt.Client(client_id=client_id, protocol=proto,
                                 reconnect_on_failure=False)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=proto,
                                 reconnect_on_failure=False)
        self.c.max_inflight_messages_set(20)
        if tls is not None:
            self.c.tls_set_context(tls_context(**tls))
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = (list(will) + [0, False])[:4]
            self.c.will_set(topic, payload, qos, retain)
        self.cv = threading.Condition()
        self.msgs = []
        self.connack = None  # (flags, rc, props)
        self.disconnected = None  # rc when the connection ended
        self.acked = set()
        self.subacks = {}
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect

    # callbacks (paho's network thread)
    def _on_connect(self, c, ud, flags, rc, props=None):
        with self.cv:
            self.connack = (flags, rc if isinstance(rc, int) else rc.value, props)
            self.cv.notify_all()

    def _on_message(self, c, ud, m):
        with self.cv:
            self.msgs.append(Msg(m))
            self.cv.notify_all()

    def _on_publish(self, c, ud, mid):
        with self.cv:
            self.acked.add(mid)
            self.cv.notify_all()

    def _on_subscribe(self, c, ud, mid, granted, props=None):
        with self.cv:
            self.subacks[mid] = [g if isinstance(g, int) else g.value for g in granted]
            self.cv.notify_all()

    def _on_unsubscribe(self, c, ud, mid, props=None, rcs=None):
        with self.cv:
            self.subacks[mid] = "unsuback"
            self.cv.notify_all()

    def _on_disconnect(self, c, ud, rc, props=None):
        with self.cv:
            self.disconnected = rc if isinstance(rc, int) else rc.value
            self.cv.notify_all()

    def _wait(self, pred, timeout, what):
        with self.cv:
            if not self.cv.wait_for(pred, timeout=timeout):
                raise Fail("%s: %s within %.1f s" % (self.client_id, what, timeout))

    def connect(self, timeout=5.0, expect_rc=0):
        """Connects and waits for CONNACK. Returns (session_present, rc, props)."""
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean
            props = self.connect_props
            if self.session_expiry is not None:
                props = props or Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
            if props is not None:
                kw["properties"] = props
        self.c.connect(HOST, self.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        self._wait(lambda: self.connack is not None, timeout, "no CONNACK")
        flags, rc, props = self.connack
        sp = int(flags.get("session present", 0))
        if expect_rc is not None and rc != expect_rc:
            raise Fail("%s: CONNACK rc %#x, want %#x" % (self.client_id, rc, expect_rc))
        return sp, rc, props

    def subscribe(self, topics, qos=1, timeout=5.0):
        """topics: a filter, or a list of (filter, qos or SubscribeOptions).
        Waits for SUBACK; returns the granted QoS / reason codes."""
        if isinstance(topics, str):
            if self.version == 5 and isinstance(qos, int):
                qos = SubscribeOptions(qos=qos)
            topics = [(topics, qos)]
        elif self.version == 5:
            topics = [(t, SubscribeOptions(qos=q) if isinstance(q, int) else q)
                      for t, q in topics]
        rc, mid = self.c.subscribe(topics)
        if rc != 0:
            raise Fail("%s: subscribe() failed locally: %d" % (self.client_id, rc))
        self._wait(lambda: mid in self.subacks, timeout, "no SUBACK")
        return self.subacks[mid]

    def unsubscribe(self, topic, timeout=5.0):
        rc, mid = self.c.unsubscribe(topic)
        self._wait(lambda: mid in self.subacks, timeout, "no UNSUBACK")

    def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=5.0, props=None):
        """Publishes; for QoS>0 with wait, waits for the PUBACK / PUBCOMP."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != 0:
            raise Fail("%s: publish() failed locally: %d" % (self.client_id, info.rc))
        if wait and qos > 0:
            self._wait(lambda: info.mid in self.acked, timeout,
                       "no acknowledgement of QoS %d publish to %s" % (qos, topic))
        return info.mid

    def wait_acked(self, mids, timeout):
        mids = set(mids)
        self._wait(lambda: mids <= self.acked, timeout,
                   "only %d of %d publishes acknowledged" %
                   (len(mids & self.acked), len(mids)))

    def wait_messages(self, n, timeout=5.0, pred=None):
        """Waits until n messages (matching pred) arrived; returns them."""
        sel = (lambda: [m for m in self.msgs if pred(m)]) if pred else (lambda: list(self.msgs))
        with self.cv:
            self.cv.wait_for(lambda: len(sel()) >= n, timeout=timeout)
            got = sel()
        if len(got) < n:
            raise Fail("%s: got %d of %d expected messages within %.1f s: %r" %
                       (self.client_id, len(got), n, timeout, got[:10]))
        return got

    def messages(self, pred=None):
        with self.cv:
            return [m for m in self.msgs if pred is None or pred(m)]

    def wait_topic(self, topic, timeout=5.0):
        return self.wait_messages(1, timeout, lambda m: m.topic == topic)[0]

    def wait_disconnected(self, timeout=5.0):
        self._wait(lambda: self.disconnected is not None, timeout, "still connected")
        return self.disconnected

    def is_connected(self):
        return self.c.is_connected()

    def disconnect(self, timeout=5.0):
        if self.c.is_connected():
            self.c.disconnect()
            with self.cv:
                self.cv.wait_for(lambda: self.disconnected is not None, timeout=timeout)
        self.c.loop_stop()

    def close(self):
        try:
            self.disconnect(timeout=2.0)
        except Exception:
            pass


def connected(broker, client_id, version=4, **kw):
    c = Client(broker, client_id, version=version, **kw)
    c.connect()
    return c


# ---------------------------------------------------------------------------
# raw MQTT packets


def scram_entry(user, password, iterations):
    """A password file line for user in RFC 5803's SCRAM-SHA-512 form,
    computed here with hashlib (ringmq --scram-entry writes 4096 iterations;
    tests that want another count, such as the largest a file may hold, use
    this)."""
    import base64
    import hashlib
    import hmac
    b64 = lambda x: base64.b64encode(x).decode()
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    stored = hashlib.sha512(hmac.new(salted, b"Client Key", "sha512").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha512").digest()
    return "%s:SCRAM-SHA-512$%d:%s$%s:%s" % (user, iterations, b64(salt), b64(stored),
                                             b64(server))


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def s(x):
    """MQTT UTF-8 string (or binary data) with a 2-byte length."""
    if isinstance(x, str):
        x = x.encode("utf-8")
    return u16(len(x)) + x


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


# property id -> type
_PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte",
    0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16",
    0x22: "u16", 0x23: "u16", 0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32",
    0x28: "byte", 0x29: "byte", 0x2A: "byte",
}

PROP_NAMES = {
    0x01: "payload_format", 0x02: "message_expiry", 0x03: "content_type", 0x08: "response_topic",
    0x09: "correlation_data", 0x0B: "subscription_id", 0x11: "session_expiry",
    0x12: "assigned_client_id", 0x13: "server_keepalive", 0x15: "auth_method",
    0x16: "auth_data", 0x17: "request_problem_info", 0x18: "will_delay",
    0x19: "request_response_info", 0x1A: "response_info", 0x1C: "server_reference",
    0x1F: "reason_string", 0x21: "receive_maximum", 0x22: "topic_alias_maximum",
    0x23: "topic_alias", 0x24: "maximum_qos", 0x25: "retain_available",
    0x26: "user_property", 0x27: "maximum_packet_size", 0x28: "wildcard_sub_available",
    0x29: "sub_id_available", 0x2A: "shared_sub_available",
}


def props(items=()):
    """Encodes MQTT 5 properties: items is a list of (id, value) (ids may repeat,
    on purpose, to build protocol errors) or a dict."""
    if isinstance(items, dict):
        items = list(items.items())
    out = bytearray()
    for pid, v in items:
        t = _PROP_TYPES[pid]
        out += varint(pid)
        if t == "byte":
            out.append(v)
        elif t == "u16":
            out += u16(v)
        elif t == "u32":
            out += struct.pack(">I", v)
        elif t == "varint":
            out += varint(v)
        elif t in ("str", "bin"):
            out += s(v)
        elif t == "pair":
            out += s(v[0]) + s(v[1])
    return varint(len(out)) + bytes(out)


PROTO_NAMES = {3: b"MQIsdp", 4: b"MQTT", 5: b"MQTT"}


def connect_pkt(client_id, version=4, clean=True, keepalive=60, will=None, username=None,
                password=None, cprops=None, will_props=None, proto_name=None, flags_extra=0):
    """CONNECT. will: (topic, payload, qos, retain)."""
    name = PROTO_NAMES.get(version, b"MQTT") if proto_name is None else proto_name
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will is not None:
        wt, wp, wq, wr = (list(will) + [0, False])[:4]
        flags |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        if version == 5:
            payload += props(will_props or [])
        payload += s(wt) + s(wp)
    if username is not None:
        flags |= 0x80
        payload += s(username)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    flags |= flags_extra
    body = s(name) + bytes([version, flags]) + u16(keepalive)
    if version == 5:
        body += props(cprops or [])
    return packet(1, 0, body + payload)


def publish_pkt(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, version=4,
                pprops=None):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = s(topic)
    if qos > 0:
        body += u16(pid if pid is not None else 1)
    if version == 5:
        body += props(pprops or [])
    return packet(3, flags, body + payload)


def subscribe_pkt(pid, filters, version=4, sprops=None):
    """filters: list of (filter, options byte). Options = QoS | v5 flags
    (0x04 no local, 0x08 retain as published, retain handling << 4)."""
    body = u16(pid)
    if version == 5:
        body += props(sprops or [])
    for f, o in filters:
        body += s(f) + bytes([o])
    return packet(8, 2, body)


def unsubscribe_pkt(pid, filters, version=4):
    body = u16(pid) + (props() if version == 5 else b"")
    for f in filters:
        body += s(f)
    return packet(10, 2, body)


def ack_pkt(ptype, pid, rc=None, version=4):
    """PUBACK(4) PUBREC(5) PUBREL(6) PUBCOMP(7)."""
    body = u16(pid)
    if version == 5 and rc is not None:
        body += bytes([rc]) + props()
    return packet(ptype, 2 if ptype == 6 else 0, body)


def pingreq_pkt():
    return b"\xc0\x00"


def disconnect_pkt(version=4, rc=0, dprops=None):
    if version == 5 and (rc or dprops):
        return packet(14, 0, bytes([rc]) + props(dprops or []))
    return b"\xe0\x00"


TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
              7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
              12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


def _read_varint(b, i):
    mult, val = 1, 0
    for _ in range(4):
        c = b[i]
        i += 1
        val += (c & 0x7F) * mult
        if not c & 0x80:
            return val, i
        mult *= 128
    raise ValueError("varint longer than 4 bytes")


def decode_props(b, i):
    """Returns (dict id->value, list of user property pairs, next index)."""
    n, i = _read_varint(b, i)
    end = i + n
    out, users = {}, []
    while i < end:
        pid, i = _read_varint(b, i)
        t = _PROP_TYPES.get(pid)
        if t is None:
            raise ValueError("unknown property id %#x" % pid)
        if t == "byte":
            v = b[i]
            i += 1
        elif t == "u16":
            v = struct.unpack_from(">H", b, i)[0]
            i += 2
        elif t == "u32":
            v = struct.unpack_from(">I", b, i)[0]
            i += 4
        elif t == "varint":
            v, i = _read_varint(b, i)
        elif t in ("str", "bin", "pair"):
            ln = struct.unpack_from(">H", b, i)[0]
            v = bytes(b[i + 2:i + 2 + ln])
            i += 2 + ln
            if t == "str":
                v = v.decode("utf-8", "replace")
            if t == "pair":
                ln2 = struct.unpack_from(">H", b, i)[0]
                v = (v.decode("utf-8", "replace"),
                     bytes(b[i + 2:i + 2 + ln2]).decode("utf-8", "replace"))
                i += 2 + ln2
                users.append(v)
                continue
        if pid == 0x0B:
            out.setdefault(pid, []).append(v)
        else:
            out[pid] = v
    return out, users, end


class Packet:
    """A decoded packet. Fields by type:
    CONNACK: session_present, rc, props; SUBACK/UNSUBACK: pid, codes, props;
    PUBLISH: topic, qos, retain, dup, pid, payload, props; PUBACK..PUBCOMP: pid, rc;
    DISCONNECT, AUTH: rc, props. raw holds the whole packet's bytes."""

    def __init__(self, ptype, flags, body, raw, version):
        self.type = ptype
        self.flags = flags
        self.body = body
        self.raw = raw
        self.props = {}
        self.user_props = []
        self.rc = None
        b = body
        v5 = version == 5
        if ptype == 2:
            self.session_present = b[0] & 1
            self.rc = b[1]
            if len(b) > 2:
                self.props, _, _ = decode_props(b, 2)
        elif ptype == 3:
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            ln = struct.unpack_from(">H", b, 0)[0]
            self.topic = bytes(b[2:2 + ln]).decode("utf-8", "replace")
            i = 2 + ln
            self.pid = None
            if self.qos:
                self.pid = struct.unpack_from(">H", b, i)[0]
                i += 2
            if v5:
                self.props, self.user_props, i = decode_props(b, i)
            self.payload = bytes(b[i:])
        elif ptype in (4, 5, 6, 7):
            self.pid = struct.unpack_from(">H", b, 0)[0]
            self.rc = b[2] if len(b) > 2 else 0
            if len(b) > 3:
                self.props, _, _ = decode_props(b, 3)
        elif ptype in (9, 11):
            self.pid = struct.unpack_from(">H", b, 0)[0]
            i = 2
            if v5:
                self.props, _, i = decode_props(b, 2)
            self.codes = list(b[i:])
        elif ptype in (14, 15):
            self.rc = b[0] if len(b) > 0 else 0
            if len(b) > 1:
                self.props, _, _ = decode_props(b, 1)

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "type%d" % self.type)

    def __repr__(self):
        extra = ""
        if self.type == 3:
            extra = " topic=%r qos=%d retain=%d dup=%d pid=%s payload=%r" % (
                self.topic, self.qos, self.retain, self.dup, self.pid, self.payload[:32])
        elif self.rc is not None:
            extra = " rc=%#04x" % self.rc
        if self.type in (9, 11):
            extra = " pid=%d codes=%s" % (self.pid, [hex(c) for c in self.codes])
        if self.props:
            extra += " props={%s}" % ", ".join("%s: %r" % (PROP_NAMES.get(k, hex(k)), v)
                                               for k, v in self.props.items())
        return "<%s%s bytes=%s>" % (self.name, extra, self.raw[:48].hex(" "))


class Closed(Exception):
    """The broker closed the connection (EOF or reset)."""


def connack_outcome(r, timeout=5.0):
    """What the broker answered a CONNECT on Raw r with: ("connack", rc),
    ("closed", bytes received first: b"" when it closed without a byte),
    ("timeout",), or ("other", p)."""
    try:
        p = r.recv(timeout)
    except Closed:
        return ("closed", bytes(r.buf))
    except TimeoutError:
        return ("timeout",)
    if p.type == 2:
        return ("connack", p.rc)
    return ("other", repr(p))


class Raw:
    """A raw TCP MQTT connection to the broker."""

    def __init__(self, broker, version=4, timeout=5.0, rcvbuf=None, src=None):
        """rcvbuf: a small SO_RCVBUF, set before connecting, makes a client
        whose kernel buffer fills fast when it stops reading. src: the
        source address (127.0.0.2, ... stand for other hosts)."""
        port = broker if isinstance(broker, int) else broker.port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if src is not None:
            self.sock.bind((src, 0))
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.version = version
        self.eof = False
        self.eof_reason = None

    def send(self, data):
        """Sends bytes; returns False if the broker already closed the socket."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError) as e:
            self.eof_reason = repr(e)
            return False

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        except ConnectionResetError as e:
            data = b""
            self.eof_reason = "reset"
        if not data:
            self.eof = True
            if self.eof_reason is None:
                self.eof_reason = "eof"
            raise Closed
        self.buf += data

    def _try_parse(self):
        b = self.buf
        if len(b) < 2:
            return None
        mult, val, i = 1, 0, 1
        while True:
            if i >= len(b):
                return None
            c = b[i]
            val += (c & 0x7F) * mult
            i += 1
            if not c & 0x80:
                break
            mult *= 128
            if i > 4:
                raise Fail("broker sent a remaining length longer than 4 bytes: %s" %
                           bytes(b[:8]).hex(" "))
        if len(b) < i + val:
            return None
        raw = bytes(b[:i + val])
        del b[:i + val]
        return Packet(raw[0] >> 4, raw[0] & 0x0F, raw[i:], raw, self.version)

    def recv(self, timeout=5.0):
        """Next packet. Raises Closed on EOF, TimeoutError when none came."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            if self.eof:
                raise Closed
            self._fill(deadline)

    def expect(self, ptype, timeout=5.0, what=None):
        """Next packet must be of ptype (skips nothing)."""
        try:
            p = self.recv(timeout)
        except TimeoutError:
            raise Fail("%s: no packet within %.1f s" % (what or "want " + TYPE_NAMES[ptype],
                                                         timeout))
        except Closed:
            raise Fail("%s: connection closed by broker (%s)" %
                       (what or "want " + TYPE_NAMES[ptype], self.eof_reason))
        if p.type != ptype:
            raise Fail("%s: got %r" % (what or "want " + TYPE_NAMES[ptype], p))
        return p

    def connect(self, client_id, expect_rc=0, **kw):
        kw.setdefault("version", self.version)
        self.version = kw["version"]
        self.send(connect_pkt(client_id, **kw))
        ack = self.expect(2, what="CONNACK for %r" % client_id)
        if expect_rc is not None and ack.rc != expect_rc:
            raise Fail("CONNACK for %r: rc %#x, want %#x (%r)" % (client_id, ack.rc, expect_rc,
                                                                  ack))
        return ack

    def subscribe(self, filters, pid=1, sprops=None):
        """filters: a filter string (QoS 1) or list of (filter, options)."""
        if isinstance(filters, str):
            filters = [(filters, 1)]
        self.send(subscribe_pkt(pid, filters, self.version, sprops))
        ack = self.expect(9, what="SUBACK")
        if ack.pid != pid:
            raise Fail("SUBACK pid %d, want %d" % (ack.pid, pid))
        return ack.codes

    def publish(self, topic, payload=b"", qos=0, pid=1, retain=False, **kw):
        """Publishes and completes the QoS flow; returns the final ack (or None)."""
        self.send(publish_pkt(topic, payload, qos, pid, retain, version=self.version, **kw))
        if qos == 1:
            return self.expect(4, what="PUBACK %d" % pid)
        if qos == 2:
            rec = self.expect(5, what="PUBREC %d" % pid)
            self.send(ack_pkt(6, pid, version=self.version))
            return self.expect(7, what="PUBCOMP %d" % pid)
        return None

    def recv_publish(self, timeout=5.0, ack=True):
        """Next PUBLISH, acknowledged for QoS 1 (PUBACK) or QoS 2 (PUBREC, then
        expects PUBREL and sends PUBCOMP). Other packets are an error."""
        p = self.expect(3, timeout, "want PUBLISH")
        if ack and p.qos == 1:
            self.send(ack_pkt(4, p.pid, version=self.version))
        elif ack and p.qos == 2:
            self.send(ack_pkt(5, p.pid, version=self.version))
            rel = self.expect(6, what="PUBREL %d" % p.pid)
            self.send(ack_pkt(7, rel.pid, version=self.version))
        return p

    def wait_closed(self, timeout=3.0):
        """Reads until the broker closes. Returns the packets received first;
        raises Fail if the connection is still open after timeout."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(self.recv(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got
            except TimeoutError:
                raise Fail("connection still open %.1f s later (received %r)" % (timeout, got))

    def is_open(self, wait=0.0):
        """True if no EOF arrives within wait seconds. Packets that arrive
        meanwhile are kept for recv()."""
        deadline = time.monotonic() + wait
        if self.eof:
            return False
        try:
            while True:
                self._fill(deadline)
        except TimeoutError:
            return True
        except Closed:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# mosquitto command-line clients


def mosq_args(broker, *args):
    return ["-h", HOST, "-p", str(broker.port)] + list(args)


def mosq_pub(broker, *args, timeout=10.0):
    """Runs mosquitto_pub; returns (exit status, output)."""
    argv = ["mosquitto_pub"] + mosq_args(broker, *args)
    log("# $ " + " ".join(argv))
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Fail("mosquitto_pub did not finish within %.1f s: %r" % (timeout, e.output))
    return r.returncode, r.stdout.decode("utf-8", "replace")


class MosqSub:
    """A background mosquitto_sub with -d (so SUBACK is visible on stdout)."""

    def __init__(self, broker, *args):
        self.argv = ["mosquitto_sub"] + mosq_args(broker, "-d", *args)
        log("# $ " + " ".join(self.argv))
        # A pipe makes stdio block-buffered: ask for line buffering.
        pre = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        self.proc = subprocess.Popen(pre + self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _procs.append(self.proc)
        self.lines = []
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _reader(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_line(self, pred, timeout=5.0, what="line"):
        with self.cv:
            ok = self.cv.wait_for(lambda: any(pred(l) for l in self.lines), timeout=timeout)
            if not ok:
                raise Fail("mosquitto_sub: no %s within %.1f s; output: %r" %
                           (what, timeout, self.lines[-20:]))
            return [l for l in self.lines if pred(l)][0]

    def wait_suback(self, timeout=5.0):
        return self.wait_line(lambda l: "SUBACK" in l, timeout, "SUBACK")

    def wait_exit(self, timeout=10.0):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("mosquitto_sub did not exit within %.1f s; output: %r" %
                       (timeout, self.lines[-20:]))
        self.t.join(timeout=2)
        return rc

    def data_lines(self):
        """Output lines that are not -d debug chatter."""
        with self.cv:
            return [l for l in self.lines
                    if not l.startswith("Client ") and not l.startswith("Subscribed (mid")]


# ---------------------------------------------------------------------------
# Child python processes (e.g. a client to SIGKILL)


def spawn_python(code, *args):
    p = subprocess.Popen([sys.executable, "-u", "-c", code] + [str(a) for a in args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    _procs.append(p)
    return p


def read_line(proc, timeout=5.0):
    """One stdout line of a child, bounded."""
    q = queue.Queue()
    threading.Thread(target=lambda: q.put(proc.stdout.readline()), daemon=True).start()
    try:
        return q.get(timeout=timeout).decode("utf-8", "replace").strip()
    except queue.Empty:
        raise Fail("child process printed nothing within %.1f s" % timeout)


# ---------------------------------------------------------------------------
# Reading a Raw connection, bounded


def next_of(r, ptype, timeout):
    """The next packet of ptype (others are skipped), or None."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            p = r.recv(max(0.01, deadline - time.monotonic()))
            if p.type == ptype:
                return p
    except (TimeoutError, Closed):
        return None


def read_publishes(r, n, timeout, ack=False, pred=None):
    """Up to n PUBLISH packets within timeout in all (other packets are
    skipped). ack: QoS 1 ones are acknowledged as they come. pred: only
    the PUBLISH packets it accepts count (all are acknowledged)."""
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n:
            p = r.recv(max(0.01, deadline - time.monotonic()))
            if p.type != 3:
                continue
            if ack and p.qos == 1:
                r.send(ack_pkt(4, p.pid, version=r.version))
            if pred is None or pred(p):
                got.append(p)
    except (TimeoutError, Closed):
        pass
    return got


# ---------------------------------------------------------------------------
# The broker's own statistics (its SIGUSR1 line)


def stats_line(b, timeout=5.0):
    """A fresh SIGUSR1 line from broker b's log, or None when none came
    within timeout."""
    before = len(b.log_grep("SIGUSR1:"))
    b.send_signal(signal.SIGUSR1)
    lines = wait_until(lambda: b.log_grep("SIGUSR1:")[before:], timeout)
    return lines[-1] if lines else None


def stats_counters(b, timeout=5.0):
    """A fresh SIGUSR1 line's counters by name ("messages received": N);
    {} when no line came."""
    line = stats_line(b, timeout)
    if line is None:
        return {}
    return {k.strip(): int(v) for k, v in re.findall(r"([a-z ]+?) (\d+)(?=,|$| \()", line)}


# ---------------------------------------------------------------------------
# The broker process as the OS sees it


def rss_kb(pid):
    """Resident set size of a process, KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    """Is the process an ASan build (its RSS then says little)?"""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


# ---------------------------------------------------------------------------
# TLS: test certificates made with the openssl CLI, a TLS raw client,
# openssl s_client


_PKI_CNF = """\
[req]
distinguished_name = req_dn
[req_dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server_rsa_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# `openssl ca', only for the expired certificate: OpenSSL 3.0's x509 and
# req have no -not_before, ca has -startdate/-enddate.
[ca]
default_ca = test_ca
[test_ca]
dir = %(dir)s
database = $dir/ca-db/index.txt
new_certs_dir = $dir/ca-db
serial = $dir/ca-db/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
[policy_any]
commonName = supplied
"""


class PKI:
    """Paths of make_pki()'s files (PEM). expired_cert/expired_key are None
    when openssl could not make a certificate that has expired."""

    def __repr__(self):
        return "PKI(%s)" % self.dir


def _openssl(argv, what, cwd, timeout=30.0):
    try:
        r = subprocess.run(["openssl"] + argv, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail("make_pki: openssl %s (%s) did not finish within %.0f s" %
                   (argv[0], what, timeout))
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        raise Fail("make_pki: openssl %s (%s) failed with status %d:\n%s" %
                   (" ".join(argv), what, r.returncode, out[-2000:]))
    return out


def make_pki(dir):
    """Test certificates, made with the openssl CLI in dir:
    ca (ECDSA P-256 CA); server_cert/server_key (ECDSA, signed by ca, for
    IP:127.0.0.1 and DNS:localhost); server_rsa_cert/server_rsa_key (the same
    with an RSA 2048 key: only an RSA certificate lets a client ask for
    RSA-key-exchange suites such as AES128-SHA); alice_cert/alice_key (CN
    alice, clientAuth, signed by ca); foreign_ca and foreign_cert/foreign_key
    (CN alice too, signed by another CA); expired_cert/expired_key (CN alice,
    signed by ca, valid only in January 2020; None if openssl could not make
    it). Raises Fail (Skip without openssl) with openssl's output."""
    if not shutil.which("openssl"):
        skip("the openssl CLI is not installed (apt-get install openssl)")
    os.makedirs(dir, exist_ok=True)
    cnf = os.path.join(dir, "pki.cnf")
    with open(cnf, "w") as f:
        f.write(_PKI_CNF % {"dir": dir})
    pki = PKI()
    pki.dir = dir
    path = lambda name: os.path.join(dir, name)

    def ec_key(name):
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", path(name)], "EC P-256 key " + name, dir)
        return path(name)

    def self_signed_ca(name, cn):
        key = ec_key(name + ".key")
        _openssl(["req", "-x509", "-new", "-config", cnf, "-extensions", "v3_ca", "-key", key,
                  "-subj", "/CN=" + cn, "-days", "3650", "-sha256", "-out", path(name + ".crt")],
                 "CA " + cn, dir)
        return path(name + ".crt"), key

    def csr(name, cn, key):
        _openssl(["req", "-new", "-config", cnf, "-key", key, "-subj", "/CN=" + cn,
                  "-out", path(name + ".csr")], "request " + name, dir)
        return path(name + ".csr")

    def signed(name, cn, key, ca, ca_key, ext):
        req = csr(name, cn, key)
        _openssl(["x509", "-req", "-in", req, "-CA", ca, "-CAkey", ca_key,
                  "-set_serial", "0x" + os.urandom(8).hex(), "-days", "30", "-sha256",
                  "-extfile", cnf, "-extensions", ext, "-out", path(name + ".crt")],
                 "certificate " + name, dir)
        return path(name + ".crt")

    pki.ca, pki.ca_key = self_signed_ca("ca", "ringmq test CA")
    pki.server_key = ec_key("server.key")
    pki.server_cert = signed("server", "localhost", pki.server_key, pki.ca, pki.ca_key,
                             "server_ext")
    pki.server_rsa_key = path("server-rsa.key")
    _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", pki.server_rsa_key], "RSA 2048 key", dir)
    pki.server_rsa_cert = signed("server-rsa", "localhost", pki.server_rsa_key, pki.ca,
                                 pki.ca_key, "server_rsa_ext")
    pki.alice_key = ec_key("alice.key")
    pki.alice_cert = signed("alice", "alice", pki.alice_key, pki.ca, pki.ca_key, "client_ext")
    pki.foreign_ca, foreign_ca_key = self_signed_ca("foreign-ca", "ringmq foreign CA")
    pki.foreign_key = ec_key("foreign-alice.key")
    pki.foreign_cert = signed("foreign-alice", "alice", pki.foreign_key, pki.foreign_ca,
                              foreign_ca_key, "client_ext")

    pki.expired_key = ec_key("expired-alice.key")
    pki.expired_cert = path("expired-alice.crt")
    db = path("ca-db")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write(os.urandom(8).hex() + "\n")
    try:
        _openssl(["ca", "-config", cnf, "-batch", "-notext", "-in",
                  csr("expired-alice", "alice", pki.expired_key), "-cert", pki.ca, "-keyfile",
                  pki.ca_key, "-startdate", "20200101000000Z", "-enddate", "20200131000000Z",
                  "-extensions", "client_ext", "-out", pki.expired_cert],
                 "expired certificate", dir)
    except Fail as e:
        log("# make_pki: no expired certificate, its checks are skipped: %s" % e)
        pki.expired_cert = pki.expired_key = None
    if FLAVOUR == "mosquitto":
        # mosquitto drops root for its own user before reading the files.
        os.chmod(dir, 0o755)
        for f in glob.glob(os.path.join(dir, "*.crt")) + glob.glob(os.path.join(dir, "*.key")):
            os.chmod(f, 0o644)
    log("# make_pki: test certificates in %s" % dir)
    return pki


def tls_context(ca, cert=None, key=None, min_version=None, max_version=None, alpn=None,
                check_hostname=True):
    """A client ssl.SSLContext that trusts ca (a PEM file) and verifies the
    broker's certificate and name; cert/key: a client certificate;
    min_version/max_version: ssl.TLSVersion; alpn: a list of protocols."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TlsRaw(Raw):
    """Raw over TLS: the same packet helpers on an ssl socket. The TCP
    connection is Raw's; the handshake runs in the constructor, bounded by
    timeout, and its failure raises to the caller: ssl.SSLError (an alert,
    a bad certificate), ConnectionResetError / an EOF (the broker hung up),
    TimeoutError (no answer; not a refusal). tls: tls_context()'s keyword
    arguments. Afterwards tls_version and alpn say what was negotiated; a
    TLS alert or error on a read ends the connection like an EOF (Closed,
    with eof_reason saying which alert)."""

    def __init__(self, broker, version=4, timeout=5.0, server_hostname=HOST, **tls):
        super().__init__(broker, version, timeout)
        tcp = self.sock
        try:
            self.sock = tls_context(**tls).wrap_socket(tcp, server_hostname=server_hostname)
        except BaseException:
            tcp.close()
            raise
        self.tls_version = self.sock.version()
        self.alpn = self.sock.selected_alpn_protocol()

    def send(self, data):
        try:
            return super().send(data)
        except (ssl.SSLError, OSError) as e:
            self.eof_reason = repr(e)
            return False

    def _fill(self, deadline):
        try:
            return super()._fill(deadline)
        except ssl.SSLError as e:
            self.eof = True
            self.eof_reason = "TLS %s" % (e.reason or e)
            raise Closed


def client_hello(ca):
    """The bytes of a TLS ClientHello (Python's ssl), to send in pieces."""
    ctx = tls_context(ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=HOST)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def s_client_has(option):
    """Does this openssl s_client know option (e.g. "-tls1")?"""
    if not shutil.which("openssl"):
        return False
    try:
        r = subprocess.run(["openssl", "s_client", "-help"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return re.search(r"^\s*%s\b" % re.escape(option), r.stdout.decode("utf-8", "replace"),
                     re.M) is not None


def s_client(port, *args, timeout=10.0):
    """openssl s_client -connect 127.0.0.1:port ARGS with stdin /dev/null:
    it does the handshake, reads what comes and ends. Returns (exit status,
    output); status None when it ran past timeout."""
    port = port if isinstance(port, int) else port.port
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port)] + list(args)
    log("# $ " + " ".join(argv) + " < /dev/null")
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.output or b"").decode("utf-8", "replace")
    return r.returncode, r.stdout.decode("utf-8", "replace")


def s_client_summary(out):
    """The lines of s_client's output that say how a handshake went."""
    keep = re.compile(r"CONNECTED|Cipher is|Protocol|ALPN|Verify return|error|alert|errno|"
                      r"no peer certificate|handshake")
    return " | ".join(l.strip() for l in out.splitlines() if keep.search(l))[:1500]


def s_client_handshake(out):
    """The protocol s_client negotiated ("TLSv1.2", "TLSv1.3", "TLSv1" for
    1.0 ...), or None when its output shows no completed handshake. (The
    "New, X, Cipher is" line names the suite's version, not the protocol's:
    AES128-SHA says SSLv3 in TLS 1.2; the session's "Protocol :" line says
    what ran, and is missing for TLS 1.3 when no ticket came before EOF.)"""
    m = re.search(r"^(?:New|Reused), (\S+), Cipher is (?!\(NONE\))\S", out, re.M)
    if not m:
        return None
    p = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
    return p.group(1) if p else m.group(1)


# ---------------------------------------------------------------------------
# More of make_pki()'s PKI: one more certificate, a CRL, a capath directory


def _world_readable(*paths):
    """mosquitto drops root for its own user before reading the files."""
    if FLAVOUR == "mosquitto":
        for p in paths:
            os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)


def pki_cert(pki, name, subj, ca=None, ca_key=None, ext="client_ext", key=None, days=30):
    """One more certificate for make_pki()'s PKI, made with the openssl CLI
    in pki.dir: a new EC P-256 key NAME.key (or key, an existing key's
    path) and NAME.crt for subj (an openssl -subj string: "/CN=mallory",
    or "/O=NoCN" for a certificate without a CN), signed by ca/ca_key
    (the good CA, pki.ca, by default), valid `days' days, with the
    extensions ext of pki.cnf (client_ext: a clientAuth certificate).
    Returns (cert, key) paths; raises Fail with openssl's output."""
    d = pki.dir
    cnf = os.path.join(d, "pki.cnf")
    ca = ca or pki.ca
    ca_key = ca_key or pki.ca_key
    if key is None:
        key = os.path.join(d, name + ".key")
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", key], "EC P-256 key " + name, d)
    req = os.path.join(d, name + ".csr")
    cert = os.path.join(d, name + ".crt")
    _openssl(["req", "-new", "-config", cnf, "-key", key, "-subj", subj, "-out", req],
             "request " + name, d)
    _openssl(["x509", "-req", "-in", req, "-CA", ca, "-CAkey", ca_key,
              "-set_serial", "0x" + os.urandom(8).hex(), "-days", str(days), "-sha256",
              "-extfile", cnf, "-extensions", ext, "-out", cert],
             "certificate " + name, d)
    _world_readable(key, cert)
    return cert, key


# `openssl ca -revoke' and `-gencrl' only, on a database of their own (not
# make_pki()'s ca-db, which holds the expired certificate).
_CRL_CNF = """\
[ca]
default_ca = crl_ca
[crl_ca]
database = %(db)s/index.txt
crlnumber = %(db)s/crlnumber
default_md = sha256
default_crl_days = 30
unique_subject = no
"""


def make_crl(pki, revoked, name="ca", ca=None, ca_key=None):
    """A PEM CRL issued by ca/ca_key (the good CA by default) revoking each
    certificate in revoked (paths; an empty list gives an empty CRL):
    `openssl ca -revoke' for each, then `openssl ca -gencrl', with an index,
    crlnumber and config of their own in pki.dir/crl-db-NAME (made afresh).
    Returns the CRL's path, pki.dir/NAME.crl; raises Fail with openssl's
    output."""
    d = pki.dir
    ca = ca or pki.ca
    ca_key = ca_key or pki.ca_key
    db = os.path.join(d, "crl-db-" + name)
    if os.path.exists(db):
        shutil.rmtree(db)
    os.makedirs(db)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "crlnumber"), "w") as f:
        f.write("01\n")
    cnf = os.path.join(db, "crl.cnf")
    with open(cnf, "w") as f:
        f.write(_CRL_CNF % {"db": db})
    for cert in revoked:
        _openssl(["ca", "-config", cnf, "-batch", "-cert", ca, "-keyfile", ca_key,
                  "-revoke", cert, "-crl_reason", "keyCompromise"],
                 "revoke " + os.path.basename(cert), db)
    crl = os.path.join(d, name + ".crl")
    _openssl(["ca", "-config", cnf, "-batch", "-cert", ca, "-keyfile", ca_key, "-gencrl",
              "-out", crl], "CRL " + name, db)
    _world_readable(crl)
    return crl


def make_capath(dir, cas):
    """A directory for capath: each CA certificate in cas (PEM paths)
    copied to HASH.N, HASH its `openssl x509 -subject_hash' (what `openssl
    rehash' would link), N the first free number for that hash. Returns
    dir; raises Fail with openssl's output."""
    os.makedirs(dir, exist_ok=True)
    for ca in cas:
        h = _openssl(["x509", "-subject_hash", "-noout", "-in", ca], "subject hash of " + ca,
                     dir).strip()
        if not re.fullmatch(r"[0-9a-f]{8}", h):
            raise Fail("make_capath: openssl x509 -subject_hash said %r for %s" % (h, ca))
        n = 0
        while os.path.exists(os.path.join(dir, "%s.%d" % (h, n))):
            n += 1
        shutil.copyfile(ca, os.path.join(dir, "%s.%d" % (h, n)))
        _world_readable(os.path.join(dir, "%s.%d" % (h, n)))
    _world_readable(dir)
    return dir
