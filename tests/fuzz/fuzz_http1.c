/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_http1.c -- the HTTP/1.1 header phase that is ours (libmicrohttpd parses the wire; this
 * is what runs on its result before any body byte is admitted): the framing checks
 * (net__h1_frame_check) and the API's header-phase admission (api_precheck: routing by
 * X-Amz-Target / path, SigV4 checks that need no body, scope).
 *
 * Input: a request as tests/fuzz/fuzz_req.h reads it, after one mode byte; mode 'S' first adds
 * X-Amz-Date and a valid Authorization for service kinesis (so the accepting paths are reached).
 * Checked:
 *   - the framing check returns 0, 400 or 501 with a message, and its 0 agrees with an
 *     independent count (no single-valued header twice, no Transfer-Encoding with
 *     Content-Length, only "chunked", Content-Length digits that agree);
 *   - api_precheck answers NET_DONE with a 4xx JSON error and the standard headers, or
 *     NET_CONTINUE having written nothing. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "fuzz.h"
#include "fuzz_req.h"
#include "net/net_int.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE "20150830T123600Z"

static long long fixed_now(void) { return 1440938160000LL; }   /* 2015-08-30T12:36:00Z */

static api_key_t key = {AKID, SECRET};
static api_ctx_t ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    ctx.region = "us-east-1";
    ctx.keys = &key;
    ctx.n_keys = 1;
    ctx.now_ms = fixed_now;
    return 0;
}

static const char *const SINGLE[] = {
    "host",       "authorization",        "content-type",         "x-amz-target",
    "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "transfer-encoding"};

/* The framing rules restated plainly: 1 if the headers are acceptable. */
static int framing_ok(const sigv4_header_t *h, size_t n) {
    const char *cl = NULL, *te = NULL;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof SINGLE / sizeof SINGLE[0]; k++)
            if (!strcasecmp(h[i].name, SINGLE[k]))
                for (size_t j = 0; j < i; j++)
                    if (!strcasecmp(h[j].name, SINGLE[k])) return 0;
        if (!strcasecmp(h[i].name, "transfer-encoding")) te = h[i].value;
        if (!strcasecmp(h[i].name, "content-length")) {
            char v[64];
            const char *p = h[i].value;
            while (*p == ' ' || *p == '\t') p++;
            size_t m = strlen(p);
            while (m && (p[m - 1] == ' ' || p[m - 1] == '\t')) m--;
            if (!m || m > 19 || strspn(p, "0123456789") < m) return 0;
            memcpy(v, p, m);
            v[m] = 0;
            if (cl && strcmp(cl, v)) return 0;
            static char keep[64];
            memcpy(keep, v, m + 1);
            cl = keep;
        }
    }
    if (te) {
        if (cl) return 0;
        while (*te == ' ' || *te == '\t') te++;
        size_t m = strlen(te);
        while (m && (te[m - 1] == ' ' || te[m - 1] == '\t')) m--;
        if (m != 7 || strncasecmp(te, "chunked", 7)) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    int mode = data[0];
    fuzz_req_t r;
    fuzz_req_parse(data + 1, size - 1, &r);
    char *auth = NULL;
    if (mode == 'S') {
        r.h[r.n++] = (sigv4_header_t){"X-Amz-Date", AMZ_DATE};
        int has_host = 0;
        for (size_t i = 0; i < r.n; i++) has_host |= !strcasecmp(r.h[i].name, "host");
        if (!has_host) r.h[r.n++] = (sigv4_header_t){"Host", "localhost:4566"};
        char hash[65];
        sigv4_payload_hash(r.body, r.body_len, hash);
        sigv4_req_t sr = {.method = r.method,
                          .path = r.path,
                          .query = r.query,
                          .headers = r.h,
                          .n_headers = r.n,
                          .payload_sha256 = hash,
                          .now_ms = fixed_now()};
        auth = sigv4_sign(&sr, AKID, SECRET, "us-east-1", "kinesis", AMZ_DATE);
        if (auth) r.h[r.n++] = (sigv4_header_t){"Authorization", auth};
    }
    char msg[256];
    msg[0] = 0;
    int st = net__h1_frame_check(r.h, r.n, msg, sizeof msg);
    FUZZ_CHECK(st == 0 || st == 400 || st == 501);
    FUZZ_CHECK(!st || (msg[0] && strlen(msg) < sizeof msg));
    FUZZ_CHECK((st == 0) == framing_ok(r.h, r.n));
    if (st == 0) {
        net_req_t req;
        memset(&req, 0, sizeof req);
        req.method = r.method;
        req.path = r.path;
        req.query = r.query;
        req.headers = r.h;
        req.n_headers = r.n;
        req.status = 200;
        req.reject = (mode == 'T') ? NET_REJECT_TOO_BIG : NET_REJECT_NONE;
        int rc = api_precheck(&ctx, &req);
        FUZZ_CHECK(rc == NET_DONE || rc == NET_CONTINUE);
        if (rc == NET_DONE) {
            FUZZ_CHECK(req.status >= 400 && req.status < 500);
            FUZZ_CHECK(req.out.len > 2 && req.out.data[0] == '{' && req.content_type);
            FUZZ_CHECK(req.n_resp_hdr == 1);   /* x-amzn-RequestId */
        } else {
            FUZZ_CHECK(req.out.len == 0 && req.n_resp_hdr == 0 && req.status == 200);
            FUZZ_CHECK(req.reject != NET_REJECT_TOO_BIG);
        }
        net_req_resp_free(&req);
    }
    free(auth);
    fuzz_req_free(&r);
    return 0;
}
