/*
 * api.h — the v1 contract's endpoints: routing and handlers. The engine
 * does the work; this file turns requests into engine calls and engine
 * results into JSON.
 */
#ifndef AWAITD_API_H
#define AWAITD_API_H

#include "http.h"

/* The http_handler_fn of awaitd. */
void api_handle(struct http_ctx *x);
/* Remembers the start time for /v1/info's uptime, and the notifier whose
 * figures /metrics reports (NULL: none). */
struct aw_notify;
void api_init(const struct aw_notify *notify);

#endif
