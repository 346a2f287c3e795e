/*
 * http.c -- libmicrohttpd adapter (see http.h).
 *
 * Request life cycle inside MHD's access-handler protocol:
 *   1st call   (no body yet)      allocate the net_req, collect method/path/query/headers
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
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/tlog.h"

enum { ST_READING = 0, ST_DEFERRED = 1 };

typedef struct net_req_int {
    net_req_t pub;
    net_server_t *srv;
    struct MHD_Connection *conn;
    int state;
    atomic_int sync;
    size_t body_cap;     /* bytes charged to the in-flight budget */
    size_t expect;       /* Content-Length, or 0 */
    size_t n_hdr_cap;
    tr_buf query;
    char *path;
} net_req_int_t;

struct net_server {
    struct MHD_Daemon *d;
    net_opts_t o;
    atomic_size_t inflight;
    int port;
};

/* ---- helpers ------------------------------------------------------------------------------- */

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);  /* keep the raw, still-encoded text: SigV4 signs what was sent */
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    (void)kind;
    net_req_int_t *r = cls;
    if (r->pub.n_headers == r->n_hdr_cap) {
        r->n_hdr_cap = r->n_hdr_cap ? r->n_hdr_cap * 2 : 16;
        r->pub.headers = realloc(r->pub.headers, r->n_hdr_cap * sizeof *r->pub.headers);
        if (!r->pub.headers) abort();
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

void net_req_add_header(net_req_t *req, const char *name, const char *value) {
    if (req->n_resp_hdr == NET_MAX_RESP_HEADERS) return;
    req->resp_hdr_name[req->n_resp_hdr] = name;
    req->resp_hdr_value[req->n_resp_hdr] = strdup(value);
    if (!req->resp_hdr_value[req->n_resp_hdr]) abort();
    req->n_resp_hdr++;
}

static void release_body(net_req_int_t *r) {
    if (r->body_cap) atomic_fetch_sub(&r->srv->inflight, r->body_cap);
    r->body_cap = 0;
    free(r->pub.body);
    r->pub.body = NULL;
}

static void req_free(net_req_int_t *r) {
    if (!r) return;
    release_body(r);
    free(r->pub.headers);
    tr_buf_free(&r->pub.out);
    tr_buf_free(&r->query);
    free(r->path);
    for (int i = 0; i < r->pub.n_resp_hdr; i++) free(r->pub.resp_hdr_value[i]);
    if (r->pub.state && r->pub.state_free) r->pub.state_free(r->pub.state);
    free(r);
}

static enum MHD_Result send_response(net_req_int_t *r) {
    size_t len = 0;
    char *data = r->pub.out.data ? tr_buf_detach(&r->pub.out, &len) : NULL;
    struct MHD_Response *resp;
    if (len)
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
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

/* ---- the access handler -------------------------------------------------------------------- */

static void h1_resume(net_req_t *req);

static int append_body(net_req_int_t *r, const char *data, size_t n) {
    net_server_t *s = r->srv;
    if (r->pub.reject) return 0;
    size_t need = r->pub.body_len + n + 1;
    if (need - 1 > s->o.max_body) {
        r->pub.reject = NET_REJECT_TOO_BIG;
        release_body(r);
        r->pub.body_len = 0;
        return 0;
    }
    if (need > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
        if (r->expect + 1 > cap && r->expect < s->o.max_body) cap = r->expect + 1;
        while (cap < need) cap *= 2;
        if (cap > s->o.max_body + 1) cap = s->o.max_body + 1;
        size_t grow = cap - r->body_cap;
        size_t before = atomic_fetch_add(&s->inflight, grow);
        if (before + grow > s->o.max_inflight_bytes) {
            atomic_fetch_sub(&s->inflight, grow);
            r->pub.reject = NET_REJECT_OVERLOAD;
            release_body(r);
            r->pub.body_len = 0;
            return 0;
        }
        uint8_t *p = realloc(r->pub.body, cap);
        if (!p) abort();
        r->pub.body = p;
        r->body_cap = cap;
    }
    memcpy(r->pub.body + r->pub.body_len, data, n);
    r->pub.body_len += n;
    r->pub.body[r->pub.body_len] = 0;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    net_server_t *s = cls;
    net_req_int_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->pub.method = method;
        r->path = strdup(url);
        r->pub.path = r->path;
        r->pub.status = 200;
        r->pub.resume_fn = h1_resume;
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
        *con_cls = r;
        return MHD_YES;
    }
    if (r->state == ST_DEFERRED) {
        if (r->pub.finish) r->pub.finish(&r->pub);
        return send_response(r);
    }
    if (*upload_data_size) {
        append_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!r->pub.body) {
        r->pub.body = (uint8_t *)calloc(1, 1);
        if (!r->pub.body) abort();
    }
    int rc = s->o.handler(s->o.handler_arg, &r->pub);
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
    (void)cls;
    (void)conn;
    (void)toe;
    req_free(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    tr_debug("http", "%s", msg);
}

/* ---- start / stop -------------------------------------------------------------------------- */

int net_server_start(const net_opts_t *opts, net_server_t **out, tr_err *err) {
    net_server_t *s = calloc(1, sizeof *s);
    if (!s) return tr_err_set(err, TR_ENOMEM, "out of memory starting the HTTP server");
    s->o = *opts;
    if (!s->o.bind) s->o.bind = "127.0.0.1";
    if (!s->o.max_body) s->o.max_body = 16u << 20;
    if (!s->o.max_inflight_bytes) s->o.max_inflight_bytes = 512u << 20;
    if (!s->o.max_connections) s->o.max_connections = 4096;
    if (s->o.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->o.threads = n > 0 ? (int)n : 2;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)s->o.port);
    if (inet_pton(AF_INET, s->o.bind, &sin.sin_addr) != 1) {
        free(s);
        return tr_err_set(err, TR_EINVAL, "bind address \"%s\" is not an IPv4 address; pass e.g. --bind 127.0.0.1",
                          opts->bind);
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    s->d = MHD_start_daemon(
        flags, (uint16_t)s->o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sin,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads, MHD_OPTION_CONNECTION_LIMIT,
        s->o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)1024, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, MHD_OPTION_END);
    if (!s->d) {
        int e = errno;
        free(s);
        return tr_err_set(err, TR_EIO,
                          "cannot listen on %s:%d (%s); stop whatever uses the port or pass --port",
                          opts->bind ? opts->bind : "127.0.0.1", opts->port, strerror(e));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    *out = s;
    return 0;
}

int net_server_port(net_server_t *srv) { return srv->port; }

void net_server_stop(net_server_t *srv) {
    if (!srv) return;
    MHD_stop_daemon(srv->d);
    free(srv);
}
