/* SPDX-License-Identifier: Apache-2.0
 *
 * native_host.c -- `tributary __fn-host`: the process a native function's library lives in.
 *
 * Started by the supervisor (native.c) with fd 3 a socketpair end, stdout/stderr a log pipe,
 * cwd the function's code directory and AWS's environment.  It:
 *   1. arranges to die with its parent (PR_SET_PDEATHSIG), enters its sandbox (sandbox.h: the
 *      Landlock ruleset the supervisor passed as fd 4, no_new_privs, no capabilities) and closes
 *      every other inherited fd;
 *   2. bounds its private writable memory to AWS_LAMBDA_FUNCTION_MEMORY_SIZE (RLIMIT_DATA);
 *   3. dlopen()s "$LAMBDA_TASK_ROOT/<file>.so" of _HANDLER "<file>.so:<symbol>" with
 *      RTLD_NOW | RTLD_LOCAL, finds the symbol, checks the optional module's ABI and runs its
 *      init -- each failure is one clear sentence in INIT_ERROR, then exit;
 *   4. answers INVOKE frames one at a time until EOF or SHUTDOWN.
 * Nothing here survives user code going wrong, and nothing needs to: the supervisor sees the
 * socket close, reaps the process and fails the invocation.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fn/native.h"
#include "fn/native_int.h"
#include "fn/sandbox.h"

/* ---- I/O ------------------------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static void send_frame(trf__buf_t *b) {
    fn_native__end(b);
    if (b->oom || write_all(FN_NATIVE_FD, b->data, b->len)) _exit(3);
}

static void init_error(const char *type, const char *msg) {
    trf__buf_t b = {0};
    fn_native__begin(&b, FN_NATIVE_INIT_ERROR);
    fn_native__cstr(&b, type);
    fn_native__cstr(&b, msg);
    send_frame(&b);
    fprintf(stderr, "%s: %s\n", type, msg);
    _exit(2);
}

/* Logs go to stderr, which the supervisor reads into the invocation's log. */
static void log_stderr(void *arg, const char *text, size_t len) {
    (void)arg;
    write_all(2, text, len);
}

static void close_inherited(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, FN_NATIVE_FD + 1, ~0U, 0) == 0) return;
#endif
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int keep = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd > FN_NATIVE_FD && fd != keep) close(fd);
    }
    closedir(d);
}

/* ---- tables: TABLE_CALL out, TABLE_REPLY in (see native_int.h) ------------------------------- */

static int table_send(void *arg, uint32_t id, const char *op, const char *req, size_t len) {
    trf__buf_t *b = arg;
    fn_native__begin(b, FN_NATIVE_TABLE_CALL);
    fn_native__u32(b, id);
    fn_native__cstr(b, op);
    fn_native__str(b, req, len);
    fn_native__end(b);
    if (b->oom || b->len - sizeof(fn_native_frame_hdr_t) > FN_NATIVE_MAX_FRAME) {
        b->oom = 0;
        return -1;
    }
    if (write_all(FN_NATIVE_FD, b->data, b->len)) _exit(3); /* the supervisor is gone */
    return 0;
}

static int table_recv(void *arg, uint32_t *id, int *status, char **resp, size_t *len) {
    (void)arg;
    fn_native_frame_hdr_t h;
    if (read_all(FN_NATIVE_FD, &h, sizeof h)) _exit(3);
    if (h.magic != FN_NATIVE_MAGIC || h.len > FN_NATIVE_MAX_FRAME ||
        h.type != FN_NATIVE_TABLE_REPLY)
        _exit(4);
    char *body = malloc(h.len + 1);
    if (!body || read_all(FN_NATIVE_FD, body, h.len)) _exit(5);
    body[h.len] = 0;
    fn_native_rd_t r = {body, h.len, 0};
    *id = fn_native__get_u32(&r);
    *status = (int)fn_native__get_u32(&r);
    size_t n = 0;
    const char *text = fn_native__get_str(&r, &n);
    if (r.bad) _exit(4);
    memmove(body, text, n); /* the response, in place, NUL-terminated */
    body[n] = 0;
    *resp = body;
    *len = n;
    return 0;
}

static const trf__table_io_t table_io = {table_send, table_recv};

/* ---- setup ----------------------------------------------------------------------------------- */

static trf_handler_fn load_handler(const trf_module_t **mod) {
    const char *spec = getenv("_HANDLER");
    const char *root = getenv("LAMBDA_TASK_ROOT");
    char msg[4096];
    if (!spec || !strchr(spec, ':')) {
        snprintf(msg, sizeof msg,
                 "Handler \"%s\" is not \"<file>.so:<symbol>\"; set Handler to "
                 "e.g. \"libmine.so:handler\" with UpdateFunctionConfiguration",
                 spec ? spec : "");
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    const char *colon = strrchr(spec, ':');
    char file[512], sym[256], path[1200];
    snprintf(file, sizeof file, "%.*s", (int)(colon - spec), spec);
    snprintf(sym, sizeof sym, "%s", colon + 1);
    if (!file[0] || !sym[0]) {
        snprintf(msg, sizeof msg, "Handler \"%s\" is not \"<file>.so:<symbol>\" (empty %s)", spec,
                 file[0] ? "symbol" : "file name");
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    if (strstr(file, "..") || file[0] == '/') {
        snprintf(msg, sizeof msg,
                 "Handler file \"%s\" must be a path inside the package (no "
                 "\"..\", not absolute)",
                 file);
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", file);
    if (access(path, F_OK) != 0) {
        int e = errno;
        snprintf(msg, sizeof msg,
                 "the package has no %s (Handler \"%s\"): cannot open %s: %s; "
                 "zip the library at the top level or fix Handler",
                 file, spec, path, strerror(e));
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(msg, sizeof msg,
                 "cannot load %s: %s; build it with tributary-cc (a shared "
                 "library for this machine) and ship its dependencies under lib/",
                 file, dlerror());
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    void *h = dlsym(lib, sym);
    if (!h) {
        snprintf(msg, sizeof msg,
                 "%s does not export the handler symbol \"%s\"; define it "
                 "non-static (int %s(const trf_event_t *, trf_context_t *)) or fix Handler",
                 file, sym, sym);
        init_error("Runtime.HandlerNotFound", msg);
    }
    const trf_module_t *(*modfn)(void) = (const trf_module_t *(*)(void))dlsym(lib,
                                                                              TRF_MODULE_SYMBOL);
    *mod = modfn ? modfn() : NULL;
    if (*mod && ((*mod)->abi == 0 || (*mod)->abi > TRF_ABI_VERSION)) {
        snprintf(msg, sizeof msg,
                 "%s was built for function ABI %u but this server implements "
                 "ABI %u; rebuild it against this server's <tributary/function.h>",
                 file, (*mod)->abi, TRF_ABI_VERSION);
        init_error("Runtime.InvalidEntrypoint", msg);
    }
    return (trf_handler_fn)h;
}

/* ---- invoke ---------------------------------------------------------------------------------- */

static void serve_invoke(trf__call_t *call, trf_handler_fn handler, const char *body, size_t len,
                         trf__buf_t *out) {
    fn_native_rd_t r = {body, len, 0};
    uint32_t kind = fn_native__get_u32(&r);
    call->ctx.deadline_ms = fn_native__get_i64(&r);
    call->ctx.request_id = fn_native__get_str(&r, NULL);
    call->ctx.invoked_function_arn = fn_native__get_str(&r, NULL);
    call->ctx.trace_id = fn_native__get_str(&r, NULL);

    trf__event_owned_t owned;
    memset(&owned, 0, sizeof owned);
    trf_event_t native_ev;
    trf_window_t window;
    trf_record_t *recs = NULL;
    const trf_event_t *ev = NULL;
    const char *bad = NULL;
    if (kind == TRF_EVENT_JSON) {
        size_t pl = 0;
        const char *payload = fn_native__get_str(&r, &pl);
        if (!r.bad && trf__event_from_json(&owned, payload, pl, &bad) == 0) ev = &owned.ev;
    } else {
        memset(&native_ev, 0, sizeof native_ev);
        native_ev.abi = TRF_ABI_VERSION;
        native_ev.kind = TRF_EVENT_KINESIS;
        native_ev.event_source_arn = fn_native__get_str(&r, NULL);
        native_ev.shard_id = fn_native__get_str(&r, NULL);
        native_ev.aws_region = fn_native__get_str(&r, NULL);
        if (fn_native__get_u32(&r)) {
            window.start_ms = fn_native__get_i64(&r);
            window.end_ms = fn_native__get_i64(&r);
            window.is_final = (int)fn_native__get_u32(&r);
            window.is_terminated_early = (int)fn_native__get_u32(&r);
            window.state = fn_native__get_str(&r, &window.state_len);
            native_ev.window = &window;
        }
        uint32_t n = fn_native__get_u32(&r);
        if (!r.bad && n <= r.left / 20) {
            recs = calloc(n ? n : 1, sizeof *recs);
            for (uint32_t i = 0; recs && i < n && !r.bad; i++) {
                recs[i].partition_key = fn_native__get_str(&r, &recs[i].partition_key_len);
                recs[i].data = (const uint8_t *)fn_native__get_str(&r, &recs[i].len);
                recs[i].sequence_number = fn_native__get_str(&r, NULL);
                recs[i].arrival_ms = fn_native__get_i64(&r);
            }
            native_ev.records = recs;
            native_ev.n_records = n;
            if (recs && !r.bad) ev = &native_ev;
        }
    }

    fn_native__begin(out, FN_NATIVE_RESULT);
    if (!ev) {
        trf__buf_t e = {0};
        trf__error_json(&e, "Runtime.InvalidEvent",
                        bad ? bad : "the runtime could not decode the event (out of memory?)");
        fn_native__u32(out, 1);
        fn_native__cstr(out, "Runtime.InvalidEvent");
        fn_native__str(out, e.data, e.len);
        trf__buf_free(&e);
    } else if (trf__call_run(call, handler, ev)) {
        fn_native__u32(out, 1);
        fn_native__cstr(out, "Runtime.OutOfMemory");
        fn_native__cstr(out, "{\"errorMessage\":\"out of memory building the response\","
                             "\"errorType\":\"Runtime.OutOfMemory\"}");
    } else {
        fn_native__u32(out, (uint32_t)call->failed);
        fn_native__cstr(out, call->failed ? call->error_type : "");
        fn_native__str(out, call->payload.data, call->payload.len);
    }
    fflush(stdout);
    fflush(stderr);
    free(recs);
    trf__event_owned_free(&owned);
    send_frame(out);
}

/* ---- main ------------------------------------------------------------------------------------ */

int fn_native_host_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *ppid = getenv("TRIBUTARY_FN_PARENT");
    if (ppid && atol(ppid) != (long)getppid()) _exit(1); /* the server died before prctl */
    signal(SIGPIPE, SIG_IGN);
    /* confined before any user code runs; the variable is the supervisor's (reserved) */
    const char *sb = getenv(FN_NATIVE_SANDBOX_ENV);
    int rfd = sb ? atoi(sb) : -1;
    unsetenv(FN_NATIVE_SANDBOX_ENV);
    const char *plan = getenv(FN_NATIVE_TMP_ENV);
    if (plan && *plan && fn_sandbox_tmp_apply(plan) == 0) setenv("TMPDIR", "/tmp", 1);
    unsetenv(FN_NATIVE_TMP_ENV);
    if (fn_sandbox_enter(rfd > FN_NATIVE_FD ? rfd : -1) != 0)
        init_error("Runtime.Unknown", "the function host cannot confine itself (no_new_privs, "
                                      "capabilities or Landlock refused); see the server log");
    close_inherited();
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *mem = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    long mb = mem ? atol(mem) : 0;
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's shadow memory is private writable: RLIMIT_DATA would refuse every later mmap. */
    if (0) {
#else
    if (mb > 0) {
#endif
        struct rlimit rl = {(rlim_t)mb << 20, (rlim_t)mb << 20};
        setrlimit(RLIMIT_DATA, &rl);
    }

    const trf_module_t *mod = NULL;
    trf_handler_fn handler = load_handler(&mod);

    trf__call_t call;
    memset(&call, 0, sizeof call);
    call.log_sink = log_stderr;
    static trf__buf_t table_frame;
    call.table_io = &table_io;
    call.table_arg = &table_frame;
    const char *fname = getenv("AWS_LAMBDA_FUNCTION_NAME");
    call.ctx.function_name = fname ? fname : "";
    call.ctx.function_version = "$LATEST";
    call.ctx.memory_mb = (uint32_t)(mb > 0 ? mb : 0);
    call.ctx.request_id = call.ctx.invoked_function_arn = call.ctx.trace_id = "";
    if (mod && mod->init) {
        trf__call_prepare(&call);
        int rc = mod->init(&call.ctx);
        if (rc) {
            char msg[128];
            snprintf(msg, sizeof msg, "the module's init returned %d", rc);
            init_error("Runtime.InitError", msg);
        }
    }
    trf__buf_t out = {0};
    fn_native__begin(&out, FN_NATIVE_READY);
    send_frame(&out);

    char *body = NULL;
    size_t cap = 0;
    for (;;) {
        fn_native_frame_hdr_t h;
        if (read_all(FN_NATIVE_FD, &h, sizeof h)) break;
        if (h.magic != FN_NATIVE_MAGIC || h.len > FN_NATIVE_MAX_FRAME) _exit(4);
        if (h.len + 1 > cap) {
            free(body);
            cap = h.len + 1;
            body = malloc(cap);
            if (!body) _exit(5);
        }
        if (read_all(FN_NATIVE_FD, body, h.len)) break;
        body[h.len] = 0;
        if (h.type == FN_NATIVE_SHUTDOWN) break;
        if (h.type != FN_NATIVE_INVOKE) _exit(4);
        serve_invoke(&call, handler, body, h.len, &out);
    }
    if (mod && mod->shutdown) {
        trf__call_prepare(&call);
        mod->shutdown(&call.ctx);
    }
    fflush(stdout);
    _exit(0);
}
