/*
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
 * by one (SigV4 from src/net/sigv4.h).  Prints one line:
 *     RESULT sent=N ok=N errors=N seconds=S rate=R
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "net/sigv4.h"

static struct {
    char host[256], port[16], hostport[300], stream[129], key[128], secret[128], region[64];
    double rate, duration;
    int threads, keys;
    atomic_long sent, ok, errors;
    long long t0_us;
} g = {.rate = 1000, .duration = 10, .threads = 16, .keys = 64, .region = "us-east-1"};

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int connect_to(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(g.host, g.port, &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Read one HTTP response (Content-Length bodies); returns the status or -1. */
static int read_response(int fd, char *buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = 0;
        char *he = strstr(buf, "\r\n\r\n");
        if (!he) continue;
        char *cl = strcasestr(buf, "content-length:");
        size_t body = cl ? (size_t)atol(cl + 15) : 0;
        if (n >= (size_t)(he + 4 - buf) + body) {
            int status = 0;
            sscanf(buf, "HTTP/1.%*d %d", &status);
            return status;
        }
        if (n + 1 >= cap) return -1;
    }
}

static void *worker(void *arg) {
    long id = (long)arg;
    double per = g.threads / g.rate * 1e6;   /* us between this thread's sends */
    long long next = g.t0_us + (long long)(per * id / g.threads);
    long long end = g.t0_us + (long long)(g.duration * 1e6);
    int fd = -1;
    tr_buf body = TR_BUF_INIT, req = TR_BUF_INIT;
    char resp[8192];
    unsigned seq = (unsigned)id * 7919u;
    while (next < end) {
        long long now = now_us();
        if (now < next) {
            struct timespec ts = {(next - now) / 1000000, ((next - now) % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
        next += (long long)per;
        if (fd < 0 && (fd = connect_to()) < 0) {
            atomic_fetch_add(&g.errors, 1);
            continue;
        }
        char data[128];
        int dl = snprintf(data, sizeof data, "%lld ", now_us());
        while (dl < 100) data[dl++] = 'x';
        tr_buf_reset(&body);
        tr_buf_printf(&body, "{\"StreamName\":\"%s\",\"PartitionKey\":\"k%u\",\"Data\":\"", g.stream,
                      seq++ % (unsigned)g.keys);
        tr_buf_base64(&body, data, (size_t)dl);
        tr_buf_puts(&body, "\"}");
        unsigned char md[SHA256_DIGEST_LENGTH];
        char hex[65], amz[32];
        SHA256((const unsigned char *)body.data, body.len, md);
        tr_hex(md, 32, hex);
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", &tm);
        sigv4_header_t h[4] = {{"content-type", "application/x-amz-json-1.1"},
                               {"host", g.hostport},
                               {"x-amz-date", amz},
                               {"x-amz-target", "Kinesis_20131202.PutRecord"}};
        sigv4_req_t r = {.method = "POST", .path = "/", .query = "", .headers = h, .n_headers = 4,
                         .payload_sha256 = hex, .now_ms = (long long)t * 1000};
        char *auth = sigv4_sign(&r, g.key, g.secret, g.region, "kinesis", amz);
        tr_buf_reset(&req);
        tr_buf_printf(&req, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.1\r\n"
                      "X-Amz-Target: Kinesis_20131202.PutRecord\r\nX-Amz-Date: %s\r\n"
                      "Authorization: %s\r\nContent-Length: %zu\r\n\r\n",
                      g.hostport, amz, auth ? auth : "", body.len);
        tr_buf_append(&req, body.data, body.len);
        free(auth);
        atomic_fetch_add(&g.sent, 1);
        if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
            close(fd);
            fd = -1;
            atomic_fetch_add(&g.errors, 1);
            continue;
        }
        int st = read_response(fd, resp, sizeof resp);
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
    return NULL;
}

int main(int argc, char **argv) {
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    snprintf(g.key, sizeof g.key, "%s", ak ? ak : "");
    snprintf(g.secret, sizeof g.secret, "%s", sk ? sk : "");
    snprintf(g.stream, sizeof g.stream, "bench");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--endpoint")) {
            snprintf(g.hostport, sizeof g.hostport, "%s", v);
            const char *c = strrchr(v, ':');
            if (!c) return fprintf(stderr, "esmload: --endpoint HOST:PORT\n"), 2;
            snprintf(g.host, sizeof g.host, "%.*s", (int)(c - v), v);
            snprintf(g.port, sizeof g.port, "%s", c + 1);
        } else if (!strcmp(o, "--stream")) snprintf(g.stream, sizeof g.stream, "%s", v);
        else if (!strcmp(o, "--rate")) g.rate = atof(v);
        else if (!strcmp(o, "--duration")) g.duration = atof(v);
        else if (!strcmp(o, "--threads")) g.threads = atoi(v);
        else if (!strcmp(o, "--keys")) g.keys = atoi(v);
        else if (!strcmp(o, "--key")) snprintf(g.key, sizeof g.key, "%s", v);
        else if (!strcmp(o, "--secret")) snprintf(g.secret, sizeof g.secret, "%s", v);
        else if (!strcmp(o, "--region")) snprintf(g.region, sizeof g.region, "%s", v);
        else return fprintf(stderr, "esmload: unknown option %s\n", o), 2;
    }
    if (!g.host[0] || g.rate <= 0 || g.threads < 1 || g.keys < 1)
        return fprintf(stderr, "usage: esmload --endpoint HOST:PORT --stream S --rate R "
                               "--duration S [--threads T] [--keys K] [--key K --secret S]\n"), 2;
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
