/* SPDX-License-Identifier: Apache-2.0
 *
 * esmload.c -- open-loop, timestamped PutRecord load for the event-source-mapping benchmark.
 *
 *   esmload --endpoint HOST:PORT --stream NAME --rate R --duration S [--threads T] [--keys K]
 *           [--key AK --secret SK --region R]
 *
 * T threads (default 16) each own a keep-alive connection and send PutRecord on a fixed
 * schedule, together R records per second (open loop: a slow answer does not slow the schedule
 * down, the next send is simply late -- and reported).  Each record's data is the sender's wall
 * clock in microseconds at the moment the request is written, then padding to 100 bytes, so the
 * function (bench/functions/latency.c) measures put -> invoke latency.  Requests are signed one
 * by one (SigV4; connection and signing in bench/lib/awsreq.c).  Prints one line:
 *     RESULT sent=N ok=N errors=N seconds=S rate=R
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../lib/awsreq.h"
#include "core/buf.h"

static struct {
    bench_target_t to;
    char stream[129];
    double rate, duration;
    int threads, keys;
    atomic_long sent, ok, errors;
    long long t0_us;
} g = {.rate = 1000, .duration = 10, .threads = 16, .keys = 64};

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *worker(void *arg) {
    long id = (long)arg;
    double per = g.threads / g.rate * 1e6;   /* us between this thread's sends */
    long long next = g.t0_us + (long long)(per * id / g.threads);
    long long end = g.t0_us + (long long)(g.duration * 1e6);
    int fd = -1;
    tr_buf body = TR_BUF_INIT, req = TR_BUF_INIT;
    tr_buf resp = TR_BUF_INIT;
    unsigned seq = (unsigned)id * 7919u;
    while (next < end) {
        long long now = now_us();
        if (now < next) {
            struct timespec ts = {(next - now) / 1000000, ((next - now) % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        next += (long long)per;
        if (fd < 0 && (fd = bench_connect(&g.to)) < 0) {
            atomic_fetch_add(&g.errors, 1);
            continue;
        }
        char data[128];
        int dl = snprintf(data, sizeof data, "%lld ", now_us());
        while (dl < 100) data[dl++] = 'x';
        tr_buf_reset(&body);
        tr_buf_printf(&body, "{\"StreamName\":\"%s\",\"PartitionKey\":\"k%u\",\"Data\":\"",
                      g.stream, seq++ % (unsigned)g.keys);
        tr_buf_base64(&body, data, (size_t)dl);
        tr_buf_puts(&body, "\"}");
        bench_kinesis_request(&req, &g.to, "PutRecord", body.data, body.len);
        atomic_fetch_add(&g.sent, 1);
        if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
            close(fd);
            fd = -1;
            atomic_fetch_add(&g.errors, 1);
            continue;
        }
        size_t off;
        int st = bench_read_response(fd, &resp, &off);
        if (st == 200) {
            atomic_fetch_add(&g.ok, 1);
        } else {
            atomic_fetch_add(&g.errors, 1);
            if (st < 0) {
                close(fd);
                fd = -1;
            }
        }
    }
    if (fd >= 0) close(fd);
    tr_buf_free(&body);
    tr_buf_free(&req);
    tr_buf_free(&resp);
    return NULL;
}

int main(int argc, char **argv) {
    bench_target_init(&g.to);
    snprintf(g.stream, sizeof g.stream, "bench");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        int taken = bench_target_opt(&g.to, "esmload", o, v);
        if (taken < 0) return 2;
        if (taken) continue;
        if (!strcmp(o, "--stream")) snprintf(g.stream, sizeof g.stream, "%s", v);
        else if (!strcmp(o, "--rate")) g.rate = atof(v);
        else if (!strcmp(o, "--duration")) g.duration = atof(v);
        else if (!strcmp(o, "--threads")) g.threads = atoi(v);
        else if (!strcmp(o, "--keys")) g.keys = atoi(v);
        else return fprintf(stderr, "esmload: unknown option %s\n", o), 2;
    }
    if (!g.to.host[0] || g.rate <= 0 || g.threads < 1 || g.keys < 1)
        return fprintf(stderr, "usage: esmload --endpoint HOST:PORT --stream S --rate R "
                               "--duration S [--threads T] [--keys K] [--key K --secret S]\n"),
               2;
    g.t0_us = now_us() + 100000;
    pthread_t *t = calloc((size_t)g.threads, sizeof *t);
    for (long i = 0; i < g.threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < g.threads; i++) pthread_join(t[i], NULL);
    double secs = (now_us() - g.t0_us) / 1e6;
    printf("RESULT sent=%ld ok=%ld errors=%ld seconds=%.2f rate=%.0f\n", atomic_load(&g.sent),
           atomic_load(&g.ok), atomic_load(&g.errors), secs, atomic_load(&g.ok) / secs);
    free(t);
    return 0;
}
