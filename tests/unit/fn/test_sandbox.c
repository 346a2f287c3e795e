/* SPDX-License-Identifier: Apache-2.0
 *
 * test_sandbox.c -- function confinement (src/fn/sandbox.h): what a process that entered a
 * function's ruleset can open, scratch directories, and the refusals. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fn/sandbox.h"

static char base[256], code[300], data[300], scratch[300];

static void write_file(const char *dir, const char *name) {
    char p[512];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static int setup(void **state) {
    (void)state;
    snprintf(base, sizeof base, "/tmp/tr-sandbox-XXXXXX");
    assert_non_null(mkdtemp(base));
    snprintf(code, sizeof code, "%s/code", base);
    snprintf(data, sizeof data, "%s/data", base);
    assert_int_equal(mkdir(code, 0700), 0);
    assert_int_equal(mkdir(data, 0700), 0);
    write_file(code, "bootstrap");
    write_file(data, "credentials");
    tr_err err;
    assert_int_equal(fn_sandbox_scratch_new(scratch, sizeof scratch, &err), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fn_sandbox_scratch_free(scratch);
    fn_sandbox_scratch_free(base);
    return 0;
}

/* Fork, enter the function's ruleset, try `path` with `flags`; returns 0 or the errno. */
static int try_in_sandbox(const char *path, int flags) {
    int rfd = -1;
    tr_err err;
    assert_int_equal(fn_sandbox_ruleset(code, scratch, &rfd, &err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (fn_sandbox_enter(rfd) != 0) _exit(200);
        int fd = open(path, flags | O_CLOEXEC, 0600);
        _exit(fd >= 0 ? 0 : (errno & 0x7f));
    }
    if (rfd >= 0) close(rfd);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 200);
    return WEXITSTATUS(st);
}

static void test_confined_process_reaches_only_its_own(void **state) {
    (void)state;
    if (!fn_sandbox_abi(NULL)) skip();
    char p[512];
    snprintf(p, sizeof p, "%s/bootstrap", code);
    assert_int_equal(try_in_sandbox(p, O_RDONLY), 0);                      /* its package */
    assert_int_equal(try_in_sandbox(p, O_WRONLY), EACCES);                 /* read-only */
    snprintf(p, sizeof p, "%s/credentials", data);
    assert_int_equal(try_in_sandbox(p, O_RDONLY), EACCES);                 /* the data dir */
    assert_int_equal(try_in_sandbox(data, O_RDONLY | O_DIRECTORY), EACCES);
    snprintf(p, sizeof p, "%s/new", data);
    assert_int_equal(try_in_sandbox(p, O_WRONLY | O_CREAT), EACCES);
    snprintf(p, sizeof p, "%s/new", scratch);
    assert_int_equal(try_in_sandbox(p, O_WRONLY | O_CREAT), 0);            /* its scratch */
    snprintf(p, sizeof p, "%s/new", base);
    assert_int_equal(try_in_sandbox(p, O_WRONLY | O_CREAT), EACCES);       /* /tmp itself */
    assert_int_equal(try_in_sandbox("/etc/passwd", O_RDONLY), 0);          /* the system */
    assert_int_equal(try_in_sandbox("/dev/null", O_WRONLY | O_TRUNC), 0);
    assert_int_equal(try_in_sandbox("/etc/tr-sandbox-new", O_WRONLY | O_CREAT), EACCES);
}

/* A server running as root: DAC lets uid 0 open what root owns even without capabilities, so the
 * ruleset itself must leave out the system's secrets and raw devices. */
static void test_system_secrets_and_devices_are_out_of_reach(void **state) {
    (void)state;
    if (!fn_sandbox_abi(NULL)) skip();
    static const char *const denied[] = {
        "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/dev/kmsg",    "/dev/loop0", "/dev/kvm",
        "/dev/mem",    "/dev/sda",     "/dev/vda",     "/dev/nvme0n1", NULL};
    struct stat st;
    for (int i = 0; denied[i]; i++)
        if (stat(denied[i], &st) == 0) {
            int e = try_in_sandbox(denied[i], O_RDONLY);
            if (e != EACCES) fail_msg("%s: expected EACCES, got %d", denied[i], e);
        }
    assert_int_equal(try_in_sandbox("/dev/urandom", O_RDONLY), 0);
    assert_int_equal(try_in_sandbox("/dev/zero", O_RDONLY), 0);
    assert_int_equal(try_in_sandbox("/dev/null", O_RDWR), 0);
    assert_int_equal(try_in_sandbox("/etc/hostname", O_RDONLY) == 0 ||
                         stat("/etc/hostname", &st) != 0,
                     1);
    if (stat("/etc/ssl/certs", &st) == 0)
        assert_int_equal(try_in_sandbox("/etc/ssl/certs", O_RDONLY | O_DIRECTORY), 0);
    if (stat("/etc/ssl/openssl.cnf", &st) == 0)
        assert_int_equal(try_in_sandbox("/etc/ssl/openssl.cnf", O_RDONLY), 0);
}

static void test_extra_dirs(void **state) {
    (void)state;
    if (!fn_sandbox_abi(NULL)) skip();
    tr_err err;
    const char *rel[] = {"relative/dir"};
    assert_int_equal(fn_sandbox_set_dirs(rel, 1, NULL, 0, &err), TR_EINVAL);
    assert_non_null(strstr(err.msg, "relative/dir"));
    const char *w[] = {data};
    assert_int_equal(fn_sandbox_set_dirs(NULL, 0, w, 1, &err), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/credentials", data);
    assert_int_equal(try_in_sandbox(p, O_RDWR), 0);
    assert_int_equal(fn_sandbox_set_dirs(NULL, 0, NULL, 0, &err), 0);
    assert_int_equal(try_in_sandbox(p, O_RDONLY), EACCES);
}

static void test_missing_package_is_refused_with_its_path(void **state) {
    (void)state;
    if (!fn_sandbox_abi(NULL)) skip();
    int rfd = 7;
    tr_err err;
    assert_int_equal(fn_sandbox_ruleset("/nonexistent/pkg", scratch, &rfd, &err), TR_EIO);
    assert_int_equal(rfd, -1);
    assert_non_null(strstr(err.msg, "/nonexistent/pkg"));
}

static void test_unconfined_reason(void **state) {
    (void)state;
    const char *why = NULL;
    int abi = fn_sandbox_abi(&why);
    assert_non_null(why);
    if (!abi) assert_true(strlen(why) > 10);
}

static void test_scratch_is_private_and_removed_without_following_links(void **state) {
    (void)state;
    char dir[256], p[512], outside[512];
    tr_err err;
    assert_int_equal(fn_sandbox_scratch_new(dir, sizeof dir, &err), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(p, sizeof p, "%s/sub", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    write_file(p, "f");
    snprintf(outside, sizeof outside, "%s/credentials", data);
    snprintf(p, sizeof p, "%s/link", dir);
    assert_int_equal(symlink(data, p), 0);   /* a link to a directory outside */
    fn_sandbox_scratch_free(dir);
    assert_int_equal(stat(dir, &st), -1);
    assert_int_equal(stat(outside, &st), 0);   /* not followed */
    fn_sandbox_scratch_free(NULL);
    fn_sandbox_scratch_free("");
}

/* The private /tmp: the child sees its scratch as /tmp, its package (under the real /tmp here)
 * at its own path, and nothing else of the real /tmp. */
static void test_private_tmp(void **state) {
    (void)state;
    char *plan = NULL;
    tr_err err;
    assert_int_equal(fn_sandbox_tmp_plan(code, scratch, &plan, &err), 0);
    assert_non_null(plan);
    char marker[400];
    snprintf(marker, sizeof marker, "%s/marker", scratch);
    write_file(scratch, "marker");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (fn_sandbox_tmp_apply(plan) != 0) _exit(99);   /* namespaces not allowed: skip */
        char p[512];
        struct stat st;
        if (stat("/tmp/marker", &st) != 0) _exit(1);      /* /tmp is the scratch dir */
        snprintf(p, sizeof p, "%s/bootstrap", code);
        if (stat(p, &st) != 0) _exit(2);                  /* its package, same path */
        snprintf(p, sizeof p, "%s/credentials", data);
        if (stat(p, &st) == 0 || errno != ENOENT) _exit(3);   /* the rest: out of sight */
        int fd = open("/tmp/written", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) _exit(4);
        close(fd);
        _exit(0);
    }
    free(plan);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 99) skip();
    assert_int_equal(WEXITSTATUS(st), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/written", scratch);
    struct stat sst;
    assert_int_equal(stat(p, &sst), 0);                      /* landed in the scratch dir */
    /* /tmp shared on purpose (a --lambda-*-dir is /tmp): no plan */
    const char *w[] = {"/tmp"};
    assert_int_equal(fn_sandbox_set_dirs(NULL, 0, w, 1, &err), 0);
    assert_int_equal(fn_sandbox_tmp_plan(code, scratch, &plan, &err), 0);
    assert_null(plan);
    assert_int_equal(fn_sandbox_set_dirs(NULL, 0, NULL, 0, &err), 0);
}

/* The same for a server that is not root: a user namespace maps the user to itself. */
static void test_private_tmp_unprivileged(void **state) {
    (void)state;
    if (geteuid() != 0) skip();   /* needs root to become another user for the test */
    char b2[64] = "/tmp/tr-sandbox-u-XXXXXX", c2[128], s2[128], *plan = NULL;   /* child's */
    assert_non_null(mkdtemp(b2));
    snprintf(c2, sizeof c2, "%s/code", b2);
    snprintf(s2, sizeof s2, "%s/scratch", b2);
    assert_int_equal(mkdir(c2, 0700), 0);
    assert_int_equal(mkdir(s2, 0700), 0);
    write_file(c2, "bootstrap");
    char f[200];
    snprintf(f, sizeof f, "%s/bootstrap", c2);
    assert_int_equal(chown(b2, 65534, 65534) | chown(c2, 65534, 65534) | chown(s2, 65534, 65534) |
                         chown(f, 65534, 65534),
                     0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the server's side (plan: mount points made as the server's user), then the child's */
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            _exit(98);
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* as a server started as that user would be */
        tr_err err;
        if (fn_sandbox_tmp_plan(c2, s2, &plan, &err) || !plan) _exit(97);
        if (fn_sandbox_tmp_apply(plan) != 0) _exit(99); /* user namespaces not allowed */
        struct stat st;
        if (stat(f, &st) != 0) _exit(2);
        if (stat(b2, &st) != 0 || stat("/tmp/code", &st) == 0) _exit(3);
        if (getuid() != 65534) _exit(4); /* the same user, mapped */
        int fd = open("/tmp/written", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        _exit(fd >= 0 ? 0 : 5);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    fn_sandbox_scratch_free(b2);
    if (WEXITSTATUS(st) == 99) skip();
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confined_process_reaches_only_its_own),
        cmocka_unit_test(test_system_secrets_and_devices_are_out_of_reach),
        cmocka_unit_test(test_extra_dirs),
        cmocka_unit_test(test_missing_package_is_refused_with_its_path),
        cmocka_unit_test(test_unconfined_reason),
        cmocka_unit_test(test_scratch_is_private_and_removed_without_following_links),
        cmocka_unit_test(test_private_tmp),
        cmocka_unit_test(test_private_tmp_unprivileged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
