/*
 * task.c — names of states and error types, and the task's lifetime
 * (reference counting). The state machine itself is driven by engine.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "task.h"
#include "task_links.h"

static const char *const state_names[AW_NSTATES] = {
    "pending", "running", "succeeded", "failed", "cancelled", "timed_out",
};

static const char *const error_names[AW_NERRTYPES] = {
    NULL, "cancelled", "timeout", "task_error", "exit_status", "signal",
    "spawn_error", "http_error", "interrupted", "forbidden", "http_status",
    "dependency", "child_failed",
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

int aw_error_type_parse(const char *s)
{
    for (int i = AW_ERR_NONE + 1; i < AW_NERRTYPES; i++)
        if (strcmp(s, error_names[i]) == 0)
            return i;
    return -1;
}

int64_t aw_task_created_at(const aw_task_t *t)
{
    return aw_task_id_time(t->id);
}

static char **string_slot(aw_task_extra_t *x, enum aw_task_string which)
{
    switch (which) {
    case AW_TASK_NAME:            return &x->name;
    case AW_TASK_IDEMPOTENCY_KEY: return &x->idempotency_key;
    default:                      return &x->error_message;
    }
}

const char *aw_task_name(const aw_task_t *t)
{
    return t->extra ? t->extra->name : NULL;
}

const char *aw_task_idempotency_key(const aw_task_t *t)
{
    return t->extra ? t->extra->idempotency_key : NULL;
}

const char *aw_task_error_message(const aw_task_t *t)
{
    return t->extra ? t->extra->error_message : NULL;
}

aw_task_notify_t *aw_task_notify(const aw_task_t *t)
{
    return t->extra ? t->extra->notify : NULL;
}

aw_task_retry_t *aw_task_retry(const aw_task_t *t)
{
    return t->extra ? t->extra->retry : NULL;
}

uint32_t aw_task_attempt(const aw_task_t *t)
{
    const aw_task_retry_t *r = aw_task_retry(t);
    return r && r->attempt ? r->attempt : 1;
}

static void free_retry(aw_task_retry_t *r)
{
    if (r) {
        free(r->policy);
        free(r->last_error_message);
        free(r);
    }
}

int aw__task_set_retry(aw_task_t *t, const aw_task_retry_t *policy)
{
    aw_task_retry_t *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    *r = *policy;
    r->policy = policy->policy ? strdup(policy->policy) : NULL;
    r->last_error_message = policy->last_error_message ? strdup(policy->last_error_message)
                                                       : NULL;
    if ((policy->policy && !r->policy) ||
        (policy->last_error_message && !r->last_error_message) ||
        (!t->extra && !(t->extra = calloc(1, sizeof *t->extra)))) {
        free_retry(r);
        return -ENOMEM;
    }
    free_retry(t->extra->retry);
    t->extra->retry = r;
    return 0;
}

static const char *const notify_names[] = { "pending", "delivered", "failed" };

const char *aw_notify_state_name(int s)
{
    return s >= 0 && s <= AW_NOTIFY_FAILED ? notify_names[s] : "pending";
}

int aw_notify_state_parse(const char *s)
{
    for (int i = 0; s && i <= AW_NOTIFY_FAILED; i++)
        if (strcmp(s, notify_names[i]) == 0)
            return i;
    return -1;
}

static void free_notify(aw_task_notify_t *n)
{
    if (n) {
        free(n->target);
        free(n->last_error);
        free(n);
    }
}

int aw__task_set_notify(aw_task_t *t, const char *target)
{
    aw_task_notify_t *n = calloc(1, sizeof *n);
    if (!n || !(n->target = strdup(target)) ||
        (!t->extra && !(t->extra = calloc(1, sizeof *t->extra)))) {
        free_notify(n);
        return -ENOMEM;
    }
    n->last_status = -1;
    free_notify(t->extra->notify);
    t->extra->notify = n;
    return 0;
}

int64_t aw_task_not_before(const aw_task_t *t)
{
    return t->extra ? t->extra->not_before : 0;
}

int aw__task_set_not_before(aw_task_t *t, int64_t wall_ms)
{
    if (!t->extra) {
        if (!wall_ms)
            return 0;
        if (!(t->extra = calloc(1, sizeof *t->extra)))
            return -ENOMEM;
    }
    t->extra->not_before = wall_ms;
    return 0;
}

int aw__task_set_string(aw_task_t *t, enum aw_task_string which, const char *s)
{
    char *copy = NULL;
    if (s && !(copy = strdup(s)))
        return -ENOMEM;
    if (!t->extra) {
        if (!copy)
            return 0;
        if (!(t->extra = calloc(1, sizeof *t->extra))) {
            free(copy);
            return -ENOMEM;
        }
    }
    char **slot = string_slot(t->extra, which);
    free(*slot);
    *slot = copy;
    return 0;
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
    free(t->result);
    if (t->extra) {
        free(t->extra->name);
        free(t->extra->idempotency_key);
        free(t->extra->error_message);
        free_notify(t->extra->notify);
        free_retry(t->extra->retry);
        aw__links_free(t->extra->links);
        free(t->extra);
    }
    free(t);
}
