/*
 * test_buf.c — the growable buffer (lib/buf.c): appends and growth, printf,
 * JSON string escaping, seconds and RFC 3339 times, steal and failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* The buffer's bytes as a C string, for comparisons (steals them). */
static char *take(aw_buf_t *b)
{
    char *s = aw_buf_steal(b, NULL);
    assert_non_null(s);
    return s;
}

static void assert_buf_is(aw_buf_t *b, const char *want)
{
    char *s = take(b);
    assert_string_equal(s, want);
    free(s);
}

static void adds_and_addc_concatenate(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "ab");
    aw_buf_addc(&b, 'c');
    aw_buf_add(&b, "dexx", 2);
    assert_int_equal(b.len, 5);
    assert_buf_is(&b, "abcde");
}

static void appends_grow_past_the_first_allocation(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    char chunk[37];
    for (int i = 0; i < 1000; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        aw_buf_add(&b, chunk, sizeof chunk);
    }
    assert_false(aw_buf_failed(&b));
    assert_int_equal(b.len, 37000);
    assert_true(b.cap > b.len);
    for (int i = 0; i < 1000; i++)
        for (int k = 0; k < 37; k++)
            assert_int_equal(b.data[i * 37 + k], 'a' + i % 26);
    aw_buf_close(&b);
}

static void add_of_zero_bytes_changes_nothing(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "x");
    aw_buf_add(&b, "", 0);
    aw_buf_adds(&b, "");
    assert_buf_is(&b, "x");
}

static void printf_formats_and_appends(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "n=");
    aw_buf_printf(&b, "%d,%s,%05.1f", -42, "str", 3.14159);
    assert_buf_is(&b, "n=-42,str,003.1");
}

static void printf_longer_than_the_buffer_grows_it(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "<");
    aw_buf_printf(&b, "%1000s", "end");
    aw_buf_adds(&b, ">");
    char *s = take(&b);
    assert_int_equal(strlen(s), 1002);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[1], ' ');
    assert_string_equal(s + 998, "end>");
    free(s);
}

static void seconds_of(int64_t ms, const char *want)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_add_seconds(&b, ms);
    assert_buf_is(&b, want);
}

static void seconds_drop_trailing_zeros(void **state)
{
    (void)state;
    seconds_of(1500, "1.5");
    seconds_of(3000, "3");
    seconds_of(1, "0.001");
    seconds_of(1050, "1.05");
    seconds_of(0, "0");
    seconds_of(250, "0.25");
    seconds_of(86400123, "86400.123");
}

static void time_of(int64_t ms, const char *want)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_add_time(&b, ms);
    assert_buf_is(&b, want);
}

static void time_is_quoted_rfc3339_utc_with_milliseconds(void **state)
{
    (void)state;
    time_of(1700000000123, "\"2023-11-14T22:13:20.123Z\"");
    time_of(1700000000005, "\"2023-11-14T22:13:20.005Z\"");
    time_of(0, "\"1970-01-01T00:00:00.000Z\"");
    time_of(951782400999, "\"2000-02-29T00:00:00.999Z\"");
}

/* Times in different seconds, back and forth, each get their own date. */
static void time_changes_with_the_second(void **state)
{
    (void)state;
    time_of(1700000000999, "\"2023-11-14T22:13:20.999Z\"");
    time_of(1700000001000, "\"2023-11-14T22:13:21.000Z\"");
    time_of(1700000000500, "\"2023-11-14T22:13:20.500Z\"");
    time_of(1735689599999, "\"2024-12-31T23:59:59.999Z\"");
    time_of(1735689600000, "\"2025-01-01T00:00:00.000Z\"");
    time_of(1700000001001, "\"2023-11-14T22:13:21.001Z\"");
}

static void steal_returns_nul_terminated_bytes_and_empties(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "hello");
    size_t len = 0;
    char *s = aw_buf_steal(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 5);
    assert_string_equal(s, "hello");
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    /* The emptied buffer is usable again. */
    aw_buf_adds(&b, "again");
    char *t = aw_buf_steal(&b, &len);
    assert_string_equal(t, "again");
    assert_int_equal(len, 5);
    free(s);
    free(t);
}

static void steal_of_empty_buffer_is_empty_string(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    size_t len = 99;
    char *s = aw_buf_steal(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
}

static void reset_empties_but_keeps_memory(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "first");
    char *before = b.data;
    aw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    aw_buf_adds(&b, "2nd");
    assert_ptr_equal(b.data, before);
    assert_buf_is(&b, "2nd");
}

/* A reservation that cannot be met marks the buffer failed: later appends
 * are dropped and steal reports the failure with NULL. */
static void failed_reservation_makes_steal_return_null(void **state)
{
    (void)state;
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "ok");
    assert_false(aw_buf_reserve(&b, SIZE_MAX - 8));
    assert_true(aw_buf_failed(&b));
    aw_buf_adds(&b, "dropped");
    assert_int_equal(b.len, 2);
    assert_null(aw_buf_steal(&b, NULL));
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adds_and_addc_concatenate),
        cmocka_unit_test(appends_grow_past_the_first_allocation),
        cmocka_unit_test(add_of_zero_bytes_changes_nothing),
        cmocka_unit_test(printf_formats_and_appends),
        cmocka_unit_test(printf_longer_than_the_buffer_grows_it),
        cmocka_unit_test(seconds_drop_trailing_zeros),
        cmocka_unit_test(time_is_quoted_rfc3339_utc_with_milliseconds),
        cmocka_unit_test(time_changes_with_the_second),
        cmocka_unit_test(steal_returns_nul_terminated_bytes_and_empties),
        cmocka_unit_test(steal_of_empty_buffer_is_empty_string),
        cmocka_unit_test(reset_empties_but_keeps_memory),
        cmocka_unit_test(failed_reservation_makes_steal_return_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
