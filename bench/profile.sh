#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# profile.sh -- where does Tributary's time go under one workload?
#
#   bench/profile.sh [WORKLOAD] [SECONDS]      WORKLOAD: putrecords (default) | putrecord |
#                                               getrecords | putitem | getitem | updateitem |
#                                               query | transactwrite; SECONDS of load (default 10)
#   PROFILER=perf|callgrind   force one (default: perf when it can sample here, else callgrind)
#   PERF_CALLGRAPH=dwarf|fp|none  how perf records stacks (default dwarf: the build keeps no
#                             frame pointers, so fp stacks stop at the first -O2 frame)
#   TRIBUTARY_BIN, TRBENCH    binaries (default build/tributary, build/trbench)
#   PROFILE_KEEP=1            keep the temp dir (perf.data / callgrind.out, server log)
#
# Starts build/tributary on a free 127.0.0.1 port with a temp data dir (as bench/run.sh does),
# creates and fills the stream (or DynamoDB table) with a short unmeasured trbench run, at the
# load shape bench/run.sh and bench/run-dynamodb.sh use, then samples the server
# while trbench drives the workload, and prints the top symbols by self time (and, with call
# stacks, by inclusive time).  perf samples the running server (cpu-clock when this machine
# has no hardware counters, as under most hypervisors); callgrind runs the server under
# valgrind (~50x slower, so the numbers are instruction counts, not wall time).  The server is
# stopped by its PID.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WL="${1:-putrecords}"
SECS="${2:-10}"
TRIBUTARY_BIN="${TRIBUTARY_BIN:-$ROOT/build/tributary}"
TRBENCH="${TRBENCH:-$ROOT/build/trbench}"
CALLGRAPH="${PERF_CALLGRAPH:-dwarf}"
KEY="AKIATRIBUTARYBENCH01"
SECRET="tributary/bench/secret/key/0123456789abc"
REGION="us-east-1"
declare -A WL_ARGS=(
    [putrecords]="--conns 8"
    [putrecord]="--conns 32"
    [getrecords]="--conns 4 --prefill 100000 --prefill-time 20"
    [putitem]="--conns 256"
    [getitem]="--conns 32"
    [updateitem]="--conns 256"
    [query]="--conns 32"
    [transactwrite]="--conns 256"
)
[ -n "${WL_ARGS[$WL]:-}" ] || { echo "profile: unknown workload $WL (${!WL_ARGS[*]})" >&2; exit 1; }
for b in "$TRIBUTARY_BIN" "$TRBENCH"; do
    [ -x "$b" ] || { echo "profile: $b not built; run make build" >&2; exit 1; }
done

TMP="$(mktemp -d /tmp/tributary-profile.XXXXXX)"
SRV_PID=""
log() { printf 'profile: %s\n' "$*" >&2; }

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    if kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID" 2>/dev/null
        for _ in $(seq 1 300); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SRV_PID" 2>/dev/null && { log "server ignored SIGTERM for 30 s; SIGKILL"; kill -KILL "$SRV_PID"; }
    fi
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
}
cleanup() {
    stop_server
    if [ "${PROFILE_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- pick the profiler ----------------------------------------------------------------------
PERF_EVENT=""
perf_works() {
    command -v perf >/dev/null || return 1
    # Hardware counters?  Under KVM and in containers `instructions` is often <not supported>.
    if perf stat -e instructions -x, true 2>&1 | grep -q '^[0-9]'; then
        PERF_EVENT=cycles
    else
        PERF_EVENT=cpu-clock
    fi
    perf record -q -e "$PERF_EVENT" -o "$TMP/probe.data" -- true >/dev/null 2>&1
}
PROFILER="${PROFILER:-}"
if [ -z "$PROFILER" ]; then
    if perf_works; then PROFILER=perf
    elif command -v valgrind >/dev/null; then PROFILER=callgrind
    else echo "profile: neither perf (apt-get install linux-perf) nor valgrind works here" >&2; exit 1
    fi
elif [ "$PROFILER" = perf ]; then
    perf_works || { echo "profile: perf cannot sample here (perf record failed)" >&2; exit 1; }
fi
log "profiler: $PROFILER${PERF_EVENT:+ (event $PERF_EVENT, call graph $CALLGRAPH)}"

# ---- start the server -------------------------------------------------------------------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$TMP/data"
PREFIX=()
START_WAIT=20
if [ "$PROFILER" = callgrind ]; then
    PREFIX=(valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" --dump-instr=no
            --collect-atstart=yes --trace-children=no)
    START_WAIT=120
fi
TRIBUTARY_ACCESS_KEY_ID="$KEY" TRIBUTARY_SECRET_ACCESS_KEY="$SECRET" \
    "${PREFIX[@]}" "$TRIBUTARY_BIN" serve --data "$TMP/data" --port "$PORT" --bind 127.0.0.1 \
    --region "$REGION" </dev/null >"$TMP/server.log" 2>&1 &
SRV_PID=$!
deadline=$((SECONDS + START_WAIT))
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ! kill -0 "$SRV_PID" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
        echo "profile: server did not start; log:" >&2; tail -n 20 "$TMP/server.log" >&2; exit 1
    fi
    sleep 0.1
done
log "server pid $SRV_PID on 127.0.0.1:$PORT"

bench() {  # bench DURATION EXTRA_ARGS...
    local d="$1"; shift
    # shellcheck disable=SC2086
    "$TRBENCH" "$WL" --endpoint "127.0.0.1:$PORT" --stream "profile-$WL" --duration "$d" \
        --warmup 0 --key "$KEY" --secret "$SECRET" --region "$REGION" ${WL_ARGS[$WL]} "$@"
}

# Unmeasured: create the stream or table (and pre-fill it for getrecords, getitem, query), warm
# caches.
bench 1 --setup 4 >"$TMP/setup.out" 2>&1 || { cat "$TMP/setup.out" >&2; exit 1; }

# ---- sample -----------------------------------------------------------------------------------
if [ "$PROFILER" = perf ]; then
    cg=(-g)
    case "$CALLGRAPH" in
        dwarf) cg=(--call-graph dwarf,8192) ;;
        fp) cg=(--call-graph fp) ;;
        none) cg=() ;;
    esac
    freq=999
    [ "$CALLGRAPH" = dwarf ] && freq=299   # dwarf samples copy the stack: keep perf report quick
    perf record -q -e "$PERF_EVENT" -F "$freq" "${cg[@]}" -p "$SRV_PID" -o "$TMP/perf.data" \
        -- sleep "$SECS" >"$TMP/perf-record.log" 2>&1 &
    perf_pid=$!
    sleep 0.3
    bench "$SECS" | grep -v '^RESULT'
    wait "$perf_pid"
    clean() { grep -v '^#' | grep -v '^$' | sed -E 's/ +$//; s/   +/  /g'; }
    echo
    echo "== where the server's CPU went, by object ($WL, $SECS s, perf $PERF_EVENT) =="
    perf report --no-inline -i "$TMP/perf.data" --stdio --no-children -F overhead,dso -g none \
        --percent-limit 1 2>/dev/null | clean | head -n 12
    echo
    echo "== top symbols by self time =="
    perf report --no-inline -i "$TMP/perf.data" --stdio --no-children -F overhead,dso,sym -g none \
        --percent-limit 0.5 2>/dev/null | clean | head -n 40
    if [ "${#cg[@]}" -gt 0 ]; then
        echo
        echo "== top symbols by inclusive time (self + callees) =="
        perf report --no-inline -i "$TMP/perf.data" --stdio --children -F overhead_children,overhead,sym -g none \
            --percent-limit 3 2>/dev/null | clean | head -n 25
        echo
        echo "== $(basename "$TRIBUTARY_BIN")'s own functions by inclusive time =="
        perf report --no-inline -i "$TMP/perf.data" --stdio --children \
            -F overhead_children,overhead,dso,sym -g none --percent-limit 1 2>/dev/null |
            clean | grep -F "  $(basename "$TRIBUTARY_BIN")  " | head -n 30
    fi
    echo
    echo "(perf data: $TMP/perf.data -- set PROFILE_KEEP=1 to keep it for perf report -i)"
else
    # Under valgrind the server is ~50x slower: fewer connections, same duration.
    bench "$SECS" --conns 2 --threads 1 | grep -v '^RESULT'
    stop_server   # callgrind writes its profile at exit
    out="$(ls "$TMP"/callgrind.out* 2>/dev/null | head -n 1)"
    [ -n "$out" ] || { echo "profile: no callgrind output; server log:" >&2; tail -n 20 "$TMP/server.log" >&2; exit 1; }
    echo
    echo "== top functions by self instructions ($WL, callgrind) =="
    callgrind_annotate --inclusive=no "$out" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' | grep -v '^-' | grep -v '^$' | head -n 40
    echo
    echo "== top functions by inclusive instructions =="
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' | grep -v '^-' | grep -v '^$' | head -n 30
    echo
    echo "(callgrind output: $out -- set PROFILE_KEEP=1 to keep it)"
fi
