/* SPDX-License-Identifier: Apache-2.0
 *
 * uuid.h -- random (version 4) UUIDs for resource ids: "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx",
 * lower-case hex, from OpenSSL's RAND_bytes (the kernel's CSPRNG).
 */
#ifndef TR_UUID_H
#define TR_UUID_H

#define TR_UUID_LEN 36

/* Write a fresh UUID and its NUL to out.  Should the random source fail (it does not on Linux
 * after boot), the bytes come from the clock and pid: unique, not unpredictable. */
void tr_uuid_v4(char out[TR_UUID_LEN + 1]);

#endif
