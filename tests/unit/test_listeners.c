/*
 * test_listeners.c — the engine's listeners (aw_engine_listen in
 * lib/engine.c), which GET /v1/events and the durable store are built on:
 * every task's creation, changes and departure, in order, with the task's
 * fields already set; and the held creates (aw_task_spec_t.hold) that the
 * store releases or discards at their commit. Same fixture as
 * test_engine.c: a real event base and a fake clock that the test moves,
 * so nothing sleeps.
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

/* What a listener saw of one event. */
struct seen {
    int              who;           /* which listener (1 or 2) */
    aw_task_event_t  ev;
    const aw_task_t *task;
    aw_task_state_t  state;
    int64_t          started_at, finished_at;
    bool             has_result;
    aw_error_type_t  error_type;
    bool             has_message;
    bool             held, cancel_asked, forget_asked;
};

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    struct seen        seen[MAX_SEEN];
    size_t             n;
    struct ear {                    /* a listener's arg */
        struct fx *f;
        int        who;
    } one, two;
};

/* A kind with outside effects (start_after_commit), as exec is, that
 * counts its starts and runs until cancelled. */
static int effect_starts;

static int effect_prepare(aw_engine_t *e, aw_task_t *t, json_t *args, char *err, size_t len)
{
    (void)e; (void)t; (void)args; (void)err; (void)len;
    return 0;
}
static void effect_start(aw_engine_t *e, aw_task_t *t) { (void)e; (void)t; effect_starts++; }
static void effect_wake(aw_engine_t *e, aw_task_t *t) { (void)e; (void)t; }
static int effect_cancel(aw_engine_t *e, aw_task_t *t) { (void)e; (void)t; return 0; }

static const aw_kind_t effect_kind = {
    .name = "effect",
    .prepare = effect_prepare,
    .start = effect_start,
    .wake = effect_wake,
    .cancel = effect_cancel,
    .start_after_commit = 1,
};

static void record(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    struct ear *ear = arg;
    struct fx *f = ear->f;
    assert_true(f->n < MAX_SEEN);
    f->seen[f->n++] = (struct seen){
        .who = ear->who, .ev = ev, .task = t, .state = t->state, .started_at = t->started_at,
        .finished_at = t->finished_at, .has_result = t->result != NULL,
        .error_type = t->error_type, .has_message = aw_task_error_message(t) != NULL,
        .held = t->held, .cancel_asked = t->cancel_asked, .forget_asked = t->forget_asked,
    };
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    effect_starts = 0;
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->one = (struct ear){ f, 1 };
    f->two = (struct ear){ f, 2 };
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = RETENTION_MS };
    if (!(f->e = aw_engine_new(f->base, &lim)) ||
        aw_engine_add_kind(f->e, &aw_kind_sleep, true) < 0 ||
        aw_engine_add_kind(f->e, &effect_kind, true) < 0 ||
        aw_engine_set_queue(f->e, "one", 1) < 0 ||
        aw_engine_listen(f->e, record, &f->one) < 0)
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
    fake_clock_stop();
    return 0;
}

static void advance(struct fx *f, int64_t ms)
{
    fake_clock_advance(f->e, ms);
}

static aw_task_t *create_spec(struct fx *f, aw_task_spec_t *spec, const char *args)
{
    json_t *a = json_loads(args, 0, NULL);
    assert_non_null(a);
    spec->args = a;
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, spec, &t, err, sizeof err);
    json_decref(a);
    if (rc != 0)
        fail_msg("create failed: %d %s", rc, err);
    return t;
}

/* A sleep task; args is a JSON text. */
static aw_task_t *create(struct fx *f, const char *args, const char *queue, int64_t timeout_ms)
{
    aw_task_spec_t spec = { .kind = "sleep", .queue = queue, .timeout_ms = timeout_ms };
    return create_spec(f, &spec, args);
}

/* A held create of kind `kind`, with an idempotency key. */
static aw_task_t *create_held(struct fx *f, const char *kind, const char *args,
                              const char *queue, const char *key)
{
    aw_task_spec_t spec = { .kind = kind, .queue = queue, .timeout_ms = -1,
                            .idempotency_key = key, .hold = true };
    return create_spec(f, &spec, args);
}

static const char *event_name(aw_task_event_t ev)
{
    return ev == AW_TASK_CREATED ? "created" : ev == AW_TASK_CHANGED ? "changed"
         : ev == AW_TASK_MARKED ? "marked" : "forgotten";
}

/* Checks that event i was `ev` for t, t then being in state s. */
static void assert_event(struct fx *f, size_t i, aw_task_event_t ev, const aw_task_t *t,
                         aw_task_state_t s)
{
    if (i >= f->n)
        fail_msg("event %zu was not heard (only %zu were)", i, f->n);
    assert_ptr_equal(f->seen[i].task, t);
    assert_string_equal(event_name(f->seen[i].ev), event_name(ev));
    assert_string_equal(aw_task_state_name(f->seen[i].state), aw_task_state_name(s));
}

/* ---- the order of events ---- */

static void create_into_a_free_slot_reports_created_then_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":5}", NULL, -1);
    assert_int_equal(f->n, 2);
    assert_event(f, 0, AW_TASK_CREATED, t, AW_PENDING);
    assert_int_equal(f->seen[0].started_at, 0);
    assert_false(f->seen[0].held);
    assert_event(f, 1, AW_TASK_CHANGED, t, AW_RUNNING);
    assert_int_equal(f->seen[1].started_at, T0_WALL);
    assert_int_equal(f->seen[1].finished_at, 0);
}

static void zero_second_sleep_reports_three_events_inside_create(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":0,\"result\":1}", NULL, -1);
    assert_int_equal(f->n, 3);
    assert_event(f, 0, AW_TASK_CREATED, t, AW_PENDING);
    assert_event(f, 1, AW_TASK_CHANGED, t, AW_RUNNING);
    assert_event(f, 2, AW_TASK_CHANGED, t, AW_SUCCEEDED);
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
    assert_event(f, 2, AW_TASK_CHANGED, t, AW_SUCCEEDED);
    assert_true(f->seen[2].has_result);
    assert_int_equal(f->seen[2].finished_at, T0_WALL + 2000);
}

static void queued_task_is_pending_until_the_slot_frees_then_running(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create(f, "{\"seconds\":1}", "one", -1);
    aw_task_t *b = create(f, "{\"seconds\":1}", "one", -1);
    assert_int_equal(f->n, 3);
    assert_event(f, 0, AW_TASK_CREATED, a, AW_PENDING);
    assert_event(f, 1, AW_TASK_CHANGED, a, AW_RUNNING);
    assert_event(f, 2, AW_TASK_CREATED, b, AW_PENDING);
    advance(f, 1000);
    /* The first ends before the second starts in its slot. */
    assert_int_equal(f->n, 5);
    assert_event(f, 3, AW_TASK_CHANGED, a, AW_SUCCEEDED);
    assert_event(f, 4, AW_TASK_CHANGED, b, AW_RUNNING);
}

static void failure_is_reported_with_its_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":0,\"fail\":\"boom\"}", NULL, -1);
    assert_int_equal(f->n, 3);
    assert_event(f, 2, AW_TASK_CHANGED, t, AW_FAILED);
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
    assert_event(f, 0, AW_TASK_CHANGED, b, AW_CANCELLED);
    assert_int_equal(f->seen[0].error_type, AW_ERR_CANCELLED);
    assert_int_equal(aw_task_cancel(f->e, a), 0);
    assert_int_equal(f->n, 2);
    assert_event(f, 1, AW_TASK_CHANGED, a, AW_CANCELLED);
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
    assert_event(f, 2, AW_TASK_CHANGED, t, AW_TIMED_OUT);
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
    assert_event(f, 0, AW_TASK_CHANGED, a, AW_FAILED);
    assert_int_equal(f->seen[0].error_type, AW_ERR_INTERRUPTED);
}

static void refused_create_reports_nothing(void **state)
{
    struct fx *f = *state;
    aw_task_spec_t spec = { .kind = "nosuch", .timeout_ms = -1 };
    aw_task_t *t = NULL;
    char err[256];
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EKIND);
    spec.kind = "sleep";
    spec.queue = "nosuch";
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EQUEUE);
    spec.queue = NULL;
    spec.args = json_pack("{s:i}", "seconds", -1);
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), AW_EINVAL);
    json_decref(spec.args);
    assert_int_equal(f->n, 0);
}

static void forget_and_retention_report_forgotten(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create(f, "{\"seconds\":0}", NULL, -1);
    aw_task_t *b = create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 6);
    aw_task_ref(b);                     /* to compare after it is freed */
    assert_int_equal(aw_task_forget(f->e, a), 0);
    assert_int_equal(f->n, 7);
    /* The task is still whole when the listener hears it leave. */
    assert_event(f, 6, AW_TASK_FORGOTTEN, a, AW_SUCCEEDED);
    /* A refused forget reports nothing. */
    aw_task_t *c = create(f, "{\"seconds\":3600}", NULL, -1);
    f->n = 0;
    assert_int_equal(aw_task_forget(f->e, c), AW_EACTIVE);
    assert_int_equal(f->n, 0);
    advance(f, RETENTION_MS - 1);
    assert_int_equal(f->n, 0);
    advance(f, 1);                      /* retention forgets b */
    assert_int_equal(f->n, 1);
    assert_event(f, 0, AW_TASK_FORGOTTEN, b, AW_SUCCEEDED);
    assert_false(b->listed);
    assert_null(aw_task_find(f->e, b->id));
    aw_task_unref(b);
}

/* A mark is no state change (an event stream shows nothing), but the
 * store must hear it: it writes what the mark will do. */
static void ask_reports_marked_with_the_mark(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, "{\"seconds\":0}", NULL, -1);
    f->n = 0;
    aw_task_ask(f->e, t, AW_ASK_FORGET, true);
    assert_int_equal(f->n, 1);
    assert_event(f, 0, AW_TASK_MARKED, t, AW_SUCCEEDED);
    assert_true(f->seen[0].forget_asked);
    aw_task_ask(f->e, t, AW_ASK_FORGET, false);
    assert_int_equal(f->n, 2);
    assert_false(f->seen[1].forget_asked);
    /* The mark alone forgets nothing: the store does, at its commit. */
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
}

/* ---- several listeners ---- */

static void two_listeners_hear_each_event_in_registration_order(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_listen(f->e, record, &f->two), 0);
    aw_task_t *t = create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 6);
    static const aw_task_state_t states[] = { AW_PENDING, AW_RUNNING, AW_SUCCEEDED };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(f->seen[2 * i].who, 1);
        assert_int_equal(f->seen[2 * i + 1].who, 2);
        assert_event(f, 2 * i, i ? AW_TASK_CHANGED : AW_TASK_CREATED, t, states[i]);
        assert_event(f, 2 * i + 1, i ? AW_TASK_CHANGED : AW_TASK_CREATED, t, states[i]);
    }
}

static void unlisten_removes_only_that_listener(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_listen(f->e, record, &f->two), 0);
    aw_engine_unlisten(f->e, record, &f->one);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(f->seen[i].who, 2);
    /* One that was never added: nothing changes. */
    aw_engine_unlisten(f->e, record, &f->one);
    aw_engine_unlisten(f->e, record, &f->two);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 3);
    /* Listening again puts it at the end. */
    assert_int_equal(aw_engine_listen(f->e, record, &f->one), 0);
    create(f, "{\"seconds\":0}", NULL, -1);
    assert_int_equal(f->n, 6);
    assert_int_equal(f->seen[5].who, 1);
}

/* ---- held creates ---- */

static void assert_same_stats(const aw_engine_stats_t *a, const aw_engine_stats_t *b)
{
    for (int s = 0; s < AW_NSTATES; s++)
        assert_int_equal(a->held[s], b->held[s]);
    assert_int_equal(a->waiters, b->waiters);
    assert_int_equal(a->nkinds, b->nkinds);
    for (size_t k = 0; k < a->nkinds; k++) {
        assert_int_equal(a->kinds[k].created, b->kinds[k].created);
        for (int s = 0; s < AW_NSTATES; s++)
            assert_int_equal(a->kinds[k].finished[s], b->kinds[k].finished[s]);
    }
}

static void held_create_is_reported_held_and_is_invisible_until_release(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create_held(f, "sleep", "{\"seconds\":5}", NULL, "k1");
    assert_true(t->held);
    assert_event(f, 0, AW_TASK_CREATED, t, AW_PENDING);
    assert_true(f->seen[0].held);
    /* A sleep has no outside effects: it runs while held. */
    assert_int_equal(t->state, AW_RUNNING);
    assert_null(aw_task_find(f->e, t->id));
    assert_null(aw_task_after(f->e, NULL));
    /* ... but a repeated create must find it to wait for the first. */
    assert_ptr_equal(aw_task_find_idempotent(f->e, "k1"), t);
    /* Listings skip it in the middle too. */
    aw_task_t *before = create(f, "{\"seconds\":5}", NULL, -1);
    aw_task_t *h2 = create_held(f, "sleep", "{\"seconds\":5}", NULL, NULL);
    aw_task_t *after = create(f, "{\"seconds\":5}", NULL, -1);
    assert_ptr_equal(aw_task_after(f->e, NULL), before);
    assert_ptr_equal(aw_task_next(before), after);
    assert_null(aw_task_next(after));
    assert_ptr_equal(aw_task_after(f->e, t->id), before);

    /* The release itself is no event: nothing a client sees changed, and
     * the store has just committed the record. */
    f->n = 0;
    aw_task_release(f->e, t);
    assert_false(t->held);
    assert_int_equal(f->n, 0);
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
    assert_ptr_equal(aw_task_after(f->e, NULL), t);
    assert_ptr_equal(aw_task_next(t), before);
    /* Releasing again, or a task that was never held, does nothing. */
    aw_task_release(f->e, t);
    aw_task_release(f->e, before);
    assert_int_equal(f->n, 0);
    aw_task_release(f->e, h2);
    assert_ptr_equal(aw_task_next(before), h2);
    assert_ptr_equal(aw_task_next(h2), after);
}

static void discard_of_a_held_task_leaves_no_trace(void **state)
{
    struct fx *f = *state;
    aw_engine_limits_t lim = { .max_tasks = 2, .retention_ms = RETENTION_MS };
    aw_engine_set_limits(f->e, &lim);
    aw_task_t *first = create(f, "{\"seconds\":5}", "one", -1);
    aw_engine_stats_t before, after;
    aw_engine_stats(f->e, &before);

    aw_task_t *t = create_held(f, "sleep", "{\"seconds\":5}", "one", "k1");
    assert_int_equal(t->state, AW_PENDING);         /* behind `first` */
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    aw_task_ref(t);
    f->n = 0;
    aw_task_discard(f->e, t);
    assert_int_equal(f->n, 1);
    assert_event(f, 0, AW_TASK_FORGOTTEN, t, AW_PENDING);
    assert_true(f->seen[0].held);
    assert_false(t->listed);
    aw_task_unref(t);
    assert_null(aw_task_find(f->e, id));
    assert_null(aw_task_find_idempotent(f->e, "k1"));
    aw_engine_stats(f->e, &after);
    assert_same_stats(&before, &after);

    /* The unfinished count is as before as well: max_tasks 2 admits one
     * more, and only one. The key is free again. */
    aw_task_t *next = create_held(f, "sleep", "{\"seconds\":1}", "one", "k1");
    char err[128];
    aw_task_spec_t spec = { .kind = "sleep", .timeout_ms = -1,
                            .args = json_pack("{s:i}", "seconds", 1) };
    aw_task_t *out = NULL;
    assert_int_equal(aw_task_create(f->e, &spec, &out, err, sizeof err), AW_ECAPACITY);
    json_decref(spec.args);
    /* The queue kept no trace either: `next` is the one behind `first`. */
    aw_task_release(f->e, next);
    advance(f, 5000);
    assert_int_equal(first->state, AW_SUCCEEDED);
    assert_int_equal(next->state, AW_RUNNING);
}

static void discard_of_running_and_finished_held_tasks_restores_the_stats(void **state)
{
    struct fx *f = *state;
    aw_engine_stats_t before, after;
    aw_engine_stats(f->e, &before);
    aw_task_t *run = create_held(f, "sleep", "{\"seconds\":5}", "one", NULL);
    aw_task_t *done = create_held(f, "sleep", "{\"seconds\":0}", NULL, NULL);
    aw_task_t *queued = create(f, "{\"seconds\":5}", "one", -1);
    assert_int_equal(run->state, AW_RUNNING);
    assert_int_equal(done->state, AW_SUCCEEDED);
    assert_int_equal(queued->state, AW_PENDING);
    f->n = 0;
    aw_task_discard(f->e, done);
    aw_task_discard(f->e, run);
    /* The running one's slot went to the next in its queue. */
    assert_int_equal(queued->state, AW_RUNNING);
    assert_int_equal(f->n, 3);
    assert_int_equal(f->seen[0].ev, AW_TASK_FORGOTTEN);
    assert_true(f->seen[0].held);
    assert_int_equal(f->seen[1].ev, AW_TASK_FORGOTTEN);
    assert_true(f->seen[1].held);
    assert_event(f, 2, AW_TASK_CHANGED, queued, AW_RUNNING);
    aw_task_cancel(f->e, queued);
    assert_int_equal(aw_task_forget(f->e, queued), 0);
    aw_engine_stats(f->e, &after);
    for (int s = 0; s < AW_NSTATES; s++)
        assert_int_equal(before.held[s], after.held[s]);
    /* The discarded ones' sleeps never wake: nothing more is heard. */
    f->n = 0;
    advance(f, RETENTION_MS * 2);
    assert_int_equal(f->n, 0);
}

static void held_task_of_a_kind_with_effects_starts_only_at_release(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create_held(f, "effect", "{}", NULL, NULL);
    assert_int_equal(f->n, 1);
    assert_event(f, 0, AW_TASK_CREATED, t, AW_PENDING);
    assert_int_equal(effect_starts, 0);
    assert_int_equal(t->state, AW_PENDING);
    aw_task_release(f->e, t);
    assert_int_equal(effect_starts, 1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(f->n, 2);                  /* the release: only its start */
    assert_event(f, 1, AW_TASK_CHANGED, t, AW_RUNNING);
    /* Not held: it starts at once, as any create. */
    create_spec(f, &(aw_task_spec_t){ .kind = "effect", .timeout_ms = -1 }, "{}");
    assert_int_equal(effect_starts, 2);
}

static void held_task_with_effects_that_is_discarded_never_starts(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create_held(f, "effect", "{}", "one", NULL);
    /* It takes no slot while held: a create after it runs. */
    aw_task_t *other = create(f, "{\"seconds\":5}", "one", -1);
    assert_int_equal(other->state, AW_RUNNING);
    aw_task_discard(f->e, t);
    aw_task_cancel(f->e, other);
    assert_int_equal(effect_starts, 0);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_PENDING], 0);
    assert_int_equal(st.kinds[1].created, 0);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(create_into_a_free_slot_reports_created_then_running),
        T(zero_second_sleep_reports_three_events_inside_create),
        T(success_is_reported_with_its_result_when_the_sleep_ends),
        T(queued_task_is_pending_until_the_slot_frees_then_running),
        T(failure_is_reported_with_its_error),
        T(cancel_of_pending_and_running_tasks_is_reported),
        T(timeout_is_reported_as_timed_out),
        T(interrupt_all_reports_running_tasks_failed),
        T(refused_create_reports_nothing),
        T(forget_and_retention_report_forgotten),
        T(ask_reports_marked_with_the_mark),
        T(two_listeners_hear_each_event_in_registration_order),
        T(unlisten_removes_only_that_listener),
        T(held_create_is_reported_held_and_is_invisible_until_release),
        T(discard_of_a_held_task_leaves_no_trace),
        T(discard_of_running_and_finished_held_tasks_restores_the_stats),
        T(held_task_of_a_kind_with_effects_starts_only_at_release),
        T(held_task_with_effects_that_is_discarded_never_starts),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
