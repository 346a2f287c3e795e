/* SPDX-License-Identifier: Apache-2.0
 *
 * buf.h -- growable byte buffer, JSON string escaping and base64.
 *
 * A tr_buf owns its bytes (malloc'd); tr_buf_free releases them.  Appends grow geometrically.
 * Allocation failure aborts with a message: buffers here are bounded by the caller's admission
 * control (request bodies, response pages), never by the data rate.
 *
 * Thread rules: a tr_buf belongs to one thread at a time.
 */
#ifndef TR_BUF_H
#define TR_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_buf {
    char *data;  /* owned; NUL-terminated after any tr_buf_* append (not counted in len) */
    size_t len;
    size_t cap;
} tr_buf;

#define TR_BUF_INIT {NULL, 0, 0}

void tr_buf_reserve(tr_buf *b, size_t extra);  /* room for `extra` more bytes + NUL */
void tr_buf_append(tr_buf *b, const void *p, size_t n);
void tr_buf_puts(tr_buf *b, const char *s);
void tr_buf_printf(tr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (n bytes) as a JSON string literal, quotes included, escaping per RFC 8259. */
void tr_buf_json_str(tr_buf *b, const char *s, size_t n);
/* Append base64 (standard alphabet, padded) of p[0..n). */
void tr_buf_base64(tr_buf *b, const void *p, size_t n);
/* Detach: returns data (caller frees with free()) and resets b. Never NULL. */
char *tr_buf_detach(tr_buf *b, size_t *len);
void tr_buf_reset(tr_buf *b);  /* len = 0, keeps capacity */
void tr_buf_free(tr_buf *b);   /* frees data, b becomes TR_BUF_INIT; accepts zeroed buf */

/* Decode standard base64: padding is required (an input whose length is not a multiple of 4 is
 * invalid), '=' only in the last one or two places; whitespace and other characters are invalid.
 * out must have room for tr_base64_decoded_max(n) bytes.  Returns the decoded length, or -1 on
 * invalid input. */
long tr_base64_decode(const char *in, size_t n, uint8_t *out);
static inline size_t tr_base64_decoded_max(size_t n) { return (n / 4 + 1) * 3; }
static inline size_t tr_base64_encoded_len(size_t n) { return ((n + 2) / 3) * 4; }

/* Lowercase hex of p[0..n) into out (2n+1 bytes, NUL-terminated). */
void tr_hex(const uint8_t *p, size_t n, char *out);

#endif
