/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl_int.h -- the table engine's internals, shared by its files.  Not API (tbl.h is).
 *
 *     tbl.c        overview and on-disk format; helpers, the name map of table snapshots,
 *                  counters, read transactions, open/close, the synchronous API
 *     tbl_key.c    stored keys and item values (encoding, folding), schema and index checks
 *     tbl_meta.c   snapshots and their "meta" records, the control plane (create, delete,
 *                  update table, TTL, tags, describe, list) as control jobs
 *     tbl_write.c  submitting writes and the writer thread (group commit, transactions)
 *     tbl_bg.c     background work between batches (GSI backfill, drops, TTL indexing) and the
 *                  TTL sweep
 *     tbl_read.c   GetItem and friends, Query and Scan in exact key order
 *
 * Names shared between these files are tbl__*; what lives in one file is static there.  Thread
 * rules are tbl.c's: "writer thread" marks what only the writer thread may call.
 *
 * White-box tests (tests/unit/table/test_tbl.c, tests/fuzz/fuzz_tblorder.c) include this header
 * for tbl__key_format_new and TBL__KEY_FORMAT (tables in key format 0); nothing else of it.
 */
#ifndef TBL_INT_H
#define TBL_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "table/tbl.h"

#define TBL__KEYMAX 511          /* LMDB's compiled-in key limit (checked at open) */
#define TBL__FOLD_KEEP 479       /* longer keys: first 479 bytes + SHA-256 of the whole */
#define TBL__SPACE_TABLE 0x00    /* key space of the table's items */
#define TBL__SPACE_TTL 0xFF      /* key space of the TTL index */
#define TBL__VAL_HDR 16          /* item value header, see tbl.c "On-disk format" */
#define TBL__VAL_VERSION 1
#define TBL__KEY_FORMAT 1        /* key format of new tables (meta "kf", absent: 0), see tbl.c */
#define TBL__HASH_INLINE 64      /* format 1: a longer C(hash) is stored as 'H' + its SHA-256 */

/* Key format given to tables created from now on: TBL__KEY_FORMAT; tests set 0 to make tables
 * as older versions did. */
extern int tbl__key_format_new;

/* 32-bit partition hash of an escaped hash-key component (scan order and segments). */
uint32_t tbl__hash32(const uint8_t *p, size_t n);

/* ---- defaults, limits, formats ------------------------------------------------------------- */

#define TB_DEF_MAPSIZE ((size_t)64 << 30)
#define TB_DEF_PENDING ((size_t)64 << 20)
#define TB_DEF_BATCH 4096
#define TB_BF_CHUNK 1000      /* items per GSI backfill transaction */
#define TB_BF_BYTES ((size_t)8 << 20)   /* and item bytes */
#define TB_BG_RETRY_MS 1000   /* background work waits this long after an LMDB failure */
#define TB_DEF_TTL_MS 1000
#define TB_TOKEN_SWEEP_MS 60000
#define TB_ENC_MAX                                                                                 \
    4200                 /* tbl_key_encode output of the largest legal key value
                                           (1 + 2 * 2048 + 2); longer is refused */
#define TB_FULLKEY_MAX (9 + 4 * (2 * TB_ENC_MAX + 2) + 64)   /* unfolded key scratch */
#define TB_RPOOL 64
#define TB_VAL_KEYTAIL 0x02 /* value flag: the unfolded key's tail follows the header */
#define TB_MAX_HASH_BYTES 2048
#define TB_MAX_RANGE_BYTES 1024
#define TB_MAX_INCLUDE 100
#define TB_TTL_PAST_S (5LL * 365 * 86400)
#define TB_WRITE_COST 1024

/* DynamoDB's wording, used by the messages of several files. */
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

extern _Thread_local tb_scratch_t *tbl__tls_scratch; /* tbl.c; NULL until first use */
tb_scratch_t *tbl__scratch_new(void);

/* This thread's scratch (valid until the thread exits; the next key built on this thread
 * overwrites it). */
static inline tb_scratch_t *tbl__scratch(void) {
    tb_scratch_t *s = tbl__tls_scratch;
    return s ? s : tbl__scratch_new();
}

/* ---- types --------------------------------------------------------------------------------- */

typedef struct tb_index {
    char *name;
    uint8_t space;
    int local;
    char *hash, *range;
    int htype, rtype; /* TBL_T_S/N/B; rtype -1 without range */
    int proj;
    char **incl;
    size_t n_incl;
    uint64_t rcu, wcu;
    int status;
} tb_index_t;

typedef struct tb_table {
    atomic_int refs;
    atomic_int retired; /* replaced or dropped: re-resolve on the writer thread */
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
    int kf; /* key format (tbl.c "On-disk format"): 0 or 1 */
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
    tb_table_t *tab; /* reference held */
    tb_key_t key; /* stored key in space 0 */
    uint8_t *pk; /* C(hash)[C(range)], malloc'd */
    size_t pk_n;
    char *text; /* PUT: compact JSON (malloc'd by jansson) */
    size_t text_n;
    uint32_t size; /* PUT: tbl_item_size */
    int bad_key; /* transaction: a key attribute has the wrong type (no key
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
    int rc; /* J_WRITES: first failing rc */
    tb_wx_t x[];
} tb_job_t;

/* Apply state of one write on the writer thread. */
typedef struct tb_op {
    tb_table_t *tab;
    int exists;
    uint32_t old_size;
    int old_has_ttl;
    int64_t old_ttl;
    json_t *old; /* parsed old item (owned) or NULL */
    json_t *neu; /* new item (owned reference) or NULL */
    char *text; /* new text */
    size_t text_n;
    int text_owned;
    uint32_t new_size;
    int new_has_ttl;
    int64_t new_ttl;
    int act; /* A_NONE, A_PUT, A_DEL */
    int refuse_all; /* w->rc refuses a whole transaction, not just this write (an
                                   empty index key value: DynamoDB's top-level error) */
} tb_op_t;

enum { A_NONE, A_PUT, A_DEL };

enum { C_CREATE, C_DELETE, C_UPDATE, C_TAGS_ADD, C_TAGS_REMOVE, C_TTL, C_TTL_DELETE, C_TOKENS };

typedef struct tb_ttl_cand {
    tb_table_t *tab; /* reference held */
    tb_key_t key; /* stored key of the item */
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
    tb_table_t **tabs; /* sorted by name; one reference each */
    size_t n_tabs, cap_tabs;
    uint32_t next_id; /* writer thread */

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
    tr_err werr; /* message of a hard (LMDB) failure */
    int64_t last_token_sweep;
    atomic_int bg_pending; /* a dropped table's items or a CREATING GSI may be left:
                                   tbl__bg_step runs between batches (tbl_background_pending) */
    long long bg_retry_ms; /* monotonic ms before which tbl__bg_step waits (after a failure) */

    pthread_t writer, ttl_thr;
    int writer_started, ttl_started;
};

/* What tbl__index_check looks at.  DynamoDB refuses an empty index key value before anything runs
 * (even in a transaction: a top-level ValidationException), a wrong type or size while applying
 * (in a transaction: a cancellation reason). */
enum {
    IX_EMPTY = 1,
    IX_TYPE = 2,
    IX_ALL = 3,
    IX_UPDATE = 4 /* the value came from an update
                                                                   expression (its message) */
};

/* ---- small helpers, inline: they run per key read ------------------------------------------ */

static inline void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

static inline void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline size_t prefix_put(uint8_t *p, uint32_t tid, uint8_t space) {
    put_be32(p, tid);
    p[4] = space;
    return 5;
}

static inline int val_ok(const MDB_val *v) {
    return v->mv_size >= TBL__VAL_HDR && ((const uint8_t *)v->mv_data)[0] == TBL__VAL_VERSION;
}

static inline uint32_t val_size(const MDB_val *v) {
    return get_le32((const uint8_t *)v->mv_data + 4);
}

/* ---- tbl.c: helpers, name map, counters, read transactions, waiting ------------------------ */

/* Comments on each are at its definition. */

int64_t tbl__now_ms(const tbl_t *db);
int tbl__mdb_fail(tr_err *err, int rc, const char *what);
size_t tbl__map_lower(tbl_t *db, const char *name);
tb_table_t *tbl__map_find(tbl_t *db, const char *name);
void tbl__map_set(tbl_t *db, tb_table_t *t);
void tbl__map_remove(tbl_t *db, const char *name);
tb_table_t *tbl__tab_get(tbl_t *db, const char *name, tr_err *err);
tb_table_t *tbl__tab_current(tbl_t *db, tb_table_t *t);
int tbl__stats_write_all(tbl_t *db, MDB_txn *txn, const tb_table_t *t);
void tbl__stats_read(tbl_t *db, MDB_txn *txn, uint32_t tid, uint8_t space, uint64_t *items,
                     uint64_t *bytes);
void tbl__mark_dirty(tbl_t *db, tb_table_t *t);
int tbl__dirty_flush(tbl_t *db, MDB_txn *txn);
void tbl__dirty_reload(tbl_t *db);
void tbl__dirty_clear(tbl_t *db);
int tbl__rtxn_get(tbl_t *db, MDB_txn **out, tr_err *err);
void tbl__rtxn_put(tbl_t *db, MDB_txn *t);
void tbl__wait_init(tb_wait_t *w);
void tbl__wait_cb(void *arg, int rc);
int tbl__wait_end(tb_wait_t *w);
int tbl__on_writer(tbl_t *db, tr_err *err);

/* ---- tbl_key.c: keys, values, schema checks (pure; results in tbl__scratch() say so) ------- */

size_t tbl__pk_build(const json_t *h, const json_t *r, uint8_t *out, size_t *hlen);
size_t tbl__pk_hlen(const uint8_t *pk, size_t n);
size_t tbl__key_full(const tb_table_t *t, uint8_t space, const json_t *h, const json_t *r,
                     const uint8_t *suffix, size_t suffix_n);
size_t tbl__key_full_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen);
void tbl__key_from_pk(const tb_table_t *t, const uint8_t *pk, size_t pk_n, size_t hlen,
                      tb_key_t *k);
void tbl__ttl_key(uint32_t tid, int64_t expiry, const uint8_t *pk, size_t pk_n, tb_key_t *k);
uint32_t tbl__seg_lo(uint32_t s, uint32_t total);
const uint8_t *tbl__val_key_tail(const MDB_val *v, size_t *n);
const char *tbl__val_text(const MDB_val *v, size_t *n);
json_t *tbl__val_parse(const MDB_val *v);
int tbl__val_put(MDB_txn *txn, MDB_dbi dbi, const tb_key_t *k, const uint8_t *full, size_t fn,
                 uint32_t size, int has_ttl, int64_t ttl, const char *text, size_t tn,
                 unsigned flags);
char *tbl__dump(const json_t *item, size_t *n);
int tbl__ttl_of(const json_t *item, const char *attr, int64_t *out);
json_t *tbl__av_inner(const json_t *av);
int tbl__key_value_empty(const json_t *av, int type);
int tbl__item_key_check(const tb_table_t *t, const json_t *item, const json_t **h, const json_t **r,
                        tr_err *err);
int tbl__key_check(const tb_table_t *t, const json_t *key, const json_t **h, const json_t **r,
                   tr_err *err);
int tbl__index_check(const tb_table_t *t, const json_t *item, int what, tr_err *err);
int tbl__index_key(const tb_index_t *ix, const json_t *item, const uint8_t *pk, size_t pk_n,
                   const tb_table_t *t, tb_key_t *k);
size_t tbl__index_full(const tb_index_t *ix, const json_t *item, const uint8_t *pk, size_t pk_n,
                       const tb_table_t *t);
json_t *tbl__index_project(const tb_table_t *t, const tb_index_t *ix, json_t *item);
size_t tbl__item_pk(const tb_table_t *t, const json_t *item, uint8_t *out);

/* ---- tbl_meta.c: snapshots, control jobs --------------------------------------------------- */

void tbl__tab_ref(tb_table_t *t);
void tbl__tab_unref(tb_table_t *t);
tb_table_t *tbl__tab_from_json(const json_t *o);
tb_table_t *tbl__tab_clone(const tb_table_t *t);
const tb_index_t *tbl__tab_index(const tb_table_t *t, const char *name);
int tbl__meta_put(tbl_t *db, MDB_txn *txn, const tb_table_t *t);
int tbl__ctl_exec(tbl_t *db, tb_ctl_t *c);
int tbl__ctl_run(tbl_t *db, tb_ctl_t *c, tr_err *err);

/* ---- tbl_write.c: applying and queuing writes ---------------------------------------------- */

void tbl__op_clear(tb_op_t *op);
int tbl__op_mutate(tbl_t *db, MDB_txn *txn, const tb_wx_t *x, tb_op_t *op);
void *tbl__writer_main(void *arg);
int tbl__enqueue(tbl_t *db, tb_job_t *j, tr_err *err);
tb_job_t *tbl__job_new(size_t n);

/* ---- tbl_bg.c: background work and TTL (markers in "meta") --------------------------------- */

int tbl__range_delete(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t n);
int tbl__bf_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space);
int tbl__bg_mark(tbl_t *db, MDB_txn *txn, const char *key, int n);
int tbl__drop_key(char *out, uint32_t id);
int tbl__drop_key_space(char *out, uint32_t id, uint8_t space);
int tbl__space_dropping(tbl_t *db, MDB_txn *txn, uint32_t id, uint8_t space);
size_t tbl__marker_bytes(const MDB_val *k, uint8_t *out);
int tbl__ttl_key_meta(char *out, uint32_t id);
int tbl__ttl_pos_del(tbl_t *db, MDB_txn *txn, uint32_t id);
void tbl__bg_step(tbl_t *db);
int tbl__ctl_ttl_delete(tbl_t *db, MDB_txn *txn, tb_ctl_t *c);
void *tbl__ttl_main(void *arg);

#endif
