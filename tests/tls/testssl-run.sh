#!/usr/bin/env bash
# The full testssl.sh scan of ringmq's TLS listeners, every check testssl.sh
# has (client simulation included), and a summary of what it found. Not part
# of the meson suite: it takes about a minute per listener on a 2-core VM;
# tests/integration/34-testssl.py runs the bounded subset that asserts.
#
#   tests/tls/testssl-run.sh                 start the broker (RINGMQ_BIN, else
#                                            build/net/ringmq) with an ECDSA
#                                            P-256 and an RSA 2048 listener on
#                                            free loopback ports, test
#                                            certificates made here, and scan
#                                            both at once
#   tests/tls/testssl-run.sh HOST:PORT ...   scan listeners already running
#                                            (TESTSSL_CA=ca.pem to check the
#                                            chain against a private CA)
#
# Output: each scan's text and JSON in OUT_DIR (default a new temp dir), then
# per listener every finding rated above INFO and the client simulation table.
# Exit status: 0 when no finding is rated MEDIUM or above outside KNOWN (the
# names 34-testssl.py accepts, with its reasons), 1 otherwise, 2 on an error.
set -euo pipefail
cd "$(dirname "$0")/../.."

TESTSSL=$(command -v testssl || command -v testssl.sh || true)
[ -n "$TESTSSL" ] || { echo "testssl-run: testssl.sh is not installed (apt-get install testssl.sh)" >&2; exit 2; }
PY=/usr/bin/python3
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/ringmq-testssl.XXXXXX)}
mkdir -p "$OUT_DIR"
# The same names as KNOWN in tests/integration/34-testssl.py.
KNOWN=${KNOWN:-cipher_order cert_revocation}
LIMIT_S=${LIMIT_S:-300}

pids=()
broker_pid=
cleanup() {
    for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || true; done
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

targets=("$@")
ca=${TESTSSL_CA:-}
if [ ${#targets[@]} -eq 0 ]; then
    bin=${RINGMQ_BIN:-build/net/ringmq}
    [ -x "$bin" ] || { echo "testssl-run: no broker binary at $bin (set RINGMQ_BIN)" >&2; exit 2; }
    # Certificates from the integration harness, valid a year (30 days would
    # be a finding of its own), and two free ports.
    read -r ca ec_crt ec_key rsa_crt rsa_key p_ec p_rsa < <(
        "$PY" - "$OUT_DIR/pki" <<'EOF'
import sys
sys.path.insert(0, "tests/integration")
import harness
harness.log = lambda m: None
pki = harness.make_pki(sys.argv[1])
ec = harness.pki_cert(pki, "server-year", "/CN=localhost", ext="server_ext", days=365)
rsa = harness.pki_cert(pki, "server-rsa-year", "/CN=localhost", ext="server_rsa_ext",
                       key=pki.server_rsa_key, days=365)
print(pki.ca, ec[0], ec[1], rsa[0], rsa[1], harness.free_port(), harness.free_port())
EOF
    )
    [ -n "${p_rsa:-}" ] || { echo "testssl-run: making test certificates failed" >&2; exit 2; }
    cat >"$OUT_DIR/ringmq.conf" <<EOF
log_level info
allow_anonymous true
listener $p_ec 127.0.0.1
certfile $ec_crt
keyfile $ec_key
listener $p_rsa 127.0.0.1
certfile $rsa_crt
keyfile $rsa_key
EOF
    "$bin" -c "$OUT_DIR/ringmq.conf" >"$OUT_DIR/broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 100); do
        grep -q "running with" "$OUT_DIR/broker.log" && break
        kill -0 "$broker_pid" 2>/dev/null || { cat "$OUT_DIR/broker.log" >&2; exit 2; }
        sleep 0.05
    done
    targets=("127.0.0.1:$p_ec" "127.0.0.1:$p_rsa")
    echo "testssl-run: broker pid $broker_pid, ECDSA listener $p_ec, RSA listener $p_rsa, files in $OUT_DIR"
fi

opts=(--quiet --color 0 --warnings batch --nodns none --connect-timeout 10 --openssl-timeout 10)
[ -n "$ca" ] && opts+=(--add-ca "$ca")
start=$(date +%s)
for t in "${targets[@]}"; do
    name=${t//[:\/]/_}
    # setsid: a scan past LIMIT_S is killed with every openssl it started.
    setsid timeout -k 5 "$LIMIT_S" "$TESTSSL" "${opts[@]}" --jsonfile "$OUT_DIR/$name.json" "$t" \
        >"$OUT_DIR/$name.txt" 2>&1 &
    pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
    s=0
    wait "${pids[$i]}" || s=$?
    # testssl.sh adds up check results in its exit status; 242 and above
    # (and 124/137 from timeout) are errors.
    if [ "$s" -ge 242 ] || [ "$s" -eq 124 ] || [ "$s" -eq 137 ]; then
        echo "testssl-run: scan of ${targets[$i]} failed with status $s; see $OUT_DIR" >&2
        rc=2
    fi
done
pids=()
echo "testssl-run: ${#targets[@]} scans took $(($(date +%s) - start)) s"

for t in "${targets[@]}"; do
    name=${t//[:\/]/_}
    "$PY" - "$OUT_DIR/$name.json" "$t" "$KNOWN" <<'EOF' || { [ $? -eq 1 ] && [ $rc -eq 0 ] && rc=1; }
import json, sys
path, target, known = sys.argv[1], sys.argv[2], set(sys.argv[3].split())
try:
    items = json.load(open(path))
except (OSError, ValueError) as e:
    print("%s: no JSON (%s)" % (target, e))
    sys.exit(2)
bad = ("MEDIUM", "HIGH", "CRITICAL")
print("\n== %s: %d findings" % (target, len(items)))
print("-- rated above INFO (severity id: finding):")
for x in items:
    if x["severity"] not in ("OK", "INFO", "DEBUG"):
        tag = " (known)" if x["id"] in known else ""
        print("  %-8s %s: %s%s" % (x["severity"], x["id"], x["finding"][:150], tag))
print("-- operator notes:")
for key in ("TLS1_2", "TLS1_3", "ALPN", "cipher_order", "sessionresumption_ticket",
            "sessionresumption_ID", "OCSP_stapling", "cert_chain_of_trust", "PFS_ECDHE_curves",
            "secure_renego", "secure_client_renego"):
    for x in items:
        if x["id"] == key:
            print("  %s: %s" % (key, x["finding"][:150]))
sims = [x for x in items if x["id"].startswith("clientsimulation-")]
none = [x["id"][len("clientsimulation-"):] for x in sims if x["finding"] == "No connection"]
print("-- client simulation: %d clients, %d without a connection: %s" %
      (len(sims), len(none), ", ".join(none) or "none"))
for x in sims:
    if x["finding"] != "No connection":
        print("  %-36s %s" % (x["id"][len("clientsimulation-"):], x["finding"]))
new = [x for x in items if x["severity"] in bad and x["id"] not in known]
print("-- %s: %d finding(s) rated MEDIUM or above outside the known ones" %
      ("FAIL" if new else "ok", len(new)))
sys.exit(1 if new else 0)
EOF
done
exit $rc
