/*
 * queue.c — a named concurrency limit with a FIFO of pending tasks
 * (see queue.h).
 */
#include <stdlib.h>
#include <string.h>

#include "queue.h"

aw_queue_t *aw__queue_new(const char *name, uint32_t concurrency)
{
    aw_queue_t *q = calloc(1, sizeof *q);
    if (!q || !(q->name = strdup(name))) {
        free(q);
        return NULL;
    }
    q->concurrency = concurrency;
    return q;
}

void aw__queue_free(aw_queue_t *q)
{
    if (q) {
        free(q->name);
        free(q);
    }
}

int aw__queue_has_slot(const aw_queue_t *q)
{
    return q->concurrency == 0 || q->running < q->concurrency;
}

void aw__queue_push(aw_queue_t *q, aw_task_t *t)
{
    t->queue_next = NULL;
    if (q->tail)
        q->tail->queue_next = t;
    else
        q->head = t;
    q->tail = t;
    q->npending++;
}

aw_task_t *aw__queue_pop(aw_queue_t *q)
{
    aw_task_t *t = q->head;
    if (!t)
        return NULL;
    q->head = t->queue_next;
    if (!q->head)
        q->tail = NULL;
    t->queue_next = NULL;
    q->npending--;
    return t;
}

void aw__queue_remove(aw_queue_t *q, aw_task_t *t)
{
    aw_task_t **pp = &q->head, *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (!*pp)
        return;
    *pp = t->queue_next;
    if (q->tail == t)
        q->tail = prev;
    t->queue_next = NULL;
    q->npending--;
}
