/* SPDX-License-Identifier: Apache-2.0
 *
 * trf_event.c -- AWS's Kinesis event JSON to and from the native trf_event_t (see trf_int.h).
 *
 * The same code decodes events in three places -- the bootstrap on AWS, the bootstrap on
 * Tributary's provided runtime, and the native host when Invoke hands it a Kinesis-shaped
 * payload -- so one handler sees one shape of event wherever it runs.  And one renderer writes
 * the event for the event-source mappings (any runtime but the native one) and for
 * trf_event_json().
 *
 * The Kinesis event (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html):
 *
 *   {"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"1",
 *       "sequenceNumber":"4959...","data":"SGVsbG8=","approximateArrivalTimestamp":1545084650.987},
 *     "eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:4959...",
 *     "eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::...:role/...",
 *     "awsRegion":"us-east-2","eventSourceARN":"arn:aws:kinesis:us-east-2:...:stream/s"}],
 *   and with a tumbling window also:
 *   "window":{"start":"2020-07-30T17:00:00Z","end":"2020-07-30T17:05:00Z"},"state":{...},
 *   "shardId":"shardId-000000000006","eventSourceARN":"...","isFinalInvokeForWindow":false,
 *   "isWindowTerminatedEarly":false}
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn/trf_int.h"

#define DEFAULT_ROLE "arn:aws:iam::000000000000:role/tributary-event-source"

/* ---- decode ---------------------------------------------------------------------------------- */

/* Copy string token i (unescaped) into the arena at *off; returns the copy or NULL. */
static const char *arena_str(const trf__json_t *j, long i, char *arena, size_t *off, size_t cap,
                             size_t *len) {
    if (i < 0 || j->t[i].type != TRF__J_STR) return NULL;
    long n = trf__json_str(j, (size_t)i, arena + *off, cap - *off);
    if (n < 0) return NULL;
    const char *r = arena + *off;
    *off += (size_t)n + 1;
    if (len) *len = (size_t)n;
    return r;
}

static int is_kinesis(const trf__json_t *j) {
    long recs = trf__json_member(j, 0, "Records");
    if (recs >= 0 && j->t[recs].type == TRF__J_ARR && j->t[recs].size > 0) {
        long src = trf__json_member(j, (size_t)recs + 1, "eventSource");
        return src >= 0 && trf__json_str_eq(j, (size_t)src, "aws:kinesis");
    }
    /* A tumbling window's final invoke may carry no records. */
    long arn = trf__json_member(j, 0, "eventSourceARN");
    return recs >= 0 && trf__json_member(j, 0, "window") >= 0 && arn >= 0 &&
           j->t[arn].type == TRF__J_STR &&
           memmem(j->text + j->t[arn].start, j->t[arn].end - j->t[arn].start, ":kinesis:", 9);
}

int trf__event_from_json(trf__event_owned_t *out, const char *json, size_t len, const char **why) {
    memset(out, 0, sizeof *out);
    trf_event_t *ev = &out->ev;
    ev->abi = TRF_ABI_VERSION;
    ev->kind = TRF_EVENT_JSON;
    ev->json = json;
    ev->json_len = len;
    ev->event_source_arn = ev->shard_id = ev->aws_region = "";
    trf__json_t j;
    if (trf__json_parse(&j, json, len) || j.t[0].type != TRF__J_OBJ || !is_kinesis(&j)) {
        trf__json_free(&j);
        return 0; /* not a Kinesis event: the handler gets the JSON as is */
    }
    *why = "out of memory decoding the Kinesis event";
    long recs = trf__json_member(&j, 0, "Records");
    size_t n = recs >= 0 && j.t[recs].type == TRF__J_ARR ? j.t[recs].size : 0;
    /* Everything decoded fits in the JSON's own length plus a NUL per string. */
    size_t cap = len + 16 * (n + 4) + 64;
    out->arena = malloc(cap);
    out->recs = calloc(n ? n : 1, sizeof *out->recs);
    if (!out->arena || !out->recs) goto fail;
    size_t off = 0;
    size_t i = recs >= 0 ? (size_t)recs + 1 : 0;
    for (size_t r = 0; r < n; r++, i = j.t[i].skip) {
        trf_record_t *rec = &out->recs[r];
        long k = trf__json_member(&j, i, "kinesis");
        long data = k >= 0 ? trf__json_member(&j, (size_t)k, "data") : -1;
        if (data < 0 || j.t[data].type != TRF__J_STR) {
            *why = "a Kinesis event record has no kinesis.data string";
            goto fail;
        }
        rec->partition_key = arena_str(&j, trf__json_member(&j, (size_t)k, "partitionKey"),
                                       out->arena, &off, cap, &rec->partition_key_len);
        rec->sequence_number = arena_str(&j, trf__json_member(&j, (size_t)k, "sequenceNumber"),
                                         out->arena, &off, cap, NULL);
        if (!rec->partition_key) rec->partition_key = "";
        if (!rec->sequence_number) rec->sequence_number = "";
        double ts = 0;
        long at = trf__json_member(&j, (size_t)k, "approximateArrivalTimestamp");
        if (at >= 0 && trf__json_num(&j, (size_t)at, &ts) == 0)
            rec->arrival_ms = (int64_t)(ts * 1000.0 + (ts >= 0 ? 0.5 : -0.5));
        const trf__tok_t *dt = &j.t[data];
        long dn = trf__base64_decode(json + dt->start, dt->end - dt->start,
                                     (uint8_t *)out->arena + off);
        if (dn < 0) {
            *why = "a Kinesis event record's data is not base64";
            goto fail;
        }
        rec->data = (const uint8_t *)out->arena + off;
        rec->len = (size_t)dn;
        out->arena[off + (size_t)dn] = 0;
        off += (size_t)dn + 1;
        if (r == 0) {
            ev->event_source_arn = arena_str(&j, trf__json_member(&j, i, "eventSourceARN"),
                                             out->arena, &off, cap, NULL);
            ev->aws_region = arena_str(&j, trf__json_member(&j, i, "awsRegion"), out->arena, &off,
                                       cap, NULL);
            size_t idl = 0;
            const char *id = arena_str(&j, trf__json_member(&j, i, "eventID"), out->arena, &off,
                                       cap, &idl);
            const char *colon = id ? memchr(id, ':', idl) : NULL;
            if (colon) {
                out->arena[colon - out->arena] = 0; /* "shardId-...:seq" -> "shardId-..." */
                ev->shard_id = id;
            }
        }
    }
    long w = trf__json_member(&j, 0, "window");
    if (w >= 0 && j.t[w].type == TRF__J_OBJ) {
        trf_window_t *win = &out->window;
        long s = trf__json_member(&j, (size_t)w, "start"),
             e = trf__json_member(&j, (size_t)w, "end");
        if (s >= 0 && j.t[s].type == TRF__J_STR)
            trf__iso_parse(json + j.t[s].start, j.t[s].end - j.t[s].start, &win->start_ms);
        if (e >= 0 && j.t[e].type == TRF__J_STR)
            trf__iso_parse(json + j.t[e].start, j.t[e].end - j.t[e].start, &win->end_ms);
        long st = trf__json_member(&j, 0, "state");
        if (st >= 0 && j.t[st].type == TRF__J_OBJ) {
            size_t sl = j.t[st].end - j.t[st].start;
            out->state = malloc(sl + 1);
            if (!out->state) goto fail;
            memcpy(out->state, json + j.t[st].start, sl);
            out->state[sl] = 0;
            win->state = out->state;
            win->state_len = sl;
        } else {
            win->state = "{}";
            win->state_len = 2;
        }
        long f = trf__json_member(&j, 0, "isFinalInvokeForWindow");
        win->is_final = f >= 0 && j.t[f].type == TRF__J_TRUE;
        long te = trf__json_member(&j, 0, "isWindowTerminatedEarly");
        win->is_terminated_early = te >= 0 && j.t[te].type == TRF__J_TRUE;
        ev->window = win;
        const char *sid = arena_str(&j, trf__json_member(&j, 0, "shardId"), out->arena, &off, cap,
                                    NULL);
        if (sid) ev->shard_id = sid;
        const char *arn = arena_str(&j, trf__json_member(&j, 0, "eventSourceARN"), out->arena, &off,
                                    cap, NULL);
        if (arn) ev->event_source_arn = arn;
    }
    if (!ev->event_source_arn) ev->event_source_arn = "";
    if (!ev->aws_region) ev->aws_region = "";
    if (!ev->shard_id) ev->shard_id = "";
    ev->kind = TRF_EVENT_KINESIS;
    ev->records = out->recs;
    ev->n_records = n;
    trf__json_free(&j);
    *why = NULL;
    return 0;
fail:
    trf__json_free(&j);
    trf__event_owned_free(out);
    return -1;
}

void trf__event_owned_free(trf__event_owned_t *e) {
    if (!e) return;
    free(e->recs);
    free(e->arena);
    free(e->state);
    memset(e, 0, sizeof *e);
}

/* ---- render ---------------------------------------------------------------------------------- */

void trf__kinesis_render(trf__buf_t *b, const trf_event_t *ev, const char *invoke_identity_arn) {
    const char *arn = ev->event_source_arn ? ev->event_source_arn : "";
    const char *region = ev->aws_region ? ev->aws_region : "";
    const char *shard = ev->shard_id ? ev->shard_id : "";
    const char *role = invoke_identity_arn ? invoke_identity_arn : DEFAULT_ROLE;
    trf__buf_puts(b, "{\"Records\":[");
    for (size_t i = 0; i < ev->n_records; i++) {
        const trf_record_t *r = &ev->records[i];
        if (i) trf__buf_append(b, ",", 1);
        trf__buf_puts(b, "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":");
        trf__buf_json_str(b, r->partition_key, r->partition_key_len);
        trf__buf_puts(b, ",\"sequenceNumber\":\"");
        trf__buf_puts(b, r->sequence_number);
        trf__buf_puts(b, "\",\"data\":\"");
        trf__buf_base64(b, r->data, r->len);
        trf__buf_printf(b, "\",\"approximateArrivalTimestamp\":%lld.%03d},",
                        (long long)(r->arrival_ms / 1000), (int)(r->arrival_ms % 1000));
        trf__buf_puts(b, "\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\"");
        trf__buf_puts(b, shard);
        trf__buf_append(b, ":", 1);
        trf__buf_puts(b, r->sequence_number);
        trf__buf_puts(b, "\",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":");
        trf__buf_json_str(b, role, strlen(role));
        trf__buf_puts(b, ",\"awsRegion\":");
        trf__buf_json_str(b, region, strlen(region));
        trf__buf_puts(b, ",\"eventSourceARN\":");
        trf__buf_json_str(b, arn, strlen(arn));
        trf__buf_append(b, "}", 1);
    }
    trf__buf_append(b, "]", 1);
    if (ev->window) {
        char s[32], e[32];
        trf__iso_time(ev->window->start_ms, 0, s);
        trf__iso_time(ev->window->end_ms, 0, e);
        trf__buf_printf(b, ",\"window\":{\"start\":\"%s\",\"end\":\"%s\"},\"state\":", s, e);
        if (ev->window->state && ev->window->state_len)
            trf__buf_append(b, ev->window->state, ev->window->state_len);
        else trf__buf_puts(b, "{}");
        trf__buf_puts(b, ",\"shardId\":");
        trf__buf_json_str(b, shard, strlen(shard));
        trf__buf_puts(b, ",\"eventSourceARN\":");
        trf__buf_json_str(b, arn, strlen(arn));
        trf__buf_printf(b, ",\"isFinalInvokeForWindow\":%s,\"isWindowTerminatedEarly\":%s",
                        ev->window->is_final ? "true" : "false",
                        ev->window->is_terminated_early ? "true" : "false");
    }
    trf__buf_append(b, "}", 1);
}

void trf__kinesis_response(trf__buf_t *b, const trf_event_t *ev, const size_t *failed,
                           size_t n_failed, const char *window_state, size_t state_len) {
    trf__buf_puts(b, "{");
    if (window_state) {
        trf__buf_puts(b, "\"state\":");
        trf__buf_append(b, window_state, state_len);
        trf__buf_puts(b, ",");
    }
    trf__buf_puts(b, "\"batchItemFailures\":[");
    for (size_t i = 0; i < n_failed; i++) {
        if (i) trf__buf_append(b, ",", 1);
        trf__buf_puts(b, "{\"itemIdentifier\":\"");
        trf__buf_puts(b, ev->records[failed[i]].sequence_number);
        trf__buf_puts(b, "\"}");
    }
    trf__buf_puts(b, "]}");
}
