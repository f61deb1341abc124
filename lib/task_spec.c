/*
 * task_spec.c — a create body read into a spec (see task_spec.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "task_spec.h"

static int optional_string(json_t *o, const char *key, const char **out,
                           char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s must be a string", key);
        return AW_EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

int aw_task_spec_parse(json_t *body, aw_task_spec_t *spec, char *err, size_t errlen)
{
    *spec = (aw_task_spec_t){ .timeout_ms = -1 };
    if (!json_is_object(body)) {
        snprintf(err, errlen, "a task must be a JSON object");
        return AW_EINVAL;
    }
    json_t *kind = json_object_get(body, "kind");
    json_t *args = json_object_get(body, "args");
    json_t *timeout = json_object_get(body, "timeout");
    if (!json_is_string(kind)) {
        snprintf(err, errlen, "kind is required and must be a string");
        return AW_EINVAL;
    }
    spec->kind = json_string_value(kind);
    if (args && !json_is_null(args) && !json_is_object(args)) {
        snprintf(err, errlen, "args must be an object");
        return AW_EINVAL;
    }
    spec->args = json_is_object(args) ? args : NULL;
    spec->notify = json_object_get(body, "notify");
    spec->after = json_object_get(body, "after");
    int rc = optional_string(body, "name", &spec->name, err, errlen);
    if (!rc)
        rc = optional_string(body, "queue", &spec->queue, err, errlen);
    if (rc)
        return rc;
    if (timeout && !json_is_null(timeout)) {
        double s = json_number_value(timeout);
        if (!json_is_number(timeout) || !isfinite(s) || s <= 0 || aw_seconds_to_ms(s) == 0) {
            snprintf(err, errlen, "timeout must be a positive number of seconds (at least 1 ms)");
            return AW_EINVAL;
        }
        spec->timeout_ms = aw_seconds_to_ms(s);
    }
    return 0;
}
