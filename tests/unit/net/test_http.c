/* SPDX-License-Identifier: Apache-2.0
 *
 * test_http.c -- net/http (the front door) through its public header: HTTP/1.1 and cleartext
 * HTTP/2 (prior knowledge) on one port, the same net_req_t for both, NET_DEFER resumed from
 * another thread, body bounds (max_body, in-flight budget), the connection limit, and stop with
 * connections of every kind still open, and net_server_drain waiting for requests in progress.
 *
 * The HTTP/2 client is nghttp2's client session over a blocking socket; the HTTP/1.1 client is a
 * few lines of socket code.  Every wait is bounded (poll with a timeout).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "net/http.h"

#define WAIT_MS 10000
#define MAX_STREAMS 512

/* ------------------------------------------------------------------------------------------ */
/* The handler under test                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Requests to /defer are answered by a resumer thread; everything else is echoed at once. */
typedef struct resumer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    net_req_t *q[4096];
    size_t head, tail;
    int stop;
    pthread_t th;
    atomic_int deferred, resumed;
} resumer_t;

static resumer_t R;
static atomic_int H_calls;   /* handler calls */
/* Requests to /hold stay deferred until the test resumes them (release_held). */
static net_req_t *Held[8];
static atomic_int N_held;

static void deferred_finish(net_req_t *req) {
    tr_buf_printf(&req->out, "deferred %s len=%zu", req->path, req->body_len);
}

static void *resumer_main(void *arg) {
    (void)arg;
    unsigned n = 0;
    pthread_mutex_lock(&R.mu);
    for (;;) {
        while (R.head == R.tail && !R.stop) pthread_cond_wait(&R.cv, &R.mu);
        if (R.head == R.tail) break;
        net_req_t *req = R.q[R.head++ % 4096];
        pthread_mutex_unlock(&R.mu);
        if (++n % 7 == 0) usleep(1000);  /* some answers come late */
        req->finish = deferred_finish;
        net_req_resume(req);
        atomic_fetch_add(&R.resumed, 1);
        pthread_mutex_lock(&R.mu);
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

static int handler(void *arg, net_req_t *req) {
    (void)arg;
    atomic_fetch_add(&H_calls, 1);
    /* state_free must run once per request whatever happens (ASan checks the leak). */
    req->state = malloc(32);
    req->state_free = free;
    if (req->reject) {
        req->status = req->reject == NET_REJECT_TOO_BIG ? 413 : 503;
        tr_buf_puts(&req->out, req->reject == NET_REJECT_TOO_BIG ? "too big" : "overload");
        return NET_DONE;
    }
    if (!strcmp(req->path, "/hold")) {
        Held[atomic_fetch_add(&N_held, 1) % 8] = req;
        return NET_DEFER;
    }
    if (!strcmp(req->path, "/defer")) {
        atomic_fetch_add(&R.deferred, 1);
        pthread_mutex_lock(&R.mu);
        R.q[R.tail++ % 4096] = req;
        pthread_cond_signal(&R.cv);
        pthread_mutex_unlock(&R.mu);
        return NET_DEFER;
    }
    int pseudo = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name[0] == ':') pseudo++;
    const char *host = net_req_header(req, "Host");
    const char *x = net_req_header(req, "X-Test");
    unsigned sum = 0;
    for (size_t i = 0; i < req->body_len; i++) sum += req->body[i];
    req->content_type = "text/plain";
    net_req_add_header(req, "X-Echo", x ? x : "-");
    tr_buf_printf(&req->out, "%s %s ?%s host=%s len=%zu sum=%u pseudo=%d nul=%d", req->method,
                  req->path, req->query, host ? host : "-", req->body_len, sum, pseudo,
                  req->body && req->body[req->body_len] == 0);
    return NET_DONE;
}

/* Start with o (bind, port, threads and handler filled in here). */
static net_server_t *start_opts(net_opts_t o) {
    memset(&R, 0, sizeof R);
    atomic_store(&H_calls, 0);
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cv, NULL);
    assert_int_equal(pthread_create(&R.th, NULL, resumer_main, NULL), 0);
    o.bind = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    o.handler = handler;
    net_server_t *s = NULL;
    tr_err err;
    tr_err_clear(&err);
    int rc = net_server_start(&o, &s, &err);
    if (rc) fail_msg("net_server_start: %s", err.msg);
    assert_true(net_server_port(s) > 0);
    return s;
}

static net_server_t *start(size_t max_body, size_t max_inflight, unsigned max_conns) {
    net_opts_t o = {.max_body = max_body,
                    .max_inflight_bytes = max_inflight,
                    .max_connections = max_conns};
    return start_opts(o);
}

static void stop(net_server_t *s) {
    pthread_mutex_lock(&R.mu);
    R.stop = 1;
    pthread_cond_signal(&R.cv);
    pthread_mutex_unlock(&R.mu);
    pthread_join(R.th, NULL);  /* every deferred request resumed, as net_server_stop wants */
    net_server_stop(s);
    pthread_mutex_destroy(&R.mu);
    pthread_cond_destroy(&R.cv);
}

/* ------------------------------------------------------------------------------------------ */
/* Clients                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int tcp_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        assert_true(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Wait for readability; 0 on timeout. */
static int wait_in(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* One HTTP/1.1 request on fd (keep-alive); the response body goes to out.  Returns the status,
 * 0 when no complete response came within ms. */
static int h1_call(int fd, const char *method, const char *target, const char *body, size_t n,
                   tr_buf *out, int ms) {
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: h1.example:80\r\nX-Test: one\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, target, n);
    send_all(fd, head, (size_t)hl);
    if (n) send_all(fd, body, n);
    tr_buf in = TR_BUF_INIT;
    int status = 0;
    for (;;) {
        char *end = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
        if (end) {
            const char *cl = strcasestr(in.data, "\r\nContent-Length:");
            size_t want = cl ? strtoull(cl + 17, NULL, 10) : 0;
            size_t have = in.len - (size_t)(end + 4 - in.data);
            if (have >= want) {
                status = atoi(in.data + 9);
                tr_buf_reset(out);
                tr_buf_append(out, end + 4, want);
                break;
            }
        }
        if (!wait_in(fd, ms)) break;
        char b[65536];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0) break;
        tr_buf_append(&in, b, (size_t)r);
    }
    tr_buf_free(&in);
    return status;
}

typedef struct h2_resp {
    int status;
    int done;
    uint32_t error;
    tr_buf body;
    char echo[32];
    /* request body source */
    const char *src;
    size_t src_len, src_off;
} h2_resp_t;

typedef struct h2c {
    int fd;
    nghttp2_session *s;
    h2_resp_t r[MAX_STREAMS];
} h2c_t;

static h2_resp_t *h2c_slot(h2c_t *c, int32_t id) {
    return id > 0 && (id - 1) / 2 < MAX_STREAMS ? &c->r[(id - 1) / 2] : NULL;
}

static int c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *ud) {
    (void)s;
    (void)flags;
    h2_resp_t *r = h2c_slot(ud, f->hd.stream_id);
    if (!r) return 0;
    if (namelen == 7 && !memcmp(name, ":status", 7)) r->status = atoi((const char *)value);
    if (namelen == 6 && !memcmp(name, "x-echo", 6))
        snprintf(r->echo, sizeof r->echo, "%.*s", (int)valuelen, value);
    /* HTTP/2 field names must be lowercase: nghttp2 would refuse the response otherwise. */
    return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                     void *ud) {
    (void)s;
    (void)flags;
    h2_resp_t *r = h2c_slot(ud, id);
    if (r) tr_buf_append(&r->body, data, len);
    return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
    (void)s;
    h2_resp_t *r = h2c_slot(ud, id);
    if (r) {
        r->done = 1;
        r->error = code;
    }
    return 0;
}

static ssize_t c_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud) {
    (void)s;
    (void)id;
    (void)ud;
    h2_resp_t *r = src->ptr;
    size_t n = r->src_len - r->src_off < len ? r->src_len - r->src_off : len;
    memcpy(buf, r->src + r->src_off, n);
    r->src_off += n;
    if (r->src_off == r->src_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static h2c_t *h2c_open(int port) {
    h2c_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = tcp_connect(port);
    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
    assert_int_equal(nghttp2_session_client_new(&c->s, cb, c), 0);
    nghttp2_session_callbacks_del(cb);
    assert_int_equal(nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    return c;
}

static void h2c_close(h2c_t *c) {
    nghttp2_session_del(c->s);
    close(c->fd);
    for (int i = 0; i < MAX_STREAMS; i++) tr_buf_free(&c->r[i].body);
    free(c);
}

static int32_t h2c_request(h2c_t *c, const char *method, const char *path, const char *body,
                           size_t n, int with_length) {
    char len[24];
    snprintf(len, sizeof len, "%zu", n);
#define NVS(a, b) {(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nv[] = {
        NVS(":method", method), NVS(":scheme", "http"), NVS(":authority", "h2.example:4566"),
        NVS(":path", path),     NVS("x-test", "two"),   NVS("content-length", len)};
#undef NVS
    int32_t next = nghttp2_session_get_next_stream_id(c->s);
    h2_resp_t *r = h2c_slot(c, (int32_t)next);
    assert_non_null(r);
    r->src = body;
    r->src_len = n;
    nghttp2_data_provider dp = {.source.ptr = r, .read_callback = c_read_body};
    int32_t id = nghttp2_submit_request(c->s, NULL, nv, with_length ? 6 : 5, n ? &dp : NULL, NULL);
    assert_int_equal(id, next);
    return id;
}

/* Exchange frames until every listed stream is closed.  0 on success, -1 on timeout/EOF. */
static int h2c_run(h2c_t *c, const int32_t *ids, size_t n) {
    for (;;) {
        const uint8_t *d;
        ssize_t k;
        while ((k = nghttp2_session_mem_send(c->s, &d)) > 0) send_all(c->fd, d, (size_t)k);
        assert_true(k == 0);
        size_t open = 0;
        for (size_t i = 0; i < n; i++) open += !h2c_slot(c, ids[i])->done;
        if (!open) return 0;
        if (!wait_in(c->fd, WAIT_MS)) return -1;
        uint8_t b[65536];
        ssize_t r = recv(c->fd, b, sizeof b, 0);
        if (r <= 0) return -1;
        assert_int_equal(nghttp2_session_mem_recv(c->s, b, (size_t)r), r);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_same_request_both_protocols(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 0);
    int port = net_server_port(s);

    int fd = tcp_connect(port);
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(fd, "POST", "/a%20b/c?x=1&y=%2F", "abc", 3, &out, WAIT_MS), 200);
    assert_string_equal(out.data,
                        "POST /a%20b/c ?x=1&y=%2F host=h1.example:80 len=3 sum=294 pseudo=0 nul=1");
    /* keep-alive: a second request on the same socket */
    assert_int_equal(h1_call(fd, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    assert_string_equal(out.data, "GET / ? host=h1.example:80 len=0 sum=0 pseudo=0 nul=1");

    h2c_t *c = h2c_open(port);
    int32_t ids[3];
    ids[0] = h2c_request(c, "POST", "/a%20b/c?x=1&y=%2F", "abc", 3, 1);
    ids[1] = h2c_request(c, "GET", "/", NULL, 0, 0);
    ids[2] = h2c_request(c, "POST", "/q?", "", 0, 1);
    assert_int_equal(h2c_run(c, ids, 3), 0);
    h2_resp_t *r = h2c_slot(c, ids[0]);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->echo, "two");
    assert_string_equal(r->body.data, "POST /a%20b/c ?x=1&y=%2F host=h2.example:4566 len=3 "
                                      "sum=294 pseudo=0 nul=1");
    r = h2c_slot(c, ids[1]);
    assert_string_equal(r->body.data, "GET / ? host=h2.example:4566 len=0 sum=0 pseudo=0 nul=1");
    r = h2c_slot(c, ids[2]);
    assert_string_equal(r->body.data, "POST /q ? host=h2.example:4566 len=0 sum=0 pseudo=0 nul=1");

    /* The HTTP/1.1 connection still works after HTTP/2 traffic. */
    assert_int_equal(h1_call(fd, "GET", "/again", NULL, 0, &out, WAIT_MS), 200);
    h2c_close(c);
    close(fd);
    tr_buf_free(&out);
    stop(s);
}

static void test_deferred_resumed_from_another_thread(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 0);
    int port = net_server_port(s);
    h2c_t *c = h2c_open(port);
    /* More than the server's 128 concurrent streams: nghttp2 queues the rest client-side. */
    enum { N = 400 };
    static char body[N][16];
    int32_t ids[N];
    for (int i = 0; i < N; i++) {
        int n = snprintf(body[i], sizeof body[i], "req-%d", i);
        ids[i] = h2c_request(c, "POST", "/defer", body[i], (size_t)n, i % 2);
    }
    assert_int_equal(h2c_run(c, ids, N), 0);
    for (int i = 0; i < N; i++) {
        h2_resp_t *r = h2c_slot(c, ids[i]);
        char want[64];
        snprintf(want, sizeof want, "deferred /defer len=%zu", strlen(body[i]));
        assert_int_equal(r->status, 200);
        assert_string_equal(r->body.data, want);
    }
    /* HTTP/1.1 deferral too, interleaved. */
    int fd = tcp_connect(port);
    tr_buf out = TR_BUF_INIT;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(h1_call(fd, "POST", "/defer", "xy", 2, &out, WAIT_MS), 200);
        assert_string_equal(out.data, "deferred /defer len=2");
    }
    tr_buf_free(&out);
    close(fd);
    /* Requests deferred when their client goes away are still resumed and freed (ASan): the
     * client sends 50 and shuts its side; the server reads them, then EOF, and closes. */
    h2c_t *gone = h2c_open(port);
    for (int i = 0; i < 50; i++) h2c_request(gone, "POST", "/defer", "z", 1, 1);
    const uint8_t *d;
    ssize_t k;
    while ((k = nghttp2_session_mem_send(gone->s, &d)) > 0) send_all(gone->fd, d, (size_t)k);
    shutdown(gone->fd, SHUT_WR);
    int want = N + 20 + 50;
    for (int ms = 0; ms < WAIT_MS && atomic_load(&R.resumed) < want; ms++) usleep(1000);
    assert_int_equal(atomic_load(&R.resumed), want);
    h2c_close(gone);
    h2c_close(c);
    stop(s);
}

static void test_body_bounds(void **state) {
    (void)state;
    /* max_body 64 KiB, in-flight budget 200 KiB */
    net_server_t *s = start(64 * 1024, 200 * 1024, 0);
    int port = net_server_port(s);
    size_t big = 100 * 1024;
    char *blob = malloc(big);
    assert_non_null(blob);
    memset(blob, 'b', big);

    h2c_t *c = h2c_open(port);
    int32_t ids[8];
    ids[0] = h2c_request(c, "POST", "/", blob, 60 * 1024, 1);  /* fits */
    ids[1] = h2c_request(c, "POST", "/", blob, big, 1);        /* Content-Length too big */
    ids[2] = h2c_request(c, "POST", "/", blob, big, 0);        /* too big while reading */
    assert_int_equal(h2c_run(c, ids, 3), 0);
    assert_int_equal(h2c_slot(c, ids[0])->status, 200);
    assert_non_null(strstr(h2c_slot(c, ids[0])->body.data, "len=61440 "));
    assert_int_equal(h2c_slot(c, ids[1])->status, 413);
    assert_int_equal(h2c_slot(c, ids[2])->status, 413);
    /* Eight 60 KiB bodies in flight at once pass the 200 KiB budget: some are refused with the
     * overload answer, the rest served, none lost. */
    for (int i = 0; i < 8; i++) ids[i] = h2c_request(c, "POST", "/defer", blob, 60 * 1024, 1);
    assert_int_equal(h2c_run(c, ids, 8), 0);
    int ok = 0, over = 0;
    for (int i = 0; i < 8; i++) {
        int st = h2c_slot(c, ids[i])->status;
        ok += st == 200;
        over += st == 503;
    }
    assert_int_equal(ok + over, 8);
    assert_true(ok >= 1);
    /* The budget is given back: one more fits now. */
    ids[0] = h2c_request(c, "POST", "/", blob, 60 * 1024, 1);
    assert_int_equal(h2c_run(c, ids, 1), 0);
    assert_int_equal(h2c_slot(c, ids[0])->status, 200);
    h2c_close(c);

    int fd = tcp_connect(port);
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(fd, "POST", "/", blob, big, &out, WAIT_MS), 413);
    tr_buf_free(&out);
    close(fd);
    free(blob);
    stop(s);
}

static void test_connection_limit(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 2);
    int port = net_server_port(s);
    tr_buf out = TR_BUF_INIT;
    /* Two connections held: one HTTP/1.1 keep-alive (libmicrohttpd's), one silent (the
     * acceptor's, protocol not known yet). */
    int a = tcp_connect(port);
    assert_int_equal(h1_call(a, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    int b = tcp_connect(port);
    /* A third waits in the kernel backlog: connected, but no answer. */
    int c = tcp_connect(port);
    assert_int_equal(h1_call(c, "GET", "/c", NULL, 0, &out, 300), 0);
    /* Closing the silent one makes room. */
    close(b);
    assert_true(wait_in(c, WAIT_MS));
    assert_int_equal(h1_call(c, "GET", "/c2", NULL, 0, &out, WAIT_MS), 200);
    /* Full again (a and c); an HTTP/2 client waits too, until the HTTP/1.1 one leaves. */
    h2c_t *h = h2c_open(port);
    int32_t id = h2c_request(h, "GET", "/h2", NULL, 0, 0);
    const uint8_t *d;
    ssize_t k;
    while ((k = nghttp2_session_mem_send(h->s, &d)) > 0) send_all(h->fd, d, (size_t)k);
    assert_int_equal(wait_in(h->fd, 300), 0);
    close(a);
    assert_int_equal(h2c_run(h, &id, 1), 0);
    assert_int_equal(h2c_slot(h, id)->status, 200);
    h2c_close(h);
    close(c);
    tr_buf_free(&out);
    stop(s);
}

static void test_stop_with_connections_open(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 0);
    int port = net_server_port(s);
    int silent = tcp_connect(port);
    int half = tcp_connect(port);
    send_all(half, "PRI * HTTP", 10);
    int h1 = tcp_connect(port);
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(h1, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    h2c_t *c = h2c_open(port);
    int32_t id = h2c_request(c, "GET", "/", NULL, 0, 0);
    assert_int_equal(h2c_run(c, &id, 1), 0);
    int32_t pending = h2c_request(c, "POST", "/", "abc", 3, 1);  /* half sent: body withheld */
    (void)pending;
    const uint8_t *d;
    ssize_t k = nghttp2_session_mem_send(c->s, &d);  /* HEADERS only */
    assert_true(k > 0);
    send_all(c->fd, d, (size_t)k);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stop(s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    /* Every socket was closed by the server. */
    char b[64];
    assert_true(wait_in(silent, WAIT_MS) && recv(silent, b, sizeof b, 0) <= 0);
    assert_true(wait_in(half, WAIT_MS) && recv(half, b, sizeof b, 0) <= 0);
    assert_true(wait_in(h1, WAIT_MS) && recv(h1, b, sizeof b, 0) <= 0);
    close(silent);
    close(half);
    close(h1);
    h2c_close(c);
    tr_buf_free(&out);
}

static void test_bind_conflict_message(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 0);
    net_opts_t o = {.bind = "127.0.0.1", .port = net_server_port(s), .handler = handler};
    net_server_t *s2 = NULL;
    tr_err err;
    tr_err_clear(&err);
    assert_int_equal(net_server_start(&o, &s2, &err), TR_EIO);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "stop whatever uses the port or pass --port"));
    o.bind = "localhost";
    assert_int_equal(net_server_start(&o, &s2, &err), TR_EINVAL);
    stop(s);
}

/* Send raw request bytes; the status of the response that comes within ms (0: none). */
static int h1_raw(int fd, const char *raw, int ms) {
    send_all(fd, raw, strlen(raw));
    char b[4096];
    size_t n = 0;
    while (n < sizeof b - 1 && wait_in(fd, ms)) {
        ssize_t r = recv(fd, b + n, sizeof b - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        b[n] = 0;
        if (strstr(b, "\r\n\r\n")) break;
    }
    b[n] = 0;
    return n > 12 && !strncmp(b, "HTTP/1.1 ", 9) ? atoi(b + 9) : 0;
}

/* The peer closed fd (EOF or reset) within ms. */
static int closed_within(int fd, int ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || !wait_in(fd, (int)left)) return 0;
        char b[4096];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0) return 1;
    }
}

/* Smuggling shapes are refused before the handler sees anything; the connection is closed. */
static void test_h1_framing(void **state) {
    (void)state;
    net_server_t *s = start(0, 0, 0);
    int port = net_server_port(s);
    static const struct {
        const char *raw;
        int status;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"
         "hello12",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n",
         501},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
         "\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n"
         "Content-Length: 0\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: A.B\r\nx-amz-target: A.C\r\n"
         "Content-Length: 0\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = tcp_connect(port);
        assert_int_equal(h1_raw(fd, cases[i].raw, WAIT_MS), cases[i].status);
        assert_true(closed_within(fd, WAIT_MS));
        close(fd);
    }
    assert_int_equal(atomic_load(&H_calls), 0);
    /* What stays allowed: equal duplicate Content-Length, plain chunked. */
    int fd = tcp_connect(port);
    assert_int_equal(h1_raw(fd,
                            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Content-Length: 5\r\n\r\nhello",
                            WAIT_MS),
                     200);
    assert_int_equal(h1_raw(fd,
                            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n0\r\n\r\n",
                            WAIT_MS),
                     200);
    close(fd);
    stop(s);
}

/* Header-phase check: refuses without reading (or charging) the body. */
static int deny_precheck(void *arg, net_req_t *req) {
    (void)arg;
    if (!net_req_header(req, "X-Deny")) return NET_CONTINUE;
    req->status = 403;
    tr_buf_puts(&req->out, "denied");
    return NET_DONE;
}

static void test_precheck_before_body(void **state) {
    (void)state;
    net_opts_t o = {.max_inflight_bytes = 256 * 1024, .precheck = deny_precheck};
    net_server_t *s = start_opts(o);
    int port = net_server_port(s);
    /* Denied at once though 1 MiB is announced and not one body byte sent. */
    int fds[16];
    for (int i = 0; i < 16; i++) {
        fds[i] = tcp_connect(port);
        assert_int_equal(h1_raw(fds[i],
                                "POST / HTTP/1.1\r\nHost: x\r\nX-Deny: 1\r\n"
                                "Content-Length: 1048576\r\n\r\n",
                                WAIT_MS),
                         403);
    }
    /* Denied with body bytes trickling in: nothing is charged, the budget stays whole. */
    for (int i = 0; i < 16; i++) {
        char blob[32 * 1024];
        memset(blob, 'x', sizeof blob);
        send(fds[i], blob, sizeof blob, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    int fd = tcp_connect(port);
    char *body = malloc(200 * 1024);
    assert_non_null(body);
    memset(body, 'b', 200 * 1024);
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(fd, "POST", "/", body, 200 * 1024, &out, WAIT_MS), 200);
    assert_non_null(strstr(out.data, "len=204800 "));
    assert_int_equal(atomic_load(&H_calls), 1);
    tr_buf_free(&out);
    free(body);
    close(fd);
    for (int i = 0; i < 16; i++) close(fds[i]);
    stop(s);
}

/* Heads and bodies that do not arrive in time close the connection; a connection that has
 * completed a request (no precheck: the server has no authentication) is only idle-bound. */
static void test_deadlines(void **state) {
    (void)state;
    net_opts_t o = {.header_timeout_s = 1, .body_timeout_s = 1};
    net_server_t *s = start_opts(o);
    int port = net_server_port(s);
    int silent = tcp_connect(port);
    int trickle = tcp_connect(port);
    int body = tcp_connect(port);
    int kept = tcp_connect(port);
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(kept, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    send_all(body, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", 60);
    static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: ";
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int trickle_closed = 0;
    for (size_t i = 0; i < 40 && !trickle_closed; i++) {  /* one byte per 100 ms: never idle */
        if (send(trickle, i < sizeof head - 1 ? head + i : "a", 1, MSG_NOSIGNAL) != 1 ||
            closed_within(trickle, 100))
            trickle_closed = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    assert_true(trickle_closed);
    assert_true(t.tv_sec - t0.tv_sec < 3);  /* 1 s head deadline, swept every 250 ms */
    assert_true(closed_within(silent, 1000));
    assert_true(closed_within(body, 3000));   /* 1 s + 0 s for 100 bytes */
    assert_int_equal(atomic_load(&H_calls), 1);
    /* the kept-alive connection outlived the head deadline and still serves */
    assert_int_equal(h1_call(kept, "GET", "/again", NULL, 0, &out, WAIT_MS), 200);
    tr_buf_free(&out);
    close(silent);
    close(trickle);
    close(body);
    close(kept);
    stop(s);
}

/* One address at its cap: its oldest connection without a complete head gives way; when every
 * one of them has proved itself, the newcomer is closed instead. */
static void test_per_address_cap(void **state) {
    (void)state;
    net_opts_t o = {.max_connections = 10, .max_conns_per_ip = 3, .header_timeout_s = 30};
    net_server_t *s = start_opts(o);
    int port = net_server_port(s);
    tr_buf out = TR_BUF_INIT;
    int slow[3];
    for (int i = 0; i < 3; i++) {
        slow[i] = tcp_connect(port);
        send_all(slow[i], "GET / HTTP/1.1\r\n", 16);
        usleep(20000);   /* accept order = age */
    }
    int fresh = tcp_connect(port);
    assert_int_equal(h1_call(fresh, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    assert_true(closed_within(slow[0], WAIT_MS));         /* the oldest gave way */
    assert_false(closed_within(slow[1], 200));
    int fresh2 = tcp_connect(port);
    assert_int_equal(h1_call(fresh2, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    assert_true(closed_within(slow[1], WAIT_MS));
    int fresh3 = tcp_connect(port);
    assert_int_equal(h1_call(fresh3, "GET", "/", NULL, 0, &out, WAIT_MS), 200);
    assert_true(closed_within(slow[2], WAIT_MS));
    /* three served connections, all trusted: a fourth is closed at once */
    int extra = tcp_connect(port);
    assert_true(closed_within(extra, WAIT_MS));
    assert_int_equal(h1_call(fresh, "GET", "/still", NULL, 0, &out, WAIT_MS), 200);
    tr_buf_free(&out);
    for (int i = 0; i < 3; i++) close(slow[i]);
    close(fresh);
    close(fresh2);
    close(fresh3);
    close(extra);
    stop(s);
}

static void release_held(void) {
    int n = atomic_exchange(&N_held, 0);
    for (int i = 0; i < n; i++) {
        Held[i]->finish = deferred_finish;
        net_req_resume(Held[i]);
    }
}

typedef struct drainer {
    net_server_t *s;
    int timeout_ms, left;
    atomic_int done;
} drainer_t;

static void *drainer_main(void *arg) {
    drainer_t *d = arg;
    d->left = net_server_drain(d->s, d->timeout_ms);
    atomic_store(&d->done, 1);
    return NULL;
}

static long long elapsed_ms(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* net_server_drain waits for the requests in progress when it is called (deferred ones on both
 * protocols included) until their answers are out, or returns how many are left at its timeout;
 * requests that come meanwhile are served and not waited for. */
static void test_drain(void **state) {
    (void)state;
    atomic_store(&N_held, 0);
    net_server_t *s = start(0, 0, 0);
    int port = net_server_port(s);
    int fd = tcp_connect(port);
    const char *hold = "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, hold, strlen(hold));
    h2c_t *c = h2c_open(port);
    int32_t id = h2c_request(c, "GET", "/hold", NULL, 0, 1);
    const uint8_t *d;
    ssize_t k;
    while ((k = nghttp2_session_mem_send(c->s, &d)) > 0) send_all(c->fd, d, (size_t)k);
    for (int ms = 0; ms < WAIT_MS && atomic_load(&N_held) < 2; ms++) usleep(1000);
    assert_int_equal(atomic_load(&N_held), 2);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(net_server_drain(s, 200), 2);   /* both still deferred */
    assert_true(elapsed_ms(&t0) >= 199);
    int late = tcp_connect(port);                     /* served, not waited for */
    tr_buf out = TR_BUF_INIT;
    assert_int_equal(h1_call(late, "GET", "/late", NULL, 0, &out, WAIT_MS), 200);

    drainer_t dr = {.s = s, .timeout_ms = WAIT_MS};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, drainer_main, &dr), 0);
    usleep(100 * 1000);
    assert_int_equal(atomic_load(&dr.done), 0);       /* still waiting for the held two */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    release_held();
    pthread_join(th, NULL);
    assert_int_equal(dr.left, 0);
    assert_true(elapsed_ms(&t0) < WAIT_MS);
    /* their answers were handed over before the drain returned */
    assert_int_equal(h2c_run(c, &id, 1), 0);
    assert_string_equal(h2c_slot(c, id)->body.data, "deferred /hold len=0");
    assert_true(wait_in(fd, WAIT_MS));
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = 0;
    assert_non_null(strstr(buf, "deferred /hold len=0"));
    assert_int_equal(net_server_drain(s, WAIT_MS), 0); /* nothing left: at once */
    assert_int_equal(net_server_drain(NULL, 0), 0);
    tr_buf_free(&out);
    close(fd);
    close(late);
    h2c_close(c);
    stop(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_request_both_protocols),
        cmocka_unit_test(test_deferred_resumed_from_another_thread),
        cmocka_unit_test(test_body_bounds),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_stop_with_connections_open),
        cmocka_unit_test(test_bind_conflict_message),
        cmocka_unit_test(test_h1_framing),
        cmocka_unit_test(test_precheck_before_body),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_per_address_cap),
        cmocka_unit_test(test_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
