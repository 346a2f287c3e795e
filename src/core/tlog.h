/* SPDX-License-Identifier: Apache-2.0
 *
 * tlog.h -- the server's own log: one line per notable event on stderr.
 *
 * Format: "2026-11-25T00:00:00.000Z LEVEL subsystem: message".  Thread-safe (one write(2) per
 * line).  TRIBUTARY_LOG=debug|info|warn|error|off sets the threshold (default info; off is for
 * fuzz targets, whose inputs are damage on purpose).
 */
#ifndef TR_TLOG_H
#define TR_TLOG_H

#include "core/clock.h" /* tr_now_ms, tr_mono_ns: most log users want them too */

enum { TR_LOG_DEBUG, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR };

void tr_log(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define tr_info(sub, ...) tr_log(TR_LOG_INFO, sub, __VA_ARGS__)
#define tr_warn(sub, ...) tr_log(TR_LOG_WARN, sub, __VA_ARGS__)
#define tr_error(sub, ...) tr_log(TR_LOG_ERROR, sub, __VA_ARGS__)
#define tr_debug(sub, ...) tr_log(TR_LOG_DEBUG, sub, __VA_ARGS__)

/* Rate limit for lines a client can cause (one per rejected request, say), so bad input can
 * neither flood the log nor fill the disk.  Zero-initialise one per call site (static).
 * tr_log_allow returns 1 when a line may be written now -- at most `per_sec` per second --
 * and then sets *dropped to the number of lines suppressed since the last allowed one, to
 * say in that line.  Thread-safe (atomics). */
typedef struct tr_ratelimit {
    _Atomic long long sec;
    _Atomic unsigned n, dropped;
} tr_ratelimit;
int tr_log_allow(tr_ratelimit *rl, unsigned per_sec, unsigned *dropped);

#endif
