/*
 * lambda_esm.c -- the Lambda API's event-source-mapping operations (REST JSON), over the esm
 * engine (fn/esm.h):
 *
 *     POST   /2015-03-31/event-source-mappings/          CreateEventSourceMapping   202
 *     GET    /2015-03-31/event-source-mappings/          ListEventSourceMappings    200
 *     GET    /2015-03-31/event-source-mappings/{UUID}    GetEventSourceMapping      200
 *     PUT    /2015-03-31/event-source-mappings/{UUID}    UpdateEventSourceMapping   202
 *     DELETE /2015-03-31/event-source-mappings/{UUID}    DeleteEventSourceMapping   202
 *
 * Routed from api.c by the path prefix "/2015-03-31/event-source-mappings" (ahead of the
 * general Lambda adapter).  This file translates: JSON members to esm_config_t / esm_update_t
 * and back (AWS's EventSourceMappingConfiguration shape), and engine codes to AWS errors in one
 * table (esm_error).  The engine decides everything else.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/tlog.h"
#include "fn/esm.h"
#include "fn/trf_int.h"

#define ESM_PREFIX "/2015-03-31/event-source-mappings"

/* ---- responses ------------------------------------------------------------------------------- */

static int esm_fail(net_req_t *req, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int esm_fail(net_req_t *req, int status, const char *type, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    req->status = status;
    req->content_type = "application/json";
    net_req_add_header(req, "x-amzn-ErrorType", type);
    int cap = !strcmp(type, "ResourceNotFoundException") || !strcmp(type, "ServiceException") ||
              !strcmp(type, "ResourceInUseException");
    tr_buf_reset(&req->out);
    tr_buf_printf(&req->out, "{\"Type\":\"%s\",\"%s\":", status >= 500 ? "Service" : "User",
                  cap ? "Message" : "message");
    tr_buf_json_str(&req->out, msg, strlen(msg));
    tr_buf_puts(&req->out, "}");
    tr_debug("lambda", "%s %s -> %d %s: %s", req->method, req->path, status, type, msg);
    return NET_DONE;
}

/* A FunctionName of another region or account: answered as the Lambda adapter does (404
 * "not reachable in this region" / 403 AccessDeniedException); returns 1 then, else 0. */
static int esm_fn_foreign(api_ctx_t *ctx, net_req_t *req, const char *given, const char *action) {
    char region[64], account[32];
    switch (api_fn_name_owner(ctx, given)) {
    case API_ARN_OTHER_REGION:
        api_arn_fields(given, region, account);
        esm_fail(req, 404, "ResourceNotFoundException",
                 "Functions from '%s' are not reachable in this region ('%s')",
                 region[0] ? region : "another partition", ctx->region);
        return 1;
    case API_ARN_OTHER_ACCOUNT:
        esm_fail(req, 403, "AccessDeniedException",
                 "User: arn:aws:iam::%s:root is not authorized to perform: lambda:%s on resource: "
                 "%s because no resource-based policy allows the lambda:%s action (this server's "
                 "functions are in account %s)", API_ACCOUNT_ID, action, given, action,
                 API_ACCOUNT_ID);
        return 1;
    default: return 0;
    }
}

/* The one place engine codes become AWS error types for these operations. */
static int esm_error(net_req_t *req, int code, const tr_err *err) {
    static const struct {
        int code, status;
        const char *type;
    } map[] = {
        {TR_EINVAL, 400, "InvalidParameterValueException"},
        {TR_EVALIDATION, 400, "InvalidParameterValueException"},
        {TR_ENOTFOUND, 404, "ResourceNotFoundException"},
        {TR_EEXISTS, 409, "ResourceConflictException"},
        {TR_EINUSE, 400, "ResourceInUseException"},
        {TR_ESERIALIZATION, 400, "InvalidRequestContentException"},
        {TR_ETHROTTLED, 429, "TooManyRequestsException"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].code == code)
            return esm_fail(req, map[i].status, map[i].type, "%s",
                            err && err->msg[0] ? err->msg : tr_strerror(code));
    return esm_fail(req, 500, "ServiceException", "%s",
                    err && err->msg[0] ? err->msg : tr_strerror(code));
}

static const char *pos_name(int p) {
    return p == ESM_LATEST ? "LATEST" : p == ESM_AT_TIMESTAMP ? "AT_TIMESTAMP" : "TRIM_HORIZON";
}

static json_t *config_json(const api_ctx_t *ctx, const esm_config_t *c) {
    char arn[400];
    snprintf(arn, sizeof arn, "arn:aws:lambda:%s:%s:event-source-mapping:%s", ctx->region,
             API_ACCOUNT_ID, c->uuid);
    json_t *o = json_object();
    json_object_set_new(o, "UUID", json_string(c->uuid));
    json_object_set_new(o, "StartingPosition", json_string(pos_name(c->starting_position)));
    if (c->starting_position == ESM_AT_TIMESTAMP)
        json_object_set_new(o, "StartingPositionTimestamp", json_real((double)c->starting_ts_ms / 1000.0));
    json_object_set_new(o, "BatchSize", json_integer(c->batch_size));
    json_object_set_new(o, "MaximumBatchingWindowInSeconds", json_integer(c->max_batching_window_s));
    json_object_set_new(o, "ParallelizationFactor", json_integer(c->parallelization));
    json_object_set_new(o, "EventSourceArn", json_string(c->source_arn));
    if (c->filter_criteria) {
        json_t *f = json_loads(c->filter_criteria, 0, NULL);
        if (f) json_object_set_new(o, "FilterCriteria", f);
    }
    json_object_set_new(o, "FunctionArn", json_string(c->function_arn));
    json_object_set_new(o, "LastModified", json_real((double)c->last_modified_ms / 1000.0));
    json_object_set_new(o, "LastProcessingResult", json_string(c->last_result));
    json_object_set_new(o, "State", json_string(c->state));
    json_object_set_new(o, "StateTransitionReason", json_string(c->state_reason));
    json_t *dest = json_object();
    json_t *onf = json_object();
    if (c->on_failure[0]) json_object_set_new(onf, "Destination", json_string(c->on_failure));
    json_object_set_new(dest, "OnFailure", onf);
    json_object_set_new(o, "DestinationConfig", dest);
    json_object_set_new(o, "MaximumRecordAgeInSeconds", json_integer(c->max_record_age_s));
    json_object_set_new(o, "BisectBatchOnFunctionError", json_boolean(c->bisect));
    json_object_set_new(o, "MaximumRetryAttempts", json_integer(c->max_retry));
    json_object_set_new(o, "TumblingWindowInSeconds", json_integer(c->tumbling_window_s));
    json_t *frt = json_array();
    if (c->report_item_failures) json_array_append_new(frt, json_string("ReportBatchItemFailures"));
    json_object_set_new(o, "FunctionResponseTypes", frt);
    json_object_set_new(o, "EventSourceMappingArn", json_string(arn));
    return o;
}

static int reply(net_req_t *req, int status, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    req->status = status;
    req->content_type = "application/json";
    tr_buf_reset(&req->out);
    if (s) tr_buf_puts(&req->out, s);
    free(s);
    return NET_DONE;
}

/* ---- requests -------------------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Query parameter key, percent-decoded, into out; 0 absent, 1 present. */
static int query(const net_req_t *req, const char *key, char *out, size_t cap) {
    const char *q = req->query;
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nl = eq ? (size_t)(eq - q) : len;
        if (nl == kl && !strncmp(q, key, kl)) {
            size_t k = 0;
            for (size_t i = eq ? nl + 1 : len; i < len && k + 1 < cap; i++) {
                char ch = q[i];
                if (ch == '%' && i + 2 < len && hexval(q[i + 1]) >= 0 && hexval(q[i + 2]) >= 0) {
                    ch = (char)(hexval(q[i + 1]) * 16 + hexval(q[i + 2]));
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                out[k++] = ch;
            }
            out[k] = 0;
            return 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

typedef struct in {
    json_t *o;
    net_req_t *req;
    int failed;                          /* an error response is filled */
} in_t;

/* Integer member into *out: 0 absent, 1 present; a wrong type answers the request. */
static int get_int(in_t *in, const char *k, long long lo, long long hi, long long *out) {
    json_t *v = json_object_get(in->o, k);
    if (!v || json_is_null(v) || in->failed) return 0;
    if (!json_is_integer(v)) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException", "%s must be an integer", k);
        return 0;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException",
                 "%s %lld is out of range [%lld, %lld]", k, x, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int get_bool(in_t *in, const char *k, int *out) {
    json_t *v = json_object_get(in->o, k);
    if (!v || json_is_null(v) || in->failed) return 0;
    if (!json_is_boolean(v)) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException", "%s must be true or false", k);
        return 0;
    }
    *out = json_is_true(v);
    return 1;
}

static const char *get_str(in_t *in, const char *k) {
    json_t *v = json_object_get(in->o, k);
    if (!v || json_is_null(v) || in->failed) return NULL;
    if (!json_is_string(v)) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException", "%s must be a string", k);
        return NULL;
    }
    return json_string_value(v);
}

/* FunctionResponseTypes: 0 absent, 1 present (*report set). */
static int get_response_types(in_t *in, int *report) {
    json_t *v = json_object_get(in->o, "FunctionResponseTypes");
    if (!v || json_is_null(v) || in->failed) return 0;
    if (!json_is_array(v)) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException", "FunctionResponseTypes must be a list");
        return 0;
    }
    *report = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        const char *s = json_string_value(x);
        if (!s || strcmp(s, "ReportBatchItemFailures")) {
            in->failed = 1;
            esm_fail(in->req, 400, "InvalidParameterValueException",
                     "FunctionResponseTypes: \"%s\" is not a valid response type "
                     "(ReportBatchItemFailures)", s ? s : "(not a string)");
            return 0;
        }
        *report = 1;
    }
    return 1;
}

/* DestinationConfig: 0 absent, 1 present (*dest "" when it clears). */
static int get_destination(in_t *in, const char **dest) {
    json_t *v = json_object_get(in->o, "DestinationConfig");
    if (!v || json_is_null(v) || in->failed) return 0;
    json_t *onf = json_object_get(v, "OnFailure");
    json_t *d = onf ? json_object_get(onf, "Destination") : NULL;
    if (!json_is_object(v) || (onf && !json_is_object(onf)) || (d && !json_is_null(d) && !json_is_string(d))) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException",
                 "DestinationConfig must be {\"OnFailure\": {\"Destination\": \"<stream ARN>\"}}");
        return 0;
    }
    if (json_object_get(v, "OnSuccess")) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException",
                 "DestinationConfig.OnSuccess is not supported for Kinesis event sources");
        return 0;
    }
    *dest = json_is_string(d) ? json_string_value(d) : "";
    return 1;
}

/* FilterCriteria as JSON text (malloc'd): 0 absent, 1 present (*out NULL when it clears). */
static int get_filters(in_t *in, char **out) {
    json_t *v = json_object_get(in->o, "FilterCriteria");
    *out = NULL;
    if (!v || json_is_null(v) || in->failed) return 0;
    if (!json_is_object(v)) {
        in->failed = 1;
        esm_fail(in->req, 400, "InvalidParameterValueException", "FilterCriteria must be an object");
        return 0;
    }
    if (json_array_size(json_object_get(v, "Filters"))) *out = json_dumps(v, JSON_COMPACT);
    return 1;
}

static int parse_body(net_req_t *req, in_t *in) {
    in->req = req;
    in->failed = 0;
    json_error_t je;
    in->o = req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &je) : json_object();
    if (!in->o || !json_is_object(in->o)) {
        json_decref(in->o);
        in->o = NULL;
        esm_fail(req, 400, "InvalidRequestContentException",
                 "Could not parse request body into json: %s", req->body_len ? je.text : "empty");
        return -1;
    }
    return 0;
}

/* ---- operations ------------------------------------------------------------------------------ */

static int op_create(api_ctx_t *ctx, net_req_t *req) {
    in_t in;
    if (parse_body(req, &in)) return NET_DONE;
    esm_config_t c;
    esm_config_defaults(&c);
    long long v;
    const char *s;
    if ((s = get_str(&in, "FunctionName"))) snprintf(c.function_name, sizeof c.function_name, "%s", s);
    if (s && !in.failed && esm_fn_foreign(ctx, req, s, "CreateEventSourceMapping")) in.failed = 1;
    if ((s = get_str(&in, "EventSourceArn"))) snprintf(c.source_arn, sizeof c.source_arn, "%s", s);
    if (get_int(&in, "BatchSize", 1, 10000, &v)) c.batch_size = (uint32_t)v;
    if (get_int(&in, "MaximumBatchingWindowInSeconds", 0, 300, &v)) c.max_batching_window_s = (uint32_t)v;
    if (get_int(&in, "ParallelizationFactor", 1, 10, &v)) c.parallelization = (uint32_t)v;
    if (get_int(&in, "MaximumRetryAttempts", -1, 10000, &v)) c.max_retry = (int32_t)v;
    if (get_int(&in, "MaximumRecordAgeInSeconds", -1, 604800, &v)) c.max_record_age_s = (int32_t)v;
    if (get_int(&in, "TumblingWindowInSeconds", 0, 900, &v)) c.tumbling_window_s = (uint32_t)v;
    get_bool(&in, "Enabled", &c.enabled);
    get_bool(&in, "BisectBatchOnFunctionError", &c.bisect);
    get_response_types(&in, &c.report_item_failures);
    const char *dest = NULL;
    if (get_destination(&in, &dest)) snprintf(c.on_failure, sizeof c.on_failure, "%s", dest);
    get_filters(&in, &c.filter_criteria);
    if ((s = get_str(&in, "StartingPosition"))) {
        c.starting_position = !strcmp(s, "TRIM_HORIZON") ? ESM_TRIM_HORIZON
                              : !strcmp(s, "LATEST")     ? ESM_LATEST
                              : !strcmp(s, "AT_TIMESTAMP") ? ESM_AT_TIMESTAMP
                                                           : -2;
        if (c.starting_position == -2 && !in.failed) {
            in.failed = 1;
            esm_fail(req, 400, "InvalidParameterValueException", "StartingPosition \"%s\" is not one "
                     "of TRIM_HORIZON, LATEST, AT_TIMESTAMP", s);
        }
    }
    json_t *ts = json_object_get(in.o, "StartingPositionTimestamp");
    if (ts && !in.failed) {
        if (json_is_number(ts)) {
            c.starting_ts_ms = (int64_t)llround(json_number_value(ts) * 1000.0);
        } else if (json_is_string(ts)) {
            int64_t ms;
            const char *t = json_string_value(ts);
            if (trf__iso_parse(t, strlen(t), &ms) == 0) c.starting_ts_ms = ms;
            else c.starting_ts_ms = (int64_t)llround(atof(t) * 1000.0);
        }
    }
    static const char *const unsupported[] = {"Queues", "Topics", "SourceAccessConfigurations",
                                              "SelfManagedEventSource", "DocumentDBEventSourceConfig",
                                              "ScalingConfig", NULL};
    for (int i = 0; unsupported[i] && !in.failed; i++)
        if (json_object_get(in.o, unsupported[i])) {
            in.failed = 1;
            esm_fail(req, 400, "InvalidParameterValueException", "%s does not apply to a Kinesis "
                     "event source", unsupported[i]);
        }
    json_decref(in.o);
    if (in.failed) {
        esm_config_free(&c);
        return NET_DONE;
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_create(ctx->esm, &c, &out, &err);
    esm_config_free(&c);
    if (rc) return esm_error(req, rc, &err);
    json_t *o = config_json(ctx, &out);
    esm_config_free(&out);
    return reply(req, 202, o);
}

static int op_get(api_ctx_t *ctx, net_req_t *req, const char *uuid) {
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_get(ctx->esm, uuid, &out, &err);
    if (rc) return esm_error(req, rc, &err);
    json_t *o = config_json(ctx, &out);
    esm_config_free(&out);
    return reply(req, 200, o);
}

static int op_list(api_ctx_t *ctx, net_req_t *req) {
    char fname[512] = "", arn[ESM_MAX_ARN] = "", marker[64] = "", maxs[32] = "";
    query(req, "FunctionName", fname, sizeof fname);
    query(req, "EventSourceArn", arn, sizeof arn);
    query(req, "Marker", marker, sizeof marker);
    if (fname[0] && esm_fn_foreign(ctx, req, fname, "ListEventSourceMappings")) return NET_DONE;
    long max = 100;
    if (query(req, "MaxItems", maxs, sizeof maxs)) {
        char *end;
        max = strtol(maxs, &end, 10);
        if (*end || max < 1 || max > 10000)
            return esm_fail(req, 400, "InvalidParameterValueException",
                            "MaxItems %s is out of range [1, 10000]", maxs);
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t *list;
    size_t n;
    char *next;
    int rc = esm_list(ctx->esm, fname, arn, marker, (size_t)max, &list, &n, &next, &err);
    if (rc) return esm_error(req, rc, &err);
    json_t *o = json_object(), *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, config_json(ctx, &list[i]));
        esm_config_free(&list[i]);
    }
    free(list);
    json_object_set_new(o, "EventSourceMappings", arr);
    if (next) json_object_set_new(o, "NextMarker", json_string(next));
    free(next);
    return reply(req, 200, o);
}

static int op_update(api_ctx_t *ctx, net_req_t *req, const char *uuid) {
    in_t in;
    if (parse_body(req, &in)) return NET_DONE;
    esm_update_t u;
    memset(&u, 0, sizeof u);
    long long v;
    if ((u.function_name = get_str(&in, "FunctionName"))) u.has_function = 1;
    if (u.has_function && !in.failed &&
        esm_fn_foreign(ctx, req, u.function_name, "UpdateEventSourceMapping"))
        in.failed = 1;
    if (get_int(&in, "BatchSize", 1, 10000, &v)) u.has_batch_size = 1, u.batch_size = (uint32_t)v;
    if (get_int(&in, "MaximumBatchingWindowInSeconds", 0, 300, &v))
        u.has_window = 1, u.max_batching_window_s = (uint32_t)v;
    if (get_int(&in, "ParallelizationFactor", 1, 10, &v))
        u.has_parallelization = 1, u.parallelization = (uint32_t)v;
    if (get_int(&in, "MaximumRetryAttempts", -1, 10000, &v)) u.has_retry = 1, u.max_retry = (int32_t)v;
    if (get_int(&in, "MaximumRecordAgeInSeconds", -1, 604800, &v))
        u.has_age = 1, u.max_record_age_s = (int32_t)v;
    if (get_int(&in, "TumblingWindowInSeconds", 0, 900, &v))
        u.has_tumbling = 1, u.tumbling_window_s = (uint32_t)v;
    u.has_enabled = get_bool(&in, "Enabled", &u.enabled);
    u.has_bisect = get_bool(&in, "BisectBatchOnFunctionError", &u.bisect);
    u.has_response_types = get_response_types(&in, &u.report_item_failures);
    u.has_destination = get_destination(&in, &u.on_failure);
    char *filters = NULL;
    u.has_filters = get_filters(&in, &filters);
    u.filter_criteria = filters;
    if (!in.failed && json_object_get(in.o, "StartingPosition"))
        in.failed = 1, esm_fail(req, 400, "InvalidParameterValueException",
                                "StartingPosition cannot be updated; delete and re-create the mapping");
    if (in.failed) {
        json_decref(in.o);
        free(filters);
        return NET_DONE;
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_update(ctx->esm, uuid, &u, &out, &err);
    json_decref(in.o);   /* u's strings point into it */
    free(filters);
    if (rc) return esm_error(req, rc, &err);
    json_t *o = config_json(ctx, &out);
    esm_config_free(&out);
    return reply(req, 202, o);
}

static int op_delete(api_ctx_t *ctx, net_req_t *req, const char *uuid) {
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_delete(ctx->esm, uuid, &out, &err);
    if (rc) return esm_error(req, rc, &err);
    json_t *o = config_json(ctx, &out);
    esm_config_free(&out);
    return reply(req, 202, o);
}

int api_lambda_esm_handle(api_ctx_t *ctx, net_req_t *req) {
    const char *rest = req->path + strlen(ESM_PREFIX);
    if (*rest && *rest != '/')
        return esm_fail(req, 404, "UnknownOperationException", "%s %s is not a Lambda operation",
                        req->method, req->path);
    if (!ctx->esm)
        return esm_fail(req, 503, "ServiceException", "Event source mappings are not running");
    if (*rest == '/') rest++;
    char uuid[64];
    size_t n = strcspn(rest, "/");
    if (n >= sizeof uuid || (rest[n] == '/' && rest[n + 1]))
        return esm_fail(req, 404, "UnknownOperationException", "%s %s is not a Lambda operation",
                        req->method, req->path);
    memcpy(uuid, rest, n);
    uuid[n] = 0;
    const char *m = req->method;
    if (!uuid[0]) {
        if (!strcmp(m, "POST")) return op_create(ctx, req);
        if (!strcmp(m, "GET")) return op_list(ctx, req);
    } else {
        if (!strcmp(m, "GET")) return op_get(ctx, req, uuid);
        if (!strcmp(m, "PUT")) return op_update(ctx, req, uuid);
        if (!strcmp(m, "DELETE")) return op_delete(ctx, req, uuid);
    }
    return esm_fail(req, 405, "UnknownOperationException", "%s %s is not a Lambda operation",
                    req->method, req->path);
}
