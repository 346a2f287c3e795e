/* SPDX-License-Identifier: Apache-2.0
 *
 * test_fn_code.c -- the functions engine's code storage (fn.h, zip.c): packages stored and
 * garbage-collected race-free under concurrent UpdateFunctionCode / CreateFunction, refused
 * creates leave nothing, symbolic links resolved as the kernel would, entry-count cap, and
 * fault injection at every write / fsync / rename of a store (fn_int.h's fn__fault hook).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include "core/buf.h"
#include "fn/fn.h"
#include "fn/fn_int.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* A one-file package whose bootstrap says `tag`. */
static uint8_t *tag_zip(const char *tag, size_t *n) {
    char body[128];
    snprintf(body, sizeof body, "#!/bin/sh\necho %s\n", tag);
    tu_zentry_t e[] = {{"bootstrap", body, 0100755}, {"lib/", NULL, 0}, {"lib/data.txt", tag, 0}};
    return tu_zip(e, 3, n);
}

static fn_t *open_fn_sync(int no_sync) {
    fn_t *fn = NULL;
    tr_err err;
    tr_err_clear(&err);
    fn_opts_t o;
    memset(&o, 0, sizeof o);
    o.no_sync = no_sync;
    tu_ok(fn_open(tu_dir, &o, &fn, &err), err);
    return fn;
}

static fn_t *open_fn(void) { return open_fn_sync(1); }

static int create_zip(fn_t *fn, const char *name, const uint8_t *z, size_t n, tr_err *err) {
    fn_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.runtime = "provided";
    c.role = "arn:aws:iam::000000000000:role/r";
    return fn_create(fn, &c, z, n, NULL, err);
}

static int exists(const char *fmt, const char *a) {
    char p[1024];
    snprintf(p, sizeof p, fmt, tu_dir, a);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Entries of functions/<name> (0 when the directory is missing). */
static int count_entries(const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/functions/%s", tu_dir, name);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* The function's current package is complete: its zip and its unpacked bootstrap exist and the
 * bootstrap holds the tag the registry's CodeSha256 belongs to.  Returns the tag index or -1. */
static void assert_code_usable(fn_t *fn, const char *name) {
    fn_config_t c;
    tr_err err;
    assert_int_equal(fn_get(fn, name, &c, &err), 0);
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/bootstrap", c.code_dir);
    if (stat(p, &st) != 0) fail_msg("package of %s is gone: %s", name, p);
    snprintf(p, sizeof p, "%s/lib/data.txt", c.code_dir);
    assert_int_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s.zip", c.code_dir);
    if (stat(p, &st) != 0) fail_msg("zip of %s is gone: %s", name, p);
    assert_int_equal((uint64_t)st.st_size, c.code_size);
    fn_config_free(&c);
}

/* ---- #3: concurrent UpdateFunctionCode ------------------------------------------------------ */

typedef struct upd_arg {
    fn_t *fn;
    int id;
    int round;
    int rc;
} upd_arg_t;

static void *upd_thread(void *p) {
    upd_arg_t *a = p;
    char tag[64];
    snprintf(tag, sizeof tag, "t%d-r%d", a->id, a->round);
    size_t n;
    uint8_t *z = tag_zip(tag, &n);
    tr_err err;
    a->rc = fn_update_code(a->fn, "race", z, n, NULL, NULL, &err);
    free(z);
    return NULL;
}

static void test_update_race_keeps_winner(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    size_t n;
    uint8_t *z = tag_zip("first", &n);
    assert_int_equal(create_zip(fn, "race", z, n, &err), 0);
    free(z);
    enum { THREADS = 4, ROUNDS = 40 };
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[THREADS];
        upd_arg_t a[THREADS];
        for (int i = 0; i < THREADS; i++) {
            a[i] = (upd_arg_t){.fn = fn, .id = i, .round = r};
            assert_int_equal(pthread_create(&th[i], NULL, upd_thread, &a[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(a[i].rc, 0);
        }
        assert_code_usable(fn, "race");
        /* only the live package and the one before it (zip + dir each) and logs remain */
        int left = count_entries("race");
        if (left > 5) fail_msg("round %d: %d entries left in functions/race", r, left);
    }
    fn_close(fn);
    fn = open_fn();
    assert_code_usable(fn, "race");
    fn_close(fn);
}

/* Concurrent creates of one name: one wins, its package survives the losers' cleanup. */
typedef struct cr_arg {
    fn_t *fn;
    int id;
    int rc;
} cr_arg_t;

static void *create_thread(void *p) {
    cr_arg_t *a = p;
    char tag[32];
    snprintf(tag, sizeof tag, "c%d", a->id % 2);   /* two threads share each package */
    size_t n;
    uint8_t *z = tag_zip(tag, &n);
    tr_err err;
    a->rc = create_zip(a->fn, "dup", z, n, &err);
    free(z);
    return NULL;
}

static void test_create_race(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    for (int r = 0; r < 30; r++) {
        enum { THREADS = 4 };
        pthread_t th[THREADS];
        cr_arg_t a[THREADS];
        for (int i = 0; i < THREADS; i++) {
            a[i] = (cr_arg_t){.fn = fn, .id = i};
            assert_int_equal(pthread_create(&th[i], NULL, create_thread, &a[i]), 0);
        }
        int won = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            if (a[i].rc == 0) won++;
            else assert_int_equal(a[i].rc, TR_EEXISTS);
        }
        assert_int_equal(won, 1);
        assert_code_usable(fn, "dup");
        assert_int_equal(fn_delete(fn, "dup", &err), 0);
        assert_false(exists("%s/functions/%s", "dup"));
    }
    fn_close(fn);
}

/* ---- #8: a refused CreateFunction leaves nothing -------------------------------------------- */

static void test_failed_create_leaves_nothing(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    tu_zentry_t bad[] = {{"bootstrap", "x", 0100755}, {"../escape", "x", 0}};
    size_t n;
    uint8_t *z = tu_zip(bad, 2, &n);
    assert_int_equal(create_zip(fn, "nope", z, n, &err), TR_EINVAL);
    free(z);
    assert_false(exists("%s/functions/%s", "nope"));
    uint8_t junk[] = "PK\3\4 this is not a zip";
    assert_int_equal(create_zip(fn, "nope2", junk, sizeof junk, &err), TR_EINVAL);
    assert_false(exists("%s/functions/%s", "nope2"));
    /* a create that loses to an existing name after storing does not touch the winner */
    z = tag_zip("w", &n);
    assert_int_equal(create_zip(fn, "w", z, n, &err), 0);
    assert_int_equal(create_zip(fn, "w", z, n, &err), TR_EEXISTS);
    free(z);
    assert_code_usable(fn, "w");
    /* leftovers of a crash in the middle of a create are removed at open */
    fn_close(fn);
    char p[600];
    snprintf(p, sizeof p, "%s/functions/crashed", tu_dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/functions/w/code-%064d.tmp-1234", tu_dir, 0);
    assert_int_equal(mkdir(p, 0700), 0);
    fn = open_fn();
    assert_false(exists("%s/functions/%s", "crashed"));
    assert_int_equal(count_entries("w"), 3);
    assert_code_usable(fn, "w");
    fn_close(fn);
}

/* ---- #16: symbolic links resolved as the kernel would ---------------------------------------- */

static void test_symlink_escapes(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    tu_zentry_t cases[][3] = {
        /* "./" components in the link's own name made it look deeper than it is */
        {{"a/", NULL, 0}, {"a/./b/l", "../../../x", 0120777}, {"bootstrap", "y", 0100755}},
        {{"a/b/", NULL, 0}, {"a//b/l", "../../../x", 0120777}, {"bootstrap", "y", 0100755}},
        /* a link through a link: up is the root, up/.. is above it */
        {{"a/b/up", "../..", 0120777}, {"a/b/y", "up/..", 0120777}, {"bootstrap", "y", 0100755}},
        /* ... and an entry written through such a link lands outside the package */
        {{"a/b/up", "../..", 0120777},
         {"a/b/up2", "up/..", 0120777},
         {"a/b/up2/evil", "x", 0120777}},
        /* a loop */
        {{"l1", "l2", 0120777}, {"l2", "l1", 0120777}, {"bootstrap", "y", 0100755}},
        /* an entry below a link */
        {{"l", "a", 0120777}, {"a/", NULL, 0}, {"l/f", "data", 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *z = tu_zip(cases[i], 3, &n);
        int rc = create_zip(fn, "sl", z, n, &err);
        free(z);
        if (rc != TR_EINVAL) fail_msg("case %zu: got %d, want TR_EINVAL", i, rc);
        assert_false(exists("%s/functions/%s", "sl"));
        assert_false(exists("%s/functions/%s", "evil"));
        assert_false(exists("%s/%s", "evil"));
    }
    /* links that stay inside are kept, also through other links */
    tu_zentry_t ok[] = {{"a/b/up", "../..", 0120777},
                        {"a/b/self", "up/a/b", 0120777},
                        {"bootstrap", "y", 0100755},
                        {"a/b/f", "data", 0},
                        {"a/b/dangling", "nothing/here", 0120777}};
    size_t n;
    uint8_t *z = tu_zip(ok, 5, &n);
    assert_int_equal(create_zip(fn, "sl", z, n, &err), 0);
    free(z);
    fn_config_t c;
    assert_int_equal(fn_get(fn, "sl", &c, &err), 0);
    char p[4200], buf[64];
    snprintf(p, sizeof p, "%s/a/b/self/f", c.code_dir);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 4);
    close(fd);
    fn_config_free(&c);
    fn_close(fn);
}

/* ---- fault injection: every disk step of a store fails once, or the process dies there ------- */

static int fault_at, fault_seen, fault_crash;

static int fault_hook(const char *step) {
    (void)step;
    if (++fault_seen != fault_at) return 0;
    if (fault_crash) _exit(0);
    return fault_seen % 2 ? ENOSPC : EIO;
}

static uint8_t *fault_zip(const char *tag, size_t *n) {
    char body[128];
    snprintf(body, sizeof body, "#!/bin/sh\necho %s\n", tag);
    tu_zentry_t e[] = {{"bootstrap", body, 0100755},
                       {"lib/", NULL, 0},
                       {"lib/data.txt", tag, 0},
                       {"lib/more/deep.txt", "deep", 0},
                       {"lib/link", "data.txt", 0120777}};
    return tu_zip(e, 5, n);
}

/* What is on disk is either nothing (name absent) or a complete package of one of the tags. */
static void assert_state(const char *name, const char *want_sha, const char *alt_sha) {
    fn_t *fn = open_fn_sync(0);
    fn_config_t c;
    tr_err err;
    int rc = fn_get(fn, name, &c, &err);
    if (!want_sha && !alt_sha) {
        assert_int_equal(rc, TR_ENOTFOUND);
        assert_false(exists("%s/functions/%s", name));
    } else if (rc == TR_ENOTFOUND && !want_sha) {
        assert_false(exists("%s/functions/%s", name));
    } else {
        assert_int_equal(rc, 0);
        int which = want_sha && !strcmp(c.code_sha256, want_sha);
        if (!which && !(alt_sha && !strcmp(c.code_sha256, alt_sha)))
            fail_msg("%s holds an unexpected package %s", name, c.code_sha256);
        fn_config_free(&c);
        assert_code_usable(fn, name);
        /* no leftovers: the package (zip + dir) and maybe logs */
        int left = count_entries(name);
        if (left > 3) fail_msg("%d entries left in functions/%s", left, name);
    }
    fn_close(fn);
}

/* In a child process, create (update = 0) or update (1) `name` with the fault hook armed; the
 * hook ends the child at the chosen step (fault_crash), with status 0.  A child that finishes
 * the call instead (the step was never reached) exits 3: the test fails. */
static void crash_in_child(int update, const char *name, const uint8_t *z, size_t n) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tr_err err;
        fn_t *f2 = open_fn_sync(0);
        fn__fault = fault_hook;
        if (update) fn_update_code(f2, name, z, n, NULL, NULL, &err);
        else create_zip(f2, name, z, n, &err);
        _exit(3);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_fault_injection(void **state) {
    (void)state;
    tr_err err;
    size_t n1, n2;
    uint8_t *z1 = fault_zip("one", &n1), *z2 = fault_zip("two", &n2);
    char sha1[45], sha2[45], hex[65];
    fn__sha256(z1, n1, hex, sha1);
    fn__sha256(z2, n2, hex, sha2);
    /* count the steps of a create and of an update */
    fn_t *fn = open_fn_sync(0);
    fault_at = 0;
    fault_seen = 0;
    fn__fault = fault_hook;
    assert_int_equal(create_zip(fn, "probe", z1, n1, &err), 0);
    int create_steps = fault_seen;
    fault_seen = 0;
    assert_int_equal(fn_update_code(fn, "probe", z2, n2, NULL, NULL, &err), 0);
    int update_steps = fault_seen;
    fn__fault = NULL;
    assert_int_equal(fn_delete(fn, "probe", &err), 0);
    fn_close(fn);
    assert_true(create_steps >= 8);
    assert_true(update_steps >= 7);

    for (int crash = 0; crash < 2; crash++) {
        for (int k = 1; k <= create_steps; k++) {
            fault_at = k;
            fault_seen = 0;
            fault_crash = crash;
            if (crash) {
                crash_in_child(0, "f", z1, n1);
                assert_state("f", NULL, sha1); /* either never created or complete */
                fn = open_fn_sync(0);
                fn_delete(fn, "f", &err);
                fn_close(fn);
            } else {
                fn = open_fn_sync(0);
                fn__fault = fault_hook;
                int rc = create_zip(fn, "f", z1, n1, &err);
                fn__fault = NULL;
                if (rc == 0) fail_msg("create survived a failure at step %d", k);
                assert_int_equal(fn_get(fn, "f", NULL, &err), TR_ENOTFOUND);
                assert_false(exists("%s/functions/%s", "f"));
                fn_close(fn);
                assert_state("f", NULL, NULL);
            }
        }
        fn = open_fn_sync(0);
        assert_int_equal(create_zip(fn, "u", z1, n1, &err), 0);
        fn_close(fn);
        for (int k = 1; k <= update_steps; k++) {
            fault_at = k;
            fault_seen = 0;
            fault_crash = crash;
            if (crash) {
                crash_in_child(1, "u", z2, n2);
                assert_state("u", sha1, sha2);
            } else {
                fn = open_fn_sync(0);
                fn__fault = fault_hook;
                int rc = fn_update_code(fn, "u", z2, n2, NULL, NULL, &err);
                fn__fault = NULL;
                if (rc == 0) fail_msg("update survived a failure at step %d", k);
                fn_config_t c;
                assert_int_equal(fn_get(fn, "u", &c, &err), 0);
                assert_string_equal(c.code_sha256, sha1); /* old code still live */
                fn_config_free(&c);
                assert_code_usable(fn, "u");
                fn_close(fn);
                assert_state("u", sha1, NULL);
            }
            /* back to the old code for the next round */
            fn = open_fn_sync(0);
            assert_int_equal(fn_update_code(fn, "u", z1, n1, NULL, NULL, &err), 0);
            fn_close(fn);
        }
        fn = open_fn_sync(0);
        assert_int_equal(fn_delete(fn, "u", &err), 0);
        fn_close(fn);
    }
    fault_crash = 0;
    free(z1);
    free(z2);
}

/* ---- the code workers: bounded queue, shutdown answers the queued ---------------------------- */

static pthread_mutex_t w_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t w_cv = PTHREAD_COND_INITIALIZER;
static int w_release, w_running, w_ran, w_closed;

static void blocking_work(void *arg, int closed) {
    (void)arg;
    pthread_mutex_lock(&w_mu);
    if (closed) {
        w_closed++;
    } else {
        w_running++;
        pthread_cond_broadcast(&w_cv);
        while (!w_release) pthread_cond_wait(&w_cv, &w_mu);
        w_ran++;
    }
    pthread_mutex_unlock(&w_mu);
}

static void test_work_queue_bounded(void **state) {
    (void)state;
    fn_t *fn = open_fn();
    tr_err err;
    /* FN_CODE_WORKERS run and block, FN_CODE_QUEUE wait, the next is throttled */
    for (int i = 0; i < FN_CODE_WORKERS; i++)
        assert_int_equal(fn_work_submit(fn, blocking_work, NULL, &err), 0);
    pthread_mutex_lock(&w_mu);
    while (w_running < FN_CODE_WORKERS) pthread_cond_wait(&w_cv, &w_mu);
    pthread_mutex_unlock(&w_mu);
    for (int i = 0; i < FN_CODE_QUEUE; i++)
        assert_int_equal(fn_work_submit(fn, blocking_work, NULL, &err), 0);
    assert_int_equal(fn_work_submit(fn, blocking_work, NULL, &err), TR_ETHROTTLED);
    assert_non_null(strstr(err.msg, "retry"));
    /* let two finish: the queue has room again */
    pthread_mutex_lock(&w_mu);
    w_release = 1;
    pthread_cond_broadcast(&w_cv);
    pthread_mutex_unlock(&w_mu);
    fn_shutdown(fn);
    /* every call ran or was told the server is closing, exactly once */
    assert_int_equal(w_ran + w_closed, FN_CODE_WORKERS + FN_CODE_QUEUE);
    assert_int_equal(fn_work_submit(fn, blocking_work, NULL, &err), TR_ECLOSED);
    fn_close(fn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TU_DIR_TEST(test_update_race_keeps_winner),
        TU_DIR_TEST(test_create_race),
        TU_DIR_TEST(test_failed_create_leaves_nothing),
        TU_DIR_TEST(test_symlink_escapes),
        TU_DIR_TEST(test_fault_injection),
        TU_DIR_TEST(test_work_queue_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
