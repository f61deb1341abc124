/*
 * queue.c — a named concurrency limit with a priority heap of pending
 * tasks (see queue.h).
 *
 * The order is a min-heap on a 64-bit key: the top 8 bits are
 * 100 - priority (so a higher priority is a smaller key), the next 48 the
 * millisecond of creation decoded from the id (a ULID's first ten
 * characters), the last 8 the top bits of the id's random part. Keys
 * compare as ids do, so equal keys (same priority, same millisecond, same
 * top bits) fall back to comparing the ids: the order is exactly
 * (priority desc, id asc), and a restart that pushes tasks again in any
 * order rebuilds the same one.
 */
#include <errno.h>
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
        /* The tasks are not touched: at engine shutdown they may be
         * gone already. */
        free(q->heap);
        free(q->name);
        free(q);
    }
}

int aw__queue_has_slot(const aw_queue_t *q)
{
    return q->concurrency == 0 || q->running < q->concurrency;
}

/* Crockford base32 digit values; anything else counts as 0. The order
 * (key, id) is total whatever the ids are; for real ids it is id order. */
static unsigned digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    static const char letters[] = "ABCDEFGHJKMNPQRSTVWXYZ";
    const char *p = c >= 'A' && c <= 'Z' ? strchr(letters, c) : NULL;
    return p ? 10 + (unsigned)(p - letters) : 0;
}

static uint64_t order_key(const aw_task_t *t)
{
    uint64_t k = (uint64_t)(AW_PRIORITY_MAX - t->priority);
    const char *id = t->id;
    if (id[0] == 't' && id[1] == '_')
        id += 2;
    uint64_t v = 0;
    /* 10 characters of time (50 bits, the top 2 always 0) and 2 of the
     * random part; the 58 bits keep the 56 that matter. */
    for (int i = 0; i < 12 && id[i]; i++)
        v = v << 5 | digit((unsigned char)id[i]);
    return k << 56 | ((v >> 2) & ((UINT64_C(1) << 56) - 1));
}

static bool before(const aw_queue_entry_t *a, const aw_queue_entry_t *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return strcmp(a->task->id, b->task->id) < 0;
}

static void place(aw_queue_t *q, uint64_t i, aw_queue_entry_t e)
{
    q->heap[i] = e;
    e.task->queue_slot = (uint32_t)i;
}

static void sift_up(aw_queue_t *q, uint64_t i)
{
    aw_queue_entry_t e = q->heap[i];
    while (i > 1 && before(&e, &q->heap[i / 2])) {
        place(q, i, q->heap[i / 2]);
        i /= 2;
    }
    place(q, i, e);
}

static void sift_down(aw_queue_t *q, uint64_t i)
{
    aw_queue_entry_t e = q->heap[i];
    for (;;) {
        uint64_t c = i * 2;
        if (c > q->npending)
            break;
        if (c < q->npending && before(&q->heap[c + 1], &q->heap[c]))
            c++;
        if (!before(&q->heap[c], &e))
            break;
        place(q, i, q->heap[c]);
        i = c;
    }
    place(q, i, e);
}

int aw__queue_push(aw_queue_t *q, aw_task_t *t)
{
    if (t->queue_slot)
        return 0;
    if (q->npending + 1 >= q->cap) {
        if (q->cap >= UINT32_MAX)
            return -ENOMEM;             /* queue_slot is 32 bits */
        uint64_t cap = q->cap ? q->cap * 2 : 64;
        aw_queue_entry_t *p = realloc(q->heap, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        q->heap = p;
        q->cap = cap;
    }
    q->npending++;
    place(q, q->npending, (aw_queue_entry_t){ .key = order_key(t), .task = t });
    sift_up(q, q->npending);
    return 0;
}

aw_task_t *aw__queue_peek(const aw_queue_t *q)
{
    return q->npending ? q->heap[1].task : NULL;
}

aw_task_t *aw__queue_pop(aw_queue_t *q)
{
    aw_task_t *t = aw__queue_peek(q);
    if (t)
        aw__queue_remove(q, t);
    return t;
}

/* A drained million must not keep its 16 MB: halve the array when it is
 * a quarter full (a quarter, not a half, so that a queue hovering at a
 * boundary does not reallocate on every push and pop). */
static void shrink(aw_queue_t *q)
{
    if (q->cap > 64 && q->npending + 1 < q->cap / 4) {
        aw_queue_entry_t *p = realloc(q->heap, q->cap / 2 * sizeof *p);
        if (p) {
            q->heap = p;
            q->cap /= 2;
        }
    }
}

void aw__queue_remove(aw_queue_t *q, aw_task_t *t)
{
    uint64_t i = t->queue_slot;
    if (!i || i > q->npending || q->heap[i].task != t)
        return;
    t->queue_slot = 0;
    aw_queue_entry_t last = q->heap[q->npending--];
    shrink(q);
    if (i > q->npending)
        return;                         /* it was the last entry */
    aw_queue_entry_t old = q->heap[i];
    place(q, i, last);
    if (before(&last, &old))
        sift_up(q, i);
    else
        sift_down(q, i);
}
