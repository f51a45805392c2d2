#!/usr/bin/python3
"""44: running as a service, with mosquitto's keys.

- pid_file: written with the broker's pid once it listens, removed at stop.
- user nobody, started as root: after start every uid of the process is
  nobody's, and it still serves clients (the sockets were bound before).
- log_dest stderr + log_dest file: the file gets the same lines; after the
  file is moved away (logrotate), SIGHUP opens it again at its path and new
  lines go there, none to the moved one.
- log_type information: mosquitto's type names read as a level: notice
  and info lines, no debug lines.
- Under systemd (JOURNAL_STREAM names stderr) every stderr line starts with
  its syslog priority, <5> for notice.
- sd_notify: READY=1 once it listens, RELOADING=1 / READY=1 around SIGHUP,
  STOPPING=1 at the stop, on a NOTIFY_SOCKET of the test's own.
- configs/ringmq.service has the hardening the README names and passes
  systemd-analyze verify.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S


def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def pid_file(tmp):
    path = os.path.join(tmp, "ringmq.pid")
    b = Broker(pid_file=path).start()
    check(wait_until(lambda: os.path.exists(path), WAIT), "the pid file exists once it listens")
    with open(path) as f:
        check_eq(f.read(), "%d\n" % b.proc.pid, "it holds the broker's pid")
    b.stop()
    check(not os.path.exists(path), "the pid file is removed at stop")


def user_drop():
    if os.geteuid() != 0:
        log("# not root: the privilege drop is not tried")
        return
    nobody = pwd.getpwnam("nobody").pw_uid
    b = Broker(user="nobody").start()
    check(wait_until(lambda: b.log_grep("running as user nobody"), WAIT),
          "the log says it dropped to nobody")
    check_eq(uids(b.proc.pid), [nobody] * 4, "real, effective, saved and fs uid are nobody's")
    rc, out = mosq_pub(b, "-i", "it44-pub", "-t", "it44/t", "-m", "x", "-q", "1")
    check(rc == 0, "it still serves clients", out)
    b.stop()


def log_file(tmp):
    path = os.path.join(tmp, "ringmq.log")
    b = Broker(**{"log_dest": "stderr", "log_dest#2": "file %s" % path}).start()
    c = Client(b, "it44-log")
    c.connect()
    c.disconnect()
    check(wait_until(lambda: "client 'it44-log': disconnected" in open(path).read(), WAIT),
          "log_dest file gets the lines stderr gets")
    moved = path + ".1"
    os.rename(path, moved)
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: os.path.exists(path) and "SIGHUP" in open(path).read(), WAIT),
          "after a rotation SIGHUP opens the file again at its path")
    c = Client(b, "it44-after")
    c.connect()
    c.disconnect()
    check(wait_until(lambda: "it44-after" in open(path).read(), WAIT), "new lines go to the new file")
    check("it44-after" not in open(moved).read(), "none to the moved one")
    b.stop()


def log_type():
    b = Broker(log_type="information")
    del b.conf["log_level"]
    b.start()
    c = Client(b, "it44-type")
    c.connect()
    c.disconnect()
    check(wait_until(lambda: b.log_grep("client 'it44-type': disconnected"), WAIT),
          "log_type information: notice lines")
    text = b.log_text()
    check(" info " in text and " debug " not in text, "info lines, no debug lines")
    b.stop()


def journal():
    b = Broker(log_level="notice")
    os.makedirs(os.path.dirname(b.log_path), exist_ok=True)
    open(b.log_path, "wb").close()
    st = os.stat(b.log_path)
    os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    try:
        b.start()
    finally:
        del os.environ["JOURNAL_STREAM"]
    b.stop()
    lines = [l for l in b.log_text().splitlines() if l]
    check(lines and all(l.startswith("<") and l[1] in "34567" and l[2] == ">" for l in lines),
          "under systemd every stderr line starts with its priority", lines[:3])
    check(any(l.startswith("<5>") and " notice " in l for l in lines), "<5> for notice")


def sd_notify(tmp):
    """Type=notify: READY=1 once it listens, RELOADING=1 (with
    MONOTONIC_USEC) and READY=1 around a SIGHUP, STOPPING=1 at the stop."""
    path = os.path.join(tmp, "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(WAIT)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        b = Broker().start()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    got = [srv.recv(256).decode()]
    check_eq(got[0], "READY=1", "READY=1 once every listener is open")
    b.send_signal(signal.SIGHUP)
    got = [srv.recv(256).decode(), srv.recv(256).decode()]
    check(re.match(r"RELOADING=1\nMONOTONIC_USEC=\d+$", got[0]) and got[1] == "READY=1",
          "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1", got)
    b.stop()
    check_eq(srv.recv(256).decode(), "STOPPING=1", "STOPPING=1 at the stop")
    srv.close()


def unit_file(tmp):
    """configs/ringmq.service passes systemd-analyze verify (with this
    build's binary in place of the installed one: verify checks it)."""
    if shutil.which("systemd-analyze") is None:
        raise Fail("systemd-analyze (Debian package systemd) is missing")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "configs", "ringmq.service")) as f:
        text = f.read().replace("/usr/local/bin/ringmq", ringmq_bin())
    for key in ("Type=notify", "LimitMEMLOCK=", "LimitNOFILE=", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                "ExecReload=/bin/kill -HUP $MAINPID"):
        check(key in text, "the unit has %s" % key.strip())
    path = os.path.join(tmp, "ringmq.service")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(["systemd-analyze", "verify", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    check(r.returncode == 0 and "ringmq.service" not in r.stdout,
          "systemd-analyze verify finds nothing wrong", r.stdout)


def main():
    ringmq_only("ringmq's service keys")
    tmp = tempfile.mkdtemp(prefix="ringmq-it44-")
    pid_file(tmp)
    user_drop()
    log_file(tmp)
    log_type()
    journal()
    sd_notify(tmp)
    unit_file(tmp)


if __name__ == "__main__":
    run(main)
