/* SPDX-License-Identifier: Apache-2.0
 *
 * digest.c -- SHA-256 and HMAC-SHA256 (see digest.h). */
#include "core/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/tlog.h"

static const EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void die(const char *what, size_t n) {
    tr_error("core", "%s (%zu bytes); free memory or check the OpenSSL install", what, n);
    abort();
}

static void sha256_init_once(void) {
    EVP_MD *m = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_sha256 = m ? m : EVP_sha256();
}

static const EVP_MD *sha256_md(void) {
    pthread_once(&g_sha256_once, sha256_init_once);
    return g_sha256;
}

void tr_sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int len = 0;
    if (!EVP_Digest(p, n, out, &len, sha256_md(), NULL) || len != 32) die("SHA-256 failed", n);
}

/* RFC 2104 HMAC with SHA-256 (block 64 bytes). */
void tr_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, uint8_t out[32]) {
    uint8_t k0[64] = {0}, pad[64], inner[32];
    const EVP_MD *md = sha256_md();
    if (klen > sizeof k0) tr_sha256(key, klen, k0);
    else if (klen) memcpy(k0, key, klen);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) die("out of memory for EVP_MD_CTX", 0);
    for (size_t i = 0; i < 64; i++) pad[i] = (uint8_t)(k0[i] ^ 0x36);
    int ok = EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, pad, 64) &&
             EVP_DigestUpdate(c, msg, n) && EVP_DigestFinal_ex(c, inner, NULL);
    for (size_t i = 0; i < 64; i++) pad[i] = (uint8_t)(k0[i] ^ 0x5c);
    ok = ok && EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, pad, 64) &&
         EVP_DigestUpdate(c, inner, 32) && EVP_DigestFinal_ex(c, out, NULL);
    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(inner, sizeof inner);
    if (!ok) die("HMAC-SHA256 failed", n);
}
