/* SPDX-License-Identifier: Apache-2.0
 *
 * test_num.c -- DynamoDB numbers (table/num.h): parse, format, add/sub, compare, key bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "table/num.h"
#include "testutil.h"

static const char MSG_NAN[] = "A value provided cannot be converted into a number";
static const char MSG_DIGITS[] = "Attempting to store more than 38 significant digits in a Number";
static const char MSG_OVER[] =
    "Number overflow. Attempting to store a number with magnitude larger than supported range";
static const char MSG_UNDER[] =
    "Number underflow. Attempting to store a number with magnitude smaller than supported range";

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return tu_xorshift(&rng_state); }

static tbl_num_t num(const char *s) {
    tbl_num_t x;
    tr_err err = {0};
    int rc = tbl_num_parse(s, strlen(s), &x, &err);
    if (rc) fail_msg("parse \"%s\": %s", s, err.msg);
    return x;
}

static const char *fmt(const tbl_num_t *x) {
    static char buf[4][TBL_NUM_STRMAX];
    static int k;
    char *b = buf[k++ & 3];
    size_t n = tbl_num_format(x, b);
    assert_int_equal(n, strlen(b));
    return b;
}

static void expect_canon(const char *in, const char *want) {
    tbl_num_t x = num(in);
    if (strcmp(fmt(&x), want) != 0) fail_msg("\"%s\" -> \"%s\", want \"%s\"", in, fmt(&x), want);
    /* canonical text parses back to the same value and formats the same */
    tbl_num_t y = num(want);
    assert_int_equal(tbl_num_cmp(&x, &y), 0);
    assert_string_equal(fmt(&y), want);
}

static void expect_bad(const char *in, size_t len, const char *msg) {
    tbl_num_t x, before;
    memset(&x, 0x5a, sizeof x);
    before = x;
    tr_err err = {0};
    int rc = tbl_num_parse(in, len, &x, &err);
    if (rc != TR_EVALIDATION) fail_msg("\"%.*s\" parsed (rc %d), want error", (int)len, in, rc);
    assert_int_equal(err.code, TR_EVALIDATION);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("\"%.*s\": \"%s\", want \"%s\"", (int)len, in, err.msg, msg);
    assert_memory_equal(&x, &before, sizeof x); /* failure writes nothing */
}

static void expect_bad_s(const char *in, const char *msg) { expect_bad(in, strlen(in), msg); }

static tbl_num_t add(const char *a, const char *b) {
    tbl_num_t x = num(a), y = num(b), r;
    tr_err err = {0};
    if (tbl_num_add(&x, &y, &r, &err)) fail_msg("%s + %s: %s", a, b, err.msg);
    return r;
}

static tbl_num_t sub(const char *a, const char *b) {
    tbl_num_t x = num(a), y = num(b), r;
    tr_err err = {0};
    if (tbl_num_sub(&x, &y, &r, &err)) fail_msg("%s - %s: %s", a, b, err.msg);
    return r;
}

static void expect_arith_err(const char *a, const char *b, int is_sub, const char *msg) {
    tbl_num_t x = num(a), y = num(b), r;
    tr_err err = {0};
    int rc = is_sub ? tbl_num_sub(&x, &y, &r, &err) : tbl_num_add(&x, &y, &r, &err);
    if (rc != TR_EVALIDATION) fail_msg("%s %c %s succeeded: %s", a, is_sub ? '-' : '+', b, fmt(&r));
    assert_string_equal(err.msg, msg);
}

/* ---- parse and format ------------------------------------------------------------------- */

static void parse_canonical_forms(void **st) {
    (void)st;
    static const char *cases[][2] = {
        {"0", "0"},
        {"-0", "0"},
        {"+0", "0"},
        {"0.000", "0"},
        {"-0.0e-5", "0"},
        {"0e1000", "0"},
        {"00000", "0"},
        {".0", "0"},
        {"1", "1"},
        {"+3", "3"},
        {"-7.1234", "-7.1234"},
        {"1.50", "1.5"},
        {"100", "100"},
        {"1e2", "100"},
        {"1E2", "100"},
        {"1.5E2", "150"},
        {"1e+5", "100000"},
        {"00042", "42"},
        {"0001.23", "1.23"},
        {".123", "0.123"},
        {"5.", "5"},
        {"-5.", "-5"},
        {"-.5", "-0.5"},
        {"-17e5", "-1700000"},
        {"1e-3", "0.001"},
        {"-0.001", "-0.001"},
        {"12.5e-1", "1.25"},
        {"1500", "1500"},
        {"0.5", "0.5"},
        {"123.456e3", "123456"},
        {"123.456e-3", "0.123456"},
        {"10.010", "10.01"},
        {"1010", "1010"},
        {"0.00000000000000000000000000000000000000000000000001",
         "0.00000000000000000000000000000000000000000000000001"},
        {"1.00000000000000007629769841092E+50",
         "100000000000000007629769841092000000000000000000000"},
        {"-17.4E37", "-174000000000000000000000000000000000000"},
        {"3.1415926535897932384626433832795028841", "3.1415926535897932384626433832795028841"},
        {"31415926535897932384626433832795028841e30",
         "31415926535897932384626433832795028841000000000000000000000000000000"},
        /* zeros around the significant digits are free, however many */
        {"1.000000000000000000000000000000000000000000000000000000", "1"},
        {"0000000000000000000000000000000000000000000000000000000000000012", "12"},
        {"100000000000000000000000000000000000000000000000000",
         "100000000000000000000000000000000000000000000000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_canon(cases[i][0], cases[i][1]);

    tbl_num_t z = num("-0");
    assert_int_equal(z.sign, 0);
    assert_int_equal(z.n, 0);
    tbl_num_t x = num("-1.50e3");
    assert_int_equal(x.sign, -1);
    assert_int_equal(x.n, 2);
    assert_int_equal(x.exp, 4);
    assert_int_equal(x.d[0], 1);
    assert_int_equal(x.d[1], 5);
}

static void parse_range_edges(void **st) {
    (void)st;
    /* the documented extremes are accepted and written out in full */
    tbl_num_t tiny = num("1E-130");
    const char *t = fmt(&tiny);
    assert_int_equal(strlen(t), 2 + 129 + 1);
    assert_memory_equal(t, "0.000", 5);
    assert_int_equal(t[strlen(t) - 1], '1');
    expect_canon(t, t);
    tbl_num_t big = num("9.9999999999999999999999999999999999999E+125");
    const char *b = fmt(&big);
    assert_int_equal(strlen(b), 126);
    assert_memory_equal(b, "9999999999999999999999999999999999999900", 40);
    tbl_num_t nbig = num("-9.9999999999999999999999999999999999999E+125");
    assert_int_equal(strlen(fmt(&nbig)), 127);
    /* longest text: negative, smallest exponent, 38 digits */
    tbl_num_t longest = num("-1.2345678901234567890123456789012345678E-130");
    const char *l = fmt(&longest);
    assert_int_equal(strlen(l), 1 + 2 + 129 + 38);
    assert_true(strlen(l) < TBL_NUM_STRMAX);
    expect_canon(l, l);
    num("1e125");
    num("-1e-130");
    num("9.99999999e125");
    num("1e-100");
    num("12345e-134"); /* 1.2345E-130: magnitude is what counts */

    expect_bad_s("1e126", MSG_OVER);
    expect_bad_s("-1e126", MSG_OVER);
    expect_bad_s("11e125", MSG_OVER);
    expect_bad_s("10000000000000000000000000000000000000000000000000000000000000000000000000000000"
                 "000000000000000000000000000000000000000000000000",
                 MSG_OVER); /* 1E+128 */
    expect_bad_s("1e99999999999999999999999999", MSG_OVER);
    expect_bad_s("1e-131", MSG_UNDER);
    expect_bad_s("-1e-131", MSG_UNDER);
    expect_bad_s("0.9e-130", MSG_UNDER);
    expect_bad_s("1e-99999999999999999999999999", MSG_UNDER);
    /* zero is never out of range */
    tbl_num_t z = num("0e99999999999999999999999999");
    assert_string_equal(fmt(&z), "0");
    z = num("-0.0e-99999999999999999999999999");
    assert_string_equal(fmt(&z), "0");
}

static void parse_precision(void **st) {
    (void)st;
    num("12345678901234567890123456789012345678"); /* 38 */
    num("-1.2345678901234567890123456789012345678");
    num("12345678901234567890123456789012345678000000000000"); /* trailing zeros free */
    num("0.0000012345678901234567890123456789012345678");
    expect_bad_s("123456789012345678901234567890123456789", MSG_DIGITS); /* 39 */
    expect_bad_s("-1.23456789012345678901234567890123456789", MSG_DIGITS);
    expect_bad_s("3.14159265358979323846264338327950288419", MSG_DIGITS);
    expect_bad_s("314159265358979323846.264338327950288419", MSG_DIGITS);
    expect_bad_s("314159265358979323846264338327950288419e30", MSG_DIGITS);
    expect_bad_s("1000000000000000000000000000000000000001", MSG_DIGITS); /* interior zeros count */
    /* magnitude is checked first, as DynamoDB does */
    expect_bad_s("123456789012345678901234567890123456789e200", MSG_OVER);
}

static void parse_junk(void **st) {
    (void)st;
    static const char *bad[] = {
        "",     "-",        "+",         ".",     "-.",    "e5",   "1e",   "1e+",   "1e-", "--1",
        "+-1",  "-+1",      "1.2.3",     "1e5.5", "1e5e5", "..1",  " 1",   "1 ",    " ",   "NaN",
        "-NaN", "Infinity", "-Infinity", "inf",   "dog",   "-dog", "0x10", "1_000", "1,5", "1f",
        "١",    "1e1.",     ".e1",       "+e2",   "1+2",   "1-",   "12a",  "\t1",   "1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_bad_s(bad[i], MSG_NAN);
    expect_bad("1\0", 2, MSG_NAN); /* embedded NUL */
    expect_bad("12345", 0, MSG_NAN); /* len governs, not NUL */
    tbl_num_t x;
    assert_int_equal(tbl_num_parse("12345", 2, &x, NULL), 0);
    assert_string_equal(fmt(&x), "12");
    assert_int_equal(tbl_num_parse("x", 1, &x, NULL), TR_EVALIDATION); /* err may be NULL */
    assert_int_equal(tbl_num_parse(NULL, 0, &x, NULL), TR_EINVAL);
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static void add_sub_exact(void **st) {
    (void)st;
    /* 0.1 ten times is exactly 1 */
    tbl_num_t acc = num("0"), tenth = num("0.1");
    for (int i = 0; i < 10; i++) assert_int_equal(tbl_num_add(&acc, &tenth, &acc, NULL), 0);
    assert_string_equal(fmt(&acc), "1");
    tbl_num_t one = num("1");
    assert_int_equal(tbl_num_cmp(&acc, &one), 0);
    assert_memory_equal(&acc, &one, sizeof acc);

    static const char *cases[][4] = {
        /* a, b, a+b, a-b */
        {"1", "2", "3", "-1"},
        {"999", "1", "1000", "998"},
        {"9.99", "0.01", "10", "9.98"},
        {"1", "0.001", "1.001", "0.999"},
        {"1.5", "1.5", "3", "0"},
        {"-1", "1", "0", "-2"},
        {"-1", "-1", "-2", "0"},
        {"0", "-5", "-5", "5"},
        {"-5", "0", "-5", "-5"},
        {"0", "0", "0", "0"},
        {"1", "10000000000000000000000", "10000000000000000000001", "-9999999999999999999999"},
        {"99999999999999999999999999999999999999", "1", "100000000000000000000000000000000000000",
         "99999999999999999999999999999999999998"},
        {"1e125", "1e125",
         "200000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000",
         "0"},
        {"1e-130", "1e-130",
         "0."
         "0000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000"
         "002",
         "0"},
        {"1.1e-129", "1e-129",
         "0."
         "0000000000000000000000000000000000000000000000000000000000000"
         "00000000000000000000000000000000000000000000000000000000000000000"
         "0021",
         "0."
         "0000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000"
         "001"},
        {"-0.5", "0.25", "-0.25", "-0.75"},
        {"123.456", "-0.456", "123", "123.912"},
        {"1000000", "-0.000001", "999999.999999", "1000000.000001"},
        {"-12345678901234567890123456789012345678", "12345678901234567890123456789012345677", "-1",
         "-24691357802469135780246913578024691355"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbl_num_t s = add(cases[i][0], cases[i][1]), d = sub(cases[i][0], cases[i][1]);
        if (strcmp(fmt(&s), cases[i][2]))
            fail_msg("%s + %s = %s", cases[i][0], cases[i][1], fmt(&s));
        if (strcmp(fmt(&d), cases[i][3]))
            fail_msg("%s - %s = %s", cases[i][0], cases[i][1], fmt(&d));
        tbl_num_t s2 = add(cases[i][1], cases[i][0]); /* commutes */
        assert_int_equal(tbl_num_cmp(&s, &s2), 0);
    }
    /* out may alias an input */
    tbl_num_t a = num("5"), b = num("7");
    assert_int_equal(tbl_num_sub(&a, &b, &a, NULL), 0);
    assert_string_equal(fmt(&a), "-2");
    assert_int_equal(tbl_num_add(&b, &b, &b, NULL), 0);
    assert_string_equal(fmt(&b), "14");
}

static void add_sub_refused(void **st) {
    (void)st;
    expect_arith_err("9e125", "9e125", 0, MSG_OVER);
    expect_arith_err("9e125", "-9e125", 1, MSG_OVER);
    expect_arith_err("-9.9999999999999999999999999999999999999E+125", "1e125", 1, MSG_OVER);
    /* in range but needs 39+ digits: DynamoDB refuses (never rounds), with the overflow text */
    expect_arith_err("1e50", "1", 0, MSG_OVER);
    expect_arith_err("1e50", "1", 1, MSG_OVER);
    expect_arith_err("0.1", "1e-120", 0, MSG_OVER);
    expect_arith_err("99999999999999999999999999999999999999", "0.1", 0, MSG_OVER);
    /* cancellation below the smallest magnitude */
    expect_arith_err("1.01e-129", "1e-129", 1, MSG_UNDER);
    expect_arith_err("-1.01e-129", "1e-129", 0, MSG_UNDER);
    /* a failed operation leaves out untouched */
    tbl_num_t x = num("1e50"), y = num("1"), out = num("42");
    assert_int_equal(tbl_num_add(&x, &y, &out, NULL), TR_EVALIDATION);
    assert_string_equal(fmt(&out), "42");
    assert_int_equal(tbl_num_add(NULL, &y, &out, NULL), TR_EINVAL);
}

/* Decimal text of v * 10^-scale. */
static void i128_text(__int128 v, int scale, char *out) {
    char dig[64];
    int n = 0, neg = v < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    do {
        dig[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (n <= scale) dig[n++] = '0';
    int o = 0;
    if (neg) out[o++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[o++] = dig[i];
        if (i == scale && scale > 0) out[o++] = '.';
    }
    out[o] = '\0';
}

static __int128 p10(int k) {
    __int128 r = 1;
    while (k--) r *= 10;
    return r;
}

static void add_sub_random_vs_int128(void **st) {
    (void)st;
    for (int it = 0; it < 20000; it++) {
        int64_t a = (int64_t)(rnd() % 2000000000000000001ull) - 1000000000000000000LL;
        int64_t b = (int64_t)(rnd() % 2000000000000000001ull) - 1000000000000000000LL;
        if (it % 3 == 0) b = (int64_t)(rnd() % 2001) - 1000; /* small against big */
        if (it % 7 == 0) b = -a + (int64_t)(rnd() % 5) - 2; /* near cancellation */
        int sa = (int)(rnd() % 19), sb = (int)(rnd() % 19), s = sa > sb ? sa : sb;
        __int128 A = (__int128)a * p10(s - sa), B = (__int128)b * p10(s - sb);
        char ta[80], tb[80], ts[80], td[80];
        i128_text(a, sa, ta);
        i128_text(b, sb, tb);
        i128_text(A + B, s, ts);
        i128_text(A - B, s, td);
        tbl_num_t x = num(ta), y = num(tb), r, ws = num(ts), wd = num(td);
        assert_int_equal(tbl_num_add(&x, &y, &r, NULL), 0);
        if (tbl_num_cmp(&r, &ws)) fail_msg("%s + %s = %s, want %s", ta, tb, fmt(&r), ts);
        assert_string_equal(fmt(&r), fmt(&ws));
        assert_int_equal(tbl_num_sub(&x, &y, &r, NULL), 0);
        if (tbl_num_cmp(&r, &wd)) fail_msg("%s - %s = %s, want %s", ta, tb, fmt(&r), td);
        /* cmp agrees with the sign of the difference */
        int want = A < B ? -1 : A > B;
        assert_int_equal(tbl_num_cmp(&x, &y), want);
    }
}

/* ---- compare and key bytes -------------------------------------------------------------- */

static tbl_num_t random_num(void) {
    tbl_num_t x;
    memset(&x, 0, sizeof x);
    uint64_t r = rnd();
    if (r % 23 == 0) return x; /* zero */
    x.sign = (r >> 8) & 1 ? -1 : 1;
    x.n = (uint8_t)(1 + (r >> 16) % TBL_NUM_DIGITS);
    if ((r >> 24) % 3 == 0) x.n = (uint8_t)(1 + (r >> 30) % 3); /* many short ones: ties */
    x.exp = (int16_t)(-129 + (int)((r >> 40) % 256));
    if ((r >> 50) % 2) x.exp = (int16_t)(-3 + (int)((r >> 52) % 7)); /* cluster exponents */
    for (int k = 0; k < x.n; k++) x.d[k] = (uint8_t)(rnd() % 10);
    if ((r >> 58) % 2)
        for (int k = 0; k < x.n; k++) x.d[k] = (uint8_t)(k % 2 ? 0 : 9); /* shared prefixes */
    if (x.d[0] == 0) x.d[0] = 1 + (uint8_t)(rnd() % 9);
    if (x.d[x.n - 1] == 0) x.d[x.n - 1] = 1 + (uint8_t)(rnd() % 9);
    return x;
}

static int sgn(int v) { return v < 0 ? -1 : v > 0; }

static int key_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    int c = memcmp(a, b, n);
    if (c) return sgn(c);
    return na < nb ? -1 : na > nb;
}

static void cmp_basic(void **st) {
    (void)st;
    static const char *ordered[] = {
        "-9.9999999999999999999999999999999999999E+125",
        "-1e125",
        "-1000",
        "-999.999",
        "-10",
        "-1.25",
        "-1.2",
        "-1",
        "-0.5",
        "-0.05",
        "-1e-130",
        "0",
        "1e-130",
        "0.0001",
        "0.001",
        "0.5",
        "1",
        "1.0000000000000000000000000000000000001",
        "1.2",
        "1.25",
        "2",
        "10",
        "99",
        "100",
        "1e125",
        "9.9999999999999999999999999999999999999E+125",
    };
    size_t n = sizeof ordered / sizeof ordered[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            tbl_num_t a = num(ordered[i]), b = num(ordered[j]);
            int want = i < j ? -1 : i > j;
            assert_int_equal(tbl_num_cmp(&a, &b), want);
            uint8_t ka[TBL_NUM_KEYMAX], kb[TBL_NUM_KEYMAX];
            size_t la = tbl_num_key(&a, ka), lb = tbl_num_key(&b, kb);
            if (key_cmp(ka, la, kb, lb) != want)
                fail_msg("key order %s vs %s", ordered[i], ordered[j]);
        }
    }
    tbl_num_t a = num("1.50"), b = num("15e-1"), z1 = num("-0"), z2 = num("0e5");
    assert_int_equal(tbl_num_cmp(&a, &b), 0);
    assert_int_equal(tbl_num_cmp(&z1, &z2), 0);
}

static void key_order_random(void **st) {
    (void)st;
    enum { N = 3000 };
    static tbl_num_t v[N];
    static uint8_t k[N][TBL_NUM_KEYMAX];
    static size_t kl[N];
    for (int i = 0; i < N; i++) {
        v[i] = random_num();
        kl[i] = tbl_num_key(&v[i], k[i]);
        assert_true(kl[i] >= 1 && kl[i] <= TBL_NUM_KEYMAX);
    }
    for (int it = 0; it < 200000; it++) {
        int i = (int)(rnd() % N), j = (int)(rnd() % N);
        if (it % 4 == 0) j = (i + 1) % N;
        int c = tbl_num_cmp(&v[i], &v[j]);
        int kc = key_cmp(k[i], kl[i], k[j], kl[j]);
        if (c != kc) fail_msg("%s vs %s: cmp %d, key %d", fmt(&v[i]), fmt(&v[j]), c, kc);
        /* equal keys iff equal values: the encoding is collision-free */
        assert_int_equal(c == 0, kl[i] == kl[j] && memcmp(k[i], k[j], kl[i]) == 0);
    }
    /* neighbours that differ in the last digit or the length */
    tbl_num_t a = num("1.2"), b = num("1.25"), c = num("1.3"), na = num("-1.2"), nb = num("-1.25");
    uint8_t ka[24], kb[24], kc[24], kna[24], knb[24];
    size_t la = tbl_num_key(&a, ka), lb = tbl_num_key(&b, kb), lc = tbl_num_key(&c, kc);
    size_t lna = tbl_num_key(&na, kna), lnb = tbl_num_key(&nb, knb);
    assert_int_equal(key_cmp(ka, la, kb, lb), -1);
    assert_int_equal(key_cmp(kb, lb, kc, lc), -1);
    assert_int_equal(key_cmp(knb, lnb, kna, lna), -1);
    /* the longest key */
    tbl_num_t m = num("-1.2345678901234567890123456789012345678E-130");
    uint8_t km[TBL_NUM_KEYMAX];
    assert_int_equal(tbl_num_key(&m, km), 22);
}

static void key_round_trip(void **st) {
    (void)st;
    for (int it = 0; it < 20000; it++) {
        tbl_num_t x = random_num(), y;
        uint8_t k[TBL_NUM_KEYMAX + 4];
        size_t n = tbl_num_key(&x, k);
        k[n] = 0x77; /* trailing bytes (a range key after a hash key) are not consumed */
        memset(&y, 0xab, sizeof y);
        assert_int_equal(tbl_num_unkey(k, n + 1, &y), n);
        assert_int_equal(tbl_num_cmp(&x, &y), 0);
        assert_int_equal(y.sign, x.sign);
        assert_int_equal(y.n, x.n);
        if (x.n) assert_int_equal(y.exp, x.exp);
        assert_memory_equal(y.d, x.d, x.n);
        /* and through text */
        char buf[TBL_NUM_STRMAX];
        tbl_num_format(&x, buf);
        tbl_num_t z = num(buf);
        assert_int_equal(tbl_num_cmp(&x, &z), 0);
        /* every truncation is refused */
        for (size_t cut = 0; cut < n; cut++) assert_int_equal(tbl_num_unkey(k, cut, &y), 0);
    }
}

static void unkey_malformed(void **st) {
    (void)st;
    tbl_num_t y;
    static const uint8_t zero[] = {0x02};
    assert_int_equal(tbl_num_unkey(zero, 1, &y), 1);
    assert_int_equal(y.n, 0);
    static const uint8_t bad_tag[] = {0x04, 0x81, 0x0b, 0x00};
    static const uint8_t no_digits[] = {0x03, 0x81, 0x00};
    static const uint8_t no_term[] = {0x03, 0x81, 0x0b};
    static const uint8_t pair_range[] = {0x03, 0x81, 0x65, 0x00}; /* 101 is not a pair */
    static const uint8_t lead_zero[] = {0x03, 0x81, 0x02, 0x00}; /* digits 0,1 */
    static const uint8_t trail_zero[] = {0x03, 0x81, 0x0c, 0x01, 0x00}; /* 1,1,0,0 */
    static const uint8_t neg_wrong_term[] = {0x01, 0x7e, 0x5a, 0x00};
    assert_int_equal(tbl_num_unkey(bad_tag, sizeof bad_tag, &y), 0);
    assert_int_equal(tbl_num_unkey(no_digits, sizeof no_digits, &y), 0);
    assert_int_equal(tbl_num_unkey(no_term, sizeof no_term, &y), 0);
    assert_int_equal(tbl_num_unkey(pair_range, sizeof pair_range, &y), 0);
    assert_int_equal(tbl_num_unkey(lead_zero, sizeof lead_zero, &y), 0);
    assert_int_equal(tbl_num_unkey(trail_zero, sizeof trail_zero, &y), 0);
    assert_int_equal(tbl_num_unkey(neg_wrong_term, sizeof neg_wrong_term, &y), 0);
    assert_int_equal(tbl_num_unkey(NULL, 0, &y), 0);
    uint8_t long_key[2 + 20 + 1];
    long_key[0] = 0x03;
    long_key[1] = 0x81;
    for (int i = 0; i < 20; i++) long_key[2 + i] = 0x0c; /* 40 digits */
    long_key[22] = 0x00;
    assert_int_equal(tbl_num_unkey(long_key, sizeof long_key, &y), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_canonical_forms),
        cmocka_unit_test(parse_range_edges),
        cmocka_unit_test(parse_precision),
        cmocka_unit_test(parse_junk),
        cmocka_unit_test(add_sub_exact),
        cmocka_unit_test(add_sub_refused),
        cmocka_unit_test(add_sub_random_vs_int128),
        cmocka_unit_test(cmp_basic),
        cmocka_unit_test(key_order_random),
        cmocka_unit_test(key_round_trip),
        cmocka_unit_test(unkey_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
