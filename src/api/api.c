/*
 * api.c -- authentication and routing in front of the protocol adapters (see api.h).
 */
#include "api/api.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/tlog.h"
#include "net/sigv4.h"

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

/* ---- ARNs ------------------------------------------------------------------------------------ */

/* Field i (0-based, ':'-separated) of arn into out (cap bytes); "" when absent or too long. */
static void arn_field(const char *arn, int i, char *out, size_t cap) {
    out[0] = 0;
    const char *p = arn;
    for (int k = 0; k < i; k++) {
        p = strchr(p, ':');
        if (!p) return;
        p++;
    }
    size_t n = strcspn(p, ":");
    if (n >= cap) return;
    memcpy(out, p, n);
    out[n] = 0;
}

void api_arn_fields(const char *arn, char region[64], char account[32]) {
    region[0] = account[0] = 0;
    if (!arn || strncmp(arn, "arn:", 4)) return;
    arn_field(arn, 3, region, 64);
    arn_field(arn, 4, account, 32);
}

/* Field i of arn: 1 when it is empty or equals want, 0 otherwise (absent fields are empty). */
static int arn_field_ok(const char *arn, int i, const char *want, int empty_ok) {
    const char *p = arn;
    for (int k = 0; k < i && p; k++)
        if ((p = strchr(p, ':')) != NULL) p++;
    size_t n = p ? strcspn(p, ":") : 0;
    if (n == 0) return empty_ok;
    return strlen(want) == n && !memcmp(p, want, n);
}

int api_arn_owner(const api_ctx_t *ctx, const char *arn) {
    if (!arn || strncmp(arn, "arn:", 4)) return API_ARN_OURS;
    if (!arn_field_ok(arn, 1, "aws", 0) || !arn_field_ok(arn, 3, ctx->region, 1))
        return API_ARN_OTHER_REGION;
    if (!arn_field_ok(arn, 4, API_ACCOUNT_ID, 1)) return API_ARN_OTHER_ACCOUNT;
    return API_ARN_OURS;
}

int api_fn_name_owner(const api_ctx_t *ctx, const char *fn) {
    if (!fn) return API_ARN_OURS;
    if (!strncmp(fn, "arn:", 4)) return api_arn_owner(ctx, fn);
    const char *colon = strchr(fn, ':');
    if (colon && !strncmp(colon, ":function:", 10) &&
        ((size_t)(colon - fn) != strlen(API_ACCOUNT_ID) ||
         memcmp(fn, API_ACCOUNT_ID, strlen(API_ACCOUNT_ID))))
        return API_ARN_OTHER_ACCOUNT;
    return API_ARN_OURS;
}

void api_verr_vadd(tr_buf *b, int *n, int value_max, const char *member, const char *value,
                   const char *fmt, va_list ap) {
    char what[512];
    vsnprintf(what, sizeof what, fmt, ap);
    if (*n) tr_buf_puts(b, "; ");
    if (value)
        tr_buf_printf(b, "Value '%.*s' at '%s' failed to satisfy constraint: %s", value_max, value,
                      member, what);
    else
        tr_buf_printf(b, "Value null at '%s' failed to satisfy constraint: %s", member, what);
    (*n)++;
}

/* ---- authentication ------------------------------------------------------------------------ */

static int lookup_secret(void *arg, const char *access_key, char *secret, size_t cap) {
    api_ctx_t *ctx = arg;
    for (size_t i = 0; i < ctx->n_keys; i++) {
        if (!strcmp(ctx->keys[i].access_key, access_key)) {
            size_t n = strlen(ctx->keys[i].secret);   /* truncated to cap, as snprintf would */
            if (n >= cap) n = cap - 1;
            memcpy(secret, ctx->keys[i].secret, n);
            secret[n] = 0;
            return 0;
        }
    }
    return TR_EAUTH_KEY;
}

/* The JSON error for a failed SigV4 check (rc, err from sigv4_verify / sigv4_check_headers),
 * logged at most 10 times a second.  Returns -1. */
static int auth_failed(net_req_t *req, int rc, const tr_err *err) {
    switch (rc) {
    case TR_EAUTH_MISSING:
        api_json_error(req, 400, "MissingAuthenticationTokenException", "Missing Authentication Token");
        break;
    case TR_EAUTH_KEY:
        api_json_error(req, 400, "UnrecognizedClientException", "%s",
                       err->msg[0] ? err->msg : "The security token included in the request is invalid.");
        break;
    case TR_EAUTH_EXPIRED:
        api_json_error(req, 400, "InvalidSignatureException", "%s", err->msg);
        break;
    default:
        /* A malformed Authorization header is "incomplete", a wrong one "invalid". */
        if (strstr(err->msg, "requires") || strstr(err->msg, "malformed") ||
            strstr(err->msg, "Authorization header"))
            api_json_error(req, 400, "IncompleteSignatureException", "%s", err->msg);
        else
            api_json_error(req, 400, "InvalidSignatureException", "%s",
                           err->msg[0] ? err->msg
                                       : "The request signature we calculated does not match "
                                         "the signature you provided. Check your AWS Secret "
                                         "Access Key and signing method.");
        break;
    }
    static tr_ratelimit auth_rl;
    unsigned dropped;
    if (tr_log_allow(&auth_rl, 10, &dropped)) {
        if (dropped)
            tr_info("auth", "%u more rejected requests were not logged (at most 10 a second)",
                    dropped);
        tr_info("auth", "rejected %s %s from %s: %s", req->method, req->path, req->remote,
                err->msg);
    }
    return -1;
}

/* A valid signature for another service or region is still the wrong credential: fill the error
 * and return -1, else 0. */
static int scope_check(api_ctx_t *ctx, net_req_t *req, const sigv4_result_t *res,
                       const char *service) {
    if (service && strcmp(res->service, service)) {
        api_json_error(req, 400, "InvalidSignatureException",
                       "Credential should be scoped to correct service: '%s'. ", service);
        return -1;
    }
    if (strcmp(res->region, ctx->region)) {
        api_json_error(req, 400, "InvalidSignatureException",
                       "Credential should be scoped to a valid region. This server is region "
                       "'%s' (its --region); the request was signed for '%s'.",
                       ctx->region, res->region);
        return -1;
    }
    return 0;
}

static sigv4_req_t sigv4_of(api_ctx_t *ctx, const net_req_t *req) {
    sigv4_req_t sr = {
        .method = req->method,
        .path = req->path,
        .query = req->query,
        .headers = req->headers,
        .n_headers = req->n_headers,
        .payload_sha256 = NULL,
        .now_ms = ctx->now_ms(),
    };
    return sr;
}

/* Verify the request's signature; on failure fill the JSON error and return nonzero.  A request
 * whose signature api_precheck already verified (its x-amz-content-sha256 named the body's hash)
 * only has its body checked against that hash. */
static int authenticate_json(api_ctx_t *ctx, net_req_t *req, const char *service) {
    char body_hash[65];
    const char *given = net_req_header(req, "x-amz-content-sha256");
    sigv4_req_t sr = sigv4_of(ctx, req);
    sigv4_payload_hash(req->body, req->body_len, body_hash);
    /* The client told us the hash it signed; it must also be the body's. */
    if (given && strcmp(given, body_hash) && strcmp(given, "UNSIGNED-PAYLOAD")) {
        api_json_error(req, 400, "InvalidSignatureException",
                       "The provided x-amz-content-sha256 header does not match what was "
                       "computed.");
        return -1;
    }
    if (req->authed) return 0;
    sr.payload_sha256 = body_hash;
    sigv4_result_t res;
    tr_err err;
    tr_err_clear(&err);
    int rc = sigv4_verify(&sr, lookup_secret, ctx, &res, &err);
    if (rc) return auth_failed(req, rc, &err);
    if (scope_check(ctx, req, &res, service)) return -1;
    req->authed = 1;
    return 0;
}

/* ---- routing ------------------------------------------------------------------------------- */

/* JSON RPC protocols, chosen by X-Amz-Target prefix.  Each row: the target prefix, the SigV4
 * service name the credential scope must carry, the content type of requests and responses, and
 * the adapter.  A new JSON service is one row here. */
typedef int (*api_rpc_fn)(api_ctx_t *ctx, net_req_t *req, const char *op);
static const struct api_rpc {
    const char *prefix;
    const char *service;
    const char *ctype;
    api_rpc_fn fn;
} api_rpcs[] = {
    {"Kinesis_20131202.", "kinesis", "application/x-amz-json-1.1", api_kinesis_handle},
    {"DynamoDB_20120810.", "dynamodb", "application/x-amz-json-1.0", api_dynamodb_handle},
};

/* REST protocols, chosen by path prefix (Lambda: "/2015-03-31/"). */
typedef int (*api_rest_fn)(api_ctx_t *ctx, net_req_t *req);
static const struct api_rest {
    const char *path_prefix;
    const char *service;
    api_rest_fn fn;
} api_rests[] = {
    {"/2015-03-31/", "lambda", api_lambda_handle},
    {"/2017-10-31/", "lambda", api_lambda_handle},   /* Put/DeleteFunctionConcurrency */
    {"/2019-09-30/", "lambda", api_lambda_handle},   /* GetFunctionConcurrency */
    {"/2014-11-13/", "lambda", api_lambda_handle},   /* InvokeAsync */
    /* The longest matching prefix wins (rows are scanned in order, the last match is kept). */
    {"/2015-03-31/event-source-mappings", "lambda", api_lambda_esm_handle},
};

/* The protocol row a request belongs to: *rpc by X-Amz-Target, else *rest by path, else both
 * NULL.  Returns the target header (or NULL). */
static const char *api_route(const net_req_t *req, const struct api_rpc **rpc,
                             const struct api_rest **rest) {
    const char *target = net_req_header(req, "X-Amz-Target");
    *rpc = NULL;
    *rest = NULL;
    for (size_t i = 0; target && i < sizeof api_rpcs / sizeof api_rpcs[0]; i++)
        if (!strncmp(target, api_rpcs[i].prefix, strlen(api_rpcs[i].prefix))) *rpc = &api_rpcs[i];
    for (size_t i = 0; !*rpc && i < sizeof api_rests / sizeof api_rests[0]; i++)
        if (api_rests[i].path_prefix &&
            !strncmp(req->path, api_rests[i].path_prefix, strlen(api_rests[i].path_prefix)))
            *rest = &api_rests[i];
    return target;
}

static int is_metrics(const net_req_t *req) {
    return !strcmp(req->path, "/metrics") && !strcmp(req->method, "GET");
}

int api_precheck(void *arg, net_req_t *req) {
    api_ctx_t *ctx = arg;
    if (is_metrics(req)) return NET_CONTINUE;
    const struct api_rpc *rpc;
    const struct api_rest *rest;
    api_route(req, &rpc, &rest);
    const char *service = rpc ? rpc->service : rest ? rest->service : NULL;
    sigv4_req_t sr = sigv4_of(ctx, req);
    sigv4_result_t res;
    tr_err err;
    tr_err_clear(&err);
    int rc = sigv4_check_headers(&sr, lookup_secret, ctx, &res, &err);
    /* The body's hash given up front (64 hex digits): the signature can be checked now too. */
    const char *given = net_req_header(req, "x-amz-content-sha256");
    int full = given && strlen(given) == 64 && strspn(given, "0123456789abcdefABCDEF") == 64;
    if (!rc && full) rc = sigv4_verify(&sr, lookup_secret, ctx, &res, &err);
    if (rc) {
        auth_failed(req, rc, &err);
    } else if (!scope_check(ctx, req, &res, service)) {
        if (full) req->authed = 1;
        if (req->reject != NET_REJECT_TOO_BIG) return NET_CONTINUE;
        api_json_error(req, 413, rest ? "RequestTooLargeException" : "SerializationException",
                       "Request body is larger than the server accepts (16 MiB); send smaller "
                       "batches.");
    }
    /* Answered here, before the body: it is never read. */
    api_json_begin(req, rpc    ? rpc->ctype
                        : rest ? "application/json"
                               : "application/x-amz-json-1.1");
    return NET_DONE;
}

int api_handle(void *arg, net_req_t *req) {
    api_ctx_t *ctx = arg;
    /* No auth: Prometheus scrape endpoint (see api.h). */
    if (is_metrics(req)) {
        int rc = api_metrics_handle(ctx, req);
        if (ctx->esm) esm_metrics_prometheus(ctx->esm, &req->out);   /* IteratorAge & co */
        return rc;
    }
    const struct api_rpc *rpc;
    const struct api_rest *rest;
    const char *target = api_route(req, &rpc, &rest);
    api_json_begin(req, rpc ? rpc->ctype : rest ? "application/json" : "application/x-amz-json-1.1");

    if (req->reject == NET_REJECT_OVERLOAD) {
        api_json_error(req, rest ? 429 : 400,
                       rest ? "TooManyRequestsException" : "ProvisionedThroughputExceededException",
                       "The server is over its in-flight request budget; retry with backoff.");
        return NET_DONE;
    }
    if (req->reject == NET_REJECT_TOO_BIG) {
        api_json_error(req, 413, rest ? "RequestTooLargeException" : "SerializationException",
                       "Request body is larger than the server accepts (16 MiB); send smaller "
                       "batches.");
        return NET_DONE;
    }
    if (authenticate_json(ctx, req, rpc ? rpc->service : rest ? rest->service : NULL))
        return NET_DONE;

    if (rpc) {
        /* JSON RPC: POST with the JSON content type, as AWS requires. */
        const char *ct = net_req_header(req, "Content-Type");
        if (strcmp(req->method, "POST")) {
            api_json_error(req, 404, "UnknownOperationException",
                           "%s operations are POST requests; got %s", rpc->service, req->method);
            return NET_DONE;
        }
        if (!ct || (strncmp(ct, rpc->ctype, strlen(rpc->ctype)) && strncmp(ct, "application/json", 16))) {
            api_json_error(req, 404, "UnknownOperationException",
                           "Content-Type %s is not supported; send %s", ct ? ct : "(none)",
                           rpc->ctype);
            return NET_DONE;
        }
        return rpc->fn(ctx, req, target + strlen(rpc->prefix));
    }
    if (rest) return rest->fn(ctx, req);

    if (!strcmp(req->method, "POST") || target) {
        api_json_error(req, 400, "UnknownOperationException",
                       "Operation %s is not supported by this server; see README.md for the "
                       "services and operations it implements.",
                       target ? target : "(no X-Amz-Target header)");
    } else {
        api_json_error(req, 400, "UnknownOperationException",
                       "%s %s is not an operation this server implements.", req->method,
                       req->path);
    }
    return NET_DONE;
}

/* ---- iterator key -------------------------------------------------------------------------- */

int api_iter_key_load(const char *dir, uint8_t key[32], tr_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/iterator.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, key, 32);
        close(fd);
        if (n == 32) return 0;
        tr_warn("api", "%s is damaged; making a new one (old shard iterators become invalid)",
                path);
    }
    if (RAND_bytes(key, 32) != 1) return tr_err_set(err, TR_EINTERNAL, "no randomness for the iterator key");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return tr_err_set(err, TR_EIO, "cannot write %s: %m; check the data directory's permissions", tmp);
    if (write(fd, key, 32) != 32 || fsync(fd) != 0) {
        close(fd);
        return tr_err_set(err, TR_EIO, "cannot write %s: %m", tmp);
    }
    close(fd);
    if (rename(tmp, path) != 0) return tr_err_set(err, TR_EIO, "cannot rename %s: %m", tmp);
    if (tr_fsync_parent(path) != 0)
        return tr_err_set(err, TR_EIO, "cannot sync the directory of %s: %m", path);
    return 0;
}
