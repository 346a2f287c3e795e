/* SPDX-License-Identifier: Apache-2.0
 *
 * obj.c -- the object engine: open/close and crash collection, the group commit, buckets and
 * their configuration, and the version record format.  Objects (put, get, delete, copy, list)
 * are in obj_io.c.
 *
 * Writes.  Every LMDB write goes through obj__submit: the caller queues a job and waits; the
 * first waiting thread that finds no commit under way becomes the leader, takes the whole queue
 * and commits it as ONE write transaction (each job in a nested transaction, so a job that fails
 * -- a false precondition, a missing bucket -- leaves nothing and the others go on), then does the
 * post-commit file work of the batch (renames into objects/; unlinks of removed bodies, with one
 * fsync per directory touched) and wakes the batch.  While it works, new jobs queue for the next
 * leader.  So concurrent PUTs share the commit's fsyncs.  A body in a file is fdatasync'ed on the
 * writer's thread before it queues (the leader fsyncs tmp/ once per batch); a small body
 * (<= inline_max) travels inside its record and needs no sync of its own.
 *
 * ==== On-disk format ==========================================================================
 *
 * DIR/meta/data.mdb, named databases:
 *   "buckets"  bucket name -> [bid u32 LE][versioning u8][0 0 0][created ms i64 LE]  (16 bytes)
 *   "conf"     [bid u32 BE][kind u8] -> configuration text (obj_conf_t)
 *   "versions" [bid u32 BE][SK][0x00][~seq u64 BE] -> version record
 *              SK: the key if it is at most 498 bytes, else its first 466 bytes + 32 lower-case
 *              hex digits of its SHA-256 (no NUL either way, so [SK][0x00] bounds one key's
 *              versions).  ~seq orders a key's versions newest first.
 *   "bodies"   body id (16 bytes) -> the "versions" or "uploads" key of what owns it
 *   "uploads"  [bid u32 BE][upload id 16 bytes] -> an upload: a version record (format below;
 *              the final object's key and metadata, mtime = initiated, no body)
 *              [bid u32 BE][upload id 16 bytes][part number u32 BE] -> a part:
 *              [size u64 LE][mtime ms i64 LE][body id 16][MD5 hex 32]  (64 bytes)
 *   "gc"       body id (16 bytes) -> empty: a removed version's body not yet known unlinked
 *   "next"     "seq" -> u64 LE next version sequence; "bid" -> u32 LE next bucket id
 *
 * Version record:
 *   0  u8  format (1)        1  u8 flags (1 delete marker, 2 null version, 4 inline body)
 *   2  u16 0
 *   4  u32 field count (OBJ__F_N)
 *   8  u64 LE seq           16  i64 LE mtime ms           24 u64 LE size
 *  32  16 bytes body id (zero for a delete marker)
 *  48  per field (obj_int.h OBJ__F_*: key, version id, etag, content-type, content-encoding,
 *      cache-control, content-disposition, content-language, expires, storage class, tags,
 *      checksums, user metadata as "name\0value\0" pairs): u32 LE length, bytes
 *  then, with flag 4, the body itself (size bytes)
 *
 * Body files: DIR/objects/<first 2 hex of id>/<32 hex>; DIR/tmp/<32 hex> while being written
 * (and between the metadata commit and the rename; readers look in both places).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/fs.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "obj/obj_int.h"

void (*obj__fault)(const char *where);

/* ==== helpers =============================================================================== */

void obj__hex(const uint8_t *p, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = 0;
}

void obj__body_path(const obj_t *o, const uint8_t id[16], int tmp, char *out, size_t cap) {
    char h[33];
    obj__hex(id, 16, h);
    if (tmp) snprintf(out, cap, "%s/tmp/%s", o->dir, h);
    else snprintf(out, cap, "%s/objects/%.2s/%s", o->dir, h, h);
}

int obj__mdb_err(tr_err *err, int rc, const char *what) {
    if (rc == MDB_MAP_FULL)
        return tr_err_set(err, TR_ENOMEM,
                          "%s: object metadata map full (%s); reopen with a larger "
                          "map_size",
                          what, mdb_strerror(rc));
    return tr_err_set(err, TR_EIO, "%s: LMDB: %s", what, mdb_strerror(rc));
}

int obj__rtxn(obj_t *o, MDB_txn **txn, tr_err *err) {
    int rc = mdb_txn_begin(o->env, NULL, MDB_RDONLY, txn);
    return rc ? obj__mdb_err(err, rc, "read transaction") : 0;
}

int obj__key_check(const char *key, tr_err *err) {
    if (!key || !*key) return tr_err_set(err, TR_EINVAL, "object key is empty; give a key");
    size_t n = strlen(key);
    if (n > OBJ_KEY_MAX)
        return tr_err_set(err, TR_EINVAL, "object key is %zu bytes long; the limit is %d", n,
                          OBJ_KEY_MAX);
    return 0;
}

size_t obj__sk(const char *key, size_t n, uint8_t *out) {
    if (n <= OBJ__SK_MAX) {
        memcpy(out, key, n);
        return n;
    }
    uint8_t d[32];
    char h[65];
    tr_sha256(key, n, d);
    obj__hex(d, 16, h);
    memcpy(out, key, OBJ__SK_FOLD);
    memcpy(out + OBJ__SK_FOLD, h, 32);
    return OBJ__SK_FOLD + 32;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

obj_info_t *obj__info_decode(const void *v, size_t n) {
    const uint8_t *p = v;
    if (n < OBJ__REC_HDR || p[0] != 1) return NULL;
    uint32_t nf;
    memcpy(&nf, p + 4, 4);
    if (nf != OBJ__F_N) return NULL;
    const uint8_t *f[OBJ__F_N];
    uint32_t fl[OBJ__F_N];
    size_t off = OBJ__REC_HDR, total = 0;
    for (int i = 0; i < OBJ__F_N; i++) {
        if (n - off < 4) return NULL;
        memcpy(&fl[i], p + off, 4);
        off += 4;
        if (n - off < fl[i]) return NULL;
        f[i] = p + off;
        off += fl[i];
        total += fl[i] + 1;
    }
    obj_info_t *in = tr_xcalloc(1, sizeof *in + total);
    char *s = (char *)(in + 1);
    const char **dst[OBJ__F_N] = {&in->key,
                                  &in->version_id,
                                  &in->etag,
                                  &in->content_type,
                                  &in->content_encoding,
                                  &in->cache_control,
                                  &in->content_disposition,
                                  &in->content_language,
                                  &in->expires,
                                  &in->storage_class,
                                  &in->tags,
                                  &in->checksums,
                                  &in->meta};
    for (int i = 0; i < OBJ__F_N; i++) {
        memcpy(s, f[i], fl[i]);
        s[fl[i]] = 0;
        *dst[i] = s;
        s += fl[i] + 1;
    }
    in->meta_len = fl[OBJ__F_META];
    for (size_t i = 0; i < in->meta_len; i++)
        if (!in->meta[i]) in->meta_n++;
    in->meta_n /= 2;
    in->delete_marker = (p[1] & OBJ__FL_DM) != 0;
    in->seq = rd64(p + 8);
    in->mtime_ms = (int64_t)rd64(p + 16);
    in->size = rd64(p + 24);
    return in;
}

void obj_info_free(obj_info_t *i) { free(i); }

/* ==== group commit ========================================================================== */

static void fsync_dirs(obj_t *o, const uint8_t *mask /* 257 flags: 256 objects/xx, tmp */) {
    char path[4096];
    for (int i = 0; i < 257 && !o->no_sync; i++) {
        if (!mask[i]) continue;
        if (i == 256) snprintf(path, sizeof path, "%s/tmp", o->dir);
        else snprintf(path, sizeof path, "%s/objects/%02x", o->dir, i);
        if (tr_fsync_dir(path)) tr_warn("obj", "fsync of %s failed: %s", path, strerror(errno));
    }
}

static void run_batch(obj_t *o, obj__job_t *batch) {
    uint8_t mask[257] = {0};
    int any_add = 0;
    for (obj__job_t *j = batch; j; j = j->next) any_add |= j->has_add;
    /* The bodies' directory entries in tmp/ must be durable before metadata points at them. */
    if (any_add) {
        mask[256] = 1;
        fsync_dirs(o, mask);
        mask[256] = 0;
    }
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    uint64_t seq0 = o->seq;
    uint32_t bid0 = o->next_bid;
    if (!rc) {
        for (size_t i = 0; i < o->gc_n && !rc; i++) {
            MDB_val k = {16, o->gc_done[i]};
            rc = mdb_del(txn, o->db_g, &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        }
    }
    for (obj__job_t *j = batch; j && !rc; j = j->next) {
        MDB_txn *sub = NULL;
        int r = mdb_txn_begin(o->env, txn, 0, &sub);
        if (r) {
            j->rc = obj__mdb_err(j->err, r, "nested transaction");
            continue;
        }
        j->rc = j->apply(o, sub, j);
        if (j->rc) {
            mdb_txn_abort(sub);
            j->has_add = 0;
            j->ngc = 0;
        } else if ((r = mdb_txn_commit(sub))) {
            j->rc = obj__mdb_err(j->err, r, "nested commit");
            j->has_add = 0;
            j->ngc = 0;
        }
    }
    if (!rc) {
        MDB_val k = {3, "seq"}, v = {8, &o->seq};
        rc = mdb_put(txn, o->db_n, &k, &v, 0);
        MDB_val k2 = {3, "bid"}, v2 = {4, &o->next_bid};
        if (!rc) rc = mdb_put(txn, o->db_n, &k2, &v2, 0);
    }
    if (!rc) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc) {
        if (txn) mdb_txn_abort(txn);
        o->seq = seq0;
        o->next_bid = bid0;
        for (obj__job_t *j = batch; j; j = j->next) {
            if (!j->rc) j->rc = obj__mdb_err(j->err, rc, "commit");
            j->has_add = 0;
            j->ngc = 0;
        }
        return;
    }
    o->gc_n = 0;
    if (obj__fault) obj__fault("commit:done");
    /* Committed: each new body is durable in tmp/ (file and directory entry synced above) and
     * referenced by the metadata, so the version is acknowledged as it is.  The rename into
     * objects/ tidies up; it is not synced: rename is atomic in a journaling file system, so a
     * crash leaves the body under one of its two names, and obj_open moves a referenced body
     * found in tmp/ into place.  That saves a directory fsync per objects/ subdirectory the
     * batch touched (up to 256). */
    char from[4096], to[4096];
    for (obj__job_t *j = batch; j; j = j->next) {
        if (j->has_add) {
            obj__body_path(o, j->add_body, 1, from, sizeof from);
            obj__body_path(o, j->add_body, 0, to, sizeof to);
            if (rename(from, to))
                tr_warn("obj", "rename %s: %s (kept in tmp/, moved at next open)", from,
                        strerror(errno));
        }
    }
    int any_gc = 0;
    for (obj__job_t *j = batch; j; j = j->next) {
        for (size_t g = 0; g < j->ngc; g++) {
            any_gc = 1;
            if (obj__fault) obj__fault("delete:committed");
            obj__body_path(o, j->gc[g], 0, to, sizeof to);
            if (unlink(to) && errno == ENOENT) {
                obj__body_path(o, j->gc[g], 1, to, sizeof to);
                unlink(to);
                mask[256] = 1;
            }
            mask[j->gc[g][0]] = 1;
        }
    }
    if (any_gc) {
        fsync_dirs(o, mask);
        for (obj__job_t *j = batch; j; j = j->next)
            for (size_t g = 0; g < j->ngc; g++) {
                if (o->gc_n == o->gc_cap) {
                    o->gc_cap = o->gc_cap ? 2 * o->gc_cap : 64;
                    o->gc_done = tr_xrealloc(o->gc_done, o->gc_cap * 16);
                }
                memcpy(o->gc_done[o->gc_n++], j->gc[g], 16);
            }
    }
}

void obj__job_gc(obj__job_t *j, const uint8_t id[16]) {
    if (j->ngc == j->gccap) {
        j->gccap = j->gccap ? 2 * j->gccap : 4;
        j->gc = tr_xrealloc(j->gc, j->gccap * 16);
    }
    memcpy(j->gc[j->ngc++], id, 16);
}

int obj__submit(obj_t *o, obj__job_t *j) {
    j->rc = 0;
    j->done = 0;
    j->next = NULL;
    pthread_mutex_lock(&o->mu);
    if (o->qt) o->qt->next = j;
    else o->qh = j;
    o->qt = j;
    while (!j->done) {
        if (!o->leader) {
            o->leader = 1;
            obj__job_t *batch = o->qh;
            o->qh = o->qt = NULL;
            pthread_mutex_unlock(&o->mu);
            run_batch(o, batch);
            pthread_mutex_lock(&o->mu);
            for (obj__job_t *b = batch, *nx; b; b = nx) {
                nx = b->next;
                b->done = 1;
            }
            o->leader = 0;
            pthread_cond_broadcast(&o->cv);
        } else {
            pthread_cond_wait(&o->cv, &o->mu);
        }
    }
    pthread_mutex_unlock(&o->mu);
    free(j->gc);
    j->gc = NULL;
    j->ngc = j->gccap = 0;
    return j->rc;
}

/* ==== open / close ========================================================================== */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int parse_id(const char *name, uint8_t id[16]) {
    if (strlen(name) != 32) return -1;
    for (int i = 0; i < 16; i++) {
        int a = hexval(name[2 * i]), b = hexval(name[2 * i + 1]);
        if (a < 0 || b < 0) return -1;
        id[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

/* What a crash left: gc records (unlink their bodies), bodies in tmp/ (referenced: move into
 * place; else remove).  Runs before any other thread can use o. */
static int collect(obj_t *o, tr_err *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc) return obj__mdb_err(err, rc, "open: collect");
    uint8_t mask[257] = {0};
    char path[4096], to[4096];
    MDB_cursor *c;
    MDB_val k, v;
    size_t ngc = 0;
    rc = mdb_cursor_open(txn, o->db_g, &c);
    for (int op = MDB_FIRST; !rc && !mdb_cursor_get(c, &k, &v, op); op = MDB_NEXT) {
        if (k.mv_size != 16) continue;
        obj__body_path(o, k.mv_data, 0, path, sizeof path);
        unlink(path);
        obj__body_path(o, k.mv_data, 1, path, sizeof path);
        unlink(path);
        mask[((uint8_t *)k.mv_data)[0]] = 1;
        mask[256] = 1;
        ngc++;
    }
    if (!rc) mdb_cursor_close(c);
    /* bodies in tmp/ */
    snprintf(path, sizeof path, "%s/tmp", o->dir);
    DIR *d = opendir(path);
    size_t moved = 0, dropped = 0;
    if (!d) rc = -1;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        uint8_t id[16];
        snprintf(path, sizeof path, "%s/tmp/%s", o->dir, de->d_name);
        if (parse_id(de->d_name, id)) {
            unlink(path);
            dropped++;
            continue;
        }
        MDB_val bk = {16, id}, bv;
        if (mdb_get(txn, o->db_body, &bk, &bv) == 0) {
            obj__body_path(o, id, 0, to, sizeof to);
            if (rename(path, to) == 0) moved++;
            mask[id[0]] = 1;
        } else {
            unlink(path);
            dropped++;
        }
        mask[256] = 1;
    }
    if (d) closedir(d);
    fsync_dirs(o, mask);
    if (!rc && ngc) rc = mdb_drop(txn, o->db_g, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return rc < 0 ? tr_err_set(err, TR_EIO, "open: cannot read %s/tmp: %s", o->dir,
                                   strerror(errno))
                      : obj__mdb_err(err, rc, "open: collect");
    }
    rc = mdb_txn_commit(txn);
    if (rc) return obj__mdb_err(err, rc, "open: collect commit");
    if (ngc || moved || dropped)
        tr_info("obj",
                "open %s: %zu removed bodies collected, %zu committed bodies moved into "
                "place, %zu unfinished bodies removed",
                o->dir, ngc, moved, dropped);
    return 0;
}

int obj_open(const char *dir, const obj_opts_t *opts, obj_t **out, tr_err *err) {
    if (!dir || !out) return tr_err_set(err, TR_EINVAL, "obj_open: dir and out are required");
    *out = NULL;
    obj_t *o = tr_xcalloc(1, sizeof *o);
    o->dir = tr_xstrdup(dir);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    char path[4096];
    int rc = 0;
    const char *sub[] = {"meta", "tmp", "objects"};
    for (int i = 0; i < 3 && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub[i]);
        if (tr_mkdir_p(path))
            rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", path, strerror(errno));
    }
    for (int i = 0; i < 256 && !rc; i++) {
        snprintf(path, sizeof path, "%s/objects/%02x", dir, i);
        struct stat st;
        if (stat(path, &st) && tr_mkdir_p(path))
            rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", path, strerror(errno));
    }
    if (rc) goto fail;
    o->inline_max = !opts || !opts->inline_max ? OBJ__INLINE_DEFAULT
                    : opts->inline_max < 0     ? 0
                                               : (size_t)opts->inline_max;
    size_t map = opts && opts->map_size ? opts->map_size : (size_t)64 << 30;
    snprintf(path, sizeof path, "%s/meta", dir);
    rc = mdb_env_create(&o->env);
    if (!rc) rc = mdb_env_set_maxdbs(o->env, 8);
    if (!rc) rc = mdb_env_set_mapsize(o->env, map);
    if (!rc) rc = mdb_env_set_maxreaders(o->env, 1024);
    o->no_sync = opts && opts->no_sync;
    if (!rc) rc = mdb_env_open(o->env, path, MDB_NOTLS | (o->no_sync ? MDB_NOSYNC : 0), 0644);
    if (rc) {
        rc = obj__mdb_err(err, rc, "open object metadata");
        goto fail;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, "buckets", MDB_CREATE, &o->db_b);
    if (!rc) rc = mdb_dbi_open(txn, "conf", MDB_CREATE, &o->db_c);
    if (!rc) rc = mdb_dbi_open(txn, "versions", MDB_CREATE, &o->db_v);
    if (!rc) rc = mdb_dbi_open(txn, "gc", MDB_CREATE, &o->db_g);
    if (!rc) rc = mdb_dbi_open(txn, "next", MDB_CREATE, &o->db_n);
    if (!rc) rc = mdb_dbi_open(txn, "bodies", MDB_CREATE, &o->db_body);
    if (!rc) rc = mdb_dbi_open(txn, "uploads", MDB_CREATE, &o->db_u);
    if (!rc) {
        MDB_val k = {3, "seq"}, v;
        o->seq = 1;
        o->next_bid = 1;
        if (!mdb_get(txn, o->db_n, &k, &v) && v.mv_size == 8) memcpy(&o->seq, v.mv_data, 8);
        MDB_val k2 = {3, "bid"};
        if (!mdb_get(txn, o->db_n, &k2, &v) && v.mv_size == 4) memcpy(&o->next_bid, v.mv_data, 4);
    }
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) {
        rc = obj__mdb_err(err, rc, "open object metadata");
        goto fail;
    }
    if ((rc = collect(o, err))) goto fail;
    *out = o;
    return 0;
fail:
    obj_close(o);
    return rc;
}

void obj_close(obj_t *o) {
    if (!o) return;
    if (o->env) {
        if (o->gc_n) { /* forget the gc records of bodies already unlinked */
            MDB_txn *txn;
            if (!mdb_txn_begin(o->env, NULL, 0, &txn)) {
                for (size_t i = 0; i < o->gc_n; i++) {
                    MDB_val k = {16, o->gc_done[i]};
                    mdb_del(txn, o->db_g, &k, NULL);
                }
                if (mdb_txn_commit(txn)) tr_warn("obj", "close: gc records kept (next open)");
            }
        }
        mdb_env_close(o->env);
    }
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o->gc_done);
    free(o->dir);
    free(o);
}

/* ==== buckets =============================================================================== */

int obj_bucket_name_check(const char *name, tr_err *err) {
    if (!name) return tr_err_set(err, TR_EINVAL, "bucket name is missing");
    size_t n = strlen(name);
    if (n < 3 || n > 63)
        return tr_err_set(err, TR_EINVAL,
                          "bucket name \"%.80s\" is %zu characters long; it must "
                          "be 3 to 63",
                          name, n);
    int digits_dots = 1, dots = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (!ok)
            return tr_err_set(err, TR_EINVAL,
                              "bucket name \"%s\" has '%c': use only lowercase "
                              "letters, digits, dots and hyphens",
                              name, c);
        if (c == '.') {
            dots++;
            if (i + 1 < n && name[i + 1] == '.')
                return tr_err_set(err, TR_EINVAL, "bucket name \"%s\" has two adjacent dots", name);
        } else if (!(c >= '0' && c <= '9')) {
            digits_dots = 0;
        }
    }
    char a = name[0], z = name[n - 1];
    if (a == '.' || a == '-' || z == '.' || z == '-')
        return tr_err_set(err, TR_EINVAL,
                          "bucket name \"%s\" must begin and end with a letter "
                          "or digit",
                          name);
    if (digits_dots && dots == 3)
        return tr_err_set(err, TR_EINVAL, "bucket name \"%s\" is formatted as an IP address", name);
    static const char *pre[] = {"xn--", "sthree-", "amzn-s3-demo-"};
    static const char *suf[] = {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"};
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++)
        if (!strncmp(name, pre[i], strlen(pre[i])))
            return tr_err_set(err, TR_EINVAL, "bucket name \"%s\" has the reserved prefix %s", name,
                              pre[i]);
    for (size_t i = 0; i < sizeof suf / sizeof *suf; i++) {
        size_t m = strlen(suf[i]);
        if (n >= m && !strcmp(name + n - m, suf[i]))
            return tr_err_set(err, TR_EINVAL, "bucket name \"%s\" has the reserved suffix %s", name,
                              suf[i]);
    }
    return 0;
}

int obj__bucket_get(obj_t *o, MDB_txn *txn, const char *name, obj__bucket_t *b, tr_err *err) {
    (void)o;
    if (!name || !*name || strlen(name) > 63)
        return tr_err_set(err, TR_ENOBUCKET, "bucket \"%.80s\" does not exist", name ? name : "");
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, o->db_b, &k, &v);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ENOBUCKET, "bucket \"%s\" does not exist; create it first", name);
    if (rc) return obj__mdb_err(err, rc, "bucket lookup");
    if (v.mv_size != 16) return tr_err_set(err, TR_ECORRUPT, "bucket record of %s", name);
    const uint8_t *p = v.mv_data;
    memcpy(&b->bid, p, 4);
    b->versioning = p[4];
    memcpy(&b->created_ms, p + 8, 8);
    return 0;
}

static int bucket_put(obj_t *o, MDB_txn *txn, const char *name, const obj__bucket_t *b) {
    uint8_t rec[16] = {0};
    memcpy(rec, &b->bid, 4);
    rec[4] = (uint8_t)b->versioning;
    memcpy(rec + 8, &b->created_ms, 8);
    MDB_val k = {strlen(name), (void *)name}, v = {16, rec};
    return mdb_put(txn, o->db_b, &k, &v, 0);
}

static void conf_key(uint32_t bid, int kind, uint8_t k[5]) {
    k[0] = (uint8_t)(bid >> 24);
    k[1] = (uint8_t)(bid >> 16);
    k[2] = (uint8_t)(bid >> 8);
    k[3] = (uint8_t)bid;
    k[4] = (uint8_t)kind;
}

typedef struct bucket_args {
    const char *name, *text;
    size_t n;
    int kind, state;
} bucket_args_t;

static int apply_create(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    bucket_args_t *a = j->arg;
    obj__bucket_t b = {0};
    tr_err e;
    if (!obj__bucket_get(o, txn, a->name, &b, &e))
        return tr_err_set(j->err, TR_EEXISTS, "bucket \"%s\" already exists", a->name);
    b.bid = o->next_bid++;
    b.versioning = OBJ_VERS_NONE;
    b.created_ms = tr_now_ms();
    int rc = bucket_put(o, txn, a->name, &b);
    if (!rc && a->text && *a->text) {
        uint8_t ck[5];
        conf_key(b.bid, OBJ_CONF_LOCATION, ck);
        MDB_val k = {5, ck}, v = {strlen(a->text), (void *)a->text};
        rc = mdb_put(txn, o->db_c, &k, &v, 0);
    }
    return rc ? obj__mdb_err(j->err, rc, "create bucket") : 0;
}

int obj_bucket_create(obj_t *o, const char *name, const char *location, tr_err *err) {
    int rc = obj_bucket_name_check(name, err);
    if (rc) return rc;
    bucket_args_t a = {.name = name, .text = location};
    obj__job_t j = {.apply = apply_create, .arg = &a, .err = err};
    return obj__submit(o, &j);
}

static int apply_delete_bucket(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    bucket_args_t *a = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, a->name, &b, j->err);
    if (rc) return rc;
    uint8_t pk[5];
    conf_key(b.bid, 0, pk);
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, o->db_v, &c))) return obj__mdb_err(j->err, rc, "delete bucket");
    MDB_val k = {4, pk}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    int nonempty = !rc && k.mv_size >= 4 && !memcmp(k.mv_data, pk, 4);
    mdb_cursor_close(c);
    if (!nonempty && !(rc = mdb_cursor_open(txn, o->db_u, &c))) {
        k = (MDB_val){4, pk};
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        nonempty = !rc && k.mv_size >= 4 && !memcmp(k.mv_data, pk, 4);
        mdb_cursor_close(c);
    }
    if (nonempty)
        return tr_err_set(j->err, TR_EINUSE,
                          "bucket \"%s\" is not empty: delete every object "
                          "version and delete marker, and abort its multipart uploads, first",
                          a->name);
    for (int kind = 1; kind < OBJ_CONF_MAX_; kind++) {
        conf_key(b.bid, kind, pk);
        MDB_val ck = {5, pk};
        rc = mdb_del(txn, o->db_c, &ck, NULL);
        if (rc && rc != MDB_NOTFOUND) return obj__mdb_err(j->err, rc, "delete bucket");
    }
    MDB_val bk = {strlen(a->name), (void *)a->name};
    rc = mdb_del(txn, o->db_b, &bk, NULL);
    return rc ? obj__mdb_err(j->err, rc, "delete bucket") : 0;
}

int obj_bucket_delete(obj_t *o, const char *name, tr_err *err) {
    bucket_args_t a = {.name = name};
    obj__job_t j = {.apply = apply_delete_bucket, .arg = &a, .err = err};
    return obj__submit(o, &j);
}

int obj_bucket_head(obj_t *o, const char *name, obj_bucket_info_t *info, tr_err *err) {
    MDB_txn *txn;
    int rc = obj__rtxn(o, &txn, err);
    if (rc) return rc;
    obj__bucket_t b = {0};
    rc = obj__bucket_get(o, txn, name, &b, err);
    mdb_txn_abort(txn);
    if (!rc && info) {
        snprintf(info->name, sizeof info->name, "%s", name);
        info->created_ms = b.created_ms;
        info->versioning = b.versioning;
    }
    return rc;
}

int obj_bucket_list(obj_t *o, obj_bucket_info_t **out, size_t *n, tr_err *err) {
    MDB_txn *txn;
    int rc = obj__rtxn(o, &txn, err);
    if (rc) return rc;
    MDB_cursor *c;
    size_t cnt = 0, cap = 0;
    obj_bucket_info_t *a = NULL;
    rc = mdb_cursor_open(txn, o->db_b, &c);
    MDB_val k, v;
    for (int op = MDB_FIRST; !rc && !mdb_cursor_get(c, &k, &v, op); op = MDB_NEXT) {
        if (v.mv_size != 16 || k.mv_size > 63) continue;
        if (cnt == cap) a = tr_xrealloc(a, (cap = cap ? 2 * cap : 16) * sizeof *a);
        memcpy(a[cnt].name, k.mv_data, k.mv_size);
        a[cnt].name[k.mv_size] = 0;
        a[cnt].versioning = ((uint8_t *)v.mv_data)[4];
        memcpy(&a[cnt].created_ms, (uint8_t *)v.mv_data + 8, 8);
        cnt++;
    }
    if (!rc) mdb_cursor_close(c);
    mdb_txn_abort(txn);
    if (rc) {
        free(a);
        return obj__mdb_err(err, rc, "list buckets");
    }
    *out = a;
    *n = cnt;
    return 0;
}

static int apply_versioning(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    bucket_args_t *a = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, a->name, &b, j->err);
    if (rc) return rc;
    b.versioning = a->state;
    rc = bucket_put(o, txn, a->name, &b);
    return rc ? obj__mdb_err(j->err, rc, "set versioning") : 0;
}

int obj_versioning_set(obj_t *o, const char *bucket, int state, tr_err *err) {
    if (state != OBJ_VERS_ENABLED && state != OBJ_VERS_SUSPENDED)
        return tr_err_set(err, TR_EINVAL, "versioning state must be Enabled or Suspended");
    bucket_args_t a = {.name = bucket, .state = state};
    obj__job_t j = {.apply = apply_versioning, .arg = &a, .err = err};
    return obj__submit(o, &j);
}

int obj_versioning_get(obj_t *o, const char *bucket, int *state, tr_err *err) {
    obj_bucket_info_t bi;
    int rc = obj_bucket_head(o, bucket, &bi, err);
    if (!rc) *state = bi.versioning;
    return rc;
}

static int apply_conf(obj_t *o, MDB_txn *txn, obj__job_t *j) {
    bucket_args_t *a = j->arg;
    obj__bucket_t b = {0};
    int rc = obj__bucket_get(o, txn, a->name, &b, j->err);
    if (rc) return rc;
    uint8_t ck[5];
    conf_key(b.bid, a->kind, ck);
    MDB_val k = {5, ck}, v = {a->n, (void *)a->text};
    rc = a->text ? mdb_put(txn, o->db_c, &k, &v, 0) : mdb_del(txn, o->db_c, &k, NULL);
    if (rc == MDB_NOTFOUND) rc = 0;
    return rc ? obj__mdb_err(j->err, rc, "bucket configuration") : 0;
}

int obj_conf_set(obj_t *o, const char *bucket, obj_conf_t kind, const char *text, size_t n,
                 tr_err *err) {
    if (kind < 1 || kind >= OBJ_CONF_MAX_)
        return tr_err_set(err, TR_EINVAL, "unknown bucket configuration kind %d", (int)kind);
    if (text && n > (1u << 20))
        return tr_err_set(err, TR_EINVAL, "bucket configuration of %zu bytes; the limit is 1 MiB",
                          n);
    bucket_args_t a = {.name = bucket, .text = text, .n = n, .kind = kind};
    obj__job_t j = {.apply = apply_conf, .arg = &a, .err = err};
    return obj__submit(o, &j);
}

int obj_conf_get(obj_t *o, const char *bucket, obj_conf_t kind, char **text, size_t *n,
                 tr_err *err) {
    MDB_txn *txn;
    int rc = obj__rtxn(o, &txn, err);
    if (rc) return rc;
    obj__bucket_t b = {0};
    rc = obj__bucket_get(o, txn, bucket, &b, err);
    if (!rc) {
        uint8_t ck[5];
        conf_key(b.bid, kind, ck);
        MDB_val k = {5, ck}, v;
        int r = mdb_get(txn, o->db_c, &k, &v);
        if (r == MDB_NOTFOUND)
            rc = tr_err_set(err, TR_ENOTFOUND, "bucket \"%s\" has no configuration of that kind",
                            bucket);
        else if (r) rc = obj__mdb_err(err, r, "bucket configuration");
        else {
            *text = tr_xstrndup(v.mv_data, v.mv_size);
            *n = v.mv_size;
        }
    }
    mdb_txn_abort(txn);
    return rc;
}
