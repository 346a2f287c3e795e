/* SPDX-License-Identifier: Apache-2.0
 *
 * esm_int.h -- internals of the event-source mappings shared by esm.c and esm_run.c; not API
 * (other modules use esm.h).
 *
 * esm.c holds the mappings' registry and stored state, the checkpointer, the append hook,
 * starting/stopping shard tasks, the manager thread, the control plane and metrics; esm_run.c
 * holds what a running shard task does (reader, lanes, invocation, retries, destination).
 * Threads, lock order and the stored format are described at the top of esm.c; every field
 * below says which lock guards it.
 */
#ifndef ESM_INT_H
#define ESM_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/uuid.h"
#include "fn/esm.h"

#define ESM_ACCOUNT "000000000000"
#define ESM_MAX_LANES 10
#define ESM_MAX_PAYLOAD (6 * 1024 * 1024 - 4096) /* AWS: 6 MB synchronous invoke payload */
#define ESM_LANE_MAX_BYTES                                                                         \
    (8u << 20)            /* queued data per lane before the reader
                                                    waits */
#define ESM_QUEUE_MAX                                                                              \
    ((size_t)256 << 20)        /* queued data of all lanes of all mappings:
                                                    readers wait above it, so memory stays
                                                    bounded however many mappings x shards x
                                                    lanes run */
#define ESM_READ_MAX_RECORDS 10000
/* A read of at most this many records (and BatchSize) that finds every lane empty goes to lane 0
 * alone, as one batch (lanes_collapse in esm_run.c).  Measured (bench/pipeline.py): 200 takes
 * ~16% of the CPU per reading off at 6,000 readings/s and is neutral at saturation; 1,000 cost
 * ~15% of the saturated throughput (the other lanes waiting behind lane 0's bigger batch). */
#define ESM_COLLAPSE_MAX 200
#define ESM_CK_FINISHED 1u

enum { ESM_DESIRE_RUN = 0, ESM_DESIRE_DELETE = 1 };

_Static_assert(ESM_UUID_LEN == TR_UUID_LEN, "mapping UUIDs are core/uuid.h's");

/* ---- types ----------------------------------------------------------------------------------- */

typedef struct esm_rec {
    uint64_t seq;
    int64_t arrival_ms;
    int64_t queued_ms; /* monotonic, for MaximumBatchingWindowInSeconds */
    uint16_t pk_len;
    uint8_t home; /* lane hash(pk) % ParallelizationFactor, whichever lane holds it */
    uint32_t data_len;
    char bytes[]; /* pk, NUL, data, NUL */
} esm_rec_t;

typedef struct esm_task esm_task_t;
typedef struct esm_mapping esm_mapping_t;

typedef struct esm_lane {
    esm_task_t *t;
    int idx;
    esm_rec_t **q; /* ring */
    size_t head, n, cap, bytes;
    pthread_t thread;
    int running;
    /* tumbling window (lane 0 only; ParallelizationFactor is 1 then) */
    int64_t win_start; /* 0: no open window */
    char *state; /* JSON object text; NULL = "{}" */
} esm_lane_t;

/* What a task runs with: a snapshot of the configuration (tasks restart when it changes). */
typedef struct esm_run {
    esm_config_t cfg;
    esm_filter_t *filter;
    char stream_name[SLOG_MAX_STREAM_NAME + 1];
    char dest_stream[SLOG_MAX_STREAM_NAME + 1]; /* "" when no destination */
    int refs; /* under e->mu */
} esm_run_t;

struct esm_task {
    esm_task_t *next; /* in the mapping's list */
    esm_task_t *hnext; /* in the hook's table */
    esm_mapping_t *m;
    esm_run_t *run;
    esm_t *e;
    uint64_t stream_id;
    uint32_t shard;
    pthread_mutex_t mu;
    pthread_cond_t cv_reader, cv_lanes;
    atomic_int stop;
    int poked;
    uint64_t read_pos; /* next counter to read */
    int read_done; /* a closed shard read to its end */
    int finished; /* ... and processed and checkpointed */
    uint64_t ck_next; /* last checkpoint handed to the checkpointer */
    int n_lanes;
    esm_lane_t lanes[ESM_MAX_LANES];
    pthread_t reader;
    int reader_running;
    /* under mu: records queued in lane 0 by home lane (lanes_collapse in esm_run.c); lane h
     * starts no batch while in0[h] > 0 */
    uint32_t in0[ESM_MAX_LANES];
};

struct esm_mapping {
    esm_mapping_t *next;
    esm_config_t cfg; /* under e->mu */
    uint64_t cfg_gen; /* bumped by every update */
    int desire; /* DESIRE_* */
    uint64_t stream_id;
    /* manager-owned */
    uint32_t n_tasks; /* copy of the task count, under e->mu (stats) */
    esm_run_t *run;
    uint64_t run_gen;
    esm_task_t *tasks;
    uint32_t *finished; /* shards known finished */
    size_t n_finished, cap_finished;
    /* stats (under e->mu) */
    int64_t iterator_age_ms;
    uint64_t invocations, errors, records_in, records_filtered, records_discarded;
};

typedef struct esm_ck_item {
    struct esm_ck_item *next;
    char uuid[ESM_UUID_LEN + 1];
    uint32_t shard;
    uint64_t next_counter;
    uint32_t flags;
    int64_t win_start;
    char *state;
    int del; /* delete every checkpoint of uuid instead */
} esm_ck_item_t;

struct esm {
    atomic_size_t queued_bytes; /* records read, not yet done, all lanes (ESM_QUEUE_MAX) */
    slog_t *lg;
    fn_t *fn;
    char region[64];
    int64_t age_unit_ms, window_grace_ms, backoff_ms;
    MDB_env *env;
    MDB_dbi db_map, db_ck;
    pthread_mutex_t mu;
    esm_mapping_t *maps;
    /* manager */
    pthread_t manager;
    pthread_cond_t mgr_cv;
    int mgr_poked, closing, started;
    /* hook table: tasks by (stream id, shard) */
    pthread_mutex_t hook_mu;
    esm_task_t *hook[256];
    /* checkpointer */
    pthread_t ckthread;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv, ck_done;
    esm_ck_item_t *ck_head;
    uint64_t ck_gen, ck_flushed;
    int ck_closing;
};

/* ---- functions of esm.c used by esm_run.c -------------------------------------------------- */

/* Sleep ms milliseconds (EINTR resumes the sleep). */
void esm__sleep_ms(int64_t ms);
/* The CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
void esm__abstime_in(struct timespec *ts, int64_t ms);
/* FNV-1a of the partition key: the lane of a record. */
uint32_t esm__pk_hash(const char *pk, size_t n);
/* Queue a checkpoint for the checkpointer; returns its flush generation (see esm__ck_wait).
 * state is copied. */
uint64_t esm__ck_put(esm_t *e, const char *uuid, uint32_t shard, uint64_t next, uint32_t flags,
                     int64_t win_start, const char *state);
/* Wait until the checkpointer has flushed generation gen (or is closing).  Takes ck_mu: call
 * with no other lock held. */
void esm__ck_wait(esm_t *e, uint64_t gen);
/* Wake the manager thread now (takes e->mu). */
void esm__poke_manager(esm_t *e);

/* ---- functions of esm_run.c used by esm.c -------------------------------------------------- */

/* Drop the first k queued records of a lane, releasing their bytes.  Caller holds t->mu. */
void esm__lane_pop(esm_lane_t *l, size_t k);
/* Under t->mu: persist the shard's checkpoint if it moved (or the window state changed), and
 * finish the shard when a closed shard is fully processed.  Returns a flush generation to wait
 * for (outside the lock) when the shard just finished, else 0. */
uint64_t esm__checkpoint_locked(esm_task_t *t, int state_changed);
/* Thread bodies of a shard task, started by task_start (esm.c): arg is the esm_lane_t / the
 * esm_task_t. */
void *esm__lane_main(void *arg);
void *esm__reader_main(void *arg);

#endif
