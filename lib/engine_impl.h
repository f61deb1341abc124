/*
 * engine_impl.h — the engine's insides, shared by engine.c, waiter.c and
 * restore.c only. Nothing outside lib/ includes this.
 */
#ifndef AW_ENGINE_IMPL_H
#define AW_ENGINE_IMPL_H

#include <stddef.h>

#include "deadline_heap.h"
#include "engine.h"
#include "queue.h"
#include "task_id.h"
#include "task_table.h"

/* Tags in aw_heap_node_t.owner: which struct embeds the node. */
enum { AW_OWNER_TASK = 1, AW_OWNER_WAITER = 2 };

#define aw__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct aw_engine {
    struct event_base *base;
    struct event      *timer;       /* armed for the heap's earliest entry */
    int64_t            timer_at;    /* when it is armed for; INT64_MAX: not */
    aw_heap_t          heap;
    aw_task_table_t    table;
    aw_task_id_gen_t   ids;
    aw_queue_t        *queues;
    aw_engine_limits_t limits;
    uint64_t           unfinished;
    aw_engine_stats_t  stats;
    aw_waiter_t       *waiters;     /* every waiter not yet fired */
    struct aw_listener *listeners;  /* in the order they were added */
    size_t             nlisteners;
    void              *kind_state[AW_MAX_KINDS];   /* by stats.kinds index */
    bool               dispatching; /* inside dispatch() */
    bool               stopping;    /* aw_engine_interrupt_all was called */
    bool               restoring;   /* between begin_ and end_restore */
    aw_notify_check_fn notify_check;
    void              *notify_arg;
    struct aw_build   *build;       /* the create in progress (engine.c) */
    /* Dependents whose dependency ended, not yet told (engine.c
     * wake_dependents): a FIFO through aw_dep_edge_t.next. */
    struct aw_dep_edge *wake_head, *wake_tail;
    bool               waking;
};

struct aw_listener {
    aw_listener_cb cb;
    void          *arg;
};

/* Re-arms the libevent timer after the heap's head may have changed. */
void aw__engine_arm(aw_engine_t *e);
/* The queue or registered kind of that name; NULL when none. */
aw_queue_t      *aw__engine_find_queue(const aw_engine_t *e, const char *name);
aw_kind_stats_t *aw__engine_find_kind(const aw_engine_t *e, const char *name);
/* Starts q's pending tasks while it has room (restore.c). */
void aw__engine_dispatch(aw_engine_t *e, aw_queue_t *q);
/* Puts a pending task where it waits: its queue's heap, or, while its
 * not_before is still to come, the deadline heap (then the heap at that
 * time; task_due). The caller dispatches. Out of memory for the queue's
 * heap, it tries again a millisecond later. */
void aw__engine_enqueue(aw_engine_t *e, aw_task_t *t);
/* Tells every listener. */
void aw__engine_notify(aw_engine_t *e, aw_task_event_t ev, aw_task_t *t);
/* The one task constructor of create and restore: a task of kind ks in
 * queue q with these args (a JSON object, kept as compact text), refs 1,
 * not yet listed. The kind's prepare has not run. NULL on ENOMEM. */
aw_task_t *aw__task_new(const aw_kind_t *k, aw_queue_t *q, json_t *args,
                        int64_t timeout_ms);
/* The same with args already compact JSON text (a stored record). */
aw_task_t *aw__task_new_text(const aw_kind_t *k, aw_queue_t *q, const char *args,
                             int64_t timeout_ms);
/* Puts a constructed task into the table and counts it as held in its
 * state (unfinished too when active). Takes over the caller's reference.
 * Returns 0 or -ENOMEM (the task is then freed). */
int  aw__engine_admit(aw_engine_t *e, aw_task_t *t);
/* Finishes a task that was never started (restore: a kind that refuses
 * it now) as failed with this type and message. */
void aw__task_fail_unstarted(aw_engine_t *e, aw_task_t *t, aw_error_type_t type,
                             const char *message);
/* A pending task joins its queue at wall_at (its not_before; at once when
 * not later than now): a retry's backoff (engine.c). */
void aw__task_requeue_at(aw_engine_t *e, aw_task_t *t, int64_t wall_at);
/* A pending task whose blocks are gone: queued, or started at once when
 * its kind takes no slot (restore.c uses it at end_restore). */
void aw__engine_runnable(aw_engine_t *e, aw_task_t *t);
/* waiter.c: a task the waiters hang on has finished. */
void aw__waiters_task_done(aw_engine_t *e, aw_task_t *t);
/* waiter.c: a waiter's deadline has come. */
void aw__waiter_timeout(aw_engine_t *e, aw_heap_node_t *node);
/* waiter.c: drop every waiter without calling back (engine shutdown). */
void aw__waiters_abandon_all(aw_engine_t *e);

#endif
