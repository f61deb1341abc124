/*
 * engine.c — the task state machine, queues dispatch, deadlines and
 * retention (see engine.h).
 *
 * Every deadline lives in one heap and one libevent timer is armed for the
 * earliest. A running task has one entry, at the earlier of its kind's wake
 * time and its own timeout; when it fires, the engine tells the two apart by
 * comparing the clock with timeout_at. A finished task's entry is its
 * retention deadline.
 *
 * Re-entrancy: a kind may finish a task inside start (a zero-second sleep),
 * and finishing frees a queue slot that starts the next task. Queue dispatch
 * is therefore a loop guarded against recursion, so a long queue of instant
 * tasks costs no stack depth.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_impl.h"
#include "errors.h"

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aw_engine_t *e = arg;
    e->timer_at = INT64_MAX;
    aw_engine_run_due(e);
}

void aw__engine_arm(aw_engine_t *e)
{
    const aw_heap_entry_t *top = aw_heap_peek(&e->heap);
    if (!top) {
        if (e->timer_at != INT64_MAX) {
            evtimer_del(e->timer);
            e->timer_at = INT64_MAX;
        }
        return;
    }
    if (top->when == e->timer_at)
        return;
    int64_t delay = top->when - aw_clock_mono_ms();
    if (delay < 0)
        delay = 0;
    struct timeval tv = { .tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000 };
    evtimer_add(e->timer, &tv);
    e->timer_at = top->when;
}

aw_engine_t *aw_engine_new(struct event_base *base, const aw_engine_limits_t *lim)
{
    aw_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->base = base;
    e->limits = *lim;
    e->timer_at = INT64_MAX;
    aw_heap_init(&e->heap);
    if (aw__table_init(&e->table) < 0) {
        free(e);
        return NULL;
    }
    if (!(e->timer = evtimer_new(base, timer_cb, e)) ||
        aw_task_id_gen_init(&e->ids) < 0 ||
        aw_engine_set_queue(e, "default", 0) < 0) {
        aw_engine_free(e);
        return NULL;
    }
    return e;
}

void aw_engine_free(aw_engine_t *e)
{
    if (!e)
        return;
    aw__waiters_abandon_all(e);
    /* Unschedule first so that no node points into a freed task. */
    for (aw_task_t *t = e->table.first; t; t = t->next)
        aw_heap_remove(&e->heap, &t->deadline);
    aw__table_close(&e->table);
    aw_heap_close(&e->heap);
    while (e->queues) {
        aw_queue_t *q = e->queues;
        e->queues = q->next;
        aw__queue_free(q);
    }
    if (e->timer)
        event_free(e->timer);
    free(e);
}

struct event_base *aw_engine_base(const aw_engine_t *e)
{
    return e->base;
}

aw_queue_t *aw__engine_find_queue(const aw_engine_t *e, const char *name)
{
    for (aw_queue_t *q = e->queues; q; q = q->next)
        if (strcmp(q->name, name) == 0)
            return q;
    return NULL;
}

static void dispatch(aw_engine_t *e, aw_queue_t *q);

int aw_engine_set_queue(aw_engine_t *e, const char *name, uint32_t concurrency)
{
    aw_queue_t *q = aw__engine_find_queue(e, name);
    if (q) {
        q->concurrency = concurrency;
        dispatch(e, q);                 /* a raised limit starts tasks now */
        return 0;
    }
    if (!(q = aw__queue_new(name, concurrency)))
        return -ENOMEM;
    q->next = e->queues;
    e->queues = q;
    return 0;
}

aw_kind_stats_t *aw__engine_find_kind(const aw_engine_t *e, const char *name)
{
    for (size_t i = 0; i < e->stats.nkinds; i++)
        if (strcmp(e->stats.kinds[i].kind->name, name) == 0)
            return (aw_kind_stats_t *)&e->stats.kinds[i];
    return NULL;
}

static aw_kind_stats_t *kind_stats(aw_engine_t *e, const aw_kind_t *k)
{
    for (size_t i = 0; i < e->stats.nkinds; i++)
        if (e->stats.kinds[i].kind == k)
            return &e->stats.kinds[i];
    return NULL;
}

int aw_engine_add_kind(aw_engine_t *e, const aw_kind_t *k, bool enabled)
{
    aw_kind_stats_t *ks = aw__engine_find_kind(e, k->name);
    if (!ks) {
        if (e->stats.nkinds == AW_MAX_KINDS)
            return -ENOSPC;
        ks = &e->stats.kinds[e->stats.nkinds++];
    }
    memset(ks, 0, sizeof *ks);
    ks->kind = k;
    ks->enabled = enabled;
    return 0;
}

bool aw_engine_kind_enabled(const aw_engine_t *e, const char *name)
{
    aw_kind_stats_t *ks = aw__engine_find_kind(e, name);
    return ks && ks->enabled;
}

int aw_engine_enable_kind(aw_engine_t *e, const char *name, bool enabled)
{
    aw_kind_stats_t *ks = aw__engine_find_kind(e, name);
    if (!ks)
        return AW_EKIND;
    ks->enabled = enabled;
    return 0;
}

void aw_engine_set_limits(aw_engine_t *e, const aw_engine_limits_t *lim)
{
    e->limits = *lim;
}

const aw_queue_t *aw_engine_queues(const aw_engine_t *e)
{
    return e->queues;
}

void aw_engine_stats(const aw_engine_t *e, aw_engine_stats_t *out)
{
    *out = e->stats;
}

void aw_engine_set_observer(aw_engine_t *e, aw_observer_cb cb, void *arg)
{
    e->observer = cb;
    e->observer_arg = arg;
}

/* Tells the observer about t's state, once its fields are all set. */
static void observe(aw_engine_t *e, const aw_task_t *t)
{
    if (e->observer)
        e->observer(e->observer_arg, t);
}

/* ---- state transitions ---- */

static void set_state(aw_engine_t *e, aw_task_t *t, aw_task_state_t s)
{
    e->stats.held[t->state]--;
    e->stats.held[s]++;
    t->state = s;
}

static void start_task(aw_engine_t *e, aw_task_t *t)
{
    set_state(e, t, AW_RUNNING);
    t->started_at = aw_clock_wall_ms();
    t->queue->running++;
    if (t->timeout_ms >= 0) {
        t->timeout_at = aw_clock_mono_ms() + t->timeout_ms;
        /* On -ENOMEM the timeout cannot be kept; the task still runs. */
        aw_heap_set(&e->heap, &t->deadline, t->timeout_at);
    }
    /* Before start: a kind may finish the task inside it, and the
     * observer must see running before the final state. */
    observe(e, t);
    t->kind->start(e, t);
    aw__engine_arm(e);
}

static void finish(aw_engine_t *e, aw_task_t *t, aw_task_state_t s,
                   aw_error_type_t type, const char *message, char *result)
{
    bool was_running = t->state == AW_RUNNING;
    /* A waiter's callback may forget t; it must outlive this function. */
    aw_task_ref(t);
    set_state(e, t, s);
    t->finished_at = aw_clock_wall_ms();
    t->error_type = (uint8_t)type;
    free(t->result);
    t->result = result;
    /* Out of memory loses only the message; the type still says why. */
    aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, message);
    e->unfinished--;
    kind_stats(e, t->kind)->finished[s]++;
    /* Retention goes through the heap even when it is 0, so that a task is
     * never freed under the caller that finished it. */
    aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + e->limits.retention_ms);
    aw__engine_arm(e);
    observe(e, t);
    aw__waiters_task_done(e, t);
    if (was_running) {
        t->queue->running--;
        dispatch(e, t->queue);
    }
    aw_task_unref(t);
}

static void dispatch(aw_engine_t *e, aw_queue_t *q)
{
    if (e->dispatching || e->stopping)  /* one loop at a time; see the file comment */
        return;
    e->dispatching = true;
    aw_queue_t *next = q;
    while (next) {
        aw_queue_t *cur = next;
        next = NULL;
        while (cur->head && aw__queue_has_slot(cur))
            start_task(e, aw__queue_pop(cur));
        /* A task that finished inside start may have freed a slot of
         * another queue: look once more at every queue. */
        for (aw_queue_t *o = e->queues; o && !next; o = o->next)
            if (o->head && aw__queue_has_slot(o))
                next = o;
    }
    e->dispatching = false;
}

void aw__engine_dispatch(aw_engine_t *e, aw_queue_t *q)
{
    dispatch(e, q);
}

void aw_task_succeed(aw_engine_t *e, aw_task_t *t, char *result)
{
    finish(e, t, AW_SUCCEEDED, AW_ERR_NONE, NULL, result);
}

void aw_task_fail(aw_engine_t *e, aw_task_t *t, aw_error_type_t type,
                  const char *message, char *result)
{
    finish(e, t, AW_FAILED, type, message, result);
}

void aw_task_finish_cancelled(aw_engine_t *e, aw_task_t *t, char *result)
{
    if (t->stop_reason == AW_STOP_INTERRUPT) {
        finish(e, t, AW_FAILED, AW_ERR_INTERRUPTED,
               "the daemon stopped while the task ran", result);
    } else if (t->stop_reason == AW_STOP_TIMEOUT) {
        char msg[80];
        snprintf(msg, sizeof msg, "task timed out after %g s", (double)t->timeout_ms / 1000);
        finish(e, t, AW_TIMED_OUT, AW_ERR_TIMEOUT, msg, result);
    } else {
        finish(e, t, AW_CANCELLED, AW_ERR_CANCELLED, "task was cancelled", result);
    }
}

/* Asks the kind to stop a running task; finishes it here when the kind
 * stopped it at once. */
static int stop_running(aw_engine_t *e, aw_task_t *t, aw_stop_reason_t why)
{
    if (t->stop_reason != AW_STOP_NONE)
        return 1;                       /* already under way */
    t->stop_reason = (uint8_t)why;
    aw_heap_remove(&e->heap, &t->deadline);
    if (t->kind->cancel(e, t) == 0) {
        aw_task_finish_cancelled(e, t, NULL);
        return 0;
    }
    return 1;
}

int aw_task_create(aw_engine_t *e, const aw_task_spec_t *spec,
                   aw_task_t **out, char *err, size_t errlen)
{
    aw_kind_stats_t *ks = aw__engine_find_kind(e, spec->kind);
    if (!ks) {
        snprintf(err, errlen, "unknown kind '%s'", spec->kind);
        return AW_EKIND;
    }
    aw_queue_t *q = aw__engine_find_queue(e, spec->queue ? spec->queue : "default");
    if (!q) {
        snprintf(err, errlen, "unknown queue '%s'", spec->queue);
        return AW_EQUEUE;
    }
    json_t *empty = NULL, *args = spec->args;
    if (!args && !(args = empty = json_object()))
        return -ENOMEM;
    /* The args text is stored inside the task's own allocation. */
    char *text = json_dumps(args, JSON_COMPACT | JSON_REAL_PRECISION(15));
    size_t len = text ? strlen(text) : 0;
    aw_task_t *t = text ? calloc(1, sizeof *t + len + 1) : NULL;
    if (!t) {
        free(text);
        json_decref(empty);
        return -ENOMEM;
    }
    memcpy(t->args, text, len + 1);
    free(text);
    t->kind = ks->kind;
    t->queue = q;
    t->refs = 1;                        /* ours, until the table has it */
    t->timeout_ms = spec->timeout_ms;
    t->deadline.owner = AW_OWNER_TASK;

    int rc = ks->kind->prepare(e, t, args, err, errlen);
    if ((rc == 0 || rc == AW_EFORBIDDEN) && !ks->enabled)
        rc = AW_EDISABLED;
    if (rc == AW_EDISABLED)
        snprintf(err, errlen, "kind '%s' is disabled by configuration", spec->kind);
    if (rc == 0 && e->limits.max_tasks && e->unfinished >= e->limits.max_tasks) {
        snprintf(err, errlen, "the daemon holds its maximum of %llu unfinished tasks",
                 (unsigned long long)e->limits.max_tasks);
        rc = AW_ECAPACITY;
    }
    if (rc == 0)
        rc = aw__task_set_string(t, AW_TASK_NAME, spec->name);
    if (rc == 0)
        rc = aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, spec->idempotency_key);
    json_decref(empty);
    if (rc == 0) {
        aw_task_id_next(&e->ids, aw_clock_wall_ms(), t->id);
        rc = aw__table_insert(&e->table, t);
    }
    aw_task_unref(t);                   /* the table's reference remains */
    if (rc < 0)
        return rc;

    e->unfinished++;
    e->stats.held[AW_PENDING]++;
    ks->created++;
    observe(e, t);                      /* pending, before dispatch may start it */
    aw__queue_push(q, t);
    dispatch(e, q);
    *out = t;
    return 0;
}

aw_task_t *aw_task_find(const aw_engine_t *e, const char *id)
{
    return aw__table_find(&e->table, id);
}

aw_task_t *aw_task_find_idempotent(const aw_engine_t *e, const char *key)
{
    return aw__table_find_key(&e->table, key);
}

aw_task_t *aw_task_after(const aw_engine_t *e, const char *after)
{
    return aw__table_after(&e->table, after);
}

aw_task_t *aw_task_next(const aw_task_t *t)
{
    return t->next;
}

int aw_task_cancel(aw_engine_t *e, aw_task_t *t)
{
    switch (t->state) {
    case AW_PENDING:
        aw__queue_remove(t->queue, t);
        t->stop_reason = AW_STOP_CANCEL;
        aw_task_finish_cancelled(e, t, NULL);
        return 0;
    case AW_RUNNING:
        return stop_running(e, t, AW_STOP_CANCEL);
    default:
        return AW_EDONE;
    }
}

int aw_task_forget(aw_engine_t *e, aw_task_t *t)
{
    if (!aw_task_done(t))
        return AW_EACTIVE;
    aw_heap_remove(&e->heap, &t->deadline);
    aw__engine_arm(e);
    e->stats.held[t->state]--;
    aw__table_remove(&e->table, t);
    return 0;
}

size_t aw_engine_interrupt_all(aw_engine_t *e)
{
    e->stopping = true;
    size_t still_running = 0;
    aw_task_t *t = e->table.first;
    if (t)
        aw_task_ref(t);
    while (t) {
        /* Hold the next task too: finishing t runs waiter callbacks. */
        aw_task_t *next = t->next;
        if (next)
            aw_task_ref(next);
        if (t->state == AW_RUNNING && stop_running(e, t, AW_STOP_INTERRUPT) == 1)
            still_running++;
        aw_task_unref(t);
        t = next;
    }
    return still_running;
}

int aw_task_set_wake(aw_engine_t *e, aw_task_t *t, int64_t mono_ms)
{
    int64_t when = mono_ms;
    if (t->stop_reason == AW_STOP_NONE && t->timeout_ms >= 0 && t->timeout_at < when)
        when = t->timeout_at;
    int rc = aw_heap_set(&e->heap, &t->deadline, when);
    aw__engine_arm(e);
    return rc;
}

static void task_due(aw_engine_t *e, aw_task_t *t, int64_t now)
{
    if (aw_task_done(t)) {
        aw_task_forget(e, t);
        return;
    }
    if (t->state != AW_RUNNING)
        return;
    if (t->stop_reason == AW_STOP_NONE && t->timeout_ms >= 0 && now >= t->timeout_at) {
        stop_running(e, t, AW_STOP_TIMEOUT);
        return;
    }
    aw_task_ref(t);                     /* wake may finish and forget t */
    t->kind->wake(e, t);
    /* The kind did not finish and set no new wake: the timeout still
     * stands. */
    if (t->state == AW_RUNNING && !aw_heap_scheduled(&t->deadline) &&
        t->stop_reason == AW_STOP_NONE && t->timeout_ms >= 0)
        aw_heap_set(&e->heap, &t->deadline, t->timeout_at);
    aw_task_unref(t);
}

void aw_engine_run_due(aw_engine_t *e)
{
    int64_t now = aw_clock_mono_ms();
    const aw_heap_entry_t *top;
    while ((top = aw_heap_peek(&e->heap)) && top->when <= now) {
        aw_heap_node_t *node = top->node;
        aw_heap_remove(&e->heap, node);
        if (node->owner == AW_OWNER_TASK)
            task_due(e, aw__container_of(node, aw_task_t, deadline), now);
        else
            aw__waiter_timeout(e, node);
    }
    aw__engine_arm(e);
}
