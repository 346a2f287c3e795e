/*
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
 * ==== On-disk format ==========================================================================
 *
 * DIR/data.mdb holds four named LMDB databases.
 *
 * "meta"    "t/" + table name  ->  JSON text of the table's schema (tab_to_json below):
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
 *   ("query and scan: exact key order" below).
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
#include <inttypes.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/tlog.h"
#include "table/tbl_int.h"

#define SUB "tbl"
#define TB_DEF_MAPSIZE ((size_t)64 << 30)
#define TB_DEF_PENDING ((size_t)64 << 20)
#define TB_DEF_BATCH 4096
#define TB_BF_CHUNK 1000      /* items per GSI backfill transaction */
#define TB_BF_BYTES ((size_t)8 << 20)   /* and item bytes */
#define TB_BG_RETRY_MS 1000   /* background work waits this long after an LMDB failure */
#define TB_DEF_TTL_MS 1000
#define TB_TOKEN_SWEEP_MS 60000
#define TB_ENC_MAX 4200                 /* tbl_key_encode output of the largest legal key value
                                           (1 + 2 * 2048 + 2); longer is refused */
#define TB_FULLKEY_MAX (9 + 4 * (2 * TB_ENC_MAX + 2) + 64)   /* unfolded key scratch */
#define TB_RPOOL 64
#define TB_VAL_KEYTAIL 0x02             /* value flag: the unfolded key's tail follows the header */
#define TB_MAX_HASH_BYTES 2048
#define TB_MAX_RANGE_BYTES 1024
#define TB_MAX_INCLUDE 100
#define TB_TTL_PAST_S (5LL * 365 * 86400)
#define TB_WRITE_COST 1024
#define INVALID "One or more parameter values were invalid: "
#define NOT_FOUND "Requested resource not found"
#define KEY_SCHEMA "The provided key element does not match the schema"

/* Per-thread scratch for unfolded keys (full: key builders, leaf functions) and primary key
 * components (pk: callers that build a pk and then a key from it).  Big enough for the largest
 * legal keys (2048 + 1024 byte values, every byte escaped twice); a malloc per key was the top
 * cost of the write path.  Allocated on a thread's first use, freed when the thread exits, so
 * static TLS (carved from each thread's stack) stays one pointer. */
typedef struct tb_scratch {
    uint8_t full[TB_FULLKEY_MAX];
    uint8_t pk[TB_FULLKEY_MAX];
} tb_scratch_t;

static _Thread_local tb_scratch_t *tls_scr;
static pthread_key_t scr_key;
static pthread_once_t scr_once = PTHREAD_ONCE_INIT;

static void scr_free(void *p) { free(p); }
static void scr_key_make(void) { pthread_key_create(&scr_key, scr_free); }

static tb_scratch_t *scratch(void);

/* ---- types --------------------------------------------------------------------------------- */

typedef struct tb_index {
    char *name;
    uint8_t space;
    int local;
    char *hash, *range;
    int htype, rtype;           /* TBL_T_S/N/B; rtype -1 without range */
    int proj;
    char **incl;
    size_t n_incl;
    uint64_t rcu, wcu;
    int status;
} tb_index_t;

typedef struct tb_table {
    atomic_int refs;
    atomic_int retired;         /* replaced or dropped: re-resolve on the writer thread */
    uint32_t id;
    char *name;
    char table_id[37];
    char *hash, *range;
    int htype, rtype;
    tbl_attrdef_t *attrs;
    size_t n_attrs;
    int billing;
    uint64_t rcu, wcu;
    int dp;
    int64_t created_ms;
    char *ttl_attr;
    int ttl_enabled;
    tbl_tag_t *tags;
    size_t n_tags;
    tb_index_t *idx;
    size_t n_idx;
    int kf;                     /* key format (tbl.c "On-disk format"): 0 or 1 */
    /* writer thread only */
    uint64_t st_items[256], st_bytes[256];
    int dirty;
} tb_table_t;

typedef struct tb_key {
    size_t n;
    uint8_t b[TBL__KEYMAX];
} tb_key_t;

/* Per write, computed at submit. */
typedef struct tb_wx {
    tb_table_t *tab;            /* reference held */
    tb_key_t key;               /* stored key in space 0 */
    uint8_t *pk;                /* C(hash)[C(range)], malloc'd */
    size_t pk_n;
    char *text;                 /* PUT: compact JSON (malloc'd by jansson) */
    size_t text_n;
    uint32_t size;              /* PUT: tbl_item_size */
    int bad_key;                /* transaction: a key attribute has the wrong type (no key
                                   built); the writer cancels with the reason */
} tb_wx_t;

enum { J_WRITES, J_TXN, J_CTL };

typedef struct tb_ctl tb_ctl_t;

typedef struct tb_job {
    struct tb_job *next;
    int kind;
    tbl_write_t *w;
    size_t n;
    tbl_txn_t *t;
    tb_ctl_t *ctl;
    tbl_done_cb cb;
    void *arg;
    size_t bytes;
    int rc;                     /* J_WRITES: first failing rc */
    tb_wx_t x[];
} tb_job_t;

/* Apply state of one write on the writer thread. */
typedef struct tb_op {
    tb_table_t *tab;
    int exists;
    uint32_t old_size;
    int old_has_ttl;
    int64_t old_ttl;
    json_t *old;                /* parsed old item (owned) or NULL */
    json_t *neu;                /* new item (owned reference) or NULL */
    char *text;                 /* new text */
    size_t text_n;
    int text_owned;
    uint32_t new_size;
    int new_has_ttl;
    int64_t new_ttl;
    int act;                    /* A_NONE, A_PUT, A_DEL */
    int refuse_all;             /* w->rc refuses a whole transaction, not just this write (an
                                   empty index key value: DynamoDB's top-level error) */
} tb_op_t;

enum { A_NONE, A_PUT, A_DEL };

enum { C_CREATE, C_DELETE, C_UPDATE, C_TAGS_ADD, C_TAGS_REMOVE, C_TTL, C_TTL_DELETE,
       C_TOKENS };

typedef struct tb_ttl_cand {
    tb_table_t *tab;            /* reference held */
    tb_key_t key;               /* stored key of the item */
    int64_t expiry;
} tb_ttl_cand_t;

struct tb_ctl {
    int kind;
    const char *name;
    const tbl_table_info_t *def;
    const tbl_table_update_t *u;
    const tbl_tag_t *tags;
    size_t n_tags;
    char *const *keys;
    size_t n_keys;
    const char *ttl_attr;
    int ttl_enabled;
    tb_ttl_cand_t *cand;
    size_t n_cand;
    size_t deleted;
    tbl_table_info_t *out;
    tr_err err;
};

typedef struct tb_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} tb_wait_t;

struct tbl_handle {
    tbl_t *db;
    char *name;
};

struct tbl {
    char *dir;
    tbl_opts_t opts;
    MDB_env *env;
    MDB_dbi db_meta, db_items, db_stats, db_tokens;

    pthread_rwlock_t tlock;
    tb_table_t **tabs;          /* sorted by name; one reference each */
    size_t n_tabs, cap_tabs;
    uint32_t next_id;           /* writer thread */

    pthread_mutex_t qmu;
    pthread_cond_t q_cond;
    tb_job_t *q_head, *q_tail;
    size_t pending_bytes;
    int stopping;

    pthread_mutex_t rmu;
    MDB_txn *rpool[TB_RPOOL];
    int n_rpool;

    pthread_mutex_t smu;
    pthread_cond_t s_cond;
    int s_stop;

    /* writer thread only */
    tb_table_t **dirty;
    size_t n_dirty, cap_dirty;
    tr_err werr;                /* message of a hard (LMDB) failure */
    int64_t last_token_sweep;
    atomic_int bg_pending;      /* a dropped table's items or a CREATING GSI may be left:
                                   bg_step runs between batches (tbl_background_pending) */
    long long bg_retry_ms;      /* monotonic ms before which bg_step waits (after a failure) */

    pthread_t writer, ttl_thr;
    int writer_started, ttl_started;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static void oom(size_t n) {
    tr_error(SUB, "out of memory allocating %zu bytes", n);
    abort();
}

static void *xmalloc(size_t n) __attribute__((returns_nonnull, malloc));
static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

static tb_scratch_t *scratch(void) {
    if (!tls_scr) {
        pthread_once(&scr_once, scr_key_make);
        tls_scr = xmalloc(sizeof *tls_scr);
        pthread_setspecific(scr_key, tls_scr);
    }
    return tls_scr;
}

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom(n * sz);
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) oom(n);
    return p;
}

static char *xstrdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static int64_t now_ms(const tbl_t *db) {
    return db->opts.clock_ms ? db->opts.clock_ms(db->opts.clock_arg) : tr_now_ms();
}

static int mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

static void uuid_new(char out[37]) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        uint64_t t = (uint64_t)tr_mono_ns() ^ (uint64_t)getpid();
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)(i * 37);
    }
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    char hex[33];
    tr_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int len = 32;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Message for an LMDB failure, with the fix. */
static int mdb_fail(tr_err *err, int rc, const char *what) {
    if (rc == MDB_MAP_FULL)
        return tr_err_set(err, TR_EIO, "table storage is full while %s (LMDB map size "
                                        "reached); raise the tables map size", what);
    if (rc == MDB_TXN_FULL)
        return tr_err_set(err, TR_EIO, "too many changes in one transaction while %s; split the "
                                        "request", what);
    return tr_err_set(err, TR_EIO, "storage error while %s: %s", what, mdb_strerror(rc));
}

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
    sha256(full, n, k->b + TBL__FOLD_KEEP);
    k->n = TBL__FOLD_KEEP + 32;
}

static size_t prefix_put(uint8_t *p, uint32_t tid, uint8_t space) {
    put_be32(p, tid);
    p[4] = space;
    return 5;
}

/* pk = C(hash)[C(range)]: into out (room TB_FULLKEY_MAX / 2), returns length, 0 on bad value.
 * *hlen receives the length of C(hash). */
static size_t pk_build(const json_t *h, const json_t *r, uint8_t *out, size_t *hlen) {
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
static size_t pk_hlen(const uint8_t *pk, size_t n) {
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
    sha256(p, hl, d);
    p[0] = 'H';
    memcpy(p + 1, d, 32);
    memmove(p + 33, p + hl, n - hl);
    return n - hl + 33;
}

/* Unfolded key in a hash-partitioned space of table t (NULL: id 0, format 0),
 * tid|space|h32(C(h))|P(h)[C(r)]|suffix, built in scratch()->full (until the next key built on
 * this thread; suffix must not point there).  Returns its length, 0 when a value is not a key
 * value. */
static size_t key_full(const tb_table_t *t, uint8_t space, const json_t *h, const json_t *r,
                       const uint8_t *suffix, size_t suffix_n) {
    uint8_t *full = scratch()->full;
    size_t o = prefix_put(full, t ? t->id : 0, space) + 4, hl = 0;
    size_t n = pk_build(h, r, full + o, &hl);
    if (!n || o + n + suffix_n > TB_FULLKEY_MAX) return 0;
    put_be32(full + 5, tbl__hash32(full + o, hl));
    if (t && t->kf) n = part_digest(full + o, hl, n);
    o += n;
    if (suffix_n) {
        memcpy(full + o, suffix, suffix_n);
        if (t && t->kf) suffix_n = part_digest(full + o, pk_hlen(suffix, suffix_n), suffix_n);
    }
    return o + suffix_n;
}

/* Stored key in a hash-partitioned space: key_full, folded. */
static int key_make(const tb_table_t *t, uint8_t space, const json_t *h, const json_t *r,
                    const uint8_t *suffix, size_t suffix_n, tb_key_t *k) {
    size_t n = key_full(t, space, h, r, suffix, suffix_n);
    if (!n) return -1;
    key_fold(k, scratch()->full, n);
    return 0;
}

/* Unfolded key in space 0 of table t from an already built pk (h32 over its first component,
 * hlen bytes), in scratch()->full; returns its length. */
static size_t key_full_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen) {
    uint8_t *full = scratch()->full;
    prefix_put(full, t->id, TBL__SPACE_TABLE);
    put_be32(full + 5, tbl__hash32(pk, hlen));
    memcpy(full + 9, pk, pk_n);
    return 9 + (t->kf ? part_digest(full + 9, hlen, pk_n) : pk_n);
}

/* Stored key of space 0 of table t from an already built pk. */
static void key_from_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen,
                        tb_key_t *k) {
    key_fold(k, scratch()->full, key_full_pk(t, pk, pk_n, hlen));
}

static void ttl_key(uint32_t tid, int64_t expiry, const uint8_t *pk, size_t pk_n, tb_key_t *k) {
    uint8_t *full = scratch()->full;
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

static uint32_t seg_lo(uint32_t s, uint32_t total) {
    return (uint32_t)((((uint64_t)s << 32) + total - 1) / total);
}

uint32_t tbl_key_segment(const json_t *hash_av, uint32_t total) {
    if (!hash_av || total == 0) return 0;
    uint8_t *buf = scratch()->full;
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

static int val_ok(const MDB_val *v) {
    return v->mv_size >= TBL__VAL_HDR && ((const uint8_t *)v->mv_data)[0] == TBL__VAL_VERSION;
}

static uint32_t val_size(const MDB_val *v) { return get_le32((const uint8_t *)v->mv_data + 4); }

/* The unfolded key's tail a value keeps (flag bit 1, see "On-disk format"): *n bytes, or NULL. */
static const uint8_t *val_key_tail(const MDB_val *v, size_t *n) {
    const uint8_t *p = v->mv_data;
    if (!(p[1] & TB_VAL_KEYTAIL) || v->mv_size < TBL__VAL_HDR + 4) return NULL;
    *n = get_le32(p + TBL__VAL_HDR);
    return *n <= v->mv_size - TBL__VAL_HDR - 4 ? p + TBL__VAL_HDR + 4 : NULL;
}

/* The item's JSON text in a value (val_ok): *n bytes. */
static const char *val_text(const MDB_val *v, size_t *n) {
    size_t off = TBL__VAL_HDR, tn = 0;
    if (val_key_tail(v, &tn)) off += 4 + tn;
    else if (((const uint8_t *)v->mv_data)[1] & TB_VAL_KEYTAIL) off = v->mv_size;
    *n = v->mv_size - off;
    return (const char *)v->mv_data + off;
}

static json_t *val_parse(const MDB_val *v) {
    if (!val_ok(v)) return NULL;
    size_t n;
    const char *text = val_text(v, &n);
    return json_loadb(text, n, JSON_ALLOW_NUL, NULL);
}

/* Write an item value under stored key k: header, then, when k may be folded (it has LMDB's
 * full length), the unfolded key full[0..fn) past TBL__FOLD_KEEP, then the text.  LMDB rc. */
static int val_put(MDB_txn *txn, MDB_dbi dbi, const tb_key_t *k, const uint8_t *full, size_t fn,
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

static char *dump(const json_t *item, size_t *n) {
    tr_buf b = TR_BUF_INIT;
    tbl_json_dump(&b, item);
    return tr_buf_detach(&b, n);
}

/* Epoch seconds of a TTL attribute: a number in range.  0 when absent or not usable. */
static int ttl_of(const json_t *item, const char *attr, int64_t *out) {
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

/* ---- table snapshots ----------------------------------------------------------------------- */

static void index_clear(tb_index_t *ix) {
    free(ix->name);
    free(ix->hash);
    free(ix->range);
    for (size_t i = 0; i < ix->n_incl; i++) free(ix->incl[i]);
    free(ix->incl);
}

static void tab_free(tb_table_t *t) {
    if (!t) return;
    free(t->name);
    free(t->hash);
    free(t->range);
    for (size_t i = 0; i < t->n_attrs; i++) free(t->attrs[i].name);
    free(t->attrs);
    free(t->ttl_attr);
    for (size_t i = 0; i < t->n_tags; i++) {
        free(t->tags[i].key);
        free(t->tags[i].value);
    }
    free(t->tags);
    for (size_t i = 0; i < t->n_idx; i++) index_clear(&t->idx[i]);
    free(t->idx);
    free(t);
}

static void tab_ref(tb_table_t *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

static void tab_unref(tb_table_t *t) {
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) tab_free(t);
}

static const char *type_str(int t) { return t < 0 ? NULL : tbl_type_name(t); }

static int type_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "S")) return TBL_T_S;
    if (!strcmp(s, "N")) return TBL_T_N;
    if (!strcmp(s, "B")) return TBL_T_B;
    return -1;
}

static json_t *tab_to_json(const tb_table_t *t) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "table_id", json_string(t->table_id));
    json_object_set_new(o, "hash", json_string(t->hash));
    json_object_set_new(o, "htype", json_string(type_str(t->htype)));
    if (t->range) {
        json_object_set_new(o, "range", json_string(t->range));
        json_object_set_new(o, "rtype", json_string(type_str(t->rtype)));
    }
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_attrs; i++)
        json_array_append_new(a, json_pack("[ss]", t->attrs[i].name, type_str(t->attrs[i].type)));
    json_object_set_new(o, "attrs", a);
    json_object_set_new(o, "billing", json_integer(t->billing));
    json_object_set_new(o, "rcu", json_integer((json_int_t)t->rcu));
    json_object_set_new(o, "wcu", json_integer((json_int_t)t->wcu));
    json_object_set_new(o, "dp", json_integer(t->dp));
    json_object_set_new(o, "created_ms", json_integer(t->created_ms));
    if (t->ttl_attr) json_object_set_new(o, "ttl_attr", json_string(t->ttl_attr));
    json_object_set_new(o, "ttl_enabled", json_integer(t->ttl_enabled));
    json_t *tags = json_array();
    for (size_t i = 0; i < t->n_tags; i++)
        json_array_append_new(tags, json_pack("[ss]", t->tags[i].key, t->tags[i].value));
    json_object_set_new(o, "tags", tags);
    json_t *ixs = json_array();
    for (size_t i = 0; i < t->n_idx; i++) {
        const tb_index_t *ix = &t->idx[i];
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(ix->name));
        json_object_set_new(x, "space", json_integer(ix->space));
        json_object_set_new(x, "local", json_integer(ix->local));
        json_object_set_new(x, "hash", json_string(ix->hash));
        json_object_set_new(x, "htype", json_string(type_str(ix->htype)));
        if (ix->range) {
            json_object_set_new(x, "range", json_string(ix->range));
            json_object_set_new(x, "rtype", json_string(type_str(ix->rtype)));
        }
        json_object_set_new(x, "proj", json_integer(ix->proj));
        json_t *inc = json_array();
        for (size_t k = 0; k < ix->n_incl; k++)
            json_array_append_new(inc, json_string(ix->incl[k]));
        json_object_set_new(x, "include", inc);
        json_object_set_new(x, "rcu", json_integer((json_int_t)ix->rcu));
        json_object_set_new(x, "wcu", json_integer((json_int_t)ix->wcu));
        json_object_set_new(x, "status", json_integer(ix->status));
        json_array_append_new(ixs, x);
    }
    json_object_set_new(o, "indexes", ixs);
    if (t->kf) json_object_set_new(o, "kf", json_integer(t->kf));
    return o;
}

static char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? xstrdup(s) : NULL;
}

static int64_t jint(const json_t *o, const char *k) {
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static tb_table_t *tab_from_json(const json_t *o) {
    tb_table_t *t = xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    atomic_init(&t->retired, 0);
    t->id = (uint32_t)jint(o, "id");
    t->name = jstr(o, "name");
    const char *tid = json_string_value(json_object_get(o, "table_id"));
    snprintf(t->table_id, sizeof t->table_id, "%s", tid ? tid : "");
    t->hash = jstr(o, "hash");
    t->htype = type_parse(json_string_value(json_object_get(o, "htype")));
    t->range = jstr(o, "range");
    t->rtype = type_parse(json_string_value(json_object_get(o, "rtype")));
    json_t *a = json_object_get(o, "attrs");
    t->n_attrs = json_array_size(a);
    t->attrs = xcalloc(t->n_attrs, sizeof *t->attrs);
    for (size_t i = 0; i < t->n_attrs; i++) {
        json_t *p = json_array_get(a, i);
        t->attrs[i].name = xstrdup(json_string_value(json_array_get(p, 0)));
        t->attrs[i].type = type_parse(json_string_value(json_array_get(p, 1)));
    }
    t->billing = (int)jint(o, "billing");
    t->rcu = (uint64_t)jint(o, "rcu");
    t->wcu = (uint64_t)jint(o, "wcu");
    t->dp = (int)jint(o, "dp");
    t->created_ms = jint(o, "created_ms");
    t->ttl_attr = jstr(o, "ttl_attr");
    t->ttl_enabled = (int)jint(o, "ttl_enabled");
    json_t *tags = json_object_get(o, "tags");
    t->n_tags = json_array_size(tags);
    t->tags = xcalloc(t->n_tags, sizeof *t->tags);
    for (size_t i = 0; i < t->n_tags; i++) {
        json_t *p = json_array_get(tags, i);
        t->tags[i].key = xstrdup(json_string_value(json_array_get(p, 0)));
        t->tags[i].value = xstrdup(json_string_value(json_array_get(p, 1)));
    }
    json_t *ixs = json_object_get(o, "indexes");
    t->n_idx = json_array_size(ixs);
    t->idx = xcalloc(t->n_idx, sizeof *t->idx);
    for (size_t i = 0; i < t->n_idx; i++) {
        json_t *x = json_array_get(ixs, i);
        tb_index_t *ix = &t->idx[i];
        ix->name = jstr(x, "name");
        ix->space = (uint8_t)jint(x, "space");
        ix->local = (int)jint(x, "local");
        ix->hash = jstr(x, "hash");
        ix->htype = type_parse(json_string_value(json_object_get(x, "htype")));
        ix->range = jstr(x, "range");
        ix->rtype = type_parse(json_string_value(json_object_get(x, "rtype")));
        ix->proj = (int)jint(x, "proj");
        json_t *inc = json_object_get(x, "include");
        ix->n_incl = json_array_size(inc);
        ix->incl = xcalloc(ix->n_incl, sizeof *ix->incl);
        for (size_t k = 0; k < ix->n_incl; k++)
            ix->incl[k] = xstrdup(json_string_value(json_array_get(inc, k)));
        ix->rcu = (uint64_t)jint(x, "rcu");
        ix->wcu = (uint64_t)jint(x, "wcu");
        ix->status = (int)jint(x, "status");
    }
    t->kf = (int)jint(o, "kf");
    return t;
}

/* Deep copy for a control change; writer-only counters come along. */
static tb_table_t *tab_clone(const tb_table_t *t) {
    json_t *j = tab_to_json(t);
    tb_table_t *c = tab_from_json(j);
    json_decref(j);
    memcpy(c->st_items, t->st_items, sizeof c->st_items);
    memcpy(c->st_bytes, t->st_bytes, sizeof c->st_bytes);
    return c;
}

static const tb_index_t *tab_index(const tb_table_t *t, const char *name) {
    for (size_t i = 0; i < t->n_idx; i++)
        if (!strcmp(t->idx[i].name, name)) return &t->idx[i];
    return NULL;
}

static int attr_type(const tb_table_t *t, const char *name) {
    for (size_t i = 0; i < t->n_attrs; i++)
        if (!strcmp(t->attrs[i].name, name)) return t->attrs[i].type;
    return -1;
}

/* ---- the name map -------------------------------------------------------------------------- */

static size_t map_lower(tbl_t *db, const char *name) {
    size_t lo = 0, hi = db->n_tabs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(db->tabs[mid]->name, name) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Caller holds tlock (or is the writer thread). */
static tb_table_t *map_find(tbl_t *db, const char *name) {
    size_t i = map_lower(db, name);
    return i < db->n_tabs && !strcmp(db->tabs[i]->name, name) ? db->tabs[i] : NULL;
}

/* Writer thread: insert or replace (the old snapshot is retired and unreferenced). */
static void map_set(tbl_t *db, tb_table_t *t) {
    pthread_rwlock_wrlock(&db->tlock);
    size_t i = map_lower(db, t->name);
    tb_table_t *old = NULL;
    if (i < db->n_tabs && !strcmp(db->tabs[i]->name, t->name)) {
        old = db->tabs[i];
        db->tabs[i] = t;
    } else {
        if (db->n_tabs == db->cap_tabs) {
            db->cap_tabs = db->cap_tabs ? 2 * db->cap_tabs : 16;
            db->tabs = xrealloc(db->tabs, db->cap_tabs * sizeof *db->tabs);
        }
        memmove(db->tabs + i + 1, db->tabs + i, (db->n_tabs - i) * sizeof *db->tabs);
        db->tabs[i] = t;
        db->n_tabs++;
    }
    pthread_rwlock_unlock(&db->tlock);
    if (old) {
        atomic_store(&old->retired, 1);
        tab_unref(old);
    }
}

static void map_remove(tbl_t *db, const char *name) {
    pthread_rwlock_wrlock(&db->tlock);
    size_t i = map_lower(db, name);
    tb_table_t *old = NULL;
    if (i < db->n_tabs && !strcmp(db->tabs[i]->name, name)) {
        old = db->tabs[i];
        memmove(db->tabs + i, db->tabs + i + 1, (db->n_tabs - i - 1) * sizeof *db->tabs);
        db->n_tabs--;
    }
    pthread_rwlock_unlock(&db->tlock);
    if (old) {
        atomic_store(&old->retired, 1);
        tab_unref(old);
    }
}

/* Any thread: a referenced snapshot, or NULL + TR_ENOTFOUND. */
static tb_table_t *tab_get(tbl_t *db, const char *name, tr_err *err) {
    tb_table_t *t = NULL;
    if (name) {
        pthread_rwlock_rdlock(&db->tlock);
        t = map_find(db, name);
        if (t) tab_ref(t);
        pthread_rwlock_unlock(&db->tlock);
    }
    if (!t) tr_err_set(err, TR_ENOTFOUND, NOT_FOUND);
    return t;
}

/* Writer thread: the current snapshot of the table t was taken from, or NULL if it is gone. */
static tb_table_t *tab_current(tbl_t *db, tb_table_t *t) {
    if (!atomic_load_explicit(&t->retired, memory_order_acquire)) return t;
    tb_table_t *c = map_find(db, t->name);
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

static int stats_write_all(tbl_t *db, MDB_txn *txn, const tb_table_t *t) {
    int rc = stats_write(db, txn, t, TBL__SPACE_TABLE);
    for (size_t i = 0; !rc && i < t->n_idx; i++) rc = stats_write(db, txn, t, t->idx[i].space);
    return rc;
}

static void stats_read(tbl_t *db, MDB_txn *txn, uint32_t tid, uint8_t space, uint64_t *items,
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
    stats_read(db, txn, t->id, 0, &t->st_items[0], &t->st_bytes[0]);
    for (size_t i = 0; i < t->n_idx; i++) {
        uint8_t s = t->idx[i].space;
        stats_read(db, txn, t->id, s, &t->st_items[s], &t->st_bytes[s]);
    }
}

static void mark_dirty(tbl_t *db, tb_table_t *t) {
    if (t->dirty) return;
    t->dirty = 1;
    if (db->n_dirty == db->cap_dirty) {
        db->cap_dirty = db->cap_dirty ? 2 * db->cap_dirty : 16;
        db->dirty = xrealloc(db->dirty, db->cap_dirty * sizeof *db->dirty);
    }
    tab_ref(t);
    db->dirty[db->n_dirty++] = t;
}

static int dirty_flush(tbl_t *db, MDB_txn *txn) {
    int rc = 0;
    for (size_t i = 0; !rc && i < db->n_dirty; i++) rc = stats_write_all(db, txn, db->dirty[i]);
    return rc;
}

/* After an abort: counters back to what LMDB holds. */
static void dirty_reload(tbl_t *db) {
    if (!db->n_dirty) return;
    MDB_txn *txn;
    if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) return;
    for (size_t i = 0; i < db->n_dirty; i++) stats_load(db, txn, db->dirty[i]);
    mdb_txn_abort(txn);
}

static void dirty_clear(tbl_t *db) {
    for (size_t i = 0; i < db->n_dirty; i++) {
        db->dirty[i]->dirty = 0;
        tab_unref(db->dirty[i]);
    }
    db->n_dirty = 0;
}

/* ---- read transactions --------------------------------------------------------------------- */

static int rtxn_get(tbl_t *db, MDB_txn **out, tr_err *err) {
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
    if (rc) return mdb_fail(err, rc, "starting a read");
    *out = t;
    return 0;
}

static void rtxn_put(tbl_t *db, MDB_txn *t) {
    mdb_txn_reset(t);
    pthread_mutex_lock(&db->rmu);
    if (db->n_rpool < TB_RPOOL) {
        db->rpool[db->n_rpool++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&db->rmu);
    if (t) mdb_txn_abort(t);
}

/* ---- schema checks ------------------------------------------------------------------------- */

static json_t *av_inner(const json_t *av) {
    void *it = json_object_iter((json_t *)av);
    return it ? json_object_iter_value(it) : NULL;
}

/* Bytes of a key value for the size limits: S its UTF-8 bytes, B its decoded bytes. */
static size_t key_value_bytes(const json_t *av, int type) {
    json_t *v = av_inner(av);
    size_t n = json_string_length(v);
    if (type == TBL_T_B) {
        const char *s = json_string_value(v);
        size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
        return n / 4 * 3 - pad;
    }
    return type == TBL_T_S ? n : 0;
}

static int key_value_empty(const json_t *av, int type) {
    return (type == TBL_T_S || type == TBL_T_B) && json_string_length(av_inner(av)) == 0;
}

/* Value checks shared by items and keys: emptiness and the size limits. */
static int key_value_check(const char *name, int type, const json_t *av, int is_hash,
                           tr_err *err) {
    if (key_value_empty(av, type))
        return tr_err_set(err, TR_EVALIDATION,
                          "One or more parameter values are not valid. The AttributeValue for a "
                          "key attribute cannot contain an empty %s value. Key: %s",
                          type == TBL_T_S ? "string" : "binary", name);
    size_t n = key_value_bytes(av, type);
    if (is_hash && n > TB_MAX_HASH_BYTES)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Size of hashkey has exceeded the maximum "
                                                       "size limit of 2048 bytes");
    if (!is_hash && n > TB_MAX_RANGE_BYTES)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Aggregated size of all range keys has "
                                                       "exceeded the size limit of 1024 bytes");
    return 0;
}

/* The key attributes of a whole item (PutItem). */
static int item_key_check(const tb_table_t *t, const json_t *item, const json_t **h,
                          const json_t **r, tr_err *err) {
    if (!json_is_object(item))
        return tr_err_set(err, TR_EVALIDATION, INVALID "the item must be a map of attributes");
    const char *names[2] = {t->hash, t->range};
    int types[2] = {t->htype, t->rtype};
    const json_t **outs[2] = {h, r};
    *r = NULL;
    for (int i = 0; i < (t->range ? 2 : 1); i++) {
        const json_t *av = json_object_get(item, names[i]);
        if (!av) return tr_err_set(err, TR_EVALIDATION, INVALID "Missing the key %s in the item",
                                   names[i]);
        int at = tbl_av_type(av);
        if (at != types[i])
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Type mismatch for key %s expected: %s actual: %s",
                              names[i], tbl_type_name(types[i]), tbl_type_name(at));
        int rc = key_value_check(names[i], types[i], av, i == 0, err);
        if (rc) return rc;
        *outs[i] = av;
    }
    return 0;
}

/* A Key parameter: exactly the key attributes. */
static int key_check(const tb_table_t *t, const json_t *key, const json_t **h, const json_t **r,
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
        if (!rv || tbl_av_type(rv) != t->rtype)
            return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
        rc = key_value_check(t->range, t->rtype, rv, 0, err);
        if (rc) return rc;
        *r = rv;
    }
    *h = hv;
    return 0;
}

/* What index_check looks at.  DynamoDB refuses an empty index key value before anything runs
 * (even in a transaction: a top-level ValidationException), a wrong type or size while applying
 * (in a transaction: a cancellation reason). */
enum { IX_EMPTY = 1, IX_TYPE = 2, IX_ALL = 3, IX_UPDATE = 4 /* the value came from an update
                                                                   expression (its message) */ };

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
        if ((what & IX_EMPTY) && (what & IX_UPDATE) && key_value_empty(av, at))
            return tr_err_set(err, TR_EVALIDATION,
                              "One or more parameter values are not valid. The update "
                              "expression attempted to update a secondary index key to a "
                              "value that is not supported. The AttributeValue for a key "
                              "attribute cannot contain an empty %s value.",
                              at == TBL_T_S ? "string" : "binary");
        if ((what & IX_EMPTY) && key_value_empty(av, at))
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
static int index_check(const tb_table_t *t, const json_t *item, int what, tr_err *err) {
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
static int index_key(const tb_index_t *ix, const json_t *item, const uint8_t *pk, size_t pk_n,
                     const tb_table_t *t, tb_key_t *k) {
    const json_t *h = json_object_get(item, ix->hash);
    const json_t *r = ix->range ? json_object_get(item, ix->range) : NULL;
    if (!h || (ix->range && !r)) return 0;
    if (tbl_av_type(h) != ix->htype || key_value_empty(h, ix->htype)) return -1;
    if (r && (tbl_av_type(r) != ix->rtype || key_value_empty(r, ix->rtype))) return -1;
    return key_make(t, ix->space, h, r, pk, pk_n, k) ? -1 : 1;
}

/* Unfolded key of item's entry in ix (index_key returned 1) in scratch()->full; its length. */
static size_t index_full(const tb_index_t *ix, const json_t *item, const uint8_t *pk,
                         size_t pk_n, const tb_table_t *t) {
    return key_full(t, ix->space, json_object_get(item, ix->hash),
                    ix->range ? json_object_get(item, ix->range) : NULL, pk, pk_n);
}

/* What an index entry stores: the projected item (new reference). */
static json_t *index_project(const tb_table_t *t, const tb_index_t *ix, json_t *item) {
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

/* ---- applying writes (writer thread) ------------------------------------------------------- */

static void op_clear(tb_op_t *op) {
    json_decref(op->old);
    json_decref(op->neu);
    if (op->text_owned) free(op->text);
    memset(op, 0, sizeof *op);
}

/* Read the old item, evaluate the condition, compute the new item.  Returns 0 (w->rc tells
 * whether the write goes on) or a hard LMDB failure (db->werr). */
static int op_prepare(tbl_t *db, MDB_txn *txn, tbl_write_t *w, tb_wx_t *x, tb_op_t *op) {
    memset(op, 0, sizeof *op);
    tb_table_t *t = op->tab = tab_current(db, x->tab);
    if (!t) {
        w->rc = tr_err_set(&w->err, TR_ENOTFOUND, NOT_FOUND);
        return 0;
    }
    if (x->bad_key) {   /* the submit-time check's message, as the cancellation reason */
        const json_t *h, *r;
        w->rc = w->op == TBL_OP_PUT ? item_key_check(t, w->item, &h, &r, &w->err)
                                    : key_check(t, w->key, &h, &r, &w->err);
        if (!w->rc) w->rc = tr_err_set(&w->err, TR_EVALIDATION, KEY_SCHEMA);
        return 0;
    }
    MDB_val k = {x->key.n, x->key.b}, v;
    int rc = mdb_get(txn, db->db_items, &k, &v);
    if (rc && rc != MDB_NOTFOUND) return mdb_fail(&db->werr, rc, "reading an item");
    if (!rc) {
        if (!val_ok(&v)) {
            w->rc = tr_err_set(&w->err, TR_ECORRUPT, "stored item of table %s is corrupt",
                               t->name);
            return 0;
        }
        const uint8_t *p = v.mv_data;
        op->exists = 1;
        op->old_size = val_size(&v);
        op->old_has_ttl = p[1] & 1;
        op->old_ttl = (int64_t)get_le64(p + 8);
        int rv = w->return_values;
        if (w->cond || rv == TBL_RV_ALL_OLD || rv == TBL_RV_UPDATED_OLD ||
            w->op == TBL_OP_UPDATE || t->n_idx) {
            op->old = val_parse(&v);
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
            rc = tbl_expr_update(w->update, op->old, w->key, &neu, &w->err);
            if (rc) {
                w->rc = rc;
                return 0;
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
        op->text = dump(neu, &op->text_n);
        op->text_owned = 1;
        op->new_size = (uint32_t)sz;
        op->act = A_PUT;
        break;
    }
    case TBL_OP_DELETE:
        op->act = op->exists ? A_DEL : A_NONE;
        break;
    default:
        op->act = A_NONE;
        break;
    }
    if (op->act == A_PUT && t->n_idx) {
        rc = index_check(t, op->neu, IX_TYPE, &w->err);
        if (!rc) {
            rc = index_check(t, op->neu, IX_EMPTY | (w->op == TBL_OP_UPDATE ? IX_UPDATE : 0),
                             &w->err);
            op->refuse_all = rc != 0;
        }
        if (rc) {
            w->rc = rc;
            return 0;
        }
    }
    if (op->act == A_PUT && t->ttl_enabled)
        op->new_has_ttl = ttl_of(op->neu, t->ttl_attr, &op->new_ttl);
    return 0;
}

static int index_apply(tbl_t *db, MDB_txn *txn, tb_table_t *t, const tb_index_t *ix,
                       const tb_wx_t *x, const tb_op_t *op) {
    tb_key_t ko, kn;
    int has_o = op->old && index_key(ix, op->old, x->pk, x->pk_n, t, &ko) == 1;
    int has_n = op->act == A_PUT && index_key(ix, op->neu, x->pk, x->pk_n, t, &kn) == 1;
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
            pj = index_project(t, ix, op->neu);
            owned = dump(pj, &tn);
            text = owned;
            sz = (uint32_t)tbl_item_size(pj);
            json_decref(pj);
        }
        size_t fn = kn.n == TBL__FOLD_KEEP + 32 ? index_full(ix, op->neu, x->pk, x->pk_n, t) : 0;
        rc = val_put(txn, db->db_items, &kn, scratch()->full, fn, sz, 0, 0, text, tn, 0);
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
static int op_mutate(tbl_t *db, MDB_txn *txn, const tb_wx_t *x, tb_op_t *op) {
    tb_table_t *t = op->tab;
    MDB_val k = {x->key.n, (void *)x->key.b};
    int rc;
    if (op->act == A_PUT) {
        size_t fn = x->key.n == TBL__FOLD_KEEP + 32
                        ? key_full_pk(t, x->pk, x->pk_n, pk_hlen(x->pk, x->pk_n)) : 0;
        rc = val_put(txn, db->db_items, &x->key, scratch()->full, fn, op->new_size,
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
    mark_dirty(db, t);
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
            ttl_key(t->id, op->old_ttl, x->pk, x->pk_n, &tk);
            MDB_val kk = {tk.n, tk.b};
            rc = mdb_del(txn, db->db_items, &kk, NULL);
            if (rc && rc != MDB_NOTFOUND) return rc;
        }
        if (new_t && !same) {
            ttl_key(t->id, op->new_ttl, x->pk, x->pk_n, &tk);
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
    case TBL_RV_ALL_OLD:
        w->attrs = op->old ? json_incref(op->old) : NULL;
        break;
    case TBL_RV_ALL_NEW:
        w->attrs = op->act == A_PUT ? json_incref(op->neu) : NULL;
        break;
    case TBL_RV_UPDATED_OLD:
    case TBL_RV_UPDATED_NEW:
        if (w->op != TBL_OP_UPDATE || !w->update) break;
        w->attrs = tbl_expr_update_project(
            w->update, w->return_values == TBL_RV_UPDATED_OLD ? op->old : op->neu);
        break;
    default:
        break;
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
        tb_table_t *t = tab_current(db, j->x[i].tab);
        if (!t) rc = tr_err_set(&e, TR_ENOTFOUND, NOT_FOUND);
        else if (w->op == TBL_OP_PUT && t->n_idx) rc = index_check(t, w->item, IX_ALL, &e);
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
            rc = op_mutate(db, txn, &j->x[i], &op);
            if (rc) rc = mdb_fail(&db->werr, rc, "writing an item");
            else op_outputs(w, &op);
        }
        op_clear(&op);
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
    int64_t now = now_ms(db);
    int rc = 0;
    if (t->token) {
        MDB_val k = {strlen(t->token), (void *)t->token}, v;
        rc = mdb_get(txn, db->db_tokens, &k, &v);
        if (rc && rc != MDB_NOTFOUND) return mdb_fail(&db->werr, rc, "reading a token");
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
    tb_op_t *ops = xcalloc(j->n, sizeof *ops);
    int failed = 0, refused = -1;
    size_t i;
    for (i = 0; i < j->n && !rc; i++) {
        rc = op_prepare(db, txn, &j->w[i], &j->x[i], &ops[i]);
        if (!rc && j->w[i].rc) failed = 1;
        if (!rc && ops[i].refuse_all && refused < 0) refused = (int)i;
    }
    if (!rc && refused >= 0) {   /* the whole request is refused, as a validation error */
        t->rc = tr_err_set(&t->err, j->w[refused].rc, "%s", j->w[refused].err.msg);
    } else if (!rc && failed) {
        tr_buf b = TR_BUF_INIT;
        for (size_t k = 0; k < j->n; k++)
            tr_buf_printf(&b, "%s%s", k ? ", " : "", reason_name(j->w[k].rc));
        t->rc = tr_err_set(&t->err, TR_ETXN_CANCELED,
                           "Transaction cancelled, please refer cancellation reasons for specific "
                           "reasons [%s]", b.data);
        tr_buf_free(&b);
    }
    for (size_t k = 0; k < j->n && !rc && !failed; k++) {
        rc = op_mutate(db, txn, &j->x[k], &ops[k]);
        if (rc) rc = mdb_fail(&db->werr, rc, "writing a transaction");
        else {
            j->w[k].old_size = ops[k].exists ? ops[k].old_size : 0;
            j->w[k].new_size = ops[k].act == A_PUT ? ops[k].new_size : 0;
        }
    }
    for (size_t k = 0; k < j->n; k++) op_clear(&ops[k]);
    free(ops);
    if (rc) return rc;
    if (!failed && t->token) {
        uint8_t val[40];
        put_le64(val, (uint64_t)(now + TBL_TOKEN_TTL_MS));
        memcpy(val + 8, t->digest, 32);
        MDB_val k = {strlen(t->token), (void *)t->token}, v = {40, val};
        rc = mdb_put(txn, db->db_tokens, &k, &v, 0);
        if (rc) return mdb_fail(&db->werr, rc, "storing a token");
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
        tab_unref(j->x[i].tab);
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
        mdb_fail(&db->werr, rc, "starting a write");
        for (tb_job_t *j = first; j; j = j->next) job_fail(j, &db->werr);
        goto done;
    }
    for (tb_job_t *j = first; j && !rc; j = j->next) rc = job_apply(db, txn, j);
    if (!rc && (rc = dirty_flush(db, txn))) mdb_fail(&db->werr, rc, "writing table counters");
    if (!rc) {
        rc = mdb_txn_commit(txn);
        if (rc) {
            mdb_fail(&db->werr, rc, "committing writes");
            tr_error(SUB, "%s", db->werr.msg);
            dirty_reload(db);
            for (tb_job_t *j = first; j; j = j->next) job_fail(j, &db->werr);
        }
        goto done;
    }
    /* A hard failure mid-batch: start over, one job per transaction. */
    mdb_txn_abort(txn);
    dirty_reload(db);
    dirty_clear(db);
    for (tb_job_t *j = first; j; j = j->next) {
        job_reset(j);
        rc = mdb_txn_begin(db->env, NULL, 0, &txn);
        if (rc) {
            mdb_fail(&db->werr, rc, "starting a write");
        } else {
            rc = job_apply(db, txn, j);
            if (!rc && (rc = dirty_flush(db, txn))) mdb_fail(&db->werr, rc, "writing counters");
            if (!rc) {
                rc = mdb_txn_commit(txn);
                if (rc) mdb_fail(&db->werr, rc, "committing writes");
            } else {
                mdb_txn_abort(txn);
            }
        }
        if (rc) {
            tr_error(SUB, "%s", db->werr.msg);
            dirty_reload(db);
            job_fail(j, &db->werr);
        }
        dirty_clear(db);
    }
done:
    dirty_clear(db);
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

static int ctl_exec(tbl_t *db, tb_ctl_t *c);
static void bg_step(tbl_t *db);

static void *writer_main(void *arg) {
    tbl_t *db = arg;
    uint32_t max = db->opts.max_batch;
    pthread_setname_np(pthread_self(), "tbl-writer");
    for (;;) {
        if (atomic_load(&db->bg_pending)) bg_step(db);   /* a chunk per round: writes flow */
        pthread_mutex_lock(&db->qmu);
        while (!db->q_head && !db->stopping) {
            long long wait_ms = db->bg_retry_ms - tr_mono_ns() / 1000000;
            if (atomic_load(&db->bg_pending) && wait_ms <= 0) {
                pthread_mutex_unlock(&db->qmu);
                bg_step(db);
                pthread_mutex_lock(&db->qmu);
                continue;
            }
            if (atomic_load(&db->bg_pending)) {   /* backing off: wake for work or the retry */
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
                int rc = ctl_exec(db, j->ctl);
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

static int enqueue(tbl_t *db, tb_job_t *j, tr_err *err) {
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
    x->tab = tab_get(db, w->table, err);
    if (!x->tab) return TR_ENOTFOUND;
    if (txn && key_type_mismatch(x->tab, w->op == TBL_OP_PUT ? w->item : w->key)) {
        x->bad_key = 1;   /* DynamoDB cancels the transaction for it: op_prepare says why */
        return 0;
    }
    const json_t *h, *r;
    int rc = w->op == TBL_OP_PUT ? item_key_check(x->tab, w->item, &h, &r, err)
                                 : key_check(x->tab, w->key, &h, &r, err);
    if (rc) return rc;
    uint8_t *pk = scratch()->pk;
    size_t hl = 0, n = pk_build(h, r, pk, &hl);
    if (!n) return tr_err_set(err, TR_EVALIDATION, KEY_SCHEMA);
    x->pk = memcpy(xmalloc(n), pk, n);
    x->pk_n = n;
    key_from_pk(x->tab, x->pk, n, hl, &x->key);
    if (w->op == TBL_OP_PUT) {
        size_t sz = tbl_item_size(w->item);
        if (sz > TBL_MAX_ITEM_BYTES)
            return tr_err_set(err, TR_EVALIDATION,
                              "Item size has exceeded the maximum allowed size");
        if (x->tab->n_idx && (rc = index_check(x->tab, w->item, txn ? IX_EMPTY : IX_ALL, err)))
            return rc;
        x->size = (uint32_t)sz;
        x->text = dump(w->item, &x->text_n);
    }
    return 0;
}

static tb_job_t *job_new(size_t n) {
    tb_job_t *j = xcalloc(1, sizeof *j + n * sizeof(tb_wx_t));
    j->n = n;
    return j;
}

int tbl_write_submit(tbl_t *db, tbl_write_t *w, size_t n, tbl_done_cb cb, void *arg,
                     tr_err *err) {
    if (!db || !w || n == 0) return tr_err_set(err, TR_EINVAL, "a write needs at least one item");
    tb_job_t *j = job_new(n);
    j->kind = J_WRITES;
    j->w = w;
    j->cb = cb;
    j->arg = arg;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = wx_fill(db, &w[i], &j->x[i], 0, err);
        j->bytes += w[i].req_bytes ? w[i].req_bytes : TB_WRITE_COST;
    }
    if (!rc) rc = enqueue(db, j, err);
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
    tb_job_t *j = job_new(t->n);
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
                rc = tr_err_set(err, TR_EVALIDATION, "Transaction request cannot include "
                                                     "multiple operations on one item");
    }
    if (!rc) rc = enqueue(db, j, err);
    if (rc) job_free(j);
    return rc;
}

void tbl_request_digest(const json_t *v, uint8_t out[32]) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    sha256(s ? s : "", s ? strlen(s) : 0, out);
    free(s);
}

/* ---- control plane ------------------------------------------------------------------------- */

static int name_check(const char *what, const char *name, tr_err *err) {
    size_t n = name ? strlen(name) : 0;
    if (n < 3 || n > TBL_MAX_NAME)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                          "constraint: Member must have length between 3 and 255",
                          name ? name : "null", what);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return tr_err_set(err, TR_EVALIDATION,
                              "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                              "constraint: Member must satisfy regular expression pattern: "
                              "[a-zA-Z0-9_.-]+",
                              name, what);
    }
    return 0;
}

static int index_def_check(const tbl_index_info_t *ix, tr_err *err) {
    int rc = name_check("indexName", ix->name, err);
    if (rc) return rc;
    if (!ix->hash)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Index %s has no hash key", ix->name);
    if (ix->range && !strcmp(ix->hash, ix->range))
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name");
    if (ix->projection < TBL_PROJ_ALL || ix->projection > TBL_PROJ_INCLUDE)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Unknown ProjectionType for index %s",
                          ix->name);
    if (ix->projection == TBL_PROJ_INCLUDE && !ix->n_include)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "ProjectionType is INCLUDE, but NonKeyAttributes is not "
                                  "specified");
    if (ix->projection != TBL_PROJ_INCLUDE && ix->n_include)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "ProjectionType is %s, but NonKeyAttributes is specified",
                          ix->projection == TBL_PROJ_ALL ? "ALL" : "KEYS_ONLY");
    return 0;
}

static int def_type(const tbl_attrdef_t *a, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(a[i].name, name)) return a[i].type;
    return -1;
}

static int def_check(const tbl_table_info_t *d, tr_err *err) {
    int rc = name_check("tableName", d->name, err);
    if (rc) return rc;
    if (!d->hash)
        return tr_err_set(err, TR_EVALIDATION, "No Hash Key specified in schema.  All Dynamo DB "
                                               "tables must have exactly one hash key");
    if (d->range && !strcmp(d->hash, d->range))
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Both the Hash Key and the Range Key element in the KeySchema "
                                  "have the same name");
    for (size_t i = 0; i < d->n_attrs; i++) {
        int t = d->attrs[i].type;
        if (!d->attrs[i].name || (t != TBL_T_S && t != TBL_T_N && t != TBL_T_B))
            return tr_err_set(err, TR_EVALIDATION, INVALID "attribute definition %zu: a name and "
                                                           "type S, N or B are required", i);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(d->attrs[k].name, d->attrs[i].name))
                return tr_err_set(err, TR_EVALIDATION, "Cannot have two attributes with the same "
                                                       "name: %s", d->attrs[i].name);
    }
    size_t gsi = 0, lsi = 0, incl = 0;
    const char *used[2 + 2 * (TBL_MAX_GSI + TBL_MAX_LSI)];
    size_t n_used = 0;
    used[n_used++] = d->hash;
    if (d->range) used[n_used++] = d->range;
    for (size_t i = 0; i < d->n_indexes; i++) {
        const tbl_index_info_t *ix = &d->indexes[i];
        if ((rc = index_def_check(ix, err))) return rc;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(d->indexes[k].name, ix->name))
                return tr_err_set(err, TR_EVALIDATION, INVALID "Duplicate index name: %s",
                                  ix->name);
        if (ix->local) {
            if (++lsi > TBL_MAX_LSI)
                return tr_err_set(err, TR_ELIMIT,
                                  INVALID "Number of LocalSecondaryIndexes exceeds per-table "
                                          "limit of %d",
                                  TBL_MAX_LSI);
            if (!d->range)
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Table KeySchema does not have a range key, which is "
                                          "required when specifying a LocalSecondaryIndex");
            if (strcmp(ix->hash, d->hash))
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Index KeySchema does not have the same leading hash "
                                          "key as table KeySchema for index: %s. index hash key: "
                                          "%s, table hash key: %s",
                                  ix->name, ix->hash, d->hash);
            if (!ix->range)
                return tr_err_set(err, TR_EVALIDATION,
                                  INVALID "Index KeySchema must have a range key for local "
                                          "secondary index: %s", ix->name);
        } else if (++gsi > TBL_MAX_GSI) {
            return tr_err_set(err, TR_ELIMIT, INVALID "GlobalSecondaryIndex count exceeds the "
                                                      "per-table limit of %d", TBL_MAX_GSI);
        }
        incl += ix->n_include;
        used[n_used++] = ix->hash;
        if (ix->range) used[n_used++] = ix->range;
    }
    if (incl > TB_MAX_INCLUDE)
        return tr_err_set(err, TR_ELIMIT, INVALID "The number of attributes in key schema plus "
                                                  "non-key projected attributes exceeds %d",
                          TB_MAX_INCLUDE);
    for (size_t i = 0; i < n_used; i++)
        if (def_type(d->attrs, d->n_attrs, used[i]) < 0)
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Some index key attributes are not defined in "
                                      "AttributeDefinitions. Keys: [%s]",
                              used[i]);
    for (size_t i = 0; i < d->n_attrs; i++) {
        int found = 0;
        for (size_t k = 0; k < n_used && !found; k++) found = !strcmp(used[k], d->attrs[i].name);
        if (!found)
            return tr_err_set(err, TR_EVALIDATION,
                              INVALID "Number of attributes in KeySchema does not exactly match "
                                      "number of attributes defined in AttributeDefinitions");
    }
    if (d->n_tags > TBL_MAX_TAGS)
        return tr_err_set(err, TR_ELIMIT, "The number of tags exceeds the limit of %d",
                          TBL_MAX_TAGS);
    return 0;
}

static void index_from_info(tb_index_t *ix, const tbl_index_info_t *in, const tbl_attrdef_t *a,
                            size_t na, uint8_t space) {
    memset(ix, 0, sizeof *ix);
    ix->name = xstrdup(in->name);
    ix->space = space;
    ix->local = in->local;
    ix->hash = xstrdup(in->hash);
    ix->range = xstrdup(in->range);
    ix->htype = def_type(a, na, in->hash);
    ix->rtype = in->range ? def_type(a, na, in->range) : -1;
    ix->proj = in->projection;
    ix->n_incl = in->n_include;
    ix->incl = xcalloc(in->n_include, sizeof *ix->incl);
    for (size_t i = 0; i < in->n_include; i++) ix->incl[i] = xstrdup(in->include[i]);
    ix->rcu = in->rcu;
    ix->wcu = in->wcu;
    ix->status = TBL_STATUS_ACTIVE;
}

static tb_table_t *tab_from_def(const tbl_table_info_t *d) {
    tb_table_t *t = xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    atomic_init(&t->retired, 0);
    t->kf = tbl__key_format_new;
    t->name = xstrdup(d->name);
    t->hash = xstrdup(d->hash);
    t->range = xstrdup(d->range);
    t->htype = def_type(d->attrs, d->n_attrs, d->hash);
    t->rtype = d->range ? def_type(d->attrs, d->n_attrs, d->range) : -1;
    t->n_attrs = d->n_attrs;
    t->attrs = xcalloc(d->n_attrs, sizeof *t->attrs);
    for (size_t i = 0; i < d->n_attrs; i++) {
        t->attrs[i].name = xstrdup(d->attrs[i].name);
        t->attrs[i].type = d->attrs[i].type;
    }
    t->billing = d->billing;
    t->rcu = d->rcu;
    t->wcu = d->wcu;
    t->dp = d->deletion_protection;
    t->n_tags = d->n_tags;
    t->tags = xcalloc(d->n_tags, sizeof *t->tags);
    for (size_t i = 0; i < d->n_tags; i++) {
        t->tags[i].key = xstrdup(d->tags[i].key);
        t->tags[i].value = xstrdup(d->tags[i].value ? d->tags[i].value : "");
    }
    t->n_idx = d->n_indexes;
    t->idx = xcalloc(d->n_indexes, sizeof *t->idx);
    for (size_t i = 0; i < d->n_indexes; i++)
        index_from_info(&t->idx[i], &d->indexes[i], d->attrs, d->n_attrs, (uint8_t)(i + 1));
    return t;
}

/* The snapshot as a description (everything copied; counters left to the caller). */
static void info_fill(const tb_table_t *t, tbl_table_info_t *o) {
    memset(o, 0, sizeof *o);
    o->name = xstrdup(t->name);
    o->hash = xstrdup(t->hash);
    o->range = xstrdup(t->range);
    o->n_attrs = t->n_attrs;
    o->attrs = xcalloc(t->n_attrs, sizeof *o->attrs);
    for (size_t i = 0; i < t->n_attrs; i++) {
        o->attrs[i].name = xstrdup(t->attrs[i].name);
        o->attrs[i].type = t->attrs[i].type;
    }
    o->billing = t->billing;
    o->rcu = t->rcu;
    o->wcu = t->wcu;
    o->n_indexes = t->n_idx;
    o->indexes = xcalloc(t->n_idx, sizeof *o->indexes);
    for (size_t i = 0; i < t->n_idx; i++) {
        const tb_index_t *ix = &t->idx[i];
        tbl_index_info_t *oi = &o->indexes[i];
        oi->name = xstrdup(ix->name);
        oi->local = ix->local;
        oi->hash = xstrdup(ix->hash);
        oi->range = xstrdup(ix->range);
        oi->projection = ix->proj;
        oi->n_include = ix->n_incl;
        oi->include = xcalloc(ix->n_incl, sizeof *oi->include);
        for (size_t k = 0; k < ix->n_incl; k++) oi->include[k] = xstrdup(ix->incl[k]);
        oi->rcu = ix->rcu;
        oi->wcu = ix->wcu;
        oi->status = ix->status;
    }
    o->n_tags = t->n_tags;
    o->tags = xcalloc(t->n_tags, sizeof *o->tags);
    for (size_t i = 0; i < t->n_tags; i++) {
        o->tags[i].key = xstrdup(t->tags[i].key);
        o->tags[i].value = xstrdup(t->tags[i].value);
    }
    o->deletion_protection = t->dp;
    memcpy(o->table_id, t->table_id, sizeof o->table_id);
    o->status = TBL_STATUS_ACTIVE;
    for (size_t i = 0; i < t->n_idx; i++)
        if (t->idx[i].status == TBL_STATUS_CREATING) o->status = TBL_STATUS_UPDATING;
    o->created_ms = t->created_ms;
    o->ttl_attr = xstrdup(t->ttl_attr);
    o->ttl_enabled = t->ttl_enabled;
}

/* Writer thread: counters from memory. */
static void info_counts_mem(const tb_table_t *t, tbl_table_info_t *o) {
    o->item_count = t->st_items[0];
    o->size_bytes = t->st_bytes[0];
    for (size_t i = 0; i < t->n_idx; i++) {
        o->indexes[i].item_count = t->st_items[t->idx[i].space];
        o->indexes[i].size_bytes = t->st_bytes[t->idx[i].space];
    }
}

void tbl_table_info_free(tbl_table_info_t *o) {
    if (!o) return;
    free(o->name);
    free(o->hash);
    free(o->range);
    for (size_t i = 0; i < o->n_attrs; i++) free(o->attrs[i].name);
    free(o->attrs);
    for (size_t i = 0; i < o->n_indexes; i++) {
        tbl_index_info_t *ix = &o->indexes[i];
        free(ix->name);
        free(ix->hash);
        free(ix->range);
        for (size_t k = 0; k < ix->n_include; k++) free(ix->include[k]);
        free(ix->include);
    }
    free(o->indexes);
    for (size_t i = 0; i < o->n_tags; i++) {
        free(o->tags[i].key);
        free(o->tags[i].value);
    }
    free(o->tags);
    free(o->ttl_attr);
    memset(o, 0, sizeof *o);
}

/* "t/" + name, the metadata key of a table (malloc'd). */
static char *meta_key(const char *name, size_t *n) {
    size_t l = strlen(name);
    char *k = xmalloc(l + 3);
    k[0] = 't';
    k[1] = '/';
    memcpy(k + 2, name, l + 1);
    *n = l + 2;
    return k;
}

static int meta_put(tbl_t *db, MDB_txn *txn, const tb_table_t *t) {
    json_t *j = tab_to_json(t);
    size_t n;
    char *s = dump(j, &n);
    json_decref(j);
    size_t kn;
    char *k = meta_key(t->name, &kn);
    MDB_val kv = {kn, k}, vv = {n, s};
    int rc = mdb_put(txn, db->db_meta, &kv, &vv, 0);
    free(k);
    free(s);
    return rc;
}

static int meta_put_next_id(tbl_t *db, MDB_txn *txn) {
    uint8_t v[4];
    put_le32(v, db->next_id);
    MDB_val kv = {9, "n/next_id"}, vv = {4, v};
    return mdb_put(txn, db->db_meta, &kv, &vv, 0);
}

/* Delete the keys starting with prefix[0..n), at most max of them (0: all).  *more (if not
 * NULL) tells whether some are left. */
static int range_delete_some(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t n,
                             size_t max, int *more) {
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

static int range_delete(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t n) {
    return range_delete_some(txn, dbi, prefix, n, 0, NULL);
}

/* Called for an item by chunk_each; may write to the txn (the cursor is re-positioned from a
 * copy of the key after each call). */
typedef int (*space_fn)(tbl_t *db, MDB_txn *txn, tb_table_t *t, void *arg, const MDB_val *k,
                        const MDB_val *v);

/* pk of a stored item, from its own key attributes. */
static size_t item_pk(const tb_table_t *t, const json_t *item, uint8_t *out) {
    const json_t *h = json_object_get(item, t->hash);
    const json_t *r = t->range ? json_object_get(item, t->range) : NULL;
    if (!h || (t->range && !r)) return 0;
    return pk_build(h, r, out, NULL);
}

static int backfill_one(tbl_t *db, MDB_txn *txn, tb_table_t *t, void *arg, const MDB_val *k,
                        const MDB_val *v) {
    (void)k;
    const tb_index_t *ix = arg;
    json_t *item = val_parse(v);
    if (!item) return 0;
    uint8_t *pk = scratch()->pk;
    size_t pk_n = item_pk(t, item, pk);
    tb_key_t ik;
    int rc = 0;
    if (pk_n && index_key(ix, item, pk, pk_n, t, &ik) == 1) {
        json_t *pj = index_project(t, ix, item);
        size_t tn;
        char *text = dump(pj, &tn);
        uint32_t sz = (uint32_t)tbl_item_size(pj);
        size_t fn = ik.n == TBL__FOLD_KEEP + 32 ? index_full(ix, item, pk, pk_n, t) : 0;
        /* an entry already there was written by a write since the index was added: current */
        rc = val_put(txn, db->db_items, &ik, scratch()->full, fn, sz, 0, 0, text, tn,
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
    json_t *item = val_parse(v);
    if (!item) return 0;
    int64_t e = 0;
    int has = ttl_of(item, t->ttl_attr, &e);
    int rc = 0;
    uint8_t *buf = xmalloc(v->mv_size);
    memcpy(buf, v->mv_data, v->mv_size);
    buf[1] = (uint8_t)((buf[1] & ~1) | (has ? 1 : 0)); /* bit 0 only: other flags stay */
    put_le64(buf + 8, (uint64_t)(has ? e : 0));
    MDB_val vv = {v->mv_size, buf};
    rc = mdb_put(txn, db->db_items, (MDB_val *)k, &vv, 0);
    free(buf);
    if (!rc && has) {
        uint8_t *pk = scratch()->pk;
        size_t pk_n = item_pk(t, item, pk);
        tb_key_t tk;
        ttl_key(t->id, e, pk, pk_n, &tk);
        MDB_val kk = {tk.n, tk.b};
        rc = mdb_put(txn, db->db_items, &kk, (MDB_val *)k, 0);
    }
    json_decref(item);
    return rc;
}

static void attrs_recompute(tb_table_t *n, const tbl_attrdef_t *extra, size_t n_extra) {
    const char *used[2 + 2 * (TBL_MAX_GSI + TBL_MAX_LSI) + 2];
    int types[sizeof used / sizeof used[0]];
    size_t nu = 0;
#define USE(nm)                                                                                    \
    do {                                                                                           \
        if (!(nm)) break;                                                                          \
        int dup_ = 0;                                                                              \
        for (size_t q_ = 0; q_ < nu; q_++) dup_ |= !strcmp(used[q_], (nm));                        \
        if (dup_) break;                                                                           \
        int ty_ = attr_type(n, (nm));                                                              \
        if (ty_ < 0) ty_ = def_type(extra, n_extra, (nm));                                         \
        used[nu] = (nm);                                                                           \
        types[nu++] = ty_;                                                                         \
    } while (0)
    USE(n->hash);
    USE(n->range);
    for (size_t i = 0; i < n->n_idx; i++) {
        USE(n->idx[i].hash);
        USE(n->idx[i].range);
    }
#undef USE
    tbl_attrdef_t *a = xcalloc(nu, sizeof *a);
    for (size_t i = 0; i < nu; i++) {
        a[i].name = xstrdup(used[i]);
        a[i].type = types[i];
    }
    for (size_t i = 0; i < n->n_attrs; i++) free(n->attrs[i].name);
    free(n->attrs);
    n->attrs = a;
    n->n_attrs = nu;
}

static int ctl_create(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    if (map_find(db, c->def->name))
        return tr_err_set(&c->err, TR_EEXISTS, "Table already exists: %s", c->def->name);
    tb_table_t *t = tab_from_def(c->def);
    t->id = db->next_id++;
    t->created_ms = now_ms(db);
    uuid_new(t->table_id);
    int rc = meta_put(db, txn, t);
    if (!rc) rc = meta_put_next_id(db, txn);
    if (!rc) rc = stats_write_all(db, txn, t);
    if (rc) {
        tab_unref(t);
        return mdb_fail(&c->err, rc, "creating a table");
    }
    *pub = t;
    return 0;
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

static int bf_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space) {
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
    mark_dirty(db, t);
    if (!rc && done) {
        pub = tab_clone(t);
        pub->idx[xi].status = TBL_STATUS_ACTIVE;
        rc = meta_put(db, txn, pub);
        if (!rc) rc = mdb_del(txn, db->db_meta, &posk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    } else if (!rc) {
        MDB_val pv = {kn, kb};
        rc = mdb_put(txn, db->db_meta, &posk, &pv, 0);
    }
    if (!rc) rc = dirty_flush(db, txn);
    if (!rc) rc = mdb_txn_commit(txn);
    else if (txn) mdb_txn_abort(txn);
    if (rc) {
        mdb_fail(&db->werr, rc, "backfilling an index");
        tr_error(SUB, "%s of table %s: %s; retrying in %d ms", ix->name, t->name, db->werr.msg,
                 TB_BG_RETRY_MS);
        dirty_reload(db);
        dirty_clear(db);
        if (pub) tab_unref(pub);
        db->bg_retry_ms = tr_mono_ns() / 1000000 + TB_BG_RETRY_MS;
        return;
    }
    dirty_clear(db);
    if (pub) {
        tr_info(SUB, "index %s of table %s is ACTIVE (backfilled %" PRIu64 " entries)",
                pub->idx[xi].name, pub->name, pub->st_items[pub->idx[xi].space]);
        map_set(db, pub);
    }
}

/* ---- background removal of a deleted table's items -------------------------------------------
 *
 * DeleteTable removes the table's metadata and counters at once and leaves "d/<id, 8 hex>" in
 * "meta"; drop_marker deletes opts.bf_chunk of its items (and index / TTL entries) per
 * transaction between write batches, then the marker.  The id is never given to another
 * table, so a table re-created under the same name never sees them. */
/* Leave an empty marker key in "meta" for bg_step to work on (as part of txn). */
static int bg_mark(tbl_t *db, MDB_txn *txn, const char *key, int n) {
    MDB_val k = {(size_t)n, (void *)key}, empty = {0, ""};
    int rc = mdb_put(txn, db->db_meta, &k, &empty, 0);
    if (!rc) atomic_store(&db->bg_pending, 1);
    return rc;
}

static int drop_key(char *out, uint32_t id) { return snprintf(out, 16, "d/%08" PRIx32, id); }

/* A deleted GSI's entries: "d/<id, 8 hex><space, 2 hex>".  Its space is not given to a new
 * index until they are gone. */
static int drop_key_space(char *out, uint32_t id, uint8_t space) {
    return snprintf(out, 16, "d/%08" PRIx32 "%02x", id, (unsigned)space);
}

static int space_dropping(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space) {
    char kb[16];
    MDB_val k = {(size_t)drop_key_space(kb, id, space), kb}, v;
    return mdb_get(txn, db->db_meta, &k, &v) == 0;
}

/* Bytes of a marker key "x/<hex>" (2 hex digits a byte, at most 5 bytes) into out; their
 * count, 0 if it is not one. */
static size_t marker_bytes(const MDB_val *k, uint8_t *out) {
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
        mdb_fail(&db->werr, rc, what);
        tr_error(SUB, "%s; retrying in %d ms", db->werr.msg, TB_BG_RETRY_MS);
        return -1;
    }
    return found;
}

/* A drop marker: delete the next chunk of keys under its prefix, then the marker. */
static int drop_marker(tbl_t *db, MDB_txn *txn, MDB_cursor *c, const MDB_val *k) {
    uint8_t pre[5];   /* table id, or table id + space */
    size_t plen = marker_bytes(k, pre);
    if (plen != 4 && plen != 5) return mdb_cursor_del(c, 0);   /* not ours: dropped */
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
static int ttl_key_meta(char *out, uint32_t id) { return snprintf(out, 16, "l/%08" PRIx32, id); }

static int ttl_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id) {
    char kb[16];
    return meta_del(db, txn, kb, ttl_key_meta(kb, id));
}

/* A TTL marker: index the next chunk of the table's items, then drop the marker. */
static int ttl_marker(tbl_t *db, MDB_txn *txn, MDB_cursor *c, const MDB_val *k) {
    uint8_t idb[5];
    char mk[16];
    if (marker_bytes(k, idb) != 4) return mdb_cursor_del(c, 0);   /* not ours: dropped */
    uint32_t id = get_be32(idb);
    MDB_val posk = {(size_t)ttl_key_meta(mk, id), mk};
    tb_table_t *t = NULL;
    for (size_t i = 0; i < db->n_tabs && !t; i++)
        if (db->tabs[i]->id == id && db->tabs[i]->ttl_enabled) t = db->tabs[i];
    uint8_t kb[TBL__KEYMAX];
    size_t kn = 0;
    int done = 1, rc = 0;   /* a marker without its table (or with TTL off) is dropped */
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
static void bg_step(tbl_t *db) {
    if (tr_mono_ns() / 1000000 < db->bg_retry_ms) return;   /* backing off after a failure */
    int r = marker_step(db, "d/", drop_marker, "removing a deleted table's or index's entries");
    if (r == 0) r = marker_step(db, "l/", ttl_marker, "indexing TTL values");
    if (r < 0) db->bg_retry_ms = tr_mono_ns() / 1000000 + TB_BG_RETRY_MS;
    else if (r == 0) bf_step(db);   /* clears bg_pending when nothing is left */
}

int tbl_background_pending(tbl_t *db) { return db ? atomic_load(&db->bg_pending) : 0; }

static int ctl_delete(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    tb_table_t *t = map_find(db, c->name);
    if (!t)
        return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    if (t->dp)
        return tr_err_set(&c->err, TR_EINUSE,
                          "Resource cannot be deleted as it is currently protected against "
                          "deletion. Disable deletion protection first.");
    uint8_t pre[4];
    put_be32(pre, t->id);
    /* the items go in the background (drop_marker); table ids are never reused */
    char dk[16];
    int rc = bg_mark(db, txn, dk, drop_key(dk, t->id));
    if (!rc) rc = range_delete(txn, db->db_stats, pre, 4);
    for (size_t i = 0; !rc && i < t->n_idx; i++)
        if (t->idx[i].status == TBL_STATUS_CREATING)
            rc = bf_pos_del(db, txn, t->id, t->idx[i].space);
    if (!rc) rc = ttl_pos_del(db, txn, t->id);
    if (!rc) {
        size_t kn;
        char *k = meta_key(t->name, &kn);
        MDB_val kv = {kn, k};
        rc = mdb_del(txn, db->db_meta, &kv, NULL);
        free(k);
    }
    if (rc) return mdb_fail(&c->err, rc, "deleting a table");
    if (c->out) {
        info_fill(t, c->out);
        info_counts_mem(t, c->out);
        c->out->status = TBL_STATUS_DELETING;
    }
    return 0;
}

static int ctl_update(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    const tbl_table_update_t *u = c->u;
    tb_table_t *t = map_find(db, c->name);
    if (!t)
        return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    tb_table_t *n = tab_clone(t);
    int rc = 0;
    if (u->set_billing) {
        n->billing = u->billing;
        n->rcu = u->rcu;
        n->wcu = u->wcu;
    }
    if (u->set_deletion_protection) n->dp = u->deletion_protection;
    if (u->create_gsi) {
        const tbl_index_info_t *gi = u->create_gsi;
        size_t gsis = 0;
        for (size_t i = 0; i < n->n_idx; i++) gsis += !n->idx[i].local;
        if ((rc = index_def_check(gi, &c->err))) goto fail;
        if (gi->local) {
            rc = tr_err_set(&c->err, TR_EVALIDATION, INVALID "local secondary indexes can only "
                                                             "be created with the table");
            goto fail;
        }
        if (gsis >= TBL_MAX_GSI) {
            rc = tr_err_set(&c->err, TR_ELIMIT, "GlobalSecondaryIndex count exceeds the "
                                                "per-table limit of %d", TBL_MAX_GSI);
            goto fail;
        }
        for (size_t i = 0; i < n->n_idx; i++)
            if (n->idx[i].status == TBL_STATUS_CREATING) {
                rc = tr_err_set(&c->err, TR_ELIMIT, "Subscriber limit exceeded: Only 1 online "
                                "index can be created or deleted simultaneously per table");
                goto fail;
            }
        if (tab_index(n, gi->name)) {
            rc = tr_err_set(&c->err, TR_EVALIDATION, "Attempting to create an index which "
                                                     "already exists: %s", gi->name);
            goto fail;
        }
        for (size_t i = 0; i < u->n_attrs; i++) {
            int have = attr_type(n, u->attrs[i].name);
            if (have >= 0 && have != u->attrs[i].type) {
                rc = tr_err_set(&c->err, TR_EVALIDATION,
                                INVALID "Cannot change the type of attribute %s from %s to %s",
                                u->attrs[i].name, tbl_type_name(have),
                                tbl_type_name(u->attrs[i].type));
                goto fail;
            }
        }
        const char *keys[2] = {gi->hash, gi->range};
        int types[2] = {-1, -1};
        for (int k = 0; k < 2; k++) {
            if (!keys[k]) continue;
            types[k] = attr_type(n, keys[k]);
            if (types[k] < 0) types[k] = def_type(u->attrs, u->n_attrs, keys[k]);
            if (types[k] != TBL_T_S && types[k] != TBL_T_N && types[k] != TBL_T_B) {
                rc = tr_err_set(&c->err, TR_EVALIDATION,
                                INVALID "Some index key attributes are not defined in "
                                        "AttributeDefinitions. Keys: [%s]",
                                keys[k]);
                goto fail;
            }
        }
        uint8_t space = 0;
        for (unsigned s = 1; s < TBL__SPACE_TTL && !space; s++) {
            int taken = 0;
            for (size_t i = 0; i < n->n_idx; i++) taken |= n->idx[i].space == s;
            if (!taken && !space_dropping(db, txn, n->id, (uint8_t)s)) space = (uint8_t)s;
        }
        if (!space) {   /* every key space taken or still being emptied */
            rc = tr_err_set(&c->err, TR_ELIMIT, "Subscriber limit exceeded: too many indexes "
                            "created and deleted on table %s recently; retry later", n->name);
            goto fail;
        }
        n->idx = xrealloc(n->idx, (n->n_idx + 1) * sizeof *n->idx);
        tb_index_t *ix = &n->idx[n->n_idx++];
        tbl_attrdef_t defs[2] = {{(char *)gi->hash, types[0]}, {(char *)gi->range, types[1]}};
        index_from_info(ix, gi, defs, gi->range ? 2 : 1, space);
        n->st_items[space] = n->st_bytes[space] = 0;
        attrs_recompute(n, u->attrs, u->n_attrs);
        /* Writes maintain it from now on; bf_step fills in the items already there, in
         * chunks between batches, then makes it ACTIVE. */
        ix->status = TBL_STATUS_CREATING;
        rc = bf_pos_del(db, txn, n->id, space);
        if (rc) {
            rc = mdb_fail(&c->err, rc, "adding an index");
            goto fail;
        }
        atomic_store(&db->bg_pending, 1);
    }
    if (u->delete_gsi) {
        size_t i;
        for (i = 0; i < n->n_idx; i++)
            if (!n->idx[i].local && !strcmp(n->idx[i].name, u->delete_gsi)) break;
        if (i == n->n_idx) {
            rc = tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Index: %s not found in table %s",
                            u->delete_gsi, n->name);
            goto fail;
        }
        uint8_t pre[5];
        prefix_put(pre, n->id, n->idx[i].space);
        rc = bf_pos_del(db, txn, n->id, n->idx[i].space);
        /* its entries go in the background (drop_marker) */
        char dk[16];
        if (!rc) rc = bg_mark(db, txn, dk, drop_key_space(dk, n->id, n->idx[i].space));
        if (!rc) {
            MDB_val kv = {5, pre};
            rc = mdb_del(txn, db->db_stats, &kv, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        }
        if (rc) {
            rc = mdb_fail(&c->err, rc, "deleting an index");
            goto fail;
        }
        n->st_items[n->idx[i].space] = n->st_bytes[n->idx[i].space] = 0;
        index_clear(&n->idx[i]);
        memmove(n->idx + i, n->idx + i + 1, (n->n_idx - i - 1) * sizeof *n->idx);
        n->n_idx--;
        attrs_recompute(n, NULL, 0);
    }
    rc = meta_put(db, txn, n);
    if (!rc) rc = stats_write_all(db, txn, n);
    if (rc) {
        rc = mdb_fail(&c->err, rc, "updating a table");
        goto fail;
    }
    *pub = n;
    return 0;
fail:
    tab_unref(n);
    return rc;
}

static int tags_merge(tb_table_t *n, const tbl_tag_t *tags, size_t nt, tr_err *err) {
    for (size_t i = 0; i < nt; i++) {
        size_t k;
        for (k = 0; k < n->n_tags; k++)
            if (!strcmp(n->tags[k].key, tags[i].key)) break;
        if (k < n->n_tags) {
            free(n->tags[k].value);
            n->tags[k].value = xstrdup(tags[i].value ? tags[i].value : "");
            continue;
        }
        if (n->n_tags >= TBL_MAX_TAGS)
            return tr_err_set(err, TR_ELIMIT, "The number of tags exceeds the limit of %d",
                              TBL_MAX_TAGS);
        n->tags = xrealloc(n->tags, (n->n_tags + 1) * sizeof *n->tags);
        n->tags[n->n_tags].key = xstrdup(tags[i].key);
        n->tags[n->n_tags++].value = xstrdup(tags[i].value ? tags[i].value : "");
    }
    return 0;
}

static int ctl_meta_change(tbl_t *db, MDB_txn *txn, tb_ctl_t *c, tb_table_t **pub) {
    tb_table_t *t = map_find(db, c->name);
    if (!t)
        return tr_err_set(&c->err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", c->name);
    tb_table_t *n = tab_clone(t);
    int rc = 0;
    uint8_t pre[5];
    switch (c->kind) {
    case C_TAGS_ADD:
        rc = tags_merge(n, c->tags, c->n_tags, &c->err);
        break;
    case C_TAGS_REMOVE:
        for (size_t i = 0; i < c->n_keys; i++)
            for (size_t k = 0; k < n->n_tags; k++)
                if (!strcmp(n->tags[k].key, c->keys[i])) {
                    free(n->tags[k].key);
                    free(n->tags[k].value);
                    n->tags[k] = n->tags[--n->n_tags];
                    break;
                }
        break;
    case C_TTL:
        if (c->ttl_enabled) {
            if (t->ttl_enabled) {
                rc = tr_err_set(&c->err, TR_EVALIDATION, "TimeToLive is already enabled");
                break;
            }
            free(n->ttl_attr);
            n->ttl_attr = xstrdup(c->ttl_attr);
            n->ttl_enabled = 1;
            /* a TTL space still being emptied after a disable is emptied now: new entries go
             * there at once */
            if (space_dropping(db, txn, n->id, TBL__SPACE_TTL)) {
                char dk[16];
                MDB_val dkv = {(size_t)drop_key_space(dk, n->id, TBL__SPACE_TTL), dk};
                prefix_put(pre, n->id, TBL__SPACE_TTL);
                rc = range_delete(txn, db->db_items, pre, 5);
                if (!rc) rc = mdb_del(txn, db->db_meta, &dkv, NULL);
                if (rc) {
                    rc = mdb_fail(&c->err, rc, "enabling TTL");
                    break;
                }
            }
            /* writes index their TTL from now on; ttl_marker indexes the items already there */
            char mk[16];
            rc = bg_mark(db, txn, mk, ttl_key_meta(mk, n->id));
            if (rc) rc = mdb_fail(&c->err, rc, "enabling TTL");
        } else {
            if (!t->ttl_enabled) {
                rc = tr_err_set(&c->err, TR_EVALIDATION, "TimeToLive is already disabled");
                break;
            }
            n->ttl_enabled = 0;
            /* the TTL entries go in the background (drop_marker) */
            char dk[16];
            rc = ttl_pos_del(db, txn, n->id);
            if (!rc) rc = bg_mark(db, txn, dk, drop_key_space(dk, n->id, TBL__SPACE_TTL));
            if (rc) rc = mdb_fail(&c->err, rc, "removing TTL entries");
        }
        break;
    default:
        break;
    }
    if (!rc && (rc = meta_put(db, txn, n))) rc = mdb_fail(&c->err, rc, "updating a table");
    if (rc) {
        tab_unref(n);
        return rc;
    }
    *pub = n;
    return 0;
}

static int ctl_ttl_delete(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    int64_t now_s = now_ms(db) / 1000;
    uint8_t *pk = scratch()->pk;
    int rc = 0;
    for (size_t i = 0; i < c->n_cand && !rc; i++) {
        tb_ttl_cand_t *cd = &c->cand[i];
        tb_table_t *t = tab_current(db, cd->tab);
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
        op.old = val_parse(&v);
        op.act = A_DEL;
        /* the header may predate the current TTL setting (its indexing runs in the
         * background): the item's own value under the current attribute decides */
        int64_t e_now = 0;
        int expired_now = op.old && ttl_of(op.old, t->ttl_attr, &e_now) && e_now == cd->expiry;
        tb_wx_t x;
        memset(&x, 0, sizeof x);
        x.key = cd->key;
        x.pk = pk;
        x.pk_n = expired_now ? item_pk(t, op.old, pk) : 0;
        if (!x.pk_n) {
            op_clear(&op);
            continue;
        }
        rc = op_mutate(db, txn, &x, &op);
        if (!rc) c->deleted++;
        op_clear(&op);
    }
    if (rc) return mdb_fail(&c->err, rc, "deleting expired items");
    return 0;
}

static int ctl_tokens(tbl_t *db, MDB_txn *txn, tb_ctl_t *c) {
    int64_t now = now_ms(db);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, db->db_tokens, &cur);
    if (rc) return mdb_fail(&c->err, rc, "sweeping tokens");
    char (*dead)[TBL_MAX_TOKEN + 1] = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((v.mv_size == 40 && (int64_t)get_le64(v.mv_data) > now) || k.mv_size > TBL_MAX_TOKEN)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            dead = xrealloc(dead, cap * sizeof *dead);
        }
        memcpy(dead[n], k.mv_data, k.mv_size);
        dead[n++][k.mv_size] = '\0';
    }
    mdb_cursor_close(cur);
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    for (size_t i = 0; i < n && !rc; i++) {
        MDB_val dk = {strlen(dead[i]), dead[i]};
        rc = mdb_del(txn, db->db_tokens, &dk, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    free(dead);
    return rc ? mdb_fail(&c->err, rc, "sweeping tokens") : 0;
}

/* Writer thread: one control change in its own transaction, then the memory swap. */
static int ctl_exec(tbl_t *db, tb_ctl_t *c) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc) return mdb_fail(&c->err, rc, "starting a write");
    tb_table_t *pub = NULL;
    int remove = 0;
    switch (c->kind) {
    case C_CREATE: rc = ctl_create(db, txn, c, &pub); break;
    case C_DELETE: rc = ctl_delete(db, txn, c); remove = !rc; break;
    case C_UPDATE: rc = ctl_update(db, txn, c, &pub); break;
    case C_TTL_DELETE: rc = ctl_ttl_delete(db, txn, c); break;
    case C_TOKENS: rc = ctl_tokens(db, txn, c); break;
    default: rc = ctl_meta_change(db, txn, c, &pub); break;
    }
    if (!rc && (rc = dirty_flush(db, txn))) rc = mdb_fail(&c->err, rc, "writing counters");
    if (rc) {
        mdb_txn_abort(txn);
    } else if ((rc = mdb_txn_commit(txn))) {
        rc = mdb_fail(&c->err, rc, "committing a table change");
    }
    if (rc) {
        dirty_reload(db);
        dirty_clear(db);
        if (pub) tab_unref(pub);
        if (remove && c->out) tbl_table_info_free(c->out);
        return rc;
    }
    dirty_clear(db);
    if (remove) map_remove(db, c->name);
    if (pub) {
        map_set(db, pub);
        if (c->out) {
            info_fill(pub, c->out);
            info_counts_mem(pub, c->out);
        }
    }
    return 0;
}

static void wait_init(tb_wait_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = w->rc = 0;
}

static void wait_cb(void *arg, int rc) {
    tb_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int wait_end(tb_wait_t *w) {
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->rc;
}

static int on_writer(tbl_t *db, tr_err *err) {
    if (db->writer_started && pthread_equal(pthread_self(), db->writer))
        return tr_err_set(err, TR_EINVAL, "a synchronous table call was made from a write "
                                          "callback; it would wait for itself");
    return 0;
}

static int ctl_run(tbl_t *db, tb_ctl_t *c, tr_err *err) {
    int rc = on_writer(db, err);
    if (rc) return rc;
    tb_wait_t w;
    wait_init(&w);
    tb_job_t *j = job_new(0);
    j->kind = J_CTL;
    j->ctl = c;
    j->cb = wait_cb;
    j->arg = &w;
    rc = enqueue(db, j, err);
    if (rc) {
        free(j);
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return rc;
    }
    rc = wait_end(&w);
    if (rc && err) *err = c->err;
    return rc;
}

int tbl_table_create(tbl_t *db, const tbl_table_info_t *def, tbl_table_info_t *out,
                     tr_err *err) {
    if (!db || !def) return tr_err_set(err, TR_EINVAL, "CreateTable needs a definition");
    int rc = def_check(def, err);
    if (rc) return rc;
    tb_ctl_t c = {.kind = C_CREATE, .def = def, .out = out};
    return ctl_run(db, &c, err);
}

int tbl_table_delete(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err) {
    if (!db || !name) return tr_err_set(err, TR_EINVAL, "DeleteTable needs a table name");
    tb_ctl_t c = {.kind = C_DELETE, .name = name, .out = out};
    return ctl_run(db, &c, err);
}

int tbl_table_update(tbl_t *db, const char *name, const tbl_table_update_t *u,
                     tbl_table_info_t *out, tr_err *err) {
    if (!db || !name || !u) return tr_err_set(err, TR_EINVAL, "UpdateTable needs a table name");
    if (!u->set_billing && !u->create_gsi && !u->delete_gsi && !u->set_deletion_protection)
        return tr_err_set(err, TR_EVALIDATION,
                          "At least one of ProvisionedThroughput, BillingMode, "
                          "UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification "
                          "or ReplicaUpdates is required");
    if (u->create_gsi && u->delete_gsi)
        return tr_err_set(err, TR_EVALIDATION, "Only one global secondary index update per "
                                               "UpdateTable call is supported");
    tb_ctl_t c = {.kind = C_UPDATE, .name = name, .u = u, .out = out};
    return ctl_run(db, &c, err);
}

int tbl_table_tags_add(tbl_t *db, const char *name, const tbl_tag_t *tags, size_t n,
                       tr_err *err) {
    if (!db || !name || (n && !tags)) return tr_err_set(err, TR_EINVAL, "TagResource: bad args");
    for (size_t i = 0; i < n; i++)
        if (!tags[i].key || !*tags[i].key)
            return tr_err_set(err, TR_EVALIDATION, "tag %zu needs a key", i);
    tb_ctl_t c = {.kind = C_TAGS_ADD, .name = name, .tags = tags, .n_tags = n};
    return ctl_run(db, &c, err);
}

int tbl_table_tags_remove(tbl_t *db, const char *name, char *const *keys, size_t n,
                          tr_err *err) {
    if (!db || !name || (n && !keys)) return tr_err_set(err, TR_EINVAL, "UntagResource: bad args");
    tb_ctl_t c = {.kind = C_TAGS_REMOVE, .name = name, .keys = keys, .n_keys = n};
    return ctl_run(db, &c, err);
}

int tbl_ttl_update(tbl_t *db, const char *name, const char *attr, int enabled, tr_err *err) {
    if (!db || !name) return tr_err_set(err, TR_EINVAL, "UpdateTimeToLive needs a table name");
    if (!attr || !*attr || strlen(attr) > 255)
        return tr_err_set(err, TR_EVALIDATION, "TimeToLiveSpecification needs an AttributeName "
                                               "of 1-255 characters");
    tb_ctl_t c = {.kind = C_TTL, .name = name, .ttl_attr = attr, .ttl_enabled = enabled};
    return ctl_run(db, &c, err);
}

int tbl_table_describe(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err) {
    if (!db || !name || !out) return tr_err_set(err, TR_EINVAL, "DescribeTable needs a name");
    tb_table_t *t = tab_get(db, name, NULL);
    if (!t) return tr_err_set(err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", name);
    MDB_txn *txn;
    int rc = rtxn_get(db, &txn, err);
    if (!rc) {
        info_fill(t, out);
        stats_read(db, txn, t->id, 0, &out->item_count, &out->size_bytes);
        for (size_t i = 0; i < t->n_idx; i++)
            stats_read(db, txn, t->id, t->idx[i].space, &out->indexes[i].item_count,
                       &out->indexes[i].size_bytes);
        rtxn_put(db, txn);
    }
    tab_unref(t);
    return rc;
}

int tbl_table_list(tbl_t *db, const char *after, size_t max, char ***names, size_t *n, int *more,
                   tr_err *err) {
    if (!db || !names || !n) return tr_err_set(err, TR_EINVAL, "ListTables: bad arguments");
    pthread_rwlock_rdlock(&db->tlock);
    size_t i = after ? map_lower(db, after) : 0;
    if (after && i < db->n_tabs && !strcmp(db->tabs[i]->name, after)) i++;
    size_t k = db->n_tabs - i < max ? db->n_tabs - i : max;
    char **v = xcalloc(k, sizeof *v);
    for (size_t q = 0; q < k; q++) v[q] = xstrdup(db->tabs[i + q]->name);
    if (more) *more = i + k < db->n_tabs;
    pthread_rwlock_unlock(&db->tlock);
    *names = v;
    *n = k;
    return 0;
}

int tbl_key_names(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                  tr_err *err) {
    return tbl_key_schema(db, table, index, hash, range, NULL, NULL, err);
}

int tbl_key_schema(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                   int *htype, int *rtype, tr_err *err) {
    if (!db || !hash || !range) return tr_err_set(err, TR_EINVAL, "tbl_key_names: bad arguments");
    tb_table_t *t = tab_get(db, table, err);
    if (!t) return TR_ENOTFOUND;
    const char *h = t->hash, *r = t->range;
    int ht = t->htype, rt = t->rtype;
    int rc = 0;
    if (index) {
        const tb_index_t *ix = tab_index(t, index);
        if (!ix) rc = tr_err_set(err, TR_EVALIDATION, "The table does not have the specified "
                                                      "index: %s", index);
        else {
            h = ix->hash;
            r = ix->range;
            ht = ix->htype;
            rt = ix->rtype;
        }
    }
    if (!rc) {
        snprintf(hash, TBL_MAX_NAME + 1, "%s", h);
        snprintf(range, TBL_MAX_NAME + 1, "%s", r ? r : "");
        if (htype) *htype = ht;
        if (rtype) *rtype = r ? rt : -1;
    }
    tab_unref(t);
    return rc;
}

/* ---- reads --------------------------------------------------------------------------------- */

int tbl_get_many(tbl_t *db, tbl_get_t *g, size_t n, tr_err *err) {
    if (!db || (n && !g)) return tr_err_set(err, TR_EINVAL, "tbl_get_many: bad arguments");
    MDB_txn *txn;
    int rc = rtxn_get(db, &txn, err);
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
            tab_unref(t);
            t = tab_get(db, q->table, &q->err);
        }
        const json_t *h, *r;
        if (!t) q->rc = TR_ENOTFOUND;
        else q->rc = key_check(t, q->key, &h, &r, &q->err);
        if (!q->rc) {
            uint8_t *pk = scratch()->pk;
            size_t hl = 0, pn = pk_build(h, r, pk, &hl);
            tb_key_t k;
            key_from_pk(t, pk, pn, hl, &k);
            MDB_val kv = {k.n, k.b}, v;
            int mrc = mdb_get(txn, db->db_items, &kv, &v);
            if (mrc == 0 && val_ok(&v)) {
                q->size = val_size(&v);
                if (q->want_raw && !q->projection) {
                    const char *text = val_text(&v, &q->raw_len);
                    q->raw = xmalloc(q->raw_len + 1);
                    memcpy(q->raw, text, q->raw_len);
                    q->raw[q->raw_len] = '\0';
                } else {
                    q->item = val_parse(&v);
                    if (!q->item)
                        q->rc = tr_err_set(&q->err, TR_ECORRUPT, "stored item of table %s is "
                                                                 "corrupt", t->name);
                    else if (q->projection) {
                        json_t *p = tbl_expr_project(q->projection, q->item);
                        json_decref(q->item);
                        q->item = p;
                    }
                }
            } else if (mrc && mrc != MDB_NOTFOUND) {
                q->rc = mdb_fail(&q->err, mrc, "reading an item");
            }
        }
        if (q->rc && !first) {
            first = q->rc;
            if (err) *err = q->err;
        }
    }
    tab_unref(t);
    rtxn_put(db, txn);
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
    f->b = n <= sizeof f->in ? f->in : xmalloc(n);
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
static int seek_back(MDB_cursor *c, const uint8_t *b, size_t n, int incl, MDB_val *k,
                     MDB_val *v) {
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
    size_t n = key_full(t, sp, h, r, NULL, 0);
    if (!n) return -1;
    fkey_set(f, scratch()->full, n);
    return 0;
}

/* begins_with upper bound: the smallest value greater than every value starting with av. */
static json_t *value_succ(const json_t *av, int type) {
    json_t *v = av_inner(av);
    size_t n = json_string_length(v);
    uint8_t *b = NULL;
    if (type == TBL_T_S) {
        b = xmalloc(n + 1);
        memcpy(b, json_string_value(v), n);
    } else {
        b = xmalloc(tr_base64_decoded_max(n) + 1);
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


#define BAD_START "The provided starting key is invalid: The provided key element does not match " \
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
        if (!v[i] || tbl_av_type(v[i]) != types[i] || key_value_empty(v[i], types[i]))
            return tr_err_set(err, TR_EVALIDATION, BAD_START);
    }
    if (json_object_size(esk) != distinct) return tr_err_set(err, TR_EVALIDATION, BAD_START);
    size_t n;
    if (!ix) {
        n = key_full(t, 0, v[0], v[1], NULL, 0);
    } else {
        uint8_t *pk = scratch()->pk;
        size_t pn = pk_build(v[0], v[1], pk, NULL);
        n = pn ? key_full(t, ix->space, v[2], v[3], pk, pn) : 0;
    }
    if (!n) return tr_err_set(err, TR_EVALIDATION, BAD_START);
    fkey_set(S, scratch()->full, n);
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
    uint8_t *pk = scratch()->pk;
    size_t pn = item_pk(t, entry, pk);
    json_t *out = NULL;
    if (pn) {
        tb_key_t k;
        key_from_pk(t, pk, pn, pk_hlen(pk, pn), &k);
        MDB_val kv = {k.n, k.b}, v;
        if (!mdb_get(txn, db->db_items, &kv, &v)) out = val_parse(&v);
    }
    return out;
}

static int kc_check(const tbl_keycond_t *kc, const char *hname, const char *rname, int htype,
                    int rtype, tr_err *err) {
    if (!kc->hash)
        return tr_err_set(err, TR_EVALIDATION, "Query condition missed key schema element: %s",
                          hname);
    if (tbl_av_type(kc->hash) != htype)
        return tr_err_set(err, TR_EVALIDATION, INVALID "Condition parameter type does not match "
                                                       "schema type");
    if (kc->range_op == TBL_KC_NONE) return 0;
    if (!rname) return tr_err_set(err, TR_EVALIDATION, "Query key condition not supported");
    if (!kc->range_a || tbl_av_type(kc->range_a) != rtype ||
        (kc->range_op == TBL_KC_BETWEEN && (!kc->range_b || tbl_av_type(kc->range_b) != rtype)))
        return tr_err_set(err, TR_EVALIDATION, INVALID "Condition parameter type does not match "
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
 * entry's key attributes; in scratch()->full.  NULL when the entry cannot be read. */
static const uint8_t *entry_full(const tb_page_t *pg, const MDB_val *k, const MDB_val *v,
                                 size_t *n) {
    if (k->mv_size != TBL__FOLD_KEEP + 32) {
        *n = k->mv_size;
        return k->mv_data;
    }
    size_t tn;
    const uint8_t *tail = val_key_tail(v, &tn);
    if (tail) {
        if (TBL__FOLD_KEEP + tn > TB_FULLKEY_MAX) return NULL;
        uint8_t *full = scratch()->full;
        memcpy(full, k->mv_data, TBL__FOLD_KEEP);
        memcpy(full + TBL__FOLD_KEEP, tail, tn);
        *n = TBL__FOLD_KEEP + tn;
        return full;
    }
    json_t *item = val_parse(v);
    if (!item) return NULL;
    const tb_table_t *t = pg->t;
    const tb_index_t *ix = pg->ix;
    const json_t *h = json_object_get(item, t->hash);
    const json_t *r = t->range ? json_object_get(item, t->range) : NULL;
    size_t len = 0;
    if (h && (!t->range || r)) {
        if (!ix) {
            len = key_full(t, TBL__SPACE_TABLE, h, r, NULL, 0);
        } else {
            const json_t *ih = json_object_get(item, ix->hash);
            const json_t *ir = ix->range ? json_object_get(item, ix->range) : NULL;
            uint8_t *pk = scratch()->pk;
            size_t pn = ih && (!ix->range || ir) ? pk_build(h, r, pk, NULL) : 0;
            if (pn) len = key_full(t, ix->space, ih, ir, pk, pn);
        }
    }
    json_decref(item);
    *n = len;
    return len ? scratch()->full : NULL;
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
        s->c = xrealloc(s->c, s->cap * sizeof *s->c);
    }
    size_t i = s->n++;
    s->c[i] = (tb_cand_t){memcpy(xmalloc(n), f, n), n, *v, val_size(v)};
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
    if (pg->need_item && !(item = val_parse(v))) return 0;
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
        pg->last = item ? item : val_parse(v);
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
        ix = tab_index(t, q->index);
        if (!ix)
            return tr_err_set(err, TR_EVALIDATION, "The table does not have the specified index: "
                                                   "%s", q->index);
        if (ix->status == TBL_STATUS_CREATING)
            return tr_err_set(err, TR_EVALIDATION, "Cannot read from backfilling global "
                                                   "secondary index: %s", q->index);
        hname = ix->hash;
        rname = ix->range;
        htype = ix->htype;
        rtype = ix->rtype;
        sp = ix->space;
    }
    if (q->select < TBL_SELECT_ALL_ATTRIBUTES || q->select > TBL_SELECT_COUNT)
        return tr_err_set(err, TR_EVALIDATION, "unknown Select value %d", q->select);
    if (q->select == TBL_SELECT_SPECIFIC && !q->projection)
        return tr_err_set(err, TR_EVALIDATION, "Select SPECIFIC_ATTRIBUTES needs a "
                                               "ProjectionExpression");
    if (q->select == TBL_SELECT_ALL_ATTRIBUTES && ix && !ix->local && ix->proj != TBL_PROJ_ALL)
        return tr_err_set(err, TR_EVALIDATION,
                          INVALID "Select type ALL_ATTRIBUTES is not supported for global "
                                  "secondary index %s because its projection type is not ALL",
                          ix->name);
    int fetch_base = q->select == TBL_SELECT_ALL_ATTRIBUTES && ix && ix->local &&
                     ix->proj != TBL_PROJ_ALL;
    tb_range_t *g = xcalloc(1, sizeof *g);
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
        default:
            break;
        }
        if (bad) {
            rc = tr_err_set(err, TR_EVALIDATION, INVALID "a key condition value is longer than "
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
            put_be32(b + 5, seg_lo(q->segment, q->total_segments));
            fkey_set(&g->lo, b, 9);
            if (q->segment + 1 < q->total_segments) {
                g->has_hi = g->hi_excl = 1;
                put_be32(b + 5, seg_lo(q->segment + 1, q->total_segments));
                fkey_set(&g->hi, b, 9);
            }
        }
    }
    if (q->start_key) {
        if ((rc = esk_build(t, ix, q->start_key, &g->S, err))) goto out;
        if (!q->scan && !tbl_av_equal(json_object_get(q->start_key, hname), kc.hash)) {
            rc = tr_err_set(err, TR_EVALIDATION, "The provided starting key is outside query "
                                                 "boundaries based on provided condition");
            goto out;
        }
        g->has_S = 1;
    }

    MDB_txn *txn;
    if ((rc = rtxn_get(db, &txn, err))) goto out;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, db->db_items, &cur))) {
        rtxn_put(db, txn);
        rc = mdb_fail(err, rc, "reading");
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
    tb_page_t pg = {db, t, ix, q, txn, g, q->filter || q->select != TBL_SELECT_COUNT || fetch_base,
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
    if (!rc && mrc && mrc != MDB_NOTFOUND) rc = mdb_fail(err, mrc, "reading");
    if (!rc && pg.last) q->last_key = lek_of(t, ix, pg.last);
    json_decref(pg.last);
    mdb_cursor_close(cur);
    rtxn_put(db, txn);
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
    tb_table_t *t = tab_get(db, q->table, &q->err);
    int rc;
    if (!t) rc = TR_ENOTFOUND;
    else {
        rc = query_run(db, t, q, &q->err);
        tab_unref(t);
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

/* ---- TTL ----------------------------------------------------------------------------------- */

int tbl_ttl_run(tbl_t *db, size_t max) {
    if (!db) return TR_EINVAL;
    if (on_writer(db, NULL)) return TR_EINVAL;
    if (!max) max = 10000;
    int64_t now_s = now_ms(db) / 1000;
    int64_t lo_s = now_s - TB_TTL_PAST_S;
    if (lo_s < 0) lo_s = 0;
    pthread_rwlock_rdlock(&db->tlock);
    size_t nt = 0;
    tb_table_t **tabs = xcalloc(db->n_tabs, sizeof *tabs);
    for (size_t i = 0; i < db->n_tabs; i++)
        if (db->tabs[i]->ttl_enabled) {
            tabs[nt] = db->tabs[i];
            tab_ref(tabs[nt++]);
        }
    pthread_rwlock_unlock(&db->tlock);
    tb_ttl_cand_t *cand = NULL;
    size_t nc = 0, cap = 0;
    int rc = 0;
    MDB_txn *txn = NULL;
    if (nt && !(rc = rtxn_get(db, &txn, NULL))) {
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
                        cand = xrealloc(cand, cap * sizeof *cand);
                    }
                    tb_ttl_cand_t *c = &cand[nc++];
                    c->tab = tabs[i];
                    tab_ref(c->tab);
                    c->key.n = v.mv_size;
                    memcpy(c->key.b, v.mv_data, v.mv_size);
                    c->expiry = e;
                }
            }
            mdb_cursor_close(cur);
        }
        rtxn_put(db, txn);
        rc = rc ? TR_EIO : 0;
    }
    for (size_t i = 0; i < nt; i++) tab_unref(tabs[i]);
    free(tabs);
    int deleted = 0;
    if (!rc && nc) {
        tb_ctl_t c = {.kind = C_TTL_DELETE, .cand = cand, .n_cand = nc};
        rc = ctl_run(db, &c, NULL);
        if (!rc) deleted = (int)c.deleted;
    }
    for (size_t i = 0; i < nc; i++) tab_unref(cand[i].tab);
    free(cand);
    return rc ? rc : deleted;
}

static void *ttl_main(void *arg) {
    tbl_t *db = arg;
    int64_t last_sweep = tr_mono_ns() / 1000000;
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
        int64_t now = tr_mono_ns() / 1000000;
        if (now - last_sweep >= TB_TOKEN_SWEEP_MS) {
            last_sweep = now;
            tb_ctl_t c = {.kind = C_TOKENS};
            ctl_run(db, &c, NULL);
        }
        pthread_mutex_lock(&db->smu);
    }
    pthread_mutex_unlock(&db->smu);
    return NULL;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static void db_free(tbl_t *db) {
    for (size_t i = 0; i < db->n_tabs; i++) tab_unref(db->tabs[i]);
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
    if (rc) return mdb_fail(err, rc, "opening the table store");
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->db_meta)) ||
        (rc = mdb_dbi_open(txn, "items", MDB_CREATE, &db->db_items)) ||
        (rc = mdb_dbi_open(txn, "stats", MDB_CREATE, &db->db_stats)) ||
        (rc = mdb_dbi_open(txn, "tokens", MDB_CREATE, &db->db_tokens))) {
        mdb_txn_abort(txn);
        return mdb_fail(err, rc, "opening the table store");
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
            marker_bytes(&dk, idb);
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
        return mdb_fail(err, rc, "opening the table store");
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
            return tr_err_set(err, TR_ECORRUPT, "table metadata %.*s is corrupt (%s); restore "
                                                "DATA/tables from a backup",
                              (int)k.mv_size, (char *)k.mv_data, je.text);
        }
        tb_table_t *t = tab_from_json(j);
        json_decref(j);
        stats_load(db, txn, t);
        for (size_t i = 0; i < t->n_idx; i++)
            if (t->idx[i].status == TBL_STATUS_CREATING) atomic_store(&db->bg_pending, 1);
        if (db->n_tabs == db->cap_tabs) {
            db->cap_tabs = db->cap_tabs ? 2 * db->cap_tabs : 16;
            db->tabs = xrealloc(db->tabs, db->cap_tabs * sizeof *db->tabs);
        }
        db->tabs[db->n_tabs++] = t; /* LMDB order == name order */
        if (t->id >= db->next_id) db->next_id = t->id + 1;
    }
    mdb_cursor_close(c);
    rc = mdb_txn_commit(txn);
    if (rc) return mdb_fail(err, rc, "opening the table store");
    return 0;
}

int tbl_open(const char *dir, const tbl_opts_t *opts, tbl_t **out, tr_err *err) {
    if (!dir || !out) return tr_err_set(err, TR_EINVAL, "tbl_open needs a directory");
    *out = NULL;
    if (mkdir_p(dir))
        return tr_err_set(err, TR_EIO, "cannot create %s: %s; check the data directory "
                                       "permissions", dir, strerror(errno));
    tbl_t *db = xcalloc(1, sizeof *db);
    db->dir = xstrdup(dir);
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
        tr_err_set(err, TR_EINTERNAL, "liblmdb allows keys of %d bytes; the table engine needs "
                                      "%d: build against a standard liblmdb",
                   mdb_env_get_maxkeysize(db->env), TBL__KEYMAX);
        goto fail;
    }
    if (meta_load(db, err)) goto fail;
    if (pthread_create(&db->writer, NULL, writer_main, db)) {
        tr_err_set(err, TR_EINTERNAL, "cannot start the table writer thread");
        goto fail;
    }
    db->writer_started = 1;
    if (db->opts.ttl_interval_ms > 0) {
        if (pthread_create(&db->ttl_thr, NULL, ttl_main, db)) {
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
    int rc = on_writer(db, err);
    if (rc) return rc;
    tb_wait_t wt;
    wait_init(&wt);
    rc = tbl_write_submit(db, w, n, wait_cb, &wt, err);
    if (rc) {
        wt.done = 1;
        wait_end(&wt);
        return rc;
    }
    rc = wait_end(&wt);
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
    int rc = on_writer(db, err);
    if (rc) return rc;
    tb_wait_t wt;
    wait_init(&wt);
    rc = tbl_txn_submit(db, t, wait_cb, &wt, err);
    if (rc) {
        wt.done = 1;
        wait_end(&wt);
        return rc;
    }
    rc = wait_end(&wt);
    if (rc && err) *err = t->err;
    return rc;
}

int tbl_handle_open(tbl_t *db, const char *table, tbl_handle_t **out, tr_err *err) {
    if (!db || !table || !out) return tr_err_set(err, TR_EINVAL, "tbl_handle_open: bad args");
    tb_table_t *t = tab_get(db, table, NULL);
    if (!t) return tr_err_set(err, TR_ENOTFOUND, NOT_FOUND ": Table: %s not found", table);
    tab_unref(t);
    tbl_handle_t *h = xcalloc(1, sizeof *h);
    h->db = db;
    h->name = xstrdup(table);
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

int tbl_sync_put(tbl_handle_t *h, json_t *item, const tbl_expr_t *cond, json_t **old,
                 tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_PUT, .table = h->name, .item = item, .cond = cond,
                     .return_values = old ? TBL_RV_ALL_OLD : TBL_RV_NONE};
    return sync_one(h, &w, old, err);
}

int tbl_sync_update(tbl_handle_t *h, const json_t *key, const tbl_expr_t *update,
                    const tbl_expr_t *cond, int return_values, json_t **attrs, tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_UPDATE, .table = h->name, .key = key, .update = update,
                     .cond = cond, .return_values = return_values};
    return sync_one(h, &w, attrs, err);
}

int tbl_sync_delete(tbl_handle_t *h, const json_t *key, const tbl_expr_t *cond, json_t **old,
                    tr_err *err) {
    if (!h) return tr_err_set(err, TR_EINVAL, "no table handle");
    tbl_write_t w = {.op = TBL_OP_DELETE, .table = h->name, .key = key, .cond = cond,
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
