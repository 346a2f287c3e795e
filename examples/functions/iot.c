/*
 * iot.c -- the native function of `make demo`: IoT readings from a stream into DynamoDB tables,
 * in-process (trf_table_*), with per-batch pipelined writes that share group commits.
 *
 * Each record is a reading {"device":"d-7","n":12,"ts":1700000000123,"temperature":21.5,
 * "humidity":40.1,"battery":99.2,"fault":null}.  Per valid reading:
 *   - PutItem device_latest (pk device): the reading, guarded by "no newer n" (a condition
 *     failure is normal: an older reading delivered late or again);
 *   - UpdateItem device_minute (pk device, sk minute "YYYY-MM-DDTHH:MM" of ts): ADD count :1,
 *     sum :temp; and two condition-guarded SETs for min and max (condition failures normal);
 *   - when temperature > IOT_ALERT_TEMP (default 60) or fault is set: ONE TransactWriteItems --
 *     Put alerts (pk device, sk the record's sequence number, only if absent: idempotent) and
 *     ADD alerts :1 on the device_minute item.  A redelivered alert cancels the whole transaction,
 *     so the count is never doubled.
 * A malformed reading (not JSON, no device or temperature) is reported with trf_fail_record and
 * the batch stops there: the readings after it are not applied, so the retry (which starts at
 * the malformed record) does not count them twice.  With MaximumRetryAttempts and an OnFailure
 * destination the mapping then sends that range to the destination and moves on.
 *
 * All writes of a batch are queued with trf_table_send and awaited with one trf_table_flush.
 * They may apply in any order, which is why every one of them is commutative (ADD) or guarded
 * by a condition that makes the final state order-independent (min, max, latest n).
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
 *   aws lambda create-event-source-mapping --function-name iot --batch-size 500 \
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

/* printf-style append (strings from readings go through sb_str). */
static void sb_printf(sb_t *b, const char *fmt, ...) TRF_PRINTF(2, 3);
static void sb_printf(sb_t *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
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

/* ---- one batch's writes ---------------------------------------------------------------------- */

enum { W_LATEST, W_COUNT, W_MIN, W_MAX, W_ALERT };

typedef struct sent {
    size_t rec;                          /* record index */
    int kind;                            /* W_* */
} sent_t;

typedef struct batch {
    sent_t *sent;
    size_t n_sent, cap_sent;
    size_t first_bad;                    /* lowest record index with an unexpected failure */
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

/* Condition failures are the normal outcome of guarded writes; anything else is not. */
static void on_reply(void *arg, long index, int status, const char *resp, size_t len) {
    batch_t *bt = arg;
    if (status == 200) return;
    const sent_t *s = &bt->sent[index];
    if (status == 400 && s->kind != W_COUNT && strstr(resp, "ConditionalCheckFailed")) return;
    bt->n_unexpected++;
    if (s->rec < bt->first_bad) bt->first_bad = s->rec;
    trf_log(bt->ctx, "iot: table write for record %zu failed (%d): %.*s", s->rec, status,
            (int)(len > 300 ? 300 : len), resp);
}

/* Queue the writes of one valid reading. */
static int write_reading(batch_t *bt, size_t rec, const trf_record_t *r, const char *device,
                         double n, int64_t ts, double temp, double hum, double batt,
                         const char *fault, int alert) {
    char minute[32], key[1024];
    time_t secs = (time_t)(ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(minute, sizeof minute, "%Y-%m-%dT%H:%M", &tm);
    sb_t dk = {0}, req = {0};
    sb_str(&dk, device);
    snprintf(key, sizeof key, "{\"device\":{\"S\":%s},\"minute\":{\"S\":\"%s\"}}", dk.p, minute);
    /* %.15g: a reading's decimal text (up to 15 digits) comes back exactly. */
    char t[40];
    snprintf(t, sizeof t, "%.15g", temp);
    int rc = TRF_OK;

    sb_printf(&req, "{\"TableName\":\"%s\",\"Item\":{\"device\":{\"S\":%s},\"n\":{\"N\":\"%.15g\"},"
              "\"ts\":{\"N\":\"%lld\"},\"temperature\":{\"N\":\"%s\"},\"humidity\":{\"N\":"
              "\"%.15g\"},\"battery\":{\"N\":\"%.15g\"},\"seq\":{\"S\":\"%s\"},\"fault\":",
              t_latest, dk.p, n, (long long)ts, t, hum, batt, r->sequence_number);
    if (fault[0]) {
        sb_add(&req, "{\"S\":", 5);
        sb_str(&req, fault);
        sb_add(&req, "}", 1);
    } else {
        sb_printf(&req, "{\"NULL\":true}");
    }
    sb_printf(&req, "},\"ConditionExpression\":\"attribute_not_exists(device) OR #n < :n\","
              "\"ExpressionAttributeNames\":{\"#n\":\"n\"},\"ExpressionAttributeValues\":"
              "{\":n\":{\"N\":\"%.15g\"}}}", n);
    rc |= send(bt, &req, "PutItem", rec, W_LATEST);

    sb_printf(&req, "{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":\"ADD #c :one, #s :t\","
              "\"ExpressionAttributeNames\":{\"#c\":\"count\",\"#s\":\"sum\"},"
              "\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"},\":t\":{\"N\":\"%s\"}}}",
              t_minute, key, t);
    rc |= send(bt, &req, "UpdateItem", rec, W_COUNT);
    static const char *const mm[2][2] = {{"min", ">"}, {"max", "<"}};
    for (int i = 0; i < 2; i++) {
        sb_printf(&req, "{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":\"SET #m = :t\","
                  "\"ConditionExpression\":\"attribute_not_exists(#m) OR #m %s :t\","
                  "\"ExpressionAttributeNames\":{\"#m\":\"%s\"},"
                  "\"ExpressionAttributeValues\":{\":t\":{\"N\":\"%s\"}}}",
                  t_minute, key, mm[i][1], mm[i][0], t);
        rc |= send(bt, &req, "UpdateItem", rec, i ? W_MAX : W_MIN);
    }
    if (alert) {
        sb_printf(&req, "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":{"
                  "\"device\":{\"S\":%s},\"seq\":{\"S\":\"%s\"},\"minute\":{\"S\":\"%s\"},"
                  "\"ts\":{\"N\":\"%lld\"},\"temperature\":{\"N\":\"%s\"},\"reason\":{\"S\":",
                  t_alerts, dk.p, r->sequence_number, minute, (long long)ts, t);
        sb_str(&req, fault[0] ? fault : "temperature");
        sb_printf(&req, "}},\"ConditionExpression\":\"attribute_not_exists(seq)\"}},"
                  "{\"Update\":{\"TableName\":\"%s\",\"Key\":%s,\"UpdateExpression\":"
                  "\"ADD alerts :one\",\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"}}}}]}",
                  t_minute, key);
        rc |= send(bt, &req, "TransactWriteItems", rec, W_ALERT);
    }
    free(dk.p);
    free(req.p);
    return rc;
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
    size_t stopped_at = ev->n_records;
    for (size_t i = 0; i < ev->n_records; i++) {
        const trf_record_t *r = &ev->records[i];
        const char *json = (const char *)r->data;
        char device[256] = "", fault[128] = "";
        double temp = 0, n = 0, hum = 0, batt = 0, ts = 0;
        if (!trf_json_valid(json, r->len) ||
            trf_json_get_number(json, r->len, "temperature", &temp) != TRF_OK ||
            trf_json_get_string(json, r->len, "device", device, sizeof device) != TRF_OK ||
            !device[0]) {
            trf_log(ctx, "iot: malformed reading %s from %.*s: %.60s", r->sequence_number,
                    (int)r->partition_key_len, r->partition_key, json);
            t.malformed++;
            if (i == 0) {
                /* First in its batch: a function error, so a mapping with
                 * BisectBatchOnFunctionError halves the batch until this record stands alone
                 * and only it goes to the on-failure destination. */
                free(bt.sent);
                return trf_error(ctx, "Iot.MalformedReading",
                                 "the first reading of the batch is not valid telemetry");
            }
            trf_fail_record(ctx, i);   /* checkpoint before it; the retry starts at it */
            stopped_at = i;
            break;
        }
        trf_json_get_number(json, r->len, "n", &n);
        trf_json_get_number(json, r->len, "humidity", &hum);
        trf_json_get_number(json, r->len, "battery", &batt);
        if (trf_json_get_number(json, r->len, "ts", &ts) != TRF_OK) ts = (double)r->arrival_ms;
        int has_fault = trf_json_get_string(json, r->len, "fault", fault, sizeof fault) == TRF_OK
                        && fault[0];
        if (!has_fault) fault[0] = 0;
        int alert = has_fault || temp > alert_temp;
        t.readings++;
        if (temp > t.max_temp) t.max_temp = temp;
        if (alert) {
            t.alerts++;
            trf_log(ctx, "iot: ALERT device %s temperature %.2f%s%s", device, temp,
                    has_fault ? " fault " : "", fault);
        }
        if (use_tables && write_reading(&bt, i, r, device, n, (int64_t)ts, temp, hum, batt, fault,
                                        alert) != TRF_OK) {
            free(bt.sent);
            return trf_error(ctx, "Iot.NoTables", "in-process tables are not available in this "
                             "runtime; deploy with Runtime tributary.c1 or set IOT_TABLES=0");
        }
    }
    if (use_tables && bt.n_sent) {
        int failed = 0;
        if (trf_table_flush(ctx, &failed, on_reply, &bt) != TRF_OK) {
            free(bt.sent);
            return trf_error(ctx, "Iot.NoTables", "the table service went away mid-batch");
        }
        if (bt.n_unexpected && bt.first_bad < stopped_at) {
            /* Retry from the first reading not fully applied (the ones before it are). */
            trf_log(ctx, "iot: %zu table writes failed; retrying from record %zu",
                    bt.n_unexpected, bt.first_bad);
            trf_fail_record(ctx, bt.first_bad);
        }
    }
    free(bt.sent);
    if (ev->window) {
        char state[256];
        int len = snprintf(state, sizeof state,
                           "{\"readings\":%.0f,\"alerts\":%.0f,\"malformed\":%.0f,"
                           "\"max_temp\":%.2f}", t.readings, t.alerts, t.malformed, t.max_temp);
        trf_window_state(ctx, state, (size_t)len);
        if (ev->window->is_final)
            trf_log(ctx, "iot: window %lld..%lld: %.0f readings, %.0f alerts, %.0f malformed, "
                    "max %.2f C", (long long)ev->window->start_ms, (long long)ev->window->end_ms,
                    t.readings, t.alerts, t.malformed, t.max_temp);
    } else {
        trf_log(ctx, "iot: %zu records, %.0f alerts, %.0f malformed", ev->n_records, t.alerts,
                t.malformed);
    }
    return TRF_OK;
}
