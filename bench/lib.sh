# SPDX-License-Identifier: Apache-2.0
# lib.sh -- shared by bench/run.sh (Kinesis) and bench/run-dynamodb.sh (DynamoDB): starting and
# stopping the servers under test, the npm peers, and the machine facts of a report.  Sourced,
# not run.
#
# The sourcing script sets ROOT, BENCH and TRIBUTARY_BIN, then calls bench_init NAME, which makes
# TMP (a temp dir removed at exit unless BENCH_KEEP=1) and the shared state:
#   NOTE[server]     why a server has no numbers (set by start_<server> when it returns 1)
#   VERSION[server]  what ran
#   PIDS             every server started, stopped by PID at exit
#   SRV_PID SRV_PORT the server start_<server> just started
# Every server binds 127.0.0.1 only; nothing here stops a process it did not start.

KEY="AKIATRIBUTARYBENCH01"
SECRET="tributary/bench/secret/key/0123456789abc"
REGION="us-east-1"
PEERS="kinesalite kinesis-local dynalite"   # npm packages in bench/package.json

declare -A NOTE VERSION
PIDS=()

log() { printf 'bench: %s\n' "$*" >&2; }

bench_init() {  # bench_init NAME
    TMP="$(mktemp -d "/tmp/tributary-$1.XXXXXX")"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# why_down NAME: sets WHY to one line on why server NAME (pid SRV_PID, log $TMP/NAME.log) is
# not listening.  Not in a $(subshell): wait must run in the shell that started the server.
why_down() {
    local st="still running but not listening"
    if ! kill -0 "$SRV_PID" 2>/dev/null; then wait "$SRV_PID"; st="exited with status $?"; fi
    WHY="$st; log: $(tail -n 3 "$TMP/$1.log" 2>/dev/null | tr '\n|' ' /' | cut -c1-200)"
}

# ---------------------------------------------------------------------------------------------
# Process handling: every server is started here, bound to 127.0.0.1, and stopped by its PID.
# ---------------------------------------------------------------------------------------------

stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for 10 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT PID SECONDS: 0 when the port accepts a connection, 1 on timeout or exit.
wait_port() {
    local port="$1" pid="$2" deadline=$((SECONDS + $3))
    while [ $SECONDS -le $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Servers.  start_<name> sets SRV_PID and SRV_PORT, or sets NOTE[name] and returns 1.
# ---------------------------------------------------------------------------------------------

start_tributary() {
    if [ ! -x "$TRIBUTARY_BIN" ]; then
        NOTE[tributary]="binary $TRIBUTARY_BIN not built (run make build)"; return 1
    fi
    SRV_PORT="$(free_port)"
    mkdir -p "$TMP/tributary-data"
    TRIBUTARY_ACCESS_KEY_ID="$KEY" TRIBUTARY_SECRET_ACCESS_KEY="$SECRET" \
        "$TRIBUTARY_BIN" serve --data "$TMP/tributary-data" --port "$SRV_PORT" \
        --bind 127.0.0.1 --region "$REGION" </dev/null >"$TMP/tributary.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    local bin="$TRIBUTARY_BIN"
    [ "$bin" = "$ROOT/build/tributary" ] && bin=build/tributary
    VERSION[tributary]="$bin $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null), durable, default settings"
    if ! wait_port "$SRV_PORT" "$SRV_PID" 20; then
        why_down tributary; NOTE[tributary]="did not start: $WHY"
        return 1
    fi
}

# npm_peers: 0 when bench/node_modules holds every peer (npm ci once if not), else 1 with
# NPM_REASON set.  The answer is kept for the rest of the run.
npm_peers() {
    [ -n "${NPM_DONE:-}" ] && return "$NPM_DONE"
    NPM_DONE=1
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        NPM_REASON="node/npm not installed (scripts/deps.sh bench installs them)"; return 1
    fi
    local p missing=""
    for p in $PEERS; do [ -d "$BENCH/node_modules/$p" ] || missing=1; done
    if [ ! -f "$BENCH/node_modules/.package-lock.json" ] ||
       [ "$BENCH/package-lock.json" -nt "$BENCH/node_modules/.package-lock.json" ] || [ -n "$missing" ]; then
        log "installing peers under bench/node_modules (npm ci)"
        if ! (cd "$BENCH" && npm ci --no-audit --no-fund --loglevel=error) >"$TMP/npm.log" 2>&1; then
            NPM_REASON="npm ci failed: $(grep -m1 -i 'err' "$TMP/npm.log" | tr '|' '/')"
            return 1
        fi
    fi
    NPM_DONE=0
}

pkg_version() { node -p "require('$BENCH/node_modules/$1/package.json').version" 2>/dev/null; }

# start_nginx: one worker answering every request with NGINX_BODY (type NGINX_TYPE).
start_nginx() {
    if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
        NOTE[nginx]="nginx not installed (scripts/deps.sh bench installs it)"; return 1
    fi
    local ngx; ngx="$(command -v nginx || echo /usr/sbin/nginx)"
    SRV_PORT="$(free_port)"
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
# The ceiling: one nginx worker answering every request with a fixed body.
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    client_body_buffer_size 1m;
    client_max_body_size 16m;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$SRV_PORT;
        default_type $NGINX_TYPE;
        location / { return 200 '$NGINX_BODY'; }
    }
}
EOF
    "$ngx" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' \
        </dev/null >"$TMP/nginx.log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    VERSION[nginx]="$("$ngx" -v 2>&1 | sed 's/.*version: //'), 1 worker, fixed 200 body"
    if ! wait_port "$SRV_PORT" "$SRV_PID" 10; then
        why_down nginx; NOTE[nginx]="did not start: $WHY"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

# machine_rows SERVERS...: the "| machine | |" table's rows (date, commit, CPU, memory, kernel and
# one row per server: what ran, or why it did not).
machine_rows() {
    local commit dirty="" cpu s
    commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [ -n "$(git -C "$ROOT" status --porcelain -- . ':!bench/results' 2>/dev/null)" ] && dirty=" (work tree has uncommitted changes)"
    cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
    echo "| machine | |"
    echo "| --- | --- |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| commit | $commit$dirty |"
    echo "| CPU | ${cpu:-unknown}, nproc $(nproc) |"
    echo "| memory | $(free -g | awk '/^Mem:/ {print $2 " GiB"}') |"
    echo "| kernel | $(uname -r) |"
    echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here) |"
    for s in "$@"; do echo "| $s | ${VERSION[$s]:-not run}${NOTE[$s]:+ -- **unavailable: ${NOTE[$s]}**} |"; done
}
