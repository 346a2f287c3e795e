/* SPDX-License-Identifier: Apache-2.0
 *
 * shard.c -- one shard's durable log: segment files, sparse index, commit, recovery, retention.
 *
 * The contract and the frame format are in shard.h; this file explains how they are kept.
 * Opening a shard (recovery, .dmg files, the state file) lives in shard_recover.c; the types,
 * constants and inline helpers both files share are in shard_int.h.
 *
 * Writing.  slog_shard_append builds a batch's frames in a staging buffer and writes them with
 * one pwrite() at the active segment's end (one per 4 MiB of batch).  Nothing is published
 * until slog_shard_sync has fdatasync'd the file: then, under the shard mutex, the segment's
 * committed size and end seq and the shard's committed end move forward.  Readers never look
 * past the committed point, so bytes that are in the file but not yet committed stay invisible.
 *
 * Rolling.  A segment is rolled by the first append that finds it at or past segment_bytes
 * AND fully committed.  Uncommitted data therefore only ever lives in the active segment, and
 * any failure is undone by one ftruncate of that segment back to a known size.  The price: a
 * segment can exceed segment_bytes by what is appended between two syncs (one group-commit
 * cycle).  A new segment's header is written and fdatasync'd and the directory fsync'd before
 * its first frame; the segment it replaces gets a .idx file (best effort, see Startup).
 *
 * Failures.  A failed append truncates its own bytes away; frames of earlier, successful
 * appends stay pending and the next sync may still commit them.  A failed fdatasync discards
 * everything not yet committed (after a failed fsync the page cache cannot be trusted):
 * ftruncate back to the committed size and rewind the seq counter to the committed end, so
 * the seqs handed out for the lost records are handed out again, none of them ever having been
 * visible.  If that ftruncate fails too, appends are refused until a retry of it succeeds.
 *
 * Index.  Every segment keeps a sparse in-memory index: an entry (seq, file offset, arrival)
 * for its first record and then whenever SLOG_IX_RECS records or SLOG_IX_BYTES bytes have
 * passed (about 48 KiB of RAM per 64 MiB segment).  A read starts at the entry at or before
 * the wanted seq and reads the range it needs with one pread; seek_time binary-searches the
 * arrival times and walks frame headers between two entries.
 *
 * Startup.  Every segment's 16-byte header is read and checked.  A sealed segment's index is
 * loaded from its .idx file when that file is intact (CRC32C) and describes the .seg's exact
 * size and seq range; otherwise the segment is scanned and checksummed in full and the .idx
 * rewritten.  A segment with damage on record (a .dmg file: see Recovery) is always scanned,
 * and gets no .idx.  So a restart reads the headers, the .idx files and the last segment -- not
 * every byte of the sealed segments.  The last segment is always scanned: that is recovery.
 * Sealed segments found at startup are opened lazily, on their first read.
 *
 * Concurrency.  One mutex (sh->mu) guards the segment array, every segment's committed
 * figures and index length, and the shard's begin/end.  Readers hold it only to find where to
 * read and to take a reference on the segment; their I/O runs unlocked.  Segments are
 * refcounted: trim takes a segment out of the array under the mutex and drops the array's
 * reference; whoever drops the last one closes the fd and frees the memory, so a reader in the
 * middle of a pread on a trimmed segment is safe (the file is unlinked, its inode lives on).
 * The writer is the only thread that changes anything, so it reads its own state unlocked and
 * takes the mutex only to publish (once per batch and once per sync).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fs.h"
#include "core/tlog.h"
#include "log/shard_int.h"

/* ---- default I/O ---------------------------------------------------------------------------- */

static int px_open(const char *path, int flags, mode_t mode) {
    int fd;
    do fd = open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}
static int px_close(int fd) { return close(fd); }
static ssize_t px_pread(int fd, void *b, size_t n, off_t off) { return pread(fd, b, n, off); }
static ssize_t px_pwrite(int fd, const void *b, size_t n, off_t off) {
    return pwrite(fd, b, n, off);
}
static int px_fdatasync(int fd) { return fdatasync(fd); }
static int px_fsync(int fd) { return fsync(fd); }
static int px_ftruncate(int fd, off_t len) { return ftruncate(fd, len); }
static int px_fstat(int fd, struct stat *st) { return fstat(fd, st); }
static int px_unlink(const char *path) { return unlink(path); }
static int px_rename(const char *a, const char *b) { return rename(a, b); }

const slog_io_t slog__io_posix = {px_open,  px_close,     px_pread, px_pwrite, px_fdatasync,
                                  px_fsync, px_ftruncate, px_fstat, px_unlink, px_rename};

static const slog_io_t *io_default = &slog__io_posix;

void slog__io_set_default(const slog_io_t *io) { io_default = io ? io : &slog__io_posix; }

void slog__shard_set_io(slog_shard_t *sh, const slog_io_t *io) {
    if (sh) sh->io = io ? io : &slog__io_posix;
}

size_t slog__shard_nsegs(slog_shard_t *sh) {
    if (!sh) return 0;
    pthread_mutex_lock(&sh->mu);
    size_t n = sh->nsegs;
    pthread_mutex_unlock(&sh->mu);
    return n;
}

static const char *errtxt(int e, char *b, size_t n) { return strerror_r(e, b, n); }

/* TR_EIO with errno text and the path: "<what> <path> failed: <errno text>; Fix: <fix>". */
int slog__io_err(tr_err *err, int e, const char *what, const char *path, const char *fix) {
    char eb[128];
    return tr_err_set(err, TR_EIO, "%s %s failed: %s; Fix: %s", what, path,
                      errtxt(e, eb, sizeof eb), fix);
}

/* Grow seg->ix to hold `need` entries.  Caller holds sh->mu if readers can see seg. */
int slog__ix_reserve(slog_seg_t *seg, size_t need) {
    if (need <= seg->ixcap) return 0;
    size_t cap = seg->ixcap ? seg->ixcap : 16;
    while (cap < need) cap *= 2;
    slog_ix_t *ix = realloc(seg->ix, cap * sizeof *ix);
    if (!ix) return TR_ENOMEM;
    seg->ix = ix;
    seg->ixcap = cap;
    return 0;
}

/* First index entry in [0, n) with seq > s (upper bound). */
static size_t ix_upper_seq(const slog_ix_t *ix, size_t n, uint64_t s) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].seq <= s) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First index entry in [0, n) with seq >= s (lower bound). */
static size_t ix_lower_seq(const slog_ix_t *ix, size_t n, uint64_t s) {
    return s == 0 ? 0 : ix_upper_seq(ix, n, s - 1);
}

/* ---- segments ------------------------------------------------------------------------------- */

slog_seg_t *slog__seg_new(slog_shard_t *sh, uint64_t first) {
    slog_seg_t *seg = calloc(1, sizeof *seg);
    size_t n = strlen(sh->dir) + 1 + 20 + 4 + 1;
    char *path = malloc(n);
    if (!seg || !path) {
        free(seg);
        free(path);
        return NULL;
    }
    snprintf(path, n, "%s/%020llu.seg", sh->dir, (unsigned long long)first);
    atomic_init(&seg->refs, 1);
    seg->first_seq = first;
    seg->path = path;
    seg->fd = -1;
    seg->w_size = seg->pub_size = SLOG_SEG_HDR;
    seg->pub_end = first;
    seg->pub_last_arrival = -1;
    return seg;
}

/* DIR/<first>.idx (or .idx.tmp) into out (PATH_MAX). */
void slog__seg_idx_path(const slog_seg_t *seg, char *out, const char *suffix) {
    size_t n = strlen(seg->path) - 4; /* strip ".seg" */
    snprintf(out, PATH_MAX, "%.*s%s", (int)n, seg->path, suffix);
}

/* Older segments a shard keeps open for readers.  A shard retained for days holds thousands
 * of 64 MiB segments; a reader going through them (TRIM_HORIZON, AT_TIMESTAMP) must not leave
 * one fd each behind, or the process runs into ulimit -n. */
#define SLOG_RO_FDS 4

/* Close fds of older segments no reader holds, oldest first, down to SLOG_RO_FDS (keep stays
 * open).  Older segments are complete and synced (a roll waits for the commit), so nobody
 * writes through their fds; readers take a reference under sh->mu before using seg->fd, so
 * refs == 1 (the array's) under sh->mu means no reader is using it.  Caller holds sh->mu. */
static void ro_fds_trim_locked(slog_shard_t *sh, const slog_seg_t *keep) {
    size_t open = 0;
    for (size_t i = 0; i + 1 < sh->nsegs; i++) open += sh->segs[i]->fd >= 0;
    for (size_t i = 0; i + 1 < sh->nsegs && open > SLOG_RO_FDS; i++) {
        slog_seg_t *s = sh->segs[i];
        if (s == keep || s->fd < 0 || atomic_load(&s->refs) != 1) continue;
        sh->io->close(s->fd);
        s->fd = -1;
        open--;
    }
}

/* Open the segment's fd if needed.  Caller holds sh->mu. */
static int seg_fd_locked(slog_shard_t *sh, slog_seg_t *seg, tr_err *err) {
    if (seg->fd >= 0) return 0;
    int fd = sh->io->open(seg->path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return slog__io_err(err, errno, "open", seg->path,
                            "check that the file exists and is readable, and that the open-file "
                            "limit (ulimit -n) is high enough");
    seg->fd = fd;
    ro_fds_trim_locked(sh, seg);
    return 0;
}

/* Room for `need` segments in the array.  Caller holds sh->mu once readers may exist. */
int slog__segs_reserve(slog_shard_t *sh, size_t need) {
    if (need <= sh->segcap) return 0;
    size_t cap = sh->segcap ? sh->segcap * 2 : 8;
    while (cap < need) cap *= 2;
    slog_seg_t **s = realloc(sh->segs, cap * sizeof *s);
    if (!s) return TR_ENOMEM;
    sh->segs = s;
    sh->segcap = cap;
    return 0;
}

/* Last segment with first_seq <= seq.  Caller holds sh->mu; seq >= sh->begin. */
static slog_seg_t *seg_find_locked(slog_shard_t *sh, uint64_t seq) {
    size_t lo = 0, hi = sh->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sh->segs[mid]->first_seq <= seq) lo = mid + 1;
        else hi = mid;
    }
    return sh->segs[lo ? lo - 1 : 0];
}

void slog__seg_header(uint8_t hdr[SLOG_SEG_HDR], uint64_t first) {
    memcpy(hdr, slog__seg_magic, 8);
    slog__put64(hdr + 8, first);
}

/* Check a segment's 16-byte header.  NULL if fine, else what is wrong. */
const char *slog__seg_header_check(const slog_shard_t *sh, const slog_seg_t *seg, int fd,
                                   uint64_t size, int *ioerr) {
    uint8_t hdr[SLOG_SEG_HDR];
    *ioerr = 0;
    if (size < SLOG_SEG_HDR) return "file shorter than the 16-byte header";
    int r = slog__full_pread(sh->io, fd, hdr, sizeof hdr, 0);
    if (r < 0) {
        *ioerr = errno;
        return "read error";
    }
    if (r > 0) return "file shorter than the 16-byte header";
    if (memcmp(hdr, slog__seg_magic, 8) != 0) return "bad magic (expected TRSLOG01)";
    if (slog__get64(hdr + 8) != seg->first_seq)
        return "first seq in the header differs from the file name";
    return NULL;
}

/* Create DIR/<first>.seg with its header, make it durable, append it to the array. */
int slog__seg_create(slog_shard_t *sh, uint64_t first, tr_err *err) {
    slog_seg_t *seg = slog__seg_new(sh, first);
    if (!seg)
        return tr_err_set(err, TR_ENOMEM,
                          "out of memory creating a segment in %s; Fix: free "
                          "memory or lower the number of shards",
                          sh->dir);
    pthread_mutex_lock(&sh->mu);
    int rc = slog__segs_reserve(sh, sh->nsegs + 1);
    pthread_mutex_unlock(&sh->mu);
    if (rc || slog__ix_reserve(seg, 16)) {
        slog__seg_unref(sh, seg);
        return tr_err_set(err, TR_ENOMEM,
                          "out of memory creating a segment in %s; Fix: free "
                          "memory or lower the number of shards",
                          sh->dir);
    }
    /* A file with this name can only be the debris of an earlier failed create: no segment
     * holds this seq yet.  O_TRUNC replaces it. */
    const char *what = "create";
    int fd = sh->io->open(seg->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) goto fail;
    uint8_t hdr[SLOG_SEG_HDR];
    slog__seg_header(hdr, first);
    what = "write header of";
    if (slog__full_pwrite(sh->io, fd, hdr, sizeof hdr, 0) != 0) goto fail;
    if (!sh->no_sync) {
        what = "fdatasync";
        if (sh->io->fdatasync(fd) != 0) goto fail;
        what = "fsync directory after creating";
        if (sh->io->fsync(sh->dirfd) != 0) goto fail;
    }
    seg->fd = fd;
    pthread_mutex_lock(&sh->mu);
    sh->segs[sh->nsegs++] = seg;
    pthread_mutex_unlock(&sh->mu);
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) sh->io->close(fd);
    sh->io->unlink(seg->path);
    rc = slog__io_err(err, e, what, seg->path, SLOG_FIX_DISK);
    slog__seg_unref(sh, seg);
    return rc;
}

/* ---- .idx files ----------------------------------------------------------------------------- */

/* Write the sealed segment's index next to it (tmp + rename).  Best effort: a missing or bad
 * .idx only costs a scan at the next start. */
void slog__idx_write(slog_shard_t *sh, const slog_seg_t *seg) {
    char path[PATH_MAX], tmp[PATH_MAX];
    pthread_mutex_lock(&sh->mu); /* a reader may be adding a hole */
    size_t nholes = seg->nholes;
    pthread_mutex_unlock(&sh->mu);
    if (nholes) return; /* rescanned (and its damage reported again) at every start */
    slog__seg_idx_path(seg, path, ".idx");
    slog__seg_idx_path(seg, tmp, ".idx.tmp");
    size_t n = SLOG_IDX_HDR + seg->nix * SLOG_IDX_ENT;
    uint8_t *b = malloc(n);
    if (!b) return;
    memcpy(b, slog__idx_magic, 8);
    slog__put64(b + 8, seg->first_seq);
    slog__put64(b + 16, seg->pub_end);
    slog__put64(b + 24, seg->pub_size);
    slog__put64(b + 32, (uint64_t)seg->pub_last_arrival);
    slog__put32(b + 40, (uint32_t)seg->nix);
    for (size_t i = 0; i < seg->nix; i++) {
        uint8_t *e = b + SLOG_IDX_HDR + i * SLOG_IDX_ENT;
        slog__put64(e, seg->ix[i].seq);
        slog__put64(e + 8, seg->ix[i].off);
        slog__put64(e + 16, (uint64_t)seg->ix[i].arrival_ms);
    }
    uint32_t crc = tr_crc32c(0, b, 44);
    crc = tr_crc32c(crc, b + SLOG_IDX_HDR, n - SLOG_IDX_HDR);
    slog__put32(b + 44, crc);
    int fd = sh->io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0 && slog__full_pwrite(sh->io, fd, b, n, 0) == 0;
    int e = errno;
    if (fd >= 0) sh->io->close(fd);
    if (ok && sh->io->rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    free(b);
    if (!ok) {
        char eb[128];
        sh->io->unlink(tmp);
        tr_warn("slog",
                "shard %s: cannot write index %s: %s; the next start will scan the "
                "segment instead. Fix: check the disk",
                sh->dir, path, errtxt(e, eb, sizeof eb));
    }
}

/* Load the .idx of a sealed segment of seg_size bytes.  1 if it was usable (seg's index and
 * committed figures are set), 0 if not (seg untouched). */
int slog__idx_load(slog_shard_t *sh, slog_seg_t *seg, uint64_t seg_size) {
    char path[PATH_MAX];
    slog__seg_idx_path(seg, path, ".idx");
    int fd = sh->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct stat st;
    uint8_t *b = NULL;
    slog_ix_t *ix = NULL;
    int ok = 0;
    if (sh->io->fstat(fd, &st) != 0 || st.st_size < SLOG_IDX_HDR + SLOG_IDX_ENT ||
        (st.st_size - SLOG_IDX_HDR) % SLOG_IDX_ENT != 0 ||
        (uint64_t)(st.st_size - SLOG_IDX_HDR) / SLOG_IDX_ENT > seg_size / SLOG_FRAME_HDR)
        goto out;
    size_t n = (size_t)st.st_size, nix = (n - SLOG_IDX_HDR) / SLOG_IDX_ENT;
    if (!(b = malloc(n)) || !(ix = malloc(nix * sizeof *ix))) goto out;
    if (slog__full_pread(sh->io, fd, b, n, 0) != 0) goto out;
    uint32_t crc = tr_crc32c(tr_crc32c(0, b, 44), b + SLOG_IDX_HDR, n - SLOG_IDX_HDR);
    uint64_t end = slog__get64(b + 16);
    int64_t last = (int64_t)slog__get64(b + 32);
    if (memcmp(b, slog__idx_magic, 8) != 0 || slog__get64(b + 8) != seg->first_seq ||
        slog__get64(b + 24) != seg_size || slog__get32(b + 40) != nix ||
        slog__get32(b + 44) != crc || end <= seg->first_seq)
        goto out;
    for (size_t i = 0; i < nix; i++) {
        const uint8_t *e = b + SLOG_IDX_HDR + i * SLOG_IDX_ENT;
        ix[i].seq = slog__get64(e);
        ix[i].off = slog__get64(e + 8);
        ix[i].arrival_ms = (int64_t)slog__get64(e + 16);
        if (i == 0 ? (ix[0].seq != seg->first_seq || ix[0].off != SLOG_SEG_HDR)
                   : (ix[i].seq <= ix[i - 1].seq || ix[i].off <= ix[i - 1].off ||
                      ix[i].arrival_ms < ix[i - 1].arrival_ms))
            goto out;
        if (ix[i].seq >= end || ix[i].off >= seg_size) goto out;
    }
    if (last < ix[nix - 1].arrival_ms) goto out;
    seg->ix = ix;
    seg->nix = seg->ixcap = nix;
    ix = NULL;
    seg->pub_size = seg->w_size = seg_size;
    seg->pub_end = end;
    seg->pub_last_arrival = last;
    ok = 1;
out:
    free(ix);
    free(b);
    sh->io->close(fd);
    return ok;
}

static void shard_free(slog_shard_t *sh) {
    if (!sh) return;
    for (size_t i = 0; i < sh->nsegs; i++) slog__seg_unref(sh, sh->segs[i]);
    free(sh->segs);
    if (sh->dirfd >= 0) close(sh->dirfd);
    pthread_mutex_destroy(&sh->mu);
    pthread_mutex_destroy(&sh->dmg_mu);
    free(sh->stage);
    free(sh->dir);
    free(sh);
}

/* ---- open / close --------------------------------------------------------------------------- */

int slog_shard_open(const char *dir, const slog_shard_opts_t *opts, slog_shard_t **out,
                    tr_err *err) {
    if (out) *out = NULL;
    if (!dir || !*dir || !out)
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_open: dir and out are required; Fix: pass "
                          "the shard's directory and a result pointer");
    if (strlen(dir) > PATH_MAX - 64)
        return tr_err_set(err, TR_EINVAL,
                          "shard directory path is too long (%zu bytes); Fix: "
                          "use a data directory with a shorter path",
                          strlen(dir));
    slog_shard_t *sh = calloc(1, sizeof *sh);
    if (!sh || !(sh->dir = strdup(dir))) {
        free(sh);
        return tr_err_set(err, TR_ENOMEM, "out of memory opening shard %s; Fix: free memory", dir);
    }
    sh->dirfd = -1;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_mutex_init(&sh->dmg_mu, NULL);
    sh->io = io_default;
    sh->seg_bytes = opts && opts->segment_bytes ? opts->segment_bytes : SLOG_DEFAULT_SEGMENT;
    sh->no_sync = opts ? opts->no_sync : 0;
    sh->min_next = opts ? opts->min_next : 0;
    int rc = 0;
    if (tr_mkdir_p(dir)) {   /* each new directory durable in its parent */
        rc = slog__io_err(err, errno, "create directory", dir,
                          "check the permissions of the data directory and free space");
        goto fail;
    }
    sh->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sh->dirfd < 0) {
        rc = slog__io_err(err, errno, "open directory", dir,
                          "make sure the path is a directory and readable");
        goto fail;
    }
    if ((rc = slog__shard_load(sh, opts ? opts->first_seq : 0, err)) != 0) goto fail;
    *out = sh;
    return 0;
fail:
    shard_free(sh);
    return rc;
}

void slog_shard_close(slog_shard_t *sh) { shard_free(sh); }

void slog_shard_set_hwm_hook(slog_shard_t *sh, slog_shard_hwm_fn fn, void *arg) {
    if (!sh) return;
    sh->hwm_fn = fn;
    sh->hwm_arg = arg;
    if (fn) {
        sh->st_dirty = 1; /* the next append rewrites DIR/state and so calls fn */
        sh->hwm = 0;      /* ... with a mark above this, whatever the file holds */
    }
}

/* ---- writer --------------------------------------------------------------------------------- */

/* Retry cutting a failed batch's bytes off the active segment. */
static int w_retry_trunc(slog_shard_t *sh, tr_err *err) {
    slog_seg_t *seg = slog__seg_active(sh);
    if (sh->io->ftruncate(seg->fd, (off_t)seg->w_size) != 0)
        return slog__io_err(err, errno, "truncate failed batch off", seg->path,
                            SLOG_FIX_DISK " (appends are refused until this succeeds)");
    sh->w_trunc_pending = 0;
    return 0;
}

/* Cut the active segment back to w_size after a failed batch.  The bytes past it were never
 * part of the log; if the cut fails, appends are refused until a retry succeeds. */
static void w_undo_batch(slog_shard_t *sh) {
    slog_seg_t *seg = slog__seg_active(sh);
    if (sh->io->ftruncate(seg->fd, (off_t)seg->w_size) != 0) {
        char eb[128];
        sh->w_trunc_pending = 1;
        tr_error("slog",
                 "shard %s: cannot truncate %s back to %llu bytes after a failed write: "
                 "%s; appends are refused until it succeeds. Fix: " SLOG_FIX_DISK,
                 sh->dir, seg->path, (unsigned long long)seg->w_size, errtxt(errno, eb, sizeof eb));
    }
}

/* Forget everything not committed: after a failed fdatasync nothing un-synced can be trusted. */
static void w_rewind(slog_shard_t *sh) {
    slog_seg_t *seg = slog__seg_active(sh);
    seg->w_size = seg->pub_size;
    sh->w_next = sh->pub_end;
    sh->w_last_arrival = sh->pub_last_arrival;
    pthread_mutex_lock(&sh->mu);
    seg->nix = ix_lower_seq(seg->ix, seg->nix, sh->pub_end);
    pthread_mutex_unlock(&sh->mu);
    w_undo_batch(sh);
}

/* Start a new segment at w_next.  Only called when the active one is fully committed. */
static int seg_roll(slog_shard_t *sh, tr_err *err) {
    slog_seg_t *old = slog__seg_active(sh);
    int rc = slog__seg_create(sh, sh->w_next, err);
    if (rc) return rc;
    sh->st_dirty = 1; /* DIR/state names the new newest segment before its first frame */
    slog__idx_write(sh, old);
    pthread_mutex_lock(&sh->mu);
    ro_fds_trim_locked(sh, NULL); /* the old segment's write fd is a reader fd now */
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

int slog_shard_append(slog_shard_t *sh, const slog_rec_in_t *recs, size_t n, int64_t arrival_ms,
                      uint64_t *first_seq, tr_err *err) {
    if (!sh || (n && !recs))
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_append: shard and records are required; "
                          "Fix: pass an open shard and an array of n records");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const slog_rec_in_t *r = &recs[i];
        if (r->pk_len > SLOG_MAX_PK)
            return tr_err_set(err, TR_EINVAL,
                              "record %zu: partition key is %u bytes, the limit "
                              "is %d; Fix: shorten the partition key",
                              i, r->pk_len, SLOG_MAX_PK);
        if (r->data_len > SLOG_MAX_DATA)
            return tr_err_set(err, TR_EINVAL,
                              "record %zu: data is %u bytes, the limit is %d; "
                              "Fix: split the record",
                              i, r->data_len, SLOG_MAX_DATA);
        if ((r->pk_len && !r->pk) || (r->data_len && !r->data))
            return tr_err_set(err, TR_EINVAL,
                              "record %zu: NULL pointer with a non-zero length; "
                              "Fix: pass the partition key and data buffers",
                              i);
        total += (uint64_t)SLOG_FRAME_HDR + r->pk_len + r->data_len;
    }
    if (first_seq) *first_seq = sh->w_next;
    if (n == 0) return 0;
    int rc;
    if (sh->w_trunc_pending && (rc = w_retry_trunc(sh, err)) != 0) return rc;
    if (arrival_ms < sh->w_last_arrival) arrival_ms = sh->w_last_arrival; /* keep it monotonic */

    slog_seg_t *seg = slog__seg_active(sh);
    if (seg->w_size >= sh->seg_bytes && sh->w_next > seg->first_seq && sh->w_next == sh->pub_end) {
        if ((rc = seg_roll(sh, err)) != 0) return rc;
        seg = slog__seg_active(sh);
    }
    if (seg->w_size + total > (uint64_t)INT64_MAX)
        return tr_err_set(err, TR_EINVAL, "batch too large; Fix: append fewer records at once");
    if ((sh->st_dirty || sh->w_next + n > sh->hwm) &&
        (rc = slog__state_write(sh, slog__sat_add(sh->w_next + n, SLOG_STATE_STEP), seg->first_seq,
                                err)) != 0)
        return rc;

    /* Pass 1: how many index entries, so the memory is there before anything is written. */
    size_t nix = seg->nix, k = 0;
    slog_ix_t last = nix ? seg->ix[nix - 1] : (slog_ix_t){0, 0, 0};
    int have = nix > 0;
    uint64_t off = seg->w_size, seq = sh->w_next;
    for (size_t i = 0; i < n; i++) {
        if (slog__ix_due(have, &last, seq, off)) {
            last = (slog_ix_t){seq, off, arrival_ms};
            have = 1;
            k++;
        }
        off += (uint64_t)SLOG_FRAME_HDR + recs[i].pk_len + recs[i].data_len;
        seq++;
    }
    if (nix + k > seg->ixcap) {
        pthread_mutex_lock(&sh->mu); /* readers search seg->ix under the mutex */
        rc = slog__ix_reserve(seg, nix + k);
        pthread_mutex_unlock(&sh->mu);
        if (rc)
            return tr_err_set(err, TR_ENOMEM, "out of memory indexing shard %s; Fix: free memory",
                              sh->dir);
    }
    size_t need = (size_t)slog__min64(total, SLOG_STAGE_MAX + SLOG_FRAME_MAX);
    if (sh->stage_cap < need) {
        uint8_t *s = realloc(sh->stage, need);
        if (!s)
            return tr_err_set(err, TR_ENOMEM,
                              "out of memory staging %zu records; Fix: free "
                              "memory or append smaller batches",
                              n);
        sh->stage = s;
        sh->stage_cap = need;
    }

    /* Pass 2: frames into the staging buffer, written out every SLOG_STAGE_MAX bytes.  New
     * index entries go to seg->ix past nix, which readers do not look at until nix grows. */
    size_t sl = 0, kk = 0;
    uint64_t woff = seg->w_size;
    last = nix ? seg->ix[nix - 1] : (slog_ix_t){0, 0, 0};
    have = nix > 0;
    off = seg->w_size;
    seq = sh->w_next;
    for (size_t i = 0; i < n; i++) {
        const slog_rec_in_t *r = &recs[i];
        uint32_t flen = (uint32_t)SLOG_FRAME_HDR + r->pk_len + r->data_len;
        if (sl && sl + flen > SLOG_STAGE_MAX) {
            if (slog__full_pwrite(sh->io, seg->fd, sh->stage, sl, woff) != 0) goto fail;
            woff += sl;
            sl = 0;
        }
        if (slog__ix_due(have, &last, seq, off)) {
            last = (slog_ix_t){seq, off, arrival_ms};
            have = 1;
            seg->ix[nix + kk++] = last;
        }
        uint8_t *p = sh->stage + sl;
        slog__put32(p, flen);
        slog__put64(p + 8, seq);
        slog__put64(p + 16, (uint64_t)arrival_ms);
        slog__put16(p + 24, r->pk_len);
        if (r->pk_len) memcpy(p + SLOG_FRAME_HDR, r->pk, r->pk_len);
        if (r->data_len) memcpy(p + SLOG_FRAME_HDR + r->pk_len, r->data, r->data_len);
        slog__put32(p + 4, tr_crc32c(0, p + 8, flen - 8));
        sl += flen;
        off += flen;
        seq++;
    }
    if (sl && slog__full_pwrite(sh->io, seg->fd, sh->stage, sl, woff) != 0) goto fail;

    seg->w_size = off;
    sh->w_next = seq;
    sh->w_last_arrival = arrival_ms;
    if (kk) {
        pthread_mutex_lock(&sh->mu);
        seg->nix = nix + kk;
        pthread_mutex_unlock(&sh->mu);
    }
    return 0;
fail:;
    int e = errno;
    w_undo_batch(sh);
    char eb[128];
    return tr_err_set(err, TR_EIO,
                      "write to %s failed: %s; none of the %zu records of this batch "
                      "was appended (the shard stays usable). Fix: " SLOG_FIX_DISK,
                      seg->path, errtxt(e, eb, sizeof eb), n);
}

int slog_shard_sync(slog_shard_t *sh, tr_err *err) {
    if (!sh)
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_sync: shard is NULL; Fix: pass an open "
                          "shard");
    slog_seg_t *seg = slog__seg_active(sh);
    if (sh->w_trunc_pending) {
        tr_err tmp;
        if (w_retry_trunc(sh, &tmp) != 0)
            tr_warn("slog", "shard %s: %s", sh->dir, tmp.msg); /* the committed part is fine */
    }
    if (sh->w_next == sh->pub_end) return 0;
    if (!sh->no_sync && sh->io->fdatasync(seg->fd) != 0) {
        int e = errno;
        unsigned long long lost = (unsigned long long)(sh->w_next - sh->pub_end);
        w_rewind(sh);
        char eb[128];
        return tr_err_set(err, TR_EIO,
                          "fdatasync %s failed: %s; the %llu records appended since "
                          "the last sync were not committed and were discarded (append them "
                          "again; the shard stays usable). Fix: " SLOG_FIX_DISK,
                          seg->path, errtxt(e, eb, sizeof eb), lost);
    }
    pthread_mutex_lock(&sh->mu);
    seg->pub_size = seg->w_size;
    seg->pub_end = sh->w_next;
    seg->pub_last_arrival = sh->w_last_arrival;
    sh->pub_end = sh->w_next;
    sh->pub_last_arrival = sh->w_last_arrival;
    pthread_mutex_unlock(&sh->mu);
    return 0;
}

/* ---- readers -------------------------------------------------------------------------------- */

/* Reader window over out->buf while reading one segment:
 *   out->buf[0 .. keep)     frames already accepted (the recs point there);
 *   out->buf[cur .. blen)   file bytes [pos, pos + blen - cur) read ahead, not parsed yet;
 *   out->buf[keep .. cur)   skipped frames (only before the first wanted one). */
typedef struct rd_win {
    size_t keep, cur, blen;
    uint64_t pos;
} rd_win_t;

static int rd_corrupt(slog_shard_t *sh, const slog_seg_t *seg, uint64_t off, uint64_t seq,
                      const char *why, tr_err *err) {
    return tr_err_set(err, TR_ECORRUPT,
                      "shard %s: committed data in %s is damaged at offset %llu (record seq %llu: "
                      "%s). Fix: the disk is losing data; restore the segment from a backup, or "
                      "move it and every older segment out of the directory and restart (their "
                      "records are lost)",
                      sh->dir, seg->path, (unsigned long long)off, (unsigned long long)seq, why);
}

/* Make at least `need` bytes of the file at w->pos available at out->buf + w->cur. */
static int rd_fill(slog_shard_t *sh, const slog_rd_span_t *sp, rd_win_t *w, size_t need,
                   slog_read_t *out, tr_err *err) {
    size_t avail = w->blen - w->cur;
    if (w->cur > w->keep) { /* drop skipped bytes */
        memmove(out->buf + w->keep, out->buf + w->cur, avail);
        w->cur = w->keep;
        w->blen = w->keep + avail;
    }
    uint64_t from = w->pos + avail;
    uint64_t end = slog__sat_add(w->pos, need);
    uint64_t ahead = slog__min64(sp->goal, slog__sat_add(w->pos, SLOG_READ_CHUNK));
    if (ahead > end) end = ahead;
    if (end > sp->lim) end = sp->lim;
    if (end < w->pos + need)
        return rd_corrupt(sh, sp->seg, w->pos, 0, "frame past committed end", err);
    size_t want = (size_t)(end - from);
    if (w->blen + want > out->buf_cap) {
        size_t cap = out->buf_cap ? out->buf_cap : 64 << 10;
        while (cap < w->blen + want) cap *= 2;
        uint8_t *b = realloc(out->buf, cap);
        if (!b)
            return tr_err_set(err, TR_ENOMEM,
                              "out of memory reading shard %s; Fix: free memory "
                              "or read with a smaller max_bytes",
                              sh->dir);
        out->buf = b;
        out->buf_cap = cap;
    }
    int r = slog__full_pread(sh->io, sp->seg->fd, out->buf + w->blen, want, from);
    if (r < 0) return slog__io_err(err, errno, "read", sp->seg->path, SLOG_FIX_DISK);
    if (r > 0) return rd_corrupt(sh, sp->seg, from, 0, "file shorter than its committed size", err);
    w->blen += want;
    return 0;
}

/* Whether hole h lies wholly before file offset pos (a zero-length hole at pos does not). */
static inline int hole_passed(const slog_hole_t *h, uint64_t pos) {
    return h->off_end < pos || (h->off_end == pos && h->off < pos);
}

/* Add hole nh to a segment readers may be using.  The array is replaced, not changed in place:
 * readers walk snapshots of it without the lock, so the old array is retired and freed with
 * the segment.  Caller holds sh->dmg_mu (the only writer of holes once the shard is open). */
static int hole_publish(slog_shard_t *sh, slog_seg_t *seg, slog_hole_t nh) {
    slog_hole_t *a = malloc((seg->nholes + 1) * sizeof *a);
    slog_hole_t **r = realloc(seg->retired, (seg->nretired + 1) * sizeof *r);
    if (r) seg->retired = r;
    if (!a || !r) {
        free(a);
        return TR_ENOMEM;
    }
    size_t i = 0;
    while (i < seg->nholes && seg->holes[i].off <= nh.off) i++;
    if (i) memcpy(a, seg->holes, i * sizeof *a);
    a[i] = nh;
    if (seg->nholes > i) memcpy(a + i + 1, seg->holes + i, (seg->nholes - i) * sizeof *a);
    pthread_mutex_lock(&sh->mu);
    slog_hole_t *old = seg->holes;
    seg->holes = a;
    seg->nholes++;
    pthread_mutex_unlock(&sh->mu);
    if (old) seg->retired[seg->nretired++] = old;
    return 0;
}

/*
 * Damage a reader met where no hole was known: a sealed segment trusted from its .idx (not
 * scanned at open), or bytes damaged while the server runs.  The reader gets what recovery
 * would have given it -- exactly the damaged bytes skipped, every intact frame served -- and
 * the range is recorded so that this and every later read, and every later start, skip the
 * same range:
 *   1. Frames are checked in full (length, CRC, seq, arrival: slog__seg_scan's rules) from
 *      (vpos, vseq), the last point known good, up to the first index entry past `bad` (a
 *      frame start) or the committed end.  A reader does not checksum the frames before the
 *      record it wants, so the damage may begin before `bad` (a damaged length field sends
 *      the reader into the middle of a frame).  Holes another reader recorded meanwhile are
 *      jumped.
 *   2. From the first bad frame p, slog__rs_search -- recovery's resync -- finds the first intact
 *      frame whose chain runs to that index entry (or the committed end) with consecutive
 *      seqs; none: the damage reaches the entry.
 *   3. The hole is published to readers (hole_publish), reported (tr_error, counters: once,
 *      since every later read jumps it), written to the segment's .dmg (slog__dmg_store), and the
 *      .idx is removed: the next start rescans the segment and takes the same hole from the
 *      .dmg (slog__load_sealed ignores an .idx while a .dmg exists).  If recording fails only the
 *      report says so: this process still skips exactly the range, and a later reader would
 *      find the same range again.
 * On success the reader continues at *to_off, *to_seq with sp's hole snapshot refreshed.
 * TR_EIO, TR_ENOMEM, TR_ECORRUPT (a range too large to check, or bytes that read differently
 * twice).  Cost: one pread of up to ~1 MiB and two fsyncs, once per damaged range.
 */
static int rd_damage(slog_shard_t *sh, slog_rd_span_t *sp, uint64_t vpos, uint64_t vseq,
                     int64_t varr, uint64_t bad, const char *why, uint64_t *to_off,
                     uint64_t *to_seq, tr_err *err) {
    slog_seg_t *seg = sp->seg;
    uint8_t *b = NULL;
    int rc = 0;
    pthread_mutex_lock(&sh->dmg_mu);
    pthread_mutex_lock(&sh->mu);
    size_t had = sp->nholes;
    const slog_hole_t *holes = seg->holes;
    size_t nh = seg->nholes;
    sp->holes = holes;
    sp->nholes = nh;
    uint64_t end = sp->lim, limit = sp->end_seq;
    size_t lo = 0, hi = seg->nix; /* first index entry past `bad` */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->ix[mid].off <= bad) lo = mid + 1;
        else hi = mid;
    }
    if (lo < seg->nix && seg->ix[lo].off < sp->lim && seg->ix[lo].seq < sp->end_seq &&
        seg->ix[lo].seq > vseq) {
        end = seg->ix[lo].off;
        limit = seg->ix[lo].seq;
    }
    pthread_mutex_unlock(&sh->mu);

    /* 1. the first bad frame at or after vpos */
    uint64_t n = end > vpos ? end - vpos : 0;
    if (n > SLOG_RESYNC_MAX) {
        rc = tr_err_set(err, TR_ECORRUPT,
                        "shard %s: %s is damaged at offset %llu and the %llu "
                        "bytes to check are too many; Fix: restart the server (the segment is "
                        "rescanned) and check the disk",
                        sh->dir, seg->path, (unsigned long long)bad, (unsigned long long)n);
        goto out;
    }
    if (n && !(b = malloc((size_t)n))) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory checking damaged %s; Fix: free memory",
                        seg->path);
        goto out;
    }
    int r = n ? slog__full_pread(sh->io, seg->fd, b, (size_t)n, vpos) : 0;
    if (r != 0) {
        rc = r < 0 ? slog__io_err(err, errno, "read", seg->path, SLOG_FIX_DISK)
                   : rd_corrupt(sh, seg, vpos, vseq, "file shorter than its committed size", err);
        goto out;
    }
    uint64_t q = 0, seq = vseq;
    int64_t arr = varr;
    const char *bwhy = NULL;
    for (size_t k = 0; q < n;) {
        while (k < nh && hole_passed(&holes[k], vpos + q)) k++;
        if (k < nh && holes[k].off <= vpos + q) { /* recorded by another reader meanwhile */
            if (holes[k].off_end >= end || holes[k].seq_end >= limit) {
                q = n;
                seq = limit;
                break;
            }
            q = holes[k].off_end - vpos;
            seq = holes[k].seq_end;
            k++;
            continue;
        }
        slog_frame_hdr_t h;
        if (n - q < SLOG_FRAME_HDR) bwhy = "short frame header";
        else if ((bwhy = slog__frame_parse(b + q, n - q, &h)) != NULL) {
        } else if (!slog__frame_crc_ok(b + q, h.len)) bwhy = "checksum mismatch";
        else if (h.seq != seq) bwhy = "sequence number does not follow its predecessor";
        else if (h.seq >= limit) bwhy = "sequence number past the index";
        else if (h.arrival < arr) bwhy = "arrival time goes backwards";
        if (bwhy) break;
        arr = h.arrival;
        q += h.len;
        seq++;
    }
    slog_hole_t hole;
    if (bwhy) { /* 2. where intact frames resume */
        slog_frame_hdr_t rh;
        uint64_t at = slog__rs_search(b + q, n - q, seq, limit, arr, 0, &rh);
        hole = at ? (slog_hole_t){vpos + q, vpos + q + at, seq, rh.seq}
                  : (slog_hole_t){vpos + q, end, seq, limit};
        why = bwhy;
    } else if (seq < limit) { /* the frames end before the records the index promises */
        hole = (slog_hole_t){end, end, seq, limit};
        why = "committed records missing";
    } else if (nh != had) { /* another reader recorded it: walk again with its holes */
        *to_off = vpos;
        *to_seq = vseq;
        goto out;
    } else {
        rc = tr_err_set(err, TR_ECORRUPT,
                        "shard %s: %s read differently twice at offset %llu "
                        "(%s, then intact); Fix: the disk or memory is failing: check dmesg, "
                        "the drive's SMART status and the RAM",
                        sh->dir, seg->path, (unsigned long long)bad, why);
        goto out;
    }
    /* 3. publish, report, record */
    if ((rc = hole_publish(sh, seg, hole)) != 0) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory recording damage in %s; Fix: free memory",
                        seg->path);
        goto out;
    }
    pthread_mutex_lock(&sh->mu);
    sp->holes = seg->holes;
    sp->nholes = seg->nholes;
    int gone = seg->first_seq < sh->begin; /* trimmed meanwhile: nothing left to record */
    pthread_mutex_unlock(&sh->mu);
    slog__hole_report(sh, seg, &hole, why, "a reader");
    *to_off = hole.off_end;
    *to_seq = hole.seq_end;
    if (gone) goto out;
    tr_err e2;
    char ipath[PATH_MAX];
    slog__seg_idx_path(seg, ipath, ".idx");
    if (slog__dmg_store(sh, seg, NULL, 0, &e2) != 0)
        tr_error("slog",
                 "shard %s: the damage found in %s could not be recorded: %s. This "
                 "process skips it; after a restart a reader finds it again",
                 sh->dir, seg->path, e2.msg);
    else if (sh->io->unlink(ipath) != 0 && errno != ENOENT)
        tr_warn("slog",
                "shard %s: cannot delete %s after recording damage in %s; the next "
                "start ignores it anyway (a .dmg file exists). Fix: check the directory's "
                "permissions",
                sh->dir, ipath, seg->path);
out:
    pthread_mutex_unlock(&sh->dmg_mu);
    free(b);
    return rc;
}

/* Read the records of one segment into out.  *full when a limit was reached; *reached is the
 * seq the walk got to (past skipped damage too).  Known holes are jumped; damage met anywhere
 * else goes to rd_damage, which makes it a hole. */
static int rd_span(slog_shard_t *sh, slog_rd_span_t *sp, uint64_t from, size_t max_records,
                   size_t max_bytes, slog_read_t *out, int *full, uint64_t *reached, tr_err *err) {
    rd_win_t w = {out->buf_len, out->buf_len, out->buf_len, sp->pos};
    uint64_t seq = sp->seq;
    /* the last point known good: frames before it were checked in full (or jumped as holes);
     * frames the walk skips before `from` are not checksummed */
    uint64_t vpos = sp->pos, vseq = sp->seq;
    int64_t varr = sp->arr;
    size_t hi = 0; /* next hole not wholly before w.pos */
    int rc = 0;
    while (seq < sp->end_seq) {
        while (hi < sp->nholes && hole_passed(&sp->holes[hi], w.pos)) hi++;
        if (hi < sp->nholes && sp->holes[hi].off <= w.pos) { /* known damage: jump over */
            w.pos = vpos = sp->holes[hi].off_end;
            seq = vseq = sp->holes[hi].seq_end;
            w.cur = w.blen = w.keep; /* drop read-ahead */
            hi++;
            continue;
        }
        if (out->n >= max_records) {
            *full = 1;
            break;
        }
        slog_frame_hdr_t h;
        const char *why = NULL;
        if (w.pos + SLOG_FRAME_HDR > sp->lim) why = "committed records missing";
        else {
            if (w.blen - w.cur < SLOG_FRAME_HDR &&
                (rc = rd_fill(sh, sp, &w, SLOG_FRAME_HDR, out, err)))
                break;
            why = slog__frame_parse(out->buf + w.cur, sp->lim - w.pos, &h);
            if (!why && h.seq != seq) why = "unexpected sequence number";
            if (!why && seq >= from && w.blen - w.cur < h.len &&
                (rc = rd_fill(sh, sp, &w, h.len, out, err)))
                break;
            if (!why && seq >= from && !slog__frame_crc_ok(out->buf + w.cur, h.len))
                why = "checksum mismatch";
        }
        if (why) {
            uint64_t to_off, to_seq;
            if ((rc = rd_damage(sh, sp, vpos, vseq, varr, w.pos, why, &to_off, &to_seq, err)))
                break;
            w.pos = vpos = to_off;
            seq = vseq = to_seq;
            w.cur = w.blen = w.keep;
            hi = 0;
            continue;
        }
        if (seq < from) { /* before the wanted record: skip without reading its body */
            if (w.blen - w.cur >= h.len) w.cur += h.len;
            else w.cur = w.blen = w.keep;
            w.pos += h.len;
            seq++;
            continue;
        }
        uint64_t rb = h.len - SLOG_FRAME_HDR;
        if (out->n > 0 && out->bytes + rb > max_bytes) {
            *full = 1;
            break;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            if (cap > max_records) cap = max_records > out->n ? max_records : out->n + 1;
            slog_rec_t *r = realloc(out->recs, cap * sizeof *r);
            if (!r) {
                rc = tr_err_set(err, TR_ENOMEM,
                                "out of memory reading shard %s; Fix: free "
                                "memory or read with a smaller max_records",
                                sh->dir);
                break;
            }
            out->recs = r;
            out->cap = cap;
        }
        slog_rec_t *rec = &out->recs[out->n++];
        rec->seq = seq;
        rec->arrival_ms = h.arrival;
        rec->pk_len = h.pk_len;
        rec->data_len = h.len - SLOG_FRAME_HDR - h.pk_len;
        rec->pk = (const char *)(uintptr_t)w.cur; /* offset in buf until the fix-up at the end */
        rec->data = NULL;
        out->bytes += rb;
        w.cur += h.len;
        w.keep = w.cur;
        w.pos += h.len;
        seq++;
        vpos = w.pos; /* checksummed */
        vseq = seq;
        varr = h.arrival;
    }
    if (out->n >= max_records) *full = 1;
    out->buf_len = w.keep; /* read-ahead past the last accepted frame is dropped */
    *reached = seq;
    return rc;
}

int slog_shard_read(slog_shard_t *sh, uint64_t from_seq, size_t max_records, size_t max_bytes,
                    slog_read_t *out, tr_err *err) {
    if (!sh || !out)
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_read: shard and out are required; Fix: "
                          "pass an open shard and a zero-initialised slog_read_t");
    out->n = 0;
    out->buf_len = 0;
    out->bytes = 0;
    out->next_seq = from_seq;
    uint64_t next = from_seq;
    int rc = 0, full = 0;
    for (int first = 1; !full; first = 0) {
        slog_rd_span_t sp;
        pthread_mutex_lock(&sh->mu);
        if (first) {
            if (next < sh->begin) next = sh->begin;
            out->next_seq = next;
        } else if (next < sh->begin) { /* trimmed under us: stop, the caller resumes at begin */
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        if (next >= sh->pub_end || max_records == 0) {
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        slog_seg_t *seg = seg_find_locked(sh, next);
        if ((rc = seg_fd_locked(sh, seg, err)) != 0) {
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        atomic_fetch_add(&seg->refs, 1);
        sp.seg = seg;
        sp.lim = seg->pub_size;
        sp.end_seq = seg->pub_end;
        size_t i = ix_upper_seq(seg->ix, seg->nix, next); /* first entry past `next` */
        if (i == 0) {
            sp.seq = seg->first_seq;
            sp.pos = SLOG_SEG_HDR;
            sp.arr = -1;
        } else {
            sp.seq = seg->ix[i - 1].seq;
            sp.pos = seg->ix[i - 1].off;
            sp.arr = seg->ix[i - 1].arrival_ms;
        }
        sp.holes = seg->holes;
        sp.nholes = seg->nholes;
        uint64_t skip_end = i < seg->nix ? seg->ix[i].off : sp.lim;
        size_t rem = max_records - out->n;
        size_t hi = ix_lower_seq(seg->ix, seg->nix, slog__sat_add(next, rem));
        uint64_t hi_off = hi < seg->nix ? seg->ix[hi].off : sp.lim;
        uint64_t budget = slog__sat_add(max_bytes > out->bytes ? max_bytes - out->bytes : 0,
                                        slog__sat_mul(rem, SLOG_FRAME_HDR));
        sp.goal = slog__min64(slog__min64(sp.lim, hi_off), slog__sat_add(skip_end, budget));
        pthread_mutex_unlock(&sh->mu);

        uint64_t reached = next;
        rc = rd_span(sh, &sp, next, max_records, max_bytes, out, &full, &reached, err);
        slog__seg_unref(sh, seg);
        if (rc) break;
        if (out->n == 0 && reached > out->next_seq) out->next_seq = reached; /* skipped damage */
        next = sp.end_seq;
    }
    if (rc) {
        out->n = 0;
        out->buf_len = 0;
        out->bytes = 0;
        return rc;
    }
    for (size_t i = 0; i < out->n; i++) {
        slog_rec_t *r = &out->recs[i];
        uint8_t *f = out->buf + (uintptr_t)r->pk;
        r->pk = (const char *)f + SLOG_FRAME_HDR;
        r->data = f + SLOG_FRAME_HDR + r->pk_len;
    }
    if (out->n) out->next_seq = out->recs[out->n - 1].seq + 1;
    return 0;
}

void slog_read_free(slog_read_t *r) {
    if (!r) return;
    free(r->recs);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Walk frame headers of seg in [pos, end_off) (seqs from seq) and return the first seq whose
 * arrival is >= ts; end_seq if none.  On I/O trouble return `seq` (too early is harmless: the
 * reader gets a few older records; too late would lose some). */
static uint64_t seek_walk(slog_shard_t *sh, slog_seg_t *seg, uint64_t pos, uint64_t seq,
                          uint64_t end_off, uint64_t end_seq, int64_t ts) {
    uint8_t *b = malloc(SLOG_SEEK_BUF);
    uint64_t start = seq, wpos = 0, wlen = 0;
    if (!b) return start;
    while (seq < end_seq && pos + SLOG_FRAME_HDR <= end_off) {
        if (pos < wpos || pos + SLOG_FRAME_HDR > wpos + wlen) {
            wlen = slog__min64(SLOG_SEEK_BUF, end_off - pos);
            wpos = pos;
            if (slog__full_pread(sh->io, seg->fd, b, (size_t)wlen, wpos) != 0) {
                seq = start;
                break;
            }
        }
        const uint8_t *p = b + (pos - wpos);
        uint32_t len = slog__get32(p);
        if (len < SLOG_FRAME_HDR || slog__get64(p + 8) != seq) {
            seq = start;
            break;
        }
        if ((int64_t)slog__get64(p + 16) >= ts) break;
        pos += len;
        seq++;
    }
    free(b);
    return seq;
}

uint64_t slog_shard_seek_time(slog_shard_t *sh, int64_t ts_ms) {
    if (!sh) return 0;
    pthread_mutex_lock(&sh->mu);
    uint64_t end = sh->pub_end;
    /* Segments with committed records: all but possibly the active one, whose last arrival
     * is -1 while it is empty.  Last arrivals are non-decreasing along the array. */
    size_t m = sh->nsegs;
    if (slog__seg_active(sh)->pub_end == slog__seg_active(sh)->first_seq) m--;
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sh->segs[mid]->pub_last_arrival < ts_ms) lo = mid + 1;
        else hi = mid;
    }
    if (lo == m) {
        pthread_mutex_unlock(&sh->mu);
        return end;
    }
    slog_seg_t *seg = sh->segs[lo];
    size_t nvis = ix_lower_seq(seg->ix, seg->nix, seg->pub_end);
    size_t a = 0, b = nvis; /* first visible entry with arrival >= ts */
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (seg->ix[mid].arrival_ms < ts_ms) a = mid + 1;
        else b = mid;
    }
    if (a == 0) {
        uint64_t r = seg->first_seq; /* read before unlocking: trim may free seg */
        pthread_mutex_unlock(&sh->mu);
        return r;
    }
    slog_ix_t st = seg->ix[a - 1];
    uint64_t end_off = a < nvis ? seg->ix[a].off : seg->pub_size;
    uint64_t end_seq = a < nvis ? seg->ix[a].seq : seg->pub_end;
    if (seg_fd_locked(sh, seg, NULL) != 0) {
        pthread_mutex_unlock(&sh->mu);
        return st.seq;
    }
    atomic_fetch_add(&seg->refs, 1);
    pthread_mutex_unlock(&sh->mu);
    uint64_t r = seek_walk(sh, seg, st.off, st.seq, end_off, end_seq, ts_ms);
    slog__seg_unref(sh, seg);
    return r;
}

void slog_shard_health(slog_shard_t *sh, slog_shard_health_t *out) {
    memset(out, 0, sizeof *out);
    if (!sh) return;
    out->damaged_ranges = atomic_load(&sh->h_ranges);
    out->damaged_bytes = atomic_load(&sh->h_bytes);
    out->lost_records = atomic_load(&sh->h_lost);
    out->missing = atomic_load(&sh->h_missing);
    out->read_skips = atomic_load(&sh->h_read_skips);
}

uint64_t slog_shard_begin(slog_shard_t *sh) {
    if (!sh) return 0;
    pthread_mutex_lock(&sh->mu);
    uint64_t v = sh->begin;
    pthread_mutex_unlock(&sh->mu);
    return v;
}

uint64_t slog_shard_end(slog_shard_t *sh) {
    if (!sh) return 0;
    pthread_mutex_lock(&sh->mu);
    uint64_t v = sh->pub_end;
    pthread_mutex_unlock(&sh->mu);
    return v;
}

int64_t slog_shard_last_arrival(slog_shard_t *sh) {
    if (!sh) return -1;
    pthread_mutex_lock(&sh->mu);
    int64_t v = sh->begin == sh->pub_end ? -1 : sh->pub_last_arrival;
    pthread_mutex_unlock(&sh->mu);
    return v;
}

/* ---- retention ------------------------------------------------------------------------------ */

int slog_shard_trim(slog_shard_t *sh, int64_t older_than_ms, tr_err *err) {
    if (!sh)
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_trim: shard is NULL; Fix: pass an open "
                          "shard");
    int removed = 0;
    /* Oldest first, and never the active segment.  Sealed segments are fully committed. */
    while (sh->nsegs > 1 && sh->segs[0]->pub_last_arrival < older_than_ms) {
        slog_seg_t *seg = sh->segs[0];
        pthread_mutex_lock(&sh->mu);
        memmove(sh->segs, sh->segs + 1, (sh->nsegs - 1) * sizeof *sh->segs);
        sh->nsegs--;
        sh->begin = sh->segs[0]->first_seq;
        pthread_mutex_unlock(&sh->mu);
        /* Readers holding a reference keep reading through their fd; one recording damage in
         * it (rd_damage) does so under dmg_mu and skips it once it is out of the array. */
        pthread_mutex_lock(&sh->dmg_mu);
        char ipath[PATH_MAX];
        slog__seg_idx_path(seg, ipath, ".idx");
        int rc = 0;
        if (sh->io->unlink(seg->path) != 0 && errno != ENOENT)
            rc = slog__io_err(err, errno, "delete", seg->path,
                              "check the directory's permissions; the file is retried at the next "
                              "start");
        if (!rc && sh->io->unlink(ipath) != 0 && errno != ENOENT)
            rc = slog__io_err(err, errno, "delete", ipath, "check the directory's permissions");
        slog__seg_idx_path(seg, ipath, ".dmg");
        if (!rc && sh->io->unlink(ipath) != 0 && errno != ENOENT)
            rc = slog__io_err(err, errno, "delete", ipath, "check the directory's permissions");
        /* One at a time, so a crash can never leave a gap (a younger file gone, an older one
         * still there). */
        if (!rc && !sh->no_sync && sh->io->fsync(sh->dirfd) != 0)
            rc = slog__io_err(err, errno, "fsync directory", sh->dir, SLOG_FIX_DISK);
        pthread_mutex_unlock(&sh->dmg_mu);
        slog__seg_unref(sh, seg);
        if (rc) return rc;
        removed++;
    }
    return removed;
}

/* ---- directory removal ---------------------------------------------------------------------- */

int slog_shard_destroy_dir(const char *dir, tr_err *err) {
    if (!dir || !*dir)
        return tr_err_set(err, TR_EINVAL,
                          "slog_shard_destroy_dir: dir is required; Fix: pass "
                          "the shard's directory");
    if (tr_rmtree(dir) != 0)
        return slog__io_err(err, errno, "remove shard directory", dir,
                            "check the permissions of the data directory, then remove it by hand");
    return 0;
}
