/*
 * http_error.h — the one table that turns error values into HTTP statuses
 * and the contract's {"error":{"code","message"}} codes.
 *
 * It covers lib's AW_E* values and -errno, plus the few conditions only the
 * HTTP edge knows (HTTP_E*). Handlers pass a value; they never write a
 * status for a known error themselves.
 */
#ifndef AWAITD_HTTP_ERROR_H
#define AWAITD_HTTP_ERROR_H

#include "buf.h"
#include "task.h"

enum {
    HTTP_EBASE = -2000,
    HTTP_ENOROUTE = HTTP_EBASE, /* no such path */
    HTTP_EMETHOD,               /* path exists, method does not */
    HTTP_EUNAUTHORIZED,         /* token missing or wrong */
    HTTP_ETOOLARGE,             /* body over max_body_bytes */
    HTTP_EORIGIN,               /* cross-site Origin not in cors_origins */
    HTTP_EMISDIRECTED,          /* Host names no host of this daemon */
    HTTP_ESCOPE,                /* right token, scope missing */
};

struct http_error {
    int          value;
    unsigned     status;
    const char  *code;
    const char  *message;       /* default text when the caller has none */
};

/* The entry for an error value; unknown values map to 500 "internal". */
const struct http_error *http_error_lookup(int value);

/* Appends the contract's error body to b: {"error":{"code","message"}}
 * (message NULL: the table's text), with "task" when task is given, and a
 * newline. The one writer of it (http.c, and the fuzzers' fake transport). */
void http_error_body(aw_buf_t *b, const struct http_error *e, const char *message,
                     const aw_task_t *task);

#endif
