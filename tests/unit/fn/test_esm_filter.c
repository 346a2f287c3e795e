/* SPDX-License-Identifier: Apache-2.0
 *
 * test_esm_filter.c -- FilterCriteria of event-source mappings (src/fn/esm_filter.c): AWS's
 * event-pattern grammar on Kinesis records, and what it refuses at compile time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fn/esm.h"
#include "testutil.h"

/* Does a record with this JSON data (and partition key) pass a single pattern? */
static int passes(const char *pattern, const char *pk, const char *data) {
    char crit[4096];
    char esc[2048];
    size_t k = 0;
    for (const char *p = pattern; *p && k < sizeof esc - 2; p++) {
        if (*p == '"' || *p == '\\') esc[k++] = '\\';
        esc[k++] = *p;
    }
    esc[k] = 0;
    snprintf(crit, sizeof crit, "{\"Filters\":[{\"Pattern\":\"%s\"}]}", esc);
    esm_filter_t *f = NULL;
    tr_err err;
    int rc = esm_filter_compile(crit, &f, &err);
    if (rc) fail_msg("pattern %s does not compile: %s", pattern, err.msg);
    int ok = esm_filter_match(f, pk, strlen(pk), "49000000000000000000000000000000000001",
                              1700000000123, (const uint8_t *)data, strlen(data));
    esm_filter_free(f);
    return ok;
}

/* Does the criteria compile?  A refusal must be TR_EINVAL with a message saying why. */
static int compiles(const char *criteria) {
    esm_filter_t *f = NULL;
    tr_err err;
    tr_err_clear(&err);
    int rc = esm_filter_compile(criteria, &f, &err);
    esm_filter_free(f);
    if (rc) {
        tu_fails(rc, TR_EINVAL, err, NULL);
        assert_true(err.msg[0] != 0);
    }
    return rc == 0;
}

static void equality_and_types(void **st) {
    (void)st;
    assert_true(passes("{\"data\":{\"t\":[\"buy\"]}}", "k", "{\"t\":\"buy\"}"));
    assert_false(passes("{\"data\":{\"t\":[\"buy\"]}}", "k", "{\"t\":\"sell\"}"));
    assert_true(passes("{\"data\":{\"t\":[\"sell\",\"buy\"]}}", "k", "{\"t\":\"buy\"}")); /* OR */
    assert_true(passes("{\"data\":{\"n\":[5]}}", "k", "{\"n\":5.0}")); /* numeric */
    assert_false(passes("{\"data\":{\"n\":[5]}}", "k", "{\"n\":\"5\"}")); /* types */
    assert_true(passes("{\"data\":{\"b\":[true]}}", "k", "{\"b\":true}"));
    assert_true(passes("{\"data\":{\"z\":[null]}}", "k", "{\"z\":null}"));
    assert_false(passes("{\"data\":{\"z\":[null]}}", "k", "{}")); /* absent != null */
    assert_true(passes("{\"data\":{\"e\":[\"\"]}}", "k", "{\"e\":\"\"}"));
    /* AND across keys, nesting, arrays in the record. */
    assert_true(passes("{\"data\":{\"a\":[1],\"o\":{\"b\":[\"x\"]}}}", "k",
                       "{\"a\":1,\"o\":{\"b\":\"x\"}}"));
    assert_false(passes("{\"data\":{\"a\":[1],\"o\":{\"b\":[\"x\"]}}}", "k",
                        "{\"a\":1,\"o\":{\"b\":\"y\"}}"));
    assert_true(passes("{\"data\":{\"tags\":[\"hot\"]}}", "k", "{\"tags\":[\"cold\",\"hot\"]}"));
    /* Not JSON: data patterns cannot match; metadata ones can. */
    assert_false(passes("{\"data\":{\"a\":[{\"exists\":false}]}}", "k", "plain text"));
    assert_true(passes("{\"partitionKey\":[\"dev-1\"]}", "dev-1", "plain text"));
}

static void operators(void **st) {
    (void)st;
    assert_true(passes("{\"data\":{\"s\":[{\"prefix\":\"AB\"}]}}", "k", "{\"s\":\"ABC\"}"));
    assert_false(passes("{\"data\":{\"s\":[{\"prefix\":\"AB\"}]}}", "k", "{\"s\":\"XAB\"}"));
    assert_true(passes("{\"data\":{\"s\":[{\"prefix\":{\"equals-ignore-case\":\"ab\"}}]}}", "k",
                       "{\"s\":\"ABC\"}"));
    assert_true(passes("{\"data\":{\"s\":[{\"suffix\":\".png\"}]}}", "k", "{\"s\":\"a.png\"}"));
    assert_true(passes("{\"data\":{\"s\":[{\"equals-ignore-case\":\"BuY\"}]}}", "k",
                       "{\"s\":\"buy\"}"));
    assert_true(passes("{\"data\":{\"s\":[{\"wildcard\":\"a*c*e\"}]}}", "k", "{\"s\":\"abcde\"}"));
    assert_false(passes("{\"data\":{\"s\":[{\"wildcard\":\"a*c*e\"}]}}", "k", "{\"s\":\"abcd\"}"));
    assert_true(passes("{\"data\":{\"s\":[{\"anything-but\":[\"a\",\"b\"]}]}}", "k",
                       "{\"s\":\"c\"}"));
    assert_false(passes("{\"data\":{\"s\":[{\"anything-but\":[\"a\",\"b\"]}]}}", "k",
                        "{\"s\":\"b\"}"));
    assert_false(passes("{\"data\":{\"s\":[{\"anything-but\":\"a\"}]}}", "k", "{}")); /* absent */
    assert_true(passes("{\"data\":{\"s\":[{\"anything-but\":{\"prefix\":\"x\"}}]}}", "k",
                       "{\"s\":\"yz\"}"));
    assert_false(passes("{\"data\":{\"s\":[{\"anything-but\":{\"prefix\":\"x\"}}]}}", "k",
                        "{\"s\":\"xy\"}"));
    assert_true(passes("{\"data\":{\"n\":[{\"numeric\":[\">\",0,\"<=\",5]}]}}", "k", "{\"n\":5}"));
    assert_false(passes("{\"data\":{\"n\":[{\"numeric\":[\">\",0,\"<=\",5]}]}}", "k", "{\"n\":0}"));
    assert_false(passes("{\"data\":{\"n\":[{\"numeric\":[\">\",0]}]}}", "k", "{\"n\":\"7\"}"));
    assert_true(passes("{\"data\":{\"n\":[{\"numeric\":[\"=\",2.5]}]}}", "k", "{\"n\":2.5}"));
    assert_true(passes("{\"data\":{\"x\":[{\"exists\":true}]}}", "k", "{\"x\":0}"));
    assert_false(passes("{\"data\":{\"x\":[{\"exists\":true}]}}", "k", "{\"y\":0}"));
    assert_true(passes("{\"data\":{\"x\":[{\"exists\":false}]}}", "k", "{\"y\":0}"));
    assert_true(passes("{\"data\":{\"o\":{\"x\":[{\"exists\":false}]}}}", "k", "{\"y\":0}"));
    assert_true(passes("{\"data\":{\"ip\":[{\"cidr\":\"10.0.0.0/8\"}]}}", "k",
                       "{\"ip\":\"10.2.3.4\"}"));
    assert_false(passes("{\"data\":{\"ip\":[{\"cidr\":\"10.0.0.0/8\"}]}}", "k",
                        "{\"ip\":\"11.2.3.4\"}"));
}

static void any_filter_passes(void **st) {
    (void)st;
    const char *c = "{\"Filters\":[{\"Pattern\":\"{\\\"data\\\":{\\\"a\\\":[1]}}\"},"
                    "{\"Pattern\":\"{\\\"data\\\":{\\\"b\\\":[2]}}\"}]}";
    esm_filter_t *f;
    tr_err err;
    tu_ok(esm_filter_compile(c, &f, &err), err);
    assert_true(esm_filter_match(f, "k", 1, "1", 0, (const uint8_t *)"{\"b\":2}", 7));
    assert_false(esm_filter_match(f, "k", 1, "1", 0, (const uint8_t *)"{\"c\":2}", 7));
    esm_filter_free(f);
    /* No filters: everything passes. */
    tu_ok(esm_filter_compile("{\"Filters\":[]}", &f, &err), err);
    assert_null(f);
    assert_true(esm_filter_match(NULL, "k", 1, "1", 0, (const uint8_t *)"x", 1));
}

static void refused_at_compile(void **st) {
    (void)st;
    assert_false(compiles("[]"));
    assert_false(compiles("{\"Filters\":{}}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"nope\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{}\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":1}\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[]}\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[{\\\"nope\\\":1}]}\"}]}"));
    assert_false(compiles(
        "{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[{\\\"numeric\\\":[\\\"~\\\",1]}]}\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[{\\\"exists\\\":1}]}\"}]}"));
    assert_false(
        compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[{\\\"cidr\\\":\\\"x/99\\\"}]}\"}]}"));
    assert_false(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[{\\\"prefix\\\":1}]}\"}]}"));
    assert_false(compiles("{\"Filters\":[{}]}"));
    char six[1024] = "{\"Filters\":[";
    for (int i = 0; i < 6; i++)
        strcat(six, i ? ",{\"Pattern\":\"{\\\"a\\\":[1]}\"}" : "{\"Pattern\":\"{\\\"a\\\":[1]}\"}");
    strcat(six, "]}");
    assert_false(compiles(six));
    assert_true(compiles("{\"Filters\":[{\"Pattern\":\"{\\\"a\\\":[1]}\"}]}"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(equality_and_types),
        cmocka_unit_test(operators),
        cmocka_unit_test(any_filter_passes),
        cmocka_unit_test(refused_at_compile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
