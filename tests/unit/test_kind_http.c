/*
 * test_kind_http.c — the `http` kind (lib/kind_http.c) on a real event
 * base: the allow-list forms and their errors, the shape checks, the
 * address rule, and the transfer cap in the engine's dispatch. Transfers
 * here only go to 127.0.0.1:1, where nothing listens, so no server is
 * needed; the black-box tests (test_http.sh) run against a real one.
 *
 * The loop runs with event_base_loop(EVLOOP_ONCE) until the tasks are
 * done, bounded by a deadline timer: nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "errors.h"
#include "kind_http.h"

#define DEADLINE_MS 10000

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

static uint32_t in_flight(const aw_engine_t *e)
{
    aw_http_stats_t s;
    aw_http_stats(e, &s);
    return s.in_flight;
}

static int configure(aw_engine_t *e, const char *const *allow, size_t n, uint32_t max)
{
    aw_http_config_t c = {
        .allow = allow, .nallow = n, .max_transfers = max,
        .max_response_bytes = 1 << 20, .max_redirects = 2,
        .max_request_body = 100, .max_request_headers = 2, .connect_timeout_ms = 2000,
    };
    char err[256];
    return aw_engine_configure_kind(e, "http", &c, err, sizeof err);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    struct fx *f = calloc(1, sizeof *f);
    aw_engine_limits_t lim = { .retention_ms = 3600 * 1000 };
    if (!f || !(f->base = event_base_new()) || !(f->e = aw_engine_new(f->base, &lim)) ||
        aw_engine_add_kind(f->e, &aw_kind_http, true) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->e);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Creates an http task from args (JSON text). Returns the engine's code. */
static int create(struct fx *f, const char *args, aw_task_t **out)
{
    json_t *a = json_loads(args, 0, NULL);
    assert_non_null(a);
    aw_task_spec_t spec = { .kind = "http", .args = a, .timeout_ms = -1 };
    char err[512];
    aw_task_t *t = NULL;
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(a);
    if (out)
        *out = t;
    return rc;
}

static bool expired;
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    expired = true;
}

static void run_until_done(struct fx *f, aw_task_t **ts, size_t n)
{
    struct event *dl = evtimer_new(f->base, on_deadline, NULL);
    struct timeval tv = { DEADLINE_MS / 1000, 0 };
    expired = false;
    evtimer_add(dl, &tv);
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += aw_task_done(ts[i]);
        if (done == n || expired)
            break;
        event_base_loop(f->base, EVLOOP_ONCE);
    }
    event_free(dl);
    assert_false(expired);
}

static void test_allow_forms(void **state)
{
    struct fx *f = *state;
    const char *const allow[] = { "api.example.com", "*.svc.example:8443", "10.0.0.7:9000" };
    assert_int_equal(configure(f->e, allow, 3, 4), 0);
    assert_int_equal(create(f, "{\"url\":\"https://API.example.com/x\"}", NULL), 0);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com:81/\"}", NULL), 0);
    assert_int_equal(create(f, "{\"url\":\"https://a.b.svc.example:8443/\"}", NULL), 0);
    assert_int_equal(create(f, "{\"url\":\"https://svc.example:8443/\"}", NULL), AW_EFORBIDDEN);
    assert_int_equal(create(f, "{\"url\":\"https://a.svc.example/\"}", NULL), AW_EFORBIDDEN);
    assert_int_equal(create(f, "{\"url\":\"http://10.0.0.7:9001/\"}", NULL), AW_EFORBIDDEN);
    assert_int_equal(create(f, "{\"url\":\"http://evil.com/?api.example.com\"}", NULL),
                     AW_EFORBIDDEN);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com@evil.com/\"}", NULL),
                     AW_EFORBIDDEN);
    assert_int_equal(create(f, "{\"url\":\"ftp://api.example.com/\"}", NULL), AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"file:///etc/passwd\"}", NULL), AW_EINVAL);
    aw_engine_interrupt_all(f->e);
}

static void test_bad_allow_entries(void **state)
{
    struct fx *f = *state;
    const char *const bad[][1] = { { "a:b:c" }, { "x*.com" }, { "*.a.*.com" }, { "h:0" },
                                   { "h:70000" }, { "[::1" }, { "" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(configure(f->e, bad[i], 1, 4), AW_EINVAL);
    const char *const ok[] = { "*", "[::1]:80" };
    assert_int_equal(configure(f->e, ok, 2, 4), 0);
    assert_int_equal(configure(f->e, ok, 2, 0), AW_EINVAL);
}

static void test_shape_and_limits(void **state)
{
    struct fx *f = *state;
    const char *const allow[] = { "api.example.com" };
    assert_int_equal(configure(f->e, allow, 1, 4), 0);
    assert_int_equal(create(f, "{}", NULL), AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com/\",\"method\":\"G T\"}", NULL),
                     AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com/\","
                               "\"headers\":{\"X\":\"a\\r\\nInjected: 1\"}}", NULL), AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com/\","
                               "\"headers\":{\"A\":\"1\",\"B\":\"2\",\"C\":\"3\"}}", NULL),
                     AW_EINVAL);
    char big[400];
    snprintf(big, sizeof big, "{\"url\":\"http://api.example.com/\",\"body\":\"%0150d\"}", 0);
    assert_int_equal(create(f, big, NULL), AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com/\",\"fail_on_status\":1}",
                            NULL), AW_EINVAL);
    /* Disabled: the shape is still checked first, then it is disabled. */
    assert_int_equal(aw_engine_enable_kind(f->e, "http", false), 0);
    assert_int_equal(create(f, "{\"url\":7}", NULL), AW_EINVAL);
    assert_int_equal(create(f, "{\"url\":\"http://api.example.com/\"}", NULL), AW_EDISABLED);
}

/* 127.0.0.1 is allowed as a host but not as an address: the connect is
 * refused before any socket exists. */
static void test_loopback_address_refused(void **state)
{
    struct fx *f = *state;
    const char *const allow[] = { "localhost" };
    assert_int_equal(configure(f->e, allow, 1, 4), 0);
    aw_task_t *t;
    assert_int_equal(create(f, "{\"url\":\"http://localhost:1/\"}", &t), 0);
    aw_task_ref(t);
    run_until_done(f, &t, 1);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_HTTP);
    assert_non_null(strstr(aw_task_error_message(t), "loopback"));
    aw_task_unref(t);
}

/* max_transfers = 2: of five tasks two run and three stay pending, in
 * order; each finish starts the next. */
static void test_transfer_cap(void **state)
{
    struct fx *f = *state;
    const char *const allow[] = { "127.0.0.1:1" };
    assert_int_equal(configure(f->e, allow, 1, 2), 0);
    aw_task_t *ts[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(create(f, "{\"url\":\"http://127.0.0.1:1/\"}", &ts[i]), 0);
        aw_task_ref(ts[i]);
    }
    assert_int_equal(ts[0]->state, AW_RUNNING);
    assert_int_equal(ts[1]->state, AW_RUNNING);
    for (int i = 2; i < 5; i++)
        assert_int_equal(ts[i]->state, AW_PENDING);
    assert_int_equal(in_flight(f->e), 2);
    run_until_done(f, ts, 5);
    assert_int_equal(in_flight(f->e), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ts[i]->state, AW_FAILED);
        assert_int_equal(ts[i]->error_type, AW_ERR_HTTP);
        if (i > 0)
            assert_true(ts[i]->started_at >= ts[i - 1]->started_at);
    }
    for (int i = 0; i < 5; i++)
        aw_task_unref(ts[i]);
}

/* A raised cap starts waiting tasks at once; cancel frees a slot too. */
static void test_cap_raise_and_cancel(void **state)
{
    struct fx *f = *state;
    const char *const allow[] = { "127.0.0.1:1" };
    assert_int_equal(configure(f->e, allow, 1, 1), 0);
    aw_task_t *a, *b, *c;
    assert_int_equal(create(f, "{\"url\":\"http://127.0.0.1:1/\"}", &a), 0);
    assert_int_equal(create(f, "{\"url\":\"http://127.0.0.1:1/\"}", &b), 0);
    assert_int_equal(create(f, "{\"url\":\"http://127.0.0.1:1/\"}", &c), 0);
    assert_int_equal(b->state, AW_PENDING);
    assert_int_equal(aw_task_cancel(f->e, a), 0);
    assert_int_equal(a->state, AW_CANCELLED);
    assert_int_equal(b->state, AW_RUNNING);
    assert_int_equal(c->state, AW_PENDING);
    assert_int_equal(configure(f->e, allow, 1, 2), 0);
    assert_int_equal(c->state, AW_RUNNING);
    assert_int_equal(in_flight(f->e), 2);
    aw_engine_interrupt_all(f->e);
    assert_int_equal(in_flight(f->e), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_allow_forms),
        T(test_bad_allow_entries),
        T(test_shape_and_limits),
        T(test_loopback_address_refused),
        T(test_transfer_cap),
        T(test_cap_raise_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
