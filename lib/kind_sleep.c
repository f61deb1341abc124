/*
 * kind_sleep.c — the `sleep` kind, asyncio's process_item: wait S seconds,
 * then succeed with `result` or fail with `fail`.
 *
 * kdata.i holds the duration in ms. A sleep costs no timer of its own: its
 * wake-up is the task's entry in the engine's deadline heap. The result is
 * read back from the stored args when the task ends, so a million sleeping
 * tasks keep nothing beyond their args text.
 */
#include <math.h>
#include <stdio.h>

#include "clock.h"
#include "engine.h"
#include "errors.h"

static int sleep_prepare(aw_engine_t *e, aw_task_t *t, json_t *args,
                         char *err, size_t errlen)
{
    (void)e;
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
    t->kdata.i = aw_seconds_to_ms(s);
    return 0;
}

static void sleep_finish(aw_engine_t *e, aw_task_t *t)
{
    json_t *args = json_loads(t->args, 0, NULL);
    json_t *fail = json_object_get(args, "fail");
    json_t *result = json_object_get(args, "result");
    if (json_is_string(fail)) {
        aw_task_fail(e, t, AW_ERR_TASK, json_string_value(fail), NULL);
    } else {
        char *text = result && !json_is_null(result)
            ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
            : NULL;
        aw_task_succeed(e, t, text);
    }
    json_decref(args);
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

const aw_kind_t aw_kind_sleep = {
    .name = "sleep",
    .prepare = sleep_prepare,
    .start = sleep_start,
    .wake = sleep_wake,
    .cancel = sleep_cancel,
};
