/* SPDX-License-Identifier: Apache-2.0
 *
 * test_tbl_durable.c -- the table engine acknowledges a write only once the disk has it.
 *
 * LMDB commits by writing the data pages, syncing them, then writing the meta page (through an
 * O_DSYNC descriptor, or followed by a sync).  This binary interposes pwrite / fdatasync / fsync
 * (liblmdb.so calls them through the dynamic linker, so the definitions below win) and records
 * the order of meta-page writes (file offsets below two pages) and of syncs.  A write callback
 * that runs while the meta page of its commit is still unsynced would be an acknowledgement a
 * power cut could take back: the tests fail on it.
 *
 * The same interposers inject faults: armed with a count k, the k-th write or sync LMDB makes
 * fails with EIO or ENOSPC (once, or from then on).  For every k of a sequence of PutItem,
 * UpdateItem, TransactWriteItems and BatchWriteItem-style writes, the engine is reopened and
 * its contents compared with a model holding exactly the acknowledged writes: an acknowledged
 * write is there, a refused one left nothing (no half-applied transaction or batch).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "table/tbl.h"
#include "testutil.h"

/* ---- the I/O journal ----------------------------------------------------------------------- */

static atomic_long g_seq;         /* event counter */
static atomic_long g_meta_last;   /* seq of the latest meta-page write */
static atomic_long g_meta_prev;   /* seq of the one before it */
static atomic_long g_sync_last;   /* seq of the latest completed sync */
static atomic_long g_syncs;

/* Descriptors LMDB has written through: only syncs of those count (not a directory fsync). */
static atomic_int g_fds[8];

static int lmdb_fd(int fd) {
    for (int i = 0; i < 8; i++)
        if (atomic_load(&g_fds[i]) == fd + 1) return 1;
    return 0;
}

static void note_sync(void) {
    atomic_store(&g_sync_last, atomic_fetch_add(&g_seq, 1) + 1);
    atomic_fetch_add(&g_syncs, 1);
}

static void note_write(int fd, off_t off, size_t n) {
    if (!lmdb_fd(fd))
        for (int i = 0; i < 8; i++) {
            int none = 0;
            if (atomic_compare_exchange_strong(&g_fds[i], &none, fd + 1)) break;
        }
    long meta_end = 2 * sysconf(_SC_PAGESIZE);
    if (off >= meta_end || n == 0) return;
    long s = atomic_fetch_add(&g_seq, 1) + 1;
    atomic_store(&g_meta_prev, atomic_load(&g_meta_last));
    atomic_store(&g_meta_last, s);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_DSYNC)) note_sync();   /* the write returned once on disk */
}

/* Fault injection: while g_fault_at > 0, each write or sync on an LMDB descriptor counts; the
 * g_fault_at-th fails with g_fault_errno, and so does every later one when g_fault_sticky. */
static atomic_long g_io_calls;     /* LMDB writes and syncs since the counter was reset */
static atomic_long g_fault_at;     /* 0: off */
static atomic_int g_fault_errno;
static atomic_int g_fault_sticky;
static atomic_long g_faults;       /* calls failed */

static int fault(int fd) {
    if (!lmdb_fd(fd)) return 0;
    long n = atomic_fetch_add(&g_io_calls, 1) + 1, at = atomic_load(&g_fault_at);
    if (at <= 0 || n < at || (n > at && !atomic_load(&g_fault_sticky))) return 0;
    atomic_fetch_add(&g_faults, 1);
    errno = atomic_load(&g_fault_errno);
    return 1;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    if (fault(fd)) return -1;
    ssize_t r = syscall(SYS_pwrite64, fd, buf, n, off);
    if (r > 0) note_write(fd, off, (size_t)r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

/* LMDB writes runs of contiguous pages with lseek + writev (and the odd write). */
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    if (fault(fd)) return -1;
    return syscall(SYS_writev, fd, iov, cnt);
}

ssize_t write(int fd, const void *buf, size_t n) {
    if (fault(fd)) return -1;
    return syscall(SYS_write, fd, buf, n);
}

int fdatasync(int fd) {
    if (fault(fd)) return -1;
    int r = (int)syscall(SYS_fdatasync, fd);
    if (!r && lmdb_fd(fd)) note_sync();
    return r;
}

int fsync(int fd) {
    if (fault(fd)) return -1;
    int r = (int)syscall(SYS_fsync, fd);
    if (!r && lmdb_fd(fd)) note_sync();
    return r;
}

/* ---- fixtures ------------------------------------------------------------------------------ */

/* Open the engine on the test's directory (the TU_DIR_TEST fixture's) with table "dur". */
static tbl_t *open_tmp(const char *dir, uint32_t max_batch) {
    tbl_opts_t o = {0};
    o.max_batch = max_batch;
    o.ttl_interval_ms = -1;
    o.map_size = (size_t)1 << 28;
    tbl_t *db = NULL;
    tr_err e = {0, ""};
    if (tbl_open(dir, &o, &db, &e)) fail_msg("tbl_open: %s", e.msg);
    tbl_attrdef_t a[1] = {{.name = (char *)"pk", .type = TBL_T_S}};
    tbl_table_info_t def = {0};
    def.name = (char *)"dur";
    def.hash = (char *)"pk";
    def.attrs = a;
    def.n_attrs = 1;
    def.billing = TBL_BILLING_PAY_PER_REQUEST;
    if (tbl_table_create(db, &def, NULL, &e)) fail_msg("create: %s", e.msg);
    /* a control change is durable before its call returns */
    assert_true(atomic_load(&g_sync_last) > atomic_load(&g_meta_last));
    return db;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long done, failed, early, pipelined, uncommitted;
    long meta_at_submit;        /* g_meta_last when the first write was submitted */
} acks_t;

static void on_done(void *arg, int rc) {
    acks_t *a = arg;
    long sync = atomic_load(&g_sync_last), prev = atomic_load(&g_meta_prev),
         last = atomic_load(&g_meta_last);
    pthread_mutex_lock(&a->mu);
    if (rc) a->failed++;
    if (sync < prev) a->early++;            /* an older commit's meta page was never synced */
    if (sync < last) a->pipelined++;        /* acknowledged while the newest commit is unsynced */
    if (last <= a->meta_at_submit) a->uncommitted++;   /* no commit since the submission */
    a->done++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static json_t *item(long i) {
    char pk[32];
    snprintf(pk, sizeof pk, "k%ld", i);
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "v", "S", "some value");
}

/* ---- tests --------------------------------------------------------------------------------- */

/* One write at a time: nothing follows a commit to carry its meta sync, so the writer must sync
 * before it acknowledges. */
static void test_lone_write_is_synced_before_ack(void **state) {
    tbl_t *db = open_tmp(*state, 0);
    for (long i = 0; i < 20; i++) {
        acks_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0,
                    atomic_load(&g_meta_last)};
        json_t *it = item(i);
        tbl_write_t w = {.op = TBL_OP_PUT, .table = "dur", .item = it};
        tr_err e = {0, ""};
        if (tbl_write_submit(db, &w, 1, on_done, &a, &e)) fail_msg("submit: %s", e.msg);
        pthread_mutex_lock(&a.mu);
        while (!a.done) pthread_cond_wait(&a.cv, &a.mu);
        pthread_mutex_unlock(&a.mu);
        assert_int_equal(a.failed, 0);
        /* the callback saw every meta page synced, including its own commit's */
        assert_int_equal(a.pipelined, 0);
        assert_int_equal(a.early, 0);
        assert_int_equal(a.uncommitted, 0);
        json_decref(it);
    }
    tbl_close(db);
}

/* A burst in batches of 16 (many commits back to back): no write is acknowledged before the
 * meta page of its commit is on disk, and the commits are grouped (fewer syncs than writes). */
static void test_burst_acks_follow_syncs(void **state) {
    tbl_t *db = open_tmp(*state, 16);
    enum { N = 4000 };
    static tbl_write_t w[N];
    static json_t *items[N];
    acks_t a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0,
                atomic_load(&g_meta_last)};
    long syncs0 = atomic_load(&g_syncs);
    for (long i = 0; i < N; i++) {
        items[i] = item(i);
        w[i] = (tbl_write_t){.op = TBL_OP_PUT, .table = "dur", .item = items[i]};
        tr_err e = {0, ""};
        if (tbl_write_submit(db, &w[i], 1, on_done, &a, &e)) fail_msg("submit: %s", e.msg);
    }
    pthread_mutex_lock(&a.mu);
    while (a.done < N) pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    long syncs = atomic_load(&g_syncs) - syncs0;
    assert_int_equal(a.failed, 0);
    assert_int_equal(a.early, 0);
    assert_int_equal(a.pipelined, 0);
    assert_int_equal(a.uncommitted, 0);
    assert_true(syncs > 0);
    assert_true(syncs < N);                  /* group commit */
    for (long i = 0; i < N; i++) json_decref(items[i]);
    tbl_close(db);
}

/* ---- fault injection ----------------------------------------------------------------------- */

/* What the table should hold: the writes that were acknowledged, applied in order. */
static const char *const m_keys[] = {"p1", "u1", "t1", "t2", "b1", "b2"};
enum { M_N = 6 };
typedef struct model {
    int present[M_N];
    int v[M_N];
    char g[M_N][4];     /* "" when the item has no g (not in the index) */
} model_t;

static int m_idx(const char *pk) {
    for (int i = 0; i < M_N; i++)
        if (!strcmp(m_keys[i], pk)) return i;
    fail_msg("unknown key %s", pk);
    return -1;
}

static void m_put(model_t *m, const char *pk, int v, const char *g) {
    int i = m_idx(pk);
    m->present[i] = 1;
    m->v[i] = v;
    snprintf(m->g[i], sizeof m->g[i], "%s", g);
}

/* SET v = v [, g = g]: creates the item when absent (then without g unless set). */
static void m_set(model_t *m, const char *pk, int v, const char *g) {
    int i = m_idx(pk);
    if (!m->present[i]) m->g[i][0] = 0;
    m->present[i] = 1;
    m->v[i] = v;
    if (g) snprintf(m->g[i], sizeof m->g[i], "%s", g);
}

static void m_del(model_t *m, const char *pk) { m->present[m_idx(pk)] = 0; }

static json_t *ft_item(const char *pk, int v, const char *g) {
    char n[16];
    snprintf(n, sizeof n, "%d", v);
    json_t *it = json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "v", "N", n);
    assert_non_null(it);
    if (g && *g) json_object_set_new(it, "g", json_pack("{s:s}", "S", g));
    return it;
}

static json_t *ft_key(const char *pk) { return json_pack("{s:{s:s}}", "pk", "S", pk); }

/* SET v = :v [, g = :g] as a parsed update; *holder keeps its values map alive. */
static tbl_expr_t *ft_set(int v, const char *g, json_t **holder) {
    char n[16];
    snprintf(n, sizeof n, "%d", v);
    *holder = json_pack("{s:{s:s}}", ":v", "N", n);
    if (g) json_object_set_new(*holder, ":g", json_pack("{s:s}", "S", g));
    tbl_expr_t *e = NULL;
    tr_err err = {0, ""};
    if (tbl_expr_parse(TBL_EXPR_UPDATE, g ? "SET v = :v, g = :g" : "SET v = :v", NULL, *holder,
                       NULL, &e, &err))
        fail_msg("update: %s", err.msg);
    return e;
}

static tbl_t *ft_open(const char *dir, int create) {
    tbl_opts_t o = {0};
    o.ttl_interval_ms = -1;
    o.map_size = (size_t)1 << 28;
    tbl_t *db = NULL;
    tr_err e = {0, ""};
    if (tbl_open(dir, &o, &db, &e)) fail_msg("tbl_open: %s", e.msg);
    if (!create) return db;
    tbl_attrdef_t a[2] = {{.name = (char *)"pk", .type = TBL_T_S},
                          {.name = (char *)"g", .type = TBL_T_S}};
    tbl_index_info_t ix = {.name = (char *)"byG", .hash = (char *)"g", .projection = TBL_PROJ_ALL};
    tbl_table_info_t def = {0};
    def.name = (char *)"flt";
    def.hash = (char *)"pk";
    def.attrs = a;
    def.n_attrs = 2;
    def.indexes = &ix;
    def.n_indexes = 1;
    def.billing = TBL_BILLING_PAY_PER_REQUEST;
    if (tbl_table_create(db, &def, NULL, &e)) fail_msg("create: %s", e.msg);
    return db;
}

/* The write sequence; the model gets the acknowledged ones.  Returns the number refused. */
static int ft_run(tbl_t *db, model_t *m) {
    int refused = 0;
    tr_err e = {0, ""};
    /* PutItem */
    json_t *p1 = ft_item("p1", 1, "a");
    tbl_write_t w1 = {.op = TBL_OP_PUT, .table = "flt", .item = p1};
    if (tbl_sync_write(db, &w1, 1, &e) == 0) m_put(m, "p1", 1, "a");
    else refused++;
    json_decref(p1);
    /* UpdateItem creating an item with an index key */
    json_t *hold, *ku1 = ft_key("u1");
    tbl_expr_t *set = ft_set(2, "b", &hold);
    tbl_write_t w2 = {.op = TBL_OP_UPDATE, .table = "flt", .key = ku1, .update = set};
    if (tbl_sync_write(db, &w2, 1, &e) == 0) m_set(m, "u1", 2, "b");
    else refused++;
    tbl_expr_free(set);
    json_decref(hold);
    /* TransactWriteItems: two puts and an update */
    json_t *t1 = ft_item("t1", 3, ""), *t2 = ft_item("t2", 3, "a"), *kp1 = ft_key("p1");
    set = ft_set(3, NULL, &hold);
    tbl_write_t tw[3] = {{.op = TBL_OP_PUT, .table = "flt", .item = t1},
                         {.op = TBL_OP_PUT, .table = "flt", .item = t2},
                         {.op = TBL_OP_UPDATE, .table = "flt", .key = kp1, .update = set}};
    tbl_txn_t t = {.w = tw, .n = 3};
    if (tbl_sync_txn(db, &t, &e) == 0 && t.rc == 0) {
        m_put(m, "t1", 3, "");
        m_put(m, "t2", 3, "a");
        m_set(m, "p1", 3, NULL);
    } else {
        refused++;
    }
    tbl_expr_free(set);
    json_decref(hold);
    /* BatchWriteItem: two puts and a delete, all or nothing */
    json_t *b1 = ft_item("b1", 4, "b"), *b2 = ft_item("b2", 4, "");
    tbl_write_t bw[3] = {{.op = TBL_OP_PUT, .table = "flt", .item = b1},
                         {.op = TBL_OP_PUT, .table = "flt", .item = b2},
                         {.op = TBL_OP_DELETE, .table = "flt", .key = ku1}};
    int brc = tbl_sync_write(db, bw, 3, &e);
    int ok = (bw[0].rc == 0) + (bw[1].rc == 0) + (bw[2].rc == 0);
    if (brc == 0) assert_int_equal(ok, 3);
    else if (ok) fail_msg("batch rc %d (%s) with %d writes rc 0", brc, e.msg, ok);
    if (brc == 0) {
        m_put(m, "b1", 4, "b");
        m_put(m, "b2", 4, "");
        m_del(m, "u1");
    } else {
        refused++;
    }
    /* PutItem replacing an item (its index entry goes) */
    p1 = ft_item("p1", 5, "");
    tbl_write_t w5 = {.op = TBL_OP_PUT, .table = "flt", .item = p1};
    if (tbl_sync_write(db, &w5, 1, &e) == 0) m_put(m, "p1", 5, "");
    else refused++;
    json_decref(p1);
    for (int i = 0; i < 3; i++) {
        json_decref(tw[i].attrs);
        json_decref(bw[i].attrs);
    }
    json_decref(t1);
    json_decref(t2);
    json_decref(b1);
    json_decref(b2);
    json_decref(kp1);
    json_decref(ku1);
    return refused;
}

/* The reopened table holds exactly the model: items, values, and index entries. */
static void ft_verify(tbl_t *db, const model_t *m, const char *what) {
    tr_err e = {0, ""};
    tbl_query_t q = {.table = "flt", .scan = 1};
    if (tbl_query(db, &q, &e)) fail_msg("%s: scan: %s", what, e.msg);
    int seen[M_N] = {0}, n_model = 0, n_g = 0;
    for (size_t i = 0; i < json_array_size(q.items); i++) {
        json_t *it = json_array_get(q.items, i);
        const char *pk = json_string_value(json_object_get(json_object_get(it, "pk"), "S"));
        int k = m_idx(pk);
        seen[k] = 1;
        if (!m->present[k]) fail_msg("%s: %s is stored but its write was refused", what, pk);
        int v = atoi(json_string_value(json_object_get(json_object_get(it, "v"), "N")));
        const char *g = json_string_value(json_object_get(json_object_get(it, "g"), "S"));
        if (v != m->v[k] || strcmp(g ? g : "", m->g[k]))
            fail_msg("%s: %s is v=%d g=%s, acknowledged v=%d g=%s", what, pk, v, g ? g : "",
                     m->v[k], m->g[k]);
    }
    for (int k = 0; k < M_N; k++) {
        if (m->present[k] && !seen[k]) fail_msg("%s: acknowledged %s is missing", what, m_keys[k]);
        n_model += m->present[k];
        n_g += m->present[k] && m->g[k][0];
    }
    assert_int_equal(json_array_size(q.items), n_model);
    tbl_query_free(&q);
    tbl_query_t qi = {.table = "flt", .index = "byG", .scan = 1, .select = TBL_SELECT_COUNT};
    if (tbl_query(db, &qi, &e)) fail_msg("%s: index scan: %s", what, e.msg);
    if ((int)qi.count != n_g) fail_msg("%s: index has %u entries, want %d", what, qi.count, n_g);
    tbl_query_free(&qi);
}

/* One run with the k-th LMDB write/sync failing (k = 0: none).  Returns the I/O calls made. */
static long ft_case(long k, int err, int sticky, int *refused) {
    char *dir = tu_tmpdir("test_tbl_fault");
    tbl_t *db = ft_open(dir, 1);
    model_t m;
    memset(&m, 0, sizeof m);
    atomic_store(&g_fault_errno, err);
    atomic_store(&g_fault_sticky, sticky);
    atomic_store(&g_io_calls, 0);
    atomic_store(&g_fault_at, k);
    *refused = ft_run(db, &m);
    long calls = atomic_load(&g_io_calls);
    tbl_close(db);
    atomic_store(&g_fault_at, 0);
    char what[64];
    snprintf(what, sizeof what, "fault at %ld (%s%s)", k, strerror(err), sticky ? ", sticky" : "");
    db = ft_open(dir, 0);
    ft_verify(db, &m, what);
    tbl_close(db);
    tu_tmpdir_done(dir);
    return calls;
}

/* Every write and sync of the sequence fails in turn (EIO once, ENOSPC from then on): after a
 * reopen the table holds exactly the acknowledged writes. */
static void test_faults_at_every_io(void **state) {
    (void)state;
    int refused = 0;
    long n = ft_case(0, EIO, 0, &refused);
    assert_int_equal(refused, 0);
    assert_true(n > 5);
    long faulted = 0, refusals = 0;
    for (long k = 1; k <= n; k++) {
        static const int errs[2] = {EIO, ENOSPC};
        for (int mode = 0; mode < 2; mode++) {
            long f0 = atomic_load(&g_faults);
            ft_case(k, errs[mode], mode, &refused);
            faulted += atomic_load(&g_faults) > f0;
            refusals += refused;
        }
    }
    /* the faults hit and were reported (not swallowed) */
    assert_int_equal(faulted, 2 * n);
    assert_true(refusals >= 2 * n);
    print_message("fault injection: %ld I/O points x 2 modes, %ld writes refused\n", n, refusals);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TU_DIR_TEST(test_lone_write_is_synced_before_ack),
        TU_DIR_TEST(test_burst_acks_follow_syncs),
        cmocka_unit_test(test_faults_at_every_io),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
