/* SPDX-License-Identifier: Apache-2.0
 *
 * obj_int.h -- what the object engine's files share (not API: see obj.h).
 */
#ifndef OBJ_INT_H
#define OBJ_INT_H

#include <lmdb.h>
#include <pthread.h>

#include "obj/obj.h"

/* Fields of a version record, in stored order (obj.c, "On-disk format"). */
enum {
    OBJ__F_KEY,
    OBJ__F_VID,
    OBJ__F_ETAG,
    OBJ__F_CTYPE,
    OBJ__F_CENC,
    OBJ__F_CCTL,
    OBJ__F_CDISP,
    OBJ__F_CLANG,
    OBJ__F_EXPIRES,
    OBJ__F_SCLASS,
    OBJ__F_TAGS,
    OBJ__F_CSUMS,
    OBJ__F_META,
    OBJ__F_N
};

#define OBJ__REC_HDR 48
#define OBJ__FL_DM 1   /* delete marker */
#define OBJ__FL_NULL 2 /* the "null" version */
#define OBJ__FL_INLINE 4 /* the body follows the fields in the record (no file) */
#define OBJ__INLINE_DEFAULT 8192
#define OBJ__SK_MAX 498   /* stored key bytes at most: 4 + 498 + 1 + 8 = 511, LMDB's key limit */
#define OBJ__SK_FOLD 466  /* a folded key keeps this many bytes, then 32 hex of its SHA-256 */

/* A write to apply in the group commit (obj.c): apply runs on the committing thread inside a
 * nested transaction; it may set add_body (a body in tmp/ to move into place after the commit)
 * and add bodies to gc (removed versions' or parts' bodies to unlink after the commit:
 * obj__job_gc; the list is freed by obj__submit). */
typedef struct obj__job obj__job_t;
struct obj__job {
    int (*apply)(obj_t *o, MDB_txn *txn, obj__job_t *j);
    void *arg;
    tr_err *err;
    uint8_t add_body[16];
    int has_add;
    uint8_t (*gc)[16];
    size_t ngc, gccap;
    int rc, done;
    obj__job_t *next;
};

struct obj {
    char *dir;
    MDB_env *env;
    MDB_dbi db_b, db_c, db_v, db_g, db_n, db_body, db_u;
    pthread_mutex_t mu; /* the queue, leader flag, gc_done */
    pthread_cond_t cv;
    obj__job_t *qh, *qt;
    int leader;
    int no_sync;        /* obj_opts_t.no_sync */
    size_t inline_max;  /* bodies up to this size live in the record; 0: none */
    uint64_t seq;       /* next version sequence (committing thread only) */
    uint32_t next_bid;  /* next bucket id (committing thread only) */
    uint8_t (*gc_done)[16]; /* bodies unlinked whose gc records the next commit removes */
    size_t gc_n, gc_cap;
};

typedef struct obj__bucket {
    uint32_t bid;
    int versioning;
    int64_t created_ms;
} obj__bucket_t;

/* Test hook: called at named points of a write ("put:synced", "commit:done",
 * "delete:committed"); a test's child process _exits there to simulate a crash. */
extern void (*obj__fault)(const char *where);

int obj__submit(obj_t *o, obj__job_t *j);
void obj__job_gc(obj__job_t *j, const uint8_t id[16]);
int obj__bucket_get(obj_t *o, MDB_txn *txn, const char *name, obj__bucket_t *b, tr_err *err);
int obj__key_check(const char *key, tr_err *err);
size_t obj__sk(const char *key, size_t n, uint8_t *out);
int obj__mdb_err(tr_err *err, int rc, const char *what);
void obj__body_path(const obj_t *o, const uint8_t id[16], int tmp, char *out, size_t cap);
void obj__hex(const uint8_t *p, size_t n, char *out);
obj_info_t *obj__info_decode(const void *v, size_t n);
int obj__rtxn(obj_t *o, MDB_txn **txn, tr_err *err);

#endif
