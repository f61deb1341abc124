/*
 * utf8.c — bytes to a JSON string with U+FFFD for ill-formed UTF-8 (see
 * utf8.h). Runs of bytes that need no change are copied in one append, so
 * plain ASCII output costs about one memcpy.
 */
#include <stdbool.h>
#include <stdint.h>

#include <string.h>

#include "utf8.h"

static const char replacement[] = "\xEF\xBF\xBD";      /* U+FFFD */

/* Length of the well-formed sequence starting at s[0] (1 to 4), or, when
 * it is ill-formed, minus the length of its maximal subpart (at least 1).
 * Table 3-7 of the Unicode standard: the second byte's range depends on
 * the first, which excludes overlong forms, surrogates and > U+10FFFF. */
static int sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    int have = 1;
    for (; have < need; have++) {
        if ((size_t)have >= n)
            return -have;
        unsigned char b = s[have];
        if (have == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return -have;
    }
    return need;
}

static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* The escape of each byte below 0x20: short forms where JSON has them,
 * "\u00XX" for the others; len is 2 or 6. */
static const struct { char text[6]; unsigned char len; } control[32] = {
#define U(x) { { '\\', 'u', '0', '0', "0123456789abcdef"[(x) >> 4], "0123456789abcdef"[(x) & 15] }, 6 }
    U(0x00), U(0x01), U(0x02), U(0x03), U(0x04), U(0x05), U(0x06), U(0x07),
    { "\\b", 2 }, { "\\t", 2 }, { "\\n", 2 }, U(0x0b),
    { "\\f", 2 }, { "\\r", 2 }, U(0x0e), U(0x0f),
    U(0x10), U(0x11), U(0x12), U(0x13), U(0x14), U(0x15), U(0x16), U(0x17),
    U(0x18), U(0x19), U(0x1a), U(0x1b), U(0x1c), U(0x1d), U(0x1e), U(0x1f),
#undef U
};

/* Writes the escape for c (a byte needs_escape accepts) at o; returns the
 * end. Six bytes are always written: the buffer has room for them. */
static char *put_escape(char *o, unsigned char c)
{
    if (c >= 0x20) {                    /* '"' or '\\' */
        o[0] = '\\';
        o[1] = (char)c;
        return o + 2;
    }
    const char *e = control[c].text;
    o[0] = e[0]; o[1] = e[1]; o[2] = e[2]; o[3] = e[3]; o[4] = e[4]; o[5] = e[5];
    return o + control[c].len;
}

void aw_utf8_add_json(aw_buf_t *b, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t run = 0, i = 0;          /* s[run..i) is copied unchanged */
    if (n == 0) {                   /* p may be NULL */
        aw_buf_add(b, "\"\"", 2);
        return;
    }
    aw_buf_reserve(b, n + n / 8 + 2);
    aw_buf_addc(b, '"');
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        int len = c < 0x80 ? 1 : sequence(s + i, n - i);
        if (len > 1) {
            i += (size_t)len;
            continue;
        }
        aw_buf_add(b, s + run, i - run);
        if (len < 0) {
            aw_buf_add(b, replacement, 3);
            i += (size_t)-len;
        } else {
            /* A run of escapes is written with one reservation: a
             * program's output can be a megabyte of NULs, and an append
             * (once even a printf) per byte stalled the loop. */
            size_t k = i;
            while (k < n && needs_escape(s[k]))
                k++;
            if (!aw_buf_reserve(b, 6 * (k - i)))
                return;
            char *o = b->data + b->len;
            for (; i < k; i++)
                o = put_escape(o, s[i]);
            b->len = (size_t)(o - b->data);
        }
        run = i;
    }
    aw_buf_add(b, s + run, i - run);
    aw_buf_addc(b, '"');
}

void aw_utf8_add_json_str(aw_buf_t *b, const char *s)
{
    aw_utf8_add_json(b, s, strlen(s));
}
