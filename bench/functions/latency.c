/* SPDX-License-Identifier: Apache-2.0
 *
 * latency.c -- the benchmark's no-op native function: it does nothing with a record except note
 * how long ago it was sent.  A record whose data starts with the sender's wall clock in
 * microseconds ("1764000000123456 ...", bench/esm/esmload.c) adds one line "<latency us>" to
 * $LAT_OUT (one write per invoke); other records are ignored.  Built like any function
 * (CMake tributary_function): liblatency.so (tributary.c1) and latency-bootstrap
 * (provided.al2023), from this one source.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <tributary/function.h>

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ctx;
    if (ev->kind != TRF_EVENT_KINESIS) return TRF_OK;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    /* Opened per invoke: the bench replaces the file between runs while hosts stay warm. */
    const char *p = getenv("LAT_OUT");
    int out_fd = p ? open(p, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
    if (out_fd < 0) return TRF_OK;
    char buf[16384];
    size_t n = 0;
    for (size_t i = 0; i < ev->n_records; i++) {
        char *end;
        long long sent = strtoll((const char *)ev->records[i].data, &end, 10);
        if (end == (const char *)ev->records[i].data) sent = 0;
        if (n + 32 > sizeof buf) {
            if (write(out_fd, buf, n) < 0) break;
            n = 0;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%lld\n", sent ? now - sent : -1);
    }
    if (n && write(out_fd, buf, n) < 0) n = 0;
    close(out_fd);
    return TRF_OK;
}
