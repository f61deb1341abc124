/*
 * test_observer.c — the engine's observer hook (aw_engine_set_observer in
 * lib/engine.c), which GET /v1/events is built on: every state change of
 * every task, creation included, in order, with the task's fields already
 * set. Same fixture as test_engine.c: a real event base and a fake clock
 * that the test moves, so nothing sleeps.
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
#define MAX_SEEN 32


/* What the observer saw of one change. */
struct seen {
    const aw_task_t *task;
    aw_task_state_t  state;
    int64_t          started_at, finished_at;
    bool             has_result;
    aw_error_type_t  error_type;
    bool             has_message;
};

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    struct seen        seen[MAX_SEEN];
    size_t             n;
};

static void record(void *arg, const aw_task_t *t)
{
    struct fx *f = arg;
    assert_true(f->n < MAX_SEEN);
    f->seen[f->n++] = (struct seen){
        .task = t, .state = t->state, .started_at = t->started_at,
        .finished_at = t->finished_at, .has_result = t->result != NULL,
        .error_type = t->error_type, .has_message = aw_task_error_message(t) != NULL,
    };
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = RETENTION_MS };
    if (!(f->e = aw_engine_new(f->base, &lim)) ||
        aw_engine_add_kind(f->e, &aw_kind_sleep, true) < 0 ||
        aw_engine_set_queue(f->e, "one", 1) < 0)
        return -1;
    aw_engine_set_observer(f->e, record, f);
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

/* A sleep task; args is a JSON text. */
static aw_task_t *create(struct fx *f, const char *args, const char *queue, int64_t timeout_ms)
{
    json_t *a = json_loads(args, 0, NULL);
    assert_non_null(a);
    aw_task_spec_t spec = { .kind = "sleep", .args = a, .queue = queue,
                            .timeout_ms = timeout_ms };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(a);
    if (rc != 0)
        fail_msg("create failed: %d %s", rc, err);
    return t;
}

/* Checks that change i was t entering state s. */
static void assert_seen(struct fx *f, size_t i, const aw_task_t *t, aw_task_state_t s)
{
    if (i >= f->n)
        fail_msg("change %zu was not observed (only %zu were)", i, f->n);
    assert_ptr_equal(f->seen[i].task, t);
    assert_string_equal(aw_task_state_name(f->seen[i].state), aw_task_state_name(s));
}

static void create_into_a_free_slot_reports_pending_then_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":5}", NULL, -1);
    assert_int_equal(f->n, 2);
    assert_seen(f, 0, t, AW_PENDING);
    assert_int_equal(f->seen[0].started_at, 0);
    assert_seen(f, 1, t, AW_RUNNING);
    assert_int_equal(f->seen[1].started_at, T0_WALL);
    assert_int_equal(f->seen[1].finished_at, 0);
}

static void zero_second_sleep_reports_three_changes_inside_create(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":0,\"result\":1}", NULL, -1);
    assert_int_equal(f->n, 3);
    assert_seen(f, 0, t, AW_PENDING);
    assert_seen(f, 1, t, AW_RUNNING);
    assert_seen(f, 2, t, AW_SUCCEEDED);
    assert_true(f->seen[2].has_result);
    assert_int_equal(f->seen[2].finished_at, T0_WALL);
}

static void success_is_reported_with_its_result_when_the_sleep_ends(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":2,\"result\":\"r\"}", NULL, -1);
    advance(f, 1999);
    assert_int_equal(f->n, 2);
    advance(f, 1);
    assert_int_equal(f->n, 3);
    assert_seen(f, 2, t, AW_SUCCEEDED);
    assert_true(f->seen[2].has_result);
    assert_int_equal(f->seen[2].finished_at, T0_WALL + 2000);
}

static void queued_task_is_pending_until_the_slot_frees_then_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create(f, "{\"seconds\":1}", "one", -1);
    aw_task_t *b = create(f, "{\"seconds\":1}", "one", -1);
    assert_int_equal(f->n, 3);
    assert_seen(f, 0, a, AW_PENDING);
    assert_seen(f, 1, a, AW_RUNNING);
    assert_seen(f, 2, b, AW_PENDING);
    advance(f, 1000);
    /* The first ends before the second starts in its slot. */
    assert_int_equal(f->n, 5);
    assert_seen(f, 3, a, AW_SUCCEEDED);
    assert_seen(f, 4, b, AW_RUNNING);
}

static void failure_is_reported_with_its_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":0,\"fail\":\"boom\"}", NULL, -1);
    assert_int_equal(f->n, 3);
    assert_seen(f, 2, t, AW_FAILED);
    assert_int_equal(f->seen[2].error_type, AW_ERR_TASK);
    assert_true(f->seen[2].has_message);
}

static void cancel_of_pending_and_running_tasks_is_reported(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create(f, "{\"seconds\":9}", "one", -1);
    aw_task_t *b = create(f, "{\"seconds\":9}", "one", -1);
    f->n = 0;
    assert_int_equal(aw_task_cancel(f->e, b), 0);
    assert_int_equal(f->n, 1);
    assert_seen(f, 0, b, AW_CANCELLED);
    assert_int_equal(f->seen[0].error_type, AW_ERR_CANCELLED);
    assert_int_equal(aw_task_cancel(f->e, a), 0);
    assert_int_equal(f->n, 2);
    assert_seen(f, 1, a, AW_CANCELLED);
    /* A refused cancel changes nothing and reports nothing. */
    assert_int_equal(aw_task_cancel(f->e, a), AW_EDONE);
    assert_int_equal(f->n, 2);
}

static void timeout_is_reported_as_timed_out(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":9}", NULL, 500);
    advance(f, 500);
    assert_int_equal(f->n, 3);
    assert_seen(f, 2, t, AW_TIMED_OUT);
    assert_int_equal(f->seen[2].error_type, AW_ERR_TIMEOUT);
    assert_true(f->seen[2].has_message);
}

static void interrupt_all_reports_running_tasks_failed(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create(f, "{\"seconds\":9}", "one", -1);
    create(f, "{\"seconds\":9}", "one", -1);
    f->n = 0;
    assert_int_equal(aw_engine_interrupt_all(f->e), 0);
    /* The pending one stays pending: no change to report. */
    assert_int_equal(f->n, 1);
    assert_seen(f, 0, a, AW_FAILED);
    assert_int_equal(f->seen[0].error_type, AW_ERR_INTERRUPTED);
}

static void refused_create_forget_and_retention_report_nothing(void **state)
{
    struct fx *f = *state;
    aw_task_spec_t spec = { .kind = "nosuch", .timeout_ms = -1 };
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EKIND);
    spec.kind = "sleep";
    spec.queue = "nosuch";
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EQUEUE);
    assert_int_equal(f->n, 0);
    aw_task_t *a = create(f, "{\"seconds\":0}", NULL, -1);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 6);
    assert_int_equal(aw_task_forget(f->e, a), 0);
    advance(f, RETENTION_MS);           /* retention forgets the other */
    assert_null(aw_task_after(f->e, NULL));
    assert_int_equal(f->n, 6);
}

static void observer_null_removes_it(void **state)
{
    struct fx *f = *state;
    aw_engine_set_observer(f->e, NULL, NULL);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 0);
    aw_engine_set_observer(f->e, record, f);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 3);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(create_into_a_free_slot_reports_pending_then_running),
        T(zero_second_sleep_reports_three_changes_inside_create),
        T(success_is_reported_with_its_result_when_the_sleep_ends),
        T(queued_task_is_pending_until_the_slot_frees_then_running),
        T(failure_is_reported_with_its_error),
        T(cancel_of_pending_and_running_tasks_is_reported),
        T(timeout_is_reported_as_timed_out),
        T(interrupt_all_reports_running_tasks_failed),
        T(refused_create_forget_and_retention_report_nothing),
        T(observer_null_removes_it),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
