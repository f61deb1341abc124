/*
 * task_spec.c — a create body read into a spec (see task_spec.h).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "queue.h"
#include "rfc3339.h"
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

/* About 100 years: a delay past it is a mistake, not a plan (and its
 * milliseconds stay far from overflowing). */
#define MAX_DELAY_SECONDS 3.2e9

int aw_task_spec_schedule(json_t *body, aw_task_spec_t *spec, char *err, size_t errlen)
{
    json_t *priority = json_object_get(body, "priority");
    json_t *delay = json_object_get(body, "delay");
    json_t *start_at = json_object_get(body, "start_at");
    if (priority && !json_is_null(priority)) {
        json_int_t p = json_integer_value(priority);
        if (!json_is_integer(priority) || p < AW_PRIORITY_MIN || p > AW_PRIORITY_MAX) {
            snprintf(err, errlen, "priority must be an integer from %d to %d",
                     AW_PRIORITY_MIN, AW_PRIORITY_MAX);
            return AW_EINVAL;
        }
        spec->priority = (int)p;
    }
    bool has_delay = delay && !json_is_null(delay);
    bool has_start = start_at && !json_is_null(start_at);
    if (has_delay && has_start) {
        snprintf(err, errlen, "give delay or start_at, not both");
        return AW_EINVAL;
    }
    if (has_delay) {
        double s = json_number_value(delay);
        if (!json_is_number(delay) || !isfinite(s) || s < 0 || s > MAX_DELAY_SECONDS) {
            snprintf(err, errlen, "delay must be a number of seconds, 0 or more (at most 3.2e9)");
            return AW_EINVAL;
        }
        spec->not_before = aw_clock_wall_ms() + aw_seconds_to_ms(s);
    }
    if (has_start) {
        int64_t ms = 0;
        if (!json_is_string(start_at) ||
            aw_rfc3339_parse(json_string_value(start_at), &ms) < 0 || ms <= 0) {
            snprintf(err, errlen, "start_at must be an RFC 3339 date-time after 1970, "
                     "e.g. \"2026-11-24T21:55:44.123Z\"");
            return AW_EINVAL;
        }
        spec->not_before = ms;
    }
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
    spec->retry = json_object_get(body, "retry");
    int rc = aw_task_spec_schedule(body, spec, err, errlen);
    if (!rc)
        rc = optional_string(body, "name", &spec->name, err, errlen);
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
