/* buf.c -- growable buffer, JSON escaping and base64 (see buf.h). */
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

long tr_base64_decode(const char *in, size_t n, uint8_t *out) {
    static int8_t rev[256];
    static int init;
    if (!init) {
        memset(rev, -1, sizeof rev);
        for (int i = 0; i < 64; i++) rev[(unsigned char)b64[i]] = (int8_t)i;
        init = 1; /* benign race: every thread writes identical values */
    }
    if (n % 4) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = rev[(unsigned char)in[i]], b = rev[(unsigned char)in[i + 1]];
        if (a < 0 || b < 0) return -1;
        int pad2 = in[i + 2] == '=', pad3 = in[i + 3] == '=';
        if ((pad2 || pad3) && i + 4 != n) return -1;
        if (pad2 && !pad3) return -1;
        int c = pad2 ? 0 : rev[(unsigned char)in[i + 2]];
        int d = pad3 ? 0 : rev[(unsigned char)in[i + 3]];
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
