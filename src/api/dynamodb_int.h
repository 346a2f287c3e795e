/*
 * dynamodb_int.h -- private to the DynamoDB adapter (src/api/dynamodb*.c): what its files share.
 * Not API: api.h declares the adapter's entry points (api_dynamodb_handle, api_dynamodb_call).
 *
 * The adapter is split along its seams:
 *   dynamodb.c          dispatch (the operation table), errors, response output and sealing,
 *                       capacity arithmetic, in-process calls
 *   dynamodb_input.c    reading and validating members; expressions; legacy parameters
 *   dynamodb_control.c  tables: Create/Describe/Update/Delete/ListTables, TTL, tags
 *   dynamodb_read.c     GetItem, Query, Scan, BatchGetItem, TransactGetItems
 *   dynamodb_write.c    PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems
 *
 * Names here carry ddb_ / DDB_: cross-file internals of this adapter only.
 *
 * Handlers: int fn(ddb_call_t *c) -- 0 when the response is written (to c->out), -1 when an error
 * was answered (ddb_fail and friends), 1 when the request was deferred (a write submitted; its
 * req->finish writes the response).  Helpers that return int follow the same rule: non-zero means
 * the error has been answered and the handler returns -1.  All run on the network thread.
 */
#ifndef API_DYNAMODB_INT_H
#define API_DYNAMODB_INT_H

#include <jansson.h>
#include <stddef.h>

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

/* input helpers: member required or optional; name pattern */
enum { DDB_OPT = 0, DDB_REQ = 1 };
enum { DDB_PAT_NONE, DDB_PAT_NAME };

typedef struct ddb_exprs {
    json_t *names, *values;          /* borrowed from the request */
    tbl_expr_usage_t usage;
    tbl_expr_t *e[6];
    int n;
} ddb_exprs_t;

enum { DDB_LG_EXPECTED = 1, DDB_LG_UPDATES = 2, DDB_LG_ATG = 4, DDB_LG_KEYCOND = 8, DDB_LG_QFILTER = 16,
       DDB_LG_SFILTER = 32 };

typedef struct ddb_idx_units {
    const char *name;
    int local;
    double units;
} ddb_idx_units_t;

/* Per-table capacity accumulation for multi-table responses. */
typedef struct ddb_tcap {
    const char *table;
    double units;
} ddb_tcap_t;

/* ---- errors, output, capacity (dynamodb.c) --------------------------------------------------- */

int ddb_fail(ddb_call_t *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ddb_invalid(ddb_call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ddb_error_req(net_req_t *req, int code, const tr_err *err, const char *table);
int ddb_error(ddb_call_t *c, int code, const tr_err *err);
void ddb_verr(ddb_call_t *c, const char *member, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ddb_verr_flush(ddb_call_t *c);
void ddb_put_json(tr_buf *b, const json_t *v);
void ddb_put_str(tr_buf *b, const char *s);
void ddb_put_ts(tr_buf *b, int64_t ms);
void ddb_put_arn(ddb_call_t *c, tr_buf *b, const char *table, const char *index);
void ddb_seal(net_req_t *req);
double ddb_read_units(size_t bytes, int consistent, int txn);
double ddb_write_units(size_t old_size, size_t new_size, int txn);
void ddb_put_capacity(tr_buf *b, int mode, const char *table, double table_units,
                      const ddb_idx_units_t *idx, size_t n_idx);
double ddb_index_write_units(const tbl_index_info_t *ix, const json_t *item);
void ddb_tcap_add(ddb_tcap_t *t, size_t *n, const char *table, double u);
void ddb_put_tcaps(tr_buf *b, const char *lead, int mode, const ddb_tcap_t *t, size_t n);

/* ---- input helpers (dynamodb_input.c) -------------------------------------------------------- */

int ddb_name_ok(const char *s, size_t n);
int ddb_badtype(ddb_call_t *c, const char *name, const json_t *v, const char *want);
size_t ddb_chars(const char *s, size_t n);
int ddb_str(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            size_t min, size_t max, int pat, const char **out);
int ddb_int(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
            long long min, long long max, long long *out, int *present);
int ddb_bool(ddb_call_t *c, const json_t *obj, const char *name, int *out, int *present);
int ddb_enum(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
             const char *const *vals, size_t n, const char *set_text, int *idx);
int ddb_obj(ddb_call_t *c, const json_t *obj, const char *name, json_t **out);
int ddb_arr(ddb_call_t *c, const json_t *obj, const char *name, json_t **out);
void ddb_request_items_table(ddb_call_t *c, const char *tname);
int ddb_arn_owned(ddb_call_t *c, const char *arn);
int ddb_table(ddb_call_t *c, const json_t *obj, const char *name, const char *path, int req,
              char out[DDB_NAME_MAX]);
int ddb_rcc(ddb_call_t *c, const json_t *obj, int *mode);
int ddb_ricm(ddb_call_t *c, const json_t *obj);
int ddb_rvoccf(ddb_call_t *c, const json_t *obj, const char *path, int *all_old);
int ddb_av_map(ddb_call_t *c, json_t *m, const char *name);
int ddb_item(ddb_call_t *c, json_t *item, const char *name);
int ddb_key_empty(ddb_call_t *c, const json_t *m, const char *hash, const char *range);
void ddb_exprs_free(ddb_exprs_t *x);
int ddb_exprs_init(ddb_call_t *c, json_t *obj, int any_expr, ddb_exprs_t *x);
int ddb_expr(ddb_call_t *c, ddb_exprs_t *x, json_t *obj, const char *member, int kind,
             tbl_expr_t **out);
int ddb_exprs_check(ddb_call_t *c, ddb_exprs_t *x);
int ddb_legacy(ddb_call_t *c, const json_t *obj, const char *const *legacy,
               const char *const *modern, size_t n, const char *const *exprs, size_t n_exprs);
int ddb_legacy_rewrite(ddb_call_t *c, json_t *obj, int mask);
int ddb_key(ddb_call_t *c, json_t *obj, const char *name, const char *path, json_t **out);
int ddb_key_names(ddb_call_t *c, const char *table, char *hash, char *range);
char *ddb_key_text(const json_t *key);
int ddb_has_dup(char **texts, size_t n);

/* ---- control-plane handlers (dynamodb_control.c) --------------------------------------------- */

int ddb_create_table(ddb_call_t *c);
int ddb_describe_table(ddb_call_t *c);
int ddb_delete_table(ddb_call_t *c);
int ddb_list_tables(ddb_call_t *c);
int ddb_update_table(ddb_call_t *c);
int ddb_update_ttl(ddb_call_t *c);
int ddb_describe_ttl(ddb_call_t *c);
int ddb_tag_resource(ddb_call_t *c);
int ddb_untag_resource(ddb_call_t *c);
int ddb_list_tags(ddb_call_t *c);

/* ---- read handlers (dynamodb_read.c) --------------------------------------------------------- */

int ddb_get_item(ddb_call_t *c);
int ddb_query(ddb_call_t *c);
int ddb_scan(ddb_call_t *c);
int ddb_batch_get(ddb_call_t *c);
int ddb_transact_get(ddb_call_t *c);

/* ---- write handlers (dynamodb_write.c) ------------------------------------------------------- */

int ddb_put_item(ddb_call_t *c);
int ddb_update_item(ddb_call_t *c);
int ddb_delete_item(ddb_call_t *c);
int ddb_batch_write(ddb_call_t *c);
int ddb_transact_write(ddb_call_t *c);

#endif
