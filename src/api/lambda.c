/* SPDX-License-Identifier: Apache-2.0
 *
 * lambda.c -- the Lambda adapter: REST JSON (/2015-03-31/functions/...) in, fn engine calls,
 * JSON out.
 *
 * Every operation is one row of l_ops[] (name, method, path pattern, handler); a pattern's "{}"
 * is one URL-encoded path segment (the FunctionName: a name, partial ARN or ARN, decoded and
 * split by fn_name_parse).  The adapter declares itself to the kit (kit.h) as
 * api_lambda_service; engine codes become AWS error types through the Lambda map of
 * lambda_int.h (shared with lambda_esm.c), l_error adding the throttling details.
 *
 * Error responses are AWS's REST JSON shape: header x-amzn-ErrorType: <type> (botocore takes
 * the code from it) and body {"Type":"User"|"Service","message"|"Message":...} with the member
 * spelling of that exception's shape in the service model.
 *
 * Invoke is deferred: fn_invoke calls back (any thread, maybe before it returns) and the
 * callback fills the response and resumes the request.  Operations marked API_OP_WORKER in l_ops[]
 * (CreateFunction, UpdateFunctionCode: parsing a 16 MB body, decoding, unpacking and syncing a
 * package of tens of thousands of files take seconds) run whole -- body parse included -- on
 * the engine's code workers (fn_work_submit), never on a network thread; when their queue is
 * full the call answers 429 TooManyRequestsException (Reason CallerRateLimitExceeded,
 * Retry-After) at once.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api.h"
#include "api/lambda_int.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "fn/fn.h"

#define L_JSON "application/json"
#define L_MAX_LIST 50

/* Per-call state (api_call_t.priv): the FunctionName and qualifier of the path (l_ready). */
typedef struct l_state {
    char name[FN_MAX_NAME + 1];
    char qualifier[130];
} l_state_t;

static l_state_t *l_st(api_call_t *c) { return (l_state_t *)(void *)c->priv; }

/* ---- errors -------------------------------------------------------------------------------- */

const char *const api__lambda_message_caps[] = {"ResourceNotFoundException", "ServiceException",
                                                "ResourceInUseException", NULL};

const api_errmap_t api__lambda_errors[] = {
    {TR_ENOTFOUND, 404, "ResourceNotFoundException", NULL, NULL},
    {TR_EEXISTS, 409, "ResourceConflictException", NULL, NULL},
    {TR_EINVAL, 400, "InvalidParameterValueException", NULL, NULL},
    {TR_ELIMIT, 400, "InvalidParameterValueException", NULL, NULL},
    {TR_EVALIDATION, 400, "ValidationException", NULL, NULL},
    {TR_EINUSE, 400, "ResourceInUseException", NULL, NULL},
    {TR_ECONDITION, 412, "PreconditionFailedException", NULL, NULL},
    {TR_ETHROTTLED, 429, "TooManyRequestsException", NULL, NULL},
    {TR_ETOOBIG, 413, "RequestTooLargeException", NULL, NULL},
    {TR_ESERIALIZATION, 400, "InvalidRequestContentException", NULL, NULL},
    {TR_ECLOSED, 503, "ServiceException", NULL, NULL},
    {0, 500, "ServiceException", NULL, NULL},
};

/* api_error plus Lambda's details: a package upload too big is RequestEntityTooLargeException,
 * and throttling carries Reason (throttle_reason; NULL: the reserved-concurrency one) and
 * Retry-After.  Returns API_FAIL. */
static int l_error(api_call_t *c, int code, const tr_err *err, const char *throttle_reason) {
    if (code == TR_ETOOBIG && c->op &&
        (!strcmp(c->op->name, "CreateFunction") || !strcmp(c->op->name, "UpdateFunctionCode")))
        return api_fail(c, 413, "RequestEntityTooLargeException", "%s",
                        err && err->msg[0] ? err->msg : tr_strerror(code));
    api_error(c, code, err);
    if (code == TR_ETHROTTLED) {
        /* add Reason to the body: {"Type":..,"message":..,"Reason":..} */
        net_req_t *req = c->req;
        if (req->out.len && req->out.data[req->out.len - 1] == '}') {
            req->out.len--;
            tr_buf_printf(&req->out, ",\"Reason\":\"%s\"}",
                          throttle_reason ? throttle_reason
                                          : "ReservedFunctionConcurrentInvocationLimitExceeded");
        }
        net_req_add_header(req, "Retry-After", "1");
    }
    return API_FAIL;
}

/* One validation error, answered at once ("1 validation error detected: ..."). */
static int l_verr(api_call_t *c, const char *member, const char *value, const char *what) {
    api_verr(c, member, value, "%s", what);
    return api_verr_flush(c);
}

/* ---- input helpers ------------------------------------------------------------------------- */

static const char *jstr_or(json_t *o, const char *k, const char *dflt) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Integer member: -1 type error (answered), 0 absent, 1 present. */
static int jint(api_call_t *c, const char *k, long long *out) {
    json_t *v = json_object_get(c->in, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        api_fail(c, 400, "InvalidRequestContentException",
                 "Could not parse request body into json: %s must be an integer", k);
        return API_FAIL;
    }
    *out = json_integer_value(v);
    return 1;
}

/* Environment.Variables into a temporary array (pointers into c->in). */
static int env_from_json(api_call_t *c, json_t *env, fn_env_var_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    json_t *vars = json_object_get(env, "Variables");
    if (!vars || json_is_null(vars)) return 0;
    if (!json_is_object(vars))
        return api_fail(c, 400, "InvalidRequestContentException",
                        "Could not parse request body into json: Environment.Variables must be an "
                        "object of strings");
    size_t k = json_object_size(vars);
    fn_env_var_t *arr = tr_xcalloc(k ? k : 1, sizeof *arr);
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach(vars, key, val) {
        if (!json_is_string(val)) {
            free(arr);
            return api_fail(c, 400, "InvalidRequestContentException",
                            "Could not parse request body into json: Environment variable %.100s "
                            "must be a string",
                            key);
        }
        arr[i].key = (char *)key;
        arr[i].value = (char *)json_string_value(val);
        i++;
    }
    *out = arr;
    *n = i;
    return 0;
}

/* ---- output -------------------------------------------------------------------------------- */

static json_t *config_to_json(api_call_t *c, const fn_config_t *cfg) {
    char lm[64], base[32];
    time_t secs = (time_t)(cfg->last_modified_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(lm, sizeof lm, "%s.%03d+0000", base, (int)(cfg->last_modified_ms % 1000));
    json_t *o = json_object();
    json_object_set_new(o, "FunctionName", json_string(cfg->name));
    json_object_set_new(o, "FunctionArn", json_string(cfg->arn));
    json_object_set_new(o, "Runtime", json_string(cfg->runtime ? cfg->runtime : ""));
    json_object_set_new(o, "Role", json_string(cfg->role ? cfg->role : ""));
    json_object_set_new(o, "Handler", json_string(cfg->handler ? cfg->handler : ""));
    json_object_set_new(o, "CodeSize", json_integer((json_int_t)cfg->code_size));
    json_object_set_new(o, "Description", json_string(cfg->description ? cfg->description : ""));
    json_object_set_new(o, "Timeout", json_integer(cfg->timeout_s));
    json_object_set_new(o, "MemorySize", json_integer(cfg->memory_mb));
    json_object_set_new(o, "LastModified", json_string(lm));
    json_object_set_new(o, "CodeSha256", json_string(cfg->code_sha256));
    json_object_set_new(o, "Version", json_string("$LATEST"));
    if (cfg->n_env) {
        json_t *vars = json_object();
        for (size_t i = 0; i < cfg->n_env; i++)
            json_object_set_new(vars, cfg->env[i].key, json_string(cfg->env[i].value));
        json_object_set_new(o, "Environment", json_pack("{so}", "Variables", vars));
    }
    json_object_set_new(o, "TracingConfig", json_pack("{ss}", "Mode", "PassThrough"));
    json_object_set_new(o, "RevisionId", json_string(cfg->revision_id));
    json_object_set_new(o, "State", json_string("Active"));
    json_object_set_new(o, "LastUpdateStatus", json_string("Successful"));
    json_object_set_new(o, "PackageType", json_string("Zip"));
    json_t *arch = json_array();
    for (size_t i = 0; i < cfg->n_architectures; i++)
        json_array_append_new(arch, json_string(cfg->architectures[i]));
    json_object_set_new(o, "Architectures", arch);
    json_object_set_new(o, "EphemeralStorage", json_pack("{si}", "Size", (int)cfg->ephemeral_mb));
    json_object_set_new(o, "SnapStart",
                        json_pack("{ssss}", "ApplyOn", "None", "OptimizationStatus", "Off"));
    char group[128];
    snprintf(group, sizeof group, "/aws/lambda/%s", cfg->name);
    json_object_set_new(o, "LoggingConfig",
                        json_pack("{ssss}", "LogFormat", "Text", "LogGroup", group));
    (void)c;
    return o;
}

/* ---- operations ---------------------------------------------------------------------------- */

static int require_body(api_call_t *c) {
    if (!c->in)
        return api_fail(c, 400, "InvalidRequestContentException",
                        "Could not parse request body into json: the body must be a JSON object");
    return 0;
}

/* Decode Code.ZipFile / ZipFile; *zip malloc'd. */
static int zip_from(api_call_t *c, json_t *code, uint8_t **zip, size_t *n) {
    *zip = NULL;
    *n = 0;
    if (!json_is_object(code))
        return api_fail(c, 400, "InvalidParameterValueException",
                        "Code is required: pass Code.ZipFile, a base64 .zip holding an executable "
                        "bootstrap");
    json_t *zf = json_object_get(code, "ZipFile");
    if (!json_is_string(zf)) {
        if (json_object_get(code, "S3Bucket") || json_object_get(code, "ImageUri"))
            return api_fail(c, 400, "InvalidParameterValueException",
                            "Tributary takes the deployment package as ZipFile only (S3Bucket and "
                            "ImageUri are not supported); pass the zip bytes in ZipFile");
        return api_fail(c, 400, "InvalidParameterValueException",
                        "Please provide a source for function code.");
    }
    size_t len = json_string_length(zf);
    uint8_t *b = tr_xmalloc(tr_base64_decoded_max(len) + 1);
    long got = tr_base64_decode(json_string_value(zf), len, b);
    if (got <= 0) {
        free(b);
        return api_fail(c, 400, "InvalidParameterValueException",
                        "Could not unzip uploaded file. Please check your file, then try to upload "
                        "again. (ZipFile is not base64)");
    }
    *zip = b;
    *n = (size_t)got;
    return 0;
}

static int l_create(api_call_t *c) {
    if (require_body(c)) return API_FAIL;
    json_t *in = c->in;
    const char *name = jstr_or(in, "FunctionName", NULL);
    if (!name) return l_verr(c, "functionName", NULL, "Member must not be null");
    char nm[FN_MAX_NAME + 1], q[130];
    tr_err err;
    tr_err_clear(&err);
    if (fn_name_parse(name, nm, q, &err) || q[0])
        return q[0]
                   ? l_verr(
                         c, "functionName", name,
                         "Member must satisfy regular expression pattern: "
                         "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                         "(function:)?([a-zA-Z0-9-_]+)")
                   : l_error(c, err.code, &err, NULL);
    if (api__lambda_fn_owned(c, name, "CreateFunction")) return API_FAIL;
    if (!jstr_or(in, "Role", NULL)) return l_verr(c, "role", NULL, "Member must not be null");
    const char *pkg = jstr_or(in, "PackageType", "Zip");
    if (strcmp(pkg, "Zip"))
        return api_fail(c, 400, "InvalidParameterValueException",
                        "PackageType %.32s is not supported by Tributary; use Zip", pkg);
    long long timeout = 0, mem = 0, eph = 0;
    int r;
    if ((r = jint(c, "Timeout", &timeout)) < 0 || (r = jint(c, "MemorySize", &mem)) < 0)
        return API_FAIL;
    json_t *es = json_object_get(in, "EphemeralStorage");
    if (json_is_object(es)) eph = json_integer_value(json_object_get(es, "Size"));
    if (eph && (eph < 512 || eph > 10240))
        return l_verr(c, "ephemeralStorage.size", "",
                      "Member must have value between 512 and 10240");
    if (json_object_get(in, "Timeout") && (timeout < 1 || timeout > 900)) {
        char v[32];
        snprintf(v, sizeof v, "%lld", timeout);
        return l_verr(c, "timeout", v,
                      timeout < 1 ? "Member must have value greater than or equal to 1"
                                  : "Member must have value less than or equal to 900");
    }
    if (json_object_get(in, "MemorySize") && (mem < 128 || mem > 10240)) {
        char v[32];
        snprintf(v, sizeof v, "%lld", mem);
        return l_verr(c, "memorySize", v,
                      mem < 128 ? "Member must have value greater than or equal to 128"
                                : "Member must have value less than or equal to 10240");
    }
    fn_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.name, sizeof cfg.name, "%s", nm);
    cfg.runtime = (char *)jstr_or(in, "Runtime", NULL);
    cfg.handler = (char *)jstr_or(in, "Handler", "");
    cfg.role = (char *)jstr_or(in, "Role", "");
    cfg.description = (char *)jstr_or(in, "Description", "");
    cfg.timeout_s = (uint32_t)timeout;
    cfg.memory_mb = (uint32_t)mem;
    cfg.ephemeral_mb = (uint32_t)eph;
    json_t *arch = json_object_get(in, "Architectures");
    char *archs[1];
    if (json_is_array(arch) && json_array_size(arch) == 1 &&
        json_is_string(json_array_get(arch, 0))) {
        const char *a = json_string_value(json_array_get(arch, 0));
        if (strcmp(a, "x86_64") && strcmp(a, "arm64"))
            return l_verr(c, "architectures", a,
                          "Member must satisfy enum value set: [x86_64, arm64]");
        archs[0] = (char *)a;
        cfg.architectures = archs;
        cfg.n_architectures = 1;
    } else if (arch && !json_is_null(arch)) {
        return api_fail(c, 400, "InvalidParameterValueException",
                        "Architectures must be a list of exactly one value: x86_64 or arm64");
    }
    fn_env_var_t *env = NULL;
    size_t n_env = 0;
    if (env_from_json(c, json_object_get(in, "Environment"), &env, &n_env)) return API_FAIL;
    cfg.env = env;
    cfg.n_env = n_env;
    uint8_t *zip;
    size_t zlen;
    if (zip_from(c, json_object_get(in, "Code"), &zip, &zlen)) {
        free(env);
        return API_FAIL;
    }
    fn_config_t out;
    int rc = fn_create(c->ctx->fn, &cfg, zip, zlen, &out, &err);
    free(zip);
    free(env);
    if (rc) return l_error(c, rc, &err, NULL);
    api_reply_json(c, 201, config_to_json(c, &out), 0);
    fn_config_free(&out);
    return 0;
}

static int l_get_config(api_call_t *c) {
    fn_config_t cfg;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_get(c->ctx->fn, l_st(c)->name, &cfg, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    api_reply_json(c, 200, config_to_json(c, &cfg), 0);
    fn_config_free(&cfg);
    return 0;
}

static int l_get(api_call_t *c) {
    fn_config_t cfg;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_get(c->ctx->fn, l_st(c)->name, &cfg, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "Configuration", config_to_json(c, &cfg));
    char loc[4200];
    snprintf(loc, sizeof loc, "file://%s.zip", cfg.code_dir);
    json_object_set_new(o, "Code", json_pack("{ssss}", "RepositoryType", "S3", "Location", loc));
    if (cfg.reserved_concurrency >= 0)
        json_object_set_new(o, "Concurrency",
                            json_pack("{si}", "ReservedConcurrentExecutions",
                                      cfg.reserved_concurrency));
    fn_config_free(&cfg);
    return api_reply_json(c, 200, o, 0);
}

static int l_list(api_call_t *c) {
    char marker[256] = "", maxs[32] = "";
    api_query(c->req, "Marker", marker, sizeof marker);
    long long max = L_MAX_LIST;
    if (api_query(c->req, "MaxItems", maxs, sizeof maxs)) {
        char *end;
        max = strtoll(maxs, &end, 10);
        if (*end || max < 1 || max > 10000)
            return l_verr(c, "maxItems", maxs,
                          max < 1 ? "Member must have value greater than or equal to 1"
                                  : "Member must have value less than or equal to 10000");
        if (max > L_MAX_LIST) max = L_MAX_LIST;
    }
    fn_config_t *arr;
    size_t n;
    char *next;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_list(c->ctx->fn, marker, (size_t)max, &arr, &n, &next, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, config_to_json(c, &arr[i]));
        fn_config_free(&arr[i]);
    }
    free(arr);
    return api__lambda_reply_list(c, "Functions", list, next, 0);
}

static int l_delete(api_call_t *c) {
    if (l_st(c)->qualifier[0] && strcmp(l_st(c)->qualifier, "$LATEST"))
        return api_fail(c, 404, "ResourceNotFoundException",
                        "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s",
                        c->ctx->region, l_st(c)->name, l_st(c)->qualifier);
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_delete(c->ctx->fn, l_st(c)->name, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return api_reply_empty(c, 204);
}

static int l_update_code(api_call_t *c) {
    if (require_body(c)) return API_FAIL;
    uint8_t *zip;
    size_t zlen;
    if (zip_from(c, c->in, &zip, &zlen)) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    fn_config_t out;
    int rc;
    if (json_is_true(json_object_get(c->in, "DryRun"))) {
        rc = fn_get(c->ctx->fn, l_st(c)->name, &out, &err);
    } else {
        rc = fn_update_code(c->ctx->fn, l_st(c)->name, zip, zlen,
                            jstr_or(c->in, "RevisionId", NULL), &out, &err);
    }
    free(zip);
    if (rc) return l_error(c, rc, &err, NULL);
    api_reply_json(c, 200, config_to_json(c, &out), 0);
    fn_config_free(&out);
    return 0;
}

static int l_update_config(api_call_t *c) {
    if (require_body(c)) return API_FAIL;
    json_t *in = c->in;
    fn_config_update_t u;
    memset(&u, 0, sizeof u);
    long long v;
    int r;
    if ((r = jint(c, "Timeout", &v)) < 0) return API_FAIL;
    if (r) {
        if (v < 1 || v > 900) {
            char s[32];
            snprintf(s, sizeof s, "%lld", v);
            return l_verr(c, "timeout", s,
                          v < 1 ? "Member must have value greater than or equal to 1"
                                : "Member must have value less than or equal to 900");
        }
        u.has_timeout = 1;
        u.timeout_s = (uint32_t)v;
    }
    if ((r = jint(c, "MemorySize", &v)) < 0) return API_FAIL;
    if (r) {
        if (v < 128 || v > 10240) {
            char s[32];
            snprintf(s, sizeof s, "%lld", v);
            return l_verr(c, "memorySize", s,
                          v < 128 ? "Member must have value greater than or equal to 128"
                                  : "Member must have value less than or equal to 10240");
        }
        u.has_memory = 1;
        u.memory_mb = (uint32_t)v;
    }
    if ((u.runtime = jstr_or(in, "Runtime", NULL))) u.has_runtime = 1;
    if ((u.handler = jstr_or(in, "Handler", NULL))) u.has_handler = 1;
    if ((u.role = jstr_or(in, "Role", NULL))) u.has_role = 1;
    if ((u.description = jstr_or(in, "Description", NULL))) u.has_description = 1;
    u.revision_id = jstr_or(in, "RevisionId", NULL);
    fn_env_var_t *env = NULL;
    json_t *envj = json_object_get(in, "Environment");
    if (envj && !json_is_null(envj)) {
        if (env_from_json(c, envj, &env, &u.n_env)) return API_FAIL;
        u.env = env;
        u.has_env = 1;
    }
    tr_err err;
    tr_err_clear(&err);
    fn_config_t out;
    int rc = fn_update_config(c->ctx->fn, l_st(c)->name, &u, &out, &err);
    free(env);
    if (rc) return l_error(c, rc, &err, NULL);
    api_reply_json(c, 200, config_to_json(c, &out), 0);
    fn_config_free(&out);
    return 0;
}

static int l_put_concurrency(api_call_t *c) {
    if (require_body(c)) return API_FAIL;
    long long n;
    int r = jint(c, "ReservedConcurrentExecutions", &n);
    if (r < 0) return API_FAIL;
    if (!r) return l_verr(c, "reservedConcurrentExecutions", NULL, "Member must not be null");
    if (n < 0) {
        char s[32];
        snprintf(s, sizeof s, "%lld", n);
        return l_verr(c, "reservedConcurrentExecutions", s,
                      "Member must have value greater than or equal to 0");
    }
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_concurrency_put(c->ctx->fn, l_st(c)->name, n > INT32_MAX ? INT32_MAX : (int32_t)n,
                                &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return api_reply_json(c, 200, json_pack("{sI}", "ReservedConcurrentExecutions", (json_int_t)n),
                          0);
}

static int l_delete_concurrency(api_call_t *c) {
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_concurrency_delete(c->ctx->fn, l_st(c)->name, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return api_reply_empty(c, 204);
}

static int l_get_concurrency(api_call_t *c) {
    tr_err err;
    tr_err_clear(&err);
    int32_t n;
    int rc = fn_concurrency_get(c->ctx->fn, l_st(c)->name, &n, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    json_t *o = json_object();
    if (n >= 0) json_object_set_new(o, "ReservedConcurrentExecutions", json_integer(n));
    return api_reply_json(c, 200, o, 0);
}

/* ---- Invoke -------------------------------------------------------------------------------- */

/* As on AWS, an Invoke's x-amzn-RequestId is the invocation's request id (the function's
 * context.awsRequestId, the id in its log lines). */
static void set_request_id(net_req_t *req, const char *id) {
    if (!id || !id[0]) return;
    net_req_set_header(req, "x-amzn-RequestId", id);
}

static void invoke_done(void *arg, const fn_result_t *r) {
    net_req_t *req = arg;
    tr_buf_reset(&req->out);
    set_request_id(req, r->request_id);
    if (r->rc) {
        api_call_t c = {.svc = &api_lambda_service, .req = req, .out = &req->out};
        l_error(&c, r->rc, &r->err, r->throttle_reason);
        net_req_resume(req);
        return;
    }
    req->status = r->status;
    net_req_add_header(req, "X-Amz-Executed-Version",
                       r->executed_version ? r->executed_version : "$LATEST");
    if (r->status == 200) {
        req->content_type = L_JSON;
        if (r->function_error) net_req_add_header(req, "X-Amz-Function-Error", r->function_error);
        if (r->log_tail) {
            tr_buf b = TR_BUF_INIT;
            tr_buf_base64(&b, r->log_tail, r->log_tail_len);
            net_req_add_header(req, "X-Amz-Log-Result", b.data ? b.data : "");
            tr_buf_free(&b);
        }
        tr_buf_append(&req->out, r->payload ? (const char *)r->payload : "", r->payload_len);
    } else {
        req->content_type = NULL;   /* 202, 204: no body */
    }
    net_req_resume(req);
}

static int l_invoke_common(api_call_t *c, int type) {
    net_req_t *req = c->req;
    int tail = 0;
    if (type < 0) {
        const char *it = net_req_header(req, "X-Amz-Invocation-Type");
        if (!it || !strcmp(it, "RequestResponse")) type = FN_INVOKE_SYNC;
        else if (!strcmp(it, "Event")) type = FN_INVOKE_EVENT;
        else if (!strcmp(it, "DryRun")) type = FN_INVOKE_DRYRUN;
        else
            return l_verr(c, "invocationType", it,
                          "Member must satisfy enum value set: [Event, RequestResponse, DryRun]");
        const char *lt = net_req_header(req, "X-Amz-Log-Type");
        if (lt && strcmp(lt, "None") && strcmp(lt, "Tail"))
            return l_verr(c, "logType", lt, "Member must satisfy enum value set: [None, Tail]");
        tail = lt && !strcmp(lt, "Tail") && type == FN_INVOKE_SYNC;
    }
    size_t limit = type == FN_INVOKE_EVENT ? FN_MAX_ASYNC_PAYLOAD : FN_MAX_SYNC_PAYLOAD;
    if (req->body_len > limit)
        return api_fail(c, 413, "RequestTooLargeException",
                        "Request must be smaller than %zu bytes for the InvokeFunction operation",
                        limit);
    if (req->body_len) {
        json_error_t je;
        json_t *p = json_loadb((const char *)req->body, req->body_len, JSON_DECODE_ANY, &je);
        if (!p)
            return api_fail(c, 400, "InvalidRequestContentException",
                            "Could not parse request body into json: Could not parse payload into "
                            "json: %s: at [line: %d, column: %d]",
                            je.text, je.line, je.column);
        json_decref(p);
    }
    fn_invoke_req_t ir = {
        .name = l_st(c)->name,
        .qualifier = l_st(c)->qualifier,
        .type = type,
        .payload = req->body,
        .payload_len = req->body_len,
        .log_tail = tail,
        .client_context = net_req_header(req, "X-Amz-Client-Context"),
    };
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_invoke(c->ctx->fn, &ir, invoke_done, req, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return NET_DEFER;
}

static int l_invoke(api_call_t *c) { return l_invoke_common(c, -1); }

/* InvokeAsync (deprecated, /2014-11-13/functions/{}/invoke-async/): an Event invoke answering
 * {"Status":202}. */
static void invoke_async_done(void *arg, const fn_result_t *r) {
    net_req_t *req = arg;
    if (r->rc) {
        api_call_t c = {.svc = &api_lambda_service, .req = req, .out = &req->out};
        l_error(&c, r->rc, &r->err, r->throttle_reason);
    } else {
        req->status = 202;
        req->content_type = L_JSON;
        tr_buf_reset(&req->out);
        tr_buf_puts(&req->out, "{\"Status\":202}");
    }
    net_req_resume(req);
}

static int l_invoke_async(api_call_t *c) {
    net_req_t *req = c->req;
    if (req->body_len > FN_MAX_ASYNC_PAYLOAD)
        return api_fail(c, 413, "RequestTooLargeException",
                        "Request must be smaller than %d bytes for the InvokeAsync operation",
                        FN_MAX_ASYNC_PAYLOAD);
    fn_invoke_req_t ir = {.name = l_st(c)->name,
                          .type = FN_INVOKE_EVENT,
                          .payload = req->body,
                          .payload_len = req->body_len};
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_invoke(c->ctx->fn, &ir, invoke_async_done, req, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return NET_DEFER;
}

int api__lambda_reply_list(api_call_t *c, const char *member, json_t *items, char *next,
                           int real_precision) {
    json_t *o = json_object();
    json_object_set_new(o, member, items);
    if (next) json_object_set_new(o, "NextMarker", json_string(next));
    free(next);
    return api_reply_json(c, 200, o, real_precision);
}

/* ---- the service ----------------------------------------------------------------------------- */

int api__lambda_fn_owned(api_call_t *c, const char *given, const char *action) {
    char region[64], account[32];
    switch (api_fn_name_owner(c->ctx, given)) {
    case API_ARN_OTHER_REGION:
        api_arn_fields(given, region, account);
        return api_fail(c, 404, "ResourceNotFoundException",
                        "Functions from '%s' are not reachable in this region ('%s')",
                        region[0] ? region : "another partition", c->ctx->region);
    case API_ARN_OTHER_ACCOUNT:
        return api_fail(c, 403, "AccessDeniedException",
                        "User: arn:aws:iam::%s:root is not authorized to perform: lambda:%s on "
                        "resource: %s because no resource-based policy allows the lambda:%s "
                        "action (this server's functions are in account %s)",
                        API_ACCOUNT_ID, action, given, action, API_ACCOUNT_ID);
    default: return 0;
    }
}

/* Before the body: the engine is running, and the path's FunctionName (c->seg) names one of
 * ours (into l_st(c)), with the Qualifier query parameter agreeing.  0 or API_FAIL. */
static int l_ready(api_call_t *c) {
    l_state_t *st = l_st(c);
    if (!c->ctx->fn)
        return api_fail(c, 503, "ServiceException", "The functions engine is not running");
    if (!c->seg[0]) return 0;
    char dec[API_SEG_MAX];
    if (api_pct_decode(c->seg, strlen(c->seg), dec, sizeof dec, 0))
        return api_fail(c, 400, "InvalidParameterValueException",
                        "Malformed FunctionName in the path");
    tr_err err;
    tr_err_clear(&err);
    if (fn_name_parse(dec, st->name, st->qualifier, &err)) return l_error(c, err.code, &err, NULL);
    if (api__lambda_fn_owned(c, dec, c->op->fn == l_invoke ? "InvokeFunction" : c->op->name))
        return API_FAIL;
    char q[130];
    if (api_query(c->req, "Qualifier", q, sizeof q) && q[0]) {
        if (st->qualifier[0] && strcmp(st->qualifier, q))
            return api_fail(c, 400, "InvalidParameterValueException",
                            "The derived qualifier from the function name does not match the "
                            "specified qualifier.");
        snprintf(st->qualifier, sizeof st->qualifier, "%s", q);
    }
    if (st->qualifier[0] && strcmp(st->qualifier, "$LATEST") && c->op->fn != l_invoke)
        return api_fail(c, 404, "ResourceNotFoundException",
                        "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s "
                        "(Tributary serves only $LATEST)",
                        c->ctx->region, st->name, st->qualifier);
    return 0;
}

/* An API_OP_WORKER operation queued on a code worker (the request is deferred until it ran). */
typedef struct l_job {
    api_call_t c;
} l_job_t;

static void l_job_run(void *arg, int closed) {
    l_job_t *j = arg;
    api_call_t *c = &j->c;
    if (closed) {
        api_fail(c, 503, "ServiceException",
                 "The server is shutting down; retry after it restarts");
    } else if (!api_parse_body(c)) {
        c->op->fn(c); /* synchronous: these operations never defer */
        json_decref(c->in);
    }
    tr_buf_free(&c->verr);
    net_req_t *req = c->req;
    free(j);
    net_req_resume(req);
}

/* The kit's run hook: API_OP_WORKER operations -- CreateFunction, UpdateFunctionCode: parsing a
 * 16 MB body, decoding, unpacking and syncing a package take seconds -- run whole, body parse
 * included, on the engine's code workers (fn_work_submit); a full queue answers 429
 * TooManyRequestsException (Reason CallerRateLimitExceeded, Retry-After) at once. */
static int l_run(api_call_t *c) {
    if (!(c->op->flags & API_OP_WORKER)) return c->op->fn(c);
    l_job_t *j = tr_xmalloc(sizeof *j);
    j->c = *c;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_work_submit(c->ctx->fn, l_job_run, j, &err);
    if (!rc) return NET_DEFER;
    free(j);
    return l_error(c, rc, &err, "CallerRateLimitExceeded");
}

/* Each row: the operation, method, path pattern ("{}" = one FunctionName segment; a trailing
 * "/" optional), its handler, and whether the JSON body is parsed (API_OP_BODY) on a code
 * worker (API_OP_WORKER).  Event source mappings are lambda_esm.c's service. */
static const api_op_t l_ops[] = {
    {"CreateFunction", "POST", "/2015-03-31/functions", l_create, API_OP_BODY | API_OP_WORKER,
     NULL},
    {"ListFunctions", "GET", "/2015-03-31/functions", l_list, 0, NULL},
    {"GetFunction", "GET", "/2015-03-31/functions/{}", l_get, 0, NULL},
    {"DeleteFunction", "DELETE", "/2015-03-31/functions/{}", l_delete, 0, NULL},
    {"GetFunctionConfiguration", "GET", "/2015-03-31/functions/{}/configuration", l_get_config, 0,
     NULL},
    {"UpdateFunctionConfiguration", "PUT", "/2015-03-31/functions/{}/configuration",
     l_update_config, API_OP_BODY, NULL},
    {"UpdateFunctionCode", "PUT", "/2015-03-31/functions/{}/code", l_update_code,
     API_OP_BODY | API_OP_WORKER, NULL},
    {"Invoke", "POST", "/2015-03-31/functions/{}/invocations", l_invoke, 0, NULL},
    {"InvokeAsync", "POST", "/2014-11-13/functions/{}/invoke-async", l_invoke_async, 0, NULL},
    {"PutFunctionConcurrency", "PUT", "/2017-10-31/functions/{}/concurrency", l_put_concurrency,
     API_OP_BODY, NULL},
    {"DeleteFunctionConcurrency", "DELETE", "/2017-10-31/functions/{}/concurrency",
     l_delete_concurrency, 0, NULL},
    {"GetFunctionConcurrency", "GET", "/2019-09-30/functions/{}/concurrency", l_get_concurrency, 0,
     NULL},
};

static const char *const l_prefixes[] = {
    "/2015-03-31/", "/2017-10-31/", /* Put/DeleteFunctionConcurrency */
    "/2019-09-30/", /* GetFunctionConcurrency */
    "/2014-11-13/", /* InvokeAsync */
    NULL,
};

const api_service_t api_lambda_service = {
    API_LAMBDA_SERVICE_COMMON,
    .path_prefixes = l_prefixes,
    API_OPS(l_ops),
    .ready = l_ready,
    .run = l_run,
};
