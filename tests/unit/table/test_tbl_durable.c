/*
 * test_tbl_durable.c -- the table engine acknowledges a write only once the disk has it.
 *
 * LMDB commits by writing the data pages, syncing them, then writing the meta page (through an
 * O_DSYNC descriptor, or followed by a sync).  This binary interposes pwrite / fdatasync / fsync
 * (liblmdb.so calls them through the dynamic linker, so the definitions below win) and records
 * the order of meta-page writes (file offsets below two pages) and of syncs.  A write callback
 * that runs while the meta page of its commit is still unsynced would be an acknowledgement a
 * power cut could take back: the tests fail on it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "table/tbl.h"

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

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    ssize_t r = syscall(SYS_pwrite64, fd, buf, n, off);
    if (r > 0) note_write(fd, off, (size_t)r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

int fdatasync(int fd) {
    int r = (int)syscall(SYS_fdatasync, fd);
    if (!r && lmdb_fd(fd)) note_sync();
    return r;
}

int fsync(int fd) {
    int r = (int)syscall(SYS_fsync, fd);
    if (!r && lmdb_fd(fd)) note_sync();
    return r;
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w) {
    (void)sb, (void)f, (void)w;
    remove(p);
    return 0;
}

static tbl_t *open_tmp(char *dir, uint32_t max_batch) {
    assert_non_null(mkdtemp(dir));
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

static void close_tmp(tbl_t *db, char *dir) {
    tbl_close(db);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
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
    (void)state;
    char dir[] = "/tmp/test_tbl_durable.XXXXXX";
    tbl_t *db = open_tmp(dir, 0);
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
    close_tmp(db, dir);
}

/* A burst in batches of 16 (many commits back to back): no write is acknowledged before the
 * meta page of its commit is on disk, and the commits are grouped (fewer syncs than writes). */
static void test_burst_acks_follow_syncs(void **state) {
    (void)state;
    char dir[] = "/tmp/test_tbl_durable.XXXXXX";
    tbl_t *db = open_tmp(dir, 16);
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
    close_tmp(db, dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lone_write_is_synced_before_ack),
        cmocka_unit_test(test_burst_acks_follow_syncs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
