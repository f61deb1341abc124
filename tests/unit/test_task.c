/*
 * test_task.c — the task record (lib/task.c): the contract's names of
 * states and error types, creation time from the id, the optional strings
 * and reference counting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "task.h"

static aw_task_t *bare_task(void)
{
    aw_task_t *t = calloc(1, sizeof *t + sizeof "{}");
    assert_non_null(t);
    memcpy(t->args, "{}", sizeof "{}");
    t->refs = 1;
    return t;
}

static void state_names_are_the_contract_names(void **state)
{
    (void)state;
    const char *want[AW_NSTATES] = {
        "pending", "running", "succeeded", "failed", "cancelled", "timed_out",
    };
    for (int s = 0; s < AW_NSTATES; s++) {
        assert_string_equal(aw_task_state_name((aw_task_state_t)s), want[s]);
        assert_int_equal(aw_task_state_parse(want[s]), s);
    }
    assert_int_equal(aw_task_state_parse("done"), -1);
    assert_int_equal(aw_task_state_parse("Running"), -1);
    assert_int_equal(aw_task_state_parse(""), -1);
}

static void only_terminal_states_are_done(void **state)
{
    (void)state;
    assert_false(aw_state_done(AW_PENDING));
    assert_false(aw_state_done(AW_RUNNING));
    assert_true(aw_state_done(AW_SUCCEEDED));
    assert_true(aw_state_done(AW_FAILED));
    assert_true(aw_state_done(AW_CANCELLED));
    assert_true(aw_state_done(AW_TIMED_OUT));
}

static void error_type_names_are_the_contract_names(void **state)
{
    (void)state;
    assert_null(aw_error_type_name(AW_ERR_NONE));
    assert_string_equal(aw_error_type_name(AW_ERR_CANCELLED), "cancelled");
    assert_string_equal(aw_error_type_name(AW_ERR_TIMEOUT), "timeout");
    assert_string_equal(aw_error_type_name(AW_ERR_TASK), "task_error");
    assert_string_equal(aw_error_type_name(AW_ERR_EXIT_STATUS), "exit_status");
    assert_string_equal(aw_error_type_name(AW_ERR_SIGNAL), "signal");
    assert_string_equal(aw_error_type_name(AW_ERR_SPAWN), "spawn_error");
    assert_string_equal(aw_error_type_name(AW_ERR_HTTP), "http_error");
    assert_string_equal(aw_error_type_name(AW_ERR_INTERRUPTED), "interrupted");
    assert_null(aw_error_type_name(AW_NERRTYPES));
}

static void created_at_comes_from_the_id(void **state)
{
    (void)state;
    aw_task_id_gen_t g;
    assert_int_equal(aw_task_id_gen_init(&g), 0);
    aw_task_t *t = bare_task();
    aw_task_id_next(&g, 1700000000123LL, t->id);
    assert_int_equal(aw_task_created_at(t), 1700000000123LL);
    aw_task_unref(t);
}

static void optional_strings_are_null_until_set(void **state)
{
    (void)state;
    aw_task_t *t = bare_task();
    assert_null(aw_task_name(t));
    assert_null(aw_task_idempotency_key(t));
    assert_null(aw_task_error_message(t));
    aw_task_unref(t);
}

static void optional_strings_are_copied_and_cleared(void **state)
{
    (void)state;
    aw_task_t *t = bare_task();
    char name[] = "nightly";
    assert_int_equal(aw__task_set_string(t, AW_TASK_NAME, name), 0);
    name[0] = 'X';                      /* the task holds its own copy */
    assert_int_equal(aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, "k1"), 0);
    assert_int_equal(aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, "boom"), 0);
    assert_string_equal(aw_task_name(t), "nightly");
    assert_string_equal(aw_task_idempotency_key(t), "k1");
    assert_string_equal(aw_task_error_message(t), "boom");
    assert_int_equal(aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, "again"), 0);
    assert_string_equal(aw_task_error_message(t), "again");
    assert_int_equal(aw__task_set_string(t, AW_TASK_NAME, NULL), 0);
    assert_null(aw_task_name(t));
    assert_string_equal(aw_task_idempotency_key(t), "k1");
    aw_task_unref(t);
}

static int released;
static void count_release(aw_task_t *t)
{
    (void)t;
    released++;
}

static void last_unref_releases_the_kind_state_once(void **state)
{
    (void)state;
    static const aw_kind_t k = { .name = "probe", .release = count_release };
    released = 0;
    aw_task_t *t = bare_task();
    t->kind = &k;
    aw_task_ref(t);
    aw_task_ref(t);
    aw_task_unref(t);
    aw_task_unref(t);
    assert_int_equal(released, 0);
    assert_int_equal(t->refs, 1);
    aw_task_unref(t);
    assert_int_equal(released, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_names_are_the_contract_names),
        cmocka_unit_test(only_terminal_states_are_done),
        cmocka_unit_test(error_type_names_are_the_contract_names),
        cmocka_unit_test(created_at_comes_from_the_id),
        cmocka_unit_test(optional_strings_are_null_until_set),
        cmocka_unit_test(optional_strings_are_copied_and_cleared),
        cmocka_unit_test(last_unref_releases_the_kind_state_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
