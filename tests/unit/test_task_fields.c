/*
 * test_task_fields.c — the task object cut down to chosen fields
 * (lib/task_fields.c): parsing ?fields= (unknown and empty names refused,
 * naming them; id always kept), the cut object is the whole object's
 * members, in its order, with the rest gone; and the table of names
 * matches what the writer writes, so a field added to one is added to the
 * other.
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
#include "task_fields.h"
#include "task_json.h"

#define T0_WALL 1700000000000LL

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    aw_engine_limits_t lim = { .retention_ms = 60000 };
    if (!f || !(f->base = event_base_new()) || !(f->e = aw_engine_new(f->base, &lim)))
        return -1;
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, true), 0);
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

/* A failed sleep with a name, a result and a notification: every field
 * the writer has is set to something other than null. */
static aw_task_t *full_task(struct fx *f)
{
    json_t *args = json_pack("{s:i,s:s,s:{s:s}}", "seconds", 0, "fail", "boom,\"x\"",
                             "result", "k", "a,b}");
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .name = "n,{\"}",
                            .timeout_ms = 5000 };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(args);
    if (rc)
        fail_msg("create: %d %s", rc, err);
    assert_int_equal(aw__task_set_notify(t, "{\"url\":\"http://r.example/h\"}"), 0);
    return t;
}

/* t written with sel, parsed. */
static json_t *render(const aw_task_t *t, aw_task_fields_t sel, aw_buf_t *b)
{
    aw_buf_reset(b);
    aw_buf_adds(b, "[1,");              /* not at the buffer's start */
    aw_task_write_json_fields(b, t, sel);
    aw_buf_adds(b, "]");
    assert_false(aw_buf_failed(b));
    json_error_t je;
    json_t *a = json_loadb(b->data, b->len, 0, &je);
    if (!a)
        fail_msg("not JSON (%s): %.*s", je.text, (int)b->len, b->data);
    json_t *o = json_incref(json_array_get(a, 1));
    json_decref(a);
    return o;
}

static aw_task_fields_t parse_ok(const char *list)
{
    aw_task_fields_t sel = 0;
    char err[160] = "";
    assert_int_equal(aw_task_fields_parse(list, &sel, err, sizeof err), 0);
    assert_true(sel != 0);
    return sel;
}

static void parse_refuses_unknown_and_empty_names_naming_them(void **state)
{
    (void)state;
    const char *bad[] = { "bogus", "id,bogus", "id,", ",id", "", "id,,state", "ID",
                          "state ", "id,statex" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        aw_task_fields_t sel = 42;
        char err[160] = "";
        assert_int_equal(aw_task_fields_parse(bad[i], &sel, err, sizeof err), AW_EINVAL);
        assert_int_equal(sel, 42);
        assert_true(strlen(err) > 0);
    }
    char err[160];
    aw_task_fields_t sel;
    aw_task_fields_parse("id,bogus,state", &sel, err, sizeof err);
    assert_non_null(strstr(err, "\"bogus\""));
    /* A long name is cut short in the message, which stays bounded. */
    char longname[600];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(aw_task_fields_parse(longname, &sel, err, sizeof err), AW_EINVAL);
    assert_true(strlen(err) < sizeof err);
    assert_non_null(strstr(err, "xxxx"));
}

static void the_cut_object_has_only_the_fields_asked_and_id(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = full_task(f);
    aw_buf_t b;
    aw_buf_init(&b);
    json_t *whole = render(t, 0, &b);

    json_t *o = render(t, parse_ok("state,result"), &b);
    assert_int_equal(json_object_size(o), 3);
    assert_true(json_equal(json_object_get(o, "id"), json_object_get(whole, "id")));
    assert_string_equal(json_string_value(json_object_get(o, "state")), "failed");
    assert_true(json_equal(json_object_get(o, "result"), json_object_get(whole, "result")));
    json_decref(o);

    /* Strings with commas, quotes and braces do not confuse the cut. */
    o = render(t, parse_ok("name,error,notify,state,state"), &b);
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "n,{\"}");
    assert_true(json_equal(json_object_get(o, "error"), json_object_get(whole, "error")));
    assert_true(json_equal(json_object_get(o, "notify"), json_object_get(whole, "notify")));
    json_decref(o);

    o = render(t, parse_ok("id"), &b);
    assert_int_equal(json_object_size(o), 1);
    json_decref(o);

    /* Every field asked: the whole object, byte for byte. */
    char all[512] = "";
    for (size_t i = 0; aw_task_json_fields[i]; i++) {
        if (i)
            strcat(all, ",");
        strcat(all, aw_task_json_fields[i]);
    }
    aw_buf_t w;
    aw_buf_init(&w);
    aw_task_write_json(&w, t);
    aw_buf_reset(&b);
    aw_task_write_json_fields(&b, t, parse_ok(all));
    assert_int_equal(b.len, w.len);
    assert_memory_equal(b.data, w.data, w.len);
    aw_buf_close(&w);
    json_decref(whole);
    aw_buf_close(&b);
}

/* Each member the writer writes is named in aw_task_json_fields, in the
 * table's order, and each name there is written: ?fields= can name
 * exactly the fields a task object has. */
static void the_names_are_the_writers_fields_in_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = full_task(f);
    aw_buf_t b;
    aw_buf_init(&b);
    json_t *o = render(t, 0, &b);
    size_t i = 0, n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {    /* jansson keeps the text's order */
        while (aw_task_json_fields[i] && strcmp(aw_task_json_fields[i], key) != 0)
            i++;
        if (!aw_task_json_fields[i])
            fail_msg("the writer writes \"%s\", which aw_task_json_fields lacks "
                     "(or has out of order)", key);
        n++;
    }
    size_t names = 0;
    while (aw_task_json_fields[names])
        names++;
    assert_int_equal(n, names);
    assert_true(names <= 64);           /* a bit each in aw_task_fields_t */
    json_decref(o);
    aw_buf_close(&b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(parse_refuses_unknown_and_empty_names_naming_them),
        T(the_cut_object_has_only_the_fields_asked_and_id),
        T(the_names_are_the_writers_fields_in_order),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
