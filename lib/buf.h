/*
 * buf.h — a growable byte buffer for building response bodies and JSON.
 *
 * The caller embeds an aw_buf_t (aw_buf_init/aw_buf_close). On allocation
 * failure the buffer remembers it (aw_buf_failed) and ignores further
 * appends, so writers can append freely and check once at the end.
 * aw_buf_steal hands the malloc'd bytes to someone who will free() them
 * (libmicrohttpd's MHD_RESPMEM_MUST_FREE).
 */
#ifndef AW_BUF_H
#define AW_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aw_buf {
    char  *data;
    size_t len;
    size_t cap;
    bool   failed;
} aw_buf_t;

void  aw_buf_init(aw_buf_t *b);
void  aw_buf_close(aw_buf_t *b);
void  aw_buf_reset(aw_buf_t *b);          /* len = 0, keeps memory */
bool  aw_buf_reserve(aw_buf_t *b, size_t extra);
void  aw_buf_add(aw_buf_t *b, const void *p, size_t n);
void  aw_buf_adds(aw_buf_t *b, const char *s);
void  aw_buf_addc(aw_buf_t *b, char c);
void  aw_buf_printf(aw_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends a number of milliseconds as seconds: 1500 -> 1.5, 3000 -> 3. */
void  aw_buf_add_seconds(aw_buf_t *b, int64_t ms);
/* Appends a wall-clock time as RFC 3339 UTC with milliseconds, quoted. */
void  aw_buf_add_time(aw_buf_t *b, int64_t wall_ms);
bool  aw_buf_failed(const aw_buf_t *b);
/* NUL-terminates and returns the bytes; the buffer is left empty. NULL if
 * any append failed. The caller free()s the result. */
char *aw_buf_steal(aw_buf_t *b, size_t *len);

#endif
