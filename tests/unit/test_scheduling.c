/*
 * test_scheduling.c — priorities, delayed starts and queue pauses in the
 * engine (lib/engine.c, lib/queue.c), driven with the sleep kind on a
 * fake clock: the order tasks start in, when a delayed one starts, and
 * how a kind's own cap (has_slot) and a pause hold the queue's head.
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
#include "queue.h"

#define T0_WALL 1700000000000LL

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

/* A sleep whose kind has a cap of its own, switched by the test. */
static bool capped_has_room;
static bool capped_has_slot(const void *state)
{
    (void)state;
    return capped_has_room;
}
static aw_kind_t capped_kind;

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    aw_engine_limits_t lim = { .retention_ms = 60000 };
    f->e = aw_engine_new(f->base, &lim);
    assert_non_null(f->e);
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, true), 0);
    capped_kind = aw_kind_sleep;
    capped_kind.name = "capped";
    capped_kind.has_slot = capped_has_slot;
    capped_has_room = true;
    assert_int_equal(aw_engine_add_kind(f->e, &capped_kind, true), 0);
    assert_int_equal(aw_engine_set_queue(f->e, "one", 1), 0);
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

static int try_task(struct fx *f, const char *kind, double seconds, const char *queue,
                    int priority, int64_t not_before, aw_task_t **out)
{
    aw_task_spec_t spec = {
        .kind = kind, .args = json_pack("{s:f}", "seconds", seconds), .queue = queue,
        .timeout_ms = -1, .priority = priority, .not_before = not_before,
    };
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, out, err, sizeof err);
    json_decref(spec.args);
    return rc;
}

static aw_task_t *task(struct fx *f, double seconds, const char *queue, int priority,
                       int64_t not_before)
{
    aw_task_t *t = NULL;
    int rc = try_task(f, "sleep", seconds, queue, priority, not_before, &t);
    if (rc)
        fail_msg("create failed: %d %s", rc, aw_strerror(rc));
    return t;
}

static const aw_queue_t *queue(struct fx *f, const char *name)
{
    const aw_queue_t *q = aw_engine_queue(f->e, name);
    assert_non_null(q);
    return q;
}

static void priorities_start_highest_first_then_in_creation_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *first = task(f, 1, "one", 0, 0);
    assert_int_equal(first->state, AW_RUNNING);
    aw_task_t *low = task(f, 1, "one", -5, 0);
    aw_task_t *high_a = task(f, 1, "one", 10, 0);
    aw_task_t *mid = task(f, 1, "one", 0, 0);
    aw_task_t *high_b = task(f, 1, "one", 10, 0);
    aw_task_t *top = task(f, 1, "one", 100, 0);
    aw_task_t *want[] = { top, high_a, high_b, mid, low };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fake_clock_advance(f->e, 1000);
        if (want[i]->state != AW_RUNNING)
            fail_msg("start %zu: expected priority %d to run", i, want[i]->priority);
        assert_int_equal(queue(f, "one")->running, 1);
    }
    fake_clock_advance(f->e, 1000);
    assert_int_equal(low->state, AW_SUCCEEDED);
}

static void priority_out_of_range_is_refused_and_creates_nothing(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = NULL;
    aw_engine_stats_t st;
    assert_int_equal(try_task(f, "sleep", 1, NULL, 101, 0, &t), AW_EINVAL);
    assert_int_equal(try_task(f, "sleep", 1, NULL, -101, 0, &t), AW_EINVAL);
    assert_int_equal(try_task(f, "sleep", 1, NULL, 0, -5, &t), AW_EINVAL);
    assert_null(t);
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_PENDING] + st.held[AW_RUNNING], 0);
    assert_int_equal(try_task(f, "sleep", 1, NULL, 100, 0, &t), 0);
    assert_int_equal(try_task(f, "sleep", 1, NULL, -100, 0, &t), 0);
}

static void delayed_task_starts_at_its_not_before_to_the_millisecond(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = task(f, 1, NULL, 0, T0_WALL + 1500);
    assert_int_equal(t->state, AW_PENDING);
    assert_int_equal(aw_task_not_before(t), T0_WALL + 1500);
    assert_int_equal(queue(f, "default")->ndelayed, 1);
    assert_int_equal(queue(f, "default")->npending, 0);
    fake_clock_advance(f->e, 1499);
    assert_int_equal(t->state, AW_PENDING);
    fake_clock_advance(f->e, 1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(t->started_at, T0_WALL + 1500);
    assert_int_equal(queue(f, "default")->ndelayed, 0);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(t->state, AW_SUCCEEDED);
}

static void not_before_in_the_past_starts_at_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = task(f, 1, NULL, 0, T0_WALL - 60000);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(aw_task_not_before(t), T0_WALL - 60000);
}

/* The heap runs on the monotonic clock; a wall clock that is behind when
 * the deadline comes (stepped back) does not start the task early. */
static void delayed_task_waits_for_the_wall_clock(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = task(f, 1, NULL, 0, T0_WALL + 1000);
    wall_now -= 500;                    /* the wall clock steps back */
    fake_clock_advance(f->e, 1000);
    assert_int_equal(t->state, AW_PENDING);
    fake_clock_advance(f->e, 499);
    assert_int_equal(t->state, AW_PENDING);
    fake_clock_advance(f->e, 1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(t->started_at, T0_WALL + 1000);
}

/* A delayed task whose time came while its queue was full takes its
 * place by priority and creation, before tasks created after it. */
static void delayed_task_joins_the_queue_in_creation_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *busy = task(f, 10, "one", 0, 0);
    aw_task_t *delayed = task(f, 1, "one", 0, T0_WALL + 2000);
    fake_clock_advance(f->e, 1);
    aw_task_t *later = task(f, 1, "one", 0, 0);
    aw_task_t *low = task(f, 1, "one", -1, 0);
    fake_clock_advance(f->e, 5000);
    assert_int_equal(delayed->state, AW_PENDING);
    assert_int_equal(queue(f, "one")->npending, 3);
    fake_clock_advance(f->e, 5000);
    assert_int_equal(busy->state, AW_SUCCEEDED);
    assert_int_equal(delayed->state, AW_RUNNING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(later->state, AW_RUNNING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(low->state, AW_RUNNING);
}

static void cancel_of_a_delayed_task_ends_it_and_its_deadline(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = task(f, 1, NULL, 0, T0_WALL + 1000);
    aw_task_ref(t);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->started_at, 0);
    assert_int_equal(queue(f, "default")->ndelayed, 0);
    fake_clock_advance(f->e, 2000);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->started_at, 0);
    aw_task_unref(t);
}

/* Many delayed tasks, in random order of time: each starts at its time. */
static void many_delayed_tasks_start_each_at_its_time(void **state)
{
    struct fx *f = *state;
    enum { N = 20000 };
    aw_task_t **t = calloc(N, sizeof *t);
    assert_non_null(t);
    srand(3);
    for (int i = 0; i < N; i++) {
        t[i] = task(f, 1000, NULL, 0, T0_WALL + 1 + rand() % 10000);
        aw_task_ref(t[i]);
    }
    assert_int_equal(queue(f, "default")->ndelayed, N);
    for (int step = 0; step < 100; step++) {
        fake_clock_advance(f->e, 100);
        for (int i = 0; i < N; i += 97) {
            bool due = aw_task_not_before(t[i]) <= wall_now;
            assert_int_equal(t[i]->state, due ? AW_RUNNING : AW_PENDING);
            if (due)
                assert_int_equal(t[i]->started_at - aw_task_not_before(t[i]) < 100, 1);
        }
    }
    assert_int_equal(queue(f, "default")->ndelayed, 0);
    assert_int_equal(queue(f, "default")->running, N);
    for (int i = 0; i < N; i++)
        aw_task_unref(t[i]);
    free(t);
}

/* A head its kind holds back (has_slot) keeps the queue's order: the
 * highest priority waits first, and nothing behind it jumps ahead. */
static void kind_cap_holds_the_head_and_the_order_stays(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = NULL, *b = NULL, *c = NULL;
    capped_has_room = false;
    assert_int_equal(try_task(f, "capped", 1, "one", 5, 0, &a), 0);
    assert_int_equal(try_task(f, "sleep", 1, "one", 0, 0, &b), 0);
    assert_int_equal(try_task(f, "capped", 1, "one", 9, 0, &c), 0);
    assert_int_equal(a->state, AW_PENDING);
    assert_int_equal(b->state, AW_PENDING);
    assert_int_equal(c->state, AW_PENDING);
    capped_has_room = true;
    char err[64];
    assert_int_equal(aw_engine_configure_kind(f->e, "capped", NULL, err, sizeof err), 0);
    assert_int_equal(c->state, AW_RUNNING);    /* priority 9 first */
    fake_clock_advance(f->e, 1000);
    assert_int_equal(a->state, AW_RUNNING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(b->state, AW_RUNNING);
}

static void paused_queue_starts_nothing_until_resumed(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "two", 2), 0);
    aw_task_t *running = task(f, 5, "two", 0, 0);
    assert_int_equal(aw_engine_pause_queue(f->e, "two", true), 0);
    assert_true(queue(f, "two")->paused);
    aw_task_t *held = task(f, 1, "two", 0, 0);
    aw_task_t *delayed = task(f, 1, "two", 0, T0_WALL + 1000);
    assert_int_equal(running->state, AW_RUNNING);   /* running tasks go on */
    fake_clock_advance(f->e, 2000);
    assert_int_equal(held->state, AW_PENDING);
    assert_int_equal(delayed->state, AW_PENDING);
    assert_int_equal(queue(f, "two")->npending, 2);
    fake_clock_advance(f->e, 3000);
    assert_int_equal(running->state, AW_SUCCEEDED);
    assert_int_equal(held->state, AW_PENDING);      /* a free slot changes nothing */
    assert_int_equal(aw_engine_pause_queue(f->e, "two", false), 0);
    assert_int_equal(held->state, AW_RUNNING);
    assert_int_equal(delayed->state, AW_RUNNING);
    assert_int_equal(aw_engine_pause_queue(f->e, "nosuch", true), AW_ENOQUEUE);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(priorities_start_highest_first_then_in_creation_order),
        T(priority_out_of_range_is_refused_and_creates_nothing),
        T(delayed_task_starts_at_its_not_before_to_the_millisecond),
        T(not_before_in_the_past_starts_at_once),
        T(delayed_task_waits_for_the_wall_clock),
        T(delayed_task_joins_the_queue_in_creation_order),
        T(cancel_of_a_delayed_task_ends_it_and_its_deadline),
        T(many_delayed_tasks_start_each_at_its_time),
        T(kind_cap_holds_the_head_and_the_order_stays),
        T(paused_queue_starts_nothing_until_resumed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
