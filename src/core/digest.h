/* SPDX-License-Identifier: Apache-2.0
 *
 * digest.h -- SHA-256 and HMAC-SHA256 (OpenSSL's EVP SHA-256, fetched once per process).
 *
 * HMAC is RFC 2104 over the EVP digest: about half the cost of OpenSSL 3's one-shot HMAC(),
 * which fetches the algorithm on every call (SigV4 computes five per request).  tests/unit/net
 * checks it against HMAC().  A failure of the crypto provider is a broken machine: it is logged
 * and the process aborts (there is nothing a caller could answer instead).
 */
#ifndef TR_DIGEST_H
#define TR_DIGEST_H

#include <stddef.h>
#include <stdint.h>

void tr_sha256(const void *p, size_t n, uint8_t out[32]);
void tr_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[32]);

#endif
