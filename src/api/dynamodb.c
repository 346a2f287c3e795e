/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb.c -- the DynamoDB adapter: JSON 1.0 in, table engine (table/tbl.h) calls, JSON out.
 *
 * The adapter is a service of the adapter kit (kit.h: api_dynamodb_service, declared at the end
 * of this file): the kit finds the operation, parses the body, runs the handler and answers
 * errors; DynamoDB brings its operation table, its error map, its namespaced __type (ddb_type)
 * and its x-amz-crc32 seal.  Every operation is one row of ddb_ops[] (name, handler).  A handler
 * validates its input the way DynamoDB does -- shape constraints (botocore's service-2.json:
 * lengths, patterns, enums, ranges) are accumulated into one ValidationException "N validation
 * error(s) detected: Value 'x' at 'member' failed to satisfy constraint: ..."; semantic problems
 * get DynamoDB's own sentences
 * ("One or more parameter values were invalid: ...") -- calls the engine, and writes the
 * response.  Engine codes become DynamoDB error types through ddb_errors[] only; __type carries the
 * namespace DynamoDB uses (com.amazonaws.dynamodb.v20120810#..., com.amazon.coral.validate#
 * ValidationException, com.amazon.coral.service#SerializationException ...).
 *
 * Items stay in DynamoDB's wire form end to end (item.h): the adapter never translates them.
 *
 * Writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems) are deferred:
 * the engine's writer thread acknowledges after its group commit (ddb_write_done), and the response
 * is built back on the network thread (req->finish).  Reads run on the network thread: they are
 * LMDB snapshot reads that never wait.
 *
 * Every response carries x-amz-crc32, the CRC-32 (zlib's) of the body, which SDKs verify.
 *
 * Legacy parameters (Expected, AttributeUpdates, KeyConditions, QueryFilter, ScanFilter,
 * AttributesToGet, ConditionalOperator) are rewritten into the equivalent expressions (see
 * ddb_legacy_rewrite); mixing them with expressions is refused as DynamoDB does.
 *
 * This file holds the service (the operation table, the error map and type namer), response
 * output and sealing, the capacity arithmetic and the in-process call path (api_dynamodb_call).
 * Its siblings hold the handlers: dynamodb_input.c (member validation, expressions, legacy
 * translation), dynamodb_control.c (tables, TTL, tags), dynamodb_read.c (GetItem, Query, Scan,
 * BatchGetItem, TransactGetItems) and dynamodb_write.c (the writes, one deferred path);
 * dynamodb_int.h declares what they share.
 *
 * Consumed capacity follows DynamoDB's arithmetic: reads ceil(size / 4 KB) units (half for
 * eventually consistent reads, double in transactions; Query/Scan sum the sizes of everything
 * read before rounding), writes ceil(max(old, new size) / 1 KB) (double in transactions), at
 * least one unit per item.  Index capacity is reported for index reads and for writes whose item
 * the adapter can see (PutItem; UpdateItem/DeleteItem via their returned item).
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "api/api.h"
#include "api/dynamodb_int.h"
#include "core/tlog.h"
#include "table/tbl.h"

/* ---- errors -------------------------------------------------------------------------------- */

/* DynamoDB's namespaced __type for a short error name. */
static const char *ddb_type(const char *t, char *buf, size_t cap) {
    if (strchr(t, '#')) return t;
    const char *ns = DDB_NS;
    if (!strcmp(t, "ValidationException")) ns = "com.amazon.coral.validate#";
    else if (!strcmp(t, "SerializationException") || !strcmp(t, "UnknownOperationException") ||
             !strcmp(t, "MissingAuthenticationTokenException") ||
             !strcmp(t, "InvalidSignatureException") || !strcmp(t, "UnrecognizedClientException"))
        ns = "com.amazon.coral.service#";
    else if (!strcmp(t, "ThrottlingException")) ns = "com.amazon.coral.availability#";
    snprintf(buf, cap, "%s%s", ns, t);
    return buf;
}

int ddb_invalid(api_call_t *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return api_fail(c, 400, "ValidationException", "%s", msg);
}

/* The one place engine codes become DynamoDB error types (api_error answers through it; the
 * types are namespaced by ddb_type).  A code without a row is a logged 500. */
static const api_errmap_t ddb_errors[] = {
    {TR_ENOTFOUND, 400, "ResourceNotFoundException", NULL, "Requested resource not found"},
    {TR_EEXISTS, 400, "ResourceInUseException", NULL, NULL},
    {TR_EINUSE, 400, "ResourceInUseException", NULL, NULL},
    {TR_ELIMIT, 400, "LimitExceededException", NULL, NULL},
    {TR_ETHROTTLED, 400, "ProvisionedThroughputExceededException",
     "The server's queue of writes waiting for their commit is full; retry with backoff (SDKs do "
     "this automatically).",
     NULL},
    {TR_EINVAL, 400, "ValidationException", NULL, NULL},
    {TR_ETOOBIG, 400, "ValidationException", NULL, NULL},
    {TR_EVALIDATION, 400, "ValidationException", NULL, NULL},
    {TR_ECONDITION, 400, "ConditionalCheckFailedException", "The conditional request failed", NULL},
    {TR_EIDEMPOTENCY, 400, "IdempotentParameterMismatchException", NULL,
     "The request uses the same client token as a previous, but non-identical request. Do not "
     "reuse a client token with different requests, unless the requests are identical."},
    {TR_ESERIALIZATION, 400, "SerializationException", NULL, NULL},
    {TR_ECLOSED, 500, "InternalServerError", "The server is shutting down; retry shortly.", NULL},
    {0, 500, "InternalServerError", "Internal server error", NULL},
};

int ddb_error_table(api_call_t *c, int code, const tr_err *err, const char *table) {
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    if (code == TR_ENOTFOUND && (!msg || !strncmp(msg, "Requested resource not found", 28)))
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Requested resource not found: Table: %s not found", table);
    return api_error(c, code, err);
}

void ddb_error_req(net_req_t *req, api_ctx_t *ctx, int code, const tr_err *err) {
    api_call_t c = {.ctx = ctx, .svc = &api_dynamodb_service, .req = req, .out = &req->out};
    api_error(&c, code, err);
}

/* ---- output helpers ------------------------------------------------------------------------ */

void ddb_put_json(tr_buf *b, const json_t *v) { tbl_json_dump(b, v); }

void ddb_put_str(tr_buf *b, const char *s) { tr_buf_json_str(b, s, strlen(s)); }

static void ddb_put_units(tr_buf *b, double u) { tr_buf_printf(b, "%.1f", u); }

void ddb_put_ts(tr_buf *b, int64_t ms) {
    tr_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

void ddb_put_arn(api_call_t *c, tr_buf *b, const char *table, const char *index) {
    tr_buf_printf(b, "\"arn:aws:dynamodb:%s:%s:table/%s", c->ctx->region, API_ACCOUNT_ID, table);
    if (index) tr_buf_printf(b, "/index/%s", index);
    tr_buf_puts(b, "\"");
}

/* x-amz-crc32: the CRC-32 of the final body. */
void ddb_seal(net_req_t *req) {
    char v[16], *p = v + sizeof v;
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)(req->out.data ? req->out.data : ""),
                                   (uInt)req->out.len);
    *--p = 0;
    do *--p = (char)('0' + crc % 10);   /* decimal, as "%lu" writes it */
    while (crc /= 10);
    net_req_add_header(req, "x-amz-crc32", p);
}

/* ---- capacity ------------------------------------------------------------------------------ */

double ddb_read_units(size_t bytes, int consistent, int txn) {
    double u = (double)((bytes + 4095) / 4096);
    if (u < 1) u = 1;
    if (txn) return u * 2;
    return consistent ? u : u / 2;
}

double ddb_write_units(size_t old_size, size_t new_size, int txn) {
    size_t s = old_size > new_size ? old_size : new_size;
    double u = (double)((s + 1023) / 1024);
    if (u < 1) u = 1;
    return txn ? u * 2 : u;
}

/* One ConsumedCapacity object.  idx (may be NULL) names the index read (and whether it is
 * local) or, for writes, a list of n_idx index units. */

void ddb_put_capacity(tr_buf *b, int mode, const char *table, double table_units,
                      const ddb_idx_units_t *idx, size_t n_idx) {
    double total = table_units;
    for (size_t i = 0; i < n_idx; i++) total += idx[i].units;
    tr_buf_puts(b, "{\"TableName\":");
    ddb_put_str(b, table);
    tr_buf_puts(b, ",\"CapacityUnits\":");
    ddb_put_units(b, total);
    if (mode == DDB_RCC_INDEXES) {
        tr_buf_puts(b, ",\"Table\":{\"CapacityUnits\":");
        ddb_put_units(b, table_units);
        tr_buf_puts(b, "}");
        for (int local = 0; local < 2; local++) {
            int any = 0;
            for (size_t i = 0; i < n_idx; i++) {
                if (idx[i].local != local) continue;
                tr_buf_puts(b, any++ ? ","
                                     : (local ? ",\"LocalSecondaryIndexes\":{"
                                              : ",\"GlobalSecondaryIndexes\":{"));
                ddb_put_str(b, idx[i].name);
                tr_buf_puts(b, ":{\"CapacityUnits\":");
                ddb_put_units(b, idx[i].units);
                tr_buf_puts(b, "}");
            }
            if (any) tr_buf_puts(b, "}");
        }
    }
    tr_buf_puts(b, "}");
}

/* Does item have every key attribute of index ix (an entry exists)?  Units for writing it. */
double ddb_index_write_units(const tbl_index_info_t *ix, const json_t *item) {
    if (!item || !json_object_get(item, ix->hash) ||
        (ix->range && !json_object_get(item, ix->range)))
        return 0;
    size_t size = tbl_item_size(item);
    if (ix->projection != TBL_PROJ_ALL) {
        /* approximately: projected attributes only */
        json_t *p = json_object();
        json_object_set(p, ix->hash, json_object_get(item, ix->hash));
        if (ix->range) json_object_set(p, ix->range, json_object_get(item, ix->range));
        for (size_t i = 0; i < ix->n_include; i++) {
            json_t *v = json_object_get(item, ix->include[i]);
            if (v) json_object_set(p, ix->include[i], v);
        }
        size = tbl_item_size(p) + 100;
        json_decref(p);
    }
    return ddb_write_units(0, size, 0);
}

void ddb_tcap_add(ddb_tcap_t *t, size_t *n, const char *table, double u) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].table, table)) {
            t[i].units += u;
            return;
        }
    t[*n].table = table;
    t[*n].units = u;
    (*n)++;
}

void ddb_put_tcaps(tr_buf *b, const char *lead, int mode, const ddb_tcap_t *t, size_t n) {
    tr_buf_puts(b, lead);
    tr_buf_puts(b, "\"ConsumedCapacity\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(b, ",");
        ddb_put_capacity(b, mode, t[i].table, t[i].units, NULL, 0);
    }
    tr_buf_puts(b, "]");
}

/* ---- the service ---------------------------------------------------------------------------- */

/* Adding an operation: one row here and its handler (dynamodb_int.h). */
static const api_op_t ddb_ops[] = {
    {.name = "BatchGetItem", .fn = ddb_batch_get},
    {.name = "BatchWriteItem", .fn = ddb_batch_write},
    {.name = "CreateTable", .fn = ddb_create_table},
    {.name = "DeleteItem", .fn = ddb_delete_item},
    {.name = "DeleteTable", .fn = ddb_delete_table},
    {.name = "DescribeTable", .fn = ddb_describe_table},
    {.name = "DescribeTimeToLive", .fn = ddb_describe_ttl},
    {.name = "GetItem", .fn = ddb_get_item},
    {.name = "ListTables", .fn = ddb_list_tables},
    {.name = "ListTagsOfResource", .fn = ddb_list_tags},
    {.name = "PutItem", .fn = ddb_put_item},
    {.name = "Query", .fn = ddb_query},
    {.name = "Scan", .fn = ddb_scan},
    {.name = "TagResource", .fn = ddb_tag_resource},
    {.name = "TransactGetItems", .fn = ddb_transact_get},
    {.name = "TransactWriteItems", .fn = ddb_transact_write},
    {.name = "UntagResource", .fn = ddb_untag_resource},
    {.name = "UpdateItem", .fn = ddb_update_item},
    {.name = "UpdateTable", .fn = ddb_update_table},
    {.name = "UpdateTimeToLive", .fn = ddb_update_ttl},
};

/* Every operation needs the table engine (a server started without it answers 500). */
static int ddb_ready(api_call_t *c) {
    if (!c->ctx->tbl)
        return api_fail(c, 500, "InternalServerError",
                        "The table engine is not open on this server");
    return 0;
}

const api_service_t api_dynamodb_service = {
    .name = "dynamodb",
    .label = "DynamoDB",
    .log = "dynamodb",
    .proto = API_PROTO_JSON10,
    .target_prefix = "DynamoDB_20120810.",
    .content_type = DDB_JSON,
    API_OPS(ddb_ops),
    API_ERRORS(ddb_errors),
    .type_name = ddb_type,
    .verr_value_max = 300,
    .ready = ddb_ready,
    .seal = ddb_seal,
};

/* ---- in-process calls (native functions) ---------------------------------------------------- */

void api_dynamodb_call(api_ctx_t *ctx, const char *op, const char *body, size_t len,
                       api_dynamodb_done_fn done, void *arg) {
    api_call_local(ctx, &api_dynamodb_service, op, body, len, done, arg);
}

void api_dynamodb_call_post(api_ctx_t *ctx, const char *op, const char *body, size_t len,
                            api_dynamodb_done_fn done, void *arg, api_dynamodb_post_fn post,
                            void *post_arg) {
    api_call_local_post(ctx, &api_dynamodb_service, op, body, len, done, arg, post, post_arg);
}
