/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_h2.c -- the HTTP/2 request path (net/h2.c): arbitrary client bytes to a server session.
 *
 * The session is set up as for an adopted socket (net__h2_mem_open: same nghttp2 callbacks,
 * options, SETTINGS and budgets), minus the socket and the loop thread.  Input: one mode byte,
 * then the client's bytes.  Mode bit 0: prefix the connection preface and an empty SETTINGS
 * frame (so the fuzzer starts past them); bits 1-2: feed the bytes whole or in chunks of 1, 7
 * or 1000; bit 3: run the once-a-second sweep after each chunk; bit 4: resume deferred requests
 * after each chunk rather than at the end.  The header-phase check answers requests whose path
 * starts with "/p" before their body; the handler answers half the others at once and defers the
 * rest (resumed later: some after the client has reset the stream); requests whose path starts
 * with "/a" authenticate the connection (else it is closed at the header timeout, and the
 * response deadlines of a trusted connection are not reached).  Small limits
 * (4 KiB bodies, 1 MiB in flight: 128 KiB of header blocks) so that refusals are reached.
 * Checked:
 *   - no crash, leak, or out-of-bounds access (ASan, UBSan, LeakSanitizer);
 *   - the handler sees what http.h promises: method, path and query set, body NUL-terminated
 *     at body_len, no pseudo-header among the headers, at most 64 KiB of header text;
 *   - after a final sweep past every deadline and the close, every byte charged to the
 *     in-flight budget has been given back and the connection is uncounted. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/net_int.h"

#define MAX_DEFERRED 256

static net_req_t *deferred[MAX_DEFERRED];
static int n_deferred;

static int handler(void *arg, net_req_t *req) {
    (void)arg;
    FUZZ_CHECK(req->method && req->path && req->query && req->body);
    FUZZ_CHECK(req->body[req->body_len] == 0);
    size_t text = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        FUZZ_CHECK(req->headers[i].name && req->headers[i].value);
        FUZZ_CHECK(req->headers[i].name[0] != ':');
        text += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 2;
    }
    FUZZ_CHECK(text <= 64 * 1024 + strlen("host") + 1);
    if (!strncmp(req->path, "/a", 2)) req->authed = 1;
    req->content_type = "application/x-amz-json-1.1";
    net_req_add_header(req, "x-amzn-RequestId", "fuzz");
    tr_buf_printf(&req->out, "{\"method\":\"%.16s\",\"len\":%zu,\"reject\":%d}", req->method,
                  req->body_len, req->reject);
    if ((req->body_len + strlen(req->path)) % 2 && n_deferred < MAX_DEFERRED) {
        deferred[n_deferred++] = req;
        return NET_DEFER;
    }
    return NET_DONE;
}

static int precheck(void *arg, net_req_t *req) {
    (void)arg;
    FUZZ_CHECK(req->method && req->path && req->query);
    if (strncmp(req->path, "/p", 2) != 0) return NET_CONTINUE;
    req->status = 403;
    tr_buf_puts(&req->out, "{\"__type\":\"precheck\"}");
    return NET_DONE;
}

static void resume_all(void) {
    for (int i = 0; i < n_deferred; i++) net_req_resume(deferred[i]);
    n_deferred = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    data++;
    size--;
    static const size_t chunks[4] = {0, 1, 7, 1000};
    size_t chunk = chunks[(mode >> 1) & 3];

    net_server_t srv;
    memset(&srv, 0, sizeof srv);
    srv.o.handler = handler;
    srv.o.precheck = precheck;
    srv.o.max_body = 4096;
    srv.o.max_inflight_bytes = 1 << 20;
    srv.o.header_timeout_s = 10;
    srv.o.body_timeout_s = 30;
    net__h2_t *h = NULL;
    tr_err err;
    tr_err_clear(&err);
    FUZZ_CHECK(net__h2_mem_open(&srv, &h, &err) == 0);

    int alive = 1;
    if (mode & 1) {
        static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
        alive = net__h2_mem_feed(h, NET__H2_PREFACE, NET__H2_PREFACE_LEN) == 0 &&
                net__h2_mem_feed(h, settings, sizeof settings) == 0;
    }
    for (size_t off = 0; alive && off < size;) {
        size_t n = chunk && size - off > chunk ? chunk : size - off;
        alive = net__h2_mem_feed(h, data + off, n) == 0;
        off += n;
        if (mode & 8) net__h2_mem_tick(h, 1);
        if (mode & 16) resume_all();
    }
    resume_all();
    net__h2_mem_tick(h, 0);       /* answers for the resumed requests */
    net__h2_mem_tick(h, 3600);    /* every deadline past, the connection idle */
    net__h2_mem_close(h);
    FUZZ_CHECK(atomic_load(&srv.inflight) == 0);
    FUZZ_CHECK(atomic_load(&srv.live) == 0);
    return 0;
}
