/*
 * test_queue.c — a named queue (lib/queue.c): pending tasks in priority
 * order (higher first), equal priorities in creation (id) order whatever
 * the push order, removal from anywhere in the heap, and the concurrency
 * slot rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "task_id.h"

/* n bare tasks (a task ends in a flexible array, so no arrays of them),
 * with ids in creation order: several in one millisecond, as under load,
 * so that the order inside a millisecond is tested too. */
static aw_task_t **tasks(size_t n)
{
    static aw_task_id_gen_t ids;
    static int64_t ms = 1700000000000;
    if (ids.last_ms == 0)
        assert_int_equal(aw_task_id_gen_init(&ids), 0);
    aw_task_t **t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i] = calloc(1, sizeof *t[i] + 1));
        aw_task_id_next(&ids, i % 3 == 0 ? ++ms : ms, t[i]->id);
    }
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
    assert_null(aw__queue_peek(q));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(want[i]->queue_slot, 0);
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

static void equal_priorities_pop_in_creation_order_whatever_the_push_order(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(6);
    aw__queue_push(q, t[0]);
    assert_ptr_equal(aw__queue_pop(q), t[0]);
    /* A restart, a delayed task whose time came: pushed late, it still
     * goes before the tasks created after it. */
    int order[] = { 4, 1, 5, 0, 3, 2 };
    for (int i = 0; i < 6; i++)
        assert_int_equal(aw__queue_push(q, t[order[i]]), 0);
    assert_pops(q, t, 6);
    aw__queue_free(q);
    free_tasks(t, 6);
}

static void higher_priority_pops_first(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(6);
    int prio[] = { 0, 5, -100, 100, 5, 0 };
    for (int i = 0; i < 6; i++) {
        t[i]->priority = (int8_t)prio[i];
        aw__queue_push(q, t[i]);
    }
    assert_ptr_equal(aw__queue_peek(q), t[3]);
    aw_task_t *want[6] = { t[3], t[1], t[4], t[0], t[5], t[2] };
    assert_pops(q, want, 6);
    aw__queue_free(q);
    free_tasks(t, 6);
}

static void pushing_a_queued_task_again_changes_nothing(void **state)
{
    (void)state;
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(2);
    aw__queue_push(q, t[0]);
    aw__queue_push(q, t[1]);
    aw__queue_push(q, t[0]);
    assert_pops(q, t, 2);
    aw__queue_free(q);
    free_tasks(t, 2);
}

static int by_priority_then_id(const void *a, const void *b)
{
    const aw_task_t *x = *(aw_task_t *const *)a, *y = *(aw_task_t *const *)b;
    if (x->priority != y->priority)
        return y->priority - x->priority;
    return strcmp(x->id, y->id);
}

/* The heap against a sort: random priorities, pushes in a shuffled order,
 * a third removed from anywhere; what pops is the sorted rest. */
static void random_pushes_and_removals_pop_sorted(void **state)
{
    (void)state;
    enum { N = 3000 };
    srand(7);
    aw_queue_t *q = queue("q", 1);
    aw_task_t **t = tasks(N);
    aw_task_t **shuffled = calloc(N, sizeof *shuffled);
    aw_task_t **want = calloc(N, sizeof *want);
    assert_non_null(shuffled);
    assert_non_null(want);
    for (int i = 0; i < N; i++) {
        t[i]->priority = (int8_t)(rand() % 7 * 33 - 99);   /* -99 .. 99 in 7 steps */
        shuffled[i] = t[i];
    }
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        aw_task_t *tmp = shuffled[i];
        shuffled[i] = shuffled[j];
        shuffled[j] = tmp;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(aw__queue_push(q, shuffled[i]), 0);
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 1) {
            aw__queue_remove(q, t[i]);
            assert_int_equal(t[i]->queue_slot, 0);
        } else {
            want[n++] = t[i];
        }
    }
    qsort(want, n, sizeof *want, by_priority_then_id);
    assert_pops(q, want, n);
    aw__queue_free(q);
    free_tasks(t, N);
    free(shuffled);
    free(want);
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

static void remove_of_head_and_tail_keeps_the_heap_whole(void **state)
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
        cmocka_unit_test(equal_priorities_pop_in_creation_order_whatever_the_push_order),
        cmocka_unit_test(higher_priority_pops_first),
        cmocka_unit_test(pushing_a_queued_task_again_changes_nothing),
        cmocka_unit_test(random_pushes_and_removals_pop_sorted),
        cmocka_unit_test(remove_from_the_middle_keeps_the_order),
        cmocka_unit_test(remove_of_head_and_tail_keeps_the_heap_whole),
        cmocka_unit_test(remove_of_the_only_task_empties_the_queue),
        cmocka_unit_test(remove_of_a_task_not_queued_is_a_noop),
        cmocka_unit_test(slot_is_free_below_the_concurrency_limit),
        cmocka_unit_test(concurrency_zero_is_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
