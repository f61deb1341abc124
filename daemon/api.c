/*
 * api.c — routing and the handlers of the v1 API (docs/api.md; see api.h).
 *
 * Handlers validate everything before they change anything, so a refused
 * request leaves no trace. Errors go through http_reply_error with an error
 * value; the status and code come from the table in http_error.c.
 * GET /v1/tasks/{id} is the hot path: no JSON tree, one buffer.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "edge.h"
#include "errors.h"
#include "events.h"
#include "http_error.h"
#include "metrics.h"
#include "notify.h"
#include "queue.h"
#include "rfc3339.h"
#include "task_json.h"
#include "task_links.h"
#include "task_spec.h"
#include "ui.h"
#include "task_list.h"
#include "task_fields.h"
#include "utf8.h"

#define DEFAULT_WAIT_SECONDS 30.0
#define DEFAULT_LIST_LIMIT   100
#define MAX_LIST_LIMIT       1000
#define ERR_SIZE             256

static int64_t started_mono;
static const aw_notify_t *notifier;

void api_init(const aw_notify_t *notify)
{
    started_mono = aw_clock_mono_ms();
    notifier = notify;
}

/* ---- small helpers ---- */

static void reply_task(struct http_ctx *x, unsigned status, const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    aw_buf_addc(&b, '\n');
    http_reply(x, status, &b, "application/json");
}

/* Parses a wait timeout from a query string or JSON number: default 30,
 * lowered to max_wait_seconds. Returns ms, or -1 when malformed. */
static int64_t wait_timeout_ms(struct http_ctx *x, double s)
{
    if (!isfinite(s) || s < 0)
        return -1;
    double max = http_config(x->srv)->max_wait_seconds;
    return aw_seconds_to_ms(s > max ? max : s);
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return (end == s || *end || errno == ERANGE) ? -1 : 0;
}

/* "true"/"1" -> 1, "false"/"0" -> 0, else -1. */
static int parse_bool(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        return 0;
    return -1;
}

/* The shape limits of a request body ([server] max_json_depth and
 * max_json_elements). jansson has no option for either (it stops only at
 * its own depth of 2048), so the parsed tree is walked once: linear in
 * its size, stopping at the first value over a limit, and never deeper
 * than max_json_depth + 1 frames. The parse itself is bounded by
 * max_body_bytes; these bound what the rest of the daemon stores, copies
 * and writes back for one request. */
struct json_shape {
    uint32_t max_depth;
    uint32_t elements_left;
    bool     too_deep;
};

static bool json_shape_ok(json_t *v, uint32_t depth, struct json_shape *sh)
{
    if (sh->elements_left == 0)
        return false;
    sh->elements_left--;
    if (!json_is_object(v) && !json_is_array(v))
        return true;
    if (depth > sh->max_depth) {
        sh->too_deep = true;
        return false;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (!json_shape_ok(e, depth + 1, sh))
                return false;
    } else {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
            if (!json_shape_ok(e, depth + 1, sh))
                return false;
    }
    return true;
}

/* Parses the body as a JSON object; answers 400 itself when it is not. */
static json_t *parse_object(struct http_ctx *x)
{
    char msg_shape[ERR_SIZE];
    json_error_t jerr;
    json_t *root = json_loadb(x->body ? x->body : "", x->body_len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        /* 1e400 is JSON by the grammar; only its value is out of range. */
        bool range = json_error_code(&jerr) == json_error_numeric_overflow;
        char msg[ERR_SIZE];
        snprintf(msg, sizeof msg, "%s at line %d column %d: %s",
                 range ? "number out of range" : "invalid JSON",
                 jerr.line, jerr.column, jerr.text);
        http_reply_error(x, range ? AW_EINVAL : AW_EJSON, msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        http_reply_error(x, AW_EINVAL, "the body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    const struct config *c = http_config(x->srv);
    struct json_shape shape = { .max_depth = c->max_json_depth,
                                .elements_left = c->max_json_elements };
    if (!json_shape_ok(root, 1, &shape)) {
        snprintf(msg_shape, sizeof msg_shape, shape.too_deep
                 ? "the body nests deeper than max_json_depth (%u)"
                 : "the body has more values than max_json_elements (%u)",
                 shape.too_deep ? c->max_json_depth : c->max_json_elements);
        http_reply_error(x, AW_EINVAL, msg_shape);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- durability: answers that wait for their commit ---- */

/* The batch that holds every change made so far; 0 without a store. An
 * answer that shows those changes goes out once it is committed. */
static uint64_t barrier(struct http_server *srv)
{
    aw_store_t *st = http_store(srv);
    return st ? aw_store_barrier(st) : 0;
}

/* A write while the store cannot write: refused before anything changes. */
static bool refuse_if_failing(struct http_ctx *x)
{
    aw_store_t *st = http_store(x->srv);
    if (st && aw_store_failing(st)) {
        http_reply_error(x, AW_ESTORAGE, NULL);
        return true;
    }
    return false;
}

/* Holds the request until the batch with its change is committed; done
 * then answers. Answers 503 itself when out of memory. */
static void hold_for_commit(struct http_ctx *x, aw_task_t *t, http_commit_fn done)
{
    struct http_req *r = http_req_get(x);
    if (!r) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    http_req_hold_task(r, t);
    http_hold(x, r, barrier(x->srv), done);
}

static aw_task_t *held_task(struct http_req *r)
{
    size_t n;
    aw_task_t **t = http_req_tasks(r, &n);
    return n ? t[0] : NULL;
}

static void resume_task(struct http_req *r, unsigned status, const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    aw_buf_addc(&b, '\n');
    http_resume(r, status, &b);
}

/* A create's answer shows the task as it is at its commit, and it may
 * have changed since its record was taken: an exec job started at the
 * release, a short sleep finished. That state goes out only once it is
 * committed too, or a crash could take it back (a 201 that said
 * "succeeded" would come back "interrupted"; one that said "running"
 * would come back pending, and its program would run a second time). */
static void resume_created(struct http_req *r, unsigned status, const aw_task_t *t,
                           const char *location, bool exact)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    aw_buf_addc(&b, '\n');
    /* exact: t was held until now, so no record of it was taken since the
     * one just committed; unless it changed since (dirty), what the answer
     * shows is on disk already and it goes out at once. Waiting for the
     * barrier instead would make every 201 under load wait for one more
     * commit, for the other creates of the turn. */
    uint64_t seq = exact && !t->dirty ? 0 : barrier(http_req_server(r));
    http_resume_located_after(r, seq, status, &b, location);
}

static void create_committed(struct http_req *r, bool ok)
{
    aw_task_t *t = held_task(r);
    if (!ok || !t || !t->listed || t->held) {
        http_resume_error(r, AW_ESTORAGE);
        return;
    }
    char location[64];
    snprintf(location, sizeof location, "/v1/tasks/%s", t->id);
    resume_created(r, 201, t, location, true);
}

static void repeat_committed(struct http_req *r, bool ok)
{
    aw_task_t *t = held_task(r);
    if (!ok || !t || !t->listed || t->held)
        http_resume_error(r, AW_ESTORAGE);
    else
        resume_created(r, 200, t, NULL, false);
}

static void cancel_committed(struct http_req *r, bool ok)
{
    aw_task_t *t = held_task(r);
    if (!ok || !t) {
        http_resume_error(r, AW_ESTORAGE);
    } else if (t->state == AW_CANCELLED || t->state == AW_RUNNING) {
        resume_task(r, t->state == AW_RUNNING ? 202 : 200, t);
    } else {
        /* It finished otherwise before the cancel could take effect. */
        http_resume_error_task(r, AW_EDONE, t);
    }
}

static void delete_committed(struct http_req *r, bool ok)
{
    aw_buf_t empty;
    aw_buf_init(&empty);
    if (ok)
        http_resume(r, 204, &empty);
    else
        http_resume_error(r, AW_ESTORAGE);
}

static aw_task_t *find_or_404(struct http_ctx *x, const char *id)
{
    aw_task_t *t = aw_task_find(http_engine(x->srv), id);
    if (!t) {
        char msg[ERR_SIZE];
        snprintf(msg, sizeof msg, "no task with id '%.64s'", id);
        http_reply_error(x, AW_ENOTFOUND, msg);
    }
    return t;
}

/* ---- operations ---- */

static void get_healthz(struct http_ctx *x)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "{\"status\":\"ok\"}\n");
    http_reply(x, 200, &b, "application/json");
}

static void get_metrics(struct http_ctx *x)
{
    struct metrics_http h = { .open_connections = http_open_connections(x->srv),
                              .sse_clients = events_clients(),
                              .store = http_store(x->srv), .notify = notifier };
    aw_buf_t b;
    aw_buf_init(&b);
    metrics_write(&b, http_engine(x->srv), &h);
    http_reply(x, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
}

/* /v1/info's "storage": commit_ms_p99 is read off the latency buckets
 * (the upper bound of the bucket that holds the 99th percentile), so it
 * is an upper bound too, never an understatement. */
static void write_storage(aw_buf_t *b, const aw_store_t *st)
{
    if (!st) {
        aw_buf_adds(b, "{\"path\":null,\"sync\":null,\"bytes\":0,\"commits\":0,"
                    "\"commit_ms_p99\":null}");
        return;
    }
    aw_store_info_t in;
    aw_store_info(st, &in);
    aw_buf_adds(b, "{\"path\":");
    aw_utf8_add_json_str(b, in.path);
    aw_buf_printf(b, ",\"sync\":\"%s\",\"bytes\":%llu,\"commits\":%llu,\"commit_ms_p99\":",
                  in.sync == AW_SYNC_FULL ? "full" : "normal", (unsigned long long)in.bytes,
                  (unsigned long long)in.commits);
    if (!in.commits) {
        aw_buf_adds(b, "null");
    } else {
        uint64_t need = in.commits - in.commits / 100, seen = 0;
        size_t i = 0;
        while (i < AW_STORE_LATENCY_BUCKETS && (seen += in.latency[i]) < need)
            i++;
        if (i < AW_STORE_LATENCY_BUCKETS)
            aw_buf_printf(b, "%g", aw_store_latency_bounds[i]);
        else
            aw_buf_printf(b, "%g", in.commit_ms_sum / (double)in.commits * 4);
    }
    aw_buf_printf(b, ",\"failing\":%s}", in.failing ? "true" : "false");
}

/* A configured allow-list as a JSON array. */
static void write_words(aw_buf_t *b, const char *list)
{
    bool first = true;
    aw_buf_addc(b, '[');
    for (const char *s = list + strspn(list, " \t"); *s; s += strspn(s, " \t")) {
        size_t n = strcspn(s, " \t");
        aw_buf_adds(b, first ? "" : ",");
        aw_utf8_add_json(b, s, n);
        first = false;
        s += n;
    }
    aw_buf_addc(b, ']');
}

/* /v1/info's limits.http and limits.notify: where outgoing requests may
 * go and their limits (never the secret). */
static void write_outgoing(aw_buf_t *b, const struct config *c)
{
    aw_buf_adds(b, ",\"http\":{\"allow\":");
    write_words(b, c->http_allow);
    aw_buf_printf(b, ",\"max_transfers\":%u,\"max_response_bytes\":%zu,"
                  "\"max_redirects\":%u,\"max_request_body_bytes\":%zu,"
                  "\"max_request_headers\":%u,\"connect_timeout_seconds\":%g,"
                  "\"insecure\":%s}",
                  c->http_max_transfers, c->http_max_response_bytes, c->http_max_redirects,
                  c->http_max_request_body_bytes, c->http_max_request_headers,
                  c->http_connect_timeout_seconds, c->http_insecure ? "true" : "false");
    aw_buf_printf(b, ",\"notify\":{\"enabled\":%s,\"allow\":",
                  c->notify_allow[strspn(c->notify_allow, " \t")] ? "true" : "false");
    write_words(b, c->notify_allow);
    aw_buf_printf(b, ",\"signed\":%s,\"max_attempts\":%u,\"min_backoff_seconds\":%g,"
                  "\"max_backoff_seconds\":%g,\"max_transfers\":%u,\"timeout_seconds\":%g,"
                  "\"connect_timeout_seconds\":%g,\"insecure\":%s}",
                  c->notify_secret[0] ? "true" : "false", c->notify_max_attempts,
                  c->notify_min_backoff_seconds, c->notify_max_backoff_seconds,
                  c->notify_max_transfers, c->notify_timeout_seconds,
                  c->notify_connect_timeout_seconds, c->notify_insecure ? "true" : "false");
}

static void get_info(struct http_ctx *x)
{
    const struct config *c = http_config(x->srv);
    aw_engine_stats_t st;
    aw_engine_stats(http_engine(x->srv), &st);
    uint64_t held = 0;
    for (int i = 0; i < AW_NSTATES; i++)
        held += st.held[i];
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_printf(&b, "{\"version\":\"%s\",\"uptime_seconds\":%lld,\"kinds\":{",
                  AWAITD_VERSION, (long long)((aw_clock_mono_ms() - started_mono) / 1000));
    for (size_t k = 0; k < st.nkinds; k++)
        aw_buf_printf(&b, "%s\"%s\":%s", k ? "," : "", st.kinds[k].kind->name,
                      st.kinds[k].enabled ? "true" : "false");
    aw_buf_printf(&b, "},\"limits\":{\"max_tasks\":%llu,\"max_body_bytes\":%zu,"
                  "\"max_wait_seconds\":%g,\"max_wait_ids\":%u,"
                  "\"retention_seconds\":%g,\"max_connections\":%u,"
                  "\"shutdown_grace_seconds\":%g,\"exec_kill_grace_seconds\":%g,"
                  "\"exec_max_output_bytes\":%zu,\"max_task_bytes\":%llu,"
                  "\"max_result_bytes\":%llu,\"max_list_bytes\":%zu,"
                  "\"max_connections_per_client\":%u,\"idle_timeout_seconds\":%u,"
                  "\"request_timeout_seconds\":%g,\"max_group_tasks\":%llu",
                  (unsigned long long)c->max_tasks, c->max_body_bytes, c->max_wait_seconds,
                  c->max_wait_ids, c->retention_seconds, c->max_connections,
                  c->shutdown_grace_seconds, c->exec_kill_grace_seconds, c->exec_max_output,
                  (unsigned long long)c->max_task_bytes, (unsigned long long)c->max_result_bytes,
                  c->max_list_bytes, c->max_connections_per_client, c->idle_timeout_seconds,
                  c->request_timeout_seconds, (unsigned long long)c->max_group_tasks);
    write_outgoing(&b, c);
    aw_buf_printf(&b, "},\"tasks\":{\"unfinished\":%llu,\"held\":%llu,\"bytes\":%llu},"
                  "\"waiters\":%llu,\"connections\":%u,\"sse_clients\":%u,\"queues\":{",
                  (unsigned long long)(st.held[AW_PENDING] + st.held[AW_RUNNING]),
                  (unsigned long long)held, (unsigned long long)st.held_bytes,
                  (unsigned long long)st.waiters,
                  http_open_connections(x->srv), events_clients());
    for (const aw_queue_t *q = aw_engine_queues(http_engine(x->srv)); q; q = q->next) {
        aw_utf8_add_json_str(&b, q->name);
        aw_buf_printf(&b, ":{\"concurrency\":%u,\"running\":%u,\"pending\":%llu,"
                      "\"paused\":%s}%s",
                      q->concurrency, q->running,
                      (unsigned long long)(q->npending + q->ndelayed),
                      q->paused ? "true" : "false", q->next ? "," : "");
    }
    aw_buf_adds(&b, "},\"storage\":");
    write_storage(&b, http_store(x->srv));
    aw_buf_adds(&b, "}\n");
    http_reply(x, 200, &b, "application/json");
}

/* ---- tasks ---- */

/* Reads an optional string field; answers 400 when it has another type. */
static int optional_string(struct http_ctx *x, json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        char msg[ERR_SIZE];
        snprintf(msg, sizeof msg, "%s must be a string", key);
        http_reply_error(x, AW_EINVAL, msg);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The scheduling fields of a create (contract "Scheduling"), read by
 * lib's task_spec.c, as a group's children are. Answers 400 itself. */
static int parse_schedule(struct http_ctx *x, json_t *root, aw_task_spec_t *spec)
{
    char msg[ERR_SIZE];
    if (aw_task_spec_schedule(root, spec, msg, sizeof msg) < 0) {
        http_reply_error(x, AW_EINVAL, msg);
        return -1;
    }
    return 0;
}

/* A group's children need the scopes their kinds need, as if each were
 * created alone (a token without exec may not run a program through a
 * group). Answers 403 itself when one is missing. */
static bool group_scopes_ok(struct http_ctx *x, const char *kind, json_t *args)
{
    json_t *tasks = strcmp(kind, "group") == 0 ? json_object_get(args, "tasks") : NULL;
    size_t i;
    json_t *child;
    json_array_foreach(tasks, i, child) {
        json_t *k = json_object_get(child, "kind");
        if (!json_is_string(k))
            continue;                   /* the engine refuses it with a 400 */
        const char *scope;
        unsigned need = edge_kind_scope(json_string_value(k), &scope);
        if (need && !(x->scopes & need)) {
            char err[ERR_SIZE];
            x->scope_needed = scope;
            snprintf(err, sizeof err, "creating a task of kind '%s' needs the '%s' scope",
                     json_string_value(k), scope);
            http_reply_error(x, HTTP_ESCOPE, err);
            return false;
        }
        if (!group_scopes_ok(x, json_string_value(k), json_object_get(child, "args")))
            return false;
    }
    return true;
}

static void post_tasks(struct http_ctx *x)
{
    aw_engine_t *e = http_engine(x->srv);
    const char *key = http_header(x, "Idempotency-Key");
    aw_task_t *t = key ? aw_task_find_idempotent(e, key) : NULL;
    if (t && t->held) {
        hold_for_commit(x, t, repeat_committed);  /* the first create's commit */
        return;
    }
    if (t) {
        /* As resume_created: what the answer shows must be committed. */
        aw_buf_t b;
        aw_buf_init(&b);
        aw_task_write_json(&b, t);
        aw_buf_addc(&b, '\n');
        http_reply_after(x, barrier(x->srv), 200, &b);
        return;
    }
    json_t *root = parse_object(x);
    if (!root)
        return;
    aw_task_spec_t spec = { .timeout_ms = -1, .idempotency_key = key };
    json_t *kind = json_object_get(root, "kind");
    json_t *args = json_object_get(root, "args");
    json_t *timeout = json_object_get(root, "timeout");
    char err[ERR_SIZE];
    if (!json_is_string(kind)) {
        http_reply_error(x, AW_EINVAL, "kind is required and must be a string");
        goto out;
    }
    spec.kind = json_string_value(kind);
    const char *scope;
    unsigned need = edge_kind_scope(spec.kind, &scope);
    if (need && !(x->scopes & need)) {
        /* Besides write (checked by edge.c on the method): a token may
         * create sleeps and still not be able to run programs. */
        x->scope_needed = scope;
        snprintf(err, sizeof err, "creating a task of kind '%s' needs the '%s' scope",
                 spec.kind, scope);
        http_reply_error(x, HTTP_ESCOPE, err);
        goto out;
    }
    if (args && !json_is_null(args) && !json_is_object(args)) {
        http_reply_error(x, AW_EINVAL, "args must be an object");
        goto out;
    }
    spec.args = json_is_object(args) ? args : NULL;
    spec.notify = json_object_get(root, "notify");
    spec.retry = json_object_get(root, "retry");
    spec.after = json_object_get(root, "after");
    if (!group_scopes_ok(x, spec.kind, spec.args))
        goto out;
    if (optional_string(x, root, "name", &spec.name) < 0 ||
        optional_string(x, root, "queue", &spec.queue) < 0)
        goto out;
    if (timeout && !json_is_null(timeout)) {
        double s = json_number_value(timeout);
        /* 1e-300 is positive but would be 0 ms: a task that times out
         * at once. */
        if (!json_is_number(timeout) || !isfinite(s) || s <= 0 || aw_seconds_to_ms(s) == 0) {
            http_reply_error(x, AW_EINVAL,
                             "timeout must be a positive number of seconds (at least 1 ms)");
            goto out;
        }
        spec.timeout_ms = aw_seconds_to_ms(s);
    }
    if (parse_schedule(x, root, &spec) < 0)
        goto out;
    if (refuse_if_failing(x))
        goto out;
    spec.hold = http_store(x->srv) != NULL;
    int rc = aw_task_create(e, &spec, &t, err, sizeof err);
    if (rc < 0) {
        http_reply_error(x, rc, rc == -ENOMEM ? NULL : err);
        goto out;
    }
    if (spec.hold) {
        /* Answered once the task is committed (store.h: group commit). */
        hold_for_commit(x, t, create_committed);
        goto out;
    }
    char location[64];
    snprintf(location, sizeof location, "/v1/tasks/%s", t->id);
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    aw_buf_addc(&b, '\n');
    http_reply_located(x, 201, &b, location);
out:
    json_decref(root);
}

/* A list answer is built in memory before it is sent: its bytes are
 * bounded by max_list_bytes (and a page always holds its first task,
 * whatever its size), so a page of big tasks ends early, with `next`. */
struct page {
    aw_buf_t *b;
    size_t    max;
    aw_task_fields_t fields;            /* ?fields=; 0: whole objects */
};

static bool page_add(void *arg, const aw_task_t *t, size_t n)
{
    struct page *p = arg;
    size_t mark = p->b->len;
    if (n)
        aw_buf_addc(p->b, ',');
    aw_task_write_json_fields(p->b, t, p->fields);
    if (n && p->b->len > p->max) {
        p->b->len = mark;               /* not on this page: the next one's first */
        return false;
    }
    return true;
}

static void get_tasks(struct http_ctx *x)
{
    const char *state_s = http_query(x, "state"), *limit_s = http_query(x, "limit");
    const char *kind = http_query(x, "kind"), *queue = http_query(x, "queue");
    const char *after = http_query(x, "after");
    const char *order = http_query(x, "order"), *fields_s = http_query(x, "fields");
    aw_task_filter_t f = { .kind = kind, .queue = queue, .name = http_query(x, "name"),
                           .parent = http_query(x, "parent") };
    aw_task_fields_t fields = 0;
    if (order && strcmp(order, "asc") != 0) {
        if (strcmp(order, "desc") != 0) {
            http_reply_error(x, AW_EINVAL, "order must be asc or desc");
            return;
        }
        f.desc = true;
    }
    if (fields_s) {
        char err[160];
        int rc = aw_task_fields_parse(fields_s, &fields, err, sizeof err);
        if (rc < 0) {
            http_reply_error(x, rc, err);
            return;
        }
    }
    if (state_s) {
        int state = aw_task_state_parse(state_s);
        f.states = strcmp(state_s, "active") == 0 ? AW_STATES_ACTIVE
                 : strcmp(state_s, "done") == 0 ? AW_STATES_DONE
                 : state >= 0 ? 1u << state : 0;
        if (!f.states) {
            http_reply_error(x, AW_EINVAL,
                "state must be pending, running, succeeded, failed, cancelled, "
                "timed_out, active or done");
            return;
        }
    }
    long limit = DEFAULT_LIST_LIMIT;
    if (limit_s) {
        char *end;
        errno = 0;
        limit = strtol(limit_s, &end, 10);
        if (end == limit_s || *end || limit_s[0] == '-' || limit_s[0] == '+' || limit < 1) {
            http_reply_error(x, AW_EINVAL, "limit must be a positive integer");
            return;
        }
        if (errno == ERANGE || limit > MAX_LIST_LIMIT)
            limit = MAX_LIST_LIMIT;
    }
    const struct config *c = http_config(x->srv);
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "{\"tasks\":[");
    struct page p = { &b, c->max_list_bytes, fields };
    char next[AW_TASK_ID_SIZE];
    aw_task_list(http_engine(x->srv), &f, after, (size_t)limit, c->max_list_scan,
                 page_add, &p, next);
    aw_buf_adds(&b, "],\"next\":");
    if (next[0])
        aw_utf8_add_json_str(&b, next);
    else
        aw_buf_adds(&b, "null");
    aw_buf_adds(&b, "}\n");
    http_reply(x, 200, &b, "application/json");
}

static void get_task(struct http_ctx *x, const char *id)
{
    aw_task_t *t = find_or_404(x, id);
    if (t)
        reply_task(x, 200, t);
}

static void delete_task(struct http_ctx *x, const char *id)
{
    aw_task_t *t = find_or_404(x, id);
    if (!t)
        return;
    aw_engine_t *e = http_engine(x->srv);
    if (!aw_task_done(t)) {
        http_reply_error(x, AW_EACTIVE, "the task is still active; cancel it first");
    } else if (aw_task_in_active_group(t)) {
        http_reply_error(x, AW_EACTIVE, "the task's group is still active: delete the group "
                         "once it has finished (its children go with it)");
    } else if (http_store(x->srv)) {
        if (refuse_if_failing(x))
            return;
        aw_task_ask(e, t, AW_ASK_FORGET, true);
        hold_for_commit(x, t, delete_committed);
    } else {
        aw_task_forget(e, t);
        http_reply_empty(x, 204);
    }
}

static void cancel_task(struct http_ctx *x, const char *id)
{
    aw_task_t *t = find_or_404(x, id);
    if (!t)
        return;
    aw_engine_t *e = http_engine(x->srv);
    if (aw_task_done(t)) {
        http_reply_error_task(x, AW_EDONE, NULL, t);
    } else if (http_store(x->srv)) {
        if (refuse_if_failing(x))
            return;
        aw_task_ask(e, t, AW_ASK_CANCEL, true);
        hold_for_commit(x, t, cancel_committed);
    } else {
        int rc = aw_task_cancel(e, t);
        reply_task(x, rc == 0 ? 200 : 202, t);
    }
}

/* output?follow=true: a chunked stream fed by the job's output events. */
struct follow {
    aw_task_t          *task;           /* kept alive by the watch */
    aw_output_watch_t  *watch;
    struct http_stream *stream;
    int                 which;
    size_t              sent;
    uint32_t            attempt;        /* whose output `sent` counts */
};

/* Whose output a task keeps now: a retry's next attempt starts over at
 * its start, so while the task waits for it (pending again) the output is
 * still the attempt before's. */
static uint32_t output_attempt(const aw_task_t *t)
{
    uint32_t a = aw_task_attempt(t);
    return t->state == AW_PENDING && a > 1 ? a - 1 : a;
}

static long follow_read(void *ctx, char *buf, size_t max)
{
    struct follow *f = ctx;
    const char *data;
    size_t len;
    if (aw_task_output(f->task, f->which, &data, &len) < 0)
        return -1;
    if (f->attempt != output_attempt(f->task)) {
        f->attempt = output_attempt(f->task);   /* a retry: its output starts over */
        f->sent = 0;
    }
    if (f->sent < len) {
        size_t n = len - f->sent < max ? len - f->sent : max;
        memcpy(buf, data + f->sent, n);
        f->sent += n;
        return (long)n;
    }
    return aw_task_done(f->task) ? -1 : 0;
}

static void follow_woken(void *arg)
{
    struct follow *f = arg;
    if (f->stream)
        http_stream_wake(f->stream);
}

static void follow_free(void *ctx)
{
    struct follow *f = ctx;
    aw_task_unwatch_output(f->task, f->watch);
    free(f);
}

static void get_output(struct http_ctx *x, const char *id)
{
    aw_task_t *t = find_or_404(x, id);
    if (!t)
        return;
    const char *stream = http_query(x, "stream"), *follow_s = http_query(x, "follow");
    if (stream && strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0) {
        http_reply_error(x, AW_EINVAL, "stream must be stdout or stderr");
        return;
    }
    int follow = follow_s ? parse_bool(follow_s) : 0;
    if (follow < 0) {
        http_reply_error(x, AW_EINVAL, "follow must be true, false, 1 or 0");
        return;
    }
    if (!t->kind->output) {
        char msg[ERR_SIZE];
        snprintf(msg, sizeof msg, "tasks of kind '%s' have no output", t->kind->name);
        http_reply_error(x, AW_ENOOUTPUT, msg);
        return;
    }
    int which = stream && strcmp(stream, "stderr") == 0 ? AW_STDERR : AW_STDOUT;
    /* A finished task's output is final: the plain answer is the whole
     * stream. */
    if (follow && !aw_task_done(t)) {
        struct follow *f = calloc(1, sizeof *f);
        if (!f || !(f->watch = aw_task_watch_output(t, follow_woken, f))) {
            free(f);
            http_reply_error(x, -ENOMEM, NULL);
            return;
        }
        f->task = t;
        f->which = which;
        f->attempt = output_attempt(t);
        /* NULL (HEAD, or no memory): f is freed already. */
        struct http_stream *st = http_reply_stream(x, "text/plain", follow_read,
                                                   follow_free, f);
        if (st)
            f->stream = st;
        return;
    }
    const char *data;
    size_t len;
    int rc = aw_task_output(t, which, &data, &len);
    if (rc < 0) {
        http_reply_error(x, rc, NULL);
        return;
    }
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_add(&b, data, len);
    http_reply(x, 200, &b, "text/plain");
}

/* ---- waits ---- */

static void write_task_list(aw_buf_t *b, aw_task_t **tasks, size_t n, bool done)
{
    aw_buf_addc(b, '[');
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (aw_task_done(tasks[i]) != done)
            continue;
        if (!first)
            aw_buf_addc(b, ',');
        first = false;
        aw_task_write_json(b, tasks[i]);
    }
    aw_buf_addc(b, ']');
}

static void render_one(aw_buf_t *b, aw_task_t **tasks, size_t n)
{
    (void)n;
    aw_task_write_json(b, tasks[0]);
    aw_buf_addc(b, '\n');
}

static void render_many(aw_buf_t *b, aw_task_t **tasks, size_t n)
{
    aw_buf_adds(b, "{\"done\":");
    write_task_list(b, tasks, n, true);
    aw_buf_adds(b, ",\"pending\":");
    write_task_list(b, tasks, n, false);
    aw_buf_adds(b, "}\n");
}

/* A wait answer shows the tasks as they are now; one that shows a
 * terminal state goes out once that state is committed (barrier). */
static void finish_one(struct http_req *r)
{
    size_t n;
    aw_task_t **tasks = http_req_tasks(r, &n);
    aw_buf_t b;
    aw_buf_init(&b);
    render_one(&b, tasks, n);
    http_resume_after(r, barrier(http_req_server(r)), 200, &b);
}

static void finish_many(struct http_req *r)
{
    size_t n;
    aw_task_t **tasks = http_req_tasks(r, &n);
    aw_buf_t b;
    aw_buf_init(&b);
    render_many(&b, tasks, n);
    http_resume_after(r, barrier(http_req_server(r)), 200, &b);
}

static void waiter_fired(aw_waiter_t *w, void *arg)
{
    (void)w;
    http_req_waiter_fired(arg);
}

/* Starts the wait; answers now when there is nothing to wait for. Takes
 * ownership of tasks (malloc'd). */
static void start_wait(struct http_ctx *x, aw_task_t **tasks, size_t n, bool many,
                       aw_return_when_t rw, int64_t timeout_ms, bool cancel)
{
    struct http_req *r = http_req_get(x);
    if (!r) {
        free(tasks);
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    http_req_set_tasks(r, tasks, n);
    aw_waiter_t *w = NULL;
    int rc = aw_wait(http_engine(x->srv), tasks, n, rw, timeout_ms, cancel,
                     waiter_fired, r, &w);
    if (rc < 0) {
        http_reply_error(x, rc, NULL);
    } else if (rc == 1) {
        aw_buf_t b;
        aw_buf_init(&b);
        (many ? render_many : render_one)(&b, tasks, n);
        http_reply_after(x, barrier(x->srv), 200, &b);
    } else {
        http_suspend(x, r, w, many ? finish_many : finish_one);
    }
}

static void get_wait(struct http_ctx *x, const char *id)
{
    aw_task_t *t = find_or_404(x, id);
    if (!t)
        return;
    const char *timeout_s = http_query(x, "timeout"), *cancel_s = http_query(x, "cancel");
    double secs = DEFAULT_WAIT_SECONDS;
    int64_t timeout_ms;
    if ((timeout_s && parse_seconds(timeout_s, &secs) < 0) ||
        (timeout_ms = wait_timeout_ms(x, secs)) < 0) {
        http_reply_error(x, AW_EINVAL, "timeout must be a finite number of seconds >= 0");
        return;
    }
    int cancel = cancel_s ? parse_bool(cancel_s) : 0;
    if (cancel < 0) {
        http_reply_error(x, AW_EINVAL, "cancel must be true, false, 1 or 0");
        return;
    }
    if (cancel == 1 && !(x->scopes & CONFIG_SCOPE_WRITE)) {
        /* A wait is a read, but one that cancels at its timeout changes
         * the task: a read token must not be able to stop jobs. */
        x->scope_needed = "write";
        http_reply_error(x, HTTP_ESCOPE, "wait with cancel=true needs the 'write' scope");
        return;
    }
    aw_task_t **tasks = malloc(sizeof *tasks);
    if (!tasks) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    tasks[0] = t;
    start_wait(x, tasks, 1, false, AW_RETURN_ALL, timeout_ms, cancel == 1);
}

static void post_wait(struct http_ctx *x)
{
    json_t *root = parse_object(x);
    if (!root)
        return;
    uint32_t max_ids = http_config(x->srv)->max_wait_ids;
    json_t *ids = json_object_get(root, "ids");
    json_t *rw_j = json_object_get(root, "return_when");
    json_t *timeout = json_object_get(root, "timeout");
    aw_task_t **tasks = NULL;
    char msg[ERR_SIZE];
    int rw = AW_RETURN_ALL;
    int64_t timeout_ms = wait_timeout_ms(x, DEFAULT_WAIT_SECONDS);
    if (!json_is_array(ids) || json_array_size(ids) == 0) {
        http_reply_error(x, AW_EINVAL, "ids must be a non-empty array of task ids");
        goto out;
    }
    if (json_array_size(ids) > max_ids) {
        snprintf(msg, sizeof msg, "at most %u ids per wait", max_ids);
        http_reply_error(x, AW_EINVAL, msg);
        goto out;
    }
    if (rw_j && !json_is_null(rw_j) &&
        (!json_is_string(rw_j) || (rw = aw_return_when_parse(json_string_value(rw_j))) < 0)) {
        http_reply_error(x, AW_EINVAL,
            "return_when must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION");
        goto out;
    }
    if (timeout && !json_is_null(timeout) &&
        (!json_is_number(timeout) ||
         (timeout_ms = wait_timeout_ms(x, json_number_value(timeout))) < 0)) {
        http_reply_error(x, AW_EINVAL, "timeout must be a finite number of seconds >= 0");
        goto out;
    }
    size_t n = json_array_size(ids), m = 0;
    if (!(tasks = malloc(n * sizeof *tasks))) {
        http_reply_error(x, -ENOMEM, NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_string(v)) {
            snprintf(msg, sizeof msg, "ids[%zu] must be a string", i);
            http_reply_error(x, AW_EINVAL, msg);
            goto out;
        }
        aw_task_t *t = find_or_404(x, json_string_value(v));
        if (!t)
            goto out;
        /* A repeated id counts once: keep its first place. */
        size_t j = 0;
        while (j < m && tasks[j] != t)
            j++;
        if (j == m)
            tasks[m++] = t;
    }
    start_wait(x, tasks, m, true, (aw_return_when_t)rw, timeout_ms, false);
    tasks = NULL;
out:
    free(tasks);
    json_decref(root);
}

/* ---- routing ---- */

static void get_events(struct http_ctx *x)
{
    events_handle(x);
}

static bool is(const struct http_ctx *x, const char *method)
{
    return strcmp(x->method, method) == 0;
}

/* Splits "{name}[/action]" after a collection's path: the name into
 * name[size], *action after the slash (NULL: none). An empty name is no
 * route; one too long for name is answered with too_long (no such task
 * or queue). Returns false when it has answered. */
static bool split_item(struct http_ctx *x, const char *rest, char *name, size_t size,
                       int too_long, const char **action)
{
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (len == 0 || len >= size) {
        http_reply_error(x, len ? too_long : HTTP_ENOROUTE, NULL);
        return false;
    }
    memcpy(name, rest, len);
    name[len] = '\0';
    *action = slash ? slash + 1 : NULL;
    return true;
}

/* Routes /v1/tasks/{id}[/action]. */
static void route_task(struct http_ctx *x, const char *rest)
{
    char id[AW_TASK_ID_SIZE + 32];
    const char *action;
    if (!split_item(x, rest, id, sizeof id, AW_ENOTFOUND, &action))
        return;
    if (!action) {
        x->route = is(x, "DELETE") ? ROUTE_TASK_DELETE : ROUTE_TASK_GET;
        if (is(x, "GET"))
            get_task(x, id);
        else if (is(x, "DELETE"))
            delete_task(x, id);
        else
            http_reply_405(x, "GET, HEAD, DELETE");
    } else if (strcmp(action, "cancel") == 0) {
        x->route = ROUTE_TASK_CANCEL;
        if (is(x, "POST"))
            cancel_task(x, id);
        else
            http_reply_405(x, "POST");
    } else if (strcmp(action, "wait") == 0) {
        x->route = ROUTE_TASK_WAIT;
        if (is(x, "GET"))
            get_wait(x, id);
        else
            http_reply_405(x, "GET, HEAD");
    } else if (strcmp(action, "output") == 0) {
        x->route = ROUTE_TASK_OUTPUT;
        if (is(x, "GET"))
            get_output(x, id);
        else
            http_reply_405(x, "GET, HEAD");
    } else {
        http_reply_error(x, HTTP_ENOROUTE, NULL);
    }
}

/* ---- queues ---- */

static void write_queue(aw_buf_t *b, const aw_queue_t *q)
{
    aw_buf_adds(b, "{\"name\":");
    aw_utf8_add_json_str(b, q->name);
    aw_buf_printf(b, ",\"concurrency\":%u,\"running\":%u,\"pending\":%llu,\"paused\":%s}",
                  q->concurrency, q->running, (unsigned long long)(q->npending + q->ndelayed),
                  q->paused ? "true" : "false");
}

static void get_queues(struct http_ctx *x)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_adds(&b, "{\"queues\":[");
    for (const aw_queue_t *q = aw_engine_queues(http_engine(x->srv)); q; q = q->next) {
        write_queue(&b, q);
        if (q->next)
            aw_buf_addc(&b, ',');
    }
    aw_buf_adds(&b, "]}\n");
    http_reply(x, 200, &b, "application/json");
}

static const aw_queue_t *queue_or_404(struct http_ctx *x, const char *name)
{
    const aw_queue_t *q = aw_engine_queue(http_engine(x->srv), name);
    if (!q) {
        char msg[ERR_SIZE];
        snprintf(msg, sizeof msg, "no queue named '%.64s'", name);
        http_reply_error(x, AW_ENOQUEUE, msg);
    }
    return q;
}

/* Pause and resume take effect at once (nothing new starts from now on);
 * the answer waits until the switch is committed, so that a paused queue
 * the client was told about stays paused across a crash. */
static void pause_queue(struct http_ctx *x, const char *name, bool paused)
{
    const aw_queue_t *q = queue_or_404(x, name);
    if (!q || refuse_if_failing(x))
        return;
    aw_store_t *st = http_store(x->srv);
    if (st && aw_store_queue_set(st, name, paused) < 0) {
        http_reply_error(x, -ENOMEM, NULL);
        return;
    }
    aw_engine_pause_queue(http_engine(x->srv), name, paused);
    aw_buf_t b;
    aw_buf_init(&b);
    write_queue(&b, q);
    aw_buf_addc(&b, '\n');
    http_reply_after(x, barrier(x->srv), 200, &b);
}

/* Routes /v1/queues/{name}[/pause|/resume]. */
static void route_queue(struct http_ctx *x, const char *rest)
{
    char name[256];
    const char *action;
    if (!split_item(x, rest, name, sizeof name, AW_ENOQUEUE, &action))
        return;
    if (!action) {
        if (!is(x, "GET")) {
            http_reply_405(x, "GET, HEAD");
            return;
        }
        const aw_queue_t *q = queue_or_404(x, name);
        if (q) {
            aw_buf_t b;
            aw_buf_init(&b);
            write_queue(&b, q);
            aw_buf_addc(&b, '\n');
            http_reply(x, 200, &b, "application/json");
        }
    } else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0) {
        if (is(x, "POST"))
            pause_queue(x, name, action[0] == 'p');
        else
            http_reply_405(x, "POST");
    } else {
        http_reply_error(x, HTTP_ENOROUTE, NULL);
    }
}

struct route {
    const char *path;
    const char *allow;
    void (*get)(struct http_ctx *);
    void (*post)(struct http_ctx *);
    enum metrics_route get_label, post_label;
};

static const struct route routes[] = {
    { "/healthz",   "GET, HEAD",       get_healthz, NULL,       ROUTE_HEALTHZ, 0 },
    { "/metrics",   "GET, HEAD",       get_metrics, NULL,       ROUTE_METRICS, 0 },
    { "/v1/info",   "GET, HEAD",       get_info,    NULL,       ROUTE_INFO, 0 },
    { "/v1/tasks",  "GET, HEAD, POST", get_tasks,   post_tasks, ROUTE_TASK_LIST, ROUTE_TASK_CREATE },
    { "/v1/wait",   "POST",            NULL,        post_wait,  0, ROUTE_WAIT_MANY },
    { "/v1/events", "GET, HEAD",       get_events,  NULL,       ROUTE_EVENTS, 0 },
    { "/v1/queues", "GET, HEAD",       get_queues,  NULL,       ROUTE_OTHER, 0 },
    { "/ui",        "GET, HEAD",       ui_handle,   NULL,       ROUTE_OTHER, 0 },
};

void api_handle(struct http_ctx *x)
{
    if (strncmp(x->path, "/v1/tasks/", 10) == 0) {
        route_task(x, x->path + 10);
        return;
    }
    if (strncmp(x->path, "/v1/queues/", 11) == 0) {
        route_queue(x, x->path + 11);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        if (strcmp(x->path, r->path) != 0)
            continue;
        x->route = is(x, "POST") ? r->post_label : r->get_label;
        if (is(x, "GET") && r->get)
            r->get(x);
        else if (is(x, "POST") && r->post)
            r->post(x);
        else
            http_reply_405(x, r->allow);
        return;
    }
    http_reply_error(x, HTTP_ENOROUTE, NULL);
}
