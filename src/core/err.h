/* SPDX-License-Identifier: Apache-2.0
 *
 * err.h -- Tributary error codes and the caller-owned error message.
 *
 * Every fallible function returns int: 0 on success, a negative TR_E* code on failure.  When
 * there is more to say it also fills a caller-owned tr_err (code + message).  The message tells
 * the user what was wrong and what to do ("stream \"orders\" not found; create it with
 * CreateStream or check StreamName").
 *
 * Engines return these codes and never spell AWS error names; each adapter in src/api/ maps a
 * code to the AWS error type and HTTP status in one table.  Adapters never invent codes.
 *
 * Thread rules: tr_err is plain data owned by the caller; no global state.
 */
#ifndef TR_ERR_H
#define TR_ERR_H

#include <stdarg.h>

/* X(name, value, short description) */
#define TR_ERRNO_MAP(X)                                                                            \
    X(OK, 0, "success")                                                                            \
    X(INVAL, -1, "invalid argument")                                                               \
    X(NOTFOUND, -2, "resource not found")                                                          \
    X(EXISTS, -3, "resource already exists")                                                       \
    X(INUSE, -4, "resource in use")                                                                \
    X(LIMIT, -5, "limit exceeded")                                                                 \
    X(THROTTLED, -6, "throttled: over capacity, retry with backoff")                               \
    X(NOMEM, -7, "out of memory")                                                                  \
    X(IO, -8, "I/O error")                                                                         \
    X(CORRUPT, -9, "corrupt data")                                                                 \
    X(EXPIRED, -10, "expired")                                                                     \
    X(TOOBIG, -11, "too large")                                                                    \
    X(AUTH_MISSING, -12, "missing authentication")                                                 \
    X(AUTH_KEY, -13, "unknown access key")                                                         \
    X(AUTH_SIG, -14, "signature mismatch")                                                         \
    X(AUTH_EXPIRED, -15, "signature expired")                                                      \
    X(SERIALIZATION, -16, "malformed request body")                                                \
    X(UNKNOWN_OP, -17, "unknown operation")                                                        \
    X(CLOSED, -18, "closed")                                                                       \
    X(INTERNAL, -19, "internal error")                                                             \
    X(AGAIN, -20, "try again")                                                                     \
    X(VALIDATION, -21, "validation failed")                                                        \
    X(CONDITION, -22, "conditional check failed")                                                  \
    X(TXN_CANCELED, -23, "transaction canceled")                                                   \
    X(IDEMPOTENCY, -24, "idempotency token reused with different parameters")                      \
    X(NOBUCKET, -25, "bucket not found")                                                           \
    X(NOVERSION, -26, "version not found")                                                         \
    X(RANGE, -27, "range not satisfiable")

enum {
#define TR__ERR_ENUM(name, val, desc) TR_E##name = (val),
    TR_ERRNO_MAP(TR__ERR_ENUM)
#undef TR__ERR_ENUM
};

#define TR_ERR_MSG_MAX 512

typedef struct tr_err {
    int code;                  /* TR_E* (0 when no error) */
    char msg[TR_ERR_MSG_MAX];  /* NUL-terminated, for humans */
} tr_err;

/* Name of a code ("NOTFOUND"), never NULL. */
const char *tr_err_name(int code);
/* Short description of a code, never NULL. */
const char *tr_strerror(int code);

/* Fill err (may be NULL) with code and a printf-style message; returns code so callers can
 * `return tr_err_set(err, TR_ENOTFOUND, "...")`. */
int tr_err_set(tr_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int tr_err_vset(tr_err *err, int code, const char *fmt, va_list ap);
/* Reset to success. err may be NULL. */
void tr_err_clear(tr_err *err);

#endif
