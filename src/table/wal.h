/*
 * wal.h -- the table store's write-ahead log: numbered segment files of checksummed records,
 * appended by one thread, replayed at open, plus one atomically replaced checkpoint blob.
 *
 * Why: LMDB makes a transaction durable by writing every page it touched where that page lives,
 * so a batch of random-key writes costs one random 4 KiB write per item and the disk's random
 * IOPS cap the write rate.  The table engine (tbl.c) instead appends each transaction's
 * physical changes to this log and fsyncs only the log (one sequential write per group
 * commit), lets LMDB commit without syncing, and makes LMDB durable in the background at
 * checkpoints.  tbl.c documents the recovery argument; this module only stores bytes.
 *
 * Files, in the directory given to tbl_wal_open:
 *   %016llx.wal   segments, numbered from 1; records are only ever appended to the newest
 *   checkpoint    the last checkpoint blob (written to checkpoint.tmp, fsynced, renamed,
 *                 directory fsynced), framed: magic "TCKP", u32 length, u32 crc32c, blob
 *
 * Record (all integers little-endian):
 *   u32 length of payload | u32 crc32c of (type, lsn, payload) | u8 type | 3 bytes 0 |
 *   u64 lsn | payload
 * LSNs increase by one per record across segments.  A record is on disk once tbl_wal_sync
 * returns.  At replay a short, oversized or checksum-failing record in the newest segment is
 * a torn tail (a write that was never acknowledged): the segment is truncated there and the
 * log says so.  The same in an older segment is corruption and fails the replay, since later
 * records were acknowledged.
 *
 * Thread rules: one thread appends/syncs/rotates; tbl_wal_drop_before may run on another
 * thread (it only unlinks segments older than the one being appended to).  Errors: TR_E* codes
 * with a message in the caller's tr_err.
 */
#ifndef TBL_WAL_H
#define TBL_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct tbl_wal tbl_wal_t;

#define TBL_WAL_MAX_RECORD ((size_t)1 << 30)

/* Open (creating dir if needed).  Does not read segments: call tbl_wal_replay next, which also
 * positions appends after the last good record (in a new segment). */
int tbl_wal_open(const char *dir, tbl_wal_t **out, tr_err *err);
void tbl_wal_close(tbl_wal_t *w);

/* Call fn for every record in segments >= from_seg, in order; fn returning nonzero stops the
 * replay with that code.  Truncates a torn tail (see above).  Afterwards appends go to a fresh
 * segment numbered after every existing one; *next_lsn (optional) is the LSN the next append
 * gets. */
typedef int (*tbl_wal_fn)(void *arg, uint8_t type, uint64_t lsn, const uint8_t *p, size_t n);
int tbl_wal_replay(tbl_wal_t *w, uint64_t from_seg, tbl_wal_fn fn, void *arg, tr_err *err);

/* Append one record (written, not yet synced); *lsn (optional) gets its LSN.  Payload of two
 * parts so callers need not join them (b may be NULL). */
int tbl_wal_append(tbl_wal_t *w, uint8_t type, const void *a, size_t an, const void *b,
                   size_t bn, uint64_t *lsn, tr_err *err);
int tbl_wal_sync(tbl_wal_t *w, tr_err *err);   /* fdatasync the segment being appended to */

/* Start a new segment; later appends go there.  *seg = its number.  Bytes appended since the
 * last rotation: tbl_wal_pending. */
int tbl_wal_rotate(tbl_wal_t *w, uint64_t *seg, tr_err *err);
uint64_t tbl_wal_pending(const tbl_wal_t *w);
uint64_t tbl_wal_segment(const tbl_wal_t *w);  /* number of the segment being appended to */

/* Unlink every segment numbered below seg (never the one being appended to). */
int tbl_wal_drop_before(tbl_wal_t *w, uint64_t seg, tr_err *err);

/* Checkpoint blob: write atomically and durably / read back.  Read: TR_ENOTFOUND when there is
 * none; *blob malloc'd, caller frees. */
int tbl_wal_ckpt_write(tbl_wal_t *w, const void *blob, size_t n, tr_err *err);
int tbl_wal_ckpt_read(tbl_wal_t *w, uint8_t **blob, size_t *n, tr_err *err);

#endif
