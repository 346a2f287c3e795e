/* SPDX-License-Identifier: Apache-2.0
 *
 * native.h -- the native C runtime ("tributary.c1"): user .so files run in supervised host
 * processes, never in the server.
 *
 * A function deployed with Runtime "tributary.c1" and Handler "<file>.so:<symbol>" is run by a
 * pool of host processes per function.  A host is the tributary binary itself, exec'd with the
 * hidden subcommand `tributary __fn-host` (fn_native_host_main), in the function's unpacked code
 * directory with AWS's environment (AWS_LAMBDA_FUNCTION_NAME, _HANDLER, LAMBDA_TASK_ROOT, ...,
 * the function's Environment.Variables).  It dlopen()s the library with RTLD_NOW | RTLD_LOCAL,
 * runs the optional module init, then serves one invocation at a time over a socketpair (fd 3);
 * its stdout and stderr are a pipe the supervisor reads into the invocation's log.
 *
 * Wire format (native_int.h): length-prefixed frames.  A stream batch travels as binary records
 * -- partition key, data bytes, sequence number, arrival time -- never as JSON or base64.  A
 * handler's DynamoDB calls (trf_table_*) travel on the same socket and are served by the host's
 * supervisor thread through fn_native_set_table_handler.
 *
 * Invariants
 *   - A crash, exit or hang of user code never reaches the server: the host dies alone, its
 *     invocation fails with Runtime.ExitError ("signal: segmentation fault" ...) or "Task timed
 *     out after N.NN seconds" (the host is SIGKILLed at the deadline), and the next invocation
 *     gets a fresh host (a cold start).
 *   - One invocation at a time per host; hosts are reused while warm (opts.idle_ms).
 *   - Hosts die with the server (PR_SET_PDEATHSIG), so kill -9 of the server leaves no orphans.
 *   - Every submitted job completes exactly once (done callback), also on shutdown (TR_ECLOSED
 *     message, function_error "Runtime.Unknown").
 *
 * Thread rules: all functions are thread-safe.  Callbacks run on the pool's supervisor threads
 * (one per host) without locks held; they must not call fn_native_destroy.
 *
 * Caveats
 *   - MemorySize is enforced with RLIMIT_DATA (private writable memory), not a cgroup.  Fix: run
 *     the server in a cgroup with memory.max for a hard RSS bound.
 *   - The host is exec'd from opts.host_exe (default /proc/self/exe): replacing the server
 *     binary on disk while it runs makes new hosts the new version.  Fix: restart the server
 *     after an upgrade.
 */
#ifndef FN_NATIVE_H
#define FN_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "fn/fn.h"
#include "tributary/function.h"

#define FN_NATIVE_RUNTIME TRF_RUNTIME_NAME       /* "tributary.c1" */
#define FN_NATIVE_HOST_CMD "__fn-host"            /* argv[1] of a host process */
#define FN_NATIVE_BATCH_MAGIC 0x54524231u         /* "TRB1" */

/* A stream batch handed to the native runtime without JSON: put a pointer to one in
 * fn_invoke_req_t.native (borrowed until the invocation's callback has run).  The event-source
 * mappings do this when the function's runtime is FN_NATIVE_RUNTIME; other runtimes ignore it
 * and use the JSON payload.  The records are the handler's own view (trf_record_t of
 * <tributary/function.h>), so this engine does not depend on how the stream log stores them:
 * the caller fills sequence_number with the public text (slog_seq_format) and the runtime sends
 * each field as it is. */
typedef struct fn_native_batch {
    uint32_t magic;                      /* FN_NATIVE_BATCH_MAGIC */
    const trf_record_t *recs;            /* in sequence order */
    size_t n;
    uint32_t shard;                      /* shard index: the event's shardId */
    const char *event_source_arn;
    const char *region;
    const trf_window_t *window;          /* NULL, or the tumbling window of this invoke */
} fn_native_batch_t;

typedef struct fn_native fn_native_t;

/* The answer to one table call: the HTTP status and body DynamoDB's API would send (borrowed for
 * the callback).  Called exactly once per call, from any thread, possibly before the call
 * returns. */
typedef void (*fn_native_table_done_fn)(void *done_arg, int status, const char *body, size_t len);
/* Answer a table call that the engine could not pass to the table handler, in the handler's
 * protocol (the engine does not know its error format; main.c renders DynamoDB's): call done
 * exactly once before returning.  code says what happened -- TR_ESERIALIZATION: the call's frame
 * was malformed; TR_ECLOSED: no table handler is installed; TR_ENOMEM: no memory to pass the
 * call on or to frame the handler's answer -- and msg says it in words (borrowed). */
typedef void (*fn_native_table_error_fn)(int code, const char *msg, fn_native_table_done_fn done,
                                         void *done_arg);

typedef struct fn_native_opts {
    const char *host_exe;                /* binary with the __fn-host subcommand; NULL:
                                            /proc/self/exe (resolved at create) */
    const char *region;                  /* AWS_REGION of hosts; NULL: "us-east-1" */
    int64_t idle_ms;                     /* a warm host unused this long exits; 0: 600000 */
    int64_t init_timeout_ms;             /* dlopen + module init must finish within; 0: 10000 */
    fn_native_table_error_fn table_error;  /* NULL: statuses 400 (TR_ESERIALIZATION), 503
                                              (TR_ECLOSED), 500 (TR_ENOMEM) with the body
                                              {"message":"<msg>"} */
} fn_native_opts_t;

int fn_native_create(const fn_native_opts_t *opts, fn_native_t **out, tr_err *err);
/* Kill every host (graceful shutdown is not attempted), complete pending jobs with
 * "Runtime.Unknown" / shutting down, join the threads.  Accepts NULL. */
void fn_native_destroy(fn_native_t *nt);

/* ---- jobs ------------------------------------------------------------------------------------ */

/* Log text of a job (several lines possible), as the host prints it. */
typedef void (*fn_native_log_cb)(void *tag, const char *text, size_t len);
/* The job's outcome: function_error NULL and payload the response; or an AWS errorType
 * ("HandlerError", "Runtime.ExitError", "Sandbox.Timedout", "Runtime.InvalidEntrypoint", ...)
 * with payload the error JSON (NULL with error_message when the runtime itself failed). */
typedef void (*fn_native_done_cb)(void *tag, const char *function_error, const char *error_message,
                                  const uint8_t *payload, size_t len);

/* Run one invocation described by info (fn.h's plug-in view: config, request id, deadline,
 * payload, native batch).  info and what it points to are copied before this returns.  tag
 * identifies the job to the callbacks and to fn_native_cancel.  0, or TR_EINVAL (handler not
 * "<file>:<symbol>", bad batch), TR_ECLOSED; the callbacks do not run then. */
int fn_native_submit(fn_native_t *nt, const fn_inv_info_t *info, fn_native_log_cb log,
                     fn_native_done_cb done, void *tag, tr_err *err);
/* Stop the job with this tag: its host is killed.  done still runs (with Sandbox.Timedout). */
void fn_native_cancel(fn_native_t *nt, void *tag);
/* Retire every host of the function (code or configuration changed, or deleted). */
void fn_native_release(fn_native_t *nt, const char *function_name);

/* ---- tables (trf_table_* of <tributary/function.h>) ------------------------------------------ */

/* Work handed back to the host thread that made a table call (see fn_native_table_fn). */
typedef void (*fn_native_run_fn)(void *run_arg);
/* post(post_arg, run, run_arg): from any thread, queue run(run_arg) to run once on the host
 * thread that made the call, before that call's job completes (the host thread runs posted
 * work while it waits for frames, for backpressure, or for its calls to settle). */
typedef void (*fn_native_post_fn)(void *post_arg, fn_native_run_fn run, void *run_arg);

/* Run one DynamoDB operation (op "PutItem", body its JSON 1.0 request; both borrowed for the
 * call only) and answer through done.  A call that completes on another thread (a write, on
 * the table engine's writer) should hand its completion -- response building, done, freeing --
 * back through post, so the engine's serial thread only signals.  Must not block for long: writes should complete
 * asynchronously (group commit), so many calls of one batch share an fsync. */
typedef void (*fn_native_table_fn)(void *arg, const char *op, const char *body, size_t len,
                                   fn_native_table_done_fn done, void *done_arg,
                                   fn_native_post_fn post, void *post_arg);

/* Install (or with fn NULL remove) what serves the handlers' table calls; the engine does not
 * know the DynamoDB adapter, main.c wires it.  Without one, calls are answered through
 * opts.table_error with TR_ECLOSED (main.c: 503 ServiceUnavailable).
 * Removing waits until no call is being dispatched (calls already dispatched still complete
 * through done): remove it before closing the table engine. */
void fn_native_set_table_handler(fn_native_t *nt, fn_native_table_fn fn, void *arg);

/* Hosts alive now (tests). */
size_t fn_native_host_count(fn_native_t *nt, const char *function_name);

/* ---- glue to the functions engine (native_rt.c) ----------------------------------------------- */

/* The fn_runtime_t serving FN_NATIVE_RUNTIME; register it with arg = the fn_native_t:
 *     fn_runtime_register(fn, fn_native_runtime(), nt, &err)                                   */
const fn_runtime_t *fn_native_runtime(void);

/* ---- the host process ------------------------------------------------------------------------ */

/* main() of `tributary __fn-host` (argv as given to main).  Never returns to a server. */
int fn_native_host_main(int argc, char **argv);

#endif
