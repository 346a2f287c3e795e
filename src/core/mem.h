/* SPDX-License-Identifier: Apache-2.0
 *
 * mem.h -- allocation that does not return NULL.
 *
 * The server's policy on out-of-memory is to stop: memory is bounded by budgets checked before
 * allocating (a request over budget is refused with a throttling error), so a failing malloc means
 * the machine itself is out of memory, and carrying on with half-built state is worse than a
 * crash that recovery handles.  These log one line ("out of memory allocating N bytes") and
 * abort().  Use plain malloc where a failure can be answered (e.g. a request's own buffers).
 */
#ifndef TR_MEM_H
#define TR_MEM_H

#include <stddef.h>

void *tr_xmalloc(size_t n) __attribute__((returns_nonnull, malloc));
void *tr_xcalloc(size_t n, size_t size) __attribute__((returns_nonnull, malloc));
void *tr_xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
/* A copy of s; NULL for NULL. */
char *tr_xstrdup(const char *s) __attribute__((malloc));
/* A copy of s[0..n) with a NUL after it. */
char *tr_xstrndup(const char *s, size_t n) __attribute__((returns_nonnull, malloc));

#endif
