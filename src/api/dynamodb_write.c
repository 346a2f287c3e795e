/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb_write.c -- the DynamoDB adapter's writes: PutItem, UpdateItem, DeleteItem,
 * BatchWriteItem, TransactWriteItems.
 *
 * A write handler validates its input (dynamodb_input.c), fills a ddb_wr_t with the engine's
 * tbl_write_t requests and submits them; the engine's writer thread acknowledges after its group
 * commit (ddb_write_done) and the response is built back on the network thread (req->finish).
 * Dispatch and errors: dynamodb.c; the reads: dynamodb_read.c; declarations: dynamodb_int.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamodb_int.h"

/* ---- deferred writes: state shared by PutItem .. TransactWriteItems ------------------------ */

enum { DDB_K_SINGLE, DDB_K_BATCH, DDB_K_TXN };

typedef struct ddb_wr ddb_wr_t;

/* The response of a deferred write, built on the network thread from the engine's results
 * (errors included); ddb_write_finish resets req->out before and seals it after. */
typedef void (*ddb_body_fn)(net_req_t *req, ddb_wr_t *st);

struct ddb_wr {
    api_ctx_t *ctx;
    json_t *in;                    /* the request body (owned; the writes borrow from it) */
    int kind;                      /* DDB_K_* */
    ddb_exprs_t *xs;               /* expressions: one set per write (n of them) */
    tbl_write_t *w;
    size_t n;
    char (*tables)[DDB_NAME_MAX];  /* table of each write */
    json_t **wreq;                 /* BatchWriteItem: each write's WriteRequest (borrowed) */
    tbl_txn_t txn;
    int rc;                        /* the callback's rc */
    int rcc;                       /* DDB_RCC_* */
    int user_rv;                   /* single writes: the ReturnValues asked for */
    tbl_table_info_t info;         /* single writes with INDEXES: the table's indexes */
    int have_info;
    ddb_body_fn body;              /* the operation's response */
};

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

static ddb_wr_t *ddb_wr_new(api_call_t *c, int kind, size_t n) {
    ddb_wr_t *st = tr_xcalloc(1, sizeof *st);
    st->ctx = c->ctx;
    st->kind = kind;
    st->n = n;
    st->xs = tr_xcalloc(n, sizeof *st->xs);
    st->w = tr_xcalloc(n, sizeof *st->w);
    st->tables = tr_xcalloc(n, sizeof *st->tables);
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

/* ConsumedCapacity of st's writes, after lead: a single-item write's object (with the index
 * units the adapter can count), or the per-table list of BatchWriteItem (the writes that were
 * done) and TransactWriteItems (all of them, at double units). */
static void ddb_put_write_capacity(tr_buf *b, ddb_wr_t *st, const char *lead) {
    if (st->kind == DDB_K_SINGLE) {
        const tbl_write_t *w = &st->w[0];
        ddb_idx_units_t idx[TBL_MAX_GSI + TBL_MAX_LSI];
        size_t n_idx = ddb_index_units(st, w, idx);
        tr_buf_puts(b, lead);
        tr_buf_puts(b, "\"ConsumedCapacity\":");
        ddb_put_capacity(b, st->rcc, st->tables[0], ddb_write_units(w->old_size, w->new_size, 0),
                         idx, n_idx);
        return;
    }
    int txn = st->kind == DDB_K_TXN;
    ddb_tcap_t *caps = tr_xcalloc(st->n + 1, sizeof *caps);
    size_t n_caps = 0;
    for (size_t i = 0; i < st->n; i++)
        if (txn || !st->w[i].rc)
            ddb_tcap_add(caps, &n_caps, st->tables[i],
                         ddb_write_units(st->w[i].old_size, st->w[i].new_size, txn));
    ddb_put_tcaps(b, lead, st->rcc, caps, n_caps);
    free(caps);
}

/* req->finish of every deferred write: the operation's body, then x-amz-crc32. */
static void ddb_write_finish(net_req_t *req) {
    ddb_wr_t *st = req->state;
    tr_buf_reset(&req->out);
    st->body(req, st);
    ddb_seal(req);
}

/* Queue st's writes (or transaction), whose response body() builds once the engine has
 * committed them; NET_DEFER, or API_FAIL with the error answered. */
static int ddb_submit(api_call_t *c, ddb_wr_t *st, ddb_body_fn body) {
    tr_err err;
    tr_err_clear(&err);
    st->body = body;
    int rc = st->kind == DDB_K_TXN
                 ? tbl_txn_submit(c->ctx->tbl, &st->txn, ddb_write_done, c->req, &err)
                 : tbl_write_submit(c->ctx->tbl, st->w, st->n, ddb_write_done, c->req, &err);
    if (rc) return api_error(c, rc, &err);
    c->req->finish = ddb_write_finish;
    return NET_DEFER;
}

/* ---- single-item operations ---------------------------------------------------------------- */

static const char *const ddb_rv_vals[] = {"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW",
                                          "UPDATED_NEW"};
#define DDB_RV_SET "[NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW]"

static int ddb_want_info(api_call_t *c, ddb_wr_t *st, const char *table) {
    if (st->rcc != DDB_RCC_INDEXES) return 0;
    tr_err err;
    tr_err_clear(&err);
    int e = tbl_table_describe(c->ctx->tbl, table, &st->info, &err);
    if (e) return api_error(c, e, &err);
    st->have_info = st->info.n_indexes > 0;
    if (!st->have_info) tbl_table_info_free(&st->info);
    return 0;
}

/* PutItem's, UpdateItem's and DeleteItem's response: the ReturnValues asked for and the
 * capacity, or the error (ConditionalCheckFailedException with the old item when asked). */
static void ddb_single_body(net_req_t *req, ddb_wr_t *st) {
    tbl_write_t *w = &st->w[0];
    int rc = w->rc ? w->rc : st->rc;
    if (rc == TR_ECONDITION) {
        ddb_put_ccf(req, w->old_item);
        return;
    }
    if (rc) {
        ddb_error_req(req, st->ctx, rc, &w->err);
        return;
    }
    tr_buf *b = &req->out;
    tr_buf_puts(b, "{");
    int any = 0;
    if (w->attrs && st->user_rv != TBL_RV_NONE && json_object_size(w->attrs)) {
        tr_buf_puts(b, "\"Attributes\":");
        ddb_put_json(b, w->attrs);
        any = 1;
    }
    if (st->rcc) ddb_put_write_capacity(b, st, any ? "," : "");
    tr_buf_puts(b, "}");
}

/* PutItem, UpdateItem and DeleteItem: one path.  op is TBL_OP_PUT, TBL_OP_UPDATE or
 * TBL_OP_DELETE; each reads its own members (Item or Key; UpdateItem its UpdateExpression and
 * AttributeUpdates) in DynamoDB's order of checks.  NET_DEFER when submitted, API_FAIL with the
 * error answered. */
static int ddb_single_write(api_call_t *c, int op) {
    static const char *const legacy[] = {"Expected", "ConditionalOperator"};
    static const char *const modern[] = {"ConditionExpression", "ConditionExpression"};
    static const char *const exprs[] = {"ConditionExpression"};
    static const char *const u_legacy[] = {"AttributeUpdates", "Expected", "ConditionalOperator"};
    static const char *const u_modern[] = {"UpdateExpression", "ConditionExpression",
                                           "ConditionExpression"};
    static const char *const u_exprs[] = {"UpdateExpression", "ConditionExpression"};
    int update = op == TBL_OP_UPDATE;
    char table[DDB_NAME_MAX];
    json_t *item = NULL, *key = NULL;
    int rv, rcc, rvf;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return API_FAIL;
    if (op == TBL_OP_PUT) {
        if (ddb_obj(c, c->in, "Item", &item)) return API_FAIL;
        if (!item) api_verr(c, "item", NULL, "Member must not be null");
    } else if (ddb_key(c, c->in, "Key", "key", &key)) {
        return API_FAIL;
    }
    if (ddb_enum(c, c->in, "ReturnValues", "returnValues", DDB_OPT, ddb_rv_vals, 5, DDB_RV_SET,
                 &rv))
        return API_FAIL;
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return API_FAIL;
    if (ddb_rvoccf(c, c->in, "returnValuesOnConditionCheckFailure", &rvf)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    if (ddb_legacy_rewrite(c, c->in, update ? DDB_LG_EXPECTED | DDB_LG_UPDATES : DDB_LG_EXPECTED))
        return API_FAIL;
    if (update ? ddb_legacy(c, c->in, u_legacy, u_modern, 3, u_exprs, 2)
               : ddb_legacy(c, c->in, legacy, modern, 2, exprs, 1))
        return API_FAIL;
    if (!update && rv > TBL_RV_ALL_OLD)
        return ddb_invalid(c, "ReturnValues can only be ALL_OLD or NONE");
    ddb_exprs_t x;
    int any = json_object_get(c->in, "ConditionExpression") ||
              (update && json_object_get(c->in, "UpdateExpression"));
    if (ddb_exprs_init(c, c->in, any, &x)) return API_FAIL;
    tbl_expr_t *upd = NULL, *cond = NULL;
    if ((update && ddb_expr(c, &x, c->in, "UpdateExpression", TBL_EXPR_UPDATE, &upd)) ||
        ddb_expr(c, &x, c->in, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
        ddb_exprs_check(c, &x) || (item && ddb_item(c, item, "Item"))) {
        ddb_exprs_free(&x);
        return API_FAIL;
    }
    if (item) {
        char hash[DDB_NAME_MAX], range[DDB_NAME_MAX];
        if (ddb_key_names(c, table, hash, range) || ddb_key_empty(c, item, hash, range)) {
            ddb_exprs_free(&x);
            return API_FAIL;
        }
    }
    ddb_wr_t *st = ddb_wr_new(c, DDB_K_SINGLE, 1);
    st->xs[0] = x;
    st->rcc = rcc;
    st->user_rv = rv < 0 ? TBL_RV_NONE : rv;
    memcpy(st->tables[0], table, sizeof table);
    tbl_write_t *w = &st->w[0];
    w->op = op;
    w->table = st->tables[0];
    w->item = item;
    w->key = key;
    w->update = upd;
    w->cond = cond;
    w->return_values = st->user_rv;
    w->return_old_on_fail = rvf;
    w->req_bytes = c->req->body_len;
    if (ddb_want_info(c, st, table)) return API_FAIL;
    /* index capacity is counted on the item the adapter sees: UpdateItem's new one, DeleteItem's
       old one (ddb_index_units) */
    if (st->have_info && update && st->user_rv == TBL_RV_NONE) w->return_values = TBL_RV_ALL_NEW;
    if (st->have_info && op == TBL_OP_DELETE) w->return_values = TBL_RV_ALL_OLD;
    return ddb_submit(c, st, ddb_single_body);
}

int ddb_put_item(api_call_t *c) { return ddb_single_write(c, TBL_OP_PUT); }
int ddb_update_item(api_call_t *c) { return ddb_single_write(c, TBL_OP_UPDATE); }
int ddb_delete_item(api_call_t *c) { return ddb_single_write(c, TBL_OP_DELETE); }

/* ---- BatchWriteItem ------------------------------------------------------------------------ */

/* BatchWriteItem's response: the writes the engine could not do are UnprocessedItems. */
static void ddb_batch_body(net_req_t *req, ddb_wr_t *st) {
    tr_buf *b = &req->out;
    /* a write that failed for a reason other than capacity/storage fails the request */
    for (size_t i = 0; i < st->n; i++) {
        int rc = st->w[i].rc;
        if (rc == TR_EVALIDATION || rc == TR_ENOTFOUND || rc == TR_EINVAL) {
            ddb_error_req(req, st->ctx, rc, &st->w[i].err);
            return;
        }
    }
    json_t *unprocessed = json_object();
    for (size_t i = 0; i < st->n; i++) {
        if (!st->w[i].rc) continue;
        json_t *list = json_object_get(unprocessed, st->tables[i]);
        if (!list) {
            list = json_array();
            json_object_set_new(unprocessed, st->tables[i], list);
        }
        json_array_append(list, st->wreq[i]);
    }
    tr_buf_puts(b, "{\"UnprocessedItems\":");
    ddb_put_json(b, unprocessed);
    if (st->rcc) ddb_put_write_capacity(b, st, ",");
    tr_buf_puts(b, "}");
    json_decref(unprocessed);
}

int ddb_batch_write(api_call_t *c) {
    json_t *ri;
    int rcc;
    if (ddb_obj(c, c->in, "RequestItems", &ri)) return API_FAIL;
    if (!ri) api_verr(c, "requestItems", NULL, "Member must not be null");
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return API_FAIL;
    size_t n_tables = ri ? json_object_size(ri) : 0;
    if (ri && (n_tables < 1 || n_tables > 25))
        api_verr(c, "requestItems", "{...}", "Member must have length %s",
                 n_tables < 1 ? "greater than or equal to 1" : "less than or equal to 25");
    const char *tname;
    json_t *list;
    size_t total = 0;
    json_object_foreach(ri, tname, list) {
        if (!json_is_array(list)) return ddb_badtype(c, "RequestItems", list, "List");
        size_t nl = json_array_size(list);
        total += nl;
        if (nl < 1 || nl > 25)
            api_verr(
                c, "requestItems", "{...}",
                "Map value must satisfy constraint: [Member must "
                "have length less than or equal to 25, Member must have length greater than or "
                "equal to 1]");
        ddb_request_items_table(c, tname);
    }
    if (api_verr_flush(c)) return API_FAIL;
    if (total > TBL_MAX_BATCH_WRITE)
        return ddb_invalid(c, "Too many items requested for the BatchWriteItem call");

    /* validate everything before anything is queued */
    char **texts = tr_xcalloc(total, sizeof *texts);
    int rc = API_FAIL;
    size_t n = 0;
    json_object_foreach(ri, tname, list) {
        char hash[DDB_NAME_MAX], range[DDB_NAME_MAX];
        int htype, rtype;
        tr_err kerr;
        tr_err_clear(&kerr);
        int krc = tbl_key_schema(c->ctx->tbl, tname, NULL, hash, range, &htype, &rtype, &kerr);
        if (krc) {
            api_error(c, krc, &kerr);
            goto fail;
        }
        size_t first = n;
        for (size_t i = 0; i < json_array_size(list); i++, n++) {
            json_t *wr = json_array_get(list, i), *put, *del;
            if (!json_is_object(wr)) {
                ddb_badtype(c, "WriteRequest", wr, "Structure");
                goto fail;
            }
            if (ddb_obj(c, wr, "PutRequest", &put) || ddb_obj(c, wr, "DeleteRequest", &del))
                goto fail;
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
                    ddb_invalid(c,
                                "1 validation error detected: Value null at "
                                "'requestItems.%s.member.putRequest.item' failed to satisfy "
                                "constraint: Member must not be null",
                                tname);
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
                    ddb_invalid(c,
                                "1 validation error detected: Value null at "
                                "'requestItems.%s.member.deleteRequest.key' failed to satisfy "
                                "constraint: Member must not be null",
                                tname);
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
    st->wreq = tr_xcalloc(total, sizeof *st->wreq);
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
    return ddb_submit(c, st, ddb_batch_body);
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

/* TransactWriteItems' response: capacity, or why the transaction was cancelled. */
static void ddb_txn_body(net_req_t *req, ddb_wr_t *st) {
    tbl_txn_t *t = &st->txn;
    int rc = t->rc ? t->rc : st->rc;
    tr_buf *b = &req->out;
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
        snprintf(
            msg, sizeof msg,
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
        ddb_error_req(req, st->ctx, rc, &t->err);
    } else {
        tr_buf_puts(b, "{");
        if (st->rcc) ddb_put_write_capacity(b, st, "");
        tr_buf_puts(b, "}");
    }
}

int ddb_transact_write(api_call_t *c) {
    static const char *const kinds[] = {"ConditionCheck", "Put", "Delete", "Update"};
    static const char *const kpath[] = {"conditionCheck", "put", "delete", "update"};
    json_t *items;
    int rcc;
    const char *token;
    size_t n;
    if (ddb_transact_items(c, &items, &n)) return API_FAIL;
    if (ddb_rcc(c, c->in, &rcc) || ddb_ricm(c, c->in)) return API_FAIL;
    if (ddb_str(c, c->in, "ClientRequestToken", "clientRequestToken", DDB_OPT, 1, TBL_MAX_TOKEN,
                DDB_PAT_NONE, &token))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    for (size_t i = 0; i < n; i++) {
        json_t *el = json_array_get(items, i);
        if (!json_is_object(el)) return ddb_badtype(c, "TransactItems", el, "Structure");
        int count = 0;
        for (int k = 0; k < 4; k++) {
            json_t *v = json_object_get(el, kinds[k]);
            if (v && !json_is_null(v)) count++;
        }
        if (count != 1)
            return ddb_invalid(
                c, "TransactItems can only contain one of Check, Put, Update or Delete");
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
        if (ddb_table(c, op, "TableName", p, DDB_REQ, st->tables[i])) return API_FAIL;
        int rvf;
        snprintf(p, sizeof p, "transactItems.%zu.member.%s.returnValuesOnConditionCheckFailure",
                 i + 1, kpath[k]);
        if (ddb_rvoccf(c, op, p, &rvf)) return API_FAIL;
        json_t *item = NULL, *key = NULL;
        if (k == 1) {
            if (ddb_obj(c, op, "Item", &item)) return API_FAIL;
            snprintf(p, sizeof p, "transactItems.%zu.member.put.item", i + 1);
            if (!item) api_verr(c, p, NULL, "Member must not be null");
        } else {
            snprintf(p, sizeof p, "transactItems.%zu.member.%s.key", i + 1, kpath[k]);
            if (ddb_key(c, op, "Key", p, &key)) return API_FAIL;
        }
        const char *ce, *ue = NULL;
        snprintf(p, sizeof p, "transactItems.%zu.member.%s.conditionExpression", i + 1, kpath[k]);
        if (ddb_str(c, op, "ConditionExpression", p, k == 0, 0, SIZE_MAX, DDB_PAT_NONE, &ce))
            return API_FAIL;
        if (k == 3) {
            snprintf(p, sizeof p, "transactItems.%zu.member.update.updateExpression", i + 1);
            if (ddb_str(c, op, "UpdateExpression", p, DDB_REQ, 0, SIZE_MAX, DDB_PAT_NONE, &ue))
                return API_FAIL;
        }
        if (api_verr_flush(c)) return API_FAIL;
        if (ddb_exprs_init(c, op, ce || ue, &st->xs[i])) return API_FAIL;
        tbl_expr_t *cond = NULL, *upd = NULL;
        if (ddb_expr(c, &st->xs[i], op, "UpdateExpression", TBL_EXPR_UPDATE, &upd) ||
            ddb_expr(c, &st->xs[i], op, "ConditionExpression", TBL_EXPR_CONDITION, &cond) ||
            ddb_exprs_check(c, &st->xs[i]))
            return API_FAIL;
        if (item && ddb_item(c, item, "Item")) return API_FAIL;
        w->op = k == 0   ? TBL_OP_CHECK
                : k == 1 ? TBL_OP_PUT
                : k == 2 ? TBL_OP_DELETE
                         : TBL_OP_UPDATE;
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
            return API_FAIL;
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
    return ddb_submit(c, st, ddb_txn_body);
}
