/* SPDX-License-Identifier: Apache-2.0
 *
 * uuid.c -- version 4 UUIDs (see uuid.h). */
#include "core/uuid.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"

void tr_uuid_v4(char out[TR_UUID_LEN + 1]) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        static atomic_ullong seq;
        uint64_t t = (uint64_t)tr_mono_ns() ^ ((uint64_t)getpid() << 32);
        uint64_t s = atomic_fetch_add(&seq, 1);
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(t >> (8 * i));
        for (int i = 0; i < 8; i++) b[8 + i] = (uint8_t)(s >> (8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
    char hex[33];
    tr_hex(b, 16, hex);
    snprintf(out, TR_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}
