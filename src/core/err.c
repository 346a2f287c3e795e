/* SPDX-License-Identifier: Apache-2.0
 *
 * err.c -- error names and the message helper declared in err.h. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

const char *tr_err_name(int code) {
    switch (code) {
#define TR__ERR_NAME(name, val, desc)                                                              \
    case val: return #name;
        TR_ERRNO_MAP(TR__ERR_NAME)
#undef TR__ERR_NAME
    }
    return "UNKNOWN";
}

const char *tr_strerror(int code) {
    switch (code) {
#define TR__ERR_DESC(name, val, desc)                                                              \
    case val: return desc;
        TR_ERRNO_MAP(TR__ERR_DESC)
#undef TR__ERR_DESC
    }
    return "unknown error";
}

int tr_err_vset(tr_err *err, int code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int tr_err_set(tr_err *err, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tr_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void tr_err_clear(tr_err *err) {
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
