#!/bin/bash
# bench/accept-rules.sh: connections per second at accept with no address
# rules, with N deny_from ranges (none of which holds the client), and with
# every broker-wide tally on the accept path (max_connections_per_ip,
# max_connect_rate_per_ip, flapping_max_connects, auth_failures_max, each
# set too high to refuse anyone), the same broker build, one after the
# other. Prints one line per run.
#   bench/accept-rules.sh [RINGMQ [RINGMQ_BENCH [N [CLIENTS]]]]
# Defaults: build/net/ringmq, build/bench/ringmq-bench, 10000, 5000.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
R=${1:-$here/build/net/ringmq}; B=${2:-$here/build/bench/ringmq-bench}; N=${3:-10000}; C=${4:-5000}
d=$(mktemp -d); trap 'rm -rf $d' EXIT
python3 - "$N" > "$d/rules" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):  # 10.x.y.0/24 ranges: none holds 127.0.0.1
    print("deny_from 10.%d.%d.0/24" % (i // 256 % 256, i % 256))
PY
for rules in 0 "$N" tally; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  { printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_level warning\n' "$port"
    case $rules in
      0) ;;
      tally) printf 'max_connections_per_ip 1000000\nmax_connect_rate_per_ip 1000000\nflapping_max_connects 1000000\nauth_failures_max 1000\n' ;;
      *) cat "$d/rules" ;;
    esac; } > "$d/b.conf"
  "$R" -c "$d/b.conf" > "$d/log" 2>&1 & pid=$!
  sleep 0.5
  for round in 1 2 3; do
    "$B" connect --port "$port" --clients "$C" --rate 0 --hold 0 --json "$d/c.json" --quiet >/dev/null 2>&1 || true
    python3 - "$d/c.json" "$rules" "$round" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r.get("connect", {})
what = "tallies on" if sys.argv[2] == "tally" else "deny_from ranges %s" % sys.argv[2]
print("%s, run %s: %s connects ok, %.0f/s" % (what, sys.argv[3], c.get("ok"), c.get("per_s") or 0))
PY
  done
  kill $pid; wait $pid 2>/dev/null || true
done
