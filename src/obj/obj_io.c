/* SPDX-License-Identifier: Apache-2.0
 *
 * obj_io.c -- objects: the streaming writer (put), readers (get, head), delete, copy, listing.
 *
 * A writer keeps the first inline_max bytes in memory and streams the rest of a larger body into
 * DIR/tmp/<id>, hashing it all (MD5, the ETag); commit fdatasyncs a file body and hands a job to
 * the group commit (obj.c), whose apply function evaluates the preconditions and the versioning
 * rules against the current versions, in the commit's transaction, so they are atomic with the
 * write.  Readers take an LMDB read snapshot, decode the version record and copy its inline body
 * or open its body file (objects/, else tmp/: a body is there between the metadata commit and
 * its rename).  Listing walks the "versions" database in key order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/clock.h"
#include "core/mem.h"
#include "obj/obj_int.h"

#define VKEY_MAX (4 + OBJ__SK_MAX + 1 + 8)

/* ==== keys and records ====================================================================== */

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* [bid][SK] into k; returns its length. */
static size_t key_prefix(uint32_t bid, const char *key, size_t n, uint8_t *k) {
    be32(k, bid);
    return 4 + obj__sk(key, n, k + 4);
}

static size_t vkey(uint32_t bid, const char *key, uint64_t seq, uint8_t *k) {
    size_t m = key_prefix(bid, key, strlen(key), k);
    k[m] = 0;
    be64(k + m + 1, ~seq);
    return m + 9;
}

typedef struct rec {
    uint8_t flags;
    uint64_t seq, size;
    int64_t mtime;
    uint8_t body[16];
    const char *f[OBJ__F_N];
    size_t fl[OBJ__F_N];
    const void *inl; /* OBJ__FL_INLINE: the body (size bytes) */
} rec_t;

static void *rec_encode(const rec_t *r, size_t *n) {
    size_t len = OBJ__REC_HDR;
    for (int i = 0; i < OBJ__F_N; i++) len += 4 + r->fl[i];
    size_t inl = r->flags & OBJ__FL_INLINE ? (size_t)r->size : 0;
    uint8_t *p = tr_xcalloc(1, len + inl);
    p[0] = 1;
    p[1] = r->flags;
    uint32_t nf = OBJ__F_N;
    memcpy(p + 4, &nf, 4);
    memcpy(p + 8, &r->seq, 8);
    memcpy(p + 16, &r->mtime, 8);
    memcpy(p + 24, &r->size, 8);
    memcpy(p + 32, r->body, 16);
    size_t off = OBJ__REC_HDR;
    for (int i = 0; i < OBJ__F_N; i++) {
        uint32_t l = (uint32_t)r->fl[i];
        memcpy(p + off, &l, 4);
        if (l) memcpy(p + off + 4, r->f[i], l);
        off += 4 + l;
    }
    if (inl) memcpy(p + off, r->inl, inl);
    *n = len + inl;
    return p;
}

/* The raw header and version id of a stored record (no copy). */
static int rec_peek(const MDB_val *v, uint8_t *flags, const uint8_t **body, const char **vid,
                    size_t *vidn) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < OBJ__REC_HDR + 8 || p[0] != 1) return -1;
    *flags = p[1];
    *body = p + 32;
    uint32_t l0, l1;
    memcpy(&l0, p + OBJ__REC_HDR, 4);
    if (v->mv_size < OBJ__REC_HDR + 8 + (size_t)l0) return -1;
    memcpy(&l1, p + OBJ__REC_HDR + 4 + l0, 4);
    if (v->mv_size < OBJ__REC_HDR + 8 + (size_t)l0 + l1) return -1;
    *vid = (const char *)p + OBJ__REC_HDR + 8 + l0;
    *vidn = l1;
    return 0;
}

/* The key field of a record. */
static int rec_key(const MDB_val *v, const char **key, size_t *n) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < OBJ__REC_HDR + 4) return -1;
    uint32_t l;
    memcpy(&l, p + OBJ__REC_HDR, 4);
    if (v->mv_size < OBJ__REC_HDR + 4 + (size_t)l) return -1;
    *key = (const char *)p + OBJ__REC_HDR + 4;
    *n = l;
    return 0;
}

/* The inline body of a record with OBJ__FL_INLINE (size bytes at *body), or -1. */
static int rec_inline(const MDB_val *v, uint64_t size, const uint8_t **body) {
    const uint8_t *p = v->mv_data;
    size_t off = OBJ__REC_HDR;
    for (int i = 0; i < OBJ__F_N; i++) {
        uint32_t l;
        if (v->mv_size - off < 4) return -1;
        memcpy(&l, p + off, 4);
        if (v->mv_size - off - 4 < l) return -1;
        off += 4 + l;
    }
    if (v->mv_size - off != size) return -1;
    *body = p + off;
    return 0;
}

static int is_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int hexv(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* A version id: "null" (*seq = 0, *isnull = 1) or 32 hex digits whose first 16 are the seq. */
static int vid_parse(const char *vid, uint64_t *seq, int *isnull, tr_err *err) {
    *isnull = 0;
    if (!strcmp(vid, "null")) {
        *isnull = 1;
        *seq = 0;
        return 0;
    }
    if (strlen(vid) != OBJ_VID_LEN) goto bad;
    uint64_t s = 0;
    for (int i = 0; i < OBJ_VID_LEN; i++) {
        int d = hexv(vid[i]);
        if (d < 0) goto bad;
        if (i < 16) s = s << 4 | (uint64_t)d;
    }
    *seq = s;
    return 0;
bad:
    return tr_err_set(err, TR_EINVAL, "invalid version id \"%.64s\"", vid);
}

/* Position c on the version of key (vid NULL: the current one, i.e. the newest) in *k / *v.
 * Returns 0, TR_ENOTFOUND (no version at all), TR_ENOVERSION, TR_EINVAL, TR_EIO. */
static int find_version(MDB_cursor *c, uint32_t bid, const char *key, const char *vid, MDB_val *k,
                        MDB_val *v, tr_err *err) {
    uint8_t kb[VKEY_MAX];
    size_t m = key_prefix(bid, key, strlen(key), kb);
    kb[m] = 0;
    uint64_t seq = 0;
    int isnull = 0, rc;
    if (vid && (rc = vid_parse(vid, &seq, &isnull, err))) return rc;
    if (vid && !isnull) {
        be64(kb + m + 1, ~seq);
        *k = (MDB_val){m + 9, kb};
        rc = mdb_cursor_get(c, k, v, MDB_SET_KEY);
        if (rc == MDB_NOTFOUND) goto noversion;
        if (rc) return obj__mdb_err(err, rc, "version lookup");
        uint8_t fl = 0;
        const uint8_t *body;
        const char *id;
        size_t idn;
        if (rec_peek(v, &fl, &body, &id, &idn) || idn != OBJ_VID_LEN || memcmp(id, vid, idn))
            goto noversion;
        return 0;
    }
    *k = (MDB_val){m + 1, kb};
    for (rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(c, k, v, MDB_NEXT)) {
        if (k->mv_size != m + 9 || memcmp(k->mv_data, kb, m + 1)) break;
        if (!vid) return 0;
        uint8_t fl = 0;
        const uint8_t *body;
        const char *id;
        size_t idn;
        if (!rec_peek(v, &fl, &body, &id, &idn) && (fl & OBJ__FL_NULL)) return 0;
    }
    if (rc && rc != MDB_NOTFOUND) return obj__mdb_err(err, rc, "version lookup");
    if (vid) goto noversion;
    return tr_err_set(err, TR_ENOTFOUND, "key \"%.200s\" does not exist", key);
noversion:
    return tr_err_set(err, TR_ENOVERSION, "version \"%.64s\" of key \"%.200s\" does not exist", vid,
                      key);
}

/* Remove the version c points at (k/v), with its body's bookkeeping (its body goes to j's gc). */
static int remove_version(obj_t *o, MDB_txn *txn, MDB_cursor *c, const MDB_val *v, obj__job_t *j) {
    uint8_t fl = 0;
    const uint8_t *body;
    const char *id;
    size_t idn;
    if (rec_peek(v, &fl, &body, &id, &idn))
        return tr_err_set(j->err, TR_ECORRUPT, "version record");
    if (!(fl & OBJ__FL_DM) && !is_zero(body, 16)) {
        obj__job_gc(j, body);
        MDB_val bk = {16, j->gc[j->ngc - 1]}, e = {0, ""};
        int rc = mdb_del(txn, o->db_body, &bk, NULL);
        if (!rc || rc == MDB_NOTFOUND) rc = mdb_put(txn, o->db_g, &bk, &e, 0);
        if (rc) return obj__mdb_err(j->err, rc, "remove version");
    }
    int rc = mdb_cursor_del(c, 0);
    return rc ? obj__mdb_err(j->err, rc, "remove version") : 0;
}

static void new_vid(uint64_t seq, char out[OBJ_VID_LEN + 1]) {
    uint8_t b[16], r[8];
    be64(b, seq);
    if (RAND_bytes(r, 8) != 1) memset(r, 0x5a, 8);
    memcpy(b + 8, r, 8);
    obj__hex(b, 16, out);
}

/* Insert rec r (seq assigned here) for key in bucket b, applying the versioning rules: in an
 * unversioned or suspended bucket the "null" version is replaced. */
static int insert_version(obj_t *o, MDB_txn *txn, const obj__bucket_t *b, const char *key, rec_t *r,
                          char vid_out[OBJ_VID_LEN + 1], obj__job_t *j) {
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, o->db_v, &c);
    if (rc) return obj__mdb_err(j->err, rc, "write version");
    r->seq = o->seq++;
    if (b->versioning == OBJ_VERS_ENABLED) {
        new_vid(r->seq, vid_out);
    } else {
        strcpy(vid_out, "null");
        r->flags |= OBJ__FL_NULL;
        MDB_val k, v;
        tr_err e;
        if (!find_version(c, b->bid, key, "null", &k, &v, &e)) {
            if ((rc = remove_version(o, txn, c, &v, j))) goto out;
        }
    }
    r->f[OBJ__F_KEY] = key;
    r->fl[OBJ__F_KEY] = strlen(key);
    r->f[OBJ__F_VID] = vid_out;
    r->fl[OBJ__F_VID] = strlen(vid_out);
    uint8_t kb[VKEY_MAX];
    size_t n;
    void *val = rec_encode(r, &n);
    MDB_val k = {vkey(b->bid, key, r->seq, kb), kb}, v = {n, val};
    rc = mdb_put(txn, o->db_v, &k, &v, 0);
    free(val);
    if (!rc && !(r->flags & OBJ__FL_DM) && !is_zero(r->body, 16)) {
        MDB_val bk = {16, r->body};
        rc = mdb_put(txn, o->db_body, &bk, &k, 0);
    }
    if (rc) rc = obj__mdb_err(j->err, rc, "write version");
out:
    mdb_cursor_close(c);
    return rc;
}

/* ==== put =================================================================================== */

struct obj_put {
    obj_t *o;
    char *bucket, *key;
    char *f[OBJ__F_N]; /* owned copies of the option strings */
    size_t fl[OBJ__F_N];
    char *if_match, *if_none_match;
    uint8_t md5_want[16];
    int has_md5;
    int64_t expect_size;
    uint8_t body[16];
    char path[4096];
    int fd;     /* the body file once spilled (-1: the body is still in ibuf) */
    char *ibuf; /* the first inline_max bytes, while the body fits */
    size_t ilen;
    int inl; /* committing inline */
    EVP_MD_CTX *md5;
    uint64_t size;
    /* commit */
    char etag[48];
    int64_t mtime;
    /* multipart: a part (part > 0) of upload uid; or the completion of upload uid (complete),
     * whose parts must still be the bodies in expect[] (numbers expect_num[]) at the commit */
    int part, complete;
    uint8_t uid[16];
    uint8_t (*expect)[16];
    uint32_t *expect_num;
    size_t nexpect;
    char etag_override[48];
    obj_put_result_t res;
};

int obj_put_begin(obj_t *o, const char *bucket, const char *key, const obj_put_opts_t *opts,
                  obj_put_t **out, tr_err *err) {
    *out = NULL;
    int rc = obj__key_check(key, err);
    if (rc) return rc;
    if ((rc = obj_bucket_head(o, bucket, NULL, err))) return rc;
    obj_put_opts_t none = {.expect_size = -1};
    if (!opts) opts = &none;
    obj_put_t *p = tr_xcalloc(1, sizeof *p);
    p->o = o;
    p->bucket = tr_xstrdup(bucket);
    p->key = tr_xstrdup(key);
    const char *src[OBJ__F_N] = {0};
    src[OBJ__F_CTYPE] = opts->content_type;
    src[OBJ__F_CENC] = opts->content_encoding;
    src[OBJ__F_CCTL] = opts->cache_control;
    src[OBJ__F_CDISP] = opts->content_disposition;
    src[OBJ__F_CLANG] = opts->content_language;
    src[OBJ__F_EXPIRES] = opts->expires;
    src[OBJ__F_SCLASS] = opts->storage_class && *opts->storage_class ? opts->storage_class
                                                                     : "STANDARD";
    src[OBJ__F_TAGS] = opts->tags;
    src[OBJ__F_CSUMS] = opts->checksums;
    for (int i = 0; i < OBJ__F_N; i++)
        if (src[i]) {
            p->f[i] = tr_xstrdup(src[i]);
            p->fl[i] = strlen(src[i]);
        }
    size_t ml = 0;
    for (size_t i = 0; i < opts->nmeta; i++)
        ml += strlen(opts->meta[i].name) + strlen(opts->meta[i].value) + 2;
    if (ml) {
        p->f[OBJ__F_META] = tr_xmalloc(ml);
        char *s = p->f[OBJ__F_META];
        for (size_t i = 0; i < opts->nmeta; i++) {
            size_t a = strlen(opts->meta[i].name) + 1, b = strlen(opts->meta[i].value) + 1;
            memcpy(s, opts->meta[i].name, a);
            memcpy(s + a, opts->meta[i].value, b);
            s += a + b;
        }
        p->fl[OBJ__F_META] = ml;
    }
    p->if_match = tr_xstrdup(opts->if_match);
    p->if_none_match = tr_xstrdup(opts->if_none_match);
    if (opts->content_md5) {
        memcpy(p->md5_want, opts->content_md5, 16);
        p->has_md5 = 1;
    }
    p->expect_size = opts->expect_size;
    if (RAND_bytes(p->body, 16) != 1) {
        obj_put_abort(p);
        return tr_err_set(err, TR_EIO, "no random bytes for a body id");
    }
    p->fd = -1;
    p->md5 = EVP_MD_CTX_new();
    if (!p->md5 || EVP_DigestInit_ex(p->md5, EVP_md5(), NULL) != 1) {
        obj_put_abort(p);
        return tr_err_set(err, TR_EIO, "MD5 unavailable");
    }
    *out = p;
    return 0;
}

static int put_io_err(obj_put_t *p, tr_err *err, const char *what) {
    return tr_err_set(err, TR_EIO, "%s %s: %s", what, p->path, strerror(errno));
}

static int write_all(obj_put_t *p, const char *s, size_t n, tr_err *err) {
    while (n) {
        ssize_t w = write(p->fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return put_io_err(p, err, "write");
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The body outgrew inline_max: move it to a file in tmp/. */
static int spill(obj_put_t *p, tr_err *err) {
    obj__body_path(p->o, p->body, 1, p->path, sizeof p->path);
    p->fd = open(p->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (p->fd < 0) {
        int rc = put_io_err(p, err, "cannot create");
        p->path[0] = 0;
        return rc;
    }
    int rc = write_all(p, p->ibuf, p->ilen, err);
    free(p->ibuf);
    p->ibuf = NULL;
    p->ilen = 0;
    return rc;
}

int obj_put_write(obj_put_t *p, const void *buf, size_t n, tr_err *err) {
    EVP_DigestUpdate(p->md5, buf, n);
    p->size += n;
    if (p->fd < 0 && !p->part && p->size <= p->o->inline_max) {
        if (!p->ibuf) p->ibuf = tr_xmalloc(p->o->inline_max);
        memcpy(p->ibuf + p->ilen, buf, n);
        p->ilen += n;
        return 0;
    }
    int rc = p->fd < 0 ? spill(p, err) : 0;
    return rc ? rc : write_all(p, buf, n, err);
}

int obj_put_copy_fd(obj_put_t *p, int fd, uint64_t off, uint64_t len, tr_err *err) {
    /* The MD5 needs the bytes: read them through one 64 KiB buffer (bounded memory). */
    enum { CHUNK = 64 << 10 };
    char *buf = tr_xmalloc(CHUNK);
    int rc = 0;
    while (len && !rc) {
        size_t want = len < CHUNK ? (size_t)len : CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = tr_err_set(err, TR_EIO, "copy: read of the source failed: %s",
                            r ? strerror(errno) : "short file");
            break;
        }
        rc = obj_put_write(p, buf, (size_t)r, err);
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    free(buf);
    return rc;
}

static int apply_part(obj_t *o, MDB_txn *txn, obj__job_t *j);
static int mpu_finish(obj_t *o, MDB_txn *txn, uint32_t bid, obj_put_t *p, obj__job_t *j);

static int apply_put(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    obj_put_t *p = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, p->bucket, &b, j->err);
    if (rc) return rc;
    if (p->complete && (rc = mpu_finish(o, txn, b.bid, p, j))) return rc;
    if (p->if_match || p->if_none_match) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(txn, o->db_v, &c))) return obj__mdb_err(j->err, rc, "put");
        MDB_val k, v;
        tr_err e;
        obj_info_t *cur = NULL;
        if (!find_version(c, b.bid, p->key, NULL, &k, &v, &e))
            cur = obj__info_decode(v.mv_data, v.mv_size);
        mdb_cursor_close(c);
        int exists = cur && !cur->delete_marker;
        if (p->if_none_match && exists)
            rc = tr_err_set(j->err, TR_ECONDITION, "If-None-Match: key \"%.200s\" exists", p->key);
        else if (p->if_match && !exists)
            rc = tr_err_set(j->err, TR_ENOTFOUND, "If-Match: key \"%.200s\" does not exist",
                            p->key);
        else if (p->if_match && strcmp(p->if_match, "*") && strcmp(p->if_match, cur->etag))
            rc = tr_err_set(j->err, TR_ECONDITION, "If-Match: the ETag of \"%.200s\" is %s", p->key,
                            cur->etag);
        obj_info_free(cur);
        if (rc) return rc;
    }
    rec_t r = {.size = p->size, .mtime = p->mtime};
    if (p->inl) {
        r.flags = OBJ__FL_INLINE;
        r.inl = p->ibuf;
    } else {
        memcpy(r.body, p->body, 16);
    }
    for (int i = 0; i < OBJ__F_N; i++) {
        r.f[i] = p->f[i];
        r.fl[i] = p->fl[i];
    }
    r.f[OBJ__F_ETAG] = p->etag;
    r.fl[OBJ__F_ETAG] = strlen(p->etag);
    memcpy(j->add_body, p->body, 16);
    j->has_add = !p->inl;
    if ((rc = insert_version(o, txn, &b, p->key, &r, p->res.version_id, j))) j->has_add = 0;
    return rc;
}

int obj_put_commit(obj_put_t *p, obj_put_result_t *res, tr_err *err) {
    int rc = 0;
    uint8_t md[16];
    unsigned mdn = 0;
    EVP_DigestFinal_ex(p->md5, md, &mdn);
    obj__hex(md, 16, p->etag);
    if (p->etag_override[0]) memcpy(p->etag, p->etag_override, sizeof p->etag);
    if (p->has_md5 && memcmp(md, p->md5_want, 16))
        rc = tr_err_set(err, TR_ECORRUPT,
                        "the body's MD5 is not the Content-MD5 given; nothing "
                        "stored");
    else if (p->expect_size >= 0 && p->size != (uint64_t)p->expect_size)
        rc = tr_err_set(err, TR_EINVAL, "the body has %llu bytes, %lld were announced",
                        (unsigned long long)p->size, (long long)p->expect_size);
    else if (p->fd >= 0 && !p->o->no_sync && fdatasync(p->fd)) rc = put_io_err(p, err, "fdatasync");
    if (rc) {
        obj_put_abort(p);
        return rc;
    }
    if (obj__fault) obj__fault("put:synced");
    p->inl = p->fd < 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    p->mtime = tr_now_ms();
    obj__job_t j = {.apply = p->part ? apply_part : apply_put, .arg = p, .err = err};
    rc = obj__submit(p->o, &j);
    if (rc) {
        obj_put_abort(p); /* the body was never referenced: remove it */
        return rc;
    }
    if (res) {
        *res = p->res;
        memcpy(res->etag, p->etag, sizeof res->etag);
        res->size = p->size;
        res->mtime_ms = p->mtime;
    }
    p->path[0] = 0; /* committed: keep the body */
    obj_put_abort(p);
    return 0;
}

void obj_put_abort(obj_put_t *p) {
    if (!p) return;
    if (p->fd >= 0) close(p->fd);
    if (p->path[0]) unlink(p->path);
    free(p->ibuf);
    free(p->expect);
    free(p->expect_num);
    EVP_MD_CTX_free(p->md5);
    for (int i = 0; i < OBJ__F_N; i++) free(p->f[i]);
    free(p->if_match);
    free(p->if_none_match);
    free(p->bucket);
    free(p->key);
    free(p);
}

/* ==== get / head ============================================================================ */

/* Look up a version in a read snapshot; *out decoded (obj_info_free). */
static int lookup(obj_t *o, const char *bucket, const char *key, const char *vid, obj_info_t **out,
                  tr_err *err) {
    int rc = obj__key_check(key, err);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = obj__rtxn(o, &txn, err))) return rc;
    obj__bucket_t b = {0};
    MDB_cursor *c = NULL;
    if (!(rc = obj__bucket_get(o, txn, bucket, &b, err))) {
        if ((rc = mdb_cursor_open(txn, o->db_v, &c))) rc = obj__mdb_err(err, rc, "get");
    }
    MDB_val k, v;
    if (!rc && !(rc = find_version(c, b.bid, key, vid, &k, &v, err))) {
        *out = obj__info_decode(v.mv_data, v.mv_size);
        if (!*out) {
            rc = tr_err_set(err, TR_ECORRUPT, "version record of \"%.200s\" is corrupt", key);
        } else {
            /* is it the newest? */
            MDB_val k2, v2;
            tr_err e;
            (*out)->is_latest = !vid || (!find_version(c, b.bid, key, NULL, &k2, &v2, &e) &&
                                         k2.mv_size == k.mv_size);
            if (vid && (*out)->is_latest) {
                obj_info_t *cur = obj__info_decode(v2.mv_data, v2.mv_size);
                (*out)->is_latest = cur && cur->seq == (*out)->seq;
                obj_info_free(cur);
            }
        }
    }
    if (c) mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return rc;
}

int obj_head(obj_t *o, const char *bucket, const char *key, const char *version_id,
             obj_info_t **out, int *delete_marker, tr_err *err) {
    if (delete_marker) *delete_marker = 0;
    *out = NULL;
    obj_info_t *in = NULL;
    int rc = lookup(o, bucket, key, version_id, &in, err);
    if (rc) return rc;
    if (in->delete_marker && delete_marker) *delete_marker = 1;
    if (in->delete_marker && !version_id) {
        obj_info_free(in);
        return tr_err_set(err, TR_ENOTFOUND,
                          "key \"%.200s\" does not exist (its current "
                          "version is a delete marker)",
                          key);
    }
    *out = in;
    return 0;
}

int obj_get(obj_t *o, const char *bucket, const char *key, const obj_get_opts_t *opts,
            obj_reader_t **out, int *delete_marker, tr_err *err) {
    *out = NULL;
    if (delete_marker) *delete_marker = 0;
    const char *vid = opts ? opts->version_id : NULL;
    obj_info_t *in = NULL;
    int rc = lookup(o, bucket, key, vid, &in, err);
    if (rc) return rc;
    if (in->delete_marker) {
        if (delete_marker) *delete_marker = 1;
        obj_info_free(in);
        if (vid)
            return tr_err_set(err, TR_EINVAL,
                              "version \"%s\" of \"%.200s\" is a delete marker: "
                              "it has no body",
                              vid, key);
        return tr_err_set(err, TR_ENOTFOUND,
                          "key \"%.200s\" does not exist (its current "
                          "version is a delete marker)",
                          key);
    }
    uint64_t off = 0, len = in->size;
    int ranged = 0;
    if (opts && opts->range.kind != OBJ_RANGE_NONE) {
        const obj_range_t *g = &opts->range;
        ranged = 1;
        if (g->kind == OBJ_RANGE_SUFFIX) {
            if (g->last == 0) goto badrange;
            len = g->last < in->size ? g->last : in->size;
            off = in->size - len;
            if (in->size == 0) goto badrange;
        } else {
            if (g->first >= in->size || (g->kind == OBJ_RANGE_FROM_TO && g->last < g->first))
                goto badrange;
            uint64_t last = g->kind == OBJ_RANGE_FROM_TO && g->last < in->size ? g->last
                                                                               : in->size - 1;
            off = g->first;
            len = last - off + 1;
        }
    }
    /* The body id is in the record; re-read the raw id (not in obj_info_t). */
    MDB_txn *txn;
    uint8_t body[16];
    if ((rc = obj__rtxn(o, &txn, err))) goto fail;
    {
        obj__bucket_t b = {0};
        MDB_cursor *c = NULL;
        MDB_val k, v;
        if (!(rc = obj__bucket_get(o, txn, bucket, &b, err)) &&
            !(rc = mdb_cursor_open(txn, o->db_v, &c)))
            rc = find_version(c, b.bid, key, in->version_id, &k, &v, err);
        else if (rc > 0) rc = obj__mdb_err(err, rc, "get");
        const uint8_t *inl = NULL;
        if (!rc) {
            memcpy(body, (uint8_t *)v.mv_data + 32, 16);
            if ((((uint8_t *)v.mv_data)[1] & OBJ__FL_INLINE) && rec_inline(&v, in->size, &inl))
                rc = tr_err_set(err, TR_ECORRUPT, "version record of \"%.200s\" is corrupt", key);
        }
        if (c) mdb_cursor_close(c);
        /* Open the body while the snapshot still holds the version: a delete committed after
         * the snapshot unlinks it only after its commit, so a miss here means "deleted". */
        int fd = -1;
        void *mem = NULL;
        if (!rc && inl) {
            mem = tr_xmalloc(len ? len : 1);
            memcpy(mem, inl + off, len);
            off = 0;
        } else if (!rc) {
            char path[4096];
            /* objects/, tmp/, objects/ again: the committer renames tmp/ -> objects/ (atomic)
             * after the commit we see, so a body missed in both places moved in between. */
            for (int try = 0; try < 3; try++) {
                obj__body_path(o, body, try == 1, path, sizeof path);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0 || errno != ENOENT) break;
            }
            if (fd < 0)
                rc = errno == ENOENT
                         ? tr_err_set(err, TR_ENOTFOUND, "key \"%.200s\" was deleted meanwhile",
                                      key)
                         : tr_err_set(err, TR_EIO, "open %s: %s", path, strerror(errno));
        }
        mdb_txn_abort(txn);
        if (rc) goto fail;
        obj_reader_t *r = tr_xcalloc(1, sizeof *r);
        r->info = in;
        r->fd = fd;
        r->mem = mem;
        r->offset = off;
        r->length = len;
        r->ranged = ranged;
        *out = r;
        return 0;
    }
badrange:
    rc = tr_err_set(err, TR_ERANGE, "the range is not satisfiable for an object of %llu bytes",
                    (unsigned long long)in->size);
fail:
    obj_info_free(in);
    return rc;
}

long obj_reader_read(obj_reader_t *r, void *buf, size_t n, tr_err *err) {
    if (r->pos >= r->length) return 0;
    if (n > r->length - r->pos) n = (size_t)(r->length - r->pos);
    if (r->mem) {
        memcpy(buf, (const char *)r->mem + r->pos, n);
        r->pos += n;
        return (long)n;
    }
    for (;;) {
        ssize_t got = pread(r->fd, buf, n, (off_t)(r->offset + r->pos));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return tr_err_set(err, TR_EIO, "read: %s", strerror(errno));
        if (got == 0) return tr_err_set(err, TR_EIO, "read: body shorter than its record");
        r->pos += (uint64_t)got;
        return (long)got;
    }
}

void obj_reader_close(obj_reader_t *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    free((void *)r->mem);
    obj_info_free(r->info);
    free(r);
}

/* ==== delete ================================================================================ */

typedef struct del_args {
    const char *bucket, *key, *vid;
    obj_del_result_t res;
} del_args_t;

static int apply_delete(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    del_args_t *a = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, a->bucket, &b, j->err);
    if (rc) return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, o->db_v, &c))) return obj__mdb_err(j->err, rc, "delete");
    MDB_val k, v;
    tr_err e;
    memset(&a->res, 0, sizeof a->res);
    if (a->vid) {
        rc = find_version(c, b.bid, a->key, a->vid, &k, &v, &e);
        if (rc == TR_EINVAL) {
            tr_err_set(j->err, rc, "%s", e.msg);
        } else if (!rc) {
            uint8_t fl = 0;
            const uint8_t *body;
            const char *id;
            size_t idn;
            rec_peek(&v, &fl, &body, &id, &idn);
            a->res.delete_marker = (fl & OBJ__FL_DM) != 0;
            snprintf(a->res.version_id, sizeof a->res.version_id, "%s", a->vid);
            rc = remove_version(o, txn, c, &v, j);
        } else if (rc == TR_ENOTFOUND || rc == TR_ENOVERSION) {
            rc = 0;
        } else {
            tr_err_set(j->err, rc, "%s", e.msg);
        }
        mdb_cursor_close(c);
        return rc;
    }
    if (b.versioning == OBJ_VERS_NONE) {
        rc = find_version(c, b.bid, a->key, "null", &k, &v, &e);
        if (!rc) rc = remove_version(o, txn, c, &v, j);
        else if (rc == TR_ENOVERSION || rc == TR_ENOTFOUND) rc = 0;
        else tr_err_set(j->err, rc, "%s", e.msg);
        mdb_cursor_close(c);
        return rc;
    }
    mdb_cursor_close(c);
    rec_t r = {.flags = OBJ__FL_DM, .mtime = tr_now_ms()};
    rc = insert_version(o, txn, &b, a->key, &r, a->res.version_id, j);
    a->res.delete_marker = 1;
    return rc;
}

int obj_delete(obj_t *o, const char *bucket, const char *key, const char *version_id,
               obj_del_result_t *res, tr_err *err) {
    int rc = obj__key_check(key, err);
    if (rc) return rc;
    uint64_t seq;
    int isnull;
    if (version_id && (rc = vid_parse(version_id, &seq, &isnull, err))) return rc;
    del_args_t a = {.bucket = bucket, .key = key, .vid = version_id};
    obj__job_t j = {.apply = apply_delete, .arg = &a, .err = err};
    rc = obj__submit(o, &j);
    if (!rc && res) *res = a.res;
    return rc;
}

int obj_delete_many(obj_t *o, const char *bucket, obj_del_item_t *items, size_t n, tr_err *err) {
    int rc = obj_bucket_head(o, bucket, NULL, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        tr_err e = {0};
        items[i].rc = obj_delete(o, bucket, items[i].key, items[i].version_id, &items[i].res, &e);
        snprintf(items[i].msg, sizeof items[i].msg, "%.120s", items[i].rc ? e.msg : "");
        if (items[i].rc == TR_ENOBUCKET) return tr_err_set(err, TR_ENOBUCKET, "%s", e.msg);
    }
    return 0;
}

/* ==== copy ================================================================================== */

int obj_copy(obj_t *o, const char *src_bucket, const char *src_key, const char *src_vid,
             const char *dst_bucket, const char *dst_key, const obj_put_opts_t *opts,
             obj_put_result_t *res, tr_err *err) {
    obj_get_opts_t g = {.version_id = src_vid};
    obj_reader_t *r;
    int rc = obj_get(o, src_bucket, src_key, &g, &r, NULL, err);
    if (rc) return rc;
    obj_put_opts_t keep = {.expect_size = -1};
    obj_kv_t *kv = NULL;
    if (!opts) {
        obj_info_t *in = r->info;
        keep.content_type = in->content_type;
        keep.content_encoding = in->content_encoding;
        keep.cache_control = in->cache_control;
        keep.content_disposition = in->content_disposition;
        keep.content_language = in->content_language;
        keep.expires = in->expires;
        keep.storage_class = in->storage_class;
        keep.tags = in->tags;
        keep.checksums = in->checksums;
        kv = tr_xcalloc(in->meta_n + 1, sizeof *kv);
        const char *s = in->meta;
        for (size_t i = 0; i < in->meta_n; i++) {
            kv[i].name = s;
            s += strlen(s) + 1;
            kv[i].value = s;
            s += strlen(s) + 1;
        }
        keep.meta = kv;
        keep.nmeta = in->meta_n;
        opts = &keep;
    }
    obj_put_t *p;
    rc = obj_put_begin(o, dst_bucket, dst_key, opts, &p, err);
    if (!rc) {
        rc = r->mem ? obj_put_write(p, r->mem, (size_t)r->length, err)
                    : obj_put_copy_fd(p, r->fd, r->offset, r->length, err);
        if (rc) obj_put_abort(p);
        else rc = obj_put_commit(p, res, err);
    }
    free(kv);
    obj_reader_close(r);
    return rc;
}

/* ==== listing =============================================================================== */

int obj_token_decode(const char *tok, int *kind, char **key, size_t *n) {
    if (!tok || (tok[0] != 'k' && tok[0] != 'p')) return TR_EINVAL;
    size_t h = strlen(tok + 1);
    if (h == 0 || h % 2 || h / 2 > OBJ_KEY_MAX) return TR_EINVAL;
    char *k = tr_xmalloc(h / 2 + 1);
    for (size_t i = 0; i < h / 2; i++) {
        int a = hexv(tok[1 + 2 * i]), b = hexv(tok[2 + 2 * i]);
        if (a < 0 || b < 0 || (a | b) == 0) {
            free(k);
            return TR_EINVAL;
        }
        k[i] = (char)(a << 4 | b);
    }
    k[h / 2] = 0;
    *kind = tok[0];
    *key = k;
    *n = h / 2;
    return 0;
}

static char *token_encode(int kind, const char *s, size_t n) {
    char *t = tr_xmalloc(2 * n + 2);
    t[0] = (char)kind;
    obj__hex((const uint8_t *)s, n, t + 1);
    return t;
}

/* Seek c to the first entry after every key starting with prefix p (n bytes). */
static int seek_past_prefix(MDB_cursor *c, uint32_t bid, const char *p, size_t n, MDB_val *k,
                            MDB_val *v) {
    uint8_t kb[VKEY_MAX + 1];
    size_t m = key_prefix(bid, p, n, kb);
    /* the successor of the prefix: drop trailing 0xFF bytes, increment the last */
    while (m > 4 && kb[m - 1] == 0xFF) m--;
    if (m == 4) { /* every key of the bucket: go to the next bucket */
        be32(kb, bid + 1);
    } else {
        kb[m - 1]++;
    }
    *k = (MDB_val){m, kb};
    return mdb_cursor_get(c, k, v, MDB_SET_RANGE);
}

static int seek_past_key(MDB_cursor *c, uint32_t bid, const char *key, size_t n, MDB_val *k,
                         MDB_val *v) {
    uint8_t kb[VKEY_MAX];
    size_t m = key_prefix(bid, key, n, kb);
    kb[m++] = 1;
    *k = (MDB_val){m, kb};
    return mdb_cursor_get(c, k, v, MDB_SET_RANGE);
}

static int list_run(obj_t *o, const char *bucket, const obj_list_opts_t *q, int versions,
                    obj_list_page_t **out, tr_err *err) {
    *out = NULL;
    obj_list_opts_t none = {.max_keys = -1};
    if (!q) q = &none;
    const char *pfx = q->prefix ? q->prefix : "";
    const char *dl = q->delimiter && *q->delimiter ? q->delimiter : NULL;
    size_t pn = strlen(pfx), dn = dl ? strlen(dl) : 0;
    int max = q->max_keys < 0 || q->max_keys > OBJ_LIST_MAX ? OBJ_LIST_MAX : q->max_keys;
    char *start = NULL;
    size_t sn = 0;
    int skind = 0;
    if (q->token && *q->token) {
        if (obj_token_decode(q->token, &skind, &start, &sn))
            return tr_err_set(err, TR_EINVAL, "the continuation token is not valid");
    } else if (q->start_after && *q->start_after) {
        start = tr_xstrdup(q->start_after);
        sn = strlen(start);
        skind = 'k';
        /* a marker that is a common prefix (V1 NextMarker, versions' NextKeyMarker): skip it */
        if (dl && sn >= pn + dn && !strncmp(start, pfx, pn) && !strcmp(start + sn - dn, dl) &&
            !memmem(start + pn, sn - pn - dn, dl, dn) && !(versions && q->version_id_marker))
            skind = 'p';
    }
    MDB_txn *txn;
    int rc = obj__rtxn(o, &txn, err);
    if (rc) {
        free(start);
        return rc;
    }
    obj__bucket_t b = {0};
    MDB_cursor *c = NULL;
    obj_list_page_t *pg = tr_xcalloc(1, sizeof *pg);
    size_t cap_i = 0, cap_p = 0;
    int count = 0;
    char *last_cp = NULL;
    const char *last_key = NULL; /* key of the previous entry (versions: is_latest) */
    char *prev_key = NULL;
    if ((rc = obj__bucket_get(o, txn, bucket, &b, err))) goto done;
    if ((rc = mdb_cursor_open(txn, o->db_v, &c))) {
        rc = obj__mdb_err(err, rc, "list");
        goto done;
    }
    MDB_val k, v;
    uint8_t kb[VKEY_MAX], bidb[4];
    be32(bidb, b.bid);
    int r;
    if (start && skind == 'p') {
        r = seek_past_prefix(c, b.bid, start, sn, &k, &v);
    } else if (start && versions && q->version_id_marker && *q->version_id_marker) {
        tr_err e;
        r = find_version(c, b.bid, start, q->version_id_marker, &k, &v, &e);
        if (r == 0) r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        else r = seek_past_key(c, b.bid, start, sn, &k, &v);
        prev_key = tr_xstrdup(start); /* the marker's key: its next versions are not latest */
        last_key = prev_key;
    } else if (start && strcmp(start, pfx) >= 0) {
        r = seek_past_key(c, b.bid, start, sn, &k, &v);
    } else {
        k = (MDB_val){key_prefix(b.bid, pfx, pn, kb), kb};
        r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    while (r == 0) {
        if (k.mv_size < 4 || memcmp(k.mv_data, bidb, 4)) break;
        const char *key;
        size_t kn;
        if (rec_key(&v, &key, &kn)) {
            rc = tr_err_set(err, TR_ECORRUPT, "a version record of bucket %s is corrupt", bucket);
            goto done;
        }
        if (kn < pn || memcmp(key, pfx, pn)) {
            int cmp = memcmp(key, pfx, kn < pn ? kn : pn);
            if (cmp > 0 || (cmp == 0 && kn >= pn)) break; /* past the prefix */
            r = seek_past_key(c, b.bid, key, kn, &k, &v);
            continue;
        }
        uint8_t fl = 0;
        const uint8_t *body;
        const char *vid;
        size_t vidn;
        rec_peek(&v, &fl, &body, &vid, &vidn);
        if (!versions && (fl & OBJ__FL_DM)) { /* current version deleted: skip the key */
            r = seek_past_key(c, b.bid, key, kn, &k, &v);
            continue;
        }
        /* a common prefix? */
        const char *d = dl ? memmem(key + pn, kn - pn, dl, dn) : NULL;
        if (d) {
            size_t cn = (size_t)(d - key) + dn;
            if (!last_cp || strlen(last_cp) != cn || memcmp(last_cp, key, cn)) {
                if (count == max) {
                    pg->truncated = 1;
                    break;
                }
                if (pg->np == cap_p)
                    pg->prefixes = tr_xrealloc(pg->prefixes,
                                               (cap_p = cap_p ? 2 * cap_p : 16) * sizeof(char *));
                last_cp = pg->prefixes[pg->np++] = tr_xstrndup(key, cn);
                count++;
                free(pg->next_token);
                pg->next_token = token_encode('p', key, cn);
            }
            r = seek_past_prefix(c, b.bid, key, cn, &k, &v);
            continue;
        }
        if (count == max) {
            pg->truncated = 1;
            break;
        }
        obj_info_t *in = obj__info_decode(v.mv_data, v.mv_size);
        if (!in) {
            rc = tr_err_set(err, TR_ECORRUPT, "a version record of bucket %s is corrupt", bucket);
            goto done;
        }
        in->is_latest = !versions || !last_key || strcmp(last_key, in->key);
        if (pg->n == cap_i)
            pg->items = tr_xrealloc(pg->items, (cap_i = cap_i ? 2 * cap_i : 16) * sizeof(void *));
        pg->items[pg->n++] = in;
        last_key = in->key;
        count++;
        free(pg->next_token);
        pg->next_token = token_encode('k', key, kn);
        if (versions) r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        else r = seek_past_key(c, b.bid, key, kn, &k, &v);
    }
    if (r && r != MDB_NOTFOUND && !rc) rc = obj__mdb_err(err, r, "list");
    if (!rc && !pg->truncated) {
        free(pg->next_token);
        pg->next_token = NULL;
    }
    if (!rc && pg->truncated) {
        /* the last entry: a common prefix, or a version */
        int kind;
        char *kk;
        size_t kl;
        if (!obj_token_decode(pg->next_token, &kind, &kk, &kl)) {
            pg->next_key_marker = kk;
            if (versions && kind == 'k' && pg->n)
                pg->next_version_id_marker = tr_xstrdup(pg->items[pg->n - 1]->version_id);
        }
    }
done:
    if (c) mdb_cursor_close(c);
    mdb_txn_abort(txn);
    free(start);
    free(prev_key);
    if (rc) {
        obj_list_page_free(pg);
        return rc;
    }
    *out = pg;
    return 0;
}

int obj_list(obj_t *o, const char *bucket, const obj_list_opts_t *q, obj_list_page_t **out,
             tr_err *err) {
    return list_run(o, bucket, q, 0, out, err);
}

int obj_list_versions(obj_t *o, const char *bucket, const obj_list_opts_t *q, obj_list_page_t **out,
                      tr_err *err) {
    return list_run(o, bucket, q, 1, out, err);
}

void obj_list_page_free(obj_list_page_t *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) obj_info_free(p->items[i]);
    for (size_t i = 0; i < p->np; i++) free(p->prefixes[i]);
    free(p->items);
    free(p->prefixes);
    free(p->next_token);
    free(p->next_key_marker);
    free(p->next_version_id_marker);
    free(p);
}

/* ==== multipart uploads ===================================================================== */

static int uid_parse(const char *s, uint8_t uid[16], tr_err *err) {
    if (!s || strlen(s) != 32) goto bad;
    for (int i = 0; i < 16; i++) {
        int a = hexv(s[2 * i]), b = hexv(s[2 * i + 1]);
        if (a < 0 || b < 0) goto bad;
        uid[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
bad:
    return tr_err_set(err, TR_ENOTFOUND, "upload \"%.64s\" does not exist", s ? s : "");
}

/* [bid][uid] (20 bytes) or [bid][uid][part] (24 bytes) into k. */
static size_t ukey(uint32_t bid, const uint8_t uid[16], int part, uint8_t k[24]) {
    be32(k, bid);
    memcpy(k + 4, uid, 16);
    if (part <= 0) return 20;
    be32(k + 20, (uint32_t)part);
    return 24;
}

/* The upload's record in *v, checked to be for key.  TR_ENOTFOUND. */
static int upload_get(obj_t *o, MDB_txn *txn, uint32_t bid, const uint8_t uid[16], const char *key,
                      MDB_val *v, tr_err *err) {
    uint8_t kb[24];
    MDB_val k = {ukey(bid, uid, 0, kb), kb};
    int rc = mdb_get(txn, o->db_u, &k, v);
    const char *rk;
    size_t rn;
    if (rc == MDB_NOTFOUND ||
        (!rc && (rec_key(v, &rk, &rn) || rn != strlen(key) || memcmp(rk, key, rn))))
        return tr_err_set(err, TR_ENOTFOUND,
                          "multipart upload does not exist for key \"%.200s\" "
                          "(completed or aborted?)",
                          key);
    return rc ? obj__mdb_err(err, rc, "upload lookup") : 0;
}

typedef struct mpu_args {
    const char *bucket, *key;
    uint8_t uid[16];
    rec_t r; /* create */
} mpu_args_t;

static int apply_mpu_create(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    mpu_args_t *a = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, a->bucket, &b, j->err);
    if (rc) return rc;
    uint8_t kb[24];
    size_t n;
    void *val = rec_encode(&a->r, &n);
    MDB_val k = {ukey(b.bid, a->uid, 0, kb), kb}, v = {n, val};
    rc = mdb_put(txn, o->db_u, &k, &v, 0);
    free(val);
    return rc ? obj__mdb_err(j->err, rc, "create upload") : 0;
}

int obj_mpu_create(obj_t *o, const char *bucket, const char *key, const obj_put_opts_t *opts,
                   char upload_id[33], tr_err *err) {
    /* The option strings are gathered exactly as a PUT's (obj_put_begin), then dropped. */
    obj_put_t *p;
    int rc = obj_put_begin(o, bucket, key, opts, &p, err);
    if (rc) return rc;
    mpu_args_t a = {.bucket = bucket, .key = key};
    if (RAND_bytes(a.uid, 16) != 1) {
        obj_put_abort(p);
        return tr_err_set(err, TR_EIO, "no random bytes for an upload id");
    }
    a.r.mtime = tr_now_ms();
    for (int i = 0; i < OBJ__F_N; i++) {
        a.r.f[i] = p->f[i];
        a.r.fl[i] = p->fl[i];
    }
    a.r.f[OBJ__F_KEY] = key;
    a.r.fl[OBJ__F_KEY] = strlen(key);
    obj__job_t j = {.apply = apply_mpu_create, .arg = &a, .err = err};
    rc = obj__submit(o, &j);
    obj_put_abort(p);
    if (!rc) obj__hex(a.uid, 16, upload_id);
    return rc;
}

int obj_mpu_part_begin(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                       int number, obj_put_t **out, tr_err *err) {
    *out = NULL;
    if (number < 1 || number > OBJ_MPU_MAX_PART)
        return tr_err_set(err, TR_EINVAL, "part number %d: give 1 to %d", number, OBJ_MPU_MAX_PART);
    uint8_t uid[16];
    int rc = uid_parse(upload_id, uid, err);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = obj__rtxn(o, &txn, err))) return rc;
    obj__bucket_t b = {0};
    MDB_val v;
    if (!(rc = obj__bucket_get(o, txn, bucket, &b, err)))
        rc = upload_get(o, txn, b.bid, uid, key, &v, err);
    mdb_txn_abort(txn);
    if (rc) return rc;
    if ((rc = obj_put_begin(o, bucket, key, NULL, out, err))) return rc;
    (*out)->part = number;
    memcpy((*out)->uid, uid, 16);
    return 0;
}

/* Commit of a part: replaces a part of the same number (its body collected). */
static int apply_part(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    obj_put_t *p = j->arg;
    obj__bucket_t b = {0};
    MDB_val v;
    int rc = obj__bucket_get(o, txn, p->bucket, &b, j->err);
    if (rc || (rc = upload_get(o, txn, b.bid, p->uid, p->key, &v, j->err))) return rc;
    uint8_t kb[24], rec[64];
    MDB_val k = {ukey(b.bid, p->uid, p->part, kb), kb};
    if (!mdb_get(txn, o->db_u, &k, &v) && v.mv_size == 64) {
        uint8_t old[16];
        memcpy(old, (uint8_t *)v.mv_data + 16, 16);
        obj__job_gc(j, old);
        MDB_val bk = {16, old}, e = {0, ""};
        mdb_del(txn, o->db_body, &bk, NULL);
        if ((rc = mdb_put(txn, o->db_g, &bk, &e, 0))) return obj__mdb_err(j->err, rc, "part");
    }
    memcpy(rec, &p->size, 8);
    memcpy(rec + 8, &p->mtime, 8);
    memcpy(rec + 16, p->body, 16);
    memcpy(rec + 32, p->etag, 32);
    v = (MDB_val){64, rec};
    rc = mdb_put(txn, o->db_u, &k, &v, 0);
    MDB_val bk = {16, p->body};
    if (!rc) rc = mdb_put(txn, o->db_body, &bk, &k, 0);
    if (rc) return obj__mdb_err(j->err, rc, "part");
    memcpy(j->add_body, p->body, 16);
    j->has_add = 1;
    p->res.version_id[0] = 0;
    return 0;
}

/* Remove upload uid and every part of it (bodies collected after the commit).  With p (a
 * completion), first check the parts listed are still the bodies that were copied. */
static int mpu_remove(obj_t *o, MDB_txn *txn, uint32_t bid, const uint8_t uid[16],
                      const obj_put_t *p, obj__job_t *j) {
    uint8_t kb[24];
    MDB_val k, v;
    int rc;
    for (size_t i = 0; p && i < p->nexpect; i++) {
        k = (MDB_val){ukey(bid, uid, (int)p->expect_num[i], kb), kb};
        if (mdb_get(txn, o->db_u, &k, &v) || v.mv_size != 64 ||
            memcmp((uint8_t *)v.mv_data + 16, p->expect[i], 16))
            return tr_err_set(j->err, TR_EAGAIN,
                              "part %u was uploaded again during the "
                              "completion; complete again",
                              p->expect_num[i]);
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, o->db_u, &c))) return obj__mdb_err(j->err, rc, "upload");
    for (;;) { /* seek the first entry left each time: the upload, then its parts */
        k = (MDB_val){ukey(bid, uid, 0, kb), kb};
        if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE))) break;
        if (k.mv_size < 20 || memcmp(k.mv_data, kb, 20)) break;
        if (k.mv_size == 24 && v.mv_size == 64) {
            uint8_t body[16];
            memcpy(body, (uint8_t *)v.mv_data + 16, 16);
            obj__job_gc(j, body);
            MDB_val bk = {16, body}, e = {0, ""};
            mdb_del(txn, o->db_body, &bk, NULL);
            if ((rc = mdb_put(txn, o->db_g, &bk, &e, 0))) break;
        }
        if ((rc = mdb_cursor_del(c, 0))) break;
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return obj__mdb_err(j->err, rc, "remove upload");
    return 0;
}

static int mpu_finish(obj_t *o, MDB_txn *txn, uint32_t bid, obj_put_t *p, obj__job_t *j) {
    MDB_val v;
    int rc = upload_get(o, txn, bid, p->uid, p->key, &v, j->err);
    return rc ? rc : mpu_remove(o, txn, bid, p->uid, p, j);
}

static int apply_mpu_abort(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    mpu_args_t *a = j->arg;
    obj__bucket_t b = {0};
    MDB_val v;
    int rc = obj__bucket_get(o, txn, a->bucket, &b, j->err);
    if (rc || (rc = upload_get(o, txn, b.bid, a->uid, a->key, &v, j->err))) return rc;
    return mpu_remove(o, txn, b.bid, a->uid, NULL, j);
}

int obj_mpu_abort(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                  tr_err *err) {
    mpu_args_t a = {.bucket = bucket, .key = key};
    int rc = uid_parse(upload_id, a.uid, err);
    if (rc) return rc;
    obj__job_t j = {.apply = apply_mpu_abort, .arg = &a, .err = err};
    return obj__submit(o, &j);
}

int obj_mpu_list_parts(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                       int marker, int max, obj_part_info_t **out, size_t *n, int *truncated,
                       tr_err *err) {
    *out = NULL;
    *n = 0;
    *truncated = 0;
    if (max <= 0 || max > 1000) max = 1000;
    uint8_t uid[16], kb[24];
    int rc = uid_parse(upload_id, uid, err);
    if (rc) return rc;
    MDB_txn *txn;
    if ((rc = obj__rtxn(o, &txn, err))) return rc;
    obj__bucket_t b = {0};
    MDB_val k, v;
    MDB_cursor *c = NULL;
    obj_part_info_t *a = NULL;
    size_t cnt = 0;
    if (!(rc = obj__bucket_get(o, txn, bucket, &b, err)) &&
        !(rc = upload_get(o, txn, b.bid, uid, key, &v, err))) {
        if ((rc = mdb_cursor_open(txn, o->db_u, &c))) {
            rc = obj__mdb_err(err, rc, "list parts");
        } else {
            a = tr_xcalloc((size_t)max, sizeof *a);
            k = (MDB_val){ukey(b.bid, uid, marker + 1, kb), kb};
            for (int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !r;
                 r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                if (k.mv_size != 24 || memcmp(k.mv_data, kb, 20) || v.mv_size != 64) break;
                if (cnt == (size_t)max) {
                    *truncated = 1;
                    break;
                }
                const uint8_t *kp = k.mv_data, *vp = v.mv_data;
                a[cnt].number = (int)((uint32_t)kp[20] << 24 | (uint32_t)kp[21] << 16 |
                                      (uint32_t)kp[22] << 8 | kp[23]);
                memcpy(&a[cnt].size, vp, 8);
                memcpy(&a[cnt].mtime_ms, vp + 8, 8);
                memcpy(a[cnt].etag, vp + 32, 32);
                a[cnt].etag[32] = 0;
                cnt++;
            }
            mdb_cursor_close(c);
        }
    }
    mdb_txn_abort(txn);
    if (rc) {
        free(a);
        return rc;
    }
    *out = a;
    *n = cnt;
    return 0;
}

int obj_mpu_list_uploads(obj_t *o, const char *bucket, const char *prefix, obj_upload_info_t **out,
                         size_t *n, tr_err *err) {
    *out = NULL;
    *n = 0;
    MDB_txn *txn;
    int rc = obj__rtxn(o, &txn, err);
    if (rc) return rc;
    obj__bucket_t b = {0};
    obj_upload_info_t *a = NULL;
    size_t cnt = 0, cap = 0, pn = prefix ? strlen(prefix) : 0;
    MDB_cursor *c;
    if (!(rc = obj__bucket_get(o, txn, bucket, &b, err))) {
        if ((rc = mdb_cursor_open(txn, o->db_u, &c))) {
            rc = obj__mdb_err(err, rc, "list uploads");
        } else {
            uint8_t kb[4];
            be32(kb, b.bid);
            MDB_val k = {4, kb}, v;
            for (int r = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); !r && cnt < 1000;
                 r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                if (k.mv_size < 20 || memcmp(k.mv_data, kb, 4)) break;
                const char *key;
                size_t kn;
                if (k.mv_size != 20 || rec_key(&v, &key, &kn)) continue;
                if (kn < pn || (pn && memcmp(key, prefix, pn))) continue;
                if (cnt == cap) a = tr_xrealloc(a, (cap = cap ? 2 * cap : 16) * sizeof *a);
                obj__hex((const uint8_t *)k.mv_data + 4, 16, a[cnt].upload_id);
                a[cnt].key = tr_xstrndup(key, kn);
                memcpy(&a[cnt].initiated_ms, (uint8_t *)v.mv_data + 16, 8);
                cnt++;
            }
            mdb_cursor_close(c);
        }
    }
    mdb_txn_abort(txn);
    if (rc) {
        obj_upload_list_free(a, cnt);
        return rc;
    }
    *out = a;
    *n = cnt;
    return 0;
}

void obj_upload_list_free(obj_upload_info_t *u, size_t n) {
    for (size_t i = 0; u && i < n; i++) free(u[i].key);
    free(u);
}

int obj_mpu_complete(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                     const obj_part_info_t *parts, size_t n, const obj_put_opts_t *cond,
                     obj_put_result_t *res, int *why, tr_err *err) {
    if (why) *why = OBJ_MPU_OK;
    uint8_t uid[16];
    int rc = uid_parse(upload_id, uid, err);
    if (rc) return rc;
    if (n == 0 || n > OBJ_MPU_MAX_PART)
        return tr_err_set(err, TR_EINVAL, "give 1 to %d parts to complete an upload",
                          OBJ_MPU_MAX_PART);
    for (size_t i = 1; i < n; i++)
        if (parts[i].number <= parts[i - 1].number) {
            if (why) *why = OBJ_MPU_BAD_ORDER;
            return tr_err_set(err, TR_EINVAL,
                              "the parts must be listed in ascending order of "
                              "part number (part %d after %d)",
                              parts[i].number, parts[i - 1].number);
        }
    /* Read the upload and its parts in one snapshot. */
    MDB_txn *txn;
    if ((rc = obj__rtxn(o, &txn, err))) return rc;
    obj__bucket_t b = {0};
    MDB_val v;
    obj_info_t *up = NULL;
    uint8_t(*bodies)[16] = tr_xcalloc(n, 16);
    uint32_t *nums = tr_xcalloc(n, sizeof *nums);
    uint64_t *sizes = tr_xcalloc(n, sizeof *sizes);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    if (!(rc = obj__bucket_get(o, txn, bucket, &b, err)) &&
        !(rc = upload_get(o, txn, b.bid, uid, key, &v, err))) {
        up = obj__info_decode(v.mv_data, v.mv_size);
        if (!up) rc = tr_err_set(err, TR_ECORRUPT, "upload record is corrupt");
    }
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t kb[24];
        const char *want = parts[i].etag;
        MDB_val k = {ukey(b.bid, uid, parts[i].number, kb), kb};
        if (parts[i].number < 1 || mdb_get(txn, o->db_u, &k, &v) || v.mv_size != 64 ||
            strlen(want) != 32 || memcmp((uint8_t *)v.mv_data + 32, want, 32)) {
            if (why) *why = OBJ_MPU_BAD_PART;
            rc = tr_err_set(err, TR_EINVAL,
                            "part %d was not uploaded, or its ETag is not \"%.40s\"",
                            parts[i].number, want);
            break;
        }
        memcpy(&sizes[i], v.mv_data, 8);
        memcpy(bodies[i], (uint8_t *)v.mv_data + 16, 16);
        nums[i] = (uint32_t)parts[i].number;
        if (i + 1 < n && sizes[i] < OBJ_MPU_MIN_PART) {
            if (why) *why = OBJ_MPU_TOO_SMALL;
            rc = tr_err_set(err, TR_EINVAL,
                            "part %d has %llu bytes; every part but the last "
                            "needs at least %u",
                            parts[i].number, (unsigned long long)sizes[i], OBJ_MPU_MIN_PART);
            break;
        }
        uint8_t bin[16];
        for (int x = 0; x < 16; x++)
            bin[x] = (uint8_t)(hexv(want[2 * x]) << 4 | hexv(want[2 * x + 1]));
        EVP_DigestUpdate(md, bin, 16);
    }
    mdb_txn_abort(txn);
    obj_put_t *p = NULL;
    if (!rc) {
        obj_put_opts_t po = {.content_type = up->content_type,
                             .content_encoding = up->content_encoding,
                             .cache_control = up->cache_control,
                             .content_disposition = up->content_disposition,
                             .content_language = up->content_language,
                             .expires = up->expires,
                             .storage_class = up->storage_class,
                             .tags = up->tags,
                             .checksums = up->checksums,
                             .if_match = cond ? cond->if_match : NULL,
                             .if_none_match = cond ? cond->if_none_match : NULL,
                             .expect_size = -1};
        rc = obj_put_begin(o, bucket, key, &po, &p, err);
        if (!rc && up->meta_len) { /* the user metadata, as stored */
            p->f[OBJ__F_META] = tr_xmalloc(up->meta_len);
            memcpy(p->f[OBJ__F_META], up->meta, up->meta_len);
            p->fl[OBJ__F_META] = up->meta_len;
        }
    }
    /* Stream each part's body into the object's. */
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4096];
        int fd = -1;
        for (int t = 0; t < 3 && fd < 0; t++) {
            obj__body_path(o, bodies[i], t == 1, path, sizeof path);
            fd = open(path, O_RDONLY | O_CLOEXEC);
        }
        if (fd < 0) {
            rc = tr_err_set(err, TR_EAGAIN,
                            "part %d was replaced or aborted during the "
                            "completion",
                            parts[i].number);
            break;
        }
        rc = obj_put_copy_fd(p, fd, 0, sizes[i], err);
        close(fd);
    }
    if (!rc) {
        uint8_t d[16];
        unsigned dn;
        char hex[33];
        EVP_DigestFinal_ex(md, d, &dn);
        obj__hex(d, 16, hex);
        snprintf(p->etag_override, sizeof p->etag_override, "%s-%zu", hex, n);
        p->complete = 1;
        memcpy(p->uid, uid, 16);
        p->expect = bodies;
        p->expect_num = nums;
        p->nexpect = n;
        bodies = NULL;
        nums = NULL;
        rc = obj_put_commit(p, res, err);
        p = NULL;
    }
    obj_put_abort(p);
    EVP_MD_CTX_free(md);
    obj_info_free(up);
    free(bodies);
    free(nums);
    free(sizes);
    return rc;
}
