/*
 * test_task_table.c — the task table (lib/task_table.c): lookup by id,
 * creation order and paging with aw__table_after (and newest first with
 * aw__table_before), growth, the
 * Idempotency-Key index, and the table's reference on each task.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task_table.h"

#define T0 1700000000000LL

struct fx {
    aw_task_table_t  tb;
    aw_task_id_gen_t ids;
    int64_t          ms;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || aw__table_init(&f->tb) < 0 || aw_task_id_gen_init(&f->ids) < 0)
        return -1;
    f->ms = T0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw__table_close(&f->tb);
    free(f);
    return 0;
}

/* A bare task with a fresh id (later than every earlier one) and one
 * reference, the caller's. key may be NULL. */
static aw_task_t *new_task(struct fx *f, const char *key)
{
    aw_task_t *t = calloc(1, sizeof *t + sizeof "{}");
    assert_non_null(t);
    memcpy(t->args, "{}", sizeof "{}");
    t->refs = 1;
    t->timeout_ms = -1;
    aw_task_id_next(&f->ids, f->ms++, t->id);
    assert_int_equal(aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, key), 0);
    return t;
}

/* Inserts and hands the only reference to the table. */
static aw_task_t *add(struct fx *f, const char *key)
{
    aw_task_t *t = new_task(f, key);
    assert_int_equal(aw__table_insert(&f->tb, t), 0);
    aw_task_unref(t);
    return t;
}

static void inserted_task_is_found_by_id(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, NULL), *b = add(f, NULL);
    assert_ptr_equal(aw__table_find(&f->tb, a->id), a);
    assert_ptr_equal(aw__table_find(&f->tb, b->id), b);
    assert_int_equal(f->tb.count, 2);
    assert_true(a->listed);
}

static void unknown_id_is_not_found(void **state)
{
    struct fx *f = *state;
    add(f, NULL);
    aw_task_t *other = new_task(f, NULL);       /* never inserted */
    assert_null(aw__table_find(&f->tb, other->id));
    assert_null(aw__table_find(&f->tb, "t_nope"));
    assert_null(aw__table_find(&f->tb, ""));
    aw_task_unref(other);
}

static void removed_task_is_not_found_and_loses_the_table_reference(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = new_task(f, NULL);
    assert_int_equal(aw__table_insert(&f->tb, t), 0);
    assert_int_equal(t->refs, 2);               /* ours and the table's */
    aw__table_remove(&f->tb, t);
    assert_int_equal(t->refs, 1);
    assert_false(t->listed);
    assert_null(aw__table_find(&f->tb, t->id));
    assert_int_equal(f->tb.count, 0);
    assert_null(f->tb.first);
    aw__table_remove(&f->tb, t);                /* not listed: a no-op */
    assert_int_equal(t->refs, 1);
    aw_task_unref(t);
}

static void close_drops_the_table_references(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = new_task(f, "k");
    assert_int_equal(aw__table_insert(&f->tb, t), 0);
    add(f, NULL);
    aw__table_close(&f->tb);
    assert_int_equal(t->refs, 1);
    assert_false(t->listed);
    aw_task_unref(t);
    assert_int_equal(aw__table_init(&f->tb), 0);    /* for teardown */
}

/* Walks first..last and checks the tasks are exactly want[0..n). */
static void assert_order(const aw_task_table_t *tb, aw_task_t **want, size_t n)
{
    size_t i = 0;
    for (aw_task_t *t = tb->first; t; t = t->next, i++) {
        if (i >= n)
            fail_msg("more than %zu tasks listed", n);
        if (t != want[i])
            fail_msg("position %zu: %s, want %s", i, t->id, want[i]->id);
    }
    assert_int_equal(i, n);
    assert_ptr_equal(tb->last, n ? want[n - 1] : NULL);
}

static void tasks_are_listed_in_creation_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = add(f, NULL);
    assert_order(&f->tb, t, 5);
    aw__table_remove(&f->tb, t[2]);
    aw_task_t *rest[4] = { t[0], t[1], t[3], t[4] };
    assert_order(&f->tb, rest, 4);
    aw__table_remove(&f->tb, t[0]);
    aw__table_remove(&f->tb, t[4]);
    aw_task_t *mid[2] = { t[1], t[3] };
    assert_order(&f->tb, mid, 2);
}

/* Tasks loaded out of order still list in id order. */
static void out_of_order_inserts_are_listed_in_id_order(void **state)
{
    struct fx *f = *state;
    aw_task_t *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = new_task(f, NULL);
    const int ins[4] = { 2, 0, 3, 1 };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(aw__table_insert(&f->tb, t[ins[i]]), 0);
        aw_task_unref(t[ins[i]]);
    }
    assert_order(&f->tb, t, 4);
}

static void after_null_is_the_first_task(void **state)
{
    struct fx *f = *state;
    assert_null(aw__table_after(&f->tb, NULL));
    aw_task_t *a = add(f, NULL);
    add(f, NULL);
    assert_ptr_equal(aw__table_after(&f->tb, NULL), a);
}

static void after_an_existing_id_is_the_next_task(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, NULL), *b = add(f, NULL), *c = add(f, NULL);
    assert_ptr_equal(aw__table_after(&f->tb, a->id), b);
    assert_ptr_equal(aw__table_after(&f->tb, b->id), c);
    assert_null(aw__table_after(&f->tb, c->id));
}

static void after_a_deleted_id_is_the_next_greater_task(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, NULL), *b = add(f, NULL), *c = add(f, NULL);
    char gone[AW_TASK_ID_SIZE];
    memcpy(gone, b->id, sizeof gone);
    aw__table_remove(&f->tb, b);
    assert_ptr_equal(aw__table_after(&f->tb, gone), c);
    memcpy(gone, c->id, sizeof gone);
    aw__table_remove(&f->tb, c);
    assert_null(aw__table_after(&f->tb, gone));
    memcpy(gone, a->id, sizeof gone);
    aw_task_t *d = add(f, NULL);
    aw__table_remove(&f->tb, a);
    assert_ptr_equal(aw__table_after(&f->tb, gone), d);
}

static void after_an_id_below_every_task_is_the_first(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, NULL);
    add(f, NULL);
    assert_ptr_equal(aw__table_after(&f->tb, "t_0000000000000000000000000"), a);
    assert_null(aw__table_after(&f->tb, "t_ZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
}

static void before_walks_newest_first(void **state)
{
    struct fx *f = *state;
    assert_null(aw__table_before(&f->tb, NULL));
    aw_task_t *a = add(f, NULL), *b = add(f, NULL), *c = add(f, NULL);
    assert_ptr_equal(aw__table_before(&f->tb, NULL), c);
    assert_ptr_equal(aw__table_before(&f->tb, c->id), b);
    assert_ptr_equal(aw__table_before(&f->tb, b->id), a);
    assert_null(aw__table_before(&f->tb, a->id));
    assert_null(aw__table_before(&f->tb, "t_0000000000000000000000000"));
    assert_ptr_equal(aw__table_before(&f->tb, "t_ZZZZZZZZZZZZZZZZZZZZZZZZZZ"), c);
}

/* A deleted cursor anywhere in the list, near either end or in the
 * middle, lands on the next older task (the walk goes from both ends). */
static void before_a_deleted_id_is_the_next_smaller_task(void **state)
{
    struct fx *f = *state;
    enum { N = 9 };
    aw_task_t *t[N];
    for (int i = 0; i < N; i++)
        t[i] = add(f, NULL);
    char gone[N][AW_TASK_ID_SIZE];
    for (int i = 1; i < N; i += 2) {    /* remove every odd one */
        memcpy(gone[i], t[i]->id, AW_TASK_ID_SIZE);
        aw__table_remove(&f->tb, t[i]);
    }
    for (int i = 1; i < N; i += 2) {
        assert_ptr_equal(aw__table_before(&f->tb, gone[i]), t[i - 1]);
        assert_ptr_equal(aw__table_after(&f->tb, gone[i]), t[i + 1]);
    }
    /* The first and last gone too: nothing before, the new last after. */
    memcpy(gone[0], t[0]->id, AW_TASK_ID_SIZE);
    aw__table_remove(&f->tb, t[0]);
    assert_null(aw__table_before(&f->tb, gone[0]));
    assert_null(aw__table_before(&f->tb, gone[1]));
    memcpy(gone[N - 1], t[N - 1]->id, AW_TASK_ID_SIZE);
    aw__table_remove(&f->tb, t[N - 1]);
    assert_ptr_equal(aw__table_before(&f->tb, gone[N - 1]), t[N - 3]);
}

static void ten_thousand_tasks_grow_the_table_and_stay_found(void **state)
{
    struct fx *f = *state;
    enum { N = 10000 };
    aw_task_t **t = calloc(N, sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < N; i++) {
        t[i] = add(f, NULL);
        if (i % 3)
            f->ms--;                    /* several ids per millisecond */
    }
    assert_int_equal(f->tb.count, N);
    assert_true(f->tb.nbuckets > 1024);
    for (int i = 0; i < N; i++)
        if (aw__table_find(&f->tb, t[i]->id) != t[i])
            fail_msg("task %d (%s) not found after growth", i, t[i]->id);
    assert_order(&f->tb, t, N);
    for (int i = 0; i < N; i += 2)
        aw__table_remove(&f->tb, t[i]);
    for (int i = 1; i < N; i += 2)
        assert_ptr_equal(aw__table_find(&f->tb, t[i]->id), t[i]);
    assert_int_equal(f->tb.count, N / 2);
    free(t);
}

static void idempotency_key_finds_its_task(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, "key-a");
    add(f, NULL);
    aw_task_t *b = add(f, "key-b");
    assert_ptr_equal(aw__table_find_key(&f->tb, "key-a"), a);
    assert_ptr_equal(aw__table_find_key(&f->tb, "key-b"), b);
    assert_null(aw__table_find_key(&f->tb, "key-c"));
    assert_null(aw__table_find_key(&f->tb, ""));
}

static void idempotency_key_goes_with_its_task(void **state)
{
    struct fx *f = *state;
    aw_task_t *a = add(f, "key-a");
    aw_task_t *b = add(f, "key-b");
    aw__table_remove(&f->tb, a);
    assert_null(aw__table_find_key(&f->tb, "key-a"));
    assert_ptr_equal(aw__table_find_key(&f->tb, "key-b"), b);
}

static void many_idempotency_keys_stay_found(void **state)
{
    struct fx *f = *state;
    enum { N = 1000 };
    aw_task_t *t[N];
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        t[i] = add(f, key);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_ptr_equal(aw__table_find_key(&f->tb, key), t[i]);
    }
    for (int i = 0; i < N; i += 2)
        aw__table_remove(&f->tb, t[i]);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        assert_ptr_equal(aw__table_find_key(&f->tb, key), i % 2 ? t[i] : NULL);
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(inserted_task_is_found_by_id),
        T(unknown_id_is_not_found),
        T(removed_task_is_not_found_and_loses_the_table_reference),
        T(close_drops_the_table_references),
        T(tasks_are_listed_in_creation_order),
        T(out_of_order_inserts_are_listed_in_id_order),
        T(after_null_is_the_first_task),
        T(after_an_existing_id_is_the_next_task),
        T(after_a_deleted_id_is_the_next_greater_task),
        T(after_an_id_below_every_task_is_the_first),
        T(before_walks_newest_first),
        T(before_a_deleted_id_is_the_next_smaller_task),
        T(ten_thousand_tasks_grow_the_table_and_stay_found),
        T(idempotency_key_finds_its_task),
        T(idempotency_key_goes_with_its_task),
        T(many_idempotency_keys_stay_found),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
