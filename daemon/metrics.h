/*
 * metrics.h — counters of the HTTP edge and the Prometheus text format of
 * GET /metrics. Engine numbers are read from aw_engine_stats at scrape
 * time, so the hot paths only bump array slots.
 */
#ifndef AWAITD_METRICS_H
#define AWAITD_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "engine.h"
#include "store.h"

struct event_base;

/* The `route` label of the latency histogram. */
enum metrics_route {
    ROUTE_OTHER = 0,
    ROUTE_HEALTHZ, ROUTE_METRICS, ROUTE_INFO, ROUTE_EVENTS,
    ROUTE_TASK_CREATE, ROUTE_TASK_LIST, ROUTE_TASK_GET, ROUTE_TASK_DELETE,
    ROUTE_TASK_CANCEL, ROUTE_TASK_WAIT, ROUTE_TASK_OUTPUT, ROUTE_WAIT_MANY,
    ROUTE_COUNT
};

/* Counts one response: its status, and the time from the request being
 * read to the answer being queued, in microseconds (a wait's time held). */
void metrics_observe(enum metrics_route route, unsigned status, int64_t micros);

/* Starts the loop-lag probe, a timer that measures how late the loop
 * serves it. Returns 0 or -1. metrics_stop frees it. */
int  metrics_start(struct event_base *base);
void metrics_stop(void);

/* Numbers only the HTTP layer knows, passed in at scrape time. */
struct metrics_http {
    unsigned          open_connections;
    unsigned          sse_clients;
    const aw_store_t *store;        /* NULL: memory only */
    const struct aw_notify *notify; /* NULL: none */
};

/* Appends the exposition text. */
void metrics_write(aw_buf_t *b, const aw_engine_t *e, const struct metrics_http *h);

#endif
