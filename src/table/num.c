/* SPDX-License-Identifier: Apache-2.0
 *
 * num.c -- DynamoDB numbers: exact decimal parse, format, add/sub, compare, key bytes.
 *
 * A number is a sign, up to 38 significant digits and a decimal exponent (num.h).  Everything
 * here is digit arithmetic on small arrays: no floating point, no allocation, no state.
 *
 * Parse.  The grammar DynamoDB accepts is  [+-]? ( D+ [. D*] | . D+ ) ( [eE] [+-]? D+ )?  with
 * nothing around it: no spaces, no "NaN"/"Infinity", no hex.  Leading and trailing zeros are not
 * significant ("0001.2300" has 3 significant digits), so a long run of zeros is never a precision
 * error.  The exponent may be arbitrarily long: it saturates, so "0e99999999999999999999" is 0
 * and "1e99999999999999999999" overflows.  The magnitude is checked before the precision, as
 * DynamoDB does: "1e126" is an overflow, a 39-digit in-range integer a precision error.
 *
 * Format.  DynamoDB returns numbers normalised and written out in full, never with an exponent:
 * "1.50" -> "1.5", "1e2" -> "100", "1.5E2" -> "150", "-0" -> "0", "00042" -> "42",
 * "1.00000000000000007629769841092E+50" -> "100000000000000007629769841092000000000000000000000"
 * (observed on real DynamoDB, see boto/boto3#4636 and ExtendDB/extenddb#7).  So 1E+125 comes back
 * as 126 characters and 1E-130 as "0." followed by 129 zeros and "1"; TBL_NUM_STRMAX covers both.
 *
 * Arithmetic is exact.  A result outside the range or needing more than 38 digits is refused;
 * nothing is rounded.  For a result that is in range but needs more than 38 digits (1E50 + 1)
 * DynamoDB reports "Number overflow. Attempting to store a number with magnitude larger than
 * supported range" -- not the 38-digit message -- (ScyllaDB test_number.py, observed against
 * DynamoDB), and so do we; a result below 1E-130 is the underflow message.
 *
 * Key encoding (memcmp order == numeric order, self-delimiting so keys can be concatenated):
 *
 *   zero      0x02
 *   positive  0x03  E          p[0] .. p[k-1]          0x00
 *   negative  0x01  255-E      101-p[0] .. 101-p[k-1]  0xFF
 *
 * where E = exp + 129 (exp is -129..126, so E is 0..255) and p[i] = 10*d[2i] + d[2i+1] + 1 (1..100)
 * packs two digits per byte, the last pair padded with a 0 digit.  Because digits are normalised
 * (no leading or trailing zeros) equal values have equal bytes.  The terminator sorts below every
 * pair byte for positives (1.2 < 1.25) and above every complemented one for negatives
 * (-1.2 > -1.25).  Longest: 1 + 1 + 19 + 1 = 22 bytes <= TBL_NUM_KEYMAX.
 */
#include "table/num.h"

#include <stdbool.h>
#include <string.h>

#define NUM_EXP_MAX 126         /* 0.999..9 x 10^126 == 9.99..9E+125 */
#define NUM_EXP_MIN -129        /* 0.1 x 10^-129 == 1E-130 */
#define NUM_SAT 1000000000000LL /* exponent saturation: far beyond any range check */

/* Widest exact add/sub: from 10^126 (carry) down to 10^(-129-38). */
#define NUM_SPAN (NUM_EXP_MAX + 1 - (NUM_EXP_MIN - TBL_NUM_DIGITS) + 1)

static const char MSG_NAN[] = "A value provided cannot be converted into a number";
static const char MSG_DIGITS[] = "Attempting to store more than 38 significant digits in a Number";
static const char MSG_OVER[] =
    "Number overflow. Attempting to store a number with magnitude larger than supported range";
static const char MSG_UNDER[] =
    "Number underflow. Attempting to store a number with magnitude smaller than supported range";

/* ------------------------------------------------------------------------------------------ */
/* parse                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int num_bad(tr_err *err, const char *msg) {
    return tr_err_set(err, TR_EVALIDATION, "%s", msg);
}

static long long sat_add(long long a, long long b) {
    long long r = a + b; /* operands are within +-2*NUM_SAT: no overflow */
    if (r > NUM_SAT) return NUM_SAT;
    if (r < -NUM_SAT) return -NUM_SAT;
    return r;
}

int tbl_num_parse(const char *s, size_t len, tbl_num_t *out, tr_err *err) {
    if (!s || !out) return tr_err_set(err, TR_EINVAL, "tbl_num_parse: NULL argument");
    tbl_num_t x;
    memset(&x, 0, sizeof x);
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';

    /* Mantissa.  sig counts digits from the first non-zero one; last is the count up to and
     * including the last non-zero one (so trailing zeros drop out). */
    long long exp = 0, sig = 0, last = 0;
    size_t ndig = 0;
    bool seen_nz = false, in_frac = false;
    for (; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (in_frac) return num_bad(err, MSG_NAN);
            in_frac = true;
            continue;
        }
        if (c < '0' || c > '9') break;
        ndig++;
        if (!seen_nz && c == '0') {
            if (in_frac) exp = sat_add(exp, -1); /* 0.00ddd: each zero lowers the exponent */
            continue;
        }
        seen_nz = true;
        if (!in_frac) exp = sat_add(exp, 1);
        if (sig < TBL_NUM_DIGITS) x.d[sig] = (uint8_t)(c - '0');
        sig = sat_add(sig, 1);
        if (c != '0') last = sig;
    }
    if (ndig == 0) return num_bad(err, MSG_NAN);

    /* Exponent. */
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        long long e = 0;
        size_t edig = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, edig++)
            if (e < NUM_SAT) e = e * 10 + (s[i] - '0');
        if (edig == 0) return num_bad(err, MSG_NAN);
        exp = sat_add(exp, eneg ? -e : e);
    }
    if (i != len) return num_bad(err, MSG_NAN);

    if (!seen_nz) { /* zero, whatever its sign or exponent */
        *out = x;
        return 0;
    }
    if (exp > NUM_EXP_MAX) return num_bad(err, MSG_OVER);
    if (exp < NUM_EXP_MIN) return num_bad(err, MSG_UNDER);
    if (last > TBL_NUM_DIGITS) return num_bad(err, MSG_DIGITS);
    x.sign = neg ? -1 : 1;
    x.n = (uint8_t)last;
    x.exp = (int16_t)exp;
    memset(x.d + x.n, 0, sizeof x.d - x.n);
    *out = x;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* format                                                                                       */
/* ------------------------------------------------------------------------------------------ */

size_t tbl_num_format(const tbl_num_t *x, char *out) {
    size_t o = 0;
    if (!x || x->sign == 0 || x->n == 0) {
        out[0] = '0';
        out[1] = '\0';
        return 1;
    }
    if (x->sign < 0) out[o++] = '-';
    int n = x->n, e = x->exp;
    if (e <= 0) { /* 0.000ddd */
        out[o++] = '0';
        out[o++] = '.';
        for (int k = 0; k < -e; k++) out[o++] = '0';
        for (int k = 0; k < n; k++) out[o++] = (char)('0' + x->d[k]);
    } else if (e < n) { /* dd.ddd */
        for (int k = 0; k < n; k++) {
            if (k == e) out[o++] = '.';
            out[o++] = (char)('0' + x->d[k]);
        }
    } else { /* ddd000 */
        for (int k = 0; k < n; k++) out[o++] = (char)('0' + x->d[k]);
        for (int k = n; k < e; k++) out[o++] = '0';
    }
    out[o] = '\0';
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* compare                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Compare magnitudes of two non-zero numbers. */
static int num_cmp_abs(const tbl_num_t *a, const tbl_num_t *b) {
    if (a->exp != b->exp) return a->exp < b->exp ? -1 : 1;
    int n = a->n < b->n ? a->n : b->n;
    for (int k = 0; k < n; k++)
        if (a->d[k] != b->d[k]) return a->d[k] < b->d[k] ? -1 : 1;
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    return 0;
}

static int num_sign(const tbl_num_t *x) { return x->n == 0 ? 0 : (x->sign < 0 ? -1 : 1); }

int tbl_num_cmp(const tbl_num_t *a, const tbl_num_t *b) {
    int sa = num_sign(a), sb = num_sign(b);
    if (sa != sb) return sa < sb ? -1 : 1;
    if (sa == 0) return 0;
    int c = num_cmp_abs(a, b);
    return sa > 0 ? c : -c;
}

/* ------------------------------------------------------------------------------------------ */
/* add / sub                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Digit of x at power p of ten (0 outside its digits). */
static int num_digit_at(const tbl_num_t *x, int p) {
    int k = x->exp - 1 - p;
    return (k >= 0 && k < x->n) ? x->d[k] : 0;
}

/* out = a + (bneg ? -b : b), exact. */
static int num_addsub(const tbl_num_t *a, const tbl_num_t *b, int bneg, tbl_num_t *out,
                      tr_err *err) {
    if (!a || !b || !out) return tr_err_set(err, TR_EINVAL, "tbl_num_add/sub: NULL argument");
    int sa = num_sign(a), sb = num_sign(b) * (bneg ? -1 : 1);
    tbl_num_t r;
    memset(&r, 0, sizeof r);
    if (sb == 0) {
        r = *a;
        r.sign = (int8_t)sa;
        *out = r;
        return 0;
    }
    if (sa == 0) {
        r = *b;
        r.sign = (int8_t)sb;
        *out = r;
        return 0;
    }

    /* Powers covered: lo .. hi, hi one above the larger top digit to take a carry. */
    int hi = (a->exp > b->exp ? a->exp : b->exp);
    int lo_a = a->exp - a->n, lo_b = b->exp - b->n;
    int lo = lo_a < lo_b ? lo_a : lo_b;
    int w = hi - lo + 1;
    uint8_t acc[NUM_SPAN + 2];
    if (w > (int)sizeof acc) return tr_err_set(err, TR_EINTERNAL, "tbl_num: span %d", w);

    int sign;
    if (sa == sb) {
        int carry = 0;
        for (int p = lo; p <= hi; p++) {
            int v = num_digit_at(a, p) + num_digit_at(b, p) + carry;
            carry = v >= 10;
            acc[p - lo] = (uint8_t)(carry ? v - 10 : v);
        }
        sign = sa;
    } else {
        int c = num_cmp_abs(a, b);
        if (c == 0) { /* exact cancellation */
            *out = r;
            return 0;
        }
        const tbl_num_t *big = c > 0 ? a : b, *small = c > 0 ? b : a;
        int borrow = 0;
        for (int p = lo; p <= hi; p++) {
            int v = num_digit_at(big, p) - num_digit_at(small, p) - borrow;
            borrow = v < 0;
            acc[p - lo] = (uint8_t)(borrow ? v + 10 : v);
        }
        sign = c > 0 ? sa : sb;
    }

    int top = w - 1, bot = 0;
    while (top >= 0 && acc[top] == 0) top--;
    while (bot <= top && acc[bot] == 0) bot++;
    /* top >= 0: a non-zero result was established above */
    int exp = top + lo + 1, n = top - bot + 1;
    if (exp > NUM_EXP_MAX) return num_bad(err, MSG_OVER);
    if (exp < NUM_EXP_MIN) return num_bad(err, MSG_UNDER);
    if (n > TBL_NUM_DIGITS) return num_bad(err, MSG_OVER); /* DynamoDB's wording, see above */
    r.sign = (int8_t)sign;
    r.n = (uint8_t)n;
    r.exp = (int16_t)exp;
    for (int k = 0; k < n; k++) r.d[k] = acc[top - k];
    *out = r;
    return 0;
}

int tbl_num_add(const tbl_num_t *a, const tbl_num_t *b, tbl_num_t *out, tr_err *err) {
    return num_addsub(a, b, 0, out, err);
}

int tbl_num_sub(const tbl_num_t *a, const tbl_num_t *b, tbl_num_t *out, tr_err *err) {
    return num_addsub(a, b, 1, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* key encoding                                                                                 */
/* ------------------------------------------------------------------------------------------ */

#define KEY_NEG 0x01
#define KEY_ZERO 0x02
#define KEY_POS 0x03

size_t tbl_num_key(const tbl_num_t *x, uint8_t *out) {
    int s = num_sign(x);
    if (s == 0) {
        out[0] = KEY_ZERO;
        return 1;
    }
    size_t o = 0;
    uint8_t e = (uint8_t)(x->exp - NUM_EXP_MIN);
    out[o++] = s > 0 ? KEY_POS : KEY_NEG;
    out[o++] = s > 0 ? e : (uint8_t)(255 - e);
    for (int k = 0; k < x->n; k += 2) {
        int hi = x->d[k], lo = k + 1 < x->n ? x->d[k + 1] : 0;
        uint8_t p = (uint8_t)(10 * hi + lo + 1);
        out[o++] = s > 0 ? p : (uint8_t)(101 - p);
    }
    out[o++] = s > 0 ? 0x00 : 0xFF;
    return o;
}

size_t tbl_num_unkey(const uint8_t *p, size_t len, tbl_num_t *out) {
    if (!p || !out || len < 1) return 0;
    tbl_num_t x;
    memset(&x, 0, sizeof x);
    if (p[0] == KEY_ZERO) {
        *out = x;
        return 1;
    }
    if (p[0] != KEY_POS && p[0] != KEY_NEG) return 0;
    int pos = p[0] == KEY_POS;
    if (len < 3) return 0;
    int exp = (pos ? p[1] : 255 - p[1]) + NUM_EXP_MIN;
    if (exp > NUM_EXP_MAX) return 0;
    size_t i = 2;
    int n = 0;
    for (;; i++) {
        if (i >= len) return 0;
        uint8_t b = p[i];
        if (b == (pos ? 0x00 : 0xFF)) break;
        int v = pos ? b : 101 - b;
        if (v < 1 || v > 100 || n + 2 > TBL_NUM_DIGITS) return 0;
        v -= 1;
        x.d[n++] = (uint8_t)(v / 10);
        x.d[n++] = (uint8_t)(v % 10);
    }
    if (n == 0) return 0;
    if (x.d[n - 1] == 0) n--;                     /* padding of an odd count */
    if (x.d[0] == 0 || x.d[n - 1] == 0) return 0; /* not canonical: reject */
    x.sign = pos ? 1 : -1;
    x.n = (uint8_t)n;
    x.exp = (int16_t)exp;
    *out = x;
    return i + 1;
}
