/*
 * json_text.c — exact compact JSON text for args and results (see
 * json_text.h).
 *
 * Why not json_dumps: its fixed real precision either loses values or
 * lengthens every short decimal, and its string escaper decodes UTF-8 one
 * code point at a time, which made a 1 MiB create spend most of its loop
 * time re-serialising what it had just parsed. Strings here go through
 * aw_utf8_add_json, which copies runs of plain bytes in one append.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"
#include "utf8.h"

static void add_real(aw_buf_t *b, double d)
{
    char s[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(s, sizeof s, "%.*g", prec, d);
        if (prec == 17 || strtod(s, NULL) == d)
            break;
    }
    aw_buf_add(b, s, (size_t)n);
    if (!strpbrk(s, ".eE"))             /* 1.0 must stay a real */
        aw_buf_add(b, ".0", 2);
}

static void add_integer(aw_buf_t *b, json_int_t v)
{
    char s[24], *p = s + sizeof s;
    /* Through unsigned, so that the most negative value negates. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    aw_buf_add(b, p, (size_t)(s + sizeof s - p));
}

void aw_json_write(aw_buf_t *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *m;
        char sep = '{';
        json_object_keylen_foreach((json_t *)v, key, klen, m) {
            aw_buf_addc(b, sep);
            sep = ',';
            aw_utf8_add_json(b, key, klen);
            aw_buf_addc(b, ':');
            aw_json_write(b, m);
        }
        if (sep == '{')
            aw_buf_addc(b, '{');
        aw_buf_addc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        aw_buf_addc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                aw_buf_addc(b, ',');
            aw_json_write(b, json_array_get(v, i));
        }
        aw_buf_addc(b, ']');
        break;
    }
    case JSON_STRING:
        aw_utf8_add_json(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        add_integer(b, json_integer_value(v));
        break;
    case JSON_REAL:
        add_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        aw_buf_add(b, "true", 4);
        break;
    case JSON_FALSE:
        aw_buf_add(b, "false", 5);
        break;
    case JSON_NULL:
    default:
        aw_buf_add(b, "null", 4);
        break;
    }
}

/* The end of the string whose opening quote is at p (just past its closing
 * quote), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        size_t bs = 0;                  /* backslashes just before it */
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return q + 1;
        p = q;
    }
    return NULL;
}

/* The end of the value starting at p, or NULL. Compact text has no
 * whitespace, so a scalar ends at the next ',', '}' or ']'. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']')
            p++;
        return p;
    }
    size_t depth = 0;
    while (p < end) {
        if (*p == '"') {
            if (!(p = skip_string(p, end)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if ((*p == '}' || *p == ']') && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

int aw_json_member(const char *text, size_t len, const char *key,
                   const char **val, size_t *vlen)
{
    const char *p = text, *end = text + len;
    size_t klen = strlen(key);
    if (p >= end || *p != '{')
        return 0;
    p++;
    while (p < end && *p == '"') {
        const char *kend = skip_string(p, end);
        if (!kend || kend >= end || *kend != ':')
            return 0;
        const char *v = kend + 1, *vend = skip_value(v, end);
        if (!vend)
            return 0;
        if ((size_t)(kend - p) == klen + 2 && memcmp(p + 1, key, klen) == 0) {
            *val = v;
            *vlen = (size_t)(vend - v);
            return 1;
        }
        if (vend >= end || *vend != ',')
            return 0;
        p = vend + 1;
    }
    return 0;
}

const char *aw_json_skip(const char *p, const char *end)
{
    return skip_value(p, end);
}
