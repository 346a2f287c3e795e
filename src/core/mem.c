/* SPDX-License-Identifier: Apache-2.0
 *
 * mem.c -- allocation that aborts on out-of-memory (see mem.h). */
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

#include "core/tlog.h"

static void oom(size_t n) {
    tr_error("core", "out of memory allocating %zu bytes; stopping", n);
    abort();
}

void *tr_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *tr_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *tr_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *tr_xstrdup(const char *s) {
    if (!s) return NULL;
    return tr_xstrndup(s, strlen(s));
}

char *tr_xstrndup(const char *s, size_t n) {
    char *p = tr_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
