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
 * Listeners (events, the store) hear every create, change and forget, in
 * order, from inside the engine. Durability needs three more verbs, and the
 * engine keeps them free of any store: a create may be held (invisible,
 * and not started when its kind has outside effects) until aw_task_release
 * or aw_task_discard; a cancel or delete may be marked (aw_task_ask) so that
 * the store writes what it will do before anyone carries it out.
 *
 * Memory: max_tasks bounds only unfinished tasks, and a finished one may
 * keep a large result for its whole retention, so every held task also
 * counts its bytes (aw_task_bytes) in stats.held_bytes, taken at admission
 * and again at its finish, and given back when it leaves the table. A
 * create that would pass max_task_bytes is refused (AW_EBUDGET); the
 * per-task counts by kind and queue kept beside it let task_list.c answer
 * a filter that cannot match without walking the tasks.
 *
 * Retries: an attempt that ends failed or timed out, when the task's
 * retry policy has attempts left, does not finish the task: it goes back
 * to pending (retry_attempt) and waits out its backoff as a delayed
 * start does, as its not_before (aw__task_requeue_at). Waiters and
 * counters see only the final end; listeners hear CHANGED back to
 * pending.
 *
 * Tasks that await tasks (task_links.h): a create may make many tasks (a
 * group and its children), all checked before any is admitted, so that a
 * refusal leaves none. A task's end is told at once to what hangs on it:
 * its dependents (unblocked or failed), its group (the kind's child_done),
 * and, for a group that ends before it started, its children (cancelled).
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

/* How often retention looks again at a finished task whose notification
 * is still being delivered. */
#define RETENTION_RECHECK_MS 60000
#include "json_text.h"
#include "errors.h"
#include "retry.h"
#include "task_links.h"
#include "task_spec.h"

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
    /* Last: the tasks freed above may still have used their kind's state
     * (an exec job's configuration). */
    for (size_t i = 0; i < e->stats.nkinds; i++)
        if (e->stats.kinds[i].kind->fini && e->kind_state[i])
            e->stats.kinds[i].kind->fini(e->kind_state[i]);
    if (e->timer)
        event_free(e->timer);
    free(e->listeners);
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
    aw_kind_stats_t *old = aw__engine_find_kind(e, k->name);
    if (old) {                          /* registered again: only enabled changes */
        old->enabled = enabled;
        return 0;
    }
    if (e->stats.nkinds == AW_MAX_KINDS)
        return -ENOSPC;
    size_t i = e->stats.nkinds;
    void *state = NULL;
    int rc = k->init ? k->init(e, &state) : 0;
    if (rc < 0)
        return rc;
    e->kind_state[i] = state;
    aw_kind_stats_t *ks = &e->stats.kinds[i];
    memset(ks, 0, sizeof *ks);
    ks->kind = k;
    ks->enabled = enabled;
    e->stats.nkinds++;
    return 0;
}

void *aw_engine_kind_state(const aw_engine_t *e, const aw_kind_t *k)
{
    for (size_t i = 0; i < e->stats.nkinds; i++)
        if (e->stats.kinds[i].kind == k)
            return e->kind_state[i];
    return NULL;
}

int aw_engine_configure_kind(aw_engine_t *e, const char *name, const void *config,
                             char *err, size_t errlen)
{
    for (size_t i = 0; i < e->stats.nkinds; i++) {
        const aw_kind_t *k = e->stats.kinds[i].kind;
        if (strcmp(k->name, name) != 0)
            continue;
        int rc = k->configure ? k->configure(e->kind_state[i], config, err, errlen) : 0;
        /* A raised cap of the kind's own (has_slot) starts waiting tasks now. */
        if (rc == 0 && k->has_slot && e->queues)
            dispatch(e, e->queues);
        return rc;
    }
    snprintf(err, errlen, "unknown kind '%s'", name);
    return AW_EKIND;
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

const aw_engine_limits_t *aw_engine_limits(const aw_engine_t *e)
{
    return &e->limits;
}

const aw_queue_t *aw_engine_queues(const aw_engine_t *e)
{
    return e->queues;
}

const aw_queue_t *aw_engine_queue(const aw_engine_t *e, const char *name)
{
    return aw__engine_find_queue(e, name);
}

int aw_engine_pause_queue(aw_engine_t *e, const char *name, bool paused)
{
    aw_queue_t *q = aw__engine_find_queue(e, name);
    if (!q)
        return AW_ENOQUEUE;
    q->paused = paused;
    if (!paused)
        dispatch(e, q);
    return 0;
}

void aw_engine_stats(const aw_engine_t *e, aw_engine_stats_t *out)
{
    *out = e->stats;
}

int aw_engine_listen(aw_engine_t *e, aw_listener_cb cb, void *arg)
{
    struct aw_listener *l = realloc(e->listeners, (e->nlisteners + 1) * sizeof *l);
    if (!l)
        return -ENOMEM;
    l[e->nlisteners++] = (struct aw_listener){ cb, arg };
    e->listeners = l;
    return 0;
}

void aw_engine_unlisten(aw_engine_t *e, aw_listener_cb cb, void *arg)
{
    for (size_t i = 0; i < e->nlisteners; i++) {
        if (e->listeners[i].cb == cb && e->listeners[i].arg == arg) {
            memmove(&e->listeners[i], &e->listeners[i + 1],
                    (e->nlisteners - i - 1) * sizeof *e->listeners);
            e->nlisteners--;
            return;
        }
    }
}

void aw__engine_notify(aw_engine_t *e, aw_task_event_t ev, aw_task_t *t)
{
    for (size_t i = 0; i < e->nlisteners; i++)
        e->listeners[i].cb(e->listeners[i].arg, ev, t);
}

void aw_engine_set_notify_check(aw_engine_t *e, aw_notify_check_fn fn, void *arg)
{
    e->notify_check = fn;
    e->notify_arg = arg;
}

void aw_task_changed(aw_engine_t *e, aw_task_t *t)
{
    if (t->listed)
        aw__engine_notify(e, AW_TASK_CHANGED, t);
}

/* The create's notification, checked by its deliverer. */
static int set_notify(aw_engine_t *e, aw_task_t *t, json_t *notify, char *err, size_t errlen)
{
    char *target = NULL;
    if (!e->notify_check) {
        snprintf(err, errlen, "completion notifications are off: [notify] allow names no "
                 "receiver");
        return AW_EFORBIDDEN;
    }
    int rc = e->notify_check(e->notify_arg, notify, &target, err, errlen);
    if (rc == 0)
        rc = aw__task_set_notify(t, target);
    free(target);
    return rc;
}

/* The create's retry policy. */
static int set_retry(aw_task_t *t, json_t *retry, char *err, size_t errlen)
{
    aw_task_retry_t r;
    int rc = aw_retry_parse(retry, &r, err, errlen);
    if (rc == 0)
        rc = aw__task_set_retry(t, &r);
    free(r.policy);
    return rc;
}

/* A state change, once the task's fields are all set. */
static void observe(aw_engine_t *e, aw_task_t *t)
{
    aw__engine_notify(e, AW_TASK_CHANGED, t);
}

/* ---- the memory budget ---- */

static uint64_t str_bytes(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

uint64_t aw_task_bytes(const aw_task_t *t)
{
    uint64_t n = sizeof *t + strlen(t->args) + 1 + str_bytes(t->result);
    if (t->extra)
        n += sizeof *t->extra + str_bytes(t->extra->name) +
             str_bytes(t->extra->idempotency_key) + str_bytes(t->extra->error_message);
    if (aw_task_notify(t))
        n += sizeof *t->extra->notify + str_bytes(t->extra->notify->target) +
             str_bytes(t->extra->notify->last_error);
    if (aw_task_retry(t))
        n += sizeof *t->extra->retry + str_bytes(t->extra->retry->policy) +
             str_bytes(t->extra->retry->last_error_message);
    const aw_task_links_t *l = aw_task_links(t);
    if (l)
        n += sizeof *l + l->nedges * sizeof l->edges[0] + str_bytes(l->after) +
             str_bytes(l->group_spec) + l->nchildren * sizeof *l->children;
    if (t->kind && t->kind->bytes)
        n += t->kind->bytes(t);
    return n;
}

/* Counts t at its size now; what was counted for it before is replaced,
 * so held_bytes always holds exactly the sum of the tasks' t->bytes. */
static void count_bytes(aw_engine_t *e, aw_task_t *t)
{
    uint64_t n = aw_task_bytes(t);
    e->stats.held_bytes = e->stats.held_bytes - t->bytes + n;
    t->bytes = n;
}

/* t leaves the table: its bytes, and its place in the kind's and queue's
 * counts, are given back. */
static void uncount(aw_engine_t *e, aw_task_t *t)
{
    e->stats.held_bytes -= t->bytes;
    t->bytes = 0;
    kind_stats(e, t->kind)->held--;
    t->queue->held--;
}

/* ---- state transitions ---- */

static void set_state(aw_engine_t *e, aw_task_t *t, aw_task_state_t s)
{
    e->stats.held[t->state]--;
    e->stats.held[s]++;
    t->state = s;
}

static void finish(aw_engine_t *e, aw_task_t *t, aw_task_state_t s,
                   aw_error_type_t type, const char *message, char *result);

/* Before a second or later attempt: the kind's state of the attempt
 * before is made ready for another start, by the kind's reset when it
 * has one (exec keeps its output watchers), else by releasing it and
 * preparing the args again, as a create does (a task read back from a
 * running record was never prepared at all). Returns 0, or finishes the
 * task failed (the kind refuses it now) and returns -1. */
static int prepare_attempt(aw_engine_t *e, aw_task_t *t)
{
    if (t->kind->reset && t->kdata.p) {
        t->kind->reset(e, t);
        return 0;
    }
    if (t->kind->release)
        t->kind->release(t);
    char err[256] = "";
    json_t *args = json_loads(t->args, JSON_ALLOW_NUL, NULL);
    int rc = !args ? -ENOMEM
             : !aw_engine_kind_enabled(e, t->kind->name) ? AW_EDISABLED
             : t->kind->prepare(e, t, args, err, sizeof err);
    json_decref(args);
    if (rc == 0)
        return 0;
    char msg[320];
    if (rc == AW_EDISABLED)
        snprintf(msg, sizeof msg, "not retried: kind '%s' is disabled by configuration",
                 t->kind->name);
    else
        snprintf(msg, sizeof msg, "not retried: %s", rc == -ENOMEM ? "out of memory" : err);
    finish(e, t, AW_FAILED, rc == AW_EFORBIDDEN || rc == AW_EDISABLED ? AW_ERR_FORBIDDEN
                                                                     : AW_ERR_INTERRUPTED,
           msg, NULL);
    return -1;
}

static void start_task(aw_engine_t *e, aw_task_t *t)
{
    if (aw_task_attempt(t) > 1 && prepare_attempt(e, t) < 0)
        return;
    set_state(e, t, AW_RUNNING);
    t->started_at = aw_clock_wall_ms();
    if (!t->kind->no_slot)              /* a group takes no slot */
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

/* A pending task waits until wall_at before it joins its queue: a retry's
 * backoff is a delayed start, its not_before (shown, and stored, so a
 * restart keeps it). now or earlier queues it at once. */
void aw__task_requeue_at(aw_engine_t *e, aw_task_t *t, int64_t wall_at)
{
    aw_task_retry_t *r = aw_task_retry(t);
    bool later = wall_at > aw_clock_wall_ms();
    /* Out of memory for not_before loses only the wait. */
    if (aw__task_set_not_before(t, later ? wall_at : 0) < 0)
        later = false;
    if (r)
        r->retry_at = later ? wall_at : 0;
    aw__engine_enqueue(e, t);
}

/* An attempt ended in state s: when the retry policy wants another, the
 * task goes back to pending for it and this returns true; nothing of a
 * finish happens (no counter, no waiter, no retention). The error becomes
 * last_error, the attempt's result is dropped (the next attempt makes its
 * own), and started_at is cleared until the next start. An attempt the
 * daemon interrupted is retried without a wait: the restart was one. A
 * task whose cancel awaits its commit is not retried: it is being
 * cancelled. */
static bool retry_attempt(aw_engine_t *e, aw_task_t *t, aw_task_state_t s,
                          aw_error_type_t type, const char *message, char *result)
{
    aw_task_retry_t *r = aw_task_retry(t);
    if (!r || r->attempt >= r->attempts || t->cancel_asked || !aw_retry_wants(s, type))
        return false;
    aw_task_ref(t);
    char *copy = message ? strdup(message) : NULL;  /* ENOMEM loses the message */
    free(r->last_error_message);
    r->last_error_message = copy;
    r->last_error_type = (uint8_t)type;
    int64_t delay = type == AW_ERR_INTERRUPTED ? 0 : aw_retry_delay_ms(r, r->attempt);
    r->attempt++;
    free(result);
    free(t->result);
    t->result = NULL;
    aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, NULL);
    t->error_type = AW_ERR_NONE;
    t->started_at = 0;
    t->stop_reason = AW_STOP_NONE;
    aw_heap_remove(&e->heap, &t->deadline);     /* the attempt's wake or timeout */
    set_state(e, t, AW_PENDING);
    t->queue->running--;
    e->stats.retries++;
    aw__task_requeue_at(e, t, aw_clock_wall_ms() + delay);
    count_bytes(e, t);
    observe(e, t);
    /* The daemon is stopping and will not run it: whoever waits for it
     * (the shutdown's wait for running tasks, open waits the drain would
     * answer anyway) gets it now, pending, done false. */
    if (e->stopping)
        aw__waiters_task_done(e, t);
    dispatch(e, t->queue);
    aw_task_unref(t);
    return true;
}

static void links_done(aw_engine_t *e, aw_task_t *t, bool was_running);

static void finish(aw_engine_t *e, aw_task_t *t, aw_task_state_t s,
                   aw_error_type_t type, const char *message, char *result)
{
    bool was_running = t->state == AW_RUNNING;
    if (was_running && retry_attempt(e, t, s, type, message, result))
        return;
    /* A waiter's callback may forget t; it must outlive this function. */
    aw_task_ref(t);
    set_state(e, t, s);
    t->finished_at = aw_clock_wall_ms();
    t->error_type = (uint8_t)type;
    free(t->result);
    t->result = result;
    /* Out of memory loses only the message; the type still says why. */
    aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, message);
    count_bytes(e, t);                  /* its result and message */
    e->unfinished--;
    kind_stats(e, t->kind)->finished[s]++;
    /* Retention goes through the heap even when it is 0, so that a task is
     * never freed under the caller that finished it. */
    aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + e->limits.retention_ms);
    aw__engine_arm(e);
    observe(e, t);
    aw__waiters_task_done(e, t);
    if (was_running && !t->kind->no_slot) {
        t->queue->running--;
        dispatch(e, t->queue);
    }
    if (aw_task_links(t))
        links_done(e, t, was_running);
    aw_task_unref(t);
}

/* Whether q may start its head (the top of its heap: the highest
 * priority, the oldest among equals) now: not paused, a queue slot, and
 * a slot of the head's kind when the kind caps its own running tasks
 * (kind.h has_slot). A head its kind holds back keeps the tasks behind it
 * pending too: the queue's order is kept, and a kind's tasks wait in
 * their queues without a second list (operators give capped kinds a
 * queue of their own when other kinds must not wait behind them). */
static bool can_start(const aw_engine_t *e, const aw_queue_t *q)
{
    aw_task_t *head = aw__queue_peek(q);
    if (!head || q->paused || !aw__queue_has_slot(q))
        return false;
    const aw_kind_t *k = head->kind;
    return !k->has_slot || k->has_slot(aw_engine_kind_state(e, k));
}

static void dispatch(aw_engine_t *e, aw_queue_t *q)
{
    /* One loop at a time (see the file comment); nothing starts while
     * the store reads tasks back or the daemon stops. */
    if (e->dispatching || e->stopping || e->restoring)
        return;
    e->dispatching = true;
    aw_queue_t *next = q;
    while (next) {
        aw_queue_t *cur = next;
        next = NULL;
        while (can_start(e, cur))
            start_task(e, aw__queue_pop(cur));
        /* A task that finished inside start may have freed a slot of
         * another queue: look once more at every queue. */
        for (aw_queue_t *o = e->queues; o && !next; o = o->next)
            if (can_start(e, o))
                next = o;
    }
    e->dispatching = false;
}

void aw__engine_dispatch(aw_engine_t *e, aw_queue_t *q)
{
    dispatch(e, q);
}

/* Why the deadline heap for delayed tasks: a pending task's deadline node
 * is free (it is a running task's wake-up or timeout and a finished one's
 * retention), so a delayed task costs no memory beyond its not_before,
 * and 100,000 of them one O(log n) entry each, with one timer armed for
 * the earliest. The heap runs on the monotonic clock and not_before is
 * wall time: the wait is converted here, and task_due checks the wall
 * clock again, so a task never starts before its not_before. */
void aw__engine_enqueue(aw_engine_t *e, aw_task_t *t)
{
    int64_t nb = aw_task_not_before(t);
    int64_t wait = nb ? nb - aw_clock_wall_ms() : 0;
    if (wait <= 0 && aw__queue_push(t->queue, t) == 0)
        return;
    if (wait <= 0)
        wait = 1;                       /* out of memory: again soon */
    /* On -ENOMEM here too the task stays pending until a restart. */
    aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + wait);
    t->queue->ndelayed++;
    aw__engine_arm(e);
}

/* A pending task leaves where it waits (cancel, discard). */
static void unqueue(aw_engine_t *e, aw_task_t *t)
{
    if (t->state != AW_PENDING)
        return;
    if (aw__queue_contains(t)) {
        aw__queue_remove(t->queue, t);
    } else if (aw_heap_scheduled(&t->deadline)) {
        aw_heap_remove(&e->heap, &t->deadline);
        t->queue->ndelayed--;
        aw__engine_arm(e);
    }
}

/* ---- links between tasks (task_links.h) ---- */

static bool task_blocked(const aw_task_t *t)
{
    const aw_task_links_t *l = aw_task_links(t);
    return l && l->blocked;
}

void aw__engine_runnable(aw_engine_t *e, aw_task_t *t)
{
    if (t->kind->no_slot) {
        /* A group starts at once, wherever its queue stands; not while
         * the tasks are read back (end_restore starts it) or the daemon
         * stops (the next start takes it up). */
        if (!e->restoring && !e->stopping)
            start_task(e, t);
        return;
    }
    if (t->held && t->kind->start_after_commit)
        return;                         /* aw_task_release queues it */
    aw__engine_enqueue(e, t);           /* now, or at its not_before */
    dispatch(e, t->queue);
}

void aw__task_unblock(aw_engine_t *e, aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    if (l && l->blocked && --l->blocked == 0 && t->listed && t->state == AW_PENDING)
        aw__engine_runnable(e, t);
}

static void fail_dependency(aw_engine_t *e, aw_task_t *t, const aw_task_t *d)
{
    char msg[96];
    snprintf(msg, sizeof msg, "dependency %s ended %s", d->id, aw_task_state_name(d->state));
    finish(e, t, AW_FAILED, AW_ERR_DEPENDENCY, msg, NULL);
}

/* d has ended: each task waiting for it hears it at once, in the same
 * call. The edges go through one FIFO, worked off by the outermost call:
 * a failure that runs down a chain of a million `after`s (each dependent
 * fails, which fails its own dependents) then costs no stack depth. */
static void wake_dependents(aw_engine_t *e, aw_task_t *d)
{
    aw_dep_edge_t *x = aw__links_take_dependents(d), *last = x;
    if (!x)
        return;
    for (aw_dep_edge_t *y = x; y; y = y->next) {
        aw_task_ref(d);                 /* one per edge, until it is told */
        last = y;
    }
    if (e->wake_tail)
        e->wake_tail->next = x;
    else
        e->wake_head = x;
    e->wake_tail = last;
    if (e->waking)
        return;
    e->waking = true;
    while ((x = e->wake_head)) {
        if (!(e->wake_head = x->next))
            e->wake_tail = NULL;
        x->next = NULL;
        aw_task_t *t = x->task, *dep = x->dep;  /* both referenced */
        x->dep = NULL;
        if (t->listed && t->state == AW_PENDING) {
            if (dep->state != AW_SUCCEEDED)
                fail_dependency(e, t, dep);
            else
                aw__task_unblock(e, t);
        }
        aw_task_unref(t);
        aw_task_unref(dep);
    }
    e->waking = false;
}

/* Cancels t's children that are still active (a group that ended before
 * it started: its children never left pending, so this is at once). */
static void cancel_children(aw_engine_t *e, aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    for (uint32_t i = 0; i < l->nchildren; i++)
        if (l->children[i] && !aw_task_done(l->children[i]))
            aw_task_cancel(e, l->children[i]);
}

/* t has ended: what hangs on it hears it, children and dependents down,
 * the group up (not while the tasks are read back: the group's resume
 * recounts its children then). */
static void links_done(aw_engine_t *e, aw_task_t *t, bool was_running)
{
    aw_task_links_t *l = aw_task_links(t);
    if (!was_running && l->nchildren)
        cancel_children(e, t);
    wake_dependents(e, t);
    aw_task_t *p = l->parent;
    if (p && p->listed && !aw_task_done(p) && !e->restoring && p->kind->child_done)
        p->kind->child_done(e, p, t);
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

aw_task_t *aw__task_new(const aw_kind_t *k, aw_queue_t *q, json_t *args,
                        int64_t timeout_ms)
{
    /* Written once, exactly (json_text.h): kinds and the store read this
     * text back, and a lossy copy changed numbers and even made some
     * args unreadable. */
    aw_buf_t b;
    aw_buf_init(&b);
    aw_json_write(&b, args);
    char *text = aw_buf_steal(&b, NULL);
    aw_task_t *t = text ? aw__task_new_text(k, q, text, timeout_ms) : NULL;
    free(text);
    return t;
}

aw_task_t *aw__task_new_text(const aw_kind_t *k, aw_queue_t *q, const char *args,
                             int64_t timeout_ms)
{
    /* The args text is stored inside the task's own allocation. */
    size_t len = strlen(args);
    aw_task_t *t = calloc(1, sizeof *t + len + 1);
    if (!t)
        return NULL;
    memcpy(t->args, args, len + 1);
    t->kind = k;
    t->queue = q;
    t->refs = 1;
    t->timeout_ms = timeout_ms;
    t->deadline.owner = AW_OWNER_TASK;
    return t;
}

int aw__engine_admit(aw_engine_t *e, aw_task_t *t)
{
    int rc = aw__table_insert(&e->table, t);
    aw_task_unref(t);                   /* the table's reference remains */
    if (rc < 0)
        return rc;
    e->stats.held[t->state]++;
    if (!aw_task_done(t))
        e->unfinished++;
    kind_stats(e, t->kind)->held++;
    t->queue->held++;
    count_bytes(e, t);
    return 0;
}

/* ---- creates: one task, or a group with all its children at once ---- */

/* The create in progress (e->build): every task it made, in preorder (a
 * group before its children), each referenced by the list. None is in
 * the table until every one of them has passed every check, so that a
 * refused create leaves nothing, not even some of a group's children. */
struct aw_build {
    aw_task_t **tasks;
    size_t      n, cap;
    uint32_t    depth;              /* groups enclosing the task being made */
};

static void build_drop(struct aw_build *b)
{
    for (size_t i = 0; i < b->n; i++)
        aw_task_unref(b->tasks[i]);
    free(b->tasks);
}

bool aw__engine_building(const aw_engine_t *e)
{
    return e->build != NULL;
}

/* Checks spec->after: an array of ids of tasks that exist now (held
 * creates do not count: they may still be refused). Each entry gets an
 * edge, linked only once the create succeeds. */
static int set_after(aw_engine_t *e, aw_task_t *t, json_t *after, char *err, size_t errlen)
{
    if (!after || json_is_null(after))
        return 0;
    if (!json_is_array(after)) {
        snprintf(err, errlen, "after must be an array of task ids");
        return AW_EINVAL;
    }
    size_t n = json_array_size(after);
    if (n == 0)
        return 0;
    if (n > UINT32_MAX || aw__links_ensure(t, (uint32_t)n) < 0)
        return -ENOMEM;
    aw_task_links_t *l = aw_task_links(t);
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_addc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(after, i);
        aw_task_t *d = json_is_string(v) ? aw_task_find(e, json_string_value(v)) : NULL;
        if (!json_is_string(v)) {
            snprintf(err, errlen, "after[%zu] must be a task id", i);
            aw_buf_close(&b);
            return AW_EINVAL;
        }
        if (!d) {
            snprintf(err, errlen, "after[%zu]: unknown dependency '%.64s'", i,
                     json_string_value(v));
            aw_buf_close(&b);
            return AW_EDEPENDENCY;
        }
        if (aw__links_ensure(d, 0) < 0) {
            aw_buf_close(&b);
            return -ENOMEM;
        }
        l->edges[i].dep = d;
        aw_buf_printf(&b, "%s\"%s\"", i ? "," : "", d->id);
    }
    aw_buf_addc(&b, ']');
    if (!(l->after = aw_buf_steal(&b, NULL)))
        return -ENOMEM;
    return 0;
}

/* Makes one task of a create (and, through its kind's prepare, a group's
 * children), adding it to e->build. On error it stays in the list, which
 * the caller drops. */
static int build_task(aw_engine_t *e, const aw_task_spec_t *spec, aw_task_t **out,
                      char *err, size_t errlen)
{
    struct aw_build *bd = e->build;
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
    /* A group keeps its children's bodies without their notify headers. */
    json_t *kept = ks->kind == &aw_kind_group ? aw__group_args_kept(args) : json_incref(args);
    aw_task_t *t = kept ? aw__task_new(ks->kind, q, kept, spec->timeout_ms) : NULL;
    json_decref(kept);
    if (t && bd->n == bd->cap) {
        size_t cap = bd->cap ? bd->cap * 2 : 4;
        aw_task_t **a = realloc(bd->tasks, cap * sizeof *a);
        if (a) {
            bd->tasks = a;
            bd->cap = cap;
        }
    }
    if (!t || bd->n == bd->cap) {
        if (t)
            aw_task_unref(t);
        json_decref(empty);
        return -ENOMEM;
    }
    bd->tasks[bd->n++] = t;             /* before prepare: a group's children follow it */
    int rc = set_after(e, t, spec->after, err, errlen);
    if (rc == 0)
        rc = ks->kind->prepare(e, t, args, err, errlen);
    if ((rc == 0 || rc == AW_EFORBIDDEN) && !ks->enabled)
        rc = AW_EDISABLED;
    if (rc == AW_EDISABLED)
        snprintf(err, errlen, "kind '%s' is disabled by configuration", spec->kind);
    if (rc == 0 && spec->notify && !json_is_null(spec->notify))
        rc = set_notify(e, t, spec->notify, err, errlen);
    if (rc == 0 && spec->retry && !json_is_null(spec->retry) && ks->kind->no_slot) {
        /* A group's attempt is its children: give them the retry. */
        snprintf(err, errlen, "a %s cannot retry; give its tasks a retry policy",
                 ks->kind->name);
        rc = AW_EINVAL;
    }
    if (rc == 0 && spec->retry && !json_is_null(spec->retry))
        rc = set_retry(t, spec->retry, err, errlen);
    if (rc == 0 && (spec->priority < AW_PRIORITY_MIN || spec->priority > AW_PRIORITY_MAX)) {
        snprintf(err, errlen, "priority must be an integer from %d to %d",
                 AW_PRIORITY_MIN, AW_PRIORITY_MAX);
        rc = AW_EINVAL;
    }
    if (rc == 0 && spec->not_before < 0) {
        snprintf(err, errlen, "not_before must be a time after 1970");
        rc = AW_EINVAL;
    }
    if (rc == 0)
        rc = aw__task_set_not_before(t, spec->not_before);
    t->priority = (int8_t)spec->priority;
    if (rc == 0)
        rc = aw__task_set_string(t, AW_TASK_NAME, spec->name);
    if (rc == 0)
        rc = aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, spec->idempotency_key);
    json_decref(empty);
    *out = t;
    return rc;
}

int aw__group_build_child(aw_engine_t *e, aw_task_t *group, json_t *body,
                          aw_task_t **child, char *err, size_t errlen)
{
    struct aw_build *bd = e->build;
    aw_task_spec_t spec;
    int rc = aw_task_spec_parse(body, &spec, err, errlen);
    if (rc)
        return rc;
    if (e->limits.max_group_tasks && bd->n > e->limits.max_group_tasks) {
        snprintf(err, errlen, "a group holds at most %llu tasks in all (max_group_tasks), "
                 "its nested groups' children counted",
                 (unsigned long long)e->limits.max_group_tasks);
        return AW_EINVAL;
    }
    if (strcmp(spec.kind, aw_kind_group.name) == 0 && bd->depth + 1 >= AW_GROUP_MAX_DEPTH) {
        snprintf(err, errlen, "groups nest at most %d deep", AW_GROUP_MAX_DEPTH);
        return AW_EINVAL;
    }
    bd->depth++;
    rc = build_task(e, &spec, child, err, errlen);
    bd->depth--;
    if (rc == 0 && (rc = aw__links_ensure(*child, 0)) == 0)
        aw_task_links(*child)->parent = group;
    return rc;
}

/* Undoes aw__engine_admit of a task no one has seen yet. */
static void unadmit(aw_engine_t *e, aw_task_t *t)
{
    e->stats.held[t->state]--;
    e->unfinished--;
    uncount(e, t);
    aw__table_remove(&e->table, t);
}

/* The edges of a new task: linked into the dependencies that are still
 * active, each of which blocks it; a child is blocked by its group too.
 * An edge to a dependency that has ended keeps a reference on it until
 * the create looks at it (failed_dependency). */
static void link_new(aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    if (!l)
        return;
    for (uint32_t i = 0; i < l->nedges; i++) {
        aw_task_t *d = l->edges[i].dep;
        if (!aw_task_done(d)) {
            aw__links_attach(t, i, d);
            l->blocked++;
        } else {
            aw_task_ref(d);
        }
    }
    if (l->parent)
        l->blocked++;
}

/* The first dependency of a new task that had ended otherwise already
 * (referenced: the caller unrefs it), or NULL; the edges forget them. */
static aw_task_t *failed_dependency(aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    aw_task_t *failed = NULL;
    for (uint32_t i = 0; l && i < l->nedges; i++) {
        aw_dep_edge_t *x = &l->edges[i];
        if (x->linked || !x->dep)
            continue;
        if (!failed && x->dep->state != AW_SUCCEEDED)
            failed = x->dep;
        else
            aw_task_unref(x->dep);
        x->dep = NULL;
    }
    return failed;
}

int aw_task_create(aw_engine_t *e, const aw_task_spec_t *spec,
                   aw_task_t **out, char *err, size_t errlen)
{
    struct aw_build bd = { 0 };
    aw_task_t *t = NULL;
    e->build = &bd;
    int rc = build_task(e, spec, &t, err, errlen);
    e->build = NULL;
    if (rc == 0 && e->limits.max_tasks && e->unfinished + bd.n > e->limits.max_tasks) {
        snprintf(err, errlen, "the daemon holds its maximum of %llu unfinished tasks",
                 (unsigned long long)e->limits.max_tasks);
        rc = AW_ECAPACITY;
    }
    /* Last, when every string it keeps is set: the budget counts them. */
    uint64_t bytes = 0;
    for (size_t i = 0; rc == 0 && i < bd.n; i++)
        bytes += aw_task_bytes(bd.tasks[i]);
    if (rc == 0 && e->limits.max_task_bytes &&
        e->stats.held_bytes + bytes > e->limits.max_task_bytes) {
        snprintf(err, errlen, "the tasks held take %llu bytes of the %llu of max_task_bytes; "
                 "delete finished tasks or retry later",
                 (unsigned long long)e->stats.held_bytes,
                 (unsigned long long)e->limits.max_task_bytes);
        rc = AW_EBUDGET;
    }
    for (size_t i = 0; rc == 0 && i < bd.n; i++) {
        aw_task_id_next(&e->ids, aw_clock_wall_ms(), bd.tasks[i]->id);
        bd.tasks[i]->held = spec->hold;
    }
    for (size_t i = 0; rc == 0 && i < bd.n; i++) {
        aw_task_links_t *l = aw_task_links(bd.tasks[i]);
        if (l && l->parent)
            memcpy(l->parent_id, l->parent->id, AW_TASK_ID_SIZE);
        if (l && l->children)
            rc = aw__group_spec_write(bd.tasks[i]);
    }
    size_t k = 0;
    for (; rc == 0 && k < bd.n; k++) {
        /* admit takes over a reference of its own, so that the list's
         * stays valid if it fails, and keeps t alive through the loops
         * below (a waiter's callback may forget a task that finishes). */
        aw_task_ref(bd.tasks[k]);
        if ((rc = aw__engine_admit(e, bd.tasks[k])) < 0)
            break;
    }
    if (rc < 0) {
        while (k-- > 0)
            unadmit(e, bd.tasks[k]);
        build_drop(&bd);
        return rc;
    }
    /* From here on nothing can fail: the create is whole. */
    for (size_t i = 0; i < bd.n; i++)
        kind_stats(e, bd.tasks[i]->kind)->created++;
    for (size_t i = 0; i < bd.n; i++) {
        link_new(bd.tasks[i]);
        /* pending, before dispatch may start it */
        aw__engine_notify(e, AW_TASK_CREATED, bd.tasks[i]);
    }
    /* A dependency that had already ended otherwise fails the task now
     * (its group hears it as of any child's end). */
    for (size_t i = 0; i < bd.n; i++) {
        aw_task_t *d = failed_dependency(bd.tasks[i]);
        if (d && bd.tasks[i]->state == AW_PENDING)
            fail_dependency(e, bd.tasks[i], d);
        if (d)
            aw_task_unref(d);
    }
    if (t->state == AW_PENDING && !task_blocked(t))
        aw__engine_runnable(e, t);
    *out = t;
    build_drop(&bd);                    /* the loops' references; the table keeps its own */
    return 0;
}

void aw_task_release(aw_engine_t *e, aw_task_t *t)
{
    if (!t->held)
        return;
    t->held = false;
    t->written = false;
    if (aw_task_done(t)) {
        aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + e->limits.retention_ms);
        aw__engine_arm(e);
    }
    /* No event: nothing about the task changed, its record was just
     * committed. A queued start reports running as usual. */
    if (t->kind->start_after_commit && t->state == AW_PENDING && !task_blocked(t)) {
        aw__engine_enqueue(e, t);
        dispatch(e, t->queue);
    }
}

void aw_task_discard(aw_engine_t *e, aw_task_t *t)
{
    if (!t->held || !t->listed)         /* retention may have forgotten it */
        return;
    aw_task_ref(t);
    aw_kind_stats_t *ks = kind_stats(e, t->kind);
    unqueue(e, t);                      /* wherever a pending task waits */
    /* A group is discarded with its children (one create, one batch):
     * it stops nothing itself. */
    if (t->state == AW_RUNNING && !t->kind->no_slot) {
        /* Only kinds without outside effects run while held, and their
         * cancel stops them at once (a sleep drops its wake-up). */
        t->stop_reason = AW_STOP_CANCEL;
        t->kind->cancel(e, t);
        t->queue->running--;
    }
    aw_heap_remove(&e->heap, &t->deadline);
    aw__engine_arm(e);
    if (aw_task_done(t))
        ks->finished[t->state]--;
    else
        e->unfinished--;
    ks->created--;
    e->stats.held[t->state]--;
    uncount(e, t);
    aw__engine_notify(e, AW_TASK_FORGOTTEN, t);
    aw__table_remove(&e->table, t);
    dispatch(e, t->queue);
    aw_task_unref(t);
}

aw_task_t *aw_task_find(const aw_engine_t *e, const char *id)
{
    aw_task_t *t = aw__table_find(&e->table, id);
    return t && !t->held ? t : NULL;
}

aw_task_t *aw_task_find_idempotent(const aw_engine_t *e, const char *key)
{
    return aw__table_find_key(&e->table, key);
}

aw_task_t *aw_task_after(const aw_engine_t *e, const char *after)
{
    aw_task_t *t = aw__table_after(&e->table, after);
    while (t && t->held)
        t = t->next;
    return t;
}

aw_task_t *aw_task_next(const aw_task_t *t)
{
    do
        t = t->next;
    while (t && t->held);
    return (aw_task_t *)t;
}

aw_task_t *aw_task_before(const aw_engine_t *e, const char *before)
{
    aw_task_t *t = aw__table_before(&e->table, before);
    while (t && t->held)
        t = t->prev;
    return t;
}

aw_task_t *aw_task_prev(const aw_task_t *t)
{
    do
        t = t->prev;
    while (t && t->held);
    return (aw_task_t *)t;
}

int aw_task_cancel(aw_engine_t *e, aw_task_t *t)
{
    switch (t->state) {
    case AW_PENDING:
        /* A task waiting out a retry's backoff waits as a delayed one
         * does: a cancel then ends it for good. */
        unqueue(e, t);
        if (aw_task_retry(t))
            aw_task_retry(t)->retry_at = 0;
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
    /* A child waits for its group: the group's result is made of it. */
    if (!aw_task_done(t) || aw_task_in_active_group(t))
        return AW_EACTIVE;
    aw_task_ref(t);
    aw_heap_remove(&e->heap, &t->deadline);
    aw__engine_arm(e);
    e->stats.held[t->state]--;
    uncount(e, t);
    aw__engine_notify(e, AW_TASK_FORGOTTEN, t);
    aw__table_remove(&e->table, t);
    /* Deleting a finished group deletes its children (all finished:
     * a group ends only once every child has). */
    aw_task_links_t *l = aw_task_links(t);
    for (uint32_t i = 0; l && i < l->nchildren; i++)
        if (l->children[i] && l->children[i]->listed)
            aw_task_forget(e, l->children[i]);
    aw_task_unref(t);
    return 0;
}

void aw_task_ask(aw_engine_t *e, aw_task_t *t, enum aw_ask what, bool on)
{
    if (what == AW_ASK_CANCEL)
        t->cancel_asked = on;
    else
        t->forget_asked = on;
    aw__engine_notify(e, AW_TASK_MARKED, t);
    /* A group's delete is its children's too, committed in one batch. */
    aw_task_links_t *l = aw_task_links(t);
    for (uint32_t i = 0; what == AW_ASK_FORGET && l && i < l->nchildren; i++)
        if (l->children[i] && l->children[i]->listed)
            aw_task_ask(e, l->children[i], what, on);
}

void aw__task_fail_unstarted(aw_engine_t *e, aw_task_t *t, aw_error_type_t type,
                             const char *message)
{
    finish(e, t, AW_FAILED, type, message, NULL);
}

int aw_task_output(const aw_task_t *t, int stream, const char **data, size_t *len)
{
    if (!t->kind->output)
        return AW_ENOOUTPUT;
    return t->kind->output(t, stream, data, len);
}

aw_output_watch_t *aw_task_watch_output(aw_task_t *t, aw_output_cb cb, void *arg)
{
    return t->kind->watch ? t->kind->watch(t, cb, arg) : NULL;
}

void aw_task_unwatch_output(aw_task_t *t, aw_output_watch_t *w)
{
    if (w && t->kind->unwatch)
        t->kind->unwatch(w);
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
        if (t->state == AW_RUNNING && !t->kind->no_slot &&
            stop_running(e, t, AW_STOP_INTERRUPT) == 1)
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
        /* A held task's retention starts at its release: the client that
         * created it must still find it. A notification still being
         * delivered keeps its task (delivery is at least once): it is
         * looked at again a minute later. A child waits for its group to
         * finish before it goes. */
        const aw_task_notify_t *n = aw_task_notify(t);
        if (n && n->state == AW_NOTIFY_PENDING)
            aw_heap_set(&e->heap, &t->deadline, now + RETENTION_RECHECK_MS);
        else if (!t->held && aw_task_forget(e, t) == AW_EACTIVE)
            aw_heap_set(&e->heap, &t->deadline,
                        now + (e->limits.retention_ms > 1000 ? e->limits.retention_ms : 1000));
        return;
    }
    if (t->state == AW_PENDING) {
        /* Its not_before has come (aw__engine_enqueue), a delayed start's
         * or a retry's backoff (aw__task_requeue_at). */
        t->queue->ndelayed--;
        if (aw_task_retry(t))
            aw_task_retry(t)->retry_at = 0;
        aw__engine_enqueue(e, t);
        dispatch(e, t->queue);
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
