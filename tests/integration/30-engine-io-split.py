#!/usr/bin/python3
"""30: what the engine/IO split (issue 8) must keep: input that waited for
room goes on, a hand-off always finishes, a stop during hand-offs is clean.
Each case hung or crashed one build of the split before a review found it.

- Output pause: a client that sends 4096 PINGREQs in one write to a broker
  with max_output_buffer 4096 gets 4096 PINGRESPs as it reads them, and one
  more for a later PINGREQ (its input must resume once the output drains).
- Output and input paused together: a client that floods its own QoS 0
  subscription without reading until the broker stops reading it, then
  reads everything, still gets a PINGRESP.
- Hand-off with reading stopped: CONNECTs with a password checked off the
  shard (auth_threads 1, an expensive SCRAM entry), each followed by 50 KB
  of PINGREQs in the same write, on 2 shards: every client id is answered
  (CONNACK) or closed within connect_timeout, none waits for ever.
- Stop during hand-offs: 600 connections on 4 shards, SIGTERM in the middle
  of their CONNECTs: the broker exits with status 0 (no broken invariant,
  no sanitizer report), twice.

Every wait is bounded and generous; nothing depends on the machine's speed."""
import random
import threading

from harness import *

ANSWER_S = 5.0 + SLACK_S


def output_pause():
    b = Broker(shards=1, max_output_buffer=4096).start()
    r = Raw(b)
    r.connect("pause")
    n = 4096
    r.send(pingreq_pkt() * n)
    got = 0
    try:
        while got < n:
            if r.recv(timeout=ANSWER_S).type == 13:
                got += 1
    except TimeoutError:
        pass
    check_eq(got, n, "PINGRESPs for 4096 PINGREQs sent in one write")
    r.send(pingreq_pkt())
    late = False
    try:
        while not late:
            late = r.recv(timeout=ANSWER_S).type == 13
    except TimeoutError:
        pass
    check(late, "a later PINGREQ is answered: input resumed after the output pause")
    r.close()
    b.stop()


def flood_own_subscription():
    b = Broker(shards=1).start()
    r = Raw(b, rcvbuf=65536)
    r.connect("echo")
    r.subscribe([("e/t", 0)])
    blob = publish_pkt("e/t", b"x" * 4000, qos=0) * 256
    done = threading.Event()

    def writer():
        for _ in range(8):  # 8 MB, more than any buffer on the way holds
            if not r.send(blob):
                break
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(1.0)  # the broker stops reading it, its output is full
    n = 0
    try:
        while True:
            r.recv(timeout=1.5 + SLACK_S / 2)
            n += 1
    except TimeoutError:
        pass
    t.join(ANSWER_S)
    log("# writer done: %s, %d packets read" % (done.is_set(), n))
    r.send(pingreq_pkt())
    got = False
    try:
        while not got:
            got = r.recv(timeout=ANSWER_S).type == 13
    except TimeoutError:
        pass
    check(got, "PINGREQ answered after both pauses ended")
    r.close()
    b.stop()


def handoff_with_reading_stopped():
    d = tempfile.mkdtemp(prefix="ringmq-it30-")
    pw = os.path.join(d, "passwd")
    with open(pw, "w") as f:
        f.write(scram_entry("heavy", "pw", 100000) + "\n")
    timeout_s = 3
    b = Broker(shards=2, allow_anonymous="false", password_file=pw, auth_threads=1,
               connect_timeout=timeout_s).start()
    stuck = 0
    for i in range(8):
        r = Raw(b)
        r.send(connect_pkt("cid-%d" % i, username="heavy", password="pw") +
               pingreq_pkt() * 25000)
        try:
            p = r.recv(timeout=timeout_s + ANSWER_S)
            log("# cid-%d: first packet type %d" % (i, p.type))
        except TimeoutError:
            log("# cid-%d: nothing within %.0f s" % (i, timeout_s + ANSWER_S))
            stuck += 1
        except Closed:
            log("# cid-%d: closed" % i)
        r.close()
    check_eq(stuck, 0, "CONNECTs neither answered nor closed within connect_timeout")
    b.stop()


def stop_during_handoffs():
    for rnd in range(2):
        b = Broker(shards=4).start()
        n = 600
        socks = [socket.create_connection((HOST, b.port), timeout=ANSWER_S) for _ in range(n)]
        cut = random.randint(n // 2, n - 1)
        for i, s in enumerate(socks):
            try:
                s.send(connect_pkt("b%d-%d" % (rnd, i)))
            except OSError:
                pass
            if i == cut:
                b.send_signal(signal.SIGTERM)
        rc = b.stop(timeout=10.0 + SLACK_S)
        for s in socks:
            s.close()
        check_eq(rc, 0, "exit status of a stop in the middle of %d CONNECTs (round %d)" %
                 (n, rnd + 1))
        check(not b.log_grep("invariant"), "no broken invariant in the log (round %d)" %
              (rnd + 1))


def main():
    ringmq_only("ringmq's own pauses and hand-offs")
    output_pause()
    flood_own_subscription()
    handoff_with_reading_stopped()
    stop_during_handoffs()


run(main)
