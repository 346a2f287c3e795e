/* SPDX-License-Identifier: Apache-2.0
 *
 * tbl.h -- the table engine: DynamoDB-style tables in one LMDB environment, group-committed writes.
 *
 * This is DynamoDB as a C library, without HTTP.  A tbl_t owns a data directory:
 *
 *     DIR/data.mdb, DIR/lock.mdb   one LMDB environment: table metadata, items, secondary index
 *                                  entries, TTL index, per-table counters, transaction tokens
 *                                  (byte layouts are drawn in tbl.c)
 *
 * Items are jansson objects in DynamoDB wire form (item.h); expressions are parsed by expr.h.
 * The engine decides (schema checks, conditions, index upkeep, paging); the adapter translates.
 *
 * Invariants
 *   - A write is acknowledged (its callback runs with rc 0) only after the LMDB transaction
 *     holding it has committed and synced.  One writer thread applies everything queued (up to
 *     opts.max_batch writes) in ONE LMDB write transaction and commits once: one fsync pair for
 *     the whole batch (group commit), then runs the callbacks in submission order.
 *   - Each write is atomic on its own; a transaction (tbl_txn_submit) is atomic as a whole.  Reads
 *     see only committed states (LMDB MVCC snapshots): never a half-applied write or
 *     transaction.  Writes are serializable: one writer applies them one after another, in
 *     submission order, each seeing all earlier ones (two ADDs to one counter in one batch both
 *     count).
 *   - Secondary index entries (GSI and LSI) change in the same LMDB transaction as their item.
 *     Indexes are sparse: an item gets an entry only if it has every key attribute of the index.
 *   - Items are stored under an order-preserving key (tbl_key_encode): a hash key's items sort
 *     by range key (numbers numerically, strings and binary bytewise).  Scan order is by a 32-bit
 *     hash of the hash key, then range key; Segment/TotalSegments split that hash space evenly.
 *   - Metadata changes (create, delete, update table, TTL, tags) are durable before the call
 *     returns.  They run on the writer thread between batches, so a data write is ordered
 *     entirely before or after them.
 *
 * Thread rules: every function is thread-safe.  Reads (get, query, scan, describe, list) run on
 * the calling thread in an LMDB read transaction and never wait for the writer or an fsync.
 * Write callbacks run on the writer thread: they must be short and must not wait for another
 * write (no tbl_sync_*, no control-plane call: those wait for the writer thread, a deadlock;
 * they return TR_EINVAL when called there).  Callbacks may call the read functions.
 *
 * Memory: queued writes are admitted against opts.max_pending_bytes (each write counts its
 * req_bytes, or 1 KiB); past that tbl_write_submit / tbl_txn_submit answer TR_ETHROTTLED (the
 * adapter sends ThrottlingException / ProvisionedThroughputExceeded).  A submission into an empty
 * queue is always admitted.  Fix: retry with backoff.
 *
 * Caveats
 *   - LMDB limits keys to 511 bytes.  A stored key longer than that (long string/binary key
 *     values) is kept as its first 479 bytes + SHA-256 of the whole: unique, and LMDB orders
 *     such keys by digest among the ones sharing those 479 bytes (a "fold group").  Query and
 *     Scan still return exact key order for every legal key: bounds and ExclusiveStartKey are
 *     compared on unfolded keys, and a fold group is read whole and sorted by unfolded key
 *     (keeping only what the page can take, so memory stays bounded by the page).  Cost: each
 *     page that reaches a fold group reads all of it (folded entries keep their unfolded key
 *     in the value; ones written before that are parsed: rewrite them to speed up).  Groups
 *     form only among sort key values (table or index) sharing a prefix of ~400 bytes or more.
 *     Partition key values need only equality: tables store one longer than 64 bytes as its
 *     SHA-256 (key format 1), so a long partition key alone never makes a group.  Tables
 *     created before key format 1 (meta without "kf") keep their keys as they are and are read
 *     the same exact way; in them a partition key value of ~460 bytes or more makes the whole
 *     partition one group.  Fix: keep common sort key prefixes shorter than ~400 bytes where
 *     Query speed on large partitions matters (for an old table with long partition keys:
 *     copy it into a new table).
 *   - A GSI added by tbl_table_update is CREATING when the call returns (the table UPDATING)
 *     and is backfilled in the background: the writer thread indexes opts.bf_chunk existing
 *     items per transaction between write batches (writes keep flowing), resumes after a
 *     restart, then makes it ACTIVE.  Query / Scan on a CREATING index answer TR_EVALIDATION;
 *     one index at a time per table is created (TR_ELIMIT).  Items whose value has the wrong
 *     type for the new index key are skipped (not indexed).
 *   - DeleteTable removes the table at once (the name is free for a new table) and its items in
 *     the background, opts.bf_chunk per transaction between write batches, resuming after a
 *     restart.
 *   - ItemCount / TableSizeBytes are exact and live (DynamoDB refreshes them every ~6 hours).
 *   - Provisioned throughput is stored and described, never enforced.
 *
 * Errors (TR_E*, core/err.h), messages are DynamoDB's where the adapter shows them:
 *   TR_ENOTFOUND     table ("Requested resource not found") or index missing
 *   TR_EEXISTS       CreateTable of an existing name ("Table already exists: t")
 *   TR_EINUSE        table/index being changed, deletion protection on
 *   TR_ELIMIT        more than 20 GSIs / 5 LSIs / 50 tags
 *   TR_EVALIDATION   bad key, schema mismatch, item too big, expression runtime errors, ...
 *   TR_ECONDITION    a condition was false ("The conditional request failed")
 *   TR_ETXN_CANCELED transaction canceled; the per-item rc say why
 *   TR_EIDEMPOTENCY  ClientRequestToken reused with different parameters
 *   TR_ETHROTTLED    admission budget exhausted
 *   TR_ECLOSED       engine closing
 *   TR_EIO           LMDB failure (commit, sync, map full: "storage is full")
 */
#ifndef TBL_H
#define TBL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "table/expr.h"
#include "table/item.h"

#define TBL_MAX_NAME 255            /* table and index names: 3..255 of [A-Za-z0-9_.-] */
#define TBL_MAX_GSI 20
#define TBL_MAX_LSI 5
#define TBL_MAX_TAGS 50
#define TBL_MAX_BATCH_GET 100
#define TBL_MAX_BATCH_WRITE 25
#define TBL_MAX_TXN_ITEMS 100
#define TBL_PAGE_BYTES (1024 * 1024) /* Query/Scan page limit, sum of tbl_item_size */
#define TBL_TOKEN_TTL_MS (10 * 60 * 1000)
#define TBL_MAX_TOKEN 36            /* ClientRequestToken length */

enum { TBL_BILLING_PROVISIONED = 0, TBL_BILLING_PAY_PER_REQUEST = 1 };
enum { TBL_PROJ_ALL = 0, TBL_PROJ_KEYS_ONLY = 1, TBL_PROJ_INCLUDE = 2 };
enum { TBL_STATUS_CREATING, TBL_STATUS_ACTIVE, TBL_STATUS_UPDATING, TBL_STATUS_DELETING };
/* ReturnValues */
enum { TBL_RV_NONE, TBL_RV_ALL_OLD, TBL_RV_UPDATED_OLD, TBL_RV_ALL_NEW, TBL_RV_UPDATED_NEW };
/* Write kinds; CHECK is TransactWriteItems' ConditionCheck */
enum { TBL_OP_PUT, TBL_OP_UPDATE, TBL_OP_DELETE, TBL_OP_CHECK };
/* Select */
enum { TBL_SELECT_ALL_ATTRIBUTES, TBL_SELECT_ALL_PROJECTED, TBL_SELECT_SPECIFIC, TBL_SELECT_COUNT };

typedef struct tbl tbl_t;

typedef struct tbl_opts {
    size_t map_size;                /* LMDB map size; 0: 64 GiB (address space, not disk) */
    size_t max_pending_bytes;       /* queued write budget before TR_ETHROTTLED; 0: 64 MiB */
    uint32_t max_batch;             /* writes per LMDB transaction; 0: 4096 */
    uint32_t bf_chunk;              /* items per GSI backfill transaction; 0: 1000 */
    int ttl_interval_ms;            /* TTL sweep period; 0: 1000; < 0: no TTL thread (tests
                                       call tbl_ttl_run) */
    int64_t (*clock_ms)(void *arg); /* wall clock (ms since epoch); NULL: tr_now_ms.  Used for
                                       TTL, creation times, token expiry: tests inject one */
    void *clock_arg;
    int no_sync;                    /* tests only: MDB_NOSYNC (still one txn per batch) */
} tbl_opts_t;

/* ---- metadata ------------------------------------------------------------------------------ */

typedef struct tbl_attrdef {
    char *name;
    int type;                       /* TBL_T_S, TBL_T_N or TBL_T_B */
} tbl_attrdef_t;

typedef struct tbl_tag {
    char *key;
    char *value;
} tbl_tag_t;

typedef struct tbl_index_info {
    char *name;
    int local;                      /* 1: LSI (hash = table hash), 0: GSI */
    char *hash, *range;             /* key attribute names; range NULL if none */
    int projection;                 /* TBL_PROJ_* */
    char **include;                 /* NonKeyAttributes for INCLUDE */
    size_t n_include;
    uint64_t rcu, wcu;              /* GSI provisioned throughput (stored only) */
    /* describe only */
    int status;                     /* TBL_STATUS_* */
    uint64_t item_count, size_bytes;
} tbl_index_info_t;

/* CreateTable input (strings borrowed for the call) and DescribeTable output (everything owned,
 * free with tbl_table_info_free).  Fields marked "out" are ignored on create. */
typedef struct tbl_table_info {
    char *name;
    char *hash, *range;             /* key schema; range NULL for HASH-only tables */
    tbl_attrdef_t *attrs;           /* AttributeDefinitions: exactly the key attributes used by
                                       the table and its indexes */
    size_t n_attrs;
    int billing;                    /* TBL_BILLING_* */
    uint64_t rcu, wcu;              /* PROVISIONED only */
    tbl_index_info_t *indexes;      /* GSIs and LSIs */
    size_t n_indexes;
    tbl_tag_t *tags;
    size_t n_tags;
    int deletion_protection;
    /* out */
    char table_id[37];              /* TableId, a UUID */
    int status;                     /* TBL_STATUS_* */
    int64_t created_ms;
    uint64_t item_count, size_bytes;
    char *ttl_attr;                 /* NULL if TTL was never set */
    int ttl_enabled;
} tbl_table_info_t;

/* UpdateTable.  Every field optional (0/NULL = unchanged).  At most one index change per call,
 * as DynamoDB allows. */
typedef struct tbl_table_update {
    int set_billing;                /* 1: billing/rcu/wcu below apply */
    int billing;
    uint64_t rcu, wcu;
    const tbl_attrdef_t *attrs;     /* definitions of a new GSI's key attributes */
    size_t n_attrs;
    const tbl_index_info_t *create_gsi;   /* CREATING on return, backfilled in the background */
    const char *delete_gsi;
    int set_deletion_protection;
    int deletion_protection;
} tbl_table_update_t;

/* ---- lifetime ------------------------------------------------------------------------------ */

/* Open or create the engine in dir (created if missing; DATA/tables/ in the server), load the
 * table metadata, start the writer and TTL threads.  TR_EIO with LMDB's message on failure. */
int tbl_open(const char *dir, const tbl_opts_t *opts, tbl_t **out, tr_err *err);
/* Refuse new writes (TR_ECLOSED), drain queued ones (their callbacks run), stop the threads,
 * close LMDB.  Accepts NULL.  No other call on db may be running or start. */
void tbl_close(tbl_t *db);

/* ---- control plane (synchronous, durable; never from a write callback) --------------------- */

/* CreateTable.  The table is ACTIVE on return.  TR_EEXISTS, TR_EVALIDATION (names, schema,
 * attribute definitions unused or missing, LSI on a HASH-only table or with another hash key,
 * duplicate index names), TR_ELIMIT.  out (may be NULL) receives the description. */
int tbl_table_create(tbl_t *db, const tbl_table_info_t *def, tbl_table_info_t *out, tr_err *err);
/* DeleteTable: removes the metadata and counters at once (the name is free again) and the
 * items, index and TTL entries in the background.  out (may be NULL) gets the description as
 * it was, status DELETING.  TR_ENOTFOUND, TR_EINUSE (deletion
 * protection). */
int tbl_table_delete(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err);
/* DescribeTable snapshot; free with tbl_table_info_free.  TR_ENOTFOUND. */
int tbl_table_describe(tbl_t *db, const char *name, tbl_table_info_t *out, tr_err *err);
void tbl_table_info_free(tbl_table_info_t *info);
/* UpdateTable; out (may be NULL) gets the new description.  TR_ENOTFOUND (table, or the GSI to
 * delete), TR_EVALIDATION (nothing to change, index name taken: "Attempting to create an index
 * which already exists", attribute type conflict, undefined key attribute), TR_ELIMIT. */
int tbl_table_update(tbl_t *db, const char *name, const tbl_table_update_t *u,
                     tbl_table_info_t *out, tr_err *err);
/* ListTables: names ascending, strictly after `after` (NULL = from the first), at most max.
 * *names: array of malloc'd strings (free each, then the array).  *more set if more follow. */
int tbl_table_list(tbl_t *db, const char *after, size_t max, char ***names, size_t *n, int *more,
                   tr_err *err);
/* Tags: add/overwrite (TR_ELIMIT past 50 in all), remove (absent keys ignored). */
int tbl_table_tags_add(tbl_t *db, const char *name, const tbl_tag_t *tags, size_t n, tr_err *err);
int tbl_table_tags_remove(tbl_t *db, const char *name, char *const *keys, size_t n, tr_err *err);
/* UpdateTimeToLive.  TR_EVALIDATION "TimeToLive is already enabled" / "TimeToLive is already
 * disabled" as DynamoDB.  Enabling applies to writes at once; the existing items' TTL values
 * are indexed in the background (tbl_background_pending), so they start expiring shortly after. */
int tbl_ttl_update(tbl_t *db, const char *name, const char *attr, int enabled, tr_err *err);

/* ---- writes (asynchronous, group-committed) ------------------------------------------------ */

/* One write.  Inputs are borrowed until the callback has run (json refcounts untouched); outputs
 * are filled before it runs and belong to the caller (json_decref them).  Zero-initialise, then
 * set the inputs. */
typedef struct tbl_write {
    int op;                         /* TBL_OP_* */
    const char *table;
    json_t *item;                   /* PUT: the whole item, validated with tbl_item_validate */
    const json_t *key;              /* UPDATE/DELETE/CHECK: exactly the key attributes */
    const tbl_expr_t *update;       /* UPDATE: TBL_EXPR_UPDATE; NULL: no change (an UpdateItem
                                       without expression creates the item if absent; one
                                       that only REMOVEs / DELETEs does not) */
    const tbl_expr_t *cond;         /* optional TBL_EXPR_CONDITION (required for CHECK) */
    int return_values;              /* TBL_RV_*; PUT/DELETE: NONE or ALL_OLD */
    int return_old_on_fail;         /* ReturnValuesOnConditionCheckFailure = ALL_OLD */
    size_t req_bytes;               /* admission cost; 0: 1 KiB */
    /* out */
    int rc;                         /* 0, TR_ECONDITION, TR_EVALIDATION, TR_ENOTFOUND, TR_EIO ...
                                       in a canceled transaction: 0 means reason "None" */
    tr_err err;                     /* message when rc != 0 */
    json_t *attrs;                  /* ReturnValues' Attributes, NULL if none or empty */
    json_t *old_item;               /* rc == TR_ECONDITION and return_old_on_fail: the item as it
                                       was (NULL if it did not exist) */
    size_t old_size, new_size;      /* tbl_item_size of the item before / after (0: absent),
                                       for ConsumedCapacity */
} tbl_write_t;

/* Runs once on the writer thread after every write of the submission is durable or has failed
 * (rc: 0 when all succeeded, else the first failing write's rc, or the transaction's). */
typedef void (*tbl_done_cb)(void *arg, int rc);

/* Queue n writes (n = 1 for PutItem / UpdateItem / DeleteItem, up to 25 for BatchWriteItem;
 * more are accepted); all are durable before cb.
 * Validated as a whole: every check that needs no stored item (table, key schema, item size, a
 * put's index key types, sizes and emptiness) is made for all n writes before any is queued,
 * and again on the writer thread before any is applied (the table may have been deleted or have
 * gained an index meanwhile): if one write fails them, none is written and every w[i].rc is that
 * write's error.  Past that, each write succeeds or fails alone (a condition, an update's
 * runtime error).
 * Returns 0 when queued (cb WILL run), or an error without queuing (cb will NOT run):
 * TR_EINVAL (bad arguments), TR_ENOTFOUND (a table is missing), TR_EVALIDATION (a key does not
 * match its schema, a bad index key value: the message names it), TR_ETHROTTLED, TR_ECLOSED.
 * Two writes of one key in one submission are applied in order (BatchWriteItem's "Provided list
 * of item keys contains duplicates" is the adapter's to refuse). */
int tbl_write_submit(tbl_t *db, tbl_write_t *w, size_t n, tbl_done_cb cb, void *arg, tr_err *err);

/* TransactWriteItems.  All writes or none, in ONE LMDB write transaction. */
typedef struct tbl_txn {
    tbl_write_t *w;                 /* 1..100 writes (PUT, UPDATE, DELETE, CHECK) */
    size_t n;
    const char *token;              /* ClientRequestToken or NULL */
    uint8_t digest[32];             /* with a token: tbl_request_digest of the request */
    /* out */
    int rc;                         /* 0, TR_ETXN_CANCELED, TR_EIDEMPOTENCY, TR_EVALIDATION */
    tr_err err;
    int replayed;                   /* 1: token seen with this digest in the last 10 minutes;
                                       nothing was applied again (w[].attrs stay NULL) */
} tbl_txn_t;

/* Queue a transaction.  Checks at submit (error without queuing, cb not run): TR_EINVAL,
 * TR_EVALIDATION (two writes on one item: "Transaction request cannot include multiple
 * operations on one item"; a missing, empty or too long key value; an empty index key value in
 * a Put), TR_ENOTFOUND, TR_ETHROTTLED, TR_ECLOSED.  A key attribute of the wrong type, or a
 * wrong type or size of an index key, cancels it on the writer (reason TR_EVALIDATION), as
 * DynamoDB does; an update that gives an index key an empty value refuses it whole instead
 * (t->rc = TR_EVALIDATION with the message, nothing written), as DynamoDB's top-level error.
 * On the writer thread, every condition is evaluated first; if any fails (or an update fails at
 * run time) nothing is written, t->rc = TR_ETXN_CANCELED and each w[i].rc is the reason for item
 * i: 0 ("None"), TR_ECONDITION (+ old_item if asked) or TR_EVALIDATION.  Tokens are remembered
 * (durably) for TBL_TOKEN_TTL_MS after a transaction commits: the same token and digest again
 * gives rc 0 with replayed = 1, a different digest TR_EIDEMPOTENCY.  cb gets t->rc. */
int tbl_txn_submit(tbl_t *db, tbl_txn_t *t, tbl_done_cb cb, void *arg, tr_err *err);

/* SHA-256 of the compact, key-sorted JSON text of v (the request minus ClientRequestToken and
 * ReturnConsumedCapacity...): the idempotency fingerprint. */
void tbl_request_digest(const json_t *v, uint8_t out[32]);

/* ---- reads (calling thread, never wait) ---------------------------------------------------- */

/* One GetItem. */
typedef struct tbl_get {
    const char *table;
    const json_t *key;              /* exactly the key attributes */
    const tbl_expr_t *projection;   /* optional TBL_EXPR_PROJECTION */
    int want_raw;                   /* 1 and no projection: return the stored JSON text */
    /* out */
    int rc;                         /* 0 (item may still be absent), TR_ENOTFOUND (table),
                                       TR_EVALIDATION (key) */
    tr_err err;
    json_t *item;                   /* new reference, NULL if absent (or want_raw) */
    char *raw;                      /* want_raw: malloc'd compact JSON text of the item in wire
                                       form, NUL-terminated; NULL if absent.  Caller frees */
    size_t raw_len;
    size_t size;                    /* tbl_item_size (0: absent), for ConsumedCapacity */
} tbl_get_t;

/* GetItem (n = 1), BatchGetItem and TransactGetItems: all n reads from ONE LMDB snapshot, so a
 * transaction is seen entirely or not at all.  Returns 0 when every g[i].rc is 0, else the first
 * failing g[i].rc (the others are still done). */
int tbl_get_many(tbl_t *db, tbl_get_t *g, size_t n, tr_err *err);

/* Query and Scan, on a table or an index.  Zero-initialise, set inputs. */
typedef struct tbl_query {
    const char *table;
    const char *index;              /* NULL: the table */
    int scan;                       /* 0: Query, 1: Scan */
    /* Query key condition: either a parsed TBL_EXPR_KEY_CONDITION (resolved by the engine against
     * the table/index key names) or, when keycond_expr is NULL, kc filled by the caller. */
    const tbl_expr_t *keycond_expr;
    tbl_keycond_t kc;
    const tbl_expr_t *filter; /* applied after the page is read */
    const tbl_expr_t *projection; /* TBL_SELECT_SPECIFIC */
    int select; /* TBL_SELECT_*; ALL_ATTRIBUTES on an LSI whose projection
                                       is not ALL fetches from the table; on such a GSI it is
                                       TR_EVALIDATION, as DynamoDB */
    int backward; /* ScanIndexForward = false */
    uint32_t limit; /* items read (before the filter); 0: no limit */
    const json_t *start_key; /* ExclusiveStartKey or NULL */
    uint32_t segment, total_segments; /* Scan; total 0: not segmented */
    /* out */
    json_t *items; /* array (new reference) of items after filter and
                                       projection; NULL for SELECT_COUNT */
    uint32_t count; /* items after the filter */
    uint32_t scanned; /* items read */
    size_t scanned_bytes; /* sum of tbl_item_size of read items, for ConsumedCapacity */
    json_t *last_key; /* LastEvaluatedKey (new reference) or NULL on the last page */
    tr_err err;
} tbl_query_t;

/* Run one page: reads stop after `limit` items or once TBL_PAGE_BYTES of item data have been
 * read (the item crossing the limit is included), whichever first; last_key is set then.
 * TR_ENOTFOUND (table, "Requested resource not found"), TR_EVALIDATION (no such index: "The
 * table does not have the specified index: x", key condition errors, start key not matching
 * the schema, bad segment).  On error nothing is returned (outputs NULL).  Free outputs with
 * tbl_query_free. */
int tbl_query(tbl_t *db, tbl_query_t *q, tr_err *err);
void tbl_query_free(tbl_query_t *q); /* decref items/last_key; accepts NULL */

/* Key attribute names of a table (index NULL) or index, into caller buffers of TBL_MAX_NAME+1
 * (range[0] = 0 when none).  For adapters that resolve key conditions themselves. */
int tbl_key_names(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                  tr_err *err);
/* The same, with the key types (TBL_T_S / N / B; *rtype -1 when there is no range key).
 * htype / rtype may be NULL. */
int tbl_key_schema(tbl_t *db, const char *table, const char *index, char *hash, char *range,
                   int *htype, int *rtype, tr_err *err);

/* ---- TTL ----------------------------------------------------------------------------------- */

/* One TTL sweep now (the TTL thread calls this every ttl_interval_ms): deletes, through the
 * writer thread and with index upkeep, up to `max` items (0: 10000) whose TTL attribute is a
 * number of epoch seconds <= clock (and not more than 5 years in the past, as DynamoDB).
 * Returns the number deleted (>= 0) or TR_E*.  Not from a write callback. */
int tbl_ttl_run(tbl_t *db, size_t max);

/* 1 while background work is left (a GSI backfilling, a deleted table's items), else 0.  An
 * LMDB failure in that work is logged and retried a second later. */
int tbl_background_pending(tbl_t *db);

/* ---- synchronous convenience API (tests and tools: no server path uses it) ----------------- */

/* A table handle: the engine plus a table name, checked at open.  Calls below submit to the
 * writer thread and wait for the callback, so they return only once durable, with exactly the
 * semantics of the asynchronous calls.  Never from a write callback (TR_EINVAL).  A handle is
 * usable from any thread; it stays valid across a DeleteTable (calls then give TR_ENOTFOUND). */
typedef struct tbl_handle tbl_handle_t;
int tbl_handle_open(tbl_t *db, const char *table, tbl_handle_t **out, tr_err *err);
void tbl_handle_close(tbl_handle_t *h); /* accepts NULL */

/* Submit and wait: returns the callback's rc; w[] / t outputs as in the async calls. */
int tbl_sync_write(tbl_t *db, tbl_write_t *w, size_t n, tr_err *err);
int tbl_sync_txn(tbl_t *db, tbl_txn_t *t, tr_err *err);

/* PutItem; cond may be NULL; *old (may be NULL) receives the previous item (new ref) or NULL.
 * TR_ECONDITION when cond is false. */
int tbl_sync_put(tbl_handle_t *h, json_t *item, const tbl_expr_t *cond, json_t **old, tr_err *err);
/* GetItem; *item receives a new reference or NULL when absent (rc 0 either way). */
int tbl_sync_get(tbl_handle_t *h, const json_t *key, json_t **item, tr_err *err);
/* UpdateItem; *attrs (may be NULL) receives what return_values asks for, or NULL. */
int tbl_sync_update(tbl_handle_t *h, const json_t *key, const tbl_expr_t *update,
                    const tbl_expr_t *cond, int return_values, json_t **attrs, tr_err *err);
/* DeleteItem; *old (may be NULL) receives the deleted item or NULL. */
int tbl_sync_delete(tbl_handle_t *h, const json_t *key, const tbl_expr_t *cond, json_t **old,
                    tr_err *err);

/* ---- helpers ------------------------------------------------------------------------------- */

/* Storage key of a primary key (hash [+ range]) as a key format 0 table stores it, without the
 * 5-byte table/space prefix (see "On-disk format" in tbl.c): out must hold 512 bytes; returns
 * the length, or 0 when a value is not a key value.  Exposed for tests and tools. */
size_t tbl_key_bytes(const json_t *hash_av, const json_t *range_av, uint8_t *out);
/* Scan segment (0..total-1) an item with this hash key AV belongs to. */
uint32_t tbl_key_segment(const json_t *hash_av, uint32_t total);

const char *tbl_status_name(int status); /* "ACTIVE", ... */

#endif
