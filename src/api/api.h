/*
 * api.h -- the protocol adapters' shared context: authentication, routing, error mapping.
 *
 * api_handle() is the HTTP layer's handler.  For every request it:
 *   1. answers the cheap things that need no auth (nothing yet);
 *   2. verifies SigV4 against the configured keys (every request, no exceptions);
 *   3. routes by protocol: X-Amz-Target "Kinesis_20131202.*" -> the Kinesis adapter; anything
 *      else gets the JSON UnknownOperationException (S3, Lambda, DynamoDB come later);
 *   4. maps engine error codes (TR_E*) to the protocol's AWS error type and HTTP status -- in
 *      one table per adapter; engines never spell AWS names.
 *
 * Thread rules: api_handle runs on network threads; the context is read-only after start
 * except for the engines, which are thread-safe.
 */
#ifndef API_H
#define API_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "log/slog.h"
#include "net/http.h"

#define API_ACCOUNT_ID "000000000000"

typedef struct api_key {
    char access_key[128];
    char secret[128];
} api_key_t;

typedef struct api_ctx {
    slog_t *slog;
    const char *region;               /* ARNs and DescribeLimits use it */
    api_key_t *keys;                  /* accepted keys */
    size_t n_keys;
    uint8_t iter_key[32];             /* MAC key for shard iterators (random per data dir) */
    long long (*now_ms)(void);        /* clock (tests may replace) */
    long long iter_ttl_ms;            /* shard iterator lifetime; AWS: 300000 */
} api_ctx_t;

/* The net_handler_fn: arg is the api_ctx_t. */
int api_handle(void *arg, net_req_t *req);

/* ---- for adapters -------------------------------------------------------------------------- */

/* A JSON-protocol error response: {"__type": type, "message": msg}, with status. */
void api_json_error(net_req_t *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Standard headers of every AWS JSON response (x-amzn-RequestId, content type). */
void api_json_begin(net_req_t *req, const char *content_type);

/* Kinesis adapter entry: target is the operation name after "Kinesis_20131202.". */
int api_kinesis_handle(api_ctx_t *ctx, net_req_t *req, const char *op);
/* Load or create the iterator MAC key in dir/iterator.key. */
int api_iter_key_load(const char *dir, uint8_t key[32], tr_err *err);

#endif
