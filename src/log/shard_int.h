/* SPDX-License-Identifier: Apache-2.0
 *
 * shard_int.h -- internals of the shard log: the test hooks (first part), then the types,
 * constants and helpers shared by shard.c and shard_recover.c (second part).  Not API: other
 * modules use shard.h; slog.c uses only the test hooks' I/O vtable (an ENOSPC hook).
 *
 * Storage I/O of a shard goes through a slog_io_t vtable so a test can inject short writes,
 * ENOSPC, failed fsyncs and so on (SQLite src/test6.c).  Every member behaves like the POSIX
 * call it is named after: it returns -1 and sets errno on failure.  Short transfers are legal
 * and are retried by the caller; EINTR is retried by the caller.
 *
 * Thread rules: slog__io_set_default affects shards opened afterwards and must not race with
 * slog_shard_open.  slog__shard_set_io swaps one shard's vtable; call it only while no other
 * thread uses the shard (between open and the first read, typically).  Fix: set it right
 * after slog_shard_open, before starting reader threads.  The second part's locking rules are
 * given field by field in struct slog_shard and at the top of shard.c.
 */
#ifndef SLOG_SHARD_INT_H
#define SLOG_SHARD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "log/shard.h"

typedef struct slog_io {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);     /* segment files */
    int (*fsync)(int fd);         /* the shard directory after creating or deleting files */
    int (*ftruncate)(int fd, off_t len);
    int (*fstat)(int fd, struct stat *st);
    int (*unlink)(const char *path);
    int (*rename)(const char *from, const char *to);
} slog_io_t;

/* The real thing: thin wrappers over the POSIX calls. */
extern const slog_io_t slog__io_posix;

/* I/O for shards opened from now on; NULL restores slog__io_posix.  Borrowed: must outlive
 * those shards. */
void slog__io_set_default(const slog_io_t *io);
/* I/O of one open shard from now on; NULL restores slog__io_posix. */
void slog__shard_set_io(slog_shard_t *sh, const slog_io_t *io);
/* Number of segment files the shard currently holds (active one included). */
size_t slog__shard_nsegs(slog_shard_t *sh);

/* ==== internals of shard.c and shard_recover.c ============================================== */

/* ---- constants ------------------------------------------------------------------------------ */

#define SLOG_DEFAULT_SEGMENT (64ull << 20)
#define SLOG_FRAME_MAX (SLOG_FRAME_HDR + SLOG_MAX_PK + SLOG_MAX_DATA)
#define SLOG_IX_RECS 512              /* an index entry at least every this many records */
#define SLOG_IX_BYTES (32u << 10)     /* ... and at least every this many bytes */
#define SLOG_STAGE_MAX (4u << 20)     /* append writes out its staging buffer past this */
#define SLOG_SCAN_BUF (4u << 20)      /* recovery read size; must hold SLOG_FRAME_MAX */
#define SLOG_READ_CHUNK (8u << 20)    /* largest read-ahead of one pread in slog_shard_read */
#define SLOG_SEEK_BUF (64u << 10)     /* seek_time's header-walk window */
#define SLOG_RESYNC_MAX (1ull << 30) /* largest damaged remainder searched in memory */
#define SLOG_STATE_STEP (1ull << 20)        /* DIR/state: hwm reserved ahead (shard_recover.c) */

/*
 * .idx file of a sealed segment (little-endian), rebuilt from the .seg when missing or when
 * any check fails, so it needs no fsync:
 *
 *     0        8           16          24           32              40    44    48
 *     +--------+-----------+-----------+------------+---------------+-----+-----+------------
 *     |TRSIDX01| first_seq | end_seq   | seg_size   | last_arrival  |  n  | crc | n entries:
 *     |        | u64       | u64 (excl)| u64 (bytes)| i64           | u32 | u32 | seq u64,
 *     +--------+-----------+-----------+------------+---------------+-----+-----+ off u64,
 *                                                                               arrival i64
 *     crc = CRC32C of bytes 0..44 followed by the entries.
 */
#define SLOG_IDX_HDR 48
#define SLOG_IDX_ENT 24

static const char slog__seg_magic[8] = {'T', 'R', 'S', 'L', 'O', 'G', '0', '1'};
static const char slog__idx_magic[8] = {'T', 'R', 'S', 'I', 'D', 'X', '0', '1'};

/* ---- types ---------------------------------------------------------------------------------- */

typedef struct slog_ix {
    uint64_t seq;
    uint64_t off;
    int64_t arrival_ms;
} slog_ix_t;

/* A damaged or missing range of a segment, found by recovery or by a reader: file bytes
 * [off, off_end) hold nothing readable and the records [seq, seq_end) are lost.  off == off_end
 * for records whose file is missing (a gap between two segments).  Readers reaching a position
 * in [off, off_end) (or off itself) jump to off_end, seq_end. */
typedef struct slog_hole {
    uint64_t off, off_end;
    uint64_t seq, seq_end;
} slog_hole_t;

typedef struct slog_seg {
    atomic_int refs;          /* the array holds one; readers take one while reading */
    uint64_t first_seq;       /* from the file name, checked against the header */
    char *path;               /* DIR/<first_seq>.seg, owned */
    int fd;                   /* -1 when closed; opened and closed under sh->mu, closed only
                                 while no reader holds a reference (ro_fds_trim_locked) */
    uint64_t w_size;          /* writer only: bytes in the file incl. uncommitted (active seg) */
    /* under sh->mu; fixed once the segment is no longer the active one */
    uint64_t pub_size;        /* committed bytes (header included) */
    uint64_t pub_end;         /* seq after the last committed record */
    int64_t pub_last_arrival; /* arrival of the last committed record, -1 if none */
    slog_ix_t *ix;            /* sparse index; entries past nix are the writer's scratch */
    size_t nix, ixcap;
    slog_hole_t *holes;       /* ascending off.  Set by recovery; afterwards replaced (never
                                 changed in place) under sh->mu by a reader that finds damage
                                 (hole_publish), so readers use a snapshot without the lock */
    size_t nholes;
    slog_hole_t **retired; /* replaced hole arrays, freed with the segment: readers' snapshots */
    size_t nretired;
} slog_seg_t;

struct slog_shard {
    char *dir;
    int dirfd;
    uint64_t seg_bytes;
    int no_sync;
    const slog_io_t *io;

    pthread_mutex_t mu; /* guards the fields below and the pub_ and ix fields of segs */
    pthread_mutex_t dmg_mu; /* serialises readers handling newly found damage (rd_damage)
                                 and the removal of .dmg files by trim; never held with mu
                                 except mu inside it */
    slog_seg_t **segs; /* ascending first_seq; the last one is the active segment */
    size_t nsegs, segcap;
    uint64_t begin; /* first retained seq */
    uint64_t pub_end; /* committed end */
    int64_t pub_last_arrival; /* arrival of the last committed record, -1 if none yet */

    /* writer only */
    uint64_t w_next; /* seq of the next appended record */
    int64_t w_last_arrival; /* arrival of the last appended record */
    int w_trunc_pending; /* a failed batch's bytes are still past w_size in the file */
    uint8_t *stage;
    size_t stage_cap;
    uint64_t hwm; /* DIR/state: no seq at or past this was ever handed out */
    uint64_t st_newest; /* DIR/state: first seq of the newest segment created */
    int st_dirty; /* DIR/state must be rewritten before the next frame */
    uint64_t min_next; /* opts.min_next */
    slog_shard_hwm_fn hwm_fn; /* copy of the mark outside DIR (slog_shard_set_hwm_hook) */
    void *hwm_arg;

    /* damage counters (slog_shard_health), atomics: readers bump them too */
    atomic_ullong h_ranges, h_bytes, h_lost, h_missing, h_read_skips;
};

/* Result of scanning a segment's frames. */
typedef struct slog_scan_res {
    uint64_t end_off; /* offset after the last valid frame */
    uint64_t end_seq; /* seq after the last valid frame */
    int64_t last_arrival; /* -1 if no frame */
    const char *why; /* NULL: valid up to the end of the file; else why it stopped */
} slog_scan_res_t;

typedef struct slog_frame_hdr {
    uint32_t len, crc;
    uint64_t seq;
    int64_t arrival;
    uint16_t pk_len;
} slog_frame_hdr_t;

/* What a reader needs to read one segment, looked up under sh->mu. */
typedef struct slog_rd_span {
    slog_seg_t *seg;
    uint64_t pos, seq; /* start parsing here: an index entry at or before the wanted seq */
    uint64_t lim; /* committed bytes of the segment */
    uint64_t end_seq; /* committed end seq of the segment */
    uint64_t goal; /* read-ahead target: no wanted byte lies past it (except the
                                 first record, which is always returned) */
    int64_t arr; /* a lower bound of the arrival times from pos on */
    const slog_hole_t *holes; /* snapshot of seg's holes (valid while the reference is held) */
    size_t nholes;
} slog_rd_span_t;

/* ---- small helpers -------------------------------------------------------------------------- */

static inline void slog__put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void slog__put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void slog__put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t slog__get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t slog__get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t slog__get64(const uint8_t *p) {
    return (uint64_t)slog__get32(p) | (uint64_t)slog__get32(p + 4) << 32;
}

static inline uint64_t slog__sat_add(uint64_t a, uint64_t b) {
    return a + b < a ? UINT64_MAX : a + b;
}
static inline uint64_t slog__sat_mul(uint64_t a, uint64_t b) {
    return (b && a > UINT64_MAX / b) ? UINT64_MAX : a * b;
}
static inline uint64_t slog__min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

#define SLOG_FIX_DISK                                                                              \
    "check the disk and the kernel log (dmesg), free space if the disk is full, and retry"

/* Parse and sanity-check a frame header.  room = bytes of the segment from this frame on.
 * NULL when plausible, else what is wrong (for the log). */
static inline const char *slog__frame_parse(const uint8_t *p, uint64_t room, slog_frame_hdr_t *h) {
    h->len = slog__get32(p);
    h->crc = slog__get32(p + 4);
    h->seq = slog__get64(p + 8);
    h->arrival = (int64_t)slog__get64(p + 16);
    h->pk_len = slog__get16(p + 24);
    if (h->len < SLOG_FRAME_HDR || h->len > SLOG_FRAME_MAX) return "impossible frame length";
    if (h->pk_len > SLOG_MAX_PK || (uint32_t)SLOG_FRAME_HDR + h->pk_len > h->len ||
        h->len - SLOG_FRAME_HDR - h->pk_len > SLOG_MAX_DATA)
        return "impossible partition key length";
    if (h->len > room) return "frame runs past the end of the file";
    return NULL;
}

static inline int slog__frame_crc_ok(const uint8_t *p, uint32_t len) {
    return tr_crc32c(0, p + 8, len - 8) == slog__get32(p + 4);
}

/* Whether the record at (seq, off) gets an index entry, given the last entry (if have). */
static inline int slog__ix_due(int have, const slog_ix_t *last, uint64_t seq, uint64_t off) {
    return !have || seq - last->seq >= SLOG_IX_RECS || off - last->off >= SLOG_IX_BYTES;
}

static inline slog_seg_t *slog__seg_active(slog_shard_t *sh) { return sh->segs[sh->nsegs - 1]; }

/* ---- small I/O and segment helpers (inline: the read and append paths call them) --------- */

/* pwrite all n bytes (retrying short writes and EINTR).  0, or -1 with errno. */
static inline int slog__full_pwrite(const slog_io_t *io, int fd, const void *b, size_t n,
                                    uint64_t off) {
    const uint8_t *p = b;
    while (n) {
        ssize_t w = io->pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* pread n bytes.  0 when all were read, 1 when the file ended first, -1 with errno. */
static inline int slog__full_pread(const slog_io_t *io, int fd, void *b, size_t n, uint64_t off) {
    uint8_t *p = b;
    while (n) {
        ssize_t r = io->pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return 1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Drop a reference; the last one closes the fd and frees the segment. */
static inline void slog__seg_unref(slog_shard_t *sh, slog_seg_t *seg) {
    if (!seg || atomic_fetch_sub(&seg->refs, 1) != 1) return;
    if (seg->fd >= 0) sh->io->close(seg->fd);
    free(seg->ix);
    free(seg->holes);
    for (size_t i = 0; i < seg->nretired; i++) free(seg->retired[i]);
    free(seg->retired);
    free(seg->path);
    free(seg);
}

/* ---- functions of shard.c used by shard_recover.c ----------------------------------------- */

/* TR_EIO with errno text and the path: "<what> <path> failed: <errno text>; Fix: <fix>". */
int slog__io_err(tr_err *err, int e, const char *what, const char *path, const char *fix);
/* Grow seg->ix to hold `need` entries.  Caller holds sh->mu if readers can see seg. */
int slog__ix_reserve(slog_seg_t *seg, size_t need);
/* A new segment starting at seq `first` holding one reference (the array's); NULL on OOM. */
slog_seg_t *slog__seg_new(slog_shard_t *sh, uint64_t first);
/* DIR/<first><suffix> (".idx", ".idx.tmp", ".dmg", ...) into out (PATH_MAX). */
void slog__seg_idx_path(const slog_seg_t *seg, char *out, const char *suffix);
/* Room for `need` segments in the array.  Caller holds sh->mu once readers may exist. */
int slog__segs_reserve(slog_shard_t *sh, size_t need);
/* The 16-byte header of a segment whose first seq is `first`. */
void slog__seg_header(uint8_t hdr[SLOG_SEG_HDR], uint64_t first);
/* Check a segment's 16-byte header.  NULL if fine, else what is wrong (*ioerr: the errno of
 * a failed read, else 0). */
const char *slog__seg_header_check(const slog_shard_t *sh, const slog_seg_t *seg, int fd,
                                   uint64_t size, int *ioerr);
/* Create DIR/<first>.seg with its header, make it durable, append it to the array. */
int slog__seg_create(slog_shard_t *sh, uint64_t first, tr_err *err);
/* Write the sealed segment's index next to it (tmp + rename).  Best effort: a missing or bad
 * .idx only costs a scan at the next start. */
void slog__idx_write(slog_shard_t *sh, const slog_seg_t *seg);
/* Load the .idx of a sealed segment of seg_size bytes.  1 if it was usable (seg's index and
 * committed figures are set), 0 if not (seg untouched). */
int slog__idx_load(slog_shard_t *sh, slog_seg_t *seg, uint64_t seg_size);

/* ---- functions of shard_recover.c used by shard.c ----------------------------------------- */

/* The offset in b[0..n) of the first believable frame after damage that began at b[0] where
 * seq `seq` was expected, its header in *h; 0 when there is none.  Recovery and readers
 * (rd_damage) both use it, so they draw the same line between damage and intact records. */
uint64_t slog__rs_search(const uint8_t *b, uint64_t n, uint64_t seq, uint64_t limit,
                         int64_t last_arr, int is_last, slog_frame_hdr_t *h);
/* Count a damaged or missing range (slog_shard_health) and log it at ERROR.  `by` is NULL for
 * recovery, else who found it ("a reader"). */
void slog__hole_report(slog_shard_t *sh, const slog_seg_t *seg, const slog_hole_t *h,
                       const char *why, const char *by);
/* Make DIR/<first>.dmg hold exactly seg's byte holes (remove it when there are none). */
int slog__dmg_store(slog_shard_t *sh, const slog_seg_t *seg, const slog_hole_t *known,
                    size_t nknown, tr_err *err);
/* Scan seg's frames from its header to `size`, checking length, CRC and seq continuity (seqs
 * below `limit`), and build its index; damage followed by intact frames becomes a hole.
 * TR_EIO / TR_ENOMEM / TR_ECORRUPT. */
int slog__seg_scan(slog_shard_t *sh, slog_seg_t *seg, int fd, uint64_t size, uint64_t limit,
                   int is_last, slog_scan_res_t *res, tr_err *err);
/* A sealed (not newest) segment: header, then .idx or a scan; it covers the seqs up to
 * next_first, whatever is missing or damaged becomes a hole. */
int slog__load_sealed(slog_shard_t *sh, slog_seg_t *seg, uint64_t next_first, tr_err *err);
/* Rewrite DIR/state (hwm, newest) durably: tmp, fdatasync, rename, directory fsync. */
int slog__state_write(slog_shard_t *sh, uint64_t hwm, uint64_t newest, tr_err *err);
/* Load every segment of an existing shard, or create the first one (slog_shard_open). */
int slog__shard_load(slog_shard_t *sh, uint64_t first_seq, tr_err *err);

#endif
