/* SPDX-License-Identifier: Apache-2.0
 *
 * testutil.h -- what the cmocka unit tests under tests/unit/<subsystem>/ share: temporary
 * directories, cmocka fixtures that make and remove one per test, assertions on tr_err results,
 * and an in-memory zip builder for the functions engine's tests.
 *
 * Every unit test binary links tests/unit/testutil.c (CMakeLists.txt, "Unit tests"); a test file
 * includes <cmocka.h> (after its setjmp.h / stdarg.h / stddef.h / stdint.h) and then this header.
 *
 * Invariants:
 * - A temporary directory is made under /tmp with mkdtemp (mode 0700, a fresh name per call) and
 *   removed with everything beneath it, links not followed.  Fix: a test that must outlive its
 *   directory (to look at it after a failure) sets TRIBUTARY_KEEP_DATA=1, as the Python suites do.
 * - The helpers fail the running test (cmocka's fail_msg) rather than return errors: they are
 *   for test bodies and fixtures.  In a forked child a failure is caught by the child's copy of
 *   cmocka, which goes on with the remaining tests there.  Fix: a child checks for itself and
 *   _exits with a status the parent asserts on (test_fn_code.c's crash_in_child).
 * Thread rules: the tu_ok / tu_fails checks may run on any thread cmocka runs tests on (its main
 * thread); from other threads use plain checks and report through the test's own state.
 */
#ifndef TR_TESTUTIL_H
#define TR_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"

/* ---- temporary directories ----------------------------------------------------------------- */

/* Make /tmp/<tag>.XXXXXX and return its path (malloc'ed: the caller frees it with
 * tu_tmpdir_done).  Fails the test when the directory cannot be made. */
char *tu_tmpdir(const char *tag);

/* Remove `dir` and all it holds (core/fs.h's tr_rmtree: links not followed), then free it (NULL
 * is accepted).  With TRIBUTARY_KEEP_DATA=1 the directory is kept and its path printed. */
void tu_tmpdir_done(char *dir);

/* ---- cmocka fixtures ------------------------------------------------------------------------ */

/* A per-test temporary directory: tu_dir_setup makes one (a tu_tmpdir named after the binary)
 * and sets both *state and tu_dir to it; tu_dir_teardown removes it, also after a failed test,
 * and sets tu_dir to NULL.  Use as
 *     cmocka_unit_test_setup_teardown(test_x, tu_dir_setup, tu_dir_teardown)   (TU_DIR_TEST)
 * and in the test (or its file's helpers) read the path from *state or tu_dir.  Owned by the
 * fixture: valid from setup to teardown; do not free. */
extern char *tu_dir;
int tu_dir_setup(void **state);
int tu_dir_teardown(void **state);

/* cmocka_unit_test_setup_teardown with the temporary-directory fixture. */
#define TU_DIR_TEST(f) cmocka_unit_test_setup_teardown(f, tu_dir_setup, tu_dir_teardown)

/* ---- tr_err results ------------------------------------------------------------------------- */

/* `call` must return 0; otherwise the test fails with the call's text, its code's name and the
 * message in `err` (a tr_err the call filled):
 *     tr_err e;
 *     tu_ok(slog_open(dir, &o, &lg, &e), e);                                                 */
#define tu_ok(call, err)                                                                           \
    do {                                                                                           \
        int tu_rc_ = (call);                                                                       \
        if (tu_rc_) fail_msg("%s: %s (%d): %s", #call, tr_err_name(tu_rc_), tu_rc_, (err).msg);    \
    } while (0)

/* `call` must fail with `code` (a negative TR_E*) and a message holding `text` (NULL: any). */
#define tu_fails(call, code, err, text)                                                            \
    tu__fails((call), (code), &(err), (text), #call, __FILE__, __LINE__)

void tu__fails(int rc, int code, const tr_err *err, const char *text, const char *call,
               const char *file, int line);

/* ---- test data ------------------------------------------------------------------------------ */

/* Parse JSON test text (any value at the top, \u0000 allowed in strings); NULL gives NULL.  The
 * caller owns the result (json_decref).  Bad JSON fails the test with the text and the error. */
json_t *tu_json(const char *text);

/* xorshift64: the next pseudo-random number of the sequence kept in *state (nonzero); the same
 * seed gives the same sequence on every run, so a failure replays. */
uint64_t tu_xorshift(uint64_t *state);

/* ---- zip archives (the functions engine's packages) ------------------------------------------ */

typedef struct tu_zentry {
    const char *name;
    const char *data; /* NULL: directory */
    unsigned mode; /* Unix mode incl. type bits; 0: regular 0644 / directory 0755 */
} tu_zentry_t;

/* Build a zip of `count` entries in memory (a later entry of the same name replaces an earlier
 * one); *n receives its size.  The caller frees the result with free(). */
uint8_t *tu_zip(const tu_zentry_t *e, size_t count, size_t *n);

#endif
