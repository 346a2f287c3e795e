/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb_int.h -- private to the DynamoDB adapter (src/api/dynamodb*.c): what its files share.
 * Not API: the adapter is the kit service api_dynamodb_service (kit.h; api.c routes to it) and
 * api_dynamodb_call (api.h), the in-process path of native functions.
 *
 * The adapter is split along its seams:
 *   dynamodb.c          the service: operation table, error map, namespaced __type, x-amz-crc32
 *                       sealing; response output helpers, capacity arithmetic, in-process calls
 *   dynamodb_input.c    reading and validating members; expressions; legacy parameters
 *   dynamodb_control.c  tables: Create/Describe/Update/Delete/ListTables, TTL, tags
 *   dynamodb_read.c     GetItem, Query, Scan, BatchGetItem, TransactGetItems
 *   dynamodb_write.c    PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems
 *
 * Names here carry ddb_ / DDB_: cross-file internals of this adapter only.
 *
 * Handlers are the kit's (api_handler_fn): NET_DONE when the response is written (to c->out),
 * API_FAIL when an error was answered (api_fail, api_error, ddb_invalid, api_verr_flush ...),
 * NET_DEFER when the request was deferred (a write submitted; its req->finish writes and seals
 * the response).  Helpers that return int return 0 or API_FAIL (answered: the handler returns
 * API_FAIL).  Errors in DynamoDB's words go through the kit (api_fail, with the short type name:
 * the service namespaces it); constraint violations are accumulated with api_verr.  All run on
 * the network thread, except the deferred finish (wherever the engine resumes the request).
 */
#ifndef API_DYNAMODB_INT_H
#define API_DYNAMODB_INT_H

#include <jansson.h>
#include <stddef.h>

#include "api/api.h"
#include "api/kit.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "table/tbl.h"

#define DDB_JSON "application/x-amz-json-1.0"      /* content type of requests and responses */
#define DDB_NS "com.amazonaws.dynamodb.v20120810#" /* __type namespace of DynamoDB's own errors */
#define DDB_MAX_BATCH_GET_BYTES (16u * 1024 * 1024) /* BatchGetItem answers at most this much */
#define DDB_NAME_MAX (TBL_MAX_NAME + 1) /* a table or index name and its NUL */

/* ReturnConsumedCapacity */
enum { DDB_RCC_NONE = 0, DDB_RCC_TOTAL, DDB_RCC_INDEXES };

/* input helpers: member required or optional; name pattern */
enum { DDB_OPT = 0, DDB_REQ = 1 };
enum { DDB_PAT_NONE, DDB_PAT_NAME };

/* The expressions of one request (or one TransactWriteItems action): parsed against its
 * ExpressionAttributeNames/Values, whose use is checked across all of them (ddb_exprs_check).
 * ddb_exprs_init fills it; ddb_exprs_free frees the parsed expressions (not the borrowed maps). */
typedef struct ddb_exprs {
    json_t *names, *values; /* borrowed from the request */
    tbl_expr_usage_t usage;
    tbl_expr_t *e[6];
    int n;
} ddb_exprs_t;

/* ddb_legacy_rewrite's mask: which legacy members an operation takes */
enum {
    DDB_LG_EXPECTED = 1,
    DDB_LG_UPDATES = 2,
    DDB_LG_ATG = 4,
    DDB_LG_KEYCOND = 8,
    DDB_LG_QFILTER = 16,
    DDB_LG_SFILTER = 32
};

/* Capacity of one index in a ConsumedCapacity object (ddb_put_capacity); name borrowed. */
typedef struct ddb_idx_units {
    const char *name;
    int local;
    double units;
} ddb_idx_units_t;

/* Per-table capacity accumulation for multi-table responses (ddb_tcap_add: the caller sizes the
 * array for one entry per table; table borrowed). */
typedef struct ddb_tcap {
    const char *table;
    double units;
} ddb_tcap_t;

/* ---- errors, output, capacity (dynamodb.c) --------------------------------------------------- */

/* ValidationException with this message (DynamoDB's sentences for semantic problems).  Returns
 * API_FAIL. */
int ddb_invalid(api_call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* api_error for a control-plane call on `table`: "not found" names the table, as DynamoDB
 * spells it.  Returns API_FAIL. */
int ddb_error_table(api_call_t *c, int code, const tr_err *err, const char *table);
/* api_error on a deferred write's request, whose api_call_t is gone (req->finish). */
void ddb_error_req(net_req_t *req, api_ctx_t *ctx, int code, const tr_err *err);
/* Response output: a JSON value (numbers as DynamoDB writes them), a JSON string, a timestamp
 * in epoch seconds with milliseconds, a table or index ARN. */
void ddb_put_json(tr_buf *b, const json_t *v);
void ddb_put_str(tr_buf *b, const char *s);
void ddb_put_ts(tr_buf *b, int64_t ms);
void ddb_put_arn(api_call_t *c, tr_buf *b, const char *table, const char *index);
/* x-amz-crc32 of the final body: the service's seal hook, and the end of every deferred write. */
void ddb_seal(net_req_t *req);
/* Capacity units as DynamoDB counts them (see dynamodb.c's opening comment). */
double ddb_read_units(size_t bytes, int consistent, int txn);
double ddb_write_units(size_t old_size, size_t new_size, int txn);
/* One ConsumedCapacity object for table (mode DDB_RCC_*), with n_idx index entries. */
void ddb_put_capacity(tr_buf *b, int mode, const char *table, double table_units,
                      const ddb_idx_units_t *idx, size_t n_idx);
double ddb_index_write_units(const tbl_index_info_t *ix, const json_t *item);
/* Accumulate u for table; write lead then "ConsumedCapacity":[...] of the n entries. */
void ddb_tcap_add(ddb_tcap_t *t, size_t *n, const char *table, double u);
void ddb_put_tcaps(tr_buf *b, const char *lead, int mode, const ddb_tcap_t *t, size_t n);

/* ---- input helpers (dynamodb_input.c) -------------------------------------------------------- */

/* Member readers: obj[name], `path` the member as validation messages name it, req DDB_REQ or
 * DDB_OPT, pat DDB_PAT_*.  A member of the wrong JSON type answers SerializationException
 * (ddb_badtype, DynamoDB's words; API_FAIL); a constraint violation is recorded (api_verr) and
 * the handler flushes them (api_verr_flush).  Outputs borrow from obj; absent: NULL / not
 * present.  ddb_table also takes a table ARN (this account and region only: ddb_arn_owned). */
/* s[0..n) matches [a-zA-Z0-9_.-]+; its length in characters (UTF-8), as AWS counts. */
int ddb_name_ok(const char *s, size_t n);
size_t ddb_chars(const char *s, size_t n);
/* SerializationException for obj member `name` of the wrong JSON type (want: "String", "Map",
 * "List", "Structure", ...).  Returns API_FAIL. */
int ddb_badtype(api_call_t *c, const char *name, const json_t *v, const char *want);
int ddb_str(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            size_t min, size_t max, int pat, const char **out);
int ddb_int(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            long long min, long long max, long long *out, int *present);
int ddb_bool(api_call_t *c, const json_t *obj, const char *name, int *out, int *present);
int ddb_enum(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
             const char *const *vals, size_t n, const char *set_text, int *idx);
int ddb_obj(api_call_t *c, const json_t *obj, const char *name, json_t **out);
int ddb_arr(api_call_t *c, const json_t *obj, const char *name, json_t **out);
/* Batch* RequestItems keys and TransactItems: constraints recorded. */
void ddb_request_items_table(api_call_t *c, const char *tname);
int ddb_transact_items(api_call_t *c, json_t **items, size_t *n);
int ddb_arn_owned(api_call_t *c, const char *arn);
int ddb_table(api_call_t *c, const json_t *obj, const char *name, const char *path, int req,
              char out[DDB_NAME_MAX]);
/* ReturnConsumedCapacity (*mode DDB_RCC_*), ReturnItemCollectionMetrics (checked only),
 * ReturnValuesOnConditionCheckFailure (*all_old). */
int ddb_rcc(api_call_t *c, const json_t *obj, int *mode);
int ddb_ricm(api_call_t *c, const json_t *obj);
int ddb_rvoccf(api_call_t *c, const json_t *obj, const char *path, int *all_old);
/* Attribute values: a map of them (numbers canonicalised in place), a whole item (size checked),
 * empty key strings/binaries refused, a Key member (all three). */
int ddb_av_map(api_call_t *c, json_t *m, const char *name);
int ddb_item(api_call_t *c, json_t *item, const char *name);
int ddb_key_empty(api_call_t *c, const json_t *m, const char *hash, const char *range);
/* Expressions: init from obj's ExpressionAttributeNames/Values (any_expr: obj has an
 * expression); parse obj[member] as kind (*out NULL when absent; freed with the set); check that
 * every name and value is used. */
void ddb_exprs_free(ddb_exprs_t *x);
int ddb_exprs_init(api_call_t *c, json_t *obj, int any_expr, ddb_exprs_t *x);
int ddb_expr(api_call_t *c, ddb_exprs_t *x, json_t *obj, const char *member, int kind,
             tbl_expr_t **out);
int ddb_exprs_check(api_call_t *c, ddb_exprs_t *x);
/* Legacy parameters: refuse legacy[i] mixed with expressions (or alone where it is not
 * translated: use modern[i]); rewrite the members in mask into expressions in place. */
int ddb_legacy(api_call_t *c, const json_t *obj, const char *const *legacy,
               const char *const *modern, size_t n, const char *const *exprs, size_t n_exprs);
int ddb_legacy_rewrite(api_call_t *c, json_t *obj, int mask);
int ddb_key(api_call_t *c, json_t *obj, const char *name, const char *path, json_t **out);
/* The table's key attribute names into hash / range (DDB_NAME_MAX each; range "" when none). */
int ddb_key_names(api_call_t *c, const char *table, char *hash, char *range);
/* Canonical text of a key (malloc'd, caller frees): equal keys, equal texts; ddb_has_dup: is
 * any text repeated among the n (NULLs skipped)? */
char *ddb_key_text(const json_t *key);
int ddb_has_dup(char **texts, size_t n);

/* ---- handlers: one per row of ddb_ops[] (dynamodb.c) ----------------------------------------- */

/* control plane (dynamodb_control.c) */
int ddb_create_table(api_call_t *c);
int ddb_describe_table(api_call_t *c);
int ddb_delete_table(api_call_t *c);
int ddb_list_tables(api_call_t *c);
int ddb_update_table(api_call_t *c);
int ddb_update_ttl(api_call_t *c);
int ddb_describe_ttl(api_call_t *c);
int ddb_tag_resource(api_call_t *c);
int ddb_untag_resource(api_call_t *c);
int ddb_list_tags(api_call_t *c);

/* reads (dynamodb_read.c) */
int ddb_get_item(api_call_t *c);
int ddb_query(api_call_t *c);
int ddb_scan(api_call_t *c);
int ddb_batch_get(api_call_t *c);
int ddb_transact_get(api_call_t *c);

/* writes (dynamodb_write.c), deferred: NET_DEFER once submitted */
int ddb_put_item(api_call_t *c);
int ddb_update_item(api_call_t *c);
int ddb_delete_item(api_call_t *c);
int ddb_batch_write(api_call_t *c);
int ddb_transact_write(api_call_t *c);

#endif
