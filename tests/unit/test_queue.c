/*
 * test_queue.c — a named queue (lib/queue.c): FIFO order of pending tasks,
 * removal from anywhere in the FIFO, and the concurrency slot rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "queue.h"

/* n bare tasks (a task ends in a flexible array, so no arrays of them). */
static aw_task_t **tasks(size_t n)
{
    aw_task_t **t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        assert_non_null(t[i] = calloc(1, sizeof *t[i] + 1));
    return t;
}

static void free_tasks(aw_task_t **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

static aw_queue_t *queue(const char *name, uint32_t concurrency)
{
    aw_queue_t *q = aw__queue_new(name, concurrency);
    assert_non_null(q);
    return q;
}

/* Pops everything and checks it is exactly want[0..n) in order. */
static void assert_pops(aw_queue_t *q, aw_task_t **want, size_t n)
{
    assert_int_equal(q->npending, n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(aw__queue_pop(q), want[i]);
    assert_null(aw__queue_pop(q));
    assert_int_equal(q->npending, 0);
    assert_null(q->head);
    assert_null(q->tail);
}

static void new_queue_has_its_name_and_is_empty(void **state)
{
    (void)state;
    aw_queue_t *q = queue("builds", 3);
    assert_string_equal(q->name, "builds");
    assert_int_equal(q->concurrency, 3);
    assert_int_equal(q->npending, 0);
    assert_null(aw__queue_pop(q));
    aw__queue_free(q);
    aw__queue_free(NULL);               /* like free(NULL) */
}

static void pop_returns_tasks_in_push_order(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(5);
    for (int i = 0; i < 5; i++)
        aw__queue_push(q, t[i]);
    assert_pops(q, t, 5);
    aw__queue_free(q);
    free_tasks(t, 5);
}

static void push_after_draining_starts_a_new_fifo(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(2);
    aw__queue_push(q, t[0]);
    assert_ptr_equal(aw__queue_pop(q), t[0]);
    aw__queue_push(q, t[1]);
    aw__queue_push(q, t[0]);
    aw_task_t *want[2] = { t[1], t[0] };
    assert_pops(q, want, 2);
    aw__queue_free(q);
    free_tasks(t, 2);
}

static void remove_from_the_middle_keeps_the_order(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(5);
    for (int i = 0; i < 5; i++)
        aw__queue_push(q, t[i]);
    aw__queue_remove(q, t[2]);
    assert_int_equal(q->npending, 4);
    aw_task_t *want[4] = { t[0], t[1], t[3], t[4] };
    assert_pops(q, want, 4);
    aw__queue_free(q);
    free_tasks(t, 5);
}

static void remove_of_head_and_tail_keeps_the_fifo_whole(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(4);
    for (int i = 0; i < 3; i++)
        aw__queue_push(q, t[i]);
    aw__queue_remove(q, t[0]);
    aw__queue_remove(q, t[2]);
    aw__queue_push(q, t[3]);            /* goes after t[1], the new tail */
    aw_task_t *want[2] = { t[1], t[3] };
    assert_pops(q, want, 2);
    aw__queue_free(q);
    free_tasks(t, 4);
}

static void remove_of_the_only_task_empties_the_queue(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(2);
    aw__queue_push(q, t[0]);
    aw__queue_remove(q, t[0]);
    assert_pops(q, NULL, 0);
    aw__queue_push(q, t[1]);
    assert_pops(q, t + 1, 1);
    aw__queue_free(q);
    free_tasks(t, 2);
}

static void remove_of_a_task_not_queued_is_a_noop(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(3);
    aw__queue_push(q, t[0]);
    aw__queue_push(q, t[1]);
    aw__queue_remove(q, t[2]);          /* never pushed */
    assert_pops(q, t, 2);
    aw__queue_free(q);
    free_tasks(t, 3);
}

static void slot_is_free_below_the_concurrency_limit(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 2);
    assert_true(aw__queue_has_slot(q));
    q->running = 1;
    assert_true(aw__queue_has_slot(q));
    q->running = 2;
    assert_false(aw__queue_has_slot(q));
    q->concurrency = 3;
    assert_true(aw__queue_has_slot(q));
    aw__queue_free(q);
}

static void concurrency_zero_is_unlimited(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 0);
    q->running = 1000000;
    assert_true(aw__queue_has_slot(q));
    aw__queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_queue_has_its_name_and_is_empty),
        cmocka_unit_test(pop_returns_tasks_in_push_order),
        cmocka_unit_test(push_after_draining_starts_a_new_fifo),
        cmocka_unit_test(remove_from_the_middle_keeps_the_order),
        cmocka_unit_test(remove_of_head_and_tail_keeps_the_fifo_whole),
        cmocka_unit_test(remove_of_the_only_task_empties_the_queue),
        cmocka_unit_test(remove_of_a_task_not_queued_is_a_noop),
        cmocka_unit_test(slot_is_free_below_the_concurrency_limit),
        cmocka_unit_test(concurrency_zero_is_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
