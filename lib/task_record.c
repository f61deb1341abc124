/*
 * task_record.c — a task as the store writes it (see task_record.h).
 */
#include "kind.h"
#include "queue.h"
#include "retry.h"
#include "task_links.h"
#include "task_record.h"

void aw_task_record_of(const aw_task_t *t, int64_t now_ms, aw_task_record_t *r)
{
    *r = (aw_task_record_t){
        .id = t->id, .kind = t->kind->name, .queue = t->queue->name,
        .name = aw_task_name(t), .idempotency_key = aw_task_idempotency_key(t),
        .args = t->args, .result = t->result, .error_message = aw_task_error_message(t),
        .state = t->state, .error_type = t->error_type, .stop_reason = t->stop_reason,
        .timeout_ms = t->timeout_ms, .started_at = t->started_at,
        .finished_at = t->finished_at,
    };
    const aw_task_notify_t *n = aw_task_notify(t);
    if (n) {
        r->notify_target = n->target;
        r->notify_last_error = n->last_error;
        r->notify_state = n->state;
        r->notify_attempts = (int)n->attempts;
        r->notify_last_status = n->last_status;
        r->notify_next_at = n->next_at;
    }
    r->priority = t->priority;
    r->not_before = aw_task_not_before(t);
    const aw_task_retry_t *rt = aw_task_retry(t);
    if (rt) {
        r->retry = rt->policy;
        r->attempt = (int)rt->attempt;
        r->last_error_type = rt->last_error_type;
        r->last_error_message = rt->last_error_message;
        r->retry_at = rt->retry_at;
    }
    const aw_task_links_t *l = aw_task_links(t);
    if (l) {
        r->after = l->after;
        r->parent = l->parent_id[0] ? l->parent_id : NULL;
        r->group_spec = l->group_spec;
    }
    if (t->state == AW_RUNNING && t->kind->process_group)
        r->process_group = t->kind->process_group(t);
    if (t->cancel_asked && t->state == AW_PENDING) {
        r->state = AW_CANCELLED;
        r->error_type = AW_ERR_CANCELLED;
        r->error_message = "task was cancelled";
        r->finished_at = now_ms;
    } else if (t->cancel_asked && t->state == AW_RUNNING && t->stop_reason == AW_STOP_NONE) {
        r->stop_reason = AW_STOP_CANCEL;
    }
}
