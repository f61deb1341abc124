/*
 * kind_exec.h — the `exec` kind: runs a program without a shell, captures
 * its output, and reports how it ended (contract: "Built-in kinds", exec).
 *
 * The kind itself (aw_kind_exec, declared in kind.h) is registered with the
 * engine like any other. This header adds what only exec has: the shape
 * of its configuration.
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
     * the program's fully resolved path (realpath: no symlink left), both
     * as written and with the symlinks of their own directories resolved
     * when configured. Empty: nothing may run. */
    const char *const *allow;
    size_t      nallow;
    int64_t     kill_grace_ms;  /* SIGTERM -> SIGKILL; >= 0 */
    size_t      max_output;     /* per stream: the default and the ceiling
                                 * of args.max_output */
    bool        allow_root;     /* run jobs while the daemon's euid is 0 */
    bool        allow_loader_env;   /* let args.env set the dynamic loader's
                                     * variables (LD_*, GCONV_PATH...: see kind_exec.c) */
    const char *path;           /* PATH for jobs whose env has none; NULL:
                                 * AW_EXEC_DEFAULT_PATH */
} aw_exec_config_t;

/* The configuration goes to the kind through aw_engine_configure_kind(e,
 * "exec", &config, err, errlen), which copies it (the caller may free it
 * afterwards) and applies it to tasks prepared from then on. Errors:
 * AW_EINVAL with err set (an allow entry that is not absolute, a negative
 * grace) or -ENOMEM; the old configuration then stays. Each engine has its
 * own; before any, nothing may run. Output goes through aw_task_output and
 * aw_task_watch_output (engine.h) like any kind's. */

/* Bytes dropped beyond max_output on a stream (0 for a non-exec task). */
uint64_t aw_exec_dropped(const aw_task_t *t, int stream);

#endif
