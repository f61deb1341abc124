/*
 * events.h — GET /v1/events: every task state change as Server-Sent Events.
 *
 * The engine's observer renders each change once, as the text
 * `id: N\nevent: task\ndata: <task object>\n\n`, into a bounded ring of
 * recent events; every stream reads the ring through its own cursor.
 * With a store, an event is sent only once the change it shows is
 * committed, and event ids keep growing across restarts (the store keeps
 * the next block of ids); memory only, they count from 1 in each run. A
 * client whose next event has left the ring (a slow or stalled
 * reader) is dropped: its stream ends and its socket is closed, so a
 * client that stops reading costs no memory beyond the ring.
 *
 * Everything here runs on the loop thread.
 */
#ifndef AWAITD_EVENTS_H
#define AWAITD_EVENTS_H

#include "engine.h"
#include "http.h"
#include "store.h"

/* Installs the engine observer and the heartbeat timer (on the engine's
 * event base). Reads AWAITD_SSE_HEARTBEAT_MS from the environment once.
 * Returns 0, or -1 on allocation failure. Calling it again with the same
 * engine does nothing.
 * events_handle calls it on the first subscription, and nothing else
 * should: rendering every change costs a create about a fifth of its
 * speed, and before anyone subscribed no client can hold an event id to
 * resume from (ids restart with the daemon), so nothing is lost. */
int  events_init(aw_engine_t *e, aw_store_t *store);
/* The store's durable batch moved: events up to it may be sent. */
void events_committed(uint64_t durable);
/* Removes the observer and frees the ring and the timer. Call it after
 * http_server_free (which ends and frees every stream) and before
 * aw_engine_free and event_base_free. Safe without events_init. */
void events_free(void);

/* The GET /v1/events handler (query: id, last_event_id, access_token;
 * header Last-Event-ID). Answers a stream, 204 (nothing more to send for
 * ?id= after Last-Event-ID), 400, 404 or 503. Calls events_init itself
 * when it has not been called. */
void events_handle(struct http_ctx *x);

/* Open streams that have not been dropped: the awaitd_sse_clients gauge. */
unsigned events_clients(void);

#endif
