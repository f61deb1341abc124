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
#include "task_record.h"
#include "waiter.h"

struct event_base;
typedef struct aw_engine aw_engine_t;

#define AW_MAX_KINDS 8

typedef struct aw_engine_limits {
    uint64_t max_tasks;         /* unfinished tasks; 0 = unlimited */
    int64_t  retention_ms;      /* finished tasks are forgotten after this */
    /* The bytes every held task takes together (see aw_task_bytes):
     * a create is refused with AW_EBUDGET when it would go over; 0 =
     * unlimited. A kind counts what it will keep from the create on when
     * it can (sleep); output that arrives later (exec) may take the total
     * over by what the running jobs keep. */
    uint64_t max_task_bytes;
    /* The most a task's result may be (a sleep's
     * args.result is refused at create, AW_ETOOBIG; an exec job keeps at
     * most this many bytes of stdout and stderr together); 0 = unlimited. */
    uint64_t max_result_bytes;
    /* The most tasks one group may hold, its nested groups' children
     * counted ([tasks] max_group_tasks); 0 = unlimited. */
    uint64_t max_group_tasks;
} aw_engine_limits_t;

typedef struct aw_task_spec {
    const char *kind;
    json_t     *args;           /* an object, or NULL for {} */
    const char *name;           /* NULL: none */
    const char *queue;          /* NULL: "default" */
    int64_t     timeout_ms;     /* -1: none */
    const char *idempotency_key;/* NULL: none */
    bool        hold;           /* durable store: the create awaits its
                                   commit (see aw_task_release) */
    json_t     *notify;         /* a completion notification (webhook) to
                                   send; NULL or JSON null: none */
    int         priority;       /* AW_PRIORITY_MIN..MAX (queue.h); 0 default */
    int64_t     not_before;     /* wall ms: stays pending until then; 0: none */
    json_t     *retry;          /* a retry policy (retry.h); NULL or JSON
                                   null: one attempt */
    json_t     *after;          /* dependencies: an array of task ids
                                   (task_links.h); NULL or JSON null: none */
} aw_task_spec_t;

typedef struct aw_kind_stats {
    const aw_kind_t *kind;
    bool             enabled;
    uint64_t         created;
    uint64_t         finished[AW_NSTATES];
    uint64_t         held;      /* tasks of this kind held now */
} aw_kind_stats_t;

typedef struct aw_engine_stats {
    uint64_t        held[AW_NSTATES];   /* tasks held, by state */
    uint64_t        waiters;            /* waiters not yet fired */
    uint64_t        held_bytes;         /* every held task's aw_task_bytes */
    size_t          nkinds;
    aw_kind_stats_t kinds[AW_MAX_KINDS];
    uint64_t        retries;            /* attempts sent back to pending */
} aw_engine_stats_t;

/* Returns NULL on allocation failure. The "default" queue exists from the
 * start, unlimited. */
aw_engine_t *aw_engine_new(struct event_base *base, const aw_engine_limits_t *lim);
/* Frees everything, each kind's state last. Waiters still open are
 * abandoned (never called): the caller answers its clients first. */
void aw_engine_free(aw_engine_t *e);
struct event_base *aw_engine_base(const aw_engine_t *e);

/* Adds a queue, or sets the concurrency of an existing one (0 = unlimited).
 * Returns 0 or -ENOMEM. */
int  aw_engine_set_queue(aw_engine_t *e, const char *name, uint32_t concurrency);
/* Registers a kind and runs its init (a kind registered again only gets
 * the new `enabled`). Returns 0, -ENOSPC when AW_MAX_KINDS are
 * registered, or what init returned. */
int  aw_engine_add_kind(aw_engine_t *e, const aw_kind_t *k, bool enabled);
bool aw_engine_kind_enabled(const aw_engine_t *e, const char *name);
/* The state the kind's init made in this engine; NULL when none. */
void *aw_engine_kind_state(const aw_engine_t *e, const aw_kind_t *k);
/* Hands a kind its configuration (the kind's configure). Returns 0,
 * AW_EKIND when no such kind, or the kind's error (err set). */
int  aw_engine_configure_kind(aw_engine_t *e, const char *name, const void *config,
                              char *err, size_t errlen);
/* Configuration reload: enable or disable a registered kind (its counters
 * stay), and new limits (they apply to creates and finishes from now on).
 * aw_engine_enable_kind returns 0 or AW_EKIND when no such kind. */
int  aw_engine_enable_kind(aw_engine_t *e, const char *name, bool enabled);
void aw_engine_set_limits(aw_engine_t *e, const aw_engine_limits_t *lim);
/* The limits in force (kinds read max_result_bytes at prepare). */
const aw_engine_limits_t *aw_engine_limits(const aw_engine_t *e);
void aw_engine_stats(const aw_engine_t *e, aw_engine_stats_t *out);
/* The queues, for reports: follow ->next from the first. */
const struct aw_queue *aw_engine_queues(const aw_engine_t *e);
/* The queue of that name, or NULL. */
const struct aw_queue *aw_engine_queue(const aw_engine_t *e, const char *name);
/* Pauses a queue (it starts nothing new; its running tasks go on) or
 * resumes it (its pending tasks start now, as slots allow). Persisting
 * the switch is the caller's (store.h, aw_store_queue_set). Returns 0 or
 * AW_ENOQUEUE. */
int  aw_engine_pause_queue(aw_engine_t *e, const char *name, bool paused);

/* Completion notifications (webhooks): the check a create's
 * spec->notify must pass, installed by their deliverer (notify.h). It
 * returns 0 with *target set to the compact JSON the task keeps (freed by
 * the engine), AW_EINVAL or AW_EFORBIDDEN with err set, or -ENOMEM.
 * Without one, a create that asks for a notification is AW_EFORBIDDEN. */
typedef int (*aw_notify_check_fn)(void *arg, json_t *notify, char **target,
                                  char *err, size_t errlen);
void aw_engine_set_notify_check(aw_engine_t *e, aw_notify_check_fn fn, void *arg);

/* Listeners hear about every task, in the order things happen:
 *   AW_TASK_CREATED    a new task (pending; held when its create awaits a
 *                      commit). A task that gets a free slot at once is
 *                      then reported CHANGED running, and, if its kind
 *                      finishes it inside start (a zero-second sleep),
 *                      CHANGED again in its final state, all inside
 *                      aw_task_create.
 *   AW_TASK_CHANGED    its state or a field changed (started_at, result,
 *                      error).
 *   AW_TASK_MARKED     a durability mark of aw_task_ask changed: no state
 *                      change, but what the store writes for it did.
 *   AW_TASK_FORGOTTEN  it leaves the table: DELETE, retention, or a held
 *                      create that was discarded (t->held still set).
 * Tasks read back by aw_engine_restore are not reported, except when the
 * restart changes them (a running task that ends interrupted).
 * The task's fields are up to date when cb runs. cb runs inside the
 * engine: it may read t and take a reference (aw_task_ref), but it may not
 * create, cancel or forget tasks. Listeners are called in the order they
 * were added. */
typedef enum aw_task_event {
    AW_TASK_CREATED,
    AW_TASK_CHANGED,
    AW_TASK_MARKED,
    AW_TASK_FORGOTTEN,
} aw_task_event_t;
typedef void (*aw_listener_cb)(void *arg, aw_task_event_t ev, aw_task_t *t);
/* Returns 0 or -ENOMEM. Removing one that was not added does nothing. */
int  aw_engine_listen(aw_engine_t *e, aw_listener_cb cb, void *arg);
void aw_engine_unlisten(aw_engine_t *e, aw_listener_cb cb, void *arg);
/* Processes every deadline that is due now. The libevent timer calls it;
 * unit tests call it after moving the fake clock. */
void aw_engine_run_due(aw_engine_t *e);

/* Creates a task and starts it if its queue has a free slot.
 * With spec->hold, the task is created held: it takes its id and
 * idempotency key, but aw_task_find and listings do not see it, and a kind
 * with start_after_commit is not queued, until aw_task_release; or it is
 * removed again by aw_task_discard.
 * A spec->not_before still to come keeps the task pending, outside its
 * queue's heap, until then (one entry in the deadline heap); then it
 * joins the heap in its priority's place, as if it had just been created
 * but ordered by its id.
 * Errors: AW_EKIND, AW_EINVAL (err says what: a bad priority too),
 * AW_EQUEUE, AW_EDISABLED,
 * AW_EFORBIDDEN (an allow-list: the kind's, or a notification's),
 * AW_ETOOBIG (a result over max_result_bytes), AW_ECAPACITY,
 * AW_EBUDGET (max_task_bytes would be passed), AW_EDEPENDENCY (spec->after
 * names no task), -ENOMEM. A group (kind_group.c) is created with all its
 * children, or none of them is: every check above applies to each child,
 * and max_tasks and max_task_bytes to them all together. A task with
 * `after` stays pending, in no queue, until its dependencies succeeded
 * (task_links.h). The task is owned by the engine;
 * *out stays valid until control returns to the loop. */
int  aw_task_create(aw_engine_t *e, const aw_task_spec_t *spec,
                    aw_task_t **out, char *err, size_t errlen);
/* Its creation is committed: it becomes visible and, if it was not
 * queued, is queued now. A no-op for a task that is not held. */
void aw_task_release(aw_engine_t *e, aw_task_t *t);
/* Its creation could not be committed: it is stopped without a trace
 * (listeners hear FORGOTTEN with t->held set; no counter remembers it)
 * and leaves the table. Only for held tasks. */
void aw_task_discard(aw_engine_t *e, aw_task_t *t);
aw_task_t *aw_task_find(const aw_engine_t *e, const char *id);
/* Finds held tasks too: a repeated create must wait for the first. */
aw_task_t *aw_task_find_idempotent(const aw_engine_t *e, const char *key);
/* The first task after `after` in creation order (NULL: the very first),
 * and the one after t. For paging GET /v1/tasks; they skip held tasks. */
aw_task_t *aw_task_after(const aw_engine_t *e, const char *after);
aw_task_t *aw_task_next(const aw_task_t *t);
/* The same walk newest first: the last task before `before` in creation
 * order (NULL: the very last), and the one before t; held tasks skipped. */
aw_task_t *aw_task_before(const aw_engine_t *e, const char *before);
aw_task_t *aw_task_prev(const aw_task_t *t);
/* The bytes a task is counted for in held_bytes: its record, args,
 * result, name, key and error strings, and what its kind keeps for it
 * (an exec job's output buffers). Allocator overhead and the indexes are
 * not counted. Taken at admission and again when the task finishes, and
 * given back when it leaves the table. */
uint64_t aw_task_bytes(const aw_task_t *t);

/* Cancels. Returns 0 when the task is cancelled before return, 1 when the
 * cancellation is under way (it finishes later), AW_EDONE when it had
 * already finished. */
int  aw_task_cancel(aw_engine_t *e, aw_task_t *t);
/* Forgets a finished task, and a group's children with it. Returns 0 or
 * AW_EACTIVE (t is active, or is a child whose group is). */
int  aw_task_forget(aw_engine_t *e, aw_task_t *t);
/* Marks a cancel or a delete that must be committed before it is done
 * (on = true), or drops the mark; listeners hear MARKED. The store
 * writes the task as it will be afterwards and carries the operation out
 * at the commit (store.h). */
enum aw_ask { AW_ASK_CANCEL, AW_ASK_FORGET };
void aw_task_ask(aw_engine_t *e, aw_task_t *t, enum aw_ask what, bool on);

/* Output of kinds that keep it (exec). aw_task_output returns 0 with the
 * bytes of one stream kept so far (valid until control returns to the
 * loop, not NUL-terminated; final once aw_task_done(t)), AW_ENOOUTPUT when
 * the kind keeps none, or AW_EINVAL for a bad stream number.
 * aw_task_watch_output: cb(arg) is called from the loop, never from inside
 * watch or unwatch: soon after the watch starts, after new bytes arrived,
 * and when the task ends (several events in one loop turn make one call).
 * It carries no data: the watcher reads with aw_task_output from its own
 * offset and stops when aw_task_done(t) and it has sent everything. A
 * watch holds a reference on t; every watch must be unwatched exactly
 * once. Returns NULL when the kind keeps no output, or on ENOMEM. */
int  aw_task_output(const aw_task_t *t, int stream, const char **data, size_t *len);
aw_output_watch_t *aw_task_watch_output(aw_task_t *t, aw_output_cb cb, void *arg);
void aw_task_unwatch_output(aw_task_t *t, aw_output_watch_t *w);

/* Reads back a stored task (persistence at restart; the store calls it
 * for every row, in id order, between aw_engine_begin_restore and
 * aw_engine_end_restore):
 *   pending   queued again; it runs after end_restore, in its queue's
 *             order (priority, then id), not before its not_before;
 *   running   nothing of its run survived: it ends failed "interrupted"
 *             (cancelled or timed_out when a cancel or its timeout was
 *             already stopping it), finished_at now;
 *   finished  kept, and forgotten retention after its finished_at.
 * A pending task whose kind refuses it now (disabled, or no longer on the
 * allow-list) ends failed "interrupted" with a message saying why,
 * instead of running. An unknown queue is created, unlimited. New ids
 * sort after every restored one. Returns 0 (with *out set when out is not
 * NULL), AW_EINVAL (err says what), AW_EKIND (unknown kind), or -ENOMEM;
 * on error nothing was added. */
int  aw_engine_restore(aw_engine_t *e, const aw_task_record_t *rec, aw_task_t **out,
                       char *err, size_t errlen);
void aw_engine_begin_restore(aw_engine_t *e);
void aw_engine_end_restore(aw_engine_t *e);

/* Daemon shutdown: starts no more tasks, and stops every running one
 * (groups aside: they end by their mode as their children do); each
 * ends failed with error type "interrupted" (exec jobs after their group
 * is gone: SIGTERM, then SIGKILL after the grace). Pending tasks stay
 * pending. Returns how many are still stopping; await them with aw_wait. */
size_t aw_engine_interrupt_all(aw_engine_t *e);

/* For the owner of a field the engine keeps but does not change (a
 * notification's delivery state): listeners hear CHANGED, so that the
 * store writes it and event streams show it. A no-op for a task that
 * has left the table. */
void aw_task_changed(aw_engine_t *e, aw_task_t *t);

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
