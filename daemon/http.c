/*
 * http.c — libmicrohttpd inside the libevent loop (see http.h).
 *
 * The access-handler protocol, per request:
 *   1st call (headers only): note whether a body must be kept; refuse an
 *     announced oversized body at once. Never answer a normal request here:
 *     libmicrohttpd 0.9.75 treats a response queued while the connection
 *     is still in HEADERS_PROCESSED as "early", stops reading the body
 *     and closes the connection after it, so keep-alive would be lost.
 *     That is why ambiguous framing is refused here (see framing_error):
 *     nothing after it on the connection may be read.
 *   calls with upload data: append (bounded by max_body_bytes) or discard;
 *     every byte must be consumed before answering: a reply with upload
 *     data pending makes MHD call the handler again, the second
 *     MHD_queue_response fails, and MHD closes the connection with
 *     "Application reported internal error" (seen with curl sending one
 *     body to two URLs).
 *   final call: edge.c decides whether the request may proceed (Host,
 *     Origin, token, scope; its body is never looked at when not), then
 *     the handler gets it with the granted scopes in http_ctx.
 *   after a resume: send the answer finish() prepared.
 * Bodyless requests get no allocation at all: *con_cls points at a static
 * marker, which keeps the GET path cheap.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "edge.h"
#include "errors.h"
#include "http.h"
#include "http_error.h"
#include "log.h"
#include "metrics.h"
#include "task_json.h"
#include "tls.h"
#include "utf8.h"

/* MHD's per-connection pool. MHD zeroes the pool after every keep-alive
 * request (MHD_pool_reset), so its size is paid per request, and each
 * page it touches is a page fault the first time: with 10,000 waits
 * answered at once, 16 KB cost 130 ms and 180 MB where 8 KB costs 100 ms
 * and 100 MB, and the 32 KB default cost 8% of every GET. 8 KB still
 * takes request headers of 7 KB (a large bearer token fits); larger ones
 * get MHD's 431. */
#ifndef POOL_SIZE
#define POOL_SIZE (8 * 1024)
#endif

/* How long a draining server waits for resumed answers to go out. */
#define DRAIN_GRACE_SEC 2

struct http_req {
    struct http_server    *srv;
    struct MHD_Connection *conn;
    aw_buf_t               body;
    bool                   keep_body;
    bool                   too_large;
    aw_waiter_t           *waiter;
    void                 (*finish)(struct http_req *r);
    aw_task_t            **tasks;
    size_t                 ntasks;
    bool                   refs_tasks;      /* tasks are referenced (holds) */
    bool                   suspended;
    bool                   counted;         /* in waits_open */
    bool                   ready;
    unsigned               resp_status;
    int                    resp_error;      /* an error value to answer instead */
    const aw_task_t       *resp_task;       /* ... with this task (409 already_done) */
    aw_buf_t               resp;
    char                  *location;        /* Location of the answer, or NULL */
    int                    route;           /* of the suspended request */
    int64_t                t0_us;
    struct http_req       *prev, *next;     /* server's suspended list */
    /* Holding for a commit: a write waits for its batch (on_commit set),
     * a read's prepared answer for the durable point (on_commit NULL). */
    bool                   holding;
    uint64_t               hold_seq;
    http_commit_fn         on_commit;
    struct http_req       *hprev, *hnext;   /* server's held list, by hold_seq */
    struct http_conn      *hconn;           /* its connection's watch, or NULL */
    /* A chunked upload still being read (see reap_stalled). */
    bool                   chunked;
    int64_t                upload_us;       /* last time a part of it arrived */
    struct http_req       *cprev, *cnext;   /* server's chunked list */
};

struct http_stream {
    struct http_server    *srv;
    struct MHD_Connection *conn;
    http_stream_read_fn    read;
    void                 (*free_ctx)(void *);
    void                  *ctx;
    bool                   parked;          /* its connection is suspended */
    bool                   ended;           /* the server is draining */
    struct http_stream    *prev, *next;     /* server's list */
    struct http_conn      *hconn;           /* its connection's watch, or NULL */
};

struct http_server {
    struct event_base   *base;
    const struct config *cfg;
    aw_engine_t         *engine;
    http_handler_fn      handler;
    struct MHD_Daemon   *mhd;
    int                  listen_fd;
    struct event        *mhd_ev, *mhd_timer, *pump_ev, *drain_ev;
    struct http_req     *suspended;
    struct http_req     *held, *held_tail;
    uint64_t             durable;           /* the store's; UINT64_MAX: no store */
    aw_store_t          *store;
    struct http_stream  *streams;
    unsigned             waits_open;        /* waits and streams not yet done */
    unsigned             open_connections;  /* counted by conn_notify */
    struct event        *listen_ev, *accept_retry;
    bool                 warned_emfile;
    struct http_req     *chunked;           /* chunked uploads being read */
    int64_t              spin_since;        /* MHD has asked for 0 ms since; 0: not */
    bool                 draining;
    void               (*drain_done)(void *);
    void                *drain_arg;
};

/* *con_cls of requests that need no state. */
static char no_state;
/* *con_cls, set by on_uri, of a request whose URI holds a NUL, %00 or a space. */
static char bad_line;

/* ---- the pump: MHD_run, then re-arm MHD's timeout ----
 *
 * Why MHD_run after every batch of resumes: in external-polling mode MHD
 * has no inter-thread channel (it drops MHD_USE_ITC), and
 * MHD_resume_connection only sets a flag that the next MHD_run reads;
 * nothing wakes epoll. Without the pump a resumed waiter is answered only
 * when something unrelated wakes the loop (measured: about ten minutes).
 * Why the timer is re-armed from MHD_get_timeout after every run, 0 ms
 * included: MHD keeps connections with unprocessed data on an internal
 * list and reports that through a zero timeout, while its epoll fd (edge
 * triggered inside) may never become readable again for them. */

static int64_t now_us(void);
static void reap_stalled(struct http_server *s, int64_t now, bool sure);

/* How long MHD may ask for 0 ms timeouts in a row before a chunked
 * upload that got nothing for as long is taken for stalled (see
 * reap_stalled): at once when data or the client's FIN waits unread on
 * its socket, after SPIN_SURE_US whatever its socket holds. */
#define SPIN_LIMIT_US (250 * 1000)
#define SPIN_SURE_US  (2000 * 1000)

static void pump(struct http_server *s)
{
    MHD_run(s->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
        if (ms == 0 && s->chunked) {
            int64_t t = now_us();
            if (!s->spin_since)
                s->spin_since = t;
            else if (t - s->spin_since > SPIN_LIMIT_US)
                reap_stalled(s, t, t - s->spin_since > SPIN_SURE_US);
        } else {
            s->spin_since = 0;
        }
        struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
                              .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
        evtimer_add(s->mhd_timer, &tv);
    } else {
        evtimer_del(s->mhd_timer);
    }
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* ---- connections: our own accept, counting, and watching each socket ----
 *
 * We accept ourselves (MHD_USE_NO_LISTEN_SOCKET, then MHD_add_connection)
 * because libmicrohttpd 0.9.75 re-arms its listen socket only at the
 * start of a later MHD_run: once the limit or an EMFILE had taken it out
 * of the epoll set and the last connection closed, nothing scheduled that
 * run and the daemon never accepted again. Here the listen event is
 * switched off at the connection limit (new clients wait in the backlog)
 * and back on as soon as a connection closes; at fd exhaustion it is off
 * for ACCEPT_RETRY_MS and then retried, so there is no busy loop on a
 * listen socket that stays readable.
 *
 * Connections are counted from MHD_OPTION_NOTIFY_CONNECTION, never with
 * MHD_get_daemon_info(MHD_DAEMON_INFO_CURRENT_CONNECTIONS): called from
 * the access handler, that one runs MHD_cleanup_connections and frees
 * connections the running MHD_run is still walking (valgrind: invalid
 * reads, then SIGSEGV).
 *
 * Each connection's socket is watched with EV_CLOSED (EPOLLRDHUP with the
 * epoll backend) because MHD does not look at a suspended connection at
 * all, and misses the end of a partial request whose FIN came with its
 * last bytes (its epoll set is edge triggered). A peer that shut its
 * writing side is treated as gone:
 *   a suspended wait is answered at once with its current state: resumed,
 *     MHD sends that answer and then sees the end of the stream (or a
 *     reset) and closes; the waiter is freed with it;
 *   a parked stream (SSE, follow) is ended the same way;
 *   anything else (a partial request, an idle keep-alive) gets a 1 s
 *     timeout (MHD_set_connection_option): MHD closes it at its next
 *     timeout check without cutting an answer that is still being sent.
 * A held answer is left to its commit, which takes milliseconds.
 * Why these and not one way for all: a timeout does not apply while a
 * connection is suspended (microhttpd.h, MHD_suspend_connection), so a
 * wait must be resumed to be dropped; shutdown(2) would cut an answer
 * being sent to a client that only half-closed, so it is kept for the
 * request timeout, where there is no answer yet.
 * The same watch, with EV_READ until the connection's first byte, marks
 * when its first request starts; a later request starts at its request
 * line (on_uri; a byte-level mark would cost two epoll_ctl calls per
 * request). request_timeout_seconds runs from there; when it expires
 * the socket is shut down (shutdown(2)), which MHD reads as the client
 * going away: trickled bytes keep MHD's own idle timeout from firing. */

#define ACCEPT_BATCH     64
#define ACCEPT_RETRY_MS  100

struct http_conn {
    struct http_server    *srv;
    struct MHD_Connection *conn;
    int                    fd;
    struct event          *watch;       /* EV_CLOSED, + EV_READ until a first byte */
    struct event          *deadline;    /* request_timeout_seconds, or NULL */
    bool                   seen_uri;    /* a request line has arrived */
    bool                   peer_closed;
    struct http_req       *req;         /* suspended or held request */
    struct http_stream    *stream;      /* its stream, while parked */
};

static void conn_watch_cb(evutil_socket_t fd, short what, void *arg);

static void conn_arm_watch(struct http_conn *k, bool first_byte)
{
    if (k->peer_closed)
        return;
    event_del(k->watch);
    event_assign(k->watch, k->srv->base, k->fd,
                 first_byte ? EV_CLOSED | EV_READ : EV_CLOSED, conn_watch_cb, k);
    event_add(k->watch, NULL);
}

static void conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *k = arg;
    log_debug("request not complete within request_timeout_seconds: closing");
    shutdown(k->fd, SHUT_RDWR);
    event_active(k->srv->pump_ev, EV_READ, 0);
}

/* A request's first byte: its own deadline starts. */
static void conn_request_started(struct http_conn *k)
{
    if (!k->deadline)
        k->deadline = evtimer_new(k->srv->base, conn_deadline_cb, k);
    if (!k->deadline || evtimer_pending(k->deadline, NULL))
        return;
    double t = k->srv->cfg->request_timeout_seconds;
    struct timeval tv = { .tv_sec = (time_t)t,
                          .tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6) };
    evtimer_add(k->deadline, &tv);
}

static struct http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static void peer_gone(struct http_conn *k);
static void listen_enable(struct http_server *s);

static void conn_watch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct http_conn *k = arg;
    if (what & EV_CLOSED) {
        k->peer_closed = true;      /* one-shot: a closed peer stays closed */
        peer_gone(k);
        return;
    }
    /* Once a request line is in (on_uri), this readiness may come from
     * bytes MHD has already taken, even a whole answered request: only
     * the very first byte of a connection starts a deadline here. */
    if (!k->seen_uri)
        conn_request_started(k);
    conn_arm_watch(k, false);
}

static void conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->open_connections++;
        struct http_conn *k = calloc(1, sizeof *k);
        const union MHD_ConnectionInfo *i =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (k && i && (k->watch = event_new(s->base, -1, 0, conn_watch_cb, k))) {
            k->srv = s;
            k->conn = c;
            k->fd = i->connect_fd;
            conn_arm_watch(k, true);
            *socket_context = k;
        } else {
            free(k);                /* unwatched, but served */
        }
        return;
    }
    s->open_connections--;
    struct http_conn *k = *socket_context;
    *socket_context = NULL;
    if (k) {
        if (k->req)
            k->req->hconn = NULL;
        if (k->stream)
            k->stream->hconn = NULL;
        event_free(k->watch);
        if (k->deadline)
            event_free(k->deadline);
        free(k);
    }
    /* A slot is free: listen again (off at the limit, see accept_cb). */
    if (s->open_connections < s->cfg->max_connections)
        listen_enable(s);
}

static void listen_enable(struct http_server *s)
{
    if (s->listen_fd >= 0 && !evtimer_pending(s->accept_retry, NULL) &&
        !event_pending(s->listen_ev, EV_READ, NULL))
        event_add(s->listen_ev, NULL);
}

static void listen_close(struct http_server *s)
{
    if (s->listen_fd < 0)
        return;
    event_del(s->listen_ev);
    evtimer_del(s->accept_retry);
    close(s->listen_fd);
    s->listen_fd = -1;
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_server *s = arg;
    if (s->open_connections < s->cfg->max_connections)
        listen_enable(s);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct http_server *s = arg;
    if (s->listen_fd < 0)
        return;
    bool added = false;
    for (int n = 0; n < ACCEPT_BATCH; n++) {
        if (s->open_connections >= s->cfg->max_connections) {
            /* At the limit: leave new clients in the backlog; a close
             * turns listening back on (conn_notify). */
            event_del(s->listen_ev);
            break;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: keep serving what is open, retry
                 * later rather than spin on a readable listen socket. */
                if (!s->warned_emfile)
                    log_warnx("accept: %s; not accepting for %d ms",
                              strerror(errno), ACCEPT_RETRY_MS);
                s->warned_emfile = true;
                event_del(s->listen_ev);
                struct timeval tv = { .tv_usec = ACCEPT_RETRY_MS * 1000 };
                evtimer_add(s->accept_retry, &tv);
            }
            break;                  /* EAGAIN, or a client that left */
        }
        s->warned_emfile = false;
        /* MHD closes fd itself when it refuses it (the per-client limit). */
        if (MHD_add_connection(s->mhd, fd, (struct sockaddr *)&ss, len) == MHD_YES)
            added = true;
    }
    if (added)
        pump(s);
}

/* A peer that shut its writing side: see the comment above. */
static void suspended_gone(struct http_req *r);

static void peer_gone(struct http_conn *k)
{
    struct http_server *s = k->srv;
    if (k->deadline)
        evtimer_del(k->deadline);
    if (k->req && k->req->suspended) {
        suspended_gone(k->req);
    } else if (k->stream && k->stream->parked) {
        k->stream->ended = true;
        http_stream_wake(k->stream);
    }
    MHD_set_connection_option(k->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
    event_active(s->pump_ev, EV_READ, 0);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the edge: may this request proceed? (edge.c) ---- */

static void judge(struct http_server *s, struct http_ctx *x, struct edge_verdict *v)
{
    struct edge_request rq = {
        .method = x->method, .path = x->path,
        .host = http_header(x, MHD_HTTP_HEADER_HOST),
        .origin = http_header(x, "Origin"),
        .authorization = http_header(x, MHD_HTTP_HEADER_AUTHORIZATION),
        .access_token = http_query(x, "access_token"),
        .preflight_method = http_header(x, "Access-Control-Request-Method"),
    };
    edge_check(s->cfg, &rq, v);
}

/* ---- replies ---- */

/* The peer's address as text, for the logs ("-" when MHD does not know). */
static void client_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    socklen_t salen = !sa ? 0 : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                    : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;
    if (!salen || getnameinfo(sa, salen, out, len, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, len, "%s", sa && sa->sa_family == AF_UNIX ? "unix" : "-");
}

static void queue_response(struct http_ctx *x, unsigned status, struct MHD_Response *resp)
{
    if (!resp) {
        x->answered = MHD_queue_response(x->conn, 500,
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)) == MHD_YES;
        return;
    }
    edge_add_cors(x->srv->cfg, http_header(x, "Origin"), x->preflight, resp);
    if (x->close_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_queue_response(x->conn, status, resp);
    MHD_destroy_response(resp);
    int64_t us = now_us() - x->t0_us;
    metrics_observe((enum metrics_route)x->route, status, us);
    if (x->srv->cfg->access_log || log_enabled(LOG_LEVEL_DEBUG)) {
        char client[NI_MAXHOST];
        client_address(x->conn, client, sizeof client);
        if (x->srv->cfg->access_log)
            log_info("access %s %s %u %.3f ms client %s", x->method, x->path, status,
                     (double)us / 1000, client);
        else
            log_debug("request %s %s %u %.3f ms client %s", x->method, x->path, status,
                      (double)us / 1000, client);
    }
    x->answered = true;
}

static void reply(struct http_ctx *x, unsigned status, aw_buf_t *b,
                  const char *content_type, const char *location)
{
    size_t len;
    char *p = aw_buf_steal(b, &len);
    if (!p) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(p);
    else
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (resp && location)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    queue_response(x, status, resp);
}

void http_reply(struct http_ctx *x, unsigned status, aw_buf_t *b, const char *content_type)
{
    reply(x, status, b, content_type, NULL);
}

void http_reply_located(struct http_ctx *x, unsigned status, aw_buf_t *b,
                        const char *location)
{
    reply(x, status, b, "application/json", location);
}

void http_reply_static(struct http_ctx *x, unsigned status, const void *data, size_t len,
                       const char *content_type, const char *const *headers)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        for (size_t i = 0; headers && headers[i]; i += 2)
            MHD_add_response_header(resp, headers[i], headers[i + 1]);
    }
    queue_response(x, status, resp);
}

void http_reply_empty(struct http_ctx *x, unsigned status)
{
    queue_response(x, status, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

static void reply_error(struct http_ctx *x, int value, const char *message,
                        const aw_task_t *task, const char *allow)
{
    const struct http_error *e = http_error_lookup(value);
    aw_buf_t b;
    aw_buf_init(&b);
    http_error_body(&b, e, message, task);
    size_t len;
    char *p = aw_buf_steal(&b, &len);
    struct MHD_Response *resp = p
        ? MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(p);
        queue_response(x, 500, NULL);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    char challenge[128];
    if (value == HTTP_EUNAUTHORIZED || value == HTTP_ESCOPE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                edge_www_authenticate(value, x->scope_needed,
                                                      challenge, sizeof challenge));
    if (e->status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    queue_response(x, e->status, resp);
}

void http_reply_error(struct http_ctx *x, int value, const char *message)
{
    reply_error(x, value, message, NULL, NULL);
}

void http_reply_error_task(struct http_ctx *x, int value, const char *message,
                           const aw_task_t *task)
{
    reply_error(x, value, message, task, NULL);
}

void http_reply_405(struct http_ctx *x, const char *allow)
{
    reply_error(x, HTTP_EMETHOD, NULL, NULL, allow);
}

/* ---- streams ---- */

static void drain_check(struct http_server *s)
{
    if (s->draining && s->waits_open == 0)
        event_active(s->drain_ev, EV_TIMEOUT, 0);
}


static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct http_stream *st = cls;
    if (st->ended)
        return MHD_CONTENT_READER_END_OF_STREAM;
    long n = st->read(st->ctx, buf, max);
    if (n > 0)
        return (ssize_t)n;
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing yet: returning 0 alone would make MHD ask again on every
     * MHD_run, a busy loop. Parking is allowed from here (microhttpd.h). */
    st->parked = true;
    MHD_suspend_connection(st->conn);
    return 0;
}

static void stream_free(void *cls)
{
    struct http_stream *st = cls;
    struct http_server *s = st->srv;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    if (st->hconn)
        st->hconn->stream = NULL;
    st->free_ctx(st->ctx);
    free(st);
    s->waits_open--;
    drain_check(s);
}

struct http_stream *http_reply_stream(struct http_ctx *x, const char *content_type,
                                      http_stream_read_fn read,
                                      void (*free_ctx)(void *), void *ctx)
{
    struct http_server *s = x->srv;
    if (x->head) {
        /* Headers only. A callback response would not do: for HEAD,
         * libmicrohttpd 0.9.75 still ends the chunked body it does not
         * send with "0\r\n\r\n", which the client reads as the start of
         * the next answer on the connection. */
        free_ctx(ctx);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        queue_response(x, 200, resp);
        return NULL;
    }
    struct http_stream *st = calloc(1, sizeof *st);
    struct MHD_Response *resp = st
        ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader,
                                            st, stream_free)
        : NULL;
    if (!resp) {
        free(st);
        free_ctx(ctx);
        http_reply_error(x, -ENOMEM, NULL);
        return NULL;
    }
    *st = (struct http_stream){ .srv = s, .conn = x->conn, .read = read,
                                .free_ctx = free_ctx, .ctx = ctx, .next = s->streams };
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->waits_open++;
    if ((st->hconn = conn_of(x->conn)))
        st->hconn->stream = st;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    queue_response(x, 200, resp);
    return st;
}

void http_stream_wake(struct http_stream *st)
{
    if (!st->parked)
        return;
    st->parked = false;
    MHD_resume_connection(st->conn);
    event_active(st->srv->pump_ev, EV_READ, 0);
}

/* ---- request state and suspension ---- */

static void count_open(struct http_req *r)
{
    if (!r->counted) {
        r->counted = true;
        r->srv->waits_open++;
    }
}


static struct http_req *req_new(struct http_server *s, struct MHD_Connection *c)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (r) {
        r->srv = s;
        r->conn = c;
    }
    return r;
}

/* Links r to its connection's watch, so that a peer that goes away while
 * r is suspended is noticed (peer_gone). */
static void watch_req(struct http_req *r)
{
    struct http_conn *k = r->hconn ? r->hconn : conn_of(r->conn);
    if (k) {
        k->req = r;
        r->hconn = k;
        if (k->peer_closed)             /* it left before the suspend */
            event_active(k->watch, EV_CLOSED, 0);
    }
}

struct http_req *http_req_get(struct http_ctx *x)
{
    if (*x->con_cls && *x->con_cls != &no_state)
        return *x->con_cls;
    struct http_req *r = req_new(x->srv, x->conn);
    if (r)
        *x->con_cls = r;
    return r;
}

void http_req_set_tasks(struct http_req *r, aw_task_t **tasks, size_t n)
{
    free(r->tasks);
    r->tasks = tasks;
    r->ntasks = n;
}

aw_task_t **http_req_tasks(struct http_req *r, size_t *n)
{
    *n = r->ntasks;
    return r->tasks;
}

void http_req_waiter_fired(struct http_req *r)
{
    r->waiter = NULL;
    r->finish(r);
}

void http_suspend(struct http_ctx *x, struct http_req *r, aw_waiter_t *w,
                  void (*finish)(struct http_req *r))
{
    struct http_server *s = x->srv;
    r->waiter = w;
    r->finish = finish;
    r->route = x->route;
    r->t0_us = x->t0_us;
    r->suspended = true;
    r->next = s->suspended;
    if (s->suspended)
        s->suspended->prev = r;
    s->suspended = r;
    count_open(r);
    watch_req(r);
    MHD_suspend_connection(x->conn);
    x->answered = true;
}

static void unlink_suspended(struct http_req *r)
{
    if (!r->suspended)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        r->srv->suspended = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->suspended = false;
}

/* The client of a suspended wait went away: answer it now, as a drain
 * does, so that MHD can close the connection and the waiter is freed. */
static void suspended_gone(struct http_req *r)
{
    aw_waiter_t *w = r->waiter;
    r->finish(r);                       /* renders the state now, resumes */
    unlink_suspended(r);
    if (w) {
        r->waiter = NULL;
        aw_wait_abandon(w);
    }
}

static void send_prepared(struct http_req *r)
{
    r->ready = true;
    MHD_resume_connection(r->conn);
    /* Many resumes in one loop turn cost one MHD_run (see pump). */
    event_active(r->srv->pump_ev, EV_READ, 0);
}

static void keep_answer(struct http_req *r, unsigned status, aw_buf_t *b)
{
    r->resp_status = status;
    aw_buf_close(&r->resp);
    r->resp = *b;
    aw_buf_init(b);
}

void http_resume(struct http_req *r, unsigned status, aw_buf_t *b)
{
    keep_answer(r, status, b);
    unlink_suspended(r);
    send_prepared(r);
}

void http_resume_error_task(struct http_req *r, int value, const aw_task_t *task)
{
    aw_buf_t empty;
    aw_buf_init(&empty);
    r->resp_error = value;
    r->resp_task = task;
    http_resume(r, 0, &empty);
}

void http_resume_error(struct http_req *r, int value)
{
    http_resume_error_task(r, value, NULL);
}

/* ---- holding answers until their commit ---- */

static void hold_link(struct http_req *r, uint64_t seq, http_commit_fn done)
{
    struct http_server *s = r->srv;
    r->holding = true;
    r->hold_seq = seq;
    r->on_commit = done;
    r->hnext = NULL;
    r->hprev = s->held_tail;
    if (s->held_tail)
        s->held_tail->hnext = r;
    else
        s->held = r;
    s->held_tail = r;
}

static void hold_unlink(struct http_req *r)
{
    struct http_server *s = r->srv;
    if (!r->holding)
        return;
    if (r->hprev)
        r->hprev->hnext = r->hnext;
    else
        s->held = r->hnext;
    if (r->hnext)
        r->hnext->hprev = r->hprev;
    else
        s->held_tail = r->hprev;
    r->hprev = r->hnext = NULL;
    r->holding = false;
}

bool http_durable(const struct http_server *s, uint64_t seq)
{
    return seq <= s->durable;
}

aw_store_t *http_store(const struct http_server *s)
{
    return s->store;
}

struct http_server *http_req_server(const struct http_req *r)
{
    return r->srv;
}

void http_hold(struct http_ctx *x, struct http_req *r, uint64_t seq, http_commit_fn done)
{
    r->route = x->route;
    r->t0_us = x->t0_us;
    count_open(r);
    watch_req(r);
    hold_link(r, seq, done);
    MHD_suspend_connection(x->conn);
    x->answered = true;
}

void http_reply_after(struct http_ctx *x, uint64_t seq, unsigned status, aw_buf_t *b)
{
    struct http_req *r;
    if (http_durable(x->srv, seq) || !(r = http_req_get(x))) {
        http_reply(x, status, b, "application/json");
        return;
    }
    keep_answer(r, status, b);
    http_hold(x, r, seq, NULL);
}

void http_resume_after(struct http_req *r, uint64_t seq, unsigned status, aw_buf_t *b)
{
    keep_answer(r, status, b);
    unlink_suspended(r);
    if (http_durable(r->srv, seq))
        send_prepared(r);
    else
        hold_link(r, seq, NULL);
}

void http_resume_located_after(struct http_req *r, uint64_t seq, unsigned status,
                               aw_buf_t *b, const char *location)
{
    free(r->location);
    r->location = location ? strdup(location) : NULL;
    http_resume_after(r, seq, status, b);
}

void http_req_hold_task(struct http_req *r, aw_task_t *t)
{
    aw_task_t **tasks = malloc(sizeof *tasks);
    if (!tasks)
        return;
    aw_task_ref(t);
    tasks[0] = t;
    http_req_set_tasks(r, tasks, 1);
    r->refs_tasks = true;
}

void http_server_committed(struct http_server *s, uint64_t last, bool ok,
                           uint64_t durable)
{
    s->durable = durable;
    struct http_req *r = s->held, *next;
    for (; r && r->hold_seq <= last; r = next) {
        next = r->hnext;
        if (r->on_commit) {
            http_commit_fn done = r->on_commit;
            hold_unlink(r);
            done(r, ok);
        } else if (r->hold_seq <= durable) {
            hold_unlink(r);
            send_prepared(r);
        }
    }
}

/* ---- chunked uploads that libmicrohttpd cannot go on reading ----
 *
 * libmicrohttpd 0.9.75 parses a chunk's size line (extensions included)
 * only once all of it is in the connection's read buffer, which the
 * POOL_SIZE pool bounds. A longer line ("2;foo=<9,000 bytes>") fills the
 * buffer: MHD stops reading the socket, never sees more data nor the
 * client leaving, yet keeps the connection on its ready list and reports
 * a 0 ms timeout, so the loop spins until the 120 s connection timeout.
 * No public call ends a connection from outside the access handler, and
 * the handler is not called for it again. So: chunked uploads are kept on
 * a list with the time their last part arrived; when MHD has asked for
 * 0 ms for SPIN_LIMIT_US, the ones that got nothing for as long while
 * bytes wait unread on their socket (a healthy connection's are read by
 * the next MHD_run) are answered 400 on the socket directly (nothing has
 * been sent on it yet), and the socket is shut down, which MHD sees as a
 * hang-up and closes. A line that fills the buffer exactly leaves nothing
 * unread: after SPIN_SURE_US every chunked upload without progress goes,
 * which may include a legitimate one that paused meanwhile. */

static void chunked_link(struct http_server *s, struct http_req *r)
{
    r->chunked = true;
    r->upload_us = now_us();
    r->cprev = NULL;
    r->cnext = s->chunked;
    if (s->chunked)
        s->chunked->cprev = r;
    s->chunked = r;
}

static void chunked_unlink(struct http_req *r)
{
    if (!r->chunked)
        return;
    if (r->cprev)
        r->cprev->cnext = r->cnext;
    else
        r->srv->chunked = r->cnext;
    if (r->cnext)
        r->cnext->cprev = r->cprev;
    r->cprev = r->cnext = NULL;
    r->chunked = false;
}

static const char stalled_answer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Connection: close\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 96\r\n"
    "\r\n"
    "{\"error\":{\"code\":\"invalid_request\",\"message\":"
    "\"chunk size line longer than the request buffer\"}}\n";

/* Data or a FIN that MHD leaves unread on the socket. */
static bool unread(int fd)
{
    int n = 0;
    char c;
    return (ioctl(fd, FIONREAD, &n) == 0 && n > 0) ||
           recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void reap_stalled(struct http_server *s, int64_t now, bool sure)
{
    struct http_req *r = s->chunked, *next;
    for (; r; r = next) {
        next = r->cnext;
        if (now - r->upload_us < SPIN_LIMIT_US)
            continue;                   /* it progressed during the spin */
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!fi)
            continue;
        int fd = fi->connect_fd;
        if (!sure && !unread(fd))
            continue;                   /* maybe only a slow client */
        chunked_unlink(r);
        if (!MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION))
            (void)!send(fd, stalled_answer, sizeof stalled_answer - 1,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
        /* Read what is queued (bounded) so that the close that follows
         * sends a FIN after the answer, not a reset that may destroy it. */
        char sink[4096];
        for (int i = 0; i < 64 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
        shutdown(fd, SHUT_RDWR);
        log_warnx("closed a chunked upload whose chunk size line does not fit "
                  "the request buffer (%d bytes)", POOL_SIZE);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    *con_cls = NULL;
    if (!r || (void *)r == &no_state || (void *)r == &bad_line)
        return;
    chunked_unlink(r);
    if (r->waiter)
        aw_wait_abandon(r->waiter);
    if (r->hconn)
        r->hconn->req = NULL;
    unlink_suspended(r);
    hold_unlink(r);
    if (r->counted) {
        s->waits_open--;
        drain_check(s);
    }
    aw_buf_close(&r->body);
    aw_buf_close(&r->resp);
    if (r->refs_tasks)
        for (size_t i = 0; i < r->ntasks; i++)
            aw_task_unref(r->tasks[i]);
    free(r->tasks);
    free(r->location);
    free(r);
}

/* ---- the access handler ---- */

/* ---- framing: what libmicrohttpd 0.9.75 lets through ----
 *
 * Each of these lets two parsers (a proxy in front, awaitd) read a
 * different request out of the same bytes, or hangs the connection, so
 * each is refused with 400 and a closed connection: answering in
 * first_call is an "early" answer, after which MHD reads nothing more from
 * the connection (and Connection: close covers bodyless requests).
 * - Transfer-Encoding and Content-Length together: MHD obeys the first
 *   and ignores the other; a request smuggled in the body ran.
 * - Content-Length twice: MHD takes the first.
 * - Transfer-Encoding other than exactly "chunked" (identity, gzip,
 *   "chunked, chunked", twice): MHD reads such a body until the client
 *   closes, and never answers.
 * - whitespace before a header's colon ("Content-Length : 5"): MHD keeps
 *   it in the name, so it ignores that Content-Length, and the body is
 *   read as the next request (RFC 9112 5.1: refuse it). MHD's own check
 *   (STRICT_FOR_CLIENT) runs only at level -1 in 0.9.75, see below.
 * - a NUL in a header value: MHD hands values over as C strings, so
 *   "Bearer TOKEN\0junk" reached us as "Bearer TOKEN". The value still
 *   sits in MHD's read buffer, where the line's CR and LF became NULs and
 *   the next header's name follows: anything but NUL, space or tab
 *   between the value's end and the next name (for the last header: the
 *   blank line, two NULs) is a NUL inside the value. A value folded onto
 *   a continuation line (obs-fold, which RFC 9112 lets a server refuse)
 *   leaves its continuation there and is refused the same way.
 * A NUL in the request line is caught in on_uri. */

struct framing {
    unsigned    content_length, transfer_encoding;
    bool        te_chunked;
    bool        nul;
    bool        blank_name;
    const char *prev_end;               /* end of the previous header's value */
};

static bool only_blank(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != '\0' && *p != ' ' && *p != '\t')
            return false;
    return true;
}

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, size_t key_size,
                                      const char *value, size_t value_size)
{
    (void)kind;
    struct framing *f = cls;
    if (f->prev_end && f->prev_end <= key && !only_blank(f->prev_end, key))
        f->nul = true;
    f->prev_end = value ? value + value_size : key + key_size + 1;
    if (memchr(key, ' ', key_size) || memchr(key, '\t', key_size))
        f->blank_name = true;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        f->content_length++;
    if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->te_chunked = value && strcasecmp(value, "chunked") == 0;
    }
    return MHD_YES;
}

/* Query values are unescaped, so "%00" is a NUL; their length is right. */
static enum MHD_Result query_nul(void *cls, enum MHD_ValueKind kind,
                                 const char *key, size_t key_size,
                                 const char *value, size_t value_size)
{
    (void)kind;
    bool *nul = cls;
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        *nul = true;
        return MHD_NO;
    }
    return MHD_YES;
}

static const char *framing_error(struct MHD_Connection *c)
{
    struct framing f = { 0 };
    bool query = false;
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, query_nul, &query);
    if (query)                          /* ?access_token=TOKEN%00junk */
        return "a query parameter contains a NUL byte";
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, framing_header, &f);
    if (f.prev_end) {
        /* The last value: trailing blanks, then its line end and the
         * blank line, each at least one NUL. */
        const char *p = f.prev_end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (p[0] != '\0' || p[1] != '\0')
            f.nul = true;
    }
    if (f.nul)
        return "a header value contains a NUL byte or continues on a folded line";
    if (f.blank_name)
        return "whitespace in a header name or before its colon";
    if (f.transfer_encoding && f.content_length)
        return "Transfer-Encoding and Content-Length together";
    if (f.content_length > 1)
        return "more than one Content-Length";
    if (f.transfer_encoding > 1 || (f.transfer_encoding && !f.te_chunked))
        return "Transfer-Encoding other than chunked";
    return NULL;
}

/* The URI log callback: sees the request line before MHD splits and
 * unescapes it, as a C string that ends at a NUL. MHD has replaced the
 * space before the version with a NUL, so the URI's end is directly
 * followed by "HTTP/1.x" and its NUL; anything else means the URI held a
 * NUL of its own ("GET /healthz\0junk HTTP/1.1" reached the handler as
 * GET /healthz). MHD has checked the version before this call. A space
 * inside the URI (MHD takes the last one as the separator) is refused
 * too, and "%00", which MHD unescapes into a NUL that cuts the path the
 * same way (/healthz%00junk was /healthz). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    /* It also marks the start of a request that came after another on
     * the same connection, for its request timeout (the first one's start
     * is seen by the watch). */
    struct http_conn *k = conn_of(c);
    if (k) {
        k->seen_uri = true;
        conn_request_started(k);
    }
    const char *v = uri + strlen(uri) + 1;
    if (!strchr(uri, ' ') && !strstr(uri, "%00") && strncmp(v, "HTTP/1.", 7) == 0 && v[7] >= '0' && v[7] <= '9' && v[8] == '\0')
        return NULL;
    return &bad_line;
}

static enum MHD_Result refuse_framing(struct http_ctx *x, const char *why)
{
    *x->con_cls = &no_state;
    x->close_after = true;
    http_reply_error(x, AW_EINVAL, why);
    return MHD_YES;
}

static enum MHD_Result first_call(struct http_server *s, struct http_ctx *x,
                                  const char *version)
{
    if (*x->con_cls == &bad_line)
        return refuse_framing(x, "the URI contains a NUL byte or a space");
    const char *why = framing_error(x->conn);
    if (why)
        return refuse_framing(x, why);
    if (strcmp(version, "HTTP/1.0") != 0 &&
        !MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
        return refuse_framing(x, "an HTTP/1.1 request needs a Host header");
    const char *cl = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if ((!cl || strcmp(cl, "0") == 0) && !te) {
        *x->con_cls = &no_state;
        return MHD_YES;
    }
    /* A refused request's body is thrown away unread (and never
     * parsed): the refusal is answered at the final call. A chunked one
     * is still tracked, since it can stall whoever sent it. */
    struct edge_verdict v;
    judge(s, x, &v);
    bool ok = !v.error && !v.preflight;
    if (!ok && !te) {
        *x->con_cls = &no_state;
        return MHD_YES;
    }
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > s->cfg->max_body_bytes) {
            /* Refused before reading it; MHD closes the connection, which
             * is what a client sending 2 GB wants anyway. */
            http_reply_error(x, HTTP_ETOOLARGE, NULL);
            return MHD_YES;
        }
    }
    struct http_req *r = req_new(s, x->conn);
    if (!r)
        return MHD_NO;
    r->keep_body = ok;                  /* unauthorized: discard; 401 at the end */
    if (te)
        chunked_link(s, r);             /* authorized or not: it can stall */
    *x->con_cls = r;
    return MHD_YES;
}

static void take_upload(struct http_server *s, struct http_req *r,
                        const char *data, size_t n)
{
    if (!r || !r->keep_body || r->too_large)
        return;
    if (r->body.len + n > s->cfg->max_body_bytes) {
        r->too_large = true;            /* count the rest, keep none of it */
        aw_buf_close(&r->body);
        return;
    }
    aw_buf_add(&r->body, data, n);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_ctx x = {
        .srv = s, .conn = conn, .path = url, .con_cls = con_cls,
        .method = strcmp(method, "HEAD") == 0 ? "GET" : method,
        .t0_us = now_us(), .head = strcmp(method, "HEAD") == 0,
    };
    if (!*con_cls || *con_cls == &bad_line)
        return first_call(s, &x, version);
    struct http_req *r = *con_cls == &no_state ? NULL : *con_cls;
    if (r && r->chunked) {
        if (*upload_size)
            r->upload_us = x.t0_us;
        else
            chunked_unlink(r);          /* the whole body is in */
    }
    if (*upload_size) {
        take_upload(s, r, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (r && r->ready) {
        r->ready = false;
        x.route = r->route;
        x.t0_us = r->t0_us;
        if (r->resp_error)
            http_reply_error_task(&x, r->resp_error, NULL, r->resp_task);
        else
            reply(&x, r->resp_status, &r->resp, "application/json", r->location);
        return MHD_YES;
    }
    struct http_conn *k = conn_of(conn);
    if (k && k->deadline)
        evtimer_del(k->deadline);      /* the request is complete */
    struct edge_verdict v;
    judge(s, &x, &v);
    if (v.preflight) {
        x.preflight = true;
        http_reply_empty(&x, 204);
        return MHD_YES;
    }
    if (v.error) {
        x.scope_needed = v.scope_needed;
        http_reply_error(&x, v.error, NULL);
        return MHD_YES;
    }
    x.scopes = v.scopes;
    if (r && r->too_large) {
        http_reply_error(&x, HTTP_ETOOLARGE, NULL);
        return MHD_YES;
    }
    if (r && r->keep_body) {
        /* jansson wants a pointer even for an empty body. */
        x.body = r->body.data ? r->body.data : "";
        x.body_len = r->body.len;
    }
    s->handler(&x);
    if (!x.answered)
        http_reply_error(&x, 0, "request was not answered");
    return MHD_YES;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* A client that went away is the client's business, not an operator's:
     * streams (SSE, follow) end that way all the time. So is a failed TLS
     * handshake (MHD says "handshake message out of context" for every
     * one: plain HTTP on the HTTPS port, a client refusing the certificate,
     * a scanner), which anyone who can connect could otherwise repeat into
     * the log. A connection over max_connections_per_client is the
     * configured policy at work, and a warning per refused connect would
     * let one client flood the log too. */
    if (strstr(msg, "Failed to send") || strstr(msg, "Connection reset") ||
        strstr(msg, "no longer available") || strstr(msg, "handshake message") ||
        strstr(msg, "reached connection limit"))
        log_debug("libmicrohttpd: %s", msg);
    else
        log_warnx("libmicrohttpd: %s", msg);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_server *s = arg;
    if (s->drain_done) {
        void (*done)(void *) = s->drain_done;
        s->drain_done = NULL;
        done(s->drain_arg);
    }
}

struct http_server *http_server_new(struct event_base *base, const struct config *cfg,
                                    aw_engine_t *engine, aw_store_t *store, int listen_fd,
                                    http_handler_fn handler)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        log_warnx("out of memory");
        return NULL;
    }
    s->base = base;
    s->cfg = cfg;
    s->engine = engine;
    s->store = store;
    s->durable = store ? aw_store_durable(store) : UINT64_MAX;
    s->handler = handler;
    s->listen_fd = listen_fd;
    /* HTTPS: MHD_USE_TLS and the certificate callback of tls.c, which
     * serves the pair main() loaded and a SIGHUP may replace. Without
     * TLS the array holds only its end marker. */
    bool tls = cfg->tls_cert[0] != '\0';
    struct MHD_OptionItem tls_opts[] = {
        { MHD_OPTION_HTTPS_CERT_CALLBACK, 0, tls_cert_callback() },
        { MHD_OPTION_END, 0, NULL },
    };
    /* accept_cb drains the backlog until EAGAIN: a socket passed by systemd
     * may still be blocking (MHD used to set this itself). */
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl >= 0)
        fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK);
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
        MHD_USE_NO_LISTEN_SOCKET |      /* we accept: see accept_cb */
        (tls ? MHD_USE_TLS : 0),
        0, NULL, NULL, on_access, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,     /* must come first */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->idle_timeout_seconds,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections_per_client,
        MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_SIZE,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_ARRAY, tls ? tls_opts : tls_opts + 1,
        /* Level 1 in 0.9.75 refuses HTTP/1.1 without Host and spaces
         * inside the URI, and nothing else (level 2 adds nothing; level
         * -1, inverted, refuses whitespace before a colon); but its
         * Host refusal sends the status line and headers twice, with an
         * HTML body. Both checks are first_call's and on_uri's instead,
         * with the contract's error body, so MHD stays lenient here. */
        MHD_OPTION_STRICT_FOR_CLIENT, (int)0,
        MHD_OPTION_END);
    if (!s->mhd) {
        log_warnx("libmicrohttpd failed to start");
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    s->mhd_ev = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST, pump_cb, s);
    s->mhd_timer = evtimer_new(base, pump_cb, s);
    s->pump_ev = event_new(base, -1, 0, pump_cb, s);
    s->drain_ev = evtimer_new(base, drain_cb, s);
    s->listen_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, accept_cb, s);
    s->accept_retry = evtimer_new(base, accept_retry_cb, s);
    if (!s->mhd_ev || !s->mhd_timer || !s->pump_ev || !s->drain_ev || !s->listen_ev ||
        !s->accept_retry || event_add(s->mhd_ev, NULL) < 0 ||
        event_add(s->listen_ev, NULL) < 0) {
        log_warnx("cannot register the HTTP server with the event loop");
        http_server_free(s);
        return NULL;
    }
    if (metrics_start(base) < 0) {
        log_warnx("cannot start the loop-lag probe");
        http_server_free(s);
        return NULL;
    }
    pump(s);
    return s;
}

void http_server_stop_accepting(struct http_server *s)
{
    /* Closing the listen socket makes new connects fail at once instead
     * of queueing in a backlog nobody reads; under socket activation
     * systemd keeps its own copy, so connects queue there for the next
     * start instead. A second call (a later drain) finds it closed. */
    listen_close(s);
}

void http_server_drain(struct http_server *s, void (*done)(void *), void *arg)
{
    s->draining = true;
    s->drain_done = done;
    s->drain_arg = arg;
    /* Stop accepting; close the socket now so that a restarted daemon
     * can bind at once. */
    listen_close(s);
    while (s->suspended) {
        struct http_req *r = s->suspended;
        aw_waiter_t *w = r->waiter;
        r->finish(r);                   /* renders the state now, resumes */
        unlink_suspended(r);
        if (w) {
            r->waiter = NULL;
            aw_wait_abandon(w);
        }
    }
    /* The store was synced before the drain: what is still held waits
     * for a batch that failed, or for a store that cannot write now.
     * Writes are refused; reads are sent as they are. */
    while (s->held) {
        struct http_req *r = s->held;
        http_commit_fn settle = r->on_commit;
        hold_unlink(r);
        if (settle)
            settle(r, false);
        else
            send_prepared(r);
    }
    for (struct http_stream *st = s->streams; st; st = st->next) {
        st->ended = true;               /* the reader ends each stream */
        http_stream_wake(st);
    }
    struct timeval grace = { .tv_sec = DRAIN_GRACE_SEC };
    evtimer_add(s->drain_ev, &grace);
    drain_check(s);
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    /* Stopping MHD with suspended connections is an API violation
     * (microhttpd.h, MHD_suspend_connection): answer them first. Only
     * reached without a drain on start-up failure. */
    if (s->suspended || s->streams || s->held)
        http_server_drain(s, NULL, NULL);
    if (s->mhd) {
        MHD_run(s->mhd);
        MHD_stop_daemon(s->mhd);
    }
    if (s->listen_ev)
        listen_close(s);                /* ours, not MHD's: see accept_cb */
    if (s->mhd_ev) event_free(s->mhd_ev);
    if (s->mhd_timer) event_free(s->mhd_timer);
    if (s->pump_ev) event_free(s->pump_ev);
    if (s->drain_ev) event_free(s->drain_ev);
    if (s->listen_ev) event_free(s->listen_ev);
    if (s->accept_retry) event_free(s->accept_retry);
    metrics_stop();
    free(s);
}

aw_engine_t *http_engine(const struct http_server *s)
{
    return s->engine;
}

const struct config *http_config(const struct http_server *s)
{
    return s->cfg;
}

unsigned http_open_connections(const struct http_server *s)
{
    return s->open_connections;     /* not MHD_get_daemon_info: see conn_notify */
}

const char *http_query(struct http_ctx *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct http_ctx *x, const char *name)
{
    return MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, name);
}
