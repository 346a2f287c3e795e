/* SPDX-License-Identifier: Apache-2.0
 *
 * fn_int.h -- internals of the functions engine shared by its files (not API; see fn.h).
 *
 *   fn.c      lifetime, the registry (LMDB), configuration validation, ARN parsing
 *   zip.c     deployment packages: store, hash, unpack (zip-slip safe)
 *   sched.c   invocations: queues, concurrency, deadlines, async queue, metrics, logs
 *   child.c   the `provided` runtimes: child processes, the supervisor thread, fn_rt_*
 *   sandbox.c what a function process can reach (sandbox.h; child.c and the native runtime)
 *
 * Locking: one engine mutex (fn->mu) guards every structure below except where noted.  Lock
 * order: fn->mu, then a function's log_mu.  Callbacks to users (fn_invoke_cb, fn_rt_next_cb,
 * plug-in runtime entry points) are never called with fn->mu held: code under the lock queues
 * them on a fn__todo_t and runs them after unlocking (fn__todo_run).
 */
#ifndef FN_INT_H
#define FN_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "fn/fn.h"

#define FN__MAX_RUNTIMES 8
#define FN__PATH 4096
#define FN__GRACE_MS 500

typedef struct fn_func fn_func_t;
typedef struct fn_inst fn_inst_t;
typedef struct fn__ev fn__ev_t;

enum { FN__INV_QUEUED = 0, FN__INV_RUNNING = 1, FN__INV_DONE = 2 };
enum {
    FN__INST_SPAWNING = 0,   /* allocated, fork not done yet */
    FN__INST_INIT = 1,       /* running, has not asked for /next yet */
    FN__INST_IDLE = 2,       /* /next parked, waiting for work */
    FN__INST_BUSY = 3,       /* an invocation handed out, not answered */
    FN__INST_READY = 4,      /* answered, has not asked for /next again yet */
    FN__INST_DEAD = 5,       /* killed or exited; waiting to be reaped */
};

/* One invocation, from fn_invoke to its callback. */
struct fn_inv {
    fn_t *fn;
    fn_func_t *func;                 /* holds a reference */
    char request_id[FN_REQUEST_ID_LEN + 1];
    char trace_id[128];
    char *client_context;
    uint8_t *payload;
    size_t payload_len;
    int type;                        /* FN_INVOKE_* */
    int want_tail;
    int wait_for_slot;
    const void *native;
    fn_invoke_cb cb;
    void *cb_arg;
    int state;                       /* FN__INV_* */
    int64_t enqueue_ms, start_ms, deadline_ms;
    long long start_ns;
    fn_inst_t *inst;                 /* provided runtime: the instance running it */
    int plugin;                      /* run by a plug-in runtime */
    atomic_int refs;                 /* engine until its callback ran + pending /next answers +
                                        plug-in runtime until fn_inv_complete */
    int cancelled;                   /* timed out/closed under a plug-in runtime */
    int q_unreserved, r_unreserved;  /* counted in fn->queued_/running_unreserved (the
                                        reservation may change meanwhile) */
    double init_ms;                  /* cold start: the instance's init duration */
    tr_buf tail;                     /* log lines of this invocation (last FN_LOG_TAIL kept) */
    fn__ev_t *ev;                    /* asynchronous: its durable queue entry */
    fn_inv_t *next;                  /* queue link */
    fn_inv_t *rnext;                 /* fn->running link */
    /* the outcome (filled when done, before the callback) */
    fn_result_t res;
    tr_buf res_payload;
    char fnerr[64];
};

/* An asynchronous event in the durable queue (metadata; the payload stays in LMDB). */
struct fn__ev {
    uint64_t seq;                    /* key: name \0 seq (big-endian) */
    int64_t not_before_ms;           /* retry delay */
    uint32_t attempt;                /* 0 = first run */
    int in_flight;
    int throttled;                   /* counted once in the Throttles metric */
    char request_id[FN_REQUEST_ID_LEN + 1];
    fn__ev_t *next;
};

/* A running `bootstrap` (provided runtimes). */
struct fn_inst {
    fn_func_t *func;                 /* holds a reference */
    uint64_t gen;                    /* func->gen when spawned; older ones are retired */
    char token[FN_TOKEN_LEN + 1];
    pid_t pid;
    int pidfd;                       /* readable when the process exits; -1 before spawn */
    int out_fd;                      /* read end of its stdout+stderr pipe; -1 at EOF */
    int state;                       /* FN__INST_* */
    int retire;                      /* exit when idle (code/config changed, over cap) */
    int init_reported;               /* the first invocation reports Init Duration */
    int exited;                      /* its pidfd became readable: reap it */
    int64_t spawn_ms, init_deadline_ms, idle_since_ms;
    long long spawn_ns;
    double init_ms;
    fn_rt_next_cb next_cb;           /* parked /next */
    void *next_arg;
    fn_inv_t *inv;                   /* the invocation it runs (BUSY) */
    tr_buf line;                     /* partial output line */
    const char *exit_reason;         /* why the engine killed it (for the log), or NULL */
    void *listener;                  /* its Runtime API listener (fn_rt_listener_t), or NULL */
    char scratch[FN__PATH];          /* its $TMPDIR (sandbox.h), removed with it; "" if none */
    fn_inst_t *next;                 /* fn->insts link */
};

/* A registered function: configuration plus live state. */
struct fn_func {
    fn_config_t cfg;                 /* current configuration (owned) */
    char code_hex[65];               /* SHA-256 hex of the package (names the files) */
    char prev_hex[65];               /* the package before the last update ("" none): kept on
                                        disk while instances started on it may still run */
    uint64_t gen;                    /* bumped on every code/configuration change */
    int deleted;
    atomic_int refs;                 /* registry 1 + invocations + instances */
    int runtime;                     /* index in fn->rts, or -1 for provided */
    /* scheduling */
    fn_inv_t *q_head, *q_tail;       /* queued invocations (FIFO) */
    uint32_t n_queued;
    uint32_t running;                /* invocations started, not finished */
    uint32_t n_insts;                /* live instances (not DEAD) */
    /* durable async queue (metadata, in seq order; retries re-appended) */
    fn__ev_t *ev_head, *ev_tail;
    uint64_t n_ev;
    /* metrics */
    fn_metrics_t m;
    /* logs */
    pthread_mutex_t log_mu;
    int log_fd;
    uint64_t log_size;
    fn_func_t *next;                 /* fn->funcs list, sorted by name */
};

/* A package being stored for a function (code_put .. its commit or failure): the code GC keeps
 * every code-<hex>* entry of a pinned (name, hex), and the name's directory itself. */
typedef struct fn__pin {
    char name[FN_MAX_NAME + 1];
    char hex[65];
    uint32_t n;
} fn__pin_t;

/* One fn_work_submit call waiting for a code worker. */
typedef struct fn__job fn__job_t;

typedef struct fn__rt {
    const fn_runtime_t *rt;
    void *arg;
} fn__rt_t;

struct fn {
    char root[FN__PATH - 1024];      /* data_dir/functions (short enough for any file under it) */
    char region[64];
    char runtime_api[128];
    fn_rt_listener_t rtl;            /* per-instance listeners (open NULL: shared listener) */
    struct fn__grave {               /* listeners of gone instances, closed FN__GRACE_MS later
                                        (their last answers must leave first: libmicrohttpd
                                        refuses to stop with a connection still suspended) */
        void *handle;
        int64_t at;
    } *grave;
    size_t n_grave, cap_grave;
    fn_opts_t o;
    MDB_env *env;
    MDB_dbi db_fn, db_ev;
    pthread_mutex_t mu;
    fn_func_t *funcs;                /* sorted by name */
    fn_inst_t *insts;                /* all provided instances */
    fn_inv_t *running;               /* all started invocations (deadline scan) */
    fn__rt_t rts[FN__MAX_RUNTIMES];
    size_t n_rts;
    uint32_t running_total;          /* account concurrency in use */
    uint32_t running_unreserved;     /* of which functions without reservation */
    uint32_t queued_unreserved;      /* queued invocations of functions without reservation */
    uint64_t reserved_total;         /* sum of reservations */
    uint64_t ev_seq;                 /* next async queue sequence */
    int started, closing, shut;
    int sup_running;
    pthread_t sup;                   /* supervisor thread (child.c) */
    int wake[2];                     /* self-pipe waking the supervisor */
    fn__pin_t *pins;                 /* packages being stored (see fn__pin_t) */
    size_t n_pins, cap_pins;
    /* code workers (fn_work_submit): CreateFunction / UpdateFunctionCode off network threads */
    pthread_cond_t job_cv;
    fn__job_t *job_head, *job_tail;
    uint32_t n_jobs; /* queued, not yet taken by a worker */
    pthread_t workers[FN_CODE_WORKERS];
    int n_workers;
    int jobs_stop;
};

/* Deferred user callbacks, run after fn->mu is released (arrays grow as needed). */
typedef struct fn__next_call {
    fn_rt_next_cb cb;
    void *arg;
    int rc;
    fn_inv_t *inv; /* rc 0: the event; kept alive until the call has run */
} fn__next_call_t;

typedef struct fn__todo {
    fn_inv_t **done; /* invocations whose callback is due */
    size_t n_done, cap_done;
    fn__next_call_t *next; /* /next answers */
    size_t n_next, cap_next;
    fn_inv_t **start; /* plug-in invocations to hand to their runtime */
    size_t n_start, cap_start;
    fn_inst_t **spawn; /* instances to fork */
    size_t n_spawn, cap_spawn;
    fn_inv_t **cancel; /* plug-in invocations past their deadline */
    size_t n_cancel, cap_cancel;
    char **scratch; /* gone instances' scratch dirs to remove (owned) */
    size_t n_scratch, cap_scratch;
} fn__todo_t;

#define FN__TODO_INIT {0}
void fn__todo_push(void **arr, size_t *n, size_t *cap, size_t elem, const void *item);
#define FN__TODO_ADD(t, field, item)                                                               \
    do {                                                                                           \
        __typeof__(*(t)->field) it_ = (item);                                                      \
        fn__todo_push((void **)&(t)->field, &(t)->n_##field, &(t)->cap_##field,                    \
                      sizeof *(t)->field, &it_);                                                   \
    } while (0)

/* ---- fn.c ---- */
fn_func_t *fn__func_find(fn_t *fn, const char *name);
void fn__func_unref(fn_t *fn, fn_func_t *f);
int fn__config_copy(fn_config_t *dst, const fn_config_t *src);
void fn__iso_time(int64_t ms, char *out, size_t cap, int aws_offset);

/* ---- zip.c ---- */
/* Fault injection (tests only; NULL in production): called at every step of storing a package
 * that touches the disk, with the step's name ("unpack.mkdir", "unpack.write", "unpack.link",
 * "sync", "zip.write", "zip.rename", "dir.rename", "dir.fsync", "fn.mkdir", "fn.fsync",
 * "reg.commit"); a nonzero return is an errno the step then fails with. */
extern int (*fn__fault)(const char *step);
#define FN__FAULT(step) (fn__fault ? fn__fault(step) : 0)
/* SHA-256 of data as hex (65) and base64 (45). */
void fn__sha256(const uint8_t *p, size_t n, char hex[65], char b64[45]);
/* Write dir/code-<hex>.zip and unpack it to dir/code-<hex>/ (temp names + renames), made
 * durable with one syncfs and one directory fsync (none when no_sync).  Another store of the
 * same hex may run at once (the caller pins it): both succeed.  On failure nothing of this call
 * is left.  TR_EINVAL for a bad or unsafe zip or one past FN_MAX_UNZIPPED / FN_MAX_ZIP_ENTRIES,
 * TR_EIO. */
int fn__code_store(const char *dir, const char *hex, const uint8_t *zip, size_t n, int no_sync,
                   tr_err *err);
/* Unpack an already stored zip if its directory is missing (after a crash). */
int fn__code_ensure(const char *dir, const char *hex, int no_sync, tr_err *err);
/* Unpack zip bytes into target (must not exist; created).  Nothing is synced.  On failure the
 * target is removed.  Every file, directory and link it creates is inside target, and every
 * link resolves (as the kernel resolves it, through other links) inside target or dangles
 * there. */
int fn__zip_unpack(const uint8_t *zip, size_t n, const char *target, tr_err *err);

/* ---- sched.c ---- */
void fn__todo_run(fn_t *fn, fn__todo_t *t);
void fn__dispatch(fn_t *fn, fn_func_t *f, fn__todo_t *t);
void fn__inv_finish(fn_t *fn, fn_inv_t *inv, const char *fnerr, const uint8_t *payload, size_t len,
                    const char *status_note, fn__todo_t *t);
void fn__inv_fail(fn_t *fn, fn_inv_t *inv, int rc, const char *msg, fn__todo_t *t);
void fn__inv_unref(fn_inv_t *inv);
void fn__inv_mark_running(fn_t *fn, fn_inv_t *inv);
fn_inv_t *fn__q_pop(fn_t *fn, fn_func_t *f);
int fn__can_start(fn_t *fn, fn_func_t *f);
void fn__log_line(fn_t *fn, fn_func_t *f, fn_inv_t *inv, const char *text, size_t len);
void fn__log_open(fn_t *fn, fn_func_t *f);
void fn__log_close(fn_func_t *f);
int64_t fn__next_deadline(fn_t *fn, int64_t now);
void fn__timers(fn_t *fn, int64_t now, fn__todo_t *t);
uint32_t fn__cap(fn_t *fn, fn_func_t *f);
int fn__ev_load(fn_t *fn, tr_err *err);
void fn__ev_drop_all(fn_t *fn, fn_func_t *f, MDB_txn *txn);
void fn__func_retire_all(fn_t *fn, fn_func_t *f, int rc, const char *why, fn__todo_t *t);

/* ---- child.c ---- */
int fn__sup_start(fn_t *fn, tr_err *err);
void fn__sup_stop(fn_t *fn);
void fn__sup_wake(fn_t *fn);
fn_inst_t *fn__inst_new(fn_t *fn, fn_func_t *f);
void fn__inst_spawn(fn_t *fn, fn_inst_t *in);
void fn__inst_kill(fn_t *fn, fn_inst_t *in, const char *why, fn__todo_t *t);
void fn__inst_give(fn_t *fn, fn_inst_t *in, fn_inv_t *inv, fn__todo_t *t);
void fn__inst_drain(fn_t *fn, fn_inst_t *in);
fn_inst_t *fn__inst_by_token(fn_t *fn, const char *token);
int fn__runtime_is_provided(const char *rt);

#endif
