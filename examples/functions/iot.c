/*
 * iot.c -- a native function for the IoT telemetry of `make demo`: reads each record's JSON
 * ({"device":"d-7","n":12,"temperature":21.5,"humidity":40.1,"battery":99.2,"fault":null}),
 * logs an alert for faults and temperatures over IOT_ALERT_TEMP (default 60), skips malformed
 * readings with a log line (a poison reading must not stall its shard), and -- when the mapping
 * has TumblingWindowInSeconds -- keeps per-window totals in the window state and logs them at
 * the window's final invoke.
 *
 *   tributary-cc --zip iot.zip iot.c
 *   aws lambda create-function --function-name iot --runtime tributary.c1 \
 *       --handler libiot.so:handler --zip-file fileb://iot.zip --role arn:aws:iam::000000000000:role/x
 *   aws lambda create-event-source-mapping --function-name iot --batch-size 500 \
 *       --event-source-arn arn:aws:kinesis:us-east-1:000000000000:stream/telemetry \
 *       --starting-position TRIM_HORIZON --tumbling-window-in-seconds 60
 *
 * Records arrive as C structs: no JSON envelope, no base64; only the reading itself is parsed
 * (with the small library's trf_json_get_*).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tributary/function.h>

typedef struct totals {
    double readings, alerts, malformed;
    double max_temp;
} totals_t;

static double alert_temp = 60.0;

static int init(trf_context_t *ctx) {
    const char *t = getenv("IOT_ALERT_TEMP");
    if (t && *t) alert_temp = atof(t);
    trf_log(ctx, "iot: alert threshold %.1f C", alert_temp);
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

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    if (ev->kind != TRF_EVENT_KINESIS) {
        static const char msg[] = "{\"error\":\"iot expects Kinesis records\"}";
        trf_respond(ctx, msg, sizeof msg - 1);
        return TRF_OK;
    }
    totals_t t;
    state_read(ev->window, &t);
    for (size_t i = 0; i < ev->n_records; i++) {
        const trf_record_t *r = &ev->records[i];
        const char *json = (const char *)r->data;
        char device[64] = "?", fault[64] = "";
        double temp = 0;
        if (!trf_json_valid(json, r->len) ||
            trf_json_get_number(json, r->len, "temperature", &temp) != TRF_OK) {
            trf_log(ctx, "iot: malformed reading %s from %.*s: %.60s", r->sequence_number,
                    (int)r->partition_key_len, r->partition_key, json);
            t.malformed++;
            continue;
        }
        trf_json_get_string(json, r->len, "device", device, sizeof device);
        int has_fault = trf_json_get_string(json, r->len, "fault", fault, sizeof fault) == TRF_OK;
        t.readings++;
        if (temp > t.max_temp) t.max_temp = temp;
        if (has_fault || temp > alert_temp) {
            t.alerts++;
            trf_log(ctx, "iot: ALERT device %s temperature %.2f%s%s", device, temp,
                    has_fault ? " fault " : "", fault);
        }
    }
    if (ev->window) {
        char state[256];
        int n = snprintf(state, sizeof state,
                         "{\"readings\":%.0f,\"alerts\":%.0f,\"malformed\":%.0f,\"max_temp\":%.2f}",
                         t.readings, t.alerts, t.malformed, t.max_temp);
        trf_window_state(ctx, state, (size_t)n);
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
