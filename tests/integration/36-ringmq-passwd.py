#!/usr/bin/python3
"""36: ringmq-passwd, mosquitto_passwd's command line for ringmq's password
files (env RINGMQ_PASSWD, or next to RINGMQ_BIN). -c -b creates a file
(mode 0600, one mosquitto 2.1-style argon2id line, a warning that -b shows
the password to other users); a password from a pipe, the two passwords of
a terminal with echo off (through a pty: the password is not echoed, the
terminal gets its echo back, different passwords exit 2); -H sha512-pbkdf2
and -H scram-sha-512; names with ':' or control characters refused. The
broker (password_file, allow_anonymous false) lets mosquitto_pub in with
each right password and refuses wrong ones and unknown users; an update
and -D take effect on SIGHUP (then the old password and the deleted user
are refused, though both had logged in before: the cache of verified
credentials, which lets a right password in again without hashing and is
counted, forgets at a reload), an existing file keeps its mode; -U hashes a plain-text file
and keeps the lines already hashed; a file written by Debian's
mosquitto_passwd 2.0 ($7$) gets a user added and both log in; a change
ringmq would refuse leaves the file as it was. No temporary file stays
behind, and no password appears in anything the tool or the broker
printed."""
import os
import pty
import re
import select
import signal
import stat
import subprocess
import termios
import time
import harness
from harness import *

WAIT = 5.0 + 3 * SLACK_S
# Every password given to the tool or a client: none may appear in what the
# tool prints, nor in the broker's log.
PW = {"alice": "Al1ce-argon", "alice2": "Al1ce-again", "bob": "b0b-from-a-pipe",
      "carol": "car0l-pbkdf2", "dave": "dav3-scram", "erin": "er1n-typed", "u1": "plain-0ne",
      "u2": "plain-tw0", "mosq": "m0squitto-20", "newu": "n3w-user", "y": "why-n0t",
      "mismatch": "mis-match-1"}
OUTPUT = []  # (what, text) of every tool run


def passwd_bin():
    path = os.environ.get("RINGMQ_PASSWD")
    if not path:
        path = os.path.join(os.path.dirname(os.path.abspath(ringmq_bin())), "ringmq-passwd")
    if not os.access(path, os.X_OK):
        raise Fail("RINGMQ_PASSWD not set and no %s (build net/ringmq-passwd)" % path)
    return path


def tool(*args, stdin=b"", secret=None):
    """Runs ringmq-passwd with stdin from a pipe; returns (status, stdout,
    stderr). secret: an argument to leave out of the log line."""
    argv = [passwd_bin()] + list(args)
    log("# $ ringmq-passwd " + " ".join("<password>" if a == secret else a for a in args))
    r = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=4 * WAIT)
    out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    OUTPUT.append((" ".join(args[:-1] if secret else args), out + err))
    return r.returncode, out, err


def batch(*args):
    """ringmq-passwd [opts] -b FILE USER PASSWORD, the password kept out of
    the log."""
    return tool(*args, secret=args[-1])


def on_tty(args, typed):
    """Runs ringmq-passwd on a pty, typing each of typed after its prompt;
    returns (status, transcript, echo restored)."""
    master, slave = pty.openpty()
    argv = [passwd_bin()] + list(args)
    log("# $ ringmq-passwd " + " ".join(args) + "  (on a terminal)")
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                         start_new_session=True)
    seen = b""
    pending = list(typed)
    deadline = time.monotonic() + 4 * WAIT
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        # A prompt not yet answered: type the next password.
        if pending and seen.count(b"assword: ") > len(typed) - len(pending):
            os.write(master, pending.pop(0).encode() + b"\n")
        if p.poll() is not None and not r:
            break
    rc = p.wait(timeout=WAIT)
    echo = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
    os.close(slave)
    os.close(master)
    text = seen.decode("utf-8", "replace")
    OUTPUT.append((" ".join(args) + " (tty)", text))
    return rc, text, echo


def login(b, user, pw):
    """mosquitto_pub with this username and password: True when let in."""
    rc, out = mosq_pub(b, "-i", "it36-" + user[:8], "-u", user, "-P", pw, "-t", "it36/t", "-m",
                       "x", timeout=2 * WAIT)
    return rc == 0


def check_cache_hits(b, ok, name):
    """The broker's auth cache hits (its SIGUSR1 line) satisfy ok."""
    line = stats_line(b, WAIT)
    m = re.search(r"auth cache hits (\d+)", line) if line else None
    check(m is not None and ok(int(m.group(1))), name, line or "no SIGUSR1 line")


def reload(b, why):
    n = len(b.log_grep("SIGHUP: reloaded"))
    b.send_signal(signal.SIGHUP)
    check(wait_until(lambda: len(b.log_grep("SIGHUP: reloaded")) > n, WAIT),
          "SIGHUP reloads the file " + why, b.log_grep("reload"))


def leftovers(d, expect):
    return sorted(set(os.listdir(d)) - set(expect))


def create_and_add(d, pwfile):
    os.umask(0o022)
    rc, out, err = batch("-c", "-b", pwfile, "alice", PW["alice"])
    check_eq((rc, out), (0, "Adding password for user alice\n"), "-c -b creates the file")
    check("Warning" in err and "command line" in err,
          "-b warns that the password is on the command line", err)
    check_eq(stat.S_IMODE(os.stat(pwfile).st_mode), 0o600,
             "a new file is mode 0600 whatever the umask (022 here)")
    text = open(pwfile).read()
    check(text.startswith("alice:$argon2id$v=19$m=47104,t=1,p=1$") and text.count("\n") == 1,
          "one argon2id line with mosquitto 2.1's parameters", text)
    rc, out, err = tool(pwfile, "bob", stdin=(PW["bob"] + "\n").encode())
    check_eq((rc, out), (0, "Adding password for user bob\n"),
             "without -b the password is read from a pipe (one line)")
    check("Warning" not in err, "no -b warning without -b", err)
    before = open(pwfile).read()
    rc, out, err = tool(pwfile, "carol",
                        stdin=("%s\n%sX\n" % (PW["mismatch"], PW["mismatch"])).encode())
    check_eq(rc, 2, "two different passwords from a pipe: exit status 2")
    check("Passwords do not match" in err and open(pwfile).read() == before,
          "... with mosquitto_passwd's message, the file unchanged", err)
    check_eq(batch("-H", "sha512-pbkdf2", "-b", pwfile, "carol", PW["carol"])[0], 0,
             "-H sha512-pbkdf2 adds a user")
    check_eq(batch("-H", "scram-sha-512", "-b", pwfile, "dave", PW["dave"])[0], 0,
             "-H scram-sha-512 adds a user")
    text = open(pwfile).read()
    check("\ncarol:$7$4096$" in text and "\ndave:SCRAM-SHA-512$4096:" in text,
          "$7$ and SCRAM-SHA-512 lines", text)
    for user, why in (("ev:il", "must not contain the ':' character"),
                      ("ev\x01il", "must not contain control characters"),
                      ("ev\til", "must not contain control characters")):
        rc, out, err = batch("-b", pwfile, user, PW["y"])
        check(rc == 1 and why in err, "username %r refused: %s" % (user, why), (rc, err))
    check_eq(open(pwfile).read(), text, "refused names leave the file as it was")
    rc, out, err = tool("-c", "-D", pwfile, "alice")
    check(rc == 1 and "-c and -D cannot be used together" in err, "-c -D refused", err)


def terminal(pwfile):
    rc, text, echo = on_tty([pwfile, "erin"], [PW["erin"], PW["erin"]])
    check_eq(rc, 0, "on a terminal the password is asked for twice")
    check("Password: " in text and "Reenter password: " in text and
          "Adding password for user erin" in text, "... with mosquitto_passwd's prompts", text)
    check(PW["erin"] not in text, "... and not echoed", text)
    check(echo, "... and the terminal echoes again afterwards")
    rc, text, echo = on_tty([pwfile, "frank"], [PW["mismatch"], PW["mismatch"] + "X"])
    check(rc == 2 and "Passwords do not match" in text and echo,
          "two different passwords typed: exit status 2, echo back on", (rc, text))


def broker_checks(d, pwfile):
    b = Broker(allow_anonymous="false", password_file=pwfile,
               connect_timeout=max(10, int(WAIT))).start()
    for user in ("alice", "bob", "carol", "dave", "erin"):
        check(login(b, user, PW[user]), "mosquitto_pub as %s with the right password is let in"
              % user)
        check(not login(b, user, PW[user] + "x"), "... with a wrong one it is refused")
    check(not login(b, "mallory", PW["alice"]), "an unknown user is refused")
    # The verified-credential cache: the same right password again is let
    # in without hashing (counted), a wrong one is still refused.
    # Each shard has its own cache and a connection lands on a shard by its
    # source port: one login more than there are shards repeats on one.
    check(all(login(b, "alice", PW["alice"]) for _ in range(9)),
          "alice logs in again with her password, 9 times")
    check(not login(b, "alice", PW["alice"] + "x"), "... and a wrong one is still refused")
    check_cache_hits(b, lambda n: n >= 1, "the broker counts the logins it took from its cache")

    os.chmod(pwfile, 0o640)
    rc, out, _ = batch("-b", pwfile, "alice", PW["alice2"])
    check_eq((rc, out), (0, "Updating password for user alice\n"), "an update says so")
    check_eq(stat.S_IMODE(os.stat(pwfile).st_mode), 0o640, "a replaced file keeps its mode")
    check_eq(open(pwfile).read().count("alice:"), 1, "the user still has one line")
    reload(b, "after the update")
    check(login(b, "alice", PW["alice2"]) and not login(b, "alice", PW["alice"]),
          "after SIGHUP the new password is let in and the old one refused")

    rc, out, err = tool("-D", pwfile, "bob")
    check_eq((rc, out, err), (0, "", ""), "-D deletes a user quietly")
    check("bob:" not in open(pwfile).read(), "... its line is gone")
    reload(b, "after -D")
    check(not login(b, "bob", PW["bob"]), "after SIGHUP the deleted user is refused")
    check(login(b, "carol", PW["carol"]), "... and the others are still let in")
    rc, out, err = tool("-D", pwfile, "bob")
    check(rc == 1 and "Warning: User bob not found in password file." in err,
          "-D of a user that is not there: exit status 1 and mosquitto_passwd's warning", err)
    check_eq(leftovers(d, ["passwd"]), [], "no temporary file is left in the folder")
    return b


def convert(d):
    plain = os.path.join(d, "plain")
    alice = [l for l in open(os.path.join(d, "passwd")) if l.startswith("alice:")][0]
    with open(plain, "w") as f:
        f.write("# users\nu1:%s\n\nu2 : %s \n%s" % (PW["u1"], PW["u2"], alice))
    rc, out, err = tool("-U", plain)
    check_eq((rc, out, err), (0, "", ""), "-U converts a plain-text file")
    lines = open(plain).read().splitlines()
    check(lines[0] == "# users" and lines[2] == "" and lines[1].startswith("u1:$argon2id$") and
          lines[3].startswith("u2:$argon2id$") and lines[4] + "\n" == alice,
          "... hashing the plain-text lines, keeping the comment, the blank line and the "
          "argon2id line", lines)
    b2 = Broker(allow_anonymous="false", password_file=plain).start()
    check(login(b2, "u1", PW["u1"]) and login(b2, "u2", PW["u2"]) and
          login(b2, "alice", PW["alice2"]), "the converted file lets each user in")
    check(not login(b2, "u2", PW["u1"]), "... and refuses a wrong password")
    b2.stop()


def mosquitto_file(d):
    mfile = os.path.join(d, "mosq")
    subprocess.run(["mosquitto_passwd", "-c", "-b", mfile, "mosq", PW["mosq"]], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(open(mfile).read().startswith("mosq:$7$"), "mosquitto_passwd 2.0 wrote a $7$ line")
    check_eq(batch("-b", mfile, "newu", PW["newu"])[0], 0,
             "ringmq-passwd adds a user to mosquitto_passwd's file")
    text = open(mfile).read()
    check(text.startswith("mosq:$7$") and "\nnewu:$argon2id$" in text,
          "the $7$ line is kept and the argon2id one added", text)
    b3 = Broker(allow_anonymous="false", password_file=mfile).start()
    check(login(b3, "mosq", PW["mosq"]) and login(b3, "newu", PW["newu"]),
          "both users of the mixed file are let in")
    check(not login(b3, "mosq", PW["newu"]), "... and a wrong password refused")
    b3.stop()

    bad = os.path.join(d, "bad")
    with open(bad, "w") as f:
        f.write("x:a-plain-password\n")
    rc, out, err = batch("-b", bad, "y", PW["y"])
    check(rc == 1 and "ringmq would refuse the result" in err and "bad:1:" in err,
          "a change ringmq would refuse is not written, and the line is named", err)
    check_eq(open(bad).read(), "x:a-plain-password\n", "... the file is as it was")


def main():
    ringmq_only("ringmq-passwd and ringmq's password file")
    passwd_bin()
    d = tempfile.mkdtemp(prefix="ringmq-it36-")
    pwfile = os.path.join(d, "passwd")
    create_and_add(d, pwfile)
    terminal(pwfile)
    b = broker_checks(d, pwfile)
    convert(d)
    mosquitto_file(d)
    check_eq(leftovers(d, ["passwd", "plain", "mosq", "bad"]), [],
             "no temporary file is left anywhere")
    printed = "\n".join(t for _, t in OUTPUT)
    shown = [u for u, pw in PW.items() if pw in printed]
    check_eq(shown, [], "no password appears in anything ringmq-passwd printed (%d runs)"
             % len(OUTPUT))
    logs = b.log_text()
    check_eq([u for u, pw in PW.items() if pw in logs], [],
             "no password appears in the broker's log")
    b.stop()


run(main)
