/*
 * child.c — starting a job with pipes and a clean slate, and path rules
 * (see child.h).
 *
 * Why not posix_spawn any more: a job must not outlive a daemon that was
 * killed with SIGKILL, which only the child itself can arrange, with
 * prctl(PR_SET_PDEATHSIG) between its creation and its exec. posix_spawn
 * has no hook for that, so aw_spawn does what glibc's posix_spawn does
 * inside: clone(CLONE_VM|CLONE_VFORK) onto a stack of its own, followed by
 * a short list of system calls and execve. Like posix_spawn, this does not
 * copy the page tables of a daemon holding a million tasks (the child runs
 * in the daemon's memory until it execs, while the calling thread is
 * suspended), and exec errors (ENOENT, EACCES, E2BIG) come back as the
 * return value rather than as a child that exits 127.
 *
 * Because the child shares the daemon's memory and runs while other
 * threads of the daemon may hold locks (the heap's, stdio's), it calls
 * nothing but async-signal-safe functions, system call wrappers almost all:
 * no malloc, no stdio, nothing that takes a lock. Everything it needs is prepared by the parent
 * in a struct on the parent's stack, and the child reports its one error
 * through the same struct, which the parent reads once clone has returned
 * (CLONE_VFORK holds the parent until the child has exec'd or exited).
 *
 * Descriptor hygiene is layered: everything the daemon opens is O_CLOEXEC,
 * and the child additionally closes every fd from 3 up before exec
 * (close_range), so even a descriptor a library opened without O_CLOEXEC
 * cannot leak into a job.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

/* The child's stack. The child's own frame is small and execve copies
 * argv and envp from where they are, so this only has to hold a few libc
 * (or sanitizer interceptor) frames; a guard page below it turns an
 * overflow into a fault instead of a write into the daemon's memory. */
#define CHILD_STACK (64 * 1024)

/* The child's code must not be instrumented by AddressSanitizer. It runs
 * on a stack ASan does not know and never returns, so redzones poisoned
 * there would stay poisoned; a frame ASan took from its fake stack (for
 * use-after-return detection) would belong to the calling thread, whose
 * thread-local state the child shares, and never be given back; and the
 * call ASan puts before _exit would find itself on an unknown stack. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ASAN __attribute__((no_sanitize_address))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef NO_ASAN
#define NO_ASAN
#endif

static void close_pair(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

/* Moves a child-side fd above 2, so that the dup2 calls onto 0, 1 and 2
 * in the child can never overwrite one another (possible when the daemon
 * runs with a standard descriptor closed). */
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

/* What the child needs, prepared by the parent, and what it reports. */
struct spawn_ctx {
    const aw_spawn_opts_t *o;
    int   in, out, err;         /* child ends, all > 2; in is -1 for /dev/null */
    pid_t ppid;                 /* the daemon's pid, read before the clone */
    int   error;                /* set by the child when it does not exec */
};

/* Records the failing step's errno for the parent and ends the child. The
 * status is never looked at: the parent reaps the child and returns the
 * errno. */
NO_ASAN __attribute__((noreturn))
static void child_fail(struct spawn_ctx *x, int e)
{
    x->error = e ? e : EINVAL;
    _exit(127);
}

/* The child, between clone and execve. Every call is async-signal-safe and
 * takes no lock, and the order matters: dispositions before the mask, so
 * that no handler of the daemon can run here; the parent check after the
 * prctl, so that a parent that died in between is noticed. */
NO_ASAN
static int child_main(void *arg)
{
    struct spawn_ctx *x = arg;
    const aw_spawn_opts_t *o = x->o;
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t none;

    /* Every disposition to SIG_DFL: a handler of the daemon must not run in
     * its memory here, and SIG_IGN (SIGPIPE in awaitd) would survive the
     * exec. SIGKILL and SIGSTOP cannot be changed. glibc's sigaction
     * refuses its two internal signals (32 and 33) with EINVAL, yet the
     * daemon may have inherited them ignored (GNU make, for one, starts
     * its commands that way), so those go to the kernel directly: an
     * all-zero kernel sigaction is SIG_DFL with no flags and an empty
     * mask whatever the order of its fields on the architecture. */
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (sigaction(sig, &dfl, NULL) < 0 && errno == EINVAL) {
            unsigned long kdfl[8] = { 0 };
            syscall(SYS_rt_sigaction, sig, kdfl, NULL, (NSIG - 1) / 8);
        }
    }
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        child_fail(x, errno);

    if (setpgid(0, 0) < 0)
        child_fail(x, errno);

    /* SIGKILL when the parent dies, however it dies. The kernel ties this
     * to the thread that created the child, not to the process: it works
     * because awaitd spawns from its main (loop) thread, which lives as
     * long as the process. If the parent died before the prctl took
     * effect, the child has already been reparented and no signal will
     * come: the pid check catches that. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        child_fail(x, errno);
    if (getppid() != x->ppid)
        child_fail(x, ESRCH);

    if (x->in >= 0) {
        if (dup2(x->in, 0) < 0)
            child_fail(x, errno);
    } else {
        /* Not O_CLOEXEC: if it lands on 0 it is stdin itself. Landing on 1
         * or 2 is harmless, as those are replaced just below. */
        int fd = open("/dev/null", O_RDONLY);
        if (fd < 0)
            child_fail(x, errno);
        if (fd != 0 && dup2(fd, 0) < 0)
            child_fail(x, errno);
    }
    if (dup2(x->out, 1) < 0 || dup2(x->err, 2) < 0)
        child_fail(x, errno);
    if (o->cwd && chdir(o->cwd) < 0)
        child_fail(x, errno);
    /* The second layer of fd hygiene. Where close_range is missing
     * (kernels before 5.9) the first layer, O_CLOEXEC, still holds, and a
     * close loop up to RLIMIT_NOFILE would cost more than it is worth. */
#ifdef SYS_close_range
    syscall(SYS_close_range, 3U, ~0U, 0U);
#endif
    execve(o->path, o->argv, o->envp);
    child_fail(x, errno);
}

/* Clones the child and waits for its exec or exit. Returns its pid, or
 * -errno when it could not be created or did not exec (it is reaped then). */
static pid_t clone_child(struct spawn_ctx *x)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t guard = page > 0 ? (size_t)page : 4096;
    char *stack = mmap(NULL, guard + CHILD_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -errno;
    if (mprotect(stack, guard, PROT_NONE) < 0) {
        int e = errno;
        munmap(stack, guard + CHILD_STACK);
        return -e;
    }

    /* All signals blocked across the clone, so that none is delivered to
     * the child before it has reset the dispositions (a handler would run
     * in the daemon's memory, on the child's stack). The child inherits
     * this mask and clears it itself. pthread_sigmask leaves glibc's two
     * internal signals unblocked; they are only ever sent to the daemon's
     * own threads by thread id, and the child is none of those. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    x->ppid = getpid();
    x->error = 0;
    /* clone takes the top of the stack: it grows down everywhere but on
     * PA-RISC. */
    pid_t pid = clone(child_main, stack + guard + CHILD_STACK,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, x);
    int e = pid < 0 ? errno : x->error;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, guard + CHILD_STACK);
    if (pid < 0)
        return -e;
    if (e) {
        /* It has already exited (_exit before CLONE_VFORK let us go), so
         * this returns at once. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -e;
    }
    return pid;
}

int aw_spawn(const aw_spawn_opts_t *o, aw_child_t *c)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    int rc;

    if ((o->stdin_pipe && (rc = make_pipe(in, 1)) < 0) ||
        (rc = make_pipe(out, 0)) < 0 || (rc = make_pipe(err, 0)) < 0)
        goto out_pipes;
    struct spawn_ctx x = { .o = o, .in = in[0], .out = out[1], .err = err[1] };
    pid_t pid = clone_child(&x);
    if (pid < 0)
        rc = (int)pid;
    else
        c->pid = pid;
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
