/* SPDX-License-Identifier: Apache-2.0
 *
 * esm_run.c -- what a running shard task of an event-source mapping does: the reader thread
 * (slog_read, filters, queueing to lanes), the lane threads (batching windows, invocation and
 * the response's partial failures, retries with bisection, record age, the on-failure
 * destination) and the checkpoint position that lanes hand to the checkpointer.
 *
 * Split out of esm.c, which keeps the mappings' registry and stored state, the checkpointer,
 * the append hook, starting/stopping tasks, the manager thread, the control plane and metrics.
 * Threads, locks and the stored format are described at the top of esm.c; the types and helpers
 * both files use are in esm_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/esm_int.h"
#include "fn/native.h"
#include "fn/trf_int.h"

/* ---- invocation ------------------------------------------------------------------------------ */

enum { INV_OK = 0, INV_PARTIAL = 1, INV_FAILED = 2, INV_NOT_INVOKED = 3 };

typedef struct inv_out {
    int kind; /* INV_* */
    size_t first_failed; /* INV_PARTIAL: index into the batch */
    char *state; /* window state returned (malloc'd) or NULL */
    char request_id[FN_REQUEST_ID_LEN + 1];
    char function_error[64];
    int status;
} inv_out_t;

/* Interpret a successful invocation's response per the mapping (see esm.h). */
static void parse_response(const esm_run_t *run, esm_rec_t **recs, size_t n, uint32_t shard,
                           const uint8_t *p, size_t len, inv_out_t *o) {
    o->kind = INV_OK;
    if (!run->cfg.report_item_failures && !run->cfg.tumbling_window_s) return;
    json_t *root = len ? json_loadb((const char *)p, len, JSON_DECODE_ANY, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return; /* null, empty, not an object: success (AWS) */
    }
    if (run->cfg.tumbling_window_s) {
        json_t *st = json_object_get(root, "state");
        if (json_is_object(st)) o->state = json_dumps(st, JSON_COMPACT);
    }
    json_t *bif = json_object_get(root, "batchItemFailures");
    if (run->cfg.report_item_failures && bif && !json_is_null(bif)) {
        if (!json_is_array(bif)) {
            o->kind = INV_FAILED; /* malformed response: the whole batch failed */
        } else {
            size_t i, best = SIZE_MAX;
            json_t *item;
            json_array_foreach(bif, i, item) {
                const char *id = json_string_value(json_object_get(item, "itemIdentifier"));
                size_t k = n;
                if (id && *id) {
                    uint32_t sh;
                    uint64_t ctr;
                    if (slog_seq_parse(id, &sh, &ctr) == 0 && sh == shard)
                        for (k = 0; k < n && recs[k]->seq != ctr; k++) {}
                }
                if (k == n) { /* null, empty, unknown: the whole batch failed */
                    best = SIZE_MAX;
                    o->kind = INV_FAILED;
                    break;
                }
                if (k < best) best = k;
            }
            if (o->kind != INV_FAILED && best != SIZE_MAX) {
                o->kind = INV_PARTIAL;
                o->first_failed = best;
            }
        }
    }
    json_decref(root);
}

typedef struct win_arg {
    int active;
    int64_t start_ms, end_ms;
    const char *state;
    int is_final;
} win_arg_t;

static void invoke_batch(esm_task_t *t, esm_rec_t **recs, size_t n, const win_arg_t *w,
                         inv_out_t *o) {
    esm_t *e = t->e;
    const esm_run_t *run = t->run;
    memset(o, 0, sizeof *o);
    char name[FN_MAX_NAME + 1], qual[130];
    tr_err err;
    tr_err_clear(&err);
    fn_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    if (fn_name_parse(run->cfg.function_arn, name, qual, &err) || fn_get(e->fn, name, &cfg, &err)) {
        o->kind = INV_NOT_INVOKED;
        snprintf(o->function_error, sizeof o->function_error, "ResourceNotFound");
        fn_config_free(&cfg);
        return;
    }
    int native = cfg.runtime && !strcmp(cfg.runtime, FN_NATIVE_RUNTIME);
    fn_config_free(&cfg);

    /* The records as a handler sees them (<tributary/function.h>): the native runtime sends
     * them as they are, the other runtimes get AWS's event JSON rendered from them. */
    trf_record_t stack_tr[64];
    char stack_seqs[64][SLOG_SEQ_STRLEN + 1];
    trf_record_t *tr = n <= 64 ? stack_tr : malloc(n * sizeof *tr);
    char(*seqs)[SLOG_SEQ_STRLEN + 1] = n <= 64 ? stack_seqs : malloc(n * sizeof *seqs);
    if (!tr || !seqs) {
        if (tr != stack_tr) free(tr);
        if (seqs != stack_seqs) free(seqs);
        o->kind = INV_NOT_INVOKED;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        slog_seq_format(t->shard, recs[i]->seq, seqs[i]);
        tr[i] = (trf_record_t){recs[i]->bytes,
                               recs[i]->pk_len,
                               (const uint8_t *)recs[i]->bytes + recs[i]->pk_len + 1,
                               recs[i]->data_len,
                               seqs[i],
                               recs[i]->arrival_ms};
    }
    trf_window_t tw = {0};
    if (w->active) {
        tw.start_ms = w->start_ms;
        tw.end_ms = w->end_ms;
        tw.state = w->state ? w->state : "{}";
        tw.state_len = strlen(tw.state);
        tw.is_final = w->is_final;
    }
    fn_native_batch_t nb = {FN_NATIVE_BATCH_MAGIC, tr, n, t->shard, run->cfg.source_arn, e->region,
                            w->active ? &tw : NULL};
    trf__buf_t json = {0};
    if (!native) {
        /* Other runtimes get AWS's event JSON. */
        char shard_id[32];
        snprintf(shard_id, sizeof shard_id, "shardId-%012u", t->shard);
        trf_event_t ev = {
            TRF_ABI_VERSION, TRF_EVENT_KINESIS,      NULL, 0, tr, n, run->cfg.source_arn, shard_id,
            e->region,       w->active ? &tw : NULL, {0}};
        trf__kinesis_render(&json, &ev, NULL);
        if (json.oom) {
            trf__buf_free(&json);
            if (tr != stack_tr) free(tr);
            if (seqs != stack_seqs) free(seqs);
            o->kind = INV_NOT_INVOKED;
            return;
        }
    }
    fn_invoke_req_t req = {.name = name,
                           .qualifier = NULL,
                           .type = FN_INVOKE_SYNC,
                           .payload = (const uint8_t *)(native ? "{}" : json.data),
                           .payload_len = native ? 2 : json.len,
                           .wait_for_slot = 1,
                           .native = &nb};
    fn_result_owned_t res;
    memset(&res, 0, sizeof res);
    int64_t now = tr_now_ms();
    int rc = fn_invoke_wait(e->fn, &req, &res);
    trf__buf_free(&json);
    snprintf(o->request_id, sizeof o->request_id, "%s", res.r.request_id);
    o->status = res.r.status;
    if (rc == 0 && res.r.rc == 0) {
        pthread_mutex_lock(&e->mu);
        t->m->invocations++;
        if (n) t->m->iterator_age_ms = now - recs[n - 1]->arrival_ms;
        if (res.r.function_error) t->m->errors++;
        pthread_mutex_unlock(&e->mu);
        if (res.r.function_error) {
            o->kind = INV_FAILED;
            snprintf(o->function_error, sizeof o->function_error, "%s", res.r.function_error);
        } else {
            parse_response(run, recs, n, t->shard, res.r.payload, res.r.payload_len, o);
        }
    } else if (res.r.rc == TR_ETOOBIG) {
        o->kind = INV_FAILED; /* the function ran; its response was too large */
        snprintf(o->function_error, sizeof o->function_error, "Unhandled");
    } else {
        o->kind = INV_NOT_INVOKED;
        snprintf(o->function_error, sizeof o->function_error, "%s",
                 tr_err_name(rc ? rc : res.r.rc));
    }
    fn_result_free(&res);
    if (tr != stack_tr) free(tr);
    if (seqs != stack_seqs) free(seqs);
}

/* ---- on-failure destination ------------------------------------------------------------------ */

typedef struct put_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} put_wait_t;

static void put_done(void *arg, int rc) {
    put_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->rc = rc;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Report records [0, n) as discarded (condition "RetryAttemptsExhausted" or
 * "RecordAgeExceeded").  With a destination, blocks until the report is durable in it (retrying
 * while the task runs); returns 0 when the records may be checkpointed, -1 when the task is
 * stopping before that. */
static int discard(esm_task_t *t, esm_rec_t **recs, size_t n, const char *condition,
                   const inv_out_t *last, int invoke_count) {
    esm_t *e = t->e;
    if (!n) return 0; /* a window's final invoke without records: nothing to report */
    const esm_run_t *run = t->run;
    char first[SLOG_SEQ_STRLEN + 1], lastseq[SLOG_SEQ_STRLEN + 1], a1[32], a2[32], now[32];
    slog_seq_format(t->shard, recs[0]->seq, first);
    slog_seq_format(t->shard, recs[n - 1]->seq, lastseq);
    trf__iso_time(recs[0]->arrival_ms, 1, a1);
    trf__iso_time(recs[n - 1]->arrival_ms, 1, a2);
    trf__iso_time(tr_now_ms(), 1, now);
    pthread_mutex_lock(&e->mu);
    t->m->records_discarded += n;
    pthread_mutex_unlock(&e->mu);
    if (!run->dest_stream[0]) {
        tr_warn("esm",
                "mapping %s: discarded %zu records of shardId-%012u (%s .. %s): %s; "
                "no OnFailure destination is configured",
                run->cfg.uuid, n, t->shard, first, lastseq, condition);
        return 0;
    }
    char rid[FN_REQUEST_ID_LEN + 1];
    if (last && last->request_id[0]) snprintf(rid, sizeof rid, "%s", last->request_id);
    else tr_uuid_v4(rid);
    trf__buf_t b = {0};
    trf__buf_puts(&b, "{\"requestContext\":{\"requestId\":\"");
    trf__buf_puts(&b, rid);
    trf__buf_puts(&b, "\",\"functionArn\":");
    trf__buf_json_str(&b, run->cfg.function_arn, strlen(run->cfg.function_arn));
    trf__buf_printf(&b, ",\"condition\":\"%s\",\"approximateInvokeCount\":%d}", condition,
                    invoke_count);
    if (invoke_count > 0 && last)
        trf__buf_printf(&b,
                        ",\"responseContext\":{\"statusCode\":%d,\"executedVersion\":\"$LATEST\","
                        "\"functionError\":\"%s\"}",
                        last->status ? last->status : 200,
                        last->function_error[0] ? "Unhandled" : "");
    trf__buf_printf(&b,
                    ",\"version\":\"1.0\",\"timestamp\":\"%s\",\"KinesisBatchInfo\":{"
                    "\"shardId\":\"shardId-%012u\",\"startSequenceNumber\":\"%s\","
                    "\"endSequenceNumber\":\"%s\",\"approximateArrivalOfFirstRecord\":\"%s\","
                    "\"approximateArrivalOfLastRecord\":\"%s\",\"batchSize\":%zu,\"streamArn\":",
                    now, t->shard, first, lastseq, a1, a2, n);
    trf__buf_json_str(&b, run->cfg.source_arn, strlen(run->cfg.source_arn));
    trf__buf_puts(&b, "}}");
    if (b.oom) {
        trf__buf_free(&b);
        return -1;
    }
    char pk[32];
    snprintf(pk, sizeof pk, "shardId-%012u", t->shard);
    int64_t backoff = 50;
    for (int attempt = 0;; attempt++) {
        if (atomic_load(&t->stop)) {
            trf__buf_free(&b);
            return -1;
        }
        put_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
        slog_put_rec_t pr = {.pk = pk,
                             .pk_len = (uint16_t)strlen(pk),
                             .data = (const uint8_t *)b.data,
                             .data_len = (uint32_t)b.len};
        tr_err err;
        tr_err_clear(&err);
        int rc = slog_put(e->lg, run->dest_stream, &pr, 1, put_done, &w, &err);
        if (rc == 0) {
            pthread_mutex_lock(&w.mu);
            while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
            rc = w.rc ? w.rc : pr.rc;
            if (rc) snprintf(err.msg, sizeof err.msg, "%s", tr_strerror(rc));
        }
        if (rc == 0) break;
        if (attempt % 20 == 0)
            tr_error("esm",
                     "mapping %s: cannot send the on-failure record to %s: %s; retrying "
                     "(the shard waits: records are never skipped without their report)",
                     run->cfg.uuid, run->cfg.on_failure, err.msg);
        esm__sleep_ms(backoff);
        if (backoff < 1000) backoff *= 2;
    }
    trf__buf_free(&b);
    return 0;
}

/* ---- one lane's batch ------------------------------------------------------------------------ */

static int expired(const esm_task_t *t, const esm_rec_t *r, int64_t now) {
    int32_t age = t->run->cfg.max_record_age_s;
    return age >= 0 && now - r->arrival_ms > (int64_t)age * t->e->age_unit_ms;
}

/* Sleep for a retry, in slices so that a stop is noticed.  -1 if stopping. */
static int backoff(esm_task_t *t, int attempt) {
    int64_t ms = t->e->backoff_ms;
    for (int i = 1; i < attempt && ms < 1000; i++) ms *= 2;
    if (ms > 1000) ms = 1000;
    for (int64_t slept = 0; slept < ms; slept += 10) {
        if (atomic_load(&t->stop)) return -1;
        esm__sleep_ms(ms - slept < 10 ? ms - slept : 10);
    }
    return atomic_load(&t->stop) ? -1 : 0;
}

/* A span of a batch still to process, and the failed attempts it has had. */
typedef struct span {
    size_t lo, hi;
    int attempts;
} span_t;

/* Room for one more span on the stack *st of sp spans (capacity *cap; stack is the caller's
 * array, never freed here).  -1 when out of memory (the stack is unchanged). */
static int spans_reserve(span_t **st, span_t *stack, size_t sp, size_t *cap) {
    if (sp + 1 < *cap) return 0;
    size_t nc = *cap * 2;
    span_t *p = malloc(nc * sizeof *p);
    if (!p) return -1;
    memcpy(p, *st, sp * sizeof *p);
    if (*st != stack) free(*st);
    *st = p;
    *cap = nc;
    return 0;
}

/* Process recs[0, n) to completion under the mapping's policy.  Returns how many records, from
 * the front, are done (n unless the task is stopping).  *state gets the window state to carry
 * (malloc'd, may be NULL).
 *
 * The policy, AWS's (with-kinesis.html, services-kinesis-batchfailurereporting.html):
 *   - success: the span is done.
 *   - function error: with BisectBatchOnFunctionError a span of 2+ records is split in two
 *     halves, first half first, without spending a retry ("if the invocation fails ... the batch
 *     is split in two regardless of ReportBatchItemFailures"); otherwise (or a single record) it
 *     is retried after a back-off until MaximumRetryAttempts, then reported to the destination.
 *   - partial batch response naming item f (the lowest named): [lo, f) is done (the checkpoint
 *     may move past it) and [f, hi) is what remains.  Without bisection [f, hi) is retried as a
 *     batch (a retry of f; progress starts a new count), then reported as a batch.
 *   - ... with bisection, AWS "bisects the batch at the returned sequence number and retries
 *     only the remaining records".  We split what remains once more, at the item: [f, f+1) with
 *     the failed attempt counted against it, then [f+1, hi) as a new batch.  Why this is within
 *     AWS's semantics and what it saves: the function said which record failed, so the records
 *     after it are not implicated; retrying [f, hi) and, when f fails again, bisecting it in
 *     halves (what a function error would cause) ends with the same outcome -- f alone on the
 *     destination after its MaximumRetryAttempts, every other record processed, in order --
 *     at the cost of ~2 log2(hi - f) invocations, most of them failing and re-delivering good
 *     records, and a back-off per failure.  Split at the item it costs MaximumRetryAttempts
 *     invocations of the single record (none with 0 retries: the report was its failed attempt),
 *     and [f+1, hi) stays one batch.  A function that fails the whole invoke instead of
 *     reporting the item still gets the halving bisection.  Order holds: [f, f+1) is resolved
 *     (processed or reported durably) before [f+1, hi) is invoked, and a record is never
 *     delivered again once reported.
 *   - back-off: a retry of the same span waits retry_backoff_ms (20 ms), doubled per attempt up
 *     to 1 s, so that a failure that may be passing (a throttled or restarting dependency, a
 *     crashing function) is not retried in a tight loop, and a record retried forever
 *     (MaximumRetryAttempts -1) costs little.  A split is not a retry and does not wait; a
 *     record the function reported is retried after the back-off like any other: the report
 *     does not say the failure is permanent (a throttled write is reported the same way).
 *     Measured (bench/pipeline.py, half load): an immediate first retry of the split-off record
 *     changed nothing visible, so the one rule stays.
 *   - MaximumRecordAgeInSeconds: expired records at a span's front are reported, never invoked. */
static size_t process_batch(esm_lane_t *l, esm_rec_t **recs, size_t n, const win_arg_t *w,
                            char **state) {
    esm_task_t *t = l->t;
    const esm_config_t *cfg = &t->run->cfg;
    span_t stack_spans[64];
    span_t *st = stack_spans;
    size_t sp = 0, cap = 64;
    st[sp++] = (span_t){0, n, 0};
    size_t done = 0; /* everything before this index is processed */
    win_arg_t win = *w;
    char *cur_state = w->state ? strdup(w->state) : NULL;
    int final_pending = w->is_final;
    int not_invoked = 0;
    inv_out_t last;
    memset(&last, 0, sizeof last);

    while (sp) {
        span_t *s = &st[sp - 1];
        if (atomic_load(&t->stop)) break;
        /* MaximumRecordAgeInSeconds: the expired front goes to the destination. */
        int64_t now = tr_now_ms();
        size_t k = s->lo;
        while (k < s->hi && expired(t, recs[k], now)) k++;
        if (k > s->lo) {
            if (discard(t, recs + s->lo, k - s->lo, "RecordAgeExceeded", &last, s->attempts)) break;
            s->lo = k;
            done = k;
            s->attempts = 0;
            if (s->lo == s->hi) {
                sp--;
                continue;
            }
        }
        /* A final window invoke without records still has to happen: lo == hi only then. */
        win.state = cur_state;
        win.is_final = final_pending && sp == 1 && s->hi == n;
        inv_out_t o;
        invoke_batch(t, recs + s->lo, s->hi - s->lo, &win, &o);
        if (o.kind != INV_NOT_INVOKED) last = o;
        if (o.kind == INV_NOT_INVOKED) {
            /* Throttled or the function is missing: not the function's fault, no retry spent. */
            if (++not_invoked % 50 == 1)
                tr_warn("esm", "mapping %s: could not invoke %s (%s); retrying", cfg->uuid,
                        cfg->function_arn, o.function_error);
            free(o.state);
            if (backoff(t, not_invoked > 6 ? 6 : not_invoked)) break;
            continue;
        }
        not_invoked = 0;
        if (o.kind == INV_OK || o.kind == INV_PARTIAL) {
            if (o.state || cfg->tumbling_window_s) {
                free(cur_state);
                cur_state = o.state ? o.state : NULL;
                o.state = NULL;
            }
        }
        free(o.state);
        if (o.kind == INV_OK) {
            pthread_mutex_lock(&t->e->mu);
            snprintf(t->m->cfg.last_result, sizeof t->m->cfg.last_result, "OK");
            pthread_mutex_unlock(&t->e->mu);
            done = s->hi;
            sp--;
            continue;
        }
        if (o.kind == INV_PARTIAL) {
            size_t f = s->lo + o.first_failed;
            if (f > s->lo) s->attempts = 0; /* progress: the rest is a new batch */
            s->lo = f;
            done = f;
            if (cfg->bisect && s->hi - f > 1) {
                /* Split at the item (see above): [f, f+1) on top with the span's failed
                 * attempts, counted below; [f+1, hi) under it as a new batch. */
                if (spans_reserve(&st, stack_spans, sp, &cap)) break;
                s = &st[sp - 1];
                size_t hi = s->hi;
                int attempts = s->attempts;
                st[sp - 1] = (span_t){f + 1, hi, 0};
                st[sp++] = (span_t){f, f + 1, attempts};
                s = &st[sp - 1];
            }
        }
        /* Function error (or a partial failure). */
        pthread_mutex_lock(&t->e->mu);
        snprintf(t->m->cfg.last_result, sizeof t->m->cfg.last_result,
                 "PROBLEM: Function call failed");
        pthread_mutex_unlock(&t->e->mu);
        if (o.kind == INV_FAILED && cfg->bisect && s->hi - s->lo > 1) {
            size_t lo = s->lo, hi = s->hi, mid = lo + (hi - lo) / 2;
            if (spans_reserve(&st, stack_spans, sp, &cap)) break;
            s = &st[sp - 1];
            /* Second half below, first half on top: processed in order. */
            st[sp - 1] = (span_t){mid, hi, 0};
            st[sp++] = (span_t){lo, mid, 0};
            continue;
        }
        s->attempts++;
        if (cfg->max_retry >= 0 && s->attempts > cfg->max_retry) {
            if (discard(t, recs + s->lo, s->hi - s->lo, "RetryAttemptsExhausted", &last,
                        s->attempts))
                break;
            done = s->hi;
            sp--;
            continue;
        }
        if (backoff(t, s->attempts)) break;
    }
    if (st != stack_spans) free(st);
    *state = cur_state;
    return done;
}

/* ---- lanes ----------------------------------------------------------------------------------- */

static esm_rec_t *lane_at(const esm_lane_t *l, size_t i) { return l->q[(l->head + i) % l->cap]; }

static int lane_push(esm_lane_t *l, esm_rec_t *r) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        esm_rec_t **q = malloc(cap * sizeof *q);
        if (!q) return -1;
        for (size_t i = 0; i < l->n; i++) q[i] = lane_at(l, i);
        free(l->q);
        l->q = q;
        l->head = 0;
        l->cap = cap;
    }
    l->q[(l->head + l->n) % l->cap] = r;
    l->n++;
    l->bytes += r->data_len + r->pk_len;
    atomic_fetch_add(&l->t->e->queued_bytes, r->data_len + r->pk_len);
    return 0;
}

void esm__lane_pop(esm_lane_t *l, size_t k) {
    for (size_t i = 0; i < k && l->n; i++) {
        esm_rec_t *r = l->q[l->head];
        if (l->idx == 0 && r->home) l->t->in0[r->home]--;
        l->bytes -= r->data_len + r->pk_len;
        atomic_fetch_sub(&l->t->e->queued_bytes, r->data_len + r->pk_len);
        free(r);
        l->head = (l->head + 1) % l->cap;
        l->n--;
    }
}

static int64_t window_of(const esm_task_t *t, int64_t arrival_ms) {
    int64_t w = (int64_t)t->run->cfg.tumbling_window_s * 1000;
    return arrival_ms - ((arrival_ms % w) + w) % w;
}

/* Under t->mu: persist the shard's checkpoint if it moved (or the window state changed), and
 * finish the shard when a closed shard is fully processed.  Returns a flush generation to wait
 * for (outside the lock) when the shard just finished, else 0. */
uint64_t esm__checkpoint_locked(esm_task_t *t, int state_changed) {
    uint64_t next = t->read_pos;
    for (int i = 0; i < t->n_lanes; i++)
        if (t->lanes[i].n && lane_at(&t->lanes[i], 0)->seq < next)
            next = lane_at(&t->lanes[i], 0)->seq;
    int all_empty = 1;
    for (int i = 0; i < t->n_lanes; i++)
        if (t->lanes[i].n || (t->run->cfg.tumbling_window_s && t->lanes[i].win_start))
            all_empty = 0;
    if (t->read_done && all_empty && !t->finished) {
        t->finished = 1;
        t->ck_next = next;
        return esm__ck_put(t->e, t->run->cfg.uuid, t->shard, next, ESM_CK_FINISHED, 0, NULL);
    }
    if (next != t->ck_next || state_changed) {
        t->ck_next = next;
        esm_lane_t *l0 = &t->lanes[0];
        esm__ck_put(t->e, t->run->cfg.uuid, t->shard, next, 0, l0->win_start, l0->state);
    }
    return 0;
}

static void finish_wait(esm_task_t *t, uint64_t gen) {
    if (!gen) return;
    esm__ck_wait(t->e, gen);
    tr_info("esm", "mapping %s: shardId-%012u finished (read to its end)", t->run->cfg.uuid,
            t->shard);
    esm__poke_manager(t->e);
}

void *esm__lane_main(void *arg) {
    esm_lane_t *l = arg;
    esm_task_t *t = l->t;
    const esm_config_t *cfg = &t->run->cfg;
    int64_t wsize = (int64_t)cfg->tumbling_window_s * 1000;
    int64_t batching_ms = (int64_t)cfg->max_batching_window_s * 1000;
    esm_rec_t **batch = malloc(cfg->batch_size * sizeof *batch);
    if (!batch) {
        tr_error("esm", "mapping %s: out of memory starting a lane", cfg->uuid);
        return NULL;
    }
    pthread_mutex_lock(&t->mu);
    while (!atomic_load(&t->stop)) {
        int64_t now = tr_now_ms();
        win_arg_t w = {0};
        size_t k = 0;
        int final = 0;
        if (wsize && l->win_start &&
            (!l->n || window_of(t, lane_at(l, 0)->arrival_ms) != l->win_start)) {
            /* The open window has no queued records left. */
            int later_queued = l->n > 0;
            if (!later_queued && now < l->win_start + wsize + t->e->window_grace_ms) {
                struct timespec ts;
                esm__abstime_in(&ts, l->win_start + wsize + t->e->window_grace_ms - now);
                pthread_cond_timedwait(&t->cv_lanes, &t->mu, &ts);
                continue;
            }
            final = 1; /* final invoke with no records */
        } else if (!l->n || (l->idx && t->in0[l->idx])) {
            /* Nothing queued, or records of this lane's keys still queued in lane 0 (they
             * come first: lanes_collapse). */
            struct timespec ts;
            esm__abstime_in(&ts, 1000);
            pthread_cond_timedwait(&t->cv_lanes, &t->mu, &ts);
            continue;
        } else {
            /* Take up to BatchSize records within the payload cap (and one window). */
            size_t est = 0;
            int64_t win = wsize ? window_of(t, lane_at(l, 0)->arrival_ms) : 0;
            while (k < l->n && k < cfg->batch_size) {
                esm_rec_t *r = lane_at(l, k);
                if (wsize && window_of(t, r->arrival_ms) != win) break;
                size_t sz = (size_t)r->data_len * 4 / 3 + 2u * r->pk_len +
                            2 * strlen(cfg->source_arn) + 400;
                if (k && est + sz > ESM_MAX_PAYLOAD) break;
                est += sz;
                batch[k++] = r;
            }
            if (wsize) {
                /* Final when the batch holds the window's last queued record and the window is
                 * over: by the clock, or because a record of a later window is queued (arrival
                 * times only grow within a shard). */
                int later = k < l->n && window_of(t, lane_at(l, k)->arrival_ms) != win;
                final = (k == l->n || later) &&
                        (later || now >= win + wsize + t->e->window_grace_ms);
                l->win_start = win;
            }
            /* MaximumBatchingWindowInSeconds: wait for a fuller batch, unless the shard is done
             * or the batch is as full as it can be. */
            int full = k >= cfg->batch_size || k < l->n || est * 2 > ESM_MAX_PAYLOAD;
            if (!final && !full && batching_ms && !t->read_done) {
                int64_t due = lane_at(l, 0)->queued_ms + batching_ms, mnow = tr_mono_ms();
                if (mnow < due) {
                    struct timespec ts;
                    esm__abstime_in(&ts, due - mnow);
                    pthread_cond_timedwait(&t->cv_lanes, &t->mu, &ts);
                    continue;
                }
            }
        }
        if (wsize) {
            w.active = 1;
            w.start_ms = l->win_start;
            w.end_ms = l->win_start + wsize;
            w.state = l->state;
            w.is_final = final;
        }
        pthread_mutex_unlock(&t->mu);

        char *state = NULL;
        size_t done = process_batch(l, batch, k, &w, &state);

        pthread_mutex_lock(&t->mu);
        if (done < k || atomic_load(&t->stop)) {
            /* Stopping part-way: keep what was processed (and, in a window, the state that
             * covers exactly those records) so the checkpoint and the state agree. */
            if (wsize && done > 0) {
                free(l->state);
                l->state = state;
            } else {
                free(state);
            }
            esm__lane_pop(l, done);
            esm__checkpoint_locked(t, wsize != 0);
            break;
        }
        esm__lane_pop(l, done);
        if (wsize) {
            free(l->state);
            if (final) {
                l->state = NULL;
                l->win_start = 0;
                free(state);
            } else {
                l->state = state;
            }
        } else {
            free(state);
        }
        uint64_t gen = esm__checkpoint_locked(t, wsize != 0);
        pthread_cond_signal(&t->cv_reader); /* room in the queue */
        if (l->idx == 0 && t->n_lanes > 1) pthread_cond_broadcast(&t->cv_lanes); /* in0 */
        if (gen) {
            pthread_mutex_unlock(&t->mu);
            finish_wait(t, gen);
            pthread_mutex_lock(&t->mu);
        }
    }
    pthread_mutex_unlock(&t->mu);
    free(batch);
    return NULL;
}

/* ---- reader ---------------------------------------------------------------------------------- */

/* Under t->mu, before n (> 0) new records are queued: 1 if they all go to lane 0, 0 if each
 * goes to its home lane hash(key) % ParallelizationFactor.
 *
 * Why: ParallelizationFactor N lets up to N batches of a shard run at once, which pays when a
 * shard has more than one invocation can take.  At moderate load the lanes are idle when a
 * PutRecords arrives, so N lanes would invoke N small batches at once (at the demo's 6,000
 * readings/s, PF 10: ~14 records per invocation, each costing its fixed ~1.7 ms of frames,
 * wake-ups, flushes and checkpoints).  When every lane is empty (nothing queued, nothing in
 * flight: a lane pops its records only after processing them) and the read fits in one batch
 * (<= BatchSize and ESM_COLLAPSE_MAX), lane 0 takes all of it as one batch, invoked at once:
 * PF is AWS's maximum of concurrent batches, not a number of batches to fill, and a batch with
 * the records of several lanes, in sequence order, is what PF 1 would have sent.  Otherwise the
 * records go to their home lanes as before, so under load the lanes run in parallel.  Records
 * are never held to fill a batch (MaximumBatchingWindowInSeconds 0: invoke when records are
 * available, as AWS).
 *
 * Order per partition key: a record in lane 0 keeps its home lane (r->home, counted in
 * t->in0[home]); lane h starts no batch while lane 0 still holds records whose home is h, so a
 * key's later records, queued in lane h, wait for its earlier ones in lane 0.  The reader never
 * waits. */
static int lanes_collapse(esm_task_t *t, size_t n) {
    size_t cmax = t->run->cfg.batch_size < ESM_COLLAPSE_MAX ? t->run->cfg.batch_size
                                                            : ESM_COLLAPSE_MAX;
    if (n > cmax) return 0;
    for (int i = 0; i < t->n_lanes; i++)
        if (t->lanes[i].n) return 0;
    return 1;
}

void *esm__reader_main(void *arg) {
    esm_task_t *t = arg;
    esm_t *e = t->e;
    const esm_run_t *run = t->run;
    slog_read_t rd;
    memset(&rd, 0, sizeof rd);
    int warned = 0;
    pthread_mutex_lock(&t->mu);
    while (!atomic_load(&t->stop)) {
        size_t queued = 0, bytes = 0;
        for (int i = 0; i < t->n_lanes; i++) {
            queued += t->lanes[i].n;
            bytes += t->lanes[i].bytes;
        }
        size_t limit = (size_t)run->cfg.batch_size * (size_t)t->n_lanes * 2;
        if (limit < 1000) limit = 1000;
        if (t->read_done || queued >= limit || bytes >= ESM_LANE_MAX_BYTES * (size_t)t->n_lanes ||
            atomic_load(&e->queued_bytes) >= ESM_QUEUE_MAX) {
            struct timespec ts;
            esm__abstime_in(&ts, 1000);
            pthread_cond_timedwait(&t->cv_reader, &t->mu, &ts);
            continue;
        }
        uint64_t from = t->read_pos;
        t->poked = 0;
        pthread_mutex_unlock(&t->mu);

        size_t want = limit - queued;
        if (want > ESM_READ_MAX_RECORDS) want = ESM_READ_MAX_RECORDS;
        uint64_t closed_end = UINT64_MAX;
        tr_err err;
        tr_err_clear(&err);
        int rc = slog_read(e->lg, t->stream_id, t->shard, from, want, 4u << 20, &rd, &closed_end,
                           NULL, &err);
        if (rc) {
            if (!warned++)
                tr_warn("esm", "mapping %s: cannot read shardId-%012u: %s", run->cfg.uuid, t->shard,
                        err.msg);
            pthread_mutex_lock(&e->mu);
            snprintf(t->m->cfg.last_result, sizeof t->m->cfg.last_result,
                     "PROBLEM: cannot read the stream");
            pthread_mutex_unlock(&e->mu);
            pthread_mutex_lock(&t->mu);
            struct timespec ts;
            esm__abstime_in(&ts, 1000);
            if (!atomic_load(&t->stop)) pthread_cond_timedwait(&t->cv_reader, &t->mu, &ts);
            continue;
        }
        warned = 0;
        /* Filter and copy outside the lock; the lanes get whole records. */
        esm_rec_t **keep = rd.n ? malloc(rd.n * sizeof *keep) : NULL;
        uint32_t *lane_of = rd.n ? malloc(rd.n * sizeof *lane_of) : NULL;
        size_t n_keep = 0, n_filtered = 0;
        int64_t mnow = tr_mono_ms();
        for (size_t i = 0; i < rd.n && keep && lane_of; i++) {
            const slog_rec_t *r = &rd.recs[i];
            if (run->filter) {
                char seq[SLOG_SEQ_STRLEN + 1];
                slog_seq_format(t->shard, r->seq, seq);
                if (!esm_filter_match(run->filter, r->pk, r->pk_len, seq, r->arrival_ms, r->data,
                                      r->data_len)) {
                    n_filtered++;
                    continue;
                }
            }
            esm_rec_t *c = malloc(sizeof *c + r->pk_len + 1 + r->data_len + 1);
            if (!c) break;
            c->seq = r->seq;
            c->arrival_ms = r->arrival_ms;
            c->queued_ms = mnow;
            c->pk_len = r->pk_len;
            c->data_len = r->data_len;
            memcpy(c->bytes, r->pk, r->pk_len);
            c->bytes[r->pk_len] = 0;
            memcpy(c->bytes + r->pk_len + 1, r->data, r->data_len);
            c->bytes[r->pk_len + 1 + r->data_len] = 0;
            lane_of[n_keep] = t->n_lanes > 1 ? esm__pk_hash(r->pk, r->pk_len) % (uint32_t)t->n_lanes
                                             : 0;
            keep[n_keep++] = c;
        }
        size_t consumed = rd.n;
        if (rd.n && (!keep || !lane_of || n_keep + n_filtered < rd.n)) {
            /* Out of memory part-way: queue what was copied, re-read the rest later. */
            consumed = 0;
            for (size_t i = 0; i < n_keep; i++) free(keep[i]);
            n_keep = 0;
            n_filtered = 0;
        }
        pthread_mutex_lock(&e->mu);
        t->m->records_in += n_keep;
        t->m->records_filtered += n_filtered;
        pthread_mutex_unlock(&e->mu);

        pthread_mutex_lock(&t->mu);
        int collapse = t->n_lanes > 1 && n_keep && lanes_collapse(t, n_keep);
        for (size_t i = 0; i < n_keep; i++) {
            keep[i]->home = (uint8_t)lane_of[i];
            if (lane_push(&t->lanes[collapse ? 0 : lane_of[i]], keep[i]))
                free(keep[i]); /* see above */
            else if (collapse && lane_of[i]) t->in0[lane_of[i]]++;
        }
        free(keep);
        free(lane_of);
        if (consumed) t->read_pos = rd.next_seq;
        else if (rd.n == 0 && rd.next_seq > t->read_pos) t->read_pos = rd.next_seq; /* trimmed */
        if (closed_end != UINT64_MAX && t->read_pos >= closed_end) t->read_done = 1;
        if (n_keep) pthread_cond_broadcast(&t->cv_lanes);
        uint64_t gen = esm__checkpoint_locked(t, 0); /* filtered records move it too */
        if (gen) {
            pthread_mutex_unlock(&t->mu);
            finish_wait(t, gen);
            pthread_mutex_lock(&t->mu);
        }
        if (consumed && rd.n >= want) continue; /* more may be there: read on */
        if (!consumed && rd.n) {
            struct timespec ts;
            esm__abstime_in(&ts, 100);
            pthread_cond_timedwait(&t->cv_reader, &t->mu, &ts);
            continue;
        }
        /* Caught up: wait for the append hook (1 s fallback). */
        while (!t->poked && !atomic_load(&t->stop) && !t->read_done) {
            struct timespec ts;
            esm__abstime_in(&ts, 1000);
            if (pthread_cond_timedwait(&t->cv_reader, &t->mu, &ts) == ETIMEDOUT) break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    slog_read_free(&rd);
    return NULL;
}
