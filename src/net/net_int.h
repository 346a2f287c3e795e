/* SPDX-License-Identifier: Apache-2.0
 *
 * net_int.h -- private to src/net: what http.c (the front door, HTTP/1.1 on libmicrohttpd)
 * and h2.c (cleartext HTTP/2 on nghttp2) share.  Not API: nothing outside src/net includes it.
 *
 * One listening socket serves both protocols.  http.c owns it and runs the acceptor thread: it
 * accepts, peeks at the first bytes without consuming them (MSG_PEEK, bounded by
 * NET__SNIFF_TIMEOUT_MS), and hands the socket either to libmicrohttpd (MHD_add_connection) or,
 * when they are the HTTP/2 connection preface, to h2.c (net__h2_adopt).  Both halves build the
 * same net_req_t, admit bodies against the same budget (net__body_append) and free responses
 * the same way (net_req_resp_free).
 */
#ifndef NET_INT_H
#define NET_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/err.h"
#include "net/http.h"

/* The client connection preface of RFC 9113 section 3.4 ("prior knowledge"). */
#define NET__H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define NET__H2_PREFACE_LEN 24
/* A connection that has not sent enough bytes to tell its protocol within opts.header_timeout_s
 * is closed (the bound an HTTP/1.1 request head has). */
#define NET__IDLE_TIMEOUT_S 120
/* libmicrohttpd 0.9.75's epoll loop calls epoll_wait again, with the full timeout, whenever a
 * call filled its 128-event buffer; if every ready event was in that batch, the worker sleeps
 * (up to NET__IDLE_TIMEOUT_S) with those requests unread.  A worker with at most 126 connections
 * (+ its wake-up fd) can never fill the buffer, so that is the per-thread connection cap. */
#define NET__MHD_CONNS_PER_THREAD 126u
#define NET__THREADS_PER_CPU 4   /* measured on 2 cores, 256 clients: 4/CPU best (2: -15%) */
#define NET__BODY_PREALLOC ((size_t)64 << 10)   /* most of a declared body charged up front */
#define NET__BODY_TIMEOUT_S                                                                        \
    30   /* an HTTP/2 connection whose requests wait for body bytes
                                    that do not come is closed after this long */

typedef struct net__h2 net__h2_t;
typedef struct net__conn net__conn_t;

/* Phases of a connection the acceptor tracks (net__conn_t.state).  Every connection is tracked,
 * HTTP/2 ones too (for the per-address cap). */
enum {
    NET__C_SNIFF,     /* the acceptor's, protocol not known yet */
    NET__C_HANDOFF,   /* given to libmicrohttpd, not yet started by its thread */
    NET__C_HEADERS,   /* first request head being received */
    NET__C_BODY,      /* head complete and admitted, body being received */
    NET__C_BUSY,      /* request complete, in the handler or deferred: no deadline */
    NET__C_IDLE,      /* response sent; waiting for the next request head */
    NET__C_REPLY,     /* response queued, being sent: due by its deadline (see http.h) */
    NET__C_H2,        /* handed to h2.c, which keeps authed up to date and enforces its own
                         deadlines (deadline_ms stays 0); unauthenticated ones may give way */
};

/* One tracked connection: from accept until libmicrohttpd or h2.c closes it (net__conn_forget).
 * fd, ip, t_open and the list links belong to the acceptor and s->c_lock; state, deadline and
 * authed are written by the connection's network thread and read by the acceptor's sweep. */
struct net__conn {
    int fd;
    uint32_t ip;                  /* IPv4, network order */
    struct sockaddr_in peer;
    atomic_int state;             /* NET__C_* */
    atomic_int authed;            /* a request on it authenticated: never evicted, no idle
                                     deadline */
    atomic_llong deadline_ms;     /* monotonic ms; 0: none */
    long long open_ms;            /* monotonic ms at accept: an HTTP/1.1 connection neither
                                     authenticated nor vouched lives at most
                                     opts.header_timeout_s from it, between requests */
    atomic_int vouched;           /* HTTP/1.1: a request on it passed opts.precheck (a known
                                     access key, date and scope; e.g. throttled before its
                                     signature was checked): head deadline re-armed after each
                                     response, as for a client that may yet authenticate */
    int shut;                     /* acceptor: shutdown() done (expired or evicted) */
    net__conn_t *prev, *next;     /* s->c_head list, in accept order (oldest first) */
};

/* One libmicrohttpd daemon (one thread, its own epoll set) of the HTTP/1.1 side. */
typedef struct net__mhd {
    struct MHD_Daemon *d;        /* started without a listening socket */
    atomic_int conns;            /* counted by the acceptor when it hands a socket over, uncounted
                                    at MHD_CONNECTION_NOTIFY_CLOSED: never above
                                    NET__MHD_CONNS_PER_THREAD */
    net_server_t *s;
} net__mhd_t;

struct net_server {
    net_opts_t o;                /* defaults filled in */
    net__mhd_t *mhd;             /* HTTP/1.1: o.threads daemons, fed by the acceptor */
    int n_mhd;
    net__h2_t *h2;               /* HTTP/2 event loops */
    int lfd;                     /* the listening socket (acceptor's) */
    int port;
    atomic_size_t inflight;      /* request-body bytes admitted, all protocols */
    atomic_int live;             /* connections held by the acceptor or by h2.c */
    atomic_int mhd_live;         /* connections held by libmicrohttpd (sum of mhd[].conns) */
    /* net_server_drain: requests counted by net__req_begin and not yet ended; drain_mu and
     * drain_cv (monotonic clock) are initialised when drain_init is set (net_server_start) */
    atomic_int busy;
    atomic_int draining;         /* net_server_drain has begun: new requests are not counted */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
    int drain_init;
    /* acceptor thread (http.c); all but a_wake are the acceptor's own */
    pthread_t a_thread;
    int a_started;
    int a_ep, a_wake;            /* epoll set; eventfd written by net_server_stop */
    int a_paused;                /* listening socket out of the epoll set (at the limit) */
    /* tracked connections (acceptor-phase and HTTP/1.1), oldest first; c_lock guards the list
     * and keeps a record (and so its fd) alive while the acceptor shuts one down */
    pthread_mutex_t c_lock;
    int c_lock_init;
    net__conn_t *c_head, *c_tail;
};

/* ---- HTTP/1.1 framing ----------------------------------------------------------------------- */

/* Check a complete request head (headers as received, duplicates kept) for the framings we
 * refuse (see http.h): returns 0, or the HTTP status to answer (400, 501) with a sentence for
 * the client in msg (cap bytes, NUL-terminated). */
int net__h1_frame_check(const sigv4_header_t *h, size_t n, char *msg, size_t cap);

/* ---- request bodies: admission against opts.max_body and opts.max_inflight_bytes ---------- */

/* Append n bytes to req->body.  *cap is the number of bytes this request has charged to the
 * server's in-flight budget (0 at first); expect the announced Content-Length (0 if none), used
 * to size the first allocation.  Over max_body sets req->reject = NET_REJECT_TOO_BIG, over the
 * budget NET_REJECT_OVERLOAD; either way the body is dropped and later chunks are ignored.
 * Allocation failure aborts (the sizes are bounded by the budget). */
void net__body_append(net_server_t *s, net_req_t *req, size_t *cap, size_t expect, const void *data,
                      size_t n);
/* Free req->body and give its charge back.  Idempotent. */
void net__body_release(net_server_t *s, net_req_t *req, size_t *cap);

/* ---- in-progress requests, for net_server_drain ------------------------------------------ */

/* The handler is about to run on a request: count it as in progress until net__req_end.
 * Returns 1 when counted (pass that to net__req_end), 0 when a drain has already begun (a
 * request that comes after the drain started is not waited for).  Network thread. */
int net__req_begin(net_server_t *s);
/* The request counted by net__req_begin (counted = its return value) is over: its response was
 * handed to the client, or the client went away.  Wakes net_server_drain at the last one. */
void net__req_end(net_server_t *s, int counted);

/* ---- HTTP/2 (h2.c) ----------------------------------------------------------------------- */

/* Start `loops` event-loop threads (1..8).  TR_ENOMEM / TR_EIO with a message. */
int net__h2_start(net_server_t *srv, int loops, net__h2_t **out, tr_err *err);
/* Take over an accepted, non-blocking socket whose first bytes are the preface (not yet
 * consumed), with its record rec (listed, state NET__C_H2).  Always takes ownership of fd and
 * rec (on failure: forgets rec, then closes fd).  Any thread; the caller has already counted
 * the connection in srv->live (h2.c uncounts it when it closes). */
void net__h2_adopt(net__h2_t *h, int fd, const struct sockaddr_in *peer, net__conn_t *rec);

/* The connection of record c is closing: take c off the acceptor's list (under c_lock) and free
 * it.  Call it BEFORE closing c->fd (the acceptor may shut the fd down while c is listed). */
void net__conn_forget(net_server_t *s, net__conn_t *c);
/* Charge what req's response holds (its out buffer) to the in-flight budget, as far as the
 * handler has not charged it already (net_req_charge), until net_req_resp_free.  Never refused:
 * the response exists; later requests see the budget spent.  Before the response is queued. */
void net__charge_response(net_req_t *req);
/* Close every HTTP/2 connection and join the loops.  Requests deferred and not yet resumed are
 * abandoned (net_server_stop's contract: resume them first).  Accepts NULL. */
void net__h2_stop(net__h2_t *h);

/* One HTTP/2 server session set up exactly as for an adopted socket, but with no socket and no
 * thread: the caller feeds it client bytes and its output is dropped (after nghttp2 has made
 * it).  For fuzzing and tests (tests/fuzz/fuzz_h2.c).  srv needs o (handler, max_body,
 * max_inflight_bytes, header_timeout_s, body_timeout_s), inflight and live; the handler runs inside
 * net__h2_mem_feed, and deferred requests resumed meanwhile are answered by the next feed or
 * tick.  Single-threaded: every call on the caller's thread (net_req_resume may come from
 * elsewhere).  TR_ENOMEM with a message. */
int net__h2_mem_open(net_server_t *srv, net__h2_t **out, tr_err *err);
/* Hand n client bytes to the session (the first must be the connection preface).  0 while the
 * session is open, -1 once it has closed (protocol error, GOAWAY done): later feeds do nothing. */
int net__h2_mem_feed(net__h2_t *h, const void *p, size_t n);
/* Answer resumed requests, then run the once-a-second sweep as if `seconds` had passed (stream
 * deadlines, idle connection). */
void net__h2_mem_tick(net__h2_t *h, int seconds);
/* Close the session and free everything.  Deferred requests must have been resumed first (they
 * are freed here, unanswered).  Accepts NULL. */
void net__h2_mem_close(net__h2_t *h);

#endif
