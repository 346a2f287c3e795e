/* SPDX-License-Identifier: Apache-2.0
 *
 * esm.c -- event-source mappings for Kinesis streams (see esm.h for the contract).
 *
 * What a running shard task does (reader, lanes, invocation, retries, destination) is in
 * esm_run.c; the types and helpers the two files share are in esm_int.h.
 *
 * Moving parts, per esm_t:
 *
 *   manager thread   reconciles what runs with what is configured, every 500 ms or when poked
 *                    (a mapping changed, a shard finished, the hook saw an unknown shard): starts
 *                    a shard task for every shard whose parents are finished, stops and restarts
 *                    tasks of mappings that were updated, disabled or deleted, and deletes the
 *                    stored state of deleted mappings.  Only the manager creates or frees tasks
 *                    and frees mappings.
 *   checkpointer     group-commits checkpoints: lanes hand it (uuid, shard) -> position snapshots,
 *                    it writes all pending ones in one LMDB transaction.  Callers that need
 *                    durability before going on (a finished shard, a stop) wait for the flush
 *                    generation.
 *   shard task       per (mapping, shard): a reader thread and ParallelizationFactor lane
 *                    threads.  The reader waits for the append hook (or a 1 s fallback timer),
 *                    reads committed records with slog_read, drops those the filters reject and
 *                    queues the rest -- copied -- to lane hash(partition key) % N.  A lane takes a
 *                    batch from the front of its queue, invokes the function (fn_invoke_wait),
 *                    applies the retry/bisect/age/partial-response policy, and pops what is done.
 *                    The shard's checkpoint is the lowest queued record of any lane (or the read
 *                    position when all are empty), so it never passes an unprocessed record.
 *
 * Locks, in order: e->mu (mappings, configurations, stats) > t->mu (a task's queues) ; e->hook_mu
 * (the hook's routing table; taken alone or before a t->mu) ; e->ck_mu (checkpointer queue).  No
 * lock is held across slog_read, slog_put, fn_* calls or LMDB writes, and the append hook takes
 * only hook_mu and t->mu: the commit thread never waits behind an invocation.
 *
 * Stored state (DATA/esm, LMDB):
 *   "map"   key uuid (36 bytes)            value: the configuration as JSON (see map_to_json)
 *   "ckpt"  key uuid + shard (u32 BE)      value, little-endian:
 *
 *       0        4        8                16               24        28
 *       +--------+--------+----------------+----------------+---------+-----------------+
 *       | ver=1  | flags  | next counter   | window start   | state   | state JSON      |
 *       | u32    | u32    | u64            | i64 (0: none)  | len u32 | bytes           |
 *       +--------+--------+----------------+----------------+---------+-----------------+
 *       flags bit 0: finished (a closed shard read and processed to its end).
 */
#include "fn/esm.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/esm_int.h"
#include "fn/native.h"
#include "fn/trf_int.h"
/* ---- helpers --------------------------------------------------------------------------------- */

void esm__sleep_ms(int64_t ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

void esm__abstime_in(struct timespec *ts, int64_t ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static uint32_t hook_slot(uint64_t stream_id, uint32_t shard) {
    return (uint32_t)((stream_id * 0x9E3779B97F4A7C15ull) >> 40 ^ shard) & 255u;
}

/* FNV-1a of the partition key: the lane of a record. */
uint32_t esm__pk_hash(const char *pk, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)pk[i]) * 16777619u;
    return h;
}

void esm_config_free(esm_config_t *c) {
    if (!c) return;
    free(c->filter_criteria);
    c->filter_criteria = NULL;
}

void esm_config_defaults(esm_config_t *c) {
    memset(c, 0, sizeof *c);
    c->batch_size = 100;
    c->parallelization = 1;
    c->max_retry = -1;
    c->max_record_age_s = -1;
    c->enabled = 1;
    c->starting_position = -1;
}

static void config_copy(esm_config_t *dst, const esm_config_t *src) {
    *dst = *src;
    dst->filter_criteria = src->filter_criteria ? strdup(src->filter_criteria) : NULL;
}

/* "arn:aws:kinesis:<region>:<account>:stream/<name>" -> name; TR_EINVAL with what is wrong. */
static int parse_stream_arn(const char *arn, const char *region, const char *what, char *name,
                            tr_err *err) {
    char r[64], acct[32], rest[400];
    if (!arn || sscanf(arn, "arn:aws:kinesis:%63[^:]:%31[^:]:%399s", r, acct, rest) != 3 ||
        strncmp(rest, "stream/", 7))
        return tr_err_set(err, TR_EINVAL,
                          "%s \"%s\" is not a Kinesis stream ARN "
                          "(arn:aws:kinesis:%s:%s:stream/NAME)",
                          what, arn ? arn : "", region, ESM_ACCOUNT);
    if (strstr(rest, "/consumer/"))
        return tr_err_set(err, TR_EINVAL,
                          "%s \"%s\" names a stream consumer (enhanced fan-out), "
                          "which this server does not implement; map the stream ARN instead",
                          what, arn);
    if (strcmp(r, region))
        return tr_err_set(err, TR_EINVAL, "%s \"%s\" is in region %s, but this server is %s", what,
                          arn, r, region);
    if (strcmp(acct, ESM_ACCOUNT))
        return tr_err_set(err, TR_EINVAL,
                          "%s \"%s\" belongs to account %s; this server's streams "
                          "are in account %s",
                          what, arn, acct, ESM_ACCOUNT);
    const char *n = rest + 7;
    if (!*n || strlen(n) > SLOG_MAX_STREAM_NAME || strchr(n, '/'))
        return tr_err_set(err, TR_EINVAL, "%s \"%s\" has no valid stream name", what, arn);
    memcpy(name, n, strlen(n) + 1); /* fits: checked above */
    return 0;
}

/* ---- stored configuration -------------------------------------------------------------------- */

static const char *pos_name(int p) {
    return p == ESM_LATEST ? "LATEST" : p == ESM_AT_TIMESTAMP ? "AT_TIMESTAMP" : "TRIM_HORIZON";
}

static char *map_to_json(const esm_mapping_t *m) {
    const esm_config_t *c = &m->cfg;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:b,s:I,s:I,s:I,s:b,s:b,s:s,s:I,s:I,"
                          "s:I,s:b}",
                          "uuid", c->uuid, "function_name", c->function_name, "function_arn",
                          c->function_arn, "source_arn", c->source_arn, "batch_size",
                          (json_int_t)c->batch_size, "window", (json_int_t)c->max_batching_window_s,
                          "starting_position", pos_name(c->starting_position), "starting_ts",
                          (json_int_t)c->starting_ts_ms, "enabled", c->enabled, "parallelization",
                          (json_int_t)c->parallelization, "max_retry", (json_int_t)c->max_retry,
                          "max_age", (json_int_t)c->max_record_age_s, "bisect", c->bisect,
                          "report_items", c->report_item_failures, "on_failure", c->on_failure,
                          "tumbling", (json_int_t)c->tumbling_window_s, "last_modified",
                          (json_int_t)c->last_modified_ms, "stream_id", (json_int_t)m->stream_id,
                          "deleting", m->desire == ESM_DESIRE_DELETE);
    if (!o) return NULL;
    if (c->filter_criteria) json_object_set_new(o, "filters", json_string(c->filter_criteria));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int map_from_json(const char *text, size_t len, esm_mapping_t *m) {
    json_t *o = json_loadb(text, len, 0, NULL);
    if (!o) return -1;
    esm_config_t *c = &m->cfg;
    esm_config_defaults(c);
    const char *s;
    if ((s = json_string_value(json_object_get(o, "uuid"))))
        snprintf(c->uuid, sizeof c->uuid, "%s", s);
    if ((s = json_string_value(json_object_get(o, "function_name"))))
        snprintf(c->function_name, sizeof c->function_name, "%s", s);
    if ((s = json_string_value(json_object_get(o, "function_arn"))))
        snprintf(c->function_arn, sizeof c->function_arn, "%s", s);
    if ((s = json_string_value(json_object_get(o, "source_arn"))))
        snprintf(c->source_arn, sizeof c->source_arn, "%s", s);
    if ((s = json_string_value(json_object_get(o, "on_failure"))))
        snprintf(c->on_failure, sizeof c->on_failure, "%s", s);
    if ((s = json_string_value(json_object_get(o, "filters")))) c->filter_criteria = strdup(s);
    s = json_string_value(json_object_get(o, "starting_position"));
    c->starting_position = s && !strcmp(s, "LATEST")         ? ESM_LATEST
                           : s && !strcmp(s, "AT_TIMESTAMP") ? ESM_AT_TIMESTAMP
                                                             : ESM_TRIM_HORIZON;
    c->batch_size = (uint32_t)json_integer_value(json_object_get(o, "batch_size"));
    c->max_batching_window_s = (uint32_t)json_integer_value(json_object_get(o, "window"));
    c->starting_ts_ms = json_integer_value(json_object_get(o, "starting_ts"));
    c->enabled = json_is_true(json_object_get(o, "enabled"));
    c->parallelization = (uint32_t)json_integer_value(json_object_get(o, "parallelization"));
    c->max_retry = (int32_t)json_integer_value(json_object_get(o, "max_retry"));
    c->max_record_age_s = (int32_t)json_integer_value(json_object_get(o, "max_age"));
    c->bisect = json_is_true(json_object_get(o, "bisect"));
    c->report_item_failures = json_is_true(json_object_get(o, "report_items"));
    c->tumbling_window_s = (uint32_t)json_integer_value(json_object_get(o, "tumbling"));
    c->last_modified_ms = json_integer_value(json_object_get(o, "last_modified"));
    m->stream_id = (uint64_t)json_integer_value(json_object_get(o, "stream_id"));
    m->desire = json_is_true(json_object_get(o, "deleting")) ? ESM_DESIRE_DELETE : ESM_DESIRE_RUN;
    json_decref(o);
    if (!c->batch_size) c->batch_size = 100;
    if (!c->parallelization) c->parallelization = 1;
    return c->uuid[0] ? 0 : -1;
}

/* ---- LMDB ------------------------------------------------------------------------------------ */

static void ck_key(uint8_t key[ESM_UUID_LEN + 4], const char *uuid, uint32_t shard) {
    memcpy(key, uuid, ESM_UUID_LEN);
    key[ESM_UUID_LEN] = (uint8_t)(shard >> 24);
    key[ESM_UUID_LEN + 1] = (uint8_t)(shard >> 16);
    key[ESM_UUID_LEN + 2] = (uint8_t)(shard >> 8);
    key[ESM_UUID_LEN + 3] = (uint8_t)shard;
}

static int ck_write(MDB_txn *txn, MDB_dbi db, const char *uuid, uint32_t shard, uint64_t next,
                    uint32_t flags, int64_t win_start, const char *state) {
    uint8_t key[ESM_UUID_LEN + 4];
    ck_key(key, uuid, shard);
    uint32_t sl = state ? (uint32_t)strlen(state) : 0;
    size_t vl = 28 + sl;
    uint8_t stackv[512];
    uint8_t *v = vl <= sizeof stackv ? stackv : malloc(vl);
    if (!v) return ENOMEM;
    uint32_t ver = 1;
    memcpy(v, &ver, 4);
    memcpy(v + 4, &flags, 4);
    memcpy(v + 8, &next, 8);
    memcpy(v + 16, &win_start, 8);
    memcpy(v + 24, &sl, 4);
    if (sl) memcpy(v + 28, state, sl);
    MDB_val k = {sizeof key, key}, val = {vl, v};
    int rc = mdb_put(txn, db, &k, &val, 0);
    if (v != stackv) free(v);
    return rc;
}

typedef struct ck_rec {
    uint32_t shard;
    uint64_t next;
    uint32_t flags;
    int64_t win_start;
    char *state;
} ck_rec_t;

/* Every checkpoint of a mapping, ascending shard; *out malloc'd (states too). */
static int ck_load_all(esm_t *e, const char *uuid, ck_rec_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    MDB_txn *txn;
    if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn)) return -1;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, e->db_ck, &cur)) {
        mdb_txn_abort(txn);
        return -1;
    }
    uint8_t key[ESM_UUID_LEN + 4];
    ck_key(key, uuid, 0);
    MDB_val k = {sizeof key, key}, v;
    size_t cap = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == ESM_UUID_LEN + 4 && !memcmp(k.mv_data, uuid, ESM_UUID_LEN)) {
        if (v.mv_size >= 28) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                ck_rec_t *p = realloc(*out, cap * sizeof *p);
                if (!p) break;
                *out = p;
            }
            const uint8_t *kb = k.mv_data, *vb = v.mv_data;
            ck_rec_t *c = &(*out)[(*n)++];
            c->shard = (uint32_t)kb[36] << 24 | (uint32_t)kb[37] << 16 | (uint32_t)kb[38] << 8 |
                       kb[39];
            memcpy(&c->flags, vb + 4, 4);
            memcpy(&c->next, vb + 8, 8);
            memcpy(&c->win_start, vb + 16, 8);
            uint32_t sl;
            memcpy(&sl, vb + 24, 4);
            c->state = NULL;
            if (sl && 28 + (size_t)sl <= v.mv_size) {
                c->state = malloc(sl + 1);
                if (c->state) {
                    memcpy(c->state, vb + 28, sl);
                    c->state[sl] = 0;
                }
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

static void ck_recs_free(ck_rec_t *r, size_t n) {
    for (size_t i = 0; i < n; i++) free(r[i].state);
    free(r);
}

static int ck_delete_all(MDB_txn *txn, MDB_dbi db, const char *uuid) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc) return rc;
    uint8_t key[ESM_UUID_LEN + 4];
    ck_key(key, uuid, 0);
    MDB_val k = {sizeof key, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == ESM_UUID_LEN + 4 && !memcmp(k.mv_data, uuid, ESM_UUID_LEN)) {
        if ((rc = mdb_cursor_del(cur, 0))) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || rc == EINVAL) rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int map_store(esm_t *e, esm_mapping_t *m, const ck_rec_t *cks, size_t n_ck, tr_err *err) {
    char *text = map_to_json(m);
    if (!text) return tr_err_set(err, TR_ENOMEM, "out of memory");
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (!rc) {
        MDB_val k = {ESM_UUID_LEN, m->cfg.uuid}, v = {strlen(text), text};
        rc = mdb_put(txn, e->db_map, &k, &v, 0);
        for (size_t i = 0; !rc && i < n_ck; i++)
            rc = ck_write(txn, e->db_ck, m->cfg.uuid, cks[i].shard, cks[i].next, cks[i].flags,
                          cks[i].win_start, cks[i].state);
        if (rc) mdb_txn_abort(txn);
        else rc = mdb_txn_commit(txn);
    }
    free(text);
    if (rc)
        return tr_err_set(err, TR_EIO, "cannot store event source mapping %s: %s", m->cfg.uuid,
                          mdb_strerror(rc));
    return 0;
}

/* ---- checkpointer ---------------------------------------------------------------------------- */

/* Queue a checkpoint; returns its flush generation (see esm__ck_wait). */
uint64_t esm__ck_put(esm_t *e, const char *uuid, uint32_t shard, uint64_t next, uint32_t flags,
                     int64_t win_start, const char *state) {
    pthread_mutex_lock(&e->ck_mu);
    esm_ck_item_t *it = NULL;
    for (esm_ck_item_t *p = e->ck_head; p; p = p->next)
        if (!p->del && p->shard == shard && !strcmp(p->uuid, uuid)) {
            it = p;
            break;
        }
    if (!it) {
        it = calloc(1, sizeof *it);
        if (!it) { /* dropped: a later checkpoint supersedes it; at worst records repeat */
            pthread_mutex_unlock(&e->ck_mu);
            return 0;
        }
        snprintf(it->uuid, sizeof it->uuid, "%s", uuid);
        it->shard = shard;
        it->next = e->ck_head;
        e->ck_head = it;
    }
    free(it->state);
    it->state = state ? strdup(state) : NULL;
    it->next_counter = next;
    it->flags = flags;
    it->win_start = win_start;
    uint64_t gen = ++e->ck_gen;
    pthread_cond_signal(&e->ck_cv);
    pthread_mutex_unlock(&e->ck_mu);
    return gen;
}

void esm__ck_wait(esm_t *e, uint64_t gen) {
    pthread_mutex_lock(&e->ck_mu);
    while (e->ck_flushed < gen && !e->ck_closing) pthread_cond_wait(&e->ck_done, &e->ck_mu);
    pthread_mutex_unlock(&e->ck_mu);
}

/* Everything queued so far is durable when this returns. */
static void ck_flush(esm_t *e) {
    pthread_mutex_lock(&e->ck_mu);
    uint64_t gen = e->ck_gen;
    pthread_mutex_unlock(&e->ck_mu);
    esm__ck_wait(e, gen);
}

static void ck_write_batch(esm_t *e, esm_ck_item_t *list) {
    if (!list) return;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    for (esm_ck_item_t *it = list; !rc && it; it = it->next) {
        if (it->del) {
            rc = ck_delete_all(txn, e->db_ck, it->uuid);
            if (!rc) {
                MDB_val k = {ESM_UUID_LEN, it->uuid};
                rc = mdb_del(txn, e->db_map, &k, NULL);
                if (rc == MDB_NOTFOUND) rc = 0;
            }
        } else {
            rc = ck_write(txn, e->db_ck, it->uuid, it->shard, it->next_counter, it->flags,
                          it->win_start, it->state);
        }
    }
    if (rc) {
        if (txn) mdb_txn_abort(txn);
        tr_error("esm",
                 "cannot write checkpoints: %s; processing continues, but a restart may "
                 "repeat records",
                 mdb_strerror(rc));
    } else if ((rc = mdb_txn_commit(txn))) {
        tr_error("esm", "cannot commit checkpoints: %s", mdb_strerror(rc));
    }
}

static void *ck_main(void *arg) {
    esm_t *e = arg;
    pthread_mutex_lock(&e->ck_mu);
    for (;;) {
        while (!e->ck_head && !e->ck_closing) pthread_cond_wait(&e->ck_cv, &e->ck_mu);
        if (!e->ck_head && e->ck_closing) break;
        esm_ck_item_t *list = e->ck_head;
        uint64_t gen = e->ck_gen;
        e->ck_head = NULL;
        pthread_mutex_unlock(&e->ck_mu);
        ck_write_batch(e, list);
        while (list) {
            esm_ck_item_t *n = list->next;
            free(list->state);
            free(list);
            list = n;
        }
        pthread_mutex_lock(&e->ck_mu);
        e->ck_flushed = gen;
        pthread_cond_broadcast(&e->ck_done);
    }
    pthread_mutex_unlock(&e->ck_mu);
    return NULL;
}

/* ---- the append hook ------------------------------------------------------------------------- */

static void hook_on_append(void *arg, uint64_t stream_id, uint32_t shard, uint64_t end) {
    (void)end;
    esm_t *e = arg;
    int found = 0;
    pthread_mutex_lock(&e->hook_mu);
    for (esm_task_t *t = e->hook[hook_slot(stream_id, shard)]; t; t = t->hnext) {
        if (t->stream_id != stream_id || t->shard != shard) continue;
        found = 1;
        pthread_mutex_lock(&t->mu);
        t->poked = 1;
        pthread_cond_signal(&t->cv_reader);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&e->hook_mu);
    if (!found) {
        /* A shard nobody reads yet: maybe a child of a reshard, or a stream a mapping waits for.
         * The manager decides (pthread_mutex_trylock: never wait on the commit thread). */
        if (pthread_mutex_trylock(&e->mu) == 0) {
            for (esm_mapping_t *m = e->maps; m; m = m->next)
                if (m->stream_id == stream_id && m->cfg.enabled) {
                    e->mgr_poked = 1;
                    pthread_cond_signal(&e->mgr_cv);
                    break;
                }
            pthread_mutex_unlock(&e->mu);
        }
    }
}

static void hook_add(esm_t *e, esm_task_t *t) {
    pthread_mutex_lock(&e->hook_mu);
    uint32_t s = hook_slot(t->stream_id, t->shard);
    t->hnext = e->hook[s];
    e->hook[s] = t;
    pthread_mutex_unlock(&e->hook_mu);
}

static void hook_remove(esm_t *e, esm_task_t *t) {
    pthread_mutex_lock(&e->hook_mu);
    for (esm_task_t **p = &e->hook[hook_slot(t->stream_id, t->shard)]; *p; p = &(*p)->hnext)
        if (*p == t) {
            *p = t->hnext;
            break;
        }
    pthread_mutex_unlock(&e->hook_mu);
}

void esm__poke_manager(esm_t *e) {
    pthread_mutex_lock(&e->mu);
    e->mgr_poked = 1;
    pthread_cond_signal(&e->mgr_cv);
    pthread_mutex_unlock(&e->mu);
}

/* ---- tasks ----------------------------------------------------------------------------------- */

static void run_unref(esm_t *e, esm_run_t *r) {
    if (!r) return;
    pthread_mutex_lock(&e->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (!last) return;
    esm_filter_free(r->filter);
    esm_config_free(&r->cfg);
    free(r);
}

static esm_task_t *task_start(esm_t *e, esm_mapping_t *m, uint32_t shard, const ck_rec_t *ck) {
    esm_task_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->e = e;
    t->m = m;
    t->run = m->run;
    pthread_mutex_lock(&e->mu);
    m->run->refs++;
    pthread_mutex_unlock(&e->mu);
    t->stream_id = m->stream_id;
    t->shard = shard;
    t->read_pos = ck ? ck->next : 0;
    t->ck_next = t->read_pos;
    t->n_lanes = (int)(m->run->cfg.parallelization ? m->run->cfg.parallelization : 1);
    if (t->n_lanes > ESM_MAX_LANES) t->n_lanes = ESM_MAX_LANES;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv_reader, NULL);
    pthread_cond_init(&t->cv_lanes, NULL);
    for (int i = 0; i < t->n_lanes; i++) {
        t->lanes[i].t = t;
        t->lanes[i].idx = i;
    }
    if (ck && ck->win_start && m->run->cfg.tumbling_window_s) {
        t->lanes[0].win_start = ck->win_start;
        t->lanes[0].state = ck->state ? strdup(ck->state) : NULL;
    }
    hook_add(e, t);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 512 * 1024);
    int ok = pthread_create(&t->reader, &at, esm__reader_main, t) == 0;
    t->reader_running = ok;
    for (int i = 0; ok && i < t->n_lanes; i++) {
        ok = pthread_create(&t->lanes[i].thread, &at, esm__lane_main, &t->lanes[i]) == 0;
        t->lanes[i].running = ok;
    }
    pthread_attr_destroy(&at);
    if (!ok)
        tr_error("esm", "mapping %s: cannot start the threads of shardId-%012u", m->cfg.uuid,
                 shard);
    return t;
}

/* Stop and free a task (waits for an invocation in flight); its checkpoint is queued. */
static void task_stop(esm_t *e, esm_task_t *t) {
    hook_remove(e, t);
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->stop, 1);
    pthread_cond_broadcast(&t->cv_reader);
    pthread_cond_broadcast(&t->cv_lanes);
    pthread_mutex_unlock(&t->mu);
    if (t->reader_running) pthread_join(t->reader, NULL);
    for (int i = 0; i < t->n_lanes; i++)
        if (t->lanes[i].running) pthread_join(t->lanes[i].thread, NULL);
    pthread_mutex_lock(&t->mu);
    esm__checkpoint_locked(t, 1);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->n_lanes; i++) {
        esm__lane_pop(&t->lanes[i], t->lanes[i].n);
        free(t->lanes[i].q);
        free(t->lanes[i].state);
    }
    pthread_cond_destroy(&t->cv_reader);
    pthread_cond_destroy(&t->cv_lanes);
    pthread_mutex_destroy(&t->mu);
    run_unref(e, t->run);
    free(t);
}

static void stop_all_tasks(esm_t *e, esm_mapping_t *m) {
    esm_task_t *t = m->tasks;
    m->tasks = NULL;
    pthread_mutex_lock(&e->mu);
    m->n_tasks = 0;
    pthread_mutex_unlock(&e->mu);
    while (t) {
        esm_task_t *n = t->next;
        task_stop(e, t);
        t = n;
    }
    ck_flush(e);
}

/* ---- manager --------------------------------------------------------------------------------- */

static int is_finished(const esm_mapping_t *m, uint32_t shard) {
    for (size_t i = 0; i < m->n_finished; i++)
        if (m->finished[i] == shard) return 1;
    return 0;
}

static void mark_finished(esm_mapping_t *m, uint32_t shard) {
    if (is_finished(m, shard)) return;
    if (m->n_finished == m->cap_finished) {
        size_t cap = m->cap_finished ? m->cap_finished * 2 : 16;
        uint32_t *p = realloc(m->finished, cap * sizeof *p);
        if (!p) return;
        m->finished = p;
        m->cap_finished = cap;
    }
    m->finished[m->n_finished++] = shard;
}

static void set_state(esm_t *e, esm_mapping_t *m, const char *state) {
    pthread_mutex_lock(&e->mu);
    snprintf(m->cfg.state, sizeof m->cfg.state, "%s", state);
    pthread_mutex_unlock(&e->mu);
}

static esm_run_t *run_build(esm_t *e, const esm_config_t *cfg) {
    esm_run_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    config_copy(&r->cfg, cfg);
    r->refs = 1;
    tr_err err;
    if (esm_filter_compile(cfg->filter_criteria, &r->filter, &err))
        tr_error("esm", "mapping %s: stored FilterCriteria no longer compile: %s", cfg->uuid,
                 err.msg);
    parse_stream_arn(cfg->source_arn, e->region, "EventSourceArn", r->stream_name, &err);
    if (cfg->on_failure[0] &&
        parse_stream_arn(cfg->on_failure, e->region, "Destination", r->dest_stream, &err))
        r->dest_stream[0] = 0;
    return r;
}

/* Bring one mapping's tasks in line with its configuration.  Returns 1 when the mapping was
 * deleted (and freed). */
static int reconcile(esm_t *e, esm_mapping_t *m) {
    pthread_mutex_lock(&e->mu);
    int desire = m->desire, enabled = m->cfg.enabled;
    uint64_t gen = m->cfg_gen;
    esm_config_t snap;
    config_copy(&snap, &m->cfg);
    pthread_mutex_unlock(&e->mu);

    if (desire == ESM_DESIRE_DELETE) {
        stop_all_tasks(e, m);
        pthread_mutex_lock(&e->ck_mu);
        esm_ck_item_t *it = calloc(1, sizeof *it);
        if (it) {
            snprintf(it->uuid, sizeof it->uuid, "%s", snap.uuid);
            it->del = 1;
            /* After every pending checkpoint of it (the list is written head first: append). */
            esm_ck_item_t **p = &e->ck_head;
            while (*p) p = &(*p)->next;
            *p = it;
            e->ck_gen++;
            pthread_cond_signal(&e->ck_cv);
        }
        pthread_mutex_unlock(&e->ck_mu);
        ck_flush(e);
        pthread_mutex_lock(&e->mu);
        for (esm_mapping_t **p = &e->maps; *p; p = &(*p)->next)
            if (*p == m) {
                *p = m->next;
                break;
            }
        pthread_mutex_unlock(&e->mu);
        if (m->run) run_unref(e, m->run);
        free(m->finished);
        esm_config_free(&m->cfg);
        esm_config_free(&snap);
        free(m);
        return 1;
    }
    if (!enabled) {
        if (m->tasks) stop_all_tasks(e, m);
        if (m->run) {
            run_unref(e, m->run);
            m->run = NULL;
        }
        set_state(e, m, "Disabled");
        esm_config_free(&snap);
        return 0;
    }
    if (!m->run || m->run_gen != gen) {
        if (m->tasks) stop_all_tasks(e, m);
        if (m->run) run_unref(e, m->run);
        m->run = run_build(e, &snap);
        m->run_gen = gen;
        m->n_finished = 0;
        if (!m->run) {
            esm_config_free(&snap);
            return 0;
        }
    }
    esm_config_free(&snap);

    slog_stream_info_t info;
    tr_err err;
    tr_err_clear(&err);
    if (slog_stream_describe_id(e->lg, m->stream_id, &info, &err)) {
        if (m->tasks) stop_all_tasks(e, m);
        pthread_mutex_lock(&e->mu);
        snprintf(m->cfg.last_result, sizeof m->cfg.last_result, "PROBLEM: Stream not found: %.90s",
                 m->run->stream_name);
        snprintf(m->cfg.state, sizeof m->cfg.state, "Enabled");
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    ck_rec_t *cks = NULL;
    size_t n_ck = 0;
    ck_load_all(e, m->cfg.uuid, &cks, &n_ck);
    for (size_t i = 0; i < n_ck; i++)
        if (cks[i].flags & ESM_CK_FINISHED) mark_finished(m, cks[i].shard);
    /* Finished tasks leave; their children may start below. */
    for (esm_task_t **p = &m->tasks; *p;) {
        esm_task_t *t = *p;
        pthread_mutex_lock(&t->mu);
        int fin = t->finished;
        pthread_mutex_unlock(&t->mu);
        if (fin) {
            *p = t->next;
            mark_finished(m, t->shard);
            task_stop(e, t);
        } else {
            p = &t->next;
        }
    }
    for (uint32_t i = 0; i < info.n_shards; i++) {
        const slog_shard_info_t *s = &info.shards[i];
        if (is_finished(m, s->index)) continue;
        int running = 0;
        for (esm_task_t *t = m->tasks; t; t = t->next) running |= t->shard == s->index;
        if (running) continue;
        /* Parents first. */
        int ready = 1;
        uint32_t parents[2] = {s->parent, s->adjacent_parent};
        for (int k = 0; k < 2; k++) {
            if (parents[k] == SLOG_NO_SHARD || is_finished(m, parents[k])) continue;
            for (uint32_t j = 0; j < info.n_shards; j++)
                if (info.shards[j].index == parents[k]) ready = 0;
        }
        if (!ready) continue;
        const ck_rec_t *ck = NULL;
        for (size_t j = 0; j < n_ck; j++)
            if (cks[j].shard == s->index) ck = &cks[j];
        ck_rec_t born = {s->index, s->seq_start, 0, 0, NULL}; /* a child born after creation */
        esm_task_t *t = task_start(e, m, s->index, ck ? ck : &born);
        if (t) {
            t->next = m->tasks;
            m->tasks = t;
        }
    }
    ck_recs_free(cks, n_ck);
    slog_stream_info_free(&info);
    uint32_t nt = 0;
    for (esm_task_t *t = m->tasks; t; t = t->next) nt++;
    pthread_mutex_lock(&e->mu);
    m->n_tasks = nt;
    snprintf(m->cfg.state, sizeof m->cfg.state, "Enabled");
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static void *manager_main(void *arg) {
    esm_t *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->closing) {
        size_t n = 0;
        for (esm_mapping_t *m = e->maps; m; m = m->next) n++;
        esm_mapping_t **list = n ? malloc(n * sizeof *list) : NULL;
        size_t k = 0;
        for (esm_mapping_t *m = e->maps; m && list; m = m->next) list[k++] = m;
        e->mgr_poked = 0;
        pthread_mutex_unlock(&e->mu);
        for (size_t i = 0; i < k; i++) reconcile(e, list[i]);
        free(list);
        pthread_mutex_lock(&e->mu);
        if (e->mgr_poked || e->closing) continue;
        struct timespec ts;
        esm__abstime_in(&ts, 500);
        pthread_cond_timedwait(&e->mgr_cv, &e->mu, &ts);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- lifetime -------------------------------------------------------------------------------- */

int esm_open(const char *data_dir, slog_t *lg, fn_t *fn, const esm_opts_t *opts, esm_t **out,
             tr_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/esm", data_dir);
    if (mkdir(path, 0700) && errno != EEXIST)
        return tr_err_set(err, TR_EIO, "cannot create %s: %s", path, strerror(errno));
    esm_t *e = calloc(1, sizeof *e);
    if (!e) return tr_err_set(err, TR_ENOMEM, "out of memory");
    e->lg = lg;
    e->fn = fn;
    snprintf(e->region, sizeof e->region, "%s", opts && opts->region ? opts->region : "us-east-1");
    e->age_unit_ms = opts && opts->age_unit_ms > 0 ? opts->age_unit_ms : 1000;
    e->window_grace_ms = opts && opts->window_grace_ms > 0 ? opts->window_grace_ms : 200;
    e->backoff_ms = opts && opts->retry_backoff_ms > 0 ? opts->retry_backoff_ms : 20;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->hook_mu, NULL);
    pthread_mutex_init(&e->ck_mu, NULL);
    pthread_cond_init(&e->mgr_cv, NULL);
    pthread_cond_init(&e->ck_cv, NULL);
    pthread_cond_init(&e->ck_done, NULL);
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&e->env);
    if (!rc) rc = mdb_env_set_maxdbs(e->env, 4);
    if (!rc) rc = mdb_env_set_mapsize(e->env, (size_t)1 << 30);
    if (!rc)
        rc = mdb_env_open(e->env, path, MDB_NOTLS | (opts && opts->no_sync ? MDB_NOSYNC : 0), 0600);
    if (!rc) rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, "map", MDB_CREATE, &e->db_map);
    if (!rc) rc = mdb_dbi_open(txn, "ckpt", MDB_CREATE, &e->db_ck);
    if (!rc) {
        MDB_cursor *cur;
        rc = mdb_cursor_open(txn, e->db_map, &cur);
        MDB_val k, v;
        int r = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (!rc && r == 0) {
            esm_mapping_t *m = calloc(1, sizeof *m);
            if (m && map_from_json(v.mv_data, v.mv_size, m) == 0) {
                snprintf(m->cfg.state, sizeof m->cfg.state, "%s",
                         m->desire == ESM_DESIRE_DELETE ? "Deleting"
                         : m->cfg.enabled               ? "Enabling"
                                                        : "Disabled");
                snprintf(m->cfg.state_reason, sizeof m->cfg.state_reason, "User action");
                snprintf(m->cfg.last_result, sizeof m->cfg.last_result, "No records processed");
                m->next = e->maps;
                e->maps = m;
            } else {
                tr_error("esm", "%s: a stored event source mapping is unreadable; skipped", path);
                if (m) esm_config_free(&m->cfg);
                free(m);
            }
            r = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (!rc) mdb_cursor_close(cur);
    }
    if (!rc) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        if (e->env) mdb_env_close(e->env);
        free(e);
        return tr_err_set(err, TR_EIO, "cannot open the event source mappings in %s: %s", path,
                          mdb_strerror(rc));
    }
    if (pthread_create(&e->ckthread, NULL, ck_main, e)) {
        mdb_env_close(e->env);
        free(e);
        return tr_err_set(err, TR_EINTERNAL, "cannot start the checkpoint thread");
    }
    *out = e;
    return 0;
}

int esm_start(esm_t *e, tr_err *err) {
    slog_set_append_hook(e->lg, hook_on_append, e);
    if (pthread_create(&e->manager, NULL, manager_main, e))
        return tr_err_set(err, TR_EINTERNAL, "cannot start the event source mapping manager");
    e->started = 1;
    return 0;
}

void esm_close(esm_t *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->closing = 1;
    pthread_cond_broadcast(&e->mgr_cv);
    pthread_mutex_unlock(&e->mu);
    if (e->started) pthread_join(e->manager, NULL);
    for (esm_mapping_t *m = e->maps; m; m = m->next)
        if (m->tasks) stop_all_tasks(e, m);
    slog_set_append_hook(e->lg, NULL, NULL);
    ck_flush(e);
    pthread_mutex_lock(&e->ck_mu);
    e->ck_closing = 1;
    pthread_cond_broadcast(&e->ck_cv);
    pthread_mutex_unlock(&e->ck_mu);
    pthread_join(e->ckthread, NULL);
    for (esm_mapping_t *m = e->maps, *n; m; m = n) {
        n = m->next;
        if (m->run) run_unref(e, m->run);
        free(m->finished);
        esm_config_free(&m->cfg);
        free(m);
    }
    mdb_env_close(e->env);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->hook_mu);
    pthread_mutex_destroy(&e->ck_mu);
    pthread_cond_destroy(&e->mgr_cv);
    pthread_cond_destroy(&e->ck_cv);
    pthread_cond_destroy(&e->ck_done);
    free(e);
}

/* ---- control plane --------------------------------------------------------------------------- */

static int validate(esm_t *e, const esm_config_t *c, tr_err *err) {
    if (c->batch_size < 1 || c->batch_size > 10000)
        return tr_err_set(err, TR_EINVAL, "BatchSize %u is out of range [1, 10000] for Kinesis",
                          c->batch_size);
    if (c->max_batching_window_s > 300)
        return tr_err_set(err, TR_EINVAL,
                          "MaximumBatchingWindowInSeconds %u is out of range "
                          "[0, 300]",
                          c->max_batching_window_s);
    if (c->parallelization < 1 || c->parallelization > 10)
        return tr_err_set(err, TR_EINVAL, "ParallelizationFactor %u is out of range [1, 10]",
                          c->parallelization);
    if (c->max_retry < -1 || c->max_retry > 10000)
        return tr_err_set(err, TR_EINVAL, "MaximumRetryAttempts %d is out of range [-1, 10000]",
                          c->max_retry);
    if (c->max_record_age_s != -1 && (c->max_record_age_s < 60 || c->max_record_age_s > 604800))
        return tr_err_set(err, TR_EINVAL,
                          "MaximumRecordAgeInSeconds %d must be -1 (infinite) or "
                          "in [60, 604800]",
                          c->max_record_age_s);
    if (c->tumbling_window_s > 900)
        return tr_err_set(err, TR_EINVAL, "TumblingWindowInSeconds %u is out of range [0, 900]",
                          c->tumbling_window_s);
    if (c->tumbling_window_s && c->parallelization > 1)
        return tr_err_set(err, TR_EINVAL,
                          "TumblingWindowInSeconds needs ParallelizationFactor 1 "
                          "on this server (window state is kept per shard)");
    char name[SLOG_MAX_STREAM_NAME + 1];
    if (c->on_failure[0] && parse_stream_arn(c->on_failure, e->region,
                                             "DestinationConfig.OnFailure.Destination", name, err))
        return TR_EINVAL;
    esm_filter_t *f = NULL;
    int rc = esm_filter_compile(c->filter_criteria, &f, err);
    esm_filter_free(f);
    return rc;
}

/* FunctionName (name, partial or full ARN) -> canonical name and ARN.  TR_ENOTFOUND. */
static int resolve_function(esm_t *e, const char *given, char *name, char *arn, tr_err *err) {
    char qual[130];
    if (fn_name_parse(given, name, qual, err)) return TR_EINVAL;
    if (qual[0] && strcmp(qual, "$LATEST"))
        return tr_err_set(err, TR_ENOTFOUND, "Function not found: %s (only $LATEST exists here)",
                          given);
    fn_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = fn_get(e->fn, name, &cfg, err);
    if (rc) {
        fn_config_free(&cfg);
        return rc == TR_ENOTFOUND
                   ? tr_err_set(err, TR_ENOTFOUND, "Function does not exist: %s", given)
                   : rc;
    }
    snprintf(arn, 256, "%s", cfg.arn);
    fn_config_free(&cfg);
    return 0;
}

static esm_mapping_t *find_locked(esm_t *e, const char *uuid) {
    for (esm_mapping_t *m = e->maps; m; m = m->next)
        if (!strcmp(m->cfg.uuid, uuid)) return m;
    return NULL;
}

int esm_create(esm_t *e, const esm_config_t *in, esm_config_t *out, tr_err *err) {
    if (!in->function_name[0]) return tr_err_set(err, TR_EINVAL, "FunctionName is required");
    if (!in->source_arn[0]) return tr_err_set(err, TR_EINVAL, "EventSourceArn is required");
    char stream[SLOG_MAX_STREAM_NAME + 1];
    int rc = parse_stream_arn(in->source_arn, e->region, "EventSourceArn", stream, err);
    if (rc) return rc;
    if (in->starting_position < ESM_TRIM_HORIZON || in->starting_position > ESM_AT_TIMESTAMP)
        return tr_err_set(err, TR_EINVAL,
                          "StartingPosition is required for a Kinesis event "
                          "source: TRIM_HORIZON, LATEST or AT_TIMESTAMP");
    if (in->starting_position == ESM_AT_TIMESTAMP && in->starting_ts_ms <= 0)
        return tr_err_set(err, TR_EINVAL,
                          "StartingPositionTimestamp is required with "
                          "StartingPosition AT_TIMESTAMP");
    if ((rc = validate(e, in, err))) return rc;
    esm_mapping_t *m = calloc(1, sizeof *m);
    if (!m) return tr_err_set(err, TR_ENOMEM, "out of memory");
    config_copy(&m->cfg, in);
    rc = resolve_function(e, in->function_name, m->cfg.function_name, m->cfg.function_arn, err);
    if (rc) goto fail;
    slog_stream_info_t info;
    if (slog_stream_describe(e->lg, stream, &info, err)) {
        rc = tr_err_set(err, TR_EINVAL, "Stream not found: %s; create it first (CreateStream)",
                        in->source_arn);
        goto fail;
    }
    m->stream_id = info.id;
    /* Where each shard starts, fixed now (LATEST means "at creation", also after a restart). */
    ck_rec_t *cks = calloc(info.n_shards ? info.n_shards : 1, sizeof *cks);
    if (!cks) {
        slog_stream_info_free(&info);
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < info.n_shards; i++) {
        const slog_shard_info_t *s = &info.shards[i];
        ck_rec_t *c = &cks[i];
        c->shard = s->index;
        uint64_t begin = s->begin, end = s->end, at = s->begin;
        if (in->starting_position == ESM_TRIM_HORIZON) {
            c->next = begin;
        } else if (in->starting_position == ESM_LATEST) {
            c->next = end;
            if (s->closed) c->flags = ESM_CK_FINISHED;
        } else {
            slog_position(e->lg, info.id, s->index, in->starting_ts_ms, &begin, &end, &at, NULL);
            c->next = at;
            if (s->closed && at >= s->seq_end) c->flags = ESM_CK_FINISHED;
        }
    }
    tr_uuid_v4(m->cfg.uuid);
    m->cfg.last_modified_ms = tr_now_ms();
    snprintf(m->cfg.state, sizeof m->cfg.state, "Creating");
    snprintf(m->cfg.state_reason, sizeof m->cfg.state_reason, "User action");
    snprintf(m->cfg.last_result, sizeof m->cfg.last_result, "No records processed");

    pthread_mutex_lock(&e->mu);
    for (esm_mapping_t *x = e->maps; x; x = x->next)
        if (x->desire != ESM_DESIRE_DELETE && !strcmp(x->cfg.function_arn, m->cfg.function_arn) &&
            !strcmp(x->cfg.source_arn, m->cfg.source_arn)) {
            rc = tr_err_set(err, TR_EEXISTS,
                            "The event source arn (\" %s \") and function "
                            "(\" %s \") provided mapping already exists. Please update or delete "
                            "the existing mapping with UUID %s",
                            m->cfg.source_arn, m->cfg.function_name, x->cfg.uuid);
            break;
        }
    if (!rc) rc = map_store(e, m, cks, info.n_shards, err);
    if (!rc) {
        m->next = e->maps;
        e->maps = m;
        config_copy(out, &m->cfg);
        e->mgr_poked = 1;
        pthread_cond_signal(&e->mgr_cv);
    }
    pthread_mutex_unlock(&e->mu);
    free(cks);
    slog_stream_info_free(&info);
    if (rc) goto fail;
    tr_info("esm", "mapping %s: %s -> %s (%s, batch %u)", m->cfg.uuid, in->source_arn,
            m->cfg.function_arn, pos_name(in->starting_position), m->cfg.batch_size);
    return 0;
fail:
    esm_config_free(&m->cfg);
    free(m);
    return rc;
}

int esm_get(esm_t *e, const char *uuid, esm_config_t *out, tr_err *err) {
    pthread_mutex_lock(&e->mu);
    esm_mapping_t *m = find_locked(e, uuid);
    if (m) config_copy(out, &m->cfg);
    pthread_mutex_unlock(&e->mu);
    if (!m)
        return tr_err_set(err, TR_ENOTFOUND,
                          "The resource you requested does not exist. "
                          "(Event source mapping %s)",
                          uuid);
    return 0;
}

static int cmp_cfg(const void *a, const void *b) {
    return strcmp(((const esm_config_t *)a)->uuid, ((const esm_config_t *)b)->uuid);
}

int esm_list(esm_t *e, const char *function_name, const char *source_arn, const char *marker,
             size_t max, esm_config_t **out, size_t *n, char **next, tr_err *err) {
    *out = NULL;
    *n = 0;
    *next = NULL;
    char fname[FN_MAX_NAME + 1] = "", qual[130];
    if (function_name && *function_name && fn_name_parse(function_name, fname, qual, err))
        return TR_EINVAL;
    pthread_mutex_lock(&e->mu);
    size_t total = 0;
    for (esm_mapping_t *m = e->maps; m; m = m->next) total++;
    esm_config_t *all = calloc(total ? total : 1, sizeof *all);
    size_t k = 0;
    for (esm_mapping_t *m = e->maps; m && all; m = m->next) {
        if (fname[0] && strcmp(m->cfg.function_name, fname)) continue;
        if (source_arn && *source_arn && strcmp(m->cfg.source_arn, source_arn)) continue;
        if (marker && *marker && strcmp(m->cfg.uuid, marker) <= 0) continue;
        config_copy(&all[k++], &m->cfg);
    }
    pthread_mutex_unlock(&e->mu);
    if (!all) return tr_err_set(err, TR_ENOMEM, "out of memory");
    qsort(all, k, sizeof *all, cmp_cfg);
    if (max && k > max) {
        *next = strdup(all[max - 1].uuid);
        for (size_t i = max; i < k; i++) esm_config_free(&all[i]);
        k = max;
    }
    *out = all;
    *n = k;
    return 0;
}

int esm_update(esm_t *e, const char *uuid, const esm_update_t *u, esm_config_t *out, tr_err *err) {
    char fname[FN_MAX_NAME + 1] = "", farn[256] = "";
    if (u->has_function) {
        int rc = resolve_function(e, u->function_name, fname, farn, err);
        if (rc) return rc;
    }
    pthread_mutex_lock(&e->mu);
    esm_mapping_t *m = find_locked(e, uuid);
    int rc = 0;
    if (!m) {
        rc = tr_err_set(err, TR_ENOTFOUND,
                        "The resource you requested does not exist. "
                        "(Event source mapping %s)",
                        uuid);
        goto out;
    }
    if (m->desire == ESM_DESIRE_DELETE) {
        rc = tr_err_set(err, TR_EINUSE,
                        "Cannot update the event source mapping %s: it is being "
                        "deleted",
                        uuid);
        goto out;
    }
    esm_config_t c;
    config_copy(&c, &m->cfg);
    if (u->has_function) {
        snprintf(c.function_name, sizeof c.function_name, "%s", fname);
        snprintf(c.function_arn, sizeof c.function_arn, "%s", farn);
    }
    if (u->has_batch_size) c.batch_size = u->batch_size;
    if (u->has_window) c.max_batching_window_s = u->max_batching_window_s;
    if (u->has_enabled) c.enabled = u->enabled;
    if (u->has_parallelization) c.parallelization = u->parallelization;
    if (u->has_retry) c.max_retry = u->max_retry;
    if (u->has_age) c.max_record_age_s = u->max_record_age_s;
    if (u->has_bisect) c.bisect = u->bisect;
    if (u->has_response_types) c.report_item_failures = u->report_item_failures;
    if (u->has_destination)
        snprintf(c.on_failure, sizeof c.on_failure, "%s", u->on_failure ? u->on_failure : "");
    if (u->has_tumbling) c.tumbling_window_s = u->tumbling_window_s;
    if (u->has_filters) {
        free(c.filter_criteria);
        c.filter_criteria = u->filter_criteria && *u->filter_criteria ? strdup(u->filter_criteria)
                                                                      : NULL;
    }
    rc = validate(e, &c, err);
    if (!rc) {
        int toggled = c.enabled != m->cfg.enabled;
        c.last_modified_ms = tr_now_ms();
        snprintf(c.state, sizeof c.state, "%s",
                 toggled ? (c.enabled ? "Enabling" : "Disabling") : "Updating");
        esm_config_t old = m->cfg;
        m->cfg = c;
        rc = map_store(e, m, NULL, 0, err);
        if (rc) {
            m->cfg = old;
            esm_config_free(&c);
        } else {
            esm_config_free(&old);
            m->cfg_gen++;
            config_copy(out, &m->cfg);
            e->mgr_poked = 1;
            pthread_cond_signal(&e->mgr_cv);
        }
    } else {
        esm_config_free(&c);
    }
out:
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int esm_delete(esm_t *e, const char *uuid, esm_config_t *out, tr_err *err) {
    pthread_mutex_lock(&e->mu);
    esm_mapping_t *m = find_locked(e, uuid);
    int rc = 0;
    if (!m) {
        rc = tr_err_set(err, TR_ENOTFOUND,
                        "The resource you requested does not exist. "
                        "(Event source mapping %s)",
                        uuid);
    } else if (m->desire == ESM_DESIRE_DELETE) {
        rc = tr_err_set(err, TR_EINUSE, "The event source mapping %s is already being deleted",
                        uuid);
    } else {
        m->desire = ESM_DESIRE_DELETE;
        rc = map_store(e, m, NULL, 0, err); /* survives a crash: deletion resumes at start */
        if (rc) {
            m->desire = ESM_DESIRE_RUN;
        } else {
            snprintf(m->cfg.state, sizeof m->cfg.state, "Deleting");
            config_copy(out, &m->cfg);
            e->mgr_poked = 1;
            pthread_cond_signal(&e->mgr_cv);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- metrics --------------------------------------------------------------------------------- */

int esm_stats_list(esm_t *e, esm_stats_t **out, size_t *n) {
    pthread_mutex_lock(&e->mu);
    size_t k = 0;
    for (esm_mapping_t *m = e->maps; m; m = m->next) k++;
    esm_stats_t *s = calloc(k ? k : 1, sizeof *s);
    size_t i = 0;
    for (esm_mapping_t *m = e->maps; m && s; m = m->next, i++) {
        snprintf(s[i].uuid, sizeof s[i].uuid, "%s", m->cfg.uuid);
        snprintf(s[i].function_name, sizeof s[i].function_name, "%s", m->cfg.function_name);
        s[i].iterator_age_ms = m->iterator_age_ms;
        s[i].invocations = m->invocations;
        s[i].errors = m->errors;
        s[i].records_in = m->records_in;
        s[i].records_filtered = m->records_filtered;
        s[i].records_discarded = m->records_discarded;
        s[i].shards_active = m->n_tasks;
    }
    pthread_mutex_unlock(&e->mu);
    if (!s) return TR_ENOMEM;
    *out = s;
    *n = k;
    return 0;
}

void esm_metrics_prometheus(esm_t *e, tr_buf *out) {
    esm_stats_t *s;
    size_t n;
    if (!e || esm_stats_list(e, &s, &n)) return;
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"tributary_esm_iterator_age_milliseconds", "gauge",
         "Age of the last record of the last batch invoked (AWS IteratorAge)"},
        {"tributary_esm_invocations_total", "counter", "Invocations made by the mapping"},
        {"tributary_esm_errors_total", "counter", "Invocations that returned a function error"},
        {"tributary_esm_records_total", "counter", "Records queued for the function"},
        {"tributary_esm_records_filtered_total", "counter", "Records dropped by FilterCriteria"},
        {"tributary_esm_records_discarded_total", "counter",
         "Records skipped by MaximumRecordAge/MaximumRetryAttempts (sent to OnFailure)"},
        {"tributary_esm_shards_active", "gauge", "Shards being read"},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        tr_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
                      fam[f].type);
        for (size_t i = 0; i < n; i++) {
            double v = f == 0   ? (double)s[i].iterator_age_ms
                       : f == 1 ? (double)s[i].invocations
                       : f == 2 ? (double)s[i].errors
                       : f == 3 ? (double)s[i].records_in
                       : f == 4 ? (double)s[i].records_filtered
                       : f == 5 ? (double)s[i].records_discarded
                                : (double)s[i].shards_active;
            tr_buf_printf(out, "%s{uuid=\"%s\",function_name=\"%s\"} %.0f\n", fam[f].name,
                          s[i].uuid, s[i].function_name, v);
        }
    }
    free(s);
    tr_buf_printf(out,
                  "# HELP tributary_esm_queued_bytes Records read from streams and not yet "
                  "done by a function, all mappings (bounded: readers wait above %zu)\n"
                  "# TYPE tributary_esm_queued_bytes gauge\ntributary_esm_queued_bytes %zu\n",
                  ESM_QUEUE_MAX, atomic_load(&e->queued_bytes));
}
