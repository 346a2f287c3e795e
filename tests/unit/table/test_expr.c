/* SPDX-License-Identifier: Apache-2.0
 *
 * test_expr.c -- DynamoDB expressions (table/expr.h): parse errors, conditions, updates,
 * projections, key conditions, attribute name / value usage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table/expr.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

#define J tu_json   /* testutil.h: parse test JSON or fail the test */

/* Names / values used by the expressions of one test case; they must outlive the expression. */
typedef struct ctx {
    json_t *names, *values;
    tbl_expr_t *e;
} ctx_t;

static void ctx_free(ctx_t *c) {
    tbl_expr_free(c->e);
    json_decref(c->names);
    json_decref(c->values);
    memset(c, 0, sizeof *c);
}

/* Parse or fail the test with DynamoDB's message. */
static tbl_expr_t *parse_ok(ctx_t *c, int kind, const char *text, const char *names,
                            const char *values) {
    c->names = J(names);
    c->values = J(values);
    tr_err err = {0, ""};
    int rc = tbl_expr_parse(kind, text, c->names, c->values, NULL, &c->e, &err);
    if (rc) fail_msg("parse of \"%s\" failed: %s", text, err.msg);
    return c->e;
}

/* Parse must fail with exactly msg. */
static void parse_err(int kind, const char *text, const char *names, const char *values,
                      const char *msg) {
    ctx_t c = {J(names), J(values), NULL};
    tr_err err = {0, ""};
    int rc = tbl_expr_parse(kind, text, c.names, c.values, NULL, &c.e, &err);
    if (rc == 0) fail_msg("parse of \"%s\" succeeded, expected: %s", text, msg);
    assert_int_equal(rc, TR_EVALIDATION);
    assert_int_equal(err.code, TR_EVALIDATION);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("\"%s\":\n  got      %s\n  expected %s", text, err.msg, msg);
    assert_null(c.e);
    ctx_free(&c);
}

static int eval_cond(const char *text, const char *names, const char *values, const json_t *item) {
    ctx_t c = {0};
    parse_ok(&c, TBL_EXPR_FILTER, text, names, values);
    int r = -1;
    tr_err err = {0, ""};
    assert_int_equal(tbl_expr_eval(c.e, item, &r, &err), 0);
    ctx_free(&c);
    return r;
}

static void assert_json(const json_t *got, const char *want) {
    json_t *w = J(want);
    if (!json_equal((json_t *)got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
        char *x = json_dumps(w, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("json mismatch:\n  got      %s\n  expected %s", g, x);
    }
    json_decref(w);
}

/* Apply an update; returns the new item (caller decrefs) or NULL with *msg filled. */
static json_t *update(const char *text, const char *names, const char *values, const char *item,
                      const char *key, char *msg) {
    ctx_t c = {0};
    parse_ok(&c, TBL_EXPR_UPDATE, text, names, values);
    json_t *it = J(item), *k = J(key), *out = NULL;
    char *before = it ? json_dumps(it, JSON_SORT_KEYS) : NULL;
    tr_err err = {0, ""};
    int rc = tbl_expr_update(c.e, it, k, &out, &err);
    if (msg) strcpy(msg, rc ? err.msg : "");
    if (rc) assert_null(out);
    if (it) { /* the caller's item is never modified */
        char *after = json_dumps(it, JSON_SORT_KEYS);
        assert_string_equal(before, after);
        free(after);
    }
    /* tbl_expr_update_inplace on a fresh copy: the same result, member order included, in the
       item itself; the same error, the item unchanged */
    json_t *it2 = J(item), *out2 = NULL;
    tr_err err2 = {0, ""};
    int rc2 = tbl_expr_update_inplace(c.e, it2, k, &out2, &err2);
    assert_int_equal(rc2, rc);
    assert_string_equal(err2.msg, err.msg);
    if (rc2) {
        assert_null(out2);
        if (it2) {
            char *after = json_dumps(it2, JSON_SORT_KEYS);
            assert_string_equal(before, after);
            free(after);
        }
    } else {
        if (it2) assert_ptr_equal(out2, it2);
        char *a = json_dumps(out, JSON_COMPACT), *b = json_dumps(out2, JSON_COMPACT);
        assert_string_equal(a, b);
        free(a);
        free(b);
        json_decref(out2);
    }
    json_decref(it2);
    free(before);
    json_decref(it);
    json_decref(k);
    ctx_free(&c);
    return out;
}

static void update_ok(const char *text, const char *names, const char *values, const char *item,
                      const char *key, const char *want) {
    char msg[TR_ERR_MSG_MAX];
    json_t *out = update(text, names, values, item, key, msg);
    if (!out) fail_msg("update \"%s\" failed: %s", text, msg);
    assert_json(out, want);
    json_decref(out);
}

static void update_err(const char *text, const char *names, const char *values, const char *item,
                       const char *key, const char *want) {
    char msg[TR_ERR_MSG_MAX];
    json_t *out = update(text, names, values, item, key, msg);
    if (out) fail_msg("update \"%s\" succeeded, expected: %s", text, want);
    if (strcmp(msg, want) != 0) fail_msg("\"%s\":\n  got      %s\n  expected %s", text, msg, want);
}

/* ---- conditions ---------------------------------------------------------------------------- */

static const char *ITEM =
    "{\"n\":{\"N\":\"5\"},\"s\":{\"S\":\"abc\"},\"b\":{\"B\":\"AQID\"},"
    "\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"x\"}]},"
    "\"m\":{\"M\":{\"k\":{\"S\":\"v\"},\"n\":{\"N\":\"2\"},\"deep\":{\"M\":{\"z\":{\"L\":[{\"N\":"
    "\"7\"}]}}}}},"
    "\"ss\":{\"SS\":[\"a\",\"b\"]},\"ns\":{\"NS\":[\"1\",\"2.5\"]},\"bs\":{\"BS\":[\"AQ==\"]},"
    "\"t\":{\"BOOL\":true},\"z\":{\"NULL\":true},\"u\":{\"S\":\"h\\u00e9llo\"},"
    "\"e\":{\"S\":\"\"}}";

static const char *VALS =
    "{\":zero\":{\"N\":\"0\"},\":one\":{\"N\":\"1\"},\":two\":{\"N\":\"2\"},"
    "\":three\":{\"N\":\"3\"},\":four\":{\"N\":\"4\"},\":five\":{\"N\":\"5\"},"
    "\":fivep\":{\"N\":\"5.00\"},\":six\":{\"N\":\"6\"},\":seven\":{\"N\":\"7\"},"
    "\":s5\":{\"S\":\"5\"},\":abc\":{\"S\":\"abc\"},\":ab\":{\"S\":\"ab\"},\":abd\":{\"S\":\"abd\"}"
    ","
    "\":bc\":{\"S\":\"bc\"},\":x\":{\"S\":\"x\"},\":v\":{\"S\":\"v\"},\":a\":{\"S\":\"a\"},"
    "\":c\":{\"S\":\"c\"},\":empty\":{\"S\":\"\"},\":twop5\":{\"N\":\"2.50\"},\":s2\":{\"S\":\"2\"}"
    ","
    "\":b01\":{\"B\":\"AQ==\"},\":b0203\":{\"B\":\"AgM=\"},\":b02\":{\"B\":\"Ag==\"},"
    "\":true\":{\"BOOL\":true},\":false\":{\"BOOL\":false},\":null\":{\"NULL\":true},"
    "\":ssba\":{\"SS\":[\"b\",\"a\"]},\":list\":{\"L\":[{\"N\":\"1.0\"},{\"S\":\"x\"}]},"
    "\":tN\":{\"S\":\"N\"},\":tS\":{\"S\":\"S\"},\":tSS\":{\"S\":\"SS\"},\":tM\":{\"S\":\"M\"},"
    "\":tL\":{\"S\":\"L\"},\":tNULL\":{\"S\":\"NULL\"},\":tBOOL\":{\"S\":\"BOOL\"},"
    "\":mkv\":{\"M\":{\"k\":{\"S\":\"v\"}}}}";

typedef struct {
    const char *expr;
    int want;
} cond_case_t;

static void run_conds(const cond_case_t *cases, size_t n, const char *item_text) {
    json_t *item = J(item_text);
    for (size_t i = 0; i < n; i++) {
        int got = eval_cond(cases[i].expr, NULL, VALS, item);
        if (got != cases[i].want)
            fail_msg("\"%s\": got %d, expected %d", cases[i].expr, got, cases[i].want);
    }
    json_decref(item);
}

static void cond_comparators(void **st) {
    (void)st;
    static const cond_case_t cases[] = {
        {"n = :five", 1},
        {"n = :fivep", 1},
        {"n = :four", 0},
        {":five = n", 1},
        {"n <> :five", 0},
        {"n <> :four", 1},
        {"n = :s5", 0},
        {"n <> :s5", 1},
        {"n < :six", 1},
        {"n < :five", 0},
        {"n <= :five", 1},
        {"n > :four", 1},
        {"n > :five", 0},
        {"n >= :five", 1},
        {"n >= :six", 0},
        {":four < n", 1},
        {"s < :abd", 1},
        {"s > :ab", 1},
        {"s >= :abc", 1},
        {"s < :ab", 0},
        {"n < :abc", 0},
        {"n > :abc", 0},
        {"s > :one", 0}, /* types differ: false */
        {"b > :b01", 1},
        {"b < :b02", 1},
        {"b >= :b0203", 0},
        {"q = :five", 0},
        {"q <> :five", 1},
        {"q < :five", 0},
        {"q >= :five", 0},
        {"t = :true", 1},
        {"t = :false", 0},
        {"z = :null", 1},
        {"t <> :null", 1},
        {"ss = :ssba", 1},
        {"l = :list", 1},
        {"m.k = :v", 1},
        {"m = :mkv", 0},
        {"n = m.n", 0},
        {"n > m.n", 1},
        {"m.n < n", 1},
        {"e = :empty", 1},
        {"n BETWEEN :four AND :six", 1},
        {"n BETWEEN :five AND :five", 1},
        {"n BETWEEN :six AND :seven", 0},
        {"n between :one and :four", 0},
        {"s BETWEEN :ab AND :abd", 1},
        {"s BETWEEN :one AND :two", 0},
        {"q BETWEEN :one AND :six", 0},
        {"n IN (:four, :five)", 1},
        {"n IN (:four, :six)", 0},
        {"n in (:fivep)", 1},
        {"s IN (:abc)", 1},
        {"q IN (:abc, :five)", 0},
        {"ss IN (:ssba)", 1},
        {"n IN (m.n, :five)", 1},
    };
    run_conds(cases, sizeof cases / sizeof cases[0], ITEM);
}

static void cond_paths(void **st) {
    (void)st;
    static const cond_case_t cases[] = {
        {"m.k = :v", 1},
        {"m.n = :two", 1},
        {"m.q = :v", 0},
        {"m.k.z = :v", 0},
        {"l[0] = :one", 1},
        {"l[1] = :x", 1},
        {"l[2] = :x", 0},
        {"l[5] = :x", 0},
        {"l.k = :x", 0},
        {"m[0] = :v", 0},
        {"s[0] = :a", 0},
        {"m.deep.z[0] = :seven", 1},
        {"m.deep.z[1] = :seven", 0},
        {"attribute_exists(m.deep.z[0])", 1},
    };
    run_conds(cases, sizeof cases / sizeof cases[0], ITEM);
}

static void cond_functions(void **st) {
    (void)st;
    static const cond_case_t cases[] = {
        {"attribute_exists(n)", 1},
        {"attribute_exists(q)", 0},
        {"attribute_exists(m.k)", 1},
        {"attribute_exists(m.q)", 0},
        {"attribute_exists(l[1])", 1},
        {"attribute_exists(l[2])", 0},
        {"attribute_exists(z)", 1},
        {"attribute_not_exists(q)", 1},
        {"attribute_not_exists(n)", 0},
        {"attribute_type(n, :tN)", 1},
        {"attribute_type(n, :tS)", 0},
        {"attribute_type(ss, :tSS)", 1},
        {"attribute_type(m, :tM)", 1},
        {"attribute_type(l, :tL)", 1},
        {"attribute_type(z, :tNULL)", 1},
        {"attribute_type(t, :tBOOL)", 1},
        {"attribute_type(q, :tS)", 0},
        {"attribute_type(m.k, :tS)", 1},
        {"begins_with(s, :ab)", 1},
        {"begins_with(s, :abc)", 1},
        {"begins_with(s, :bc)", 0},
        {"begins_with(s, :abd)", 0},
        {"begins_with(s, :empty)", 1},
        {"begins_with(q, :ab)", 0},
        {"begins_with(n, :ab)", 0},
        {"begins_with(b, :b01)", 1},
        {"begins_with(b, :b02)", 0},
        {"begins_with(s, :b01)", 0},
        {"begins_with(:abc, :ab)", 1},
        {"contains(s, :bc)", 1},
        {"contains(s, :abc)", 1},
        {"contains(s, :x)", 0},
        {"contains(b, :b0203)", 1},
        {"contains(b, :b01)", 1},
        {"contains(ss, :a)", 1},
        {"contains(ss, :c)", 0},
        {"contains(ss, :ab)", 0},
        {"contains(ns, :twop5)", 1},
        {"contains(ns, :two)", 0},
        {"contains(ns, :one)", 1},
        {"contains(ns, :s2)", 0},
        {"contains(bs, :b01)", 1},
        {"contains(bs, :b02)", 0},
        {"contains(l, :x)", 1},
        {"contains(l, :one)", 1},
        {"contains(l, :two)", 0},
        {"contains(m, :v)", 0},
        {"contains(n, :five)", 0},
        {"contains(q, :a)", 0},
        {"size(s) = :three", 1},
        {"size(u) = :six", 1}, /* UTF-8 bytes: h, two for e-acute */
        {"size(b) = :three", 1},
        {"size(ss) = :two", 1},
        {"size(ns) = :two", 1},
        {"size(bs) = :one", 1},
        {"size(l) = :two", 1},
        {"size(m) = :three", 1},
        {"size(e) = :zero", 1},
        {"size(m.deep.z) = :one", 1},
        {"size(s) > :two", 1},
        {"size(s) BETWEEN :one AND :three", 1},
        {"size(s) IN (:one, :three)", 1},
        {"size(n) = :one", 0},
        {"size(n) <> :one", 1},
        {"size(t) > :zero", 0},
        {"size(q) >= :zero", 0},
        {"size(:abc) = :three", 1},
        {"size(s) = size(l)", 0},
        {"size(ss) = size(l)", 1},
    };
    run_conds(cases, sizeof cases / sizeof cases[0], ITEM);
}

static void cond_logic_and_precedence(void **st) {
    (void)st;
    static const cond_case_t cases[] = {
        {"n = :five AND s = :abc", 1},
        {"n = :five AND s = :x", 0},
        {"n = :four OR s = :abc", 1},
        {"n = :four OR s = :x", 0},
        {"NOT n = :four", 1},
        {"NOT n = :five", 0},
        {"NOT NOT n = :five", 1},
        {"not attribute_exists(q)", 1},
        /* AND binds tighter than OR */
        {"n = :five OR s = :x AND s = :x", 1},
        {"s = :x AND s = :x OR n = :five", 1},
        {"(n = :five OR s = :x) AND s = :x", 0},
        /* NOT binds tighter than AND */
        {"NOT n = :four AND s = :x", 0},
        {"NOT (n = :four AND s = :x)", 1},
        {"NOT n = :five OR n = :five", 1},
        {"NOT (n = :five OR n = :five)", 0},
        {"((n = :five) AND (s = :abc)) OR (n = :one)", 1},
        {"(n) = :five", 1},
        {"(n) BETWEEN (:four) AND (:six)", 1},
        {"n = (:five)", 1},
        {"attribute_exists((n))", 1},
        {"n=:five and(s=:abc)", 1},
        {"n = :one OR n = :two OR n = :three OR n = :five", 1},
        {"n = :five AND s = :abc AND l[1] = :x AND NOT z <> :null", 1},
        {"n BETWEEN :one AND :six AND s = :abc", 1},
        {"n BETWEEN :one AND :six AND s = :x", 0},
        {"n > :one aNd n < :six oR n = :zero", 1},
    };
    run_conds(cases, sizeof cases / sizeof cases[0], ITEM);
}

static void cond_no_item(void **st) {
    (void)st;
    assert_int_equal(eval_cond("attribute_not_exists(id)", NULL, NULL, NULL), 1);
    assert_int_equal(eval_cond("attribute_exists(id)", NULL, NULL, NULL), 0);
    assert_int_equal(eval_cond("id = :five", NULL, VALS, NULL), 0);
    assert_int_equal(eval_cond("id <> :five", NULL, VALS, NULL), 1);
    assert_int_equal(eval_cond("NOT contains(id, :a)", NULL, VALS, NULL), 1);
}

static void cond_names(void **st) {
    (void)st;
    json_t *item = J(ITEM);
    assert_int_equal(eval_cond("#s = :abc", "{\"#s\":\"s\"}", VALS, item), 1);
    assert_int_equal(eval_cond("#m.#k = :v", "{\"#m\":\"m\",\"#k\":\"k\"}", VALS, item), 1);
    assert_int_equal(eval_cond("#m.k = :v AND #m.#n = :two", "{\"#m\":\"m\",\"#n\":\"n\"}", VALS,
                               item),
                     1);
    /* a name holding a dot is one attribute, not a path */
    json_t *dotted = J("{\"a.b\":{\"S\":\"x\"},\"a\":{\"M\":{\"b\":{\"S\":\"y\"}}}}");
    assert_int_equal(eval_cond("#ab = :x", "{\"#ab\":\"a.b\"}", VALS, dotted), 1);
    assert_int_equal(eval_cond("a.b = :x", NULL, VALS, dotted), 0);
    /* reserved words are fine through a name */
    json_t *st2 = J("{\"status\":{\"S\":\"x\"}}");
    assert_int_equal(eval_cond("#st = :x", "{\"#st\":\"status\"}", VALS, st2), 1);
    assert_int_equal(eval_cond("#l[1] = :x", "{\"#l\":\"l\"}", VALS, item), 1);
    json_decref(st2);
    json_decref(dotted);
    json_decref(item);
}

/* ---- parse errors --------------------------------------------------------------------------- */

typedef struct {
    int kind;
    const char *text;
    const char *names, *values;
    const char *msg;
} err_case_t;

#define F TBL_EXPR_FILTER
#define C TBL_EXPR_CONDITION
#define U TBL_EXPR_UPDATE
#define P TBL_EXPR_PROJECTION
#define K TBL_EXPR_KEY_CONDITION

static void run_errs(const err_case_t *c, size_t n) {
    for (size_t i = 0; i < n; i++)
        parse_err(c[i].kind, c[i].text, c[i].names, c[i].values, c[i].msg);
}

static void syntax_errors(void **st) {
    (void)st;
    static const err_case_t cases[] = {
        {F, "a > 4", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"4\", near: \"> 4\""},
        {C, "a =", NULL, NULL,
         "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"=\""},
        {C, "a = :v b", NULL, NULL,
         "Invalid ConditionExpression: Syntax error; token: \"b\", near: \":v b\""},
        {C, "a", NULL, NULL,
         "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"a\""},
        {C, ":v", NULL, NULL,
         "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \":v\""},
        {F, "things are not gonna be ok", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"are\", near: \"things are not\""},
        {F, "a AND b = :v", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"AND\", near: \"a AND b\""},
        {F, "NOT a", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"<EOF>\", near: \"a\""},
        {F, "a in (b,c,)", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \")\", near: \",)\""},
        {F, "a in b", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"b\", near: \"in b\""},
        {F, "a in ()", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \")\", near: \"()\""},
        {F, "a between b", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"<EOF>\", near: \"b\""},
        {F, "a > between", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"between\", near: \"> between\""},
        {F, "a = (b = c)", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"=\", near: \"b = c\""},
        {F, "(a = b) = c", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"=\", near: \") = c\""},
        {F, "a.:a < b", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \":a\", near: \".:a <\""},
        {F, "attribute_exists(asdf[a])", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"a\", near: \"[a]\""},
        {F, "b[1.5] = a", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \".\", near: \"1.5\""},
        {F, "a > :things.stuff", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \".\", near: \":things.stuff\""},
        {F, "size(a).b > a", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \".\", near: \").b\""},
        {F, "a + b = c", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"+\", near: \"a + b\""},
        {F, "Pictures-RearView = :v", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"-\", near: \"Pictures-RearView\""},
        {F, "#$.b > a", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"#\", near: \"#$\""},
        {F, "\xc3\xbc > a", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"\xc3\xbc\", near: \"\xc3\xbc >\""},
        {F, "a = \"x\"", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"\"\", near: \"= \"x\""},
        {F, "(a = :v", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"<EOF>\", near: \":v\""},
        {F, "a = :v)", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \")\", near: \":v)\""},
        {F, "a == :v", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \"=\", near: \"== :v\""},
        {F, "attribute_exists()", NULL, NULL,
         "Invalid FilterExpression: Syntax error; token: \")\", near: \"()\""},
        {U, "whatever", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"whatever\", near: \"whatever\""},
        {U, "set a", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"a\""},
        {U, "SET a =", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"=\""},
        {U, "ADD hits : incr", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \":\", near: \"hits : incr\""},
        {U, "SET numx = numx / :v", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"/\", near: \"numx / :v\""},
        {U, "set a = b + c + d", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"+\", near: \"c + d\""},
        {U, "SET a = b +", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"+\""},
        {U, "set a[1] = 1", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"1\", near: \"= 1\""},
        {U, "remove a = b", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"=\", near: \"a = b\""},
        {U, "add a b", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"b\", near: \"a b\""},
        {U, "delete a", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"a\""},
        {U, "set :a = b", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \":a\", near: \"set :a =\""},
        {U, "set a=set", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"set\", near: \"=set\""},
        {U, "SET if_not_exists(a, b) = a", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"(\", near: \"if_not_exists(a\""},
        {U, "set (a = (b + c))", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"(\", near: \"set (a\""},
        {U, "SET a = if_not_exists(a, 100)", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"100\", near: \", 100)\""},
        {U, "SET a = :v,", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \",\""},
        {U, "SET a = :v REMOVE", NULL, NULL,
         "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"REMOVE\""},
        {P, "a b", NULL, NULL,
         "Invalid ProjectionExpression: Syntax error; token: \"b\", near: \"a b\""},
        {P, "a,", NULL, NULL,
         "Invalid ProjectionExpression: Syntax error; token: \"<EOF>\", near: \",\""},
        {P, "a, :v", NULL, NULL,
         "Invalid ProjectionExpression: Syntax error; token: \":v\", near: \", :v\""},
        {K, "id = :v AND", NULL, NULL,
         "Invalid KeyConditionExpression: Syntax error; token: \"<EOF>\", near: \"AND\""},
        /* redundant parentheses */
        {F, "a=a and a > ((views))", NULL, NULL,
         "Invalid FilterExpression: The expression has redundant parentheses;"},
        {F, "a=:a AND ((a=:a AND a=:a)) AND a=:a", NULL, NULL,
         "Invalid FilterExpression: The expression has redundant parentheses;"},
        {F, "((a = :v))", NULL, NULL,
         "Invalid FilterExpression: The expression has redundant parentheses;"},
        {U, "SET a = ((b))", NULL, NULL,
         "Invalid UpdateExpression: The expression has redundant parentheses;"},
        /* empty and oversized */
        {C, "", NULL, NULL, "Invalid ConditionExpression: The expression can not be empty;"},
        {U, "  \t ", NULL, NULL, "Invalid UpdateExpression: The expression can not be empty;"},
        {P, "", NULL, NULL, "Invalid ProjectionExpression: The expression can not be empty;"},
        {K, " ", NULL, NULL, "Invalid KeyConditionExpression: The expression can not be empty;"},
    };
    run_errs(cases, sizeof cases / sizeof cases[0]);

    char big[4200];
    memset(big, 0, sizeof big);
    strcpy(big, "a = :v");
    for (size_t n = strlen(big); n < 4097; n = strlen(big)) strcat(big, " OR a = :v");
    big[4097] = '\0';
    char want[200];
    snprintf(want, sizeof want,
             "Invalid FilterExpression: Expression size has exceeded the maximum "
             "allowed size; expression size: %zu",
             strlen(big));
    parse_err(F, big, NULL, "{\":v\":{\"S\":\"x\"}}", want);

    /* deep nesting is bounded */
    char deep[600] = "";
    for (int i = 0; i < 200; i++) strcat(deep, "(");
    strcat(deep, "a");
    ctx_t c = {0};
    tr_err err = {0, ""};
    assert_int_equal(tbl_expr_parse(F, deep, NULL, NULL, NULL, &c.e, &err), TR_EVALIDATION);
    assert_non_null(strstr(err.msg, "Syntax error"));
}

static void semantic_errors(void **st) {
    (void)st;
#define V                                                                                          \
    "{\":v\":{\"S\":\"x\"},\":n\":{\"N\":\"1\"},\":five\":{\"N\":\"5\"},"                          \
    "\":six\":{\"N\":\"6\"},\":t\":{\"BOOL\":true},\":bad\":{\"S\":\"X\"},"                        \
    "\":l\":{\"L\":[]},\":m\":{\"M\":{}},\":ss\":{\"SS\":[\"a\"]},"                                \
    "\":b\":{\"B\":\"AQ==\"},\":null\":{\"NULL\":true}}"
#define N "{\"#a\":\"a\",\"#d\":\"[3]\",\"#c\":\"c\"}"
    static const err_case_t cases[] = {
        {F, "whatever(a) = :v", NULL, V,
         "Invalid FilterExpression: Invalid function name; function: whatever"},
        {F, "attRIbute_exIsts(a)", NULL, V,
         "Invalid FilterExpression: Invalid function name; function: attRIbute_exIsts"},
        {F, "a=:v and whatever((:v)) > a", NULL, V,
         "Invalid FilterExpression: Invalid function name; function: whatever"},
        {F, "size(a)", NULL, V,
         "Invalid FilterExpression: The function is not allowed to be used this way in an "
         "expression; function: size"},
        {F, "attribute_not_exists(things) > b", NULL, V,
         "Invalid FilterExpression: The function is not allowed to be used this way in an "
         "expression; function: attribute_not_exists"},
        {F, "size(contains(a, :v)) > a", NULL, V,
         "Invalid FilterExpression: The function is not allowed to be used this way in an "
         "expression; function: contains"},
        {F, "a between :n and attribute_exists(b)", NULL, V,
         "Invalid FilterExpression: The function is not allowed to be used this way in an "
         "expression; function: attribute_exists"},
        {F, "if_not_exists(a, :v) = :v", NULL, V,
         "Invalid FilterExpression: The function is not allowed to be used this way in an "
         "expression; function: if_not_exists"},
        {F, "status = :v", NULL, V,
         "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: "
         "status"},
        {F, ":v < abOrT", NULL, V,
         "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: abOrT"},
        {F, "a.Name = :v", NULL, V,
         "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: Name"},
        {F, "attribute_exists(views, #a)", NULL, V,
         "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: views"},
        {F, "#x = :v", NULL, V,
         "Invalid FilterExpression: An expression attribute name used in the document path is not "
         "defined; attribute name: #x"},
        {F, "a.#x = :v", N, V,
         "Invalid FilterExpression: An expression attribute name used in the document path is not "
         "defined; attribute name: #x"},
        {F, "a = :zz", NULL, V,
         "Invalid FilterExpression: An expression attribute value used in expression is not "
         "defined; attribute value: :zz"},
        {F, "a = :v", NULL, NULL,
         "Invalid FilterExpression: An expression attribute value used in expression is not "
         "defined; attribute value: :v"},
        /* class order: names before values, reserved before both, function names first */
        {F, "#x = :zz", NULL, V,
         "Invalid FilterExpression: An expression attribute name used in the document path is not "
         "defined; attribute name: #x"},
        {F, ":zz = #x", NULL, V,
         "Invalid FilterExpression: An expression attribute name used in the document path is not "
         "defined; attribute name: #x"},
        {F, "#x = :zz AND status = :v", NULL, V,
         "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: "
         "status"},
        {F, "status = :v AND nope(a)", NULL, V,
         "Invalid FilterExpression: Invalid function name; function: nope"},
        {F, "attribute_exists(things, a) and a=:v", NULL, V,
         "Invalid FilterExpression: Incorrect number of operands for operator or function; "
         "operator or function: attribute_exists, number of operands: 2"},
        {F, "attribute_type(things)", NULL, V,
         "Invalid FilterExpression: Incorrect number of operands for operator or function; "
         "operator or function: attribute_type, number of operands: 1"},
        {F, "begins_with(things, size(a), b)", NULL, V,
         "Invalid FilterExpression: Incorrect number of operands for operator or function; "
         "operator or function: begins_with, number of operands: 3"},
        {F, "size(things, a) > b", NULL, V,
         "Invalid FilterExpression: Incorrect number of operands for operator or function; "
         "operator or function: size, number of operands: 2"},
        {F, "attribute_exists(:v) and a=:v", NULL, V,
         "Invalid FilterExpression: Operator or function requires a document path; operator or "
         "function: attribute_exists"},
        {F, "attribute_not_exists(size(:v))", NULL, V,
         "Invalid FilterExpression: Operator or function requires a document path; operator or "
         "function: attribute_not_exists"},
        {F, "attribute_not_exists(size(:n))", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: size, operand type: N"},
        {F, "attribute_type(a, :n)", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: attribute_type, operand type: N"},
        {F, "attribute_type(a, size(a)) and a=a", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: attribute_type, operand type: N"},
        {F, "attribute_type(a, :bad)", NULL, V,
         "Invalid FilterExpression: Invalid attribute type name found; type: X, valid types: "
         "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}"},
        {F, "begins_with(a, :n)", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: begins_with, operand type: N"},
        {F, "begins_with(:l, a)", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: begins_with, operand type: L"},
        {F, "size(size(a)) > :n", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: size, operand type: N"},
        {F, "size(:t) > a", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: size, operand type: BOOL"},
        {F, "a < :t", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: <, operand type: BOOL"},
        {F, "a >= :ss", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: >=, operand type: SS"},
        {F, "a BETWEEN :m AND :n", NULL, V,
         "Invalid FilterExpression: Incorrect operand type for operator or function; operator or "
         "function: BETWEEN, operand type: M"},
        {F, "a BETWEEN :six AND :five", NULL, V,
         "Invalid FilterExpression: The BETWEEN operator requires upper bound to be greater than "
         "or equal to lower bound; lower bound operand: AttributeValue: {N:6}, upper bound "
         "operand: AttributeValue: {N:5}"},
        {F, "a BETWEEN :n AND :v", NULL, V,
         "Invalid FilterExpression: The BETWEEN operator requires same data type for lower and "
         "upper bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: "
         "AttributeValue: {S:x}"},
        {F, "a = #a", N, V,
         "Invalid FilterExpression: The first operand must be distinct from the remaining operands "
         "for this operator or function; operator: =, first operand: [a]"},
        {F, "a <> a", NULL, V,
         "Invalid FilterExpression: The first operand must be distinct from the remaining operands "
         "for this operator or function; operator: <>, first operand: [a]"},
        {F, "contains(ab.bc[1].a, ab.bc[1].#a)", N, V,
         "Invalid FilterExpression: The first operand must be distinct from the remaining operands "
         "for this operator or function; operator: contains, first operand: [ab, bc, [1], a]"},
        {F, "a IN (:v, a)", NULL, V,
         "Invalid FilterExpression: The first operand must be distinct from the remaining operands "
         "for this operator or function; operator: IN, first operand: [a]"},
        {C, "a = :v AND a = b AND status = :v", NULL, V,
         "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: "
         "status"},
        /* update */
        {U, "set #c = if_not_exist(:c) set c = d", N, V,
         "Invalid UpdateExpression: Invalid function name; function: if_not_exist"},
        {U, "SET a = size(b)", NULL, V,
         "Invalid UpdateExpression: The function is not allowed to be used this way in an "
         "expression; function: size"},
        {U, " set #c = :c set abOrt = true ", N, V,
         "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: abOrt"},
        {U, " remove Absolute ", NULL, NULL,
         "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: "
         "Absolute"},
        {U, "set a = #x set c = :zz", N, V,
         "Invalid UpdateExpression: The \"SET\" section can only be used once in an update "
         "expression;"},
        {U, "remove #d set a = b remove e", N, V,
         "Invalid UpdateExpression: The \"REMOVE\" section can only be used once in an update "
         "expression;"},
        {U, "add #d :n set a = b add e :n", N, V,
         "Invalid UpdateExpression: The \"ADD\" section can only be used once in an update "
         "expression;"},
        {U, "delete #d :ss set a = b DELETE e :ss", N, V,
         "Invalid UpdateExpression: The \"DELETE\" section can only be used once in an update "
         "expression;"},
        {U, "SET #x = if_not_exists(:c)", N, V,
         "Invalid UpdateExpression: An expression attribute name used in the document path is not "
         "defined; attribute name: #x"},
        {U, "SET #a = if_not_exists(:c)", N, V,
         "Invalid UpdateExpression: An expression attribute value used in expression is not "
         "defined; attribute value: :c"},
        {U, "set b = list_append(:v, a), c = if_not_exists(a) add a.b :v", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: STRING"},
        {U, "delete a.b :v", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "DELETE, operand type: STRING"},
        {U, "add a :null", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: NULL"},
        {U, "add a :t", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: BOOLEAN"},
        {U, "add a :b", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: BINARY"},
        {U, "add a :m", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: MAP"},
        {U, "add a :l", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "ADD, operand type: LIST"},
        {U, "delete a :n", NULL, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
         "DELETE, operand type: NUMBER"},
        {U, "set d[1] = a, d.b = a, c[1].a = a, #c = if_not_exists(a)", N, V,
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [c, [1], a], path two: [c]"},
        {U, "set c.b.#c = a, c = a, #d = a", N, V,
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [c, b, c], path two: [c]"},
        {U, "set a = b remove a, #c, #d", N, V,
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [a], path two: [a]"},
        {U, "set #c[3].#d = a, #c[3] = a", N, V,
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [c, [3], [3]], path two: [c, [3]]"},
        {U, "remove c, #c.a, #d", N, V,
         "Invalid UpdateExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [c], path two: [c, a]"},
        {U, "set #c[3].#d = a, #c.#d[3] = if_not_exists(a)", N, V,
         "Invalid UpdateExpression: Two document paths conflict with each other; must remove or "
         "rewrite one of these paths; path one: [c, [3], [3]], path two: [c, [3], [3]]"},
        {U, "remove a.#c set a[1] = #d", N, V,
         "Invalid UpdateExpression: Two document paths conflict with each other; must remove or "
         "rewrite one of these paths; path one: [a, c], path two: [a, [1]]"},
        {U, "set a = if_not_exists(c)", N, V,
         "Invalid UpdateExpression: Incorrect number of operands for operator or function; "
         "operator or function: if_not_exists, number of operands: 1"},
        {U, "set a = list_append(c)", N, V,
         "Invalid UpdateExpression: Incorrect number of operands for operator or function; "
         "operator or function: list_append, number of operands: 1"},
        {U, "set a = if_not_exists(:v, c)", N, V,
         "Invalid UpdateExpression: Operator or function requires a document path; operator or "
         "function: if_not_exists"},
        {U, "set a = if_not_exists(if_not_exists(a, b), c)", N, V,
         "Invalid UpdateExpression: Operator or function requires a document path; operator or "
         "function: if_not_exists"},
        {U, "set a = list_append(:v, a)", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or "
         "function: list_append, operand type: S"},
        {U, "set a = list_append(a, :m)", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or "
         "function: list_append, operand type: M"},
        {U, "set a = a + :v", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or "
         "function: +, operand type: S"},
        {U, "set a = :b - a", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or "
         "function: -, operand type: B"},
        {U, "set a = :ss + :n", N, V,
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or "
         "function: +, operand type: SS"},
        /* projection */
        {P, "a, a.b", NULL, NULL,
         "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or "
         "rewrite one of these paths; path one: [a], path two: [a, b]"},
        {P, "a[0], a.b", NULL, NULL,
         "Invalid ProjectionExpression: Two document paths conflict with each other; must remove "
         "or rewrite one of these paths; path one: [a, [0]], path two: [a, b]"},
        {P, "a.#x", NULL, NULL,
         "Invalid ProjectionExpression: An expression attribute name used in the document path is "
         "not defined; attribute name: #x"},
        {P, "a, name", NULL, NULL,
         "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: "
         "name"},
        {K, "attribute_exists(a) = :v", NULL, V,
         "Invalid KeyConditionExpression: The function is not allowed to be used this way in an "
         "expression; function: attribute_exists"},
    };
    run_errs(cases, sizeof cases / sizeof cases[0]);

    /* IN takes at most 100 operands */
    char in[2000] = "a IN (:v";
    for (int i = 1; i < 101; i++) strcat(in, ", :v");
    strcat(in, ")");
    parse_err(F, in, NULL, V,
              "Invalid FilterExpression: The IN operator is provided with too many "
              "operands; number of operands: 101");
    in[strlen(in) - 5] = ')';
    in[strlen(in) - 4] = '\0';
    ctx_t c = {0};
    parse_ok(&c, F, in, NULL, V);
    ctx_free(&c);
}
#undef V
#undef N

static void reserved_words(void **st) {
    (void)st;
    static const char *const bad[] = {
        "ABORT", "abort", "Status",  "name", "data",    "size",     "year",   "ZONE",  "timestamp",
        "user",  "value", "count",   "date", "comment", "flatTern", "inNter", "Loged", "ttl",
        "uuid",  "and",   "between", "in",   "not",     "or",       "set",    "add",   "delete"};
    static const char *const good[] = {"foo", "statuses",      "names1",     "Zonex",
                                       "a_b", "remove",        "_",          "ZZZ",
                                       "aa",  "if_not_exists", "list_append"};
    json_t *v = J("{\":v\":{\"S\":\"x\"}}");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char expr[64], want[160];
        snprintf(expr, sizeof expr, "%s", bad[i]);
        snprintf(want, sizeof want,
                 "Invalid ProjectionExpression: Attribute name is a reserved "
                 "keyword; reserved keyword: %s",
                 bad[i]);
        parse_err(P, expr, NULL, NULL, want);
        snprintf(expr, sizeof expr, "x.%s = :v", bad[i]);
        tbl_expr_t *e = NULL;
        tr_err err = {0, ""};
        assert_int_equal(tbl_expr_parse(C, expr, NULL, v, NULL, &e, &err), TR_EVALIDATION);
        assert_null(e);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char expr[64];
        snprintf(expr, sizeof expr, "%s, x.%s", good[i], good[i]);
        ctx_t c = {0};
        parse_ok(&c, P, expr, NULL, NULL);
        ctx_free(&c);
    }
    json_decref(v);
}

/* ---- names / values usage ------------------------------------------------------------------- */

static void usage_tracking(void **st) {
    (void)st;
    json_t *names = J("{\"#a\":\"a\",\"#b\":\"b\",\"#c\":\"c\"}");
    json_t *values = J("{\":x\":{\"S\":\"x\"},\":y\":{\"S\":\"y\"}}");
    tbl_expr_usage_t u = {NULL, NULL};
    tbl_expr_t *e1 = NULL, *e2 = NULL, *e3 = NULL;
    tr_err err = {0, ""};
    assert_int_equal(tbl_expr_parse(C, "#a = :x", names, values, &u, &e1, &err), 0);
    assert_int_equal(tbl_expr_usage_check(&u, names, values, &err), TR_EVALIDATION);
    assert_string_equal(err.msg,
                        "Value provided in ExpressionAttributeNames unused in expressions: "
                        "keys: {#b, #c}");
    assert_int_equal(tbl_expr_parse(U, "SET #b = :y", names, values, &u, &e2, &err), 0);
    assert_int_equal(tbl_expr_usage_check(&u, names, values, &err), TR_EVALIDATION);
    assert_string_equal(err.msg,
                        "Value provided in ExpressionAttributeNames unused in expressions: "
                        "keys: {#c}");
    assert_int_equal(tbl_expr_parse(P, "#c.#a", names, values, &u, &e3, &err), 0);
    assert_int_equal(tbl_expr_usage_check(&u, names, values, &err), 0);
    /* values */
    tbl_expr_usage_t u2 = {NULL, NULL};
    tbl_expr_t *e4 = NULL;
    assert_int_equal(tbl_expr_parse(F, "a = :x OR #a = :x", names, values, &u2, &e4, &err), 0);
    assert_int_equal(tbl_expr_usage_check(&u2, NULL, values, &err), TR_EVALIDATION);
    assert_string_equal(err.msg, "Value provided in ExpressionAttributeValues unused in "
                                 "expressions: keys: {:y}");
    /* nothing defined, nothing used */
    tbl_expr_usage_t u3 = {NULL, NULL};
    assert_int_equal(tbl_expr_usage_check(&u3, NULL, NULL, &err), 0);
    tbl_expr_usage_free(&u);
    tbl_expr_usage_free(&u2);
    tbl_expr_usage_free(&u3);
    tbl_expr_usage_free(NULL);
    assert_null(u.names_used);
    tbl_expr_free(e1);
    tbl_expr_free(e2);
    tbl_expr_free(e3);
    tbl_expr_free(e4);
    tbl_expr_free(NULL);
    json_decref(names);
    json_decref(values);
}

static void bad_arguments(void **st) {
    (void)st;
    tbl_expr_t *e = NULL;
    tr_err err = {0, ""};
    int r;
    json_t *out = NULL;
    assert_int_equal(tbl_expr_parse(C, NULL, NULL, NULL, NULL, &e, &err), TR_EINVAL);
    assert_int_equal(tbl_expr_parse(C, "a = b", NULL, NULL, NULL, NULL, &err), TR_EINVAL);
    assert_int_equal(tbl_expr_parse(99, "a = b", NULL, NULL, NULL, &e, &err), TR_EINVAL);
    assert_int_equal(tbl_expr_eval(NULL, NULL, &r, &err), TR_EINVAL);
    assert_int_equal(tbl_expr_update(NULL, NULL, NULL, &out, &err), TR_EINVAL);
    assert_int_equal(tbl_expr_parse(P, "a", NULL, NULL, NULL, &e, &err), 0);
    assert_int_equal(tbl_expr_eval(e, NULL, &r, &err), TR_EINVAL); /* not a condition */
    assert_int_equal(tbl_expr_update(e, NULL, NULL, &out, &err), TR_EINVAL);
    json_t *t = tbl_expr_update_touched(e);
    assert_int_equal(json_array_size(t), 0);
    json_decref(t);
    tbl_expr_free(e);
}

/* ---- updates -------------------------------------------------------------------------------- */

static const char *UV =
    "{\":v\":{\"S\":\"v\"},\":one\":{\"N\":\"1\"},\":two\":{\"N\":\"2\"},\":n5\":{\"N\":\"-5\"},"
    "\":tenth\":{\"N\":\"0.1\"},\":l\":{\"L\":[{\"S\":\"x\"}]},\":l2\":{\"L\":[{\"N\":\"2\"},{"
    "\"N\":\"3\"}]},"
    "\":ssab\":{\"SS\":[\"a\",\"b\"]},\":ssbc\":{\"SS\":[\"b\",\"c\"]},\":nsx\":{\"NS\":[\"1.0\","
    "\"3\"]},"
    "\":bs\":{\"BS\":[\"AQ==\",\"Ag==\"]},\":m\":{\"M\":{\"q\":{\"S\":\"q\"}}},"
    "\":big\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"},"
    "\":d38\":{\"N\":\"12345678901234567890123456789012345678\"},\":ss\":{\"SS\":[\"a\"]},"
    "\":zero\":{\"N\":\"0\"}}";

static const char *KEY = "{\"id\":{\"S\":\"k\"}}";

static void update_set(void **st) {
    (void)st;
    const char *item = "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"old\"},\"n\":{\"N\":\"5\"},"
                       "\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"M\":{"
                       "\"c\":{\"S\":\"c\"}}}]}}},"
                       "\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"}]}}";
    update_ok("SET b = :v", NULL, UV, item, KEY,
              "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"old\"},\"n\":{\"N\":\"5\"},"
              "\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"M\":{\"c\":{\"S\":"
              "\"c\"}}}]}}},"
              "\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"}]},\"b\":{\"S\":\"v\"}}");
    /* replace, nested map member, nested list element member, arithmetic */
    update_ok("SET a = :v, m.x = m.x + :one, m.l[1].c = :v, m.y = :m, n = n - :n5", NULL, UV, item,
              KEY,
              "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"v\"},\"n\":{\"N\":\"10\"},"
              "\"m\":{\"M\":{\"x\":{\"N\":\"2\"},\"y\":{\"M\":{\"q\":{\"S\":\"q\"}}},"
              "\"l\":{\"L\":[{\"N\":\"0\"},{\"M\":{\"c\":{\"S\":\"v\"}}}]}}},"
              "\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"}]}}");
    /* list index: replace, and past the end appends in index order */
    update_ok("SET l[7] = :two, l[0] = :v, l[5] = :one", NULL, UV, item, KEY,
              "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"old\"},\"n\":{\"N\":\"5\"},"
              "\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"M\":{\"c\":{\"S\":"
              "\"c\"}}}]}}},"
              "\"l\":{\"L\":[{\"S\":\"v\"},{\"S\":\"b\"},{\"N\":\"1\"},{\"N\":\"2\"}]}}");
    /* right-hand sides read the OLD item */
    update_ok("SET a = n, n = a", NULL, NULL, "{\"a\":{\"S\":\"x\"},\"n\":{\"N\":\"1\"}}", NULL,
              "{\"a\":{\"N\":\"1\"},\"n\":{\"S\":\"x\"}}");
    /* if_not_exists and list_append */
    update_ok(
        "SET a = if_not_exists(a, :v), b = if_not_exists(b, :v), c = if_not_exists(q, id)", NULL,
        UV, item, KEY,
        "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"old\"},\"n\":{\"N\":\"5\"},"
        "\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"M\":{\"c\":{\"S\":\"c\"}}"
        "}]}}},"
        "\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"}]},\"b\":{\"S\":\"v\"},\"c\":{\"S\":\"k\"}}");
    update_ok(
        "SET l = list_append(l, :l), p = list_append(:l, l), q = list_append(if_not_exists(q, :l), "
        ":l2)",
        NULL, UV, "{\"l\":{\"L\":[{\"S\":\"a\"}]}}", NULL,
        "{\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"x\"}]},\"p\":{\"L\":[{\"S\":\"x\"},{\"S\":\"a\"}]},"
        "\"q\":{\"L\":[{\"S\":\"x\"},{\"N\":\"2\"},{\"N\":\"3\"}]}}");
    update_ok("SET n = if_not_exists(n, :zero) + :one", NULL, UV, NULL, KEY,
              "{\"id\":{\"S\":\"k\"},\"n\":{\"N\":\"1\"}}");
    update_ok("SET n = (n + :one)", NULL, UV, "{\"n\":{\"N\":\"1\"}}", NULL,
              "{\"n\":{\"N\":\"2\"}}");
    update_ok("SET n = (n) + (:one)", NULL, UV, "{\"n\":{\"N\":\"1\"}}", NULL,
              "{\"n\":{\"N\":\"2\"}}");
    /* names */
    update_ok("SET #s = :v, #m.#x = :one", "{\"#s\":\"status\",\"#m\":\"m\",\"#x\":\"x.y\"}", UV,
              "{\"m\":{\"M\":{}}}", NULL,
              "{\"status\":{\"S\":\"v\"},\"m\":{\"M\":{\"x.y\":{\"N\":\"1\"}}}}");
    /* no item: starts from the key */
    update_ok("SET a = :v", NULL, UV, NULL, KEY, "{\"id\":{\"S\":\"k\"},\"a\":{\"S\":\"v\"}}");
    update_ok("set b = if_not_exists(b, id)", NULL, NULL, NULL, KEY,
              "{\"id\":{\"S\":\"k\"},\"b\":{\"S\":\"k\"}}");
    /* nested a.b[2].c */
    update_ok("SET a.b[2].c = :v", NULL, UV,
              "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"M\":{}}]}}}}", NULL,
              "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"M\":{\"c\":{\"S\":\"v\"}"
              "}}]}}}}");
    /* the dynalite-documented DynamoDB example */
    update_ok(
        "set b.c=((c[1])+(b.a)),b.a = a,c[1] = a, c[4] = b.a - b.b, c[2] = b.c add c[8] :ss, c[6] "
        ":two",
        NULL, UV,
        "{\"a\":{\"S\":\"k\"},\"b\":{\"M\":{\"a\":{\"N\":\"1\"},\"b\":{\"N\":\"2\"},\"c\":{\"N\":"
        "\"3\"}}},"
        "\"c\":{\"L\":[{\"N\":\"1\"},{\"N\":\"3\"}]}}",
        NULL,
        "{\"a\":{\"S\":\"k\"},\"b\":{\"M\":{\"a\":{\"S\":\"k\"},\"b\":{\"N\":\"2\"},\"c\":{\"N\":"
        "\"4\"}}},"
        "\"c\":{\"L\":[{\"N\":\"1\"},{\"S\":\"k\"},{\"N\":\"3\"},{\"N\":\"-1\"},{\"N\":\"2\"},"
        "{\"SS\":[\"a\"]}]}}");
}

static void update_remove(void **st) {
    (void)st;
    const char *item =
        "{\"a\":{\"S\":\"a\"},\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"y\":{\"N\":\"2\"}}},"
        "\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"},{\"N\":\"3\"}]}}";
    update_ok("REMOVE a", NULL, NULL, item, NULL,
              "{\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"y\":{\"N\":\"2\"}}},"
              "\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"},{\"N\":\"3\"}]}}");
    update_ok("REMOVE m.x, q, m.zz, l[9]", NULL, NULL, item, NULL, /* missing paths are fine */
              "{\"a\":{\"S\":\"a\"},\"m\":{\"M\":{\"y\":{\"N\":\"2\"}}},"
              "\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"},{\"N\":\"3\"}]}}");
    /* several list indexes refer to the original positions */
    update_ok("REMOVE l[0], l[2]", NULL, NULL, item, NULL,
              "{\"a\":{\"S\":\"a\"},\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"y\":{\"N\":\"2\"}}},"
              "\"l\":{\"L\":[{\"N\":\"1\"},{\"N\":\"3\"}]}}");
    update_ok("REMOVE l[2], l[0] SET l[1] = :v", NULL, UV, item, NULL,
              "{\"a\":{\"S\":\"a\"},\"m\":{\"M\":{\"x\":{\"N\":\"1\"},\"y\":{\"N\":\"2\"}}},"
              "\"l\":{\"L\":[{\"S\":\"v\"},{\"N\":\"3\"}]}}");
    update_ok("remove a, m", NULL, NULL, item, NULL,
              "{\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"},{\"N\":\"3\"}]}}");
    update_ok("REMOVE a", NULL, NULL, NULL, KEY, KEY);
}

static void update_add_delete(void **st) {
    (void)st;
    const char *item =
        "{\"n\":{\"N\":\"5\"},\"ss\":{\"SS\":[\"a\",\"x\"]},\"ns\":{\"NS\":[\"1\",\"2\"]},"
        "\"bs\":{\"BS\":[\"AQ==\"]},\"s\":{\"S\":\"s\"},\"l\":{\"L\":[{\"N\":\"0\"}]}}";
    update_ok("ADD n :two", NULL, UV, "{\"n\":{\"N\":\"5\"}}", NULL, "{\"n\":{\"N\":\"7\"}}");
    update_ok("ADD n :n5", NULL, UV, "{\"n\":{\"N\":\"5\"}}", NULL, "{\"n\":{\"N\":\"0\"}}");
    update_ok("ADD q :two, r :ssab", NULL, UV, NULL, KEY, /* missing: created */
              "{\"id\":{\"S\":\"k\"},\"q\":{\"N\":\"2\"},\"r\":{\"SS\":[\"a\",\"b\"]}}");
    update_ok("ADD ss :ssbc", NULL, UV, "{\"ss\":{\"SS\":[\"a\",\"b\"]}}", NULL,
              "{\"ss\":{\"SS\":[\"a\",\"b\",\"c\"]}}");
    update_ok("ADD ns :nsx", NULL, UV, "{\"ns\":{\"NS\":[\"1\",\"2\"]}}", NULL, /* 1.0 == 1 */
              "{\"ns\":{\"NS\":[\"1\",\"2\",\"3\"]}}");
    update_ok("ADD bs :bs", NULL, UV, "{\"bs\":{\"BS\":[\"AQ==\"]}}", NULL,
              "{\"bs\":{\"BS\":[\"AQ==\",\"Ag==\"]}}");
    update_ok("ADD l[3] :two, m.k :one", NULL, UV,
              "{\"l\":{\"L\":[{\"N\":\"0\"}]},\"m\":{\"M\":{}}}", NULL,
              "{\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"2\"}]},\"m\":{\"M\":{\"k\":{\"N\":\"1\"}}}}");
    update_ok("DELETE ss :ssab", NULL, UV, "{\"ss\":{\"SS\":[\"a\",\"x\",\"b\"]}}", NULL,
              "{\"ss\":{\"SS\":[\"x\"]}}");
    update_ok("DELETE ss :ssab", NULL, UV, "{\"ss\":{\"SS\":[\"a\",\"b\"]},\"o\":{\"N\":\"1\"}}",
              NULL, "{\"o\":{\"N\":\"1\"}}"); /* empty set: attribute removed */
    update_ok("DELETE ns :nsx", NULL, UV, "{\"ns\":{\"NS\":[\"1\",\"2\"]}}", NULL,
              "{\"ns\":{\"NS\":[\"2\"]}}");
    update_ok("DELETE q :ssab", NULL, UV, "{\"o\":{\"N\":\"1\"}}", NULL, "{\"o\":{\"N\":\"1\"}}");
    update_ok("DELETE bs :bs", NULL, UV, "{\"bs\":{\"BS\":[\"AQ==\",\"Aw==\"]}}", NULL,
              "{\"bs\":{\"BS\":[\"Aw==\"]}}");
    char msg[TR_ERR_MSG_MAX];
    static const char *const type_errs[] = {"ADD ss :two",  "ADD n :ssab",     "ADD s :two",
                                            "ADD ns :ssab", "DELETE ns :ssab", "DELETE n :ss",
                                            "DELETE l :ss", "ADD l :ss"};
    for (size_t i = 0; i < sizeof type_errs / sizeof type_errs[0]; i++) {
        json_t *out = update(type_errs[i], NULL, UV, item, NULL, msg);
        assert_null(out);
        assert_string_equal(msg, "An operand in the update expression has an incorrect data type");
    }
    /* clauses in any order */
    update_ok("REMOVE r ADD n :one SET a = :v DELETE ss :ssab", NULL, UV,
              "{\"r\":{\"N\":\"1\"},\"n\":{\"N\":\"1\"},\"ss\":{\"SS\":[\"a\",\"c\"]}}", NULL,
              "{\"n\":{\"N\":\"2\"},\"a\":{\"S\":\"v\"},\"ss\":{\"SS\":[\"c\"]}}");
    update_ok("delete ss :ssab add n :one remove r set a = :v", NULL, UV,
              "{\"r\":{\"N\":\"1\"},\"n\":{\"N\":\"1\"},\"ss\":{\"SS\":[\"a\",\"c\"]}}", NULL,
              "{\"n\":{\"N\":\"2\"},\"a\":{\"S\":\"v\"},\"ss\":{\"SS\":[\"c\"]}}");
}

static void update_decimal(void **st) {
    (void)st;
    ctx_t c = {0};
    parse_ok(&c, U, "SET n = n + :tenth", NULL, UV);
    json_t *item = J("{\"n\":{\"N\":\"0\"}}");
    tr_err err = {0, ""};
    for (int i = 0; i < 10; i++) {
        json_t *next = NULL;
        assert_int_equal(tbl_expr_update(c.e, item, NULL, &next, &err), 0);
        json_decref(item);
        item = next;
    }
    assert_json(item, "{\"n\":{\"N\":\"1\"}}");
    ctx_free(&c);
    parse_ok(&c, U, "SET n = n - :tenth", NULL, UV);
    for (int i = 0; i < 3; i++) {
        json_t *next = NULL;
        assert_int_equal(tbl_expr_update(c.e, item, NULL, &next, &err), 0);
        json_decref(item);
        item = next;
    }
    assert_json(item, "{\"n\":{\"N\":\"0.7\"}}");
    ctx_free(&c);
    json_decref(item);
    update_ok("SET n = n + :d38", NULL, UV, "{\"n\":{\"N\":\"-8\"}}", NULL,
              "{\"n\":{\"N\":\"12345678901234567890123456789012345670\"}}");
}

static void update_decimal_overflow(void **st) {
    (void)st;
    update_err("SET n = n + :big", NULL, UV,
               "{\"n\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"}}", NULL,
               "Number overflow. Attempting to store a number with magnitude larger than "
               "supported range");
    update_err("ADD n :big", NULL, UV,
               "{\"n\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"}}", NULL,
               "Number overflow. Attempting to store a number with magnitude larger than "
               "supported range");
    /* an exact result needing more than 38 digits fails with num.h's own message */
    tbl_num_t x, y, z;
    tr_err nerr = {0, ""};
    assert_int_equal(tbl_num_parse("12345678901234567890123456789012345678", 38, &x, NULL), 0);
    assert_int_equal(tbl_num_parse("0.1", 3, &y, NULL), 0);
    assert_int_equal(tbl_num_add(&x, &y, &z, &nerr), TR_EVALIDATION);
    update_err("SET n = :d38 + :tenth", NULL, UV, NULL, NULL, nerr.msg);
    update_err("ADD n :tenth", NULL, UV,
               "{\"n\":{\"N\":\"12345678901234567890123456789012345678\"}}", NULL, nerr.msg);
}

static void update_errors(void **st) {
    (void)st;
    const char *item =
        "{\"id\":{\"S\":\"k\"},\"s\":{\"S\":\"s\"},\"n\":{\"N\":\"1\"},"
        "\"m\":{\"M\":{\"1\":{\"S\":\"a\"}}},\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"}]}}";
    static const char *const missing[] = {
        "SET a = b + :one",           "SET a = q",    "SET a = :one - q",
        "SET e = list_append(q, :l)", "SET a = m.zz", "SET a = l[5]",
        "SET a = if_not_exists(q, r)"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        update_err(
            missing[i], NULL, UV, item, KEY,
            "The provided expression refers to an attribute that does not exist in the item");
    static const char *const types[] = {"SET a = s + :one",
                                        "SET a = :one - s",
                                        "SET a = m + n",
                                        "SET e = list_append(s, :l)",
                                        "SET e = list_append(:l, n)",
                                        "SET e = list_append(l, if_not_exists(q, :v))"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        update_err(types[i], NULL, UV, item, KEY,
                   "An operand in the update expression has an incorrect data type");
    static const char *const paths[] = {
        "SET q.a = :v",    "SET q[1] = :v",   "SET s.a = :v",    "SET s[1] = :v", "SET m[1] = :v",
        "SET l.#one = :v", "REMOVE q.a",      "REMOVE q[1]",     "REMOVE m[1]",   "REMOVE l.#one",
        "REMOVE s.a",      "DELETE q.a :ss",  "DELETE m[0] :ss", "ADD q.a :one",  "ADD s[0] :one",
        "ADD l.#one :one", "SET l[5].a = :v", "SET m.q.r = :v"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        update_err(paths[i], "{\"#one\":\"1\"}", UV, item, KEY,
                   "The document path provided in the update expression is invalid for update");
    update_err("SET b.a = id", NULL, NULL, NULL, KEY,
               "The document path provided in the update expression is invalid for update");
    static const char *const keys[] = {"SET id = :v",
                                       "REMOVE id",
                                       "ADD id.b :one",
                                       "DELETE id :ss",
                                       "remove d set b = :v, id = :v",
                                       "SET id = id.b + id[1]"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        update_err(keys[i], NULL, UV, item, KEY,
                   "One or more parameter values were invalid: Cannot update attribute id. This "
                   "attribute is part of the key");
    update_err("SET #k = :v", "{\"#k\":\"sk\"}", UV, item,
               "{\"id\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"}}",
               "One or more parameter values were invalid: Cannot update attribute sk. This "
               "attribute is part of the key");
}

static void update_touched(void **st) {
    (void)st;
    ctx_t c = {0};
    parse_ok(&c, U, "SET a = :v, m.x = :v, l[1] = :v REMOVE b ADD m.y :one DELETE #s :ss",
             "{\"#s\":\"s s\"}", UV);
    json_t *t = tbl_expr_update_touched(c.e);
    assert_json(t, "[\"a\",\"m\",\"l\",\"b\",\"s s\"]");
    json_decref(t);
    ctx_free(&c);
}

/* Which updates create an item that is missing (SET / ADD) and which do not (REMOVE / DELETE
 * only), and the key check that applies to both. */
static void update_creates(void **st) {
    (void)st;
    static const struct {
        const char *text;
        int creates;
    } cases[] = {
        {"SET a = :v", 1},
        {"ADD n :one", 1},
        {"REMOVE a SET b = :v", 1},
        {"DELETE s :ss ADD n :one", 1},
        {"REMOVE a", 0},
        {"REMOVE a, m.x, l[0]", 0},
        {"DELETE s :ss", 0},
        {"REMOVE a DELETE s :ss", 0},
    };
    json_t *key = J(KEY);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx_t c = {0};
        parse_ok(&c, U, cases[i].text, NULL, UV);
        if (tbl_expr_update_creates(c.e) != cases[i].creates)
            fail_msg("%s: creates %d", cases[i].text, !cases[i].creates);
        tr_err err = {0, ""};
        assert_int_equal(tbl_expr_update_keys_ok(c.e, key, &err), 0);
        ctx_free(&c);
    }
    ctx_t c = {0};
    parse_ok(&c, U, "REMOVE x, id", NULL, NULL);
    tr_err err = {0, ""};
    assert_int_equal(tbl_expr_update_keys_ok(c.e, key, &err), TR_EVALIDATION);
    assert_string_equal(err.msg, "One or more parameter values were invalid: Cannot update "
                                 "attribute id. This attribute is part of the key");
    ctx_free(&c);
    json_decref(key);
}

/* ---- projection ----------------------------------------------------------------------------- */

static void projection(void **st) {
    (void)st;
    json_t *item = J("{\"a\":{\"M\":{\"b\":{\"L\":[{\"S\":\"0\"},{\"S\":\"1\"},"
                     "{\"M\":{\"c\":{\"S\":\"x\"},\"d\":{\"S\":\"y\"}}}]},\"e\":{\"S\":\"e\"}}},"
                     "\"f\":{\"N\":\"1\"},\"g\":{\"L\":[{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"}]}]},"
                     "\"status\":{\"S\":\"ok\"}}");
    static const struct {
        const char *expr, *names, *want;
    } cases[] = {
        {"f", NULL, "{\"f\":{\"N\":\"1\"}}"},
        {"f, nothere, a.zz, a.b[9], a.e.x, a.b[0].q", NULL, "{\"f\":{\"N\":\"1\"}}"},
        {"a.b[2].c, f, a.b[0]", NULL,
         "{\"a\":{\"M\":{\"b\":{\"L\":[{\"S\":\"0\"},{\"M\":{\"c\":{\"S\":\"x\"}}}]}}},\"f\":{"
         "\"N\":\"1\"}}"},
        {"a.e, a.b[1]", NULL,
         "{\"a\":{\"M\":{\"e\":{\"S\":\"e\"},\"b\":{\"L\":[{\"S\":\"1\"}]}}}}"},
        {"a", NULL,
         "{\"a\":{\"M\":{\"b\":{\"L\":[{\"S\":\"0\"},{\"S\":\"1\"},"
         "{\"M\":{\"c\":{\"S\":\"x\"},\"d\":{\"S\":\"y\"}}}]},\"e\":{\"S\":\"e\"}}}}"},
        {"g[0][1], #s", "{\"#s\":\"status\"}",
         "{\"g\":{\"L\":[{\"L\":[{\"N\":\"2\"}]}]},\"status\":{\"S\":\"ok\"}}"},
        {"a.b[2].d, a.b[2].c", NULL,
         "{\"a\":{\"M\":{\"b\":{\"L\":[{\"M\":{\"c\":{\"S\":\"x\"},\"d\":{\"S\":\"y\"}}}]}}}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx_t c = {0};
        parse_ok(&c, P, cases[i].expr, cases[i].names, NULL);
        json_t *out = tbl_expr_project(c.e, item);
        assert_json(out, cases[i].want);
        json_decref(out);
        ctx_free(&c);
    }
    json_decref(item);
}

/* ---- key conditions ------------------------------------------------------------------------- */

static const char *KV = "{\":h\":{\"S\":\"h\"},\":h2\":{\"S\":\"h2\"},\":a\":{\"N\":\"1\"},"
                        "\":b\":{\"N\":\"9\"},\":p\":{\"S\":\"pre\"},\":n\":{\"N\":\"3\"}}";

/* Extract a key condition; msg gets DynamoDB's message on failure, else "hash|range_a|range_b"
 * (compact JSON, "-" when absent), rendered while the borrowed values are still alive. */
static int keycond(const char *text, const char *names, const char *range, tbl_keycond_t *kc,
                   char *msg, size_t cap) {
    ctx_t c = {0};
    parse_ok(&c, K, text, names, KV);
    tr_err err = {0, ""};
    int rc = tbl_expr_keycond(c.e, "id", range, kc, &err);
    if (rc) {
        snprintf(msg, cap, "%s", err.msg);
    } else {
        char *h = kc->hash ? json_dumps(kc->hash, JSON_COMPACT) : NULL;
        char *a = kc->range_a ? json_dumps(kc->range_a, JSON_COMPACT) : NULL;
        char *b = kc->range_b ? json_dumps(kc->range_b, JSON_COMPACT) : NULL;
        snprintf(msg, cap, "%s|%s|%s", h ? h : "-", a ? a : "-", b ? b : "-");
        free(h);
        free(a);
        free(b);
    }
    ctx_free(&c);
    return rc;
}

static void key_conditions(void **st) {
    (void)st;
    static const struct {
        const char *text, *names;
        int op;
        const char *vals;
    } ok[] = {
        {"id = :h", NULL, TBL_KC_NONE, "{\"S\":\"h\"}|-|-"},
        {":h = id", NULL, TBL_KC_NONE, "{\"S\":\"h\"}|-|-"},
        {"id = :h AND sk = :a", NULL, TBL_KC_EQ, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND sk < :a", NULL, TBL_KC_LT, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND sk <= :a", NULL, TBL_KC_LE, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"sk > :a AND id = :h", NULL, TBL_KC_GT, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND sk >= :a", NULL, TBL_KC_GE, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND :a < sk", NULL, TBL_KC_GT, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND :a >= sk", NULL, TBL_KC_LE, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
        {"id = :h AND sk BETWEEN :a AND :b", NULL, TBL_KC_BETWEEN,
         "{\"S\":\"h\"}|{\"N\":\"1\"}|{\"N\":\"9\"}"},
        {"#i = :h and begins_with(#s, :p)", "{\"#i\":\"id\",\"#s\":\"sk\"}", TBL_KC_BEGINS_WITH,
         "{\"S\":\"h\"}|{\"S\":\"pre\"}|-"},
        {"(id = :h) AND (sk = :a)", NULL, TBL_KC_EQ, "{\"S\":\"h\"}|{\"N\":\"1\"}|-"},
    };
    char msg[TR_ERR_MSG_MAX];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tbl_keycond_t kc;
        if (keycond(ok[i].text, ok[i].names, "sk", &kc, msg, sizeof msg))
            fail_msg("\"%s\": %s", ok[i].text, msg);
        assert_int_equal(kc.range_op, ok[i].op);
        assert_string_equal(msg, ok[i].vals);
    }
    static const struct {
        const char *text;
        const char *range;
        const char *msg;
    } bad[] = {
        {"sk = :a", "sk", "Query condition missed key schema element: id"},
        {"id < :h", "sk", "Query key condition not supported"},
        {"begins_with(id, :h)", "sk", "Query key condition not supported"},
        {"id BETWEEN :h AND :h2", NULL, "Query key condition not supported"},
        {"id = :h AND sk = :a", NULL, "Query key condition not supported"},
        {"id = :h AND price = :a", "sk", "Query condition missed key schema element: sk"},
        {"id = :h AND sk = :a AND price = :n", "sk", "Query key condition not supported"},
        {"id = :h OR sk = :a", "sk", "Invalid operator used in KeyConditionExpression: OR"},
        {"NOT id = :h", "sk", "Invalid operator used in KeyConditionExpression: NOT"},
        {"id IN (:h)", "sk", "Invalid operator used in KeyConditionExpression: IN"},
        {"id = :h AND sk <> :a", "sk", "Invalid operator used in KeyConditionExpression: <>"},
        {"id = :h AND contains(sk, :a)", "sk",
         "Invalid operator used in KeyConditionExpression: contains"},
        {"id = :h AND attribute_exists(sk)", "sk",
         "Invalid operator used in KeyConditionExpression: attribute_exists"},
        {"id = :h AND sk = :a AND sk > :b", "sk",
         "KeyConditionExpressions must only contain one condition per key"},
        {"id = :h AND id = :h2", "sk",
         "KeyConditionExpressions must only contain one condition per key"},
        {"id.x = :h", "sk", "KeyConditionExpressions cannot have conditions on nested attributes"},
        {"id = sk", "sk",
         "Invalid condition in KeyConditionExpression: Multiple attribute names "
         "used in one condition"},
        {":h = :h2", "sk",
         "Invalid condition in KeyConditionExpression: No key attribute specified"},
        {"id = :h AND size(sk) = :a", "sk",
         "Invalid operator used in KeyConditionExpression: size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tbl_keycond_t kc;
        int rc = keycond(bad[i].text, NULL, bad[i].range, &kc, msg, sizeof msg);
        if (rc == 0) fail_msg("\"%s\" accepted", bad[i].text);
        assert_int_equal(rc, TR_EVALIDATION);
        if (strcmp(msg, bad[i].msg) != 0)
            fail_msg("\"%s\":\n  got      %s\n  expected %s", bad[i].text, msg, bad[i].msg);
    }
    /* a key condition is also a condition */
    ctx_t c = {0};
    parse_ok(&c, K, "id = :h AND sk BETWEEN :a AND :b", NULL, KV);
    json_t *item = J("{\"id\":{\"S\":\"h\"},\"sk\":{\"N\":\"3\"}}");
    int r = -1;
    tr_err err = {0, ""};
    assert_int_equal(tbl_expr_eval(c.e, item, &r, &err), 0);
    assert_int_equal(r, 1);
    json_decref(item);
    ctx_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cond_comparators), cmocka_unit_test(cond_paths),
        cmocka_unit_test(cond_functions),   cmocka_unit_test(cond_logic_and_precedence),
        cmocka_unit_test(cond_no_item),     cmocka_unit_test(cond_names),
        cmocka_unit_test(syntax_errors),    cmocka_unit_test(semantic_errors),
        cmocka_unit_test(reserved_words),   cmocka_unit_test(usage_tracking),
        cmocka_unit_test(bad_arguments),    cmocka_unit_test(update_set),
        cmocka_unit_test(update_remove),    cmocka_unit_test(update_add_delete),
        cmocka_unit_test(update_decimal),   cmocka_unit_test(update_decimal_overflow),
        cmocka_unit_test(update_errors),    cmocka_unit_test(update_touched),
        cmocka_unit_test(update_creates),   cmocka_unit_test(projection),
        cmocka_unit_test(key_conditions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
