/* SPDX-License-Identifier: Apache-2.0
 *
 * sigv4.c -- AWS Signature Version 4: canonical request, signing key, verification, signing.
 *
 * Verification is on the path of every request, so the common case does no heap allocation:
 * the canonical request, the query scratch, the header index and the path segments all live in
 * stack buffers that spill to the heap only for unusually large requests.  Work is linear in the
 * request size except for two sorts (query parameters, header names), each O(n log n).
 *
 * Cost per verified request: one SHA-256 of the canonical request and one HMAC for the
 * signature.  Deriving the signing key takes four more HMACs; a small per-thread cache keyed by
 * (access key, date, region, service, secret) skips that.  Keying on the secret too means a
 * rotated secret can never be served from the cache.  Per-thread, so no lock is taken.
 *
 * SHA-256 and HMAC-SHA256 are core/digest.h's (HMAC over an EVP digest fetched once: about half
 * the cost of OpenSSL 3's one-shot HMAC()).
 *
 * URI rules (what AWS SDKs sign):
 *   - non-s3 services: the path as received is normalised (empty and "." segments dropped, ".."
 *     pops one, a trailing '/' kept) and each segment percent-encoded again, so "%20" on the
 *     wire becomes "%2520" (the AWS "double encoding");
 *   - s3: the path is encoded once: valid %XX escapes are kept verbatim, '/' and unreserved
 *     bytes pass, anything else is percent-encoded; no normalisation;
 *   - query: split on '&', each name and value %XX-decoded ('+' stays a literal '+') and
 *     re-encoded, sorted by name then value, '=' always present, X-Amz-Signature left out.
 */
#include "net/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"

#define SIGV4_ALGO "AWS4-HMAC-SHA256"
#define SIGV4_TERM "aws4_request"
#define SIGV4_SKEW_S 900         /* 15 minutes either way */
#define SIGV4_MAX_EXPIRES 604800 /* presigned URLs: one week */
#define SIGV4_SECRET_MAX 256     /* bytes handed to the secret lookup, NUL included */

#define SK_SLOTS 4       /* signing keys cached per thread */
#define SK_ID_MAX 600    /* akid \0 date \0 region \0 service \0 secret */

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Byte buffer that starts in caller-provided (stack) storage and moves to the heap if it must.
 * Room for a NUL is always kept. */
typedef struct sb {
    char *p;
    size_t len;
    size_t cap;
    char *stack; /* initial storage, never freed here */
} sb_t;

/* A request header in the sorted index: its name lowercased (in the index scratch) and its
 * position in req->headers. */
typedef struct href {
    const char *name;
    size_t nlen;
    size_t idx;
} href_t;

typedef struct hindex {
    href_t *v;
    size_t n;
    char *names; /* lowercased names, NUL-separated */
    href_t stack[64];
    char names_stack[1024];
} hindex_t;

/* One canonical query parameter: encoded name and value inside the scratch buffer. */
typedef struct qparam {
    size_t n_off, n_len, v_off, v_len;
    const char *n, *v;
} qparam_t;

typedef struct slice {
    const char *p;
    size_t n;
} slice_t;

/* What the two signature forms have in common once parsed. */
typedef struct vparse {
    char akid[sizeof(((sigv4_result_t *)0)->access_key)];
    char date[9];
    char region[sizeof(((sigv4_result_t *)0)->region)];
    char service[sizeof(((sigv4_result_t *)0)->service)];
    slice_t sh;          /* SignedHeaders, ';'-joined */
    slice_t sig;         /* signature as given (hex) */
    char amz_date[17];   /* ISO 8601 basic */
    long long t_req;     /* amz_date in seconds since the epoch */
    long long expires;   /* presigned: X-Amz-Expires seconds; header form: -1 */
    int presigned;
    int s3;
} vparse_t;

/* Per-thread signing-key cache slot. */
typedef struct sk_slot {
    size_t id_len; /* 0: empty */
    uint8_t key[32];
    char id[SK_ID_MAX];
} sk_slot_t;

/* ------------------------------------------------------------------------------------------ */
/* Statics                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const char HEX_UP[] = "0123456789ABCDEF";
static const char HEX_LO[] = "0123456789abcdef";

static _Thread_local sk_slot_t sk_cache[SK_SLOTS];
static _Thread_local unsigned sk_next;

/* ------------------------------------------------------------------------------------------ */
/* Failure of the machine itself: out of memory, broken crypto provider                       */
/* ------------------------------------------------------------------------------------------ */

static void die(const char *what, size_t n) {
    fprintf(stderr, "tributary: sigv4: %s (%zu bytes); free memory or check the OpenSSL install\n",
            what, n);
    abort();
}

/* ------------------------------------------------------------------------------------------ */
/* Small buffer                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void sb_init(sb_t *b, char *stack, size_t cap) {
    b->p = stack;
    b->stack = stack;
    b->len = 0;
    b->cap = cap;
}

static void sb_free(sb_t *b) {
    if (b->p != b->stack) free(b->p);
    b->p = b->stack;
    b->len = 0;
}

static void sb_grow(sb_t *b, size_t need) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *np;
    if (b->p == b->stack) {
        np = malloc(cap);
        if (!np) die("out of memory", cap);
        if (b->len) memcpy(np, b->p, b->len);
    } else {
        np = realloc(b->p, cap);
        if (!np) die("out of memory", cap);
    }
    b->p = np;
    b->cap = cap;
}

/* Make room for n more bytes (plus the NUL) and return where they go. */
static inline char *sb_room(sb_t *b, size_t n) {
    if (b->len + n + 1 > b->cap) sb_grow(b, b->len + n + 1);
    return b->p + b->len;
}

static inline void sb_add(sb_t *b, const void *s, size_t n) {
    if (!n) return;
    memcpy(sb_room(b, n), s, n);
    b->len += n;
}

static inline void sb_putc(sb_t *b, char c) {
    *sb_room(b, 1) = c;
    b->len++;
}

static inline void sb_puts(sb_t *b, const char *s) { sb_add(b, s, strlen(s)); }

/* NUL-terminated copy owned by the caller (free()). */
static char *sb_detach(sb_t *b) {
    char *r;
    if (b->p == b->stack) {
        r = malloc(b->len + 1);
        if (!r) die("out of memory", b->len + 1);
        if (b->len) memcpy(r, b->p, b->len);
    } else {
        r = b->p;
    }
    r[b->len] = '\0';
    b->p = b->stack;
    b->len = 0;
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Hex (SHA-256 and HMAC-SHA256 are core/digest.h's)                                         */
/* ------------------------------------------------------------------------------------------ */

static void hex_lower(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_LO[p[i] >> 4];
        out[2 * i + 1] = HEX_LO[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_payload_hash(const void *p, size_t n, char out[65]) {
    uint8_t h[32];
    tr_sha256(p, n, h);
    hex_lower(h, 32, out);
}

/* ------------------------------------------------------------------------------------------ */
/* Characters and strings                                                                     */
/* ------------------------------------------------------------------------------------------ */

static inline int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

/* Case-insensitive compare of two counted strings: <0, 0, >0. */
static int ci_cmp(const char *a, size_t an, const char *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x == y) continue; /* the usual case: names arrive already lowercase */
        int d = (int)lower(x) - (int)lower(y);
        if (d) return d;
    }
    return an < bn ? -1 : an > bn;
}

static int ci_eq(const char *a, size_t an, const char *lit) {
    return ci_cmp(a, an, lit, strlen(lit)) == 0;
}

static int eq_lit(const char *a, size_t an, const char *lit) {
    size_t n = strlen(lit);
    return an == n && memcmp(a, lit, n) == 0;
}

static slice_t trim(const char *s, size_t n) {
    while (n && is_ws((unsigned char)*s)) s++, n--;
    while (n && is_ws((unsigned char)s[n - 1])) n--;
    return (slice_t){s, n};
}

/* Copy a counted string into dst (cap bytes incl. NUL); -1 if it does not fit. */
static int copy_str(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap) return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Percent-decode s[0..n) ('+' kept) into dst (cap incl. NUL); length, or -1 if too long. */
static long pct_decode(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    if (cap == 0) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int h, l;
        if (c == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(h << 4 | l);
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* Does raw (percent-encoded) s[0..n) decode to exactly lit? */
static int pct_eq(const char *s, size_t n, const char *lit) {
    size_t j = 0;
    for (size_t i = 0; i < n; i++, j++) {
        unsigned char c = (unsigned char)s[i];
        int h, l;
        if (c == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(h << 4 | l);
            i += 2;
        }
        if (!lit[j] || (unsigned char)lit[j] != c) return 0;
    }
    return lit[j] == '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* URI encoding                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Append s[0..n) with every byte outside the unreserved set as %XX. */
static void enc_bytes(sb_t *b, const char *s, size_t n) {
    char *d = sb_room(b, 3 * n), *d0 = d;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = HEX_UP[c >> 4];
            *d++ = HEX_UP[c & 15];
        }
    }
    b->len += (size_t)(d - d0);
}

/* Append s[0..n) decoded (%XX only) and encoded again: the canonical form of a query part. */
static void reenc_bytes(sb_t *b, const char *s, size_t n) {
    char *d = sb_room(b, 3 * n), *d0 = d;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int h, l;
        if (c == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            c = (unsigned char)(h << 4 | l);
            i += 2;
        }
        if (is_unreserved(c)) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = HEX_UP[c >> 4];
            *d++ = HEX_UP[c & 15];
        }
    }
    b->len += (size_t)(d - d0);
}

/* s3: encode once, keep '/' and valid escapes, no normalisation. */
static void canon_path_s3(sb_t *b, const char *s, size_t n) {
    char *d = sb_room(b, 3 * n + 1), *d0 = d;
    if (n == 0 || s[0] != '/') *d++ = '/';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || is_unreserved(c)) {
            *d++ = (char)c;
        } else if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            *d++ = '%';
            *d++ = s[i + 1];
            *d++ = s[i + 2];
            i += 2;
        } else {
            *d++ = '%';
            *d++ = HEX_UP[c >> 4];
            *d++ = HEX_UP[c & 15];
        }
    }
    b->len += (size_t)(d - d0);
}

/* Other services: normalise the segments, then encode each one (again). */
static void canon_path_norm(sb_t *b, const char *s, size_t n) {
    slice_t stack[64], *seg = stack;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += s[i] == '/';
    if (cap > sizeof stack / sizeof stack[0]) {
        seg = malloc(cap * sizeof *seg);
        if (!seg) die("out of memory", cap * sizeof *seg);
    }
    size_t nseg = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '/') j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && s[i] == '.')) {
            /* dropped */
        } else if (len == 2 && s[i] == '.' && s[i + 1] == '.') {
            if (nseg) nseg--;
        } else {
            seg[nseg++] = (slice_t){s + i, len};
        }
        i = j + 1;
    }
    sb_putc(b, '/');
    for (size_t k = 0; k < nseg; k++) {
        if (k) sb_putc(b, '/');
        enc_bytes(b, seg[k].p, seg[k].n);
    }
    if (nseg && n && s[n - 1] == '/') sb_putc(b, '/');
    if (seg != stack) free(seg);
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical query                                                                            */
/* ------------------------------------------------------------------------------------------ */

static int qparam_cmp(const void *a, const void *b) {
    const qparam_t *x = a, *y = b;
    size_t n = x->n_len < y->n_len ? x->n_len : y->n_len;
    int d = memcmp(x->n, y->n, n);
    if (d) return d;
    if (x->n_len != y->n_len) return x->n_len < y->n_len ? -1 : 1;
    n = x->v_len < y->v_len ? x->v_len : y->v_len;
    d = memcmp(x->v, y->v, n);
    if (d) return d;
    return x->v_len < y->v_len ? -1 : x->v_len > y->v_len;
}

static void canon_query(sb_t *out, const char *q) {
    if (!q || !*q) return;
    size_t qn = strlen(q), cnt = 1;
    for (size_t i = 0; i < qn; i++) cnt += q[i] == '&';

    qparam_t pstack[32], *ps = pstack;
    if (cnt > sizeof pstack / sizeof pstack[0]) {
        ps = malloc(cnt * sizeof *ps);
        if (!ps) die("out of memory", cnt * sizeof *ps);
    }
    char scr_stack[1024];
    sb_t scr;
    sb_init(&scr, scr_stack, sizeof scr_stack);
    sb_room(&scr, 3 * qn); /* the whole encoded query fits: no regrowth below */

    size_t np = 0, i = 0;
    while (i <= qn) {
        size_t j = i;
        while (j < qn && q[j] != '&') j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t nend = eq ? (size_t)(eq - q) : j;
            qparam_t *p = &ps[np];
            p->n_off = scr.len;
            reenc_bytes(&scr, q + i, nend - i);
            p->n_len = scr.len - p->n_off;
            if (eq_lit(scr.p + p->n_off, p->n_len, "X-Amz-Signature")) {
                scr.len = p->n_off;
            } else {
                p->v_off = scr.len;
                if (eq) reenc_bytes(&scr, eq + 1, j - nend - 1);
                p->v_len = scr.len - p->v_off;
                np++;
            }
        }
        i = j + 1;
    }
    for (size_t k = 0; k < np; k++) {
        ps[k].n = scr.p + ps[k].n_off;
        ps[k].v = scr.p + ps[k].v_off;
    }
    if (np > 1) qsort(ps, np, sizeof *ps, qparam_cmp);
    for (size_t k = 0; k < np; k++) {
        if (k) sb_putc(out, '&');
        sb_add(out, ps[k].n, ps[k].n_len);
        sb_putc(out, '=');
        sb_add(out, ps[k].v, ps[k].v_len);
    }
    sb_free(&scr);
    if (ps != pstack) free(ps);
}

/* ------------------------------------------------------------------------------------------ */
/* Header index: request headers sorted by name (any case), then arrival order                */
/* ------------------------------------------------------------------------------------------ */

/* Names in the index are lowercased once, so comparing is memcmp.  The index only serves
 * lookups, so any total order will do: length first settles most comparisons with one integer
 * compare.  Equal names stay adjacent, in arrival order. */
static int hname_cmp(const char *a, size_t an, const char *b, size_t bn) {
    if (an != bn) return an < bn ? -1 : 1;
    return memcmp(a, b, an);
}

static int href_cmp(const void *a, const void *b) {
    const href_t *x = a, *y = b;
    int d = hname_cmp(x->name, x->nlen, y->name, y->nlen);
    if (d) return d;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void hindex_build(hindex_t *ix, const sigv4_header_t *h, size_t n) {
    ix->v = ix->stack;
    ix->names = ix->names_stack;
    if (n > sizeof ix->stack / sizeof ix->stack[0]) {
        ix->v = malloc(n * sizeof *ix->v);
        if (!ix->v) die("out of memory", n * sizeof *ix->v);
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += h[i].name ? strlen(h[i].name) + 1 : 0;
    if (total > sizeof ix->names_stack) {
        ix->names = malloc(total);
        if (!ix->names) die("out of memory", total);
    }
    char *d = ix->names;
    ix->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name) continue;
        const char *src = h[i].name;
        size_t l = 0;
        for (; src[l]; l++) d[l] = (char)lower((unsigned char)src[l]);
        d[l] = '\0';
        ix->v[ix->n++] = (href_t){d, l, i};
        d += l + 1;
    }
    if (ix->n > 1) qsort(ix->v, ix->n, sizeof *ix->v, href_cmp);
}

static void hindex_free(hindex_t *ix) {
    if (ix->v != ix->stack) free(ix->v);
    if (ix->names != ix->names_stack) free(ix->names);
    ix->v = ix->stack;
    ix->names = ix->names_stack;
    ix->n = 0;
}

/* First index position whose name equals name (lowercase), or ix->n. */
static size_t hindex_find(const hindex_t *ix, const char *name, size_t nlen) {
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hname_cmp(ix->v[mid].name, ix->v[mid].nlen, name, nlen) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < ix->n && hname_cmp(ix->v[lo].name, ix->v[lo].nlen, name, nlen) == 0) return lo;
    return ix->n;
}

/* Value of the first header called name (lowercase; trimmed), or a NULL slice. */
static slice_t header_get(const hindex_t *ix, const sigv4_header_t *h, const char *name) {
    size_t k = hindex_find(ix, name, strlen(name));
    if (k == ix->n || !h[ix->v[k].idx].value) return (slice_t){NULL, 0};
    const char *v = h[ix->v[k].idx].value;
    return trim(v, strlen(v));
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical headers                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Append one header value: each line trimmed, runs of blanks collapsed to one space; the lines
 * of a folded (obs-fold) value and the values of repeated headers are joined with ','. */
static void canon_value(sb_t *b, const char *v, int *need_comma) {
    if (!v) v = "";
    size_t n = strlen(v);
    int multi = memchr(v, '\n', n) != NULL;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && v[j] != '\n') j++;
        size_t e = j;
        if (e > i && v[e - 1] == '\r') e--;
        slice_t t = trim(v + i, e - i);
        if (t.n || !multi) {
            if (*need_comma) sb_putc(b, ',');
            *need_comma = 1;
            char *d = sb_room(b, t.n), *d0 = d;
            int blank = 0;
            for (size_t k = 0; k < t.n; k++) {
                unsigned char c = (unsigned char)t.p[k];
                if (is_ws(c)) {
                    if (!blank) *d++ = ' ';
                    blank = 1;
                } else {
                    *d++ = (char)c;
                    blank = 0;
                }
            }
            b->len += (size_t)(d - d0);
        }
        if (j >= n) break;
        i = j + 1;
    }
}

/* One "name:value\n" line per signed header.  used (may be NULL) gets a mark for every index
 * entry consumed.  On a signed header absent from the request: -1 and *miss names it. */
static int canon_headers(sb_t *b, const sigv4_header_t *h, const hindex_t *ix, slice_t sh,
                         unsigned char *used, slice_t *miss) {
    size_t i = 0;
    while (i <= sh.n) {
        size_t j = i;
        while (j < sh.n && sh.p[j] != ';') j++;
        const char *name = sh.p + i;
        size_t nlen = j - i;
        /* "name:" goes out lowercase first; that copy is also the lookup key. */
        char *d = sb_room(b, nlen + 1);
        for (size_t c = 0; c < nlen; c++) d[c] = (char)lower((unsigned char)name[c]);
        d[nlen] = ':';
        size_t k = nlen ? hindex_find(ix, d, nlen) : ix->n;
        /* HTTP/2 clients (the JS SDK) may sign the ":authority" pseudo-header; the HTTP layer
         * presents it as "host", so that is where its value is. */
        if (k == ix->n && nlen == 10 && !memcmp(d, ":authority", 10))
            k = hindex_find(ix, "host", 4);
        if (k == ix->n) {
            *miss = (slice_t){name, nlen};
            return -1;
        }
        b->len += nlen + 1;
        int need_comma = 0;
        size_t first = k;
        for (; k < ix->n &&
               hname_cmp(ix->v[k].name, ix->v[k].nlen, ix->v[first].name, ix->v[first].nlen) == 0;
             k++) {
            canon_value(b, h[ix->v[k].idx].value, &need_comma);
            if (used) used[k] = 1;
        }
        sb_putc(b, '\n');
        i = j + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical request                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int build_creq(sb_t *b, const sigv4_req_t *req, const hindex_t *ix, slice_t sh,
                      const char *payload, int s3, unsigned char *used, slice_t *miss) {
    const char *path = req->path ? req->path : "";
    sb_puts(b, req->method);
    sb_putc(b, '\n');
    if (s3) canon_path_s3(b, path, strlen(path));
    else canon_path_norm(b, path, strlen(path));
    sb_putc(b, '\n');
    canon_query(b, req->query);
    sb_putc(b, '\n');
    if (canon_headers(b, req->headers, ix, sh, used, miss) < 0) return -1;
    sb_putc(b, '\n');
    sb_add(b, sh.p, sh.n);
    sb_putc(b, '\n');
    sb_puts(b, payload);
    return 0;
}

/* "AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex tr_sha256(creq)>" into b. */
static void build_sts(sb_t *b, const char *amz_date, const char *scope, const char *creq,
                      size_t creq_len) {
    uint8_t h[32];
    char hex[65];
    tr_sha256(creq, creq_len, h);
    hex_lower(h, 32, hex);
    sb_puts(b, SIGV4_ALGO "\n");
    sb_puts(b, amz_date);
    sb_putc(b, '\n');
    sb_puts(b, scope);
    sb_putc(b, '\n');
    sb_add(b, hex, 64);
}

/* ------------------------------------------------------------------------------------------ */
/* Time                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(long long y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

static int digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int to_epoch(int y, int mo, int d, int h, int mi, int s, long long *t) {
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60)
        return -1;
    *t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

/* "20150830T123600Z" */
static int parse_iso_basic(const char *s, size_t n, long long *t) {
    int y, mo, d, h, mi, sec;
    if (n != 16 || s[8] != 'T' || s[15] != 'Z') return -1;
    if (digits(s, 4, &y) || digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) || digits(s + 9, 2, &h) ||
        digits(s + 11, 2, &mi) || digits(s + 13, 2, &sec))
        return -1;
    return to_epoch(y, mo, d, h, mi, sec, t);
}

/* "Sun, 30 Aug 2015 12:36:00 GMT" (RFC 7231 IMF-fixdate; weekday optional, 1-digit day ok). */
static int parse_http_date(const char *s, size_t n, long long *t) {
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *e = s + n;
    const char *comma = memchr(s, ',', n);
    if (comma) s = comma + 1;
    while (s < e && *s == ' ') s++;
    int d = 0, y, h, mi, sec, mo = 0;
    size_t dn = 0;
    while (s + dn < e && dn < 2 && s[dn] >= '0' && s[dn] <= '9') dn++;
    if (dn == 0 || digits(s, dn, &d)) return -1;
    s += dn;
    if (e - s < 22 || s[0] != ' ' || s[4] != ' ' || s[9] != ' ' || s[12] != ':' || s[15] != ':' ||
        s[18] != ' ')
        return -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(s + 1, months + 3 * i, 3) == 0) mo = i + 1;
    if (!mo || digits(s + 5, 4, &y) || digits(s + 10, 2, &h) || digits(s + 13, 2, &mi) ||
        digits(s + 16, 2, &sec))
        return -1;
    if (!(e - s == 22 && (memcmp(s + 19, "GMT", 3) == 0 || memcmp(s + 19, "UTC", 3) == 0)))
        return -1;
    return to_epoch(y, mo, d, h, mi, sec, t);
}

static void fmt_iso_basic(long long t, char out[17]) {
    long long days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    long long secs = t - days * 86400, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0) y = 0;
    if (y > 9999) y = 9999;
    int v[6] = {(int)y, m, d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60)};
    char *o = out;
    o[0] = (char)('0' + v[0] / 1000);
    o[1] = (char)('0' + v[0] / 100 % 10);
    o[2] = (char)('0' + v[0] / 10 % 10);
    o[3] = (char)('0' + v[0] % 10);
    o += 4;
    for (int i = 1; i < 6; i++) {
        if (i == 3) *o++ = 'T';
        *o++ = (char)('0' + v[i] / 10);
        *o++ = (char)('0' + v[i] % 10);
    }
    *o++ = 'Z';
    *o = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Signing key and its per-thread cache                                                       */
/* ------------------------------------------------------------------------------------------ */

static void derive_key(const char *secret, const char *date, const char *region,
                       const char *service, uint8_t key[32]) {
    size_t sl = strlen(secret);
    char kbuf[4 + SIGV4_SECRET_MAX];
    char *k = kbuf;
    if (sl + 4 > sizeof kbuf) {
        k = malloc(sl + 4);
        if (!k) die("out of memory", sl + 4);
    }
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl);
    uint8_t a[32], b[32];
    tr_hmac_sha256(k, sl + 4, date, strlen(date), a);
    tr_hmac_sha256(a, 32, region, strlen(region), b);
    tr_hmac_sha256(b, 32, service, strlen(service), a);
    tr_hmac_sha256(a, 32, SIGV4_TERM, sizeof SIGV4_TERM - 1, key);
    OPENSSL_cleanse(k, sl + 4);
    if (k != kbuf) free(k);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
}

static void signing_key_cached(const char *akid, const char *secret, const char *date,
                               const char *region, const char *service, uint8_t key[32]) {
    const char *parts[5] = {akid, date, region, service, secret};
    char id[SK_ID_MAX];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(parts[i]);
        if (n + l + 1 > sizeof id) {
            derive_key(secret, date, region, service, key); /* too long to cache */
            return;
        }
        memcpy(id + n, parts[i], l + 1);
        n += l + 1;
    }
    for (unsigned s = 0; s < SK_SLOTS; s++) {
        sk_slot_t *e = &sk_cache[s];
        if (e->id_len == n && memcmp(e->id, id, n) == 0) {
            memcpy(key, e->key, 32);
            OPENSSL_cleanse(id, n);
            return;
        }
    }
    derive_key(secret, date, region, service, key);
    sk_slot_t *e = &sk_cache[sk_next++ % SK_SLOTS];
    memcpy(e->id, id, n);
    e->id_len = n;
    memcpy(e->key, key, 32);
    OPENSSL_cleanse(id, n);
}

/* ------------------------------------------------------------------------------------------ */
/* Public building blocks                                                                     */
/* ------------------------------------------------------------------------------------------ */

char *sigv4_canonical_request(const sigv4_req_t *req, const char *signed_headers,
                              const char *payload_hash, const char *service) {
    if (!req || !req->method || !signed_headers || !payload_hash || !service ||
        (req->n_headers && !req->headers))
        return NULL;
    hindex_t ix;
    hindex_build(&ix, req->headers, req->n_headers);
    char st[2048];
    sb_t b;
    sb_init(&b, st, sizeof st);
    slice_t miss;
    int rc = build_creq(&b, req, &ix, (slice_t){signed_headers, strlen(signed_headers)},
                        payload_hash, strcmp(service, "s3") == 0, NULL, &miss);
    hindex_free(&ix);
    if (rc < 0) {
        sb_free(&b);
        return NULL;
    }
    return sb_detach(&b);
}

char *sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical_request) {
    if (!amz_date || !scope || !canonical_request) return NULL;
    char st[512];
    sb_t b;
    sb_init(&b, st, sizeof st);
    build_sts(&b, amz_date, scope, canonical_request, strlen(canonical_request));
    return sb_detach(&b);
}

void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, uint8_t key[32]) {
    if (!secret || !date || !region || !service) {
        memset(key, 0, 32);
        return;
    }
    derive_key(secret, date, region, service, key);
}

/* ------------------------------------------------------------------------------------------ */
/* Verification: parsing                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* "AKID/20150830/us-east-1/service/aws4_request" */
static int parse_credential(vparse_t *vp, const char *c, size_t n, tr_err *err) {
    slice_t part[5];
    size_t np = 0, i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && c[j] != '/') j++;
        if (np == 5) {
            np++;
            break;
        }
        part[np++] = (slice_t){c + i, j - i};
        i = j + 1;
    }
    if (np != 5 || !part[0].n || !part[2].n || !part[3].n)
        return tr_err_set(err, TR_EAUTH_SIG,
                          "The authorization header is malformed; the Credential is mal-formed; "
                          "expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".");
    if (!eq_lit(part[4].p, part[4].n, SIGV4_TERM))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "Credential should be scoped with a valid terminator: 'aws4_request', "
                          "not '%.*s'.",
                          (int)part[4].n, part[4].p);
    int dummy;
    if (part[1].n != 8 || digits(part[1].p, 8, &dummy))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "The authorization header is malformed; the Credential date '%.*s' is "
                          "not YYYYMMDD.",
                          (int)(part[1].n > 32 ? 32 : part[1].n), part[1].p);
    if (copy_str(vp->akid, sizeof vp->akid, part[0].p, part[0].n) ||
        copy_str(vp->region, sizeof vp->region, part[2].p, part[2].n) ||
        copy_str(vp->service, sizeof vp->service, part[3].p, part[3].n))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "The authorization header is malformed; the Credential has an access "
                          "key, region or service name that is too long.");
    memcpy(vp->date, part[1].p, 8);
    vp->date[8] = '\0';
    vp->s3 = strcmp(vp->service, "s3") == 0;
    return 0;
}

/* Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
 * Components may be separated by ',' and/or blanks, in any order. */
static int parse_header_form(vparse_t *vp, slice_t auth, const hindex_t *ix,
                             const sigv4_header_t *h, tr_err *err) {
    const char *p = auth.p, *e = auth.p + auth.n;
    const char *a0 = p;
    while (p < e && !is_ws((unsigned char)*p)) p++;
    if (!eq_lit(a0, (size_t)(p - a0), SIGV4_ALGO))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "Unsupported Authorization Type '%.*s'; sign the request with AWS "
                          "Signature Version 4 (" SIGV4_ALGO ").",
                          (int)((p - a0) > 64 ? 64 : (p - a0)), a0);
    slice_t cred = {NULL, 0}, sh = {NULL, 0}, sig = {NULL, 0};
    while (p < e) {
        while (p < e && (*p == ',' || is_ws((unsigned char)*p))) p++;
        if (p == e) break;
        const char *t = p;
        while (p < e && *p != ',' && !is_ws((unsigned char)*p)) p++;
        const char *eq = memchr(t, '=', (size_t)(p - t));
        if (!eq)
            return tr_err_set(err, TR_EAUTH_SIG,
                              "'%.*s' not a valid key=value pair (missing equal-sign) in "
                              "Authorization header: '%.*s'.",
                              (int)((p - t) > 128 ? 128 : (p - t)), t,
                              (int)(auth.n > 300 ? 300 : auth.n), auth.p);
        slice_t v = {eq + 1, (size_t)(p - eq - 1)};
        size_t kn = (size_t)(eq - t);
        if (eq_lit(t, kn, "Credential") && !cred.p) cred = v;
        else if (eq_lit(t, kn, "SignedHeaders") && !sh.p) sh = v;
        else if (eq_lit(t, kn, "Signature") && !sig.p) sig = v;
    }

    /* The date: X-Amz-Date, else Date. */
    slice_t xd = header_get(ix, h, "x-amz-date");
    slice_t dd = xd.p ? xd : header_get(ix, h, "date");
    if (!cred.p || !sh.p || !sig.p || !dd.p) {
        char msg[TR_ERR_MSG_MAX];
        size_t o = 0;
        const char *need[3] = {"Credential", "Signature", "SignedHeaders"};
        const slice_t *have[3] = {&cred, &sig, &sh};
        for (int i = 0; i < 3; i++)
            if (!have[i]->p)
                o += (size_t)snprintf(msg + o, sizeof msg - o,
                                      "Authorization header requires '%s' parameter. ", need[i]);
        if (!dd.p)
            o += (size_t)snprintf(msg + o, sizeof msg - o,
                                  "Authorization header requires existence of either a "
                                  "'X-Amz-Date' or a 'Date' header. ");
        return tr_err_set(err, TR_EAUTH_SIG, "%sAuthorization=%.*s", msg,
                          (int)(auth.n > 200 ? 200 : auth.n), auth.p);
    }
    int rc = parse_credential(vp, cred.p, cred.n, err);
    if (rc) return rc;

    if (xd.p ? parse_iso_basic(dd.p, dd.n, &vp->t_req)
             : (parse_http_date(dd.p, dd.n, &vp->t_req) && parse_iso_basic(dd.p, dd.n, &vp->t_req)))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "Date must be in ISO-8601 'basic format'. Got '%.*s'. See "
                          "http://en.wikipedia.org/wiki/ISO_8601",
                          (int)(dd.n > 64 ? 64 : dd.n), dd.p);
    if (dd.n == 16) { /* ISO basic as sent (a leap second must not be renormalised) */
        memcpy(vp->amz_date, dd.p, 16);
        vp->amz_date[16] = '\0';
    } else {
        fmt_iso_basic(vp->t_req, vp->amz_date);
    }
    vp->sh = sh;
    vp->sig = sig;
    vp->expires = -1;
    vp->presigned = 0;
    return 0;
}

enum { QP_ALGO, QP_CRED, QP_DATE, QP_EXPIRES, QP_SH, QP_SIG, QP_N };
static const char *const QP_NAMES[QP_N] = {"X-Amz-Algorithm",     "X-Amz-Credential",
                                           "X-Amz-Date",          "X-Amz-Expires",
                                           "X-Amz-SignedHeaders", "X-Amz-Signature"};

/* Raw values of the X-Amz-* authentication parameters (first occurrence).  Returns how many of
 * X-Amz-Algorithm, X-Amz-Credential and X-Amz-Signature are present: those mark the presigned
 * form (X-Amz-Date alone may ride along with an Authorization header). */
static int query_auth_params(const char *q, slice_t out[QP_N]) {
    int found = 0;
    for (int k = 0; k < QP_N; k++) out[k] = (slice_t){NULL, 0};
    if (!q) return 0;
    size_t qn = strlen(q), i = 0;
    while (i < qn) {
        size_t j = i;
        while (j < qn && q[j] != '&') j++;
        const char *eq = memchr(q + i, '=', j - i);
        size_t nend = eq ? (size_t)(eq - q) : j;
        if (nend - i >= 10 && (q[i] == 'X' || q[i] == '%')) {
            for (int k = 0; k < QP_N; k++) {
                if (!out[k].p && pct_eq(q + i, nend - i, QP_NAMES[k])) {
                    out[k] = eq ? (slice_t){eq + 1, j - nend - 1} : (slice_t){q + j, 0};
                    found += k == QP_ALGO || k == QP_CRED || k == QP_SIG;
                    break;
                }
            }
        }
        i = j + 1;
    }
    return found;
}

/* Presigned: ?X-Amz-Algorithm=...&X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=...
 * &X-Amz-SignedHeaders=...&X-Amz-Signature=...  Decoded values go to dec (cap bytes). */
static int parse_query_form(vparse_t *vp, const slice_t qp[QP_N], char *dec, size_t cap,
                            tr_err *err) {
    for (int k = 0; k < QP_N; k++)
        if (!qp[k].p)
            return tr_err_set(err, TR_EAUTH_SIG,
                              "Query-string authentication version 4 requires the "
                              "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                              "X-Amz-SignedHeaders, and X-Amz-Expires parameters.");
    slice_t v[QP_N];
    size_t o = 0;
    for (int k = 0; k < QP_N; k++) {
        long n = pct_decode(dec + o, cap - o, qp[k].p, qp[k].n);
        if (n < 0)
            return tr_err_set(err, TR_EAUTH_SIG,
                              "Query-string authentication parameter %s is too long.", QP_NAMES[k]);
        v[k] = (slice_t){dec + o, (size_t)n};
        o += (size_t)n + 1;
    }
    if (!eq_lit(v[QP_ALGO].p, v[QP_ALGO].n, SIGV4_ALGO))
        return tr_err_set(err, TR_EAUTH_SIG, "X-Amz-Algorithm only supports \"" SIGV4_ALGO "\"");
    int rc = parse_credential(vp, v[QP_CRED].p, v[QP_CRED].n, err);
    if (rc) return rc;
    if (parse_iso_basic(v[QP_DATE].p, v[QP_DATE].n, &vp->t_req))
        return tr_err_set(err, TR_EAUTH_SIG,
                          "X-Amz-Date must be in the ISO8601 Long Format "
                          "\"yyyyMMdd'T'HHmmss'Z'\"");
    memcpy(vp->amz_date, v[QP_DATE].p, 16);
    vp->amz_date[16] = '\0';

    slice_t ex = v[QP_EXPIRES];
    if (ex.n && ex.p[0] == '-')
        return tr_err_set(err, TR_EAUTH_SIG, "X-Amz-Expires must be non-negative");
    long long e = 0;
    if (!ex.n) return tr_err_set(err, TR_EAUTH_SIG, "X-Amz-Expires should be a number");
    for (size_t i = 0; i < ex.n; i++) {
        if (ex.p[i] < '0' || ex.p[i] > '9')
            return tr_err_set(err, TR_EAUTH_SIG, "X-Amz-Expires should be a number");
        if (e <= SIGV4_MAX_EXPIRES) e = e * 10 + (ex.p[i] - '0');
    }
    if (e > SIGV4_MAX_EXPIRES)
        return tr_err_set(err, TR_EAUTH_SIG,
                          "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    vp->expires = e;
    vp->sh = v[QP_SH];
    vp->sig = v[QP_SIG];
    vp->presigned = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Verification                                                                               */
/* ------------------------------------------------------------------------------------------ */

static int is_hex64(slice_t s) {
    if (s.n != 64) return 0;
    for (size_t i = 0; i < 64; i++)
        if (hexval((unsigned char)s.p[i]) < 0) return 0;
    return 1;
}

static int list_has(slice_t list, const char *name) {
    size_t i = 0;
    while (i <= list.n) {
        size_t j = i;
        while (j < list.n && list.p[j] != ';') j++;
        if (ci_eq(list.p + i, j - i, name)) return 1;
        i = j + 1;
    }
    return 0;
}

static const char *mismatch_msg(int s3) {
    return s3 ? "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method."
              : "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.";
}

/* Which payload hash the client signed; NULL with err set when unacceptable. */
static const char *payload_hash(const vparse_t *vp, const sigv4_req_t *req, const hindex_t *ix,
                                char buf[72], int *rc, tr_err *err) {
    slice_t ch = header_get(ix, req->headers, "x-amz-content-sha256");
    if (vp->presigned && vp->s3) return "UNSIGNED-PAYLOAD";
    if (ch.p) {
        if (is_hex64(ch)) {
            if (req->payload_sha256 && (strlen(req->payload_sha256) != 64 ||
                                        ci_cmp(ch.p, 64, req->payload_sha256, 64) != 0)) {
                *rc = tr_err_set(err, TR_EAUTH_SIG,
                                 "The provided 'x-amz-content-sha256' header does not match what "
                                 "was computed.");
                return NULL;
            }
        } else if (eq_lit(ch.p, ch.n, "UNSIGNED-PAYLOAD") ||
                   (ch.n > 10 && memcmp(ch.p, "STREAMING-", 10) == 0)) {
            if (!vp->s3) {
                *rc = tr_err_set(err, TR_EAUTH_SIG,
                                 "x-amz-content-sha256 '%.*s' is only accepted by s3; sign the "
                                 "SHA-256 of the body for service '%s'.",
                                 (int)(ch.n > 64 ? 64 : ch.n), ch.p, vp->service);
                return NULL;
            }
        } else {
            *rc = tr_err_set(err, TR_EAUTH_SIG,
                             "The provided 'x-amz-content-sha256' header must be a valid SHA256.");
            return NULL;
        }
        if (ch.n >= 72) {
            *rc = tr_err_set(err, TR_EAUTH_SIG,
                             "The provided 'x-amz-content-sha256' header must be a valid SHA256.");
            return NULL;
        }
        memcpy(buf, ch.p, ch.n);
        buf[ch.n] = '\0';
        return buf;
    }
    if (req->payload_sha256) return req->payload_sha256;
    if (vp->presigned) return "UNSIGNED-PAYLOAD";
    *rc = tr_err_set(err, TR_EAUTH_SIG,
                     "Missing required header for this request: x-amz-content-sha256");
    return NULL;
}

static int check_time(const vparse_t *vp, long long now, tr_err *err) {
    char a[17], b[17];
    if (vp->t_req - now > SIGV4_SKEW_S) {
        fmt_iso_basic(now + SIGV4_SKEW_S, a);
        fmt_iso_basic(now, b);
        return tr_err_set(err, TR_EAUTH_EXPIRED,
                          "Signature not yet current: %s is still later than %s (%s + 15 min.)",
                          vp->amz_date, a, b);
    }
    if (vp->presigned) {
        if (now > vp->t_req + vp->expires) {
            fmt_iso_basic(vp->t_req + vp->expires, a);
            fmt_iso_basic(now, b);
            return tr_err_set(err, TR_EAUTH_EXPIRED,
                              "Request has expired: X-Amz-Date %s plus X-Amz-Expires %lld s "
                              "ended at %s, it is now %s; create a new presigned URL.",
                              vp->amz_date, vp->expires, a, b);
        }
        return 0;
    }
    if (now - vp->t_req > SIGV4_SKEW_S) {
        fmt_iso_basic(now - SIGV4_SKEW_S, a);
        fmt_iso_basic(now, b);
        return tr_err_set(err, TR_EAUTH_EXPIRED,
                          "Signature expired: %s is now earlier than %s (%s - 15 min.)",
                          vp->amz_date, a, b);
    }
    return 0;
}

/* sigv4_verify (full) or sigv4_check_headers (!full: stop before the signature). */
static int verify(const sigv4_req_t *req, sigv4_secret_fn lookup, void *arg, sigv4_result_t *out,
                  tr_err *err, int full) {
    if (!req || !req->method || !lookup || (req->n_headers && !req->headers))
        return tr_err_set(err, TR_EINVAL, "sigv4_verify: req, req->method and lookup are required");
    sigv4_req_t head_only;
    if (!full) { /* no body yet: its hash is not known */
        head_only = *req;
        head_only.payload_sha256 = NULL;
        req = &head_only;
    }
    if (out) memset(out, 0, sizeof *out);

    int rc = 0;
    hindex_t ix;
    hindex_build(&ix, req->headers, req->n_headers);
    char cr_stack[2048], sts_stack[512], qdec[2048];
    sb_t cr, sts;
    sb_init(&cr, cr_stack, sizeof cr_stack);
    sb_init(&sts, sts_stack, sizeof sts_stack);
    unsigned char used_stack[64], *used = used_stack;
    char secret[SIGV4_SECRET_MAX];
    secret[0] = '\0';
    uint8_t key[32], mac[32], given[32];
    vparse_t vp;
    memset(&vp, 0, sizeof vp);

    slice_t auth = header_get(&ix, req->headers, "authorization");
    if (auth.p && !auth.n) auth.p = NULL;
    slice_t qp[QP_N];
    int nq = query_auth_params(req->query, qp);
    if (auth.p && nq) {
        rc = tr_err_set(err, TR_EAUTH_SIG,
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                        "parameter, Signature query string parameter or the Authorization header "
                        "should be specified");
        goto leave;
    }
    if (!auth.p && !nq) {
        rc = tr_err_set(err, TR_EAUTH_MISSING,
                        "Missing Authentication Token: sign the request with AWS Signature "
                        "Version 4 (Authorization header or presigned X-Amz-* query parameters).");
        goto leave;
    }
    rc = auth.p ? parse_header_form(&vp, auth, &ix, req->headers, err)
                : parse_query_form(&vp, qp, qdec, sizeof qdec, err);
    if (rc) goto leave;

    if (memcmp(vp.date, vp.amz_date, 8) != 0) {
        rc = tr_err_set(err, TR_EAUTH_SIG,
                        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                        "of date from HTTP: '%s' != '%.8s', from '%s'.",
                        vp.date, vp.amz_date, vp.amz_date);
        goto leave;
    }
    if (!list_has(vp.sh, "host") && !list_has(vp.sh, ":authority")) {
        rc = tr_err_set(err, TR_EAUTH_SIG,
                        "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                        "Authorization.");
        goto leave;
    }

    rc = lookup(arg, vp.akid, secret, sizeof secret);
    if (rc == TR_EAUTH_KEY) {
        rc = tr_err_set(err, TR_EAUTH_KEY, "%s",
                        vp.s3 ? "The AWS Access Key Id you provided does not exist in our records."
                              : "The security token included in the request is invalid.");
        goto leave;
    }
    if (rc) {
        rc = tr_err_set(err, rc < 0 ? rc : TR_EINTERNAL,
                        "secret lookup for access key '%s' failed (%s)", vp.akid, tr_strerror(rc));
        goto leave;
    }
    secret[sizeof secret - 1] = '\0';

    rc = check_time(&vp, req->now_ms / 1000, err);
    if (rc) goto leave;

    char phbuf[72];
    if (!full) {
        /* The payload hash is known only when the client sent it: check its form then. */
        if (header_get(&ix, req->headers, "x-amz-content-sha256").p &&
            !payload_hash(&vp, req, &ix, phbuf, &rc, err))
            goto leave;
        if (out) {
            memcpy(out->access_key, vp.akid, sizeof vp.akid);
            memcpy(out->region, vp.region, sizeof vp.region);
            memcpy(out->service, vp.service, sizeof vp.service);
            memcpy(out->date, vp.date, sizeof vp.date);
            memcpy(out->amz_date, vp.amz_date, sizeof vp.amz_date);
        }
        rc = 0;
        goto leave;
    }
    const char *ph = payload_hash(&vp, req, &ix, phbuf, &rc, err);
    if (!ph) goto leave;

    if (ix.n > sizeof used_stack) {
        used = malloc(ix.n);
        if (!used) die("out of memory", ix.n);
    }
    memset(used, 0, ix.n);
    slice_t miss;
    if (build_creq(&cr, req, &ix, vp.sh, ph, vp.s3, used, &miss) < 0) {
        rc = tr_err_set(err, TR_EAUTH_SIG,
                        "Header '%.*s' is listed in SignedHeaders but is not in the request; send "
                        "every signed header or leave it out of SignedHeaders.",
                        (int)(miss.n > 100 ? 100 : miss.n), miss.p);
        goto leave;
    }
    /* S3 refuses x-amz-* headers that the signature does not cover. */
    if (vp.s3 && !vp.presigned) {
        for (size_t k = 0; k < ix.n; k++) {
            if (!used[k] && ix.v[k].nlen > 6 && memcmp(ix.v[k].name, "x-amz-", 6) == 0) {
                rc = tr_err_set(err, TR_EAUTH_SIG,
                                "There were headers present in the request which were not "
                                "signed: %.100s",
                                req->headers[ix.v[k].idx].name);
                goto leave;
            }
        }
    }

    char scope[8 + 1 + sizeof vp.region + sizeof vp.service + sizeof SIGV4_TERM + 4], *sp = scope;
    size_t rl = strlen(vp.region), sl = strlen(vp.service);
    memcpy(sp, vp.date, 8), sp += 8, *sp++ = '/';
    memcpy(sp, vp.region, rl), sp += rl, *sp++ = '/';
    memcpy(sp, vp.service, sl), sp += sl, *sp++ = '/';
    memcpy(sp, SIGV4_TERM, sizeof SIGV4_TERM); /* NUL included */
    build_sts(&sts, vp.amz_date, scope, cr.p, cr.len);
    signing_key_cached(vp.akid, secret, vp.date, vp.region, vp.service, key);
    tr_hmac_sha256(key, 32, sts.p, sts.len, mac);

    int ok = vp.sig.n == 64;
    for (size_t i = 0; ok && i < 32; i++) {
        int hi = hexval((unsigned char)vp.sig.p[2 * i]);
        int lo = hexval((unsigned char)vp.sig.p[2 * i + 1]);
        if (hi < 0 || lo < 0) ok = 0;
        else given[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok || CRYPTO_memcmp(given, mac, 32) != 0) {
        rc = tr_err_set(err, TR_EAUTH_SIG, "%s", mismatch_msg(vp.s3));
        goto leave;
    }

    if (out) {
        memcpy(out->access_key, vp.akid, sizeof vp.akid);
        memcpy(out->region, vp.region, sizeof vp.region);
        memcpy(out->service, vp.service, sizeof vp.service);
        memcpy(out->date, vp.date, sizeof vp.date);
        memcpy(out->amz_date, vp.amz_date, sizeof vp.amz_date);
        hex_lower(mac, 32, out->signature);
    }
    rc = 0;

leave:
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(key, sizeof key);
    if (used != used_stack) free(used);
    sb_free(&cr);
    sb_free(&sts);
    hindex_free(&ix);
    return rc;
}

int sigv4_verify(const sigv4_req_t *req, sigv4_secret_fn lookup, void *arg, sigv4_result_t *out,
                 tr_err *err) {
    return verify(req, lookup, arg, out, err, 1);
}

int sigv4_check_headers(const sigv4_req_t *req, sigv4_secret_fn lookup, void *arg,
                        sigv4_result_t *out, tr_err *err) {
    return verify(req, lookup, arg, out, err, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Client side                                                                                */
/* ------------------------------------------------------------------------------------------ */

static int name_lex_cmp(const void *a, const void *b) {
    const href_t *x = a, *y = b;
    int d = memcmp(x->name, y->name, x->nlen < y->nlen ? x->nlen : y->nlen);
    return d ? d : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

char *sigv4_sign(const sigv4_req_t *req, const char *access_key, const char *secret,
                 const char *region, const char *service, const char *amz_date) {
    if (!req || !req->method || !access_key || !secret || !region || !service || !amz_date ||
        (req->n_headers && !req->headers))
        return NULL;
    long long t;
    if (parse_iso_basic(amz_date, strlen(amz_date), &t)) return NULL;

    hindex_t ix;
    hindex_build(&ix, req->headers, req->n_headers);
    char *res = NULL;
    char sh_stack[512], cr_stack[2048], sts_stack[512], phbuf[72];
    sb_t sh, cr, sts;
    sb_init(&sh, sh_stack, sizeof sh_stack);
    sb_init(&cr, cr_stack, sizeof cr_stack);
    sb_init(&sts, sts_stack, sizeof sts_stack);

    slice_t xd = header_get(&ix, req->headers, "x-amz-date");
    slice_t host = header_get(&ix, req->headers, "host");
    slice_t ch = header_get(&ix, req->headers, "x-amz-content-sha256");
    const char *ph = req->payload_sha256;
    if (ch.p) {
        if (ch.n >= sizeof phbuf) goto leave;
        memcpy(phbuf, ch.p, ch.n);
        phbuf[ch.n] = '\0';
        ph = phbuf;
    }
    if (!xd.p || !eq_lit(xd.p, xd.n, amz_date) || !host.p || !ph) goto leave;

    /* SignedHeaders: every distinct name but authorization, lowercase, sorted. */
    href_t nstack[64], *names = ix.n > 64 ? malloc(ix.n * sizeof *names) : nstack;
    if (!names) die("out of memory", ix.n * sizeof *names);
    size_t nn = 0;
    for (size_t k = 0; k < ix.n; k++) {
        const href_t *r = &ix.v[k];
        if (k && hname_cmp(r->name, r->nlen, ix.v[k - 1].name, ix.v[k - 1].nlen) == 0) continue;
        if (!eq_lit(r->name, r->nlen, "authorization")) names[nn++] = *r;
    }
    if (nn > 1) qsort(names, nn, sizeof *names, name_lex_cmp);
    for (size_t k = 0; k < nn; k++) {
        if (k) sb_putc(&sh, ';');
        sb_add(&sh, names[k].name, names[k].nlen);
    }
    if (names != nstack) free(names);
    slice_t miss;
    if (build_creq(&cr, req, &ix, (slice_t){sh.p, sh.len}, ph, strcmp(service, "s3") == 0, NULL,
                   &miss) < 0)
        goto leave;

    sb_t scope;
    char scope_stack[256];
    sb_init(&scope, scope_stack, sizeof scope_stack);
    sb_add(&scope, amz_date, 8);
    sb_putc(&scope, '/');
    sb_puts(&scope, region);
    sb_putc(&scope, '/');
    sb_puts(&scope, service);
    sb_puts(&scope, "/" SIGV4_TERM);
    scope.p[scope.len] = '\0';
    build_sts(&sts, amz_date, scope.p, cr.p, cr.len);

    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    uint8_t key[32], mac[32];
    char hex[65];
    signing_key_cached(access_key, secret, date, region, service, key);
    tr_hmac_sha256(key, 32, sts.p, sts.len, mac);
    OPENSSL_cleanse(key, sizeof key);
    hex_lower(mac, 32, hex);

    sb_t a;
    sb_init(&a, NULL, 0);
    sb_puts(&a, SIGV4_ALGO " Credential=");
    sb_puts(&a, access_key);
    sb_putc(&a, '/');
    sb_add(&a, scope.p, scope.len);
    sb_puts(&a, ", SignedHeaders=");
    sb_add(&a, sh.p, sh.len);
    sb_puts(&a, ", Signature=");
    sb_add(&a, hex, 64);
    res = sb_detach(&a);
    sb_free(&scope);

leave:
    sb_free(&sh);
    sb_free(&cr);
    sb_free(&sts);
    hindex_free(&ix);
    return res;
}
