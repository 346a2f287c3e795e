/* SPDX-License-Identifier: Apache-2.0
 *
 * test_core_helpers.c -- the helpers the engines share: tr_rmtree, tr_uuid_v4, tr_x*alloc,
 * clocks (core/fs.h, core/uuid.h, core/mem.h, core/clock.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/buf.h"
#include "core/fs.h"
#include "core/mem.h"
#include "core/uuid.h"

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void rmtree_removes_a_deep_tree_and_never_follows_links(void **st) {
    (void)st;
    char root[] = "/tmp/tr-rmtree-XXXXXX", outside[] = "/tmp/tr-rmtree-out-XXXXXX";
    assert_non_null(mkdtemp(root));
    assert_non_null(mkdtemp(outside));
    char p[4096], keep[4096];
    snprintf(keep, sizeof keep, "%s/keep", outside);
    touch(keep);
    /* A path deeper than PATH_MAX in total: 120 levels of 40-character names. */
    char name[41];
    memset(name, 'd', 40);
    name[40] = 0;
    assert_int_equal(chdir(root), 0);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(mkdir(name, 0700), 0);
        assert_int_equal(chdir(name), 0);
    }
    touch("leaf");
    assert_int_equal(symlink(outside, "link-to-outside"), 0);
    assert_int_equal(chdir("/"), 0);
    snprintf(p, sizeof p, "%s/file", root);
    touch(p);
    assert_int_equal(tr_rmtree(root), 0);
    struct stat sb;
    assert_int_not_equal(lstat(root, &sb), 0);
    assert_int_equal(lstat(keep, &sb), 0);       /* the link was removed, not followed */
    assert_int_equal(tr_rmtree(root), 0);        /* missing: success */
    assert_int_equal(tr_rmtree(keep), 0);        /* a plain file */
    assert_int_not_equal(lstat(keep, &sb), 0);
    assert_int_equal(rmdir(outside), 0);
}

static void uuid_v4_has_the_layout_and_differs(void **st) {
    (void)st;
    char a[TR_UUID_LEN + 1], b[TR_UUID_LEN + 1];
    tr_uuid_v4(a);
    tr_uuid_v4(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) assert_int_equal(a[i], '-');
        else assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');                          /* version 4 */
    assert_non_null(strchr("89ab", a[19]));                /* RFC 4122 variant */
}

static void xalloc_copies_and_zeroes(void **st) {
    (void)st;
    char *s = tr_xstrdup("hello");
    assert_string_equal(s, "hello");
    assert_null(tr_xstrdup(NULL));
    char *n = tr_xstrndup("hello", 3);
    assert_string_equal(n, "hel");
    int *z = tr_xcalloc(16, sizeof *z);
    for (int i = 0; i < 16; i++) assert_int_equal(z[i], 0);
    z = tr_xrealloc(z, 1024 * sizeof *z);
    z[1023] = 7;
    void *zero = tr_xmalloc(0);                            /* never NULL, even for 0 bytes */
    assert_non_null(zero);
    free(zero);
    free(z);
    free(n);
    free(s);
}

static void clocks_move_forward(void **st) {
    (void)st;
    long long w = tr_now_ms(), m = tr_mono_ms(), ns = tr_mono_ns();
    assert_true(w > 1700000000000LL);                      /* after 2023 */
    assert_true(ns / 1000000 >= m);
    assert_true(tr_mono_ms() >= m);
}

static void mkdir_p_makes_every_level_and_refuses_a_file(void **st) {
    (void)st;
    char root[] = "/tmp/tr-mkdirp-XXXXXX", p[512];
    assert_non_null(mkdtemp(root));
    snprintf(p, sizeof p, "%s/a/b//c/", root);
    assert_int_equal(tr_mkdir_p(p), 0);
    assert_int_equal(tr_mkdir_p(p), 0);                    /* exists: success */
    struct stat sb;
    snprintf(p, sizeof p, "%s/a/b/c", root);
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    snprintf(p, sizeof p, "%s/a/file", root);
    touch(p);
    assert_int_equal(tr_mkdir_p(p), -1);                   /* a file is not a directory */
    snprintf(p, sizeof p, "%s/a/file/d", root);
    assert_int_equal(tr_mkdir_p(p), -1);
    assert_int_equal(tr_rmtree(root), 0);
}

static void digest_matches_openssl(void **st) {
    (void)st;
    uint8_t a[32], b[32], big[200];
    unsigned n = 32;
    memset(big, 'k', sizeof big);
    tr_sha256("abc", 3, a);
    char hex[65];
    tr_hex(a, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    for (size_t klen = 0; klen <= sizeof big; klen += 50) {  /* short, block-sized, long keys */
        tr_hmac_sha256(big, klen, "message", 7, a);
        HMAC(EVP_sha256(), big, (int)klen, (const uint8_t *)"message", 7, b, &n);
        assert_memory_equal(a, b, 32);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rmtree_removes_a_deep_tree_and_never_follows_links),
        cmocka_unit_test(uuid_v4_has_the_layout_and_differs),
        cmocka_unit_test(xalloc_copies_and_zeroes),
        cmocka_unit_test(clocks_move_forward),
        cmocka_unit_test(mkdir_p_makes_every_level_and_refuses_a_file),
        cmocka_unit_test(digest_matches_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
