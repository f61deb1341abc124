/*
 * deadline_heap.h — a binary min-heap of deadlines, one entry per owner.
 *
 * Why not one libevent timer per task: a struct event costs about 150 bytes a
 * task with its heap slot; a million sleeping tasks would need 150 MB for
 * timers alone. Here an entry is 16 bytes, the owner embeds an 8-byte node
 * that remembers its slot (so removal and rescheduling are O(log n)), and the
 * engine arms a single libevent timer for the earliest deadline.
 *
 * The heap owns only its array. Owners (tasks, waiters) embed an
 * aw_heap_node_t and must remove it before they are freed.
 */
#ifndef AW_DEADLINE_HEAP_H
#define AW_DEADLINE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aw_heap_node {
    uint32_t slot;          /* 1-based index in the heap; 0 = not scheduled */
    uint8_t  owner;         /* tag the engine uses to find the container */
} aw_heap_node_t;

typedef struct aw_heap_entry {
    int64_t         when;
    aw_heap_node_t *node;
} aw_heap_entry_t;

typedef struct aw_heap {
    aw_heap_entry_t *entries;   /* entries[0] unused: 1-based */
    uint32_t         len;
    uint32_t         cap;
} aw_heap_t;

void aw_heap_init(aw_heap_t *h);
void aw_heap_close(aw_heap_t *h);
/* Schedules node at `when`, or moves it there if already scheduled.
 * Returns 0 or -ENOMEM (the node is then unchanged). */
int  aw_heap_set(aw_heap_t *h, aw_heap_node_t *node, int64_t when);
/* Unschedules node; a no-op if it is not scheduled. */
void aw_heap_remove(aw_heap_t *h, aw_heap_node_t *node);
/* The earliest entry, or NULL when empty. */
const aw_heap_entry_t *aw_heap_peek(const aw_heap_t *h);
static inline bool aw_heap_scheduled(const aw_heap_node_t *n) { return n->slot != 0; }

#endif
