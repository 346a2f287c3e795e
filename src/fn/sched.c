/* SPDX-License-Identifier: Apache-2.0
 *
 * sched.c -- invocations: admission, queues, concurrency, deadlines, the durable async queue,
 * logs and metrics.
 *
 * An invocation (fn_inv_t) is created by fn_invoke, queued on its function (FIFO), started when
 * the function has a free concurrency slot -- handed to an idle `bootstrap` instance that is
 * parked in /next (child.c) or to a plug-in runtime -- and finished exactly once: by the runtime's
 * answer, the deadline, the instance dying, or the function being deleted / the engine closing.
 * Finishing fills inv->res, and the callback runs after the engine lock is released.
 *
 * Concurrency: a function with a reservation may run `reserved` invocations at once; the others
 * share the account pool (account_concurrency minus all reservations).  A RequestResponse
 * invocation that finds running + queued at the limit is refused (TR_ETHROTTLED) unless it asked
 * to wait (wait_for_slot); Event invocations wait in the durable queue and are promoted into the
 * in-memory queue only when a slot is free.
 *
 * The durable async queue is LMDB database "ev":
 *
 *     key    function name bytes | 0x00 | seq (8 bytes, big-endian)
 *     value  offset 0   u8   version (1)
 *                   1   u8[3] zero
 *                   4   u32  attempt (little-endian; 0 = first run)
 *                   8   i64  not-before, Unix ms (retry delay; 0 = now)
 *                  16   i64  enqueued, Unix ms
 *                  24   char[36] request id
 *                  60   payload bytes (to the end of the value)
 *
 * An event is deleted when it succeeded, was retried async_retries times, or its function was
 * deleted; a failed attempt rewrites attempt and not-before.  A crash re-runs whatever was not
 * deleted (at least once).
 *
 * Logs: DATA/functions/<name>/logs/function.log gets one line per output line and per
 * START/END/REPORT: "<ISO time>\t<request id or ->\t<text>".  Writes are unbuffered write(2)
 * calls under the function's log_mu; the file is rotated to function.log.1 past log_max_bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/fn_int.h"
#include "fn/sandbox.h"

#define EV_HDR 60
static const double duration_bounds[8] = FN_DURATION_BUCKETS;

/* ---- todo ---------------------------------------------------------------------------------- */

void fn__todo_push(void **arr, size_t *n, size_t *cap, size_t elem, const void *item) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        *arr = tr_xrealloc(*arr, nc * elem);
        *cap = nc;
    }
    memcpy((char *)*arr + *n * elem, item, elem);
    (*n)++;
}

static void todo_free(fn__todo_t *t) {
    free(t->done);
    free(t->next);
    free(t->start);
    free(t->spawn);
    free(t->cancel);
    free(t->scratch);
    memset(t, 0, sizeof *t);
}

static void inv_start_plugin(fn_t *fn, fn_inv_t *inv, fn__todo_t *again);

/* Run what was deferred under the lock.  Each step may produce more work (a failed plug-in
 * start); loop until nothing is left. */
void fn__todo_run(fn_t *fn, fn__todo_t *t) {
    while (t->n_done || t->n_next || t->n_start || t->n_spawn || t->n_cancel || t->n_scratch) {
        fn__todo_t cur = *t;
        memset(t, 0, sizeof *t);
        for (size_t i = 0; i < cur.n_scratch; i++) {   /* file system work: never under fn->mu */
            fn_sandbox_scratch_free(cur.scratch[i]);
            free(cur.scratch[i]);
        }
        for (size_t i = 0; i < cur.n_spawn; i++) fn__inst_spawn(fn, cur.spawn[i]);
        for (size_t i = 0; i < cur.n_cancel; i++) {
            fn_inv_t *inv = cur.cancel[i];
            const fn_runtime_t *rt = fn->rts[inv->func->runtime].rt;
            if (rt->cancel) rt->cancel(fn->rts[inv->func->runtime].arg, inv);
            fn__inv_unref(inv);
        }
        for (size_t i = 0; i < cur.n_next; i++) {
            fn__next_call_t *c = &cur.next[i];
            if (c->rc == 0 && c->inv) {
                fn_inv_t *inv = c->inv;
                fn_rt_event_t ev = {
                    .request_id = inv->request_id,
                    .deadline_ms = inv->deadline_ms,
                    .function_arn = inv->func->cfg.arn,
                    .trace_id = inv->trace_id,
                    .client_context = inv->client_context,
                    .payload = inv->payload,
                    .payload_len = inv->payload_len,
                };
                c->cb(c->arg, 0, &ev);
                fn__inv_unref(inv);
            } else {
                c->cb(c->arg, c->rc ? c->rc : TR_ECLOSED, NULL);
                if (c->inv) fn__inv_unref(c->inv);
            }
        }
        for (size_t i = 0; i < cur.n_start; i++) inv_start_plugin(fn, cur.start[i], t);
        for (size_t i = 0; i < cur.n_done; i++) {
            fn_inv_t *inv = cur.done[i];
            inv->cb(inv->cb_arg, &inv->res);
            fn__inv_unref(inv);
        }
        todo_free(&cur);
    }
    todo_free(t);
}

/* ---- invocation objects -------------------------------------------------------------------- */

static fn_inv_t *inv_new(fn_t *fn, fn_func_t *f, const uint8_t *payload, size_t len, int type) {
    fn_inv_t *inv = tr_xcalloc(1, sizeof *inv);
    inv->fn = fn;
    inv->func = f;
    atomic_fetch_add(&f->refs, 1);
    atomic_init(&inv->refs, 1);
    inv->type = type;
    if (!payload || !len) {
        payload = (const uint8_t *)"{}";
        len = 2;
    }
    inv->payload = tr_xmalloc(len + 1);
    memcpy(inv->payload, payload, len);
    inv->payload[len] = 0;
    inv->payload_len = len;
    inv->enqueue_ms = tr_now_ms();
    tr_uuid_v4(inv->request_id);
    return inv;
}

void fn__inv_unref(fn_inv_t *inv) {
    if (atomic_fetch_sub(&inv->refs, 1) != 1) return;
    fn_t *fn = inv->fn;
    fn_func_t *f = inv->func;
    free(inv->payload);
    free(inv->client_context);
    tr_buf_free(&inv->tail);
    tr_buf_free(&inv->res_payload);
    free(inv);
    /* the last reference of a deleted function frees it; it is unreachable by then, so no
     * lock is needed */
    fn__func_unref(fn, f);
}

/* ---- concurrency --------------------------------------------------------------------------- */

static uint32_t pool(fn_t *fn) {
    return fn->o.account_concurrency > fn->reserved_total
               ? (uint32_t)(fn->o.account_concurrency - fn->reserved_total)
               : 0;
}

uint32_t fn__cap(fn_t *fn, fn_func_t *f) {
    if (f->cfg.reserved_concurrency >= 0) return (uint32_t)f->cfg.reserved_concurrency;
    return pool(fn);
}

/* May one more invocation of f start now? */
int fn__can_start(fn_t *fn, fn_func_t *f) {
    if (f->running >= fn__cap(fn, f)) return 0;
    if (f->cfg.reserved_concurrency < 0 && fn->running_unreserved >= pool(fn)) return 0;
    return 1;
}

/* May one more invocation of f be queued (not refused)?  NULL or the throttle reason. */
static const char *admit(fn_t *fn, fn_func_t *f) {
    if (f->cfg.reserved_concurrency >= 0) {
        if (f->running + f->n_queued >= (uint32_t)f->cfg.reserved_concurrency)
            return "ReservedFunctionConcurrentInvocationLimitExceeded";
        return NULL;
    }
    if (fn->running_unreserved + fn->queued_unreserved >= pool(fn))
        return "ConcurrentInvocationLimitExceeded";
    return NULL;
}

static void q_push(fn_t *fn, fn_func_t *f, fn_inv_t *inv) {
    inv->next = NULL;
    if (f->q_tail) f->q_tail->next = inv;
    else f->q_head = inv;
    f->q_tail = inv;
    f->n_queued++;
    inv->q_unreserved = f->cfg.reserved_concurrency < 0;
    if (inv->q_unreserved) fn->queued_unreserved++;
}

fn_inv_t *fn__q_pop(fn_t *fn, fn_func_t *f) {
    fn_inv_t *inv = f->q_head;
    if (!inv) return NULL;
    f->q_head = inv->next;
    if (!f->q_head) f->q_tail = NULL;
    inv->next = NULL;
    f->n_queued--;
    if (inv->q_unreserved && fn->queued_unreserved) fn->queued_unreserved--;
    inv->q_unreserved = 0;
    return inv;
}

/* Mark inv started: counts, deadline, the running list. */
void fn__inv_mark_running(fn_t *fn, fn_inv_t *inv) {
    fn_func_t *f = inv->func;
    inv->state = FN__INV_RUNNING;
    inv->start_ms = tr_now_ms();
    inv->start_ns = tr_mono_ns();
    inv->deadline_ms = inv->start_ms + (int64_t)f->cfg.timeout_s * 1000;
    f->running++;
    fn->running_total++;
    inv->r_unreserved = f->cfg.reserved_concurrency < 0;
    if (inv->r_unreserved) fn->running_unreserved++;
    f->m.concurrent = f->running;
    inv->rnext = fn->running;
    fn->running = inv;
    char line[128];
    snprintf(line, sizeof line, "START RequestId: %s Version: $LATEST", inv->request_id);
    fn__log_line(fn, f, inv, line, strlen(line));
}

static void inv_unmark_running(fn_t *fn, fn_inv_t *inv) {
    fn_func_t *f = inv->func;
    for (fn_inv_t **pp = &fn->running; *pp; pp = &(*pp)->rnext)
        if (*pp == inv) {
            *pp = inv->rnext;
            break;
        }
    inv->rnext = NULL;
    if (f->running) f->running--;
    if (fn->running_total) fn->running_total--;
    if (inv->r_unreserved && fn->running_unreserved) fn->running_unreserved--;
    inv->r_unreserved = 0;
    f->m.concurrent = f->running;
}

/* ---- finishing ----------------------------------------------------------------------------- */

static void tail_append(fn_inv_t *inv, const char *text, size_t len) {
    if (!inv || !inv->want_tail) return;
    tr_buf_append(&inv->tail, text, len);
    tr_buf_append(&inv->tail, "\n", 1);
    if (inv->tail.len > 4 * FN_LOG_TAIL) {
        size_t drop = inv->tail.len - FN_LOG_TAIL;
        memmove(inv->tail.data, inv->tail.data + drop, inv->tail.len - drop);
        inv->tail.len -= drop;
        inv->tail.data[inv->tail.len] = 0;
    }
}

static long max_memory_mb(fn_inv_t *inv) {
    if (!inv->inst || inv->inst->pid <= 0) return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)inv->inst->pid);
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return (kb + 1023) / 1024;
}

/* Finish a started or queued invocation with the function's outcome.  fnerr NULL = success.
 * status_note: extra REPORT field ("Status: timeout"). */
void fn__inv_finish(fn_t *fn, fn_inv_t *inv, const char *fnerr, const uint8_t *payload, size_t len,
                    const char *status_note, fn__todo_t *t) {
    if (inv->state == FN__INV_DONE) return;
    fn_func_t *f = inv->func;
    int was_running = inv->state == FN__INV_RUNNING;
    double ms = was_running ? (tr_mono_ns() - inv->start_ns) / 1e6 : 0;
    if (was_running) {
        long mem = max_memory_mb(inv);
        char line[512];
        snprintf(line, sizeof line, "END RequestId: %s", inv->request_id);
        fn__log_line(fn, f, inv, line, strlen(line));
        int n = snprintf(line, sizeof line,
                         "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %lld ms\t"
                         "Memory Size: %u MB\tMax Memory Used: %ld MB\t",
                         inv->request_id, ms, (long long)(ms < 1 ? 1 : ms + 0.999),
                         f->cfg.memory_mb, mem);
        if (inv->init_ms > 0 && n < (int)sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, "Init Duration: %.2f ms\t",
                          inv->init_ms);
        if (status_note && n < (int)sizeof line)
            snprintf(line + n, sizeof line - (size_t)n, "%s", status_note);
        fn__log_line(fn, f, inv, line, strlen(line));
        inv_unmark_running(fn, inv);
        f->m.invocations++;
        if (fnerr) f->m.errors++;
        f->m.duration_count++;
        f->m.duration_sum_ms += ms;
        for (int i = 0; i < 8; i++)
            if (ms <= duration_bounds[i]) f->m.duration_le[i]++;
    }
    inv->state = FN__INV_DONE;
    if (inv->inst && inv->inst->inv == inv) inv->inst->inv = NULL;
    inv->inst = NULL;
    memset(&inv->res, 0, sizeof inv->res);
    fn_result_t *r = &inv->res;
    r->rc = 0;
    r->status = inv->type == FN_INVOKE_EVENT ? 202 : 200;
    if (fnerr) {
        snprintf(inv->fnerr, sizeof inv->fnerr, "%s", fnerr);
        r->function_error = inv->fnerr;
    }
    tr_buf_reset(&inv->res_payload);
    if (payload && len) tr_buf_append(&inv->res_payload, payload, len);
    else tr_buf_reserve(&inv->res_payload, 1);
    r->payload = (const uint8_t *)inv->res_payload.data;
    r->payload_len = inv->res_payload.len;
    if (inv->want_tail) {
        tr_buf_reserve(&inv->tail, 1);
        size_t n = inv->tail.len, off = n > FN_LOG_TAIL ? n - FN_LOG_TAIL : 0;
        r->log_tail = inv->tail.data + off;
        r->log_tail_len = n - off;
    }
    r->executed_version = "$LATEST";
    memcpy(r->request_id, inv->request_id, sizeof r->request_id);
    r->duration_ms = ms;
    FN__TODO_ADD(t, done, inv);
}

/* Finish with an engine error (not a function error): TR_ETHROTTLED, TR_ENOTFOUND, TR_ECLOSED. */
void fn__inv_fail(fn_t *fn, fn_inv_t *inv, int rc, const char *msg, fn__todo_t *t) {
    if (inv->state == FN__INV_DONE) return;
    if (inv->state == FN__INV_RUNNING) {
        /* it ran: report it as the function failing, with the engine's reason */
        char body[768];
        tr_buf b = TR_BUF_INIT;
        tr_buf_puts(&b, "{\"errorMessage\":");
        snprintf(body, sizeof body, "RequestId: %s Error: %s", inv->request_id, msg);
        tr_buf_json_str(&b, body, strlen(body));
        tr_buf_puts(&b, ",\"errorType\":\"Runtime.Unknown\"}");
        fn__inv_finish(fn, inv, "Unhandled", (const uint8_t *)b.data, b.len, "Status: error", t);
        tr_buf_free(&b);
        inv->res.rc = rc;
        tr_err_set(&inv->res.err, rc, "%s", msg);
        return;
    }
    inv->state = FN__INV_DONE;
    memset(&inv->res, 0, sizeof inv->res);
    inv->res.rc = rc;
    inv->res.executed_version = "$LATEST";
    memcpy(inv->res.request_id, inv->request_id, sizeof inv->res.request_id);
    tr_err_set(&inv->res.err, rc, "%s", msg);
    (void)fn;
    FN__TODO_ADD(t, done, inv);
}

/* ---- the async queue ----------------------------------------------------------------------- */

static size_t ev_key(const char *name, uint64_t seq, uint8_t *out) {
    size_t n = strlen(name);
    memcpy(out, name, n);
    out[n] = 0;
    for (int i = 0; i < 8; i++) out[n + 1 + (size_t)i] = (uint8_t)(seq >> (56 - 8 * i));
    return n + 9;
}

static void ev_hdr(uint8_t *h, uint32_t attempt, int64_t not_before, int64_t enq, const char *id) {
    memset(h, 0, EV_HDR);
    h[0] = 1;
    memcpy(h + 4, &attempt, 4);
    memcpy(h + 8, &not_before, 8);
    memcpy(h + 16, &enq, 8);
    memcpy(h + 24, id, 36);
}

static int ev_write(fn_t *fn, const char *name, uint64_t seq, uint32_t attempt, int64_t nb,
                    int64_t enq, const char *id, const uint8_t *payload, size_t len, tr_err *err) {
    uint8_t key[FN_MAX_NAME + 9];
    MDB_val k = {ev_key(name, seq, key), key}, v = {EV_HDR + len, NULL};
    MDB_txn *txn;
    int rc = mdb_txn_begin(fn->env, NULL, 0, &txn);
    if (!rc) rc = mdb_put(txn, fn->db_ev, &k, &v, MDB_RESERVE);
    if (!rc) {
        ev_hdr(v.mv_data, attempt, nb, enq, id);
        memcpy((uint8_t *)v.mv_data + EV_HDR, payload, len);
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn) mdb_txn_abort(txn);
    if (rc)
        return tr_err_set(err, rc == MDB_MAP_FULL ? TR_ETHROTTLED : TR_EIO,
                          "cannot queue the event: %s", mdb_strerror(rc));
    return 0;
}

static void ev_delete(fn_t *fn, const char *name, uint64_t seq) {
    uint8_t key[FN_MAX_NAME + 9];
    MDB_val k = {ev_key(name, seq, key), key};
    MDB_txn *txn;
    if (mdb_txn_begin(fn->env, NULL, 0, &txn)) return;
    int rc = mdb_del(txn, fn->db_ev, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        tr_warn("fn", "cannot delete event %s/%" PRIu64 ": %s", name, seq, mdb_strerror(rc));
        return;
    }
    rc = mdb_txn_commit(txn);
    if (rc) tr_warn("fn", "cannot delete event %s/%" PRIu64 ": %s", name, seq, mdb_strerror(rc));
}

void fn__ev_drop_all(fn_t *fn, fn_func_t *f, MDB_txn *txn) {
    uint8_t key[FN_MAX_NAME + 9];
    for (fn__ev_t *e = f->ev_head; e; e = e->next) {
        MDB_val k = {ev_key(f->cfg.name, e->seq, key), key};
        mdb_del(txn, fn->db_ev, &k, NULL);
    }
}

static void ev_append(fn_func_t *f, fn__ev_t *e) {
    e->next = NULL;
    if (f->ev_tail) f->ev_tail->next = e;
    else f->ev_head = e;
    f->ev_tail = e;
    f->n_ev++;
    f->m.async_queued = f->n_ev;
}

static void ev_unlink(fn_func_t *f, fn__ev_t *e) {
    fn__ev_t *prev = NULL;
    for (fn__ev_t *p = f->ev_head; p; prev = p, p = p->next)
        if (p == e) {
            if (prev) prev->next = e->next;
            else f->ev_head = e->next;
            if (f->ev_tail == e) f->ev_tail = prev;
            f->n_ev--;
            f->m.async_queued = f->n_ev;
            e->next = NULL;
            return;
        }
}

int fn__ev_load(fn_t *fn, tr_err *err) {
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(fn->env, NULL, 0, &txn);
    if (rc) return tr_err_set(err, TR_EIO, "functions event queue: %s", mdb_strerror(rc));
    rc = mdb_cursor_open(txn, fn->db_ev, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return tr_err_set(err, TR_EIO, "functions event queue: %s", mdb_strerror(rc));
    }
    MDB_val k, v;
    size_t loaded = 0, orphans = 0;
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        const uint8_t *kb = k.mv_data;
        size_t nl = k.mv_size >= 9 ? k.mv_size - 9 : 0;
        char name[FN_MAX_NAME + 1];
        fn_func_t *f = NULL;
        if (k.mv_size >= 10 && nl <= FN_MAX_NAME && kb[nl] == 0 && v.mv_size >= EV_HDR) {
            memcpy(name, kb, nl);
            name[nl] = 0;
            f = fn__func_find(fn, name);
        }
        if (!f) {
            mdb_cursor_del(cur, 0);
            orphans++;
            continue;
        }
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++) seq = (seq << 8) | kb[nl + 1 + (size_t)i];
        fn__ev_t *e = tr_xcalloc(1, sizeof *e);
        e->seq = seq;
        const uint8_t *h = v.mv_data;
        memcpy(&e->attempt, h + 4, 4);
        memcpy(&e->not_before_ms, h + 8, 8);
        memcpy(e->request_id, h + 24, 36);
        e->request_id[36] = 0;
        ev_append(f, e);
        if (seq >= fn->ev_seq) fn->ev_seq = seq + 1;
        loaded++;
    }
    mdb_cursor_close(cur);
    rc = mdb_txn_commit(txn);
    if (rc) return tr_err_set(err, TR_EIO, "functions event queue: %s", mdb_strerror(rc));
    if (loaded || orphans)
        tr_info("fn", "async queue: %zu event(s) to run, %zu orphan(s) dropped", loaded, orphans);
    return 0;
}

/* Completion of an asynchronous run (callback; arg is the inv). */
static void ev_done(void *arg, const fn_result_t *res) {
    fn_inv_t *inv = arg;
    fn_t *fn = inv->fn;
    fn_func_t *f = inv->func;
    fn__ev_t *e = inv->ev;
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    e->in_flight = 0;
    if (!f->deleted && res->rc != TR_ECLOSED) {
        int failed = res->rc != 0 || res->function_error;
        if (!failed || e->attempt >= fn->o.async_retries) {
            if (failed)
                tr_warn("fn", "function %s: event %s failed %u time(s); dropped (%.*s)",
                        f->cfg.name, e->request_id, e->attempt + 1,
                        (int)(res->payload_len > 200 ? 200 : res->payload_len),
                        res->payload ? (const char *)res->payload : "");
            ev_delete(fn, f->cfg.name, e->seq);
            ev_unlink(f, e);
            free(e);
        } else {
            e->attempt++;
            e->not_before_ms = tr_now_ms() + fn->o.async_retry_ms;
            tr_err err;
            if (ev_write(fn, f->cfg.name, e->seq, e->attempt, e->not_before_ms, inv->enqueue_ms,
                         e->request_id, inv->payload, inv->payload_len, &err))
                tr_warn("fn", "function %s: %s", f->cfg.name, err.msg);
            ev_unlink(f, e);
            ev_append(f, e);
        }
    }
    fn__dispatch(fn, f, &t);
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
}

/* Move ready events into the run queue while slots are free. */
static void ev_promote(fn_t *fn, fn_func_t *f) {
    if (!f->ev_head || fn->closing || !fn->started) return;
    int64_t now = tr_now_ms();
    MDB_txn *txn = NULL;
    for (fn__ev_t *e = f->ev_head; e; e = e->next) {
        if (e->in_flight || e->not_before_ms > now) continue;
        if (f->running + f->n_queued >= fn__cap(fn, f) ||
            (f->cfg.reserved_concurrency < 0 &&
             fn->running_unreserved + fn->queued_unreserved >= pool(fn))) {
            if (!e->throttled) {
                e->throttled = 1;
                f->m.throttles++;
            }
            break;
        }
        if (!txn && mdb_txn_begin(fn->env, NULL, MDB_RDONLY, &txn)) return;
        uint8_t key[FN_MAX_NAME + 9];
        MDB_val k = {ev_key(f->cfg.name, e->seq, key), key}, v;
        if (mdb_get(txn, fn->db_ev, &k, &v) || v.mv_size < EV_HDR) continue;
        fn_inv_t *inv = inv_new(fn, f, (const uint8_t *)v.mv_data + EV_HDR, v.mv_size - EV_HDR,
                                FN_INVOKE_EVENT);
        memcpy(inv->request_id, e->request_id, sizeof inv->request_id);
        memcpy(&inv->enqueue_ms, (const uint8_t *)v.mv_data + 16, 8);
        snprintf(inv->trace_id, sizeof inv->trace_id, "Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0",
                 (unsigned long long)(now / 1000), e->request_id + 9, e->request_id + 19);
        inv->ev = e;
        inv->cb = ev_done;
        inv->cb_arg = inv;
        e->in_flight = 1;
        q_push(fn, f, inv);
    }
    if (txn) mdb_txn_abort(txn);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void inv_start_plugin(fn_t *fn, fn_inv_t *inv, fn__todo_t *again) {
    fn_func_t *f = inv->func;
    fn__rt_t *r = &fn->rts[f->runtime];
    fn_inv_info_t info = {
        .request_id = inv->request_id,
        .config = &f->cfg,
        .deadline_ms = inv->deadline_ms,
        .payload = inv->payload,
        .payload_len = inv->payload_len,
        .native = inv->native,
        .trace_id = inv->trace_id,
        .client_context = inv->client_context,
    };
    tr_err err;
    tr_err_clear(&err);
    /* f->cfg is only replaced under fn->mu by update calls, which first retire everything that
     * runs; the runtime must copy what it keeps beyond this call. */
    int rc = r->rt->invoke(r->arg, inv, &info, &err);
    if (rc) {
        pthread_mutex_lock(&fn->mu);
        fn__inv_fail(fn, inv, rc, err.msg[0] ? err.msg : "the runtime could not start", again);
        fn__inv_unref(inv);   /* the runtime's reference: it will not complete */
        fn__dispatch(fn, f, again);
        pthread_mutex_unlock(&fn->mu);
    }
}

void fn__dispatch(fn_t *fn, fn_func_t *f, fn__todo_t *t) {
    if (f->deleted || fn->closing) return;
    ev_promote(fn, f);
    if (!fn->started) return;
    while (f->q_head && fn__can_start(fn, f)) {
        if (f->runtime >= 0) {
            fn_inv_t *inv = fn__q_pop(fn, f);
            inv->plugin = 1;
            atomic_fetch_add(&inv->refs, 1);   /* the runtime's, until fn_inv_complete */
            fn__inv_mark_running(fn, inv);
            FN__TODO_ADD(t, start, inv);
            continue;
        }
        fn_inst_t *idle = NULL;
        for (fn_inst_t *in = fn->insts; in; in = in->next)
            if (in->func == f && in->state == FN__INST_IDLE && !in->retire && in->gen == f->gen) {
                idle = in;
                break;
            }
        if (!idle) break;
        fn__inst_give(fn, idle, fn__q_pop(fn, f), t);
    }
    if (f->runtime >= 0 || !f->q_head) return;
    /* provided: start instances for what is queued beyond those coming back */
    uint32_t avail = 0, live = 0;
    for (fn_inst_t *in = fn->insts; in; in = in->next) {
        if (in->func != f || in->state == FN__INST_DEAD) continue;
        live++;
        if (!in->retire && in->gen == f->gen &&
            (in->state == FN__INST_SPAWNING || in->state == FN__INST_INIT ||
             in->state == FN__INST_READY))
            avail++;
    }
    uint32_t cap = fn__cap(fn, f);
    uint32_t want = f->n_queued > avail ? f->n_queued - avail : 0;
    while (want && live < cap) {
        fn_inst_t *in = fn__inst_new(fn, f);
        FN__TODO_ADD(t, spawn, in);
        want--;
        live++;
    }
}

/* Fail or kill everything of f.  rc 0: retire (code/config change): idle and starting
 * instances go now, busy ones after their invocation; queued invocations stay.  rc < 0
 * (delete, close): every queued and running invocation fails with rc. */
void fn__func_retire_all(fn_t *fn, fn_func_t *f, int rc, const char *why, fn__todo_t *t) {
    for (fn_inst_t *in = fn->insts; in; in = in->next) {
        if (in->func != f || in->state == FN__INST_DEAD) continue;
        in->retire = 1;
        if (rc || in->state != FN__INST_BUSY) {
            if (in->inv) fn__inv_fail(fn, in->inv, rc ? rc : TR_ECLOSED, why, t);
            fn__inst_kill(fn, in, why, t);
        }
    }
    if (rc) {
        for (fn_inv_t *inv = fn->running, *nx; inv; inv = nx) {
            nx = inv->rnext;
            if (inv->func != f) continue;
            if (inv->plugin && !inv->cancelled) {
                inv->cancelled = 1;
                atomic_fetch_add(&inv->refs, 1);
                FN__TODO_ADD(t, cancel, inv);
            }
            fn__inv_fail(fn, inv, rc, why, t);
        }
        fn_inv_t *inv;
        while ((inv = fn__q_pop(fn, f))) fn__inv_fail(fn, inv, rc, why, t);
    } else {
        fn__dispatch(fn, f, t);
    }
}

/* ---- timers -------------------------------------------------------------------------------- */

int64_t fn__next_deadline(fn_t *fn, int64_t now) {
    int64_t next = now + 60000;
    for (size_t i = 0; i < fn->n_grave; i++)
        if (fn->grave[i].at < next) next = fn->grave[i].at;
    for (fn_inv_t *inv = fn->running; inv; inv = inv->rnext)
        if (inv->deadline_ms < next) next = inv->deadline_ms;
    for (fn_inst_t *in = fn->insts; in; in = in->next) {
        if (in->state == FN__INST_INIT && in->init_deadline_ms < next) next = in->init_deadline_ms;
        if (in->state == FN__INST_IDLE && in->idle_since_ms + fn->o.idle_instance_ms < next)
            next = in->idle_since_ms + fn->o.idle_instance_ms;
    }
    for (fn_func_t *f = fn->funcs; f; f = f->next)
        for (fn__ev_t *e = f->ev_head; e; e = e->next)
            if (!e->in_flight && e->not_before_ms > now && e->not_before_ms < next)
                next = e->not_before_ms;
    return next;
}

void fn__timers(fn_t *fn, int64_t now, fn__todo_t *t) {
    for (fn_inv_t *inv = fn->running, *nx; inv; inv = nx) {
        nx = inv->rnext;
        if (inv->deadline_ms > now) continue;
        fn_func_t *f = inv->func;
        char ts[40], msg[256];
        fn__iso_time(now, ts, sizeof ts, 0);
        snprintf(msg, sizeof msg, "%s %s Task timed out after %u.00 seconds", ts, inv->request_id,
                 f->cfg.timeout_s);
        fn__log_line(fn, f, inv, msg, strlen(msg));
        tr_buf b = TR_BUF_INIT;
        tr_buf_puts(&b, "{\"errorMessage\":");
        tr_buf_json_str(&b, msg, strlen(msg));
        tr_buf_puts(&b, ",\"errorType\":\"Sandbox.Timedout\"}");
        fn_inst_t *in = inv->inst;
        if (inv->plugin && !inv->cancelled) {
            inv->cancelled = 1;
            atomic_fetch_add(&inv->refs, 1);
            FN__TODO_ADD(t, cancel, inv);
        }
        fn__inv_finish(fn, inv, "Unhandled", (const uint8_t *)b.data, b.len, "Status: timeout", t);
        tr_buf_free(&b);
        if (in) fn__inst_kill(fn, in, "timeout", t);
        fn__dispatch(fn, f, t);
    }
    for (fn_inst_t *in = fn->insts; in; in = in->next) {
        if (in->state == FN__INST_INIT && in->init_deadline_ms <= now)
            fn__inst_kill(fn, in, NULL, t);   /* NULL: counts as an init failure */
        else if (in->state == FN__INST_IDLE && in->idle_since_ms + fn->o.idle_instance_ms <= now)
            fn__inst_kill(fn, in, "idle", t);
    }
    for (fn_func_t *f = fn->funcs; f; f = f->next)
        if (f->ev_head) fn__dispatch(fn, f, t);
}

/* ---- fn_invoke ----------------------------------------------------------------------------- */

int fn_invoke(fn_t *fn, const fn_invoke_req_t *req, fn_invoke_cb cb, void *arg, tr_err *err) {
    if (!fn || !req || !req->name || !cb)
        return tr_err_set(err, TR_EINVAL, "fn_invoke: request, name and callback are required");
    if (req->type < FN_INVOKE_SYNC || req->type > FN_INVOKE_DRYRUN)
        return tr_err_set(err, TR_EINVAL, "fn_invoke: unknown invocation type %d", req->type);
    if (req->qualifier && *req->qualifier && strcmp(req->qualifier, "$LATEST")) {
        return tr_err_set(err, TR_ENOTFOUND,
                          "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s "
                          "(only $LATEST exists: Tributary does not publish versions or aliases)",
                          fn->region, req->name, req->qualifier);
    }
    size_t max = req->type == FN_INVOKE_EVENT ? FN_MAX_ASYNC_PAYLOAD : FN_MAX_SYNC_PAYLOAD;
    if (req->payload_len > max)
        return tr_err_set(err, TR_ETOOBIG,
                          "%zu byte payload is too large for the %s invocation type (limit %zu "
                          "bytes)",
                          req->payload_len,
                          req->type == FN_INVOKE_EVENT ? "Event" : "RequestResponse", max);
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn->closing ? NULL : fn__func_find(fn, req->name);
    if (!f) {
        int rc = fn->closing ? tr_err_set(err, TR_ECLOSED, "the server is shutting down")
                             : tr_err_set(err, TR_ENOTFOUND,
                                          "Function not found: arn:aws:lambda:%s:000000000000:"
                                          "function:%s",
                                          fn->region, req->name);
        pthread_mutex_unlock(&fn->mu);
        return rc;
    }
    if (req->type == FN_INVOKE_DRYRUN) {
        pthread_mutex_unlock(&fn->mu);
        fn_result_t r;
        memset(&r, 0, sizeof r);
        r.status = 204;
        r.executed_version = "$LATEST";
        tr_uuid_v4(r.request_id);
        cb(arg, &r);
        return 0;
    }
    fn_inv_t *inv = inv_new(fn, f, req->payload, req->payload_len, req->type);
    inv->want_tail = req->log_tail;
    inv->wait_for_slot = req->wait_for_slot;
    inv->native = req->native;
    inv->cb = cb;
    inv->cb_arg = arg;
    if (req->client_context) inv->client_context = strdup(req->client_context);
    if (req->trace_id && *req->trace_id)
        snprintf(inv->trace_id, sizeof inv->trace_id, "%s", req->trace_id);
    else
        snprintf(inv->trace_id, sizeof inv->trace_id, "Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0",
                 (unsigned long long)(inv->enqueue_ms / 1000), inv->request_id + 9,
                 inv->request_id + 19);
    if (req->type == FN_INVOKE_EVENT) {
        uint64_t seq = fn->ev_seq++;
        char name[FN_MAX_NAME + 1];
        snprintf(name, sizeof name, "%s", f->cfg.name);
        pthread_mutex_unlock(&fn->mu);
        tr_err e2;
        tr_err_clear(&e2);
        int rc = ev_write(fn, name, seq, 0, 0, inv->enqueue_ms, inv->request_id, inv->payload,
                          inv->payload_len, &e2);
        pthread_mutex_lock(&fn->mu);
        if (rc) {
            inv->state = FN__INV_DONE;
            memset(&inv->res, 0, sizeof inv->res);
            inv->res.rc = rc;
            inv->res.err = e2;
            if (rc == TR_ETHROTTLED) inv->res.throttle_reason = "CallerRateLimitExceeded";
            FN__TODO_ADD(&t, done, inv);
        } else {
            if (!f->deleted) {
                fn__ev_t *e = tr_xcalloc(1, sizeof *e);
                e->seq = seq;
                memcpy(e->request_id, inv->request_id, sizeof e->request_id);
                ev_append(f, e);
            }
            inv->state = FN__INV_DONE;
            memset(&inv->res, 0, sizeof inv->res);
            inv->res.status = 202;
            inv->res.executed_version = "$LATEST";
            memcpy(inv->res.request_id, inv->request_id, sizeof inv->res.request_id);
            FN__TODO_ADD(&t, done, inv);
            fn__dispatch(fn, f, &t);
        }
        pthread_mutex_unlock(&fn->mu);
        fn__sup_wake(fn);
        fn__todo_run(fn, &t);
        return 0;
    }
    const char *why = req->wait_for_slot ? NULL : admit(fn, f);
    if (why) {
        f->m.throttles++;
        inv->state = FN__INV_DONE;
        memset(&inv->res, 0, sizeof inv->res);
        inv->res.rc = TR_ETHROTTLED;
        inv->res.throttle_reason = why;
        memcpy(inv->res.request_id, inv->request_id, sizeof inv->res.request_id);
        tr_err_set(&inv->res.err, TR_ETHROTTLED, "Rate Exceeded.");
        FN__TODO_ADD(&t, done, inv);
    } else {
        q_push(fn, f, inv);
        fn__dispatch(fn, f, &t);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
    return 0;
}

/* ---- blocking invoke ----------------------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    fn_result_owned_t *out;
} waiter_t;

static void wait_cb(void *arg, const fn_result_t *r) {
    waiter_t *w = arg;
    fn_result_owned_t *o = w->out;
    o->r = *r;
    tr_buf_append(&o->payload_buf, r->payload ? (const char *)r->payload : "", r->payload_len);
    o->r.payload = (const uint8_t *)o->payload_buf.data;
    if (r->log_tail) {
        tr_buf_append(&o->tail_buf, r->log_tail, r->log_tail_len);
        o->r.log_tail = o->tail_buf.data;
    }
    if (r->function_error) o->r.function_error = o->function_error_copy = strdup(r->function_error);
    if (r->throttle_reason)
        o->r.throttle_reason = o->throttle_reason_copy = strdup(r->throttle_reason);
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int fn_invoke_wait(fn_t *fn, const fn_invoke_req_t *req, fn_result_owned_t *out) {
    memset(out, 0, sizeof *out);
    waiter_t w = {.done = 0, .out = out};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = fn_invoke(fn, req, wait_cb, &w, &out->r.err);
    if (rc) {
        out->r.rc = rc;
    } else {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return out->r.rc;
}

void fn_result_free(fn_result_owned_t *o) {
    if (!o) return;
    tr_buf_free(&o->payload_buf);
    tr_buf_free(&o->tail_buf);
    free(o->function_error_copy);
    free(o->throttle_reason_copy);
    memset(o, 0, sizeof *o);
}

/* ---- plug-in runtime completion ------------------------------------------------------------ */

void fn_inv_log(fn_inv_t *inv, const char *text, size_t len) {
    fn_t *fn = inv->fn;
    pthread_mutex_lock(&fn->mu);
    if (inv->state == FN__INV_RUNNING) {
        const char *p = text, *end = text + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            fn__log_line(fn, inv->func, inv, p, n);
            p += n + (nl ? 1 : 0);
        }
    }
    pthread_mutex_unlock(&fn->mu);
}

void fn_inv_complete(fn_inv_t *inv, const char *function_error, const char *error_message,
                     const uint8_t *payload, size_t len) {
    fn_t *fn = inv->fn;
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    if (inv->state == FN__INV_RUNNING && !inv->cancelled) {
        tr_buf b = TR_BUF_INIT;
        if (function_error && !payload) {
            tr_buf_puts(&b, "{\"errorMessage\":");
            const char *m = error_message ? error_message : function_error;
            tr_buf_json_str(&b, m, strlen(m));
            tr_buf_puts(&b, ",\"errorType\":");
            tr_buf_json_str(&b, function_error, strlen(function_error));
            tr_buf_puts(&b, "}");
            payload = (const uint8_t *)b.data;
            len = b.len;
        }
        if (!function_error && len > FN_MAX_SYNC_PAYLOAD) {
            tr_buf_reset(&b);
            tr_buf_printf(
                &b,
                "{\"errorMessage\":\"Response payload size (%zu bytes) exceeded maximum "
                "allowed payload size (%d bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}",
                len, FN_MAX_SYNC_PAYLOAD);
            fn__inv_finish(fn, inv, "Unhandled", (const uint8_t *)b.data, b.len, NULL, &t);
        } else {
            fn__inv_finish(fn, inv, function_error ? "Unhandled" : NULL, payload, len,
                           function_error ? "Status: error" : NULL, &t);
        }
        tr_buf_free(&b);
        fn__dispatch(fn, inv->func, &t);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    fn__inv_unref(inv);   /* the runtime's reference */
}

/* ---- logs ---------------------------------------------------------------------------------- */

void fn__log_open(fn_t *fn, fn_func_t *f) {
    char dir[FN__PATH], path[FN__PATH + 32];
    snprintf(dir, sizeof dir, "%s/%s/logs", fn->root, f->cfg.name);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/function.log", dir);
    pthread_mutex_lock(&f->log_mu);
    if (f->log_fd < 0) {
        f->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        struct stat st;
        f->log_size = f->log_fd >= 0 && fstat(f->log_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (f->log_fd < 0) tr_warn("fn", "cannot open %s: %s", path, strerror(errno));
    }
    pthread_mutex_unlock(&f->log_mu);
}

void fn__log_close(fn_func_t *f) {
    if (f->log_fd >= 0) close(f->log_fd);
    f->log_fd = -1;
}

void fn__log_line(fn_t *fn, fn_func_t *f, fn_inv_t *inv, const char *text, size_t len) {
    tail_append(inv, text, len);
    if (f->deleted) return;
    if (f->log_fd < 0) fn__log_open(fn, f);
    char head[96];
    fn__iso_time(tr_now_ms(), head, 40, 0);
    size_t hl = strlen(head);
    snprintf(head + hl, sizeof head - hl, "\t%s\t", inv ? inv->request_id : "-");
    hl = strlen(head);
    tr_buf b = TR_BUF_INIT;
    tr_buf_append(&b, head, hl);
    tr_buf_append(&b, text, len);
    tr_buf_append(&b, "\n", 1);
    pthread_mutex_lock(&f->log_mu);
    if (f->log_fd >= 0) {
        if (f->log_size + b.len > fn->o.log_max_bytes) {
            char path[FN__PATH + 32], old[FN__PATH + 40];
            snprintf(path, sizeof path, "%s/%s/logs/function.log", fn->root, f->cfg.name);
            snprintf(old, sizeof old, "%s.1", path);
            rename(path, old);
            close(f->log_fd);
            f->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            f->log_size = 0;
        }
        if (f->log_fd >= 0 && write(f->log_fd, b.data, b.len) == (ssize_t)b.len)
            f->log_size += b.len;
    }
    pthread_mutex_unlock(&f->log_mu);
    tr_buf_free(&b);
}

/* ---- metrics ------------------------------------------------------------------------------- */

int fn_metrics_list(fn_t *fn, fn_metrics_t **out, size_t *n) {
    pthread_mutex_lock(&fn->mu);
    size_t k = 0;
    for (fn_func_t *f = fn->funcs; f; f = f->next) k++;
    fn_metrics_t *m = tr_xcalloc(k ? k : 1, sizeof *m);
    k = 0;
    for (fn_func_t *f = fn->funcs; f; f = f->next) {
        m[k] = f->m;
        m[k].concurrent = f->running;
        m[k].instances = f->n_insts;
        m[k].async_queued = f->n_ev;
        k++;
    }
    pthread_mutex_unlock(&fn->mu);
    *out = m;
    *n = k;
    return 0;
}

void fn_metrics_prometheus(fn_t *fn, tr_buf *b) {
    fn_metrics_t *m;
    size_t n;
    fn_metrics_list(fn, &m, &n);
    static const struct {
        const char *name, *type, *help;
        int field;
    } fam[] = {
        {"tributary_lambda_invocations_total", "counter", "Invocations that ran (Invocations)", 0},
        {"tributary_lambda_errors_total", "counter",
         "Invocations that ended in a function error, timeout or crash (Errors)", 1},
        {"tributary_lambda_throttles_total", "counter",
         "Invocations refused or delayed by a concurrency limit (Throttles)", 2},
        {"tributary_lambda_concurrent_executions", "gauge",
         "Invocations running now (ConcurrentExecutions)", 3},
        {"tributary_lambda_instances", "gauge", "Live execution environments (warm or busy)", 4},
        {"tributary_lambda_async_queue_events", "gauge",
         "Event invocations waiting in the durable queue", 5},
    };
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        tr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[i].name, fam[i].help, fam[i].name,
                      fam[i].type);
        for (size_t k = 0; k < n; k++) {
            uint64_t v = 0;
            switch (fam[i].field) {
            case 0: v = m[k].invocations; break;
            case 1: v = m[k].errors; break;
            case 2: v = m[k].throttles; break;
            case 3: v = m[k].concurrent; break;
            case 4: v = m[k].instances; break;
            default: v = m[k].async_queued; break;
            }
            tr_buf_printf(b, "%s{function_name=\"%s\"} %" PRIu64 "\n", fam[i].name, m[k].name, v);
        }
    }
    const char *h = "tributary_lambda_duration_milliseconds";
    tr_buf_printf(b, "# HELP %s Run time of invocations (Duration)\n# TYPE %s histogram\n", h, h);
    for (size_t k = 0; k < n; k++) {
        for (int i = 0; i < 8; i++)
            tr_buf_printf(b, "%s_bucket{function_name=\"%s\",le=\"%g\"} %" PRIu64 "\n", h,
                          m[k].name, duration_bounds[i], m[k].duration_le[i]);
        tr_buf_printf(b, "%s_bucket{function_name=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", h, m[k].name,
                      m[k].duration_count);
        tr_buf_printf(b, "%s_sum{function_name=\"%s\"} %.3f\n", h, m[k].name, m[k].duration_sum_ms);
        tr_buf_printf(b, "%s_count{function_name=\"%s\"} %" PRIu64 "\n", h, m[k].name,
                      m[k].duration_count);
    }
    free(m);
}
