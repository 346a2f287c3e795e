/* SPDX-License-Identifier: Apache-2.0
 *
 * metrics.c -- GET /metrics: the one place the whole Prometheus page is built, from each
 * engine's own *_prometheus writer (functions, streams, event source mappings).  api.c answers
 * the path before authentication (see api.h); the engines own their metric names.
 */
#include "api/api.h"

int api_metrics_handle(api_ctx_t *ctx, net_req_t *req) {
    req->status = 200;
    req->content_type = "text/plain; version=0.0.4; charset=utf-8";
    tr_buf_reset(&req->out);
    if (ctx->fn) fn_metrics_prometheus(ctx->fn, &req->out);
    if (ctx->slog) slog_metrics_prometheus(ctx->slog, &req->out); /* log damage, failed shards */
    if (!req->out.len) tr_buf_puts(&req->out, "# no metrics yet\n");
    if (ctx->esm) esm_metrics_prometheus(ctx->esm, &req->out);   /* IteratorAge & co */
    return NET_DONE;
}
