/*
 * test_waiter.c — waiting on tasks (lib/waiter.c): ALL / FIRST /
 * FIRST_EXCEPTION, timeouts with and without cancellation, repeated tasks,
 * tasks forgotten while a waiter holds them, and abandoning. Uses the
 * engine with the `sleep` kind and a fake clock, like test_engine.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fake_clock.h"
#include "engine.h"
#include "errors.h"

#define T0_WALL 1700000000000LL
#define RETENTION_MS 60000


/* What a callback saw: how often it ran, when, and the tasks' states. */
struct probe {
    int             calls;
    int64_t         at;                 /* mono ms of the last call */
    size_t          n;
    aw_task_t      *tasks[4];
    aw_task_state_t states[4];
    char            ids[4][AW_TASK_ID_SIZE];
    aw_engine_t    *forget_in_cb;       /* forget tasks[0] from the callback */
};

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    struct probe       p;
};

static void on_wait(aw_waiter_t *w, void *arg)
{
    (void)w;
    struct probe *p = arg;
    p->calls++;
    p->at = mono_now;
    for (size_t i = 0; i < p->n; i++) {
        p->states[i] = p->tasks[i]->state;
        memcpy(p->ids[i], p->tasks[i]->id, AW_TASK_ID_SIZE);
    }
    if (p->forget_in_cb)
        assert_int_equal(aw_task_forget(p->forget_in_cb, p->tasks[0]), 0);
}

static aw_engine_t *engine(struct event_base *base, int64_t retention_ms)
{
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = retention_ms };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    return e;
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->e = engine(f->base, RETENTION_MS);
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

static aw_task_t *create(struct fx *f, json_t *args, int64_t timeout_ms)
{
    assert_non_null(args);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .timeout_ms = timeout_ms };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(args);
    if (rc != 0)
        fail_msg("create: %d: %s", rc, err);
    return t;
}

static aw_task_t *sleeper(struct fx *f, int seconds)
{
    return create(f, json_pack("{s:i}", "seconds", seconds), -1);
}

static aw_task_t *failer(struct fx *f, int seconds)
{
    return create(f, json_pack("{s:i,s:s}", "seconds", seconds, "fail", "boom"), -1);
}

/* Starts a wait whose callback fills f->p; the probe records the tasks
 * given (repeats included). Returns aw_wait's code. */
static int wait_on(struct fx *f, aw_task_t **tasks, size_t n, aw_return_when_t rw,
                   int64_t timeout_ms, bool cancel, aw_waiter_t **out)
{
    assert_true(n <= 4);
    f->p.n = n;
    memcpy(f->p.tasks, tasks, n * sizeof *tasks);
    aw_waiter_t *w = NULL;
    int rc = aw_wait(f->e, tasks, n, rw, timeout_ms, cancel, on_wait, &f->p, &w);
    if (rc == 0)
        assert_non_null(w);
    else
        assert_null(w);
    if (out)
        *out = w;
    return rc;
}

static uint64_t open_waiters(struct fx *f)
{
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    return st.waiters;
}

/* ---- nothing to wait for ---- */

static void wait_on_a_done_task_returns_1_without_calling_back(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 0);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 5000, false, NULL), 1);
    assert_int_equal(open_waiters(f), 0);
    advance(f, 10000);
    assert_int_equal(f->p.calls, 0);
}

static void first_completed_with_one_task_done_returns_1(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { sleeper(f, 5), sleeper(f, 0) };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_FIRST, -1, false, NULL), 1);
    assert_int_equal(open_waiters(f), 0);
}

static void first_exception_with_one_task_failed_returns_1(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { sleeper(f, 5), failer(f, 0) };
    assert_int_equal(t[1]->state, AW_FAILED);
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_FIRST_EXCEPTION, -1, false, NULL), 1);
}

static void zero_timeout_returns_1_and_leaves_tasks_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 5);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 0, false, NULL), 1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(open_waiters(f), 0);
    advance(f, 5000);
    assert_int_equal(f->p.calls, 0);
}

/* ---- the three conditions ---- */

static void all_completed_fires_once_when_the_last_task_ends(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[3] = { sleeper(f, 1), sleeper(f, 3), sleeper(f, 2) };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.at, T0_MONO + 3000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->p.states[i], AW_SUCCEEDED);
    advance(f, 10000);
    assert_int_equal(f->p.calls, 1);
}

static void first_completed_fires_once_when_the_first_task_ends(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[3] = { sleeper(f, 3), sleeper(f, 1), sleeper(f, 2) };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_FIRST, -1, false, NULL), 0);
    advance(f, 999);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_RUNNING);
    assert_int_equal(f->p.states[1], AW_SUCCEEDED);
    assert_int_equal(f->p.states[2], AW_RUNNING);
    advance(f, 1000);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
}

static void first_exception_fires_on_the_first_failure(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[3] = { sleeper(f, 1), failer(f, 2), sleeper(f, 3) };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_FIRST_EXCEPTION, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);    /* a success is not an exception */
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[1], AW_FAILED);
    assert_int_equal(f->p.states[2], AW_RUNNING);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
}

/* The contract: FIRST_EXCEPTION returns when any task ends in a state
 * other than succeeded; cancelled is one. */
static void first_exception_fires_on_a_cancel(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { sleeper(f, 5), sleeper(f, 5) };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_FIRST_EXCEPTION, -1, false, NULL), 0);
    assert_int_equal(aw_task_cancel(f->e, t[1]), 0);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[1], AW_CANCELLED);
    assert_int_equal(f->p.states[0], AW_RUNNING);
}

static void first_exception_without_failures_fires_when_all_end(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[3] = { sleeper(f, 1), sleeper(f, 2), sleeper(f, 3) };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_FIRST_EXCEPTION, -1, false, NULL), 0);
    advance(f, 1000);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.at, T0_MONO + 3000);
}

static void all_completed_counts_failures_and_timeouts_as_done(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { failer(f, 1), create(f, json_pack("{s:i}", "seconds", 9), 2000) };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_FAILED);
    assert_int_equal(f->p.states[1], AW_TIMED_OUT);
}

static void cancel_of_the_awaited_task_calls_back(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 5);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 10000, false, NULL), 0);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_CANCELLED);
    advance(f, 20000);                  /* the timeout went with the waiter */
    assert_int_equal(f->p.calls, 1);
}

/* ---- timeouts ---- */

static void timeout_calls_back_once_and_leaves_the_task_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 10);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 500, false, NULL), 0);
    advance(f, 499);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.at, T0_MONO + 500);
    assert_int_equal(f->p.states[0], AW_RUNNING);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(open_waiters(f), 0);
    advance(f, 10000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(f->p.calls, 1);
}

static void condition_before_the_timeout_calls_back_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 1);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 5000, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    advance(f, 5000);
    assert_int_equal(f->p.calls, 1);
}

/* asyncio.wait_for: on timeout the task is cancelled and the callback sees
 * the final cancelled state. */
static void cancel_on_timeout_calls_back_with_the_task_cancelled(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 10);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 500, true, NULL), 0);
    advance(f, 499);
    assert_int_equal(f->p.calls, 0);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_CANCELLED);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->error_type, AW_ERR_CANCELLED);
}

static void cancel_on_timeout_leaves_finished_tasks_alone(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { sleeper(f, 1), sleeper(f, 10) };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_ALL, 2000, true, NULL), 0);
    advance(f, 1000);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_SUCCEEDED);
    assert_int_equal(f->p.states[1], AW_CANCELLED);
}

static void cancel_on_timeout_without_timeout_never_cancels(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 10);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, -1, true, NULL), 0);
    advance(f, 9999);
    assert_int_equal(t->state, AW_RUNNING);
    advance(f, 1);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_SUCCEEDED);
}

static void zero_timeout_with_cancel_cancels_and_returns_1(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 5);
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 0, true, NULL), 1);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(f->p.calls, 0);
    assert_int_equal(open_waiters(f), 0);
}

/* ---- repeated and forgotten tasks ---- */

static void repeated_task_in_all_fires_once_when_all_end(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleeper(f, 1), *b = sleeper(f, 2);
    aw_task_t *t[4] = { a, b, a, a };
    assert_int_equal(wait_on(f, t, 4, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
}

static void repeated_task_in_first_fires_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleeper(f, 2), *b = sleeper(f, 1);
    aw_task_t *t[3] = { a, a, b };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_FIRST, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[2], AW_SUCCEEDED);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
}

static void repeated_done_task_returns_1(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleeper(f, 0);
    aw_task_t *t[3] = { a, a, a };
    assert_int_equal(wait_on(f, t, 3, AW_RETURN_ALL, -1, false, NULL), 1);
}

/* A waiter holds its tasks: one that is forgotten meanwhile (DELETE) stays
 * readable in the callback. Under ASan a read of freed memory fails. */
static void forgotten_task_stays_readable_in_the_callback(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleeper(f, 1), *b = sleeper(f, 2);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, a->id, sizeof id);
    aw_task_t *t[2] = { a, b };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(aw_task_forget(f->e, a), 0);
    assert_null(aw_task_find(f->e, id));
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_SUCCEEDED);
    assert_string_equal(f->p.ids[0], id);
}

/* The same, when retention forgets the task. */
static void task_forgotten_by_retention_stays_readable_in_the_callback(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->e);
    f->e = engine(f->base, 0);
    aw_task_t *a = sleeper(f, 1), *b = sleeper(f, 2);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, a->id, sizeof id);
    aw_task_t *t[2] = { a, b };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    assert_null(aw_task_find(f->e, id));
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_SUCCEEDED);
    assert_string_equal(f->p.ids[0], id);
}

/* ---- abandoning, counting ---- */

static void abandoned_waiter_never_calls_back(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 1);
    aw_waiter_t *w;
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, -1, false, &w), 0);
    aw_wait_abandon(w);
    assert_int_equal(open_waiters(f), 0);
    advance(f, 1000);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(f->p.calls, 0);
}

static void abandoned_waiter_with_timeout_never_calls_back(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 10);
    aw_waiter_t *w;
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, 500, true, &w), 0);
    aw_wait_abandon(w);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 0);
    assert_int_equal(t->state, AW_RUNNING);     /* nobody cancelled it */
}

static void stats_count_open_waiters(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = sleeper(f, 1), *b = sleeper(f, 2), *c = sleeper(f, 3);
    aw_waiter_t *wa, *wb, *wc;
    struct probe pb = { 0 }, pc = { 0 };
    assert_int_equal(wait_on(f, &a, 1, AW_RETURN_ALL, -1, false, &wa), 0);
    assert_int_equal(aw_wait(f->e, &b, 1, AW_RETURN_ALL, -1, false, on_wait, &pb, &wb), 0);
    assert_int_equal(aw_wait(f->e, &c, 1, AW_RETURN_ALL, -1, false, on_wait, &pc, &wc), 0);
    assert_int_equal(open_waiters(f), 3);
    advance(f, 1000);
    assert_int_equal(open_waiters(f), 2);
    aw_wait_abandon(wb);
    assert_int_equal(open_waiters(f), 1);
    advance(f, 2000);
    assert_int_equal(open_waiters(f), 0);
    assert_int_equal(pb.calls, 0);
    assert_int_equal(pc.calls, 1);
}

static void engine_free_abandons_open_waiters(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[2] = { sleeper(f, 1), sleeper(f, 2) };
    assert_int_equal(wait_on(f, t, 2, AW_RETURN_ALL, 5000, true, NULL), 0);
    aw_engine_free(f->e);
    f->e = NULL;
    assert_int_equal(f->p.calls, 0);
}

static void return_when_names_parse(void **state)
{
    (void)state;
    assert_int_equal(aw_return_when_parse("ALL_COMPLETED"), AW_RETURN_ALL);
    assert_int_equal(aw_return_when_parse("FIRST_COMPLETED"), AW_RETURN_FIRST);
    assert_int_equal(aw_return_when_parse("FIRST_EXCEPTION"), AW_RETURN_FIRST_EXCEPTION);
    assert_int_equal(aw_return_when_parse("all_completed"), -1);
    assert_int_equal(aw_return_when_parse(""), -1);
}

/* A callback may forget the task whose end fired it (wait, then DELETE):
 * the engine must not read the task after the waiter lets go of it. Under
 * ASan a read of freed memory fails. Last in the list: ASan stops the run. */
static void callback_may_forget_the_task_that_fired_it(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 1);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    f->p.forget_in_cb = f->e;
    assert_int_equal(wait_on(f, &t, 1, AW_RETURN_ALL, -1, false, NULL), 0);
    advance(f, 1000);
    assert_int_equal(f->p.calls, 1);
    assert_int_equal(f->p.states[0], AW_SUCCEEDED);
    assert_null(aw_task_find(f->e, id));
    aw_task_t *next = sleeper(f, 1);    /* the engine still works */
    advance(f, 1000);
    assert_int_equal(next->state, AW_SUCCEEDED);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(wait_on_a_done_task_returns_1_without_calling_back),
        T(first_completed_with_one_task_done_returns_1),
        T(first_exception_with_one_task_failed_returns_1),
        T(zero_timeout_returns_1_and_leaves_tasks_running),
        T(all_completed_fires_once_when_the_last_task_ends),
        T(first_completed_fires_once_when_the_first_task_ends),
        T(first_exception_fires_on_the_first_failure),
        T(first_exception_fires_on_a_cancel),
        T(first_exception_without_failures_fires_when_all_end),
        T(all_completed_counts_failures_and_timeouts_as_done),
        T(cancel_of_the_awaited_task_calls_back),
        T(timeout_calls_back_once_and_leaves_the_task_running),
        T(condition_before_the_timeout_calls_back_once),
        T(cancel_on_timeout_calls_back_with_the_task_cancelled),
        T(cancel_on_timeout_leaves_finished_tasks_alone),
        T(cancel_on_timeout_without_timeout_never_cancels),
        T(zero_timeout_with_cancel_cancels_and_returns_1),
        T(repeated_task_in_all_fires_once_when_all_end),
        T(repeated_task_in_first_fires_once),
        T(repeated_done_task_returns_1),
        T(forgotten_task_stays_readable_in_the_callback),
        T(task_forgotten_by_retention_stays_readable_in_the_callback),
        T(abandoned_waiter_never_calls_back),
        T(abandoned_waiter_with_timeout_never_calls_back),
        T(stats_count_open_waiters),
        T(engine_free_abandons_open_waiters),
        T(return_when_names_parse),
        T(callback_may_forget_the_task_that_fired_it),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
