/*
 * test_restore.c — aw_engine_restore (lib/restore.c): store records
 * (task_record.h) read back into an engine, as a restart does. Records
 * come from tasks of a first engine (aw_task_record_of) or are written by
 * hand for the malformed cases. Both engines share one fake clock and
 * one event base; only the exec cases run the loop, for a real child.
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
#include "fake_clock.h"
#include "kind_exec.h"
#include "queue.h"
#include "task_json.h"
#include "task_record.h"

#define T0_WALL 1700000000000LL
#define RETENTION_MS 60000
#define MAX_SEEN 32
#define DEADLINE_MS 10000

struct fx {
    struct event_base *base;
    aw_engine_t       *a, *b;           /* before and after the "restart" */
    aw_task_id_gen_t   ids;
    aw_task_event_t    ev[MAX_SEEN];    /* what b's listener heard */
    aw_task_t         *task[MAX_SEEN];
    size_t             n;
};

static void record_event(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    struct fx *f = arg;
    assert_true(f->n < MAX_SEEN);
    f->ev[f->n] = ev;
    f->task[f->n++] = t;
}

static aw_engine_t *engine(struct event_base *base, bool exec_enabled)
{
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = RETENTION_MS };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_exec, exec_enabled), 0);
    assert_int_equal(aw_engine_set_queue(e, "one", 1), 0);
    return e;
}

/* Gives b's exec kind an allow-list (allow_root: tests may run as root). */
static void configure_exec(struct fx *f, const char *allowed)
{
    const char *const allow[] = { allowed };
    aw_exec_config_t c = { .allow = allow, .nallow = 1, .kill_grace_ms = 100,
                           .max_output = 1 << 16, .allow_root = true };
    char err[256] = "";
    if (aw_engine_configure_kind(f->b, "exec", &c, err, sizeof err) != 0)
        fail_msg("configure exec: %s", err);
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    signal(SIGPIPE, SIG_IGN);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()) || aw_task_id_gen_init(&f->ids) < 0)
        return -1;
    f->a = engine(f->base, true);
    f->b = engine(f->base, true);
    if (aw_engine_listen(f->b, record_event, f) < 0)
        return -1;
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

/* Creates a sleep task in e; args is taken over. */
static aw_task_t *create(aw_engine_t *e, const char *name, const char *queue,
                         int64_t timeout_ms, const char *key, json_t *args)
{
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .name = name,
                            .queue = queue, .timeout_ms = timeout_ms,
                            .idempotency_key = key };
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

/* Restores r into b, which must accept it. */
static aw_task_t *restore(struct fx *f, const aw_task_record_t *r)
{
    char err[256] = "";
    aw_task_t *t = NULL;
    int rc = aw_engine_restore(f->b, r, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("restore of %s failed: %d: %s", r->id ? r->id : "(null)", rc, err);
    assert_non_null(t);
    return t;
}

/* Writes t as the store would and restores the record into b. */
static aw_task_t *round_trip(struct fx *f, const aw_task_t *t)
{
    aw_task_record_t r;
    aw_task_record_of(t, wall_now, &r);
    aw_engine_begin_restore(f->b);
    aw_task_t *x = restore(f, &r);
    aw_engine_end_restore(f->b);
    return x;
}

/* A pending record of this kind with a fresh id (id is the caller's). */
static aw_task_record_t pending(struct fx *f, char id[AW_TASK_ID_SIZE], const char *kind,
                                const char *queue, const char *args)
{
    aw_task_id_next(&f->ids, wall_now, id);
    return (aw_task_record_t){ .id = id, .kind = kind, .queue = queue, .args = args,
                               .state = AW_PENDING, .timeout_ms = -1 };
}

static void assert_same_text(const aw_task_t *x, const aw_task_t *y)
{
    char *a = text_of(x), *b = text_of(y);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void expired_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until t is done, or fails after DEADLINE_MS. */
static void run_until_done(struct fx *f, const aw_task_t *t)
{
    bool expired = false;
    struct event *deadline = evtimer_new(f->base, expired_cb, &expired);
    struct timeval tv = { DEADLINE_MS / 1000, 0 };
    assert_non_null(deadline);
    evtimer_add(deadline, &tv);
    while (!aw_task_done(t) && !expired)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(deadline);
    if (expired)
        fail_msg("the task was not done after %d ms", DEADLINE_MS);
}

/* ---- each state ---- */

static void finished_tasks_come_back_exactly(void **state)
{
    struct fx *f = *state;
    aw_task_t *ok = create(f->a, "done \"right\"", NULL, -1, "key-ok",
                           json_pack("{s:i, s:{s:[i,i]}}", "seconds", 1, "result", "xs", 1, 2));
    aw_task_t *bad = create(f->a, NULL, NULL, -1, NULL,
                            json_pack("{s:i, s:s}", "seconds", 1, "fail", "boom"));
    aw_task_t *slow = create(f->a, NULL, NULL, 500, NULL, json_pack("{s:i}", "seconds", 9));
    aw_task_t *gone = create(f->a, NULL, NULL, -1, NULL, json_pack("{s:i}", "seconds", 9));
    assert_int_equal(aw_task_cancel(f->a, gone), 0);
    fake_clock_advance(f->a, 1000);
    assert_int_equal(ok->state, AW_SUCCEEDED);
    assert_int_equal(bad->state, AW_FAILED);
    assert_int_equal(slow->state, AW_TIMED_OUT);

    fake_clock_advance(f->b, 5000);             /* the restart is later */
    aw_task_t *const in[] = { ok, bad, slow, gone };
    for (size_t i = 0; i < 4; i++) {
        aw_task_t *r = round_trip(f, in[i]);
        assert_same_text(in[i], r);
        assert_ptr_equal(aw_task_find(f->b, in[i]->id), r);
    }
    assert_string_equal(aw_task_error_message(aw_task_find(f->b, bad->id)), "boom");
    aw_engine_stats_t st;
    aw_engine_stats(f->b, &st);
    assert_int_equal(st.held[AW_SUCCEEDED], 1);
    assert_int_equal(st.held[AW_FAILED], 1);
    assert_int_equal(st.held[AW_TIMED_OUT], 1);
    assert_int_equal(st.held[AW_CANCELLED], 1);
    assert_int_equal(st.kinds[0].created, 0);   /* this run created none */
    /* Nothing changed, so nothing was reported. */
    assert_int_equal(f->n, 0);
}

static void a_running_task_ends_failed_interrupted(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f->a, "long", "one", -1, NULL, json_pack("{s:i}", "seconds", 60));
    assert_int_equal(t->state, AW_RUNNING);
    fake_clock_advance(f->b, 2000);
    aw_task_t *r = round_trip(f, t);
    assert_int_equal(r->state, AW_FAILED);
    assert_int_equal(r->error_type, AW_ERR_INTERRUPTED);
    assert_non_null(aw_task_error_message(r));
    assert_int_equal(r->started_at, T0_WALL);
    assert_int_equal(r->finished_at, T0_WALL + 2000);
    assert_string_equal(aw_task_name(r), "long");
    aw_engine_stats_t st;
    aw_engine_stats(f->b, &st);
    assert_int_equal(st.held[AW_RUNNING], 0);
    assert_int_equal(st.held[AW_FAILED], 1);
    assert_int_equal(st.kinds[0].finished[AW_FAILED], 1);
    for (const aw_queue_t *q = aw_engine_queues(f->b); q; q = q->next)
        assert_int_equal(q->running, 0);
    /* The restart changed it: listeners hear that, once. */
    assert_int_equal(f->n, 1);
    assert_int_equal(f->ev[0], AW_TASK_CHANGED);
    assert_ptr_equal(f->task[0], r);
}

static void a_running_task_being_stopped_ends_as_the_stop_would_have(void **state)
{
    struct fx *f = *state;
    char id1[AW_TASK_ID_SIZE], id2[AW_TASK_ID_SIZE];
    aw_task_record_t c = pending(f, id1, "sleep", "default", "{\"seconds\":60}");
    aw_task_record_t o = pending(f, id2, "sleep", "default", "{\"seconds\":60}");
    c.state = o.state = AW_RUNNING;
    c.started_at = o.started_at = T0_WALL;
    c.stop_reason = AW_STOP_CANCEL;
    o.stop_reason = AW_STOP_TIMEOUT;
    o.timeout_ms = 1500;
    fake_clock_advance(f->b, 3000);
    aw_engine_begin_restore(f->b);
    aw_task_t *rc = restore(f, &c), *ro = restore(f, &o);
    aw_engine_end_restore(f->b);
    assert_int_equal(rc->state, AW_CANCELLED);
    assert_int_equal(rc->error_type, AW_ERR_CANCELLED);
    assert_int_equal(rc->finished_at, T0_WALL + 3000);
    assert_int_equal(ro->state, AW_TIMED_OUT);
    assert_int_equal(ro->error_type, AW_ERR_TIMEOUT);
    assert_int_equal(ro->finished_at, T0_WALL + 3000);
    assert_int_equal(ro->started_at, T0_WALL);
}

static void pending_tasks_run_after_end_restore_in_id_order(void **state)
{
    struct fx *f = *state;
    char id[3][AW_TASK_ID_SIZE];
    aw_task_record_t r[3];
    for (int i = 0; i < 3; i++)
        r[i] = pending(f, id[i], "sleep", "one", "{\"seconds\":0,\"result\":\"r\"}");
    r[2].args = "{\"seconds\":1,\"result\":\"slow\"}";
    r[2].timeout_ms = 3000;
    aw_engine_begin_restore(f->b);
    aw_task_t *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = restore(f, &r[i]);
    /* Nothing starts while the store is still reading. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(t[i]->state, AW_PENDING);
    assert_int_equal(f->n, 0);
    aw_engine_end_restore(f->b);
    /* Queue "one" runs one at a time: each zero-second sleep ends before
     * the next starts, in id order, and the last keeps its timeout. */
    assert_int_equal(f->n, 5);
    static const struct { int task; aw_task_state_t state; } want[] = {
        { 0, AW_RUNNING }, { 0, AW_SUCCEEDED }, { 1, AW_RUNNING }, { 1, AW_SUCCEEDED },
        { 2, AW_RUNNING },
    };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(f->ev[i], AW_TASK_CHANGED);
        assert_ptr_equal(f->task[i], t[want[i].task]);
    }
    assert_int_equal(t[0]->state, AW_SUCCEEDED);
    assert_string_equal(t[0]->result, "\"r\"");
    assert_int_equal(t[2]->state, AW_RUNNING);
    assert_int_equal(t[2]->timeout_ms, 3000);
    fake_clock_advance(f->b, 1000);
    assert_int_equal(t[2]->state, AW_SUCCEEDED);
    assert_string_equal(t[2]->result, "\"slow\"");
}

static void a_pending_task_from_a_busy_queue_is_queued_again(void **state)
{
    struct fx *f = *state;
    create(f->a, NULL, "one", -1, NULL, json_pack("{s:i}", "seconds", 60));
    aw_task_t *waiting = create(f->a, "w", "one", 3000, "kw",
                                json_pack("{s:i, s:s}", "seconds", 1, "result", "r"));
    assert_int_equal(waiting->state, AW_PENDING);
    aw_task_t *r = round_trip(f, waiting);
    /* Engine b's queue "one" is free: the task starts, with its timeout. */
    assert_int_equal(r->state, AW_RUNNING);
    assert_int_equal(r->timeout_ms, 3000);
    assert_string_equal(aw_task_name(r), "w");
    assert_ptr_equal(aw_task_find_idempotent(f->b, "kw"), r);
    fake_clock_advance(f->b, 1000);
    assert_int_equal(r->state, AW_SUCCEEDED);
    assert_string_equal(r->result, "\"r\"");
}

static void an_unknown_queue_is_created_unlimited(void **state)
{
    struct fx *f = *state;
    char id[AW_TASK_ID_SIZE];
    aw_task_record_t r = pending(f, id, "sleep", "gone", "{\"seconds\":5}");
    aw_engine_begin_restore(f->b);
    aw_task_t *t = restore(f, &r);
    aw_engine_end_restore(f->b);
    assert_string_equal(t->queue->name, "gone");
    assert_int_equal(t->queue->concurrency, 0);
    assert_int_equal(t->state, AW_RUNNING);
}

/* ---- ids, keys, retention ---- */

static void the_idempotency_key_survives(void **state)
{
    struct fx *f = *state;
    aw_task_t *done = create(f->a, NULL, NULL, -1, "k-done", json_pack("{s:i}", "seconds", 0));
    aw_task_t *run = create(f->a, NULL, NULL, -1, "k-run", json_pack("{s:i}", "seconds", 9));
    aw_task_t *rd = round_trip(f, done), *rr = round_trip(f, run);
    assert_ptr_equal(aw_task_find_idempotent(f->b, "k-done"), rd);
    assert_ptr_equal(aw_task_find_idempotent(f->b, "k-run"), rr);
    assert_string_equal(aw_task_idempotency_key(rd), "k-done");
    assert_null(aw_task_find_idempotent(f->b, "k-other"));
    /* Forgotten, the key is free again. */
    assert_int_equal(aw_task_forget(f->b, rd), 0);
    assert_null(aw_task_find_idempotent(f->b, "k-done"));
}

static void new_ids_sort_after_restored_ones(void **state)
{
    struct fx *f = *state;
    /* A task from a clock that was ahead: its id is from the "future". */
    wall_now += 3600 * 1000;
    aw_task_t *future = create(f->a, NULL, NULL, -1, NULL, json_pack("{s:i}", "seconds", 0));
    wall_now -= 3600 * 1000;
    round_trip(f, future);
    aw_task_t *fresh = create(f->b, NULL, NULL, -1, NULL, json_pack("{s:i}", "seconds", 0));
    assert_true(strcmp(fresh->id, future->id) > 0);
    aw_task_t *second = create(f->b, NULL, NULL, -1, NULL, json_pack("{s:i}", "seconds", 0));
    assert_true(strcmp(second->id, fresh->id) > 0);
}

static void retention_counts_from_finished_at(void **state)
{
    struct fx *f = *state;
    char id[3][AW_TASK_ID_SIZE];
    aw_task_record_t r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = pending(f, id[i], "sleep", "default", "{\"seconds\":1}");
        r[i].state = AW_SUCCEEDED;
        r[i].result = "{\"kept\":true}";
        r[i].started_at = T0_WALL - RETENTION_MS * 2;
    }
    r[0].finished_at = T0_WALL - RETENTION_MS - 1;      /* already past */
    r[1].finished_at = T0_WALL - RETENTION_MS + 1000;   /* 1 s left */
    r[2].finished_at = T0_WALL;                         /* all of it left */
    r[2].state = AW_FAILED;
    r[2].error_type = AW_ERR_TASK;
    r[2].error_message = "boom";
    aw_engine_begin_restore(f->b);
    aw_task_t *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = restore(f, &r[i]);
    aw_engine_end_restore(f->b);
    assert_string_equal(t[1]->result, "{\"kept\":true}");
    assert_int_equal(t[1]->finished_at, T0_WALL - RETENTION_MS + 1000);
    assert_int_equal(t[2]->error_type, AW_ERR_TASK);
    assert_string_equal(aw_task_error_message(t[2]), "boom");
    fake_clock_advance(f->b, 0);
    assert_null(aw_task_find(f->b, id[0]));
    assert_non_null(aw_task_find(f->b, id[1]));
    fake_clock_advance(f->b, 999);
    assert_non_null(aw_task_find(f->b, id[1]));
    fake_clock_advance(f->b, 1);
    assert_null(aw_task_find(f->b, id[1]));
    assert_non_null(aw_task_find(f->b, id[2]));
    fake_clock_advance(f->b, RETENTION_MS - 1001);
    assert_non_null(aw_task_find(f->b, id[2]));
    fake_clock_advance(f->b, 1);
    assert_null(aw_task_find(f->b, id[2]));
    /* Each left with FORGOTTEN. */
    assert_int_equal(f->n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(f->ev[i], AW_TASK_FORGOTTEN);
}

/* ---- refusals ---- */

static size_t count_tasks(const aw_engine_t *e)
{
    size_t n = 0;
    for (aw_task_t *t = aw_task_after(e, NULL); t; t = aw_task_next(t))
        n++;
    return n;
}

static size_t count_queues(const aw_engine_t *e)
{
    size_t n = 0;
    for (const aw_queue_t *q = aw_engine_queues(e); q; q = q->next)
        n++;
    return n;
}

static void malformed_records_are_refused_and_add_nothing(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f->a, NULL, NULL, -1, NULL, json_pack("{s:i}", "seconds", 0));
    aw_task_t *kept = round_trip(f, t);
    char good_id[AW_TASK_ID_SIZE];
    const aw_task_record_t good = pending(f, good_id, "sleep", "new-queue", "{\"seconds\":1}");
    struct { const char *what; aw_task_record_t r; int rc; } bad[] = {
        { "no id", good, AW_EINVAL },
        { "bad id", good, AW_EINVAL },
        { "duplicate id", good, AW_EINVAL },
        { "unknown kind", good, AW_EKIND },
        { "no kind", good, AW_EKIND },
        { "state -1", good, AW_EINVAL },
        { "state past the last", good, AW_EINVAL },
        { "args an array", good, AW_EINVAL },
        { "args not JSON", good, AW_EINVAL },
        { "no args", good, AW_EINVAL },
        { "no queue", good, AW_EINVAL },
        { "bad error type", good, AW_EINVAL },
        { "bad stop reason", good, AW_EINVAL },
        { "finished without finished_at", good, AW_EINVAL },
        { "pending with finished_at", good, AW_EINVAL },
        { "negative started_at", good, AW_EINVAL },
    };
    size_t i = 0;
    bad[i++].r.id = NULL;
    bad[i++].r.id = "t_nope";
    bad[i++].r.id = kept->id;
    bad[i++].r.kind = "teleport";
    bad[i++].r.kind = NULL;
    bad[i++].r.state = -1;
    bad[i++].r.state = AW_NSTATES;
    bad[i++].r.args = "[]";
    bad[i++].r.args = "{\"seconds\":";
    bad[i++].r.args = NULL;
    bad[i++].r.queue = NULL;
    bad[i++].r.error_type = AW_NERRTYPES;
    bad[i++].r.stop_reason = AW_STOP_INTERRUPT + 1;
    bad[i].r.state = AW_SUCCEEDED;
    bad[i++].r.finished_at = 0;
    bad[i++].r.finished_at = T0_WALL;
    bad[i++].r.started_at = -5;
    assert_int_equal(i, sizeof bad / sizeof bad[0]);

    aw_engine_stats_t before, after;
    aw_engine_stats(f->b, &before);
    size_t ntasks = count_tasks(f->b), nqueues = count_queues(f->b);
    aw_engine_begin_restore(f->b);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        aw_task_t *out = NULL;
        int rc = aw_engine_restore(f->b, &bad[i].r, &out, err, sizeof err);
        if (rc != bad[i].rc)
            fail_msg("%s: rc %d, want %d (%s)", bad[i].what, rc, bad[i].rc, err);
        if (!err[0])
            fail_msg("%s: no message", bad[i].what);
        assert_null(out);
    }
    aw_engine_end_restore(f->b);
    aw_engine_stats(f->b, &after);
    assert_memory_equal(before.held, after.held, sizeof before.held);
    assert_int_equal(count_tasks(f->b), ntasks);
    assert_int_equal(count_queues(f->b), nqueues);   /* "new-queue" was not made */
    assert_null(aw_task_find(f->b, good_id));
    assert_int_equal(f->n, 0);
    /* The record they were all made from is fine. */
    aw_engine_begin_restore(f->b);
    restore(f, &good);
    aw_engine_end_restore(f->b);
    assert_int_equal(count_queues(f->b), nqueues + 1);
    assert_non_null(aw_task_find(f->b, good_id));
}

/* ---- exec: a kind that may refuse a task it accepted before ---- */

static void a_pending_exec_task_of_a_disabled_kind_ends_interrupted(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->b);
    f->b = engine(f->base, false);      /* exec registered, disabled */
    assert_int_equal(aw_engine_listen(f->b, record_event, f), 0);
    char id[AW_TASK_ID_SIZE];
    aw_task_record_t r = pending(f, id, "exec", "default", "{\"argv\":[\"/bin/true\"]}");
    fake_clock_advance(f->b, 1000);
    aw_engine_begin_restore(f->b);
    aw_task_t *t = restore(f, &r);
    aw_engine_end_restore(f->b);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_INTERRUPTED);
    assert_int_equal(t->finished_at, T0_WALL + 1000);
    assert_int_equal(t->started_at, 0);
    assert_string_equal(aw_task_error_message(t),
                        "not restarted: kind 'exec' is disabled by configuration");
    /* Reported once, in its final state; and the loop has nothing to run. */
    assert_int_equal(f->n, 1);
    assert_int_equal(f->ev[0], AW_TASK_CHANGED);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(t->state, AW_FAILED);
}

static void a_pending_exec_task_off_the_allow_list_ends_interrupted(void **state)
{
    struct fx *f = *state;
    configure_exec(f, "/usr/bin/false");
    char id[AW_TASK_ID_SIZE];
    aw_task_record_t r = pending(f, id, "exec", "default", "{\"argv\":[\"/bin/true\"]}");
    aw_engine_begin_restore(f->b);
    aw_task_t *t = restore(f, &r);
    aw_engine_end_restore(f->b);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_INTERRUPTED);
    assert_int_equal(t->finished_at, T0_WALL);
    /* Where /bin is a link, the message also names what it resolves to. */
    const char *msg = aw_task_error_message(t);
    assert_non_null(msg);
    assert_int_equal(strncmp(msg, "not restarted: '/bin/true' ", 26), 0);
    assert_non_null(strstr(msg, "not on the exec allow-list"));
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(t->state, AW_FAILED);
}

static void a_pending_exec_task_that_is_allowed_runs_and_succeeds(void **state)
{
    struct fx *f = *state;
    configure_exec(f, "/bin/*");
    char id[AW_TASK_ID_SIZE];
    aw_task_record_t r = pending(f, id, "exec", "default", "{\"argv\":[\"/bin/true\"]}");
    aw_engine_begin_restore(f->b);
    aw_task_t *t = restore(f, &r);
    assert_int_equal(t->state, AW_PENDING);
    aw_engine_end_restore(f->b);
    assert_int_equal(t->state, AW_RUNNING);
    run_until_done(f, t);
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(t->error_type, AW_ERR_NONE);
    assert_non_null(t->result);
}

static void a_running_exec_task_ends_interrupted_without_its_job(void **state)
{
    struct fx *f = *state;
    configure_exec(f, "/bin/*");
    char id[AW_TASK_ID_SIZE];
    aw_task_record_t r = pending(f, id, "exec", "default", "{\"argv\":[\"/bin/sleep\",\"9\"]}");
    r.state = AW_RUNNING;
    r.started_at = T0_WALL;
    r.process_group = 999999;           /* the store's business, not restore's */
    aw_engine_begin_restore(f->b);
    aw_task_t *t = restore(f, &r);
    aw_engine_end_restore(f->b);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_INTERRUPTED);
    const char *data = NULL;
    size_t len = 1;
    assert_int_equal(aw_task_output(t, AW_STDOUT, &data, &len), 0);
    assert_int_equal(len, 0);
}

/* The memory budget counts restored tasks as it counts created ones, and
 * the list counts (task_list.h) see them too. */
static void restored_tasks_count_their_bytes_and_list_counts(void **state)
{
    struct fx *f = *state;
    aw_task_t *ok = create(f->a, NULL, NULL, -1, NULL,
                           json_pack("{s:i, s:s}", "seconds", 0, "result", "a result"));
    aw_task_t *wait = create(f->a, NULL, "one", -1, NULL, json_pack("{s:i}", "seconds", 9));
    assert_int_equal(ok->state, AW_SUCCEEDED);
    aw_task_t *x = round_trip(f, ok);
    aw_task_t *y = round_trip(f, wait);
    aw_engine_stats_t sa, sb;
    aw_engine_stats(f->a, &sa);
    aw_engine_stats(f->b, &sb);
    assert_int_equal(x->bytes, aw_task_bytes(x));
    assert_int_equal(x->bytes, ok->bytes);
    assert_int_equal(sb.held_bytes, x->bytes + y->bytes);
    for (size_t i = 0; i < sb.nkinds; i++)
        if (strcmp(sb.kinds[i].kind->name, "sleep") == 0)
            assert_int_equal(sb.kinds[i].held, 2);
    const aw_queue_t *q = aw_engine_queues(f->b);
    while (q && strcmp(q->name, "one") != 0)
        q = q->next;
    assert_non_null(q);
    assert_int_equal(q->held, 1);
    assert_int_equal(aw_task_forget(f->b, x), 0);
    aw_engine_stats(f->b, &sb);
    assert_int_equal(sb.held_bytes, y->bytes);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(finished_tasks_come_back_exactly),
        T(a_running_task_ends_failed_interrupted),
        T(a_running_task_being_stopped_ends_as_the_stop_would_have),
        T(pending_tasks_run_after_end_restore_in_id_order),
        T(a_pending_task_from_a_busy_queue_is_queued_again),
        T(an_unknown_queue_is_created_unlimited),
        T(the_idempotency_key_survives),
        T(new_ids_sort_after_restored_ones),
        T(retention_counts_from_finished_at),
        T(malformed_records_are_refused_and_add_nothing),
        T(a_pending_exec_task_of_a_disabled_kind_ends_interrupted),
        T(a_pending_exec_task_off_the_allow_list_ends_interrupted),
        T(a_pending_exec_task_that_is_allowed_runs_and_succeeds),
        T(a_running_exec_task_ends_interrupted_without_its_job),
        T(restored_tasks_count_their_bytes_and_list_counts),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
