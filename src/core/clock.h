/* SPDX-License-Identifier: Apache-2.0
 *
 * clock.h -- the two clocks: wall time for what users see (timestamps, ARNs' dates, TTLs) and
 * monotonic time for everything that measures an interval (deadlines, rates, ages).
 */
#ifndef TR_CLOCK_H
#define TR_CLOCK_H

/* Wall clock in milliseconds since the Unix epoch. */
long long tr_now_ms(void);
/* Monotonic clock in nanoseconds / milliseconds (CLOCK_MONOTONIC; not related to the epoch). */
long long tr_mono_ns(void);
long long tr_mono_ms(void);

#endif
