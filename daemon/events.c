/*
 * events.c — GET /v1/events, Server-Sent Events of every task state change
 * (see events.h).
 *
 * Why a ring with a cursor per client, and not a copy of each event into
 * every client's buffer: the ring is needed anyway for Last-Event-ID, and
 * with cursors a hundred clients cost one rendering and one copy of each
 * event, not a hundred. The ring is bounded in events and in bytes, and
 * that bound is also every client's buffer: a client whose cursor falls
 * off the ring's tail has fallen too far behind, and is dropped. Dropping
 * closes the socket (shutdown(2) on libmicrohttpd's descriptor): a client
 * that never reads would otherwise hold its connection until the server's
 * idle timeout, because the stream's reader is only called when the
 * socket can take more bytes.
 *
 * The stream of one client is, in order: a `note` (an opening comment,
 * and with ?id= the task's current state), then heartbeat comments when it
 * is idle, then ring events from its cursor on. An event is never cut by
 * anything else: notes and pings go out only between events.
 *
 * This file is not the HTTP server: streams are http_reply_stream answers
 * and http.c ends them all when the daemon drains.
 */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "errors.h"
#include "events.h"
#include "log.h"
#include "task_json.h"

/* The ring keeps at most this many events, and at most this many bytes of
 * them (but always the newest event, however large). A client is dropped
 * when it is this far behind. */
#define RING_EVENTS 4096
#define RING_BYTES  ((size_t)4 << 20)

/* Heartbeat period. AWAITD_SSE_HEARTBEAT_MS in the environment overrides
 * it, read once by events_init; it exists so that tests need not wait
 * 15 s, and is not a configuration key on purpose. */
#define HEARTBEAT_MS 15000

/* A scratch buffer that grew beyond this for one large task is released
 * after use rather than kept for the next event. */
#define SCRATCH_KEEP (64 * 1024)

static const char ping[] = ": ping\n\n";

/* One rendered event. Its id is its place in the ring. */
struct event_rec {
    size_t  len;
    uint64_t seq;                       /* the store batch it waits for; 0: none */
    bool    voided;                     /* its task's create was refused */
    uint8_t state;                      /* the task's state in this event */
    char    task_id[AW_TASK_ID_SIZE];
    char    text[];                     /* id:, event:, data: lines, blank line */
};

struct client {
    struct client         *prev, *next;
    struct http_stream    *stream;      /* NULL until http_reply_stream returns */
    struct MHD_Connection *conn;
    uint64_t               cursor;      /* id of the next ring event to look at */
    size_t                 off;         /* bytes of that event already sent */
    aw_buf_t               note;        /* sent before any ring event */
    size_t                 note_off;
    uint64_t               note_seq;    /* the batch the note waits for */
    uint8_t                ping_left;   /* bytes of `ping` still to send */
    bool                   active;      /* sent something since the last tick */
    bool                   finished;    /* ?id=: the final state is sent or queued */
    bool                   dropped;
    char                   task_id[AW_TASK_ID_SIZE];   /* ?id=, "" for every task */
};

static struct {
    aw_engine_t       *engine;          /* NULL until events_init */
    aw_store_t        *store;           /* NULL: memory only */
    uint64_t           durable;         /* the store's durable batch */
    uint64_t           reserved;        /* ids below this may be used */
    struct event      *heartbeat;       /* armed while there are clients */
    struct timeval     period;
    struct event_rec  *ring[RING_EVENTS];
    uint64_t           newest;          /* id of the newest event; 0: none yet */
    size_t             count, bytes;
    aw_buf_t           scratch;
    struct client     *clients;
    unsigned           nclients;        /* linked, dropped ones included */
    unsigned           live;            /* not dropped */
} ev;

/* ---- the ring ---- */

static uint64_t ring_oldest(void)
{
    return ev.newest - ev.count + 1;
}

static const struct event_rec *ring_get(uint64_t id)
{
    if (id < ring_oldest() || id > ev.newest)
        return NULL;
    return ev.ring[id % RING_EVENTS];
}

static void ring_drop_oldest(void)
{
    struct event_rec **slot = &ev.ring[ring_oldest() % RING_EVENTS];
    ev.bytes -= (*slot)->len;
    free(*slot);
    *slot = NULL;
    ev.count--;
}

static void ring_push(struct event_rec *r)
{
    while (ev.count && (ev.count == RING_EVENTS || ev.bytes + r->len > RING_BYTES))
        ring_drop_oldest();
    ev.newest++;
    ev.ring[ev.newest % RING_EVENTS] = r;
    ev.count++;
    ev.bytes += r->len;
}

/* Whether the ring holds, from id `from` on, the final state of task_id. */
static bool ring_has_final(const char *task_id, uint64_t from)
{
    for (uint64_t id = from; id <= ev.newest; id++) {
        const struct event_rec *r = ring_get(id);
        if (r && aw_state_done(r->state) && strcmp(r->task_id, task_id) == 0)
            return true;
    }
    return false;
}

/* ---- clients ---- */

static bool wants(const struct client *c, const struct event_rec *r)
{
    return !c->task_id[0] || strcmp(c->task_id, r->task_id) == 0;
}

static void wake(struct client *c)
{
    if (c->stream)
        http_stream_wake(c->stream);
}

/* Ends c's stream and closes its socket. c stays linked until
 * libmicrohttpd frees the stream (client_free). */
static void drop(struct client *c, const char *why)
{
    if (c->dropped)
        return;
    c->dropped = true;
    ev.live--;
    log_info("GET /v1/events: dropping a client: %s", why);
    /* shutdown, not close: the descriptor stays libmicrohttpd's, which now
     * sees the connection fail and closes it as if the peer had gone. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        shutdown(ci->connect_fd, SHUT_RDWR);
    wake(c);
}

static size_t copy_out(char *dst, size_t room, const char *src, size_t len)
{
    size_t n = len < room ? len : room;
    memcpy(dst, src, n);
    return n;
}

/* The stream's http_stream_read_fn. */
static long client_read(void *ctx, char *buf, size_t max)
{
    struct client *c = ctx;
    size_t n = 0;
    while (n < max && !c->dropped) {
        if (c->off == 0 && c->note_off < c->note.len) {
            if (c->note_seq > ev.durable)
                break;                  /* its state is not committed yet */
            size_t k = copy_out(buf + n, max - n, c->note.data + c->note_off,
                                c->note.len - c->note_off);
            n += k;
            c->active = true;
            if ((c->note_off += k) == c->note.len) {
                aw_buf_close(&c->note);
                c->note_off = 0;
            }
        } else if (c->off == 0 && c->ping_left) {
            size_t k = copy_out(buf + n, max - n, ping + sizeof ping - 1 - c->ping_left,
                                c->ping_left);
            n += k;
            c->ping_left = (uint8_t)(c->ping_left - k);
        } else if (c->finished) {
            break;
        } else {
            const struct event_rec *r = ring_get(c->cursor);
            if (!r) {
                if (c->cursor < ring_oldest())
                    drop(c, "it fell behind the kept events");
                break;
            }
            if (r->seq > ev.durable && c->off == 0)
                break;                  /* sent once its change is committed */
            if (!wants(c, r) || r->voided) {
                c->cursor++;
                continue;
            }
            size_t k = copy_out(buf + n, max - n, r->text + c->off, r->len - c->off);
            n += k;
            c->active = true;
            if ((c->off += k) == r->len) {
                c->off = 0;
                c->cursor++;
                c->finished = c->task_id[0] && aw_state_done(r->state);
            }
        }
    }
    if (n)
        return (long)n;
    return c->dropped || c->finished ? -1 : 0;
}

/* The stream's free_ctx: libmicrohttpd is done with the response. */
static void client_free(void *ctx)
{
    struct client *c = ctx;
    if (c->prev)
        c->prev->next = c->next;
    else
        ev.clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!c->dropped)
        ev.live--;
    if (--ev.nclients == 0 && ev.heartbeat)
        evtimer_del(ev.heartbeat);
    aw_buf_close(&c->note);
    free(c);
}

static void client_link(struct client *c)
{
    c->next = ev.clients;
    if (ev.clients)
        ev.clients->prev = c;
    ev.clients = c;
    ev.live++;
    if (ev.nclients++ == 0)
        evtimer_add(ev.heartbeat, &ev.period);
}

/* ---- producing events ---- */

/* Out of memory for an event: it cannot be sent, so no stream may go on as
 * if it had been. Every client is dropped, and the ring is emptied so that
 * a reconnecting client's Last-Event-ID is reported as too old. */
static void lose_event(void)
{
    log_warnx("GET /v1/events: out of memory; an event is lost, dropping every stream");
    while (ev.count)
        ring_drop_oldest();
    ev.newest++;
    for (struct client *c = ev.clients; c; c = c->next)
        drop(c, "an event was lost (out of memory)");
}

/* The engine's listener: renders the change once, keeps it in the ring,
 * and wakes the clients that want it. Forgetting a task is no state
 * change and makes no event. */
/* A held create that the store refused: its events must never be sent.
 * They can only be among those not yet committed, at the ring's end. */
static void void_events_of(const aw_task_t *t)
{
    for (uint64_t id = ev.newest; id >= ring_oldest() && id > 0; id--) {
        struct event_rec *r = ev.ring[id % RING_EVENTS];
        if (r->seq <= ev.durable)
            break;
        if (strcmp(r->task_id, t->id) == 0)
            r->voided = true;
    }
}

/* Event ids never repeat across restarts: the store keeps events_next,
 * the first id a later run may use, and each run takes ids in blocks
 * written ahead of their use. An event is sent only after its batch is
 * committed, so no id reaches a client before its block is on disk. */
#define ID_BLOCK ((uint64_t)1 << 20)

static void reserve_ids(void)
{
    if (!ev.store || ev.newest + 1 < ev.reserved)
        return;
    ev.reserved = ev.newest + 1 + ID_BLOCK;
    aw_store_meta_set(ev.store, "events_next", (int64_t)ev.reserved);
}

static void on_change(void *arg, aw_task_event_t what, aw_task_t *t)
{
    (void)arg;
    if (what == AW_TASK_FORGOTTEN) {
        if (t->held)
            void_events_of(t);
        return;
    }
    if (what == AW_TASK_MARKED)
        return;
    reserve_ids();
    aw_buf_t *b = &ev.scratch;
    aw_buf_reset(b);
    aw_buf_printf(b, "id: %" PRIu64 "\nevent: task\ndata: ", ev.newest + 1);
    aw_task_write_json(b, t);
    aw_buf_adds(b, "\n\n");
    struct event_rec *r = aw_buf_failed(b) ? NULL : malloc(sizeof *r + b->len);
    if (!r) {
        aw_buf_close(b);
        lose_event();
        return;
    }
    r->len = b->len;
    r->seq = ev.store ? aw_store_barrier(ev.store) : 0;
    r->voided = false;
    r->state = t->state;
    memcpy(r->task_id, t->id, sizeof r->task_id);
    memcpy(r->text, b->data, b->len);
    if (b->cap > SCRATCH_KEEP)
        aw_buf_close(b);
    ring_push(r);

    uint64_t id = ev.newest, oldest = ring_oldest();
    for (struct client *c = ev.clients; c; c = c->next) {
        if (c->dropped || c->finished)
            continue;
        if (c->cursor < oldest)
            drop(c, "it fell behind the kept events");
        else if (!wants(c, r) && c->cursor == id && c->off == 0)
            c->cursor++;                /* caught up: skip it without a wake-up */
        else if (wants(c, r))
            wake(c);
    }
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (struct client *c = ev.clients; c; c = c->next) {
        if (!c->active && !c->dropped && !c->finished && !c->ping_left &&
            c->off == 0 && c->note_off >= c->note.len) {
            c->ping_left = sizeof ping - 1;
            wake(c);
        }
        c->active = false;
    }
}

/* ---- set-up ---- */

static struct timeval heartbeat_period(void)
{
    long ms = HEARTBEAT_MS;
    const char *s = getenv("AWAITD_SSE_HEARTBEAT_MS");
    if (s && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || *end || v < 1 || v > 24L * 3600 * 1000)
            log_warnx("AWAITD_SSE_HEARTBEAT_MS=%s is not a number of milliseconds "
                      "from 1 to 86400000; using %d", s, HEARTBEAT_MS);
        else
            ms = v;
    }
    return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

void events_committed(uint64_t durable)
{
    if (!ev.engine || durable == ev.durable)
        return;
    ev.durable = durable;
    for (struct client *c = ev.clients; c; c = c->next)
        if (!c->dropped)
            wake(c);
}

int events_init(aw_engine_t *e, aw_store_t *store)
{
    if (ev.engine)
        return ev.engine == e ? 0 : -1;
    ev.store = store;
    if (store) {
        ev.durable = aw_store_durable(store);
        int64_t next = aw_store_meta_get(store, "events_next");
        ev.newest = next > 0 ? (uint64_t)next - 1 : 0;
        ev.reserved = ev.newest + 1;    /* the first event reserves a block */
    }
    ev.heartbeat = event_new(aw_engine_base(e), -1, EV_PERSIST, heartbeat_cb, NULL);
    if (!ev.heartbeat)
        return -1;
    ev.period = heartbeat_period();
    aw_buf_init(&ev.scratch);
    if (aw_engine_listen(e, on_change, NULL) < 0) {
        event_free(ev.heartbeat);
        ev.heartbeat = NULL;
        return -1;
    }
    ev.engine = e;
    return 0;
}

void events_free(void)
{
    if (!ev.engine)
        return;
    aw_engine_unlisten(ev.engine, on_change, NULL);
    ev.engine = NULL;
    event_free(ev.heartbeat);
    ev.heartbeat = NULL;
    while (ev.count)
        ring_drop_oldest();
    aw_buf_close(&ev.scratch);
}

unsigned events_clients(void)
{
    return ev.live;
}

/* ---- the request ---- */

/* Last-Event-ID, from the header (what EventSource sends when it
 * reconnects) or else ?last_event_id= (for clients that cannot set
 * headers on the first connect). The header wins: a browser reconnecting
 * keeps the URL it started with, and the header is the newer of the two.
 * Returns 1 with *out set, 0 when absent or empty, -1 when malformed. */
static int last_event_id(struct http_ctx *x, uint64_t *out)
{
    const char *s = http_header(x, "Last-Event-ID");
    if (!s || !*s)
        s = http_query(x, "last_event_id");
    if (!s || !*s)
        return 0;
    if (strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
        return -1;
    *out = strtoull(s, NULL, 10);
    return 1;
}

/* The task's current state as an event: the stream of ?id= starts with
 * it. Its id is the newest event's, so that a client reconnecting with it
 * as Last-Event-ID is replayed exactly what came after. */
static void note_current(struct client *c, const aw_task_t *t)
{
    if (ev.newest)
        aw_buf_printf(&c->note, "id: %" PRIu64 "\n", ev.newest);
    aw_buf_adds(&c->note, "event: task\ndata: ");
    aw_task_write_json(&c->note, t);
    aw_buf_adds(&c->note, "\n\n");
}

/* A comment line saying that the client's Last-Event-ID is not in the
 * ring, and where its stream starts instead: `from` is the first event id
 * it will get, or 0 for the task's current state (?id=). */
static void note_unknown_last(struct client *c, uint64_t last, uint64_t from)
{
    const char *why = last > ev.newest
        ? "is unknown (newer than any event of this daemon)"
        : "is older than the kept events";
    if (!from)
        aw_buf_printf(&c->note, ": last event id %" PRIu64 " %s; starting from the "
                      "task's current state\n\n", last, why);
    else
        aw_buf_printf(&c->note, ": last event id %" PRIu64 " %s; starting from id %"
                      PRIu64 ", the oldest kept\n\n", last, why, from);
}

void events_handle(struct http_ctx *x)
{
    aw_engine_t *e = http_engine(x->srv);
    if (events_init(e, http_store(x->srv)) < 0) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    const char *id = http_query(x, "id");
    aw_task_t *t = NULL;
    if (id && !(t = aw_task_find(e, id))) {
        char msg[128];
        snprintf(msg, sizeof msg, "no task with id '%.64s'", id);
        http_reply_error(x, AW_ENOTFOUND, msg);
        return;
    }
    uint64_t last = 0;
    int has_last = last_event_id(x, &last);
    if (has_last < 0) {
        http_reply_error(x, AW_EINVAL, "Last-Event-ID (or last_event_id) must be an "
                         "event id: a decimal number");
        return;
    }
    /* Replay is exact only when every event after `last` is still kept. */
    bool kept = has_last && last <= ev.newest && last + 1 >= ring_oldest();
    if (t && kept && aw_task_done(t) && !ring_has_final(t->id, last + 1)) {
        /* The client has seen the end already. 204 tells EventSource not
         * to reconnect again. */
        http_reply_empty(x, 204);
        return;
    }

    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    c->conn = x->conn;
    aw_buf_init(&c->note);
    /* Something to send at once: the client (and any proxy) sees the
     * stream open before the first change. */
    aw_buf_adds(&c->note, ": awaitd events\n\n");
    c->cursor = ev.newest + 1;
    if (t) {
        memcpy(c->task_id, t->id, sizeof c->task_id);
        if (kept) {
            c->cursor = last + 1;
        } else {
            if (has_last)
                note_unknown_last(c, last, 0);
            note_current(c, t);
            c->note_seq = ev.store ? aw_store_barrier(ev.store) : 0;
            c->finished = aw_task_done(t);
        }
    } else if (kept) {
        c->cursor = last + 1;
    } else if (has_last) {
        c->cursor = ring_oldest();
        note_unknown_last(c, last, c->cursor);
    }
    if (aw_buf_failed(&c->note)) {
        aw_buf_close(&c->note);
        free(c);
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    client_link(c);
    /* On failure http_reply_stream has answered and called client_free. */
    struct http_stream *st = http_reply_stream(x, "text/event-stream", client_read,
                                               client_free, c);
    if (st)
        c->stream = st;
}
