/*
 * waiter.c — await one or many tasks (see waiter.h).
 *
 * Each waiter carries one link per distinct task; the link of a task not yet
 * done sits in that task's list of waiters, so finishing a task touches only
 * the waiters that wait for it. A waiter fires once, then is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_impl.h"
#include "waiter.h"

typedef struct aw_wait_link {
    struct aw_wait_link *prev, *next;   /* in task->waiters */
    aw_waiter_t         *w;
    aw_task_t           *task;          /* referenced */
    bool                 linked;
} aw_wait_link_t;

struct aw_waiter {
    aw_engine_t    *e;
    aw_waiter_t    *prev, *next;        /* engine's list */
    aw_heap_node_t  deadline;
    aw_wait_cb      cb;
    void           *arg;
    uint8_t         rw;
    bool            cancel_on_timeout;
    bool            cancelling;         /* timed out; waiting for the stops */
    bool            timing_out;         /* inside waiter_timeout */
    size_t          n, remaining, exceptions;
    aw_wait_link_t  links[];
};

int aw_return_when_parse(const char *s)
{
    if (strcmp(s, "ALL_COMPLETED") == 0)   return AW_RETURN_ALL;
    if (strcmp(s, "FIRST_COMPLETED") == 0) return AW_RETURN_FIRST;
    if (strcmp(s, "FIRST_EXCEPTION") == 0) return AW_RETURN_FIRST_EXCEPTION;
    return -1;
}

static bool condition_holds(int rw, size_t n, size_t remaining, size_t exceptions)
{
    switch (rw) {
    case AW_RETURN_FIRST:           return remaining < n;
    case AW_RETURN_FIRST_EXCEPTION: return remaining == 0 || exceptions > 0;
    default:                        return remaining == 0;
    }
}

static bool satisfied(const aw_waiter_t *w)
{
    if (w->cancelling)
        return w->remaining == 0;
    return condition_holds(w->rw, w->n, w->remaining, w->exceptions);
}

static void unlink_link(aw_wait_link_t *l)
{
    if (!l->linked)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        l->task->waiters = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    l->linked = false;
}

/* Detaches w from everything and frees it, calling back first if asked. */
static void finish_waiter(aw_waiter_t *w, bool call_back)
{
    aw_engine_t *e = w->e;
    for (size_t i = 0; i < w->n; i++)
        unlink_link(&w->links[i]);
    aw_heap_remove(&e->heap, &w->deadline);
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    e->stats.waiters--;
    if (call_back)
        w->cb(w, w->arg);
    for (size_t i = 0; i < w->n; i++)
        aw_task_unref(w->links[i].task);
    free(w);
}

/* Counts distinct tasks; writes them, deduplicated, into uniq. */
static size_t dedupe(aw_task_t *const *tasks, size_t n, aw_task_t **uniq)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && uniq[j] != tasks[i])
            j++;
        if (j == m)
            uniq[m++] = tasks[i];
    }
    return m;
}

static void count(aw_task_t **t, size_t n, size_t *remaining, size_t *exceptions)
{
    *remaining = *exceptions = 0;
    for (size_t i = 0; i < n; i++) {
        if (!aw_task_done(t[i]))
            (*remaining)++;
        else if (t[i]->state != AW_SUCCEEDED)
            (*exceptions)++;
    }
}

int aw_wait(aw_engine_t *e, aw_task_t *const *tasks, size_t n,
            aw_return_when_t rw, int64_t timeout_ms, bool cancel_on_timeout,
            aw_wait_cb cb, void *arg, aw_waiter_t **out)
{
    aw_task_t **uniq = malloc(n * sizeof *uniq);
    if (!uniq)
        return -ENOMEM;
    n = dedupe(tasks, n, uniq);
    size_t remaining, exceptions;
    count(uniq, n, &remaining, &exceptions);
    bool cancelling = false;
    if (condition_holds(rw, n, remaining, exceptions)) {
        free(uniq);
        return 1;
    }
    if (timeout_ms == 0) {
        if (!cancel_on_timeout) {
            free(uniq);
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            aw_task_cancel(e, uniq[i]);     /* AW_EDONE for done ones: fine */
        count(uniq, n, &remaining, &exceptions);
        if (remaining == 0) {
            free(uniq);
            return 1;
        }
        cancelling = true;
        timeout_ms = -1;
    }

    aw_waiter_t *w = calloc(1, sizeof *w + n * sizeof w->links[0]);
    if (!w) {
        free(uniq);
        return -ENOMEM;
    }
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    w->rw = (uint8_t)rw;
    w->cancel_on_timeout = cancel_on_timeout;
    w->cancelling = cancelling;
    w->n = n;
    w->remaining = remaining;
    w->exceptions = exceptions;
    w->deadline.owner = AW_OWNER_WAITER;
    if (timeout_ms > 0 &&
        aw_heap_set(&e->heap, &w->deadline, aw_clock_mono_ms() + timeout_ms) < 0) {
        free(w);
        free(uniq);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        aw_wait_link_t *l = &w->links[i];
        aw_task_t *t = uniq[i];
        l->w = w;
        l->task = t;
        aw_task_ref(t);
        if (!aw_task_done(t)) {
            l->next = t->waiters;
            if (t->waiters)
                t->waiters->prev = l;
            t->waiters = l;
            l->linked = true;
        }
    }
    free(uniq);
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
    e->stats.waiters++;
    aw__engine_arm(e);
    *out = w;
    return 0;
}

void aw_wait_abandon(aw_waiter_t *w)
{
    finish_waiter(w, false);
}

void aw__waiters_task_done(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    aw_wait_link_t *l;
    while ((l = t->waiters)) {
        aw_waiter_t *w = l->w;
        unlink_link(l);
        w->remaining--;
        if (t->state != AW_SUCCEEDED)
            w->exceptions++;
        /* During its own timeout the waiter decides after its loop. */
        if (!w->timing_out && satisfied(w))
            finish_waiter(w, true);
    }
}

void aw__waiter_timeout(aw_engine_t *e, aw_heap_node_t *node)
{
    aw_waiter_t *w = aw__container_of(node, aw_waiter_t, deadline);
    if (w->cancel_on_timeout) {
        w->cancelling = true;
        w->timing_out = true;
        /* Cancelling may finish tasks at once, which updates w's counts. */
        for (size_t i = 0; i < w->n; i++)
            if (!aw_task_done(w->links[i].task))
                aw_task_cancel(e, w->links[i].task);
        w->timing_out = false;
        if (w->remaining > 0)
            return;                     /* the stops finish later */
    }
    finish_waiter(w, true);
}

void aw__waiters_abandon_all(aw_engine_t *e)
{
    while (e->waiters)
        finish_waiter(e->waiters, false);
}
