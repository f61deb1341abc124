/*
 * deadline_heap.c — binary min-heap of deadlines (see deadline_heap.h).
 * Every move writes the entry's new slot back into its owner's node, which
 * is what makes removal O(log n) without searching.
 */
#include <errno.h>
#include <stdlib.h>

#include "deadline_heap.h"

void aw_heap_init(aw_heap_t *h)
{
    h->entries = NULL;
    h->len = h->cap = 0;
}

void aw_heap_close(aw_heap_t *h)
{
    for (uint32_t i = 1; i <= h->len; i++)
        h->entries[i].node->slot = 0;
    free(h->entries);
    aw_heap_init(h);
}

static void place(aw_heap_t *h, uint32_t i, aw_heap_entry_t e)
{
    h->entries[i] = e;
    e.node->slot = i;
}

static void sift_up(aw_heap_t *h, uint32_t i)
{
    aw_heap_entry_t e = h->entries[i];
    while (i > 1 && h->entries[i / 2].when > e.when) {
        place(h, i, h->entries[i / 2]);
        i /= 2;
    }
    place(h, i, e);
}

static void sift_down(aw_heap_t *h, uint32_t i)
{
    aw_heap_entry_t e = h->entries[i];
    for (;;) {
        uint32_t c = i * 2;
        if (c > h->len)
            break;
        if (c < h->len && h->entries[c + 1].when < h->entries[c].when)
            c++;
        if (h->entries[c].when >= e.when)
            break;
        place(h, i, h->entries[c]);
        i = c;
    }
    place(h, i, e);
}

int aw_heap_set(aw_heap_t *h, aw_heap_node_t *node, int64_t when)
{
    if (node->slot) {
        aw_heap_entry_t *e = &h->entries[node->slot];
        int64_t old = e->when;
        e->when = when;
        if (when < old)
            sift_up(h, node->slot);
        else
            sift_down(h, node->slot);
        return 0;
    }
    if (h->len + 1 >= h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        aw_heap_entry_t *p = realloc(h->entries, (size_t)cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        h->entries = p;
        h->cap = cap;
    }
    h->len++;
    place(h, h->len, (aw_heap_entry_t){ .when = when, .node = node });
    sift_up(h, h->len);
    return 0;
}

void aw_heap_remove(aw_heap_t *h, aw_heap_node_t *node)
{
    uint32_t i = node->slot;
    if (!i)
        return;
    node->slot = 0;
    aw_heap_entry_t last = h->entries[h->len--];
    if (i > h->len)
        return;                     /* it was the last entry */
    int64_t old = h->entries[i].when;
    place(h, i, last);
    if (last.when < old)
        sift_up(h, i);
    else
        sift_down(h, i);
}

const aw_heap_entry_t *aw_heap_peek(const aw_heap_t *h)
{
    return h->len ? &h->entries[1] : NULL;
}
