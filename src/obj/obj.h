/* SPDX-License-Identifier: Apache-2.0
 *
 * obj.h -- the object engine: buckets of versioned objects, bodies in files, metadata in LMDB.
 *
 * A library first (issue #11): the S3 adapter and native functions drive it through this header
 * only, with S3's semantics but no S3 names (error codes are TR_E*; the adapter maps them).
 *
 * Layout under the directory given to obj_open (bodies up to obj_opts_t.inline_max bytes are kept
 * inside their version record instead of a file):
 *     DIR/meta/data.mdb        LMDB: buckets, their configuration blobs, versions (obj.c)
 *     DIR/tmp/<body id>        bodies being written, or committed but not yet moved into place
 *     DIR/objects/<2 hex>/<body id>   committed bodies (32 hex digits; one file per version)
 *
 * Invariants:
 * - Durable acknowledgement.  obj_put_commit returns 0 only after the body was fdatasync'ed in
 *   tmp/, the tmp/ directory fsync'ed and the metadata committed by LMDB (synced).  Then the body
 *   is renamed into objects/ (not synced: a crash leaves it under one of its two names).  A crash
 *   before the metadata commit leaves no visible version; its body stays in tmp/ and obj_open
 *   removes it.  A crash after the commit may leave the body in tmp/; obj_open moves it into
 *   place (a reader meanwhile finds it in tmp/ as well).
 * - Bodies of removed versions are listed in the same transaction that removes the version
 *   ("gc" records) and unlinked after the commit; obj_open finishes what a crash interrupted.
 *   Nothing is orphaned.
 * - Read-after-write: a call that returned 0 is seen by every call that starts after it.
 * - Versions are immutable.  Version ids are 32 hex digits (or "null", see below).
 * - Versioning as S3: a bucket is unversioned (never enabled), Enabled or Suspended.
 *     unversioned  a PUT replaces the "null" version; DELETE removes it (no delete marker)
 *     Enabled      a PUT adds a version with a new id; DELETE without a version id adds a delete
 *                  marker with a new id; a "null" version from before stays, noncurrent
 *     Suspended    a PUT replaces the "null" version wherever it is in the stack and becomes
 *                  current; DELETE without a version id replaces the "null" version with a
 *                  delete marker whose id is "null"
 *     any          DELETE with a version id removes exactly that version (or delete marker)
 *                  permanently; the next newest becomes current.
 * - Keys: 1..1024 bytes, no NUL byte (S3 keys are UTF-8 text; the adapter checks UTF-8).  Listing
 *   is in byte order, as S3's.  Caveat: keys longer than 498 bytes are stored folded (first 466
 *   bytes + a digest), so two such keys sharing their first 466 bytes list in digest order.
 *   Fix (later): sort such fold groups when listing, as src/table does.
 * - Bounded memory: bodies stream through caller buffers and the kernel (obj_get gives an fd,
 *   offset and length for sendfile); no call holds a body in memory.  A list page holds at most
 *   1000 entries.
 *
 * Thread rules: an obj_t is used from any number of threads at once.  Commits are group
 *   committed: concurrent writers share one LMDB transaction and one set of fsyncs (the first
 *   waiting writer commits for all).  A writer (obj_put_t) or reader (obj_reader_t) belongs to
 *   one thread at a time.  Close only after every writer, reader and call has finished.
 *
 * Errors (negative TR_E*, a message in the tr_err):
 *     TR_EINVAL       bad argument (bucket name, key, version id, token, options)
 *     TR_ENOBUCKET    no such bucket
 *     TR_ENOTFOUND    no such key (or its current version is a delete marker); no such upload
 *                     (obj_mpu_*)
 *     TR_ENOVERSION   no such version of the key
 *     TR_EEXISTS      bucket exists (obj_bucket_create)
 *     TR_EINUSE       bucket not empty (obj_bucket_delete)
 *     TR_ECONDITION   a precondition (If-Match / If-None-Match) is false
 *     TR_ERANGE       range not satisfiable
 *     TR_ECORRUPT     body does not match the expected MD5 (nothing stored)
 *     TR_EAGAIN       multipart completion raced with a part uploaded again or an abort: retry
 *     TR_EIO          disk or LMDB failure (nothing acknowledged; see the message)
 *     TR_ENOMEM       metadata map full
 */
#ifndef OBJ_H
#define OBJ_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define OBJ_KEY_MAX 1024
#define OBJ_VID_LEN 32 /* version id, hex digits (or "null") */
#define OBJ_LIST_MAX 1000

typedef struct obj obj_t;

typedef struct obj_opts {
    size_t map_size; /* LMDB map size in bytes; 0: 64 GiB */
    int inline_max;  /* bodies up to this many bytes are stored inside their metadata record
                        (one commit makes them durable, no file); 0: 8192; < 0: never */
    int no_sync;     /* 1: no fsync at all (tests and benchmarks of non-durable paths only: an
                        acknowledged write may be lost in a crash of the machine) */
} obj_opts_t;

/* Open (creating) the engine in dir; collects what a crash left (tmp/ bodies, gc records).
 * opts may be NULL.  *out receives the handle (obj_close frees it).  TR_EIO, TR_EINVAL. */
int obj_open(const char *dir, const obj_opts_t *opts, obj_t **out, tr_err *err);
/* Close and free; NULL is accepted. */
void obj_close(obj_t *o);

/* ==== buckets ================================================================================ */

enum { OBJ_VERS_NONE = 0, OBJ_VERS_ENABLED = 1, OBJ_VERS_SUSPENDED = 2 };

/* Configuration blobs stored and returned as opaque text (the adapter validates them). */
typedef enum obj_conf {
    OBJ_CONF_TAGS = 1,
    OBJ_CONF_POLICY,
    OBJ_CONF_LIFECYCLE,
    OBJ_CONF_CORS,
    OBJ_CONF_NOTIFICATION,
    OBJ_CONF_REPLICATION,
    OBJ_CONF_LOCATION, /* set by obj_bucket_create */
    OBJ_CONF_MAX_
} obj_conf_t;

typedef struct obj_bucket_info {
    char name[64];
    int64_t created_ms;
    int versioning; /* OBJ_VERS_* */
} obj_bucket_info_t;

/* 0 if name follows S3's bucket naming rules (3-63 of a-z 0-9 . -, starts and ends with a letter
 * or digit, no "..", not an IPv4 address, none of the reserved prefixes/suffixes); else
 * TR_EINVAL with the rule broken. */
int obj_bucket_name_check(const char *name, tr_err *err);
/* Create bucket name; location (may be NULL or "") is stored as OBJ_CONF_LOCATION.
 * TR_EINVAL (name), TR_EEXISTS. */
int obj_bucket_create(obj_t *o, const char *name, const char *location, tr_err *err);
/* Delete an empty bucket (no version, no delete marker) and its configuration.  TR_ENOBUCKET,
 * TR_EINUSE. */
int obj_bucket_delete(obj_t *o, const char *name, tr_err *err);
/* info may be NULL (existence check).  TR_ENOBUCKET. */
int obj_bucket_head(obj_t *o, const char *name, obj_bucket_info_t *info, tr_err *err);
/* All buckets in name order: *out (malloc'ed array, caller frees) and *n. */
int obj_bucket_list(obj_t *o, obj_bucket_info_t **out, size_t *n, tr_err *err);
/* Set versioning to OBJ_VERS_ENABLED or OBJ_VERS_SUSPENDED (never back to NONE, as S3). */
int obj_versioning_set(obj_t *o, const char *bucket, int state, tr_err *err);
int obj_versioning_get(obj_t *o, const char *bucket, int *state, tr_err *err);
/* Store text (n bytes, up to 1 MiB) as the bucket's configuration `kind`; text NULL deletes it
 * (deleting a missing one is success). */
int obj_conf_set(obj_t *o, const char *bucket, obj_conf_t kind, const char *text, size_t n,
                 tr_err *err);
/* *text receives a malloc'ed NUL-terminated copy (caller frees), *n its length; TR_ENOTFOUND
 * when the bucket has none of that kind. */
int obj_conf_get(obj_t *o, const char *bucket, obj_conf_t kind, char **text, size_t *n,
                 tr_err *err);

/* ==== object metadata ======================================================================== */

typedef struct obj_kv {
    const char *name, *value;
} obj_kv_t;

/* One version as stored.  Allocated in one block (strings point inside it): obj_info_free.
 * Absent strings are "" (never NULL). */
typedef struct obj_info {
    const char *key;
    const char *version_id; /* 32 hex, or "null" */
    const char *etag;       /* MD5 hex of the body, no quotes ("" for a delete marker) */
    const char *content_type, *content_encoding, *cache_control, *content_disposition,
        *content_language, *expires, *storage_class;
    const char *tags;      /* opaque text as given (e.g. "k=v&k2=v2") */
    const char *checksums; /* opaque text as given */
    const char *meta;      /* user metadata: meta_n pairs "name\0value\0" */
    size_t meta_len;       /* bytes of meta */
    size_t meta_n;
    uint64_t size;
    int64_t mtime_ms;
    uint64_t seq;      /* engine order of versions (larger is newer) */
    int delete_marker; /* 1: a delete marker */
    int is_latest;     /* 1: the current version of its key */
} obj_info_t;

void obj_info_free(obj_info_t *i);

/* ==== put (streaming) ======================================================================== */

typedef struct obj_put_opts {
    const char *content_type, *content_encoding, *cache_control, *content_disposition,
        *content_language, *expires, *storage_class, *tags, *checksums; /* NULL: "" */
    const obj_kv_t *meta; /* user metadata, nmeta pairs (names without x-amz-meta-) */
    size_t nmeta;
    const char *if_match;      /* commit only if the current version's ETag is this ("*": any) */
    const char *if_none_match; /* "*": commit only if the key has no current version */
    const uint8_t *content_md5; /* 16 bytes: the body must hash to it (else TR_ECORRUPT) */
    int64_t expect_size;        /* >= 0: the body must be exactly this long (else TR_EINVAL) */
} obj_put_opts_t;

typedef struct obj_put obj_put_t;

typedef struct obj_put_result {
    char version_id[OBJ_VID_LEN + 1];
    char etag[48]; /* MD5 hex, or for a multipart object MD5-of-MD5s hex + "-" + parts */
    uint64_t size;
    int64_t mtime_ms;
} obj_put_result_t;

/* Start writing a new version of bucket/key.  opts may be NULL; its strings are copied.
 * TR_EINVAL, TR_ENOBUCKET, TR_EIO.  *out is the writer: finish it with obj_put_commit or
 * obj_put_abort (each frees it). */
int obj_put_begin(obj_t *o, const char *bucket, const char *key, const obj_put_opts_t *opts,
                  obj_put_t **out, tr_err *err);
/* Append n bytes, hashed; the first inline_max bytes are kept in memory (a body that stays that
 * small is stored inline), the rest go to the body file.  TR_EIO. */
int obj_put_write(obj_put_t *p, const void *buf, size_t n, tr_err *err);
/* Append len bytes read from fd at off, through one 64 KiB buffer (the MD5 needs the bytes).
 * TR_EIO (read or write failed, or fd shorter than off + len). */
int obj_put_copy_fd(obj_put_t *p, int fd, uint64_t off, uint64_t len, tr_err *err);
/* Make the version durable and current (see Invariants), evaluating the preconditions atomically
 * with the commit.  res may be NULL.  Frees p whatever the result; on failure nothing is stored.
 * TR_ECONDITION, TR_ENOTFOUND (If-Match on a missing key), TR_ECORRUPT, TR_EINVAL (size),
 * TR_ENOBUCKET (deleted meanwhile), TR_EIO. */
int obj_put_commit(obj_put_t *p, obj_put_result_t *res, tr_err *err);
/* Drop the writer and its partial body.  NULL is accepted. */
void obj_put_abort(obj_put_t *p);

/* ==== get / head ============================================================================= */

enum { OBJ_RANGE_NONE = 0, OBJ_RANGE_FROM_TO, OBJ_RANGE_FROM, OBJ_RANGE_SUFFIX };

typedef struct obj_range {
    int kind;              /* OBJ_RANGE_*: bytes=a-b, bytes=a-, bytes=-n */
    uint64_t first, last; /* FROM_TO: first..last inclusive (last clamped to size-1); FROM: first;
                              SUFFIX: last = n */
} obj_range_t;

typedef struct obj_get_opts {
    const char *version_id; /* NULL: the current version */
    obj_range_t range;
} obj_get_opts_t;

/* An open version: the body is fd[offset, offset+length), or -- a small body stored inline,
 * fd -1 -- mem[0, length) (a copy owned by the reader, at most obj_opts_t.inline_max bytes).
 * Both stay valid (even if the version is deleted meanwhile) until obj_reader_close. */
typedef struct obj_reader {
    obj_info_t *info;
    int fd;
    const void *mem;
    uint64_t offset, length;
    int ranged; /* 1: a range was applied (the adapter answers 206) */
    uint64_t pos; /* obj_reader_read's position within [0, length) */
} obj_reader_t;

/* Open bucket/key (opts may be NULL).  TR_ENOBUCKET, TR_ENOTFOUND, TR_ENOVERSION, TR_ERANGE,
 * TR_EINVAL.  When the version asked for (or the current one) is a delete marker the call fails
 * -- TR_ENOTFOUND without a version id, TR_EINVAL with one (S3 answers 405) -- and sets
 * *delete_marker to 1 (may be NULL). */
int obj_get(obj_t *o, const char *bucket, const char *key, const obj_get_opts_t *opts,
            obj_reader_t **out, int *delete_marker, tr_err *err);
/* Read up to n bytes at the reader's position: returns bytes read (0 at the end) or TR_EIO. */
long obj_reader_read(obj_reader_t *r, void *buf, size_t n, tr_err *err);
void obj_reader_close(obj_reader_t *r);

/* Metadata of a version (version_id NULL: current).  Unlike obj_get, a delete marker asked by
 * version id is returned (info->delete_marker = 1); the current one gives TR_ENOTFOUND with
 * *delete_marker = 1.  *out: obj_info_free. */
int obj_head(obj_t *o, const char *bucket, const char *key, const char *version_id,
             obj_info_t **out, int *delete_marker, tr_err *err);

/* ==== delete ================================================================================= */

typedef struct obj_del_result {
    int delete_marker; /* 1: a delete marker was created or removed */
    char version_id[OBJ_VID_LEN + 1]; /* the marker created, or the version removed; "" none */
} obj_del_result_t;

/* Delete as S3 (see Invariants).  Deleting a missing key or version succeeds (S3 answers 204)
 * with version_id "" -- except TR_EINVAL for a malformed version id.  res may be NULL. */
int obj_delete(obj_t *o, const char *bucket, const char *key, const char *version_id,
               obj_del_result_t *res, tr_err *err);

typedef struct obj_del_item {
    const char *key, *version_id; /* in */
    int rc; /* out: 0 or TR_E* */
    obj_del_result_t res; /* out */
    char msg[128]; /* out: message when rc */
} obj_del_item_t;
/* Delete n items (each as obj_delete; each its own result).  Returns 0 unless the bucket is
 * missing (TR_ENOBUCKET). */
int obj_delete_many(obj_t *o, const char *bucket, obj_del_item_t *items, size_t n, tr_err *err);

/* ==== copy =================================================================================== */

/* Copy src_bucket/src_key (version src_vid, NULL: current) to dst_bucket/dst_key, streamed
 * through a 64 KiB buffer (obj_put_copy_fd).  opts NULL keeps the source's metadata (COPY
 * directive); given, it replaces it (REPLACE) -- its preconditions apply to the destination.
 * TR_ENOBUCKET, TR_ENOTFOUND, TR_ENOVERSION, TR_ECONDITION, TR_EIO. */
int obj_copy(obj_t *o, const char *src_bucket, const char *src_key, const char *src_vid,
             const char *dst_bucket, const char *dst_key, const obj_put_opts_t *opts,
             obj_put_result_t *res, tr_err *err);

/* ==== multipart uploads ===================================================================== */

#define OBJ_MPU_MIN_PART (5u << 20) /* every part but the last at least this many bytes */
#define OBJ_MPU_MAX_PART 10000      /* part numbers 1..10000 */

enum { OBJ_MPU_OK = 0, OBJ_MPU_BAD_PART, OBJ_MPU_BAD_ORDER, OBJ_MPU_TOO_SMALL };

typedef struct obj_part_info {
    int number;
    char etag[33]; /* MD5 hex of the part, no quotes */
    uint64_t size;
    int64_t mtime_ms;
} obj_part_info_t;

typedef struct obj_upload_info {
    char upload_id[33];
    char *key; /* malloc'ed (obj_upload_list_free) */
    int64_t initiated_ms;
} obj_upload_info_t;

/* Start a multipart upload of bucket/key: opts (may be NULL) give the final object's metadata
 * (its preconditions are ignored here: give them to obj_mpu_complete).  upload_id receives 32 hex
 * digits.  TR_EINVAL, TR_ENOBUCKET, TR_EIO. */
int obj_mpu_create(obj_t *o, const char *bucket, const char *key, const obj_put_opts_t *opts,
                   char upload_id[33], tr_err *err);
/* A writer for part `number` (1..10000) of the upload: obj_put_write / obj_put_copy_fd, then
 * obj_put_commit (res->etag: the part's MD5; version_id "") or obj_put_abort.  A part uploaded
 * again replaces the earlier one.  Parts always go to a file (never inline).  TR_EINVAL,
 * TR_ENOBUCKET, TR_ENOTFOUND (no such upload, also at commit if aborted meanwhile). */
int obj_mpu_part_begin(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                       int number, obj_put_t **out, tr_err *err);
/* Complete the upload with the n parts listed (number and ETag, in ascending order): the object
 * is their concatenation (copied into one new body, streamed), its ETag the MD5 of the parts'
 * binary MD5s + "-" + n, and the upload with all its parts is removed in the same commit.
 * cond (may be NULL) gives If-Match / If-None-Match for the object, evaluated at the commit.
 * Errors: TR_EINVAL with *why (may be NULL) OBJ_MPU_BAD_PART (not uploaded, or ETag differs),
 * OBJ_MPU_BAD_ORDER, OBJ_MPU_TOO_SMALL (a part but the last under OBJ_MPU_MIN_PART), or an empty
 * list; TR_ENOTFOUND (no such upload), TR_ENOBUCKET, TR_ECONDITION, TR_EIO. */
int obj_mpu_complete(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                     const obj_part_info_t *parts, size_t n, const obj_put_opts_t *cond,
                     obj_put_result_t *res, int *why, tr_err *err);
/* Remove the upload and its parts.  TR_ENOTFOUND (no such upload), TR_ENOBUCKET. */
int obj_mpu_abort(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                  tr_err *err);
/* Parts with number > marker, at most max (<= 0 or > 1000: 1000), in order: *out (malloc'ed,
 * caller frees), *n, *truncated.  TR_ENOTFOUND (no such upload), TR_ENOBUCKET. */
int obj_mpu_list_parts(obj_t *o, const char *bucket, const char *key, const char *upload_id,
                       int marker, int max, obj_part_info_t **out, size_t *n, int *truncated,
                       tr_err *err);
/* Uploads in progress whose key starts with prefix (NULL: all), at most 1000, in upload order
 * within the bucket (not key order): *out, *n (obj_upload_list_free).  TR_ENOBUCKET. */
int obj_mpu_list_uploads(obj_t *o, const char *bucket, const char *prefix, obj_upload_info_t **out,
                         size_t *n, tr_err *err);
void obj_upload_list_free(obj_upload_info_t *u, size_t n);

/* ==== listing ================================================================================ */

typedef struct obj_list_opts {
    const char *prefix; /* NULL or "": all */
    const char *delimiter; /* NULL or "": none */
    const char *start_after; /* v2 start-after / v1 marker / versions key-marker */
    const char *token; /* continuation token from a previous page (overrides start_after) */
    const char *version_id_marker; /* versions only, with start_after as key-marker */
    int max_keys; /* 0..1000; <0 or >1000: 1000 (S3 caps at 1000) */
} obj_list_opts_t;

typedef struct obj_list_page {
    obj_info_t **items; /* n entries, key order (versions: newest first within a key) */
    size_t n;
    char **prefixes; /* np common prefixes, in order */
    size_t np;
    int truncated;
    char *next_token; /* when truncated: continuation token (opaque text) */
    /* when truncated: the last key or common prefix (V1 NextMarker, versions NextKeyMarker) */
    char *next_key_marker;
    char *next_version_id_marker; /* versions, when truncated */
} obj_list_page_t;

/* ListObjectsV2 / ListObjects: current versions that are not delete markers.  max_keys counts
 * items plus common prefixes, as S3.  *out: obj_list_page_free.  TR_ENOBUCKET, TR_EINVAL (bad
 * token). */
int obj_list(obj_t *o, const char *bucket, const obj_list_opts_t *q, obj_list_page_t **out,
             tr_err *err);
/* ListObjectVersions: every version and delete marker; start_after is key-marker and
 * version_id_marker applies to it (as S3: versions of that key older than the marker, then the
 * keys after it).  TR_ENOBUCKET, TR_EINVAL. */
int obj_list_versions(obj_t *o, const char *bucket, const obj_list_opts_t *q, obj_list_page_t **out,
                      tr_err *err);
void obj_list_page_free(obj_list_page_t *p);

/* Continuation tokens: "k" or "p" then the hex of a key or common prefix.  Decode into kind
 * ('k'/'p') and a malloc'ed key (*key, *n); TR_EINVAL if malformed. */
int obj_token_decode(const char *tok, int *kind, char **key, size_t *n);

#endif
