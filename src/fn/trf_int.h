/* SPDX-License-Identifier: Apache-2.0
 *
 * trf_int.h -- internals of the native function library (libtributary-function): a flat JSON
 * tokenizer, base64, a growable buffer, and the conversions between AWS's Kinesis event JSON and
 * the trf_event_t of <tributary/function.h>.
 *
 * These files (trf_json.c, trf_event.c) build twice: into the server (the host process and the
 * event-source mappings use them) and, position-independent, into libtributary-function.a, which
 * tributary-cc links into every user library and bootstrap.  So they depend on libc only -- no
 * core/, no jansson -- and every name here is hidden from the user's library's exports.  That is
 * why the base64 codec and the buffer here are the library's own and not core/buf.h's: on
 * purpose, not duplicates to merge (core/ is not linked into user code, and the buffer's
 * oom-flag contract suits code that must never abort inside a user's process).
 *
 * Thread rules: no global state; every function works on caller-owned data.
 */
#ifndef FN_TRF_INT_H
#define FN_TRF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tributary/function.h"

#if defined(__GNUC__)
#define TRF__HIDDEN __attribute__((visibility("hidden")))
#else
#define TRF__HIDDEN
#endif

/* ---- buffer ---------------------------------------------------------------------------------- */

/* Growable byte buffer; data is NUL-terminated after every append (not counted in len).
 * Allocation failure sets oom and turns later appends into no-ops: check oom once at the end. */
typedef struct trf__buf {
    char *data;
    size_t len, cap;
    int oom;
} trf__buf_t;

TRF__HIDDEN void trf__buf_append(trf__buf_t *b, const void *p, size_t n);
TRF__HIDDEN void trf__buf_puts(trf__buf_t *b, const char *s);
TRF__HIDDEN void trf__buf_printf(trf__buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s[0..n) (quotes included; invalid UTF-8 passes through). */
TRF__HIDDEN void trf__buf_json_str(trf__buf_t *b, const char *s, size_t n);
TRF__HIDDEN void trf__buf_base64(trf__buf_t *b, const uint8_t *p, size_t n);
TRF__HIDDEN void trf__buf_free(trf__buf_t *b);

/* Decode standard base64 (padding optional, no whitespace); out needs n/4*3+3 bytes.  Returns
 * the decoded length or -1. */
TRF__HIDDEN long trf__base64_decode(const char *in, size_t n, uint8_t *out);

/* ---- JSON tokens ----------------------------------------------------------------------------- */

enum { TRF__J_OBJ = 1, TRF__J_ARR, TRF__J_STR, TRF__J_NUM, TRF__J_TRUE, TRF__J_FALSE, TRF__J_NULL };

/* One token.  A container is followed by its children in document order (an object's children
 * alternate key, value); `skip` is the index just past the token's whole subtree.  STR spans the
 * text between the quotes (still escaped). */
typedef struct trf__tok {
    uint8_t type;
    uint32_t start, end; /* byte offsets into the text */
    uint32_t size; /* direct children (an object: members, not tokens) */
    uint32_t skip;
} trf__tok_t;

typedef struct trf__json {
    const char *text;
    size_t len;
    trf__tok_t *t; /* malloc'd */
    size_t n, cap;
} trf__json_t;

/* Parse one JSON value (surrounding whitespace allowed, nesting depth <= 512).  0 or -1 (bad
 * JSON or out of memory).  Free with trf__json_free (also after failure). */
TRF__HIDDEN int trf__json_parse(trf__json_t *j, const char *text, size_t len);
TRF__HIDDEN void trf__json_free(trf__json_t *j);
/* Index of member `key` of object token obj, or -1. */
TRF__HIDDEN long trf__json_member(const trf__json_t *j, size_t obj, const char *key);
/* Follow a dotted path from token `from`; -1 when absent. */
TRF__HIDDEN long trf__json_path(const trf__json_t *j, size_t from, const char *path);
/* Unescape string token i into out (cap bytes incl. NUL); returns the length or -1 (bad escape,
 * too long).  out may be NULL with cap 0 to measure. */
TRF__HIDDEN long trf__json_str(const trf__json_t *j, size_t i, char *out, size_t cap);
/* Number token i as a double; -1 when not a number. */
TRF__HIDDEN int trf__json_num(const trf__json_t *j, size_t i, double *out);
/* Whether string token i equals s (after unescaping). */
TRF__HIDDEN int trf__json_str_eq(const trf__json_t *j, size_t i, const char *s);

/* ---- events ---------------------------------------------------------------------------------- */

/* An event decoded from JSON, with everything it points to owned here. */
typedef struct trf__event_owned {
    trf_event_t ev;
    trf_window_t window;
    trf_record_t *recs;
    char *arena; /* pk, seq and data bytes of recs, arn, shard, region */
    char *state; /* window state text */
} trf__event_owned_t;

/* Decode a JSON payload into an event: AWS's Kinesis event (Records[].eventSource ==
 * "aws:kinesis", or a tumbling-window invoke of one) becomes TRF_EVENT_KINESIS with decoded
 * records; anything else TRF_EVENT_JSON pointing at the text.  json must stay valid while the
 * event is used.  0, or -1 with *why set (malformed Kinesis event: a record without data, bad
 * base64, out of memory). */
TRF__HIDDEN int trf__event_from_json(trf__event_owned_t *out, const char *json, size_t len,
                                     const char **why);
TRF__HIDDEN void trf__event_owned_free(trf__event_owned_t *e);

/* AWS's Kinesis event JSON for ev's records (eventSourceARN, awsRegion, eventID from shard_id;
 * the window members when ev->window).  invoke_identity_arn may be NULL (a placeholder role). */
TRF__HIDDEN void trf__kinesis_render(trf__buf_t *b, const trf_event_t *ev,
                                     const char *invoke_identity_arn);

/* The response of a Kinesis invoke: {"batchItemFailures":[{"itemIdentifier":seq},...]} plus
 * "state" when window_state is not NULL.  failed[] are record indices (any order, duplicates
 * allowed). */
TRF__HIDDEN void trf__kinesis_response(trf__buf_t *b, const trf_event_t *ev, const size_t *failed,
                                       size_t n_failed, const char *window_state, size_t state_len);

/* ISO-8601 UTC with seconds ("2020-07-30T17:00:00Z") or milliseconds (ms != 0) into out[32]. */
TRF__HIDDEN void trf__iso_time(int64_t unix_ms, int with_ms, char out[32]);
/* Parse "YYYY-MM-DDTHH:MM:SS[.fff]Z" to Unix ms; -1 on failure. */
TRF__HIDDEN int trf__iso_parse(const char *s, size_t n, int64_t *unix_ms);

/* ---- one handler call ------------------------------------------------------------------------ */

/* The transport of trf_table_* (the native host supplies it; the bootstrap has none).  Calls
 * carry an id; replies come back in any order.  Both return 0, or -1 when the transport is gone
 * (recv's *resp is malloc'd, NUL-terminated, the caller's to free). */
typedef struct trf__table_io {
    int (*send)(void *arg, uint32_t id, const char *op, const char *req, size_t len);
    int (*recv)(void *arg, uint32_t *id, int *status, char **resp, size_t *len);
} trf__table_io_t;

/* One pipelined call awaiting trf_table_flush. */
typedef struct trf__tpend {
    int status, done;
    char *resp;
    size_t len;
} trf__tpend_t;

/* Runs a handler with the runtime services of trf_ops_t and turns what it did into the
 * invocation's outcome -- shared by the native host and the bootstrap, so both answer alike. */
typedef struct trf__call {
    /* in: the caller fills ctx (request_id ... memory_mb, user); ops and runtime_private are set
     * by trf__call_run.  log_sink receives trf_log text (a newline is appended when missing). */
    trf_context_t ctx;
    void (*log_sink)(void *arg, const char *text, size_t len);
    void *log_arg;
    /* in: the table transport; NULL: trf_table_* answer TRF_ERROR */
    const trf__table_io_t *table_io;
    void *table_arg;
    /* out */
    int failed; /* function error */
    char error_type[128]; /* when failed */
    trf__buf_t payload; /* the response, or the error JSON when failed */
    /* scratch (reset by every run) */
    size_t *fails;
    size_t n_fails, cap_fails;
    const trf_event_t *ev;
    trf__buf_t respond, state, event_json, error_msg;
    int has_respond, has_state, has_error;
    /* pipelined table calls since the last flush (ids 0..n_tpend-1); sync calls use ids with
     * the top bit set */
    trf__tpend_t *tpend;
    size_t n_tpend, cap_tpend, n_tpend_done;
    uint32_t sync_seq;
} trf__call_t;

/* Call h(ev, &c->ctx).  The outcome:
 *   - success, TRF_EVENT_JSON: payload = trf_respond() text or "null";
 *   - success, TRF_EVENT_KINESIS: payload = trf_respond() text if the handler set one, else
 *     trf__kinesis_response() of the reported failures and the window state (the received state
 *     when the handler set none);
 *   - failure (nonzero return or trf_error): failed = 1, error_type, payload =
 *     {"errorMessage":...,"errorType":...}.
 * Returns 0, or -1 when out of memory. */
TRF__HIDDEN int trf__call_run(trf__call_t *c, trf_handler_fn h, const trf_event_t *ev);
TRF__HIDDEN void trf__call_free(trf__call_t *c);
/* Point c->ctx at the call's services outside a run (module init: log works, the rest is
 * refused until a run). */
TRF__HIDDEN void trf__call_prepare(trf__call_t *c);
/* The error JSON AWS runtimes send: {"errorMessage":msg,"errorType":type}. */
TRF__HIDDEN void trf__error_json(trf__buf_t *b, const char *type, const char *msg);

#endif
