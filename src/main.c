/*
 * main.c -- start-up, configuration, signals and wiring.
 *
 *   tributary serve [--data DIR] [--port PORT] [--bind ADDR] [--region R] [--threads N]
 *
 * Start-up order: lock the data directory (one server per directory), load or create the
 * credentials, open the engines (recovery runs here and reports torn tails), then listen.
 * Shutdown (SIGTERM/SIGINT) runs it backwards: refuse new requests, let handlers in progress
 * return, close the engines (queued writes complete and are answered), stop HTTP.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef TR_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "api/api.h"
#include "cli/cli.h"
#include "core/fs.h"
#include "core/tlog.h"
#include "fn/esm.h"
#include "fn/fn.h"
#include "fn/native.h"
#include "fn/sandbox.h"
#include "log/slog.h"
#include "net/http.h"
#include "table/tbl.h"

#define DEFAULT_DATA "./tributary-data"
#define DEFAULT_PORT 4566

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* ---- admission gate for shutdown ------------------------------------------------------------ */

static atomic_int gate_active;
static atomic_int gate_closing;

static int gated_handle(void *arg, net_req_t *req) {
    atomic_fetch_add(&gate_active, 1);
    if (atomic_load(&gate_closing)) {
        atomic_fetch_sub(&gate_active, 1);
        api_json_begin(req, "application/x-amz-json-1.1");
        api_json_error(req, 503, "ServiceUnavailable", "The server is shutting down; retry shortly.");
        return NET_DONE;
    }
    int rc = api_handle(arg, req);
    atomic_fetch_sub(&gate_active, 1);
    return rc;
}

static long long wall_ms(void) { return tr_now_ms(); }

/* Native functions' trf_table_* calls: the DynamoDB adapter, in-process (fn/native.h). */
static void native_table_call(void *arg, const char *op, const char *body, size_t len,
                              fn_native_table_done_fn done, void *done_arg) {
    api_dynamodb_call(arg, op, body, len, done, done_arg);
}

/* ... and the answers to those the functions engine could not pass on, in DynamoDB's format. */
static void native_table_error(int code, const char *msg, fn_native_table_done_fn done,
                               void *done_arg) {
    const char *type = "com.amazon.coral.availability#ServiceUnavailable";   /* TR_ECLOSED */
    int status = 503;
    if (code == TR_ESERIALIZATION) {
        type = "com.amazon.coral.service#SerializationException";
        status = 400;
    } else if (code == TR_ENOMEM) {
        type = "InternalServerError";
        status = 500;
    }
    char body[512];
    snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", type, msg);
    done(done_arg, status, body, strlen(body));
}

/* ---- credentials --------------------------------------------------------------------------- */

static void random_chars(char *out, size_t n, const char *alphabet) {
    size_t k = strlen(alphabet);
    unsigned char r[128];
    if (RAND_bytes(r, (int)n) != 1) {
        fprintf(stderr, "tributary: no randomness available for credentials\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) out[i] = alphabet[r[i] % k];
    out[n] = 0;
}

static int ini_value(const char *line, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    while (*line == ' ' || *line == '\t') line++;
    if (strncmp(line, key, kl)) return 0;
    line += kl;
    while (*line == ' ' || *line == '\t') line++;
    if (*line != '=') return 0;
    line++;
    while (*line == ' ' || *line == '\t') line++;
    size_t n = strcspn(line, " \t\r\n");
    if (n >= cap) return 0;
    memcpy(out, line, n);
    out[n] = 0;
    return 1;
}

static int load_credentials(const char *dir, api_key_t *key, tr_err *err) {
    const char *ak = getenv("TRIBUTARY_ACCESS_KEY_ID"), *sk = getenv("TRIBUTARY_SECRET_ACCESS_KEY");
    if (ak && *ak && sk && *sk) {
        if (strlen(ak) >= sizeof key->access_key || strlen(sk) >= sizeof key->secret)
            return tr_err_set(err, TR_EINVAL, "TRIBUTARY_ACCESS_KEY_ID / TRIBUTARY_SECRET_ACCESS_KEY are too long (max 127 characters)");
        snprintf(key->access_key, sizeof key->access_key, "%s", ak);
        snprintf(key->secret, sizeof key->secret, "%s", sk);
        tr_info("auth", "root key %s from TRIBUTARY_ACCESS_KEY_ID", key->access_key);
        return 0;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/credentials", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[512];
        key->access_key[0] = key->secret[0] = 0;
        while (fgets(line, sizeof line, f)) {
            ini_value(line, "aws_access_key_id", key->access_key, sizeof key->access_key);
            ini_value(line, "aws_secret_access_key", key->secret, sizeof key->secret);
        }
        fclose(f);
        if (!key->access_key[0] || !key->secret[0])
            return tr_err_set(err, TR_ECORRUPT, "%s has no aws_access_key_id / aws_secret_access_key; fix it or delete it to generate a new pair", path);
        tr_info("auth", "root key %s from %s", key->access_key, path);
        return 0;
    }
    memcpy(key->access_key, "AKIA", 4);
    random_chars(key->access_key + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    random_chars(key->secret, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return tr_err_set(err, TR_EIO, "cannot create %s: %s; check the data directory's permissions", tmp, strerror(errno));
    char text[512];
    int n = snprintf(text, sizeof text, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
                     key->access_key, key->secret);
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        close(fd);
        return tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rename(tmp, path) != 0) return tr_err_set(err, TR_EIO, "cannot rename %s: %s", tmp, strerror(errno));
    if (tr_fsync_parent(path) != 0)
        return tr_err_set(err, TR_EIO, "cannot sync the directory of %s: %s", path, strerror(errno));
    tr_info("auth", "generated a root key pair in %s (use AWS_SHARED_CREDENTIALS_FILE=%s)", path, path);
    return 0;
}

/* ---- serve --------------------------------------------------------------------------------- */

static void serve_usage(FILE *o) {
    fprintf(o,
            "usage: tributary serve [options]\n"
            "  Run the server: Kinesis Data Streams API (JSON 1.1) with SigV4 on one port.\n\n"
            "  --data DIR       data directory (default %s)\n"
            "  --port PORT      TCP port (default %d; 0 picks a free one)\n"
            "  --bind ADDR      IPv4 address to listen on (default 127.0.0.1)\n"
            "  --region REGION  region named in ARNs (default us-east-1)\n"
            "  --threads N      network threads (default: 4 per CPU)\n"
            "  --max-connections N  open client connections (default 126 per network thread;\n"
            "                   more than that adds threads)\n"
            "  --max-connections-per-ip N  connections one client address may hold (default 7/8\n"
            "                   of --max-connections; the rest is kept for other addresses)\n"
            "  --header-timeout S  seconds a client has to send a request's headers, and an\n"
            "                   HTTP/2 connection to authenticate a request (10)\n"
            "  --body-timeout S    seconds for a request body, or for the client to take a\n"
            "                   response, plus 1 s per 64 KiB (30)\n"
            "  --iterator-ttl MS  shard iterator lifetime (default 300000, as AWS; for tests)\n"
            "  --max-pending-mb N   queued, not yet durable put data before throttling (256)\n"
            "  --max-inflight-mb N  request memory (bodies, decoded records, responses, HTTP/2\n"
            "                   header blocks) held before throttling (512)\n"
            "  --lambda-concurrency N  concurrent Lambda invocations, all functions (64)\n"
            "  --lambda-retry-ms MS    delay before retrying a failed Event invoke (60000)\n"
            "  --lambda-read-dir DIR   a directory every function may read and execute, beside\n"
            "                   its package and the system's (repeatable; see README)\n"
            "  --lambda-write-dir DIR  a directory every function may read and write (repeatable)\n"
            "  --esm-age-unit-ms MS  length of a MaximumRecordAgeInSeconds second (1000; tests)\n"
            "  --test-commit-delay-ms MS  sleep before each stream commit, as a slow disk (tests)\n"
            "  --test-enospc-shard N  writes to shard index N of every stream fail with ENOSPC,\n"
            "                   as on a full disk (tests)\n"
            "  --test-segment-kb N  roll stream segments at N KiB instead of 64 MiB, so tests see\n"
            "                   many segments (tests)\n"
            "  -h, --help       this text\n\n"
            "Credentials: TRIBUTARY_ACCESS_KEY_ID / TRIBUTARY_SECRET_ACCESS_KEY if set, else\n"
            "DIR/credentials (generated on first start; AWS shared-credentials format).\n"
            "TRIBUTARY_LOG=debug|info|warn|error sets the log threshold.\n",
            DEFAULT_DATA, DEFAULT_PORT);
}

static int cmd_serve(int argc, char **argv) {
    const char *data = DEFAULT_DATA, *bind = "127.0.0.1", *region = "us-east-1";
    int port = DEFAULT_PORT, threads = 0;
    long long max_conns = 0, max_conns_ip = 0, header_timeout = 0, body_timeout = 0;
    long long iter_ttl = 300000, pending_mb = 256, inflight_mb = 512;
    long long fn_concurrency = 64, fn_retry_ms = 60000;
    long long esm_age_unit_ms = 1000, commit_delay_ms = 0, enospc_shard = -1;
    long long segment_kb = 0;
    static const struct option lo[] = {
        {"data", required_argument, 0, 'd'}, {"port", required_argument, 0, 'p'},
        {"bind", required_argument, 0, 'b'}, {"region", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"iterator-ttl", required_argument, 0, 'I'}, {"max-pending-mb", required_argument, 0, 'P'},
        {"max-inflight-mb", required_argument, 0, 'F'},
        {"max-connections", required_argument, 0, 'C'},
        {"max-connections-per-ip", required_argument, 0, 'X'},
        {"header-timeout", required_argument, 0, 'H'}, {"body-timeout", required_argument, 0, 'B'},
        {"lambda-concurrency", required_argument, 0, 'L'},
        {"lambda-retry-ms", required_argument, 0, 'R'},
        {"esm-age-unit-ms", required_argument, 0, 'A'},
        {"lambda-read-dir", required_argument, 0, 'Y'},
        {"lambda-write-dir", required_argument, 0, 'W'},
        {"test-commit-delay-ms", required_argument, 0, 'D'},
        {"test-enospc-shard", required_argument, 0, 'E'},
        {"test-segment-kb", required_argument, 0, 'S'}, {0, 0, 0, 0}};
    enum { MAX_FN_DIRS = 16 };
    const char *fn_read[MAX_FN_DIRS], *fn_write[MAX_FN_DIRS];
    size_t n_fn_read = 0, n_fn_write = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'd': data = optarg; break;
        case 'Y':
        case 'W':
            if ((ch == 'Y' ? n_fn_read : n_fn_write) == MAX_FN_DIRS) {
                fprintf(stderr, "tributary serve: at most %d --lambda-%s-dir options\n",
                        MAX_FN_DIRS, ch == 'Y' ? "read" : "write");
                return 2;
            }
            if (ch == 'Y') fn_read[n_fn_read++] = optarg;
            else fn_write[n_fn_write++] = optarg;
            break;
        case 'b': bind = optarg; break;
        case 'r': region = optarg; break;
        case 'p':
            port = (int)strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "tributary serve: --port %s is not a port number (0-65535)\n", optarg);
                return 2;
            }
            break;
        case 't':
            threads = (int)strtol(optarg, &end, 10);
            if (*end || threads < 1 || threads > 256) {
                fprintf(stderr, "tributary serve: --threads %s must be 1-256\n", optarg);
                return 2;
            }
            break;
        case 'I':
            iter_ttl = strtoll(optarg, &end, 10);
            if (*end || iter_ttl < 1 || iter_ttl > 86400000) {
                fprintf(stderr, "tributary serve: --iterator-ttl %s must be 1-86400000 ms\n", optarg);
                return 2;
            }
            break;
        case 'P':
        case 'F': {
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > 1024 * 1024) {
                fprintf(stderr, "tributary serve: --%s %s must be 1-1048576 (MiB)\n",
                        ch == 'P' ? "max-pending-mb" : "max-inflight-mb", optarg);
                return 2;
            }
            if (ch == 'P') pending_mb = v;
            else inflight_mb = v;
            break;
        }
        case 'L':
        case 'R': {
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1 || v > (ch == 'L' ? 100000 : 86400000)) {
                fprintf(stderr, "tributary serve: --%s %s is out of range\n",
                        ch == 'L' ? "lambda-concurrency" : "lambda-retry-ms", optarg);
                return 2;
            }
            if (ch == 'L') fn_concurrency = v;
            else fn_retry_ms = v;
            break;
        }
        case 'A':
            esm_age_unit_ms = strtoll(optarg, &end, 10);
            if (*end || esm_age_unit_ms < 1 || esm_age_unit_ms > 1000) {
                fprintf(stderr, "tributary serve: --esm-age-unit-ms %s must be 1-1000\n", optarg);
                return 2;
            }
            break;
        case 'C':
            max_conns = strtoll(optarg, &end, 10);
            if (*end || max_conns < 1 || max_conns > 32256) {
                fprintf(stderr, "tributary serve: --max-connections %s must be 1-32256\n",
                        optarg);
                return 2;
            }
            break;
        case 'X':
        case 'H':
        case 'B': {
            long long v = strtoll(optarg, &end, 10);
            long long max = ch == 'X' ? 32256 : 3600;
            if (*end || v < 1 || v > max) {
                fprintf(stderr, "tributary serve: --%s %s must be 1-%lld\n",
                        ch == 'X' ? "max-connections-per-ip"
                        : ch == 'H' ? "header-timeout" : "body-timeout", optarg, max);
                return 2;
            }
            if (ch == 'X') max_conns_ip = v;
            else if (ch == 'H') header_timeout = v;
            else body_timeout = v;
            break;
        }
        case 'D':
            commit_delay_ms = strtoll(optarg, &end, 10);
            if (*end || commit_delay_ms < 0 || commit_delay_ms > 10000) {
                fprintf(stderr, "tributary serve: --test-commit-delay-ms %s must be 0-10000\n",
                        optarg);
                return 2;
            }
            break;
        case 'E':
            enospc_shard = strtoll(optarg, &end, 10);
            if (*end || enospc_shard < 0 || enospc_shard > 100000) {
                fprintf(stderr, "tributary serve: --test-enospc-shard %s must be 0-100000\n",
                        optarg);
                return 2;
            }
            break;
        case 'S':
            segment_kb = strtoll(optarg, &end, 10);
            if (*end || segment_kb < 1 || segment_kb > 1048576) {
                fprintf(stderr, "tributary serve: --test-segment-kb %s must be 1-1048576\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tributary serve: unexpected argument \"%s\"\n", argv[optind]);
        serve_usage(stderr);
        return 2;
    }

    /* Connections and stream segments are files: use the hard open-file limit, not the
     * 1024 a login shell usually starts with. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        rlim_t want = nofile.rlim_max > 1048576 ? 1048576 : nofile.rlim_max;
        if (want > nofile.rlim_cur) {
            nofile.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
                tr_warn("main", "cannot raise the open-file limit: %s", strerror(errno));
        }
    }
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        tr_error("main", "cannot create data directory %s: %s", data, strerror(errno));
        return 1;
    }
    /* From here on the data directory is absolute: function processes run in their package
     * directory, and a path relative to the server's cwd names nothing there. */
    static char data_abs[PATH_MAX];
    if (!realpath(data, data_abs)) {
        tr_error("main", "cannot resolve the data directory %s: %s", data, strerror(errno));
        return 1;
    }
    data = data_abs;
    {
        char *rd[MAX_FN_DIRS], *wd[MAX_FN_DIRS];
        size_t nr = 0, nw = 0;
        int bad = 0;
        for (size_t i = 0; i < n_fn_read + n_fn_write && !bad; i++) {
            const char *d = i < n_fn_read ? fn_read[i] : fn_write[i - n_fn_read];
            char *a = realpath(d, NULL);
            if (!a) {
                tr_error("main", "--lambda-%s-dir %s: %s", i < n_fn_read ? "read" : "write", d,
                         strerror(errno));
                bad = 1;
            } else if (i < n_fn_read) rd[nr++] = a;
            else wd[nw++] = a;
        }
        tr_err derr;
        tr_err_clear(&derr);
        if (!bad && fn_sandbox_set_dirs((const char *const *)rd, nr, (const char *const *)wd, nw,
                                        &derr)) {
            tr_error("main", "%s", derr.msg);
            bad = 1;
        }
        for (size_t i = 0; i < nr; i++) free(rd[i]);
        for (size_t i = 0; i < nw; i++) free(wd[i]);
        if (bad) return 1;
    }
    {
        tr_err perr;
        tr_err_clear(&perr);
        if (fn_sandbox_set_private(data, &perr)) {
            tr_error("main", "%s", perr.msg);
            return 1;
        }
    }
    const char *why_unconfined = NULL;
    int ll_abi = fn_sandbox_abi(&why_unconfined);
    if (ll_abi)
        tr_info("main", "functions run confined (Landlock ABI %d): they read their package and the "
                "system's directories, write only their own $TMPDIR, and cannot reach %s", ll_abi,
                data);
    else
        tr_warn("main", "functions run UNCONFINED: %s.  A function can read and write whatever "
                "this server's user can, including %s (credentials, tables, other functions' "
                "code); run only code you trust, or run the server on a kernel with Landlock",
                why_unconfined, data);
    char lockpath[PATH_MAX + 32];
    snprintf(lockpath, sizeof lockpath, "%s/LOCK", data);
    int lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        tr_error("main", "data directory %s is in use by another tributary process (%s); stop it "
                 "or pass another --data", data, lockfd < 0 ? strerror(errno) : "locked");
        return 1;
    }
    /* functions' scratch directories (their /tmp): on the data disk, a crash's leftovers
     * removed now that the directory is ours */
    {
        char scratch_root[PATH_MAX + 16];
        tr_err serr;
        tr_err_clear(&serr);
        snprintf(scratch_root, sizeof scratch_root, "%s/fn-tmp", data);
        if (fn_sandbox_set_scratch_root(scratch_root, &serr)) {
            tr_error("main", "%s", serr.msg);
            return 1;
        }
    }

    tr_err err;
    tr_err_clear(&err);
    api_key_t key;
    if (load_credentials(data, &key, &err)) {
        tr_error("main", "%s", err.msg);
        return 1;
    }
    api_ctx_t ctx = {.region = region, .keys = &key, .n_keys = 1, .now_ms = wall_ms,
                     .iter_ttl_ms = iter_ttl};
    if (api_iter_key_load(data, ctx.iter_key, &err)) {
        tr_error("main", "%s", err.msg);
        return 1;
    }
    slog_opts_t so;
    memset(&so, 0, sizeof so);
    so.max_pending_bytes = (size_t)pending_mb << 20;
    so.commit_delay_ms = (int)commit_delay_ms;
    if (commit_delay_ms)
        tr_warn("main", "--test-commit-delay-ms %lld: every stream commit waits %lld ms (testing "
                        "only; never in production)", commit_delay_ms, commit_delay_ms);
    so.segment_bytes = (uint64_t)segment_kb << 10;
    if (enospc_shard >= 0) {
        so.test_enospc_shard = (uint32_t)enospc_shard + 1;
        tr_warn("main", "--test-enospc-shard %lld: every write to shard %lld of every stream fails "
                        "(testing only; never in production)", enospc_shard, enospc_shard);
    }
    long long t0 = tr_mono_ns();
    if (slog_open(data, &so, &ctx.slog, &err)) {
        tr_error("main", "cannot open the stream engine in %s: %s", data, err.msg);
        return 1;
    }
    tr_info("main", "stream engine open in %s (%.1f ms)", data, (tr_mono_ns() - t0) / 1e6);
    char tbldir[PATH_MAX + 32];
    snprintf(tbldir, sizeof tbldir, "%s/tables", data);
    tbl_opts_t to;
    memset(&to, 0, sizeof to);
    t0 = tr_mono_ns();
    if (tbl_open(tbldir, &to, &ctx.tbl, &err)) {
        tr_error("main", "cannot open the table engine in %s: %s", tbldir, err.msg);
        slog_close(ctx.slog);
        return 1;
    }
    tr_info("main", "table engine open in %s (%.1f ms)", tbldir, (tr_mono_ns() - t0) / 1e6);

    fn_opts_t fo;
    memset(&fo, 0, sizeof fo);
    fo.region = region;
    fo.account_concurrency = (uint32_t)fn_concurrency;
    fo.async_retry_ms = fn_retry_ms;
    t0 = tr_mono_ns();
    if (fn_open(data, &fo, &ctx.fn, &err)) {
        tr_error("main", "cannot open the functions engine in %s/functions: %s", data, err.msg);
        tbl_close(ctx.tbl);
        slog_close(ctx.slog);
        return 1;
    }
    tr_info("main", "functions engine open (%.1f ms)", (tr_mono_ns() - t0) / 1e6);
    /* plug-in runtimes register here (fn_runtime_register), before fn_start */
    /* The native C runtime (tributary.c1): .so handlers in supervised host processes. */
    fn_native_t *native = NULL;
    fn_native_opts_t nto = {.region = region, .table_error = native_table_error};
    if (fn_native_create(&nto, &native, &err) ||
        fn_runtime_register(ctx.fn, fn_native_runtime(), native, &err)) {
        tr_error("main", "cannot start the native function runtime: %s", err.msg);
        fn_close(ctx.fn);
        fn_native_destroy(native);
        tbl_close(ctx.tbl);
        slog_close(ctx.slog);
        return 1;
    }
    fn_native_set_table_handler(native, native_table_call, &ctx);
    /* Event-source mappings: Kinesis -> Lambda pollers, woken by the stream's append hook. */
    esm_opts_t eo = {.region = region, .age_unit_ms = esm_age_unit_ms};
    if (esm_open(data, ctx.slog, ctx.fn, &eo, &ctx.esm, &err)) {
        tr_error("main", "cannot open the event source mappings: %s", err.msg);
        fn_close(ctx.fn);
        fn_native_destroy(native);
        tbl_close(ctx.tbl);
        slog_close(ctx.slog);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    net_opts_t no = {.bind = bind, .port = port, .threads = threads, .handler = gated_handle,
                     .handler_arg = &ctx, .max_inflight_bytes = (size_t)inflight_mb << 20,
                     .max_connections = (unsigned)max_conns, .precheck = api_precheck,
                     .max_conns_per_ip = (unsigned)max_conns_ip,
                     .header_timeout_s = (unsigned)header_timeout,
                     .body_timeout_s = (unsigned)body_timeout};
    /* The Lambda Runtime API: a listener per instance on 127.0.0.1, ephemeral port, no SigV4
     * (as on AWS; see api/runtime.c). */
    static fn_rt_listener_t rtl;
    rtl.open = api_runtime_listener_open;
    rtl.close = api_runtime_listener_close;
    rtl.arg = &ctx;
    fn_set_rt_listener(ctx.fn, &rtl);
    if (fn_start(ctx.fn, NULL, &err)) {
        tr_error("main", "cannot start the functions engine: %s", err.msg);
        esm_close(ctx.esm);
        fn_close(ctx.fn);
        fn_native_destroy(native);
        tbl_close(ctx.tbl);
        slog_close(ctx.slog);
        return 1;
    }
    /* Event-source mappings start after the functions engine (they invoke through it). */
    if (esm_start(ctx.esm, &err)) tr_error("main", "event source mappings: %s", err.msg);
    net_server_t *srv;
    if (net_server_start(&no, &srv, &err)) {
        tr_error("main", "%s", err.msg);
        esm_close(ctx.esm);
        fn_close(ctx.fn);
        fn_native_destroy(native);
        tbl_close(ctx.tbl);
        slog_close(ctx.slog);
        return 1;
    }
    char alloc[64] = "the C library's malloc";
#ifdef TR_WITH_JEMALLOC
    const char *jv = NULL;
    size_t jvlen = sizeof jv;
    if (mallctl("version", &jv, &jvlen, NULL, 0) == 0 && jv)
        snprintf(alloc, sizeof alloc, "jemalloc %.*s", (int)strcspn(jv, "-"), jv);
#endif
    tr_info("main", "listening on %s:%d (region %s, allocator %s)", bind, net_server_port(srv),
            region, alloc);

    while (!stop_requested) pause();

    tr_info("main", "shutting down: finishing requests in progress");
    atomic_store(&gate_closing, 1);
    while (atomic_load(&gate_active) > 0) usleep(1000);
    esm_close(ctx.esm);     /* pollers stop (invocations in flight finish), checkpoints flushed */
    ctx.esm = NULL;
    fn_shutdown(ctx.fn);    /* instances and their Runtime API listeners stopped; waiting
                               invokes answered */
    fn_native_set_table_handler(native, NULL, NULL);   /* functions' table calls: 503 */
    tbl_close(ctx.tbl);     /* queued table writes commit and resume their connections */
    slog_close(ctx.slog);   /* queued puts complete and resume their connections */
    usleep(50 * 1000);      /* let the network threads send those answers */
    net_server_stop(srv);
    fn_close(ctx.fn);
    fn_native_destroy(native);
    close(lockfd);
    tr_info("main", "stopped");
    return 0;
}

/* ---- entry --------------------------------------------------------------------------------- */

static void usage(FILE *o) {
    fprintf(o,
            "usage: tributary <command> [options]\n\n"
            "commands:\n"
            "  serve     run the server (Kinesis API on one port, SigV4)\n"
            "  logs      print a function's log: tributary logs FUNCTION [--follow]\n"
            "  help      this text\n\n"
            "`tributary <command> --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(argv[1], "logs")) return cli_logs_main(argc - 1, argv + 1);
    /* Hidden: the native runtime's supervised host process (src/fn/native_host.c). */
    if (!strcmp(argv[1], FN_NATIVE_HOST_CMD)) return fn_native_host_main(argc, argv);
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tributary: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
