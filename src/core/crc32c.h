/* SPDX-License-Identifier: Apache-2.0
 *
 * crc32c.h -- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the log frames.
 *
 * crc = tr_crc32c(0, p, n) computes the checksum of p[0..n); pass a previous result to continue
 * over more bytes.  Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise.
 * Check value: tr_crc32c(0, "123456789", 9) == 0xE3069283.  Thread-safe.
 */
#ifndef TR_CRC32C_H
#define TR_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t tr_crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table implementation, for tests that compare it with the hardware path. */
uint32_t tr__crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
