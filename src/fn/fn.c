/* SPDX-License-Identifier: Apache-2.0
 *
 * fn.c -- the functions engine's lifetime and its registry (see fn.h).
 *
 * The registry is an LMDB environment in DATA/functions with two databases:
 *
 *   "fn"  key: function name (bytes, no NUL)
 *         value: the configuration as a JSON object, version 1:
 *           {"v":1, "Runtime":s, "Handler":s, "Role":s, "Description":s, "Timeout":n,
 *            "MemorySize":n, "Env":[[k,v],...], "Architectures":[s...], "Ephemeral":n,
 *            "Reserved":n (-1 none), "CodeSha256":s (base64), "CodeHex":s, "CodeSize":n,
 *            "LastModified":ms, "RevisionId":s}
 *   "ev"  the durable queue of asynchronous invocations (layout in sched.c).
 *
 * Every change is one LMDB write transaction, committed (synced) before the call returns.
 *
 * Code storage.  Everything on disk derived from the registry (DATA/functions/<name>/ with its
 * code-<hex>.zip, code-<hex>/ and logs/) follows one rule: it is created before the commit that
 * references it and removed only after a commit that no longer references it, and what to
 * remove is decided under fn->mu from the registry's state in memory (code_gc_locked).  A
 * package being stored is *pinned* (fn->pins, name + hex) from before its first file until its
 * commit or failure, so the GC of a concurrent update, create or delete never takes it.  The GC
 * only renames under the lock (into DATA/functions/.trash-<uuid>); the slow removal runs after
 * unlocking.  Every failure path unpins and runs the GC, which removes what the call created
 * (the whole function directory when the name is not registered and nothing is pinned).  A
 * crash leaves at worst unreferenced files, removed at the next open.
 *
 * Packages are stored on the thread calling fn_create / fn_update_code; the HTTP adapter calls
 * those on the code workers (fn_work_submit: FN_CODE_WORKERS threads, at most FN_CODE_QUEUE
 * calls waiting) so a large package never holds a network thread.
 *
 * Cost: registry calls take the engine mutex only for the in-memory update, the LMDB commit and
 * the GC's renames; zip storage and unpacking (up to 250 MB) run outside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/mem.h"
#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/fn_int.h"

#define FN__MAPSIZE (8ULL << 30)

/* ---- small helpers ------------------------------------------------------------------------- */

/* "2024-01-02T03:04:05.678Z", or with aws_offset "2024-01-02T03:04:05.678+0000" (LastModified). */
void fn__iso_time(int64_t ms, char *out, size_t cap, int aws_offset) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03d%s", base, (int)(ms % 1000), aws_offset ? "+0000" : "Z");
}

/* ---- configuration structs ----------------------------------------------------------------- */

void fn_config_free(fn_config_t *c) {
    if (!c) return;
    free(c->runtime);
    free(c->handler);
    free(c->role);
    free(c->description);
    for (size_t i = 0; i < c->n_env; i++) {
        free(c->env[i].key);
        free(c->env[i].value);
    }
    free(c->env);
    for (size_t i = 0; i < c->n_architectures; i++) free(c->architectures[i]);
    free(c->architectures);
    free(c->code_dir);
    memset(c, 0, sizeof *c);
}

int fn__config_copy(fn_config_t *d, const fn_config_t *s) {
    *d = *s;
    d->runtime = tr_xstrdup(s->runtime);
    d->handler = tr_xstrdup(s->handler);
    d->role = tr_xstrdup(s->role);
    d->description = tr_xstrdup(s->description);
    d->code_dir = tr_xstrdup(s->code_dir);
    d->env = NULL;
    if (s->n_env) {
        d->env = tr_xcalloc(s->n_env, sizeof *d->env);
        for (size_t i = 0; i < s->n_env; i++) {
            d->env[i].key = tr_xstrdup(s->env[i].key);
            d->env[i].value = tr_xstrdup(s->env[i].value);
        }
    }
    d->architectures = NULL;
    if (s->n_architectures) {
        d->architectures = tr_xcalloc(s->n_architectures, sizeof *d->architectures);
        for (size_t i = 0; i < s->n_architectures; i++)
            d->architectures[i] = tr_xstrdup(s->architectures[i]);
    }
    return 0;
}

static void set_env(fn_config_t *c, const fn_env_var_t *env, size_t n) {
    for (size_t i = 0; i < c->n_env; i++) {
        free(c->env[i].key);
        free(c->env[i].value);
    }
    free(c->env);
    c->env = NULL;
    c->n_env = n;
    if (!n) return;
    c->env = tr_xcalloc(n, sizeof *c->env);
    for (size_t i = 0; i < n; i++) {
        c->env[i].key = tr_xstrdup(env[i].key);
        c->env[i].value = tr_xstrdup(env[i].value ? env[i].value : "");
    }
}

static void set_str(char **dst, const char *s) {
    free(*dst);
    *dst = tr_xstrdup(s);
}

/* ---- validation ---------------------------------------------------------------------------- */

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > FN_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int fn__runtime_is_provided(const char *rt) {
    return rt && (!strcmp(rt, "provided") || !strcmp(rt, "provided.al2") ||
                  !strcmp(rt, "provided.al2023"));
}

static int runtime_index(fn_t *fn, const char *rt) {
    for (size_t i = 0; i < fn->n_rts; i++)
        if (!strcmp(fn->rts[i].rt->name, rt)) return (int)i;
    return -1;
}

static const char *const reserved_env[] = {"_HANDLER",
                                           "_X_AMZN_TRACE_ID",
                                           "AWS_DEFAULT_REGION",
                                           "AWS_REGION",
                                           "AWS_EXECUTION_ENV",
                                           "AWS_LAMBDA_FUNCTION_NAME",
                                           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                                           "AWS_LAMBDA_FUNCTION_VERSION",
                                           "AWS_LAMBDA_INITIALIZATION_TYPE",
                                           "AWS_LAMBDA_LOG_GROUP_NAME",
                                           "AWS_LAMBDA_LOG_STREAM_NAME",
                                           "AWS_ACCESS_KEY",
                                           "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN",
                                           "AWS_LAMBDA_RUNTIME_API",
                                           "LAMBDA_TASK_ROOT",
                                           "LAMBDA_RUNTIME_DIR",
                                           NULL};

static int env_check(const fn_env_var_t *env, size_t n, tr_err *err) {
    size_t total = 0;
    char bad[512] = "";
    for (size_t i = 0; i < n; i++) {
        const char *k = env[i].key;
        size_t kl = k ? strlen(k) : 0;
        int ok = kl >= 2 && ((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= 'A' && k[0] <= 'Z'));
        for (size_t j = 1; ok && j < kl; j++) {
            char c = k[j];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_';
        }
        if (!ok)
            return tr_err_set(err, TR_EINVAL,
                              "Environment variable name '%.100s' is not valid: names start with "
                              "a letter and contain only letters, digits and '_' (at least 2 "
                              "characters)",
                              k ? k : "");
        for (const char *const *r = reserved_env; *r; r++)
            if (!strcmp(*r, k)) {
                size_t bl = strlen(bad);
                snprintf(bad + bl, sizeof bad - bl, "%s%s", bl ? ", " : "", k);
            }
        total += kl + (env[i].value ? strlen(env[i].value) : 0);
    }
    if (bad[0])
        return tr_err_set(err, TR_EINVAL,
                          "Lambda was unable to configure your environment variables because the "
                          "environment variables you have provided contains reserved keys that "
                          "are currently not supported for modification. Reserved keys used in "
                          "this request: %s",
                          bad);
    if (total > FN_MAX_ENV_BYTES)
        return tr_err_set(err, TR_EINVAL,
                          "Lambda was unable to configure your environment variables because the "
                          "environment variables you have provided exceeded the 4KB limit. String "
                          "measured: %zu bytes",
                          total);
    return 0;
}

static int limits_check(uint32_t timeout, uint32_t mem, tr_err *err) {
    if (timeout < 1 || timeout > 900)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%u' at 'timeout' failed to satisfy "
                          "constraint: Member must have value %s",
                          timeout,
                          timeout < 1 ? "greater than or equal to 1" : "less than or equal to 900");
    if (mem < 128 || mem > 10240)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%u' at 'memorySize' failed to "
                          "satisfy constraint: Member must have value %s",
                          mem,
                          mem < 128 ? "greater than or equal to 128"
                                    : "less than or equal to 10240");
    return 0;
}

static int runtime_check(fn_t *fn, const char *rt, tr_err *err) {
    if (!rt || !*rt)
        return tr_err_set(err, TR_EINVAL,
                          "Runtime is required for a .zip deployment package; use "
                          "provided.al2023 with an executable bootstrap");
    if (fn__runtime_is_provided(rt) || runtime_index(fn, rt) >= 0) return 0;
    char names[256] = "provided, provided.al2, provided.al2023";
    for (size_t i = 0; i < fn->n_rts; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, ", %s", fn->rts[i].rt->name);
    }
    return tr_err_set(err, TR_EINVAL,
                      "The runtime parameter of %.64s is not supported by Tributary; supported "
                      "runtimes: %s",
                      rt, names);
}

/* ---- (de)serialisation --------------------------------------------------------------------- */

static char *config_json(const fn_func_t *f) {
    const fn_config_t *c = &f->cfg;
    json_t *o = json_object();
    json_t *env = json_array(), *arch = json_array();
    for (size_t i = 0; i < c->n_env; i++)
        json_array_append_new(env, json_pack("[ss]", c->env[i].key, c->env[i].value));
    for (size_t i = 0; i < c->n_architectures; i++)
        json_array_append_new(arch, json_string(c->architectures[i]));
    json_object_set_new(o, "v", json_integer(1));
    json_object_set_new(o, "Runtime", json_string(c->runtime ? c->runtime : ""));
    json_object_set_new(o, "Handler", json_string(c->handler ? c->handler : ""));
    json_object_set_new(o, "Role", json_string(c->role ? c->role : ""));
    json_object_set_new(o, "Description", json_string(c->description ? c->description : ""));
    json_object_set_new(o, "Timeout", json_integer(c->timeout_s));
    json_object_set_new(o, "MemorySize", json_integer(c->memory_mb));
    json_object_set_new(o, "Env", env);
    json_object_set_new(o, "Architectures", arch);
    json_object_set_new(o, "Ephemeral", json_integer(c->ephemeral_mb));
    json_object_set_new(o, "Reserved", json_integer(c->reserved_concurrency));
    json_object_set_new(o, "CodeSha256", json_string(c->code_sha256));
    json_object_set_new(o, "CodeHex", json_string(f->code_hex));
    json_object_set_new(o, "CodeSize", json_integer((json_int_t)c->code_size));
    json_object_set_new(o, "LastModified", json_integer(c->last_modified_ms));
    json_object_set_new(o, "RevisionId", json_string(c->revision_id));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) abort();
    return s;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int config_parse(const char *name, const void *data, size_t len, fn_func_t *f, tr_err *err) {
    json_error_t je;
    json_t *o = json_loadb(data, len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return tr_err_set(err, TR_ECORRUPT, "function %s: stored configuration is not JSON (%s)",
                          name, je.text);
    }
    fn_config_t *c = &f->cfg;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->runtime = tr_xstrdup(jstr(o, "Runtime"));
    c->handler = tr_xstrdup(jstr(o, "Handler"));
    c->role = tr_xstrdup(jstr(o, "Role"));
    c->description = tr_xstrdup(jstr(o, "Description"));
    c->timeout_s = (uint32_t)json_integer_value(json_object_get(o, "Timeout"));
    c->memory_mb = (uint32_t)json_integer_value(json_object_get(o, "MemorySize"));
    c->ephemeral_mb = (uint32_t)json_integer_value(json_object_get(o, "Ephemeral"));
    c->reserved_concurrency = (int32_t)json_integer_value(json_object_get(o, "Reserved"));
    c->code_size = (uint64_t)json_integer_value(json_object_get(o, "CodeSize"));
    c->last_modified_ms = json_integer_value(json_object_get(o, "LastModified"));
    snprintf(c->code_sha256, sizeof c->code_sha256, "%s", jstr(o, "CodeSha256"));
    snprintf(c->revision_id, sizeof c->revision_id, "%s", jstr(o, "RevisionId"));
    snprintf(f->code_hex, sizeof f->code_hex, "%s", jstr(o, "CodeHex"));
    json_t *env = json_object_get(o, "Env");
    size_t n = json_array_size(env);
    if (n) {
        c->env = tr_xcalloc(n, sizeof *c->env);
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_array_get(env, i);
            c->env[i].key = tr_xstrdup(json_string_value(json_array_get(p, 0)));
            c->env[i].value = tr_xstrdup(json_string_value(json_array_get(p, 1)));
            if (!c->env[i].key) c->env[i].key = tr_xstrdup("");
            if (!c->env[i].value) c->env[i].value = tr_xstrdup("");
        }
        c->n_env = n;
    }
    json_t *arch = json_object_get(o, "Architectures");
    n = json_array_size(arch);
    if (n) {
        c->architectures = tr_xcalloc(n, sizeof *c->architectures);
        for (size_t i = 0; i < n; i++) {
            const char *a = json_string_value(json_array_get(arch, i));
            c->architectures[i] = tr_xstrdup(a ? a : "x86_64");
        }
        c->n_architectures = n;
    }
    json_decref(o);
    return 0;
}

/* ---- in-memory functions ------------------------------------------------------------------- */

static fn_func_t *func_new(void) {
    fn_func_t *f = tr_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->log_mu, NULL);
    f->log_fd = -1;
    atomic_init(&f->refs, 1);
    f->runtime = -1;
    return f;
}

static void func_free(fn_func_t *f) {
    fn__log_close(f);
    pthread_mutex_destroy(&f->log_mu);
    while (f->ev_head) {
        fn__ev_t *e = f->ev_head;
        f->ev_head = e->next;
        free(e);
    }
    fn_config_free(&f->cfg);
    free(f);
}

void fn__func_unref(fn_t *fn, fn_func_t *f) {
    (void)fn;
    if (atomic_fetch_sub(&f->refs, 1) == 1) func_free(f);
}

fn_func_t *fn__func_find(fn_t *fn, const char *name) {
    for (fn_func_t *f = fn->funcs; f; f = f->next) {
        int c = strcmp(f->cfg.name, name);
        if (c == 0) return f;
        if (c > 0) break;
    }
    return NULL;
}

static void func_link(fn_t *fn, fn_func_t *f) {
    fn_func_t **pp = &fn->funcs;
    while (*pp && strcmp((*pp)->cfg.name, f->cfg.name) < 0) pp = &(*pp)->next;
    f->next = *pp;
    *pp = f;
}

static void func_unlink(fn_t *fn, fn_func_t *f) {
    for (fn_func_t **pp = &fn->funcs; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            f->next = NULL;
            return;
        }
}

/* Derived fields: ARN, code_dir, runtime binding, metrics name. */
static void func_derive(fn_t *fn, fn_func_t *f) {
    fn_config_t *c = &f->cfg;
    snprintf(c->arn, sizeof c->arn, "arn:aws:lambda:%s:000000000000:function:%s", fn->region,
             c->name);
    char dir[FN__PATH];
    snprintf(dir, sizeof dir, "%s/%s/code-%s", fn->root, c->name, f->code_hex);
    set_str(&c->code_dir, dir);
    f->runtime = fn__runtime_is_provided(c->runtime) ? -1 : runtime_index(fn, c->runtime);
    snprintf(f->m.name, sizeof f->m.name, "%s", c->name);
}

static void func_snapshot(const fn_func_t *f, fn_config_t *out) {
    if (out) fn__config_copy(out, &f->cfg);
}

/* ---- LMDB ---------------------------------------------------------------------------------- */

static int lmdb_err(tr_err *err, int rc, const char *what) {
    return tr_err_set(err, rc == MDB_MAP_FULL ? TR_ELIMIT : TR_EIO, "functions registry: %s: %s",
                      what, mdb_strerror(rc));
}

/* Write (or delete when json NULL) one function record, committed. */
static int reg_write(fn_t *fn, const char *name, const char *json, fn_func_t *drop_events,
                     tr_err *err) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(fn->env, NULL, 0, &txn);
    if (rc) return lmdb_err(err, rc, "begin");
    MDB_val k = {strlen(name), (void *)name};
    if (json) {
        MDB_val v = {strlen(json), (void *)json};
        rc = mdb_put(txn, fn->db_fn, &k, &v, 0);
    } else {
        rc = mdb_del(txn, fn->db_fn, &k, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
        if (!rc && drop_events) fn__ev_drop_all(fn, drop_events, txn);
    }
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(err, rc, "write");
    }
    int fe = FN__FAULT("reg.commit");
    if (fe) {
        mdb_txn_abort(txn);
        return tr_err_set(err, TR_EIO, "functions registry: commit: %s", strerror(fe));
    }
    rc = mdb_txn_commit(txn);
    if (rc) return lmdb_err(err, rc, "commit");
    return 0;
}

/* ---- code storage: pins and GC ------------------------------------------------------------ */

static fn__pin_t *pin_find(fn_t *fn, const char *name, const char *hex) {
    for (size_t i = 0; i < fn->n_pins; i++)
        if (!strcmp(fn->pins[i].name, name) && (!hex || !strcmp(fn->pins[i].hex, hex)))
            return &fn->pins[i];
    return NULL;
}

/* Under fn->mu. */
static void pin_add(fn_t *fn, const char *name, const char *hex) {
    fn__pin_t *p = pin_find(fn, name, hex);
    if (!p) {
        fn__pin_t it;
        memset(&it, 0, sizeof it);
        snprintf(it.name, sizeof it.name, "%s", name);
        snprintf(it.hex, sizeof it.hex, "%s", hex);
        fn__todo_push((void **)&fn->pins, &fn->n_pins, &fn->cap_pins, sizeof it, &it);
        p = &fn->pins[fn->n_pins - 1];
    }
    p->n++;
}

/* Under fn->mu. */
static void pin_drop(fn_t *fn, const char *name, const char *hex) {
    fn__pin_t *p = pin_find(fn, name, hex);
    if (!p || --p->n) return;
    *p = fn->pins[--fn->n_pins];
}

/* Is the code-* entry e (of functions/<name>) in use: the registry's package or the previous one
 * (exact names only, so crash leftovers "code-<hex>.tmp-*" go), or any entry of a pinned hex? */
static int code_entry_live(fn_t *fn, const fn_func_t *f, const char *name, const char *e) {
    const char *h = e + 5;
    if (strlen(h) < 64) return 0;
    char hex[65];
    memcpy(hex, h, 64);
    hex[64] = 0;
    if (pin_find(fn, name, hex)) return 1;
    if (!f) return 0;
    const char *rest = h + 64;
    if (*rest && strcmp(rest, ".zip")) return 0;
    return !strcmp(hex, f->code_hex) || (f->prev_hex[0] && !strcmp(hex, f->prev_hex));
}

/* Move into trash (made on first use) what functions/<name> holds that the registry does not
 * reference and no store has pinned: with the function registered, its dead code-* entries;
 * without it, everything pinned stores do not need -- the whole directory when nothing is
 * pinned.  Under fn->mu; the caller removes trash (tr_rmtree) after unlocking.  Failures only
 * leave garbage for the next open to collect. */
static void code_gc_locked(fn_t *fn, const char *name, char trash[FN__PATH + 64]) {
    char dir[FN__PATH];
    snprintf(dir, sizeof dir, "%s/%s", fn->root, name);
    fn_func_t *f = fn__func_find(fn, name);
    int pinned = pin_find(fn, name, NULL) != NULL;
    if (!trash[0]) {
        char id[37];
        tr_uuid_v4(id);
        snprintf(trash, FN__PATH + 64, "%s/.trash-%s", fn->root, id);
    }
    if (!f && !pinned) {
        struct stat st;
        if (lstat(dir, &st) == 0 && rename(dir, trash) != 0)
            tr_warn("fn", "cannot remove %s: %s (removed at the next start)", dir, strerror(errno));
        return;
    }
    DIR *d = opendir(dir);
    if (!d) return;
    int made = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int code = !strncmp(e->d_name, "code-", 5);
        if (code ? code_entry_live(fn, f, name, e->d_name) : f != NULL) continue;
        if (!made && mkdir(trash, 0700) != 0 && errno != EEXIST) break;
        made = 1;
        char from[FN__PATH + 300], to[FN__PATH + 400];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", trash, e->d_name);
        if (rename(from, to) != 0)
            tr_warn("fn", "cannot remove %s: %s (removed at the next start)", from,
                    strerror(errno));
    }
    closedir(d);
}

/* Remove a trash directory filled by code_gc_locked (no lock held). */
static void trash_empty(const char *trash) {
    if (trash[0]) tr_rmtree(trash);
}

/* A store of (name, hex) is over (committed or failed): unpin it and collect under fn->mu. */
static void code_release_locked(fn_t *fn, const char *name, const char *hex,
                                char trash[FN__PATH + 64]) {
    pin_drop(fn, name, hex);
    code_gc_locked(fn, name, trash);
}

static int load_registry(fn_t *fn, tr_err *err) {
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(fn->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(err, rc, "begin");
    rc = mdb_cursor_open(txn, fn->db_fn, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return lmdb_err(err, rc, "cursor");
    }
    MDB_val k, v;
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        char name[FN_MAX_NAME + 1];
        if (k.mv_size > FN_MAX_NAME) continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = 0;
        fn_func_t *f = func_new();
        if (config_parse(name, v.mv_data, v.mv_size, f, err)) {
            func_free(f);
            mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            return err ? err->code : TR_ECORRUPT;
        }
        func_derive(fn, f);
        if (f->cfg.reserved_concurrency >= 0)
            fn->reserved_total += (uint64_t)f->cfg.reserved_concurrency;
        func_link(fn, f);
        char fdir[FN__PATH];
        snprintf(fdir, sizeof fdir, "%s/%s", fn->root, name);
        tr_err e2;
        tr_err_clear(&e2);
        if (fn__code_ensure(fdir, f->code_hex, fn->o.no_sync, &e2))
            tr_warn("fn", "function %s: %s (invocations will fail until its code is updated)", name,
                    e2.msg);
        char trash[FN__PATH + 64] = "";
        code_gc_locked(fn, name, trash);
        trash_empty(trash);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) return lmdb_err(err, rc, "scan");
    /* directories of functions the registry does not hold (a create that crashed) */
    DIR *d = opendir(fn->root);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!name_ok(e->d_name) || fn__func_find(fn, e->d_name)) continue;
            char trash[FN__PATH + 64] = "";
            code_gc_locked(fn, e->d_name, trash);
            trash_empty(trash);
        }
        closedir(d);
    }
    return 0;
}

/* ---- code workers (fn_work_submit) -------------------------------------------------------- */

struct fn__job {
    fn_work_fn run;
    void *arg;
    fn__job_t *next;
};

static void *job_worker(void *arg) {
    fn_t *fn = arg;
    pthread_mutex_lock(&fn->mu);
    for (;;) {
        while (!fn->job_head && !fn->jobs_stop) pthread_cond_wait(&fn->job_cv, &fn->mu);
        if (fn->jobs_stop) break;
        fn__job_t *j = fn->job_head;
        fn->job_head = j->next;
        if (!fn->job_head) fn->job_tail = NULL;
        fn->n_jobs--;
        pthread_mutex_unlock(&fn->mu);
        j->run(j->arg, 0);
        free(j);
        pthread_mutex_lock(&fn->mu);
    }
    pthread_mutex_unlock(&fn->mu);
    return NULL;
}

/* fn_shutdown: wait for the running calls, hand the queued ones closed = 1. */
static void jobs_stop(fn_t *fn) {
    pthread_mutex_lock(&fn->mu);
    fn->jobs_stop = 1;
    fn__job_t *q = fn->job_head;
    fn->job_head = fn->job_tail = NULL;
    fn->n_jobs = 0;
    int n = fn->n_workers;
    fn->n_workers = 0;
    pthread_cond_broadcast(&fn->job_cv);
    pthread_mutex_unlock(&fn->mu);
    for (int i = 0; i < n; i++) pthread_join(fn->workers[i], NULL);
    while (q) {
        fn__job_t *j = q;
        q = j->next;
        j->run(j->arg, 1);
        free(j);
    }
}

int fn_work_submit(fn_t *fn, fn_work_fn run, void *arg, tr_err *err) {
    if (!fn || !run) return tr_err_set(err, TR_EINVAL, "fn_work_submit: run is required");
    pthread_mutex_lock(&fn->mu);
    int rc = 0;
    if (fn->closing || fn->jobs_stop)
        rc = tr_err_set(err, TR_ECLOSED, "the server is shutting down; retry after it restarts");
    else if (fn->n_jobs >= FN_CODE_QUEUE)
        rc = tr_err_set(err, TR_ETHROTTLED,
                        "Rate exceeded: %u deployment packages are waiting to be stored; retry "
                        "shortly",
                        fn->n_jobs);
    while (!rc && fn->n_workers < FN_CODE_WORKERS) {
        int e = pthread_create(&fn->workers[fn->n_workers], NULL, job_worker, fn);
        if (e) {
            if (!fn->n_workers)
                rc = tr_err_set(err, TR_EIO, "cannot start a code worker thread: %s", strerror(e));
            break;
        }
        fn->n_workers++;
    }
    if (!rc) {
        fn__job_t *j = tr_xcalloc(1, sizeof *j);
        j->run = run;
        j->arg = arg;
        if (fn->job_tail) fn->job_tail->next = j;
        else fn->job_head = j;
        fn->job_tail = j;
        fn->n_jobs++;
        pthread_cond_signal(&fn->job_cv);
    }
    pthread_mutex_unlock(&fn->mu);
    return rc;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

int fn_open(const char *data_dir, const fn_opts_t *opts, fn_t **out, tr_err *err) {
    if (!data_dir || !out)
        return tr_err_set(err, TR_EINVAL, "fn_open: data_dir and out are required");
    *out = NULL;
    fn_t *fn = calloc(1, sizeof *fn);
    if (!fn) return tr_err_set(err, TR_ENOMEM, "out of memory");
    if (opts) fn->o = *opts;
    if (!fn->o.account_concurrency) fn->o.account_concurrency = 64;
    if (!fn->o.idle_instance_ms) fn->o.idle_instance_ms = 600000;
    if (!fn->o.init_timeout_ms) fn->o.init_timeout_ms = 10000;
    if (!fn->o.async_retry_ms) fn->o.async_retry_ms = 60000;
    if (!fn->o.async_retries) fn->o.async_retries = 2;
    else if (fn->o.async_retries == FN_NO_RETRIES) fn->o.async_retries = 0;
    if (!fn->o.log_max_bytes) fn->o.log_max_bytes = 64ULL << 20;
    snprintf(fn->region, sizeof fn->region, "%s", fn->o.region ? fn->o.region : "us-east-1");
    fn->o.region = fn->region;
    fn->wake[0] = fn->wake[1] = -1;
    pthread_mutex_init(&fn->mu, NULL);
    pthread_cond_init(&fn->job_cv, NULL);
    int rc = 0;
    if (snprintf(fn->root, sizeof fn->root, "%s/functions", data_dir) >= (int)sizeof fn->root) {
        rc = tr_err_set(err, TR_EINVAL, "data directory path is too long");
        goto fail;
    }
    if (mkdir(fn->root, 0700) != 0 && errno != EEXIST) {
        rc = tr_err_set(err, TR_EIO, "cannot create %s: %s; check the data directory's permissions",
                        fn->root, strerror(errno));
        goto fail;
    }
    if ((rc = mdb_env_create(&fn->env)) || (rc = mdb_env_set_maxdbs(fn->env, 4)) ||
        (rc = mdb_env_set_mapsize(fn->env, FN__MAPSIZE)) ||
        (rc = mdb_env_open(fn->env, fn->root, MDB_NOTLS | (fn->o.no_sync ? MDB_NOSYNC : 0),
                           0600))) {
        rc = tr_err_set(err, TR_EIO, "cannot open the functions registry in %s: %s", fn->root,
                        mdb_strerror(rc));
        goto fail;
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(fn->env, NULL, 0, &txn))) {
        rc = lmdb_err(err, rc, "begin");
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, "fn", MDB_CREATE, &fn->db_fn)) ||
        (rc = mdb_dbi_open(txn, "ev", MDB_CREATE, &fn->db_ev)) || (rc = mdb_txn_commit(txn))) {
        rc = lmdb_err(err, rc, "open databases");
        goto fail;
    }
    /* leftovers of interrupted deletes */
    DIR *d = opendir(fn->root);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, ".trash-", 7)) continue;
            char p[FN__PATH + 300];
            snprintf(p, sizeof p, "%s/%s", fn->root, e->d_name);
            tr_rmtree(p);
        }
        closedir(d);
    }
    if ((rc = load_registry(fn, err))) goto fail;
    if ((rc = fn__ev_load(fn, err))) goto fail;
    *out = fn;
    return 0;
fail:
    fn_close(fn);
    return rc < 0 ? rc : TR_EIO;
}

void fn_set_rt_listener(fn_t *fn, const fn_rt_listener_t *l) {
    pthread_mutex_lock(&fn->mu);
    if (l) fn->rtl = *l;
    else memset(&fn->rtl, 0, sizeof fn->rtl);
    pthread_mutex_unlock(&fn->mu);
}

int fn_start(fn_t *fn, const char *runtime_api, tr_err *err) {
    if (!fn || (!runtime_api && !fn->rtl.open))
        return tr_err_set(err, TR_EINVAL,
                          "fn_start: a runtime_api address or a listener is required");
    pthread_mutex_lock(&fn->mu);
    snprintf(fn->runtime_api, sizeof fn->runtime_api, "%s", runtime_api ? runtime_api : "");
    for (fn_func_t *f = fn->funcs; f; f = f->next)
        f->runtime = fn__runtime_is_provided(f->cfg.runtime) ? -1
                                                             : runtime_index(fn, f->cfg.runtime);
    pthread_mutex_unlock(&fn->mu);
    int rc = fn__sup_start(fn, err);
    if (rc) return rc;
    pthread_mutex_lock(&fn->mu);
    fn->started = 1;
    fn__todo_t t = FN__TODO_INIT;
    for (fn_func_t *f = fn->funcs; f; f = f->next) fn__dispatch(fn, f, &t);
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    return 0;
}

void fn_shutdown(fn_t *fn) {
    if (!fn) return;
    pthread_mutex_lock(&fn->mu);
    if (fn->shut) {
        pthread_mutex_unlock(&fn->mu);
        return;
    }
    fn->shut = 1;
    fn->closing = 1;
    fn__todo_t t = FN__TODO_INIT;
    for (fn_func_t *f = fn->funcs; f; f = f->next)
        fn__func_retire_all(fn, f, TR_ECLOSED, "the server is shutting down", &t);
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    fn__sup_stop(fn);   /* reaps the killed instances */
    jobs_stop(fn);
    for (size_t i = 0; i < fn->n_rts; i++)
        if (fn->rts[i].rt->shutdown) fn->rts[i].rt->shutdown(fn->rts[i].arg);
}

void fn_close(fn_t *fn) {
    if (!fn) return;
    fn_shutdown(fn);
    if (fn->wake[0] >= 0) close(fn->wake[0]);
    if (fn->wake[1] >= 0) close(fn->wake[1]);
    while (fn->funcs) {
        fn_func_t *f = fn->funcs;
        fn->funcs = f->next;
        fn__func_unref(fn, f);
    }
    free(fn->grave);
    free(fn->pins);
    if (fn->env) mdb_env_close(fn->env);
    pthread_cond_destroy(&fn->job_cv);
    pthread_mutex_destroy(&fn->mu);
    free(fn);
}

const char *fn_dir(fn_t *fn) { return fn->root; }
const char *fn_region(fn_t *fn) { return fn->region; }

int fn_runtime_register(fn_t *fn, const fn_runtime_t *rt, void *arg, tr_err *err) {
    if (!fn || !rt || !rt->name || !rt->invoke)
        return tr_err_set(err, TR_EINVAL, "fn_runtime_register: name and invoke are required");
    pthread_mutex_lock(&fn->mu);
    int rc = 0;
    if (fn__runtime_is_provided(rt->name) || runtime_index(fn, rt->name) >= 0)
        rc = tr_err_set(err, TR_EEXISTS, "runtime %s is already registered", rt->name);
    else if (fn->n_rts == FN__MAX_RUNTIMES)
        rc = tr_err_set(err, TR_ELIMIT, "at most %d plug-in runtimes", FN__MAX_RUNTIMES);
    else {
        fn->rts[fn->n_rts].rt = rt;
        fn->rts[fn->n_rts].arg = arg;
        fn->n_rts++;
        for (fn_func_t *f = fn->funcs; f; f = f->next)
            if (!strcmp(f->cfg.runtime, rt->name)) f->runtime = (int)fn->n_rts - 1;
    }
    pthread_mutex_unlock(&fn->mu);
    return rc;
}

/* ---- registry operations ------------------------------------------------------------------- */

static int not_found(fn_t *fn, const char *name, tr_err *err) {
    return tr_err_set(err, TR_ENOTFOUND,
                      "Function not found: arn:aws:lambda:%s:000000000000:function:%s", fn->region,
                      name);
}

/* Store the package for function `name` outside the lock; fills hex/b64.  On success the
 * package is pinned: the caller commits and then calls code_release_locked under fn->mu.  On
 * failure nothing of it is left (unpinned and collected here). */
static int code_put(fn_t *fn, const char *name, const uint8_t *zip, size_t len, char hex[65],
                    char b64[45], tr_err *err) {
    if (!zip || !len)
        return tr_err_set(err, TR_EINVAL,
                          "Code.ZipFile is required (a base64 .zip holding an "
                          "executable bootstrap)");
    if (len > FN_MAX_ZIP)
        return tr_err_set(err, TR_ETOOBIG,
                          "the zip is %zu bytes; a package uploaded directly must be at most %d "
                          "bytes (AWS: 50 MB)",
                          len, FN_MAX_ZIP);
    fn__sha256(zip, len, hex, b64);
    pthread_mutex_lock(&fn->mu);
    pin_add(fn, name, hex);
    pthread_mutex_unlock(&fn->mu);
    char dir[FN__PATH];
    snprintf(dir, sizeof dir, "%s/%s", fn->root, name);
    int rc = 0, fe = FN__FAULT("fn.mkdir");
    if (!fe && mkdir(dir, 0700) == 0) {
        /* the registry will name it: make the name durable */
        fe = FN__FAULT("fn.fsync");
        if (fe || (!fn->o.no_sync && tr_fsync_dir(fn->root) != 0))
            rc = tr_err_set(err, TR_EIO, "cannot sync %s: %s", fn->root, strerror(fe ? fe : errno));
    } else if (fe || errno != EEXIST) {
        rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", dir, strerror(fe ? fe : errno));
    }
    if (!rc) rc = fn__code_store(dir, hex, zip, len, fn->o.no_sync, err);
    if (rc) {
        char trash[FN__PATH + 64] = "";
        pthread_mutex_lock(&fn->mu);
        code_release_locked(fn, name, hex, trash);
        pthread_mutex_unlock(&fn->mu);
        trash_empty(trash);
    }
    return rc;
}

int fn_create(fn_t *fn, const fn_config_t *cfg, const uint8_t *zip, size_t zip_len,
              fn_config_t *out, tr_err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!fn || !cfg) return tr_err_set(err, TR_EINVAL, "fn_create: cfg is required");
    if (!name_ok(cfg->name))
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%.100s' at 'functionName' failed "
                          "to satisfy constraint: Member must satisfy regular expression pattern: "
                          "[a-zA-Z0-9-_]+ (1-64 characters)",
                          cfg->name);
    uint32_t timeout = cfg->timeout_s ? cfg->timeout_s : 3;
    uint32_t mem = cfg->memory_mb ? cfg->memory_mb : 128;
    int rc;
    if ((rc = limits_check(timeout, mem, err))) return rc;
    if ((rc = env_check(cfg->env, cfg->n_env, err))) return rc;
    pthread_mutex_lock(&fn->mu);
    rc = runtime_check(fn, cfg->runtime, err);
    if (!rc && fn__func_find(fn, cfg->name))
        rc = tr_err_set(err, TR_EEXISTS, "Function already exist: %s", cfg->name);
    pthread_mutex_unlock(&fn->mu);
    if (rc) return rc;

    char hex[65], b64[45];
    if ((rc = code_put(fn, cfg->name, zip, zip_len, hex, b64, err))) return rc;

    fn_func_t *f = func_new();
    fn__config_copy(&f->cfg, cfg);
    fn_config_t *c = &f->cfg;
    free(c->code_dir);
    c->code_dir = NULL;
    c->timeout_s = timeout;
    c->memory_mb = mem;
    if (!c->ephemeral_mb) c->ephemeral_mb = 512;
    if (!c->handler) c->handler = tr_xstrdup("");
    if (!c->role) c->role = tr_xstrdup("");
    if (!c->description) c->description = tr_xstrdup("");
    if (!c->n_architectures) {
        c->architectures = tr_xcalloc(1, sizeof *c->architectures);
        c->architectures[0] = tr_xstrdup("x86_64");
        c->n_architectures = 1;
    }
    c->reserved_concurrency = FN_NO_RESERVED;
    snprintf(c->code_sha256, sizeof c->code_sha256, "%s", b64);
    snprintf(f->code_hex, sizeof f->code_hex, "%s", hex);
    c->code_size = zip_len;
    c->last_modified_ms = tr_now_ms();
    tr_uuid_v4(c->revision_id);

    char trash[FN__PATH + 64] = "";
    pthread_mutex_lock(&fn->mu);
    func_derive(fn, f);
    if (fn->closing) rc = tr_err_set(err, TR_ECLOSED, "the server is shutting down");
    else if (fn__func_find(fn, c->name))
        rc = tr_err_set(err, TR_EEXISTS, "Function already exist: %s", c->name);
    if (!rc) {
        char *json = config_json(f);
        rc = reg_write(fn, c->name, json, NULL, err);
        free(json);
    }
    if (!rc) {
        func_link(fn, f);
        fn__log_open(fn, f);
        func_snapshot(f, out);
        tr_info("fn", "created function %s (%s, %llu bytes, sha256 %s)", c->name, c->runtime,
                (unsigned long long)c->code_size, c->code_sha256);
    }
    code_release_locked(fn, cfg->name, hex, trash);
    pthread_mutex_unlock(&fn->mu);
    trash_empty(trash);
    if (rc) func_free(f);
    return rc;
}

int fn_get(fn_t *fn, const char *name, fn_config_t *out, tr_err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!fn || !name) return tr_err_set(err, TR_EINVAL, "fn_get: name is required");
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    int rc = f ? 0 : not_found(fn, name, err);
    if (f) func_snapshot(f, out);
    pthread_mutex_unlock(&fn->mu);
    return rc;
}

int fn_list(fn_t *fn, const char *marker, size_t max, fn_config_t **out, size_t *n, char **next,
            tr_err *err) {
    if (!fn || !out || !n) return tr_err_set(err, TR_EINVAL, "fn_list: out and n are required");
    *out = NULL;
    *n = 0;
    if (next) *next = NULL;
    if (max == 0) max = 50;
    pthread_mutex_lock(&fn->mu);
    size_t cap = 0;
    for (fn_func_t *f = fn->funcs; f; f = f->next) cap++;
    fn_config_t *arr = tr_xcalloc(cap ? (cap < max ? cap : max) : 1, sizeof *arr);
    size_t k = 0;
    fn_func_t *f = fn->funcs;
    while (f && marker && *marker && strcmp(f->cfg.name, marker) <= 0) f = f->next;
    for (; f && k < max; f = f->next) func_snapshot(f, &arr[k++]);
    if (f && k && next) *next = tr_xstrdup(arr[k - 1].name);
    pthread_mutex_unlock(&fn->mu);
    *out = arr;
    *n = k;
    return 0;
}

/* Apply a change under the lock: persist, bump the generation, retire old instances. */
static int commit_change(fn_t *fn, fn_func_t *f, fn_config_t *out, tr_err *err, fn__todo_t *t) {
    f->cfg.last_modified_ms = tr_now_ms();
    tr_uuid_v4(f->cfg.revision_id);
    char *json = config_json(f);
    int rc = reg_write(fn, f->cfg.name, json, NULL, err);
    free(json);
    if (rc) return rc;
    f->gen++;
    fn__func_retire_all(fn, f, 0, "configuration changed", t);
    func_snapshot(f, out);
    return 0;
}

int fn_update_code(fn_t *fn, const char *name, const uint8_t *zip, size_t zip_len,
                   const char *revision_id, fn_config_t *out, tr_err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!fn || !name) return tr_err_set(err, TR_EINVAL, "fn_update_code: name is required");
    pthread_mutex_lock(&fn->mu);
    int rc = fn__func_find(fn, name) ? 0 : not_found(fn, name, err);
    pthread_mutex_unlock(&fn->mu);
    if (rc) return rc;
    char hex[65], b64[45];
    if ((rc = code_put(fn, name, zip, zip_len, hex, b64, err))) return rc;

    fn__todo_t t = FN__TODO_INIT;
    char old_hex[65] = "", trash[FN__PATH + 64] = "";
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    if (!f) rc = not_found(fn, name, err);
    else if (revision_id && *revision_id && strcmp(revision_id, f->cfg.revision_id))
        rc = tr_err_set(err, TR_ECONDITION,
                        "The Revision Id provided does not match the latest Revision Id. Call the "
                        "GetFunction/GetAlias API to retrieve the latest Revision Id");
    if (!rc) {
        snprintf(old_hex, sizeof old_hex, "%s", f->code_hex);
        char save_hex[65], save_b64[45];
        uint64_t save_size = f->cfg.code_size;
        memcpy(save_hex, f->code_hex, sizeof save_hex);
        memcpy(save_b64, f->cfg.code_sha256, sizeof save_b64);
        snprintf(f->code_hex, sizeof f->code_hex, "%s", hex);
        snprintf(f->cfg.code_sha256, sizeof f->cfg.code_sha256, "%s", b64);
        f->cfg.code_size = zip_len;
        rc = commit_change(fn, f, out, err, &t);
        if (rc) {
            memcpy(f->code_hex, save_hex, sizeof save_hex);
            memcpy(f->cfg.code_sha256, save_b64, sizeof save_b64);
            f->cfg.code_size = save_size;
        } else {
            if (strcmp(old_hex, hex)) memcpy(f->prev_hex, old_hex, sizeof f->prev_hex);
            func_derive(fn, f);
            if (out) set_str(&out->code_dir, f->cfg.code_dir);
            tr_info("fn", "updated code of %s (sha256 %s)", name, b64);
        }
    }
    code_release_locked(fn, name, hex, trash);
    pthread_mutex_unlock(&fn->mu);
    trash_empty(trash);
    fn__todo_run(fn, &t);
    return rc;
}

int fn_update_config(fn_t *fn, const char *name, const fn_config_update_t *u, fn_config_t *out,
                     tr_err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!fn || !name || !u)
        return tr_err_set(err, TR_EINVAL, "fn_update_config: name and update are required");
    int rc;
    if (u->has_env && (rc = env_check(u->env, u->n_env, err))) return rc;
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    if (!f) {
        rc = not_found(fn, name, err);
        goto leave;
    }
    if (u->revision_id && *u->revision_id && strcmp(u->revision_id, f->cfg.revision_id)) {
        rc = tr_err_set(err, TR_ECONDITION,
                        "The Revision Id provided does not match the latest Revision Id. Call the "
                        "GetFunction/GetAlias API to retrieve the latest Revision Id");
        goto leave;
    }
    uint32_t timeout = u->has_timeout ? u->timeout_s : f->cfg.timeout_s;
    uint32_t mem = u->has_memory ? u->memory_mb : f->cfg.memory_mb;
    if ((rc = limits_check(timeout, mem, err))) goto leave;
    if (u->has_runtime && (rc = runtime_check(fn, u->runtime, err))) goto leave;
    fn_config_t save;
    fn__config_copy(&save, &f->cfg);
    if (u->has_runtime) set_str(&f->cfg.runtime, u->runtime);
    if (u->has_handler) set_str(&f->cfg.handler, u->handler ? u->handler : "");
    if (u->has_role) set_str(&f->cfg.role, u->role ? u->role : "");
    if (u->has_description) set_str(&f->cfg.description, u->description ? u->description : "");
    f->cfg.timeout_s = timeout;
    f->cfg.memory_mb = mem;
    if (u->has_env) set_env(&f->cfg, u->env, u->n_env);
    rc = commit_change(fn, f, out, err, &t);
    if (rc) {
        fn_config_free(&f->cfg);
        f->cfg = save;
    } else {
        fn_config_free(&save);
        func_derive(fn, f);
    }
leave:
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    return rc;
}

int fn_delete(fn_t *fn, const char *name, tr_err *err) {
    if (!fn || !name) return tr_err_set(err, TR_EINVAL, "fn_delete: name is required");
    fn__todo_t t = FN__TODO_INIT;
    char trash[FN__PATH + 64] = "";
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    int rc = f ? reg_write(fn, name, NULL, f, err) : not_found(fn, name, err);
    if (!rc) {
        func_unlink(fn, f);
        f->deleted = 1;
        if (f->cfg.reserved_concurrency >= 0)
            fn->reserved_total -= (uint64_t)f->cfg.reserved_concurrency;
        fn__func_retire_all(fn, f, TR_ENOTFOUND, "the function was deleted", &t);
        pthread_mutex_lock(&f->log_mu);
        fn__log_close(f);
        pthread_mutex_unlock(&f->log_mu);
        code_gc_locked(fn, name, trash);
        fn__func_unref(fn, f);
        tr_info("fn", "deleted function %s", name);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    trash_empty(trash);
    for (size_t i = 0; !rc && i < fn->n_rts; i++)
        if (fn->rts[i].rt->release) fn->rts[i].rt->release(fn->rts[i].arg, name);
    return rc;
}

/* ---- reserved concurrency ------------------------------------------------------------------ */

int fn_concurrency_put(fn_t *fn, const char *name, int32_t n, tr_err *err) {
    if (!fn || !name) return tr_err_set(err, TR_EINVAL, "fn_concurrency_put: name is required");
    if (n < 0)
        return tr_err_set(
            err, TR_EVALIDATION,
            "1 validation error detected: Value '%d' at 'reservedConcurrentExecutions' "
            "failed to satisfy constraint: Member must have value greater than or "
            "equal to 0",
            n);
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    int rc = 0;
    if (!f) {
        rc = not_found(fn, name, err);
        goto leave;
    }
    uint64_t others = fn->reserved_total - (f->cfg.reserved_concurrency >= 0
                                                ? (uint64_t)f->cfg.reserved_concurrency
                                                : 0);
    uint64_t room = fn->o.account_concurrency > others + fn->o.unreserved_min
                        ? fn->o.account_concurrency - others - fn->o.unreserved_min
                        : 0;
    if ((uint64_t)n > room) {
        rc = tr_err_set(err, TR_ELIMIT,
                        "Specified ReservedConcurrentExecutions for function decreases account's "
                        "UnreservedConcurrentExecution below its minimum value of [%u]. At most "
                        "%llu can be reserved for %s (account limit %u, reserved by others %llu).",
                        fn->o.unreserved_min, (unsigned long long)room, name,
                        fn->o.account_concurrency, (unsigned long long)others);
        goto leave;
    }
    int32_t old = f->cfg.reserved_concurrency;
    f->cfg.reserved_concurrency = n;
    char *json = config_json(f);
    rc = reg_write(fn, name, json, NULL, err);
    free(json);
    if (rc) {
        f->cfg.reserved_concurrency = old;
        goto leave;
    }
    fn->reserved_total = others + (uint64_t)n;
    fn__dispatch(fn, f, &t);
leave:
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    return rc;
}

int fn_concurrency_delete(fn_t *fn, const char *name, tr_err *err) {
    if (!fn || !name) return tr_err_set(err, TR_EINVAL, "fn_concurrency_delete: name is required");
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    int rc = 0;
    if (!f) rc = not_found(fn, name, err);
    else if (f->cfg.reserved_concurrency >= 0) {
        int32_t old = f->cfg.reserved_concurrency;
        f->cfg.reserved_concurrency = FN_NO_RESERVED;
        char *json = config_json(f);
        rc = reg_write(fn, name, json, NULL, err);
        free(json);
        if (rc) f->cfg.reserved_concurrency = old;
        else {
            fn->reserved_total -= (uint64_t)old;
            fn__dispatch(fn, f, &t);
        }
    }
    pthread_mutex_unlock(&fn->mu);
    fn__todo_run(fn, &t);
    return rc;
}

int fn_concurrency_get(fn_t *fn, const char *name, int32_t *n, tr_err *err) {
    if (!fn || !name || !n)
        return tr_err_set(err, TR_EINVAL, "fn_concurrency_get: name and n are required");
    pthread_mutex_lock(&fn->mu);
    fn_func_t *f = fn__func_find(fn, name);
    int rc = f ? 0 : not_found(fn, name, err);
    if (f) *n = f->cfg.reserved_concurrency;
    pthread_mutex_unlock(&fn->mu);
    return rc;
}

/* ---- names and ARNs ------------------------------------------------------------------------ */

int fn_name_parse(const char *in, char *name, char *qualifier, tr_err *err) {
    name[0] = qualifier[0] = 0;
    if (!in || !*in || strlen(in) > 170)
        return tr_err_set(err, TR_EVALIDATION,
                          "1 validation error detected: Value '%.100s' at 'functionName' failed to "
                          "satisfy constraint: Member must have length between 1 and 170",
                          in ? in : "");
    char buf[200];
    snprintf(buf, sizeof buf, "%s", in);
    char *parts[9];
    int n = 0;
    for (char *c = buf;;) {
        if (n == 9) {
            n++;   /* too many fields */
            break;
        }
        parts[n++] = c;
        char *colon = strchr(c, ':');
        if (!colon) break;
        *colon = 0;
        c = colon + 1;
    }
    const char *nm = NULL, *q = NULL;
    if (n >= 7 && !strcmp(parts[0], "arn") && !strncmp(parts[1], "aws", 3) &&
        !strcmp(parts[2], "lambda") && !strcmp(parts[5], "function") && n <= 8) {
        nm = parts[6];
        q = n == 8 ? parts[7] : NULL;
    } else if ((n == 3 || n == 4) && strlen(parts[0]) == 12 && !strcmp(parts[1], "function")) {
        nm = parts[2];
        q = n == 4 ? parts[3] : NULL;
    } else if (n == 1 || n == 2) {
        nm = parts[0];
        q = n == 2 ? parts[1] : NULL;
    }
    if (!nm || !name_ok(nm) || (q && (!*q || strlen(q) > 128)))
        return tr_err_set(
            err, TR_EVALIDATION,
            "1 validation error detected: Value '%.170s' at 'functionName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
            "(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
            in);
    snprintf(name, FN_MAX_NAME + 1, "%s", nm);
    if (q) snprintf(qualifier, 130, "%s", q);
    return 0;
}
