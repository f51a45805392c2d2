#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each one for a bounded time from a
# temporary copy of its committed seed corpus (tests/fuzz/corpus/<name>/),
# then runs the network fuzzer against the broker's ASan build. Fails if any
# target finds a crash, a leak, a sanitizer report, a broken invariant or a
# timeout, or if the broker dies or stops answering.
#
#   tests/fuzz/run-ci.sh                       # everything, 20 s a target
#   FUZZ_SECONDS=600 tests/fuzz/run-ci.sh session topic
#
# Arguments name the targets to run (default: all, netfuzz included).
# Environment:
#   FUZZ_SECONDS     seconds per libFuzzer target (default 20)
#   NETFUZZ_SECONDS  seconds of netfuzz.py (default 60; 0 skips it)
#   FUZZ_JOBS        libFuzzer targets run at once (default 1: CI has 2 cores,
#                    and netfuzz runs alone after them)
#   RINGMQ_BIN       the broker for netfuzz (default build-asan/net/ringmq;
#                    without it, build-fuzz/net/ringmq if that is built)
#   FUZZ_KEEP        a folder: logs and reproducers of failures go there
#
# One line per target, then always a last line "fuzz: N passed, M failed".
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-20}
net_seconds=${NETFUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
fuzzers=(codec session topic config passwd scram psk acl proxy netrule ban http)

run_net=0
targets=()
if [ $# -eq 0 ]; then
    targets=("${fuzzers[@]}")
    [ -f "$here/netfuzz.py" ] && [ "$net_seconds" -gt 0 ] && run_net=1
else
    for t in "$@"; do
        if [ "$t" = netfuzz ]; then run_net=1; else targets+=("$t"); fi
    done
fi

passed=0
failed=0
failed_names=()
summary() {
    if [ ${#failed_names[@]} -gt 0 ]; then echo "fuzz: failed: ${failed_names[*]}"; fi
    echo "fuzz: $passed passed, $failed failed"
}
# Before anything ran: every requested target counts as failed.
give_up() {
    echo "fuzz: $1"
    failed=$((${#targets[@]} + run_net))
    failed_names=("${targets[@]}")
    [ "$run_net" -eq 1 ] && failed_names+=(netfuzz)
    summary
    exit 1
}
keep() { # name, files...
    [ -n "${FUZZ_KEEP:-}" ] || return 0
    local name=$1
    shift
    mkdir -p "$FUZZ_KEEP/$name"
    cp "$@" "$FUZZ_KEEP/$name/" 2>/dev/null
    echo "    kept in $FUZZ_KEEP/$name"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- build
if [ ! -f "$build/build.ninja" ]; then
    if ! CC=clang meson setup "$build" "$root" -Dfuzzing=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dallocator=libc >"$work/setup.log" 2>&1; then
        tail -30 "$work/setup.log"
        give_up "meson setup of $build failed"
    fi
fi
# The broker's ASan build, or else build-fuzz's broker (clang, ASan and
# UBSan too), rebuilt here with the targets so it is never stale.
bin=${RINGMQ_BIN:-$root/build-asan/net/ringmq}
if [ -z "${RINGMQ_BIN:-}" ] && [ ! -x "$bin" ] && [ -x "$build/net/ringmq" ]; then
    bin=$build/net/ringmq
fi
ninja_targets=()
for t in "${targets[@]}"; do ninja_targets+=("tests/fuzz/fuzz_$t"); done
if [ "$run_net" -eq 1 ] && [ "$bin" = "$build/net/ringmq" ]; then ninja_targets+=(net/ringmq); fi
if [ ${#ninja_targets[@]} -gt 0 ] &&
    ! ninja -C "$build" "${ninja_targets[@]}" >"$work/build.log" 2>&1; then
    tail -50 "$work/build.log"
    give_up "build failed"
fi

# ---- libFuzzer targets
# Leaks count as crashes; UBSan stops at the first report, so it is one.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run_one() {
    local t=$1 dir="$work/$1" dict=() start=$SECONDS rc
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp "$here/corpus/$t/"* "$dir/corpus/"
    [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
    # -max_total_time bounds the run; the outer timeout is a backstop for a
    # hang libFuzzer's -timeout cannot see (in its own set-up).
    timeout -k 10 $((seconds + 60)) "$build/tests/fuzz/fuzz_$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "${dict[@]}" "$dir/corpus" >"$dir/log" 2>&1
    rc=$?
    local runs found
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
    found=$(ls "$dir/artifacts")
    if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
        echo "fuzz $t: ok, ${runs:-?} runs in $((SECONDS - start)) s, corpus $(ls "$dir/corpus" | wc -l)"
        echo ok >"$dir/result"
        return
    fi
    echo "fuzz $t: FAILED (exit $rc) after $((SECONDS - start)) s${found:+, found $(echo $found)}"
    grep -E 'check failed|ERROR: |SUMMARY|runtime error' "$dir/log" | head -6 | sed 's/^/    /'
    echo "    reproduce: build-fuzz/tests/fuzz/fuzz_$t REPRODUCER"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        keep "$t" "$dir/log" "$dir/artifacts/"*
    else
        tail -30 "$dir/log" | sed 's/^/    | /'
    fi
    echo failed >"$dir/result"
}

running=0
for t in "${targets[@]}"; do
    if [ ! -d "$here/corpus/$t" ] || [ ! -x "$build/tests/fuzz/fuzz_$t" ]; then
        echo "fuzz $t: FAILED (no target fuzz_$t or no corpus folder tests/fuzz/corpus/$t)"
        continue
    fi
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
for t in "${targets[@]}"; do
    if [ "$(cat "$work/$t/result" 2>/dev/null)" = ok ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names+=("$t")
    fi
done

# ---- the network fuzzer, against the real broker
if [ "$run_net" -eq 1 ]; then
    if [ ! -x "$bin" ]; then
        echo "fuzz netfuzz: skipped, no broker at $bin (meson setup build-asan" \
            "-Db_sanitize=address,undefined -Dallocator=libc && ninja -C build-asan)"
    else
        start=$SECONDS
        if RINGMQ_BIN="$bin" timeout -k 10 $((net_seconds + 120)) python3 "$here/netfuzz.py" \
            --seconds "$net_seconds" >"$work/netfuzz.log" 2>&1; then
            echo "fuzz netfuzz: ok in $((SECONDS - start)) s: $(tail -1 "$work/netfuzz.log" | sed 's/^netfuzz: //')"
            passed=$((passed + 1))
        else
            echo "fuzz netfuzz: FAILED after $((SECONDS - start)) s"
            grep -E '^netfuzz: ' "$work/netfuzz.log" | sed 's/^/    /'
            if [ -n "${FUZZ_KEEP:-}" ]; then
                keep netfuzz "$work/netfuzz.log"
            else
                tail -60 "$work/netfuzz.log" | sed 's/^/    | /'
            fi
            failed=$((failed + 1))
            failed_names+=(netfuzz)
        fi
    fi
fi

summary
[ "$failed" -eq 0 ]
