/* SPDX-License-Identifier: Apache-2.0
 *
 * test_kinesis_adapter.c -- the Kinesis adapter and the adapter kit through the in-process call
 * path (kit.h: api_call_local): no HTTP, no SigV4, the same dispatch, validation, engine calls
 * and responses as a request.  Cheaper than the integration tests for what is about the
 * adapter's answers: validation texts, unknown operations, errors, puts (fast and general path)
 * and reads on a temporary data directory.  Also the REST services' routing and error shape
 * (Lambda, with no engine behind it) and the kit's helpers (error maps, ISO 8601, query
 * strings, REST path patterns).
 *
 * Every test opens its own engine in a temporary directory; waits are bounded (deferred puts
 * answer from the engine's commit thread).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/kit.h"
#include "log/slog.h"
#include "testutil.h"

#define WAIT_S 60

/* ---- fixtures -------------------------------------------------------------------------------- */

typedef struct fx {
    char *dir;
    api_kinesis_t kin;
    api_ctx_t ctx;
} fx_t;

static long long fixed_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dir = tu_tmpdir("test_kinesis_adapter");
    tr_err err = {0, ""};
    slog_opts_t o;
    memset(&o, 0, sizeof o);
    o.no_sync = 1;
    if (slog_open(fx->dir, &o, &fx->ctx.slog, &err)) fail_msg("slog_open: %s", err.msg);
    if (api_kinesis_init(&fx->kin, fx->dir, 300000, &err)) fail_msg("kinesis: %s", err.msg);
    fx->ctx.region = "us-east-1";
    fx->ctx.now_ms = fixed_now;
    fx->ctx.kinesis = &fx->kin;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    slog_close(fx->ctx.slog);
    tu_tmpdir_done(fx->dir);
    free(fx);
    return 0;
}

/* One call's answer, waited for (the done callback may run on another thread). */
typedef struct answer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    char *body;
} answer_t;

static void on_done(void *arg, int status, const char *body, size_t len) {
    answer_t *a = arg;
    pthread_mutex_lock(&a->mu);
    a->status = status;
    a->body = strndup(body, len);
    a->done = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Call op of svc with body; returns the status, *body the response (free it). */
static int call_svc(api_ctx_t *ctx, const api_service_t *svc, const char *op, const char *body,
                    char **out) {
    answer_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
    api_call_local(ctx, svc, op, body, strlen(body), on_done, &a);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&a.mu);
    while (!a.done)
        if (pthread_cond_timedwait(&a.cv, &a.mu, &until)) fail_msg("%s did not answer", op);
    pthread_mutex_unlock(&a.mu);
    *out = a.body;
    return a.status;
}

static int call(fx_t *fx, const char *op, const char *body, char **out) {
    return call_svc(&fx->ctx, &api_kinesis_service, op, body, out);
}

/* Call and check status and that the body contains `want`. */
static void expect(fx_t *fx, const char *op, const char *body, int status, const char *want) {
    char *got;
    int st = call(fx, op, body, &got);
    if (st != status || !strstr(got, want))
        fail_msg("%s %s: got %d %s; want %d and \"%s\"", op, body, st, got, status, want);
    free(got);
}

/* The string member `name` of a JSON response into out. */
static void member(const char *json, const char *name, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *p = strstr(json, key);
    if (!p) fail_msg("no %s in %s", name, json);
    p += strlen(key);
    size_t n = strcspn(p, "\"");
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = 0;
}

/* ---- errors and validation ------------------------------------------------------------------- */

static void test_unknown_operation(void **state) {
    expect(*state, "DescribeStreamConsumer", "{}", 400,
           "{\"__type\":\"UnknownOperationException\",\"message\":\"Operation "
           "DescribeStreamConsumer is not implemented by Tributary's Kinesis API; see the "
           "compatibility table in README.md\"}");
}

static void test_serialization(void **state) {
    expect(*state, "ListStreams", "", 400,
           "{\"__type\":\"SerializationException\",\"message\":\"Request body is empty; send a "
           "JSON object with the operation's members ({} when there are none)\"}");
    expect(*state, "ListStreams", "[1]", 400,
           "\"Request body must be a JSON object with the operation's members\"");
    expect(*state, "ListStreams", "{\"Limit\":\"ten\"}", 400,
           "{\"__type\":\"SerializationException\",\"message\":\"Expected an integer for Limit, "
           "got another JSON type\"}");
}

static void test_validation_messages(void **state) {
    /* accumulated, camelCase member names, AWS's wording */
    expect(*state, "CreateStream", "{\"StreamName\":\"bad name!\",\"ShardCount\":0}", 400,
           "{\"__type\":\"ValidationException\",\"message\":\"2 validation errors detected: "
           "Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy "
           "regular expression pattern: [a-zA-Z0-9_.-]+; Value '0' at 'shardCount' failed to "
           "satisfy constraint: Member must have value greater than or equal to 1\"}");
    expect(*state, "DescribeStreamSummary", "{}", 400,
           "\"Either StreamName or StreamARN should be provided.\"");
    expect(*state, "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"shardId-0\"}", 400,
           "\"1 validation error detected: Value null at 'shardIteratorType' failed to satisfy "
           "constraint: Member must not be null\"");
}

static void test_engine_errors_through_the_map(void **state) {
    expect(*state, "DescribeStreamSummary", "{\"StreamName\":\"nope\"}", 400,
           "{\"__type\":\"ResourceNotFoundException\"");
    expect(*state, "CreateStream", "{\"StreamName\":\"twice\",\"ShardCount\":1}", 200, "");
    expect(*state, "CreateStream", "{\"StreamName\":\"twice\",\"ShardCount\":1}", 400,
           "{\"__type\":\"ResourceInUseException\"");
    expect(*state, "DescribeStreamSummary",
           "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:111122223333:stream/twice\"}", 400,
           "{\"__type\":\"AccessDeniedException\",\"message\":\"User: "
           "arn:aws:iam::000000000000:root is not authorized to perform: "
           "kinesis:DescribeStreamSummary on resource:");
}

/* ---- puts and reads ---------------------------------------------------------------------------- */

static void read_back(fx_t *fx, const char *stream, int n_want, const char *data_b64) {
    char body[256], it[128], *got;
    snprintf(body, sizeof body,
             "{\"StreamName\":\"%s\",\"ShardId\":\"shardId-000000000000\","
             "\"ShardIteratorType\":\"TRIM_HORIZON\"}",
             stream);
    assert_int_equal(call(fx, "GetShardIterator", body, &got), 200);
    member(got, "ShardIterator", it, sizeof it);
    free(got);
    snprintf(body, sizeof body, "{\"ShardIterator\":\"%s\"}", it);
    assert_int_equal(call(fx, "GetRecords", body, &got), 200);
    int n = 0;
    for (const char *p = got; (p = strstr(p, "\"SequenceNumber\"")) != NULL; p++) n++;
    if (n != n_want || !strstr(got, data_b64))
        fail_msg("GetRecords: want %d records with %s, got %s", n_want, data_b64, got);
    free(got);
}

static void test_put_and_get(void **state) {
    fx_t *fx = *state;
    expect(fx, "CreateStream", "{\"StreamName\":\"s1\",\"ShardCount\":1}", 200, "");
    /* the fast path (plain members) and the general path (ExplicitHashKey makes the scanner
     * bail): the same answers */
    expect(fx, "PutRecord", "{\"StreamName\":\"s1\",\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\"}",
           200, "{\"ShardId\":\"shardId-000000000000\",\"SequenceNumber\":\"");
    expect(fx, "PutRecord",
           "{\"StreamName\":\"s1\",\"Data\":\"d29ybGQ=\",\"PartitionKey\":\"k\","
           "\"ExplicitHashKey\":\"1\"}",
           200, "{\"ShardId\":\"shardId-000000000000\",\"SequenceNumber\":\"");
    expect(fx, "PutRecords",
           "{\"StreamName\":\"s1\",\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\"},"
           "{\"Data\":\"Yg==\",\"PartitionKey\":\"b\"}]}",
           200, "{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"");
    read_back(fx, "s1", 4, "\"d29ybGQ=\"");
    /* the general path's validation, answered synchronously */
    expect(fx, "PutRecords", "{\"StreamName\":\"s1\",\"Records\":[]}", 400,
           "Value '[]' at 'records' failed to satisfy constraint: Member must have length "
           "greater than or equal to 1");
    expect(fx, "PutRecord", "{\"StreamName\":\"nope\",\"Data\":\"YQ==\",\"PartitionKey\":\"a\"}",
           400, "{\"__type\":\"ResourceNotFoundException\"");
}

static void test_iterator_refused_when_forged(void **state) {
    fx_t *fx = *state;
    expect(fx, "GetRecords",
           "{\"ShardIterator\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", 400,
           "Invalid ShardIterator: it was not issued by this server or was altered");
}

/* ---- REST services: routing, readiness, error shape ------------------------------------------- */

static void expect_rest(const api_service_t *svc, const char *line, int status, const char *want) {
    api_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx); /* no engines: the services answer 503 once routed */
    ctx.region = "us-east-1";
    char *got;
    int st = call_svc(&ctx, svc, line, "", &got);
    if (st != status || strcmp(got, want))
        fail_msg("%s: got %d %s; want %d %s", line, st, got, status, want);
    free(got);
}

static void test_lambda_routes(void **state) {
    (void)state;
    expect_rest(&api_lambda_service, "GET /2015-03-31/functions/f/nothing", 404,
                "{\"Type\":\"User\",\"message\":\"GET /2015-03-31/functions/f/nothing is not a "
                "Lambda operation this server implements; see README.md\"}");
    expect_rest(&api_lambda_service, "PATCH /2015-03-31/functions/f", 405,
                "{\"Type\":\"User\",\"message\":\"PATCH /2015-03-31/functions/f is not a Lambda "
                "operation this server implements; see README.md\"}");
    /* ServiceException's shape spells "Message" */
    expect_rest(&api_lambda_service, "GET /2015-03-31/functions/?MaxItems=5", 503,
                "{\"Type\":\"Service\",\"Message\":\"The functions engine is not running\"}");
    expect_rest(&api_lambda_esm_service, "GET /2015-03-31/event-source-mappings/", 503,
                "{\"Type\":\"Service\",\"Message\":\"Event source mappings are not running\"}");
    expect_rest(&api_lambda_esm_service, "DELETE /2015-03-31/event-source-mappings", 405,
                "{\"Type\":\"User\",\"message\":\"DELETE /2015-03-31/event-source-mappings is not "
                "a Lambda operation this server implements; see README.md\"}");
}

/* ---- kit helpers ------------------------------------------------------------------------------- */

static void test_lambda_error_map(void **state) {
    (void)state;
    /* one map for both Lambda files: in use is 400 ResourceInUseException, a stale RevisionId
     * (TR_ECONDITION) 412 PreconditionFailedException */
    const api_errmap_t *e = api_error_row(&api_lambda_service, TR_EINUSE);
    assert_int_equal(e->status, 400);
    assert_string_equal(e->type, "ResourceInUseException");
    e = api_error_row(&api_lambda_esm_service, TR_ECONDITION);
    assert_int_equal(e->status, 412);
    assert_string_equal(e->type, "PreconditionFailedException");
    e = api_error_row(&api_lambda_service, TR_EIO);
    assert_int_equal(e->status, 500);
    assert_string_equal(e->type, "ServiceException");
    e = api_error_row(&api_kinesis_service, TR_EEXPIRED);
    assert_string_equal(e->type, "ExpiredIteratorException");
}

static void test_iso8601(void **state) {
    (void)state;
    int64_t ms;
    assert_int_equal(api_iso8601_parse("2020-07-30T17:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 1596128400000LL);
    assert_int_equal(api_iso8601_parse("2018-12-17T22:10:50.987Z", 24, &ms), 0);
    assert_int_equal(ms, 1545084650987LL);
    assert_int_equal(api_iso8601_parse("2018-12-17T22:10:50.9+00:00", 27, &ms), 0);
    assert_int_equal(ms, 1545084650900LL);
    assert_int_equal(api_iso8601_parse("2018-12-17T22:10:50", 19, &ms), -1);
    assert_int_equal(api_iso8601_parse("yesterday", 9, &ms), -1);
    assert_int_equal(api_iso8601_parse("2018-13-17T22:10:50Z", 20, &ms), -1);
}

static void test_query_and_paths(void **state) {
    (void)state;
    net_req_t req;
    memset(&req, 0, sizeof req);
    req.query = "Marker=a%2Fb&MaxItems=5&Bad=%zz&Flag&Q=x+y";
    char out[16];
    assert_int_equal(api_query(&req, "Marker", out, sizeof out), 1);
    assert_string_equal(out, "a/b");
    assert_int_equal(api_query(&req, "Q", out, sizeof out), 1);
    assert_string_equal(out, "x y");
    assert_int_equal(api_query(&req, "Flag", out, sizeof out), 1);
    assert_string_equal(out, "");
    assert_int_equal(api_query(&req, "Bad", out, sizeof out), -1);
    assert_int_equal(api_query(&req, "None", out, sizeof out), 0);
    assert_int_equal(api_query(&req, "Marker", out, 3), -1); /* too long */
    char seg[API_SEG_MAX];
    assert_int_equal(api_path_match("/2015-03-31/functions/{}/code",
                                    "/2015-03-31/functions/f1/code/", seg, sizeof seg),
                     1);
    assert_string_equal(seg, "f1");
    assert_int_equal(api_path_match("/2015-03-31/functions/{}", "/2015-03-31/functions//", seg,
                                    sizeof seg),
                     0);
    assert_int_equal(api_path_match("/2015-03-31/functions", "/2015-03-31/functions/x", seg,
                                    sizeof seg),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_operation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serialization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_errors_through_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_refused_when_forged, setup, teardown),
        cmocka_unit_test(test_lambda_routes),
        cmocka_unit_test(test_lambda_error_map),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_query_and_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
