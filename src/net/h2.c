/* SPDX-License-Identifier: Apache-2.0
 *
 * h2.c -- cleartext HTTP/2 with prior knowledge ("h2c", RFC 9113 section 3.3) on nghttp2.
 *
 * Why: the AWS SDK for JavaScript v3 sends Kinesis requests over HTTP/2 by default, and on an
 * http:// endpoint Node opens the connection with the HTTP/2 preface straight away.  The
 * acceptor in http.c recognises the preface and hands the socket here (net__h2_adopt).
 *
 * Shape: a few event-loop threads (net__h2_start), each with its own epoll set and an eventfd
 * that wakes it for three things: adopted connections, resumed requests, stop.  A connection
 * belongs to one loop for its life; nghttp2 does the framing, HPACK and flow control and we
 * feed it with nghttp2_session_mem_recv / drain it with nghttp2_session_mem_send, so the only
 * I/O is ours and non-blocking.
 *
 * Each request stream becomes an h2_stream_t whose first member is the net_req_t the handler
 * sees, filled exactly as http.c fills it: method, raw path, raw query (split from :path),
 * regular headers as received (lowercase on the wire), :authority presented as "host" unless a
 * host header came too (SigV4 signs host; a signed ":authority", as the JS SDK sends, is read
 * from host by sigv4.c), no other pseudo-header; body admitted against opts.max_body and the
 * shared in-flight budget.  The handler runs on the loop thread when the stream's END_STREAM arrives.
 *
 * Deferred requests: NET_DEFER leaves the stream in S_DEFERRED; net_req_resume (any thread)
 * queues it on its loop under the loop's mutex and wakes the loop, which calls req->finish and
 * submits the response.  If the client resets the stream or drops the connection meanwhile, the
 * stream is detached ("orphaned", conn = NULL) but not freed: the resumer still owns the
 * pointer.  The resume then frees it without calling finish.
 *
 * Bounds: SETTINGS_MAX_CONCURRENT_STREAMS H2_MAX_STREAMS per connection (nghttp2 refuses more);
 * H2_MAX_HEADER_BYTES of header text per request (more resets the stream); bodies as HTTP/1.1;
 * bytes produced by nghttp2 but not yet taken by the socket are capped near H2_OUT_BATCH per
 * connection (nghttp2 pulls response bodies from the data provider only as the socket drains,
 * and respects the peer's per-stream and connection flow-control windows).  nghttp2's own
 * limits (set in h2_new) bound SETTINGS entries, queued PING/SETTINGS acks, the RST_STREAM rate
 * and CONTINUATION frames per header block; closed streams are not kept.
 *
 * Header blocks: a stream's memory (the h2_stream_t and its header text, as allocated) is
 * charged from its HEADERS until it is freed to three budgets at once: its connection's
 * (H2_CONN_HEADER_BUDGET), the header share of the server's in-flight budget (1/H2_HEADER_SHARE
 * of opts.max_inflight_bytes, so header floods cannot starve bodies), and the in-flight budget
 * itself.  A stream that would pass one is refused (RST_STREAM REFUSED_STREAM: the client may
 * retry) and frees what it held at once.  Streams awaiting their body are capped only by
 * H2_MAX_STREAMS: clients on nghttp2 (Node's, so the JS SDK's) send a burst's HEADERS frames
 * before its DATA frames, so a lower cap refuses ordinary bursts; the budgets and the deadlines
 * bound what such streams hold, and for how long.  A stream has HTTP/1.1's deadlines, whatever
 * else the connection sends (PINGs, SETTINGS, WINDOW_UPDATEs): its header block must be complete
 * opts.header_timeout_s after its HEADERS frame began it, its END_STREAM must come
 * opts.body_timeout_s (plus a second per NET_BODY_MIN_RATE bytes of declared Content-Length)
 * after that; past either it is reset (CANCEL) and freed.
 *
 * Header phase: when a body follows the headers and opts.precheck is set, it runs as soon as the
 * headers are in (as on HTTP/1.1): an answer it gives is sent at once, the body is not admitted,
 * and the stream is reset (NO_ERROR) once the answer is out.
 *
 * Responses: charged to the in-flight budget until the stream ends (net__charge_response) and
 * due like a body, body_timeout_s + 1 s per NET_BODY_MIN_RATE bytes after being queued; past
 * that the stream is reset and its response freed (stream_late_response), or the connection
 * closed when its output is backed up (the client reads nothing: a reset could not be sent).
 *
 * Idle connections: only HEADERS and DATA frames count as activity; a connection with no open
 * stream and no request for NET__IDLE_TIMEOUT_S gets a GOAWAY and is closed, however many PINGs
 * it sends.  Until a request on it authenticates (conn_trust), a connection is closed
 * header_timeout_s after it was accepted whatever it does (see unauth_ms), and its record in
 * the acceptor's list (rec: the per-address cap, http.c) may be chosen to give way to a newer
 * connection from its address: the acceptor shuts its socket down, which the loop sees as EOF.
 *
 * Testing without a socket: net__h2_mem_open sets a session up exactly as for an adopted socket,
 * minus the socket and the thread; net__h2_mem_feed hands it client bytes (tests/fuzz/fuzz_h2.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/tlog.h"
#include "net/net_int.h"

#define H2_MAX_LOOPS 8
#define H2_MAX_STREAMS 128
#define H2_MAX_HEADER_BYTES (64 * 1024)
#define H2_CONN_HEADER_BUDGET ((size_t)1 << 20)  /* 15 full header blocks, ~500 signed requests */
#define H2_HEADER_SHARE 8        /* header blocks, all connections: 1/8 of max_inflight_bytes */
#define H2_MAX_OUTBOUND_ACK 256  /* PING / SETTINGS acks queued while the client does not read */
#define H2_MAX_SETTINGS 32       /* entries per SETTINGS frame */
#define H2_RST_BURST 256         /* incoming RST_STREAM token bucket (CVE-2023-44487) */
#define H2_RST_RATE 32           /* ... tokens per second */
#define H2_MAX_CONTINUATIONS 8   /* CONTINUATION frames per header block (CVE-2024-28182) */
#define H2_STREAM_WINDOW (1 << 20)        /* we consume at once, so large windows cost nothing */
#define H2_CONN_WINDOW (16 << 20)
#define H2_READ_CHUNK (64 * 1024)
#define H2_OUT_BATCH (64 * 1024)
#define H2_EVENTS 64
#define NOPOS ((size_t)-1)

enum { S_READING = 0, S_HANDLER, S_DEFERRED, S_RESPONDING };

typedef struct h2_conn h2_conn_t;
typedef struct h2_loop h2_loop_t;

typedef struct h2_stream {
    net_req_t pub;                /* first: net_req_t * <-> h2_stream_t * */
    h2_loop_t *loop;
    h2_conn_t *conn;              /* NULL once orphaned (see the file comment) */
    int32_t id;
    int state;
    struct h2_stream *prev, *next; /* conn->streams */
    struct h2_stream *rnext;       /* loop->rhead queue (under loop->mu) */
    size_t body_cap, expect;
    size_t resp_off;               /* bytes of pub.out handed to nghttp2 */
    /* Header text: "name\0value\0" pairs, pseudo-header values kept at the offsets below. */
    tr_buf hs;
    size_t n_hs;
    size_t off_method, off_path, off_query, off_auth;
    int has_host;
    size_t charge; /* bytes charged to the header budgets (see the file comment) */
    long long deadline_ms; /* end of its header block, then END_STREAM, due by then */
    int early; /* answered by the precheck, the client's END_STREAM not seen */
    int counted; /* net__req_begin counted it (net_server_drain) */
} h2_stream_t;

struct h2_conn {
    h2_loop_t *loop;
    int fd;
    nghttp2_session *ses;
    h2_stream_t *streams; /* open streams, and deferred ones not yet orphaned */
    uint8_t *out; /* produced by nghttp2, not yet written */
    size_t out_off, out_len, out_cap;
    int pollout; /* EPOLLOUT registered */
    int dirty; /* on the loop's to-flush list */
    int closed; /* on the loop's dead list, freed after this epoll batch */
    h2_conn_t *dnext;
    h2_conn_t *prev, *next; /* loop->conns */
    long long last_active_s; /* last HEADERS or DATA frame (PINGs do not count) */
    size_t hdr_bytes; /* header budget charged by this connection's streams */
    long long unauth_ms; /* closed at this time (monotonic ms) unless authed: accept +
                                      header_timeout_s, or the body deadline of the first
                                      request that passed the header-phase check if later */
    int grace; /* unauth_ms was extended (once per connection) */
    int authed; /* a request on it passed authentication */
    net__conn_t *rec; /* the acceptor's record (per-address cap); NULL in memory */
    char remote[64];
};

struct h2_loop {
    net__h2_t *h2;
    net_server_t *srv;
    pthread_t th;
    int started;
    int ep, efd;
    pthread_mutex_t mu; /* guards rhead/rtail, adopt, stop */
    h2_stream_t *rhead, *rtail; /* resumed, waiting for the loop */
    h2_conn_t *adopt; /* sockets handed over by the acceptor */
    int stop;
    h2_conn_t *conns; /* loop thread only */
    h2_conn_t *dead; /* closed, freed at the end of the epoll batch */
    uint8_t rbuf[H2_READ_CHUNK];
    long long date_s; /* cached Date header value */
    char date[40];
};

struct net__h2 {
    net_server_t *srv;
    int n;
    atomic_uint next;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    atomic_size_t hdr_bytes; /* header budget charged, all connections */
    size_t hdr_max; /* its bound: max_inflight_bytes / H2_HEADER_SHARE */
    h2_loop_t loops[H2_MAX_LOOPS];
};

static void h2_resume(net_req_t *req);
static void conn_close(h2_conn_t *c);

/* ---- small helpers --------------------------------------------------------------------------- */

static long long mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void loop_wake(h2_loop_t *l) {
    uint64_t one = 1;
    ssize_t w = write(l->efd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the loop will wake anyway */
}

static void set_pollout(h2_conn_t *c, int on) {
    if (c->pollout == on || c->fd < 0) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->loop->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->pollout = on;
}

static const char *loop_date(h2_loop_t *l) {
    time_t now = time(NULL);
    if ((long long)now != l->date_s) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(l->date, sizeof l->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        l->date_s = (long long)now;
    }
    return l->date;
}

/* ---- streams --------------------------------------------------------------------------------- */

static void stream_unlink(h2_stream_t *st) {
    h2_conn_t *c = st->conn;
    if (!c) return;
    c->hdr_bytes -= st->charge; /* the connection's share; the server's goes in stream_free */
    if (st->prev) st->prev->next = st->next;
    else c->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    st->prev = st->next = NULL;
}

/* Charge the stream's header memory up to `total` bytes (see the file comment).  -1, nothing
 * charged, when that would pass its connection's budget, the header share or the in-flight
 * budget.  Conn alive. */
static int stream_charge(h2_stream_t *st, size_t total) {
    if (total <= st->charge) return 0;
    size_t d = total - st->charge;
    net__h2_t *h = st->loop->h2;
    net_server_t *s = st->loop->srv;
    if (st->conn->hdr_bytes + d > H2_CONN_HEADER_BUDGET) return -1;
    if (atomic_fetch_add(&h->hdr_bytes, d) + d > h->hdr_max) {
        atomic_fetch_sub(&h->hdr_bytes, d);
        return -1;
    }
    if (atomic_fetch_add(&s->inflight, d) + d > s->o.max_inflight_bytes) {
        atomic_fetch_sub(&s->inflight, d);
        atomic_fetch_sub(&h->hdr_bytes, d);
        return -1;
    }
    st->conn->hdr_bytes += d;
    st->charge = total;
    return 0;
}

static void stream_free(h2_stream_t *st) {
    net__req_end(st->loop->srv, st->counted);
    if (st->charge) {
        atomic_fetch_sub(&st->loop->h2->hdr_bytes, st->charge);
        atomic_fetch_sub(&st->loop->srv->inflight, st->charge);
    }
    net__body_release(st->loop->srv, &st->pub, &st->body_cap);
    free(st->pub.headers);
    tr_buf_free(&st->hs);
    net_req_resp_free(&st->pub);
    free(st);
}

/* A stream is going away on the network side: free it, unless a resumer still owns it. */
static void stream_drop(h2_stream_t *st) {
    stream_unlink(st);
    st->conn = NULL;
    if (st->state != S_DEFERRED) stream_free(st);
}

/* Reset a stream still reading its request, and free it now rather than when nghttp2 has sent the
 * RST_STREAM (a client that does not read would otherwise keep it).  Conn alive. */
static void stream_refuse(h2_stream_t *st, uint32_t code) {
    h2_conn_t *c = st->conn;
    nghttp2_session_set_stream_user_data(c->ses, st->id, NULL);
    nghttp2_submit_rst_stream(c->ses, NGHTTP2_FLAG_NONE, st->id, code);
    stream_drop(st);
}

/* What st->hs will have allocated once `extra` more bytes are appended (tr_buf_reserve's
 * growth), plus the stream and the header array stream_dispatch makes: its charge. */
static size_t stream_cost(const h2_stream_t *st, size_t extra, size_t fields) {
    size_t need = st->hs.len + extra + 1, cap = st->hs.cap;
    if (need > cap) {
        cap = cap ? cap : 256;
        while (cap < need) cap *= 2;
    }
    return sizeof *st + cap + (fields + 1) * sizeof(sigv4_header_t);
}

static size_t hs_put(h2_stream_t *st, const uint8_t *p, size_t n) {
    size_t off = st->hs.len;
    tr_buf_append(&st->hs, p, n);
    tr_buf_append(&st->hs, "", 1); /* keep the NUL in the text */
    return off;
}

static int is_hop_header(const char *name) {
    return !strcasecmp(name, "connection") || !strcasecmp(name, "keep-alive") ||
           !strcasecmp(name, "transfer-encoding") || !strcasecmp(name, "upgrade") ||
           !strcasecmp(name, "proxy-connection");
}

static ssize_t body_read(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)ses;
    (void)id;
    (void)ud;
    h2_stream_t *st = src->ptr;
    size_t left = st->pub.out.len - st->resp_off;
    size_t n = left < len ? left : len;
    if (n) memcpy(buf, st->pub.out.data + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->pub.out.len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Queue the response the handler (or finish) filled.  Network thread, conn alive. */
static void stream_respond(h2_stream_t *st) {
    h2_conn_t *c = st->conn;
    net_req_t *r = &st->pub;
    st->state = S_RESPONDING;
    /* The request body is not needed any more: give its budget back early. */
    net__body_release(c->loop->srv, r, &st->body_cap);
    /* The response is held until the client takes it: charged to the in-flight budget, and due
     * like a body, body_timeout_s + 1 s per NET_BODY_MIN_RATE bytes (loop_sweep_idle). */
    net__charge_response(r);
    st->deadline_ms = mono_ms() + (long long)c->loop->srv->o.body_timeout_s * 1000 +
                      (long long)(r->out.len / NET_BODY_MIN_RATE) * 1000;

    char status[8], clen[24], names[NET_MAX_RESP_HEADERS][64];
    nghttp2_nv nv[4 + NET_MAX_RESP_HEADERS];
    size_t n = 0;
#define NV(nm, nmlen, val)                                                                         \
    do {                                                                                           \
        nv[n].name = (uint8_t *)(nm);                                                              \
        nv[n].namelen = (nmlen);                                                                   \
        nv[n].value = (uint8_t *)(val);                                                            \
        nv[n].valuelen = strlen(val);                                                              \
        nv[n].flags = NGHTTP2_NV_FLAG_NONE;                                                        \
        n++;                                                                                       \
    } while (0)
    int code = r->status >= 100 && r->status <= 999 ? r->status : 500;
    snprintf(status, sizeof status, "%d", code);
    NV(":status", 7, status);
    NV("date", 4, loop_date(c->loop));
    if (r->content_type) NV("content-type", 12, r->content_type);
    snprintf(clen, sizeof clen, "%zu", r->out.len);
    NV("content-length", 14, clen);
    for (int i = 0; i < r->n_resp_hdr; i++) {
        const char *name = r->resp_hdr_name[i];
        size_t k = strlen(name);
        if (k == 0 || k >= sizeof names[i] || is_hop_header(name)) continue;
        for (size_t j = 0; j < k; j++) /* HTTP/2 field names are lowercase (RFC 9113 8.2.1) */
            names[i][j] = (char)(name[j] >= 'A' && name[j] <= 'Z' ? name[j] + 32 : name[j]);
        NV(names[i], k, r->resp_hdr_value[i]);
    }
#undef NV
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = body_read};
    int body = r->out.len && strcmp(r->method, "HEAD") != 0;
    int rc = nghttp2_submit_response(c->ses, st->id, nv, n, body ? &dp : NULL);
    if (rc != 0) {
        tr_debug("http2", "%s: stream %d: cannot queue the response (%s)", c->remote, st->id,
                 nghttp2_strerror(rc));
        nghttp2_submit_rst_stream(c->ses, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        if (!nghttp2_session_find_stream(c->ses, st->id)) stream_drop(st);
    }
}

/* Headers complete: fill the request's method, path, query and header array from the header
 * text (which no longer moves: trailers are not kept). */
static void stream_present(h2_stream_t *st) {
    net_req_t *r = &st->pub;
    if (r->headers) return; /* done when the headers ended, for the precheck */
    char *hs = st->hs.data;
    size_t n = st->n_hs + (st->has_host || st->off_auth == NOPOS ? 0 : 1);
    r->headers = calloc(n ? n : 1, sizeof *r->headers);
    if (!r->headers) abort();
    size_t k = 0, off = 0;
    if (!st->has_host && st->off_auth != NOPOS) {
        r->headers[k].name = "host";
        r->headers[k].value = hs + st->off_auth;
        k++;
    }
    /* Regular headers were stored as "name\0value\0"; pseudo-header values sit among them. */
    for (size_t i = 0; i < st->n_hs; i++) {
        while (off == st->off_method || off == st->off_path || off == st->off_query ||
               off == st->off_auth)
            off += strlen(hs + off) + 1;
        r->headers[k].name = hs + off;
        off += strlen(hs + off) + 1;
        r->headers[k].value = hs + off;
        off += strlen(hs + off) + 1;
        k++;
    }
    r->n_headers = k;
    r->method = st->off_method != NOPOS ? hs + st->off_method : "GET";
    r->path = st->off_path != NOPOS ? hs + st->off_path : "/";
    r->query = st->off_query != NOPOS ? hs + st->off_query : "";
}

/* A request on c proved its credentials (or the server has none to check): c is trusted from
 * now on -- no unauthenticated deadline, never chosen to give way to a newcomer. */
static void conn_trust(h2_conn_t *c, const net_req_t *r) {
    if (c->authed || (!r->authed && c->loop->srv->o.precheck)) return;
    c->authed = 1;
    if (c->rec) atomic_store(&c->rec->authed, 1);
}

/* END_STREAM seen: present the request to the handler. */
static void stream_dispatch(h2_stream_t *st) {
    net_server_t *s = st->loop->srv;
    net_req_t *r = &st->pub;
    stream_present(st);
    if (!r->body) {
        r->body = calloc(1, 1);
        if (!r->body) abort();
    }
    st->state = S_HANDLER;
    st->counted = net__req_begin(s);
    int rc = s->o.handler(s->o.handler_arg, r);
    conn_trust(st->conn, r);
    if (rc == NET_DEFER) {
        st->state = S_DEFERRED;
        return;
    }
    stream_respond(st);
}

/* ---- nghttp2 callbacks (loop thread, inside mem_recv / mem_send) ----------------------------- */

static int on_begin_headers(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
    h2_conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    c->last_active_s = mono_s();
    h2_stream_t *st = calloc(1, sizeof *st);
    if (!st) abort();
    st->loop = c->loop;
    st->conn = c;
    st->id = f->hd.stream_id;
    st->deadline_ms = mono_ms() + (long long)c->loop->srv->o.header_timeout_s * 1000;
    if (stream_charge(st, stream_cost(st, 0, 0)) != 0) {
        tr_debug("http2", "%s: stream %d refused: header budget spent", c->remote, st->id);
        free(st);
        nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    st->off_method = st->off_path = st->off_query = st->off_auth = NOPOS;
    st->pub.status = 200;
    st->pub.resume_fn = h2_resume;
    st->pub.budget_srv = c->loop->srv;
    memcpy(st->pub.remote, c->remote, sizeof st->pub.remote);
    st->next = c->streams;
    if (c->streams) c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(ses, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *ses, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
    if (!st) return 0;
    if (st->hs.len + namelen + valuelen + 2 > H2_MAX_HEADER_BYTES) {
        tr_debug("http2", "%s: stream %d reset: more than %d bytes of headers", st->conn->remote,
                 st->id, H2_MAX_HEADER_BYTES);
        stream_refuse(st, NGHTTP2_INTERNAL_ERROR); /* this stream only, as nghttp2 would */
        return 0;
    }
    /* At most three strings (a :path with a query: two) for st->n_hs + 1 fields. */
    if (stream_charge(st, stream_cost(st, namelen + valuelen + 3, st->n_hs + 1)) != 0) {
        tr_debug("http2", "%s: stream %d refused: header budget spent", st->conn->remote, st->id);
        stream_refuse(st, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    if (namelen && name[0] == ':') {
        if (namelen == 7 && !memcmp(name, ":method", 7)) {
            st->off_method = hs_put(st, value, valuelen);
        } else if (namelen == 5 && !memcmp(name, ":path", 5)) {
            const uint8_t *q = memchr(value, '?', valuelen);
            size_t plen = q ? (size_t)(q - value) : valuelen;
            st->off_path = hs_put(st, value, plen);
            if (q) st->off_query = hs_put(st, q + 1, valuelen - plen - 1);
        } else if (namelen == 10 && !memcmp(name, ":authority", 10)) {
            st->off_auth = hs_put(st, value, valuelen);
        }
        return 0; /* :scheme, :protocol: not presented */
    }
    hs_put(st, name, namelen);
    size_t voff = hs_put(st, value, valuelen);
    st->n_hs++;
    if (namelen == 4 && !memcmp(name, "host", 4)) st->has_host = 1;
    if (namelen == 14 && !memcmp(name, "content-length", 14)) {
        st->expect = strtoull(st->hs.data + voff, NULL, 10);
        if (st->expect > st->loop->srv->o.max_body) st->pub.reject = NET_REJECT_TOO_BIG;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
    (void)flags;
    (void)ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ses, id);
    if (st && st->state == S_READING)
        net__body_append(st->loop->srv, &st->pub, &st->body_cap, st->expect, data, len);
    return 0;
}

static int on_frame_recv(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
    h2_conn_t *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    c->last_active_s = mono_s();
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
    if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) st->early = 0;
    if (!st || st->state != S_READING) return 0;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        stream_dispatch(st);
    } else if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        /* Headers complete: the body's deadline, as http.c gives HTTP/1.1 bodies (a declared
         * length past max_body buys no more time: that body is refused anyway). */
        const net_opts_t *o = &c->loop->srv->o;
        size_t declared = st->expect < o->max_body ? st->expect : o->max_body;
        st->deadline_ms = mono_ms() + (long long)o->body_timeout_s * 1000 +
                          (long long)(declared / NET_BODY_MIN_RATE) * 1000;
        /* A body follows: the header-phase check may answer before any of it is admitted, as
         * on HTTP/1.1 (on_frame_send then resets the stream once that answer is out). */
        if (o->precheck) {
            stream_present(st);
            st->state = S_HANDLER;
            int rc = o->precheck(o->handler_arg, &st->pub);
            if (st->pub.authed) conn_trust(c, &st->pub);
            if (rc == NET_DONE) {
                st->early = 1;
                stream_respond(st);
            } else {
                st->state = S_READING;
                /* The signature of a request whose body hash is not sent up front is checked
                 * with the body: the first such request gets its body's time to authenticate
                 * the connection (once, so streams cannot be chained to keep it). */
                if (!c->authed && !c->grace) {
                    c->grace = 1;
                    if (st->deadline_ms > c->unauth_ms) c->unauth_ms = st->deadline_ms;
                }
            }
        }
    }
    return 0;
}

/* Our END_STREAM went out.  A stream answered before the client finished its request is then
 * reset with NO_ERROR (RFC 9113 8.1: stop sending the body); else it would stay open, holding
 * its budget, until the client ends a body nobody reads. */
static int on_frame_send(nghttp2_session *ses, const nghttp2_frame *f, void *ud) {
    (void)ud;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ses, f->hd.stream_id);
    if (st && st->early) {
        st->early = 0;
        nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ses, int32_t id, uint32_t code, void *ud) {
    (void)code;
    (void)ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(ses, id);
    if (!st) return 0;
    nghttp2_session_set_stream_user_data(ses, id, NULL);
    stream_drop(st);
    return 0;
}

/* ---- connections ----------------------------------------------------------------------------- */

static void out_append(h2_conn_t *c, const uint8_t *p, size_t n) {
    if (c->out_off && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 16384;
        while (cap < c->out_len + n) cap *= 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o) abort();
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Move nghttp2's output to the socket until it is drained or the socket is full.  -1: the
 * connection is broken (close it). */
static int conn_flush(h2_conn_t *c) {
    for (;;) {
        while (c->out_len - c->out_off < H2_OUT_BATCH) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->ses, &d);
            if (n < 0) {
                tr_debug("http2", "%s: %s", c->remote, nghttp2_strerror((int)n));
                return -1;
            }
            if (n == 0) break;
            out_append(c, d, (size_t)n);
        }
        if (c->out_len == c->out_off) {
            c->out_off = c->out_len = 0;
            set_pollout(c, 0);
            return 0;
        }
        /* No socket (net__h2_mem_open): the output is produced, checked by nghttp2, dropped. */
        ssize_t w = c->fd < 0
                        ? (ssize_t)(c->out_len - c->out_off)
                        : send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_pollout(c, 1);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
        if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
    }
}

/* Flush, then close when nghttp2 says the session is over.  Returns 0 if c is still alive. */
static int conn_settle(h2_conn_t *c) {
    if (c->closed) return -1;
    if (conn_flush(c) != 0 || (!nghttp2_session_want_read(c->ses) &&
                               !nghttp2_session_want_write(c->ses) && c->out_len == c->out_off)) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Close the socket and drop the streams now; the struct itself is freed by loop_reap, after
 * every event of the current epoll batch has been looked at (a later event may name c). */
static void conn_close(h2_conn_t *c) {
    h2_loop_t *l = c->loop;
    if (c->closed) return;
    c->closed = 1;
    if (c->rec) net__conn_forget(l->srv, c->rec); /* before the fd can be reused */
    c->rec = NULL;
    if (c->fd >= 0) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    while (c->streams) {
        h2_stream_t *st = c->streams;
        nghttp2_session_set_stream_user_data(c->ses, st->id, NULL);
        stream_drop(st);
    }
    nghttp2_session_del(c->ses);
    c->ses = NULL;
    if (c->prev) c->prev->next = c->next;
    else l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = l->dead;
    l->dead = c;
    atomic_fetch_sub(&l->srv->live, 1);
}

static void loop_reap(h2_loop_t *l) {
    while (l->dead) {
        h2_conn_t *c = l->dead;
        l->dead = c->next;
        free(c->out);
        free(c);
    }
}

/* Loop thread: set up a session for an adopted socket.  The preface is still in the socket:
 * nghttp2 reads and checks it. */
static void conn_open(h2_loop_t *l, h2_conn_t *c) {
    c->loop = l;
    c->last_active_s = mono_s();
    if (nghttp2_session_server_new2(&c->ses, l->h2->cbs, c, l->h2->opt) != 0) goto fail;
    /* No RFC 7540 priorities: no priority tree, no idle streams made by PRIORITY frames. */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADER_BYTES},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(c->ses, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(c->ses, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
        goto fail;
    if (c->fd >= 0) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) goto fail;
    }
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    conn_settle(c); /* our SETTINGS go out now */
    return;
fail:
    tr_warn("http2",
            "%s: cannot set up an HTTP/2 session (out of memory or file descriptors); "
            "the connection is closed, the client will retry",
            c->remote);
    if (c->ses) nghttp2_session_del(c->ses);
    if (c->rec) net__conn_forget(l->srv, c->rec);
    if (c->fd >= 0) close(c->fd);
    free(c);
    atomic_fetch_sub(&l->srv->live, 1);
}

/* n bytes from the client: to nghttp2, then its answers out.  Returns 0 if c is still alive. */
static int conn_input(h2_conn_t *c, const uint8_t *p, size_t n) {
    ssize_t r = nghttp2_session_mem_recv(c->ses, p, n);
    if (r < 0) {
        tr_debug("http2", "%s: protocol error: %s", c->remote, nghttp2_strerror((int)r));
        conn_flush(c); /* best effort: nghttp2 may have queued a GOAWAY saying why */
        conn_close(c);
        return -1;
    }
    return conn_settle(c);
}

static void conn_readable(h2_conn_t *c, int hup) {
    ssize_t n = recv(c->fd, c->loop->rbuf, sizeof c->loop->rbuf, 0);
    if (n < 0 && !hup && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        conn_close(c); /* peer closed or reset: deferred streams are orphaned */
        return;
    }
    conn_input(c, c->loop->rbuf, (size_t)n);
}

/* ---- the loop -------------------------------------------------------------------------------- */

static void h2_resume(net_req_t *req) {
    h2_stream_t *st = (h2_stream_t *)req;
    h2_loop_t *l = st->loop;
    pthread_mutex_lock(&l->mu);
    int was_empty = l->rhead == NULL;
    st->rnext = NULL;
    if (l->rtail) l->rtail->rnext = st;
    else l->rhead = st;
    l->rtail = st;
    pthread_mutex_unlock(&l->mu);
    if (was_empty) loop_wake(l);
}

/* Returns 1 when the loop must stop. */
static int loop_drain_queues(h2_loop_t *l) {
    uint64_t v;
    ssize_t rd = read(l->efd, &v, sizeof v);
    (void)rd;
    pthread_mutex_lock(&l->mu);
    h2_stream_t *rs = l->rhead;
    h2_conn_t *ad = l->adopt;
    int stop = l->stop;
    l->rhead = l->rtail = NULL;
    l->adopt = NULL;
    pthread_mutex_unlock(&l->mu);

    while (ad) {
        h2_conn_t *c = ad;
        ad = ad->next;
        c->next = NULL;
        if (stop) {
            if (c->rec) net__conn_forget(l->srv, c->rec);
            close(c->fd);
            free(c);
            atomic_fetch_sub(&l->srv->live, 1);
        } else {
            conn_open(l, c);
        }
    }
    h2_conn_t *dirty = NULL;
    while (rs) {
        h2_stream_t *st = rs;
        rs = rs->rnext;
        if (!st->conn || stop) { /* client went away (or we are stopping): nobody to answer */
            tr_debug("http2", "%s: stream %d: the client went away before its answer was ready",
                     st->pub.remote, st->id);
            stream_unlink(st);
            st->conn = NULL;
            stream_free(st);
            continue;
        }
        if (st->pub.finish) st->pub.finish(&st->pub);
        stream_respond(st);
        h2_conn_t *c = st->conn;
        if (c && !c->dirty) {
            c->dirty = 1;
            c->dnext = dirty;
            dirty = c;
        }
    }
    while (dirty) {
        h2_conn_t *c = dirty;
        dirty = c->dnext;
        c->dirty = 0;
        conn_settle(c);
    }
    return stop;
}

/* A connection is idle when nothing came in for NET__IDLE_TIMEOUT_S and no request is open,
 * or for NET__BODY_TIMEOUT_S while requests still wait for body bytes from the client (they
 * hold in-flight budget; a request waiting on the server, S_DEFERRED, never counts). */
static int conn_stalled(const h2_conn_t *c, long long now) {
    long long quiet = now - c->last_active_s;
    if (!c->streams) return quiet >= NET__IDLE_TIMEOUT_S;
    if (quiet < NET__BODY_TIMEOUT_S) return 0;
    for (const h2_stream_t *st = c->streams; st; st = st->next)
        if (st->state != S_READING) return 0;
    return 1;
}

/* A response the client did not take by its deadline.  When the connection's output is backed
 * up (the client reads nothing) a reset could not even be sent: the connection is closed, which
 * frees every stream.  Else (the client starves this one stream of flow-control window) the
 * stream is reset (CANCEL) and its response freed now; the stream itself goes when nghttp2 has
 * sent the reset (on_stream_close).  Returns 0 while c is alive. */
static int stream_late_response(h2_conn_t *c, h2_stream_t *st) {
    const net_opts_t *o = &c->loop->srv->o;
    tr_debug("http2",
             "%s: stream %d: its %zu-byte response was not taken in time "
             "(--body-timeout %u s + 1 s per 64 KiB)%s",
             c->remote, st->id, st->pub.out.len, o->body_timeout_s,
             c->out_len > c->out_off ? "; connection closed" : "");
    if (c->out_len > c->out_off) {
        nghttp2_session_terminate_session(c->ses, NGHTTP2_CANCEL);
        conn_close(c);
        return -1;
    }
    net_req_resp_free(&st->pub); /* body_read now finds nothing left to send */
    st->resp_off = 0;
    nghttp2_submit_rst_stream(c->ses, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    return 0;
}

/* Once a second: close stalled connections and unauthenticated ones past header_timeout_s,
 * reset streams past their deadline (request not complete, response not taken). */
static void loop_sweep_idle(h2_loop_t *l, long long now_ms) {
    long long now = now_ms / 1000;
    const net_opts_t *o = &l->srv->o;
    for (h2_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        int unauth = !c->authed && now_ms >= c->unauth_ms;
        if (unauth || conn_stalled(c, now)) {
            if (unauth)
                tr_debug("http2",
                         "%s: closed: no request authenticated within %u s "
                         "(--header-timeout)",
                         c->remote, o->header_timeout_s);
            nghttp2_session_terminate_session(c->ses, NGHTTP2_NO_ERROR);
            conn_flush(c);
            conn_close(c);
            continue;
        }
        int late = 0;
        for (h2_stream_t *st = c->streams, *snext; st; st = snext) {
            snext = st->next;
            if (now_ms < st->deadline_ms) continue;
            if (st->state == S_RESPONDING) {
                if (c->out_len > c->out_off || st->pub.out.len) {
                    if (stream_late_response(c, st) != 0) break;
                    late = 1;
                }
                continue;
            }
            if (st->state != S_READING) continue;
            tr_debug("http2",
                     "%s: stream %d reset: its request was not complete in time "
                     "(--header-timeout %u s, --body-timeout %u s)",
                     c->remote, st->id, o->header_timeout_s, o->body_timeout_s);
            stream_refuse(st, NGHTTP2_CANCEL);
            late = 1;
        }
        if (late && !c->closed) conn_settle(c);
    }
}

static void *loop_main(void *arg) {
    h2_loop_t *l = arg;
    struct epoll_event ev[H2_EVENTS];
    long long last_sweep = mono_s();
    for (;;) {
        int n = epoll_wait(l->ep, ev, H2_EVENTS, 1000);
        if (n < 0 && errno != EINTR) {
            tr_error("http2", "epoll_wait: %s; HTTP/2 connections on this loop stop being served",
                     strerror(errno));
            break;
        }
        int stop = 0;
        for (int i = 0; i < n; i++)
            if (!ev[i].data.ptr) stop = loop_drain_queues(l);
        if (stop) break;
        for (int i = 0; i < n; i++) {
            h2_conn_t *c = ev[i].data.ptr;
            if (!c || c->closed) continue; /* closed earlier in this batch */
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                conn_readable(c, (ev[i].events & (EPOLLHUP | EPOLLERR)) != 0);
                continue; /* it flushed (or closed) */
            }
            if (ev[i].events & EPOLLOUT) conn_settle(c);
        }
        long long now = mono_s();
        if (now != last_sweep) {
            last_sweep = now;
            loop_sweep_idle(l, mono_ms());
        }
        loop_reap(l);
    }
    while (l->conns) conn_close(l->conns);
    /* Resumed streams (orphaned by the closes above or not) are ours now: free them. */
    loop_drain_queues(l);
    loop_reap(l);
    return NULL;
}

/* ---- public (to src/net) --------------------------------------------------------------------- */

void net__h2_adopt(net__h2_t *h, int fd, const struct sockaddr_in *peer, net__conn_t *rec) {
    h2_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        if (rec) net__conn_forget(h->srv, rec);
        close(fd);
        atomic_fetch_sub(&h->srv->live, 1);
        return;
    }
    c->fd = fd;
    c->rec = rec;
    c->unauth_ms = mono_ms() + (long long)h->srv->o.header_timeout_s * 1000;
    if (peer && peer->sin_family == AF_INET)
        inet_ntop(AF_INET, &peer->sin_addr, c->remote, sizeof c->remote);
    h2_loop_t *l = &h->loops[atomic_fetch_add(&h->next, 1) % (unsigned)h->n];
    pthread_mutex_lock(&l->mu);
    c->next = l->adopt;
    l->adopt = c;
    pthread_mutex_unlock(&l->mu);
    loop_wake(l);
}

/* The shared part of net__h2_start and net__h2_mem_open: callbacks, options, budgets. */
static net__h2_t *h2_new(net_server_t *srv) {
    net__h2_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->srv = srv;
    if (nghttp2_session_callbacks_new(&h->cbs) != 0) {
        free(h);
        return NULL;
    }
    if (nghttp2_option_new(&h->opt) != 0) {
        nghttp2_session_callbacks_del(h->cbs);
        free(h);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(h->cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(h->cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h->cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(h->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(h->cbs, on_frame_send);
    nghttp2_option_set_no_closed_streams(h->opt, 1);
    nghttp2_option_set_max_outbound_ack(h->opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_max_settings(h->opt, H2_MAX_SETTINGS);
    nghttp2_option_set_stream_reset_rate_limit(h->opt, H2_RST_BURST, H2_RST_RATE);
    nghttp2_option_set_max_continuations(h->opt, H2_MAX_CONTINUATIONS);
    h->hdr_max = srv->o.max_inflight_bytes / H2_HEADER_SHARE;
    for (int i = 0; i < H2_MAX_LOOPS; i++) h->loops[i].ep = h->loops[i].efd = -1;
    return h;
}

int net__h2_start(net_server_t *srv, int loops, net__h2_t **out, tr_err *err) {
    if (loops < 1) loops = 1;
    if (loops > H2_MAX_LOOPS) loops = H2_MAX_LOOPS;
    net__h2_t *h = h2_new(srv);
    if (!h) return tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP/2 loops");
    for (int i = 0; i < loops; i++) {
        h2_loop_t *l = &h->loops[i];
        l->h2 = h;
        l->srv = srv;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&l->mu, NULL);
        h->n = i + 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        int e = 0;
        if (l->ep < 0 || l->efd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev) != 0) e = errno;
        else if ((e = pthread_create(&l->th, NULL, loop_main, l)) == 0) l->started = 1;
        if (e) {
            net__h2_stop(h);
            return tr_err_set(err, TR_EIO,
                              "cannot start an HTTP/2 event loop: %s; raise the "
                              "process's thread or file-descriptor limit (ulimit -u / -n)",
                              strerror(e));
        }
    }
    *out = h;
    return 0;
}

void net__h2_stop(net__h2_t *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) {
        h2_loop_t *l = &h->loops[i];
        if (!l->started) continue;
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_mutex_unlock(&l->mu);
        loop_wake(l);
    }
    for (int i = 0; i < h->n; i++) {
        h2_loop_t *l = &h->loops[i];
        if (l->started) pthread_join(l->th, NULL);
        if (l->ep >= 0) close(l->ep);
        if (l->efd >= 0) close(l->efd);
        pthread_mutex_destroy(&l->mu);
    }
    nghttp2_option_del(h->opt);
    nghttp2_session_callbacks_del(h->cbs);
    free(h);
}

/* ---- a session driven from memory (net__h2_mem_*) -------------------------------------------- */

int net__h2_mem_open(net_server_t *srv, net__h2_t **out, tr_err *err) {
    net__h2_t *h = h2_new(srv);
    if (!h) return tr_err_set(err, TR_ENOMEM, "out of memory setting up an HTTP/2 session");
    h2_loop_t *l = &h->loops[0];
    l->h2 = h;
    l->srv = srv;
    pthread_mutex_init(&l->mu, NULL);
    h->n = 1;
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    h2_conn_t *c = calloc(1, sizeof *c);
    if (l->efd < 0 || !c) {
        free(c);
        net__h2_stop(h);
        return tr_err_set(err, TR_ENOMEM,
                          "cannot set up an HTTP/2 session: out of memory or "
                          "file descriptors");
    }
    c->fd = -1;
    c->unauth_ms = mono_ms() + (long long)srv->o.header_timeout_s * 1000;
    snprintf(c->remote, sizeof c->remote, "memory");
    atomic_fetch_add(&srv->live, 1);
    conn_open(l, c); /* on failure it has freed c and uncounted it */
    *out = h;
    return 0;
}

int net__h2_mem_feed(net__h2_t *h, const void *p, size_t n) {
    h2_loop_t *l = &h->loops[0];
    h2_conn_t *c = l->conns;
    int alive = c && conn_input(c, p, n) == 0;
    loop_drain_queues(l); /* requests resumed meanwhile get their answers */
    loop_reap(l);
    return alive && l->conns ? 0 : -1;
}

void net__h2_mem_tick(net__h2_t *h, int seconds) {
    h2_loop_t *l = &h->loops[0];
    loop_drain_queues(l);
    loop_sweep_idle(l, mono_ms() + seconds * 1000LL);
    loop_reap(l);
}

void net__h2_mem_close(net__h2_t *h) {
    if (!h) return;
    h2_loop_t *l = &h->loops[0];
    while (l->conns) conn_close(l->conns);
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_mutex_unlock(&l->mu);
    loop_drain_queues(l); /* resumed streams, orphaned by the close, are freed */
    loop_reap(l);
    net__h2_stop(h);
}
