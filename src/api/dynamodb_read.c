/* SPDX-License-Identifier: Apache-2.0
 *
 * dynamodb_read.c -- the DynamoDB adapter's reads: GetItem, Query, Scan, BatchGetItem,
 * TransactGetItems.
 *
 * Reads run on the network thread (LMDB snapshot reads that never wait) and answer at once, with
 * read capacity computed in dynamodb.c.  Input helpers: dynamodb_input.c; the writes:
 * dynamodb_write.c; declarations: dynamodb_int.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/dynamodb_int.h"

int ddb_get_item(api_call_t *c) {
    static const char *const legacy[] = {"AttributesToGet"};
    static const char *const modern[] = {"ProjectionExpression"};
    static const char *const exprs[] = {"ProjectionExpression"};
    char table[DDB_NAME_MAX];
    json_t *key;
    int consistent, rcc;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return API_FAIL;
    if (ddb_key(c, c->in, "Key", "key", &key)) return API_FAIL;
    if (ddb_bool(c, c->in, "ConsistentRead", &consistent, NULL) || ddb_rcc(c, c->in, &rcc))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    if (ddb_legacy_rewrite(c, c->in, DDB_LG_ATG)) return API_FAIL;
    if (ddb_legacy(c, c->in, legacy, modern, 1, exprs, 1)) return API_FAIL;
    ddb_exprs_t x;
    if (ddb_exprs_init(c, c->in, json_object_get(c->in, "ProjectionExpression") != NULL, &x))
        return API_FAIL;
    tbl_expr_t *proj = NULL;
    int rc = API_FAIL;
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
        api_error(c, g.rc, g.err.msg[0] ? &g.err : &err);
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
    rc = NET_DONE;
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
                if (name && ((hash && !strcmp(name, hash)) ||
                             (range && range[0] && !strcmp(name, range)))) {
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

static int ddb_query_common(api_call_t *c, int scan) {
    static const char *const q_legacy[] = {"KeyConditions", "QueryFilter", "AttributesToGet",
                                           "ConditionalOperator"};
    static const char *const q_modern[] = {"KeyConditionExpression", "FilterExpression",
                                           "ProjectionExpression", "FilterExpression"};
    static const char *const q_exprs[] = {"KeyConditionExpression", "FilterExpression",
                                          "ProjectionExpression"};
    static const char *const s_legacy[] = {"ScanFilter", "AttributesToGet", "ConditionalOperator"};
    static const char *const s_modern[] = {"FilterExpression", "ProjectionExpression",
                                           "FilterExpression"};
    static const char *const s_exprs[] = {"FilterExpression", "ProjectionExpression"};
    char table[DDB_NAME_MAX];
    const char *index;
    int select, consistent, rcc, fwd = 1, has_fwd, has_limit, has_seg, has_total;
    long long limit = 0, seg = 0, total = 0;
    json_t *start;
    if (ddb_table(c, c->in, "TableName", "tableName", DDB_REQ, table)) return API_FAIL;
    if (ddb_str(c, c->in, "IndexName", "indexName", DDB_OPT, 3, 255, DDB_PAT_NAME, &index))
        return API_FAIL;
    if (ddb_enum(c, c->in, "Select", "select", DDB_OPT, ddb_select_vals, 4, DDB_SELECT_SET,
                 &select))
        return API_FAIL;
    if (ddb_int(c, c->in, "Limit", "limit", DDB_OPT, 1, 2147483647LL, &limit, &has_limit))
        return API_FAIL;
    if (ddb_bool(c, c->in, "ConsistentRead", &consistent, NULL) || ddb_rcc(c, c->in, &rcc))
        return API_FAIL;
    if (ddb_obj(c, c->in, "ExclusiveStartKey", &start)) return API_FAIL;
    if (!scan && ddb_bool(c, c->in, "ScanIndexForward", &fwd, &has_fwd)) return API_FAIL;
    if (!scan) fwd = has_fwd ? fwd : 1;
    if (scan) {
        if (ddb_int(c, c->in, "Segment", "segment", DDB_OPT, 0, 999999, &seg, &has_seg))
            return API_FAIL;
        if (ddb_int(c, c->in, "TotalSegments", "totalSegments", DDB_OPT, 1, 1000000, &total,
                    &has_total))
            return API_FAIL;
    }
    if (api_verr_flush(c)) return API_FAIL;
    if (ddb_legacy_rewrite(c, c->in,
                           scan ? (DDB_LG_SFILTER | DDB_LG_ATG)
                                : (DDB_LG_KEYCOND | DDB_LG_QFILTER | DDB_LG_ATG)))
        return API_FAIL;
    if (scan ? ddb_legacy(c, c->in, s_legacy, s_modern, 3, s_exprs, 2)
             : ddb_legacy(c, c->in, q_legacy, q_modern, 4, q_exprs, 3))
        return API_FAIL;
    if (scan) {
        if (has_seg && !has_total)
            return ddb_invalid(c, "The TotalSegments parameter is required but was not present in "
                                  "the request when Segment parameter is present");
        if (has_total && !has_seg)
            return ddb_invalid(c, "The Segment parameter is required but was not present in the "
                                  "request when parameter TotalSegments is present");
        if (has_seg && seg >= total)
            return ddb_invalid(c,
                               "The Segment parameter is zero-based and must be less than "
                               "parameter TotalSegments: Segment: %lld is not less than "
                               "TotalSegments: %lld",
                               seg, total);
    } else if (!json_object_get(c->in, "KeyConditionExpression")) {
        return ddb_invalid(c,
                           "Either the KeyConditions or KeyConditionExpression parameter must be "
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
    if (ddb_exprs_init(c, c->in, any, &x)) return API_FAIL;
    tbl_query_t q;
    memset(&q, 0, sizeof q);
    tbl_expr_t *kc = NULL, *filter = NULL, *proj = NULL;
    tbl_table_info_t info;
    int have_info = 0, rc = API_FAIL;
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
            api_error(c, e, &err);
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
            api_error(c, e, &err);
            goto leave;
        }
        const char *k = ddb_filter_key_attr(json_string_value(json_object_get(c->in,
                                                                              "FilterExpression")),
                                            x.names, hash, range, nb, sizeof nb);
        if (k) {
            ddb_invalid(c,
                        "Filter Expression can only contain non-primary key attributes: Primary "
                        "key attribute: %s",
                        k);
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
        api_error(c, e, q.err.msg[0] ? &q.err : &err);
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
    rc = NET_DONE;
leave:
    tbl_query_free(&q);
    if (have_info) tbl_table_info_free(&info);
    ddb_exprs_free(&x);
    return rc;
}

int ddb_query(api_call_t *c) { return ddb_query_common(c, 0); }
int ddb_scan(api_call_t *c) { return ddb_query_common(c, 1); }

/* ---- batch and transactional reads --------------------------------------------------------- */
static int ddb_get_fail(api_call_t *c, tbl_get_t *g, size_t n, const tr_err *err) {
    for (size_t i = 0; i < n; i++)
        if (g[i].rc) return api_error(c, g[i].rc, g[i].err.msg[0] ? &g[i].err : err);
    return 0;
}

static void ddb_put_got(tr_buf *b, const tbl_get_t *g) {
    if (g->raw) tr_buf_append(b, g->raw, g->raw_len);
    else ddb_put_json(b, g->item);
}

/* The results of n gets and their key texts (the arrays themselves stay the caller's). */
static void ddb_gets_free(tbl_get_t *g, char **texts, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(g[i].raw);
        json_decref(g[i].item);
        free(texts[i]);
    }
}

int ddb_batch_get(api_call_t *c) {
    static const char *const legacy[] = {"AttributesToGet"};
    static const char *const modern[] = {"ProjectionExpression"};
    static const char *const exprs[] = {"ProjectionExpression"};
    json_t *ri;
    int rcc, rc = API_FAIL;
    if (ddb_obj(c, c->in, "RequestItems", &ri)) return API_FAIL;
    if (!ri) api_verr(c, "requestItems", NULL, "Member must not be null");
    if (ddb_rcc(c, c->in, &rcc)) return API_FAIL;
    size_t n_tables = ri ? json_object_size(ri) : 0;
    if (ri && (n_tables < 1 || n_tables > 100))
        api_verr(c, "requestItems", "{...}", "Member must have length %s",
                 n_tables < 1 ? "greater than or equal to 1" : "less than or equal to 100");
    if (api_verr_flush(c)) return API_FAIL;
    size_t total = 0;
    const char *tname;
    json_t *ka;
    json_object_foreach(ri, tname, ka) {
        if (!json_is_object(ka)) return ddb_badtype(c, "RequestItems", ka, "Structure");
        json_t *keys;
        if (ddb_arr(c, ka, "Keys", &keys)) return API_FAIL;
        size_t nk = keys ? json_array_size(keys) : 0;
        char p[300];
        snprintf(p, sizeof p, "requestItems.%s.member.keys", tname);
        if (!keys) api_verr(c, p, NULL, "Member must not be null");
        else if (nk < 1 || nk > 100)
            api_verr(c, p, "[...]", "Member must have length %s",
                     nk < 1 ? "greater than or equal to 1" : "less than or equal to 100");
        total += nk;
        ddb_request_items_table(c, tname);
    }
    if (api_verr_flush(c)) return API_FAIL;
    if (total > TBL_MAX_BATCH_GET)
        return ddb_invalid(c, "Too many items requested for the BatchGetItem call");

    ddb_exprs_t *xs = tr_xcalloc(n_tables, sizeof *xs);
    tbl_get_t *g = tr_xcalloc(total, sizeof *g);
    char **texts = tr_xcalloc(total, sizeof *texts);
    size_t *first = tr_xcalloc(n_tables + 1, sizeof *first);
    int *consistent = tr_xcalloc(n_tables, sizeof *consistent);
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
    ddb_tcap_t *caps = tr_xcalloc(n_tables + 1, sizeof *caps);
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
            if (rcc)
                ddb_tcap_add(caps, &n_caps, tname, ddb_read_units(g[i].size, consistent[ti], 0));
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
    if (rcc) ddb_put_tcaps(b, ",", rcc, caps, n_caps);
    tr_buf_puts(b, "}");
    free(caps);
    rc = NET_DONE;
leave:
    ddb_gets_free(g, texts, n);
    for (size_t i = 0; i < n_tables; i++) ddb_exprs_free(&xs[i]);
    free(xs);
    free(g);
    free(texts);
    free(first);
    free(consistent);
    return rc;
}

int ddb_transact_get(api_call_t *c) {
    json_t *items;
    int rcc, rc = API_FAIL;
    size_t n;
    if (ddb_transact_items(c, &items, &n)) return API_FAIL;
    if (ddb_rcc(c, c->in, &rcc)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    ddb_exprs_t *xs = tr_xcalloc(n, sizeof *xs);
    tbl_get_t *g = tr_xcalloc(n, sizeof *g);
    char(*tables)[DDB_NAME_MAX] = tr_xcalloc(n, sizeof *tables);
    char **texts = tr_xcalloc(n, sizeof *texts);
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
            api_verr(c, p, NULL, "Member must not be null");
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
            texts[i] = tr_xmalloc(len);
            snprintf(texts[i], len, "%s|%s", tables[i], kt);
            free(kt);
        }
    }
    if (api_verr_flush(c)) goto leave;
    if (ddb_has_dup(texts, n)) {
        ddb_invalid(c, "Transaction request cannot include multiple operations on one item");
        goto leave;
    }
    tr_err err;
    tr_err_clear(&err);
    tbl_get_many(c->ctx->tbl, g, n, &err);
    if (ddb_get_fail(c, g, n, &err)) goto leave;
    tr_buf *b = c->out;
    ddb_tcap_t *caps = tr_xcalloc(n + 1, sizeof *caps);
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
    if (rcc) ddb_put_tcaps(b, ",", rcc, caps, n_caps);
    tr_buf_puts(b, "}");
    free(caps);
    rc = NET_DONE;
leave:
    ddb_gets_free(g, texts, n);
    for (size_t i = 0; i < n; i++) ddb_exprs_free(&xs[i]);
    free(xs);
    free(g);
    free(tables);
    free(texts);
    return rc;
}
