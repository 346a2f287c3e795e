/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_ddb_item.c -- DynamoDB items from request JSON (table/item.h): AttributeValue decoding and
 * validation (numbers canonicalised, base64, sets, nesting), then what the engine does with a
 * valid item.
 *
 * Input: JSON text, an item (object) or a lone AttributeValue (anything else).  Checked:
 *   - validation never crashes; a refusal is TR_EVALIDATION or TR_ESERIALIZATION with a message
 *     and leaves the value exactly as it was;
 *   - a valid item validates again unchanged (canonical numbers are a fixed point);
 *   - tbl_json_dump writes the text jansson's compact dump does (but for the case of \u escape
 *     hex digits), and that text parses back to an equal item;
 *   - every attribute has a type, equals itself, and a key-typed one (S, N, B) compares equal to
 *     itself and has a key encoding within the documented bound; for two attributes of one key
 *     type, memcmp of their encodings orders as tbl_av_cmp does;
 *   - the item passes the depth check updates use, and its size counts at least its names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "fuzz.h"
#include "table/item.h"

static int sgn(int x) { return (x > 0) - (x < 0); }

static int is_key_type(int t) { return t == TBL_T_S || t == TBL_T_N || t == TBL_T_B; }

/* Key encoding of av (malloc'd) and its length. */
static uint8_t *encode(const json_t *av, size_t *n) {
    size_t need = tbl_key_encode(av, NULL, 0);
    FUZZ_CHECK(need > 0);
    uint8_t *b = malloc(need);
    FUZZ_CHECK(b);
    FUZZ_CHECK(tbl_key_encode(av, b, need) == need);
    size_t len = json_string_length(json_object_iter_value(json_object_iter((json_t *)av)));
    FUZZ_CHECK(tbl_av_type(av) == TBL_T_N ? need <= 23 : need <= 2 * len + 3);
    *n = need;
    return b;
}

static void check_dump(const json_t *v) {
    tr_buf b = TR_BUF_INIT;
    tbl_json_dump(&b, v);
    char *ref = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(ref);
    /* the same text but for the case of \u escapes' hex digits (jansson \u001F, ours \u001f) */
    for (size_t i = 0; i + 1 < b.len; i++) {
        if (b.data[i] != '\\') continue;
        if (b.data[i + 1] == 'u')
            for (size_t k = i + 2; k < i + 6 && k < b.len; k++)
                if (b.data[k] >= 'a' && b.data[k] <= 'f') b.data[k] = (char)(b.data[k] - 32);
        i++;
    }
    if (b.len != strlen(ref) || memcmp(b.data, ref, b.len))
        fprintf(stderr, "tbl_json_dump: %.*s\njansson:       %s\n", (int)b.len, b.data, ref);
    FUZZ_CHECK(b.len == strlen(ref) && memcmp(b.data, ref, b.len) == 0);
    json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    FUZZ_CHECK(back && json_equal(back, v));
    json_decref(back);
    free(ref);
    tr_buf_free(&b);
}

static void check_item(json_t *item) {
    json_t *again = json_deep_copy(item);
    tr_err err = {0};
    FUZZ_CHECK(tbl_item_validate(again, &err) == 0);
    FUZZ_CHECK(json_equal(again, item));
    json_decref(again);
    check_dump(item);
    FUZZ_CHECK(tbl_item_depth_check(item, &err) == 0);
    size_t names = 0;
    const char *k;
    json_t *v, *prev = NULL;
    uint8_t *prev_enc = NULL;
    size_t prev_n = 0;
    json_object_foreach(item, k, v) {
        names += strlen(k);
        int t = tbl_av_type(v);
        FUZZ_CHECK(t != TBL_T_INVALID);
        FUZZ_CHECK(tbl_av_equal(v, v));
        if (!is_key_type(t)) continue;
        FUZZ_CHECK(tbl_av_cmp(v, v) == 0);
        size_t n;
        uint8_t *enc = encode(v, &n);
        if (prev && tbl_av_type(prev) == t) {
            int m = memcmp(prev_enc, enc, prev_n < n ? prev_n : n);
            if (m == 0) m = (prev_n > n) - (prev_n < n);
            FUZZ_CHECK(sgn(m) == sgn(tbl_av_cmp(prev, v)));
            FUZZ_CHECK((m == 0) == (tbl_av_equal(prev, v) != 0));
        }
        free(prev_enc);
        prev_enc = enc;
        prev_n = n;
        prev = v;
    }
    free(prev_enc);
    FUZZ_CHECK(tbl_item_size(item) >= names);
}

/* Validate v (an item when item is set, else one AttributeValue) and check the outcome. */
static void check_one(json_t *v, int item) {
    json_t *before = json_deep_copy(v);
    FUZZ_CHECK(before);
    tr_err err = {0};
    int rc = item ? tbl_item_validate(v, &err) : tbl_av_validate(v, &err);
    if (rc) {
        FUZZ_CHECK(rc == TR_EVALIDATION || rc == TR_ESERIALIZATION);
        FUZZ_CHECK(err.msg[0]);
        FUZZ_CHECK(json_equal(v, before));
    } else if (item) {
        check_item(v);
    } else {
        int t = tbl_av_type(v);
        FUZZ_CHECK(t != TBL_T_INVALID);
        FUZZ_CHECK(tbl_av_equal(v, v));
        json_t *again = json_deep_copy(v);
        FUZZ_CHECK(tbl_av_validate(again, &err) == 0 && json_equal(again, v));
        json_decref(again);
        check_dump(v);
        if (is_key_type(t)) {
            size_t n;
            free(encode(v, &n));
        }
    }
    json_decref(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!j) return 0;
    if (json_is_object(j)) { /* as an item, and (a copy) as one AttributeValue */
        json_t *copy = json_deep_copy(j);
        check_one(copy, 1);
        json_decref(copy);
    }
    check_one(j, 0);
    json_decref(j);
    return 0;
}
