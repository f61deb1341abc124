/*
 * buf.c — growable byte buffer (see buf.h). Appends after a failed
 * allocation are dropped, so writers check once at the end.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

void aw_buf_init(aw_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void aw_buf_close(aw_buf_t *b)
{
    free(b->data);
    aw_buf_init(b);
}

void aw_buf_reset(aw_buf_t *b)
{
    b->len = 0;
    b->failed = false;
}

bool aw_buf_reserve(aw_buf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->cap - b->len > extra)        /* keep room for a NUL */
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void aw_buf_add(aw_buf_t *b, const void *p, size_t n)
{
    if (!aw_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void aw_buf_adds(aw_buf_t *b, const char *s)
{
    aw_buf_add(b, s, strlen(s));
}

void aw_buf_addc(aw_buf_t *b, char c)
{
    if (aw_buf_reserve(b, 1))
        b->data[b->len++] = c;
}

void aw_buf_printf(aw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !aw_buf_reserve(b, (size_t)n + 1))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void aw_buf_add_seconds(aw_buf_t *b, int64_t ms)
{
    if (ms % 1000 == 0)
        aw_buf_printf(b, "%lld", (long long)(ms / 1000));
    else if (ms % 100 == 0)
        aw_buf_printf(b, "%lld.%lld", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
    else if (ms % 10 == 0)
        aw_buf_printf(b, "%lld.%02lld", (long long)(ms / 1000), (long long)(ms % 1000 / 10));
    else
        aw_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* Formatting a time with gmtime_r and snprintf was 7% of a create: every
 * task object carries three timestamps. Times cluster in the current
 * second, so the "YYYY-MM-DDTHH:MM:SS" part is cached per second and only
 * the milliseconds are written each time. Loop thread only. */
void aw_buf_add_time(aw_buf_t *b, int64_t wall_ms)
{
    static int64_t cached_sec = INT64_MIN;
    static char prefix[80];
    int64_t sec = wall_ms / 1000;
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(prefix, sizeof prefix, "\"%04d-%02d-%02dT%02d:%02d:%02d.",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    int ms = (int)(wall_ms % 1000);
    char tail[5] = { (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
                     (char)('0' + ms % 10), 'Z', '"' };
    aw_buf_add(b, prefix, 21);
    aw_buf_add(b, tail, sizeof tail);
}

bool aw_buf_failed(const aw_buf_t *b)
{
    return b->failed;
}

char *aw_buf_steal(aw_buf_t *b, size_t *len)
{
    if (b->failed || !aw_buf_reserve(b, 1)) {
        aw_buf_close(b);
        return NULL;
    }
    b->data[b->len] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    aw_buf_init(b);
    return p;
}
