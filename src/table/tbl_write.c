/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_write.c -- the table engine's data writes: submission (checks, key encoding, admission
 * against the budget, queue) on any thread, and the writer thread that applies queued jobs in
 * group-committed LMDB transactions (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
 * TransactWriteItems with tokens).
 *
 * The writer loop also runs control jobs (tbl_meta.c) and background steps (tbl_bg.c) between
 * batches.  Keys and values are built by tbl_key.c; the name map and counters live in tbl.c,
 * snapshots in tbl_meta.c.
 */
#include "table/tbl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/buf.h"
#include "core/tlog.h"
#include "table/tbl_int.h"

#define SUB "tbl"

/* ---- applying writes (writer thread) ------------------------------------------------------- */

void tbl__op_clear(tb_op_t *op) {
    json_decref(op->old);
    json_decref(op->neu);
    if (op->text_owned) free(op->text);
    memset(op, 0, sizeof *op);
}

/* Read the old item, evaluate the condition, compute the new item.  Returns 0 (w->rc tells
 * whether the write goes on) or a hard LMDB failure (db->werr). */
static int op_prepare(tbl_t *db, MDB_txn *txn, tbl_write_t *w, tb_wx_t *x, tb_op_t *op) {
    memset(op, 0, sizeof *op);
    tb_table_t *t = op->tab = tbl__tab_current(db, x->tab);
    if (!t) {
        w->rc = tr_err_set(&w->err, TR_ENOTFOUND, NOT_FOUND);
        return 0;
    }
    if (x->bad_key) {   /* the submit-time check's message, as the cancellation reason */
        const json_t *h, *r;
        w->rc = w->op == TBL_OP_PUT ? tbl__item_key_check(t, w->item, &h, &r, &w->err)
                                    : tbl__key_check(t, w->key, &h, &r, &w->err);
        if (!w->rc) w->rc = tr_err_set(&w->err, TR_EVALIDATION, KEY_SCHEMA);
        return 0;
    }
    MDB_val k = {x->key.n, x->key.b}, v;
    int rc = mdb_get(txn, db->db_items, &k, &v);
    if (rc && rc != MDB_NOTFOUND) return tbl__mdb_fail(&db->werr, rc, "reading an item");
    if (!rc) {
        if (!val_ok(&v)) {
            w->rc = tr_err_set(&w->err, TR_ECORRUPT, "stored item of table %s is corrupt", t->name);
            return 0;
        }
        const uint8_t *p = v.mv_data;
        op->exists = 1;
        op->old_size = val_size(&v);
        op->old_has_ttl = p[1] & 1;
        op->old_ttl = (int64_t)get_le64(p + 8);
        int rv = w->return_values;
        if (w->cond || rv == TBL_RV_ALL_OLD || rv == TBL_RV_UPDATED_OLD || w->op == TBL_OP_UPDATE ||
            t->n_idx) {
            op->old = tbl__val_parse(&v);
            if (!op->old) {
                w->rc = tr_err_set(&w->err, TR_ECORRUPT, "stored item of table %s is corrupt",
                                   t->name);
                return 0;
            }
        }
    }
    if (w->cond) {
        int ok = 0;
        rc = tbl_expr_eval(w->cond, op->old, &ok, &w->err);
        if (rc) {
            w->rc = rc;
            return 0;
        }
        if (!ok) {
            w->rc = tr_err_set(&w->err, TR_ECONDITION, "The conditional request failed");
            if (w->return_old_on_fail && op->old) w->old_item = json_incref(op->old);
            return 0;
        }
    }
    switch (w->op) {
    case TBL_OP_PUT:
        op->neu = json_incref(w->item);
        op->text = x->text;
        op->text_n = x->text_n;
        op->new_size = x->size;
        op->act = A_PUT;
        break;
    case TBL_OP_UPDATE: {
        json_t *neu = NULL;
        if (!op->exists && w->update && !tbl_expr_update_creates(w->update)) {
            /* REMOVE / DELETE only, on a missing item: DynamoDB creates nothing, and ignores
               paths into the missing item (REMOVE x.y); updating a key is still refused */
            if ((rc = tbl_expr_update_keys_ok(w->update, w->key, &w->err))) {
                w->rc = rc;
                return 0;
            }
            op->act = A_NONE;
            break;
        }
        if (w->update) {
            /* the old item is this write's own fresh parse: when nothing needs it afterwards
               (index upkeep, ReturnValues of the old item), update it in place, not a copy */
            int rv = w->return_values,
                keep_old = t->n_idx || rv == TBL_RV_ALL_OLD || rv == TBL_RV_UPDATED_OLD;
            rc = keep_old || !op->old
                     ? tbl_expr_update(w->update, op->old, w->key, &neu, &w->err)
                     : tbl_expr_update_inplace(w->update, op->old, w->key, &neu, &w->err);
            if (rc) {
                w->rc = rc;
                return 0;
            }
            if (!keep_old && op->old) { /* op->old is the new item now: forget it as the old */
                json_decref(op->old);
                op->old = NULL;
            }
        } else {
            neu = op->old ? json_incref(op->old) : json_deep_copy(w->key);
        }
        op->neu = neu;
        size_t sz = tbl_item_size(neu);
        if (sz > TBL_MAX_ITEM_BYTES) {
            w->rc = tr_err_set(&w->err, TR_EVALIDATION,
                               "Item size to update has exceeded the maximum allowed size");
            return 0;
        }
        if ((rc = tbl_item_depth_check(neu, &w->err))) {
            w->rc = rc;
            return 0;
        }
        op->text = tbl__dump(neu, &op->text_n);
        op->text_owned = 1;
        op->new_size = (uint32_t)sz;
        op->act = A_PUT;
        break;
    }
    case TBL_OP_DELETE: op->act = op->exists ? A_DEL : A_NONE; break;
    default: op->act = A_NONE; break;
    }
    if (op->act == A_PUT && t->n_idx) {
        rc = tbl__index_check(t, op->neu, IX_TYPE, &w->err);
        if (!rc) {
            rc = tbl__index_check(t, op->neu, IX_EMPTY | (w->op == TBL_OP_UPDATE ? IX_UPDATE : 0),
                                  &w->err);
            op->refuse_all = rc != 0;
        }
        if (rc) {
            w->rc = rc;
            return 0;
        }
    }
    if (op->act == A_PUT && t->ttl_enabled)
        op->new_has_ttl = tbl__ttl_of(op->neu, t->ttl_attr, &op->new_ttl);
    return 0;
}

static int index_apply(tbl_t *db, MDB_txn *txn, tb_table_t *t, const tb_index_t *ix,
                       const tb_wx_t *x, const tb_op_t *op) {
    tb_key_t ko, kn;
    int has_o = op->old && tbl__index_key(ix, op->old, x->pk, x->pk_n, t, &ko) == 1;
    int has_n = op->act == A_PUT && tbl__index_key(ix, op->neu, x->pk, x->pk_n, t, &kn) == 1;
    uint8_t s = ix->space;
    int rc;
    if (has_o) {
        MDB_val k = {ko.n, ko.b}, v;
        rc = mdb_get(txn, db->db_items, &k, &v);
        if (!rc) {
            uint32_t osz = val_ok(&v) ? val_size(&v) : 0;
            t->st_items[s]--;
            t->st_bytes[s] -= osz;
            if (!has_n || ko.n != kn.n || memcmp(ko.b, kn.b, ko.n)) {
                rc = mdb_del(txn, db->db_items, &k, NULL);
                if (rc) return rc;
            }
        } else if (rc != MDB_NOTFOUND) {
            return rc;
        }
    }
    if (has_n) {
        json_t *pj = NULL;
        const char *text = op->text;
        size_t tn = op->text_n;
        uint32_t sz = op->new_size;
        char *owned = NULL;
        if (ix->proj != TBL_PROJ_ALL) {
            pj = tbl__index_project(t, ix, op->neu);
            owned = tbl__dump(pj, &tn);
            text = owned;
            sz = (uint32_t)tbl_item_size(pj);
            json_decref(pj);
        }
        size_t fn = kn.n == TBL__FOLD_KEEP + 32 ? tbl__index_full(ix, op->neu, x->pk, x->pk_n, t)
                                                : 0;
        rc = tbl__val_put(txn, db->db_items, &kn, tbl__scratch()->full, fn, sz, 0, 0, text, tn, 0);
        if (!rc) {
            t->st_items[s]++;
            t->st_bytes[s] += sz;
        }
        free(owned);
        if (rc) return rc;
    }
    return 0;
}

/* Write the prepared change: item, index entries, TTL entry, counters.  LMDB rc on failure. */
int tbl__op_mutate(tbl_t *db, MDB_txn *txn, const tb_wx_t *x, tb_op_t *op) {
    tb_table_t *t = op->tab;
    MDB_val k = {x->key.n, (void *)x->key.b};
    int rc;
    if (op->act == A_PUT) {
        size_t fn = x->key.n == TBL__FOLD_KEEP + 32
                        ? tbl__key_full_pk(t, x->pk, x->pk_n, tbl__pk_hlen(x->pk, x->pk_n))
                        : 0;
        rc = tbl__val_put(txn, db->db_items, &x->key, tbl__scratch()->full, fn, op->new_size,
                          op->new_has_ttl, op->new_ttl, op->text, op->text_n, 0);
        if (rc) return rc;
        if (!op->exists) t->st_items[0]++;
        t->st_bytes[0] += op->new_size;
        t->st_bytes[0] -= op->exists ? op->old_size : 0;
    } else if (op->act == A_DEL) {
        rc = mdb_del(txn, db->db_items, &k, NULL);
        if (rc) return rc;
        t->st_items[0]--;
        t->st_bytes[0] -= op->old_size;
    } else {
        return 0;
    }
    tbl__mark_dirty(db, t);
    for (size_t i = 0; i < t->n_idx; i++) {
        rc = index_apply(db, txn, t, &t->idx[i], x, op);
        if (rc) return rc;
    }
    if (t->ttl_enabled) {
        int old_t = op->exists && op->old_has_ttl;
        int new_t = op->act == A_PUT && op->new_has_ttl;
        int same = old_t && new_t && op->old_ttl == op->new_ttl;
        tb_key_t tk;
        if (old_t && !same) {
            tbl__ttl_key(t->id, op->old_ttl, x->pk, x->pk_n, &tk);
            MDB_val kk = {tk.n, tk.b};
            rc = mdb_del(txn, db->db_items, &kk, NULL);
            if (rc && rc != MDB_NOTFOUND) return rc;
        }
        if (new_t && !same) {
            tbl__ttl_key(t->id, op->new_ttl, x->pk, x->pk_n, &tk);
            MDB_val kk = {tk.n, tk.b}, vv = {x->key.n, (void *)x->key.b};
            rc = mdb_put(txn, db->db_items, &kk, &vv, 0);
            if (rc) return rc;
        }
    }
    return 0;
}

/* Attributes of item named in touched (array of strings), or NULL when none. */
static void op_outputs(tbl_write_t *w, const tb_op_t *op) {
    w->old_size = op->exists ? op->old_size : 0;
    w->new_size = op->act == A_PUT ? op->new_size : op->act == A_NONE ? w->old_size : 0;
    switch (w->return_values) {
    case TBL_RV_ALL_OLD: w->attrs = op->old ? json_incref(op->old) : NULL; break;
    case TBL_RV_ALL_NEW: w->attrs = op->act == A_PUT ? json_incref(op->neu) : NULL; break;
    case TBL_RV_UPDATED_OLD:
    case TBL_RV_UPDATED_NEW:
        if (w->op != TBL_OP_UPDATE || !w->update) break;
        w->attrs = tbl_expr_update_project(w->update, w->return_values == TBL_RV_UPDATED_OLD
                                                          ? op->old
                                                          : op->neu);
        break;
    default: break;
    }
    if (w->attrs && json_object_size(w->attrs) == 0) {
        json_decref(w->attrs);
        w->attrs = NULL;
    }
}

/* The submit-time checks again, for the whole job, before any of its writes is applied: the
 * table may have been deleted, or have gained an index, since the job was queued.  When one
 * write fails them, none is written (DynamoDB refuses a BatchWriteItem with one invalid item as a
 * whole): every write gets that write's error.  Returns 1 when the job must not run. */
static int job_precheck(tbl_t *db, tb_job_t *j) {
    tr_err e = {0, ""};
    int rc = 0;
    for (size_t i = 0; i < j->n && !rc; i++) {
        const tbl_write_t *w = &j->w[i];
        tb_table_t *t = tbl__tab_current(db, j->x[i].tab);
        if (!t) rc = tr_err_set(&e, TR_ENOTFOUND, NOT_FOUND);
        else if (w->op == TBL_OP_PUT && t->n_idx) rc = tbl__index_check(t, w->item, IX_ALL, &e);
    }
    if (!rc) return 0;
    for (size_t i = 0; i < j->n; i++) j->w[i].rc = tr_err_set(&j->w[i].err, rc, "%s", e.msg);
    j->rc = rc;
    return 1;
}

static int job_writes(tbl_t *db, MDB_txn *txn, tb_job_t *j) {
    if (job_precheck(db, j)) return 0;
    for (size_t i = 0; i < j->n; i++) {
        tbl_write_t *w = &j->w[i];
        tb_op_t op;
        int rc = op_prepare(db, txn, w, &j->x[i], &op);
        if (!rc && !w->rc) {
            rc = tbl__op_mutate(db, txn, &j->x[i], &op);
            if (rc) rc = tbl__mdb_fail(&db->werr, rc, "writing an item");
            else op_outputs(w, &op);
        }
        tbl__op_clear(&op);
        if (rc) return rc;
        if (w->rc && !j->rc) j->rc = w->rc;
    }
    return 0;
}

static const char *reason_name(int rc) {
    switch (rc) {
    case 0: return "None";
    case TR_ECONDITION: return "ConditionalCheckFailed";
    case TR_EVALIDATION: return "ValidationError";
    case TR_ENOTFOUND: return "ResourceNotFound";
    default: return tr_err_name(rc);
    }
}

static int job_txn(tbl_t *db, MDB_txn *txn, tb_job_t *j) {
    tbl_txn_t *t = j->t;
    int64_t now = tbl__now_ms(db);
    int rc = 0;
    if (t->token) {
        MDB_val k = {strlen(t->token), (void *)t->token}, v;
        rc = mdb_get(txn, db->db_tokens, &k, &v);
        if (rc && rc != MDB_NOTFOUND) return tbl__mdb_fail(&db->werr, rc, "reading a token");
        if (!rc && v.mv_size == 40 && (int64_t)get_le64(v.mv_data) > now) {
            if (!memcmp((uint8_t *)v.mv_data + 8, t->digest, 32)) {
                t->replayed = 1;
                t->rc = 0;
            } else {
                t->rc = tr_err_set(&t->err, TR_EIDEMPOTENCY,
                                   "Request with ClientRequestToken %s was made with different "
                                   "parameters within the last 10 minutes; use a new token",
                                   t->token);
            }
            return 0;
        }
        rc = 0;
    }
    tb_op_t *ops = tr_xcalloc(j->n, sizeof *ops);
    int failed = 0, refused = -1;
    size_t i;
    for (i = 0; i < j->n && !rc; i++) {
        rc = op_prepare(db, txn, &j->w[i], &j->x[i], &ops[i]);
        if (!rc && j->w[i].rc) failed = 1;
        if (!rc && ops[i].refuse_all && refused < 0) refused = (int)i;
    }
    if (!rc && refused >= 0) { /* the whole request is refused, as a validation error */
        t->rc = tr_err_set(&t->err, j->w[refused].rc, "%s", j->w[refused].err.msg);
    } else if (!rc && failed) {
        tr_buf b = TR_BUF_INIT;
        for (size_t k = 0; k < j->n; k++)
            tr_buf_printf(&b, "%s%s", k ? ", " : "", reason_name(j->w[k].rc));
        t->rc = tr_err_set(&t->err, TR_ETXN_CANCELED,
                           "Transaction cancelled, please refer cancellation reasons for specific "
                           "reasons [%s]",
                           b.data);
        tr_buf_free(&b);
    }
    for (size_t k = 0; k < j->n && !rc && !failed; k++) {
        rc = tbl__op_mutate(db, txn, &j->x[k], &ops[k]);
        if (rc) rc = tbl__mdb_fail(&db->werr, rc, "writing a transaction");
        else {
            j->w[k].old_size = ops[k].exists ? ops[k].old_size : 0;
            j->w[k].new_size = ops[k].act == A_PUT ? ops[k].new_size : 0;
        }
    }
    for (size_t k = 0; k < j->n; k++) tbl__op_clear(&ops[k]);
    free(ops);
    if (rc) return rc;
    if (!failed && t->token) {
        uint8_t val[40];
        put_le64(val, (uint64_t)(now + TBL_TOKEN_TTL_MS));
        memcpy(val + 8, t->digest, 32);
        MDB_val k = {strlen(t->token), (void *)t->token}, v = {40, val};
        rc = mdb_put(txn, db->db_tokens, &k, &v, 0);
        if (rc) return tbl__mdb_fail(&db->werr, rc, "storing a token");
    }
    if (!failed) t->rc = 0;
    return 0;
}

static int job_apply(tbl_t *db, MDB_txn *txn, tb_job_t *j) {
    return j->kind == J_TXN ? job_txn(db, txn, j) : job_writes(db, txn, j);
}

/* Outputs back to their initial state, for a rerun. */
static void job_reset(tb_job_t *j) {
    for (size_t i = 0; i < j->n; i++) {
        tbl_write_t *w = &j->w[i];
        json_decref(w->attrs);
        json_decref(w->old_item);
        w->attrs = w->old_item = NULL;
        w->rc = 0;
        tr_err_clear(&w->err);
        w->old_size = w->new_size = 0;
    }
    j->rc = 0;
    if (j->t) {
        j->t->rc = 0;
        j->t->replayed = 0;
        tr_err_clear(&j->t->err);
    }
}

static void job_fail(tb_job_t *j, const tr_err *e) {
    job_reset(j);
    if (j->t) {
        j->t->rc = tr_err_set(&j->t->err, e->code, "%s", e->msg);
        return;
    }
    for (size_t i = 0; i < j->n; i++) j->w[i].rc = tr_err_set(&j->w[i].err, e->code, "%s", e->msg);
    j->rc = e->code;
}

static int job_rc(const tb_job_t *j) { return j->t ? j->t->rc : j->rc; }

static void job_free(tb_job_t *j) {
    for (size_t i = 0; i < j->n; i++) {
        tbl__tab_unref(j->x[i].tab);
        free(j->x[i].pk);
        free(j->x[i].text);
    }
    free(j);
}

/* Run jobs [first..] (a NULL-terminated list of data jobs) in one txn, with per-job fallback. */
static void batch_run(tbl_t *db, tb_job_t *first) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc) {
        tbl__mdb_fail(&db->werr, rc, "starting a write");
        for (tb_job_t *j = first; j; j = j->next) job_fail(j, &db->werr);
        goto done;
    }
    for (tb_job_t *j = first; j && !rc; j = j->next) rc = job_apply(db, txn, j);
    if (!rc && (rc = tbl__dirty_flush(db, txn)))
        tbl__mdb_fail(&db->werr, rc, "writing table counters");
    if (!rc) {
        rc = mdb_txn_commit(txn);
        if (rc) {
            tbl__mdb_fail(&db->werr, rc, "committing writes");
            tr_error(SUB, "%s", db->werr.msg);
            tbl__dirty_reload(db);
            for (tb_job_t *j = first; j; j = j->next) job_fail(j, &db->werr);
        }
        goto done;
    }
    /* A hard failure mid-batch: start over, one job per transaction. */
    mdb_txn_abort(txn);
    tbl__dirty_reload(db);
    tbl__dirty_clear(db);
    for (tb_job_t *j = first; j; j = j->next) {
        job_reset(j);
        rc = mdb_txn_begin(db->env, NULL, 0, &txn);
        if (rc) {
            tbl__mdb_fail(&db->werr, rc, "starting a write");
        } else {
            rc = job_apply(db, txn, j);
            if (!rc && (rc = tbl__dirty_flush(db, txn)))
                tbl__mdb_fail(&db->werr, rc, "writing counters");
            if (!rc) {
                rc = mdb_txn_commit(txn);
                if (rc) tbl__mdb_fail(&db->werr, rc, "committing writes");
            } else {
                mdb_txn_abort(txn);
            }
        }
        if (rc) {
            tr_error(SUB, "%s", db->werr.msg);
            tbl__dirty_reload(db);
            job_fail(j, &db->werr);
        }
        tbl__dirty_clear(db);
    }
done:
    tbl__dirty_clear(db);
    size_t bytes = 0;
    for (tb_job_t *j = first; j; j = j->next) bytes += j->bytes;
    pthread_mutex_lock(&db->qmu);
    db->pending_bytes -= bytes;
    pthread_mutex_unlock(&db->qmu);
    while (first) {
        tb_job_t *j = first;
        first = j->next;
        if (j->cb) j->cb(j->arg, job_rc(j));
        job_free(j);
    }
}

void *tbl__writer_main(void *arg) {
    tbl_t *db = arg;
    uint32_t max = db->opts.max_batch;
    pthread_setname_np(pthread_self(), "tbl-writer");
    for (;;) {
        if (atomic_load(&db->bg_pending)) tbl__bg_step(db); /* a chunk per round: writes flow */
        pthread_mutex_lock(&db->qmu);
        while (!db->q_head && !db->stopping) {
            long long wait_ms = db->bg_retry_ms - tr_mono_ms();
            if (atomic_load(&db->bg_pending) && wait_ms <= 0) {
                pthread_mutex_unlock(&db->qmu);
                tbl__bg_step(db);
                pthread_mutex_lock(&db->qmu);
                continue;
            }
            if (atomic_load(&db->bg_pending)) { /* backing off: wake for work or the retry */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&db->q_cond, &db->qmu, &ts);
                continue;
            }
            pthread_cond_wait(&db->q_cond, &db->qmu);
        }
        tb_job_t *jobs = db->q_head;
        db->q_head = db->q_tail = NULL;
        pthread_mutex_unlock(&db->qmu);
        if (!jobs) break; /* stopping and drained */
        while (jobs) {
            tb_job_t *j = jobs;
            if (j->kind == J_CTL) {
                jobs = j->next;
                int rc = tbl__ctl_exec(db, j->ctl);
                if (j->cb) j->cb(j->arg, rc);
                free(j);
                continue;
            }
            size_t nw = j->n;
            tb_job_t *last = j;
            while (last->next && last->next->kind != J_CTL && nw + last->next->n <= max) {
                last = last->next;
                nw += last->n;
            }
            jobs = last->next;
            last->next = NULL;
            batch_run(db, j);
        }
    }
    return NULL;
}

/* ---- submitting ---------------------------------------------------------------------------- */

int tbl__enqueue(tbl_t *db, tb_job_t *j, tr_err *err) {
    int rc = 0;
    pthread_mutex_lock(&db->qmu);
    if (db->stopping) {
        rc = tr_err_set(err, TR_ECLOSED, "the table engine is shutting down");
    } else if (j->bytes && db->pending_bytes > 0 &&
               db->pending_bytes + j->bytes > db->opts.max_pending_bytes) {
        rc = tr_err_set(err, TR_ETHROTTLED,
                        "write of %zu bytes refused: %zu bytes are already waiting for disk "
                        "(limit %zu); retry with backoff",
                        j->bytes, db->pending_bytes, db->opts.max_pending_bytes);
    } else {
        db->pending_bytes += j->bytes;
        if (db->q_tail) db->q_tail->next = j;
        else db->q_head = j;
        db->q_tail = j;
        pthread_cond_signal(&db->q_cond);
    }
    pthread_mutex_unlock(&db->qmu);
    return rc;
}

static void write_reset(tbl_write_t *w) {
    w->rc = 0;
    tr_err_clear(&w->err);
    w->attrs = w->old_item = NULL;
    w->old_size = w->new_size = 0;
}

/* 1 when a key attribute of t is present in obj (an item or a key) with another type. */
static int key_type_mismatch(const tb_table_t *t, const json_t *obj) {
    const char *names[2] = {t->hash, t->range};
    int types[2] = {t->htype, t->rtype};
    for (int i = 0; i < (t->range ? 2 : 1); i++) {
        const json_t *av = json_is_object(obj) ? json_object_get(obj, names[i]) : NULL;
        if (av && tbl_av_type(av) != types[i]) return 1;
    }
    return 0;
}

/* Resolve the table, check and encode the key, check a put's index keys, dump its text.  Every
 * check that does not need the stored items is made here, before anything is queued, so a
 * request with one bad write is refused whole.  In a transaction (txn) a wrong type or size of an
 * index key is left to the writer: DynamoDB cancels the transaction with a ValidationError reason
 * for it, while an empty index key value is refused up front there too. */
static int wx_fill(tbl_t *db, tbl_write_t *w, tb_wx_t *x, int txn, tr_err *err) {
    write_reset(w);
    if (!w->table) return tr_err_set(err, TR_EINVAL, "a write needs a table name");
    if (w->op < TBL_OP_PUT || w->op > TBL_OP_CHECK)
        return tr_err_set(err, TR_EINVAL, "unknown write kind %d", w->op);
    if (w->op == TBL_OP_PUT ? !w->item : !w->key)
        return tr_err_set(err, TR_EINVAL, "%s needs %s", w->op == TBL_OP_PUT ? "a put" : "a write",
                          w->op == TBL_OP_PUT ? "an item" : "a key");
    if (w->op == TBL_OP_CHECK && !w->cond)
        return tr_err_set(err, TR_EVALIDATION, "a ConditionCheck needs a ConditionExpression");
    x->tab = tbl__tab_get(db, w->table, err);
    if (!x->tab) return TR_ENOTFOUND;
    if (txn && key_type_mismatch(x->tab, w->op == TBL_OP_PUT ? w->item : w->key)) {
        x->bad_key = 1; /* DynamoDB cancels the transaction for it: op_prepare says why */
        return 0;
    }
    const json_t *h, *r;
    int rc = w->op == TBL_OP_PUT ? tbl__item_key_check(x->tab, w->item, &h, &r, err)
                                 : tbl__key_check(x->tab, w->key, &h, &r, err);
    if (rc) return rc;
    uint8_t *pk = tbl__scratch()->pk;
    size_t hl = 0, n = tbl__pk_build(h, r, pk, &hl);
    if (!n) return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
    x->pk = memcpy(tr_xmalloc(n), pk, n);
    x->pk_n = n;
    tbl__key_from_pk(x->tab, x->pk, n, hl, &x->key);
    if (w->op == TBL_OP_PUT) {
        size_t sz = tbl_item_size(w->item);
        if (sz > TBL_MAX_ITEM_BYTES)
            return tr_err_set(err, TR_EVALIDATION,
                              "Item size has exceeded the maximum allowed size");
        if (x->tab->n_idx && (rc = tbl__index_check(x->tab, w->item, txn ? IX_EMPTY : IX_ALL, err)))
            return rc;
        x->size = (uint32_t)sz;
        x->text = tbl__dump(w->item, &x->text_n);
    }
    return 0;
}

tb_job_t *tbl__job_new(size_t n) {
    tb_job_t *j = tr_xcalloc(1, sizeof *j + n * sizeof(tb_wx_t));
    j->n = n;
    return j;
}

int tbl_write_submit(tbl_t *db, tbl_write_t *w, size_t n, tbl_done_cb cb, void *arg, tr_err *err) {
    if (!db || !w || n == 0) return tr_err_set(err, TR_EINVAL, "a write needs at least one item");
    tb_job_t *j = tbl__job_new(n);
    j->kind = J_WRITES;
    j->w = w;
    j->cb = cb;
    j->arg = arg;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = wx_fill(db, &w[i], &j->x[i], 0, err);
        j->bytes += w[i].req_bytes ? w[i].req_bytes : TB_WRITE_COST;
    }
    if (!rc) rc = tbl__enqueue(db, j, err);
    if (rc) job_free(j);
    return rc;
}

int tbl_txn_submit(tbl_t *db, tbl_txn_t *t, tbl_done_cb cb, void *arg, tr_err *err) {
    if (!db || !t || !t->w || t->n == 0)
        return tr_err_set(err, TR_EINVAL, "a transaction needs at least one item");
    if (t->n > TBL_MAX_TXN_ITEMS)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value at 'transactItems' failed to "
                          "satisfy constraint: Member must have length less than or equal to %d",
                          TBL_MAX_TXN_ITEMS);
    if (t->token && (!*t->token || strlen(t->token) > TBL_MAX_TOKEN))
        return tr_err_set(err, TR_EVALIDATION, "ClientRequestToken must be 1-%d characters",
                          TBL_MAX_TOKEN);
    t->rc = 0;
    t->replayed = 0;
    tr_err_clear(&t->err);
    tb_job_t *j = tbl__job_new(t->n);
    j->kind = J_TXN;
    j->w = t->w;
    j->t = t;
    j->cb = cb;
    j->arg = arg;
    int rc = 0;
    for (size_t i = 0; i < t->n && !rc; i++) {
        rc = wx_fill(db, &t->w[i], &j->x[i], 1, err);
        j->bytes += t->w[i].req_bytes ? t->w[i].req_bytes : TB_WRITE_COST;
        for (size_t k = 0; k < i && !rc && !j->x[i].bad_key; k++)
            if (!j->x[k].bad_key && j->x[k].tab->id == j->x[i].tab->id &&
                j->x[k].key.n == j->x[i].key.n &&
                !memcmp(j->x[k].key.b, j->x[i].key.b, j->x[i].key.n))
                rc = tr_err_set(err, TR_EVALIDATION,
                                "Transaction request cannot include "
                                "multiple operations on one item");
    }
    if (!rc) rc = tbl__enqueue(db, j, err);
    if (rc) job_free(j);
    return rc;
}

void tbl_request_digest(const json_t *v, uint8_t out[32]) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    tr_sha256(s ? s : "", s ? strlen(s) : 0, out);
    free(s);
}
