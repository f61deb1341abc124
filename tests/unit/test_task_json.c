/*
 * test_task_json.c — the contract's task object (lib/task_json.c): the text
 * parses as JSON and carries every field with the right type and value, for
 * tasks in each kind of state. Tasks come from a real engine on a fake clock.
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
#include "task_json.h"

#define T0_WALL 1700000000123LL         /* 2023-11-14T22:13:20.123Z */


struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    json_t            *obj;             /* the last object parsed */
};

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = 60000 };
    if (!(f->e = aw_engine_new(f->base, &lim)) ||
        aw_engine_add_kind(f->e, &aw_kind_sleep, true) < 0 ||
        aw_engine_set_queue(f->e, "one", 1) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    json_decref(f->obj);
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

static aw_task_t *create(struct fx *f, json_t *args, const char *name,
                         const char *queue, int64_t timeout_ms)
{
    assert_non_null(args);
    aw_task_spec_t spec = {
        .kind = "sleep", .args = args, .name = name, .queue = queue,
        .timeout_ms = timeout_ms,
    };
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
    return create(f, json_pack("{s:i}", "seconds", seconds), NULL, NULL, -1);
}

/* Writes t, checks the text parses as one JSON object with exactly the
 * contract's fields, and returns it (owned by the fixture). */
static json_t *render(struct fx *f, const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    assert_false(aw_buf_failed(&b));
    char *text = aw_buf_steal(&b, NULL);
    assert_non_null(text);
    json_error_t jerr;
    json_decref(f->obj);
    f->obj = json_loads(text, 0, &jerr);
    if (!f->obj)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    free(text);
    assert_true(json_is_object(f->obj));
    static const char *const fields[] = {
        "id", "kind", "name", "queue", "state", "done", "args", "timeout",
        "created_at", "started_at", "finished_at", "result", "error", "notify",
        "priority", "not_before",
        "attempt", "last_error",
        "after", "parent", "children",
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!json_object_get(f->obj, fields[i]))
            fail_msg("field %s is missing", fields[i]);
    assert_int_equal(json_object_size(f->obj), sizeof fields / sizeof fields[0]);
    return f->obj;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("field %s is not a string", key);
    return json_string_value(v);
}

static void assert_null_field(json_t *o, const char *key)
{
    if (!json_is_null(json_object_get(o, key)))
        fail_msg("field %s is not null", key);
}

static void pending_task_has_every_field(void **state)
{
    struct fx *f = *state;
    create(f, json_pack("{s:i}", "seconds", 5), NULL, "one", -1);
    aw_task_t *t = create(f, json_pack("{s:i,s:s}", "seconds", 1, "result", "r"),
                          NULL, "one", -1);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "id"), t->id);
    assert_string_equal(str(o, "kind"), "sleep");
    assert_null_field(o, "name");
    assert_string_equal(str(o, "queue"), "one");
    assert_string_equal(str(o, "state"), "pending");
    assert_true(json_is_false(json_object_get(o, "done")));
    json_t *want = json_pack("{s:i,s:s}", "seconds", 1, "result", "r");
    assert_true(json_equal(json_object_get(o, "args"), want));
    json_decref(want);
    assert_null_field(o, "timeout");
    assert_string_equal(str(o, "created_at"), "2023-11-14T22:13:20.123Z");
    assert_null_field(o, "started_at");
    assert_null_field(o, "finished_at");
    assert_null_field(o, "result");
    assert_null_field(o, "error");
    assert_null_field(o, "notify");
    assert_int_equal(json_integer_value(json_object_get(o, "priority")), 0);
    assert_null_field(o, "not_before");
    /* The scheduling fields, as a create with them leaves them. */
    t->priority = -7;
    assert_int_equal(aw__task_set_not_before(t, T0_WALL + 1500), 0);
    o = render(f, t);
    assert_int_equal(json_integer_value(json_object_get(o, "priority")), -7);
    assert_string_equal(str(o, "not_before"), "2023-11-14T22:13:21.623Z");
}

/* The delivery state, and the url without the headers: they may carry
 * the receiver's credentials. */
static void notify_shows_url_and_state_not_headers(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 5);
    assert_int_equal(aw__task_set_notify(t, "{\"url\":\"http://r.example/h\","
                                            "\"headers\":{\"Authorization\":\"Bearer s\"}}"), 0);
    aw_task_notify_t *n = aw_task_notify(t);
    n->attempts = 2;
    n->last_status = 503;
    n->last_error = strdup("the receiver answered HTTP status 503");
    json_t *o = render(f, t);
    json_t *want = json_pack("{s:s,s:s,s:i,s:i,s:s}", "url", "http://r.example/h",
                             "state", "pending", "attempts", 2, "last_status", 503,
                             "last_error", "the receiver answered HTTP status 503");
    assert_true(json_equal(json_object_get(o, "notify"), want));
    json_decref(want);
    n->state = AW_NOTIFY_DELIVERED;
    n->last_status = 200;
    free(n->last_error);
    n->last_error = NULL;
    o = render(f, t);
    assert_string_equal(str(json_object_get(o, "notify"), "state"), "delivered");
    assert_null_field(json_object_get(o, "notify"), "last_error");
}

static void running_task_has_started_at(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 5);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "state"), "running");
    assert_true(json_is_false(json_object_get(o, "done")));
    assert_string_equal(str(o, "started_at"), "2023-11-14T22:13:20.123Z");
    assert_null_field(o, "finished_at");
    assert_null_field(o, "error");
}

static void succeeded_task_has_result_and_times(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:i,s:{s:[i,s]}}", "seconds", 2,
                                       "result", "items", 1, "two"), NULL, NULL, -1);
    advance(f, 2000);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "state"), "succeeded");
    assert_true(json_is_true(json_object_get(o, "done")));
    json_t *want = json_pack("{s:[i,s]}", "items", 1, "two");
    assert_true(json_equal(json_object_get(o, "result"), want));
    json_decref(want);
    assert_string_equal(str(o, "created_at"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str(o, "started_at"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str(o, "finished_at"), "2023-11-14T22:13:22.123Z");
    assert_null_field(o, "error");
}

static void failed_task_has_error_type_and_message(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:i,s:s}", "seconds", 1, "fail", "out of \"ink\""),
                          NULL, NULL, -1);
    advance(f, 1000);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "state"), "failed");
    assert_true(json_is_true(json_object_get(o, "done")));
    json_t *err = json_object_get(o, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(err), 2);
    assert_string_equal(str(err, "type"), "task_error");
    assert_string_equal(str(err, "message"), "out of \"ink\"");
    assert_null_field(o, "result");
    assert_string_equal(str(o, "finished_at"), "2023-11-14T22:13:21.123Z");
}

static void timed_out_task_has_timeout_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:i}", "seconds", 10), NULL, NULL, 1500);
    advance(f, 1500);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "state"), "timed_out");
    assert_true(json_is_true(json_object_get(o, "done")));
    json_t *err = json_object_get(o, "error");
    assert_true(json_is_object(err));
    assert_string_equal(str(err, "type"), "timeout");
    assert_true(strlen(str(err, "message")) > 0);
    assert_true(json_number_value(json_object_get(o, "timeout")) == 1.5);
    assert_null_field(o, "result");
}

static void cancelled_task_has_cancelled_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = sleeper(f, 10);
    assert_int_equal(aw_task_cancel(f->e, t), 0);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "state"), "cancelled");
    json_t *err = json_object_get(o, "error");
    assert_string_equal(str(err, "type"), "cancelled");
    assert_true(strlen(str(err, "message")) > 0);
}

static void timeout_is_null_without_and_seconds_with(void **state)
{
    struct fx *f = *state;
    json_t *o = render(f, sleeper(f, 1));
    assert_null_field(o, "timeout");
    o = render(f, create(f, json_pack("{s:i}", "seconds", 1), NULL, NULL, 2000));
    assert_true(json_is_number(json_object_get(o, "timeout")));
    assert_true(json_number_value(json_object_get(o, "timeout")) == 2.0);
    o = render(f, create(f, json_pack("{s:i}", "seconds", 1), NULL, NULL, 250));
    assert_true(json_number_value(json_object_get(o, "timeout")) == 0.25);
}

static void name_with_quotes_and_newlines_is_escaped(void **state)
{
    struct fx *f = *state;
    const char *name = "say \"hi\"\nline two\\\tend\x01 caf\xc3\xa9";
    aw_task_t *t = create(f, json_pack("{s:i}", "seconds", 1), name, NULL, -1);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "name"), name);
}

static void queue_name_is_escaped(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "odd \"queue\"", 0), 0);
    aw_task_t *t = create(f, json_pack("{s:i}", "seconds", 1), NULL, "odd \"queue\"", -1);
    json_t *o = render(f, t);
    assert_string_equal(str(o, "queue"), "odd \"queue\"");
}

static void args_with_strings_to_escape_round_trip(void **state)
{
    struct fx *f = *state;
    json_t *args = json_pack("{s:f,s:s,s:{s:[n,b,f]}}", "seconds", 0.5,
                             "result", "a \"quoted\"\nvalue \xe2\x82\xac",
                             "extra", "list", 1, 2.25);
    json_t *want = json_deep_copy(args);
    aw_task_t *t = create(f, args, NULL, NULL, -1);
    json_t *o = render(f, t);
    assert_true(json_equal(json_object_get(o, "args"), want));
    advance(f, 500);
    o = render(f, t);
    assert_string_equal(json_string_value(json_object_get(o, "result")),
                        "a \"quoted\"\nvalue \xe2\x82\xac");
    json_decref(want);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(pending_task_has_every_field),
        T(running_task_has_started_at),
        T(succeeded_task_has_result_and_times),
        T(failed_task_has_error_type_and_message),
        T(timed_out_task_has_timeout_error),
        T(cancelled_task_has_cancelled_error),
        T(timeout_is_null_without_and_seconds_with),
        T(name_with_quotes_and_newlines_is_escaped),
        T(queue_name_is_escaped),
        T(args_with_strings_to_escape_round_trip),
        T(notify_shows_url_and_state_not_headers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
