/*
 * test_task_id.c — task ids (lib/task_id.c): shape, strict byte order in
 * creation order (same millisecond, later milliseconds, a clock that steps
 * back), the encoded time, and validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "task_id.h"

#define T0 1700000000000LL              /* 2023-11-14T22:13:20Z */
#define CROCKFORD "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

static void gen_init(aw_task_id_gen_t *g)
{
    assert_int_equal(aw_task_id_gen_init(g), 0);
}

static void id_is_t_underscore_and_26_crockford_chars(void **state)
{
    (void)state;
    aw_task_id_gen_t g;
    gen_init(&g);
    char id[AW_TASK_ID_SIZE];
    aw_task_id_next(&g, T0, id);
    assert_int_equal(strlen(id), 28);
    assert_int_equal(AW_TASK_ID_LEN, 28);
    assert_memory_equal(id, "t_", 2);
    for (int i = 2; i < 28; i++)
        if (!strchr(CROCKFORD, id[i]))
            fail_msg("id %s: character %d '%c' is not Crockford base32", id, i, id[i]);
    assert_true(aw_task_id_valid(id));
}

static void ids_in_one_millisecond_strictly_increase(void **state)
{
    (void)state;
    aw_task_id_gen_t g;
    gen_init(&g);
    char prev[AW_TASK_ID_SIZE], id[AW_TASK_ID_SIZE];
    aw_task_id_next(&g, T0, prev);
    for (int i = 0; i < 100000; i++) {
        aw_task_id_next(&g, T0, id);
        if (strcmp(prev, id) >= 0)
            fail_msg("id %d: %s does not sort after %s", i, id, prev);
        if (!aw_task_id_valid(id))
            fail_msg("id %d: %s is not valid", i, id);
        memcpy(prev, id, sizeof id);
    }
}

static void ids_over_increasing_milliseconds_strictly_increase(void **state)
{
    (void)state;
    aw_task_id_gen_t g;
    gen_init(&g);
    char prev[AW_TASK_ID_SIZE], id[AW_TASK_ID_SIZE];
    int64_t ms = T0;
    aw_task_id_next(&g, ms, prev);
    for (int i = 0; i < 100000; i++) {
        ms += i % 3 == 0;               /* some ids share a millisecond */
        aw_task_id_next(&g, ms, id);
        if (strcmp(prev, id) >= 0)
            fail_msg("id %d at %lld: %s does not sort after %s", i,
                     (long long)ms, id, prev);
        memcpy(prev, id, sizeof id);
    }
}

static void clock_stepping_back_still_gives_increasing_ids(void **state)
{
    (void)state;
    aw_task_id_gen_t g;
    gen_init(&g);
    char a[AW_TASK_ID_SIZE], b[AW_TASK_ID_SIZE], c[AW_TASK_ID_SIZE];
    aw_task_id_next(&g, T0 + 5000, a);
    aw_task_id_next(&g, T0, b);                 /* 5 s back */
    aw_task_id_next(&g, T0 + 1, c);
    assert_true(strcmp(a, b) < 0);
    assert_true(strcmp(b, c) < 0);
    /* It keeps the last time it saw. */
    assert_int_equal(aw_task_id_time(b), T0 + 5000);
    assert_int_equal(aw_task_id_time(c), T0 + 5000);
}

static void id_time_round_trips_the_millisecond(void **state)
{
    (void)state;
    const int64_t times[] = { 0, 1, 31, 32, T0, T0 + 999, (1LL << 48) - 1 };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        aw_task_id_gen_t g;
        gen_init(&g);
        char id[AW_TASK_ID_SIZE];
        aw_task_id_next(&g, times[i], id);
        assert_true(aw_task_id_valid(id));
        assert_int_equal(aw_task_id_time(id), times[i]);
    }
}

static void separately_seeded_generators_differ(void **state)
{
    (void)state;
    aw_task_id_gen_t g1, g2;
    gen_init(&g1);
    gen_init(&g2);
    char a[AW_TASK_ID_SIZE], b[AW_TASK_ID_SIZE];
    aw_task_id_next(&g1, T0, a);
    aw_task_id_next(&g2, T0, b);
    assert_string_not_equal(a, b);
}

static void valid_rejects_wrong_prefix(void **state)
{
    (void)state;
    assert_true(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMNPQRS"));
    assert_false(aw_task_id_valid("x_01HF7XG5N0ABCDEFGHJKMNPQRS"));
    assert_false(aw_task_id_valid("T_01HF7XG5N0ABCDEFGHJKMNPQRS"));
    assert_false(aw_task_id_valid("t-01HF7XG5N0ABCDEFGHJKMNPQRS"));
    assert_false(aw_task_id_valid("01HF7XG5N0ABCDEFGHJKMNPQRSTV"));
}

static void valid_rejects_wrong_length(void **state)
{
    (void)state;
    assert_false(aw_task_id_valid(""));
    assert_false(aw_task_id_valid("t_"));
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMNPQR"));    /* 27 */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMNPQRST")); /* 29 */
}

static void valid_rejects_characters_outside_crockford(void **state)
{
    (void)state;
    assert_false(aw_task_id_valid("t_01hf7xg5n0abcdefghjkmnpqrs"));  /* lower */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHIKMNPQRS"));  /* I */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJLMNPQRS"));  /* L */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMOPQRS"));  /* O */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMNPURS"));  /* U */
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEFGHJKMNPQR-"));
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDE/GHJKMNPQRS"));
    assert_false(aw_task_id_valid("t_01HF7XG5N0ABCDEF HJKMNPQRS"));
}

/* The time field holds 48 bits in 10 characters: a first character above
 * '7' would overflow it. */
static void valid_rejects_time_beyond_48_bits(void **state)
{
    (void)state;
    assert_true(aw_task_id_valid("t_7ZZZZZZZZZ0000000000000000"));
    assert_false(aw_task_id_valid("t_80000000000000000000000000"));
    assert_false(aw_task_id_valid("t_Z0000000000000000000000000"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_is_t_underscore_and_26_crockford_chars),
        cmocka_unit_test(ids_in_one_millisecond_strictly_increase),
        cmocka_unit_test(ids_over_increasing_milliseconds_strictly_increase),
        cmocka_unit_test(clock_stepping_back_still_gives_increasing_ids),
        cmocka_unit_test(id_time_round_trips_the_millisecond),
        cmocka_unit_test(separately_seeded_generators_differ),
        cmocka_unit_test(valid_rejects_wrong_prefix),
        cmocka_unit_test(valid_rejects_wrong_length),
        cmocka_unit_test(valid_rejects_characters_outside_crockford),
        cmocka_unit_test(valid_rejects_time_beyond_48_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
