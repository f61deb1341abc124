/*
 * test_task_list.c — filtered pages of tasks (lib/task_list.c): the
 * counts that answer an unmatchable filter at once, the scan bound that
 * ends a page early with a `next`, a page the caller says is full, and
 * paging that returns every match exactly once, in creation order; the
 * same newest first (desc), and the exact name filter.
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
#include "task_list.h"

#define T0_WALL 1700000000000LL
#define MAX_TASKS 64

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
    const aw_task_t   *page[MAX_TASKS];
    size_t             n;
    size_t             full_at;         /* the page takes this many; 0: any */
};

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    aw_engine_limits_t lim = { .retention_ms = 60000 };
    if (!f || !(f->base = event_base_new()) || !(f->e = aw_engine_new(f->base, &lim)))
        return -1;
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_http, false), 0);
    assert_int_equal(aw_engine_set_queue(f->e, "other", 0), 0);
    assert_int_equal(aw_engine_set_queue(f->e, "empty", 0), 0);
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

/* A sleep of `seconds` (0: succeeded at once) in queue (NULL: default),
 * failing with "boom" when fail is set. */
static aw_task_t *task(struct fx *f, double seconds, const char *queue, bool fail, bool hold)
{
    json_t *args = fail ? json_pack("{s:f,s:s}", "seconds", seconds, "fail", "boom")
                        : json_pack("{s:f}", "seconds", seconds);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .queue = queue,
                            .timeout_ms = -1, .hold = hold };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(args);
    if (rc)
        fail_msg("create: %d %s", rc, err);
    wall_now++;                         /* distinct times: ids in order */
    return t;
}

/* A succeeded sleep named name (NULL: unnamed). */
static aw_task_t *named(struct fx *f, const char *name)
{
    json_t *args = json_pack("{s:i}", "seconds", 0);
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .name = name, .timeout_ms = -1 };
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, &spec, &t, err, sizeof err);
    json_decref(args);
    if (rc)
        fail_msg("create: %d %s", rc, err);
    wall_now++;
    return t;
}

static bool take(void *arg, const aw_task_t *t, size_t n)
{
    struct fx *f = arg;
    assert_int_equal(n, f->n);
    if (f->full_at && n >= f->full_at)
        return false;
    assert_true(f->n < MAX_TASKS);
    f->page[f->n++] = t;
    return true;
}

static size_t list(struct fx *f, unsigned states, const char *kind, const char *queue,
                   const char *after, size_t limit, size_t max_scan, char next[AW_TASK_ID_SIZE])
{
    aw_task_filter_t flt = { .states = states, .kind = kind, .queue = queue };
    f->n = 0;
    size_t n = aw_task_list(f->e, &flt, after, limit, max_scan, take, f, next);
    assert_int_equal(n, f->n);
    return n;
}

/* aw_task_list with any filter (name, desc). */
static size_t list_f(struct fx *f, const aw_task_filter_t *flt, const char *after,
                     size_t limit, size_t max_scan, char next[AW_TASK_ID_SIZE])
{
    f->n = 0;
    size_t n = aw_task_list(f->e, flt, after, limit, max_scan, take, f, next);
    assert_int_equal(n, f->n);
    return n;
}

static void a_filter_no_task_can_match_answers_without_walking(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 20; i++)
        task(f, 0, NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    /* max_scan 1: a walk would stop at once and give a next. */
    assert_int_equal(list(f, 1u << AW_FAILED, NULL, NULL, NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(list(f, AW_STATES_ACTIVE, NULL, NULL, NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(list(f, 0, "http", NULL, NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(list(f, 0, "nosuchkind", NULL, NULL, 100, 1, next), 0);
    assert_int_equal(list(f, 0, NULL, "empty", NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(list(f, 0, NULL, "nosuchqueue", NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
    /* The counts follow state changes and forgets. */
    aw_task_t *r = task(f, 5, NULL, true, false);
    assert_int_equal(list(f, 1u << AW_FAILED, NULL, NULL, NULL, 100, 0, next), 0);
    assert_int_equal(list(f, 1u << AW_RUNNING, NULL, NULL, NULL, 100, 0, next), 1);
    fake_clock_advance(f->e, 5000);
    assert_int_equal(r->state, AW_FAILED);
    assert_int_equal(list(f, 1u << AW_FAILED, NULL, NULL, NULL, 100, 0, next), 1);
    assert_ptr_equal(f->page[0], r);
    assert_int_equal(aw_task_forget(f->e, r), 0);
    assert_int_equal(list(f, 1u << AW_FAILED, NULL, NULL, NULL, 100, 1, next), 0);
    assert_string_equal(next, "");
}

static void the_scan_bound_ends_a_page_early_with_a_next(void **state)
{
    struct fx *f = *state;
    aw_task_t *all[40];
    for (int i = 0; i < 40; i++)
        all[i] = task(f, 0, i % 10 == 9 ? "other" : NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    /* Matches at 9, 19, 29, 39; 5 looked at per page. */
    assert_int_equal(list(f, 0, NULL, "other", NULL, 100, 5, next), 0);
    assert_string_equal(next, all[4]->id);
    assert_int_equal(list(f, 0, NULL, "other", next, 100, 5, next), 1);
    assert_ptr_equal(f->page[0], all[9]);
    assert_string_equal(next, all[9]->id);
    /* Paging to the end gets every match once, in order. */
    size_t got = 0, pages = 0;
    const aw_task_t *seen[8];
    next[0] = '\0';
    do {
        char after[AW_TASK_ID_SIZE];
        memcpy(after, next, sizeof after);
        list(f, 0, NULL, "other", after[0] ? after : NULL, 100, 5, next);
        for (size_t i = 0; i < f->n; i++) {
            assert_true(got < 8);
            seen[got++] = f->page[i];
        }
        assert_true(++pages < 20);
    } while (next[0]);
    assert_int_equal(got, 4);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(seen[i], all[i * 10 + 9]);
}

static void a_full_page_gives_next_as_its_last_task(void **state)
{
    struct fx *f = *state;
    aw_task_t *all[6];
    for (int i = 0; i < 6; i++)
        all[i] = task(f, 0, NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    f->full_at = 2;                     /* e.g. max_list_bytes reached */
    assert_int_equal(list(f, 0, NULL, NULL, NULL, 100, 0, next), 2);
    assert_string_equal(next, all[1]->id);
    assert_int_equal(list(f, 0, NULL, NULL, next, 100, 0, next), 2);
    assert_ptr_equal(f->page[0], all[2]);
    assert_string_equal(next, all[3]->id);
    /* The first task is always taken, whatever the page says. */
    f->full_at = 0;
    assert_int_equal(list(f, 0, NULL, NULL, all[4]->id, 1, 0, next), 1);
    assert_ptr_equal(f->page[0], all[5]);
    assert_string_equal(next, "");
}

static void limit_gives_next_only_when_a_match_follows(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = task(f, 0, NULL, false, false);
    aw_task_t *b = task(f, 0, NULL, false, false);
    task(f, 5, NULL, false, false);    /* running: not a match for succeeded */
    char next[AW_TASK_ID_SIZE];
    assert_int_equal(list(f, 1u << AW_SUCCEEDED, NULL, NULL, NULL, 1, 0, next), 1);
    assert_ptr_equal(f->page[0], a);
    assert_string_equal(next, a->id);
    assert_int_equal(list(f, 1u << AW_SUCCEEDED, NULL, NULL, next, 1, 0, next), 1);
    assert_ptr_equal(f->page[0], b);
    assert_string_equal(next, "");
    assert_int_equal(list(f, 1u << AW_SUCCEEDED, "sleep", "default", NULL, 5, 0, next), 2);
    assert_string_equal(next, "");
}

static void held_tasks_are_not_listed(void **state)
{
    struct fx *f = *state;
    aw_task_t *h = task(f, 5, NULL, false, true);
    aw_task_t *v = task(f, 5, NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    assert_int_equal(list(f, 0, NULL, NULL, NULL, 100, 0, next), 1);
    assert_ptr_equal(f->page[0], v);
    aw_task_release(f->e, h);
    assert_int_equal(list(f, 1u << AW_RUNNING, NULL, NULL, NULL, 100, 0, next), 2);
    assert_ptr_equal(f->page[0], h);
}

static void name_matches_exactly(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = named(f, "backup");
    named(f, NULL);
    named(f, "backup-2");
    named(f, "Backup");
    aw_task_t *d = named(f, "backup");
    named(f, "");
    char next[AW_TASK_ID_SIZE];
    aw_task_filter_t flt = { .name = "backup" };
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 2);
    assert_ptr_equal(f->page[0], a);
    assert_ptr_equal(f->page[1], d);
    assert_string_equal(next, "");
    flt.name = "back";
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 0);
    flt.name = "nobody";
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 0);
    /* With the other filters and newest first. */
    aw_task_filter_t both = { .name = "backup", .states = 1u << AW_SUCCEEDED,
                              .kind = "sleep", .queue = "default", .desc = true };
    assert_int_equal(list_f(f, &both, NULL, 1, 0, next), 1);
    assert_ptr_equal(f->page[0], d);
    assert_string_equal(next, d->id);
    assert_int_equal(list_f(f, &both, next, 1, 0, next), 1);
    assert_ptr_equal(f->page[0], a);
    assert_string_equal(next, "");
    both.states = 1u << AW_FAILED;
    assert_int_equal(list_f(f, &both, NULL, 100, 0, next), 0);
}

static void desc_lists_newest_first_and_pages_to_the_oldest(void **state)
{
    struct fx *f = *state;
    enum { N = 10 };
    aw_task_t *all[N];
    for (int i = 0; i < N; i++)
        all[i] = task(f, 0, NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    aw_task_filter_t flt = { .desc = true };
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(f->page[i], all[N - 1 - i]);
    assert_string_equal(next, "");
    /* Pages of 3: 9 8 7 | 6 5 4 | 3 2 1 | 0, each next its last task. */
    size_t got = 0;
    next[0] = '\0';
    for (int page = 0; page < 4; page++) {
        char after[AW_TASK_ID_SIZE];
        memcpy(after, next, sizeof after);
        size_t n = list_f(f, &flt, page ? after : NULL, 3, 0, next);
        assert_int_equal(n, page < 3 ? 3 : 1);
        for (size_t i = 0; i < n; i++, got++)
            assert_ptr_equal(f->page[i], all[N - 1 - got]);
        if (page < 3)
            assert_string_equal(next, f->page[n - 1]->id);
        else
            assert_string_equal(next, "");
    }
    /* after means "older than": nothing is older than the first. */
    assert_int_equal(list_f(f, &flt, all[0]->id, 100, 0, next), 0);
    assert_string_equal(next, "");
    assert_int_equal(list_f(f, &flt, all[5]->id, 100, 0, next), 5);
    assert_ptr_equal(f->page[0], all[4]);
    assert_ptr_equal(f->page[4], all[0]);
    /* A full page (e.g. max_list_bytes) ends early with a next. */
    f->full_at = 2;
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 2);
    assert_ptr_equal(f->page[1], all[N - 2]);
    assert_string_equal(next, all[N - 2]->id);
}

static void desc_keeps_the_scan_bound_and_every_match_once(void **state)
{
    struct fx *f = *state;
    aw_task_t *all[40];
    for (int i = 0; i < 40; i++)
        all[i] = task(f, 0, i % 10 == 0 ? "other" : NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    aw_task_filter_t flt = { .queue = "other", .desc = true };
    /* Matches at 30, 20, 10, 0 from the newest; 5 looked at per page. */
    assert_int_equal(list_f(f, &flt, NULL, 100, 5, next), 0);
    assert_string_equal(next, all[35]->id);
    assert_int_equal(list_f(f, &flt, next, 100, 5, next), 1);
    assert_ptr_equal(f->page[0], all[30]);
    assert_string_equal(next, all[30]->id);
    size_t got = 0, pages = 0;
    const aw_task_t *seen[8];
    next[0] = '\0';
    do {
        char after[AW_TASK_ID_SIZE];
        memcpy(after, next, sizeof after);
        list_f(f, &flt, after[0] ? after : NULL, 100, 5, next);
        for (size_t i = 0; i < f->n; i++) {
            assert_true(got < 8);
            seen[got++] = f->page[i];
        }
        assert_true(++pages < 20);
    } while (next[0]);
    assert_int_equal(got, 4);
    for (size_t i = 0; i < 4; i++)
        assert_ptr_equal(seen[i], all[30 - i * 10]);
}

/* The cursor a page gave may be deleted (or forgotten) before the next
 * page is asked for: the walk goes on from where it was, both ways. */
static void a_deleted_cursor_goes_on_from_its_place(void **state)
{
    struct fx *f = *state;
    aw_task_t *all[7];
    for (int i = 0; i < 7; i++)
        all[i] = task(f, 0, NULL, false, false);
    char next[AW_TASK_ID_SIZE];
    aw_task_filter_t desc = { .desc = true }, asc = { 0 };
    assert_int_equal(list_f(f, &desc, NULL, 2, 0, next), 2);
    assert_string_equal(next, all[5]->id);
    assert_int_equal(aw_task_forget(f->e, all[5]), 0);
    assert_int_equal(list_f(f, &desc, next, 2, 0, next), 2);
    assert_ptr_equal(f->page[0], all[4]);
    assert_ptr_equal(f->page[1], all[3]);
    assert_int_equal(list_f(f, &asc, NULL, 2, 0, next), 2);
    assert_string_equal(next, all[1]->id);
    assert_int_equal(aw_task_forget(f->e, all[1]), 0);
    assert_int_equal(list_f(f, &asc, next, 2, 0, next), 2);
    assert_ptr_equal(f->page[0], all[2]);
    assert_ptr_equal(f->page[1], all[3]);
}

static void desc_skips_held_tasks(void **state)
{
    struct fx *f = *state;
    aw_task_t *v = task(f, 5, NULL, false, false);
    aw_task_t *h = task(f, 5, NULL, false, true);
    char next[AW_TASK_ID_SIZE];
    aw_task_filter_t flt = { .desc = true };
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 1);
    assert_ptr_equal(f->page[0], v);
    aw_task_release(f->e, h);
    assert_int_equal(list_f(f, &flt, NULL, 100, 0, next), 2);
    assert_ptr_equal(f->page[0], h);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_filter_no_task_can_match_answers_without_walking),
        T(the_scan_bound_ends_a_page_early_with_a_next),
        T(a_full_page_gives_next_as_its_last_task),
        T(limit_gives_next_only_when_a_match_follows),
        T(held_tasks_are_not_listed),
        T(name_matches_exactly),
        T(desc_lists_newest_first_and_pages_to_the_oldest),
        T(desc_keeps_the_scan_bound_and_every_match_once),
        T(a_deleted_cursor_goes_on_from_its_place),
        T(desc_skips_held_tasks),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
