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

/* Writes the escape for c at o; returns the end. Short forms where JSON
 * has them, "\u00XX" for other control characters. */
static char *put_escape(char *o, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char short_form = 0;
    switch (c) {
    case '"':  short_form = '"'; break;
    case '\\': short_form = '\\'; break;
    case '\n': short_form = 'n'; break;
    case '\r': short_form = 'r'; break;
    case '\t': short_form = 't'; break;
    case '\b': short_form = 'b'; break;
    case '\f': short_form = 'f'; break;
    }
    *o++ = '\\';
    if (short_form) {
        *o++ = short_form;
        return o;
    }
    *o++ = 'u';
    *o++ = '0';
    *o++ = '0';
    *o++ = hex[c >> 4];
    *o++ = hex[c & 15];
    return o;
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
