/*
 * http.h — the HTTP server: libmicrohttpd driven by the libevent loop.
 *
 * MHD runs in external-epoll mode: its epoll fd is one persistent read event
 * on the base, its timeout one timer, and a "pump" event runs MHD_run once
 * after any batch of resumes (MHD does not wake itself in this mode; see
 * the pump in http.c). Handlers (api.c) answer through http_reply*; a
 * request that must wait (a `wait`) is suspended with no thread and no
 * polling, and answered with http_resume when its waiter fires.
 *
 * Per-request state (struct http_req) exists only for requests that carry a
 * body or wait; it is freed in exactly one place, MHD's request-completed
 * callback.
 */
#ifndef AWAITD_HTTP_H
#define AWAITD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "engine.h"
#include "store.h"

struct event_base;
struct MHD_Connection;
struct http_server;
struct http_req;

/* What a handler sees of one request. */
struct http_ctx {
    struct http_server    *srv;
    struct MHD_Connection *conn;
    const char            *method;  /* "HEAD" is passed as "GET" */
    const char            *path;
    const char            *body;    /* NULL when none */
    size_t                 body_len;
    void                 **con_cls;
    bool                   answered;
    bool                   close_after; /* answer with Connection: close */
    bool                   head;    /* the request was HEAD */
    int                    route;   /* enum metrics_route, set by the handler */
    int64_t                t0_us;   /* when the request was read (metrics) */
    unsigned               scopes;  /* CONFIG_SCOPE_* the token grants (edge.c) */
    const char            *scope_needed; /* of a 403 insufficient_scope */
    bool                   preflight;    /* a CORS preflight's answer */
};

/* Called once per request, with the whole body read. It must answer with
 * http_reply* or suspend with http_suspend. */
typedef void (*http_handler_fn)(struct http_ctx *x);

/* Starts serving on listen_fd (bound and listening; the server owns it).
 * Returns NULL with a message logged. */
/* store NULL: memory only, nothing is ever held for a commit. */
struct http_server *http_server_new(struct event_base *base, const struct config *cfg,
                                    aw_engine_t *engine, aw_store_t *store, int listen_fd,
                                    http_handler_fn handler);
/* Stops accepting new connections; open ones are still served (a graceful
 * shutdown lets running tasks end before http_server_drain). Idempotent. */
void http_server_stop_accepting(struct http_server *s);
/* Stops accepting, answers every suspended request with its current state,
 * and calls done() once they are all sent (or after a short grace). */
void http_server_drain(struct http_server *s, void (*done)(void *), void *arg);
void http_server_free(struct http_server *s);

aw_engine_t         *http_engine(const struct http_server *s);
const struct config *http_config(const struct http_server *s);
unsigned             http_open_connections(const struct http_server *s);

/* Query parameter or header; NULL when absent. */
const char *http_query(struct http_ctx *x, const char *name);
const char *http_header(struct http_ctx *x, const char *name);

/* Answers with a body (taken from b, which is left empty) and a type. */
void http_reply(struct http_ctx *x, unsigned status, aw_buf_t *b, const char *content_type);
/* The same, with a Location header (201 Created). */
void http_reply_located(struct http_ctx *x, unsigned status, aw_buf_t *b,
                        const char *location);
/* Answers with bytes that outlive the server (a page built into the
 * binary), with extra headers as NULL-terminated name, value pairs. */
void http_reply_static(struct http_ctx *x, unsigned status, const void *data, size_t len,
                       const char *content_type, const char *const *headers);
/* Answers 204 with no body. */
void http_reply_empty(struct http_ctx *x, unsigned status);
/* Answers with the error table's status and body for `value`; message NULL
 * means the table's default text. `task`, when given, is added as "task"
 * (409 already_done). `allow` is the Allow header of a 405. */
void http_reply_error(struct http_ctx *x, int value, const char *message);
void http_reply_error_task(struct http_ctx *x, int value, const char *message,
                           const aw_task_t *task);
void http_reply_405(struct http_ctx *x, const char *allow);

/* Streamed answers (chunked), for output?follow=true. read() copies up to
 * max bytes into buf and returns how many; 0 when it has nothing now (the
 * connection is then parked until http_stream_wake); -1 at the end. The
 * server calls free_ctx(ctx) once, when the response is gone. Returns the
 * stream, or NULL (after answering an error and freeing ctx). */
typedef long (*http_stream_read_fn)(void *ctx, char *buf, size_t max);
struct http_stream;
struct http_stream *http_reply_stream(struct http_ctx *x, const char *content_type,
                                      http_stream_read_fn read,
                                      void (*free_ctx)(void *), void *ctx);
/* New data (or the end) is there: unpark the stream. Any time, any place. */
void http_stream_wake(struct http_stream *st);

/* Suspension, for waits: get the request's state (made on first use), start
 * the waiter with it as the callback argument, then suspend. finish() must
 * render the request's answer and call http_resume; it is called by the
 * waiter's callback, or by http_server_drain at shutdown. */
struct http_req *http_req_get(struct http_ctx *x);
void http_suspend(struct http_ctx *x, struct http_req *r, aw_waiter_t *w,
                  void (*finish)(struct http_req *r));
/* Per-request scratch that finish() needs: the tasks of a wait, in order. */
void  http_req_set_tasks(struct http_req *r, aw_task_t **tasks, size_t n);
aw_task_t **http_req_tasks(struct http_req *r, size_t *n);
/* For the waiter's callback: forgets the waiter (it is freed after the
 * callback returns) and answers through the request's finish(). */
void  http_req_waiter_fired(struct http_req *r);
/* Queues the answer of a suspended request and wakes it up. */
void http_resume(struct http_req *r, unsigned status, aw_buf_t *b);
/* The same with the error table's answer for an error value; with task
 * (which must stay valid until the answer is sent: http_req_hold_task),
 * the body carries it as http_reply_error_task's does. */
void http_resume_error(struct http_req *r, int value);
void http_resume_error_task(struct http_req *r, int value, const aw_task_t *task);

/* Holding an answer until its commit (durable store, see store.h).
 *
 * An answer that reports a change is sent only once the store has
 * committed the batch that holds it; the numbers are the store's batch
 * numbers (aw_store_barrier). Two kinds of holds:
 *   http_hold         a write (create, cancel, delete): done(r, ok) is
 *                     called when that batch is committed (ok) or failed,
 *                     and must answer with http_resume*;
 *   http_reply_after  a read whose answer is ready (a wait that is over):
 *   http_resume_after it is sent once every change up to that batch is
 *                     durable.
 * The store's news reaches the server through http_server_committed. At
 * a drain, what is still held is settled: writes as failed, reads sent. */
typedef void (*http_commit_fn)(struct http_req *r, bool ok);
aw_store_t *http_store(const struct http_server *s);
struct http_server *http_req_server(const struct http_req *r);
/* Whether every change up to batch seq is durable (always, without a store). */
bool http_durable(const struct http_server *s, uint64_t seq);
void http_hold(struct http_ctx *x, struct http_req *r, uint64_t seq, http_commit_fn done);
void http_reply_after(struct http_ctx *x, uint64_t seq, unsigned status, aw_buf_t *b);
void http_resume_after(struct http_req *r, uint64_t seq, unsigned status, aw_buf_t *b);
/* http_resume_after with a Location header (a create's 201). */
void http_resume_located_after(struct http_req *r, uint64_t seq, unsigned status,
                               aw_buf_t *b, const char *location);
/* The request keeps a reference on t (http_req_tasks returns it) until
 * it is freed: a held create or cancel renders t when its commit comes. */
void http_req_hold_task(struct http_req *r, aw_task_t *t);
/* Batches up to last were committed (ok) or failed; durable is the
 * store's new durable batch. */
void http_server_committed(struct http_server *s, uint64_t last, bool ok,
                           uint64_t durable);

#endif
