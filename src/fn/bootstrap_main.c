/* SPDX-License-Identifier: Apache-2.0
 *
 * bootstrap_main.c -- the Lambda Runtime API client loop that turns a native handler into a
 * `bootstrap` for AWS Lambda's provided.al2023 (and Tributary's provided runtimes).
 *
 * Built by `tributary-cc --bootstrap` together with the handler's source and the small library
 * (trf_json.c, trf_event.c, trf_call.c), never into the server.  It depends on libc and libdl
 * only, so the binary runs on Amazon Linux 2023 (glibc 2.34) when built on a glibc that old or
 * with symbols no newer (tributary-cc checks).
 *
 * The loop, per https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html:
 *   1. resolve _HANDLER "<file>.so:<symbol>": the symbol linked into this executable (built with
 *      -rdynamic), else dlopen("$LAMBDA_TASK_ROOT/<file>.so", RTLD_NOW | RTLD_LOCAL); run the
 *      module's init if it exports one.  Failure: POST /runtime/init/error and exit 1.
 *   2. GET /runtime/invocation/next (blocks until an event), decode the event (Kinesis JSON
 *      becomes native records, see trf_event.c), call the handler.
 *   3. POST /runtime/invocation/<id>/response, or .../error with
 *      Lambda-Runtime-Function-Error-Type and {"errorMessage","errorType"}.
 *
 * AWS_LAMBDA_RUNTIME_API is "host:port", optionally followed by a path prefix (Tributary's
 * "127.0.0.1:<port>/<instance token>/").  One keep-alive connection; reconnect on any error.
 * Logs (trf_log) go to stdout, which Lambda captures.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fn/trf_int.h"

#define API_VERSION "/2018-06-01"

/* ---- a tiny HTTP/1.1 client ------------------------------------------------------------------ */

typedef struct conn {
    char host[256];
    char port[16];
    char prefix[256]; /* path prefix without trailing '/' ("" or "/tok") */
    int fd;
    char *in; /* bytes read but not consumed */
    size_t in_len, in_cap;
} conn_t;

typedef struct resp {
    int status;
    char request_id[128];
    char function_arn[512];
    char trace_id[512];
    int64_t deadline_ms;
    trf__buf_t body;
} resp_t;

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "bootstrap: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void conn_close(conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->in_len = 0;
}

static int conn_open(conn_t *c) {
    if (c->fd >= 0) return 0;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(c->host, c->port, &hints, &res) || !res) return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Make at least `want` bytes available in c->in; -1 on EOF/error. */
static int fill(conn_t *c, size_t want) {
    while (c->in_len < want) {
        if (c->in_cap - c->in_len < 65536) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 131072;
            while (cap - c->in_len < 65536) cap *= 2;
            char *p = realloc(c->in, cap);
            if (!p) return -1;
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c->in_len += (size_t)r;
    }
    return 0;
}

static void consume(conn_t *c, size_t n) {
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Index just past "\r\n\r\n", reading more as needed; 0 on error. */
static size_t find_head_end(conn_t *c) {
    size_t scanned = 0;
    for (;;) {
        for (size_t i = scanned; i + 4 <= c->in_len; i++)
            if (!memcmp(c->in + i, "\r\n\r\n", 4)) return i + 4;
        scanned = c->in_len > 3 ? c->in_len - 3 : 0;
        if (c->in_len > 1 << 20 || fill(c, c->in_len + 1)) return 0;
    }
}

static void header_value(const char *line, size_t n, char *out, size_t cap) {
    const char *colon = memchr(line, ':', n);
    if (!colon) return;
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t l = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, l);
    out[l] = 0;
}

static int hdr_is(const char *line, size_t n, const char *name) {
    size_t k = strlen(name);
    return n > k && line[k] == ':' && !strncasecmp(line, name, k);
}

/* One request/response exchange.  -1 on a transport error (the caller reconnects). */
static int http_do(conn_t *c, const char *method, const char *path, const char *extra_hdrs,
                   const char *body, size_t body_len, resp_t *r) {
    if (conn_open(c)) return -1;
    char head[2048];
    int hn = snprintf(head, sizeof head,
                      "%s %s%s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: tributary-bootstrap/1\r\n"
                      "%sContent-Length: %zu\r\n\r\n",
                      method, c->prefix, path, c->host, c->port, extra_hdrs ? extra_hdrs : "",
                      body_len);
    if (hn < 0 || (size_t)hn >= sizeof head) return -1;
    if (write_all(c->fd, head, (size_t)hn) || (body_len && write_all(c->fd, body, body_len))) {
        conn_close(c);
        return -1;
    }
    size_t he = find_head_end(c);
    if (!he) {
        conn_close(c);
        return -1;
    }
    r->status = 0;
    r->request_id[0] = r->function_arn[0] = r->trace_id[0] = 0;
    r->deadline_ms = 0;
    r->body.len = 0;
    long long clen = -1;
    int chunked = 0, close_after = 0;
    char tmp[64];
    const char *p = c->in, *end = c->in + he - 2;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || sscanf(p, "HTTP/1.%*d %d", &r->status) != 1) {
        conn_close(c);
        return -1;
    }
    for (p = nl + 1; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        size_t n = (size_t)(nl - p);
        if (n && p[n - 1] == '\r') n--;
        if (hdr_is(p, n, "Content-Length")) {
            header_value(p, n, tmp, sizeof tmp);
            clen = atoll(tmp);
        } else if (hdr_is(p, n, "Transfer-Encoding")) {
            header_value(p, n, tmp, sizeof tmp);
            chunked = strcasestr(tmp, "chunked") != NULL;
        } else if (hdr_is(p, n, "Connection")) {
            header_value(p, n, tmp, sizeof tmp);
            close_after = !strcasecmp(tmp, "close");
        } else if (hdr_is(p, n, "Lambda-Runtime-Aws-Request-Id")) {
            header_value(p, n, r->request_id, sizeof r->request_id);
        } else if (hdr_is(p, n, "Lambda-Runtime-Invoked-Function-Arn")) {
            header_value(p, n, r->function_arn, sizeof r->function_arn);
        } else if (hdr_is(p, n, "Lambda-Runtime-Trace-Id")) {
            header_value(p, n, r->trace_id, sizeof r->trace_id);
        } else if (hdr_is(p, n, "Lambda-Runtime-Deadline-Ms")) {
            header_value(p, n, tmp, sizeof tmp);
            r->deadline_ms = atoll(tmp);
        }
    }
    consume(c, he);
    if (chunked) {
        for (;;) {
            size_t i = 0;
            for (;;) {
                for (; i + 2 <= c->in_len; i++)
                    if (c->in[i] == '\r' && c->in[i + 1] == '\n') break;
                if (i + 2 <= c->in_len) break;
                if (fill(c, c->in_len + 1)) goto broken;
            }
            unsigned long long sz = strtoull(c->in, NULL, 16);
            consume(c, i + 2);
            if (fill(c, sz + 2)) goto broken;
            trf__buf_append(&r->body, c->in, sz);
            consume(c, sz + 2);
            if (!sz) break;
        }
    } else if (clen > 0) {
        if (fill(c, (size_t)clen)) goto broken;
        trf__buf_append(&r->body, c->in, (size_t)clen);
        consume(c, (size_t)clen);
    } else if (clen < 0 && r->status != 204 && r->status != 304) {
        /* No length: the body runs to the end of the connection. */
        while (fill(c, c->in_len + 1) == 0) {}
        trf__buf_append(&r->body, c->in, c->in_len);
        c->in_len = 0;
        close_after = 1;
    }
    if (r->body.oom) goto broken;
    if (close_after) conn_close(c);
    return 0;
broken:
    conn_close(c);
    return -1;
}

/* ---- runtime --------------------------------------------------------------------------------- */

static void log_stdout(void *arg, const char *text, size_t len) {
    (void)arg;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

static void post_error(conn_t *c, const char *path, const char *type, const char *msg) {
    trf__buf_t b = {0};
    trf__error_json(&b, type, msg);
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "Lambda-Runtime-Function-Error-Type: %s\r\nContent-Type: application/json\r\n", type);
    resp_t r = {0};
    for (int attempt = 0; attempt < 3; attempt++)
        if (http_do(c, "POST", path, hdr, b.data, b.len, &r) == 0) break;
    trf__buf_free(&r.body);
    trf__buf_free(&b);
}

static trf_handler_fn resolve_handler(const char *spec, const trf_module_t **mod, char *why,
                                      size_t cap) {
    char file[512] = "", sym[256];
    const char *colon = strrchr(spec, ':');
    if (colon) {
        snprintf(file, sizeof file, "%.*s", (int)(colon - spec), spec);
        snprintf(sym, sizeof sym, "%s", colon + 1);
    } else {
        snprintf(sym, sizeof sym, "%s", spec);
    }
    if (!sym[0]) {
        snprintf(why, cap, "_HANDLER \"%s\" names no symbol; use \"<file>.so:<symbol>\"", spec);
        return NULL;
    }
    /* Linked in (tributary-cc --bootstrap builds with -rdynamic)? */
    void *self = dlopen(NULL, RTLD_NOW);
    void *h = self ? dlsym(self, sym) : NULL;
    void *lib = self;
    if (!h && file[0]) {
        char path[1024];
        const char *root = getenv("LAMBDA_TASK_ROOT");
        if (file[0] == '/' || !root) snprintf(path, sizeof path, "%s", file);
        else snprintf(path, sizeof path, "%s/%s", root, file);
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            snprintf(why, cap, "cannot load %.400s: %.500s", path, dlerror());
            return NULL;
        }
        h = dlsym(lib, sym);
    }
    if (!h) {
        snprintf(why, cap,
                 "handler symbol \"%s\" not found (in this bootstrap%s%s); export it "
                 "(non-static) or fix _HANDLER",
                 sym, file[0] ? " or " : "", file);
        return NULL;
    }
    const trf_module_t *(*modfn)(void) = (const trf_module_t *(*)(void))dlsym(lib,
                                                                              TRF_MODULE_SYMBOL);
    *mod = modfn ? modfn() : NULL;
    if (*mod && (*mod)->abi > TRF_ABI_VERSION) {
        snprintf(why, cap,
                 "the handler was built for function ABI %u but this bootstrap "
                 "implements %u; rebuild it with this tributary-cc",
                 (*mod)->abi, TRF_ABI_VERSION);
        return NULL;
    }
    return (trf_handler_fn)h;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api)
        die("%s", "AWS_LAMBDA_RUNTIME_API is not set; run me under Lambda's provided runtime");
    conn_t c = {.fd = -1};
    const char *slash = strchr(api, '/');
    size_t hp = slash ? (size_t)(slash - api) : strlen(api);
    char hostport[200];
    snprintf(hostport, sizeof hostport, "%.*s", (int)(hp < 199 ? hp : 199), api);
    char *colon = strrchr(hostport, ':');
    if (!colon) die("AWS_LAMBDA_RUNTIME_API \"%s\" is not host:port", api);
    *colon = 0;
    snprintf(c.host, sizeof c.host, "%s", hostport);
    snprintf(c.port, sizeof c.port, "%.15s", colon + 1);
    if (slash) {
        snprintf(c.prefix, sizeof c.prefix, "%.255s", slash);
        size_t l = strlen(c.prefix);
        while (l && c.prefix[l - 1] == '/') c.prefix[--l] = 0;
    }

    const char *spec = getenv("_HANDLER");
    char why[1024] = "";
    const trf_module_t *mod = NULL;
    trf_handler_fn handler = resolve_handler(spec ? spec : "", &mod, why, sizeof why);

    trf__call_t call;
    memset(&call, 0, sizeof call);
    call.log_sink = log_stdout;
    const char *fname = getenv("AWS_LAMBDA_FUNCTION_NAME");
    const char *fver = getenv("AWS_LAMBDA_FUNCTION_VERSION");
    const char *mem = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    call.ctx.abi = TRF_ABI_VERSION;
    call.ctx.function_name = fname ? fname : "";
    call.ctx.function_version = fver ? fver : "$LATEST";
    call.ctx.memory_mb = mem ? (uint32_t)atoi(mem) : 0;
    call.ctx.request_id = "";
    call.ctx.invoked_function_arn = "";
    call.ctx.trace_id = "";
    if (!handler) {
        fprintf(stderr, "bootstrap: %s\n", why);
        post_error(&c, API_VERSION "/runtime/init/error", "Runtime.InvalidEntrypoint", why);
        return 1;
    }
    if (mod && mod->init) {
        trf__call_prepare(&call); /* init may log */
        int rc = mod->init(&call.ctx);
        if (rc) {
            snprintf(why, sizeof why, "the module's init returned %d", rc);
            post_error(&c, API_VERSION "/runtime/init/error", "Runtime.InitError", why);
            return 1;
        }
    }

    resp_t r = {0};
    int failures = 0;
    for (;;) {
        if (http_do(&c, "GET", API_VERSION "/runtime/invocation/next", NULL, NULL, 0, &r)) {
            /* The API is gone (instance being shut down) or flaky: retry briefly, then exit. */
            if (++failures > 50) return 1;
            usleep(20000);
            continue;
        }
        failures = 0;
        if (r.status != 200) {
            fprintf(stderr, "bootstrap: /next answered %d: %.*s\n", r.status, (int)r.body.len,
                    r.body.data ? r.body.data : "");
            if (r.status >= 400 && r.status < 500) return 1;
            usleep(20000);
            continue;
        }
        char path[512];
        trf__event_owned_t ev;
        const char *bad = NULL;
        if (trf__event_from_json(&ev, r.body.data ? r.body.data : "{}",
                                 r.body.data ? r.body.len : 2, &bad)) {
            snprintf(path, sizeof path, API_VERSION "/runtime/invocation/%s/error", r.request_id);
            post_error(&c, path, "Runtime.InvalidEvent", bad ? bad : "cannot decode the event");
            continue;
        }
        call.ctx.request_id = r.request_id;
        call.ctx.invoked_function_arn = r.function_arn;
        call.ctx.trace_id = r.trace_id;
        call.ctx.deadline_ms = r.deadline_ms;
        if (trf__call_run(&call, handler, &ev.ev)) {
            trf__event_owned_free(&ev);
            snprintf(path, sizeof path, API_VERSION "/runtime/invocation/%s/error", r.request_id);
            post_error(&c, path, "Runtime.OutOfMemory", "out of memory building the response");
            continue;
        }
        trf__event_owned_free(&ev);
        resp_t pr = {0};
        if (call.failed) {
            char hdr[256];
            snprintf(hdr, sizeof hdr, "Lambda-Runtime-Function-Error-Type: %s\r\n",
                     call.error_type);
            snprintf(path, sizeof path, API_VERSION "/runtime/invocation/%s/error", r.request_id);
            if (http_do(&c, "POST", path, hdr, call.payload.data, call.payload.len, &pr))
                http_do(&c, "POST", path, hdr, call.payload.data, call.payload.len, &pr);
        } else {
            snprintf(path, sizeof path, API_VERSION "/runtime/invocation/%s/response",
                     r.request_id);
            if (http_do(&c, "POST", path, NULL, call.payload.data, call.payload.len, &pr))
                http_do(&c, "POST", path, NULL, call.payload.data, call.payload.len, &pr);
        }
        if (pr.status >= 400)
            fprintf(stderr, "bootstrap: posting the result of %s answered %d: %.*s\n", r.request_id,
                    pr.status, (int)pr.body.len, pr.body.data ? pr.body.data : "");
        trf__buf_free(&pr.body);
    }
}
