#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run.sh -- the benchmarks behind `make bench`.  Kinesis here: Tributary against kinesalite and
# kinesis-local (npm), plus nginx returning a fixed body as the HTTP ceiling.  Then DynamoDB:
# bench/run-dynamodb.sh (Tributary against dynalite, bench/results/dynamodb.md).  Then event-source
# mappings: bench/esm.py (invocations/s, put -> invoke latency; bench/results/esm.md).  Then the
# main job end to end: bench/pipeline.py (make demo's pipeline with a C producer: sustained
# readings/s, put -> applied latency at half load; bench/results/pipeline.md).
#
# For each server in turn: start it on a free 127.0.0.1 port (Tributary with a temp data dir,
# durable, default settings; the peers with their defaults, in memory), run each workload with
# bench/trbench (build/trbench), stop it by PID.  Results go to bench/results/kinesis.md as a
# Markdown table (also printed).  A peer that cannot be installed or started is reported in the
# table with the reason; it does not fail the bench.  Total time is about 3-4 minutes, then
# 2-3 for DynamoDB.
#
# Knobs (environment):
#   BENCH_SUITES="kinesis dynamodb esm pipeline"  which benchmarks (DynamoDB knobs:
#                      run-dynamodb.sh; event-source mappings: bench/esm.py; the pipeline:
#                      bench/pipeline.py, e.g. BENCH_PIPE_DURATION=5 for a short run)
#   BENCH_DURATION=10  measured seconds per run      BENCH_WARMUP=1  unmeasured seconds first
#   BENCH_THREADS=2    trbench threads               BENCH_SERVERS="tributary kinesalite
#   BENCH_WORKLOADS="putrecords putrecord getrecords"   kinesis-local nginx"
#   TRIBUTARY_BIN=build/tributary  TRBENCH=build/trbench  BENCH_OUT=bench/results/kinesis.md
#   BENCH_KEEP=1       keep the temp dir (server logs, raw trbench output)
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
TRIBUTARY_BIN="${TRIBUTARY_BIN:-$ROOT/build/tributary}"
TRBENCH="${TRBENCH:-$ROOT/build/trbench}"
OUT="${BENCH_OUT:-$BENCH/results/kinesis.md}"
DUR="${BENCH_DURATION:-10}"
WARM="${BENCH_WARMUP:-1}"
THREADS="${BENCH_THREADS:-2}"
SERVERS="${BENCH_SERVERS:-tributary kinesalite kinesis-local nginx}"
WORKLOADS="${BENCH_WORKLOADS:-putrecords putrecord getrecords}"
SUITES="${BENCH_SUITES:-kinesis dynamodb esm pipeline}"
SHARDS=4
NGINX_BODY='{"FailedRecordCount":0,"Records":[]}'   # PutRecords-shaped
NGINX_TYPE=application/x-amz-json-1.1
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

# Per-workload load shape: connections = requests in flight.
declare -A WL_ARGS=(
    [putrecords]="--conns 32"
    [putrecord]="--conns 256"
    [getrecords]="--conns $SHARDS --prefill 100000 --prefill-time 20"
)
declare -A WL_DESC=(
    [putrecords]="PutRecords, 500 x 100 B records/request, 32 conns"
    [putrecord]="PutRecord, 1 x 100 B record, 256 conns (durable writes need concurrency to share fsyncs, like a device fleet)"
    [getrecords]="GetRecords Limit 10000, 4 conns (one per shard), re-reading a pre-filled stream"
)

bench_init bench
declare -A R        # R[server:workload:key] = value from trbench's RESULT line
declare -A EXTRA    # EXTRA[server:workload] = footnote (errors, prefill size)

# ---------------------------------------------------------------------------------------------
# Servers (tributary and nginx: lib.sh).  start_<name> sets SRV_PID and SRV_PORT, or sets
# NOTE[name] and returns 1.
# ---------------------------------------------------------------------------------------------

start_kinesalite() {
    if ! npm_peers || [ ! -d "$BENCH/node_modules/kinesalite" ]; then
        NOTE[kinesalite]="${NPM_REASON:-kinesalite not installed}"; return 1
    fi
    SRV_PORT="$(free_port)"
    # In memory (its default); --shardLimit lifts its 10-shard account limit for 3 x 4 shards.
    node -r "$BENCH/peers/loopback.cjs" "$BENCH/node_modules/kinesalite/cli.js" \
        --port "$SRV_PORT" --shardLimit 100 --createStreamMs 50 \
        </dev/null >"$TMP/kinesalite.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    VERSION[kinesalite]="kinesalite $(pkg_version kinesalite) (in memory, node $(node --version))"
    if ! wait_port "$SRV_PORT" "$SRV_PID" 30; then
        why_down kinesalite; NOTE[kinesalite]="did not start: $WHY"
        return 1
    fi
}

start_kinesis-local() {
    if ! npm_peers || [ ! -d "$BENCH/node_modules/kinesis-local" ]; then
        NOTE[kinesis-local]="${NPM_REASON:-kinesis-local not installed}"; return 1
    fi
    SRV_PORT="$(free_port)"
    local tls_port; tls_port="$(free_port)"
    # kinesis-mock compiled to JS (Scala.js); HTTP on KINESIS_MOCK_PLAIN_PORT, in memory.  It
    # binds 0.0.0.0 by itself: loopback.cjs rewrites that to 127.0.0.1.
    (cd "$TMP" && KINESIS_MOCK_PLAIN_PORT="$SRV_PORT" KINESIS_MOCK_TLS_PORT="$tls_port" \
        KINESIS_MOCK_CERT_PATH="$BENCH/node_modules/kinesis-local/server.json" \
        LOG_LEVEL=ERROR CREATE_STREAM_DURATION=50ms SHOULD_PERSIST_DATA=false \
        exec node -r "$BENCH/peers/loopback.cjs" "$BENCH/node_modules/kinesis-local/main.js") \
        </dev/null >"$TMP/kinesis-local.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    VERSION[kinesis-local]="kinesis-local $(pkg_version kinesis-local) (kinesis-mock on node, in memory)"
    if ! wait_port "$SRV_PORT" "$SRV_PID" 60; then
        why_down kinesis-local; NOTE[kinesis-local]="did not start: $WHY"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

# run_workload SERVER WORKLOAD: one trbench run; fills R[SERVER:WORKLOAD:*] and EXTRA.
run_workload() {
    local srv="$1" wl="$2" out="$TMP/$1.$2.out" err="$TMP/$1.$2.err" setup=(--setup "$SHARDS")
    [ "$srv" = nginx ] && setup=()   # nothing to set up on a fixed-body server
    log "$srv: $wl (${WL_DESC[$wl]}) for ${DUR}s"
    # shellcheck disable=SC2086
    timeout $((DUR + WARM + 150)) "$TRBENCH" "$wl" --endpoint "127.0.0.1:$SRV_PORT" \
        --stream "bench-$wl" --threads "$THREADS" --duration "$DUR" --warmup "$WARM" \
        --key "$KEY" --secret "$SECRET" --region "$REGION" "${setup[@]}" ${WL_ARGS[$wl]} \
        >"$out" 2>"$err"
    local rc=$?
    cat "$out" >&2
    local line; line="$(grep '^RESULT ' "$out" | tail -n 1)"
    if [ -z "$line" ]; then
        R[$srv:$wl:fail]="trbench exit $rc: $(grep -v '^trbench: prefilled' "$err" | head -n 1 | cut -c1-160 | tr '|' '/')"
        log "$srv: $wl failed: ${R[$srv:$wl:fail]}"
        return 1
    fi
    local kv
    for kv in ${line#RESULT }; do R[$srv:$wl:${kv%%=*}]="${kv#*=}"; done
    local notes=()
    local pre; pre="$(sed -n 's/^trbench: prefilled \([0-9]*\) records.*/\1/p' "$err")"
    [ -n "$pre" ] && notes+=("stream pre-filled with $pre records")
    if [ "${R[$srv:$wl:errors]:-0}" != 0 ] || [ "${R[$srv:$wl:failed_records]:-0}" != 0 ]; then
        local first; first="$(grep -m1 'HTTP [0-9]' "$err" | sed 's/^trbench: conn [0-9]*: //' | cut -c1-160 | tr '|' '/')"
        notes+=("${R[$srv:$wl:errors]} error responses (${R[$srv:$wl:throttled]} throttled), ${R[$srv:$wl:failed_records]} failed records${first:+; first: $first}")
    fi
    [ "${R[$srv:$wl:reconnects]:-0}" != 0 ] && notes+=("${R[$srv:$wl:reconnects]} reconnects")
    [ "${#notes[@]}" -gt 0 ] && EXTRA[$srv:$wl]="$(IFS=';'; echo "${notes[*]}" | sed 's/;/; /g')"
    return 0
}

bench_server() {
    local srv="$1" wl
    SRV_PID="" SRV_PORT=""
    if ! "start_$srv"; then
        log "$srv: unavailable: ${NOTE[$srv]}"
        [ -n "$SRV_PID" ] && stop_pid "$SRV_PID"
        return
    fi
    log "$srv listening on 127.0.0.1:$SRV_PORT (pid $SRV_PID)"
    for wl in $WORKLOADS; do
        [ "$srv" = nginx ] && [ "$wl" = getrecords ] && continue   # no iterator to follow
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            R[$srv:$wl:fail]="server had exited"
            continue
        fi
        run_workload "$srv" "$wl"
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            wait "$SRV_PID"; local code=$?
            EXTRA[$srv:$wl]="${EXTRA[$srv:$wl]:+${EXTRA[$srv:$wl]}; }SERVER EXITED (status $code) during this run: $(tail -n 2 "$TMP/$srv.log" | tr '\n|' ' /' | cut -c1-200)"
            log "$srv exited during $wl; log tail:"; tail -n 20 "$TMP/$srv.log" >&2
        fi
    done
    stop_pid "$SRV_PID"
    if [ "$srv" = tributary ]; then
        local n; n="$(grep -ciE 'error|assert|sanitizer|abort' "$TMP/tributary.log")"
        [ "$n" != 0 ] && EXTRA[tributary:log]="server log has $n error-like lines; first: $(grep -m1 -iE 'error|assert|sanitizer|abort' "$TMP/tributary.log" | cut -c1-200 | tr '|' '/')"
    fi
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

cell() {  # cell SERVER WORKLOAD -> "rec/s | p50 | p99"
    local s="$1" w="$2"
    if [[ " $SERVERS " != *" $s "* ]]; then echo "not run | | "; return; fi
    if [ -n "${NOTE[$s]:-}" ]; then echo "n/a | | "; return; fi
    if [ -n "${R[$s:$w:fail]:-}" ] || [ -z "${R[$s:$w:rec_s]:-}" ]; then echo "failed | | "; return; fi
    echo "${R[$s:$w:rec_s]} | ${R[$s:$w:p50_ms]} | ${R[$s:$w:p99_ms]}"
}

ratio() {  # ratio WORKLOAD PEER
    local a="${R[tributary:$2:rec_s]:-}" b="${R[$1:$2:rec_s]:-}"
    if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then echo "-"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1fx", a / b }'
}

report() {
    local wl s
    {
        echo "# Kinesis benchmark: Tributary vs kinesalite vs kinesis-local"
        echo
        echo "Generated by \`make bench\` (bench/run.sh, load from bench/trbench.c)."
        echo
        # shellcheck disable=SC2086
        machine_rows $SERVERS
        echo "| load | trbench, closed loop over HTTP/1.1 keep-alive, SigV4-signed, $THREADS client threads on the same machine (client and server share its $(nproc) cores), ${WARM} s warm-up + ${DUR} s measured per run, $SHARDS-shard stream per workload |"
        echo
        echo "rec/s = records written (Put*) or read (GetRecords) per second in 2xx responses; p50/p99 = request latency in ms."
        echo
        echo "| workload | tributary rec/s | p50 | p99 | kinesalite rec/s | p50 | p99 | kinesis-local rec/s | p50 | p99 | tributary/kinesalite | tributary/kinesis-local |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for wl in $WORKLOADS; do
            echo "| $wl | $(cell tributary "$wl") | $(cell kinesalite "$wl") | $(cell kinesis-local "$wl") | $(ratio kinesalite "$wl") | $(ratio kinesis-local "$wl") |"
        done
        if [[ " $SERVERS " == *" nginx "* ]]; then
            echo
            echo "Ceiling: nginx (1 worker) answering every request with a fixed body, same client and load shape."
            echo
            echo "| workload | nginx req/s | p50 | p99 | tributary req/s | tributary as % of nginx |"
            echo "| --- | ---: | ---: | ---: | ---: | ---: |"
            for wl in $WORKLOADS; do
                [ "$wl" = getrecords ] && continue
                if [ -n "${NOTE[nginx]:-}" ]; then
                    echo "| $wl | n/a | | | ${R[tributary:$wl:req_s]:--} | - |"; continue
                fi
                local pct="-"
                [ -n "${R[tributary:$wl:req_s]:-}" ] && [ -n "${R[nginx:$wl:req_s]:-}" ] &&
                    pct="$(awk -v a="${R[tributary:$wl:req_s]}" -v b="${R[nginx:$wl:req_s]}" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')"
                echo "| $wl | ${R[nginx:$wl:req_s]:-failed} | ${R[nginx:$wl:p50_ms]:-} | ${R[nginx:$wl:p99_ms]:-} | ${R[tributary:$wl:req_s]:--} | $pct |"
            done
        fi
        echo
        echo "Workloads:"
        for wl in $WORKLOADS; do echo "- **$wl**: ${WL_DESC[$wl]}."; done
        echo
        echo "Details (requests/s, p99.9 ms, client CPU % of one core, notes):"
        echo
        for s in $SERVERS; do
            [ -n "${NOTE[$s]:-}" ] && { echo "- $s: not measured: ${NOTE[$s]}"; continue; }
            for wl in $WORKLOADS; do
                [ "$s" = nginx ] && [ "$wl" = getrecords ] && continue
                if [ -n "${R[$s:$wl:fail]:-}" ]; then echo "- $s $wl: FAILED: ${R[$s:$wl:fail]}"; continue; fi
                echo "- $s $wl: ${R[$s:$wl:req_s]:-?} req/s, p99.9 ${R[$s:$wl:p999_ms]:-?} ms, client CPU ${R[$s:$wl:client_cpu_pct]:-?}%${EXTRA[$s:$wl]:+; ${EXTRA[$s:$wl]}}"
            done
        done
        [ -n "${EXTRA[tributary:log]:-}" ] && echo "- tributary: ${EXTRA[tributary:log]}"
    } >"$OUT"
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

if [ ! -x "$TRBENCH" ]; then
    echo "bench: $TRBENCH not built; run make build (CMake builds bench/*.c into trbench)" >&2
    exit 1
fi
t0=$SECONDS
if [[ " $SUITES " == *" kinesis "* ]]; then
    mkdir -p "$(dirname "$OUT")"
    for s in $SERVERS; do bench_server "$s"; done
    report
    cat "$OUT"
    log "kinesis done in $((SECONDS - t0)) s; table in ${OUT#"$ROOT"/}"
fi
rc=0
if [[ " $SUITES " == *" dynamodb "* ]]; then
    TRIBUTARY_BIN="$TRIBUTARY_BIN" TRBENCH="$TRBENCH" "$BENCH/run-dynamodb.sh" || rc=$?
fi
if [[ " $SUITES " == *" esm "* ]]; then
    TRIBUTARY_BIN="$TRIBUTARY_BIN" /usr/bin/python3 "$BENCH/esm.py" || rc=$?
fi
if [[ " $SUITES " == *" pipeline "* ]]; then
    TRIBUTARY_BIN="$TRIBUTARY_BIN" /usr/bin/python3 "$BENCH/pipeline.py" || rc=$?
fi
log "done in $((SECONDS - t0)) s"
exit "$rc"
