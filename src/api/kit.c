/* SPDX-License-Identifier: Apache-2.0
 *
 * kit.c -- the adapter kit (kit.h): dispatch of a request to its service's operation, error
 * responses in each protocol's shape, the engine-code map, validation messages, member readers,
 * REST helpers and the in-process call path.  api.c authenticates and picks the service; the
 * adapters (kinesis.c, lambda.c, lambda_esm.c, dynamodb.c) declare themselves with kit.h's types
 * and hold only their handlers.
 */
#include "api/kit.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/tlog.h"

/* ---- responses ----------------------------------------------------------------------------- */

static atomic_ullong req_counter;
static uint32_t req_prefix;

static void request_id(char out[37]) {
    if (!req_prefix) {
        uint32_t p;
        if (RAND_bytes((unsigned char *)&p, sizeof p) != 1) p = (uint32_t)getpid();
        req_prefix = p | 1;
    }
    unsigned long long n = atomic_fetch_add(&req_counter, 1);
    /* "%08x-%04x-4%03x-a%03x-%012llx" of prefix, n>>48, n>>36, n>>24, n: by hand, as this runs
     * for every request. */
    static const char hex[] = "0123456789abcdef";
    static const signed char shift[] = {28, 24, 20, 16, 12, 8, 4, 0, -1,   /* prefix */
                                        60, 56, 52, 48, -1,                /* n bits 48..63 */
                                        -2, 44, 40, 36, -1,                /* 4, bits 36..47 */
                                        -3, 32, 28, 24, -1};               /* a, bits 24..35 */
    char *o = out;
    for (size_t i = 0; i < sizeof shift; i++) {
        int sh = shift[i];
        if (sh == -1) *o++ = '-';
        else if (sh == -2) *o++ = '4';
        else if (sh == -3) *o++ = 'a';
        else if (i < 8) *o++ = hex[(req_prefix >> sh) & 15];
        else *o++ = hex[(n >> sh) & 15];
    }
    for (int sh = 44; sh >= 0; sh -= 4) *o++ = hex[(n >> sh) & 15];   /* bits 0..47 */
    *o = 0;
}

void api_json_begin(net_req_t *req, const char *content_type) {
    char id[37];
    request_id(id);
    req->content_type = content_type;
    net_req_add_header(req, "x-amzn-RequestId", id);
}

void api_json_error(net_req_t *req, int status, const char *type, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    req->status = status;
    tr_buf_reset(&req->out);
    tr_buf_puts(&req->out, "{\"__type\":");
    tr_buf_json_str(&req->out, type, strlen(type));
    tr_buf_puts(&req->out, ",\"message\":");
    tr_buf_json_str(&req->out, msg, strlen(msg));
    tr_buf_puts(&req->out, "}");
    tr_debug("api", "%s %s -> %d %s: %s", req->method, req->path, status, type, msg);
}

void api_verr_vadd(tr_buf *b, int *n, int value_max, const char *member, const char *value,
                   const char *fmt, va_list ap) {
    char what[512];
    vsnprintf(what, sizeof what, fmt, ap);
    if (*n) tr_buf_puts(b, "; ");
    if (value)
        tr_buf_printf(b, "Value '%.*s' at '%s' failed to satisfy constraint: %s", value_max, value,
                      member, what);
    else tr_buf_printf(b, "Value null at '%s' failed to satisfy constraint: %s", member, what);
    (*n)++;
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* REST-JSON's error shape (Lambda): header x-amzn-ErrorType (botocore takes the code from it)
 * and {"Type":"User"|"Service","message"|"Message":msg}, the member spelled as the exception's
 * shape in the service model spells it. */
static void rest_json_error(api_call_t *c, int status, const char *type, const char *msg) {
    net_req_t *req = c->req;
    int cap = 0;
    for (const char *const *m = c->svc->message_caps; m && *m && !cap; m++) cap = !strcmp(*m, type);
    req->status = status;
    req->content_type = c->svc->content_type;
    net_req_add_header(req, "x-amzn-ErrorType", type);
    tr_buf_reset(&req->out);
    tr_buf_printf(&req->out, "{\"Type\":\"%s\",\"%s\":", status >= 500 ? "Service" : "User",
                  cap ? "Message" : "message");
    tr_buf_json_str(&req->out, msg, strlen(msg));
    tr_buf_puts(&req->out, "}");
    tr_debug(c->svc->log, "%s %s -> %d %s: %s", req->method, req->path, status, type, msg);
}

int api_fail(api_call_t *c, int status, const char *type, const char *fmt, ...) {
    char msg[1024], tb[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const api_service_t *svc = c->svc;
    if (svc->type_name) type = svc->type_name(type, tb, sizeof tb);
    switch (svc->proto) {
    case API_PROTO_JSON10:
    case API_PROTO_JSON11: api_json_error(c->req, status, type, "%s", msg); break;
    case API_PROTO_REST_JSON: rest_json_error(c, status, type, msg); break;
    default:
        /* Reserved protocols have no writer yet (kit.h): no service declares one. */
        tr_error("api", "service %s declares protocol %d, which has no error writer yet", svc->name,
                 (int)svc->proto);
        abort();
    }
    return API_FAIL;
}

const api_errmap_t *api_error_row(const api_service_t *svc, int code) {
    const api_errmap_t *e = svc->errors;
    while (e->code && e->code != code) e++;
    return e;
}

int api_error(api_call_t *c, int code, const tr_err *err) {
    const api_errmap_t *row = api_error_row(c->svc, code);
    const char *msg = row->fixed           ? row->fixed
                      : err && err->msg[0] ? err->msg
                      : row->fallback      ? row->fallback
                                           : tr_strerror(code);
    if (row->status == 500)
        tr_error(c->svc->log, "internal error %s: %s", tr_err_name(code), err ? err->msg : "");
    return api_fail(c, row->status, row->type, "%s", msg);
}

void api_verr(api_call_t *c, const char *member, const char *value, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    api_verr_vadd(&c->verr, &c->n_verr, c->svc->verr_value_max, member, value, fmt, ap);
    va_end(ap);
}

int api_verr_flush(api_call_t *c) {
    if (!c->n_verr) return 0;
    return api_fail(c, 400, "ValidationException", "%d validation error%s detected: %s", c->n_verr,
                    c->n_verr > 1 ? "s" : "", c->verr.data);
}

/* ---- member readers ---------------------------------------------------------------------------- */

const char *api_member(const api_call_t *c, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", name);
    if (c->svc->member_style == API_MEMBER_CAMEL && buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* obj's member `name`, or NULL when absent or null (then, when req, recorded as a violation). */
static json_t *member_get(api_call_t *c, json_t *obj, const char *name, int req) {
    char mb[64];
    json_t *v = json_object_get(obj, name);
    if (v && !json_is_null(v)) return v;
    if (req) api_verr(c, api_member(c, name, mb, sizeof mb), NULL, "Member must not be null");
    return NULL;
}

int api_get_str(api_call_t *c, json_t *obj, const char *name, int req, size_t min, size_t max,
                const api_pattern_t *pat, const char **out, size_t *out_len) {
    char mb[64];
    json_t *v = member_get(c, obj, name, req);
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!v) return 0;
    if (!json_is_string(v))
        return api_fail(c, 400, "SerializationException",
                        "Expected a string for %s, got another JSON type", name);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* Lengths are in characters, as AWS counts them, not UTF-8 bytes. */
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (chars < min)
        api_verr(c, api_member(c, name, mb, sizeof mb), s,
                 "Member must have length greater than or equal to %zu", min);
    else if (chars > max)
        api_verr(c, api_member(c, name, mb, sizeof mb), s,
                 "Member must have length less than or equal to %zu", max);
    else if (pat && !pat->ok(s, n))
        api_verr(c, api_member(c, name, mb, sizeof mb), s,
                 "Member must satisfy regular expression pattern: %s", pat->text);
    *out = s;
    if (out_len) *out_len = n;
    return 0;
}

int api_get_int(api_call_t *c, json_t *obj, const char *name, int req, long long min, long long max,
                long long *out, int *present) {
    char mb[64], vb[32];
    json_t *v = member_get(c, obj, name, req);
    *present = 0;
    if (!v) return 0;
    if (!json_is_integer(v))
        return api_fail(c, 400, "SerializationException",
                        "Expected an integer for %s, got another JSON type", name);
    long long x = json_integer_value(v);
    snprintf(vb, sizeof vb, "%lld", x);
    if (x < min)
        api_verr(c, api_member(c, name, mb, sizeof mb), vb,
                 "Member must have value greater than or equal to %lld", min);
    else if (x > max)
        api_verr(c, api_member(c, name, mb, sizeof mb), vb,
                 "Member must have value less than or equal to %lld", max);
    *out = x;
    *present = 1;
    return 0;
}

int api_get_epoch(api_call_t *c, json_t *obj, const char *name, int64_t *ms, int *present) {
    json_t *v = member_get(c, obj, name, API_OPT);
    *present = 0;
    if (!v) return 0;
    if (!json_is_number(v))
        return api_fail(c, 400, "SerializationException",
                        "Expected a timestamp (epoch seconds) for %s", name);
    double d = json_number_value(v);
    *ms = (int64_t)(d * 1000.0 + (d >= 0 ? 0.5 : -0.5));
    *present = 1;
    return 0;
}

int api_iso8601_parse(const char *s, size_t n, int64_t *unix_ms) {
    char tmp[40];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (sscanf(tmp, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6)
        return -1;
    /* fraction: milliseconds, further digits ignored */
    const char *r = tmp + used;
    int ms = 0, digits = 0;
    if (*r == '.')
        for (r++; *r >= '0' && *r <= '9'; r++, digits++)
            if (digits < 3) ms = ms * 10 + (*r - '0');
    for (; digits > 0 && digits < 3; digits++) ms *= 10;
    if (strcmp(r, "Z") && strcmp(r, "+00:00")) return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *unix_ms = (int64_t)timegm(&tm) * 1000 + ms;
    return 0;
}

/* ---- REST helpers ------------------------------------------------------------------------------ */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int api_pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
            if (a < 0 || b < 0) return -1;
            ch = (char)(a * 16 + b);
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (k + 1 >= cap) return -1;
        out[k++] = ch;
    }
    out[k] = 0;
    return 0;
}

int api_query(const net_req_t *req, const char *key, char *out, size_t cap) {
    const char *q = req->query;
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nl = eq ? (size_t)(eq - q) : len;
        if (nl == kl && !strncmp(q, key, kl)) {
            out[0] = 0;
            if (!eq) return 1;
            if (api_pct_decode(eq + 1, len - nl - 1, out, cap, 1)) {
                out[0] = 0;
                return -1;
            }
            return 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

int api_path_match(const char *pattern, const char *path, char *seg, size_t cap) {
    seg[0] = 0;
    const char *p = pattern, *s = path;
    while (*p) {
        if (p[0] == '{' && p[1] == '}') {
            const char *e = strchr(s, '/');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (!n || n >= cap) return 0;
            memcpy(seg, s, n);
            seg[n] = 0;
            s += n;
            p += 2;
            continue;
        }
        if (*p != *s) return 0;
        p++;
        s++;
    }
    return *s == 0 || (s[0] == '/' && s[1] == 0);
}

int api_reply_json(api_call_t *c, int status, json_t *o, int real_precision) {
    char *s = json_dumps(o,
                         JSON_COMPACT | (real_precision ? JSON_REAL_PRECISION(real_precision) : 0));
    json_decref(o);
    if (!s) abort();
    net_req_t *req = c->req;
    req->status = status;
    req->content_type = c->svc->content_type;
    tr_buf_reset(&req->out);
    tr_buf_puts(&req->out, s);
    free(s);
    return NET_DONE;
}

int api_reply_empty(api_call_t *c, int status) {
    c->req->status = status;
    c->req->content_type = NULL;
    tr_buf_reset(&c->req->out);
    return NET_DONE;
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

const api_op_t *api_op_find(const api_service_t *svc, const char *name) {
    for (size_t i = 0; i < svc->n_ops; i++)
        if (!strcmp(svc->ops[i].name, name)) return &svc->ops[i];
    return NULL;
}

/* The REST row for req's method and path (its "{}" segment into c->seg); *path_known: some
 * row has this path (another method: 405 rather than 404). */
static const api_op_t *rest_find(api_call_t *c, int *path_known) {
    const api_service_t *svc = c->svc;
    *path_known = 0;
    for (size_t i = 0; i < svc->n_ops; i++) {
        if (!api_path_match(svc->ops[i].path, c->req->path, c->seg, sizeof c->seg)) continue;
        *path_known = 1;
        if (!strcmp(svc->ops[i].method, c->req->method)) return &svc->ops[i];
    }
    return NULL;
}

int api_parse_body(api_call_t *c) {
    net_req_t *req = c->req;
    json_error_t je;
    if (c->svc->proto == API_PROTO_REST_JSON) {
        if (!req->body_len) return 0;
        c->in = json_loadb((const char *)req->body, req->body_len, 0, &je);
        if (!c->in || !json_is_object(c->in)) {
            int parsed = c->in != NULL;
            json_decref(c->in);
            c->in = NULL;
            return api_fail(c, 400, "InvalidRequestContentException",
                            "Could not parse request body into json: %s (at byte %d)",
                            parsed ? "expected a JSON object" : je.text, je.position);
        }
        return 0;
    }
    c->in = json_loadb((const char *)req->body, req->body_len, JSON_ALLOW_NUL, &je);
    if (!c->in) {
        if (req->body_len == 0)
            return api_fail(c, 400, "SerializationException",
                            "Request body is empty; send a JSON object with the operation's "
                            "members ({} when there are none)");
        return api_fail(c, 400, "SerializationException",
                        "Request body is not valid JSON: %s (at byte %d)", je.text, je.position);
    }
    if (!json_is_object(c->in))
        return api_fail(c, 400, "SerializationException",
                        "Request body must be a JSON object with the operation's members");
    return 0;
}

int api_dispatch(api_ctx_t *ctx, const api_service_t *svc, net_req_t *req, const char *name) {
    api_call_t c;
    c.ctx = ctx;
    c.svc = svc;
    c.req = req;
    c.in = NULL;
    c.out = &req->out;
    c.n_verr = 0;
    c.verr = (tr_buf)TR_BUF_INIT;
    c.seg[0] = 0;
    memset(c.priv, 0, sizeof c.priv);
    int rc, rest = svc->proto == API_PROTO_REST_JSON, path_known = 0;
    c.op = rest ? rest_find(&c, &path_known) : api_op_find(svc, name);
    if (!c.op) {
        if (rest)
            rc = api_fail(&c, path_known ? 405 : 404, "UnknownOperationException",
                          "%s %s is not a %s operation this server implements; see README.md",
                          req->method, req->path, svc->label);
        else
            rc = api_fail(&c, 400, "UnknownOperationException",
                          "Operation %s is not implemented by Tributary's %s API; see the "
                          "compatibility table in README.md",
                          name, svc->label);
        goto done;
    }
    if (c.op->fast) {
        rc = c.op->fast(&c);
        if (rc != API_BAIL) goto done;
        tr_buf_reset(&req->out);
    }
    if (svc->ready && (rc = svc->ready(&c)) != 0) goto done;
    if ((!rest || (c.op->flags & API_OP_BODY)) && !(c.op->flags & API_OP_WORKER) &&
        (rc = api_parse_body(&c)) != 0)
        goto done;
    rc = svc->run ? svc->run(&c) : c.op->fn(&c);
done:
    json_decref(c.in);
    tr_buf_free(&c.verr);
    if (rc == NET_DEFER) return NET_DEFER;
    if (svc->seal) svc->seal(req);
    return NET_DONE;
}

/* ---- in-process calls -------------------------------------------------------------------------- */

/* A request that never touched the network: the same net_req_t an HTTP request gets, with
 * resume_fn ours.  As net/http.c does, the deferred completion runs once both the handler has
 * returned and the engine has resumed (sync counts to 2), so `finish` never races the handler. */
typedef struct api_local {
    net_req_t req; /* first: resume_fn gets &req */
    atomic_int sync;
    api_local_done_fn done;
    void *arg;
    api_local_post_fn post; /* NULL: complete on the resuming thread */
    void *post_arg;
    char *line; /* REST: "METHOD path?query", split in place */
} api_local_t;

static void local_end(api_local_t *l) {
    net_req_t *req = &l->req;
    if (req->finish) req->finish(req);
    l->done(l->arg, req->status, req->out.data ? (const char *)req->out.data : "", req->out.len);
    net_req_resp_free(req);
    free(req->body);
    free(l->line);
    free(l);
}

static void local_end_run(void *arg) { local_end(arg); }

/* The engine's resume (its thread: the table writer's).  The completion -- finish building the
 * response, done, freeing the request and its trees -- is the caller's work: with a post it is
 * handed back to the caller's thread, so the engine's serial thread only signals. */
static void local_resume(net_req_t *req) {
    api_local_t *l = (api_local_t *)req;
    if (atomic_fetch_add(&l->sync, 1) != 1) return;
    if (l->post) l->post(l->post_arg, local_end_run, l);
    else local_end(l);
}

void api_call_local(api_ctx_t *ctx, const api_service_t *svc, const char *op, const char *body,
                    size_t len, api_local_done_fn done, void *arg) {
    api_call_local_post(ctx, svc, op, body, len, done, arg, NULL, NULL);
}

void api_call_local_post(api_ctx_t *ctx, const api_service_t *svc, const char *op, const char *body,
                         size_t len, api_local_done_fn done, void *arg, api_local_post_fn post,
                         void *post_arg) {
    api_local_t *l = tr_xcalloc(1, sizeof *l);
    uint8_t *b = tr_xmalloc(len + 1);
    if (len) memcpy(b, body, len);
    b[len] = 0;
    l->done = done;
    l->arg = arg;
    l->post = post;
    l->post_arg = post_arg;
    l->req.method = "POST";
    l->req.path = "/";
    l->req.query = "";
    if (svc->proto == API_PROTO_REST_JSON) { /* op is "METHOD path[?query]" */
        l->line = tr_xstrdup(op);
        char *sp = strchr(l->line, ' ');
        if (sp) {
            *sp = 0;
            l->req.method = l->line;
            l->req.path = sp + 1;
            char *q = strchr(sp + 1, '?');
            if (q) {
                *q = 0;
                l->req.query = q + 1;
            }
        }
        op = NULL;
    }
    l->req.body = b;
    l->req.body_len = len;
    l->req.status = 200;
    l->req.resume_fn = local_resume;
    snprintf(l->req.remote, sizeof l->req.remote, "function");
    if (api_dispatch(ctx, svc, &l->req, op) == NET_DONE) {
        local_end(l);
        return;
    }
    if (atomic_fetch_add(&l->sync, 1) == 1) local_end(l);
}
