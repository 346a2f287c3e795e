/* SPDX-License-Identifier: Apache-2.0
 *
 * item.h -- DynamoDB attribute values and items, in their wire form (jansson).
 *
 * An item is a JSON object {"name": AttributeValue, ...}; an AttributeValue is a one-member
 * object {"S": "x"} | {"N": "1.5"} | {"B": "<base64>"} | {"BOOL": true} | {"NULL": true} |
 * {"L": [AV...]} | {"M": {name: AV}} | {"SS": [..]} | {"NS": [..]} | {"BS": [..]}.
 * Keeping the wire form as the engine's item model means the adapter never translates items,
 * and native C functions see exactly what SDKs see.  Numbers inside are always canonical text
 * (tbl_num_format) after tbl_item_validate.
 *
 * Thread rules: functions are pure; json_t ownership follows jansson (borrowed unless "new").
 */
#ifndef TBL_ITEM_H
#define TBL_ITEM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "table/num.h"

#define TBL_MAX_ITEM_BYTES (400 * 1024)
#define TBL_MAX_DEPTH 32

enum {
    TBL_T_S,
    TBL_T_N,
    TBL_T_B,
    TBL_T_BOOL,
    TBL_T_NULL,
    TBL_T_L,
    TBL_T_M,
    TBL_T_SS,
    TBL_T_NS,
    TBL_T_BS,
    TBL_T_INVALID
};

/* Append v as compact JSON text: the text json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * writes (members in insertion order, the same escapes; \u00XX hex in lower case), without
 * jansson's per-token callbacks -- items are dumped for every write and read. */
void tbl_json_dump(tr_buf *b, const json_t *v);

/* Type of an AttributeValue, TBL_T_INVALID if it is not a well-formed one. */
int tbl_av_type(const json_t *av);
/* Short name ("S", "N", ...). */
const char *tbl_type_name(int t);

/* Validate (and canonicalise numbers in place) one AttributeValue or a whole item, with
 * DynamoDB's ValidationException messages (TR_EVALIDATION): empty sets, duplicate set members,
 * bad numbers, bad base64, nesting deeper than 32, "One or more parameter values were invalid:
 * An AttributeValue may not contain an empty string" for empty S in key attributes (the caller
 * checks key attributes), item over 400 KB ("Item size has exceeded the maximum allowed size").
 * What DynamoDB's JSON deserialiser refuses -- a member of the wrong JSON type ({"S": 5},
 * {"L": {}}) and binary that is not valid base64 -- returns TR_ESERIALIZATION instead, as DynamoDB
 * answers those with SerializationException.  On success unknown members and null members of
 * each AttributeValue are dropped; on failure nothing is changed.  item.c lists every message. */
int tbl_av_validate(json_t *av, tr_err *err);
int tbl_item_validate(json_t *item, tr_err *err);

/* DynamoDB's item size: sum of attribute name lengths + value sizes (numbers: about 1 byte per
 * two significant digits + 1, binary: decoded length, containers: 3 bytes + 1 per element +
 * contents ...). */
size_t tbl_item_size(const json_t *item);
/* TR_EVALIDATION ("Nesting Levels have exceeded ...") when an item built by an update nests
 * deeper than TBL_MAX_DEPTH, as DynamoDB refuses it; 0 otherwise. */
int tbl_item_depth_check(const json_t *item, tr_err *err);

/* Equality as DynamoDB compares (numbers numerically, sets as sets). */
int tbl_av_equal(const json_t *a, const json_t *b);
/* Ordering for comparable scalar types of the SAME type (S bytewise UTF-8, N numerically, B
 * bytewise); returns -2 when not comparable. */
int tbl_av_cmp(const json_t *a, const json_t *b);

/* Order-preserving key bytes of a key AttributeValue (S, N or B) appended to out; returns the
 * number of bytes, 0 if the type is not a key type.  Encodings of different values never
 * collide and memcmp order equals DynamoDB's sort order within one type.
 * Each encoding is self-delimiting (hash then range key bytes concatenate and sort as a tuple)
 * and starts with a type tag.  If the return exceeds cap only the first cap bytes were written
 * (out may be NULL with cap 0 to size); S/B take at most 2 * length + 3 bytes, N at most 23. */
size_t tbl_key_encode(const json_t *av, uint8_t *out, size_t cap);

#endif
