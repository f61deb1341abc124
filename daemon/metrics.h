/*
 * metrics.h — counters of the HTTP edge and the Prometheus text format of
 * GET /metrics (engine numbers are read from aw_engine_stats at scrape
 * time, so the hot paths only bump one array slot).
 */
#ifndef AWAITD_METRICS_H
#define AWAITD_METRICS_H

#include "buf.h"
#include "engine.h"

/* Counts one response with this status (100..599). */
void metrics_count_status(unsigned status);
/* Appends the exposition text. */
void metrics_write(aw_buf_t *b, const aw_engine_t *e, unsigned open_connections);

#endif
