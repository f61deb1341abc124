/*
 * task_links.c — the links between tasks (see task_links.h): their
 * memory, the reverse edges of `after`, and the fields the task object
 * shows. What a link means when a task ends (a dependent unblocked or
 * failed, a group told of its child) is the engine's (engine.c); what a
 * group does about its children is kind_group.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json_text.h"
#include "task_links.h"

const char *aw_task_after_json(const aw_task_t *t)
{
    const aw_task_links_t *l = aw_task_links(t);
    return l && l->after ? l->after : "[]";
}

const char *aw_task_parent_id(const aw_task_t *t)
{
    const aw_task_links_t *l = aw_task_links(t);
    return l && l->parent_id[0] ? l->parent_id : NULL;
}

bool aw_task_children_json(const aw_task_t *t, const char **text, size_t *len)
{
    const aw_task_links_t *l = aw_task_links(t);
    return l && l->group_spec &&
           aw_json_member(l->group_spec, strlen(l->group_spec), "children", text, len);
}

bool aw_task_in_active_group(const aw_task_t *t)
{
    const aw_task_links_t *l = aw_task_links(t);
    return l && l->parent && l->parent->listed && !aw_task_done(l->parent);
}

int aw__links_ensure(aw_task_t *t, uint32_t nedges)
{
    if (aw_task_links(t))
        return 0;
    if (!t->extra && !(t->extra = calloc(1, sizeof *t->extra)))
        return -ENOMEM;
    aw_task_links_t *l = calloc(1, sizeof *l + nedges * sizeof l->edges[0]);
    if (!l)
        return -ENOMEM;
    l->nedges = nedges;
    for (uint32_t i = 0; i < nedges; i++)
        l->edges[i].task = t;
    t->extra->links = l;
    return 0;
}

void aw__links_attach(aw_task_t *t, uint32_t i, aw_task_t *d)
{
    aw_task_links_t *l = aw_task_links(t), *dl = aw_task_links(d);
    aw_dep_edge_t *x = &l->edges[i];
    x->dep = d;
    x->next = dl->dependents;
    x->linked = true;
    dl->dependents = x;
    aw_task_ref(t);
}

aw_dep_edge_t *aw__links_take_dependents(aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    if (!l)
        return NULL;
    aw_dep_edge_t *first = l->dependents;
    l->dependents = NULL;
    for (aw_dep_edge_t *x = first; x; x = x->next)
        x->linked = false;
    return first;
}

void aw__links_free(aw_task_links_t *l)
{
    if (!l)
        return;
    /* Dependents still linked only when the engine is freed with them
     * waiting: their references go with this task. */
    aw_dep_edge_t *x = l->dependents;
    while (x) {
        aw_dep_edge_t *next = x->next;
        x->linked = false;
        aw_task_unref(x->task);
        x = next;
    }
    for (uint32_t i = 0; i < l->nchildren; i++) {
        aw_task_t *c = l->children[i];
        if (!c)
            continue;
        aw_task_links_t *cl = aw_task_links(c);
        if (cl)
            cl->parent = NULL;
        aw_task_unref(c);
    }
    free(l->children);
    free(l->after);
    free(l->group_spec);
    free(l);
}
