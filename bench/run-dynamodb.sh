#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run-dynamodb.sh -- the DynamoDB benchmark of `make bench` (run by bench/run.sh after Kinesis;
# runs alone too): Tributary against dynalite (npm, in memory), plus nginx returning a fixed
# body as the HTTP ceiling.
#
# For each server in turn: start it on a free 127.0.0.1 port (Tributary with a temp data dir,
# durable, default settings; dynalite in memory), run each workload with bench/trbench
# (build/trbench) on its own table (created, and pre-filled for getitem and query, by
# trbench --setup), stop it by PID.  Every request is SigV4-signed; keys vary over a pool of
# 65536 pre-signed requests (see trbench.c).  Results go to bench/results/dynamodb.md as a
# Markdown table (also printed), with issue #4's targets for Tributary.  A peer that cannot be
# installed or started, or that lacks an operation, is reported in the table; it does not fail
# the bench.  Total time is about 2-3 minutes.
#
# Knobs (environment):
#   BENCH_DURATION=10  measured seconds per run      BENCH_WARMUP=1  unmeasured seconds first
#   BENCH_THREADS=2    trbench threads               BENCH_DDB_SERVERS="tributary dynalite nginx"
#   BENCH_DDB_WORKLOADS="putitem getitem updateitem query transactwrite"
#   TRIBUTARY_BIN=build/tributary  TRBENCH=build/trbench  BENCH_DDB_OUT=bench/results/dynamodb.md
#   BENCH_KEEP=1       keep the temp dir (server logs, raw trbench output)
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
TRIBUTARY_BIN="${TRIBUTARY_BIN:-$ROOT/build/tributary}"
TRBENCH="${TRBENCH:-$ROOT/build/trbench}"
OUT="${BENCH_DDB_OUT:-$BENCH/results/dynamodb.md}"
DUR="${BENCH_DURATION:-10}"
WARM="${BENCH_WARMUP:-1}"
THREADS="${BENCH_THREADS:-2}"
SERVERS="${BENCH_DDB_SERVERS:-tributary dynalite nginx}"
WORKLOADS="${BENCH_DDB_WORKLOADS:-putitem getitem updateitem query transactwrite}"
NGINX_WORKLOADS="putitem getitem"   # the ceiling for one write and one read shape
# A GetItem-shaped answer (an item with a 100-byte attribute), about Tributary's size.
NGINX_BODY="{\"Item\":{\"pk\":{\"S\":\"g-00000001\"},\"sk\":{\"S\":\"0\"},\"data\":{\"S\":\"$(printf 'x%.0s' $(seq 1 100))\"},\"n\":{\"N\":\"1\"}}}"
NGINX_TYPE=application/x-amz-json-1.0
# shellcheck source=bench/lib.sh
. "$BENCH/lib.sh"

# Per-workload load shape: connections = requests in flight.  Durable writes need concurrency
# to share fsyncs (group commit), like the Kinesis putrecord workload; reads peak with fewer.
declare -A WL_ARGS=(
    [putitem]="--conns 256"
    [getitem]="--conns 32"
    [updateitem]="--conns 256"
    [query]="--conns 32"
    [transactwrite]="--conns 256"
)
declare -A WL_DESC=(
    [putitem]="PutItem of a ~150 B item (100 B string + number), keys over 1,000,000 (mostly inserts), 256 conns"
    [getitem]="GetItem by key, 10,000 pre-filled items, 32 conns"
    [updateitem]='UpdateItem `ADD #c :one` (atomic counter) over 10,000 keys, so counters contend, 256 conns'
    [query]='Query `pk = :p` Limit 10 over 1,000 pre-filled hash keys of 10 range items each (ops/s = queries; items/s = 10x), 32 conns'
    [transactwrite]='TransactWriteItems of 2 `ADD #c :one` updates on distinct keys over 10,000, 256 conns'
)
# Issue #4's targets for Tributary (2 cores, load generator included), in ops/s.
declare -A TARGET=([getitem]=55000 [putitem]=45000 [updateitem]=40000)

bench_init bench-dynamodb
declare -A R        # R[server:workload:key] = value from trbench's RESULT line
declare -A EXTRA    # EXTRA[server:workload] = footnote (errors, prefill size)
declare -A UNSUP    # UNSUP[server:workload] = the server does not implement the operation

start_dynalite() {
    if ! npm_peers || [ ! -d "$BENCH/node_modules/dynalite" ]; then
        NOTE[dynalite]="${NPM_REASON:-dynalite not installed}"; return 1
    fi
    SRV_PORT="$(free_port)"
    # In memory (no --path: memory-level).  --createTableMs: tables ACTIVE after 50 ms.
    node -r "$BENCH/peers/loopback.cjs" "$BENCH/node_modules/dynalite/cli.js" \
        --host 127.0.0.1 --port "$SRV_PORT" --createTableMs 50 \
        </dev/null >"$TMP/dynalite.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    VERSION[dynalite]="dynalite $(pkg_version dynalite) (in memory, node $(node --version))"
    if ! wait_port "$SRV_PORT" "$SRV_PID" 30; then
        why_down dynalite; NOTE[dynalite]="did not start: $WHY"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

# run_workload SERVER WORKLOAD: one trbench run; fills R[SERVER:WORKLOAD:*], EXTRA and UNSUP.
run_workload() {
    local srv="$1" wl="$2" out="$TMP/$1.$2.out" err="$TMP/$1.$2.err" setup=(--setup 1)
    [ "$srv" = nginx ] && setup=()   # nothing to set up on a fixed-body server
    log "$srv: $wl (${WL_DESC[$wl]}) for ${DUR}s"
    # shellcheck disable=SC2086
    timeout $((DUR + WARM + 150)) "$TRBENCH" "$wl" --endpoint "127.0.0.1:$SRV_PORT" \
        --table "bench-$wl" --threads "$THREADS" --duration "$DUR" --warmup "$WARM" \
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
    local first; first="$(grep -m1 'HTTP [0-9]' "$err" | sed 's/^trbench: conn [0-9]*: //' | cut -c1-160 | tr '|' '/')"
    if [ "${R[$srv:$wl:s2xx]:-0}" = 0 ] && [[ "$first" == *UnknownOperationException* ]]; then
        UNSUP[$srv:$wl]=1
        EXTRA[$srv:$wl]="operation not implemented (every answer: $first)"
        return 0
    fi
    local notes=()
    local pre; pre="$(sed -n 's/^trbench: prefilled \([0-9]*\) items.*/\1/p' "$err")"
    [ -n "$pre" ] && notes+=("table pre-filled with $pre items")
    [ "${R[$srv:$wl:errors]:-0}" != 0 ] &&
        notes+=("${R[$srv:$wl:errors]} error responses (${R[$srv:$wl:throttled]} throttled)${first:+; first: $first}")
    [ "${R[$srv:$wl:misses]:-0}" != 0 ] && [ "$srv" != nginx ] && notes+=("${R[$srv:$wl:misses]} gets found no item")
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
        [ "$srv" = nginx ] && [[ " $NGINX_WORKLOADS " != *" $wl "* ]] && continue
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

cell() {  # cell SERVER WORKLOAD -> "ops/s | p50 | p99"
    local s="$1" w="$2"
    if [[ " $SERVERS " != *" $s "* ]]; then echo "not run | | "; return; fi
    if [ -n "${NOTE[$s]:-}" ]; then echo "n/a | | "; return; fi
    if [ -n "${UNSUP[$s:$w]:-}" ]; then echo "unsupported | | "; return; fi
    if [ -n "${R[$s:$w:fail]:-}" ] || [ -z "${R[$s:$w:ok_s]:-}" ]; then echo "failed | | "; return; fi
    echo "${R[$s:$w:ok_s]} | ${R[$s:$w:p50_ms]} | ${R[$s:$w:p99_ms]}"
}

ratio() {  # ratio WORKLOAD PEER
    local a="${R[tributary:$1:ok_s]:-}" b="${R[$2:$1:ok_s]:-}"
    if [ -n "${UNSUP[$2:$1]:-}" ] || [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then echo "-"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1fx", a / b }'
}

target() {  # target WORKLOAD -> "≥ 55000: met" / "≥ 45000: MISSED (84%)" / "-"
    local t="${TARGET[$1]:-}" a="${R[tributary:$1:ok_s]:-}"
    [ -z "$t" ] && { echo "-"; return; }
    [ -z "$a" ] && { echo "≥ $t: not measured"; return; }
    awk -v a="$a" -v t="$t" 'BEGIN { if (a >= t) printf "≥ %d: met", t; else printf "≥ %d: **missed** (%.0f%%)", t, 100 * a / t }'
}

report() {
    local wl s
    {
        echo "# DynamoDB benchmark: Tributary vs dynalite"
        echo
        echo "Generated by \`make bench\` (bench/run-dynamodb.sh, load from bench/trbench.c)."
        echo
        # shellcheck disable=SC2086
        machine_rows $SERVERS
        echo "| load | trbench, closed loop over HTTP/1.1 keep-alive, SigV4-signed (service dynamodb), $THREADS client threads on the same machine (client and server share its $(nproc) cores), ${WARM} s warm-up + ${DUR} s measured per run, a fresh table per workload (hash pk S, range sk S, PAY_PER_REQUEST), keys varied over 65536 pre-signed requests |"
        echo
        echo "ops/s = 2xx responses per second (queries, not items, for query; transactions for transactwrite); p50/p99 = request latency in ms; target = issue #4's floor for Tributary on 2 cores with the load generator included."
        echo
        echo "| workload | tributary ops/s | p50 | p99 | dynalite ops/s | p50 | p99 | tributary/dynalite | target |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        for wl in $WORKLOADS; do
            echo "| $wl | $(cell tributary "$wl") | $(cell dynalite "$wl") | $(ratio "$wl" dynalite) | $(target "$wl") |"
        done
        if [[ " $SERVERS " == *" nginx "* ]]; then
            echo
            echo "Ceiling: nginx (1 worker) answering every request with a fixed GetItem-shaped body, same client and load shape."
            echo
            echo "| workload | nginx req/s | p50 | p99 | tributary req/s | tributary as % of nginx |"
            echo "| --- | ---: | ---: | ---: | ---: | ---: |"
            for wl in $NGINX_WORKLOADS; do
                [[ " $WORKLOADS " != *" $wl "* ]] && continue
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
        echo "Details (items/s, p99.9 ms, client CPU % of one core, notes):"
        echo
        for s in $SERVERS; do
            [ -n "${NOTE[$s]:-}" ] && { echo "- $s: not measured: ${NOTE[$s]}"; continue; }
            for wl in $WORKLOADS; do
                [ "$s" = nginx ] && [[ " $NGINX_WORKLOADS " != *" $wl "* ]] && continue
                if [ -n "${R[$s:$wl:fail]:-}" ]; then echo "- $s $wl: FAILED: ${R[$s:$wl:fail]}"; continue; fi
                if [ -n "${UNSUP[$s:$wl]:-}" ]; then echo "- $s $wl: ${EXTRA[$s:$wl]}"; continue; fi
                echo "- $s $wl: ${R[$s:$wl:rec_s]:-?} items/s, p99.9 ${R[$s:$wl:p999_ms]:-?} ms, client CPU ${R[$s:$wl:client_cpu_pct]:-?}%${EXTRA[$s:$wl]:+; ${EXTRA[$s:$wl]}}"
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
mkdir -p "$(dirname "$OUT")"
t0=$SECONDS
for s in $SERVERS; do bench_server "$s"; done
report
cat "$OUT"
log "dynamodb done in $((SECONDS - t0)) s; table in ${OUT#"$ROOT"/}"
