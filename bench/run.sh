#!/usr/bin/env bash
# Load benchmark: tracewire against bare axum and the stacks users run today.
#
# Builds tracewire-bench in release, starts the OTLP sink on the load core, then for every round
# runs every mode (in an order rotated each round): the server pinned to the server core, wrk on
# the load core, a warm-up then a measured run, the server's CPU time from /proc. Prints the
# table and writes bench/RESULTS.md.
#
#   WARMUP=3s DURATION=10s ROUNDS=5 bench/run.sh
#   MODES="bare tracewire otel" ROUNDS=7 bench/run.sh
#
# Settings (environment): WARMUP, DURATION, ROUNDS, MODES, CONNECTIONS (wrk connections),
# SERVER_CORE, LOAD_CORE, PORT (server), SINK_PORT, DEAD_PORT (a closed port for the
# no-collector mode), OUT (the results file).
set -euo pipefail
shopt -s inherit_errexit

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

WARMUP=${WARMUP:-3s}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
MODES=${MODES:-"bare identity-layer tracewire tracewire-unsampled tracewire-no-export tracewire-layers tracewire-metrics minimal minimal-unsampled otel otel-off fastrace axum-prometheus tracewire-no-collector"}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT=${PORT:-18080}
SINK_PORT=${SINK_PORT:-14318}
DEAD_PORT=${DEAD_PORT:-14319}
OUT=${OUT:-$HERE/RESULTS.md}
COMMAND="WARMUP=$WARMUP DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS MODES=\"$MODES\" bench/run.sh"

read -r -a MODE_LIST <<<"$MODES"
[[ " $MODES " == *" bare "* ]] || echo "run.sh: warning: MODES has no 'bare': nothing to compare against" >&2

# Every process this script starts, stopped by its id on the way out.
STARTED=()
WORK=$(mktemp -d)
cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "run.sh: $*" >&2; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in taskset curl; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done
CORES=$(nproc)
if ((CORES < 2)); then
    log "needs 2 cores (server and load generator apart); this machine has $CORES"
    exit 1
fi
CLK_TCK=$(getconf CLK_TCK)

log "building in release"
(cd "$ROOT" && cargo build --release --quiet -p tracewire-bench)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tracewire-bench

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for port in "$PORT" "$SINK_PORT" "$DEAD_PORT"; do
    if port_open "$port"; then
        log "127.0.0.1:$port is in use; set PORT, SINK_PORT or DEAD_PORT"
        exit 1
    fi
done

# Waits until the process $1 accepts connections on port $2 (a bare TCP connect: an HTTP probe
# would add a span the request count does not know about).
wait_listening() {
    local pid=$1 port=$2 tries=0
    until port_open "$port"; do
        kill -0 "$pid" 2>/dev/null || { log "process $pid exited before listening on $port"; return 1; }
        ((++tries > 200)) && { log "nothing listens on $port after 10 s"; return 1; }
        sleep 0.05
    done
}

# Stops the process $1: SIGTERM (the server flushes its spans on the way out), SIGKILL after 15 s.
stop() {
    local pid=$1 tries=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((++tries > 300)); then
            log "process $pid ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    wait "$pid" 2>/dev/null || true
    # Reaped: its id may be reused, so the exit trap must forget it.
    local kept=() p
    for p in "${STARTED[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    STARTED=("${kept[@]}")
}

# utime and stime of process $1, in clock ticks (fields 14 and 15 of /proc/PID/stat; the command
# name before them is cut off at its closing parenthesis).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    read -r -a fields <<<"$stat"
    echo "${fields[11]} ${fields[12]}"
}

peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

sink_spans() { curl -sf --max-time 5 "http://127.0.0.1:$SINK_PORT/count"; }

# The sum of trace_exporter_spans_dropped_total's series on the server's /metrics, or "-".
dropped_spans() {
    curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
        awk '/^trace_exporter_spans_dropped_total[{ ]/ { sum += $NF; seen = 1 }
             END { if (seen) printf "%d\n", sum; else print "-" }' || echo "-"
}

# Runs wrk for $1 with trace flags $2 on the load core; prints its summary line's key=value pairs.
drive() {
    local output
    output=$(TRACE_FLAGS=$2 taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"$1" --timeout 5s \
        -s "$HERE/wrk/traceparent.lua" "http://127.0.0.1:$PORT/users/1")
    grep '^WRK ' <<<"$output" | sed 's/^WRK //' || { log "wrk printed no summary: $output"; return 1; }
}

field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }

# Other work on the machine takes cores from the server and wrk: say so in the results.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v load="${LOAD_BEFORE%% *}" 'BEGIN { exit !(load > 1.0) }'; then
    log "warning: load average $LOAD_BEFORE before the run; figures will be noisy"
fi

# --- the sink ----------------------------------------------------------------------------------
taskset -c "$LOAD_CORE" "$BIN" sink --addr "127.0.0.1:$SINK_PORT" &
SINK_PID=$!
STARTED+=("$SINK_PID")
wait_listening "$SINK_PID" "$SINK_PORT"

RUNS=$WORK/runs.tsv
printf 'round\tmode\trequests\twarmup_requests\tduration_s\tp50_us\tp99_us\tuser_ticks\tsys_ticks\tclk_tck\tpeak_rss_kib\tspans\tdropped\terrors\n' >"$RUNS"

# --- rounds ------------------------------------------------------------------------------------
for ((round = 1; round <= ROUNDS; round++)); do
    count=${#MODE_LIST[@]}
    for ((i = 0; i < count; i++)); do
        mode=${MODE_LIST[$(((i + round - 1) % count))]}
        server_mode=$mode
        endpoint="http://127.0.0.1:$SINK_PORT"
        flags=01
        case $mode in
            tracewire-no-collector)
                server_mode=tracewire
                endpoint="http://127.0.0.1:$DEAD_PORT"
                ;;
            tracewire-unsampled | otel-off | minimal-unsampled) flags=00 ;;
        esac

        spans_before=$(sink_spans)
        taskset -c "$SERVER_CORE" "$BIN" serve --mode "$server_mode" --workers 1 \
            --addr "127.0.0.1:$PORT" --otlp-endpoint "$endpoint" &
        pid=$!
        STARTED+=("$pid")
        wait_listening "$pid" "$PORT"

        warm=$(drive "$WARMUP" "$flags")
        read -r user_before sys_before < <(cpu_ticks "$pid")
        measured=$(drive "$DURATION" "$flags")
        read -r user_after sys_after < <(cpu_ticks "$pid")
        rss=$(peak_rss_kib "$pid")
        dropped=-
        [[ $server_mode == tracewire ]] && dropped=$(dropped_spans)
        stop "$pid"
        spans_after=$(sink_spans)

        requests=$(field "$measured" requests)
        duration_s=$(awk -v us="$(field "$measured" duration_us)" 'BEGIN { printf "%.6f", us / 1e6 }')
        errors=$(($(field "$measured" errors) + $(field "$warm" errors)))
        printf '%d\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n' \
            "$round" "$mode" "$requests" "$(field "$warm" requests)" "$duration_s" \
            "$(field "$measured" p50_us)" "$(field "$measured" p99_us)" \
            $((user_after - user_before)) $((sys_after - sys_before)) "$CLK_TCK" "$rss" $((spans_after - spans_before)) \
            "$dropped" "$errors" >>"$RUNS"
        log "round $round/$ROUNDS $mode: $requests requests in $duration_s s, $((user_after - user_before)) + $((sys_after - sys_before)) CPU ticks (user + system), $((spans_after - spans_before)) spans, dropped $dropped"
    done
done

stop "$SINK_PID"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------------
TABLE=$("$BIN" summarize "$RUNS")
echo
echo "$TABLE"

versions() {
    awk -v wanted=" $* " '
        /^\[\[package\]\]/ { name = ""; version = "" }
        /^name = /    { gsub(/"/, "", $3); name = $3 }
        /^version = / { gsub(/"/, "", $3); version = $3; if (index(wanted, " " name " ")) print "- " name " " version }
    ' "$ROOT/Cargo.lock" | sort -u
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEMORY=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

cat >"$OUT" <<EOF
# Load benchmark results

Written by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), tracewire at $COMMIT$DIRTY.

## Command

\`\`\`sh
$COMMAND
\`\`\`

## Machine

- $CORES cores ($CPU_MODEL), $MEMORY; $(uname -srm)
- $(rustc --version), $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }')
- load average (1, 5, 15 min) $LOAD_BEFORE before the run, $LOAD_AFTER after it (other work
  on the machine takes cores from the server and wrk; near 0 is what the figures need)
- server pinned to core $SERVER_CORE; wrk (1 thread, $CONNECTIONS connections) and the OTLP sink on core $LOAD_CORE

## Results

Medians over $ROUNDS round(s). "added µs/req" is the mode's server CPU per request minus
\`bare\`'s in the same round, median over rounds (each round's figure follows it); "× bare" is
the median of the same-round throughput ratios. "server busy" is the share of its core the
server used: well below 100% means something else (wrk, the machine's other work) limited the
run, and the throughput ratios mean little. "added user" and "added kernel" split the added CPU
(each a median over rounds of its own, so they need not sum exactly to "added µs/req"). The
kernel part includes sending spans (on loopback the server's core also runs the sink's side of
TCP), and it moves with throughput: a slower server answers fewer requests per wake-up, so it
makes more system calls per request. It is the noisier part; the user-space part is the
steadier comparison. \`tracewire-no-export\` is \`tracewire\` with a collector that drops each
span, so \`tracewire\` minus it is what the export costs. Targets (issue 8): \`tracewire\` adds at most
0.8 µs (≥ 0.90× bare), \`tracewire-unsampled\` at most 0.25 µs (≥ 0.96×).

$TABLE

## Versions (Cargo.lock)

$(versions axum hyper tokio tower-http tracing tracing-subscriber opentelemetry opentelemetry_sdk opentelemetry-otlp opentelemetry-http tracing-opentelemetry reqwest fastrace fastrace-axum fastrace-opentelemetry axum-prometheus metrics-exporter-prometheus prometheus-client)

## How it is measured

- **One binary, one handler.** \`tracewire-bench serve --mode MODE\` serves \`GET /users/{id}\`
  returning a small JSON object in every mode; only the layers around it differ (see
  \`bench/src/modes.rs\`). Modes with metrics also serve \`/metrics\`, which the load does not hit.
- **Server on one core.** A multi-thread tokio runtime with one worker, the whole process pinned
  to core $SERVER_CORE with \`taskset\`. One worker makes the CPU per request a property of the
  stack rather than of scheduling across cores; the multi-thread runtime (not the current-thread
  one) is what services run in production, and pinning the whole process puts the exporters'
  own threads (the OpenTelemetry batch processor, fastrace's reporter, the OTLP HTTP clients) on
  the server's core, so their work is counted and competes with requests as it would there.
- **Load.** \`wrk\`, one thread, $CONNECTIONS keep-alive connections, pinned to core $LOAD_CORE with
  the OTLP sink. Every request carries a new random W3C \`traceparent\` (\`bench/wrk/traceparent.lua\`)
  with trace flags \`01\` (sampled), except for \`tracewire-unsampled\` and \`otel-off\`, which get
  \`00\`: tracewire's parent-based sampler follows a caller's decision, so an unsampled request
  is one whose caller did not sample it (OpenTelemetry's \`AlwaysOff\` ignores the flag). A
  warm-up of $WARMUP, then the measured $DURATION.
- **CPU per request.** utime (user space) + stime (kernel) of the server process (all threads)
  from \`/proc/PID/stat\` just before and just after the measured run, in clock ticks ($CLK_TCK
  per second), divided by the requests wrk completed in it; both parts are also reported
  apart. Peak RSS is \`VmHWM\` at the end.
- **Export.** Every tracing mode exports over OTLP/HTTP protobuf to \`tracewire-bench sink\`, which
  decodes each request with opentelemetry-proto's types, counts the spans and acknowledges them.
  "spans/req" is the sink's count over the server's whole life (flushed on SIGTERM) divided by
  the requests wrk sent in the warm-up and the measured run.
- **Fault mode.** \`tracewire-no-collector\` is \`tracewire\` exporting to 127.0.0.1:$DEAD_PORT, where
  nothing listens, for the whole run: throughput, latency and RSS should match \`tracewire\`,
  and "dropped/req" is \`trace_exporter_spans_dropped_total\` from its \`/metrics\` per request.
- **Rounds.** Every round runs every mode once, each round starting one mode later in the list,
  so drifts of the machine spread over all modes; each mode is judged against \`bare\` of its own
  round.
- The peer stacks: \`otel\` is tower-http's \`TraceLayer\` making an INFO server span that continues
  the caller's trace, \`tracing-subscriber\` with an INFO filter, \`tracing-opentelemetry\`, and
  \`opentelemetry-otlp\` (HTTP/protobuf, its default blocking reqwest client) behind the SDK's
  batch span processor, sampler \`AlwaysOn\` (\`otel-off\`: \`AlwaysOff\`); \`fastrace\` is
  \`fastrace-axum\`'s layer with \`fastrace-opentelemetry\` reporting through the same OTLP
  exporter; \`axum-prometheus\` is its \`PrometheusMetricLayer\`.

<details><summary>Raw runs</summary>

\`\`\`
$(cat "$RUNS")
\`\`\`

</details>
EOF
log "wrote $OUT"
