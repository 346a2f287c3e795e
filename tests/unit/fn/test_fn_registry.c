/* SPDX-License-Identifier: Apache-2.0
 *
 * test_fn_registry.c -- the functions engine through fn.h: registry durability and validation,
 * safe unpacking, ARN parsing, reserved concurrency, and invocation through a plug-in runtime
 * (sync, timeout, throttling, the durable Event queue, metrics).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "core/buf.h"
#include "core/clock.h"
#include "fn/fn.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static uint8_t *simple_zip(size_t *n) {
    tu_zentry_t e[] = {{"bootstrap", "#!/bin/sh\necho hi\n", 0100755},
                       {"lib/", NULL, 0},
                       {"lib/data.txt", "payload", 0},
                       {"lib/link", "data.txt", 0120777}};
    return tu_zip(e, 4, n);
}

static fn_t *open_fn(void) {
    fn_t *fn = NULL;
    tr_err err;
    tr_err_clear(&err);
    fn_opts_t o;
    memset(&o, 0, sizeof o);
    o.region = "eu-west-1";
    o.no_sync = 1;
    o.account_concurrency = 10;
    o.async_retry_ms = 20;
    tu_ok(fn_open(tu_dir, &o, &fn, &err), err);
    return fn;
}

static int create(fn_t *fn, const char *name, const char *runtime, fn_config_t *out, tr_err *err) {
    size_t n;
    uint8_t *z = simple_zip(&n);
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.runtime = (char *)runtime;
    c.handler = "function.handler";
    c.role = "arn:aws:iam::000000000000:role/r";
    fn_env_var_t env[] = {{"GREETING", "hello"}};
    c.env = env;
    c.n_env = 1;
    int rc = fn_create(fn, &c, z, n, out, err);
    free(z);
    return rc;
}

/* ---- registry ------------------------------------------------------------------------------ */

static void test_create_get_persist(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    fn_config_t out;
    assert_int_equal(create(fn, "alpha", "provided.al2023", &out, &err), 0);
    assert_string_equal(out.arn, "arn:aws:lambda:eu-west-1:000000000000:function:alpha");
    assert_int_equal(out.timeout_s, 3);
    assert_int_equal(out.memory_mb, 128);
    assert_int_equal(out.reserved_concurrency, FN_NO_RESERVED);
    assert_int_equal(strlen(out.revision_id), 36);
    /* CodeSha256 is base64 SHA-256 of the zip */
    size_t n;
    uint8_t *z = simple_zip(&n);
    uint8_t md[32];
    unsigned mdl = 32;
    EVP_Digest(z, n, md, &mdl, EVP_sha256(), NULL);
    tr_buf b = TR_BUF_INIT;
    tr_buf_base64(&b, md, 32);
    assert_string_equal(out.code_sha256, b.data);
    assert_int_equal(out.code_size, n);
    tr_buf_free(&b);
    free(z);
    /* unpacked, with modes and the inner link */
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/bootstrap", out.code_dir);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    snprintf(p, sizeof p, "%s/lib/link", out.code_dir);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    char rev[37];
    memcpy(rev, out.revision_id, sizeof rev);
    fn_config_free(&out);

    assert_int_equal(create(fn, "alpha", "provided", NULL, &err), TR_EEXISTS);
    fn_close(fn);

    fn = open_fn();
    assert_int_equal(fn_get(fn, "alpha", &out, &err), 0);
    assert_string_equal(out.revision_id, rev);
    assert_int_equal(out.n_env, 1);
    assert_string_equal(out.env[0].key, "GREETING");
    assert_string_equal(out.env[0].value, "hello");
    fn_config_free(&out);
    assert_int_equal(fn_get(fn, "beta", &out, &err), TR_ENOTFOUND);
    assert_non_null(strstr(err.msg, "function:beta"));
    fn_close(fn);
}

static void test_validation(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    assert_int_equal(create(fn, "bad name", "provided", NULL, &err), TR_EVALIDATION);
    assert_int_equal(create(fn, "x", "python3.12", NULL, &err), TR_EINVAL);
    assert_non_null(strstr(err.msg, "python3.12"));
    /* reserved and malformed environment names */
    size_t n;
    uint8_t *z = simple_zip(&n);
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "envy");
    c.runtime = "provided";
    fn_env_var_t env[] = {{"AWS_REGION", "x"}};
    c.env = env;
    c.n_env = 1;
    assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), TR_EINVAL);
    assert_non_null(strstr(err.msg, "AWS_REGION"));
    fn_env_var_t env2[] = {{"A", "x"}};
    c.env = env2;
    assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), TR_EINVAL);
    c.n_env = 0;
    c.timeout_s = 901;
    assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), TR_EVALIDATION);
    c.timeout_s = 0;
    c.memory_mb = 64;
    assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), TR_EVALIDATION);
    c.memory_mb = 0;
    assert_int_equal(fn_create(fn, &c, (const uint8_t *)"nozip", 5, NULL, &err), TR_EINVAL);
    assert_int_equal(fn_create(fn, &c, NULL, 0, NULL, &err), TR_EINVAL);
    free(z);
    fn_close(fn);
}

static void test_zip_slip(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "slip");
    c.runtime = "provided";
    tu_zentry_t bad[][2] = {
        {{"../escape", "x", 0}, {"bootstrap", "y", 0}},
        {{"a/../../escape", "x", 0}, {"bootstrap", "y", 0}},
        {{"/abs", "x", 0}, {"bootstrap", "y", 0}},
        {{"link", "../../../../etc", 0120777}, {"link/passwd", "x", 0}},
        {{"link", "/etc", 0120777}, {"bootstrap", "y", 0}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        uint8_t *z = tu_zip(bad[i], 2, &n);
        assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), TR_EINVAL);
        free(z);
    }
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/escape", tu_dir);
    assert_int_not_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s/functions/escape", tu_dir);
    assert_int_not_equal(stat(p, &st), 0);
    assert_int_equal(fn_get(fn, "slip", NULL, &err), TR_ENOTFOUND);
    fn_close(fn);
}

static void test_list_update_delete(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    const char *names[] = {"e", "b", "d", "a", "c"};
    for (int i = 0; i < 5; i++) assert_int_equal(create(fn, names[i], "provided", NULL, &err), 0);
    fn_config_t *arr;
    size_t n;
    char *next;
    assert_int_equal(fn_list(fn, NULL, 2, &arr, &n, &next, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(arr[0].name, "a");
    assert_string_equal(arr[1].name, "b");
    assert_string_equal(next, "b");
    for (size_t i = 0; i < n; i++) fn_config_free(&arr[i]);
    free(arr);
    assert_int_equal(fn_list(fn, next, 10, &arr, &n, NULL, &err), 0);
    free(next);
    assert_int_equal(n, 3);
    assert_string_equal(arr[0].name, "c");
    for (size_t i = 0; i < n; i++) fn_config_free(&arr[i]);
    free(arr);

    fn_config_t cur, out;
    assert_int_equal(fn_get(fn, "c", &cur, &err), 0);
    fn_env_var_t env[] = {{"NEW_ONE", "1"}};
    fn_config_update_t u = {.has_timeout = 1,
                            .timeout_s = 30,
                            .has_env = 1,
                            .env = env,
                            .n_env = 1,
                            .revision_id = "stale"};
    assert_int_equal(fn_update_config(fn, "c", &u, &out, &err), TR_ECONDITION);
    u.revision_id = cur.revision_id;
    assert_int_equal(fn_update_config(fn, "c", &u, &out, &err), 0);
    assert_int_equal(out.timeout_s, 30);
    assert_int_equal(out.n_env, 1);
    assert_string_equal(out.env[0].key, "NEW_ONE");
    assert_string_not_equal(out.revision_id, cur.revision_id);
    fn_config_free(&out);
    tu_zentry_t e[] = {{"bootstrap", "#!/bin/sh\necho two\n", 0100755}};
    size_t zn;
    uint8_t *z = tu_zip(e, 1, &zn);
    assert_int_equal(fn_update_code(fn, "c", z, zn, cur.revision_id, &out, &err), TR_ECONDITION);
    assert_int_equal(fn_update_code(fn, "c", z, zn, NULL, &out, &err), 0);
    assert_string_not_equal(out.code_sha256, cur.code_sha256);
    assert_int_equal(out.code_size, zn);
    assert_int_equal(out.timeout_s, 30);
    free(z);
    fn_config_free(&out);
    fn_config_free(&cur);

    assert_int_equal(fn_delete(fn, "c", &err), 0);
    assert_int_equal(fn_delete(fn, "c", &err), TR_ENOTFOUND);
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/functions/c", tu_dir);
    assert_int_not_equal(stat(p, &st), 0);
    fn_close(fn);
    fn = open_fn();
    assert_int_equal(fn_get(fn, "c", NULL, &err), TR_ENOTFOUND);
    assert_int_equal(fn_get(fn, "d", &out, &err), 0);
    fn_config_free(&out);
    fn_close(fn);
}

static void test_concurrency(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    assert_int_equal(create(fn, "a", "provided", NULL, &err), 0);
    assert_int_equal(create(fn, "b", "provided", NULL, &err), 0);
    int32_t n;
    assert_int_equal(fn_concurrency_get(fn, "a", &n, &err), 0);
    assert_int_equal(n, FN_NO_RESERVED);
    assert_int_equal(fn_concurrency_put(fn, "a", 6, &err), 0);
    assert_int_equal(fn_concurrency_put(fn, "b", 5, &err), TR_ELIMIT);   /* 6 + 5 > 10 */
    assert_int_equal(fn_concurrency_put(fn, "b", 4, &err), 0);
    assert_int_equal(fn_concurrency_put(fn, "a", -1, &err), TR_EVALIDATION);
    fn_close(fn);
    fn = open_fn();
    assert_int_equal(fn_concurrency_get(fn, "a", &n, &err), 0);
    assert_int_equal(n, 6);
    assert_int_equal(fn_concurrency_delete(fn, "a", &err), 0);
    assert_int_equal(fn_concurrency_get(fn, "a", &n, &err), 0);
    assert_int_equal(n, FN_NO_RESERVED);
    assert_int_equal(fn_concurrency_put(fn, "b", 10, &err), 0);
    assert_int_equal(fn_concurrency_get(fn, "zz", &n, &err), TR_ENOTFOUND);
    fn_close(fn);
}

static void test_name_parse(void **state) {
    (void)state;
    char name[FN_MAX_NAME + 1], q[130];
    tr_err err;
    assert_int_equal(fn_name_parse("my-fn", name, q, &err), 0);
    assert_string_equal(name, "my-fn");
    assert_string_equal(q, "");
    assert_int_equal(fn_name_parse("my-fn:$LATEST", name, q, &err), 0);
    assert_string_equal(q, "$LATEST");
    assert_int_equal(fn_name_parse("123456789012:function:f_1", name, q, &err), 0);
    assert_string_equal(name, "f_1");
    assert_int_equal(fn_name_parse("arn:aws:lambda:us-east-1:123456789012:function:f:prod", name, q,
                                   &err),
                     0);
    assert_string_equal(name, "f");
    assert_string_equal(q, "prod");
    assert_int_equal(fn_name_parse("", name, q, &err), TR_EVALIDATION);
    assert_int_equal(fn_name_parse("a:b:c:d:e", name, q, &err), TR_EVALIDATION);
    assert_int_equal(fn_name_parse("bad/name", name, q, &err), TR_EVALIDATION);
    assert_int_equal(fn_name_parse("arn:aws:s3:::bucket", name, q, &err), TR_EVALIDATION);
}

/* ---- invocation through a plug-in runtime ---------------------------------------------------- */

static pthread_mutex_t rt_mu = PTHREAD_MUTEX_INITIALIZER;
static int rt_calls, rt_cancels;
static fn_inv_t *rt_held[16];
static int rt_n_held;

/* "echo": completes at once with the payload; "hang": keeps it until cancelled;
 * "fail": function error. */
static int rt_invoke(void *arg, fn_inv_t *inv, const fn_inv_info_t *info, tr_err *err) {
    (void)arg;
    (void)err;
    pthread_mutex_lock(&rt_mu);
    rt_calls++;
    pthread_mutex_unlock(&rt_mu);
    const char *h = info->config->handler;
    fn_inv_log(inv, "hello from the runtime\nsecond line", 34);
    if (!strcmp(h, "hang")) {
        pthread_mutex_lock(&rt_mu);
        rt_held[rt_n_held++] = inv;
        pthread_mutex_unlock(&rt_mu);
        return 0;
    }
    if (!strcmp(h, "fail") || (info->payload_len && strstr((const char *)info->payload, "fail"))) {
        fn_inv_complete(inv, "HandlerError", "it failed", NULL, 0);
        return 0;
    }
    fn_inv_complete(inv, NULL, NULL, info->payload, info->payload_len);
    return 0;
}

static void rt_cancel(void *arg, fn_inv_t *inv) {
    (void)arg;
    pthread_mutex_lock(&rt_mu);
    rt_cancels++;
    for (int i = 0; i < rt_n_held; i++)
        if (rt_held[i] == inv) {
            rt_held[i] = rt_held[--rt_n_held];
            break;
        }
    pthread_mutex_unlock(&rt_mu);
    fn_inv_complete(inv, NULL, NULL, (const uint8_t *)"late", 4); /* ignored */
}

static const fn_runtime_t test_rt = {.name = "test.rt", .invoke = rt_invoke, .cancel = rt_cancel};

static fn_t *open_started(void) {
    fn_t *fn = open_fn();
    tr_err err;
    assert_int_equal(fn_runtime_register(fn, &test_rt, NULL, &err), 0);
    assert_int_equal(fn_runtime_register(fn, &test_rt, NULL, &err), TR_EEXISTS);
    assert_int_equal(fn_start(fn, "127.0.0.1:1", &err), 0);
    return fn;
}

static void make_rt_fn(fn_t *fn, const char *name, const char *handler, uint32_t timeout) {
    size_t n;
    uint8_t *z = simple_zip(&n);
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.runtime = "test.rt";
    c.handler = (char *)handler;
    c.timeout_s = timeout;
    tr_err err;
    assert_int_equal(fn_create(fn, &c, z, n, NULL, &err), 0);
    free(z);
}

static void test_invoke_plugin(void **state) {
    (void)state;
    fn_t *fn = open_started();
    make_rt_fn(fn, "echo", "echo", 3);
    fn_invoke_req_t req = {.name = "echo",
                           .type = FN_INVOKE_SYNC,
                           .payload = (const uint8_t *)"{\"a\":1}",
                           .payload_len = 7,
                           .log_tail = 1};
    fn_result_owned_t r;
    assert_int_equal(fn_invoke_wait(fn, &req, &r), 0);
    assert_int_equal(r.r.status, 200);
    assert_null(r.r.function_error);
    assert_int_equal(r.r.payload_len, 7);
    assert_memory_equal(r.r.payload, "{\"a\":1}", 7);
    assert_non_null(strstr(r.r.log_tail, "START RequestId: "));
    assert_non_null(strstr(r.r.log_tail, "hello from the runtime\nsecond line\n"));
    assert_non_null(strstr(r.r.log_tail, "REPORT RequestId: "));
    assert_string_equal(r.r.executed_version, "$LATEST");
    fn_result_free(&r);

    /* function error */
    req.payload = (const uint8_t *)"\"fail\"";
    req.payload_len = 6;
    assert_int_equal(fn_invoke_wait(fn, &req, &r), 0);
    assert_string_equal(r.r.function_error, "Unhandled");
    assert_non_null(strstr((const char *)r.r.payload, "\"errorType\":\"HandlerError\""));
    fn_result_free(&r);

    /* unknown function, unknown qualifier, too big */
    req.name = "nope";
    assert_int_equal(fn_invoke_wait(fn, &req, &r), TR_ENOTFOUND);
    fn_result_free(&r);
    req.name = "echo";
    req.qualifier = "7";
    assert_int_equal(fn_invoke_wait(fn, &req, &r), TR_ENOTFOUND);
    fn_result_free(&r);
    req.qualifier = NULL;
    req.payload_len = FN_MAX_SYNC_PAYLOAD + 1;
    assert_int_equal(fn_invoke_wait(fn, &req, &r), TR_ETOOBIG);
    fn_result_free(&r);
    req.payload_len = 6;
    req.type = FN_INVOKE_DRYRUN;
    assert_int_equal(fn_invoke_wait(fn, &req, &r), 0);
    assert_int_equal(r.r.status, 204);
    fn_result_free(&r);

    fn_metrics_t *m;
    size_t n;
    fn_metrics_list(fn, &m, &n);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].invocations, 2);
    assert_int_equal(m[0].errors, 1);
    assert_int_equal(m[0].duration_count, 2);
    free(m);
    tr_buf b = TR_BUF_INIT;
    fn_metrics_prometheus(fn, &b);
    assert_non_null(strstr(b.data, "tributary_lambda_invocations_total{function_name=\"echo\"} 2"));
    tr_buf_free(&b);
    fn_close(fn);
}

static void test_timeout_and_throttle(void **state) {
    (void)state;
    fn_t *fn = open_started();
    make_rt_fn(fn, "hang", "hang", 1);
    tr_err err;
    assert_int_equal(fn_concurrency_put(fn, "hang", 1, &err), 0);
    /* the first call holds the only slot until its deadline */
    fn_invoke_req_t req = {.name = "hang", .type = FN_INVOKE_SYNC, .log_tail = 1};
    fn_result_owned_t r1, r2;
    /* an async Event takes the slot, then a sync call is throttled */
    fn_invoke_req_t ev = {.name = "hang",
                          .type = FN_INVOKE_EVENT,
                          .payload = (const uint8_t *)"{}",
                          .payload_len = 2};
    assert_int_equal(fn_invoke_wait(fn, &ev, &r1), 0);
    assert_int_equal(r1.r.status, 202);
    fn_result_free(&r1);
    for (int i = 0; i < 200; i++) { /* wait until the runtime holds it */
        pthread_mutex_lock(&rt_mu);
        int held = rt_n_held;
        pthread_mutex_unlock(&rt_mu);
        if (held) break;
        usleep(10000);
    }
    assert_int_equal(fn_invoke_wait(fn, &req, &r2), TR_ETHROTTLED);
    assert_string_equal(r2.r.throttle_reason, "ReservedFunctionConcurrentInvocationLimitExceeded");
    fn_result_free(&r2);
    /* waiting for a slot instead: runs after the held one times out, then itself times out */
    req.wait_for_slot = 1;
    long long t0 = tr_mono_ms();
    assert_int_equal(fn_invoke_wait(fn, &req, &r2), 0);
    long long el = tr_mono_ms() - t0;
    assert_true(el >= 900 && el < 5000);
    assert_string_equal(r2.r.function_error, "Unhandled");
    assert_non_null(strstr((const char *)r2.r.payload, "Task timed out after 1.00 seconds"));
    assert_non_null(strstr(r2.r.log_tail, "Status: timeout"));
    fn_result_free(&r2);
    pthread_mutex_lock(&rt_mu);
    assert_true(rt_cancels >= 2);
    pthread_mutex_unlock(&rt_mu);
    fn_close(fn);
}

static void test_events_durable(void **state) {
    (void)state;
    /* queue events while no slot exists, reopen, free the slot: they run */
    fn_t *fn = open_started();
    make_rt_fn(fn, "ev", "echo", 3);
    tr_err err;
    assert_int_equal(fn_concurrency_put(fn, "ev", 0, &err), 0);
    fn_invoke_req_t ev = {.name = "ev",
                          .type = FN_INVOKE_EVENT,
                          .payload = (const uint8_t *)"\"x\"",
                          .payload_len = 3};
    fn_result_owned_t r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fn_invoke_wait(fn, &ev, &r), 0);
        fn_result_free(&r);
    }
    ev.payload_len = FN_MAX_ASYNC_PAYLOAD + 1;
    assert_int_equal(fn_invoke_wait(fn, &ev, &r), TR_ETOOBIG);
    fn_result_free(&r);
    fn_metrics_t *m;
    size_t n;
    fn_metrics_list(fn, &m, &n);
    assert_int_equal(m[0].async_queued, 3);
    assert_int_equal(m[0].invocations, 0);
    free(m);
    fn_close(fn);

    fn = open_started();
    assert_int_equal(fn_concurrency_delete(fn, "ev", &err), 0);
    for (int i = 0; i < 300; i++) {
        fn_metrics_list(fn, &m, &n);
        int done = m[0].invocations == 3 && m[0].async_queued == 0;
        free(m);
        if (done) break;
        usleep(10000);
    }
    fn_metrics_list(fn, &m, &n);
    assert_int_equal(m[0].invocations, 3);
    assert_int_equal(m[0].async_queued, 0);
    free(m);
    /* a failing event is retried twice (async_retry_ms 20 here) then dropped */
    ev.payload = (const uint8_t *)"\"fail\"";
    ev.payload_len = 6;
    assert_int_equal(fn_invoke_wait(fn, &ev, &r), 0);
    fn_result_free(&r);
    for (int i = 0; i < 300; i++) {
        fn_metrics_list(fn, &m, &n);
        int done = m[0].errors == 3 && m[0].async_queued == 0;
        free(m);
        if (done) break;
        usleep(10000);
    }
    fn_metrics_list(fn, &m, &n);
    assert_int_equal(m[0].errors, 3);
    assert_int_equal(m[0].async_queued, 0);
    free(m);
    fn_close(fn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TU_DIR_TEST(test_create_get_persist), TU_DIR_TEST(test_validation),
        TU_DIR_TEST(test_zip_slip),           TU_DIR_TEST(test_list_update_delete),
        TU_DIR_TEST(test_concurrency),        cmocka_unit_test(test_name_parse),
        TU_DIR_TEST(test_invoke_plugin),      TU_DIR_TEST(test_timeout_and_throttle),
        TU_DIR_TEST(test_events_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
