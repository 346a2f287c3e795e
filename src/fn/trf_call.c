/* SPDX-License-Identifier: Apache-2.0
 *
 * trf_call.c -- one call of a native handler: the runtime services behind trf_ops_t and the
 * outcome they add up to (see trf__call_run in trf_int.h).  Used by the native host process and
 * by the bootstrap, so a handler's response is the same under both runtimes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn/trf_int.h"

#define TRF__MAX_RESPONSE (6 * 1024 * 1024)

static trf__call_t *call_of(trf_context_t *ctx) { return ctx->runtime_private; }

static void op_log(trf_context_t *ctx, const char *text, size_t len) {
    trf__call_t *c = call_of(ctx);
    if (!c->log_sink || !text) return;
    if (len && text[len - 1] == '\n') {
        c->log_sink(c->log_arg, text, len);
        return;
    }
    char stackbuf[4097];
    if (len < sizeof stackbuf) {
        memcpy(stackbuf, text, len);
        stackbuf[len] = '\n';
        c->log_sink(c->log_arg, stackbuf, len + 1);
    } else {
        c->log_sink(c->log_arg, text, len);
        c->log_sink(c->log_arg, "\n", 1);
    }
}

static int op_respond(trf_context_t *ctx, const char *json, size_t len) {
    trf__call_t *c = call_of(ctx);
    if (!c->ev) return TRF_ERROR;
    if (len > TRF__MAX_RESPONSE) return TRF_ERROR;
    c->respond.len = 0;
    trf__buf_append(&c->respond, json ? json : "", json ? len : 0);
    c->has_respond = 1;
    return c->respond.oom ? TRF_ERROR : TRF_OK;
}

static int op_fail_record(trf_context_t *ctx, size_t index) {
    trf__call_t *c = call_of(ctx);
    if (!c->ev || c->ev->kind != TRF_EVENT_KINESIS || index >= c->ev->n_records) return TRF_ERROR;
    if (c->n_fails == c->cap_fails) {
        size_t cap = c->cap_fails ? c->cap_fails * 2 : 16;
        size_t *p = realloc(c->fails, cap * sizeof *p);
        if (!p) return TRF_ERROR;
        c->fails = p;
        c->cap_fails = cap;
    }
    c->fails[c->n_fails++] = index;
    return TRF_OK;
}

static int op_window_state(trf_context_t *ctx, const char *json, size_t len) {
    trf__call_t *c = call_of(ctx);
    if (!c->ev) return TRF_ERROR;
    if (!json || !len || json[0] != '{' || !trf_json_valid(json, len)) return TRF_ERROR;
    c->state.len = 0;
    trf__buf_append(&c->state, json, len);
    c->has_state = 1;
    return c->state.oom ? TRF_ERROR : TRF_OK;
}

static void op_error(trf_context_t *ctx, const char *type, const char *message) {
    trf__call_t *c = call_of(ctx);
    snprintf(c->error_type, sizeof c->error_type, "%s", type && *type ? type : "HandlerError");
    c->error_msg.len = 0;
    trf__buf_puts(&c->error_msg, message ? message : "");
    c->has_error = 1;
}

static const char *op_event_json(trf_context_t *ctx, const trf_event_t *ev, size_t *len) {
    trf__call_t *c = call_of(ctx);
    if (!ev) return NULL;
    if (ev->json) {
        if (len) *len = ev->json_len;
        return ev->json;
    }
    if (ev->kind != TRF_EVENT_KINESIS) return NULL;
    if (!c->event_json.len) trf__kinesis_render(&c->event_json, ev, NULL);
    if (c->event_json.oom) return NULL;
    if (len) *len = c->event_json.len;
    return c->event_json.data;
}

/* ---- tables (the transport is the caller's: trf__table_io_t) ------------------------------- */

#define TRF__SYNC_ID 0x80000000u

/* Read replies until the sync call `want` is answered (want 0: until every pipelined call is).
 * Replies to pipelined calls are kept for the flush; stale ones dropped.  0 or -1. */
static int table_wait(trf__call_t *c, uint32_t want, int *status, char **resp) {
    for (;;) {
        if (!want && c->n_tpend_done == c->n_tpend) return 0;
        uint32_t id = 0;
        int st = 0;
        char *r = NULL;
        size_t l = 0;
        if (c->table_io->recv(c->table_arg, &id, &st, &r, &l)) return -1;
        if (want && id == want) {
            *status = st;
            if (resp) *resp = r;
            else free(r);
            return 0;
        }
        if (!(id & TRF__SYNC_ID) && id < c->n_tpend && !c->tpend[id].done) {
            c->tpend[id] = (trf__tpend_t){.status = st, .done = 1, .resp = r, .len = l};
            c->n_tpend_done++;
        } else {
            free(r);
        }
    }
}

static int op_table_call(trf_context_t *ctx, const char *op, const char *req, size_t len,
                         char **resp) {
    trf__call_t *c = call_of(ctx);
    if (resp) *resp = NULL;
    if (!c->table_io || !op || (!req && len)) return TRF_ERROR;
    uint32_t id = TRF__SYNC_ID | (++c->sync_seq & 0x7fffffffu);
    if (id == TRF__SYNC_ID) id = TRF__SYNC_ID | (++c->sync_seq & 0x7fffffffu);
    int status = 0;
    if (c->table_io->send(c->table_arg, id, op, req ? req : "", len) ||
        table_wait(c, id, &status, resp))
        return TRF_ERROR;
    return status == 200 ? TRF_OK : status;
}

static long op_table_send(trf_context_t *ctx, const char *op, const char *req, size_t len) {
    trf__call_t *c = call_of(ctx);
    if (!c->table_io || !op || (!req && len) || c->n_tpend >= 0x7fffffffu) return TRF_ERROR;
    if (c->n_tpend == c->cap_tpend) {
        size_t cap = c->cap_tpend ? c->cap_tpend * 2 : 256;
        trf__tpend_t *p = realloc(c->tpend, cap * sizeof *p);
        if (!p) return TRF_ERROR;
        c->tpend = p;
        c->cap_tpend = cap;
    }
    c->tpend[c->n_tpend] = (trf__tpend_t){0};
    if (c->table_io->send(c->table_arg, (uint32_t)c->n_tpend, op, req ? req : "", len))
        return TRF_ERROR;
    return (long)c->n_tpend++;
}

static int op_table_flush(trf_context_t *ctx, int *n_failed,
                          void (*on_reply)(void *, long, int, const char *, size_t), void *arg) {
    trf__call_t *c = call_of(ctx);
    if (n_failed) *n_failed = 0;
    if (!c->table_io) return TRF_ERROR;
    int rc = table_wait(c, 0, NULL, NULL) ? TRF_ERROR : TRF_OK;
    for (size_t i = 0; i < c->n_tpend; i++) {
        trf__tpend_t *p = &c->tpend[i];
        if (rc == TRF_OK) {
            if (p->status != 200 && n_failed) ++*n_failed;
            if (on_reply) on_reply(arg, (long)i, p->status, p->resp ? p->resp : "", p->len);
        }
        free(p->resp);
    }
    c->n_tpend = c->n_tpend_done = 0;
    return rc;
}

static const trf_ops_t call_ops = {
    .log = op_log,
    .respond = op_respond,
    .fail_record = op_fail_record,
    .window_state = op_window_state,
    .error = op_error,
    .event_json = op_event_json,
    .table_call = op_table_call,
    .table_send = op_table_send,
    .table_flush = op_table_flush,
};

void trf__error_json(trf__buf_t *b, const char *type, const char *msg) {
    trf__buf_puts(b, "{\"errorMessage\":");
    trf__buf_json_str(b, msg, strlen(msg));
    trf__buf_puts(b, ",\"errorType\":");
    trf__buf_json_str(b, type, strlen(type));
    trf__buf_puts(b, "}");
}

void trf__call_prepare(trf__call_t *c) {
    c->ev = NULL;
    c->ctx.abi = TRF_ABI_VERSION;
    c->ctx.ops = &call_ops;
    c->ctx.runtime_private = c;
}

int trf__call_run(trf__call_t *c, trf_handler_fn h, const trf_event_t *ev) {
    c->failed = c->has_respond = c->has_state = c->has_error = 0;
    c->error_type[0] = 0;
    c->n_fails = 0;
    c->payload.len = c->respond.len = c->state.len = c->event_json.len = c->error_msg.len = 0;
    c->payload.oom = c->respond.oom = c->state.oom = c->event_json.oom = c->error_msg.oom = 0;
    c->ev = ev;
    c->ctx.abi = TRF_ABI_VERSION;
    c->ctx.ops = &call_ops;
    c->ctx.runtime_private = c;

    int rc = h(ev, &c->ctx);
    fflush(stdout);
    if (c->n_tpend) op_table_flush(&c->ctx, NULL, NULL, NULL);   /* unflushed sends: wait */

    if (rc != TRF_OK || c->has_error) {
        c->failed = 1;
        char msg[64];
        if (!c->has_error) {
            snprintf(c->error_type, sizeof c->error_type, "HandlerError");
            snprintf(msg, sizeof msg, "the handler returned %d", rc);
        }
        trf__error_json(&c->payload, c->error_type, c->has_error ? c->error_msg.data : msg);
    } else if (c->has_respond) {
        trf__buf_append(&c->payload, c->respond.data, c->respond.len);
    } else if (ev->kind == TRF_EVENT_KINESIS) {
        if (c->n_fails || ev->window || c->has_state) {
            const char *st = NULL;
            size_t sl = 0;
            if (c->has_state) {
                st = c->state.data;
                sl = c->state.len;
            } else if (ev->window) {
                st = ev->window->state && ev->window->state_len ? ev->window->state : "{}";
                sl = ev->window->state && ev->window->state_len ? ev->window->state_len : 2;
            }
            trf__kinesis_response(&c->payload, ev, c->fails, c->n_fails, st, sl);
        } else {
            trf__buf_puts(&c->payload, "null");
        }
    } else {
        trf__buf_puts(&c->payload, "null");
    }
    if (c->payload.len > TRF__MAX_RESPONSE) {
        c->failed = 1;
        snprintf(c->error_type, sizeof c->error_type, "Function.ResponseSizeTooLarge");
        c->payload.len = 0;
        trf__error_json(
            &c->payload, c->error_type,
            "Response payload size exceeded maximum allowed payload size (6291556 bytes).");
    }
    return c->payload.oom ? -1 : 0;
}

void trf__call_free(trf__call_t *c) {
    if (!c) return;
    free(c->fails);
    c->fails = NULL;
    for (size_t i = 0; i < c->n_tpend; i++) free(c->tpend[i].resp);
    free(c->tpend);
    c->tpend = NULL;
    c->n_tpend = c->cap_tpend = c->n_tpend_done = 0;
    c->n_fails = c->cap_fails = 0;
    trf__buf_free(&c->payload);
    trf__buf_free(&c->respond);
    trf__buf_free(&c->state);
    trf__buf_free(&c->event_json);
    trf__buf_free(&c->error_msg);
}
