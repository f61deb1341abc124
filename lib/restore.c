/*
 * restore.c — a task object, as aw_task_write_json wrote it, read back
 * into an engine: the restart half of persistence (see engine.h,
 * aw_engine_restore).
 *
 * What a restart means for each state:
 *   pending   queued again, in id order, and started when its queue has room;
 *   running   it was running when the daemon stopped, and nothing of it
 *             survives (a sleep's timer, an exec job's process): it ends
 *             failed with error type "interrupted", as the contract says;
 *   finished  kept as it was, and forgotten retention_seconds after its
 *             finished_at (at once if that is already past).
 * Restored tasks count in held and unfinished, not in the created counter,
 * which counts what this run of the daemon did; a running one that ends
 * interrupted counts as finished in this run, for it ends in it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "engine_impl.h"
#include "errors.h"

/* "2026-11-24T21:55:44.123Z" -> wall ms; -1 when malformed. */
static int64_t parse_time(const char *s)
{
    struct tm tm = { 0 };
    int ms, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 || s[n] != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t secs = timegm(&tm);
    return secs < 0 ? -1 : (int64_t)secs * 1000 + ms;
}

/* Reads an optional timestamp field: 0 when null or absent. */
static int opt_time(json_t *o, const char *key, int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || (*out = parse_time(json_string_value(v))) < 0) {
        snprintf(err, errlen, "%s must be an RFC 3339 UTC time with milliseconds", key);
        return AW_EINVAL;
    }
    return 0;
}

/* A queue the configuration no longer has: the task still needs one, and
 * an unlimited one is what an operator who removed the limit expects. */
static aw_queue_t *queue_for(aw_engine_t *e, const char *name)
{
    aw_queue_t *q = aw__engine_find_queue(e, name);
    if (!q && aw_engine_set_queue(e, name, 0) == 0)
        q = aw__engine_find_queue(e, name);
    return q;
}

int aw_engine_restore(aw_engine_t *e, json_t *o, aw_task_t **out, char *err, size_t errlen)
{
    const char *id, *kind_name, *queue_name, *state_name;
    json_t *args, *name = NULL, *timeout = NULL, *result = NULL, *error = NULL;
    json_error_t jerr;
    if (json_unpack_ex(o, &jerr, 0, "{s:s, s:s, s:s, s:s, s:o, s?o, s?o, s?o, s?o}",
                       "id", &id, "kind", &kind_name, "queue", &queue_name,
                       "state", &state_name, "args", &args, "name", &name,
                       "timeout", &timeout, "result", &result, "error", &error) < 0) {
        snprintf(err, errlen, "not a task object: %s", jerr.text);
        return AW_EINVAL;
    }
    const aw_kind_stats_t *ks = aw__engine_find_kind(e, kind_name);
    const aw_kind_t *kind = ks ? ks->kind : NULL;
    int state = aw_task_state_parse(state_name);
    if (!aw_task_id_valid(id) || aw__table_find(&e->table, id)) {
        snprintf(err, errlen, "id '%.40s' is malformed or taken", id);
        return AW_EINVAL;
    }
    if (!kind) {
        snprintf(err, errlen, "unknown kind '%.40s'", kind_name);
        return AW_EKIND;
    }
    if (state < 0 || !json_is_object(args) || (name && !json_is_null(name) && !json_is_string(name)) ||
        (timeout && !json_is_null(timeout) && !(json_is_number(timeout) && json_number_value(timeout) > 0))) {
        snprintf(err, errlen, "bad state, args, name or timeout");
        return AW_EINVAL;
    }
    int64_t started_at, finished_at;
    int rc = opt_time(o, "started_at", &started_at, err, errlen);
    if (!rc)
        rc = opt_time(o, "finished_at", &finished_at, err, errlen);
    if (rc)
        return rc;
    const char *etype = NULL, *emsg = NULL;
    if (error && !json_is_null(error) &&
        (json_unpack(error, "{s:s, s?s}", "type", &etype, "message", &emsg) < 0 ||
         aw_error_type_parse(etype) < 0)) {
        snprintf(err, errlen, "bad error object");
        return AW_EINVAL;
    }

    aw_queue_t *q = queue_for(e, queue_name);
    char *text = q ? json_dumps(args, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    size_t len = text ? strlen(text) : 0;
    aw_task_t *t = text ? calloc(1, sizeof *t + len + 1) : NULL;
    if (!t) {
        free(text);
        return -ENOMEM;
    }
    memcpy(t->args, text, len + 1);
    free(text);
    memcpy(t->id, id, AW_TASK_ID_LEN + 1);
    t->kind = kind;
    t->queue = q;
    t->refs = 1;
    t->deadline.owner = AW_OWNER_TASK;
    t->timeout_ms = timeout && json_is_number(timeout)
        ? aw_seconds_to_ms(json_number_value(timeout)) : -1;
    t->started_at = started_at;
    t->finished_at = finished_at;
    t->state = (uint8_t)state;
    if (aw_state_done(state)) {
        t->error_type = etype ? (uint8_t)aw_error_type_parse(etype) : AW_ERR_NONE;
        if (result && !json_is_null(result) &&
            !(t->result = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY |
                                              JSON_REAL_PRECISION(15))))
            rc = -ENOMEM;
        if (!rc)
            rc = aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, emsg);
    } else if (state == AW_PENDING) {
        /* The kind sets up what it needs to run (kdata) from the args. */
        rc = kind->prepare(e, t, args, err, errlen);
        if (rc == AW_EDISABLED || rc == AW_EFORBIDDEN)
            rc = 0;     /* shape only: the stub kinds refuse every start */
    }
    if (!rc)
        rc = aw__task_set_string(t, AW_TASK_NAME, name ? json_string_value(name) : NULL);
    if (!rc)
        rc = aw__table_insert(&e->table, t);
    aw_task_unref(t);                   /* the table's reference remains */
    if (rc)
        return rc;

    /* New ids must sort after every restored one, whatever the clock says. */
    int64_t id_ms = aw_task_id_time(id);
    if (id_ms >= e->ids.last_ms)
        e->ids.last_ms = id_ms + 1;

    e->stats.held[t->state]++;
    if (state == AW_PENDING) {
        e->unfinished++;
        aw__queue_push(q, t);
        aw__engine_dispatch(e, q);
    } else if (state == AW_RUNNING) {
        /* As if it had been interrupted now: the record says when it
         * started, and finishing sets finished_at. */
        e->unfinished++;
        q->running++;
        t->stop_reason = AW_STOP_INTERRUPT;
        aw_task_finish_cancelled(e, t, NULL);
    } else {
        int64_t age = aw_clock_wall_ms() - finished_at;
        int64_t left = e->limits.retention_ms - (age > 0 ? age : 0);
        aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + (left > 0 ? left : 0));
        aw__engine_arm(e);
    }
    if (out)
        *out = t;
    return 0;
}
