/* SPDX-License-Identifier: Apache-2.0
 *
 * test_h2.c -- net/h2.c's session driven from memory (net__h2_mem_*, net_int.h): what needs a
 * clock rather than a socket.  The integration tests (tests/integration/test_http2.py) cover the
 * same rules over TCP where a few seconds suffice; these cover the ones counted in minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net_int.h"
#include "testutil.h"

static int handler(void *arg, net_req_t *req) {
    (void)arg;
    (void)req;
    return NET_DONE;
}

/* A server with authentication: requests with an "x-ok" header authenticate, others fail. */
static int auth_handler(void *arg, net_req_t *req) {
    (void)arg;
    if (net_req_header(req, "x-ok")) req->authed = 1;
    else req->status = 403;
    return NET_DONE;
}

/* Authenticates every request and answers with a 100 KB body. */
static int big_handler(void *arg, net_req_t *req) {
    (void)arg;
    req->authed = 1;
    for (int i = 0; i < 1000; i++)
        tr_buf_puts(&req->out, "0123456789012345678901234567890123456789012345678901234567890123"
                               "456789012345678901234567890123456");
    return NET_DONE;
}

static int precheck_continue(void *arg, net_req_t *req) {
    (void)arg;
    (void)req;
    return NET_CONTINUE;
}

static void server_init(net_server_t *srv) {
    memset(srv, 0, sizeof *srv);
    srv->o.handler = handler;
    srv->o.max_body = 1 << 20;
    srv->o.max_inflight_bytes = 64 << 20;
    srv->o.header_timeout_s = 10;
    srv->o.body_timeout_s = 30;
}

/* Fixture: *state is a server_init'ed net_server_t; teardown checks that no connection is left
 * (every session the test opened was closed and counted out). */
static int server_setup(void **state) {
    net_server_t *srv = malloc(sizeof *srv);
    if (!srv) return -1;
    server_init(srv);
    *state = srv;
    return 0;
}

static int server_teardown(void **state) {
    net_server_t *srv = *state;
    int live = atomic_load(&srv->live);
    free(srv);
    return live == 0 ? 0 : -1;
}

#define H2_TEST(f) cmocka_unit_test_setup_teardown(f, server_setup, server_teardown)

static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
static const uint8_t ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 'p', 'i', 'n', 'g', 'p', 'i', 'n', 'g'};

/* HEADERS (END_STREAM | END_HEADERS) on stream `sid`: GET / http, :authority x; with an "x-ok"
 * header (literal, new name) when ok. */
static void request(net__h2_t *h, uint8_t sid, int ok) {
    uint8_t f[32] = {0, 0, 6, 1, 5, 0, 0, 0, sid, 0x82, 0x86, 0x84, 0x41, 1, 'x'};
    size_t n = 15;
    if (ok) {
        static const uint8_t xok[] = {0, 4, 'x', '-', 'o', 'k', 1, '1'};
        memcpy(f + n, xok, sizeof xok);
        n += sizeof xok;
        f[2] = (uint8_t)(n - 9);
    }
    assert_int_equal(net__h2_mem_feed(h, f, n), 0);
}

static net__h2_t *open_session(net_server_t *srv) {
    net__h2_t *h = NULL;
    tr_err err;
    tr_err_clear(&err);
    tu_ok(net__h2_mem_open(srv, &h, &err), err);
    assert_int_equal(net__h2_mem_feed(h, NET__H2_PREFACE, NET__H2_PREFACE_LEN), 0);
    assert_int_equal(net__h2_mem_feed(h, settings, sizeof settings), 0);
    return h;
}

/* Close a session: the server counts no live connection afterwards. */
static void close_session(net_server_t *srv, net__h2_t *h) {
    net__h2_mem_close(h);
    assert_int_equal(atomic_load(&srv->live), 0);
}

/* A connection with no request closes NET__IDLE_TIMEOUT_S after its last HEADERS or DATA frame,
 * however many PINGs it sends meanwhile (they used to count as activity: such a connection was
 * held for ever). */
static void test_pings_do_not_keep_an_idle_connection(void **state) {
    net_server_t *srv = *state;
    net__h2_t *h = open_session(srv);
    request(h, 1, 0);  /* completed: trusted (no authentication configured) */
    sleep(2);  /* the PING comes 2 s after the connection's last (and only) activity */
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    /* 119 s after the PING, 121 s after the activity: closed. */
    net__h2_mem_tick(h, NET__IDLE_TIMEOUT_S - 1);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), -1);
    close_session(srv, h);
}

/* An idle connection that is not yet past the timeout stays open. */
static void test_idle_connection_kept_until_the_timeout(void **state) {
    net_server_t *srv = *state;
    net__h2_t *h = open_session(srv);
    request(h, 1, 0);
    net__h2_mem_tick(h, NET__IDLE_TIMEOUT_S - 2);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    close_session(srv, h);
}

/* A connection on which no request has authenticated is closed header_timeout_s after it
 * opened, whatever it sends meanwhile: requests that fail authentication, PINGs. */
static void test_unauthenticated_connection_closed_at_header_timeout(void **state) {
    net_server_t *srv = *state;
    srv->o.handler = auth_handler;
    srv->o.precheck = precheck_continue;
    net__h2_t *h = open_session(srv);
    request(h, 1, 0);
    net__h2_mem_tick(h, 5);
    request(h, 3, 0);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    net__h2_mem_tick(h, 11);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), -1);
    close_session(srv, h);

    /* Without any request either (no authentication configured: a completed request trusts). */
    srv->o.handler = handler;
    srv->o.precheck = NULL;
    h = open_session(srv);
    net__h2_mem_tick(h, 9);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    net__h2_mem_tick(h, 11);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), -1);
    close_session(srv, h);
}

/* One authenticated request trusts the connection: only the idle timeout applies then. */
static void test_authenticated_connection_kept_past_header_timeout(void **state) {
    net_server_t *srv = *state;
    srv->o.handler = auth_handler;
    srv->o.precheck = precheck_continue;
    net__h2_t *h = open_session(srv);
    request(h, 1, 0);
    request(h, 3, 1);
    request(h, 5, 0); /* a later failure does not take the trust back */
    net__h2_mem_tick(h, NET__IDLE_TIMEOUT_S - 2);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    close_session(srv, h);
}

/* A response the client does not take (its flow-control window is 0) is charged to the
 * in-flight budget while it waits, and is reset and freed once past body_timeout_s + 1 s per
 * 64 KiB of it: the budget is whole again.  Before: charged nothing, and held for as long as
 * the connection stayed open. */
static void test_response_not_taken_is_charged_then_dropped(void **state) {
    net_server_t *srv = *state;
    srv->o.handler = big_handler;
    srv->o.precheck = precheck_continue;
    net__h2_t *h = open_session(srv);
    static const uint8_t window0[15] = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    assert_int_equal(net__h2_mem_feed(h, window0, sizeof window0), 0);
    request(h, 1, 0);
    assert_true(atomic_load(&srv->inflight) >= 100000); /* the response, until taken */
    net__h2_mem_tick(h, 30); /* due after 30 + 1 s */
    assert_true(atomic_load(&srv->inflight) >= 100000);
    net__h2_mem_tick(h, 32);
    assert_int_equal(atomic_load(&srv->inflight), 0);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0); /* the connection stays */
    close_session(srv, h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        H2_TEST(test_pings_do_not_keep_an_idle_connection),
        H2_TEST(test_idle_connection_kept_until_the_timeout),
        H2_TEST(test_unauthenticated_connection_closed_at_header_timeout),
        H2_TEST(test_authenticated_connection_kept_past_header_timeout),
        H2_TEST(test_response_not_taken_is_charged_then_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
