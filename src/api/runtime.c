/* SPDX-License-Identifier: Apache-2.0
 *
 * runtime.c -- the Lambda Runtime API (2018-06-01) for `provided` runtimes, on its own listener.
 *
 * Every instance gets its own HTTP listener on 127.0.0.1, ephemeral port, one network thread
 * (api_runtime_listener_open/close, the engine's fn_rt_listener_t, wired in main.c), as every
 * AWS sandbox has its own endpoint: AWS_LAMBDA_RUNTIME_API is a plain "127.0.0.1:<port>",
 * which every runtime client accepts.  (api_runtime_handle serves the alternative: one shared
 * listener, the instance token as the first path segment.)  As on AWS there is no
 * authentication: the listeners are reachable only from the machine.  Paths:
 *
 *   GET  /2018-06-01/runtime/invocation/next           long poll: 200, the event as the body,
 *        headers Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn,
 *        -Trace-Id (and -Client-Context when the invoker sent one)
 *   POST /2018-06-01/runtime/invocation/{id}/response  202 {"status":"OK"}
 *   POST /2018-06-01/runtime/invocation/{id}/error     202 {"status":"OK"}; the body (error JSON)
 *        and Lambda-Runtime-Function-Error-Type become the function error
 *   POST /2018-06-01/runtime/init/error                202 {"status":"OK"}
 *
 * Errors use the Runtime API's ErrorResponse {"errorMessage","errorType"}: 400
 * InvalidStateTransition / InvalidRequestID, 403 for an unknown instance, 413
 * RequestEntityTooLarge (response over 6 MB), 404 for other paths, 500 when the engine is
 * shutting down ("Container error. Non-recoverable state. Runtime should exit promptly.").
 *
 * /next is deferred: the engine calls back when an invocation is assigned to the instance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/tlog.h"
#include "fn/fn.h"

#define RT_PREFIX "/2018-06-01/runtime/"

static int rt_error(net_req_t *req, int status, const char *type, const char *msg) {
    req->status = status;
    req->content_type = "application/json";
    tr_buf_reset(&req->out);
    tr_buf_puts(&req->out, "{\"errorMessage\":");
    tr_buf_json_str(&req->out, msg, strlen(msg));
    tr_buf_puts(&req->out, ",\"errorType\":");
    tr_buf_json_str(&req->out, type, strlen(type));
    tr_buf_puts(&req->out, "}");
    return NET_DONE;
}

static int rt_engine_error(net_req_t *req, int rc, const tr_err *err) {
    const char *msg = err->msg[0] ? err->msg : tr_strerror(rc);
    switch (rc) {
    case TR_ENOTFOUND:
        if (strstr(msg, "instance")) return rt_error(req, 403, "Forbidden", msg);
        return rt_error(req, 400, "InvalidRequestID", msg);
    case TR_EINUSE: return rt_error(req, 400, "InvalidStateTransition", msg);
    case TR_ETOOBIG: return rt_error(req, 413, "RequestEntityTooLarge", msg);
    default:
        return rt_error(req, 500, "ServiceException",
                        "Container error. Non-recoverable state. Runtime should exit promptly.");
    }
}

static int rt_accepted(net_req_t *req) {
    req->status = 202;
    req->content_type = "application/json";
    tr_buf_reset(&req->out);
    tr_buf_puts(&req->out, "{\"status\":\"OK\"}");
    return NET_DONE;
}

static void next_done(void *arg, int rc, const fn_rt_event_t *ev) {
    net_req_t *req = arg;
    if (rc) {
        rt_error(req, 500, "ServiceException",
                 "Container error. Non-recoverable state. Runtime should exit promptly.");
        net_req_resume(req);
        return;
    }
    char dl[32];
    snprintf(dl, sizeof dl, "%lld", (long long)ev->deadline_ms);
    req->status = 200;
    req->content_type = "application/json";
    net_req_add_header(req, "Lambda-Runtime-Aws-Request-Id", ev->request_id);
    net_req_add_header(req, "Lambda-Runtime-Deadline-Ms", dl);
    net_req_add_header(req, "Lambda-Runtime-Invoked-Function-Arn", ev->function_arn);
    net_req_add_header(req, "Lambda-Runtime-Trace-Id", ev->trace_id);
    if (ev->client_context && *ev->client_context)
        net_req_add_header(req, "Lambda-Runtime-Client-Context", ev->client_context);
    tr_buf_reset(&req->out);
    tr_buf_append(&req->out, ev->payload, ev->payload_len);
    net_req_resume(req);
}

/* Serve one request.  fixed_token: the instance of a per-instance listener, or NULL (shared
 * listener: the token is the path's first segment). */
static int rt_serve(api_ctx_t *ctx, const char *fixed_token, net_req_t *req) {
    if (!ctx->fn) return rt_error(req, 500, "ServiceException", "functions engine not running");
    if (req->reject == NET_REJECT_OVERLOAD)
        return rt_error(req, 429, "TooManyRequestsException", "server over its in-flight budget");
    /* optional first segment: the instance token */
    char token[FN_TOKEN_LEN + 1] = "";
    const char *p = req->path;
    if (strncmp(p, "/2018-06-01/", 12)) {
        const char *e = strchr(p + 1, '/');
        size_t n = e ? (size_t)(e - p - 1) : 0;
        if (!e || n != FN_TOKEN_LEN)
            return rt_error(req, 404, "InvalidRequest", "unknown Runtime API path");
        memcpy(token, p + 1, n);
        token[n] = 0;
        p = e;
    }
    if (fixed_token) {
        if (token[0] && strcmp(token, fixed_token))
            return rt_error(req, 403, "Forbidden", "this endpoint serves another instance");
        snprintf(token, sizeof token, "%s", fixed_token);
    }
    if (strncmp(p, RT_PREFIX, strlen(RT_PREFIX)))
        return rt_error(req, 404, "InvalidRequest", "unknown Runtime API path");
    p += strlen(RT_PREFIX);
    tr_err err;
    tr_err_clear(&err);
    int rc;
    if (!strcmp(p, "invocation/next")) {
        if (strcmp(req->method, "GET"))
            return rt_error(req, 405, "InvalidRequest", "use GET for invocation/next");
        rc = fn_rt_next(ctx->fn, token[0] ? token : NULL, next_done, req, &err);
        if (rc) return rt_engine_error(req, rc, &err);
        return NET_DEFER;
    }
    if (!strcmp(p, "init/error")) {
        if (strcmp(req->method, "POST"))
            return rt_error(req, 405, "InvalidRequest", "use POST for init/error");
        rc = fn_rt_init_error(ctx->fn, token[0] ? token : NULL,
                              net_req_header(req, "Lambda-Runtime-Function-Error-Type"), req->body,
                              req->body_len, &err);
        return rc ? rt_engine_error(req, rc, &err) : rt_accepted(req);
    }
    if (!strncmp(p, "invocation/", 11)) {
        const char *id = p + 11;
        const char *slash = strchr(id, '/');
        char rid[FN_REQUEST_ID_LEN + 8];
        if (!slash || (size_t)(slash - id) >= sizeof rid)
            return rt_error(req, 404, "InvalidRequest", "unknown Runtime API path");
        memcpy(rid, id, (size_t)(slash - id));
        rid[slash - id] = 0;
        if (strcmp(req->method, "POST"))
            return rt_error(req, 405, "InvalidRequest", "use POST for response and error");
        if (!strcmp(slash, "/response"))
            /* a body past the listener's limit was not kept: report its size only */
            rc = fn_rt_response(ctx->fn, token[0] ? token : NULL, rid,
                                req->reject ? NULL : req->body,
                                req->reject ? (size_t)FN_MAX_SYNC_PAYLOAD + 1 : req->body_len,
                                &err);
        else if (!strcmp(slash, "/error"))
            rc = fn_rt_error(ctx->fn, token[0] ? token : NULL, rid,
                             net_req_header(req, "Lambda-Runtime-Function-Error-Type"), req->body,
                             req->body_len, &err);
        else return rt_error(req, 404, "InvalidRequest", "unknown Runtime API path");
        return rc ? rt_engine_error(req, rc, &err) : rt_accepted(req);
    }
    return rt_error(req, 404, "InvalidRequest", "unknown Runtime API path");
}

int api_runtime_handle(void *arg, net_req_t *req) { return rt_serve(arg, NULL, req); }

/* ---- per-instance listeners ---------------------------------------------------------------- */

typedef struct rt_listener {
    api_ctx_t *ctx;
    char token[FN_TOKEN_LEN + 1];
    net_server_t *srv;
} rt_listener_t;

static int rt_instance_handle(void *arg, net_req_t *req) {
    rt_listener_t *l = arg;
    return rt_serve(l->ctx, l->token, req);
}

int api_runtime_listener_open(void *arg, const char *token, int *port, void **handle, tr_err *err) {
    rt_listener_t *l = calloc(1, sizeof *l);
    if (!l) return tr_err_set(err, TR_ENOMEM, "out of memory");
    l->ctx = arg;
    snprintf(l->token, sizeof l->token, "%s", token);
    /* one network thread: an instance makes one request at a time */
    net_opts_t o = {.bind = "127.0.0.1",
                    .port = 0,
                    .threads = 1,
                    .max_connections = 64,
                    .max_body = 16u << 20,
                    .handler = rt_instance_handle,
                    .handler_arg = l};
    int rc = net_server_start(&o, &l->srv, err);
    if (rc) {
        free(l);
        return rc;
    }
    *port = net_server_port(l->srv);
    *handle = l;
    return 0;
}

void api_runtime_listener_close(void *arg, void *handle) {
    (void)arg;
    rt_listener_t *l = handle;
    if (!l) return;
    net_server_stop(l->srv);
    free(l);
}
