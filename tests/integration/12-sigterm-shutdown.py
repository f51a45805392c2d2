#!/usr/bin/python3
"""12: shutdown. On SIGTERM (and SIGINT) the broker sends every MQTT 5
client DISCONNECT 0x8B (Server shutting down), closes 3.1.1 connections,
and exits 0 within 5 s."""
from harness import *

STOP_S = 5.0


def one(sig, name):
    b = Broker().start()
    v5s, v4s = [], []
    for i in range(4):  # several, so that several shards hold clients
        r = Raw(b, version=5)
        r.connect("it12-%s-v5-%d" % (name, i), version=5)
        r.subscribe("it12/#")
        v5s.append(r)
        r = Raw(b, version=4)
        r.connect("it12-%s-v4-%d" % (name, i), version=4)
        v4s.append(r)
    idle = Raw(b)  # connected, no CONNECT yet

    t0 = time.monotonic()
    b.stopped_by_us = True
    b.send_signal(sig)
    rc = b.wait_exit(STOP_S + SLACK_S)
    dt = time.monotonic() - t0
    if rc is None:
        b.stop(signal.SIGKILL, 1)
    check(rc == 0 and dt <= STOP_S,
          "%s: broker exited with status 0 after %.2f s (limit %.0f s)" % (name, dt, STOP_S),
          "exit status %r" % rc)
    for i, r in enumerate(v5s):
        try:
            got = r.wait_closed(1.0)
        except Fail as e:
            got = str(e)
        check(isinstance(got, list) and len(got) == 1 and got[0].type == 14 and
              got[0].rc == 0x8B,
              "%s: 5.0 client %d got DISCONNECT 0x8B then close" % (name, i), got)
    for i, r in enumerate(v4s):
        try:
            got = r.wait_closed(1.0)
        except Fail as e:
            got = str(e)
        check(got == [], "%s: 3.1.1 client %d closed without a packet" % (name, i), got)
    try:
        got = idle.wait_closed(1.0)
    except Fail as e:
        got = str(e)
    check(got == [], "%s: connection that never sent CONNECT closed" % name, got)


def main():
    one(signal.SIGTERM, "SIGTERM")
    one(signal.SIGINT, "SIGINT")


run(main)
