/* SPDX-License-Identifier: Apache-2.0
 *
 * http.c -- the front door (see http.h): the listening socket, the acceptor that tells HTTP/1.x
 * from HTTP/2, and the libmicrohttpd adapter for HTTP/1.x.  HTTP/2 lives in h2.c.
 *
 * Acceptor: one thread owns the listening socket.  For each accepted socket it peeks (MSG_PEEK,
 * nothing consumed) at up to 24 bytes: the HTTP/2 connection preface goes to h2.c, anything
 * else to libmicrohttpd with MHD_add_connection (which expects the request to be the next bytes
 * on the socket -- hence peeking).  A socket whose first bytes have not arrived waits in the
 * acceptor's epoll set (edge-triggered, so unread bytes do not spin it) for at most
 * opts.header_timeout_s; the acceptor never blocks on one client.  At opts.max_connections
 * (acceptor + h2 + MHD connections) the listening socket leaves the epoll set and further
 * clients wait in the kernel backlog; it is re-armed within 50 ms of a connection closing.
 * libmicrohttpd runs as opts.threads single-threaded daemons with MHD_USE_NO_LISTEN_SOCKET
 * (epoll, suspend/resume), each given at most NET__MHD_CONNS_PER_THREAD connections.
 *
 * Slow and greedy clients: every connection has a record (net__conn_t, listed in accept order)
 * made by the acceptor and kept by the MHD thread or HTTP/2 loop that serves it: its phase (head,
 * body, busy, reply, idle; or HTTP/2), its deadline and whether it authenticated.  HTTP/2
 * connections count against the per-address cap like the others; h2.c enforces their
 * deadlines itself.  The acceptor counts an
 * address's records on each accept (max_conns_per_ip: the oldest unauthenticated one without a
 * complete head gives way, or the newcomer is closed) and sweeps them every SWEEP_MS, shutting
 * down (shutdown(2): the MHD thread then sees the peer gone and closes it) any past its
 * deadline.  c_lock guards the list; MHD reports a connection closed (on_connection) before it
 * closes the fd, and the record leaves the list then, so a swept fd is never a reused one.
 *
 * Request life cycle inside MHD's access-handler protocol:
 *   1st call   (no body yet)      allocate the net_req, collect method/path/query/headers;
 *                                 framing checks and opts.precheck, which may answer at once
 *                                 (the body is then never read)
 *   next calls (upload chunks)    append to the body, admitted against max_body and the
 *                                 server-wide in-flight budget
 *   last call  (size 0)           run the handler; queue its response, or suspend
 *   after resume                  MHD calls us again: queue the response the resumer filled
 *   completed callback            free the request
 *
 * Suspend/resume race: a deferred request may be completed (on an engine thread) before the
 * network thread has suspended the connection.  Both sides increment req->sync; whichever
 * reaches 2 calls MHD_resume_connection, so resume always follows suspend.
 */
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
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

#include "core/tlog.h"
#include "net/net_int.h"

#define ACCEPT_BURST 256      /* accepts per wake-up, so pending sockets get their turn */
#define PAUSE_RETRY_MS 50     /* re-check interval while the listening socket is paused */
#define HDR_INLINE 24         /* request headers kept in the net_req itself; more are malloc'd */
#define REQ_CACHE 64          /* freed net_reqs each network thread keeps for its next requests */
#define SWEEP_MS 250 /* deadline granularity: the acceptor checks connections this often */

enum { ST_READING = 0, ST_DEFERRED = 1 };

typedef struct net_req_int {
    net_req_t pub;
    net_server_t *srv;
    struct MHD_Connection *conn;
    net__conn_t *c; /* the connection's tracking record, or NULL */
    int state;
    atomic_int sync;
    int counted; /* net__req_begin counted it (net_server_drain) */
    size_t body_cap; /* bytes charged to the in-flight budget */
    size_t expect; /* Content-Length, or 0 */
    size_t n_hdr_cap;
    tr_buf query;
    sigv4_header_t hdr_inline[HDR_INLINE];
} net_req_int_t;

static char A_LISTEN, A_WAKE; /* epoll markers in the acceptor's set */

/* Per-thread cache of freed requests.  A net_req is over 1 KiB, and glibc serves such a size from
 * its large bins, consolidating the fast bins first: a malloc per request cost more than the
 * rest of the allocator work together.  A request is allocated and freed on the network thread
 * that owns its connection, so the cache needs no lock; a thread's cache is freed when it exits
 * (key destructor). */
typedef struct req_cache {
    int n;
    struct net_req_int *v[REQ_CACHE];
} req_cache_t;
static pthread_key_t req_cache_key;
static pthread_once_t req_cache_once = PTHREAD_ONCE_INIT;

/* ---- helpers ------------------------------------------------------------------------------- */

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s); /* keep the raw, still-encoded text: SigV4 signs what was sent */
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    (void)kind;
    net_req_int_t *r = cls;
    if (r->pub.n_headers == r->n_hdr_cap) {
        if (!r->n_hdr_cap) {
            r->n_hdr_cap = HDR_INLINE;
            r->pub.headers = r->hdr_inline;
        } else {
            sigv4_header_t *h = malloc(r->n_hdr_cap * 2 * sizeof *h);
            if (!h) abort();
            memcpy(h, r->pub.headers, r->n_hdr_cap * sizeof *h);
            if (r->pub.headers != r->hdr_inline) free(r->pub.headers);
            r->pub.headers = h;
            r->n_hdr_cap *= 2;
        }
    }
    r->pub.headers[r->pub.n_headers].name = key;
    r->pub.headers[r->pub.n_headers].value = value ? value : "";
    r->pub.n_headers++;
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size) {
    (void)kind;
    net_req_int_t *r = cls;
    if (r->query.len) tr_buf_append(&r->query, "&", 1);
    tr_buf_append(&r->query, key, key_size);
    if (value) {
        tr_buf_append(&r->query, "=", 1);
        tr_buf_append(&r->query, value, value_size);
    }
    return MHD_YES;
}

const char *net_req_header(const net_req_t *req, const char *name) {
    for (size_t i = 0; i < req->n_headers; i++)
        if (!strcasecmp(req->headers[i].name, name)) return req->headers[i].value;
    return NULL;
}

/* Store a copy of value as response header i's value: inline when it fits. */
static void resp_hdr_store(net_req_t *req, int i, const char *value) {
    size_t n = strlen(value);
    char *v = n < NET_RESP_HDR_INLINE ? req->resp_hdr_inline[i] : malloc(n + 1);
    if (!v) abort();
    memcpy(v, value, n + 1);
    req->resp_hdr_value[i] = v;
}

static void resp_hdr_drop(net_req_t *req, int i) {
    if (req->resp_hdr_value[i] != req->resp_hdr_inline[i]) free(req->resp_hdr_value[i]);
    req->resp_hdr_value[i] = NULL;
}

void net_req_add_header(net_req_t *req, const char *name, const char *value) {
    if (req->n_resp_hdr == NET_MAX_RESP_HEADERS) return;
    req->resp_hdr_name[req->n_resp_hdr] = name;
    resp_hdr_store(req, req->n_resp_hdr, value);
    req->n_resp_hdr++;
}

void net_req_set_header(net_req_t *req, const char *name, const char *value) {
    for (int i = 0; i < req->n_resp_hdr; i++)
        if (!strcasecmp(req->resp_hdr_name[i], name)) {
            resp_hdr_drop(req, i);
            req->resp_hdr_name[i] = name;
            resp_hdr_store(req, i, value);
            return;
        }
    net_req_add_header(req, name, value);
}

void net__body_release(net_server_t *s, net_req_t *req, size_t *cap) {
    if (*cap) atomic_fetch_sub(&s->inflight, *cap);
    *cap = 0;
    free(req->body);
    req->body = NULL;
}

int net_req_charge(net_req_t *req, size_t n) {
    net_server_t *s = req->budget_srv;
    if (!s || !n) return 0;
    size_t before = atomic_fetch_add(&s->inflight, n);
    if (before + n > s->o.max_inflight_bytes || before + n < before) {
        atomic_fetch_sub(&s->inflight, n);
        return TR_ETHROTTLED;
    }
    req->charged += n;
    return 0;
}

void net_req_uncharge(net_req_t *req) {
    if (req->charged && req->budget_srv) atomic_fetch_sub(&req->budget_srv->inflight, req->charged);
    req->charged = 0;
}

void net__charge_response(net_req_t *req) {
    net_server_t *s = req->budget_srv;
    size_t held = req->out.cap;
    if (!s || held <= req->charged) return;
    atomic_fetch_add(&s->inflight, held - req->charged);
    req->charged = held;
}

void net_req_resp_free(net_req_t *req) {
    net_req_uncharge(req);
    tr_buf_free(&req->out);
    for (int i = 0; i < req->n_resp_hdr; i++) resp_hdr_drop(req, i);
    req->n_resp_hdr = 0;
    if (req->state && req->state_free) req->state_free(req->state);
    req->state = NULL;
}

static void release_body(net_req_int_t *r) { net__body_release(r->srv, &r->pub, &r->body_cap); }

static void req_cache_drop(void *p) {
    req_cache_t *c = p;
    for (int i = 0; i < c->n; i++) free(c->v[i]);
    free(c);
}

static void req_cache_init(void) {
    if (pthread_key_create(&req_cache_key, req_cache_drop) != 0) abort();
}

/* A zeroed net_req_int_t, from this thread's cache when it has one.  NULL when out of memory.
 * Makes the thread's cache: only threads that allocate requests keep freed ones. */
static net_req_int_t *req_alloc(void) {
    pthread_once(&req_cache_once, req_cache_init);
    req_cache_t *c = pthread_getspecific(req_cache_key);
    if (!c && (c = calloc(1, sizeof *c)) != NULL && pthread_setspecific(req_cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    if (!c || !c->n) return calloc(1, sizeof(net_req_int_t));
    net_req_int_t *r = c->v[--c->n];
    memset(r, 0, sizeof *r);
    return r;
}

static void req_release(net_req_int_t *r) {
    req_cache_t *c = pthread_getspecific(req_cache_key); /* key made by req_alloc before */
    if (c && c->n < REQ_CACHE) c->v[c->n++] = r;
    else free(r);
}

static void req_free(net_req_int_t *r) {
    if (!r) return;
    release_body(r);
    if (r->pub.headers != r->hdr_inline) free(r->pub.headers);
    tr_buf_free(&r->query);
    net_req_resp_free(&r->pub);
    req_release(r);
}

static long long mono_ms(void);
static void conn_phase(net__conn_t *c, int state, long long deadline_ms);

static enum MHD_Result send_response(net_req_int_t *r) {
    /* The response stays in memory until the client has taken it: charged to the in-flight
     * budget, and due like a body (body_timeout_s + 1 s per NET_BODY_MIN_RATE bytes) however
     * slowly the client keeps reading (the sweep closes the connection past that). */
    net__charge_response(&r->pub);
    const net_opts_t *o = &r->srv->o;
    conn_phase(r->c, NET__C_REPLY,
               mono_ms() + (long long)o->body_timeout_s * 1000 +
                   (long long)(r->pub.out.len / NET_BODY_MIN_RATE) * 1000);
    size_t len = 0;
    char *data = r->pub.out.data ? tr_buf_detach(&r->pub.out, &len) : NULL;
    struct MHD_Response *resp;
    if (len) resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    else {
        free(data);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    if (r->pub.content_type) MHD_add_response_header(resp, "Content-Type", r->pub.content_type);
    for (int i = 0; i < r->pub.n_resp_hdr; i++)
        MHD_add_response_header(resp, r->pub.resp_hdr_name[i], r->pub.resp_hdr_value[i]);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->pub.status, resp);
    MHD_destroy_response(resp);
    /* The request body is not needed any more: give its budget back early. */
    release_body(r);
    return ret;
}

/* ---- request framing ----------------------------------------------------------------------- */

/* Headers that carry one value: a second copy is either an attempt to make two readers disagree
 * (request smuggling through a proxy, a signature over "a,b" while routing reads "a") or a
 * broken client.  Transfer-Encoding is checked on its own below. */
static const char *const SINGLE_HDR[] = {
    "host",       "authorization",        "content-type",         "x-amz-target",
    "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "transfer-encoding"};

/* v without leading and trailing spaces and tabs, as (p, n). */
static const char *ows_trim(const char *v, size_t *n) {
    while (*v == ' ' || *v == '\t') v++;
    size_t k = strlen(v);
    while (k && (v[k - 1] == ' ' || v[k - 1] == '\t')) k--;
    *n = k;
    return v;
}

int net__h1_frame_check(const sigv4_header_t *h, size_t n, char *msg, size_t cap) {
    const char *cl = NULL, *te = NULL;
    size_t cl_n = 0, te_n = 0;
    unsigned seen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name ? h[i].name : "";
        const char *value = h[i].value ? h[i].value : "";
        for (size_t k = 0; k < sizeof SINGLE_HDR / sizeof SINGLE_HDR[0]; k++) {
            if (strcasecmp(name, SINGLE_HDR[k])) continue;
            if (seen & (1u << k)) {
                snprintf(msg, cap, "header %s appears more than once; send it once", SINGLE_HDR[k]);
                return 400;
            }
            seen |= 1u << k;
        }
        if (!strcasecmp(name, "transfer-encoding")) {
            te = ows_trim(value, &te_n);
        } else if (!strcasecmp(name, "content-length")) {
            size_t vn;
            const char *v = ows_trim(value, &vn);
            int digits = vn > 0 && vn <= 19;
            for (size_t k = 0; digits && k < vn; k++) digits = v[k] >= '0' && v[k] <= '9';
            if (!digits) {
                snprintf(msg, cap, "Content-Length '%.*s' is not a number of bytes",
                         (int)(vn > 40 ? 40 : vn), v);
                return 400;
            }
            if (cl && (vn != cl_n || memcmp(v, cl, vn))) {
                snprintf(msg, cap,
                         "two Content-Length headers that differ ('%.*s', '%.*s'); "
                         "send one",
                         (int)(cl_n > 20 ? 20 : cl_n), cl, (int)(vn > 20 ? 20 : vn), v);
                return 400;
            }
            cl = v;
            cl_n = vn;
        }
    }
    if (te && cl) {
        snprintf(msg, cap, "Transfer-Encoding and Content-Length together; send one of them");
        return 400;
    }
    if (te && !(te_n == 7 && !strncasecmp(te, "chunked", 7))) {
        snprintf(msg, cap,
                 "Transfer-Encoding '%.*s' is not supported; send the body with "
                 "Content-Length or Transfer-Encoding: chunked",
                 (int)(te_n > 40 ? 40 : te_n), te);
        return 501;
    }
    return 0;
}

/* ---- connection phases (see net_int.h) ------------------------------------------------------ */

static long long mono_ms(void) { return tr_mono_ns() / 1000000; }

/* Take c off the list.  c_lock held. */
static void conn_unlink(net_server_t *s, net__conn_t *c) {
    if (c->prev) c->prev->next = c->next;
    else if (s->c_head == c) s->c_head = c->next;
    if (c->next) c->next->prev = c->prev;
    else if (s->c_tail == c) s->c_tail = c->prev;
    c->prev = c->next = NULL;
}

static void conn_phase(net__conn_t *c, int state, long long deadline_ms) {
    if (!c) return;
    atomic_store(&c->deadline_ms, deadline_ms);
    atomic_store(&c->state, state);
}

/* The request's head is complete: refuse a framing we do not accept, run the header-phase
 * check, or admit the body (with its deadline).  1: answered (respond now), 0: read the body. */
static int head_complete(net_server_t *s, net_req_int_t *r) {
    char msg[256];
    int st = net__h1_frame_check(r->pub.headers, r->pub.n_headers, msg, sizeof msg);
    if (st) {
        r->pub.status = st;
        r->pub.content_type = "text/plain";
        tr_buf_reset(&r->pub.out);
        tr_buf_puts(&r->pub.out, msg);
        tr_buf_puts(&r->pub.out, "\n");
        net_req_add_header(&r->pub, "Connection", "close");
        tr_debug("http", "%s %s from %s -> %d: %s", r->pub.method, r->pub.path, r->pub.remote, st,
                 msg);
        conn_phase(r->c, NET__C_BUSY, 0);
        return 1;
    }
    if (s->o.precheck && s->o.precheck(s->o.handler_arg, &r->pub) == NET_DONE) {
        if (r->c && r->pub.authed) atomic_store(&r->c->authed, 1);
        conn_phase(r->c, NET__C_BUSY, 0);
        return 1;
    }
    if (r->c && r->pub.authed) atomic_store(&r->c->authed, 1);
    if (r->c && s->o.precheck && net_req_header(&r->pub, "Authorization"))
        atomic_store(&r->c->vouched, 1); /* its key, date and scope passed */
    /* The body gets body_timeout_s plus time for what it declares at NET_BODY_MIN_RATE (a
     * chunked body: for the largest we accept). */
    size_t len = r->expect                                      ? r->expect
                 : net_req_header(&r->pub, "Transfer-Encoding") ? s->o.max_body
                                                                : 0;
    long long ms = (long long)s->o.body_timeout_s * 1000 +
                   (long long)(len / NET_BODY_MIN_RATE) * 1000;
    conn_phase(r->c, NET__C_BODY, mono_ms() + ms);
    return 0;
}

/* ---- the access handler -------------------------------------------------------------------- */

static void h1_resume(net_req_t *req);

void net__body_append(net_server_t *s, net_req_t *req, size_t *cap_io, size_t expect,
                      const void *data, size_t n) {
    if (req->reject) return;
    size_t need = req->body_len + n + 1;
    if (need - 1 > s->o.max_body) {
        req->reject = NET_REJECT_TOO_BIG;
        net__body_release(s, req, cap_io);
        req->body_len = 0;
        return;
    }
    if (need > *cap_io) {
        /* First chunk of a body whose Content-Length is known: exactly that when it is small
         * (a small body stays one small allocation), else NET__BODY_PREALLOC; without a length
         * 4 KiB; then doubling as bytes arrive.  A declared length is not charged up front: a
         * client that claims 16 MB and sends one byte must not hold 16 MB of everybody's
         * in-flight budget. */
        size_t cap = *cap_io                       ? *cap_io * 2
                     : !expect                     ? 4096
                     : expect < NET__BODY_PREALLOC ? expect + 1
                                                   : NET__BODY_PREALLOC;
        while (cap < need) cap *= 2;
        if (need <= expect + 1 && cap > expect + 1) cap = expect + 1; /* no overshoot */
        if (cap > s->o.max_body + 1) cap = s->o.max_body + 1;
        size_t grow = cap - *cap_io;
        size_t before = atomic_fetch_add(&s->inflight, grow);
        if (before + grow > s->o.max_inflight_bytes) {
            atomic_fetch_sub(&s->inflight, grow);
            req->reject = NET_REJECT_OVERLOAD;
            net__body_release(s, req, cap_io);
            req->body_len = 0;
            return;
        }
        uint8_t *p = realloc(req->body, cap);
        if (!p) abort();
        req->body = p;
        *cap_io = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    net_server_t *s = cls;
    net_req_int_t *r = *con_cls;
    if (!r) {
        r = req_alloc();
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->pub.method = method;
        r->pub.path = url; /* MHD keeps it (as the header text) until on_completed */
        r->pub.status = 200;
        r->pub.resume_fn = h1_resume;
        r->pub.budget_srv = s;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
        MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
        r->pub.query = r->query.data ? r->query.data : "";
        const char *cl = net_req_header(&r->pub, "Content-Length");
        if (cl) r->expect = strtoull(cl, NULL, 10);
        if (r->expect > s->o.max_body) r->pub.reject = NET_REJECT_TOO_BIG;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
            inet_ntop(AF_INET, &sin->sin_addr, r->pub.remote, sizeof r->pub.remote);
        }
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->c = ci ? ci->socket_context : NULL;
        *con_cls = r;
        if (head_complete(s, r)) return send_response(r); /* the body is never read */
        return MHD_YES;
    }
    if (r->state == ST_DEFERRED) {
        if (r->pub.finish) r->pub.finish(&r->pub);
        return send_response(r);
    }
    if (*upload_data_size) {
        net__body_append(s, &r->pub, &r->body_cap, r->expect, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!r->pub.body) {
        r->pub.body = (uint8_t *)calloc(1, 1);
        if (!r->pub.body) abort();
    }
    conn_phase(r->c, NET__C_BUSY, 0);
    r->counted = net__req_begin(s);
    int rc = s->o.handler(s->o.handler_arg, &r->pub);
    if (r->c && (r->pub.authed || !s->o.precheck)) atomic_store(&r->c->authed, 1);
    if (rc == NET_DEFER) {
        r->state = ST_DEFERRED;
        MHD_suspend_connection(conn);
        if (atomic_fetch_add(&r->sync, 1) == 1) MHD_resume_connection(conn);
        return MHD_YES;
    }
    return send_response(r);
}

void net_req_resume(net_req_t *req) { req->resume_fn(req); }

static void h1_resume(net_req_t *req) {
    net_req_int_t *r = (net_req_int_t *)req;
    if (atomic_fetch_add(&r->sync, 1) == 1) MHD_resume_connection(r->conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    net_server_t *s = cls;
    (void)conn;
    (void)toe;
    net_req_int_t *r = *con_cls;
    if (r) net__req_end(s, r->counted);
    /* Waiting for the next request's head.  An authenticated connection: only MHD's idle
     * timeout.  One whose requests passed the header-phase checks (a known key; e.g. throttled
     * before its signature could be checked): the head deadline again.  Any other: the head
     * deadline counted from the connection's opening, not re-armed -- else a client without
     * credentials keeps a slot for ever by sending a request that needs none (GET /metrics)
     * within each deadline; it is closed now if that has passed.  (A request failing the
     * header-phase checks is answered with Connection: close.) */
    if (r && r->c) {
        long long head_ms = (long long)s->o.header_timeout_s * 1000;
        long long due = atomic_load(&r->c->authed)    ? 0
                        : atomic_load(&r->c->vouched) ? mono_ms() + head_ms
                                                      : r->c->open_ms + head_ms;
        conn_phase(r->c, NET__C_IDLE, due);
    }
    req_free(r);
    *con_cls = NULL;
}

/* Count a connection in (d = 1) or out (d = -1) of daemon m and of the server's total. */
static void mhd_count(net__mhd_t *m, int d) {
    atomic_fetch_add(&m->conns, d);
    atomic_fetch_add(&m->s->mhd_live, d);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    net__mhd_t *m = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    /* A connection handed over but dropped on the daemon's thread (e.g. out of memory) gets no
     * NOTIFY_CLOSED; this message is its only trace, once per drop. */
    if (m && strstr(msg, "Failed to start serving new connection")) mhd_count(m, -1);
    tr_debug("http", "%s", msg);
}

/* STARTED: find the record the acceptor made for this socket (state HANDOFF) and keep it as
 * the socket context.  CLOSED (always before libmicrohttpd closes the fd): forget it, under
 * c_lock, so the acceptor never shuts down a descriptor that may have been reused. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    net__mhd_t *m = cls;
    net_server_t *s = m->s;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        net__conn_t *found = NULL;
        pthread_mutex_lock(&s->c_lock);
        for (net__conn_t *c = s->c_head; ci && c; c = c->next)
            if (c->fd == ci->connect_fd && atomic_load(&c->state) == NET__C_HANDOFF) {
                atomic_store(&c->state, NET__C_HEADERS);
                found = c;
                break;
            }
        pthread_mutex_unlock(&s->c_lock);
        *socket_context = found;
        return;
    }
    if (code != MHD_CONNECTION_NOTIFY_CLOSED) return;
    mhd_count(m, -1);
    net__conn_t *c = *socket_context;
    if (!c) return;
    pthread_mutex_lock(&s->c_lock);
    conn_unlink(s, c);
    pthread_mutex_unlock(&s->c_lock);
    free(c);
    *socket_context = NULL;
}

/* ---- the acceptor --------------------------------------------------------------------------- */

enum { SNIFF_WAIT, SNIFF_H1, SNIFF_H2, SNIFF_CLOSE };

/* Look at the first bytes without consuming them.  hup: the peer has shut down its side. */
static int sniff(int fd, int hup) {
    char b[NET__H2_PREFACE_LEN];
    ssize_t n = recv(fd, b, sizeof b, MSG_PEEK);
    if (n < 0)
        return !hup && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? SNIFF_WAIT
                                                                                   : SNIFF_CLOSE;
    if (n == 0) return SNIFF_CLOSE;
    if (memcmp(b, NET__H2_PREFACE, (size_t)n) != 0) return SNIFF_H1;
    if (n == NET__H2_PREFACE_LEN) return SNIFF_H2;
    return hup ? SNIFF_CLOSE : SNIFF_WAIT; /* a prefix of the preface: wait for the rest */
}

/* Close a connection the acceptor still owns (state SNIFF): out of its epoll set (a no-op when
 * it was never added), the list and the count.  Acceptor thread, c_lock held. */
static void sniff_close(net_server_t *s, net__conn_t *c) {
    epoll_ctl(s->a_ep, EPOLL_CTL_DEL, c->fd, NULL);
    conn_unlink(s, c);
    close(c->fd);
    atomic_fetch_sub(&s->live, 1);
    free(c);
}

/* Stop a connection: the acceptor's own is closed; one libmicrohttpd serves is shut down, which
 * its thread sees as the peer going away (it then closes it and reports it closed).  c_lock held
 * (so the record, and its fd, are alive). */
static void conn_stop(net_server_t *s, net__conn_t *c) {
    if (atomic_load(&c->state) == NET__C_SNIFF) {
        sniff_close(s, c);
        return;
    }
    shutdown(c->fd, SHUT_RDWR);
    c->shut = 1;
}

static void route(net_server_t *s, net__conn_t *c, int how) {
    int fd = c->fd;
    if (how != SNIFF_H1) {
        if (how == SNIFF_H2) {
            /* The record stays listed (the per-address cap counts it), now h2.c's: it keeps
             * authed up to date and forgets the record when the connection closes. */
            atomic_store(&c->deadline_ms, 0);
            atomic_store(&c->state, NET__C_H2);
            net__h2_adopt(s->h2, fd, &c->peer, c); /* h2.c uncounts it from s->live */
            return;
        }
        pthread_mutex_lock(&s->c_lock);
        conn_unlink(s, c);
        pthread_mutex_unlock(&s->c_lock);
        close(fd);
        atomic_fetch_sub(&s->live, 1);
        free(c);
        return;
    }
    /* The least loaded daemon takes it, counted now (MHD's own count lags: it is kept by the
     * daemon's thread) and uncounted when MHD reports it closed.  at_limit keeps the total
     * below n_mhd * NET__MHD_CONNS_PER_THREAD, so a daemon with room exists. */
    net__mhd_t *m = &s->mhd[0];
    for (int i = 1; i < s->n_mhd; i++)
        if (atomic_load(&s->mhd[i].conns) < atomic_load(&m->conns)) m = &s->mhd[i];
    if ((unsigned)atomic_load(&m->conns) >= NET__MHD_CONNS_PER_THREAD) {
        route(s, c, SNIFF_CLOSE); /* not reached while at_limit holds */
        return;
    }
    /* The record stays listed, now the daemon's: its thread finds it by fd when it starts
     * serving the socket (on_connection), and forgets it when it reports the socket closed. */
    atomic_store(&c->state, NET__C_HANDOFF);
    atomic_fetch_sub(&s->live, 1);
    mhd_count(m, 1);
    if (MHD_add_connection(m->d, fd, (const struct sockaddr *)&c->peer, sizeof c->peer) !=
        MHD_YES) {
        tr_debug("http", "connection refused by libmicrohttpd: %s", strerror(errno));
        mhd_count(m, -1); /* MHD closed fd and will not report it */
        pthread_mutex_lock(&s->c_lock);
        conn_unlink(s, c);
        pthread_mutex_unlock(&s->c_lock);
        free(c);
    }
}

/* A new connection from peer: its record (state SNIFF, head deadline set, listed), or NULL when
 * it is refused (fd closed, uncounted).  Enforces max_conns_per_ip: at the cap, the address's
 * oldest connection that has neither a complete request head nor authentication gives way.
 * One pass over the list: O(connections) per accept. */
static net__conn_t *admit(net_server_t *s, int fd, const struct sockaddr_in *peer) {
    net__conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        atomic_fetch_sub(&s->live, 1);
        return NULL;
    }
    c->fd = fd;
    c->ip = peer->sin_addr.s_addr;
    c->peer = *peer;
    atomic_init(&c->state, NET__C_SNIFF);
    atomic_init(&c->authed, 0);
    c->open_ms = mono_ms();
    atomic_init(&c->vouched, 0);
    atomic_init(&c->deadline_ms, c->open_ms + (long long)s->o.header_timeout_s * 1000);
    unsigned n_ip = 0;
    net__conn_t *victim = NULL;
    pthread_mutex_lock(&s->c_lock);
    for (net__conn_t *x = s->c_head, *nx; x; x = nx) {
        nx = x->next;
        if (x->fd == fd) { /* a record whose socket is gone (MHD dropped it unreported) */
            conn_unlink(s, x);
            free(x);
            continue;
        }
        if (x->ip != c->ip || x->shut) continue;
        n_ip++;
        int st = atomic_load(&x->state);
        if (!victim && !atomic_load(&x->authed) &&
            (st == NET__C_SNIFF || st == NET__C_HEADERS || st == NET__C_IDLE || st == NET__C_H2))
            victim = x;
    }
    int ok = n_ip < s->o.max_conns_per_ip;
    if (!ok && victim) {
        conn_stop(s, victim);
        ok = 1;
    }
    if (ok) {
        c->prev = s->c_tail;
        if (s->c_tail) s->c_tail->next = c;
        else s->c_head = c;
        s->c_tail = c;
    }
    pthread_mutex_unlock(&s->c_lock);
    if (ok) return c;
    static tr_ratelimit ip_rl;
    unsigned dropped;
    if (tr_log_allow(&ip_rl, 1, &dropped)) {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer->sin_addr, a, sizeof a);
        tr_warn("http",
                "connection from %s closed: it has %u open, the per-address limit, all "
                "busy (raise --max-connections-per-ip)%s",
                a, n_ip, dropped ? " [repeated]" : "");
    }
    close(fd);
    atomic_fetch_sub(&s->live, 1);
    free(c);
    return NULL;
}

void net__conn_forget(net_server_t *s, net__conn_t *c) {
    pthread_mutex_lock(&s->c_lock);
    conn_unlink(s, c);
    pthread_mutex_unlock(&s->c_lock);
    free(c);
}

/* Watch a socket whose first bytes have not arrived. */
static void pend_add(net_server_t *s, net__conn_t *c) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(s->a_ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        pthread_mutex_lock(&s->c_lock);
        sniff_close(s, c);
        pthread_mutex_unlock(&s->c_lock);
    }
}

static void pend_event(net_server_t *s, net__conn_t *c, uint32_t events) {
    int how = sniff(c->fd, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    if (how == SNIFF_WAIT) return;
    epoll_ctl(s->a_ep, EPOLL_CTL_DEL, c->fd, NULL);
    route(s, c, how);
}

/* Stop every connection past its deadline: a head or body that did not arrive in time, a
 * response the client did not take in time, an unauthenticated connection idle too long.  Acceptor thread, every SWEEP_MS. */
static void sweep(net_server_t *s, long long now) {
    unsigned n = 0;
    pthread_mutex_lock(&s->c_lock);
    for (net__conn_t *c = s->c_head, *nx; c; c = nx) {
        nx = c->next;
        long long d = atomic_load(&c->deadline_ms);
        if (c->shut || !d || d > now) continue;
        int st = atomic_load(&c->state);
        if (st == NET__C_HANDOFF || st == NET__C_BUSY) continue;
        conn_stop(s, c);
        n++;
    }
    pthread_mutex_unlock(&s->c_lock);
    static tr_ratelimit sweep_rl;
    unsigned dropped;
    if (n && tr_log_allow(&sweep_rl, 1, &dropped))
        tr_info("http",
                "closed %u connection(s) that did not send a complete request, or take "
                "a response, in time (--header-timeout %u s, --body-timeout %u s + 1 s per "
                "64 KiB)%s",
                n, s->o.header_timeout_s, s->o.body_timeout_s, dropped ? " [repeated]" : "");
}

static int at_limit(net_server_t *s) {
    return (unsigned)(atomic_load(&s->live) + atomic_load(&s->mhd_live)) >= s->o.max_connections;
}

static void listen_pause(net_server_t *s, int pause) {
    if (s->a_paused == pause) return;
    struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.ptr = &A_LISTEN};
    if (epoll_ctl(s->a_ep, EPOLL_CTL_MOD, s->lfd, &ev) == 0) s->a_paused = pause;
}

static void accept_burst(net_server_t *s) {
    for (int i = 0; i < ACCEPT_BURST; i++) {
        if (at_limit(s)) {
            static tr_ratelimit limit_rl;
            unsigned dropped;
            if (tr_log_allow(&limit_rl, 1, &dropped))
                tr_warn("http",
                        "%u connections open, the limit: new clients wait until some "
                        "close (raise --max-connections)%s",
                        s->o.max_connections, dropped ? " [repeated]" : "");
            listen_pause(s, 1);
            return;
        }
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        memset(&peer, 0, sizeof peer);
        int fd = accept4(s->lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off instead of spinning. */
            static tr_ratelimit accept_rl;
            unsigned dropped;
            if (tr_log_allow(&accept_rl, 1, &dropped))
                tr_warn("http",
                        "accept: %s; new connections wait until some close (raise "
                        "ulimit -n or lower the client's connection count)%s",
                        strerror(errno), dropped ? " [repeated]" : "");
            listen_pause(s, 1);
            return;
        }
        atomic_fetch_add(&s->live, 1);
        net__conn_t *c = admit(s, fd, &peer);
        if (!c) continue;
        int how = sniff(fd, 0);
        if (how == SNIFF_WAIT) pend_add(s, c);
        else route(s, c, how);
    }
}

static void *acceptor_main(void *arg) {
    net_server_t *s = arg;
    struct epoll_event ev[64];
    long long next_sweep = 0;
    for (;;) {
        long long now = mono_ms();
        if (now >= next_sweep) {
            sweep(s, now);
            next_sweep = now + SWEEP_MS;
        }
        if (s->a_paused && !at_limit(s)) listen_pause(s, 0);
        int timeout = (int)(next_sweep - now);
        if (s->a_paused && timeout > PAUSE_RETRY_MS) timeout = PAUSE_RETRY_MS;
        int n = epoll_wait(s->a_ep, ev, 64, timeout);
        if (n < 0 && errno != EINTR) {
            tr_error("http",
                     "acceptor epoll_wait: %s; no new connections are accepted; restart "
                     "the server",
                     strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = ev[i].data.ptr;
            if (ptr == &A_WAKE) goto out; /* net_server_stop */
            if (ptr == &A_LISTEN) accept_burst(s);
            else pend_event(s, ptr, ev[i].events);
        }
    }
out:
    pthread_mutex_lock(&s->c_lock);
    for (net__conn_t *c = s->c_head, *nx; c; c = nx) {
        nx = c->next;
        if (atomic_load(&c->state) == NET__C_SNIFF) sniff_close(s, c);
    }
    pthread_mutex_unlock(&s->c_lock);
    return NULL;
}

/* The listening socket, bound and listening.  -1 with err set. */
static int listen_open(net_server_t *s, const struct sockaddr_in *sin, tr_err *err) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)sin, sizeof *sin) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        tr_err_set(err, TR_EIO,
                   "cannot listen on %s:%d (%s); stop whatever uses the port or pass --port",
                   s->o.bind, s->o.port, strerror(e));
        return -1;
    }
    struct sockaddr_in got;
    socklen_t len = sizeof got;
    s->port = getsockname(fd, (struct sockaddr *)&got, &len) == 0 ? ntohs(got.sin_port) : s->o.port;
    return fd;
}

/* ---- drain ------------------------------------------------------------------------------- */

int net__req_begin(net_server_t *s) {
    if (atomic_load(&s->draining)) return 0;
    atomic_fetch_add(&s->busy, 1);
    return 1;
}

/* The drainer sets draining before it reads busy, and we read draining after our decrement
 * (both sequentially consistent): either it sees our decrement, or we see it waiting and wake
 * it under drain_mu, which it holds from its check until it sleeps. */
void net__req_end(net_server_t *s, int counted) {
    if (!counted) return;
    if (atomic_fetch_sub(&s->busy, 1) == 1 && atomic_load(&s->draining) && s->drain_init) {
        pthread_mutex_lock(&s->drain_mu);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
}

/* drain_mu and drain_cv (on the monotonic clock); sets drain_init.  -1 when they cannot be made. */
static int drain_setup(net_server_t *s) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) return -1;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                     pthread_cond_init(&s->drain_cv, &ca) == 0
                 ? 0
                 : -1;
    pthread_condattr_destroy(&ca);
    if (rc == 0 && pthread_mutex_init(&s->drain_mu, NULL) != 0) {
        pthread_cond_destroy(&s->drain_cv);
        rc = -1;
    }
    s->drain_init = rc == 0;
    return rc;
}

int net_server_drain(net_server_t *srv, int timeout_ms) {
    if (!srv) return 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    atomic_store(&srv->draining, 1);
    pthread_mutex_lock(&srv->drain_mu);
    int left;
    while ((left = atomic_load(&srv->busy)) > 0 &&
           pthread_cond_timedwait(&srv->drain_cv, &srv->drain_mu, &until) != ETIMEDOUT) {}
    pthread_mutex_unlock(&srv->drain_mu);
    return left > 0 ? left : 0;
}

/* ---- start / stop -------------------------------------------------------------------------- */

int net_server_start(const net_opts_t *opts, net_server_t **out, tr_err *err) {
    net_server_t *s = calloc(1, sizeof *s);
    if (!s) return tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP server");
    s->o = *opts;
    s->lfd = s->a_ep = s->a_wake = -1;
    if (!s->o.bind) s->o.bind = "127.0.0.1";
    if (!s->o.max_body) s->o.max_body = 16u << 20;
    if (!s->o.max_inflight_bytes) s->o.max_inflight_bytes = 512u << 20;
    if (s->o.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->o.threads = (n > 0 ? (int)(n < 64 ? n : 64) : 2) * NET__THREADS_PER_CPU;
    }
    /* at most NET__MHD_CONNS_PER_THREAD connections per HTTP/1.1 thread (see net_int.h) */
    unsigned cap = (unsigned)s->o.threads * NET__MHD_CONNS_PER_THREAD;
    if (!s->o.max_connections) s->o.max_connections = cap;
    if (s->o.max_connections > cap)
        s->o.threads = (int)((s->o.max_connections + NET__MHD_CONNS_PER_THREAD - 1) /
                             NET__MHD_CONNS_PER_THREAD);
    /* One address may hold 7/8 of the connections: the rest is for everybody else. */
    if (!s->o.max_conns_per_ip)
        s->o.max_conns_per_ip = s->o.max_connections - s->o.max_connections / 8;
    if (s->o.max_conns_per_ip > s->o.max_connections) s->o.max_conns_per_ip = s->o.max_connections;
    if (!s->o.header_timeout_s) s->o.header_timeout_s = 10;
    if (!s->o.body_timeout_s) s->o.body_timeout_s = 30;
    if (pthread_mutex_init(&s->c_lock, NULL) != 0) {
        free(s);
        return tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP server");
    }
    s->c_lock_init = 1;
    if (drain_setup(s) != 0) {
        pthread_mutex_destroy(&s->c_lock);
        free(s);
        return tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP server");
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)s->o.port);
    if (inet_pton(AF_INET, s->o.bind, &sin.sin_addr) != 1) {
        pthread_mutex_destroy(&s->c_lock);
        free(s);
        return tr_err_set(err, TR_EINVAL,
                          "bind address \"%s\" is not an IPv4 address; pass e.g. --bind 127.0.0.1",
                          opts->bind);
    }
    int rc = TR_EIO;
    s->lfd = listen_open(s, &sin, err);
    if (s->lfd < 0) goto fail;

    /* HTTP/1.x: one single-threaded libmicrohttpd daemon per network thread, fed by the
     * acceptor (no socket of their own).  Not MHD's thread pool: its workers' connection counts
     * lag behind MHD_add_connection, so it could give one worker more than
     * NET__MHD_CONNS_PER_THREAD in a burst.  MHD's own limit has slack for connections it is
     * still cleaning up after reporting them closed. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    s->mhd = calloc((size_t)s->o.threads, sizeof *s->mhd);
    if (!s->mhd) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP server");
        goto fail;
    }
    for (int i = 0; i < s->o.threads; i++) {
        net__mhd_t *m = &s->mhd[i];
        m->s = s;
        m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                                mhd_log, m, MHD_OPTION_CONNECTION_LIMIT,
                                2 * NET__MHD_CONNS_PER_THREAD, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)NET__IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                (size_t)(16 * 1024), MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
                                NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                MHD_OPTION_NOTIFY_CONNECTION, on_connection, m, MHD_OPTION_END);
        if (!m->d) {
            rc = tr_err_set(err, TR_EIO,
                            "cannot start the HTTP/1.1 server threads (%s); raise "
                            "the thread or file-descriptor limit (ulimit -u / -n) or pass fewer "
                            "--threads",
                            strerror(errno));
            goto fail;
        }
        s->n_mhd++;
    }
    /* HTTP/2: one event loop per four network threads is plenty (a loop multiplexes). */
    rc = net__h2_start(s, (s->o.threads + 3) / 4, &s->h2, err);
    if (rc != 0) goto fail;
    rc = TR_EIO;

    s->a_ep = epoll_create1(EPOLL_CLOEXEC);
    s->a_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &A_LISTEN};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &A_WAKE};
    int e = 0;
    if (s->a_ep < 0 || s->a_wake < 0 || epoll_ctl(s->a_ep, EPOLL_CTL_ADD, s->lfd, &lev) != 0 ||
        epoll_ctl(s->a_ep, EPOLL_CTL_ADD, s->a_wake, &wev) != 0)
        e = errno;
    else if ((e = pthread_create(&s->a_thread, NULL, acceptor_main, s)) == 0) s->a_started = 1;
    if (e) {
        rc = tr_err_set(err, TR_EIO,
                        "cannot start the acceptor thread (%s); raise the thread or "
                        "file-descriptor limit (ulimit -u / -n)",
                        strerror(e));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    net_server_stop(s);
    return rc;
}

int net_server_port(net_server_t *srv) { return srv->port; }

void net_server_stop(net_server_t *srv) {
    if (!srv) return;
    if (srv->a_started) { /* no new connections; sockets not yet routed are closed */
        uint64_t one = 1;
        ssize_t w = write(srv->a_wake, &one, sizeof one);
        (void)w;
        pthread_join(srv->a_thread, NULL);
    }
    if (srv->a_ep >= 0) close(srv->a_ep);
    if (srv->a_wake >= 0) close(srv->a_wake);
    if (srv->lfd >= 0) close(srv->lfd);
    net__h2_stop(srv->h2);
    for (int i = 0; i < srv->n_mhd; i++) MHD_stop_daemon(srv->mhd[i].d);
    /* What is left never started serving (MHD dropped it unreported). */
    while (srv->c_head) {
        net__conn_t *c = srv->c_head;
        conn_unlink(srv, c);
        free(c);
    }
    if (srv->c_lock_init) pthread_mutex_destroy(&srv->c_lock);
    if (srv->drain_init) {
        pthread_mutex_destroy(&srv->drain_mu);
        pthread_cond_destroy(&srv->drain_cv);
    }
    free(srv->mhd);
    free(srv);
}
