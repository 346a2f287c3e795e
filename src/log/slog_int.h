/* SPDX-License-Identifier: Apache-2.0
 *
 * slog_int.h -- internals of the stream engine shared by slog.c and slog_ctl.c; not API.
 *
 * slog.c holds the engine's state (struct slog), the LMDB metadata encoding, shard handles, the
 * stream cache, the commit and retention threads, the data plane and metrics; slog_ctl.c holds
 * the control plane (create, delete, describe, list, retention, tags) and resharding.  The lock
 * order and the drain protocol are described at the top of slog.c; every field below says which
 * lock guards it.  Nothing here is for other modules: they use slog.h.
 */
#ifndef SLOG_INT_H
#define SLOG_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "log/shard_int.h"
#include "log/slog.h"

#define SLOG_DEF_SHARD_LIMIT 500
#define SLOG_DEF_ON_DEMAND_LIMIT 50
#define SLOG_DEF_ON_DEMAND_SHARDS 4
#define SLOG_DEF_MAX_PENDING ((size_t)256 << 20)
#define SLOG_DEF_RETENTION_MS 60000
#define SLOG_MIN_RETENTION_H 24
#define SLOG_MAX_RETENTION_H 8760
#define SLOG_DEF_RETENTION_H 24
#define SLOG_MAX_TAGS 50
#define SLOG_MAX_TAG_KEY 128
#define SLOG_MAX_TAG_VALUE 256
#define SLOG_MAX_SHARDS_PER_STREAM 10000
#define SLOG_META_MAPSIZE ((size_t)1 << 30)
#define SLOG_HASH_MAX (~(slog_hash_t)0)

/* ---- types --------------------------------------------------------------------------------- */

/* One shard of a stream: its persisted description plus the open log. */
typedef struct sl_shard {
    slog_shard_info_t info;     /* persisted part; begin/end are not used here.  Changed only
                                   under ctl_mu + lock (writer) */
    uint64_t stream_id;
    slog_shard_t *log;
    char *dir, *stream_dir;
    atomic_int refs;            /* the stream table's reference + in-flight readers */
    atomic_int doomed;          /* remove the directory when the last reference goes */
    pthread_mutex_t wmu;        /* append/sync vs trim */
    int fail_rc;                /* the log could not be opened (log == NULL): this code ... */
    char *fail_msg;             /* ... and this message answer its requests; fixed at load */
    int64_t last_arrival;       /* under wmu */
    size_t c_slot;              /* commit thread only: 1 + index in lg->slots, 0 = none */
    struct slog *lg;            /* for the high-water mark hook (hwm_store) */
} sl_shard_t;

typedef struct sl_stream {
    char name[SLOG_MAX_STREAM_NAME + 1];
    uint64_t id;
    int mode;
    int64_t created_ms;
    uint32_t retention_hours;
    sl_shard_t **shards;        /* by index: shards[i]->info.index == i */
    size_t n_shards;
    sl_shard_t **open;          /* open shards by ascending hash_start (routing table) */
    size_t n_open;
    slog_tag_t *tags;           /* sorted by key; owned */
    size_t n_tags;
} sl_stream_t;

/* One queued put. */
typedef struct sl_job {
    struct sl_job *next;
    slog_put_rec_t *recs;
    size_t n;
    slog_put_cb cb;
    void *arg;
    size_t bytes;
    uint64_t ticket;
    sl_shard_t *route[];        /* n entries: the open shard each record goes to */
} sl_job_t;

/* Commit thread scratch: the records of one shard in one cycle. */
typedef struct sl_slot {
    sl_shard_t *sh;
    slog_rec_in_t *in;
    slog_put_rec_t **out;
    size_t n, cap;
    uint64_t first;
    int rc;
} sl_slot_t;

/* What one LMDB stream record holds (see "metadata" below). */
typedef struct sl_image {
    uint64_t id;
    int mode;
    int64_t created_ms;
    uint32_t retention_hours;
    const slog_shard_info_t *shards;
    size_t n_shards;
    const slog_tag_t *tags;
    size_t n_tags;
} sl_image_t;

struct slog {
    char *dir;
    slog_opts_t opts;
    MDB_env *env;
    MDB_dbi db_streams, db_meta;
    uint64_t next_id;                   /* under ctl_mu */

    pthread_mutex_t ctl_mu;
    pthread_rwlock_t put_lock;
    pthread_rwlock_t lock;
    sl_stream_t **streams;              /* sorted by name */
    size_t n_streams, cap_streams;
    uint32_t open_total;                /* open shards, all streams */
    uint32_t on_demand_streams;

    pthread_mutex_t qmu;
    pthread_cond_t q_cond;              /* work queued or stopping */
    pthread_cond_t q_done_cond;         /* q_done moved */
    sl_job_t *q_head, *q_tail;
    size_t pending_bytes;
    uint64_t q_enqueued, q_done;
    int stopping;
    slog_append_hook hook;
    void *hook_arg;

    sl_slot_t *slots;                   /* commit thread only */
    size_t slots_cap;

    pthread_mutex_t rmu;
    pthread_cond_t r_cond;
    int r_stop;

    pthread_t commit_thr, ret_thr;
    int commit_started, ret_started, locks_ready;
};

/* ---- helpers of slog.c used by slog_ctl.c -------------------------------------------------- */

/* asprintf that aborts with a log line on OOM, as core/mem.h's tr_x* do (small control-plane
 * allocations only). */
char *slog__xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Remove a directory tree, best effort (tr_rmtree; a failure is logged at WARN). */
void slog__rm_rf(const char *path);
/* "shardId-%012u" of a shard index. */
void slog__shard_id(uint32_t idx, char out[24]);
/* Ranges of n shards splitting [0, 2^128) evenly as AWS does (starts/ends hold n entries). */
void slog__split_even(uint32_t n, slog_hash_t *starts, slog_hash_t *ends);
/* Free n tags and the array (NULL is fine). */
void slog__tags_free(slog_tag_t *t, size_t n);
/* Write (img != NULL) or delete (img == NULL) the LMDB record of `name`, and next_id if
 * nonzero, in one durable transaction.  Caller holds ctl_mu. */
int slog__meta_write(slog_t *lg, const char *name, const sl_image_t *img, uint64_t next_id,
                     tr_err *err);
/* The image of st as cached; infos must hold st->n_shards (filled here) + room the caller uses. */
void slog__image_of(const sl_stream_t *st, slog_shard_info_t *infos, sl_image_t *img);
/* Drop the high-water marks of a deleted stream (best effort). */
void slog__hwm_forget(slog_t *lg, uint64_t sid);
/* Open a shard's log into a new handle holding one reference (*out).  With `tolerate` a log
 * that cannot be opened yields a FAILED shard (log NULL, fail_rc/fail_msg set) instead of an
 * error.  txn: the caller's LMDB read transaction for the high-water mark, or NULL. */
int slog__sh_open(slog_t *lg, uint64_t sid, const slog_shard_info_t *info, sl_shard_t **out,
                  int tolerate, MDB_txn *txn, tr_err *err);
/* Mark a shard so that the last reference's release removes its directory. */
void slog__sh_doom(sl_shard_t *sh);
/* Insert into the stream cache (caller holds put_lock and lock as writer, or is the only
 * thread); lookups are the inline functions at the end of this file. */
void slog__stream_insert(slog_t *lg, sl_stream_t *st);
/* A fresh routing table (open shards by hash_start) for st; the caller swaps it in, owns it. */
sl_shard_t **slog__routing_build(const sl_stream_t *st, size_t *n);
/* Free a stream and drop its shard references; doom != 0 also marks the shards for removal. */
void slog__stream_free(sl_stream_t *st, int doom);
/* TR_ENOTFOUND "stream ... not found" into err; returns the code. */
int slog__stream_missing(const char *name, tr_err *err);
/* Validate tags against the AWS limits (count, key and value lengths). */
int slog__tags_check(const slog_tag_t *tags, size_t n, tr_err *err);
/* Deep copy of a (minus keys in `drop`) with b added/overwriting, sorted by key; caller owns. */
slog_tag_t *slog__tags_merge(const slog_tag_t *a, size_t na, const slog_tag_t *b, size_t nb,
                             char *const *drop, size_t nd, size_t *n_out);
/* Wait until every job queued so far has been appended and synced.  Callers hold put_lock as
 * writer so nothing new is routed meanwhile. */
void slog__drain(slog_t *lg);

/* ---- stream cache lookups (inline: slog_put and slog_read make one per call) --------------- */

/* The stream cache is sorted by name.  Lookups need `lock` (any mode), put_lock, or ctl_mu. */
static inline size_t slog__stream_lower_bound(slog_t *lg, const char *name) {
    size_t lo = 0, hi = lg->n_streams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(lg->streams[mid]->name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static inline sl_stream_t *slog__stream_by_name(slog_t *lg, const char *name) {
    size_t i = slog__stream_lower_bound(lg, name);
    return i < lg->n_streams && !strcmp(lg->streams[i]->name, name) ? lg->streams[i] : NULL;
}

static inline sl_stream_t *slog__stream_by_id(slog_t *lg, uint64_t id) {
    for (size_t i = 0; i < lg->n_streams; i++)
        if (lg->streams[i]->id == id) return lg->streams[i];
    return NULL;
}

#endif
