/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_read.c -- the table engine's reads, on the calling thread in an LMDB read transaction:
 * GetItem / BatchGetItem / TransactGetItems (tbl_get_many), and Query / Scan in exact key order
 * (fold groups of long keys read whole and sorted on unfolded keys).
 *
 * Readers take a snapshot reference (tbl.c name map) and never wait for the writer.  Keys are
 * built by tbl_key.c.
 */
#include "table/tbl.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "table/tbl_int.h"

/* ---- reads --------------------------------------------------------------------------------- */

int tbl_get_many(tbl_t *db, tbl_get_t *g, size_t n, tr_err *err) {
    if (!db || (n && !g)) return tr_err_set(err, TR_EINVAL, "tbl_get_many: bad arguments");
    MDB_txn *txn;
    int rc = tbl__rtxn_get(db, &txn, err);
    if (rc) return rc;
    int first = 0;
    tb_table_t *t = NULL;
    for (size_t i = 0; i < n; i++) {
        tbl_get_t *q = &g[i];
        q->rc = 0;
        tr_err_clear(&q->err);
        q->item = NULL;
        q->raw = NULL;
        q->raw_len = q->size = 0;
        if (!t || strcmp(t->name, q->table ? q->table : "")) {
            tbl__tab_unref(t);
            t = tbl__tab_get(db, q->table, &q->err);
        }
        const json_t *h, *r;
        if (!t) q->rc = TR_ENOTFOUND;
        else q->rc = tbl__key_check(t, q->key, &h, &r, &q->err);
        if (!q->rc) {
            uint8_t *pk = tbl__scratch()->pk;
            size_t hl = 0, pn = tbl__pk_build(h, r, pk, &hl);
            tb_key_t k;
            tbl__key_from_pk(t, pk, pn, hl, &k);
            MDB_val kv = {k.n, k.b}, v;
            int mrc = mdb_get(txn, db->db_items, &kv, &v);
            if (mrc == 0 && val_ok(&v)) {
                q->size = val_size(&v);
                if (q->want_raw && !q->projection) {
                    const char *text = tbl__val_text(&v, &q->raw_len);
                    q->raw = tr_xmalloc(q->raw_len + 1);
                    memcpy(q->raw, text, q->raw_len);
                    q->raw[q->raw_len] = '\0';
                } else {
                    q->item = tbl__val_parse(&v);
                    if (!q->item)
                        q->rc = tr_err_set(&q->err, TR_ECORRUPT,
                                           "stored item of table %s is "
                                           "corrupt",
                                           t->name);
                    else if (q->projection) {
                        json_t *p = tbl_expr_project(q->projection, q->item);
                        json_decref(q->item);
                        q->item = p;
                    }
                }
            } else if (mrc && mrc != MDB_NOTFOUND) {
                q->rc = tbl__mdb_fail(&q->err, mrc, "reading an item");
            }
        }
        if (q->rc && !first) {
            first = q->rc;
            if (err) *err = q->err;
        }
    }
    tbl__tab_unref(t);
    tbl__rtxn_put(db, txn);
    return first;
}

/* ---- query and scan: exact key order ------------------------------------------------------- *
 *
 * LMDB orders stored keys bytewise, and a stored key is the unfolded key (tid|space|h32|C(h)
 * [C(r)]...) except past TBL__FOLD_KEEP bytes: a key longer than LMDB's limit keeps only its
 * first TBL__FOLD_KEEP bytes, then a digest.  So LMDB's order is the exact order of unfolded keys
 * everywhere except inside a "fold group": the run of stored keys longer than TBL__FOLD_KEEP that
 * share their first TBL__FOLD_KEEP bytes (such keys are contiguous; a key of at most that length
 * compares with all of them alike, being decided within its own length).  A page is read in
 * LMDB order, every bound and the start key compared on unfolded keys; a fold group is read
 * whole and its entries that fall in the range are taken in unfolded-key order (each entry's
 * unfolded key is the stored key, or, for a folded one, rebuilt from the item's key
 * attributes).  Memory stays bounded: only the entries the page can still take are kept
 * (limit and TBL_PAGE_BYTES), so a group is read once per page.  Cost: a page that reaches a
 * group reads all of it; groups only form among keys sharing their first ~470 bytes. */

/* An unfolded key (a bound or a start key): n bytes at b, inline when short. */
typedef struct tb_fkey {
    size_t n;
    uint8_t *b;
    uint8_t in[TBL__KEYMAX];
} tb_fkey_t;

typedef struct tb_range {
    tb_fkey_t P, lo, hi, S;     /* P: the partition (or table/index space) every key extends */
    int has_lo, lo_excl, has_hi, hi_excl, has_S;
    int dir;                    /* reading direction: 1 forward, -1 backward */
} tb_range_t;

/* A fold group entry kept for the page. */
typedef struct tb_cand {
    uint8_t *f;                 /* unfolded key (owned) */
    size_t n;
    MDB_val v;                  /* value (LMDB memory, valid for the read txn) */
    uint32_t size;
} tb_cand_t;

/* The entries of a fold group the page can take: a heap whose root is the last one in reading
 * order, trimmed to what the page's limit and byte budget can still hold. */
typedef struct tb_sel {
    tb_cand_t *c;
    size_t n, cap;
    uint64_t bytes;             /* sum of c[].size */
    int dir;
    int dropped;                /* an entry in range was left out */
} tb_sel_t;

/* One page being read. */
typedef struct tb_page {
    tbl_t *db;
    const tb_table_t *t;
    const tb_index_t *ix;
    tbl_query_t *q;
    MDB_txn *txn;
    const tb_range_t *g;
    int need_item, fetch_base;
    json_t *last;               /* the item that ended the page */
    tr_err *err;
} tb_page_t;

static void fkey_set(tb_fkey_t *f, const uint8_t *p, size_t n) {
    if (f->b && f->b != f->in) free(f->b);
    f->b = n <= sizeof f->in ? f->in : tr_xmalloc(n);
    memcpy(f->b, p, n);
    f->n = n;
}

static void fkey_free(tb_fkey_t *f) {
    if (f->b != f->in) free(f->b);
    f->b = NULL;
    f->n = 0;
}

/* Bytes of f LMDB can seek on: all of it, or the part every folded key keeps. */
static size_t fkey_seekable(const tb_fkey_t *f) {
    return f->n <= TBL__FOLD_KEEP ? f->n : TBL__FOLD_KEEP;
}

/* memcmp order of a[0..an) and b[0..bn) (a prefix sorts first): -1, 0 or 1. */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

/* a against the bound b[0..bn): 0 when a extends b, else their order. */
static int bytes_cmp_prefix(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : 0;
}

/* Where the unfolded key f[0..n) lies: 0 in the range, -1 below it, 1 above it (key order;
 * the start key is a lower bound forward, an upper bound backward).  in_P: f is known to extend
 * g->P. */
__attribute__((always_inline)) static inline int range_pos(const tb_range_t *g, const uint8_t *f,
                                                           size_t n, int in_P) {
    int c = in_P ? 0 : bytes_cmp_prefix(f, n, g->P.b, g->P.n);
    if (c) return c;
    if (g->has_lo) {
        c = bytes_cmp_prefix(f, n, g->lo.b, g->lo.n);
        if (g->lo_excl ? c <= 0 : c < 0) return -1;
    }
    if (g->has_hi) {
        c = bytes_cmp_prefix(f, n, g->hi.b, g->hi.n);
        if (g->hi_excl ? c >= 0 : c > 0) return 1;
    }
    if (g->has_S) {
        c = bytes_cmp(f, n, g->S.b, g->S.n);
        if (g->dir > 0 && c <= 0) return -1;
        if (g->dir < 0 && c >= 0) return 1;
    }
    return 0;
}

/* Smallest key greater than every key starting with b[0..n) into out; its length, 0 if none. */
static size_t key_succ(const uint8_t *b, size_t n, uint8_t *out) {
    memcpy(out, b, n);
    while (n && out[n - 1] == 0xFF) n--;
    if (n) out[n - 1]++;
    return n;
}

/* Position at the first key >= b (n <= TBL__FOLD_KEEP), or with after past every key extending
 * b. */
static int seek(MDB_cursor *c, const uint8_t *b, size_t n, int after, MDB_val *k, MDB_val *v) {
    uint8_t s[TBL__KEYMAX];
    if (after && !(n = key_succ(b, n, s))) return MDB_NOTFOUND;
    *k = (MDB_val){n, after ? s : (void *)b};
    return mdb_cursor_get(c, k, v, MDB_SET_RANGE);
}

/* Position at the last key < b (n <= TBL__FOLD_KEEP), or with incl the last key extending or
 * below b. */
static int seek_back(MDB_cursor *c, const uint8_t *b, size_t n, int incl, MDB_val *k, MDB_val *v) {
    uint8_t s[TBL__KEYMAX];
    int rc;
    if (incl && !(n = key_succ(b, n, s))) return mdb_cursor_get(c, k, v, MDB_LAST);
    *k = (MDB_val){n, incl ? s : (void *)b};
    rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) return mdb_cursor_get(c, k, v, MDB_LAST);
    if (rc) return rc;
    return mdb_cursor_get(c, k, v, MDB_PREV);
}

/* Bound tid|sp|h32|C(h)[C(r)], unfolded. */
static int bound_make(const tb_table_t *t, uint8_t sp, const json_t *h, const json_t *r,
                      tb_fkey_t *f) {
    size_t n = tbl__key_full(t, sp, h, r, NULL, 0);
    if (!n) return -1;
    fkey_set(f, tbl__scratch()->full, n);
    return 0;
}

/* begins_with upper bound: the smallest value greater than every value starting with av. */
static json_t *value_succ(const json_t *av, int type) {
    json_t *v = tbl__av_inner(av);
    size_t n = json_string_length(v);
    uint8_t *b = NULL;
    if (type == TBL_T_S) {
        b = tr_xmalloc(n + 1);
        memcpy(b, json_string_value(v), n);
    } else {
        b = tr_xmalloc(tr_base64_decoded_max(n) + 1);
        long dn = tr_base64_decode(json_string_value(v), n, b);
        if (dn < 0) {
            free(b);
            return NULL;
        }
        n = (size_t)dn;
    }
    while (n && b[n - 1] == 0xFF) n--;
    json_t *out = NULL;
    if (n) {
        b[n - 1]++;
        if (type == TBL_T_S) {
            out = json_pack("{s:o}", "S", json_stringn_nocheck((const char *)b, n));
        } else {
            tr_buf t = TR_BUF_INIT;
            tr_buf_base64(&t, b, n);
            out = json_pack("{s:s#}", "B", t.data, t.len);
            tr_buf_free(&t);
        }
    }
    free(b);
    return out;
}

#define BAD_START                                                                                  \
    "The provided starting key is invalid: The provided key element does not match "               \
    "the schema"

/* Unfolded key of an ExclusiveStartKey. */
static int esk_build(const tb_table_t *t, const tb_index_t *ix, const json_t *esk, tb_fkey_t *S,
                     tr_err *err) {
    if (!json_is_object(esk)) return tr_err_set(err, TR_EVALIDATION, BAD_START);
    const char *names[4] = {t->hash, t->range, ix ? ix->hash : NULL, ix ? ix->range : NULL};
    int types[4] = {t->htype, t->rtype, ix ? ix->htype : -1, ix ? ix->rtype : -1};
    const json_t *v[4] = {NULL, NULL, NULL, NULL};
    size_t distinct = 0;
    for (int i = 0; i < 4; i++) {
        if (!names[i]) continue;
        int dup = 0;
        for (int k = 0; k < i; k++) dup |= names[k] && !strcmp(names[k], names[i]);
        distinct += !dup;
        v[i] = json_object_get(esk, names[i]);
        if (!v[i] || tbl_av_type(v[i]) != types[i] || tbl__key_value_empty(v[i], types[i]))
            return tr_err_set(err, TR_EVALIDATION, BAD_START);
    }
    if (json_object_size(esk) != distinct) return tr_err_set(err, TR_EVALIDATION, BAD_START);
    size_t n;
    if (!ix) {
        n = tbl__key_full(t, 0, v[0], v[1], NULL, 0);
    } else {
        uint8_t *pk = tbl__scratch()->pk;
        size_t pn = tbl__pk_build(v[0], v[1], pk, NULL);
        n = pn ? tbl__key_full(t, ix->space, v[2], v[3], pk, pn) : 0;
    }
    if (!n) return tr_err_set(err, TR_EVALIDATION, BAD_START);
    fkey_set(S, tbl__scratch()->full, n);
    return 0;
}

static json_t *lek_of(const tb_table_t *t, const tb_index_t *ix, const json_t *item) {
    json_t *o = json_object();
    const char *names[4] = {t->hash, t->range, ix ? ix->hash : NULL, ix ? ix->range : NULL};
    for (int i = 0; i < 4; i++) {
        json_t *v = names[i] ? json_object_get(item, names[i]) : NULL;
        if (v) json_object_set(o, names[i], v);
    }
    return o;
}

/* The base-table item an LSI entry points to (new reference or NULL). */
static json_t *base_fetch(tbl_t *db, MDB_txn *txn, const tb_table_t *t, const json_t *entry) {
    uint8_t *pk = tbl__scratch()->pk;
    size_t pn = tbl__item_pk(t, entry, pk);
    json_t *out = NULL;
    if (pn) {
        tb_key_t k;
        tbl__key_from_pk(t, pk, pn, tbl__pk_hlen(pk, pn), &k);
        MDB_val kv = {k.n, k.b}, v;
        if (!mdb_get(txn, db->db_items, &kv, &v)) out = tbl__val_parse(&v);
    }
    return out;
}

static int kc_check(const tbl_keycond_t *kc, const char *hname, const char *rname, int htype,
                    int rtype, tr_err *err) {
    if (!kc->hash)
        return tr_err_set(err, TR_EVALIDATION, "Query condition missed key schema element: %s",
                          hname);
    if (tbl_av_type(kc->hash) != htype)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Condition parameter type does not match "
                                  "schema type");
    if (kc->range_op == TBL_KC_NONE) return 0;
    if (!rname) return tr_err_set(err, TR_EVALIDATION, "Query key condition not supported");
    if (!kc->range_a || tbl_av_type(kc->range_a) != rtype ||
        (kc->range_op == TBL_KC_BETWEEN && (!kc->range_b || tbl_av_type(kc->range_b) != rtype)))
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Condition parameter type does not match "
                                  "schema type");
    if (kc->range_op == TBL_KC_BEGINS_WITH && rtype == TBL_T_N)
        return tr_err_set(err, TR_EVALIDATION,
                          "Invalid KeyConditionExpression: Incorrect operand type for operator or "
                          "function; operator or function: begins_with, operand type: N");
    if (kc->range_op == TBL_KC_BETWEEN && tbl_av_cmp(kc->range_a, kc->range_b) > 0)
        return tr_err_set(err, TR_EVALIDATION,
                          "Invalid KeyConditionExpression: The BETWEEN operator requires upper "
                          "bound to be greater than or equal to lower bound");
    return 0;
}

/* The unfolded key of a stored entry (val_ok): the stored key itself unless it may be folded
 * (folded keys are exactly TBL__FOLD_KEEP + 32 bytes long), else its first TBL__FOLD_KEEP bytes
 * and the tail the value keeps, or (values written before tails were kept) rebuilt from the
 * entry's key attributes; in tbl__scratch()->full.  NULL when the entry cannot be read. */
static const uint8_t *entry_full(const tb_page_t *pg, const MDB_val *k, const MDB_val *v,
                                 size_t *n) {
    if (k->mv_size != TBL__FOLD_KEEP + 32) {
        *n = k->mv_size;
        return k->mv_data;
    }
    size_t tn;
    const uint8_t *tail = tbl__val_key_tail(v, &tn);
    if (tail) {
        if (TBL__FOLD_KEEP + tn > TB_FULLKEY_MAX) return NULL;
        uint8_t *full = tbl__scratch()->full;
        memcpy(full, k->mv_data, TBL__FOLD_KEEP);
        memcpy(full + TBL__FOLD_KEEP, tail, tn);
        *n = TBL__FOLD_KEEP + tn;
        return full;
    }
    json_t *item = tbl__val_parse(v);
    if (!item) return NULL;
    const tb_table_t *t = pg->t;
    const tb_index_t *ix = pg->ix;
    const json_t *h = json_object_get(item, t->hash);
    const json_t *r = t->range ? json_object_get(item, t->range) : NULL;
    size_t len = 0;
    if (h && (!t->range || r)) {
        if (!ix) {
            len = tbl__key_full(t, TBL__SPACE_TABLE, h, r, NULL, 0);
        } else {
            const json_t *ih = json_object_get(item, ix->hash);
            const json_t *ir = ix->range ? json_object_get(item, ix->range) : NULL;
            uint8_t *pk = tbl__scratch()->pk;
            size_t pn = ih && (!ix->range || ir) ? tbl__pk_build(h, r, pk, NULL) : 0;
            if (pn) len = tbl__key_full(t, ix->space, ih, ir, pk, pn);
        }
    }
    json_decref(item);
    *n = len;
    return len ? tbl__scratch()->full : NULL;
}

/* a comes after b in the selection's reading direction. */
static int cand_after(const tb_sel_t *s, const tb_cand_t *a, const tb_cand_t *b) {
    return s->dir * bytes_cmp(a->f, a->n, b->f, b->n) > 0;
}

static void sel_down(tb_sel_t *s, size_t i, size_t n) {
    for (;;) {
        size_t m = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cand_after(s, &s->c[l], &s->c[m])) m = l;
        if (r < n && cand_after(s, &s->c[r], &s->c[m])) m = r;
        if (m == i) return;
        tb_cand_t x = s->c[i];
        s->c[i] = s->c[m];
        s->c[m] = x;
        i = m;
    }
}

/* Add an entry; then drop the last ones while the page would end before reaching them: more
 * than lim entries, or the ones before the last already fill room bytes. */
static void sel_add(tb_sel_t *s, const uint8_t *f, size_t n, const MDB_val *v, size_t lim,
                    uint64_t room) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->c = tr_xrealloc(s->c, s->cap * sizeof *s->c);
    }
    size_t i = s->n++;
    s->c[i] = (tb_cand_t){memcpy(tr_xmalloc(n), f, n), n, *v, val_size(v)};
    s->bytes += s->c[i].size;
    while (i && cand_after(s, &s->c[i], &s->c[(i - 1) / 2])) {
        tb_cand_t x = s->c[i];
        s->c[i] = s->c[(i - 1) / 2];
        s->c[(i - 1) / 2] = x;
        i = (i - 1) / 2;
    }
    while (s->n > lim || (s->n > 1 && s->bytes - s->c[0].size >= room)) {
        s->bytes -= s->c[0].size;
        free(s->c[0].f);
        s->c[0] = s->c[--s->n];
        sel_down(s, 0, s->n);
        s->dropped = 1;
    }
}

/* Add one entry to the page (filter, projection, counts).  0: go on, 1: the page is full
 * (pg->last set), < 0: error.  range_pos and page_add run per key read: inlined, a COUNT page
 * costs what it did before exact ordering (+1.8% instructions in a callgrind run, +60 per key
 * when they were calls). */
__attribute__((always_inline)) static inline int page_add(tb_page_t *pg, const MDB_val *v) {
    tbl_query_t *q = pg->q;
    if (!val_ok(v)) return 0;
    json_t *item = NULL;
    if (pg->need_item && !(item = tbl__val_parse(v))) return 0;
    q->scanned++;
    q->scanned_bytes += val_size(v);
    if (pg->fetch_base) {
        json_t *b = base_fetch(pg->db, pg->txn, pg->t, item);
        if (b) {
            json_decref(item);
            item = b;
        }
    }
    int pass = 1, rc;
    if (q->filter && (rc = tbl_expr_eval(q->filter, item, &pass, pg->err))) {
        json_decref(item);
        return rc;
    }
    if (pass) {
        q->count++;
        if (q->items)
            json_array_append_new(q->items, q->select == TBL_SELECT_SPECIFIC
                                                ? tbl_expr_project(q->projection, item)
                                                : json_incref(item));
    }
    if ((q->limit && q->scanned >= q->limit) || q->scanned_bytes >= TBL_PAGE_BYTES) {
        pg->last = item ? item : tbl__val_parse(v);
        return 1;
    }
    json_decref(item);
    return 0;
}

/* Read the fold group the cursor is on (its first entry in reading direction): add its entries
 * in range to the page in unfolded-key order.  Leaves the cursor on the first key past the group
 * (*mrc from that move).  Returns as page_add. */
static int group_read(tb_page_t *pg, MDB_cursor *cur, MDB_val *k, MDB_val *v, int *mrc) {
    const tb_range_t *g = pg->g;
    tbl_query_t *q = pg->q;
    MDB_cursor_op step = g->dir > 0 ? MDB_NEXT : MDB_PREV;
    uint8_t gp[TBL__FOLD_KEEP], first[TBL__KEYMAX];
    size_t first_n = k->mv_size;
    memcpy(gp, k->mv_data, TBL__FOLD_KEEP);
    memcpy(first, k->mv_data, first_n);
    uint8_t *x = NULL; /* the last entry added (unfolded key): later rounds start past it */
    size_t xn = 0;
    tb_sel_t s = {.dir = g->dir};
    int r = 0;
    for (;;) {
        size_t lim = q->limit ? q->limit - q->scanned : SIZE_MAX;
        uint64_t room = TBL_PAGE_BYTES - q->scanned_bytes;
        s.dropped = 0;
        for (; *mrc == 0 && k->mv_size > TBL__FOLD_KEEP && !memcmp(k->mv_data, gp, sizeof gp);
             *mrc = mdb_cursor_get(cur, k, v, step)) {
            if (!val_ok(v)) continue;
            size_t n;
            const uint8_t *f = entry_full(pg, k, v, &n);
            if (!f || range_pos(g, f, n, 0) != 0) continue;
            if (x && g->dir * bytes_cmp(f, n, x, xn) <= 0) continue;
            sel_add(&s, f, n, v, lim, room);
        }
        for (size_t i = s.n; i > 1; i--) { /* heap to reading order */
            tb_cand_t c = s.c[0];
            s.c[0] = s.c[i - 1];
            s.c[i - 1] = c;
            sel_down(&s, 0, i - 1);
        }
        size_t i = 0;
        while (i < s.n && !r) {
            r = page_add(pg, &s.c[i].v);
            free(x);
            x = s.c[i].f;
            xn = s.c[i].n;
            s.c[i++].f = NULL;
        }
        for (; i < s.n; i++) free(s.c[i].f);
        s.n = 0;
        s.bytes = 0;
        /* an entry left out and the page not full (an entry could not be read): read the
         * group again from its start for the rest */
        if (r || !s.dropped) break;
        *k = (MDB_val){first_n, first};
        *mrc = mdb_cursor_get(cur, k, v, MDB_SET_KEY);
    }
    free(x);
    free(s.c);
    return r;
}

static int query_run(tbl_t *db, const tb_table_t *t, tbl_query_t *q, tr_err *err) {
    const tb_index_t *ix = NULL;
    const char *hname = t->hash, *rname = t->range;
    int htype = t->htype, rtype = t->rtype, rc;
    uint8_t sp = TBL__SPACE_TABLE;
    if (q->index) {
        ix = tbl__tab_index(t, q->index);
        if (!ix)
            return tr_err_set(err, TR_EVALIDATION,
                              "The table does not have the specified index: "
                              "%s",
                              q->index);
        if (ix->status == TBL_STATUS_CREATING)
            return tr_err_set(err, TR_EVALIDATION,
                              "Cannot read from backfilling global "
                              "secondary index: %s",
                              q->index);
        hname = ix->hash;
        rname = ix->range;
        htype = ix->htype;
        rtype = ix->rtype;
        sp = ix->space;
    }
    if (q->select < TBL_SELECT_ALL_ATTRIBUTES || q->select > TBL_SELECT_COUNT)
        return tr_err_set(err, TR_EVALIDATION, "unknown Select value %d", q->select);
    if (q->select == TBL_SELECT_SPECIFIC && !q->projection)
        return tr_err_set(err, TR_EVALIDATION,
                          "Select SPECIFIC_ATTRIBUTES needs a "
                          "ProjectionExpression");
    if (q->select == TBL_SELECT_ALL_ATTRIBUTES && ix && !ix->local && ix->proj != TBL_PROJ_ALL)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Select type ALL_ATTRIBUTES is not supported for global "
                                  "secondary index %s because its projection type is not ALL",
                          ix->name);
    int fetch_base = q->select == TBL_SELECT_ALL_ATTRIBUTES && ix && ix->local &&
                     ix->proj != TBL_PROJ_ALL;
    tb_range_t *g = tr_xcalloc(1, sizeof *g);
    g->dir = q->backward ? -1 : 1;
    tbl_keycond_t kc = q->kc;
    if (!q->scan) {
        if (q->keycond_expr && (rc = tbl_expr_keycond(q->keycond_expr, hname, rname, &kc, err)))
            goto out;
        if ((rc = kc_check(&kc, hname, rname, htype, rtype, err))) goto out;
        const json_t *a = kc.range_a;
        int bad = bound_make(t, sp, kc.hash, NULL, &g->P);
        switch (kc.range_op) {
        case TBL_KC_EQ:
            g->has_lo = g->has_hi = 1;
            bad |= bound_make(t, sp, kc.hash, a, &g->lo);
            fkey_set(&g->hi, g->lo.b, g->lo.n);
            break;
        case TBL_KC_LT:
        case TBL_KC_LE:
            g->has_hi = 1;
            g->hi_excl = kc.range_op == TBL_KC_LT;
            bad |= bound_make(t, sp, kc.hash, a, &g->hi);
            break;
        case TBL_KC_GT:
        case TBL_KC_GE:
            g->has_lo = 1;
            g->lo_excl = kc.range_op == TBL_KC_GT;
            bad |= bound_make(t, sp, kc.hash, a, &g->lo);
            break;
        case TBL_KC_BETWEEN:
            g->has_lo = g->has_hi = 1;
            bad |= bound_make(t, sp, kc.hash, a, &g->lo);
            bad |= bound_make(t, sp, kc.hash, kc.range_b, &g->hi);
            break;
        case TBL_KC_BEGINS_WITH: {
            g->has_lo = 1;
            bad |= bound_make(t, sp, kc.hash, a, &g->lo);
            json_t *s = value_succ(a, rtype);
            if (s) {
                g->has_hi = g->hi_excl = 1;
                bad |= bound_make(t, sp, kc.hash, s, &g->hi);
                json_decref(s);
            }
            break;
        }
        default: break;
        }
        if (bad) {
            rc = tr_err_set(err, TR_EVALIDATION,
                            INVALID "a key condition value is longer than "
                                    "a key value can be (2048 bytes)");
            goto out;
        }
    } else {
        uint8_t b[9];
        prefix_put(b, t->id, sp);
        fkey_set(&g->P, b, 5);
        if (q->total_segments) {
            if (q->total_segments > 1000000 || q->segment >= q->total_segments) {
                rc = tr_err_set(err, TR_EVALIDATION,
                                "The Segment parameter is zero-based and must be less than "
                                "parameter TotalSegments: Segment: %u is not less than "
                                "TotalSegments: %u",
                                q->segment, q->total_segments);
                goto out;
            }
            g->has_lo = 1;
            put_be32(b + 5, tbl__seg_lo(q->segment, q->total_segments));
            fkey_set(&g->lo, b, 9);
            if (q->segment + 1 < q->total_segments) {
                g->has_hi = g->hi_excl = 1;
                put_be32(b + 5, tbl__seg_lo(q->segment + 1, q->total_segments));
                fkey_set(&g->hi, b, 9);
            }
        }
    }
    if (q->start_key) {
        if ((rc = esk_build(t, ix, q->start_key, &g->S, err))) goto out;
        if (!q->scan && !tbl_av_equal(json_object_get(q->start_key, hname), kc.hash)) {
            rc = tr_err_set(err, TR_EVALIDATION,
                            "The provided starting key is outside query "
                            "boundaries based on provided condition");
            goto out;
        }
        g->has_S = 1;
    }

    MDB_txn *txn;
    if ((rc = tbl__rtxn_get(db, &txn, err))) goto out;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, db->db_items, &cur))) {
        tbl__rtxn_put(db, txn);
        rc = tbl__mdb_fail(err, rc, "reading");
        goto out;
    }
    /* Start where the range starts in reading direction: a bound longer than TBL__FOLD_KEEP is
     * cut to it (its fold group is then read whole, compared on unfolded keys). */
    MDB_val k, v;
    int mrc;
    if (g->dir > 0) {
        const tb_fkey_t *b = g->has_lo ? &g->lo : &g->P;
        size_t n = fkey_seekable(b);
        mrc = seek(cur, b->b, n, g->has_lo && g->lo_excl && n == b->n, &k, &v);
        if (g->has_S && mrc == 0) {
            n = fkey_seekable(&g->S);
            if (bytes_cmp(k.mv_data, k.mv_size, g->S.b, n) < 0) {
                k = (MDB_val){n, g->S.b};
                mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            }
        }
    } else {
        const tb_fkey_t *b = g->has_hi ? &g->hi : &g->P;
        size_t n = fkey_seekable(b);
        mrc = seek_back(cur, b->b, n, !(g->has_hi && g->hi_excl) || n < b->n, &k, &v);
        if (g->has_S && mrc == 0) {
            n = fkey_seekable(&g->S);
            int incl = n < g->S.n;
            if (incl ? bytes_cmp_prefix(k.mv_data, k.mv_size, g->S.b, n) > 0
                     : bytes_cmp(k.mv_data, k.mv_size, g->S.b, n) >= 0)
                mrc = seek_back(cur, g->S.b, n, incl, &k, &v);
        }
    }
    if (q->select != TBL_SELECT_COUNT) q->items = json_array();
    tb_page_t pg = {
        db,         t,    ix, q, txn, g, q->filter || q->select != TBL_SELECT_COUNT || fetch_base,
        fetch_base, NULL, err};
    size_t pn = fkey_seekable(&g->P);
    int r = 0;
    while (mrc == 0) {
        if (bytes_cmp_prefix(k.mv_data, k.mv_size, g->P.b, pn)) break; /* left the partition */
        if (k.mv_size > TBL__FOLD_KEEP) {
            if ((r = group_read(&pg, cur, &k, &v, &mrc))) break;
            continue;
        }
        int pos = range_pos(g, k.mv_data, k.mv_size, pn == g->P.n);
        if (pos == g->dir) break;
        if (pos == 0) {
            /* every later key lies past this one (exact order here): the start key is passed */
            g->has_S = 0;
            if ((r = page_add(&pg, &v))) break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, g->dir > 0 ? MDB_NEXT : MDB_PREV);
    }
    if (r < 0) rc = r;
    if (!rc && mrc && mrc != MDB_NOTFOUND) rc = tbl__mdb_fail(err, mrc, "reading");
    if (!rc && pg.last) q->last_key = lek_of(t, ix, pg.last);
    json_decref(pg.last);
    mdb_cursor_close(cur);
    tbl__rtxn_put(db, txn);
out:
    fkey_free(&g->P);
    fkey_free(&g->lo);
    fkey_free(&g->hi);
    fkey_free(&g->S);
    free(g);
    return rc;
}

int tbl_query(tbl_t *db, tbl_query_t *q, tr_err *err) {
    if (!db || !q) return tr_err_set(err, TR_EINVAL, "tbl_query: bad arguments");
    q->items = q->last_key = NULL;
    q->count = q->scanned = 0;
    q->scanned_bytes = 0;
    tr_err_clear(&q->err);
    tb_table_t *t = tbl__tab_get(db, q->table, &q->err);
    int rc;
    if (!t) rc = TR_ENOTFOUND;
    else {
        rc = query_run(db, t, q, &q->err);
        tbl__tab_unref(t);
    }
    if (rc) {
        tbl_query_free(q);
        if (err) *err = q->err;
    }
    return rc;
}

void tbl_query_free(tbl_query_t *q) {
    if (!q) return;
    json_decref(q->items);
    json_decref(q->last_key);
    q->items = q->last_key = NULL;
}
