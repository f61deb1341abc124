/*
 * task_table.h — every task the engine holds: lookup by id, creation order,
 * and the Idempotency-Key index.
 *
 * A chained hash (keyed SipHash, siphash.h) on the id gives O(1) lookup; an intrusive
 * doubly linked list keeps creation order (ids sort in creation order, so
 * paging with `after=` walks this list). Keys of Idempotency-Key live in a
 * second, small hash that only keyed tasks pay for.
 *
 * The table takes a reference on insert and drops it on remove; it never
 * frees a task directly.
 */
#ifndef AW_TASK_TABLE_H
#define AW_TASK_TABLE_H

#include <stddef.h>

#include "task.h"

typedef struct aw_idem_entry aw_idem_entry_t;

typedef struct aw_task_table {
    aw_task_t       **buckets;
    size_t            nbuckets;     /* power of two */
    size_t            count;
    aw_task_t        *first, *last;
    aw_idem_entry_t **keys;
    size_t            nkeys_buckets;
    size_t            nkeys;
} aw_task_table_t;

int        aw__table_init(aw_task_table_t *tb);      /* 0, -ENOMEM, or getrandom's -errno */
/* Drops the table's reference on every task, then frees the table. */
void       aw__table_close(aw_task_table_t *tb);
/* Inserts t in id order (normally at the end) and indexes its
 * idempotency_key, if any. Returns 0 or -ENOMEM (t not inserted). */
int        aw__table_insert(aw_task_table_t *tb, aw_task_t *t);
void       aw__table_remove(aw_task_table_t *tb, aw_task_t *t);
aw_task_t *aw__table_find(const aw_task_table_t *tb, const char *id);
aw_task_t *aw__table_find_key(const aw_task_table_t *tb, const char *key);
/* The first task whose id sorts after `after` (NULL: the first task). */
aw_task_t *aw__table_after(const aw_task_table_t *tb, const char *after);
/* The last task whose id sorts before `before` (NULL: the last task), for
 * newest-first pages. O(1) for an id in the table; for one that is gone,
 * O(the distance to the nearer end of the list). */
aw_task_t *aw__table_before(const aw_task_table_t *tb, const char *before);

#endif
