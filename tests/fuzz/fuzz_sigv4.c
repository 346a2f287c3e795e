/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_sigv4.c -- SigV4 verification (net/sigv4.h): Authorization header and presigned-query
 * parsing, canonical request building, the header-phase checks.
 *
 * Input: a request as tests/fuzz/fuzz_req.h reads it, after one mode byte.  Checked:
 *   - sigv4_verify and sigv4_check_headers never crash and return 0 or a TR_EAUTH_* code with a
 *     message; the header-phase checks are a prefix of verification: a request they refuse is
 *     refused by sigv4_verify with the same code, one sigv4_verify accepts they accept;
 *   - sigv4_canonical_request on any headers / SignedHeaders list does not crash;
 *   - mode 'S' or 's' (kinesis / s3): the request's own headers (tokens only; no Authorization,
 *     X-Amz-Date or x-amz-content-sha256 of its own) are signed with sigv4_sign at the fixed
 *     clock; unless its query carries presigning parameters, sigv4_verify must accept that
 *     signature, and refuse it once one signed header value changes. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "fuzz.h"
#include "fuzz_req.h"
#include "net/sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define NOW_MS 1440938160000LL   /* 2015-08-30T12:36:00Z */
#define AMZ_DATE "20150830T123600Z"

static int lookup(void *arg, const char *access_key, char *secret, size_t cap) {
    (void)arg;
    if (strcmp(access_key, AKID)) return TR_EAUTH_KEY;
    snprintf(secret, cap, "%s", SECRET);
    return 0;
}

static int auth_code(int rc) {
    return rc == 0 || rc == TR_EAUTH_MISSING || rc == TR_EAUTH_KEY || rc == TR_EAUTH_SIG ||
           rc == TR_EAUTH_EXPIRED;
}

static int is_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
            !((*s | 32) >= 'a' && (*s | 32) <= 'z'))
            return 0;
    return 1;
}

/* Signing with our own client code must verify (mode S/s). */
static void sign_round_trip(fuzz_req_t *r, int s3) {
    if (strcasestr(r->query, "x-amz-")) return;   /* presigning parameters: another mechanism */
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *n = r->h[i].name;
        if (!is_token(n) || !strcasecmp(n, "authorization") || !strcasecmp(n, "x-amz-date") ||
            !strcasecmp(n, "x-amz-content-sha256"))
            continue;
        /* values: no control characters (a client could not send them) */
        int ok = 1;
        for (const char *v = r->h[i].value; *v && ok; v++)
            ok = (unsigned char)*v >= 0x20 && *v != 0x7f;
        if (ok) r->h[k++] = r->h[i];
    }
    r->n = k;
    int has_host = 0;
    for (size_t i = 0; i < r->n; i++) has_host |= !strcasecmp(r->h[i].name, "host");
    if (!has_host) r->h[r->n++] = (sigv4_header_t){"host", "example.amazonaws.com"};
    r->h[r->n++] = (sigv4_header_t){"X-Amz-Date", AMZ_DATE};
    char hash[65];
    sigv4_payload_hash(r->body, r->body_len, hash);
    sigv4_req_t sr = {.method = r->method,
                      .path = r->path,
                      .query = r->query,
                      .headers = r->h,
                      .n_headers = r->n,
                      .payload_sha256 = hash,
                      .now_ms = NOW_MS};
    char *auth = sigv4_sign(&sr, AKID, SECRET, "us-east-1", s3 ? "s3" : "kinesis", AMZ_DATE);
    FUZZ_CHECK(auth != NULL);   /* host and x-amz-date are there */
    r->h[r->n++] = (sigv4_header_t){"Authorization", auth};
    sr.n_headers = r->n;
    sigv4_result_t res;
    tr_err err = {0};
    int rc = sigv4_verify(&sr, lookup, NULL, &res, &err);
    if (rc) fprintf(stderr, "own signature refused: %s\nAuthorization: %s\n", err.msg, auth);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(!strcmp(res.service, s3 ? "s3" : "kinesis") && !strcmp(res.region, "us-east-1"));
    /* a signed value changed: refused */
    r->h[r->n - 2].value = "20150830T123601Z";
    rc = sigv4_verify(&sr, lookup, NULL, &res, &err);
    FUZZ_CHECK(rc == TR_EAUTH_SIG);
    free(auth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    int mode = data[0];
    fuzz_req_t r;
    fuzz_req_parse(data + 1, size - 1, &r);
    if (mode == 'S' || mode == 's') {
        sign_round_trip(&r, mode == 's');
        fuzz_req_free(&r);
        return 0;
    }
    char hash[65];
    sigv4_payload_hash(r.body, r.body_len, hash);
    sigv4_req_t sr = {.method = r.method,
                      .path = r.path,
                      .query = r.query,
                      .headers = r.h,
                      .n_headers = r.n,
                      .payload_sha256 = (mode & 1) ? hash : NULL,
                      .now_ms = NOW_MS};
    sigv4_result_t res;
    tr_err e1 = {0}, e2 = {0};
    int full = sigv4_verify(&sr, lookup, NULL, &res, &e1);
    int head = sigv4_check_headers(&sr, lookup, NULL, &res, &e2);
    FUZZ_CHECK(auth_code(full) && auth_code(head));
    FUZZ_CHECK(!full || e1.msg[0]);
    FUZZ_CHECK(!head || e2.msg[0]);
    if (head) FUZZ_CHECK(full == head);
    if (!full) FUZZ_CHECK(!head);

    /* canonical request over any SignedHeaders list (the x-fuzz-sh header's, or "host") */
    const char *sh = "host";
    for (size_t i = 0; i < r.n; i++)
        if (!strcasecmp(r.h[i].name, "x-fuzz-sh")) sh = r.h[i].value;
    free(sigv4_canonical_request(&sr, sh, hash, (mode & 2) ? "s3" : "kinesis"));
    fuzz_req_free(&r);
    return 0;
}
