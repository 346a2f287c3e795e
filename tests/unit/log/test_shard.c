/* SPDX-License-Identifier: Apache-2.0
 *
 * test_shard.c -- the shard log (log/shard.h): round trips, segments, read limits, recovery of
 * torn tails and headers, corruption, retention, seek by time, commit visibility, injected I/O
 * faults (through the private vtable in log/shard_int.h) and a concurrent reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "log/shard.h"
#include "log/shard_int.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static uint32_t g_size_mod = 200; /* data_len = (seq * 37) % g_size_mod, see gen() */

typedef struct fixture {
    char tmp[64];   /* mkdtemp root, removed at teardown */
    char dir[128];  /* shard directory inside it (two levels, to exercise mkdir -p) */
} fixture_t;

static int setup(void **st) {
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->tmp, "/tmp/trshard.XXXXXX");
    if (!mkdtemp(f->tmp)) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/streams/0", f->tmp);
    *st = f;
    return 0;
}

static int teardown(void **st) {
    fixture_t *f = *st;
    tr_err err;
    g_size_mod = 200;
    int rc = slog_shard_destroy_dir(f->tmp, &err);
    free(f);
    return rc;
}

/* Record contents are a function of the seq, so any reader can check what it got. */

static void gen(uint64_t seq, char *pk, uint16_t *pk_len, uint8_t *data, uint32_t *data_len) {
    *pk_len = (uint16_t)snprintf(pk, SLOG_MAX_PK + 1, "pk-%llu", (unsigned long long)seq);
    if (seq % 11 == 3) *pk_len = 0;
    *data_len = (uint32_t)((seq * 37) % g_size_mod);
    for (uint32_t i = 0; i < *data_len; i++) data[i] = (uint8_t)(seq * 131 + i * 7);
}

static int rec_ok(const slog_rec_t *r) {
    static _Thread_local char pk[SLOG_MAX_PK + 1];
    static _Thread_local uint8_t data[128 << 10]; /* g_size_mod stays below this */
    uint16_t pl;
    uint32_t dl;
    gen(r->seq, pk, &pl, data, &dl);
    return r->pk_len == pl && r->data_len == dl && memcmp(r->pk, pk, pl) == 0 &&
           memcmp(r->data, data, dl) == 0;
}

/* Append n generated records starting at expect (which must be the next seq). */
static void append_gen(slog_shard_t *sh, uint64_t expect, size_t n, int64_t arrival) {
    slog_rec_in_t *in = calloc(n, sizeof *in);
    char(*pks)[SLOG_MAX_PK + 1] = calloc(n, SLOG_MAX_PK + 1);
    uint8_t **bufs = calloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        bufs[i] = malloc(g_size_mod + 1);
        gen(expect + i, pks[i], &in[i].pk_len, bufs[i], &in[i].data_len);
        in[i].pk = pks[i];
        in[i].data = bufs[i];
    }
    uint64_t first = 0;
    tr_err err = {0};
    int rc = slog_shard_append(sh, in, n, arrival, &first, &err);
    if (rc) fprintf(stderr, "append: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(first, expect);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(pks);
    free(in);
}

static void sync_ok(slog_shard_t *sh) {
    tr_err err = {0};
    tu_ok(slog_shard_sync(sh, &err), err);
}

/* append_gen, then make the records durable (slog_shard_sync). */
static void append_synced(slog_shard_t *sh, uint64_t expect, size_t n, int64_t arrival) {
    append_gen(sh, expect, n, arrival);
    sync_ok(sh);
}

/* Append `batches` batches of `per` generated records from `next` (batch b arrives at time b),
 * syncing after each; returns the seq after the last one. */
static uint64_t append_batches(slog_shard_t *sh, uint64_t next, int batches, size_t per) {
    for (int b = 0; b < batches; b++) {
        append_synced(sh, next, per, b);
        next += per;
    }
    return next;
}

/* Read everything from `from` in pieces of `step` records, as a consumer does (continuing at
 * next_seq, stopping at the first empty read); check contents (seqs ascend; they skip only
 * over damage); return the count and, if seqs != NULL, the seqs read (up to max). */
static uint64_t read_seqs(slog_shard_t *sh, uint64_t from, size_t step, uint64_t *seqs,
                          size_t max) {
    slog_read_t rd = {0};
    tr_err err;
    uint64_t next = from, count = 0;
    for (;;) {
        int rc = slog_shard_read(sh, next, step, SIZE_MAX, &rd, &err);
        if (rc) fprintf(stderr, "read: %s\n", err.msg);
        assert_int_equal(rc, 0);
        if (rd.n == 0) {
            if (rd.next_seq > next && rd.next_seq < slog_shard_end(sh)) { /* skipped damage */
                next = rd.next_seq;
                continue;
            }
            break;
        }
        assert_true(rd.recs[0].seq >= next);
        for (size_t i = 0; i < rd.n; i++) {
            if (i) assert_true(rd.recs[i].seq > rd.recs[i - 1].seq);
            assert_true(rec_ok(&rd.recs[i]));
            if (seqs && count + i < max) seqs[count + i] = rd.recs[i].seq;
        }
        count += rd.n;
        next = rd.next_seq;
        assert_int_equal(next, rd.recs[rd.n - 1].seq + 1);
    }
    slog_read_free(&rd);
    return count;
}

static uint64_t read_all(slog_shard_t *sh, uint64_t from, size_t step) {
    return read_seqs(sh, from, step, NULL, 0);
}

static slog_shard_t *open_ok(const char *dir, uint64_t seg_bytes, uint64_t first, int no_sync) {
    slog_shard_opts_t o = {seg_bytes, first, no_sync, 0};
    slog_shard_t *sh = NULL;
    tr_err err = {0};
    int rc = slog_shard_open(dir, &o, &sh, &err);
    if (rc) fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(sh);
    return sh;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

/* Paths of the .seg files in dir, ascending (names sort as numbers). */
static int seg_files(const char *dir, char out[][256], int max) {
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)) && n < max) {
        size_t l = strlen(de->d_name);
        if (l == 24 && !strcmp(de->d_name + 20, ".seg"))
            snprintf(out[n++], 256, "%.200s/%.24s", dir, de->d_name);
    }
    if (d) closedir(d);
    qsort(out, (size_t)n, 256, cmp_name);
    return n;
}

static off_t file_size(const char *p) {
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_size;
}

static void poke(const char *path, off_t off, const void *b, size_t n) {
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, n, off), (ssize_t)n);
    close(fd);
}

/* ---- fault injection ------------------------------------------------------------------------ */

enum { PW_NONE, PW_ENOSPC, PW_SHORT_ENOSPC, PW_SHORT_OK };

static struct {
    int fail_fdatasync; /* fail the next N fdatasync calls with EIO */
    int fail_fsync;     /* fail the next N directory fsyncs */
    int fail_ftruncate; /* fail the next N ftruncates */
    int pwrite_plan;
    int n_fdatasync;
} fi;

static int t_ftruncate(int fd, off_t len) {
    if (fi.fail_ftruncate > 0) {
        fi.fail_ftruncate--;
        errno = EIO;
        return -1;
    }
    return slog__io_posix.ftruncate(fd, len);
}

static int t_fdatasync(int fd) {
    fi.n_fdatasync++;
    if (fi.fail_fdatasync > 0) {
        fi.fail_fdatasync--;
        errno = EIO;
        return -1;
    }
    return slog__io_posix.fdatasync(fd);
}

static int t_fsync(int fd) {
    if (fi.fail_fsync > 0) {
        fi.fail_fsync--;
        errno = EIO;
        return -1;
    }
    return slog__io_posix.fsync(fd);
}

static ssize_t t_pwrite(int fd, const void *b, size_t n, off_t off) {
    switch (fi.pwrite_plan) {
    case PW_ENOSPC:
        fi.pwrite_plan = PW_NONE;
        errno = ENOSPC;
        return -1;
    case PW_SHORT_ENOSPC:
        fi.pwrite_plan = PW_ENOSPC;
        return slog__io_posix.pwrite(fd, b, n > 1 ? n / 2 : n, off);
    case PW_SHORT_OK:
        fi.pwrite_plan = PW_NONE;
        return slog__io_posix.pwrite(fd, b, n > 1 ? n / 2 : n, off);
    }
    return slog__io_posix.pwrite(fd, b, n, off);
}

static slog_io_t t_io;

static void fi_install(slog_shard_t *sh) {
    t_io = slog__io_posix;
    t_io.fdatasync = t_fdatasync;
    t_io.fsync = t_fsync;
    t_io.pwrite = t_pwrite;
    t_io.ftruncate = t_ftruncate;
    memset(&fi, 0, sizeof fi);
    slog__shard_set_io(sh, &t_io);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void round_trip(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 1000, 0);
    assert_int_equal(slog_shard_begin(sh), 1000);
    assert_int_equal(slog_shard_end(sh), 1000);
    assert_int_equal(slog_shard_last_arrival(sh), -1);

    static uint8_t big[SLOG_MAX_DATA];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 13 + 7);
    char pk256[SLOG_MAX_PK];
    memset(pk256, 'k', sizeof pk256);
    slog_rec_in_t in[5] = {
        {"a", 1, (const uint8_t *)"hello", 5},
        {NULL, 0, (const uint8_t *)"no key", 6},
        {"empty-data", 10, NULL, 0},
        {pk256, SLOG_MAX_PK, big, SLOG_MAX_DATA},
        {"\x00\xff", 2, (const uint8_t *)"\x00\x01\x02", 3},
    };
    uint64_t first;
    tr_err err;
    assert_int_equal(slog_shard_append(sh, in, 5, 777, &first, &err), 0);
    assert_int_equal(first, 1000);
    sync_ok(sh);
    assert_int_equal(slog_shard_end(sh), 1005);
    assert_int_equal(slog_shard_last_arrival(sh), 777);

    slog_read_t rd = {0};
    assert_int_equal(slog_shard_read(sh, 0, 100, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 5);
    assert_int_equal(rd.next_seq, 1005);
    uint64_t bytes = 0;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(rd.recs[i].seq, 1000 + i);
        assert_int_equal(rd.recs[i].arrival_ms, 777);
        assert_int_equal(rd.recs[i].pk_len, in[i].pk_len);
        assert_int_equal(rd.recs[i].data_len, in[i].data_len);
        assert_memory_equal(rd.recs[i].pk, in[i].pk ? in[i].pk : "", in[i].pk_len);
        if (in[i].data_len) assert_memory_equal(rd.recs[i].data, in[i].data, in[i].data_len);
        bytes += in[i].pk_len + in[i].data_len;
    }
    assert_int_equal(rd.bytes, bytes);

    /* arrival is kept monotonic even if the caller goes backwards */
    assert_int_equal(slog_shard_append(sh, in, 1, 5, &first, &err), 0);
    sync_ok(sh);
    assert_int_equal(slog_shard_read(sh, 1005, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.recs[0].arrival_ms, 777);

    /* n == 0 is a no-op that still reports the next seq */
    assert_int_equal(slog_shard_append(sh, NULL, 0, 1, &first, &err), 0);
    assert_int_equal(first, 1006);
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void bad_args(void **st) {
    fixture_t *f = *st;
    tr_err err;
    slog_shard_t *sh = NULL;
    assert_int_equal(slog_shard_open(NULL, NULL, &sh, &err), TR_EINVAL);
    assert_non_null(strstr(err.msg, "Fix:"));
    assert_int_equal(slog_shard_open(f->dir, NULL, NULL, &err), TR_EINVAL);
    sh = open_ok(f->dir, 0, 0, 1);
    char pk[SLOG_MAX_PK + 1] = {0};
    slog_rec_in_t r = {pk, SLOG_MAX_PK + 1, NULL, 0};
    uint64_t first;
    assert_int_equal(slog_shard_append(sh, &r, 1, 0, &first, &err), TR_EINVAL);
    assert_non_null(strstr(err.msg, "Fix:"));
    r = (slog_rec_in_t){pk, 1, (const uint8_t *)pk, SLOG_MAX_DATA + 1};
    assert_int_equal(slog_shard_append(sh, &r, 1, 0, &first, &err), TR_EINVAL);
    r = (slog_rec_in_t){NULL, 3, NULL, 0};
    assert_int_equal(slog_shard_append(sh, &r, 1, 0, &first, &err), TR_EINVAL);
    assert_int_equal(slog_shard_append(sh, NULL, 2, 0, &first, &err), TR_EINVAL);
    assert_int_equal(slog_shard_read(sh, 0, 1, 1, NULL, &err), TR_EINVAL);
    assert_int_equal(slog_shard_sync(NULL, &err), TR_EINVAL);
    assert_int_equal(slog_shard_trim(NULL, 0, &err), TR_EINVAL);
    assert_int_equal(slog_shard_end(sh), 0); /* nothing was appended */
    slog_shard_close(sh);
    slog_shard_close(NULL);
    slog_read_free(NULL);
}

static void many_segments(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 512, 5, 1);
    uint64_t next = 5;
    for (int b = 0; b < 300; b++) {
        size_t n = 1 + (size_t)(b % 7);
        append_gen(sh, next, n, 100 + b);
        next += n;
        sync_ok(sh);
    }
    size_t nsegs = slog__shard_nsegs(sh);
    assert_true(nsegs > 20);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 1), next - 5);
    assert_int_equal(read_all(sh, 5, 13), next - 5);
    assert_int_equal(read_all(sh, 0, 100000), next - 5);
    /* from every seq: the first record is that seq, reads cross segment boundaries */
    slog_read_t rd = {0};
    tr_err err;
    for (uint64_t s = 5; s < next; s += 3) {
        assert_int_equal(slog_shard_read(sh, s, 9, SIZE_MAX, &rd, &err), 0);
        assert_int_equal(rd.recs[0].seq, s);
        assert_int_equal(rd.n, (size_t)(next - s < 9 ? next - s : 9));
        for (size_t i = 0; i < rd.n; i++) assert_true(rec_ok(&rd.recs[i]));
    }
    slog_read_free(&rd);
    slog_shard_close(sh);

    /* reopen: .idx files for the sealed segments, same data */
    sh = open_ok(f->dir, 512, 0, 1);
    assert_int_equal(slog__shard_nsegs(sh), nsegs);
    assert_int_equal(slog_shard_begin(sh), 5);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 7), next - 5);
    slog_shard_close(sh);
}

/* One big segment with index entries every 32 KiB / 512 records, records up to ~70 KiB. */
static void index_positions(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 1);
    uint64_t next = 0;
    g_size_mod = 70001;
    for (int b = 0; b < 40; b++) {
        append_gen(sh, next, 10, b);
        next += 10;
    }
    g_size_mod = 40;
    for (int b = 0; b < 20; b++) {
        append_gen(sh, next, 500, 100 + b);
        next += 500;
    }
    sync_ok(sh);
    slog_read_t rd = {0};
    tr_err err;
    g_size_mod = 70001;
    for (uint64_t s = 0; s + 3 <= 400; s += 7) {
        assert_int_equal(slog_shard_read(sh, s, 3, SIZE_MAX, &rd, &err), 0);
        assert_int_equal(rd.n, 3);
        assert_int_equal(rd.recs[0].seq, s);
        for (size_t i = 0; i < 3; i++) assert_true(rec_ok(&rd.recs[i]));
    }
    g_size_mod = 40;
    for (uint64_t s = 400; s < next; s += 97) {
        assert_int_equal(slog_shard_read(sh, s, 1000, SIZE_MAX, &rd, &err), 0);
        assert_int_equal(rd.recs[0].seq, s);
        assert_int_equal(rd.n, next - s < 1000 ? next - s : 1000);
        for (size_t i = 0; i < rd.n; i++) assert_true(rec_ok(&rd.recs[i]));
    }
    /* seek by time inside one segment: batch b has arrival b (first 40) */
    assert_int_equal(slog_shard_seek_time(sh, 0), 0);
    assert_int_equal(slog_shard_seek_time(sh, 17), 17 * 10);
    assert_int_equal(slog_shard_seek_time(sh, 39), 39 * 10);
    assert_int_equal(slog_shard_seek_time(sh, 40), 400);
    assert_int_equal(slog_shard_seek_time(sh, 107), 400 + 7 * 500);
    assert_int_equal(slog_shard_seek_time(sh, 119), 400 + 19 * 500);
    assert_int_equal(slog_shard_seek_time(sh, 120), next);
    slog_read_free(&rd);
    slog_shard_close(sh);
    g_size_mod = 200;
}

static void read_limits(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 10, 1);
    /* records of 100 bytes of data and a 4-byte key */
    uint8_t d[100000];
    memset(d, 'x', sizeof d);
    slog_rec_in_t in[6] = {{"k000", 4, d, 100},   {"k001", 4, d, 100}, {"k002", 4, d, 100},
                           {"k003", 4, d, 90000}, {"k004", 4, d, 100}, {"k005", 4, d, 100}};
    uint64_t first;
    tr_err err;
    assert_int_equal(slog_shard_append(sh, in, 6, 1, &first, &err), 0);
    sync_ok(sh);
    slog_read_t rd = {0};
    assert_int_equal(slog_shard_read(sh, 10, 2, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 2);
    assert_int_equal(rd.next_seq, 12);
    assert_int_equal(rd.bytes, 208);
    /* byte limit: exactly two records fit */
    assert_int_equal(slog_shard_read(sh, 10, 100, 208, &rd, &err), 0);
    assert_int_equal(rd.n, 2);
    assert_int_equal(slog_shard_read(sh, 10, 100, 207, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    /* the first record is returned even when it alone is over the limit */
    assert_int_equal(slog_shard_read(sh, 10, 100, 0, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    assert_int_equal(slog_shard_read(sh, 13, 100, 1000, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.recs[0].data_len, 90000);
    assert_memory_equal(rd.recs[0].pk, "k003", 4);
    assert_int_equal(rd.next_seq, 14);
    /* a big record stops a batch that would exceed the limit */
    assert_int_equal(slog_shard_read(sh, 11, 100, 1000, &rd, &err), 0);
    assert_int_equal(rd.n, 2);
    assert_int_equal(rd.next_seq, 13);
    /* below begin starts at begin; at or past the end gives nothing */
    assert_int_equal(slog_shard_read(sh, 0, 1, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.recs[0].seq, 10);
    assert_int_equal(slog_shard_read(sh, 16, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 0);
    assert_int_equal(rd.next_seq, 16);
    assert_int_equal(slog_shard_read(sh, 999, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 0);
    assert_int_equal(rd.next_seq, 999);
    assert_int_equal(slog_shard_read(sh, 0, 0, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 0);
    assert_int_equal(rd.next_seq, 10);
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void reopen_keeps_seqs(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 42, 0);
    append_synced(sh, 42, 30, 1);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 0, 7 /* ignored */, 0);
    assert_int_equal(slog_shard_begin(sh), 42);
    assert_int_equal(slog_shard_end(sh), 72);
    assert_int_equal(slog_shard_last_arrival(sh), 1);
    assert_int_equal(read_all(sh, 0, 8), 30);
    append_synced(sh, 72, 5, 2);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 77);
    assert_int_equal(read_all(sh, 0, 100), 35);
    slog_shard_close(sh);

    /* empty shard keeps its first seq */
    char d2[200];
    snprintf(d2, sizeof d2, "%s/empty", f->tmp);
    sh = open_ok(d2, 0, 500, 0);
    slog_shard_close(sh);
    sh = open_ok(d2, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 500);
    append_gen(sh, 500, 1, 1);
    slog_shard_close(sh);
}

/* Sealed segments' .idx missing, corrupt or stale: the segment is scanned instead. */
static void idx_fallback(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 2000, 0, 1);
    uint64_t next = append_batches(sh, 0, 60, 5);
    size_t nsegs = slog__shard_nsegs(sh);
    assert_true(nsegs >= 4);
    slog_shard_close(sh);
    char segs[64][256];
    int n = seg_files(f->dir, segs, 64);
    assert_int_equal((size_t)n, nsegs);
    char idx[256];
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[0]) - 4, segs[0]);
    assert_int_equal(unlink(idx), 0);
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[1]) - 4, segs[1]);
    poke(idx, 60, "\xde\xad", 2);
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[2]) - 4, segs[2]);
    assert_int_equal(truncate(idx, 30), 0);
    sh = open_ok(f->dir, 2000, 0, 1);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 11), next);
    assert_int_equal(slog_shard_seek_time(sh, 30), 150);
    slog_shard_close(sh);
    /* and the .idx files were rewritten */
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[0]) - 4, segs[0]);
    assert_true(access(idx, F_OK) == 0);
}

static void torn_tail(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 100, 0);
    append_synced(sh, 100, 10, 1);
    slog_shard_close(sh);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    off_t full = file_size(segs[0]);

    /* cut in the middle of the last frame */
    uint16_t pl;
    uint32_t dl;
    char pk[SLOG_MAX_PK + 1];
    uint8_t data[256];
    gen(109, pk, &pl, data, &dl);
    off_t last_len = SLOG_FRAME_HDR + pl + dl;
    assert_int_equal(truncate(segs[0], full - last_len / 2), 0);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 109);
    assert_int_equal(file_size(segs[0]), full - last_len);
    assert_int_equal(read_all(sh, 0, 4), 9);
    append_synced(sh, 109, 3, 2);
    assert_int_equal(read_all(sh, 0, 4), 12);
    slog_shard_close(sh);

    /* garbage after the last frame */
    full = file_size(segs[0]);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 7 + 1);
    poke(segs[0], full, junk, sizeof junk);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 112);
    assert_int_equal(file_size(segs[0]), full);
    append_synced(sh, 112, 1, 3);
    assert_int_equal(read_all(sh, 0, 100), 13);
    slog_shard_close(sh);

    /* only a header's worth of a frame (short header) */
    full = file_size(segs[0]);
    poke(segs[0], full, junk, 10);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 113);
    assert_int_equal(file_size(segs[0]), full);
    slog_shard_close(sh);

    /* a valid-looking frame whose seq does not follow (e.g. a copy of an earlier frame) */
    uint8_t first_frame[SLOG_FRAME_HDR + 300];
    gen(100, pk, &pl, data, &dl);
    int fd = open(segs[0], O_RDONLY);
    size_t flen = SLOG_FRAME_HDR + pl + dl;
    assert_int_equal(pread(fd, first_frame, flen, SLOG_SEG_HDR), (ssize_t)flen);
    close(fd);
    poke(segs[0], full, first_frame, flen);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 113);
    assert_int_equal(file_size(segs[0]), full);
    slog_shard_close(sh);
}

static slog_shard_health_t health(slog_shard_t *sh) {
    slog_shard_health_t h;
    slog_shard_health(sh, &h);
    return h;
}

static void flip(const char *path, off_t off) {
    uint8_t x;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &x, 1, off), 1);
    x ^= 0x10;
    assert_int_equal(pwrite(fd, &x, 1, off), 1);
    close(fd);
}

static void copy_file(const char *from, const char *to) {
    static uint8_t b[1 << 20];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(in >= 0 && out >= 0);
    ssize_t r;
    while ((r = read(in, b, sizeof b)) > 0) assert_int_equal(write(out, b, (size_t)r), r);
    close(in);
    close(out);
}

/* Offset of frame `seq` in a single-segment shard written by append_gen from seq 0. */
static off_t frame_off(uint64_t seq) {
    off_t off = SLOG_SEG_HDR;
    char pk[SLOG_MAX_PK + 1];
    static uint8_t data[128 << 10];
    uint16_t pl;
    uint32_t dl;
    for (uint64_t s = 0; s < seq; s++) {
        gen(s, pk, &pl, data, &dl);
        off += SLOG_FRAME_HDR + pl + dl;
    }
    return off;
}

/* Issue #8 item 1: one flipped byte in the middle of the newest segment loses that record
 * only: every intact record after it is kept (not truncated as a "torn tail"), the damage is
 * reported, the bytes stay in the file, appends continue. */
static void damage_mid_newest(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 0);
    for (uint64_t b = 0; b < 20; b++) { append_synced(sh, b * 100, 100, (int64_t)b); }
    slog_shard_close(sh);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    off_t size = file_size(segs[0]);
    flip(segs[0], size / 2);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 2000);
    assert_int_equal(file_size(segs[0]), size); /* evidence kept */
    static uint64_t seqs[2100];
    assert_int_equal(read_seqs(sh, 0, 7, seqs, 2100), 1999);
    uint64_t lost = 0;
    for (uint64_t i = 0; i < 1999; i++)
        if (seqs[i] != i + lost) lost++;
    assert_int_equal(lost, 1);
    slog_shard_health_t h = health(sh);
    assert_int_equal(h.damaged_ranges, 1);
    assert_int_equal(h.lost_records, 1);
    assert_int_equal(h.missing, 0);
    /* a consumer starting exactly at the lost record moves on to the next one */
    uint64_t gone = 0;
    while (seqs[gone] == gone) gone++;
    slog_read_t rd = {0};
    tr_err err;
    assert_int_equal(slog_shard_read(sh, gone, 1, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 1);
    assert_int_equal(rd.recs[0].seq, gone + 1);
    slog_read_free(&rd);
    append_synced(sh, 2000, 5, 30);
    assert_int_equal(read_all(sh, 0, 100), 2004);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 0, 0, 0); /* and again: same result, damage reported again */
    assert_int_equal(read_all(sh, 0, 100), 2004);
    assert_int_equal(health(sh).damaged_ranges, 1);
    slog_shard_close(sh);
}

/* Every single byte of a frame in the middle, flipped in turn: that record alone is lost. */
static void damage_each_byte(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 1);
    append_synced(sh, 0, 20, 1);
    slog_shard_close(sh);
    char segs[4][256], pristine[300];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    snprintf(pristine, sizeof pristine, "%s/pristine", f->tmp);
    copy_file(segs[0], pristine);
    off_t a = frame_off(10), b = frame_off(11);
    for (off_t off = a; off < b; off++) {
        copy_file(pristine, segs[0]);
        flip(segs[0], off);
        sh = open_ok(f->dir, 0, 0, 1);
        assert_int_equal(slog_shard_end(sh), 20);
        uint64_t seqs[20];
        assert_int_equal(read_seqs(sh, 0, 3, seqs, 20), 19);
        assert_int_equal(seqs[9], 9);
        assert_int_equal(seqs[10], 11);
        assert_int_equal(health(sh).lost_records, 1);
        slog_shard_close(sh);
    }
}

/* A record whose payload is itself a well-formed frame must not be taken for a real record
 * when the header of the record holding it is damaged. */
static void damage_payload_looks_like_frame(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 1);
    append_synced(sh, 0, 5, 1);
    /* record 5: its data is a frame claiming seq 6 (the next one), with a good CRC */
    char inner_pk[] = "forged";
    uint8_t fake[64];
    uint32_t flen = SLOG_FRAME_HDR + 6 + 10;
    memset(fake, 0, sizeof fake);
    fake[0] = (uint8_t)flen;
    fake[8] = 6;     /* seq */
    fake[16] = 1;    /* arrival */
    fake[24] = 6;    /* pk_len */
    memcpy(fake + SLOG_FRAME_HDR, inner_pk, 6);
    memset(fake + SLOG_FRAME_HDR + 6, 'z', 10);
    uint32_t crc = tr_crc32c(0, fake + 8, flen - 8);
    for (int i = 0; i < 4; i++) fake[4 + i] = (uint8_t)(crc >> (8 * i));
    slog_rec_in_t r = {"outer", 5, fake, flen};
    uint64_t first;
    tr_err err;
    assert_int_equal(slog_shard_append(sh, &r, 1, 1, &first, &err), 0);
    assert_int_equal(first, 5);
    sync_ok(sh);
    append_synced(sh, 6, 5, 1); /* 6..10 */
    slog_shard_close(sh);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    flip(segs[0], frame_off(5) + 1); /* the outer record's length */
    sh = open_ok(f->dir, 0, 0, 1);
    assert_int_equal(slog_shard_end(sh), 11);
    slog_read_t rd = {0};
    assert_int_equal(slog_shard_read(sh, 0, 100, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 10); /* 0..4 and 6..10: nothing forged */
    for (size_t i = 0; i < rd.n; i++) {
        assert_int_equal(rd.recs[i].seq, i < 5 ? i : i + 1);
        assert_true(rec_ok(&rd.recs[i]));
    }
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void damage_sealed(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 256, 0, 1);
    uint64_t next = append_batches(sh, 0, 10, 4);
    slog_shard_close(sh);
    char segs[32][256];
    int n = seg_files(f->dir, segs, 32);
    assert_true(n >= 3);
    /* a bad segment header no longer stops the shard: its frames are recovered */
    poke(segs[1], 0, "XRSLOG01", 8);
    sh = open_ok(f->dir, 256, 0, 1);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 3), next);
    assert_int_equal(health(sh).damaged_ranges, 1);
    assert_int_equal(health(sh).lost_records, 0);
    slog_shard_close(sh);
    poke(segs[1], 0, "TRSLOG01", 8);

    /* header seq not matching the file name */
    uint8_t wrong[8] = {9, 9, 9, 0, 0, 0, 0, 0};
    poke(segs[0], 8, wrong, 8);
    sh = open_ok(f->dir, 256, 0, 1);
    assert_int_equal(read_all(sh, 0, 3), next);
    slog_shard_close(sh);
    uint8_t zero[8] = {0};
    poke(segs[0], 8, zero, 8);

    /* a damaged frame inside a sealed segment (its .idx gone): that record is lost, the rest
     * of the segment and the shard are served */
    char idx[256];
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[1]) - 4, segs[1]);
    unlink(idx);
    poke(segs[1], SLOG_SEG_HDR + 12, "\x77", 1);
    sh = open_ok(f->dir, 256, 0, 1);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 3), next - 1);
    assert_int_equal(health(sh).lost_records, 1);
    slog_shard_close(sh);

    /* a missing middle segment: a gap, reported; the others are served */
    uint64_t f1 = strtoull(strrchr(segs[1], '/') + 1, NULL, 10);
    uint64_t f2 = strtoull(strrchr(segs[2], '/') + 1, NULL, 10);
    assert_int_equal(unlink(segs[1]), 0);
    sh = open_ok(f->dir, 256, 0, 1);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 3), next - (f2 - f1));
    assert_int_equal(read_all(sh, f1, 3), next - f2); /* from inside the gap: moves on */
    assert_int_equal(health(sh).missing, 1);
    assert_int_equal(health(sh).lost_records, f2 - f1);
    slog_shard_close(sh);
}

/* Issue #8 item 4: deleting the newest (or every) segment file never makes sequence numbers
 * go backwards, and the loss is reported. */
/* Opening a shard whose DIR/state must be (re)written -- e.g. one written before DIR/state
 * existed -- on a disk that refuses writes: the records are served, appends fail until the mark
 * can be written, then succeed (review finding: the open used to fail the whole shard). */
static int ro_open(const char *path, int flags, mode_t mode) {
    if (flags & O_CREAT) { /* new files (DIR/state's temporary) cannot be made: a full disk */
        errno = ENOSPC;
        return -1;
    }
    return slog__io_posix.open(path, flags, mode);
}

static void state_unwritable_at_open(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 1 << 20, 0, 0);
    append_synced(sh, 0, 10, 1);
    slog_shard_close(sh);
    char p[600];
    snprintf(p, sizeof p, "%s/state", f->dir);
    assert_int_equal(unlink(p), 0);
    static slog_io_t ro;
    ro = slog__io_posix;
    ro.open = ro_open;
    slog__io_set_default(&ro);
    slog_shard_opts_t o = {1 << 20, 0, 0, 0};
    tr_err err = {0};
    int rc = slog_shard_open(f->dir, &o, &sh, &err);
    slog__io_set_default(NULL);
    if (rc) fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(read_all(sh, 0, 3), 10);
    slog__shard_set_io(sh, &ro);
    slog_rec_in_t r = {.pk = "k", .pk_len = 1, .data = (const uint8_t *)"x", .data_len = 1};
    uint64_t seq = 0;
    assert_int_not_equal(slog_shard_append(sh, &r, 1, 5, &seq, &err), 0);
    slog__shard_set_io(sh, NULL);
    append_synced(sh, 10, 2, 2);
    assert_int_equal(read_all(sh, 0, 3), 12);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 1 << 20, 0, 0);
    assert_int_equal(read_all(sh, 0, 3), 12);
    slog_shard_close(sh);
}

static void missing_newest(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 256, 0, 0);
    uint64_t next = append_batches(sh, 0, 10, 4);
    slog_shard_close(sh);
    char segs[32][256];
    int n = seg_files(f->dir, segs, 32);
    assert_true(n >= 3);
    uint64_t fl = strtoull(strrchr(segs[n - 1], '/') + 1, NULL, 10);
    assert_true(fl < next);
    assert_int_equal(unlink(segs[n - 1]), 0);
    sh = open_ok(f->dir, 256, 0, 0);
    uint64_t end = slog_shard_end(sh);
    assert_true(end >= next);
    assert_int_equal(health(sh).missing, 1);
    assert_int_equal(read_all(sh, 0, 3), fl);
    append_synced(sh, end, 3, 20);
    assert_int_equal(read_all(sh, 0, 3), fl + 3);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 256, 0, 0);
    assert_int_equal(slog_shard_end(sh), end + 3);
    assert_int_equal(read_all(sh, 0, 3), fl + 3);
    slog_shard_close(sh);

    /* every segment file gone */
    n = seg_files(f->dir, segs, 32);
    for (int i = 0; i < n; i++) assert_int_equal(unlink(segs[i]), 0);
    sh = open_ok(f->dir, 256, 0, 0);
    assert_true(slog_shard_end(sh) >= end + 3);
    assert_int_equal(health(sh).missing, 1);
    uint64_t e2 = slog_shard_end(sh);
    append_synced(sh, e2, 1, 30);
    assert_int_equal(read_all(sh, 0, 3), 1);
    slog_shard_close(sh);
}

/* Seqs that get an index entry in a segment written by append_gen from seq 0 (the rule of
 * shard.c: an entry every 512 records or 32 KiB).  Returns how many of [0, n) there are. */
static size_t ix_seqs(uint64_t n, uint64_t *out, size_t max) {
    size_t k = 0;
    uint64_t last_seq = 0, last_off = 0;
    for (uint64_t s = 0; s < n; s++) {
        uint64_t off = (uint64_t)frame_off(s);
        if (k == 0 || s - last_seq >= 512 || off - last_off >= (32u << 10)) {
            if (k < max) out[k] = s;
            k++;
            last_seq = s;
            last_off = off;
        }
    }
    return k;
}

/* The seq of the frame holding byte `off` of a segment written by append_gen from seq 0. */
static uint64_t frame_at(off_t off) {
    uint64_t s = 0;
    while (frame_off(s + 1) <= off) s++;
    return s;
}

/* Read from `from` with one call; the seq of the first record returned (UINT64_MAX if none). */
static uint64_t first_from(slog_shard_t *sh, uint64_t from) {
    slog_read_t rd = {0};
    tr_err err;
    assert_int_equal(slog_shard_read(sh, from, 1, SIZE_MAX, &rd, &err), 0);
    uint64_t s = rd.n ? rd.recs[0].seq : UINT64_MAX;
    if (rd.n) assert_true(rec_ok(&rd.recs[0]));
    slog_read_free(&rd);
    return s;
}

/* Read all of [0, total) and check that exactly the seqs in lost[0..nlost) are missing. */
static void expect_lost(slog_shard_t *sh, uint64_t total, size_t step, const uint64_t *lost,
                        size_t nlost) {
    static uint64_t seqs[4096];
    assert_true(total <= 4096);
    assert_int_equal(read_seqs(sh, 0, step, seqs, 4096), total - nlost);
    size_t j = 0, li = 0;
    for (uint64_t s = 0; s < total; s++) {
        if (li < nlost && lost[li] == s) {
            li++;
            continue;
        }
        assert_int_equal(seqs[j], s);
        j++;
    }
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Issue #8 item 1: damage a reader meets where recovery did not look (a sealed segment loaded
 * from its intact .idx) costs exactly the damaged record: the reader resyncs right after it,
 * records the range in the segment's .dmg, and later reads and restarts skip the same range
 * (reported once per process: by the reader, then by the rescan at each start). */
static void damage_found_by_reader(void **st) {
    fixture_t *f = *st;
    g_size_mod = 2000;
    slog_shard_t *sh = open_ok(f->dir, 150000, 0, 1);
    for (uint64_t b = 0; b < 8; b++) { append_synced(sh, b * 50, 50, (int64_t)b); }
    assert_true(slog__shard_nsegs(sh) >= 2);
    slog_shard_close(sh);
    char segs[32][256], dmg[256], idx[256];
    assert_true(seg_files(f->dir, segs, 32) >= 2);
    snprintf(dmg, sizeof dmg, "%.*s.dmg", (int)strlen(segs[0]) - 4, segs[0]);
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[0]) - 4, segs[0]);
    assert_true(file_exists(idx));
    off_t at = file_size(segs[0]) / 3;
    uint64_t bad = frame_at(at);
    flip(segs[0], at); /* .idx still describes it: no scan at open */
    sh = open_ok(f->dir, 150000, 0, 1);
    assert_int_equal(health(sh).damaged_ranges, 0);
    expect_lost(sh, 400, 10, &bad, 1);
    slog_shard_health_t h = health(sh);
    assert_int_equal(h.read_skips, 1);
    assert_int_equal(h.damaged_ranges, 1);
    assert_int_equal(h.lost_records, 1);
    assert_true(file_exists(dmg));
    expect_lost(sh, 400, 1000, &bad, 1); /* same again, reported once */
    assert_int_equal(first_from(sh, bad), bad + 1); /* a consumer at the lost record moves on */
    assert_int_equal(first_from(sh, bad + 1), bad + 1);
    assert_int_equal(health(sh).read_skips, 1);
    append_synced(sh, 400, 5, 9);
    slog_shard_close(sh);
    for (int i = 0; i < 2; i++) { /* after restarts: the same single record is missing */
        sh = open_ok(f->dir, 150000, 0, 1);
        assert_int_equal(health(sh).damaged_ranges, 1); /* reported by the rescan at start */
        assert_int_equal(health(sh).lost_records, 1);
        assert_int_equal(first_from(sh, bad), bad + 1);
        expect_lost(sh, 405, 7, &bad, 1);
        assert_int_equal(health(sh).read_skips, 0);
        slog_shard_close(sh);
    }
}

/* The reader's resync is exact wherever the damage lies relative to the index: a damaged
 * length field in a frame the reader skips (it starts later in the same index block), and a
 * damaged range spanning an index entry (three frames zeroed).  Only the damaged frames are
 * lost, before and after a restart; a consumer starting inside the range moves on. */
static void damage_reader_exact(void **st) {
    fixture_t *f = *st;
    g_size_mod = 2000;
    slog_shard_t *sh = open_ok(f->dir, 400000, 0, 1);
    for (uint64_t b = 0; b < 10; b++) { append_synced(sh, b * 50, 50, (int64_t)b); }
    assert_true(slog__shard_nsegs(sh) >= 2);
    slog_shard_close(sh);
    char segs[32][256];
    assert_true(seg_files(f->dir, segs, 32) >= 2);
    uint64_t seg1 = strtoull(strrchr(segs[1], '/') + 1, NULL, 10);
    assert_true(seg1 > 300);
    uint64_t ix[64];
    size_t nix = ix_seqs(seg1, ix, 64);
    assert_true(nix >= 6 && nix < 64);
    /* a length field two frames after an index entry; a reader starts 3 frames later */
    uint64_t a = ix[2] + 2;
    assert_true(a + 3 < ix[3]);
    uint8_t len[4];
    int fd = open(segs[0], O_RDONLY);
    assert_int_equal(pread(fd, len, 4, frame_off(a)), 4);
    close(fd);
    len[1] ^= 0x02; /* +512 bytes: still a plausible length, lands mid-frame */
    poke(segs[0], frame_off(a), len, 4);
    /* three frames around another index entry, zeroed */
    uint64_t e = ix[4];
    off_t z0 = frame_off(e - 1) + 3, z1 = frame_off(e + 1) + 30;
    static uint8_t zero[8192];
    assert_true((size_t)(z1 - z0) <= sizeof zero);
    poke(segs[0], z0, zero, (size_t)(z1 - z0));
    uint64_t lost[4] = {a, e - 1, e, e + 1};
    sh = open_ok(f->dir, 400000, 0, 1);
    assert_int_equal(health(sh).damaged_ranges, 0);
    assert_int_equal(first_from(sh, a + 3), a + 3);
    assert_int_equal(first_from(sh, a + 1), a + 1);
    assert_int_equal(first_from(sh, e), e + 2);
    assert_int_equal(first_from(sh, e - 1), e + 2);
    expect_lost(sh, 500, 13, lost, 4);
    assert_int_equal(health(sh).lost_records, 4);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 400000, 0, 1);
    assert_int_equal(health(sh).lost_records, 4);
    assert_int_equal(first_from(sh, a), a + 1);
    assert_int_equal(first_from(sh, e + 1), e + 2);
    expect_lost(sh, 500, 13, lost, 4);
    slog_shard_close(sh);
}

/* Damage done to committed records of the ACTIVE segment while the shard is open: the reader
 * skips exactly that record, appends go on, and the next open skips the same record. */
static void damage_reader_active(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 1);
    for (uint64_t b = 0; b < 10; b++) { append_synced(sh, b * 20, 20, (int64_t)b); }
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    uint64_t bad = 77;
    flip(segs[0], frame_off(bad) + SLOG_FRAME_HDR);
    expect_lost(sh, 200, 9, &bad, 1);
    append_synced(sh, 200, 20, 11);
    expect_lost(sh, 220, 50, &bad, 1);
    assert_int_equal(health(sh).read_skips, 1);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 0, 0, 1);
    assert_int_equal(slog_shard_end(sh), 220);
    expect_lost(sh, 220, 9, &bad, 1);
    assert_int_equal(health(sh).lost_records, 1);
    append_synced(sh, 220, 5, 12);
    expect_lost(sh, 225, 9, &bad, 1);
    slog_shard_close(sh);
}

/* A byte in the middle of frame `seq` (inside what its CRC covers). */
static off_t mid_of(uint64_t seq) {
    off_t a = frame_off(seq), b = frame_off(seq + 1);
    return a + 8 + (b - a - 8) / 2;
}

/* Damaged frames close together (adjacent ones, and one intact frame between): only they are lost,
 * whether recovery (newest segment) or a reader (sealed segment trusted from its .idx) finds
 * them -- the intact frame between them is served, before and after a restart. */
static void damage_nearby(void **st) {
    fixture_t *f = *st;
    g_size_mod = 2000;
    slog_shard_t *sh = open_ok(f->dir, 150000, 0, 1);
    for (uint64_t b = 0; b < 8; b++) { append_synced(sh, b * 50, 50, (int64_t)b); }
    uint64_t end = slog_shard_end(sh);
    slog_shard_close(sh);
    char segs[32][256];
    int n = seg_files(f->dir, segs, 32);
    assert_true(n >= 2);
    uint64_t first_last = strtoull(strrchr(segs[n - 1], '/') + 1, NULL, 10);
    assert_true(first_last > 100 && first_last + 6 < end);
    uint64_t k = 60;                       /* sealed segment 0: two adjacent, then one more */
    flip(segs[0], mid_of(k));
    flip(segs[0], mid_of(k + 1));
    flip(segs[0], mid_of(k + 3));
    /* newest segment: frame offsets relative to its first seq */
    uint64_t j = first_last + 2;
    off_t base = frame_off(first_last) - SLOG_SEG_HDR;
    flip(segs[n - 1], mid_of(j) - base);
    flip(segs[n - 1], mid_of(j + 2) - base);
    uint64_t lost[5] = {k, k + 1, k + 3, j, j + 2};
    for (int round = 0; round < 2; round++) {
        sh = open_ok(f->dir, 150000, 0, 1);
        expect_lost(sh, end, 7, lost, 5);
        assert_int_equal(first_from(sh, k + 1), k + 2);
        assert_int_equal(first_from(sh, j + 1), j + 1);
        assert_int_equal(health(sh).lost_records, 5);
        slog_shard_close(sh);
    }
}

/* Every single byte of a frame in a SEALED segment trusted from its .idx, flipped in turn: the
 * reader loses that record alone, and so does the next open. */
static void damage_each_byte_sealed(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 3000, 0, 1);
    append_synced(sh, 0, 30, 1);
    append_synced(sh, 30, 5, 2); /* rolls: segment 0 is sealed and gets its .idx */
    slog_shard_close(sh);
    char segs[4][256], idx[256], dmg[256], pseg[300], pidx[300];
    assert_int_equal(seg_files(f->dir, segs, 4), 2);
    snprintf(idx, sizeof idx, "%.*s.idx", (int)strlen(segs[0]) - 4, segs[0]);
    snprintf(dmg, sizeof dmg, "%.*s.dmg", (int)strlen(segs[0]) - 4, segs[0]);
    snprintf(pseg, sizeof pseg, "%s/pristine.seg", f->tmp);
    snprintf(pidx, sizeof pidx, "%s/pristine.idx", f->tmp);
    copy_file(segs[0], pseg);
    copy_file(idx, pidx);
    uint64_t k = 10;
    for (off_t off = frame_off(k); off < frame_off(k + 1); off++) {
        copy_file(pseg, segs[0]);
        copy_file(pidx, idx);
        unlink(dmg);
        flip(segs[0], off);
        for (int round = 0; round < 2; round++) {
            sh = open_ok(f->dir, 3000, 0, 1);
            assert_int_equal(health(sh).damaged_ranges, (uint64_t)round);
            expect_lost(sh, 35, 4, &k, 1);
            assert_int_equal(health(sh).lost_records, 1);
            slog_shard_close(sh);
        }
    }
}

/* Readers racing over the same fresh damage: one of them records it, every one of them gets
 * every intact record (and only those), and the range is recorded once. */
typedef struct dmg_reader {
    slog_shard_t *sh;
    size_t step;
    uint64_t count, bad_content, want_missing, missing_seen;
} dmg_reader_t;

static void *dmg_reader_main(void *arg) {
    dmg_reader_t *t = arg;
    slog_read_t rd = {0};
    tr_err err;
    uint64_t next = 0, expect = 0;
    for (;;) {
        if (slog_shard_read(t->sh, next, t->step, SIZE_MAX, &rd, &err) != 0) {
            t->bad_content++;
            break;
        }
        if (rd.n == 0) {
            if (rd.next_seq > next && rd.next_seq < slog_shard_end(t->sh)) {
                next = rd.next_seq;
                continue;
            }
            break;
        }
        for (size_t i = 0; i < rd.n; i++) {
            if (!rec_ok(&rd.recs[i])) t->bad_content++;
            while (expect < rd.recs[i].seq) { /* a gap: must be exactly the damaged record */
                if (expect == t->want_missing) t->missing_seen++;
                else t->bad_content++;
                expect++;
            }
            expect = rd.recs[i].seq + 1;
            t->count++;
        }
        next = rd.next_seq;
    }
    slog_read_free(&rd);
    return NULL;
}

static void damage_reader_concurrent(void **st) {
    fixture_t *f = *st;
    g_size_mod = 2000;
    slog_shard_t *sh = open_ok(f->dir, 150000, 0, 1);
    for (uint64_t b = 0; b < 8; b++) { append_synced(sh, b * 50, 50, (int64_t)b); }
    slog_shard_close(sh);
    char segs[32][256];
    assert_true(seg_files(f->dir, segs, 32) >= 2);
    off_t at = file_size(segs[0]) / 2;
    uint64_t bad = frame_at(at);
    flip(segs[0], at);
    sh = open_ok(f->dir, 150000, 0, 1);
    enum { NT = 4 };
    pthread_t th[NT];
    dmg_reader_t t[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = (dmg_reader_t){sh, (size_t)(3 + i * 7), 0, 0, bad, 0};
        assert_int_equal(pthread_create(&th[i], NULL, dmg_reader_main, &t[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].bad_content, 0);
        assert_int_equal(t[i].count, 399);
        assert_int_equal(t[i].missing_seen, 1);
    }
    assert_int_equal(health(sh).damaged_ranges, 1);
    assert_int_equal(health(sh).lost_records, 1);
    slog_shard_close(sh);
}

static void torn_header_last(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 256, 0, 0);
    uint64_t next = append_batches(sh, 0, 5, 4);
    /* the next append rolls; simulate a crash right after creating that segment */
    slog_shard_close(sh);
    char p[256];
    snprintf(p, sizeof p, "%s/%020llu.seg", f->dir, (unsigned long long)next);
    int fd = open(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "TRSL", 4), 4);
    close(fd);
    sh = open_ok(f->dir, 256, 0, 0);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(file_size(p), SLOG_SEG_HDR);
    assert_int_equal(read_all(sh, 0, 3), next);
    append_synced(sh, next, 2, 9);
    assert_int_equal(read_all(sh, 0, 3), next + 2);
    slog_shard_close(sh);

    /* a 16-byte all-zero header (size extended, data never written) */
    char d2[200];
    snprintf(d2, sizeof d2, "%s/lone", f->tmp);
    sh = open_ok(d2, 0, 77, 0);
    slog_shard_close(sh);
    snprintf(p, sizeof p, "%s/%020llu.seg", d2, 77ull);
    uint8_t z[SLOG_SEG_HDR] = {0};
    poke(p, 0, z, sizeof z);
    sh = open_ok(d2, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 77);
    append_synced(sh, 77, 1, 1);
    assert_int_equal(read_all(sh, 0, 3), 1);
    slog_shard_close(sh);

    /* a bad header on the newest segment WITH data behind it is damage, not a torn create:
     * reported, and the record behind it is served */
    poke(p, 0, "GARBAGE!", 8);
    sh = open_ok(d2, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 78);
    assert_int_equal(read_all(sh, 0, 3), 1);
    assert_int_equal(health(sh).damaged_ranges, 1);
    slog_shard_close(sh);
}

static void retention_trim(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 300, 0, 1);
    uint64_t next = 0;
    /* batch b arrives at 1000 + 10 b */
    for (int b = 0; b < 40; b++) {
        append_gen(sh, next, 3, 1000 + 10 * b);
        next += 3;
        sync_ok(sh);
    }
    size_t nsegs = slog__shard_nsegs(sh);
    assert_true(nsegs > 5);
    tr_err err;
    assert_int_equal(slog_shard_trim(sh, 1000, &err), 0);
    assert_int_equal(slog_shard_begin(sh), 0);
    int removed = slog_shard_trim(sh, 1200, &err);
    assert_true(removed > 0);
    uint64_t begin = slog_shard_begin(sh);
    assert_true(begin > 0);
    assert_int_equal(slog__shard_nsegs(sh), nsegs - (size_t)removed);
    /* whole segments go: the first kept record may be older than 1200, but it belongs to
     * the batch right after the last deleted one (arrival <= 1190) */
    slog_read_t rd = {0};
    assert_int_equal(slog_shard_read(sh, 0, 1, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.recs[0].seq, begin);
    assert_true(rd.recs[0].arrival_ms <= 1200);
    assert_int_equal(read_all(sh, 0, 5), next - begin);
    assert_int_equal(slog_shard_seek_time(sh, 0), begin);
    /* everything but the active segment */
    removed = slog_shard_trim(sh, INT64_MAX, &err);
    assert_true(removed > 0);
    assert_int_equal(slog__shard_nsegs(sh), 1);
    assert_int_equal(slog_shard_end(sh), next);
    assert_int_equal(read_all(sh, 0, 5), next - slog_shard_begin(sh));
    begin = slog_shard_begin(sh);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 300, 0, 1);
    assert_int_equal(slog_shard_begin(sh), begin);
    assert_int_equal(slog_shard_end(sh), next);
    /* and the trimmed .idx files are gone */
    DIR *d = opendir(f->dir);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 2); /* the active segment and DIR/state */
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void seek_time_segments(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 400, 0, 1);
    assert_int_equal(slog_shard_seek_time(sh, 5), 0); /* empty */
    uint64_t next = 0;
    for (int b = 0; b < 50; b++) { /* batch b: seqs [4b, 4b+4), arrival 100 + 10 b */
        append_gen(sh, next, 4, 100 + 10 * b);
        next += 4;
        sync_ok(sh);
    }
    assert_true(slog__shard_nsegs(sh) > 5);
    assert_int_equal(slog_shard_seek_time(sh, INT64_MIN), 0);
    assert_int_equal(slog_shard_seek_time(sh, 100), 0);
    for (int b = 1; b < 50; b++) {
        assert_int_equal(slog_shard_seek_time(sh, 100 + 10 * b), 4 * (uint64_t)b);
        assert_int_equal(slog_shard_seek_time(sh, 100 + 10 * b - 5), 4 * (uint64_t)b);
    }
    assert_int_equal(slog_shard_seek_time(sh, 100 + 10 * 49 + 1), next);
    /* uncommitted records do not count */
    append_gen(sh, next, 4, 5000);
    assert_int_equal(slog_shard_seek_time(sh, 4000), next);
    slog_shard_close(sh);
}

static void uncommitted_invisible(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 200, 0, 0);
    append_gen(sh, 0, 3, 1);
    slog_read_t rd = {0};
    tr_err err;
    assert_int_equal(slog_shard_end(sh), 0);
    assert_int_equal(slog_shard_last_arrival(sh), -1);
    assert_int_equal(slog_shard_read(sh, 0, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 0);
    sync_ok(sh);
    assert_int_equal(slog_shard_end(sh), 3);
    /* the segment is past 200 bytes: this append rolls; still invisible until sync */
    size_t nsegs = slog__shard_nsegs(sh);
    append_gen(sh, 3, 4, 2);
    append_gen(sh, 7, 4, 3);
    assert_int_equal(slog__shard_nsegs(sh), nsegs + 1);
    assert_int_equal(slog_shard_end(sh), 3);
    assert_int_equal(slog_shard_read(sh, 0, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 3);
    assert_int_equal(slog_shard_read(sh, 3, 10, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.n, 0);
    sync_ok(sh);
    assert_int_equal(slog_shard_end(sh), 11);
    assert_int_equal(slog_shard_last_arrival(sh), 3);
    assert_int_equal(read_all(sh, 0, 100), 11);
    /* sync with nothing pending is cheap: no fdatasync */
    fi_install(sh);
    sync_ok(sh);
    assert_int_equal(fi.n_fdatasync, 0);
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void fault_fsync(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 0);
    fi_install(sh);
    append_synced(sh, 0, 5, 1);
    append_gen(sh, 5, 5, 2);
    append_gen(sh, 10, 5, 2);
    fi.fail_fdatasync = 1;
    tr_err err = {0};
    assert_int_equal(slog_shard_sync(sh, &err), TR_EIO);
    assert_non_null(strstr(err.msg, "Fix:"));
    assert_non_null(strstr(err.msg, "Input/output error"));
    assert_non_null(strstr(err.msg, f->dir));
    assert_int_equal(slog_shard_end(sh), 5);
    assert_int_equal(read_all(sh, 0, 100), 5);
    /* the discarded seqs are handed out again; nothing skipped, nothing visible twice */
    append_synced(sh, 5, 7, 3);
    assert_int_equal(slog_shard_end(sh), 12);
    assert_int_equal(read_all(sh, 0, 3), 12);
    slog_shard_close(sh);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    off_t sz = file_size(segs[0]);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 12);
    assert_int_equal(file_size(segs[0]), sz); /* nothing to recover */
    slog_shard_close(sh);
}

static void fault_write(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 0, 0, 0);
    fi_install(sh);
    append_synced(sh, 0, 5, 1);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    off_t committed = file_size(segs[0]);

    /* short write, then the disk is full */
    fi.pwrite_plan = PW_SHORT_ENOSPC;
    slog_rec_in_t r = {"k", 1, (const uint8_t *)"0123456789", 10};
    slog_rec_in_t rs[4] = {r, r, r, r};
    uint64_t first;
    tr_err err = {0};
    assert_int_equal(slog_shard_append(sh, rs, 4, 2, &first, &err), TR_EIO);
    assert_non_null(strstr(err.msg, "No space left on device"));
    assert_non_null(strstr(err.msg, segs[0]));
    assert_non_null(strstr(err.msg, "Fix:"));
    assert_int_equal(file_size(segs[0]), committed);
    sync_ok(sh);
    assert_int_equal(slog_shard_end(sh), 5);

    /* plain ENOSPC on a batch after a successful, still pending one: the pending one stays */
    append_gen(sh, 5, 3, 3);
    fi.pwrite_plan = PW_ENOSPC;
    assert_int_equal(slog_shard_append(sh, rs, 4, 3, &first, &err), TR_EIO);
    assert_int_equal(slog_shard_end(sh), 5);
    sync_ok(sh);
    assert_int_equal(slog_shard_end(sh), 8);
    append_synced(sh, 8, 2, 4);
    assert_int_equal(read_all(sh, 0, 4), 10);

    /* the write fails and so does cutting it off: appends are refused until the cut works */
    off_t c2 = file_size(segs[0]);
    fi.pwrite_plan = PW_SHORT_ENOSPC;
    fi.fail_ftruncate = 2;
    assert_int_equal(slog_shard_append(sh, rs, 4, 4, &first, &err), TR_EIO);
    assert_true(file_size(segs[0]) > c2); /* debris of the failed batch */
    assert_int_equal(slog_shard_append(sh, rs, 1, 4, &first, &err), TR_EIO);
    assert_non_null(strstr(err.msg, "Fix:"));
    assert_int_equal(slog_shard_end(sh), 10);
    sync_ok(sh); /* retries the cut, which works now */
    assert_int_equal(file_size(segs[0]), c2);
    assert_int_equal(read_all(sh, 0, 4), 10);

    /* a short write that the retry completes is fine */
    fi.pwrite_plan = PW_SHORT_OK;
    append_synced(sh, 10, 6, 5);
    assert_int_equal(read_all(sh, 0, 4), 16);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 0, 0, 0);
    assert_int_equal(slog_shard_end(sh), 16);
    assert_int_equal(read_all(sh, 0, 100), 16);
    slog_shard_close(sh);
}

static void fault_roll(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 100, 0, 0);
    fi_install(sh);
    append_synced(sh, 0, 3, 1);
    /* the next append rolls; the directory fsync fails: the new file is removed */
    fi.fail_fsync = 1;
    slog_rec_in_t r = {"k", 1, (const uint8_t *)"x", 1};
    uint64_t first;
    tr_err err = {0};
    assert_int_equal(slog_shard_append(sh, &r, 1, 2, &first, &err), TR_EIO);
    assert_non_null(strstr(err.msg, "Fix:"));
    assert_int_equal(slog__shard_nsegs(sh), 1);
    char segs[4][256];
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    /* fdatasync of the new segment's header fails */
    fi.fail_fdatasync = 1;
    assert_int_equal(slog_shard_append(sh, &r, 1, 2, &first, &err), TR_EIO);
    assert_int_equal(seg_files(f->dir, segs, 4), 1);
    append_synced(sh, 3, 2, 3);
    assert_int_equal(slog__shard_nsegs(sh), 2);
    assert_int_equal(read_all(sh, 0, 2), 5);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 100, 0, 0);
    assert_int_equal(read_all(sh, 0, 2), 5);
    slog_shard_close(sh);
}

/* ---- a fault at every I/O point ------------------------------------------------------------- */

/* Every mutating I/O call of the shard (open with O_CREAT, pwrite, fdatasync, fsync,
 * ftruncate, rename, unlink) is a numbered point.  A run of the operation sequence counts
 * them; then for every k the sequence is run again with point k
 *   FP_FAIL:  failing with EIO (the shard must report it and stay consistent), or
 *   FP_CRASH: a crash: a pwrite writes half its bytes, and every later call fails as if the
 *             process had died; then everything not yet fdatasync'd is lost as a power cut
 *             would lose it (files cut back to their last synced size).
 * After each run the shard is reopened with real I/O: every acknowledged record (its sync
 * returned 0) must be there, whole; whatever else is there must be whole records with
 * contiguous seqs; no damage may be reported; the seqs never go back; appends work. */
enum { FP_COUNT, FP_FAIL, FP_CRASH };

#define FP_FILES 64
static struct {
    int mode, k, n, dead;
    struct {
        char path[300];
        off_t synced;
        int fd;
        int entry_synced;   /* its directory entry is durable (a directory fsync since) */
        int had_old;        /* renamed over a file whose bytes are in old[0..old_len) */
        uint8_t old[64];
        size_t old_len;
    } f[FP_FILES];
    int nf;
} fp;

static int fp_point(void) {
    if (fp.dead) {
        errno = EIO;
        return -1;
    }
    fp.n++;
    if (fp.mode == FP_COUNT || fp.n != fp.k) return 0;
    if (fp.mode == FP_CRASH) fp.dead = 1;
    errno = EIO;
    return 1;
}

static int fp_file(int fd) {
    for (int i = 0; i < fp.nf; i++)
        if (fp.f[i].fd == fd) return i;
    return -1;
}

static int fp_open(const char *path, int flags, mode_t mode) {
    if (flags & O_CREAT) {
        if (fp_point()) return -1;
    }
    int fd = slog__io_posix.open(path, flags, mode);
    if (fd >= 0 && (flags & (O_WRONLY | O_RDWR))) {
        int i = -1;
        for (int j = 0; j < fp.nf; j++)
            if (!strcmp(fp.f[j].path, path)) i = j;
        if (i < 0 && fp.nf < FP_FILES) {
            i = fp.nf++;
            memset(&fp.f[i], 0, sizeof fp.f[i]);
            snprintf(fp.f[i].path, sizeof fp.f[i].path, "%s", path);
            struct stat st;
            fp.f[i].synced = (flags & O_TRUNC) ? 0 : (stat(path, &st) == 0 ? st.st_size : 0);
            fp.f[i].entry_synced = !(flags & O_CREAT); /* created now (or it existed: fine) */
        } else if (i >= 0 && (flags & O_TRUNC)) {
            fp.f[i].synced = 0;
        }
        if (i >= 0) fp.f[i].fd = fd;
    }
    return fd;
}

static int fp_close(int fd) {
    int i = fp_file(fd);
    if (i >= 0) fp.f[i].fd = -1;
    return slog__io_posix.close(fd);
}

static ssize_t fp_pwrite(int fd, const void *b, size_t n, off_t off) {
    int hit = fp_point();
    if (hit < 0) return -1;
    if (hit && fp.mode == FP_CRASH && n > 1) {
        slog__io_posix.pwrite(fd, b, n / 2, off); /* torn */
        errno = EIO;
        return -1;
    }
    if (hit) return -1;
    return slog__io_posix.pwrite(fd, b, n, off);
}

static int fp_fdatasync(int fd) {
    if (fp_point()) return -1;
    int i = fp_file(fd); /* no real fdatasync: fp_power_cut models what it guarantees */
    struct stat st;
    if (i >= 0 && fstat(fd, &st) == 0) fp.f[i].synced = st.st_size;
    return 0;
}

static int fp_fsync(int fd) { /* the shard directory: every entry in it is durable now */
    (void)fd;
    if (fp_point()) return -1;
    for (int i = 0; i < fp.nf; i++) fp.f[i].entry_synced = 1;
    return 0;
}
static int fp_ftruncate(int fd, off_t len) {
    if (fp_point()) return -1;
    int rc = slog__io_posix.ftruncate(fd, len);
    int i = fp_file(fd);
    if (!rc && i >= 0 && fp.f[i].synced > len) fp.f[i].synced = len;
    return rc;
}
static int fp_rename(const char *a, const char *b) {
    if (fp_point()) return -1;
    uint8_t old[64];
    int ofd = open(b, O_RDONLY);
    ssize_t ol = ofd >= 0 ? read(ofd, old, sizeof old) : -1;
    if (ofd >= 0) close(ofd);
    int rc = slog__io_posix.rename(a, b);
    if (rc) return rc;
    for (int i = 0; i < fp.nf; i++) {
        if (!strcmp(fp.f[i].path, b)) fp.f[i].path[0] = '\0'; /* replaced */
        if (strcmp(fp.f[i].path, a)) continue;
        snprintf(fp.f[i].path, sizeof fp.f[i].path, "%s", b);
        fp.f[i].entry_synced = 0;
        fp.f[i].had_old = ol >= 0;
        if (ol > 0) memcpy(fp.f[i].old, old, (size_t)ol);
        fp.f[i].old_len = ol > 0 ? (size_t)ol : 0;
    }
    return 0;
}
static int fp_unlink(const char *p) { return fp_point() ? -1 : slog__io_posix.unlink(p); }

static slog_io_t fp_io;

/* Empty the directory but keep it (recreating it would fsync its parent each time: slow). */
static void fp_clear(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[600];
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        assert_int_equal(unlink(p), 0);
    }
    if (d) closedir(d);
}

/* The power cut: un-synced bytes of every file written are gone, and so are directory
 * entries made since the last directory fsync (a new file vanishes, a rename is undone). */
static void fp_power_cut(void) {
    for (int i = 0; i < fp.nf; i++) {
        struct stat st;
        const char *p = fp.f[i].path;
        if (!*p) continue;
        if (!fp.f[i].entry_synced) {
            unlink(p);
            if (fp.f[i].had_old) {
                int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, fp.f[i].old, fp.f[i].old_len), (ssize_t)fp.f[i].old_len);
                close(fd);
            }
            continue;
        }
        if (stat(p, &st) == 0 && st.st_size > fp.f[i].synced)
            assert_int_equal(truncate(p, fp.f[i].synced), 0);
    }
}

/* The operation sequence: batches with syncs, segment rolls (small segments), a retention
 * trim, a close and a reopen.  Returns the acknowledged end (every seq below it was synced)
 * and, in *begin, the first seq that must still be there. */
static uint64_t fp_run(const char *dir, uint64_t *begin) {
    slog_shard_opts_t o = {600, 0, 0, 0};
    slog_shard_t *sh = NULL;
    tr_err err;
    uint64_t acked = 0;
    *begin = 0;
    for (int round = 0; round < 2 && !fp.dead; round++) {
        if (slog_shard_open(dir, &o, &sh, &err) != 0) break;
        for (int b = 0; b < 8 && !fp.dead; b++) {
            uint64_t first;
            assert_int_equal(slog_shard_append(sh, NULL, 0, 0, &first, &err), 0);
            slog_rec_in_t in[3];
            char pks[3][SLOG_MAX_PK + 1];
            static uint8_t bufs[3][256];
            for (int i = 0; i < 3; i++) {
                gen(first + (uint64_t)i, pks[i], &in[i].pk_len, bufs[i], &in[i].data_len);
                in[i].pk = pks[i];
                in[i].data = bufs[i];
            }
            if (slog_shard_append(sh, in, 3, 100 * round + b, &first, &err) != 0) continue;
            if (slog_shard_sync(sh, &err) == 0) acked = slog_shard_end(sh);
            if (b == 5 && slog_shard_trim(sh, 100 * round + 2, &err) >= 0)
                *begin = slog_shard_begin(sh);
        }
        if (slog_shard_begin(sh) > *begin) *begin = slog_shard_begin(sh);
        slog_shard_close(sh);
        sh = NULL;
    }
    return acked;
}

static void fault_every_point(void **st) {
    fixture_t *f = *st;
    fp_io = slog__io_posix;
    fp_io.open = fp_open;
    fp_io.close = fp_close;
    fp_io.pwrite = fp_pwrite;
    fp_io.fdatasync = fp_fdatasync;
    fp_io.fsync = fp_fsync;
    fp_io.ftruncate = fp_ftruncate;
    fp_io.rename = fp_rename;
    fp_io.unlink = fp_unlink;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/fp", f->tmp);
    memset(&fp, 0, sizeof fp);
    slog__io_set_default(&fp_io);
    uint64_t begin, clean = fp_run(dir, &begin);
    slog__io_set_default(NULL);
    int points = fp.n;
    fprintf(stderr, "fault_every_point: %d I/O points\n", points);
    assert_true(points > 50);
    assert_int_equal(clean, 48);
    fp_clear(dir);
    int checked = 0;
    for (int mode = FP_FAIL; mode <= FP_CRASH; mode++) {
        for (int k = 1; k <= points; k++) {
            memset(&fp, 0, sizeof fp);
            fp.mode = mode;
            fp.k = k;
            slog__io_set_default(&fp_io);
            uint64_t acked = fp_run(dir, &begin);
            slog__io_set_default(NULL);
            if (mode == FP_CRASH) fp_power_cut();
            slog_shard_t *sh = open_ok(dir, 600, 0, 1);
            uint64_t end = slog_shard_end(sh);
            if (end < acked || slog_shard_begin(sh) > begin)
                fail_msg("mode %d point %d/%d: acked [%llu, %llu), after recovery [%llu, %llu)",
                         mode, k, points, (unsigned long long)begin, (unsigned long long)acked,
                         (unsigned long long)slog_shard_begin(sh), (unsigned long long)end);
            uint64_t b0 = slog_shard_begin(sh);
            assert_int_equal(read_all(sh, b0, 5), end - b0); /* whole, contiguous */
            slog_shard_health_t h = health(sh);
            if (h.damaged_ranges || h.missing || h.lost_records)
                fail_msg("mode %d point %d: damage reported after a %s", mode, k,
                         mode == FP_CRASH ? "crash" : "failed call");
            append_synced(sh, end, 2, 1000);
            slog_shard_close(sh);
            fp_clear(dir);
            checked++;
        }
    }
    assert_int_equal(checked, 2 * points);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

typedef struct conc {
    slog_shard_t *sh;
    atomic_ullong sync_started; /* w_next when the writer last called sync */
    atomic_int done;
    atomic_ullong reads, recs;
    int failed;
} conc_t;

static void *conc_reader(void *arg) {
    conc_t *c = arg;
    slog_read_t rd = {0};
    tr_err err;
    uint64_t next = 0, x = (uint64_t)(uintptr_t)&rd;
    while (!atomic_load(&c->done)) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t from = next;
        if ((x >> 60) == 0) from = slog_shard_begin(c->sh); /* races with trim on purpose */
        size_t maxr = 1 + (size_t)((x >> 20) % 300);
        size_t maxb = (x >> 40) % 4 == 0 ? 2000 : SIZE_MAX;
        int rc = slog_shard_read(c->sh, from, maxr, maxb, &rd, &err);
        uint64_t limit = atomic_load(&c->sync_started);
        if (rc) {
            fprintf(stderr, "reader: %s\n", err.msg);
            c->failed = 1;
            break;
        }
        for (size_t i = 0; i < rd.n; i++) {
            const slog_rec_t *r = &rd.recs[i];
            if (r->seq < from || r->seq != rd.recs[0].seq + i || r->seq >= limit || !rec_ok(r) ||
                (i && r->arrival_ms < rd.recs[i - 1].arrival_ms)) {
                fprintf(stderr, "reader: bad record seq %llu (from %llu, limit %llu)\n",
                        (unsigned long long)r->seq, (unsigned long long)from,
                        (unsigned long long)limit);
                c->failed = 1;
                break;
            }
        }
        if (c->failed) break;
        if (rd.n && rd.next_seq != rd.recs[rd.n - 1].seq + 1) c->failed = 1;
        if (rd.n) next = rd.next_seq;
        (void)slog_shard_seek_time(c->sh, (int64_t)((x >> 8) % 3000));
        (void)slog_shard_last_arrival(c->sh);
        atomic_fetch_add(&c->reads, 1);
        atomic_fetch_add(&c->recs, rd.n);
    }
    slog_read_free(&rd);
    return NULL;
}

/* Open .seg fds of this process under dir. */
static int open_seg_fds(const char *dir) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;
    char p[320], t[512];
    while (d && (de = readdir(d))) {
        snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
        ssize_t k = readlink(p, t, sizeof t - 1);
        if (k <= 0) continue;
        t[k] = '\0';
        if (!strncmp(t, dir, strlen(dir)) && strstr(t, ".seg")) n++;
    }
    if (d) closedir(d);
    return n;
}

/* Reading a long history does not leave an fd per segment open. */
static void read_fds_bounded(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 4096, 0, 1);
    uint64_t next = append_batches(sh, 0, 400, 10);
    char segs[512][256];
    assert_true(seg_files(f->dir, segs, 512) > 50);
    assert_int_equal(read_all(sh, 0, 7), next);       /* every record, every segment */
    assert_true(open_seg_fds(f->dir) <= 4 + 1);        /* SLOG_RO_FDS + the active one */
    assert_int_equal(read_all(sh, next / 2, 3), next - next / 2);
    assert_int_equal(read_all(sh, 0, 1000), next);     /* closed fds reopen on demand */
    assert_true(open_seg_fds(f->dir) <= 4 + 1);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 4096, 0, 1);                  /* and after a restart */
    assert_int_equal(read_all(sh, 0, 50), next);
    assert_true(open_seg_fds(f->dir) <= 4 + 1);
    slog_shard_close(sh);
}

static void concurrent_reader(void **st) {
    fixture_t *f = *st;
    conc_t c = {0};
    c.sh = open_ok(f->dir, 4096, 0, 1);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_create(&th[i], NULL, conc_reader, &c), 0);
    uint64_t next = 0;
    tr_err err;
    for (int b = 0; b < 3000 && !c.failed; b++) {
        size_t n = 1 + (size_t)(b * 7 % 40);
        append_gen(c.sh, next, n, b);
        next += n;
        if (b % 3 == 2) {
            atomic_store(&c.sync_started, next);
            sync_ok(c.sh);
        }
        if (b % 50 == 49) assert_true(slog_shard_trim(c.sh, b - 300, &err) >= 0);
    }
    atomic_store(&c.sync_started, next);
    sync_ok(c.sh);
    atomic_store(&c.done, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    assert_false(c.failed);
    assert_true(atomic_load(&c.reads) > 0);
    assert_true(slog_shard_begin(c.sh) > 0);
    assert_int_equal(read_all(c.sh, 0, 1000), next - slog_shard_begin(c.sh));
    slog_shard_close(c.sh);
}

/* Trim runs while a reader is inside its pread on the oldest segment: the reader keeps its
 * reference (and fd), finishes that segment, and stops at the trimmed boundary. */
static slog_shard_t *g_trim_sh;
static int g_trim_removed = -1;

static ssize_t t_pread_trim(int fd, void *b, size_t n, off_t off) {
    if (g_trim_sh) {
        tr_err e;
        slog_shard_t *sh = g_trim_sh;
        g_trim_sh = NULL;
        g_trim_removed = slog_shard_trim(sh, INT64_MAX, &e);
    }
    return slog__io_posix.pread(fd, b, n, off);
}

static void trim_during_read(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 300, 0, 1);
    uint64_t next = append_batches(sh, 0, 12, 3);
    slog_shard_close(sh);
    sh = open_ok(f->dir, 300, 0, 1); /* sealed segments are now opened by the reader */
    size_t nsegs = slog__shard_nsegs(sh);
    assert_true(nsegs >= 3);
    static slog_io_t io;
    io = slog__io_posix;
    io.pread = t_pread_trim;
    slog__shard_set_io(sh, &io);
    g_trim_sh = sh;
    slog_read_t rd = {0};
    tr_err err;
    assert_int_equal(slog_shard_read(sh, 0, 1000, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(g_trim_removed, (int)nsegs - 1);
    assert_true(rd.n > 0 && rd.n < next);
    assert_int_equal(rd.recs[0].seq, 0);
    for (size_t i = 0; i < rd.n; i++) assert_true(rec_ok(&rd.recs[i]));
    uint64_t begin = slog_shard_begin(sh);
    assert_true(rd.next_seq <= begin);
    assert_int_equal(slog_shard_read(sh, rd.next_seq, 1000, SIZE_MAX, &rd, &err), 0);
    assert_int_equal(rd.recs[0].seq, begin);
    assert_int_equal(rd.n, next - begin);
    slog_read_free(&rd);
    slog_shard_close(sh);
}

static void destroy_dir(void **st) {
    fixture_t *f = *st;
    slog_shard_t *sh = open_ok(f->dir, 200, 0, 1);
    for (int b = 0; b < 5; b++) { append_synced(sh, (uint64_t)b * 5, 5, b); }
    slog_shard_close(sh);
    tr_err err;
    assert_int_equal(slog_shard_destroy_dir(f->dir, &err), 0);
    assert_int_equal(access(f->dir, F_OK), -1);
    assert_int_equal(slog_shard_destroy_dir(f->dir, &err), 0); /* already gone: fine */
    assert_int_equal(slog_shard_destroy_dir(NULL, &err), TR_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(many_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(index_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_seqs, setup, teardown),
        cmocka_unit_test_setup_teardown(idx_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_mid_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_each_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_payload_looks_like_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_found_by_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_reader_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_reader_active, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_reader_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_nearby, setup, teardown),
        cmocka_unit_test_setup_teardown(damage_each_byte_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_header_last, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(seek_time_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(uncommitted_invisible, setup, teardown),
        cmocka_unit_test_setup_teardown(fault_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(fault_write, setup, teardown),
        cmocka_unit_test_setup_teardown(fault_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(fault_every_point, setup, teardown),
        cmocka_unit_test_setup_teardown(state_unwritable_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(read_fds_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(trim_during_read, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
