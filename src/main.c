/* SPDX-License-Identifier: Apache-2.0
 *
 * main.c -- start-up, configuration, signals and wiring.
 *
 *   tributary serve [options]     (SERVE_OPTS below; `tributary serve --help` lists them)
 *   tributary logs FUNCTION ...   (src/cli/logs.c)
 *
 * Start-up order: lock the data directory (one server per directory), load or create the
 * credentials, open the engines (recovery runs here and reports torn tails), then listen.
 * Shutdown (SIGTERM/SIGINT) runs it backwards from one exit path, which start-up failures take
 * too: refuse new requests and wait until no handler is running, close the engines (queued
 * writes complete and resume their requests), wait for those answers to be sent
 * (net_server_drain), stop HTTP.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
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
#include "core/clock.h"
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
#define DEFAULT_PORT "4566"

/* SIGTERM / SIGINT post it (sem_post is async-signal-safe); cmd_serve waits on it. */
static sem_t stop_sem;
static void on_signal(int sig) {
    (void)sig;
    sem_post(&stop_sem);
}

/* ---- admission gate for shutdown ------------------------------------------------------------ */

/* Every request passes the gate on its way to the adapters.  gate_close refuses new ones (503)
 * and returns once no handler is running any more, so the engines can close under no handler;
 * deferred requests are not handlers running (the engines' close answers them). */
static struct {
    atomic_int active;   /* handlers running */
    atomic_int closing;
    pthread_mutex_t mu;  /* with cv: gate_close sleeps until active is 0 */
    pthread_cond_t cv;
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* gate_close sets closing before it reads active, gate_leave reads closing after its decrement
 * (both sequentially consistent): either gate_close sees the decrement or gate_leave sees it
 * waiting and wakes it under mu, which gate_close holds from its check until it sleeps. */
static void gate_leave(void) {
    if (atomic_fetch_sub(&gate.active, 1) == 1 && atomic_load(&gate.closing)) {
        pthread_mutex_lock(&gate.mu);
        pthread_cond_broadcast(&gate.cv);
        pthread_mutex_unlock(&gate.mu);
    }
}

static void gate_close(void) {
    atomic_store(&gate.closing, 1);
    pthread_mutex_lock(&gate.mu);
    while (atomic_load(&gate.active) > 0) pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static int gated_handle(void *arg, net_req_t *req) {
    atomic_fetch_add(&gate.active, 1);
    if (atomic_load(&gate.closing)) {
        gate_leave();
        api_json_begin(req, "application/x-amz-json-1.1");
        api_json_error(req, 503, "ServiceUnavailable",
                       "The server is shutting down; retry shortly.");
        return NET_DONE;
    }
    int rc = api_handle(arg, req);
    gate_leave();
    return rc;
}

/* Native functions' trf_table_* calls: the DynamoDB adapter, in-process (fn/native.h). */
static void native_table_call(void *arg, const char *op, const char *body, size_t len,
                              fn_native_table_done_fn done, void *done_arg, fn_native_post_fn post,
                              void *post_arg) {
    api_dynamodb_call_post(arg, op, body, len, done, done_arg, post, post_arg);
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

/* n (at most 128) random characters of alphabet into out, NUL-terminated.  TR_EIO when the
 * system has no randomness to give. */
static int random_chars(char *out, size_t n, const char *alphabet, tr_err *err) {
    size_t k = strlen(alphabet);
    unsigned char r[128];
    if (n > sizeof r || RAND_bytes(r, (int)n) != 1)
        return tr_err_set(err, TR_EIO,
                          "no randomness available for credentials; set "
                          "TRIBUTARY_ACCESS_KEY_ID / TRIBUTARY_SECRET_ACCESS_KEY instead");
    for (size_t i = 0; i < n; i++) out[i] = alphabet[r[i] % k];
    out[n] = 0;
    return 0;
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
            return tr_err_set(
                err, TR_EINVAL,
                "TRIBUTARY_ACCESS_KEY_ID / TRIBUTARY_SECRET_ACCESS_KEY are too long (max 127 characters)");
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
            return tr_err_set(
                err, TR_ECORRUPT,
                "%s has no aws_access_key_id / aws_secret_access_key; fix it or delete it to generate a new pair",
                path);
        tr_info("auth", "root key %s from %s", key->access_key, path);
        return 0;
    }
    memcpy(key->access_key, "AKIA", 4);
    if (random_chars(key->access_key + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", err) ||
        random_chars(key->secret, 40,
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", err))
        return err->code;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return tr_err_set(err, TR_EIO,
                          "cannot create %s: %s; check the data directory's permissions", tmp,
                          strerror(errno));
    char text[512];
    int n = snprintf(text, sizeof text,
                     "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
                     key->access_key, key->secret);
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        close(fd);
        return tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return tr_err_set(err, TR_EIO, "cannot rename %s: %s", tmp, strerror(errno));
    if (tr_fsync_parent(path) != 0)
        return tr_err_set(err, TR_EIO, "cannot sync the directory of %s: %s", path,
                          strerror(errno));
    tr_info("auth", "generated a root key pair in %s (use AWS_SHARED_CREDENTIALS_FILE=%s)", path,
            path);
    return 0;
}

/* ---- serve: options ----------------------------------------------------------------------- */

#define MAX_FN_DIRS 16

/* What `serve` is told on its command line.  serve_parse fills it from SERVE_OPTS. */
typedef struct serve_cfg {
    const char *data, *bind, *region;
    long long port, threads, max_conns, max_conns_ip, header_timeout, body_timeout;
    long long iter_ttl, pending_mb, inflight_mb, fn_concurrency, fn_retry_ms, esm_age_unit_ms;
    long long commit_delay_ms, enospc_shard, segment_kb;
    const char *fn_read[MAX_FN_DIRS], *fn_write[MAX_FN_DIRS];
    size_t n_fn_read, n_fn_write;
} serve_cfg_t;

enum { OPT_STR, OPT_INT, OPT_DIR, OPT_HELP };

/* One option of `serve`: getopt_long's table, the usage text and the defaults are all made from
 * SERVE_OPTS, so they cannot disagree. */
typedef struct serve_opt {
    const char *name;     /* --name */
    const char *arg;      /* its argument in the usage text; NULL: takes none */
    int kind;             /* OPT_*: a string, an integer in [min, max], a repeatable directory */
    size_t field;         /* offsetof the serve_cfg_t member: const char * (OPT_STR),
                             long long (OPT_INT), const char *[MAX_FN_DIRS] (OPT_DIR) */
    size_t count;         /* OPT_DIR: offsetof its size_t count */
    long long min, max;
    const char *def;      /* default value (OPT_INT: parsed); NULL: none */
    const char *shown;    /* the default as the usage text says it, when not def; "": say none */
    const char *bad;      /* OPT_INT: what follows "--name VALUE " when out of range; NULL:
                             "must be MIN-MAX" */
    const char *help;
} serve_opt_t;

#define CFG(m) offsetof(serve_cfg_t, m)
static const serve_opt_t SERVE_OPTS[] = {
    {"data", "DIR", OPT_STR, CFG(data), 0, 0, 0, DEFAULT_DATA, NULL, NULL, "data directory"},
    {"port", "PORT", OPT_INT, CFG(port), 0, 0, 65535, DEFAULT_PORT, NULL,
     "is not a port number (0-65535)", "TCP port; 0 picks a free one"},
    {"bind", "ADDR", OPT_STR, CFG(bind), 0, 0, 0, "127.0.0.1", NULL, NULL,
     "IPv4 address to listen on"},
    {"region", "REGION", OPT_STR, CFG(region), 0, 0, 0, "us-east-1", NULL, NULL,
     "region named in ARNs"},
    {"threads", "N", OPT_INT, CFG(threads), 0, 1, 256, "0", "4 per CPU", NULL, "network threads"},
    {"max-connections", "N", OPT_INT, CFG(max_conns), 0, 1, 32256, "0", "126 per network thread",
     NULL, "open client connections; more than the default adds network threads"},
    {"max-connections-per-ip", "N", OPT_INT, CFG(max_conns_ip), 0, 1, 32256, "0",
     "7/8 of --max-connections", NULL,
     "connections one client address may hold; the rest is kept for other addresses"},
    {"header-timeout", "S", OPT_INT, CFG(header_timeout), 0, 1, 3600, "10", NULL, NULL,
     "seconds a client has to send a request's headers, and an HTTP/2 connection to "
     "authenticate a request"},
    {"body-timeout", "S", OPT_INT, CFG(body_timeout), 0, 1, 3600, "30", NULL, NULL,
     "seconds for a request body, or for the client to take a response, plus 1 s per 64 KiB"},
    {"iterator-ttl", "MS", OPT_INT, CFG(iter_ttl), 0, 1, 86400000, "300000", "300000, as AWS",
     "must be 1-86400000 ms", "shard iterator lifetime in ms; shorter for tests"},
    {"max-pending-mb", "N", OPT_INT, CFG(pending_mb), 0, 1, 1048576, "256", NULL,
     "must be 1-1048576 (MiB)", "MiB of queued, not yet durable writes before throttling"},
    {"max-inflight-mb", "N", OPT_INT, CFG(inflight_mb), 0, 1, 1048576, "512", NULL,
     "must be 1-1048576 (MiB)",
     "MiB of request memory (bodies, decoded records, responses, HTTP/2 header blocks) held "
     "before throttling"},
    {"lambda-concurrency", "N", OPT_INT, CFG(fn_concurrency), 0, 1, 100000, "64", NULL,
     "is out of range", "concurrent Lambda invocations, all functions"},
    {"lambda-retry-ms", "MS", OPT_INT, CFG(fn_retry_ms), 0, 1, 86400000, "60000", NULL,
     "is out of range", "delay before retrying a failed Event invoke"},
    {"lambda-read-dir", "DIR", OPT_DIR, CFG(fn_read), CFG(n_fn_read), 0, 0, NULL, NULL, NULL,
     "a directory every function may read and execute, beside its package and the system's "
     "(repeatable; see README)"},
    {"lambda-write-dir", "DIR", OPT_DIR, CFG(fn_write), CFG(n_fn_write), 0, 0, NULL, NULL, NULL,
     "a directory every function may read and write (repeatable)"},
    {"esm-age-unit-ms", "MS", OPT_INT, CFG(esm_age_unit_ms), 0, 1, 1000, "1000", NULL, NULL,
     "length of a MaximumRecordAgeInSeconds second (tests)"},
    {"test-commit-delay-ms", "MS", OPT_INT, CFG(commit_delay_ms), 0, 0, 10000, "0", "", NULL,
     "sleep before each stream commit, as a slow disk (tests)"},
    {"test-enospc-shard", "N", OPT_INT, CFG(enospc_shard), 0, 0, 100000, "-1", "", NULL,
     "writes to shard index N of every stream fail with ENOSPC, as on a full disk (tests)"},
    {"test-segment-kb", "N", OPT_INT, CFG(segment_kb), 0, 1, 1048576, "0", "", NULL,
     "roll stream segments at N KiB instead of 64 MiB, so tests see many segments (tests)"},
    {"help", NULL, OPT_HELP, 0, 0, 0, 0, NULL, NULL, NULL, "this text (also -h)"},
};
#undef CFG
#define N_SERVE_OPTS (sizeof SERVE_OPTS / sizeof SERVE_OPTS[0])

/* Print text from column `col` on, wrapped at USAGE_WIDTH; `at` is the column the cursor is in. */
#define USAGE_WIDTH 79
static void usage_wrap(FILE *o, const char *text, int col, int at) {
    while (*text) {
        size_t word = strcspn(text, " ");
        if (at > col && at + 1 + (int)word > USAGE_WIDTH) {
            fprintf(o, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', o);
            at++;
        }
        fprintf(o, "%.*s", (int)word, text);
        at += (int)word;
        text += word;
        while (*text == ' ') text++;
    }
    fputc('\n', o);
}

static void serve_usage(FILE *o) {
    enum { COL = 30 };
    fprintf(o,
            "usage: tributary serve [options]\n"
            "  Run the server: the Kinesis Data Streams, DynamoDB and Lambda APIs, SigV4-signed,\n"
            "  on one port (HTTP/1.1 and cleartext HTTP/2).\n\n");
    for (size_t i = 0; i < N_SERVE_OPTS; i++) {
        const serve_opt_t *op = &SERVE_OPTS[i];
        char left[64], help[512];
        int n = snprintf(left, sizeof left, "  --%s%s%s", op->name, op->arg ? " " : "",
                         op->arg ? op->arg : "");
        const char *def = op->shown ? op->shown : op->def;
        if (def && *def) snprintf(help, sizeof help, "%s (default %s)", op->help, def);
        else snprintf(help, sizeof help, "%s", op->help);
        fputs(left, o);
        if (n + 2 > COL) {
            fprintf(o, "\n%*s", COL, "");
            n = COL;
        } else {
            fprintf(o, "%*s", COL - n, "");
            n = COL;
        }
        usage_wrap(o, help, COL, n);
    }
    fprintf(o, "\nCredentials: TRIBUTARY_ACCESS_KEY_ID / TRIBUTARY_SECRET_ACCESS_KEY if set, else\n"
               "DIR/credentials (generated on first start; AWS shared-credentials format).\n"
               "TRIBUTARY_LOG=debug|info|warn|error sets the log threshold.\n");
}

/* Parse serve's command line into cfg (defaults first).  Returns -1 to go on serving, else the
 * exit code: 0 after --help, 2 on a usage error (said on stderr). */
static int serve_parse(int argc, char **argv, serve_cfg_t *cfg) {
    struct option lo[N_SERVE_OPTS + 1];
    memset(cfg, 0, sizeof *cfg);
    memset(lo, 0, sizeof lo);
    for (size_t i = 0; i < N_SERVE_OPTS; i++) {
        const serve_opt_t *op = &SERVE_OPTS[i];
        lo[i] = (struct option){op->name, op->arg ? required_argument : no_argument, NULL,
                                op->kind == OPT_HELP ? 'h' : 256 + (int)i};
        char *f = (char *)cfg + op->field;
        if (op->kind == OPT_STR) *(const char **)f = op->def;
        else if (op->kind == OPT_INT) *(long long *)f = strtoll(op->def, NULL, 10);
    }
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'h') {
            serve_usage(stdout);
            return 0;
        }
        if (ch < 256 || ch >= 256 + (int)N_SERVE_OPTS) {
            serve_usage(stderr);
            return 2;
        }
        const serve_opt_t *op = &SERVE_OPTS[ch - 256];
        char *f = (char *)cfg + op->field;
        if (op->kind == OPT_STR) {
            *(const char **)f = optarg;
        } else if (op->kind == OPT_DIR) {
            size_t *n = (size_t *)((char *)cfg + op->count);
            if (*n == MAX_FN_DIRS) {
                fprintf(stderr, "tributary serve: at most %d --%s options\n", MAX_FN_DIRS,
                        op->name);
                return 2;
            }
            ((const char **)f)[(*n)++] = optarg;
        } else {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < op->min || v > op->max) {
                if (op->bad)
                    fprintf(stderr, "tributary serve: --%s %s %s\n", op->name, optarg, op->bad);
                else
                    fprintf(stderr, "tributary serve: --%s %s must be %lld-%lld\n", op->name,
                            optarg, op->min, op->max);
                return 2;
            }
            *(long long *)f = v;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tributary serve: unexpected argument \"%s\"\n", argv[optind]);
        serve_usage(stderr);
        return 2;
    }
    return -1;
}

/* ---- serve: start-up steps ------------------------------------------------------------------ */

/* Connections and stream segments are files: use the hard open-file limit, not the 1024 a login
 * shell usually starts with. */
static void raise_nofile(void) {
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        rlim_t want = nofile.rlim_max > 1048576 ? 1048576 : nofile.rlim_max;
        if (want > nofile.rlim_cur) {
            nofile.rlim_cur = want;
            if (setrlimit(RLIMIT_NOFILE, &nofile) != 0)
                tr_warn("main", "cannot raise the open-file limit: %s", strerror(errno));
        }
    }
}

/* Create cfg->data if missing and make it absolute (in abs, PATH_MAX bytes): function processes
 * run in their package directory, and a path relative to the server's cwd names nothing there.
 * -1 after logging why. */
static int data_dir_open(const char *data, char *abs) {
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        tr_error("main", "cannot create data directory %s: %s", data, strerror(errno));
        return -1;
    }
    if (!realpath(data, abs)) {
        tr_error("main", "cannot resolve the data directory %s: %s", data, strerror(errno));
        return -1;
    }
    return 0;
}

/* The functions' sandbox: the --lambda-*-dir directories (resolved), the private /tmp beside
 * data, and a log line saying how confined functions are.  -1 after logging why. */
static int sandbox_setup(const serve_cfg_t *cfg, const char *data) {
    char *rd[MAX_FN_DIRS], *wd[MAX_FN_DIRS];
    size_t nr = 0, nw = 0;
    int bad = 0;
    tr_err err;
    tr_err_clear(&err);
    for (size_t i = 0; i < cfg->n_fn_read + cfg->n_fn_write && !bad; i++) {
        const char *d = i < cfg->n_fn_read ? cfg->fn_read[i] : cfg->fn_write[i - cfg->n_fn_read];
        char *a = realpath(d, NULL);
        if (!a) {
            tr_error("main", "--lambda-%s-dir %s: %s", i < cfg->n_fn_read ? "read" : "write", d,
                     strerror(errno));
            bad = 1;
        } else if (i < cfg->n_fn_read) rd[nr++] = a;
        else wd[nw++] = a;
    }
    if (!bad &&
        fn_sandbox_set_dirs((const char *const *)rd, nr, (const char *const *)wd, nw, &err)) {
        tr_error("main", "%s", err.msg);
        bad = 1;
    }
    for (size_t i = 0; i < nr; i++) free(rd[i]);
    for (size_t i = 0; i < nw; i++) free(wd[i]);
    if (bad) return -1;
    tr_err_clear(&err);
    if (fn_sandbox_set_private(data, &err)) {
        tr_error("main", "%s", err.msg);
        return -1;
    }
    const char *why_unconfined = NULL;
    int ll_abi = fn_sandbox_abi(&why_unconfined);
    if (ll_abi)
        tr_info("main",
                "functions run confined (Landlock ABI %d): they read their package and the "
                "system's directories, write only their own $TMPDIR, and cannot reach %s",
                ll_abi, data);
    else
        tr_warn("main",
                "functions run UNCONFINED: %s.  A function can read and write whatever "
                "this server's user can, including %s (credentials, tables, other functions' "
                "code); run only code you trust, or run the server on a kernel with Landlock",
                why_unconfined, data);
    return 0;
}

/* One server per data directory: an exclusive flock on DATA/LOCK, held until exit.  The fd, or
 * -1 after logging why. */
static int data_dir_lock(const char *data) {
    char lockpath[PATH_MAX + 32];
    snprintf(lockpath, sizeof lockpath, "%s/LOCK", data);
    int lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        tr_error("main",
                 "data directory %s is in use by another tributary process (%s); stop it "
                 "or pass another --data",
                 data, lockfd < 0 ? strerror(errno) : "locked");
        if (lockfd >= 0) close(lockfd);
        return -1;
    }
    return lockfd;
}

/* Functions' scratch directories (their /tmp): on the data disk, a crash's leftovers removed now
 * that the directory is ours.  -1 after logging why. */
static int scratch_setup(const char *data) {
    char scratch_root[PATH_MAX + 16];
    tr_err err;
    tr_err_clear(&err);
    snprintf(scratch_root, sizeof scratch_root, "%s/fn-tmp", data);
    if (fn_sandbox_set_scratch_root(scratch_root, &err)) {
        tr_error("main", "%s", err.msg);
        return -1;
    }
    return 0;
}

/* The allocator the server runs on, for the "listening" line. */
static void allocator_name(char *out, size_t cap) {
    snprintf(out, cap, "the C library's malloc");
#ifdef TR_WITH_JEMALLOC
    const char *jv = NULL;
    size_t jvlen = sizeof jv;
    if (mallctl("version", &jv, &jvlen, NULL, 0) == 0 && jv)
        snprintf(out, cap, "jemalloc %.*s", (int)strcspn(jv, "-"), jv);
#endif
}

/* ---- serve ---------------------------------------------------------------------------------- */

/* How long shutdown waits, after the engines closed, for the answers they released to be sent
 * (net_server_drain); a client that does not read its answer cannot hold the exit longer. */
#define SHUTDOWN_DRAIN_MS 2000

static int cmd_serve(int argc, char **argv) {
    serve_cfg_t cfg;
    int rc = serve_parse(argc, argv, &cfg);
    if (rc >= 0) return rc;

    /* Everything started is stopped at `out`, in reverse order, each exactly once; a NULL or -1
     * there means "never started". */
    rc = 1;
    int lockfd = -1;
    api_key_t key;
    api_kinesis_t kinesis;
    api_ctx_t ctx = {.region = cfg.region,
                     .keys = &key,
                     .n_keys = 1,
                     .now_ms = tr_now_ms,
                     .kinesis = &kinesis};
    fn_native_t *native = NULL;
    net_server_t *srv = NULL;
    tr_err err;
    tr_err_clear(&err);

    raise_nofile();
    static char data[PATH_MAX]; /* absolute; the engines and the sandbox keep pointers to it */
    if (data_dir_open(cfg.data, data) || sandbox_setup(&cfg, data)) goto out;
    if ((lockfd = data_dir_lock(data)) < 0 || scratch_setup(data)) goto out;
    if (load_credentials(data, &key, &err) ||
        api_kinesis_init(&kinesis, data, cfg.iter_ttl, &err)) {
        tr_error("main", "%s", err.msg);
        goto out;
    }

    slog_opts_t so;
    memset(&so, 0, sizeof so);
    so.max_pending_bytes = (size_t)cfg.pending_mb << 20;
    so.commit_delay_ms = (int)cfg.commit_delay_ms;
    if (cfg.commit_delay_ms)
        tr_warn("main",
                "--test-commit-delay-ms %lld: every stream commit waits %lld ms (testing "
                "only; never in production)",
                cfg.commit_delay_ms, cfg.commit_delay_ms);
    so.segment_bytes = (uint64_t)cfg.segment_kb << 10;
    if (cfg.enospc_shard >= 0) {
        so.test_enospc_shard = (uint32_t)cfg.enospc_shard + 1;
        tr_warn("main",
                "--test-enospc-shard %lld: every write to shard %lld of every stream fails "
                "(testing only; never in production)",
                cfg.enospc_shard, cfg.enospc_shard);
    }
    long long t0 = tr_mono_ns();
    if (slog_open(data, &so, &ctx.slog, &err)) {
        tr_error("main", "cannot open the stream engine in %s: %s", data, err.msg);
        goto out;
    }
    tr_info("main", "stream engine open in %s (%.1f ms)", data, (tr_mono_ns() - t0) / 1e6);
    char tbldir[PATH_MAX + 32];
    snprintf(tbldir, sizeof tbldir, "%s/tables", data);
    tbl_opts_t to;
    memset(&to, 0, sizeof to);
    t0 = tr_mono_ns();
    if (tbl_open(tbldir, &to, &ctx.tbl, &err)) {
        tr_error("main", "cannot open the table engine in %s: %s", tbldir, err.msg);
        goto out;
    }
    tr_info("main", "table engine open in %s (%.1f ms)", tbldir, (tr_mono_ns() - t0) / 1e6);

    fn_opts_t fo;
    memset(&fo, 0, sizeof fo);
    fo.region = cfg.region;
    fo.account_concurrency = (uint32_t)cfg.fn_concurrency;
    fo.async_retry_ms = cfg.fn_retry_ms;
    t0 = tr_mono_ns();
    if (fn_open(data, &fo, &ctx.fn, &err)) {
        tr_error("main", "cannot open the functions engine in %s/functions: %s", data, err.msg);
        goto out;
    }
    tr_info("main", "functions engine open (%.1f ms)", (tr_mono_ns() - t0) / 1e6);
    /* plug-in runtimes register here (fn_runtime_register), before fn_start */
    /* The native C runtime (tributary.c1): .so handlers in supervised host processes. */
    fn_native_opts_t nto = {.region = cfg.region, .table_error = native_table_error};
    if (fn_native_create(&nto, &native, &err) ||
        fn_runtime_register(ctx.fn, fn_native_runtime(), native, &err)) {
        tr_error("main", "cannot start the native function runtime: %s", err.msg);
        goto out;
    }
    fn_native_set_table_handler(native, native_table_call, &ctx);
    /* Event-source mappings: Kinesis -> Lambda pollers, woken by the stream's append hook. */
    esm_opts_t eo = {.region = cfg.region, .age_unit_ms = cfg.esm_age_unit_ms};
    if (esm_open(data, ctx.slog, ctx.fn, &eo, &ctx.esm, &err)) {
        tr_error("main", "cannot open the event source mappings: %s", err.msg);
        goto out;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* The Lambda Runtime API: a listener per instance on 127.0.0.1, ephemeral port, no SigV4
     * (as on AWS; see api/runtime.c). */
    static fn_rt_listener_t rtl;
    rtl.open = api_runtime_listener_open;
    rtl.close = api_runtime_listener_close;
    rtl.arg = &ctx;
    fn_set_rt_listener(ctx.fn, &rtl);
    if (fn_start(ctx.fn, NULL, &err)) {
        tr_error("main", "cannot start the functions engine: %s", err.msg);
        goto out;
    }
    /* Event-source mappings start after the functions engine (they invoke through it). */
    if (esm_start(ctx.esm, &err)) tr_error("main", "event source mappings: %s", err.msg);
    net_opts_t no = {.bind = cfg.bind,
                     .port = (int)cfg.port,
                     .threads = (int)cfg.threads,
                     .handler = gated_handle,
                     .handler_arg = &ctx,
                     .max_inflight_bytes = (size_t)cfg.inflight_mb << 20,
                     .max_connections = (unsigned)cfg.max_conns,
                     .precheck = api_precheck,
                     .max_conns_per_ip = (unsigned)cfg.max_conns_ip,
                     .header_timeout_s = (unsigned)cfg.header_timeout,
                     .body_timeout_s = (unsigned)cfg.body_timeout};
    if (net_server_start(&no, &srv, &err)) {
        tr_error("main", "%s", err.msg);
        goto out;
    }
    char alloc[64];
    allocator_name(alloc, sizeof alloc);
    tr_info("main", "listening on %s:%d (region %s, allocator %s)", cfg.bind, net_server_port(srv),
            cfg.region, alloc);

    while (sem_wait(&stop_sem) != 0 && errno == EINTR) {}
    tr_info("main", "shutting down: finishing requests in progress");
    rc = 0;

out:
    /* Refuse new requests (503) and wait until no handler is running: the engines close next. */
    if (srv) gate_close();
    esm_close(ctx.esm); /* pollers stop (invocations in flight finish), checkpoints flushed */
    ctx.esm = NULL;
    fn_shutdown(ctx.fn); /* instances and their Runtime API listeners stopped; waiting
                               invokes answered */
    if (native) fn_native_set_table_handler(native, NULL, NULL); /* table calls: 503 */
    tbl_close(ctx.tbl); /* queued table writes commit and resume their connections */
    slog_close(ctx.slog); /* queued puts complete and resume their connections */
    if (srv) {
        int left = net_server_drain(srv, SHUTDOWN_DRAIN_MS); /* their answers are sent */
        if (left)
            tr_warn("main",
                    "%d answers not taken by their clients within %d ms; closing their "
                    "connections",
                    left, SHUTDOWN_DRAIN_MS);
    }
    net_server_stop(srv);
    fn_close(ctx.fn);
    fn_native_destroy(native);
    if (lockfd >= 0) close(lockfd);
    if (rc == 0) tr_info("main", "stopped");
    return rc;
}

/* ---- entry --------------------------------------------------------------------------------- */

static void usage(FILE *o) {
    fprintf(o, "usage: tributary <command> [options]\n\n"
               "commands:\n"
               "  serve     run the server (Kinesis, DynamoDB and Lambda APIs on one port, SigV4)\n"
               "  logs      print a function's log: tributary logs FUNCTION [--follow]\n"
               "  help      this text\n\n"
               "`tributary <command> --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "serve")) {
        if (sem_init(&stop_sem, 0, 0) != 0) {
            fprintf(stderr, "tributary: sem_init: %s\n", strerror(errno));
            return 1;
        }
        return cmd_serve(argc - 1, argv + 1);
    }
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
