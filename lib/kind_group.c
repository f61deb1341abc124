/*
 * kind_group.c — the `group` kind: a task that awaits child tasks, as
 * asyncio's TaskGroup, gather and friends do (contract: "Groups").
 *
 * A group does no work of its own. Its prepare builds every child from
 * its create body through the engine (aw__group_build_child), so the
 * group and its children are one create: all of them or none. Each child
 * is a task like any other (its own id, queue, limits, kind; it may be a
 * group itself), created blocked by its group (task_links.h); the group's
 * start releases them: all at once, or in `sequence` one after the
 * other. The engine tells the group of each child's end at once
 * (child_done), and the mode decides:
 *   all       the first child to end otherwise cancels every active
 *             sibling; the group fails "child_failed" naming it. All
 *             succeeded: result = their results in order.
 *   settle    waits for every child; result = [{"id","state","result",
 *             "error"}...]; always succeeds.
 *   race      the first child to succeed wins (result = its result) and
 *             the others are cancelled; none did: failed "child_failed".
 *   sequence  child n+1 is released once child n succeeded; one that ends
 *             otherwise cancels the rest (not yet run: cancelled at once)
 *             and fails the group "child_failed".
 * A group ends only once every child has ended, like asyncio.TaskGroup
 * leaving its block: a finished group never has an active child, which
 * keeps deleting it (its children with it) and a restart simple. A cancel
 * or the group's timeout cancels every active child; the group ends
 * cancelled / timed_out when the last one has stopped.
 *
 * A group takes no queue slot (no_slot) and no process; at a restart a
 * running group is resumed from its children's states (resume): children
 * that were running ended interrupted, and the mode goes on from there.
 * Not here: the links themselves (task_links.c), dispatch (engine.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "errors.h"
#include "task_links.h"
#include "utf8.h"

enum { MODE_ALL, MODE_SETTLE, MODE_RACE, MODE_SEQUENCE, NMODES };
static const char *const mode_names[NMODES] = { "all", "settle", "race", "sequence" };

struct group {
    uint8_t  mode;
    bool     busy;          /* in a loop over the children: the end of the
                               group is decided after it */
    uint32_t ndone;         /* children that have ended */
    uint32_t next;          /* sequence: the next child to release */
    uint32_t culprit;       /* all, sequence: 1 + the child that ended otherwise */
    uint32_t winner;        /* race: 1 + the child that succeeded first */
};

static struct group *gs(const aw_task_t *t)
{
    return t->kdata.p;
}

static int group_prepare(aw_engine_t *e, aw_task_t *t, json_t *args, char *err, size_t errlen)
{
    json_t *mode = json_object_get(args, "mode");
    json_t *tasks = json_object_get(args, "tasks");
    int m = MODE_ALL;
    if (mode && !json_is_null(mode)) {
        for (m = 0; m < NMODES; m++)
            if (json_is_string(mode) && strcmp(json_string_value(mode), mode_names[m]) == 0)
                break;
        if (m == NMODES) {
            snprintf(err, errlen, "args.mode must be all, settle, race or sequence");
            return AW_EINVAL;
        }
    }
    if (!json_is_array(tasks) || json_array_size(tasks) == 0) {
        snprintf(err, errlen, "group needs args.tasks, a non-empty array of tasks to create");
        return AW_EINVAL;
    }
    struct group *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->mode = (uint8_t)m;
    t->kdata.p = g;
    /* A restart reads the children back from their own records. */
    if (!aw__engine_building(e))
        return 0;
    size_t n = json_array_size(tasks);
    aw_task_links_t *l;
    if (n > UINT32_MAX || aw__links_ensure(t, 0) < 0 ||
        !((l = aw_task_links(t))->children = calloc(n, sizeof *l->children)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char cerr[200];
        aw_task_t *c;
        int rc = aw__group_build_child(e, t, json_array_get(tasks, i), &c, cerr, sizeof cerr);
        if (rc) {
            snprintf(err, errlen, "args.tasks[%zu]: %s", i, cerr);
            return rc;
        }
        aw_task_ref(c);
        l->children[l->nchildren++] = c;
    }
    return 0;
}

static void strip_notify_headers(json_t *args)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(args, "tasks"), i, c) {
        json_t *n = json_object_get(c, "notify");
        if (json_is_object(n) && json_object_get(n, "headers"))
            json_object_del(n, "headers");
        json_t *k = json_object_get(c, "kind");
        if (json_is_string(k) && strcmp(json_string_value(k), "group") == 0)
            strip_notify_headers(json_object_get(c, "args"));
    }
}

json_t *aw__group_args_kept(json_t *args)
{
    json_t *copy = json_deep_copy(args);
    if (copy)
        strip_notify_headers(copy);
    return copy;
}

int aw__group_spec_write(aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_printf(&b, "{\"mode\":\"%s\",\"children\":[", mode_names[gs(t)->mode]);
    for (uint32_t i = 0; i < l->nchildren; i++)
        aw_buf_printf(&b, "%s\"%s\"", i ? "," : "", l->children[i]->id);
    aw_buf_adds(&b, "]}");
    free(l->group_spec);
    return (l->group_spec = aw_buf_steal(&b, NULL)) ? 0 : -ENOMEM;
}

/* Child k's id, read from the group's spec (its children may be gone
 * after a restart). Written compactly by aw__group_spec_write, each entry
 * is a quoted id of fixed length and a comma. */
static void child_id(const aw_task_t *t, uint32_t k, char id[AW_TASK_ID_SIZE])
{
    const char *text;
    size_t len, at = 2 + (size_t)k * (AW_TASK_ID_LEN + 3);
    id[0] = '\0';
    if (aw_task_children_json(t, &text, &len) && at + AW_TASK_ID_LEN <= len) {
        memcpy(id, text + at, AW_TASK_ID_LEN);
        id[AW_TASK_ID_LEN] = '\0';
    }
}

int aw__group_child_index(const aw_task_t *t, const char *id)
{
    aw_task_links_t *l = aw_task_links(t);
    char cid[AW_TASK_ID_SIZE];
    for (uint32_t k = 0; l && k < l->nchildren; k++) {
        child_id(t, k, cid);
        if (strcmp(cid, id) == 0)
            return (int)k;
    }
    return -1;
}

bool aw__group_holds(const aw_task_t *t, uint32_t k)
{
    const struct group *g = gs(t);
    const aw_task_links_t *l = aw_task_links(t);
    if (t->state == AW_PENDING)
        return true;
    if (t->state != AW_RUNNING || !g || g->mode != MODE_SEQUENCE)
        return false;
    for (uint32_t j = 0; j < k; j++)
        if (!l->children[j] || l->children[j]->state != AW_SUCCEEDED)
            return true;
    return false;
}

static void cancel_active(aw_engine_t *e, aw_task_t *t)
{
    aw_task_links_t *l = aw_task_links(t);
    for (uint32_t i = 0; i < l->nchildren; i++) {
        aw_task_t *c = l->children[i];
        if (c && !aw_task_done(c))
            aw_task_cancel(e, c);
    }
}

/* sequence: releases the next child. */
static void release_next(aw_engine_t *e, aw_task_t *t)
{
    struct group *g = gs(t);
    aw_task_links_t *l = aw_task_links(t);
    if (g->next < l->nchildren) {
        aw_task_t *c = l->children[g->next++];
        if (c)
            aw__task_unblock(e, c);
    }
}

static void add_child_error(aw_buf_t *b, const aw_task_t *c)
{
    const char *type = aw_error_type_name(c->error_type);
    if (!type) {
        aw_buf_adds(b, "null");
        return;
    }
    aw_buf_printf(b, "{\"type\":\"%s\",\"message\":", type);
    const char *m = aw_task_error_message(c);
    aw_utf8_add_json_str(b, m ? m : type);
    aw_buf_addc(b, '}');
}

/* all, sequence: the results in order; settle: each child's outcome. */
static char *results(const aw_task_t *t, bool settle)
{
    aw_task_links_t *l = aw_task_links(t);
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_addc(&b, '[');
    for (uint32_t i = 0; i < l->nchildren; i++) {
        const aw_task_t *c = l->children[i];
        const char *r = c && c->result ? c->result : "null";
        if (i)
            aw_buf_addc(&b, ',');
        if (!settle) {
            aw_buf_adds(&b, r);
            continue;
        }
        char id[AW_TASK_ID_SIZE];
        child_id(t, i, id);
        aw_buf_printf(&b, "{\"id\":\"%s\",\"state\":", id);
        if (c)
            aw_buf_printf(&b, "\"%s\"", aw_task_state_name(c->state));
        else
            aw_buf_adds(&b, "null");    /* not read back at a restart */
        aw_buf_printf(&b, ",\"result\":%s,\"error\":", r);
        if (c)
            add_child_error(&b, c);
        else
            aw_buf_adds(&b, "null");
        aw_buf_addc(&b, '}');
    }
    aw_buf_addc(&b, ']');
    return aw_buf_steal(&b, NULL);
}

static void fail_child(aw_engine_t *e, aw_task_t *t, uint32_t k, const char *how)
{
    aw_task_links_t *l = aw_task_links(t);
    const aw_task_t *c = l->children[k];
    char id[AW_TASK_ID_SIZE], msg[160];
    child_id(t, k, id);
    snprintf(msg, sizeof msg, "%schild %s ended %s", how, id,
             c ? aw_task_state_name(c->state) : "unknown (not read back at a restart)");
    aw_task_fail(e, t, AW_ERR_CHILD_FAILED, msg, NULL);
}

/* Every child has ended: so does the group. */
static void maybe_finish(aw_engine_t *e, aw_task_t *t)
{
    struct group *g = gs(t);
    aw_task_links_t *l = aw_task_links(t);
    if (aw_task_done(t) || g->busy || g->ndone < l->nchildren)
        return;
    if (t->stop_reason != AW_STOP_NONE) {
        aw_task_finish_cancelled(e, t, NULL);
        return;
    }
    switch (g->mode) {
    case MODE_RACE:
        if (g->winner) {
            const aw_task_t *w = l->children[g->winner - 1];
            aw_task_succeed(e, t, w && w->result ? strdup(w->result) : NULL);
        } else {
            fail_child(e, t, l->nchildren - 1, "no child succeeded; the last, ");
        }
        return;
    case MODE_SETTLE:
        aw_task_succeed(e, t, results(t, true));
        return;
    default:
        if (g->culprit)
            fail_child(e, t, g->culprit - 1, "");
        else
            aw_task_succeed(e, t, results(t, false));
    }
}

/* What child k's end means to the group's mode (the count is kept by the
 * caller). */
static void react(aw_engine_t *e, aw_task_t *t, uint32_t k)
{
    struct group *g = gs(t);
    const aw_task_t *c = aw_task_links(t)->children[k];
    bool ok = c && c->state == AW_SUCCEEDED;
    if (t->stop_reason != AW_STOP_NONE)
        return;                         /* cancelled: only waits for the stops */
    switch (g->mode) {
    case MODE_ALL:
        if (!ok && !g->culprit) {
            g->culprit = k + 1;
            cancel_active(e, t);
        }
        break;
    case MODE_RACE:
        if (ok && !g->winner) {
            g->winner = k + 1;
            cancel_active(e, t);
        }
        break;
    case MODE_SEQUENCE:
        if (g->culprit)
            break;
        if (!ok) {
            g->culprit = k + 1;
            cancel_active(e, t);
        } else {
            release_next(e, t);
        }
        break;
    }
}

static void group_child_done(aw_engine_t *e, aw_task_t *t, aw_task_t *child)
{
    struct group *g = gs(t);
    aw_task_links_t *l = aw_task_links(t);
    uint32_t k = 0;
    while (k < l->nchildren && l->children[k] != child)
        k++;
    if (k == l->nchildren)
        return;
    g->ndone++;
    bool outer = !g->busy;
    g->busy = true;
    aw_task_ref(t);
    react(e, t, k);
    if (outer) {
        g->busy = false;
        maybe_finish(e, t);
    }
    aw_task_unref(t);
}

static void group_start(aw_engine_t *e, aw_task_t *t)
{
    struct group *g = gs(t);
    aw_task_links_t *l = aw_task_links(t);
    g->busy = true;
    if (g->mode == MODE_SEQUENCE) {
        release_next(e, t);
    } else {
        for (uint32_t i = 0; i < l->nchildren; i++)
            if (l->children[i])
                aw__task_unblock(e, l->children[i]);
    }
    g->busy = false;
    maybe_finish(e, t);
}

static void group_wake(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    (void)t;        /* a group sets no wake-up: only its timeout is due */
}

static int group_cancel(aw_engine_t *e, aw_task_t *t)
{
    struct group *g = gs(t);
    g->busy = true;
    cancel_active(e, t);
    g->busy = false;
    return g->ndone == aw_task_links(t)->nchildren ? 0 : 1;
}

static void group_resume(aw_engine_t *e, aw_task_t *t)
{
    struct group *g = gs(t);
    aw_task_links_t *l = aw_task_links(t);
    uint32_t n = l->nchildren, first_bad = 0, first_ok = 0;
    int64_t ok_at = INT64_MAX;
    g->ndone = 0;
    g->next = n;
    for (uint32_t i = 0; i < n; i++) {
        aw_task_t *c = l->children[i];
        if (c && !aw_task_done(c)) {
            if (g->next == n && g->mode == MODE_SEQUENCE && !first_bad)
                g->next = i + 1;        /* the one released now */
            continue;
        }
        g->ndone++;
        if (c && c->state == AW_SUCCEEDED) {
            if (c->finished_at < ok_at) {
                ok_at = c->finished_at;
                first_ok = i + 1;
            }
        } else if (!first_bad) {
            first_bad = i + 1;
        }
    }
    aw_task_ref(t);
    g->busy = true;
    if (t->stop_reason != AW_STOP_NONE) {
        cancel_active(e, t);
    } else if (g->mode == MODE_RACE && first_ok) {
        g->winner = first_ok;
        cancel_active(e, t);
    } else if ((g->mode == MODE_ALL || g->mode == MODE_SEQUENCE) && first_bad) {
        g->culprit = first_bad;
        cancel_active(e, t);
    }
    g->busy = false;
    maybe_finish(e, t);
    aw_task_unref(t);
}

static void group_release(aw_task_t *t)
{
    free(t->kdata.p);
}

const aw_kind_t aw_kind_group = {
    .name = "group",
    .prepare = group_prepare,
    .start = group_start,
    .wake = group_wake,
    .cancel = group_cancel,
    .release = group_release,
    .no_slot = 1,
    .child_done = group_child_done,
    .resume = group_resume,
};
