/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl.c -- the table engine: DynamoDB tables in one LMDB environment, group-committed writes.
 *
 * Every table lives in memory as an immutable snapshot (tb_table_t: schema, indexes, TTL, tags),
 * mirrored by one LMDB metadata record; items, index entries and TTL entries live in one LMDB
 * database keyed so that a table's data, and inside it each key space, is one contiguous key
 * range.  Readers take a snapshot reference and an LMDB read transaction and never wait.  All
 * LMDB writes happen on ONE writer thread:
 *
 *     submit (any thread)      check the key against the schema, encode it, dump a PutItem's
 *                              JSON text, admit the bytes against the budget, queue a job
 *     writer thread            take the whole queue; for consecutive data jobs (up to max_batch
 *                              writes): one write txn, apply each job in order (read old item,
 *                              condition, update expression, item + index + TTL upkeep),
 *                              counters, ONE commit (fsync), release the budget, callbacks.
 *                              Control jobs (create/delete/update table, TTL, tags, TTL
 *                              deletes, token sweep) run alone in their own txn between batches.
 *
 * A write that fails before it changes anything (condition false, bad update, schema) fails
 * alone; the batch goes on.  An LMDB failure in the middle of a batch (map full, txn too big)
 * aborts the batch txn; every job of it then runs again in its own txn, so only the jobs that
 * really fail report TR_EIO.  In-memory counters are re-read from LMDB after an abort.
 *
 * Snapshots are refcounted: the name map holds one reference, readers and queued jobs one
 * each.  Only the writer thread replaces or removes snapshots (control jobs); a queued job whose
 * snapshot was replaced re-resolves the table by name and id on the writer thread, so a job
 * never applies to a re-created table of the same name.
 *
 * Locks, in the only order they are ever taken: tlock (rwlock: the name map; readers hold it
 * for a lookup and a refcount bump), qmu (queue, budget, stopping), rmu (read txn pool),
 * smu (TTL thread sleep).  The writer holds none of them while it runs LMDB.
 *
 * Files.  This one holds the overview and the on-disk format (below), small helpers, the name
 * map, the counters, the read transaction pool, open/close and the synchronous API.  Its
 * siblings: tbl_key.c (keys, values, schema checks), tbl_meta.c (snapshots, control plane),
 * tbl_write.c (submission, writer thread), tbl_bg.c (background work, TTL), tbl_read.c (get,
 * query, scan); tbl_int.h declares what they share.
 *
 * ==== On-disk format ==========================================================================
 *
 * DIR/data.mdb holds four named LMDB databases.
 *
 * "meta"    "t/" + table name  ->  JSON text of the table's schema (tab_to_json, tbl_meta.c):
 *                 {"id":7,"name":"t","table_id":"<uuid>","hash":"pk","htype":"S","range":..,
 *                  "rtype":..,"attrs":[["pk","S"],..],"billing":0,"rcu":0,"wcu":0,"dp":0,
 *                  "created_ms":..,"ttl_attr":..,"ttl_enabled":0,"tags":[["k","v"],..],
 *                  "indexes":[{"name":..,"space":1,"local":0,"hash":..,"htype":..,"range":..,
 *                  "rtype":..,"proj":0,"include":[..],"rcu":0,"wcu":0,"status":1},..]}
 *           "n/next_id"  ->  u32 LE: the next table id (ids are never reused)
 *           "b/<id>/<space>" (decimal)  ->  a CREATING GSI's backfill position: the last item
 *                 key indexed (absent: from the start)
 *           "d/<id, 8 hex>"  ->  empty: a deleted table whose items are still being removed
 *           "d/<id, 8 hex><space, 2 hex>"  ->  empty: same for a deleted GSI's entries (the space
 *                 is not reused meanwhile)
 *           "l/<id, 8 hex>"  ->  TTL enabled, existing items still being indexed: the last item
 *                 key done (empty: from the start)
 *
 * "stats"   [table id u32 BE][space u8]  ->  [item count u64 LE][bytes u64 LE]  (16 bytes)
 *           bytes = sum of tbl_item_size of the items (space 0) or projected entries (index).
 *
 * "tokens"  ClientRequestToken bytes  ->  [expires ms i64 LE][request digest 32 bytes]
 *
 * "items"   every key starts [table id u32 BE][space u8]:
 *
 *   space 0x00, the table's items:
 *     +----------+------+---------+---------+-----------+
 *     | tid u32  | 0x00 | h32 u32 |  C(hash)| [C(range)]|      value: item value (below)
 *     +----------+------+---------+---------+-----------+
 *   space 1..254, a secondary index (the index's "space" in meta):
 *     +----------+------+-----------+----------+------------+---------+-----------+
 *     | tid u32  |  sp  | h32(ih)   |  C(ih)   | [C(ir)]    | C(hash) | [C(range)]|   value:
 *     +----------+------+-----------+----------+------------+---------+-----------+   projected
 *     (the table key at the end keeps entries with equal index keys distinct)          item value
 *   space 0xFF, the TTL index (only while TTL is enabled):
 *     +----------+------+--------------------+---------+-----------+
 *     | tid u32  | 0xFF | expiry secs u64 BE |  C(hash)| [C(range)]|   value: the item's full
 *     +----------+------+--------------------+---------+-----------+   stored key (as above)
 *
 *   C(v)   = tbl_key_encode(v) with each 0x00 byte written 0x00 0xFF, then 0x00 0x01.  The
 *            escape makes components self-delimiting while keeping memcmp order, so range keys
 *            sort by value (numbers numerically, S and B bytewise) within one hash key.
 *   Key format 1 (tables whose meta has "kf":1, every table created since): in spaces
 *            0..254, a C(hash) (the table's hash key, the index's, and the table's at the end
 *            of index entries) longer than TBL__HASH_INLINE (64) bytes is written 'H' (0x48, no
 *            C() starts with it) + SHA-256 of it: partitions need only equality (and entries
 *            with equal index keys no particular order), so sort keys get the room.  h32 is
 *            over C(hash) either way; the TTL index keeps C().  Format 0 (meta without "kf"):
 *            C(hash) everywhere.  Both stay readable; nothing is migrated.
 *   h32    = high 32 bits of a mixed 64-bit FNV-1a of C(hash), big-endian: items of one hash key
 *            are contiguous, and Scan segment s of T is the h32 range [ceil(s*2^32/T),
 *            ceil((s+1)*2^32/T)), one contiguous key range.
 *   A key longer than 511 bytes is stored as its first 479 bytes + SHA-256 of all of it, so
 *   a stored key of exactly 511 bytes may be folded; the unfolded key is rebuilt from the
 *   item's key attributes.  LMDB's order is the unfolded keys' order except among stored keys
 *   longer than 479 bytes sharing their first 479: Query and Scan sort those on unfolded keys
 *   ("query and scan: exact key order" in tbl_read.c).
 *
 *   Item value (tables and indexes):
 *     offset 0   u8      version (1)
 *     offset 1   u8      flags: bit 0 = the item has a TTL expiry (valid only while the table's
 *                        TTL is enabled; enabling TTL rewrites every header's bit 0, in the
 *                        background, so expiry deletes re-check the item's attribute);
 *                        bit 1 = the unfolded key's tail follows (TB_VAL_KEYTAIL)
 *     offset 2   u16     0
 *     offset 4   u32 LE  tbl_item_size of the stored item (counters, 1 MB paging, capacity)
 *     offset 8   i64 LE  TTL expiry, epoch seconds (flag bit 0)
 *     [bit 1:]   u32 LE  L, then L bytes: the unfolded key from byte 479 on.  Written when the
 *                        stored key is 511 bytes long (it may be folded), so Query can order a
 *                        fold group without parsing items; values written before this flag
 *                        existed have none, and their key is rebuilt from the item.
 *     then       ...     the item as compact JSON text in DynamoDB wire form (no NUL)
 *
 *   Why JSON text: the adapter already holds items as jansson values, a PutItem's text is dumped
 *   on the HTTP thread, the writer copies it; GetItem can return the stored text untouched
 *   (want_raw) with no parse and no dump; only conditions, updates and index upkeep parse the
 *   old item (jansson, ~1-3 us for small items).  A binary encoding would save space but needs
 *   a conversion both ways on every request.
 */
#include "table/tbl.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/clock.h"
#include "table/tbl_int.h"

_Thread_local tb_scratch_t *tbl__tls_scratch;
static pthread_key_t scr_key;
static pthread_once_t scr_once = PTHREAD_ONCE_INIT;

static void scr_free(void *p) { free(p); }
static void scr_key_make(void) { pthread_key_create(&scr_key, scr_free); }

/* ---- small helpers ------------------------------------------------------------------------- */

/* tbl__scratch's first call on a thread (tbl_int.h). */
tb_scratch_t *tbl__scratch_new(void) {
    if (!tbl__tls_scratch) {
        pthread_once(&scr_once, scr_key_make);
        tbl__tls_scratch = tr_xmalloc(sizeof *tbl__tls_scratch);
        pthread_setspecific(scr_key, tbl__tls_scratch);
    }
    return tbl__tls_scratch;
}

int64_t tbl__now_ms(const tbl_t *db) {
    return db->opts.clock_ms ? db->opts.clock_ms(db->opts.clock_arg) : tr_now_ms();
}

/* Message for an LMDB failure, with the fix. */
int tbl__mdb_fail(tr_err *err, int rc, const char *what) {
    if (rc == MDB_MAP_FULL)
        return tr_err_set(err, TR_EIO,
                          "table storage is full while %s (LMDB map size "
                          "reached); raise the tables map size",
                          what);
    if (rc == MDB_TXN_FULL)
        return tr_err_set(err, TR_EIO,
                          "too many changes in one transaction while %s; split the "
                          "request",
                          what);
    return tr_err_set(err, TR_EIO, "storage error while %s: %s", what, mdb_strerror(rc));
}

/* ---- the name map -------------------------------------------------------------------------- */

size_t tbl__map_lower(tbl_t *db, const char *name) {
    size_t lo = 0, hi = db->n_tabs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(db->tabs[mid]->name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Caller holds tlock (or is the writer thread). */
tb_table_t *tbl__map_find(tbl_t *db, const char *name) {
    size_t i = tbl__map_lower(db, name);
    return i < db->n_tabs && !strcmp(db->tabs[i]->name, name) ? db->tabs[i] : NULL;
}

/* Writer thread: insert or replace (the old snapshot is retired and unreferenced). */
void tbl__map_set(tbl_t *db, tb_table_t *t) {
    pthread_rwlock_wrlock(&db->tlock);
    size_t i = tbl__map_lower(db, t->name);
    tb_table_t *old = NULL;
    if (i < db->n_tabs && !strcmp(db->tabs[i]->name, t->name)) {
        old = db->tabs[i];
        db->tabs[i] = t;
    } else {
        if (db->n_tabs == db->cap_tabs) {
            db->cap_tabs = db->cap_tabs ? 2 * db->cap_tabs : 16;
            db->tabs = tr_xrealloc(db->tabs, db->cap_tabs * sizeof *db->tabs);
        }
        memmove(db->tabs + i + 1, db->tabs + i, (db->n_tabs - i) * sizeof *db->tabs);
        db->tabs[i] = t;
        db->n_tabs++;
    }
    pthread_rwlock_unlock(&db->tlock);
    if (old) {
        atomic_store(&old->retired, 1);
        tbl__tab_unref(old);
    }
}

void tbl__map_remove(tbl_t *db, const char *name) {
    pthread_rwlock_wrlock(&db->tlock);
    size_t i = tbl__map_lower(db, name);
    tb_table_t *old = NULL;
    if (i < db->n_tabs && !strcmp(db->tabs[i]->name, name)) {
        old = db->tabs[i];
        memmove(db->tabs + i, db->tabs + i + 1, (db->n_tabs - i - 1) * sizeof *db->tabs);
        db->n_tabs--;
    }
    pthread_rwlock_unlock(&db->tlock);
    if (old) {
        atomic_store(&old->retired, 1);
        tbl__tab_unref(old);
    }
}

/* Any thread: a referenced snapshot, or NULL + TR_ENOTFOUND. */
tb_table_t *tbl__tab_get(tbl_t *db, const char *name, tr_err *err) {
    tb_table_t *t = NULL;
    if (name) {
        pthread_rwlock_rdlock(&db->tlock);
        t = tbl__map_find(db, name);
        if (t) tbl__tab_ref(t);
        pthread_rwlock_unlock(&db->tlock);
    }
    if (!t) tr_err_set(err, TR_ENOTFOUND, NOT_FOUND);
    return t;
}

/* Writer thread: the current snapshot of the table t was taken from, or NULL if it is gone. */
tb_table_t *tbl__tab_current(tbl_t *db, tb_table_t *t) {
    if (!atomic_load_explicit(&t->retired, memory_order_acquire)) return t;
    tb_table_t *c = tbl__map_find(db, t->name);
    return c && c->id == t->id ? c : NULL;
}

/* ---- counters ------------------------------------------------------------------------------ */

static void stats_key(uint8_t k[5], uint32_t tid, uint8_t space) { prefix_put(k, tid, space); }

static int stats_write(tbl_t *db, MDB_txn *txn, const tb_table_t *t, uint8_t space) {
    uint8_t k[5], v[16];
    stats_key(k, t->id, space);
    put_le64(v, t->st_items[space]);
    put_le64(v + 8, t->st_bytes[space]);
    MDB_val kv = {5, k}, vv = {16, v};
    return mdb_put(txn, db->db_stats, &kv, &vv, 0);
}

int tbl__stats_write_all(tbl_t *db, MDB_txn *txn, const tb_table_t *t) {
    int rc = stats_write(db, txn, t, TBL__SPACE_TABLE);
    for (size_t i = 0; !rc && i < t->n_idx; i++) rc = stats_write(db, txn, t, t->idx[i].space);
    return rc;
}

void tbl__stats_read(tbl_t *db, MDB_txn *txn, uint32_t tid, uint8_t space, uint64_t *items,
                     uint64_t *bytes) {
    uint8_t k[5];
    stats_key(k, tid, space);
    MDB_val kv = {5, k}, vv;
    *items = *bytes = 0;
    if (!mdb_get(txn, db->db_stats, &kv, &vv) && vv.mv_size == 16) {
        *items = get_le64(vv.mv_data);
        *bytes = get_le64((uint8_t *)vv.mv_data + 8);
    }
}

static void stats_load(tbl_t *db, MDB_txn *txn, tb_table_t *t) {
    tbl__stats_read(db, txn, t->id, 0, &t->st_items[0], &t->st_bytes[0]);
    for (size_t i = 0; i < t->n_idx; i++) {
        uint8_t s = t->idx[i].space;
        tbl__stats_read(db, txn, t->id, s, &t->st_items[s], &t->st_bytes[s]);
    }
}

void tbl__mark_dirty(tbl_t *db, tb_table_t *t) {
    if (t->dirty) return;
    t->dirty = 1;
    if (db->n_dirty == db->cap_dirty) {
        db->cap_dirty = db->cap_dirty ? 2 * db->cap_dirty : 16;
        db->dirty = tr_xrealloc(db->dirty, db->cap_dirty * sizeof *db->dirty);
    }
    tbl__tab_ref(t);
    db->dirty[db->n_dirty++] = t;
}

int tbl__dirty_flush(tbl_t *db, MDB_txn *txn) {
    int rc = 0;
    for (size_t i = 0; !rc && i < db->n_dirty; i++)
        rc = tbl__stats_write_all(db, txn, db->dirty[i]);
    return rc;
}

/* After an abort: counters back to what LMDB holds. */
void tbl__dirty_reload(tbl_t *db) {
    if (!db->n_dirty) return;
    MDB_txn *txn;
    if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) return;
    for (size_t i = 0; i < db->n_dirty; i++) stats_load(db, txn, db->dirty[i]);
    mdb_txn_abort(txn);
}

void tbl__dirty_clear(tbl_t *db) {
    for (size_t i = 0; i < db->n_dirty; i++) {
        db->dirty[i]->dirty = 0;
        tbl__tab_unref(db->dirty[i]);
    }
    db->n_dirty = 0;
}

/* ---- read transactions --------------------------------------------------------------------- */

int tbl__rtxn_get(tbl_t *db, MDB_txn **out, tr_err *err) {
    MDB_txn *t = NULL;
    pthread_mutex_lock(&db->rmu);
    if (db->n_rpool) t = db->rpool[--db->n_rpool];
    pthread_mutex_unlock(&db->rmu);
    int rc;
    if (t) {
        rc = mdb_txn_renew(t);
        if (rc) mdb_txn_abort(t);
    } else {
        rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &t);
    }
    if (rc) return tbl__mdb_fail(err, rc, "starting a read");
    *out = t;
    return 0;
}

void tbl__rtxn_put(tbl_t *db, MDB_txn *t) {
    mdb_txn_reset(t);
    pthread_mutex_lock(&db->rmu);
    if (db->n_rpool < TB_RPOOL) {
        db->rpool[db->n_rpool++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&db->rmu);
    if (t) mdb_txn_abort(t);
}

void tbl__wait_init(tb_wait_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = w->rc = 0;
}

void tbl__wait_cb(void *arg, int rc) {
    tb_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int tbl__wait_end(tb_wait_t *w) {
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->rc;
}

int tbl__on_writer(tbl_t *db, tr_err *err) {
    if (db->writer_started && pthread_equal(pthread_self(), db->writer))
        return tr_err_set(err, TR_EINVAL,
                          "a synchronous table call was made from a write "
                          "callback; it would wait for itself");
    return 0;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static void db_free(tbl_t *db) {
    for (size_t i = 0; i < db->n_tabs; i++) tbl__tab_unref(db->tabs[i]);
    free(db->tabs);
    for (int i = 0; i < db->n_rpool; i++) mdb_txn_abort(db->rpool[i]);
    if (db->env) mdb_env_close(db->env);
    free(db->dirty);
    free(db->dir);
    free(db);
}

static int meta_load(tbl_t *db, tr_err *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc) return tbl__mdb_fail(err, rc, "opening the table store");
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->db_meta)) ||
        (rc = mdb_dbi_open(txn, "items", MDB_CREATE, &db->db_items)) ||
        (rc = mdb_dbi_open(txn, "stats", MDB_CREATE, &db->db_stats)) ||
        (rc = mdb_dbi_open(txn, "tokens", MDB_CREATE, &db->db_tokens))) {
        mdb_txn_abort(txn);
        return tbl__mdb_fail(err, rc, "opening the table store");
    }
    db->next_id = 1;
    MDB_val k = {9, "n/next_id"}, v;
    if (!mdb_get(txn, db->db_meta, &k, &v) && v.mv_size == 4) db->next_id = get_le32(v.mv_data);
    MDB_cursor *dc;
    if (!mdb_cursor_open(txn, db->db_meta, &dc)) {
        MDB_val dk = {2, "d/"};
        for (int r = mdb_cursor_get(dc, &dk, &v, MDB_SET_RANGE);
             !r && (dk.mv_size == 10 || dk.mv_size == 12) && !memcmp(dk.mv_data, "d/", 2);
             r = mdb_cursor_get(dc, &dk, &v, MDB_NEXT)) {
            atomic_store(&db->bg_pending, 1);   /* a deleted table's items are left */
            uint8_t idb[5];
            tbl__marker_bytes(&dk, idb);
            uint32_t id = get_be32(idb);
            if (id >= db->next_id) db->next_id = id + 1;   /* never reused, by construction */
        }
        dk = (MDB_val){2, "l/"};
        if (!mdb_cursor_get(dc, &dk, &v, MDB_SET_RANGE) && dk.mv_size == 10 &&
            !memcmp(dk.mv_data, "l/", 2))
            atomic_store(&db->bg_pending, 1);   /* TTL indexing of existing items is left */
        mdb_cursor_close(dc);
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, db->db_meta, &c))) {
        mdb_txn_abort(txn);
        return tbl__mdb_fail(err, rc, "opening the table store");
    }
    k = (MDB_val){2, "t/"};
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 2 || memcmp(k.mv_data, "t/", 2)) break;
        json_error_t je;
        json_t *j = json_loadb(v.mv_data, v.mv_size, 0, &je);
        if (!j) {
            mdb_cursor_close(c);
            mdb_txn_abort(txn);
            return tr_err_set(err, TR_ECORRUPT,
                              "table metadata %.*s is corrupt (%s); restore "
                              "DATA/tables from a backup",
                              (int)k.mv_size, (char *)k.mv_data, je.text);
        }
        tb_table_t *t = tbl__tab_from_json(j);
        json_decref(j);
        stats_load(db, txn, t);
        for (size_t i = 0; i < t->n_idx; i++)
            if (t->idx[i].status == TBL_STATUS_CREATING) atomic_store(&db->bg_pending, 1);
        if (db->n_tabs == db->cap_tabs) {
            db->cap_tabs = db->cap_tabs ? 2 * db->cap_tabs : 16;
            db->tabs = tr_xrealloc(db->tabs, db->cap_tabs * sizeof *db->tabs);
        }
        db->tabs[db->n_tabs++] = t; /* LMDB order == name order */
        if (t->id >= db->next_id) db->next_id = t->id + 1;
    }
    mdb_cursor_close(c);
    rc = mdb_txn_commit(txn);
    if (rc) return tbl__mdb_fail(err, rc, "opening the table store");
    return 0;
}

int tbl_open(const char *dir, const tbl_opts_t *opts, tbl_t **out, tr_err *err) {
    if (!dir || !out) return tr_err_set(err, TR_EINVAL, "tbl_open needs a directory");
    *out = NULL;
    if (tr_mkdir_p(dir))
        return tr_err_set(err, TR_EIO,
                          "cannot create %s: %s; check the data directory "
                          "permissions",
                          dir, strerror(errno));
    tbl_t *db = tr_xcalloc(1, sizeof *db);
    db->dir = tr_xstrdup(dir);
    if (opts) db->opts = *opts;
    if (!db->opts.map_size) db->opts.map_size = TB_DEF_MAPSIZE;
    if (!db->opts.max_pending_bytes) db->opts.max_pending_bytes = TB_DEF_PENDING;
    if (!db->opts.max_batch) db->opts.max_batch = TB_DEF_BATCH;
    if (!db->opts.bf_chunk) db->opts.bf_chunk = TB_BF_CHUNK;
    if (!db->opts.ttl_interval_ms) db->opts.ttl_interval_ms = TB_DEF_TTL_MS;
    pthread_rwlock_init(&db->tlock, NULL);
    pthread_mutex_init(&db->qmu, NULL);
    pthread_cond_init(&db->q_cond, NULL);
    pthread_mutex_init(&db->rmu, NULL);
    pthread_mutex_init(&db->smu, NULL);
    pthread_cond_init(&db->s_cond, NULL);
    int rc = mdb_env_create(&db->env);
    if (!rc) rc = mdb_env_set_maxdbs(db->env, 8);
    if (!rc) rc = mdb_env_set_mapsize(db->env, db->opts.map_size);
    if (!rc) rc = mdb_env_set_maxreaders(db->env, 1024);
    if (!rc) rc = mdb_env_open(db->env, dir, MDB_NOTLS | (db->opts.no_sync ? MDB_NOSYNC : 0), 0644);
    if (rc) {
        tr_err_set(err, TR_EIO, "cannot open the table store in %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(db->env, &dead); /* slots left by a crashed process */
    if (mdb_env_get_maxkeysize(db->env) < TBL__KEYMAX) {
        tr_err_set(err, TR_EINTERNAL,
                   "liblmdb allows keys of %d bytes; the table engine needs "
                   "%d: build against a standard liblmdb",
                   mdb_env_get_maxkeysize(db->env), TBL__KEYMAX);
        goto fail;
    }
    if (meta_load(db, err)) goto fail;
    if (pthread_create(&db->writer, NULL, tbl__writer_main, db)) {
        tr_err_set(err, TR_EINTERNAL, "cannot start the table writer thread");
        goto fail;
    }
    db->writer_started = 1;
    if (db->opts.ttl_interval_ms > 0) {
        if (pthread_create(&db->ttl_thr, NULL, tbl__ttl_main, db)) {
            tr_err_set(err, TR_EINTERNAL, "cannot start the TTL thread");
            tbl_close(db);
            return TR_EINTERNAL;
        }
        db->ttl_started = 1;
    }
    *out = db;
    return 0;
fail:
    rc = err ? err->code : TR_EIO;
    db_free(db);
    return rc ? rc : TR_EIO;
}

void tbl_close(tbl_t *db) {
    if (!db) return;
    if (db->ttl_started) {
        pthread_mutex_lock(&db->smu);
        db->s_stop = 1;
        pthread_cond_signal(&db->s_cond);
        pthread_mutex_unlock(&db->smu);
        pthread_join(db->ttl_thr, NULL);
    }
    pthread_mutex_lock(&db->qmu);
    db->stopping = 1;
    pthread_cond_signal(&db->q_cond);
    pthread_mutex_unlock(&db->qmu);
    if (db->writer_started) pthread_join(db->writer, NULL);
    db_free(db);
}

/* ---- synchronous API ----------------------------------------------------------------------- */

int tbl_sync_write(tbl_t *db, tbl_write_t *w, size_t n, tr_err *err) {
    if (!db) return tr_err_set(err, TR_EINVAL, "no table engine");
    int rc = tbl__on_writer(db, err);
    if (rc) return rc;
    tb_wait_t wt;
    tbl__wait_init(&wt);
    rc = tbl_write_submit(db, w, n, tbl__wait_cb, &wt, err);
    if (rc) {
        wt.done = 1;
        tbl__wait_end(&wt);
        return rc;
    }
    rc = tbl__wait_end(&wt);
    if (rc && err) {
        for (size_t i = 0; i < n; i++)
            if (w[i].rc) {
                *err = w[i].err;
                break;
            }
    }
    return rc;
}

int tbl_sync_txn(tbl_t *db, tbl_txn_t *t, tr_err *err) {
    if (!db) return tr_err_set(err, TR_EINVAL, "no table engine");
    int rc = tbl__on_writer(db, err);
    if (rc) return rc;
    tb_wait_t wt;
    tbl__wait_init(&wt);
    rc = tbl_txn_submit(db, t, tbl__wait_cb, &wt, err);
    if (rc) {
        wt.done = 1;
        tbl__wait_end(&wt);
        return rc;
    }
    rc = tbl__wait_end(&wt);
    if (rc && err) *err = t->err;
    return rc;
}

int tbl_handle_open(tbl_t *db, const char *table, tbl_handle_t **out, tr_err *err) {
    if (!db || !table || !out) return tr_err_set(err, TR_EINVAL, "tbl_handle_open: bad args");
    tb_table_t *t = tbl__tab_get(db, table, NULL);
    if (!t) return tr_err_set(err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", table);
    tbl__tab_unref(t);
    tbl_handle_t *h = tr_xcalloc(1, sizeof *h);
    h->db = db;
    h->name = tr_xstrdup(table);
    *out = h;
    return 0;
}

void tbl_handle_close(tbl_handle_t *h) {
    if (!h) return;
    free(h->name);
    free(h);
}

static int sync_one(tbl_handle_t *h, tbl_write_t *w, json_t **attrs, tr_err *err) {
    if (attrs) *attrs = NULL;
    int rc = tbl_sync_write(h->db, w, 1, err);
    if (attrs) *attrs = w->attrs;
    else json_decref(w->attrs);
    json_decref(w->old_item);
    return rc;
}

int tbl_sync_put(tbl_handle_t *h, json_t *item, const tbl_expr_t *cond, json_t **old, tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_PUT,
                     .table = h->name,
                     .item = item,
                     .cond = cond,
                     .return_values = old ? TBL_RV_ALL_OLD : TBL_RV_NONE};
    return sync_one(h, &w, old, err);
}

int tbl_sync_update(tbl_handle_t *h, const json_t *key, const tbl_expr_t *update,
                    const tbl_expr_t *cond, int return_values, json_t **attrs, tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_UPDATE,
                     .table = h->name,
                     .key = key,
                     .update = update,
                     .cond = cond,
                     .return_values = return_values};
    return sync_one(h, &w, attrs, err);
}

int tbl_sync_delete(tbl_handle_t *h, const json_t *key, const tbl_expr_t *cond, json_t **old,
                    tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_DELETE,
                     .table = h->name,
                     .key = key,
                     .cond = cond,
                     .return_values = old ? TBL_RV_ALL_OLD : TBL_RV_NONE};
    return sync_one(h, &w, old, err);
}

int tbl_sync_get(tbl_handle_t *h, const json_t *key, json_t **item, tr_err *err) {
    if (!h || !item) return tr_err_set(err, TR_EINVAL, "tbl_sync_get: bad arguments");
    tbl_get_t g = {.table = h->name, .key = key};
    int rc = tbl_get_many(h->db, &g, 1, err);
    *item = g.item;
    return rc;
}

const char *tbl_status_name(int status) {
    switch (status) {
    case TBL_STATUS_CREATING: return "CREATING";
    case TBL_STATUS_ACTIVE: return "ACTIVE";
    case TBL_STATUS_UPDATING: return "UPDATING";
    case TBL_STATUS_DELETING: return "DELETING";
    default: return "UNKNOWN";
    }
}
