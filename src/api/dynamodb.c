/*
 * dynamodb.c -- the DynamoDB adapter: JSON 1.0 in, table engine (table/tbl.h) calls, JSON out.
 *
 * Every operation is one row of ddb_ops[] (name, handler).  A handler validates its input the way
 * DynamoDB does -- shape constraints (botocore's service-2.json: lengths, patterns, enums, ranges)
 * are accumulated into one ValidationException "N validation error(s) detected: Value 'x' at
 * 'member' failed to satisfy constraint: ..."; semantic problems get DynamoDB's own sentences
 * ("One or more parameter values were invalid: ...") -- calls the engine, and writes the
 * response.  Engine codes become DynamoDB error types in ddb_error() only; __type carries the
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
 * This file holds the dispatch (the operation table, api_dynamodb_handle), the errors, response
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
#include <stdatomic.h>
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

int ddb_fail(ddb_call_t *c, int status, const char *type, const char *fmt, ...) {
    char msg[1024], tb[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_json_error(c->req, status, ddb_type(type, tb, sizeof tb), "%s", msg);
    return -1;
}

int ddb_invalid(ddb_call_t *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ddb_fail(c, 400, "ValidationException", "%s", msg);
}

/* The one place engine codes become DynamoDB error types.  table (may be NULL) names the table
 * for control-plane "not found" messages, which DynamoDB spells out. */
int ddb_error_req(net_req_t *req, int code, const tr_err *err, const char *table) {
    const char *type = "InternalServerError";
    int status = 500;
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    char buf[600];
    switch (code) {
    case TR_ENOTFOUND:
        type = "ResourceNotFoundException";
        status = 400;
        if (table) {
            snprintf(buf, sizeof buf, "Requested resource not found: Table: %s not found", table);
            if (!msg || !strncmp(msg, "Requested resource not found", 28)) msg = buf;
        } else if (!msg) {
            msg = "Requested resource not found";
        }
        break;
    case TR_EEXISTS:
    case TR_EINUSE: type = "ResourceInUseException"; status = 400; break;
    case TR_ELIMIT: type = "LimitExceededException"; status = 400; break;
    case TR_ETHROTTLED:
        type = "ProvisionedThroughputExceededException";
        status = 400;
        msg = "The server's queue of writes waiting for their commit is full; retry with "
              "backoff (SDKs do this automatically).";
        break;
    case TR_EINVAL:
    case TR_ETOOBIG:
    case TR_EVALIDATION: type = "ValidationException"; status = 400; break;
    case TR_ECONDITION:
        type = "ConditionalCheckFailedException";
        status = 400;
        msg = "The conditional request failed";
        break;
    case TR_EIDEMPOTENCY:
        type = "IdempotentParameterMismatchException";
        status = 400;
        if (!msg)
            msg = "The request uses the same client token as a previous, but non-identical "
                  "request. Do not reuse a client token with different requests, unless the "
                  "requests are identical.";
        break;
    case TR_ESERIALIZATION: type = "SerializationException"; status = 400; break;
    case TR_ECLOSED:
        msg = "The server is shutting down; retry shortly.";
        break;
    default: break;
    }
    if (status == 500) {
        tr_error("dynamodb", "internal error %s: %s", tr_err_name(code), err ? err->msg : "");
        if (code != TR_ECLOSED) msg = "Internal server error";
    }
    char tb[128];
    api_json_error(req, status, ddb_type(type, tb, sizeof tb), "%s", msg ? msg : tr_strerror(code));
    return -1;
}

int ddb_error(ddb_call_t *c, int code, const tr_err *err) {
    return ddb_error_req(c->req, code, err, NULL);
}

/* Record a shape-constraint violation. value NULL prints "Value null". */
void ddb_verr(ddb_call_t *c, const char *member, const char *value, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    api_verr_vadd(&c->verr, &c->n_verr, 300, member, value, fmt, ap);
    va_end(ap);
}

int ddb_verr_flush(ddb_call_t *c) {
    if (!c->n_verr) return 0;
    return ddb_invalid(c, "%d validation error%s detected: %s", c->n_verr, c->n_verr > 1 ? "s" : "",
                     c->verr.data);
}

/* ---- output helpers ------------------------------------------------------------------------ */

void ddb_put_json(tr_buf *b, const json_t *v) { tbl_json_dump(b, v); }

void ddb_put_str(tr_buf *b, const char *s) { tr_buf_json_str(b, s, strlen(s)); }

static void ddb_put_units(tr_buf *b, double u) { tr_buf_printf(b, "%.1f", u); }

void ddb_put_ts(tr_buf *b, int64_t ms) {
    tr_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

void ddb_put_arn(ddb_call_t *c, tr_buf *b, const char *table, const char *index) {
    tr_buf_printf(b, "\"arn:aws:dynamodb:%s:%s:table/%s", c->ctx->region, API_ACCOUNT_ID, table);
    if (index) tr_buf_printf(b, "/index/%s", index);
    tr_buf_puts(b, "\"");
}

/* x-amz-crc32: the CRC-32 of the final body. */
void ddb_seal(net_req_t *req) {
    char v[16], *p = v + sizeof v;
    uint32_t crc =
        (uint32_t)crc32(0L, (const Bytef *)(req->out.data ? req->out.data : ""), (uInt)req->out.len);
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
                tr_buf_puts(b, any++ ? "," : (local ? ",\"LocalSecondaryIndexes\":{"
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
    if (!item || !json_object_get(item, ix->hash) || (ix->range && !json_object_get(item, ix->range)))
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

/* ---- the operation table ------------------------------------------------------------------- */

static const struct ddb_op {
    const char *name;
    ddb_handler_fn fn;
} ddb_ops[] = {
    {"BatchGetItem", ddb_batch_get},
    {"BatchWriteItem", ddb_batch_write},
    {"CreateTable", ddb_create_table},
    {"DeleteItem", ddb_delete_item},
    {"DeleteTable", ddb_delete_table},
    {"DescribeTable", ddb_describe_table},
    {"DescribeTimeToLive", ddb_describe_ttl},
    {"GetItem", ddb_get_item},
    {"ListTables", ddb_list_tables},
    {"ListTagsOfResource", ddb_list_tags},
    {"PutItem", ddb_put_item},
    {"Query", ddb_query},
    {"Scan", ddb_scan},
    {"TagResource", ddb_tag_resource},
    {"TransactGetItems", ddb_transact_get},
    {"TransactWriteItems", ddb_transact_write},
    {"UntagResource", ddb_untag_resource},
    {"UpdateItem", ddb_update_item},
    {"UpdateTable", ddb_update_table},
    {"UpdateTimeToLive", ddb_update_ttl},
};

int api_dynamodb_handle(api_ctx_t *ctx, net_req_t *req, const char *op) {
    const struct ddb_op *found = NULL;
    for (size_t i = 0; i < sizeof ddb_ops / sizeof ddb_ops[0]; i++)
        if (!strcmp(ddb_ops[i].name, op)) {
            found = &ddb_ops[i];
            break;
        }
    ddb_call_t c = {.ctx = ctx, .op = op, .req = req, .out = &req->out};
    int rc = -1;
    if (!found) {
        ddb_fail(&c, 400, "UnknownOperationException",
               "Operation %s is not implemented by Tributary's DynamoDB API; see the "
               "compatibility table in README.md", op);
        goto done;
    }
    if (!ctx->tbl) {
        ddb_fail(&c, 500, "InternalServerError", "The table engine is not open on this server");
        goto done;
    }
    json_error_t jerr;
    c.in = json_loadb((const char *)req->body, req->body_len, JSON_ALLOW_NUL, &jerr);
    if (!c.in) {
        if (req->body_len == 0)
            ddb_fail(&c, 400, "SerializationException",
                   "Request body is empty; send a JSON object with the operation's members ({} "
                   "when there are none)");
        else
            ddb_fail(&c, 400, "SerializationException",
                   "Request body is not valid JSON: %s (at byte %d)", jerr.text, jerr.position);
        goto done;
    }
    if (!json_is_object(c.in)) {
        ddb_fail(&c, 400, "SerializationException",
               "Request body must be a JSON object with the operation's members");
        goto done;
    }
    rc = found->fn(&c);
done:
    json_decref(c.in);
    tr_buf_free(&c.verr);
    if (rc == 1) return NET_DEFER;
    ddb_seal(req);
    return NET_DONE;
}

/* ---- in-process calls (native functions) ---------------------------------------------------- */

/* A request that never touched the network: the same net_req_t an HTTP request gets, with
 * resume_fn ours.  As net/http.c does, the deferred completion runs once both the handler has
 * returned and the engine has resumed (sync counts to 2), so `finish` never races the handler. */
typedef struct ddb_local {
    net_req_t req;                 /* first: resume_fn gets &req */
    atomic_int sync;
    api_dynamodb_done_fn done;
    void *arg;
} ddb_local_t;

static void ddb_local_end(ddb_local_t *l) {
    net_req_t *req = &l->req;
    if (req->finish) req->finish(req);
    l->done(l->arg, req->status, req->out.data ? (const char *)req->out.data : "", req->out.len);
    net_req_resp_free(req);
    free(req->body);
    free(l);
}

static void ddb_local_resume(net_req_t *req) {
    ddb_local_t *l = (ddb_local_t *)req;
    if (atomic_fetch_add(&l->sync, 1) == 1) ddb_local_end(l);
}

void api_dynamodb_call(api_ctx_t *ctx, const char *op, const char *body, size_t len,
                       api_dynamodb_done_fn done, void *arg) {
    static const char oom[] = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                              "InternalServerError\",\"message\":\"out of memory\"}";
    ddb_local_t *l = calloc(1, sizeof *l);
    uint8_t *b = malloc(len + 1);
    if (!l || !b) {
        free(l);
        free(b);
        done(arg, 500, oom, sizeof oom - 1);
        return;
    }
    if (len) memcpy(b, body, len);
    b[len] = 0;
    l->done = done;
    l->arg = arg;
    l->req.method = "POST";
    l->req.path = "/";
    l->req.query = "";
    l->req.body = b;
    l->req.body_len = len;
    l->req.status = 200;
    l->req.resume_fn = ddb_local_resume;
    snprintf(l->req.remote, sizeof l->req.remote, "function");
    if (api_dynamodb_handle(ctx, &l->req, op) == NET_DONE) {
        ddb_local_end(l);
        return;
    }
    if (atomic_fetch_add(&l->sync, 1) == 1) ddb_local_end(l);
}
