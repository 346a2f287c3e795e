/* SPDX-License-Identifier: Apache-2.0
 *
 * test_item.c -- AttributeValues and items (table/item.h): types, validation messages,
 * canonical numbers, depth, size, equality, order and key bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "table/item.h"
#include "testutil.h"

#define INVALID "One or more parameter values were invalid: "

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0xD1B54A32D192ED03ull;
static uint64_t rnd(void) { return tu_xorshift(&rng_state); }

#define J tu_json   /* testutil.h: parse test JSON or fail the test */

static char *dump(const json_t *v) {
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Validate an AttributeValue; expect rc and (when rc) the exact message. */
static void av_expect(const char *text, int rc, const char *msg) {
    json_t *v = J(text), *before = json_deep_copy(v);
    tr_err err = {0};
    int got = tbl_av_validate(v, &err);
    if (got != rc) fail_msg("%s: rc %d (%s), want %d", text, got, err.msg, rc);
    if (rc && msg && strcmp(err.msg, msg) != 0)
        fail_msg("%s:\n  got  \"%s\"\n  want \"%s\"", text, err.msg, msg);
    if (rc) assert_true(json_equal(v, before)); /* a refused value is left as it was */
    json_decref(v);
    json_decref(before);
}

/* Validate and compare the canonical result. */
static void av_canon(const char *text, const char *want) {
    json_t *v = J(text), *w = J(want);
    tr_err err = {0};
    if (tbl_av_validate(v, &err)) fail_msg("%s: %s", text, err.msg);
    if (!json_equal(v, w)) {
        char *d = dump(v);
        fail_msg("%s -> %s, want %s", text, d, want);
    }
    json_decref(v);
    json_decref(w);
}

static size_t av_size_of(const char *text) {
    /* item {"":av}: the empty name costs nothing, so this is the value's size */
    json_t *item = json_object();
    json_object_set_new(item, "", J(text));
    size_t n = tbl_item_size(item);
    json_decref(item);
    return n;
}

/* {"M":{"n": ... {"S":"leaf"} ...}} wrapped depth times; lists when list != 0. */
static json_t *deep(int depth, int list) {
    json_t *v = json_pack("{s:s}", "S", "leaf");
    for (int i = 0; i < depth; i++)
        v = list ? json_pack("{s:[o]}", "L", v) : json_pack("{s:{s:o}}", "M", "n", v);
    return v;
}

/* ---- types ------------------------------------------------------------------------------ */

static void types(void **st) {
    (void)st;
    static const struct {
        const char *text;
        int t;
    } cases[] = {
        {"{\"S\":\"x\"}", TBL_T_S},
        {"{\"N\":\"1\"}", TBL_T_N},
        {"{\"B\":\"YQ==\"}", TBL_T_B},
        {"{\"BOOL\":false}", TBL_T_BOOL},
        {"{\"NULL\":true}", TBL_T_NULL},
        {"{\"L\":[]}", TBL_T_L},
        {"{\"M\":{}}", TBL_T_M},
        {"{\"SS\":[\"a\"]}", TBL_T_SS},
        {"{\"NS\":[\"1\"]}", TBL_T_NS},
        {"{\"BS\":[\"YQ==\"]}", TBL_T_BS},
        {"{\"S\":\"x\",\"other\":1}", TBL_T_S}, /* unknown members are ignored, as DynamoDB does */
        {"{\"S\":null,\"N\":\"1\"}", TBL_T_N}, /* so are nulls */
        {"{}", TBL_T_INVALID},
        {"{\"X\":\"1\"}", TBL_T_INVALID},
        {"{\"S\":\"a\",\"N\":\"1\"}", TBL_T_INVALID},
        {"{\"S\":1}", TBL_T_INVALID},
        {"{\"N\":1}", TBL_T_INVALID},
        {"{\"BOOL\":\"true\"}", TBL_T_INVALID},
        {"{\"L\":{}}", TBL_T_INVALID},
        {"{\"M\":[]}", TBL_T_INVALID},
        {"{\"SS\":[1]}", TBL_T_INVALID},
        {"{\"SS\":\"a\"}", TBL_T_INVALID},
        {"\"S\"", TBL_T_INVALID},
        {"[]", TBL_T_INVALID},
        {"{\"s\":\"x\"}", TBL_T_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = J(cases[i].text);
        if (tbl_av_type(v) != cases[i].t) fail_msg("%s: type %d", cases[i].text, tbl_av_type(v));
        json_decref(v);
    }
    assert_int_equal(tbl_av_type(NULL), TBL_T_INVALID);
    static const char *names[] = {"S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"};
    for (int t = 0; t < TBL_T_INVALID; t++) assert_string_equal(tbl_type_name(t), names[t]);
    assert_non_null(tbl_type_name(TBL_T_INVALID));
    assert_non_null(tbl_type_name(-1));
}

/* ---- validation ------------------------------------------------------------------------- */

static void validate_messages(void **st) {
    (void)st;
    const int V = TR_EVALIDATION, S = TR_ESERIALIZATION;
    const char *empty =
        "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
    av_expect("{}", V, empty);
    av_expect("{\"a\":\"\"}", V, empty);
    av_expect("{\"S\":null}", V, empty);
    av_expect("{\"M\":{\"a\":{}}}", V, empty);
    av_expect("{\"L\":[{}]}", V, empty);
    av_expect("{\"S\":\"a\",\"N\":\"1\"}", V,
              "Supplied AttributeValue has more than one datatypes set, must contain exactly one "
              "of the supported datatypes");
    av_expect("{\"NULL\":false}", V,
              INVALID "Null attribute value types must have the value of true");
    av_expect("{\"NULL\":\"no\"}", V,
              INVALID "Null attribute value types must have the value of true");
    av_expect("{\"SS\":[]}", V, INVALID "An string set  may not be empty");
    av_expect("{\"NS\":[]}", V, INVALID "An number set  may not be empty");
    av_expect("{\"BS\":[]}", V, INVALID "Binary sets should not be empty");
    av_expect("{\"SS\":[\"a\",\"a\"]}", V, INVALID "Input collection [a, a] contains duplicates.");
    av_expect("{\"SS\":[\"0\",\"1\",\"0\"]}", V,
              INVALID "Input collection [0, 1, 0] contains duplicates.");
    av_expect("{\"BS\":[\"Yg==\",\"Yg==\"]}", V,
              INVALID "Input collection [Yg==, Yg==]of type BS contains duplicates.");
    av_expect("{\"NS\":[\"1\",\"1\"]}", V, "Input collection contains duplicates");
    av_expect("{\"NS\":[\"1\",\"1.0\",\"2\"]}", V, "Input collection contains duplicates");
    av_expect("{\"NS\":[\"-0\",\"0e9\"]}", V, "Input collection contains duplicates");
    av_expect("{\"M\":{\"x\":{\"L\":[{\"SS\":[\"q\",\"q\"]}]}}}", V,
              INVALID "Input collection [q, q] contains duplicates.");
    /* numbers carry num.h's messages, in N and NS, nested or not */
    av_expect("{\"N\":\"\"}", V, "A value provided cannot be converted into a number");
    av_expect("{\"N\":\"b\"}", V, "A value provided cannot be converted into a number");
    av_expect("{\"N\":\" 1\"}", V, "A value provided cannot be converted into a number");
    av_expect("{\"NS\":[\"1\",\"b\"]}", V, "A value provided cannot be converted into a number");
    av_expect("{\"N\":\"123456789012345678901234567890123456789\"}", V,
              "Attempting to store more than 38 significant digits in a Number");
    av_expect(
        "{\"L\":[{\"N\":\"1e126\"}]}", V,
        "Number overflow. Attempting to store a number with magnitude larger than supported range");
    av_expect("{\"NS\":[\"-1e-131\"]}", V,
              "Number underflow. Attempting to store a number with magnitude smaller than "
              "supported range");
    /* what DynamoDB's deserialiser refuses is a SerializationException */
    av_expect("{\"S\":1}", S, NULL);
    av_expect("{\"N\":123}", S, NULL);
    av_expect("{\"B\":true}", S, NULL);
    av_expect("{\"BOOL\":\"true\"}", S, NULL);
    av_expect("{\"L\":{}}", S, NULL);
    av_expect("{\"M\":[]}", S, NULL);
    av_expect("{\"SS\":\"a\"}", S, NULL);
    av_expect("{\"NS\":[1]}", S, NULL);
    av_expect("\"x\"", S, NULL);
    av_expect("{\"B\":\"23456\"}", S,
              "Base64 encoded length is expected a multiple of 4 bytes but found: 5");
    av_expect("{\"B\":\"YQ\"}", S,
              "Base64 encoded length is expected a multiple of 4 bytes but found: 2");
    av_expect("{\"B\":\"+/+=\"}", S, "Invalid last non-pad Base64 character dectected");
    av_expect("{\"B\":\"YR==\"}", S, "Invalid last non-pad Base64 character dectected");
    av_expect("{\"B\":\"Y===\"}", S, NULL);
    av_expect("{\"B\":\"=+/=\"}", S, NULL);
    av_expect("{\"B\":\"Yg==Yg==\"}", S, NULL);
    av_expect("{\"B\":\"Y g=\"}", S, NULL);
    av_expect("{\"BS\":[\"Yg==\",\"!!!!\"]}", S, NULL);
    /* accepted */
    static const char *ok[] = {
        "{\"S\":\"\"}",
        "{\"B\":\"\"}",
        "{\"B\":\"YWJj\"}",
        "{\"B\":\"YWI=\"}",
        "{\"B\":\"+/+/\"}",
        "{\"BOOL\":true}",
        "{\"BOOL\":false}",
        "{\"NULL\":true}",
        "{\"L\":[]}",
        "{\"M\":{}}",
        "{\"SS\":[\"\",\"a\"]}",
        "{\"BS\":[\"\",\"YQ==\"]}",
        "{\"NS\":[\"1\",\"1.5\",\"-1\"]}",
        "{\"BS\":[\"YQ==\",\"Yg==\"]}",
        "{\"SS\":[\"a\",\"A\"]}",
        "{\"L\":[{\"S\":\"a\"},{\"S\":\"a\"},{\"N\":\"1\"},{\"NULL\":true},{\"L\":[{\"M\":{}}]}]}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) av_expect(ok[i], 0, NULL);
    assert_int_equal(tbl_av_validate(NULL, NULL), TR_EINVAL);
    json_t *v = J("{}");
    assert_int_equal(tbl_av_validate(v, NULL), TR_EVALIDATION); /* err may be NULL */
    json_decref(v);
}

static void validate_canonicalises(void **st) {
    (void)st;
    av_canon("{\"N\":\"1.50\"}", "{\"N\":\"1.5\"}");
    av_canon("{\"N\":\"1e2\"}", "{\"N\":\"100\"}");
    av_canon("{\"N\":\"-0\"}", "{\"N\":\"0\"}");
    av_canon("{\"N\":\"+00042.000\"}", "{\"N\":\"42\"}");
    av_canon("{\"NS\":[\"1e2\",\"0.50\",\"7\"]}", "{\"NS\":[\"100\",\"0.5\",\"7\"]}");
    av_canon("{\"L\":[{\"N\":\"1.0\"},{\"M\":{\"x\":{\"NS\":[\"2.0\"]},\"y\":{\"S\":\"1.0\"}}}]}",
             "{\"L\":[{\"N\":\"1\"},{\"M\":{\"x\":{\"NS\":[\"2\"]},\"y\":{\"S\":\"1.0\"}}}]}");
    av_canon("{\"S\":\"x\",\"junk\":1,\"N\":null}", "{\"S\":\"x\"}");
    av_canon("{\"M\":{\"a\":{\"N\":\"5\",\"extra\":true}}}", "{\"M\":{\"a\":{\"N\":\"5\"}}}");

    json_t *item =
        J("{\"id\":{\"S\":\"k\"},\"n\":{\"N\":\"1.50e1\"},\"s\":{\"NS\":[\"10\",\"1e1\"]}}");
    json_t *before = json_deep_copy(item);
    tr_err err = {0};
    assert_int_equal(tbl_item_validate(item, &err), TR_EVALIDATION);
    assert_string_equal(err.msg, "Input collection contains duplicates");
    assert_true(json_equal(item, before)); /* n was not rewritten either */
    json_object_set_new(item, "s", J("{\"NS\":[\"10\",\"1e2\"]}"));
    assert_int_equal(tbl_item_validate(item, &err), 0);
    json_t *want = J("{\"id\":{\"S\":\"k\"},\"n\":{\"N\":\"15\"},\"s\":{\"NS\":[\"10\",\"100\"]}}");
    assert_true(json_equal(item, want));
    json_decref(item);
    json_decref(before);
    json_decref(want);

    json_t *arr = J("[]");
    assert_int_equal(tbl_item_validate(arr, &err), TR_ESERIALIZATION);
    json_decref(arr);
    json_t *bad = J("{\"a\":{\"S\":\"x\"},\"b\":{}}");
    assert_int_equal(tbl_item_validate(bad, &err), TR_EVALIDATION);
    json_decref(bad);
    json_t *empty = J("{}");
    assert_int_equal(tbl_item_validate(empty, &err), 0);
    json_decref(empty);
}

static void validate_depth(void **st) {
    (void)st;
    const char *msg = "Nesting Levels have exceeded supported limits: Attributes in the item have "
                      "nested levels beyond supported limit";
    for (int list = 0; list < 2; list++) {
        tr_err err = {0};
        json_t *ok = deep(31, list), *bad = deep(32, list);
        assert_int_equal(tbl_av_validate(ok, &err), 0);
        assert_int_equal(tbl_av_validate(bad, &err), TR_EVALIDATION);
        assert_string_equal(err.msg, msg);
        json_t *item = json_pack("{s:{s:s},s:o}", "pk", "S", "k", "data", bad);
        assert_int_equal(tbl_item_validate(item, &err), TR_EVALIDATION);
        assert_string_equal(err.msg, msg);
        json_decref(item);
        item = json_pack("{s:{s:s},s:o}", "pk", "S", "k", "data", ok);
        assert_int_equal(tbl_item_validate(item, &err), 0);
        json_decref(item);
    }
    /* an empty container at level 32 holds nothing at level 33 */
    json_t *v = json_pack("{s:{}}", "M");
    for (int i = 0; i < 31; i++) v = json_pack("{s:[o]}", "L", v);
    assert_int_equal(tbl_av_validate(v, NULL), 0);
    json_decref(v);
    /* sets do not add a level */
    v = json_pack("{s:[s]}", "SS", "x");
    for (int i = 0; i < 31; i++) v = json_pack("{s:[o]}", "L", v);
    assert_int_equal(tbl_av_validate(v, NULL), 0);
    json_decref(v);
}

/* ---- size ------------------------------------------------------------------------------- */

static void size_numbers(void **st) {
    (void)st;
    /* measured on DynamoDB's 400 KB gate, byte by byte */
    static const struct {
        const char *lit;
        size_t bytes;
    } cases[] = {
        {"0", 1},         {"1", 2},     {"12", 2},
        {"123", 3},       {"1234", 3},  {"12345678901234567890123456789012345678", 20},
        {"0042", 2},      {"100", 2},   {"1010", 3},
        {"0.0000001", 2}, {"1E125", 2}, {"1E-100", 2},
        {"1.5", 3},       {"15", 2},    {"1.2", 3},
        {"1.200", 3},     {"1.234", 4}, {"3.14159", 5},
        {"123456", 4},    {"100.5", 4}, {"0.15", 2},
        {"-42", 3},       {"-0", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"N\":\"%s\"}", cases[i].lit);
        size_t got = av_size_of(text);
        if (got != cases[i].bytes)
            fail_msg("%s: %zu bytes, want %zu", cases[i].lit, got, cases[i].bytes);
    }
    assert_int_equal(av_size_of("{\"NS\":[\"1\",\"3.14159\",\"-42\"]}"), 2 + 5 + 3);
}

static void size_rules(void **st) {
    (void)st;
    assert_int_equal(av_size_of("{\"S\":\"\"}"), 0);
    assert_int_equal(av_size_of("{\"S\":\"abc\"}"), 3);
    assert_int_equal(av_size_of("{\"S\":\"\\u00e9\\u20ac\"}"), 2 + 3); /* UTF-8 bytes */
    assert_int_equal(av_size_of("{\"B\":\"\"}"), 0);
    assert_int_equal(av_size_of("{\"B\":\"YQ==\"}"), 1);
    assert_int_equal(av_size_of("{\"B\":\"YWI=\"}"), 2);
    assert_int_equal(av_size_of("{\"B\":\"YWJj\"}"), 3);
    assert_int_equal(av_size_of("{\"BOOL\":false}"), 1);
    assert_int_equal(av_size_of("{\"NULL\":true}"), 1);
    assert_int_equal(av_size_of("{\"L\":[]}"), 3);
    assert_int_equal(av_size_of("{\"M\":{}}"), 3);
    assert_int_equal(av_size_of("{\"L\":[{\"S\":\"ab\"},{\"NULL\":true}]}"), 3 + (1 + 2) + (1 + 1));
    assert_int_equal(av_size_of("{\"M\":{\"key\":{\"N\":\"1\"}}}"), 3 + 3 + 1 + 2);
    assert_int_equal(av_size_of("{\"M\":{\"a\":{\"L\":[{\"M\":{}}]}}}"), 3 + 1 + 1 + (3 + 1 + 3));
    assert_int_equal(av_size_of("{\"SS\":[\"ab\",\"c\",\"\"]}"), 3);
    assert_int_equal(av_size_of("{\"BS\":[\"YQ==\",\"YWJj\"]}"), 4);
    json_t *item = J("{\"id\":{\"S\":\"abc\"},\"n\":{\"N\":\"12345\"},\"flag\":{\"BOOL\":true}}");
    assert_int_equal(tbl_item_size(item), (2 + 3) + (1 + 4) + (4 + 1));
    json_decref(item);
    assert_int_equal(tbl_item_size(NULL), 0);
}

static void size_limit(void **st) {
    (void)st;
    /* {"pk":{"S":"k"},"p":{"S":<pad>}} of exactly 409,600 bytes is accepted, one more refused */
    for (int extra = 0; extra < 2; extra++) {
        size_t pad = TBL_MAX_ITEM_BYTES - (2 + 1) - 1 + (size_t)extra;
        char *s = malloc(pad + 1);
        memset(s, 'x', pad);
        s[pad] = '\0';
        json_t *item = json_pack("{s:{s:s},s:{s:s}}", "pk", "S", "k", "p", "S", s);
        assert_int_equal(tbl_item_size(item), TBL_MAX_ITEM_BYTES + (size_t)extra);
        tr_err err = {0};
        int rc = tbl_item_validate(item, &err);
        if (extra) {
            assert_int_equal(rc, TR_EVALIDATION);
            assert_string_equal(err.msg, "Item size has exceeded the maximum allowed size");
        } else {
            assert_int_equal(rc, 0);
        }
        json_decref(item);
        free(s);
    }
    /* numbers are sized by their digits, not their text: 8000 x 1E125 is small */
    json_t *item = json_object();
    for (int i = 0; i < 8000; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        json_object_set_new(item, name, json_pack("{s:s}", "N", "1E125"));
    }
    assert_int_equal(tbl_item_validate(item, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(item, "a7"), "N")),
                        "10000000000000000000000000000000000000000000000000000000000000000000000000"
                        "0000000000000000000000000000000000000000000000000000");
    assert_true(tbl_item_size(item) < 80000);
    json_decref(item);
}

/* ---- equality and order ----------------------------------------------------------------- */

static int eq(const char *a, const char *b) {
    json_t *x = J(a), *y = J(b);
    int r = tbl_av_equal(x, y);
    assert_int_equal(r, tbl_av_equal(y, x)); /* symmetric */
    json_decref(x);
    json_decref(y);
    return r;
}

static void equality(void **st) {
    (void)st;
    assert_true(eq("{\"S\":\"a\"}", "{\"S\":\"a\"}"));
    assert_false(eq("{\"S\":\"a\"}", "{\"S\":\"A\"}"));
    assert_false(eq("{\"S\":\"1\"}", "{\"N\":\"1\"}"));
    assert_true(eq("{\"N\":\"1.50\"}", "{\"N\":\"1.5\"}"));
    assert_true(eq("{\"N\":\"100\"}", "{\"N\":\"1e2\"}"));
    assert_true(eq("{\"N\":\"-0\"}", "{\"N\":\"0\"}"));
    assert_false(eq("{\"N\":\"1\"}", "{\"N\":\"1.0000000000000000000000000000000000001\"}"));
    assert_true(eq("{\"B\":\"YQ==\"}", "{\"B\":\"YQ==\"}"));
    assert_false(eq("{\"B\":\"YQ==\"}", "{\"B\":\"Yg==\"}"));
    assert_true(eq("{\"BOOL\":true}", "{\"BOOL\":true}"));
    assert_false(eq("{\"BOOL\":true}", "{\"BOOL\":false}"));
    assert_true(eq("{\"NULL\":true}", "{\"NULL\":true}"));
    assert_true(eq("{\"SS\":[\"a\",\"b\",\"c\"]}", "{\"SS\":[\"c\",\"a\",\"b\"]}"));
    assert_false(eq("{\"SS\":[\"a\",\"b\"]}", "{\"SS\":[\"a\",\"b\",\"c\"]}"));
    assert_false(eq("{\"SS\":[\"a\",\"b\"]}", "{\"SS\":[\"a\",\"c\"]}"));
    assert_true(eq("{\"NS\":[\"1\",\"2.50\"]}", "{\"NS\":[\"2.5\",\"1.0\"]}"));
    assert_false(eq("{\"NS\":[\"1\",\"2\"]}", "{\"NS\":[\"1\",\"3\"]}"));
    assert_true(eq("{\"BS\":[\"YQ==\",\"Yg==\"]}", "{\"BS\":[\"Yg==\",\"YQ==\"]}"));
    assert_false(eq("{\"SS\":[\"a\"]}", "{\"NS\":[\"1\"]}"));
    assert_true(eq("{\"L\":[{\"N\":\"1\"},{\"S\":\"x\"}]}",
                   "{\"L\":[{\"N\":\"1.0\"},{\"S\":\"x\"}]}"));
    assert_false(eq("{\"L\":[{\"N\":\"1\"},{\"S\":\"x\"}]}",
                    "{\"L\":[{\"S\":\"x\"},{\"N\":\"1\"}]}"));
    assert_false(eq("{\"L\":[{\"N\":\"1\"}]}", "{\"L\":[{\"N\":\"1\"},{\"N\":\"1\"}]}"));
    assert_true(eq("{\"M\":{\"a\":{\"N\":\"1\"},\"b\":{\"SS\":[\"x\",\"y\"]}}}",
                   "{\"M\":{\"b\":{\"SS\":[\"y\",\"x\"]},\"a\":{\"N\":\"1.00\"}}}"));
    assert_false(eq("{\"M\":{\"a\":{\"N\":\"1\"}}}", "{\"M\":{\"b\":{\"N\":\"1\"}}}"));
    assert_false(eq("{\"M\":{\"a\":{\"N\":\"1\"}}}",
                    "{\"M\":{\"a\":{\"N\":\"1\"},\"b\":{\"N\":\"1\"}}}"));
    assert_false(eq("{\"L\":[]}", "{\"M\":{}}"));
    assert_true(eq("{\"S\":\"x\",\"junk\":1}", "{\"S\":\"x\"}"));
    /* large sets compare in n log n, order-free */
    json_t *a = json_array(), *b = json_array();
    for (int i = 0; i < 20000; i++) {
        char s[16];
        snprintf(s, sizeof s, "%d", i);
        json_array_append_new(a, json_string(s));
        snprintf(s, sizeof s, "%d.0", 19999 - i);
        json_array_append_new(b, json_string(s));
    }
    json_t *x = json_pack("{s:o}", "NS", a), *y = json_pack("{s:o}", "NS", b);
    assert_true(tbl_av_equal(x, y));
    json_array_set_new(b, 7, json_string("20000"));
    assert_false(tbl_av_equal(x, y));
    json_decref(x);
    json_decref(y);
}

static int cmp(const char *a, const char *b) {
    json_t *x = J(a), *y = J(b);
    int r = tbl_av_cmp(x, y);
    json_decref(x);
    json_decref(y);
    return r;
}

static void ordering(void **st) {
    (void)st;
    assert_int_equal(cmp("{\"S\":\"a\"}", "{\"S\":\"b\"}"), -1);
    assert_int_equal(cmp("{\"S\":\"b\"}", "{\"S\":\"a\"}"), 1);
    assert_int_equal(cmp("{\"S\":\"a\"}", "{\"S\":\"a\"}"), 0);
    assert_int_equal(cmp("{\"S\":\"a\"}", "{\"S\":\"aa\"}"), -1);
    assert_int_equal(cmp("{\"S\":\"\"}", "{\"S\":\"a\"}"), -1);
    assert_int_equal(cmp("{\"S\":\"Z\"}", "{\"S\":\"a\"}"), -1); /* bytes, not locale */
    assert_int_equal(cmp("{\"S\":\"z\"}", "{\"S\":\"\\u00e9\"}"), -1); /* UTF-8 bytes */
    assert_int_equal(cmp("{\"S\":\"\\uffff\"}", "{\"S\":\"\\ud83d\\ude00\"}"), -1); /* not UTF-16 */
    assert_int_equal(cmp("{\"N\":\"10\"}", "{\"N\":\"9\"}"), 1);
    assert_int_equal(cmp("{\"N\":\"-10\"}", "{\"N\":\"9\"}"), -1);
    assert_int_equal(cmp("{\"N\":\"1.50\"}", "{\"N\":\"1.5\"}"), 0);
    assert_int_equal(cmp("{\"B\":\"AA==\"}", "{\"B\":\"AQ==\"}"), -1);
    assert_int_equal(cmp("{\"B\":\"AQ==\"}", "{\"B\":\"/w==\"}"), -1); /* decoded, not text order */
    assert_int_equal(cmp("{\"B\":\"\"}", "{\"B\":\"AA==\"}"), -1);
    assert_int_equal(cmp("{\"S\":\"1\"}", "{\"N\":\"1\"}"), -2);
    assert_int_equal(cmp("{\"BOOL\":true}", "{\"BOOL\":true}"), -2);
    assert_int_equal(cmp("{\"SS\":[\"a\"]}", "{\"SS\":[\"a\"]}"), -2);
    assert_int_equal(cmp("{\"N\":\"x\"}", "{\"N\":\"1\"}"), -2);
    assert_int_equal(cmp("{\"B\":\"!\"}", "{\"B\":\"AA==\"}"), -2);
}

/* ---- key bytes -------------------------------------------------------------------------- */

static int bcmp3(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static json_t *random_av(int t) {
    static const char *pieces[] = {"",  "\x00",     "\x01",         "a",
                                   "b", "\xc3\xa9", "\xef\xbf\xbf", "\x7f"};
    static const size_t plen[] = {0, 1, 1, 1, 1, 2, 3, 1};
    uint8_t raw[64];
    size_t n = 0, k = rnd() % 6;
    if (t == TBL_T_S) {
        for (size_t i = 0; i < k; i++) {
            size_t p = rnd() % 8;
            memcpy(raw + n, pieces[p], plen[p]);
            n += plen[p];
        }
        return json_pack("{s:s%}", "S", (const char *)raw, n);
    }
    if (t == TBL_T_B) {
        static const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
        for (size_t i = 0; i < k; i++) raw[n++] = bytes[rnd() % 6];
        tr_buf b = TR_BUF_INIT;
        tr_buf_base64(&b, raw, n);
        json_t *v = json_pack("{s:s%}", "B", b.data ? b.data : "", b.len);
        tr_buf_free(&b);
        return v;
    }
    char s[64];
    static const char *nums[] = {
        "0",      "1",      "-1",    "1.5", "-1.5",  "10",
        "1e-130", "-1e125", "0.001", "99",  "-99.9", "123456789012345678901234567890.12345678"};
    snprintf(s, sizeof s, "%s", nums[rnd() % 12]);
    return json_pack("{s:s}", "N", s);
}

static void key_encoding(void **st) {
    (void)st;
    static const int kt[] = {TBL_T_S, TBL_T_N, TBL_T_B};
    for (int ti = 0; ti < 3; ti++) {
        enum { N = 400 };
        json_t *v[N];
        uint8_t *k[N];
        size_t kl[N];
        for (int i = 0; i < N; i++) {
            v[i] = random_av(kt[ti]);
            assert_int_equal(tbl_av_validate(v[i], NULL), 0);
            kl[i] = tbl_key_encode(v[i], NULL, 0); /* sizing call */
            assert_true(kl[i] >= 2);
            k[i] = malloc(kl[i]);
            assert_int_equal(tbl_key_encode(v[i], k[i], kl[i]), kl[i]);
        }
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < N; j++) {
                int c = tbl_av_cmp(v[i], v[j]);
                assert_true(c >= -1 && c <= 1);
                if (bcmp3(k[i], kl[i], k[j], kl[j]) != c) {
                    char *a = dump(v[i]), *b = dump(v[j]);
                    fail_msg("%s vs %s: cmp %d", a, b, c);
                }
                assert_int_equal(c == 0, tbl_av_equal(v[i], v[j]));
            }
        }
        /* concatenated (hash, range) keys sort as tuples: encodings are self-delimiting */
        for (int it = 0; it < 20000; it++) {
            int a = (int)(rnd() % N), b = (int)(rnd() % N), c = (int)(rnd() % N),
                d = (int)(rnd() % N);
            uint8_t x[512], y[512];
            size_t lx = 0, ly = 0;
            memcpy(x, k[a], kl[a]), lx += kl[a];
            memcpy(x + lx, k[b], kl[b]), lx += kl[b];
            memcpy(y, k[c], kl[c]), ly += kl[c];
            memcpy(y + ly, k[d], kl[d]), ly += kl[d];
            int want = tbl_av_cmp(v[a], v[c]);
            if (want == 0) want = tbl_av_cmp(v[b], v[d]);
            assert_int_equal(bcmp3(x, lx, y, ly), want);
        }
        for (int i = 0; i < N; i++) {
            json_decref(v[i]);
            free(k[i]);
        }
    }
    /* different types never share bytes */
    json_t *s = J("{\"S\":\"1\"}"), *n = J("{\"N\":\"1\"}"), *b = J("{\"B\":\"MQ==\"}");
    uint8_t ks[16], kn[32], kb[16];
    size_t ls = tbl_key_encode(s, ks, sizeof ks), ln = tbl_key_encode(n, kn, sizeof kn),
           lb = tbl_key_encode(b, kb, sizeof kb);
    assert_true(bcmp3(ks, ls, kn, ln) != 0 && bcmp3(ks, ls, kb, lb) != 0 &&
                bcmp3(kn, ln, kb, lb) != 0);
    /* a short buffer: nothing past cap is written, the needed length comes back */
    uint8_t small[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    json_t *lng = J("{\"S\":\"hello world\"}");
    assert_int_equal(tbl_key_encode(lng, small, 2), 1 + 11 + 2);
    assert_int_equal(small[2], 0xaa);
    assert_int_equal(small[0], 'S');
    /* not key types, or not valid */
    static const char *nokey[] = {
        "{\"BOOL\":true}",  "{\"NULL\":true}",  "{\"L\":[]}",          "{\"M\":{}}",
        "{\"SS\":[\"a\"]}", "{\"NS\":[\"1\"]}", "{\"BS\":[\"YQ==\"]}", "{}",
        "{\"N\":\"x\"}",    "{\"B\":\"!!\"}"};
    for (size_t i = 0; i < sizeof nokey / sizeof nokey[0]; i++) {
        json_t *v = J(nokey[i]);
        uint8_t buf[64];
        assert_int_equal(tbl_key_encode(v, buf, sizeof buf), 0);
        json_decref(v);
    }
    json_decref(s);
    json_decref(n);
    json_decref(b);
    json_decref(lng);
}

/* Upper-case the 4 hex digits of every \\u escape (jansson writes \\u001F, we \\u001f). */
static void hex_upper(char *s, size_t n) {
    for (size_t i = 0; i + 5 < n; i++)
        if (s[i] == '\\' && s[i + 1] == 'u') {
            for (size_t k = i + 2; k < i + 6; k++)
                if (s[k] >= 'a' && s[k] <= 'f') s[k] = (char)(s[k] - 'a' + 'A');
            i += 5;
        } else if (s[i] == '\\') {
            i++; /* an escaped character: skip it */
        }
}

/* tbl_json_dump writes what jansson's compact dump writes (up to the case of \\u hex). */
static void json_dump_matches_jansson(void **state) {
    (void)state;
    static const char *texts[] = {
        "{}",
        "[]",
        "\"\"",
        "true",
        "false",
        "null",
        "0",
        "-12345678901234",
        "1.5",
        "1e300",
        "{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"-1.50e3\"},\"b\":{\"BOOL\":false}}",
        "{\"q\\\"uote\":{\"S\":\"back\\\\slash / \\\"q\\\" \\n\\r\\t\\b\\f \\u0001\\u001f\\u007f\"}}",
        "{\"utf8\":{\"S\":\"h\\u00e9llo \\u2028 \\ud83d\\ude00 \\u65e5\\u672c\"}}",
        "{\"nul\":{\"S\":\"a\\u0000b\"}}",
        "{\"L\":[{\"M\":{\"x\":{\"NULL\":true},\"y\":{\"L\":[]}}},{\"SS\":[\"a\",\"b\"]}]}",
        "[1,[2,[3,{\"a\":[4]}]]]",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t je;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v) fail_msg("bad test JSON %s: %s", texts[i], je.text);
        size_t want_n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        char *want = malloc(want_n + 1);
        assert_int_equal(json_dumpb(v, want, want_n, JSON_COMPACT | JSON_ENCODE_ANY), want_n);
        tr_buf b = TR_BUF_INIT;
        tbl_json_dump(&b, v);
        assert_int_equal(b.len, want_n);
        hex_upper(b.data, b.len);
        hex_upper(want, want_n);
        assert_memory_equal(b.data, want, want_n);
        free(want);
        tr_buf_free(&b);
        json_decref(v);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(types),
        cmocka_unit_test(json_dump_matches_jansson),
        cmocka_unit_test(validate_messages),
        cmocka_unit_test(validate_canonicalises),
        cmocka_unit_test(validate_depth),
        cmocka_unit_test(size_numbers),
        cmocka_unit_test(size_rules),
        cmocka_unit_test(size_limit),
        cmocka_unit_test(equality),
        cmocka_unit_test(ordering),
        cmocka_unit_test(key_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
