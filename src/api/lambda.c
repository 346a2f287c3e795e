/*
 * lambda.c -- the Lambda adapter: REST JSON (/2015-03-31/functions/...) in, fn engine calls,
 * JSON out.
 *
 * Every operation is one row of l_ops[] (method, path pattern, name, handler); a pattern's "{}"
 * is one URL-encoded path segment (the FunctionName: a name, partial ARN or ARN, decoded and
 * split by fn_name_parse).  Engine codes become AWS error types in l_error() only:
 *
 *     TR_ENOTFOUND    404 ResourceNotFoundException      TR_EEXISTS     409 ResourceConflictException
 *     TR_EINVAL       400 InvalidParameterValueException TR_ELIMIT      400 InvalidParameterValueException
 *     TR_EVALIDATION  400 ValidationException            TR_EINUSE      412 PreconditionFailedException
 *     TR_ETHROTTLED   429 TooManyRequestsException (+Reason, Retry-After)
 *     TR_ETOOBIG      413 RequestTooLargeException (CreateFunction / UpdateFunctionCode: 413
 *                     RequestEntityTooLargeException, as AWS's front end answers a big upload)
 *     TR_ESERIALIZATION 400 InvalidRequestContentException
 *     other           500 ServiceException (503 while shutting down)
 *
 * Error responses are AWS's REST JSON shape: header x-amzn-ErrorType: <type> (botocore takes
 * the code from it) and body {"Type":"User"|"Service","message"|"Message":...} with the member
 * spelling of that exception's shape in the service model.
 *
 * Invoke is deferred: fn_invoke calls back (any thread, maybe before it returns) and the
 * callback fills the response and resumes the request.  Operations marked L_WORKER in l_ops[]
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
#include "core/tlog.h"
#include "fn/fn.h"

#define L_JSON "application/json"
#define L_MAX_LIST 50

typedef struct l_call {
    api_ctx_t *ctx;
    net_req_t *req;
    json_t *in;                        /* parsed body (NULL when none) */
    char name[FN_MAX_NAME + 1];        /* FunctionName from the path */
    char qualifier[130];
    const char *op;
} l_call_t;

typedef int (*l_handler_fn)(l_call_t *c);

/* ---- errors -------------------------------------------------------------------------------- */

static int l_fail(l_call_t *c, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int l_fail(l_call_t *c, int status, const char *type, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    net_req_t *req = c->req;
    req->status = status;
    req->content_type = L_JSON;
    net_req_add_header(req, "x-amzn-ErrorType", type);
    /* the member is "Message" in these shapes, "message" in the others */
    int cap = !strcmp(type, "ResourceNotFoundException") || !strcmp(type, "ServiceException") ||
              !strcmp(type, "ResourceInUseException");
    tr_buf_reset(&req->out);
    tr_buf_printf(&req->out, "{\"Type\":\"%s\",\"%s\":", status >= 500 ? "Service" : "User",
                  cap ? "Message" : "message");
    tr_buf_json_str(&req->out, msg, strlen(msg));
    tr_buf_puts(&req->out, "}");
    tr_debug("lambda", "%s %s -> %d %s: %s", req->method, req->path, status, type, msg);
    return -1;
}

/* The one place engine codes become Lambda error types. */
static int l_error(l_call_t *c, int code, const tr_err *err, const char *throttle_reason) {
    const char *type = "ServiceException";
    int status = 500;
    switch (code) {
    case TR_ENOTFOUND: type = "ResourceNotFoundException"; status = 404; break;
    case TR_EEXISTS: type = "ResourceConflictException"; status = 409; break;
    case TR_EINVAL:
    case TR_ELIMIT: type = "InvalidParameterValueException"; status = 400; break;
    case TR_EVALIDATION: type = "ValidationException"; status = 400; break;
    case TR_EINUSE: type = "PreconditionFailedException"; status = 412; break;
    case TR_ETHROTTLED: type = "TooManyRequestsException"; status = 429; break;
    case TR_ETOOBIG:
        type = c->op && (!strcmp(c->op, "CreateFunction") || !strcmp(c->op, "UpdateFunctionCode"))
                   ? "RequestEntityTooLargeException"
                   : "RequestTooLargeException";
        status = 413;
        break;
    case TR_ESERIALIZATION: type = "InvalidRequestContentException"; status = 400; break;
    case TR_ECLOSED: status = 503; break;
    default: break;
    }
    const char *msg = err && err->msg[0] ? err->msg : tr_strerror(code);
    if (status == 500) tr_error("lambda", "internal error %s: %s", tr_err_name(code), msg);
    l_fail(c, status, type, "%s", msg);
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
    return -1;
}

static int l_verr(l_call_t *c, const char *member, const char *value, const char *what) {
    if (value)
        return l_fail(c, 400, "ValidationException",
                      "1 validation error detected: Value '%.200s' at '%s' failed to satisfy "
                      "constraint: %s",
                      value, member, what);
    return l_fail(c, 400, "ValidationException",
                  "1 validation error detected: Value null at '%s' failed to satisfy constraint: "
                  "%s",
                  member, what);
}

/* ---- input helpers ------------------------------------------------------------------------- */

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (cap bytes); -1 when it does not fit or is malformed. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space) {
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

/* Query parameter `key` (decoded) into out; 0 absent, 1 present. */
static int l_query(const net_req_t *req, const char *key, char *out, size_t cap) {
    const char *q = req->query;
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t nl = eq ? (size_t)(eq - q) : len;
        if (nl == kl && !strncmp(q, key, kl)) {
            if (!eq) {
                out[0] = 0;
                return 1;
            }
            if (pct_decode(eq + 1, len - nl - 1, out, cap, 1)) out[0] = 0;
            return 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

static const char *jstr_or(json_t *o, const char *k, const char *dflt) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Integer member: -1 type error (answered), 0 absent, 1 present. */
static int jint(l_call_t *c, const char *k, long long *out) {
    json_t *v = json_object_get(c->in, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) {
        l_fail(c, 400, "InvalidRequestContentException",
               "Could not parse request body into json: %s must be an integer", k);
        return -1;
    }
    *out = json_integer_value(v);
    return 1;
}

/* Environment.Variables into a temporary array (pointers into c->in). */
static int env_from_json(l_call_t *c, json_t *env, fn_env_var_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    json_t *vars = json_object_get(env, "Variables");
    if (!vars || json_is_null(vars)) return 0;
    if (!json_is_object(vars))
        return l_fail(c, 400, "InvalidRequestContentException",
                      "Could not parse request body into json: Environment.Variables must be an "
                      "object of strings");
    size_t k = json_object_size(vars);
    fn_env_var_t *arr = calloc(k ? k : 1, sizeof *arr);
    if (!arr) abort();
    const char *key;
    json_t *val;
    size_t i = 0;
    json_object_foreach(vars, key, val) {
        if (!json_is_string(val)) {
            free(arr);
            return l_fail(c, 400, "InvalidRequestContentException",
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

static json_t *config_to_json(l_call_t *c, const fn_config_t *cfg) {
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
    json_object_set_new(o, "SnapStart", json_pack("{ssss}", "ApplyOn", "None",
                                                  "OptimizationStatus", "Off"));
    char group[128];
    snprintf(group, sizeof group, "/aws/lambda/%s", cfg->name);
    json_object_set_new(o, "LoggingConfig", json_pack("{ssss}", "LogFormat", "Text", "LogGroup", group));
    (void)c;
    return o;
}

static int send_json(l_call_t *c, int status, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) abort();
    c->req->status = status;
    c->req->content_type = L_JSON;
    tr_buf_reset(&c->req->out);
    tr_buf_puts(&c->req->out, s);
    free(s);
    return 0;
}

/* ---- operations ---------------------------------------------------------------------------- */

static int require_body(l_call_t *c) {
    if (!c->in)
        return l_fail(c, 400, "InvalidRequestContentException",
                      "Could not parse request body into json: the body must be a JSON object");
    return 0;
}

/* Decode Code.ZipFile / ZipFile; *zip malloc'd. */
static int zip_from(l_call_t *c, json_t *code, uint8_t **zip, size_t *n) {
    *zip = NULL;
    *n = 0;
    if (!json_is_object(code))
        return l_fail(c, 400, "InvalidParameterValueException",
                      "Code is required: pass Code.ZipFile, a base64 .zip holding an executable "
                      "bootstrap");
    json_t *zf = json_object_get(code, "ZipFile");
    if (!json_is_string(zf)) {
        if (json_object_get(code, "S3Bucket") || json_object_get(code, "ImageUri"))
            return l_fail(c, 400, "InvalidParameterValueException",
                          "Tributary takes the deployment package as ZipFile only (S3Bucket and "
                          "ImageUri are not supported); pass the zip bytes in ZipFile");
        return l_fail(c, 400, "InvalidParameterValueException",
                      "Please provide a source for function code.");
    }
    size_t len = json_string_length(zf);
    uint8_t *b = malloc(tr_base64_decoded_max(len) + 1);
    if (!b) abort();
    long got = tr_base64_decode(json_string_value(zf), len, b);
    if (got <= 0) {
        free(b);
        return l_fail(c, 400, "InvalidParameterValueException",
                      "Could not unzip uploaded file. Please check your file, then try to upload "
                      "again. (ZipFile is not base64)");
    }
    *zip = b;
    *n = (size_t)got;
    return 0;
}

static int l_fn_owned(l_call_t *c, const char *given, const char *action);

static int l_create(l_call_t *c) {
    if (require_body(c)) return -1;
    json_t *in = c->in;
    const char *name = jstr_or(in, "FunctionName", NULL);
    if (!name) return l_verr(c, "functionName", NULL, "Member must not be null");
    char nm[FN_MAX_NAME + 1], q[130];
    tr_err err;
    tr_err_clear(&err);
    if (fn_name_parse(name, nm, q, &err) || q[0])
        return q[0] ? l_verr(c, "functionName", name,
                             "Member must satisfy regular expression pattern: "
                             "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                             "(function:)?([a-zA-Z0-9-_]+)")
                    : l_error(c, err.code, &err, NULL);
    if (l_fn_owned(c, name, "CreateFunction")) return -1;
    if (!jstr_or(in, "Role", NULL)) return l_verr(c, "role", NULL, "Member must not be null");
    const char *pkg = jstr_or(in, "PackageType", "Zip");
    if (strcmp(pkg, "Zip"))
        return l_fail(c, 400, "InvalidParameterValueException",
                      "PackageType %.32s is not supported by Tributary; use Zip", pkg);
    long long timeout = 0, mem = 0, eph = 0;
    int r;
    if ((r = jint(c, "Timeout", &timeout)) < 0 || (r = jint(c, "MemorySize", &mem)) < 0) return -1;
    json_t *es = json_object_get(in, "EphemeralStorage");
    if (json_is_object(es)) eph = json_integer_value(json_object_get(es, "Size"));
    if (eph && (eph < 512 || eph > 10240))
        return l_verr(c, "ephemeralStorage.size", "", "Member must have value between 512 and 10240");
    if (json_object_get(in, "Timeout") && (timeout < 1 || timeout > 900)) {
        char v[32];
        snprintf(v, sizeof v, "%lld", timeout);
        return l_verr(c, "timeout", v, timeout < 1 ? "Member must have value greater than or equal to 1"
                                                   : "Member must have value less than or equal to 900");
    }
    if (json_object_get(in, "MemorySize") && (mem < 128 || mem > 10240)) {
        char v[32];
        snprintf(v, sizeof v, "%lld", mem);
        return l_verr(c, "memorySize", v, mem < 128 ? "Member must have value greater than or equal to 128"
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
    if (json_is_array(arch) && json_array_size(arch) == 1 && json_is_string(json_array_get(arch, 0))) {
        const char *a = json_string_value(json_array_get(arch, 0));
        if (strcmp(a, "x86_64") && strcmp(a, "arm64"))
            return l_verr(c, "architectures", a, "Member must satisfy enum value set: [x86_64, arm64]");
        archs[0] = (char *)a;
        cfg.architectures = archs;
        cfg.n_architectures = 1;
    } else if (arch && !json_is_null(arch)) {
        return l_fail(c, 400, "InvalidParameterValueException",
                      "Architectures must be a list of exactly one value: x86_64 or arm64");
    }
    fn_env_var_t *env = NULL;
    size_t n_env = 0;
    if (env_from_json(c, json_object_get(in, "Environment"), &env, &n_env)) return -1;
    cfg.env = env;
    cfg.n_env = n_env;
    uint8_t *zip;
    size_t zlen;
    if (zip_from(c, json_object_get(in, "Code"), &zip, &zlen)) {
        free(env);
        return -1;
    }
    fn_config_t out;
    int rc = fn_create(c->ctx->fn, &cfg, zip, zlen, &out, &err);
    free(zip);
    free(env);
    if (rc) return l_error(c, rc, &err, NULL);
    send_json(c, 201, config_to_json(c, &out));
    fn_config_free(&out);
    return 0;
}

static int l_get_config(l_call_t *c) {
    fn_config_t cfg;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_get(c->ctx->fn, c->name, &cfg, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    send_json(c, 200, config_to_json(c, &cfg));
    fn_config_free(&cfg);
    return 0;
}

static int l_get(l_call_t *c) {
    fn_config_t cfg;
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_get(c->ctx->fn, c->name, &cfg, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "Configuration", config_to_json(c, &cfg));
    char loc[4200];
    snprintf(loc, sizeof loc, "file://%s.zip", cfg.code_dir);
    json_object_set_new(o, "Code", json_pack("{ssss}", "RepositoryType", "S3", "Location", loc));
    if (cfg.reserved_concurrency >= 0)
        json_object_set_new(o, "Concurrency", json_pack("{si}", "ReservedConcurrentExecutions",
                                                        cfg.reserved_concurrency));
    fn_config_free(&cfg);
    return send_json(c, 200, o);
}

static int l_list(l_call_t *c) {
    char marker[256] = "", maxs[32] = "";
    l_query(c->req, "Marker", marker, sizeof marker);
    long long max = L_MAX_LIST;
    if (l_query(c->req, "MaxItems", maxs, sizeof maxs)) {
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
    json_t *o = json_object(), *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, config_to_json(c, &arr[i]));
        fn_config_free(&arr[i]);
    }
    free(arr);
    json_object_set_new(o, "Functions", list);
    if (next) json_object_set_new(o, "NextMarker", json_string(next));
    free(next);
    return send_json(c, 200, o);
}

static int l_delete(l_call_t *c) {
    if (c->qualifier[0] && strcmp(c->qualifier, "$LATEST"))
        return l_fail(c, 404, "ResourceNotFoundException",
                      "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s",
                      c->ctx->region, c->name, c->qualifier);
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_delete(c->ctx->fn, c->name, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    c->req->status = 204;
    c->req->content_type = NULL;
    tr_buf_reset(&c->req->out);
    return 0;
}

static int l_update_code(l_call_t *c) {
    if (require_body(c)) return -1;
    uint8_t *zip;
    size_t zlen;
    if (zip_from(c, c->in, &zip, &zlen)) return -1;
    tr_err err;
    tr_err_clear(&err);
    fn_config_t out;
    int rc;
    if (json_is_true(json_object_get(c->in, "DryRun"))) {
        rc = fn_get(c->ctx->fn, c->name, &out, &err);
    } else {
        rc = fn_update_code(c->ctx->fn, c->name, zip, zlen, jstr_or(c->in, "RevisionId", NULL),
                            &out, &err);
    }
    free(zip);
    if (rc) return l_error(c, rc, &err, NULL);
    send_json(c, 200, config_to_json(c, &out));
    fn_config_free(&out);
    return 0;
}

static int l_update_config(l_call_t *c) {
    if (require_body(c)) return -1;
    json_t *in = c->in;
    fn_config_update_t u;
    memset(&u, 0, sizeof u);
    long long v;
    int r;
    if ((r = jint(c, "Timeout", &v)) < 0) return -1;
    if (r) {
        if (v < 1 || v > 900) {
            char s[32];
            snprintf(s, sizeof s, "%lld", v);
            return l_verr(c, "timeout", s, v < 1 ? "Member must have value greater than or equal to 1"
                                                 : "Member must have value less than or equal to 900");
        }
        u.has_timeout = 1;
        u.timeout_s = (uint32_t)v;
    }
    if ((r = jint(c, "MemorySize", &v)) < 0) return -1;
    if (r) {
        if (v < 128 || v > 10240) {
            char s[32];
            snprintf(s, sizeof s, "%lld", v);
            return l_verr(c, "memorySize", s, v < 128 ? "Member must have value greater than or equal to 128"
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
        if (env_from_json(c, envj, &env, &u.n_env)) return -1;
        u.env = env;
        u.has_env = 1;
    }
    tr_err err;
    tr_err_clear(&err);
    fn_config_t out;
    int rc = fn_update_config(c->ctx->fn, c->name, &u, &out, &err);
    free(env);
    if (rc) return l_error(c, rc, &err, NULL);
    send_json(c, 200, config_to_json(c, &out));
    fn_config_free(&out);
    return 0;
}

static int l_put_concurrency(l_call_t *c) {
    if (require_body(c)) return -1;
    long long n;
    int r = jint(c, "ReservedConcurrentExecutions", &n);
    if (r < 0) return -1;
    if (!r) return l_verr(c, "reservedConcurrentExecutions", NULL, "Member must not be null");
    if (n < 0) {
        char s[32];
        snprintf(s, sizeof s, "%lld", n);
        return l_verr(c, "reservedConcurrentExecutions", s,
                      "Member must have value greater than or equal to 0");
    }
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_concurrency_put(c->ctx->fn, c->name, n > INT32_MAX ? INT32_MAX : (int32_t)n, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return send_json(c, 200, json_pack("{sI}", "ReservedConcurrentExecutions", (json_int_t)n));
}

static int l_delete_concurrency(l_call_t *c) {
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_concurrency_delete(c->ctx->fn, c->name, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    c->req->status = 204;
    c->req->content_type = NULL;
    tr_buf_reset(&c->req->out);
    return 0;
}

static int l_get_concurrency(l_call_t *c) {
    tr_err err;
    tr_err_clear(&err);
    int32_t n;
    int rc = fn_concurrency_get(c->ctx->fn, c->name, &n, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    json_t *o = json_object();
    if (n >= 0) json_object_set_new(o, "ReservedConcurrentExecutions", json_integer(n));
    return send_json(c, 200, o);
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
        l_call_t c = {.req = req};
        l_error(&c, r->rc, &r->err, r->throttle_reason);
        net_req_resume(req);
        return;
    }
    req->status = r->status;
    net_req_add_header(req, "X-Amz-Executed-Version", r->executed_version ? r->executed_version : "$LATEST");
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

static int l_invoke_common(l_call_t *c, int type) {
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
        return l_fail(c, 413, "RequestTooLargeException",
                      "Request must be smaller than %zu bytes for the InvokeFunction operation",
                      limit);
    if (req->body_len) {
        json_error_t je;
        json_t *p = json_loadb((const char *)req->body, req->body_len, JSON_DECODE_ANY, &je);
        if (!p)
            return l_fail(c, 400, "InvalidRequestContentException",
                          "Could not parse request body into json: Could not parse payload into "
                          "json: %s: at [line: %d, column: %d]",
                          je.text, je.line, je.column);
        json_decref(p);
    }
    fn_invoke_req_t ir = {
        .name = c->name,
        .qualifier = c->qualifier,
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
    return 1;   /* deferred */
}

static int l_invoke(l_call_t *c) { return l_invoke_common(c, -1); }

/* InvokeAsync (deprecated, /2014-11-13/functions/{}/invoke-async/): an Event invoke answering
 * {"Status":202}. */
static void invoke_async_done(void *arg, const fn_result_t *r) {
    net_req_t *req = arg;
    if (r->rc) {
        l_call_t c = {.req = req};
        l_error(&c, r->rc, &r->err, r->throttle_reason);
    } else {
        req->status = 202;
        req->content_type = L_JSON;
        tr_buf_reset(&req->out);
        tr_buf_puts(&req->out, "{\"Status\":202}");
    }
    net_req_resume(req);
}

static int l_invoke_async(l_call_t *c) {
    net_req_t *req = c->req;
    if (req->body_len > FN_MAX_ASYNC_PAYLOAD)
        return l_fail(c, 413, "RequestTooLargeException",
                      "Request must be smaller than %d bytes for the InvokeAsync operation",
                      FN_MAX_ASYNC_PAYLOAD);
    fn_invoke_req_t ir = {.name = c->name, .type = FN_INVOKE_EVENT, .payload = req->body,
                          .payload_len = req->body_len};
    tr_err err;
    tr_err_clear(&err);
    int rc = fn_invoke(c->ctx->fn, &ir, invoke_async_done, req, &err);
    if (rc) return l_error(c, rc, &err, NULL);
    return 1;
}

/* ---- the operation table ------------------------------------------------------------------- */

/* Each row: method, path pattern ("{}" = one FunctionName segment; a trailing "/" optional),
 * whether a JSON body is parsed, the operation name and its handler. */
#define L_WORKER 2                     /* json_body flag: parse and run on a code worker */
static const struct l_op {
    const char *method;
    const char *pattern;
    int json_body;                     /* 1: parse the body; L_WORKER: and run on a worker */
    const char *name;
    l_handler_fn fn;
} l_ops[] = {
    /* (event source mappings are routed to lambda_esm.c by api.c) */
    {"POST", "/2015-03-31/functions", 1 | L_WORKER, "CreateFunction", l_create},
    {"GET", "/2015-03-31/functions", 0, "ListFunctions", l_list},
    {"GET", "/2015-03-31/functions/{}", 0, "GetFunction", l_get},
    {"DELETE", "/2015-03-31/functions/{}", 0, "DeleteFunction", l_delete},
    {"GET", "/2015-03-31/functions/{}/configuration", 0, "GetFunctionConfiguration", l_get_config},
    {"PUT", "/2015-03-31/functions/{}/configuration", 1, "UpdateFunctionConfiguration", l_update_config},
    {"PUT", "/2015-03-31/functions/{}/code", 1 | L_WORKER, "UpdateFunctionCode", l_update_code},
    {"POST", "/2015-03-31/functions/{}/invocations", 0, "Invoke", l_invoke},
    {"POST", "/2014-11-13/functions/{}/invoke-async", 0, "InvokeAsync", l_invoke_async},
    {"PUT", "/2017-10-31/functions/{}/concurrency", 1, "PutFunctionConcurrency", l_put_concurrency},
    {"DELETE", "/2017-10-31/functions/{}/concurrency", 0, "DeleteFunctionConcurrency", l_delete_concurrency},
    {"GET", "/2019-09-30/functions/{}/concurrency", 0, "GetFunctionConcurrency", l_get_concurrency},
};

/* A FunctionName must name a function of this account in this region, as on AWS: another
 * region's is "not reachable in this region" (404 ResourceNotFoundException), another account's
 * is 403 AccessDeniedException (Tributary has no resource policies that could allow it).
 * `action` is the IAM action ("InvokeFunction").  0 when ours, else -1 with the error answered. */
static int l_fn_owned(l_call_t *c, const char *given, const char *action) {
    char region[64], account[32];
    switch (api_fn_name_owner(c->ctx, given)) {
    case API_ARN_OTHER_REGION:
        api_arn_fields(given, region, account);
        return l_fail(c, 404, "ResourceNotFoundException",
                      "Functions from '%s' are not reachable in this region ('%s')",
                      region[0] ? region : "another partition", c->ctx->region);
    case API_ARN_OTHER_ACCOUNT:
        return l_fail(c, 403, "AccessDeniedException",
                      "User: arn:aws:iam::%s:root is not authorized to perform: lambda:%s on "
                      "resource: %s because no resource-based policy allows the lambda:%s action "
                      "(this server's functions are in account %s)",
                      API_ACCOUNT_ID, action, given, action, API_ACCOUNT_ID);
    default: return 0;
    }
}

/* Match path against pattern; the "{}" segment (raw, still encoded) goes to seg. */
static int l_match(const char *pattern, const char *path, char *seg, size_t cap) {
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

/* Parse the JSON object body into c->in (none when empty); -1 answered. */
static int l_parse_body(l_call_t *c) {
    net_req_t *req = c->req;
    if (!req->body_len) return 0;
    json_error_t je;
    c->in = json_loadb((const char *)req->body, req->body_len, 0, &je);
    if (!c->in || !json_is_object(c->in)) {
        int parsed = c->in != NULL;
        json_decref(c->in);
        c->in = NULL;
        return l_fail(c, 400, "InvalidRequestContentException",
                      "Could not parse request body into json: %s (at byte %d)",
                      parsed ? "expected a JSON object" : je.text, je.position);
    }
    return 0;
}

/* An L_WORKER operation queued on a code worker (the request is deferred until it ran). */
typedef struct l_job {
    l_call_t c;
    l_handler_fn fn;
} l_job_t;

static void l_job_run(void *arg, int closed) {
    l_job_t *j = arg;
    l_call_t *c = &j->c;
    if (closed) {
        l_fail(c, 503, "ServiceException", "The server is shutting down; retry after it restarts");
    } else if (!l_parse_body(c)) {
        j->fn(c);   /* synchronous: these operations never defer */
        json_decref(c->in);
    }
    net_req_t *req = c->req;
    free(j);
    net_req_resume(req);
}

int api_lambda_handle(api_ctx_t *ctx, net_req_t *req) {
    l_call_t c = {.ctx = ctx, .req = req};
    const struct l_op *op = NULL;
    int path_known = 0;
    char seg[512];
    for (size_t i = 0; i < sizeof l_ops / sizeof l_ops[0]; i++) {
        if (!l_match(l_ops[i].pattern, req->path, seg, sizeof seg)) continue;
        path_known = 1;
        if (!strcmp(l_ops[i].method, req->method)) {
            op = &l_ops[i];
            break;
        }
    }
    if (!op) {
        l_fail(&c, path_known ? 405 : 404, "UnknownOperationException",
               "%s %s is not a Lambda operation this server implements; see README.md", req->method,
               req->path);
        return NET_DONE;
    }
    c.op = op->name;
    if (!ctx->fn) {
        l_fail(&c, 503, "ServiceException", "The functions engine is not running");
        return NET_DONE;
    }
    if (seg[0]) {
        char dec[512];
        if (pct_decode(seg, strlen(seg), dec, sizeof dec, 0)) {
            l_fail(&c, 400, "InvalidParameterValueException", "Malformed FunctionName in the path");
            return NET_DONE;
        }
        {
            tr_err err;
            tr_err_clear(&err);
            if (fn_name_parse(dec, c.name, c.qualifier, &err)) {
                l_error(&c, err.code, &err, NULL);
                return NET_DONE;
            }
            if (l_fn_owned(&c, dec, op->fn == l_invoke ? "InvokeFunction" : op->name))
                return NET_DONE;
            char q[130];
            if (l_query(req, "Qualifier", q, sizeof q) && q[0]) {
                if (c.qualifier[0] && strcmp(c.qualifier, q)) {
                    l_fail(&c, 400, "InvalidParameterValueException",
                           "The derived qualifier from the function name does not match the "
                           "specified qualifier.");
                    return NET_DONE;
                }
                snprintf(c.qualifier, sizeof c.qualifier, "%s", q);
            }
            if (c.qualifier[0] && strcmp(c.qualifier, "$LATEST") && op->fn != l_invoke) {
                l_fail(&c, 404, "ResourceNotFoundException",
                       "Function not found: arn:aws:lambda:%s:000000000000:function:%s:%s "
                       "(Tributary serves only $LATEST)",
                       ctx->region, c.name, c.qualifier);
                return NET_DONE;
            }
        }
    }
    if (op->json_body & L_WORKER) {
        l_job_t *j = malloc(sizeof *j);
        if (!j) abort();
        j->c = c;
        j->fn = op->fn;
        tr_err err;
        tr_err_clear(&err);
        int rc = fn_work_submit(ctx->fn, l_job_run, j, &err);
        if (!rc) return NET_DEFER;
        free(j);
        l_error(&c, rc, &err, "CallerRateLimitExceeded");
        return NET_DONE;
    }
    if (op->json_body && l_parse_body(&c)) return NET_DONE;
    int rc = op->fn(&c);
    json_decref(c.in);
    return rc == 1 ? NET_DEFER : NET_DONE;
}
