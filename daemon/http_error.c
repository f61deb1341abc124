/*
 * http_error.c — error values to statuses and contract codes (see
 * http_error.h). Adding an error is adding one line here.
 */
#include <errno.h>
#include <stddef.h>

#include "errors.h"
#include "http_error.h"
#include "task_json.h"
#include "utf8.h"

static const struct http_error table[] = {
    { AW_EINVAL,          400, "invalid_request", "invalid request" },
    { AW_EJSON,           400, "invalid_json", "the body is not valid JSON" },
    { AW_EKIND,           400, "unknown_kind", "unknown task kind" },
    { AW_EQUEUE,          400, "unknown_queue", "unknown queue" },
    { AW_ENOOUTPUT,       400, "no_output", "this task kind keeps no output" },
    { AW_EDEPENDENCY,     400, "unknown_dependency", "after names a task that does not exist" },
    { HTTP_EUNAUTHORIZED, 401, "unauthorized", "missing or wrong bearer token" },
    { HTTP_EORIGIN,       403, "origin", "requests from this web origin are refused (not the daemon's own, not in cors_origins)" },
    { HTTP_ESCOPE,        403, "insufficient_scope", "the token lacks the scope this request needs" },
    { AW_EDISABLED,       403, "kind_disabled", "this task kind is disabled by configuration" },
    { AW_EFORBIDDEN,      403, "forbidden", "not on the allow-list" },
    { AW_ENOTFOUND,       404, "not_found", "no task with that id" },
    { HTTP_ENOROUTE,      404, "not_found", "no such path" },
    { AW_ENOQUEUE,        404, "not_found", "no such queue" },
    { HTTP_EMETHOD,       405, "method_not_allowed", "method not allowed on this path" },
    { AW_EDONE,           409, "already_done", "the task has already finished" },
    { AW_EACTIVE,         409, "not_done", "the task has not finished yet" },
    { HTTP_ETOOLARGE,     413, "payload_too_large", "the request body is larger than max_body_bytes" },
    { AW_ETOOBIG,         413, "result_too_large", "the task's result is larger than max_result_bytes" },
    { HTTP_EMISDIRECTED,  421, "misdirected", "the Host header names no host of this daemon (allowed_hosts)" },
    { AW_ECAPACITY,       503, "capacity", "too many unfinished tasks; retry later" },
    { AW_ESTORAGE,        503, "storage", "the change could not be stored (disk full or I/O error); nothing was changed" },
    { AW_EBUDGET,         503, "memory_budget", "the tasks held take the whole max_task_bytes; delete finished tasks or retry later" },
    { -ENOMEM,            503, "out_of_memory", "out of memory" },
};

static const struct http_error internal = { 0, 500, "internal", "internal error" };

const struct http_error *http_error_lookup(int value)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].value == value)
            return &table[i];
    return &internal;
}

void http_error_body(aw_buf_t *b, const struct http_error *e, const char *message,
                     const aw_task_t *task)
{
    aw_buf_adds(b, "{\"error\":{\"code\":\"");
    aw_buf_adds(b, e->code);
    aw_buf_adds(b, "\",\"message\":");
    aw_utf8_add_json_str(b, message ? message : e->message);
    aw_buf_addc(b, '}');
    if (task) {
        aw_buf_adds(b, ",\"task\":");
        aw_task_write_json(b, task);
    }
    aw_buf_adds(b, "}\n");
}
