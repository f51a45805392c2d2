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
- Debian's stock mosquitto.conf passes --test-config (told what has no
  effect) and, with its paths in a temporary folder, runs: pid file, log
  file, a listener from its include_dir; --test-config then lists every
  problem in the files at once, each with file:line, and names the
  nearest equivalent of a mosquitto key ringmq does not have.
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


STOCK = """# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def test_config(path):
    r = subprocess.run([ringmq_bin(), "--test-config", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=WAIT)
    return r.returncode, r.stdout


def mosquitto_conf(tmp):
    """Debian 12's stock /etc/mosquitto/mosquitto.conf passes --test-config,
    told what has no effect; a copy with its paths in tmp runs: pid file,
    log file, and a listener with a password file from its include_dir."""
    path = os.path.join(tmp, "stock.conf")
    with open(path, "w") as f:
        f.write(STOCK)
    rc, out = test_config(path)
    check(rc == 0 and "configuration OK (with the warnings above)" in out and
          re.search(r"stock\.conf:8: `persistence' has no effect here: ringmq keeps sessions, "
                    r"queued and retained messages in memory only", out),
          "the stock Debian mosquitto.conf passes --test-config, told what persistence means",
          out)
    conf_d = os.path.join(tmp, "conf.d")
    os.makedirs(conf_d)
    pw = os.path.join(tmp, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "ann", "pw1"], check=True)
    port = free_port()
    with open(os.path.join(conf_d, "10-listener.conf"), "w") as f:
        f.write("listener %d 127.0.0.1\npassword_file %s\nallow_anonymous false\n" % (port, pw))
    with open(os.path.join(conf_d, "README"), "w") as f:
        f.write("not a .conf file: not read\n")
    text = (STOCK.replace("/run/mosquitto/mosquitto.pid", os.path.join(tmp, "m.pid"))
            .replace("/var/log/mosquitto/mosquitto.log", os.path.join(tmp, "m.log"))
            .replace("/etc/mosquitto/conf.d", conf_d))
    path = os.path.join(tmp, "mine.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.Popen([ringmq_bin(), "-c", path], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        check(wait_until(lambda: os.path.exists(os.path.join(tmp, "m.pid")), WAIT),
              "started from the stock config: the pid file is written")
        c = Client(port, "it44-stock", username="ann", password="pw1")
        c.connect()
        c.disconnect()
        log = open(os.path.join(tmp, "m.log")).read()
        check("client 'it44-stock': connected" in log, "the log file has the connect line")
        bad = Client(port, "it44-stock-anon")
        bad.connect(expect_rc=5)
        bad.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(WAIT)

    # Every problem at once, each with its file:line.
    with open(os.path.join(conf_d, "20-bad.conf"), "w") as f:
        f.write("max_qos 7\n")
    with open(path, "a") as f:
        f.write("bind_address 0.0.0.0\nno_such_key 1\n")
    rc, out = test_config(path)
    lines = [l for l in out.splitlines() if l]
    check(rc == 1 and len(lines) == 3 and
          lines[0].startswith(os.path.join(conf_d, "20-bad.conf") + ":1: `max_qos'") and
          lines[1].startswith("%s:14: `bind_address' is a mosquitto option" % path) and
          "listener PORT ADDRESS" in lines[1] and
          lines[2] == "%s:15: unknown option `no_such_key'" % path,
          "--test-config lists every problem with its file:line", out)


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
    mosquitto_conf(tmp)


if __name__ == "__main__":
    run(main)
