/*
 * kinesis_int.h -- private to src/api and its tests: the two readers of PutRecord(s) bodies.
 *
 * kinesis.c reads PutRecord and PutRecords bodies with a hand-written scanner first (the fast
 * path: no JSON tree) and falls back to the general path (jansson, every AWS validation) when
 * the scanner is not sure.  The contract between them: whatever the fast path accepts, the
 * general path accepts too, with the same stream and the same records.  These hooks run either
 * reader alone on a body, writing nothing, so tests/fuzz/fuzz_kinesis_putrecords.c can check
 * that contract (differential fuzzing).  Not API.
 */
#ifndef API_KINESIS_INT_H
#define API_KINESIS_INT_H

#include <stddef.h>

#include "api/api.h"
#include "log/slog.h"

typedef struct api__kput {
    char stream[SLOG_MAX_STREAM_NAME + 1];  /* resolved stream name */
    size_t n;                               /* records */
    const slog_put_rec_t *recs;             /* partition keys and data: valid until
                                               api__kput_free */
    int status;                             /* general path: HTTP status of its error, or 0 */
    char *error;                            /* general path: its error body (malloc'd), or NULL */
    void *priv, *priv_body, *priv_json;     /* the reader's state, body copy, JSON tree */
} api__kput_t;

/* The fast scanner on body (len bytes; body[len] need not be NUL).  0: accepted, *out filled;
 * 1: the scanner bails (the general path would decide).  Free *out with api__kput_free either
 * way.  ctx: only its region is read. */
int api__kinesis_put_fast(api_ctx_t *ctx, const void *body, size_t len, int single,
                          api__kput_t *out);
/* The general path (jansson, all validations, as the kit runs PutRecord(s)) on body.  0:
 * accepted, *out filled; -1: refused, out->status and out->error say how.  Free *out with
 * api__kput_free either way. */
int api__kinesis_put_slow(api_ctx_t *ctx, const void *body, size_t len, int single,
                          api__kput_t *out);
/* Accepts a zeroed or freed *k. */
void api__kput_free(api__kput_t *k);

#endif
