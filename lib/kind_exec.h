/*
 * kind_exec.h — the `exec` kind: runs a program without a shell, captures
 * its output, and reports how it ended (contract: "Built-in kinds", exec).
 *
 * The kind itself (aw_kind_exec, declared in kind.h) is registered with the
 * engine like any other. This header adds what only exec has: its
 * configuration, and read access to a job's output for
 * GET /v1/tasks/{id}/output (plain and follow=true).
 *
 * Precondition: the process ignores SIGPIPE (awaitd's main does), because a
 * job may exit without reading the stdin it was given; the write then
 * fails with EPIPE instead of killing the daemon.
 */
#ifndef AW_KIND_EXEC_H
#define AW_KIND_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kind.h"
#include "task.h"

#define AW_EXEC_DEFAULT_PATH        "/usr/local/bin:/usr/bin:/bin"
#define AW_EXEC_DEFAULT_MAX_OUTPUT  ((size_t)1 << 20)
#define AW_EXEC_DEFAULT_GRACE_MS    5000

typedef struct aw_exec_config {
    /* Programs that may run: absolute paths or fnmatch(3) globs with
     * FNM_PATHNAME ("*" stays inside one path component), matched against
     * the resolved absolute path. Empty: nothing may run. */
    const char *const *allow;
    size_t      nallow;
    int64_t     kill_grace_ms;  /* SIGTERM -> SIGKILL; >= 0 */
    size_t      max_output;     /* per stream: the default and the ceiling
                                 * of args.max_output */
    bool        allow_root;     /* run jobs while the daemon's euid is 0 */
    const char *path;           /* PATH for jobs whose env has none; NULL:
                                 * AW_EXEC_DEFAULT_PATH */
} aw_exec_config_t;

/* Copies c (the caller may free it afterwards) and applies it to tasks
 * prepared from now on. NULL restores the defaults (nothing allowed) and
 * frees the copy: call it at shutdown so that leak checkers see nothing.
 * Returns 0, AW_EINVAL with err set (an allow entry that is not absolute,
 * a negative grace), or -ENOMEM; on error the old configuration stays.
 * Loop thread only (the configuration is process-wide, as the kind is). */
int aw_exec_configure(const aw_exec_config_t *c, char *err, size_t errlen);

/* Streams of aw_exec_output. */
enum { AW_STDOUT = 1, AW_STDERR = 2 };

/* The bytes of one stream kept so far (at most max_output; the rest was
 * counted and dropped), while the task runs and after it ended, until the
 * task is freed. *data is valid until control returns to the loop; it is
 * not NUL-terminated and may hold any bytes. A pending task has none yet.
 * Once aw_task_done(t), the output is final.
 * Returns 0, AW_ENOOUTPUT when t is not an exec task, AW_EINVAL for
 * another stream number. */
int aw_exec_output(const aw_task_t *t, int stream, const char **data, size_t *len);
/* Bytes dropped beyond max_output on a stream (0 for a non-exec task). */
uint64_t aw_exec_dropped(const aw_task_t *t, int stream);

/* Follow subscriptions, for output?follow=true.
 *
 * cb(arg) is called from the loop, never from inside aw_exec_watch or
 * aw_exec_unwatch: once soon after the watch starts, then after new bytes
 * arrived on either stream, and when the task ends (several events in one
 * loop turn make one call). It carries no data: the watcher reads with
 * aw_exec_output from its own offset and stops when aw_task_done(t) and it
 * has sent everything. cb may call aw_exec_unwatch on any watch.
 *
 * Lifetime: a watch holds a reference on its task (aw_task_ref), so the
 * task and its output stay valid while watched, even after a DELETE or
 * retention forgot it; aw_exec_unwatch drops that reference and may free
 * the task. Every watch must be unwatched exactly once (the HTTP layer does
 * it in its request-completed callback). */
typedef void (*aw_output_cb)(void *arg);
typedef struct aw_output_watch aw_output_watch_t;

/* Returns the watch, or NULL when t is not an exec task or on ENOMEM. */
aw_output_watch_t *aw_exec_watch(aw_task_t *t, aw_output_cb cb, void *arg);
void aw_exec_unwatch(aw_output_watch_t *w);

#endif
