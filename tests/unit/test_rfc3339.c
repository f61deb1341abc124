/*
 * test_rfc3339.c — the RFC 3339 reader of "start_at" (lib/rfc3339.c):
 * what awaitd writes reads back to the same millisecond, offsets and
 * fractions are honoured, and malformed or impossible dates are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "buf.h"
#include "errors.h"
#include "rfc3339.h"

static int64_t parse(const char *s)
{
    int64_t ms = 0;
    if (aw_rfc3339_parse(s, &ms) != 0)
        fail_msg("'%s' was refused", s);
    return ms;
}

static void utc_with_milliseconds(void **state)
{
    (void)state;
    assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parse("2023-11-14T22:13:20.123Z"), 1700000000123LL);
    assert_int_equal(parse("2023-11-14t22:13:20.123z"), 1700000000123LL);
    assert_int_equal(parse("2023-11-14 22:13:20.123Z"), 1700000000123LL);
    assert_int_equal(parse("2000-02-29T00:00:00Z"), 951782400000LL);
}

static void fractions_are_kept_to_the_millisecond(void **state)
{
    (void)state;
    assert_int_equal(parse("2023-11-14T22:13:20.1Z"), 1700000000100LL);
    assert_int_equal(parse("2023-11-14T22:13:20.12Z"), 1700000000120LL);
    assert_int_equal(parse("2023-11-14T22:13:20.123999Z"), 1700000000123LL);
}

static void offsets_name_the_same_instant(void **state)
{
    (void)state;
    assert_int_equal(parse("2023-11-15T00:13:20.123+02:00"), 1700000000123LL);
    assert_int_equal(parse("2023-11-14T17:43:20.123-04:30"), 1700000000123LL);
    assert_int_equal(parse("2023-11-14T22:13:20.123+00:00"), 1700000000123LL);
}

static void what_awaitd_writes_reads_back(void **state)
{
    (void)state;
    int64_t times[] = { 1, 999, 1700000000123LL, 4102444800000LL, 253402300799999LL };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        aw_buf_t b;
        aw_buf_init(&b);
        aw_buf_add_time(&b, times[i]);
        aw_buf_addc(&b, '\0');
        char *text = b.data + 1;                /* without the quotes */
        text[b.len - 3] = '\0';
        assert_int_equal(parse(text), times[i]);
        aw_buf_close(&b);
    }
}

static void malformed_and_impossible_dates_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "tomorrow", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13Z",
        "2023-13-01T00:00:00Z", "2023-00-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2023-04-31T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:61Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0200",
        "2023-11-14T22:13:20+02", "2023-11-14T22:13:20Zjunk", "23-11-14T22:13:20Z",
        "2023-11-14X22:13:20Z", " 2023-11-14T22:13:20Z", "2023-11-14T22:13:20+24:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        if (aw_rfc3339_parse(bad[i], &ms) != AW_EINVAL)
            fail_msg("'%s' was accepted as %lld", bad[i], (long long)ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utc_with_milliseconds),
        cmocka_unit_test(fractions_are_kept_to_the_millisecond),
        cmocka_unit_test(offsets_name_the_same_instant),
        cmocka_unit_test(what_awaitd_writes_reads_back),
        cmocka_unit_test(malformed_and_impossible_dates_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
