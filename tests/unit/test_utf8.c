/*
 * test_utf8.c — arbitrary bytes as a JSON string (lib/utf8.c): valid UTF-8
 * passes through, each maximal ill-formed subpart becomes one U+FFFD (the
 * Unicode recommendation, what Python's "replace" does), and the result is
 * always JSON that a strict parser accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define FFFD "\xef\xbf\xbd"

/* The JSON text written for n bytes at p. The caller frees it. */
static char *encode(const void *p, size_t n)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_utf8_add_json(&b, p, n);
    assert_false(aw_buf_failed(&b));
    char *s = aw_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

/* Checks the bytes decode, through a strict JSON parser, to `want`
 * (want_len bytes, NULs allowed). */
static void assert_decodes_to(const void *p, size_t n, const char *want, size_t want_len)
{
    char *s = encode(p, n);
    json_error_t jerr;
    json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("not JSON (%s): %s", jerr.text, s);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), want_len);
    assert_memory_equal(json_string_value(v), want, want_len);
    json_decref(v);
    free(s);
}

#define DECODES(in, want) assert_decodes_to(in, sizeof in - 1, want, sizeof want - 1)

static void ascii_is_copied_between_quotes(void **state)
{
    (void)state;
    char *s = encode("hello, world", 12);
    assert_string_equal(s, "\"hello, world\"");
    free(s);
}

static void empty_input_is_two_quotes(void **state)
{
    (void)state;
    char *s = encode(NULL, 0);
    assert_string_equal(s, "\"\"");
    free(s);
}

static void quotes_backslashes_and_controls_are_escaped(void **state)
{
    (void)state;
    char *s = encode("\"\\\n\r\t\b\f\x01\x1f", 9);
    assert_string_equal(s, "\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\"");
    free(s);
}

static void nul_bytes_are_kept_escaped(void **state)
{
    (void)state;
    char *s = encode("a\0b", 3);
    assert_string_equal(s, "\"a\\u0000b\"");
    free(s);
    DECODES("a\0b", "a\0b");
}

static void valid_multibyte_sequences_pass_through(void **state)
{
    (void)state;
    const char in[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char *s = encode(in, sizeof in - 1);
    assert_int_equal(s[0], '"');
    assert_memory_equal(s + 1, in, sizeof in - 1);
    assert_string_equal(s + sizeof in, "\"");
    free(s);
}

static void lone_continuation_and_invalid_bytes_become_fffd(void **state)
{
    (void)state;
    DECODES("a\x80z", "a" FFFD "z");
    DECODES("\xff", FFFD);
    DECODES("\xfe\xff", FFFD FFFD);
    DECODES("\xc0\xaf", FFFD FFFD);            /* overlong '/' */
}

static void truncated_sequence_becomes_one_fffd(void **state)
{
    (void)state;
    DECODES("\xe2\x82", FFFD);
    DECODES("\xf0\x9f\x98", FFFD);
    DECODES("x\xe2\x82y", "x" FFFD "y");
}

static void overlongs_surrogates_and_beyond_u10ffff_are_refused(void **state)
{
    (void)state;
    DECODES("\xe0\x80\x80", FFFD FFFD FFFD);     /* overlong 3 bytes */
    DECODES("\xed\xa0\x80", FFFD FFFD FFFD);     /* U+D800 */
    DECODES("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);   /* U+110000 */
    DECODES("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD);   /* overlong 4 bytes */
}

/* The example of the Unicode standard, section 3.9. */
static void maximal_subparts_follow_the_unicode_example(void **state)
{
    (void)state;
    DECODES("a\xf1\x80\x80\xe1\x80\xc2" "b\x80" "c\x80\xbf" "d",
            "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
}

/* Whatever the bytes, the result is JSON a strict parser accepts. */
static void random_bytes_always_give_valid_json(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    unsigned char in[64];
    for (int round = 0; round < 5000; round++) {
        size_t n = (size_t)(round % 64) + 1;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Bias towards bytes that start or continue sequences. */
            in[i] = (unsigned char)(x % 3 ? 0x80 | (x >> 8) : x >> 16);
        }
        char *s = encode(in, n);
        json_error_t jerr;
        json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!v)
            fail_msg("round %d: not JSON (%s)", round, jerr.text);
        assert_true(json_is_string(v));
        json_decref(v);
        free(s);
    }
}

/* The C-string form: every ASCII byte from 1 to 127 survives a round trip
 * through a real JSON parser. */
static void c_string_round_trips_through_jansson(void **state)
{
    (void)state;
    char in[128];
    for (int i = 1; i < 128; i++)
        in[i - 1] = (char)i;
    in[127] = '\0';
    aw_buf_t b;
    aw_buf_init(&b);
    aw_utf8_add_json_str(&b, in);
    char *s = aw_buf_steal(&b, NULL);
    assert_non_null(s);
    json_error_t jerr;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("not JSON: %s: %s", jerr.text, s);
    assert_string_equal(json_string_value(v), in);
    json_decref(v);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ascii_is_copied_between_quotes),
        cmocka_unit_test(empty_input_is_two_quotes),
        cmocka_unit_test(quotes_backslashes_and_controls_are_escaped),
        cmocka_unit_test(nul_bytes_are_kept_escaped),
        cmocka_unit_test(valid_multibyte_sequences_pass_through),
        cmocka_unit_test(lone_continuation_and_invalid_bytes_become_fffd),
        cmocka_unit_test(truncated_sequence_becomes_one_fffd),
        cmocka_unit_test(overlongs_surrogates_and_beyond_u10ffff_are_refused),
        cmocka_unit_test(maximal_subparts_follow_the_unicode_example),
        cmocka_unit_test(random_bytes_always_give_valid_json),
        cmocka_unit_test(c_string_round_trips_through_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
