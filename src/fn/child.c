/* SPDX-License-Identifier: Apache-2.0
 *
 * child.c -- the `provided` runtimes: `bootstrap` child processes and the engine side of the
 * Lambda Runtime API (fn_rt_*).
 *
 * An instance is one child process: fork, a new process group, stdin /dev/null, stdout and
 * stderr into one pipe, every other descriptor closed, cwd = the unpacked code, AWS's
 * environment, RLIMIT_DATA = MemorySize, then execve(code/bootstrap).  Its life:
 *
 *     SPAWNING --fork--> INIT --/next--> IDLE --work--> BUSY --/response|/error--> READY
 *                                         ^                                          |
 *                                         +------------------- /next ----------------+
 *     any state --timeout, crash, retire, delete, idle expiry--> DEAD --reaped--> freed
 *
 * A killed instance gets SIGKILL on its whole process group (curl children of a shell
 * bootstrap die too).  Instances are freed only by the supervisor thread, after waitpid, so
 * pointers to them stay valid while fn->mu is held.
 *
 * The supervisor thread polls: the wake pipe, each instance's output pipe (lines go to the
 * function log with the request id of the invocation running at the time) and its pidfd
 * (readable at exit), with the nearest deadline (invocation timeout, init timeout, idle expiry,
 * async retry) as the poll timeout.  Output still in the pipe when an instance answers is read
 * before the answer is processed, so a function's last lines land in its own log tail.
 *
 * Cost: one fork+exec per cold start (~1 ms plus the bootstrap's own start-up); a warm
 * invocation costs two HTTP round trips on the Runtime API listener and no process work.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/tlog.h"
#include "core/uuid.h"
#include "fn/fn_int.h"
#include "fn/sandbox.h"

#define LINE_MAX_BYTES (256 * 1024)

/* ---- instances ----------------------------------------------------------------------------- */

fn_inst_t *fn__inst_new(fn_t *fn, fn_func_t *f) {
    fn_inst_t *in = calloc(1, sizeof *in);
    if (!in) abort();
    in->func = f;
    atomic_fetch_add(&f->refs, 1);
    in->gen = f->gen;
    char id[37];
    tr_uuid_v4(id);
    for (int i = 0, k = 0; id[i] && k < FN_TOKEN_LEN; i++)
        if (id[i] != '-') in->token[k++] = id[i];
    in->token[FN_TOKEN_LEN] = 0;
    in->pid = 0;
    in->pidfd = in->out_fd = -1;
    in->state = FN__INST_SPAWNING;
    in->next = fn->insts;
    fn->insts = in;
    f->n_insts++;
    return in;
}

fn_inst_t *fn__inst_by_token(fn_t *fn, const char *token) {
    if (!token) return NULL;
    for (fn_inst_t *in = fn->insts; in; in = in->next)
        if (!strcmp(in->token, token)) return in;
    return NULL;
}

/* Start the head of the queue just to fail it: an instance could not start for it (AWS reports
 * init failures on the invocation that waited). */
static void fail_head(fn_t *fn, fn_func_t *f, const char *type, const char *msg,
                      const uint8_t *body, size_t body_len, fn__todo_t *t) {
    fn_inv_t *inv = fn__q_pop(fn, f);
    if (!inv) return;
    fn__inv_mark_running(fn, inv);
    tr_buf b = TR_BUF_INIT;
    if (!body || !body_len) {
        char m[512];
        snprintf(m, sizeof m, "RequestId: %s Error: %s", inv->request_id, msg);
        tr_buf_puts(&b, "{\"errorType\":");
        tr_buf_json_str(&b, type, strlen(type));
        tr_buf_puts(&b, ",\"errorMessage\":");
        tr_buf_json_str(&b, m, strlen(m));
        tr_buf_puts(&b, "}");
        body = (const uint8_t *)b.data;
        body_len = b.len;
        fn__log_line(fn, f, inv, m, strlen(m));
    }
    char note[128];
    snprintf(note, sizeof note, "Status: error\tError Type: %s", type);
    fn__inv_finish(fn, inv, "Unhandled", body, body_len, note, t);
    tr_buf_free(&b);
}

/* Mark dead (engine's decision or observed exit).  Does not free. */
static int inst_mark_dead(fn_t *fn, fn_inst_t *in, fn__todo_t *t) {
    if (in->state == FN__INST_DEAD) return -1;
    int prev = in->state;
    in->state = FN__INST_DEAD;
    if (in->func->n_insts) in->func->n_insts--;
    if (in->next_cb) {
        fn__next_call_t c = {in->next_cb, in->next_arg, TR_ECLOSED, NULL};
        FN__TODO_ADD(t, next, c);
        in->next_cb = NULL;
    }
    (void)fn;
    return prev;
}

void fn__inst_kill(fn_t *fn, fn_inst_t *in, const char *why, fn__todo_t *t) {
    int prev = inst_mark_dead(fn, in, t);
    if (prev < 0) return;
    in->exit_reason = why ? why : "init timeout";
    if (in->pid > 0) {
        kill(-in->pid, SIGKILL);
        kill(in->pid, SIGKILL);
    }
    fn_func_t *f = in->func;
    if (in->inv) {
        fn_inv_t *inv = in->inv;
        fn__inv_fail(fn, inv, TR_ECLOSED, why ? why : "the runtime was stopped", t);
    }
    if (!why && (prev == FN__INST_INIT || prev == FN__INST_SPAWNING)) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "Runtime failed to call /runtime/invocation/next within %lld ms "
                 "(init timeout)",
                 (long long)fn->o.init_timeout_ms);
        fail_head(fn, f, "Runtime.Unknown", msg, NULL, 0, t);
    }
    fn__dispatch(fn, f, t);
    fn__sup_wake(fn);
}

/* The process exited on its own (or after our SIGKILL). */
static void inst_exited(fn_t *fn, fn_inst_t *in, int status, fn__todo_t *t) {
    char why[96];
    if (WIFEXITED(status))
        snprintf(why, sizeof why, "Runtime exited with error: exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(why, sizeof why, "Runtime exited with error: signal: %s",
                 WTERMSIG(status) == SIGKILL ? "killed" : strsignal(WTERMSIG(status)));
    else snprintf(why, sizeof why, "Runtime exited");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        snprintf(why, sizeof why, "Runtime exited without providing a reason");
    int prev = inst_mark_dead(fn, in, t);
    if (prev < 0) return;   /* the engine killed it: already accounted */
    fn_func_t *f = in->func;
    tr_info("fn", "function %s: instance %s (pid %d) exited: %s", f->cfg.name, in->token,
            (int)in->pid, why);
    if (in->inv) {
        fn_inv_t *inv = in->inv;
        char m[256];
        snprintf(m, sizeof m, "RequestId: %s Error: %s", inv->request_id, why);
        fn__log_line(fn, f, inv, m, strlen(m));
        tr_buf b = TR_BUF_INIT;
        tr_buf_puts(&b, "{\"errorType\":\"Runtime.ExitError\",\"errorMessage\":");
        tr_buf_json_str(&b, m, strlen(m));
        tr_buf_puts(&b, "}");
        fn__inv_finish(fn, inv, "Unhandled", (const uint8_t *)b.data, b.len,
                       "Status: error\tError Type: Runtime.ExitError", t);
        tr_buf_free(&b);
    } else if (prev == FN__INST_INIT || prev == FN__INST_SPAWNING) {
        fail_head(fn, f, "Runtime.ExitError", why, NULL, 0, t);
    }
    fn__dispatch(fn, f, t);
}

/* Queue a listener for closing after the grace period (under fn->mu). */
static void grave_add(fn_t *fn, void *handle) {
    if (!handle) return;
    struct fn__grave g = {handle, tr_now_ms() + FN__GRACE_MS};
    fn__todo_push((void **)&fn->grave, &fn->n_grave, &fn->cap_grave, sizeof g, &g);
}

/* Close the listeners due by `now` (all with now < 0).  Takes and releases fn->mu. */
static void grave_sweep(fn_t *fn, int64_t now) {
    for (;;) {
        void *h = NULL;
        pthread_mutex_lock(&fn->mu);
        for (size_t i = 0; i < fn->n_grave; i++)
            if (now < 0 || fn->grave[i].at <= now) {
                h = fn->grave[i].handle;
                fn->grave[i] = fn->grave[--fn->n_grave];
                break;
            }
        pthread_mutex_unlock(&fn->mu);
        if (!h) return;
        fn->rtl.close(fn->rtl.arg, h);
    }
}

static void inst_free(fn_t *fn, fn_inst_t *in, fn__todo_t *t) {
    grave_add(fn, in->listener);
    in->listener = NULL;
    for (fn_inst_t **pp = &fn->insts; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    if (in->out_fd >= 0) close(in->out_fd);
    if (in->pidfd >= 0) close(in->pidfd);
    if (in->scratch[0]) {   /* removed after the lock is released (fn__todo_run) */
        char *dir = strdup(in->scratch);
        if (!dir) abort();
        FN__TODO_ADD(t, scratch, dir);
    }
    tr_buf_free(&in->line);
    fn__func_unref(fn, in->func);
    free(in);
}

/* ---- output -------------------------------------------------------------------------------- */

static void out_flush_lines(fn_t *fn, fn_inst_t *in, int final) {
    char *p = in->line.data;
    size_t n = in->line.len, off = 0;
    while (off < n) {
        char *nl = memchr(p + off, '\n', n - off);
        size_t len;
        if (nl) len = (size_t)(nl - (p + off));
        else if (final || n - off >= LINE_MAX_BYTES) len = n - off;
        else break;
        size_t l = len;
        if (l && p[off + l - 1] == '\r') l--;
        fn__log_line(fn, in->func, in->inv, p + off, l);
        off += len + (nl ? 1 : 0);
    }
    if (off) {
        memmove(p, p + off, n - off);
        in->line.len = n - off;
        in->line.data[in->line.len] = 0;
    }
}

/* Read what the pipe holds (non-blocking); EOF closes it. */
static void out_read(fn_t *fn, fn_inst_t *in) {
    if (in->out_fd < 0) return;
    char buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t r = read(in->out_fd, buf, sizeof buf);
        if (r > 0) {
            tr_buf_append(&in->line, buf, (size_t)r);
            out_flush_lines(fn, in, 0);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        out_flush_lines(fn, in, 1);
        close(in->out_fd);
        in->out_fd = -1;
        return;
    }
}

void fn__inst_drain(fn_t *fn, fn_inst_t *in) { out_read(fn, in); }

/* ---- spawning ------------------------------------------------------------------------------ */

/* Why execve failed, in words (async-signal-safe: static strings). */
static const char *exec_errno_text(int e) {
    switch (e) {
    case ENOENT: return "no such file, or its #! interpreter does not exist";
    case EACCES: return "permission denied (is it executable? chmod 755 it before zipping)";
    case ENOEXEC: return "not an executable for this machine, nor a script with a #! line";
    case ETXTBSY: return "the file is open for writing";
    case ENOMEM: return "out of memory (MemorySize too small?)";
    case E2BIG: return "the environment is too large";
    case ELOOP: return "too many symbolic links";
    case ENAMETOOLONG: return "the path is too long";
    default: return "the kernel refused to run it";
    }
}

static char *kv(const char *k, const char *v) {
    size_t n = strlen(k) + strlen(v) + 2;
    char *s = malloc(n);
    if (!s) abort();
    snprintf(s, n, "%s=%s", k, v);
    return s;
}

void fn__inst_spawn(fn_t *fn, fn_inst_t *in) {
    fn__todo_t t = FN__TODO_INIT;
    /* its own Runtime API endpoint first (no lock: it starts threads) */
    void *listener = NULL;
    int lport = 0;
    tr_err lerr;
    tr_err_clear(&lerr);
    int lrc = fn->rtl.open ? fn->rtl.open(fn->rtl.arg, in->token, &lport, &listener, &lerr) : 0;
    /* its private /tmp ($TMPDIR), the one directory it may write (sandbox.h) */
    char scratch[FN__PATH];
    tr_err serr;
    tr_err_clear(&serr);
    int src = lrc ? 0 : fn_sandbox_scratch_new(scratch, sizeof scratch, &serr);
    if (lrc || src) scratch[0] = 0;
    pthread_mutex_lock(&fn->mu);
    snprintf(in->scratch, sizeof in->scratch, "%s", scratch);
    if (in->state != FN__INST_SPAWNING) {
        grave_add(fn, listener);
        pthread_mutex_unlock(&fn->mu);
        fn__todo_run(fn, &t);
        return;
    }
    fn_func_t *f = in->func;
    in->listener = listener;
    if (lrc || src) {
        char msg[TR_ERR_MSG_MAX + 64];
        if (lrc)
            snprintf(msg, sizeof msg, "cannot serve the Runtime API for a new instance: %s",
                     lerr.msg);
        else snprintf(msg, sizeof msg, "%s", serr.msg);
        tr_error("fn", "function %s: %s", f->cfg.name, msg);
        inst_mark_dead(fn, in, &t);
        in->exit_reason = lrc ? "no listener" : "no scratch directory";
        fail_head(fn, f, "Runtime.Unknown", msg, NULL, 0, &t);
        pthread_mutex_unlock(&fn->mu);
        fn__sup_wake(fn);
        fn__todo_run(fn, &t);
        return;
    }
    const fn_config_t *c = &f->cfg;
    /* An absolute package path: the child changes directory before exec, and a relative one
     * (a relative --data) would then name nothing. */
    char *root = c->code_dir[0] == '/' ? strdup(c->code_dir) : realpath(c->code_dir, NULL);
    const char *dir = root ? root : c->code_dir;
    char path[FN__PATH + 16];
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    if (access(path, X_OK) != 0) {
        char msg[FN__PATH + 128];
        snprintf(msg, sizeof msg, "Couldn't find valid bootstrap(s): [%s]%s", path,
                 errno == EACCES ? " (it is not executable: chmod 755 it before zipping)" : "");
        inst_mark_dead(fn, in, &t);
        in->exit_reason = "no bootstrap";
        fail_head(fn, f, "Runtime.InvalidEntrypoint", msg, NULL, 0, &t);
        pthread_mutex_unlock(&fn->mu);
        free(root);
        fn__sup_wake(fn);
        fn__todo_run(fn, &t);
        return;
    }
    /* environment, in AWS's order of precedence: the function's variables cannot override the
     * reserved ones (rejected at configuration time) */
    size_t cap = 24 + c->n_env, n = 0;
    char **envp = calloc(cap, sizeof *envp);
    if (!envp) abort();
    char buf[FN__PATH * 2], day[16], stream[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y/%m/%d", &tm);
    char sid[37];
    tr_uuid_v4(sid);
    snprintf(stream, sizeof stream, "%s/[$LATEST]%.8s%.4s%.4s%.4s%.12s", day, sid, sid + 9,
             sid + 14, sid + 19, sid + 24);
    if (fn->rtl.open) snprintf(buf, sizeof buf, "127.0.0.1:%d", lport);
    else snprintf(buf, sizeof buf, "%s/%s", fn->runtime_api, in->token);
    envp[n++] = kv("AWS_LAMBDA_RUNTIME_API", buf);
    envp[n++] = kv("_HANDLER", c->handler ? c->handler : "");
    envp[n++] = kv("AWS_LAMBDA_FUNCTION_NAME", c->name);
    envp[n++] = kv("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    snprintf(buf, sizeof buf, "%u", c->memory_mb);
    envp[n++] = kv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", buf);
    envp[n++] = kv("AWS_REGION", fn->region);
    envp[n++] = kv("AWS_DEFAULT_REGION", fn->region);
    envp[n++] = kv("LAMBDA_TASK_ROOT", dir);
    envp[n++] = kv("LAMBDA_RUNTIME_DIR", dir);
    snprintf(buf, sizeof buf, "/aws/lambda/%s", c->name);
    envp[n++] = kv("AWS_LAMBDA_LOG_GROUP_NAME", buf);
    envp[n++] = kv("AWS_LAMBDA_LOG_STREAM_NAME", stream);
    envp[n++] = kv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
    envp[n++] = kv("TZ", ":UTC");
    envp[n++] = kv("LANG", "en_US.UTF-8");
    envp[n++] = kv("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin");
    snprintf(buf, sizeof buf, "/lib64:/usr/lib64:%s:%s/lib:%s:%s/lib:/opt/lib", dir, dir, dir, dir);
    envp[n++] = kv("LD_LIBRARY_PATH", buf);
    for (size_t i = 0; i < c->n_env; i++) envp[n++] = kv(c->env[i].key, c->env[i].value);
    size_t tmpdir_at = n;
    envp[n++] = kv("TMPDIR", scratch);   /* after the function's own: a TMPDIR it sets wins */
    envp[n] = NULL;
    /* Amazon Linux's /bin/sh is bash, and AWS's custom-runtime tutorial relies on it (`source`,
     * `function f ()`, pipefail); Debian's is dash.  A "#!/bin/sh" bootstrap therefore runs as
     * `bash` in POSIX mode (argv[0] "sh"), as it would on provided.al2/al2023. */
    int as_sh = 0;
    {
        char head[16] = "";
        int hfd = open(path, O_RDONLY | O_CLOEXEC);
        if (hfd >= 0) {
            ssize_t r = read(hfd, head, sizeof head - 1);
            head[r > 0 ? r : 0] = 0;
            close(hfd);
        }
        as_sh = !strncmp(head, "#!/bin/sh", 9) &&
                (head[9] == '\n' || head[9] == ' ' || head[9] == '\t' || head[9] == '\r') &&
                access("/bin/bash", X_OK) == 0;
    }
    char *cwd = strdup(dir);
    char *exe = strdup(path);
    if (!cwd || !exe) abort();
    free(root);
    rlim_t mem = (rlim_t)c->memory_mb << 20;
    pthread_mutex_unlock(&fn->mu);

    /* What the child says on stderr (its log) when it cannot start, composed here: after fork
     * only async-signal-safe calls. */
    char exec_msg[FN__PATH + 64], cd_msg[FN__PATH + 64];
    snprintf(exec_msg, sizeof exec_msg, "tributary: cannot execute %s: ", exe);
    snprintf(cd_msg, sizeof cd_msg, "tributary: cannot enter the package directory %s\n", cwd);
    static const char sb_msg[] = "tributary: cannot confine the function (no_new_privs, "
                                 "capabilities or Landlock refused)\n";
    int rfd = -1;
    char *plan = NULL;
    static char tmp_env[] = "TMPDIR=/tmp";
    char msg[TR_ERR_MSG_MAX + 64] = "";
    int p[2] = {-1, -1};
    int devnull = -1;
    pid_t pid = -1;
    int err = 0;
    if (fn_sandbox_ruleset(cwd, scratch, &rfd, &serr) ||
        fn_sandbox_tmp_plan(cwd, scratch, &plan, &serr))
        snprintf(msg, sizeof msg, "%s", serr.msg);
    else if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || pipe2(p, O_CLOEXEC) != 0)
        err = errno;
    else {
        char sh0[] = "sh", bash[] = "/bin/bash";
        char *argv[] = {exe, NULL, NULL};
        char *run = exe;
        if (as_sh) {
            argv[0] = sh0;
            argv[1] = exe;
            run = bash;
        }
        pid = fork();
        if (pid == 0) {
            /* child: async-signal-safe calls only.  Its own process group (the parent sets it
             * too: a kill of the group may come before this line runs), and no controlling
             * terminal: with the server's terminal it could push input into the operator's
             * shell (TIOCSTI), outside any sandbox.  TIOCNOTTY detaches this process only. */
            setpgid(0, 0);
            int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
            if (tty >= 0) {
                ioctl(tty, TIOCNOTTY);
                close(tty);
            }
            dup2(devnull, 0);
            dup2(p[1], 1);
            dup2(p[1], 2);
            /* its scratch as /tmp where namespaces allow (this copy of envp is the child's) */
            if (plan && fn_sandbox_tmp_apply(plan) == 0) envp[tmpdir_at] = tmp_env;
            if (fn_sandbox_enter(rfd) != 0) {
                ssize_t w = write(2, sb_msg, sizeof sb_msg - 1);
                (void)w;
                _exit(126);
            }
            syscall(SYS_close_range, 3U, ~0U, 0U);
            if (chdir(cwd) != 0) {
                ssize_t w = write(2, cd_msg, strlen(cd_msg));
                (void)w;
                _exit(126);
            }
            struct rlimit rl = {mem, mem};
            setrlimit(RLIMIT_DATA, &rl);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGPIPE, SIG_DFL);
            execve(run, argv, envp);
            const char *why = exec_errno_text(errno);
            struct iovec iov[3] = {{exec_msg, strlen(exec_msg)},
                                   {(void *)why, strlen(why)},
                                   {(void *)"\n", 1}};
            ssize_t w = writev(2, iov, 3);
            (void)w;
            _exit(127);
        }
        if (pid < 0) err = errno;
        else setpgid(pid, pid);
    }
    if (devnull >= 0) close(devnull);
    if (rfd >= 0) close(rfd);
    free(plan);
    if (p[1] >= 0) close(p[1]);
    for (size_t i = 0; i < n; i++) free(envp[i]);
    free(envp);
    free(cwd);
    free(exe);
    int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd >= 0) fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    if (p[0] >= 0) fcntl(p[0], F_SETFL, O_NONBLOCK);

    pthread_mutex_lock(&fn->mu);
    if (pid < 0) {
        if (p[0] >= 0) close(p[0]);
        if (!msg[0])
            snprintf(msg, sizeof msg, "cannot start the bootstrap process: %s", strerror(err));
        tr_error("fn", "function %s: %s", f->cfg.name, msg);
        if (inst_mark_dead(fn, in, &t) >= 0) {
            in->exit_reason = "spawn failed";
            fail_head(fn, f, "Runtime.Unknown", msg, NULL, 0, &t);
            fn__dispatch(fn, f, &t);
        }
    } else {
        in->pid = pid;
        in->pidfd = pidfd;
        in->out_fd = p[0];
        in->spawn_ms = tr_now_ms();
        in->spawn_ns = tr_mono_ns();
        in->init_deadline_ms = in->spawn_ms + fn->o.init_timeout_ms;
        if (in->state == FN__INST_DEAD) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        } else {
            in->state = FN__INST_INIT;
        }
        tr_debug("fn", "function %s: started instance %s (pid %d)", f->cfg.name, in->token,
                 (int)pid);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
}

void fn__inst_give(fn_t *fn, fn_inst_t *in, fn_inv_t *inv, fn__todo_t *t) {
    in->inv = inv;
    inv->inst = in;
    in->state = FN__INST_BUSY;
    if (!in->init_reported) {
        inv->init_ms = in->init_ms;
        in->init_reported = 1;
    }
    fn__inv_mark_running(fn, inv);
    atomic_fetch_add(&inv->refs, 1);
    fn__next_call_t c = {in->next_cb, in->next_arg, 0, inv};
    FN__TODO_ADD(t, next, c);
    in->next_cb = NULL;
    in->next_arg = NULL;
}

/* ---- the supervisor ------------------------------------------------------------------------ */

void fn__sup_wake(fn_t *fn) {
    if (fn->wake[1] >= 0) {
        char c = 1;
        ssize_t r = write(fn->wake[1], &c, 1);
        (void)r;
    }
}

static void *sup_main(void *arg) {
    fn_t *fn = arg;
    struct pollfd *pfd = NULL;
    fn_inst_t **who = NULL;
    size_t cap = 0;
    int64_t stop_by = 0;
    for (;;) {
        fn__todo_t t = FN__TODO_INIT;
        pthread_mutex_lock(&fn->mu);
        int64_t now = tr_now_ms();
        /* free the dead that were never started */
        for (fn_inst_t *in = fn->insts, *nx; in; in = nx) {
            nx = in->next;
            if (in->state == FN__INST_DEAD && in->pid <= 0) inst_free(fn, in, &t);
        }
        if (fn->closing) {
            if (!stop_by) stop_by = now + 5000;
            if (!fn->insts || now > stop_by) {
                while (fn->insts) {
                    fn_inst_t *in = fn->insts;
                    if (in->pid > 0) {
                        kill(-in->pid, SIGKILL);
                        waitpid(in->pid, NULL, 0);
                    }
                    inst_free(fn, in, &t);
                }
                pthread_mutex_unlock(&fn->mu);
                fn__todo_run(fn, &t);
                usleep(FN__GRACE_MS * 1000 / 5); /* let the last answers leave */
                grave_sweep(fn, -1);
                break;
            }
        }
        size_t need = 1;
        for (fn_inst_t *in = fn->insts; in; in = in->next) need += 2;
        if (need > cap) {
            cap = need * 2;
            pfd = realloc(pfd, cap * sizeof *pfd);
            who = realloc(who, cap * sizeof *who);
            if (!pfd || !who) abort();
        }
        size_t n = 0;
        pfd[n].fd = fn->wake[0];
        pfd[n].events = POLLIN;
        who[n++] = NULL;
        int polling_pids = 0;
        for (fn_inst_t *in = fn->insts; in; in = in->next) {
            if (in->out_fd >= 0) {
                pfd[n].fd = in->out_fd;
                pfd[n].events = POLLIN;
                who[n++] = in;
            }
            if (in->pidfd >= 0) {
                pfd[n].fd = in->pidfd;
                pfd[n].events = POLLIN;
                who[n++] = in;
            } else if (in->pid > 0) {
                polling_pids = 1;
            }
        }
        int64_t next = fn__next_deadline(fn, now);
        int timeout = next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
        if (polling_pids && timeout > 100) timeout = 100;
        if (fn->closing && timeout > 50) timeout = 50;
        pthread_mutex_unlock(&fn->mu);

        int pr = poll(pfd, (nfds_t)n, timeout);

        pthread_mutex_lock(&fn->mu);
        if (pr > 0 && (pfd[0].revents & POLLIN)) {
            char sink[256];
            while (read(fn->wake[0], sink, sizeof sink) > 0) {}
        }
        for (size_t i = 1; pr > 0 && i < n; i++) {
            if (!pfd[i].revents) continue;
            fn_inst_t *in = who[i];
            if (pfd[i].fd == in->out_fd) out_read(fn, in);
            else if (pfd[i].fd == in->pidfd) in->exited = 1;
        }
        /* reap: instances only die here */
        for (fn_inst_t *in = fn->insts, *nx; in; in = nx) {
            nx = in->next;
            if (in->pid <= 0) continue;
            if (in->pidfd >= 0 && !in->exited) continue;
            int st = 0;
            pid_t r = waitpid(in->pid, &st, WNOHANG);
            if (r == 0) continue;
            if (r < 0 && errno != ECHILD) continue;
            if (r < 0) st = 0;
            /* whatever it wrote last belongs to its invocation */
            out_read(fn, in);
            inst_exited(fn, in, st, &t);
            in->pid = 0;
            inst_free(fn, in, &t);
        }
        fn__timers(fn, tr_now_ms(), &t);
        pthread_mutex_unlock(&fn->mu);
        fn__todo_run(fn, &t);
        grave_sweep(fn, tr_now_ms());
    }
    free(pfd);
    free(who);
    return NULL;
}

int fn__sup_start(fn_t *fn, tr_err *err) {
    if (pipe2(fn->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return tr_err_set(err, TR_EIO, "cannot create the supervisor's pipe: %s", strerror(errno));
    int rc = pthread_create(&fn->sup, NULL, sup_main, fn);
    if (!rc) fn->sup_running = 1;
    if (rc) {
        close(fn->wake[0]);
        close(fn->wake[1]);
        fn->wake[0] = fn->wake[1] = -1;
        return tr_err_set(err, TR_EIO, "cannot start the supervisor thread: %s", strerror(rc));
    }
    return 0;
}

/* Join the supervisor.  The wake pipe stays open (other threads may still poke it) until
 * fn_close. */
void fn__sup_stop(fn_t *fn) {
    if (!fn->sup_running) return;
    fn__sup_wake(fn);
    pthread_join(fn->sup, NULL);
    fn->sup_running = 0;
}

/* ---- the Runtime API, engine side ---------------------------------------------------------- */

int fn_rt_next(fn_t *fn, const char *token, fn_rt_next_cb cb, void *arg, tr_err *err) {
    if (!fn || !cb) return tr_err_set(err, TR_EINVAL, "fn_rt_next: callback required");
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_inst_t *in = fn__inst_by_token(fn, token);
    int rc = 0;
    if (!in || in->state == FN__INST_DEAD) {
        rc = tr_err_set(err, TR_ENOTFOUND,
                        "unknown runtime instance: AWS_LAMBDA_RUNTIME_API names an instance "
                        "that no longer exists");
        goto leave;
    }
    if (in->state == FN__INST_BUSY || in->state == FN__INST_IDLE) {
        rc = tr_err_set(err, TR_EINUSE,
                        in->state == FN__INST_BUSY
                            ? "Invalid state transition: post the response or error of the "
                              "current invocation before asking for the next one"
                            : "Invalid state transition: this runtime is already waiting for "
                              "the next invocation");
        goto leave;
    }
    fn_func_t *f = in->func;
    if (in->state == FN__INST_INIT) in->init_ms = (tr_mono_ns() - in->spawn_ns) / 1e6;
    in->next_cb = cb;
    in->next_arg = arg;
    in->state = FN__INST_IDLE;
    in->idle_since_ms = tr_now_ms();
    if (in->retire || in->gen != f->gen || f->deleted || fn->closing) {
        fn__inst_kill(fn, in, "retired", &t);
        goto leave;
    }
    if (f->q_head && fn__can_start(fn, f)) fn__inst_give(fn, in, fn__q_pop(fn, f), &t);
leave:
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
    return rc;
}

/* The instance and invocation an answer is for. */
static int find_answer(fn_t *fn, const char *token, const char *request_id, fn_inst_t **out,
                       tr_err *err) {
    fn_inst_t *in = NULL;
    if (token && *token) {
        in = fn__inst_by_token(fn, token);
        if (!in || in->state == FN__INST_DEAD)
            return tr_err_set(err, TR_ENOTFOUND, "unknown runtime instance");
    } else {
        for (fn_inst_t *i = fn->insts; i; i = i->next)
            if (i->inv && !strcmp(i->inv->request_id, request_id ? request_id : "")) in = i;
    }
    if (!in || !in->inv || !request_id || strcmp(in->inv->request_id, request_id))
        return tr_err_set(err, TR_ENOTFOUND,
                          "Invalid request ID: %.64s is not the invocation this runtime is "
                          "processing (it may have timed out)",
                          request_id ? request_id : "");
    *out = in;
    return 0;
}

static int answer(fn_t *fn, const char *token, const char *request_id, const char *fnerr,
                  const char *error_type, const uint8_t *body, size_t len, tr_err *err) {
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_inst_t *in = NULL;
    int rc = find_answer(fn, token, request_id, &in, err);
    if (!rc) {
        fn_inv_t *inv = in->inv;
        fn_func_t *f = in->func;
        out_read(fn, in);
        tr_buf b = TR_BUF_INIT;
        if (!fnerr && len > FN_MAX_SYNC_PAYLOAD) {
            tr_buf_printf(
                &b,
                "{\"errorMessage\":\"Response payload size exceeded maximum allowed "
                "payload size (%d bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}",
                FN_MAX_SYNC_PAYLOAD);
            fn__inv_finish(fn, inv, "Unhandled", (const uint8_t *)b.data, b.len,
                           "Status: error\tError Type: Function.ResponseSizeTooLarge", &t);
            rc = tr_err_set(err, TR_ETOOBIG,
                            "Response payload size exceeded maximum allowed "
                            "payload size (%d bytes).",
                            FN_MAX_SYNC_PAYLOAD);
        } else if (fnerr) {
            /* no Lambda-Runtime-Function-Error-Type (aws-lambda-ric's native client sends
             * none): take errorType from the error document for the REPORT line */
            char from_body[101] = "";
            if ((!error_type || !*error_type) && len && len < 65536) {
                json_t *j = json_loadb((const char *)body, len, 0, NULL);
                const char *et = json_string_value(json_object_get(j, "errorType"));
                if (et) snprintf(from_body, sizeof from_body, "%s", et);
                json_decref(j);
                if (from_body[0]) error_type = from_body;
            }
            if (!len) {
                const char *ty = error_type && *error_type ? error_type : "Runtime.Unknown";
                tr_buf_puts(&b, "{\"errorMessage\":\"\",\"errorType\":");
                tr_buf_json_str(&b, ty, strlen(ty));
                tr_buf_puts(&b, "}");
                body = (const uint8_t *)b.data;
                len = b.len;
            }
            char note[160];
            snprintf(note, sizeof note, "Status: error\tError Type: %.100s",
                     error_type && *error_type ? error_type : "Runtime.Unknown");
            fn__inv_finish(fn, inv, fnerr, body, len, note, &t);
        } else {
            fn__inv_finish(fn, inv, NULL, body, len, NULL, &t);
        }
        tr_buf_free(&b);
        in->inv = NULL;
        in->state = FN__INST_READY;
        fn__dispatch(fn, f, &t);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
    return rc;
}

int fn_rt_response(fn_t *fn, const char *token, const char *request_id, const uint8_t *body,
                   size_t len, tr_err *err) {
    return answer(fn, token, request_id, NULL, NULL, body, len, err);
}

int fn_rt_error(fn_t *fn, const char *token, const char *request_id, const char *error_type,
                const uint8_t *body, size_t len, tr_err *err) {
    return answer(fn, token, request_id, "Unhandled", error_type, body, len, err);
}

int fn_rt_init_error(fn_t *fn, const char *token, const char *error_type, const uint8_t *body,
                     size_t len, tr_err *err) {
    fn__todo_t t = FN__TODO_INIT;
    pthread_mutex_lock(&fn->mu);
    fn_inst_t *in = fn__inst_by_token(fn, token);
    int rc = 0;
    if (!in || in->state == FN__INST_DEAD) {
        rc = tr_err_set(err, TR_ENOTFOUND, "unknown runtime instance");
    } else if (in->state != FN__INST_INIT) {
        rc = tr_err_set(err, TR_EINUSE,
                        "Invalid state transition: init/error after the "
                        "runtime asked for its first invocation");
    } else {
        fn_func_t *f = in->func;
        const char *ty = error_type && *error_type ? error_type : "Runtime.Unknown";
        out_read(fn, in);
        fail_head(fn, f, ty, "init error", body, len, &t);
        fn__inst_kill(fn, in, "init error", &t);
    }
    pthread_mutex_unlock(&fn->mu);
    fn__sup_wake(fn);
    fn__todo_run(fn, &t);
    return rc;
}
