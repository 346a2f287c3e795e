/*
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
 *   - at most opts.max_connections connections (both protocols); more wait in the kernel
 *     backlog until one closes;
 *   - HTTP/2: at most 128 concurrent streams and 64 KiB of header text per request; header
 *     blocks of open streams are charged to 1 MiB per connection and to an eighth of
 *     opts.max_inflight_bytes in all (streams past either are refused with REFUSED_STREAM); a
 *     request must be complete opts.h2_stream_timeout_s after its headers began (else
 *     RST_STREAM CANCEL), whatever else the connection sends (PINGs extend nothing).
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

enum { NET_DONE = 0, NET_DEFER = 1 };
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
} net_req_t;

/* Returns NET_DONE (response filled) or NET_DEFER (net_req_resume will be called later). */
typedef int (*net_handler_fn)(void *arg, net_req_t *req);

typedef struct net_opts {
    const char *bind;              /* "127.0.0.1" */
    int port;                      /* 4566 */
    int threads;                   /* network threads; 0: 4 per CPU */
    size_t max_body;               /* 0: 16 MiB */
    size_t max_inflight_bytes;     /* 0: 512 MiB */
    unsigned max_connections;      /* 0: 126 per thread; more raises threads to match */
    int h2_stream_timeout_s;       /* HTTP/2: a request's HEADERS to its END_STREAM; 0: 60 */
    net_handler_fn handler;
    void *handler_arg;
} net_opts_t;

typedef struct net_server net_server_t;

/* Bind and start serving.  TR_EIO when the address cannot be bound (message says which and
 * why: "port 4566 on 127.0.0.1 is in use; stop the other server or pass --port"). */
int net_server_start(const net_opts_t *opts, net_server_t **out, tr_err *err);
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
/* Hand a deferred request back to the network thread for its response.  Any thread, once. */
void net_req_resume(net_req_t *req);

#endif
