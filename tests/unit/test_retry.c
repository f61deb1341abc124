/*
 * test_retry.c — retry policies (lib/retry.c) and the engine's retries
 * (engine.c retry_attempt, restore.c) with the `sleep` kind on a fake
 * clock: attempt counts, the backoff's timing, last_error, no retry after
 * a cancel, a cancel during the backoff, timeouts retried, waiters and
 * counters that see only the final end, and a restart that resumes the
 * backoff or sends a running task back to pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fake_clock.h"
#include "engine.h"
#include "errors.h"
#include "queue.h"
#include "retry.h"
#include "task_json.h"
#include "task_record.h"

#define T0_WALL 1700000000000LL
#define RETENTION_MS 60000

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    int                pending_events;  /* CHANGED back to pending */
    int                fired;           /* waiter callbacks */
};

static void on_event(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    struct fx *f = arg;
    if (ev == AW_TASK_CHANGED && t->state == AW_PENDING)
        f->pending_events++;
}

static aw_engine_t *engine(struct fx *f)
{
    aw_engine_limits_t lim = { .retention_ms = RETENTION_MS };
    aw_engine_t *e = aw_engine_new(f->base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_listen(e, on_event, f), 0);
    return e;
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->e = engine(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->e);
    event_base_free(f->base);
    free(f);
    fake_clock_stop();
    return 0;
}

static void advance(struct fx *f, int64_t ms)
{
    fake_clock_advance(f->e, ms);
}

/* A sleep of `seconds` that fails (fail != NULL) with this retry policy
 * (JSON text) and timeout; returns the task. */
static aw_task_t *create(struct fx *f, double seconds, const char *fail, const char *retry,
                         int64_t timeout_ms)
{
    json_t *args = fail ? json_pack("{s:f,s:s}", "seconds", seconds, "fail", fail)
                        : json_pack("{s:f}", "seconds", seconds);
    json_t *r = retry ? json_loads(retry, 0, NULL) : NULL;
    assert_true(args && (!retry || r));
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .timeout_ms = timeout_ms,
                            .retry = r };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(args);
    json_decref(r);
    if (rc != 0)
        fail_msg("create failed: %d: %s", rc, err);
    return t;
}

static int refused(struct fx *f, const char *retry, char *err, size_t errlen)
{
    json_t *args = json_pack("{s:f}", "seconds", 1.0);
    json_t *r = json_loads(retry, JSON_DECODE_ANY, NULL);
    assert_non_null(r);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .timeout_ms = -1, .retry = r };
    aw_task_t *t = NULL;
    int rc = aw_task_create(f->e, &spec, &t, err, errlen);
    json_decref(args);
    json_decref(r);
    return rc;
}

static json_t *object_of(const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    char *s = aw_buf_steal(&b, NULL);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(o);
    return o;
}

static uint64_t finished(struct fx *f, int state)
{
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    return st.kinds[0].finished[state];
}

static uint64_t retries(struct fx *f)
{
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    return st.retries;
}

static void waited(aw_waiter_t *w, void *arg)
{
    (void)w;
    ((struct fx *)arg)->fired++;
}

/* ---- the policy ---- */

static void policy_defaults_and_delays(void **state)
{
    (void)state;
    aw_task_retry_t r;
    char err[200];
    json_t *v = json_pack("{s:i}", "attempts", 5);
    assert_int_equal(aw_retry_parse(v, &r, err, sizeof err), 0);
    json_decref(v);
    assert_int_equal(r.attempts, 5);
    assert_int_equal(r.attempt, 1);
    assert_int_equal(r.backoff_ms, 1000);
    assert_int_equal(r.max_backoff_ms, 300000);
    assert_int_equal(aw_retry_delay_ms(&r, 1), 1000);
    assert_int_equal(aw_retry_delay_ms(&r, 2), 2000);
    assert_int_equal(aw_retry_delay_ms(&r, 3), 4000);
    assert_int_equal(aw_retry_delay_ms(&r, 20), 300000);    /* capped */
    assert_int_equal(aw_retry_delay_ms(&r, 1000), 300000);  /* pow is inf: still capped */
    /* The stored text reads back as the same policy. */
    aw_task_retry_t back;
    assert_int_equal(aw_retry_load(r.policy, &back, err, sizeof err), 0);
    assert_int_equal(back.attempts, 5);
    assert_int_equal(back.backoff_ms, 1000);
    assert_int_equal(back.max_backoff_ms, 300000);
    assert_true(back.factor == 2.0);
    free(r.policy);
    free(back.policy);
    /* A long backoff and no max_backoff: the cap is the backoff. */
    v = json_pack("{s:i,s:f}", "attempts", 2, "backoff", 600.0);
    assert_int_equal(aw_retry_parse(v, &r, err, sizeof err), 0);
    json_decref(v);
    assert_int_equal(r.max_backoff_ms, 600000);
    free(r.policy);
}

static void bad_policies_are_refused_and_create_nothing(void **state)
{
    struct fx *f = *state;
    static const char *const bad[] = {
        "[]", "3", "\"x\"", "true",
        "{\"attempts\":0}", "{\"attempts\":1001}", "{\"attempts\":2.5}",
        "{\"attempts\":\"3\"}", "{\"attempts\":-1}",
        "{\"backoff\":-1}", "{\"backoff\":\"1\"}", "{\"backoff\":1e300}",
        "{\"factor\":0.5}", "{\"factor\":true}",
        "{\"backoff\":10,\"max_backoff\":5}", "{\"max_backoff\":-1}",
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = refused(f, bad[i], err, sizeof err);
        if (rc != AW_EINVAL)
            fail_msg("retry %s: %d, not AW_EINVAL", bad[i], rc);
        if (!strstr(err, "retry"))
            fail_msg("retry %s: the message does not say retry: %s", bad[i], err);
    }
    assert_null(aw_task_after(f->e, NULL));
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.kinds[0].created, 0);
}

/* ---- the engine ---- */

static void no_policy_is_one_attempt(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 1, "boom", NULL, -1);
    json_t *o = object_of(t);
    assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 1);
    assert_true(json_is_null(json_object_get(o, "last_error")));
    json_decref(o);
    advance(f, 1000);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(retries(f), 0);
}

static void failures_are_retried_with_backoff_until_the_last_attempt(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 1, "boom", "{\"attempts\":3,\"backoff\":2,\"factor\":3}", -1);
    aw_task_ref(t);
    aw_waiter_t *w = NULL;
    assert_int_equal(aw_wait(f->e, &t, 1, AW_RETURN_ALL, -1, false, waited, f, &w), 0);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1000);                       /* attempt 1 fails */
    assert_int_equal(t->state, AW_PENDING);
    assert_false(aw_task_done(t));
    assert_int_equal(aw_task_attempt(t), 2);
    assert_int_equal(t->started_at, 0);
    assert_int_equal(aw_task_retry(t)->retry_at, wall_now + 2000);
    assert_int_equal(f->pending_events, 1);
    assert_int_equal(f->fired, 0);          /* not a finish for waiters */
    assert_int_equal(finished(f, AW_FAILED), 0);
    json_t *o = object_of(t);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "pending");
    assert_true(json_is_null(json_object_get(o, "error")));
    json_t *le = json_object_get(o, "last_error");
    assert_string_equal(json_string_value(json_object_get(le, "type")), "task_error");
    assert_string_equal(json_string_value(json_object_get(le, "message")), "boom");
    json_decref(o);
    advance(f, 1999);
    assert_int_equal(t->state, AW_PENDING);     /* the backoff: 2 s */
    advance(f, 1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(t->started_at, wall_now);
    advance(f, 1000);                       /* attempt 2 fails: 2 * 3 s */
    assert_int_equal(t->state, AW_PENDING);
    assert_int_equal(aw_task_attempt(t), 3);
    advance(f, 5999);
    assert_int_equal(t->state, AW_PENDING);
    advance(f, 1);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1000);                       /* attempt 3: the last */
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(aw_task_attempt(t), 3);
    assert_int_equal(t->error_type, AW_ERR_TASK);
    assert_int_equal(aw_task_retry(t)->last_error_type, AW_ERR_TASK);
    assert_int_equal(f->fired, 1);
    assert_int_equal(finished(f, AW_FAILED), 1);
    assert_int_equal(retries(f), 2);
    assert_int_equal(f->pending_events, 2);
    aw_task_unref(t);
}

static void success_on_a_later_attempt_ends_succeeded(void **state)
{
    struct fx *f = *state;
    /* A sleep that times out after 0.5 s while it needs 1 s: timeouts are
     * retried; the task fails timed_out when no attempt is left. */
    aw_task_t *t = create(f, 1, NULL, "{\"attempts\":2,\"backoff\":0.25}", 500);
    advance(f, 500);
    assert_int_equal(t->state, AW_PENDING);
    assert_int_equal(aw_task_retry(t)->last_error_type, AW_ERR_TIMEOUT);
    advance(f, 250);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 500);
    assert_int_equal(t->state, AW_TIMED_OUT);
    assert_int_equal(aw_task_attempt(t), 2);
    assert_int_equal(finished(f, AW_TIMED_OUT), 1);
    /* A task that succeeds ends at once, on its first attempt. */
    aw_task_t *s = create(f, 1, NULL, "{\"attempts\":5}", -1);
    advance(f, 1000);
    assert_int_equal(s->state, AW_SUCCEEDED);
    assert_int_equal(aw_task_attempt(s), 1);
}

static void a_cancel_is_never_retried(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 10, NULL, "{\"attempts\":5,\"backoff\":0}", -1);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(t->state, AW_CANCELLED);
    advance(f, 60000 - 1);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(aw_task_attempt(t), 1);
    assert_int_equal(retries(f), 0);
}

static void a_cancel_during_the_backoff_ends_it_for_good(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 0.1, "boom", "{\"attempts\":5,\"backoff\":10}", -1);
    aw_task_ref(t);
    advance(f, 100);
    assert_int_equal(t->state, AW_PENDING);
    aw_waiter_t *w = NULL;
    assert_int_equal(aw_wait(f->e, &t, 1, AW_RETURN_ALL, -1, false, waited, f, &w), 0);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(f->fired, 1);
    assert_int_equal(aw_task_retry(t)->retry_at, 0);
    advance(f, 20000);                      /* the backoff's time passes */
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(aw_task_attempt(t), 2);
    assert_int_equal(finished(f, AW_CANCELLED), 1);
    aw_task_unref(t);
}

static void a_zero_backoff_retries_inside_the_same_turn(void **state)
{
    struct fx *f = *state;
    /* Zero-second sleeps fail inside start: every attempt runs inside
     * the create, and dispatch does not recurse. */
    aw_task_t *t = create(f, 0, "boom", "{\"attempts\":50,\"backoff\":0}", -1);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(aw_task_attempt(t), 50);
    assert_int_equal(retries(f), 49);
    assert_int_equal(finished(f, AW_FAILED), 1);
}

static void a_queue_slot_is_given_back_during_the_backoff(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "one", 1), 0);
    json_t *args = json_pack("{s:f,s:s}", "seconds", 1.0, "fail", "x");
    json_t *r = json_pack("{s:i,s:f}", "attempts", 2, "backoff", 5.0);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .queue = "one",
                            .timeout_ms = -1, .retry = r };
    aw_task_t *a = NULL, *b = NULL;
    char err[200];
    assert_int_equal(aw_task_create(f->e, &spec, &a, err, sizeof err), 0);
    json_decref(args);
    json_decref(r);
    spec = (aw_task_spec_t){ .kind = "sleep", .queue = "one", .timeout_ms = -1,
                             .args = args = json_pack("{s:f}", "seconds", 2.0) };
    assert_int_equal(aw_task_create(f->e, &spec, &b, err, sizeof err), 0);
    json_decref(args);
    assert_int_equal(b->state, AW_PENDING);
    advance(f, 1000);                       /* a fails: b takes the slot */
    assert_int_equal(a->state, AW_PENDING);
    assert_int_equal(b->state, AW_RUNNING);
    advance(f, 2000);                       /* b done; a still waits */
    assert_int_equal(b->state, AW_SUCCEEDED);
    assert_int_equal(a->state, AW_PENDING);
    advance(f, 3000);
    assert_int_equal(a->state, AW_RUNNING);
}

static void interrupt_at_shutdown_goes_back_to_pending(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 10, NULL, "{\"attempts\":2,\"backoff\":100}", -1);
    aw_task_t *u = create(f, 10, NULL, "{\"attempts\":1}", -1);
    aw_task_ref(t);
    aw_waiter_t *w = NULL;
    assert_int_equal(aw_wait(f->e, &t, 1, AW_RETURN_ALL, -1, false, waited, f, &w), 0);
    assert_int_equal(aw_engine_interrupt_all(f->e), 0);
    assert_int_equal(t->state, AW_PENDING);
    assert_int_equal(aw_task_retry(t)->last_error_type, AW_ERR_INTERRUPTED);
    assert_int_equal(aw_task_retry(t)->retry_at, 0);    /* no wait: the restart is one */
    assert_int_equal(f->fired, 1);          /* the shutdown's wait is answered */
    assert_int_equal(u->state, AW_FAILED);  /* no attempt left */
    assert_int_equal(u->error_type, AW_ERR_INTERRUPTED);
    aw_task_unref(t);
}

/* ---- restarts ---- */

static void restart_resumes_the_backoff_by_the_wall_clock(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 1, "boom", "{\"attempts\":3,\"backoff\":10}", -1);
    advance(f, 1000);
    assert_int_equal(t->state, AW_PENDING);
    aw_task_record_t r;
    aw_task_record_of(t, wall_now, &r);
    assert_non_null(r.retry);
    assert_int_equal(r.attempt, 2);
    assert_int_equal(r.last_error_type, AW_ERR_TASK);
    assert_string_equal(r.last_error_message, "boom");
    assert_int_equal(r.retry_at, wall_now + 10000);
    /* Another daemon, 4 s later: 6 s of the backoff are left. */
    aw_engine_t *b = engine(f);
    wall_now += 4000;
    mono_now += 123456;
    aw_engine_begin_restore(b);
    aw_task_t *x = NULL;
    char err[200];
    assert_int_equal(aw_engine_restore(b, &r, &x, err, sizeof err), 0);
    aw_engine_end_restore(b);
    assert_int_equal(x->state, AW_PENDING);
    assert_int_equal(aw_task_attempt(x), 2);
    fake_clock_advance(b, 5999);
    assert_int_equal(x->state, AW_PENDING);
    fake_clock_advance(b, 1);
    assert_int_equal(x->state, AW_RUNNING);
    json_t *o = object_of(x);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "last_error"),
                                                          "message")), "boom");
    json_decref(o);
    fake_clock_advance(b, 1000);
    assert_int_equal(x->state, AW_PENDING);
    assert_int_equal(aw_task_attempt(x), 3);
    aw_engine_free(b);
}

static void restart_sends_a_running_task_with_attempts_left_back_to_pending(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, 5, NULL, "{\"attempts\":2}", -1);
    aw_task_t *u = create(f, 5, NULL, "{\"attempts\":1}", -1);
    aw_task_record_t rt, ru;
    aw_task_record_of(t, wall_now, &rt);
    aw_task_record_of(u, wall_now, &ru);
    assert_int_equal(rt.state, AW_RUNNING);
    aw_engine_t *b = engine(f);
    aw_engine_begin_restore(b);
    aw_task_t *x = NULL, *y = NULL;
    char err[200];
    assert_int_equal(aw_engine_restore(b, &rt, &x, err, sizeof err), 0);
    assert_int_equal(aw_engine_restore(b, &ru, &y, err, sizeof err), 0);
    assert_int_equal(x->state, AW_PENDING);
    assert_int_equal(y->state, AW_FAILED);
    assert_int_equal(y->error_type, AW_ERR_INTERRUPTED);
    aw_engine_end_restore(b);
    assert_int_equal(x->state, AW_RUNNING);     /* at once: no backoff */
    assert_int_equal(aw_task_attempt(x), 2);
    assert_int_equal(aw_task_retry(x)->last_error_type, AW_ERR_INTERRUPTED);
    fake_clock_advance(b, 5000);
    assert_int_equal(x->state, AW_SUCCEEDED);
    aw_engine_free(b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(policy_defaults_and_delays),
        T(bad_policies_are_refused_and_create_nothing),
        T(no_policy_is_one_attempt),
        T(failures_are_retried_with_backoff_until_the_last_attempt),
        T(success_on_a_later_attempt_ends_succeeded),
        T(a_cancel_is_never_retried),
        T(a_cancel_during_the_backoff_ends_it_for_good),
        T(a_zero_backoff_retries_inside_the_same_turn),
        T(a_queue_slot_is_given_back_during_the_backoff),
        T(interrupt_at_shutdown_goes_back_to_pending),
        T(restart_resumes_the_backoff_by_the_wall_clock),
        T(restart_sends_a_running_task_with_attempts_left_back_to_pending),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
