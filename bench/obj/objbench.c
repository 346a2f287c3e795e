/* SPDX-License-Identifier: Apache-2.0
 *
 * objbench.c -- the object engine (src/obj) at the library level, no HTTP: durable PUTs and GETs
 * of small objects from T threads for S seconds each, in a fresh directory.
 *
 *     objbench DIR [threads=8] [seconds=5] [size=4096]
 *
 * PUT: begin, one write, commit (fdatasync of the body, group-committed LMDB transaction, rename,
 * directory fsyncs) -- every PUT is acknowledged durable.  GET: obj_get of a random key written
 * before, pread of the whole body, close.  Prints ops/s and CPU microseconds per op (user+sys of
 * the process, from getrusage), the steadier figure on a shared machine.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "obj/obj.h"

static obj_t *g_o;
static size_t g_size = 4096;
static int g_secs = 5;
static atomic_long g_ops, g_errs;
static atomic_int g_keys; /* keys written by the PUT phase */
static int g_phase;       /* 0 put, 1 get */

static void *worker(void *arg) {
    uint64_t seed = (uintptr_t)arg * 2654435761u + 1;
    char *buf = malloc(g_size);
    memset(buf, 'x', g_size);
    long long end = tr_mono_ms() + g_secs * 1000LL;
    char key[64];
    tr_err e;
    while (tr_mono_ms() < end) {
        if (g_phase == 0) {
            int k = atomic_fetch_add(&g_keys, 1);
            snprintf(key, sizeof key, "obj/%08d", k);
            obj_put_t *p;
            if (obj_put_begin(g_o, "bench", key, NULL, &p, &e) ||
                obj_put_write(p, buf, g_size, &e) || obj_put_commit(p, NULL, &e)) {
                if (atomic_fetch_add(&g_errs, 1) == 0) fprintf(stderr, "PUT %s: %s\n", key, e.msg);
                continue;
            }
        } else {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            snprintf(key, sizeof key, "obj/%08d", (int)(seed % (uint64_t)atomic_load(&g_keys)));
            obj_reader_t *r;
            if (obj_get(g_o, "bench", key, NULL, &r, NULL, &e)) {
                if (atomic_fetch_add(&g_errs, 1) == 0) fprintf(stderr, "GET %s: %s\n", key, e.msg);
                continue;
            }
            if (r->fd < 0) memcpy(buf, r->mem, r->length);
            else if (pread(r->fd, buf, r->length, (off_t)r->offset) != (ssize_t)r->length)
                atomic_fetch_add(&g_errs, 1);
            obj_reader_close(r);
        }
        atomic_fetch_add(&g_ops, 1);
    }
    free(buf);
    return NULL;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: objbench DIR [threads=8] [seconds=5] [size=4096]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 8;
    if (argc > 3) g_secs = atoi(argv[3]);
    if (argc > 4) g_size = (size_t)atol(argv[4]);
    tr_err e = {0};
    if (obj_open(argv[1], NULL, &g_o, &e) || obj_bucket_create(g_o, "bench", NULL, &e)) {
        fprintf(stderr, "objbench: %s\n", e.msg);
        return 1;
    }
    const char *names[] = {"PUT", "GET"};
    for (g_phase = 0; g_phase < 2; g_phase++) {
        atomic_store(&g_ops, 0);
        atomic_store(&g_errs, 0);
        pthread_t th[256];
        if (threads > 256) threads = 256;
        double c0 = cpu_s();
        long long t0 = tr_mono_ns();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
        double secs = (tr_mono_ns() - t0) / 1e9, cpu = cpu_s() - c0;
        long ops = atomic_load(&g_ops);
        printf(
            "%s %zu B x %d threads: %ld ops in %.2f s = %.0f ops/s, %.1f us CPU/op, %ld errors\n",
            names[g_phase], g_size, threads, ops, secs, ops / secs, ops ? cpu * 1e6 / ops : 0.0,
            atomic_load(&g_errs));
    }
    obj_close(g_o);
    return 0;
}
