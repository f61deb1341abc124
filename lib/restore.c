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
 * Links (task_links.h): a pending task waits again for the dependencies
 * still active and fails "dependency" on one that ended otherwise; a
 * child waits for its group as before; a running group is not ended but
 * resumed at end_restore (its kind's resume), from its children's states.
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
#include "json_text.h"
#include "retry.h"
#include "task_links.h"

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
    /* Groups, in id order (a group before the groups inside it): a running
     * one takes up its mode from its children's states, a pending one
     * that nothing blocks starts (it takes no slot). */
    aw_task_t *t = e->table.first;
    if (t)
        aw_task_ref(t);
    while (t) {
        aw_task_t *next = t->next;
        if (next)
            aw_task_ref(next);
        const aw_task_links_t *l = aw_task_links(t);
        if (t->listed && t->state == AW_RUNNING && t->kind->resume)
            t->kind->resume(e, t);
        else if (t->listed && t->state == AW_PENDING && t->kind->no_slot && !(l && l->blocked))
            aw__engine_runnable(e, t);
        aw_task_unref(t);
        t = next;
    }
    for (aw_queue_t *q = e->queues; q; q = q->next)
        aw__engine_dispatch(e, q);
}

/* The links of a stored task (task_links.h), before it is admitted: its
 * after edges (to the dependencies still held; one that is gone ended
 * and was forgotten, which it only could once it had succeeded or this
 * task had ended), its place among its group's children, and a group's
 * room for its children (each fills its slot as it is read back: ids
 * grow with creation, so a group is always read before its children). */
static int restore_links(aw_engine_t *e, aw_task_t *t, const aw_task_record_t *r)
{
    if (!r->after && !r->parent && !r->group_spec)
        return 0;
    json_t *after = r->after ? json_loads(r->after, 0, NULL) : NULL;
    size_t n = json_array_size(after);
    if (r->after && !json_is_array(after)) {
        json_decref(after);
        return AW_EINVAL;
    }
    int rc = n > UINT32_MAX ? AW_EINVAL : aw__links_ensure(t, (uint32_t)n);
    aw_task_links_t *l = aw_task_links(t);
    if (!rc && r->after && !(l->after = strdup(r->after)))
        rc = -ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        const char *id = json_string_value(json_array_get(after, i));
        aw_task_t *d = id ? aw__table_find(&e->table, id) : NULL;
        if (d && (rc = aw__links_ensure(d, 0)) == 0)
            l->edges[i].dep = d;
    }
    json_decref(after);
    if (!rc && r->parent && strlen(r->parent) == AW_TASK_ID_LEN) {
        memcpy(l->parent_id, r->parent, AW_TASK_ID_LEN + 1);
        aw_task_t *p = aw__table_find(&e->table, r->parent);
        aw_task_links_t *pl = p ? aw_task_links(p) : NULL;
        int k = pl ? aw__group_child_index(p, t->id) : -1;
        if (k >= 0 && !pl->children[k]) {
            pl->children[k] = t;
            aw_task_ref(t);
            l->parent = p;
        }
    }
    if (!rc && r->group_spec) {
        const char *text;
        size_t len;
        json_t *children = NULL;
        if (!(l->group_spec = strdup(r->group_spec)))
            rc = -ENOMEM;
        else if (aw_json_member(r->group_spec, strlen(r->group_spec), "children", &text, &len))
            children = json_loadb(text, len, 0, NULL);
        size_t m = json_array_size(children);
        json_decref(children);
        if (!rc && m && !(l->children = calloc(m, sizeof *l->children)))
            rc = -ENOMEM;
        if (!rc)
            l->nchildren = (uint32_t)m;
    }
    return rc;
}

/* A pending task read back: linked into the dependencies still active,
 * and blocked by them and by its group if it holds it back. Returns the
 * first dependency that already ended otherwise, or NULL. The edges of
 * a task that is not pending are not linked. */
static aw_task_t *restore_blocks(aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    aw_task_t *failed = NULL;
    for (uint32_t i = 0; l && i < l->nedges; i++) {
        aw_dep_edge_t *x = &l->edges[i];
        if (x->dep && t->state == AW_PENDING && !aw_task_done(x->dep)) {
            aw__links_attach(t, i, x->dep);
            l->blocked++;
            continue;
        }
        if (x->dep && t->state == AW_PENDING && x->dep->state != AW_SUCCEEDED && !failed)
            failed = x->dep;
        x->dep = NULL;                  /* held by no reference: not kept */
    }
    if (l && l->parent && t->state == AW_PENDING) {
        int k = aw__group_child_index(l->parent, t->id);
        if (k >= 0 && aw__group_holds(l->parent, (uint32_t)k))
            l->blocked++;
    }
    return failed;
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
    bool resumes = r->state == AW_RUNNING && ks->kind->resume;
    if (r->state == AW_PENDING || resumes) {
        json_error_t jerr;
        args = json_loads(r->args, 0, &jerr);
    }
    if (r->args[0] != '{' || ((r->state == AW_PENDING || resumes) && !json_is_object(args))) {
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
    if (!rc && resumes) {
        char kerr[200] = "";
        rc = ks->kind->prepare(e, t, args, kerr, sizeof kerr);
        if (rc && rc != -ENOMEM)
            snprintf(err, errlen, "task %s: %s", r->id, kerr);
    }
    if (!rc)
        rc = restore_links(e, t, r);
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

    aw_task_t *failed = restore_blocks(t);
    const aw_task_links_t *l = aw_task_links(t);
    if (r->state == AW_PENDING && why[0]) {
        aw__task_fail_unstarted(e, t, AW_ERR_INTERRUPTED, why);
    } else if (r->state == AW_PENDING && failed) {
        char msg[96];
        snprintf(msg, sizeof msg, "dependency %s ended %s", failed->id,
                 aw_task_state_name(failed->state));
        aw__task_fail_unstarted(e, t, AW_ERR_DEPENDENCY, msg);
    } else if (r->state == AW_PENDING) {
        /* Blocked: its dependencies or its group release it; a group
         * starts at end_restore. Else it waits out the rest of its
         * delay or backoff, by the wall clock it was stored in. */
        if (!(l && l->blocked) && !ks->kind->no_slot) {
            if (aw_task_retry(t) && aw_task_retry(t)->retry_at)
                aw__task_requeue_at(e, t, aw_task_retry(t)->retry_at);
            else
                aw__engine_enqueue(e, t);
        }
    } else if (resumes) {
        /* Kept running, with no slot: end_restore resumes it. */
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
