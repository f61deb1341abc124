/*
 * task_json.c — writes the contract's task object (see task_json.h).
 * Field order follows the contract's example so that humans reading curl
 * output find fields where the documentation shows them.
 */
#include <string.h>

#include "json_text.h"
#include "kind.h"
#include "queue.h"
#include "task_json.h"
#include "task_links.h"
#include "utf8.h"

const char *const aw_task_json_fields[] = {
    "id", "kind", "name", "queue", "state", "done", "args", "timeout",
    "created_at", "started_at", "finished_at", "result", "error", "notify",
    "priority", "not_before",
    "attempt", "last_error", "after", "parent", "children",
    NULL
};

static void add_time_or_null(aw_buf_t *b, int64_t wall_ms)
{
    if (wall_ms)
        aw_buf_add_time(b, wall_ms);
    else
        aw_buf_add(b, "null", 4);
}

void aw_task_write_json(aw_buf_t *b, const aw_task_t *t)
{
    aw_buf_reserve(b, 384);
    aw_buf_add(b, "{\"id\":\"", 7);
    aw_buf_adds(b, t->id);
    aw_buf_add(b, "\",\"kind\":\"", 10);
    aw_buf_adds(b, t->kind->name);
    aw_buf_add(b, "\",\"name\":", 9);
    if (aw_task_name(t))
        aw_utf8_add_json_str(b, aw_task_name(t));
    else
        aw_buf_add(b, "null", 4);
    aw_buf_add(b, ",\"queue\":", 9);
    aw_utf8_add_json_str(b, t->queue->name);
    aw_buf_add(b, ",\"state\":\"", 10);
    aw_buf_adds(b, aw_task_state_name(t->state));
    aw_buf_adds(b, aw_task_done(t) ? "\",\"done\":true,\"args\":" : "\",\"done\":false,\"args\":");
    aw_buf_adds(b, t->args);
    aw_buf_add(b, ",\"timeout\":", 11);
    if (t->timeout_ms >= 0)
        aw_buf_add_seconds(b, t->timeout_ms);
    else
        aw_buf_add(b, "null", 4);
    aw_buf_add(b, ",\"created_at\":", 14);
    aw_buf_add_time(b, aw_task_created_at(t));
    aw_buf_add(b, ",\"started_at\":", 14);
    add_time_or_null(b, t->started_at);
    aw_buf_add(b, ",\"finished_at\":", 15);
    add_time_or_null(b, t->finished_at);
    aw_buf_add(b, ",\"result\":", 10);
    aw_buf_adds(b, t->result ? t->result : "null");
    aw_buf_add(b, ",\"error\":", 9);
    const char *type = aw_error_type_name(t->error_type);
    if (type) {
        aw_buf_add(b, "{\"type\":\"", 9);
        aw_buf_adds(b, type);
        aw_buf_add(b, "\",\"message\":", 12);
        const char *message = aw_task_error_message(t);
        aw_utf8_add_json_str(b, message ? message : type);
        aw_buf_addc(b, '}');
    } else {
        aw_buf_add(b, "null", 4);
    }
    aw_buf_add(b, ",\"notify\":", 10);
    const aw_task_notify_t *n = aw_task_notify(t);
    if (n) {
        /* The target's url, not its headers: they may carry the
         * receiver's credentials. */
        const char *url;
        size_t ulen;
        aw_buf_add(b, "{\"url\":", 7);
        if (aw_json_member(n->target, strlen(n->target), "url", &url, &ulen))
            aw_buf_add(b, url, ulen);
        else
            aw_buf_add(b, "null", 4);
        aw_buf_add(b, ",\"state\":\"", 10);
        aw_buf_adds(b, aw_notify_state_name(n->state));
        aw_buf_printf(b, "\",\"attempts\":%u,\"last_status\":", n->attempts);
        if (n->last_status >= 0)
            aw_buf_printf(b, "%d", n->last_status);
        else
            aw_buf_add(b, "null", 4);
        aw_buf_add(b, ",\"last_error\":", 14);
        if (n->last_error)
            aw_utf8_add_json_str(b, n->last_error);
        else
            aw_buf_add(b, "null", 4);
        aw_buf_addc(b, '}');
    } else {
        aw_buf_add(b, "null", 4);
    }
    aw_buf_printf(b, ",\"priority\":%d,\"not_before\":", t->priority);
    add_time_or_null(b, aw_task_not_before(t));
    const aw_task_retry_t *r = aw_task_retry(t);
    aw_buf_printf(b, ",\"attempt\":%u,\"last_error\":", aw_task_attempt(t));
    const char *last = r ? aw_error_type_name(r->last_error_type) : NULL;
    if (last) {
        aw_buf_add(b, "{\"type\":\"", 9);
        aw_buf_adds(b, last);
        aw_buf_add(b, "\",\"message\":", 12);
        aw_utf8_add_json_str(b, r->last_error_message ? r->last_error_message : last);
        aw_buf_addc(b, '}');
    } else {
        aw_buf_add(b, "null", 4);
    }
    /* groups: after ([] when none), parent and children (null when no
     * group / none). */
    aw_buf_add(b, ",\"after\":", 9);
    aw_buf_adds(b, aw_task_after_json(t));
    aw_buf_add(b, ",\"parent\":", 10);
    const char *parent = aw_task_parent_id(t), *children;
    size_t clen;
    if (parent) {
        aw_buf_addc(b, '"');
        aw_buf_adds(b, parent);
        aw_buf_addc(b, '"');
    } else {
        aw_buf_add(b, "null", 4);
    }
    aw_buf_add(b, ",\"children\":", 12);
    if (aw_task_children_json(t, &children, &clen))
        aw_buf_add(b, children, clen);
    else
        aw_buf_add(b, "null", 4);
    aw_buf_addc(b, '}');
}
