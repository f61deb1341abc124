/*
 * task.c — names of states and error types, and the task's lifetime
 * (reference counting). The state machine itself is driven by engine.c.
 */
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "task.h"

static const char *const state_names[AW_NSTATES] = {
    "pending", "running", "succeeded", "failed", "cancelled", "timed_out",
};

static const char *const error_names[AW_NERRTYPES] = {
    NULL, "cancelled", "timeout", "task_error", "exit_status", "signal",
    "spawn_error", "http_error", "interrupted",
};

const char *aw_task_state_name(aw_task_state_t s)
{
    return (unsigned)s < AW_NSTATES ? state_names[s] : "unknown";
}

const char *aw_error_type_name(aw_error_type_t t)
{
    return t > AW_ERR_NONE && t < AW_NERRTYPES ? error_names[t] : NULL;
}

int aw_task_state_parse(const char *s)
{
    for (int i = 0; i < AW_NSTATES; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

int64_t aw_task_created_at(const aw_task_t *t)
{
    return aw_task_id_time(t->id);
}

void aw_task_ref(aw_task_t *t)
{
    t->refs++;
}

void aw_task_unref(aw_task_t *t)
{
    if (--t->refs > 0)
        return;
    if (t->kind && t->kind->release)
        t->kind->release(t);
    free(t->args);
    free(t->result);
    free(t->error_message);
    free(t->name);
    free(t->idempotency_key);
    free(t);
}
