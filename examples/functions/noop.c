/* SPDX-License-Identifier: Apache-2.0
 *
 * noop.c -- the smallest native function: accepts every event and does nothing.
 *
 *   tributary-cc --zip noop.zip noop.c
 *   aws lambda create-function --function-name noop --runtime tributary.c1 \
 *       --handler libnoop.so:handler --zip-file fileb://noop.zip --role arn:aws:iam::000000000000:role/x
 *
 * The same zip deploys on AWS with --runtime provided.al2023 (its `bootstrap` runs the handler).
 * The benchmark (bench/esm.sh) measures the runtime's own overhead with it.
 */
#include <tributary/function.h>

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    (void)ev;
    (void)ctx;
    return TRF_OK;
}
