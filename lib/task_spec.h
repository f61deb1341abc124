/*
 * task_spec.h — a create body (the JSON object of POST /v1/tasks) read
 * into an aw_task_spec_t, in lib: a group's children are create bodies,
 * and the group kind builds them without the HTTP edge.
 *
 * The edge (daemon/api.c) reads the top-level body itself (it answers
 * field by field); this reads the same fields the same way for a child.
 */
#ifndef AW_TASK_SPEC_H
#define AW_TASK_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "engine.h"

/* Fills spec from body (an object). The spec borrows body's strings and
 * values: body must outlive it. Returns 0 or AW_EINVAL with err set. */
int aw_task_spec_parse(json_t *body, aw_task_spec_t *spec, char *err, size_t errlen);
/* Only the scheduling fields ("priority", "delay" or "start_at" into
 * not_before), which the edge reads itself for the top-level body.
 * Returns 0 or AW_EINVAL with err set. */
int aw_task_spec_schedule(json_t *body, aw_task_spec_t *spec, char *err, size_t errlen);

#endif
