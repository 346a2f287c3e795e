/* SPDX-License-Identifier: Apache-2.0
 *
 * iot.c -- the native function of `make demo`: IoT readings from a stream into DynamoDB tables,
 * in-process (trf_table_*), one write per device-minute per batch, all of a batch's writes
 * pipelined so that they share group commits.
 *
 * Each record is a reading {"device":"d-7","n":12,"ts":1700000000123,"temperature":21.5,
 * "humidity":40.1,"battery":99.2,"fault":null}.  A batch's valid readings are folded first:
 *   - per device: the reading with the highest n -> ONE PutItem device_latest (pk device),
 *     guarded by "no newer n" (a condition failure is normal: an older reading delivered late
 *     or again);
 *   - per device and minute ("YYYY-MM-DDTHH:MM" of ts) -> ONE UpdateItem device_minute: ADD
 *     count :n, sum :s (the readings' exact decimal sum, see dec_t), and two condition-guarded
 *     SETs for the batch's min and max (condition failures normal);
 *   - per alert (temperature > IOT_ALERT_TEMP, default 60, or fault set), not folded: ONE
 *     TransactWriteItems -- Put alerts (pk device, sk the record's sequence number, only if
 *     absent: idempotent) and ADD alerts :1 on the device_minute item.  A redelivered alert
 *     cancels the whole transaction, so the count is never doubled.
 * The tables end exactly as if every reading were written one by one; only the number of writes
 * differs.
 *
 * Why fold (the choice to copy): a table write costs about the same whether it adds 1 or 80 to a
 * counter, and a stream that falls behind delivers big batches, so folding makes a batch's cost
 * grow with its devices, not its readings -- the function speeds up exactly when it is behind.
 * Measured with bench/pipeline.py on 2 shared cores (bench/results/pipeline.md): the server's
 * CPU per reading fell from ~145 us (one write per reading, BatchSize 500) to ~90 us at the
 * same BatchSize, ~65 us at BatchSize 10000 and ~30-35 us with ParallelizationFactor 10 as well
 * (each lane's batch then holds fewer devices, more readings each); ~19 us at saturation since
 * the engine's phase 2 (bench/results/pipeline.md, 2026-12-08).  One more idea was measured
 * and dropped: remembering each device-minute's min/max in the process to skip writes that
 * cannot win (within the noise: 0-8%).
 *
 * A malformed reading (not JSON, no device or temperature) is reported with trf_fail_record,
 * wherever it is in the batch, and the batch stops there: the readings after it are not applied.
 * With ReportBatchItemFailures and BisectBatchOnFunctionError (the demo's mapping) the mapping
 * splits the batch at the reported record: the readings before it are done; the record alone is
 * retried (the report was its first failed attempt) and after MaximumRetryAttempts goes to the
 * OnFailure destination; the readings after it come back as a new batch -- applied exactly once,
 * since this invocation applied none of them.  Cost: at most two more invocations per malformed
 * reading and no function error (`make demo`: 0 function errors, 232 malformed readings of
 * 475,000 each sent alone to the destination, 6,023 invocations).  The alternative measured
 * before the split existed -- failing the invocation, so that bisection halves the batch down to
 * the reading -- cost ~2 log2(batch) invocations, half of them errors, per malformed reading
 * (~30% of the pipeline's CPU at 0.05% malformed readings).  Without BisectBatchOnFunctionError
 * a reported record is retried together with every record after it, and after
 * MaximumRetryAttempts all of them go to the destination unapplied: map this function with it.
 *
 * All writes of a batch are queued with trf_table_send and awaited with one trf_table_flush.
 * They may apply in any order, which is why every one of them is commutative (ADD) or guarded
 * by a condition that makes the final state order-independent (min, max, latest n).  A failed
 * write names the first reading it stands for; the batch is retried from the lowest such.
 *
 * Environment: IOT_ALERT_TEMP; IOT_TABLES=0 to only log (the pre-table behaviour, and what runs
 * under AWS's provided.al2023, which has no in-process tables); IOT_LATEST_TABLE,
 * IOT_MINUTE_TABLE, IOT_ALERTS_TABLE (defaults device_latest, device_minute, alerts).  With
 * TumblingWindowInSeconds it also keeps per-window totals in the window state and logs them at
 * the window's final invoke.
 *
 *   tributary-cc --zip iot.zip iot.c
 *   aws lambda create-function --function-name iot --runtime tributary.c1 \
 *       --handler libiot.so:handler --zip-file fileb://iot.zip --role arn:aws:iam::000000000000:role/x
 *   aws lambda create-event-source-mapping --function-name iot --batch-size 10000 \
 *       --parallelization-factor 10 \
 *       --event-source-arn arn:aws:kinesis:us-east-1:000000000000:stream/telemetry \
 *       --starting-position TRIM_HORIZON --function-response-types ReportBatchItemFailures
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tributary/function.h>

typedef struct totals {
    double readings, alerts, malformed;
    double max_temp;
} totals_t;

static double alert_temp = 60.0;
static int use_tables = 1;
static const char *t_latest = "device_latest", *t_minute = "device_minute", *t_alerts = "alerts";

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static int init(trf_context_t *ctx) {
    const char *t = getenv("IOT_ALERT_TEMP");
    if (t && *t) alert_temp = atof(t);
    use_tables = strcmp(env_or("IOT_TABLES", "1"), "0") != 0;
    t_latest = env_or("IOT_LATEST_TABLE", t_latest);
    t_minute = env_or("IOT_MINUTE_TABLE", t_minute);
    t_alerts = env_or("IOT_ALERTS_TABLE", t_alerts);
    trf_log(ctx, "iot: alert threshold %.1f C, tables %s", alert_temp,
            use_tables ? "on" : "off (IOT_TABLES=0)");
    return 0;
}

TRF_MODULE(init, NULL)

static void state_read(const trf_window_t *w, totals_t *t) {
    memset(t, 0, sizeof *t);
    t->max_temp = -1e9;
    if (!w) return;
    trf_json_get_number(w->state, w->state_len, "readings", &t->readings);
    trf_json_get_number(w->state, w->state_len, "alerts", &t->alerts);
    trf_json_get_number(w->state, w->state_len, "malformed", &t->malformed);
    trf_json_get_number(w->state, w->state_len, "max_temp", &t->max_temp);
}

/* ---- request text ---------------------------------------------------------------------------- */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_add(sb_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* printf-style append (strings from readings go through sb_str).  Never truncates: a key
 * holding a long escaped device name may pass any fixed size. */
static void sb_printf(sb_t *b, const char *fmt, ...) TRF_PRINTF(2, 3);
static void sb_printf(sb_t *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

/* A JSON string literal (quotes included). */
static void sb_str(sb_t *b, const char *s) {
    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_add(b, e, 6);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* ---- exact decimal sums ---------------------------------------------------------------------
 *
 * device_minute's sum is a DynamoDB number: exact decimal, no binary rounding.  Adding a batch's
 * temperatures as doubles and sending the total would drift from the sum of the readings (the
 * demo's self-check recounts it with Python's Decimal), so a batch adds the readings' decimal
 * texts exactly: value = m * 10^e with a 128-bit m.  A reading that cannot join the running sum
 * exactly (exponents too far apart) is sent as an ADD of its own -- rare, and still exact. */

typedef struct dec {
    __int128 m;
    int e;
} dec_t;

/* "21.5", "-3", "1.5e-07" (what %.15g prints) -> dec.  -1 if not a number of <= 30 digits. */
static int dec_parse(const char *s, dec_t *out) {
    __int128 m = 0;
    int e = 0, neg = 0, digits = 0, frac = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    for (; (*s >= '0' && *s <= '9') || (*s == '.' && !frac); s++) {
        if (*s == '.') {
            frac = 1;
            continue;
        }
        if (++digits > 30) return -1;
        m = m * 10 + (*s - '0');
        if (frac) e--;
    }
    if (!digits) return -1;
    if (*s == 'e' || *s == 'E') e += atoi(s + 1);
    else if (*s) return -1;
    out->m = neg ? -m : m;
    out->e = e;
    return 0;
}

#define DEC_LIMIT ((__int128)1000000000 * 1000000000 * 1000000000 * 1000000000) /* 1e36 */

/* acc += v exactly; -1 (acc unchanged) when the result would not fit. */
static int dec_add(dec_t *acc, dec_t v) {
    dec_t *hi = acc->e > v.e ? acc : &v, *lo = acc->e > v.e ? &v : acc;
    __int128 a = hi->m;
    for (int d = hi->e - lo->e; d > 0; d--) {
        if (a > DEC_LIMIT / 10 || a < -DEC_LIMIT / 10) return -1;
        a *= 10;
    }
    __int128 sum = a + lo->m;
    if (sum > DEC_LIMIT || sum < -DEC_LIMIT) return -1;
    acc->m = sum;
    acc->e = lo->e;
    return 0;
}

/* Plain decimal text ("243.7"); exponent form only for |e| > 40. */
static void dec_format(dec_t v, char *out, size_t cap) {
    char dg[48], rev[48];
    int n = 0;
    __int128 m = v.m < 0 ? -v.m : v.m;
    int e = v.e;
    while (m != 0 && m % 10 == 0 && e < 0) { /* 21.50 -> 21.5 */
        m /= 10;
        e++;
    }
    do {
        rev[n++] = (char)('0' + (int)(m % 10));
        m /= 10;
    } while (m);
    for (int i = 0; i < n; i++) dg[i] = rev[n - 1 - i];
    dg[n] = 0;
    const char *sign = v.m < 0 ? "-" : "";
    if (e >= 0 && e <= 40)
        snprintf(out, cap, "%s%s%.*s", sign, dg, e, "0000000000000000000000000000000000000000");
    else if (e < 0 && -e <= 40 && n > -e)
        snprintf(out, cap, "%s%.*s.%s", sign, n + e, dg, dg + n + e);
    else if (e < 0 && -e <= 40)
        snprintf(out, cap, "%s0.%.*s%s", sign, -e - n, "0000000000000000000000000000000000000000",
                 dg);
    else snprintf(out, cap, "%s%sE%d", sign, dg, e);
}

/* ---- one batch: parse, aggregate, write --------------------------------------------------- */

/* A valid reading, parsed once. */
typedef struct reading {
    char device[256], fault[128], minute[20];
    char temp[40]; /* %.15g of temperature: the decimal text we send */
    double temp_v, n, hum, batt;
    int64_t ts;
    int alert;
} reading_t;

/* One device-minute of the batch: its readings folded into one count/sum and a min and max. */
typedef struct agg {
    size_t first; /* index of its first reading (failures: see on_reply) */
    size_t min_i, max_i; /* readings with the lowest / highest temperature */
    long count;
    dec_t sum;
} agg_t;

/* One device of the batch: the reading with the highest n (device_latest's item). */
typedef struct last {
    size_t first, best;
} last_t;

enum { W_LATEST, W_COUNT, W_MIN, W_MAX, W_ALERT, W_SUM };

typedef struct sent {
    size_t rec; /* record index: the first one the write stands for */
    int kind; /* W_* */
} sent_t;

typedef struct batch {
    sent_t *sent;
    size_t n_sent, cap_sent;
    size_t first_bad; /* lowest record index with an unexpected failure */
    size_t n_unexpected;
    trf_context_t *ctx;
} batch_t;

static int send(batch_t *bt, sb_t *req, const char *op, size_t rec, int kind) {
    long i = trf_table_send(bt->ctx, op, req->p, req->len);
    req->len = 0;
    if (i < 0) return TRF_ERROR;
    if (bt->n_sent == bt->cap_sent) {
        bt->cap_sent = bt->cap_sent ? bt->cap_sent * 2 : 1024;
        bt->sent = realloc(bt->sent, bt->cap_sent * sizeof *bt->sent);
        if (!bt->sent) abort();
    }
    bt->sent[bt->n_sent++] = (sent_t){rec, kind};
    return TRF_OK;
}

/* Condition failures are the normal outcome of guarded writes; anything else is not.  A failed
 * write names the FIRST reading it stands for: every reading before that one had all its writes
 * succeed (an aggregate holding a later reading that failed would name an index <= it), so the
 * retry may start there without applying anything twice that has not already been applied. */
static void on_reply(void *arg, long index, int status, const char *resp, size_t len) {
    batch_t *bt = arg;
    if (status == 200) return;
    const sent_t *s = &bt->sent[index];
    if (status == 400 && s->kind != W_COUNT && s->kind != W_SUM &&
        strstr(resp, "ConditionalCheckFailed"))
        return;
    bt->n_unexpected++;
    if (s->rec < bt->first_bad) bt->first_bad = s->rec;
    trf_log(bt->ctx, "iot: table write for record %zu failed (%d): %.*s", s->rec, status,
            (int)(len > 300 ? 300 : len), resp);
}

/* FNV-1a of a and b: the open-addressing tables of write_batch (slot = value index + 1, 0 when
 * empty; a power-of-two size at least twice the readings). */
static uint64_t hash2(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ULL;
    for (; *a; a++) h = (h ^ (unsigned char)*a) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (; b && *b; b++) h = (h ^ (unsigned char)*b) * 1099511628211ULL;
    return h;
}

/* The JSON key of device_minute's item {"device":..,"minute":..}. */
static void minute_key(sb_t *b, const reading_t *r) {
    sb_add(b, "{\"device\":{\"S\":", 15);
    sb_str(b, r->device);
    sb_printf(b, "},\"minute\":{\"S\":\"%s\"}}", r->minute);
}

/* Queue device_latest's PutItem for reading r (guarded by "no newer n"). */
static int write_latest(batch_t *bt, sb_t *req, size_t first, const reading_t *r, const char *seq) {
    sb_printf(req, "{\"TableName\":\"%s\",\"Item\":{\"device\":{\"S\":", t_latest);
    sb_str(req, r->device);
    sb_printf(req,
              "},\"n\":{\"N\":\"%.15g\"},\"ts\":{\"N\":\"%lld\"},\"temperature\":{\"N\":\"%s\"},"
              "\"humidity\":{\"N\":\"%.15g\"},\"battery\":{\"N\":\"%.15g\"},\"seq\":{\"S\":\"%s\"},"
              "\"fault\":",
              r->n, (long long)r->ts, r->temp, r->hum, r->batt, seq);
    if (r->fault[0]) {
        sb_add(req, "{\"S\":", 5);
        sb_str(req, r->fault);
        sb_add(req, "}", 1);
    } else {
        sb_printf(req, "{\"NULL\":true}");
    }
    sb_printf(req,
              "},\"ConditionExpression\":\"attribute_not_exists(device) OR #n < :n\","
              "\"ExpressionAttributeNames\":{\"#n\":\"n\"},\"ExpressionAttributeValues\":"
              "{\":n\":{\"N\":\"%.15g\"}}}",
              r->n);
    return send(bt, req, "PutItem", first, W_LATEST);
}

/* Queue a device-minute's writes: ADD count and sum, and the condition-guarded min and max. */
static int write_minute(batch_t *bt, sb_t *req, sb_t *key, const agg_t *a, const reading_t *rd) {
    int rc = TRF_OK;
    char sum[96];
    key->len = 0;
    minute_key(key, &rd[a->first]);
    dec_format(a->sum, sum, sizeof sum);
    sb_printf(req,
              "{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":\"ADD #c :c, #s :s\","
              "\"ExpressionAttributeNames\":{\"#c\":\"count\",\"#s\":\"sum\"},"
              "\"ExpressionAttributeValues\":{\":c\":{\"N\":\"%ld\"},\":s\":{\"N\":\"%s\"}}}",
              t_minute, key->p, a->count, sum);
    rc |= send(bt, req, "UpdateItem", a->first, W_COUNT);
    static const char *const mm[2][2] = {{"min", ">"}, {"max", "<"}};
    for (int i = 0; i < 2; i++) {
        sb_printf(req,
                  "{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":\"SET #m = :t\","
                  "\"ConditionExpression\":\"attribute_not_exists(#m) OR #m %s :t\","
                  "\"ExpressionAttributeNames\":{\"#m\":\"%s\"},"
                  "\"ExpressionAttributeValues\":{\":t\":{\"N\":\"%s\"}}}",
                  t_minute, key->p, mm[i][1], mm[i][0], rd[i ? a->max_i : a->min_i].temp);
        rc |= send(bt, req, "UpdateItem", a->first, i ? W_MAX : W_MIN);
    }
    return rc;
}

/* A reading whose temperature could not join its minute's exact sum: ADD it alone. */
static int write_sum(batch_t *bt, sb_t *req, sb_t *key, size_t first, const reading_t *r) {
    key->len = 0;
    minute_key(key, r);
    sb_printf(req,
              "{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":\"ADD #s :t\","
              "\"ExpressionAttributeNames\":{\"#s\":\"sum\"},"
              "\"ExpressionAttributeValues\":{\":t\":{\"N\":\"%s\"}}}",
              t_minute, key->p, r->temp);
    return send(bt, req, "UpdateItem", first, W_SUM);
}

/* An alert: ONE TransactWriteItems -- the alert item (only if absent: its key is the record's
 * sequence number) and ADD alerts :1 on the device-minute -- so a redelivered alert cancels and
 * the count is never doubled.  Per alert, not aggregated: alerts are rare. */
static int write_alert(batch_t *bt, sb_t *req, sb_t *key, size_t rec, const reading_t *r,
                       const char *seq) {
    key->len = 0;
    minute_key(key, r);
    sb_printf(req,
              "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":{"
              "\"device\":{\"S\":",
              t_alerts);
    sb_str(req, r->device);
    sb_printf(req,
              "},\"seq\":{\"S\":\"%s\"},\"minute\":{\"S\":\"%s\"},\"ts\":{\"N\":\"%lld\"},"
              "\"temperature\":{\"N\":\"%s\"},\"reason\":{\"S\":",
              seq, r->minute, (long long)r->ts, r->temp);
    sb_str(req, r->fault[0] ? r->fault : "temperature");
    sb_printf(req,
              "}},\"ConditionExpression\":\"attribute_not_exists(seq)\"}},"
              "{\"Update\":{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":"
              "\"ADD alerts :one\",\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"}}}}]}",
              t_minute, key->p);
    return send(bt, req, "TransactWriteItems", rec, W_ALERT);
}

/* Fold readings rd[0, n) into device-minutes and devices, queue every write.  TRF_ERROR when
 * there is no table service. */
static int write_batch(batch_t *bt, const trf_event_t *ev, const reading_t *rd, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    agg_t *aggs = malloc(n * sizeof *aggs);
    last_t *lasts = malloc(n * sizeof *lasts);
    size_t *mslot = calloc(cap, sizeof *mslot), *dslot = calloc(cap, sizeof *dslot);
    if (!aggs || !lasts || !mslot || !dslot) abort();
    size_t n_aggs = 0, n_lasts = 0;
    sb_t req = {0}, key = {0};
    int rc = TRF_OK;
    for (size_t i = 0; i < n; i++) {
        const reading_t *r = &rd[i];
        dec_t t;
        if (dec_parse(r->temp, &t) != 0) t = (dec_t){0, 0}; /* %.15g always parses */
        /* device-minute */
        size_t h = hash2(r->device, r->minute) & (cap - 1);
        while (mslot[h] && (strcmp(rd[aggs[mslot[h] - 1].first].device, r->device) ||
                            strcmp(rd[aggs[mslot[h] - 1].first].minute, r->minute)))
            h = (h + 1) & (cap - 1);
        if (!mslot[h]) {
            aggs[n_aggs] = (agg_t){.first = i, .min_i = i, .max_i = i, .count = 1, .sum = t};
            mslot[h] = ++n_aggs;
        } else {
            agg_t *a = &aggs[mslot[h] - 1];
            a->count++;
            if (dec_add(&a->sum, t) != 0) rc |= write_sum(bt, &req, &key, a->first, r);
            if (r->temp_v < rd[a->min_i].temp_v) a->min_i = i;
            if (r->temp_v > rd[a->max_i].temp_v) a->max_i = i;
        }
        /* device */
        h = hash2(r->device, NULL) & (cap - 1);
        while (dslot[h] && strcmp(rd[lasts[dslot[h] - 1].first].device, r->device))
            h = (h + 1) & (cap - 1);
        if (!dslot[h]) {
            lasts[n_lasts] = (last_t){i, i};
            dslot[h] = ++n_lasts;
        } else if (r->n > rd[lasts[dslot[h] - 1].best].n) {
            lasts[dslot[h] - 1].best = i;
        }
        if (r->alert) rc |= write_alert(bt, &req, &key, i, r, ev->records[i].sequence_number);
    }
    for (size_t j = 0; j < n_lasts; j++)
        rc |= write_latest(bt, &req, lasts[j].first, &rd[lasts[j].best],
                           ev->records[lasts[j].best].sequence_number);
    for (size_t j = 0; j < n_aggs; j++) rc |= write_minute(bt, &req, &key, &aggs[j], rd);
    free(req.p);
    free(key.p);
    free(aggs);
    free(lasts);
    free(mslot);
    free(dslot);
    return rc;
}

/* Parse record r into *out; -1 when it is not valid telemetry (not JSON, no device or
 * temperature). */
static int parse_reading(const trf_record_t *r, reading_t *out) {
    const char *json = (const char *)r->data;
    double ts = 0;
    out->device[0] = out->fault[0] = 0;
    out->n = out->hum = out->batt = 0;
    if (!trf_json_valid(json, r->len) ||
        trf_json_get_number(json, r->len, "temperature", &out->temp_v) != TRF_OK ||
        trf_json_get_string(json, r->len, "device", out->device, sizeof out->device) != TRF_OK ||
        !out->device[0])
        return -1;
    trf_json_get_number(json, r->len, "n", &out->n);
    trf_json_get_number(json, r->len, "humidity", &out->hum);
    trf_json_get_number(json, r->len, "battery", &out->batt);
    if (trf_json_get_number(json, r->len, "ts", &ts) != TRF_OK) ts = (double)r->arrival_ms;
    out->ts = (int64_t)ts;
    if (trf_json_get_string(json, r->len, "fault", out->fault, sizeof out->fault) != TRF_OK)
        out->fault[0] = 0;
    out->alert = out->fault[0] || out->temp_v > alert_temp;
    /* %.15g: a reading's decimal text (up to 15 digits) comes back exactly. */
    snprintf(out->temp, sizeof out->temp, "%.15g", out->temp_v);
    time_t secs = (time_t)(out->ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out->minute, sizeof out->minute, "%Y-%m-%dT%H:%M", &tm);
    return 0;
}

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    if (ev->kind != TRF_EVENT_KINESIS) {
        static const char msg[] = "{\"error\":\"iot expects Kinesis records\"}";
        trf_respond(ctx, msg, sizeof msg - 1);
        return TRF_OK;
    }
    totals_t t;
    state_read(ev->window, &t);
    batch_t bt = {.first_bad = (size_t)-1, .ctx = ctx};
    reading_t *rd = malloc((ev->n_records ? ev->n_records : 1) * sizeof *rd);
    if (!rd) abort();
    size_t stopped_at = ev->n_records;
    for (size_t i = 0; i < ev->n_records; i++) {
        const trf_record_t *r = &ev->records[i];
        if (parse_reading(r, &rd[i]) != 0) {
            trf_log(ctx, "iot: malformed reading %s from %.*s: %.60s", r->sequence_number,
                    (int)r->partition_key_len, r->partition_key, (const char *)r->data);
            t.malformed++;
            /* Even when it is first: a function error would make the mapping halve the batch. */
            trf_fail_record(ctx, i); /* checkpoint before it; [i+1, n) comes back as a new batch */
            stopped_at = i;
            break;
        }
        t.readings++;
        if (rd[i].temp_v > t.max_temp) t.max_temp = rd[i].temp_v;
        if (rd[i].alert) {
            t.alerts++;
            trf_log(ctx, "iot: ALERT device %s temperature %.2f%s%s", rd[i].device, rd[i].temp_v,
                    rd[i].fault[0] ? " fault " : "", rd[i].fault);
        }
    }
    if (use_tables && stopped_at) {
        int failed = 0;
        if (write_batch(&bt, ev, rd, stopped_at) != TRF_OK) {
            free(rd);
            free(bt.sent);
            return trf_error(ctx, "Iot.NoTables",
                             "in-process tables are not available in this "
                             "runtime; deploy with Runtime tributary.c1 or set IOT_TABLES=0");
        }
        if (trf_table_flush(ctx, &failed, on_reply, &bt) != TRF_OK) {
            free(rd);
            free(bt.sent);
            return trf_error(ctx, "Iot.NoTables", "the table service went away mid-batch");
        }
        if (bt.n_unexpected && bt.first_bad < stopped_at) {
            /* Retry from the first reading not fully applied (the ones before it are). */
            trf_log(ctx, "iot: %zu table writes failed; retrying from record %zu", bt.n_unexpected,
                    bt.first_bad);
            trf_fail_record(ctx, bt.first_bad);
        }
    }
    free(rd);
    free(bt.sent);
    if (ev->window) {
        char state[256];
        int len = snprintf(state, sizeof state,
                           "{\"readings\":%.0f,\"alerts\":%.0f,\"malformed\":%.0f,"
                           "\"max_temp\":%.2f}",
                           t.readings, t.alerts, t.malformed, t.max_temp);
        trf_window_state(ctx, state, (size_t)len);
        if (ev->window->is_final)
            trf_log(ctx,
                    "iot: window %lld..%lld: %.0f readings, %.0f alerts, %.0f malformed, "
                    "max %.2f C",
                    (long long)ev->window->start_ms, (long long)ev->window->end_ms, t.readings,
                    t.alerts, t.malformed, t.max_temp);
    } else {
        trf_log(ctx, "iot: %zu records, %.0f alerts, %.0f malformed", ev->n_records, t.alerts,
                t.malformed);
    }
    return TRF_OK;
}
