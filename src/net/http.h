/* SPDX-License-Identifier: Apache-2.0
 *
 * http.h -- the front door: one port, one handler for every request.  HTTP/1.1 runs on
 * libmicrohttpd; cleartext HTTP/2 with prior knowledge (h2c, what the AWS SDK for JavaScript v3
 * speaks to http:// endpoints) on nghttp2.  The protocol is told from a connection's first bytes.
 *
 * The server reads a whole request (line, headers, body) into a net_req_t and calls the
 * handler once; both protocols present it the same way (HTTP/2's :authority as "host", no other
 * pseudo-header).  The handler either answers at once (fills status/body, returns NET_DONE) or
 * defers (returns NET_DEFER) and later, from ANY thread, fills the response and calls
 * net_req_resume().  A deferred request does not pin a network thread: an HTTP/1.1 connection is
 * suspended (MHD_suspend_connection) until it is resumed, an HTTP/2 stream just waits while its
 * connection carries others, so a request waiting for an fsync costs only its memory.  If an
 * HTTP/2 client resets the stream or goes away meanwhile, the resume frees the request without
 * calling finish.
 *
 * Bounds (admission, never unbounded memory):
 *   - a body larger than opts.max_body is not buffered: the handler is called with
 *     req->reject = NET_REJECT_TOO_BIG and must answer with its protocol's error;
 *   - the bodies of all requests in flight share opts.max_inflight_bytes; a request that would
 *     pass it is called with req->reject = NET_REJECT_OVERLOAD (answer with a throttling error);
 *     a response is charged to it too, from when it is queued until the client has taken it
 *     (what the handler charged with net_req_charge, topped up to the response's size);
 *   - at most opts.max_connections connections (both protocols); more wait in the kernel
 *     backlog until one closes;
 *   - per client address (both protocols): at most opts.max_conns_per_ip connections; the rest
 *     of max_connections is a reserve only other addresses can use.  A new connection from an
 *     address at its cap takes the place of that address's oldest connection that has not
 *     authenticated and (HTTP/1.1) has not sent a complete request head (which is closed); with
 *     none, the new connection is closed at once;
 *   - HTTP/1.1, time: a request head (request line and headers) must be complete within
 *     opts.header_timeout_s of the connection opening; between requests, a connection on which
 *     no request has authenticated nor passed opts.precheck is closed once
 *     opts.header_timeout_s have passed since it opened (one that passed precheck gets the head
 *     deadline again after each response; one that authenticated is only subject to the 120 s
 *     idle timeout); a request body within
 *     opts.body_timeout_s plus one second per NET_BODY_MIN_RATE bytes declared; a response must
 *     have been taken by the client within opts.body_timeout_s plus one second per
 *     NET_BODY_MIN_RATE bytes of it, however slowly it keeps reading.  Past any of them the
 *     connection is closed;
 *   - HTTP/1.1 framing: differing duplicate Content-Length, Transfer-Encoding with
 *     Content-Length, or a duplicate of a single-valued header (Host, Authorization, X-Amz-*
 *     that SigV4 or routing reads, Content-Type) is answered 400; a Transfer-Encoding other
 *     than "chunked" 501; the connection is then closed and the handler never sees the request;
 *   - header phase (both protocols): opts.precheck, when set, runs as soon as the request head is
 *     complete and before any body byte is admitted (e.g. the authentication checks that need
 *     no body); it may answer at once, and the body is then never read;
 *   - HTTP/2: at most 128 concurrent streams and 64 KiB of header text per request; header
 *     blocks of open streams are charged to 1 MiB per connection and to an eighth of
 *     opts.max_inflight_bytes in all (streams past either are refused with REFUSED_STREAM); the
 *     deadlines of HTTP/1.1 apply to each stream, whatever else its connection sends (PINGs
 *     extend nothing): its header block within opts.header_timeout_s of its HEADERS frame, its
 *     END_STREAM within opts.body_timeout_s plus one second per NET_BODY_MIN_RATE bytes
 *     declared of the end of its headers; past either, RST_STREAM CANCEL.  Its response has the
 *     HTTP/1.1 response deadline: past it the stream is reset (CANCEL) and the response freed,
 *     or, when the client reads nothing at all, the connection is closed.  A connection on which
 *     no request has authenticated is closed (GOAWAY) opts.header_timeout_s after it opened (or
 *     at the body deadline of its first request that passed the header-phase check, if later),
 *     whatever it sends; once one has, only the 120 s idle rule applies.
 *
 * Thread rules: the handler runs on a network thread (one of opts.threads for HTTP/1.1, one of
 * (opts.threads + 3) / 4 event loops for HTTP/2); a deferred request is
 * owned by whoever will call net_req_resume, exactly once.  The request and everything it
 * points to stays valid until the response has been queued after the handler or the resume.
 */
#ifndef NET_HTTP_H
#define NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "net/sigv4.h"

enum { NET_DONE = 0, NET_DEFER = 1, NET_CONTINUE = 2 };
enum { NET_REJECT_NONE = 0, NET_REJECT_TOO_BIG = 1, NET_REJECT_OVERLOAD = 2 };

#define NET_MAX_RESP_HEADERS 8
/* A response header value shorter than this is kept inside the net_req_t (no allocation). */
#define NET_RESP_HDR_INLINE 48

typedef struct net_req {
    /* ---- request, read-only for the handler ---- */
    const char *method;            /* "POST" */
    const char *path;              /* raw path as sent (not decoded), without the query */
    const char *query;             /* raw query string without '?', "" when none */
    sigv4_header_t *headers;       /* as received */
    size_t n_headers;
    uint8_t *body;                 /* NUL-terminated (not counted in body_len); owned by net */
    size_t body_len;
    int reject;                    /* NET_REJECT_* (body not kept when set) */
    int authed;                    /* set by the handler (or precheck) when the request proved
                                      its credentials: the connection is then trusted (see the
                                      bounds above) */
    char remote[64];               /* peer address, for logs */

    /* ---- response, written by the handler ---- */
    int status;                    /* HTTP status; 200 by default */
    const char *content_type;      /* static string; NULL for none */
    tr_buf out;                    /* response body; net frees it */
    const char *resp_hdr_name[NET_MAX_RESP_HEADERS];   /* static names */
    /* Owned by net: in resp_hdr_inline or malloc'd.  Set them with net_req_add_header /
     * net_req_set_header, never free one yourself (net_req_resp_free does). */
    char *resp_hdr_value[NET_MAX_RESP_HEADERS];
    int n_resp_hdr;
    char resp_hdr_inline[NET_MAX_RESP_HEADERS][NET_RESP_HDR_INLINE];

    /* ---- adapter scratch ---- */
    void *state;                   /* freed with state_free(state) when the request ends */
    void (*state_free)(void *);
    /* Deferred requests: called on the network thread after net_req_resume, before the
     * response is sent (build the response body here, not on the resuming thread).  May be
     * NULL when the resumer filled the response itself. */
    void (*finish)(struct net_req *req);

    /* ---- transport (private to net/) ---- */
    void (*resume_fn)(struct net_req *req);   /* what net_req_resume calls: HTTP/1.1 or h2 */
    struct net_server *budget_srv; /* whose in-flight budget net_req_charge charges (NULL:
                                      not a served request, nothing is charged) */
    size_t charged;                /* bytes net_req_charge added; released by net_req_resp_free */
} net_req_t;

/* Returns NET_DONE (response filled) or NET_DEFER (net_req_resume will be called later). */
typedef int (*net_handler_fn)(void *arg, net_req_t *req);
/* Header-phase check (HTTP/1.1): called once the request head is complete, with body NULL and
 * body_len 0 (reject may already be NET_REJECT_TOO_BIG from the Content-Length).  Returns
 * NET_CONTINUE to read the body and call the handler, or NET_DONE with the response filled (the
 * body is not read and the connection is closed after the response).  Must not defer. */
typedef int (*net_precheck_fn)(void *arg, net_req_t *req);

/* Minimum upload rate a declared body is given time for, on top of body_timeout_s. */
#define NET_BODY_MIN_RATE ((size_t)64 << 10)

typedef struct net_opts {
    const char *bind;              /* "127.0.0.1" */
    int port;                      /* 4566 */
    int threads;                   /* network threads; 0: 4 per CPU */
    size_t max_body;               /* 0: 16 MiB */
    size_t max_inflight_bytes;     /* 0: 512 MiB */
    unsigned max_connections;      /* 0: 126 per thread; more raises threads to match */
    unsigned max_conns_per_ip;     /* 0: max_connections - max_connections / 8 */
    unsigned header_timeout_s;     /* 0: 10 */
    unsigned body_timeout_s;       /* 0: 30 */
    net_handler_fn handler;
    void *handler_arg;             /* also passed to precheck */
    /* NULL: no header-phase check, and the server has no authentication: a connection is
     * trusted once it has completed a request. */
    net_precheck_fn precheck;
} net_opts_t;

typedef struct net_server net_server_t;

/* Bind and start serving.  TR_EIO when the address cannot be bound (message says which and
 * why: "port 4566 on 127.0.0.1 is in use; stop the other server or pass --port"). */
int net_server_start(const net_opts_t *opts, net_server_t **out, tr_err *err);
/* Wait until every request whose handler was called before this call has ended -- answered
 * (deferred ones resumed, finished and their response handed to the client) or dropped by its
 * client -- or until timeout_ms have passed.  Requests arriving meanwhile are still served but
 * not waited for.  Returns how many are still in progress (0: drained).  Call it between
 * resuming the deferred requests (closing the engines) and net_server_stop, so their answers
 * are sent.  Any thread but a network thread.  It may be called again (a longer wait, say):
 * requests that came after the first call are never waited for.  Accepts NULL (returns 0). */
int net_server_drain(net_server_t *srv, int timeout_ms);
/* Stop accepting, finish nothing more, free.  Deferred requests must have been resumed (stop
 * the engines' producers first).  Accepts NULL. */
void net_server_stop(net_server_t *srv);
/* The port actually bound (useful with port 0). */
int net_server_port(net_server_t *srv);

/* First value of header `name` (case-insensitive), or NULL. */
const char *net_req_header(const net_req_t *req, const char *name);
/* Add a response header; value is copied (short values into the request itself).  Past
 * NET_MAX_RESP_HEADERS the header is dropped. */
void net_req_add_header(net_req_t *req, const char *name, const char *value);
/* Replace the value of the first response header called `name` (case-insensitive), or add it. */
void net_req_set_header(net_req_t *req, const char *name, const char *value);
/* Free what the handler attached to req: the out buffer, the response header values, and state
 * (with state_free).  Net calls it for every request it serves; a caller that builds its own
 * net_req_t (an in-process call) calls it when done.  Idempotent. */
void net_req_resp_free(net_req_t *req);
/* Charge n more bytes of memory this request holds -- decoded copies of its body, per-record
 * arrays, the response it will send -- to the server's in-flight budget, which its body is
 * already counted against (opts.max_inflight_bytes).  Call it BEFORE allocating.  The charge
 * lasts until net_req_resp_free (the end of the request).  Returns 0, or TR_ETHROTTLED when the
 * budget would be passed (nothing charged; answer with the protocol's throttling error).  A
 * request not made by a server (an in-process call) is never refused and charges nothing.
 * Handler or finish thread; the request must not be in flight elsewhere. */
int net_req_charge(net_req_t *req, size_t n);
/* Give back everything net_req_charge added to this request (a handler that drops what it
 * allocated and starts over).  The body's own charge is not touched. */
void net_req_uncharge(net_req_t *req);
/* Hand a deferred request back to the network thread for its response.  Any thread, once. */
void net_req_resume(net_req_t *req);

#endif
