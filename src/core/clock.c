/* SPDX-License-Identifier: Apache-2.0
 *
 * clock.c -- wall and monotonic clocks (see clock.h). */
#include "core/clock.h"

#include <time.h>

long long tr_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long tr_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long tr_mono_ms(void) { return tr_mono_ns() / 1000000; }
