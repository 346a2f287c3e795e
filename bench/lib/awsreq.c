/* SPDX-License-Identifier: Apache-2.0
 *
 * awsreq.c -- connection and signed Kinesis requests for the benchmark's C producers (see
 * awsreq.h).  Moved out of bench/esm/esmload.c when bench/pipeline/pipeload.c needed the same.
 */
#include "awsreq.h"

#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/sigv4.h"

void bench_target_init(bench_target_t *t) {
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", ak ? ak : "");
    snprintf(t->secret, sizeof t->secret, "%s", sk ? sk : "");
    snprintf(t->region, sizeof t->region, "us-east-1");
}

int bench_target_opt(bench_target_t *t, const char *prog, const char *o, const char *v) {
    if (!strcmp(o, "--endpoint")) {
        snprintf(t->hostport, sizeof t->hostport, "%s", v);
        const char *c = strrchr(v, ':');
        if (!c) return fprintf(stderr, "%s: --endpoint HOST:PORT\n", prog), -1;
        snprintf(t->host, sizeof t->host, "%.*s", (int)(c - v), v);
        snprintf(t->port, sizeof t->port, "%s", c + 1);
    } else if (!strcmp(o, "--key")) {
        snprintf(t->key, sizeof t->key, "%s", v);
    } else if (!strcmp(o, "--secret")) {
        snprintf(t->secret, sizeof t->secret, "%s", v);
    } else if (!strcmp(o, "--region")) {
        snprintf(t->region, sizeof t->region, "%s", v);
    } else {
        return 0;
    }
    return 1;
}

int bench_connect(const bench_target_t *t) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(t->host, t->port, &hints, &ai)) return -1;
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

void bench_kinesis_request(tr_buf *req, const bench_target_t *t, const char *op, const char *body,
                           size_t len) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[65], amz[32], target[96];
    SHA256((const unsigned char *)body, len, md);
    tr_hex(md, 32, hex);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(amz, sizeof amz, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(target, sizeof target, "Kinesis_20131202.%s", op);
    sigv4_header_t h[4] = {{"content-type", "application/x-amz-json-1.1"},
                           {"host", t->hostport},
                           {"x-amz-date", amz},
                           {"x-amz-target", target}};
    sigv4_req_t r = {.method = "POST",
                     .path = "/",
                     .query = "",
                     .headers = h,
                     .n_headers = 4,
                     .payload_sha256 = hex,
                     .now_ms = (long long)now * 1000};
    char *auth = sigv4_sign(&r, t->key, t->secret, t->region, "kinesis", amz);
    tr_buf_reset(req);
    tr_buf_printf(req,
                  "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.1\r\n"
                  "X-Amz-Target: %s\r\nX-Amz-Date: %s\r\n"
                  "Authorization: %s\r\nContent-Length: %zu\r\n\r\n",
                  t->hostport, target, amz, auth ? auth : "", len);
    tr_buf_append(req, body, len);
    free(auth);
}

int bench_read_response(int fd, tr_buf *buf, size_t *body) {
    tr_buf_reset(buf);
    for (;;) {
        char tmp[65536];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) return -1;
        tr_buf_append(buf, tmp, (size_t)r);   /* NUL-terminated: strstr below is safe */
        char *he = strstr(buf->data, "\r\n\r\n");
        if (!he) continue;
        char *cl = strcasestr(buf->data, "content-length:");
        size_t blen = cl && cl < he ? (size_t)atol(cl + 15) : 0;
        *body = (size_t)(he + 4 - buf->data);
        if (buf->len >= *body + blen) {
            int status = 0;
            sscanf(buf->data, "HTTP/1.%*d %d", &status);
            return status;
        }
    }
}
