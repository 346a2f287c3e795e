/* SPDX-License-Identifier: Apache-2.0
 *
 * slog.h -- the stream engine: named streams of shards, durable appends with group commit.
 *
 * This is Kinesis Data Streams as a C library, without HTTP.  A slog_t owns a data directory:
 *
 *     DIR/meta/                 LMDB environment: stream and shard metadata, tags, counters
 *     DIR/streams/<id>/<idx>/   one shard log per shard (see shard.h); <id> is the stream's
 *                               unique creation id, so a re-created name never sees old data
 *
 * Invariants
 *   - A put is acknowledged (its callback runs with rc 0) only after every record of it is on
 *     disk (fdatasync).  Concurrent puts share one fsync per shard per commit cycle (group
 *     commit): one commit thread appends everything queued, syncs each touched shard once, then
 *     runs the callbacks.
 *   - Records reach readers only after they are durable.
 *   - A record's shard is chosen by its 128-bit hash key (MD5 of the partition key, big-endian,
 *     or the explicit hash key) among the OPEN shards, whose hash ranges partition [0, 2^128).
 *   - Sequence numbers increase by one per record within a shard and are never reused.  Their
 *     public form (slog_seq_format) is a decimal string that also encodes the shard index.
 *   - Resharding closes parents (their ending sequence number is fixed at that moment) and
 *     opens children that list their parents; parents stay readable until retention expires.
 *   - Metadata changes are durable (LMDB commit) before the call returns.
 *
 * Thread rules: every function is thread-safe.  Put callbacks run on the commit thread: they
 * must be short and must not call back into slog_put synchronously.  They may call the read-only
 * functions (slog_read, slog_position, describe, list, limits) but no control-plane function:
 * delete and resharding wait for the commit thread (drain), so that would deadlock.
 *
 * Memory: the engine admits at most opts.max_pending_bytes of queued put data; past that
 * slog_put answers TR_ETHROTTLED (the adapter turns it into a throttling error).
 *
 * Damaged data (see shard.h, "Recovery")
 *   - A damaged range inside a shard's log (a flipped bit, a bad segment header, a damaged or
 *     missing segment file) costs only the records in it.  Every intact record before and
 *     after it is kept and served; the damage is logged at ERROR at every start and counted
 *     (slog_metrics_prometheus, GET /metrics).
 *   - slog_read over a damaged range SKIPS it: it returns the next intact records, so their
 *     seqs jump over the lost ones, and out->next_seq moves past the damage even when no
 *     record is returned (a consumer always advances; it is never stuck re-reading the damage).
 *     Through Kinesis, GetRecords returns the records after the gap and a NextShardIterator
 *     past it; the lost sequence numbers are never handed out again.
 *   - Sequence numbers never go backwards, even when the newest segment files are deleted.
 *   - A shard whose log cannot be opened at start-up at all (an I/O error, a file that cannot
 *     be read) is FAILED: slog_open still succeeds and the other shards serve; reads, positions
 *     and resharding of that shard answer its open error (the message names the shard, its
 *     directory and the fix) and its records' puts fail with that code.  Fix: repair what the
 *     message says and restart.
 */
#ifndef SLOG_H
#define SLOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "log/shard.h"

typedef unsigned __int128 slog_hash_t;

#define SLOG_MAX_STREAM_NAME 128
#define SLOG_SEQ_STRLEN 34          /* "49" + 12-digit shard index + 20-digit counter */
#define SLOG_NO_SHARD UINT32_MAX

enum { SLOG_MODE_PROVISIONED = 0, SLOG_MODE_ON_DEMAND = 1 };

typedef struct slog slog_t;

typedef struct slog_opts {
    uint64_t segment_bytes;         /* 0: shard default */
    uint32_t shard_limit;           /* open shards across all streams; 0: 500 */
    uint32_t on_demand_limit;       /* ON_DEMAND streams; 0: 50 */
    uint32_t on_demand_shards;      /* shards of a new ON_DEMAND stream; 0: 4 */
    size_t max_pending_bytes;       /* queued put bytes before TR_ETHROTTLED; 0: 256 MiB */
    int retention_interval_ms;      /* how often retention runs; 0: 60000 */
    int no_sync;                    /* tests only */
    int commit_delay_ms;            /* tests only: sleep before each group commit, as a slow
                                       disk would, so overload can be produced on demand */
    uint32_t test_enospc_shard;     /* tests only: shard index + 1 (0: off); every write to a
                                       segment of a shard with that index, in every stream, fails
                                       with ENOSPC as a full disk would, so a test can make one
                                       shard's appends fail while the others succeed */
} slog_opts_t;

typedef struct slog_shard_info {
    uint32_t index;                 /* shardId-%012u */
    uint32_t parent;                /* SLOG_NO_SHARD if none */
    uint32_t adjacent_parent;       /* SLOG_NO_SHARD if none */
    slog_hash_t hash_start, hash_end;   /* inclusive range */
    uint64_t seq_start;             /* counter of the shard's first record */
    uint64_t seq_end;               /* closed shards: counter after the last record (exclusive);
                                       EndingSequenceNumber is formatted from seq_end - 1 */
    int closed;
    int64_t created_ms, closed_ms;
    /* live figures (not persisted) */
    uint64_t begin, end;            /* first retained counter, next counter */
} slog_shard_info_t;

typedef struct slog_tag {
    char *key;
    char *value;
} slog_tag_t;

typedef struct slog_stream_info {
    char name[SLOG_MAX_STREAM_NAME + 1];
    uint64_t id;
    int mode;
    int64_t created_ms;
    uint32_t retention_hours;
    uint32_t n_shards, open_shards;
    slog_shard_info_t *shards;      /* all shards, ascending index; owned */
    size_t n_tags;
    slog_tag_t *tags;               /* sorted by key; owned */
} slog_stream_info_t;

/* ---- lifetime ------------------------------------------------------------------------------ */

/* Open or create the engine in dir (created if missing), recover every shard (torn tails are
 * truncated and reported, damage is skipped and reported, a shard that cannot be opened is
 * kept as failed: see "Damaged data"), start the commit and retention threads.  Fails only for
 * the engine's own metadata (TR_EIO, TR_ECORRUPT). */
int slog_open(const char *dir, const slog_opts_t *opts, slog_t **out, tr_err *err);
/* Drain queued puts (they complete), stop threads, close files.  Accepts NULL. */
void slog_close(slog_t *lg);

/* ---- control plane (synchronous, durable) -------------------------------------------------- */

/* TR_EEXISTS if the name is taken, TR_ELIMIT if the shard or on-demand limit would be passed. */
int slog_stream_create(slog_t *lg, const char *name, uint32_t shard_count, int mode,
                       const slog_tag_t *tags, size_t n_tags, tr_err *err);
/* TR_ENOTFOUND.  Data files are removed after the metadata is gone. */
int slog_stream_delete(slog_t *lg, const char *name, tr_err *err);
/* Snapshot of a stream; free with slog_stream_info_free.  TR_ENOTFOUND. */
int slog_stream_describe(slog_t *lg, const char *name, slog_stream_info_t *out, tr_err *err);
/* Same, by stream id (iterators carry ids). */
int slog_stream_describe_id(slog_t *lg, uint64_t id, slog_stream_info_t *out, tr_err *err);
void slog_stream_info_free(slog_stream_info_t *info);
/* Names of all streams in ascending order, starting after `after` (NULL = first), at most max.
 * *names is an array of malloc'd strings (free each and the array).  *more set if more follow. */
int slog_stream_list(slog_t *lg, const char *after, size_t max, char ***names, size_t *n, int *more,
                     tr_err *err);
/* Retention: TR_EINVAL when hours is out of [24, 8760] or does not move in the stated direction
 * (increase: hours >= current; decrease: hours <= current), message says why. */
int slog_stream_set_retention(slog_t *lg, const char *name, uint32_t hours, int increase,
                              tr_err *err);
/* Tags: add/overwrite (TR_ELIMIT past 50 tags in all), remove (absent keys ignored). */
int slog_stream_tags_add(slog_t *lg, const char *name, const slog_tag_t *tags, size_t n,
                         tr_err *err);
int slog_stream_tags_remove(slog_t *lg, const char *name, char *const *keys, size_t n, tr_err *err);
/* Mode switch (UpdateStreamMode) is not implemented yet. */

/* Resharding.  TR_EINVAL for a closed/unknown shard, a hash key outside the shard's range,
 * non-adjacent merges, or an out-of-range target; TR_ELIMIT past the shard limit. */
int slog_shard_split(slog_t *lg, const char *name, uint32_t shard, slog_hash_t new_start,
                     tr_err *err);
int slog_shard_merge(slog_t *lg, const char *name, uint32_t shard, uint32_t adjacent, tr_err *err);
/* Uniform scaling to target open shards; target in [open/2, open*2] as AWS allows.
 * *old_count receives the previous open count. */
int slog_stream_scale(slog_t *lg, const char *name, uint32_t target, uint32_t *old_count,
                      tr_err *err);

/* Account-wide figures for DescribeLimits. */
void slog_limits(slog_t *lg, uint32_t *shard_limit, uint32_t *open_shards,
                 uint32_t *on_demand_limit, uint32_t *on_demand_streams);

/* ---- data plane ---------------------------------------------------------------------------- */

/* One record of a put.  Inputs are borrowed until the callback has run; outputs are filled
 * before it runs. */
typedef struct slog_put_rec {
    const char *pk;
    uint16_t pk_len;
    const uint8_t *data;
    uint32_t data_len;
    int has_explicit_hash;
    slog_hash_t explicit_hash;
    /* out */
    slog_hash_t hash;       /* the hash key used for routing */
    int rc;                 /* 0 or TR_E* for this record */
    uint32_t shard;         /* shard index */
    uint64_t seq;           /* counter within the shard */
} slog_put_rec_t;

/* Called once, on the commit thread, after the whole put is durable (rc 0) or has failed
 * (rc < 0: every record's rc says what happened to it). */
typedef void (*slog_put_cb)(void *arg, int rc);

/* Queue records for stream `name`.  Returns 0 when queued (cb WILL run), or an error without
 * queuing (cb will NOT run): TR_ENOTFOUND, TR_ETHROTTLED, TR_EINVAL.  Within a shard every
 * record gets a larger counter than all before it, so Kinesis' SequenceNumberForOrdering holds
 * without a parameter here (the adapter only validates the hint). */
int slog_put(slog_t *lg, const char *name, slog_put_rec_t *recs, size_t n, slog_put_cb cb,
             void *arg, tr_err *err);

/* Read committed records of shard `shard` of stream `id` from counter `from` (see
 * slog_shard_read for limits and buffer ownership).  *closed_end (if not NULL) receives the
 * counter after the last record of a closed shard or UINT64_MAX when open, *last_arrival the
 * arrival time of the newest record (for MillisBehindLatest).  Over a damaged or missing range
 * the read skips to the next intact record (out->next_seq moves past the range even when
 * out->n == 0).  TR_ENOTFOUND when the stream or shard no longer exists; a failed shard's open
 * error (TR_EIO, TR_ECORRUPT, ...) with a message naming the shard and the fix. */
int slog_read(slog_t *lg, uint64_t id, uint32_t shard, uint64_t from, size_t max_records,
              size_t max_bytes, slog_read_t *out, uint64_t *closed_end, int64_t *last_arrival,
              tr_err *err);
/* Whether shard `shard` of stream `name` serves: 0 when it does; a FAILED shard's open error
 * (TR_EIO, TR_ECORRUPT, ...) with the message naming the shard, its directory and the fix in
 * err (the message its reads answer); TR_ENOTFOUND for an unknown stream or shard.  For
 * adapters explaining why a put's record failed (the callback only carries the code). */
int slog_shard_status(slog_t *lg, const char *name, uint32_t shard, tr_err *err);
/* Counter positions for iterators: the first retained record, the tip (next counter), and the
 * first record at or after ts_ms.  TR_ENOTFOUND. */
int slog_position(slog_t *lg, uint64_t id, uint32_t shard, int64_t ts_ms, uint64_t *begin,
                  uint64_t *end, uint64_t *at_time, tr_err *err);

/* Append hook ("push, not poll" consumers such as the Lambda event-source poller): called on
 * the commit thread after a shard's new records are durable and visible to slog_read, once per
 * touched shard per commit cycle, with `end` = that shard's next counter.  Like put callbacks it
 * must be short and must not call into the engine (signal a condition variable and return).
 * fn NULL removes the hook.  Takes effect from the next commit cycle. */
typedef void (*slog_append_hook)(void *arg, uint64_t stream_id, uint32_t shard, uint64_t end);
void slog_set_append_hook(slog_t *lg, slog_append_hook fn, void *arg);

/* ---- health -------------------------------------------------------------------------------- */

/* Damage and failed shards, in the Prometheus text format, appended to b: the totals of every
 * shard's slog_shard_health (tributary_stream_damaged_ranges_total, _damaged_bytes_total,
 * _lost_records_total, _missing_segments_total, _read_damage_total), each also per damaged
 * shard with {stream, shard} labels, and the gauge tributary_stream_failed_shards. */
void slog_metrics_prometheus(slog_t *lg, tr_buf *b);

/* ---- helpers ------------------------------------------------------------------------------- */

/* Hash key of a partition key: MD5 as a 128-bit big-endian integer. */
slog_hash_t slog_hash_pk(const char *pk, size_t n);
/* Decimal text of h into out (40 bytes). */
void slog_hash_format(slog_hash_t h, char out[40]);
/* Parse a decimal hash key in [0, 2^128); TR_EINVAL otherwise. */
int slog_hash_parse(const char *s, slog_hash_t *out);
/* Public sequence number text (SLOG_SEQ_STRLEN + 1 bytes). */
void slog_seq_format(uint32_t shard, uint64_t counter, char out[SLOG_SEQ_STRLEN + 1]);
/* Parse a public sequence number; TR_EINVAL if it is not one of ours. */
int slog_seq_parse(const char *s, uint32_t *shard, uint64_t *counter);

#endif
