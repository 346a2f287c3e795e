/*
 * awsreq.h -- what the benchmark's C producers share: a keep-alive TCP connection and a
 * SigV4-signed Kinesis JSON 1.1 request over it.  Used by bench/esm/esmload.c (one PutRecord per
 * record) and bench/pipeline/pipeload.c (PutRecords of demo readings); bench/trbench.c has its
 * own, richer client.  Not thread-shared: each producer thread owns its fd and buffers.
 */
#ifndef BENCH_AWSREQ_H
#define BENCH_AWSREQ_H

#include <stddef.h>

#include "core/buf.h"

/* Connect to host:port with TCP_NODELAY.  Returns the fd, or -1. */
int bench_connect(const char *host, const char *port);

/* Build into *req (reset first) the whole HTTP/1.1 request of Kinesis_20131202.<op> with JSON
 * body[0..len), signed with SigV4 for service "kinesis" at the current time. */
void bench_kinesis_request(tr_buf *req, const char *hostport, const char *op, const char *body,
                           size_t len, const char *key, const char *secret, const char *region);

/* Read one HTTP response with a Content-Length body into *buf (reset first; NUL-terminated).
 * Returns the status (and *body = the body's offset in buf), or -1 when the connection failed
 * or closed: close the fd then. */
int bench_read_response(int fd, tr_buf *buf, size_t *body);

#endif
