/*
 * task_list.h — GET /v1/tasks in lib: the tasks that match a filter, in
 * creation order, one page at a time, at a cost that does not grow with
 * the number of tasks held.
 *
 * Data: no index of its own. The engine already counts its tasks by state
 * (stats.held), by kind (aw_kind_stats_t.held) and by queue
 * (aw_queue_t.held), O(1) to keep at every admit, state change and
 * forget, and 0 bytes per task. A page then costs:
 *   - O(kinds + queues) when the filter cannot match (no task held in
 *     that state, kind or queue): the answer is empty, nothing is walked.
 *     That is the case that used to scan every task (?state=failed when
 *     none failed);
 *   - otherwise a walk of the creation-order list from `after`, bounded:
 *     at most max_scan tasks are looked at. When the bound is reached the
 *     page ends early (possibly empty) and `next` names the last task
 *     looked at, so the client goes on from there. A page therefore costs
 *     O(max_scan + what it writes), whatever the filter, and paging
 *     through every match still returns each matching task exactly once.
 * Newest first (desc) is the same walk backwards over the same list: the
 * task table links creation order both ways, so a desc page costs what
 * an asc page costs, and `after` then means "older than".
 * A name filter has no count (names are free text): it is answered by
 * the bounded walk.
 * Why not one ordered index per state, kind and queue: a state list in
 * creation order needs an ordered insert at every state change (tasks
 * finish out of creation order), i.e. a balanced tree and 32 bytes per
 * task per index; the counts and the bound give O(page) for the common
 * filters and a bounded cost for every other, at no cost per task.
 */
#ifndef AW_TASK_LIST_H
#define AW_TASK_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"

typedef struct aw_task_filter {
    unsigned    states;         /* bit (1u << state) per state wanted; 0: any */
    const char *kind;           /* NULL: any */
    const char *queue;          /* NULL: any */
    const char *name;           /* exact name; NULL: any (unnamed tasks too) */
    bool        desc;           /* newest first; `after` then means older than */
    const char *parent;         /* a group's id: its children only (walked
                                   from the group, not the table); NULL: any */
} aw_task_filter_t;

#define AW_STATES_ACTIVE ((1u << AW_PENDING) | (1u << AW_RUNNING))
#define AW_STATES_DONE   ((1u << AW_SUCCEEDED) | (1u << AW_FAILED) | \
                          (1u << AW_CANCELLED) | (1u << AW_TIMED_OUT))

/* Puts t on the page, n being how many are on it already. Returns false
 * when the page is full and t is not on it; with n == 0 it must take t,
 * so that every page moves on. */
typedef bool (*aw_list_cb)(void *arg, const aw_task_t *t, size_t n);

/* Calls cb for the tasks that match f after the id `after` (NULL: from
 * the first), in creation order (with f->desc: before `after`, from the
 * last, newest first), until limit are taken, cb says the page
 * is full, or max_scan tasks were looked at. Held tasks (creates not yet
 * committed) are never listed. Returns how many were taken; next gets
 * the id to pass as `after` for the following page, or "" when no
 * matching task follows. max_scan 0: no bound. May not be called
 * from inside cb. */
size_t aw_task_list(const aw_engine_t *e, const aw_task_filter_t *f, const char *after,
                    size_t limit, size_t max_scan, aw_list_cb cb, void *arg,
                    char next[AW_TASK_ID_SIZE]);

#endif
