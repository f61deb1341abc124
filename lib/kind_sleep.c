/*
 * kind_sleep.c — the `sleep` kind, asyncio's process_item: wait S seconds,
 * then succeed with `result` or fail with `fail`.
 *
 * kdata.i holds the duration in ms. A sleep costs no timer of its own: its
 * wake-up is the task's entry in the engine's deadline heap. The result is
 * found in the stored args text when the task ends (not parsed again: see
 * sleep_finish), so a million sleeping tasks keep nothing beyond that text.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "errors.h"
#include "json_text.h"

static int sleep_prepare(aw_engine_t *e, aw_task_t *t, json_t *args,
                         char *err, size_t errlen)
{
    json_t *seconds = json_object_get(args, "seconds");
    json_t *fail = json_object_get(args, "fail");
    if (!seconds) {
        snprintf(err, errlen, "sleep needs args.seconds");
        return AW_EINVAL;
    }
    double s = json_number_value(seconds);
    if (!json_is_number(seconds) || !isfinite(s) || s < 0) {
        snprintf(err, errlen, "args.seconds must be a finite number >= 0");
        return AW_EINVAL;
    }
    if (fail && !json_is_string(fail) && !json_is_null(fail)) {
        snprintf(err, errlen, "args.fail must be a string");
        return AW_EINVAL;
    }
    /* The result is kept for the task's whole retention: its size is
     * capped. The args text bounds it, so only a large create pays for
     * measuring (json_dumpb with no buffer only counts). */
    json_t *result = json_object_get(args, "result");
    uint64_t max = aw_engine_limits(e)->max_result_bytes;
    if (max && result && strlen(t->args) > max) {
        size_t n = json_dumpb(result, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        if (n > max) {
            snprintf(err, errlen, "args.result takes %zu bytes, more than max_result_bytes "
                     "(%llu)", n, (unsigned long long)max);
            return AW_ETOOBIG;
        }
    }
    t->kdata.i = aw_seconds_to_ms(s);
    return 0;
}

/* The outcome is read from the args text by finding its members, not by
 * parsing it again: the result's text is already exact JSON (json_text.h),
 * so a megabyte of result costs one scan and one copy. Only the fail
 * message, a string, is decoded. */
static void sleep_finish(aw_engine_t *e, aw_task_t *t)
{
    size_t len = strlen(t->args), n;
    const char *v;
    if (aw_json_member(t->args, len, "fail", &v, &n) && v[0] == '"') {
        json_t *fail = json_loadb(v, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        const char *msg = json_string_value(fail);
        aw_task_fail(e, t, AW_ERR_TASK, msg ? msg : "task failed", NULL);
        json_decref(fail);
        return;
    }
    char *text = NULL;
    if (aw_json_member(t->args, len, "result", &v, &n) && !(n == 4 && memcmp(v, "null", 4) == 0))
        text = strndup(v, n);
    aw_task_succeed(e, t, text);
}

static void sleep_start(aw_engine_t *e, aw_task_t *t)
{
    /* Zero seconds ends at once, so the 201 already shows the result. */
    if (t->kdata.i == 0 || aw_task_set_wake(e, t, aw_clock_mono_ms() + t->kdata.i) < 0)
        sleep_finish(e, t);
}

static void sleep_wake(aw_engine_t *e, aw_task_t *t)
{
    sleep_finish(e, t);
}

static int sleep_cancel(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    (void)t;
    return 0;       /* nothing to undo: the engine dropped the wake-up */
}

/* The memory budget: until the task ends, room for the result it will
 * keep. The result is a part of the args, so their length bounds it, and
 * a full budget refuses the create that could not keep its result. Once
 * the task is done its result is counted for itself. */
static size_t sleep_bytes(const aw_task_t *t)
{
    return aw_task_done(t) ? 0 : strlen(t->args);
}

const aw_kind_t aw_kind_sleep = {
    .name = "sleep",
    .prepare = sleep_prepare,
    .start = sleep_start,
    .wake = sleep_wake,
    .cancel = sleep_cancel,
    .bytes = sleep_bytes,
};
