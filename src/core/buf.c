/* SPDX-License-Identifier: Apache-2.0
 *
 * buf.c -- growable buffer, JSON escaping and base64 (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "tributary: out of memory allocating %zu bytes; free memory or lower limits\n",
            n);
    abort();
}

void tr_buf_reserve(tr_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) oom(cap);
    b->data = p;
    b->cap = cap;
}

void tr_buf_append(tr_buf *b, const void *p, size_t n) {
    tr_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tr_buf_puts(tr_buf *b, const char *s) { tr_buf_append(b, s, strlen(s)); }

void tr_buf_printf(tr_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    tr_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tr_buf_json_str(tr_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    tr_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            if (b->len + 2 >= b->cap) tr_buf_reserve(b, 8);
            b->data[b->len++] = (char)c;
            continue;
        }
        tr_buf_reserve(b, 8);
        b->data[b->len++] = '\\';
        switch (c) {
        case '"': b->data[b->len++] = '"'; break;
        case '\\': b->data[b->len++] = '\\'; break;
        case '\n': b->data[b->len++] = 'n'; break;
        case '\r': b->data[b->len++] = 'r'; break;
        case '\t': b->data[b->len++] = 't'; break;
        case '\b': b->data[b->len++] = 'b'; break;
        case '\f': b->data[b->len++] = 'f'; break;
        default:
            b->data[b->len++] = 'u';
            b->data[b->len++] = '0';
            b->data[b->len++] = '0';
            b->data[b->len++] = hex[c >> 4];
            b->data[b->len++] = hex[c & 15];
        }
    }
    tr_buf_reserve(b, 1);
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void tr_buf_base64(tr_buf *b, const void *p, size_t n) {
    const uint8_t *s = p;
    tr_buf_reserve(b, tr_base64_encoded_len(n));
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

/* Each base64 character's value plus one; 0 marks a byte that is not base64.  A constant table:
 * built lazily it would be a data race between the threads decoding at the same time. */
static const uint8_t b64_rev1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

long tr_base64_decode(const char *in, size_t n, uint8_t *out) {
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64_rev1[(unsigned char)in[i]] - 1, b = b64_rev1[(unsigned char)in[i + 1]] - 1;
        if (a < 0 || b < 0) return -1;
        int pad2 = in[i + 2] == '=', pad3 = in[i + 3] == '=';
        if ((pad2 || pad3) && i + 4 != n) return -1;
        if (pad2 && !pad3) return -1;
        int c = pad2 ? 0 : b64_rev1[(unsigned char)in[i + 2]] - 1;
        int d = pad3 ? 0 : b64_rev1[(unsigned char)in[i + 3]] - 1;
        if (c < 0 || d < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        if (!pad2) out[o++] = (uint8_t)(v >> 8);
        if (!pad3) out[o++] = (uint8_t)v;
    }
    return (long)o;
}

char *tr_buf_detach(tr_buf *b, size_t *len) {
    if (!b->data) tr_buf_reserve(b, 0), b->data[0] = '\0';
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void tr_buf_reset(tr_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void tr_buf_free(tr_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tr_hex(const uint8_t *p, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}
