/*
 * test_kind_group.c — tasks that await tasks: `after` dependencies
 * (lib/task_links.c, engine.c) and the group kind (lib/kind_group.c),
 * driven through the engine's public API with sleep children on a fake
 * clock, and a restart through aw_engine_restore of the records a first
 * engine wrote.
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
#include "task_links.h"
#include "task_record.h"
#include "task_spec.h"

#define T0_WALL 1700000000000LL

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

static aw_engine_t *engine(struct event_base *base, uint64_t max_group_tasks)
{
    aw_engine_limits_t lim = { .retention_ms = 60000, .max_group_tasks = max_group_tasks };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_group, true), 0);
    return e;
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    f->e = engine(f->base, 0);
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

/* Creates from a create body; returns the error code, *out set on 0. */
static int try_json(aw_engine_t *e, const char *body, aw_task_t **out, char *err, size_t n)
{
    json_error_t jerr;
    json_t *o = json_loads(body, 0, &jerr);
    if (!o)
        fail_msg("bad test JSON: %s: %s", jerr.text, body);
    aw_task_spec_t spec;
    int rc = aw_task_spec_parse(o, &spec, err, n);
    if (rc == 0)
        rc = aw_task_create(e, &spec, out, err, n);
    json_decref(o);
    return rc;
}

static aw_task_t *create_json(aw_engine_t *e, const char *body)
{
    char err[256] = "";
    aw_task_t *t = NULL;
    int rc = try_json(e, body, &t, err, sizeof err);
    if (rc)
        fail_msg("create failed: %d %s: %s", rc, aw_strerror(rc), err);
    return t;
}

static aw_task_t *child(const aw_task_t *g, uint32_t i)
{
    const aw_task_links_t *l = aw_task_links(g);
    assert_non_null(l);
    assert_true(i < l->nchildren);
    return l->children[i];
}

static uint64_t held(aw_engine_t *e)
{
    aw_engine_stats_t st;
    aw_engine_stats(e, &st);
    uint64_t n = 0;
    for (int s = 0; s < AW_NSTATES; s++)
        n += st.held[s];
    return n;
}

#define S(sec, res) "{\"kind\":\"sleep\",\"args\":{\"seconds\":" #sec ",\"result\":" #res "}}"
#define F(sec)      "{\"kind\":\"sleep\",\"args\":{\"seconds\":" #sec ",\"fail\":\"no\"}}"
#define G(mode, ...) "{\"kind\":\"group\",\"args\":{\"mode\":\"" mode "\",\"tasks\":[" __VA_ARGS__ "]}}"

/* ---- after ---- */

static void after_waits_for_success_and_fails_on_failure(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create_json(f->e, S(1, 1));
    aw_task_t *b = create_json(f->e, F(2));
    char body[256];
    snprintf(body, sizeof body, "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"after\":[\"%s\"]}",
             a->id);
    aw_task_t *c = create_json(f->e, body);
    snprintf(body, sizeof body, "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"after\":[\"%s\",\"%s\"]}",
             a->id, b->id);
    aw_task_t *d = create_json(f->e, body);
    assert_int_equal(c->state, AW_PENDING);
    assert_int_equal(d->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(c->state, AW_SUCCEEDED);   /* at once, no polling */
    assert_int_equal(d->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(d->state, AW_FAILED);
    assert_int_equal(d->error_type, AW_ERR_DEPENDENCY);
    assert_non_null(strstr(aw_task_error_message(d), b->id));
    assert_non_null(strstr(aw_task_error_message(d), "failed"));
    char want[64];
    snprintf(want, sizeof want, "[\"%s\"]", a->id);
    assert_string_equal(aw_task_after_json(c), want);
    assert_string_equal(aw_task_after_json(a), "[]");
}

/* A failure runs down a chain of 100,000 `after`s: each fails its
 * dependent at once, and no stack grows with the chain. */
static void a_failure_runs_down_a_long_chain(void **state)
{
    struct fx *f = *state;
    aw_task_t *first = create_json(f->e, F(1)), *prev = first;
    for (int i = 0; i < 100000; i++) {
        json_t *after = json_pack("[s]", prev->id);
        aw_task_spec_t spec = { .kind = "sleep", .args = json_pack("{s:i}", "seconds", 0),
                                .timeout_ms = -1, .after = after };
        char err[128];
        assert_int_equal(aw_task_create(f->e, &spec, &prev, err, sizeof err), 0);
        json_decref(spec.args);
        json_decref(after);
    }
    assert_int_equal(prev->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(prev->state, AW_FAILED);
    assert_int_equal(prev->error_type, AW_ERR_DEPENDENCY);
}

static void unknown_dependency_creates_nothing(void **state)
{
    struct fx *f = *state;
    char err[256];
    aw_task_t *t = NULL;
    int rc = try_json(f->e, "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"after\":[\"t_x\"]}",
                      &t, err, sizeof err);
    assert_int_equal(rc, AW_EDEPENDENCY);
    assert_non_null(strstr(err, "t_x"));
    assert_int_equal(held(f->e), 0);
}

/* ---- groups ---- */

static void all_fails_fast_and_cancels_siblings(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("all", S(10, 1) "," F(1) "," S(10, 3)));
    assert_int_equal(g->state, AW_RUNNING);
    assert_int_equal(child(g, 0)->state, AW_RUNNING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(child(g, 1)->state, AW_FAILED);
    assert_int_equal(child(g, 0)->state, AW_CANCELLED);
    assert_int_equal(child(g, 2)->state, AW_CANCELLED);
    assert_int_equal(g->state, AW_FAILED);
    assert_int_equal(g->error_type, AW_ERR_CHILD_FAILED);
    assert_non_null(strstr(aw_task_error_message(g), child(g, 1)->id));
}

static void all_and_settle_give_results_in_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("all", S(3, 1) "," S(1, 2) "," S(0, 3)));
    aw_task_t *s = create_json(f->e, G("settle", S(2, 1) "," F(1)));
    fake_clock_advance(f->e, 3000);
    assert_int_equal(g->state, AW_SUCCEEDED);
    assert_string_equal(g->result, "[1,2,3]");
    assert_int_equal(s->state, AW_SUCCEEDED);
    json_t *r = json_loads(s->result, 0, NULL);
    assert_non_null(r);
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 1), "state")),
                        "failed");
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "id")),
                        child(s, 0)->id);
    json_decref(r);
}

static void race_takes_the_first_success(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("race", F(0) "," S(2, 2) "," S(5, 3)));
    assert_int_equal(g->state, AW_RUNNING);     /* a failure does not end a race */
    fake_clock_advance(f->e, 2000);
    assert_int_equal(g->state, AW_SUCCEEDED);
    assert_string_equal(g->result, "2");
    assert_int_equal(child(g, 2)->state, AW_CANCELLED);
    aw_task_t *h = create_json(f->e, G("race", F(0) "," F(1)));
    fake_clock_advance(f->e, 1000);
    assert_int_equal(h->state, AW_FAILED);
    assert_int_equal(h->error_type, AW_ERR_CHILD_FAILED);
}

static void sequence_releases_one_at_a_time(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("sequence", S(1, 1) "," F(1) "," S(1, 3)));
    assert_int_equal(child(g, 0)->state, AW_RUNNING);
    assert_int_equal(child(g, 1)->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(child(g, 1)->state, AW_RUNNING);
    assert_int_equal(child(g, 2)->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(child(g, 2)->state, AW_CANCELLED);
    assert_int_equal(child(g, 2)->started_at, 0);
    assert_int_equal(g->state, AW_FAILED);
}

static void cancel_and_timeout_go_down(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("sequence", S(5, 1) "," S(5, 2)));
    assert_int_equal(aw_task_cancel(f->e, g), 0);    /* sleeps stop at once */
    assert_int_equal(g->state, AW_CANCELLED);
    assert_int_equal(child(g, 0)->state, AW_CANCELLED);
    assert_int_equal(child(g, 1)->state, AW_CANCELLED);
    aw_task_t *h = create_json(f->e, "{\"kind\":\"group\",\"timeout\":1,\"args\":{\"tasks\":["
                                     S(5, 1) "]}}");
    fake_clock_advance(f->e, 1000);
    assert_int_equal(h->state, AW_TIMED_OUT);
    assert_int_equal(child(h, 0)->state, AW_CANCELLED);
}

static void a_group_takes_no_queue_slot(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "one", 1), 0);
    aw_task_t *g = create_json(f->e, "{\"kind\":\"group\",\"queue\":\"one\",\"args\":{\"tasks\":["
                                     "{\"kind\":\"sleep\",\"queue\":\"one\",\"args\":{\"seconds\":1}},"
                                     "{\"kind\":\"sleep\",\"queue\":\"one\",\"args\":{\"seconds\":1}}]}}");
    assert_int_equal(g->state, AW_RUNNING);
    assert_int_equal(child(g, 0)->state, AW_RUNNING);
    assert_int_equal(child(g, 1)->state, AW_PENDING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(child(g, 1)->state, AW_RUNNING);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(g->state, AW_SUCCEEDED);
}

static void an_invalid_child_or_the_limits_create_nothing(void **state)
{
    struct fx *f = *state;
    char err[256];
    aw_task_t *t = NULL;
    assert_int_equal(try_json(f->e, G("all", S(1, 1) ",{\"kind\":\"sleep\"}"), &t, err, sizeof err),
                     AW_EINVAL);
    assert_non_null(strstr(err, "args.tasks[1]"));
    assert_int_equal(try_json(f->e, G("any", S(1, 1)), &t, err, sizeof err), AW_EINVAL);
    assert_int_equal(held(f->e), 0);
    aw_engine_free(f->e);
    f->e = engine(f->base, 3);
    assert_int_equal(try_json(f->e, G("all", S(1, 1) "," G("all", S(1, 1) "," S(1, 1))),
                              &t, err, sizeof err), AW_EINVAL);
    assert_int_equal(held(f->e), 0);
    create_json(f->e, G("all", S(1, 1) "," G("all", S(1, 1))));
    assert_int_equal(held(f->e), 4);
}

static void deleting_a_group_deletes_its_children(void **state)
{
    struct fx *f = *state;
    aw_task_t *g = create_json(f->e, G("all", S(1, 1) "," S(2, 2)));
    char id[AW_TASK_ID_SIZE];
    strcpy(id, child(g, 0)->id);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(aw_task_forget(f->e, child(g, 0)), AW_EACTIVE);
    fake_clock_advance(f->e, 1000);
    assert_int_equal(aw_task_forget(f->e, g), 0);
    assert_null(aw_task_find(f->e, id));
    assert_int_equal(held(f->e), 0);
}

/* ---- restart ---- */

struct saved {
    aw_task_record_t r[16];
    char            *strings[16][8];
    size_t           n;
};

static const char *keep(struct saved *s, size_t i, int k, const char *v)
{
    return v ? (s->strings[i][k] = strdup(v)) : NULL;
}

/* The records of every task of e, as a store would have them. */
static void save(aw_engine_t *e, struct saved *s)
{
    s->n = 0;
    for (aw_task_t *t = aw_task_after(e, NULL); t; t = aw_task_next(t)) {
        size_t i = s->n++;
        aw_task_record_t *r = &s->r[i];
        aw_task_record_of(t, aw_clock_wall_ms(), r);
        r->id = keep(s, i, 0, r->id);
        r->args = keep(s, i, 1, r->args);
        r->result = keep(s, i, 2, r->result);
        r->error_message = keep(s, i, 3, r->error_message);
        r->after = keep(s, i, 4, r->after);
        r->parent = keep(s, i, 5, r->parent);
        r->group_spec = keep(s, i, 6, r->group_spec);
        r->queue = keep(s, i, 7, r->queue);     /* the engine's queue goes with it */
    }
}

static void saved_free(struct saved *s)
{
    for (size_t i = 0; i < s->n; i++)
        for (int k = 0; k < 8; k++)
            free(s->strings[i][k]);
}

static void restart(struct fx *f, struct saved *s)
{
    aw_engine_free(f->e);
    f->e = engine(f->base, 0);
    aw_engine_begin_restore(f->e);
    char err[256];
    for (size_t i = 0; i < s->n; i++)
        if (aw_engine_restore(f->e, &s->r[i], NULL, err, sizeof err) != 0)
            fail_msg("restore %zu: %s", i, err);
    aw_engine_end_restore(f->e);
}

static void a_restart_resumes_groups_and_dependencies(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = create_json(f->e, S(1, 1));
    char body[256], aid[AW_TASK_ID_SIZE];
    strcpy(aid, a->id);
    snprintf(body, sizeof body, "{\"kind\":\"sleep\",\"args\":{\"seconds\":0,\"result\":2},"
             "\"after\":[\"%s\"]}", a->id);
    aw_task_t *b = create_json(f->e, body);
    aw_task_t *g = create_json(f->e, G("settle", S(0, 1) "," S(5, 2)));
    aw_task_t *q = create_json(f->e, G("sequence", S(5, 1) "," S(0, 2)));
    char bid[AW_TASK_ID_SIZE], gid[AW_TASK_ID_SIZE], qid[AW_TASK_ID_SIZE];
    strcpy(bid, b->id);
    strcpy(gid, g->id);
    strcpy(qid, q->id);
    struct saved s = { 0 };
    save(f->e, &s);
    restart(f, &s);
    saved_free(&s);
    /* a ran: interrupted, so b fails; the settle group goes on and ends
     * with the interrupted child; the sequence stops. */
    b = aw_task_find(f->e, bid);
    g = aw_task_find(f->e, gid);
    q = aw_task_find(f->e, qid);
    assert_int_equal(aw_task_find(f->e, aid)->error_type, AW_ERR_INTERRUPTED);
    assert_int_equal(b->state, AW_FAILED);
    assert_int_equal(b->error_type, AW_ERR_DEPENDENCY);
    assert_int_equal(g->state, AW_SUCCEEDED);
    assert_non_null(strstr(g->result, "interrupted"));
    assert_int_equal(q->state, AW_FAILED);
    assert_int_equal(child(q, 1)->state, AW_CANCELLED);
}

static void a_restart_keeps_pending_children_waiting(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "one", 1), 0);
    aw_task_t *blocker = create_json(f->e, "{\"kind\":\"sleep\",\"queue\":\"one\","
                                           "\"args\":{\"seconds\":5}}");
    (void)blocker;
    aw_task_t *g = create_json(f->e, G("all",
        "{\"kind\":\"sleep\",\"queue\":\"one\",\"args\":{\"seconds\":1,\"result\":1}}"));
    char gid[AW_TASK_ID_SIZE];
    strcpy(gid, g->id);
    assert_int_equal(child(g, 0)->state, AW_PENDING);
    struct saved s = { 0 };
    save(f->e, &s);
    restart(f, &s);
    saved_free(&s);
    g = aw_task_find(f->e, gid);
    assert_int_equal(g->state, AW_RUNNING);
    assert_int_equal(child(g, 0)->state, AW_RUNNING);  /* the blocker ended interrupted */
    fake_clock_advance(f->e, 1000);
    assert_int_equal(g->state, AW_SUCCEEDED);
    assert_string_equal(g->result, "[1]");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(after_waits_for_success_and_fails_on_failure),
        T(a_failure_runs_down_a_long_chain),
        T(unknown_dependency_creates_nothing),
        T(all_fails_fast_and_cancels_siblings),
        T(all_and_settle_give_results_in_order),
        T(race_takes_the_first_success),
        T(sequence_releases_one_at_a_time),
        T(cancel_and_timeout_go_down),
        T(a_group_takes_no_queue_slot),
        T(an_invalid_child_or_the_limits_create_nothing),
        T(deleting_a_group_deletes_its_children),
        T(a_restart_resumes_groups_and_dependencies),
        T(a_restart_keeps_pending_children_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
