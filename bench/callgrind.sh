#!/usr/bin/env bash
# Instructions per request of each mode, counted by callgrind: stable where timings are not (a
# shared, noisy machine). For every mode: the server under `valgrind --tool=callgrind`, the OTLP
# sink beside it, a wrk warm-up, the counters zeroed, a measured wrk run, a pause for the export
# task to send what those requests made, the counters dumped; instructions / requests.
#
#   bench/callgrind.sh                       # bare tracewire tracewire-unsampled
#   MODES="bare tracewire-metrics" SECONDS_MEASURED=10 bench/callgrind.sh
#
# The dumps stay in $OUT_DIR (callgrind_annotate them to see where the instructions go).
# Settings (environment): MODES, SECONDS_MEASURED, CONNECTIONS, PORT, SINK_PORT, OUT_DIR.
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MODES=${MODES:-"bare tracewire tracewire-unsampled"}
SECONDS_MEASURED=${SECONDS_MEASURED:-6}
CONNECTIONS=${CONNECTIONS:-8}
PORT=${PORT:-18090}
SINK_PORT=${SINK_PORT:-14390}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}

log() { echo "callgrind.sh: $*" >&2; }
for tool in valgrind callgrind_control wrk; do
    command -v "$tool" >/dev/null || { log "$tool is required (Debian: valgrind, wrk)"; exit 1; }
done

STARTED=()
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_listening() {
    local tries=0
    until port_open "$1"; do
        ((++tries > 600)) && { log "nothing listens on $1 after 60 s"; return 1; }
        sleep 0.1
    done
}
# wrk with the load benchmark's script: a random traceparent with flags $1 per request; prints
# the number of requests it completed.
drive() {
    (cd "$HERE/wrk" && TRACE_FLAGS=$1 wrk -t1 -c"$CONNECTIONS" -d"$2" -s traceparent.lua \
        "http://127.0.0.1:$PORT") | sed -n 's/^WRK requests=\([0-9]*\).*/\1/p'
}

log "building in release"
(cd "$ROOT" && cargo build --release --quiet -p tracewire-bench)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tracewire-bench

"$BIN" sink --addr "127.0.0.1:$SINK_PORT" >/dev/null 2>&1 &
STARTED+=("$!")
wait_listening "$SINK_PORT"

printf '%-22s %10s %14s %16s\n' mode requests instructions "per request"
for mode in $MODES; do
    flags=01
    [[ $mode == tracewire-unsampled || $mode == minimal-unsampled ]] && flags=00
    valgrind --tool=callgrind --callgrind-out-file="$OUT_DIR/callgrind.$mode.%p" \
        "$BIN" serve --mode "$mode" --addr "127.0.0.1:$PORT" \
        --otlp-endpoint "http://127.0.0.1:$SINK_PORT" 2>"$OUT_DIR/valgrind.$mode.log" &
    pid=$!
    STARTED+=("$pid")
    wait_listening "$PORT"
    drive "$flags" 3s >/dev/null
    callgrind_control --zero "$pid" >/dev/null 2>&1
    requests=$(drive "$flags" "${SECONDS_MEASURED}s")
    sleep 1.5
    callgrind_control --dump "$pid" >/dev/null 2>&1
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    unset 'STARTED[-1]' # reaped: its id may be reused, so the exit trap must forget it
    # The first dump after zeroing holds exactly the measured window.
    dump="$OUT_DIR/callgrind.$mode.$pid.1"
    instructions=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    printf '%-22s %10d %14d %16d\n' "$mode" "$requests" "$instructions" $((instructions / requests))
done
log "dumps in $OUT_DIR"
