#!/usr/bin/python3
"""11: configuration errors. `ringmq --test-config -c FILE` exits 0 on a good
file and 1 on a bad one, printing `FILE:LINE: message` on stderr; starting the
broker with a bad file fails the same way; --help and --version exit 0."""
import subprocess
from harness import *

GOOD = """# a config like configs/ringmq.conf
shards 4
log_level info
allow_anonymous true
max_queued_messages 1000
max_inflight_messages 20
max_packet_size 1048576
max_keepalive 600
persistent_client_expiration 1h
connect_timeout 10
retain_available true
max_qos 2
max_connect_size 65536
max_sessions 100000
memory_limit 512M

listener 18830 127.0.0.1
"""

# (name, text, line number of the error)
BAD = [
    ("unknown key", "shards 2\nlog_level info\nno_such_key 1\nlistener 18830 127.0.0.1\n", 3),
    ("bad integer", "shards two\nlistener 18830 127.0.0.1\n", 1),
    ("max_qos out of range", "allow_anonymous true\nmax_qos 3\nlistener 18830 127.0.0.1\n", 2),
    ("bad boolean", "retain_available maybe\nlistener 18830 127.0.0.1\n", 1),
    ("bad duration", "persistent_client_expiration 1x\nlistener 18830 127.0.0.1\n", 1),
    ("bad log level", "# comment\n\nlog_level loud\n", 3),
    ("listener with a hostname", "shards 1\nlistener 18830 localhost\n", 2),
    ("listener port out of range", "listener 70000 127.0.0.1\n", 1),
    # (max_packet_size 0 means the protocol maximum, as documented)
    ("max_packet_size above the protocol maximum",
     "max_packet_size 268435456\nlistener 18830 127.0.0.1\n", 1),
    ("key without a value", "shards\nlistener 18830 127.0.0.1\n", 1),
    ("duplicate listener", "listener 18830 127.0.0.1\nlistener 18830 127.0.0.1\n", 2),
    ("negative max_queued_messages", "max_queued_messages -1\nlistener 18830 127.0.0.1\n", 1),
    ("max_connect_size below its minimum", "max_connect_size 127\nlistener 18830 127.0.0.1\n", 1),
    ("max_connect_size above max_packet_size",
     "max_packet_size 4096\nmax_connect_size 8192\nlistener 18830 127.0.0.1\n", 2),
    ("max_sessions 0", "shards 1\nmax_sessions 0\nlistener 18830 127.0.0.1\n", 2),
    ("max_sessions above its ceiling", "max_sessions 100000001\n", 1),
    ("memory_limit with an unknown suffix", "shards 1\nlog_level info\nmemory_limit 1T\n", 3),
    ("memory_limit with a fraction", "memory_limit 1.5G\n", 1),
    ("memory_limit below 1M", "memory_limit 1023k\nlistener 18830 127.0.0.1\n", 1),
    ("memory_limit above 1048576G", "memory_limit 1048577G\n", 1),
]


def ringmq(*args, timeout=10):
    r = subprocess.run([ringmq_bin()] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def main():
    ringmq_only("ringmq command line and config format")
    d = tempfile.mkdtemp(prefix="ringmq-it11-")

    rc, out, err = ringmq("--version")
    check(rc == 0 and "ringmq" in (out + err).lower(), "--version exits 0 and names ringmq",
          (rc, out, err))
    rc, out, err = ringmq("--help")
    check(rc == 0 and "-c" in (out + err) and "--test-config" in (out + err),
          "--help exits 0 and mentions -c and --test-config", (rc, out[:300], err[:300]))

    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write(GOOD)
    rc, out, err = ringmq("--test-config", "-c", good)
    check_eq((rc, err.count(good + ":")), (0, 0),
             "--test-config on a good config exits 0 with no error line")

    repo_conf = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs",
                             "ringmq.conf")
    if os.path.exists(repo_conf):
        rc, out, err = ringmq("--test-config", "-c", repo_conf)
        check_eq(rc, 0, "--test-config on configs/ringmq.conf exits 0 (%s)" % err.strip()[:200])
    else:
        log("# configs/ringmq.conf not present yet: not checked")

    for i, (name, text, line) in enumerate(BAD):
        p = os.path.join(d, "bad%d.conf" % i)
        with open(p, "w") as f:
            f.write(text)
        rc, out, err = ringmq("--test-config", "-c", p)
        want = "%s:%d: " % (p, line)
        check(rc == 1 and want in err,
              "--test-config on %s: exit 1 and stderr '%s...'" % (name, want),
              "exit %d, stderr %r" % (rc, err.strip()[:300]))

    # Starting (not just testing) with a bad config fails the same way, fast.
    p = os.path.join(d, "bad0.conf")
    rc, out, err = ringmq("-c", p, timeout=10)
    check(rc == 1 and ("%s:3: " % p) in err,
          "starting with a bad config exits 1 with the file:line message",
          "exit %d, stderr %r" % (rc, err.strip()[:300]))

    # A memory_limit the broker's own tables exceed (64 shards hold about
    # 130 MiB of cross-shard queues) is refused at start, with its line.
    p = os.path.join(d, "tiny-memory.conf")
    with open(p, "w") as f:
        f.write("shards 64\nmemory_limit 1M\nlistener 0 127.0.0.1\n")
    rc, out, err = ringmq("-c", p, timeout=20)
    check(rc == 1 and ("%s:2: memory_limit" % p) in err and "below" in err and
          "running with" not in err,
          "a memory_limit below what 64 shards hold at start: exit 1 with file:line",
          "exit %d, stderr %r" % (rc, err.strip()[-300:]))

    rc, out, err = ringmq("--test-config", "-c", os.path.join(d, "missing.conf"))
    check(rc == 1 and "missing.conf" in err, "a missing config file: exit 1 naming the file",
          "exit %d, stderr %r" % (rc, err.strip()[:300]))

    rc, out, err = ringmq("--no-such-option")
    check(rc != 0, "an unknown command-line option exits non-zero", (rc, err[:200]))


run(main)
