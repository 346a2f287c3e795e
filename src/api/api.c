/* SPDX-License-Identifier: Apache-2.0
 *
 * api.c -- authentication and routing in front of the protocol adapters (see api.h).
 */
#include "api/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kit.h"
#include "core/tlog.h"
#include "net/sigv4.h"

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

/* ---- authentication ------------------------------------------------------------------------ */

static int lookup_secret(void *arg, const char *access_key, char *secret, size_t cap) {
    api_ctx_t *ctx = arg;
    for (size_t i = 0; i < ctx->n_keys; i++) {
        if (!strcmp(ctx->keys[i].access_key, access_key)) {
            size_t n = strlen(ctx->keys[i].secret); /* truncated to cap, as snprintf would */
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
        api_json_error(req, 400, "MissingAuthenticationTokenException",
                       "Missing Authentication Token");
        break;
    case TR_EAUTH_KEY:
        api_json_error(req, 400, "UnrecognizedClientException", "%s",
                       err->msg[0] ? err->msg
                                   : "The security token included in the request is invalid.");
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

/* The registry: every service this server speaks, each declared by its adapter (kit.h).  JSON
 * RPC services are chosen by X-Amz-Target prefix, REST services by the longest path prefix.  A
 * new service is one row here. */
static const api_service_t *const api_services[] = {
    &api_kinesis_service,
    &api_dynamodb_service,
    &api_lambda_service,
    &api_lambda_esm_service,
};
#define API_N_SERVICES (sizeof api_services / sizeof api_services[0])

/* The service a request belongs to (NULL: none): by X-Amz-Target, else by path.  *target gets
 * the X-Amz-Target header (or NULL). */
static const api_service_t *api_route(const net_req_t *req, const char **target) {
    *target = net_req_header(req, "X-Amz-Target");
    for (size_t i = 0; *target && i < API_N_SERVICES; i++) {
        const char *p = api_services[i]->target_prefix;
        if (p && !strncmp(*target, p, strlen(p))) return api_services[i];
    }
    const api_service_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < API_N_SERVICES; i++)
        for (const char *const *p = api_services[i]->path_prefixes; p && *p; p++) {
            size_t n = strlen(*p);
            if (n > best_len && !strncmp(req->path, *p, n)) {
                best = api_services[i];
                best_len = n;
            }
        }
    return best;
}

static int is_rest(const api_service_t *svc) { return svc && svc->proto == API_PROTO_REST_JSON; }

static int is_metrics(const net_req_t *req) {
    return !strcmp(req->path, "/metrics") && !strcmp(req->method, "GET");
}

int api_precheck(void *arg, net_req_t *req) {
    api_ctx_t *ctx = arg;
    if (is_metrics(req)) return NET_CONTINUE;
    const char *target;
    const api_service_t *svc = api_route(req, &target);
    int rest = is_rest(svc);
    const char *service = svc ? svc->name : NULL;
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
    api_json_begin(req, svc ? svc->content_type : "application/x-amz-json-1.1");
    return NET_DONE;
}

int api_handle(void *arg, net_req_t *req) {
    api_ctx_t *ctx = arg;
    /* No auth: Prometheus scrape endpoint (see api.h). */
    if (is_metrics(req)) return api_metrics_handle(ctx, req);
    const char *target;
    const api_service_t *svc = api_route(req, &target);
    int rest = is_rest(svc);
    api_json_begin(req, svc ? svc->content_type : "application/x-amz-json-1.1");

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
    if (authenticate_json(ctx, req, svc ? svc->name : NULL)) return NET_DONE;

    if (svc && !rest) {
        /* JSON RPC: POST with the JSON content type, as AWS requires. */
        const char *ct = net_req_header(req, "Content-Type");
        if (strcmp(req->method, "POST")) {
            api_json_error(req, 404, "UnknownOperationException",
                           "%s operations are POST requests; got %s", svc->name, req->method);
            return NET_DONE;
        }
        const char *want = svc->content_type;
        if (!ct || (strncmp(ct, want, strlen(want)) && strncmp(ct, "application/json", 16))) {
            api_json_error(req, 404, "UnknownOperationException",
                           "Content-Type %s is not supported; send %s", ct ? ct : "(none)", want);
            return NET_DONE;
        }
        return api_dispatch(ctx, svc, req, target + strlen(svc->target_prefix));
    }
    if (svc) return api_dispatch(ctx, svc, req, NULL);

    if (!strcmp(req->method, "POST") || target) {
        api_json_error(req, 400, "UnknownOperationException",
                       "Operation %s is not supported by this server; see README.md for the "
                       "services and operations it implements.",
                       target ? target : "(no X-Amz-Target header)");
    } else {
        api_json_error(req, 400, "UnknownOperationException",
                       "%s %s is not an operation this server implements.", req->method, req->path);
    }
    return NET_DONE;
}
