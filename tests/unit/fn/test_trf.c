/* SPDX-License-Identifier: Apache-2.0
 *
 * test_trf.c -- the native function library: JSON reader, base64, Kinesis event JSON to and from
 * native records, handler-call outcomes (src/fn/trf_*.c through include/tributary/function.h and
 * trf_int.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fn/trf_int.h"
#include "tributary/function.h"

static void json_validates(void **st) {
    (void)st;
    const char *good[] = {"{}",
                          "[]",
                          "0",
                          "-1.5e+3",
                          "\"a\\u00e9\\n\"",
                          "true",
                          " null ",
                          "{\"a\":[1,{\"b\":null}],\"c\":\"\\ud83d\\ude00\"}"};
    const char *bad[] = {"",    "{",    "[1,]",     "{\"a\"}", "01",         "1.", "\"\\x\"",
                         "tru", "{} x", "\"a\nb\"", "[1 2]",   "{\"a\":1,}", "-",  "\"\\u12\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(trf_json_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(trf_json_valid(bad[i], strlen(bad[i])));
    /* Deep nesting is refused, not a stack overflow. */
    char deep[3000];
    memset(deep, '[', 1500);
    memset(deep + 1500, ']', 1500);
    assert_false(trf_json_valid(deep, sizeof deep));
}

static void json_lookups(void **st) {
    (void)st;
    const char *j = "{\"device\":\"d-7\",\"n\":12,\"t\":{\"c\":21.5,\"ok\":true},"
                    "\"s\":\"caf\\u00e9 \\\"q\\\"\",\"arr\":[1,2],\"nul\":null}";
    size_t n = strlen(j);
    double d;
    char s[32];
    int b;
    assert_int_equal(trf_json_get_number(j, n, "n", &d), TRF_OK);
    assert_true(d == 12);
    assert_int_equal(trf_json_get_number(j, n, "t.c", &d), TRF_OK);
    assert_true(d == 21.5);
    assert_int_equal(trf_json_get_bool(j, n, "t.ok", &b), TRF_OK);
    assert_true(b);
    assert_int_equal(trf_json_get_string(j, n, "device", s, sizeof s), TRF_OK);
    assert_string_equal(s, "d-7");
    assert_int_equal(trf_json_get_string(j, n, "s", s, sizeof s), TRF_OK);
    assert_string_equal(s, "caf\xc3\xa9 \"q\"");
    assert_int_equal(trf_json_get_string(j, n, "s", s, 4), TRF_ERROR);      /* does not fit */
    assert_int_equal(trf_json_get_number(j, n, "device", &d), TRF_ERROR);   /* wrong type */
    assert_int_equal(trf_json_get_number(j, n, "missing", &d), TRF_ERROR);
    assert_int_equal(trf_json_get_number(j, n, "t.c.x", &d), TRF_ERROR);
    assert_int_equal(trf_json_get_string(j, n, "nul", s, sizeof s), TRF_ERROR);
    assert_int_equal(trf_json_get_number("{", 1, "a", &d), TRF_ERROR);
    assert_int_equal(trf_json_get_number(NULL, 0, "a", &d), TRF_ERROR);
}

static void base64_and_time(void **st) {
    (void)st;
    trf__buf_t b = {0};
    trf__buf_base64(&b, (const uint8_t *)"foobar", 6);
    assert_string_equal(b.data, "Zm9vYmFy");
    b.len = 0;
    trf__buf_base64(&b, (const uint8_t *)"fo", 2);
    assert_string_equal(b.data, "Zm8=");
    uint8_t out[16];
    assert_int_equal(trf__base64_decode("Zm8=", 4, out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(trf__base64_decode("Zm8", 3, out), 2);   /* padding optional */
    assert_int_equal(trf__base64_decode("Z!==", 4, out), -1);
    trf__buf_free(&b);
    char t[32];
    trf__iso_time(1545084650987LL, 1, t);
    assert_string_equal(t, "2018-12-17T22:10:50.987Z");
    trf__iso_time(1596128400000LL, 0, t);
    assert_string_equal(t, "2020-07-30T17:00:00Z");
    int64_t ms;
    assert_int_equal(trf__iso_parse("2020-07-30T17:00:00Z", 20, &ms), 0);
    assert_true(ms == 1596128400000LL);
    assert_int_equal(trf__iso_parse("2018-12-17T22:10:50.987Z", 24, &ms), 0);
    assert_true(ms == 1545084650987LL);
    assert_int_equal(trf__iso_parse("yesterday", 9, &ms), -1);
}

/* AWS's documented example event decodes to native records. */
static void kinesis_event_decodes(void **st) {
    (void)st;
    const char *aws =
        "{\"Records\":[{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"1\","
        "\"sequenceNumber\":\"49590338271490256608559692538361571095921575989136588898\","
        "\"data\":\"SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==\",\"approximateArrivalTimestamp\":"
        "1545084650.987},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":"
        "\"shardId-000000000006:49590338271490256608559692538361571095921575989136588898\","
        "\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":"
        "\"arn:aws:iam::123456789012:role/lambda-role\",\"awsRegion\":\"us-east-2\","
        "\"eventSourceARN\":\"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream\"},"
        "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"1\",\"sequenceNumber\":"
        "\"49590338271490256608559692540925702759324208523137515618\",\"data\":"
        "\"VGhpcyBpcyBvbmx5IGEgdGVzdC4=\",\"approximateArrivalTimestamp\":1545084711.166},"
        "\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\"shardId-000000000006:"
        "49590338271490256608559692540925702759324208523137515618\",\"eventName\":"
        "\"aws:kinesis:record\",\"invokeIdentityArn\":\"arn:aws:iam::123456789012:role/lambda-role\","
        "\"awsRegion\":\"us-east-2\",\"eventSourceARN\":"
        "\"arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream\"}]}";
    trf__event_owned_t e;
    const char *why = NULL;
    assert_int_equal(trf__event_from_json(&e, aws, strlen(aws), &why), 0);
    assert_int_equal(e.ev.kind, TRF_EVENT_KINESIS);
    assert_int_equal(e.ev.n_records, 2);
    assert_string_equal(e.ev.shard_id, "shardId-000000000006");
    assert_string_equal(e.ev.aws_region, "us-east-2");
    assert_string_equal(e.ev.event_source_arn,
                        "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream");
    assert_string_equal((const char *)e.ev.records[0].data, "Hello, this is a test.");
    assert_int_equal(e.ev.records[0].len, 22);
    assert_string_equal(e.ev.records[1].data, "This is only a test.");
    assert_string_equal(e.ev.records[1].sequence_number,
                        "49590338271490256608559692540925702759324208523137515618");
    assert_true(e.ev.records[0].arrival_ms == 1545084650987LL);
    assert_string_equal(e.ev.records[0].partition_key, "1");
    assert_null(e.ev.window);
    trf__event_owned_free(&e);

    /* Not Kinesis: stays JSON. */
    const char *other = "{\"Records\":[{\"eventSource\":\"aws:sqs\",\"body\":\"x\"}]}";
    assert_int_equal(trf__event_from_json(&e, other, strlen(other), &why), 0);
    assert_int_equal(e.ev.kind, TRF_EVENT_JSON);
    assert_ptr_equal(e.ev.json, other);
    trf__event_owned_free(&e);
    /* Kinesis with broken data: an error, not a silent empty record. */
    const char *broken =
        "{\"Records\":[{\"kinesis\":{\"data\":\"@@@\"},\"eventSource\":\"aws:kinesis\"}]}";
    assert_int_equal(trf__event_from_json(&e, broken, strlen(broken), &why), -1);
    assert_non_null(why);
}

/* Native records -> AWS JSON -> native records is the identity, window included. */
static void kinesis_render_round_trip(void **st) {
    (void)st;
    trf_record_t recs[3] = {
        {"dev-1", 5, (const uint8_t *)"{\"t\":1}", 7, "49000000000000000000000000000000000001",
         1700000000123},
        {"d\"q", 3, (const uint8_t *)"\x00\x01\xff", 3, "49000000000000000000000000000000000002",
         1700000000999},
        {"", 0, (const uint8_t *)"", 0, "49000000000000000000000000000000000003", 1700000001000},
    };
    trf_window_t w = {1700000000000, 1700000060000, "{\"sum\":3}", 9, 1, 0};
    trf_event_t ev = {TRF_ABI_VERSION,
                      TRF_EVENT_KINESIS,
                      NULL,
                      0,
                      recs,
                      3,
                      "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                      "shardId-000000000002",
                      "us-east-1",
                      &w,
                      {0}};
    trf__buf_t b = {0};
    trf__kinesis_render(&b, &ev, NULL);
    assert_true(trf_json_valid(b.data, b.len));
    assert_non_null(strstr(
        b.data, "\"eventID\":\"shardId-000000000002:49000000000000000000000000000000000001\""));
    assert_non_null(strstr(b.data, "\"approximateArrivalTimestamp\":1700000000.123"));
    assert_non_null(
        strstr(b.data,
               "\"window\":{\"start\":\"2023-11-14T22:13:20Z\",\"end\":\"2023-11-14T22:14:20Z\"}"));
    assert_non_null(strstr(b.data, "\"isFinalInvokeForWindow\":true"));
    trf__event_owned_t e;
    const char *why;
    assert_int_equal(trf__event_from_json(&e, b.data, b.len, &why), 0);
    assert_int_equal(e.ev.kind, TRF_EVENT_KINESIS);
    assert_int_equal(e.ev.n_records, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e.ev.records[i].len, recs[i].len);
        assert_memory_equal(e.ev.records[i].data, recs[i].data, recs[i].len);
        assert_string_equal(e.ev.records[i].partition_key, recs[i].partition_key);
        assert_string_equal(e.ev.records[i].sequence_number, recs[i].sequence_number);
        assert_true(e.ev.records[i].arrival_ms == recs[i].arrival_ms);
    }
    assert_non_null(e.ev.window);
    assert_true(e.ev.window->start_ms == w.start_ms && e.ev.window->end_ms == w.end_ms);
    assert_true(e.ev.window->is_final);
    assert_string_equal(e.ev.window->state, "{\"sum\":3}");
    assert_string_equal(e.ev.shard_id, "shardId-000000000002");
    trf__event_owned_free(&e);
    /* The final invoke of a window may carry no records: still a Kinesis event. */
    ev.n_records = 0;
    b.len = 0;
    trf__kinesis_render(&b, &ev, NULL);
    assert_int_equal(trf__event_from_json(&e, b.data, b.len, &why), 0);
    assert_int_equal(e.ev.kind, TRF_EVENT_KINESIS);
    assert_int_equal(e.ev.n_records, 0);
    assert_non_null(e.ev.window);
    trf__event_owned_free(&e);
    trf__buf_free(&b);
}

/* ---- handler outcomes --------------------------------------------------------------------------- */

static int h_fail_two(const trf_event_t *ev, trf_context_t *ctx) {
    trf_log(ctx, "n=%zu", ev->n_records);
    assert_int_equal(trf_fail_record(ctx, 99), TRF_ERROR); /* out of range */
    trf_fail_record(ctx, 2);
    trf_fail_record(ctx, 1);
    return TRF_OK;
}
static int h_error(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ev;
    return trf_error(ctx, "Boom", "it \"broke\"");
}
static int h_return(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ev;
    (void)ctx;
    return 7;
}
static int h_window(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ev;
    assert_int_equal(trf_window_state(ctx, "[1]", 3), TRF_ERROR); /* must be an object */
    return trf_window_state(ctx, "{\"n\":5}", 7);
}
static int h_json(const trf_event_t *ev, trf_context_t *ctx) {
    size_t n = 0;
    const char *j = trf_event_json(ctx, ev, &n);
    if (ev->kind == TRF_EVENT_KINESIS) {
        assert_non_null(j);
        assert_true(trf_json_valid(j, n));
        assert_non_null(strstr(j, "\"eventSource\":\"aws:kinesis\""));
        return TRF_OK;
    }
    return trf_respond(ctx, j, n);
}

static char logged[1024];
static void sink(void *arg, const char *t, size_t n) {
    (void)arg;
    strncat(logged, t,
            n < sizeof logged - strlen(logged) - 1 ? n : sizeof logged - strlen(logged) - 1);
}

static void call_outcomes(void **st) {
    (void)st;
    trf_record_t recs[3] = {{"a", 1, (const uint8_t *)"x", 1, "101", 1},
                            {"b", 1, (const uint8_t *)"y", 1, "102", 2},
                            {"c", 1, (const uint8_t *)"z", 1, "103", 3}};
    trf_event_t ev = {TRF_ABI_VERSION, TRF_EVENT_KINESIS, NULL, 0,    recs, 3,
                      "arn",           "shardId-0",       "r",  NULL, {0}};
    trf__call_t c;
    memset(&c, 0, sizeof c);
    c.log_sink = sink;
    c.ctx.request_id = "rid";
    logged[0] = 0;
    assert_int_equal(trf__call_run(&c, h_fail_two, &ev), 0);
    assert_false(c.failed);
    assert_string_equal(c.payload.data, "{\"batchItemFailures\":[{\"itemIdentifier\":\"103\"},"
                                        "{\"itemIdentifier\":\"102\"}]}");
    assert_string_equal(logged, "n=3\n");

    assert_int_equal(trf__call_run(&c, h_error, &ev), 0);
    assert_true(c.failed);
    assert_string_equal(c.error_type, "Boom");
    assert_string_equal(c.payload.data,
                        "{\"errorMessage\":\"it \\\"broke\\\"\",\"errorType\":\"Boom\"}");

    assert_int_equal(trf__call_run(&c, h_return, &ev), 0);
    assert_true(c.failed);
    assert_string_equal(c.error_type, "HandlerError");
    assert_non_null(strstr(c.payload.data, "returned 7"));

    /* Window: the state set is returned; with none set, the received state is carried. */
    trf_window_t w = {0, 1000, "{\"n\":1}", 7, 0, 0};
    ev.window = &w;
    assert_int_equal(trf__call_run(&c, h_window, &ev), 0);
    assert_string_equal(c.payload.data, "{\"state\":{\"n\":5},\"batchItemFailures\":[]}");
    assert_int_equal(trf__call_run(&c, h_json, &ev), 0);
    assert_string_equal(c.payload.data, "{\"state\":{\"n\":1},\"batchItemFailures\":[]}");
    ev.window = NULL;
    assert_int_equal(trf__call_run(&c, h_json, &ev), 0);
    assert_string_equal(c.payload.data, "null"); /* plain success */

    trf_event_t je = {
        TRF_ABI_VERSION, TRF_EVENT_JSON, "{\"a\":1}", 7, NULL, 0, "", "", "", NULL, {0}};
    assert_int_equal(trf__call_run(&c, h_json, &je), 0);
    assert_string_equal(c.payload.data, "{\"a\":1}");
    assert_int_equal(trf__call_run(&c, h_fail_two, &je), 0); /* fail_record refused for JSON */
    assert_string_equal(c.payload.data, "null");
    trf__call_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_validates),
        cmocka_unit_test(json_lookups),
        cmocka_unit_test(base64_and_time),
        cmocka_unit_test(kinesis_event_decodes),
        cmocka_unit_test(kinesis_render_round_trip),
        cmocka_unit_test(call_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
