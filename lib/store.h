/*
 * store.h — the durable task store: every task in an SQLite database, so
 * that what a client was told survives a crash, a restart or a power loss.
 *
 * Design (group commit, one writer thread):
 *   - The engine's listener marks a task dirty when it is created or
 *     changes, and queues a delete when it is forgotten. Nothing is
 *     copied then: a task that is created, started and finished in one
 *     loop turn (a zero-second sleep) costs one record.
 *   - Once per loop turn (a libevent event activated by the first change
 *     of the turn) the loop copies every dirty task into a record and hands
 *     the turn's records to the writer thread as one numbered batch.
 *   - The writer thread owns the SQLite connection. It takes every batch
 *     queued since its last commit and writes them in one transaction:
 *     many concurrent creates share one fsync. While it commits, the loop
 *     goes on and builds the next batch.
 *   - The writer reports each commit, or failure, through an eventfd that
 *     is a read event on the loop. The loop then carries out what waited
 *     for that commit (below) and calls the commit callback, which lets the
 *     HTTP layer send the answers that were held for it.
 * The loop never waits for the disk: it only copies records and signals a
 * condition variable.
 *
 * Batches are numbered from 1. aw_store_barrier is the number of the batch
 * that holds (or will hold) every change made so far: an answer that
 * reports a change is sent once that batch is committed. "Durable" is the
 * highest number N such that every change made before batch N was handed
 * over is on disk; after a failed batch it stops until the failed
 * batch's tasks are written again.
 *
 * Operations that wait for their commit before they take effect, so that
 * a refusal leaves nothing behind:
 *   create  a held task (aw_task_spec_t.hold): at the commit it is
 *           released (a kind with outside effects starts only now); if
 *           the batch fails it is discarded, as if it had never been.
 *   cancel  aw_task_ask(AW_ASK_CANCEL) writes the task as the cancel will
 *           leave it (task_record.h); at the commit the cancel is done.
 *   delete  aw_task_ask(AW_ASK_FORGET) writes a delete; at the commit the
 *           task is forgotten.
 * If a batch fails (disk full, I/O error) those are dropped, the store is
 * "failing" (callers refuse new writes with AW_ESTORAGE), and the tasks of
 * the failed batch are written again from their current state by a retry
 * one second later; the first commit that succeeds ends the failure.
 *
 * Checkpoints: SQLite's automatic checkpoint would run inside a commit and
 * stall it; it is off. When the write-ahead log has grown past a
 * threshold, a checkpoint thread with a connection of its own runs a
 * PASSIVE checkpoint while the writer goes on committing.
 *
 * Schema (PRAGMA user_version = AW_STORE_SCHEMA; the CREATE statements in
 * store.c carry comments, so `sqlite3 state.db .schema` explains itself):
 *   tasks(id TEXT PRIMARY KEY, kind, queue, state, name, idempotency_key,
 *         args, timeout_ms, started_at, finished_at, result, error_type,
 *         error_message, stop_reason, process_group, boot_id,
 *         notify_target, notify_state, notify_attempts, notify_last_status,
 *         notify_last_error, notify_next_at, priority, not_before, retry,
 *         attempt, last_error_type, last_error_message, retry_at, after,
 *         parent, group_spec) WITHOUT ROWID
 *   meta(key TEXT PRIMARY KEY, value)
 *   queues(name TEXT PRIMARY KEY, paused)
 * (schema 3 added tasks.priority, not_before, the retry columns, after,
 * parent and group_spec, and the queues table)
 * Ids are time-ordered ULIDs, so new rows append to the B-tree (random
 * keys would make inserts about ten times slower). A database with a
 * newer user_version is refused: this awaitd cannot know its meaning; one
 * of schema 1 (before webhooks) gains the notify_ columns in place, and
 * one of schema 1 or 2 the retry columns (schema 3).
 *
 * Threads: every function here runs on the loop thread, except that
 * aw_store_open, aw_store_load, aw_store_sync and aw_store_close may block
 * (start-up and shutdown only).
 */
#ifndef AW_STORE_H
#define AW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define AW_STORE_SCHEMA 3
#define AW_STORE_FILE   "state.db"

struct event_base;
typedef struct aw_store aw_store_t;

typedef enum aw_sync { AW_SYNC_FULL, AW_SYNC_NORMAL } aw_sync_t;

/* Commit latency buckets (ms, upper bounds) of aw_store_info. */
#define AW_STORE_LATENCY_BUCKETS 12
extern const double aw_store_latency_bounds[AW_STORE_LATENCY_BUCKETS];
/* Batch size buckets (records per transaction, upper bounds). */
#define AW_STORE_BATCH_BUCKETS 8
extern const double aw_store_batch_bounds[AW_STORE_BATCH_BUCKETS];

typedef struct aw_store_info {
    const char *path;               /* the database file */
    aw_sync_t   sync;
    uint64_t    bytes;              /* database + write-ahead log */
    uint64_t    commits;            /* transactions committed */
    uint64_t    failures;           /* transactions that failed */
    uint64_t    records;            /* records written */
    double      commit_ms_sum;
    uint64_t    latency[AW_STORE_LATENCY_BUCKETS + 1];  /* last: +Inf */
    uint64_t    batch[AW_STORE_BATCH_BUCKETS + 1];
    bool        failing;
} aw_store_info_t;

/* What aw_store_load did. */
typedef struct aw_store_loaded {
    uint64_t tasks;                 /* read back */
    uint64_t expired;               /* finished past retention: deleted */
    uint64_t skipped;               /* unreadable (e.g. an unknown kind): kept on disk */
    uint64_t killed_groups;         /* leftover exec process groups killed */
    int64_t  ms;                    /* how long it took */
} aw_store_loaded_t;

/* Opens (creating when needed) dir/state.db, after taking an exclusive
 * lock on dir/lock: a second daemon on the same directory is refused.
 * dir itself is created (mode 0700) when its parent exists.
 * Returns 0 with *out set, or -1 with a one-line message in err that names
 * the path (missing parent, not a directory, not writable, held by
 * another awaitd, not an SQLite database, a newer schema, ...). */
int  aw_store_open(const char *dir, aw_sync_t sync, aw_store_t **out,
                   char *err, size_t errlen);
/* Checks what aw_store_open would, without creating or locking anything
 * (awaitd --check-config). Returns 0 or -1 with err set. */
int  aw_store_check(const char *dir, char *err, size_t errlen);
/* Reads every task back into e (aw_engine_restore, in id order), deletes
 * finished tasks past retention_ms, and kills the process groups of exec
 * jobs that were running in this boot when the daemon died. Call once,
 * after aw_store_start and before the loop runs, with every kind
 * registered and configured: the store must be listening to hear what
 * the restart changes (a running task that ends interrupted, a pending
 * one that starts or is not restarted) and write it back. The writer
 * thread is idle until the loop hands it a batch, so load may still use
 * the connection here.
 * Returns 0 or -1 with err set (a read error); *loaded says what it did.
 * Rows it cannot read back (an unknown kind) are kept on disk and counted
 * as skipped; each is described to warn(arg, message) if warn is set. */
int  aw_store_load(aw_store_t *s, aw_engine_t *e, int64_t retention_ms,
                   aw_store_loaded_t *loaded,
                   void (*warn)(void *arg, const char *msg), void *arg,
                   char *err, size_t errlen);
/* Starts the writer thread and listens to e. Returns 0 or -1 with err. */
int  aw_store_start(aw_store_t *s, struct event_base *base, aw_engine_t *e,
                    char *err, size_t errlen);

/* Called on the loop after each transaction: batches first..last were
 * committed (ok) or failed (message says why); durable is the new
 * durable number (see above). Held operations of those batches have been
 * carried out or dropped before the call. */
typedef void (*aw_commit_cb)(void *arg, uint64_t first, uint64_t last, bool ok,
                             uint64_t durable, const char *message);
void aw_store_on_commit(aw_store_t *s, aw_commit_cb cb, void *arg);

/* The batch that holds every change made so far (0: nothing was ever
 * changed). Makes sure that batch will be handed over. */
uint64_t aw_store_barrier(aw_store_t *s);
uint64_t aw_store_durable(const aw_store_t *s);
/* Whether the last transaction failed: new writes should be refused. */
bool     aw_store_failing(const aw_store_t *s);
/* A number kept in the meta table: get reads what load found (0 when
 * none); set writes it with the next batch. */
int64_t  aw_store_meta_get(const aw_store_t *s, const char *key);
int      aw_store_meta_set(aw_store_t *s, const char *key, int64_t value);
void     aw_store_info(const aw_store_t *s, aw_store_info_t *out);
/* A queue's pause switch (queues table), written with the next batch:
 * an answer that reports it waits for aw_store_barrier's commit. Load
 * applies the stored switches before the restored tasks may start.
 * Returns 0 or -ENOMEM. */
int      aw_store_queue_set(aw_store_t *s, const char *name, bool paused);

/* Shutdown: hands over what is pending and waits until the writer has
 * committed it, then runs the commit callbacks. Blocks. */
void aw_store_sync(aw_store_t *s);
/* Syncs, stops the writer, checkpoints and closes the database, frees s.
 * Stop listening to the engine first: call it before aw_engine_free.
 * NULL is fine. */
void aw_store_close(aw_store_t *s);

/* Test seam: while set, every transaction fails as a full disk would. */
void aw_store_fail_writes(aw_store_t *s, bool fail);

#endif
