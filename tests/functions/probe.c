/* SPDX-License-Identifier: Apache-2.0
 *
 * probe.c -- the test suite's native function: records what it was given and misbehaves on
 * request, so tests can check the runtime's and the event-source mappings' semantics.
 *
 * Every invoke appends one JSON line to $PROBE_OUT (O_APPEND, one write):
 *   {"rid":..,"kind":"kinesis","shard":..,"arn":..,"n":N,"seqs":[..],"pks":[..],"data":[..],
 *    "arrivals":[..],"window":{"start":..,"end":..,"final":b,"state":{..}}}
 * before acting on the records' data (text):
 *   POISON     the invoke fails (returns TRF_ERROR) whenever the batch holds this record
 *   FAILITEM   the record is reported with trf_fail_record while $PROBE_DIR/<seq>.ok is missing;
 *              the report creates that file, so the record succeeds on its next delivery
 *   BADITEM    the record is reported with trf_fail_record on every delivery
 *   MALFORMED  as examples/functions/iot.c treated a malformed reading until the split at the
 *              reported item: reported with trf_fail_record, and the invoke fails (TRF_ERROR)
 *              when it is the batch's first (iot.c now reports it, as BADITEM does)
 *   SEGV       the process crashes (SIGSEGV) the first time it sees this record (marker file
 *              $PROBE_DIR/segv-<seq>), and succeeds afterwards
 *   SEGVALWAYS the process crashes every time
 *   SLEEP:<ms> sleeps that long (timeouts)
 *   EXIT       exit(3)
 * A number as data ("7") is added to the tumbling window state's "sum"; "count" counts records.
 * A JSON invoke is echoed back: {"echo":<payload>,"request_id":..,"function":..,"memory":..}.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tributary/function.h>

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void put(sbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}
static void puts_(sbuf_t *b, const char *s) { put(b, s, strlen(s)); }
static void putstr(sbuf_t *b, const char *s, size_t n) {
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            put(b, "\\", 1);
            put(b, &c, 1);
        } else if ((unsigned char)c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            put(b, e, 6);
        } else {
            put(b, &c, 1);
        }
    }
    put(b, "\"", 1);
}

static int has(const trf_record_t *r, const char *word) {
    return strstr((const char *)r->data, word) != NULL;
}

static int marker(const char *name, int create) {
    const char *dir = getenv("PROBE_DIR");
    if (!dir) return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, F_OK) == 0) return 1;
    if (create) {
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return 0;
}

static void record_invoke(const trf_event_t *ev, trf_context_t *ctx) {
    const char *out = getenv("PROBE_OUT");
    if (!out) return;
    sbuf_t b = {0};
    char num[256];
    puts_(&b, "{\"rid\":");
    putstr(&b, ctx->request_id, strlen(ctx->request_id));
    if (ev->kind == TRF_EVENT_KINESIS) {
        puts_(&b, ",\"kind\":\"kinesis\",\"shard\":");
        putstr(&b, ev->shard_id, strlen(ev->shard_id));
        puts_(&b, ",\"arn\":");
        putstr(&b, ev->event_source_arn, strlen(ev->event_source_arn));
        snprintf(num, sizeof num, ",\"n\":%zu,\"seqs\":[", ev->n_records);
        puts_(&b, num);
        for (size_t i = 0; i < ev->n_records; i++) {
            if (i) puts_(&b, ",");
            putstr(&b, ev->records[i].sequence_number, strlen(ev->records[i].sequence_number));
        }
        puts_(&b, "],\"pks\":[");
        for (size_t i = 0; i < ev->n_records; i++) {
            if (i) puts_(&b, ",");
            putstr(&b, ev->records[i].partition_key, ev->records[i].partition_key_len);
        }
        puts_(&b, "],\"data\":[");
        for (size_t i = 0; i < ev->n_records; i++) {
            if (i) puts_(&b, ",");
            putstr(&b, (const char *)ev->records[i].data, ev->records[i].len);
        }
        puts_(&b, "],\"arrivals\":[");
        for (size_t i = 0; i < ev->n_records; i++) {
            snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)ev->records[i].arrival_ms);
            puts_(&b, num);
        }
        puts_(&b, "]");
        if (ev->window) {
            snprintf(num, sizeof num, ",\"window\":{\"start\":%lld,\"end\":%lld,\"final\":%s,",
                     (long long)ev->window->start_ms, (long long)ev->window->end_ms,
                     ev->window->is_final ? "true" : "false");
            puts_(&b, num);
            puts_(&b, "\"state\":");
            put(&b, ev->window->state, ev->window->state_len);
            puts_(&b, "}");
        }
    } else {
        puts_(&b, ",\"kind\":\"json\",\"payload\":");
        putstr(&b, ev->json, ev->json_len);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(num, sizeof num, ",\"at_us\":%lld,\"pid\":%d}\n",
             (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, (int)getpid());
    puts_(&b, num);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        if (write(fd, b.p, b.len) != (ssize_t)b.len) trf_log(ctx, "probe: short write to %s", out);
        close(fd);
    }
    free(b.p);
}

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    record_invoke(ev, ctx);
    if (ev->kind != TRF_EVENT_KINESIS) {
        sbuf_t b = {0};
        char num[64];
        puts_(&b, "{\"echo\":");
        if (ev->json_len) put(&b, ev->json, ev->json_len);
        else puts_(&b, "null");
        puts_(&b, ",\"request_id\":");
        putstr(&b, ctx->request_id, strlen(ctx->request_id));
        puts_(&b, ",\"function\":");
        putstr(&b, ctx->function_name, strlen(ctx->function_name));
        snprintf(num, sizeof num, ",\"memory\":%u,\"remaining_ms\":%lld}", ctx->memory_mb,
                 (long long)trf_remaining_ms(ctx));
        puts_(&b, num);
        trf_log(ctx, "probe: echo %zu bytes", ev->json_len);
        trf_respond(ctx, b.p, b.len);
        free(b.p);
        if (ev->json_len && strstr(ev->json, "\"fail\""))
            return trf_error(ctx, "ProbeError", "asked to fail");
        if (ev->json_len && strstr(ev->json, "\"segv\"")) raise(SIGSEGV);
        return TRF_OK;
    }
    int fail = 0;
    double sum = 0, count = 0;
    if (ev->window) {
        trf_json_get_number(ev->window->state, ev->window->state_len, "sum", &sum);
        trf_json_get_number(ev->window->state, ev->window->state_len, "count", &count);
    }
    for (size_t i = 0; i < ev->n_records; i++) {
        const trf_record_t *r = &ev->records[i];
        char name[128];
        if (has(r, "SLEEP:"))
            usleep((useconds_t)atoi(strstr((const char *)r->data, "SLEEP:") + 6) * 1000);
        if (has(r, "SEGVALWAYS")) raise(SIGSEGV);
        snprintf(name, sizeof name, "segv-%s", r->sequence_number);
        if (has(r, "SEGV") && !marker(name, 1)) {
            fsync(1);
            raise(SIGSEGV);
        }
        if (has(r, "EXIT")) exit(3);
        if (has(r, "POISON")) fail = 1;
        snprintf(name, sizeof name, "%s.ok", r->sequence_number);
        if (has(r, "FAILITEM") && !marker(name, 1)) trf_fail_record(ctx, i);
        if (has(r, "BADITEM")) trf_fail_record(ctx, i);
        if (has(r, "MALFORMED")) {
            if (i == 0) fail = 1;
            else trf_fail_record(ctx, i);
        }
        char *end;
        double v = strtod((const char *)r->data, &end);
        if (end != (const char *)r->data && *end == 0) sum += v;
        count++;
    }
    if (ev->window) {
        char st[128];
        int n = snprintf(st, sizeof st, "{\"sum\":%.0f,\"count\":%.0f}", sum, count);
        trf_window_state(ctx, st, (size_t)n);
    }
    trf_log(ctx, "probe: %zu records%s", ev->n_records, fail ? " (POISON: failing)" : "");
    return fail ? trf_error(ctx, "PoisonRecord", "the batch holds a POISON record") : TRF_OK;
}
