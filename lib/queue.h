/*
 * queue.h — a named queue: a concurrency limit, a pause switch and a
 * priority heap of pending tasks.
 *
 * Tasks beyond the limit stay pending, ordered by priority (higher first)
 * and then by creation (task id order); the engine calls aw__queue_pop
 * when a slot frees. Concurrency 0 means unlimited.
 *
 * Why a binary heap and not a FIFO per priority: priorities are 201
 * values, and a million pending tasks spread over them must cost
 * O(log n) to push, pop and remove, with removal (a cancel) never a
 * search. Each task keeps its 1-based place in the heap (queue_slot), as
 * the deadline heap's owners do, so removal is O(log n). An entry carries
 * the task's order key, so that sifting rarely reads the tasks
 * themselves: only two tasks of the same priority created in the same
 * millisecond compare their ids.
 *
 * The engine owns the queues; a queue never owns its tasks, only the
 * array of entries. Tasks whose not_before has not come yet are not in
 * the heap (the engine's deadline heap holds them, ndelayed counts them).
 */
#ifndef AW_QUEUE_H
#define AW_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

#define AW_PRIORITY_MIN (-100)
#define AW_PRIORITY_MAX 100

typedef struct aw_queue_entry {
    uint64_t   key;                 /* priority, then creation time (see queue.c) */
    aw_task_t *task;
} aw_queue_entry_t;

typedef struct aw_queue {
    char             *name;
    uint32_t          concurrency;  /* 0 = unlimited */
    uint32_t          running;
    uint64_t          npending;     /* in the heap: runnable, waiting for a slot */
    uint64_t          ndelayed;     /* pending, not_before still to come */
    uint64_t          held;         /* tasks of this queue held, any state */
    aw_queue_entry_t *heap;         /* heap[0] unused: 1-based */
    uint64_t          cap;
    bool              paused;       /* starts nothing new (POST .../pause) */
    struct aw_queue  *next;         /* engine's list */
} aw_queue_t;

aw_queue_t *aw__queue_new(const char *name, uint32_t concurrency);
void        aw__queue_free(aw_queue_t *q);
int         aw__queue_has_slot(const aw_queue_t *q);
/* Adds a pending task (t->priority and t->id must be set). Returns 0 or
 * -ENOMEM (t is then not queued). */
int         aw__queue_push(aw_queue_t *q, aw_task_t *t);
/* The task that starts next, without removing it; NULL when empty. */
aw_task_t  *aw__queue_peek(const aw_queue_t *q);
aw_task_t  *aw__queue_pop(aw_queue_t *q);
/* Removes a pending task from anywhere in the heap (cancellation), in
 * O(log n); a no-op for a task that is not in it. */
void        aw__queue_remove(aw_queue_t *q, aw_task_t *t);
static inline bool aw__queue_contains(const aw_task_t *t) { return t->queue_slot != 0; }

#endif
