/*
 * test_engine.c — the task engine (lib/engine.c) driven through its public
 * API with the `sleep` kind, on a real event base and a fake clock: the test
 * moves time and calls aw_engine_run_due, so nothing sleeps and no loop runs
 * (except in the one test that checks the loop's own timer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

#define T0_WALL 1700000000000LL         /* 2023-11-14T22:13:20.000Z */
#define RETENTION_MS 60000


struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

static aw_engine_t *engine(struct event_base *base, uint64_t max_tasks, int64_t retention_ms)
{
    aw_engine_limits_t lim = { .max_tasks = max_tasks, .retention_ms = retention_ms };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_http, false), 0);
    return e;
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->e = engine(f->base, 0, RETENTION_MS);
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

/* Replaces the fixture's engine by one with other limits. */
static void reopen(struct fx *f, uint64_t max_tasks, int64_t retention_ms)
{
    aw_engine_free(f->e);
    f->e = engine(f->base, max_tasks, retention_ms);
}

/* Moves both clocks forward and lets the engine handle what is due. */
static void advance(struct fx *f, int64_t ms)
{
    fake_clock_advance(f->e, ms);
}

static json_t *sleep_args(double seconds)
{
    json_t *a = json_pack("{s:f}", "seconds", seconds);
    assert_non_null(a);
    return a;
}

/* aw_task_create, with args taken over (decref'd) and err kept. */
static int try_create(struct fx *f, const char *kind, json_t *args, const char *queue,
                      int64_t timeout_ms, aw_task_t **out, char *err, size_t errlen)
{
    aw_task_spec_t spec = {
        .kind = kind, .args = args, .queue = queue, .timeout_ms = timeout_ms,
    };
    int rc = aw_task_create(f->e, &spec, out, err, errlen);
    json_decref(args);
    return rc;
}

static aw_task_t *create_spec(struct fx *f, const aw_task_spec_t *spec)
{
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, spec, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("create failed: %d %s: %s", rc, aw_strerror(rc), err);
    assert_non_null(t);
    return t;
}

/* A sleep task in `queue` (NULL: default) with a timeout (-1: none). */
static aw_task_t *sleep_in(struct fx *f, double seconds, const char *queue, int64_t timeout_ms)
{
    aw_task_spec_t spec = {
        .kind = "sleep", .args = sleep_args(seconds), .queue = queue,
        .timeout_ms = timeout_ms,
    };
    aw_task_t *t = create_spec(f, &spec);
    json_decref(spec.args);
    return t;
}

static aw_task_t *sleep_task(struct fx *f, double seconds)
{
    return sleep_in(f, seconds, NULL, -1);
}

/* A task of kind sleep with these args (taken over). */
static aw_task_t *sleep_with(struct fx *f, json_t *args)
{
    assert_non_null(args);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .timeout_ms = -1 };
    aw_task_t *t = create_spec(f, &spec);
    json_decref(args);
    return t;
}

static void set_queue(struct fx *f, const char *name, uint32_t concurrency)
{
    assert_int_equal(aw_engine_set_queue(f->e, name, concurrency), 0);
}

static aw_kind_stats_t *sleep_stats(aw_engine_stats_t *st)
{
    for (size_t i = 0; i < st->nkinds; i++)
        if (strcmp(st->kinds[i].kind->name, "sleep") == 0)
            return &st->kinds[i];
    fail_msg("no stats for kind sleep");
    return NULL;
}

/* ---- running a sleep ---- */

static void created_sleep_is_running_at_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 2);
    assert_int_equal(t->state, AW_RUNNING);
    assert_false(aw_task_done(t));
    assert_int_equal(t->started_at, T0_WALL);
    assert_int_equal(t->finished_at, 0);
    assert_int_equal(aw_task_created_at(t), T0_WALL);
    assert_true(aw_task_id_valid(t->id));
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
}

static void sleep_succeeds_at_exactly_its_seconds_with_result(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_with(f, json_pack("{s:i,s:{s:i,s:s}}", "seconds", 2,
                                            "result", "n", 1, "s", "ok"));
    advance(f, 1999);
    assert_int_equal(t->state, AW_RUNNING);
    assert_null(t->result);
    advance(f, 1);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_true(aw_task_done(t));
    assert_string_equal(t->result, "{\"n\":1,\"s\":\"ok\"}");
    assert_int_equal(t->error_type, AW_ERR_NONE);
    assert_int_equal(t->finished_at, T0_WALL + 2000);
}

static void sleep_result_may_be_any_json(void **state)
{
    struct fx *f = *state;
    aw_task_t *s = sleep_with(f, json_pack("{s:i,s:s}", "seconds", 0, "result", "text"));
    aw_task_t *n = sleep_with(f, json_pack("{s:i,s:f}", "seconds", 0, "result", 2.5));
    aw_task_t *a = sleep_with(f, json_pack("{s:i,s:[i,b]}", "seconds", 0, "result", 1, 1));
    assert_string_equal(s->result, "\"text\"");
    assert_string_equal(n->result, "2.5");
    assert_string_equal(a->result, "[1,true]");
}

static void sleep_without_result_succeeds_with_null_result(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 1);
    aw_task_t *n = sleep_with(f, json_pack("{s:i,s:n}", "seconds", 1, "result"));
    advance(f, 1000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_null(t->result);
    assert_int_equal(n->state, AW_SUCCEEDED);
    assert_null(n->result);
}

static void fractional_seconds_wake_at_the_millisecond(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleep_task(f, 1.5);
    aw_task_t *b = sleep_task(f, 0.001);
    advance(f, 1);
    assert_int_equal(b->state, AW_SUCCEEDED);
    advance(f, 1498);
    assert_int_equal(a->state, AW_RUNNING);
    advance(f, 1);
    assert_int_equal(a->state, AW_SUCCEEDED);
}

/* 2.007 * 1000 is 2007.0000000000002 in binary floating point; a sleep of
 * 2.007 s must still end at 2007 ms, not a millisecond late. */
static void sleep_of_2_007_seconds_ends_at_2007_ms(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 2.007);
    advance(f, 2006);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1);
    assert_int_equal(t->state, AW_SUCCEEDED);
}

static void zero_second_sleep_finishes_inside_create(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_with(f, json_pack("{s:i,s:s}", "seconds", 0, "result", "now"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_string_equal(t->result, "\"now\"");
    assert_int_equal(t->started_at, T0_WALL);
    assert_int_equal(t->finished_at, T0_WALL);
}

static void sleep_with_fail_ends_failed_with_task_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_with(f, json_pack("{s:i,s:s,s:s}", "seconds", 1,
                                            "fail", "disk on fire", "result", "unused"));
    advance(f, 1000);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_TASK);
    assert_string_equal(aw_error_type_name(t->error_type), "task_error");
    assert_string_equal(aw_task_error_message(t), "disk on fire");
    assert_null(t->result);
    assert_int_equal(t->finished_at, T0_WALL + 1000);
}

/* ---- cancel ---- */

static void cancel_of_a_running_sleep_cancels_at_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 10);
    advance(f, 300);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->error_type, AW_ERR_CANCELLED);
    assert_non_null(aw_task_error_message(t));
    assert_int_equal(t->finished_at, T0_WALL + 300);
}

static void second_cancel_is_already_done(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 10);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(aw_task_cancel(f->e, t), AW_EDONE);
    assert_int_equal(t->state, AW_CANCELLED);
}

static void cancelled_sleep_never_wakes(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_with(f, json_pack("{s:i,s:s}", "seconds", 1, "result", "late"));
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    advance(f, 5000);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_null(t->result);
    assert_int_equal(t->finished_at, T0_WALL);
}

static void cancel_of_a_finished_task_is_already_done(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 1);
    advance(f, 1000);
    assert_int_equal(aw_task_cancel(f->e, t), AW_EDONE);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(t->error_type, AW_ERR_NONE);
}

/* ---- task timeout ---- */

static void timeout_before_the_sleep_ends_times_out(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_in(f, 10, NULL, 2000);
    advance(f, 1999);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1);
    assert_int_equal(t->state, AW_TIMED_OUT);
    assert_int_equal(t->error_type, AW_ERR_TIMEOUT);
    assert_string_equal(aw_error_type_name(t->error_type), "timeout");
    assert_non_null(aw_task_error_message(t));
    assert_int_equal(t->finished_at, T0_WALL + 2000);
    advance(f, 10000);                  /* the sleep's end changes nothing */
    assert_int_equal(t->state, AW_TIMED_OUT);
    assert_int_equal(aw_task_cancel(f->e, t), AW_EDONE);
}

static void timeout_after_the_sleep_ends_keeps_success(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_in(f, 1, NULL, 5000);
    advance(f, 1000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    advance(f, 10000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(t->error_type, AW_ERR_NONE);
}

/* The contract measures the timeout from the moment the task starts
 * running, not from its creation. */
static void timeout_counts_from_start_not_creation(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *first = sleep_in(f, 2, "one", -1);
    aw_task_t *t = sleep_in(f, 1, "one", 1500);
    assert_int_equal(t->state, AW_PENDING);
    advance(f, 2000);
    assert_int_equal(first->state, AW_SUCCEEDED);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1000);                   /* 3000 after creation, 1000 after start */
    assert_int_equal(t->state, AW_SUCCEEDED);
}

/* ---- queues ---- */

static void queue_concurrency_limits_running_tasks_in_fifo_order(void **state)
{
    struct fx *f = *state;
    set_queue(f, "two", 2);
    aw_task_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = sleep_in(f, 1, "two", -1);
    const int want[4][5] = {
        { AW_RUNNING, AW_RUNNING, AW_PENDING, AW_PENDING, AW_PENDING },
        { AW_SUCCEEDED, AW_SUCCEEDED, AW_RUNNING, AW_RUNNING, AW_PENDING },
        { AW_SUCCEEDED, AW_SUCCEEDED, AW_SUCCEEDED, AW_SUCCEEDED, AW_RUNNING },
        { AW_SUCCEEDED, AW_SUCCEEDED, AW_SUCCEEDED, AW_SUCCEEDED, AW_SUCCEEDED },
    };
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < 5; i++)
            if (t[i]->state != want[step][i])
                fail_msg("after %d s task %d is %s, want %s", step, i,
                         aw_task_state_name(t[i]->state),
                         aw_task_state_name(want[step][i]));
        advance(f, 1000);
    }
    assert_int_equal(t[2]->started_at, T0_WALL + 1000);
    assert_int_equal(t[4]->started_at, T0_WALL + 2000);
}

static void pending_task_has_not_started(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    sleep_in(f, 1, "one", -1);
    aw_task_t *t = sleep_in(f, 1, "one", -1);
    assert_int_equal(t->state, AW_PENDING);
    assert_false(aw_task_done(t));
    assert_int_equal(t->started_at, 0);
    assert_int_equal(t->finished_at, 0);
}

static void cancel_of_a_pending_task_leaves_the_queue_and_others_run(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *a = sleep_in(f, 1, "one", -1);
    aw_task_t *b = sleep_in(f, 1, "one", -1);
    aw_task_t *c = sleep_in(f, 1, "one", -1);
    assert_int_equal(aw_task_cancel(f->e, b), 0);
    assert_int_equal(b->state, AW_CANCELLED);
    assert_int_equal(b->error_type, AW_ERR_CANCELLED);
    assert_int_equal(b->started_at, 0);
    assert_int_equal(a->queue->npending, 1);
    advance(f, 1000);
    assert_int_equal(a->state, AW_SUCCEEDED);
    assert_int_equal(b->state, AW_CANCELLED);
    assert_int_equal(c->state, AW_RUNNING);
    advance(f, 1000);
    assert_int_equal(c->state, AW_SUCCEEDED);
    assert_int_equal(b->started_at, 0);
}

static void cancel_of_a_running_task_starts_the_next_pending(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *a = sleep_in(f, 5, "one", -1);
    aw_task_t *b = sleep_in(f, 1, "one", -1);
    advance(f, 100);
    assert_int_equal(aw_task_cancel(f->e, a), 0);
    assert_int_equal(b->state, AW_RUNNING);
    assert_int_equal(b->started_at, T0_WALL + 100);
    advance(f, 1000);
    assert_int_equal(b->state, AW_SUCCEEDED);
}

static void timed_out_task_frees_its_queue_slot(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *a = sleep_in(f, 5, "one", 500);
    aw_task_t *b = sleep_in(f, 1, "one", -1);
    advance(f, 500);
    assert_int_equal(a->state, AW_TIMED_OUT);
    assert_int_equal(b->state, AW_RUNNING);
}

/* A long line of instant tasks behind a busy slot all run when it frees. */
static void queued_zero_second_sleeps_all_finish(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *first = sleep_in(f, 1, "one", -1);
    enum { N = 2000 };
    aw_task_t *t[N];
    for (int i = 0; i < N; i++)
        t[i] = sleep_in(f, 0, "one", -1);
    assert_int_equal(t[N - 1]->state, AW_PENDING);
    advance(f, 1000);
    assert_int_equal(first->state, AW_SUCCEEDED);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i]->state, AW_SUCCEEDED);
    assert_int_equal(first->queue->running, 0);
    assert_int_equal(first->queue->npending, 0);
}

static void default_queue_is_unlimited(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[100];
    for (int i = 0; i < 100; i++)
        t[i] = sleep_task(f, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(t[i]->state, AW_RUNNING);
    assert_string_equal(t[0]->queue->name, "default");
}

static void set_queue_changes_an_existing_queue(void **state)
{
    struct fx *f = *state;
    set_queue(f, "q", 1);
    set_queue(f, "q", 3);
    aw_task_t *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = sleep_in(f, 1, "q", -1);
    assert_int_equal(t[2]->state, AW_RUNNING);
    assert_int_equal(t[3]->state, AW_PENDING);
}

/* ---- refusals ---- */

static void capacity_refuses_until_a_task_finishes(void **state)
{
    struct fx *f = *state;
    reopen(f, 2, RETENTION_MS);
    aw_task_t *a = sleep_task(f, 1);
    sleep_task(f, 2);
    aw_task_t *t = NULL;
    char err[256] = "";
    assert_int_equal(try_create(f, "sleep", sleep_args(1), NULL, -1, &t, err, sizeof err),
                     AW_ECAPACITY);
    assert_null(t);
    assert_true(err[0] != '\0');
    advance(f, 1000);
    assert_int_equal(a->state, AW_SUCCEEDED);
    assert_int_equal(try_create(f, "sleep", sleep_args(1), NULL, -1, &t, err, sizeof err), 0);
    assert_non_null(t);
}

static void capacity_counts_pending_tasks_and_cancel_frees_a_slot(void **state)
{
    struct fx *f = *state;
    reopen(f, 2, RETENTION_MS);
    set_queue(f, "one", 1);
    sleep_in(f, 5, "one", -1);
    aw_task_t *pending = sleep_in(f, 5, "one", -1);
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(try_create(f, "sleep", sleep_args(1), NULL, -1, &t, err, sizeof err),
                     AW_ECAPACITY);
    assert_int_equal(aw_task_cancel(f->e, pending), 0);
    assert_int_equal(try_create(f, "sleep", sleep_args(1), NULL, -1, &t, err, sizeof err), 0);
}

/* The task list after a refused create: nothing was added. */
static void assert_no_tasks(struct fx *f)
{
    assert_null(aw_task_after(f->e, NULL));
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    for (int s = 0; s < AW_NSTATES; s++)
        assert_int_equal(st.held[s], 0);
}

static void unknown_kind_is_refused(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = NULL;
    char err[256] = "";
    assert_int_equal(try_create(f, "teleport", sleep_args(1), NULL, -1, &t, err, sizeof err),
                     AW_EKIND);
    assert_null(t);
    assert_non_null(strstr(err, "teleport"));
    assert_no_tasks(f);
}

static void unknown_queue_is_refused(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = NULL;
    char err[256] = "";
    assert_int_equal(try_create(f, "sleep", sleep_args(1), "nowhere", -1, &t, err, sizeof err),
                     AW_EQUEUE);
    assert_null(t);
    assert_non_null(strstr(err, "nowhere"));
    assert_no_tasks(f);
}

static void disabled_kind_is_refused(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = NULL;
    char err[256] = "";
    assert_false(aw_engine_kind_enabled(f->e, "http"));
    assert_true(aw_engine_kind_enabled(f->e, "sleep"));
    assert_false(aw_engine_kind_enabled(f->e, "teleport"));
    json_t *args = json_pack("{s:s}", "url", "http://127.0.0.1/");
    assert_int_equal(try_create(f, "http", args, NULL, -1, &t, err, sizeof err), AW_EDISABLED);
    assert_null(t);
    assert_true(err[0] != '\0');
    assert_no_tasks(f);
}

static void disabled_sleep_is_refused(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, false), 0);
    assert_false(aw_engine_kind_enabled(f->e, "sleep"));
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(try_create(f, "sleep", sleep_args(1), NULL, -1, &t, err, sizeof err),
                     AW_EDISABLED);
    assert_no_tasks(f);
}

/* The shape of a request is checked before whether its kind is enabled. */
static void malformed_args_to_a_disabled_kind_are_invalid_first(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = NULL;
    char err[256] = "";
    json_t *args = json_pack("{s:i}", "url", 80);
    assert_int_equal(try_create(f, "http", args, NULL, -1, &t, err, sizeof err), AW_EINVAL);
    assert_non_null(strstr(err, "url"));
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, false), 0);
    assert_int_equal(try_create(f, "sleep", json_pack("{}"), NULL, -1, &t, err, sizeof err),
                     AW_EINVAL);
    assert_null(t);
    assert_no_tasks(f);
}

static void bad_sleep_args_are_invalid(void **state)
{
    struct fx *f = *state;
    json_t *bad[] = {
        json_pack("{}"),
        json_pack("{s:i}", "seconds", -1),
        json_pack("{s:s}", "seconds", "1"),
        json_pack("{s:n}", "seconds"),
        json_pack("{s:i,s:i}", "seconds", 1, "fail", 7),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aw_task_t *t = NULL;
        char err[256] = "";
        assert_non_null(bad[i]);
        int rc = try_create(f, "sleep", bad[i], NULL, -1, &t, err, sizeof err);
        if (rc != AW_EINVAL)
            fail_msg("bad args %zu: got %d, want AW_EINVAL", i, rc);
        assert_true(err[0] != '\0');
        assert_null(t);
    }
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(try_create(f, "sleep", NULL, NULL, -1, &t, err, sizeof err), AW_EINVAL);
    assert_no_tasks(f);
}

static void add_kind_refuses_beyond_the_maximum(void **state)
{
    struct fx *f = *state;
    static aw_kind_t kinds[AW_MAX_KINDS];
    static char names[AW_MAX_KINDS][8];
    int added = 2;                      /* sleep and http, by setup */
    for (int i = 0; i < AW_MAX_KINDS; i++) {
        kinds[i] = aw_kind_sleep;
        snprintf(names[i], sizeof names[i], "k%d", i);
        kinds[i].name = names[i];
        int rc = aw_engine_add_kind(f->e, &kinds[i], true);
        if (added < AW_MAX_KINDS) {
            assert_int_equal(rc, 0);
            added++;
        } else {
            assert_int_equal(rc, -ENOSPC);
        }
    }
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.nkinds, AW_MAX_KINDS);
}

/* ---- forgetting ---- */

static void finished_task_is_forgotten_after_retention(void **state)
{
    struct fx *f = *state;
    reopen(f, 0, 5000);
    aw_task_t *t = sleep_task(f, 1);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    advance(f, 1000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    advance(f, 4999);
    assert_ptr_equal(aw_task_find(f->e, id), t);
    advance(f, 1);
    assert_null(aw_task_find(f->e, id));
    assert_null(aw_task_after(f->e, NULL));
}

static void running_task_is_not_forgotten_by_retention(void **state)
{
    struct fx *f = *state;
    reopen(f, 0, 100);
    aw_task_t *t = sleep_task(f, 10);
    advance(f, 5000);
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
    assert_int_equal(t->state, AW_RUNNING);
}

/* With no retention a task that ends inside create is still readable when
 * create returns; the next run of deadlines forgets it. */
static void zero_retention_keeps_a_task_until_deadlines_run(void **state)
{
    struct fx *f = *state;
    reopen(f, 0, 0);
    aw_task_t *t = sleep_with(f, json_pack("{s:i,s:s}", "seconds", 0, "result", "r"));
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_string_equal(t->result, "\"r\"");
    assert_ptr_equal(aw_task_find(f->e, id), t);
    advance(f, 0);
    assert_null(aw_task_find(f->e, id));
}

static void forget_of_an_active_task_is_refused(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *running = sleep_in(f, 1, "one", -1);
    aw_task_t *pending = sleep_in(f, 1, "one", -1);
    assert_int_equal(aw_task_forget(f->e, running), AW_EACTIVE);
    assert_int_equal(aw_task_forget(f->e, pending), AW_EACTIVE);
    assert_ptr_equal(aw_task_find(f->e, running->id), running);
    assert_ptr_equal(aw_task_find(f->e, pending->id), pending);
    advance(f, 1000);
    advance(f, 1000);
    assert_int_equal(pending->state, AW_SUCCEEDED);
}

static void forget_of_a_finished_task_removes_it(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleep_task(f, 1);
    aw_task_t *b = sleep_task(f, 1);
    advance(f, 1000);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, a->id, sizeof id);
    assert_int_equal(aw_task_forget(f->e, a), 0);
    assert_null(aw_task_find(f->e, id));
    assert_ptr_equal(aw_task_after(f->e, NULL), b);
    advance(f, RETENTION_MS);           /* its retention deadline went too */
    assert_null(aw_task_after(f->e, NULL));
}

/* ---- listing, stats, idempotency ---- */

static void tasks_are_listed_in_creation_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = sleep_task(f, 0);
        if (i % 2)
            advance(f, 1);
    }
    assert_ptr_equal(aw_task_after(f->e, NULL), t[0]);
    for (int i = 0; i < 3; i++) {
        assert_true(strcmp(t[i]->id, t[i + 1]->id) < 0);
        assert_ptr_equal(aw_task_next(t[i]), t[i + 1]);
        assert_ptr_equal(aw_task_after(f->e, t[i]->id), t[i + 1]);
    }
    assert_null(aw_task_next(t[3]));
    char gone[AW_TASK_ID_SIZE];
    memcpy(gone, t[1]->id, sizeof gone);
    assert_int_equal(aw_task_forget(f->e, t[1]), 0);
    assert_ptr_equal(aw_task_after(f->e, gone), t[2]);
}

static void stats_count_held_tasks_by_state(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    aw_task_t *a = sleep_in(f, 1, "one", -1);
    aw_task_t *b = sleep_in(f, 1, "one", -1);
    sleep_in(f, 1, "one", -1);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_RUNNING], 1);
    assert_int_equal(st.held[AW_PENDING], 2);
    aw_task_cancel(f->e, b);
    advance(f, 1000);
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_PENDING], 0);
    assert_int_equal(st.held[AW_RUNNING], 1);
    assert_int_equal(st.held[AW_SUCCEEDED], 1);
    assert_int_equal(st.held[AW_CANCELLED], 1);
    assert_int_equal(aw_task_forget(f->e, a), 0);
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_SUCCEEDED], 0);
    advance(f, 1000);
    advance(f, RETENTION_MS);           /* everything is forgotten */
    aw_engine_stats(f->e, &st);
    for (int s = 0; s < AW_NSTATES; s++)
        assert_int_equal(st.held[s], 0);
}

static void stats_count_created_and_finished_per_kind(void **state)
{
    struct fx *f = *state;
    aw_task_t *c = sleep_task(f, 5);
    sleep_task(f, 1);
    sleep_with(f, json_pack("{s:i,s:s}", "seconds", 1, "fail", "no"));
    sleep_in(f, 5, NULL, 2000);
    aw_task_t *t = NULL;
    char err[256];
    try_create(f, "sleep", json_pack("{}"), NULL, -1, &t, err, sizeof err);   /* refused */
    aw_task_cancel(f->e, c);
    advance(f, 2000);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    aw_kind_stats_t *ks = sleep_stats(&st);
    assert_true(ks->enabled);
    assert_int_equal(ks->created, 4);
    assert_int_equal(ks->finished[AW_SUCCEEDED], 1);
    assert_int_equal(ks->finished[AW_FAILED], 1);
    assert_int_equal(ks->finished[AW_CANCELLED], 1);
    assert_int_equal(ks->finished[AW_TIMED_OUT], 1);
    advance(f, RETENTION_MS);           /* forgetting keeps the totals */
    aw_engine_stats(f->e, &st);
    assert_int_equal(sleep_stats(&st)->created, 4);
    assert_int_equal(sleep_stats(&st)->finished[AW_SUCCEEDED], 1);
}

static void idempotency_key_finds_the_task_until_it_is_forgotten(void **state)
{
    struct fx *f = *state;
    aw_task_spec_t spec = {
        .kind = "sleep", .args = sleep_args(1), .timeout_ms = -1,
        .idempotency_key = "order-42",
    };
    aw_task_t *t = create_spec(f, &spec);
    json_decref(spec.args);
    sleep_task(f, 1);
    assert_ptr_equal(aw_task_find_idempotent(f->e, "order-42"), t);
    assert_string_equal(aw_task_idempotency_key(t), "order-42");
    assert_null(aw_task_find_idempotent(f->e, "order-43"));
    advance(f, 1000);
    assert_ptr_equal(aw_task_find_idempotent(f->e, "order-42"), t);
    assert_int_equal(aw_task_forget(f->e, t), 0);
    assert_null(aw_task_find_idempotent(f->e, "order-42"));
}

static void refused_create_does_not_take_the_key(void **state)
{
    struct fx *f = *state;
    aw_task_spec_t spec = {
        .kind = "sleep", .args = NULL, .timeout_ms = -1, .idempotency_key = "k",
    };
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EINVAL);
    assert_null(aw_task_find_idempotent(f->e, "k"));
}

static void task_keeps_what_it_was_created_with(void **state)
{
    struct fx *f = *state;
    set_queue(f, "batch", 0);
    aw_task_spec_t spec = {
        .kind = "sleep",
        .args = json_pack("{s:f,s:{s:[i,i]}}", "seconds", 1.5, "result", "xs", 1, 2),
        .name = "nightly \"backup\"", .queue = "batch", .timeout_ms = 2500,
    };
    aw_task_t *t = create_spec(f, &spec);
    json_decref(spec.args);
    assert_string_equal(t->kind->name, "sleep");
    assert_string_equal(aw_task_name(t), "nightly \"backup\"");
    assert_string_equal(t->queue->name, "batch");
    assert_int_equal(t->timeout_ms, 2500);
    assert_null(aw_task_idempotency_key(t));
    json_t *args = json_loads(t->args, 0, NULL);
    json_t *want = json_pack("{s:f,s:{s:[i,i]}}", "seconds", 1.5, "result", "xs", 1, 2);
    assert_non_null(args);
    assert_true(json_equal(args, want));
    json_decref(args);
    json_decref(want);
    aw_task_t *plain = sleep_task(f, 1);
    assert_null(aw_task_name(plain));
    assert_int_equal(plain->timeout_ms, -1);
}

/* ---- the loop, and shutdown ---- */

/* The daemon never calls aw_engine_run_due itself: the engine's libevent
 * timer must fire for the earliest deadline. */
static void loop_timer_runs_due_deadlines(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleep_task(f, 0.02);
    mono_now += 20;                     /* due by the fake clock... */
    wall_now += 20;
    /* ...and the timer was armed for 20 real ms: one loop pass fires it. */
    for (int i = 0; i < 50 && t->state == AW_RUNNING; i++)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(t->state, AW_SUCCEEDED);
}

/* Freeing an engine releases tasks in every state (ASan's leak checker
 * proves it). */
static void engine_free_releases_tasks_in_every_state(void **state)
{
    struct fx *f = *state;
    set_queue(f, "one", 1);
    sleep_in(f, 5, "one", 1000);
    sleep_in(f, 5, "one", -1);
    sleep_with(f, json_pack("{s:i,s:s}", "seconds", 0, "result", "x"));
    sleep_with(f, json_pack("{s:i,s:s}", "seconds", 0, "fail", "x"));
    aw_task_spec_t spec = {
        .kind = "sleep", .args = sleep_args(9), .name = "n", .timeout_ms = -1,
        .idempotency_key = "k",
    };
    create_spec(f, &spec);
    json_decref(spec.args);
    aw_engine_free(f->e);
    f->e = NULL;
}

/* ---- the memory budget (max_task_bytes, max_result_bytes) ---- */

static void reopen_limits(struct fx *f, const aw_engine_limits_t *lim)
{
    aw_engine_free(f->e);
    f->e = aw_engine_new(f->base, lim);
    assert_non_null(f->e);
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, true), 0);
}

/* A sleep whose result is a string of n bytes. */
static json_t *big_args(double seconds, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'x', n);
    s[n] = '\0';
    json_t *a = json_pack("{s:f,s:s}", "seconds", seconds, "result", s);
    free(s);
    assert_non_null(a);
    return a;
}

static uint64_t held_bytes(struct fx *f)
{
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    return st.held_bytes;
}

static void held_bytes_count_args_then_result_and_come_back_at_forget(void **state)
{
    struct fx *f = *state;
    assert_int_equal(held_bytes(f), 0);
    aw_task_t *t = sleep_with(f, big_args(1, 100000));
    uint64_t running = held_bytes(f);
    assert_int_equal(running, t->bytes);
    assert_int_equal(running, aw_task_bytes(t));
    /* Its args, and room for the result they hold: a sleep counts its
     * result from its create on. */
    assert_true(running > 200000 && running < 200000 + 1024);
    aw_task_t *u = sleep_task(f, 1);
    uint64_t both = held_bytes(f);
    assert_int_equal(both, running + u->bytes);
    advance(f, 1000);                   /* both finish: t keeps a 100 kB result */
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_true(t->bytes > 200000 && t->bytes < running + 1024);
    assert_int_equal(held_bytes(f), t->bytes + u->bytes);
    assert_int_equal(aw_task_forget(f->e, t), 0);
    assert_int_equal(held_bytes(f), u->bytes);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, u->id, sizeof id);
    advance(f, RETENTION_MS);           /* retention forgets u */
    assert_null(aw_task_find(f->e, id));
    assert_int_equal(held_bytes(f), 0);
}

static void budget_refuses_a_create_until_a_task_is_forgotten(void **state)
{
    struct fx *f = *state;
    aw_engine_limits_t lim = { .retention_ms = RETENTION_MS, .max_task_bytes = 1 << 20 };
    reopen_limits(f, &lim);
    aw_task_t *t[8];
    int n = 0;
    char err[256] = "";
    int rc;
    /* Zero-second sleeps of 100 kB results: about 200 kB each, held. */
    for (;;) {
        aw_task_t *x = NULL;
        rc = try_create(f, "sleep", big_args(0, 100000), NULL, -1, &x, err, sizeof err);
        if (rc != 0)
            break;
        assert_true(n < 8);
        t[n++] = x;
        assert_int_equal(x->state, AW_SUCCEEDED);
    }
    assert_int_equal(rc, AW_EBUDGET);
    assert_non_null(strstr(err, "max_task_bytes"));
    assert_true(n >= 4);
    assert_true(held_bytes(f) <= lim.max_task_bytes);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_SUCCEEDED], n);
    assert_int_equal(sleep_stats(&st)->created, n);     /* the refusal left no trace */
    /* A small task does not fit either while the big ones fill it... */
    uint64_t before = held_bytes(f);
    aw_task_t *x = NULL;
    rc = try_create(f, "sleep", big_args(0, 300000), NULL, -1, &x, err, sizeof err);
    assert_int_equal(rc, AW_EBUDGET);
    assert_int_equal(held_bytes(f), before);
    /* ...and forgetting one gives its bytes back. */
    assert_int_equal(aw_task_forget(f->e, t[0]), 0);
    assert_int_equal(aw_task_forget(f->e, t[1]), 0);
    assert_true(held_bytes(f) < before - 400000);
    x = sleep_with(f, big_args(0, 100000));
    assert_int_equal(x->state, AW_SUCCEEDED);
}

static void budget_of_zero_is_no_budget(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 20; i++)
        sleep_with(f, big_args(0, 100000));
    assert_true(held_bytes(f) > 20 * 200000);
}

static void result_over_max_result_bytes_is_refused_at_create(void **state)
{
    struct fx *f = *state;
    aw_engine_limits_t lim = { .retention_ms = RETENTION_MS, .max_result_bytes = 1000 };
    reopen_limits(f, &lim);
    char err[256] = "";
    aw_task_t *x = NULL;
    /* The compact JSON of the result: 998 bytes of text and its quotes. */
    aw_task_t *t = sleep_with(f, big_args(0, 998));
    assert_int_equal(strlen(t->result), 1000);
    assert_int_equal(try_create(f, "sleep", big_args(0, 999), NULL, -1, &x, err, sizeof err),
                     AW_ETOOBIG);
    assert_non_null(strstr(err, "max_result_bytes"));
    /* Big args are fine when the result is small. */
    json_t *a = big_args(0, 10);
    char *s = calloc(1, 5001);
    memset(s, 'p', 5000);
    json_object_set_new(a, "note", json_string(s));
    free(s);
    sleep_with(f, a);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(sleep_stats(&st)->created, 2);
}

static void discarded_create_gives_its_bytes_back(void **state)
{
    struct fx *f = *state;
    aw_task_spec_t spec = { .kind = "sleep", .args = big_args(5, 50000), .timeout_ms = -1,
                            .hold = true };
    aw_task_t *t = create_spec(f, &spec);
    json_decref(spec.args);
    assert_true(held_bytes(f) > 50000);
    aw_task_discard(f->e, t);
    assert_int_equal(held_bytes(f), 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(created_sleep_is_running_at_once),
        T(sleep_succeeds_at_exactly_its_seconds_with_result),
        T(sleep_result_may_be_any_json),
        T(sleep_without_result_succeeds_with_null_result),
        T(fractional_seconds_wake_at_the_millisecond),
        T(sleep_of_2_007_seconds_ends_at_2007_ms),
        T(zero_second_sleep_finishes_inside_create),
        T(sleep_with_fail_ends_failed_with_task_error),
        T(cancel_of_a_running_sleep_cancels_at_once),
        T(second_cancel_is_already_done),
        T(cancelled_sleep_never_wakes),
        T(cancel_of_a_finished_task_is_already_done),
        T(timeout_before_the_sleep_ends_times_out),
        T(timeout_after_the_sleep_ends_keeps_success),
        T(timeout_counts_from_start_not_creation),
        T(queue_concurrency_limits_running_tasks_in_fifo_order),
        T(pending_task_has_not_started),
        T(cancel_of_a_pending_task_leaves_the_queue_and_others_run),
        T(cancel_of_a_running_task_starts_the_next_pending),
        T(timed_out_task_frees_its_queue_slot),
        T(queued_zero_second_sleeps_all_finish),
        T(default_queue_is_unlimited),
        T(set_queue_changes_an_existing_queue),
        T(capacity_refuses_until_a_task_finishes),
        T(capacity_counts_pending_tasks_and_cancel_frees_a_slot),
        T(unknown_kind_is_refused),
        T(unknown_queue_is_refused),
        T(disabled_kind_is_refused),
        T(disabled_sleep_is_refused),
        T(malformed_args_to_a_disabled_kind_are_invalid_first),
        T(bad_sleep_args_are_invalid),
        T(add_kind_refuses_beyond_the_maximum),
        T(finished_task_is_forgotten_after_retention),
        T(running_task_is_not_forgotten_by_retention),
        T(zero_retention_keeps_a_task_until_deadlines_run),
        T(forget_of_an_active_task_is_refused),
        T(forget_of_a_finished_task_removes_it),
        T(tasks_are_listed_in_creation_order),
        T(stats_count_held_tasks_by_state),
        T(stats_count_created_and_finished_per_kind),
        T(idempotency_key_finds_the_task_until_it_is_forgotten),
        T(refused_create_does_not_take_the_key),
        T(task_keeps_what_it_was_created_with),
        T(loop_timer_runs_due_deadlines),
        T(engine_free_releases_tasks_in_every_state),
        T(held_bytes_count_args_then_result_and_come_back_at_forget),
        T(budget_refuses_a_create_until_a_task_is_forgotten),
        T(budget_of_zero_is_no_budget),
        T(result_over_max_result_bytes_is_refused_at_create),
        T(discarded_create_gives_its_bytes_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
