/*
 * task_links.h — tasks that await tasks: `after` dependencies, and the
 * parent/children links of groups (kind_group.c).
 *
 * A task that has any of these carries an aw_task_links_t behind
 * t->extra->links; the million plain pending tasks pay nothing for it.
 *
 * Dependencies keep reverse edges: each entry of a task's `after` is an
 * edge allocated with the task, linked into its dependency's list of
 * dependents while the dependency is active. When the dependency ends,
 * the engine walks that list at once (no polling): a success unblocks
 * the dependent, any other end fails it with error type "dependency".
 * Cycles are impossible by construction: `after` may name only tasks
 * that exist (and are committed) when the create arrives, so every edge
 * points from a newer task to an older one, and ids grow with creation
 * order; the same holds across a restart, where ids are kept.
 *
 * A pending task runs only when `blocked` is 0: one count per dependency
 * not yet done, plus one while its group holds it (a group releases its
 * children when it starts, a sequence one at a time).
 *
 * A group references its children (children[]); a child points to its
 * parent without a reference (the parent outlives the link: freeing the
 * parent clears it).
 */
#ifndef AW_TASK_LINKS_H
#define AW_TASK_LINKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

struct aw_engine;
struct aw_task_spec;

/* Groups nest at most this deep (a group inside a group ... 8 levels). */
#define AW_GROUP_MAX_DEPTH 8

typedef struct aw_dep_edge {
    struct aw_dep_edge *next;       /* in dep's list of dependents */
    aw_task_t          *task;       /* the dependent (owner of the edge);
                                       referenced while linked */
    aw_task_t          *dep;        /* the dependency */
    bool                linked;
} aw_dep_edge_t;

typedef struct aw_task_links {
    char          *after;           /* owned: compact JSON array of ids; NULL: none */
    char          *group_spec;      /* owned: groups' {"mode":..,"children":[..]} */
    aw_task_t     *parent;          /* not referenced; NULL: none or gone */
    char           parent_id[AW_TASK_ID_SIZE];     /* "" when none */
    aw_task_t    **children;        /* referenced, in order; a slot is NULL
                                       when a restart could not read it back */
    uint32_t       nchildren;
    uint32_t       blocked;         /* see the file comment */
    aw_dep_edge_t *dependents;      /* tasks waiting for this one */
    uint32_t       nedges;
    aw_dep_edge_t  edges[];         /* one per entry of after */
} aw_task_links_t;

/* t's links; NULL when it has none. */
static inline aw_task_links_t *aw_task_links(const aw_task_t *t)
{
    return t->extra ? t->extra->links : NULL;
}
/* The contract's fields: after (JSON array text, "[]" when none), the
 * parent's id (NULL when none), and a group's children as JSON array
 * text at *text, *len bytes (false for tasks that are no group). */
const char *aw_task_after_json(const aw_task_t *t);
const char *aw_task_parent_id(const aw_task_t *t);
bool aw_task_children_json(const aw_task_t *t, const char **text, size_t *len);
/* Whether t is a child whose group has not finished (it cannot be
 * deleted alone yet: the group still needs its result). */
bool aw_task_in_active_group(const aw_task_t *t);

/* Gives t links with room for nedges dependency edges (t must have none
 * yet, or have them with as many edges). Returns 0 or -ENOMEM. */
int  aw__links_ensure(aw_task_t *t, uint32_t nedges);
/* Frees t's links (task.c, when t itself is freed): drops the references
 * on children and dependents. */
void aw__links_free(aw_task_links_t *l);
/* Links edge i of t into its dependency d (a reference on t is taken). */
void aw__links_attach(aw_task_t *t, uint32_t i, aw_task_t *d);
/* Detaches every dependent of t and returns the first edge of the list,
 * each edge's dep still set (the caller unrefs each edge's task and
 * clears dep when done with it). */
aw_dep_edge_t *aw__links_take_dependents(aw_task_t *t);

/* ---- for kind_group.c: children through the engine ---- */

/* Inside a group's prepare at create: builds a child from its create
 * body (validated fully; nothing is visible until the whole create
 * succeeds). Returns 0 with *child set (the group must take a reference
 * to keep it), or an error with err set. Fails with AW_EINVAL past the
 * limits (max_group_tasks, AW_GROUP_MAX_DEPTH). */
int  aw__group_build_child(struct aw_engine *e, aw_task_t *group, json_t *body,
                           aw_task_t **child, char *err, size_t errlen);
/* The args a group keeps and shows: its create's, except that each
 * child's (and grandchild's) notify keeps only its url, for its headers
 * may hold the receiver's credentials (the task object never shows them).
 * Returns a new reference, or NULL on ENOMEM. */
json_t *aw__group_args_kept(json_t *args);
/* Whether a prepare runs for a create (true) or a restart (false: the
 * children are read back from their own records). */
bool aw__engine_building(const struct aw_engine *e);
/* Lets a child that its group held run (blocked drops by one). */
void aw__task_unblock(struct aw_engine *e, aw_task_t *t);
/* After ids are given (create): the group writes its group_spec. Returns
 * 0 or -ENOMEM. */
int  aw__group_spec_write(aw_task_t *group);
/* Restart (restore.c): the place of the child with this id in the
 * group's spec, or -1; and whether the group holds child k back now (a
 * pending group holds all, a sequence those after the first child that
 * has not succeeded). */
int  aw__group_child_index(const aw_task_t *group, const char *id);
bool aw__group_holds(const aw_task_t *group, uint32_t k);

#endif
