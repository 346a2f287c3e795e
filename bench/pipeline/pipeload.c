/* SPDX-License-Identifier: Apache-2.0
 *
 * pipeload.c -- the producer of the pipeline benchmark (bench/pipeline.py): `make demo`'s
 * readings, put with PutRecords from C so that the producer is not what limits the pipeline.
 *
 *   pipeload --endpoint HOST:PORT --stream NAME --duration S [--rate R] [--threads T]
 *            [--devices D] [--batch B] [--malformed P] [--fault P] [--seed N]
 *            [--key AK --secret SK --region R]
 *
 * T threads (default 4) each own a keep-alive connection and D/T devices and send PutRecords of
 * B readings (default 500, the API's maximum).  --rate R (records/s, all threads together) makes
 * it open loop: each thread sends a request every B*T/R seconds on a fixed schedule, a slow
 * answer makes the next send late, never skipped; without --rate (or 0) it is closed loop, as
 * fast as the server acknowledges.  A reading is what scripts/demo.py sends --
 *     {"device":"dev-00042","n":17,"ts":<wall clock ms at send>,"temperature":21.53,
 *      "humidity":40.1,"battery":99.87,"fault":null}
 * -- a random walk per device, fault "overheat" (+80 C, an alert) with probability --fault
 * (0.001), and a malformed (truncated) reading with probability --malformed (0.0005).  Records
 * the server refuses (ErrorCode) are counted, not resent.  Connection and SigV4 signing:
 * bench/lib/awsreq.c, shared with bench/esm/esmload.c (its sibling, one PutRecord per record).
 * Prints one line:
 *     RESULT sent=N ok=N failed=N malformed_ok=N alerts_ok=N errors=N seconds=S rate=R
 * (ok: records acknowledged; malformed_ok / alerts_ok: how many of those were malformed or
 * faults; errors: requests without a 200 answer).
 */
#include <math.h>
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

typedef struct device {
    char name[16];
    long n;
    double temp, hum, batt;
} device_t;

static struct {
    bench_target_t to;
    char stream[129];
    double rate, duration, p_malformed, p_fault;
    int threads, devices, batch;
    unsigned seed;
    atomic_long sent, ok, failed, malformed_ok, alerts_ok, errors;
    long long t0_us;
} g = {.duration = 10,
       .threads = 4,
       .devices = 2000,
       .batch = 500,
       .p_malformed = 0.0005,
       .p_fault = 0.001,
       .seed = 1};

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* xorshift64*: one generator per thread, seeded from --seed and the thread's index. */
static double rnd(unsigned long long *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double gauss(unsigned long long *s, double sigma) {
    double u = rnd(s), v = rnd(s);
    if (u < 1e-12) u = 1e-12;
    return sigma * sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* One reading of device d into out (JSON text); returns its kind: 0 normal, 1 fault, 2
 * malformed. */
static int reading(device_t *d, unsigned long long *s, char *out, size_t cap, size_t *len) {
    d->n++;
    d->temp += gauss(s, 0.3);
    d->hum += gauss(s, 0.5);
    d->batt -= rnd(s) * 0.01;
    if (d->batt < 0) d->batt = 0;
    int fault = rnd(s) < g.p_fault;
    int n;
    if (rnd(s) < g.p_malformed) {
        n = snprintf(out, cap, "{\"device\": \"%s\", \"n\": %ld, \"temp", d->name, d->n);
        *len = (size_t)n;
        return 2;
    }
    n = snprintf(out, cap,
                 "{\"device\":\"%s\",\"n\":%ld,\"ts\":%lld,\"temperature\":%.2f,\"humidity\":%.1f,"
                 "\"battery\":%.2f,\"fault\":%s}",
                 d->name, d->n, now_us() / 1000, d->temp + (fault ? 80 : 0), d->hum, d->batt,
                 fault ? "\"overheat\"" : "null");
    *len = (size_t)n;
    return fault;
}

static void *worker(void *arg) {
    long id = (long)arg;
    int lo = (int)((long)g.devices * id / g.threads),
        hi = (int)((long)g.devices * (id + 1) / g.threads);
    int nd = hi - lo;
    if (nd < 1) return NULL;
    unsigned long long s = 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)g.seed << 20) ^
                           (unsigned long long)(id + 1);
    device_t *dev = calloc((size_t)nd, sizeof *dev);
    int *kind = calloc((size_t)g.batch, sizeof *kind);
    if (!dev || !kind) abort();
    for (int i = 0; i < nd; i++) {
        snprintf(dev[i].name, sizeof dev[i].name, "dev-%05d", lo + i);
        dev[i].temp = 20 + rnd(&s) * 10;
        dev[i].hum = 40 + rnd(&s) * 20;
        dev[i].batt = 100;
    }
    double per = g.rate > 0 ? g.batch * g.threads / g.rate * 1e6 : 0;   /* us between sends */
    long long next = g.t0_us + (long long)(per * id / g.threads);
    long long end = g.t0_us + (long long)(g.duration * 1e6);
    int fd = -1;
    tr_buf body = TR_BUF_INIT, req = TR_BUF_INIT, resp = TR_BUF_INIT;
    for (;;) {
        long long now = now_us();
        if (per > 0) {
            if (next >= end) break;
            if (now < next) {
                struct timespec ts = {(next - now) / 1000000, ((next - now) % 1000000) * 1000};
                nanosleep(&ts, NULL);
            }
            next += (long long)per;
        } else if (now >= end) {
            break;
        }
        if (fd < 0 && (fd = bench_connect(&g.to)) < 0) {
            atomic_fetch_add(&g.errors, 1);
            sleep(1);
            continue;
        }
        tr_buf_reset(&body);
        tr_buf_printf(&body, "{\"StreamName\":\"%s\",\"Records\":[", g.stream);
        for (int i = 0; i < g.batch; i++) {
            device_t *d = &dev[(size_t)(rnd(&s) * nd) % (size_t)nd];
            char data[512];
            size_t dl;
            kind[i] = reading(d, &s, data, sizeof data, &dl);
            tr_buf_printf(&body, "%s{\"PartitionKey\":\"%s\",\"Data\":\"", i ? "," : "", d->name);
            tr_buf_base64(&body, data, dl);
            tr_buf_puts(&body, "\"}");
        }
        tr_buf_puts(&body, "]}");
        bench_kinesis_request(&req, &g.to, "PutRecords", body.data, body.len);
        atomic_fetch_add(&g.sent, g.batch);
        if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
            close(fd);
            fd = -1;
            atomic_fetch_add(&g.errors, 1);
            continue;
        }
        size_t off = 0;
        int st = bench_read_response(fd, &resp, &off);
        if (st != 200) {
            atomic_fetch_add(&g.errors, 1);
            if (st < 0) {
                close(fd);
                fd = -1;
            }
            continue;
        }
        /* Records[i] answers entry i: a SequenceNumber, or an ErrorCode. */
        const char *p = resp.data + off;
        long ok = 0, failed = 0, mal = 0, alerts = 0;
        for (int i = 0; i < g.batch; i++) {
            const char *sq = strstr(p, "\"SequenceNumber\""), *ec = strstr(p, "\"ErrorCode\"");
            if (!sq && !ec) break;
            if (sq && (!ec || sq < ec)) {
                ok++;
                mal += kind[i] == 2;
                alerts += kind[i] == 1;
                p = sq + 16;
            } else {
                failed++;
                p = ec + 11;
            }
        }
        atomic_fetch_add(&g.ok, ok);
        atomic_fetch_add(&g.failed, failed);
        atomic_fetch_add(&g.malformed_ok, mal);
        atomic_fetch_add(&g.alerts_ok, alerts);
    }
    if (fd >= 0) close(fd);
    tr_buf_free(&body);
    tr_buf_free(&req);
    tr_buf_free(&resp);
    free(dev);
    free(kind);
    return NULL;
}

int main(int argc, char **argv) {
    bench_target_init(&g.to);
    snprintf(g.stream, sizeof g.stream, "iot-telemetry");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        int taken = bench_target_opt(&g.to, "pipeload", o, v);
        if (taken < 0) return 2;
        if (taken) continue;
        if (!strcmp(o, "--stream")) snprintf(g.stream, sizeof g.stream, "%s", v);
        else if (!strcmp(o, "--rate")) g.rate = atof(v);
        else if (!strcmp(o, "--duration")) g.duration = atof(v);
        else if (!strcmp(o, "--threads")) g.threads = atoi(v);
        else if (!strcmp(o, "--devices")) g.devices = atoi(v);
        else if (!strcmp(o, "--batch")) g.batch = atoi(v);
        else if (!strcmp(o, "--malformed")) g.p_malformed = atof(v);
        else if (!strcmp(o, "--fault")) g.p_fault = atof(v);
        else if (!strcmp(o, "--seed")) g.seed = (unsigned)atol(v);
        else return fprintf(stderr, "pipeload: unknown option %s\n", o), 2;
    }
    if (!g.to.host[0] || g.rate < 0 || g.threads < 1 || g.devices < 1 || g.batch < 1 ||
        g.batch > 500)
        return fprintf(stderr, "usage: pipeload --endpoint HOST:PORT --stream S --duration S "
                               "[--rate R] [--threads T] [--devices D] [--batch 1-500] "
                               "[--malformed P] [--fault P] [--key K --secret S]\n"),
               2;
    g.t0_us = now_us() + 100000;
    pthread_t *t = calloc((size_t)g.threads, sizeof *t);
    if (!t) return 1;
    for (long i = 0; i < g.threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < g.threads; i++) pthread_join(t[i], NULL);
    double secs = (now_us() - g.t0_us) / 1e6;
    printf("RESULT sent=%ld ok=%ld failed=%ld malformed_ok=%ld alerts_ok=%ld errors=%ld "
           "seconds=%.2f rate=%.0f\n",
           atomic_load(&g.sent), atomic_load(&g.ok), atomic_load(&g.failed),
           atomic_load(&g.malformed_ok), atomic_load(&g.alerts_ok), atomic_load(&g.errors), secs,
           atomic_load(&g.ok) / secs);
    free(t);
    return 0;
}
