/* SPDX-License-Identifier: Apache-2.0
 *
 * fn.h -- the functions engine: Lambda as a C library, without HTTP.
 *
 * A fn_t owns DATA/functions/:
 *
 *     DATA/functions/data.mdb, lock.mdb     LMDB: function configurations ("fn" db) and the
 *                                           durable queue of asynchronous invocations ("ev" db)
 *     DATA/functions/<name>/code-<hex>.zip   the deployment package as uploaded (hex = SHA-256)
 *     DATA/functions/<name>/code-<hex>/      the package unpacked (the function's task root)
 *     DATA/functions/<name>/logs/function.log   every instance's stdout/stderr, one line per
 *                                           line, "<ISO time>\t<request id or ->\t<text>", with
 *                                           AWS's START / END / REPORT lines; rotated to
 *                                           function.log.1 past opts.log_max_bytes
 *
 * What it does: a registry of functions (create/get/list/update/delete, reserved concurrency),
 * and invocation.  fn_invoke queues one invocation of a function and calls back with its result
 * (payload, function-error flag, log tail).  Invocations are run by a *runtime*:
 *   - "provided", "provided.al2", "provided.al2023" are built in: the package's executable
 *     `bootstrap` runs as a child process (one per concurrent invocation, reused while warm) in
 *     the unpacked code directory, and talks to the engine through the Lambda Runtime API.  The
 *     HTTP side of that API lives in api/runtime.c and calls the fn_rt_* functions below; the
 *     engine asks it for one listener per instance (fn_rt_listener_t), so every instance sees
 *     a plain AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port> as on AWS.  A "#!/bin/sh" bootstrap runs
 *     under /bin/bash in POSIX mode (Amazon Linux's /bin/sh is bash; AWS's tutorial needs it).
 *   - other runtimes plug in with fn_runtime_register (the native C runtime does).
 *
 * Invariants
 *   - Configuration changes are durable (LMDB commit; a package synced by one syncfs of the
 *     data file system and one directory fsync) before the call returns.  Function names are
 *     unique; a deleted name can be re-created at once.
 *   - Code on disk: a package is complete before the commit naming it and removed only after a
 *     commit that no longer names it (decided under the engine lock), so concurrent updates,
 *     creates and deletes never lose the package the registry holds; a refused call leaves
 *     nothing.  Links in a package resolve inside it (as the kernel resolves them).
 *   - An Event (asynchronous) invocation is acknowledged (callback status 202) only once it is in
 *     the durable queue; it runs at least once (again after a crash), retried up to
 *     opts.async_retries times after a function error, then dropped with a warning.
 *   - At most `reserved concurrency` invocations of a function run at once (when set), and at
 *     most opts.account_concurrency across all functions.  A RequestResponse invocation beyond
 *     that fails with TR_ETHROTTLED (unless req.wait_for_slot); an Event invocation waits.
 *   - An invocation still running at its deadline (Timeout seconds after it started) fails with
 *     "Task timed out after N.NN seconds"; its instance is killed (SIGKILL) and never reused.
 *   - A function is identified by name; qualifier NULL, "" or "$LATEST" (the only version).
 *
 * Thread rules: every function is thread-safe.  Callbacks (fn_invoke_cb, fn_rt_next_cb) run on
 * an engine thread or, when the outcome is known at once, on the calling thread before the call
 * returns; they must be short (copy what they need, wake someone) and must not call fn_close.
 * They may call any other fn_* function.
 *
 * Memory: payloads are bounded by FN_MAX_SYNC_PAYLOAD / FN_MAX_ASYNC_PAYLOAD (TR_ETOOBIG past
 * them); the engine copies a payload when it queues it.  Result buffers handed to a callback are
 * borrowed for the duration of the callback.
 *
 * Caveats
 *   - MemorySize bounds each process of an instance with RLIMIT_DATA (private writable
 *     memory), not a cgroup: allocations past it fail (ENOMEM / MemoryError), and a process tree
 *     can exceed it in total.  RLIMIT_AS was not used: runtimes such as V8 reserve far more
 *     address space than they use.  Fix: for a hard RSS bound run the server in a cgroup with
 *     memory.max.
 *   - Instances run as the server's user, without a sandbox: functions are trusted code.
 *     Fix: run the server as an unprivileged user (or in a container).
 *   - Only $LATEST exists: PublishVersion and aliases are not implemented.
 *   - syncfs flushes every dirty file of the data file system, not just the package's: a disk
 *     busy with other writers makes a CreateFunction slower.  Fix: none needed for correctness;
 *     keep the data directory on its own file system for predictable deploy times.
 */
#ifndef FN_H
#define FN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define FN_MAX_NAME 64                       /* AWS: 64 characters [a-zA-Z0-9-_] */
#define FN_MAX_SYNC_PAYLOAD (6 * 1024 * 1024)   /* RequestResponse request and response */
#define FN_MAX_ASYNC_PAYLOAD (256 * 1024)       /* Event request (AWS: 256 KB) */
#define FN_MAX_ZIP (50 * 1024 * 1024)           /* direct upload; AWS: 50 MB */
#define FN_MAX_UNZIPPED (250 * 1024 * 1024)     /* AWS: 250 MB unzipped */
#define FN_MAX_ZIP_ENTRIES                                                                         \
    65535             /* entries in a package: AWS documents no cap; this
                                                is the classic (non-zip64) zip's own limit */
#define FN_CODE_WORKERS 2                    /* threads storing packages (fn_work_submit) */
#define FN_CODE_QUEUE 8                      /* packages waiting for them; more: TR_ETHROTTLED */
#define FN_LOG_TAIL 4096                     /* LogType Tail: last 4 KB */
#define FN_MAX_ENV_BYTES 4096                /* AWS: 4 KB of environment variables in all */
#define FN_REQUEST_ID_LEN 36                 /* UUID text */
#define FN_NO_RESERVED (-1)                  /* reserved_concurrency when none is set */

typedef struct fn fn_t;

/* ---- configuration ------------------------------------------------------------------------- */

typedef struct fn_env_var {
    char *key;                               /* owned by the containing config */
    char *value;
} fn_env_var_t;

/* A function's configuration.  Strings are owned by the struct: free with fn_config_free.
 * Inputs to fn_create use the same struct (the engine copies what it keeps; computed fields are
 * ignored on input). */
typedef struct fn_config {
    char name[FN_MAX_NAME + 1];
    char *runtime;                           /* "provided.al2023", or a registered runtime */
    char *handler;                           /* free text for provided (_HANDLER) */
    char *role;                              /* stored and returned, never checked */
    char *description;
    uint32_t timeout_s;                      /* 1-900; default 3 */
    uint32_t memory_mb;                      /* 128-10240; default 128 */
    fn_env_var_t *env;                       /* Environment.Variables in given order */
    size_t n_env;
    char **architectures;                    /* stored as given; default {"x86_64"} */
    size_t n_architectures;
    uint32_t ephemeral_mb;                   /* EphemeralStorage.Size; default 512 */
    int32_t reserved_concurrency;            /* FN_NO_RESERVED or 0..account limit */
    /* computed (output only) */
    char code_sha256[45];                    /* base64 SHA-256 of the zip, as AWS */
    uint64_t code_size;                      /* zip bytes */
    int64_t last_modified_ms;                /* LastModified */
    char revision_id[37];                    /* changes on every update */
    char arn[256]; /* arn:aws:lambda:<region>:000000000000:function:<name> */
    char *code_dir; /* absolute path of the unpacked package */
} fn_config_t;

void fn_config_free(fn_config_t *cfg); /* frees the owned strings; accepts NULL */

/* Changes for fn_update_config: a field applies only when its has_* flag is set. */
typedef struct fn_config_update {
    int has_runtime, has_handler, has_role, has_description, has_timeout, has_memory, has_env;
    const char *runtime, *handler, *role, *description;
    uint32_t timeout_s, memory_mb;
    const fn_env_var_t *env; /* replaces all variables (AWS semantics) */
    size_t n_env;
    const char *revision_id; /* if not NULL: TR_ECONDITION unless it matches */
} fn_config_update_t;

/* ---- lifetime ------------------------------------------------------------------------------ */

typedef struct fn_opts {
    const char *region; /* ARNs; "us-east-1" when NULL */
    uint32_t account_concurrency; /* all functions together; 0: 64 (AWS: 1000) */
    uint32_t unreserved_min; /* AWS keeps 100 unreserved; 0: 0 here */
    int64_t idle_instance_ms; /* a warm instance unused this long exits; 0: 600000 */
    int64_t init_timeout_ms; /* bootstrap must reach /next within; 0: 10000 */
    int64_t async_retry_ms; /* delay before retrying a failed Event; 0: 60000 */
    uint32_t async_retries; /* retries of a failed Event; 0: 2 as AWS;
                                                FN_NO_RETRIES: none */
    uint64_t log_max_bytes; /* function.log rotation size; 0: 64 MiB */
    int no_sync; /* tests only: skip fsync / LMDB sync */
} fn_opts_t;

#define FN_NO_RETRIES UINT32_MAX

/* Open (create) DATA/functions in data_dir, load the registry and the async queue.  Nothing is
 * started yet: no instances, no queued Event runs until fn_start.  TR_EIO / TR_ECORRUPT with a
 * message naming the path. */
int fn_open(const char *data_dir, const fn_opts_t *opts, fn_t **out, tr_err *err);
/* Per-instance Runtime API endpoints (what main.c uses).  As on AWS, every instance gets its
 * own address, and AWS_LAMBDA_RUNTIME_API is a plain "127.0.0.1:<port>" -- the only form every
 * runtime client accepts (aws-lambda-ric 4 parses it strictly as host:port).  open starts a
 * listener serving the Runtime API for the instance named by token (api/runtime.c passes that
 * token to the fn_rt_* calls) and returns its port; close stops it after the instance is gone
 * and its parked /next was answered.  Both are called without engine locks, open from the
 * thread that starts the instance, close from the supervisor thread.  The struct is copied;
 * arg must outlive fn. */
typedef struct fn_rt_listener {
    int (*open)(void *arg, const char *token, int *port, void **handle, tr_err *err);
    void (*close)(void *arg, void *handle);
    void *arg;
} fn_rt_listener_t;
/* Set before fn_start. */
void fn_set_rt_listener(fn_t *fn, const fn_rt_listener_t *l);
/* Start the engine's threads.  runtime_api: NULL with a listener set (above); otherwise the
 * "127.0.0.1:<port>" of one shared listener, and children get
 * AWS_LAMBDA_RUNTIME_API=<runtime_api>/<instance token> (clients that build URLs from the whole
 * variable work; clients that split host and port do not -- prefer the listener).  Copied. */
int fn_start(fn_t *fn, const char *runtime_api, tr_err *err);
/* Stop working: kill every instance, complete every pending invocation and parked /next with
 * TR_ECLOSED (callbacks run before this returns), stop the threads and the plug-in runtimes.
 * Queued Event invocations stay in the durable queue.  The handle stays valid -- calls made
 * meanwhile by other threads (a Runtime API request in flight) answer TR_ECLOSED or
 * TR_ENOTFOUND -- until fn_close.  Order at shutdown: close the event-source mappings, call
 * fn_shutdown, stop the Runtime API listener (its handlers have returned), then fn_close.
 * Idempotent; accepts NULL. */
void fn_shutdown(fn_t *fn);
/* fn_shutdown if not done, then free everything and close LMDB.  No other thread may be using
 * fn.  Accepts NULL. */
void fn_close(fn_t *fn);
/* The data_dir/functions path (borrowed; lives as long as fn). */
const char *fn_dir(fn_t *fn);
const char *fn_region(fn_t *fn);

/* ---- registry (synchronous, durable) ------------------------------------------------------- */

/* Create a function from cfg (name, runtime, handler, role, ... as in CreateFunction) and its
 * deployment package (zip bytes, already base64-decoded).  *out (may be NULL) receives the
 * stored configuration.  TR_EEXISTS if the name is taken; TR_EINVAL for a bad name, runtime,
 * timeout, memory, environment, or a zip that is not one, is unsafe (entries escaping the
 * directory, links leading out of it) or is past FN_MAX_UNZIPPED / FN_MAX_ZIP_ENTRIES;
 * TR_ETOOBIG for a zip past FN_MAX_ZIP.  The package is unpacked on the calling thread: from a
 * network thread use fn_work_submit.  A missing `bootstrap` is not checked
 * (AWS accepts it and fails at invoke with Runtime.InvalidEntrypoint; so do we). */
int fn_create(fn_t *fn, const fn_config_t *cfg, const uint8_t *zip, size_t zip_len,
              fn_config_t *out, tr_err *err);
/* Slow control-plane work off the caller's thread (what a network thread must use for
 * CreateFunction / UpdateFunctionCode: a package of tens of thousands of files takes seconds to
 * parse, unpack and sync).  run(arg, 0) is queued for one of FN_CODE_WORKERS engine threads,
 * which calls it once; it may call any fn_* function (fn_create, fn_update_code ...) but not
 * fn_shutdown / fn_close.  Returns 0 (queued: run will be called exactly once), TR_ETHROTTLED
 * when FN_CODE_QUEUE calls already wait (run is not called: answer 429 and let the client
 * retry), TR_ECLOSED after fn_shutdown began.  fn_shutdown waits for the running calls and
 * calls the queued ones with closed = 1 (answer "shutting down", touch nothing). */
typedef void (*fn_work_fn)(void *arg, int closed);
int fn_work_submit(fn_t *fn, fn_work_fn run, void *arg, tr_err *err);
/* Configuration of one function.  TR_ENOTFOUND ("function not found: arn..."). */
int fn_get(fn_t *fn, const char *name, fn_config_t *out, tr_err *err);
/* Up to max functions in name order after `marker` (NULL/"" = first).  *out is an array of
 * configs (free each with fn_config_free, then free(*out)); *next receives a malloc'd marker or
 * NULL when none follow. */
int fn_list(fn_t *fn, const char *marker, size_t max, fn_config_t **out, size_t *n, char **next,
            tr_err *err);
/* Replace the code.  revision_id: NULL or must match (TR_ECONDITION).  Warm instances of the old
 * code are retired (idle ones at once, busy ones after their invocation). */
int fn_update_code(fn_t *fn, const char *name, const uint8_t *zip, size_t zip_len,
                   const char *revision_id, fn_config_t *out, tr_err *err);
int fn_update_config(fn_t *fn, const char *name, const fn_config_update_t *upd, fn_config_t *out,
                     tr_err *err);
/* Delete the function, its queued Events, its code and logs; running instances are killed and
 * their invocations fail with TR_ENOTFOUND.  TR_ENOTFOUND. */
int fn_delete(fn_t *fn, const char *name, tr_err *err);

/* Reserved concurrency: n in [0, account_concurrency - unreserved_min - other reservations]
 * else TR_ELIMIT (message gives the room left).  0 throttles every invocation.  Delete sets it
 * back to FN_NO_RESERVED.  Get: *n = FN_NO_RESERVED when none. */
int fn_concurrency_put(fn_t *fn, const char *name, int32_t n, tr_err *err);
int fn_concurrency_delete(fn_t *fn, const char *name, tr_err *err);
int fn_concurrency_get(fn_t *fn, const char *name, int32_t *n, tr_err *err);

/* Split FunctionName as the Lambda API accepts it -- "name", "name:qualifier",
 * "123456789012:function:name[:qualifier]", "arn:aws:lambda:region:acct:function:name[:q]" --
 * into name (FN_MAX_NAME + 1 bytes) and qualifier (130 bytes, "" when none).  TR_EINVAL when it
 * matches none of those shapes (message says what a valid one looks like). */
int fn_name_parse(const char *in, char *name, char *qualifier, tr_err *err);

/* ---- invocation ---------------------------------------------------------------------------- */

enum {
    FN_INVOKE_SYNC = 0, /* RequestResponse */
    FN_INVOKE_EVENT = 1, /* asynchronous: durable queue, 202 */
    FN_INVOKE_DRYRUN = 2, /* validate only, 204 */
};

typedef struct fn_invoke_req {
    const char *name; /* function name (not an ARN: use fn_name_parse) */
    const char *qualifier; /* NULL, "" or "$LATEST" */
    int type; /* FN_INVOKE_* */
    const uint8_t *payload; /* the event JSON (NULL/0: "{}"); borrowed until
                                                fn_invoke returns (it is copied) */
    size_t payload_len;
    int log_tail; /* want result.log_tail (LogType Tail) */
    int wait_for_slot; /* SYNC at the concurrency limit: queue instead of
                                                TR_ETHROTTLED (event-source pollers) */
    const char *trace_id; /* Lambda-Runtime-Trace-Id; NULL: generated */
    const char *client_context; /* base64 JSON, passed to the runtime; may be NULL */
    /* Opaque to the engine, handed to a plug-in runtime's invoke (fn_inv_info_t.native) so a
     * native runtime can take records without JSON.  Borrowed until the callback has run.  The
     * payload must still be valid JSON for runtimes that need it. */
    const void *native;
} fn_invoke_req_t;

/* The outcome of one invocation, borrowed by the callback for its duration. */
typedef struct fn_result {
    int rc; /* 0: the function ran (or was queued / validated);
                                                TR_ENOTFOUND, TR_ETHROTTLED, TR_ETOOBIG (response
                                                too large), TR_ECLOSED (shutdown), TR_EINVAL */
    int status; /* 200 (SYNC), 202 (EVENT), 204 (DRYRUN) when rc 0 */
    const char *function_error; /* NULL, or "Unhandled" (timeout, crash, /error) */
    const uint8_t *payload; /* response, or the error JSON
                                                {"errorMessage","errorType",...} */
    size_t payload_len;
    const char *log_tail; /* raw last <= 4 KB of this invocation's log lines
                                                (START..REPORT) when req.log_tail; else NULL */
    size_t log_tail_len;
    const char *throttle_reason; /* with TR_ETHROTTLED: AWS's Reason, e.g.
                                                "ReservedFunctionConcurrentInvocationLimitExceeded" */
    const char *executed_version; /* "$LATEST" */
    char request_id[FN_REQUEST_ID_LEN + 1];
    double duration_ms; /* run time (0 when it did not run) */
    tr_err err; /* message when rc < 0 */
} fn_result_t;

typedef void (*fn_invoke_cb)(void *arg, const fn_result_t *res);

/* Start an invocation.  Returns 0 when the callback WILL run exactly once (possibly before this
 * returns), or an error without calling it: TR_ENOTFOUND (function or qualifier), TR_ETOOBIG
 * (payload over the limit for the type), TR_EINVAL, TR_ECLOSED.  Throttling is reported through
 * the callback (rc TR_ETHROTTLED), as are function errors (rc 0, function_error set).
 * EVENT: the callback runs (status 202) once the event is durable; the run itself reports only
 * to the log and metrics. */
int fn_invoke(fn_t *fn, const fn_invoke_req_t *req, fn_invoke_cb cb, void *arg, tr_err *err);

/* Blocking convenience for engine threads (event-source pollers): invoke and wait.  *out gets
 * owned copies (free with fn_result_free).  Returns out->rc (or the fn_invoke error). */
typedef struct fn_result_owned {
    fn_result_t r; /* payload / log_tail point into the buffers below */
    tr_buf payload_buf, tail_buf;
    char *function_error_copy, *throttle_reason_copy;
} fn_result_owned_t;
int fn_invoke_wait(fn_t *fn, const fn_invoke_req_t *req, fn_result_owned_t *out);
void fn_result_free(fn_result_owned_t *out);

/* ---- metrics ------------------------------------------------------------------------------- */

typedef struct fn_metrics {
    char name[FN_MAX_NAME + 1];
    uint64_t invocations; /* ran (success or function error) */
    uint64_t errors; /* function errors, timeouts, crashes */
    uint64_t throttles; /* refused or delayed by a concurrency limit */
    uint64_t duration_count;
    double duration_sum_ms;
    uint64_t duration_le[8]; /* cumulative buckets: 1,5,10,50,100,500,1000,5000 ms */
    uint32_t concurrent; /* running now */
    uint32_t instances; /* live instances (warm or busy) */
    uint64_t async_queued; /* Event invocations waiting */
} fn_metrics_t;

#define FN_DURATION_BUCKETS {1, 5, 10, 50, 100, 500, 1000, 5000}

/* Snapshot of every function's counters (counters live in memory since fn_open).  *out is
 * malloc'd (free it).  */
int fn_metrics_list(fn_t *fn, fn_metrics_t **out, size_t *n);
/* Append Prometheus text exposition of all counters to out (tributary_lambda_* families with a
 * function_name label). */
void fn_metrics_prometheus(fn_t *fn, tr_buf *out);

/* ---- runtime API (called by api/runtime.c) ------------------------------------------------- */

/* token: the instance, as fn_rt_listener_t.open received it (per-instance listeners), or the
 * first path segment of the request (one shared listener, AWS_LAMBDA_RUNTIME_API ending in
 * "/<token>").  Response and error posts are also accepted without a token (routed by request
 * id). */
#define FN_TOKEN_LEN 16

typedef struct fn_rt_event {
    const char *request_id; /* Lambda-Runtime-Aws-Request-Id */
    int64_t deadline_ms; /* Lambda-Runtime-Deadline-Ms (Unix ms) */
    const char *function_arn; /* Lambda-Runtime-Invoked-Function-Arn */
    const char *trace_id; /* Lambda-Runtime-Trace-Id */
    const char *client_context; /* Lambda-Runtime-Client-Context or NULL */
    const uint8_t *payload; /* the event */
    size_t payload_len;
} fn_rt_event_t;

/* rc 0: ev is the next invocation (borrowed during the callback).  rc < 0: no event will come
 * on this request (instance retired, TR_ECLOSED on shutdown): answer 500 / close. */
typedef void (*fn_rt_next_cb)(void *arg, int rc, const fn_rt_event_t *ev);

/* GET .../runtime/invocation/next: park until an invocation is assigned to this instance.
 * Returns 0 when cb WILL run once (maybe before returning); TR_ENOTFOUND for an unknown token
 * (403), TR_EINUSE when the instance already has a /next parked or an invocation in flight that
 * it has not answered (400, AWS's "InvalidStateTransition"). */
int fn_rt_next(fn_t *fn, const char *token, fn_rt_next_cb cb, void *arg, tr_err *err);
/* POST .../invocation/<id>/response.  token may be NULL.  TR_ENOTFOUND: no such invocation in
 * flight on this instance (AWS 400 InvalidRequestID); TR_ETOOBIG: response over 6 MB (413: the
 * invocation fails with Function.ResponseSizeTooLarge). */
int fn_rt_response(fn_t *fn, const char *token, const char *request_id, const uint8_t *body,
                   size_t len, tr_err *err);
/* POST .../invocation/<id>/error with Lambda-Runtime-Function-Error-Type (may be NULL) and the
 * error JSON body ({"errorMessage","errorType","stackTrace"}; passed back as the payload). */
int fn_rt_error(fn_t *fn, const char *token, const char *request_id, const char *error_type,
                const uint8_t *body, size_t len, tr_err *err);
/* POST .../runtime/init/error: the instance failed to initialise; it is killed and the
 * invocation that waited for it fails with this error.  TR_ENOTFOUND for an unknown token. */
int fn_rt_init_error(fn_t *fn, const char *token, const char *error_type, const uint8_t *body,
                     size_t len, tr_err *err);

/* ---- plug-in runtimes (the native C runtime) ----------------------------------------------- */

typedef struct fn_inv fn_inv_t; /* one invocation handed to a plug-in runtime */

/* What a plug-in runtime gets for one invocation; borrowed until fn_inv_complete. */
typedef struct fn_inv_info {
    const char *request_id;
    const fn_config_t *config; /* name, handler, env, memory, timeout, code_dir */
    int64_t deadline_ms; /* wall clock */
    const uint8_t *payload;
    size_t payload_len;
    const void *native; /* fn_invoke_req_t.native (may be NULL) */
    const char *trace_id;
    const char *client_context;
} fn_inv_info_t;

typedef struct fn_runtime {
    const char *name; /* Runtime value it serves, e.g. "tributary.c1" */
    /* Start one invocation and return at once.  Called on an engine thread, without engine
     * locks held, at most `concurrency limit` at a time per function.  Must eventually call
     * fn_inv_complete(inv, ...) exactly once -- also after cancel.  A nonzero return fails the
     * invocation with Runtime.Unknown and err's message (then do not call fn_inv_complete). */
    int (*invoke)(void *arg, fn_inv_t *inv, const fn_inv_info_t *info, tr_err *err);
    /* The deadline passed: stop the work (kill the host process if need be).  The engine has
     * already answered "Task timed out"; the later fn_inv_complete is ignored.  May be NULL. */
    void (*cancel)(void *arg, fn_inv_t *inv);
    /* The function's code or configuration changed or it was deleted: drop cached state (loaded
     * .so, warm host processes) for it.  May be NULL. */
    void (*release)(void *arg, const char *function_name);
    /* fn_close: stop everything; called after all invocations completed or were cancelled. */
    void (*shutdown)(void *arg);
} fn_runtime_t;

/* Register a runtime before fn_start (rt and arg must outlive fn).  TR_EEXISTS for a taken
 * name (including the built-in provided*). */
int fn_runtime_register(fn_t *fn, const fn_runtime_t *rt, void *arg, tr_err *err);

/* Append to the invocation's log (the function log and, when requested, the log tail); text
 * may hold several lines.  Any thread, before fn_inv_complete. */
void fn_inv_log(fn_inv_t *inv, const char *text, size_t len);
/* Finish an invocation.  function_error NULL (success: payload is the response) or an AWS
 * errorType such as "Runtime.ExitError" / "Handled" (payload is the error JSON; when payload is
 * NULL the engine writes {"errorMessage": error_message, "errorType": function_error}).  The
 * payload is copied.  After this inv is gone. */
void fn_inv_complete(fn_inv_t *inv, const char *function_error, const char *error_message,
                     const uint8_t *payload, size_t len);

#endif
