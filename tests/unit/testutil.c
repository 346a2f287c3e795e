/* SPDX-License-Identifier: Apache-2.0
 *
 * testutil.c -- the shared helpers of the unit tests (testutil.h): temporary directories and
 * their cmocka fixtures, tr_err assertions, and the in-memory zip builder.  Linked into every
 * binary of tests/unit/<subsystem>/test_*.c; nothing here is part of the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "core/fs.h"
#include "testutil.h"

/* ---- temporary directories ----------------------------------------------------------------- */

char *tu_tmpdir(const char *tag) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/%s.XXXXXX", tag);
    if (!mkdtemp(path)) fail_msg("mkdtemp %s: %s", path, strerror(errno));
    char *d = strdup(path);
    assert_non_null(d);
    return d;
}

void tu_tmpdir_done(char *dir) {
    if (!dir) return;
    const char *keep = getenv("TRIBUTARY_KEEP_DATA");
    if (keep && !strcmp(keep, "1")) {
        fprintf(stderr, "kept %s (TRIBUTARY_KEEP_DATA=1)\n", dir);
    } else if (tr_rmtree(dir)) {
        fprintf(stderr, "could not remove %s: %s\n", dir, strerror(errno));
    }
    free(dir);
}

/* ---- cmocka fixtures ------------------------------------------------------------------------ */

char *tu_dir;

int tu_dir_setup(void **state) {
    /* named after the binary (e.g. /tmp/log_test_slog.XXXXXX), to tell whose a leftover is */
    tu_dir = tu_tmpdir(program_invocation_short_name);
    *state = tu_dir;
    return 0;
}

int tu_dir_teardown(void **state) {
    tu_tmpdir_done(tu_dir);
    tu_dir = NULL;
    *state = NULL;
    return 0;
}

/* ---- tr_err results ------------------------------------------------------------------------- */

void tu__fails(int rc, int code, const tr_err *err, const char *text, const char *call,
               const char *file, int line) {
    if (rc != code)
        fail_msg("%s:%d: %s returned %s (%d), want %s (%d): %s", file, line, call,
                 rc ? tr_err_name(rc) : "success", rc, tr_err_name(code), code, rc ? err->msg : "");
    if (text && !strstr(err->msg, text))
        fail_msg("%s:%d: %s: message \"%s\" does not say \"%s\"", file, line, call, err->msg, text);
}

/* ---- test data ------------------------------------------------------------------------------ */

json_t *tu_json(const char *text) {
    if (!text) return NULL;
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

uint64_t tu_xorshift(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* ---- zip archives ---------------------------------------------------------------------------- */

uint8_t *tu_zip(const tu_zentry_t *e, size_t count, size_t *n) {
    char path[] = "/tmp/fnzipXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    int err;
    zip_t *z = zip_open(path, ZIP_TRUNCATE | ZIP_CREATE, &err);
    assert_non_null(z);
    for (size_t i = 0; i < count; i++) {
        zip_int64_t idx;
        if (!e[i].data) {
            idx = zip_dir_add(z, e[i].name, ZIP_FL_ENC_UTF_8);
        } else {
            zip_source_t *s = zip_source_buffer(z, e[i].data, strlen(e[i].data), 0);
            idx = zip_file_add(z, e[i].name, s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
        }
        assert_true(idx >= 0);
        unsigned mode = e[i].mode ? e[i].mode : (e[i].data ? 0100644 : 040755);
        zip_file_set_external_attributes(z, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                         (zip_uint32_t)mode << 16);
    }
    assert_int_equal(zip_close(z), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    unlink(path);
    *n = (size_t)len;
    return b;
}
