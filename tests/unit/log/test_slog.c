/* SPDX-License-Identifier: Apache-2.0
 *
 * test_slog.c -- the stream engine through slog.h: control plane, group-committed puts, reads,
 * resharding, retention bounds, tags, persistence, admission, and the text helpers.
 *
 * Every test works in its own temporary directory (testutil.h's TU_DIR_TEST fixture).  Waits
 * are bounded (WAIT_S) and no test sleeps; tests that are not about durability open with
 * no_sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/tlog.h"
#include "log/slog.h"
#include "testutil.h"

#define WAIT_S 60
#define HMAX (~(slog_hash_t)0)
#define H127 ((slog_hash_t)1 << 127)

/* ---- fixtures ------------------------------------------------------------------------------ */

static slog_t *open_at(const char *dir, const slog_opts_t *o) {
    slog_t *lg = NULL;
    tr_err e = {0, ""};
    int rc = slog_open(dir, o, &lg, &e);
    if (rc) fail_msg("slog_open: %s", e.msg);
    return lg;
}

static slog_opts_t fast_opts(void) {
    slog_opts_t o = {0};
    o.no_sync = 1;
    return o;
}

static void create(slog_t *lg, const char *name, uint32_t n) {
    tr_err e = {0, ""};
    int rc = slog_stream_create(lg, name, n, SLOG_MODE_PROVISIONED, NULL, 0, &e);
    if (rc) fail_msg("create %s: %s", name, e.msg);
}

static slog_stream_info_t describe(slog_t *lg, const char *name) {
    slog_stream_info_t si;
    tr_err e = {0, ""};
    int rc = slog_stream_describe(lg, name, &si, &e);
    if (rc) fail_msg("describe %s: %s", name, e.msg);
    return si;
}

/* A callback target: counts calls, keeps the first error. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int rc;
} waiter_t;

static void waiter_init(waiter_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->calls = 0;
    w->rc = 0;
}

static void waiter_cb(void *arg, int rc) {
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    if (rc && !w->rc) w->rc = rc;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int waiter_calls(waiter_t *w) {
    pthread_mutex_lock(&w->mu);
    int c = w->calls;
    pthread_mutex_unlock(&w->mu);
    return c;
}

static void waiter_wait(waiter_t *w, int calls) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    pthread_mutex_lock(&w->mu);
    while (w->calls < calls)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    int got = w->calls;
    pthread_mutex_unlock(&w->mu);
    if (got < calls) fail_msg("timed out: %d of %d callbacks", got, calls);
}

static void rec_set(slog_put_rec_t *r, const char *pk, const char *data) {
    memset(r, 0, sizeof *r);
    r->pk = pk;
    r->pk_len = (uint16_t)strlen(pk);
    r->data = (const uint8_t *)data;
    r->data_len = (uint32_t)strlen(data);
}

/* Put and wait for the callback; returns slog_put's rc or the callback's. */
static int put_sync(slog_t *lg, const char *name, slog_put_rec_t *r, size_t n) {
    waiter_t w;
    waiter_init(&w);
    tr_err e = {0, ""};
    int rc = slog_put(lg, name, r, n, waiter_cb, &w, &e);
    if (rc) return rc;
    waiter_wait(&w, 1);
    return w.rc;
}

/* Records of one shard as read back. */
typedef struct got {
    uint64_t seq;
    int64_t arrival;
    char *pk;
    char *data;
    uint32_t data_len;
} got_t;

static got_t *read_shard(slog_t *lg, uint64_t id, uint32_t shard, size_t *n_out,
                         uint64_t *closed_end) {
    slog_read_t rd = {0};
    got_t *v = NULL;
    size_t n = 0;
    uint64_t from = 0;
    for (;;) {
        tr_err e = {0, ""};
        int64_t la;
        int rc = slog_read(lg, id, shard, from, 100, 1 << 20, &rd, closed_end, &la, &e);
        if (rc) fail_msg("read shard %u: %s", shard, e.msg);
        if (rd.n == 0) break;
        v = realloc(v, (n + rd.n) * sizeof *v);
        for (size_t i = 0; i < rd.n; i++) {
            got_t *g = &v[n++];
            g->seq = rd.recs[i].seq;
            g->arrival = rd.recs[i].arrival_ms;
            g->pk = strndup(rd.recs[i].pk, rd.recs[i].pk_len);
            g->data = malloc(rd.recs[i].data_len + 1);
            memcpy(g->data, rd.recs[i].data, rd.recs[i].data_len);
            g->data[rd.recs[i].data_len] = '\0';
            g->data_len = rd.recs[i].data_len;
        }
        from = rd.next_seq;
    }
    slog_read_free(&rd);
    *n_out = n;
    return v;
}

static void got_free(got_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].pk);
        free(v[i].data);
    }
    free(v);
}

static slog_hash_t hex128(const char *hex) {
    slog_hash_t h = 0;
    for (; *hex; hex++) {
        int d = *hex <= '9' ? *hex - '0' : *hex - 'a' + 10;
        h = h << 4 | (slog_hash_t)d;
    }
    return h;
}

static slog_hash_t dec(const char *s) {
    slog_hash_t h;
    assert_int_equal(slog_hash_parse(s, &h), 0);
    return h;
}

/* ---- helpers: sequence numbers and hash keys ----------------------------------------------- */

static void test_seq_format_parse(void **state) {
    (void)state;
    char s[SLOG_SEQ_STRLEN + 1];
    uint32_t sh;
    uint64_t c;
    slog_seq_format(0, 0, s);
    assert_string_equal(s, "4900000000000000000000000000000000");
    assert_int_equal(strlen(s), SLOG_SEQ_STRLEN);
    slog_seq_format(7, 42, s);
    assert_string_equal(s, "4900000000000700000000000000000042");
    assert_int_equal(slog_seq_parse(s, &sh, &c), 0);
    assert_int_equal(sh, 7);
    assert_int_equal(c, 42);
    slog_seq_format(UINT32_MAX, UINT64_MAX, s);
    assert_string_equal(s, "4900429496729518446744073709551615");
    assert_int_equal(slog_seq_parse(s, &sh, &c), 0);
    assert_int_equal(sh, UINT32_MAX);
    assert_true(c == UINT64_MAX);

    /* numeric order == text order within a shard */
    char a[SLOG_SEQ_STRLEN + 1], b[SLOG_SEQ_STRLEN + 1];
    uint64_t pairs[][2] = {{9, 10}, {999, 1000}, {0, 1}, {UINT64_MAX - 1, UINT64_MAX}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        slog_seq_format(3, pairs[i][0], a);
        slog_seq_format(3, pairs[i][1], b);
        assert_true(strcmp(a, b) < 0);
    }

    const char *bad[] = {
        "",
        "49",
        "490000000000000000000000000000000",    /* 33 */
        "49000000000000000000000000000000000",  /* 35 */
        "4800000000000000000000000000000000",   /* prefix */
        "4a00000000000000000000000000000000",
        "49000000000007 0000000000000000042",
        "49000000000007000000000000000000-2",
        "4999999999999900000000000000000000",   /* shard > UINT32_MAX */
        "4900429496729618446744073709551615",   /* shard = UINT32_MAX + 1 */
        "4900000000000018446744073709551616",   /* counter = 2^64 */
        "4900000000000099999999999999999999",
        "49000000000000000000000000000000000000000000000000000000", /* AWS-length */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(slog_seq_parse(bad[i], &sh, &c), TR_EINVAL);
    assert_int_equal(slog_seq_parse(NULL, &sh, &c), TR_EINVAL);
}

static void test_hash_format_parse(void **state) {
    (void)state;
    char s[40];
    slog_hash_format(0, s);
    assert_string_equal(s, "0");
    slog_hash_format(HMAX, s);
    assert_string_equal(s, "340282366920938463463374607431768211455");
    slog_hash_format(H127, s);
    assert_string_equal(s, "170141183460469231731687303715884105728");
    assert_true(dec("0") == 0);
    assert_true(dec("1") == 1);
    assert_true(dec("340282366920938463463374607431768211455") == HMAX);
    assert_true(dec("170141183460469231731687303715884105728") == H127);
    assert_true(dec("18446744073709551616") == (slog_hash_t)1 << 64);

    slog_hash_t h = 12345;
    const char *bad[] = {
        "340282366920938463463374607431768211456", /* 2^128 */
        "999999999999999999999999999999999999999",
        "1000000000000000000000000000000000000000", /* 40 digits */
        "",
        "01",
        "00",
        "1a",
        "-1",
        "+1",
        " 1",
        "1 ",
        "0x10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(slog_hash_parse(bad[i], &h), TR_EINVAL);
        assert_true(h == 12345); /* untouched on error */
    }
    assert_int_equal(slog_hash_parse(NULL, &h), TR_EINVAL);

    /* round trips */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t y = x * 2685821657736338717ull;
        slog_hash_t v = (slog_hash_t)x << 64 | y;
        if (i % 3 == 1) v >>= (unsigned)(i % 128);
        slog_hash_format(v, s);
        slog_hash_t back;
        assert_int_equal(slog_hash_parse(s, &back), 0);
        assert_true(back == v);
    }

    /* MD5, big-endian */
    assert_true(slog_hash_pk("a", 1) == hex128("0cc175b9c0f1b6a831c399e269772661"));
    assert_true(slog_hash_pk("", 0) == hex128("d41d8cd98f00b204e9800998ecf8427e"));
    assert_true(slog_hash_pk("hello", 5) == hex128("5d41402abc4b2a76b9719d911017c592"));
}

/* ---- control plane ------------------------------------------------------------------------- */

static void test_create_describe(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    long long t0 = tr_now_ms();
    create(lg, "orders", 3);
    slog_stream_info_t si = describe(lg, "orders");
    assert_string_equal(si.name, "orders");
    assert_true(si.id > 0);
    assert_int_equal(si.mode, SLOG_MODE_PROVISIONED);
    assert_int_equal(si.retention_hours, 24);
    assert_true(si.created_ms >= t0 - 1000 && si.created_ms <= tr_now_ms() + 1000);
    assert_int_equal(si.n_shards, 3);
    assert_int_equal(si.open_shards, 3);
    assert_int_equal(si.n_tags, 0);
    const char *ranges[3][2] = {
        {"0", "113427455640312821154458202477256070484"},
        {"113427455640312821154458202477256070485", "226854911280625642308916404954512140969"},
        {"226854911280625642308916404954512140970", "340282366920938463463374607431768211455"},
    };
    for (uint32_t i = 0; i < 3; i++) {
        slog_shard_info_t *s = &si.shards[i];
        assert_int_equal(s->index, i);
        assert_int_equal(s->parent, SLOG_NO_SHARD);
        assert_int_equal(s->adjacent_parent, SLOG_NO_SHARD);
        assert_true(s->hash_start == dec(ranges[i][0]));
        assert_true(s->hash_end == dec(ranges[i][1]));
        assert_int_equal(s->closed, 0);
        assert_int_equal(s->begin, 0);
        assert_int_equal(s->end, 0);
    }
    slog_stream_info_t by_id;
    assert_int_equal(slog_stream_describe_id(lg, si.id, &by_id, NULL), 0);
    assert_string_equal(by_id.name, "orders");
    slog_stream_info_free(&by_id);

    /* even split for counts that do and do not divide 2^128 */
    uint32_t counts[] = {1, 2, 5, 7, 16};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        char name[16];
        snprintf(name, sizeof name, "even%u", counts[c]);
        create(lg, name, counts[c]);
        slog_stream_info_t ev = describe(lg, name);
        assert_true(ev.shards[0].hash_start == 0);
        assert_true(ev.shards[counts[c] - 1].hash_end == HMAX);
        slog_hash_t step = ev.shards[0].hash_end + 1;
        for (uint32_t i = 1; i < counts[c]; i++) {
            assert_true(ev.shards[i].hash_start == ev.shards[i - 1].hash_end + 1);
            assert_true(ev.shards[i].hash_start == step * i);
        }
        slog_stream_info_free(&ev);
    }

    /* ON_DEMAND: shard count from the options (default 4) */
    assert_int_equal(slog_stream_create(lg, "od", 0, SLOG_MODE_ON_DEMAND, NULL, 0, NULL), 0);
    slog_stream_info_t od = describe(lg, "od");
    assert_int_equal(od.mode, SLOG_MODE_ON_DEMAND);
    assert_int_equal(od.n_shards, 4);
    slog_stream_info_free(&od);

    uint32_t lim, open, odl, ods;
    slog_limits(lg, &lim, &open, &odl, &ods);
    assert_int_equal(lim, 500);
    assert_int_equal(open, 3 + 1 + 2 + 5 + 7 + 16 + 4);
    assert_int_equal(odl, 50);
    assert_int_equal(ods, 1);

    slog_stream_info_free(&si);
    slog_close(lg);
}

static void list_check(slog_t *lg, const char *after, size_t max, const char *want, int more_want) {
    char **names = NULL;
    size_t n = 99;
    int more = -1;
    assert_int_equal(slog_stream_list(lg, after, max, &names, &n, &more, NULL), 0);
    char got[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(got, ",");
        strcat(got, names[i]);
        free(names[i]);
    }
    free(names);
    assert_string_equal(got, want);
    assert_int_equal(more, more_want);
}

static void test_list_pagination(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    list_check(lg, NULL, 10, "", 0);
    const char *names[] = {"e", "c", "a", "d", "b"};
    for (size_t i = 0; i < 5; i++) create(lg, names[i], 1);
    list_check(lg, NULL, 2, "a,b", 1);
    list_check(lg, "b", 2, "c,d", 1);
    list_check(lg, "d", 2, "e", 0);
    list_check(lg, "bb", 10, "c,d,e", 0);
    list_check(lg, NULL, 0, "", 1);
    list_check(lg, "zzz", 5, "", 0);
    list_check(lg, NULL, 5, "a,b,c,d,e", 0);
    assert_int_equal(slog_stream_delete(lg, "c", NULL), 0);
    list_check(lg, "b", 2, "d,e", 0);
    slog_close(lg);
}

static void test_delete_recreate(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "s", 2);
    slog_put_rec_t r[3];
    rec_set(&r[0], "a", "one");
    rec_set(&r[1], "b", "two");
    rec_set(&r[2], "c", "three");
    assert_int_equal(put_sync(lg, "s", r, 3), 0);
    slog_stream_info_t si = describe(lg, "s");
    uint64_t old = si.id;
    slog_stream_info_free(&si);
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/streams/%" PRIu64, dir, old);
    assert_int_equal(stat(path, &sb), 0);

    tr_err e = {0, ""};
    assert_int_equal(slog_stream_delete(lg, "s", &e), 0);
    assert_int_equal(slog_stream_describe(lg, "s", &si, &e), TR_ENOTFOUND);
    assert_non_null(strstr(e.msg, "\"s\""));
    assert_int_equal(slog_stream_delete(lg, "s", NULL), TR_ENOTFOUND);
    assert_int_equal(slog_stream_describe_id(lg, old, &si, NULL), TR_ENOTFOUND);
    slog_read_t rd = {0};
    assert_int_equal(slog_read(lg, old, 0, 0, 10, 1 << 20, &rd, NULL, NULL, NULL), TR_ENOTFOUND);
    uint64_t b;
    assert_int_equal(slog_position(lg, old, 0, 0, &b, NULL, NULL, NULL), TR_ENOTFOUND);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(put_sync(lg, "s", r, 1), TR_ENOTFOUND);

    create(lg, "s", 2);
    si = describe(lg, "s");
    assert_true(si.id != old);
    for (uint32_t i = 0; i < 2; i++) {
        size_t n;
        got_t *g = read_shard(lg, si.id, i, &n, NULL);
        assert_int_equal(n, 0);
        got_free(g, n);
    }
    assert_int_equal(slog_read(lg, old, 0, 0, 10, 1 << 20, &rd, NULL, NULL, NULL), TR_ENOTFOUND);
    uint32_t open;
    slog_limits(lg, NULL, &open, NULL, NULL);
    assert_int_equal(open, 2);
    slog_stream_info_free(&si);
    slog_read_free(&rd);
    slog_close(lg);
}

static void test_name_and_limit_errors(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.shard_limit = 10;
    o.on_demand_limit = 1;
    o.on_demand_shards = 2;
    slog_t *lg = open_at(dir, &o);
    tr_err e = {0, ""};
    char long_name[200];
    memset(long_name, 'x', sizeof long_name);
    long_name[129] = '\0';
    const char *bad[] = {"", long_name, "bad name", "a/b", "caf\xc3\xa9", "a:b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(slog_stream_create(lg, bad[i], 1, SLOG_MODE_PROVISIONED, NULL, 0, &e),
                         TR_EINVAL);
        assert_int_equal(e.code, TR_EINVAL);
    }
    assert_int_equal(slog_stream_create(lg, NULL, 1, 0, NULL, 0, &e), TR_EINVAL);
    long_name[128] = '\0';
    create(lg, long_name, 1);
    create(lg, "Ok_name-1.2", 1);
    assert_int_equal(slog_stream_create(lg, "Ok_name-1.2", 1, 0, NULL, 0, &e), TR_EEXISTS);
    assert_int_equal(slog_stream_create(lg, "zero", 0, 0, NULL, 0, &e), TR_EINVAL);
    assert_int_equal(slog_stream_create(lg, "mode", 1, 7, NULL, 0, &e), TR_EINVAL);

    /* shard limit: 2 open, limit 10 */
    assert_int_equal(slog_stream_create(lg, "big", 9, 0, NULL, 0, &e), TR_ELIMIT);
    assert_non_null(strstr(e.msg, "shard limit"));
    assert_non_null(strstr(e.msg, "Current limit of shards is 10"));
    assert_int_equal(slog_stream_describe(lg, "big", &(slog_stream_info_t){0}, NULL), TR_ENOTFOUND);
    create(lg, "six", 6);
    /* on-demand: 2 shards each, at most one stream */
    assert_int_equal(slog_stream_create(lg, "od1", 0, SLOG_MODE_ON_DEMAND, NULL, 0, &e), 0);
    assert_int_equal(slog_stream_create(lg, "od2", 0, SLOG_MODE_ON_DEMAND, NULL, 0, &e), TR_ELIMIT);
    assert_int_equal(slog_stream_create(lg, "one", 1, 0, NULL, 0, &e), TR_ELIMIT);
    assert_int_equal(slog_stream_delete(lg, "od1", NULL), 0);
    assert_int_equal(slog_stream_create(lg, "od2", 0, SLOG_MODE_ON_DEMAND, NULL, 0, &e), 0);
    uint32_t lim, open, odl, ods;
    slog_limits(lg, &lim, &open, &odl, &ods);
    assert_int_equal(lim, 10);
    assert_int_equal(open, 10);
    assert_int_equal(odl, 1);
    assert_int_equal(ods, 1);

    /* unknown stream everywhere */
    slog_put_rec_t r;
    rec_set(&r, "k", "v");
    slog_tag_t t = {"k", "v"};
    char *keys[] = {"k"};
    uint32_t oc;
    assert_int_equal(slog_stream_delete(lg, "nope", &e), TR_ENOTFOUND);
    assert_int_equal(slog_stream_set_retention(lg, "nope", 48, 1, &e), TR_ENOTFOUND);
    assert_int_equal(slog_stream_tags_add(lg, "nope", &t, 1, &e), TR_ENOTFOUND);
    assert_int_equal(slog_stream_tags_remove(lg, "nope", keys, 1, &e), TR_ENOTFOUND);
    assert_int_equal(slog_shard_split(lg, "nope", 0, H127, &e), TR_ENOTFOUND);
    assert_int_equal(slog_shard_merge(lg, "nope", 0, 1, &e), TR_ENOTFOUND);
    assert_int_equal(slog_stream_scale(lg, "nope", 2, &oc, &e), TR_ENOTFOUND);
    assert_int_equal(slog_put(lg, "nope", &r, 1, NULL, NULL, &e), TR_ENOTFOUND);
    slog_close(lg);

    /* limits survive a restart (open shards are recounted) */
    lg = open_at(dir, &o);
    slog_limits(lg, NULL, &open, NULL, &ods);
    assert_int_equal(open, 10);
    assert_int_equal(ods, 1);
    assert_int_equal(slog_stream_create(lg, "one", 1, 0, NULL, 0, &e), TR_ELIMIT);
    slog_close(lg);
}

static void test_retention_bounds(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "r", 1);
    tr_err e = {0, ""};
    assert_int_equal(slog_stream_set_retention(lg, "r", 23, 0, &e), TR_EINVAL);
    assert_non_null(strstr(e.msg, "24"));
    assert_int_equal(slog_stream_set_retention(lg, "r", 8761, 1, &e), TR_EINVAL);
    assert_int_equal(slog_stream_set_retention(lg, "r", 48, 1, &e), 0);
    assert_int_equal(slog_stream_set_retention(lg, "r", 30, 1, &e), TR_EINVAL);   /* not up */
    assert_non_null(strstr(e.msg, "48"));
    assert_int_equal(slog_stream_set_retention(lg, "r", 60, 0, &e), TR_EINVAL);   /* not down */
    assert_int_equal(slog_stream_set_retention(lg, "r", 30, 0, &e), 0);
    assert_int_equal(slog_stream_set_retention(lg, "r", 30, 0, &e), 0);           /* same */
    assert_int_equal(slog_stream_set_retention(lg, "r", 8760, 1, &e), 0);
    slog_stream_info_t si = describe(lg, "r");
    assert_int_equal(si.retention_hours, 8760);
    slog_stream_info_free(&si);
    assert_int_equal(slog_stream_set_retention(lg, "r", 24, 0, &e), 0);
    si = describe(lg, "r");
    assert_int_equal(si.retention_hours, 24);
    slog_stream_info_free(&si);
    slog_close(lg);
}

static void tags_expect(slog_t *lg, const char *name, const char *want) {
    slog_stream_info_t si = describe(lg, name);
    char got[4096] = "";
    for (size_t i = 0; i < si.n_tags; i++) {
        if (i) strcat(got, ",");
        strcat(got, si.tags[i].key);
        strcat(got, "=");
        strcat(got, si.tags[i].value);
    }
    slog_stream_info_free(&si);
    assert_string_equal(got, want);
}

static void test_tags(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    tr_err e = {0, ""};
    slog_tag_t init[] = {{"team", "data"}, {"env", "prod"}, {"team", "core"}};
    assert_int_equal(slog_stream_create(lg, "t", 1, 0, init, 3, &e), 0);
    tags_expect(lg, "t", "env=prod,team=core");
    slog_tag_t add[] = {{"env", "dev"}, {"cost", ""}};
    assert_int_equal(slog_stream_tags_add(lg, "t", add, 2, &e), 0);
    tags_expect(lg, "t", "cost=,env=dev,team=core");
    char *rm[] = {"team", "absent"};
    assert_int_equal(slog_stream_tags_remove(lg, "t", rm, 2, &e), 0);
    tags_expect(lg, "t", "cost=,env=dev");
    assert_int_equal(slog_stream_tags_remove(lg, "t", rm, 2, &e), 0);

    /* key and value lengths */
    char k129[130], k128[129], v257[258], v256[257];
    memset(k129, 'k', 129), k129[129] = '\0';
    memset(k128, 'k', 128), k128[128] = '\0';
    memset(v257, 'v', 257), v257[257] = '\0';
    memset(v256, 'v', 256), v256[256] = '\0';
    slog_tag_t t1 = {"", "x"}, t2 = {k129, "x"}, t3 = {"ok", v257}, t4 = {k128, v256};
    assert_int_equal(slog_stream_tags_add(lg, "t", &t1, 1, &e), TR_EINVAL);
    assert_int_equal(slog_stream_tags_add(lg, "t", &t2, 1, &e), TR_EINVAL);
    assert_int_equal(slog_stream_tags_add(lg, "t", &t3, 1, &e), TR_EINVAL);
    assert_int_equal(slog_stream_tags_add(lg, "t", &t4, 1, &e), 0);
    assert_int_equal(slog_stream_create(lg, "t2", 1, 0, &t2, 1, &e), TR_EINVAL);

    /* 50 in all */
    slog_tag_t many[60];
    char keys[60][16];
    for (int i = 0; i < 60; i++) {
        snprintf(keys[i], sizeof keys[i], "m%02d", i);
        many[i] = (slog_tag_t){keys[i], "1"};
    }
    assert_int_equal(slog_stream_tags_add(lg, "t", many, 47, &e), 0); /* 3 + 47 = 50 */
    slog_stream_info_t si = describe(lg, "t");
    assert_int_equal(si.n_tags, 50);
    slog_stream_info_free(&si);
    assert_int_equal(slog_stream_tags_add(lg, "t", &many[47], 1, &e), TR_ELIMIT);
    assert_int_equal(slog_stream_tags_add(lg, "t", many, 10, &e), 0); /* overwrite: still 50 */
    si = describe(lg, "t");
    assert_int_equal(si.n_tags, 50);
    for (size_t i = 1; i < si.n_tags; i++)
        assert_true(strcmp(si.tags[i - 1].key, si.tags[i].key) < 0);
    slog_stream_info_free(&si);
    assert_int_equal(slog_stream_create(lg, "t3", 1, 0, many, 51, &e), TR_ELIMIT);
    assert_int_equal(slog_stream_create(lg, "t3", 1, 0, many, 50, &e), 0);

    /* tags survive a restart */
    slog_close(lg);
    lg = open_at(dir, &o);
    si = describe(lg, "t");
    assert_int_equal(si.n_tags, 50);
    assert_string_equal(si.tags[0].key, "cost");
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* ---- data plane ---------------------------------------------------------------------------- */

static void test_put_read_roundtrip(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "p", 4);
    slog_stream_info_t si = describe(lg, "p");

    enum { N = 200 };
    static char pks[N][16], datas[N][32];
    slog_put_rec_t r[N];
    for (int i = 0; i < N; i++) {
        snprintf(pks[i], sizeof pks[i], "key-%d", i % 37);
        snprintf(datas[i], sizeof datas[i], "payload %d", i);
        rec_set(&r[i], pks[i], datas[i]);
    }
    waiter_t w;
    waiter_init(&w);
    /* several puts in flight at once, in a known order */
    for (int i = 0; i < N; i += 20)
        assert_int_equal(slog_put(lg, "p", r + i, 20, waiter_cb, &w, NULL), 0);
    waiter_wait(&w, N / 20);
    assert_int_equal(w.rc, 0);

    uint64_t per_shard_next[4] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_true(r[i].hash == slog_hash_pk(pks[i], strlen(pks[i])));
        assert_true(r[i].shard < 4);
        slog_shard_info_t *s = &si.shards[r[i].shard];
        assert_true(r[i].hash >= s->hash_start && r[i].hash <= s->hash_end);
        /* queue order == sequence order within a shard */
        assert_int_equal(r[i].seq, per_shard_next[r[i].shard]);
        per_shard_next[r[i].shard]++;
    }
    size_t total = 0;
    for (uint32_t sh = 0; sh < 4; sh++) {
        size_t n;
        uint64_t ce;
        got_t *g = read_shard(lg, si.id, sh, &n, &ce);
        assert_int_equal(ce, UINT64_MAX);
        assert_int_equal(n, per_shard_next[sh]);
        int64_t prev_arr = 0;
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(g[k].seq, k);
            assert_true(g[k].arrival >= prev_arr);
            prev_arr = g[k].arrival;
        }
        total += n;
        for (int i = 0; i < N; i++) {
            if (r[i].shard != sh) continue;
            assert_string_equal(g[r[i].seq].pk, pks[i]);
            assert_string_equal(g[r[i].seq].data, datas[i]);
        }
        uint64_t b, en, at;
        assert_int_equal(slog_position(lg, si.id, sh, 0, &b, &en, &at, NULL), 0);
        assert_int_equal(b, 0);
        assert_int_equal(en, n);
        assert_int_equal(at, 0);
        assert_int_equal(slog_position(lg, si.id, sh, tr_now_ms() + 3600000, NULL, NULL, &at, NULL),
                         0);
        assert_int_equal(at, n);
        got_free(g, n);
    }
    assert_int_equal(total, N);
    slog_read_t rd = {0};
    assert_int_equal(slog_read(lg, si.id, 4, 0, 10, 100, &rd, NULL, NULL, NULL), TR_ENOTFOUND);

    /* explicit hash keys pick the shard */
    slog_put_rec_t x[3];
    rec_set(&x[0], "whatever", "max");
    x[0].has_explicit_hash = 1;
    x[0].explicit_hash = HMAX;
    rec_set(&x[1], "whatever", "zero");
    x[1].has_explicit_hash = 1;
    x[1].explicit_hash = 0;
    rec_set(&x[2], "whatever", "edge");
    x[2].has_explicit_hash = 1;
    x[2].explicit_hash = si.shards[2].hash_start;
    assert_int_equal(put_sync(lg, "p", x, 3), 0);
    assert_int_equal(x[0].shard, 3);
    assert_true(x[0].hash == HMAX);
    assert_int_equal(x[1].shard, 0);
    assert_int_equal(x[2].shard, 2);
    assert_int_equal(x[0].seq, per_shard_next[3]);

    /* validation: nothing queued, no callback */
    waiter_init(&w);
    tr_err e = {0, ""};
    slog_put_rec_t bad;
    rec_set(&bad, "", "x");
    assert_int_equal(slog_put(lg, "p", &bad, 1, waiter_cb, &w, &e), TR_EINVAL);
    /* the engine's bound is in bytes (SLOG_MAX_PK); the adapter checks AWS's 256 characters */
    char pkbig[SLOG_MAX_PK + 2];
    memset(pkbig, 'p', SLOG_MAX_PK + 1), pkbig[SLOG_MAX_PK + 1] = '\0';
    rec_set(&bad, pkbig, "x");
    assert_int_equal(slog_put(lg, "p", &bad, 1, waiter_cb, &w, &e), TR_EINVAL);
    pkbig[SLOG_MAX_PK] = '\0';
    rec_set(&bad, pkbig, "x");
    assert_int_equal(put_sync(lg, "p", &bad, 1), 0);
    uint8_t *big = calloc(1, SLOG_MAX_DATA + 1);
    rec_set(&bad, "big", "");
    bad.data = big;
    bad.data_len = SLOG_MAX_DATA + 1;
    assert_int_equal(slog_put(lg, "p", &bad, 1, waiter_cb, &w, &e), TR_EINVAL);
    bad.data_len = SLOG_MAX_DATA;
    big[SLOG_MAX_DATA - 1] = 0x5a;
    assert_int_equal(put_sync(lg, "p", &bad, 1), 0);
    size_t n;
    got_t *g = read_shard(lg, si.id, bad.shard, &n, NULL);
    assert_int_equal(g[bad.seq].data_len, SLOG_MAX_DATA);
    assert_int_equal((uint8_t)g[bad.seq].data[SLOG_MAX_DATA - 1], 0x5a);
    got_free(g, n);
    free(big);
    assert_int_equal(slog_put(lg, "p", &bad, 0, waiter_cb, &w, &e), TR_EINVAL);
    assert_int_equal(slog_put(lg, "p", NULL, 1, waiter_cb, &w, &e), TR_EINVAL);
    rec_set(&bad, "k", "");
    assert_int_equal(put_sync(lg, "p", &bad, 1), 0); /* empty data is fine */
    assert_int_equal(waiter_calls(&w), 0);

    slog_read_free(&rd);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* Many putter threads; every acked record must be readable where the engine said. */
enum { PT_THREADS = 6, PT_PUTS = 150, PT_MAXB = 4, PT_KEYS = 8 };

typedef struct putter {
    slog_t *lg;
    int t;
    slog_put_rec_t recs[PT_PUTS * PT_MAXB];
    char pk[PT_PUTS * PT_MAXB][16];
    char data[PT_PUTS * PT_MAXB][32];
    size_t n;
    waiter_t w;
    int throttled;
} putter_t;

static void *putter_main(void *arg) {
    putter_t *p = arg;
    waiter_init(&p->w);
    int puts = 0;
    for (int i = 0; i < PT_PUTS; i++) {
        size_t b = 1 + (size_t)(i % PT_MAXB);
        size_t at = p->n;
        for (size_t k = 0; k < b; k++) {
            snprintf(p->pk[at + k], 16, "k%d", (int)((at + k) % PT_KEYS));
            snprintf(p->data[at + k], 32, "t%d-r%zu", p->t, at + k);
            rec_set(&p->recs[at + k], p->pk[at + k], p->data[at + k]);
        }
        int rc = slog_put(p->lg, "c", &p->recs[at], b, waiter_cb, &p->w, NULL);
        if (rc == TR_ETHROTTLED) {
            p->throttled++;
            waiter_wait(&p->w, puts); /* back off until our queue drains */
            i--;
            continue;
        }
        assert_int_equal(rc, 0);
        p->n += b;
        puts++;
        if (i % 25 == 24) waiter_wait(&p->w, puts); /* mix sync and async */
    }
    waiter_wait(&p->w, puts);
    return NULL;
}

static void test_concurrent_putters(void **state) {
    const char *dir = *state;
    slog_opts_t o = {0}; /* real fsyncs: group commit is the point */
    o.retention_interval_ms = 1; /* and the retention thread racing with it */
    o.segment_bytes = 4096;      /* and segment rolls */
    slog_t *lg = open_at(dir, &o);
    create(lg, "c", 3);
    slog_stream_info_t si = describe(lg, "c");
    putter_t *ps = calloc(PT_THREADS, sizeof *ps);
    pthread_t th[PT_THREADS];
    for (int t = 0; t < PT_THREADS; t++) {
        ps[t].lg = lg;
        ps[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, putter_main, &ps[t]), 0);
    }
    for (int t = 0; t < PT_THREADS; t++) pthread_join(th[t], NULL);

    got_t *g[3];
    size_t gn[3];
    size_t total = 0;
    for (uint32_t s = 0; s < 3; s++) {
        g[s] = read_shard(lg, si.id, s, &gn[s], NULL);
        for (size_t k = 0; k < gn[s]; k++) assert_int_equal(g[s][k].seq, k);
        total += gn[s];
    }
    size_t acked = 0;
    for (int t = 0; t < PT_THREADS; t++) {
        putter_t *p = &ps[t];
        assert_int_equal(p->w.rc, 0);
        uint64_t last_seq[PT_KEYS];
        int seen[PT_KEYS] = {0};
        for (size_t i = 0; i < p->n; i++) {
            slog_put_rec_t *r = &p->recs[i];
            assert_int_equal(r->rc, 0);
            assert_true(r->shard < 3);
            assert_true(r->seq < gn[r->shard]);
            got_t *x = &g[r->shard][r->seq];
            assert_string_equal(x->pk, p->pk[i]);
            assert_string_equal(x->data, p->data[i]);
            /* one thread, one key: the engine kept the thread's order */
            int key = (int)(i % PT_KEYS);
            if (seen[key]) assert_true(r->seq > last_seq[key]);
            seen[key] = 1;
            last_seq[key] = r->seq;
        }
        acked += p->n;
    }
    assert_int_equal(total, acked);
    for (uint32_t s = 0; s < 3; s++) got_free(g[s], gn[s]);
    free(ps);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* slog_close completes queued puts; a reopen sees everything with counters continuing. */
static void test_close_drains_and_reopen(void **state) {
    const char *dir = *state;
    slog_opts_t o = {0};
    slog_t *lg = open_at(dir, &o);
    create(lg, "r", 2);
    slog_tag_t tag = {"owner", "me"};
    assert_int_equal(slog_stream_tags_add(lg, "r", &tag, 1, NULL), 0);
    enum { N = 300 };
    static char pks[N][16];
    static slog_put_rec_t r[N];
    for (int i = 0; i < N; i++) {
        snprintf(pks[i], sizeof pks[i], "k%d", i);
        rec_set(&r[i], pks[i], pks[i]);
    }
    /* the first half settles; split; the second half is still queued at close */
    assert_int_equal(put_sync(lg, "r", r, N / 2), 0);
    assert_int_equal(slog_shard_split(lg, "r", 0, H127 / 2, NULL), 0);
    assert_int_equal(slog_stream_set_retention(lg, "r", 72, 1, NULL), 0);
    waiter_t w;
    waiter_init(&w);
    for (int i = N / 2; i < N; i++)
        assert_int_equal(slog_put(lg, "r", &r[i], 1, waiter_cb, &w, NULL), 0);
    slog_stream_info_t before = describe(lg, "r");
    slog_close(lg);
    assert_int_equal(waiter_calls(&w), N - N / 2);
    assert_int_equal(w.rc, 0);

    lg = open_at(dir, &o);
    slog_stream_info_t after = describe(lg, "r");
    assert_int_equal(after.id, before.id);
    assert_int_equal(after.n_shards, 4);
    assert_int_equal(after.open_shards, 3);
    assert_int_equal(after.retention_hours, 72);
    assert_int_equal(after.n_tags, 1);
    assert_string_equal(after.tags[0].value, "me");
    assert_int_equal(after.created_ms, before.created_ms);
    size_t total = 0;
    for (uint32_t s = 0; s < 4; s++) {
        slog_shard_info_t *a = &after.shards[s], *b = &before.shards[s];
        assert_int_equal(a->parent, b->parent);
        assert_int_equal(a->adjacent_parent, b->adjacent_parent);
        assert_true(a->hash_start == b->hash_start && a->hash_end == b->hash_end);
        assert_int_equal(a->closed, b->closed);
        assert_int_equal(a->seq_end, b->seq_end);
        assert_int_equal(a->closed_ms, b->closed_ms);
        size_t n;
        got_t *g = read_shard(lg, after.id, s, &n, NULL);
        assert_int_equal(a->end, n);
        total += n;
        got_free(g, n);
    }
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].rc, 0);
        if (i >= N / 2) assert_int_not_equal(r[i].shard, 0); /* after the split */
    }
    /* counters continue where they were */
    slog_put_rec_t more;
    rec_set(&more, pks[N - 1], "again");
    assert_int_equal(put_sync(lg, "r", &more, 1), 0);
    assert_int_equal(more.shard, r[N - 1].shard);
    assert_int_equal(more.seq, after.shards[more.shard].end);
    slog_stream_info_free(&before);
    slog_stream_info_free(&after);
    slog_close(lg);
}

/* The append hook as a gate: while it blocks, the commit thread holds the queued bytes. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int block, entered, released, calls;
    uint64_t stream_id, last_end;
    uint32_t shard;
} gate_t;

static void gate_hook(void *arg, uint64_t sid, uint32_t shard, uint64_t end) {
    gate_t *g = arg;
    pthread_mutex_lock(&g->mu);
    g->calls++;
    g->stream_id = sid;
    g->shard = shard;
    g->last_end = end;
    if (g->block && !g->released) {
        g->entered = 1;
        pthread_cond_broadcast(&g->cv);
        while (!g->released) pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static void test_admission_and_hook(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.max_pending_bytes = 100;
    slog_t *lg = open_at(dir, &o);
    create(lg, "t", 1);
    slog_stream_info_t si = describe(lg, "t");
    gate_t g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, 0, 0, 0, 0};
    slog_set_append_hook(lg, gate_hook, &g);

    char d59[60], d29[30], d10[11], d199[200];
    memset(d59, 'a', 59), d59[59] = '\0';
    memset(d29, 'b', 29), d29[29] = '\0';
    memset(d10, 'c', 10), d10[10] = '\0';
    memset(d199, 'd', 199), d199[199] = '\0';
    slog_put_rec_t a, b, c, c2, d, e2;
    rec_set(&a, "k", d59);  /* 60 bytes */
    rec_set(&b, "k", d59);  /* 60 */
    rec_set(&c, "k", d29);  /* 30 */
    rec_set(&c2, "k", d10); /* 11 */
    rec_set(&d, "k", d59);
    rec_set(&e2, "k", d199); /* 200: more than the budget, alone */
    waiter_t wa, wb, wc;
    waiter_init(&wa);
    waiter_init(&wb);
    waiter_init(&wc);
    tr_err e = {0, ""};
    assert_int_equal(slog_put(lg, "t", &a, 1, waiter_cb, &wa, &e), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* a's 60 bytes are still accounted: 60 + 60 > 100 */
    assert_int_equal(slog_put(lg, "t", &b, 1, waiter_cb, &wb, &e), TR_ETHROTTLED);
    assert_int_equal(e.code, TR_ETHROTTLED);
    assert_int_equal(slog_put(lg, "t", &c, 1, waiter_cb, &wc, &e), 0);              /* 90 */
    assert_int_equal(slog_put(lg, "t", &c2, 1, waiter_cb, &wb, &e), TR_ETHROTTLED); /* 101 */
    pthread_mutex_lock(&g.mu);
    g.released = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    waiter_wait(&wa, 1);
    waiter_wait(&wc, 1);
    assert_int_equal(waiter_calls(&wb), 0);
    assert_int_equal(put_sync(lg, "t", &d, 1), 0);
    assert_int_equal(put_sync(lg, "t", &e2, 1), 0);
    assert_int_equal(a.seq, 0);
    assert_int_equal(c.seq, 1);
    assert_int_equal(d.seq, 2);
    assert_int_equal(e2.seq, 3);
    pthread_mutex_lock(&g.mu);
    assert_int_equal(g.calls, 4);
    assert_int_equal(g.stream_id, si.id);
    assert_int_equal(g.shard, 0);
    assert_int_equal(g.last_end, 4);
    pthread_mutex_unlock(&g.mu);
    slog_set_append_hook(lg, NULL, NULL);
    assert_int_equal(put_sync(lg, "t", &d, 1), 0);
    pthread_mutex_lock(&g.mu);
    assert_int_equal(g.calls, 4);
    pthread_mutex_unlock(&g.mu);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* One shard's disk is full (opts.test_enospc_shard): its records fail, each with its own rc,
 * and nothing of them is stored; the other shard's records of the same put are committed with
 * their sequence numbers and readable; the put's callback reports the failure. */
static void test_put_one_shard_fails(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.test_enospc_shard = 1 + 1;  /* shard index 1 */
    slog_t *lg = open_at(dir, &o);
    create(lg, "t", 2);
    slog_stream_info_t si = describe(lg, "t");
    slog_put_rec_t r[40];
    char pks[40][16];
    int on1 = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(pks[i], 16, "key%d", i);
        rec_set(&r[i], pks[i], pks[i]);
        on1 += slog_hash_pk(pks[i], strlen(pks[i])) > si.shards[0].hash_end;
    }
    assert_true(on1 > 0 && on1 < 40);
    int rc = put_sync(lg, "t", r, 40);
    assert_true(rc < 0);
    uint64_t next0 = 0;
    for (int i = 0; i < 40; i++) {
        int home = slog_hash_pk(pks[i], strlen(pks[i])) > si.shards[0].hash_end;
        assert_int_equal(r[i].shard, (uint32_t)home);
        if (home == 1) {
            assert_int_equal(r[i].rc, TR_EIO);
        } else {
            assert_int_equal(r[i].rc, 0);
            assert_int_equal(r[i].seq, next0++);
        }
    }
    size_t n0 = 0, n1 = 0;
    got_t *g0 = read_shard(lg, si.id, 0, &n0, NULL);
    got_t *g1 = read_shard(lg, si.id, 1, &n1, NULL);
    assert_int_equal(n0, 40 - on1);
    assert_int_equal(n1, 0);
    for (size_t i = 0, k = 0; i < 40; i++) {
        if (r[i].shard != 0) continue;
        assert_int_equal(g0[k].seq, r[i].seq);
        assert_string_equal(g0[k].pk, pks[i]);
        k++;
    }
    got_free(g0, n0);
    got_free(g1, n1);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* ---- resharding ---------------------------------------------------------------------------- */

static void put_keys(slog_t *lg, const char *name, int from, int n, slog_put_rec_t *r,
                     char (*pks)[16]) {
    for (int i = 0; i < n; i++) {
        snprintf(pks[i], 16, "key%d", from + i);
        rec_set(&r[i], pks[i], pks[i]);
    }
    assert_int_equal(put_sync(lg, name, r, (size_t)n), 0);
}

static void test_split(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.shard_limit = 3;
    slog_t *lg = open_at(dir, &o);
    create(lg, "sp", 1);
    slog_put_rec_t r[40];
    char pks[40][16];
    put_keys(lg, "sp", 0, 20, r, pks);
    tr_err e = {0, ""};
    assert_int_equal(slog_shard_split(lg, "sp", 5, H127, &e), TR_EINVAL);
    assert_int_equal(slog_shard_split(lg, "sp", 0, 0, &e), TR_EINVAL);
    assert_int_equal(slog_shard_split(lg, "sp", 0, 1, &e), TR_EINVAL);
    assert_non_null(strstr(e.msg, "greater than one plus"));
    assert_int_equal(slog_shard_split(lg, "sp", 0, HMAX, &e), TR_EINVAL);
    slog_stream_info_t si = describe(lg, "sp");
    assert_int_equal(si.n_shards, 1); /* failures changed nothing */
    slog_stream_info_free(&si);

    long long t0 = tr_now_ms();
    assert_int_equal(slog_shard_split(lg, "sp", 0, H127, &e), 0);
    si = describe(lg, "sp");
    assert_int_equal(si.n_shards, 3);
    assert_int_equal(si.open_shards, 2);
    assert_int_equal(si.shards[0].closed, 1);
    assert_int_equal(si.shards[0].seq_end, 20);
    assert_true(si.shards[0].closed_ms >= t0);
    assert_int_equal(si.shards[1].parent, 0);
    assert_int_equal(si.shards[1].adjacent_parent, SLOG_NO_SHARD);
    assert_true(si.shards[1].hash_start == 0 && si.shards[1].hash_end == H127 - 1);
    assert_int_equal(si.shards[2].parent, 0);
    assert_true(si.shards[2].hash_start == H127 && si.shards[2].hash_end == HMAX);
    assert_int_equal(si.shards[1].closed + si.shards[2].closed, 0);
    assert_int_equal(slog_shard_split(lg, "sp", 0, H127, &e), TR_EINVAL);
    assert_non_null(strstr(e.msg, "already been merged or split"));

    put_keys(lg, "sp", 20, 40, r, pks);
    size_t in1 = 0, in2 = 0;
    for (int i = 0; i < 40; i++) {
        assert_true(r[i].shard == 1 || r[i].shard == 2);
        slog_shard_info_t *s = &si.shards[r[i].shard];
        assert_true(r[i].hash >= s->hash_start && r[i].hash <= s->hash_end);
        if (r[i].shard == 1) in1++;
        else in2++;
    }
    size_t n;
    uint64_t ce;
    got_t *g = read_shard(lg, si.id, 0, &n, &ce);
    assert_int_equal(n, 20);
    assert_int_equal(ce, 20);
    for (size_t k = 0; k < n; k++) {
        char want[32];
        snprintf(want, sizeof want, "key%zu", k);
        assert_string_equal(g[k].pk, want);
    }
    got_free(g, n);
    g = read_shard(lg, si.id, 1, &n, &ce);
    assert_int_equal(n, in1);
    assert_int_equal(ce, UINT64_MAX);
    got_free(g, n);
    g = read_shard(lg, si.id, 2, &n, &ce);
    assert_int_equal(n, in2);
    got_free(g, n);
    slog_stream_info_free(&si);

    /* the limit counts open shards: 2 -> 3 fits, 3 -> 4 does not */
    assert_int_equal(slog_shard_split(lg, "sp", 2, H127 + (H127 >> 1), &e), 0);
    assert_int_equal(slog_shard_split(lg, "sp", 1, H127 >> 1, &e), TR_ELIMIT);
    uint32_t open;
    slog_limits(lg, NULL, &open, NULL, NULL);
    assert_int_equal(open, 3);
    slog_close(lg);
}

static void test_merge(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "m", 4);
    slog_put_rec_t r[40];
    char pks[40][16];
    put_keys(lg, "m", 0, 40, r, pks);
    slog_stream_info_t si = describe(lg, "m");
    uint64_t count[4];
    for (int i = 0; i < 4; i++) count[i] = si.shards[i].end;
    slog_stream_info_free(&si);
    tr_err e = {0, ""};
    assert_int_equal(slog_shard_merge(lg, "m", 0, 2, &e), TR_EINVAL);
    assert_non_null(strstr(e.msg, "adjacent"));
    assert_int_equal(slog_shard_merge(lg, "m", 0, 0, &e), TR_EINVAL);
    assert_int_equal(slog_shard_merge(lg, "m", 0, 9, &e), TR_EINVAL);
    assert_int_equal(slog_shard_merge(lg, "m", 3, 0, &e), TR_EINVAL); /* ends do not wrap */

    assert_int_equal(slog_shard_merge(lg, "m", 1, 0, &e), 0); /* either order */
    si = describe(lg, "m");
    assert_int_equal(si.n_shards, 5);
    assert_int_equal(si.open_shards, 3);
    assert_int_equal(si.shards[4].parent, 1);
    assert_int_equal(si.shards[4].adjacent_parent, 0);
    assert_true(si.shards[4].hash_start == 0);
    assert_true(si.shards[4].hash_end == si.shards[1].hash_end);
    assert_int_equal(si.shards[0].closed, 1);
    assert_int_equal(si.shards[1].closed, 1);
    assert_int_equal(si.shards[0].seq_end, count[0]);
    assert_int_equal(si.shards[1].seq_end, count[1]);
    slog_hash_t end2 = si.shards[2].hash_end;
    slog_stream_info_free(&si);
    assert_int_equal(slog_shard_merge(lg, "m", 0, 2, &e), TR_EINVAL); /* closed */
    assert_int_equal(slog_shard_merge(lg, "m", 4, 2, &e), 0);
    si = describe(lg, "m");
    assert_int_equal(si.open_shards, 2);
    assert_true(si.shards[5].hash_start == 0 && si.shards[5].hash_end == end2);
    assert_int_equal(si.shards[5].parent, 4);
    assert_int_equal(si.shards[5].adjacent_parent, 2);
    assert_int_equal(si.shards[4].seq_end, 0);
    put_keys(lg, "m", 40, 40, r, pks);
    for (int i = 0; i < 40; i++) assert_true(r[i].shard == 5 || r[i].shard == 3);
    uint32_t open;
    slog_limits(lg, NULL, &open, NULL, NULL);
    assert_int_equal(open, 2);
    slog_stream_info_free(&si);
    slog_close(lg);
}

static void test_scale(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.shard_limit = 7;
    slog_t *lg = open_at(dir, &o);
    create(lg, "sc", 2);
    slog_put_rec_t r[40];
    char pks[40][16];
    put_keys(lg, "sc", 0, 20, r, pks);
    slog_stream_info_t si = describe(lg, "sc");
    uint64_t c0 = si.shards[0].end, c1 = si.shards[1].end;
    slog_stream_info_free(&si);
    tr_err e = {0, ""};
    uint32_t old = 0;
    assert_int_equal(slog_stream_scale(lg, "sc", 5, &old, &e), TR_EINVAL);
    assert_int_equal(old, 2);
    assert_int_equal(slog_stream_scale(lg, "sc", 0, &old, &e), TR_EINVAL);

    assert_int_equal(slog_stream_scale(lg, "sc", 4, &old, &e), 0);
    assert_int_equal(old, 2);
    si = describe(lg, "sc");
    assert_int_equal(si.n_shards, 6);
    assert_int_equal(si.open_shards, 4);
    assert_int_equal(si.shards[0].seq_end, c0);
    assert_int_equal(si.shards[1].seq_end, c1);
    uint32_t want_parent[4] = {0, 0, 1, 1};
    for (uint32_t k = 0; k < 4; k++) {
        slog_shard_info_t *s = &si.shards[2 + k];
        assert_true(s->hash_start == ((slog_hash_t)1 << 126) * k);
        assert_int_equal(s->parent, want_parent[k]);
        assert_int_equal(s->adjacent_parent, SLOG_NO_SHARD);
    }
    slog_stream_info_free(&si);
    assert_int_equal(slog_stream_scale(lg, "sc", 1, &old, &e), TR_EINVAL); /* below half */

    assert_int_equal(slog_stream_scale(lg, "sc", 2, &old, &e), 0);
    assert_int_equal(old, 4);
    si = describe(lg, "sc");
    assert_int_equal(si.n_shards, 8);
    assert_int_equal(si.shards[6].parent, 2);
    assert_int_equal(si.shards[6].adjacent_parent, 3);
    assert_int_equal(si.shards[7].parent, 4);
    assert_int_equal(si.shards[7].adjacent_parent, 5);
    slog_stream_info_free(&si);

    assert_int_equal(slog_stream_scale(lg, "sc", 2, &old, &e), 0); /* no-op */
    si = describe(lg, "sc");
    assert_int_equal(si.n_shards, 8);
    slog_stream_info_free(&si);

    assert_int_equal(slog_stream_scale(lg, "sc", 3, &old, &e), 0);
    si = describe(lg, "sc");
    assert_int_equal(si.n_shards, 11);
    assert_int_equal(si.open_shards, 3);
    assert_int_equal(si.shards[8].parent, 6);
    assert_int_equal(si.shards[8].adjacent_parent, SLOG_NO_SHARD);
    assert_true((si.shards[9].parent == 6 && si.shards[9].adjacent_parent == 7) ||
                (si.shards[9].parent == 7 && si.shards[9].adjacent_parent == 6));
    assert_int_equal(si.shards[10].parent, 7);
    put_keys(lg, "sc", 20, 40, r, pks);
    for (int i = 0; i < 40; i++) {
        assert_true(r[i].shard >= 8 && r[i].shard <= 10);
        slog_shard_info_t *s = &si.shards[r[i].shard];
        assert_true(r[i].hash >= s->hash_start && r[i].hash <= s->hash_end);
    }
    slog_stream_info_free(&si);

    /* shard limit 7: 3 open here + 2 elsewhere; 3 -> 6 would make 8, 3 -> 5 makes 7 */
    create(lg, "x", 2);
    assert_int_equal(slog_stream_scale(lg, "sc", 6, &old, &e), TR_ELIMIT);
    assert_int_equal(slog_stream_scale(lg, "sc", 5, &old, &e), 0);
    uint32_t open;
    slog_limits(lg, NULL, &open, NULL, NULL);
    assert_int_equal(open, 7);
    slog_close(lg);
}

/* One putter thread keeps going while the main thread reshards: every acked record is where
 * the engine said, in an open shard of its hash at the time, and per key the order holds across
 * parents and children. */
enum { RC_MAX = 20000, RC_KEYS = 16 };

typedef struct rc_putter {
    slog_t *lg;
    atomic_int stop;
    slog_put_rec_t *recs;
    char (*pk)[16];
    size_t n;
    waiter_t w;
} rc_putter_t;

static void *rc_main(void *arg) {
    rc_putter_t *p = arg;
    int puts = 0;
    while (!atomic_load(&p->stop) && p->n + 2 <= RC_MAX) {
        for (size_t k = 0; k < 2; k++) {
            snprintf(p->pk[p->n + k], 16, "p%zu", (p->n + k) % RC_KEYS);
            rec_set(&p->recs[p->n + k], p->pk[p->n + k], "x");
        }
        int rc = slog_put(p->lg, "c", &p->recs[p->n], 2, waiter_cb, &p->w, NULL);
        assert_int_equal(rc, 0);
        p->n += 2;
        puts++;
        if (puts % 64 == 0) waiter_wait(&p->w, puts - 32); /* bounded in flight */
    }
    waiter_wait(&p->w, puts);
    return NULL;
}

static void test_reshard_under_load(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    o.retention_interval_ms = 1;
    o.segment_bytes = 2048;
    slog_t *lg = open_at(dir, &o);
    create(lg, "c", 2);
    rc_putter_t *p = calloc(1, sizeof *p);
    p->lg = lg;
    p->recs = calloc(RC_MAX, sizeof *p->recs);
    p->pk = calloc(RC_MAX, sizeof *p->pk);
    waiter_init(&p->w);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, rc_main, p), 0);
    tr_err e = {0, ""};
    uint32_t old;
    /* readers run alongside */
    slog_stream_info_t si = describe(lg, "c");
    slog_read_t rd = {0};
    assert_int_equal(slog_shard_split(lg, "c", 0, H127 >> 1, &e), 0);   /* -> 2, 3 */
    assert_int_equal(slog_read(lg, si.id, 0, 0, 50, 1 << 20, &rd, NULL, NULL, NULL), 0);
    assert_int_equal(slog_shard_merge(lg, "c", 3, 1, &e), 0);           /* -> 4 */
    assert_int_equal(slog_stream_scale(lg, "c", 4, &old, &e), 0);       /* -> 5..8 */
    assert_int_equal(old, 2);
    assert_int_equal(slog_shard_split(lg, "c", 7, (H127 >> 1) * 3 - 5, &e), 0);
    assert_int_equal(slog_stream_scale(lg, "c", 3, &old, &e), 0);
    atomic_store(&p->stop, 1);
    pthread_join(th, NULL);
    slog_read_free(&rd);
    slog_stream_info_free(&si);

    si = describe(lg, "c");
    size_t total = 0;
    got_t **g = calloc(si.n_shards, sizeof *g);
    size_t *gn = calloc(si.n_shards, sizeof *gn);
    for (uint32_t s = 0; s < si.n_shards; s++) {
        uint64_t ce;
        g[s] = read_shard(lg, si.id, s, &gn[s], &ce);
        if (si.shards[s].closed) {
            assert_int_equal(ce, si.shards[s].seq_end);
            assert_int_equal(gn[s], si.shards[s].seq_end);
        }
        total += gn[s];
    }
    assert_int_equal(p->w.rc, 0);
    assert_int_equal(total, p->n);
    print_message("%zu records put while resharding, %u shards\n", p->n, si.n_shards);
    uint32_t last_shard[RC_KEYS];
    uint64_t last_seq[RC_KEYS];
    int seen[RC_KEYS] = {0};
    for (size_t i = 0; i < p->n; i++) {
        slog_put_rec_t *r = &p->recs[i];
        assert_int_equal(r->rc, 0);
        slog_shard_info_t *s = &si.shards[r->shard];
        assert_true(r->hash >= s->hash_start && r->hash <= s->hash_end);
        assert_true(r->seq < gn[r->shard]);
        assert_string_equal(g[r->shard][r->seq].pk, p->pk[i]);
        int key = (int)(i % RC_KEYS);
        if (seen[key]) {
            /* same shard later in it, or a younger shard (children have larger indexes) */
            assert_true(r->shard > last_shard[key] ||
                        (r->shard == last_shard[key] && r->seq > last_seq[key]));
        }
        seen[key] = 1;
        last_shard[key] = r->shard;
        last_seq[key] = r->seq;
    }
    for (uint32_t s = 0; s < si.n_shards; s++) got_free(g[s], gn[s]);
    free(g);
    free(gn);
    free(p->recs);
    free(p->pk);
    free(p);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* Deleting a stream while a reader works on it: the reader gets its records or TR_ENOTFOUND,
 * never a crash; the directory goes once both are done. */
typedef struct del_reader {
    slog_t *lg;
    uint64_t id;
    int reads, notfound;
} del_reader_t;

static void *del_reader_main(void *arg) {
    del_reader_t *d = arg;
    slog_read_t rd = {0};
    for (;;) {
        int rc = slog_read(d->lg, d->id, (uint32_t)(d->reads % 2), 0, 1000, 1 << 20, &rd, NULL,
                           NULL, NULL);
        if (rc == TR_ENOTFOUND) {
            d->notfound = 1;
            break;
        }
        assert_int_equal(rc, 0);
        d->reads++;
    }
    slog_read_free(&rd);
    return NULL;
}

static void test_delete_while_reading(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "d", 2);
    slog_put_rec_t r[100];
    char pks[100][16];
    put_keys(lg, "d", 0, 100, r, pks);
    slog_stream_info_t si = describe(lg, "d");
    del_reader_t d = {lg, si.id, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, del_reader_main, &d), 0);
    /* queued puts complete before the delete */
    waiter_t w;
    waiter_init(&w);
    assert_int_equal(slog_put(lg, "d", r, 10, waiter_cb, &w, NULL), 0);
    assert_int_equal(slog_stream_delete(lg, "d", NULL), 0);
    assert_int_equal(waiter_calls(&w), 1);
    assert_int_equal(w.rc, 0);
    pthread_join(th, NULL);
    assert_int_equal(d.notfound, 1);
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/streams/%" PRIu64, dir, si.id);
    assert_int_equal(stat(path, &sb), -1);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* Orphan directories (crash between mkdir and metadata commit) are removed at open. */
static void test_orphans_removed(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "k", 1);
    slog_stream_info_t si = describe(lg, "k");
    slog_close(lg);
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s/streams/%" PRIu64 "/7", dir, si.id);
    snprintf(p2, sizeof p2, "%s/streams/999", dir);
    snprintf(p3, sizeof p3, "%s/streams/%" PRIu64 "/0", dir, si.id);
    assert_int_equal(mkdir(p1, 0755), 0);
    assert_int_equal(mkdir(p2, 0755), 0);
    lg = open_at(dir, &o);
    struct stat sb;
    assert_int_equal(stat(p1, &sb), -1);
    assert_int_equal(stat(p2, &sb), -1);
    assert_int_equal(stat(p3, &sb), 0);
    /* new ids never collide with old ones */
    create(lg, "k2", 1);
    slog_stream_info_t s2 = describe(lg, "k2");
    assert_true(s2.id > si.id);
    slog_stream_info_free(&s2);
    slog_stream_info_free(&si);
    slog_close(lg);
}

/* Issue #8: a shard whose log cannot be opened does not stop the engine: it is failed (its
 * requests answer an error naming it), the other shards serve, /metrics counts it. */
static void test_failed_shard(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "f", 2);
    slog_put_rec_t r[20];
    char pks[20][8];
    int on[2] = {0, 0};
    for (int i = 0; i < 20; i++) {
        snprintf(pks[i], sizeof pks[i], "k%d", i);
        rec_set(&r[i], pks[i], "payload");
    }
    assert_int_equal(put_sync(lg, "f", r, 20), 0);
    for (int i = 0; i < 20; i++) on[r[i].shard]++;
    assert_true(on[0] > 0 && on[1] > 0);
    slog_stream_info_t si = describe(lg, "f");
    uint64_t id = si.id;
    slog_stream_info_free(&si);
    slog_close(lg);

    /* shard 0's segment becomes unreadable (a directory in its place: EISDIR) */
    char seg[512];
    snprintf(seg, sizeof seg, "%s/streams/%" PRIu64 "/0/%020d.seg", dir, id, 0);
    assert_int_equal(unlink(seg), 0);
    assert_int_equal(mkdir(seg, 0755), 0);

    lg = open_at(dir, &o); /* fails the test if the engine does not open */
    slog_read_t rd = {0};
    tr_err e = {0, ""};
    assert_int_equal(slog_read(lg, id, 1, 0, 100, 1 << 20, &rd, NULL, NULL, &e), 0);
    assert_int_equal(rd.n, (size_t)on[1]);
    int rc = slog_read(lg, id, 0, 0, 100, 1 << 20, &rd, NULL, NULL, &e);
    assert_true(rc < 0);
    assert_non_null(strstr(e.msg, "shardId-000000000000"));
    assert_non_null(strstr(e.msg, "Fix:"));
    uint64_t b, en, at;
    assert_true(slog_position(lg, id, 0, 0, &b, &en, &at, &e) < 0);
    assert_int_equal(slog_position(lg, id, 1, 0, &b, &en, &at, &e), 0);
    /* puts: the failed shard's records fail, the other shard's succeed */
    slog_put_rec_t p0, p1;
    int i0 = -1, i1 = -1;
    for (int i = 0; i < 20; i++) {
        if (r[i].shard == 0 && i0 < 0) i0 = i;
        if (r[i].shard == 1 && i1 < 0) i1 = i;
    }
    rec_set(&p0, pks[i0], "again");
    rec_set(&p1, pks[i1], "again");
    assert_true(put_sync(lg, "f", &p0, 1) < 0);
    assert_int_equal(put_sync(lg, "f", &p1, 1), 0);
    assert_int_equal(p1.shard, 1);
    /* why a put to it failed: the shard's message, as its reads answer */
    assert_true(slog_shard_status(lg, "f", 0, &e) < 0);
    assert_non_null(strstr(e.msg, "shardId-000000000000"));
    assert_non_null(strstr(e.msg, "Fix:"));
    assert_int_equal(slog_shard_status(lg, "f", 1, &e), 0);
    assert_int_equal(slog_shard_status(lg, "f", 7, &e), TR_ENOTFOUND);
    assert_int_equal(slog_shard_status(lg, "nope", 0, &e), TR_ENOTFOUND);
    /* resharding it is refused */
    assert_true(slog_shard_split(lg, "f", 0, (slog_hash_t)1 << 100, &e) < 0);
    assert_non_null(strstr(e.msg, "shardId-000000000000"));
    tr_buf m = TR_BUF_INIT;
    slog_metrics_prometheus(lg, &m);
    assert_non_null(strstr(m.data, "\ntributary_stream_failed_shards 1\n"));
    assert_non_null(strstr(m.data, "tributary_stream_failed_shards{stream=\"f\","
                                   "shard=\"shardId-000000000000\"} 1"));
    assert_non_null(strstr(m.data, "tributary_stream_lost_records_total 0\n"));
    tr_buf_free(&m);
    slog_read_free(&rd);
    slog_close(lg);
}

/* Issue #8 (leftover of item 4): a shard directory deleted as a whole does not make sequence
 * numbers restart from the shard's starting number (the metadata keeps a copy of the
 * high-water mark); the loss is reported (/metrics). */
static void test_deleted_shard_dir(void **state) {
    const char *dir = *state;
    slog_opts_t o = fast_opts();
    slog_t *lg = open_at(dir, &o);
    create(lg, "h", 1);
    slog_put_rec_t r[20];
    char pks[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(pks[i], sizeof pks[i], "k%d", i);
        rec_set(&r[i], pks[i], "payload");
    }
    assert_int_equal(put_sync(lg, "h", r, 20), 0);
    uint64_t last = 0;
    for (int i = 0; i < 20; i++)
        if (r[i].seq > last) last = r[i].seq;
    slog_stream_info_t si = describe(lg, "h");
    uint64_t id = si.id;
    slog_stream_info_free(&si);
    slog_close(lg);

    char sd[512];
    tr_err e = {0, ""};
    snprintf(sd, sizeof sd, "%s/streams/%" PRIu64 "/0", dir, id);
    assert_int_equal(slog_shard_destroy_dir(sd, &e), 0);
    for (int round = 0; round < 2; round++) { /* and again after a restart */
        lg = open_at(dir, &o);
        slog_put_rec_t p;
        rec_set(&p, pks[0], "after");
        assert_int_equal(put_sync(lg, "h", &p, 1), 0);
        assert_true(p.seq > last);
        last = p.seq;
        tr_buf m = TR_BUF_INIT;
        slog_metrics_prometheus(lg, &m);
        assert_non_null(strstr(m.data, round ? "\ntributary_stream_missing_segments_total 0\n"
                                             : "\ntributary_stream_missing_segments_total 1\n"));
        tr_buf_free(&m);
        slog_close(lg);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_format_parse),
        cmocka_unit_test(test_hash_format_parse),
        TU_DIR_TEST(test_create_describe),
        TU_DIR_TEST(test_list_pagination),
        TU_DIR_TEST(test_delete_recreate),
        TU_DIR_TEST(test_name_and_limit_errors),
        TU_DIR_TEST(test_retention_bounds),
        TU_DIR_TEST(test_tags),
        TU_DIR_TEST(test_put_read_roundtrip),
        TU_DIR_TEST(test_concurrent_putters),
        TU_DIR_TEST(test_close_drains_and_reopen),
        TU_DIR_TEST(test_admission_and_hook),
        TU_DIR_TEST(test_put_one_shard_fails),
        TU_DIR_TEST(test_split),
        TU_DIR_TEST(test_merge),
        TU_DIR_TEST(test_scale),
        TU_DIR_TEST(test_reshard_under_load),
        TU_DIR_TEST(test_delete_while_reading),
        TU_DIR_TEST(test_orphans_removed),
        TU_DIR_TEST(test_failed_shard),
        TU_DIR_TEST(test_deleted_shard_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
