/* SPDX-License-Identifier: Apache-2.0
 *
 * native.c -- the native runtime's supervisor: pools of host processes per function (native.h).
 *
 * Each function has a pool: a FIFO of submitted jobs and a set of hosts.  A host is one
 * supervisor thread plus (while warm) one `tributary __fn-host` process.  The thread takes a job
 * from the FIFO, starts its process if it has none (a cold start: spawn, wait READY), writes the
 * INVOKE frame and then polls the socket and the log pipe until the RESULT frame, the process's
 * death, or the deadline -- whichever comes first -- and calls the job's done callback.  A
 * submit that finds more queued jobs than waiting hosts adds a host, so a job never waits for a
 * busy host while the engine above allows more concurrency (fn.c bounds it).
 *
 * A job is serialised into its INVOKE frame at submit (the only copy of a batch's records), so
 * nothing the caller owns is needed afterwards.  The configuration a host was spawned with
 * (code dir, handler, memory, environment) is a refcounted `spawn_t`; a job whose spawn_t differs
 * from its host's (the function was updated) makes the host restart first.
 *
 * Locks: nt->mu guards every pool, queue and host list; it is never held across I/O, a spawn or
 * a callback.  A host's process fields (pid, sock, logfd) are touched only by its own thread,
 * except pid read by cancel/destroy under nt->mu to send SIGKILL.
 *
 * Cost per invoke on a warm host: one frame write, one poll wake-up, one frame read -- tens of
 * microseconds plus the handler.
 *
 * Table calls (trf_table_*): while a host thread waits for RESULT (or READY) it also serves
 * TABLE_CALL frames: each goes to the table handler main.c installed (fn_native_set_table_handler;
 * the engine never sees the DynamoDB adapter), many may be in flight (FN_NATIVE_TABLE_INFLIGHT,
 * then the thread stops reading the socket: backpressure).  A call that completes on another
 * thread (a write, on the table engine's one writer thread) posts its completion back
 * (host_post): the host thread runs it -- the response is built, the request freed and the
 * TABLE_REPLY frame queued there, not on the engine's serial thread -- wherever it waits (its
 * poll, backpressure, table_settle).  Replies queue under h->tmu and wake the poll through a
 * pipe.  A job
 * completes (finish_on) only after every call it dispatched has been answered, so a retried
 * batch never races writes of the failed attempt.  A call the engine cannot pass on (malformed
 * frame, no handler installed, no memory) is answered through opts.table_error: the engine
 * names the case with a TR_E* code and a message, main.c writes DynamoDB's error body.
 */
#include "fn/native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "fn/native_int.h"
#include "fn/sandbox.h"

#define FN_NATIVE_TABLE_INFLIGHT 4096   /* table calls in flight per host before backpressure */

extern char **environ;

/* ---- types ----------------------------------------------------------------------------------- */

typedef struct spawn {
    int refs; /* under nt->mu */
    char *sig; /* identity: code dir, handler, memory, env */
    size_t sig_len;
    char *code_dir;
    char **envp; /* NULL-terminated, owned */
} spawn_t;

typedef struct job {
    struct job *next;
    trf__buf_t frame; /* the INVOKE frame */
    char request_id[FN_REQUEST_ID_LEN + 8];
    int64_t deadline_ms; /* wall clock */
    uint32_t timeout_s;
    spawn_t *spawn;
    fn_native_log_cb log;
    fn_native_done_cb done;
    void *tag;
    int cancelled; /* under nt->mu */
} job_t;

typedef struct pool pool_t;

typedef struct host {
    struct host *next;
    pool_t *pool;
    fn_native_t *nt;
    int counted; /* counted in pool->n_waiting (under nt->mu) */
    pid_t pid; /* 0 when no process */
    int sock, logfd;
    spawn_t *spawn; /* what the process was started with */
    job_t *job; /* running now (under nt->mu) */
    int64_t last_used_ms;
    trf__buf_t logline; /* partial log line */
    trf__buf_t rbuf; /* frame being read */
    trf__buf_t wbuf; /* frames being written (INVOKE, TABLE_REPLY) */
    size_t wsent;
    char scratch[PATH_MAX]; /* the process's $TMPDIR (sandbox.h); "" if none */
    /* table calls: dispatched and not yet answered, and the answers not yet moved to wbuf */
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    size_t t_out;
    trf__buf_t t_replies;
    int wake[2]; /* pipe: t_replies has frames, or posted has work */
    /* completions handed back by the table service (fn_native_post_fn), run by this host's
     * thread: at most one per call in flight */
    struct posted {
        fn_native_run_fn run;
        void *arg;
    } *posted;
    size_t n_posted, cap_posted;
} host_t;

struct pool {
    struct pool *next;
    char name[FN_MAX_NAME + 1];
    spawn_t *spawn; /* current configuration */
    job_t *q_head, *q_tail;
    size_t q_len, n_waiting, n_hosts;
    uint64_t generation; /* fn_native_release bumps it */
    host_t *hosts;
    pthread_cond_t cv;
};

struct fn_native {
    pthread_mutex_t mu;
    pthread_cond_t exited;
    pool_t *pools;
    size_t n_threads;
    int closing;
    char host_exe[PATH_MAX];
    char region[64];
    int64_t idle_ms, init_timeout_ms;
    fn_native_table_error_fn table_error; /* fixed at create; NULL: table_error_plain */
    fn_native_table_fn table_fn; /* under mu */
    void *table_arg;
    size_t table_busy; /* dispatches inside table_fn now (under mu) */
    pthread_cond_t table_idle;
};

typedef struct tcall { /* one table call in flight */
    host_t *h;
    uint32_t id;
} tcall_t;

typedef struct host_arg {
    fn_native_t *nt;
    host_t *h;
    uint64_t generation;
} host_arg_t;

/* ---- small helpers --------------------------------------------------------------------------- */

static void spawn_unref(spawn_t *s) { /* under nt->mu */
    if (!s || --s->refs > 0) return;
    free(s->sig);
    free(s->code_dir);
    for (char **e = s->envp; e && *e; e++) free(*e);
    free(s->envp);
    free(s);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static const char *signal_text(int sig) {
    switch (sig) {
    case SIGSEGV: return "segmentation fault";
    case SIGABRT: return "aborted";
    case SIGKILL: return "killed";
    case SIGBUS: return "bus error";
    case SIGFPE: return "floating point exception";
    case SIGILL: return "illegal instruction";
    case SIGTERM: return "terminated";
    default: return NULL;
    }
}

/* ---- spawn configuration --------------------------------------------------------------------- */

static int env_reserved(const char *k) {
    static const char *const res[] = {"_HANDLER",
                                      "LAMBDA_TASK_ROOT",
                                      "AWS_LAMBDA_FUNCTION_NAME",
                                      "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                      "TRIBUTARY_FN_PARENT",
                                      FN_NATIVE_SANDBOX_ENV,
                                      FN_NATIVE_TMP_ENV,
                                      NULL};
    for (int i = 0; res[i]; i++)
        if (!strcmp(k, res[i])) return 1;
    return 0;
}

/* The identity of a configuration, as one string: what a host depends on. */
static void spawn_sig(trf__buf_t *sig, const fn_config_t *cfg) {
    trf__buf_printf(sig, "%s%c%s%c%u%c", cfg->code_dir ? cfg->code_dir : "", 0,
                    cfg->handler ? cfg->handler : "", 0, cfg->memory_mb, 0);
    for (size_t i = 0; i < cfg->n_env; i++)
        trf__buf_printf(sig, "%s=%s%c", cfg->env[i].key, cfg->env[i].value, 0);
}

/* Whether cfg is the configuration s was built from (a stack buffer for the common case). */
static int spawn_same(const spawn_t *s, const fn_config_t *cfg, const char *region) {
    (void)region;
    trf__buf_t sig = {0};
    spawn_sig(&sig, cfg);
    int same = !sig.oom && sig.len == s->sig_len && !memcmp(sig.data, s->sig, sig.len);
    trf__buf_free(&sig);
    return same;
}

static spawn_t *spawn_build(fn_native_t *nt, const fn_config_t *cfg) {
    trf__buf_t sig = {0};
    spawn_sig(&sig, cfg);
    spawn_t *s = calloc(1, sizeof *s);
    size_t cap = cfg->n_env + 24, n = 0;
    char **envp = calloc(cap, sizeof *envp);
    if (!s || !envp || sig.oom) goto fail;
    s->refs = 1;
    s->sig = sig.data;
    s->sig_len = sig.len;
    sig.data = NULL;
    /* absolute: the host runs in it and dlopens from LAMBDA_TASK_ROOT (a relative --data would
     * name nothing from there) */
    const char *cd = cfg->code_dir ? cfg->code_dir : ".";
    s->code_dir = cd[0] == '/' ? strdup(cd) : realpath(cd, NULL);
    if (!s->code_dir) s->code_dir = strdup(cd);
    const char *dir = s->code_dir;
    envp[n++] = xasprintf("AWS_LAMBDA_FUNCTION_NAME=%s", cfg->name);
    envp[n++] = xasprintf("AWS_LAMBDA_FUNCTION_VERSION=$LATEST");
    envp[n++] = xasprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%u", cfg->memory_mb);
    envp[n++] = xasprintf("AWS_REGION=%s", nt->region);
    envp[n++] = xasprintf("AWS_DEFAULT_REGION=%s", nt->region);
    envp[n++] = xasprintf("AWS_EXECUTION_ENV=AWS_Lambda_%s", FN_NATIVE_RUNTIME);
    envp[n++] = xasprintf("LAMBDA_TASK_ROOT=%s", dir);
    envp[n++] = xasprintf("_HANDLER=%s", cfg->handler ? cfg->handler : "");
    envp[n++] = xasprintf("LD_LIBRARY_PATH=%s/lib:%s", dir, dir);
    envp[n++] = xasprintf("PATH=/usr/local/bin:/usr/bin:/bin");
    envp[n++] = xasprintf("LANG=C.UTF-8");
    envp[n++] = xasprintf("TZ=:UTC");
    envp[n++] = xasprintf("TRIBUTARY_FN_PARENT=%ld", (long)getpid());
    /* Sanitizer builds: the host is the same binary; keep its options, but let user code's
     * crashes be crashes (signals reported as AWS does), not sanitizer reports. */
    const char *asan = getenv("ASAN_OPTIONS");
    envp[n++] = xasprintf("ASAN_OPTIONS=%s%shandle_segv=0:handle_sigbus=0:handle_sigfpe=0:"
                          "handle_sigill=0:handle_abort=0",
                          asan ? asan : "", asan && *asan ? ":" : "");
    static const char *const pass[] = {"UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
    for (int i = 0; pass[i]; i++) {
        const char *v = getenv(pass[i]);
        if (v) envp[n++] = xasprintf("%s=%s", pass[i], v);
    }
    for (size_t i = 0; i < cfg->n_env; i++)
        if (!env_reserved(cfg->env[i].key))
            envp[n++] = xasprintf("%s=%s", cfg->env[i].key, cfg->env[i].value);
    for (size_t i = 0; i < n; i++)
        if (!envp[i]) goto fail;
    if (!s->code_dir) goto fail;
    s->envp = envp;
    return s;
fail:
    trf__buf_free(&sig);
    if (s) {
        free(s->sig);
        free(s->code_dir);
        free(s);
    }
    for (size_t i = 0; envp && i < n; i++) free(envp[i]);
    free(envp);
    return NULL;
}

/* ---- job frames ------------------------------------------------------------------------------ */

static int job_frame(trf__buf_t *b, const fn_inv_info_t *info, tr_err *err) {
    const fn_native_batch_t *batch = info->native;
    if (batch && batch->magic != FN_NATIVE_BATCH_MAGIC)
        return tr_err_set(err, TR_EINVAL, "native batch has a bad magic number (internal error)");
    fn_native__begin(b, FN_NATIVE_INVOKE);
    fn_native__u32(b, batch ? TRF_EVENT_KINESIS : TRF_EVENT_JSON);
    fn_native__i64(b, info->deadline_ms);
    fn_native__cstr(b, info->request_id);
    fn_native__cstr(b, info->config->arn);
    fn_native__cstr(b, info->trace_id);
    if (!batch) {
        if (info->payload && info->payload_len) fn_native__str(b, info->payload, info->payload_len);
        else fn_native__cstr(b, "{}");
    } else {
        char shard_id[32];
        snprintf(shard_id, sizeof shard_id, "shardId-%012u", batch->shard);
        fn_native__cstr(b, batch->event_source_arn);
        fn_native__cstr(b, shard_id);
        fn_native__cstr(b, batch->region);
        const trf_window_t *w = batch->window;
        fn_native__u32(b, w != NULL);
        if (w) {
            fn_native__i64(b, w->start_ms);
            fn_native__i64(b, w->end_ms);
            fn_native__u32(b, (uint32_t)w->is_final);
            fn_native__u32(b, (uint32_t)w->is_terminated_early);
            if (w->state && w->state_len) fn_native__str(b, w->state, w->state_len);
            else fn_native__cstr(b, "{}");
        }
        fn_native__u32(b, (uint32_t)batch->n);
        for (size_t i = 0; i < batch->n; i++) {
            const trf_record_t *r = &batch->recs[i];
            fn_native__str(b, r->partition_key, r->partition_key_len);
            fn_native__str(b, r->data, r->len);
            fn_native__cstr(b, r->sequence_number);
            fn_native__i64(b, r->arrival_ms);
        }
    }
    fn_native__end(b);
    if (b->oom) return tr_err_set(err, TR_ENOMEM, "out of memory serialising the invocation");
    return 0;
}

static void job_free(job_t *j) {
    if (!j) return;
    trf__buf_free(&j->frame);
    free(j);
}

/* ---- host process ---------------------------------------------------------------------------- */

static void host_log(host_t *h, job_t *j, const char *p, size_t n, int flush) {
    trf__buf_append(&h->logline, p, n);
    size_t cut = 0;
    for (size_t i = h->logline.len; i > 0; i--)
        if (h->logline.data[i - 1] == '\n') {
            cut = i;
            break;
        }
    if (flush && h->logline.len && !cut) {
        trf__buf_append(&h->logline, "\n", 1);
        cut = h->logline.len;
    } else if (flush && cut < h->logline.len) {
        trf__buf_append(&h->logline, "\n", 1);
        cut = h->logline.len;
    }
    if (!cut) return;
    if (j && j->log) j->log(j->tag, h->logline.data, cut);
    memmove(h->logline.data, h->logline.data + cut, h->logline.len - cut);
    h->logline.len -= cut;
}

/* Read what the log pipe holds now (non-blocking). */
static void drain_log(host_t *h, job_t *j) {
    char buf[8192];
    for (;;) {
        ssize_t r = read(h->logfd, buf, sizeof buf);
        if (r > 0) {
            host_log(h, j, buf, (size_t)r, 0);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        break;
    }
}

/* Reap the process: wait up to grace_ms for it to end by itself (it may be on its way out with
 * an exit status worth reporting), then SIGKILL.  Describe how it ended into why (AWS's
 * wording).  Closes the socket and the log pipe. */
static void host_reap(host_t *h, int grace_ms, char *why, size_t cap) {
    if (h->pid) {
        int st = 0;
        pid_t r = 0;
        for (int waited = 0; waited < grace_ms; waited++) {
            r = waitpid(h->pid, &st, WNOHANG);
            if (r != 0) break;
            usleep(1000);
        }
        if (r == 0) {
            kill(h->pid, SIGKILL);
            while ((r = waitpid(h->pid, &st, 0)) < 0 && errno == EINTR) {}
        }
        if (why) {
            if (r < 0) snprintf(why, cap, "exit status unknown (%s)", strerror(errno));
            else if (WIFSIGNALED(st)) {
                const char *t = signal_text(WTERMSIG(st));
                if (t) snprintf(why, cap, "signal: %s%s", t, WCOREDUMP(st) ? " (core dumped)" : "");
                else snprintf(why, cap, "signal: %d", WTERMSIG(st));
            } else {
                snprintf(why, cap, "exit status %d", WEXITSTATUS(st));
            }
        }
    }
    h->pid = 0;
    fn_sandbox_scratch_free(h->scratch);
    h->scratch[0] = 0;
    if (h->sock >= 0) close(h->sock);
    if (h->logfd >= 0) close(h->logfd);
    h->sock = h->logfd = -1;
    h->rbuf.len = 0;
    h->wbuf.len = h->wsent = 0;
}

static int host_spawn(fn_native_t *nt, host_t *h, spawn_t *s, char *why, size_t cap) {
    int sv[2] = {-1, -1}, lp[2] = {-1, -1}, rfd = -1;
    char **envp = NULL, *plan = NULL;
    size_t n = 0;
    tr_err e;
    tr_err_clear(&e);
    /* its private /tmp and its sandbox (sandbox.h): the ruleset goes to the host as fd
     * FN_NATIVE_FD + 1, which it enters before loading the library */
    if (fn_sandbox_scratch_new(h->scratch, sizeof h->scratch, &e) ||
        fn_sandbox_ruleset(s->code_dir, h->scratch, &rfd, &e) ||
        fn_sandbox_tmp_plan(s->code_dir, h->scratch, &plan, &e)) {
        snprintf(why, cap, "%s", e.msg);
        goto fail;
    }
    while (s->envp[n]) n++;
    envp = calloc(n + 4, sizeof *envp);
    if (!envp) abort();
    memcpy(envp, s->envp, n * sizeof *envp);
    envp[n] = xasprintf("TMPDIR=%s", h->scratch);
    envp[n + 1] = xasprintf("%s=%d", FN_NATIVE_SANDBOX_ENV, rfd < 0 ? -1 : FN_NATIVE_FD + 1);
    envp[n + 2] = xasprintf("%s=%s", FN_NATIVE_TMP_ENV, plan ? plan : "");
    if (!envp[n] || !envp[n + 1] || !envp[n + 2]) abort();
    free(plan);
    plan = NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe2(lp, O_CLOEXEC)) {
        snprintf(why, cap, "cannot create the host's socket/pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, lp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, lp[1], 2);
    posix_spawn_file_actions_adddup2(&fa, sv[1], FN_NATIVE_FD);
    if (rfd >= 0) posix_spawn_file_actions_adddup2(&fa, rfd, FN_NATIVE_FD + 1);
    posix_spawn_file_actions_addchdir_np(&fa, s->code_dir);
    char *argv[] = {"tributary", FN_NATIVE_HOST_CMD, NULL};
    pid_t pid;
    /* A session of its own: no controlling terminal, so user code cannot push input into the
     * operator's shell (TIOCSTI) when the server runs in one. */
    posix_spawnattr_t sa;
    posix_spawnattr_init(&sa);
    posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSID);
    int rc = posix_spawn(&pid, nt->host_exe, &fa, &sa, argv, envp);
    posix_spawnattr_destroy(&sa);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    close(lp[1]);
    sv[1] = lp[1] = -1;
    for (int i = 0; i < 3; i++) free(envp[n + i]);
    free(envp);
    envp = NULL;
    if (rfd >= 0) close(rfd);
    rfd = -1;
    if (rc) {
        snprintf(why, cap, "cannot start the function host %.300s in %.400s: %s", nt->host_exe,
                 s->code_dir, strerror(rc));
        goto fail;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    fcntl(lp[0], F_SETFL, fcntl(lp[0], F_GETFL) | O_NONBLOCK);
    h->pid = pid;
    h->sock = sv[0];
    h->logfd = lp[0];
    h->rbuf.len = 0;
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0) close(sv[i]);
        if (lp[i] >= 0) close(lp[i]);
    }
    if (envp) {
        for (int i = 0; i < 3; i++) free(envp[n + i]);
        free(envp);
    }
    free(plan);
    if (rfd >= 0) close(rfd);
    fn_sandbox_scratch_free(h->scratch);
    h->scratch[0] = 0;
    return -1;
}

enum { EXCH_FRAME = 0, EXCH_DIED = 1, EXCH_TIMEOUT = 2 };

/* Run the completions posted to h (host thread; h->tmu not held).  Each runs outside the lock:
 * it answers its call (table_done), which takes h->tmu. */
static void host_run_posted(host_t *h) {
    for (;;) {
        pthread_mutex_lock(&h->tmu);
        struct posted *p = h->posted;
        size_t n = h->n_posted, cap = h->cap_posted;
        h->posted = NULL;
        h->n_posted = h->cap_posted = 0;
        pthread_mutex_unlock(&h->tmu);
        for (size_t i = 0; i < n; i++) p[i].run(p[i].arg); /* in posting order */
        pthread_mutex_lock(&h->tmu);
        if (!h->posted) { /* keep the array for the next ones */
            h->posted = p;
            h->cap_posted = cap;
            p = NULL;
        }
        int more = h->n_posted > 0;
        pthread_mutex_unlock(&h->tmu);
        free(p);
        if (!more) return;
    }
}

/* Wait on h->tcv (h->tmu held) until woken, running posted completions meanwhile: the calls
 * waited for may need this very thread to complete. */
static void host_wait_calls(host_t *h) {
    if (h->n_posted) {
        pthread_mutex_unlock(&h->tmu);
        host_run_posted(h);
        pthread_mutex_lock(&h->tmu);
        return;
    }
    pthread_cond_wait(&h->tcv, &h->tmu);
}

/* fn_native_post_fn handed to the table service: queue a completion for h's thread (any
 * thread) and wake it wherever it waits (poll or h->tcv). */
static void host_post(void *post_arg, fn_native_run_fn run, void *run_arg) {
    host_t *h = post_arg;
    pthread_mutex_lock(&h->tmu);
    if (h->n_posted == h->cap_posted) {
        h->cap_posted = h->cap_posted ? h->cap_posted * 2 : 64;
        h->posted = tr_xrealloc(h->posted, h->cap_posted * sizeof *h->posted);
    }
    h->posted[h->n_posted++] = (struct posted){run, run_arg};
    if (h->n_posted == 1) (void)!write(h->wake[1], "", 1);
    pthread_cond_broadcast(&h->tcv);
    pthread_mutex_unlock(&h->tmu);
}

/* Queue out[0..out_len) (if any) and read until h->rbuf starts with a whole frame, writing
 * queued frames and table replies and forwarding logs to j, until deadline_ms.  Returns
 * EXCH_*.  The caller consumes the frame (frame_consume). */
static int host_exchange(host_t *h, job_t *j, const char *out, size_t out_len,
                         int64_t deadline_ms) {
    if (out_len) trf__buf_append(&h->wbuf, out, out_len);
    for (;;) {
        /* A complete frame? */
        if (h->rbuf.len >= sizeof(fn_native_frame_hdr_t)) {
            fn_native_frame_hdr_t hd;
            memcpy(&hd, h->rbuf.data, sizeof hd);
            if (hd.magic != FN_NATIVE_MAGIC || hd.len > FN_NATIVE_MAX_FRAME) return EXCH_DIED;
            if (h->rbuf.len >= sizeof hd + hd.len) return EXCH_FRAME;
        }
        if (h->wbuf.oom) return EXCH_DIED;
        int64_t left = deadline_ms - tr_now_ms();
        if (left <= 0) return EXCH_TIMEOUT;
        int want_out = h->wsent < h->wbuf.len;
        struct pollfd pf[3] = {{h->sock, (short)(POLLIN | (want_out ? POLLOUT : 0)), 0},
                               {h->wake[0], POLLIN, 0},
                               {h->logfd, POLLIN, 0}};
        int pr = poll(pf, h->logfd >= 0 ? 3 : 2, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno != EINTR) return EXCH_DIED;
        if (pr <= 0) continue;
        if (pf[2].revents & POLLIN) drain_log(h, j);
        if (pf[1].revents & POLLIN) {
            char tmp[256];
            while (read(h->wake[0], tmp, sizeof tmp) > 0) {}
            host_run_posted(h);
            pthread_mutex_lock(&h->tmu);
            trf__buf_append(&h->wbuf, h->t_replies.data, h->t_replies.len);
            h->t_replies.len = 0;
            pthread_mutex_unlock(&h->tmu);
        }
        if (pf[0].revents & POLLOUT && h->wsent < h->wbuf.len) {
            ssize_t w = send(h->sock, h->wbuf.data + h->wsent, h->wbuf.len - h->wsent,
                             MSG_NOSIGNAL);
            if (w > 0) h->wsent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) return EXCH_DIED;
            if (h->wsent == h->wbuf.len) h->wbuf.len = h->wsent = 0;
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[65536];
            ssize_t r = recv(h->sock, buf, sizeof buf, 0);
            if (r > 0) {
                trf__buf_append(&h->rbuf, buf, (size_t)r);
                if (h->rbuf.oom) return EXCH_DIED;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                return EXCH_DIED;
            }
        }
    }
}

/* Drop the whole frame at the start of h->rbuf, keeping what follows it. */
static void frame_consume(host_t *h) {
    fn_native_frame_hdr_t hd;
    memcpy(&hd, h->rbuf.data, sizeof hd);
    size_t n = sizeof hd + hd.len;
    memmove(h->rbuf.data, h->rbuf.data + n, h->rbuf.len - n);
    h->rbuf.len -= n;
}

/* ---- table calls ----------------------------------------------------------------------------- */

/* fn_native_table_error_fn without a protocol (no opts.table_error): a plain message. */
static void table_error_plain(int code, const char *msg, fn_native_table_done_fn done,
                              void *done_arg) {
    char body[256];
    snprintf(body, sizeof body, "{\"message\":\"%s\"}", msg);
    done(done_arg,
         code == TR_ESERIALIZATION ? 400
         : code == TR_ENOMEM       ? 500
                                   : 503,
         body, strlen(body));
}

/* Where table_error's answer lands when it is needed synchronously (the OOM fallback below). */
typedef struct small_answer {
    int status;
    char body[256];
    size_t len;
} small_answer_t;

static void small_answer_done(void *arg, int status, const char *body, size_t len) {
    small_answer_t *a = arg;
    a->status = status;
    a->len = len < sizeof a->body ? len : sizeof a->body;
    memcpy(a->body, body, a->len);
}

/* Queue a TABLE_REPLY for the host thread (any thread; h->tmu not held). */
static void table_reply(host_t *h, uint32_t id, int status, const char *body, size_t len) {
    trf__buf_t f = {0};
    fn_native__begin(&f, FN_NATIVE_TABLE_REPLY);
    fn_native__u32(&f, id);
    fn_native__u32(&f, (uint32_t)status);
    fn_native__str(&f, body, len);
    fn_native__end(&f);
    small_answer_t oom = {500, "", 0};
    if (f.oom) h->nt->table_error(TR_ENOMEM, "out of memory", small_answer_done, &oom);
    pthread_mutex_lock(&h->tmu);
    if (f.oom) { /* still answer: the handler must not wait forever */
        trf__buf_free(&f);
        fn_native__begin(&f, FN_NATIVE_TABLE_REPLY);
        fn_native__u32(&f, id);
        fn_native__u32(&f, (uint32_t)oom.status);
        fn_native__str(&f, oom.body, oom.len);
        fn_native__end(&f);
    }
    if (!h->t_replies.len) (void)!write(h->wake[1], "", 1);
    trf__buf_append(&h->t_replies, f.data, f.len);
    pthread_mutex_unlock(&h->tmu);
    trf__buf_free(&f);
}

/* done of an answer given before the call was dispatched (nothing in flight to count). */
static void table_done_now(void *arg, int status, const char *body, size_t len) {
    const tcall_t *tc = arg;
    table_reply(tc->h, tc->id, status, body, len);
}

static void table_done(void *arg, int status, const char *body, size_t len) {
    tcall_t *tc = arg;
    host_t *h = tc->h;
    table_reply(h, tc->id, status, body, len);
    pthread_mutex_lock(&h->tmu);
    h->t_out--;
    pthread_cond_broadcast(&h->tcv);
    pthread_mutex_unlock(&h->tmu);
    free(tc);
}

/* Answer call `id` with an engine failure, rendered by opts.table_error. */
static void table_fail(host_t *h, uint32_t id, int code, const char *msg) {
    tcall_t tc = {h, id};
    h->nt->table_error(code, msg, table_done_now, &tc);
}

/* Serve the TABLE_CALL at the start of h->rbuf (the caller consumes it). */
static void table_dispatch(fn_native_t *nt, host_t *h) {
    fn_native_frame_hdr_t hd;
    memcpy(&hd, h->rbuf.data, sizeof hd);
    fn_native_rd_t r = {h->rbuf.data + sizeof hd, hd.len, 0};
    uint32_t id = fn_native__get_u32(&r);
    const char *op = fn_native__get_str(&r, NULL);
    size_t len = 0;
    const char *req = fn_native__get_str(&r, &len);
    if (r.bad) {
        table_fail(h, id, TR_ESERIALIZATION, "malformed table call frame");
        return;
    }
    pthread_mutex_lock(&h->tmu); /* backpressure: the host waits on its socket */
    while (h->t_out >= FN_NATIVE_TABLE_INFLIGHT) host_wait_calls(h);
    pthread_mutex_unlock(&h->tmu);
    pthread_mutex_lock(&nt->mu);
    fn_native_table_fn fn = nt->table_fn;
    void *arg = nt->table_arg;
    if (fn) nt->table_busy++;
    pthread_mutex_unlock(&nt->mu);
    tcall_t *tc = fn ? malloc(sizeof *tc) : NULL;
    if (!fn) {
        table_fail(h, id, TR_ECLOSED,
                   "The table service is not available (the server is "
                   "shutting down or has no table engine)");
    } else if (!tc) {
        table_fail(h, id, TR_ENOMEM, "out of memory");
    } else {
        tc->h = h;
        tc->id = id;
        pthread_mutex_lock(&h->tmu);
        h->t_out++;
        pthread_mutex_unlock(&h->tmu);
        fn(arg, op, req, len, table_done, tc, host_post, h);
    }
    if (fn) {
        pthread_mutex_lock(&nt->mu);
        if (--nt->table_busy == 0) pthread_cond_broadcast(&nt->table_idle);
        pthread_mutex_unlock(&nt->mu);
    }
}

/* host_exchange, serving table calls until another frame (or death, or the deadline). */
static int host_next(fn_native_t *nt, host_t *h, job_t *j, const char *out, size_t out_len,
                     int64_t deadline_ms) {
    for (;;) {
        int ex = host_exchange(h, j, out, out_len, deadline_ms);
        out_len = 0;
        if (ex != EXCH_FRAME) return ex;
        fn_native_frame_hdr_t hd;
        memcpy(&hd, h->rbuf.data, sizeof hd);
        if (hd.type != FN_NATIVE_TABLE_CALL) return ex;
        table_dispatch(nt, h);
        frame_consume(h);
    }
}

/* Wait until every table call the host made has been answered; drop undelivered replies. */
static void table_settle(host_t *h) {
    pthread_mutex_lock(&h->tmu);
    while (h->t_out) host_wait_calls(h);
    h->t_replies.len = 0;
    pthread_mutex_unlock(&h->tmu);
    char tmp[256];
    while (read(h->wake[0], tmp, sizeof tmp) > 0) {}
}

/* Complete a job.  A host counts itself as waiting for work BEFORE the callback runs, so a
 * caller that submits its next job from the callback (or right after) finds this warm host
 * instead of starting another. */
static void finish_on(host_t *h, job_t *j, const char *type, const char *msg,
                      const uint8_t *payload, size_t len) {
    if (h) {
        table_settle(h);
        pthread_mutex_lock(&h->nt->mu);
        if (!h->counted) {
            h->pool->n_waiting++;
            h->counted = 1;
        }
        pthread_mutex_unlock(&h->nt->mu);
    }
    if (j->done) j->done(j->tag, type, msg, payload, len);
}
#define finish(j, type, msg, payload, len) finish_on(h, j, type, msg, payload, len)

static void finish_timeout(host_t *h, job_t *j) {
    char msg[160];
    snprintf(msg, sizeof msg, "RequestId: %s Error: Task timed out after %u.00 seconds",
             j->request_id, j->timeout_s);
    finish(j, "Sandbox.Timedout", msg, NULL, 0);
}

/* The process is gone or must go: collect its last log lines, reap it (a grace of grace_ms to
 * end by itself), flush the log, and fill why. */
static void host_bury(host_t *h, job_t *j, int grace_ms, char *why, size_t cap) {
    if (h->logfd >= 0) drain_log(h, j);
    host_reap(h, grace_ms, why, cap);
    host_log(h, j, "", 0, 1);
}

static void finish_died(host_t *h, job_t *j, const char *why) {
    char msg[1200];
    snprintf(msg, sizeof msg, "RequestId: %s Error: Runtime exited with error: %s", j->request_id,
             why);
    trf__buf_t line = {0};
    trf__buf_printf(&line, "%s\n", msg);
    if (j->log && !line.oom) j->log(j->tag, line.data, line.len);
    trf__buf_free(&line);
    (void)h;
    finish(j, "Runtime.ExitError", msg, NULL, 0);
}

/* Start the process for j's configuration and wait for READY.  0 when ready; otherwise the job
 * has been finished (init error, crash, timeout) and -1 returned. */
static int host_cold_start(fn_native_t *nt, host_t *h, job_t *j) {
    char why[1024], msg[1400];
    pthread_mutex_lock(&nt->mu);
    spawn_t *old = h->spawn;
    h->spawn = j->spawn;
    h->spawn->refs++;
    spawn_unref(old);
    pthread_mutex_unlock(&nt->mu);
    if (host_spawn(nt, h, h->spawn, why, sizeof why)) {
        tr_error("fn", "%s", why);
        finish(j, "Runtime.Unknown", why, NULL, 0);
        return -1;
    }
    int64_t init_deadline = tr_now_ms() + nt->init_timeout_ms;
    if (init_deadline > j->deadline_ms) init_deadline = j->deadline_ms;
    int ex = host_next(nt, h, j, NULL, 0, init_deadline);
    if (ex == EXCH_FRAME) {
        fn_native_frame_hdr_t hd;
        memcpy(&hd, h->rbuf.data, sizeof hd);
        if (hd.type == FN_NATIVE_READY) {
            frame_consume(h);
            table_settle(h);
            return 0;
        }
        if (hd.type == FN_NATIVE_INIT_ERROR) {
            fn_native_rd_t r = {h->rbuf.data + sizeof hd, hd.len, 0};
            char type[128];
            snprintf(type, sizeof type, "%s", fn_native__get_str(&r, NULL));
            snprintf(msg, sizeof msg, "%s", fn_native__get_str(&r, NULL));
            host_bury(h, j, 1000, NULL, 0);
            finish(j, type[0] ? type : "Runtime.InitError", msg, NULL, 0);
            return -1;
        }
        ex = EXCH_DIED;
    }
    if (ex == EXCH_TIMEOUT) {
        host_bury(h, j, 0, NULL, 0);
        if (init_deadline >= j->deadline_ms) {
            finish_timeout(h, j);
        } else {
            snprintf(msg, sizeof msg,
                     "RequestId: %s Error: the function's library did not load "
                     "within %lld ms",
                     j->request_id, (long long)nt->init_timeout_ms);
            finish(j, "Runtime.InitError", msg, NULL, 0);
        }
        return -1;
    }
    host_bury(h, j, 200, why, sizeof why);
    finish_died(h, j, why);
    return -1;
}

/* Run one job on host h (spawning its process if needed).  Calls the job's done. */
static void host_run(fn_native_t *nt, host_t *h, job_t *j) {
    char why[1024];
    if (h->pid && h->spawn != j->spawn) host_reap(h, 0, NULL, 0); /* reconfigured: restart */
    if (!h->pid && host_cold_start(nt, h, j)) return;
    int ex = host_next(nt, h, j, j->frame.data, j->frame.len, j->deadline_ms);
    pthread_mutex_lock(&nt->mu);
    int cancelled = j->cancelled;
    pthread_mutex_unlock(&nt->mu);
    if (ex == EXCH_FRAME && !cancelled) {
        fn_native_frame_hdr_t hd;
        memcpy(&hd, h->rbuf.data, sizeof hd);
        fn_native_rd_t r = {h->rbuf.data + sizeof hd, hd.len, 0};
        uint32_t failed = fn_native__get_u32(&r);
        const char *type = fn_native__get_str(&r, NULL);
        size_t pl = 0;
        const char *payload = fn_native__get_str(&r, &pl);
        if (hd.type == FN_NATIVE_RESULT && !r.bad) {
            drain_log(h, j);
            host_log(h, j, "", 0, 1);
            finish(j, failed ? (type[0] ? type : "HandlerError") : NULL, NULL,
                   (const uint8_t *)payload, pl);
            frame_consume(h);
            return;
        }
        ex = EXCH_DIED;
    }
    if (ex == EXCH_TIMEOUT || cancelled) {
        host_bury(h, j, 0, NULL, 0);
        finish_timeout(h, j);
        return;
    }
    host_bury(h, j, 200, why, sizeof why);
    finish_died(h, j, why);
}

/* Graceful stop of an idle host's process: SHUTDOWN, then a short grace, then SIGKILL. */
static void host_stop(host_t *h) {
    if (!h->pid) return;
    trf__buf_t b = {0};
    fn_native__begin(&b, FN_NATIVE_SHUTDOWN);
    fn_native__end(&b);
    if (!b.oom) (void)!send(h->sock, b.data, b.len, MSG_NOSIGNAL);
    trf__buf_free(&b);
    for (int i = 0; i < 50; i++) {
        int st;
        pid_t r = waitpid(h->pid, &st, WNOHANG);
        if (r == h->pid || (r < 0 && errno == ECHILD)) {
            h->pid = 0;
            break;
        }
        usleep(2000);
    }
    if (h->pid) host_reap(h, 0, NULL, 0);
    if (h->sock >= 0) close(h->sock);
    if (h->logfd >= 0) close(h->logfd);
    h->sock = h->logfd = -1;
    fn_sandbox_scratch_free(h->scratch); /* host_reap's, when the process ended by itself */
    h->scratch[0] = 0;
}

/* ---- host thread ----------------------------------------------------------------------------- */

static void host_free_io(host_t *h);

static void *host_main(void *arg) {
    host_arg_t *ha = arg;
    fn_native_t *nt = ha->nt;
    host_t *h = ha->h;
    pool_t *p = h->pool;
    uint64_t gen = ha->generation;
    free(ha);

    pthread_mutex_lock(&nt->mu);
    for (;;) {
        if (!h->counted) {
            p->n_waiting++;
            h->counted = 1;
        }
        while (!p->q_head && !nt->closing && p->generation == gen) {
            int64_t deadline = h->last_used_ms + nt->idle_ms;
            struct timespec ts = {deadline / 1000, (long)(deadline % 1000) * 1000000};
            int rc = pthread_cond_timedwait(&p->cv, &nt->mu, &ts);
            if (rc == ETIMEDOUT && !p->q_head) goto out;
        }
        if (nt->closing || p->generation != gen) break;
        p->n_waiting--;
        h->counted = 0;
        job_t *j = p->q_head;
        p->q_head = j->next;
        if (!p->q_head) p->q_tail = NULL;
        p->q_len--;
        h->job = j;
        pthread_mutex_unlock(&nt->mu);

        host_run(nt, h, j);

        pthread_mutex_lock(&nt->mu);
        h->job = NULL;
        h->last_used_ms = tr_now_ms();
        spawn_unref(j->spawn);
        job_free(j);
    }
out:
    if (h->counted) {
        p->n_waiting--;
        h->counted = 0;
    }
    /* Leave the pool, then stop the process without the lock. */
    for (host_t **pp = &p->hosts; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    p->n_hosts--;
    pthread_mutex_unlock(&nt->mu);
    host_stop(h);
    trf__buf_free(&h->logline);
    trf__buf_free(&h->rbuf);
    host_free_io(h);
    pthread_mutex_lock(&nt->mu);
    spawn_unref(h->spawn);
    free(h);
    nt->n_threads--;
    pthread_cond_broadcast(&nt->exited);
    pthread_mutex_unlock(&nt->mu);
    return NULL;
}

/* A host's write buffer, table-call state and wake pipe (after its last table call settled). */
static void host_free_io(host_t *h) {
    trf__buf_free(&h->wbuf);
    trf__buf_free(&h->t_replies);
    free(h->posted);
    pthread_mutex_destroy(&h->tmu);
    pthread_cond_destroy(&h->tcv);
    close(h->wake[0]);
    close(h->wake[1]);
}

/* Under nt->mu.  0 or -1. */
static int host_add(fn_native_t *nt, pool_t *p) {
    host_t *h = calloc(1, sizeof *h);
    host_arg_t *ha = malloc(sizeof *ha);
    if (!h || !ha || pipe2(h->wake, O_CLOEXEC | O_NONBLOCK)) {
        free(h);
        free(ha);
        return -1;
    }
    pthread_mutex_init(&h->tmu, NULL);
    pthread_cond_init(&h->tcv, NULL);
    h->pool = p;
    h->nt = nt;
    h->sock = h->logfd = -1;
    h->last_used_ms = tr_now_ms();
    ha->nt = nt;
    ha->h = h;
    ha->generation = p->generation;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    pthread_t t;
    int rc = pthread_create(&t, &at, host_main, ha);
    pthread_attr_destroy(&at);
    if (rc) {
        host_free_io(h);
        free(h);
        free(ha);
        return -1;
    }
    h->next = p->hosts;
    p->hosts = h;
    p->n_hosts++;
    nt->n_threads++;
    return 0;
}

/* ---- public ---------------------------------------------------------------------------------- */

int fn_native_create(const fn_native_opts_t *opts, fn_native_t **out, tr_err *err) {
    fn_native_t *nt = calloc(1, sizeof *nt);
    if (!nt) return tr_err_set(err, TR_ENOMEM, "out of memory");
    pthread_mutex_init(&nt->mu, NULL);
    pthread_cond_init(&nt->exited, NULL);
    pthread_cond_init(&nt->table_idle, NULL);
    if (opts && opts->host_exe) {
        snprintf(nt->host_exe, sizeof nt->host_exe, "%s", opts->host_exe);
    } else {
        ssize_t n = readlink("/proc/self/exe", nt->host_exe, sizeof nt->host_exe - 1);
        if (n <= 0) {
            free(nt);
            return tr_err_set(err, TR_EIO,
                              "cannot find this program's path (/proc/self/exe: %s); "
                              "pass fn_native_opts.host_exe",
                              strerror(errno));
        }
        nt->host_exe[n] = 0;
    }
    if (access(nt->host_exe, X_OK) != 0) {
        int e = errno;
        free(nt);
        return tr_err_set(err, TR_EIO, "function host binary %s is not executable: %s",
                          opts && opts->host_exe ? opts->host_exe : "/proc/self/exe", strerror(e));
    }
    snprintf(nt->region, sizeof nt->region, "%s",
             opts && opts->region ? opts->region : "us-east-1");
    nt->idle_ms = opts && opts->idle_ms > 0 ? opts->idle_ms : 600000;
    nt->init_timeout_ms = opts && opts->init_timeout_ms > 0 ? opts->init_timeout_ms : 10000;
    nt->table_error = opts && opts->table_error ? opts->table_error : table_error_plain;
    *out = nt;
    return 0;
}

void fn_native_destroy(fn_native_t *nt) {
    if (!nt) return;
    pthread_mutex_lock(&nt->mu);
    nt->closing = 1;
    job_t *failed = NULL;
    for (pool_t *p = nt->pools; p; p = p->next) {
        /* Queued jobs fail now; running ones fail when their host is killed. */
        while (p->q_head) {
            job_t *j = p->q_head;
            p->q_head = j->next;
            j->next = failed;
            failed = j;
        }
        p->q_tail = NULL;
        p->q_len = 0;
        for (host_t *h = p->hosts; h; h = h->next)
            if (h->pid && h->job) {
                h->job->cancelled = 1;
                kill(h->pid, SIGKILL);
            }
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&nt->mu);
    for (job_t *j = failed, *next; j; j = next) {
        next = j->next;
        finish_on(NULL, j, "Runtime.Unknown", "the server is shutting down", NULL, 0);
        pthread_mutex_lock(&nt->mu);
        spawn_unref(j->spawn);
        pthread_mutex_unlock(&nt->mu);
        job_free(j);
    }
    pthread_mutex_lock(&nt->mu);
    while (nt->n_threads) pthread_cond_wait(&nt->exited, &nt->mu);
    for (pool_t *p = nt->pools, *next; p; p = next) {
        next = p->next;
        spawn_unref(p->spawn);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
    pthread_mutex_unlock(&nt->mu);
    pthread_cond_destroy(&nt->exited);
    pthread_cond_destroy(&nt->table_idle);
    pthread_mutex_destroy(&nt->mu);
    free(nt);
}

static pool_t *pool_get(fn_native_t *nt, const char *name) { /* under nt->mu */
    for (pool_t *p = nt->pools; p; p = p->next)
        if (!strcmp(p->name, name)) return p;
    pool_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    pthread_cond_init(&p->cv, NULL);
    p->next = nt->pools;
    nt->pools = p;
    return p;
}

int fn_native_submit(fn_native_t *nt, const fn_inv_info_t *info, fn_native_log_cb log,
                     fn_native_done_cb done, void *tag, tr_err *err) {
    if (!nt || !info || !info->config || !info->request_id)
        return tr_err_set(err, TR_EINVAL, "fn_native_submit: missing invocation info");
    const fn_config_t *cfg = info->config;
    if (!cfg->handler || !strchr(cfg->handler, ':'))
        return tr_err_set(err, TR_EINVAL,
                          "Handler \"%s\" is not \"<file>.so:<symbol>\" as the %s "
                          "runtime requires",
                          cfg->handler ? cfg->handler : "", FN_NATIVE_RUNTIME);
    job_t *j = calloc(1, sizeof *j);
    if (!j) return tr_err_set(err, TR_ENOMEM, "out of memory");
    int rc = job_frame(&j->frame, info, err);
    if (rc) {
        job_free(j);
        return rc;
    }
    snprintf(j->request_id, sizeof j->request_id, "%s", info->request_id);
    j->deadline_ms = info->deadline_ms;
    j->timeout_s = cfg->timeout_s;
    j->log = log;
    j->done = done;
    j->tag = tag;
    spawn_t *fresh = NULL;

    pthread_mutex_lock(&nt->mu);
    if (nt->closing) {
        pthread_mutex_unlock(&nt->mu);
        job_free(j);
        return tr_err_set(err, TR_ECLOSED, "the native runtime is shutting down");
    }
    pool_t *p = pool_get(nt, cfg->name);
    if (!p) goto oom;
    int reconfigured = 0;
    if (!p->spawn || !spawn_same(p->spawn, cfg, nt->region)) {
        pthread_mutex_unlock(&nt->mu);
        fresh = spawn_build(nt, cfg);
        pthread_mutex_lock(&nt->mu);
        if (!fresh) goto oom;
        if (p->spawn) {
            /* The function changed: hosts of the old configuration retire (busy ones after
             * their job) and this job gets a new one. */
            p->generation++;
            reconfigured = 1;
        }
        spawn_unref(p->spawn);
        p->spawn = fresh;
    }
    j->spawn = p->spawn;
    j->spawn->refs++;
    if (p->q_tail) p->q_tail->next = j;
    else p->q_head = j;
    p->q_tail = j;
    p->q_len++;
    if ((reconfigured || p->q_len > p->n_waiting) && host_add(nt, p)) {
        /* No thread for it: a host that is running will still take it. */
        if (!p->n_hosts) {
            p->q_head = p->q_tail = NULL; /* it is the only job: undo */
            p->q_len = 0;
            spawn_unref(j->spawn);
            pthread_mutex_unlock(&nt->mu);
            job_free(j);
            return tr_err_set(err, TR_ENOMEM, "cannot start a host thread");
        }
    }
    /* Broadcast, not signal: a woken host of an old generation exits instead of taking it. */
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&nt->mu);
    return 0;
oom:
    pthread_mutex_unlock(&nt->mu);
    job_free(j);
    return tr_err_set(err, TR_ENOMEM, "out of memory");
}

void fn_native_cancel(fn_native_t *nt, void *tag) {
    job_t *gone = NULL;
    pthread_mutex_lock(&nt->mu);
    for (pool_t *p = nt->pools; p && !gone; p = p->next) {
        for (job_t **jj = &p->q_head, *prev = NULL; *jj; prev = *jj, jj = &(*jj)->next) {
            if ((*jj)->tag != tag) continue;
            gone = *jj;
            *jj = gone->next;
            if (p->q_tail == gone) p->q_tail = prev;
            p->q_len--;
            break;
        }
        for (host_t *h = p->hosts; h && !gone; h = h->next)
            if (h->job && h->job->tag == tag) {
                h->job->cancelled = 1;
                if (h->pid) kill(h->pid, SIGKILL);
            }
    }
    pthread_mutex_unlock(&nt->mu);
    if (gone) {
        char msg[128];
        snprintf(msg, sizeof msg, "RequestId: %s Error: Task timed out after %u.00 seconds",
                 gone->request_id, gone->timeout_s);
        finish_on(NULL, gone, "Sandbox.Timedout", msg, NULL, 0);
        pthread_mutex_lock(&nt->mu);
        spawn_unref(gone->spawn);
        pthread_mutex_unlock(&nt->mu);
        job_free(gone);
    }
}

void fn_native_release(fn_native_t *nt, const char *function_name) {
    pthread_mutex_lock(&nt->mu);
    for (pool_t *p = nt->pools; p; p = p->next)
        if (!strcmp(p->name, function_name)) {
            /* Hosts of the old generation exit when idle; queued jobs get new hosts. */
            p->generation++;
            pthread_cond_broadcast(&p->cv);
            if (p->q_len) host_add(nt, p);
        }
    pthread_mutex_unlock(&nt->mu);
}

void fn_native_set_table_handler(fn_native_t *nt, fn_native_table_fn fn, void *arg) {
    pthread_mutex_lock(&nt->mu);
    nt->table_fn = fn;
    nt->table_arg = arg;
    while (nt->table_busy) pthread_cond_wait(&nt->table_idle, &nt->mu);
    pthread_mutex_unlock(&nt->mu);
}

size_t fn_native_host_count(fn_native_t *nt, const char *function_name) {
    size_t n = 0;
    pthread_mutex_lock(&nt->mu);
    for (pool_t *p = nt->pools; p; p = p->next)
        if (!function_name || !strcmp(p->name, function_name))
            for (host_t *h = p->hosts; h; h = h->next) n += h->pid != 0;
    pthread_mutex_unlock(&nt->mu);
    return n;
}
