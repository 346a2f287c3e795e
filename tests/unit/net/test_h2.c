/*
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
#include <string.h>
#include <unistd.h>

#include "net/net_int.h"

static int handler(void *arg, net_req_t *req) {
    (void)arg;
    (void)req;
    return NET_DONE;
}

static void server_init(net_server_t *srv) {
    memset(srv, 0, sizeof *srv);
    srv->o.handler = handler;
    srv->o.max_body = 1 << 20;
    srv->o.max_inflight_bytes = 64 << 20;
    srv->o.header_timeout_s = 10;
    srv->o.body_timeout_s = 30;
}

static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
static const uint8_t ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 'p', 'i', 'n', 'g', 'p', 'i', 'n', 'g'};

/* A connection with no request closes NET__IDLE_TIMEOUT_S after its last HEADERS or DATA frame,
 * however many PINGs it sends meanwhile (they used to count as activity: such a connection was
 * held for ever). */
static void test_pings_do_not_keep_an_idle_connection(void **state) {
    (void)state;
    net_server_t srv;
    server_init(&srv);
    net__h2_t *h = NULL;
    tr_err err;
    tr_err_clear(&err);
    assert_int_equal(net__h2_mem_open(&srv, &h, &err), 0);
    assert_int_equal(net__h2_mem_feed(h, NET__H2_PREFACE, NET__H2_PREFACE_LEN), 0);
    assert_int_equal(net__h2_mem_feed(h, settings, sizeof settings), 0);
    sleep(2);  /* the PING comes 2 s after the connection's last (and only) activity */
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    /* 119 s after the PING, 121 s after the activity: closed. */
    net__h2_mem_tick(h, NET__IDLE_TIMEOUT_S - 1);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), -1);
    net__h2_mem_close(h);
    assert_int_equal(atomic_load(&srv.live), 0);
}

/* An idle connection that is not yet past the timeout stays open. */
static void test_idle_connection_kept_until_the_timeout(void **state) {
    (void)state;
    net_server_t srv;
    server_init(&srv);
    net__h2_t *h = NULL;
    tr_err err;
    tr_err_clear(&err);
    assert_int_equal(net__h2_mem_open(&srv, &h, &err), 0);
    assert_int_equal(net__h2_mem_feed(h, NET__H2_PREFACE, NET__H2_PREFACE_LEN), 0);
    assert_int_equal(net__h2_mem_feed(h, settings, sizeof settings), 0);
    net__h2_mem_tick(h, NET__IDLE_TIMEOUT_S - 2);
    assert_int_equal(net__h2_mem_feed(h, ping, sizeof ping), 0);
    net__h2_mem_close(h);
    assert_int_equal(atomic_load(&srv.live), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pings_do_not_keep_an_idle_connection),
        cmocka_unit_test(test_idle_connection_kept_until_the_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
