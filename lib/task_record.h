/*
 * task_record.h — a task as the store keeps it: every field that must
 * survive a restart, and nothing of the API's JSON shape, so that an
 * addition to the API is not a storage migration.
 *
 * A record never owns its strings: aw_task_record_of points them into the
 * task (valid until control returns to the loop), and the store points
 * them into its own copies or into SQLite's row.
 */
#ifndef AW_TASK_RECORD_H
#define AW_TASK_RECORD_H

#include <stdint.h>
#include <sys/types.h>

#include "task.h"

typedef struct aw_task_record {
    const char *id;
    const char *kind;
    const char *queue;
    const char *name;               /* NULL: none */
    const char *idempotency_key;    /* NULL: none */
    const char *args;               /* compact JSON object */
    const char *result;             /* compact JSON; NULL: none */
    const char *error_message;      /* NULL: none */
    int         state;              /* aw_task_state_t */
    int         error_type;         /* aw_error_type_t */
    int         stop_reason;        /* aw_stop_reason_t */
    int64_t     timeout_ms;         /* -1: none */
    int64_t     started_at;         /* wall ms; 0: not yet */
    int64_t     finished_at;        /* wall ms; 0: not yet */
    pid_t       process_group;      /* a running job's group; 0: none */
    /* The completion notification (task.h's aw_task_notify_t); target
     * NULL: none asked. */
    const char *notify_target;
    const char *notify_last_error;
    int         notify_state;
    int         notify_attempts;
    int         notify_last_status; /* -1: none */
    int64_t     notify_next_at;
    int         priority;           /* queues: -100..100 */
    int64_t     not_before;         /* queues: wall ms; 0: none */
    /* The retry policy (task.h's aw_task_retry_t); retry NULL: none. */
    const char *retry;              /* compact JSON, retry.h */
    int         attempt;            /* 0 read as 1 */
    int         last_error_type;    /* aw_error_type_t; AW_ERR_NONE: none */
    const char *last_error_message;
    int64_t     retry_at;           /* wall ms of the next attempt; 0: none */
    /* Dependencies and groups (task_links.h): after as a JSON array of
     * ids, the parent's id, a group's {"mode","children"}; NULL: none. */
    const char *after;
    const char *parent;
    const char *group_spec;
} aw_task_record_t;

/* Fills r from t as it is now, with the durability marks applied: a task
 * whose cancel awaits its commit is written as the cancel will leave it
 * (a pending one cancelled, a running one stopping for a cancel), so that
 * once the record is committed a restart honours the cancel. now_ms is
 * the finished_at of such a pending task. */
void aw_task_record_of(const aw_task_t *t, int64_t now_ms, aw_task_record_t *r);

#endif
