/* SPDX-License-Identifier: Apache-2.0
 *
 * trbench.c -- a small closed-loop load generator for the Kinesis JSON 1.1 and DynamoDB JSON 1.0
 * wire protocols.
 *
 * N keep-alive HTTP/1.1 connections are spread over M threads (connection i belongs to thread
 * i % M); each thread runs its own epoll loop.  A connection sends one request, waits for the
 * whole response (Content-Length or chunked), records the latency and sends the next: there is
 * no pipelining, so "conns" is the number of requests in flight.  After a warm-up the run lasts
 * a fixed duration and prints requests/s, records/s and p50/p99/p99.9 latency from a log-bucket
 * histogram (HdrHistogram-style: 64 sub-buckets per power of two, about 1.6% precision).
 *
 * Kinesis workloads (X-Amz-Target Kinesis_20131202.*, SigV4 service "kinesis"):
 *   putrecords  PutRecords, 500 x 100-byte records, partition keys spread over the key space.
 *               One request, signed once with SigV4 at start, replayed (AWS accepts duplicates).
 *               Records/s counts 500 - FailedRecordCount per 200 response.
 *   putrecord   PutRecord, one 100-byte record; each connection has its own partition key
 *               (so load spreads over shards) and its own request, signed once.
 *   getrecords  Each connection takes a TRIM_HORIZON iterator for one shard (conn i reads shard
 *               i % shards), then loops GetRecords with the returned NextShardIterator and
 *               Limit 10000; when a response holds no records it is caught up and wraps to a
 *               fresh TRIM_HORIZON iterator.  Every request has a new body, so it is signed per
 *               request (cheap next to a response of ~1 MB).  Records/s counts records read.
 *
 * DynamoDB workloads (X-Amz-Target DynamoDB_20120810.*, SigV4 service "dynamodb", table with
 * hash key "pk" (S) and range key "sk" (S); --keys K is the key space):
 *   putitem        PutItem of {pk, sk "0", data (--record-size bytes, S), n (N)}, pk one of K
 *                  (default 1,000,000: mostly inserts, some overwrites).  Records = items put.
 *   getitem        GetItem by {pk, sk "0"}, pk one of K (default 10,000), all pre-filled by
 *                  --setup.  Records = items found; a response without "Item" counts as a miss.
 *   updateitem     UpdateItem "ADD #c :one" (an atomic counter) on {pk, sk "0"}, pk one of K
 *                  (default 10,000), so concurrent requests hit the same counters.
 *   query          Query "pk = :p", Limit 10, pk one of K (default 1,000), each holding
 *                  --range-items R (default 10) items pre-filled by --setup.  Records = Count.
 *   transactwrite  TransactWriteItems of two "ADD #c :one" updates on two distinct pks of K
 *                  (default 10,000).  Records = items updated (2 per transaction).
 *   Keys must vary, but a signed request can only be replayed as it is: so --pool P distinct
 *   requests (default 65536, keys drawn pseudo-randomly) are built and signed once at start with
 *   one fixed X-Amz-Date (valid 15 minutes), shared read-only by every connection; connection i
 *   starts at pool entry i * P / conns and steps through the pool, wrapping.
 *
 * Cost rules, so the client is not the bottleneck: request bytes are built once (or once per
 * request for getrecords, into a per-connection buffer that only grows); receive buffers are
 * per connection and only grow; no JSON library -- the few fields needed (FailedRecordCount,
 * ShardIterator, NextShardIterator, MillisBehindLatest, record count) are found by plain scans.
 *
 * --setup N creates the stream with N shards when it does not exist, waits (bounded) for ACTIVE
 * and, for getrecords, pre-fills it with --prefill records through PutRecords.  For DynamoDB
 * workloads --setup N (any N >= 1) creates the table (PAY_PER_REQUEST) when it does not exist,
 * waits for ACTIVE and, for getitem and query, pre-fills the whole key space through
 * BatchWriteItem (25 items a request, UnprocessedItems retried); --prefill 0 skips that.
 *
 * The last line printed is machine-readable for bench/run.sh and bench/run-dynamodb.sh:
 *   RESULT workload=... req_s=... ok_s=... rec_s=... p50_ms=... p99_ms=... p999_ms=...
 *          errors=... misses=... ...
 * (req_s counts every response, ok_s the 2xx ones.)
 * Exit status: 0 when the run completed (even with error responses), 1 on usage or connection
 * failure, 2 when setup failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/sigv4.h"

/* ------------------------------------------------------------------------------------------ */
/* Macros and types                                                                           */
/* ------------------------------------------------------------------------------------------ */

#define TB_MAX_SHARDS 1024
#define TB_ITER_MAX 8192   /* longest shard iterator accepted */
#define TB_MAX_ERR_SHOWN 3 /* error bodies printed to stderr */

/* Histogram: values in microseconds.  Below 128 one bucket per value; above, 64 sub-buckets per
 * power of two up to 2^47 us. */
#define TB_HIST_LINEAR 128
#define TB_HIST_SUB 64
#define TB_HIST_N (TB_HIST_LINEAR + (47 - 7) * TB_HIST_SUB)

#define TB_BATCH_WRITE 25   /* items per BatchWriteItem (DynamoDB's maximum) */

enum {
    WL_PUTRECORDS,
    WL_PUTRECORD,
    WL_GETRECORDS,                          /* Kinesis */
    WL_PUTITEM,
    WL_GETITEM,
    WL_UPDATEITEM,
    WL_QUERY,
    WL_TRANSACTWRITE,   /* DynamoDB */
};
#define WL_IS_DDB(w) ((w) >= WL_PUTITEM)

/* A wire protocol: what build_request puts in X-Amz-Target, Content-Type and the SigV4 scope. */
typedef struct tb_proto {
    const char *target_prefix;
    const char *content_type;
    const char *service;
} tb_proto;

static const tb_proto tb_kinesis = {"Kinesis_20131202.", "application/x-amz-json-1.1", "kinesis"};
static const tb_proto tb_dynamodb = {"DynamoDB_20120810.", "application/x-amz-json-1.0",
                                     "dynamodb"};
enum { PH_ITER, PH_RECORDS };

typedef struct tb_buf {
    char *p;
    size_t len, cap;
} tb_buf;

typedef struct tb_stats {
    uint64_t hist[TB_HIST_N];
    uint64_t requests;     /* completed in the window (all statuses) */
    uint64_t ok;           /* 2xx */
    uint64_t records;      /* records written or read */
    uint64_t bytes_in;     /* response body bytes */
    uint64_t errors;       /* non-2xx responses */
    uint64_t throttled;    /* ProvisionedThroughputExceeded / LimitExceeded / 503 */
    uint64_t failed_recs;  /* PutRecords FailedRecordCount sum */
    uint64_t misses;       /* GetItem 2xx without an Item */
    uint64_t iter_calls;   /* GetShardIterator calls (getrecords) */
    uint64_t wraps;        /* caught up -> fresh TRIM_HORIZON */
    uint64_t reconnects;
    uint64_t status[6];    /* by class: [1]=1xx .. [5]=5xx */
} tb_stats;

struct tb_thread;

typedef struct tb_conn {
    int fd;
    int id;
    struct tb_thread *th;
    /* request being sent: points at a shared request or at own */
    const char *req;
    size_t req_len, sent;
    tb_buf own;          /* per-connection request bytes */
    int want_out;        /* EPOLLOUT registered */
    /* response being received */
    tb_buf rb;
    size_t scanned;      /* header search resume point */
    size_t hdr_len;      /* 0 until the header block is complete */
    long long body_len;  /* Content-Length, or decoded length when chunked */
    int chunked;
    size_t cpos;         /* chunked: next chunk-size line */
    int status;
    int close_after;
    uint64_t t_start;
    size_t pool_i;       /* DynamoDB: next entry of the shared request pool */
    /* getrecords */
    int phase;
    const char *shard_id;
    char iter[TB_ITER_MAX];
} tb_conn;

typedef struct tb_thread {
    pthread_t tid;
    int idx;
    int ep;
    tb_conn *conns;
    int n_conns;
    tb_stats st;
    tb_buf body;       /* getrecords: request body scratch, only grows */
    int shown_errors;
    int fatal;
} tb_thread;

/* ------------------------------------------------------------------------------------------ */
/* Configuration and shared state (read-only once threads start)                              */
/* ------------------------------------------------------------------------------------------ */

static struct {
    int workload;
    const char *workload_name;
    char host[256];   /* Host header value, as given: "127.0.0.1:4567" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *stream;
    int conns, threads;
    double duration, warmup;
    const char *key, *secret, *region;
    int setup_shards;
    long prefill;
    double prefill_time; /* stop pre-filling after this many seconds */
    int batch;        /* records per PutRecords */
    int rec_size;     /* bytes per record */
    int limit;        /* GetRecords Limit */
    long keys;        /* DynamoDB key space (0: the workload's default) */
    int range_items;  /* query: items per hash key */
    long pool;        /* DynamoDB: distinct pre-signed requests */
    int verbose;
    const tb_proto *proto;
    /* derived */
    char amz_date[17];
    tb_buf shared_req;  /* putrecords request, replayed by every connection */
    tb_buf pool_buf;    /* DynamoDB: the pool's requests back to back */
    size_t *pool_off;   /* entry i is pool_buf.p[pool_off[i] .. pool_off[i + 1]) */
    char *shard_ids[TB_MAX_SHARDS];
    int n_shards;
    uint64_t t_window_start, t_window_end;
} g;

static volatile sig_atomic_t g_stop;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("trbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void buf_reserve(tb_buf *b, size_t need) {
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
}

static void buf_add(tb_buf *b, const void *d, size_t n) {
    buf_reserve(b, b->len + n + 1);
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_addf(tb_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) die("format error");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, b->len + (size_t)n + 1);
    }
}

/* Finds needle in [p, p+n); like memmem but with a C-string needle. */
static const char *find(const char *p, size_t n, const char *needle) {
    return memmem(p, n, needle, strlen(needle));
}

/* Value of a JSON string field "name":"value" (first occurrence, no escapes expected: iterators,
 * shard ids and statuses are plain).  Copies at most cap-1 bytes; returns length or -1. */
static long json_str(const char *p, size_t n, const char *name, char *out, size_t cap) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\"", name);
    const char *e = p + n, *s = find(p, n, pat);
    if (!s) return -1;
    s += strlen(pat);
    while (s < e && (*s == ' ' || *s == ':' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    if (s >= e || *s != '"') return -1;
    s++;
    const char *q = memchr(s, '"', (size_t)(e - s));
    if (!q || (size_t)(q - s) >= cap) return -1;
    memcpy(out, s, (size_t)(q - s));
    out[q - s] = '\0';
    return q - s;
}

/* Value of a JSON integer field "name":123; returns dflt when absent. */
static long long json_int(const char *p, size_t n, const char *name, long long dflt) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\"", name);
    const char *e = p + n, *s = find(p, n, pat);
    if (!s) return dflt;
    s += strlen(pat);
    while (s < e && (*s == ' ' || *s == ':' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    if (s >= e || (*s != '-' && (*s < '0' || *s > '9'))) return dflt;
    long long v = 0;
    int neg = *s == '-';
    if (neg) s++;
    while (s < e && *s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

static size_t count_occ(const char *p, size_t n, const char *needle) {
    size_t c = 0, k = strlen(needle);
    const char *e = p + n;
    while (p < e) {
        const char *q = memmem(p, (size_t)(e - p), needle, k);
        if (!q) break;
        c++;
        p = q + k;
    }
    return c;
}

static void base64(const unsigned char *in, size_t n, tb_buf *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    buf_reserve(out, out->len + (n + 2) / 3 * 4 + 1);
    char *o = out->p + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = t[v >> 18];
        *o++ = t[(v >> 12) & 63];
        *o++ = t[(v >> 6) & 63];
        *o++ = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = t[v >> 18];
        *o++ = t[(v >> 12) & 63];
        *o++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
}

/* 64-bit mix (splitmix64) for partition keys and payload bytes. */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ------------------------------------------------------------------------------------------ */
/* Request building and signing                                                               */
/* ------------------------------------------------------------------------------------------ */

static void amz_date_now(char out[17]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Writes a complete signed HTTP request for op with body to out (out->len is reset), in the
 * protocol g.proto. */
static void build_request(tb_buf *out, const char *op, const char *body, size_t blen,
                          const char *amz_date) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1], target[96];
    SHA256((const unsigned char *)body, blen, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(target, sizeof target, "%s%s", g.proto->target_prefix, op);

    sigv4_header_t h[4] = {
        {"content-type", g.proto->content_type},
        {"host", g.host},
        {"x-amz-date", amz_date},
        {"x-amz-target", target},
    };
    sigv4_req_t r = {
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = h,
        .n_headers = 4,
        .payload_sha256 = hex,
        .now_ms = (long long)time(NULL) * 1000,
    };
    char *auth = sigv4_sign(&r, g.key, g.secret, g.region, g.proto->service, amz_date);
    if (!auth) die("sigv4_sign failed for %s", op);
    out->len = 0;
    buf_addf(out,
             "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
             "X-Amz-Target: %s\r\nX-Amz-Date: %s\r\nAuthorization: %s\r\n"
             "Content-Length: %zu\r\n\r\n",
             g.host, g.proto->content_type, target, amz_date, auth, blen);
    buf_add(out, body, blen);
    free(auth);
}

/* A record's Data (base64 of rec_size pseudo-random bytes, the same for every record). */
static void record_data(tb_buf *out) {
    unsigned char raw[1 << 16];
    size_t n = (size_t)g.rec_size < sizeof raw ? (size_t)g.rec_size : sizeof raw;
    for (size_t i = 0; i < n; i++) raw[i] = (unsigned char)mix(i);
    base64(raw, n, out);
}

/* PutRecords body with n records; partition keys derived from seed. */
static void body_putrecords(tb_buf *b, int n, uint64_t seed) {
    tb_buf data = {0};
    record_data(&data);
    b->len = 0;
    buf_addf(b, "{\"StreamName\":\"%s\",\"Records\":[", g.stream);
    for (int i = 0; i < n; i++)
        buf_addf(b, "%s{\"Data\":\"%s\",\"PartitionKey\":\"pk-%016llx\"}", i ? "," : "", data.p,
                 (unsigned long long)mix(seed * 1000003u + (uint64_t)i));
    buf_add(b, "]}", 2);
    free(data.p);
}

static void body_putrecord(tb_buf *b, uint64_t seed) {
    tb_buf data = {0};
    record_data(&data);
    b->len = 0;
    buf_addf(b, "{\"StreamName\":\"%s\",\"Data\":\"%s\",\"PartitionKey\":\"pk-%016llx\"}", g.stream,
             data.p, (unsigned long long)mix(seed));
    free(data.p);
}

/* ---- DynamoDB bodies ---------------------------------------------------------------------- */

/* The item's "data" attribute: rec_size printable bytes (no JSON escapes needed). */
static void item_data(tb_buf *out) {
    static const char t[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    out->len = 0;
    buf_reserve(out, (size_t)g.rec_size + 1);
    for (int i = 0; i < g.rec_size; i++) out->p[i] = t[mix((uint64_t)i) % (sizeof t - 1)];
    out->len = (size_t)g.rec_size;
    out->p[out->len] = '\0';
}

/* Appends one item in DynamoDB wire form: {pk "<pfx>-<k>", sk, data, n}. */
static void add_item(tb_buf *b, const char *pfx, uint64_t k, const char *sk, const char *data) {
    buf_addf(b,
             "{\"pk\":{\"S\":\"%s-%08llu\"},\"sk\":{\"S\":\"%s\"},\"data\":{\"S\":\"%s\"},"
             "\"n\":{\"N\":\"%llu\"}}",
             pfx, (unsigned long long)k, sk, data, (unsigned long long)k);
}

/* "ADD #c :one" on {pk "c-<k>", sk "0"}: the members of an Update (UpdateItem body or a
 * TransactWriteItems Update), without braces. */
static void add_counter_update(tb_buf *b, uint64_t k) {
    buf_addf(b,
             "\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"c-%08llu\"},\"sk\":{\"S\":\"0\"}},"
             "\"UpdateExpression\":\"ADD #c :one\",\"ExpressionAttributeNames\":{\"#c\":\"c\"},"
             "\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"}}",
             g.stream, (unsigned long long)k);
}

/* Body and operation of pool entry j (keys drawn from j by mix). */
static const char *body_ddb(tb_buf *b, uint64_t j, const char *data) {
    uint64_t r = mix(0xddb0000ull + j), k = r % (uint64_t)g.keys;
    b->len = 0;
    switch (g.workload) {
    case WL_PUTITEM:
        buf_addf(b, "{\"TableName\":\"%s\",\"Item\":", g.stream);
        add_item(b, "p", k, "0", data);
        buf_addf(b, "}");
        return "PutItem";
    case WL_GETITEM:
        buf_addf(b,
                 "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"g-%08llu\"},"
                 "\"sk\":{\"S\":\"0\"}}}",
                 g.stream, (unsigned long long)k);
        return "GetItem";
    case WL_UPDATEITEM:
        buf_addf(b, "{");
        add_counter_update(b, k);
        buf_addf(b, "}");
        return "UpdateItem";
    case WL_QUERY:
        buf_addf(b,
                 "{\"TableName\":\"%s\",\"KeyConditionExpression\":\"pk = :p\","
                 "\"ExpressionAttributeValues\":{\":p\":{\"S\":\"q-%08llu\"}},\"Limit\":10}",
                 g.stream, (unsigned long long)k);
        return "Query";
    case WL_TRANSACTWRITE: {
        uint64_t k2 = mix(r) % (uint64_t)g.keys;
        if (k2 == k)
            k2 = (k + 1) % (uint64_t)g.keys; /* one transaction may touch an item only once */
        buf_addf(b, "{\"TransactItems\":[{\"Update\":{");
        add_counter_update(b, k);
        buf_addf(b, "}},{\"Update\":{");
        add_counter_update(b, k2);
        buf_addf(b, "}}]}");
        return "TransactWriteItems";
    }
    }
    die("body_ddb: not a DynamoDB workload");
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP response parsing (shared by the event loop and the blocking setup calls)              */
/* ------------------------------------------------------------------------------------------ */

static void conn_reset_response(tb_conn *c) {
    c->rb.len = 0;
    c->scanned = 0;
    c->hdr_len = 0;
    c->body_len = -1;
    c->chunked = 0;
    c->cpos = 0;
    c->status = 0;
    c->close_after = 0;
}

/* Header value for name (case-insensitive) in the header block; NULL when absent. */
static const char *hdr_value(const char *h, size_t n, const char *name, size_t *vlen) {
    size_t k = strlen(name);
    const char *e = h + n, *line = memchr(h, '\n', n);
    while (line && line + 1 < e) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(e - line));
        if (!eol) eol = e;
        if ((size_t)(eol - line) > k && line[k] == ':' && strncasecmp(line, name, k) == 0) {
            const char *v = line + k + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol < e ? eol : NULL;
    }
    return NULL;
}

/* Advances the parse of c->rb.  Returns 1 when a whole response is in (body at
 * rb.p + hdr_len, body_len bytes), 0 when more bytes are needed, -1 on a malformed response. */
static int conn_parse(tb_conn *c) {
    if (!c->hdr_len) {
        size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
        const char *e = c->rb.len > from ? find(c->rb.p + from, c->rb.len - from, "\r\n\r\n")
                                         : NULL;
        if (!e) {
            c->scanned = c->rb.len;
            return c->rb.len > (1 << 20) ? -1 : 0;
        }
        c->hdr_len = (size_t)(e - c->rb.p) + 4;
        const char *p = c->rb.p;
        if (c->hdr_len < 12 || strncmp(p, "HTTP/1.", 7) != 0) return -1;
        c->status = atoi(p + 9);
        size_t vl;
        const char *v = hdr_value(p, c->hdr_len, "transfer-encoding", &vl);
        if (v && vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0) {
            c->chunked = 1;
            c->cpos = c->hdr_len;
            c->body_len = 0;
        } else if ((v = hdr_value(p, c->hdr_len, "content-length", &vl))) {
            c->body_len = strtoll(v, NULL, 10);
            if (c->body_len < 0) return -1;
        } else {
            c->body_len = 0; /* no body (we never send HEAD; fine for 204/304) */
        }
        v = hdr_value(p, c->hdr_len, "connection", &vl);
        if (v && vl == 5 && strncasecmp(v, "close", 5) == 0) c->close_after = 1;
        if (!c->chunked) buf_reserve(&c->rb, c->hdr_len + (size_t)c->body_len + 1);
    }
    if (!c->chunked) return c->rb.len >= c->hdr_len + (size_t)c->body_len ? 1 : 0;

    /* Chunked: decode in place; decoded bytes land at hdr_len + body_len, always behind cpos. */
    for (;;) {
        char *p = c->rb.p + c->cpos;
        size_t avail = c->rb.len - c->cpos;
        char *nl = memchr(p, '\n', avail);
        if (!nl) return avail > 64 ? -1 : 0;
        size_t sz = (size_t)strtoull(p, NULL, 16);
        size_t data = (size_t)(nl + 1 - c->rb.p);
        if (sz == 0) {
            /* last chunk: expect an empty line (no trailers from the servers we talk to) */
            if (c->rb.len < data + 2) return 0;
            c->cpos = data + 2;
            c->rb.len = c->cpos; /* nothing after the response is expected */
            return 1;
        }
        if (c->rb.len < data + sz + 2) return 0;
        memmove(c->rb.p + c->hdr_len + c->body_len, c->rb.p + data, sz);
        c->body_len += (long long)sz;
        c->cpos = data + sz + 2;
    }
}

static int connect_endpoint(void) {
    int fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&g.addr, g.addrlen) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Blocking call used for setup: returns the HTTP status (or -1), the body in c->rb. */
static int sync_call(tb_conn *c, const char *op, const char *body) {
    char date[17];
    amz_date_now(date);
    build_request(&c->own, op, body, strlen(body), date);
    if (c->fd < 0 && (c->fd = connect_endpoint()) < 0) return -1;
    for (size_t off = 0; off < c->own.len;) {
        ssize_t n = send(c->fd, c->own.p + off, c->own.len - off, MSG_NOSIGNAL);
        if (n <= 0) goto broken;
        off += (size_t)n;
    }
    conn_reset_response(c);
    for (;;) {
        buf_reserve(&c->rb, c->rb.len + 65536);
        ssize_t n = recv(c->fd, c->rb.p + c->rb.len, c->rb.cap - c->rb.len - 1, 0);
        if (n <= 0) goto broken;
        c->rb.len += (size_t)n;
        int r = conn_parse(c);
        if (r < 0) goto broken;
        if (r == 1) break;
    }
    c->rb.p[c->hdr_len + (size_t)c->body_len] = '\0';
    if (c->close_after) {
        close(c->fd);
        c->fd = -1;
    }
    return c->status;
broken:
    close(c->fd);
    c->fd = -1;
    return -1;
}

static const char *sync_body(tb_conn *c) { return c->rb.p + c->hdr_len; }

/* ------------------------------------------------------------------------------------------ */
/* Setup: create stream, wait for ACTIVE, list shards, pre-fill                               */
/* ------------------------------------------------------------------------------------------ */

static int describe_stream(tb_conn *c, char *status, size_t cap) {
    tb_buf b = {0};
    buf_addf(&b, "{\"StreamName\":\"%s\"}", g.stream);
    int st = sync_call(c, "DescribeStream", b.p);
    free(b.p);
    if (st != 200) return st;
    if (json_str(sync_body(c), (size_t)c->body_len, "StreamStatus", status, cap) < 0) return -1;
    return 200;
}

static void list_shards(tb_conn *c) {
    char status[64];
    int st = describe_stream(c, status, sizeof status);
    if (st != 200) {
        fprintf(stderr, "trbench: DescribeStream %s -> %d: %.300s\n", g.stream, st,
                st > 0 ? sync_body(c) : "(no response)");
        exit(2);
    }
    const char *p = sync_body(c), *e = p + c->body_len;
    g.n_shards = 0;
    while (g.n_shards < TB_MAX_SHARDS) {
        const char *s = find(p, (size_t)(e - p), "\"ShardId\"");
        if (!s) break;
        char id[256];
        if (json_str(s, (size_t)(e - s), "ShardId", id, sizeof id) < 0) break;
        /* closed shards (after resharding) still list; open ones have no EndingSequenceNumber,
         * but a fresh bench stream has none closed, so take them all */
        g.shard_ids[g.n_shards++] = strdup(id);
        p = s + 9;
    }
    if (!g.n_shards) {
        fprintf(stderr, "trbench: stream %s has no shards: %.300s\n", g.stream, sync_body(c));
        exit(2);
    }
}

static void setup_stream(tb_conn *c) {
    tb_buf b = {0};
    buf_addf(&b, "{\"StreamName\":\"%s\",\"ShardCount\":%d}", g.stream, g.setup_shards);
    int st = sync_call(c, "CreateStream", b.p);
    if (st != 200 && !(st == 400 && strstr(sync_body(c), "ResourceInUse"))) {
        fprintf(stderr, "trbench: CreateStream %s -> %d: %.300s\n", g.stream, st,
                st > 0 ? sync_body(c) : "(no response)");
        exit(2);
    }
    free(b.p);
    uint64_t deadline = now_ns() + 60ull * 1000000000ull;
    char status[64] = "";
    for (;;) {
        st = describe_stream(c, status, sizeof status);
        if (st == 200 && strcmp(status, "ACTIVE") == 0) break;
        if (now_ns() > deadline) {
            fprintf(stderr, "trbench: stream %s not ACTIVE after 60 s (status %d %s)\n", g.stream,
                    st, status);
            exit(2);
        }
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void prefill(tb_conn *c) {
    tb_buf body = {0};
    uint64_t t0 = now_ns();
    long done = 0, batch_no = 0;
    int retries = 0;
    uint64_t stop = t0 + (uint64_t)(g.prefill_time * 1e9);
    while (done < g.prefill && (done == 0 || now_ns() < stop)) {
        int n = g.prefill - done < 500 ? (int)(g.prefill - done) : 500;
        body_putrecords(&body, n, 0x5eed0000u + (uint64_t)batch_no);
        int st = sync_call(c, "PutRecords", body.p);
        long failed = st == 200 ? (long)json_int(sync_body(c), (size_t)c->body_len,
                                                 "FailedRecordCount", 0)
                                : n;
        if (st != 200 || failed) {
            if (++retries > 200) {
                fprintf(stderr, "trbench: prefill PutRecords -> %d: %.300s\n", st,
                        st > 0 ? sync_body(c) : "(no response)");
                exit(2);
            }
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
            if (st != 200) continue;
        }
        done += n - failed; /* duplicates of failed ones are fine: they are re-sent next */
        batch_no++;
    }
    double s = (double)(now_ns() - t0) / 1e9;
    fprintf(stderr, "trbench: prefilled %ld records into %s in %.1f s\n", done, g.stream, s);
    free(body.p);
}

/* ---- DynamoDB setup: table, pre-fill, request pool ---------------------------------------- */

static int describe_table(tb_conn *c, char *status, size_t cap) {
    tb_buf b = {0};
    buf_addf(&b, "{\"TableName\":\"%s\"}", g.stream);
    int st = sync_call(c, "DescribeTable", b.p);
    free(b.p);
    if (st != 200) return st;
    if (json_str(sync_body(c), (size_t)c->body_len, "TableStatus", status, cap) < 0) return -1;
    return 200;
}

/* Creates the table (hash "pk" S, range "sk" S, on demand) unless it exists; waits for ACTIVE. */
static void setup_table(tb_conn *c) {
    tb_buf b = {0};
    buf_addf(&b,
             "{\"TableName\":\"%s\",\"BillingMode\":\"PAY_PER_REQUEST\","
             "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"}],"
             "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"},"
             "{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}]}",
             g.stream);
    int st = sync_call(c, "CreateTable", b.p);
    if (st != 200 && !(st == 400 && strstr(sync_body(c), "ResourceInUse"))) {
        fprintf(stderr, "trbench: CreateTable %s -> %d: %.300s\n", g.stream, st,
                st > 0 ? sync_body(c) : "(no response)");
        exit(2);
    }
    free(b.p);
    uint64_t deadline = now_ns() + 60ull * 1000000000ull;
    char status[64] = "";
    for (;;) {
        st = describe_table(c, status, sizeof status);
        if (st == 200 && strcmp(status, "ACTIVE") == 0) break;
        if (now_ns() > deadline) {
            fprintf(stderr, "trbench: table %s not ACTIVE after 60 s (status %d %s)\n", g.stream,
                    st, status);
            exit(2);
        }
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* 1 when a BatchWriteItem response left items unprocessed ("UnprocessedItems" not {}). */
static int has_unprocessed(const char *p, size_t n) {
    const char *e = p + n, *s = find(p, n, "\"UnprocessedItems\"");
    if (!s) return 0;
    s += strlen("\"UnprocessedItems\"");
    while (s < e && (*s == ' ' || *s == ':' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    if (s < e && *s == '{') s++;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    return s < e && *s != '}';
}

/* Puts every item getitem or query reads, TB_BATCH_WRITE per BatchWriteItem; a batch with
 * UnprocessedItems (or an error) is sent again whole (puts are idempotent). */
static void prefill_table(tb_conn *c) {
    int per_key = g.workload == WL_QUERY ? g.range_items : 1;
    const char *pfx = g.workload == WL_QUERY ? "q" : "g";
    long total = g.keys * per_key, done = 0;
    int retries = 0;
    tb_buf body = {0}, data = {0};
    item_data(&data);
    uint64_t t0 = now_ns(), stop = t0 + (uint64_t)(g.prefill_time * 1e9);
    while (done < total) {
        if (now_ns() > stop) {
            fprintf(stderr, "trbench: prefill stopped after %.0f s (--prefill-time)\n",
                    g.prefill_time);
            break;
        }
        long n = total - done < TB_BATCH_WRITE ? total - done : TB_BATCH_WRITE;
        body.len = 0;
        buf_addf(&body, "{\"RequestItems\":{\"%s\":[", g.stream);
        for (long i = 0; i < n; i++) {
            long x = done + i;
            char sk[16];
            snprintf(sk, sizeof sk, per_key > 1 ? "%02ld" : "0", x % per_key);
            buf_addf(&body, "%s{\"PutRequest\":{\"Item\":", i ? "," : "");
            add_item(&body, pfx, (uint64_t)(x / per_key), sk, data.p);
            buf_addf(&body, "}}");
        }
        buf_addf(&body, "]}}");
        int st = sync_call(c, "BatchWriteItem", body.p);
        if (st != 200 || has_unprocessed(sync_body(c), (size_t)c->body_len)) {
            if (++retries > 200) {
                fprintf(stderr, "trbench: prefill BatchWriteItem -> %d: %.300s\n", st,
                        st > 0 ? sync_body(c) : "(no response)");
                exit(2);
            }
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        done += n;
    }
    fprintf(stderr, "trbench: prefilled %ld items into %s in %.1f s\n", done, g.stream,
            (double)(now_ns() - t0) / 1e9);
    free(body.p);
    free(data.p);
}

/* Builds and signs the g.pool requests every connection replays (one X-Amz-Date, g.amz_date). */
static void build_pool(void) {
    tb_buf body = {0}, req = {0}, data = {0};
    uint64_t t0 = now_ns();
    item_data(&data);
    g.pool_off = malloc(((size_t)g.pool + 1) * sizeof *g.pool_off);
    if (!g.pool_off) die("out of memory (request pool of %ld)", g.pool);
    for (long j = 0; j < g.pool; j++) {
        const char *op = body_ddb(&body, (uint64_t)j, data.p);
        build_request(&req, op, body.p, body.len, g.amz_date);
        g.pool_off[j] = g.pool_buf.len;
        buf_add(&g.pool_buf, req.p, req.len);
    }
    g.pool_off[g.pool] = g.pool_buf.len;
    if (g.verbose)
        fprintf(stderr, "trbench: signed %ld requests (%.1f MB) in %.2f s\n", g.pool,
                (double)g.pool_buf.len / 1e6, (double)(now_ns() - t0) / 1e9);
    free(body.p);
    free(req.p);
    free(data.p);
}

/* ------------------------------------------------------------------------------------------ */
/* Event loop                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void conn_set_out(tb_conn *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->th->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static int conn_open(tb_conn *c) {
    c->fd = connect_endpoint();
    if (c->fd < 0) return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    c->want_out = 0;
    return epoll_ctl(c->th->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Prepares the next request of c (getrecords builds it; DynamoDB workloads take the next pool
 * entry; the others reuse theirs). */
static void conn_next_request(tb_conn *c) {
    if (g.workload == WL_GETRECORDS) {
        tb_buf *body = &c->th->body;
        body->len = 0;
        if (c->phase == PH_ITER) {
            buf_addf(body,
                     "{\"StreamName\":\"%s\",\"ShardId\":\"%s\","
                     "\"ShardIteratorType\":\"TRIM_HORIZON\"}",
                     g.stream, c->shard_id);
            build_request(&c->own, "GetShardIterator", body->p, body->len, g.amz_date);
        } else {
            buf_addf(body, "{\"ShardIterator\":\"%s\",\"Limit\":%d}", c->iter, g.limit);
            build_request(&c->own, "GetRecords", body->p, body->len, g.amz_date);
        }
        c->req = c->own.p;
        c->req_len = c->own.len;
    } else if (WL_IS_DDB(g.workload)) {
        c->req = g.pool_buf.p + g.pool_off[c->pool_i];
        c->req_len = g.pool_off[c->pool_i + 1] - g.pool_off[c->pool_i];
        if (++c->pool_i == (size_t)g.pool) c->pool_i = 0;
    }
    c->sent = 0;
}

/* Sends what it can of the current request. Returns -1 on a broken connection. */
static int conn_send(tb_conn *c) {
    while (c->sent < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->sent, c->req_len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_set_out(c, 1);
                return 0;
            }
            if (errno == EINTR) continue;
            return -1;
        }
        c->sent += (size_t)n;
    }
    conn_set_out(c, 0);
    return 0;
}

static void conn_start(tb_conn *c) {
    conn_next_request(c);
    conn_reset_response(c);
    c->t_start = now_ns();
    if (conn_send(c) < 0) c->close_after = 2; /* handled by the caller as a broken connection */
}

static void hist_add(uint64_t *h, uint64_t us) {
    unsigned idx;
    if (us < TB_HIST_LINEAR) {
        idx = (unsigned)us;
    } else {
        unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 7 */
        idx = TB_HIST_LINEAR + (e - 7) * TB_HIST_SUB + (unsigned)((us >> (e - 6)) & 63);
        if (idx >= TB_HIST_N) idx = TB_HIST_N - 1;
    }
    h[idx]++;
}

/* Middle of bucket idx, in microseconds. */
static double hist_value(unsigned idx) {
    if (idx < TB_HIST_LINEAR) return idx;
    unsigned e = (idx - TB_HIST_LINEAR) / TB_HIST_SUB + 7;
    unsigned sub = (idx - TB_HIST_LINEAR) % TB_HIST_SUB;
    double lo = (double)((64ull + sub) << (e - 6));
    return lo + (double)(1ull << (e - 6)) / 2;
}

static int is_throttle(const tb_conn *c, const char *body, size_t n) {
    return c->status == 503 || find(body, n, "ProvisionedThroughputExceeded") ||
           find(body, n, "LimitExceeded") || find(body, n, "Throttl");
}

/* A whole response is in: account for it and decide what comes next. */
static void conn_on_response(tb_conn *c, uint64_t t_end) {
    tb_thread *th = c->th;
    tb_stats *st = &th->st;
    const char *body = c->rb.p + c->hdr_len;
    size_t blen = (size_t)c->body_len;
    int in_window = t_end >= g.t_window_start && t_end <= g.t_window_end;
    int ok = c->status >= 200 && c->status < 300;
    uint64_t records = 0;

    if (!ok && th->shown_errors < TB_MAX_ERR_SHOWN) {
        th->shown_errors++;
        fprintf(stderr, "trbench: conn %d: HTTP %d: %.300s\n", c->id, c->status, body);
    }

    if (g.workload == WL_GETRECORDS && c->phase == PH_ITER) {
        if (in_window) st->iter_calls++;
        if (ok && json_str(body, blen, "ShardIterator", c->iter, sizeof c->iter) > 0)
            c->phase = PH_RECORDS;
        else if (in_window) st->errors++;
        return; /* not a measured request */
    }

    if (ok) {
        switch (g.workload) {
        case WL_PUTRECORDS: {
            long long failed = json_int(body, blen, "FailedRecordCount", 0);
            records = (uint64_t)(g.batch - failed);
            if (in_window) st->failed_recs += (uint64_t)failed;
            break;
        }
        case WL_PUTRECORD: records = 1; break;
        case WL_GETRECORDS: {
            records = count_occ(body, blen, "\"SequenceNumber\"");
            if (records == 0) {
                c->phase = PH_ITER; /* caught up: wrap to TRIM_HORIZON */
                if (in_window) st->wraps++;
            } else if (json_str(body, blen, "NextShardIterator", c->iter, sizeof c->iter) <= 0) {
                c->phase = PH_ITER; /* shard closed or iterator missing */
            }
            break;
        }
        case WL_PUTITEM:
        case WL_UPDATEITEM: records = 1; break;
        case WL_TRANSACTWRITE: records = 2; break;
        case WL_GETITEM:
            if (find(body, blen, "\"Item\"")) records = 1;
            else if (in_window) st->misses++;
            break;
        case WL_QUERY: records = (uint64_t)json_int(body, blen, "Count", 0); break;
        }
    } else if (g.workload == WL_GETRECORDS && !is_throttle(c, body, blen)) {
        c->phase = PH_ITER; /* expired or invalid iterator: start over */
    }

    if (!in_window) return;
    st->requests++;
    st->status[c->status / 100 < 6 ? c->status / 100 : 5]++;
    st->bytes_in += blen;
    hist_add(st->hist, (t_end - c->t_start) / 1000);
    if (ok) {
        st->ok++;
        st->records += records;
    } else {
        st->errors++;
        if (is_throttle(c, body, blen)) st->throttled++;
    }
}

static int conn_reconnect(tb_conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(c->th->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->th->st.reconnects++;
    for (int i = 0; i < 50 && !g_stop; i++) {
        if (conn_open(c) == 0) return 0;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Reads what is there; on a complete response accounts for it and sends the next request. */
static int conn_on_readable(tb_conn *c) {
    for (;;) {
        size_t want = c->hdr_len && !c->chunked ? c->hdr_len + (size_t)c->body_len + 1 : 0;
        buf_reserve(&c->rb, (want > c->rb.len + 4096 ? want : c->rb.len + 65536));
        ssize_t n = recv(c->fd, c->rb.p + c->rb.len, c->rb.cap - c->rb.len - 1, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) return -1;
        c->rb.len += (size_t)n;
        int r = conn_parse(c);
        if (r < 0) return -1;
        if (r == 0) continue;
        conn_on_response(c, now_ns());
        if (c->close_after) return -1;
        if (g_stop || now_ns() >= g.t_window_end) return 0;
        conn_start(c);
        if (c->close_after == 2) return -1;
        return 0;
    }
}

static void *thread_main(void *arg) {
    tb_thread *th = arg;
    struct epoll_event evs[256];
    for (int i = 0; i < th->n_conns; i++) {
        tb_conn *c = &th->conns[i];
        if (conn_open(c) != 0) {
            fprintf(stderr, "trbench: connect to %s: %s\n", g.host, strerror(errno));
            th->fatal = 1;
            return NULL;
        }
        conn_start(c);
    }
    while (!g_stop) {
        uint64_t now = now_ns();
        if (now >= g.t_window_end) break;
        int n = epoll_wait(th->ep, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            tb_conn *c = evs[i].data.ptr;
            int rc = 0;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) rc = -1;
            if (!rc && (evs[i].events & EPOLLOUT)) rc = conn_send(c);
            if (!rc && (evs[i].events & EPOLLIN)) rc = conn_on_readable(c);
            if (rc < 0) {
                /* broken or Connection: close; the in-flight request is lost */
                if (conn_reconnect(c) != 0) {
                    fprintf(stderr, "trbench: reconnect to %s failed\n", g.host);
                    th->fatal = 1;
                    return NULL;
                }
                conn_start(c);
            }
        }
    }
    for (int i = 0; i < th->n_conns; i++)
        if (th->conns[i].fd >= 0) close(th->conns[i].fd);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Options and main                                                                           */
/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: trbench [options] WORKLOAD\n"
            "  WORKLOAD: Kinesis putrecords | putrecord | getrecords,\n"
            "            DynamoDB putitem | getitem | updateitem | query | transactwrite\n"
            "  --endpoint HOST:PORT   server (default 127.0.0.1:4567)\n"
            "  --stream NAME          stream (default trbench)\n"
            "  --table NAME           DynamoDB table (the same option as --stream)\n"
            "  --conns N              keep-alive connections = requests in flight (default 16)\n"
            "  --threads M            client threads (default 2)\n"
            "  --duration S           measured seconds (default 10)\n"
            "  --warmup S             unmeasured seconds first (default 1)\n"
            "  --key K --secret S     credentials (default $AWS_ACCESS_KEY_ID and\n"
            "                         $AWS_SECRET_ACCESS_KEY)\n"
            "  --region R             SigV4 region (default $AWS_REGION or us-east-1)\n"
            "  --setup N              create the stream with N shards if missing, wait for ACTIVE\n"
            "                         (DynamoDB: N >= 1 creates the table, pre-fills for getitem\n"
            "                         and query)\n"
            "  --prefill R            with --setup and getrecords: put R records first (50000);\n"
            "                         DynamoDB: 0 skips the pre-fill, else the whole key space\n"
            "  --prefill-time S       ... but stop pre-filling after S seconds (default 60)\n"
            "  --batch N              records per PutRecords (default 500)\n"
            "  --record-size B        bytes per record / per item's data attribute (default 100)\n"
            "  --limit L              GetRecords Limit (default 10000)\n"
            "  --keys K               DynamoDB key space (default 1000000 putitem, 1000 query\n"
            "                         hash keys, 10000 otherwise)\n"
            "  --range-items R        query: items per hash key (default 10, at most 100)\n"
            "  --pool P               DynamoDB: distinct pre-signed requests (default 65536)\n"
            "  -v                     print error bodies and progress\n");
}

static void parse_endpoint(const char *ep) {
    const char *s = strstr(ep, "://");
    if (s) ep = s + 3;
    snprintf(g.host, sizeof g.host, "%s", ep);
    size_t n = strlen(g.host);
    if (n && g.host[n - 1] == '/') g.host[n - 1] = '\0';
    char host[256], *colon = strrchr(g.host, ':');
    if (!colon) die("--endpoint wants HOST:PORT, got \"%s\"", ep);
    snprintf(host, sizeof host, "%.*s", (int)(colon - g.host), g.host);
    if (host[0] == '[') { /* [::1]:port */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) die("cannot resolve %s: %s", g.host, gai_strerror(rc));
    memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
    g.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
}

static double pct(const uint64_t *h, uint64_t total, double q) {
    if (!total) return 0;
    uint64_t rank = (uint64_t)(q * (double)total + 0.5), acc = 0;
    if (rank < 1) rank = 1;
    for (unsigned i = 0; i < TB_HIST_N; i++) {
        acc += h[i];
        if (acc >= rank) return hist_value(i);
    }
    return hist_value(TB_HIST_N - 1);
}

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'},     {"stream", required_argument, 0, 's'},
        {"conns", required_argument, 0, 'c'},        {"threads", required_argument, 0, 't'},
        {"duration", required_argument, 0, 'd'},     {"warmup", required_argument, 0, 'w'},
        {"key", required_argument, 0, 'k'},          {"secret", required_argument, 0, 'K'},
        {"region", required_argument, 0, 'r'},       {"setup", required_argument, 0, 'S'},
        {"prefill", required_argument, 0, 'p'},      {"batch", required_argument, 0, 'b'},
        {"record-size", required_argument, 0, 'z'},  {"limit", required_argument, 0, 'l'},
        {"workload", required_argument, 0, 'W'},     {"help", no_argument, 0, 'h'},
        {"prefill-time", required_argument, 0, 'P'}, {"table", required_argument, 0, 's'},
        {"keys", required_argument, 0, 'Y'},         {"range-items", required_argument, 0, 'R'},
        {"pool", required_argument, 0, 'O'},         {0, 0, 0, 0},
    };
    const char *endpoint = "127.0.0.1:4567", *wl = NULL;
    g.stream = "trbench";
    g.conns = 16;
    g.threads = 2;
    g.duration = 10;
    g.warmup = 1;
    g.key = getenv("AWS_ACCESS_KEY_ID");
    g.secret = getenv("AWS_SECRET_ACCESS_KEY");
    g.region = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
    g.prefill = 50000;
    g.prefill_time = 60;
    g.batch = 500;
    g.rec_size = 100;
    g.limit = 10000;
    g.range_items = 10;
    g.pool = 65536;
    int o;
    while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (o) {
        case 'e': endpoint = optarg; break;
        case 's': g.stream = optarg; break;
        case 'c': g.conns = atoi(optarg); break;
        case 't': g.threads = atoi(optarg); break;
        case 'd': g.duration = atof(optarg); break;
        case 'w': g.warmup = atof(optarg); break;
        case 'k': g.key = optarg; break;
        case 'K': g.secret = optarg; break;
        case 'r': g.region = optarg; break;
        case 'S': g.setup_shards = atoi(optarg); break;
        case 'p': g.prefill = atol(optarg); break;
        case 'P': g.prefill_time = atof(optarg); break;
        case 'b': g.batch = atoi(optarg); break;
        case 'z': g.rec_size = atoi(optarg); break;
        case 'l': g.limit = atoi(optarg); break;
        case 'W': wl = optarg; break;
        case 'Y': g.keys = atol(optarg); break;
        case 'R': g.range_items = atoi(optarg); break;
        case 'O': g.pool = atol(optarg); break;
        case 'v': g.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!wl && optind < argc) wl = argv[optind++];
    if (!wl || optind != argc) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(wl, "putrecords")) g.workload = WL_PUTRECORDS;
    else if (!strcmp(wl, "putrecord")) g.workload = WL_PUTRECORD;
    else if (!strcmp(wl, "getrecords")) g.workload = WL_GETRECORDS;
    else if (!strcmp(wl, "putitem")) g.workload = WL_PUTITEM;
    else if (!strcmp(wl, "getitem")) g.workload = WL_GETITEM;
    else if (!strcmp(wl, "updateitem")) g.workload = WL_UPDATEITEM;
    else if (!strcmp(wl, "query")) g.workload = WL_QUERY;
    else if (!strcmp(wl, "transactwrite")) g.workload = WL_TRANSACTWRITE;
    else
        die("unknown workload \"%s\" (putrecords, putrecord, getrecords, putitem, getitem, "
            "updateitem, query, transactwrite)",
            wl);
    g.proto = WL_IS_DDB(g.workload) ? &tb_dynamodb : &tb_kinesis;
    if (g.keys <= 0)
        g.keys = g.workload == WL_PUTITEM ? 1000000 : g.workload == WL_QUERY ? 1000 : 10000;
    g.workload_name = wl;
    if (g.conns < 1 || g.threads < 1 || g.duration <= 0 || g.warmup < 0 || g.batch < 1 ||
        g.batch > 500 || g.rec_size < 1 || g.rec_size > 65536 || g.limit < 1 || g.range_items < 1 ||
        g.range_items > 100 || g.pool < 1 || g.pool > 4000000 ||
        (g.workload == WL_TRANSACTWRITE && g.keys < 2))
        die("bad numeric option (conns, threads >= 1; duration > 0; batch 1..500; "
            "record-size 1..65536; range-items 1..100; pool 1..4000000; keys >= 2)");
    if (g.threads > g.conns) g.threads = g.conns;
    if (!g.key || !*g.key) g.key = "trbench";
    if (!g.secret || !*g.secret) g.secret = "trbench-secret";
    if (!g.region || !*g.region) g.region = "us-east-1";
    if (g.duration + g.warmup > 14 * 60)
        die("--duration + --warmup must stay under 14 minutes (the signature is replayed)");
    parse_endpoint(endpoint);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* Setup on one blocking connection. */
    tb_conn ctl = {.fd = -1};
    if (WL_IS_DDB(g.workload)) {
        if (g.setup_shards > 0) setup_table(&ctl);
        if (g.setup_shards > 0 && g.prefill > 0 &&
            (g.workload == WL_GETITEM || g.workload == WL_QUERY))
            prefill_table(&ctl);
    } else if (g.setup_shards > 0) {
        setup_stream(&ctl);
    }
    if (g.workload == WL_GETRECORDS) {
        list_shards(&ctl);
        if (g.setup_shards > 0 && g.prefill > 0) prefill(&ctl);
    }
    if (ctl.fd >= 0) close(ctl.fd);
    free(ctl.own.p);
    free(ctl.rb.p);

    /* Requests: signed once here (x-amz-date fixed for the run). */
    amz_date_now(g.amz_date);
    tb_buf body = {0};
    if (g.workload == WL_PUTRECORDS) {
        body_putrecords(&body, g.batch, 1);
        build_request(&g.shared_req, "PutRecords", body.p, body.len, g.amz_date);
    }
    if (WL_IS_DDB(g.workload)) build_pool();
    tb_thread *ths = calloc((size_t)g.threads, sizeof *ths);
    tb_conn *conns = calloc((size_t)g.conns, sizeof *conns);
    if (!ths || !conns) die("out of memory");
    for (int t = 0; t < g.threads; t++) {
        ths[t].idx = t;
        ths[t].ep = epoll_create1(EPOLL_CLOEXEC);
        ths[t].conns = calloc((size_t)(g.conns / g.threads + 1), sizeof(tb_conn));
    }
    for (int i = 0; i < g.conns; i++) {
        tb_thread *th = &ths[i % g.threads];
        tb_conn *c = &th->conns[th->n_conns++];
        c->fd = -1;
        c->id = i;
        c->th = th;
        switch (g.workload) {
        case WL_PUTRECORDS:
            c->req = g.shared_req.p;
            c->req_len = g.shared_req.len;
            break;
        case WL_PUTRECORD:
            body_putrecord(&body, 0xc0ffeeull + (uint64_t)i);
            build_request(&c->own, "PutRecord", body.p, body.len, g.amz_date);
            c->req = c->own.p;
            c->req_len = c->own.len;
            break;
        case WL_GETRECORDS:
            c->shard_id = g.shard_ids[i % g.n_shards];
            c->phase = PH_ITER;
            break;
        default: /* DynamoDB: spread the starting points over the pool */
            c->pool_i = (size_t)((uint64_t)i * (uint64_t)g.pool / (uint64_t)g.conns);
            break;
        }
    }
    free(body.p);
    free(conns);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = now_ns();
    g.t_window_start = t0 + (uint64_t)(g.warmup * 1e9);
    g.t_window_end = g.t_window_start + (uint64_t)(g.duration * 1e9);
    for (int t = 0; t < g.threads; t++) pthread_create(&ths[t].tid, NULL, thread_main, &ths[t]);
    int fatal = 0;
    tb_stats tot;
    memset(&tot, 0, sizeof tot);
    for (int t = 0; t < g.threads; t++) {
        pthread_join(ths[t].tid, NULL);
        fatal |= ths[t].fatal;
        tb_stats *s = &ths[t].st;
        for (unsigned i = 0; i < TB_HIST_N; i++) tot.hist[i] += s->hist[i];
        tot.requests += s->requests;
        tot.ok += s->ok;
        tot.records += s->records;
        tot.bytes_in += s->bytes_in;
        tot.errors += s->errors;
        tot.throttled += s->throttled;
        tot.failed_recs += s->failed_recs;
        tot.misses += s->misses;
        tot.iter_calls += s->iter_calls;
        tot.wraps += s->wraps;
        tot.reconnects += s->reconnects;
        for (int k = 0; k < 6; k++) tot.status[k] += s->status[k];
    }
    uint64_t t_end = now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                          ru0.ru_stime.tv_usec) /
                     1e6;
    double client_cpu = 100.0 * cpu / ((double)(t_end - t0) / 1e9);
    double secs = g.duration;
    if (g_stop && t_end < g.t_window_end)
        secs = t_end > g.t_window_start ? (double)(t_end - g.t_window_start) / 1e9 : 1e-9;

    double p50 = pct(tot.hist, tot.requests, 0.50) / 1000;
    double p99 = pct(tot.hist, tot.requests, 0.99) / 1000;
    double p999 = pct(tot.hist, tot.requests, 0.999) / 1000;
    printf("trbench %s -> %s %s=%s conns=%d threads=%d duration=%.1fs\n", g.workload_name, g.host,
           WL_IS_DDB(g.workload) ? "table" : "stream", g.stream, g.conns, g.threads, secs);
    printf("  requests  %llu (%.0f/s), 2xx %llu, errors %llu (throttled %llu), reconnects %llu\n",
           (unsigned long long)tot.requests, (double)tot.requests / secs,
           (unsigned long long)tot.ok, (unsigned long long)tot.errors,
           (unsigned long long)tot.throttled, (unsigned long long)tot.reconnects);
    int reads = g.workload == WL_GETRECORDS || g.workload == WL_GETITEM || g.workload == WL_QUERY;
    printf("  %s   %llu (%.0f/s)%s, response bytes %.1f MB/s\n",
           WL_IS_DDB(g.workload) ? "items  " : "records", (unsigned long long)tot.records,
           (double)tot.records / secs, reads ? " read" : " written",
           (double)tot.bytes_in / secs / 1e6);
    if (WL_IS_DDB(g.workload))
        printf("  key space %ld%s, %ld pre-signed requests%s\n", g.keys,
               g.workload == WL_QUERY ? " hash keys" : "", g.pool,
               g.workload == WL_GETITEM ? (tot.misses ? ", SOME GETS MISSED" : ", every get hit")
                                        : "");
    if (g.workload == WL_PUTRECORDS)
        printf("  FailedRecordCount total %llu\n", (unsigned long long)tot.failed_recs);
    if (g.workload == WL_GETRECORDS)
        printf("  GetShardIterator calls %llu, wraps to TRIM_HORIZON %llu\n",
               (unsigned long long)tot.iter_calls, (unsigned long long)tot.wraps);
    printf("  latency   p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms\n", p50, p99, p999);
    printf("  client CPU %.0f%% of one core (load generator's own share of the machine)\n",
           client_cpu);
    printf("RESULT workload=%s req_s=%.0f ok_s=%.0f rec_s=%.0f p50_ms=%.3f p99_ms=%.3f "
           "p999_ms=%.3f requests=%llu errors=%llu misses=%llu throttled=%llu failed_records=%llu "
           "reconnects=%llu s2xx=%llu s4xx=%llu s5xx=%llu client_cpu_pct=%.0f fatal=%d\n",
           g.workload_name, (double)tot.requests / secs, (double)tot.ok / secs,
           (double)tot.records / secs, p50, p99, p999, (unsigned long long)tot.requests,
           (unsigned long long)tot.errors, (unsigned long long)tot.misses,
           (unsigned long long)tot.throttled, (unsigned long long)tot.failed_recs,
           (unsigned long long)tot.reconnects, (unsigned long long)tot.status[2],
           (unsigned long long)tot.status[4], (unsigned long long)tot.status[5], client_cpu, fatal);
    for (int t = 0; t < g.threads; t++) {
        for (int i = 0; i < ths[t].n_conns; i++) {
            free(ths[t].conns[i].own.p);
            free(ths[t].conns[i].rb.p);
        }
        free(ths[t].conns);
        free(ths[t].body.p);
        close(ths[t].ep);
    }
    free(ths);
    free(g.shared_req.p);
    free(g.pool_buf.p);
    free(g.pool_off);
    for (int i = 0; i < g.n_shards; i++) free(g.shard_ids[i]);
    return fatal ? 1 : 0;
}
