/* SPDX-License-Identifier: Apache-2.0
 *
 * test_dynamodb_adapter.c -- the DynamoDB adapter as a kit service, through its in-process call
 * path (api_dynamodb_call, which native functions' trf_table_* use): no HTTP, no SigV4, the same
 * dispatch, validation, engine calls and responses as a request.  What the integration suites
 * cannot reach cheaply: a server whose table engine is not open (the service's ready hook), and
 * the namespaced __type of every kind of error (the service's type namer and error map), plus a
 * deferred write answered from the engine's commit thread and read back.
 *
 * Every test opens its own engine in a temporary directory; waits are bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "api/api.h"
#include "api/kit.h"
#include "table/tbl.h"

#define WAIT_S 60
#define NS "com.amazonaws.dynamodb.v20120810#"

/* ---- fixtures -------------------------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    api_ctx_t ctx;
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w) {
    (void)sb, (void)f, (void)w;
    remove(p);
    return 0;
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_dynamodb_adapter.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    tr_err err = {0, ""};
    tbl_opts_t o;
    memset(&o, 0, sizeof o);
    o.no_sync = 1;
    o.ttl_interval_ms = -1;
    if (tbl_open(fx->dir, &o, &fx->ctx.tbl, &err)) fail_msg("tbl_open: %s", err.msg);
    fx->ctx.region = "us-east-1";
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    tbl_close(fx->ctx.tbl);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* One call's answer, waited for (a write's done callback runs on the engine's thread). */
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

/* Call op with body; returns the status, *out the response (free it). */
static int call(api_ctx_t *ctx, const char *op, const char *body, char **out) {
    answer_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
    api_dynamodb_call(ctx, op, body, strlen(body), on_done, &a);
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

/* Call and check the status and that the body is (exact) or contains `want`. */
static void expect_at(api_ctx_t *ctx, const char *op, const char *body, int status,
                      const char *want, int exact) {
    char *got;
    int st = call(ctx, op, body, &got);
    if (st != status || (exact ? strcmp(got, want) : !strstr(got, want)))
        fail_msg("%s %s: got %d %s; want %d and \"%s\"", op, body, st, got, status, want);
    free(got);
}
#define expect(fx, op, body, status, want) expect_at(&(fx)->ctx, op, body, status, want, 0)
#define expect_exact(fx, op, body, status, want) expect_at(&(fx)->ctx, op, body, status, want, 1)

static const char table_def[] =
    "{\"TableName\":\"tab\",\"BillingMode\":\"PAY_PER_REQUEST\","
    "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"}],"
    "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}]}";

/* ---- the service: dispatch, ready hook, error types ------------------------------------------ */

static void test_unknown_operation_and_bodies(void **state) {
    fx_t *fx = *state;
    expect_exact(fx, "DescribeLimits", "{}", 400,
                 "{\"__type\":\"com.amazon.coral.service#UnknownOperationException\",\"message\":"
                 "\"Operation DescribeLimits is not implemented by Tributary's DynamoDB API; see "
                 "the compatibility table in README.md\"}");
    expect_exact(fx, "ListTables", "", 400,
                 "{\"__type\":\"com.amazon.coral.service#SerializationException\",\"message\":"
                 "\"Request body is empty; send a JSON object with the operation's members ({} "
                 "when there are none)\"}");
    expect(fx, "ListTables", "[1]", 400,
           "\"Request body must be a JSON object with the operation's members\"");
    /* DynamoDB's own words for a member of the wrong JSON type */
    expect_exact(fx, "ListTables", "{\"Limit\":\"ten\"}", 400,
                 "{\"__type\":\"com.amazon.coral.service#SerializationException\",\"message\":"
                 "\"STRING_VALUE can not be converted to Integer (member Limit)\"}");
}

static void test_engine_not_open(void **state) {
    fx_t *fx = *state;
    api_ctx_t ctx = fx->ctx;
    ctx.tbl = NULL;
    expect_at(&ctx, "ListTables", "{}", 500,
              "{\"__type\":\"" NS "InternalServerError\",\"message\":\"The table engine is not "
              "open on this server\"}",
              1);
    /* an unknown operation is still named as such */
    expect_at(&ctx, "Nope", "{}", 400, "UnknownOperationException", 0);
}

static void test_validation_accumulates(void **state) {
    expect_exact((fx_t *)*state, "PutItem", "{\"TableName\":\"x\",\"ReturnValues\":\"SOME\"}", 400,
                 "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"message\":\"3 "
                 "validation errors detected: Value 'x' at 'tableName' failed to satisfy "
                 "constraint: Member must have length greater than or equal to 3; Value null at "
                 "'item' failed to satisfy constraint: Member must not be null; Value 'SOME' at "
                 "'returnValues' failed to satisfy constraint: Member must satisfy enum value "
                 "set: [NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW]\"}");
}

static void test_engine_errors_through_the_map(void **state) {
    fx_t *fx = *state;
    expect_exact(fx, "DescribeTable", "{\"TableName\":\"nope\"}", 400,
                 "{\"__type\":\"" NS "ResourceNotFoundException\",\"message\":\"Requested "
                 "resource not found: Table: nope not found\"}");
    expect(fx, "CreateTable", table_def, 200, "\"TableStatus\":\"ACTIVE\"");
    expect(fx, "CreateTable", table_def, 400,
           "{\"__type\":\"" NS
           "ResourceInUseException\",\"message\":\"Table already exists: tab\"}");
    expect(fx, "GetItem", "{\"TableName\":\"nope\",\"Key\":{\"pk\":{\"S\":\"a\"}}}", 400,
           "{\"__type\":\"" NS "ResourceNotFoundException\"");
}

/* ---- deferred writes ------------------------------------------------------------------------- */

static void test_write_paths(void **state) {
    fx_t *fx = *state;
    expect(fx, "CreateTable", table_def, 200, "");
    expect_exact(fx, "PutItem",
                 "{\"TableName\":\"tab\",\"Item\":{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}},"
                 "\"ReturnConsumedCapacity\":\"TOTAL\"}",
                 200, "{\"ConsumedCapacity\":{\"TableName\":\"tab\",\"CapacityUnits\":1.0}}");
    expect_exact(fx, "UpdateItem",
                 "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"a\"}},\"UpdateExpression\":"
                 "\"ADD n :one\",\"ExpressionAttributeValues\":{\":one\":{\"N\":\"2\"}},"
                 "\"ReturnValues\":\"UPDATED_NEW\"}",
                 200, "{\"Attributes\":{\"n\":{\"N\":\"3\"}}}");
    /* a failed condition with the item as it was */
    expect_exact(
        fx, "DeleteItem",
        "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"a\"}},\"ConditionExpression\":"
        "\"attribute_not_exists(pk)\",\"ReturnValuesOnConditionCheckFailure\":"
        "\"ALL_OLD\"}",
        400,
        "{\"__type\":\"" NS "ConditionalCheckFailedException\",\"message\":\"The "
        "conditional request failed\",\"Item\":{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"3\"}}}");
    expect_exact(fx, "BatchWriteItem",
                 "{\"RequestItems\":{\"tab\":[{\"PutRequest\":{\"Item\":{\"pk\":{\"S\":\"b\"}}}},"
                 "{\"DeleteRequest\":{\"Key\":{\"pk\":{\"S\":\"a\"}}}}]},"
                 "\"ReturnConsumedCapacity\":\"TOTAL\"}",
                 200,
                 "{\"UnprocessedItems\":{},\"ConsumedCapacity\":[{\"TableName\":\"tab\","
                 "\"CapacityUnits\":2.0}]}");
    expect_exact(fx, "TransactWriteItems",
                 "{\"TransactItems\":[{\"Put\":{\"TableName\":\"tab\",\"Item\":{\"pk\":{\"S\":"
                 "\"c\"}}}}],\"ReturnConsumedCapacity\":\"TOTAL\"}",
                 200, "{\"ConsumedCapacity\":[{\"TableName\":\"tab\",\"CapacityUnits\":2.0}]}");
    expect(fx, "TransactWriteItems",
           "{\"TransactItems\":[{\"ConditionCheck\":{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":"
           "\"zz\"}},\"ConditionExpression\":\"attribute_exists(pk)\"}}]}",
           400,
           "{\"__type\":\"" NS "TransactionCanceledException\",\"Message\":\"Transaction "
           "cancelled, please refer cancellation reasons for specific reasons "
           "[ConditionalCheckFailed]\"");
    expect_exact(fx, "GetItem", "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"a\"}}}", 200,
                 "{}");
    expect_exact(fx, "GetItem", "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"b\"}}}", 200,
                 "{\"Item\":{\"pk\":{\"S\":\"b\"}}}");
}

/* ---- completion handed back to the caller (api_dynamodb_call_post) -------------------------- */

typedef struct poster {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    api_dynamodb_run_fn run;
    void *run_arg;
    int posts;
    pthread_t done_on;
    answer_t a;
} poster_t;

static void post_rec(void *arg, api_dynamodb_run_fn run, void *run_arg) {
    poster_t *p = arg;
    pthread_mutex_lock(&p->mu);
    p->run = run;
    p->run_arg = run_arg;
    p->posts++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void post_done(void *arg, int status, const char *body, size_t len) {
    poster_t *p = arg;
    p->done_on = pthread_self();
    on_done(&p->a, status, body, len);
}

/* A write's response is built, answered and freed on the thread that runs the posted work --
 * here the test's own -- never on the engine's writer thread: done has not run when the post
 * arrives, and runs on this thread once the test runs the work. */
static void test_write_completes_on_caller(void **state) {
    fx_t *fx = *state;
    expect(fx, "CreateTable", table_def, 200, "");
    static const char *const ops[][2] = {
        {"PutItem", "{\"TableName\":\"tab\",\"Item\":{\"pk\":{\"S\":\"p\"},\"n\":{\"N\":\"1\"}}}"},
        {"UpdateItem",
         "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"p\"}},\"UpdateExpression\":\"ADD n "
         ":one\",\"ExpressionAttributeValues\":{\":one\":{\"N\":\"2\"}},\"ReturnValues\":"
         "\"UPDATED_NEW\"}"},
    };
    static const char *const want[] = {"{}", "{\"Attributes\":{\"n\":{\"N\":\"3\"}}}"};
    for (size_t i = 0; i < 2; i++) {
        poster_t p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        p.a = (answer_t){PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
        api_dynamodb_call_post(&fx->ctx, ops[i][0], ops[i][1], strlen(ops[i][1]), post_done, &p,
                               post_rec, &p);
        /* The writer may commit before the handler has returned: then the completion runs on
         * this (the calling) thread at the call's return, without a post -- also the caller's
         * side.  Otherwise the writer posts it and this thread runs it. */
        if (!p.a.done) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += WAIT_S;
            pthread_mutex_lock(&p.mu);
            while (!p.posts)
                if (pthread_cond_timedwait(&p.cv, &p.mu, &until))
                    fail_msg("%s: no post", ops[i][0]);
            pthread_mutex_unlock(&p.mu);
            assert_int_equal(p.a.done, 0); /* nothing answered on the writer thread */
            p.run(p.run_arg);
            assert_int_equal(p.posts, 1);
        } else {
            assert_int_equal(p.posts, 0);
        }
        assert_int_equal(p.a.done, 1);
        assert_true(pthread_equal(p.done_on, pthread_self()));
        assert_int_equal(p.a.status, 200);
        assert_string_equal(p.a.body, want[i]);
        free(p.a.body);
    }
    /* answered before the return (a read): on this thread, without a post */
    poster_t p = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    p.a = (answer_t){PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL};
    const char *get = "{\"TableName\":\"tab\",\"Key\":{\"pk\":{\"S\":\"p\"}}}";
    api_dynamodb_call_post(&fx->ctx, "GetItem", get, strlen(get), post_done, &p, post_rec, &p);
    assert_int_equal(p.a.done, 1);
    assert_int_equal(p.posts, 0);
    assert_string_equal(p.a.body, "{\"Item\":{\"pk\":{\"S\":\"p\"},\"n\":{\"N\":\"3\"}}}");
    free(p.a.body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_operation_and_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_not_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_accumulates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_errors_through_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_completes_on_caller, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
