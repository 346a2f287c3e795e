/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_num.c -- DynamoDB number text (table/num.h): parse, canonical format, key encoding.
 *
 * Input: two number texts separated by the first '\n' (the second may be absent).  Checked:
 *   - parse never crashes; a parsed number formats to text that parses back to the same value;
 *   - the order-preserving key decodes to the same value, and memcmp of two keys orders as
 *     tbl_num_cmp does;
 *   - a + b == b + a, and (a + b) - b == a whenever the sum is representable;
 *   - tbl_num_unkey on arbitrary bytes never reads past them. */
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "table/num.h"

static int sgn(int x) { return (x > 0) - (x < 0); }

static void check_one(const tbl_num_t *x) {
    char text[TBL_NUM_STRMAX];
    size_t n = tbl_num_format(x, text);
    FUZZ_CHECK(n < TBL_NUM_STRMAX);
    tbl_num_t back;
    tr_err err = {0};
    FUZZ_CHECK(tbl_num_parse(text, n, &back, &err) == 0);
    FUZZ_CHECK(tbl_num_cmp(x, &back) == 0);
    uint8_t key[TBL_NUM_KEYMAX];
    size_t kn = tbl_num_key(x, key);
    FUZZ_CHECK(kn > 0 && kn <= TBL_NUM_KEYMAX);
    tbl_num_t un;
    FUZZ_CHECK(tbl_num_unkey(key, kn, &un) == kn);
    FUZZ_CHECK(tbl_num_cmp(x, &un) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Arbitrary bytes as a key: bounded reads only (ASan checks). */
    tbl_num_t junk;
    (void)tbl_num_unkey(data, size, &junk);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t an = nl ? (size_t)(nl - data) : size;
    const char *bs = nl ? (const char *)nl + 1 : NULL;
    size_t bn = nl ? size - an - 1 : 0;

    tbl_num_t a, b;
    tr_err err = {0};
    int aok = tbl_num_parse((const char *)data, an, &a, &err) == 0;
    int bok = bs && tbl_num_parse(bs, bn, &b, &err) == 0;
    if (aok) check_one(&a);
    if (bok) check_one(&b);
    if (!aok || !bok) return 0;

    uint8_t ka[TBL_NUM_KEYMAX], kb[TBL_NUM_KEYMAX];
    size_t kan = tbl_num_key(&a, ka), kbn = tbl_num_key(&b, kb);
    int m = memcmp(ka, kb, kan < kbn ? kan : kbn);
    if (m == 0) m = (kan > kbn) - (kan < kbn);
    FUZZ_CHECK(sgn(m) == tbl_num_cmp(&a, &b));

    tbl_num_t s1, s2, d;
    int r1 = tbl_num_add(&a, &b, &s1, &err);
    int r2 = tbl_num_add(&b, &a, &s2, &err);
    FUZZ_CHECK((r1 == 0) == (r2 == 0));
    if (r1 == 0) {
        FUZZ_CHECK(tbl_num_cmp(&s1, &s2) == 0);
        check_one(&s1);
        if (tbl_num_sub(&s1, &b, &d, &err) == 0) FUZZ_CHECK(tbl_num_cmp(&d, &a) == 0);
    }
    return 0;
}
