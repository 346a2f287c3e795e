/*
 * test_wal.c -- the table store's write-ahead log (wal.h) and the engine's recovery through it
 * (tbl.c "Durability"): records round-trip, torn tails are truncated, damage before newer
 * segments fails loudly, checkpoints are atomic; and a table store killed under write load,
 * or left as a power loss could leave its data file (any mix of page versions, newest meta
 * pages pointing at pages never written), recovers every acknowledged write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/tlog.h"
#include "table/tbl.h"
#include "table/wal.h"

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w) {
    (void)sb, (void)f, (void)w;
    remove(p);
    return 0;
}

static char *tmp_dir(void) {
    char *d = strdup("/tmp/test_wal.XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void tmp_done(char *d) {
    nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

/* ---- the log itself ------------------------------------------------------------------------ */

typedef struct seen {
    int n;
    uint64_t lsn[64];
    char text[64][32];
} seen_t;

static int collect(void *arg, uint8_t type, uint64_t lsn, const uint8_t *p, size_t n) {
    seen_t *s = arg;
    assert_int_equal(type, 7);
    assert_true(s->n < 64 && n < 32);
    s->lsn[s->n] = lsn;
    memcpy(s->text[s->n], p, n);
    s->text[s->n][n] = '\0';
    s->n++;
    return 0;
}

static void append_str(tbl_wal_t *w, const char *a, const char *b) {
    tr_err e = {0, ""};
    if (tbl_wal_append(w, 7, a, strlen(a), b, b ? strlen(b) : 0, NULL, &e)) fail_msg("%s", e.msg);
}

static tbl_wal_t *reopen(const char *dir, seen_t *s, uint64_t from, tr_err *e) {
    tbl_wal_t *w = NULL;
    assert_int_equal(tbl_wal_open(dir, &w, e), 0);
    memset(s, 0, sizeof *s);
    int rc = tbl_wal_replay(w, from, collect, s, e);
    if (rc) {
        tbl_wal_close(w);
        return NULL;
    }
    return w;
}

static void test_roundtrip_and_segments(void **state) {
    (void)state;
    char *dir = tmp_dir();
    tr_err e = {0, ""};
    seen_t s;
    tbl_wal_t *w = reopen(dir, &s, 1, &e);
    assert_non_null(w);
    assert_int_equal(s.n, 0);
    append_str(w, "one", NULL);
    append_str(w, "tw", "o");
    uint64_t seg;
    assert_int_equal(tbl_wal_rotate(w, &seg, &e), 0);
    append_str(w, "three", NULL);
    assert_int_equal(tbl_wal_sync(w, &e), 0);
    tbl_wal_close(w);

    w = reopen(dir, &s, 1, &e);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.text[1], "two");
    assert_int_equal(s.lsn[0] + 2, s.lsn[2]);
    tbl_wal_close(w);
    /* from the second segment only; then drop the first */
    w = reopen(dir, &s, seg, &e);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.text[0], "three");
    assert_int_equal(tbl_wal_drop_before(w, seg, &e), 0);
    append_str(w, "four", NULL);   /* LSNs continue after a replay */
    tbl_wal_close(w);
    w = reopen(dir, &s, 1, &e);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.text[1], "four");
    assert_int_equal(s.lsn[0] + 1, s.lsn[1]);
    tbl_wal_close(w);
    tmp_done(dir);
}

/* Path of the newest segment. */
static void newest_segment(const char *dir, char *out, size_t n) {
    char best[64] = "";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s | grep '\\.wal$' | sort | tail -n 1", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(best, sizeof best, p));
    pclose(p);
    best[strcspn(best, "\n")] = '\0';
    snprintf(out, n, "%s/%s", dir, best);
}

static void test_torn_tail(void **state) {
    (void)state;
    char *dir = tmp_dir();
    tr_err e = {0, ""};
    seen_t s;
    tbl_wal_t *w = reopen(dir, &s, 1, &e);
    append_str(w, "kept", NULL);
    append_str(w, "torn", NULL);
    tbl_wal_close(w);
    char seg[512];
    newest_segment(dir, seg, sizeof seg);
    struct stat st;
    assert_int_equal(stat(seg, &st), 0);
    /* cut the second record short, as a crash mid-write would */
    assert_int_equal(truncate(seg, st.st_size - 2), 0);
    w = reopen(dir, &s, 1, &e);
    assert_non_null(w);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.text[0], "kept");
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(st.st_size, 20 + 4);      /* truncated to the good record */
    tbl_wal_close(w);

    /* a flipped byte in the newest segment's last record: also a torn tail */
    w = reopen(dir, &s, 1, &e);
    append_str(w, "flipped", NULL);
    tbl_wal_close(w);
    newest_segment(dir, seg, sizeof seg);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 20 + 2), 1);
    close(fd);
    w = reopen(dir, &s, 1, &e);
    assert_non_null(w);
    assert_int_equal(s.n, 1);
    tbl_wal_close(w);
    tmp_done(dir);
}

static void test_damage_before_newer_segments(void **state) {
    (void)state;
    char *dir = tmp_dir();
    tr_err e = {0, ""};
    seen_t s;
    tbl_wal_t *w = reopen(dir, &s, 1, &e);
    append_str(w, "first", NULL);
    char seg[512];
    newest_segment(dir, seg, sizeof seg);
    uint64_t n;
    assert_int_equal(tbl_wal_rotate(w, &n, &e), 0);
    append_str(w, "second", NULL);
    tbl_wal_close(w);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 21), 1);
    close(fd);
    w = reopen(dir, &s, 1, &e);
    assert_null(w);
    assert_int_equal(e.code, TR_ECORRUPT);
    assert_non_null(strstr(e.msg, "corrupt"));
    tmp_done(dir);
}

static void test_checkpoint_blob(void **state) {
    (void)state;
    char *dir = tmp_dir();
    tr_err e = {0, ""};
    tbl_wal_t *w = NULL;
    assert_int_equal(tbl_wal_open(dir, &w, &e), 0);
    uint8_t *b;
    size_t n;
    assert_int_equal(tbl_wal_ckpt_read(w, &b, &n, &e), TR_ENOTFOUND);
    assert_int_equal(tbl_wal_ckpt_write(w, "v1", 2, &e), 0);
    assert_int_equal(tbl_wal_ckpt_write(w, "v22", 3, &e), 0);
    assert_int_equal(tbl_wal_ckpt_read(w, &b, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(b, "v22", 3);
    free(b);
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    int fd = open(path, O_RDWR);
    assert_int_equal(pwrite(fd, "Z", 1, 12), 1);
    close(fd);
    assert_int_equal(tbl_wal_ckpt_read(w, &b, &n, &e), TR_ECORRUPT);
    tbl_wal_close(w);
    tmp_done(dir);
}

/* ---- recovery of the table engine ---------------------------------------------------------- */

static json_t *J(const char *text) {
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("bad test JSON %s: %s", text, je.text);
    return j;
}

static tbl_opts_t crash_opts(void) {
    tbl_opts_t o = {0};
    o.ttl_interval_ms = -1;
    o.map_size = (size_t)1 << 30;
    o.ckpt_interval_ms = 20; /* many checkpoints during the run */
    return o;
}

static void create_table(tbl_t *db) {
    tbl_attrdef_t a[2] = {{"pk", TBL_T_S}, {"g", TBL_T_S}};
    tbl_index_info_t gsi = {0};
    gsi.name = "byG";
    gsi.hash = "g";
    gsi.projection = TBL_PROJ_ALL;
    tbl_table_info_t d = {0};
    d.name = "crash";
    d.hash = "pk";
    d.attrs = a;
    d.n_attrs = 2;
    d.indexes = &gsi;
    d.n_indexes = 1;
    d.billing = TBL_BILLING_PAY_PER_REQUEST;
    tr_err e = {0, ""};
    if (tbl_table_create(db, &d, NULL, &e)) fail_msg("create: %s", e.msg);
}

/* Item i: 300 bytes of payload, a GSI key, a counter bumped by the adds. */
static json_t *item_of(int i) {
    char pad[301];
    memset(pad, 'a' + i % 26, 300);
    pad[300] = '\0';
    char text[512];
    snprintf(text, sizeof text,
             "{\"pk\":{\"S\":\"k%06d\"},\"g\":{\"S\":\"g%d\"},\"i\":{\"N\":\"%d\"},"
             "\"pad\":{\"S\":\"%s\"}}", i, i % 7, i, pad);
    return J(text);
}

typedef struct snapshot_ctx {
    char dir[256];
} snapshot_ctx_t;

/* The ckpt hook: copy data.mdb right after the checkpoint's fdatasync, named by txn id. */
static void snap_hook(void *arg, uint64_t txnid) {
    snapshot_ctx_t *c = arg;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/tables/data.mdb %s/snap.%" PRIu64, c->dir, c->dir, txnid);
    if (system(cmd)) _exit(3);
}

/* Child: write items 0.. and counter adds until killed; report each acknowledged write. */
static void child_run(const char *dir, int report_fd, int snap) {
    char tdir[512];
    snprintf(tdir, sizeof tdir, "%s/tables", dir);
    tbl_opts_t o = crash_opts();
    static snapshot_ctx_t sc;
    if (snap) {
        snprintf(sc.dir, sizeof sc.dir, "%s", dir);
        o.ckpt_hook = snap_hook;
        o.ckpt_hook_arg = &sc;
    }
    tbl_t *db = NULL;
    tr_err e = {0, ""};
    if (tbl_open(tdir, &o, &db, &e)) _exit(2);
    create_table(db);
    for (int i = 0;; i++) {
        json_t *it = item_of(i);
        tbl_write_t w[2] = {{.op = TBL_OP_PUT, .table = "crash", .item = it}};
        json_t *key = J("{\"pk\":{\"S\":\"counter\"}}");
        json_t *vals = J("{\":one\":{\"N\":\"1\"}}");
        tbl_expr_t *ue = NULL;
        if (tbl_expr_parse(TBL_EXPR_UPDATE, "ADD n :one", NULL, vals, NULL, &ue, &e)) _exit(2);
        w[1] = (tbl_write_t){.op = TBL_OP_UPDATE, .table = "crash", .key = key, .update = ue};
        if (tbl_sync_write(db, w, 2, &e) || w[0].rc || w[1].rc) _exit(2);
        if (write(report_fd, &i, sizeof i) != sizeof i) _exit(2);
        json_decref(it);
        json_decref(key);
        json_decref(vals);
        json_decref(w[0].attrs);
        json_decref(w[1].attrs);
        tbl_expr_free(ue);
    }
}

/* Start the child, let it write for ms, SIGKILL it; returns the last acknowledged i (-1). */
static int run_and_kill(const char *dir, int ms, int snap) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        child_run(dir, p[1], snap);
        _exit(0);
    }
    close(p[1]);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int last = -1, v;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t k = read(p[0], &v, sizeof v);
        if (k == sizeof v) {
            last = v;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >= ms) break;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    /* acknowledgements already in the pipe count too */
    while (read(p[0], &v, sizeof v) == sizeof v) last = v;
    close(p[0]);
    return last;
}

/* Items in the table (index NULL) or index, over every Scan page. */
static long scan_count(tbl_t *db, const char *index) {
    long n = 0;
    json_t *start = NULL;
    do {
        tbl_query_t q = {.table = "crash", .index = index, .scan = 1,
                         .select = TBL_SELECT_COUNT, .start_key = start};
        tr_err e = {0, ""};
        if (tbl_query(db, &q, &e)) fail_msg("scan: %s", e.msg);
        n += q.count;
        json_decref(start);
        start = q.last_key;
        q.last_key = NULL;
        tbl_query_free(&q);
    } while (start);
    return n;
}

/* Reopen and check: items 0..last present and intact, counter >= last + 1 and equal to the
 * number of items present (each put and its add were one batch), GSI consistent. */
static void verify(const char *dir, int last) {
    char tdir[512];
    snprintf(tdir, sizeof tdir, "%s/tables", dir);
    tbl_opts_t o = crash_opts();
    tbl_t *db = NULL;
    tr_err e = {0, ""};
    if (tbl_open(tdir, &o, &db, &e)) fail_msg("reopen after crash: %s", e.msg);
    for (int i = 0; i <= last; i++) {
        char key[64];
        snprintf(key, sizeof key, "{\"pk\":{\"S\":\"k%06d\"}}", i);
        json_t *k = J(key);
        tbl_get_t g = {.table = "crash", .key = k};
        assert_int_equal(tbl_get_many(db, &g, 1, &e), 0);
        if (!g.item) fail_msg("acknowledged item %d of %d lost", i, last);
        json_t *want = item_of(i);
        assert_true(json_equal(g.item, want));
        json_decref(want);
        json_decref(g.item);
        json_decref(k);
    }
    long items = scan_count(db, NULL) - 1; /* minus the counter item */
    json_t *k = J("{\"pk\":{\"S\":\"counter\"}}");
    tbl_get_t g = {.table = "crash", .key = k};
    assert_int_equal(tbl_get_many(db, &g, 1, &e), 0);
    assert_non_null(g.item);
    long n = atol(json_string_value(json_object_get(json_object_get(g.item, "n"), "N")));
    json_decref(g.item);
    json_decref(k);
    assert_true(items >= last + 1);
    assert_int_equal(n, items);
    assert_int_equal(scan_count(db, "byG"), items);
    tbl_table_info_t info;
    assert_int_equal(tbl_table_describe(db, "crash", &info, &e), 0);
    assert_int_equal((long)info.item_count, items + 1);
    assert_int_equal((long)info.indexes[0].item_count, items);
    tbl_table_info_free(&info);
    tbl_close(db);
}

static void test_kill_under_load(void **state) {
    (void)state;
    for (int round = 0; round < 3; round++) {
        char *dir = tmp_dir();
        int last = run_and_kill(dir, 300 + 150 * round, 0);
        assert_true(last >= 0);
        verify(dir, last);
        tmp_done(dir);
    }
}

/* Build what a power loss could leave: the data file of the newest durable checkpoint as it
 * was synced, then for every page independently either that version or the newest one the
 * kernel might have written back, and the newest meta pages (pointing at pages that may not
 * be there). */
static void power_loss_image(const char *dir, unsigned seed) {
    char path[512];
    snprintf(path, sizeof path, "%s/tables/wal/checkpoint", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t h[12 + 24];
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    uint64_t txnid = 0;
    for (int i = 7; i >= 0; i--) txnid = txnid << 8 | h[12 + 8 + i];
    unsigned psize = (unsigned)h[12 + 4] | (unsigned)h[12 + 5] << 8 | (unsigned)h[12 + 6] << 16;
    char snap[512], data[512];
    snprintf(snap, sizeof snap, "%s/snap.%" PRIu64, dir, txnid);
    snprintf(data, sizeof data, "%s/tables/data.mdb", dir);
    int sf = open(snap, O_RDONLY), df = open(data, O_RDWR);
    if (sf < 0) fail_msg("no snapshot for checkpoint %" PRIu64, txnid);
    assert_true(df >= 0);
    struct stat ss, ds;
    fstat(sf, &ss);
    fstat(df, &ds);
    uint8_t *page = malloc(psize);
    srand(seed);
    size_t changed = 0;
    for (off_t off = 2 * (off_t)psize; off < ss.st_size; off += psize) {
        if (rand() & 1) continue; /* the newest version reached the disk */
        assert_int_equal(pread(sf, page, psize, off), (ssize_t)psize);
        assert_int_equal(pwrite(df, page, psize, off), (ssize_t)psize);
        changed++;
    }
    /* pages allocated after the checkpoint: half of them never reached the disk */
    for (off_t off = ss.st_size; off < ds.st_size; off += psize) {
        if (rand() & 1) continue;
        memset(page, 0xA5, psize);
        assert_int_equal(pwrite(df, page, psize, off), (ssize_t)psize);
    }
    free(page);
    close(sf);
    close(df);
    (void)changed;
}

static void test_power_loss(void **state) {
    (void)state;
    for (int round = 0; round < 3; round++) {
        char *dir = tmp_dir();
        int last = run_and_kill(dir, 400 + 100 * round, 1);
        assert_true(last >= 0);
        power_loss_image(dir, 1234u + (unsigned)round);
        verify(dir, last);
        tmp_done(dir);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_segments),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_damage_before_newer_segments),
        cmocka_unit_test(test_checkpoint_blob),
        cmocka_unit_test(test_kill_under_load),
        cmocka_unit_test(test_power_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
