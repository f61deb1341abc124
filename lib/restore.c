/*
 * restore.c — a stored task read back into an engine: the restart half of
 * persistence (see engine.h, aw_engine_restore).
 *
 * What a restart means for each state:
 *   pending   queued again (its queue's heap orders it by priority,
 *             then id), and started after end_restore when its queue has
 *             room and is not paused; one whose not_before is still to
 *             come waits for it (wall-clock time: it keeps its start);
 *   running   it was running when the daemon stopped, and nothing of it
 *             survives (a sleep's timer, an exec job's process): it ends
 *             failed with error type "interrupted", as the contract says,
 *             unless a cancel or its timeout was already stopping it, in
 *             which case it ends as that stop would have (what the client
 *             was told, 202 "cancellation under way", stays true);
 *   finished  kept as it was, and forgotten retention_seconds after its
 *             finished_at (at once if that is already past).
 * Retries: a pending task waiting out a retry's backoff waits for the
 * rest of it (its stored retry_at, wall clock), and a running task whose
 * retry policy has attempts left goes back to pending for its next
 * attempt (the engine's retry decides, as for any interrupted attempt).
 * The task is built by the same constructor as a create (aw__task_new) and
 * its kind's prepare runs for a pending task as for a new one: a kind that
 * refuses it now (disabled, or the program left the allow-list) makes it
 * end failed "interrupted" with the kind's reason, instead of running.
 * Restored tasks count in held and unfinished, not in the created counter,
 * which counts what this run of the daemon did; one that ends at the
 * restart counts as finished in this run, for it ends in it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_impl.h"
#include "errors.h"
#include "retry.h"

/* A queue the configuration no longer has: the task still needs one, and
 * an unlimited one is what an operator who removed the limit expects. */
static aw_queue_t *queue_for(aw_engine_t *e, const char *name)
{
    aw_queue_t *q = aw__engine_find_queue(e, name);
    if (!q && aw_engine_set_queue(e, name, 0) == 0)
        q = aw__engine_find_queue(e, name);
    return q;
}

static bool valid_record(const aw_task_record_t *r)
{
    return (unsigned)r->state < AW_NSTATES && (unsigned)r->error_type < AW_NERRTYPES &&
           r->stop_reason >= AW_STOP_NONE && r->stop_reason <= AW_STOP_INTERRUPT &&
           r->queue && r->args && r->started_at >= 0 && r->finished_at >= 0 &&
           r->priority >= AW_PRIORITY_MIN && r->priority <= AW_PRIORITY_MAX &&
           r->not_before >= 0 &&
           (aw_state_done(r->state) ? r->finished_at > 0 : r->finished_at == 0);
}

void aw_engine_begin_restore(aw_engine_t *e)
{
    e->restoring = true;
}

void aw_engine_end_restore(aw_engine_t *e)
{
    e->restoring = false;
    for (aw_queue_t *q = e->queues; q; q = q->next)
        aw__engine_dispatch(e, q);
}

int aw_engine_restore(aw_engine_t *e, const aw_task_record_t *r, aw_task_t **out,
                      char *err, size_t errlen)
{
    const aw_kind_stats_t *ks = r->kind ? aw__engine_find_kind(e, r->kind) : NULL;
    if (!r->id || !aw_task_id_valid(r->id) || aw__table_find(&e->table, r->id)) {
        snprintf(err, errlen, "id '%.40s' is malformed or taken", r->id ? r->id : "");
        return AW_EINVAL;
    }
    if (!ks) {
        snprintf(err, errlen, "unknown kind '%.40s'", r->kind ? r->kind : "");
        return AW_EKIND;
    }
    if (!valid_record(r)) {
        snprintf(err, errlen, "task %s: bad state, times, error or stop reason", r->id);
        return AW_EINVAL;
    }
    /* Only a pending task's kind reads its args again (prepare): a
     * million finished tasks load without parsing a million objects. The
     * store wrote the text; a cheap look still refuses what is no object. */
    json_t *args = NULL;
    if (r->state == AW_PENDING) {
        json_error_t jerr;
        args = json_loads(r->args, 0, &jerr);
    }
    if (r->args[0] != '{' || (r->state == AW_PENDING && !json_is_object(args))) {
        json_decref(args);
        snprintf(err, errlen, "task %s: args are not a JSON object", r->id);
        return AW_EINVAL;
    }
    aw_queue_t *q = queue_for(e, r->queue);
    aw_task_t *t = q ? aw__task_new_text(ks->kind, q, r->args, r->timeout_ms) : NULL;
    if (!t) {
        json_decref(args);
        return -ENOMEM;
    }
    memcpy(t->id, r->id, AW_TASK_ID_LEN + 1);
    t->started_at = r->started_at;
    t->finished_at = r->finished_at;
    t->state = (uint8_t)r->state;
    t->stop_reason = (uint8_t)r->stop_reason;
    t->priority = (int8_t)r->priority;
    int rc = aw__task_set_not_before(t, r->not_before);
    if (!rc)
        rc = aw__task_set_string(t, AW_TASK_NAME, r->name);
    if (!rc)
        rc = aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, r->idempotency_key);
    if (!rc && r->notify_target && !(rc = aw__task_set_notify(t, r->notify_target))) {
        aw_task_notify_t *n = aw_task_notify(t);
        n->state = (uint8_t)(r->notify_state > 0 ? r->notify_state : AW_NOTIFY_PENDING);
        n->attempts = r->notify_attempts > 0 ? (uint32_t)r->notify_attempts : 0;
        n->last_status = r->notify_last_status;
        n->next_at = r->notify_next_at;
        if (r->notify_last_error && !(n->last_error = strdup(r->notify_last_error)))
            rc = -ENOMEM;
    }
    if (!rc && r->retry) {
        aw_task_retry_t rt;
        char rerr[200];
        if ((rc = aw_retry_load(r->retry, &rt, rerr, sizeof rerr)) == AW_EINVAL) {
            snprintf(err, errlen, "task %s: bad retry policy: %s", r->id, rerr);
        } else if (rc == 0) {
            rt.attempt = r->attempt > 0 ? (uint32_t)r->attempt : 1;
            rt.last_error_type = (unsigned)r->last_error_type < AW_NERRTYPES
                ? (uint8_t)r->last_error_type : AW_ERR_NONE;
            rt.last_error_message = (char *)r->last_error_message;
            rt.retry_at = r->state == AW_PENDING ? r->retry_at : 0;
            rc = aw__task_set_retry(t, &rt);
            free(rt.policy);
        }
    }
    if (!rc && aw_state_done(r->state)) {
        t->error_type = (uint8_t)r->error_type;
        if (r->result && !(t->result = strdup(r->result)))
            rc = -ENOMEM;
        if (!rc)
            rc = aw__task_set_string(t, AW_TASK_ERROR_MESSAGE, r->error_message);
    }
    /* Why a pending task cannot run now, if its kind refuses it. */
    char why[256] = "";
    if (!rc && r->state == AW_PENDING) {
        char kerr[200] = "";
        int prc = ks->enabled ? ks->kind->prepare(e, t, args, kerr, sizeof kerr) : AW_EDISABLED;
        if (prc == -ENOMEM)
            rc = prc;
        else if (prc == AW_EDISABLED)
            snprintf(why, sizeof why, "not restarted: kind '%s' is disabled by configuration",
                     ks->kind->name);
        else if (prc < 0)
            snprintf(why, sizeof why, "not restarted: %s", kerr);
    }
    json_decref(args);
    if (rc) {
        aw_task_unref(t);
        return rc;
    }
    if ((rc = aw__engine_admit(e, t)) < 0)
        return rc;

    /* New ids must sort after every restored one, whatever the clock says. */
    int64_t id_ms = aw_task_id_time(t->id);
    if (id_ms >= e->ids.last_ms)
        e->ids.last_ms = id_ms + 1;

    if (r->state == AW_PENDING && why[0]) {
        aw__task_fail_unstarted(e, t, AW_ERR_INTERRUPTED, why);
    } else if (r->state == AW_PENDING && aw_task_retry(t) && aw_task_retry(t)->retry_at) {
        /* The rest of its backoff, by the wall clock it was stored in. */
        aw__task_requeue_at(e, t, aw_task_retry(t)->retry_at);
    } else if (r->state == AW_PENDING) {
        aw__engine_enqueue(e, t);
    } else if (r->state == AW_RUNNING) {
        /* As if it were stopped now: the record says when it started, and
         * finishing sets finished_at. A retry policy with attempts left
         * sends it back to pending instead (engine.c, retry_attempt). */
        q->running++;
        if (t->stop_reason == AW_STOP_NONE)
            t->stop_reason = AW_STOP_INTERRUPT;
        aw_task_finish_cancelled(e, t, NULL);
    } else {
        int64_t age = aw_clock_wall_ms() - r->finished_at;
        int64_t left = e->limits.retention_ms - (age > 0 ? age : 0);
        aw_heap_set(&e->heap, &t->deadline, aw_clock_mono_ms() + (left > 0 ? left : 0));
        aw__engine_arm(e);
    }
    if (out)
        *out = t;
    return 0;
}
