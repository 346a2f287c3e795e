/* SPDX-License-Identifier: Apache-2.0
 *
 * test_tbl.c -- the table engine through tbl.h: control plane, group-committed writes with
 * conditions and ReturnValues, queries and scans, secondary indexes, transactions, idempotency,
 * concurrency, TTL, persistence, admission, and the synchronous API.
 *
 * Every test works in its own temporary directory (testutil.h's TU_DIR_TEST fixture).  Waits
 * are bounded and no test sleeps but test_batch_checked_again_at_apply (it says why); the TTL
 * thread is off (ttl_interval_ms < 0) and TTL sweeps run through tbl_ttl_run with an injected
 * clock.  Tests that are not about durability open with no_sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "core/buf.h"
#include "core/tlog.h"
#include "table/tbl.h"
#include "table/tbl_int.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------------------ */

static atomic_llong g_clock_ms;

static int64_t test_clock(void *arg) {
    (void)arg;
    return atomic_load(&g_clock_ms);
}

static tbl_opts_t test_opts(void) {
    tbl_opts_t o = {0};
    o.no_sync = 1;
    o.ttl_interval_ms = -1;
    o.map_size = (size_t)1 << 30;
    o.clock_ms = test_clock;
    return o;
}

static tbl_t *open_at(const char *dir, const tbl_opts_t *o) {
    tbl_t *db = NULL;
    tr_err e = {0, ""};
    int rc = tbl_open(dir, o, &db, &e);
    if (rc) fail_msg("tbl_open: %s", e.msg);
    return db;
}

#define J tu_json   /* testutil.h: parse test JSON or fail the test */

/* Parse an expression whose values/names live in the returned holder json (freed by caller). */
typedef struct ex {
    tbl_expr_t *e;
    json_t *names, *values;
} ex_t;

static ex_t X(int kind, const char *text, const char *names, const char *values) {
    ex_t x = {NULL, names ? J(names) : NULL, values ? J(values) : NULL};
    tr_err e = {0, ""};
    int rc = tbl_expr_parse(kind, text, x.names, x.values, NULL, &x.e, &e);
    if (rc) fail_msg("expr %s: %s", text, e.msg);
    return x;
}

static void X_free(ex_t *x) {
    tbl_expr_free(x->e);
    json_decref(x->names);
    json_decref(x->values);
}

/* CreateTable with a hash key (and range key) of the given types. */
static void create(tbl_t *db, const char *name, const char *h, int ht, const char *r, int rt) {
    tbl_attrdef_t a[2] = {{(char *)h, ht}, {(char *)r, rt}};
    tbl_table_info_t d = {0};
    d.name = (char *)name;
    d.hash = (char *)h;
    d.range = (char *)r;
    d.attrs = a;
    d.n_attrs = r ? 2 : 1;
    d.billing = TBL_BILLING_PAY_PER_REQUEST;
    tr_err e = {0, ""};
    int rc = tbl_table_create(db, &d, NULL, &e);
    if (rc) fail_msg("create %s: %s", name, e.msg);
}

static int put(tbl_t *db, const char *t, const char *item) {
    json_t *it = J(item);
    tbl_write_t w = {.op = TBL_OP_PUT, .table = t, .item = it};
    tr_err e = {0, ""};
    int rc = tbl_sync_write(db, &w, 1, &e);
    json_decref(it);
    json_decref(w.attrs);
    return rc;
}

static void put_ok(tbl_t *db, const char *t, const char *item) {
    json_t *it = J(item);
    tbl_write_t w = {.op = TBL_OP_PUT, .table = t, .item = it};
    tr_err e = {0, ""};
    int rc = tbl_sync_write(db, &w, 1, &e);
    if (rc) fail_msg("put %s: %s", item, e.msg);
    json_decref(it);
}

/* GetItem; new reference or NULL. */
static json_t *get(tbl_t *db, const char *t, const char *key) {
    json_t *k = J(key);
    tbl_get_t g = {.table = t, .key = k};
    tr_err e = {0, ""};
    int rc = tbl_get_many(db, &g, 1, &e);
    if (rc) fail_msg("get %s: %s", key, e.msg);
    json_decref(k);
    return g.item;
}

/* String of attribute a (type S or N) of item, or "" */
static const char *sval(const json_t *item, const char *a) {
    json_t *av = json_object_get(item, a);
    if (!av) return "";
    json_t *v = json_object_get(av, "S");
    if (!v) v = json_object_get(av, "N");
    return v ? json_string_value(v) : "";
}

static long nval(const json_t *item, const char *a) { return atol(sval(item, a)); }

static int update(tbl_t *db, const char *t, const char *key, const char *upd, const char *names,
                  const char *values, const char *cond, int rv, json_t **attrs, tr_err *e) {
    json_t *k = J(key);
    json_t *vals = values ? J(values) : NULL, *nm = names ? J(names) : NULL;
    tbl_expr_t *ue = NULL, *ce = NULL;
    tr_err pe = {0, ""};
    if (upd && tbl_expr_parse(TBL_EXPR_UPDATE, upd, nm, vals, NULL, &ue, &pe))
        fail_msg("update expr: %s", pe.msg);
    if (cond && tbl_expr_parse(TBL_EXPR_CONDITION, cond, nm, vals, NULL, &ce, &pe))
        fail_msg("cond expr: %s", pe.msg);
    tbl_write_t w =
        {.op = TBL_OP_UPDATE, .table = t, .key = k, .update = ue, .cond = ce, .return_values = rv};
    int rc = tbl_sync_write(db, &w, 1, e);
    if (attrs) *attrs = w.attrs;
    else json_decref(w.attrs);
    json_decref(w.old_item);
    tbl_expr_free(ue);
    tbl_expr_free(ce);
    json_decref(vals);
    json_decref(nm);
    json_decref(k);
    return rc;
}

static void describe(tbl_t *db, const char *t, tbl_table_info_t *out) {
    tr_err e = {0, ""};
    int rc = tbl_table_describe(db, t, out, &e);
    if (rc) fail_msg("describe %s: %s", t, e.msg);
}

/* ---- control plane ------------------------------------------------------------------------- */

static void test_create_describe_list_delete(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    atomic_store(&g_clock_ms, 1700000000000LL);

    create(db, "users", "id", TBL_T_S, NULL, 0);
    create(db, "events", "pk", TBL_T_S, "ts", TBL_T_N);
    tr_err e = {0, ""};

    /* duplicate, unused attribute definition, bad name */
    tbl_attrdef_t a[2] = {{"id", TBL_T_S}, {"x", TBL_T_N}};
    tbl_table_info_t d = {.name = "users", .hash = "id", .attrs = a, .n_attrs = 1};
    assert_int_equal(tbl_table_create(db, &d, NULL, &e), TR_EEXISTS);
    assert_non_null(strstr(e.msg, "Table already exists"));
    d.name = "other";
    d.n_attrs = 2;
    assert_int_equal(tbl_table_create(db, &d, NULL, &e), TR_EVALIDATION);
    d.name = "a!b";
    d.n_attrs = 1;
    assert_int_equal(tbl_table_create(db, &d, NULL, &e), TR_EVALIDATION);
    /* LSI on a hash-only table */
    tbl_index_info_t lsi = {.name = "l1", .local = 1, .hash = "id", .range = "x"};
    d.name = "other";
    d.n_attrs = 2;
    d.indexes = &lsi;
    d.n_indexes = 1;
    assert_int_equal(tbl_table_create(db, &d, NULL, &e), TR_EVALIDATION);

    tbl_table_info_t info;
    describe(db, "events", &info);
    assert_string_equal(info.name, "events");
    assert_string_equal(info.hash, "pk");
    assert_string_equal(info.range, "ts");
    assert_int_equal(info.n_attrs, 2);
    assert_int_equal(info.status, TBL_STATUS_ACTIVE);
    assert_int_equal(info.created_ms, 1700000000000LL);
    assert_int_equal(strlen(info.table_id), 36);
    assert_int_equal(info.item_count, 0);
    assert_int_equal(info.billing, TBL_BILLING_PAY_PER_REQUEST);
    tbl_table_info_free(&info);
    assert_int_equal(tbl_table_describe(db, "nope", &info, &e), TR_ENOTFOUND);

    char **names;
    size_t n;
    int more;
    assert_int_equal(tbl_table_list(db, NULL, 1, &names, &n, &more, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "events");
    assert_true(more);
    free(names[0]);
    free(names);
    assert_int_equal(tbl_table_list(db, "events", 10, &names, &n, &more, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "users");
    assert_false(more);
    free(names[0]);
    free(names);

    /* tags */
    tbl_tag_t tags[2] = {{"env", "dev"}, {"team", "a"}};
    assert_int_equal(tbl_table_tags_add(db, "users", tags, 2, &e), 0);
    char *rm[1] = {"env"};
    assert_int_equal(tbl_table_tags_remove(db, "users", rm, 1, &e), 0);
    describe(db, "users", &info);
    assert_int_equal(info.n_tags, 1);
    assert_string_equal(info.tags[0].key, "team");
    tbl_table_info_free(&info);

    /* items go away with the table; a re-created table starts empty */
    put_ok(db, "users", "{\"id\":{\"S\":\"u1\"},\"v\":{\"N\":\"1\"}}");
    tbl_table_info_t del;
    assert_int_equal(tbl_table_delete(db, "users", &del, &e), 0);
    assert_int_equal(del.status, TBL_STATUS_DELETING);
    assert_int_equal(del.item_count, 1);
    tbl_table_info_free(&del);
    assert_int_equal(tbl_table_delete(db, "users", NULL, &e), TR_ENOTFOUND);
    assert_int_equal(put(db, "users", "{\"id\":{\"S\":\"u1\"}}"), TR_ENOTFOUND);
    create(db, "users", "id", TBL_T_S, NULL, 0);
    json_t *it = get(db, "users", "{\"id\":{\"S\":\"u1\"}}");
    assert_null(it);

    /* deletion protection */
    tbl_table_update_t u = {.set_deletion_protection = 1, .deletion_protection = 1};
    assert_int_equal(tbl_table_update(db, "users", &u, NULL, &e), 0);
    assert_int_equal(tbl_table_delete(db, "users", NULL, &e), TR_EINUSE);
    u.deletion_protection = 0;
    assert_int_equal(tbl_table_update(db, "users", &u, NULL, &e), 0);
    assert_int_equal(tbl_table_delete(db, "users", NULL, &e), 0);
    tbl_table_update_t none = {0};
    assert_int_equal(tbl_table_update(db, "events", &none, NULL, &e), TR_EVALIDATION);

    tbl_close(db);
}

/* ---- items --------------------------------------------------------------------------------- */

static void test_put_get_delete(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    create(db, "num", "h", TBL_T_N, "r", TBL_T_B);
    tr_err e = {0, ""};

    put_ok(db, "tt1", "{\"id\":{\"S\":\"a\"},\"name\":{\"S\":\"Ann\"},\"n\":{\"N\":\"5\"}}");
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"a\"}}");
    assert_non_null(it);
    assert_string_equal(sval(it, "name"), "Ann");
    json_decref(it);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"zz\"}}"));

    /* raw get returns the stored text */
    json_t *k = J("{\"id\":{\"S\":\"a\"}}");
    tbl_get_t g = {.table = "tt1", .key = k, .want_raw = 1};
    assert_int_equal(tbl_get_many(db, &g, 1, &e), 0);
    assert_non_null(g.raw);
    assert_null(g.item);
    json_t *back = J(g.raw);
    assert_string_equal(sval(back, "name"), "Ann");
    assert_true(g.size > 0);
    json_decref(back);
    free(g.raw);

    /* projection */
    ex_t p = X(TBL_EXPR_PROJECTION, "n", NULL, NULL);
    tbl_get_t g2 = {.table = "tt1", .key = k, .projection = p.e};
    assert_int_equal(tbl_get_many(db, &g2, 1, &e), 0);
    assert_int_equal(json_object_size(g2.item), 1);
    assert_string_equal(sval(g2.item, "n"), "5");
    json_decref(g2.item);
    X_free(&p);

    /* schema errors */
    assert_int_equal(put(db, "tt1", "{\"name\":{\"S\":\"x\"}}"), TR_EVALIDATION);
    assert_int_equal(put(db, "tt1", "{\"id\":{\"N\":\"1\"}}"), TR_EVALIDATION);
    assert_int_equal(put(db, "tt1", "{\"id\":{\"S\":\"\"}}"), TR_EVALIDATION);
    json_t *bad = J("{\"id\":{\"S\":\"a\"},\"x\":{\"S\":\"b\"}}");
    tbl_get_t g3 = {.table = "tt1", .key = bad};
    assert_int_equal(tbl_get_many(db, &g3, 1, &e), TR_EVALIDATION);
    assert_non_null(strstr(e.msg, "does not match the schema"));
    json_decref(bad);
    tbl_get_t g4 = {.table = "missing", .key = k};
    assert_int_equal(tbl_get_many(db, &g4, 1, &e), TR_ENOTFOUND);

    /* delete, ALL_OLD */
    tbl_write_t w = {.op = TBL_OP_DELETE,
                     .table = "tt1",
                     .key = k,
                     .return_values = TBL_RV_ALL_OLD};
    assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
    assert_non_null(w.attrs);
    assert_string_equal(sval(w.attrs, "name"), "Ann");
    json_decref(w.attrs);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"a\"}}"));
    tbl_write_t w2 = {.op = TBL_OP_DELETE,
                      .table = "tt1",
                      .key = k,
                      .return_values = TBL_RV_ALL_OLD};
    assert_int_equal(tbl_sync_write(db, &w2, 1, &e), 0); /* absent: fine, nothing returned */
    assert_null(w2.attrs);
    json_decref(k);

    /* number hash + binary range */
    put_ok(db, "num", "{\"h\":{\"N\":\"1.50\"},\"r\":{\"B\":\"AAE=\"},\"v\":{\"S\":\"x\"}}");
    it = get(db, "num", "{\"h\":{\"N\":\"1.5\"},\"r\":{\"B\":\"AAE=\"}}");
    assert_non_null(it);
    json_decref(it);

    /* counts and sizes */
    tbl_table_info_t info;
    put_ok(db, "tt1", "{\"id\":{\"S\":\"b\"},\"name\":{\"S\":\"Bob\"}}");
    put_ok(db, "tt1", "{\"id\":{\"S\":\"c\"}}");
    put_ok(db, "tt1", "{\"id\":{\"S\":\"c\"},\"name\":{\"S\":\"Cy\"}}");
    describe(db, "tt1", &info);
    assert_int_equal(info.item_count, 2);
    assert_int_equal(info.size_bytes, (2 + 1 + 4 + 3) + (2 + 1 + 4 + 2));
    tbl_table_info_free(&info);

    tbl_close(db);
}

static void test_return_values(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    const char *key = "{\"id\":{\"S\":\"k\"}}";
    put_ok(db, "tt1", "{\"id\":{\"S\":\"k\"},\"a\":{\"N\":\"1\"},\"b\":{\"S\":\"x\"}}");

    json_t *at = NULL;
    const char *vals = "{\":one\":{\"N\":\"1\"}}";
    assert_int_equal(update(db, "tt1", key, "SET a = a + :one", NULL, vals, NULL, TBL_RV_NONE, &at,
                            &e),
                     0);
    assert_null(at);
    assert_int_equal(update(db, "tt1", key, "SET a = a + :one", NULL, vals, NULL, TBL_RV_ALL_OLD,
                            &at, &e),
                     0);
    assert_int_equal(nval(at, "a"), 2);
    assert_string_equal(sval(at, "b"), "x");
    json_decref(at);
    assert_int_equal(update(db, "tt1", key, "SET a = a + :one", NULL, vals, NULL,
                            TBL_RV_UPDATED_OLD, &at, &e),
                     0);
    assert_int_equal(json_object_size(at), 1);
    assert_int_equal(nval(at, "a"), 3);
    json_decref(at);
    assert_int_equal(update(db, "tt1", key, "SET a = a + :one", NULL, vals, NULL, TBL_RV_ALL_NEW,
                            &at, &e),
                     0);
    assert_int_equal(nval(at, "a"), 5);
    assert_string_equal(sval(at, "b"), "x");
    json_decref(at);
    assert_int_equal(update(db, "tt1", key, "SET a = a + :one", NULL, vals, NULL,
                            TBL_RV_UPDATED_NEW, &at, &e),
                     0);
    assert_int_equal(json_object_size(at), 1);
    assert_int_equal(nval(at, "a"), 6);
    json_decref(at);
    /* REMOVE: UPDATED_OLD has the value, UPDATED_NEW nothing */
    assert_int_equal(update(db, "tt1", key, "REMOVE b", NULL, NULL, NULL, TBL_RV_UPDATED_NEW, &at,
                            &e),
                     0);
    assert_null(at);
    /* update of an absent item creates it; ALL_OLD returns nothing */
    assert_int_equal(update(db, "tt1", "{\"id\":{\"S\":\"new\"}}", "SET c = :one", NULL, vals, NULL,
                            TBL_RV_ALL_OLD, &at, &e),
                     0);
    assert_null(at);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"new\"}}");
    assert_int_equal(nval(it, "c"), 1);
    json_decref(it);

    /* PutItem ALL_OLD */
    json_t *item = J("{\"id\":{\"S\":\"k\"},\"z\":{\"S\":\"new\"}}");
    tbl_write_t w = {.op = TBL_OP_PUT,
                     .table = "tt1",
                     .item = item,
                     .return_values = TBL_RV_ALL_OLD};
    assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
    assert_int_equal(nval(w.attrs, "a"), 6);
    assert_true(w.old_size > 0 && w.new_size > 0);
    json_decref(w.attrs);
    json_decref(item);

    /* update of a key attribute is refused */
    assert_int_equal(update(db, "tt1", key, "SET id = :v", NULL, "{\":v\":{\"S\":\"q\"}}", NULL,
                            TBL_RV_NONE, NULL, &e),
                     TR_EVALIDATION);
    tbl_close(db);
}

static void test_conditions(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};

    ex_t ne = X(TBL_EXPR_CONDITION, "attribute_not_exists(id)", NULL, NULL);
    json_t *item = J("{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
    tbl_write_t w = {.op = TBL_OP_PUT, .table = "tt1", .item = item, .cond = ne.e};
    assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
    tbl_write_t w2 = {.op = TBL_OP_PUT,
                      .table = "tt1",
                      .item = item,
                      .cond = ne.e,
                      .return_old_on_fail = 1};
    assert_int_equal(tbl_sync_write(db, &w2, 1, &e), TR_ECONDITION);
    assert_int_equal(w2.rc, TR_ECONDITION);
    assert_string_equal(w2.err.msg, "The conditional request failed");
    assert_non_null(w2.old_item);
    assert_int_equal(nval(w2.old_item, "v"), 1);
    json_decref(w2.old_item);
    json_decref(item);
    X_free(&ne);

    /* condition on values, update and delete */
    json_t *at = NULL;
    assert_int_equal(update(db, "tt1", "{\"id\":{\"S\":\"a\"}}", "SET v = :n", NULL,
                            "{\":n\":{\"N\":\"2\"},\":old\":{\"N\":\"5\"}}", "v = :old",
                            TBL_RV_ALL_NEW, &at, &e),
                     TR_ECONDITION);
    assert_null(at);
    assert_int_equal(update(db, "tt1", "{\"id\":{\"S\":\"a\"}}", "SET v = :n", NULL,
                            "{\":n\":{\"N\":\"2\"},\":old\":{\"N\":\"1\"}}", "v = :old",
                            TBL_RV_NONE, NULL, &e),
                     0);
    json_t *k = J("{\"id\":{\"S\":\"a\"}}");
    ex_t c = X(TBL_EXPR_CONDITION, "v > :x", NULL, "{\":x\":{\"N\":\"10\"}}");
    tbl_write_t d = {.op = TBL_OP_DELETE, .table = "tt1", .key = k, .cond = c.e};
    assert_int_equal(tbl_sync_write(db, &d, 1, &e), TR_ECONDITION);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"a\"}}");
    assert_int_equal(nval(it, "v"), 2);
    json_decref(it);
    X_free(&c);

    /* a batch: one failing write does not stop the others */
    json_t *i1 = J("{\"id\":{\"S\":\"b1\"}}"), *i2 = J("{\"id\":{\"S\":\"b2\"}}");
    ex_t ex = X(TBL_EXPR_CONDITION, "attribute_exists(id)", NULL, NULL);
    tbl_write_t bw[3] = {{.op = TBL_OP_PUT, .table = "tt1", .item = i1},
                         {.op = TBL_OP_DELETE, .table = "tt1", .key = k, .cond = ex.e},
                         {.op = TBL_OP_PUT, .table = "tt1", .item = i2, .cond = ex.e}};
    assert_int_equal(tbl_sync_write(db, bw, 3, &e), TR_ECONDITION);
    assert_int_equal(bw[0].rc, 0);
    assert_int_equal(bw[1].rc, 0);
    assert_int_equal(bw[2].rc, TR_ECONDITION);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"a\"}}"));
    it = get(db, "tt1", "{\"id\":{\"S\":\"b1\"}}");
    assert_non_null(it);
    json_decref(it);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"b2\"}}"));
    X_free(&ex);
    json_decref(i1);
    json_decref(i2);
    json_decref(k);
    tbl_close(db);
}

/* ---- query and scan ------------------------------------------------------------------------ */

/* Query t for hash "h" with a key condition; all pages; returns the r values in order. */
static size_t query_all(tbl_t *db, const char *table, const char *index, const char *kc,
                        const char *values, int backward, uint32_t limit, long *out, size_t cap,
                        int *pages) {
    json_t *vals = J(values);
    tbl_expr_t *e = NULL;
    tr_err err = {0, ""};
    if (tbl_expr_parse(TBL_EXPR_KEY_CONDITION, kc, NULL, vals, NULL, &e, &err))
        fail_msg("keycond %s: %s", kc, err.msg);
    size_t n = 0;
    json_t *start = NULL;
    *pages = 0;
    for (;;) {
        tbl_query_t q = {.table = table,
                         .index = index,
                         .keycond_expr = e,
                         .backward = backward,
                         .limit = limit,
                         .start_key = start};
        if (tbl_query(db, &q, &err)) fail_msg("query %s: %s", kc, err.msg);
        (*pages)++;
        size_t i;
        json_t *it;
        json_array_foreach(q.items, i, it) {
            if (n < cap) out[n] = nval(it, index ? "g" : "r");
            n++;
        }
        json_decref(start);
        start = q.last_key ? json_incref(q.last_key) : NULL;
        tbl_query_free(&q);
        if (!start) break;
        if (*pages > 1000) fail_msg("query does not end");
    }
    tbl_expr_free(e);
    json_decref(vals);
    return n;
}

static void test_query_ranges(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "h", TBL_T_S, "r", TBL_T_N);
    tr_err e = {0, ""};
    /* r in -10..29 for hash "a", plus decoys under other hashes */
    tbl_write_t w[25];
    json_t *items[60];
    size_t ni = 0;
    for (int r = -10; r < 30; r++) {
        char buf[128];
        snprintf(buf, sizeof buf,
                 "{\"h\":{\"S\":\"a\"},\"r\":{\"N\":\"%d\"},\"pad\":{\"S\":\"x\"}}", r);
        items[ni++] = J(buf);
    }
    for (int r = 0; r < 5; r++) {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"h\":{\"S\":\"ab\"},\"r\":{\"N\":\"%d\"}}", r);
        items[ni++] = J(buf);
        snprintf(buf, sizeof buf, "{\"h\":{\"S\":\"b\"},\"r\":{\"N\":\"%d\"}}", r);
        items[ni++] = J(buf);
    }
    for (size_t i = 0; i < ni; i += 25) {
        size_t n = ni - i < 25 ? ni - i : 25;
        for (size_t k = 0; k < n; k++)
            w[k] = (tbl_write_t){.op = TBL_OP_PUT, .table = "tt1", .item = items[i + k]};
        assert_int_equal(tbl_sync_write(db, w, n, &e), 0);
    }
    for (size_t i = 0; i < ni; i++) json_decref(items[i]);

    long out[64];
    int pages;
    const char *V = "{\":h\":{\"S\":\"a\"},\":x\":{\"N\":\"5\"},\":y\":{\"N\":\"8\"}}";
    struct {
        const char *kc;
        long first, count;
    } cases[] = {
        {"h = :h", -10, 40},
        {"h = :h AND r = :x", 5, 1},
        {"h = :h AND r < :x", -10, 15},
        {"h = :h AND r <= :x", -10, 16},
        {"h = :h AND r > :x", 6, 24},
        {"h = :h AND r >= :x", 5, 25},
        {"h = :h AND r BETWEEN :x AND :y", 5, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int back = 0; back < 2; back++) {
            for (uint32_t limit = 0; limit <= 7; limit += 7) {
                size_t n = query_all(db, "tt1", NULL, cases[c].kc, V, back, limit, out, 64, &pages);
                if ((long)n != cases[c].count)
                    fail_msg("%s back=%d limit=%u: %zu items, want %ld", cases[c].kc, back, limit,
                             n, cases[c].count);
                for (size_t i = 0; i < n; i++) {
                    long want = back ? cases[c].first + cases[c].count - 1 - (long)i
                                     : cases[c].first + (long)i;
                    if (out[i] != want)
                        fail_msg("%s back=%d limit=%u: item %zu is %ld, want %ld", cases[c].kc,
                                 back, limit, i, out[i], want);
                }
                if (limit) assert_true(pages >= (int)(n / limit));
            }
        }
    }

    /* begins_with on strings */
    create(db, "str", "h", TBL_T_S, "r", TBL_T_S);
    const char *rs[] = {"a", "ab", "abc", "abd", "ac", "b", "ab\xc3\xbf", "aa"};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        json_t *it = json_pack("{s:{s:s},s:{s:s}}", "h", "S", "x", "r", "S", rs[i]);
        tbl_write_t pw = {.op = TBL_OP_PUT, .table = "str", .item = it};
        assert_int_equal(tbl_sync_write(db, &pw, 1, &e), 0);
        json_decref(it);
    }
    for (int back = 0; back < 2; back++) {
        json_t *vals = J("{\":h\":{\"S\":\"x\"},\":p\":{\"S\":\"ab\"}}");
        tbl_expr_t *kc = NULL;
        assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "h = :h AND begins_with(r, :p)",
                                        NULL, vals, NULL, &kc, &e),
                         0);
        tbl_query_t q = {.table = "str", .keycond_expr = kc, .backward = back};
        assert_int_equal(tbl_query(db, &q, &e), 0);
        assert_int_equal(q.count, 4);
        const char *want[] = {"ab", "abc", "abd", "ab\xc3\xbf"};
        for (int i = 0; i < 4; i++)
            assert_string_equal(sval(json_array_get(q.items, (size_t)i), "r"),
                                want[back ? 3 - i : i]);
        assert_null(q.last_key);
        tbl_query_free(&q);
        tbl_expr_free(kc);
        json_decref(vals);
    }

    /* filter after the page is read; Select COUNT */
    json_t *vals = J("{\":h\":{\"S\":\"a\"},\":z\":{\"N\":\"0\"}}");
    tbl_expr_t *kc = NULL, *f = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "h = :h", NULL, vals, NULL, &kc, &e),
                     0);
    assert_int_equal(tbl_expr_parse(TBL_EXPR_FILTER, "r >= :z", NULL, vals, NULL, &f, &e), 0);
    tbl_query_t q = {.table = "tt1", .keycond_expr = kc, .filter = f, .limit = 15};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    assert_int_equal(q.scanned, 15);
    assert_int_equal(q.count, 5);
    assert_int_equal(json_array_size(q.items), 5);
    assert_non_null(q.last_key);
    assert_int_equal(nval(q.last_key, "r"), 4);
    assert_int_equal(json_object_size(q.last_key), 2);
    tbl_query_free(&q);
    tbl_query_t qc = {.table = "tt1", .keycond_expr = kc, .filter = f, .select = TBL_SELECT_COUNT};
    assert_int_equal(tbl_query(db, &qc, &e), 0);
    assert_null(qc.items);
    assert_int_equal(qc.count, 30);
    assert_int_equal(qc.scanned, 40);
    tbl_query_free(&qc);
    tbl_expr_free(f);

    /* errors: wrong type, bad start key, missing index */
    tbl_keycond_t bad = {.hash = json_object_get(vals, ":z")};
    tbl_query_t qb = {.table = "tt1", .kc = bad};
    assert_int_equal(tbl_query(db, &qb, &e), TR_EVALIDATION);
    json_t *esk = J("{\"h\":{\"S\":\"a\"}}");
    tbl_query_t qs = {.table = "tt1", .keycond_expr = kc, .start_key = esk};
    assert_int_equal(tbl_query(db, &qs, &e), TR_EVALIDATION);
    json_decref(esk);
    tbl_query_t qi = {.table = "tt1", .index = "nope", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &qi, &e), TR_EVALIDATION);
    assert_non_null(strstr(e.msg, "does not have the specified index"));
    tbl_expr_free(kc);
    json_decref(vals);
    tbl_close(db);
}

static void test_query_page_bytes(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "h", TBL_T_S, "r", TBL_T_N);
    tr_err e = {0, ""};
    /* 30 items of ~100 KB: a page stops once 1 MB has been read */
    char *big = malloc(100 * 1024 + 1);
    memset(big, 'x', 100 * 1024);
    big[100 * 1024] = 0;
    for (int r = 0; r < 30; r++) {
        json_t *it = json_pack("{s:{s:s},s:{s:s},s:{s:s}}", "h", "S", "a", "r", "N", "0", "d", "S",
                               big);
        char num[16];
        snprintf(num, sizeof num, "%d", r);
        json_object_set_new(it, "r", json_pack("{s:s}", "N", num));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "tt1", .item = it};
        assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
        json_decref(it);
    }
    free(big);
    long out[64];
    int pages;
    size_t n = query_all(db, "tt1", NULL, "h = :h", "{\":h\":{\"S\":\"a\"}}", 0, 0, out, 64,
                         &pages);
    assert_int_equal(n, 30);
    assert_int_equal(pages, 3);
    for (int i = 0; i < 30; i++) assert_int_equal(out[i], i);
    tbl_close(db);
}

static void test_scan_segments(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_N, NULL, 0);
    tr_err e = {0, ""};
    enum { N = 500 };
    for (int i = 0; i < N; i += 25) {
        tbl_write_t w[25];
        json_t *it[25];
        for (int k = 0; k < 25; k++) {
            char buf[64];
            snprintf(buf, sizeof buf, "{\"id\":{\"N\":\"%d\"}}", i + k);
            it[k] = J(buf);
            w[k] = (tbl_write_t){.op = TBL_OP_PUT, .table = "tt1", .item = it[k]};
        }
        assert_int_equal(tbl_sync_write(db, w, 25, &e), 0);
        for (int k = 0; k < 25; k++) json_decref(it[k]);
    }
    for (uint32_t total = 1; total <= 7; total += 3) {
        int seen[N] = {0};
        for (uint32_t s = 0; s < total; s++) {
            json_t *start = NULL;
            size_t in_seg = 0;
            do {
                tbl_query_t q = {.table = "tt1",
                                 .scan = 1,
                                 .segment = s,
                                 .total_segments = total,
                                 .limit = 37,
                                 .start_key = start};
                assert_int_equal(tbl_query(db, &q, &e), 0);
                size_t i;
                json_t *it;
                json_array_foreach(q.items, i, it) {
                    long id = nval(it, "id");
                    assert_true(id >= 0 && id < N);
                    seen[id]++;
                    assert_int_equal(tbl_key_segment(json_object_get(it, "id"), total), s);
                    in_seg++;
                }
                json_decref(start);
                start = q.last_key ? json_incref(q.last_key) : NULL;
                tbl_query_free(&q);
            } while (start);
            if (total > 1) assert_true(in_seg > 0 && in_seg < N);
        }
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    }
    /* filter + count */
    json_t *vals = J("{\":x\":{\"N\":\"100\"}}");
    tbl_expr_t *f = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_FILTER, "id < :x", NULL, vals, NULL, &f, &e), 0);
    tbl_query_t q = {.table = "tt1", .scan = 1, .filter = f, .select = TBL_SELECT_COUNT};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    assert_int_equal(q.count, 100);
    assert_int_equal(q.scanned, N);
    tbl_query_free(&q);
    tbl_query_t qbad = {.table = "tt1", .scan = 1, .segment = 3, .total_segments = 3};
    assert_int_equal(tbl_query(db, &qbad, &e), TR_EVALIDATION);
    tbl_expr_free(f);
    json_decref(vals);
    tbl_close(db);
}

/* ---- secondary indexes --------------------------------------------------------------------- */

static void create_indexed(tbl_t *db) {
    tbl_attrdef_t a[4] = {{"pk", TBL_T_S}, {"sk", TBL_T_N}, {"g", TBL_T_N}, {"gh", TBL_T_S}};
    char *incl[1] = {"extra"};
    tbl_index_info_t ix[2] = {
        {.name = "byG",
         .hash = "gh",
         .range = "g",
         .projection = TBL_PROJ_INCLUDE,
         .include = incl,
         .n_include = 1},
        {.name = "byL", .local = 1, .hash = "pk", .range = "g", .projection = TBL_PROJ_KEYS_ONLY},
    };
    tbl_table_info_t d = {.name = "tt1",
                          .hash = "pk",
                          .range = "sk",
                          .attrs = a,
                          .n_attrs = 4,
                          .indexes = ix,
                          .n_indexes = 2};
    tr_err e = {0, ""};
    int rc = tbl_table_create(db, &d, NULL, &e);
    if (rc) fail_msg("create: %s", e.msg);
}

static uint32_t index_count(tbl_t *db, const char *index, const char *kc, const char *vals,
                            json_t **items) {
    json_t *v = J(vals);
    tbl_expr_t *e = NULL;
    tr_err err = {0, ""};
    if (tbl_expr_parse(TBL_EXPR_KEY_CONDITION, kc, NULL, v, NULL, &e, &err))
        fail_msg("kc: %s", err.msg);
    uint32_t n = 0;
    json_t *start = NULL;
    if (items) *items = json_array();
    do {   /* every page */
        tbl_query_t q = {.table = "tt1",
                         .index = index,
                         .keycond_expr = e,
                         .start_key = start,
                         .select = items ? TBL_SELECT_ALL_PROJECTED : TBL_SELECT_COUNT};
        if (tbl_query(db, &q, &err)) fail_msg("query %s: %s", index, err.msg);
        n += q.count;
        if (items) json_array_extend(*items, q.items);
        json_decref(start);
        start = q.last_key ? json_incref(q.last_key) : NULL;
        tbl_query_free(&q);
    } while (start);
    tbl_expr_free(e);
    json_decref(v);
    return n;
}

static void test_index_maintenance(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create_indexed(db);
    tr_err e = {0, ""};
    const char *G = "{\":h\":{\"S\":\"red\"}}";
    const char *L = "{\":h\":{\"S\":\"p1\"}}";

    put_ok(db, "tt1",
           "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"1\"},\"gh\":{\"S\":\"red\"},"
           "\"g\":{\"N\":\"10\"},\"extra\":{\"S\":\"e\"},\"other\":{\"S\":\"o\"}}");
    put_ok(db, "tt1",
           "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"2\"},\"gh\":{\"S\":\"red\"},"
           "\"g\":{\"N\":\"5\"}}");
    /* sparse: no gh -> no GSI entry; no g -> neither */
    put_ok(db, "tt1", "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"3\"},\"g\":{\"N\":\"7\"}}");
    put_ok(db, "tt1", "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"4\"}}");
    json_t *items = NULL;
    assert_int_equal(index_count(db, "byG", "gh = :h", G, &items), 2);
    /* ordered by g; INCLUDE projection: keys + extra only */
    assert_int_equal(nval(json_array_get(items, 0), "g"), 5);
    json_t *first = json_array_get(items, 1);
    assert_int_equal(nval(first, "g"), 10);
    assert_string_equal(sval(first, "extra"), "e");
    assert_null(json_object_get(first, "other"));
    assert_int_equal(json_object_size(first), 5);
    json_decref(items);
    assert_int_equal(index_count(db, "byL", "pk = :h", L, NULL), 3);

    /* type mismatch on an index key is refused */
    assert_int_equal(put(db, "tt1",
                         "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"9\"},"
                         "\"gh\":{\"N\":\"1\"}}"),
                     TR_EVALIDATION);

    /* update moves the entry; removing the attribute drops it */
    assert_int_equal(update(db, "tt1", "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"1\"}}",
                            "SET gh = :b", NULL, "{\":b\":{\"S\":\"blue\"}}", NULL, TBL_RV_NONE,
                            NULL, &e),
                     0);
    assert_int_equal(index_count(db, "byG", "gh = :h", G, NULL), 1);
    assert_int_equal(index_count(db, "byG", "gh = :h", "{\":h\":{\"S\":\"blue\"}}", NULL), 1);
    assert_int_equal(update(db, "tt1", "{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"2\"}}", "REMOVE g",
                            NULL, NULL, NULL, TBL_RV_NONE, NULL, &e),
                     0);
    assert_int_equal(index_count(db, "byG", "gh = :h", G, NULL), 0);
    assert_int_equal(index_count(db, "byL", "pk = :h", L, NULL), 2);
    /* ranges on the index key */
    assert_int_equal(index_count(db, "byL", "pk = :h AND g > :x",
                                 "{\":h\":{\"S\":\"p1\"},\":x\":{\"N\":\"7\"}}", NULL),
                     1);
    /* LSI with KEYS_ONLY: ALL_ATTRIBUTES fetches the table item */
    json_t *v = J(L);
    tbl_expr_t *kc = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "pk = :h", NULL, v, NULL, &kc, &e), 0);
    tbl_query_t q = {.table = "tt1",
                     .index = "byL",
                     .keycond_expr = kc,
                     .select = TBL_SELECT_ALL_ATTRIBUTES};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    assert_int_equal(q.count, 2);
    json_t *it = json_array_get(q.items, 0); /* g = 7: sk 3 */
    assert_int_equal(nval(it, "sk"), 3);
    it = json_array_get(q.items, 1);
    assert_string_equal(sval(it, "other"), "o");
    tbl_query_free(&q);
    /* GSI with INCLUDE: ALL_ATTRIBUTES refused */
    tbl_query_t q2 = {.table = "tt1",
                      .index = "byG",
                      .keycond_expr = kc,
                      .select = TBL_SELECT_ALL_ATTRIBUTES};
    assert_int_equal(tbl_query(db, &q2, &e), TR_EVALIDATION);
    tbl_expr_free(kc);
    json_decref(v);

    /* delete removes entries */
    json_t *k = J("{\"pk\":{\"S\":\"p1\"},\"sk\":{\"N\":\"1\"}}");
    tbl_write_t d = {.op = TBL_OP_DELETE, .table = "tt1", .key = k};
    assert_int_equal(tbl_sync_write(db, &d, 1, &e), 0);
    json_decref(k);
    assert_int_equal(index_count(db, "byG", "gh = :h", "{\":h\":{\"S\":\"blue\"}}", NULL), 0);
    assert_int_equal(index_count(db, "byL", "pk = :h", L, NULL), 1);
    tbl_table_info_t info;
    describe(db, "tt1", &info);
    assert_int_equal(info.item_count, 3);
    assert_int_equal(info.n_indexes, 2);
    assert_int_equal(info.indexes[0].item_count, 0);
    assert_int_equal(info.indexes[1].item_count, 1);
    tbl_table_info_free(&info);

    /* scan of an index */
    tbl_query_t sc = {.table = "tt1", .index = "byL", .scan = 1};
    assert_int_equal(tbl_query(db, &sc, &e), 0);
    assert_int_equal(sc.count, 1);
    tbl_query_free(&sc);
    tbl_close(db);
}

/* Describe until every index of t is ACTIVE (bounded: 30 s); the last description in out. */
static void wait_indexes_active(tbl_t *db, const char *t, tbl_table_info_t *out) {
    for (int i = 0; i < 30000; i++) {
        describe(db, t, out);
        int creating = out->status != TBL_STATUS_ACTIVE;
        for (size_t k = 0; k < out->n_indexes; k++)
            creating |= out->indexes[k].status != TBL_STATUS_ACTIVE;
        if (!creating) return;
        tbl_table_info_free(out);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("indexes of %s not ACTIVE after 30 s", t);
}

static void wait_background(tbl_t *db) {
    for (int i = 0; i < 30000 && tbl_background_pending(db); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(tbl_background_pending(db), 0);
}

/* Index entries of "byG" in tt1, counted by a Query per group value g0..g9. */
static uint32_t count_by_g(tbl_t *db) {
    uint32_t total = 0;
    for (int g = 0; g < 10; g++) {
        char vals[64];
        snprintf(vals, sizeof vals, "{\":g\":{\"S\":\"g%d\"}}", g);
        total += index_count(db, "byG", "g = :g", vals, NULL);
    }
    return total;
}

/* A GSI added to a populated table backfills in the background, one item per transaction here:
 * the table stays writable, reads of the index are refused until it is ACTIVE, writes made
 * meanwhile (new, moved and deleted items) end up exactly right, a second index waits its turn,
 * and a restart in the middle resumes the backfill.  Deleting it empties its key space in the
 * background too. */
static void test_gsi_backfill_in_background(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.bf_chunk = 1;
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    enum { N = 3000 };
    char buf[160];
    for (int i = 0; i < N; i++) {   /* every third item has no g: not in the index */
        if (i % 3)
            snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"g\":{\"S\":\"g%d\"}}", i, i % 10);
        else snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"}}", i);
        put_ok(db, "tt1", buf);
    }
    tr_err e = {0, ""};
    tbl_attrdef_t a[1] = {{"g", TBL_T_S}};
    tbl_index_info_t gi = {.name = "byG", .hash = "g", .projection = TBL_PROJ_KEYS_ONLY};
    tbl_table_update_t u = {.attrs = a, .n_attrs = 1, .create_gsi = &gi};
    tbl_table_info_t out;
    assert_int_equal(tbl_table_update(db, "tt1", &u, &out, &e), 0);
    assert_int_equal(out.indexes[0].status, TBL_STATUS_CREATING);
    tbl_table_info_free(&out);
    /* 3000 one-item transactions take far longer than these calls */
    json_t *v = J("{\":g\":{\"S\":\"g1\"}}");
    tbl_expr_t *kc = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "g = :g", NULL, v, NULL, &kc, &e), 0);
    tbl_query_t q = {.table = "tt1", .index = "byG", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q, &e), TR_EVALIDATION);
    assert_non_null(strstr(e.msg, "Cannot read from backfilling global secondary index: byG"));
    tbl_query_free(&q);
    tbl_attrdef_t a2[1] = {{"h", TBL_T_S}};
    tbl_index_info_t gi2 = {.name = "byH", .hash = "h", .projection = TBL_PROJ_ALL};
    tbl_table_update_t u2 = {.attrs = a2, .n_attrs = 1, .create_gsi = &gi2};
    assert_int_equal(tbl_table_update(db, "tt1", &u2, NULL, &e), TR_ELIMIT);
    /* writes during the backfill: new items, items moved to another group, items deleted,
     * items that lose g */
    int expect = 0;
    for (int i = 0; i < N; i++) expect += i % 3 != 0;
    for (int i = N; i < N + 300; i++) {
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"g\":{\"S\":\"g%d\"}}", i, i % 10);
        put_ok(db, "tt1", buf);
        expect++;
    }
    for (int i = 1; i < N; i += 30) {   /* i % 3 == 1: had g */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"g\":{\"S\":\"g%d\"}}", i,
                 (i + 5) % 10);
        put_ok(db, "tt1", buf);
    }
    for (int i = 2; i < N; i += 60) {   /* i % 3 == 2: had g, now deleted */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"}}", i);
        json_t *k = J(buf);
        tbl_write_t w = {.op = TBL_OP_DELETE, .table = "tt1", .key = k};
        assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
        json_decref(k);
        expect--;
    }
    for (int i = 5; i < N; i += 90) {   /* i % 3 == 2: had g, put back without it */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"}}", i);
        put_ok(db, "tt1", buf);
        expect--;
    }
    /* restart in the middle (if it is not finished yet): it resumes */
    tbl_close(db);
    db = open_at(dir, &o);
    wait_indexes_active(db, "tt1", &out);
    assert_int_equal(out.indexes[0].item_count, (uint64_t)expect);
    tbl_table_info_free(&out);
    assert_int_equal(count_by_g(db), (uint32_t)expect);
    /* deleted (its entries go in the background) and added again at once: the new index does
     * not share the old one's key space while that is being emptied */
    tbl_table_update_t del = {.delete_gsi = "byG"};
    assert_int_equal(tbl_table_update(db, "tt1", &del, NULL, &e), 0);
    assert_int_equal(tbl_table_update(db, "tt1", &u, NULL, &e), 0);
    for (int i = N + 300; i < N + 400; i++) {   /* indexed by the new one right away */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"g\":{\"S\":\"g%d\"}}", i, i % 10);
        put_ok(db, "tt1", buf);
        expect++;
    }
    wait_indexes_active(db, "tt1", &out);
    tbl_table_info_free(&out);
    wait_background(db);
    assert_int_equal(count_by_g(db), (uint32_t)expect);
    describe(db, "tt1", &out);
    assert_int_equal(out.indexes[0].item_count, (uint64_t)expect);
    tbl_table_info_free(&out);
    tbl_expr_free(kc);
    json_decref(v);
    tbl_close(db);
}

/* DeleteTable returns at once; the items go in the background (one per transaction here),
 * across a restart, and a table re-created under the same name never sees them. */
static void test_delete_table_in_background(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.bf_chunk = 1;
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    char buf[96];
    for (int i = 0; i < 2000; i++) {
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"v\":{\"N\":\"%d\"}}", i, i);
        put_ok(db, "tt1", buf);
    }
    tr_err e = {0, ""};
    assert_int_equal(tbl_table_delete(db, "tt1", NULL, &e), 0);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);     /* the name is free at once */
    json_t *g = get(db, "tt1", "{\"id\":{\"S\":\"i7\"}}");
    assert_null(g);
    put_ok(db, "tt1", "{\"id\":{\"S\":\"i7\"},\"v\":{\"N\":\"-1\"}}");
    tbl_table_info_t out;
    describe(db, "tt1", &out);
    assert_int_equal(out.item_count, 1);
    tbl_table_info_free(&out);
    tbl_close(db);                 /* most of the 2,000 items are still there: resumed */
    db = open_at(dir, &o);
    wait_background(db);
    g = get(db, "tt1", "{\"id\":{\"S\":\"i7\"}}");
    assert_non_null(g);
    assert_int_equal(nval(g, "v"), -1);
    json_decref(g);
    tbl_close(db);
    /* every key left in LMDB belongs to the new table */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, o.map_size), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "items", 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    uint8_t first[4];
    size_t n = 0;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), n++) {
        if (!n) memcpy(first, k.mv_data, 4);
        assert_memory_equal(k.mv_data, first, 4);
    }
    assert_int_equal(n, 1);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void test_gsi_backfill_and_delete(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    for (int i = 0; i < 100; i++) {
        char buf[128];
        if (i % 2)
            snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"c\":{\"S\":\"c%d\"}}", i, i % 3);
        else if (i % 4)
            snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"c\":{\"N\":\"1\"}}", i);
        else snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"}}", i);
        put_ok(db, "tt1", buf);
    }
    tbl_attrdef_t a[1] = {{"c", TBL_T_S}};
    tbl_index_info_t gi = {.name = "byC", .hash = "c", .projection = TBL_PROJ_ALL};
    tbl_table_update_t u = {.attrs = a, .n_attrs = 1, .create_gsi = &gi};
    tbl_table_info_t out;
    assert_int_equal(tbl_table_update(db, "tt1", &u, &out, &e), 0);
    assert_int_equal(out.n_indexes, 1);
    assert_int_equal(out.indexes[0].status, TBL_STATUS_CREATING);   /* backfilled afterwards */
    assert_int_equal(out.status, TBL_STATUS_UPDATING);
    assert_int_equal(out.n_attrs, 2);
    tbl_table_info_free(&out);
    wait_indexes_active(db, "tt1", &out);
    assert_int_equal(out.indexes[0].item_count, 50); /* odd ids; N-typed c skipped */
    tbl_table_info_free(&out);
    json_t *v = J("{\":c\":{\"S\":\"c0\"}}");
    tbl_expr_t *kc = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "c = :c", NULL, v, NULL, &kc, &e), 0);
    tbl_query_t q = {.table = "tt1", .index = "byC", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    uint32_t c0 = q.count;
    assert_true(c0 >= 16 && c0 <= 17);
    tbl_query_free(&q);
    /* pages through equal index keys, both directions: every item once */
    for (int back = 0; back < 2; back++) {
        json_t *start = NULL, *seen = json_object();
        int pages = 0;
        do {
            tbl_query_t pq = {.table = "tt1",
                              .index = "byC",
                              .keycond_expr = kc,
                              .limit = 3,
                              .backward = back,
                              .start_key = start};
            assert_int_equal(tbl_query(db, &pq, &e), 0);
            size_t i;
            json_t *it;
            json_array_foreach(pq.items, i, it) {
                assert_null(json_object_get(seen, sval(it, "id")));
                json_object_set_new(seen, sval(it, "id"), json_true());
            }
            if (pq.last_key) assert_int_equal(json_object_size(pq.last_key), 2);
            json_decref(start);
            start = pq.last_key ? json_incref(pq.last_key) : NULL;
            tbl_query_free(&pq);
            assert_true(++pages < 100);
        } while (start);
        assert_int_equal(json_object_size(seen), c0);
        json_decref(seen);
    }
    /* new writes maintain it */
    put_ok(db, "tt1", "{\"id\":{\"S\":\"new\"},\"c\":{\"S\":\"c0\"}}");
    tbl_query_t q2 = {.table = "tt1", .index = "byC", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q2, &e), 0);
    assert_int_equal(q2.count, c0 + 1);
    tbl_query_free(&q2);
    /* duplicate name refused; deleting removes it */
    assert_int_equal(tbl_table_update(db, "tt1", &u, NULL, &e), TR_EVALIDATION);
    tbl_table_update_t del = {.delete_gsi = "byC"};
    assert_int_equal(tbl_table_update(db, "tt1", &del, &out, &e), 0);
    assert_int_equal(out.n_indexes, 0);
    assert_int_equal(out.n_attrs, 1);
    tbl_table_info_free(&out);
    tbl_query_t q3 = {.table = "tt1", .index = "byC", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q3, &e), TR_EVALIDATION);
    assert_int_equal(tbl_table_update(db, "tt1", &del, NULL, &e), TR_ENOTFOUND);
    /* re-adding backfills again, same space reused cleanly */
    assert_int_equal(tbl_table_update(db, "tt1", &u, &out, &e), 0);
    tbl_table_info_free(&out);
    wait_indexes_active(db, "tt1", &out);
    assert_int_equal(out.indexes[0].item_count, 51);
    tbl_table_info_free(&out);
    tbl_expr_free(kc);
    json_decref(v);
    tbl_close(db);
}

/* ---- transactions -------------------------------------------------------------------------- */

static void test_txn_basic(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    put_ok(db, "tt1", "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");

    json_t *ka = J("{\"id\":{\"S\":\"a\"}}"), *kb = J("{\"id\":{\"S\":\"b\"}}");
    json_t *ic = J("{\"id\":{\"S\":\"c\"}}");
    ex_t big = X(TBL_EXPR_CONDITION, "v > :x", NULL, "{\":x\":{\"N\":\"5\"}}");
    ex_t inc = X(TBL_EXPR_UPDATE, "ADD v :one", NULL, "{\":one\":{\"N\":\"1\"}}");

    /* one failing condition cancels everything */
    tbl_write_t w[3] = {
        {.op = TBL_OP_PUT, .table = "tt1", .item = ic},
        {.op = TBL_OP_UPDATE, .table = "tt1", .key = kb, .update = inc.e},
        {.op = TBL_OP_CHECK, .table = "tt1", .key = ka, .cond = big.e, .return_old_on_fail = 1},
    };
    tbl_txn_t t = {.w = w, .n = 3};
    assert_int_equal(tbl_sync_txn(db, &t, &e), TR_ETXN_CANCELED);
    assert_int_equal(t.rc, TR_ETXN_CANCELED);
    assert_non_null(strstr(t.err.msg, "[None, None, ConditionalCheckFailed]"));
    assert_int_equal(w[0].rc, 0);
    assert_int_equal(w[2].rc, TR_ECONDITION);
    assert_non_null(w[2].old_item);
    assert_int_equal(nval(w[2].old_item, "v"), 1);
    json_decref(w[2].old_item);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"c\"}}"));
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"b\"}}"));

    /* all pass: all applied */
    w[2].cond = NULL;
    w[2].op = TBL_OP_DELETE;
    assert_int_equal(tbl_sync_txn(db, &t, &e), 0);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"c\"}}");
    assert_non_null(it);
    json_decref(it);
    it = get(db, "tt1", "{\"id\":{\"S\":\"b\"}}");
    assert_int_equal(nval(it, "v"), 1);
    json_decref(it);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"a\"}}"));

    /* same item twice */
    tbl_write_t dup[2] = {{.op = TBL_OP_UPDATE, .table = "tt1", .key = kb, .update = inc.e},
                          {.op = TBL_OP_DELETE, .table = "tt1", .key = kb}};
    tbl_txn_t td = {.w = dup, .n = 2};
    assert_int_equal(tbl_sync_txn(db, &td, &e), TR_EVALIDATION);
    assert_non_null(strstr(e.msg, "multiple operations on one item"));

    /* transact get: one snapshot */
    tbl_get_t g[2] = {{.table = "tt1", .key = kb}, {.table = "tt1", .key = ka}};
    assert_int_equal(tbl_get_many(db, g, 2, &e), 0);
    assert_non_null(g[0].item);
    assert_null(g[1].item);
    json_decref(g[0].item);

    X_free(&big);
    X_free(&inc);
    json_decref(ka);
    json_decref(kb);
    json_decref(ic);
    tbl_close(db);
}

static void test_txn_idempotency(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    atomic_store(&g_clock_ms, 1700000000000LL);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    json_t *k = J("{\"id\":{\"S\":\"ctr\"}}");
    ex_t inc = X(TBL_EXPR_UPDATE, "ADD v :one", NULL, "{\":one\":{\"N\":\"1\"}}");
    json_t *req1 = J("{\"TransactItems\":[1]}"), *req2 = J("{\"TransactItems\":[2]}");

    tbl_write_t w = {.op = TBL_OP_UPDATE, .table = "tt1", .key = k, .update = inc.e};
    tbl_txn_t t = {.w = &w, .n = 1, .token = "tok-1"};
    tbl_request_digest(req1, t.digest);
    assert_int_equal(tbl_sync_txn(db, &t, &e), 0);
    assert_false(t.replayed);
    assert_int_equal(tbl_sync_txn(db, &t, &e), 0);
    assert_true(t.replayed);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"ctr\"}}");
    assert_int_equal(nval(it, "v"), 1);
    json_decref(it);

    tbl_txn_t t2 = {.w = &w, .n = 1, .token = "tok-1"};
    tbl_request_digest(req2, t2.digest);
    assert_int_equal(tbl_sync_txn(db, &t2, &e), TR_EIDEMPOTENCY);

    /* survives a reopen */
    tbl_close(db);
    db = open_at(dir, &o);
    assert_int_equal(tbl_sync_txn(db, &t, &e), 0);
    assert_true(t.replayed);
    /* after 10 minutes the token is forgotten: applied again */
    atomic_store(&g_clock_ms, 1700000000000LL + TBL_TOKEN_TTL_MS + 1);
    assert_int_equal(tbl_sync_txn(db, &t2, &e), 0);
    assert_false(t2.replayed);
    it = get(db, "tt1", "{\"id\":{\"S\":\"ctr\"}}");
    assert_int_equal(nval(it, "v"), 2);
    json_decref(it);

    json_decref(req1);
    json_decref(req2);
    X_free(&inc);
    json_decref(k);
    tbl_close(db);
}

/* Concurrent transfers between accounts: each moves 1 from one account to another under a
 * condition; readers check in one snapshot that the total never changes. */
enum { ACCTS = 8, XFER_THREADS = 4, XFERS = 300, START_BAL = 50 };

typedef struct xfer_ctx {
    tbl_t *db;
    int seed;
    atomic_int *stop;
    atomic_int ok, canceled;
    int bad_total;
} xfer_ctx_t;

static void *xfer_main(void *arg) {
    xfer_ctx_t *c = arg;
    unsigned s = (unsigned)c->seed * 2654435761u;
    ex_t dec = X(TBL_EXPR_UPDATE, "SET bal = bal - :one", NULL, "{\":one\":{\"N\":\"1\"}}");
    ex_t inc = X(TBL_EXPR_UPDATE, "SET bal = bal + :one", NULL, "{\":one\":{\"N\":\"1\"}}");
    ex_t pos = X(TBL_EXPR_CONDITION, "bal >= :one", NULL, "{\":one\":{\"N\":\"1\"}}");
    for (int i = 0; i < XFERS; i++) {
        s = s * 1103515245u + 12345u;
        int a = (int)((s >> 8) % ACCTS), b = (int)((s >> 16) % ACCTS);
        if (a == b) b = (b + 1) % ACCTS;
        char ka[64], kb[64];
        snprintf(ka, sizeof ka, "{\"id\":{\"N\":\"%d\"}}", a);
        snprintf(kb, sizeof kb, "{\"id\":{\"N\":\"%d\"}}", b);
        json_t *ja = J(ka), *jb = J(kb);
        tbl_write_t w[2] = {
            {.op = TBL_OP_UPDATE, .table = "acct", .key = ja, .update = dec.e, .cond = pos.e},
            {.op = TBL_OP_UPDATE, .table = "acct", .key = jb, .update = inc.e},
        };
        tbl_txn_t t = {.w = w, .n = 2};
        tr_err e = {0, ""};
        int rc = tbl_sync_txn(c->db, &t, &e);
        if (rc == 0) atomic_fetch_add(&c->ok, 1);
        else if (rc == TR_ETXN_CANCELED) atomic_fetch_add(&c->canceled, 1);
        else fail_msg("transfer: %s", e.msg);
        json_decref(w[0].old_item);
        json_decref(ja);
        json_decref(jb);
    }
    X_free(&dec);
    X_free(&inc);
    X_free(&pos);
    return NULL;
}

static void *audit_main(void *arg) {
    xfer_ctx_t *c = arg;
    json_t *keys[ACCTS];
    for (int i = 0; i < ACCTS; i++) {
        char k[64];
        snprintf(k, sizeof k, "{\"id\":{\"N\":\"%d\"}}", i);
        keys[i] = J(k);
    }
    while (!atomic_load(c->stop)) {
        tbl_get_t g[ACCTS];
        for (int i = 0; i < ACCTS; i++) g[i] = (tbl_get_t){.table = "acct", .key = keys[i]};
        tr_err e = {0, ""};
        assert_int_equal(tbl_get_many(c->db, g, ACCTS, &e), 0);
        long total = 0;
        for (int i = 0; i < ACCTS; i++) {
            long b = nval(g[i].item, "bal");
            if (b < 0) c->bad_total++;
            total += b;
            json_decref(g[i].item);
        }
        if (total != (long)ACCTS * START_BAL) c->bad_total++;
    }
    for (int i = 0; i < ACCTS; i++) json_decref(keys[i]);
    return NULL;
}

static void test_txn_concurrent(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.max_batch = 64;
    tbl_t *db = open_at(dir, &o);
    create(db, "acct", "id", TBL_T_N, NULL, 0);
    for (int i = 0; i < ACCTS; i++) {
        char buf[96];
        snprintf(buf, sizeof buf, "{\"id\":{\"N\":\"%d\"},\"bal\":{\"N\":\"%d\"}}", i, START_BAL);
        put_ok(db, "acct", buf);
    }
    atomic_int stop = 0;
    xfer_ctx_t ctx[XFER_THREADS], audit = {.db = db, .stop = &stop};
    pthread_t th[XFER_THREADS], at;
    pthread_create(&at, NULL, audit_main, &audit);
    for (int i = 0; i < XFER_THREADS; i++) {
        ctx[i] = (xfer_ctx_t){.db = db, .seed = i + 1, .stop = &stop};
        pthread_create(&th[i], NULL, xfer_main, &ctx[i]);
    }
    int ok = 0;
    for (int i = 0; i < XFER_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += atomic_load(&ctx[i].ok);
    }
    atomic_store(&stop, 1);
    pthread_join(at, NULL);
    assert_int_equal(audit.bad_total, 0);
    assert_true(ok > 0);
    long total = 0;
    for (int i = 0; i < ACCTS; i++) {
        char k[64];
        snprintf(k, sizeof k, "{\"id\":{\"N\":\"%d\"}}", i);
        json_t *it = get(db, "acct", k);
        assert_true(nval(it, "bal") >= 0);
        total += nval(it, "bal");
        json_decref(it);
    }
    assert_int_equal(total, (long)ACCTS * START_BAL);
    tbl_close(db);
}

/* ---- concurrency: atomic counters ---------------------------------------------------------- */

enum { ADD_THREADS = 6, ADDS = 500, INFLIGHT = 32 };

typedef struct add_ctx {
    tbl_t *db;
    tbl_expr_t *inc;
    json_t *key;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight, errors;
} add_ctx_t;

static void add_done(void *arg, int rc) {
    add_ctx_t *c = arg;
    pthread_mutex_lock(&c->mu);
    if (rc) c->errors++;
    c->inflight--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Asynchronous submitter: keeps INFLIGHT updates queued, like an HTTP thread pool. */
static void *add_main(void *arg) {
    add_ctx_t *shared = arg;
    add_ctx_t c = {.db = shared->db, .inc = shared->inc, .key = shared->key};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    tbl_write_t *w = calloc(ADDS, sizeof *w);
    for (int i = 0; i < ADDS; i++) {
        pthread_mutex_lock(&c.mu);
        while (c.inflight >= INFLIGHT) pthread_cond_wait(&c.cv, &c.mu);
        c.inflight++;
        pthread_mutex_unlock(&c.mu);
        w[i] = (tbl_write_t){.op = TBL_OP_UPDATE, .table = "tt1", .key = c.key, .update = c.inc};
        tr_err e = {0, ""};
        int rc;
        while ((rc = tbl_write_submit(c.db, &w[i], 1, add_done, &c, &e)) == TR_ETHROTTLED) {}
        if (rc) fail_msg("submit: %s", e.msg);
    }
    pthread_mutex_lock(&c.mu);
    while (c.inflight) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_lock(&shared->mu);
    shared->errors += c.errors;
    pthread_mutex_unlock(&shared->mu);
    free(w);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return NULL;
}

static void test_concurrent_add(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.no_sync = 0; /* the real thing: group commit with fsync */
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    ex_t inc = X(TBL_EXPR_UPDATE, "ADD n :one", NULL, "{\":one\":{\"N\":\"1\"}}");
    add_ctx_t shared = {.db = db, .inc = inc.e, .key = J("{\"id\":{\"S\":\"ctr\"}}")};
    pthread_mutex_init(&shared.mu, NULL);
    pthread_t th[ADD_THREADS];
    long long t0 = tr_mono_ns();
    for (int i = 0; i < ADD_THREADS; i++) pthread_create(&th[i], NULL, add_main, &shared);
    for (int i = 0; i < ADD_THREADS; i++) pthread_join(th[i], NULL);
    long long dt = tr_mono_ns() - t0;
    assert_int_equal(shared.errors, 0);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"ctr\"}}");
    assert_int_equal(nval(it, "n"), ADD_THREADS * ADDS);
    json_decref(it);
    print_message("    %d durable ADD updates in %.1f ms (%.0f/s)\n", ADD_THREADS * ADDS, dt / 1e6,
                  ADD_THREADS * ADDS / (dt / 1e9));
    json_decref(shared.key);
    pthread_mutex_destroy(&shared.mu);
    X_free(&inc);
    tbl_close(db);
}

/* ---- TTL ----------------------------------------------------------------------------------- */

static void test_ttl(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    int64_t now_s = 1700000000;
    atomic_store(&g_clock_ms, now_s * 1000);
    tbl_attrdef_t a[2] = {{"id", TBL_T_S}, {"g", TBL_T_S}};
    tbl_index_info_t gi = {.name = "byG", .hash = "g", .projection = TBL_PROJ_KEYS_ONLY};
    tbl_table_info_t d =
        {.name = "tt1", .hash = "id", .attrs = a, .n_attrs = 2, .indexes = &gi, .n_indexes = 1};
    tr_err e = {0, ""};
    assert_int_equal(tbl_table_create(db, &d, NULL, &e), 0);
    char buf[160];
    /* written before TTL is enabled: indexed when it is */
    snprintf(buf, sizeof buf,
             "{\"id\":{\"S\":\"old\"},\"g\":{\"S\":\"x\"},\"exp\":{\"N\":\"%" PRId64 "\"}}",
             now_s - 10);
    put_ok(db, "tt1", buf);
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 1, &e), 0);
    wait_background(db);   /* the items already there are indexed in the background */
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 1, &e), TR_EVALIDATION);
    assert_non_null(strstr(e.msg, "already enabled"));
    snprintf(buf, sizeof buf,
             "{\"id\":{\"S\":\"soon\"},\"g\":{\"S\":\"x\"},\"exp\":{\"N\":\"%" PRId64 ".5\"}}",
             now_s + 100);
    put_ok(db, "tt1", buf);
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"never\"},\"exp\":{\"S\":\"%" PRId64 "\"}}",
             now_s - 10);
    put_ok(db, "tt1", buf); /* not a number: never expires */
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"ancient\"},\"exp\":{\"N\":\"%" PRId64 "\"}}",
             now_s - (int64_t)6 * 365 * 86400);
    put_ok(db, "tt1", buf); /* more than 5 years in the past: ignored, as DynamoDB */
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"moved\"},\"exp\":{\"N\":\"%" PRId64 "\"}}",
             now_s - 5);
    put_ok(db, "tt1", buf);
    /* an update that moves the expiry into the future saves it */
    snprintf(buf, sizeof buf, "{\":e\":{\"N\":\"%" PRId64 "\"}}", now_s + 1000);
    assert_int_equal(update(db, "tt1", "{\"id\":{\"S\":\"moved\"}}", "SET exp = :e", NULL, buf,
                            NULL, TBL_RV_NONE, NULL, &e),
                     0);

    assert_int_equal(tbl_ttl_run(db, 0), 1);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"old\"}}"));
    assert_int_equal(index_count(db, "byG", "g = :g", "{\":g\":{\"S\":\"x\"}}", NULL), 1);
    assert_int_equal(tbl_ttl_run(db, 0), 0);
    atomic_store(&g_clock_ms, (now_s + 101) * 1000);
    assert_int_equal(tbl_ttl_run(db, 0), 1);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"soon\"}}"));
    assert_int_equal(index_count(db, "byG", "g = :g", "{\":g\":{\"S\":\"x\"}}", NULL), 0);
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"never\"}}");
    assert_non_null(it);
    json_decref(it);
    it = get(db, "tt1", "{\"id\":{\"S\":\"ancient\"}}");
    assert_non_null(it);
    json_decref(it);
    it = get(db, "tt1", "{\"id\":{\"S\":\"moved\"}}");
    assert_non_null(it);
    json_decref(it);
    tbl_table_info_t info;
    describe(db, "tt1", &info);
    assert_int_equal(info.item_count, 3);
    assert_true(info.ttl_enabled);
    assert_string_equal(info.ttl_attr, "exp");
    tbl_table_info_free(&info);
    /* disabled: nothing expires */
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 0, &e), 0);
    atomic_store(&g_clock_ms, (now_s + 5000) * 1000);
    assert_int_equal(tbl_ttl_run(db, 0), 0);
    it = get(db, "tt1", "{\"id\":{\"S\":\"moved\"}}");
    assert_non_null(it);
    json_decref(it);
    tbl_close(db);
}

/* Enabling TTL indexes the items already there in the background (one per transaction here)
 * while writes go on; afterwards exactly the expired items expire, across a restart. */
static void test_ttl_enable_in_background(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.bf_chunk = 1;
    tbl_t *db = open_at(dir, &o);
    int64_t now_s = 1700000000;
    atomic_store(&g_clock_ms, now_s * 1000);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    char buf[160];
    int expired = 0;
    for (int i = 0; i < 1000; i++) {   /* even: expired, odd: in the future */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"exp\":{\"N\":\"%" PRId64 "\"}}", i,
                 i % 2 ? now_s + 1000 : now_s - 10);
        put_ok(db, "tt1", buf);
        expired += !(i % 2);
    }
    tr_err e = {0, ""};
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 1, &e), 0);
    for (int i = 0; i < 1000; i += 10) {   /* even ones moved to the future meanwhile */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"exp\":{\"N\":\"%" PRId64 "\"}}", i,
                 now_s + 2000);
        put_ok(db, "tt1", buf);
        expired--;
    }
    for (int i = 1000; i < 1050; i++) {   /* new expired items */
        snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"i%d\"},\"exp\":{\"N\":\"%" PRId64 "\"}}", i,
                 now_s - 5);
        put_ok(db, "tt1", buf);
        expired++;
    }
    tbl_close(db);   /* most of the indexing is still to do: resumed */
    db = open_at(dir, &o);
    wait_background(db);
    int gone = 0;
    for (int r; (r = tbl_ttl_run(db, 0)) > 0;) gone += r;
    assert_int_equal(gone, expired);
    tbl_table_info_t info;
    describe(db, "tt1", &info);
    assert_int_equal(info.item_count, (uint64_t)(1050 - expired));
    tbl_table_info_free(&info);
    /* disabled (its entries go in the background) and enabled again at once on another
     * attribute: only that attribute counts */
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 0, &e), 0);
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp2", 1, &e), 0);
    snprintf(buf, sizeof buf,
             "{\"id\":{\"S\":\"a\"},\"exp\":{\"N\":\"%" PRId64 "\"},\"exp2\":{\"N\":\"%" PRId64
             "\"}}",
             now_s - 10, now_s + 100);
    put_ok(db, "tt1", buf);
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"b\"},\"exp2\":{\"N\":\"%" PRId64 "\"}}",
             now_s - 10);
    put_ok(db, "tt1", buf);
    wait_background(db);
    gone = 0;
    for (int r; (r = tbl_ttl_run(db, 0)) > 0;) gone += r;
    assert_int_equal(gone, 1);
    assert_null(get(db, "tt1", "{\"id\":{\"S\":\"b\"}}"));
    json_t *it = get(db, "tt1", "{\"id\":{\"S\":\"a\"}}");
    assert_non_null(it);
    json_decref(it);
    tbl_close(db);
}

/* ---- persistence --------------------------------------------------------------------------- */

static void test_reopen(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.no_sync = 0;
    tbl_t *db = open_at(dir, &o);
    create_indexed(db);
    create(db, "gone", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    put_ok(db, "tt1",
           "{\"pk\":{\"S\":\"p\"},\"sk\":{\"N\":\"1\"},\"gh\":{\"S\":\"red\"},"
           "\"g\":{\"N\":\"3\"}}");
    put_ok(db, "tt1", "{\"pk\":{\"S\":\"p\"},\"sk\":{\"N\":\"2\"}}");
    assert_int_equal(tbl_ttl_update(db, "tt1", "exp", 1, &e), 0);
    tbl_tag_t tag = {"k", "v"};
    assert_int_equal(tbl_table_tags_add(db, "tt1", &tag, 1, &e), 0);
    assert_int_equal(tbl_table_delete(db, "gone", NULL, &e), 0);
    tbl_close(db);

    db = open_at(dir, &o);
    tbl_table_info_t info;
    describe(db, "tt1", &info);
    assert_int_equal(info.item_count, 2);
    assert_int_equal(info.n_indexes, 2);
    assert_int_equal(info.indexes[0].item_count, 1);
    assert_int_equal(info.indexes[1].item_count, 1);
    assert_true(info.ttl_enabled);
    assert_int_equal(info.n_tags, 1);
    tbl_table_info_free(&info);
    assert_int_equal(tbl_table_describe(db, "gone", &info, &e), TR_ENOTFOUND);
    json_t *it = get(db, "tt1", "{\"pk\":{\"S\":\"p\"},\"sk\":{\"N\":\"1\"}}");
    assert_string_equal(sval(it, "gh"), "red");
    json_decref(it);
    assert_int_equal(index_count(db, "byG", "gh = :h", "{\":h\":{\"S\":\"red\"}}", NULL), 1);
    /* ids are not reused: a new table does not see old data */
    create(db, "gone", "id", TBL_T_S, NULL, 0);
    tbl_query_t q = {.table = "gone", .scan = 1};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    assert_int_equal(q.count, 0);
    tbl_query_free(&q);
    tbl_close(db);
}

/* ---- admission ----------------------------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, open;
} gate_t;

static void gate_cb(void *arg, int rc) {
    (void)rc;
    gate_t *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Hold the writer thread: submit w0 with gate_cb as its callback and wait until the writer is
 * inside it; gate_open lets it go on. */
static void gate_hold(tbl_t *db, tbl_write_t *w0, gate_t *g) {
    tr_err e = {0, ""};
    tu_ok(tbl_write_submit(db, w0, 1, gate_cb, g, &e), e);
    pthread_mutex_lock(&g->mu);
    while (!g->entered) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate_t *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static atomic_int g_done;

static void count_cb(void *arg, int rc) {
    (void)arg;
    (void)rc;
    atomic_fetch_add(&g_done, 1);
}

static void test_throttling(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    o.max_pending_bytes = 10000;
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    json_t *it = J("{\"id\":{\"S\":\"a\"}}");
    /* hold the writer thread inside a callback */
    gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    tbl_write_t w0 = {.op = TBL_OP_PUT, .table = "tt1", .item = it};
    gate_hold(db, &w0, &g);
    /* queue: the first is always admitted, then the budget runs out */
    tbl_write_t w[4];
    int admitted = 0, throttled = 0;
    atomic_store(&g_done, 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (tbl_write_t){.op = TBL_OP_PUT, .table = "tt1", .item = it, .req_bytes = 4000};
        int rc = tbl_write_submit(db, &w[i], 1, count_cb, NULL, &e);
        if (rc == 0) admitted++;
        else {
            assert_int_equal(rc, TR_ETHROTTLED);
            assert_non_null(strstr(e.msg, "retry with backoff"));
            throttled++;
        }
    }
    assert_int_equal(admitted, 2);
    assert_int_equal(throttled, 2);
    /* a synchronous call from the writer thread would deadlock: refused */
    gate_open(&g);
    while (atomic_load(&g_done) < admitted) sched_yield();
    tbl_write_t w5 = {.op = TBL_OP_PUT, .table = "tt1", .item = it, .req_bytes = 4000};
    assert_int_equal(tbl_sync_write(db, &w5, 1, &e), 0);
    json_decref(it);
    tbl_close(db);
}

static tbl_t *g_cb_db;
static atomic_int g_cb_rc;

static void reentrant_cb(void *arg, int rc) {
    (void)rc;
    json_t *it = arg;
    tbl_write_t w = {.op = TBL_OP_PUT, .table = "tt1", .item = it};
    tr_err e = {0, ""};
    atomic_store(&g_cb_rc, tbl_sync_write(g_cb_db, &w, 1, &e));
    tbl_table_info_t info;
    assert_int_equal(tbl_table_describe(g_cb_db, "tt1", &info, &e), 0); /* reads are fine */
    tbl_table_info_free(&info);
    atomic_store(&g_done, 1);
}

/* ---- whole-request validation ------------------------------------------------------------- */

/* Items in the table t (Scan count). */
static uint32_t count(tbl_t *db, const char *t) {
    tbl_query_t q = {.table = t, .scan = 1, .select = TBL_SELECT_COUNT};
    tr_err e = {0, ""};
    if (tbl_query(db, &q, &e)) fail_msg("scan %s: %s", t, e.msg);
    uint32_t n = q.count;
    tbl_query_free(&q);
    return n;
}

/* A submission of several writes whose last put has a bad index key is refused whole at submit:
 * nothing queued, nothing written (BatchWriteItem's "validate everything, then write"). */
static void test_batch_invalid_writes_nothing(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "bvt", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    tbl_attrdef_t a[1] = {{"g", TBL_T_S}};
    tbl_index_info_t gi = {.name = "byG", .hash = "g", .projection = TBL_PROJ_ALL};
    tbl_table_update_t u = {.attrs = a, .n_attrs = 1, .create_gsi = &gi};
    assert_int_equal(tbl_table_update(db, "bvt", &u, NULL, &e), 0);
    while (tbl_background_pending(db)) usleep(1000);
    put_ok(db, "bvt", "{\"id\":{\"S\":\"old\"}}");
    const char *bad[] = {"{\"id\":{\"S\":\"bad\"},\"g\":{\"N\":\"1\"}}",
                         "{\"id\":{\"S\":\"bad\"},\"g\":{\"S\":\"\"}}"};
    for (int b = 0; b < 2; b++) {
        json_t *i0 = J("{\"id\":{\"S\":\"a\"},\"g\":{\"S\":\"x\"}}"), *i2 = J(bad[b]);
        json_t *k1 = J("{\"id\":{\"S\":\"old\"}}");
        tbl_write_t w[3] = {{.op = TBL_OP_PUT, .table = "bvt", .item = i0},
                            {.op = TBL_OP_DELETE, .table = "bvt", .key = k1},
                            {.op = TBL_OP_PUT, .table = "bvt", .item = i2}};
        assert_int_equal(tbl_sync_write(db, w, 3, &e), TR_EVALIDATION);
        assert_non_null(strstr(e.msg, "IndexName: byG"));
        assert_int_equal(count(db, "bvt"), 1);
        json_t *old = get(db, "bvt", "{\"id\":{\"S\":\"old\"}}");
        assert_non_null(old);
        json_decref(old);
        json_decref(i0);
        json_decref(i2);
        json_decref(k1);
    }
    tbl_close(db);
}

typedef struct add_gsi {
    tbl_t *db;
    int rc;
} add_gsi_t;

static void *add_gsi_main(void *arg) {
    add_gsi_t *a = arg;
    tr_err e = {0, ""};
    tbl_attrdef_t at[1] = {{"g", TBL_T_S}};
    tbl_index_info_t gi = {.name = "byG", .hash = "g", .projection = TBL_PROJ_ALL};
    tbl_table_update_t u = {.attrs = at, .n_attrs = 1, .create_gsi = &gi};
    a->rc = tbl_table_update(a->db, "blt", &u, NULL, &e);
    return NULL;
}

typedef struct done1 {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} done1_t;

static void done1_cb(void *arg, int rc) {
    done1_t *d = arg;
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    d->rc = rc;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* The table gains an index between a batch's submit (valid then) and its turn on the writer,
 * and one item has a wrong-typed value for the new index key: the batch is checked again as a
 * whole before it is applied, so none of it is written, not the items before the bad one. */
static void test_batch_checked_again_at_apply(void **state) {
    (void)state;
    /* The index change must be queued before the batch, from another thread (a control call
     * waits), and nothing shows that it is: the test sleeps, and when the batch was applied
     * first anyway (all of it written: a slow machine) it tries again with a longer sleep. */
    for (int attempt = 0;; attempt++) {
        assert_true(attempt < 5);
        char *dir = tu_tmpdir("test_tbl");   /* a fresh one per attempt */
        tbl_opts_t o = test_opts();
        tbl_t *db = open_at(dir, &o);
        create(db, "blt", "id", TBL_T_S, NULL, 0);
        tr_err e = {0, ""};
        gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        json_t *i0 = J("{\"id\":{\"S\":\"first\"}}");
        tbl_write_t w0 = {.op = TBL_OP_PUT, .table = "blt", .item = i0};
        gate_hold(db, &w0, &g);
        /* the writer is held: queue the index creation, then the batch behind it */
        add_gsi_t ag = {db, -1};
        pthread_t th;
        pthread_create(&th, NULL, add_gsi_main, &ag);
        usleep((useconds_t)(100 * 1000) << attempt);
        json_t *a = J("{\"id\":{\"S\":\"a\"},\"g\":{\"S\":\"x\"}}");
        json_t *b = J("{\"id\":{\"S\":\"b\"},\"g\":{\"N\":\"1\"}}");
        tbl_write_t w[2] = {{.op = TBL_OP_PUT, .table = "blt", .item = a},
                            {.op = TBL_OP_PUT, .table = "blt", .item = b}};
        done1_t d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        assert_int_equal(tbl_write_submit(db, w, 2, done1_cb, &d, &e), 0);
        gate_open(&g);
        pthread_join(th, NULL);
        assert_int_equal(ag.rc, 0);
        pthread_mutex_lock(&d.mu);
        while (!d.done) pthread_cond_wait(&d.cv, &d.mu);
        pthread_mutex_unlock(&d.mu);
        int again = d.rc == 0 && w[0].rc == 0 && w[1].rc == 0;   /* applied before the index */
        if (!again) {
            assert_int_equal(d.rc, TR_EVALIDATION);
            assert_int_equal(w[0].rc, TR_EVALIDATION);   /* not written either */
            assert_int_equal(w[1].rc, TR_EVALIDATION);
            assert_non_null(strstr(w[0].err.msg, "Type mismatch for Index Key g"));
            assert_int_equal(count(db, "blt"), 1);   /* only "first" */
        }
        json_decref(i0);
        json_decref(a);
        json_decref(b);
        tbl_close(db);
        tu_tmpdir_done(dir);
        if (!again) break;
    }
}

static void *drop_main(void *arg) {
    add_gsi_t *a = arg;
    tr_err e = {0, ""};
    a->rc = tbl_table_delete(a->db, "drp", NULL, &e);
    return NULL;
}

/* The same with a batch over two tables, one deleted between the submit and the apply: the
 * writes to the other table are not applied either (ResourceNotFound for the whole batch). */
static void test_batch_table_deleted_before_apply(void **state) {
    (void)state;
    for (int attempt = 0;; attempt++) {
        assert_true(attempt < 5);
        char *dir = tu_tmpdir("test_tbl");   /* a fresh one per attempt */
        tbl_opts_t o = test_opts();
        tbl_t *db = open_at(dir, &o);
        create(db, "drp", "id", TBL_T_S, NULL, 0);
        create(db, "kept", "id", TBL_T_S, NULL, 0);
        tr_err e = {0, ""};
        gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        json_t *i0 = J("{\"id\":{\"S\":\"first\"}}");
        tbl_write_t w0 = {.op = TBL_OP_PUT, .table = "kept", .item = i0};
        gate_hold(db, &w0, &g);
        add_gsi_t ag = {db, -1};
        pthread_t th;
        pthread_create(&th, NULL, drop_main, &ag);
        usleep((useconds_t)(100 * 1000) << attempt);   /* see test_batch_checked_again_at_apply */
        json_t *a = J("{\"id\":{\"S\":\"a\"}}"), *b = J("{\"id\":{\"S\":\"b\"}}");
        tbl_write_t w[2] = {{.op = TBL_OP_PUT, .table = "kept", .item = a},
                            {.op = TBL_OP_PUT, .table = "drp", .item = b}};
        done1_t d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        int src = tbl_write_submit(db, w, 2, done1_cb, &d, &e);
        gate_open(&g);
        pthread_join(th, NULL);
        assert_int_equal(ag.rc, 0);
        int again = src != 0;   /* the drop was applied before the submit: a slow machine */
        if (!again) {
            pthread_mutex_lock(&d.mu);
            while (!d.done) pthread_cond_wait(&d.cv, &d.mu);
            pthread_mutex_unlock(&d.mu);
            again = d.rc == 0 && w[0].rc == 0 && w[1].rc == 0;   /* applied before the drop */
        }
        if (!again) {
            assert_int_equal(d.rc, TR_ENOTFOUND);
            assert_int_equal(w[0].rc, TR_ENOTFOUND);   /* not written either */
            assert_int_equal(w[1].rc, TR_ENOTFOUND);
            assert_int_equal(count(db, "kept"), 1);   /* only "first" */
        }
        json_decref(i0);
        json_decref(a);
        json_decref(b);
        tbl_close(db);
        tu_tmpdir_done(dir);
        if (!again) break;
    }
}

/* UpdateItem with only REMOVE / DELETE on a missing item creates nothing; on an existing one it
 * keeps the item even when only the key is left. */
static void test_update_remove_on_missing_creates_nothing(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "pht", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    json_t *attrs = NULL;
    assert_int_equal(update(db, "pht", "{\"id\":{\"S\":\"m\"}}", "REMOVE a, b", NULL, NULL, NULL,
                            TBL_RV_ALL_NEW, &attrs, &e),
                     0);
    assert_null(attrs);
    assert_int_equal(update(db, "pht", "{\"id\":{\"S\":\"m\"}}", "DELETE s :v", NULL,
                            "{\":v\":{\"SS\":[\"x\"]}}", "attribute_not_exists(id)",
                            TBL_RV_UPDATED_NEW, &attrs, &e),
                     0);
    assert_null(attrs);
    assert_int_equal(count(db, "pht"), 0);
    put_ok(db, "pht", "{\"id\":{\"S\":\"k\"},\"a\":{\"N\":\"1\"}}");
    assert_int_equal(update(db, "pht", "{\"id\":{\"S\":\"k\"}}", "REMOVE a", NULL, NULL, NULL,
                            TBL_RV_ALL_NEW, &attrs, &e),
                     0);
    assert_non_null(attrs);
    assert_int_equal(json_object_size(attrs), 1);
    json_decref(attrs);
    assert_int_equal(count(db, "pht"), 1);
    tbl_close(db);
}

static void test_sync_api(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "id", TBL_T_S, NULL, 0);
    tr_err e = {0, ""};
    tbl_handle_t *h = NULL;
    assert_int_equal(tbl_handle_open(db, "nope", &h, &e), TR_ENOTFOUND);
    assert_int_equal(tbl_handle_open(db, "tt1", &h, &e), 0);
    json_t *it = J("{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
    json_t *old = NULL;
    assert_int_equal(tbl_sync_put(h, it, NULL, &old, &e), 0);
    assert_null(old);
    json_t *k = J("{\"id\":{\"S\":\"a\"}}");
    ex_t inc = X(TBL_EXPR_UPDATE, "ADD v :one", NULL, "{\":one\":{\"N\":\"41\"}}");
    json_t *at = NULL;
    assert_int_equal(tbl_sync_update(h, k, inc.e, NULL, TBL_RV_UPDATED_NEW, &at, &e), 0);
    assert_int_equal(nval(at, "v"), 42);
    json_decref(at);
    json_t *got = NULL;
    assert_int_equal(tbl_sync_get(h, k, &got, &e), 0);
    assert_int_equal(nval(got, "v"), 42);
    json_decref(got);
    ex_t ne = X(TBL_EXPR_CONDITION, "attribute_not_exists(id)", NULL, NULL);
    assert_int_equal(tbl_sync_put(h, it, ne.e, NULL, &e), TR_ECONDITION);
    assert_int_equal(tbl_sync_delete(h, k, NULL, &old, &e), 0);
    assert_int_equal(nval(old, "v"), 42);
    json_decref(old);
    assert_int_equal(tbl_sync_get(h, k, &got, &e), 0);
    assert_null(got);

    /* synchronous calls from a write callback are refused */
    g_cb_db = db;
    atomic_store(&g_done, 0);
    tbl_write_t w = {.op = TBL_OP_PUT, .table = "tt1", .item = it};
    assert_int_equal(tbl_write_submit(db, &w, 1, reentrant_cb, it, &e), 0);
    while (!atomic_load(&g_done)) sched_yield();
    assert_int_equal(atomic_load(&g_cb_rc), TR_EINVAL);
    assert_int_equal(tbl_ttl_run(db, 0), 0);

    /* the handle outlives a DeleteTable */
    assert_int_equal(tbl_table_delete(db, "tt1", NULL, &e), 0);
    assert_int_equal(tbl_sync_put(h, it, NULL, NULL, &e), TR_ENOTFOUND);
    tbl_handle_close(h);
    X_free(&inc);
    X_free(&ne);
    json_decref(it);
    json_decref(k);
    tbl_close(db);
}

/* ---- key encoding -------------------------------------------------------------------------- */

static void test_key_order(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    create(db, "tt1", "h", TBL_T_S, "r", TBL_T_N);
    create(db, "bin", "h", TBL_T_S, "r", TBL_T_B);
    tr_err e = {0, ""};
    const char *nums[] = {"-1e10", "-100.5", "-100", "-1", "-0.001", "0",   "0.001", "0.5",
                          "1",     "1.5",    "2",    "10", "99.99",  "100", "1e20"};
    size_t nn = sizeof nums / sizeof nums[0];
    for (size_t i = nn; i-- > 0;) {
        json_t *it = json_pack("{s:{s:s},s:{s:s},s:{s:i}}", "h", "S", "x", "r", "N", nums[i], "i",
                               "N", (int)i);
        char ib[24];
        snprintf(ib, sizeof ib, "%zu", i);
        json_object_set_new(it, "i", json_pack("{s:s}", "N", ib));
        tr_err ve = {0, ""};
        assert_int_equal(tbl_item_validate(it, &ve), 0);
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "tt1", .item = it};
        assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
        json_decref(it);
    }
    json_t *v = J("{\":h\":{\"S\":\"x\"}}");
    tbl_expr_t *kc = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "h = :h", NULL, v, NULL, &kc, &e), 0);
    tbl_query_t q = {.table = "tt1", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q, &e), 0);
    assert_int_equal(q.count, nn);
    for (size_t i = 0; i < nn; i++) assert_int_equal(nval(json_array_get(q.items, i), "i"), i);
    tbl_query_free(&q);
    /* binary with zero bytes and 0xFF */
    /* 00, 0000, 0001, 01, ff, ffff */
    const char *bins[] = {"AA==", "AAA=", "AAE=", "AQ==", "/w==", "//8="};
    for (size_t i = 0; i < 6; i++) {
        char ib[24];
        snprintf(ib, sizeof ib, "%zu", i);
        json_t *it = json_pack("{s:{s:s},s:{s:s},s:{s:s}}", "h", "S", "x", "r", "B", bins[5 - i],
                               "i", "N", "0");
        snprintf(ib, sizeof ib, "%zu", 5 - i);
        json_object_set_new(it, "i", json_pack("{s:s}", "N", ib));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "bin", .item = it};
        assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
        json_decref(it);
    }
    tbl_query_t qb = {.table = "bin", .keycond_expr = kc, .backward = 1};
    assert_int_equal(tbl_query(db, &qb, &e), 0);
    assert_int_equal(qb.count, 6);
    for (size_t i = 0; i < 6; i++) assert_int_equal(nval(json_array_get(qb.items, i), "i"), 5 - i);
    tbl_query_free(&qb);
    /* long keys (folded past LMDB's limit) stay distinct and retrievable */
    create(db, "long", "h", TBL_T_S, NULL, 0);
    char *s1 = malloc(2049), *s2 = malloc(2049);
    memset(s1, 'k', 2048);
    memset(s2, 'k', 2048);
    s1[2048] = s2[2048] = 0;
    s2[2047] = 'j';
    json_t *i1 = json_pack("{s:{s:s},s:{s:s}}", "h", "S", s1, "v", "S", "one");
    json_t *i2 = json_pack("{s:{s:s},s:{s:s}}", "h", "S", s2, "v", "S", "two");
    tbl_write_t lw[2] = {{.op = TBL_OP_PUT, .table = "long", .item = i1},
                         {.op = TBL_OP_PUT, .table = "long", .item = i2}};
    assert_int_equal(tbl_sync_write(db, lw, 2, &e), 0);
    json_t *k1 = json_pack("{s:{s:s}}", "h", "S", s1);
    tbl_get_t g = {.table = "long", .key = k1};
    assert_int_equal(tbl_get_many(db, &g, 1, &e), 0);
    assert_string_equal(sval(g.item, "v"), "one");
    json_decref(g.item);
    json_decref(k1);
    json_decref(i1);
    json_decref(i2);
    s1[0] = 0;
    free(s1);
    free(s2);
    /* long range keys (folded): key conditions stay exact */
    create(db, "longr", "h", TBL_T_S, "r", TBL_T_S);
    char *base = malloc(1025);
    memset(base, 'r', 1000);
    base[1000] = 0;
    for (int i = 0; i < 10; i++) {
        char *rv = malloc(1025);
        snprintf(rv, 1025, "%s%02d", base, i);
        json_t *it = json_pack("{s:{s:s},s:{s:s},s:{s:i}}", "h", "S", "x", "r", "S", rv, "i", "N",
                               0);
        char ib[24];
        snprintf(ib, sizeof ib, "%d", i);
        json_object_set_new(it, "i", json_pack("{s:s}", "N", ib));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "longr", .item = it};
        assert_int_equal(tbl_sync_write(db, &w, 1, &e), 0);
        json_decref(it);
        free(rv);
    }
    char *lo = malloc(1025), *hi = malloc(1025);
    snprintf(lo, 1025, "%s%02d", base, 3);
    snprintf(hi, 1025, "%s%02d", base, 6);
    json_t *lv = json_pack("{s:{s:s},s:{s:s},s:{s:s}}", ":h", "S", "x", ":a", "S", lo, ":b", "S",
                           hi);
    tbl_expr_t *lk = NULL;
    assert_int_equal(tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "h = :h AND r BETWEEN :a AND :b", NULL,
                                    lv, NULL, &lk, &e),
                     0);
    for (int back = 0; back < 2; back++) {
        tbl_query_t lq = {.table = "longr", .keycond_expr = lk, .backward = back};
        assert_int_equal(tbl_query(db, &lq, &e), 0);
        assert_int_equal(lq.count, 4);
        long sum = 0;
        for (size_t i = 0; i < 4; i++) sum += nval(json_array_get(lq.items, i), "i");
        assert_int_equal(sum, 3 + 4 + 5 + 6);
        tbl_query_free(&lq);
    }
    tbl_expr_free(lk);
    json_decref(lv);
    free(lo);
    free(hi);
    free(base);
    char *huge = malloc(2050);
    memset(huge, 'k', 2049);
    huge[2049] = 0;
    json_t *ih = json_pack("{s:{s:s}}", "h", "S", huge);
    tbl_write_t hw = {.op = TBL_OP_PUT, .table = "long", .item = ih};
    assert_int_equal(tbl_sync_write(db, &hw, 1, &e), TR_EVALIDATION);
    json_decref(ih);
    free(huge);
    tbl_expr_free(kc);
    json_decref(v);
    tbl_close(db);
}

/* ---- exact order of long keys -------------------------------------------------------------- */

/* Keys longer than LMDB's 511-byte limit are stored folded (first bytes + a digest); Query must
 * still return them in exact key order (S and B bytewise, N numerically), forward and backward,
 * under every key condition and across pages.  The expected order is computed here by sorting
 * the values themselves. */

#define LK_N 30

typedef struct lk_key {
    int type;                     /* TBL_T_S, TBL_T_B or TBL_T_N (n: the integer value) */
    uint8_t b[1100];
    size_t n;
    long num;
} lk_key_t;

static uint32_t lk_seed = 12345;
static uint32_t lk_rand(void) {
    lk_seed = lk_seed * 1103515245u + 12345u;
    return lk_seed >> 8;
}

static int lk_cmp(const void *a, const void *b) {
    const lk_key_t *x = a, *y = b;
    if (x->type == TBL_T_N) return (x->num > y->num) - (x->num < y->num);
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->b, y->b, m);
    if (c) return c < 0 ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

static json_t *lk_av(const lk_key_t *k) {
    if (k->type == TBL_T_S) return json_pack("{s:s%}", "S", (const char *)k->b, k->n);
    if (k->type == TBL_T_N) {
        char s[32];
        snprintf(s, sizeof s, "%ld", k->num);
        return json_pack("{s:s}", "N", s);
    }
    tr_buf t = TR_BUF_INIT;
    tr_buf_base64(&t, k->b, k->n);
    json_t *av = json_pack("{s:s%}", "B", t.data, t.len);
    tr_buf_free(&t);
    return av;
}

static void lk_from_av(const json_t *av, int type, lk_key_t *k) {
    memset(k, 0, sizeof *k);
    k->type = type;
    json_t *s = json_object_get(av, type == TBL_T_S ? "S" : type == TBL_T_N ? "N" : "B");
    if (!s) fail_msg("attribute value of the wrong type");
    if (type == TBL_T_N) {
        k->num = atol(json_string_value(s));
    } else if (type == TBL_T_S) {
        k->n = json_string_length(s);
        assert_true(k->n <= sizeof k->b);
        memcpy(k->b, json_string_value(s), k->n);
    } else {
        uint8_t *tmp = malloc(tr_base64_decoded_max(json_string_length(s)));
        long n = tr_base64_decode(json_string_value(s), json_string_length(s), tmp);
        assert_true(n >= 0 && (size_t)n <= sizeof k->b);
        memcpy(k->b, tmp, (size_t)n);
        k->n = (size_t)n;
        free(tmp);
    }
}

/* n distinct keys: `plen` bytes of `fill`, then a short tail (bytes that stress the escapes: 0x00,
 * 0x01, 0xFF, multi-byte UTF-8 for S), in random order; N keys are integers. */
static void lk_keys(lk_key_t *k, size_t n, int type, size_t plen, uint8_t fill) {
    static const char *s_parts[] = {"a", "b", "z", "\x01", "\x7f", "\xc3\xa9", "\xf0\x9f\x98\x80"};
    static const uint8_t b_parts[] = {0x00, 0x01, 0x7f, 0xfe, 0xff, 'a'};
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            lk_key_t *x = &k[i];
            memset(x, 0, sizeof *x);
            x->type = type;
            if (type == TBL_T_N) {
                x->num = (long)(lk_rand() % 2001) - 1000;
            } else {
                memset(x->b, fill, plen);
                x->n = plen;
                size_t tl = i == 0 ? 0 : lk_rand() % 5;   /* key 0: the bare prefix */
                for (size_t t = 0; t < tl; t++) {
                    if (type == TBL_T_S) {
                        const char *p = s_parts[lk_rand() % 7];
                        memcpy(x->b + x->n, p, strlen(p));
                        x->n += strlen(p);
                    } else {
                        x->b[x->n++] = b_parts[lk_rand() % 6];
                    }
                }
            }
            int dup = 0;
            for (size_t j = 0; j < i; j++) dup |= !lk_cmp(&k[j], x);
            if (!dup) break;
        }
    }
}

enum { LK_ALL, LK_EQ, LK_LT, LK_LE, LK_GT, LK_GE, LK_BETWEEN, LK_BEGINS, LK_NOPS };

static int lk_match(int op, const lk_key_t *v, const lk_key_t *a, const lk_key_t *b) {
    int c = lk_cmp(v, a);
    switch (op) {
    case LK_ALL: return 1;
    case LK_EQ: return c == 0;
    case LK_LT: return c < 0;
    case LK_LE: return c <= 0;
    case LK_GT: return c > 0;
    case LK_GE: return c >= 0;
    case LK_BETWEEN: return c >= 0 && lk_cmp(v, b) <= 0;
    default: return v->n >= a->n && !memcmp(v->b, a->b, a->n);
    }
}

/* Query partition hv of table/index on range attribute rname (keys sorted[0..n) are all the
 * partition holds) with every operator, both directions and several page sizes; compare with
 * the sorted keys. */
static void lk_check(tbl_t *db, const char *table, const char *index, const char *hname,
                     const json_t *hv, const char *rname, const lk_key_t *sorted, size_t n) {
    static const char *conds[] = {"#h = :h",
                                  "#h = :h AND #r = :a",
                                  "#h = :h AND #r < :a",
                                  "#h = :h AND #r <= :a",
                                  "#h = :h AND #r > :a",
                                  "#h = :h AND #r >= :a",
                                  "#h = :h AND #r BETWEEN :a AND :b",
                                  "#h = :h AND begins_with(#r, :a)"};
    int type = sorted[0].type;
    lk_key_t *got = malloc(sizeof *got * (n + 1));
    for (int op = 0; op < LK_NOPS; op++) {
        if (op == LK_BEGINS && type == TBL_T_N) continue;
        lk_key_t a = sorted[n / 3], b = sorted[2 * n / 3];
        if (op == LK_BEGINS) { /* a key without its last character */
            a = sorted[n / 2];
            do a.n--;
            while (type == TBL_T_S && a.n && (a.b[a.n] & 0xC0) == 0x80);
        }
        json_t *names = json_pack("{s:s,s:s}", "#h", hname, "#r", rname);
        json_t *vals = json_pack("{s:O,s:o,s:o}", ":h", hv, ":a", lk_av(&a), ":b", lk_av(&b));
        if (op == LK_ALL || op == LK_EQ || op == LK_LT || op == LK_LE || op == LK_GT ||
            op == LK_GE || op == LK_BEGINS)
            json_object_del(vals, ":b");
        if (op == LK_ALL) json_object_del(vals, ":a"), json_object_del(names, "#r");
        tbl_expr_t *kc = NULL;
        tr_err e = {0, ""};
        if (tbl_expr_parse(TBL_EXPR_KEY_CONDITION, conds[op], names, vals, NULL, &kc, &e))
            fail_msg("keycond %s: %s", conds[op], e.msg);
        size_t want_n = 0;
        for (size_t i = 0; i < n; i++) want_n += lk_match(op, &sorted[i], &a, &b);
        for (int back = 0; back < 2; back++) {
            static const uint32_t limits[] = {0, 1, 7};
            for (size_t li = 0; li < 3; li++) {
                if (limits[li] == 1 && op != LK_ALL && op != LK_GT) continue; /* time */
                size_t got_n = 0;
                int pages = 0;
                json_t *start = NULL;
                do {
                    tbl_query_t q = {.table = table,
                                     .index = index,
                                     .keycond_expr = kc,
                                     .backward = back,
                                     .limit = limits[li],
                                     .start_key = start,
                                     .select = TBL_SELECT_ALL_PROJECTED};
                    if (tbl_query(db, &q, &e)) fail_msg("query %s: %s", conds[op], e.msg);
                    size_t i;
                    json_t *it;
                    json_array_foreach(q.items, i, it) {
                        if (got_n <= n) lk_from_av(json_object_get(it, rname), type, &got[got_n]);
                        got_n++;
                    }
                    json_decref(start);
                    start = q.last_key ? json_incref(q.last_key) : NULL;
                    tbl_query_free(&q);
                    if (++pages > 200) fail_msg("%s: query does not end", conds[op]);
                } while (start);
                if (got_n != want_n)
                    fail_msg("%s %s/%s back=%d limit=%u: %zu items, want %zu", conds[op], table,
                             index ? index : "-", back, limits[li], got_n, want_n);
                size_t w = 0;
                for (size_t i = 0; i < n; i++) {
                    size_t s = back ? n - 1 - i : i;
                    if (!lk_match(op, &sorted[s], &a, &b)) continue;
                    if (lk_cmp(&got[w], &sorted[s]))
                        fail_msg("%s %s/%s back=%d limit=%u: item %zu out of order (key of %zu "
                                 "bytes, want the one of %zu)",
                                 conds[op], table, index ? index : "-", back, limits[li], w,
                                 got[w].n, sorted[s].n);
                    w++;
                }
            }
        }
        tbl_expr_free(kc);
        json_decref(names);
        json_decref(vals);
    }
    free(got);
}

static json_t *lk_str(char c, size_t n, const char *tail) {
    char *s = malloc(n + strlen(tail) + 1);
    memset(s, c, n);
    strcpy(s + n, tail);
    json_t *av = json_pack("{s:s}", "S", s);
    free(s);
    return av;
}

/* kf: key format of the tables made (0: as before key format 1, whose tables must still work
 * after an upgrade: the engine is reopened with today's default before the checks). */
static void long_key_order(int kf) {
    char *dir = tu_tmpdir("test_tbl");
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    tr_err e = {0, ""};
    tbl__key_format_new = kf;
    /* B range keys sharing 700 bytes; a GSI and an LSI with S keys sharing 800 / 900 bytes */
    tbl_attrdef_t a[5] = {{"h", TBL_T_S},
                          {"r", TBL_T_B},
                          {"gh", TBL_T_S},
                          {"gr", TBL_T_S},
                          {"lr", TBL_T_S}};
    tbl_index_info_t ix[2] = {
        {.name = "byG", .hash = "gh", .range = "gr", .projection = TBL_PROJ_KEYS_ONLY},
        {.name = "byL", .local = 1, .hash = "h", .range = "lr", .projection = TBL_PROJ_ALL},
    };
    tbl_table_info_t d = {.name = "lks",
                          .hash = "h",
                          .range = "r",
                          .attrs = a,
                          .n_attrs = 5,
                          .indexes = ix,
                          .n_indexes = 2,
                          .billing = TBL_BILLING_PAY_PER_REQUEST};
    if (tbl_table_create(db, &d, NULL, &e)) fail_msg("create: %s", e.msg);
    static lk_key_t rk[LK_N + 10], gk[LK_N + 10], lkk[LK_N + 10];
    lk_keys(rk, LK_N + 10, TBL_T_B, 700, 0xAB);
    lk_keys(gk, LK_N + 10, TBL_T_S, 800, 'g');
    lk_keys(lkk, LK_N + 10, TBL_T_S, 900, 'l');
    /* partitions: "x" (short), P (600 bytes), and decoys under P + "q" (same first 600 bytes,
     * keys 40..49) and in the GSI under G + "q" */
    json_t *hx = lk_str('x', 1, ""), *hp = lk_str('p', 600, ""), *hq = lk_str('p', 600, "q");
    json_t *G = lk_str('G', 600, ""), *Gq = lk_str('G', 600, "q");
    for (size_t i = 0; i < LK_N + 10; i++) {
        for (int part = 0; part < 2; part++) {
            if (i >= LK_N && part) continue;
            json_t *h = i >= LK_N ? hq : part ? hp : hx;
            json_t *it = json_pack("{s:O,s:o,s:o}", "h", h, "r", lk_av(&rk[i]), "lr",
                                   lk_av(&lkk[i]));
            if (!part) {
                json_object_set(it, "gh", i >= LK_N ? Gq : G);
                json_object_set_new(it, "gr", lk_av(&gk[i]));
            }
            tbl_write_t w = {.op = TBL_OP_PUT, .table = "lks", .item = it};
            if (tbl_sync_write(db, &w, 1, &e)) fail_msg("put: %s", e.msg);
            json_decref(it);
        }
    }
    tbl__key_format_new = TBL__KEY_FORMAT;
    tbl_close(db);
    db = open_at(dir, &o);
    qsort(rk, LK_N, sizeof rk[0], lk_cmp);
    qsort(gk, LK_N, sizeof gk[0], lk_cmp);
    qsort(lkk, LK_N, sizeof lkk[0], lk_cmp);
    lk_check(db, "lks", NULL, "h", hx, "r", rk, LK_N);
    lk_check(db, "lks", NULL, "h", hp, "r", rk, LK_N);
    lk_check(db, "lks", "byG", "gh", G, "gr", gk, LK_N);
    lk_check(db, "lks", "byL", "h", hx, "lr", lkk, LK_N);
    lk_check(db, "lks", "byL", "h", hp, "lr", lkk, LK_N);
    /* entries written by a GSI backfill, values rewritten by TTL indexing: same order */
    tbl_index_info_t gi2 = {.name = "byG2",
                            .hash = "gh",
                            .range = "gr",
                            .projection = TBL_PROJ_KEYS_ONLY};
    tbl_table_update_t u = {.create_gsi = &gi2};
    if (tbl_table_update(db, "lks", &u, NULL, &e)) fail_msg("update: %s", e.msg);
    if (tbl_ttl_update(db, "lks", "exp", 1, &e)) fail_msg("ttl: %s", e.msg);
    wait_background(db);
    lk_check(db, "lks", "byG2", "gh", G, "gr", gk, LK_N);
    lk_check(db, "lks", NULL, "h", hp, "r", rk, LK_N);
    lk_check(db, "lks", "byL", "h", hx, "lr", lkk, LK_N);

    /* N range keys under a long partition key (format 0: every key of the partition folded) */
    tbl__key_format_new = kf;
    create(db, "lkn", "h", TBL_T_S, "r", TBL_T_N);
    tbl__key_format_new = TBL__KEY_FORMAT;
    static lk_key_t nk[LK_N];
    lk_keys(nk, LK_N, TBL_T_N, 0, 0);
    for (size_t i = 0; i < LK_N; i++) {
        json_t *it = json_pack("{s:O,s:o}", "h", hp, "r", lk_av(&nk[i]));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "lkn", .item = it};
        if (tbl_sync_write(db, &w, 1, &e)) fail_msg("put: %s", e.msg);
        json_decref(it);
    }
    qsort(nk, LK_N, sizeof nk[0], lk_cmp);
    lk_check(db, "lkn", NULL, "h", hp, "r", nk, LK_N);

    /* Scan pages through every item exactly once */
    size_t seen = 0;
    json_t *start = NULL;
    json_t *keys = json_object();
    do {
        tbl_query_t q = {.table = "lks", .scan = 1, .limit = 3, .start_key = start};
        assert_int_equal(tbl_query(db, &q, &e), 0);
        size_t i;
        json_t *it;
        json_array_foreach(q.items, i, it) {
            json_t *kj = json_pack("{s:O,s:O}", "h", json_object_get(it, "h"), "r",
                                   json_object_get(it, "r"));
            char *k = json_dumps(kj, JSON_SORT_KEYS | JSON_COMPACT);
            json_decref(kj);
            assert_null(json_object_get(keys, k));
            json_object_set_new(keys, k, json_true());
            free(k);
            seen++;
        }
        json_decref(start);
        start = q.last_key ? json_incref(q.last_key) : NULL;
        tbl_query_free(&q);
    } while (start);
    assert_int_equal(seen, 2 * LK_N + 10);
    json_decref(keys);

    json_decref(hx);
    json_decref(hp);
    json_decref(hq);
    json_decref(G);
    json_decref(Gq);
    tbl_close(db);
    tu_tmpdir_done(dir);
}

static void test_long_key_order(void **state) {
    (void)state;
    long_key_order(TBL__KEY_FORMAT);
}

/* Keys around the fold threshold: stored lengths from ~460 to ~540 bytes (short, raw past 479,
 * exactly 511, folded) in one partition, sharing a 440-byte prefix, tails with 0x00 and 0xFF. */
static void test_key_order_at_fold_threshold(void **state) {
    const char *dir = *state;
    tbl_opts_t o = test_opts();
    tbl_t *db = open_at(dir, &o);
    tr_err e = {0, ""};
    create(db, "thr", "h", TBL_T_S, "r", TBL_T_B);
    static lk_key_t k[3 * LK_N];
    size_t n = sizeof k / sizeof k[0];
    static const uint8_t parts[] = {0x00, 0x01, 0xFE, 0xFF, 'a'};
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            lk_key_t *x = &k[i];
            memset(x, 0, sizeof *x);
            x->type = TBL_T_B;
            x->n = 440 + lk_rand() % 80;
            memset(x->b, 'a', x->n);
            for (size_t t = 0; t < 6 && t < x->n; t++) x->b[x->n - 1 - t] = parts[lk_rand() % 5];
            if (lk_rand() % 4 == 0) x->b[430] = 0x00;   /* escaped: the encoding grows */
            int dup = 0;
            for (size_t j = 0; j < i; j++) dup |= !lk_cmp(&k[j], x);
            if (!dup) break;
        }
        json_t *it = json_pack("{s:{s:s},s:o}", "h", "S", "x", "r", lk_av(&k[i]));
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "thr", .item = it};
        if (tbl_sync_write(db, &w, 1, &e)) fail_msg("put: %s", e.msg);
        json_decref(it);
    }
    qsort(k, n, sizeof k[0], lk_cmp);
    json_t *hv = json_pack("{s:s}", "S", "x");
    lk_check(db, "thr", NULL, "h", hv, "r", k, n);
    /* a bound longer than any key encoding (6000 bytes): refused, not read with a cut bound */
    char *huge = malloc(8001);
    memset(huge, 'z', 8000);
    huge[8000] = 0;
    json_t *bv = json_pack("{s:O,s:{s:s}}", ":h", hv, ":a", "B", huge);
    free(huge);
    tbl_expr_t *kc = NULL;
    if (tbl_expr_parse(TBL_EXPR_KEY_CONDITION, "h = :h AND r < :a", NULL, bv, NULL, &kc, &e))
        fail_msg("keycond: %s", e.msg);
    tbl_query_t q = {.table = "thr", .keycond_expr = kc};
    assert_int_equal(tbl_query(db, &q, &e), TR_EVALIDATION);
    assert_null(q.items);
    tbl_expr_free(kc);
    json_decref(bv);
    json_decref(hv);
    tbl_close(db);
}

static void test_long_key_order_format0(void **state) {
    (void)state;
    long_key_order(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TU_DIR_TEST(test_create_describe_list_delete),
        TU_DIR_TEST(test_put_get_delete),
        TU_DIR_TEST(test_return_values),
        TU_DIR_TEST(test_conditions),
        TU_DIR_TEST(test_query_ranges),
        TU_DIR_TEST(test_query_page_bytes),
        TU_DIR_TEST(test_scan_segments),
        TU_DIR_TEST(test_index_maintenance),
        TU_DIR_TEST(test_gsi_backfill_and_delete),
        TU_DIR_TEST(test_gsi_backfill_in_background),
        TU_DIR_TEST(test_delete_table_in_background),
        TU_DIR_TEST(test_ttl_enable_in_background),
        TU_DIR_TEST(test_txn_basic),
        TU_DIR_TEST(test_txn_idempotency),
        TU_DIR_TEST(test_txn_concurrent),
        TU_DIR_TEST(test_concurrent_add),
        TU_DIR_TEST(test_ttl),
        TU_DIR_TEST(test_reopen),
        TU_DIR_TEST(test_throttling),
        TU_DIR_TEST(test_batch_invalid_writes_nothing),
        cmocka_unit_test(test_batch_checked_again_at_apply),
        cmocka_unit_test(test_batch_table_deleted_before_apply),
        TU_DIR_TEST(test_update_remove_on_missing_creates_nothing),
        TU_DIR_TEST(test_sync_api),
        TU_DIR_TEST(test_key_order),
        cmocka_unit_test(test_long_key_order),
        cmocka_unit_test(test_long_key_order_format0),
        TU_DIR_TEST(test_key_order_at_fold_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
