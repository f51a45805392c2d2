#!/bin/bash
# bench/auth-storm.sh: a reconnect storm of legitimate clients with argon2id
# passwords, connects/s with the verified-credential cache (auth_cache_seconds
# 600) and without (0), two storms each (the first fills the cache).
#   bench/auth-storm.sh [RINGMQ [RINGMQ_BENCH [RINGMQ_PASSWD [CLIENTS]]]]
# Defaults: build/net/ringmq, build/bench/ringmq-bench, build/net/ringmq-passwd, 2000.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
R=${1:-$here/build/net/ringmq}; B=${2:-$here/build/bench/ringmq-bench}; P=${3:-$here/build/net/ringmq-passwd}; N=${4:-2000}
d=$(mktemp -d); trap 'rm -rf $d' EXIT
"$P" -c -b "$d/passwd" storm 'st0rm-pass' 2>/dev/null
for cache in 600 0; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  printf 'listener %s 127.0.0.1\npassword_file %s\nallow_anonymous false\nauth_threads 2\nauth_cache_seconds %s\nlog_level warning\nmax_connections 0\n' "$port" "$d/passwd" "$cache" > "$d/b.conf"
  "$R" -c "$d/b.conf" > "$d/log-$cache" 2>&1 & pid=$!
  sleep 0.5
  for round in 1 2; do
  "$B" connect --port "$port" --clients "$N" --rate 0 --hold 0 --username storm --password 'st0rm-pass' --broker-pid $pid --json "$d/c-$cache.json" --quiet >/dev/null 2>&1 || true
  python3 - "$d/c-$cache.json" "$cache" "$round" <<'PY'
import json,sys
r=json.load(open(sys.argv[1])); c=r.get("connect",{}); e={k:v for k,v in (r.get("errors") or {}).items() if v}
print("auth_cache_seconds %s, storm %s: %s connects ok, %.0f/s, p50 %s us, p99 %s us, errors %s" % (sys.argv[2], sys.argv[3], c.get("ok"), c.get("per_s") or 0, (c.get("latency_us") or {}).get("p50"), (c.get("latency_us") or {}).get("p99"), e or "none"))
PY
  done
  kill $pid; wait $pid 2>/dev/null || true
done
