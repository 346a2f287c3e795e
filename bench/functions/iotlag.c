/* SPDX-License-Identifier: Apache-2.0
 *
 * iotlag.c -- the pipeline benchmark's function (bench/pipeline.py): examples/functions/iot.c
 * unchanged, plus a measurement around it.  After iot.c's handler returns -- its table writes
 * flushed, so durable and visible -- it appends one line "<now - ts, microseconds>" per reading
 * the handler applied to $LAT_OUT (one write per invoke; ts is the reading's put time in ms, so
 * a figure is high by up to 1 ms).  Readings the handler did not apply are left out: those at and
 * after the index it reported with trf_fail_record (the retry applies them), and the whole batch
 * when it returns an error.  Without LAT_OUT it is iot.c.  Sibling of latency.c (put -> invoke);
 * this one measures put -> applied in the tables.
 */
#define handler iot_handler
#include "../../examples/functions/iot.c"
#undef handler

#include <fcntl.h>
#include <unistd.h>

int handler(const trf_event_t *ev, trf_context_t *ctx);

static __thread size_t lag_first_failed;
static __thread int (*lag_fail_record)(trf_context_t *, size_t);

static int lag_fail(trf_context_t *ctx, size_t index) {
    if (index < lag_first_failed) lag_first_failed = index;
    return lag_fail_record(ctx, index);
}

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    const char *path = getenv("LAT_OUT");
    if (!path || !*path || ev->kind != TRF_EVENT_KINESIS) return iot_handler(ev, ctx);
    /* Route trf_fail_record through lag_fail for this call. */
    const trf_ops_t *ops = ctx->ops;
    trf_ops_t mine = *ops;
    lag_fail_record = ops->fail_record;
    mine.fail_record = lag_fail;
    lag_first_failed = ev->n_records;
    ctx->ops = &mine;
    int rc = iot_handler(ev, ctx);
    ctx->ops = ops;
    if (rc != TRF_OK) return rc;
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    long long now = (long long)now_ts.tv_sec * 1000000 + now_ts.tv_nsec / 1000;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return rc;
    char buf[16384];
    size_t n = 0;
    for (size_t i = 0; i < lag_first_failed; i++) {
        double ts;
        if (trf_json_get_number((const char *)ev->records[i].data, ev->records[i].len, "ts", &ts) !=
            TRF_OK)
            continue;
        if (n + 32 > sizeof buf) {
            if (write(fd, buf, n) < 0) break;
            n = 0;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%lld\n", now - (long long)ts * 1000);
    }
    if (n && write(fd, buf, n) < 0) n = 0;
    close(fd);
    return rc;
}
