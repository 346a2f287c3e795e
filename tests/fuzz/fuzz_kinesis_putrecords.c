/* SPDX-License-Identifier: Apache-2.0
 *
 * fuzz_kinesis_putrecords.c -- the PutRecord(s) fast scanner of api/kinesis.c, differentially.
 *
 * Input: one byte (bit 0: PutRecord, else PutRecords), then the request body.  The body goes to
 * both readers of api/kinesis_int.h.  Checked:
 *   - neither crashes nor reads outside the body (ASan);
 *   - whatever the fast scanner accepts, the general path (jansson, every AWS validation)
 *     accepts too, naming the same stream and the same records: partition keys, data bytes,
 *     no explicit hash key.  The fast path may only change speed, never behaviour;
 *   - what the general path refuses gets a 4xx status and an error body. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/kinesis_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int single = data[0] & 1;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    api_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.region = "us-east-1";

    api__kput_t f, g;
    int fr = api__kinesis_put_fast(&ctx, body, n, single, &f);
    int gr = api__kinesis_put_slow(&ctx, body, n, single, &g);
    if (gr != 0) FUZZ_CHECK(g.status >= 400 && g.status < 500 && g.error);
    if (fr == 0) {
        if (gr != 0)
            fprintf(stderr, "fast path accepted what the general path refuses: HTTP %d %s\n",
                    g.status, g.error);
        FUZZ_CHECK(gr == 0);
        FUZZ_CHECK(strcmp(f.stream, g.stream) == 0);
        FUZZ_CHECK(f.n == g.n && f.n >= 1);
        for (size_t i = 0; i < f.n; i++) {
            const slog_put_rec_t *a = &f.recs[i], *b = &g.recs[i];
            FUZZ_CHECK(a->pk_len == b->pk_len && memcmp(a->pk, b->pk, a->pk_len) == 0);
            FUZZ_CHECK(a->data_len == b->data_len);
            FUZZ_CHECK(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
            FUZZ_CHECK(!a->has_explicit_hash && !b->has_explicit_hash);
        }
    }
    api__kput_free(&f);
    api__kput_free(&g);
    return 0;
}
