/*
 * test_json_text.c — exact compact JSON (lib/json_text.c): reals with the
 * fewest digits that read back as the same double, every value type
 * through a jansson round trip, member lookup in the written text; and
 * the cost of escaping a megabyte of control bytes (lib/utf8.c), which
 * once stalled the loop for a third of a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_text.h"
#include "utf8.h"

/* The text aw_json_write makes of v; the caller frees it. Takes v. */
static char *written(json_t *v)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_json_write(&b, v);
    json_decref(v);
    char *s = aw_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

static void assert_writes(json_t *v, const char *want)
{
    char *s = written(v);
    assert_string_equal(s, want);
    free(s);
}

static void reals_take_the_fewest_exact_digits(void **state)
{
    (void)state;
    assert_writes(json_real(0.1), "0.1");
    assert_writes(json_real(0.30000000000000004), "0.30000000000000004");
    assert_writes(json_real(0.1 + 0.2), "0.30000000000000004");
    assert_writes(json_real(1.0), "1.0");
    assert_writes(json_real(-0.0), "-0.0");
    assert_writes(json_real(1.5), "1.5");
    assert_writes(json_real(1e-300), "1e-300");
    assert_writes(json_real(1e21), "1e+21");
    assert_writes(json_real(DBL_MAX), "1.7976931348623157e+308");
    assert_writes(json_real(2.0 / 3), "0.6666666666666666");
}

static void random_reals_read_back_as_the_same_double(void **state)
{
    (void)state;
    srand(12345);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = (bits << 16) ^ (uint64_t)(rand() & 0xffff);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        char *s = written(json_real(d));
        json_error_t jerr;
        json_t *back = json_loads(s, JSON_DECODE_ANY, &jerr);
        assert_non_null(back);
        assert_true(json_is_real(back));
        double r = json_real_value(back);
        assert_memory_equal(&r, &d, sizeof d);
        json_decref(back);
        free(s);
    }
}

static void integers_are_exact(void **state)
{
    (void)state;
    assert_writes(json_integer(0), "0");
    assert_writes(json_integer(-1), "-1");
    assert_writes(json_integer(INT64_MAX), "9223372036854775807");
    assert_writes(json_integer(INT64_MIN), "-9223372036854775808");
}

static void every_type_round_trips_through_jansson(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}", "[]", "null", "true", "false", "\"\"",
        "{\"z\":1,\"a\":[1,2.5,\"x\",null,true,false,{}],\"m\":{\"k\":[[]]}}",
        "\"quote \\\" backslash \\\\ nl \\n tab \\t nul \\u0000 bell \\u0007 \\u00e9 \\ud83d\\ude00\"",
        "{\"key \\u00e9\":\"v\",\"\\\"\":\"q\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_error_t jerr;
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        assert_non_null(v);
        char *s = written(json_incref(v));
        json_t *back = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!back || !json_equal(v, back))
            fail_msg("%s came back as %s", docs[i], s);
        json_decref(back);
        json_decref(v);
        free(s);
    }
    /* Members in insertion order, no spaces. */
    json_t *o = json_object();
    json_object_set_new(o, "seconds", json_integer(0));
    json_object_set_new(o, "result", json_pack("[s,f]", "a", 0.5));
    assert_writes(o, "{\"seconds\":0,\"result\":[\"a\",0.5]}");
}

/* member TEXT KEY: the member's value text, or "(none)". */
static const char *member(const char *text, const char *key)
{
    static char out[256];
    const char *v;
    size_t n;
    if (!aw_json_member(text, strlen(text), key, &v, &n))
        return "(none)";
    snprintf(out, sizeof out, "%.*s", (int)n, v);
    return out;
}

static void members_are_found_in_the_text(void **state)
{
    (void)state;
    const char *t = "{\"seconds\":0,\"s\":\"a\\\"},\\\\\",\"result\":{\"b\":[1,\"]}\",{}]},"
                    "\"resultx\":2,\"fail\":\"f\"}";
    assert_string_equal(member(t, "seconds"), "0");
    assert_string_equal(member(t, "s"), "\"a\\\"},\\\\\"");
    assert_string_equal(member(t, "result"), "{\"b\":[1,\"]}\",{}]}");
    assert_string_equal(member(t, "resultx"), "2");
    assert_string_equal(member(t, "fail"), "\"f\"");
    assert_string_equal(member(t, "absent"), "(none)");
    /* Only top-level members count. */
    assert_string_equal(member("{\"x\":{\"result\":1}}", "result"), "(none)");
    assert_string_equal(member("{}", "result"), "(none)");
    assert_string_equal(member("[1]", "result"), "(none)");
    assert_string_equal(member("{\"a\":\"unterminated", "result"), "(none)");
    assert_string_equal(member("{\"a\":[1,2", "result"), "(none)");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Best of five: seconds to write n bytes of c as a JSON string. */
static double escape_cost(unsigned char c, size_t n, size_t *out_len)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    memset(p, c, n);
    double best = 1e9;
    for (int run = 0; run < 5; run++) {
        aw_buf_t b;
        aw_buf_init(&b);
        double t0 = now_s();
        aw_utf8_add_json(&b, p, n);
        double spent = now_s() - t0;
        assert_false(aw_buf_failed(&b));
        *out_len = b.len;
        aw_buf_close(&b);
        if (spent < best)
            best = spent;
    }
    free(p);
    return best;
}

/* A megabyte of NULs becomes six of "\u0000": it should cost about what
 * a megabyte of plain text costs (both are one pass over the input), not
 * a formatted write per byte, which was some 100 times more. Relative, so
 * a slow machine slows both; sanitizers slow the escapes' stores more than
 * the plain copy, hence their wider bound. */
static void a_megabyte_of_nuls_escapes_in_linear_small_time(void **state)
{
    (void)state;
    size_t nul_len, ref_len;
    double nul = escape_cost(0, 1 << 20, &nul_len);
    double ref = escape_cost('a', 1 << 20, &ref_len);
    assert_int_equal(nul_len, 6 * (1 << 20) + 2);
    assert_int_equal(ref_len, (1 << 20) + 2);
    print_message("1 MiB of NUL: %.2f ms; 1 MiB of 'a': %.2f ms\n", nul * 1e3, ref * 1e3);
#if defined(__SANITIZE_ADDRESS__)
    assert_true(nul < 40 * ref + 0.020);
#else
    assert_true(nul < 8 * ref + 0.010);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reals_take_the_fewest_exact_digits),
        cmocka_unit_test(random_reals_read_back_as_the_same_double),
        cmocka_unit_test(integers_are_exact),
        cmocka_unit_test(every_type_round_trips_through_jansson),
        cmocka_unit_test(members_are_found_in_the_text),
        cmocka_unit_test(a_megabyte_of_nuls_escapes_in_linear_small_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
