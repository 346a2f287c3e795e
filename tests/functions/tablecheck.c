/* SPDX-License-Identifier: Apache-2.0
 *
 * tablecheck.c -- the test suite's native function for trf_table_* (in-process DynamoDB).
 *
 * Invoke it with {"table":"T","mode":M,"n":N}; it answers {"results":[{"op":..,"rc":..,
 * "resp":<DynamoDB's response body>},...]} (rc: trf_table_call's return) or, for pipelines,
 * {"sent":N,"failed":F,"statuses":[..]}:
 *   basic     PutItem pk=a; GetItem a; UpdateItem ADD n :2 (UPDATED_NEW); a PutItem whose
 *             condition fails; TransactWriteItems (Put b + Update a); one that is cancelled;
 *             an unknown operation; a malformed body
 *   pipeline  N x UpdateItem ADD c :1 on pk "counter" plus N x PutItem pk "p-<i>", one flush
 *   crash     N pipelined PutItems pk "x-<i>", then SIGSEGV without flushing
 *   sync      N synchronous UpdateItem ADD c :1 on pk "sync"
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tributary/function.h>

typedef struct out {
    char *p;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *s) {
    size_t n = strlen(s);
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, s, n + 1);
    o->len += n;
}

static void call(trf_context_t *ctx, out_t *o, const char *op, const char *req) {
    char *resp = NULL, head[128];
    int rc = trf_table_call(ctx, op, req, strlen(req), &resp);
    snprintf(head, sizeof head, "%s{\"op\":\"%s\",\"rc\":%d,\"resp\":", o->len > 12 ? "," : "", op,
             rc);
    put(o, head);
    put(o, resp && *resp ? resp : "null");
    put(o, "}");
    free(resp);
}

static void on_reply(void *arg, long index, int status, const char *resp, size_t len) {
    (void)resp;
    (void)len;
    out_t *o = arg;
    char b[32];
    snprintf(b, sizeof b, "%s%d", index ? "," : "", status);
    put(o, b);
}

int handler(const trf_event_t *ev, trf_context_t *ctx) {
    char table[128] = "t", mode[32] = "basic", req[1024];
    double n = 10;
    if (ev->kind == TRF_EVENT_JSON && ev->json) {
        trf_json_get_string(ev->json, ev->json_len, "table", table, sizeof table);
        trf_json_get_string(ev->json, ev->json_len, "mode", mode, sizeof mode);
        trf_json_get_number(ev->json, ev->json_len, "n", &n);
    }
    out_t o = {0};
    if (!strcmp(mode, "basic")) {
        put(&o, "{\"results\":[");
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"a\"},"
                 "\"n\":{\"N\":\"1\"},\"s\":{\"S\":\"hello\"}}}",
                 table);
        call(ctx, &o, "PutItem", req);
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"a\"}},"
                 "\"ConsistentRead\":true}",
                 table);
        call(ctx, &o, "GetItem", req);
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"a\"}},"
                 "\"UpdateExpression\":\"ADD n :d\",\"ExpressionAttributeValues\":{\":d\":"
                 "{\"N\":\"2\"}},\"ReturnValues\":\"UPDATED_NEW\"}",
                 table);
        call(ctx, &o, "UpdateItem", req);
        snprintf(req, sizeof req,
                 "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"a\"}},"
                 "\"ConditionExpression\":\"attribute_not_exists(pk)\"}",
                 table);
        call(ctx, &o, "PutItem", req);
        snprintf(req, sizeof req,
                 "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":"
                 "{\"pk\":{\"S\":\"b\"},\"v\":{\"S\":\"x\"}}}},{\"Update\":{\"TableName\":\"%s\","
                 "\"Key\":{\"pk\":{\"S\":\"a\"}},\"UpdateExpression\":\"ADD n :d\","
                 "\"ExpressionAttributeValues\":{\":d\":{\"N\":\"10\"}}}}]}",
                 table, table);
        call(ctx, &o, "TransactWriteItems", req);
        snprintf(req, sizeof req,
                 "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":"
                 "{\"pk\":{\"S\":\"c\"}}}},{\"Update\":{\"TableName\":\"%s\","
                 "\"Key\":{\"pk\":{\"S\":\"a\"}},\"UpdateExpression\":\"ADD n :d\","
                 "\"ConditionExpression\":\"n > :big\",\"ExpressionAttributeValues\":{\":d\":"
                 "{\"N\":\"100\"},\":big\":{\"N\":\"1000\"}}}}]}",
                 table, table);
        call(ctx, &o, "TransactWriteItems", req);
        call(ctx, &o, "NoSuchOperation", "{}");
        call(ctx, &o, "GetItem", "{not json");
        put(&o, "]}");
    } else if (!strcmp(mode, "pipeline") || !strcmp(mode, "crash")) {
        int crash = !strcmp(mode, "crash");
        long sent = 0;
        for (long i = 0; i < (long)n; i++) {
            if (!crash) {
                snprintf(req, sizeof req,
                         "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":"
                         "\"counter\"}},\"UpdateExpression\":\"ADD c :one\","
                         "\"ExpressionAttributeValues\":{\":one\":{\"N\":\"1\"}}}",
                         table);
                if (trf_table_send(ctx, "UpdateItem", req, strlen(req)) < 0) return TRF_ERROR;
                sent++;
            }
            snprintf(req, sizeof req, "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"%s-%ld\"}}}",
                     table, crash ? "x" : "p", i);
            if (trf_table_send(ctx, "PutItem", req, strlen(req)) < 0) return TRF_ERROR;
            sent++;
        }
        if (crash) raise(SIGSEGV);
        put(&o, "{\"statuses\":[");
        int failed = 0;
        if (trf_table_flush(ctx, &failed, on_reply, &o) != TRF_OK) return TRF_ERROR;
        char tail[96];
        snprintf(tail, sizeof tail, "],\"sent\":%ld,\"failed\":%d}", sent, failed);
        put(&o, tail);
    } else if (!strcmp(mode, "sync")) {
        int bad = 0;
        for (long i = 0; i < (long)n; i++) {
            snprintf(req, sizeof req,
                     "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"sync\"}},"
                     "\"UpdateExpression\":\"ADD c :one\",\"ExpressionAttributeValues\":"
                     "{\":one\":{\"N\":\"1\"}}}",
                     table);
            bad += trf_table_call(ctx, "UpdateItem", req, strlen(req), NULL) != TRF_OK;
        }
        char b[64];
        snprintf(b, sizeof b, "{\"failed\":%d}", bad);
        put(&o, b);
    } else {
        return trf_error(ctx, "BadMode", mode);
    }
    trf_respond(ctx, o.p, o.len);
    free(o.p);
    return TRF_OK;
}
