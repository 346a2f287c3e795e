/* SPDX-License-Identifier: Apache-2.0
 *
 * native_int.h -- the wire between the native runtime's supervisor (native.c) and its host
 * process (native_host.c).  Private: both ends are always the same build of the same binary.
 *
 * A socketpair (SOCK_STREAM) carries frames, all integers little-endian (host order: same
 * machine, same binary):
 *
 *     0        4        8                16
 *     +--------+--------+----------------+--------------------+
 *     | magic  | type   | body length    | body ...           |
 *     | "TRFH" | u32    | u64            |                    |
 *     +--------+--------+----------------+--------------------+
 *
 * Bodies are sequences of fields: u32 / i64 as is; a "str" is u32 length, the bytes, and a NUL
 * (not counted), so the receiver points into the frame instead of copying.
 *
 *   READY       host -> supervisor  after dlopen + module init.  Empty.
 *   INIT_ERROR  host -> supervisor  str errorType, str errorMessage; the host then exits.
 *   INVOKE      supervisor -> host  u32 kind, i64 deadline_ms, str request_id,
 *                                   str invoked_function_arn, str trace_id, then
 *                   kind JSON:      str payload
 *                   kind KINESIS:   str event_source_arn, str shard_id, str region,
 *                                   u32 has_window [i64 start_ms, i64 end_ms, u32 is_final,
 *                                   u32 terminated_early, str state], u32 n, n x record:
 *                                   str partition_key, str data, str sequence_number,
 *                                   i64 arrival_ms
 *   RESULT      host -> supervisor  u32 failed, str errorType ("" on success), str payload
 *   SHUTDOWN    supervisor -> host  Empty: run the module's shutdown and exit 0.
 *   TABLE_CALL  host -> supervisor  u32 call_id, str op, str request (DynamoDB JSON 1.0) --
 *                                   only between INVOKE (or before READY, from init) and its
 *                                   RESULT / READY; any number may be in flight
 *   TABLE_REPLY supervisor -> host  u32 call_id, u32 http_status, str response body; in any
 *                                   order, one per TABLE_CALL, all before the host's RESULT is
 *                                   read (the host waits for its calls before answering)
 *
 * Logs do not use the socket: the host's stdout and stderr are a pipe.  Everything the host
 * wrote before it sent RESULT is in the pipe when RESULT arrives, so the supervisor drains the
 * pipe after RESULT and every line lands in the right invocation's log.
 */
#ifndef FN_NATIVE_INT_H
#define FN_NATIVE_INT_H

#include <stdint.h>
#include <string.h>

#include "fn/trf_int.h"

#define FN_NATIVE_MAGIC 0x48465254u               /* "TRFH" */
#define FN_NATIVE_FD 3                            /* the host's end of the socketpair */
#define FN_NATIVE_SANDBOX_ENV "TRIBUTARY_FN_SANDBOX" /* the fd of its Landlock ruleset, or -1 */
#define FN_NATIVE_TMP_ENV "TRIBUTARY_FN_TMP" /* its private /tmp plan (sandbox.h), or "" */
#define FN_NATIVE_MAX_FRAME (64u << 20) /* sanity bound on a body */

enum {
    FN_NATIVE_READY = 1,
    FN_NATIVE_INIT_ERROR = 2,
    FN_NATIVE_INVOKE = 3,
    FN_NATIVE_RESULT = 4,
    FN_NATIVE_SHUTDOWN = 5,
    FN_NATIVE_TABLE_CALL = 6,
    FN_NATIVE_TABLE_REPLY = 7,
};

typedef struct fn_native_frame_hdr {
    uint32_t magic;
    uint32_t type;
    uint64_t len;
} fn_native_frame_hdr_t;

/* ---- writing (into a trf__buf_t whose first 16 bytes are the header) -------------------------- */

static inline void fn_native__begin(trf__buf_t *b, uint32_t type) {
    fn_native_frame_hdr_t h = {FN_NATIVE_MAGIC, type, 0};
    b->len = 0;
    trf__buf_append(b, &h, sizeof h);
}
static inline void fn_native__end(trf__buf_t *b) {
    if (b->oom) return;
    uint64_t len = b->len - sizeof(fn_native_frame_hdr_t);
    memcpy(b->data + 8, &len, 8);
}
static inline void fn_native__u32(trf__buf_t *b, uint32_t v) { trf__buf_append(b, &v, 4); }
static inline void fn_native__i64(trf__buf_t *b, int64_t v) { trf__buf_append(b, &v, 8); }
static inline void fn_native__str(trf__buf_t *b, const void *p, size_t n) {
    uint32_t l = (uint32_t)n;
    trf__buf_append(b, &l, 4);
    trf__buf_append(b, p, n);
    trf__buf_append(b, "", 1);
}
static inline void fn_native__cstr(trf__buf_t *b, const char *s) {
    fn_native__str(b, s ? s : "", s ? strlen(s) : 0);
}

/* ---- reading ---------------------------------------------------------------------------------- */

typedef struct fn_native_rd {
    const char *p;
    size_t left;
    int bad; /* set by any read past the end */
} fn_native_rd_t;

static inline uint32_t fn_native__get_u32(fn_native_rd_t *r) {
    uint32_t v = 0;
    if (r->left < 4) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, 4);
    r->p += 4;
    r->left -= 4;
    return v;
}
static inline int64_t fn_native__get_i64(fn_native_rd_t *r) {
    int64_t v = 0;
    if (r->left < 8) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, 8);
    r->p += 8;
    r->left -= 8;
    return v;
}
/* Points into the frame (NUL-terminated); "" after an error. */
static inline const char *fn_native__get_str(fn_native_rd_t *r, size_t *len) {
    uint32_t n = fn_native__get_u32(r);
    if (r->bad || r->left < (size_t)n + 1 || r->p[n] != 0) {
        r->bad = 1;
        if (len) *len = 0;
        return "";
    }
    const char *s = r->p;
    r->p += n + 1;
    r->left -= (size_t)n + 1;
    if (len) *len = n;
    return s;
}

#endif
