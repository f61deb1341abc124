/*
 * test_restore.c — aw_engine_restore (lib/restore.c): task objects written
 * by aw_task_write_json, read back into a second engine, as a restart
 * would. Two engines share one fake clock; nothing sleeps.
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

#include "engine.h"
#include "errors.h"
#include "fake_clock.h"
#include "queue.h"
#include "task_json.h"

#define T0_WALL 1700000000000LL
#define RETENTION_MS 60000

struct fx {
    struct event_base *base;
    aw_engine_t       *a, *b;           /* before and after the "restart" */
};

static aw_engine_t *engine(struct event_base *base)
{
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = RETENTION_MS };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_set_queue(e, "one", 1), 0);
    return e;
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->a = engine(f->base);
    f->b = engine(f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->a);
    aw_engine_free(f->b);
    event_base_free(f->base);
    free(f);
    fake_clock_stop();
    return 0;
}

/* Creates a task in e from a JSON create body (kind, args, name, queue,
 * timeout in ms). */
static aw_task_t *create(aw_engine_t *e, const char *name, const char *queue,
                         int64_t timeout_ms, json_t *args)
{
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .name = name,
                            .queue = queue, .timeout_ms = timeout_ms };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(e, &spec, &t, err, sizeof err);
    json_decref(args);
    if (rc != 0)
        fail_msg("create failed: %d: %s", rc, err);
    return t;
}

/* The task object's text (caller frees). */
static char *text_of(const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    char *s = aw_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

/* Writes t, restores the text into e; returns the restored task. */
static aw_task_t *round_trip(aw_engine_t *e, const aw_task_t *t)
{
    char *s = text_of(t), err[256] = "";
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    aw_task_t *r = NULL;
    int rc = aw_engine_restore(e, o, &r, err, sizeof err);
    json_decref(o);
    free(s);
    if (rc != 0)
        fail_msg("restore failed: %d: %s", rc, err);
    assert_non_null(r);
    return r;
}

static void assert_same_text(const aw_task_t *x, const aw_task_t *y)
{
    char *a = text_of(x), *b = text_of(y);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void finished_tasks_come_back_exactly(void **state)
{
    struct fx *f = *state;
    aw_task_t *ok = create(f->a, "done \"right\"", NULL, -1,
                           json_pack("{s:i, s:{s:[i,i]}}", "seconds", 1, "result", "xs", 1, 2));
    aw_task_t *bad = create(f->a, NULL, NULL, -1,
                            json_pack("{s:i, s:s}", "seconds", 1, "fail", "boom"));
    aw_task_t *slow = create(f->a, NULL, NULL, 500, json_pack("{s:i}", "seconds", 9));
    aw_task_t *gone = create(f->a, NULL, NULL, -1, json_pack("{s:i}", "seconds", 9));
    assert_int_equal(aw_task_cancel(f->a, gone), 0);
    fake_clock_advance(f->a, 1000);
    assert_int_equal(ok->state, AW_SUCCEEDED);
    assert_int_equal(bad->state, AW_FAILED);
    assert_int_equal(slow->state, AW_TIMED_OUT);

    fake_clock_advance(f->b, 5000);             /* the restart is later */
    aw_task_t *const in[] = { ok, bad, slow, gone };
    for (size_t i = 0; i < 4; i++) {
        aw_task_t *r = round_trip(f->b, in[i]);
        assert_same_text(in[i], r);
        assert_ptr_equal(aw_task_find(f->b, in[i]->id), r);
    }
    aw_engine_stats_t st;
    aw_engine_stats(f->b, &st);
    assert_int_equal(st.held[AW_SUCCEEDED] + st.held[AW_FAILED] +
                     st.held[AW_TIMED_OUT] + st.held[AW_CANCELLED], 4);
    assert_int_equal(st.kinds[0].created, 0);   /* this run created none */
}

static void a_running_task_comes_back_interrupted(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f->a, "long", NULL, -1, json_pack("{s:i}", "seconds", 60));
    assert_int_equal(t->state, AW_RUNNING);
    fake_clock_advance(f->b, 2000);
    aw_task_t *r = round_trip(f->b, t);
    assert_int_equal(r->state, AW_FAILED);
    assert_int_equal(r->error_type, AW_ERR_INTERRUPTED);
    assert_int_equal(r->started_at, T0_WALL);
    assert_int_equal(r->finished_at, T0_WALL + 2000);
    assert_string_equal(aw_task_name(r), "long");
    aw_engine_stats_t st;
    aw_engine_stats(f->b, &st);
    assert_int_equal(st.held[AW_RUNNING], 0);
    assert_int_equal(aw_engine_queues(f->b)->running + aw_engine_queues(f->b)->next->running, 0);
}

static void a_pending_task_is_queued_again_and_runs(void **state)
{
    struct fx *f = *state;
    create(f->a, NULL, "one", -1, json_pack("{s:i}", "seconds", 60));
    aw_task_t *waiting = create(f->a, NULL, "one", 3000,
                                json_pack("{s:i, s:s}", "seconds", 1, "result", "r"));
    assert_int_equal(waiting->state, AW_PENDING);
    aw_task_t *r = round_trip(f->b, waiting);
    /* Engine b's queue "one" is free: the task starts, with its timeout. */
    assert_int_equal(r->state, AW_RUNNING);
    assert_int_equal(r->timeout_ms, 3000);
    fake_clock_advance(f->b, 1000);
    assert_int_equal(r->state, AW_SUCCEEDED);
    assert_string_equal(r->result, "\"r\"");
}

static void an_unknown_queue_is_created_unlimited(void **state)
{
    struct fx *f = *state;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:i}}", "id", "t_01HZZZZZZZZZZZZZZZZZZZZZZZ",
                          "kind", "sleep", "queue", "gone", "state", "pending", "args",
                          "seconds", 5);
    char err[128] = "";
    aw_task_t *r = NULL;
    assert_int_equal(aw_engine_restore(f->b, o, &r, err, sizeof err), 0);
    json_decref(o);
    assert_string_equal(r->queue->name, "gone");
    assert_int_equal(r->queue->concurrency, 0);
    assert_int_equal(r->state, AW_RUNNING);
}

static void new_ids_sort_after_restored_ones(void **state)
{
    struct fx *f = *state;
    /* A task from a clock that was ahead: its id is from the "future". */
    wall_now += 3600 * 1000;
    aw_task_t *future = create(f->a, NULL, NULL, -1, json_pack("{s:i}", "seconds", 0));
    wall_now -= 3600 * 1000;
    round_trip(f->b, future);
    aw_task_t *fresh = create(f->b, NULL, NULL, -1, json_pack("{s:i}", "seconds", 0));
    assert_true(strcmp(fresh->id, future->id) > 0);
}

static void retention_counts_from_finished_at(void **state)
{
    struct fx *f = *state;
    aw_task_t *old = create(f->a, NULL, NULL, -1, json_pack("{s:i}", "seconds", 0));
    aw_task_t *recent = create(f->a, NULL, NULL, -1, json_pack("{s:i}", "seconds", 0));
    char old_id[AW_TASK_ID_SIZE], recent_id[AW_TASK_ID_SIZE];
    memcpy(old_id, old->id, sizeof old_id);
    memcpy(recent_id, recent->id, sizeof recent_id);
    round_trip(f->b, old);
    fake_clock_advance(f->b, RETENTION_MS - 10);    /* "restart" near the end */
    aw_task_t *r = round_trip(f->b, recent);
    assert_non_null(r);
    fake_clock_advance(f->b, 20);
    assert_null(aw_task_find(f->b, old_id));
    assert_null(aw_task_find(f->b, recent_id));     /* its time was up too */
}

static void bad_objects_are_refused_and_add_nothing(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f->a, NULL, NULL, -1, json_pack("{s:i}", "seconds", 0));
    round_trip(f->b, t);
    static const char *const bad[] = {
        "{}",
        "{\"id\":\"nope\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"pending\",\"args\":{}}",
        "{\"id\":\"t_01HZZZZZZZZZZZZZZZZZZZZZZY\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"sleeping\",\"args\":{\"seconds\":1}}",
        "{\"id\":\"t_01HZZZZZZZZZZZZZZZZZZZZZZY\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"pending\",\"args\":[]}",
        "{\"id\":\"t_01HZZZZZZZZZZZZZZZZZZZZZZY\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"pending\",\"args\":{}}",
        "{\"id\":\"t_01HZZZZZZZZZZZZZZZZZZZZZZY\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"succeeded\",\"args\":{\"seconds\":1},\"finished_at\":\"yesterday\"}",
        "{\"id\":\"t_01HZZZZZZZZZZZZZZZZZZZZZZY\",\"kind\":\"sleep\",\"queue\":\"default\",\"state\":\"failed\",\"args\":{\"seconds\":1},\"error\":{\"type\":\"oops\"}}",
    };
    aw_engine_stats_t before, after;
    aw_engine_stats(f->b, &before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *o = json_loads(bad[i], 0, NULL);
        assert_non_null(o);
        char err[256] = "";
        int rc = aw_engine_restore(f->b, o, NULL, err, sizeof err);
        json_decref(o);
        if (rc != AW_EINVAL)
            fail_msg("case %zu: rc %d, want AW_EINVAL (%s)", i, rc, err);
        assert_true(err[0] != '\0');
    }
    /* The same id twice, and a kind the engine does not have. */
    char *text = text_of(t), err[128];
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(aw_engine_restore(f->b, o, NULL, err, sizeof err), AW_EINVAL);
    json_object_set_new(o, "kind", json_string("teleport"));
    json_object_set_new(o, "id", json_string("t_01HZZZZZZZZZZZZZZZZZZZZZZX"));
    assert_int_equal(aw_engine_restore(f->b, o, NULL, err, sizeof err), AW_EKIND);
    json_decref(o);
    aw_engine_stats(f->b, &after);
    assert_memory_equal(before.held, after.held, sizeof before.held);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(finished_tasks_come_back_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(a_running_task_comes_back_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(a_pending_task_is_queued_again_and_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_queue_is_created_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(new_ids_sort_after_restored_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_counts_from_finished_at, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_objects_are_refused_and_add_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
