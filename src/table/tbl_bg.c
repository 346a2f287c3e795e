/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_bg.c -- the table engine's background work, on the writer thread between batches: GSI
 * backfill, removal of a deleted table's or index's entries, TTL indexing of existing items;
 * and the TTL sweep (the TTL thread finds expired items, a control job deletes them).
 *
 * Each step is one LMDB transaction of at most opts.bf_chunk items that records where it
 * stopped in "meta" (tbl.c "On-disk format": "b/", "d/", "l/" keys), so a restart goes on where
 * the last commit left off.  tbl_meta.c leaves the markers; tbl_write.c's writer loop calls
 * tbl__bg_step.
 */
#include "table/tbl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/tlog.h"
#include "table/tbl_int.h"

#define SUB "tbl"

/* Delete the keys starting with prefix[0..n), at most max of them (0: all).  *more (if not
 * NULL) tells whether some are left. */
static int range_delete_some(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t n, size_t max,
                             int *more) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) return rc;
    if (more) *more = 0;
    for (size_t done = 0;; done++) {
        MDB_val k = {n, (void *)prefix}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) break;
        if (k.mv_size < n || memcmp(k.mv_data, prefix, n)) break;
        if (max && done == max) {
            if (more) *more = 1;
            break;
        }
        if ((rc = mdb_cursor_del(c, 0))) break;
    }
    mdb_cursor_close(c);
    return rc;
}

int tbl__range_delete(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t n) {
    return range_delete_some(txn, dbi, prefix, n, 0, NULL);
}

/* Called for an item by chunk_each; may write to the txn (the cursor is re-positioned from a
 * copy of the key after each call). */
typedef int (*space_fn)(tbl_t *db, MDB_txn *txn, tb_table_t *t, void *arg, const MDB_val *k,
                        const MDB_val *v);

static int backfill_one(tbl_t *db, MDB_txn *txn, tb_table_t *t, void *arg, const MDB_val *k,
                        const MDB_val *v) {
    (void)k;
    const tb_index_t *ix = arg;
    json_t *item = tbl__val_parse(v);
    if (!item) return 0;
    uint8_t *pk = tbl__scratch()->pk;
    size_t pk_n = tbl__item_pk(t, item, pk);
    tb_key_t ik;
    int rc = 0;
    if (pk_n && tbl__index_key(ix, item, pk, pk_n, t, &ik) == 1) {
        json_t *pj = tbl__index_project(t, ix, item);
        size_t tn;
        char *text = tbl__dump(pj, &tn);
        uint32_t sz = (uint32_t)tbl_item_size(pj);
        size_t fn = ik.n == TBL__FOLD_KEEP + 32 ? tbl__index_full(ix, item, pk, pk_n, t) : 0;
        /* an entry already there was written by a write since the index was added: current */
        rc = tbl__val_put(txn, db->db_items, &ik, tbl__scratch()->full, fn, sz, 0, 0, text, tn,
                          MDB_NOOVERWRITE);
        if (!rc) {
            t->st_items[ix->space]++;
            t->st_bytes[ix->space] += sz;
        } else if (rc == MDB_KEYEXIST) {
            rc = 0;
        }
        free(text);
        json_decref(pj);
    }
    json_decref(item);
    return rc;
}

static int ttl_index_one(tbl_t *db, MDB_txn *txn, tb_table_t *t, void *arg, const MDB_val *k,
                         const MDB_val *v) {
    (void)arg;
    json_t *item = tbl__val_parse(v);
    if (!item) return 0;
    int64_t e = 0;
    int has = tbl__ttl_of(item, t->ttl_attr, &e);
    int rc = 0;
    uint8_t *buf = tr_xmalloc(v->mv_size);
    memcpy(buf, v->mv_data, v->mv_size);
    buf[1] = (uint8_t)((buf[1] & ~1) | (has ? 1 : 0)); /* bit 0 only: other flags stay */
    put_le64(buf + 8, (uint64_t)(has ? e : 0));
    MDB_val vv = {v->mv_size, buf};
    rc = mdb_put(txn, db->db_items, (MDB_val *)k, &vv, 0);
    free(buf);
    if (!rc && has) {
        uint8_t *pk = tbl__scratch()->pk;
        size_t pk_n = tbl__item_pk(t, item, pk);
        tb_key_t tk;
        tbl__ttl_key(t->id, e, pk, pk_n, &tk);
        MDB_val kk = {tk.n, tk.b};
        rc = mdb_put(txn, db->db_items, &kk, (MDB_val *)k, 0);
    }
    json_decref(item);
    return rc;
}

/* ---- background backfill of a GSI added by UpdateTable ---------------------------------------
 *
 * The index is CREATING (DescribeTable: Backfilling true, TableStatus UPDATING) from UpdateTable
 * on.  Writes maintain it like any index; bf_step, on the writer thread between batches, adds
 * entries for up to opts.bf_chunk existing items per transaction, in key order, and keeps its
 * position in "meta" under "b/<table id>/<space>" (the last item key done) so a restart goes on
 * where it stopped.  An entry that already exists came from a later write and is kept.  After
 * the last item the index becomes ACTIVE.  Query / Scan on it are refused until then, as
 * DynamoDB does. */
static int bf_pos_key(char *out, uint32_t id, uint8_t space) {
    return snprintf(out, 32, "b/%" PRIu32 "/%u", id, (unsigned)space);
}

/* Delete a "meta" key if it is there. */
static int meta_del(tbl_t *db, MDB_txn *txn, const char *key, int n) {
    MDB_val k = {(size_t)n, (void *)key};
    int rc = mdb_del(txn, db->db_meta, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int tbl__bf_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space) {
    char kb[32];
    return meta_del(db, txn, kb, bf_pos_key(kb, id, space));
}

/* Call fn for the next items of table t after the position stored under *posk in "meta" (the
 * last item key done; absent: from the start): at most opts.bf_chunk items and about
 * TB_BF_BYTES.  kb[*kn] gets the last key done; *done is set when no item is left.  The caller
 * stores the position or, when done, deletes it, in the same txn. */
static int chunk_each(tbl_t *db, MDB_txn *txn, tb_table_t *t, const MDB_val *posk, uint8_t *kb,
                      size_t *kn, space_fn fn, void *arg, int *done) {
    MDB_cursor *cur;
    MDB_val v;
    uint8_t pre[5];
    prefix_put(pre, t->id, TBL__SPACE_TABLE);
    *kn = 0;
    *done = 0;
    int rc = mdb_get(txn, db->db_meta, (MDB_val *)posk, &v);
    if (!rc && v.mv_size <= TBL__KEYMAX) {
        *kn = v.mv_size;
        memcpy(kb, v.mv_data, *kn);
    }
    if (rc && rc != MDB_NOTFOUND) return rc;
    if ((rc = mdb_cursor_open(txn, db->db_items, &cur))) return rc;
    size_t bytes = 0;
    for (uint32_t n = 0; !rc && n < db->opts.bf_chunk && bytes < TB_BF_BYTES; n++) {
        MDB_val k = *kn ? (MDB_val){*kn, kb} : (MDB_val){5, pre};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (!rc && *kn && k.mv_size == *kn && !memcmp(k.mv_data, kb, *kn))
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc == MDB_NOTFOUND || (!rc && (k.mv_size < 5 || memcmp(k.mv_data, pre, 5)))) {
            rc = 0;
            *done = 1;
            break;
        }
        if (rc) break;
        *kn = k.mv_size;
        memcpy(kb, k.mv_data, *kn);
        bytes += v.mv_size;
        MDB_val kc = {*kn, kb};
        rc = fn(db, txn, t, arg, &kc, &v);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* One chunk of the first CREATING index found.  Clears db->bg_pending when none is left. */
static void bf_step(tbl_t *db) {
    tb_table_t *t = NULL;
    size_t xi = 0;
    for (size_t i = 0; i < db->n_tabs && !t; i++)
        for (size_t j = 0; j < db->tabs[i]->n_idx; j++)
            if (db->tabs[i]->idx[j].status == TBL_STATUS_CREATING) {
                t = db->tabs[i];
                xi = j;
                break;
            }
    if (!t) {
        atomic_store(&db->bg_pending, 0);
        return;
    }
    tb_index_t *ix = &t->idx[xi];
    MDB_txn *txn = NULL;
    tb_table_t *pub = NULL;
    char pk[32];
    MDB_val posk = {(size_t)bf_pos_key(pk, t->id, ix->space), pk};
    uint8_t kb[TBL__KEYMAX];
    size_t kn = 0;
    int done = 0;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (!rc) rc = chunk_each(db, txn, t, &posk, kb, &kn, backfill_one, ix, &done);
    tbl__mark_dirty(db, t);
    if (!rc && done) {
        pub = tbl__tab_clone(t);
        pub->idx[xi].status = TBL_STATUS_ACTIVE;
        rc = tbl__meta_put(db, txn, pub);
        if (!rc) rc = mdb_del(txn, db->db_meta, &posk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    } else if (!rc) {
        MDB_val pv = {kn, kb};
        rc = mdb_put(txn, db->db_meta, &posk, &pv, 0);
    }
    if (!rc) rc = tbl__dirty_flush(db, txn);
    if (!rc) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        tbl__mdb_fail(&db->werr, rc, "backfilling an index");
        tr_error(SUB, "%s of table %s: %s; retrying in %d ms", ix->name, t->name, db->werr.msg,
                 TB_BG_RETRY_MS);
        tbl__dirty_reload(db);
        tbl__dirty_clear(db);
        if (pub) tbl__tab_unref(pub);
        db->bg_retry_ms = tr_mono_ms() + TB_BG_RETRY_MS;
        return;
    }
    tbl__dirty_clear(db);
    if (pub) {
        tr_info(SUB, "index %s of table %s is ACTIVE (backfilled %" PRIu64 " entries)",
                pub->idx[xi].name, pub->name, pub->st_items[pub->idx[xi].space]);
        tbl__map_set(db, pub);
    }
}

/* ---- background removal of a deleted table's items -------------------------------------------
 *
 * DeleteTable removes the table's metadata and counters at once and leaves "d/<id, 8 hex>" in
 * "meta"; drop_marker deletes opts.bf_chunk of its items (and index / TTL entries) per
 * transaction between write batches, then the marker.  The id is never given to another
 * table, so a table re-created under the same name never sees them. */
/* Leave an empty marker key in "meta" for tbl__bg_step to work on (as part of txn). */
int tbl__bg_mark(tbl_t *db, MDB_txn *txn, const char *key, int n) {
    MDB_val k = {(size_t)n, (void *)key}, empty = {0, ""};
    int rc = mdb_put(txn, db->db_meta, &k, &empty, 0);
    if (!rc) atomic_store(&db->bg_pending, 1);
    return rc;
}

int tbl__drop_key(char *out, uint32_t id) { return snprintf(out, 16, "d/%08" PRIx32, id); }

/* A deleted GSI's entries: "d/<id, 8 hex><space, 2 hex>".  Its space is not given to a new
 * index until they are gone. */
int tbl__drop_key_space(char *out, uint32_t id, uint8_t space) {
    return snprintf(out, 16, "d/%08" PRIx32 "%02x", id, (unsigned)space);
}

int tbl__space_dropping(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space) {
    char kb[16];
    MDB_val k = {(size_t)tbl__drop_key_space(kb, id, space), kb}, v;
    return mdb_get(txn, db->db_meta, &k, &v) == 0;
}

/* Bytes of a marker key "x/<hex>" (2 hex digits a byte, at most 5 bytes) into out; their
 * count, 0 if it is not one. */
size_t tbl__marker_bytes(const MDB_val *k, uint8_t *out) {
    size_t n = (k->mv_size - 2) / 2;
    if (k->mv_size < 4 || k->mv_size % 2 || n > 5) return 0;
    for (size_t i = 0; i < n; i++) {
        char hex[3] = {((char *)k->mv_data)[2 + 2 * i], ((char *)k->mv_data)[3 + 2 * i], 0};
        out[i] = (uint8_t)strtoul(hex, NULL, 16);
    }
    return n;
}

/* Work for one marker k (found by marker_step, c positioned on it) in txn; an LMDB rc. */
typedef int (*marker_fn)(tbl_t *db, MDB_txn *txn, MDB_cursor *c, const MDB_val *k);

/* One transaction of background work for the first "meta" key starting with prefix (2 bytes,
 * "d/" or "l/").  1: did some, 0: no such marker, -1: LMDB failure (logged as `what`). */
static int marker_step(tbl_t *db, const char *prefix, marker_fn fn, const char *what) {
    MDB_txn *txn = NULL;
    MDB_cursor *c = NULL;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn), found = 0;
    if (!rc) rc = mdb_cursor_open(txn, db->db_meta, &c);
    MDB_val k = {2, (void *)prefix}, v;
    if (!rc) rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (!rc && k.mv_size >= 2 && !memcmp(k.mv_data, prefix, 2)) {
        found = 1;
        rc = fn(db, txn, c, &k);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    if (c) mdb_cursor_close(c);
    if (!rc && found) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        tbl__mdb_fail(&db->werr, rc, what);
        tr_error(SUB, "%s; retrying in %d ms", db->werr.msg, TB_BG_RETRY_MS);
        return -1;
    }
    return found;
}

/* A drop marker: delete the next chunk of keys under its prefix, then the marker. */
static int drop_marker(tbl_t *db, MDB_txn *txn, MDB_cursor *c, const MDB_val *k) {
    uint8_t pre[5]; /* table id, or table id + space */
    size_t plen = tbl__marker_bytes(k, pre);
    if (plen != 4 && plen != 5) return mdb_cursor_del(c, 0); /* not ours: dropped */
    int more = 0;
    int rc = range_delete_some(txn, db->db_items, pre, plen, db->opts.bf_chunk, &more);
    if (!rc && !more) rc = mdb_cursor_del(c, 0);
    return rc;
}

/* ---- background TTL indexing ------------------------------------------------------------------
 *
 * Enabling TTL takes effect at once for writes; "l/<id, 8 hex>" in "meta" holds the position
 * (last item key done) of the indexing of the items already there, which ttl_marker does one
 * chunk per transaction (ttl_index_one is idempotent, so an item a write already indexed is
 * only rewritten the same). */
int tbl__ttl_key_meta(char *out, uint32_t id) { return snprintf(out, 16, "l/%08" PRIx32, id); }

int tbl__ttl_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id) {
    char kb[16];
    return meta_del(db, txn, kb, tbl__ttl_key_meta(kb, id));
}

/* A TTL marker: index the next chunk of the table's items, then drop the marker. */
static int ttl_marker(tbl_t *db, MDB_txn *txn, MDB_cursor *c, const MDB_val *k) {
    uint8_t idb[5];
    char mk[16];
    if (tbl__marker_bytes(k, idb) != 4) return mdb_cursor_del(c, 0); /* not ours: dropped */
    uint32_t id = get_be32(idb);
    MDB_val posk = {(size_t)tbl__ttl_key_meta(mk, id), mk};
    tb_table_t *t = NULL;
    for (size_t i = 0; i < db->n_tabs && !t; i++)
        if (db->tabs[i]->id == id && db->tabs[i]->ttl_enabled) t = db->tabs[i];
    uint8_t kb[TBL__KEYMAX];
    size_t kn = 0;
    int done = 1, rc = 0; /* a marker without its table (or with TTL off) is dropped */
    if (t) rc = chunk_each(db, txn, t, &posk, kb, &kn, ttl_index_one, NULL, &done);
    if (!rc && done) {
        rc = mdb_del(txn, db->db_meta, &posk, NULL);
        if (t) tr_info(SUB, "TTL of table %s: existing items indexed", t->name);
    } else if (!rc) {
        MDB_val pv = {kn, kb};
        rc = mdb_put(txn, db->db_meta, &posk, &pv, 0);
    }
    return rc;
}

/* Writer thread, between batches: one chunk of background work. */
void tbl__bg_step(tbl_t *db) {
    if (tr_mono_ms() < db->bg_retry_ms) return; /* backing off after a failure */
    int r = marker_step(db, "d/", drop_marker, "removing a deleted table's or index's entries");
    if (r == 0) r = marker_step(db, "l/", ttl_marker, "indexing TTL values");
    if (r < 0) db->bg_retry_ms = tr_mono_ms() + TB_BG_RETRY_MS;
    else if (r == 0) bf_step(db); /* clears bg_pending when nothing is left */
}

int tbl_background_pending(tbl_t *db) { return db ? atomic_load(&db->bg_pending) : 0; }

int tbl__ctl_ttl_delete(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    int64_t now_s = tbl__now_ms(db) / 1000;
    uint8_t *pk = tbl__scratch()->pk;
    int rc = 0;
    for (size_t i = 0; i < c->n_cand && !rc; i++) {
        tb_ttl_cand_t *cd = &c->cand[i];
        tb_table_t *t = tbl__tab_current(db, cd->tab);
        if (!t || !t->ttl_enabled || cd->expiry > now_s) continue;
        MDB_val k = {cd->key.n, cd->key.b}, v;
        rc = mdb_get(txn, db->db_items, &k, &v);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc) break;
        if (!val_ok(&v)) continue;
        const uint8_t *p = v.mv_data;
        if (!(p[1] & 1) || (int64_t)get_le64(p + 8) != cd->expiry) continue;
        tb_op_t op;
        memset(&op, 0, sizeof op);
        op.tab = t;
        op.exists = 1;
        op.old_size = val_size(&v);
        op.old_has_ttl = 1;
        op.old_ttl = cd->expiry;
        op.old = tbl__val_parse(&v);
        op.act = A_DEL;
        /* the header may predate the current TTL setting (its indexing runs in the
         * background): the item's own value under the current attribute decides */
        int64_t e_now = 0;
        int expired_now = op.old && tbl__ttl_of(op.old, t->ttl_attr, &e_now) && e_now == cd->expiry;
        tb_wx_t x;
        memset(&x, 0, sizeof x);
        x.key = cd->key;
        x.pk = pk;
        x.pk_n = expired_now ? tbl__item_pk(t, op.old, pk) : 0;
        if (!x.pk_n) {
            tbl__op_clear(&op);
            continue;
        }
        rc = tbl__op_mutate(db, txn, &x, &op);
        if (!rc) c->deleted++;
        tbl__op_clear(&op);
    }
    if (rc) return tbl__mdb_fail(&c->err, rc, "deleting expired items");
    return 0;
}

/* ---- TTL ----------------------------------------------------------------------------------- */

int tbl_ttl_run(tbl_t *db, size_t max) {
    if (!db) return TR_EINVAL;
    if (tbl__on_writer(db, NULL)) return TR_EINVAL;
    if (!max) max = 10000;
    int64_t now_s = tbl__now_ms(db) / 1000;
    int64_t lo_s = now_s - TB_TTL_PAST_S;
    if (lo_s < 0) lo_s = 0;
    pthread_rwlock_rdlock(&db->tlock);
    size_t nt = 0;
    tb_table_t **tabs = tr_xcalloc(db->n_tabs, sizeof *tabs);
    for (size_t i = 0; i < db->n_tabs; i++)
        if (db->tabs[i]->ttl_enabled) {
            tabs[nt] = db->tabs[i];
            tbl__tab_ref(tabs[nt++]);
        }
    pthread_rwlock_unlock(&db->tlock);
    tb_ttl_cand_t *cand = NULL;
    size_t nc = 0, cap = 0;
    int rc = 0;
    MDB_txn *txn = NULL;
    if (nt && !(rc = tbl__rtxn_get(db, &txn, NULL))) {
        MDB_cursor *cur;
        if (!(rc = mdb_cursor_open(txn, db->db_items, &cur))) {
            for (size_t i = 0; i < nt && nc < max; i++) {
                uint8_t pre[13];
                prefix_put(pre, tabs[i]->id, TBL__SPACE_TTL);
                put_be64(pre + 5, (uint64_t)lo_s);
                MDB_val k = {13, pre}, v;
                int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                for (; !mrc && nc < max; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                    if (k.mv_size < 13 || memcmp(k.mv_data, pre, 5)) break;
                    int64_t e = (int64_t)get_be64((uint8_t *)k.mv_data + 5);
                    if (e > now_s) break;
                    if (v.mv_size > TBL__KEYMAX) continue;
                    if (nc == cap) {
                        cap = cap ? 2 * cap : 64;
                        cand = tr_xrealloc(cand, cap * sizeof *cand);
                    }
                    tb_ttl_cand_t *c = &cand[nc++];
                    c->tab = tabs[i];
                    tbl__tab_ref(c->tab);
                    c->key.n = v.mv_size;
                    memcpy(c->key.b, v.mv_data, v.mv_size);
                    c->expiry = e;
                }
            }
            mdb_cursor_close(cur);
        }
        tbl__rtxn_put(db, txn);
        rc = rc ? TR_EIO : 0;
    }
    for (size_t i = 0; i < nt; i++) tbl__tab_unref(tabs[i]);
    free(tabs);
    int deleted = 0;
    if (!rc && nc) {
        tb_ctl_t c = {.kind = C_TTL_DELETE, .cand = cand, .n_cand = nc};
        rc = tbl__ctl_run(db, &c, NULL);
        if (!rc) deleted = (int)c.deleted;
    }
    for (size_t i = 0; i < nc; i++) tbl__tab_unref(cand[i].tab);
    free(cand);
    return rc ? rc : deleted;
}

void *tbl__ttl_main(void *arg) {
    tbl_t *db = arg;
    int64_t last_sweep = tr_mono_ms();
    pthread_setname_np(pthread_self(), "tbl-ttl");
    pthread_mutex_lock(&db->smu);
    while (!db->s_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)db->opts.ttl_interval_ms * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&db->s_cond, &db->smu, &ts);
        if (db->s_stop) break;
        pthread_mutex_unlock(&db->smu);
        int rc = tbl_ttl_run(db, 0);
        if (rc < 0 && rc != TR_ECLOSED) tr_warn(SUB, "TTL sweep failed: %s", tr_strerror(rc));
        int64_t now = tr_mono_ms();
        if (now - last_sweep >= TB_TOKEN_SWEEP_MS) {
            last_sweep = now;
            tb_ctl_t c = {.kind = C_TOKENS};
            tbl__ctl_run(db, &c, NULL);
        }
        pthread_mutex_lock(&db->smu);
    }
    pthread_mutex_unlock(&db->smu);
    return NULL;
}
