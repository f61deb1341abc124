/*
 * child.c — posix_spawn with pipes and a clean slate, and path rules (see
 * child.h).
 *
 * posix_spawn rather than fork: glibc implements it with
 * clone(CLONE_VM|CLONE_VFORK), so starting a job does not copy the page
 * tables of a daemon holding a million tasks, and it reports exec errors
 * (ENOENT, EACCES, E2BIG) as its return value instead of through a child
 * that exits 127.
 *
 * Descriptor hygiene is layered: everything the daemon opens is O_CLOEXEC,
 * and the child additionally closes every fd from 3 up before exec
 * (closefrom, glibc 2.34), so even a descriptor a library opened without
 * O_CLOEXEC cannot leak into a job.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

/* Moves a child-side fd above 2, so that the dup2 file actions onto 0, 1
 * and 2 can never overwrite one another (possible when the daemon runs
 * with a standard descriptor closed). */
static int lift(int *fd)
{
    if (*fd > 2)
        return 0;
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0)
        return -errno;
    close(*fd);
    *fd = nfd;
    return 0;
}

/* A pipe whose both ends are O_CLOEXEC and whose parent end (index
 * parent) is O_NONBLOCK; the child's end stays blocking, as programs
 * expect of their standard streams. */
static int make_pipe(int p[2], int parent)
{
    if (pipe2(p, O_CLOEXEC) < 0) {
        p[0] = p[1] = -1;
        return -errno;
    }
    int rc = lift(&p[1 - parent]);
    if (rc == 0 && fcntl(p[parent], F_SETFL, O_NONBLOCK) < 0)
        rc = -errno;
    if (rc < 0)
        close_pair(p);
    return rc;
}

int aw_spawn(const aw_spawn_opts_t *o, aw_child_t *c)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int rc;

    if ((o->stdin_pipe && (rc = make_pipe(in, 1)) < 0) ||
        (rc = make_pipe(out, 0)) < 0 || (rc = make_pipe(err, 0)) < 0)
        goto out_pipes;
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        rc = -rc;
        goto out_pipes;
    }
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        rc = -rc;
        goto out_fa;
    }
    /* Each call can only fail with ENOMEM (or EINVAL for a bad fd, which
     * these are not); the first error is kept. */
    rc = o->stdin_pipe ? posix_spawn_file_actions_adddup2(&fa, in[0], 0)
                       : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (!rc && o->cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigemptyset(&none);
    /* Not sigfillset: glibc leaves its two internal signals (32, 33) out
     * of it, and posix_spawn would then hand them to the job ignored. */
    memset(&all, 0xff, sizeof all);
    if (!rc) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc) rc = posix_spawn(&c->pid, o->path, &fa, &attr, o->argv, o->envp);
    rc = -rc;
    posix_spawnattr_destroy(&attr);
out_fa:
    posix_spawn_file_actions_destroy(&fa);
out_pipes:
    /* The child's ends belong to the child now (or to nobody). */
    if (in[0] >= 0) close(in[0]);
    if (out[1] >= 0) close(out[1]);
    if (err[1] >= 0) close(err[1]);
    if (rc < 0) {
        if (in[1] >= 0) close(in[1]);
        if (out[0] >= 0) close(out[0]);
        if (err[0] >= 0) close(err[0]);
        return rc;
    }
    c->in = in[1];
    c->out = out[0];
    c->err = err[0];
    /* pidfd_open's fd is O_CLOEXEC by definition. Failure (ENOSYS on old
     * kernels, EMFILE) is not fatal: the caller polls instead. */
#ifdef SYS_pidfd_open
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
#else
    c->pidfd = -1;
#endif
    return 0;
}

int aw_path_join(const char *dir, const char *name, char *out, size_t outlen)
{
    size_t len = 0;
    const char *parts[2] = { name[0] == '/' ? NULL : dir, name };
    bool absolute = name[0] == '/' || (dir && dir[0] == '/');
    if (outlen < 2)
        return -ENAMETOOLONG;
    if (absolute)
        out[len++] = '/';
    for (int i = 0; i < 2; i++) {
        const char *s = parts[i];
        while (s && *s) {
            while (*s == '/')
                s++;
            size_t n = strcspn(s, "/");
            if (n == 0)
                break;
            if (n == 1 && s[0] == '.') {
                s += n;
                continue;
            }
            if (n == 2 && s[0] == '.' && s[1] == '.')
                return -EINVAL;
            if (len && out[len - 1] != '/')
                out[len++] = '/';
            if (len + n + 1 > outlen)
                return -ENAMETOOLONG;
            memcpy(out + len, s, n);
            len += n;
            s += n;
        }
    }
    out[len] = '\0';
    return 0;
}

int aw_path_lookup(const char *name, const char *path_list, char *out, size_t outlen)
{
    const char *p = path_list;
    while (p && *p) {
        size_t n = strcspn(p, ":");
        /* Only absolute entries: "" and relative ones mean the daemon's
         * working directory, which no client chose. */
        if (n > 0 && p[0] == '/' && n < 4096) {
            char dir[4096];
            struct stat st;
            memcpy(dir, p, n);
            dir[n] = '\0';
            if (aw_path_join(dir, name, out, outlen) == 0 &&
                stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return 0;
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return -ENOENT;
}

const char *aw_signal_name(int sig, char *buf)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, 16, "SIG%.12s", abbrev);
    else
        snprintf(buf, 16, "SIG%d", sig);
    return buf;
}
