/* SPDX-License-Identifier: Apache-2.0
 *
 * num.h -- DynamoDB numbers: exact decimals with up to 38 significant digits.
 *
 * DynamoDB's N type is a decimal, not a double: 38 digits of precision, magnitudes from 1E-130
 * to 9.9999999999999999999999999999999999999E+125, plus zero.  Adding 0.1 ten times gives
 * exactly 1.  No floating point is used anywhere in this module.
 *
 * A tbl_num_t is value = sign * 0.d[0]d[1]...d[n-1] * 10^exp with d[0] != 0 (normalised, no
 * trailing zero digits), or zero (n == 0, sign 0).
 *
 * Errors are TR_EVALIDATION with DynamoDB's own ValidationException messages:
 *   parse of text that is not a number  -> "A value provided cannot be converted into a number"
 *   more than 38 significant digits     -> "Attempting to store more than 38 significant digits in a Number"
 *   magnitude above the range           -> "Number overflow. Attempting to store a number with magnitude larger than supported range"
 *   magnitude below 1E-130 (not zero)   -> "Number underflow. Attempting to store a number with magnitude smaller than supported range"
 * Arithmetic whose exact result needs more than 38 digits fails the same way (DynamoDB does
 * not round).  The text DynamoDB gives for that case is the overflow message (1E50 + 1, observed
 * on DynamoDB), so tbl_num_add/sub return it there; a result below 1E-130 gets the underflow one.
 * out may alias a or b; on failure *out is left unchanged (also for tbl_num_parse).
 *
 * Thread rules: plain values, no state.
 */
#ifndef TBL_NUM_H
#define TBL_NUM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TBL_NUM_DIGITS 38
#define TBL_NUM_STRMAX 176   /* longest canonical text incl. NUL */
#define TBL_NUM_KEYMAX 24    /* longest order-preserving key encoding */

typedef struct tbl_num {
    int8_t sign;                    /* -1, 0, +1 */
    uint8_t n;                      /* significant digits, 0..38 */
    int16_t exp;                    /* decimal exponent, see above */
    uint8_t d[TBL_NUM_DIGITS];      /* digits 0..9 */
} tbl_num_t;

/* Parse DynamoDB number text ("-1.50e3", "  12" is rejected, leading '+' accepted, ".5" and
 * "5." accepted as DynamoDB does). */
int tbl_num_parse(const char *s, size_t len, tbl_num_t *out, tr_err *err);
/* Canonical text as DynamoDB returns it: no exponent, no trailing zeros ("1500", "0.5", "-0.001",
 * "0"). out has room for TBL_NUM_STRMAX bytes. Returns the length. */
size_t tbl_num_format(const tbl_num_t *x, char *out);
int tbl_num_add(const tbl_num_t *a, const tbl_num_t *b, tbl_num_t *out, tr_err *err);
int tbl_num_sub(const tbl_num_t *a, const tbl_num_t *b, tbl_num_t *out, tr_err *err);
/* -1, 0, +1 */
int tbl_num_cmp(const tbl_num_t *a, const tbl_num_t *b);
/* Order-preserving binary encoding (memcmp order == numeric order); returns its length. */
size_t tbl_num_key(const tbl_num_t *x, uint8_t *out);
/* Inverse of tbl_num_key; returns bytes consumed or 0 when malformed. */
size_t tbl_num_unkey(const uint8_t *p, size_t len, tbl_num_t *out);

#endif
