#!/usr/bin/python3
"""43: the metrics endpoint (metrics_listener), driven by real HTTP
clients (Python's http.client, raw sockets) and checked by Prometheus's
own promtool.

- /healthz and /readyz answer 200; /metrics is the text format 0.0.4
  (Content-Type), and `promtool check metrics` finds nothing wrong in a
  live scrape; it has the series the README promises.
- Counters move by exactly what known traffic did: 100 QoS 1 publishes
  to one subscriber (received +100, sent +100, by qos), one wrong
  password (auth failures +1), one SUBSCRIBE the ACL refuses
  (acl_denied{action="subscribe"} +1), the connections made (accepted
  +4).
- $SYS/broker/... agrees with /metrics once traffic stops, and
  retained messages/count counts what clients stored, not the $SYS
  entries themselves.
- Bad HTTP clients get their status and the broker goes on: garbage 400,
  HTTP/2.0 505, POST 405, an unknown path 404, an oversized head 431,
  a body 413; 8 slow clients each holding a half-sent head do not delay
  another scrape (the one idle longest gives up its slot); keep-alive
  carries several requests on one connection, pipelined too.
- Scrapes back to back during a QoS 1 stream lose no message.
- metrics_password_file: /metrics without or with wrong credentials gets
  401 with a Basic challenge, with the right ones 200; /healthz needs
  none.
- At the default log level: a line per connect, disconnect (with its
  reason), refused login and ACL refusal; refusals rate-limited per shard
  with a count of those left out.
- configs/grafana-ringmq.json loads as JSON and every ringmq_ series it
  queries is in a live scrape.
"""
import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import harness
from harness import *

WAIT = 5.0 + 2 * SLACK_S
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get(port, path, method="GET", headers=None, timeout=WAIT):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body


def raw(port, data, timeout=WAIT):
    """Sends data, reads until the broker closes; the answer's bytes."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return got


def status_of(answer):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(m.group(1)) if m else None


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, labels): value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            raise Fail("not a sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def total(samples, name, label_re=None):
    """The sum over a family's samples (shards), optionally those whose labels match."""
    return sum(v for (n, l), v in samples.items()
               if n == name and (label_re is None or re.search(label_re, l)))


def scrape(port, headers=None):
    st, h, body = get(port, "/metrics", headers=headers)
    check_eq(st, 200, "GET /metrics answers 200")
    return parse(body.decode())


def promtool_check(body):
    r = subprocess.run(["promtool", "check", "metrics"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace")


def wait_metrics_port(b):
    def port():
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", b.log_text())
        return int(m.group(1)) if m else None
    check(wait_until(lambda: port() is not None, WAIT), "the log names the metrics endpoint")
    return port()


def basics(b, mport):
    st, h, body = get(mport, "/healthz")
    check(st == 200 and body == b"ok\n", "/healthz: 200 ok", (st, body))
    st, h, body = get(mport, "/readyz")
    check(st == 200 and body.startswith(b"ready"), "/readyz: 200 ready", (st, body))
    st, h, body = get(mport, "/metrics")
    check_eq(st, 200, "/metrics: 200")
    check_eq(h.get("content-type"), "text/plain; version=0.0.4; charset=utf-8",
             "/metrics: the text format's Content-Type")
    check_eq(int(h.get("content-length", "-1")), len(body), "Content-Length is the body's")
    rc, out = promtool_check(body)
    check(rc == 0 and out.strip() == "", "promtool check metrics finds nothing wrong", out)
    text = body.decode()
    s = parse(text)
    for name in ("ringmq_build_info", "ringmq_uptime_seconds", "ringmq_connections",
                 "ringmq_connections_accepted_total", "ringmq_sessions", "ringmq_subscriptions",
                 "ringmq_retained_messages", "ringmq_messages_received_total",
                 "ringmq_messages_sent_total", "ringmq_messages_dropped_total",
                 "ringmq_bytes_received_total", "ringmq_bytes_sent_total",
                 "ringmq_auth_failures_total", "ringmq_acl_denied_total",
                 "ringmq_tls_handshakes_total", "ringmq_tls_failures_total",
                 "ringmq_rate_limit_pauses_total", "ringmq_flapping_bans_total",
                 "ringmq_connections_refused_total", "ringmq_shard_queue_depth",
                 "ringmq_shard_queue_overflows_total", "ringmq_loop_lag_seconds_bucket",
                 "ringmq_loop_lag_seconds_count", "ringmq_memory_allocated_bytes",
                 "ringmq_memory_limit_bytes", "ringmq_ready", "process_cpu_seconds_total",
                 "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds"):
        check(any(n == name for n, _ in s), "the scrape has %s" % name)
    check(re.search(r'^ringmq_build_info\{version="[^"]+"\} 1$', text, re.M),
          "ringmq_build_info names the version")
    check_eq(total(s, "ringmq_ready"), 1.0, "ringmq_ready is 1")
    check(abs(total(s, "process_start_time_seconds") - time.time()) < 600,
          "process_start_time_seconds is about now")
    return text


def exact_counts(b, mport, tmp):
    before = scrape(mport)
    sub = Client(b, "it43-sub", version=5)
    sub.connect()
    sub.subscribe("it43/t", qos=1)
    pub = Client(b, "it43-pub", version=5)
    pub.connect()
    for i in range(100):
        pub.publish("it43/t", b"m%d" % i, qos=1)
    sub.wait_messages(100, timeout=WAIT)
    bad = Client(b, "it43-bad", version=5, username="alice", password="wrong")
    bad.connect(expect_rc=0x86)
    den = Client(b, "it43-den", version=4)
    den.connect()
    granted = den.subscribe("it43-forbidden/x", qos=1)
    check(granted and granted[0] >= 0x80, "the ACL refuses it43-forbidden/x", granted)
    time.sleep(0.2)  # the shards' relaxed counters reach the reader at once; margin only
    after = scrape(mport)

    def moved(name, label_re=None):
        return total(after, name, label_re) - total(before, name, label_re)
    check_eq(moved("ringmq_messages_received_total"), 100, "received moved by 100")
    check_eq(moved("ringmq_messages_received_total", r'qos="1"'), 100, "... all of them qos 1")
    check_eq(moved("ringmq_messages_sent_total"), 100, "sent moved by 100")
    check_eq(moved("ringmq_messages_sent_total", r'qos="1"'), 100, "... all of them qos 1")
    check_eq(moved("ringmq_auth_failures_total"), 1, "one wrong password: auth failures +1")
    check_eq(moved("ringmq_acl_denied_total", r'action="subscribe"'), 1,
             "one refused SUBSCRIBE: acl_denied{action=subscribe} +1")
    check_eq(moved("ringmq_connections_accepted_total"), 4, "four connections accepted")
    check_eq(total(after, "ringmq_subscriptions") - total(before, "ringmq_subscriptions"), 1,
             "one more subscription")
    check(moved("ringmq_bytes_received_total") > 100 * 10, "bytes received moved")
    for c in (sub, pub, den):
        c.disconnect()
    bad.close()


def sys_agrees(b, mport):
    """$SYS/broker/... and /metrics show the same figures once traffic stops."""
    keep = Client(b, "it43-retainer", version=4)
    keep.connect()
    keep.publish("it43/kept", b"x", qos=1, retain=True)
    keep.disconnect()
    sys = Client(b, "it43-sys", version=4)
    sys.connect()
    sys.subscribe("$SYS/broker/#", qos=0)
    time.sleep(2.5)  # sys_interval 1: two publications after the last change
    latest = {}
    for m in sys.messages():
        latest[m.topic[len("$SYS/broker/"):]] = m.payload.decode()
    s = scrape(mport)
    pairs = [("messages/received", "ringmq_messages_received_total", None),
             ("auth/failed", "ringmq_auth_failures_total", None),
             ("connections/total", "ringmq_connections_accepted_total", None),
             ("subscriptions/count", "ringmq_subscriptions", None),
             ("sessions/count", "ringmq_sessions", None),
             ("retained messages/count", "ringmq_retained_messages", None),
             ("acl/denied subscribe", "ringmq_acl_denied_total", r'action="subscribe"')]
    for topic, name, lab in pairs:
        check(topic in latest, "$SYS/broker/%s is published" % topic, sorted(latest))
        check_eq(float(latest[topic]), total(s, name, lab),
                 "$SYS/broker/%s agrees with %s" % (topic, name))
    check(total(s, "ringmq_loop_lag_seconds_count") >= 2 * 20,
          "the loop-lag histogram has a sample per tick (100 ms) of each shard")
    sys_entries = sum(1 for t in latest)
    check(sys_entries > 20 and total(s, "ringmq_retained_messages") == 1,
          "the one client retained message counts, not the %d $SYS entries" % sys_entries)
    sys.disconnect()
    clear = Client(b, "it43-clear", version=4)
    clear.connect()
    clear.publish("it43/kept", b"", qos=1, retain=True)
    clear.disconnect()


def bad_clients(b, mport):
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "a request line that is not one"),
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0"),
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "POST"),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "an unknown path"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431,
         "a head over 8 KiB"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413,
         "a request body"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 without Host"),
    ]
    for data, want, what in cases:
        check_eq(status_of(raw(mport, data)), want, "%s gets %d" % (what, want))
    check_eq(get(mport, "/healthz")[0], 200, "the endpoint goes on after the bad requests")
    check(b.alive(), "the broker goes on")

    # Eight slow clients fill every slot with half a head; a scrape still
    # gets through at once (the longest idle one gives up its slot).
    slow = []
    for i in range(8):
        s = socket.create_connection((HOST, mport), timeout=WAIT)
        s.sendall(b"GET /metr")
        slow.append(s)
        time.sleep(0.02)
    t0 = time.monotonic()
    st, _, _ = get(mport, "/metrics", timeout=WAIT)
    check_eq(st, 200, "a scrape beside 8 half-sent heads answers 200")
    log("# scrape beside 8 slow clients took %.3f s" % (time.monotonic() - t0))
    for s in slow:
        s.close()

    # Keep-alive: three requests on one connection, and two pipelined.
    c = http.client.HTTPConnection(HOST, mport, timeout=WAIT)
    for path in ("/healthz", "/metrics", "/readyz"):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        check_eq(r.status, 200, "keep-alive: %s on the same connection" % path)
    c.close()
    two = raw(mport, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check_eq(two.count(b"HTTP/1.1 200 OK"), 2, "two pipelined requests get two answers")
    st, h, body = get(mport, "/metrics", method="HEAD")
    check(st == 200 and body == b"" and int(h["content-length"]) > 0,
          "HEAD /metrics: the head only", (st, h, body[:40]))


def stream_with_scrapes(b, mport):
    n = 3000
    sub = Client(b, "it43-stream-sub", version=5, clean=False)
    sub.connect()
    sub.subscribe("it43/stream", qos=1)
    stop = threading.Event()
    scrapes = [0]
    errors = []

    def scraper():
        while not stop.is_set():
            try:
                st, _, body = get(mport, "/metrics")
                if st != 200 or b"ringmq_messages_sent_total" not in body:
                    errors.append(st)
                scrapes[0] += 1
            except OSError as e:
                errors.append(repr(e))
    th = threading.Thread(target=scraper, daemon=True)
    th.start()
    pub = Client(b, "it43-stream-pub", version=5)
    pub.connect()
    mids = [pub.publish("it43/stream", b"%d" % i, qos=1, wait=False) for i in range(n)]
    pub.wait_acked(mids, timeout=60)
    sub.wait_messages(n, timeout=60)
    stop.set()
    th.join(WAIT)
    got = sorted(int(m.payload) for m in sub.messages(lambda m: m.topic == "it43/stream"))
    check_eq(got, list(range(n)), "a QoS 1 stream of %d with scrapes back to back: none lost" % n)
    check(scrapes[0] >= 3 and not errors, "%d scrapes meanwhile, all 200" % scrapes[0], errors)
    pub.disconnect()
    sub.disconnect()


def dashboard(text, jemalloc):
    """jemalloc: the broker links it (ringmq_memory_resident_bytes exists
    only then; sanitizer builds use the libc allocator)."""
    path = os.path.join(ROOT, "configs", "grafana-ringmq.json")
    with open(path) as f:
        d = json.load(f)
    exprs = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(d)
    check(len(exprs) >= 10, "the dashboard has panels with queries (%d)" % len(exprs))
    have = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    for e in exprs:
        for name in re.findall(r"\b((?:ringmq|process)_[a-zA-Z0-9_]+)", e):
            if name == "ringmq_memory_resident_bytes" and not jemalloc:
                continue
            check(name in have, "the dashboard's %s is in the scrape" % name, e)


def basic_auth(tmp):
    """On a broker whose listener is TLS, so the certificate's expiry is
    there too; returns the scrape's text."""
    pw = os.path.join(tmp, "metrics-passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "prom", "s3cret"], check=True)
    pki = make_pki(os.path.join(tmp, "pki"))
    mport = free_port()
    b = Broker(metrics_listener=mport, metrics_password_file=pw,
               listener_conf={"certfile": pki.server_cert, "keyfile": pki.server_key}).start()
    wait_metrics_port(b)
    wrong = {"Authorization": "Basic " + base64.b64encode(b"prom:nope").decode()}
    check_eq(get(mport, "/metrics", headers=wrong)[0], 401, "wrong password: 401")
    check(b.log_grep("metrics: wrong credentials from 127.0.0.1"), "the refusal is logged")
    t0 = time.monotonic()
    st, h, _ = get(mport, "/metrics")
    check(st == 401 and h.get("www-authenticate", "").startswith("Basic realm="),
          "no credentials: 401 with a Basic challenge", (st, h))
    evil = {"Authorization": "Basic " + base64.b64encode(b"x\nFAKE LINE:nope").decode()}
    for _ in range(30):
        get(mport, "/metrics", headers=evil)
    seconds = int(time.monotonic() - t0) + 2
    n = len(re.findall(r"metrics: .* from 127\.0\.0\.1.*: 401", b.log_text()))
    check(1 <= n <= seconds + 1, "refused credentials: at most a line a second (%d)" % n)
    check("\nFAKE LINE" not in b.log_text(), "a user name cannot break a log line")
    time.sleep(1.1)
    get(mport, "/metrics", headers=wrong)
    check(wait_until(lambda: re.search(r"metrics: wrong credentials .*\(and \d+ refusals not "
                                       r"logged before it\)", b.log_text()), WAIT),
          "the next logged refusal says how many were left out")
    right = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
    for _ in range(3):
        st, _, body = get(mport, "/metrics", headers=right)
        check_eq(st, 200, "right password: 200")
    check_eq(get(mport, "/healthz")[0], 200, "/healthz needs no credentials")
    text = body.decode()
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pki.server_cert],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    want = time.mktime(time.strptime(end.split("=", 1)[1].replace(" GMT", ""),
                                     "%b %d %H:%M:%S %Y")) - time.timezone
    got = total(parse(text), "ringmq_tls_certificate_expiry_timestamp_seconds")
    check(abs(got - want) <= 5, "the TLS listener's certificate expiry (%s) is in the scrape" % end,
          (got, want))
    rc, out = promtool_check(body)
    check(rc == 0 and out.strip() == "", "promtool: nothing wrong with the TLS series either", out)
    b.stop()
    return text


def max_connections_refused():
    """A connection over a listener's max_connections is closed at accept,
    counted in reason="max_connections", and logged (at most a line a
    second a shard, so a storm is not a flood of lines)."""
    mport = free_port()
    b = Broker(shards=1, metrics_listener=mport, listener_conf={"max_connections": 2}).start()
    wait_metrics_port(b)
    open_now = lambda: total(scrape(mport), "ringmq_connections")
    check(wait_until(lambda: open_now() == 0, WAIT), "the harness's probe connection is gone")
    keep = [socket.create_connection((HOST, b.port), timeout=WAIT) for _ in range(2)]
    check(wait_until(lambda: open_now() == 2, WAIT), "two connections open: the limit")
    over = []
    for _ in range(5):
        s = socket.create_connection((HOST, b.port), timeout=WAIT)
        try:
            got = s.recv(1)
        except (ConnectionResetError, socket.timeout):
            got = b""
        over.append(got)
        s.close()
    check_eq(over, [b""] * 5, "connections over max_connections are closed at once")
    s = scrape(mport)
    check_eq(total(s, "ringmq_connections_refused_total", r'reason="max_connections"'), 5,
             'counted in ringmq_connections_refused_total{reason="max_connections"}')
    n = len(re.findall(r"notice .*connection from 127\.0\.0\.1:\d+ refused: max_connections "
                       r"reached", b.log_text()))
    check(1 <= n <= 2, "logged at notice at most once a second (%d lines for 5)" % n)
    for k in keep:
        k.close()
    b.stop()


def default_level_logs(tmp, pw, acl):
    """At the default level (notice): a line per connect (who, from where,
    username, protocol, TLS or not), per disconnect with its reason, per
    refused login and per ACL refusal, the refusals at most 20 a second a
    shard, then a note of how many were left out."""
    b = Broker(log_level="notice", shards=1, password_file=pw, acl_file=acl).start()
    ok = Client(b, "it43-log", version=5, username="alice", password="right")
    ok.connect()
    ok.disconnect()
    bad = Client(b, "it43-logbad", version=4, username="alice", password="wrong")
    bad.connect(expect_rc=4)
    bad.close()
    den = Client(b, "it43-logden", version=4)
    den.connect()
    t0 = time.monotonic()
    den.subscribe("it43-forbidden/x", qos=0)
    for i in range(200):
        den.publish("it43-forbidden/p", b"x", qos=0)
    den.subscribe("it43/after", qos=0)  # a round trip: the publishes were read
    seconds = int(time.monotonic() - t0) + 2  # the wall-clock seconds they can span
    den.c.socket().close()  # no DISCONNECT: the connection is lost
    time.sleep(0.5)
    text = b.log_text()
    check(re.search(r"notice \[shard 0\] client 'it43-log': connected from 127\.0\.0\.1:\d+ "
                    r"\(username 'alice', MQTT 5\.0, keepalive 60, new session\)", text),
          "a connect line names the client, address, username and protocol")
    check(re.search(r"client 'it43-log': disconnected from 127\.0\.0\.1:\d+: DISCONNECT", text),
          "a disconnect line with its reason (DISCONNECT)")
    check(re.search(r"notice .*CONNECT from 127\.0\.0\.1:\d+ refused: .*\(0x86; client id "
                    r"'it43-logbad', username 'alice'\)", text),
          "a refused login: address, why, client id and username")
    check(re.search(r"client 'it43-logden': SUBSCRIBE to 'it43-forbidden/x' refused by the ACL "
                    r"\(anonymous from 127\.0\.0\.1:\d+\)", text),
          "an ACL refusal of a SUBSCRIBE: who and what")
    n = len(re.findall(r"PUBLISH to 'it43-forbidden/p' refused by the ACL", text))
    check(1 <= n <= 20 * seconds - 1,
          "200 refused PUBLISHes: %d lines (at most 20 a second, %d s)" % (n, seconds))
    check(wait_until(lambda: re.search(r"client 'it43-logden': disconnected from "
                                       r"127\.0\.0\.1:\d+: connection lost", b.log_text()), WAIT),
          "a lost connection's disconnect line says so")
    late = Client(b, "it43-loglate", version=4)
    time.sleep(1.1)  # a new second: the budget is back
    late.connect()
    late.subscribe("it43-forbidden/late", qos=0)
    check(wait_until(lambda: re.search(r"SUBSCRIBE to 'it43-forbidden/late' refused by the ACL .*"
                                       r"\(and \d+ refusals not logged before it\)",
                                       b.log_text()), WAIT),
          "the next logged refusal says how many were left out")
    late.disconnect()
    b.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="ringmq-it43-")
    if shutil.which("promtool") is None:
        raise Fail("promtool (Debian package prometheus) is not installed: ./dev installs it")
    ringmq_only("the metrics endpoint is ringmq's")
    pw = os.path.join(tmp, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "right"], check=True)
    acl = os.path.join(tmp, "acl")
    with open(acl, "w") as f:
        f.write("topic readwrite it43/#\ntopic read $SYS/#\nuser alice\n"
                "topic readwrite it43/#\n")
    mport = free_port()
    b = Broker(shards=2, metrics_listener=mport, password_file=pw, acl_file=acl,
               max_queued_messages=10000, sys_interval=1).start()
    check_eq(wait_metrics_port(b), mport, "the endpoint is on the configured port")
    text = basics(b, mport)
    exact_counts(b, mport, tmp)
    sys_agrees(b, mport)
    bad_clients(b, mport)
    stream_with_scrapes(b, mport)
    jemalloc = "jemalloc" in b.log_text()
    b.stop()
    max_connections_refused()
    default_level_logs(tmp, pw, acl)
    dashboard(text + basic_auth(tmp), jemalloc)


if __name__ == "__main__":
    run(main)
