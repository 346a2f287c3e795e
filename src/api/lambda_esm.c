/* SPDX-License-Identifier: Apache-2.0
 *
 * lambda_esm.c -- the Lambda API's event-source-mapping operations (REST JSON), over the esm
 * engine (fn/esm.h):
 *
 *     POST   /2015-03-31/event-source-mappings/          CreateEventSourceMapping   202
 *     GET    /2015-03-31/event-source-mappings/          ListEventSourceMappings    200
 *     GET    /2015-03-31/event-source-mappings/{UUID}    GetEventSourceMapping      200
 *     PUT    /2015-03-31/event-source-mappings/{UUID}    UpdateEventSourceMapping   202
 *     DELETE /2015-03-31/event-source-mappings/{UUID}    DeleteEventSourceMapping   202
 *
 * A kit service of its own (kit.h: api_lambda_esm_service, routed by the path prefix
 * "/2015-03-31/event-source-mappings", longer than the general Lambda adapter's), with Lambda's
 * error map and error shape (lambda_int.h).  This file translates: JSON members to
 * esm_config_t / esm_update_t and back (AWS's EventSourceMappingConfiguration shape).  The
 * engine decides everything else.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/lambda_int.h"
#include "core/tlog.h"
#include "fn/esm.h"

#define ESM_PREFIX "/2015-03-31/event-source-mappings"

/* ---- responses ------------------------------------------------------------------------------- */

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
        json_object_set_new(o, "StartingPositionTimestamp",
                            json_real((double)c->starting_ts_ms / 1000.0));
    json_object_set_new(o, "BatchSize", json_integer(c->batch_size));
    json_object_set_new(o, "MaximumBatchingWindowInSeconds",
                        json_integer(c->max_batching_window_s));
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

/* The answer to an engine call on one mapping: *out as EventSourceMappingConfiguration with
 * status (out is freed), or rc's error. */
static int answer(api_call_t *c, int rc, const tr_err *err, esm_config_t *out, int status) {
    if (rc) return api_error(c, rc, err);
    json_t *o = config_json(c->ctx, out);
    esm_config_free(out);
    return api_reply_json(c, status, o, 17);
}

/* ---- requests -------------------------------------------------------------------------------- */

/* Query parameter key into out (api_query): 0 absent, 1 present, API_FAIL (answered) when it is
 * not valid percent-encoding or longer than cap. */
static int query(api_call_t *c, const char *key, char *out, size_t cap) {
    int rc = api_query(c->req, key, out, cap);
    if (rc >= 0) return rc;
    return api_fail(c, 400, "InvalidParameterValueException",
                    "Query parameter %s is not valid percent-encoding or is longer than %zu bytes",
                    key, cap - 1);
}

typedef struct in {
    json_t *o;
    api_call_t *c;
    int failed; /* an error response is filled */
} in_t;

/* Integer member into *out: 0 absent, 1 present; a wrong type answers the request. */
static int get_int(in_t *in, const char *k, long long lo, long long hi, long long *out) {
    json_t *v = json_object_get(in->o, k);
    if (!v || json_is_null(v) || in->failed) return 0;
    if (!json_is_integer(v)) {
        in->failed = 1;
        api_fail(in->c, 400, "InvalidParameterValueException", "%s must be an integer", k);
        return 0;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        in->failed = 1;
        api_fail(in->c, 400, "InvalidParameterValueException",
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
        api_fail(in->c, 400, "InvalidParameterValueException", "%s must be true or false", k);
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
        api_fail(in->c, 400, "InvalidParameterValueException", "%s must be a string", k);
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
        api_fail(in->c, 400, "InvalidParameterValueException",
                 "FunctionResponseTypes must be a list");
        return 0;
    }
    *report = 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        const char *s = json_string_value(x);
        if (!s || strcmp(s, "ReportBatchItemFailures")) {
            in->failed = 1;
            api_fail(in->c, 400, "InvalidParameterValueException",
                     "FunctionResponseTypes: \"%s\" is not a valid response type "
                     "(ReportBatchItemFailures)",
                     s ? s : "(not a string)");
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
    if (!json_is_object(v) || (onf && !json_is_object(onf)) ||
        (d && !json_is_null(d) && !json_is_string(d))) {
        in->failed = 1;
        api_fail(in->c, 400, "InvalidParameterValueException",
                 "DestinationConfig must be {\"OnFailure\": {\"Destination\": \"<stream ARN>\"}}");
        return 0;
    }
    if (json_object_get(v, "OnSuccess")) {
        in->failed = 1;
        api_fail(in->c, 400, "InvalidParameterValueException",
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
        api_fail(in->c, 400, "InvalidParameterValueException", "FilterCriteria must be an object");
        return 0;
    }
    if (json_array_size(json_object_get(v, "Filters"))) *out = json_dumps(v, JSON_COMPACT);
    return 1;
}

/* The members CreateEventSourceMapping and UpdateEventSourceMapping both take (all but
 * FunctionName, EventSourceArn and the starting position) into u, stopping at the first error
 * (in->failed); *filters gets FilterCriteria's text (malloc'd, the caller's; u points to it). */
static void get_common(in_t *in, esm_update_t *u, char **filters) {
    long long v;
    if (get_int(in, "BatchSize", 1, 10000, &v)) u->has_batch_size = 1, u->batch_size = (uint32_t)v;
    if (get_int(in, "MaximumBatchingWindowInSeconds", 0, 300, &v))
        u->has_window = 1, u->max_batching_window_s = (uint32_t)v;
    if (get_int(in, "ParallelizationFactor", 1, 10, &v))
        u->has_parallelization = 1, u->parallelization = (uint32_t)v;
    if (get_int(in, "MaximumRetryAttempts", -1, 10000, &v))
        u->has_retry = 1, u->max_retry = (int32_t)v;
    if (get_int(in, "MaximumRecordAgeInSeconds", -1, 604800, &v))
        u->has_age = 1, u->max_record_age_s = (int32_t)v;
    if (get_int(in, "TumblingWindowInSeconds", 0, 900, &v))
        u->has_tumbling = 1, u->tumbling_window_s = (uint32_t)v;
    u->has_enabled = get_bool(in, "Enabled", &u->enabled);
    u->has_bisect = get_bool(in, "BisectBatchOnFunctionError", &u->bisect);
    u->has_response_types = get_response_types(in, &u->report_item_failures);
    u->has_destination = get_destination(in, &u->on_failure);
    u->has_filters = get_filters(in, filters);
    u->filter_criteria = *filters;
}

static int parse_body(api_call_t *c, in_t *in) {
    net_req_t *req = c->req;
    in->c = c;
    in->failed = 0;
    json_error_t je;
    in->o = req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &je)
                          : json_object();
    if (!in->o || !json_is_object(in->o)) {
        json_decref(in->o);
        in->o = NULL;
        return api_fail(c, 400, "InvalidRequestContentException",
                        "Could not parse request body into json: %s",
                        req->body_len ? je.text : "empty");
    }
    return 0;
}

/* ---- operations ------------------------------------------------------------------------------ */

static int op_create(api_call_t *cl) {
    api_ctx_t *ctx = cl->ctx;
    in_t in;
    if (parse_body(cl, &in)) return API_FAIL;
    esm_config_t c;
    esm_config_defaults(&c);
    const char *s;
    if ((s = get_str(&in, "FunctionName")))
        snprintf(c.function_name, sizeof c.function_name, "%s", s);
    if (s && !in.failed && api__lambda_fn_owned(cl, s, "CreateEventSourceMapping")) in.failed = 1;
    if ((s = get_str(&in, "EventSourceArn"))) snprintf(c.source_arn, sizeof c.source_arn, "%s", s);
    esm_update_t u;
    memset(&u, 0, sizeof u);
    get_common(&in, &u, &c.filter_criteria);
    if (u.has_batch_size) c.batch_size = u.batch_size;
    if (u.has_window) c.max_batching_window_s = u.max_batching_window_s;
    if (u.has_parallelization) c.parallelization = u.parallelization;
    if (u.has_retry) c.max_retry = u.max_retry;
    if (u.has_age) c.max_record_age_s = u.max_record_age_s;
    if (u.has_tumbling) c.tumbling_window_s = u.tumbling_window_s;
    if (u.has_enabled) c.enabled = u.enabled;
    if (u.has_bisect) c.bisect = u.bisect;
    if (u.has_response_types) c.report_item_failures = u.report_item_failures;
    if (u.has_destination) snprintf(c.on_failure, sizeof c.on_failure, "%s", u.on_failure);
    if ((s = get_str(&in, "StartingPosition"))) {
        c.starting_position = !strcmp(s, "TRIM_HORIZON")   ? ESM_TRIM_HORIZON
                              : !strcmp(s, "LATEST")       ? ESM_LATEST
                              : !strcmp(s, "AT_TIMESTAMP") ? ESM_AT_TIMESTAMP
                                                           : -2;
        if (c.starting_position == -2 && !in.failed) {
            in.failed = 1;
            api_fail(cl, 400, "InvalidParameterValueException",
                     "StartingPosition \"%s\" is not one "
                     "of TRIM_HORIZON, LATEST, AT_TIMESTAMP",
                     s);
        }
    }
    json_t *ts = json_object_get(in.o, "StartingPositionTimestamp");
    if (ts && !in.failed) {
        if (json_is_number(ts)) {
            c.starting_ts_ms = (int64_t)llround(json_number_value(ts) * 1000.0);
        } else if (json_is_string(ts)) {
            int64_t ms;
            const char *t = json_string_value(ts);
            if (api_iso8601_parse(t, strlen(t), &ms) == 0) c.starting_ts_ms = ms;
            else c.starting_ts_ms = (int64_t)llround(atof(t) * 1000.0);
        }
    }
    static const char *const unsupported[] = {"Queues",
                                              "Topics",
                                              "SourceAccessConfigurations",
                                              "SelfManagedEventSource",
                                              "DocumentDBEventSourceConfig",
                                              "ScalingConfig",
                                              NULL};
    for (int i = 0; unsupported[i] && !in.failed; i++)
        if (json_object_get(in.o, unsupported[i])) {
            in.failed = 1;
            api_fail(cl, 400, "InvalidParameterValueException",
                     "%s does not apply to a Kinesis "
                     "event source",
                     unsupported[i]);
        }
    json_decref(in.o);
    if (in.failed) {
        esm_config_free(&c);
        return API_FAIL;
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_create(ctx->esm, &c, &out, &err);
    esm_config_free(&c);
    return answer(cl, rc, &err, &out, 202);
}

/* GetEventSourceMapping and DeleteEventSourceMapping: fn on the path's UUID. */
static int op_by_uuid(api_call_t *cl, int (*fn)(esm_t *, const char *, esm_config_t *, tr_err *),
                      int status) {
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = fn(cl->ctx->esm, cl->seg, &out, &err);
    return answer(cl, rc, &err, &out, status);
}

static int op_get(api_call_t *cl) { return op_by_uuid(cl, esm_get, 200); }

static int op_list(api_call_t *cl) {
    api_ctx_t *ctx = cl->ctx;
    char fname[512] = "", arn[ESM_MAX_ARN] = "", marker[64] = "", maxs[32] = "";
    if (query(cl, "FunctionName", fname, sizeof fname) < 0 ||
        query(cl, "EventSourceArn", arn, sizeof arn) < 0 ||
        query(cl, "Marker", marker, sizeof marker) < 0)
        return API_FAIL;
    if (fname[0] && api__lambda_fn_owned(cl, fname, "ListEventSourceMappings")) return API_FAIL;
    long max = 100;
    int has_max = query(cl, "MaxItems", maxs, sizeof maxs);
    if (has_max < 0) return API_FAIL;
    if (has_max) {
        char *end;
        max = strtol(maxs, &end, 10);
        if (*end || max < 1 || max > 10000)
            return api_fail(cl, 400, "InvalidParameterValueException",
                            "MaxItems %s is out of range [1, 10000]", maxs);
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t *list;
    size_t n;
    char *next;
    int rc = esm_list(ctx->esm, fname, arn, marker, (size_t)max, &list, &n, &next, &err);
    if (rc) return api_error(cl, rc, &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, config_json(ctx, &list[i]));
        esm_config_free(&list[i]);
    }
    free(list);
    return api__lambda_reply_list(cl, "EventSourceMappings", arr, next, 17);
}

static int op_update(api_call_t *cl) {
    api_ctx_t *ctx = cl->ctx;
    const char *uuid = cl->seg;
    in_t in;
    if (parse_body(cl, &in)) return API_FAIL;
    esm_update_t u;
    memset(&u, 0, sizeof u);
    if ((u.function_name = get_str(&in, "FunctionName"))) u.has_function = 1;
    if (u.has_function && !in.failed &&
        api__lambda_fn_owned(cl, u.function_name, "UpdateEventSourceMapping"))
        in.failed = 1;
    char *filters = NULL;
    get_common(&in, &u, &filters);
    if (!in.failed && json_object_get(in.o, "StartingPosition"))
        in.failed = 1,
        api_fail(cl, 400, "InvalidParameterValueException",
                 "StartingPosition cannot be updated; delete and re-create the mapping");
    if (in.failed) {
        json_decref(in.o);
        free(filters);
        return API_FAIL;
    }
    tr_err err;
    tr_err_clear(&err);
    esm_config_t out;
    memset(&out, 0, sizeof out);
    int rc = esm_update(ctx->esm, uuid, &u, &out, &err);
    json_decref(in.o); /* u's strings point into it */
    free(filters);
    return answer(cl, rc, &err, &out, 202);
}

static int op_delete(api_call_t *cl) { return op_by_uuid(cl, esm_delete, 202); }

/* ---- the service ------------------------------------------------------------------------------ */

/* Before the body: the engine is running, and a mapping's UUID (c->seg) is one that could be. */
static int esm_ready(api_call_t *c) {
    if (!c->ctx->esm)
        return api_fail(c, 503, "ServiceException", "Event source mappings are not running");
    if (strlen(c->seg) >= 64)
        return api_fail(c, 404, "UnknownOperationException", "%s %s is not a Lambda operation",
                        c->req->method, c->req->path);
    return 0;
}

/* Each row: the operation, method, path ("{}": the mapping's UUID), handler.  The handlers read
 * their bodies themselves (an empty body is {} here). */
static const api_op_t esm_ops[] = {
    {"CreateEventSourceMapping", "POST", ESM_PREFIX, op_create, 0, NULL},
    {"ListEventSourceMappings", "GET", ESM_PREFIX, op_list, 0, NULL},
    {"GetEventSourceMapping", "GET", ESM_PREFIX "/{}", op_get, 0, NULL},
    {"UpdateEventSourceMapping", "PUT", ESM_PREFIX "/{}", op_update, 0, NULL},
    {"DeleteEventSourceMapping", "DELETE", ESM_PREFIX "/{}", op_delete, 0, NULL},
};

static const char *const esm_prefixes[] = {ESM_PREFIX, NULL};

const api_service_t api_lambda_esm_service = {
    API_LAMBDA_SERVICE_COMMON,
    .path_prefixes = esm_prefixes,
    API_OPS(esm_ops),
    .ready = esm_ready,
};
