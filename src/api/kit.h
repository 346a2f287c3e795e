/* SPDX-License-Identifier: Apache-2.0
 *
 * kit.h -- the adapter kit: what every AWS protocol adapter in src/api/ declares about itself,
 * and the plumbing they all share (dispatch, error responses, validation messages, member
 * readers, query strings, the in-process call path).
 *
 * An adapter translates: AWS wire format in, engine calls, AWS wire format out.  The kit owns
 * everything between the router (api.c: SigV4, then "which service?") and the adapter's
 * handlers: finding the operation, parsing the body, calling the handler, writing errors in the
 * protocol's shape, mapping engine codes (TR_E*) to AWS error types through the service's one
 * table.  Engines never spell AWS names; adapters never write an error body by hand.
 *
 * How an adapter declares itself (adding a service = one table + handlers):
 *
 *     static int x_create_thing(api_call_t *c);          // handlers: see api_handler_fn
 *     static const api_op_t x_ops[] = {                   // JSON RPC: name -> handler
 *         {.name = "CreateThing", .fn = x_create_thing},
 *     };
 *     // REST: {.name = "GetThing", .method = "GET", .path = "/2020-01-01/things/{}", ...}
 *     static const api_errmap_t x_errors[] = {            // TR_E* -> status + AWS type
 *         {TR_ENOTFOUND, 400, "ResourceNotFoundException", NULL, NULL},
 *         {0, 500, "InternalFailure", NULL, NULL},        // last: everything else
 *     };
 *     const api_service_t api_x_service = {
 *         .name = "x", .label = "X", .log = "x", .proto = API_PROTO_JSON11,
 *         .target_prefix = "X_20200101.", .content_type = "application/x-amz-json-1.1",
 *         API_OPS(x_ops), API_ERRORS(x_errors), .verr_value_max = 200,
 *     };
 *
 * then one line in api.c's registry (api_services[]) and an `extern` in api.h.  A handler reads
 * c->in (the parsed JSON object), validates with api_get_* / api_verr / api_verr_flush, calls its
 * engine, and either writes the response body to c->out (status 200 by default) and returns
 * NET_DONE, answers an error with api_fail / api_error (which return API_FAIL), or defers
 * (NET_DEFER, the engine resumes the request later: see net/http.h).
 *
 * Protocols (api_proto_t): JSON 1.0 / 1.1 (X-Amz-Target RPC; DynamoDB, Kinesis) and REST-JSON
 * (method + path; Lambda) have adapters and error writers.  REST-XML (S3), query (STS,
 * CloudWatch) and CBOR (CloudWatch's rpcv2) are reserved values: no service uses them yet, so the
 * kit has no writer for them; the service that brings one adds its error writer to api_fail
 * (kit.c, one case) and its body reader to api_dispatch.
 *
 * Thread rules: the declarations are constant; api_dispatch runs on a network thread (or, for
 * API_OP_WORKER operations, wherever the adapter moves the call).  An api_call_t belongs to one
 * request and lives on the dispatcher's stack: a handler that defers must not keep it.
 */
#ifndef API_KIT_H
#define API_KIT_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

/* ---- declarations ----------------------------------------------------------------------------- */

typedef enum api_proto {
    API_PROTO_JSON10 = 1, /* awsJson1_0: POST, X-Amz-Target <prefix><Op>, {"__type","message"} */
    API_PROTO_JSON11, /* awsJson1_1: the same with application/x-amz-json-1.1 */
    API_PROTO_REST_JSON, /* restJson1: method + path; x-amzn-ErrorType + {"Type","message"} */
    API_PROTO_REST_XML, /* reserved (S3): no writer yet */
    API_PROTO_QUERY, /* reserved (STS, CloudWatch): no writer yet */
    API_PROTO_CBOR, /* reserved (CloudWatch rpcv2Cbor): no writer yet */
} api_proto_t;

/* What a handler returns: NET_DONE (the response is in req), NET_DEFER (see net/http.h), or
 * API_FAIL (an error response is written; the dispatcher treats it as NET_DONE).  Helpers that
 * answer errors return API_FAIL so `if (helper(c)) return API_FAIL;` reads right.  API_BAIL is
 * only for fast paths (api_op_t.fast): "not mine, take the general path". */
#define API_FAIL (-1)
#define API_BAIL (-2)

typedef struct api_call api_call_t;
typedef struct api_service api_service_t;
typedef int (*api_handler_fn)(api_call_t *c);

/* api_op_t.flags.  Bits 16 and up are the adapter's own (API_OP_ADAPTER(n)). */
enum {
    API_OP_BODY = 1 << 0, /* REST: parse the body as a JSON object into c->in (empty: NULL);
                                JSON RPC always parses */
    API_OP_WORKER = 1 << 1, /* the service's run hook moves the call off the network thread
                                (Lambda: fn_work_submit) and parses the body there itself */
};
#define API_OP_ADAPTER(n) (1u << (16 + (n)))

typedef struct api_op {
    const char *name; /* AWS operation name ("PutRecords") */
    const char *method; /* REST only: "GET" */
    const char *path; /* REST only: pattern; each "{}" is one raw path segment (c->seg),
                                a trailing "/" in the request is optional */
    api_handler_fn fn;
    unsigned flags; /* API_OP_* */
    /* Optional fast path, tried before the body is parsed (Kinesis PutRecord(s)): returns
     * NET_DONE / NET_DEFER / API_FAIL as a handler, or API_BAIL to run fn on the parsed body
     * instead (it must then have written nothing and charged nothing). */
    api_handler_fn fast;
} api_op_t;

/* One row of a service's error map: engine code -> HTTP status and AWS error type.  The message
 * is `fixed` when set, else the engine's (tr_err.msg), else `fallback` when set, else
 * tr_strerror(code).  The row with code 0 ends the table and answers every other code. */
typedef struct api_errmap {
    int code;
    int status;
    const char *type;
    const char *fixed;
    const char *fallback;
} api_errmap_t;

enum { API_MEMBER_AS_IS = 0, API_MEMBER_CAMEL = 1 };

struct api_service {
    const char *name; /* SigV4 service of the credential scope ("kinesis") */
    const char *label; /* for messages: "Tributary's <label> API" ("Kinesis") */
    const char *log; /* log tag ("kinesis") */
    api_proto_t proto;
    const char *target_prefix; /* JSON RPC: X-Amz-Target prefix ("Kinesis_20131202.") */
    const char *const *path_prefixes; /* REST: NULL-terminated; the longest match wins */
    const char *content_type; /* of requests and responses */
    const api_op_t *ops; /* searched in order */
    size_t n_ops;
    const api_errmap_t *errors; /* ends with its code-0 row */
    /* DynamoDB namespaces its __type ("com.amazon.coral.validate#ValidationException"):
     * api_fail passes every type through this when set (buf: cap bytes of scratch). */
    const char *(*type_name)(const char *type, char *buf, size_t cap);
    /* REST-JSON: error types whose shape spells the message member "Message" (NULL-terminated;
     * the others say "message"), as in the service model. */
    const char *const *message_caps;
    int verr_value_max; /* validation messages cut member values at this many bytes */
    int member_style; /* API_MEMBER_CAMEL: api_get_* name "StreamName" "streamName" */
    /* Optional hooks (NULL: none):
     * ready  -- after the operation is found, before the body is read: the engine is there,
     *           path parameters resolve, ...; 0 or API_FAIL (answered).
     * run    -- calls the handler instead of the kit (adapter-private per-call setup, moving the
     *           call to a worker); returns what the handler returns.
     * seal   -- on every response answered before the dispatcher returns (DynamoDB: its
     *           x-amz-crc32 header); deferred responses seal themselves in their finish. */
    int (*ready)(api_call_t *c);
    int (*run)(api_call_t *c);
    void (*seal)(net_req_t *req);
};

#define API_OPS(t) .ops = (t), .n_ops = sizeof(t) / sizeof((t)[0])
#define API_ERRORS(t) .errors = (t)

/* ---- one request ---------------------------------------------------------------------------- */

#define API_SEG_MAX 512 /* a REST path segment ("{}"), raw, NUL included */
#define API_PRIV_MAX 512 /* adapter-private per-call bytes */

struct api_call {
    api_ctx_t *ctx;
    const api_service_t *svc;
    const api_op_t *op; /* NULL only while answering an unknown operation */
    net_req_t *req;
    json_t *in; /* parsed body (an object) or NULL; the dispatcher frees it */
    tr_buf *out; /* &req->out */
    int n_verr; /* accumulated validation errors (api_verr) */
    tr_buf verr;
    char seg[API_SEG_MAX]; /* REST: the "{}" segment of the path, raw (still encoded) */
    /* Adapter-private per-call state (zeroed; see the adapter's own struct), copied with the
     * call when an adapter moves it to a worker. */
    _Alignas(max_align_t) unsigned char priv[API_PRIV_MAX];
};

/* Run the operation `op` (JSON RPC: the X-Amz-Target after the prefix; REST: NULL, found by
 * method + path) of svc on req: find it, ready, parse, handler, errors.  Returns NET_DONE or
 * NET_DEFER.  req->status / content type / request id are set up by the caller (api.c). */
int api_dispatch(api_ctx_t *ctx, const api_service_t *svc, net_req_t *req, const char *op);

/* Parse the request body into c->in as the service's protocol reads it (JSON RPC: an object,
 * SerializationException otherwise; REST-JSON: an object or an empty body, NULL then,
 * InvalidRequestContentException otherwise).  api_dispatch calls it, except for API_OP_WORKER
 * operations, whose run hook calls it off the network thread.  0 or API_FAIL (answered). */
int api_parse_body(api_call_t *c);

/* The operation row of svc called name, or NULL. */
const api_op_t *api_op_find(const api_service_t *svc, const char *name);

/* ---- errors --------------------------------------------------------------------------------- */

/* Answer an error in the service's protocol shape: status, AWS type (through svc->type_name),
 * message from fmt.  Replaces whatever response was written.  Returns API_FAIL. */
int api_fail(api_call_t *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answer engine code `code` (err: its message, may be NULL) through svc->errors; a 500 is
 * logged.  Returns API_FAIL. */
int api_error(api_call_t *c, int code, const tr_err *err);
/* The row of svc->errors for code (its code-0 row when none). */
const api_errmap_t *api_error_row(const api_service_t *svc, int code);

/* Record a shape-constraint violation the way AWS's services word them: "Value '<value>' at
 * '<member>' failed to satisfy constraint: <fmt...>" ("Value null at ..." when value is NULL);
 * value cut at svc->verr_value_max bytes. */
void api_verr(api_call_t *c, const char *member, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* If violations were recorded: answer 400 ValidationException "N validation error(s) detected:
 * a; b" and return API_FAIL; else 0. */
int api_verr_flush(api_call_t *c);

/* ---- member readers (JSON bodies) ----------------------------------------------------------- */

/* A member's pattern: the regular expression AWS's message names, and its test. */
typedef struct api_pattern {
    const char *text;
    int (*ok)(const char *s, size_t n);
} api_pattern_t;

enum { API_OPT = 0, API_REQ = 1 };

/* The member name as the service spells it in messages (svc->member_style) into buf. */
const char *api_member(const api_call_t *c, const char *name, char *buf, size_t cap);

/* String member `name` of obj: *out NULL when absent or null (API_REQ: "Member must not be
 * null" recorded).  A non-string answers SerializationException (returns API_FAIL); length in
 * characters outside [min, max] or a pattern mismatch (pat may be NULL) is recorded as a
 * violation.  *out borrows from obj. */
int api_get_str(api_call_t *c, json_t *obj, const char *name, int req, size_t min, size_t max,
                const api_pattern_t *pat, const char **out, size_t *out_len);
/* Integer member: *present 0 when absent; a non-integer answers SerializationException; out
 * of [min, max] is recorded. */
int api_get_int(api_call_t *c, json_t *obj, const char *name, int req, long long min, long long max,
                long long *out, int *present);
/* Timestamp member sent as epoch seconds (a JSON number, as SDKs send it in JSON RPC) into
 * milliseconds: *present 0 when absent; another type answers SerializationException. */
int api_get_epoch(api_call_t *c, json_t *obj, const char *name, int64_t *ms, int *present);

/* An ISO 8601 UTC timestamp "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or "+00:00"), as REST-JSON SDKs send
 * timestamps, into milliseconds since the epoch.  0, or -1 when s is not one. */
int api_iso8601_parse(const char *s, size_t n, int64_t *unix_ms);

/* ---- REST helpers --------------------------------------------------------------------------- */

/* Query parameter `key` of req, percent-decoded ('+' is a space) into out (cap bytes): 0
 * absent, 1 present, -1 present but malformed or longer than cap (out is then ""). */
int api_query(const net_req_t *req, const char *key, char *out, size_t cap);
/* Percent-decode s[0..n) into out (cap bytes, NUL-terminated); plus_space: '+' is ' '.  0, or
 * -1 when malformed or too long. */
int api_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space);
/* Match path against a REST pattern (see api_op_t.path); the "{}" segment into seg (cap). */
int api_path_match(const char *pattern, const char *path, char *seg, size_t cap);

/* A REST-JSON response: status, content type application/json, body the compact dump of o
 * (o is consumed), JSON reals with `real_precision` digits (0: jansson's default).  Returns
 * NET_DONE. */
int api_reply_json(api_call_t *c, int status, json_t *o, int real_precision);
/* A response without a body (204 and the like).  Returns NET_DONE. */
int api_reply_empty(api_call_t *c, int status);

/* ---- in-process calls ----------------------------------------------------------------------- */

/* Run an operation of svc without HTTP -- op is the operation name for JSON RPC services,
 * "METHOD /path[?query]" for REST ones: the same dispatch as a request with this body
 * (copied) -- validation, engine calls, errors, response -- minus SigV4 (the caller is
 * trusted) and the request id / content type api.c adds.  done(arg, status, body, len) runs
 * exactly once with the HTTP status and the response body (borrowed for the callback): on this
 * thread before the return, or, for a deferred operation, on the thread that finishes it. */
typedef void (*api_local_done_fn)(void *arg, int status, const char *body, size_t len);
void api_call_local(api_ctx_t *ctx, const api_service_t *svc, const char *op, const char *body,
                    size_t len, api_local_done_fn done, void *arg);

/* The same, completing a deferred operation on the caller's side: the thread that finishes it
 * (the table engine's writer, a serial section) only calls post(post_arg, run, run_arg), which
 * must make run(run_arg) be called exactly once, soon, on a thread of the caller's choosing
 * (never inside post itself if that thread must stay short); run builds the response, calls
 * done there and frees the request.  An operation answered before api_call_local_post returns
 * completes on this thread without post.  post NULL: api_call_local. */
typedef void (*api_local_run_fn)(void *run_arg);
typedef void (*api_local_post_fn)(void *post_arg, api_local_run_fn run, void *run_arg);
void api_call_local_post(api_ctx_t *ctx, const api_service_t *svc, const char *op, const char *body,
                         size_t len, api_local_done_fn done, void *arg, api_local_post_fn post,
                         void *post_arg);

#endif
