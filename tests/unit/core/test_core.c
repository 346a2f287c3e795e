/* SPDX-License-Identifier: Apache-2.0
 *
 * test_core.c -- CRC-32C, base64, JSON escaping and error helpers (core/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/tlog.h"
#include <time.h>

static void crc_check_value(void **st) {
    (void)st;
    assert_int_equal(tr_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tr__crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tr_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA, of 0xFF -> 0x62A8AB43 */
    uint8_t z[32] = {0}, f[32];
    memset(f, 0xff, sizeof f);
    assert_int_equal(tr_crc32c(0, z, 32), 0x8A9136AAu);
    assert_int_equal(tr_crc32c(0, f, 32), 0x62A8AB43u);
}

static void crc_hw_matches_sw_and_chains(void **st) {
    (void)st;
    uint8_t buf[4099];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n < sizeof buf; n += 97) {
        uint32_t whole = tr_crc32c(0, buf, n);
        assert_int_equal(whole, tr__crc32c_sw(0, buf, n));
        size_t cut = n / 3;
        assert_int_equal(whole, tr_crc32c(tr_crc32c(0, buf, cut), buf + cut, n - cut));
    }
}

static void base64_round_trip(void **st) {
    (void)st;
    const char *vec[][2] = {{"", ""},
                            {"f", "Zg=="},
                            {"fo", "Zm8="},
                            {"foo", "Zm9v"},
                            {"foob", "Zm9vYg=="},
                            {"fooba", "Zm9vYmE="},
                            {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        tr_buf b = TR_BUF_INIT;
        tr_buf_base64(&b, vec[i][0], strlen(vec[i][0]));
        assert_string_equal(b.data ? b.data : "", vec[i][1]);
        uint8_t out[16];
        long n = tr_base64_decode(vec[i][1], strlen(vec[i][1]), out);
        assert_int_equal(n, (long)strlen(vec[i][0]));
        assert_memory_equal(out, vec[i][0], (size_t)n);
        tr_buf_free(&b);
    }
    uint8_t out[16];
    assert_int_equal(tr_base64_decode("Zm9", 3, out), -1);       /* length not a multiple of 4 */
    assert_int_equal(tr_base64_decode("Zm=v", 4, out), -1);      /* padding in the middle */
    assert_int_equal(tr_base64_decode("Zm9v\n", 5, out), -1);    /* whitespace */
    assert_int_equal(tr_base64_decode("Zg==Zg==", 8, out), -1);  /* padding before the end */
    assert_int_equal(tr_base64_decode("Z!==", 4, out), -1);
}

static void json_escaping(void **st) {
    (void)st;
    tr_buf b = TR_BUF_INIT;
    const char s[] = "a\"b\\c\n\x01\x7f\xc3\xa9";
    tr_buf_json_str(&b, s, sizeof s - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\x7f\xc3\xa9\"");
    tr_buf_free(&b);
}

static void err_helpers(void **st) {
    (void)st;
    tr_err e;
    tr_err_clear(&e);
    assert_int_equal(tr_err_set(&e, TR_ENOTFOUND, "stream \"%s\" not found", "x"), TR_ENOTFOUND);
    assert_string_equal(e.msg, "stream \"x\" not found");
    assert_string_equal(tr_err_name(TR_ETHROTTLED), "THROTTLED");
    assert_string_equal(tr_err_name(12345), "UNKNOWN");
    assert_int_equal(tr_err_set(NULL, TR_EIO, "ignored"), TR_EIO);
}

static void log_rate_limit(void **state) {
    (void)state;
    tr_ratelimit rl = {0};
    unsigned dropped = 99, allowed = 0;
    long long t0 = tr_mono_ns();
    for (int i = 0; i < 1000; i++) allowed += (unsigned)tr_log_allow(&rl, 5, &dropped);
    /* 1000 calls take far less than a second; at most two windows were seen */
    if (tr_mono_ns() - t0 < 900000000LL) assert_true(allowed >= 5 && allowed <= 10);
    /* the next window reports what was suppressed */
    struct timespec ts = {1, 100000000};
    nanosleep(&ts, NULL);
    assert_int_equal(tr_log_allow(&rl, 5, &dropped), 1);
    assert_int_equal(dropped, 1000 - allowed);
    assert_int_equal(tr_log_allow(&rl, 5, &dropped), 1);
    assert_int_equal(dropped, 0);
}

static void fsync_parent(void **state) {
    (void)state;
    assert_int_equal(tr_fsync_parent("/tmp/some-file"), 0);
    assert_int_equal(tr_fsync_parent("relative-file"), 0);        /* the current directory */
    assert_int_equal(tr_fsync_parent("/no/such/dir/file"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc_check_value),   cmocka_unit_test(crc_hw_matches_sw_and_chains),
        cmocka_unit_test(base64_round_trip), cmocka_unit_test(json_escaping),
        cmocka_unit_test(err_helpers),       cmocka_unit_test(log_rate_limit),
        cmocka_unit_test(fsync_parent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
