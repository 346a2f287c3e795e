/* SPDX-License-Identifier: Apache-2.0
 *
 * sigv4.h -- AWS Signature Version 4 verification (header and presigned-query forms).
 *
 * The HTTP layer fills a sigv4_req_t from the request as received (method, raw path, raw query
 * string, headers, payload hash) and calls sigv4_verify with a lookup for secret keys.  The
 * canonical request follows AWS's published algorithm:
 *   - canonical URI: the path, each segment URI-encoded per RFC 3986 after normalisation; for
 *     every service except "s3" the path is encoded twice (as AWS does), for "s3" once and not
 *     normalised;
 *   - canonical query: parameters sorted by encoded name then value, X-Amz-Signature excluded;
 *   - canonical headers: the SignedHeaders, lowercase names, values trimmed, inner runs of spaces
 *     collapsed, multiple values joined with ','; host (or, from HTTP/2 clients, ":authority",
 *     whose value is read from the host header) must be among them;
 *   - payload hash: x-amz-content-sha256 when present (UNSIGNED-PAYLOAD allowed for s3), else
 *     hex SHA-256 of the body (the caller passes it).
 * Signatures are compared in constant time.  Clock skew: X-Amz-Date (or Date) must be within
 * 15 minutes of now; presigned URLs must also be inside X-Amz-Expires.
 *
 * Errors (returned, with a message in err; the adapter maps them to AWS types):
 *   TR_EAUTH_MISSING  no Authorization header and no X-Amz-Signature query parameter
 *   TR_EAUTH_KEY      access key id not known
 *   TR_EAUTH_SIG      malformed Authorization, missing signed header, signature mismatch
 *   TR_EAUTH_EXPIRED  request time outside the 15-minute window / presigned URL expired
 *
 * Thread rules: sigv4_verify is reentrant; a signing-key cache inside is thread-safe.
 */
#ifndef TR_SIGV4_H
#define TR_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct sigv4_header {
    const char *name;   /* as received (any case) */
    const char *value;  /* as received (untrimmed) */
} sigv4_header_t;

typedef struct sigv4_req {
    const char *method;          /* "POST" */
    const char *path; /* raw path as on the request line, without the query: "/a%20b" */
    const char *query; /* raw query string without '?', or NULL/"" */
    const sigv4_header_t *headers;
    size_t n_headers; /* a name may repeat (values are then joined) */
    const char *payload_sha256; /* lowercase hex SHA-256 of the body, or NULL to require the
                                    x-amz-content-sha256 header */
    long long now_ms; /* current time (tests pass a fixed clock) */
} sigv4_req_t;

/* What a verified request was signed with. */
typedef struct sigv4_result {
    char access_key[128];
    char region[64];
    char service[64];
    char date[9]; /* YYYYMMDD of the credential scope */
    char amz_date[17]; /* request time as signed, ISO 8601 basic: "20150830T123600Z" */
    char signature[65]; /* verified signature, lowercase hex (seeds S3 chunk signatures) */
} sigv4_result_t;

/* Secret lookup: copy the secret for access_key into secret (cap bytes incl. NUL) and return 0,
 * or return TR_EAUTH_KEY when unknown. */
typedef int (*sigv4_secret_fn)(void *arg, const char *access_key, char *secret, size_t cap);

int sigv4_verify(const sigv4_req_t *req, sigv4_secret_fn lookup, void *arg, sigv4_result_t *out,
                 tr_err *err);
/* Everything sigv4_verify checks that needs no body, for a server to run before it admits the
 * body: an Authorization header or presigned query that parses, a date in the credential scope
 * matching the request's, host signed, a known access key, the 15-minute window (or
 * X-Amz-Expires), and x-amz-content-sha256's form when present.  Same errors as sigv4_verify;
 * on 0, out has everything but signature (empty).  req->payload_sha256 is not used. */
int sigv4_check_headers(const sigv4_req_t *req, sigv4_secret_fn lookup, void *arg,
                        sigv4_result_t *out, tr_err *err);

/* Building blocks, exposed for tests and for the client side (bench, CLI). */

/* Lowercase hex SHA-256 of p[0..n) (a payload hash, as x-amz-content-sha256 carries it), with
 * the digest fetched from OpenSSL once per process rather than on every call. */
void sigv4_payload_hash(const void *p, size_t n, char out[65]);

/* Canonical request text (caller frees with free()).  signed_headers is the ';'-joined lowercase
 * list.  Returns NULL on malformed input (including a signed header absent from req). */
char *sigv4_canonical_request(const sigv4_req_t *req, const char *signed_headers,
                              const char *payload_hash, const char *service);
/* String to sign for amz_date ("20150830T123600Z") and scope ("20150830/us-east-1/iam/aws4_request"). */
char *sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical_request);
/* Signing key (32 bytes) from secret, date YYYYMMDD, region, service. */
void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, uint8_t key[32]);
/* Sign a request as a client would: returns the Authorization header value (caller frees).
 * headers must include host and x-amz-date (equal to amz_date); all of them are signed except
 * authorization.  The payload hash is x-amz-content-sha256 when present, else payload_sha256.
 * Returns NULL when one of these is missing. */
char *sigv4_sign(const sigv4_req_t *req, const char *access_key, const char *secret,
                 const char *region, const char *service, const char *amz_date);

#endif
