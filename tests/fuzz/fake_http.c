/*
 * fake_http.c — http.h over in-memory requests, for fuzzing (see
 * fake_http.h). Follows daemon/http.c function by function where the
 * behaviour reaches the handler (suspension, holds, streams, the error
 * body), and replaces MHD with a list of fake connections.
 *
 * To extend: a new function in http.h gets its fake here, in the section
 * "---- http.h: ..." that matches it; state the handler can read goes in
 * struct MHD_Connection (per request) or struct http_server.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edge.h"
#include "fake_http.h"
#include "http_error.h"
#include "metrics.h"
#include "task_json.h"
#include "utf8.h"

/* The fake's connection: one request and its answer. http.h only ever
 * sees a pointer to it (struct MHD_Connection is opaque there). */
struct MHD_Connection {
    struct http_server    *srv;
    struct fake_request    rq;          /* copies, owned */
    char                  *strings;     /* the copies' storage */
    struct http_ctx        x;
    void                  *con_cls;     /* struct http_req, or NULL */
    unsigned               answers;
    unsigned               status;
    bool                   suspended;   /* MHD_suspend_connection */
    bool                   done;        /* answered and sent: complete it */
    struct http_stream    *stream;
    struct MHD_Connection *prev, *next; /* server's open connections */
};

struct http_req {
    struct http_server    *srv;
    struct MHD_Connection *conn;
    aw_waiter_t           *waiter;
    void                 (*finish)(struct http_req *r);
    aw_task_t            **tasks;
    size_t                 ntasks;
    bool                   refs_tasks;
    bool                   suspended;
    bool                   counted;
    bool                   ready;
    unsigned               resp_status;
    int                    resp_error;
    const aw_task_t       *resp_task;
    aw_buf_t               resp;
    char                  *location;
    int                    route;
    bool                   holding;
    uint64_t               hold_seq;
    http_commit_fn         on_commit;
    struct http_req       *prev, *next;     /* suspended list */
    struct http_req       *hprev, *hnext;   /* held list */
};

struct http_stream {
    struct MHD_Connection *conn;
    http_stream_read_fn    read;
    void                 (*free_ctx)(void *);
    void                  *ctx;
    bool                   parked;
    bool                   ended;
    bool                   sse;         /* text/event-stream: check data lines */
    aw_buf_t               line;        /* SSE: the line read so far */
};

struct http_server {
    struct event_base     *base;
    const struct config   *cfg;
    aw_engine_t           *engine;
    struct MHD_Connection *conns;
    unsigned               nconns;
    struct http_req       *suspended;
    struct http_req       *held, *held_tail;
    uint64_t               durable;         /* UINT64_MAX: no store */
    unsigned               waits_open;
    char                   last_id[64];
};

static unsigned long answers_sent;
static int trace = -1;                  /* FUZZ_TRACE set: print answers */

unsigned long fake_answers(void)
{
    return answers_sent;
}

/* ---- the invariants ---- */

static void fail(const struct MHD_Connection *c, const char *what, const char *body,
                 size_t len)
{
    if (c)
        fprintf(stderr, "fake_http: %s: %s %s -> %u\n%.*s\n", what, c->rq.method,
                c->rq.path, c->status, (int)(len > 2000 ? 2000 : len), body ? body : "");
    else
        fprintf(stderr, "fake_http: %s\n", what);
    abort();
}

static void check_created(struct MHD_Connection *c, json_t *answer, const char *body,
                          size_t len);

static void check_answer(struct MHD_Connection *c, unsigned status, const char *body,
                         size_t len, const char *content_type)
{
    c->status = status;
    if (++c->answers > 1)
        fail(c, "answered twice", body, len);
    if (c->suspended)
        fail(c, "answered while suspended", body, len);
    if (status < 100 || status > 599)
        fail(c, "status out of range", body, len);
    answers_sent++;
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") != NULL;
    if (trace)
        fprintf(stderr, "%s %s -> %u %.*s\n", c->rq.method, c->rq.path, status,
                (int)(len > 200 ? 200 : len), body ? body : "");
    bool json = content_type && strcmp(content_type, "application/json") == 0;
    if (!json && status < 400)
        return;
    if (!json && status >= 400)
        fail(c, "error answer is not application/json", body, len);
    if (len == 0 && (status == 204 || status == 304))
        return;
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &jerr);
    if (!root)
        fail(c, jerr.text, body, len);
    if (status >= 400) {
        json_t *e = json_object_get(root, "error");
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "code")) ||
            !json_is_string(json_object_get(e, "message")))
            fail(c, "error answer without {\"error\":{\"code\",\"message\"}}", body, len);
    }
    if (status == 201 && strcmp(c->rq.path, "/v1/tasks") == 0)
        check_created(c, root, body, len);
    json_decref(root);
}

/* JSON values equal as the contract means it: numbers by value (1 and
 * 1.0 are the same number; the writer may print either), the rest as
 * jansson's json_equal. */
static bool same_json(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_json(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach(a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !same_json(v, w))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

/* A 201 create shows the task as it was asked for: its kind, and its
 * args exactly (a number that loses digits on the way is a changed
 * request, and a task that ran with other arguments). */
static void check_created(struct MHD_Connection *c, json_t *answer, const char *body,
                          size_t len)
{
    json_t *rq = json_loadb(c->rq.body ? c->rq.body : "", c->rq.body_len,
                            JSON_DECODE_ANY, NULL);
    json_t *want = json_object_get(rq, "args"), *empty = json_object();
    if (!rq || !empty)
        fail(c, "a 201 for a body that is not JSON", body, len);
    if (!same_json(json_object_get(rq, "kind"), json_object_get(answer, "kind")))
        fail(c, "the created task's kind is not the one asked for", body, len);
    if (!same_json(want ? want : empty, json_object_get(answer, "args")))
        fail(c, "the created task's args are not the ones sent", body, len);
    /* A zero-second sleep has finished already: its result is args.result. */
    json_t *res = json_object_get(want, "result");
    const char *state = json_string_value(json_object_get(answer, "state"));
    if (res && !json_is_null(res) && state && strcmp(state, "succeeded") == 0 &&
        !same_json(res, json_object_get(answer, "result")))
        fail(c, "the sleep's result is not its args.result", body, len);
    json_decref(empty);
    json_decref(rq);
}

/* ---- connections ---- */

static void conn_unlink(struct MHD_Connection *c)
{
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
}

static void unlink_suspended(struct http_req *r);
static void hold_unlink(struct http_req *r);

/* http.c's on_completed, plus the stream's free (MHD destroys the
 * response, which calls stream_free). */
static void conn_complete(struct MHD_Connection *c)
{
    struct http_server *s = c->srv;
    struct http_req *r = c->con_cls;
    if (c->stream) {
        c->stream->free_ctx(c->stream->ctx);
        aw_buf_close(&c->stream->line);
        free(c->stream);
        c->stream = NULL;
        s->waits_open--;
    }
    if (r) {
        if (r->waiter)
            aw_wait_abandon(r->waiter);
        unlink_suspended(r);
        hold_unlink(r);
        if (r->counted)
            s->waits_open--;
        aw_buf_close(&r->resp);
        if (r->refs_tasks)
            for (size_t i = 0; i < r->ntasks; i++)
                aw_task_unref(r->tasks[i]);
        free(r->tasks);
        free(r->location);
        free(r);
    }
    conn_unlink(c);
    free(c->strings);
    free(c);
}

/* ---- http.h: the server ---- */

struct http_server *fake_server_new(struct event_base *base, const struct config *cfg,
                                    aw_engine_t *engine)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->base = base;
    s->cfg = cfg;
    s->engine = engine;
    s->durable = UINT64_MAX;
    return s;
}

struct http_server *http_server_new(struct event_base *base, const struct config *cfg,
                                    aw_engine_t *engine, aw_store_t *store, int listen_fd,
                                    http_handler_fn handler)
{
    (void)store;
    (void)listen_fd;
    (void)handler;
    return fake_server_new(base, cfg, engine);
}

void http_server_stop_accepting(struct http_server *s)
{
    (void)s;
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
    return s->nconns;
}

const char *fake_last_id(const struct http_server *s)
{
    return s->last_id;
}

/* ---- libmicrohttpd calls made outside http.c ----
 *
 * events.c asks MHD for a dropped client's socket; the fake connection has
 * none (and is not MHD's), so this definition replaces the library's. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *connection,
                                                        enum MHD_ConnectionInfoType info_type,
                                                        ...)
{
    (void)connection;
    (void)info_type;
    return NULL;
}

/* ---- http.h: query and headers ---- */

const char *http_query(struct http_ctx *x, const char *name)
{
    const struct fake_request *rq = &x->conn->rq;
    for (size_t i = 0; i < rq->nquery; i++)
        if (strcmp(rq->query[i].name, name) == 0)
            return rq->query[i].value;
    return NULL;
}

/* Header names are case-insensitive, as in MHD. */
const char *http_header(struct http_ctx *x, const char *name)
{
    const struct fake_request *rq = &x->conn->rq;
    for (size_t i = 0; i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0)
            return rq->headers[i].value;
    return NULL;
}

/* ---- http.h: replies ---- */

static void send_answer(struct http_ctx *x, unsigned status, const char *body, size_t len,
                        const char *content_type)
{
    struct MHD_Connection *c = x->conn;
    check_answer(c, status, body, len, content_type);
    metrics_observe((enum metrics_route)x->route, status, 1);
    x->answered = true;
    c->done = true;
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
    if (location && status == 201 && strncmp(location, "/v1/tasks/", 10) == 0)
        snprintf(x->srv->last_id, sizeof x->srv->last_id, "%s", location + 10);
    send_answer(x, status, p, len, content_type);
    free(p);
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
    (void)headers;
    send_answer(x, status, data, len, content_type);
}

void http_reply_empty(struct http_ctx *x, unsigned status)
{
    send_answer(x, status, "", 0, NULL);
}

/* The body http.c's reply_error writes, byte for byte (it is static
 * there; keep the two in step). */
static void reply_error(struct http_ctx *x, int value, const char *message,
                        const aw_task_t *task)
{
    const struct http_error *e = http_error_lookup(value);
    aw_buf_t b;
    aw_buf_init(&b);
    http_error_body(&b, e, message, task);
    size_t len;
    char *p = aw_buf_steal(&b, &len);
    send_answer(x, e->status, p, len, "application/json");
    free(p);
}

void http_reply_error(struct http_ctx *x, int value, const char *message)
{
    reply_error(x, value, message, NULL);
}

void http_reply_error_task(struct http_ctx *x, int value, const char *message,
                           const aw_task_t *task)
{
    reply_error(x, value, message, task);
}

void http_reply_405(struct http_ctx *x, const char *allow)
{
    (void)allow;
    reply_error(x, HTTP_EMETHOD, NULL, NULL);
}

/* ---- http.h: streams ---- */

struct http_stream *http_reply_stream(struct http_ctx *x, const char *content_type,
                                      http_stream_read_fn read,
                                      void (*free_ctx)(void *), void *ctx)
{
    struct MHD_Connection *c = x->conn;
    struct http_stream *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    *st = (struct http_stream){ .conn = c, .read = read, .free_ctx = free_ctx, .ctx = ctx,
                                .sse = strcmp(content_type, "text/event-stream") == 0 };
    c->stream = st;
    x->srv->waits_open++;
    check_answer(c, 200, NULL, 0, content_type);
    metrics_observe((enum metrics_route)x->route, 200, 1);
    x->answered = true;
    return st;
}

void http_stream_wake(struct http_stream *st)
{
    st->parked = false;
}

/* Server-Sent Events: every "data:" line is one JSON object (a task). */
static void check_sse(struct MHD_Connection *c, const char *p, size_t n)
{
    aw_buf_t *l = &c->stream->line;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            aw_buf_addc(l, p[i]);
            continue;
        }
        if (trace > 0)
            fprintf(stderr, "  sse: %.*s\n", (int)(l->len > 120 ? 120 : l->len), l->data);
        if (l->len >= 6 && memcmp(l->data, "data: ", 6) == 0) {
            json_error_t jerr;
            json_t *o = json_loadb(l->data + 6, l->len - 6, 0, &jerr);
            if (!json_is_object(o))
                fail(c, "SSE data line is not a JSON object", l->data, l->len);
            json_decref(o);
        }
        aw_buf_reset(l);
    }
}

/* Reads a little of each stream that is not parked, as MHD would while
 * the client reads. -1 (or the drain's end) ends the stream. */
static void pump_stream(struct MHD_Connection *c, int rounds)
{
    struct http_stream *st = c->stream;
    char buf[4096];
    for (int i = 0; i < rounds && !st->parked && !c->done; i++) {
        long n = st->ended ? -1 : st->read(st->ctx, buf, sizeof buf);
        if (n < 0 || (size_t)n > sizeof buf) {
            if (n > (long)sizeof buf)
                fail(c, "stream read returned more than asked", NULL, 0);
            c->done = true;
        } else if (n == 0) {
            st->parked = true;
        } else if (st->sse) {
            check_sse(c, buf, (size_t)n);
        }
    }
}

/* ---- http.h: request state and suspension ---- */

static void count_open(struct http_req *r)
{
    if (!r->counted) {
        r->counted = true;
        r->srv->waits_open++;
    }
}

struct http_req *http_req_get(struct http_ctx *x)
{
    if (*x->con_cls)
        return *x->con_cls;
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->srv = x->srv;
    r->conn = x->conn;
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
    if (r->conn != x->conn)
        fail(x->conn, "http_suspend with another request's state", NULL, 0);
    r->waiter = w;
    r->finish = finish;
    r->route = x->route;
    r->suspended = true;
    r->prev = NULL;
    r->next = s->suspended;
    if (s->suspended)
        s->suspended->prev = r;
    s->suspended = r;
    count_open(r);
    x->conn->suspended = true;
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

static void send_prepared(struct http_req *r)
{
    r->ready = true;
    r->conn->suspended = false;
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
    if (r->ready)
        fail(r->conn, "resumed twice", NULL, 0);
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

/* ---- http.h: holding answers until their commit ---- */

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
    (void)s;
    return NULL;                        /* memory only */
}

struct http_server *http_req_server(const struct http_req *r)
{
    return r->srv;
}

void http_hold(struct http_ctx *x, struct http_req *r, uint64_t seq, http_commit_fn done)
{
    r->route = x->route;
    count_open(r);
    hold_link(r, seq, done);
    x->conn->suspended = true;
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
        abort();
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

/* ---- the harness's side: requests in, answers out ---- */

static char *copy(char **p, const char *s, size_t n)
{
    char *d = *p;
    memcpy(d, s, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

void fake_request(struct http_server *s, const struct fake_request *rq,
                  http_handler_fn handler)
{
    size_t need = strlen(rq->method) + strlen(rq->path) + rq->body_len + 3;
    for (size_t i = 0; i < rq->nquery; i++)
        need += strlen(rq->query[i].name) + strlen(rq->query[i].value) + 2;
    for (size_t i = 0; i < rq->nheaders; i++)
        need += strlen(rq->headers[i].name) + strlen(rq->headers[i].value) + 2;
    struct MHD_Connection *c = calloc(1, sizeof *c);
    char *p = c ? malloc(need) : NULL;
    if (!p)
        abort();
    c->srv = s;
    c->strings = p;
    c->rq = *rq;
    c->rq.method = copy(&p, rq->method, strlen(rq->method));
    c->rq.path = copy(&p, rq->path, strlen(rq->path));
    for (size_t i = 0; i < rq->nquery; i++) {
        c->rq.query[i].name = copy(&p, rq->query[i].name, strlen(rq->query[i].name));
        c->rq.query[i].value = copy(&p, rq->query[i].value, strlen(rq->query[i].value));
    }
    for (size_t i = 0; i < rq->nheaders; i++) {
        c->rq.headers[i].name = copy(&p, rq->headers[i].name, strlen(rq->headers[i].name));
        c->rq.headers[i].value = copy(&p, rq->headers[i].value,
                                      strlen(rq->headers[i].value));
    }
    c->rq.body = rq->body ? copy(&p, rq->body, rq->body_len) : NULL;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;

    /* New fields of struct http_ctx (scopes, the client's address...) get
     * here what a fully authorized local client has: left zero, a scope
     * check would refuse everything and the fuzzer would test only 403s. */
    c->x = (struct http_ctx){
        .srv = s, .conn = c, .path = c->rq.path, .con_cls = &c->con_cls,
        .method = strcmp(c->rq.method, "HEAD") == 0 ? "GET" : c->rq.method,
        .head = strcmp(c->rq.method, "HEAD") == 0,
        .body = c->rq.body, .body_len = c->rq.body_len,
        .scopes = CONFIG_SCOPE_ALL,
    };
    /* The edge's verdict, from the headers, as http.c's judge() asks it
     * (Host, Origin, token, scope; SET auth_token, cors_origins and
     * allowed_hosts make the fuzzer's configuration ask for them). */
    struct edge_request erq = {
        .method = c->x.method, .path = c->x.path,
        .host = http_header(&c->x, MHD_HTTP_HEADER_HOST),
        .origin = http_header(&c->x, "Origin"),
        .authorization = http_header(&c->x, MHD_HTTP_HEADER_AUTHORIZATION),
        .access_token = http_query(&c->x, "access_token"),
        .preflight_method = http_header(&c->x, "Access-Control-Request-Method"),
    };
    struct edge_verdict v;
    edge_check(s->cfg, &erq, &v);
    if (v.preflight) {
        http_reply_empty(&c->x, 204);
        return;
    }
    if (v.error) {
        c->x.scope_needed = v.scope_needed;
        http_reply_error(&c->x, v.error, NULL);
        return;
    }
    c->x.scopes = v.scopes;
    /* http.c refuses an oversized body before the handler sees it. */
    if (c->rq.body && c->rq.body_len > s->cfg->max_body_bytes) {
        http_reply_error(&c->x, HTTP_ETOOLARGE, NULL);
        return;
    }
    handler(&c->x);
    if (!c->x.answered)
        fail(c, "the handler returned without answering", NULL, 0);
}

/* The second access-handler call of a resumed request (http.c on_access). */
static void send_resumed(struct MHD_Connection *c)
{
    struct http_req *r = c->con_cls;
    struct http_ctx x = { .srv = c->srv, .conn = c, .method = c->x.method,
                          .path = c->rq.path, .con_cls = &c->con_cls, .route = r->route };
    r->ready = false;
    if (r->resp_error)
        reply_error(&x, r->resp_error, NULL, r->resp_task);
    else
        reply(&x, r->resp_status, &r->resp, "application/json", r->location);
}

void fake_pump(struct http_server *s)
{
    struct MHD_Connection *c, *next;
    for (c = s->conns; c; c = c->next) {
        struct http_req *r = c->con_cls;
        if (r && r->ready && !c->suspended)
            send_resumed(c);
        if (c->stream && !c->done)
            pump_stream(c, 4);
    }
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->done)
            conn_complete(c);
    }
}

void fake_close(struct http_server *s, size_t i)
{
    if (!s->nconns)
        return;
    struct MHD_Connection *c = s->conns;
    for (i %= s->nconns; i; i--)
        c = c->next;
    conn_complete(c);
}

static void drain(struct http_server *s)
{
    while (s->suspended) {
        struct http_req *r = s->suspended;
        aw_waiter_t *w = r->waiter;
        r->finish(r);
        unlink_suspended(r);
        if (w) {
            r->waiter = NULL;
            aw_wait_abandon(w);
        }
    }
    while (s->held) {
        struct http_req *r = s->held;
        http_commit_fn settle = r->on_commit;
        hold_unlink(r);
        if (settle)
            settle(r, false);
        else
            send_prepared(r);
    }
    for (struct MHD_Connection *c = s->conns; c; c = c->next)
        if (c->stream) {
            c->stream->ended = true;
            c->stream->parked = false;
        }
    fake_pump(s);
}

void http_server_drain(struct http_server *s, void (*done)(void *), void *arg)
{
    drain(s);
    if (done)
        done(arg);
}

void http_server_free(struct http_server *s)
{
    fake_server_free(s);
}

/* http_server_drain, then every connection completed. */
void fake_server_free(struct http_server *s)
{
    drain(s);
    while (s->conns) {
        struct MHD_Connection *c = s->conns;
        if (!c->done)
            fail(c, "still open after the drain", NULL, 0);
        conn_complete(c);
    }
    if (s->waits_open)
        fail(NULL, "waits_open is not 0 after the drain", NULL, 0);
    free(s);
}
