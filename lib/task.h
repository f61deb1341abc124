/*
 * task.h — the task record and its state machine.
 *
 * States: pending -> running -> succeeded | failed | cancelled | timed_out
 * (pending may also go straight to cancelled). A terminal state never
 * changes. The engine (engine.c) owns every task and is the only writer of
 * `state`; kinds finish tasks through aw_task_succeed/aw_task_fail/
 * aw_task_finish_cancelled in engine.h.
 *
 * Memory: tasks are reference-counted so that a waiter that still holds a
 * task which a client DELETEs (or retention forgets) never reads freed
 * memory. The table holds one reference while the task is listed.
 * Field order keeps the record small: a million tasks must fit in about
 * 256 bytes each, everything included.
 */
#ifndef AW_TASK_H
#define AW_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "deadline_heap.h"
#include "task_id.h"

typedef enum aw_task_state {
    AW_PENDING = 0,
    AW_RUNNING,
    AW_SUCCEEDED,
    AW_FAILED,
    AW_CANCELLED,
    AW_TIMED_OUT,
    AW_NSTATES
} aw_task_state_t;

/* error.type values of the contract. */
typedef enum aw_error_type {
    AW_ERR_NONE = 0,
    AW_ERR_CANCELLED,       /* "cancelled" */
    AW_ERR_TIMEOUT,         /* "timeout" */
    AW_ERR_TASK,            /* "task_error" */
    AW_ERR_EXIT_STATUS,     /* "exit_status" */
    AW_ERR_SIGNAL,          /* "signal" */
    AW_ERR_SPAWN,           /* "spawn_error" */
    AW_ERR_HTTP,            /* "http_error" */
    AW_ERR_INTERRUPTED,     /* "interrupted" */
    AW_ERR_FORBIDDEN,       /* "forbidden": the configuration refused it at start */
    AW_ERR_HTTP_STATUS,     /* "http_status": http with fail_on_status, a status >= 400 */
    AW_ERR_DEPENDENCY,      /* "dependency": a task named in `after` ended otherwise */
    AW_ERR_CHILD_FAILED,    /* "child_failed": a group's child ended otherwise */
    AW_NERRTYPES
} aw_error_type_t;

/* Why a running task is being stopped (see aw_kind_t.cancel). */
typedef enum aw_stop_reason {
    AW_STOP_NONE = 0,
    AW_STOP_CANCEL,
    AW_STOP_TIMEOUT,
    AW_STOP_INTERRUPT,      /* the daemon is stopping */
} aw_stop_reason_t;

struct aw_kind;
struct aw_queue;
struct aw_wait_link;
struct aw_task_links;

/* A completion notification (webhook) asked for at create, and how its
 * delivery stands (contract: the task's "notify" field). The engine keeps
 * and stores it; notify.c delivers it. */
typedef enum aw_notify_state {
    AW_NOTIFY_PENDING = 0,
    AW_NOTIFY_DELIVERED,
    AW_NOTIFY_FAILED,
} aw_notify_state_t;

typedef struct aw_task_notify {
    char    *target;        /* owned: compact JSON {"url": ..., "headers": {...}} */
    char    *last_error;    /* owned; NULL: none */
    int64_t  next_at;       /* wall ms before which no attempt starts; 0: none */
    void    *delivery;      /* notify.c's while a delivery is under way; not stored */
    uint32_t attempts;      /* attempts that have ended */
    int32_t  last_status;   /* HTTP status of the last attempt; -1: none */
    uint8_t  state;         /* aw_notify_state_t */
} aw_task_notify_t;

/* A retry policy asked for at create ("retry"), and where the task's
 * attempts stand (contract: "attempt", "last_error"). Parsed and timed by
 * retry.c; the engine sends a failed attempt back to pending with it. */
typedef struct aw_task_retry {
    char    *policy;            /* owned: compact JSON {"attempts","backoff",...} */
    char    *last_error_message;/* owned; NULL: none */
    int64_t  backoff_ms;        /* the wait after the first failed attempt */
    int64_t  max_backoff_ms;    /* no wait is longer */
    double   factor;            /* each further wait is this many times longer */
    int64_t  retry_at;          /* wall ms of the next attempt while it waits
                                   for its backoff; 0: not waiting */
    uint32_t attempts;          /* at most this many attempts in all */
    uint32_t attempt;           /* the current (or last) one, 1 on the first */
    uint8_t  last_error_type;   /* the previous attempt's; AW_ERR_NONE: none */
} aw_task_retry_t;

/* Strings most tasks never have, behind one pointer: a million pending
 * tasks then pay 8 bytes for them instead of 24. */
typedef struct aw_task_extra {
    char *name;                         /* owned; NULL when none */
    char *idempotency_key;              /* owned; NULL when none */
    char *error_message;                /* owned; NULL when no error */
    aw_task_notify_t *notify;           /* owned; NULL when none asked */
    int64_t not_before;                 /* wall ms before which it does not
                                           start ("delay", "start_at"); 0: none */
    aw_task_retry_t  *retry;            /* owned; NULL when no retry asked */
    struct aw_task_links *links;        /* owned; after, parent, children
                                           (task_links.h); NULL when none */
} aw_task_extra_t;

typedef struct aw_task aw_task_t;
struct aw_task {
    char                  id[AW_TASK_ID_SIZE];
    const struct aw_kind *kind;
    struct aw_queue      *queue;
    char                 *result;       /* compact JSON or NULL, owned */
    aw_task_extra_t      *extra;        /* owned; NULL when all are NULL */
    int64_t               timeout_ms;   /* -1: none */
    int64_t               started_at;   /* wall ms, 0 = not yet */
    int64_t               finished_at;  /* wall ms, 0 = not yet */
    int64_t               timeout_at;   /* monotonic ms, while running */
    aw_task_t            *hash_next;    /* task_table chains */
    aw_task_t            *prev, *next;  /* task_table creation order */
    uint32_t              queue_slot;   /* 1-based place in its queue's
                                           heap (queue.h); 0: not in it */
    int8_t                priority;     /* -100..100; higher starts first.
                                           Fills the padding beside
                                           queue_slot: the task stays as big */
    struct aw_wait_link  *waiters;      /* waiters not yet fired */
    union {                             /* the kind's private state */
        int64_t i;
        void   *p;
    } kdata;
    aw_heap_node_t        deadline;     /* wake/timeout or retention */
    uint64_t              bytes;        /* counted in the engine's held_bytes
                                           (aw_task_bytes when last taken) */
    uint32_t              refs;
    uint8_t               state;        /* aw_task_state_t */
    uint8_t               error_type;   /* aw_error_type_t */
    uint8_t               stop_reason;  /* aw_stop_reason_t */
    /* One byte of flags. The last five belong to durability (store.c):
     * they let a change that must be committed before it takes effect
     * wait for its commit without a second record. */
    uint8_t               listed : 1;   /* in the task table */
    uint8_t               held : 1;     /* created, not yet committed: a
                                           side-effect kind does not start,
                                           lookups do not find it */
    uint8_t               written : 1;  /* held, and in a batch in flight */
    uint8_t               dirty : 1;    /* changed since its last batch */
    uint8_t               cancel_asked : 1; /* a cancel awaits its commit */
    uint8_t               forget_asked : 1; /* a delete awaits its commit */
    char                  args[];       /* compact JSON object, allocated
                                           with the task: it never changes */
};

/* The optional strings; NULL when not set. */
const char *aw_task_name(const aw_task_t *t);
const char *aw_task_idempotency_key(const aw_task_t *t);
const char *aw_task_error_message(const aw_task_t *t);
aw_task_notify_t *aw_task_notify(const aw_task_t *t);
/* Gives t a notification for target (compact JSON, copied), in state
 * pending with no attempt. Returns 0 or -ENOMEM. */
int aw__task_set_notify(aw_task_t *t, const char *target);
/* The wall ms before which t does not start; 0: none. The setter
 * returns 0 or -ENOMEM (0 clears without allocating). */
int64_t aw_task_not_before(const aw_task_t *t);
int aw__task_set_not_before(aw_task_t *t, int64_t wall_ms);
/* The retry policy, NULL when none was asked (one attempt). */
aw_task_retry_t *aw_task_retry(const aw_task_t *t);
/* The contract's "attempt": 1 on the first, and always 1 without a policy. */
uint32_t aw_task_attempt(const aw_task_t *t);
/* Gives t a copy of policy (its strings copied too). Returns 0 or -ENOMEM. */
int aw__task_set_retry(aw_task_t *t, const aw_task_retry_t *policy);
/* Contract names of aw_notify_state_t; parse returns -1 when unknown. */
const char *aw_notify_state_name(int s);
int  aw_notify_state_parse(const char *s);
enum aw_task_string { AW_TASK_NAME, AW_TASK_IDEMPOTENCY_KEY, AW_TASK_ERROR_MESSAGE };
/* Sets one of them to a copy of s (NULL clears). Returns 0 or -ENOMEM. */
int aw__task_set_string(aw_task_t *t, enum aw_task_string which, const char *s);

/* Contract names: "pending", ..., and "cancelled", "timeout", ... */
const char *aw_task_state_name(aw_task_state_t s);
const char *aw_error_type_name(aw_error_type_t t);
/* Parse a state or error type name; return -1 when unknown. */
int  aw_task_state_parse(const char *s);
int  aw_error_type_parse(const char *s);
static inline bool aw_state_done(int s) { return s >= AW_SUCCEEDED; }
static inline bool aw_task_done(const aw_task_t *t) { return aw_state_done(t->state); }
/* created_at, derived from the id (saves 8 bytes a task). */
int64_t aw_task_created_at(const aw_task_t *t);

/* Reference counting: aw_task_unref frees the task (releasing the kind's
 * state) when the last reference goes. */
void aw_task_ref(aw_task_t *t);
void aw_task_unref(aw_task_t *t);

#endif
