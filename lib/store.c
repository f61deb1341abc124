/*
 * store.c — the SQLite task store: group commit from one writer thread
 * (the design is in store.h).
 *
 * The loop side (everything above "the writer thread") keeps the list of
 * dirty tasks, turns it into a batch once per loop turn, and carries out
 * commits and failures. The writer side owns the SQLite connection once
 * the thread runs, and touches nothing else but the queues below, under
 * one mutex. A batch moves from the loop to the writer (todo) and back
 * (done), so that every task reference it holds is dropped on the loop.
 *
 * Not here: what an answer waits for (daemon/http.c holds requests until
 * their batch is committed) and what the numbers mean to users (/v1/info).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "kind.h"
#include "queue.h"
#include "store.h"
#include "task_record.h"

/* A checkpoint copies the write-ahead log into the database. Past this
 * many pages (4 KiB each) the writer asks the checkpoint thread for one;
 * past eight times as many (the checkpoints do not keep up with a steady
 * load) it checkpoints itself, stalling its next commit once rather than
 * letting the log grow without bound. */
#define CHECKPOINT_PAGES 2000
/* After a failed transaction the next try comes this much later. */
#define RETRY_MS 1000

const double aw_store_latency_bounds[AW_STORE_LATENCY_BUCKETS] = {
    0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024,
};
const double aw_store_batch_bounds[AW_STORE_BATCH_BUCKETS] = {
    1, 4, 16, 64, 256, 1024, 4096, 16384,
};

/* Queue switches that outlive a run (POST /v1/queues/{name}/pause). */
#define QUEUES_TABLE_SQL \
    "CREATE TABLE queues (\n" \
    "  -- A queue paused by POST /v1/queues/{name}/pause stays paused across\n" \
    "  -- restarts until resumed; a row per queue ever paused or resumed.\n" \
    "  name   TEXT PRIMARY KEY,\n" \
    "  paused INTEGER NOT NULL          -- 1 paused, 0 running\n" \
    ") WITHOUT ROWID;\n"

static const char schema_sql[] =
    "CREATE TABLE tasks (\n"
    "  -- One row per task the daemon holds, finished ones until retention\n"
    "  -- forgets them. Written by awaitd only; safe to read while it runs.\n"
    "  id              TEXT PRIMARY KEY, -- 't_' + ULID: time-ordered, so rows append\n"
    "  kind            TEXT NOT NULL,    -- sleep, exec, ...\n"
    "  queue           TEXT NOT NULL,\n"
    "  state           TEXT NOT NULL,    -- pending running succeeded failed cancelled timed_out\n"
    "  name            TEXT,\n"
    "  idempotency_key TEXT,             -- the create's Idempotency-Key header\n"
    "  args            TEXT NOT NULL,    -- compact JSON object, as created\n"
    "  timeout_ms      INTEGER,          -- NULL: no timeout\n"
    "  started_at      INTEGER,          -- Unix time in ms; NULL: not yet\n"
    "  finished_at     INTEGER,          -- Unix time in ms; NULL: not yet\n"
    "  result          TEXT,             -- compact JSON; NULL: none\n"
    "  error_type      TEXT,             -- cancelled timeout task_error exit_status ...\n"
    "  error_message   TEXT,\n"
    "  stop_reason     TEXT,             -- running, being stopped for: cancel timeout interrupt\n"
    "  process_group   INTEGER,          -- running exec job: its process group id\n"
    "  boot_id         TEXT,             -- ... and the boot it runs in (a restart kills\n"
    "                                    -- the group only if the machine did not reboot)\n"
    "  notify_target   TEXT,             -- webhook: JSON {url, headers}; NULL: none asked\n"
    "  notify_state    TEXT,             -- pending delivered failed\n"
    "  notify_attempts INTEGER,          -- attempts that have ended\n"
    "  notify_last_status INTEGER,       -- HTTP status of the last one; NULL: none\n"
    "  notify_last_error  TEXT,\n"
    "  notify_next_at  INTEGER,          -- Unix time in ms before which no retry starts\n"
    "  priority        INTEGER,          -- -100..100, higher starts first; NULL: 0\n"
    "  not_before      INTEGER,          -- Unix time in ms before which it does not start\n"
    "                                    -- (delay, start_at, a retry's backoff); NULL: none\n"
    "  retry           TEXT,             -- retry policy: JSON {attempts, backoff, factor,\n"
    "                                    -- max_backoff}; NULL: one attempt\n"
    "  attempt         INTEGER,          -- the current attempt, 1 on the first; NULL: 1\n"
    "  last_error_type TEXT,             -- the previous attempt's error; NULL: none\n"
    "  last_error_message TEXT,\n"
    "  retry_at        INTEGER,          -- pending: Unix time in ms of the next attempt\n"
    "  after           TEXT,             -- JSON array of the ids it awaits; NULL: none\n"
    "  parent          TEXT,             -- the id of its group; NULL: none\n"
    "  group_spec      TEXT              -- a group's JSON {mode, children: [ids]}\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE meta (\n"
    "  -- Numbers that outlive a run: events_next is the first SSE event id\n"
    "  -- the next run may use, so that event ids never repeat.\n"
    "  key   TEXT PRIMARY KEY,\n"
    "  value INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    QUEUES_TABLE_SQL;

/* Schema 1 had no webhooks: the same columns, added in place. */
static const char migrate_to_2_sql[] =
    "ALTER TABLE tasks ADD COLUMN notify_target TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN notify_state TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN notify_attempts INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN notify_last_status INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN notify_last_error TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN notify_next_at INTEGER;\n";

/* Schema 2 had no priorities, delays, queue pauses, retries, dependencies
 * or groups: their columns, added in place. */
static const char migrate_to_3_sql[] =
    "ALTER TABLE tasks ADD COLUMN priority INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN not_before INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN retry TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN attempt INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN last_error_type TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN last_error_message TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN retry_at INTEGER;\n"
    "ALTER TABLE tasks ADD COLUMN after TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN parent TEXT;\n"
    "ALTER TABLE tasks ADD COLUMN group_spec TEXT;\n"
    QUEUES_TABLE_SQL;

static const char upsert_sql[] =
    "INSERT INTO tasks (id, kind, queue, state, name, idempotency_key, args, timeout_ms,"
    " started_at, finished_at, result, error_type, error_message, stop_reason,"
    " process_group, boot_id, notify_target, notify_state, notify_attempts,"
    " notify_last_status, notify_last_error, notify_next_at, priority, not_before,"
    " retry, attempt, last_error_type, last_error_message, retry_at, after, parent,"
    " group_spec) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
    " ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30,"
    " ?31, ?32) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind,"
    " queue = excluded.queue, state = excluded.state, name = excluded.name,"
    " idempotency_key = excluded.idempotency_key, args = excluded.args,"
    " timeout_ms = excluded.timeout_ms, started_at = excluded.started_at,"
    " finished_at = excluded.finished_at, result = excluded.result,"
    " error_type = excluded.error_type, error_message = excluded.error_message,"
    " stop_reason = excluded.stop_reason, process_group = excluded.process_group,"
    " boot_id = excluded.boot_id, notify_target = excluded.notify_target,"
    " notify_state = excluded.notify_state, notify_attempts = excluded.notify_attempts,"
    " notify_last_status = excluded.notify_last_status,"
    " notify_last_error = excluded.notify_last_error,"
    " notify_next_at = excluded.notify_next_at, priority = excluded.priority,"
    " not_before = excluded.not_before, retry = excluded.retry,"
    " attempt = excluded.attempt, last_error_type = excluded.last_error_type,"
    " last_error_message = excluded.last_error_message, retry_at = excluded.retry_at,"
    " after = excluded.after, parent = excluded.parent, group_spec = excluded.group_spec";

static const char *const stop_names[] = { NULL, "cancel", "timeout", "interrupt" };

/* ---- records and batches ---- */

enum rec_op { REC_UPSERT, REC_DELETE, REC_META, REC_QUEUE };
/* What waits for the record's commit (store.h). */
enum rec_intent { INTENT_NONE, INTENT_RELEASE, INTENT_CANCEL, INTENT_FORGET };

struct rec {
    uint8_t          op;
    uint8_t          intent;
    aw_task_t       *task;          /* referenced; NULL for plain deletes and meta */
    aw_task_record_t r;             /* strings point into `strings` */
    char            *strings;       /* one allocation for the copies */
    int64_t          meta_value;
};

/* One transaction's outcome, from the writer to the loop. It lives in
 * the transaction's first batch, so that reporting needs no allocation
 * that could fail and lose the batches. */
struct done {
    struct batch *batches;          /* in order */
    uint64_t      first, last;
    bool          ok;
    char          message[200];
    double        ms;               /* handed over -> committed */
    size_t        nrecs;
    uint64_t      bytes;
    struct done  *next;
};

struct batch {
    uint64_t      seq;
    struct rec   *recs;
    size_t        n, cap;
    int64_t       handed_us;        /* when the loop handed it over */
    struct batch *next;
    struct done   report;           /* used in a transaction's first batch */
};

struct aw_store {
    /* fixed at open */
    char            *dir, *path;
    aw_sync_t        sync;
    sqlite3         *db;
    int              lock_fd;
    char             boot_id[40];
    /* loop side */
    aw_engine_t     *engine;
    struct event    *flush_ev, *done_ev, *retry_ev;
    bool             flush_armed;
    aw_task_t      **dirty;
    size_t           ndirty, dirty_cap;
    struct batch    *building;      /* NULL until the turn's first change */
    uint64_t         submitted;     /* last batch handed over */
    uint64_t         completed;     /* last batch the writer reported on */
    uint64_t         durable;
    uint64_t         retry_seq;     /* 0, or the batch that rewrites a failed one */
    bool             failing;
    aw_commit_cb     commit_cb;
    void            *commit_arg;
    struct { char key[32]; int64_t value; } meta[8], loaded[8];
    size_t           nmeta, nloaded;
    struct qset { char *name; bool paused; } *qsets;    /* queue switches to write */
    size_t           nqsets, qsets_cap;
    aw_store_info_t  info;
    /* shared, under mu */
    pthread_t        thread;
    bool             thread_started;
    pthread_mutex_t  mu;
    pthread_cond_t   cond, idle;
    struct batch    *todo, **todo_tail;
    struct done     *done, **done_tail;
    bool             stop;
    int              efd;
    atomic_bool      fail_writes;
    /* writer side */
    sqlite3_stmt    *upsert, *del, *meta_set, *queue_set;
    int              wal_pages;
    /* the checkpoint thread: its own connection, woken under mu */
    sqlite3         *ckpt_db;
    pthread_t        ckpt_thread;
    bool             ckpt_started, ckpt_wanted, ckpt_done;
    pthread_cond_t   ckpt_cond;
};

static const char *col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int sql_fail(aw_store_t *s, const char *what, char *err, size_t errlen);

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *copy_or_null(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*p, s, n);
    *p += n;
    return d;
}

/* Copies the strings of r into one allocation of the record. */
static int rec_own(struct rec *x)
{
    aw_task_record_t *r = &x->r;
    const char *const *f[] = { &r->id, &r->kind, &r->queue, &r->name, &r->idempotency_key,
                               &r->args, &r->result, &r->error_message, &r->notify_target,
                               &r->notify_last_error, &r->retry, &r->last_error_message,
                               &r->after, &r->parent, &r->group_spec };
    size_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        total += *f[i] ? strlen(*f[i]) + 1 : 0;
    char *p = x->strings = malloc(total ? total : 1);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        *(const char **)f[i] = copy_or_null(&p, *f[i]);
    return 0;
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->recs[i].task)
            aw_task_unref(b->recs[i].task);
        free(b->recs[i].strings);
    }
    free(b->recs);
    free(b);
}

static struct rec *batch_add(struct batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct rec *r = realloc(b->recs, cap * sizeof *r);
        if (!r)
            return NULL;
        b->recs = r;
        b->cap = cap;
    }
    struct rec *x = &b->recs[b->n++];
    memset(x, 0, sizeof *x);
    return x;
}

/* ---- the loop side ---- */

static void arm_flush(aw_store_t *s)
{
    if (!s->flush_armed && s->flush_ev && !s->failing) {
        s->flush_armed = true;
        event_active(s->flush_ev, EV_READ, 0);
    }
}

/* The batch changes made now belong to: the one being built. */
static struct batch *building(aw_store_t *s)
{
    if (!s->building && (s->building = calloc(1, sizeof *s->building)))
        s->building->seq = s->submitted + 1;
    return s->building;
}

/* Whether anything waits to be handed over. */
static bool has_pending(const aw_store_t *s)
{
    return s->ndirty || s->nmeta || s->nqsets || (s->building && s->building->n);
}

static void mark_dirty(aw_store_t *s, aw_task_t *t)
{
    if (!t->dirty) {
        if (s->ndirty == s->dirty_cap) {
            size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 1024;
            aw_task_t **d = realloc(s->dirty, cap * sizeof *d);
            if (!d)
                return;         /* out of memory: the next change retries */
            s->dirty = d;
            s->dirty_cap = cap;
        }
        t->dirty = true;
        aw_task_ref(t);
        s->dirty[s->ndirty++] = t;
    }
    arm_flush(s);
}

/* A forgotten task's row goes with the next batch. (A delete that waits
 * for its commit is the flush's business: forget_asked.) */
static void queue_delete(aw_store_t *s, const char *id)
{
    struct batch *b = building(s);
    struct rec *x = b ? batch_add(b) : NULL;
    if (!x)
        return;
    x->op = REC_DELETE;
    x->r.id = id;
    if (rec_own(x) < 0) {
        b->n--;
        return;
    }
    arm_flush(s);
}

static void on_task(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    aw_store_t *s = arg;
    if (ev == AW_TASK_FORGOTTEN)
        queue_delete(s, t->id);
    else
        mark_dirty(s, t);
}

/* Copies the turn's dirty tasks into the batch and hands it over. */
static void flush(aw_store_t *s)
{
    s->flush_armed = false;
    if (!has_pending(s))
        return;
    struct batch *b = building(s);
    if (!b)
        return;
    int64_t now = aw_clock_wall_ms();
    size_t keep = 0;
    for (size_t i = 0; i < s->ndirty; i++) {
        aw_task_t *t = s->dirty[i];
        if (!t->listed) {                   /* forgotten or discarded since */
            t->dirty = false;
            aw_task_unref(t);
            continue;
        }
        if (t->held && t->written) {        /* wait for its first commit */
            s->dirty[keep++] = t;
            continue;
        }
        struct rec *x = batch_add(b);
        if (!x) {
            s->dirty[keep++] = t;
            continue;
        }
        x->task = t;                        /* the dirty list's reference */
        t->dirty = false;
        if (t->forget_asked) {
            x->op = REC_DELETE;
            x->intent = INTENT_FORGET;
            x->r.id = t->id;
        } else {
            x->op = REC_UPSERT;
            aw_task_record_of(t, now, &x->r);
            x->intent = t->held ? INTENT_RELEASE : t->cancel_asked ? INTENT_CANCEL
                                                                    : INTENT_NONE;
            if (t->held)
                t->written = true;
        }
        if (rec_own(x) < 0) {
            b->n--;
            t->dirty = true;
            s->dirty[keep++] = t;
        }
    }
    s->ndirty = keep;
    for (size_t i = 0; i < s->nmeta; i++) {
        struct rec *x = batch_add(b);
        if (!x)
            break;
        x->op = REC_META;
        x->r.id = s->meta[i].key;
        x->meta_value = s->meta[i].value;
        if (rec_own(x) < 0)
            b->n--;
    }
    size_t qkeep = 0;
    for (size_t i = 0; i < s->nqsets; i++) {
        struct rec *x = batch_add(b);
        if (x) {
            x->op = REC_QUEUE;
            x->r.id = s->qsets[i].name;
            x->meta_value = s->qsets[i].paused;
            if (rec_own(x) == 0) {
                free(s->qsets[i].name);
                continue;
            }
            b->n--;
        }
        s->qsets[qkeep++] = s->qsets[i];   /* out of memory: the next batch */
    }
    s->nqsets = qkeep;
    /* What stays in the dirty list is written later: a held task when its
     * first record's commit releases it (apply_committed re-arms), the
     * rest (out of memory) with the next change. */
    s->nmeta = 0;
    if (!b->n)
        return;
    s->building = NULL;
    s->submitted = b->seq;
    b->handed_us = now_us();
    pthread_mutex_lock(&s->mu);
    *s->todo_tail = b;
    s->todo_tail = &b->next;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush(arg);
}

/* A batch came back committed: carry out what waited for it. */
static void apply_committed(aw_store_t *s, struct batch *b)
{
    aw_engine_t *e = s->engine;
    for (size_t i = 0; i < b->n; i++) {
        struct rec *x = &b->recs[i];
        aw_task_t *t = x->task;
        if (!t || !t->listed)
            continue;
        switch (x->intent) {
        case INTENT_RELEASE:
            aw_task_release(e, t);
            if (t->dirty)
                arm_flush(s);           /* it changed after its first record */
            break;
        case INTENT_CANCEL:
            if (t->cancel_asked) {
                t->cancel_asked = false;
                if (aw_task_cancel(e, t) == AW_EDONE)
                    mark_dirty(s, t);   /* the row says cancelled: rewrite it */
            }
            break;
        case INTENT_FORGET:
            if (t->forget_asked) {
                t->forget_asked = false;
                if (aw_task_forget(e, t) < 0)
                    mark_dirty(s, t);
            }
            break;
        }
    }
}

/* Adds a queue switch to the next batch; a newer one for the same queue
 * replaces it, unless !replace (a failed batch's, written again). */
static int qset_add(aw_store_t *s, const char *name, bool paused, bool replace)
{
    for (size_t i = 0; i < s->nqsets; i++) {
        if (strcmp(s->qsets[i].name, name) == 0) {
            if (replace)
                s->qsets[i].paused = paused;
            return 0;
        }
    }
    if (s->nqsets == s->qsets_cap) {
        size_t cap = s->qsets_cap ? s->qsets_cap * 2 : 8;
        struct qset *q = realloc(s->qsets, cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        s->qsets = q;
        s->qsets_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    s->qsets[s->nqsets++] = (struct qset){ copy, paused };
    building(s);
    arm_flush(s);
    return 0;
}

int aw_store_queue_set(aw_store_t *s, const char *name, bool paused)
{
    return qset_add(s, name, paused, true);
}

/* A batch came back failed: drop what waited for it, and write its tasks
 * again from their current state at the retry. */
static void undo_failed(aw_store_t *s, struct batch *b)
{
    aw_engine_t *e = s->engine;
    for (size_t i = 0; i < b->n; i++) {
        struct rec *x = &b->recs[i];
        aw_task_t *t = x->task;
        if (x->op == REC_META) {
            aw_store_meta_set(s, x->r.id, x->meta_value);
            continue;
        }
        if (x->op == REC_QUEUE) {
            /* As a task is: written again as the queue is now (a newer
             * switch may be in a later batch already). */
            const aw_queue_t *q = aw_engine_queue(e, x->r.id);
            qset_add(s, x->r.id, q ? q->paused : x->meta_value != 0, false);
            continue;
        }
        if (!t) {
            queue_delete(s, x->r.id);
            continue;
        }
        if (!t->listed)
            continue;
        switch (x->intent) {
        case INTENT_RELEASE:
            t->written = false;
            aw_task_discard(e, t);
            continue;
        case INTENT_CANCEL:
            t->cancel_asked = false;
            break;
        case INTENT_FORGET:
            t->forget_asked = false;
            break;
        }
        mark_dirty(s, t);
    }
}

static void bucket(uint64_t *counts, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    counts[i]++;
}

static void process(aw_store_t *s, struct done *d)
{
    s->completed = d->last;
    if (d->ok) {
        s->info.commits++;
        s->info.records += d->nrecs;
        s->info.commit_ms_sum += d->ms;
        s->info.bytes = d->bytes;
        bucket(s->info.latency, aw_store_latency_bounds, AW_STORE_LATENCY_BUCKETS, d->ms);
        bucket(s->info.batch, aw_store_batch_bounds, AW_STORE_BATCH_BUCKETS, (double)d->nrecs);
        for (struct batch *b = d->batches; b; b = b->next)
            apply_committed(s, b);
        if (s->retry_seq && d->last >= s->retry_seq)
            s->retry_seq = 0;
        if (!s->retry_seq)
            s->durable = d->last;
        if (s->failing) {
            s->failing = false;
            event_del(s->retry_ev);
            if (has_pending(s))
                arm_flush(s);           /* what changed while it failed */
        }
    } else {
        s->info.failures++;
        s->failing = true;
        for (struct batch *b = d->batches; b; b = b->next)
            undo_failed(s, b);
        s->retry_seq = s->submitted + 1;
        struct timeval tv = { .tv_sec = RETRY_MS / 1000, .tv_usec = (RETRY_MS % 1000) * 1000 };
        event_add(s->retry_ev, &tv);
    }
    s->info.failing = s->failing;
    if (s->commit_cb)
        s->commit_cb(s->commit_arg, d->first, d->last, d->ok, s->durable,
                     d->ok ? NULL : d->message);
    struct batch *b = d->batches;       /* d lives in the first: free last */
    while (b) {
        struct batch *next = b->next;
        batch_free(b);
        b = next;
    }
}

/* Takes the writer's reports and processes them in order. */
static void drain_done(aw_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    struct done *list = s->done;
    s->done = NULL;
    s->done_tail = &s->done;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        struct done *d = list;
        list = d->next;
        process(s, d);
    }
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    drain_done(arg);
}

uint64_t aw_store_barrier(aw_store_t *s)
{
    if (has_pending(s)) {
        arm_flush(s);
        return s->submitted + 1;
    }
    return s->submitted;
}

uint64_t aw_store_durable(const aw_store_t *s)
{
    return s->durable;
}

bool aw_store_failing(const aw_store_t *s)
{
    return s->failing;
}

void aw_store_on_commit(aw_store_t *s, aw_commit_cb cb, void *arg)
{
    s->commit_cb = cb;
    s->commit_arg = arg;
}

int64_t aw_store_meta_get(const aw_store_t *s, const char *key)
{
    for (size_t i = 0; i < s->nloaded; i++)
        if (strcmp(s->loaded[i].key, key) == 0)
            return s->loaded[i].value;
    return 0;
}

/* Reads the meta table once, at open: later the connection is the
 * writer thread's. */
static int read_meta(aw_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT key, value FROM meta", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(s, "cannot read the meta table", err, errlen);
    while (sqlite3_step(st) == SQLITE_ROW &&
           s->nloaded < sizeof s->loaded / sizeof s->loaded[0]) {
        snprintf(s->loaded[s->nloaded].key, sizeof s->loaded[0].key, "%s", col(st, 0));
        s->loaded[s->nloaded++].value = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return 0;
}

int aw_store_meta_set(aw_store_t *s, const char *key, int64_t value)
{
    size_t i = 0;
    while (i < s->nmeta && strcmp(s->meta[i].key, key) != 0)
        i++;
    if (i == sizeof s->meta / sizeof s->meta[0] || strlen(key) >= sizeof s->meta[0].key)
        return AW_EINVAL;
    if (i == s->nmeta)
        snprintf(s->meta[s->nmeta++].key, sizeof s->meta[0].key, "%s", key);
    s->meta[i].value = value;
    building(s);
    arm_flush(s);
    return 0;
}

void aw_store_info(const aw_store_t *s, aw_store_info_t *out)
{
    *out = s->info;
    out->path = s->path;
    out->sync = s->sync;
}

void aw_store_fail_writes(aw_store_t *s, bool fail)
{
    atomic_store(&s->fail_writes, fail);
}

/* ---- the writer thread ---- */

/* After a commit: keeps the write-ahead log short without stalling
 * commits. The log restarts from its beginning only at a write that finds
 * every frame already copied into the database, and under a steady load
 * the writer has always appended more frames while the checkpoint thread
 * copied. So once the checkpoint thread has done the bulk, the writer
 * copies the few frames added since itself (a few pages and one fsync of
 * the database, between two commits), and its next commit restarts the
 * log. Past eight times the threshold without the thread keeping up, the
 * writer checkpoints everything itself. */
static void checkpoint_step(aw_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    bool bulk_done = s->ckpt_done;
    s->ckpt_done = false;
    if (!bulk_done && s->wal_pages > CHECKPOINT_PAGES && s->ckpt_started && !s->ckpt_wanted) {
        s->ckpt_wanted = true;
        pthread_cond_signal(&s->ckpt_cond);
    }
    pthread_mutex_unlock(&s->mu);
    if (bulk_done || s->wal_pages > 8 * CHECKPOINT_PAGES) {
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        s->wal_pages = 0;
    }
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_time(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static int write_rec(aw_store_t *s, const struct rec *x)
{
    const aw_task_record_t *r = &x->r;
    sqlite3_stmt *st;
    if (x->op == REC_DELETE) {
        st = s->del;
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    } else if (x->op == REC_QUEUE) {
        st = s->queue_set;
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, x->meta_value);
    } else if (x->op == REC_META) {
        st = s->meta_set;
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, x->meta_value);
    } else {
        st = s->upsert;
        bind_text(st, 1, r->id);
        bind_text(st, 2, r->kind);
        bind_text(st, 3, r->queue);
        bind_text(st, 4, aw_task_state_name(r->state));
        bind_text(st, 5, r->name);
        bind_text(st, 6, r->idempotency_key);
        bind_text(st, 7, r->args);
        if (r->timeout_ms >= 0)
            sqlite3_bind_int64(st, 8, r->timeout_ms);
        else
            sqlite3_bind_null(st, 8);
        bind_time(st, 9, r->started_at);
        bind_time(st, 10, r->finished_at);
        bind_text(st, 11, r->result);
        bind_text(st, 12, aw_error_type_name(r->error_type));
        bind_text(st, 13, r->error_message);
        bind_text(st, 14, stop_names[r->stop_reason]);
        if (r->process_group > 0) {
            sqlite3_bind_int64(st, 15, r->process_group);
            bind_text(st, 16, s->boot_id);
        } else {
            sqlite3_bind_null(st, 15);
            sqlite3_bind_null(st, 16);
        }
        if (r->notify_target) {
            bind_text(st, 17, r->notify_target);
            bind_text(st, 18, aw_notify_state_name(r->notify_state));
            sqlite3_bind_int64(st, 19, r->notify_attempts);
            if (r->notify_last_status >= 0)
                sqlite3_bind_int64(st, 20, r->notify_last_status);
            bind_text(st, 21, r->notify_last_error);
            bind_time(st, 22, r->notify_next_at);
        }
        if (r->priority)
            sqlite3_bind_int64(st, 23, r->priority);
        bind_time(st, 24, r->not_before);
        if (r->retry) {
            bind_text(st, 25, r->retry);
            sqlite3_bind_int64(st, 26, r->attempt);
            bind_text(st, 27, aw_error_type_name(r->last_error_type));
            bind_text(st, 28, r->last_error_message);
            bind_time(st, 29, r->retry_at);
        }
        bind_text(st, 30, r->after);
        bind_text(st, 31, r->parent);
        bind_text(st, 32, r->group_spec);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((aw_store_t *)arg)->wal_pages = pages;
    return SQLITE_OK;
}

static uint64_t file_bytes(const char *path, const char *suffix)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Writes the batches in one transaction. Returns 0, or -1 with msg set. */
static int write_batches(aw_store_t *s, struct batch *list, size_t *nrecs,
                         char *msg, size_t msglen)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    *nrecs = 0;
    for (struct batch *b = list; rc == SQLITE_OK && b; b = b->next)
        for (size_t i = 0; rc == SQLITE_OK && i < b->n; i++, ++*nrecs)
            rc = write_rec(s, &b->recs[i]);
    if (rc == SQLITE_OK && atomic_load(&s->fail_writes))
        rc = SQLITE_FULL;                   /* the test seam */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    snprintf(msg, msglen, "%s: %s", s->path,
             rc == SQLITE_FULL ? "database or disk is full" : sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static void *writer_main(void *arg)
{
    aw_store_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->todo && !s->stop)
            pthread_cond_wait(&s->cond, &s->mu);
        if (!s->todo && s->stop)
            break;
        struct batch *list = s->todo;
        s->todo = NULL;
        s->todo_tail = &s->todo;
        pthread_mutex_unlock(&s->mu);

        struct done *d = &list->report;
        size_t nrecs = 0;
        char msg[200] = "";
        int rc = write_batches(s, list, &nrecs, msg, sizeof msg);
        int64_t done_us = now_us();
        struct batch *last = list;
        while (last->next)
            last = last->next;
        *d = (struct done){ .batches = list, .first = list->seq, .last = last->seq,
                            .ok = rc == 0, .nrecs = nrecs,
                            .ms = (double)(done_us - list->handed_us) / 1000 };
        snprintf(d->message, sizeof d->message, "%s", msg);
        d->bytes = file_bytes(s->path, "") + file_bytes(s->path, "-wal");
        pthread_mutex_lock(&s->mu);
        *s->done_tail = d;
        s->done_tail = &d->next;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->mu);
        uint64_t one = 1;
        if (write(s->efd, &one, sizeof one) < 0) {
            /* The counter cannot overflow in practice; nothing to do. */
        }
        if (rc == 0)
            checkpoint_step(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The checkpoint thread. A PASSIVE checkpoint copies what the log holds
 * into the database while the writer goes on appending to the log (WAL
 * mode lets both run at once), so a checkpoint's writes and its fsync of
 * the database (20 ms and more here) never delay a commit. SQLite
 * restarts the log from its start at the first commit after a checkpoint
 * that copied everything. */
static void *checkpoint_main(void *arg)
{
    aw_store_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->ckpt_wanted && !s->stop)
            pthread_cond_wait(&s->ckpt_cond, &s->mu);
        if (s->stop)
            break;
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->mu);
        sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&s->mu);
        s->ckpt_done = true;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- open, load, close ---- */

static void read_boot_id(char *out, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    out[0] = '\0';
    if (f) {
        if (fgets(out, (int)len, f))
            out[strcspn(out, "\n")] = '\0';
        fclose(f);
    }
}

/* dir must be a directory we can write in; its parent must exist. With
 * create, a missing dir is made. */
static int check_dir(const char *dir, bool create, char *err, size_t errlen)
{
    struct stat st;
    if (!dir[0]) {
        snprintf(err, errlen, "state_dir is empty");
        return -1;
    }
    if (stat(dir, &st) < 0) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", dir);
        size_t n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/')
            parent[--n] = '\0';
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof parent, ".");
        if (errno != ENOENT || stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "state_dir %s: its parent directory %s does not exist",
                     dir, parent);
            return -1;
        }
        if (!create)
            return 0;
        if (mkdir(dir, 0700) < 0) {
            snprintf(err, errlen, "cannot create state_dir %s: %s", dir, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "state_dir %s is not a directory", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        snprintf(err, errlen, "state_dir %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int take_lock(aw_store_t *s, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (errno == EWOULDBLOCK || errno == EAGAIN || pid[0])
            snprintf(err, errlen, "state_dir %s is in use by another awaitd%s%s%s", s->dir,
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n) {
        /* The pid is a courtesy for the message above; the lock holds. */
    }
    return 0;
}

static int sql_fail(aw_store_t *s, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return -1;
}

static int exec_sql(aw_store_t *s, const char *sql, const char *what,
                    char *err, size_t errlen)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sql_fail(s, what, err, errlen);
    return 0;
}

/* Checks the schema version and creates the tables in a new database. */
static int prepare_schema(aw_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(s, "cannot read the schema version", err, errlen);
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0)
        return sql_fail(s, "cannot read the schema version", err, errlen);
    if (version > AW_STORE_SCHEMA) {
        snprintf(err, errlen, "%s has schema version %d, newer than this awaitd "
                 "understands (%d): run a newer awaitd, or point state_dir elsewhere",
                 s->path, version, AW_STORE_SCHEMA);
        return -1;
    }
    if (version == AW_STORE_SCHEMA)
        return 0;
    if (version == 1 || version == 2) {
        /* In turn: 1 -> 2 -> 3, in one transaction. */
        char sql[sizeof migrate_to_2_sql + sizeof migrate_to_3_sql + 128];
        snprintf(sql, sizeof sql, "BEGIN;\n%s%sPRAGMA user_version = %d;\nCOMMIT;",
                 version == 1 ? migrate_to_2_sql : "", migrate_to_3_sql, AW_STORE_SCHEMA);
        return exec_sql(s, sql, version == 1 ? "cannot migrate schema 1 to 3"
                                             : "cannot migrate schema 2 to 3", err, errlen);
    }
    char sql[sizeof schema_sql + 128];
    snprintf(sql, sizeof sql, "BEGIN;\n%sPRAGMA user_version = %d;\nCOMMIT;",
             schema_sql, AW_STORE_SCHEMA);
    return exec_sql(s, sql, "cannot create the tables", err, errlen);
}

static int open_db(aw_store_t *s, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (!s->db) {
            snprintf(err, errlen, "%s: out of memory", s->path);
            return -1;
        }
        return sql_fail(s, "cannot open", err, errlen);
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* The first statement reads the file: a file that is no database
     * fails here, before anything listens. */
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
             " PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 16777216;"
             " PRAGMA foreign_keys = OFF;",
             s->sync == AW_SYNC_FULL ? "FULL" : "NORMAL");
    if (exec_sql(s, sql, "cannot use it", err, errlen) < 0 || prepare_schema(s, err, errlen) < 0)
        return -1;
    if (sqlite3_prepare_v3(s->db, upsert_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->upsert, NULL) ||
        sqlite3_prepare_v3(s->db, "DELETE FROM tasks WHERE id = ?1", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->del, NULL) ||
        sqlite3_prepare_v3(s->db, "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->meta_set, NULL) ||
        sqlite3_prepare_v3(s->db, "INSERT INTO queues (name, paused) VALUES (?1, ?2) "
                           "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->queue_set, NULL))
        return sql_fail(s, "cannot prepare statements", err, errlen);
    sqlite3_wal_hook(s->db, wal_hook, s);
    return 0;
}

static void store_free(aw_store_t *s)
{
    sqlite3_finalize(s->upsert);
    sqlite3_finalize(s->del);
    sqlite3_finalize(s->meta_set);
    sqlite3_finalize(s->queue_set);
    for (size_t i = 0; i < s->nqsets; i++)
        free(s->qsets[i].name);
    free(s->qsets);
    if (s->db)
        sqlite3_close(s->db);
    if (s->lock_fd >= 0)
        close(s->lock_fd);      /* releases the lock */
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->ckpt_cond);
    free(s->dir);
    free(s->path);
    free(s->dirty);
    free(s);
}

int aw_store_check(const char *dir, char *err, size_t errlen)
{
    if (check_dir(dir, false, err, errlen) < 0)
        return -1;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, AW_STORE_FILE);
    if (stat(path, &st) < 0)
        return 0;                           /* made at the first start */
    /* immutable=1: a read-only connection to a WAL database still makes
     * state.db-wal and state.db-shm, and leaves them behind (owned by
     * whoever ran the check, root for `sudo awaitd --check-config`). An
     * immutable one reads the file alone, which is all the version needs. */
    char uri[3 * sizeof path + 32], *u = uri;
    u += sprintf(u, "file:%s", path[0] == '/' ? "//" : "");
    for (const char *c = path; *c; c++)
        u += strchr("%?#", *c) ? sprintf(u, "%%%02X", (unsigned char)*c)
                               : sprintf(u, "%c", *c);
    strcpy(u, "?immutable=1");
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int version = -1;
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    int rc = 0;
    if (version < 0) {
        snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        rc = -1;
    } else if (version > AW_STORE_SCHEMA) {
        snprintf(err, errlen, "%s has schema version %d, newer than this awaitd "
                 "understands (%d): run a newer awaitd, or point state_dir elsewhere",
                 path, version, AW_STORE_SCHEMA);
        rc = -1;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc;
}

int aw_store_open(const char *dir, aw_sync_t sync, aw_store_t **out,
                  char *err, size_t errlen)
{
    if (check_dir(dir, true, err, errlen) < 0)
        return -1;
    aw_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->lock_fd = s->efd = -1;
    s->sync = sync;
    s->todo_tail = &s->todo;
    s->done_tail = &s->done;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_cond_init(&s->ckpt_cond, NULL);
    atomic_init(&s->fail_writes, false);
    size_t n = strlen(dir) + sizeof "/" AW_STORE_FILE;
    if (!(s->dir = strdup(dir)) || !(s->path = malloc(n))) {
        snprintf(err, errlen, "out of memory");
        store_free(s);
        return -1;
    }
    snprintf(s->path, n, "%s/%s", dir, AW_STORE_FILE);
    read_boot_id(s->boot_id, sizeof s->boot_id);
    if (take_lock(s, err, errlen) < 0 || open_db(s, err, errlen) < 0 ||
        read_meta(s, err, errlen) < 0) {
        store_free(s);
        return -1;
    }
    s->info.bytes = file_bytes(s->path, "") + file_bytes(s->path, "-wal");
    *out = s;
    return 0;
}

int aw_store_start(aw_store_t *s, struct event_base *base, aw_engine_t *e,
                   char *err, size_t errlen)
{
    s->engine = e;
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    s->flush_ev = event_new(base, -1, 0, flush_cb, s);
    s->retry_ev = evtimer_new(base, retry_cb, s);
    s->done_ev = event_new(base, s->efd, EV_READ | EV_PERSIST, done_cb, s);
    if (!s->flush_ev || !s->retry_ev || !s->done_ev || event_add(s->done_ev, NULL) < 0 ||
        aw_engine_listen(e, on_task, s) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Signals are the loop thread's business (libevent turns them into
     * events there): the threads start with every signal blocked, which
     * they inherit, so none of them ever runs a handler. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, writer_main, s);
    if (rc == 0) {
        s->thread_started = true;
        /* Without the checkpoint thread the writer checkpoints itself
         * (checkpoint_step): slower commits now and then, nothing lost. */
        if (sqlite3_open_v2(s->path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) == SQLITE_OK &&
            sqlite3_busy_timeout(s->ckpt_db, 100) == SQLITE_OK &&
            pthread_create(&s->ckpt_thread, NULL, checkpoint_main, s) == 0)
            s->ckpt_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the store's writer thread: %s", strerror(rc));
        return -1;
    }
    return 0;
}

static int parse_named(const char *s, int (*parse)(const char *))
{
    return s ? parse(s) : 0;
}

static int stop_parse(const char *s)
{
    for (int i = 1; i < (int)(sizeof stop_names / sizeof stop_names[0]); i++)
        if (strcmp(s, stop_names[i]) == 0)
            return i;
    return -1;
}

/* Kills a process group a crashed daemon left running, if it can be
 * ours: the row says which boot it ran in, and after a reboot the same
 * number belongs to someone else. */
static bool kill_leftover(const aw_store_t *s, sqlite3_stmt *st)
{
    pid_t pgid = (pid_t)sqlite3_column_int64(st, 14);
    const char *boot = col(st, 15);
    if (pgid <= 1 || !boot || !s->boot_id[0] || strcmp(boot, s->boot_id) != 0)
        return false;
    return kill(-pgid, SIGKILL) == 0;
}

int aw_store_load(aw_store_t *s, aw_engine_t *e, int64_t retention_ms,
                  aw_store_loaded_t *loaded,
                  void (*warn)(void *arg, const char *msg), void *arg,
                  char *err, size_t errlen)
{
    int64_t t0 = now_us(), now = aw_clock_wall_ms();
    int64_t cutoff = now - retention_ms;
    memset(loaded, 0, sizeof *loaded);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT id, kind, queue, state, name, idempotency_key,"
                           " args, timeout_ms, started_at, finished_at, result, error_type,"
                           " error_message, stop_reason, process_group, boot_id,"
                           " notify_target, notify_state, notify_attempts, notify_last_status,"
                           " notify_last_error, notify_next_at, priority, not_before,"
                           " retry, attempt, last_error_type, last_error_message, retry_at,"
                           " after, parent, group_spec"
                           " FROM tasks ORDER BY id", -1, &st, NULL) != SQLITE_OK)
        return sql_fail(s, "cannot read the tasks", err, errlen);
    aw_engine_begin_restore(e);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        aw_task_record_t r = {
            .id = col(st, 0), .kind = col(st, 1), .queue = col(st, 2),
            .name = col(st, 4), .idempotency_key = col(st, 5), .args = col(st, 6),
            .result = col(st, 10), .error_message = col(st, 12),
            .state = parse_named(col(st, 3), aw_task_state_parse),
            .error_type = parse_named(col(st, 11), aw_error_type_parse),
            .stop_reason = parse_named(col(st, 13), stop_parse),
            .timeout_ms = sqlite3_column_type(st, 7) == SQLITE_NULL
                ? -1 : sqlite3_column_int64(st, 7),
            .started_at = sqlite3_column_int64(st, 8),
            .finished_at = sqlite3_column_int64(st, 9),
            .notify_target = col(st, 16),
            .notify_state = parse_named(col(st, 17), aw_notify_state_parse),
            .notify_attempts = sqlite3_column_int(st, 18),
            .notify_last_status = sqlite3_column_type(st, 19) == SQLITE_NULL
                ? -1 : sqlite3_column_int(st, 19),
            .notify_last_error = col(st, 20),
            .notify_next_at = sqlite3_column_int64(st, 21),
            .priority = sqlite3_column_int(st, 22),
            .not_before = sqlite3_column_int64(st, 23),
            .retry = col(st, 24),
            .attempt = sqlite3_column_int(st, 25),
            .last_error_type = col(st, 26) ? parse_named(col(st, 26), aw_error_type_parse) : 0,
            .last_error_message = col(st, 27),
            .retry_at = sqlite3_column_int64(st, 28),
            .after = col(st, 29), .parent = col(st, 30), .group_spec = col(st, 31),
        };
        if (!col(st, 3))
            r.state = -1;
        if (aw_state_done(r.state) && r.finished_at < cutoff &&
            !(r.notify_target && r.notify_state == AW_NOTIFY_PENDING)) {
            loaded->expired++;
            continue;
        }
        if (r.state == AW_RUNNING && sqlite3_column_type(st, 14) != SQLITE_NULL &&
            kill_leftover(s, st))
            loaded->killed_groups++;
        char why[256];
        int trc = aw_engine_restore(e, &r, NULL, why, sizeof why);
        if (trc == -ENOMEM) {
            snprintf(err, errlen, "out of memory reading %s", s->path);
            break;
        }
        if (trc < 0) {
            loaded->skipped++;
            if (warn) {
                char msg[400];
                snprintf(msg, sizeof msg, "%s: task %.40s not restored, kept on disk: %s",
                         s->path, r.id ? r.id : "?", why);
                warn(arg, msg);
            }
            continue;
        }
        loaded->tasks++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (rc != SQLITE_ROW)
            sql_fail(s, "cannot read the tasks", err, errlen);
        aw_engine_end_restore(e);
        return -1;
    }
    /* Expired rows are deleted in one statement, here at start-up. */
    if (loaded->expired) {
        char sql[128];
        snprintf(sql, sizeof sql, "DELETE FROM tasks WHERE finished_at < %lld AND"
                 " notify_state IS NOT 'pending'", (long long)cutoff);
        if (exec_sql(s, sql, "cannot delete expired tasks", err, errlen) < 0) {
            aw_engine_end_restore(e);
            return -1;
        }
    }
    /* Queue pauses, before end_restore dispatches: a paused queue starts
     * none of its restored tasks. A switch for a queue neither the
     * configuration nor any task names any more is kept, unused. */
    if (sqlite3_prepare_v2(s->db, "SELECT name, paused FROM queues", -1, &st, NULL)
        != SQLITE_OK) {
        sql_fail(s, "cannot read the queues", err, errlen);
        aw_engine_end_restore(e);
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        if (col(st, 0))
            aw_engine_pause_queue(e, col(st, 0), sqlite3_column_int(st, 1) != 0);
    sqlite3_finalize(st);
    aw_engine_end_restore(e);
    loaded->ms = (now_us() - t0) / 1000;
    return 0;
}

void aw_store_sync(aw_store_t *s)
{
    if (!s || !s->thread_started)
        return;
    /* A failing store gets one more try now: the disk may have room. */
    for (int round = 0; round < 2 && (has_pending(s) || s->completed < s->submitted); round++) {
        if (s->flush_armed || has_pending(s))
            flush(s);
        pthread_mutex_lock(&s->mu);
        for (;;) {
            uint64_t reported = s->completed;
            for (struct done *d = s->done; d; d = d->next)
                reported = d->last;
            if (reported >= s->submitted)
                break;
            pthread_cond_wait(&s->idle, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        drain_done(s);
    }
}

void aw_store_close(aw_store_t *s)
{
    if (!s)
        return;
    aw_store_sync(s);
    if (s->engine)
        aw_engine_unlisten(s->engine, on_task, s);
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        if (s->ckpt_started)
            pthread_join(s->ckpt_thread, NULL);
    }
    if (s->ckpt_db)
        sqlite3_close(s->ckpt_db);
    drain_done(s);
    for (size_t i = 0; i < s->ndirty; i++) {
        s->dirty[i]->dirty = false;
        aw_task_unref(s->dirty[i]);
    }
    if (s->building)
        batch_free(s->building);
    if (s->db)
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (s->flush_ev) event_free(s->flush_ev);
    if (s->retry_ev) event_free(s->retry_ev);
    if (s->done_ev) event_free(s->done_ev);
    store_free(s);
}
