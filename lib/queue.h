/*
 * queue.h — a named queue: a concurrency limit and a FIFO of pending tasks.
 *
 * Tasks beyond the limit stay pending in arrival order; the engine calls
 * aw__queue_pop when a slot frees. Concurrency 0 means unlimited. The engine
 * owns the queues; a queue never owns its tasks (they are linked through
 * aw_task_t.queue_next).
 */
#ifndef AW_QUEUE_H
#define AW_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

typedef struct aw_queue {
    char            *name;
    uint32_t         concurrency;   /* 0 = unlimited */
    uint32_t         running;
    uint64_t         npending;
    uint64_t         held;          /* tasks of this queue held, any state */
    aw_task_t       *head, *tail;   /* pending FIFO */
    struct aw_queue *next;          /* engine's list */
} aw_queue_t;

aw_queue_t *aw__queue_new(const char *name, uint32_t concurrency);
void        aw__queue_free(aw_queue_t *q);
int         aw__queue_has_slot(const aw_queue_t *q);
void        aw__queue_push(aw_queue_t *q, aw_task_t *t);
aw_task_t  *aw__queue_pop(aw_queue_t *q);
/* Removes a pending task from anywhere in the FIFO (cancellation). O(n)
 * in the queue's length, which only cancel of a pending task pays. */
void        aw__queue_remove(aw_queue_t *q, aw_task_t *t);

#endif
