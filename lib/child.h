/*
 * child.h — starting a program without a shell, and the path rules that
 * decide which file is started.
 *
 * aw_spawn() starts a program with the hygiene a daemon owes its
 * children: a process group of its own (so the whole job can be
 * signalled), an empty signal mask and default dispositions (the daemon
 * ignores SIGPIPE; the child must not), stdin/stdout/stderr on fresh pipes
 * and no other file descriptor, and SIGKILL from the kernel when the
 * daemon dies, so that a daemon killed with SIGKILL leaves no job running
 * unsupervised. It returns as soon as the program has been exec'd; the
 * caller watches the pipes and the child's exit on its loop. Nothing here
 * waits for a job or keeps state.
 */
#ifndef AW_CHILD_H
#define AW_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct aw_spawn_opts {
    const char  *path;          /* absolute path of the program to run */
    char *const *argv;          /* NULL-terminated, argv[0] as the user gave it */
    char *const *envp;          /* NULL-terminated, exactly the child's environment */
    const char  *cwd;           /* NULL: the daemon's */
    bool         stdin_pipe;    /* false: stdin is /dev/null */
} aw_spawn_opts_t;

typedef struct aw_child {
    pid_t pid;                  /* also the child's process group id */
    int   pidfd;                /* readable when the child exits; -1 if the
                                 * kernel has no pidfd_open (before 5.3) */
    int   in;                   /* write end of its stdin, -1 without stdin_pipe */
    int   out, err;             /* read ends of its stdout and stderr */
} aw_child_t;

/* Starts o->path. Returns 0 with *c filled (every fd O_CLOEXEC, the pipe
 * ends O_NONBLOCK), or -errno (-ENOENT, -EACCES, -E2BIG, -EMFILE, a chdir
 * error for o->cwd, ...) with nothing left open and no child left: a child
 * that failed before its exec has been reaped. The caller must later reap
 * c->pid and close the fds.
 *
 * The parent-death SIGKILL (PR_SET_PDEATHSIG) is tied by the kernel to the
 * calling thread, not to the process: call aw_spawn only from a thread
 * that lives as long as the daemon (awaitd's main loop thread), or jobs
 * die with the thread. The signal reaches the program itself, not the
 * processes it starts, and a program whose exec changes its credentials
 * (set-user-ID, set-group-ID, file capabilities) loses it.
 *
 * The calling thread is suspended until the exec, with its signals
 * blocked meanwhile; the child runs in the daemon's memory until then and
 * calls only async-signal-safe functions, so other threads may hold any
 * lock. */
int aw_spawn(const aw_spawn_opts_t *o, aw_child_t *c);

/* Joins dir and name (name may be absolute: dir is then ignored) into out
 * with "." components and repeated slashes removed. Returns 0, -EINVAL
 * when a ".." component appears (it cannot be checked against an
 * allow-list without resolving symlinks, so it is refused), or
 * -ENAMETOOLONG. The result is absolute when dir or name is. */
int aw_path_join(const char *dir, const char *name, char *out, size_t outlen);

/* Looks up name (no slash) in the colon-separated list path_list, as
 * execvp would, but only in absolute entries: the first entry with an
 * executable regular file wins. Returns 0 with out set, or -ENOENT.
 * Each entry costs a stat(2); it runs at task creation. */
int aw_path_lookup(const char *name, const char *path_list, char *out, size_t outlen);

/* "SIGTERM" for SIGTERM; "SIG<n>" for a number without a name. buf must
 * hold 16 bytes; the result points into it or to a static string. */
const char *aw_signal_name(int sig, char *buf);

#endif
