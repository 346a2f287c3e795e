/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_key.c -- the table engine's storage encoding: stored keys (components, partition hash,
 * key formats 0 and 1, folding of long keys), item values (header, key tail, JSON text) and the
 * schema checks that decide whether an item or a key can be stored at all.
 *
 * Pure functions of their arguments (plus the per-thread key scratch of tbl.c): no LMDB
 * environment, no locks.  The byte layouts are drawn in tbl.c ("On-disk format"); the writer
 * (tbl_write.c), the readers (tbl_read.c) and background work (tbl_bg.c) build every key here.
 */
#include "table/tbl.h"

#include <string.h>

#include "core/digest.h"
#include "core/buf.h"
#include "table/tbl_int.h"

/* ---- keys ---------------------------------------------------------------------------------- */

/* Escape n bytes into out (room 2n + 2): 0x00 -> 0x00 0xFF, then the terminator 0x00 0x01. */
static size_t comp_escape(const uint8_t *p, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        out[o++] = p[i];
        if (!p[i]) out[o++] = 0xFF;
    }
    out[o++] = 0x00;
    out[o++] = 0x01;
    return o;
}

/* C(av) appended at out (room 2 * TB_ENC_MAX + 2); 0 if av is not a key value. */
static size_t comp_av(const json_t *av, uint8_t *out) {
    uint8_t tmp[TB_ENC_MAX];
    size_t n = tbl_key_encode(av, tmp, sizeof tmp);
    if (n == 0 || n > sizeof tmp) return 0;
    return comp_escape(tmp, n, out);
}

int tbl__key_format_new = TBL__KEY_FORMAT;

uint32_t tbl__hash32(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (uint32_t)(h >> 32);
}

/* Store full[0..n) as a stored key, folding long keys. */
static void key_fold(tb_key_t *k, const uint8_t *full, size_t n) {
    if (n <= TBL__KEYMAX) {
        memcpy(k->b, full, n);
        k->n = n;
        return;
    }
    memcpy(k->b, full, TBL__FOLD_KEEP);
    tr_sha256(full, n, k->b + TBL__FOLD_KEEP);
    k->n = TBL__FOLD_KEEP + 32;
}

/* pk = C(hash)[C(range)]: into out (room TB_FULLKEY_MAX / 2), returns length, 0 on bad value.
 * *hlen receives the length of C(hash). */
size_t tbl__pk_build(const json_t *h, const json_t *r, uint8_t *out, size_t *hlen) {
    size_t n = comp_av(h, out);
    if (!n) return 0;
    if (hlen) *hlen = n;
    if (r) {
        size_t m = comp_av(r, out + n);
        if (!m) return 0;
        n += m;
    }
    return n;
}

/* Length of the first component C(hash) of a pk. */
size_t tbl__pk_hlen(const uint8_t *pk, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (pk[i] == 0x00) {
            if (pk[i + 1] == 0x01) return i + 2;
            i++; /* 0x00 0xFF */
        }
    }
    return n;
}

/* Key format 1: the partition component C(h) at p (hl bytes, n bytes in all from p) becomes
 * D(h) = 'H' + SHA-256(C(h)) when longer than TBL__HASH_INLINE.  Returns the new length. */
static size_t part_digest(uint8_t *p, size_t hl, size_t n) {
    if (hl <= TBL__HASH_INLINE) return n;
    uint8_t d[32];
    tr_sha256(p, hl, d);
    p[0] = 'H';
    memcpy(p + 1, d, 32);
    memmove(p + 33, p + hl, n - hl);
    return n - hl + 33;
}

/* Unfolded key in a hash-partitioned space of table t (NULL: id 0, format 0),
 * tid|space|h32(C(h))|P(h)[C(r)]|suffix, built in tbl__scratch()->full (until the next key built on
 * this thread; suffix must not point there).  Returns its length, 0 when a value is not a key
 * value. */
size_t tbl__key_full(const tb_table_t *t, uint8_t space, const json_t *h, const json_t *r,
                     const uint8_t *suffix, size_t suffix_n) {
    uint8_t *full = tbl__scratch()->full;
    size_t o = prefix_put(full, t ? t->id : 0, space) + 4, hl = 0;
    size_t n = tbl__pk_build(h, r, full + o, &hl);
    if (!n || o + n + suffix_n > TB_FULLKEY_MAX) return 0;
    put_be32(full + 5, tbl__hash32(full + o, hl));
    if (t && t->kf) n = part_digest(full + o, hl, n);
    o += n;
    if (suffix_n) {
        memcpy(full + o, suffix, suffix_n);
        if (t && t->kf) suffix_n = part_digest(full + o, tbl__pk_hlen(suffix, suffix_n), suffix_n);
    }
    return o + suffix_n;
}

/* Stored key in a hash-partitioned space: tbl__key_full, folded. */
static int key_make(const tb_table_t *t, uint8_t space, const json_t *h, const json_t *r,
                    const uint8_t *suffix, size_t suffix_n, tb_key_t *k) {
    size_t n = tbl__key_full(t, space, h, r, suffix, suffix_n);
    if (!n) return -1;
    key_fold(k, tbl__scratch()->full, n);
    return 0;
}

/* Unfolded key in space 0 of table t from an already built pk (h32 over its first component,
 * hlen bytes), in tbl__scratch()->full; returns its length. */
size_t tbl__key_full_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen) {
    uint8_t *full = tbl__scratch()->full;
    prefix_put(full, t->id, TBL__SPACE_TABLE);
    put_be32(full + 5, tbl__hash32(pk, hlen));
    memcpy(full + 9, pk, pk_n);
    return 9 + (t->kf ? part_digest(full + 9, hlen, pk_n) : pk_n);
}

/* Stored key of space 0 of table t from an already built pk. */
void tbl__key_from_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen,
                      tb_key_t *k) {
    key_fold(k, tbl__scratch()->full, tbl__key_full_pk(t, pk, pk_n, hlen));
}

void tbl__ttl_key(uint32_t tid, int64_t expiry, const uint8_t *pk, size_t pk_n, tb_key_t *k) {
    uint8_t *full = tbl__scratch()->full;
    prefix_put(full, tid, TBL__SPACE_TTL);
    put_be64(full + 5, (uint64_t)expiry);
    memcpy(full + 13, pk, pk_n);
    key_fold(k, full, 13 + pk_n);
}

size_t tbl_key_bytes(const json_t *hash_av, const json_t *range_av, uint8_t *out) {
    if (!hash_av || !out) return 0;
    tb_key_t k;
    if (key_make(NULL, TBL__SPACE_TABLE, hash_av, range_av, NULL, 0, &k)) return 0;
    memcpy(out, k.b + 5, k.n - 5);
    return k.n - 5;
}

uint32_t tbl__seg_lo(uint32_t s, uint32_t total) {
    return (uint32_t)((((uint64_t)s << 32) + total - 1) / total);
}

uint32_t tbl_key_segment(const json_t *hash_av, uint32_t total) {
    if (!hash_av || total == 0) return 0;
    uint8_t *buf = tbl__scratch()->full;
    size_t n = comp_av(hash_av, buf);
    uint32_t h = tbl__hash32(buf, n);
    return (uint32_t)(((uint64_t)h * total) >> 32);
}

/* ---- item values --------------------------------------------------------------------------- */

static void val_hdr(uint8_t *p, uint32_t size, int has_ttl, int64_t ttl) {
    p[0] = TBL__VAL_VERSION;
    p[1] = has_ttl ? 1 : 0;
    p[2] = p[3] = 0;
    put_le32(p + 4, size);
    put_le64(p + 8, (uint64_t)(has_ttl ? ttl : 0));
}

/* The unfolded key's tail a value keeps (flag bit 1, see "On-disk format"): *n bytes, or NULL. */
const uint8_t *tbl__val_key_tail(const MDB_val *v, size_t *n) {
    const uint8_t *p = v->mv_data;
    if (!(p[1] & TB_VAL_KEYTAIL) || v->mv_size < TBL__VAL_HDR + 4) return NULL;
    *n = get_le32(p + TBL__VAL_HDR);
    return *n <= v->mv_size - TBL__VAL_HDR - 4 ? p + TBL__VAL_HDR + 4 : NULL;
}

/* The item's JSON text in a value (val_ok): *n bytes. */
const char *tbl__val_text(const MDB_val *v, size_t *n) {
    size_t off = TBL__VAL_HDR, tn = 0;
    if (tbl__val_key_tail(v, &tn)) off += 4 + tn;
    else if (((const uint8_t *)v->mv_data)[1] & TB_VAL_KEYTAIL) off = v->mv_size;
    *n = v->mv_size - off;
    return (const char *)v->mv_data + off;
}

json_t *tbl__val_parse(const MDB_val *v) {
    if (!val_ok(v)) return NULL;
    size_t n;
    const char *text = tbl__val_text(v, &n);
    return json_loadb(text, n, JSON_ALLOW_NUL, NULL);
}

/* Write an item value under stored key k: header, then, when k may be folded (it has LMDB's
 * full length), the unfolded key full[0..fn) past TBL__FOLD_KEEP, then the text.  LMDB rc. */
int tbl__val_put(MDB_txn *txn, MDB_dbi dbi, const tb_key_t *k, const uint8_t *full, size_t fn,
                 uint32_t size, int has_ttl, int64_t ttl, const char *text, size_t tn,
                 unsigned flags) {
    int tail = k->n == TBL__FOLD_KEEP + 32 && fn > TBL__FOLD_KEEP;
    size_t xn = tail ? 4 + fn - TBL__FOLD_KEEP : 0;
    MDB_val kv = {k->n, (void *)k->b}, v = {TBL__VAL_HDR + xn + tn, NULL};
    int rc = mdb_put(txn, dbi, &kv, &v, flags | MDB_RESERVE);
    if (rc) return rc;
    uint8_t *p = v.mv_data;
    val_hdr(p, size, has_ttl, ttl);
    if (tail) {
        p[1] |= TB_VAL_KEYTAIL;
        put_le32(p + TBL__VAL_HDR, (uint32_t)(fn - TBL__FOLD_KEEP));
        memcpy(p + TBL__VAL_HDR + 4, full + TBL__FOLD_KEEP, fn - TBL__FOLD_KEEP);
    }
    memcpy(p + TBL__VAL_HDR + xn, text, tn);
    return 0;
}

char *tbl__dump(const json_t *item, size_t *n) {
    tr_buf b = TR_BUF_INIT;
    tbl_json_dump(&b, item);
    return tr_buf_detach(&b, n);
}

/* Epoch seconds of a TTL attribute: a number in range.  0 when absent or not usable. */
int tbl__ttl_of(const json_t *item, const char *attr, int64_t *out) {
    if (!item || !attr) return 0;
    json_t *av = json_object_get(item, attr);
    if (!av || tbl_av_type(av) != TBL_T_N) return 0;
    json_t *s = json_object_get(av, "N");
    tbl_num_t x;
    if (!s || tbl_num_parse(json_string_value(s), json_string_length(s), &x, NULL)) return 0;
    if (x.sign <= 0) return 0;
    if (x.exp > 18) return 0;
    int64_t v = 0;
    for (int i = 0; i < x.exp; i++) v = v * 10 + (i < x.n ? x.d[i] : 0);
    *out = v;
    return 1;
}

/* ---- schema checks ------------------------------------------------------------------------- */

json_t *tbl__av_inner(const json_t *av) {
    void *it = json_object_iter((json_t *)av);
    return it ? json_object_iter_value(it) : NULL;
}

/* Bytes of a key value for the size limits: S its UTF-8 bytes, B its decoded bytes. */
static size_t key_value_bytes(const json_t *av, int type) {
    json_t *v = tbl__av_inner(av);
    size_t n = json_string_length(v);
    if (type == TBL_T_B) {
        const char *s = json_string_value(v);
        size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
        return n / 4 * 3 - pad;
    }
    return type == TBL_T_S ? n : 0;
}

int tbl__key_value_empty(const json_t *av, int type) {
    return (type == TBL_T_S || type == TBL_T_B) && json_string_length(tbl__av_inner(av)) == 0;
}

/* Value checks shared by items and keys: emptiness and the size limits. */
static int key_value_check(const char *name, int type, const json_t *av, int is_hash, tr_err *err) {
    if (tbl__key_value_empty(av, type))
        return tr_err_set(err, TR_EVALIDATION,
                          "One or more parameter values are not valid. The AttributeValue for a "
                          "key attribute cannot contain an empty %s value. Key: %s",
                          type == TBL_T_S ? "string" : "binary", name);
    size_t n = key_value_bytes(av, type);
    if (is_hash && n > TB_MAX_HASH_BYTES)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Size of hashkey has exceeded the maximum "
                                  "size limit of 2048 bytes");
    if (!is_hash && n > TB_MAX_RANGE_BYTES)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Aggregated size of all range keys has "
                                  "exceeded the size limit of 1024 bytes");
    return 0;
}

/* The key attributes of a whole item (PutItem). */
int tbl__item_key_check(const tb_table_t *t, const json_t *item, const json_t **h, const json_t **r,
                        tr_err *err) {
    if (!json_is_object(item))
        return tr_err_set(err, TR_EVALIDATION, INVALID "the item must be a map of attributes");
    const char *names[2] = {t->hash, t->range};
    int types[2] = {t->htype, t->rtype};
    const json_t **outs[2] = {h, r};
    *r = NULL;
    for (int i = 0; i < (t->range ? 2 : 1); i++) {
        const json_t *av = json_object_get(item, names[i]);
        if (!av)
            return tr_err_set(err, TR_EVALIDATION, INVALID "Missing the key %s in the item",
                              names[i]);
        int at = tbl_av_type(av);
        if (at != types[i])
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Type mismatch for key %s expected: %s actual: %s", names[i],
                              tbl_type_name(types[i]), tbl_type_name(at));
        int rc = key_value_check(names[i], types[i], av, i == 0, err);
        if (rc) return rc;
        *outs[i] = av;
    }
    return 0;
}

/* A Key parameter: exactly the key attributes. */
int tbl__key_check(const tb_table_t *t, const json_t *key, const json_t **h, const json_t **r,
                   tr_err *err) {
    *h = *r = NULL;
    if (!json_is_object(key) || json_object_size(key) != (t->range ? 2u : 1u))
        return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
    const json_t *hv = json_object_get(key, t->hash);
    if (!hv || tbl_av_type(hv) != t->htype) return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
    int rc = key_value_check(t->hash, t->htype, hv, 1, err);
    if (rc) return rc;
    if (t->range) {
        const json_t *rv = json_object_get(key, t->range);
        if (!rv || tbl_av_type(rv) != t->rtype) return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
        rc = key_value_check(t->range, t->rtype, rv, 0, err);
        if (rc) return rc;
        *r = rv;
    }
    *h = hv;
    return 0;
}

/* Index key attributes of ix present in a new item must have the index's types and not be
 * empty. */
static int index_check_one(const tb_index_t *ix, const json_t *item, int what, tr_err *err) {
    const char *names[2] = {ix->hash, ix->range};
    int types[2] = {ix->htype, ix->rtype};
    for (int k = 0; k < 2; k++) {
        if (!names[k]) continue;
        const json_t *av = json_object_get(item, names[k]);
        if (!av) continue;
        int at = tbl_av_type(av);
        if ((what & IX_TYPE) && at != types[k])
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Type mismatch for Index Key %s Expected: %s Actual: %s "
                                      "IndexName: %s",
                              names[k], tbl_type_name(types[k]), tbl_type_name(at), ix->name);
        if (at != types[k]) continue;
        if ((what & IX_TYPE) &&
            key_value_bytes(av, at) > (k ? TB_MAX_RANGE_BYTES : TB_MAX_HASH_BYTES))
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Size of %s key attribute %s of index %s has exceeded "
                                      "the maximum size limit of %d bytes",
                              k ? "range" : "hash", names[k], ix->name,
                              k ? TB_MAX_RANGE_BYTES : TB_MAX_HASH_BYTES);
        if ((what & IX_EMPTY) && (what & IX_UPDATE) && tbl__key_value_empty(av, at))
            return tr_err_set(err, TR_EVALIDATION,
                              "One or more parameter values are not valid. The update "
                              "expression attempted to update a secondary index key to a "
                              "value that is not supported. The AttributeValue for a key "
                              "attribute cannot contain an empty %s value.",
                              at == TBL_T_S ? "string" : "binary");
        if ((what & IX_EMPTY) && tbl__key_value_empty(av, at))
            return tr_err_set(err, TR_EVALIDATION,
                              "One or more parameter values are not valid. A value specified "
                              "for a secondary index key is not supported. The AttributeValue "
                              "for a key attribute cannot contain an empty %s value. "
                              "IndexName: %s, IndexKey: %s",
                              at == TBL_T_S ? "string" : "binary", ix->name, names[k]);
    }
    return 0;
}

/* index_check_one for every index of t; when several fail, the error names the alphabetically
 * first index, as DynamoDB's does. */
int tbl__index_check(const tb_table_t *t, const json_t *item, int what, tr_err *err) {
    const char *first = NULL;
    int rc = 0;
    for (size_t i = 0; i < t->n_idx; i++) {
        const tb_index_t *ix = &t->idx[i];
        if (first && strcmp(ix->name, first) >= 0) continue;
        tr_err e;
        tr_err_clear(&e);
        int r = index_check_one(ix, item, what, &e);
        if (!r) continue;
        rc = r;
        first = ix->name;
        if (err) *err = e;
    }
    return rc;
}

/* Stored key of item's entry in ix: 1 when the item has one, 0 when it has not (sparse), -1 when
 * a key attribute has the wrong type or is empty (backfill skips such items). */
int tbl__index_key(const tb_index_t *ix, const json_t *item, const uint8_t *pk, size_t pk_n,
                   const tb_table_t *t, tb_key_t *k) {
    const json_t *h = json_object_get(item, ix->hash);
    const json_t *r = ix->range ? json_object_get(item, ix->range) : NULL;
    if (!h || (ix->range && !r)) return 0;
    if (tbl_av_type(h) != ix->htype || tbl__key_value_empty(h, ix->htype)) return -1;
    if (r && (tbl_av_type(r) != ix->rtype || tbl__key_value_empty(r, ix->rtype))) return -1;
    return key_make(t, ix->space, h, r, pk, pk_n, k) ? -1 : 1;
}

/* Unfolded key of item's entry in ix (tbl__index_key returned 1) in tbl__scratch()->full; its
 * length. */
size_t tbl__index_full(const tb_index_t *ix, const json_t *item, const uint8_t *pk, size_t pk_n,
                       const tb_table_t *t) {
    return tbl__key_full(t, ix->space, json_object_get(item, ix->hash),
                         ix->range ? json_object_get(item, ix->range) : NULL, pk, pk_n);
}

/* What an index entry stores: the projected item (new reference). */
json_t *tbl__index_project(const tb_table_t *t, const tb_index_t *ix, json_t *item) {
    if (ix->proj == TBL_PROJ_ALL) return json_incref(item);
    json_t *o = json_object();
    const char *keys[4] = {t->hash, t->range, ix->hash, ix->range};
    for (int i = 0; i < 4; i++) {
        json_t *v = keys[i] ? json_object_get(item, keys[i]) : NULL;
        if (v) json_object_set(o, keys[i], v);
    }
    for (size_t i = 0; i < ix->n_incl; i++) {
        json_t *v = json_object_get(item, ix->incl[i]);
        if (v) json_object_set(o, ix->incl[i], v);
    }
    return o;
}

/* pk of a stored item, from its own key attributes. */
size_t tbl__item_pk(const tb_table_t *t, const json_t *item, uint8_t *out) {
    const json_t *h = json_object_get(item, t->hash);
    const json_t *r = t->range ? json_object_get(item, t->range) : NULL;
    if (!h || (t->range && !r)) return 0;
    return tbl__pk_build(h, r, out, NULL);
}
