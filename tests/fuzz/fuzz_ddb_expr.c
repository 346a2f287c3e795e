/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_ddb_expr.c -- DynamoDB expressions (table/expr.h): parse, then evaluate what parsed.
 *
 * Input: up to four lines (split at the first three '\n'):
 *     1  the expression text
 *     2  ExpressionAttributeNames as JSON (absent, empty or not an object: none)
 *     3  ExpressionAttributeValues as JSON, validated as AttributeValues (else: none)
 *     4  the item to evaluate against as JSON, validated as an item (else: a built-in item with
 *        nested maps, lists, sets, numbers and binary)
 * The text is parsed as each of the five kinds.  Checked:
 *   - parsing never crashes, and a failure always has a message;
 *   - a condition / filter evaluates to 0 or 1, on the item and on no item, and NOT (cond)
 *     evaluates to the opposite when both evaluate;
 *   - an update applied to the item gives an object that keeps the key, whose size can be taken
 *     and which is still a valid item when within the size and depth limits; the update's
 *     touched names and UPDATED_OLD / NEW projections are objects; an update that creates
 *     nothing (REMOVE / DELETE only) applied to no item leaves only the key;
 *   - a projection gives an object with no attribute the item does not have;
 *   - a key condition resolves (or fails with a message) against key names "pk" / "sk";
 *   - the usage check of names and values never crashes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "table/expr.h"
#include "table/item.h"

static const char *const default_item =
    "{\"pk\":{\"S\":\"key\"},\"sk\":{\"N\":\"7\"},\"a\":{\"N\":\"1.5\"},\"s\":{\"S\":\"abc\"},"
    "\"b\":{\"B\":\"AAEC\"},\"t\":{\"BOOL\":true},\"n\":{\"NULL\":true},"
    "\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"x\"},{\"M\":{\"q\":{\"N\":\"2\"}}},{\"L\":[]}]},"
    "\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"y\":{\"L\":[{\"S\":\"a\"}]},\"z\":{\"M\":{}}}},"
    "\"ss\":{\"SS\":[\"a\",\"b\"]},\"ns\":{\"NS\":[\"1\",\"-2.5\"]},\"bs\":{\"BS\":[\"AA==\"]}}";

/* Line i of the input (0-based) into a fresh NUL-terminated string; NULL if absent. */
static char *line(const uint8_t *data, size_t size, int i) {
    size_t start = 0;
    for (int k = 0; k < i; k++) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        if (!nl) return NULL;
        start = (size_t)(nl - data) + 1;
    }
    size_t end = size;
    if (i < 3) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        if (nl) end = (size_t)(nl - data);
    }
    char *s = malloc(end - start + 1);
    FUZZ_CHECK(s);
    memcpy(s, data + start, end - start);
    s[end - start] = 0;
    return s;
}

static json_t *load_obj(const char *s) {
    if (!s || !*s) return NULL;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void check_cond(const tbl_expr_t *e, const char *text, const json_t *names,
                       const json_t *values, const json_t *item) {
    int r1 = -1, r2 = -1;
    tr_err err = {0};
    if (tbl_expr_eval(e, item, &r1, &err) == 0) FUZZ_CHECK(r1 == 0 || r1 == 1);
    else FUZZ_CHECK(err.msg[0]);
    if (tbl_expr_eval(e, NULL, &r2, &err) == 0) FUZZ_CHECK(r2 == 0 || r2 == 1);
    /* NOT (text) is the negation whenever both evaluate */
    size_t n = strlen(text);
    char *neg = malloc(n + 8);
    FUZZ_CHECK(neg);
    memcpy(neg, "NOT (", 5);
    memcpy(neg + 5, text, n);
    memcpy(neg + 5 + n, ")", 2);
    tbl_expr_t *ne = NULL;
    if (tbl_expr_parse(TBL_EXPR_CONDITION, neg, (json_t *)names, (json_t *)values, NULL, &ne,
                       &err) == 0) {
        int q = -1;
        if (r1 >= 0 && tbl_expr_eval(ne, item, &q, &err) == 0) FUZZ_CHECK(q == !r1);
        tbl_expr_free(ne);
    }
    free(neg);
}

static void check_update(const tbl_expr_t *e, const json_t *item, const json_t *key) {
    tr_err err = {0};
    json_t *out = NULL;
    if (tbl_expr_update(e, item, key, &out, &err) == 0) {
        FUZZ_CHECK(json_is_object(out));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)key, k, v) FUZZ_CHECK(json_equal(json_object_get(out, k), v));
        size_t sz = tbl_item_size(out);
        if (sz <= TBL_MAX_ITEM_BYTES && tbl_item_depth_check(out, &err) == 0) {
            json_t *copy = json_deep_copy(out);
            FUZZ_CHECK(tbl_item_validate(copy, &err) == 0);
            json_decref(copy);
        }
        json_t *p = tbl_expr_update_project(e, item);
        FUZZ_CHECK(json_is_object(p));
        json_decref(p);
        p = tbl_expr_update_project(e, out);
        FUZZ_CHECK(json_is_object(p));
        json_decref(p);
        json_decref(out);
    } else {
        FUZZ_CHECK(out == NULL && err.msg[0]);
    }
    json_t *touched = tbl_expr_update_touched(e);
    FUZZ_CHECK(json_is_array(touched));
    json_decref(touched);
    out = NULL;
    if (tbl_expr_update(e, NULL, key, &out, &err) == 0) {
        if (!tbl_expr_update_creates(e)) FUZZ_CHECK(json_equal(out, key));
        json_decref(out);
    }
}

static void check_projection(const tbl_expr_t *e, const json_t *item) {
    json_t *p = tbl_expr_project(e, item);
    FUZZ_CHECK(json_is_object(p));
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v) FUZZ_CHECK(json_object_get(item, k) != NULL);
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = line(data, size, 0), *ns = line(data, size, 1), *vs = line(data, size, 2),
         *is = line(data, size, 3);
    json_t *names = load_obj(ns), *values = load_obj(vs), *item = load_obj(is);
    tr_err err = {0};
    if (values) {
        const char *k;
        json_t *v;
        int ok = 1;
        json_object_foreach(values, k, v) if (tbl_av_validate(v, &err)) ok = 0;
        if (!ok) {
            json_decref(values);
            values = NULL;
        }
    }
    if (item && tbl_item_validate(item, &err)) {
        json_decref(item);
        item = NULL;
    }
    if (!item) item = json_loads(default_item, 0, NULL);
    FUZZ_CHECK(item);
    json_t *key = json_object();
    json_object_set_new(key, "pk", json_pack("{s:s}", "S", "key"));
    json_object_set_new(key, "sk", json_pack("{s:s}", "N", "7"));
    json_object_update(item, key);   /* the item has the key, as a stored one does */

    static const int kinds[] = {TBL_EXPR_CONDITION, TBL_EXPR_FILTER, TBL_EXPR_KEY_CONDITION,
                                TBL_EXPR_UPDATE, TBL_EXPR_PROJECTION};
    tbl_expr_usage_t usage = {0};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        tbl_expr_t *e = NULL;
        tr_err pe = {0};
        int rc = tbl_expr_parse(kinds[i], text, names, values, &usage, &e, &pe);
        if (rc) {
            FUZZ_CHECK(rc < 0 && e == NULL && pe.msg[0]);
            continue;
        }
        FUZZ_CHECK(e != NULL);
        switch (kinds[i]) {
        case TBL_EXPR_CONDITION:
        case TBL_EXPR_FILTER: check_cond(e, text, names, values, item); break;
        case TBL_EXPR_UPDATE: check_update(e, item, key); break;
        case TBL_EXPR_PROJECTION: check_projection(e, item); break;
        case TBL_EXPR_KEY_CONDITION: {
            tbl_keycond_t kc;
            if (tbl_expr_keycond(e, "pk", "sk", &kc, &err) == 0) FUZZ_CHECK(kc.hash != NULL);
            else FUZZ_CHECK(err.msg[0]);
            if (tbl_expr_keycond(e, "pk", NULL, &kc, &err) == 0)
                FUZZ_CHECK(kc.range_op == TBL_KC_NONE);
            break;
        }
        }
        tbl_expr_free(e);
    }
    (void)tbl_expr_usage_check(&usage, names, values, &err);
    tbl_expr_usage_free(&usage);

    json_decref(key);
    json_decref(item);
    json_decref(names);
    json_decref(values);
    free(text);
    free(ns);
    free(vs);
    free(is);
    return 0;
}
