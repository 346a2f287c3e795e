/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_req.h -- fuzz input as an HTTP request, shared by fuzz_http1 and fuzz_sigv4.
 *
 * Input: "METHOD TARGET\n", then "name:value\n" lines up to an empty line; the rest is the body.
 * TARGET splits at its first '?' into path and query.  A value loses its leading spaces and tabs
 * (as libmicrohttpd gives it to us); a line without ':' is a header with an empty value.  A NUL
 * byte ends the field it is in.  At most FUZZ_REQ_MAX_HDR headers (the rest is ignored). */
#ifndef TR_FUZZ_REQ_H
#define TR_FUZZ_REQ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/sigv4.h"

#define FUZZ_REQ_MAX_HDR 64

typedef struct fuzz_req {
    char *buf;                               /* owns every string below */
    const char *method, *path, *query;
    sigv4_header_t h[FUZZ_REQ_MAX_HDR + 4];  /* room for a few headers a target adds */
    size_t n;
    const uint8_t *body;                     /* into the input */
    size_t body_len;
} fuzz_req_t;

/* Next line of buf[*at..end): NUL-terminated in place; NULL at the end. */
static char *fuzz_req_line(char *buf, size_t end, size_t *at) {
    if (*at >= end) return NULL;
    char *l = buf + *at;
    char *nl = memchr(l, '\n', end - *at);
    size_t len = nl ? (size_t)(nl - l) : end - *at;
    l[len] = 0;
    *at += len + 1;
    return l;
}

static void fuzz_req_parse(const uint8_t *data, size_t size, fuzz_req_t *r) {
    memset(r, 0, sizeof *r);
    r->buf = malloc(size + 1);
    if (!r->buf) abort();
    memcpy(r->buf, data, size);
    r->buf[size] = 0;
    size_t at = 0;
    char *first = fuzz_req_line(r->buf, size, &at);
    r->method = "GET";
    r->path = "/";
    r->query = "";
    if (first) {
        char *sp = strchr(first, ' ');
        r->method = first;
        if (sp) {
            *sp = 0;
            r->path = sp + 1;
            char *q = strchr(sp + 1, '?');
            if (q) {
                *q = 0;
                r->query = q + 1;
            }
        }
    }
    char *l;
    while ((l = fuzz_req_line(r->buf, size, &at)) != NULL && *l) {
        if (r->n == FUZZ_REQ_MAX_HDR) continue;
        char *c = strchr(l, ':');
        const char *v = "";
        if (c) {
            *c = 0;
            v = c + 1;
            while (*v == ' ' || *v == '\t') v++;
        }
        r->h[r->n].name = l;
        r->h[r->n].value = v;
        r->n++;
    }
    if (at < size) {
        r->body = data + at;
        r->body_len = size - at;
    }
}

static void fuzz_req_free(fuzz_req_t *r) { free(r->buf); }

#endif
