/* SPDX-License-Identifier: Apache-2.0
 *
 * awsreq.h -- what the benchmark's C producers share: a keep-alive TCP connection and a
 * SigV4-signed Kinesis JSON 1.1 request over it.  Used by bench/esm/esmload.c (one PutRecord per
 * record) and bench/pipeline/pipeload.c (PutRecords of demo readings); bench/trbench.c has its
 * own, richer client.  Not thread-shared: each producer thread owns its fd and buffers.
 */
#ifndef BENCH_AWSREQ_H
#define BENCH_AWSREQ_H

#include <stddef.h>

#include "core/buf.h"

/* Where to send and how to sign: the options every producer takes. */
typedef struct bench_target {
    char host[256], port[16], hostport[300];
    char key[128], secret[128], region[64];
} bench_target_t;

/* Defaults: credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region us-east-1. */
void bench_target_init(bench_target_t *t);
/* Take option o with value v if it is one of --endpoint HOST:PORT, --key, --secret, --region:
 * 1 when taken, 0 when not one of them, -1 (with a message on stderr naming prog) when bad. */
int bench_target_opt(bench_target_t *t, const char *prog, const char *o, const char *v);

/* Connect to t's host:port with TCP_NODELAY.  Returns the fd, or -1. */
int bench_connect(const bench_target_t *t);

/* Build into *req (reset first) the whole HTTP/1.1 request of Kinesis_20131202.<op> with JSON
 * body[0..len), signed with SigV4 for service "kinesis" at the current time. */
void bench_kinesis_request(tr_buf *req, const bench_target_t *t, const char *op,
                           const char *body, size_t len);

/* Read one HTTP response with a Content-Length body into *buf (reset first; NUL-terminated).
 * Returns the status (and *body = the body's offset in buf), or -1 when the connection failed
 * or closed: close the fd then. */
int bench_read_response(int fd, tr_buf *buf, size_t *body);

#endif
