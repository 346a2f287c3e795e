/*
 * tbl_int.h -- table engine internals shared between tbl.c and white-box tests.  Not API.
 */
#ifndef TBL_INT_H
#define TBL_INT_H

#include <stddef.h>
#include <stdint.h>

#define TBL__KEYMAX 511          /* LMDB's compiled-in key limit (checked at open) */
#define TBL__FOLD_KEEP 479       /* longer keys: first 479 bytes + SHA-256 of the whole */
#define TBL__SPACE_TABLE 0x00    /* key space of the table's items */
#define TBL__SPACE_TTL 0xFF      /* key space of the TTL index */
#define TBL__VAL_HDR 16          /* item value header, see tbl.c "On-disk format" */
#define TBL__VAL_VERSION 1
#define TBL__KEY_FORMAT 1        /* key format of new tables (meta "kf", absent: 0), see tbl.c */
#define TBL__HASH_INLINE 64      /* format 1: a longer C(hash) is stored as 'H' + its SHA-256 */

/* Key format given to tables created from now on: TBL__KEY_FORMAT; tests set 0 to make tables
 * as older versions did. */
extern int tbl__key_format_new;

/* 32-bit partition hash of an escaped hash-key component (scan order and segments). */
uint32_t tbl__hash32(const uint8_t *p, size_t n);

#endif
