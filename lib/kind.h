/*
 * kind.h — the interface every task kind implements.
 *
 * A kind is a resumable coroutine driven by loop events: `start` begins the
 * work and returns at once; the kind finishes the task later, from a timer
 * (aw_task_set_wake -> `wake`), an fd event or a child-exit event of its
 * own, by calling aw_task_succeed / aw_task_fail / aw_task_finish_cancelled.
 * The engine never knows what a kind does, so new kinds (exec, http) plug in
 * without touching it.
 */
#ifndef AW_KIND_H
#define AW_KIND_H

#include <jansson.h>
#include <stddef.h>

#include "task.h"

struct aw_engine;

typedef struct aw_kind {
    const char *name;
    /* Checks `args` (a JSON object) and sets up t->kdata. Returns 0,
     * AW_EINVAL with a message in err, or AW_EFORBIDDEN (allow-lists).
     * Called for disabled kinds too: the shape of a request is checked
     * before whether its kind is enabled. On error nothing is kept. */
    int  (*prepare)(struct aw_engine *e, aw_task_t *t, json_t *args,
                    char *err, size_t errlen);
    /* The task is now running. May finish it before returning. */
    void (*start)(struct aw_engine *e, aw_task_t *t);
    /* The time set with aw_task_set_wake has come. */
    void (*wake)(struct aw_engine *e, aw_task_t *t);
    /* Stops a running task (t->stop_reason says why). Returns 0 when the
     * task is finished before return, 1 when it will finish later with
     * aw_task_finish_cancelled (e.g. a child process must be reaped). */
    int  (*cancel)(struct aw_engine *e, aw_task_t *t);
    /* Frees t->kdata; called once, when the task itself is freed. May be
     * NULL when kdata owns nothing. */
    void (*release)(aw_task_t *t);
    /* Optional: the kind keeps the output streams of GET .../output. */
    int  has_output;
} aw_kind_t;

extern const aw_kind_t aw_kind_sleep;
extern const aw_kind_t aw_kind_exec;    /* kind_exec.c; its extras: kind_exec.h */
/* Shape-only stand-in for a kind not built yet: it validates args like the
 * real kind will, and can never be enabled. */
extern const aw_kind_t aw_kind_http_stub;

#endif
