/*
 * task_list.c — filtered pages of tasks (see task_list.h for the costs).
 */
#include <string.h>

#include "engine_impl.h"
#include "task_list.h"
#include "task_links.h"

static bool match(const aw_task_t *t, const aw_task_filter_t *f)
{
    return (!f->states || (f->states & (1u << t->state))) &&
           (!f->kind || strcmp(t->kind->name, f->kind) == 0) &&
           (!f->queue || strcmp(t->queue->name, f->queue) == 0) &&
           (!f->name || (aw_task_name(t) && strcmp(aw_task_name(t), f->name) == 0));
}

/* Whether any held task can match f, from the engine's counts alone. */
static bool can_match(const aw_engine_t *e, const aw_task_filter_t *f)
{
    if (f->states) {
        uint64_t n = 0;
        for (int s = 0; s < AW_NSTATES; s++)
            if (f->states & (1u << s))
                n += e->stats.held[s];
        if (!n)
            return false;
    }
    if (f->kind) {
        const aw_kind_stats_t *ks = aw__engine_find_kind(e, f->kind);
        if (!ks || !ks->held)
            return false;
    }
    if (f->queue) {
        const aw_queue_t *q = aw__engine_find_queue(e, f->queue);
        if (!q || !q->held)
            return false;
    }
    return true;
}

/* parent=: the group's children in order (their ids grow with it; desc
 * walks them backwards), at most max_group_tasks of them, so no bound on
 * the scan is needed. */
static size_t list_children(const aw_engine_t *e, const aw_task_filter_t *f, const char *after,
                            size_t limit, aw_list_cb cb, void *arg, char next[AW_TASK_ID_SIZE])
{
    const aw_task_t *p = aw_task_find(e, f->parent);
    const aw_task_links_t *l = p ? aw_task_links(p) : NULL;
    const aw_task_t *taken = NULL, *resume = NULL;
    size_t n = 0;
    uint32_t count = l ? l->nchildren : 0;
    for (uint32_t k = 0; limit && k < count; k++) {
        /* desc: the newest child first, and after means older than. */
        const aw_task_t *t = l->children[f->desc ? count - 1 - k : k];
        int cmp = t && after ? strcmp(t->id, after) : (f->desc ? -1 : 1);
        if (!t || !t->listed || t->held || (f->desc ? cmp >= 0 : cmp <= 0) || !match(t, f))
            continue;
        if (n == limit || (!cb(arg, t, n) && n > 0)) {
            resume = taken;
            break;
        }
        n++;
        taken = t;
    }
    if (resume)
        memcpy(next, resume->id, AW_TASK_ID_SIZE);
    else
        next[0] = '\0';
    return n;
}

size_t aw_task_list(const aw_engine_t *e, const aw_task_filter_t *f, const char *after,
                    size_t limit, size_t max_scan, aw_list_cb cb, void *arg,
                    char next[AW_TASK_ID_SIZE])
{
    if (f->parent)
        return list_children(e, f, after, limit, cb, arg, next);
    size_t n = 0, scanned = 0;
    const aw_task_t *seen = NULL, *taken = NULL;    /* the last looked at, taken */
    const aw_task_t *resume = NULL;                 /* what next will name */
    const aw_task_t *t = !limit || !can_match(e, f) ? NULL
                       : f->desc ? aw_task_before(e, after) : aw_task_after(e, after);
    for (; t; t = f->desc ? aw_task_prev(t) : aw_task_next(t)) {
        if (max_scan && scanned++ == max_scan) {
            resume = seen;              /* the bound: go on after the last looked at */
            break;
        }
        if (match(t, f)) {
            /* A match after a full page is the next page's first. */
            if (n == limit || (!cb(arg, t, n) && n > 0)) {
                resume = taken;
                break;
            }
            n++;
            taken = t;
        }
        seen = t;
    }
    /* Written last: next may be the very buffer `after` points to. */
    if (resume)
        memcpy(next, resume->id, AW_TASK_ID_SIZE);
    else
        next[0] = '\0';
    return n;
}
