/* SPDX-License-Identifier: Apache-2.0
 *
 * trf_json.c -- the native function library's JSON, base64 and buffer helpers (see trf_int.h).
 *
 * The tokenizer is a single pass over the text that appends one token per value into a flat
 * array (jsmn's idea, with each container's subtree extent recorded so lookups skip whole
 * members).  It validates as it goes -- RFC 8259 grammar, string escapes, number syntax -- but
 * does not check UTF-8.  Cost: O(n) time, one token (16 bytes) per value.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fn/trf_int.h"

#define TRF__MAX_DEPTH 512

/* ---- buffer ---------------------------------------------------------------------------------- */

static int buf_reserve(trf__buf_t *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void trf__buf_append(trf__buf_t *b, const void *p, size_t n) {
    if (buf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void trf__buf_puts(trf__buf_t *b, const char *s) { trf__buf_append(b, s, strlen(s)); }

void trf__buf_printf(trf__buf_t *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        trf__buf_append(b, tmp, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void trf__buf_json_str(trf__buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, n + 2)) return;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        trf__buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        trf__buf_append(b, esc, el);
    }
    trf__buf_append(b, s + run, n - run);
    trf__buf_append(b, "\"", 1);
}

void trf__buf_base64(trf__buf_t *b, const uint8_t *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out = (n + 2) / 3 * 4;
    if (buf_reserve(b, out)) return;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = '=';
    }
    b->len += out;
    b->data[b->len] = 0;
}

void trf__buf_free(trf__buf_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

long trf__base64_decode(const char *in, size_t n, uint8_t *out) {
    static signed char rev[256];
    static int init;
    if (!init) { /* benign race: every thread writes the same values */
        memset(rev, -1, sizeof rev);
        const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; i++) rev[(unsigned char)t[i]] = (signed char)i;
        init = 1;
    }
    while (n && in[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = rev[(unsigned char)in[i]];
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

/* ---- tokenizer ------------------------------------------------------------------------------- */

typedef struct parser {
    trf__json_t *j;
    const char *s;
    size_t pos, len;
    int depth;
} parser_t;

static long tok_new(parser_t *p, int type, size_t start) {
    trf__json_t *j = p->j;
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        trf__tok_t *t = realloc(j->t, cap * sizeof *t);
        if (!t) return -1;
        j->t = t;
        j->cap = cap;
    }
    trf__tok_t *t = &j->t[j->n];
    t->type = (uint8_t)type;
    t->start = t->end = (uint32_t)start;
    t->size = 0;
    t->skip = (uint32_t)j->n + 1;
    return (long)j->n++;
}

static void ws(parser_t *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_string(parser_t *p) {
    size_t start = ++p->pos; /* past the quote */
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            long t = tok_new(p, TRF__J_STR, start);
            if (t < 0) return -1;
            p->j->t[t].end = (uint32_t)p->pos;
            p->pos++;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c == '\\') {
            if (++p->pos >= p->len) return -1;
            char e = p->s[p->pos];
            if (e == 'u') {
                if (p->pos + 4 >= p->len) return -1;
                for (int k = 1; k <= 4; k++)
                    if (hexval(p->s[p->pos + k]) < 0) return -1;
                p->pos += 4;
            } else if (!strchr("\"\\/bfnrt", e) || !e) {
                return -1;
            }
        }
        p->pos++;
    }
    return -1;
}

static int parse_number(parser_t *p) {
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len) return -1;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return -1;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return -1;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return -1;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    long t = tok_new(p, TRF__J_NUM, start);
    if (t < 0) return -1;
    p->j->t[t].end = (uint32_t)i;
    p->pos = i;
    return 0;
}

static int parse_value(parser_t *p);

static int parse_container(parser_t *p, int obj) {
    if (++p->depth > TRF__MAX_DEPTH) return -1;
    long t = tok_new(p, obj ? TRF__J_OBJ : TRF__J_ARR, p->pos);
    if (t < 0) return -1;
    p->pos++;
    ws(p);
    uint32_t count = 0;
    char close = obj ? '}' : ']';
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            ws(p);
            if (obj) {
                if (p->pos >= p->len || p->s[p->pos] != '"') return -1;
                if (parse_string(p)) return -1;
                ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') return -1;
                p->pos++;
                ws(p);
            }
            if (parse_value(p)) return -1;
            count++;
            ws(p);
            if (p->pos >= p->len) return -1;
            char c = p->s[p->pos++];
            if (c == close) break;
            if (c != ',') return -1;
        }
    }
    trf__tok_t *tk = &p->j->t[t];
    tk->size = count;
    tk->end = (uint32_t)p->pos;
    tk->skip = (uint32_t)p->j->n;
    p->depth--;
    return 0;
}

static int parse_lit(parser_t *p, const char *lit, int type) {
    size_t n = strlen(lit);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n)) return -1;
    long t = tok_new(p, type, p->pos);
    if (t < 0) return -1;
    p->pos += n;
    p->j->t[t].end = (uint32_t)p->pos;
    return 0;
}

static int parse_value(parser_t *p) {
    ws(p);
    if (p->pos >= p->len) return -1;
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, 1);
    case '[': return parse_container(p, 0);
    case '"': return parse_string(p);
    case 't': return parse_lit(p, "true", TRF__J_TRUE);
    case 'f': return parse_lit(p, "false", TRF__J_FALSE);
    case 'n': return parse_lit(p, "null", TRF__J_NULL);
    default: return parse_number(p);
    }
}

int trf__json_parse(trf__json_t *j, const char *text, size_t len) {
    memset(j, 0, sizeof *j);
    j->text = text;
    j->len = len;
    if (len > UINT32_MAX - 1) return -1;
    parser_t p = {j, text, 0, len, 0};
    if (parse_value(&p)) return -1;
    ws(&p);
    return p.pos == len ? 0 : -1;
}

void trf__json_free(trf__json_t *j) {
    free(j->t);
    j->t = NULL;
    j->n = j->cap = 0;
}

/* ---- lookups --------------------------------------------------------------------------------- */

long trf__json_str(const trf__json_t *j, size_t i, char *out, size_t cap) {
    const trf__tok_t *t = &j->t[i];
    if (t->type != TRF__J_STR) return -1;
    const char *s = j->text;
    size_t o = 0;
    for (size_t k = t->start; k < t->end; k++) {
        char c = s[k];
        char tmp[4];
        size_t tn = 1;
        tmp[0] = c;
        if (c == '\\') {
            char e = s[++k];
            switch (e) {
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                unsigned cp = 0;
                for (int q = 1; q <= 4; q++) cp = cp << 4 | (unsigned)hexval(s[k + q]);
                k += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && k + 6 < t->end + 0u && s[k + 1] == '\\' &&
                    s[k + 2] == 'u') {
                    unsigned lo = 0;
                    for (int q = 3; q <= 6; q++) lo = lo << 4 | (unsigned)hexval(s[k + q]);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        k += 6;
                    }
                }
                if (cp < 0x80) {
                    tmp[0] = (char)cp;
                } else if (cp < 0x800) {
                    tmp[0] = (char)(0xC0 | cp >> 6);
                    tmp[1] = (char)(0x80 | (cp & 63));
                    tn = 2;
                } else if (cp < 0x10000) {
                    tmp[0] = (char)(0xE0 | cp >> 12);
                    tmp[1] = (char)(0x80 | ((cp >> 6) & 63));
                    tmp[2] = (char)(0x80 | (cp & 63));
                    tn = 3;
                } else {
                    tmp[0] = (char)(0xF0 | cp >> 18);
                    tmp[1] = (char)(0x80 | ((cp >> 12) & 63));
                    tmp[2] = (char)(0x80 | ((cp >> 6) & 63));
                    tmp[3] = (char)(0x80 | (cp & 63));
                    tn = 4;
                }
                break;
            }
            default: tmp[0] = e; break; /* " \ / */
            }
        }
        if (out) {
            if (o + tn >= cap) return -1;
            memcpy(out + o, tmp, tn);
        }
        o += tn;
    }
    if (out) out[o] = 0;
    return (long)o;
}

int trf__json_str_eq(const trf__json_t *j, size_t i, const char *s) {
    const trf__tok_t *t = &j->t[i];
    if (t->type != TRF__J_STR) return 0;
    size_t n = strlen(s), raw = t->end - t->start;
    if (raw == n && !memchr(j->text + t->start, '\\', raw))
        return !memcmp(j->text + t->start, s, n);
    char tmp[512];
    long l = trf__json_str(j, i, tmp, sizeof tmp);
    return l >= 0 && (size_t)l == n && !memcmp(tmp, s, n);
}

long trf__json_member(const trf__json_t *j, size_t obj, const char *key) {
    if (obj >= j->n || j->t[obj].type != TRF__J_OBJ) return -1;
    size_t i = obj + 1;
    for (uint32_t m = 0; m < j->t[obj].size; m++) {
        size_t v = i + 1;
        if (trf__json_str_eq(j, i, key)) return (long)v;
        i = j->t[v].skip;
    }
    return -1;
}

long trf__json_path(const trf__json_t *j, size_t from, const char *path) {
    long cur = (long)from;
    char key[256];
    while (*path && cur >= 0) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return -1;
        memcpy(key, path, n);
        key[n] = 0;
        cur = trf__json_member(j, (size_t)cur, key);
        path += n;
        if (*path == '.') path++;
    }
    return cur;
}

int trf__json_num(const trf__json_t *j, size_t i, double *out) {
    const trf__tok_t *t = &j->t[i];
    if (t->type != TRF__J_NUM) return -1;
    char tmp[64];
    size_t n = t->end - t->start;
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, j->text + t->start, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return 0;
}

/* ---- public readers (tributary/function.h) ----------------------------------------------------- */

int trf_json_valid(const char *json, size_t len) {
    trf__json_t j;
    int ok = trf__json_parse(&j, json, len) == 0;
    trf__json_free(&j);
    return ok;
}

static long lookup(trf__json_t *j, const char *json, size_t len, const char *path) {
    memset(j, 0, sizeof *j);
    if (!json || !path || trf__json_parse(j, json, len)) return -1;
    return trf__json_path(j, 0, path);
}

int trf_json_get_number(const char *json, size_t len, const char *path, double *out) {
    trf__json_t j;
    long i = lookup(&j, json, len, path);
    int rc = i >= 0 && trf__json_num(&j, (size_t)i, out) == 0 ? TRF_OK : TRF_ERROR;
    trf__json_free(&j);
    return rc;
}

int trf_json_get_string(const char *json, size_t len, const char *path, char *out, size_t cap) {
    trf__json_t j;
    long i = lookup(&j, json, len, path);
    int rc = i >= 0 && trf__json_str(&j, (size_t)i, out, cap) >= 0 ? TRF_OK : TRF_ERROR;
    trf__json_free(&j);
    return rc;
}

int trf_json_get_bool(const char *json, size_t len, const char *path, int *out) {
    trf__json_t j;
    long i = lookup(&j, json, len, path);
    int rc = TRF_ERROR;
    if (i >= 0 && (j.t[i].type == TRF__J_TRUE || j.t[i].type == TRF__J_FALSE)) {
        *out = j.t[i].type == TRF__J_TRUE;
        rc = TRF_OK;
    }
    trf__json_free(&j);
    return rc;
}

/* ---- time ------------------------------------------------------------------------------------ */

void trf__iso_time(int64_t unix_ms, int with_ms, char out[32]) {
    time_t s = (time_t)(unix_ms / 1000);
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        s--;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    char tmp[128];
    if (with_ms)
        snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    else
        snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    snprintf(out, 32, "%.31s", tmp);
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int trf__iso_parse(const char *s, size_t n, int64_t *unix_ms) {
    char tmp[40];
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    int y, mo, d, h, mi, sec, used = 0;
    if (sscanf(tmp, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6) return -1;
    int ms = 0;
    const char *r = tmp + used;
    if (*r == '.') {
        int digits = 0;
        r++;
        while (*r >= '0' && *r <= '9') {
            if (digits < 3) ms = ms * 10 + (*r - '0');
            digits++;
            r++;
        }
        while (digits++ < 3) ms *= 10;
    }
    if (strcmp(r, "Z") && strcmp(r, "+00:00")) return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    *unix_ms = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec) *
                   1000 +
               ms;
    return 0;
}
