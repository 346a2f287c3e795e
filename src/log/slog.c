/* SPDX-License-Identifier: Apache-2.0
 *
 * slog.c -- the stream engine: named streams of shards, LMDB metadata, group-committed appends.
 *
 * A slog_t keeps every stream in memory (the cache) and mirrors each change of a stream into one
 * LMDB record (DIR/meta) before the change becomes visible, so the cache is always a committed
 * state.  Record data lives in one slog_shard_t per shard (shard.c), under DIR/streams/<id>/<idx>.
 * The control plane (create, delete, describe, tags, retention) and resharding live in
 * slog_ctl.c; the types and helpers both files use are in slog_int.h.
 *
 * Locks, in the only order they are ever taken:
 *
 *     ctl_mu      serialises the control plane (create, delete, reshard, tags, retention).  The
 *                 thread holding it may read the cache without other locks: only ctl_mu holders
 *                 change it.  LMDB write transactions run under ctl_mu alone.
 *     put_lock    rwlock.  slog_put holds it shared while it looks up the stream, routes records
 *                 to open shards and enqueues the job.  Writers: anything that changes the stream
 *                 table or a routing table (create, delete, reshard), held for the memory swap
 *                 and, for delete/reshard, across "drain" (below).
 *     lock        rwlock.  Readers (slog_read, slog_position, describe, list, limits, the
 *                 retention scan) hold it shared for a lookup and a refcount bump, never across
 *                 I/O.  Writers hold it only for in-memory swaps after the LMDB commit, so a
 *                 reader never waits behind an fsync -- neither the commit thread's nor LMDB's.
 *     qmu         the put queue, pending-byte budget, tickets, hook pointer.
 *     sh->wmu     per shard: append/sync (commit thread) vs trim (retention thread).
 *
 * Group commit: slog_put routes and enqueues one job (ticket = ++q_enqueued).  The commit thread
 * takes the whole queue, gathers records per shard in queue order, makes one slog_shard_append
 * per touched shard, then one slog_shard_sync per touched shard (a plain loop: appends reach the
 * page cache first, so the syncs of different shards overlap in the device queue well enough on
 * small machines), fills outputs, runs the append hook, marks the batch done (q_done), releases
 * the byte budget and runs the callbacks.  The commit thread takes no engine lock but qmu and
 * the shards' wmu, and holds none while calling out.
 *
 * Reshard/delete vs put: they take put_lock as writer (no new job can be routed), then DRAIN:
 * wait until q_done reaches the ticket of the last queued job.  At that point no queued job
 * refers to a parent shard, so its end counter is final: it becomes seq_end of the closed
 * parent, the LMDB record is committed, and the new routing table is swapped in.  Puts wait at
 * most one commit cycle plus one LMDB commit during a reshard; reads do not wait (they only
 * contend for `lock` during the memory swap).  The drain is engine-wide (simple, reshards are
 * rare).
 *
 * Shard handles are refcounted: the stream's table holds one reference, slog_read /
 * slog_position / the retention scan take one for the duration of their I/O.  Queued jobs hold
 * none (delete and reshard drain first).  Delete removes the metadata, drops the table's
 * references and marks the shards doomed; whoever drops the last reference closes the shard and
 * removes its directory.  A crash in between leaves an orphan directory that slog_open removes.
 *
 * Choices worth knowing:
 *   - Split follows AWS: NewStartingHashKey must be > StartingHashKey + 1 and < EndingHashKey.
 *   - Merge accepts the two shards in either order (a.end + 1 == b.start or b.end + 1 ==
 *     a.start); the child lists `shard` as parent and `adjacent` as adjacent parent, as AWS.
 *   - Scale (UpdateShardCount, UNIFORM_SCALING) closes every open shard and opens `target` new
 *     shards splitting [0, 2^128) evenly; each child names the parent whose range overlaps it
 *     most and, if another overlaps it, the next most as adjacent parent.  Scaling to the current
 *     count is a no-op.  A child whose range touches three or more parents (possible after
 *     uneven splits) lists only two of them.
 *   - Closed shards stay in DescribeStream after retention (AWS drops them); retention trims
 *     their segments like any other shard's (the active segment is always kept).
 *   - Admission: a put is refused with TR_ETHROTTLED when bytes are already queued and the put
 *     would take the queue past max_pending_bytes; a put into an empty queue is always admitted,
 *     so one oversized put cannot wedge a stream.  The budget is released right before the
 *     callbacks of a commit cycle run.
 */
#include "log/slog.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fs.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "log/slog_int.h"

#define SUB "slog"   /* tlog subsystem of this file's log lines */

/* ---- small helpers ------------------------------------------------------------------------- */

static void oom(size_t n) {
    tr_error(SUB, "out of memory allocating %zu bytes; free memory or lower limits", n);
    abort();
}

char *slog__xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *slog__xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) oom(64);
    return s;
}

void slog__rm_rf(const char *path) {
    if (tr_rmtree(path)) tr_warn(SUB, "remove %s: %s", path, strerror(errno));
}

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

void slog__shard_id(uint32_t idx, char out[24]) { snprintf(out, 24, "shardId-%012" PRIu32, idx); }

/* ---- helpers: hash keys and sequence numbers ----------------------------------------------- */

static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static EVP_MD *md5_fetched;

static void md5_init(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
#endif
}

slog_hash_t slog_hash_pk(const char *pk, size_t n) {
    pthread_once(&md5_once, md5_init);
    const EVP_MD *md = md5_fetched ? md5_fetched : EVP_md5();
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!md || !EVP_Digest(pk, n, d, &len, md, NULL) || len != 16) {
        tr_error(SUB, "MD5 is unavailable from OpenSSL (FIPS-only provider?); partition keys "
                      "cannot be hashed: enable the default provider");
        abort();
    }
    slog_hash_t h = 0;
    for (int i = 0; i < 16; i++) h = h << 8 | d[i];
    return h;
}

void slog_hash_format(slog_hash_t h, char out[40]) {
    char tmp[40];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(h % 10));
        h /= 10;
    } while (h);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

int slog_hash_parse(const char *s, slog_hash_t *out) {
    if (!s || !out) return TR_EINVAL;
    size_t n = strlen(s);
    /* AWS pattern 0|([1-9]\d{0,38}) */
    if (n == 0 || n > 39 || (s[0] == '0' && n > 1)) return TR_EINVAL;
    slog_hash_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return TR_EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (SLOG_HASH_MAX - d) / 10) return TR_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void slog_seq_format(uint32_t shard, uint64_t counter, char out[SLOG_SEQ_STRLEN + 1]) {
    snprintf(out, SLOG_SEQ_STRLEN + 1, "49%012" PRIu32 "%020" PRIu64, shard, counter);
}

int slog_seq_parse(const char *s, uint32_t *shard, uint64_t *counter) {
    if (!s || strlen(s) != SLOG_SEQ_STRLEN || s[0] != '4' || s[1] != '9') return TR_EINVAL;
    uint64_t sh = 0, c = 0;
    for (int i = 2; i < SLOG_SEQ_STRLEN; i++)
        if (s[i] < '0' || s[i] > '9') return TR_EINVAL;
    for (int i = 2; i < 14; i++) sh = sh * 10 + (uint64_t)(s[i] - '0');
    if (sh > UINT32_MAX) return TR_EINVAL;
    for (int i = 14; i < SLOG_SEQ_STRLEN; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (c > (UINT64_MAX - d) / 10) return TR_EINVAL;
        c = c * 10 + d;
    }
    if (shard) *shard = (uint32_t)sh;
    if (counter) *counter = c;
    return 0;
}

/* Ranges of n shards splitting [0, 2^128) evenly as AWS does: step = floor(2^128 / n), shard i
 * gets [i*step, (i+1)*step - 1], the last one ends at 2^128 - 1. */
void slog__split_even(uint32_t n, slog_hash_t *starts, slog_hash_t *ends) {
    slog_hash_t step = 0;
    if (n > 1) step = SLOG_HASH_MAX / n + (SLOG_HASH_MAX % n == (slog_hash_t)n - 1 ? 1 : 0);
    for (uint32_t i = 0; i < n; i++) {
        starts[i] = step * i;
        ends[i] = i == n - 1 ? SLOG_HASH_MAX : step * (i + 1) - 1;
    }
}

/* ---- metadata: LMDB records ---------------------------------------------------------------- */
/*
 * DB "meta":    "next_id" -> u64 LE, the id the next created stream gets (ids never repeat).
 * DB "streams": stream name -> stream record, little-endian, drawn byte by byte:
 *
 *     0        4            12       16           24        28        32        36
 *     +--------+------------+--------+------------+---------+---------+---------+
 *     | "SLS1" | id u64     | mode   | created_ms | retain  | n_shards| n_tags  |
 *     |        |            | u32    | i64        | hours   | u32     | u32     |
 *     +--------+------------+--------+------------+---------+---------+---------+
 *     then n_shards shard entries of 80 bytes, ascending index:
 *     0      4        8        12           28           44        52        60      64
 *     +------+--------+--------+------------+------------+---------+---------+-------+
 *     | idx  | parent | adjac. | hash_start | hash_end   | seq_    | seq_end | closed|
 *     | u32  | u32    | u32    | u128       | u128       | start   | u64     | u32   |
 *     +------+--------+--------+------------+------------+---------+---------+-------+
 *     64           72           80
 *     | created_ms | closed_ms  |
 *     | i64        | i64        |
 *     then n_tags tags: u16 key_len, key bytes, u16 value_len, value bytes.
 *
 * parent/adjacent = 0xFFFFFFFF when none.  seq_end is meaningful for closed shards only.
 */
#define SL_MAGIC "SLS1"
#define SL_HDR 36
#define SL_SHARD_REC 80

static void put_u16(tr_buf *b, uint16_t v) {
    uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    tr_buf_append(b, p, 2);
}

static void put_u32(tr_buf *b, uint32_t v) {
    uint8_t p[4];
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    tr_buf_append(b, p, 4);
}

static void put_u64(tr_buf *b, uint64_t v) {
    uint8_t p[8];
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    tr_buf_append(b, p, 8);
}

static void put_u128(tr_buf *b, slog_hash_t v) {
    put_u64(b, (uint64_t)v);
    put_u64(b, (uint64_t)(v >> 64));
}

typedef struct sl_rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
} sl_rd_t;

static uint64_t get_le(sl_rd_t *r, int bytes) {
    if (r->bad || r->n - r->off < (size_t)bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

static slog_hash_t get_u128(sl_rd_t *r) {
    slog_hash_t lo = get_le(r, 8);
    slog_hash_t hi = get_le(r, 8);
    return hi << 64 | lo;
}

static char *get_str(sl_rd_t *r) {
    size_t n = (size_t)get_le(r, 2);
    if (r->bad || r->n - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = tr_xmalloc(n + 1);
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

static void image_encode(const sl_image_t *img, tr_buf *b) {
    tr_buf_append(b, SL_MAGIC, 4);
    put_u64(b, img->id);
    put_u32(b, (uint32_t)img->mode);
    put_u64(b, (uint64_t)img->created_ms);
    put_u32(b, img->retention_hours);
    put_u32(b, (uint32_t)img->n_shards);
    put_u32(b, (uint32_t)img->n_tags);
    for (size_t i = 0; i < img->n_shards; i++) {
        const slog_shard_info_t *s = &img->shards[i];
        put_u32(b, s->index);
        put_u32(b, s->parent);
        put_u32(b, s->adjacent_parent);
        put_u128(b, s->hash_start);
        put_u128(b, s->hash_end);
        put_u64(b, s->seq_start);
        put_u64(b, s->seq_end);
        put_u32(b, (uint32_t)s->closed);
        put_u64(b, (uint64_t)s->created_ms);
        put_u64(b, (uint64_t)s->closed_ms);
    }
    for (size_t i = 0; i < img->n_tags; i++) {
        const char *k = img->tags[i].key, *v = img->tags[i].value ? img->tags[i].value : "";
        put_u16(b, (uint16_t)strlen(k));
        tr_buf_append(b, k, strlen(k));
        put_u16(b, (uint16_t)strlen(v));
        tr_buf_append(b, v, strlen(v));
    }
}

void slog__tags_free(slog_tag_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(t[i].key);
        free(t[i].value);
    }
    free(t);
}

/* Decode a stream record; on success the image's shards and tags arrays are malloc'd (the
 * caller frees them; casts away the image's const). */
static int image_decode(const void *p, size_t n, sl_image_t *img) {
    sl_rd_t r = {p, n, 0, 0};
    memset(img, 0, sizeof *img);
    if (n < SL_HDR || memcmp(p, SL_MAGIC, 4)) return TR_ECORRUPT;
    r.off = 4;
    img->id = get_le(&r, 8);
    img->mode = (int)get_le(&r, 4);
    img->created_ms = (int64_t)get_le(&r, 8);
    img->retention_hours = (uint32_t)get_le(&r, 4);
    size_t ns = (size_t)get_le(&r, 4), nt = (size_t)get_le(&r, 4);
    if (r.bad || ns == 0 || ns > (n - SL_HDR) / SL_SHARD_REC) return TR_ECORRUPT;
    slog_shard_info_t *sh = tr_xcalloc(ns, sizeof *sh);
    for (size_t i = 0; i < ns; i++) {
        sh[i].index = (uint32_t)get_le(&r, 4);
        sh[i].parent = (uint32_t)get_le(&r, 4);
        sh[i].adjacent_parent = (uint32_t)get_le(&r, 4);
        sh[i].hash_start = get_u128(&r);
        sh[i].hash_end = get_u128(&r);
        sh[i].seq_start = get_le(&r, 8);
        sh[i].seq_end = get_le(&r, 8);
        sh[i].closed = (int)get_le(&r, 4);
        sh[i].created_ms = (int64_t)get_le(&r, 8);
        sh[i].closed_ms = (int64_t)get_le(&r, 8);
        if (sh[i].index != i) r.bad = 1;
    }
    slog_tag_t *tags = nt ? tr_xcalloc(nt, sizeof *tags) : NULL;
    size_t got = 0;
    for (; got < nt && !r.bad; got++) {
        tags[got].key = get_str(&r);
        tags[got].value = get_str(&r);
    }
    if (r.bad || r.off != n) {
        free(sh);
        slog__tags_free(tags, got);
        return TR_ECORRUPT;
    }
    img->shards = sh;
    img->n_shards = ns;
    img->tags = tags;
    img->n_tags = nt;
    return 0;
}

/* Write (img != NULL) or delete (img == NULL) the record of `name`, and next_id if nonzero, in
 * one durable transaction. */
int slog__meta_write(slog_t *lg, const char *name, const sl_image_t *img, uint64_t next_id,
                     tr_err *err) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(lg->env, NULL, 0, &txn);
    if (rc) goto fail;
    MDB_val k = {strlen(name), (void *)name};
    if (img) {
        tr_buf b = TR_BUF_INIT;
        image_encode(img, &b);
        MDB_val v = {b.len, b.data};
        rc = mdb_put(txn, lg->db_streams, &k, &v, 0);
        tr_buf_free(&b);
    } else {
        rc = mdb_del(txn, lg->db_streams, &k, NULL);
    }
    if (!rc && next_id) {
        uint8_t le[8];
        for (int i = 0; i < 8; i++) le[i] = (uint8_t)(next_id >> (8 * i));
        MDB_val mk = {7, (void *)"next_id"}, mv = {8, le};
        rc = mdb_put(txn, lg->db_meta, &mk, &mv, 0);
    }
    if (rc) {
        mdb_txn_abort(txn);
        goto fail;
    }
    rc = mdb_txn_commit(txn);
    if (!rc) return 0;
fail:
    return tr_err_set(err, TR_EIO,
                      "metadata update for stream \"%s\" failed: %s; check free space and "
                      "permissions of %s/meta, then retry",
                      name, mdb_strerror(rc), lg->dir);
}

/* The image of st as cached; infos must hold st->n_shards (filled here) + room the caller uses. */
void slog__image_of(const sl_stream_t *st, slog_shard_info_t *infos, sl_image_t *img) {
    for (size_t i = 0; i < st->n_shards; i++) infos[i] = st->shards[i]->info;
    img->id = st->id;
    img->mode = st->mode;
    img->created_ms = st->created_ms;
    img->retention_hours = st->retention_hours;
    img->shards = infos;
    img->n_shards = st->n_shards;
    img->tags = st->tags;
    img->n_tags = st->n_tags;
}

/* ---- shard handles ------------------------------------------------------------------------- */

/* Testing only (opts.test_enospc_shard): the I/O of a shard whose disk is full.  Reads, syncs and
 * truncation work; every write fails with ENOSPC, so appends fail and are undone by the shard
 * exactly as on a real full disk. */
static ssize_t enospc_pwrite(int fd, const void *b, size_t n, off_t off) {
    (void)fd;
    (void)b;
    (void)n;
    (void)off;
    errno = ENOSPC;
    return -1;
}
static slog_io_t io_enospc;
static pthread_once_t io_enospc_once = PTHREAD_ONCE_INIT;
static void io_enospc_init(void) {
    io_enospc = slog__io_posix;
    io_enospc.pwrite = enospc_pwrite;
}

/*
 * Sequence high-water marks in the metadata.  Each shard log keeps its mark in DIR/state, inside
 * the shard directory; a copy lives in db_meta under "hwm/" + stream id (u64 big-endian) +
 * shard index (u32 big-endian) -> mark (u64 little-endian), written by the commit thread
 * through the shard's hwm hook at the same moments as DIR/state (a segment roll, every 2^20
 * records, the first append after an open), before any number under the new mark is handed
 * out.  At open it is the shard's opts.min_next: a shard directory deleted as a whole is
 * reported and numbering continues past every number handed out.  The commit thread holds no
 * LMDB transaction otherwise, and no control-plane thread waits for it while holding one
 * (slog__meta_write is self-contained), so the write transaction here cannot deadlock.
 */
#define SL_HWM_KEY 16

static void hwm_key(uint8_t k[SL_HWM_KEY], uint64_t sid, uint32_t index) {
    memcpy(k, "hwm/", 4);
    for (int i = 0; i < 8; i++) k[4 + i] = (uint8_t)(sid >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) k[12 + i] = (uint8_t)(index >> (24 - 8 * i));
}

/* The recorded mark of a shard (0 if none), read in txn. */
static uint64_t hwm_load(slog_t *lg, MDB_txn *txn, uint64_t sid, uint32_t index) {
    uint8_t kb[SL_HWM_KEY];
    hwm_key(kb, sid, index);
    MDB_val k = {SL_HWM_KEY, kb}, v;
    if (!txn || mdb_get(txn, lg->db_meta, &k, &v) || v.mv_size != 8) return 0;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)((const uint8_t *)v.mv_data)[i] << (8 * i);
    return x;
}

/* slog_shard_hwm_fn: record a shard's new mark durably (commit thread). */
static int hwm_store(void *arg, uint64_t hwm, tr_err *err) {
    sl_shard_t *sh = arg;
    slog_t *lg = sh->lg;
    uint8_t kb[SL_HWM_KEY], vb[8];
    hwm_key(kb, sh->stream_id, sh->info.index);
    for (int i = 0; i < 8; i++) vb[i] = (uint8_t)(hwm >> (8 * i));
    MDB_val k = {SL_HWM_KEY, kb}, v = {8, vb};
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(lg->env, NULL, 0, &txn);
    if (!rc && (rc = mdb_put(txn, lg->db_meta, &k, &v, 0)) != 0) mdb_txn_abort(txn);
    else if (!rc) rc = mdb_txn_commit(txn);
    if (!rc) return 0;
    return tr_err_set(err, TR_EIO,
                      "recording the sequence high-water mark of %s in %s/meta "
                      "failed: %s; nothing was appended. Fix: check free space and permissions "
                      "of %s/meta, then retry",
                      sh->dir, lg->dir, mdb_strerror(rc), lg->dir);
}

/* Drop the marks of a deleted stream (best effort: a leftover key names an id never reused). */
void slog__hwm_forget(slog_t *lg, uint64_t sid) {
    uint8_t kb[SL_HWM_KEY];
    hwm_key(kb, sid, 0);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (mdb_txn_begin(lg->env, NULL, 0, &txn)) return;
    if (mdb_cursor_open(txn, lg->db_meta, &cur)) {
        mdb_txn_abort(txn);
        return;
    }
    MDB_val k = {SL_HWM_KEY, kb}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (!rc && k.mv_size == SL_HWM_KEY && !memcmp(k.mv_data, kb, 12)) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == MDB_NOTFOUND || (!rc && (k.mv_size != SL_HWM_KEY || memcmp(k.mv_data, kb, 12))))
            break;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) mdb_txn_abort(txn);
    else if (mdb_txn_commit(txn))
        tr_warn(SUB,
                "could not remove the high-water marks of deleted stream %" PRIu64 " from "
                "%s/meta (harmless: its id is never reused)",
                sid, lg->dir);
}

/* Open a shard's log.  With `tolerate` (loading existing shards at start-up) a log that cannot
 * be opened does not fail the call: the shard is kept as FAILED (log NULL), loudly reported,
 * and every request to it answers fail_rc/fail_msg, while the other shards serve. */
int slog__sh_open(slog_t *lg, uint64_t sid, const slog_shard_info_t *info, sl_shard_t **out,
                  int tolerate, MDB_txn *txn, tr_err *err) {
    sl_shard_t *sh = tr_xcalloc(1, sizeof *sh);
    sh->info = *info;
    sh->info.begin = sh->info.end = 0;
    sh->stream_id = sid;
    sh->stream_dir = slog__xasprintf("%s/streams/%" PRIu64, lg->dir, sid);
    sh->dir = slog__xasprintf("%s/%" PRIu32, sh->stream_dir, info->index);
    slog_shard_opts_t so = {.segment_bytes = lg->opts.segment_bytes,
                            .first_seq = info->seq_start,
                            .no_sync = lg->opts.no_sync,
                            .min_next = hwm_load(lg, txn, sid, info->index)};
    int rc = slog_shard_open(sh->dir, &so, &sh->log, err);
    if (rc && tolerate) {
        char sid_s[24];
        slog__shard_id(info->index, sid_s);
        sh->fail_rc = rc;
        sh->fail_msg = slog__xasprintf("shard %s (%s) is unavailable: its log could not be opened "
                                       "at start-up: %s. The other shards are served. Fix: repair "
                                       "what the message says, then restart the server",
                                       sid_s, sh->dir, err ? err->msg : tr_strerror(rc));
        tr_error(SUB, "FAILED SHARD: %s", sh->fail_msg);
        rc = 0;
    }
    if (rc) {
        free(sh->dir);
        free(sh->stream_dir);
        free(sh);
        return rc;
    }
    if (sh->log && lg->opts.test_enospc_shard && lg->opts.test_enospc_shard - 1 == info->index) {
        pthread_once(&io_enospc_once, io_enospc_init);
        slog__shard_set_io(sh->log, &io_enospc);  /* before any other thread sees the shard */
    }
    sh->lg = lg;
    if (sh->log) slog_shard_set_hwm_hook(sh->log, hwm_store, sh); /* before any append */
    pthread_mutex_init(&sh->wmu, NULL);
    atomic_init(&sh->refs, 1);
    atomic_init(&sh->doomed, 0);
    sh->last_arrival = slog_shard_last_arrival(sh->log);
    *out = sh;
    return 0;
}

static void sh_ref(sl_shard_t *sh) { atomic_fetch_add(&sh->refs, 1); }

/* Drop a reference; the last one closes the log and, for a doomed shard, removes its directory
 * (and the stream directory once it is empty). */
static void sh_unref(sl_shard_t *sh) {
    if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1) return;
    slog_shard_close(sh->log);
    if (atomic_load(&sh->doomed)) {
        tr_err e = {0, ""};
        if (slog_shard_destroy_dir(sh->dir, &e)) {
            tr_warn(SUB, "removing %s: %s; removing it by hand", sh->dir, e.msg);
            slog__rm_rf(sh->dir);
        }
        if (rmdir(sh->stream_dir) && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
            tr_warn(SUB, "rmdir %s: %s", sh->stream_dir, strerror(errno));
    }
    pthread_mutex_destroy(&sh->wmu);
    free(sh->fail_msg);
    free(sh->dir);
    free(sh->stream_dir);
    free(sh);
}

void slog__sh_doom(sl_shard_t *sh) {
    atomic_store(&sh->doomed, 1);
    sh_unref(sh);
}

/* ---- stream cache -------------------------------------------------------------------------- */

/* Insert into the sorted table (caller holds both locks as writer, or is single-threaded). */
void slog__stream_insert(slog_t *lg, sl_stream_t *st) {
    if (lg->n_streams == lg->cap_streams) {
        lg->cap_streams = lg->cap_streams ? lg->cap_streams * 2 : 16;
        lg->streams = tr_xrealloc(lg->streams, lg->cap_streams * sizeof *lg->streams);
    }
    size_t i = slog__stream_lower_bound(lg, st->name);
    memmove(lg->streams + i + 1, lg->streams + i, (lg->n_streams - i) * sizeof *lg->streams);
    lg->streams[i] = st;
    lg->n_streams++;
}

static int cmp_open(const void *a, const void *b) {
    const sl_shard_t *x = *(sl_shard_t *const *)a, *y = *(sl_shard_t *const *)b;
    return x->info.hash_start < y->info.hash_start ? -1 : x->info.hash_start > y->info.hash_start;
}

/* A fresh routing table for st's current shard set (the caller swaps it in). */
sl_shard_t **slog__routing_build(const sl_stream_t *st, size_t *n) {
    sl_shard_t **v = tr_xcalloc(st->n_shards, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < st->n_shards; i++)
        if (!st->shards[i]->info.closed) v[k++] = st->shards[i];
    qsort(v, k, sizeof *v, cmp_open);
    *n = k;
    return v;
}

/* The open shard whose range holds h (the open ranges partition [0, 2^128)). */
static sl_shard_t *route(const sl_stream_t *st, slog_hash_t h) {
    size_t lo = 0, hi = st->n_open;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->open[mid]->info.hash_start <= h) lo = mid;
        else hi = mid;
    }
    return st->open[lo];
}

void slog__stream_free(sl_stream_t *st, int doom) {
    if (!st) return;
    for (size_t i = 0; i < st->n_shards; i++) {
        if (!st->shards[i]) continue;
        if (doom) slog__sh_doom(st->shards[i]);
        else sh_unref(st->shards[i]);
    }
    free(st->shards);
    free(st->open);
    slog__tags_free(st->tags, st->n_tags);
    free(st);
}

int slog__stream_missing(const char *name, tr_err *err) {
    return tr_err_set(err, TR_ENOTFOUND,
                      "stream \"%s\" not found; create it with CreateStream or check StreamName",
                      name);
}

/* ---- tags ---------------------------------------------------------------------------------- */

int slog__tags_check(const slog_tag_t *tags, size_t n, tr_err *err) {
    for (size_t i = 0; i < n; i++) {
        size_t kl = tags[i].key ? strlen(tags[i].key) : 0;
        size_t vl = tags[i].value ? strlen(tags[i].value) : 0;
        if (kl < 1 || kl > SLOG_MAX_TAG_KEY)
            return tr_err_set(err, TR_EINVAL, "tag key \"%.40s\" must be 1-%d characters long",
                              tags[i].key ? tags[i].key : "", SLOG_MAX_TAG_KEY);
        if (vl > SLOG_MAX_TAG_VALUE)
            return tr_err_set(err, TR_EINVAL,
                              "value of tag \"%.40s\" is %zu characters; the maximum is %d",
                              tags[i].key, vl, SLOG_MAX_TAG_VALUE);
    }
    return 0;
}

static int cmp_tag(const void *a, const void *b) {
    return strcmp(((const slog_tag_t *)a)->key, ((const slog_tag_t *)b)->key);
}

/* Deep copy of a (minus keys in `drop`) with b added/overwriting, sorted by key. */
slog_tag_t *slog__tags_merge(const slog_tag_t *a, size_t na, const slog_tag_t *b, size_t nb,
                             char *const *drop, size_t nd, size_t *n_out) {
    slog_tag_t *v = tr_xcalloc(na + nb, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; i < na; i++) {
        int skip = 0;
        for (size_t j = 0; j < nd && !skip; j++) skip = drop[j] && !strcmp(drop[j], a[i].key);
        if (skip) continue;
        v[n].key = tr_xstrdup(a[i].key);
        v[n++].value = tr_xstrdup(a[i].value);
    }
    for (size_t i = 0; i < nb; i++) {
        size_t j = 0;
        while (j < n && strcmp(v[j].key, b[i].key)) j++;
        if (j == n) v[n++].key = tr_xstrdup(b[i].key);
        else free(v[j].value);
        v[j].value = tr_xstrdup(b[i].value ? b[i].value : "");
    }
    qsort(v, n, sizeof *v, cmp_tag);
    *n_out = n;
    return v;
}

/* ---- commit thread ------------------------------------------------------------------------- */

static sl_slot_t *slot_of(slog_t *lg, sl_shard_t *sh, size_t *ns) {
    if (sh->c_slot) return &lg->slots[sh->c_slot - 1];
    if (*ns == lg->slots_cap) {
        size_t cap = lg->slots_cap ? lg->slots_cap * 2 : 16;
        lg->slots = tr_xrealloc(lg->slots, cap * sizeof *lg->slots);
        memset(lg->slots + lg->slots_cap, 0, (cap - lg->slots_cap) * sizeof *lg->slots);
        lg->slots_cap = cap;
    }
    sl_slot_t *s = &lg->slots[(*ns)++];
    s->sh = sh;
    s->n = 0;
    s->rc = 0;
    sh->c_slot = *ns;
    return s;
}

static void slot_push(sl_slot_t *s, slog_put_rec_t *r) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->in = tr_xrealloc(s->in, s->cap * sizeof *s->in);
        s->out = tr_xrealloc(s->out, s->cap * sizeof *s->out);
    }
    s->in[s->n] = (slog_rec_in_t){r->pk, r->pk_len, r->data, r->data_len};
    s->out[s->n++] = r;
}

/* One cycle: append, sync, publish, then callbacks.  Jobs are in ticket order. */
static void commit_batch(slog_t *lg, sl_job_t *jobs) {
    size_t ns = 0, bytes = 0;
    uint64_t last_ticket = 0;
    for (sl_job_t *j = jobs; j; j = j->next) {
        last_ticket = j->ticket;
        bytes += j->bytes;
        for (size_t i = 0; i < j->n; i++) slot_push(slot_of(lg, j->route[i], &ns), &j->recs[i]);
    }

    int64_t now = tr_now_ms();
    for (size_t i = 0; i < ns; i++) {
        sl_slot_t *s = &lg->slots[i];
        tr_err e = {0, ""};
        pthread_mutex_lock(&s->sh->wmu);
        int64_t arrival = now > s->sh->last_arrival ? now : s->sh->last_arrival;
        if (!s->sh->log) { /* failed shard: reported at start-up, refused here */
            s->rc = s->sh->fail_rc;
            pthread_mutex_unlock(&s->sh->wmu);
            continue;
        }
        s->rc = slog_shard_append(s->sh->log, s->in, s->n, arrival, &s->first, &e);
        if (!s->rc) s->sh->last_arrival = arrival;
        pthread_mutex_unlock(&s->sh->wmu);
        if (s->rc) tr_error(SUB, "append to %s failed: %s", s->sh->dir, e.msg);
    }
    for (size_t i = 0; i < ns; i++) {
        sl_slot_t *s = &lg->slots[i];
        if (s->rc) continue;
        tr_err e = {0, ""};
        pthread_mutex_lock(&s->sh->wmu);
        s->rc = slog_shard_sync(s->sh->log, &e);
        pthread_mutex_unlock(&s->sh->wmu);
        if (s->rc) tr_error(SUB, "sync of %s failed: %s", s->sh->dir, e.msg);
    }

    pthread_mutex_lock(&lg->qmu);
    slog_append_hook hook = lg->hook;
    void *hook_arg = lg->hook_arg;
    pthread_mutex_unlock(&lg->qmu);

    for (size_t i = 0; i < ns; i++) {
        sl_slot_t *s = &lg->slots[i];
        for (size_t k = 0; k < s->n; k++) {
            s->out[k]->shard = s->sh->info.index;
            s->out[k]->rc = s->rc;
            s->out[k]->seq = s->rc ? 0 : s->first + k;
        }
        s->sh->c_slot = 0;
        if (!s->rc && hook)
            hook(hook_arg, s->sh->stream_id, s->sh->info.index, slog_shard_end(s->sh->log));
    }

    pthread_mutex_lock(&lg->qmu);
    lg->q_done = last_ticket;
    lg->pending_bytes -= bytes;
    pthread_cond_broadcast(&lg->q_done_cond);
    pthread_mutex_unlock(&lg->qmu);

    while (jobs) {
        sl_job_t *j = jobs;
        jobs = j->next;
        int rc = 0;
        for (size_t i = 0; i < j->n && !rc; i++) rc = j->recs[i].rc;
        if (j->cb) j->cb(j->arg, rc);
        free(j);
    }
}

static void *commit_main(void *arg) {
    slog_t *lg = arg;
    for (;;) {
        pthread_mutex_lock(&lg->qmu);
        while (!lg->q_head && !lg->stopping) pthread_cond_wait(&lg->q_cond, &lg->qmu);
        sl_job_t *jobs = lg->q_head;
        lg->q_head = lg->q_tail = NULL;
        pthread_mutex_unlock(&lg->qmu);
        if (!jobs) break; /* stopping and drained */
        if (lg->opts.commit_delay_ms > 0) {
            struct timespec ts = {lg->opts.commit_delay_ms / 1000,
                                  (long)(lg->opts.commit_delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        commit_batch(lg, jobs);
    }
    return NULL;
}

/* Wait until every job queued so far has been appended and synced.  Callers hold put_lock as
 * writer so nothing new is routed meanwhile. */
void slog__drain(slog_t *lg) {
    pthread_mutex_lock(&lg->qmu);
    uint64_t target = lg->q_enqueued;
    while (lg->q_done < target) pthread_cond_wait(&lg->q_done_cond, &lg->qmu);
    pthread_mutex_unlock(&lg->qmu);
}

/* ---- retention thread ---------------------------------------------------------------------- */

typedef struct sl_trim {
    sl_shard_t *sh;
    int64_t cutoff;
} sl_trim_t;

static void retention_run(slog_t *lg) {
    int64_t now = tr_now_ms();
    sl_trim_t *v = NULL;
    size_t n = 0, cap = 0;
    pthread_rwlock_rdlock(&lg->lock);
    for (size_t i = 0; i < lg->n_streams; i++) {
        sl_stream_t *st = lg->streams[i];
        int64_t cutoff = now - (int64_t)st->retention_hours * 3600 * 1000;
        for (size_t k = 0; k < st->n_shards; k++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = tr_xrealloc(v, cap * sizeof *v);
            }
            sh_ref(st->shards[k]);
            v[n++] = (sl_trim_t){st->shards[k], cutoff};
        }
    }
    pthread_rwlock_unlock(&lg->lock);
    for (size_t i = 0; i < n; i++) {
        tr_err e = {0, ""};
        if (!v[i].sh->log) {
            sh_unref(v[i].sh);
            continue;
        }
        pthread_mutex_lock(&v[i].sh->wmu);
        int rc = slog_shard_trim(v[i].sh->log, v[i].cutoff, &e);
        pthread_mutex_unlock(&v[i].sh->wmu);
        if (rc < 0) tr_warn(SUB, "retention of %s failed: %s", v[i].sh->dir, e.msg);
        else if (rc > 0) tr_debug(SUB, "retention removed %d segment(s) of %s", rc, v[i].sh->dir);
        sh_unref(v[i].sh);
    }
    free(v);
}

static void *retention_main(void *arg) {
    slog_t *lg = arg;
    pthread_mutex_lock(&lg->rmu);
    while (!lg->r_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = ts.tv_nsec + (long long)lg->opts.retention_interval_ms % 1000 * 1000000;
        ts.tv_sec += lg->opts.retention_interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!lg->r_stop && pthread_cond_timedwait(&lg->r_cond, &lg->rmu, &ts) != ETIMEDOUT) {}
        if (lg->r_stop) break;
        pthread_mutex_unlock(&lg->rmu);
        retention_run(lg);
        pthread_mutex_lock(&lg->rmu);
    }
    pthread_mutex_unlock(&lg->rmu);
    return NULL;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

/* Remove stream directories no stream owns, and shard directories past a stream's shard count
 * (left by a crash between creating a directory and committing the metadata). */
static void remove_orphans(slog_t *lg) {
    char *root = slog__xasprintf("%s/streams", lg->dir);
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!all_digits(de->d_name)) continue;
        char *path = slog__xasprintf("%s/%s", root, de->d_name);
        sl_stream_t *st = slog__stream_by_id(lg, strtoull(de->d_name, NULL, 10));
        if (!st) {
            tr_warn(SUB, "removing %s: no stream has id %s (deleted, or created during a crash)",
                    path, de->d_name);
            slog__rm_rf(path);
        } else {
            DIR *sd = opendir(path);
            struct dirent *se;
            while (sd && (se = readdir(sd))) {
                if (!all_digits(se->d_name) || strtoull(se->d_name, NULL, 10) < st->n_shards)
                    continue;
                char *sp = slog__xasprintf("%s/%s", path, se->d_name);
                tr_warn(SUB, "removing %s: stream \"%s\" has no such shard (reshard interrupted)",
                        sp, st->name);
                slog__rm_rf(sp);
                free(sp);
            }
            if (sd) closedir(sd);
        }
        free(path);
    }
    if (d) closedir(d);
    free(root);
}

/* Build the cache entry of one decoded record and open (recover) its shards. */
static int stream_load(slog_t *lg, MDB_txn *txn, const char *name, size_t name_len, sl_image_t *img,
                       tr_err *err) {
    if (name_len == 0 || name_len > SLOG_MAX_STREAM_NAME)
        return tr_err_set(err, TR_ECORRUPT,
                          "metadata holds an invalid stream name; Fix: "
                          "restore %s/meta from a backup",
                          lg->dir);
    sl_stream_t *st = tr_xcalloc(1, sizeof *st);
    memcpy(st->name, name, name_len);
    st->id = img->id;
    st->mode = img->mode;
    st->created_ms = img->created_ms;
    st->retention_hours = img->retention_hours;
    st->tags = (slog_tag_t *)img->tags;
    st->n_tags = img->n_tags;
    img->tags = NULL;
    img->n_tags = 0;
    st->shards = tr_xcalloc(img->n_shards, sizeof *st->shards);
    st->n_shards = img->n_shards;
    for (size_t i = 0; i < img->n_shards; i++) {
        int rc = slog__sh_open(lg, st->id, &img->shards[i], &st->shards[i], 1, txn, err);
        if (rc) {
            slog__stream_free(st, 0);
            return rc;
        }
        sl_shard_t *sh = st->shards[i];
        if (sh->log && sh->info.closed && slog_shard_end(sh->log) != sh->info.seq_end)
            tr_warn(SUB, "closed shard %s ends at %" PRIu64 " but its metadata says %" PRIu64,
                    sh->dir, slog_shard_end(sh->log), sh->info.seq_end);
    }
    st->open = slog__routing_build(st, &st->n_open);
    if (st->n_open == 0 || st->open[0]->info.hash_start != 0) {
        slog__stream_free(st, 0);
        return tr_err_set(err, TR_ECORRUPT,
                          "metadata of stream \"%.*s\" has no open shard at hash key 0; Fix: "
                          "restore %s/meta from a backup",
                          (int)name_len, name, lg->dir);
    }
    slog__stream_insert(lg, st);
    lg->open_total += (uint32_t)st->n_open;
    if (st->mode == SLOG_MODE_ON_DEMAND) lg->on_demand_streams++;
    if (st->id >= lg->next_id) lg->next_id = st->id + 1;
    return 0;
}

static int meta_load(slog_t *lg, tr_err *err) {
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    char *path = slog__xasprintf("%s/meta", lg->dir);
    int rc = mdb_env_create(&lg->env);
    if (!rc) rc = mdb_env_set_maxdbs(lg->env, 4);
    if (!rc) rc = mdb_env_set_mapsize(lg->env, SLOG_META_MAPSIZE);
    if (!rc)
        rc = mdb_env_open(lg->env, path, MDB_NOTLS | (lg->opts.no_sync ? MDB_NOSYNC : 0), 0644);
    if (rc) {
        tr_err_set(err, TR_EIO,
                   "cannot open metadata environment %s: %s; check that the "
                   "directory is writable and not opened by another server",
                   path, mdb_strerror(rc));
        rc = TR_EIO;
        goto leave;
    }
    if ((rc = mdb_txn_begin(lg->env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "streams", MDB_CREATE, &lg->db_streams)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &lg->db_meta))) {
        tr_err_set(err, TR_EIO, "cannot open metadata tables in %s: %s", path, mdb_strerror(rc));
        rc = TR_EIO;
        goto leave;
    }
    lg->next_id = 1;
    MDB_val k = {7, (void *)"next_id"}, v;
    if (!mdb_get(txn, lg->db_meta, &k, &v) && v.mv_size == 8) {
        uint64_t id = 0;
        for (int i = 0; i < 8; i++) id |= (uint64_t)((const uint8_t *)v.mv_data)[i] << (8 * i);
        if (id > lg->next_id) lg->next_id = id;
    }
    if ((rc = mdb_cursor_open(txn, lg->db_streams, &cur))) {
        tr_err_set(err, TR_EIO, "metadata cursor: %s", mdb_strerror(rc));
        rc = TR_EIO;
        goto leave;
    }
    for (int op = MDB_FIRST; !(rc = mdb_cursor_get(cur, &k, &v, op)); op = MDB_NEXT) {
        sl_image_t img;
        if (image_decode(v.mv_data, v.mv_size, &img)) {
            rc = tr_err_set(err, TR_ECORRUPT,
                            "metadata record of stream \"%.*s\" is damaged; Fix: restore %s "
                            "from a backup or delete the stream's record",
                            (int)(k.mv_size > 128 ? 128 : k.mv_size), (const char *)k.mv_data,
                            path);
            goto leave;
        }
        rc = stream_load(lg, txn, k.mv_data, k.mv_size, &img, err);
        free((void *)img.shards);
        slog__tags_free((slog_tag_t *)img.tags, img.n_tags);
        if (rc) goto leave;
    }
    if (rc != MDB_NOTFOUND) {
        tr_err_set(err, TR_EIO, "reading metadata: %s", mdb_strerror(rc));
        rc = TR_EIO;
        goto leave;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        tr_err_set(err, TR_EIO, "metadata commit: %s", mdb_strerror(rc));
        rc = TR_EIO;
    }
leave:
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    free(path);
    return rc;
}

static void lg_free(slog_t *lg) {
    if (lg->commit_started) {
        pthread_mutex_lock(&lg->qmu);
        lg->stopping = 1;
        pthread_cond_signal(&lg->q_cond);
        pthread_mutex_unlock(&lg->qmu);
        pthread_join(lg->commit_thr, NULL);
    }
    if (lg->ret_started) {
        pthread_mutex_lock(&lg->rmu);
        lg->r_stop = 1;
        pthread_cond_signal(&lg->r_cond);
        pthread_mutex_unlock(&lg->rmu);
        pthread_join(lg->ret_thr, NULL);
    }
    for (size_t i = 0; i < lg->n_streams; i++) slog__stream_free(lg->streams[i], 0);
    free(lg->streams);
    for (size_t i = 0; i < lg->slots_cap; i++) {
        free(lg->slots[i].in);
        free(lg->slots[i].out);
    }
    free(lg->slots);
    if (lg->env) mdb_env_close(lg->env);
    if (lg->locks_ready) {
        pthread_mutex_destroy(&lg->ctl_mu);
        pthread_rwlock_destroy(&lg->put_lock);
        pthread_rwlock_destroy(&lg->lock);
        pthread_mutex_destroy(&lg->qmu);
        pthread_cond_destroy(&lg->q_cond);
        pthread_cond_destroy(&lg->q_done_cond);
        pthread_mutex_destroy(&lg->rmu);
        pthread_cond_destroy(&lg->r_cond);
    }
    free(lg->dir);
    free(lg);
}

int slog_open(const char *dir, const slog_opts_t *opts, slog_t **out, tr_err *err) {
    if (!dir || !*dir || !out) return tr_err_set(err, TR_EINVAL, "slog_open: dir and out needed");
    *out = NULL;
    slog_t *lg = tr_xcalloc(1, sizeof *lg);
    if (opts) lg->opts = *opts;
    if (!lg->opts.shard_limit) lg->opts.shard_limit = SLOG_DEF_SHARD_LIMIT;
    if (!lg->opts.on_demand_limit) lg->opts.on_demand_limit = SLOG_DEF_ON_DEMAND_LIMIT;
    if (!lg->opts.on_demand_shards) lg->opts.on_demand_shards = SLOG_DEF_ON_DEMAND_SHARDS;
    if (!lg->opts.max_pending_bytes) lg->opts.max_pending_bytes = SLOG_DEF_MAX_PENDING;
    if (lg->opts.retention_interval_ms <= 0) lg->opts.retention_interval_ms = SLOG_DEF_RETENTION_MS;
    lg->dir = tr_xstrdup(dir);

    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* writers (control plane) must not starve under a steady stream of puts and reads; no
     * thread ever takes either rwlock recursively, so writer preference cannot deadlock */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_mutex_init(&lg->ctl_mu, NULL);
    pthread_rwlock_init(&lg->put_lock, &ra);
    pthread_rwlock_init(&lg->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&lg->qmu, NULL);
    pthread_cond_init(&lg->q_cond, NULL);
    pthread_cond_init(&lg->q_done_cond, NULL);
    pthread_mutex_init(&lg->rmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&lg->r_cond, &ca);
    pthread_condattr_destroy(&ca);
    lg->locks_ready = 1;

    int rc;
    char *meta = slog__xasprintf("%s/meta", dir), *streams = slog__xasprintf("%s/streams", dir);
    int mk = tr_mkdir_p(meta) || tr_mkdir_p(streams);
    free(meta);
    free(streams);
    if (mk) {
        rc = tr_err_set(err, TR_EIO,
                        "cannot create data directory %s: %s; check the path and "
                        "its permissions",
                        dir, strerror(errno));
        goto fail;
    }
    if ((rc = meta_load(lg, err))) goto fail;
    remove_orphans(lg);

    if (pthread_create(&lg->commit_thr, NULL, commit_main, lg)) {
        rc = tr_err_set(err, TR_EINTERNAL, "cannot start the commit thread");
        goto fail;
    }
    lg->commit_started = 1;
    if (pthread_create(&lg->ret_thr, NULL, retention_main, lg)) {
        rc = tr_err_set(err, TR_EINTERNAL, "cannot start the retention thread");
        goto fail;
    }
    lg->ret_started = 1;
    tr_info(SUB, "opened %s: %zu stream(s), %" PRIu32 " open shard(s)", dir, lg->n_streams,
            lg->open_total);
    *out = lg;
    return 0;
fail:
    lg_free(lg);
    return rc;
}

void slog_close(slog_t *lg) {
    if (!lg) return;
    lg_free(lg);
}

/* ---- data plane ---------------------------------------------------------------------------- */

int slog_put(slog_t *lg, const char *name, slog_put_rec_t *recs, size_t n, slog_put_cb cb,
             void *arg, tr_err *err) {
    if (!lg || !name || !recs || n == 0)
        return tr_err_set(err, TR_EINVAL, "a put needs a stream name and at least one record");
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        slog_put_rec_t *r = &recs[i];
        if (!r->pk || r->pk_len < 1 || r->pk_len > SLOG_MAX_PK)
            return tr_err_set(err, TR_EINVAL,
                              "record %zu: the partition key must be 1-%d bytes "
                              "long",
                              i, SLOG_MAX_PK);
        if (r->data_len > SLOG_MAX_DATA || (r->data_len && !r->data))
            return tr_err_set(err, TR_EINVAL,
                              "record %zu: data is %" PRIu32 " bytes; the "
                              "maximum is %d",
                              i, r->data_len, SLOG_MAX_DATA);
        r->hash = r->has_explicit_hash ? r->explicit_hash : slog_hash_pk(r->pk, r->pk_len);
        r->rc = 0;
        r->shard = SLOG_NO_SHARD;
        r->seq = 0;
        bytes += (size_t)r->pk_len + r->data_len;
    }
    sl_job_t *j = tr_xmalloc(sizeof *j + n * sizeof j->route[0]);
    *j = (sl_job_t){.recs = recs, .n = n, .cb = cb, .arg = arg, .bytes = bytes};

    int rc = 0;
    pthread_rwlock_rdlock(&lg->put_lock);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    if (!st) {
        rc = slog__stream_missing(name, err);
        goto leave;
    }
    for (size_t i = 0; i < n; i++) {
        j->route[i] = route(st, recs[i].hash);
        recs[i].shard = j->route[i]->info.index;  /* also named when the put is refused */
    }
    pthread_mutex_lock(&lg->qmu);
    if (lg->stopping) {
        rc = tr_err_set(err, TR_ECLOSED, "the stream engine is shutting down");
    } else if (lg->pending_bytes > 0 && lg->pending_bytes + bytes > lg->opts.max_pending_bytes) {
        rc = tr_err_set(err, TR_ETHROTTLED,
                        "put of %zu bytes refused: %zu bytes are already waiting for disk (limit "
                        "%zu); retry with backoff",
                        bytes, lg->pending_bytes, lg->opts.max_pending_bytes);
    } else {
        lg->pending_bytes += bytes;
        j->ticket = ++lg->q_enqueued;
        if (lg->q_tail) lg->q_tail->next = j;
        else lg->q_head = j;
        lg->q_tail = j;
        pthread_cond_signal(&lg->q_cond);
        j = NULL;
    }
    pthread_mutex_unlock(&lg->qmu);
leave:
    pthread_rwlock_unlock(&lg->put_lock);
    free(j);
    return rc;
}

/* Find shard `shard` of stream `id` and take a reference (NULL + TR_ENOTFOUND otherwise). */
static sl_shard_t *shard_get(slog_t *lg, uint64_t id, uint32_t shard, int *closed,
                             uint64_t *seq_end, tr_err *err) {
    sl_shard_t *sh = NULL;
    pthread_rwlock_rdlock(&lg->lock);
    sl_stream_t *st = slog__stream_by_id(lg, id);
    if (st && shard < st->n_shards) {
        sh = st->shards[shard];
        sh_ref(sh);
        if (closed) *closed = sh->info.closed;
        if (seq_end) *seq_end = sh->info.seq_end;
    }
    pthread_rwlock_unlock(&lg->lock);
    if (!sh) {
        char sid[24];
        slog__shard_id(shard, sid);
        tr_err_set(err, TR_ENOTFOUND,
                   st ? "shard %s of stream id %" PRIu64 " not found; list the shards with "
                        "ListShards"
                      : "shard %s of stream id %" PRIu64 " not found: the stream was deleted; "
                        "get a new shard iterator",
                   sid, id);
    }
    return sh;
}

int slog_read(slog_t *lg, uint64_t id, uint32_t shard, uint64_t from, size_t max_records,
              size_t max_bytes, slog_read_t *out, uint64_t *closed_end, int64_t *last_arrival,
              tr_err *err) {
    if (!lg || !out) return tr_err_set(err, TR_EINVAL, "slog_read: out needed");
    int closed = 0;
    uint64_t seq_end = 0;
    sl_shard_t *sh = shard_get(lg, id, shard, &closed, &seq_end, err);
    if (!sh) return TR_ENOTFOUND;
    if (!sh->log) {
        int rc = tr_err_set(err, sh->fail_rc, "%s", sh->fail_msg);
        sh_unref(sh);
        return rc;
    }
    int rc = slog_shard_read(sh->log, from, max_records, max_bytes, out, err);
    if (closed_end) *closed_end = closed ? seq_end : UINT64_MAX;
    if (last_arrival) *last_arrival = slog_shard_last_arrival(sh->log);
    sh_unref(sh);
    return rc;
}

int slog_shard_status(slog_t *lg, const char *name, uint32_t shard, tr_err *err) {
    if (!lg || !name)
        return tr_err_set(err, TR_EINVAL, "slog_shard_status: engine and name needed");
    int rc = 0;
    pthread_rwlock_rdlock(&lg->lock);
    sl_stream_t *st = slog__stream_by_name(lg, name);
    sl_shard_t *sh = NULL;
    for (size_t i = 0; st && i < st->n_shards; i++)
        if (st->shards[i] && st->shards[i]->info.index == shard) sh = st->shards[i];
    if (!st) rc = slog__stream_missing(name, err);
    else if (!sh)
        rc = tr_err_set(err, TR_ENOTFOUND,
                        "shard shardId-%012" PRIu32 " not found in stream "
                        "\"%s\"",
                        shard, name);
    else if (!sh->log) rc = tr_err_set(err, sh->fail_rc, "%s", sh->fail_msg);
    pthread_rwlock_unlock(&lg->lock);
    return rc;
}

int slog_position(slog_t *lg, uint64_t id, uint32_t shard, int64_t ts_ms, uint64_t *begin,
                  uint64_t *end, uint64_t *at_time, tr_err *err) {
    if (!lg) return tr_err_set(err, TR_EINVAL, "no engine");
    sl_shard_t *sh = shard_get(lg, id, shard, NULL, NULL, err);
    if (!sh) return TR_ENOTFOUND;
    if (!sh->log) {
        int rc = tr_err_set(err, sh->fail_rc, "%s", sh->fail_msg);
        sh_unref(sh);
        return rc;
    }
    if (begin) *begin = slog_shard_begin(sh->log);
    if (end) *end = slog_shard_end(sh->log);
    if (at_time) *at_time = slog_shard_seek_time(sh->log, ts_ms);
    sh_unref(sh);
    return 0;
}

void slog_set_append_hook(slog_t *lg, slog_append_hook fn, void *arg) {
    if (!lg) return;
    pthread_mutex_lock(&lg->qmu);
    lg->hook = fn;
    lg->hook_arg = arg;
    pthread_mutex_unlock(&lg->qmu);
}

/* ---- metrics ------------------------------------------------------------------------------- */

void slog_metrics_prometheus(slog_t *lg, tr_buf *b) {
    if (!lg || !b) return;
    static const struct {
        const char *name, *help;
        size_t off;
    } fam[] = {
        {"tributary_stream_damaged_ranges_total",
         "Damaged byte ranges found in shard logs at "
         "start-up or by readers (their intact neighbours are served)",
         offsetof(slog_shard_health_t, damaged_ranges)},
        {"tributary_stream_damaged_bytes_total", "Bytes in those damaged ranges",
         offsetof(slog_shard_health_t, damaged_bytes)},
        {"tributary_stream_lost_records_total",
         "Records lost to damage or missing segment "
         "files (readers skip them; not counted: what missing newest files held, unknown)",
         offsetof(slog_shard_health_t, lost_records)},
        {"tributary_stream_missing_segments_total", "Gaps left by missing segment files",
         offsetof(slog_shard_health_t, missing)},
        {"tributary_stream_read_damage_total",
         "Damaged ranges found by readers since start-up "
         "(also counted in damaged_ranges)",
         offsetof(slog_shard_health_t, read_skips)},
    };
    enum { NFAM = sizeof fam / sizeof fam[0] };
    /* Prometheus wants each family's lines together: per-shard lines are gathered per family
     * (only for shards with something to show), the unlabeled line is the total. */
    uint64_t total[NFAM] = {0};
    tr_buf detail[NFAM + 1];
    for (size_t f = 0; f <= NFAM; f++) detail[f] = (tr_buf)TR_BUF_INIT;
    uint32_t failed = 0;
    pthread_rwlock_rdlock(&lg->lock);
    for (size_t i = 0; i < lg->n_streams; i++) {
        sl_stream_t *st = lg->streams[i];
        for (size_t k = 0; k < st->n_shards; k++) {
            sl_shard_t *sh = st->shards[k];
            char sid[24];
            slog__shard_id(sh->info.index, sid);
            if (!sh->log) {
                failed++;
                tr_buf_printf(&detail[NFAM],
                              "tributary_stream_failed_shards{stream=\"%s\","
                              "shard=\"%s\"} 1\n",
                              st->name, sid);
                continue;
            }
            slog_shard_health_t h;
            slog_shard_health(sh->log, &h);
            for (size_t f = 0; f < NFAM; f++) {
                uint64_t v = *(const uint64_t *)((const char *)&h + fam[f].off);
                total[f] += v;
                if (v)
                    tr_buf_printf(&detail[f], "%s{stream=\"%s\",shard=\"%s\"} %" PRIu64 "\n",
                                  fam[f].name, st->name, sid, v);
            }
        }
    }
    pthread_rwlock_unlock(&lg->lock);
    for (size_t f = 0; f < NFAM; f++) {
        tr_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", fam[f].name,
                      fam[f].help, fam[f].name, fam[f].name, total[f]);
        if (detail[f].len) tr_buf_append(b, detail[f].data, detail[f].len);
    }
    tr_buf_printf(b,
                  "# HELP tributary_stream_failed_shards Shards whose log could not be opened "
                  "(their requests fail; see the log)\n# TYPE tributary_stream_failed_shards "
                  "gauge\ntributary_stream_failed_shards %" PRIu32 "\n",
                  failed);
    if (detail[NFAM].len) tr_buf_append(b, detail[NFAM].data, detail[NFAM].len);
    for (size_t f = 0; f <= NFAM; f++) tr_buf_free(&detail[f]);
}
