/* SPDX-License-Identifier: Apache-2.0
 *
 * shard.h -- one shard's durable, append-only log of records, stored as segment files.
 *
 * A shard lives in its own directory.  Records are appended in batches by ONE writer thread
 * (the stream engine's commit thread) and become visible to readers only after
 * slog_shard_sync() has made them durable (fdatasync) -- readers never see uncommitted bytes.
 * Records are numbered by a per-shard 64-bit sequence counter that increases by one per record
 * and never repeats (it survives restarts and segment deletion).
 *
 * Layout on disk (DIR is the shard directory):
 *     DIR/<first-seq as %020llu>.seg      segment files, rolled at opts.segment_bytes
 *     DIR/<first-seq as %020llu>.idx      optional sparse index of a SEALED segment (rebuilt
 *                                         from the .seg when missing or inconsistent)
 *     DIR/<first-seq as %020llu>.dmg      the damaged ranges recovery or a reader found in
 *                                         that segment (so every later open skips the same
 *                                         ones; a sealed segment with one is scanned at open,
 *                                         whatever its .idx says)
 *     DIR/state                           seq high-water mark and newest segment (see below)
 *
 * Record frame inside a .seg (little-endian), drawn byte by byte:
 *
 *     0      4      8              16             24     26          26+pk    26+pk+data
 *     +------+------+--------------+--------------+------+-----------+--------------+
 *     | len  | crc  | seq (u64)    | arrival_ms   |pk_len| pk bytes  | data bytes   |
 *     | u32  | u32  |              | (i64)        | u16  |           |              |
 *     +------+------+--------------+--------------+------+-----------+--------------+
 *     len = total frame bytes (header + pk + data), so the next frame starts at +len.
 *     crc = CRC32C (Castagnoli) of the bytes from offset 8 to the end of the frame.
 *
 * A segment starts with a 16-byte header: magic "TRSLOG01" (8 bytes), u64 first seq.
 *
 * DIR/state (32 bytes, drawn in shard_recover.c) holds a high-water mark of the seqs handed out
 * and the first seq of the newest segment, so a deleted newest segment cannot make numbering
 * restart.
 * The owner may keep a copy of the mark outside the directory (slog_shard_set_hwm_hook,
 * opts.min_next), so that deleting the whole directory cannot make it restart either.
 *
 * Recovery (slog_shard_open): every segment's header is checked; the LAST segment (and any
 * sealed one without a usable .idx) is scanned frame by frame.  A frame that is short, has an
 * impossible length, a bad CRC or a seq that does not follow its predecessor is either
 *   - a TORN TAIL: nothing believable follows it.  Only the end of the newest segment can be
 *     torn (older segments were fully synced before the roll); the file is truncated there and
 *     the loss reported (WARN: shard dir, offset, bytes dropped).  Such records were never
 *     acknowledged.  (So damage to the very last records of the newest segment cannot be told
 *     from a torn write and is treated as one.)
 *   - DAMAGE: intact frames follow.  The scan resumes at the first frame that starts a chain of
 *     intact frames with consistent seqs (shard_recover.c explains why a record payload that
 *     looks like a frame does not fool it); the range in between is a HOLE: its records are
 *     lost, its bytes stay in the file as evidence, readers skip it, and it is reported (ERROR,
 *     at every open, and slog_shard_health).  A bad segment header is damage too: the frames
 *     behind it are recovered (the first seq comes from the file name).
 *   - A segment that ends before the next one starts (a file missing in the middle), a missing
 *     newest segment (DIR/state says a newer one existed), or no segment at all while DIR/state
 *     exists: a gap, reported (ERROR, slog_shard_health.missing); numbering continues past every
 *     seq that may have been handed out.
 * Reading over a hole or gap returns the records after it (seqs jump; next_seq moves past it).
 * Damage a reader meets that recovery did not see (a sealed segment trusted from its .idx,
 * or bytes damaged while the server runs) is handled the same way, exactly: the reader checks
 * the frames from the last known-good point, finds where intact frames resume with recovery's
 * own resync (searching up to the next index entry), and the damaged range becomes a hole --
 * only its records are lost, reported once (ERROR naming the segment, byte range and lost
 * seqs; slog_shard_health), recorded in the segment's .dmg, and the .idx removed, so every
 * later read and every restart skips exactly that range.  A consumer is never stuck.
 * slog_shard_open fails only when files cannot be read or written at all (TR_EIO), memory is
 * short, or a damaged remainder is too large to search (TR_ECORRUPT, over 1 GiB).
 *
 * Arrival times are non-decreasing within a shard (the caller passes max(now, last)).
 *
 * Thread rules: slog_shard_append / slog_shard_sync / slog_shard_trim / slog_shard_close are
 * called by one writer thread (or under the caller's lock).  slog_shard_read, slog_shard_seek_*
 * and the getters may be called from any number of threads concurrently with the writer.
 *
 * Errors: TR_EIO (with errno text in err), TR_ECORRUPT (see Recovery; Fix: move the file away
 * and restart), TR_EINVAL, TR_ENOMEM.
 */
#ifndef SLOG_SHARD_H
#define SLOG_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SLOG_FRAME_HDR 26
#define SLOG_SEG_HDR 16
#define SLOG_MAX_PK 1024     /* bytes: 256 characters of up to 4 UTF-8 bytes each */
#define SLOG_MAX_DATA (1024 * 1024)

typedef struct slog_shard slog_shard_t;

typedef struct slog_shard_opts {
    uint64_t segment_bytes;  /* roll size; 0 = default 64 MiB */
    uint64_t first_seq;      /* seq of the first record of a NEW (empty) shard; ignored if the
                                directory already holds segments */
    int no_sync;             /* tests/bench only: skip fdatasync (never in the server) */
    uint64_t min_next;       /* a high-water mark kept OUTSIDE the directory (the stream
                                engine's metadata; see slog_shard_set_hwm_hook), 0 if none:
                                numbering never restarts below it.  A directory with no segment
                                and no DIR/state while min_next > first_seq was deleted or
                                emptied: reported (MISSING DATA; slog_shard_health.missing) and
                                numbering continues at min_next */
} slog_shard_opts_t;

/* One record to append.  Borrowed: the pointers must stay valid for the call only. */
typedef struct slog_rec_in {
    const char *pk;
    uint16_t pk_len;
    const uint8_t *data;
    uint32_t data_len;
} slog_rec_in_t;

/* One record read back.  pk/data point into the slog_read_t's buffer (see below). */
typedef struct slog_rec {
    uint64_t seq;
    int64_t arrival_ms;
    const char *pk;
    uint16_t pk_len;
    const uint8_t *data;
    uint32_t data_len;
} slog_rec_t;

/* A batch of records read by slog_shard_read.  Caller-allocated, zero-initialised before the
 * first use; reusable across calls (buffers are kept); free with slog_read_free. */
typedef struct slog_read {
    slog_rec_t *recs;
    size_t n, cap;
    uint8_t *buf;            /* raw frame bytes the recs point into */
    size_t buf_len, buf_cap;
    uint64_t next_seq;       /* seq to continue from */
    uint64_t bytes;          /* sum of data_len + pk_len of the returned records */
} slog_read_t;

/* Open (and recover) or create the shard directory `dir` (created, with parents, if missing).
 * On success *out owns the shard; close with slog_shard_close. */
int slog_shard_open(const char *dir, const slog_shard_opts_t *opts, slog_shard_t **out,
                    tr_err *err);
/* Copy of the high-water mark outside the directory.  fn is called by the writer (inside
 * slog_shard_append) each time DIR/state's high-water mark is rewritten, after DIR/state is
 * durable and before any seq at or past the previous mark is handed out; it must make `hwm`
 * durable where a deleted shard directory cannot take it along, and pass it back as
 * opts.min_next at the next open.  A failure (negative TR_E code, err set) fails that append
 * (nothing is appended; the next append retries).  Setting a hook makes the next append rewrite
 * DIR/state, so the copy is current from then on.  Call between open and the first append (or
 * under the writer's lock); fn NULL removes it. */
typedef int (*slog_shard_hwm_fn)(void *arg, uint64_t hwm, tr_err *err);
void slog_shard_set_hwm_hook(slog_shard_t *sh, slog_shard_hwm_fn fn, void *arg);

/* Close files and free.  Accepts NULL.  Does not sync: call slog_shard_sync first. */
void slog_shard_close(slog_shard_t *sh);

/* Append n records with arrival time arrival_ms; writes them to the active segment (rolling it
 * first if full; a roll syncs the old segment).  Not visible to readers until slog_shard_sync.
 * *first_seq receives the seq of recs[0]; the others follow by +1.  On error nothing of this
 * batch becomes visible, and the un-synced bytes are truncated away. */
int slog_shard_append(slog_shard_t *sh, const slog_rec_in_t *recs, size_t n, int64_t arrival_ms,
                      uint64_t *first_seq, tr_err *err);
/* Make every appended record durable (fdatasync), then publish them to readers.  Cheap when
 * nothing is pending. */
int slog_shard_sync(slog_shard_t *sh, tr_err *err);

/* Read committed records with seq >= from_seq, at most max_records records and, past the first
 * record, at most max_bytes of pk+data.  If from_seq is below the first retained record, reading
 * starts at the first retained record.  Damaged or missing ranges are skipped (see Recovery):
 * the returned seqs ascend but may jump.  out->n == 0 when there is nothing (yet).
 * out->next_seq is the seq after the last returned record, or if none, the start point or the
 * seq after a damaged range the read walked past (so a caller continuing there advances). */
int slog_shard_read(slog_shard_t *sh, uint64_t from_seq, size_t max_records, size_t max_bytes,
                    slog_read_t *out, tr_err *err);
void slog_read_free(slog_read_t *r);

/* Seq of the first committed record with arrival_ms >= ts_ms, or slog_shard_end() if none. */
uint64_t slog_shard_seek_time(slog_shard_t *sh, int64_t ts_ms);
/* First retained seq (== slog_shard_end() when empty). */
uint64_t slog_shard_begin(slog_shard_t *sh);
/* Seq the next committed record will get (one past the last committed record). */
uint64_t slog_shard_end(slog_shard_t *sh);
/* Arrival time of the last committed record, or -1 when empty. */
int64_t slog_shard_last_arrival(slog_shard_t *sh);

/* Damage found in this shard since it was opened (recovery at open, and readers since). */
typedef struct slog_shard_health {
    uint64_t damaged_ranges;  /* damaged byte ranges found at open (frames or segment headers)
                                 or by readers since */
    uint64_t damaged_bytes;   /* their total size */
    uint64_t lost_records;    /* records in damaged ranges and gaps (skipped by readers); not
                               * those of missing newest files (unknown: see missing) */
    uint64_t missing;         /* gaps: a segment file missing in the middle, the newest ones,
                                 or all of them (or records an index promised that a reader
                                 did not find) */
    uint64_t read_skips;      /* of those ranges and gaps, the ones a READER found (each once;
                                 the next open finds them again, by rescanning) */
} slog_shard_health_t;

void slog_shard_health(slog_shard_t *sh, slog_shard_health_t *out);

/* Retention: delete whole segments whose LAST record arrived before older_than_ms.  The active
 * segment is never deleted.  Returns the number of segments removed, or a negative TR_E code. */
int slog_shard_trim(slog_shard_t *sh, int64_t older_than_ms, tr_err *err);

/* Delete the shard directory and everything in it (after close). */
int slog_shard_destroy_dir(const char *dir, tr_err *err);

#endif
