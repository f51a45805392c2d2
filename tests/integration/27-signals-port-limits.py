#!/usr/bin/python3
"""27: signals and a held port. A second ringmq on an address a running one
listens on refuses to start (exit 1, the message names the address and the
config line) instead of sharing the port with it, and the first goes on
serving; a restart on the same port right after a stop works (TIME_WAIT).
SIGUSR1 logs the broker's statistics, SIGUSR2 one line per shard, and other
signals that would end a process by default (SIGALRM, SIGUSR-like
real-time signals, ...) are logged and ignored: the broker keeps running
and stops cleanly on SIGTERM."""
import re

import harness
from harness import *

START_S = 10


def ringmq_with(d, name, text):
    """Runs ringmq on a config; returns (exit status or None, output)."""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.Popen([ringmq_bin(), "-c", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    harness._procs.append(p)
    try:
        out, _ = p.communicate(timeout=START_S)
        return p.returncode, out.decode("utf-8", "replace"), path
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
        return None, out.decode("utf-8", "replace"), path


def round_trip(b, tag):
    """A subscriber gets a message published through broker b."""
    sub = connected(b, "it27-sub-" + tag)
    sub.subscribe("it27/" + tag, qos=1)
    pub = connected(b, "it27-pub-" + tag)
    pub.publish("it27/" + tag, b"hello", qos=1)
    try:
        got = sub.wait_topic("it27/" + tag, timeout=5.0).payload
    except Fail as e:
        got = str(e)
    pub.disconnect()
    sub.disconnect()
    return got


def start_on(port, **conf):
    """A harness broker on a given port (the harness picks a free one)."""
    b = Broker(**conf)
    saved = harness.free_port
    harness.free_port = lambda: port
    try:
        b.start()
    finally:
        harness.free_port = saved
    return b


def time_wait_on(port):
    """True when a TCP socket on the local port is in TIME_WAIT."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return False
    for r in rows:
        cols = r.split()
        if len(cols) > 3 and int(cols[1].split(":")[1], 16) == port and cols[3] == "06":
            return True
    return False


def held_port(d):
    a = Broker().start()
    keep = connected(a, "it27-keep")  # a client of the first broker throughout

    for i, (name, listener, shown) in enumerate((
            ("the same address", "listener %d 127.0.0.1\n" % a.port, "127.0.0.1:%d" % a.port),
            ("all addresses", "listener %d\n" % a.port, "*:%d" % a.port))):
        text = "shards 2\nlog_level info\nallow_anonymous true\n" + listener
        rc, out, path = ringmq_with(d, "second-%d.conf" % i, text)
        check(rc == 1 and shown in out and "in use" in out and ("%s:4:" % path) in out,
              "a second broker on %s as a running one exits 1 naming %s and %s:4" %
              (name, shown, os.path.basename(path)),
              "exit %r, output %r" % (rc, out.strip()[-400:]))
        check("running with" not in out, "the second broker (%s) never ran" % name, out[-300:])

    # A listener on a free port next to the held one does not start either:
    # the refusal happens before anything listens.
    free = free_port()
    text = "shards 2\nallow_anonymous true\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\n" % (
        free, a.port)
    rc, out, path = ringmq_with(d, "second-mixed.conf", text)
    check(rc == 1 and ("127.0.0.1:%d" % a.port) in out,
          "a config with one held listener among free ones is refused", (rc, out[-300:]))

    check(a.alive() and keep.is_connected(), "the first broker runs on, its client connected")
    # Every new connection reaches the first broker: 16 of them, over 2
    # shards' worth of accept queues, each gets a CONNACK from it.
    clients = [connected(a, "it27-after-%d" % i) for i in range(16)]
    check(all(c.is_connected() for c in clients), "16 new clients all connect to the first broker")
    for c in clients:
        c.disconnect()
    check_eq(round_trip(a, "held"), b"hello", "the first broker still delivers messages")
    keep.disconnect()
    check_eq(a.stop(), 0, "the first broker stops cleanly")


def restart_after_stop():
    # Stop with connected clients: the broker closes them, so their
    # connections wait in TIME_WAIT on its port. A new broker must start.
    a = Broker().start()
    port = a.port
    clients = [connected(a, "it27-tw-%d" % i) for i in range(4)]
    check_eq(a.stop(), 0, "broker with clients stops")
    for c in clients:
        c.close()
    log("# TIME_WAIT on port %d: %s" % (port, time_wait_on(port)))
    b = start_on(port)
    check(b.alive(), "a broker starts on the same port right after the previous one stopped")
    check_eq(round_trip(b, "restart"), b"hello", "the restarted broker delivers messages")


def signals():
    b = Broker(log_level="notice").start()
    c = connected(b, "it27-sig")
    c.subscribe("it27/sig", qos=1)
    c.publish("it27/sig", b"one", qos=1)
    c.wait_topic("it27/sig")

    b.send_signal(signal.SIGUSR1)
    line = wait_until(lambda: b.log_grep("SIGUSR1:"), 5.0)
    text = line[0] if line else ""
    check(bool(line), "SIGUSR1 logs a statistics line", b.log_text()[-500:])
    check("clients connected 1," in text and re.search(r"messages received [1-9]", text) and
          "memory" in text, "the SIGUSR1 line has connections, messages and memory", text)
    m = re.search(r"\((\d+) of (\d+) bytes", text)
    check(m is not None and 0 < int(m.group(1)) < int(m.group(2)),
          "the SIGUSR1 line gives the allocated bytes under the limit", text)

    b.send_signal(signal.SIGUSR2)
    shards = wait_until(lambda: b.log_grep("SIGUSR2: shard 3:"), 5.0)
    check(bool(shards), "SIGUSR2 logs one line per shard (4 shards)", b.log_text()[-800:])
    check(len(b.log_grep("SIGUSR2: shard ")) == 4 and "inbound queues" in shards[0],
          "SIGUSR2 shard lines show connections and queue depths", b.log_grep("SIGUSR2"))

    # Signals whose default action would end the process.
    others = [signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGIO, signal.SIGPWR,
              signal.SIGXCPU, signal.SIGXFSZ, signal.SIGSTKFLT, signal.SIGRTMIN + 2,
              signal.SIGRTMAX]
    for sig in others:
        b.send_signal(sig)
        time.sleep(0.02)
    time.sleep(0.3)
    check(b.alive(), "the broker survives SIGUSR1, SIGUSR2, SIGALRM, SIGPROF, SIGXCPU, "
          "real-time signals ...", b.proc.returncode)
    check(bool(b.log_grep("SIGALRM ignored")), "an ignored signal is logged by name",
          b.log_text()[-500:])
    check(c.is_connected(), "the client stayed connected through the signals")
    c.publish("it27/sig", b"two", qos=1)
    got = c.wait_messages(2, timeout=5.0)
    check_eq([m.payload for m in got], [b"one", b"two"], "and messages still flow")
    c.disconnect()
    check_eq(b.stop(), 0, "SIGTERM still stops the broker with status 0")


def main():
    ringmq_only("ringmq's port probe and signal handling")
    d = tempfile.mkdtemp(prefix="ringmq-it27-")
    held_port(d)
    restart_after_stop()
    signals()


run(main)
