/* SPDX-License-Identifier: Apache-2.0
 *
 * tlog.c -- the server's log lines (see tlog.h). */
#include "core/tlog.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int threshold = -1;

static int level_threshold(void) {
    if (threshold < 0) {
        const char *e = getenv("TRIBUTARY_LOG");
        int t = TR_LOG_INFO;
        if (e && !strcmp(e, "debug")) t = TR_LOG_DEBUG;
        else if (e && !strcmp(e, "warn")) t = TR_LOG_WARN;
        else if (e && !strcmp(e, "error")) t = TR_LOG_ERROR;
        else if (e && !strcmp(e, "off")) t = TR_LOG_ERROR + 1; /* fuzz targets: nothing */
        threshold = t;
    }
    return threshold;
}

void tr_log(int level, const char *subsys, const char *fmt, ...) {
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < level_threshold()) return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level], subsys);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

int tr_log_allow(tr_ratelimit *rl, unsigned per_sec, unsigned *dropped) {
    long long now = tr_mono_ns() / 1000000000LL + 1; /* + 1: a zeroed struct is never "now" */
    long long s = atomic_load(&rl->sec);
    if (s != now && atomic_compare_exchange_strong(&rl->sec, &s, now)) atomic_store(&rl->n, 0);
    if (atomic_fetch_add(&rl->n, 1) < per_sec) {
        *dropped = atomic_exchange(&rl->dropped, 0);
        return 1;
    }
    atomic_fetch_add(&rl->dropped, 1);
    *dropped = 0;
    return 0;
}
