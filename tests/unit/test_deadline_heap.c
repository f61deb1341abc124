/*
 * test_deadline_heap.c — the deadline min-heap (lib/deadline_heap.c):
 * entries come out in deadline order through any mix of inserts, removals
 * and reschedules, checked against a plain array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "deadline_heap.h"

/* Takes the earliest entry out; returns its node (NULL when empty). */
static aw_heap_node_t *pop(aw_heap_t *h, int64_t *when)
{
    const aw_heap_entry_t *top = aw_heap_peek(h);
    if (!top)
        return NULL;
    aw_heap_node_t *n = top->node;
    *when = top->when;
    aw_heap_remove(h, n);
    return n;
}

static void empty_heap_has_no_top(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    assert_null(aw_heap_peek(&h));
    aw_heap_close(&h);
}

static void entries_pop_in_deadline_order(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t n[5] = { { 0 } };
    const int64_t when[5] = { 50, 10, 40, 20, 30 };
    for (int i = 0; i < 5; i++)
        assert_int_equal(aw_heap_set(&h, &n[i], when[i]), 0);
    const int order[5] = { 1, 3, 4, 2, 0 };
    for (int i = 0; i < 5; i++) {
        int64_t w;
        assert_ptr_equal(pop(&h, &w), &n[order[i]]);
        assert_int_equal(w, when[order[i]]);
    }
    assert_null(aw_heap_peek(&h));
    aw_heap_close(&h);
}

static void equal_deadlines_all_come_out(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t n[100] = { { 0 } };
    for (int i = 0; i < 100; i++)
        assert_int_equal(aw_heap_set(&h, &n[i], 7), 0);
    int seen[100] = { 0 };
    int64_t w;
    aw_heap_node_t *p;
    int count = 0;
    while ((p = pop(&h, &w))) {
        assert_int_equal(w, 7);
        seen[p - n]++;
        count++;
    }
    assert_int_equal(count, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    aw_heap_close(&h);
}

static void removed_node_has_slot_zero(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t a = { 0 }, b = { 0 }, c = { 0 };
    aw_heap_set(&h, &a, 1);
    aw_heap_set(&h, &b, 2);
    aw_heap_set(&h, &c, 3);
    assert_true(aw_heap_scheduled(&b));
    aw_heap_remove(&h, &b);
    assert_int_equal(b.slot, 0);
    assert_false(aw_heap_scheduled(&b));
    int64_t w;
    assert_ptr_equal(pop(&h, &w), &a);
    assert_ptr_equal(pop(&h, &w), &c);
    assert_null(aw_heap_peek(&h));
    aw_heap_close(&h);
}

static void remove_of_unscheduled_node_is_a_noop(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t a = { 0 }, b = { 0 }, never = { 0 };
    aw_heap_set(&h, &a, 5);
    aw_heap_set(&h, &b, 9);
    aw_heap_remove(&h, &never);
    aw_heap_remove(&h, &never);
    assert_int_equal(h.len, 2);
    assert_int_equal(never.slot, 0);
    aw_heap_remove(&h, &a);
    aw_heap_remove(&h, &a);             /* twice: the second does nothing */
    assert_int_equal(h.len, 1);
    assert_ptr_equal(aw_heap_peek(&h)->node, &b);
    aw_heap_close(&h);
}

static void reschedule_moves_a_node_both_ways(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t a = { 0 }, b = { 0 }, c = { 0 };
    aw_heap_set(&h, &a, 10);
    aw_heap_set(&h, &b, 20);
    aw_heap_set(&h, &c, 30);
    aw_heap_set(&h, &a, 25);            /* later: b now comes first */
    assert_ptr_equal(aw_heap_peek(&h)->node, &b);
    aw_heap_set(&h, &c, 5);             /* earlier: c jumps ahead */
    assert_ptr_equal(aw_heap_peek(&h)->node, &c);
    assert_int_equal(h.len, 3);         /* moved, not added twice */
    int64_t w;
    assert_ptr_equal(pop(&h, &w), &c);
    assert_int_equal(w, 5);
    assert_ptr_equal(pop(&h, &w), &b);
    assert_ptr_equal(pop(&h, &w), &a);
    assert_int_equal(w, 25);
    aw_heap_close(&h);
}

static void close_unschedules_remaining_nodes(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t n[3] = { { 0 } };
    for (int i = 0; i < 3; i++)
        aw_heap_set(&h, &n[i], i);
    aw_heap_close(&h);
    for (int i = 0; i < 3; i++)
        assert_false(aw_heap_scheduled(&n[i]));
    assert_null(aw_heap_peek(&h));
}

/* A small deterministic generator, so a failure reproduces. */
static uint64_t rng_state = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

#define NNODES 3000
#define NOPS   30000

/* The earliest deadline among scheduled reference entries, or -1. */
static int64_t ref_min(const int64_t *when, const bool *sched)
{
    int64_t m = -1;
    for (int i = 0; i < NNODES; i++)
        if (sched[i] && (m < 0 || when[i] < m))
            m = when[i];
    return m;
}

static void random_operations_keep_deadline_order(void **state)
{
    (void)state;
    aw_heap_t h;
    aw_heap_init(&h);
    aw_heap_node_t *n = calloc(NNODES, sizeof *n);
    int64_t *when = calloc(NNODES, sizeof *when);
    bool *sched = calloc(NNODES, sizeof *sched);
    assert_non_null(n);
    assert_non_null(when);
    assert_non_null(sched);
    uint32_t count = 0;

    for (int op = 0; op < NOPS; op++) {
        int i = (int)rnd(NNODES);
        if (rnd(3) == 0) {                      /* remove */
            aw_heap_remove(&h, &n[i]);
            if (sched[i])
                count--;
            sched[i] = false;
            assert_int_equal(n[i].slot, 0);
        } else {                                /* insert or reschedule */
            int64_t w = rnd(100000);
            assert_int_equal(aw_heap_set(&h, &n[i], w), 0);
            if (!sched[i])
                count++;
            sched[i] = true;
            when[i] = w;
        }
        assert_int_equal(h.len, count);
        if (op % 97 == 0) {
            const aw_heap_entry_t *top = aw_heap_peek(&h);
            int64_t m = ref_min(when, sched);
            if (m < 0)
                assert_null(top);
            else
                assert_int_equal(top->when, m);
        }
    }

    /* Drain: every scheduled node comes out once, in order, with its time. */
    int64_t last = -1, w;
    aw_heap_node_t *p;
    uint32_t popped = 0;
    while ((p = pop(&h, &w))) {
        int i = (int)(p - n);
        assert_true(sched[i]);
        assert_int_equal(w, when[i]);
        assert_true(w >= last);
        sched[i] = false;
        last = w;
        popped++;
    }
    assert_int_equal(popped, count);
    aw_heap_close(&h);
    free(n);
    free(when);
    free(sched);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_heap_has_no_top),
        cmocka_unit_test(entries_pop_in_deadline_order),
        cmocka_unit_test(equal_deadlines_all_come_out),
        cmocka_unit_test(removed_node_has_slot_zero),
        cmocka_unit_test(remove_of_unscheduled_node_is_a_noop),
        cmocka_unit_test(reschedule_moves_a_node_both_ways),
        cmocka_unit_test(close_unschedules_remaining_nodes),
        cmocka_unit_test(random_operations_keep_deadline_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
