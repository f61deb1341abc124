/*
 * engine.h — the task engine: creates, runs, cancels, times out and forgets
 * tasks on one libevent base.
 *
 * The engine owns every task, queue and waiter. It runs on the loop thread
 * only and never blocks: kinds start work and finish it from loop events.
 * All deadlines (sleeps, task timeouts, wait timeouts, retention) share one
 * deadline heap and one libevent timer.
 *
 * Errors follow errors.h: 0 or a negative code. A function that returns an
 * error has changed nothing and will call no callback.
 */
#ifndef AW_ENGINE_H
#define AW_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kind.h"
#include "task.h"
#include "waiter.h"

struct event_base;
typedef struct aw_engine aw_engine_t;

#define AW_MAX_KINDS 8

typedef struct aw_engine_limits {
    uint64_t max_tasks;         /* unfinished tasks; 0 = unlimited */
    int64_t  retention_ms;      /* finished tasks are forgotten after this */
} aw_engine_limits_t;

typedef struct aw_task_spec {
    const char *kind;
    json_t     *args;           /* an object, or NULL for {} */
    const char *name;           /* NULL: none */
    const char *queue;          /* NULL: "default" */
    int64_t     timeout_ms;     /* -1: none */
    const char *idempotency_key;/* NULL: none */
} aw_task_spec_t;

typedef struct aw_kind_stats {
    const aw_kind_t *kind;
    bool             enabled;
    uint64_t         created;
    uint64_t         finished[AW_NSTATES];
} aw_kind_stats_t;

typedef struct aw_engine_stats {
    uint64_t        held[AW_NSTATES];   /* tasks held, by state */
    uint64_t        waiters;            /* waiters not yet fired */
    size_t          nkinds;
    aw_kind_stats_t kinds[AW_MAX_KINDS];
} aw_engine_stats_t;

/* Returns NULL on allocation failure. The "default" queue exists from the
 * start, unlimited. */
aw_engine_t *aw_engine_new(struct event_base *base, const aw_engine_limits_t *lim);
/* Frees everything. Waiters still open are abandoned (never called): the
 * caller answers its clients first. */
void aw_engine_free(aw_engine_t *e);
struct event_base *aw_engine_base(const aw_engine_t *e);

/* Adds a queue, or sets the concurrency of an existing one (0 = unlimited).
 * Returns 0 or -ENOMEM. */
int  aw_engine_set_queue(aw_engine_t *e, const char *name, uint32_t concurrency);
/* Registers a kind. Returns 0, -ENOSPC when AW_MAX_KINDS are registered. */
int  aw_engine_add_kind(aw_engine_t *e, const aw_kind_t *k, bool enabled);
bool aw_engine_kind_enabled(const aw_engine_t *e, const char *name);
/* Configuration reload: enable or disable a registered kind (its counters
 * stay), and new limits (they apply to creates and finishes from now on).
 * aw_engine_enable_kind returns 0 or AW_EKIND when no such kind. */
int  aw_engine_enable_kind(aw_engine_t *e, const char *name, bool enabled);
void aw_engine_set_limits(aw_engine_t *e, const aw_engine_limits_t *lim);
void aw_engine_stats(const aw_engine_t *e, aw_engine_stats_t *out);
/* The queues, for reports: follow ->next from the first. */
const struct aw_queue *aw_engine_queues(const aw_engine_t *e);
/* The observer sees every state change of every task, in the order they
 * happen, creation included: a new task is reported pending, and one that
 * gets a free slot at once is then reported running (and, if its kind
 * finishes it inside start, e.g. a zero-second sleep, in its final state
 * too), all inside aw_task_create. The task's fields are up to date when cb
 * runs (started_at, result, error). cb runs inside the engine: it may read
 * t and take a reference (aw_task_ref), but it may not create, cancel or
 * forget tasks. Forgetting a task is not a state change and is not
 * reported. One observer per engine; cb NULL removes it. */
typedef void (*aw_observer_cb)(void *arg, const aw_task_t *t);
void aw_engine_set_observer(aw_engine_t *e, aw_observer_cb cb, void *arg);
/* Processes every deadline that is due now. The libevent timer calls it;
 * unit tests call it after moving the fake clock. */
void aw_engine_run_due(aw_engine_t *e);

/* Creates a task and starts it if its queue has a free slot.
 * Errors: AW_EKIND, AW_EINVAL (err says what), AW_EQUEUE, AW_EDISABLED,
 * AW_EFORBIDDEN, AW_ECAPACITY, -ENOMEM. The task is owned by the engine;
 * *out stays valid until control returns to the loop. */
int  aw_task_create(aw_engine_t *e, const aw_task_spec_t *spec,
                    aw_task_t **out, char *err, size_t errlen);
aw_task_t *aw_task_find(const aw_engine_t *e, const char *id);
aw_task_t *aw_task_find_idempotent(const aw_engine_t *e, const char *key);
/* The first task after `after` in creation order (NULL: the very first),
 * and the one after t. For paging GET /v1/tasks. */
aw_task_t *aw_task_after(const aw_engine_t *e, const char *after);
aw_task_t *aw_task_next(const aw_task_t *t);

/* Cancels. Returns 0 when the task is cancelled before return, 1 when the
 * cancellation is under way (it finishes later), AW_EDONE when it had
 * already finished. */
int  aw_task_cancel(aw_engine_t *e, aw_task_t *t);
/* Forgets a finished task. Returns 0 or AW_EACTIVE. */
int  aw_task_forget(aw_engine_t *e, aw_task_t *t);

/* Reads back a task object that aw_task_write_json wrote (persistence at
 * restart): a pending task is queued again, a running one ends failed with
 * error type "interrupted" (nothing of its run survived), a finished one
 * is kept until retention_seconds after its finished_at. An unknown queue
 * is created, unlimited. New ids sort after every restored one.
 * Returns 0 (with *out set when out is not NULL), AW_EINVAL (err says
 * what), AW_EKIND, or -ENOMEM; on error nothing was added. */
int  aw_engine_restore(aw_engine_t *e, json_t *obj, aw_task_t **out,
                       char *err, size_t errlen);

/* Daemon shutdown: starts no more tasks, and stops every running one; each
 * ends failed with error type "interrupted" (exec jobs after their group
 * is gone: SIGTERM, then SIGKILL after the grace). Pending tasks stay
 * pending. Returns how many are still stopping; await them with aw_wait. */
size_t aw_engine_interrupt_all(aw_engine_t *e);

/* For kinds: schedule t's wake-up (monotonic ms); the kind's `wake` is
 * called then (unless the task's own timeout comes first). */
int  aw_task_set_wake(aw_engine_t *e, aw_task_t *t, int64_t mono_ms);
/* For kinds: finish a running task. result is compact JSON text that the
 * task takes over (NULL: no result). */
void aw_task_succeed(aw_engine_t *e, aw_task_t *t, char *result);
void aw_task_fail(aw_engine_t *e, aw_task_t *t, aw_error_type_t type,
                  const char *message, char *result);
/* For kinds whose cancel returned 1: the stop has completed. The final
 * state (cancelled or timed_out) follows t->stop_reason. */
void aw_task_finish_cancelled(aw_engine_t *e, aw_task_t *t, char *result);

#endif
