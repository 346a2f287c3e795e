/* SPDX-License-Identifier: Apache-2.0
 *
 * item.c -- DynamoDB AttributeValues and items in wire form: type, validate, size, compare, key.
 *
 * Everything works on jansson values exactly as the request carried them (item.h).  Validation
 * walks an item once to check it and, only if the whole item is good, once more to rewrite
 * numbers into canonical text and drop members that are not part of the value (unknown names
 * and JSON nulls, which DynamoDB's deserialiser ignores): a failed validation changes nothing.
 *
 * Error classes.  DynamoDB splits bad values in two.  What its JSON deserialiser rejects is a
 * SerializationException, here TR_ESERIALIZATION: a value of the wrong JSON type ({"S": 5},
 * {"N": 123}, {"L": {}}) and binary that is not valid base64 ("Base64 encoded length is expected
 * a multiple of 4 bytes but found: 5").  What its validator rejects is a ValidationException,
 * TR_EVALIDATION, with DynamoDB's wording (taken from dynalite's tests against DynamoDB and
 * captures quoted in other emulators), including its typos and double spaces:
 *   {}                    Supplied AttributeValue is empty, must contain exactly one of the
 *                         supported datatypes
 *   {"S":..,"N":..}       Supplied AttributeValue has more than one datatypes set, must contain
 *                         exactly one of the supported datatypes
 *   {"NULL": false}       One or more parameter values were invalid: Null attribute value types
 *                         must have the value of true
 *   {"SS": []}            One or more parameter values were invalid: An string set  may not
 *                         be empty
 *   {"NS": []}            One or more parameter values were invalid: An number set  may not
 *                         be empty
 *   {"BS": []}            One or more parameter values were invalid: Binary sets should not
 *                         be empty
 *   {"SS": ["a","a"]}     One or more parameter values were invalid: Input collection [a, a]
 *                         contains duplicates.
 *   {"BS": ["Yg==","Yg=="]} One or more parameter values were invalid: Input collection
 *                         [Yg==, Yg==]of type BS contains duplicates.
 *   {"NS": ["1","1.0"]}   Input collection contains duplicates        (numbers compare as numbers)
 *   33 levels deep        Nesting Levels have exceeded supported limits: Attributes in the item
 *                         have nested levels beyond supported limit
 *   over 409,600 bytes    Item size has exceeded the maximum allowed size
 * plus num.h's messages for bad numbers.  Empty strings and binaries are fine here, also inside
 * sets (DynamoDB allows them outside key attributes since 2020; keys are the caller's job).
 *
 * Depth.  The attribute value itself is level 1; a value is refused when anything in it sits at
 * level 33 (a scalar wrapped in 31 maps is accepted, in 32 refused -- measured on DynamoDB).
 *
 * Size (tbl_item_size).  Sum over attributes of UTF-8 name bytes plus value size:
 *   S      UTF-8 bytes               B / BS member   decoded bytes
 *   BOOL, NULL  1                    SS, NS, BS      sum of member sizes
 *   L      3 + sum(1 + element)      M               3 + sum(name bytes + 1 + value)
 *   N      1 + ceil(int digits / 2) + ceil(fraction digits / 2) + (1 if negative)
 * over the significant digits split at the decimal point (zero is 1 byte).  The number rule is
 * the one measured against DynamoDB's 400 KB gate byte by byte (dynoxide / its conformance
 * suite): the guide's "1 byte per two significant digits + 1" rounds the wrong way and misses
 * that "3.14159" costs 5 bytes while "123456" costs 4.  The gate refuses size > 409,600.
 *
 * Key bytes (tbl_key_encode): one tag byte, then
 *   N   tbl_num_key                                 (num.c: memcmp order == numeric order)
 *   S   UTF-8 bytes, B decoded bytes, each 0x00 written as 0x00 0xFF, then 0x00 0x01
 * The escape keeps memcmp order equal to bytewise order and makes every encoding
 * self-delimiting, so a hash key and a range key can be concatenated without ambiguity.
 * Tags: 'B' 0x42, 'N' 0x4E, 'S' 0x53, so values of different types never share bytes.
 *
 * Cost.  Validation is linear except set duplicate checks, which sort (n log n).  Set equality
 * sorts too.  Binary work decodes base64 into a temporary buffer.
 */
#include "table/item.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

/* ------------------------------------------------------------------------------------------ */
/* messages                                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define INVALID "One or more parameter values were invalid: "
static const char MSG_EMPTY[] =
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
static const char MSG_MULTI[] = "Supplied AttributeValue has more than one datatypes set, must "
                                "contain exactly one of the supported datatypes";
static const char MSG_NULL[] = INVALID "Null attribute value types must have the value of true";
static const char MSG_SS_EMPTY[] = INVALID "An string set  may not be empty";
static const char MSG_NS_EMPTY[] = INVALID "An number set  may not be empty";
static const char MSG_BS_EMPTY[] = INVALID "Binary sets should not be empty";
static const char MSG_NS_DUP[] = "Input collection contains duplicates";
static const char MSG_DEPTH[] = "Nesting Levels have exceeded supported limits: Attributes in the "
                                "item have nested levels beyond supported limit";
static const char MSG_SIZE[] = "Item size has exceeded the maximum allowed size";

static const char *const type_names[] = {"S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"};
#define NTYPES ((int)(sizeof type_names / sizeof type_names[0]))

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct bstr {
    const uint8_t *p;
    size_t n;
} bstr;

static int bstr_cmp(const void *a, const void *b) {
    const bstr *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return x->n < y->n ? -1 : (x->n > y->n ? 1 : 0);
}

/* The one type member of av: returns how many known type names carry a non-null value and sets
 * *t / *v to the last one found. */
static int av_members(const json_t *av, int *t, json_t **v) {
    int count = 0;
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)av, key, klen, val) {
        if (json_is_null(val)) continue;
        for (int i = 0; i < NTYPES; i++) {
            if (klen == strlen(type_names[i]) && memcmp(key, type_names[i], klen) == 0) {
                count++;
                *t = i;
                *v = val;
                break;
            }
        }
    }
    return count;
}

static bool all_strings(const json_t *arr) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (!json_is_string(e)) return false;
    return true;
}

/* Type and payload of a well-formed AttributeValue (shape only: numbers and base64 unchecked). */
static int av_get(const json_t *av, json_t **val) {
    int t = TBL_T_INVALID;
    json_t *v = NULL;
    if (!json_is_object(av) || av_members(av, &t, &v) != 1) return TBL_T_INVALID;
    bool ok;
    switch (t) {
    case TBL_T_S:
    case TBL_T_N:
    case TBL_T_B: ok = json_is_string(v); break;
    case TBL_T_BOOL:
    case TBL_T_NULL: ok = json_is_boolean(v); break;
    case TBL_T_L: ok = json_is_array(v); break;
    case TBL_T_M: ok = json_is_object(v); break;
    default: ok = json_is_array(v) && all_strings(v); break;
    }
    if (!ok) return TBL_T_INVALID;
    if (val) *val = v;
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* base64                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Check standard padded base64 strictly as DynamoDB does (including zero unused bits in the
 * last character); on success store the decoded length.  Returns 0 or TR_ESERIALIZATION.
 * Decoding is core's (tr_base64_decode); this check stays here because DynamoDB's verdicts and
 * messages are its own: core accepts non-zero unused bits and says nothing about why it refused. */
static int b64_check(const char *s, size_t n, size_t *declen, tr_err *err) {
    if (n % 4)
        return tr_err_set(err, TR_ESERIALIZATION,
                          "Base64 encoded length is expected a multiple of 4 bytes but found: %zu",
                          n);
    size_t pad = 0;
    if (n && s[n - 1] == '=') pad = (n >= 2 && s[n - 2] == '=') ? 2 : 1;
    for (size_t i = 0; i < n - pad; i++) {
        if (b64_val((unsigned char)s[i]) < 0)
            return tr_err_set(err, TR_ESERIALIZATION, "Invalid Base64 character: '%c'",
                              s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?');
    }
    if (pad) {
        int last = b64_val((unsigned char)s[n - pad - 1]);
        if ((pad == 2 && (last & 0x0f)) || (pad == 1 && (last & 0x03)))
            return tr_err_set(err, TR_ESERIALIZATION,
                              "Invalid last non-pad Base64 character dectected");
    }
    *declen = n / 4 * 3 - pad;
    return 0;
}

/* Decoded bytes of a base64 JSON string into a new malloc'd buffer; NULL if invalid. */
static uint8_t *b64_dup(const json_t *str, size_t *len) {
    const char *s = json_string_value(str);
    size_t n = json_string_length(str), dl;
    if (!s || b64_check(s, n, &dl, NULL)) return NULL;
    uint8_t *p = tr_xmalloc(tr_base64_decoded_max(n));
    long r = tr_base64_decode(s, n, p);
    if (r < 0) {
        free(p);
        return NULL;
    }
    *len = (size_t)r;
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* set members as comparable byte strings                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Members of a set of type t as byte strings whose equality is DynamoDB's member equality:
 * SS the UTF-8 bytes, NS tbl_num_key of the value, BS the decoded bytes.  *arena (free it)
 * holds NS/BS bytes.  Returns 0, or -1 if a member is not a valid number / base64. */
static int set_keys(const json_t *arr, int t, bstr **out, uint8_t **arena) {
    size_t n = json_array_size(arr), i, total = 0;
    json_t *e;
    bstr *k = tr_xmalloc(n * sizeof *k);
    uint8_t *a = NULL;
    if (t == TBL_T_NS) {
        a = tr_xmalloc(n * TBL_NUM_KEYMAX);
    } else if (t == TBL_T_BS) {
        json_array_foreach(arr, i, e) total += tr_base64_decoded_max(json_string_length(e));
        a = tr_xmalloc(total);
    }
    size_t off = 0;
    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(e);
        size_t sl = json_string_length(e);
        if (t == TBL_T_SS) {
            k[i].p = (const uint8_t *)s;
            k[i].n = sl;
        } else if (t == TBL_T_NS) {
            tbl_num_t x;
            if (!s || tbl_num_parse(s, sl, &x, NULL)) goto bad;
            k[i].p = a + i * TBL_NUM_KEYMAX;
            k[i].n = tbl_num_key(&x, a + i * TBL_NUM_KEYMAX);
        } else {
            size_t dl;
            if (!s || b64_check(s, sl, &dl, NULL)) goto bad;
            long r = tr_base64_decode(s, sl, a + off);
            if (r < 0) goto bad;
            k[i].p = a + off;
            k[i].n = (size_t)r;
            off += (size_t)r;
        }
    }
    *out = k;
    *arena = a;
    return 0;
bad:
    free(k);
    free(a);
    return -1;
}

/* 1 if the sorted keys hold a duplicate. */
static int sorted_has_dup(const bstr *k, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (bstr_cmp(&k[i - 1], &k[i]) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* type                                                                                         */
/* ------------------------------------------------------------------------------------------ */

int tbl_av_type(const json_t *av) { return av_get(av, NULL); }

const char *tbl_type_name(int t) { return t >= 0 && t < NTYPES ? type_names[t] : "INVALID"; }

/* ------------------------------------------------------------------------------------------ */
/* validate                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int shape_err(tr_err *err, const char *type) {
    return tr_err_set(err, TR_ESERIALIZATION,
                      "Unexpected value type in payload: the %s member of an AttributeValue has "
                      "the wrong JSON type",
                      type);
}

/* "Input collection [a, b]" list for the duplicate messages. */
static int dup_err(tr_err *err, const json_t *arr, const char *tail) {
    tr_buf b = TR_BUF_INIT;
    size_t i;
    json_t *e;
    tr_buf_puts(&b, INVALID "Input collection [");
    json_array_foreach(arr, i, e) {
        if (i) tr_buf_puts(&b, ", ");
        tr_buf_append(&b, json_string_value(e), json_string_length(e));
        if (b.len > TR_ERR_MSG_MAX) break;
    }
    tr_buf_puts(&b, "]");
    tr_buf_puts(&b, tail);
    int rc = tr_err_set(err, TR_EVALIDATION, "%s", b.data);
    tr_buf_free(&b);
    return rc;
}

static int set_validate(const json_t *arr, int t, tr_err *err) {
    if (!json_is_array(arr) || !all_strings(arr)) return shape_err(err, type_names[t]);
    size_t n = json_array_size(arr), i;
    json_t *e;
    if (n == 0)
        return tr_err_set(err, TR_EVALIDATION, "%s",
                          t == TBL_T_SS   ? MSG_SS_EMPTY
                          : t == TBL_T_NS ? MSG_NS_EMPTY
                                          : MSG_BS_EMPTY);
    json_array_foreach(arr, i, e) { /* members first, so the error names the real problem */
        int rc = 0;
        size_t dl;
        tbl_num_t x;
        if (t == TBL_T_NS) rc = tbl_num_parse(json_string_value(e), json_string_length(e), &x, err);
        if (t == TBL_T_BS) rc = b64_check(json_string_value(e), json_string_length(e), &dl, err);
        if (rc) return rc;
    }
    bstr *k;
    uint8_t *arena;
    if (set_keys(arr, t, &k, &arena)) return tr_err_set(err, TR_EINTERNAL, "set member vanished");
    qsort(k, n, sizeof *k, bstr_cmp);
    int dup = sorted_has_dup(k, n);
    free(k);
    free(arena);
    if (!dup) return 0;
    if (t == TBL_T_NS) return tr_err_set(err, TR_EVALIDATION, "%s", MSG_NS_DUP);
    return dup_err(err, arr,
                   t == TBL_T_SS ? " contains duplicates." : "of type BS contains duplicates.");
}

static int av_validate(const json_t *av, int level, tr_err *err) {
    if (!json_is_object(av))
        return tr_err_set(err, TR_ESERIALIZATION,
                          "Unexpected value type in payload: an AttributeValue must be an object");
    int t = TBL_T_INVALID;
    json_t *v = NULL;
    int count = av_members(av, &t, &v);
    if (count == 0) return tr_err_set(err, TR_EVALIDATION, "%s", MSG_EMPTY);
    if (count > 1) return tr_err_set(err, TR_EVALIDATION, "%s", MSG_MULTI);
    if (level > TBL_MAX_DEPTH) return tr_err_set(err, TR_EVALIDATION, "%s", MSG_DEPTH);
    switch (t) {
    case TBL_T_S: return json_is_string(v) ? 0 : shape_err(err, "S");
    case TBL_T_N:
        if (!json_is_string(v)) return shape_err(err, "N");
        tbl_num_t x;
        return tbl_num_parse(json_string_value(v), json_string_length(v), &x, err);
    case TBL_T_B: {
        if (!json_is_string(v)) return shape_err(err, "B");
        size_t dl;
        return b64_check(json_string_value(v), json_string_length(v), &dl, err);
    }
    case TBL_T_BOOL: return json_is_boolean(v) ? 0 : shape_err(err, "BOOL");
    case TBL_T_NULL: return json_is_true(v) ? 0 : tr_err_set(err, TR_EVALIDATION, "%s", MSG_NULL);
    case TBL_T_L: {
        if (!json_is_array(v)) return shape_err(err, "L");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            int rc = av_validate(e, level + 1, err);
            if (rc) return rc;
        }
        return 0;
    }
    case TBL_T_M: {
        if (!json_is_object(v)) return shape_err(err, "M");
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) {
            int rc = av_validate(e, level + 1, err);
            if (rc) return rc;
        }
        return 0;
    }
    default: return set_validate(v, t, err);
    }
}

/* Deepest nesting level of a (validated) value, counted as av_validate counts: a top-level
 * attribute is level 1; stops counting past limit. */
static int av_depth(const json_t *av, int level, int limit) {
    if (level > limit) return level;
    json_t *l = json_object_get(av, "L"), *m = json_object_get(av, "M"), *e;
    int deepest = level;
    if (json_is_array(l)) {
        size_t i;
        json_array_foreach(l, i, e) {
            int d = av_depth(e, level + 1, limit);
            if (d > deepest) deepest = d;
        }
    } else if (json_is_object(m)) {
        const char *k;
        json_object_foreach(m, k, e) {
            int d = av_depth(e, level + 1, limit);
            if (d > deepest) deepest = d;
        }
    }
    return deepest;
}

int tbl_item_depth_check(const json_t *item, tr_err *err) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)item, k, v) {
        if (av_depth(v, 1, TBL_MAX_DEPTH) > TBL_MAX_DEPTH)
            return tr_err_set(err, TR_EVALIDATION, "%s", MSG_DEPTH);
    }
    return 0;
}

/* Rewrite a validated value in place: canonical numbers, only the type member kept. */
static void av_canon(json_t *av) {
    int t = TBL_T_INVALID;
    json_t *v = NULL;
    av_members(av, &t, &v);
    if (json_object_size(av) != 1) {
        json_incref(v);
        json_object_clear(av);
        json_object_set_new(av, type_names[t], v);
    }
    char buf[TBL_NUM_STRMAX];
    tbl_num_t x;
    switch (t) {
    case TBL_T_N: {
        size_t n = tbl_num_parse(json_string_value(v), json_string_length(v), &x, NULL) == 0
                       ? tbl_num_format(&x, buf)
                       : 0;
        if (n && (n != json_string_length(v) || memcmp(buf, json_string_value(v), n)))
            json_object_set_new(av, "N", json_stringn(buf, n));
        break;
    }
    case TBL_T_NS: {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (tbl_num_parse(json_string_value(e), json_string_length(e), &x, NULL)) continue;
            size_t n = tbl_num_format(&x, buf);
            if (n != json_string_length(e) || memcmp(buf, json_string_value(e), n))
                json_array_set_new(v, i, json_stringn(buf, n));
        }
        break;
    }
    case TBL_T_L: {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) av_canon(e);
        break;
    }
    case TBL_T_M: {
        const char *key;
        json_t *e;
        json_object_foreach(v, key, e) av_canon(e);
        break;
    }
    default: break;
    }
}

int tbl_av_validate(json_t *av, tr_err *err) {
    if (!av) return tr_err_set(err, TR_EINVAL, "tbl_av_validate: NULL value");
    int rc = av_validate(av, 1, err);
    if (rc) return rc;
    av_canon(av);
    return 0;
}

int tbl_item_validate(json_t *item, tr_err *err) {
    if (!item) return tr_err_set(err, TR_EINVAL, "tbl_item_validate: NULL item");
    if (!json_is_object(item))
        return tr_err_set(err, TR_ESERIALIZATION,
                          "Unexpected value type in payload: an item must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(item, key, v) {
        int rc = av_validate(v, 1, err);
        if (rc) return rc;
    }
    if (tbl_item_size(item) > TBL_MAX_ITEM_BYTES)
        return tr_err_set(err, TR_EVALIDATION, "%s", MSG_SIZE);
    json_object_foreach(item, key, v) av_canon(v);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* size                                                                                         */
/* ------------------------------------------------------------------------------------------ */

static size_t num_size(const tbl_num_t *x) {
    if (x->n == 0) return 1;
    size_t in = 0, fr = 0; /* significant digits left and right of the point */
    if (x->exp <= 0) {
        fr = x->n;
    } else if (x->exp >= x->n) {
        in = x->n;
    } else {
        in = (size_t)x->exp;
        fr = x->n - (size_t)x->exp;
    }
    return 1 + (in + 1) / 2 + (fr + 1) / 2 + (x->sign < 0);
}

static size_t str_num_size(const json_t *s) {
    tbl_num_t x;
    if (tbl_num_parse(json_string_value(s), json_string_length(s), &x, NULL))
        return json_string_length(s); /* not a number: count its text */
    return num_size(&x);
}

static size_t b64_size(const json_t *s) {
    size_t n = json_string_length(s), pad = 0;
    const char *p = json_string_value(s);
    if (n && p[n - 1] == '=') pad = (n >= 2 && p[n - 2] == '=') ? 2 : 1;
    return n / 4 * 3 >= pad ? n / 4 * 3 - pad : 0;
}

static size_t av_size(const json_t *av) {
    json_t *v = NULL;
    int t = av_get(av, &v);
    size_t sz = 0, i;
    json_t *e;
    switch (t) {
    case TBL_T_S: return json_string_length(v);
    case TBL_T_N: return str_num_size(v);
    case TBL_T_B: return b64_size(v);
    case TBL_T_BOOL:
    case TBL_T_NULL: return 1;
    case TBL_T_L:
        sz = 3;
        json_array_foreach(v, i, e) sz += 1 + av_size(e);
        return sz;
    case TBL_T_M: {
        void *it;
        for (it = json_object_iter(v); it; it = json_object_iter_next(v, it))
            sz += json_object_iter_key_len(it) + 1 + av_size(json_object_iter_value(it));
        return sz + 3;
    }
    case TBL_T_SS: json_array_foreach(v, i, e) sz += json_string_length(e); return sz;
    case TBL_T_NS: json_array_foreach(v, i, e) sz += str_num_size(e); return sz;
    case TBL_T_BS: json_array_foreach(v, i, e) sz += b64_size(e); return sz;
    default: return 0;
    }
}

size_t tbl_item_size(const json_t *item) {
    if (!json_is_object(item)) return 0;
    size_t sz = 0;
    json_t *obj = (json_t *)item;
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
        sz += json_object_iter_key_len(it) + av_size(json_object_iter_value(it));
    return sz;
}

/* ------------------------------------------------------------------------------------------ */
/* equality and order                                                                           */
/* ------------------------------------------------------------------------------------------ */

static bool str_eq(const json_t *a, const json_t *b) {
    size_t n = json_string_length(a);
    return n == json_string_length(b) && memcmp(json_string_value(a), json_string_value(b), n) == 0;
}

static int set_equal(const json_t *a, const json_t *b, int t) {
    bstr *ka = NULL, *kb = NULL;
    uint8_t *aa = NULL, *ab = NULL;
    int eq = 0;
    if (set_keys(a, t, &ka, &aa)) return json_equal((json_t *)a, (json_t *)b);
    if (set_keys(b, t, &kb, &ab)) goto leave;
    size_t na = json_array_size(a), nb = json_array_size(b), i = 0, j = 0;
    qsort(ka, na, sizeof *ka, bstr_cmp);
    qsort(kb, nb, sizeof *kb, bstr_cmp);
    eq = 1;
    while (eq && (i < na || j < nb)) { /* compare the distinct members */
        if (i == na || j == nb || bstr_cmp(&ka[i], &kb[j]) != 0) {
            eq = 0;
            break;
        }
        i++, j++;
        while (i < na && bstr_cmp(&ka[i - 1], &ka[i]) == 0) i++;
        while (j < nb && bstr_cmp(&kb[j - 1], &kb[j]) == 0) j++;
    }
leave:
    free(ka);
    free(kb);
    free(aa);
    free(ab);
    return eq;
}

int tbl_av_equal(const json_t *a, const json_t *b) {
    json_t *va, *vb;
    int ta = av_get(a, &va), tb = av_get(b, &vb);
    if (ta == TBL_T_INVALID || tb == TBL_T_INVALID)
        return ta == tb && a && b && json_equal((json_t *)a, (json_t *)b);
    if (ta != tb) return 0;
    switch (ta) {
    case TBL_T_S: return str_eq(va, vb);
    case TBL_T_N:
    case TBL_T_B: {
        int c = tbl_av_cmp(a, b);
        return c == -2 ? str_eq(va, vb) : c == 0;
    }
    case TBL_T_BOOL: return json_is_true(va) == json_is_true(vb);
    case TBL_T_NULL: return json_is_true(va) == json_is_true(vb);
    case TBL_T_L: {
        size_t n = json_array_size(va);
        if (n != json_array_size(vb)) return 0;
        for (size_t i = 0; i < n; i++)
            if (!tbl_av_equal(json_array_get(va, i), json_array_get(vb, i))) return 0;
        return 1;
    }
    case TBL_T_M: {
        if (json_object_size(va) != json_object_size(vb)) return 0;
        for (void *it = json_object_iter(va); it; it = json_object_iter_next(va, it)) {
            json_t *o = json_object_getn(vb, json_object_iter_key(it),
                                         json_object_iter_key_len(it));
            if (!o || !tbl_av_equal(json_object_iter_value(it), o)) return 0;
        }
        return 1;
    }
    default: return set_equal(va, vb, ta);
    }
}

int tbl_av_cmp(const json_t *a, const json_t *b) {
    json_t *va, *vb;
    int ta = av_get(a, &va), tb = av_get(b, &vb);
    if (ta != tb) return -2;
    switch (ta) {
    case TBL_T_S: {
        bstr x = {(const uint8_t *)json_string_value(va), json_string_length(va)};
        bstr y = {(const uint8_t *)json_string_value(vb), json_string_length(vb)};
        return bstr_cmp(&x, &y);
    }
    case TBL_T_N: {
        tbl_num_t x, y;
        if (tbl_num_parse(json_string_value(va), json_string_length(va), &x, NULL) ||
            tbl_num_parse(json_string_value(vb), json_string_length(vb), &y, NULL))
            return -2;
        return tbl_num_cmp(&x, &y);
    }
    case TBL_T_B: {
        size_t la, lb;
        uint8_t *pa = b64_dup(va, &la), *pb = b64_dup(vb, &lb);
        int c = -2;
        if (pa && pb) {
            bstr x = {pa, la}, y = {pb, lb};
            c = bstr_cmp(&x, &y);
        }
        free(pa);
        free(pb);
        return c;
    }
    default: return -2;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* key bytes                                                                                    */
/* ------------------------------------------------------------------------------------------ */

#define PUT(b)                                                                                     \
    do {                                                                                           \
        if (o < cap) out[o] = (uint8_t)(b);                                                        \
        o++;                                                                                       \
    } while (0)

static size_t key_bytes(const uint8_t *p, size_t n, uint8_t tag, uint8_t *out, size_t cap) {
    size_t o = 0;
    PUT(tag);
    for (size_t i = 0; i < n; i++) {
        PUT(p[i]);
        if (p[i] == 0x00) PUT(0xFF);
    }
    PUT(0x00);
    PUT(0x01);
    return o;
}

size_t tbl_key_encode(const json_t *av, uint8_t *out, size_t cap) {
    json_t *v;
    if (!out) cap = 0;
    switch (av_get(av, &v)) {
    case TBL_T_S:
        return key_bytes((const uint8_t *)json_string_value(v), json_string_length(v), 'S', out,
                         cap);
    case TBL_T_N: {
        tbl_num_t x;
        if (tbl_num_parse(json_string_value(v), json_string_length(v), &x, NULL)) return 0;
        uint8_t k[1 + TBL_NUM_KEYMAX];
        k[0] = 'N';
        size_t n = 1 + tbl_num_key(&x, k + 1);
        if (cap) memcpy(out, k, n < cap ? n : cap);
        return n;
    }
    case TBL_T_B: {
        size_t n;
        uint8_t *p = b64_dup(v, &n);
        if (!p) return 0;
        size_t r = key_bytes(p, n, 'B', out, cap);
        free(p);
        return r;
    }
    default: return 0;
    }
}

/* ---- compact JSON text ---------------------------------------------------------------------- */

void tbl_json_dump(tr_buf *b, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        size_t kn;
        json_t *m;
        int first = 1;
        tr_buf_append(b, "{", 1);
        json_object_keylen_foreach((json_t *)v, k, kn, m) {
            if (!first) tr_buf_append(b, ",", 1);
            first = 0;
            tr_buf_json_str(b, k, kn);
            tr_buf_append(b, ":", 1);
            tbl_json_dump(b, m);
        }
        tr_buf_append(b, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *m;
        tr_buf_append(b, "[", 1);
        json_array_foreach(v, i, m) {
            if (i) tr_buf_append(b, ",", 1);
            tbl_json_dump(b, m);
        }
        tr_buf_append(b, "]", 1);
        break;
    }
    case JSON_STRING: tr_buf_json_str(b, json_string_value(v), json_string_length(v)); break;
    case JSON_TRUE: tr_buf_append(b, "true", 4); break;
    case JSON_FALSE: tr_buf_append(b, "false", 5); break;
    case JSON_NULL: tr_buf_append(b, "null", 4); break;
    case JSON_INTEGER: tr_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    default: {   /* reals: not in items; jansson's own formatting */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s) tr_buf_puts(b, s);
        free(s);
    }
    }
}
