/* SPDX-License-Identifier: Apache-2.0
 *
 * kinesis_int.h -- private to src/api and its tests: what kinesis.c (the Kinesis adapter) and
 * kinesis_put.c (its PutRecord and PutRecords) share, and the two readers of PutRecord(s)
 * bodies.
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
#include "api/kit.h"
#include "log/slog.h"

#define K_MAX_PUT_BYTES (5u * 1024 * 1024)

/* Per-call state (api_call_t.priv): the stream the call names, resolved by api__kinesis_stream
 * from StreamName or StreamARN. */
typedef struct k_state {
    char stream[SLOG_MAX_STREAM_NAME + 1];
} k_state_t;

static inline char *k_name(api_call_t *c) { return ((k_state_t *)(void *)c->priv)->stream; }

/* Resolve StreamName / StreamARN into k_name(c); required: one of them must be there.  0 (also
 * when violations were recorded: api_verr_flush reports them) or API_FAIL (answered). */
int api__kinesis_stream(api_call_t *c, int required);
/* [a-zA-Z0-9_.-]: a stream name's characters. */
int api__kinesis_name_char(char ch);
/* The pattern of sequence numbers and hash keys: 0|([1-9]\d{0,38}). */
extern const api_pattern_t api__kinesis_pat_digits;
/* "shardId-%012u" and a sequence number, as JSON strings, appended to b. */
void api__kinesis_put_shard_id(tr_buf *b, uint32_t idx);
void api__kinesis_put_seq(tr_buf *b, uint32_t shard, uint64_t counter);

/* The handlers of PutRecord and PutRecords (kinesis_put.c) and their fast paths (kit.h:
 * api_op_t.fast). */
int api__kinesis_put_record(api_call_t *c);
int api__kinesis_put_records(api_call_t *c);
int api__kinesis_put_record_fast(api_call_t *c);
int api__kinesis_put_records_fast(api_call_t *c);

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
