/* SPDX-License-Identifier: Apache-2.0
 *
 * test_native.c -- the native runtime's supervisor and host process (src/fn/native*.c): JSON
 * and native-batch invokes, batch item failures, handler errors, crashes, exits, timeouts,
 * load failures, warm reuse, concurrency -- all through fn_native_submit with tests/functions/
 * probe.c as the user library.  This binary is also the host (argv[1] == "__fn-host"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/clock.h"
#include "fn/native.h"
#include "fn/sandbox.h"
#include "log/slog.h"
#include "testutil.h"

static char *dir;           /* code dir with libprobe.so and libtablecheck.so (a tu_tmpdir) */
static char out_path[300];  /* PROBE_OUT */
static fn_native_t *nt;

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    char type[128];
    char msg[1024];
    char payload[8192];
    char log[8192];
} result_t;

static void on_log(void *tag, const char *t, size_t n) {
    result_t *r = tag;
    pthread_mutex_lock(&r->mu);
    size_t have = strlen(r->log);
    if (have + n < sizeof r->log) {
        memcpy(r->log + have, t, n);
        r->log[have + n] = 0;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_done(void *tag, const char *fe, const char *msg, const uint8_t *p, size_t n) {
    result_t *r = tag;
    pthread_mutex_lock(&r->mu);
    assert_int_equal(r->done, 0);   /* exactly once */
    r->done = 1;
    snprintf(r->type, sizeof r->type, "%s", fe ? fe : "");
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    snprintf(r->payload, sizeof r->payload, "%.*s", (int)n, p ? (const char *)p : "");
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static fn_config_t config(const char *name, const char *handler) {
    static fn_env_var_t env[2];
    env[0].key = "PROBE_OUT";
    env[0].value = out_path;
    env[1].key = "PROBE_DIR";
    env[1].value = dir;
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.runtime = FN_NATIVE_RUNTIME;
    c.handler = (char *)handler;
    c.timeout_s = 3;
    c.memory_mb = 256;
    c.env = env;
    c.n_env = 2;
    snprintf(c.arn, sizeof c.arn, "arn:aws:lambda:us-east-1:000000000000:function:%s", name);
    c.code_dir = dir;
    return c;
}

/* Submit and wait.  timeout_ms bounds the invocation (deadline). */
static void run(fn_config_t *c, const char *payload, const fn_native_batch_t *batch,
                long long timeout_ms, result_t *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    static int seq;
    char rid[64];
    snprintf(rid, sizeof rid, "00000000-0000-4000-8000-%012d", ++seq);
    fn_inv_info_t info = {.request_id = rid,
                          .config = c,
                          .deadline_ms = tr_now_ms() + timeout_ms,
                          .payload = (const uint8_t *)payload,
                          .payload_len = payload ? strlen(payload) : 0,
                          .native = batch,
                          .trace_id = "Root=1-x"};
    tr_err err;
    assert_int_equal(fn_native_submit(nt, &info, on_log, on_done, r, &err), 0);
}

static void wait_done(result_t *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void invoke(fn_config_t *c, const char *payload, const fn_native_batch_t *batch,
                   long long timeout_ms, result_t *r) {
    run(c, payload, batch, timeout_ms, r);
    wait_done(r);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

/* Sequence number texts of the records batch_of makes (at most 8). */
static char seq_text[8][SLOG_SEQ_STRLEN + 1];

/* Record i's sequence number: `counter` of shard `shard`, as the event-source mappings format
 * it (slog_seq_format). */
static void set_seq(trf_record_t *recs, size_t i, uint32_t shard, uint64_t counter) {
    slog_seq_format(shard, counter, seq_text[i]);
    recs[i].sequence_number = seq_text[i];
}

/* n records of shard `shard` as a handler sees them: counters 100, 101, ... */
static void batch_of(trf_record_t *recs, uint32_t shard, const char **data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        set_seq(recs, i, shard, 100 + i);
        recs[i].arrival_ms = 1700000000000 + (int64_t)i;
        recs[i].partition_key = i % 2 ? "odd" : "even";
        recs[i].partition_key_len = i % 2 ? 3 : 4;
        recs[i].data = (const uint8_t *)data[i];
        recs[i].len = strlen(data[i]);
    }
}

/* ---- tests -------------------------------------------------------------------------------------- */

static void json_invoke_echoes(void **st) {
    (void)st;
    fn_config_t c = config("echo", "libprobe.so:handler");
    result_t r;
    invoke(&c, "{\"hello\":\"world\"}", NULL, 5000, &r);
    assert_string_equal(r.type, "");
    assert_non_null(strstr(r.payload, "\"echo\":{\"hello\":\"world\"}"));
    assert_non_null(strstr(r.payload, "\"function\":\"echo\""));
    assert_non_null(strstr(r.payload, "\"memory\":256"));
    assert_non_null(strstr(r.log, "probe: echo 17 bytes\n"));
    /* A handled error keeps its type and JSON. */
    invoke(&c, "{\"fail\":1}", NULL, 5000, &r);
    assert_string_equal(r.type, "ProbeError");
    assert_non_null(strstr(r.payload, "\"errorType\":\"ProbeError\""));
}

static void native_batch_without_json(void **st) {
    (void)st;
    fn_config_t c = config("batch", "libprobe.so:handler");
    unlink(out_path);
    const char *data[] = {"one", "two\nlines", "\"quoted\""};
    trf_record_t recs[3];
    batch_of(recs, 5, data, 3);
    fn_native_batch_t b = {
        FN_NATIVE_BATCH_MAGIC, recs, 3, 5, "arn:aws:kinesis:us-east-1:000000000000:stream/s",
        "us-east-1",           NULL};
    result_t r;
    invoke(&c, "{}", &b, 5000, &r);
    assert_string_equal(r.type, "");
    assert_string_equal(r.payload, "null");
    char *o = slurp(out_path);
    char seq[SLOG_SEQ_STRLEN + 1];
    slog_seq_format(5, 101, seq);
    assert_non_null(strstr(o, "\"kind\":\"kinesis\",\"shard\":\"shardId-000000000005\""));
    assert_non_null(strstr(o, seq));
    assert_non_null(strstr(o, "\"pks\":[\"even\",\"odd\",\"even\"]"));
    assert_non_null(strstr(o, "\"data\":[\"one\",\"two\\u000alines\",\"\\\"quoted\\\"\"]"));
    assert_non_null(strstr(o, "\"arrivals\":[1700000000000,1700000000001,1700000000002]"));
    free(o);

    /* A bad batch pointer is refused at submit. */
    fn_native_batch_t bad = b;
    bad.magic = 1;
    fn_inv_info_t info = {.request_id = "x",
                          .config = &c,
                          .deadline_ms = tr_now_ms() + 1000,
                          .native = &bad};
    tr_err err;
    assert_int_equal(fn_native_submit(nt, &info, on_log, on_done, NULL, &err), TR_EINVAL);
}

static void batch_item_failures_and_errors(void **st) {
    (void)st;
    fn_config_t c = config("items", "libprobe.so:handler");
    const char *data[] = {"ok", "FAILITEM", "ok", "FAILITEM"};
    trf_record_t recs[4];
    batch_of(recs, 0, data, 4);
    uint64_t counters[4];
    for (int i = 0; i < 4; i++) {
        counters[i] = 9000 + (uint64_t)i + (uint64_t)(getpid() % 1000) * 10;
        set_seq(recs, (size_t)i, 0, counters[i]);
    }
    fn_native_batch_t b = {FN_NATIVE_BATCH_MAGIC, recs, 4, 0, "arn", "us-east-1", NULL};
    result_t r;
    invoke(&c, "{}", &b, 5000, &r);
    char s1[SLOG_SEQ_STRLEN + 1], s3[SLOG_SEQ_STRLEN + 1], want[200];
    slog_seq_format(0, counters[1], s1);
    slog_seq_format(0, counters[3], s3);
    snprintf(want, sizeof want,
             "{\"batchItemFailures\":[{\"itemIdentifier\":\"%s\"},{\"itemIdentifier\":\"%s\"}]}",
             s1, s3);
    assert_string_equal(r.payload, want);
    /* Second delivery: the probe marked them done. */
    invoke(&c, "{}", &b, 5000, &r);
    assert_string_equal(r.payload, "null");
    const char *poison[] = {"ok", "POISON"};
    batch_of(recs, 0, poison, 2);
    b.n = 2;
    invoke(&c, "{}", &b, 5000, &r);
    assert_string_equal(r.type, "PoisonRecord");
    assert_non_null(strstr(r.payload, "POISON record"));
}

static void window_state_round_trip(void **st) {
    (void)st;
    fn_config_t c = config("window", "libprobe.so:handler");
    const char *data[] = {"5", "7"};
    trf_record_t recs[2];
    batch_of(recs, 0, data, 2);
    trf_window_t w = {1000, 2000, "{\"sum\":10,\"count\":1}", 20, 0, 0};
    fn_native_batch_t b = {FN_NATIVE_BATCH_MAGIC, recs, 2, 0, "arn", "us-east-1", &w};
    result_t r;
    invoke(&c, "{}", &b, 5000, &r);
    assert_string_equal(r.payload, "{\"state\":{\"sum\":22,\"count\":3},\"batchItemFailures\":[]}");
}

static void crash_is_contained(void **st) {
    (void)st;
    fn_config_t c = config("crashy", "libprobe.so:handler");
    result_t r;
    invoke(&c, "{\"segv\":1}", NULL, 5000, &r);
    assert_string_equal(r.type, "Runtime.ExitError");
    assert_non_null(strstr(r.msg, "Runtime exited with error: signal: segmentation fault"));
    assert_non_null(strstr(r.log, "probe: echo")); /* logged before the crash: kept */
    /* The next invoke gets a fresh host and works. */
    invoke(&c, "{\"again\":1}", NULL, 5000, &r);
    assert_string_equal(r.type, "");
    assert_non_null(strstr(r.payload, "\"again\":1"));
    /* exit() is reported with its status. */
    const char *data[] = {"EXIT"};
    trf_record_t recs[1];
    batch_of(recs, 0, data, 1);
    fn_native_batch_t b = {FN_NATIVE_BATCH_MAGIC, recs, 1, 0, "arn", "us-east-1", NULL};
    invoke(&c, "{}", &b, 5000, &r);
    assert_string_equal(r.type, "Runtime.ExitError");
    assert_non_null(strstr(r.msg, "exit status 3"));
}

static void timeout_kills_the_host(void **st) {
    (void)st;
    fn_config_t c = config("sleepy", "libprobe.so:handler");
    const char *data[] = {"SLEEP:10000"};
    trf_record_t recs[1];
    batch_of(recs, 0, data, 1);
    fn_native_batch_t b = {FN_NATIVE_BATCH_MAGIC, recs, 1, 0, "arn", "us-east-1", NULL};
    result_t r;
    long long t0 = tr_now_ms();
    invoke(&c, "{}", &b, 600, &r);
    long long took = tr_now_ms() - t0;
    assert_string_equal(r.type, "Sandbox.Timedout");
    assert_non_null(strstr(r.msg, "Task timed out after 3.00 seconds"));
    assert_true(took >= 550 && took < 3000);
    assert_int_equal(fn_native_host_count(nt, "sleepy"), 0);
    invoke(&c, "{}", NULL, 5000, &r);
    assert_string_equal(r.type, "");
    /* Cancel (the engine's deadline) also kills. */
    run(&c, "{}", &b, 20000, &r);
    usleep(200 * 1000);
    fn_native_cancel(nt, &r);
    wait_done(&r);
    assert_string_equal(r.type, "Sandbox.Timedout");
}

static void load_failures_are_one_sentence(void **st) {
    (void)st;
    result_t r;
    fn_config_t c = config("nosym", "libprobe.so:no_such_handler");
    invoke(&c, "{}", NULL, 5000, &r);
    assert_string_equal(r.type, "Runtime.HandlerNotFound");
    assert_non_null(strstr(r.msg, "does not export the handler symbol \"no_such_handler\""));
    c = config("nofile", "libmissing.so:handler");
    invoke(&c, "{}", NULL, 5000, &r);
    assert_string_equal(r.type, "Runtime.InvalidEntrypoint");
    assert_non_null(strstr(r.msg, "the package has no libmissing.so"));
    c = config("escape", "../libprobe.so:handler");
    invoke(&c, "{}", NULL, 5000, &r);
    assert_string_equal(r.type, "Runtime.InvalidEntrypoint");
    /* Not a .so at all. */
    char junk[400];
    snprintf(junk, sizeof junk, "%s/libjunk.so", dir);
    FILE *f = fopen(junk, "w");
    fputs("not elf", f);
    fclose(f);
    c = config("junk", "libjunk.so:handler");
    invoke(&c, "{}", NULL, 5000, &r);
    assert_string_equal(r.type, "Runtime.InvalidEntrypoint");
    assert_non_null(strstr(r.msg, "cannot load libjunk.so"));
    tr_err err;
    c = config("nocolon", "handler");
    fn_inv_info_t info = {.request_id = "x", .config = &c, .deadline_ms = tr_now_ms() + 1000};
    assert_int_equal(fn_native_submit(nt, &info, on_log, on_done, NULL, &err), TR_EINVAL);
}

static int pid_of(const char *o, int nth) {
    const char *p = o;
    int pid = -1;
    for (int i = 0; i <= nth; i++) {
        p = strstr(p, "\"pid\":");
        if (!p) return -1;
        pid = atoi(p + 6);
        p += 6;
    }
    return pid;
}

static void warm_reuse_and_concurrency(void **st) {
    (void)st;
    fn_config_t c = config("warm", "libprobe.so:handler");
    unlink(out_path);
    result_t r;
    invoke(&c, "{}", NULL, 5000, &r);
    invoke(&c, "{}", NULL, 5000, &r);
    char *o = slurp(out_path);
    assert_true(pid_of(o, 0) > 0);
    assert_int_equal(pid_of(o, 0), pid_of(o, 1)); /* same warm host */
    free(o);
    /* Four at once run in four hosts, in parallel. */
    const char *data[] = {"SLEEP:600"};
    trf_record_t recs[1];
    batch_of(recs, 0, data, 1);
    fn_native_batch_t b = {FN_NATIVE_BATCH_MAGIC, recs, 1, 0, "arn", "us-east-1", NULL};
    result_t rs[4];
    long long t0 = tr_now_ms();
    for (int i = 0; i < 4; i++) run(&c, "{}", &b, 5000, &rs[i]);
    for (int i = 0; i < 4; i++) {
        wait_done(&rs[i]);
        assert_string_equal(rs[i].type, "");
    }
    long long took = tr_now_ms() - t0;
    assert_true(took < 2000); /* serial would be >= 2400 */
    assert_true(fn_native_host_count(nt, "warm") >= 4);
    /* A configuration change restarts hosts with the new environment. */
    fn_env_var_t env[3] = {{"PROBE_OUT", out_path}, {"PROBE_DIR", dir}, {"X", "1"}};
    c.env = env;
    c.n_env = 3;
    unlink(out_path);
    invoke(&c, "{}", NULL, 5000, &r);
    invoke(&c, "{}", NULL, 5000, &r);
    o = slurp(out_path);
    assert_int_equal(pid_of(o, 0), pid_of(o, 1));
    free(o);
    fn_native_release(nt, "warm");
}

/* A Kinesis event arriving as JSON (Invoke, or the provided runtime's path) is decoded. */
static void kinesis_json_is_decoded(void **st) {
    (void)st;
    fn_config_t c = config("decode", "libprobe.so:handler");
    unlink(out_path);
    const char *ev =
        "{\"Records\":[{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"k\","
        "\"sequenceNumber\":\"49590\",\"data\":\"SGVsbG8=\",\"approximateArrivalTimestamp\":"
        "1545084650.987},\"eventSource\":\"aws:kinesis\",\"eventID\":\"shardId-000000000006:49590\","
        "\"awsRegion\":\"us-east-2\",\"eventSourceARN\":\"arn:aws:kinesis:us-east-2:1:stream/s\"}]}";
    result_t r;
    invoke(&c, ev, NULL, 5000, &r);
    assert_string_equal(r.type, "");
    char *o = slurp(out_path);
    assert_non_null(strstr(o, "\"kind\":\"kinesis\",\"shard\":\"shardId-000000000006\""));
    assert_non_null(strstr(o, "\"data\":[\"Hello\"]"));
    assert_non_null(strstr(o, "\"arrivals\":[1545084650987]"));
    free(o);
}

/* A table_error that shows what it was given, to see that its answer reaches the function. */
static void table_error_probe(int code, const char *msg, fn_native_table_done_fn done,
                              void *done_arg) {
    char body[512];
    snprintf(body, sizeof body, "{\"code\":%d,\"msg\":\"%s\"}", code, msg);
    done(done_arg, 418, body, strlen(body));
}

static void table_calls_without_a_handler(void **st) {
    (void)st;
    static const char gone[] = "The table service is not available (the server is shutting down "
                               "or has no table engine)";
    fn_config_t c = config("tables", "libtablecheck.so:handler");
    result_t r;
    char want[512];
    /* No opts.table_error: the engine's plain answer. */
    invoke(&c, "{\"table\":\"t\",\"mode\":\"basic\"}", NULL, 5000, &r);
    assert_string_equal(r.type, "");
    snprintf(want, sizeof want, "{\"op\":\"PutItem\",\"rc\":503,\"resp\":{\"message\":\"%s\"}}",
             gone);
    assert_non_null(strstr(r.payload, want));
    /* With one (main.c renders DynamoDB's errors), its answer reaches the function as it is. */
    fn_native_t *plain = nt;
    fn_native_opts_t o = {.idle_ms = 60000, .table_error = table_error_probe};
    tr_err err;
    assert_int_equal(fn_native_create(&o, &nt, &err), 0);
    invoke(&c, "{\"table\":\"t\",\"mode\":\"basic\"}", NULL, 5000, &r);
    fn_native_destroy(nt);
    nt = plain;
    assert_string_equal(r.type, "");
    snprintf(want, sizeof want,
             "{\"op\":\"PutItem\",\"rc\":418,\"resp\":{\"code\":%d,\"msg\":\"%s\"}}", TR_ECLOSED,
             gone);
    assert_non_null(strstr(r.payload, want));
}

/* A table service whose completions are posted back to the calling host thread (as main.c's
 * DynamoDB adapter does for writes, from the table engine's writer thread): it holds every call
 * until HOLD (the host's in-flight bound, FN_NATIVE_TABLE_INFLIGHT in native.c) are in flight,
 * then a thread of its own posts them all.  The host thread, blocked for room by then, must run
 * the posted completions itself or it waits for ever. */
#define HOLD 4096
typedef struct held {
    fn_native_table_done_fn done;
    void *done_arg;
    fn_native_post_fn post;
    void *post_arg;
} held_t;
static held_t held[2 * HOLD];
static size_t n_held;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;

static void held_run(void *arg) {
    held_t *h = arg;
    h->done(h->done_arg, 200, "{}", 2);
}

static void *held_release(void *arg) {
    (void)arg;
    for (size_t i = 0; i < HOLD; i++) held[i].post(held[i].post_arg, held_run, &held[i]);
    return NULL;
}

static void holding_table(void *arg, const char *op, const char *body, size_t len,
                          fn_native_table_done_fn done, void *done_arg, fn_native_post_fn post,
                          void *post_arg) {
    (void)arg, (void)op, (void)body, (void)len;
    pthread_mutex_lock(&held_mu);
    assert_true(n_held < 2 * HOLD);
    held_t *h = &held[n_held++];
    *h = (held_t){done, done_arg, post, post_arg};
    size_t n = n_held;
    pthread_mutex_unlock(&held_mu);
    if (n > HOLD) {
        post(post_arg, held_run, h);
    } else if (n == HOLD) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, held_release, NULL), 0);
        pthread_detach(t);
    }
}

static void table_completions_posted_back(void **st) {
    (void)st;
    fn_native_set_table_handler(nt, holding_table, NULL);
    n_held = 0;
    fn_config_t c = config("posted", "libtablecheck.so:handler");
    c.timeout_s = 30;
    result_t r;
    run(&c, "{\"table\":\"t\",\"mode\":\"pipeline\",\"n\":2100}", NULL, 30000, &r);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&r.mu);
    while (!r.done)
        if (pthread_cond_timedwait(&r.cv, &r.mu, &until))
            fail_msg("the host did not finish (%zu calls seen): stuck waiting for room?", n_held);
    pthread_mutex_unlock(&r.mu);
    fn_native_set_table_handler(nt, NULL, NULL);
    assert_string_equal(r.type, "");
    assert_int_equal(n_held, 4200);
    /* every call answered 200 (the payload is cut at sizeof r.payload: its start) */
    assert_int_equal(strncmp(r.payload, "{\"statuses\":[200,200,", 21), 0);
    assert_null(strstr(r.payload, ",418"));
}

static int setup(void **st) {
    (void)st;
    dir = tu_tmpdir("trib-native");
    snprintf(out_path, sizeof out_path, "%s/out.jsonl", dir);
    char exe[512], src[700], dst[400];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    for (int i = 0; i < 2; i++) {
        const char *lib = i ? "libtablecheck.so" : "libprobe.so";
        snprintf(src, sizeof src, "%s/functions/%s", exe, lib);
        snprintf(dst, sizeof dst, "%s/%s", dir, lib);
        assert_int_equal(symlink(src, dst), 0);
    }
    /* the hosts are confined (fn/sandbox.h): let them read the library the link points to and
     * write the probe's files, as main.c's --lambda-read-dir / --lambda-write-dir would */
    char fdir[600];
    snprintf(fdir, sizeof fdir, "%s/functions", exe);
    const char *rd[] = {fdir}, *wd[] = {dir};
    tr_err err;
    tu_ok(fn_sandbox_set_dirs(rd, 1, wd, 1, &err), err);
    fn_native_opts_t o = {.idle_ms = 60000};
    tu_ok(fn_native_create(&o, &nt, &err), err);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    fn_native_destroy(nt);
    tu_tmpdir_done(dir);
    dir = NULL;
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], FN_NATIVE_HOST_CMD)) return fn_native_host_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_invoke_echoes),
        cmocka_unit_test(native_batch_without_json),
        cmocka_unit_test(batch_item_failures_and_errors),
        cmocka_unit_test(window_state_round_trip),
        cmocka_unit_test(crash_is_contained),
        cmocka_unit_test(timeout_kills_the_host),
        cmocka_unit_test(load_failures_are_one_sentence),
        cmocka_unit_test(warm_reuse_and_concurrency),
        cmocka_unit_test(kinesis_json_is_decoded),
        cmocka_unit_test(table_calls_without_a_handler),
        cmocka_unit_test(table_completions_posted_back),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
