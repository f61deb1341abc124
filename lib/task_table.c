/*
 * task_table.c — tasks by id, in creation order, and by Idempotency-Key
 * (see task_table.h).
 *
 * Both hashes double their bucket arrays when they hold as many entries as
 * buckets, so chains stay short; they never shrink, which costs 8 bytes per
 * bucket at the high-water mark.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
#include "task_table.h"

struct aw_idem_entry {
    aw_idem_entry_t *next;
    aw_task_t       *task;          /* the key string is the task's own */
};

/* Keys and ids come from clients, so the hash is keyed (siphash.h): with
 * an unkeyed one a client could craft keys that share one chain. */
static uint64_t key_hash(const char *s)
{
    return aw_strhash(s);
}

int aw__table_init(aw_task_table_t *tb)
{
    memset(tb, 0, sizeof *tb);
    int rc = aw_strhash_init();
    if (rc < 0)
        return rc;
    tb->nbuckets = 1024;
    tb->buckets = calloc(tb->nbuckets, sizeof *tb->buckets);
    tb->nkeys_buckets = 64;
    tb->keys = calloc(tb->nkeys_buckets, sizeof *tb->keys);
    if (!tb->buckets || !tb->keys) {
        free(tb->buckets);
        free(tb->keys);
        return -ENOMEM;
    }
    return 0;
}

void aw__table_close(aw_task_table_t *tb)
{
    while (tb->first)
        aw__table_remove(tb, tb->first);
    free(tb->buckets);
    free(tb->keys);
    memset(tb, 0, sizeof *tb);
}

static int grow_ids(aw_task_table_t *tb)
{
    size_t n = tb->nbuckets * 2;
    aw_task_t **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (aw_task_t *t = tb->first; t; t = t->next) {
        size_t i = key_hash(t->id) & (n - 1);
        t->hash_next = b[i];
        b[i] = t;
    }
    free(tb->buckets);
    tb->buckets = b;
    tb->nbuckets = n;
    return 0;
}

static int grow_keys(aw_task_table_t *tb)
{
    size_t n = tb->nkeys_buckets * 2;
    aw_idem_entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < tb->nkeys_buckets; i++) {
        aw_idem_entry_t *e, *next;
        for (e = tb->keys[i]; e; e = next) {
            next = e->next;
            size_t j = key_hash(aw_task_idempotency_key(e->task)) & (n - 1);
            e->next = b[j];
            b[j] = e;
        }
    }
    free(tb->keys);
    tb->keys = b;
    tb->nkeys_buckets = n;
    return 0;
}

static int insert_key(aw_task_table_t *tb, aw_task_t *t)
{
    if (tb->nkeys >= tb->nkeys_buckets && grow_keys(tb) < 0)
        return -ENOMEM;
    aw_idem_entry_t *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    size_t i = key_hash(aw_task_idempotency_key(t)) & (tb->nkeys_buckets - 1);
    e->task = t;
    e->next = tb->keys[i];
    tb->keys[i] = e;
    tb->nkeys++;
    return 0;
}

static void remove_key(aw_task_table_t *tb, aw_task_t *t)
{
    size_t i = key_hash(aw_task_idempotency_key(t)) & (tb->nkeys_buckets - 1);
    for (aw_idem_entry_t **pp = &tb->keys[i]; *pp; pp = &(*pp)->next) {
        if ((*pp)->task == t) {
            aw_idem_entry_t *e = *pp;
            *pp = e->next;
            free(e);
            tb->nkeys--;
            return;
        }
    }
}

int aw__table_insert(aw_task_table_t *tb, aw_task_t *t)
{
    if (tb->count >= tb->nbuckets && grow_ids(tb) < 0)
        return -ENOMEM;
    if (aw_task_idempotency_key(t) && insert_key(tb, t) < 0)
        return -ENOMEM;

    size_t i = key_hash(t->id) & (tb->nbuckets - 1);
    t->hash_next = tb->buckets[i];
    tb->buckets[i] = t;

    /* Ids grow with time, so this loop almost never runs: it only matters
     * for tasks loaded out of order. */
    aw_task_t *after = tb->last;
    while (after && strcmp(after->id, t->id) > 0)
        after = after->prev;
    t->prev = after;
    t->next = after ? after->next : tb->first;
    if (t->next)
        t->next->prev = t;
    else
        tb->last = t;
    if (after)
        after->next = t;
    else
        tb->first = t;

    tb->count++;
    t->listed = true;
    aw_task_ref(t);
    return 0;
}

void aw__table_remove(aw_task_table_t *tb, aw_task_t *t)
{
    if (!t->listed)
        return;
    size_t i = key_hash(t->id) & (tb->nbuckets - 1);
    for (aw_task_t **pp = &tb->buckets[i]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == t) {
            *pp = t->hash_next;
            break;
        }
    }
    if (aw_task_idempotency_key(t))
        remove_key(tb, t);
    if (t->prev)
        t->prev->next = t->next;
    else
        tb->first = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        tb->last = t->prev;
    t->prev = t->next = t->hash_next = NULL;
    t->listed = false;
    tb->count--;
    aw_task_unref(t);
}

aw_task_t *aw__table_find(const aw_task_table_t *tb, const char *id)
{
    size_t i = key_hash(id) & (tb->nbuckets - 1);
    for (aw_task_t *t = tb->buckets[i]; t; t = t->hash_next)
        if (strcmp(t->id, id) == 0)
            return t;
    return NULL;
}

aw_task_t *aw__table_find_key(const aw_task_table_t *tb, const char *key)
{
    size_t i = key_hash(key) & (tb->nkeys_buckets - 1);
    for (aw_idem_entry_t *e = tb->keys[i]; e; e = e->next)
        if (strcmp(aw_task_idempotency_key(e->task), key) == 0)
            return e->task;
    return NULL;
}

aw_task_t *aw__table_after(const aw_task_table_t *tb, const char *after)
{
    if (!after)
        return tb->first;
    aw_task_t *t = aw__table_find(tb, after);
    if (t)
        return t->next;
    /* The id is gone (or never existed): find its place by comparison.
     * Paging clients usually ask near the end, so walk from there. */
    aw_task_t *p = tb->last;
    while (p && strcmp(p->id, after) > 0)
        p = p->prev;
    return p ? p->next : tb->first;
}

aw_task_t *aw__table_before(const aw_task_table_t *tb, const char *before)
{
    if (!before)
        return tb->last;
    aw_task_t *t = aw__table_find(tb, before);
    if (t)
        return t->prev;
    /* The id is gone (a task deleted or forgotten between two pages):
     * find its place by comparison. A newest-first walk moves from the
     * end towards the start, so its cursor may be anywhere: walk from
     * both ends at once and stop at whichever finds the place first. */
    aw_task_t *back = tb->last, *front = tb->first;
    for (;;) {
        if (!back || strcmp(back->id, before) < 0)
            return back;                /* the last one before it */
        if (!front || strcmp(front->id, before) >= 0)
            return front ? front->prev : tb->last;
        back = back->prev;
        front = front->next;
    }
}
