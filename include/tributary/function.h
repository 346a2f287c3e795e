/* SPDX-License-Identifier: Apache-2.0
 *
 * tributary/function.h -- all a C function author needs: the native runtime's ABI, version 1.
 *
 * Write a handler, build it as a shared library, zip it and deploy it:
 *
 *     #include <tributary/function.h>
 *
 *     int handler(const trf_event_t *ev, trf_context_t *ctx) {
 *         for (size_t i = 0; i < ev->n_records; i++) {
 *             const trf_record_t *r = &ev->records[i];
 *             if (r->len == 0) trf_fail_record(ctx, i);      // retried from here (see below)
 *         }
 *         trf_log(ctx, "processed %zu records", ev->n_records);
 *         return TRF_OK;
 *     }
 *
 *     $ tributary-cc -o libmine.so mine.c                   # or: --zip mine.zip (see below)
 *     $ aws lambda create-function --function-name mine --runtime tributary.c1 \
 *           --handler libmine.so:handler --zip-file fileb://mine.zip --role arn:aws:iam::0:role/x
 *
 * Runtime "tributary.c1", Handler "<file>.so:<symbol>" (the file is relative to the unpacked
 * package; <symbol> is a trf_handler_fn).  The same source also builds as a `bootstrap` for AWS
 * Lambda's provided.al2023 (and Tributary's provided runtimes): `tributary-cc --bootstrap`
 * links it with a Lambda Runtime API client loop, so code written for Tributary runs on AWS
 * unchanged.  `tributary-cc --zip` packs both, so one zip deploys either way.
 *
 * What a handler receives
 *   - ev->kind == TRF_EVENT_KINESIS: a batch of stream records as a C array (no JSON, no base64:
 *     `data` is the record's bytes).  Comes from an event-source mapping, or from any JSON event
 *     shaped like AWS's Kinesis event (Invoke with such a payload, or AWS under the bootstrap),
 *     which the runtime decodes for you.  ev->json is NULL unless the event arrived as JSON;
 *     trf_event_json() renders AWS's Kinesis event JSON when a handler wants it anyway.
 *   - ev->kind == TRF_EVENT_JSON: any other payload (Invoke), as JSON text in ev->json.
 *   - ev->window != NULL: the mapping has TumblingWindowInSeconds; see trf_window_t.
 *
 * What a handler answers
 *   - return TRF_OK: success.  For a Kinesis batch every record counts as processed, except
 *     those passed to trf_fail_record() when the mapping has FunctionResponseTypes
 *     ["ReportBatchItemFailures"]: the stream checkpoints up to the FIRST failed record and
 *     retries from it (AWS semantics).  Without that response type the report is ignored
 *     (see caveats).
 *   - return anything else, or call trf_error(): the invocation is a function error
 *     ("Unhandled" on the wire); a stream batch is retried per the mapping's policy.
 *   - trf_respond(): the response payload of an Invoke (JSON text); default `null`.
 *   - trf_window_state(): the tumbling window state to carry to the next invoke (JSON object);
 *     without the call, the state the invoke received is carried unchanged.
 *
 * Invariants
 *   - Everything the runtime hands over (event, records, context strings) is borrowed for the
 *     duration of the handler call only: copy what you keep.
 *   - record.partition_key, record.sequence_number and record.data are NUL-terminated (the NUL
 *     is not counted in the lengths), so text data can be used as a C string directly.
 *   - Records of one batch come from one shard, in sequence-number order; with a mapping's
 *     ParallelizationFactor > 1, batches of one shard run concurrently but records with the same
 *     partition key stay in order.
 *   - Delivery is at-least-once: after a crash or a failure, records may be delivered again.
 *
 * Thread rules: one handler call at a time per process (as Lambda: one event per execution
 * environment); separate invocations may run in separate processes at the same time.  Globals
 * persist between calls of one process (warm starts) and are lost when it is replaced.
 *
 * Isolation: Tributary loads the library with dlopen(RTLD_NOW | RTLD_LOCAL) in a supervised
 * host process, never in the server.  A crash (SIGSEGV, abort) or exit fails the invocation
 * with Runtime.ExitError and the host is replaced; running past the function's Timeout kills the
 * host ("Task timed out after N.NN seconds").  MemorySize bounds the host's private writable
 * memory (RLIMIT_DATA).
 *
 * Caveats
 *   - trf_fail_record() without ReportBatchItemFailures on the mapping: the response still
 *     carries batchItemFailures, which the mapping ignores (AWS does the same): the batch counts
 *     as a success.  Fix: add FunctionResponseTypes ["ReportBatchItemFailures"] to the mapping.
 *   - The library is loaded RTLD_LOCAL: symbols of one function's dependencies do not leak into
 *     another.  A dependency must be in the package (e.g. lib/, which is on LD_LIBRARY_PATH) or
 *     on the system.  Fix for "cannot open shared object file": link it statically, or ship it
 *     under lib/ in the zip.
 *   - Do not install signal handlers for SIGSEGV/SIGBUS to "survive" a crash: the record batch
 *     would be half-processed and reported as success.  Let the process die.
 *
 * ABI: TRF_ABI_VERSION changes only when a struct layout or a function pointer signature
 * changes incompatibly; fields are only ever appended (structs carry `abi` and reserved room),
 * so a library built against version N runs on a runtime of version >= N.
 */
#ifndef TRIBUTARY_FUNCTION_H
#define TRIBUTARY_FUNCTION_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRF_ABI_VERSION 1
#define TRF_RUNTIME_NAME "tributary.c1"   /* the Runtime value of CreateFunction */

#if defined(__GNUC__)
#define TRF_EXPORT __attribute__((visibility("default")))
#define TRF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TRF_EXPORT
#define TRF_PRINTF(a, b)
#endif

/* Handler return values.  Any value other than TRF_OK is a function error. */
enum { TRF_OK = 0, TRF_ERROR = -1 };

/* Event kinds. */
enum { TRF_EVENT_JSON = 1, TRF_EVENT_KINESIS = 2 };

/* ---- event ---------------------------------------------------------------------------------- */

/* One stream record.  All pointers are NUL-terminated and borrowed for the handler call. */
typedef struct trf_record {
    const char *partition_key;
    size_t partition_key_len;            /* bytes (UTF-8) */
    const uint8_t *data;                 /* the record's bytes as put (decoded, not base64) */
    size_t len;
    const char *sequence_number;         /* decimal text, as in GetRecords */
    int64_t arrival_ms;                  /* ApproximateArrivalTimestamp, Unix milliseconds */
} trf_record_t;

/* Tumbling window of a mapping with TumblingWindowInSeconds.  Windows are aligned to multiples
 * of the window length since the Unix epoch and are taken from the records' arrival times; a
 * batch never spans two windows.  `state` is the JSON object returned by the previous invoke of
 * this window ("{}" at the window's first invoke).  The last invoke of a window has is_final set
 * (it may carry no records): emit the aggregate then; the state it returns is dropped. */
typedef struct trf_window {
    int64_t start_ms, end_ms;            /* [start, end) */
    const char *state;                   /* JSON object text, NUL-terminated */
    size_t state_len;
    int is_final;                        /* isFinalInvokeForWindow */
    int is_terminated_early;             /* isWindowTerminatedEarly (state over 1 MB) */
} trf_window_t;

typedef struct trf_event {
    uint32_t abi;                        /* TRF_ABI_VERSION of the runtime */
    int kind;                            /* TRF_EVENT_* */
    /* TRF_EVENT_JSON: the payload.  TRF_EVENT_KINESIS: the JSON it was decoded from, or NULL
     * when the records came natively (see trf_event_json). */
    const char *json;
    size_t json_len;
    /* TRF_EVENT_KINESIS */
    const trf_record_t *records;
    size_t n_records;
    const char *event_source_arn;        /* "arn:aws:kinesis:<region>:<acct>:stream/<name>" */
    const char *shard_id;                /* "shardId-000000000000" ("" when unknown) */
    const char *aws_region;
    const trf_window_t *window;          /* NULL unless the mapping has a tumbling window */
    void *reserved[8];
} trf_event_t;

/* ---- context -------------------------------------------------------------------------------- */

typedef struct trf_context trf_context_t;

/* Services of the runtime.  Call them through the inline helpers below. */
typedef struct trf_ops {
    /* Append text to the function's log (one or more lines; a newline is added if missing). */
    void (*log)(trf_context_t *ctx, const char *text, size_t len);
    /* Set the Invoke response (JSON text, copied).  TRF_ERROR if over 6 MB. */
    int (*respond)(trf_context_t *ctx, const char *json, size_t len);
    /* Report records[index] of a Kinesis batch as failed.  TRF_ERROR if out of range. */
    int (*fail_record)(trf_context_t *ctx, size_t index);
    /* Set the tumbling window state (a JSON object, copied) to carry to the next invoke. */
    int (*window_state)(trf_context_t *ctx, const char *json, size_t len);
    /* Fail the invocation with an error type and message (copied); the handler should return
     * TRF_ERROR after it. */
    void (*error)(trf_context_t *ctx, const char *type, const char *message);
    /* AWS's Kinesis event JSON for a native batch (rendered once per invoke, then cached);
     * NULL for other kinds.  Borrowed for the handler call. */
    const char *(*event_json)(trf_context_t *ctx, const trf_event_t *ev, size_t *len);
    /* DynamoDB in-process (appended in ABI 1; NULL in a runtime without tables: the helpers
     * then answer TRF_ERROR).  See "Tables" below. */
    int (*table_call)(trf_context_t *ctx, const char *op, const char *req, size_t len, char **resp);
    long (*table_send)(trf_context_t *ctx, const char *op, const char *req, size_t len);
    int (*table_flush)(trf_context_t *ctx, int *n_failed,
                       void (*on_reply)(void *arg, long index, int status, const char *resp,
                                        size_t len),
                       void *arg);
    void *reserved[5];
} trf_ops_t;

struct trf_context {
    uint32_t abi;                        /* TRF_ABI_VERSION of the runtime */
    const char *request_id;              /* Lambda-Runtime-Aws-Request-Id */
    const char *function_name;
    const char *function_version;        /* "$LATEST" */
    const char *invoked_function_arn;
    const char *trace_id;                /* X-Ray trace header, may be "" */
    int64_t deadline_ms;                 /* Unix milliseconds; see trf_remaining_ms */
    uint32_t memory_mb;
    void *user;                          /* yours: set in init, seen by every invoke */
    void *table;                         /* reserved for a table handle (NULL in ABI 1) */
    const trf_ops_t *ops;
    void *runtime_private;               /* the runtime's; do not touch */
    void *reserved[8];
};

/* ---- what the library exports --------------------------------------------------------------- */

/* The handler named by Handler "<file>.so:<symbol>".  ev and ctx are borrowed for the call. */
typedef int (*trf_handler_fn)(const trf_event_t *ev, trf_context_t *ctx);

/* Optional module descriptor: a library may export `tributary_function_module` (use
 * TRF_MODULE) to check the ABI and to run code once per process.  init runs before the first
 * invoke (a cold start) with a context whose request_id is "" -- a nonzero return fails that
 * invoke with Runtime.InitError and the process is replaced; shutdown runs when the process is
 * retired gracefully (never after a crash or a timeout). */
typedef struct trf_module {
    uint32_t abi;                        /* TRF_ABI_VERSION the library was built against */
    int (*init)(trf_context_t *ctx);
    void (*shutdown)(trf_context_t *ctx);
} trf_module_t;

#define TRF_MODULE_SYMBOL "tributary_function_module"
#define TRF_MODULE(init_fn, shutdown_fn)                                                           \
    TRF_EXPORT const trf_module_t *tributary_function_module(void);                                \
    TRF_EXPORT const trf_module_t *tributary_function_module(void) {                               \
        static const trf_module_t m = {TRF_ABI_VERSION, (init_fn), (shutdown_fn)};                 \
        return &m;                                                                                 \
    }

/* ---- helpers (inline: the library needs no link-time dependency on the runtime) ------------- */

/* printf-style log line. */
static inline void trf_logv(trf_context_t *ctx, const char *fmt, va_list ap) {
    char buf[4096];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) return;
    ctx->ops->log(ctx, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}
static inline void trf_log(trf_context_t *ctx, const char *fmt, ...) TRF_PRINTF(2, 3);
static inline void trf_log(trf_context_t *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    trf_logv(ctx, fmt, ap);
    va_end(ap);
}
static inline int trf_respond(trf_context_t *ctx, const char *json, size_t len) {
    return ctx->ops->respond(ctx, json, len);
}
static inline int trf_fail_record(trf_context_t *ctx, size_t index) {
    return ctx->ops->fail_record(ctx, index);
}
static inline int trf_window_state(trf_context_t *ctx, const char *json, size_t len) {
    return ctx->ops->window_state(ctx, json, len);
}
static inline int trf_error(trf_context_t *ctx, const char *type, const char *message) {
    ctx->ops->error(ctx, type, message);
    return TRF_ERROR;
}
static inline const char *trf_event_json(trf_context_t *ctx, const trf_event_t *ev, size_t *len) {
    return ctx->ops->event_json(ctx, ev, len);
}
/* ---- tables: DynamoDB, in-process ------------------------------------------------------------
 *
 * A handler reads and writes the server's DynamoDB tables without HTTP: the request is a
 * DynamoDB JSON 1.0 body (exactly what an SDK sends for X-Amz-Target DynamoDB_20120810.<op>),
 * the response the body DynamoDB would answer.  The call runs the server's DynamoDB adapter --
 * the same validation, conditions, transactions, error types and durability as the HTTP API --
 * minus SigV4 (the function is trusted).  A write is acknowledged after its group commit (fsync).
 *
 *     char *resp = NULL;
 *     int rc = trf_table_call(ctx, "GetItem",
 *                             "{\"TableName\":\"t\",\"Key\":{\"pk\":{\"S\":\"a\"}}}", len, &resp);
 *     ... rc == TRF_OK: resp is {"Item":{...}} ...
 *     free(resp);
 *
 * Pipelining: trf_table_send() queues a call and returns at once (its index: 0, 1, 2, ... since
 * the last flush); trf_table_flush() waits for every queued call and reports each reply in send
 * order.  Hundreds of writes sent before one flush share group commits instead of paying an
 * fsync each.  Calls of one batch run concurrently: their order of application is not
 * guaranteed (use conditions or commutative updates -- ADD -- where order matters).  Calls still
 * unflushed when the handler returns are waited for (their replies dropped).
 *
 * Caveats
 *   - Only under the tributary.c1 runtime.  Under the provided.al2023 bootstrap (AWS) the calls
 *     answer TRF_ERROR.  Fix: on AWS use the AWS SDK for C++ or an HTTP client.
 *   - A crash mid-batch leaves the calls already made applied; the batch is retried (at-least-once).
 *     Fix: make writes idempotent (conditions, keys derived from the record's sequence number).
 */

/* One synchronous call.  op: "PutItem", "GetItem", "UpdateItem", "TransactWriteItems", ... ;
 * req[0..len): the JSON request body.  *resp (when resp is not NULL): the response body,
 * malloc'd and NUL-terminated -- free() it -- also on a DynamoDB error, where it is DynamoDB's
 * {"__type":...,"message":...}.  Returns TRF_OK (HTTP 200), the HTTP status of a DynamoDB error
 * (400 ConditionalCheckFailedException, ValidationException, ...; 500), or TRF_ERROR when no
 * call could be made (no table service in this runtime; *resp is NULL). */
static inline int trf_table_call(trf_context_t *ctx, const char *op, const char *req, size_t len,
                                 char **resp) {
    if (resp) *resp = NULL;
    if (!ctx->ops->table_call) return TRF_ERROR;
    return ctx->ops->table_call(ctx, op, req, len, resp);
}
/* Queue one call (req copied).  Returns its index (>= 0), or TRF_ERROR (no table service). */
static inline long trf_table_send(trf_context_t *ctx, const char *op, const char *req, size_t len) {
    if (!ctx->ops->table_send) return TRF_ERROR;
    return ctx->ops->table_send(ctx, op, req, len);
}
/* Reply of one queued call, in send order: status 200 on success; resp the response body,
 * borrowed for the callback. */
typedef void (*trf_table_reply_fn)(void *arg, long index, int status, const char *resp, size_t len);
/* Wait for every queued call.  *n_failed (may be NULL): how many answered an error (status !=
 * 200).  on_reply (may be NULL) sees every reply.  TRF_OK when all were answered (successes or
 * DynamoDB errors), TRF_ERROR when no table service. */
static inline int trf_table_flush(trf_context_t *ctx, int *n_failed, trf_table_reply_fn on_reply,
                                  void *arg) {
    if (n_failed) *n_failed = 0;
    if (!ctx->ops->table_flush) return TRF_ERROR;
    return ctx->ops->table_flush(ctx, n_failed, on_reply, arg);
}

/* Milliseconds left before the deadline (negative when past it). */
static inline int64_t trf_remaining_ms(const trf_context_t *ctx) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);          /* C11: no POSIX feature macros needed */
    return ctx->deadline_ms - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- the small library (libtributary-function.a, linked in by tributary-cc) ------------------ */

/* A read-only view into JSON text: find a member and read scalars, without allocating.  Enough
 * to pick fields out of a record's JSON data.  `path` is a dotted member path ("a.b.c"); array
 * elements are not addressable.  Each returns 0 on success, TRF_ERROR when the path is absent or
 * of another type or the JSON is malformed. */
int trf_json_get_number(const char *json, size_t len, const char *path, double *out);
/* Copies the unescaped string into out (cap bytes with the NUL); TRF_ERROR when it does not
 * fit. */
int trf_json_get_string(const char *json, size_t len, const char *path, char *out, size_t cap);
int trf_json_get_bool(const char *json, size_t len, const char *path, int *out);
/* Whether json[0..len) is one valid JSON value. */
int trf_json_valid(const char *json, size_t len);

#ifdef __cplusplus
}
#endif

#endif
