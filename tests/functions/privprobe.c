/* SPDX-License-Identifier: Apache-2.0
 *
 * privprobe.c -- a native test function that tries what a confined function must not do and
 * answers what happened (tests/integration/test_fn_privileges.py).
 *
 * Paths come from its environment: PRIV_DATA (the server's data directory), PRIV_OTHER (a file of
 * another function's package).  Each check is "ok" or the errno text it failed with (list_data:
 * "ok:name:name..." with what the listing showed):
 *   {"read_credentials":..,"list_data":..,"read_other_code":..,"write_data":..,"write_tmp":..,
 *    "write_scratch":..,"read_own_code":..,"read_etc":..,"server_environ":..,"signal_server":..,
 *    "fds":["0 /dev/null", "3 socket:[..]", ..],"env":["NAME", ..],"uid":N,
 *    "root":"$LAMBDA_TASK_ROOT","tmpdir":"$TMPDIR","cap_eff":"hex"}
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tributary/function.h>

extern char **environ;

static char out[65536];
static size_t used;

static void put(const char *fmt, const char *a, const char *b) {
    int n = snprintf(out + used, sizeof out - used, fmt, a, b);
    if (n > 0 && (size_t)n < sizeof out - used) used += (size_t)n;
}

static const char *res(int ok) { return ok ? "ok" : strerror(errno); }

static void check_open(const char *key, const char *path, int flags) {
    int fd = path ? open(path, flags | O_CLOEXEC, 0600) : -1;
    if (!path) errno = EINVAL;
    put("\"%s\":\"%s\",", key, res(fd >= 0));
    if (fd >= 0) {
        close(fd);
        if (flags & O_CREAT) unlink(path);
    }
}

/* JSON-safe enough for fd targets and variable names (no quotes or backslashes expected). */
static void put_list_item(const char *s, int first) {
    char clean[512];
    size_t k = 0;
    for (; *s && k < sizeof clean - 1; s++) clean[k++] = (*s == '"' || *s == '\\') ? '?' : *s;
    clean[k] = 0;
    put("%s\"%s\"", first ? "" : ",", clean);
}

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ev;
    used = 0;
    const char *data = getenv("PRIV_DATA"), *other = getenv("PRIV_OTHER");
    const char *root = getenv("LAMBDA_TASK_ROOT"), *tmpdir = getenv("TMPDIR");
    char p[4096];
    put("{%s%s", "", "");
    snprintf(p, sizeof p, "%s/credentials", data ? data : "");
    check_open("read_credentials", p, O_RDONLY);
    DIR *d = data ? opendir(data) : NULL;
    put("\"%s\":\"%s", "list_data", res(d != NULL));
    for (struct dirent *de; d && (de = readdir(d));)
        if (de->d_name[0] != '.') put("%s%s", d ? ":" : "", de->d_name);
    put("\",%s%s", "", "");
    if (d) closedir(d);
    check_open("read_other_code", other, O_RDONLY);
    snprintf(p, sizeof p, "%s/privprobe-was-here", data ? data : "");
    check_open("write_data", p, O_WRONLY | O_CREAT);
    int tfd = open("/tmp/tributary-privprobe-escape-c", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    put("\"%s\":\"%s\",", "write_tmp", res(tfd >= 0));   /* left there: the test looks */
    if (tfd >= 0) close(tfd);
    put("\"tmpdir\":\"%s\",%s", tmpdir ? tmpdir : "", "");
    snprintf(p, sizeof p, "%s/privprobe", tmpdir ? tmpdir : "");
    check_open("write_scratch", p, O_WRONLY | O_CREAT);
    snprintf(p, sizeof p, "%s/libprivprobe.so", root ? root : "");
    check_open("read_own_code", p, O_RDONLY);
    check_open("write_own_code", p, O_WRONLY);
    check_open("read_etc", "/etc/passwd", O_RDONLY);
    check_open("open_tty", "/dev/tty", O_RDWR | O_NOCTTY);
    /* a readable directory of the test's choosing (the repository holding the data dir) */
    check_open("read_repo", getenv("PRIV_REPO_FILE"), O_RDONLY);
    snprintf(p, sizeof p, "/proc/%d/environ", (int)getppid());
    check_open("server_environ", p, O_RDONLY);
    put("\"%s\":\"%s\",", "signal_server", res(kill(getppid(), 0) == 0));
    snprintf(p, sizeof p, "%d", (int)getuid());
    put("\"uid\":%s,%s", p, "");
    put("\"root\":\"%s\",%s", root ? root : "", "");
    FILE *st = fopen("/proc/self/status", "r");
    char line[256], capeff[64] = "?";
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "CapEff:", 7)) sscanf(line + 7, "%63s", capeff);
    if (st) fclose(st);
    put("\"cap_eff\":\"%s\",%s", capeff, "");
    put("\"fds\":[%s%s", "", "");
    DIR *fds = opendir("/proc/self/fd");
    int first = 1;
    struct dirent *e;
    while (fds && (e = readdir(fds))) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(fds)) continue;
        char link[300], target[256];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        char item[600];
        snprintf(item, sizeof item, "%s %s", e->d_name, target);
        put_list_item(item, first);
        first = 0;
    }
    if (fds) closedir(fds);
    put("],\"env\":[%s%s", "", "");
    first = 1;
    for (char **v = environ; *v; v++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(*v, "="), *v);
        put_list_item(name, first);
        first = 0;
    }
    put("]}%s%s", "", "");
    return trf_respond(ctx, out, used);
}
