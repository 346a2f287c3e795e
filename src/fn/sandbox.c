/* SPDX-License-Identifier: Apache-2.0
 *
 * sandbox.c -- Landlock rulesets, capability dropping and scratch directories for function
 * processes (sandbox.h says what a function can and cannot reach).
 *
 * Landlock is used best-effort by ABI version: the access rights a ruleset handles are those the
 * running kernel knows (v1: files and directories; v2: REFER, cross-directory rename/link;
 * v3: TRUNCATE; v5: IOCTL_DEV; v6: signal and abstract-socket scoping), so an older kernel gets
 * the fence it can enforce rather than none.  The constants are the kernel's ABI; Debian 12's
 * <linux/landlock.h> predates some of them, so they are defined here when missing.
 *
 * Cost: building a ruleset is ~20 open(O_PATH)+add_rule system calls per process start; entering
 * it is one prctl and one system call.  Nothing on the invoke path.
 */
#include "core/tlog.h"
#include "fn/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/buf.h"

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* struct landlock_ruleset_attr as of ABI 6 (the kernel accepts the longer struct from older
 * ABIs as long as the fields it does not know are zero). */
typedef struct {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
} ll_ruleset_attr_t;

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_EXEC (FS_READ | LANDLOCK_ACCESS_FS_EXECUTE)
#define FS_FILE_RIGHTS                                                                             \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

/* ---- configuration --------------------------------------------------------------------------- */

static struct {
    char **read, **write;
    size_t n_read, n_write;
    char *private; /* realpath of the data directory: no rule reaches into it */
} g_dirs;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_abi;
static const char *g_why = "";

static void probe(void) {
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (v >= 1) {
        g_abi = (int)v;
        return;
    }
    g_abi = 0;
    if (errno == ENOSYS)
        g_why = "this kernel has no Landlock (Linux >= 5.13 built with CONFIG_SECURITY_LANDLOCK)";
    else if (errno == EOPNOTSUPP)
        g_why = "Landlock is built into this kernel but not enabled (add landlock to the lsm= "
                "boot parameter)";
    else g_why = "Landlock is not usable here (landlock_create_ruleset failed)";
}

int fn_sandbox_abi(const char **why) {
    pthread_once(&g_once, probe);
    if (why) *why = g_why;
    return g_abi;
}

static int copy_dirs(char ***out, size_t *n_out, const char *const *in, size_t n, tr_err *err) {
    for (size_t i = 0; i < n; i++)
        if (!in[i] || in[i][0] != '/')
            return tr_err_set(err, TR_EINVAL,
                              "function directory \"%s\" is not an absolute path; "
                              "give it from /",
                              in[i] ? in[i] : "");
    char **a = calloc(n + 1, sizeof *a);
    if (!a) abort();
    for (size_t i = 0; i < n; i++)
        if (!(a[i] = strdup(in[i]))) abort();
    *out = a;
    *n_out = n;
    return 0;
}

int fn_sandbox_set_dirs(const char *const *read_dirs, size_t n_read, const char *const *write_dirs,
                        size_t n_write, tr_err *err) {
    char **r = NULL, **w = NULL;
    size_t nr = 0, nw = 0;
    int rc = copy_dirs(&r, &nr, read_dirs, n_read, err);
    if (!rc) rc = copy_dirs(&w, &nw, write_dirs, n_write, err);
    if (rc) {
        for (size_t i = 0; r && i < nr; i++) free(r[i]);
        free(r);
        return rc;
    }
    for (size_t i = 0; i < g_dirs.n_read; i++) free(g_dirs.read[i]);
    for (size_t i = 0; i < g_dirs.n_write; i++) free(g_dirs.write[i]);
    free(g_dirs.read);
    free(g_dirs.write);
    g_dirs.read = r;
    g_dirs.n_read = nr;
    g_dirs.write = w;
    g_dirs.n_write = nw;
    return 0;
}

/* Is path equal to dir (2), beneath it (1), or neither (0)?  Both absolute, no trailing '/'. */
static int path_within(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return path[1] ? 1 : 2;
    if (strncmp(path, dir, n) != 0) return 0;
    return path[n] == 0 ? 2 : path[n] == '/' ? 1 : 0;
}

int fn_sandbox_set_private(const char *dir, tr_err *err) {
    char *real = realpath(dir, NULL);
    if (!real)
        return tr_err_set(err, TR_EIO,
                          "cannot resolve the data directory %s to fence functions "
                          "out of it: %s",
                          dir, strerror(errno));
    for (size_t i = 0; i < g_dirs.n_read + g_dirs.n_write; i++) {
        int rd = i < g_dirs.n_read;
        const char *d = rd ? g_dirs.read[i] : g_dirs.write[i - g_dirs.n_read];
        char *rdir = realpath(d, NULL);
        int bad = rdir && path_within(rdir, real);
        free(rdir);
        if (bad) {
            tr_err_set(err, TR_EINVAL,
                       "--lambda-%s-dir %s is inside the data directory %s, which "
                       "holds the server's credentials and every function's code: functions "
                       "must not reach it. Fix: give a directory outside %s",
                       rd ? "read" : "write", d, real, real);
            free(real);
            return TR_EINVAL;
        }
    }
    for (size_t i = 0; i < g_dirs.n_write; i++) {
        char *rdir = realpath(g_dirs.write[i], NULL);
        if (rdir && path_within(real, rdir))
            tr_warn("fn",
                    "the data directory %s lies inside --lambda-write-dir %s: functions can "
                    "read and write it (credentials, tables, other functions' code) through that "
                    "directory. Fix: keep the data directory outside every --lambda-write-dir",
                    real, g_dirs.write[i]);
        free(rdir);
    }
    free(g_dirs.private);
    g_dirs.private = real;
    return 0;
}

/* ---- rulesets -------------------------------------------------------------------------------- */

static uint64_t handled_fs(int abi) {
    uint64_t m = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
    if (abi >= 2) m |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) m |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5) m |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return m;
}

/* Allow `access` beneath path.  A missing path is skipped (required: fails instead). */
static int allow(int rfd, const char *path, uint64_t access, uint64_t handled, int required,
                 tr_err *err) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (!required) return 0;
        return tr_err_set(err, TR_EIO, "cannot open %s to confine the function: %s", path,
                          strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= FS_FILE_RIGHTS;
    struct landlock_path_beneath_attr pb = {.allowed_access = access & handled, .parent_fd = fd};
    long r = pb.allowed_access
                 ? syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)
                 : 0;
    int e = errno;
    close(fd);
    if (r != 0)
        return tr_err_set(err, TR_EIO, "cannot add %s to the function's sandbox: %s", path,
                          strerror(e));
    return 0;
}

/* Allow `access` on each entry of dir but those named in skip (NULL-terminated, may be NULL)
 * and `also` (may be NULL): how a directory minus a few entries is expressed in an allow-list.
 * Listing dir itself is allowed only without `also`: Landlock's rights hold for everything
 * beneath, so listing dir would let a function list the skipped entry's whole tree (names only:
 * harmless for /etc/ssh, not for the data directory, whose path `also` is on). */
static int allow_except(int rfd, const char *dir, uint64_t access, uint64_t handled,
                        const char *const *skip, const char *also, tr_err *err) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int rc = also ? 0 : allow(rfd, dir, LANDLOCK_ACCESS_FS_READ_DIR, handled, 0, err);
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int skipped = also && !strcmp(e->d_name, also);
        for (int i = 0; skip && skip[i] && !skipped; i++) skipped = !strcmp(e->d_name, skip[i]);
        if (skipped) continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        rc = allow(rfd, p, access, handled, 0, err);
    }
    closedir(d);
    return rc;
}

/* Allow `access` beneath path, but its entries named in skip (may be NULL), and never into the
 * data directory (fn_sandbox_set_private): Landlock only adds rights, so where the data directory
 * lies beneath path (say --data /opt/tributary/data, and /opt is readable), path's entries are
 * allowed one by one but the one on the way to it, and so on down to it.  A path inside the data
 * directory is skipped (its parts functions need -- a package, a scratch dir -- have rules of
 * their own).  A missing path is skipped.  The directories on the way to the data directory can
 * be passed through but not listed (see allow_except). */
static int allow_tree(int rfd, const char *path, uint64_t access, uint64_t handled,
                      const char *const *skip, tr_err *err) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    const char *avoid = g_dirs.private;
    int rc = 0;
    if (avoid && path_within(real, avoid)) goto done; /* inside: nothing */
    if (!avoid || !path_within(avoid, real)) { /* apart: all but skip */
        rc = skip ? allow_except(rfd, real, access, handled, skip, NULL, err)
                  : allow(rfd, real, access, handled, 0, err);
        goto done;
    }
    char cur[4096];
    snprintf(cur, sizeof cur, "%s", strcmp(real, "/") ? real : "");
    while (!rc) { /* cur is above avoid: its entries but the next step, then down a level */
        const char *next = avoid + strlen(cur) + 1;
        size_t nn = strcspn(next, "/");
        char name[256];
        if (nn >= sizeof name || strlen(cur) + 1 + nn >= sizeof cur) break;
        memcpy(name, next, nn);
        name[nn] = 0;
        rc = allow_except(rfd, *cur ? cur : "/", access, handled, skip, name, err);
        skip = NULL;
        size_t cn = strlen(cur);
        snprintf(cur + cn, sizeof cur - cn, "/%s", name);
        if (!strcmp(cur, avoid)) break;
    }
done:
    free(real);
    return rc;
}

int fn_sandbox_ruleset(const char *code_dir, const char *scratch, int *out, tr_err *err) {
    *out = -1;
    int abi = fn_sandbox_abi(NULL);
    if (!abi) return 0;
    uint64_t h = handled_fs(abi);
    ll_ruleset_attr_t attr = {.handled_access_fs = h};
    if (abi >= 6) attr.scoped = LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
    int rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rfd < 0)
        return tr_err_set(err, TR_EIO, "cannot create the function's Landlock ruleset: %s",
                          strerror(errno));
    static const char *const sys_exec[] = {"/usr",   "/bin",    "/sbin", "/lib", "/lib32",
                                           "/lib64", "/libx32", "/opt",  NULL};
    static const char *const sys_read[] = {"/proc", "/sys", "/etc/ssl/certs",
                                           "/etc/ssl/openssl.cnf", NULL};
    /* /etc but its secrets: password hashes, sudo rules, SSH host keys, TLS private keys (a
     * server running as root would otherwise hand them over: uid 0 owns them) */
    static const char *const etc_secret[] = {"shadow",
                                             "shadow-",
                                             "gshadow",
                                             "gshadow-",
                                             "sudoers",
                                             "sudoers.d",
                                             "ssh",
                                             "ssl",
                                             "security",
                                             "credstore",
                                             "credstore.encrypted",
                                             ".pwd.lock",
                                             NULL};
    /* /dev: the harmless nodes only -- not disks, loop devices, the kernel log or memory; no
     * terminal either: a function has no controlling terminal (it runs in a new session), and
     * the server's (a tour in a shell) must not be written to or have input pushed into it */
    static const char *const dev_rw[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                         "/dev/random", "/dev/urandom", NULL};
    const uint64_t all = h;
    const uint64_t dev = FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                         LANDLOCK_ACCESS_FS_IOCTL_DEV;
    int rc = 0;
    for (int i = 0; !rc && sys_exec[i]; i++)
        rc = allow_tree(rfd, sys_exec[i], FS_EXEC, h, NULL, err);
    for (int i = 0; !rc && sys_read[i]; i++)
        rc = allow_tree(rfd, sys_read[i], FS_READ, h, NULL, err);
    if (!rc) rc = allow_tree(rfd, "/etc", FS_EXEC, h, etc_secret, err);
    if (!rc) rc = allow(rfd, "/dev", LANDLOCK_ACCESS_FS_READ_DIR, h, 0, err);
    for (int i = 0; !rc && dev_rw[i]; i++) rc = allow(rfd, dev_rw[i], dev, h, 0, err);
    /* name resolution: /etc/resolv.conf is often a link into /run */
    if (!rc) rc = allow(rfd, "/run/systemd/resolve", FS_READ, h, 0, err);
    if (!rc) rc = allow(rfd, code_dir, FS_EXEC, h, 1, err);
    if (!rc && scratch && *scratch) rc = allow(rfd, scratch, all, h, 1, err);
    for (size_t i = 0; !rc && i < g_dirs.n_read; i++)
        rc = allow_tree(rfd, g_dirs.read[i], FS_EXEC, h, NULL, err);
    /* Not split: a function must create files in a writable directory itself, and a right to
     * create on a directory holds for all beneath it.  fn_sandbox_set_private warns when the data
     * directory lies beneath one. */
    for (size_t i = 0; !rc && i < g_dirs.n_write; i++)
        rc = allow(rfd, g_dirs.write[i], all, h, 0, err);
    if (rc) {
        close(rfd);
        return rc;
    }
    *out = rfd;
    return 0;
}

/* ---- entering -------------------------------------------------------------------------------- */

int fn_sandbox_enter(int ruleset_fd) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    /* Capabilities: a server running as root must not hand root's powers to user code.  The
     * bounding set caps what exec can give back; without CAP_SETPCAP (not root) these fail
     * harmlessly and there is nothing to drop. */
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0) return -errno;
    if (ruleset_fd >= 0 && syscall(SYS_landlock_restrict_self, ruleset_fd, 0) != 0) return -errno;
    return 0;
}

/* ---- a private /tmp ----------------------------------------------------------------------------
 *
 * The plan is text: the scratch directory, then each source directory under /tmp to keep visible,
 * one per line, after 'r' (bound read-only: the package, --lambda-read-dir) or 'w'.  A source /tmp/a/b is bound onto SCRATCH/a/b (made by the parent), then SCRATCH
 * onto /tmp recursively, so /tmp/a/b shows the source again and nothing else of the server's /tmp
 * is reachable. */

/* Is path /tmp itself (1), beneath it (2), or elsewhere (0)? */
static int under_tmp(const char *path) {
    if (strncmp(path, "/tmp", 4)) return 0;
    if (path[4] == 0 || (path[4] == '/' && path[5] == 0)) return 1;
    return path[4] == '/' ? 2 : 0;
}

static int plan_add(tr_buf *b, const char *scratch, const char *src, int writable, tr_err *err) {
    if (strchr(src, '\n')) return 0; /* not representable: such a directory stays unseen */
    char dst[8192];
    if (snprintf(dst, sizeof dst, "%s%s", scratch, src + 4) >= (int)sizeof dst)
        return tr_err_set(err, TR_EINVAL, "path %s is too long to keep visible in a private /tmp",
                          src);
    for (char *q = dst + strlen(scratch) + 1;; q++) { /* mkdir -p, 0700 */
        char c = *q;
        if (c != '/' && c != 0) continue;
        *q = 0;
        if (mkdir(dst, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            return tr_err_set(err, TR_EIO, "cannot create %s for a function's private /tmp: %s",
                              dst, strerror(e));
        }
        *q = c;
        if (!c) break;
    }
    tr_buf_puts(b, writable ? "\nw" : "\nr");
    tr_buf_puts(b, src);
    return 0;
}

int fn_sandbox_tmp_plan(const char *code_dir, const char *scratch, char **plan, tr_err *err) {
    *plan = NULL;
    if (!scratch || !*scratch || strchr(scratch, '\n')) return 0;
    for (size_t i = 0; i < g_dirs.n_read; i++)
        if (under_tmp(g_dirs.read[i]) == 1) return 0;
    for (size_t i = 0; i < g_dirs.n_write; i++)
        if (under_tmp(g_dirs.write[i]) == 1) return 0;
    /* A directory to keep visible that holds the data directory would show it inside the
     * private /tmp, i.e. beneath the scratch directory, whose rights (all) would then cover it:
     * no private /tmp then ($TMPDIR is the scratch dir, and the Landlock rules hold as drawn). */
    for (size_t i = 0; g_dirs.private && i < g_dirs.n_read + g_dirs.n_write; i++) {
        const char *d = i < g_dirs.n_read ? g_dirs.read[i] : g_dirs.write[i - g_dirs.n_read];
        if (under_tmp(d) == 2 && path_within(g_dirs.private, d)) return 0;
    }
    tr_buf b = TR_BUF_INIT;
    tr_buf_puts(&b, scratch);
    int rc = 0;
    /* Read-only binds: beneath the scratch directory (all rights) Landlock would let the
     * function write its own package or a --lambda-read-dir; the mount says no instead. */
    if (code_dir && under_tmp(code_dir) == 2) rc = plan_add(&b, scratch, code_dir, 0, err);
    for (size_t i = 0; !rc && i < g_dirs.n_read; i++)
        if (under_tmp(g_dirs.read[i]) == 2) rc = plan_add(&b, scratch, g_dirs.read[i], 0, err);
    for (size_t i = 0; !rc && i < g_dirs.n_write; i++)
        if (under_tmp(g_dirs.write[i]) == 2) rc = plan_add(&b, scratch, g_dirs.write[i], 1, err);
    if (rc) {
        tr_buf_free(&b);
        return rc;
    }
    *plan = b.data; /* NUL-terminated, owned by the caller now */
    return 0;
}

/* write(2) a whole small string to a file; async-signal-safe. */
static int put_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    return w == (ssize_t)n ? 0 : -(w < 0 ? e : EIO);
}

/* "ID ID 1\n" without stdio. */
static void id_map(char *out, unsigned id) {
    char d[16];
    int k = 0;
    do d[k++] = (char)('0' + id % 10);
    while ((id /= 10) && k < 15);
    char *o = out;
    for (int rep = 0; rep < 2; rep++) {
        for (int i = k - 1; i >= 0; i--) *o++ = d[i];
        *o++ = ' ';
    }
    *o++ = '1';
    *o++ = '\n';
    *o = 0;
}

int fn_sandbox_tmp_apply(const char *plan) {
    if (!plan || !*plan) return -EINVAL;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return -errno;
        char m[64];
        int r = put_file("/proc/self/setgroups", "deny");
        id_map(m, (unsigned)uid);
        if (!r) r = put_file("/proc/self/uid_map", m);
        id_map(m, (unsigned)gid);
        if (!r) r = put_file("/proc/self/gid_map", m);
        if (r) return r;
    } else if (unshare(CLONE_NEWNS) != 0) {
        return -errno;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -errno;
    const char *nl = strchr(plan, '\n');
    size_t slen = nl ? (size_t)(nl - plan) : strlen(plan);
    char scratch[4096], src[4096], dst[8192];
    if (slen >= sizeof scratch) return -ENAMETOOLONG;
    memcpy(scratch, plan, slen);
    scratch[slen] = 0;
    while (nl) {
        const char *p = nl + 1;
        nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n < 6 || n >= sizeof src || slen + n >= sizeof dst) return -ENAMETOOLONG;
        int writable = p[0] == 'w';
        memcpy(src, p + 1, n - 1);
        src[n - 1] = 0;
        memcpy(dst, scratch, slen);
        memcpy(dst + slen, src + 4, n - 1 - 4 + 1);
        if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
        if (!writable && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0)
            return -errno;
    }
    if (mount(scratch, "/tmp", NULL, MS_BIND | MS_REC, NULL) != 0) return -errno;
    return 0;
}

/* ---- scratch directories --------------------------------------------------------------------- */

static char g_scratch_root[4096];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw);

static int rm_below(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return ftw->level == 0 ? 0 : rm_one(path, st, flag, ftw);
}

int fn_sandbox_set_scratch_root(const char *dir, tr_err *err) {
    if (!dir || dir[0] != '/' || strlen(dir) >= sizeof g_scratch_root - 64)
        return tr_err_set(err, TR_EINVAL,
                          "scratch root \"%s\" must be an absolute path shorter "
                          "than %zu bytes",
                          dir ? dir : "", sizeof g_scratch_root - 64);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return tr_err_set(err, TR_EIO,
                          "cannot create %s for functions' scratch directories: %s; "
                          "check the data directory's permissions",
                          dir, strerror(errno));
    nftw(dir, rm_below, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); /* a previous run's leftovers */
    snprintf(g_scratch_root, sizeof g_scratch_root, "%s", dir);
    return 0;
}

int fn_sandbox_scratch_new(char *out, size_t cap, tr_err *err) {
    const char *base = g_scratch_root[0] ? g_scratch_root : getenv("TMPDIR");
    if (!base || base[0] != '/') base = "/tmp";
    if (snprintf(out, cap, "%s/tributary-fn-XXXXXX", base) >= (int)cap)
        return tr_err_set(err, TR_EINVAL,
                          "TMPDIR %s is too long for a function's scratch "
                          "directory; set a shorter TMPDIR",
                          base);
    if (!mkdtemp(out)) {
        int e = errno;
        int rc = tr_err_set(err, TR_EIO,
                            "cannot create a scratch directory in %s for a function: "
                            "%s; check that %s exists and is writable (or set TMPDIR)",
                            base, strerror(e), base);
        out[0] = 0;
        return rc;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

void fn_sandbox_scratch_free(const char *dir) {
    if (!dir || !*dir) return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
