/* SPDX-License-Identifier: Apache-2.0
 *
 * slog_ctl.c -- the stream engine's control plane: create, delete, describe, list, retention,
 * tags, and resharding (split, merge, UpdateShardCount).
 *
 * Split out of slog.c, which keeps the engine's state, its metadata encoding, the shard handles,
 * the commit and retention threads, the data plane and metrics.  Locks and the drain protocol
 * that reshard/delete follow are described at the top of slog.c; the state and the helpers both
 * files share are declared in slog_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/tlog.h"
#include "log/slog_int.h"

/* ---- control plane ------------------------------------------------------------------------- */

static int name_check(const char *name, tr_err *err) {
    size_t n = name ? strlen(name) : 0;
    int ok = n >= 1 && n <= SLOG_MAX_STREAM_NAME;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == '-';
    }
    if (ok) return 0;
    return tr_err_set(err, TR_EINVAL,
                      "stream name \"%.*s\" is invalid: use 1-%d characters from a-z, A-Z, 0-9, "
                      "'_', '.' and '-'",
                      (int)(n > 140 ? 140 : n), name ? name : "", SLOG_MAX_STREAM_NAME);
}

static int shard_limit_error(slog_t *lg, uint32_t adding, tr_err *err) {
    return tr_err_set(err, TR_ELIMIT,
                      "This request would exceed the shard limit for the account. Current limit "
                      "of shards is %" PRIu32 ", open shards: %" PRIu32 ", shards this request "
                      "would add: %" PRIu32 ". Delete or merge shards, or raise the shard limit",
                      lg->opts.shard_limit, lg->open_total, adding);
}

int slog_stream_create(slog_t *lg, const char *name, uint32_t shard_count, int mode,
                       const slog_tag_t *tags, size_t n_tags, tr_err *err) {
    if (!lg) return tr_err_set(err, TR_EINVAL, "no engine");
    int rc = name_check(name, err);
    if (rc) return rc;
    if (mode != SLOG_MODE_PROVISIONED && mode != SLOG_MODE_ON_DEMAND)
        return tr_err_set(err, TR_EINVAL, "stream mode %d is neither PROVISIONED nor ON_DEMAND",
                          mode);
    uint32_t count = mode == SLOG_MODE_ON_DEMAND ? lg->opts.on_demand_shards : shard_count;
    if (count < 1)
        return tr_err_set(err, TR_EINVAL,
                          "ShardCount must be at least 1 for a PROVISIONED "
                          "stream");
    if (count > SLOG_MAX_SHARDS_PER_STREAM)
        return tr_err_set(err, TR_ELIMIT,
                          "ShardCount %" PRIu32 " is above %d, the most a "
                          "stream can have",
                          count, SLOG_MAX_SHARDS_PER_STREAM);
    if (n_tags && !tags)
        return tr_err_set(err, TR_EINVAL, "n_tags is %zu but tags is NULL", n_tags);
    if ((rc = slog__tags_check(tags, n_tags, err))) return rc;
    size_t nt = 0;
    slog_tag_t *tv = slog__tags_merge(NULL, 0, tags, n_tags, NULL, 0, &nt);
    if (nt > SLOG_MAX_TAGS) {
        slog__tags_free(tv, nt);
        return tr_err_set(err, TR_ELIMIT, "%zu tags given; a stream can have at most %d", nt,
                          SLOG_MAX_TAGS);
    }

    sl_stream_t *st = NULL;
    slog_shard_info_t *infos = NULL;
    slog_hash_t *starts = NULL, *ends = NULL;
    pthread_mutex_lock(&lg->ctl_mu);
    if (slog__stream_by_name(lg, name)) {
        rc = tr_err_set(err, TR_EEXISTS,
                        "stream \"%s\" already exists; delete it first or pick "
                        "another StreamName",
                        name);
        goto leave;
    }
    if ((uint64_t)lg->open_total + count > lg->opts.shard_limit) {
        rc = shard_limit_error(lg, count, err);
        goto leave;
    }
    if (mode == SLOG_MODE_ON_DEMAND && lg->on_demand_streams >= lg->opts.on_demand_limit) {
        rc = tr_err_set(err, TR_ELIMIT,
                        "This request would exceed the limit of on-demand streams for the "
                        "account. Current limit of on-demand streams is %" PRIu32 "; delete an "
                        "on-demand stream or create a PROVISIONED one",
                        lg->opts.on_demand_limit);
        goto leave;
    }

    st = tr_xcalloc(1, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    st->id = lg->next_id++;
    st->mode = mode;
    st->created_ms = tr_now_ms();
    st->retention_hours = SLOG_DEF_RETENTION_H;
    st->tags = tv;
    st->n_tags = nt;
    tv = NULL;
    st->shards = tr_xcalloc(count, sizeof *st->shards);
    infos = tr_xcalloc(count, sizeof *infos);
    starts = tr_xcalloc(count, sizeof *starts);
    ends = tr_xcalloc(count, sizeof *ends);
    slog__split_even(count, starts, ends);
    char *sdir = slog__xasprintf("%s/streams/%" PRIu64, lg->dir, st->id);
    slog__rm_rf(sdir); /* nothing may be there: the id is new */
    free(sdir);
    for (uint32_t i = 0; i < count; i++) {
        infos[i] = (slog_shard_info_t){.index = i,
                                       .parent = SLOG_NO_SHARD,
                                       .adjacent_parent = SLOG_NO_SHARD,
                                       .hash_start = starts[i],
                                       .hash_end = ends[i],
                                       .created_ms = st->created_ms};
        if ((rc = slog__sh_open(lg, st->id, &infos[i], &st->shards[i], 0, NULL, err))) goto leave;
        st->n_shards = i + 1;
    }
    sl_image_t img;
    slog__image_of(st, infos, &img);
    if ((rc = slog__meta_write(lg, name, &img, lg->next_id, err))) goto leave;

    st->open = slog__routing_build(st, &st->n_open);
    pthread_rwlock_wrlock(&lg->put_lock);
    pthread_rwlock_wrlock(&lg->lock);
    slog__stream_insert(lg, st);
    lg->open_total += count;
    if (mode == SLOG_MODE_ON_DEMAND) lg->on_demand_streams++;
    pthread_rwlock_unlock(&lg->lock);
    pthread_rwlock_unlock(&lg->put_lock);
    st = NULL;
leave:
    pthread_mutex_unlock(&lg->ctl_mu);
    slog__stream_free(st, 1); /* failure: closes and removes what was created */
    slog__tags_free(tv, tv ? nt : 0);
    free(infos);
    free(starts);
    free(ends);
    return rc;
}

int slog_stream_delete(slog_t *lg, const char *name, tr_err *err) {
    if (!lg || !name) return tr_err_set(err, TR_EINVAL, "stream name needed");
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        pthread_mutex_unlock(&lg->ctl_mu);
        return slog__stream_missing(name, err);
    }
    /* No new put can reach the stream; the ones queued complete first. */
    pthread_rwlock_wrlock(&lg->put_lock);
    slog__drain(lg);
    int rc = slog__meta_write(lg, name, NULL, 0, err);
    if (!rc) {
        pthread_rwlock_wrlock(&lg->lock);
        size_t i = slog__stream_lower_bound(lg, name);
        memmove(lg->streams + i, lg->streams + i + 1,
                (lg->n_streams - i - 1) * sizeof *lg->streams);
        lg->n_streams--;
        lg->open_total -= (uint32_t)st->n_open;
        if (st->mode == SLOG_MODE_ON_DEMAND) lg->on_demand_streams--;
        pthread_rwlock_unlock(&lg->lock);
    }
    pthread_rwlock_unlock(&lg->put_lock);
    pthread_mutex_unlock(&lg->ctl_mu);
    /* Readers may still hold shards: the last reference removes each directory. */
    if (!rc) {
        slog__hwm_forget(lg, st->id);
        slog__stream_free(st, 1);
    }
    return rc;
}

static void info_fill(const sl_stream_t *st, slog_stream_info_t *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", st->name);
    out->id = st->id;
    out->mode = st->mode;
    out->created_ms = st->created_ms;
    out->retention_hours = st->retention_hours;
    out->n_shards = (uint32_t)st->n_shards;
    out->open_shards = (uint32_t)st->n_open;
    out->shards = tr_xcalloc(st->n_shards, sizeof *out->shards);
    for (size_t i = 0; i < st->n_shards; i++) {
        out->shards[i] = st->shards[i]->info;
        out->shards[i].begin = slog_shard_begin(st->shards[i]->log);
        out->shards[i].end = slog_shard_end(st->shards[i]->log);
    }
    out->n_tags = st->n_tags;
    out->tags = st->n_tags ? tr_xcalloc(st->n_tags, sizeof *out->tags) : NULL;
    for (size_t i = 0; i < st->n_tags; i++) {
        out->tags[i].key = tr_xstrdup(st->tags[i].key);
        out->tags[i].value = tr_xstrdup(st->tags[i].value);
    }
}

int slog_stream_describe(slog_t *lg, const char *name, slog_stream_info_t *out, tr_err *err) {
    if (!lg || !name || !out) return tr_err_set(err, TR_EINVAL, "stream name and out needed");
    pthread_rwlock_rdlock(&lg->lock);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (st) info_fill(st, out);
    pthread_rwlock_unlock(&lg->lock);
    return st ? 0 : slog__stream_missing(name, err);
}

int slog_stream_describe_id(slog_t *lg, uint64_t id, slog_stream_info_t *out, tr_err *err) {
    if (!lg || !out) return tr_err_set(err, TR_EINVAL, "out needed");
    pthread_rwlock_rdlock(&lg->lock);
    sl_stream_t *st = slog__stream_by_id(lg, id);
    if (st) info_fill(st, out);
    pthread_rwlock_unlock(&lg->lock);
    if (st) return 0;
    return tr_err_set(err, TR_ENOTFOUND,
                      "stream with id %" PRIu64 " not found: it was deleted; "
                      "describe the stream by name again",
                      id);
}

void slog_stream_info_free(slog_stream_info_t *info) {
    if (!info) return;
    free(info->shards);
    slog__tags_free(info->tags, info->n_tags);
    info->shards = NULL;
    info->tags = NULL;
    info->n_shards = info->open_shards = 0;
    info->n_tags = 0;
}

int slog_stream_list(slog_t *lg, const char *after, size_t max, char ***names, size_t *n, int *more,
                     tr_err *err) {
    if (!lg || !names || !n) return tr_err_set(err, TR_EINVAL, "names and n needed");
    pthread_rwlock_rdlock(&lg->lock);
    size_t i = 0;
    if (after) {
        i = slog__stream_lower_bound(lg, after);
        if (i < lg->n_streams && !strcmp(lg->streams[i]->name, after)) i++;
    }
    size_t k = lg->n_streams - i < max ? lg->n_streams - i : max;
    char **v = tr_xcalloc(k ? k : 1, sizeof *v);
    for (size_t j = 0; j < k; j++) v[j] = tr_xstrdup(lg->streams[i + j]->name);
    if (more) *more = i + k < lg->n_streams;
    pthread_rwlock_unlock(&lg->lock);
    *names = v;
    *n = k;
    return 0;
}

int slog_stream_set_retention(slog_t *lg, const char *name, uint32_t hours, int increase,
                              tr_err *err) {
    if (!lg || !name) return tr_err_set(err, TR_EINVAL, "stream name needed");
    if (hours < SLOG_MIN_RETENTION_H)
        return tr_err_set(err, TR_EINVAL,
                          "Minimum allowed retention period is %d hours. "
                          "Requested retention period (%" PRIu32 " hours) is "
                          "too short.",
                          SLOG_MIN_RETENTION_H, hours);
    if (hours > SLOG_MAX_RETENTION_H)
        return tr_err_set(err, TR_EINVAL,
                          "Maximum allowed retention period is %d hours. "
                          "Requested retention period (%" PRIu32 " hours) is "
                          "too long.",
                          SLOG_MAX_RETENTION_H, hours);
    int rc = 0;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
    } else if (increase && hours < st->retention_hours) {
        rc = tr_err_set(err, TR_EINVAL,
                        "Requested retention period (%" PRIu32 " hours) for "
                        "stream %s can not be shorter than existing retention "
                        "period (%" PRIu32 " hours). Use "
                        "DecreaseStreamRetentionPeriod API.",
                        hours, name, st->retention_hours);
    } else if (!increase && hours > st->retention_hours) {
        rc = tr_err_set(err, TR_EINVAL,
                        "Requested retention period (%" PRIu32 " hours) for "
                        "stream %s can not be longer than existing retention "
                        "period (%" PRIu32 " hours). Use "
                        "IncreaseStreamRetentionPeriod API.",
                        hours, name, st->retention_hours);
    } else if (hours != st->retention_hours) {
        slog_shard_info_t *infos = tr_xcalloc(st->n_shards, sizeof *infos);
        sl_image_t img;
        slog__image_of(st, infos, &img);
        img.retention_hours = hours;
        rc = slog__meta_write(lg, name, &img, 0, err);
        free(infos);
        if (!rc) {
            pthread_rwlock_wrlock(&lg->lock);
            st->retention_hours = hours;
            pthread_rwlock_unlock(&lg->lock);
        }
    }
    pthread_mutex_unlock(&lg->ctl_mu);
    return rc;
}

/* Replace st's tags by `tv` durably (takes tv either way). */
static int tags_commit(slog_t *lg, sl_stream_t *st, slog_tag_t *tv, size_t nt, tr_err *err) {
    slog_shard_info_t *infos = tr_xcalloc(st->n_shards, sizeof *infos);
    sl_image_t img;
    slog__image_of(st, infos, &img);
    img.tags = tv;
    img.n_tags = nt;
    int rc = slog__meta_write(lg, st->name, &img, 0, err);
    free(infos);
    if (rc) {
        slog__tags_free(tv, nt);
        return rc;
    }
    pthread_rwlock_wrlock(&lg->lock);
    slog_tag_t *old = st->tags;
    size_t old_n = st->n_tags;
    st->tags = tv;
    st->n_tags = nt;
    pthread_rwlock_unlock(&lg->lock);
    slog__tags_free(old, old_n);
    return 0;
}

int slog_stream_tags_add(slog_t *lg, const char *name, const slog_tag_t *tags, size_t n,
                         tr_err *err) {
    if (!lg || !name || (n && !tags)) return tr_err_set(err, TR_EINVAL, "stream name needed");
    int rc = slog__tags_check(tags, n, err);
    if (rc) return rc;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
    } else {
        size_t nt = 0;
        slog_tag_t *tv = slog__tags_merge(st->tags, st->n_tags, tags, n, NULL, 0, &nt);
        if (nt > SLOG_MAX_TAGS) {
            slog__tags_free(tv, nt);
            rc = tr_err_set(err, TR_ELIMIT,
                            "stream \"%s\" would have %zu tags; a stream can "
                            "have at most %d: remove some first",
                            name, nt, SLOG_MAX_TAGS);
        } else {
            rc = tags_commit(lg, st, tv, nt, err);
        }
    }
    pthread_mutex_unlock(&lg->ctl_mu);
    return rc;
}

int slog_stream_tags_remove(slog_t *lg, const char *name, char *const *keys, size_t n,
                            tr_err *err) {
    if (!lg || !name || (n && !keys)) return tr_err_set(err, TR_EINVAL, "stream name needed");
    int rc = 0;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
    } else {
        size_t nt = 0;
        slog_tag_t *tv = slog__tags_merge(st->tags, st->n_tags, NULL, 0, keys, n, &nt);
        if (nt == st->n_tags) slog__tags_free(tv, nt); /* nothing to remove */
        else rc = tags_commit(lg, st, tv, nt, err);
    }
    pthread_mutex_unlock(&lg->ctl_mu);
    return rc;
}

/* ---- resharding ---------------------------------------------------------------------------- */

/* Close `parents` and add `kids` (index, created_ms and seq_start are assigned here) durably.
 * Caller holds ctl_mu.  Order: open the children's logs; stop routing (put_lock as writer);
 * drain, so the parents' end counters are final; commit the LMDB record; swap the cache. */
static int reshard_commit(slog_t *lg, sl_stream_t *st, sl_shard_t **parents, size_t n_par,
                          slog_shard_info_t *kids, size_t n_kids, tr_err *err) {
    for (size_t p = 0; p < n_par; p++)
        if (!parents[p]->log)
            return tr_err_set(err, parents[p]->fail_rc,
                              "%s (it cannot be split or merged "
                              "while it is unavailable)",
                              parents[p]->fail_msg);
    int rc = 0;
    int64_t now = tr_now_ms();
    sl_shard_t **kh = tr_xcalloc(n_kids, sizeof *kh);
    slog_shard_info_t *infos = NULL;
    for (size_t k = 0; k < n_kids; k++) {
        kids[k].index = (uint32_t)(st->n_shards + k);
        kids[k].created_ms = now;
        kids[k].seq_start = 0;
        kids[k].seq_end = 0;
        kids[k].closed = 0;
        kids[k].closed_ms = 0;
        char *d = slog__xasprintf("%s/streams/%" PRIu64 "/%" PRIu32, lg->dir, st->id,
                                  kids[k].index);
        slog__rm_rf(d); /* a leftover of an interrupted reshard would hold stale records */
        free(d);
        if ((rc = slog__sh_open(lg, st->id, &kids[k], &kh[k], 0, NULL, err))) goto leave;
    }

    pthread_rwlock_wrlock(&lg->put_lock);
    slog__drain(lg);
    infos = tr_xcalloc(st->n_shards + n_kids, sizeof *infos);
    sl_image_t img;
    slog__image_of(st, infos, &img);
    for (size_t p = 0; p < n_par; p++) {
        slog_shard_info_t *pi = &infos[parents[p]->info.index];
        pi->closed = 1;
        pi->closed_ms = now;
        pi->seq_end = slog_shard_end(parents[p]->log);
    }
    memcpy(infos + st->n_shards, kids, n_kids * sizeof *kids);
    img.n_shards = st->n_shards + n_kids;
    rc = slog__meta_write(lg, st->name, &img, 0, err);
    if (!rc) {
        sl_shard_t **shards = tr_xcalloc(st->n_shards + n_kids, sizeof *shards);
        memcpy(shards, st->shards, st->n_shards * sizeof *shards);
        memcpy(shards + st->n_shards, kh, n_kids * sizeof *kh);
        pthread_rwlock_wrlock(&lg->lock);
        for (size_t p = 0; p < n_par; p++) {
            slog_shard_info_t *pi = &parents[p]->info;
            pi->closed = 1;
            pi->closed_ms = now;
            pi->seq_end = infos[pi->index].seq_end;
        }
        sl_shard_t **old = st->shards;
        st->shards = shards;
        st->n_shards += n_kids;
        free(st->open);
        st->open = slog__routing_build(st, &st->n_open);
        lg->open_total = lg->open_total + (uint32_t)n_kids - (uint32_t)n_par;
        pthread_rwlock_unlock(&lg->lock);
        free(old);
        n_kids = 0; /* owned by the stream now */
    }
    pthread_rwlock_unlock(&lg->put_lock);
leave:
    for (size_t k = 0; k < n_kids; k++)
        if (kh[k]) slog__sh_doom(kh[k]);
    free(kh);
    free(infos);
    return rc;
}

/* Look up an open shard of st for a reshard; TR_EINVAL with an AWS-like message otherwise. */
static int open_shard(sl_stream_t *st, uint32_t idx, sl_shard_t **out, tr_err *err) {
    char id[24];
    slog__shard_id(idx, id);
    if (idx >= st->n_shards)
        return tr_err_set(err, TR_EINVAL,
                          "Could not find shard %s in stream %s; list the "
                          "stream's shards with DescribeStream",
                          id, st->name);
    if (st->shards[idx]->info.closed)
        return tr_err_set(err, TR_EINVAL,
                          "Shard %s in stream %s has already been merged or "
                          "split, and thus is not eligible for merging or "
                          "splitting.",
                          id, st->name);
    *out = st->shards[idx];
    return 0;
}

int slog_shard_split(slog_t *lg, const char *name, uint32_t shard, slog_hash_t new_start,
                     tr_err *err) {
    if (!lg || !name) return tr_err_set(err, TR_EINVAL, "stream name needed");
    int rc;
    sl_shard_t *sh = NULL;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
        goto leave;
    }
    if ((rc = open_shard(st, shard, &sh, err))) goto leave;
    slog_hash_t s = sh->info.hash_start, e = sh->info.hash_end;
    if (new_start <= s || new_start - s <= 1 || new_start >= e) {
        char a[40], b[40], c[40], id[24];
        slog_hash_format(new_start, a);
        slog_hash_format(s, b);
        slog_hash_format(e, c);
        slog__shard_id(shard, id);
        rc = tr_err_set(err, TR_EINVAL,
                        "NewStartingHashKey %s used in SplitShard() on shard %s "
                        "in stream %s is not both greater than one plus the "
                        "shard's StartingHashKey %s and less than the shard's "
                        "EndingHashKey %s.",
                        a, id, name, b, c);
        goto leave;
    }
    if ((uint64_t)lg->open_total + 1 > lg->opts.shard_limit) {
        rc = shard_limit_error(lg, 1, err);
        goto leave;
    }
    slog_shard_info_t kids[2] = {
        {.parent = shard,
         .adjacent_parent = SLOG_NO_SHARD,
         .hash_start = s,
         .hash_end = new_start - 1},
        {.parent = shard, .adjacent_parent = SLOG_NO_SHARD, .hash_start = new_start, .hash_end = e},
    };
    rc = reshard_commit(lg, st, &sh, 1, kids, 2, err);
leave:
    pthread_mutex_unlock(&lg->ctl_mu);
    return rc;
}

int slog_shard_merge(slog_t *lg, const char *name, uint32_t shard, uint32_t adjacent, tr_err *err) {
    if (!lg || !name) return tr_err_set(err, TR_EINVAL, "stream name needed");
    int rc;
    sl_shard_t *a = NULL, *b = NULL;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
        goto leave;
    }
    if ((rc = open_shard(st, shard, &a, err)) || (rc = open_shard(st, adjacent, &b, err)))
        goto leave;
    int adj = a != b &&
              ((a->info.hash_end != SLOG_HASH_MAX && a->info.hash_end + 1 == b->info.hash_start) ||
               (b->info.hash_end != SLOG_HASH_MAX && b->info.hash_end + 1 == a->info.hash_start));
    if (!adj) {
        char x[24], y[24];
        slog__shard_id(shard, x);
        slog__shard_id(adjacent, y);
        rc = tr_err_set(err, TR_EINVAL,
                        "Shards %s and %s in stream %s are not an adjacent pair "
                        "of shards eligible for merging",
                        x, y, name);
        goto leave;
    }
    slog_shard_info_t kid = {
        .parent = shard,
        .adjacent_parent = adjacent,
        .hash_start = a->info.hash_start < b->info.hash_start ? a->info.hash_start
                                                              : b->info.hash_start,
        .hash_end = a->info.hash_end > b->info.hash_end ? a->info.hash_end : b->info.hash_end,
    };
    sl_shard_t *par[2] = {a, b};
    rc = reshard_commit(lg, st, par, 2, &kid, 1, err);
leave:
    pthread_mutex_unlock(&lg->ctl_mu);
    return rc;
}

int slog_stream_scale(slog_t *lg, const char *name, uint32_t target, uint32_t *old_count,
                      tr_err *err) {
    if (!lg || !name) return tr_err_set(err, TR_EINVAL, "stream name needed");
    int rc = 0;
    slog_hash_t *starts = NULL, *ends = NULL;
    slog_shard_info_t *kids = NULL;
    sl_shard_t **par = NULL;
    pthread_mutex_lock(&lg->ctl_mu);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
        goto leave;
    }
    uint32_t open = (uint32_t)st->n_open;
    if (old_count) *old_count = open;
    if (target < 1 || target > SLOG_MAX_SHARDS_PER_STREAM || (uint64_t)target > 2ull * open ||
        2ull * target < open) {
        rc = tr_err_set(err, TR_EINVAL,
                        "TargetShardCount %" PRIu32 " is out of range for stream %s with %" PRIu32
                        " open shards: UpdateShardCount can at most double the open shard count "
                        "and at least halve it (and %d is the most a stream can have)",
                        target, name, open, SLOG_MAX_SHARDS_PER_STREAM);
        goto leave;
    }
    if (target == open) goto leave;
    if (target > open && (uint64_t)lg->open_total + (target - open) > lg->opts.shard_limit) {
        rc = shard_limit_error(lg, target - open, err);
        goto leave;
    }
    starts = tr_xcalloc(target, sizeof *starts);
    ends = tr_xcalloc(target, sizeof *ends);
    kids = tr_xcalloc(target, sizeof *kids);
    slog__split_even(target, starts, ends);
    par = tr_xcalloc(open, sizeof *par);
    memcpy(par, st->open, open * sizeof *par);
    for (uint32_t k = 0; k < target; k++) {
        /* parents by overlap: the largest, then the second largest */
        uint32_t best = SLOG_NO_SHARD, second = SLOG_NO_SHARD;
        slog_hash_t bo = 0, so = 0;
        for (uint32_t p = 0; p < open; p++) {
            slog_hash_t s = par[p]->info.hash_start > starts[k] ? par[p]->info.hash_start
                                                                : starts[k];
            slog_hash_t e = par[p]->info.hash_end < ends[k] ? par[p]->info.hash_end : ends[k];
            if (s > e) continue;
            slog_hash_t ov = e - s; /* overlap size - 1 */
            if (best == SLOG_NO_SHARD || ov > bo) {
                second = best, so = bo;
                best = par[p]->info.index, bo = ov;
            } else if (second == SLOG_NO_SHARD || ov > so) {
                second = par[p]->info.index, so = ov;
            }
        }
        kids[k] = (slog_shard_info_t){.parent = best,
                                      .adjacent_parent = second,
                                      .hash_start = starts[k],
                                      .hash_end = ends[k]};
    }
    rc = reshard_commit(lg, st, par, open, kids, target, err);
leave:
    pthread_mutex_unlock(&lg->ctl_mu);
    free(starts);
    free(ends);
    free(kids);
    free(par);
    return rc;
}

void slog_limits(slog_t *lg, uint32_t *shard_limit, uint32_t *open_shards,
                 uint32_t *on_demand_limit, uint32_t *on_demand_streams) {
    if (!lg) return;
    pthread_rwlock_rdlock(&lg->lock);
    if (shard_limit) *shard_limit = lg->opts.shard_limit;
    if (open_shards) *open_shards = lg->open_total;
    if (on_demand_limit) *on_demand_limit = lg->opts.on_demand_limit;
    if (on_demand_streams) *on_demand_streams = lg->on_demand_streams;
    pthread_rwlock_unlock(&lg->lock);
}
