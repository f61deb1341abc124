/*
 * kind.h — the interface every task kind implements.
 *
 * A kind is a resumable coroutine driven by loop events: `start` begins the
 * work and returns at once; the kind finishes the task later, from a timer
 * (aw_task_set_wake -> `wake`), an fd event or a child-exit event of its
 * own, by calling aw_task_succeed / aw_task_fail / aw_task_finish_cancelled.
 * The engine never knows what a kind does, so new kinds (exec, http) plug in
 * without touching it.
 *
 * Lifecycle: a kind may keep per-engine state (exec its configuration, the
 * http kind a libcurl multi handle). `init` makes it when the kind is
 * registered with aw_engine_add_kind, `configure` replaces its settings
 * (start-up and SIGHUP), `fini` frees it with the engine. Kinds read it back
 * with aw_engine_kind_state. No kind keeps process-wide state, so two
 * engines (unit tests) never share anything.
 */
#ifndef AW_KIND_H
#define AW_KIND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "task.h"

struct aw_engine;

/* Output streams of kinds that keep output (exec). */
enum { AW_STDOUT = 1, AW_STDERR = 2 };

/* Follow subscriptions to a task's output (see aw_task_watch_output). */
typedef void (*aw_output_cb)(void *arg);
typedef struct aw_output_watch aw_output_watch_t;

typedef struct aw_kind {
    const char *name;
    /* Optional (NULL): per-engine state. init returns 0 or -ENOMEM; fini
     * is called once with what init stored, after every task is gone. */
    int  (*init)(struct aw_engine *e, void **state);
    void (*fini)(void *state);
    /* Optional: applies a configuration whose type the kind's header
     * names (aw_exec_config_t for exec). Returns 0, AW_EINVAL with err
     * set, or -ENOMEM; on error the previous configuration stays. */
    int  (*configure)(void *state, const void *config, char *err, size_t errlen);
    /* Checks `args` (a JSON object) and sets up t->kdata. Returns 0,
     * AW_EINVAL with a message in err, or AW_EFORBIDDEN (allow-lists).
     * Called for disabled kinds too: the shape of a request is checked
     * before whether its kind is enabled; a kind that is disabled only
     * checks the shape and leaves kdata unset. On error nothing is kept. */
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
    /* Set for kinds whose work has effects outside the daemon (a program
     * runs, a request is sent): with a durable store such a task starts
     * only once its creation is committed, so a create the store refused
     * never ran. Kinds without effects (sleep) start at once; their
     * answers wait for the commit all the same. */
    int  start_after_commit;
    /* Optional: output streams (GET .../output). output returns 0 with
     * the bytes kept so far (valid until control returns to the loop),
     * or AW_EINVAL for a stream other than AW_STDOUT/AW_STDERR. watch and
     * unwatch follow aw_task_watch_output's contract. */
    int  (*output)(const aw_task_t *t, int stream, const char **data, size_t *len);
    aw_output_watch_t *(*watch)(aw_task_t *t, aw_output_cb cb, void *arg);
    void (*unwatch)(aw_output_watch_t *w);
    /* Optional: the process group a running task owns (0: none), kept by
     * the store so that the next start can kill what a crash of the
     * daemon left behind. */
    pid_t (*process_group)(const aw_task_t *t);
    /* Optional: the bytes the kind keeps for t besides its args and
     * result (exec: the job and its output buffers), for the engine's
     * memory budget. Read when t is admitted and when it finishes. */
    size_t (*bytes)(const aw_task_t *t);
    /* Optional: a cap of the kind's own on tasks running at once (http:
     * [http] max_transfers), beside the queues' concurrency. Returns
     * whether one more may start now. The engine asks it for the task at
     * the head of a queue (the top of its heap: highest priority, then
     * oldest): while it says no, that task and the ones behind it in the
     * same queue stay pending, in the queue's order (the queue's heap is
     * the wait list; nothing is moved). A kind whose running count
     * drops says nothing: every finish dispatches every queue again. A
     * kind that raises its cap (configure) gets a dispatch from
     * aw_engine_configure_kind. */
    bool (*has_slot)(const void *state);
    /* Optional: makes t->kdata (set by prepare, used by an attempt that
     * has ended) ready for another start: a retry's next attempt. Without
     * it the engine releases kdata and runs prepare again. */
    void (*reset)(struct aw_engine *e, aw_task_t *t);
    /* Set for kinds that only drive child tasks (group): such a task
     * never takes a queue slot; it starts as soon as nothing blocks it
     * (task_links.h) and is not stopped by aw_engine_interrupt_all (it
     * ends when its children do, by its own rules). */
    int  no_slot;
    /* Optional: a child of t (task_links.h) has ended; t is not done.
     * Called at once from the child's finish (never during a restore). */
    void (*child_done)(struct aw_engine *e, aw_task_t *t, aw_task_t *child);
    /* Optional: t was running when the daemon stopped and is read back
     * (aw_engine_end_restore, after every task is): instead of ending
     * interrupted, the kind takes it up again from its children's states. */
    void (*resume)(struct aw_engine *e, aw_task_t *t);
} aw_kind_t;

extern const aw_kind_t aw_kind_sleep;
extern const aw_kind_t aw_kind_exec;    /* kind_exec.c; its extras: kind_exec.h */
extern const aw_kind_t aw_kind_http;    /* kind_http.c; its extras: kind_http.h */
extern const aw_kind_t aw_kind_group;   /* kind_group.c: children, task_links.h */

#endif
