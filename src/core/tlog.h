/*
 * tlog.h -- the server's own log: one line per notable event on stderr.
 *
 * Format: "2026-11-25T00:00:00.000Z LEVEL subsystem: message".  Thread-safe (one write(2) per
 * line).  TRIBUTARY_LOG=debug|info|warn|error sets the threshold (default info).
 */
#ifndef TR_TLOG_H
#define TR_TLOG_H

enum { TR_LOG_DEBUG, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR };

void tr_log(int level, const char *subsys, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define tr_info(sub, ...) tr_log(TR_LOG_INFO, sub, __VA_ARGS__)
#define tr_warn(sub, ...) tr_log(TR_LOG_WARN, sub, __VA_ARGS__)
#define tr_error(sub, ...) tr_log(TR_LOG_ERROR, sub, __VA_ARGS__)
#define tr_debug(sub, ...) tr_log(TR_LOG_DEBUG, sub, __VA_ARGS__)

/* Wall clock in milliseconds since the Unix epoch. */
long long tr_now_ms(void);
/* Monotonic clock in nanoseconds. */
long long tr_mono_ns(void);

#endif
