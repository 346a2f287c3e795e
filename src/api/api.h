/* SPDX-License-Identifier: Apache-2.0
 *
 * api.h -- the protocol adapters' shared context, and the entry points of src/api/: request
 * handling (authentication, routing), the services, the Runtime API listeners, /metrics.
 *
 * api_handle() is the HTTP layer's handler.  For every request it:
 *   1. answers GET /metrics (Prometheus text, metrics.c) with no authentication;
 *   2. answers a request the network layer refused (over the in-flight budget, body too big)
 *      with its protocol's error;
 *   3. verifies SigV4 against the configured keys (every other request, no exceptions; the
 *      credential scope must name the service and this server's region);
 *   4. routes to a service of api.c's registry (api_services[]): by X-Amz-Target prefix for the
 *      JSON RPC services -- Kinesis ("Kinesis_20131202.", JSON 1.1) and DynamoDB
 *      ("DynamoDB_20120810.", JSON 1.0) -- else by path prefix for the REST services -- Lambda
 *      (/2015-03-31/, /2017-10-31/, /2019-09-30/, /2014-11-13/) and its event source mappings
 *      (/2015-03-31/event-source-mappings); anything else gets UnknownOperationException;
 *   5. hands the request to the adapter kit (kit.h: api_dispatch), which finds the operation,
 *      parses the body, runs the handler and maps engine error codes (TR_E*) to the service's
 *      AWS error types in one table per service; engines never spell AWS names.
 * A new service is declared with kit.h's api_service_t and listed in api_services[].
 *
 * Thread rules: api_handle runs on network threads; the context is read-only after start
 * except for the engines, which are thread-safe.
 */
#ifndef API_H
#define API_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "fn/esm.h"
#include "fn/fn.h"
#include "log/slog.h"
#include "net/http.h"
#include "table/tbl.h"

#define API_ACCOUNT_ID "000000000000"

typedef struct api_key {
    char access_key[128];
    char secret[128];
} api_key_t;

typedef struct api_ctx {
    slog_t *slog;
    tbl_t *tbl;                       /* DynamoDB table engine (DATA/tables) */
    const char *region;               /* ARNs and DescribeLimits use it */
    api_key_t *keys;                  /* accepted keys */
    size_t n_keys;
    long long (*now_ms)(void);        /* clock (tests may replace) */
    fn_t *fn;                         /* functions engine (Lambda); NULL: Lambda answers 503 */
    esm_t *esm; /* event-source mappings (fn/esm.h); NULL: they answer 503 */
    struct api_kinesis *kinesis; /* the Kinesis adapter's state (api_kinesis_init) */
} api_ctx_t;

/* The services (kit.h), one per adapter file; api.c's registry lists them. */
struct api_service;
extern const struct api_service api_kinesis_service;
extern const struct api_service api_dynamodb_service;
extern const struct api_service api_lambda_service;
extern const struct api_service api_lambda_esm_service;

/* The net_handler_fn: arg is the api_ctx_t. */
int api_handle(void *arg, net_req_t *req);
/* The net_precheck_fn (HTTP/1.1 header phase; arg is the api_ctx_t): every SigV4 check that
 * needs no body (sigv4_check_headers: present, parses, known key, 15-minute window) plus the
 * credential scope's service and region, and -- when x-amz-content-sha256 names the body's hash
 * -- the signature itself (req->authed = 1; api_handle then only checks the body against that
 * hash).  A failure, or a Content-Length over the limit, is answered at once (NET_DONE) with the
 * same AWS error api_handle would give, so an unauthenticated client never gets body bytes
 * admitted to the in-flight budget.  GET /metrics is let through (no auth). */
int api_precheck(void *arg, net_req_t *req);

/* ---- for adapters (kit.h has the rest) ------------------------------------------------------ */

/* A JSON-protocol error response: {"__type": type, "message": msg}, with status. */
void api_json_error(net_req_t *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Standard headers of every AWS JSON response (x-amzn-RequestId, content type). */
void api_json_begin(net_req_t *req, const char *content_type);

/* Shape-constraint violations, accumulated the way AWS's JSON services report them: each call
 * appends "Value '<value>' at '<member>' failed to satisfy constraint: <what>" (or "Value null
 * at ...") to b, '; '-separated, and counts it in *n.  value is cut at value_max bytes. */
void api_verr_vadd(tr_buf *b, int *n, int value_max, const char *member, const char *value,
                   const char *fmt, va_list ap);

/* Whose resource an ARN names.  Tributary is one account (API_ACCOUNT_ID) in one region
 * (ctx->region, partition "aws"); an ARN may name a resource of another account or region, which
 * AWS refuses (another account: AccessDeniedException unless a resource policy allows it --
 * Tributary has none; another region: the resource is not reachable from this endpoint).
 * arn is "arn:<partition>:<service>:<region>:<account>:<resource>"; an empty region or account
 * field (Lambda's partial ARNs leave them out) counts as this server's.  The shape of the ARN is
 * the caller's validation: this only compares the fields it finds.
 * Returns API_ARN_OURS, API_ARN_OTHER_REGION (partition or region differs) or
 * API_ARN_OTHER_ACCOUNT (checked after the region). */
enum { API_ARN_OURS = 0, API_ARN_OTHER_REGION = 1, API_ARN_OTHER_ACCOUNT = 2 };
int api_arn_owner(const api_ctx_t *ctx, const char *arn);
/* The same for a Lambda FunctionName: a full ARN as above, a partial ARN
 * "<account>:function:<name>[:<qualifier>]" by its account, a plain name is ours. */
int api_fn_name_owner(const api_ctx_t *ctx, const char *function_name);
/* The region and account fields of arn into region[64] / account[32] ("" when absent or
 * longer). */
void api_arn_fields(const char *arn, char region[64], char account[32]);

/* The Kinesis adapter's state: the MAC key of its shard iterators (random per data directory,
 * kept in <data_dir>/iterator.key, created on first use) and their lifetime (AWS: 300000 ms).
 * Caller-allocated, lives as long as the api_ctx_t that points to it; holds no resources. */
typedef struct api_kinesis {
    uint8_t iter_key[32];
    long long iter_ttl_ms;
} api_kinesis_t;
/* Fill k: load or create the iterator key in data_dir.  TR_EIO / TR_EINTERNAL with err. */
int api_kinesis_init(api_kinesis_t *k, const char *data_dir, long long iter_ttl_ms, tr_err *err);
/* An in-process DynamoDB call (native functions' trf_table_*, wired by main.c into
 * fn_native_set_table_handler): runs the same adapter code as an HTTP request to `op` with this
 * JSON 1.0 body (copied) -- validation, engine calls, errors, response -- minus SigV4 (the
 * caller is trusted).  done(arg, status, body, len) runs exactly once with the HTTP status and
 * response body (borrowed for the callback): on this thread before the return (reads, errors)
 * or, for a write, on the table engine's writer thread after its group commit. */
typedef void (*api_dynamodb_done_fn)(void *arg, int status, const char *body, size_t len);
void api_dynamodb_call(api_ctx_t *ctx, const char *op, const char *body, size_t len,
                       api_dynamodb_done_fn done, void *arg);
/* The same, with a write's completion (response building, done, freeing) handed back to the
 * caller: on the writer thread only post(post_arg, run, run_arg) runs, and the caller runs
 * run(run_arg) once on its own thread (kit.h, api_call_local_post).  post NULL: as above. */
typedef void (*api_dynamodb_run_fn)(void *run_arg);
typedef void (*api_dynamodb_post_fn)(void *post_arg, api_dynamodb_run_fn run, void *run_arg);
void api_dynamodb_call_post(api_ctx_t *ctx, const char *op, const char *body, size_t len,
                            api_dynamodb_done_fn done, void *arg, api_dynamodb_post_fn post,
                            void *post_arg);
/* The Lambda Runtime API listener's handler (a second net server on 127.0.0.1, ephemeral port,
 * no SigV4 -- as on AWS); arg is the api_ctx_t. */
int api_runtime_handle(void *arg, net_req_t *req);
/* Per-instance Runtime API listeners, the functions engine's fn_rt_listener_t (arg: the
 * api_ctx_t): start / stop a net server on 127.0.0.1:0 serving one instance. */
int api_runtime_listener_open(void *arg, const char *token, int *port, void **handle, tr_err *err);
void api_runtime_listener_close(void *arg, void *handle);
/* GET /metrics (metrics.c): the whole Prometheus page of every engine, answered before SigV4
 * (like a scrape endpoint, it is unauthenticated; bind to 127.0.0.1 or firewall it). */
int api_metrics_handle(api_ctx_t *ctx, net_req_t *req);

#endif
