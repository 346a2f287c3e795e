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
#include "core/tlog.h"
#include "table/tbl.h"

#define DDB_JSON "application/x-amz-json-1.0"
#define DDB_NS "com.amazonaws.dynamodb.v20120810#"
#define DDB_MAX_BATCH_GET_BYTES (16u * 1024 * 1024)
#define DDB_NAME_MAX (TBL_MAX_NAME + 1)

typedef struct ddb_call {
    api_ctx_t *ctx;
    const char *op;          /* operation name, for authorization messages */
    net_req_t *req;
    json_t *in;
    tr_buf *out;
    /* accumulated shape-constraint violations */
    int n_verr;
    tr_buf verr;
} ddb_call_t;

typedef int (*ddb_handler_fn)(ddb_call_t *c);

enum { DDB_RCC_NONE = 0, DDB_RCC_TOTAL, DDB_RCC_INDEXES };

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

static int ddb_fail(ddb_call_t *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ddb_fail(ddb_call_t *c, int status, const char *type, const char *fmt, ...) {
    char msg[1024], tb[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_json_error(c->req, status, ddb_type(type, tb, sizeof tb), "%s", msg);
    return -1;
}

static int ddb_invalid(ddb_call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ddb_invalid(ddb_call_t *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ddb_fail(c, 400, "ValidationException", "%s", msg);
}

/* The one place engine codes become DynamoDB error types.  table (may be NULL) names the table
 * for control-plane "not found" messages, which DynamoDB spells out. */
static int ddb_error_req(net_req_t *req, int code, const tr_err *err, const char *table) {
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

static int ddb_error(ddb_call_t *c, int code, const tr_err *err) {
    return ddb_error_req(c->req, code, err, NULL);
}

/* Record a shape-constraint violation. value NULL prints "Value null". */
static void ddb_verr(ddb_call_t *c, const char *member, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ddb_verr(ddb_call_t *c, const char *member, const char *value, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    api_verr_vadd(&c->verr, &c->n_verr, 300, member, value, fmt, ap);
    va_end(ap);
}

static int ddb_verr_flush(ddb_call_t *c) {
    if (!c->n_verr) return 0;
    return ddb_invalid(c, "%d validation error%s detected: %s", c->n_verr, c->n_verr > 1 ? "s" : "",
                     c->verr.data);
}

/* ---- input helpers ------------------------------------------------------------------------- */

enum { DDB_OPT = 0, DDB_REQ = 1 };
enum { DDB_PAT_NONE, DDB_PAT_NAME };

static int ddb_name_ok(const char *s, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

static const char *ddb_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING: return "STRING_VALUE";
    case JSON_INTEGER:
    case JSON_REAL: return "NUMBER_VALUE";
    case JSON_TRUE: return "TRUE_VALUE";
    case JSON_FALSE: return "FALSE_VALUE";
    case JSON_OBJECT: return "START_OBJECT";
    case JSON_ARRAY: return "START_ARRAY";
    default: return "VALUE_NULL";
    }
}

/* SerializationException for a member of the wrong JSON type. */
static int ddb_badtype(ddb_call_t *c, const char *name, const json_t *v, const char *want) {
    if (json_is_object(v) && strcmp(want, "Map") && strcmp(want, "Structure"))
        return ddb_fail(c, 400, "SerializationException",
                      "Start of structure or map found where not expected (member %s)", name);
    if (json_is_array(v) && strcmp(want, "List"))
        return ddb_fail(c, 400, "SerializationException",
                      "Start of list found where not expected (member %s)", name);
    return ddb_fail(c, 400, "SerializationException", "%s can not be converted to %s (member %s)",
                  ddb_json_kind(v), want, name);
}

static size_t ddb_chars(const char *s, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    return chars;
}

/* String member: *out NULL when absent.  Type errors answer SerializationException (-1);
 * constraint errors are accumulated under `path`. */
static int ddb_str(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
                 size_t min, size_t max, int pat, const char **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (req) ddb_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (!json_is_string(v)) return ddb_badtype(c, name, v, "String");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), chars = ddb_chars(s, n);
    if (pat == DDB_PAT_NAME && !ddb_name_ok(s, n))
        ddb_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
    if (chars < min)
        ddb_verr(c, path, s, "Member must have length greater than or equal to %zu", min);
    else if (chars > max)
        ddb_verr(c, path, s, "Member must have length less than or equal to %zu", max);
    *out = s;
    return 0;
}

static int ddb_int(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
                 long long min, long long max, long long *out, int *present) {
    json_t *v = json_object_get(obj, name);
    char vb[32];
    *present = 0;
    if (!v || json_is_null(v)) {
        if (req) ddb_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (!json_is_integer(v)) return ddb_badtype(c, name, v, "Integer");
    long long x = json_integer_value(v);
    snprintf(vb, sizeof vb, "%lld", x);
    if (x < min)
        ddb_verr(c, path, vb, "Member must have value greater than or equal to %lld", min);
    else if (x > max)
        ddb_verr(c, path, vb, "Member must have value less than or equal to %lld", max);
    *out = x;
    *present = 1;
    return 0;
}

static int ddb_bool(ddb_call_t *c, const json_t *obj, const char *name, int *out, int *present) {
    json_t *v = json_object_get(obj, name);
    if (present) *present = 0;
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return ddb_badtype(c, name, v, "Boolean");
    *out = json_is_true(v);
    if (present) *present = 1;
    return 0;
}

/* Enum member: *idx = index into vals, -1 when absent or invalid (accumulated). */
static int ddb_enum(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
                  const char *const *vals, size_t n, const char *set_text, int *idx) {
    const char *s;
    *idx = -1;
    if (ddb_str(c, obj, name, path, req, 0, SIZE_MAX, DDB_PAT_NONE, &s)) return -1;
    if (!s) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, vals[i])) {
            *idx = (int)i;
            return 0;
        }
    ddb_verr(c, path, s, "Member must satisfy enum value set: %s", set_text);
    return 0;
}

/* Object / array member (NULL when absent); wrong type is SerializationException. */
static int ddb_obj(ddb_call_t *c, const json_t *obj, const char *name, json_t **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return ddb_badtype(c, name, v, "Map");
    *out = v;
    return 0;
}

static int ddb_arr(ddb_call_t *c, const json_t *obj, const char *name, json_t **out) {
    json_t *v = json_object_get(obj, name);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return ddb_badtype(c, name, v, "List");
    *out = v;
    return 0;
}

/* A table ARN must name a table of this account in this region, as on AWS: another account's
 * is AccessDeniedException (Tributary has no resource policies that could allow it), another
 * region's is not found from this endpoint.  0 when ours, else -1 with the error answered. */
static int ddb_arn_owned(ddb_call_t *c, const char *arn) {
    switch (api_arn_owner(c->ctx, arn)) {
    case API_ARN_OTHER_REGION:
        return ddb_fail(c, 400, "ResourceNotFoundException",
                      "Requested resource not found: %s is outside this endpoint's partition and "
                      "region (aws, %s); call that region's endpoint", arn, c->ctx->region);
    case API_ARN_OTHER_ACCOUNT:
        return ddb_fail(c, 400, "AccessDeniedException",
                      "User: arn:aws:iam::%s:root is not authorized to perform: dynamodb:%s on "
                      "resource: %s because no resource-based policy allows the dynamodb:%s "
                      "action (this server's tables are in account %s)",
                      API_ACCOUNT_ID, c->op ? c->op : "", arn, c->op ? c->op : "", API_ACCOUNT_ID);
    default: return 0;
    }
}

/* TableName (or a table ARN, as DynamoDB now accepts) into out. */
static int ddb_table(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
                   char out[DDB_NAME_MAX]) {
    json_t *v = json_object_get(obj, name);
    out[0] = 0;
    if (v && json_is_string(v) && !strncmp(json_string_value(v), "arn:", 4)) {
        const char *s = json_string_value(v), *t = strstr(s, ":table/");
        if (!t || !strstr(s, ":dynamodb:")) {
            ddb_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
            return 0;
        }
        t += 7;
        size_t n = strcspn(t, "/");
        if (n < 3 || n > TBL_MAX_NAME || !ddb_name_ok(t, n)) {
            ddb_verr(c, path, s, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
            return 0;
        }
        if (ddb_arn_owned(c, s)) return -1;
        memcpy(out, t, n);
        out[n] = 0;
        return 0;
    }
    const char *s;
    if (ddb_str(c, obj, name, path, req, 3, 255, DDB_PAT_NAME, &s)) return -1;
    if (s) snprintf(out, DDB_NAME_MAX, "%s", s);
    return 0;
}

static const char *const ddb_rcc_vals[] = {"NONE", "TOTAL", "INDEXES"};
static int ddb_rcc(ddb_call_t *c, const json_t *obj, int *mode) {
    int i;
    if (ddb_enum(c, obj, "ReturnConsumedCapacity", "returnConsumedCapacity", DDB_OPT, ddb_rcc_vals, 3,
               "[INDEXES, TOTAL, NONE]", &i))
        return -1;
    *mode = i < 0 ? DDB_RCC_NONE : i;
    return 0;
}

static int ddb_ricm(ddb_call_t *c, const json_t *obj) {
    static const char *const vals[] = {"SIZE", "NONE"};
    int i;
    return ddb_enum(c, obj, "ReturnItemCollectionMetrics", "returnItemCollectionMetrics", DDB_OPT,
                  vals, 2, "[SIZE, NONE]", &i);
}

static int ddb_rvoccf(ddb_call_t *c, const json_t *obj, const char *path, int *all_old) {
    static const char *const vals[] = {"NONE", "ALL_OLD"};
    int i;
    if (ddb_enum(c, obj, "ReturnValuesOnConditionCheckFailure", path, DDB_OPT, vals, 2,
               "[ALL_OLD, NONE]", &i))
        return -1;
    *all_old = i == 1;
    return 0;
}

/* ---- attribute values ---------------------------------------------------------------------- */

/* A map of AttributeValues (Key, ExclusiveStartKey): validated and canonicalised in place. */
static int ddb_av_map(ddb_call_t *c, json_t *m, const char *name) {
    if (!json_is_object(m)) return ddb_badtype(c, name, m, "Map");
    const char *k;
    json_t *av;
    tr_err err;
    json_object_foreach(m, k, av) {
        if (!json_is_object(av)) return ddb_badtype(c, name, av, "Structure");
        tr_err_clear(&err);
        if (tbl_av_validate(av, &err)) return ddb_invalid(c, "%s", err.msg);
    }
    return 0;
}

/* A whole item (PutItem's Item): validated, numbers canonicalised, size checked. */
static int ddb_item(ddb_call_t *c, json_t *item, const char *name) {
    if (!json_is_object(item)) return ddb_badtype(c, name, item, "Map");
    const char *k;
    json_t *av;
    json_object_foreach(item, k, av) {
        if (!json_is_object(av)) return ddb_badtype(c, name, av, "Structure");
    }
    tr_err err;
    tr_err_clear(&err);
    if (tbl_item_validate(item, &err)) return ddb_invalid(c, "%s", err.msg);
    return 0;
}

/* Key attributes may not be empty strings or binaries. */
static int ddb_key_empty(ddb_call_t *c, const json_t *m, const char *hash, const char *range) {
    const char *names[2] = {hash, range};
    for (int i = 0; i < 2; i++) {
        if (!names[i] || !names[i][0]) continue;
        json_t *av = json_object_get(m, names[i]);
        if (!av) continue;
        json_t *s = json_object_get(av, "S"), *b = json_object_get(av, "B");
        if ((s && json_is_string(s) && json_string_length(s) == 0) ||
            (b && json_is_string(b) && json_string_length(b) == 0))
            return ddb_invalid(c,
                             "One or more parameter values are not valid. The AttributeValue for "
                             "a key attribute cannot contain an empty %s value. Key: %s",
                             s ? "string" : "binary", names[i]);
    }
    return 0;
}

/* ---- expressions --------------------------------------------------------------------------- */

typedef struct ddb_exprs {
    json_t *names, *values;          /* borrowed from the request */
    tbl_expr_usage_t usage;
    tbl_expr_t *e[6];
    int n;
} ddb_exprs_t;

static void ddb_exprs_free(ddb_exprs_t *x) {
    for (int i = 0; i < x->n; i++) tbl_expr_free(x->e[i]);
    x->n = 0;
    tbl_expr_usage_free(&x->usage);
}

/* Load ExpressionAttributeNames/Values of obj.  any_expr: whether obj has an expression. */
static int ddb_exprs_init(ddb_call_t *c, json_t *obj, int any_expr, ddb_exprs_t *x) {
    memset(x, 0, sizeof *x);
    if (ddb_obj(c, obj, "ExpressionAttributeNames", &x->names)) return -1;
    if (ddb_obj(c, obj, "ExpressionAttributeValues", &x->values)) return -1;
    if (x->names) {
        const char *k;
        json_t *v;
        json_object_foreach(x->names, k, v) {
            if (!json_is_string(v)) return ddb_badtype(c, "ExpressionAttributeNames", v, "String");
        }
    }
    if (x->values && ddb_av_map(c, x->values, "ExpressionAttributeValues")) return -1;
    if (!any_expr) {
        if (x->names)
            return ddb_invalid(c, "ExpressionAttributeNames can only be specified when using "
                                "expressions");
        if (x->values)
            return ddb_invalid(c, "ExpressionAttributeValues can only be specified when using "
                                "expressions");
    }
    if (x->names && json_object_size(x->names) == 0)
        return ddb_invalid(c, "ExpressionAttributeNames must not be empty");
    if (x->values && json_object_size(x->values) == 0)
        return ddb_invalid(c, "ExpressionAttributeValues must not be empty");
    return 0;
}

/* Parse obj[member] (if present) as kind; *out NULL when absent. */
static int ddb_expr(ddb_call_t *c, ddb_exprs_t *x, json_t *obj, const char *member, int kind,
                  tbl_expr_t **out) {
    const char *text;
    char path[64];
    snprintf(path, sizeof path, "%s", member);
    path[0] = (char)(path[0] - 'A' + 'a');
    *out = NULL;
    if (ddb_str(c, obj, member, path, DDB_OPT, 0, SIZE_MAX, DDB_PAT_NONE, &text)) return -1;
    if (!text) return 0;
    if (!text[0]) return ddb_invalid(c, "Invalid %s: The expression can not be empty;", member);
    tr_err err;
    tr_err_clear(&err);
    tbl_expr_t *e = NULL;
    if (tbl_expr_parse(kind, text, x->names, x->values, &x->usage, &e, &err))
        return ddb_invalid(c, "%s", err.msg[0] ? err.msg : "Invalid expression");
    x->e[x->n++] = e;
    *out = e;
    return 0;
}

static int ddb_exprs_check(ddb_call_t *c, ddb_exprs_t *x) {
    tr_err err;
    tr_err_clear(&err);
    if (tbl_expr_usage_check(&x->usage, x->names, x->values, &err))
        return ddb_invalid(c, "%s", err.msg);
    return 0;
}

/* Legacy (pre-expression) parameters.  legacy[i] is replaced by modern[i]. */
static int ddb_legacy(ddb_call_t *c, const json_t *obj, const char *const *legacy,
                    const char *const *modern, size_t n, const char *const *exprs, size_t n_exprs) {
    tr_buf lb = TR_BUF_INIT, eb = TR_BUF_INIT;
    int first = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(obj, legacy[i]);
        if (!v || json_is_null(v)) continue;
        if (first < 0) first = (int)i;
        tr_buf_printf(&lb, "%s%s", lb.len ? ", " : "", legacy[i]);
    }
    if (first < 0) return 0;
    for (size_t i = 0; i < n_exprs; i++) {
        json_t *v = json_object_get(obj, exprs[i]);
        if (v && !json_is_null(v)) tr_buf_printf(&eb, "%s%s", eb.len ? ", " : "", exprs[i]);
    }
    int rc;
    if (eb.len)
        rc = ddb_invalid(c, "Can not use both expression and non-expression parameters in the same "
                          "request: Non-expression parameters: {%s} Expression parameters: {%s}",
                       lb.data, eb.data);
    else
        rc = ddb_invalid(c, "The legacy parameter %s cannot be used on its own here; use %s "
                          "instead (see \"Legacy conditional parameters\" in the DynamoDB "
                          "developer guide)",
                       legacy[first], modern[first]);
    tr_buf_free(&lb);
    tr_buf_free(&eb);
    return rc;
}

/* ---- legacy parameters: translated into expressions ----------------------------------------
 *
 * Requests that use only the pre-expression parameters are rewritten in place into their
 * expression equivalents (each attribute name becomes a #lgN placeholder, each value a :lgN), and
 * then take the ordinary path.  A request mixing both kinds is refused by ddb_legacy(), as
 * DynamoDB does.  Translations (DynamoDB developer guide, "Legacy conditional parameters"):
 *   AttributesToGet [a, b]                   -> ProjectionExpression #a, #b
 *   Expected {a: {Value: v}}                 -> #a = :v          ({Exists: false}: attribute_not_exists)
 *   Expected/QueryFilter/ScanFilter {a: {ComparisonOperator: OP, AttributeValueList: [...]}}
 *                                            -> EQ =, NE <>, LT <, LE <=, GT >, GE >=, BETWEEN,
 *                                               IN, BEGINS_WITH begins_with, CONTAINS contains,
 *                                               NOT_CONTAINS NOT contains, NULL
 *                                               attribute_not_exists, NOT_NULL attribute_exists;
 *                                               joined by ConditionalOperator (AND)
 *   KeyConditions                            -> KeyConditionExpression (EQ, LE, LT, GE, GT,
 *                                               BEGINS_WITH, BETWEEN), joined by AND
 *   AttributeUpdates {a: {Action, Value}}    -> PUT: SET #a = :v; DELETE: REMOVE #a or DELETE #a :v;
 *                                               ADD: ADD #a :v (lists: SET #a = list_append(
 *                                               if_not_exists(#a, :empty), :v)) */

enum { DDB_LG_EXPECTED = 1, DDB_LG_UPDATES = 2, DDB_LG_ATG = 4, DDB_LG_KEYCOND = 8, DDB_LG_QFILTER = 16,
       DDB_LG_SFILTER = 32 };

typedef struct ddb_lg {
    json_t *names, *values;
    int n;
} ddb_lg_t;

static void ddb_lg_name(ddb_lg_t *g, const char *attr, char out[16]) {
    snprintf(out, 16, "#lg%d", g->n++);
    json_object_set_new(g->names, out, json_string(attr));
}

static void ddb_lg_value(ddb_lg_t *g, json_t *av, char out[16]) {
    snprintf(out, 16, ":lg%d", g->n++);
    json_object_set(g->values, out, av);
}

/* One legacy condition on attr into out. */
static int ddb_lg_cond(ddb_call_t *c, ddb_lg_t *g, const char *attr, const char *op, json_t *args,
                     int key_only, tr_buf *out) {
    /* types: the AttributeValue types the operator takes (DynamoDB refuses others with a
       ValidationException, not a false condition) */
    enum { SNB = 1 << TBL_T_S | 1 << TBL_T_N | 1 << TBL_T_B, SB = 1 << TBL_T_S | 1 << TBL_T_B,
           ANY = -1 };
    static const struct {
        const char *op;
        const char *fmt;
        int nargs;
        int key_ok;
        int types;
    } ops[] = {
        {"EQ", "%s = %s", 1, 1, ANY}, {"NE", "%s <> %s", 1, 0, ANY},
        {"LT", "%s < %s", 1, 1, SNB}, {"LE", "%s <= %s", 1, 1, SNB},
        {"GT", "%s > %s", 1, 1, SNB}, {"GE", "%s >= %s", 1, 1, SNB},
        {"BEGINS_WITH", "begins_with(%s, %s)", 1, 1, SB},
        {"CONTAINS", "contains(%s, %s)", 1, 0, SNB},
        /* NOT_CONTAINS needs the attribute: false when it is missing, as DynamoDB (NE and
           NULL are the operators a missing attribute passes) */
        {"NOT_CONTAINS", "(attribute_exists(%1$s) AND NOT contains(%1$s, %2$s))", 1, 0, SNB},
        {"NULL", "attribute_not_exists(%s)", 0, 0, ANY},
        {"NOT_NULL", "attribute_exists(%s)", 0, 0, ANY}, {"BETWEEN", NULL, 2, 1, SNB},
        {"IN", NULL, -1, 0, SNB},
    };
    size_t i;
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i].op, op)) break;
    if (i == sizeof ops / sizeof ops[0] || (key_only && !ops[i].key_ok))
        return ddb_invalid(c, "One or more parameter values were invalid: Unsupported operator on "
                            "%s: %s", key_only ? "KeyConditions" : "condition", op);
    size_t n = args ? json_array_size(args) : 0;
    if ((ops[i].nargs >= 0 && n != (size_t)ops[i].nargs) || (ops[i].nargs < 0 && n < 1))
        return ddb_invalid(c, "One or more parameter values were invalid: Invalid number of "
                            "argument(s) for the %s ComparisonOperator", op);
    for (size_t k = 0; k < n; k++)
        if (!json_is_object(json_array_get(args, k)))
            return ddb_badtype(c, "AttributeValueList", json_array_get(args, k), "Structure");
    for (size_t k = 0; k < n; k++) {   /* malformed values are left to their own validation */
        int t = tbl_av_type(json_array_get(args, k)), t0 = tbl_av_type(json_array_get(args, 0));
        if (t == TBL_T_INVALID || t0 == TBL_T_INVALID) continue;
        if (!(ops[i].types & 1 << t))
            return ddb_invalid(c, "One or more parameter values were invalid: ComparisonOperator %s "
                                "is not valid for %s AttributeValue type", op, tbl_type_name(t));
        if (t != t0)
            return ddb_invalid(c, "One or more parameter values were invalid: AttributeValues "
                                "inside AttributeValueList must be of same type");
    }
    if (n == 2 && !strcmp(op, "BETWEEN") &&
        tbl_av_cmp(json_array_get(args, 0), json_array_get(args, 1)) == 1)
        return ddb_invalid(c, "The BETWEEN condition was provided a range where the lower bound is "
                            "greater than the upper bound");
    char nm[16], v1[16], v2[16];
    ddb_lg_name(g, attr, nm);
    if (!strcmp(op, "BETWEEN")) {
        ddb_lg_value(g, json_array_get(args, 0), v1);
        ddb_lg_value(g, json_array_get(args, 1), v2);
        tr_buf_printf(out, "%s BETWEEN %s AND %s", nm, v1, v2);
    } else if (!strcmp(op, "IN")) {
        tr_buf_printf(out, "%s IN (", nm);
        for (size_t k = 0; k < n; k++) {
            ddb_lg_value(g, json_array_get(args, k), v1);
            tr_buf_printf(out, "%s%s", k ? ", " : "", v1);
        }
        tr_buf_puts(out, ")");
    } else if (n == 1) {
        ddb_lg_value(g, json_array_get(args, 0), v1);
        tr_buf_printf(out, ops[i].fmt, nm, v1);
    } else {
        tr_buf_printf(out, ops[i].fmt, nm);
    }
    return 0;
}

/* A map of legacy conditions ({attr: {ComparisonOperator, AttributeValueList}} or, for
 * Expected, {attr: {Value, Exists}}) into one expression. */
static int ddb_lg_conds(ddb_call_t *c, ddb_lg_t *g, json_t *map, const char *member, int expected,
                      int key_only, const char *joiner, tr_buf *out) {
    if (!json_is_object(map)) return ddb_badtype(c, member, map, "Map");
    const char *attr;
    json_t *cond;
    int first = 1;
    json_object_foreach(map, attr, cond) {
        if (!json_is_object(cond)) return ddb_badtype(c, member, cond, "Structure");
        if (!first) tr_buf_printf(out, " %s ", joiner);
        first = 0;
        json_t *op = json_object_get(cond, "ComparisonOperator");
        json_t *list = json_object_get(cond, "AttributeValueList");
        json_t *value = json_object_get(cond, "Value");
        json_t *exists = json_object_get(cond, "Exists");
        if (op && !json_is_string(op)) return ddb_badtype(c, "ComparisonOperator", op, "String");
        if (list && !json_is_array(list)) return ddb_badtype(c, "AttributeValueList", list, "List");
        if (exists && !json_is_boolean(exists)) return ddb_badtype(c, "Exists", exists, "Boolean");
        if (op) {
            if (value && list)
                return ddb_invalid(c, "One or more parameter values were invalid: Value and "
                                    "AttributeValueList cannot be used together for Attribute: %s", attr);
            json_t *args = list;
            json_t *tmp = NULL;
            if (value) {
                tmp = json_array();
                json_array_append(tmp, value);
                args = tmp;
            }
            int rc = ddb_lg_cond(c, g, attr, json_string_value(op), args, key_only, out);
            json_decref(tmp);
            if (rc) return rc;
            continue;
        }
        if (!expected)
            return ddb_invalid(c, "One or more parameter values were invalid: ComparisonOperator "
                                "is required for %s attribute %s", member, attr);
        char nm[16], v[16];
        if (exists && json_is_false(exists)) {
            if (value)
                return ddb_invalid(c, "One or more parameter values were invalid: Value cannot be "
                                    "used when Exists is false for Attribute: %s", attr);
            ddb_lg_name(g, attr, nm);
            tr_buf_printf(out, "attribute_not_exists(%s)", nm);
            continue;
        }
        if (!value)
            return ddb_invalid(c, "One or more parameter values were invalid: Value must be "
                                "provided when Exists is %s for Attribute: %s",
                             exists ? "true" : "null", attr);
        ddb_lg_name(g, attr, nm);
        ddb_lg_value(g, value, v);
        tr_buf_printf(out, "%s = %s", nm, v);
    }
    if (first) return ddb_invalid(c, "One or more parameter values were invalid: %s must not be empty", member);
    return 0;
}

static int ddb_lg_updates(ddb_call_t *c, ddb_lg_t *g, json_t *map, tr_buf *out) {
    if (!json_is_object(map)) return ddb_badtype(c, "AttributeUpdates", map, "Map");
    tr_buf set = TR_BUF_INIT, rem = TR_BUF_INIT, add = TR_BUF_INIT, del = TR_BUF_INIT;
    const char *attr;
    json_t *u;
    int rc = 0;
    json_object_foreach(map, attr, u) {
        if (!json_is_object(u)) {
            rc = ddb_badtype(c, "AttributeUpdates", u, "Structure");
            break;
        }
        json_t *a = json_object_get(u, "Action"), *v = json_object_get(u, "Value");
        const char *action = a && json_is_string(a) ? json_string_value(a) : "PUT";
        char nm[16], vn[16], en[16];
        if (v && !json_is_object(v)) {
            rc = ddb_badtype(c, "Value", v, "Structure");
            break;
        }
        if (!v && strcmp(action, "DELETE")) {
            rc = ddb_invalid(c, "One or more parameter values were invalid: Only DELETE action is "
                              "allowed when no attribute value is specified");
            break;
        }
        ddb_lg_name(g, attr, nm);
        if (!strcmp(action, "PUT")) {
            ddb_lg_value(g, v, vn);
            tr_buf_printf(&set, "%s%s = %s", set.len ? ", " : "", nm, vn);
        } else if (!strcmp(action, "DELETE")) {
            if (v) {
                ddb_lg_value(g, v, vn);
                tr_buf_printf(&del, "%s%s %s", del.len ? ", " : "", nm, vn);
            } else {
                tr_buf_printf(&rem, "%s%s", rem.len ? ", " : "", nm);
            }
        } else if (!strcmp(action, "ADD")) {
            ddb_lg_value(g, v, vn);
            if (json_object_get(v, "L")) {
                snprintf(en, sizeof en, ":lg%d", g->n++);
                json_object_set_new(g->values, en, json_pack("{s:[]}", "L"));
                tr_buf_printf(&set, "%s%s = list_append(if_not_exists(%s, %s), %s)",
                              set.len ? ", " : "", nm, nm, en, vn);
            } else {
                tr_buf_printf(&add, "%s%s %s", add.len ? ", " : "", nm, vn);
            }
        } else {
            ddb_verr(c, "attributeUpdates.action", action,
                   "Member must satisfy enum value set: [ADD, PUT, DELETE]");
            rc = ddb_verr_flush(c);
            break;
        }
    }
    if (!rc) {
        if (set.len) tr_buf_printf(out, "SET %s ", set.data);
        if (rem.len) tr_buf_printf(out, "REMOVE %s ", rem.data);
        if (add.len) tr_buf_printf(out, "ADD %s ", add.data);
        if (del.len) tr_buf_printf(out, "DELETE %s ", del.data);
    }
    tr_buf_free(&set);
    tr_buf_free(&rem);
    tr_buf_free(&add);
    tr_buf_free(&del);
    return rc;
}

/* Rewrite obj's legacy members (those in mask) into expressions, when obj uses no expression. */
static int ddb_legacy_rewrite(ddb_call_t *c, json_t *obj, int mask) {
    static const char *const exprs[] = {"ConditionExpression", "UpdateExpression",
                                        "ProjectionExpression", "KeyConditionExpression",
                                        "FilterExpression"};
    static const struct { int bit; const char *member; } members[] = {
        {DDB_LG_EXPECTED, "Expected"}, {DDB_LG_UPDATES, "AttributeUpdates"},
        {DDB_LG_ATG, "AttributesToGet"}, {DDB_LG_KEYCOND, "KeyConditions"},
        {DDB_LG_QFILTER, "QueryFilter"}, {DDB_LG_SFILTER, "ScanFilter"},
    };
    int any = 0;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        json_t *v = json_object_get(obj, members[i].member);
        if ((mask & members[i].bit) && v && !json_is_null(v)) any = 1;
    }
    if (!any) return 0;
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        json_t *v = json_object_get(obj, exprs[i]);
        if (v && !json_is_null(v)) return 0;   /* mixed: ddb_legacy() refuses it */
    }
    if (json_object_get(obj, "ExpressionAttributeNames"))
        return ddb_invalid(c, "ExpressionAttributeNames can only be specified when using expressions");
    if (json_object_get(obj, "ExpressionAttributeValues"))
        return ddb_invalid(c, "ExpressionAttributeValues can only be specified when using expressions");
    const char *joiner = "AND";
    json_t *co = json_object_get(obj, "ConditionalOperator");
    if (co && !json_is_null(co)) {
        if (!json_is_string(co)) return ddb_badtype(c, "ConditionalOperator", co, "String");
        joiner = json_string_value(co);
        if (strcmp(joiner, "AND") && strcmp(joiner, "OR")) {
            ddb_verr(c, "conditionalOperator", joiner, "Member must satisfy enum value set: [AND, OR]");
            return ddb_verr_flush(c);
        }
    }
    ddb_lg_t g = {json_object(), json_object(), 0};
    tr_buf e = TR_BUF_INIT;
    int rc = 0;
    json_t *v;
    if (!rc && (mask & DDB_LG_ATG) && (v = json_object_get(obj, "AttributesToGet")) && !json_is_null(v)) {
        if (!json_is_array(v) || !json_array_size(v)) {
            rc = json_is_array(v) ? ddb_invalid(c, "1 validation error detected: Value '[]' at "
                                                 "'attributesToGet' failed to satisfy constraint: "
                                                 "Member must have length greater than or equal to 1")
                                  : ddb_badtype(c, "AttributesToGet", v, "List");
        } else {
            tr_buf_reset(&e);
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *s = json_array_get(v, i);
                char nm[16];
                if (!json_is_string(s)) {
                    rc = ddb_badtype(c, "AttributesToGet", s, "String");
                    break;
                }
                ddb_lg_name(&g, json_string_value(s), nm);
                tr_buf_printf(&e, "%s%s", i ? ", " : "", nm);
            }
            if (!rc) json_object_set_new(obj, "ProjectionExpression", json_string(e.data));
        }
        json_object_del(obj, "AttributesToGet");
    }
    if (!rc && (mask & DDB_LG_EXPECTED) && (v = json_object_get(obj, "Expected")) && !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, "Expected", 1, 0, joiner, &e);
        if (!rc) json_object_set_new(obj, "ConditionExpression", json_string(e.data));
        json_object_del(obj, "Expected");
    }
    if (!rc && (mask & DDB_LG_UPDATES) && (v = json_object_get(obj, "AttributeUpdates")) && !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_updates(c, &g, v, &e);
        if (!rc && e.len) json_object_set_new(obj, "UpdateExpression", json_string(e.data));
        json_object_del(obj, "AttributeUpdates");
    }
    if (!rc && (mask & DDB_LG_KEYCOND) && (v = json_object_get(obj, "KeyConditions")) && !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, "KeyConditions", 0, 1, "AND", &e);
        if (!rc) json_object_set_new(obj, "KeyConditionExpression", json_string(e.data));
        json_object_del(obj, "KeyConditions");
    }
    const char *fm = (mask & DDB_LG_QFILTER) ? "QueryFilter" : "ScanFilter";
    if (!rc && (mask & (DDB_LG_QFILTER | DDB_LG_SFILTER)) && (v = json_object_get(obj, fm)) && !json_is_null(v)) {
        tr_buf_reset(&e);
        rc = ddb_lg_conds(c, &g, v, fm, 0, 0, joiner, &e);
        if (!rc) json_object_set_new(obj, "FilterExpression", json_string(e.data));
        json_object_del(obj, fm);
    }
    json_object_del(obj, "ConditionalOperator");
    if (!rc) {
        if (json_object_size(g.names)) json_object_set(obj, "ExpressionAttributeNames", g.names);
        if (json_object_size(g.values)) json_object_set(obj, "ExpressionAttributeValues", g.values);
    }
    json_decref(g.names);
    json_decref(g.values);
    tr_buf_free(&e);
    return rc;
}

/* ---- output helpers ------------------------------------------------------------------------ */

static void ddb_put_json(tr_buf *b, const json_t *v) { tbl_json_dump(b, v); }

static void ddb_put_str(tr_buf *b, const char *s) { tr_buf_json_str(b, s, strlen(s)); }

static void ddb_put_units(tr_buf *b, double u) { tr_buf_printf(b, "%.1f", u); }

static void ddb_put_ts(tr_buf *b, int64_t ms) {
    tr_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

static void ddb_put_arn(ddb_call_t *c, tr_buf *b, const char *table, const char *index) {
    tr_buf_printf(b, "\"arn:aws:dynamodb:%s:%s:table/%s", c->ctx->region, API_ACCOUNT_ID, table);
    if (index) tr_buf_printf(b, "/index/%s", index);
    tr_buf_puts(b, "\"");
}

/* x-amz-crc32: the CRC-32 of the final body. */
static void ddb_seal(net_req_t *req) {
    char v[16], *p = v + sizeof v;
    uint32_t crc =
        (uint32_t)crc32(0L, (const Bytef *)(req->out.data ? req->out.data : ""), (uInt)req->out.len);
    *--p = 0;
    do *--p = (char)('0' + crc % 10);   /* decimal, as "%lu" writes it */
    while (crc /= 10);
    net_req_add_header(req, "x-amz-crc32", p);
}

/* ---- capacity ------------------------------------------------------------------------------ */

static double ddb_read_units(size_t bytes, int consistent, int txn) {
    double u = (double)((bytes + 4095) / 4096);
    if (u < 1) u = 1;
    if (txn) return u * 2;
    return consistent ? u : u / 2;
}

static double ddb_write_units(size_t old_size, size_t new_size, int txn) {
    size_t s = old_size > new_size ? old_size : new_size;
    double u = (double)((s + 1023) / 1024);
    if (u < 1) u = 1;
    return txn ? u * 2 : u;
}

/* One ConsumedCapacity object.  idx (may be NULL) names the index read (and whether it is
 * local) or, for writes, a list of n_idx index units. */
typedef struct ddb_idx_units {
    const char *name;
    int local;
    double units;
} ddb_idx_units_t;

static void ddb_put_capacity(tr_buf *b, int mode, const char *table, double table_units,
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
static double ddb_index_write_units(const tbl_index_info_t *ix, const json_t *item) {
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

/* ---- control plane: shared parsing --------------------------------------------------------- */

typedef struct ddb_ks {
    const char *name[2];
    const char *type[2];           /* "HASH" / "RANGE" as given (NULL if invalid) */
    size_t n;
} ddb_ks_t;

/* Java-style rendering of a KeySchema list, as DynamoDB quotes it in constraint messages. */
static void ddb_ks_text(json_t *arr, char *out, size_t cap) {
    tr_buf b = TR_BUF_INIT;
    tr_buf_puts(&b, "[");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *el = json_array_get(arr, i);
        const char *n = json_string_value(json_object_get(el, "AttributeName"));
        const char *t = json_string_value(json_object_get(el, "KeyType"));
        tr_buf_printf(&b, "%sKeySchemaElement(attributeName=%s, keyType=%s)", i ? ", " : "",
                      n ? n : "null", t ? t : "null");
    }
    tr_buf_puts(&b, "]");
    snprintf(out, cap, "%s", b.data);
    tr_buf_free(&b);
}

static int ddb_parse_ks(ddb_call_t *c, json_t *obj, const char *path, int req, ddb_ks_t *ks) {
    static const char *const kt[] = {"HASH", "RANGE"};
    json_t *arr;
    memset(ks, 0, sizeof *ks);
    if (ddb_arr(c, obj, "KeySchema", &arr)) return -1;
    if (!arr) {
        if (req) ddb_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    size_t n = json_array_size(arr);
    if (n < 1 || n > 2) {
        char text[1024];
        ddb_ks_text(arr, text, sizeof text);
        ddb_verr(c, path, text, "Member must have length %s to %d", n < 1 ? "greater than or equal" : "less than or equal", n < 1 ? 1 : 2);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(arr, i);
        char p[160];
        if (!json_is_object(el)) return ddb_badtype(c, "KeySchema", el, "Structure");
        const char *name;
        int t;
        snprintf(p, sizeof p, "%s.%zu.member.attributeName", path, i + 1);
        if (ddb_str(c, el, "AttributeName", p, DDB_REQ, 1, 255, DDB_PAT_NONE, &name)) return -1;
        snprintf(p, sizeof p, "%s.%zu.member.keyType", path, i + 1);
        if (ddb_enum(c, el, "KeyType", p, DDB_REQ, kt, 2, "[HASH, RANGE]", &t)) return -1;
        if (i < 2) {
            ks->name[i] = name;
            ks->type[i] = t < 0 ? NULL : kt[t];
        }
    }
    ks->n = n > 2 ? 2 : n;
    return 0;
}

typedef struct ddb_pt {
    int present;
    long long rcu, wcu;
} ddb_pt_t;

static int ddb_parse_pt(ddb_call_t *c, json_t *obj, const char *path, ddb_pt_t *pt) {
    json_t *v;
    char p[160];
    int has;
    memset(pt, 0, sizeof *pt);
    if (ddb_obj(c, obj, "ProvisionedThroughput", &v)) return -1;
    if (!v) return 0;
    pt->present = 1;
    snprintf(p, sizeof p, "%s.readCapacityUnits", path);
    if (ddb_int(c, v, "ReadCapacityUnits", p, DDB_REQ, 1, 1000000000000LL, &pt->rcu, &has)) return -1;
    snprintf(p, sizeof p, "%s.writeCapacityUnits", path);
    if (ddb_int(c, v, "WriteCapacityUnits", p, DDB_REQ, 1, 1000000000000LL, &pt->wcu, &has)) return -1;
    return 0;
}

typedef struct ddb_attrs {
    tbl_attrdef_t *a;
    size_t n;
} ddb_attrs_t;

static int ddb_type_code(const char *t) {
    return !strcmp(t, "S") ? TBL_T_S : !strcmp(t, "N") ? TBL_T_N : TBL_T_B;
}

static int ddb_parse_attrs(ddb_call_t *c, json_t *obj, int req, ddb_attrs_t *out) {
    static const char *const types[] = {"B", "N", "S"};
    json_t *arr;
    memset(out, 0, sizeof *out);
    if (ddb_arr(c, obj, "AttributeDefinitions", &arr)) return -1;
    if (!arr) {
        if (req) ddb_verr(c, "attributeDefinitions", NULL, "Member must not be null");
        return 0;
    }
    size_t n = json_array_size(arr);
    out->a = calloc(n ? n : 1, sizeof *out->a);
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(arr, i);
        char p[128];
        const char *name;
        int t;
        if (!json_is_object(el)) return ddb_badtype(c, "AttributeDefinitions", el, "Structure");
        snprintf(p, sizeof p, "attributeDefinitions.%zu.member.attributeName", i + 1);
        if (ddb_str(c, el, "AttributeName", p, DDB_REQ, 1, 255, DDB_PAT_NONE, &name)) return -1;
        snprintf(p, sizeof p, "attributeDefinitions.%zu.member.attributeType", i + 1);
        if (ddb_enum(c, el, "AttributeType", p, DDB_REQ, types, 3, "[B, N, S]", &t)) return -1;
        if (name && t >= 0) {
            out->a[out->n].name = (char *)name;
            out->a[out->n].type = ddb_type_code(types[t]);
            out->n++;
        }
    }
    return 0;
}

static const tbl_attrdef_t *ddb_attr_find(const ddb_attrs_t *a, const char *name) {
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->a[i].name, name)) return &a->a[i];
    return NULL;
}

/* "[a, b]" list of names. */
static void ddb_names_text(const char *const *names, size_t n, size_t stride, char *out, size_t cap) {
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *s = *(const char *const *)((const char *)names + i * stride);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", s);
    }
    if (o < cap) snprintf(out + o, cap - o, "]");
}

typedef struct ddb_index_in {
    const char *name;
    ddb_ks_t ks;
    int projection;             /* TBL_PROJ_*, -1 when missing */
    const char *proj_text;
    const char **include;
    size_t n_include;
    int has_include;
    ddb_pt_t pt;
} ddb_index_in_t;

static int ddb_parse_index(ddb_call_t *c, json_t *el, const char *path, int gsi, ddb_index_in_t *ix) {
    static const char *const pts[] = {"ALL", "KEYS_ONLY", "INCLUDE"};
    char p[200];
    memset(ix, 0, sizeof *ix);
    ix->projection = -1;
    if (!json_is_object(el)) return ddb_badtype(c, gsi ? "GlobalSecondaryIndexes" : "LocalSecondaryIndexes", el, "Structure");
    snprintf(p, sizeof p, "%s.indexName", path);
    if (ddb_str(c, el, "IndexName", p, DDB_REQ, 3, 255, DDB_PAT_NAME, &ix->name)) return -1;
    snprintf(p, sizeof p, "%s.keySchema", path);
    if (ddb_parse_ks(c, el, p, DDB_REQ, &ix->ks)) return -1;
    json_t *proj;
    if (ddb_obj(c, el, "Projection", &proj)) return -1;
    snprintf(p, sizeof p, "%s.projection", path);
    if (!proj) {
        ddb_verr(c, p, NULL, "Member must not be null");
    } else {
        int t;
        snprintf(p, sizeof p, "%s.projection.projectionType", path);
        if (ddb_enum(c, proj, "ProjectionType", p, DDB_OPT, pts, 3, "[ALL, KEYS_ONLY, INCLUDE]", &t))
            return -1;
        ix->projection = t;
        ix->proj_text = t >= 0 ? pts[t] : NULL;
        json_t *nk;
        if (ddb_arr(c, proj, "NonKeyAttributes", &nk)) return -1;
        if (nk) {
            ix->has_include = 1;
            size_t n = json_array_size(nk);
            snprintf(p, sizeof p, "%s.projection.nonKeyAttributes", path);
            if (n < 1 || n > 20)
                ddb_verr(c, p, "[...]", "Member must have length %s", n < 1 ? "greater than or equal to 1" : "less than or equal to 20");
            ix->include = calloc(n ? n : 1, sizeof *ix->include);
            for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(nk, i);
                if (!json_is_string(s)) return ddb_badtype(c, "NonKeyAttributes", s, "String");
                ix->include[ix->n_include++] = json_string_value(s);
            }
        }
    }
    if (gsi) {
        snprintf(p, sizeof p, "%s.provisionedThroughput", path);
        if (ddb_parse_pt(c, el, p, &ix->pt)) return -1;
    }
    return 0;
}

/* Semantic checks of a key schema against the attribute definitions, as DynamoDB words them. */
static int ddb_check_ks(ddb_call_t *c, const ddb_ks_t *ks, const ddb_attrs_t *attrs) {
    char keys[600], defs[2000];
    ddb_names_text(ks->name, ks->n, sizeof(char *), keys, sizeof keys);
    ddb_names_text((const char *const *)&attrs->a[0].name, attrs->n, sizeof(tbl_attrdef_t), defs,
                 sizeof defs);
    for (size_t i = 0; i < ks->n; i++)
        if (!ddb_attr_find(attrs, ks->name[i])) {
            if (ks->n == 2) return ddb_invalid(c, "Invalid KeySchema: Some index key attribute have no definition");
            return ddb_invalid(c, "One or more parameter values were invalid: Some index key "
                                "attributes are not defined in AttributeDefinitions. Keys: %s, "
                                "AttributeDefinitions: %s", keys, defs);
        }
    if (ks->n == 2 && !strcmp(ks->name[0], ks->name[1]))
        return ddb_invalid(c, "Both the Hash Key and the Range Key element in the KeySchema have the same name");
    if (strcmp(ks->type[0], "HASH"))
        return ddb_invalid(c, "Invalid KeySchema: The first KeySchemaElement is not a HASH key type");
    if (ks->n == 2 && strcmp(ks->type[1], "RANGE"))
        return ddb_invalid(c, "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type");
    return 0;
}

static int ddb_check_projection(ddb_call_t *c, const ddb_index_in_t *ix) {
    if (ix->projection < 0)
        return ddb_invalid(c, "One or more parameter values were invalid: Unknown ProjectionType: null");
    if (ix->has_include && ix->projection != TBL_PROJ_INCLUDE)
        return ddb_invalid(c, "One or more parameter values were invalid: ProjectionType is %s, but "
                            "NonKeyAttributes is specified", ix->proj_text);
    if (!ix->has_include && ix->projection == TBL_PROJ_INCLUDE)
        return ddb_invalid(c, "One or more parameter values were invalid: ProjectionType is "
                            "INCLUDE, but NonKeyAttributes is not specified");
    return 0;
}

static void ddb_index_to_info(const ddb_index_in_t *in, int local, tbl_index_info_t *out) {
    memset(out, 0, sizeof *out);
    out->name = (char *)in->name;
    out->local = local;
    out->hash = (char *)in->ks.name[0];
    out->range = in->ks.n > 1 ? (char *)in->ks.name[1] : NULL;
    out->projection = in->projection;
    out->include = (char **)in->include;
    out->n_include = in->n_include;
    out->rcu = (uint64_t)in->pt.rcu;
    out->wcu = (uint64_t)in->pt.wcu;
}

/* ---- control plane: describe output -------------------------------------------------------- */

static void ddb_put_ks(tr_buf *b, const char *hash, const char *range) {
    tr_buf_puts(b, "[{\"AttributeName\":");
    ddb_put_str(b, hash);
    tr_buf_puts(b, ",\"KeyType\":\"HASH\"}");
    if (range && range[0]) {
        tr_buf_puts(b, ",{\"AttributeName\":");
        ddb_put_str(b, range);
        tr_buf_puts(b, ",\"KeyType\":\"RANGE\"}");
    }
    tr_buf_puts(b, "]");
}

static void ddb_put_projection(tr_buf *b, const tbl_index_info_t *ix) {
    static const char *const pts[] = {"ALL", "KEYS_ONLY", "INCLUDE"};
    tr_buf_printf(b, "{\"ProjectionType\":\"%s\"", pts[ix->projection >= 0 && ix->projection < 3 ? ix->projection : 0]);
    if (ix->projection == TBL_PROJ_INCLUDE) {
        tr_buf_puts(b, ",\"NonKeyAttributes\":[");
        for (size_t i = 0; i < ix->n_include; i++) {
            if (i) tr_buf_puts(b, ",");
            ddb_put_str(b, ix->include[i]);
        }
        tr_buf_puts(b, "]");
    }
    tr_buf_puts(b, "}");
}

static void ddb_put_pt(tr_buf *b, int billing, uint64_t rcu, uint64_t wcu) {
    if (billing == TBL_BILLING_PAY_PER_REQUEST) rcu = wcu = 0;
    tr_buf_printf(b, "{\"NumberOfDecreasesToday\":0,\"ReadCapacityUnits\":%llu,"
                     "\"WriteCapacityUnits\":%llu}",
                  (unsigned long long)rcu, (unsigned long long)wcu);
}

static void ddb_put_table(ddb_call_t *c, tr_buf *b, const tbl_table_info_t *t, int status_override) {
    static const char *const types[] = {"S", "N", "B"};
    tr_buf_puts(b, "{\"AttributeDefinitions\":[");
    for (size_t i = 0; i < t->n_attrs; i++) {
        int ty = t->attrs[i].type;
        tr_buf_printf(b, "%s{\"AttributeName\":", i ? "," : "");
        ddb_put_str(b, t->attrs[i].name);
        tr_buf_printf(b, ",\"AttributeType\":\"%s\"}", ty >= 0 && ty <= 2 ? types[ty] : "S");
    }
    tr_buf_puts(b, "],\"TableName\":");
    ddb_put_str(b, t->name);
    tr_buf_puts(b, ",\"KeySchema\":");
    ddb_put_ks(b, t->hash, t->range);
    int status = status_override >= 0 ? status_override : t->status;
    tr_buf_printf(b, ",\"TableStatus\":\"%s\",\"CreationDateTime\":", tbl_status_name(status));
    ddb_put_ts(b, t->created_ms);
    tr_buf_puts(b, ",\"ProvisionedThroughput\":");
    ddb_put_pt(b, t->billing, t->rcu, t->wcu);
    tr_buf_printf(b, ",\"TableSizeBytes\":%llu,\"ItemCount\":%llu,\"TableArn\":",
                  (unsigned long long)t->size_bytes, (unsigned long long)t->item_count);
    ddb_put_arn(c, b, t->name, NULL);
    tr_buf_printf(b, ",\"TableId\":\"%s\"", t->table_id);
    if (t->billing == TBL_BILLING_PAY_PER_REQUEST) {
        tr_buf_puts(b, ",\"BillingModeSummary\":{\"BillingMode\":\"PAY_PER_REQUEST\","
                       "\"LastUpdateToPayPerRequestDateTime\":");
        ddb_put_ts(b, t->created_ms);
        tr_buf_puts(b, "}");
    }
    for (int local = 1; local >= 0; local--) {
        int any = 0;
        for (size_t i = 0; i < t->n_indexes; i++) {
            const tbl_index_info_t *ix = &t->indexes[i];
            if (ix->local != local) continue;
            tr_buf_puts(b, any++ ? "," : local ? ",\"LocalSecondaryIndexes\":[" : ",\"GlobalSecondaryIndexes\":[");
            tr_buf_puts(b, "{\"IndexName\":");
            ddb_put_str(b, ix->name);
            tr_buf_puts(b, ",\"KeySchema\":");
            ddb_put_ks(b, ix->hash, ix->range);
            tr_buf_puts(b, ",\"Projection\":");
            ddb_put_projection(b, ix);
            if (!local) {
                tr_buf_printf(b, ",\"IndexStatus\":\"%s\"", tbl_status_name(ix->status));
                /* only an index added by UpdateTable is ever CREATING, while it backfills */
                if (ix->status == TBL_STATUS_CREATING) tr_buf_puts(b, ",\"Backfilling\":true");
                tr_buf_puts(b, ",\"ProvisionedThroughput\":");
                ddb_put_pt(b, t->billing, ix->rcu, ix->wcu);
            }
            tr_buf_printf(b, ",\"IndexSizeBytes\":%llu,\"ItemCount\":%llu,\"IndexArn\":",
                          (unsigned long long)ix->size_bytes, (unsigned long long)ix->item_count);
            ddb_put_arn(c, b, t->name, ix->name);
            tr_buf_puts(b, "}");
        }
        if (any) tr_buf_puts(b, "]");
    }
    tr_buf_printf(b, ",\"DeletionProtectionEnabled\":%s}", t->deletion_protection ? "true" : "false");
}

/* ---- control plane: operations ------------------------------------------------------------- */

static int ddb_parse_tags(ddb_call_t *c, json_t *obj, int req, tbl_tag_t **tags, size_t *n) {
    json_t *arr;
    *tags = NULL;
    *n = 0;
    if (ddb_arr(c, obj, "Tags", &arr)) return -1;
    if (!arr) {
        if (req) ddb_verr(c, "tags", NULL, "Member must not be null");
        return 0;
    }
    size_t cnt = json_array_size(arr);
    *tags = calloc(cnt ? cnt : 1, sizeof **tags);
    for (size_t i = 0; i < cnt; i++) {
        json_t *el = json_array_get(arr, i);
        char p[64];
        const char *k, *v;
        if (!json_is_object(el)) return ddb_badtype(c, "Tags", el, "Structure");
        snprintf(p, sizeof p, "tags.%zu.member.key", i + 1);
        if (ddb_str(c, el, "Key", p, DDB_REQ, 1, 128, DDB_PAT_NONE, &k)) return -1;
        snprintf(p, sizeof p, "tags.%zu.member.value", i + 1);
        if (ddb_str(c, el, "Value", p, DDB_REQ, 0, 256, DDB_PAT_NONE, &v)) return -1;
        if (k && v) {
            (*tags)[*n].key = (char *)k;
            (*tags)[*n].value = (char *)v;
            (*n)++;
        }
    }
    return 0;
}

static int ddb_create_table(ddb_call_t *c) {
    static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST"};
    char name[DDB_NAME_MAX];
    ddb_attrs_t attrs;
    ddb_ks_t ks;
    ddb_pt_t pt;
    int bm = -1;
    json_t *gsis = NULL, *lsis = NULL;
    ddb_index_in_t *gin = NULL, *lin = NULL;
    size_t n_g = 0, n_l = 0;
    tbl_tag_t *tags = NULL;
    size_t n_tags = 0;
    tbl_index_info_t *ixs = NULL;
    int rc = -1;
    memset(&attrs, 0, sizeof attrs);

    if (ddb_parse_attrs(c, c->in, DDB_REQ, &attrs)) goto leave;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) goto leave;
    if (ddb_parse_ks(c, c->in, "keySchema", DDB_REQ, &ks)) goto leave;
    if (ddb_parse_pt(c, c->in, "provisionedThroughput", &pt)) goto leave;
    if (ddb_enum(c, c->in, "BillingMode", "billingMode", DDB_OPT, bms, 2, "[PROVISIONED, PAY_PER_REQUEST]", &bm))
        goto leave;
    if (ddb_arr(c, c->in, "GlobalSecondaryIndexes", &gsis)) goto leave;
    if (ddb_arr(c, c->in, "LocalSecondaryIndexes", &lsis)) goto leave;
    n_g = gsis ? json_array_size(gsis) : 0;
    n_l = lsis ? json_array_size(lsis) : 0;
    gin = calloc(n_g + 1, sizeof *gin);
    lin = calloc(n_l + 1, sizeof *lin);
    for (size_t i = 0; i < n_g; i++) {
        char p[64];
        snprintf(p, sizeof p, "globalSecondaryIndexes.%zu.member", i + 1);
        if (ddb_parse_index(c, json_array_get(gsis, i), p, 1, &gin[i])) goto leave;
    }
    for (size_t i = 0; i < n_l; i++) {
        char p[64];
        snprintf(p, sizeof p, "localSecondaryIndexes.%zu.member", i + 1);
        if (ddb_parse_index(c, json_array_get(lsis, i), p, 0, &lin[i])) goto leave;
    }
    if (ddb_parse_tags(c, c->in, DDB_OPT, &tags, &n_tags)) goto leave;
    if (ddb_verr_flush(c)) goto leave;

    /* semantics, in DynamoDB's order */
    if (ddb_check_ks(c, &ks, &attrs)) goto leave;
    if (!gsis && !lsis && ks.n != attrs.n) {
        ddb_invalid(c, "One or more parameter values were invalid: Number of attributes in KeySchema "
                     "does not exactly match number of attributes defined in AttributeDefinitions");
        goto leave;
    }
    for (size_t i = 0; i < attrs.n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(attrs.a[i].name, attrs.a[j].name)) {
                ddb_invalid(c, "Cannot have two attributes with the same name");
                goto leave;
            }
    if (lsis) {
        if (!n_l) {
            ddb_invalid(c, "One or more parameter values were invalid: List of LocalSecondaryIndexes is empty");
            goto leave;
        }
        if (ks.n != 2) {
            ddb_invalid(c, "One or more parameter values were invalid: Table KeySchema does not have a "
                         "range key, which is required when specifying a LocalSecondaryIndex");
            goto leave;
        }
        for (size_t i = 0; i < n_l; i++) {
            ddb_index_in_t *ix = &lin[i];
            if (ddb_check_ks(c, &ix->ks, &attrs)) goto leave;
            if (ix->ks.n != 2) {
                ddb_invalid(c, "One or more parameter values were invalid: Index KeySchema does not "
                             "have a range key for index: %s", ix->name);
                goto leave;
            }
            if (strcmp(ix->ks.name[0], ks.name[0])) {
                ddb_invalid(c, "One or more parameter values were invalid: Index KeySchema does not "
                             "have the same leading hash key as table KeySchema for index: %s. "
                             "index hash key: %s, table hash key: %s",
                          ix->name, ix->ks.name[0], ks.name[0]);
                goto leave;
            }
            if (ddb_check_projection(c, ix)) goto leave;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(lin[j].name, ix->name)) {
                    ddb_invalid(c, "One or more parameter values were invalid: Duplicate index name: %s", ix->name);
                    goto leave;
                }
        }
        if (n_l > TBL_MAX_LSI) {
            ddb_invalid(c, "One or more parameter values were invalid: Number of LocalSecondaryIndexes "
                         "exceeds per-table limit of %d", TBL_MAX_LSI);
            goto leave;
        }
    }
    if (gsis) {
        if (!n_g) {
            ddb_invalid(c, "One or more parameter values were invalid: List of GlobalSecondaryIndexes is empty");
            goto leave;
        }
        for (size_t i = 0; i < n_g; i++) {
            ddb_index_in_t *ix = &gin[i];
            if (ddb_check_ks(c, &ix->ks, &attrs)) goto leave;
            if (ddb_check_projection(c, ix)) goto leave;
            for (size_t j = 0; j < n_l; j++)
                if (!strcmp(lin[j].name, ix->name)) {
                    ddb_invalid(c, "One or more parameter values were invalid: Duplicate index name: %s", ix->name);
                    goto leave;
                }
            for (size_t j = 0; j < i; j++)
                if (!strcmp(gin[j].name, ix->name)) {
                    ddb_invalid(c, "One or more parameter values were invalid: Duplicate index name: %s", ix->name);
                    goto leave;
                }
        }
        if (n_g > TBL_MAX_GSI) {
            ddb_invalid(c, "One or more parameter values were invalid: GlobalSecondaryIndex count "
                         "exceeds the per-table limit of %d", TBL_MAX_GSI);
            goto leave;
        }
    }
    if (gsis || lsis) {
        /* every definition must be used by some key schema */
        for (size_t i = 0; i < attrs.n; i++) {
            const char *a = attrs.a[i].name;
            int used = !strcmp(a, ks.name[0]) || (ks.n > 1 && !strcmp(a, ks.name[1]));
            for (size_t j = 0; !used && j < n_g; j++)
                for (size_t k = 0; k < gin[j].ks.n; k++) used |= !strcmp(a, gin[j].ks.name[k]);
            for (size_t j = 0; !used && j < n_l; j++)
                for (size_t k = 0; k < lin[j].ks.n; k++) used |= !strcmp(a, lin[j].ks.name[k]);
            if (!used) {
                char defs[2000];
                ddb_names_text((const char *const *)&attrs.a[0].name, attrs.n, sizeof(tbl_attrdef_t),
                             defs, sizeof defs);
                ddb_invalid(c, "One or more parameter values were invalid: Some AttributeDefinitions "
                             "are not used. AttributeDefinitions: %s, keys used: [%s]", defs, a);
                goto leave;
            }
        }
    }
    int billing = bm == 1 ? TBL_BILLING_PAY_PER_REQUEST : TBL_BILLING_PROVISIONED;
    if (billing == TBL_BILLING_PAY_PER_REQUEST) {
        int any = pt.present;
        for (size_t i = 0; i < n_g; i++) any |= gin[i].pt.present;
        if (any) {
            ddb_invalid(c, "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                         "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
            goto leave;
        }
    } else {
        if (!pt.present) {
            if (bm == 0)
                ddb_invalid(c, "One or more parameter values were invalid: ReadCapacityUnits and "
                             "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED");
            else
                ddb_invalid(c, "No provisioned throughput specified for the table");
            goto leave;
        }
        for (size_t i = 0; i < n_g; i++)
            if (!gin[i].pt.present) {
                ddb_invalid(c, "One or more parameter values were invalid: ProvisionedThroughput "
                             "must be specified for index: %s", gin[i].name);
                goto leave;
            }
    }
    int dp = 0;
    if (ddb_bool(c, c->in, "DeletionProtectionEnabled", &dp, NULL)) goto leave;

    tbl_table_info_t def;
    memset(&def, 0, sizeof def);
    def.name = name;
    def.hash = (char *)ks.name[0];
    def.range = ks.n > 1 ? (char *)ks.name[1] : NULL;
    def.attrs = attrs.a;
    def.n_attrs = attrs.n;
    def.billing = billing;
    def.rcu = (uint64_t)pt.rcu;
    def.wcu = (uint64_t)pt.wcu;
    ixs = calloc(n_g + n_l + 1, sizeof *ixs);
    for (size_t i = 0; i < n_l; i++) ddb_index_to_info(&lin[i], 1, &ixs[i]);
    for (size_t i = 0; i < n_g; i++) ddb_index_to_info(&gin[i], 0, &ixs[n_l + i]);
    def.indexes = ixs;
    def.n_indexes = n_g + n_l;
    def.tags = tags;
    def.n_tags = n_tags;
    def.deletion_protection = dp;

    tbl_table_info_t out;
    memset(&out, 0, sizeof out);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_create(c->ctx->tbl, &def, &out, &err);
    if (e) {
        if (e == TR_EEXISTS)
            ddb_fail(c, 400, "ResourceInUseException", "Table already exists: %s", name);
        else
            ddb_error(c, e, &err);
        goto leave;
    }
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &out, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&out);
    rc = 0;
leave:
    free(attrs.a);
    for (size_t i = 0; gin && i < n_g; i++) free(gin[i].include);
    for (size_t i = 0; lin && i < n_l; i++) free(lin[i].include);
    free(gin);
    free(lin);
    free(tags);
    free(ixs);
    return rc;
}

static int ddb_describe_table(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return -1;
    if (ddb_verr_flush(c)) return -1;
    tbl_table_info_t info;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &info, &err);
    if (e) return ddb_error_req(c->req, e, &err, name);
    tr_buf_puts(c->out, "{\"Table\":");
    ddb_put_table(c, c->out, &info, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&info);
    return 0;
}

static int ddb_delete_table(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return -1;
    if (ddb_verr_flush(c)) return -1;
    tbl_table_info_t info;
    memset(&info, 0, sizeof info);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_delete(c->ctx->tbl, name, &info, &err);
    if (e) return ddb_error_req(c->req, e, &err, name);
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &info, TBL_STATUS_DELETING);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&info);
    return 0;
}

static int ddb_list_tables(ddb_call_t *c) {
    const char *start;
    long long limit = 100;
    int has_limit;
    if (ddb_str(c, c->in, "ExclusiveStartTableName", "exclusiveStartTableName", DDB_OPT, 3, 255,
              DDB_PAT_NAME, &start))
        return -1;
    if (ddb_int(c, c->in, "Limit", "limit", DDB_OPT, 1, 100, &limit, &has_limit)) return -1;
    if (ddb_verr_flush(c)) return -1;
    char **names = NULL;
    size_t n = 0;
    int more = 0;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_list(c->ctx->tbl, start, (size_t)limit, &names, &n, &more, &err);
    if (e) return ddb_error(c, e, &err);
    tr_buf_puts(c->out, "{\"TableNames\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(c->out, ",");
        ddb_put_str(c->out, names[i]);
    }
    tr_buf_puts(c->out, "]");
    if (more && n) {
        tr_buf_puts(c->out, ",\"LastEvaluatedTableName\":");
        ddb_put_str(c->out, names[n - 1]);
    }
    tr_buf_puts(c->out, "}");
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}

static int ddb_update_table(ddb_call_t *c) {
    static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST"};
    char name[DDB_NAME_MAX];
    ddb_attrs_t attrs;
    ddb_pt_t pt;
    int bm = -1, rc = -1;
    json_t *upd = NULL;
    ddb_index_in_t cin;
    int have_create = 0;
    const char *del = NULL;
    memset(&attrs, 0, sizeof attrs);
    memset(&cin, 0, sizeof cin);

    if (ddb_parse_attrs(c, c->in, DDB_OPT, &attrs)) goto leave;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) goto leave;
    if (ddb_parse_pt(c, c->in, "provisionedThroughput", &pt)) goto leave;
    if (ddb_enum(c, c->in, "BillingMode", "billingMode", DDB_OPT, bms, 2, "[PROVISIONED, PAY_PER_REQUEST]", &bm))
        goto leave;
    if (ddb_arr(c, c->in, "GlobalSecondaryIndexUpdates", &upd)) goto leave;
    size_t n_upd = upd ? json_array_size(upd) : 0;
    for (size_t i = 0; i < n_upd; i++) {
        json_t *el = json_array_get(upd, i), *cr, *dl, *up;
        char p[96];
        if (!json_is_object(el)) {
            ddb_badtype(c, "GlobalSecondaryIndexUpdates", el, "Structure");
            goto leave;
        }
        if (ddb_obj(c, el, "Create", &cr) || ddb_obj(c, el, "Delete", &dl) || ddb_obj(c, el, "Update", &up))
            goto leave;
        if (cr && !have_create) {
            snprintf(p, sizeof p, "globalSecondaryIndexUpdates.%zu.member.create", i + 1);
            if (ddb_parse_index(c, cr, p, 1, &cin)) goto leave;
            have_create = 1;
        } else if (dl) {
            snprintf(p, sizeof p, "globalSecondaryIndexUpdates.%zu.member.delete.indexName", i + 1);
            if (ddb_str(c, dl, "IndexName", p, DDB_REQ, 3, 255, DDB_PAT_NAME, &del)) goto leave;
        }
    }
    int dp = 0, has_dp = 0;
    if (ddb_bool(c, c->in, "DeletionProtectionEnabled", &dp, &has_dp)) goto leave;
    if (ddb_verr_flush(c)) goto leave;
    if (n_upd > 1 || (have_create && del)) {
        ddb_invalid(c, "One or more parameter values were invalid: Only one global secondary index "
                     "update per UpdateTable call is supported; make one call per index");
        goto leave;
    }
    if (bm < 0 && !pt.present && !n_upd && !has_dp) {
        ddb_invalid(c, "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
                     "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required");
        goto leave;
    }
    if (bm == 1 && pt.present) {
        ddb_invalid(c, "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                     "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
        goto leave;
    }
    tbl_table_update_t u;
    memset(&u, 0, sizeof u);
    tbl_table_info_t cur;
    memset(&cur, 0, sizeof cur);
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &cur, &err);
    if (e) {
        ddb_error_req(c->req, e, &err, name);
        goto leave;
    }
    if (bm >= 0 || pt.present) {
        u.set_billing = 1;
        u.billing = bm >= 0 ? (bm == 1 ? TBL_BILLING_PAY_PER_REQUEST : TBL_BILLING_PROVISIONED)
                            : cur.billing;
        if (u.billing == TBL_BILLING_PROVISIONED && !pt.present) {
            if (cur.billing == TBL_BILLING_PROVISIONED) {
                pt.rcu = (long long)cur.rcu;
                pt.wcu = (long long)cur.wcu;
            } else {
                tbl_table_info_free(&cur);
                ddb_invalid(c, "One or more parameter values were invalid: ProvisionedThroughput "
                             "must be specified when BillingMode is PROVISIONED");
                goto leave;
            }
        }
        u.rcu = (uint64_t)pt.rcu;
        u.wcu = (uint64_t)pt.wcu;
    }
    tbl_index_info_t cix;
    if (have_create) {
        if (ddb_check_ks(c, &cin.ks, &attrs) || ddb_check_projection(c, &cin)) {
            tbl_table_info_free(&cur);
            goto leave;
        }
        for (size_t i = 0; i < cur.n_indexes; i++)
            if (!strcmp(cur.indexes[i].name, cin.name)) {
                tbl_table_info_free(&cur);
                ddb_invalid(c, "One or more parameter values were invalid: Duplicate index name: %s "
                             "(the table already has an index of that name)", cin.name);
                goto leave;
            }
        int billing = u.set_billing ? u.billing : cur.billing;
        if (billing == TBL_BILLING_PROVISIONED && !cin.pt.present) {
            tbl_table_info_free(&cur);
            ddb_invalid(c, "One or more parameter values were invalid: ProvisionedThroughput must be "
                         "specified for index: %s", cin.name);
            goto leave;
        }
        if (billing == TBL_BILLING_PAY_PER_REQUEST && cin.pt.present) {
            tbl_table_info_free(&cur);
            ddb_invalid(c, "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                         "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
            goto leave;
        }
        ddb_index_to_info(&cin, 0, &cix);
        u.create_gsi = &cix;
        u.attrs = attrs.a;
        u.n_attrs = attrs.n;
    }
    if (del) {
        int found = 0;
        for (size_t i = 0; i < cur.n_indexes; i++)
            found |= !cur.indexes[i].local && !strcmp(cur.indexes[i].name, del);
        if (!found) {
            tbl_table_info_free(&cur);
            ddb_fail(c, 400, "ResourceNotFoundException",
                   "Requested resource not found: Index: %s not found on table %s", del, name);
            goto leave;
        }
        u.delete_gsi = del;
    }
    tbl_table_info_free(&cur);
    if (has_dp) {
        u.set_deletion_protection = 1;
        u.deletion_protection = dp;
    }
    tbl_table_info_t out;
    memset(&out, 0, sizeof out);
    tr_err_clear(&err);
    e = tbl_table_update(c->ctx->tbl, name, &u, &out, &err);
    if (e) {
        ddb_error_req(c->req, e, &err, name);
        goto leave;
    }
    tr_buf_puts(c->out, "{\"TableDescription\":");
    ddb_put_table(c, c->out, &out, -1);
    tr_buf_puts(c->out, "}");
    tbl_table_info_free(&out);
    rc = 0;
leave:
    free(attrs.a);
    free(cin.include);
    return rc;
}

static int ddb_update_ttl(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    json_t *spec;
    const char *attr = NULL;
    int enabled = 0, has_enabled = 0;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return -1;
    if (ddb_obj(c, c->in, "TimeToLiveSpecification", &spec)) return -1;
    if (!spec) {
        ddb_verr(c, "timeToLiveSpecification", NULL, "Member must not be null");
    } else {
        if (ddb_str(c, spec, "AttributeName", "timeToLiveSpecification.attributeName", DDB_REQ, 1, 255,
                  DDB_PAT_NONE, &attr))
            return -1;
        if (ddb_bool(c, spec, "Enabled", &enabled, &has_enabled)) return -1;
        if (!has_enabled) ddb_verr(c, "timeToLiveSpecification.enabled", NULL, "Member must not be null");
    }
    if (ddb_verr_flush(c)) return -1;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_ttl_update(c->ctx->tbl, name, attr, enabled, &err);
    if (e) return ddb_error_req(c->req, e, &err, name);
    tr_buf_printf(c->out, "{\"TimeToLiveSpecification\":{\"Enabled\":%s,\"AttributeName\":",
                  enabled ? "true" : "false");
    ddb_put_str(c->out, attr);
    tr_buf_puts(c->out, "}}");
    return 0;
}

static int ddb_describe_ttl(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, name)) return -1;
    if (ddb_verr_flush(c)) return -1;
    tbl_table_info_t info;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &info, &err);
    if (e) return ddb_error_req(c->req, e, &err, name);
    if (info.ttl_enabled && info.ttl_attr) {
        tr_buf_puts(c->out, "{\"TimeToLiveDescription\":{\"TimeToLiveStatus\":\"ENABLED\","
                            "\"AttributeName\":");
        ddb_put_str(c->out, info.ttl_attr);
        tr_buf_puts(c->out, "}}");
    } else {
        tr_buf_puts(c->out, "{\"TimeToLiveDescription\":{\"TimeToLiveStatus\":\"DISABLED\"}}");
    }
    tbl_table_info_free(&info);
    return 0;
}

/* ResourceArn of a table: "arn:aws:dynamodb:<region>:<account>:table/<name>". */
static int ddb_resource_arn(ddb_call_t *c, char name[DDB_NAME_MAX], const char **arn_out) {
    const char *arn;
    if (ddb_str(c, c->in, "ResourceArn", "resourceArn", DDB_REQ, 1, 1283, DDB_PAT_NONE, &arn)) return -1;
    if (ddb_verr_flush(c)) return -1;
    *arn_out = arn;
    const char *t = strstr(arn, ":table/");
    if (strncmp(arn, "arn:", 4) || !strstr(arn, ":dynamodb:") || !t)
        return ddb_invalid(c, "Invalid TableArn: Invalid ResourceArn provided as input %s", arn);
    t += 7;
    size_t n = strlen(t);
    if (strchr(t, '/') || n < 3 || n > TBL_MAX_NAME || !ddb_name_ok(t, n))
        return ddb_invalid(c, "Invalid TableArn: Invalid ResourceArn provided as input %s", arn);
    if (ddb_arn_owned(c, arn)) return -1;
    char want[200];
    snprintf(want, sizeof want, "arn:aws:dynamodb:%s:%s:table/", c->ctx->region, API_ACCOUNT_ID);
    if (strncmp(arn, want, strlen(want)))
        return ddb_fail(c, 400, "ResourceNotFoundException",
                      "Requested resource not found: ResourcArn: %s not found", arn);
    memcpy(name, t, n + 1);
    return 0;
}

static int ddb_tag_resource(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    const char *arn;
    tbl_tag_t *tags;
    size_t n;
    if (ddb_parse_tags(c, c->in, DDB_REQ, &tags, &n)) {
        free(tags);
        return -1;
    }
    if (ddb_resource_arn(c, name, &arn)) {
        free(tags);
        return -1;
    }
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_tags_add(c->ctx->tbl, name, tags, n, &err);
    free(tags);
    if (e == TR_ENOTFOUND)
        return ddb_fail(c, 400, "ResourceNotFoundException",
                      "Requested resource not found: ResourcArn: %s not found", arn);
    if (e) return ddb_error(c, e, &err);
    tr_buf_puts(c->out, "{}");
    return 0;
}

static int ddb_untag_resource(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    const char *arn;
    json_t *keys;
    if (ddb_arr(c, c->in, "TagKeys", &keys)) return -1;
    if (!keys) ddb_verr(c, "tagKeys", NULL, "Member must not be null");
    size_t n = keys ? json_array_size(keys) : 0;
    char **k = calloc(n + 1, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(keys, i);
        if (!json_is_string(s)) {
            free(k);
            return ddb_badtype(c, "TagKeys", s, "String");
        }
        k[i] = (char *)json_string_value(s);
        size_t len = ddb_chars(k[i], json_string_length(s));
        if (len < 1 || len > 128) {
            char p[64];
            snprintf(p, sizeof p, "tagKeys.%zu.member", i + 1);
            ddb_verr(c, p, k[i], "Member must have length %s", len < 1 ? "greater than or equal to 1" : "less than or equal to 128");
        }
    }
    if (ddb_resource_arn(c, name, &arn)) {
        free(k);
        return -1;
    }
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_tags_remove(c->ctx->tbl, name, k, n, &err);
    free(k);
    if (e == TR_ENOTFOUND)
        return ddb_fail(c, 400, "ResourceNotFoundException",
                      "Requested resource not found: ResourcArn: %s not found", arn);
    if (e) return ddb_error(c, e, &err);
    tr_buf_puts(c->out, "{}");
    return 0;
}

static int ddb_list_tags(ddb_call_t *c) {
    char name[DDB_NAME_MAX];
    const char *arn, *token;
    if (ddb_str(c, c->in, "NextToken", "nextToken", DDB_OPT, 0, SIZE_MAX, DDB_PAT_NONE, &token)) return -1;
    if (ddb_resource_arn(c, name, &arn)) return -1;
    tbl_table_info_t info;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, name, &info, &err);
    if (e == TR_ENOTFOUND)
        return ddb_fail(c, 400, "ResourceNotFoundException",
                      "Requested resource not found: ResourcArn: %s not found", arn);
    if (e) return ddb_error(c, e, &err);
    tr_buf_puts(c->out, "{\"Tags\":[");
    for (size_t i = 0; i < info.n_tags; i++) {
        tr_buf_puts(c->out, i ? ",{\"Key\":" : "{\"Key\":");
        ddb_put_str(c->out, info.tags[i].key);
        tr_buf_puts(c->out, ",\"Value\":");
        ddb_put_str(c->out, info.tags[i].value);
        tr_buf_puts(c->out, "}");
    }
    tr_buf_puts(c->out, "]}");
    tbl_table_info_free(&info);
    return 0;
}

/* ---- deferred writes: state shared by PutItem .. TransactWriteItems ------------------------ */

enum { DDB_K_PUT, DDB_K_UPDATE, DDB_K_DELETE, DDB_K_BATCH, DDB_K_TXN };

typedef struct ddb_wr {
    api_ctx_t *ctx;
    json_t *in;                    /* the request body (owned; the writes borrow from it) */
    int kind;                      /* DDB_K_* */
    ddb_exprs_t *xs;                 /* expressions: one set per write (n of them) */
    tbl_write_t *w;
    size_t n;
    char (*tables)[DDB_NAME_MAX];    /* table of each write */
    json_t **wreq;                 /* BatchWriteItem: each write's WriteRequest (borrowed) */
    tbl_txn_t txn;
    int rc;                        /* the callback's rc */
    int rcc;                       /* DDB_RCC_* */
    int user_rv;                   /* single writes: the ReturnValues asked for */
    tbl_table_info_t info;         /* single writes with INDEXES: the table's indexes */
    int have_info;
} ddb_wr_t;

static void ddb_wr_free(void *p) {
    ddb_wr_t *st = p;
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) {
        if (st->xs) ddb_exprs_free(&st->xs[i]);
        json_decref(st->w[i].attrs);
        json_decref(st->w[i].old_item);
    }
    free(st->xs);
    free(st->w);
    free(st->tables);
    free(st->wreq);
    if (st->have_info) tbl_table_info_free(&st->info);
    json_decref(st->in);
    free(st);
}

static ddb_wr_t *ddb_wr_new(ddb_call_t *c, int kind, size_t n) {
    ddb_wr_t *st = calloc(1, sizeof *st);
    st->ctx = c->ctx;
    st->kind = kind;
    st->n = n;
    st->xs = calloc(n ? n : 1, sizeof *st->xs);
    st->w = calloc(n ? n : 1, sizeof *st->w);
    st->tables = calloc(n ? n : 1, sizeof *st->tables);
    st->in = c->in;               /* ownership moves to the state */
    c->in = NULL;
    c->req->state = st;
    c->req->state_free = ddb_wr_free;
    return st;
}

static void ddb_write_done(void *arg, int rc) {
    net_req_t *req = arg;
    ddb_wr_t *st = req->state;
    st->rc = rc;
    net_req_resume(req);
}

/* ConditionalCheckFailedException, with the item as it was when asked for. */
static void ddb_put_ccf(net_req_t *req, const json_t *old) {
    req->status = 400;
    tr_buf_reset(&req->out);
    tr_buf_puts(&req->out, "{\"__type\":\"" DDB_NS "ConditionalCheckFailedException\","
                           "\"message\":\"The conditional request failed\"");
    if (old) {
        tr_buf_puts(&req->out, ",\"Item\":");
        ddb_put_json(&req->out, old);
    }
    tr_buf_puts(&req->out, "}");
}

/* Index write units of one single-item write, from whatever item the adapter can see. */
static size_t ddb_index_units(ddb_wr_t *st, const tbl_write_t *w, ddb_idx_units_t *out) {
    if (!st->have_info) return 0;
    const json_t *item = w->op == TBL_OP_PUT ? w->item : w->attrs;
    size_t n = 0;
    for (size_t i = 0; i < st->info.n_indexes; i++) {
        double u = ddb_index_write_units(&st->info.indexes[i], item);
        if (u <= 0) continue;
        out[n].name = st->info.indexes[i].name;
        out[n].local = st->info.indexes[i].local;
        out[n].units = u;
        n++;
    }
    return n;
}

static void ddb_single_finish(net_req_t *req) {
    ddb_wr_t *st = req->state;
    tbl_write_t *w = &st->w[0];
    int rc = w->rc ? w->rc : st->rc;
    if (rc == TR_ECONDITION) {
        ddb_put_ccf(req, w->old_item);
    } else if (rc) {
        ddb_error_req(req, rc, &w->err, NULL);
    } else {
        tr_buf *b = &req->out;
        tr_buf_reset(b);
        tr_buf_puts(b, "{");
        int any = 0;
        if (w->attrs && st->user_rv != TBL_RV_NONE && json_object_size(w->attrs)) {
            tr_buf_puts(b, "\"Attributes\":");
            ddb_put_json(b, w->attrs);
            any = 1;
        }
        if (st->rcc) {
            ddb_idx_units_t idx[TBL_MAX_GSI + TBL_MAX_LSI];
            size_t n_idx = ddb_index_units(st, w, idx);
            tr_buf_puts(b, any ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
            ddb_put_capacity(b, st->rcc, st->tables[0], ddb_write_units(w->old_size, w->new_size, 0),
                           idx, n_idx);
        }
        tr_buf_puts(b, "}");
    }
    ddb_seal(req);
}

/* Queue st's writes (or transaction); 1 when deferred, -1 with the error answered. */
static int ddb_submit(ddb_call_t *c, ddb_wr_t *st, void (*finish)(net_req_t *)) {
    tr_err err;
    tr_err_clear(&err);
    int rc = st->kind == DDB_K_TXN
                 ? tbl_txn_submit(c->ctx->tbl, &st->txn, ddb_write_done, c->req, &err)
                 : tbl_write_submit(c->ctx->tbl, st->w, st->n, ddb_write_done, c->req, &err);
    if (rc) return ddb_error(c, rc, &err);
    c->req->finish = finish;
    return 1;
}

/* ---- single-item operations ---------------------------------------------------------------- */

static const char *const ddb_rv_vals[] = {"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"};
#define DDB_RV_SET "[NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW]"

/* Key member: validated, numbers canonical, no empty key strings. */
static int ddb_key(ddb_call_t *c, json_t *obj, const char *name, const char *path, json_t **out) {
    if (ddb_obj(c, obj, name, out)) return -1;
    if (!*out) {
        ddb_verr(c, path, NULL, "Member must not be null");
        return 0;
    }
    if (ddb_av_map(c, *out, name)) return -1;
    const char *k;
    json_t *av;
    json_object_foreach(*out, k, av) {
        if (ddb_key_empty(c, *out, k, NULL)) return -1;
    }
    return 0;
}

/* Look up the table's key names (for empty-key checks on items).  -1 with the error answered. */
static int ddb_key_names(ddb_call_t *c, const char *table, char *hash, char *range) {
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_key_names(c->ctx->tbl, table, NULL, hash, range, &err);
    if (e) return ddb_error(c, e, &err);
    return 0;
}

static int ddb_want_info(ddb_call_t *c, ddb_wr_t *st, const char *table) {
    if (st->rcc != DDB_RCC_INDEXES) return 0;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, table, &st->info, &err);
    if (e) return ddb_error(c, e, &err);
    st->have_info = st->info.n_indexes > 0;
    if (!st->have_info) tbl_table_info_free(&st->info);
    return 0;
}

static int ddb_put_item(ddb_call_t *c) {
    static const char *const legacy[] = {"Expected", "ConditionalOperator"};
    static const char *const modern[] = {"ConditionExpression", "ConditionExpression"};
    static const char *const exprs[] = {"ConditionExpression"};
    char table[DDB_NAME_MAX];
    json_t *item;
    int rv, rcc, rvf;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return -1;
    if (ddb_obj(c, c->in, "Item", &item)) return -1;
    if (!item) ddb_verr(c, "item", NULL, "Member must not be null");
    if (ddb_enum(c, c->in, "ReturnValues", "returnValues", DDB_OPT, ddb_rv_vals, 5, DDB_RV_SET, &rv)) return -1;
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return -1;
    if (ddb_rvoccf(c, c->in, "returnValuesOnConditionCheckFailure", &rvf)) return -1;
    if (ddb_verr_flush(c)) return -1;
    if (ddb_legacy_rewrite(c, c->in, DDB_LG_EXPECTED)) return -1;
    if (ddb_legacy(c, c->in, legacy, modern, 2, exprs, 1)) return -1;
    if (rv > TBL_RV_ALL_OLD) return ddb_invalid(c, "ReturnValues can only be ALL_OLD or NONE");
    ddb_exprs_t x;
    if (ddb_exprs_init(c, c->in, json_object_get(c->in, "ConditionExpression") != NULL, &x)) return -1;
    tbl_expr_t *cond = NULL;
    if (ddb_expr(c, &x, c->in, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
        ddb_exprs_check(c, &x) || ddb_item(c, item, "Item")) {
        ddb_exprs_free(&x);
        return -1;
    }
    char hash[DDB_NAME_MAX], range[DDB_NAME_MAX];
    if (ddb_key_names(c, table, hash, range) || ddb_key_empty(c, item, hash, range)) {
        ddb_exprs_free(&x);
        return -1;
    }
    ddb_wr_t *st = ddb_wr_new(c, DDB_K_PUT, 1);
    st->xs[0] = x;
    st->rcc = rcc;
    st->user_rv = rv < 0 ? TBL_RV_NONE : rv;
    memcpy(st->tables[0], table, sizeof table);
    tbl_write_t *w = &st->w[0];
    w->op = TBL_OP_PUT;
    w->table = st->tables[0];
    w->item = item;
    w->cond = cond;
    w->return_values = st->user_rv;
    w->return_old_on_fail = rvf;
    w->req_bytes = c->req->body_len;
    if (ddb_want_info(c, st, table)) return -1;
    return ddb_submit(c, st, ddb_single_finish);
}

static int ddb_update_item(ddb_call_t *c) {
    static const char *const legacy[] = {"AttributeUpdates", "Expected", "ConditionalOperator"};
    static const char *const modern[] = {"UpdateExpression", "ConditionExpression", "ConditionExpression"};
    static const char *const exprs[] = {"UpdateExpression", "ConditionExpression"};
    char table[DDB_NAME_MAX];
    json_t *key;
    int rv, rcc, rvf;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return -1;
    if (ddb_key(c, c->in, "Key", "key", &key)) return -1;
    if (ddb_enum(c, c->in, "ReturnValues", "returnValues", DDB_OPT, ddb_rv_vals, 5, DDB_RV_SET, &rv)) return -1;
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return -1;
    if (ddb_rvoccf(c, c->in, "returnValuesOnConditionCheckFailure", &rvf)) return -1;
    if (ddb_verr_flush(c)) return -1;
    if (ddb_legacy_rewrite(c, c->in, DDB_LG_EXPECTED | DDB_LG_UPDATES)) return -1;
    if (ddb_legacy(c, c->in, legacy, modern, 3, exprs, 2)) return -1;
    ddb_exprs_t x;
    int any = json_object_get(c->in, "UpdateExpression") || json_object_get(c->in, "ConditionExpression");
    if (ddb_exprs_init(c, c->in, any, &x)) return -1;
    tbl_expr_t *upd = NULL, *cond = NULL;
    if (ddb_expr(c, &x, c->in, "UpdateExpression", TBL_EXPR_UPDATE, &upd) ||
        ddb_expr(c, &x, c->in, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
        ddb_exprs_check(c, &x)) {
        ddb_exprs_free(&x);
        return -1;
    }
    ddb_wr_t *st = ddb_wr_new(c, DDB_K_UPDATE, 1);
    st->xs[0] = x;
    st->rcc = rcc;
    st->user_rv = rv < 0 ? TBL_RV_NONE : rv;
    memcpy(st->tables[0], table, sizeof table);
    tbl_write_t *w = &st->w[0];
    w->op = TBL_OP_UPDATE;
    w->table = st->tables[0];
    w->key = key;
    w->update = upd;
    w->cond = cond;
    w->return_values = st->user_rv;
    w->return_old_on_fail = rvf;
    w->req_bytes = c->req->body_len;
    if (ddb_want_info(c, st, table)) return -1;
    if (st->have_info && st->user_rv == TBL_RV_NONE) w->return_values = TBL_RV_ALL_NEW;
    return ddb_submit(c, st, ddb_single_finish);
}

static int ddb_delete_item(ddb_call_t *c) {
    static const char *const legacy[] = {"Expected", "ConditionalOperator"};
    static const char *const modern[] = {"ConditionExpression", "ConditionExpression"};
    static const char *const exprs[] = {"ConditionExpression"};
    char table[DDB_NAME_MAX];
    json_t *key;
    int rv, rcc, rvf;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return -1;
    if (ddb_key(c, c->in, "Key", "key", &key)) return -1;
    if (ddb_enum(c, c->in, "ReturnValues", "returnValues", DDB_OPT, ddb_rv_vals, 5, DDB_RV_SET, &rv)) return -1;
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return -1;
    if (ddb_rvoccf(c, c->in, "returnValuesOnConditionCheckFailure", &rvf)) return -1;
    if (ddb_verr_flush(c)) return -1;
    if (ddb_legacy_rewrite(c, c->in, DDB_LG_EXPECTED)) return -1;
    if (ddb_legacy(c, c->in, legacy, modern, 2, exprs, 1)) return -1;
    if (rv > TBL_RV_ALL_OLD) return ddb_invalid(c, "ReturnValues can only be ALL_OLD or NONE");
    ddb_exprs_t x;
    if (ddb_exprs_init(c, c->in, json_object_get(c->in, "ConditionExpression") != NULL, &x)) return -1;
    tbl_expr_t *cond = NULL;
    if (ddb_expr(c, &x, c->in, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
        ddb_exprs_check(c, &x)) {
        ddb_exprs_free(&x);
        return -1;
    }
    ddb_wr_t *st = ddb_wr_new(c, DDB_K_DELETE, 1);
    st->xs[0] = x;
    st->rcc = rcc;
    st->user_rv = rv < 0 ? TBL_RV_NONE : rv;
    memcpy(st->tables[0], table, sizeof table);
    tbl_write_t *w = &st->w[0];
    w->op = TBL_OP_DELETE;
    w->table = st->tables[0];
    w->key = key;
    w->cond = cond;
    w->return_values = st->user_rv;
    w->return_old_on_fail = rvf;
    w->req_bytes = c->req->body_len;
    if (ddb_want_info(c, st, table)) return -1;
    if (st->have_info) w->return_values = TBL_RV_ALL_OLD;
    return ddb_submit(c, st, ddb_single_finish);
}

static int ddb_get_item(ddb_call_t *c) {
    static const char *const legacy[] = {"AttributesToGet"};
    static const char *const modern[] = {"ProjectionExpression"};
    static const char *const exprs[] = {"ProjectionExpression"};
    char table[DDB_NAME_MAX];
    json_t *key;
    int consistent, rcc;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return -1;
    if (ddb_key(c, c->in, "Key", "key", &key)) return -1;
    if (ddb_bool(c, c->in, "ConsistentRead", &consistent, NULL) || ddb_rcc(c, c->in, &rcc)) return -1;
    if (ddb_verr_flush(c)) return -1;
    if (ddb_legacy_rewrite(c, c->in, DDB_LG_ATG)) return -1;
    if (ddb_legacy(c, c->in, legacy, modern, 1, exprs, 1)) return -1;
    ddb_exprs_t x;
    if (ddb_exprs_init(c, c->in, json_object_get(c->in, "ProjectionExpression") != NULL, &x)) return -1;
    tbl_expr_t *proj = NULL;
    int rc = -1;
    if (ddb_expr(c, &x, c->in, "ProjectionExpression", TBL_EXPR_PROJECTION, &proj) ||
        ddb_exprs_check(c, &x))
        goto leave;
    tbl_get_t g;
    memset(&g, 0, sizeof g);
    g.table = table;
    g.key = key;
    g.projection = proj;
    g.want_raw = proj == NULL;
    tr_err err;
    tr_err_clear(&err);
    tbl_get_many(c->ctx->tbl, &g, 1, &err);
    if (g.rc) {
        ddb_error(c, g.rc, g.err.msg[0] ? &g.err : &err);
        goto leave;
    }
    tr_buf *b = c->out;
    tr_buf_reserve(b, g.raw_len + 128);
    tr_buf_puts(b, "{");
    int any = 0;
    if (g.raw) {
        tr_buf_puts(b, "\"Item\":");
        tr_buf_append(b, g.raw, g.raw_len);
        any = 1;
    } else if (g.item) {
        tr_buf_puts(b, "\"Item\":");
        ddb_put_json(b, g.item);
        any = 1;
    }
    if (rcc) {
        tr_buf_puts(b, any ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
        ddb_put_capacity(b, rcc, table, ddb_read_units(g.size, consistent, 0), NULL, 0);
    }
    tr_buf_puts(b, "}");
    free(g.raw);
    json_decref(g.item);
    rc = 0;
leave:
    ddb_exprs_free(&x);
    return rc;
}

/* ---- Query and Scan ------------------------------------------------------------------------ */

static int ddb_is_name_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* The first top-level attribute a filter names that is one of the key attributes, or NULL.
 * DynamoDB refuses filters on the key of the table or index a Query reads. */
static const char *ddb_filter_key_attr(const char *expr, const json_t *names, const char *hash,
                                     const char *range, char *buf, size_t cap) {
    static const char *const kw[] = {"AND", "OR", "NOT", "BETWEEN", "IN"};
    const char *p = expr;
    char prev = 0;
    while (*p) {
        if (*p == ':') { /* value placeholder */
            p++;
            while (ddb_is_name_char(*p)) p++;
            prev = 'v';
            continue;
        }
        if (*p == '#' || ddb_is_name_char(*p)) {
            const char *s = p++;
            while (ddb_is_name_char(*p)) p++;
            size_t n = (size_t)(p - s);
            const char *q = p;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
            int is_fn = *q == '(', is_kw = 0;
            for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
                if (n == strlen(kw[i]) && !strncasecmp(s, kw[i], n)) is_kw = 1;
            if (prev != '.' && !is_fn && !is_kw) {
                char tok[DDB_NAME_MAX];
                snprintf(tok, sizeof tok, "%.*s", (int)(n < 255 ? n : 255), s);
                const char *name = tok;
                if (tok[0] == '#') {
                    json_t *v = json_object_get(names, tok);
                    name = v ? json_string_value(v) : NULL;
                }
                if (name && ((hash && !strcmp(name, hash)) || (range && range[0] && !strcmp(name, range)))) {
                    snprintf(buf, cap, "%s", name);
                    return buf;
                }
            }
            prev = 'n';
            continue;
        }
        if (*p == '[') {
            while (*p && *p != ']') p++;
            if (*p) p++;
            prev = ']';
            continue;
        }
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') prev = *p;
        p++;
    }
    return NULL;
}

static const char *const ddb_select_vals[] = {"ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES",
                                            "SPECIFIC_ATTRIBUTES", "COUNT"};
#define DDB_SELECT_SET "[SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"

static int ddb_query_common(ddb_call_t *c, int scan) {
    static const char *const q_legacy[] = {"KeyConditions", "QueryFilter", "AttributesToGet", "ConditionalOperator"};
    static const char *const q_modern[] = {"KeyConditionExpression", "FilterExpression", "ProjectionExpression", "FilterExpression"};
    static const char *const q_exprs[] = {"KeyConditionExpression", "FilterExpression", "ProjectionExpression"};
    static const char *const s_legacy[] = {"ScanFilter", "AttributesToGet", "ConditionalOperator"};
    static const char *const s_modern[] = {"FilterExpression", "ProjectionExpression", "FilterExpression"};
    static const char *const s_exprs[] = {"FilterExpression", "ProjectionExpression"};
    char table[DDB_NAME_MAX];
    const char *index;
    int select, consistent, rcc, fwd = 1, has_fwd, has_limit, has_seg, has_total;
    long long limit = 0, seg = 0, total = 0;
    json_t *start;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return -1;
    if (ddb_str(c, c->in, "IndexName", "indexName", DDB_OPT, 3, 255, DDB_PAT_NAME, &index)) return -1;
    if (ddb_enum(c, c->in, "Select", "select", DDB_OPT, ddb_select_vals, 4, DDB_SELECT_SET, &select)) return -1;
    if (ddb_int(c, c->in, "Limit", "limit", DDB_OPT, 1, 2147483647LL, &limit, &has_limit)) return -1;
    if (ddb_bool(c, c->in, "ConsistentRead", &consistent, NULL) || ddb_rcc(c, c->in, &rcc)) return -1;
    if (ddb_obj(c, c->in, "ExclusiveStartKey", &start)) return -1;
    if (!scan && ddb_bool(c, c->in, "ScanIndexForward", &fwd, &has_fwd)) return -1;
    if (!scan) fwd = has_fwd ? fwd : 1;
    if (scan) {
        if (ddb_int(c, c->in, "Segment", "segment", DDB_OPT, 0, 999999, &seg, &has_seg)) return -1;
        if (ddb_int(c, c->in, "TotalSegments", "totalSegments", DDB_OPT, 1, 1000000, &total, &has_total))
            return -1;
    }
    if (ddb_verr_flush(c)) return -1;
    if (ddb_legacy_rewrite(c, c->in, scan ? (DDB_LG_SFILTER | DDB_LG_ATG) : (DDB_LG_KEYCOND | DDB_LG_QFILTER | DDB_LG_ATG)))
        return -1;
    if (scan ? ddb_legacy(c, c->in, s_legacy, s_modern, 3, s_exprs, 2)
             : ddb_legacy(c, c->in, q_legacy, q_modern, 4, q_exprs, 3))
        return -1;
    if (scan) {
        if (has_seg && !has_total)
            return ddb_invalid(c, "The TotalSegments parameter is required but was not present in "
                                "the request when Segment parameter is present");
        if (has_total && !has_seg)
            return ddb_invalid(c, "The Segment parameter is required but was not present in the "
                                "request when parameter TotalSegments is present");
        if (has_seg && seg >= total)
            return ddb_invalid(c, "The Segment parameter is zero-based and must be less than "
                                "parameter TotalSegments: Segment: %lld is not less than "
                                "TotalSegments: %lld", seg, total);
    } else if (!json_object_get(c->in, "KeyConditionExpression")) {
        return ddb_invalid(c, "Either the KeyConditions or KeyConditionExpression parameter must be "
                            "specified in the request.");
    }
    int has_proj = json_object_get(c->in, "ProjectionExpression") != NULL;
    if (select == TBL_SELECT_ALL_PROJECTED && !index)
        return ddb_invalid(c, "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an "
                            "IndexName");
    if (has_proj && select >= 0 && select != TBL_SELECT_SPECIFIC)
        return ddb_invalid(c, "Cannot specify the ProjectionExpression when choosing to get %s",
                         select == TBL_SELECT_COUNT ? "only the Count" : ddb_select_vals[select]);
    if (select == TBL_SELECT_SPECIFIC && !has_proj)
        return ddb_invalid(c, "Select type SPECIFIC_ATTRIBUTES requires ProjectionExpression (or "
                            "AttributesToGet) to name the attributes");
    int any = has_proj || json_object_get(c->in, "FilterExpression") ||
              json_object_get(c->in, "KeyConditionExpression");
    ddb_exprs_t x;
    if (ddb_exprs_init(c, c->in, any, &x)) return -1;
    tbl_query_t q;
    memset(&q, 0, sizeof q);
    tbl_expr_t *kc = NULL, *filter = NULL, *proj = NULL;
    tbl_table_info_t info;
    int have_info = 0, rc = -1;
    if ((!scan && ddb_expr(c, &x, c->in, "KeyConditionExpression", TBL_EXPR_KEY_CONDITION, &kc)) ||
        ddb_expr(c, &x, c->in, "FilterExpression", TBL_EXPR_FILTER, &filter) ||
        ddb_expr(c, &x, c->in, "ProjectionExpression", TBL_EXPR_PROJECTION, &proj) ||
        ddb_exprs_check(c, &x))
        goto leave;
    if (start && ddb_av_map(c, start, "ExclusiveStartKey")) goto leave;
    tr_err err;
    tr_err_clear(&err);
    if (index && (consistent || rcc == DDB_RCC_INDEXES)) {
        int e = tbl_table_describe(c->ctx->tbl, table, &info, &err);
        if (e) {
            ddb_error(c, e, &err);
            goto leave;
        }
        have_info = 1;
        for (size_t i = 0; i < info.n_indexes; i++)
            if (!strcmp(info.indexes[i].name, index) && !info.indexes[i].local && consistent) {
                ddb_invalid(c, "Consistent reads are not supported on global secondary indexes");
                goto leave;
            }
    }
    if (!scan && filter) {
        char hash[DDB_NAME_MAX], range[DDB_NAME_MAX], nb[DDB_NAME_MAX];
        int e = tbl_key_names(c->ctx->tbl, table, index, hash, range, &err);
        if (e) {
            ddb_error(c, e, &err);
            goto leave;
        }
        const char *k = ddb_filter_key_attr(json_string_value(json_object_get(c->in, "FilterExpression")),
                                          x.names, hash, range, nb, sizeof nb);
        if (k) {
            ddb_invalid(c, "Filter Expression can only contain non-primary key attributes: Primary "
                         "key attribute: %s", k);
            goto leave;
        }
    }
    q.table = table;
    q.index = index;
    q.scan = scan;
    q.keycond_expr = kc;
    q.filter = filter;
    q.projection = proj;
    q.select = select >= 0 ? select
               : proj      ? TBL_SELECT_SPECIFIC
               : index     ? TBL_SELECT_ALL_PROJECTED
                           : TBL_SELECT_ALL_ATTRIBUTES;
    q.backward = !fwd;
    q.limit = has_limit ? (uint32_t)limit : 0;
    q.start_key = start;
    q.segment = (uint32_t)seg;
    q.total_segments = has_total ? (uint32_t)total : 0;
    int e = tbl_query(c->ctx->tbl, &q, &err);
    if (e) {
        ddb_error(c, e, q.err.msg[0] ? &q.err : &err);
        goto leave;
    }
    tr_buf *b = c->out;
    tr_buf_puts(b, "{");
    if (q.items) {
        tr_buf_puts(b, "\"Items\":");
        ddb_put_json(b, q.items);
        tr_buf_puts(b, ",");
    }
    tr_buf_printf(b, "\"Count\":%u,\"ScannedCount\":%u", q.count, q.scanned);
    if (q.last_key) {
        tr_buf_puts(b, ",\"LastEvaluatedKey\":");
        ddb_put_json(b, q.last_key);
    }
    if (rcc) {
        double u = ddb_read_units(q.scanned_bytes, consistent, 0);
        ddb_idx_units_t ix = {index, 0, u};
        for (size_t i = 0; have_info && i < info.n_indexes; i++)
            if (!strcmp(info.indexes[i].name, index)) ix.local = info.indexes[i].local;
        tr_buf_puts(b, ",\"ConsumedCapacity\":");
        ddb_put_capacity(b, rcc, table, index ? 0 : u, index ? &ix : NULL, index ? 1 : 0);
    }
    tr_buf_puts(b, "}");
    rc = 0;
leave:
    tbl_query_free(&q);
    if (have_info) tbl_table_info_free(&info);
    ddb_exprs_free(&x);
    return rc;
}

static int ddb_query(ddb_call_t *c) { return ddb_query_common(c, 0); }
static int ddb_scan(ddb_call_t *c) { return ddb_query_common(c, 1); }

/* ---- batch and transactional reads --------------------------------------------------------- */

/* Canonical text of a key (sorted members), for duplicate detection; caller frees. */
static char *ddb_key_text(const json_t *key) {
    return json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS);
}

static int ddb_has_dup(char **texts, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (texts[i] && texts[j] && !strcmp(texts[i], texts[j])) return 1;
    return 0;
}

/* Per-table capacity accumulation for multi-table responses. */
typedef struct ddb_tcap {
    const char *table;
    double units;
} ddb_tcap_t;

static void ddb_tcap_add(ddb_tcap_t *t, size_t *n, const char *table, double u) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].table, table)) {
            t[i].units += u;
            return;
        }
    t[*n].table = table;
    t[*n].units = u;
    (*n)++;
}

static void ddb_put_tcaps(tr_buf *b, int mode, const ddb_tcap_t *t, size_t n) {
    tr_buf_puts(b, ",\"ConsumedCapacity\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(b, ",");
        ddb_put_capacity(b, mode, t[i].table, t[i].units, NULL, 0);
    }
    tr_buf_puts(b, "]");
}

static int ddb_get_fail(ddb_call_t *c, tbl_get_t *g, size_t n, const tr_err *err) {
    for (size_t i = 0; i < n; i++)
        if (g[i].rc) return ddb_error(c, g[i].rc, g[i].err.msg[0] ? &g[i].err : err);
    return 0;
}

static void ddb_put_got(tr_buf *b, const tbl_get_t *g) {
    if (g->raw) tr_buf_append(b, g->raw, g->raw_len);
    else ddb_put_json(b, g->item);
}

static int ddb_batch_get(ddb_call_t *c) {
    static const char *const legacy[] = {"AttributesToGet"};
    static const char *const modern[] = {"ProjectionExpression"};
    static const char *const exprs[] = {"ProjectionExpression"};
    json_t *ri;
    int rcc, rc = -1;
    if (ddb_obj(c, c->in, "RequestItems", &ri)) return -1;
    if (!ri) ddb_verr(c, "requestItems", NULL, "Member must not be null");
    if (ddb_rcc(c, c->in, &rcc)) return -1;
    size_t n_tables = ri ? json_object_size(ri) : 0;
    if (ri && (n_tables < 1 || n_tables > 100))
        ddb_verr(c, "requestItems", "{...}", "Member must have length %s",
               n_tables < 1 ? "greater than or equal to 1" : "less than or equal to 100");
    if (ddb_verr_flush(c)) return -1;
    size_t total = 0;
    const char *tname;
    json_t *ka;
    json_object_foreach(ri, tname, ka) {
        if (!json_is_object(ka)) return ddb_badtype(c, "RequestItems", ka, "Structure");
        json_t *keys;
        if (ddb_arr(c, ka, "Keys", &keys)) return -1;
        size_t nk = keys ? json_array_size(keys) : 0;
        char p[300];
        snprintf(p, sizeof p, "requestItems.%s.member.keys", tname);
        if (!keys) ddb_verr(c, p, NULL, "Member must not be null");
        else if (nk < 1 || nk > 100)
            ddb_verr(c, p, "[...]", "Member must have length %s",
                   nk < 1 ? "greater than or equal to 1" : "less than or equal to 100");
        total += nk;
        if (strlen(tname) < 3 || strlen(tname) > 255 || !ddb_name_ok(tname, strlen(tname)))
            ddb_verr(c, "requestItems", tname, "Map keys must satisfy constraint: [Member must have "
                   "length less than or equal to 255, Member must have length greater than or "
                   "equal to 3, Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+]");
    }
    if (ddb_verr_flush(c)) return -1;
    if (total > TBL_MAX_BATCH_GET)
        return ddb_invalid(c, "Too many items requested for the BatchGetItem call");

    ddb_exprs_t *xs = calloc(n_tables, sizeof *xs);
    tbl_get_t *g = calloc(total ? total : 1, sizeof *g);
    char **texts = calloc(total ? total : 1, sizeof *texts);
    size_t *first = calloc(n_tables + 1, sizeof *first);
    int *consistent = calloc(n_tables, sizeof *consistent);
    size_t ti = 0, n = 0;
    json_object_foreach(ri, tname, ka) {
        json_t *keys = json_object_get(ka, "Keys");
        if (ddb_legacy_rewrite(c, ka, DDB_LG_ATG)) goto leave;
        if (ddb_legacy(c, ka, legacy, modern, 1, exprs, 1)) goto leave;
        if (ddb_bool(c, ka, "ConsistentRead", &consistent[ti], NULL)) goto leave;
        if (ddb_exprs_init(c, ka, json_object_get(ka, "ProjectionExpression") != NULL, &xs[ti]))
            goto leave;
        tbl_expr_t *proj = NULL;
        if (ddb_expr(c, &xs[ti], ka, "ProjectionExpression", TBL_EXPR_PROJECTION, &proj) ||
            ddb_exprs_check(c, &xs[ti]))
            goto leave;
        first[ti] = n;
        for (size_t i = 0; i < json_array_size(keys); i++) {
            json_t *k = json_array_get(keys, i);
            if (ddb_av_map(c, k, "Keys")) goto leave;
            const char *an;
            json_t *av;
            json_object_foreach(k, an, av) {
                if (ddb_key_empty(c, k, an, NULL)) goto leave;
            }
            texts[n] = ddb_key_text(k);
            g[n].table = tname;
            g[n].key = k;
            g[n].projection = proj;
            g[n].want_raw = proj == NULL;
            n++;
        }
        if (ddb_has_dup(texts + first[ti], n - first[ti])) {
            ddb_invalid(c, "Provided list of item keys contains duplicates");
            goto leave;
        }
        ti++;
    }
    first[ti] = n;
    tr_err err;
    tr_err_clear(&err);
    tbl_get_many(c->ctx->tbl, g, n, &err);
    if (ddb_get_fail(c, g, n, &err)) goto leave;

    tr_buf *b = c->out;
    json_t *unprocessed = json_object();
    ddb_tcap_t *caps = calloc(n_tables + 1, sizeof *caps);
    size_t n_caps = 0, used = 0;
    tr_buf_puts(b, "{\"Responses\":{");
    ti = 0;
    json_object_foreach(ri, tname, ka) {
        if (ti) tr_buf_puts(b, ",");
        ddb_put_str(b, tname);
        tr_buf_puts(b, ":[");
        int emitted = 0;
        json_t *left = NULL;
        for (size_t i = first[ti]; i < first[ti + 1]; i++) {
            size_t sz = g[i].raw ? g[i].raw_len : g[i].item ? tbl_item_size(g[i].item) : 0;
            if (used && used + sz > DDB_MAX_BATCH_GET_BYTES) {
                if (!left) left = json_array();
                json_array_append(left, (json_t *)g[i].key);
                continue;
            }
            if (rcc) ddb_tcap_add(caps, &n_caps, tname, ddb_read_units(g[i].size, consistent[ti], 0));
            if (!g[i].raw && !g[i].item) continue;
            used += sz;
            if (emitted++) tr_buf_puts(b, ",");
            ddb_put_got(b, &g[i]);
        }
        tr_buf_puts(b, "]");
        if (left) {
            json_t *u = json_deep_copy(ka);
            json_object_set_new(u, "Keys", left);
            json_object_set_new(unprocessed, tname, u);
        }
        ti++;
    }
    tr_buf_puts(b, "},\"UnprocessedKeys\":");
    ddb_put_json(b, unprocessed);
    json_decref(unprocessed);
    if (rcc) ddb_put_tcaps(b, rcc, caps, n_caps);
    tr_buf_puts(b, "}");
    free(caps);
    rc = 0;
leave:
    for (size_t i = 0; i < n; i++) {
        free(g[i].raw);
        json_decref(g[i].item);
        free(texts[i]);
    }
    for (size_t i = 0; i < n_tables; i++) ddb_exprs_free(&xs[i]);
    free(xs);
    free(g);
    free(texts);
    free(first);
    free(consistent);
    return rc;
}

static int ddb_transact_get(ddb_call_t *c) {
    json_t *items;
    int rcc, rc = -1;
    if (ddb_arr(c, c->in, "TransactItems", &items)) return -1;
    size_t n = items ? json_array_size(items) : 0;
    if (!items) ddb_verr(c, "transactItems", NULL, "Member must not be null");
    else if (n < 1 || n > TBL_MAX_TXN_ITEMS)
        ddb_verr(c, "transactItems", "[...]", "Member must have length %s",
               n < 1 ? "greater than or equal to 1" : "less than or equal to 100");
    if (ddb_rcc(c, c->in, &rcc)) return -1;
    if (ddb_verr_flush(c)) return -1;
    ddb_exprs_t *xs = calloc(n, sizeof *xs);
    tbl_get_t *g = calloc(n, sizeof *g);
    char (*tables)[DDB_NAME_MAX] = calloc(n, sizeof *tables);
    char **texts = calloc(n, sizeof *texts);
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(items, i), *get;
        char p[96];
        if (!json_is_object(el)) {
            ddb_badtype(c, "TransactItems", el, "Structure");
            goto leave;
        }
        if (ddb_obj(c, el, "Get", &get)) goto leave;
        snprintf(p, sizeof p, "transactItems.%zu.member.get", i + 1);
        if (!get) {
            ddb_verr(c, p, NULL, "Member must not be null");
            continue;
        }
        snprintf(p, sizeof p, "transactItems.%zu.member.get.tableName", i + 1);
        if (ddb_table(c, get, "TableName", p, DDB_REQ, tables[i])) goto leave;
        json_t *key;
        snprintf(p, sizeof p, "transactItems.%zu.member.get.key", i + 1);
        if (ddb_key(c, get, "Key", p, &key)) goto leave;
        if (ddb_exprs_init(c, get, json_object_get(get, "ProjectionExpression") != NULL, &xs[i]))
            goto leave;
        tbl_expr_t *proj = NULL;
        if (ddb_expr(c, &xs[i], get, "ProjectionExpression", TBL_EXPR_PROJECTION, &proj) ||
            ddb_exprs_check(c, &xs[i]))
            goto leave;
        g[i].table = tables[i];
        g[i].key = key;
        g[i].projection = proj;
        g[i].want_raw = proj == NULL;
        char *kt = key ? ddb_key_text(key) : NULL;
        if (kt) {
            size_t len = strlen(tables[i]) + strlen(kt) + 2;
            texts[i] = malloc(len);
            snprintf(texts[i], len, "%s|%s", tables[i], kt);
            free(kt);
        }
    }
    if (ddb_verr_flush(c)) goto leave;
    if (ddb_has_dup(texts, n)) {
        ddb_invalid(c, "Transaction request cannot include multiple operations on one item");
        goto leave;
    }
    tr_err err;
    tr_err_clear(&err);
    tbl_get_many(c->ctx->tbl, g, n, &err);
    if (ddb_get_fail(c, g, n, &err)) goto leave;
    tr_buf *b = c->out;
    ddb_tcap_t *caps = calloc(n + 1, sizeof *caps);
    size_t n_caps = 0;
    tr_buf_puts(b, "{\"Responses\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(b, ",");
        if (g[i].raw || g[i].item) {
            tr_buf_puts(b, "{\"Item\":");
            ddb_put_got(b, &g[i]);
            tr_buf_puts(b, "}");
        } else {
            tr_buf_puts(b, "{}");
        }
        if (rcc) ddb_tcap_add(caps, &n_caps, tables[i], ddb_read_units(g[i].size, 1, 1));
    }
    tr_buf_puts(b, "]");
    if (rcc) ddb_put_tcaps(b, rcc, caps, n_caps);
    tr_buf_puts(b, "}");
    free(caps);
    rc = 0;
leave:
    for (size_t i = 0; i < n; i++) {
        free(g[i].raw);
        json_decref(g[i].item);
        free(texts[i]);
        ddb_exprs_free(&xs[i]);
    }
    free(xs);
    free(g);
    free(tables);
    free(texts);
    return rc;
}

/* ---- BatchWriteItem ------------------------------------------------------------------------ */

static void ddb_batch_finish(net_req_t *req) {
    ddb_wr_t *st = req->state;
    tr_buf *b = &req->out;
    /* a write that failed for a reason other than capacity/storage fails the request */
    for (size_t i = 0; i < st->n; i++) {
        int rc = st->w[i].rc;
        if (rc == TR_EVALIDATION || rc == TR_ENOTFOUND || rc == TR_EINVAL) {
            ddb_error_req(req, rc, &st->w[i].err, NULL);
            ddb_seal(req);
            return;
        }
    }
    tr_buf_reset(b);
    json_t *unprocessed = json_object();
    ddb_tcap_t *caps = calloc(st->n + 1, sizeof *caps);
    size_t n_caps = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->w[i].rc) {
            json_t *list = json_object_get(unprocessed, st->tables[i]);
            if (!list) {
                list = json_array();
                json_object_set_new(unprocessed, st->tables[i], list);
            }
            json_array_append(list, st->wreq[i]);
            continue;
        }
        if (st->rcc)
            ddb_tcap_add(caps, &n_caps, st->tables[i], ddb_write_units(st->w[i].old_size, st->w[i].new_size, 0));
    }
    tr_buf_puts(b, "{\"UnprocessedItems\":");
    ddb_put_json(b, unprocessed);
    if (st->rcc) ddb_put_tcaps(b, st->rcc, caps, n_caps);
    tr_buf_puts(b, "}");
    json_decref(unprocessed);
    free(caps);
    ddb_seal(req);
}

static int ddb_batch_write(ddb_call_t *c) {
    json_t *ri;
    int rcc;
    if (ddb_obj(c, c->in, "RequestItems", &ri)) return -1;
    if (!ri) ddb_verr(c, "requestItems", NULL, "Member must not be null");
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return -1;
    size_t n_tables = ri ? json_object_size(ri) : 0;
    if (ri && (n_tables < 1 || n_tables > 25))
        ddb_verr(c, "requestItems", "{...}", "Member must have length %s",
               n_tables < 1 ? "greater than or equal to 1" : "less than or equal to 25");
    const char *tname;
    json_t *list;
    size_t total = 0;
    json_object_foreach(ri, tname, list) {
        if (!json_is_array(list)) return ddb_badtype(c, "RequestItems", list, "List");
        size_t nl = json_array_size(list);
        total += nl;
        if (nl < 1 || nl > 25)
            ddb_verr(c, "requestItems", "{...}", "Map value must satisfy constraint: [Member must "
                   "have length less than or equal to 25, Member must have length greater than or "
                   "equal to 1]");
        if (strlen(tname) < 3 || strlen(tname) > 255 || !ddb_name_ok(tname, strlen(tname)))
            ddb_verr(c, "requestItems", tname, "Map keys must satisfy constraint: [Member must have "
                   "length less than or equal to 255, Member must have length greater than or "
                   "equal to 3, Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+]");
    }
    if (ddb_verr_flush(c)) return -1;
    if (total > TBL_MAX_BATCH_WRITE)
        return ddb_invalid(c, "Too many items requested for the BatchWriteItem call");

    /* validate everything before anything is queued */
    char **texts = calloc(total ? total : 1, sizeof *texts);
    int rc = -1;
    size_t n = 0;
    json_object_foreach(ri, tname, list) {
        char hash[DDB_NAME_MAX], range[DDB_NAME_MAX];
        int htype, rtype;
        tr_err kerr;
        tr_err_clear(&kerr);
        int krc = tbl_key_schema(c->ctx->tbl, tname, NULL, hash, range, &htype, &rtype, &kerr);
        if (krc) {
            ddb_error(c, krc, &kerr);
            goto fail;
        }
        size_t first = n;
        for (size_t i = 0; i < json_array_size(list); i++, n++) {
            json_t *wr = json_array_get(list, i), *put, *del;
            if (!json_is_object(wr)) {
                ddb_badtype(c, "WriteRequest", wr, "Structure");
                goto fail;
            }
            if (ddb_obj(c, wr, "PutRequest", &put) || ddb_obj(c, wr, "DeleteRequest", &del)) goto fail;
            if ((put != NULL) == (del != NULL)) {
                ddb_invalid(c, "Supplied WriteRequest must contain exactly one of PutRequest or "
                             "DeleteRequest");
                goto fail;
            }
            json_t *k;
            if (put) {
                json_t *item;
                if (ddb_obj(c, put, "Item", &item)) goto fail;
                if (!item) {
                    ddb_invalid(c, "1 validation error detected: Value null at "
                                 "'requestItems.%s.member.putRequest.item' failed to satisfy "
                                 "constraint: Member must not be null", tname);
                    goto fail;
                }
                if (ddb_item(c, item, "Item") || ddb_key_empty(c, item, hash, range)) goto fail;
                /* BatchWriteItem's words for a key missing or of the wrong type (PutItem's are
                   "Missing the key ..." and "Type mismatch for key ...") */
                if (tbl_av_type(json_object_get(item, hash)) != htype ||
                    (range[0] && tbl_av_type(json_object_get(item, range)) != rtype)) {
                    ddb_invalid(c, "The provided key element does not match the schema");
                    goto fail;
                }
                k = json_object();
                json_object_set(k, hash, json_object_get(item, hash));
                if (range[0]) json_object_set(k, range, json_object_get(item, range));
                texts[n] = ddb_key_text(k);
                json_decref(k);
            } else {
                if (ddb_obj(c, del, "Key", &k)) goto fail;
                if (!k) {
                    ddb_invalid(c, "1 validation error detected: Value null at "
                                 "'requestItems.%s.member.deleteRequest.key' failed to satisfy "
                                 "constraint: Member must not be null", tname);
                    goto fail;
                }
                if (ddb_av_map(c, k, "Key") || ddb_key_empty(c, k, hash, range)) goto fail;
                texts[n] = ddb_key_text(k);
            }
        }
        if (ddb_has_dup(texts + first, n - first)) {
            ddb_invalid(c, "Provided list of item keys contains duplicates");
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    texts = NULL;

    ddb_wr_t *st = ddb_wr_new(c, DDB_K_BATCH, total);
    st->rcc = rcc;
    st->wreq = calloc(total ? total : 1, sizeof *st->wreq);
    n = 0;
    json_object_foreach(ri, tname, list) {
        for (size_t i = 0; i < json_array_size(list); i++, n++) {
            json_t *wr = json_array_get(list, i), *put = json_object_get(wr, "PutRequest");
            tbl_write_t *w = &st->w[n];
            snprintf(st->tables[n], DDB_NAME_MAX, "%s", tname);
            st->wreq[n] = wr;
            w->table = st->tables[n];
            if (put && !json_is_null(put)) {
                w->op = TBL_OP_PUT;
                w->item = json_object_get(put, "Item");
            } else {
                w->op = TBL_OP_DELETE;
                w->key = json_object_get(json_object_get(wr, "DeleteRequest"), "Key");
            }
            w->req_bytes = 1024;
        }
    }
    return ddb_submit(c, st, ddb_batch_finish);
fail:
    if (texts)
        for (size_t i = 0; i < total; i++) free(texts[i]);
    free(texts);
    return rc;
}

/* ---- TransactWriteItems -------------------------------------------------------------------- */

static const char *ddb_reason_code(int rc) {
    switch (rc) {
    case 0: return "None";
    case TR_ECONDITION: return "ConditionalCheckFailed";
    case TR_EVALIDATION:
    case TR_EINVAL: return "ValidationError";
    case TR_ETHROTTLED: return "ThrottlingError";
    case TR_EINUSE: return "TransactionConflict";
    default: return "InternalError";
    }
}

static void ddb_txn_finish(net_req_t *req) {
    ddb_wr_t *st = req->state;
    tbl_txn_t *t = &st->txn;
    int rc = t->rc ? t->rc : st->rc;
    tr_buf *b = &req->out;
    tr_buf_reset(b);
    if (rc == TR_ETXN_CANCELED) {
        tr_buf reasons = TR_BUF_INIT, codes = TR_BUF_INIT;
        for (size_t i = 0; i < st->n; i++) {
            tbl_write_t *w = &st->w[i];
            const char *code = ddb_reason_code(w->rc);
            tr_buf_printf(&codes, "%s%s", i ? ", " : "", code);
            tr_buf_printf(&reasons, "%s{\"Code\":\"%s\"", i ? "," : "", code);
            if (w->rc == TR_ECONDITION) {
                tr_buf_puts(&reasons, ",\"Message\":\"The conditional request failed\"");
                if (w->old_item) {
                    tr_buf_puts(&reasons, ",\"Item\":");
                    ddb_put_json(&reasons, w->old_item);
                }
            } else if (w->rc) {
                tr_buf_puts(&reasons, ",\"Message\":");
                ddb_put_str(&reasons, w->err.msg[0] ? w->err.msg : tr_strerror(w->rc));
            }
            tr_buf_puts(&reasons, "}");
        }
        char msg[8192];
        snprintf(msg, sizeof msg,
                 "Transaction cancelled, please refer cancellation reasons for specific reasons [%s]",
                 codes.data ? codes.data : "");
        req->status = 400;
        tr_buf_puts(b, "{\"__type\":\"" DDB_NS "TransactionCanceledException\",\"Message\":");
        ddb_put_str(b, msg);
        tr_buf_puts(b, ",\"CancellationReasons\":[");
        if (reasons.data) tr_buf_append(b, reasons.data, reasons.len);
        tr_buf_puts(b, "]}");
        tr_buf_free(&reasons);
        tr_buf_free(&codes);
    } else if (rc) {
        ddb_error_req(req, rc, &t->err, NULL);
    } else {
        tr_buf_puts(b, "{");
        if (st->rcc) {
            ddb_tcap_t *caps = calloc(st->n + 1, sizeof *caps);
            size_t n_caps = 0;
            for (size_t i = 0; i < st->n; i++)
                ddb_tcap_add(caps, &n_caps, st->tables[i],
                           ddb_write_units(st->w[i].old_size, st->w[i].new_size, 1));
            tr_buf_puts(b, "\"ConsumedCapacity\":[");
            for (size_t i = 0; i < n_caps; i++) {
                if (i) tr_buf_puts(b, ",");
                ddb_put_capacity(b, st->rcc, caps[i].table, caps[i].units, NULL, 0);
            }
            tr_buf_puts(b, "]");
            free(caps);
        }
        tr_buf_puts(b, "}");
    }
    ddb_seal(req);
}

static int ddb_transact_write(ddb_call_t *c) {
    static const char *const kinds[] = {"ConditionCheck", "Put", "Delete", "Update"};
    static const char *const kpath[] = {"conditionCheck", "put", "delete", "update"};
    json_t *items;
    int rcc;
    const char *token;
    if (ddb_arr(c, c->in, "TransactItems", &items)) return -1;
    size_t n = items ? json_array_size(items) : 0;
    if (!items) ddb_verr(c, "transactItems", NULL, "Member must not be null");
    else if (n < 1 || n > TBL_MAX_TXN_ITEMS)
        ddb_verr(c, "transactItems", "[...]", "Member must have length %s",
               n < 1 ? "greater than or equal to 1" : "less than or equal to 100");
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return -1;
    if (ddb_str(c, c->in, "ClientRequestToken", "clientRequestToken", DDB_OPT, 1, TBL_MAX_TOKEN,
              DDB_PAT_NONE, &token))
        return -1;
    if (ddb_verr_flush(c)) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(items, i);
        if (!json_is_object(el)) return ddb_badtype(c, "TransactItems", el, "Structure");
        int count = 0;
        for (int k = 0; k < 4; k++) {
            json_t *v = json_object_get(el, kinds[k]);
            if (v && !json_is_null(v)) count++;
        }
        if (count != 1)
            return ddb_invalid(c, "TransactItems can only contain one of Check, Put, Update or Delete");
    }
    json_t *in = c->in;
    ddb_wr_t *st = ddb_wr_new(c, DDB_K_TXN, n);
    st->rcc = rcc;
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(items, i), *op = NULL;
        int k;
        for (k = 0; k < 4; k++) {
            op = json_object_get(el, kinds[k]);
            if (op && !json_is_null(op)) break;
        }
        if (!json_is_object(op)) return ddb_badtype(c, kinds[k], op, "Structure");
        char p[128];
        tbl_write_t *w = &st->w[i];
        snprintf(p, sizeof p, "transactItems.%zu.member.%s.tableName", i + 1, kpath[k]);
        if (ddb_table(c, op, "TableName", p, DDB_REQ, st->tables[i])) return -1;
        int rvf;
        snprintf(p, sizeof p, "transactItems.%zu.member.%s.returnValuesOnConditionCheckFailure", i + 1, kpath[k]);
        if (ddb_rvoccf(c, op, p, &rvf)) return -1;
        json_t *item = NULL, *key = NULL;
        if (k == 1) {
            if (ddb_obj(c, op, "Item", &item)) return -1;
            snprintf(p, sizeof p, "transactItems.%zu.member.put.item", i + 1);
            if (!item) ddb_verr(c, p, NULL, "Member must not be null");
        } else {
            snprintf(p, sizeof p, "transactItems.%zu.member.%s.key", i + 1, kpath[k]);
            if (ddb_key(c, op, "Key", p, &key)) return -1;
        }
        const char *ce, *ue = NULL;
        snprintf(p, sizeof p, "transactItems.%zu.member.%s.conditionExpression", i + 1, kpath[k]);
        if (ddb_str(c, op, "ConditionExpression", p, k == 0, 0, SIZE_MAX, DDB_PAT_NONE, &ce)) return -1;
        if (k == 3) {
            snprintf(p, sizeof p, "transactItems.%zu.member.update.updateExpression", i + 1);
            if (ddb_str(c, op, "UpdateExpression", p, DDB_REQ, 0, SIZE_MAX, DDB_PAT_NONE, &ue)) return -1;
        }
        if (ddb_verr_flush(c)) return -1;
        if (ddb_exprs_init(c, op, ce || ue, &st->xs[i])) return -1;
        tbl_expr_t *cond = NULL, *upd = NULL;
        if (ddb_expr(c, &st->xs[i], op, "UpdateExpression", TBL_EXPR_UPDATE, &upd) ||
            ddb_expr(c, &st->xs[i], op, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
            ddb_exprs_check(c, &st->xs[i]))
            return -1;
        if (item && ddb_item(c, item, "Item")) return -1;
        w->op = k == 0 ? TBL_OP_CHECK : k == 1 ? TBL_OP_PUT : k == 2 ? TBL_OP_DELETE : TBL_OP_UPDATE;
        w->table = st->tables[i];
        w->item = item;
        w->key = key;
        w->update = upd;
        w->cond = cond;
        w->return_old_on_fail = rvf;
        w->req_bytes = 1024;
    }
    /* Then what needs the tables: every action's items and expressions are checked first (a
       malformed expression on a later action is reported ahead of a missing table on an earlier
       one, as DynamoDB does). */
    for (size_t i = 0; i < n; i++) {
        char hash[DDB_NAME_MAX], range[DDB_NAME_MAX];
        if (st->w[i].op != TBL_OP_PUT) continue;
        if (ddb_key_names(c, st->tables[i], hash, range) ||
            ddb_key_empty(c, st->w[i].item, hash, range))
            return -1;
    }
    st->txn.w = st->w;
    st->txn.n = n;
    if (token) {
        st->txn.token = token;
        json_t *copy = json_copy(in);
        json_object_del(copy, "ClientRequestToken");
        json_object_del(copy, "ReturnConsumedCapacity");
        json_object_del(copy, "ReturnItemCollectionMetrics");
        tbl_request_digest(copy, st->txn.digest);
        json_decref(copy);
    }
    return ddb_submit(c, st, ddb_txn_finish);
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
