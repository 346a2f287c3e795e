/* SPDX-License-Identifier: Apache-2.0
 *
 * kinesis_put.c -- the Kinesis adapter's PutRecord and PutRecords (kinesis.c holds the other
 * operations and the service declaration; kinesis_int.h what the two files share).
 *
 * Puts are deferred: the engine acknowledges on its commit thread after the fsync; the response
 * is built back on the network thread (k_put_finish).  Every put first tries the fast scanner
 * (the op table's .fast), which reads the common well-formed body in place, and falls back to
 * the general path (jansson, every AWS validation) when it is not sure.  The test hooks at the
 * end run either reader alone (kinesis_int.h, tests/fuzz/fuzz_kinesis_putrecords.c).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/kinesis_int.h"
#include "api/kit.h"
#include "core/mem.h"
#include "core/tlog.h"

#define K_PAT_DIGITS (&api__kinesis_pat_digits)

/* ---- data plane: puts ---------------------------------------------------------------------- */

typedef struct k_put {
    api_ctx_t *ctx;
    slog_put_rec_t *recs;
    size_t n;
    uint8_t *data;           /* decoded blobs, back to back */
    int single;              /* PutRecord */
    int rc;                  /* first failure of the put (per record: recs[i].rc) */
    char stream[SLOG_MAX_STREAM_NAME + 1];   /* for throttling messages */
    tr_err err;
} k_put_t;

static void k_put_free(void *p) {
    k_put_t *kp = p;
    if (!kp) return;
    free(kp->recs);
    free(kp->data);
    free(kp);
}

static void k_put_done(void *arg, int rc) {
    net_req_t *req = arg;
    k_put_t *kp = req->state;
    kp->rc = rc;
    net_req_resume(req);
}

/* Why a record of a put failed with `code` (other than throttling), into e: the shard's own
 * message when it is FAILED (it names the shard, its directory and the fix; reads answer the
 * same), else a message naming the shard. */
static void k_put_why(const k_put_t *kp, const slog_put_rec_t *r, int code, tr_err *e) {
    if (r->shard != SLOG_NO_SHARD) {
        int rc = slog_shard_status(kp->ctx->slog, kp->stream, r->shard, e);
        if (rc < 0 && rc != TR_ENOTFOUND) return;
    }
    tr_err_set(e, code,
               "shard shardId-%012u of stream %s could not store the record (%s); the "
               "server log says why",
               r->shard, kp->stream, tr_strerror(code));
}

static void k_put_finish(net_req_t *req) {
    k_put_t *kp = req->state;
    tr_buf *b = &req->out;
    api_call_t c = {
        .ctx = kp->ctx,
        .svc = &api_kinesis_service,
        .req = req,
        .out = b,
        .op = api_op_find(&api_kinesis_service, kp->single ? "PutRecord" : "PutRecords")};
    if (kp->single) {
        slog_put_rec_t *r = &kp->recs[0];
        if (kp->rc || r->rc) {
            int code = r->rc ? r->rc : kp->rc;
            if (code == TR_ETHROTTLED)
                api_fail(&c, 400, "ProvisionedThroughputExceededException",
                         "Rate exceeded for shard shardId-%012u in stream %s under account %s.",
                         r->shard, kp->stream, API_ACCOUNT_ID);
            else {
                tr_err e;
                k_put_why(kp, r, code, &e);
                api_error(&c, code, &e);
            }
            return;
        }
        tr_buf_puts(b, "{\"ShardId\":");
        api__kinesis_put_shard_id(b, r->shard);
        tr_buf_puts(b, ",\"SequenceNumber\":");
        api__kinesis_put_seq(b, r->shard, r->seq);
        tr_buf_puts(b, "}");
        return;
    }
    /* Each record's result is its own: the engine sets rc per record (a shard whose append
     * failed fails its records only; records another shard committed are durable and answered
     * with their sequence number, so a client retrying the failed ones duplicates nothing).
     * kp->rc, the first failure of the whole put, says nothing about a given record. */
    size_t failed = 0;
    for (size_t i = 0; i < kp->n; i++)
        if (kp->recs[i].rc) failed++;
    tr_buf_reserve(b, 32 + kp->n * 90);
    tr_buf_printf(b, "{\"FailedRecordCount\":%zu,\"Records\":[", failed);
    for (size_t i = 0; i < kp->n; i++) {
        slog_put_rec_t *r = &kp->recs[i];
        if (i) tr_buf_append(b, ",", 1);
        if (r->rc) {
            if (r->rc == TR_ETHROTTLED)
                tr_buf_printf(b,
                              "{\"ErrorCode\":\"ProvisionedThroughputExceededException\","
                              "\"ErrorMessage\":\"Rate exceeded for shard shardId-%012u in "
                              "stream %s under account %s.\"}",
                              r->shard, kp->stream, API_ACCOUNT_ID);
            else { /* AWS's text; for a FAILED shard, also which one and the fix (else the
                    * cause is in the server log: the engine logged it) */
                tr_err e;
                if (slog_shard_status(kp->ctx->slog, kp->stream, r->shard, &e) >= 0 ||
                    e.code == TR_ENOTFOUND) {
                    tr_buf_puts(b, "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":"
                                   "\"Internal service failure.\"}");
                    continue;
                }
                char msg[TR_ERR_MSG_MAX + 32];
                int m = snprintf(msg, sizeof msg, "Internal service failure: %s", e.msg);
                tr_buf_puts(b, "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":");
                tr_buf_json_str(b, msg,
                                m < 0                    ? 0
                                : (size_t)m < sizeof msg ? (size_t)m
                                                         : sizeof msg - 1);
                tr_buf_puts(b, "}");
            }
            continue;
        }
        /* hot path: hand-formatted, no printf per record */
        char seq[SLOG_SEQ_STRLEN + 1];
        slog_seq_format(r->shard, r->seq, seq);
        tr_buf_reserve(b, 96);
        char *o = b->data + b->len;
        memcpy(o, "{\"SequenceNumber\":\"", 19);
        o += 19;
        memcpy(o, seq, SLOG_SEQ_STRLEN);
        o += SLOG_SEQ_STRLEN;
        memcpy(o, "\",\"ShardId\":\"shardId-", 21);
        o += 21;
        uint32_t s = r->shard;
        for (int d = 11; d >= 0; d--) {
            o[d] = (char)('0' + s % 10);
            s /= 10;
        }
        o += 12;
        memcpy(o, "\"}", 2);
        o += 2;
        b->len = (size_t)(o - b->data);
        b->data[b->len] = 0;
    }
    tr_buf_puts(b, "]}");
}

/* Validate one record object into rec (data decoded into *cursor). */
static int k_put_parse_rec(api_call_t *c, json_t *o, slog_put_rec_t *rec, uint8_t **cursor,
                           const char *prefix, size_t *total) {
    const char *pk, *data, *ehk;
    size_t pk_len, data_len;
    char mb[96];
    if (!json_is_object(o))
        return api_fail(c, 400, "SerializationException", "Each record must be a JSON object");
    json_t *pkv = json_object_get(o, "PartitionKey");
    json_t *dv = json_object_get(o, "Data");
    if (pkv && !json_is_string(pkv) && !json_is_null(pkv))
        return api_fail(c, 400, "SerializationException", "PartitionKey must be a string");
    if (dv && !json_is_string(dv) && !json_is_null(dv))
        return api_fail(c, 400, "SerializationException", "Data must be a base64 string");
    pk = pkv && json_is_string(pkv) ? json_string_value(pkv) : NULL;
    pk_len = pk ? json_string_length(pkv) : 0;
    size_t pk_chars = 0;
    for (size_t i = 0; i < pk_len; i++) pk_chars += ((unsigned char)pk[i] & 0xC0) != 0x80;
    data = dv && json_is_string(dv) ? json_string_value(dv) : NULL;
    data_len = data ? json_string_length(dv) : 0;
    if (!pk) {
        snprintf(mb, sizeof mb, "%spartitionKey", prefix);
        api_verr(c, mb, NULL, "Member must not be null");
    } else if (pk_chars < 1 || pk_chars > 256 || pk_len > SLOG_MAX_PK) {
        snprintf(mb, sizeof mb, "%spartitionKey", prefix);
        api_verr(c, mb, pk, "Member must have length %s",
                 pk_chars < 1 ? "greater than or equal to 1" : "less than or equal to 256");
    }
    if (!data) {
        snprintf(mb, sizeof mb, "%sdata", prefix);
        api_verr(c, mb, NULL, "Member must not be null");
        return 0;
    }
    long dn = tr_base64_decode(data, data_len, *cursor);
    if (dn < 0)
        return api_fail(c, 400, "SerializationException",
                        "Data of a record is not valid base64; SDKs encode it for you, raw callers "
                        "must send standard padded base64");
    if (dn > SLOG_MAX_DATA) {
        snprintf(mb, sizeof mb, "%sdata", prefix);
        api_verr(c, mb, "java.nio.HeapByteBuffer[pos=0 lim=...]",
                 "Member must have length less than or equal to 1048576");
    }
    if (api_get_str(c, o, "ExplicitHashKey", API_OPT, 0, 128, K_PAT_DIGITS, &ehk, NULL))
        return API_FAIL;
    rec->pk = pk;
    rec->pk_len = (uint16_t)pk_len;
    rec->data = *cursor;
    rec->data_len = (uint32_t)dn;
    rec->has_explicit_hash = 0;
    if (ehk && !c->n_verr) {
        if (slog_hash_parse(ehk, &rec->explicit_hash))
            return api_fail(c, 400, "InvalidArgumentException",
                            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, "
                            "2^128-1]. Specified value was %s",
                            ehk);
        rec->has_explicit_hash = 1;
    }
    *cursor += dn;
    if (pk) {  /* the partition key too, so the JSON tree need not outlive the handler */
        memcpy(*cursor, pk, pk_len);
        rec->pk = (const char *)*cursor;
        *cursor += pk_len;
    }
    *total += (size_t)dn + pk_len;
    return 0;
}

/* Memory a put holds per record while it waits for the disk, besides its data: the record
 * (slog_put_rec_t), the engine's routing and commit-slot entries, and its share of the response
 * ({"SequenceNumber":"<34>","ShardId":"shardId-<12>"}, or InternalFailure's shorter entry). */
#define K_PUT_REC_MEM (sizeof(slog_put_rec_t) + sizeof(slog_rec_in_t) + 2 * sizeof(void *) + 96)
#define K_PUT_RESP_BASE 64
/* A throttled record's response entry names its shard, stream and account: this much longer
 * than the 96 bytes K_PUT_REC_MEM counts for it. */
#define K_PUT_THROTTLED_EXTRA (64 + SLOG_MAX_STREAM_NAME)

/* Charge n bytes of the put to the request's in-flight budget before allocating them
 * (net_req_charge); over the budget the whole request is refused with Kinesis' throttling
 * error, nothing queued.  0 or -1 (answered). */
static int k_put_charge(api_call_t *c, size_t n) {
    if (!net_req_charge(c->req, n)) return 0;
    return api_fail(c, 400, "ProvisionedThroughputExceededException",
                    "Rate exceeded: the server is over its in-flight memory budget "
                    "(--max-inflight-mb); retry with backoff");
}

/* Put refused by the engine's queue budget: PutRecords answers it per record (as Kinesis
 * reports throttling), when the longer response entries fit the budget; otherwise, and for
 * PutRecord, the whole request is throttled.  Returns 0 (answered). */
static int k_put_throttled(api_call_t *c, k_put_t *kp, const tr_err *err) {
    if (kp->single || net_req_charge(c->req, kp->n * K_PUT_THROTTLED_EXTRA)) {
        api_error(c, TR_ETHROTTLED, err);
        return 0;
    }
    kp->rc = TR_ETHROTTLED;
    for (size_t i = 0; i < kp->n; i++) kp->recs[i].rc = TR_ETHROTTLED;
    k_put_finish(c->req);
    return 0;
}

static int k_put_parse(api_call_t *c, int single, k_put_t *kp);

static int k_put_common(api_call_t *c, int single) {
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    json_t *arr = single ? NULL : json_object_get(c->in, "Records");
    size_t n_recs = single ? 1 : json_is_array(arr) ? json_array_size(arr) : 0;
    /* Everything the put holds until its response is sent, charged before it is allocated:
     * decoded data and partition keys (never longer than their JSON text, so the body length
     * bounds them), the records, the engine's entries and the response. */
    if (n_recs > 500) n_recs = 0;  /* refused below, nothing allocated for them */
    if (k_put_charge(c, sizeof(k_put_t) + c->req->body_len + 1 + K_PUT_RESP_BASE +
                            n_recs * K_PUT_REC_MEM))
        return API_FAIL;
    k_put_t *kp = tr_xcalloc(1, sizeof *kp);
    kp->ctx = c->ctx;
    kp->single = single;
    c->req->state = kp;
    c->req->state_free = k_put_free;
    if (k_put_parse(c, single, kp)) return API_FAIL;
    memcpy(kp->stream, k_name(c), sizeof kp->stream);
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_put(c->ctx->slog, k_name(c), kp->recs, kp->n, k_put_done, c->req, &err);
    if (rc == TR_ETHROTTLED) return k_put_throttled(c, kp, &err);
    if (rc) return api_error(c, rc, &err);
    c->req->finish = k_put_finish;
    return NET_DEFER;
}

/* The general path's reading of a PutRecord(s) body (c->in) into kp: every record validated,
 * its data decoded into kp->data (partition keys borrowed from c->in).  0, or -1 with the error
 * response filled. */
static int k_put_parse(api_call_t *c, int single, k_put_t *kp) {
    json_t *arr = single ? NULL : json_object_get(c->in, "Records");
    size_t total = 0;
    kp->data = tr_xmalloc(c->req->body_len + 1);
    uint8_t *cursor = kp->data;
    if (single) {
        kp->n = 1;
        kp->recs = tr_xcalloc(1, sizeof *kp->recs);
        const char *sfo;
        if (k_put_parse_rec(c, c->in, &kp->recs[0], &cursor, "", &total)) return API_FAIL;
        if (api_get_str(c, c->in, "SequenceNumberForOrdering", API_OPT, 0, 128, K_PAT_DIGITS, &sfo,
                        NULL))
            return API_FAIL;
        if (api_verr_flush(c)) return API_FAIL;
    } else {
        if (!arr || json_is_null(arr)) {
            api_verr(c, "records", NULL, "Member must not be null");
        } else if (!json_is_array(arr)) {
            return api_fail(c, 400, "SerializationException", "Records must be a list");
        } else {
            size_t n = json_array_size(arr);
            if (n < 1 || n > 500) {
                api_verr(c, "records", n ? "[...]" : "[]", "Member must have length %s",
                         n < 1 ? "greater than or equal to 1" : "less than or equal to 500");
            } else {
                kp->n = n;
                kp->recs = tr_xcalloc(n, sizeof *kp->recs);
                for (size_t i = 0; i < n; i++) {
                    char prefix[48];
                    snprintf(prefix, sizeof prefix, "records.%zu.member.", i + 1);
                    if (k_put_parse_rec(c, json_array_get(arr, i), &kp->recs[i], &cursor, prefix,
                                        &total))
                        return API_FAIL;
                }
            }
        }
        if (api_verr_flush(c)) return API_FAIL;
        if (total > K_MAX_PUT_BYTES)
            return api_fail(c, 400, "InvalidArgumentException",
                            "Records size exceeds 5 MB limit (%zu bytes of data and partition "
                            "keys); send fewer or smaller records per PutRecords",
                            total);
    }
    return 0;
}

/* ---- data plane: the PutRecord(s) fast path ------------------------------------------------ *
 *
 * PutRecords is the hot operation: a 500-record body is ~100 KB of JSON, and a general JSON
 * library spends most of the server's time building a tree of it.  This scanner reads the
 * common, well-formed shape in place -- no allocation per record, partition keys borrowed from
 * the request body, Data decoded straight into the put buffer.  It accepts only what it is sure
 * of (ASCII keys without escapes, the members AWS SDKs send); anything else -- escapes, unknown
 * members, a constraint violation, bad base64 -- makes it return K_FAST_BAIL, and the request
 * takes the general path, which produces AWS's exact error for it.  So the fast path can change
 * speed, never behaviour.
 */
#define K_FAST_BAIL API_BAIL
#define K_FAST_ANSWERED 3

typedef struct k_scan {
    const char *p, *end;
} k_scan_t;

static void ks_ws(k_scan_t *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int ks_ch(k_scan_t *s, char ch) {
    ks_ws(s);
    if (s->p < s->end && *s->p == ch) {
        s->p++;
        return 1;
    }
    return 0;
}

/* A string without escapes or control characters; *ascii says whether all bytes are < 0x80. */
/* A plain string: printable ASCII only.  Escapes, control characters and any byte >= 0x80 bail
 * to the general path, which validates UTF-8 as JSON requires (a fuzzed body with invalid UTF-8
 * in Data was accepted here and refused there) and decodes Unicode partition keys. */
static int ks_str(k_scan_t *s, const char **out, size_t *n) {
    ks_ws(s);
    if (s->p >= s->end || *s->p != '"') return -1;
    const char *b = ++s->p;
    const char *q = memchr(b, '"', (size_t)(s->end - b));
    if (!q) return -1;
    for (const char *x = b; x < q; x++) {
        unsigned char ch = (unsigned char)*x;
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) return -1;
    }
    *out = b;
    *n = (size_t)(q - b);
    s->p = q + 1;
    return 0;
}

static int ks_key_is(const char *k, size_t n, const char *lit) {
    return strlen(lit) == n && !memcmp(k, lit, n);
}

/* One record object's members into rec.  Returns 0 or -1 (bail). */
static int ks_record(k_scan_t *s, slog_put_rec_t *rec, uint8_t **cursor, size_t *total, int top,
                     const char **stream, size_t *stream_n) {
    const char *pk = NULL, *data = NULL;
    size_t pk_n = 0, data_n = 0;
    if (!top && !ks_ch(s, '{')) return -1;
    if (ks_ch(s, '}')) return -1;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (ks_str(s, &k, &kn) || !ks_ch(s, ':') || ks_str(s, &v, &vn)) return -1;
        if (ks_key_is(k, kn, "Data")) data = v, data_n = vn;
        else if (ks_key_is(k, kn, "PartitionKey")) pk = v, pk_n = vn;
        else if (top && ks_key_is(k, kn, "StreamName")) *stream = v, *stream_n = vn;
        else return -1;  /* ExplicitHashKey, SequenceNumberForOrdering, StreamARN, unknown */
        if (ks_ch(s, ',')) continue;
        if (ks_ch(s, '}')) break;
        return -1;
    }
    if (!pk || !data || pk_n < 1 || pk_n > 256) return -1;
    long dn = tr_base64_decode(data, data_n, *cursor);
    if (dn < 0 || dn > SLOG_MAX_DATA) return -1;
    rec->pk = pk;
    rec->pk_len = (uint16_t)pk_n;
    rec->data = *cursor;
    rec->data_len = (uint32_t)dn;
    rec->has_explicit_hash = 0;
    *cursor += dn;
    *total += (size_t)dn + pk_n;
    return 0;
}

static int k_stream_name_ok(const char *s, size_t n) {
    if (n < 1 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (!api__kinesis_name_char(s[i])) return 0;
    return 1;
}

static int k_put_scan(api_call_t *c, k_scan_t *sp, int single, k_put_t *kp);

/* Returns NET_DEFER, NET_DONE (answered) or K_FAST_BAIL (use the general path). */
static int k_put_fast(api_call_t *c, int single) {
    net_req_t *req = c->req;
    k_scan_t s = {(const char *)req->body, (const char *)req->body + req->body_len};
    if (!ks_ch(&s, '{')) return K_FAST_BAIL;
    /* Charged before allocating, as on the general path (k_put_common): the put buffer and
     * response base now, the records as the array grows, then the per-record rest.  Partition
     * keys stay in the request body, which is charged already. */
    size_t charged = sizeof(k_put_t) + req->body_len + 1 + K_PUT_RESP_BASE;
    if (k_put_charge(c, charged)) return NET_DONE;
    k_put_t *kp = tr_xcalloc(1, sizeof *kp);
    kp->ctx = c->ctx;
    kp->single = single;
    kp->data = tr_xmalloc(req->body_len + 1);
    int rc = k_put_scan(c, &s, single, kp);
    if (rc == K_FAST_ANSWERED) goto answered;
    if (rc == K_FAST_BAIL) goto bail;
    memcpy(kp->stream, k_name(c), sizeof kp->stream);
    req->state = kp;
    req->state_free = k_put_free;
    tr_err err;
    tr_err_clear(&err);
    rc = slog_put(c->ctx->slog, k_name(c), kp->recs, kp->n, k_put_done, req, &err);
    if (rc == TR_ETHROTTLED) return k_put_throttled(c, kp, &err);
    if (rc) {
        api_error(c, rc, &err);
        return NET_DONE;
    }
    req->finish = k_put_finish;
    return NET_DEFER;
answered:  /* refused by the budget: the error is in the response */
    k_put_free(kp);
    return NET_DONE;
bail:
    /* The general path charges afresh: give back what this one charged. */
    k_put_free(kp);
    net_req_uncharge(req);
    return K_FAST_BAIL;
}

int api__kinesis_put_record_fast(api_call_t *c) { return k_put_fast(c, 1); }
int api__kinesis_put_records_fast(api_call_t *c) { return k_put_fast(c, 0); }

/* Scan the body (s: after its opening brace) into kp (records, data decoded into kp->data,
 * partition keys borrowed from the body) and k_name(c), charging the records to the request as
 * they are allocated.  0, K_FAST_BAIL (use the general path) or K_FAST_ANSWERED (refused by the
 * budget: the error is in the response).  kp may hold a partial result either way. */
static int k_put_scan(api_call_t *c, k_scan_t *sp, int single, k_put_t *kp) {
    k_scan_t s = *sp;
    const char *stream = NULL;
    size_t stream_n = 0, total = 0;
    uint8_t *cursor = kp->data;
    if (single) {
        kp->n = 1;
        if (k_put_charge(c, K_PUT_REC_MEM)) return K_FAST_ANSWERED;
        kp->recs = tr_xcalloc(1, sizeof *kp->recs);
        if (ks_record(&s, &kp->recs[0], &cursor, &total, 1, &stream, &stream_n)) return K_FAST_BAIL;
    } else {
        size_t cap = 0;
        int have_records = 0;
        for (;;) {
            const char *k;
            size_t kn;
            if (ks_str(&s, &k, &kn) || !ks_ch(&s, ':')) return K_FAST_BAIL;
            if (ks_key_is(k, kn, "StreamName")) {
                if (ks_str(&s, &stream, &stream_n)) return K_FAST_BAIL;
            } else if (ks_key_is(k, kn, "Records") && !have_records) {
                have_records = 1;
                if (!ks_ch(&s, '[') || ks_ch(&s, ']')) return K_FAST_BAIL;
                for (;;) {
                    if (kp->n == 500) return K_FAST_BAIL;
                    if (kp->n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        if (k_put_charge(c, (ncap - cap) * K_PUT_REC_MEM)) return K_FAST_ANSWERED;
                        cap = ncap;
                        kp->recs = tr_xrealloc(kp->recs, cap * sizeof *kp->recs);
                    }
                    memset(&kp->recs[kp->n], 0, sizeof kp->recs[0]);
                    if (ks_record(&s, &kp->recs[kp->n], &cursor, &total, 0, NULL, NULL))
                        return K_FAST_BAIL;
                    kp->n++;
                    if (ks_ch(&s, ',')) continue;
                    if (ks_ch(&s, ']')) break;
                    return K_FAST_BAIL;
                }
            } else {
                return K_FAST_BAIL;
            }
            if (ks_ch(&s, ',')) continue;
            if (ks_ch(&s, '}')) break;
            return K_FAST_BAIL;
        }
        if (!have_records || total > K_MAX_PUT_BYTES) return K_FAST_BAIL;
    }
    ks_ws(&s);
    if (s.p != s.end || !stream || !k_stream_name_ok(stream, stream_n)) return K_FAST_BAIL;
    memcpy(k_name(c), stream, stream_n);
    k_name(c)[stream_n] = 0;
    return 0;
}

int api__kinesis_put_record(api_call_t *c) { return k_put_common(c, 1); }
int api__kinesis_put_records(api_call_t *c) { return k_put_common(c, 0); }

/* ---- test hooks (kinesis_int.h) ------------------------------------------------------------ */

/* A request around a copy of body, as net presents it (NUL-terminated); not a served request,
 * so nothing is charged to a budget. */
static void k_hook_req(net_req_t *req, const void *body, size_t len) {
    memset(req, 0, sizeof *req);
    req->body = tr_xmalloc(len + 1);
    if (len) memcpy(req->body, body, len);
    req->body[len] = 0;
    req->body_len = len;
    req->status = 200;
}

int api__kinesis_put_fast(api_ctx_t *ctx, const void *body, size_t len, int single,
                          api__kput_t *out) {
    memset(out, 0, sizeof *out);
    net_req_t req;
    k_hook_req(&req, body, len);
    out->priv_body = req.body;  /* the partition keys point into it */
    /* op as the dispatcher sets it: messages name the operation (e.g. a StreamARN of another
     * account: "not authorized to perform: kinesis:PutRecords"). */
    api_call_t c = {.ctx = ctx,
                    .svc = &api_kinesis_service,
                    .req = &req,
                    .out = &req.out,
                    .op = api_op_find(&api_kinesis_service, single ? "PutRecord" : "PutRecords")};
    k_scan_t s = {(const char *)req.body, (const char *)req.body + len};
    if (!ks_ch(&s, '{')) return 1;
    k_put_t *kp = tr_xcalloc(1, sizeof *kp);
    kp->ctx = ctx;
    kp->single = single;
    kp->data = tr_xmalloc(len + 1);
    out->priv = kp;
    int rc = k_put_scan(&c, &s, single, kp);
    net_req_resp_free(&req);
    if (rc) return 1;
    snprintf(out->stream, sizeof out->stream, "%s", k_name(&c));
    out->n = kp->n;
    out->recs = kp->recs;
    return 0;
}

int api__kinesis_put_slow(api_ctx_t *ctx, const void *body, size_t len, int single,
                          api__kput_t *out) {
    memset(out, 0, sizeof *out);
    net_req_t req;
    k_hook_req(&req, body, len);
    /* op as the dispatcher sets it: messages name the operation (e.g. a StreamARN of another
     * account: "not authorized to perform: kinesis:PutRecords"). */
    api_call_t c = {.ctx = ctx,
                    .svc = &api_kinesis_service,
                    .req = &req,
                    .out = &req.out,
                    .op = api_op_find(&api_kinesis_service, single ? "PutRecord" : "PutRecords")};
    json_error_t jerr;
    int rc = -1;
    /* As api_kinesis_handle reads a body. */
    c.in = json_loadb((const char *)req.body, req.body_len, JSON_ALLOW_NUL, &jerr);
    if (!c.in || !json_is_object(c.in)) {
        api_fail(&c, 400, "SerializationException", "Request body is not a JSON object");
        goto leave;
    }
    k_put_t *kp = tr_xcalloc(1, sizeof *kp);
    kp->ctx = ctx;
    kp->single = single;
    out->priv = kp;
    if (api__kinesis_stream(&c, 1) || k_put_parse(&c, single, kp)) goto leave;
    snprintf(out->stream, sizeof out->stream, "%s", k_name(&c));
    out->n = kp->n;
    out->recs = kp->recs;
    rc = 0;
leave:
    if (rc) {
        out->status = req.status;
        out->error = tr_buf_detach(&req.out, NULL);
    }
    out->priv_json = c.in;  /* the partition keys point into it */
    tr_buf_free(&c.verr);
    net_req_resp_free(&req);
    free(req.body);
    return rc;
}

void api__kput_free(api__kput_t *k) {
    k_put_free(k->priv);
    json_decref(k->priv_json);
    free(k->priv_body);
    free(k->error);
    memset(k, 0, sizeof *k);
}
