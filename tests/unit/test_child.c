/*
 * test_child.c — aw_spawn (lib/child.c) on its own, with real programs:
 * pipes, exec errors returned as -errno with nothing left behind, the
 * clean slate a job starts from (signals, process group, fds), and that a
 * job dies with a daemon killed by SIGKILL.
 *
 * The jobs here write little, far less than a pipe holds, so a test can
 * reap the child first and then read everything it wrote without a loop.
 * The one wait with no event to block on (a process reparented away from
 * us dying) is a bounded poll of its state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

static char *const no_env[] = { NULL };

/* ---- helpers ---- */

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1;                       /* the DIR's own */
}

/* No child left, running or zombie. */
static void assert_no_children(void)
{
    int st;
    errno = 0;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Everything left in a non-blocking pipe whose writers are all gone, into
 * buf (NUL-terminated); the fd is closed. */
static void drain(int *fd, char *buf, size_t size)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(*fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail_msg("read: %s", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size - 1)
            fail_msg("more output than the test expects");
    }
    buf[len] = '\0';
    close(*fd);
    *fd = -1;
}

/* Reaps c (its output is still in the pipes), then reads both streams and
 * closes every fd of c. Returns the wait status. */
static int finish(aw_child_t *c, char *out, char *err, size_t size)
{
    int st;
    assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
    drain(&c->out, out, size);
    drain(&c->err, err, size);
    if (c->in >= 0)
        close(c->in);
    if (c->pidfd >= 0)
        close(c->pidfd);
    return st;
}

static void assert_exit(int st, int code)
{
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), code);
}

/* A spawn that must fail with want: the same number of fds before and
 * after, and no child left. */
static void assert_spawn_fails(const aw_spawn_opts_t *o, int want)
{
    aw_child_t c;
    int before = count_fds();
    assert_int_equal(aw_spawn(o, &c), want);
    assert_int_equal(count_fds(), before);
    assert_no_children();
}

/* Dead means gone, or a zombie: a process reparented to init or to a
 * subreaper may sit unreaped for a moment, and may never be reaped where
 * the init of a container does not reap. */
static bool is_dead(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *paren = strrchr(line, ')');     /* comm may hold ')' */
    return !paren || paren[1] == '\0' || paren[2] == 'Z' || paren[2] == 'X';
}

/* ---- tests ---- */

static void echo_prints_and_exits_0(void **state)
{
    (void)state;
    char *argv[] = { "echo", "hi", NULL };
    aw_spawn_opts_t o = { .path = "/bin/echo", .argv = argv, .envp = no_env };
    aw_child_t c;
    char out[256], err[256];
    assert_int_equal(aw_spawn(&o, &c), 0);
    assert_true(c.pid > 0);
    assert_int_equal(c.in, -1);
    assert_exit(finish(&c, out, err, sizeof out), 0);
    assert_string_equal(out, "hi\n");
    assert_string_equal(err, "");
    assert_no_children();
}

static void missing_program_is_enoent_and_leaves_nothing(void **state)
{
    (void)state;
    char *argv[] = { "nope", NULL };
    aw_spawn_opts_t o = { .path = "/nonexistent/nope", .argv = argv, .envp = no_env };
    assert_spawn_fails(&o, -ENOENT);
    o.stdin_pipe = true;
    assert_spawn_fails(&o, -ENOENT);
}

static void bad_cwd_is_enoent_and_leaves_nothing(void **state)
{
    (void)state;
    char *argv[] = { "true", NULL };
    aw_spawn_opts_t o = { .path = "/bin/true", .argv = argv, .envp = no_env,
                          .cwd = "/nonexistent/dir" };
    assert_spawn_fails(&o, -ENOENT);
    o.cwd = "/etc/passwd";
    assert_spawn_fails(&o, -ENOTDIR);
}

static void exec_errors_come_back_as_errno(void **state)
{
    (void)state;
    /* Not executable by anyone, root included. */
    char *argv[] = { "passwd", NULL, NULL };
    aw_spawn_opts_t o = { .path = "/etc/passwd", .argv = argv, .envp = no_env };
    assert_spawn_fails(&o, -EACCES);
    /* One argument longer than the kernel takes (128 KiB). */
    char *huge = malloc(200 * 1024);
    assert_non_null(huge);
    memset(huge, 'a', 200 * 1024 - 1);
    huge[200 * 1024 - 1] = '\0';
    argv[0] = "true";
    argv[1] = huge;
    o.path = "/bin/true";
    assert_spawn_fails(&o, -E2BIG);
    free(huge);
}

/* The property the clone-based spawn exists for: a daemon killed with
 * SIGKILL takes its jobs with it (PR_SET_PDEATHSIG). The "daemon" is a
 * forked process that starts the job and waits. */
static void job_dies_with_a_sigkilled_parent(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t mid = fork();
    assert_true(mid >= 0);
    if (mid == 0) {
        char *argv[] = { "sleep", "30", NULL };
        aw_spawn_opts_t o = { .path = "/bin/sleep", .argv = argv, .envp = no_env };
        aw_child_t c;
        close(p[0]);
        if (aw_spawn(&o, &c) < 0)
            _exit(1);
        if (write(p[1], &c.pid, sizeof c.pid) != sizeof c.pid)
            _exit(2);
        for (;;)
            pause();
    }
    close(p[1]);
    pid_t job = 0;
    ssize_t n = read(p[0], &job, sizeof job);
    close(p[0]);
    if (n != sizeof job) {
        kill(mid, SIGKILL);
        waitpid(mid, NULL, 0);
        fail_msg("the intermediate process did not start its job");
    }
    assert_false(is_dead(job));
    assert_int_equal(kill(mid, SIGKILL), 0);
    assert_int_equal(waitpid(mid, NULL, 0), mid);

    struct timespec tick = { 0, 10 * 1000 * 1000 };
    int waited_ms = 0;
    while (!is_dead(job) && waited_ms < 1000) {
        nanosleep(&tick, NULL);
        waited_ms += 10;
    }
    if (!is_dead(job)) {
        kill(job, SIGKILL);
        fail_msg("job %d still alive 1 s after its parent was killed", (int)job);
    }
    assert_no_children();
}

/* Sets signal sig (one glibc's sigaction refuses) to SIG_IGN through the
 * kernel, keeping the old action in old. The handler is the first field of
 * the kernel's sigaction on the architectures this runs on (not MIPS). */
static void kernel_ignore(int sig, unsigned long old[8])
{
    unsigned long ign[8] = { (unsigned long)(uintptr_t)SIG_IGN };
    assert_int_equal(syscall(SYS_rt_sigaction, sig, ign, old, (NSIG - 1) / 8), 0);
}

static void kernel_restore(int sig, unsigned long old[8])
{
    assert_int_equal(syscall(SYS_rt_sigaction, sig, old, NULL, (NSIG - 1) / 8), 0);
}

/* The daemon ignores SIGPIPE, may have inherited glibc's internal signals
 * 32 and 33 ignored (as commands run by GNU make do), and some thread may
 * block signals: the job must see none of it. grep reads its own status
 * directly, not through sh: dash clears its signal mask when it starts,
 * which would hide a mask left set by aw_spawn. */
static void job_starts_with_an_empty_mask_and_default_signals(void **state)
{
    (void)state;
    sigset_t usr1, old;
    unsigned long old32[8], old33[8];
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    kernel_ignore(32, old32);
    kernel_ignore(33, old33);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);

    char *argv[] = { "grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status", NULL };
    aw_spawn_opts_t o = { .path = "/bin/grep", .argv = argv, .envp = no_env };
    aw_child_t c;
    char out[256], err[256];
    int rc = aw_spawn(&o, &c);

    /* aw_spawn blocks everything around the clone: it must give the
     * caller its own mask back. */
    sigset_t now;
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, &now), 0);
    assert_true(sigismember(&now, SIGUSR1));
    assert_false(sigismember(&now, SIGUSR2));
    assert_false(sigismember(&now, SIGTERM));
    kernel_restore(33, old33);
    kernel_restore(32, old32);
    signal(SIGPIPE, old_pipe);
    assert_int_equal(rc, 0);
    assert_exit(finish(&c, out, err, sizeof out), 0);
    assert_string_equal(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    assert_string_equal(err, "");
}

static void stdin_env_cwd_and_stderr_reach_the_program(void **state)
{
    (void)state;
    char *argv[] = { "sh", "-c", "read x; echo \"$x $A $(pwd)\"; echo e >&2", NULL };
    char *envp[] = { "A=1", "PATH=/usr/bin:/bin", NULL };
    aw_spawn_opts_t o = { .path = "/bin/sh", .argv = argv, .envp = envp,
                          .cwd = "/", .stdin_pipe = true };
    aw_child_t c;
    char out[256], err[256];
    assert_int_equal(aw_spawn(&o, &c), 0);
    assert_true(c.in >= 0);
    assert_int_equal(write(c.in, "in\n", 3), 3);
    close(c.in);
    c.in = -1;
    assert_exit(finish(&c, out, err, sizeof out), 0);
    assert_string_equal(out, "in 1 /\n");
    assert_string_equal(err, "e\n");
}

/* Own process group, the fd flags child.h promises, and no fd of ours in
 * the job even when it lacks O_CLOEXEC. */
static void job_has_its_own_group_and_only_three_fds(void **state)
{
    (void)state;
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(null >= 0);
    int leak = fcntl(null, F_DUPFD, 77);        /* without FD_CLOEXEC */
    close(null);
    assert_true(leak >= 77);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "[ -e /dev/fd/%d ] && echo leaked || echo clean; "
             "ls /dev/fd/ | wc -l", leak);
    char *argv[] = { "sh", "-c", cmd, NULL };
    char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    aw_spawn_opts_t o = { .path = "/bin/sh", .argv = argv, .envp = envp,
                          .stdin_pipe = true };
    aw_child_t c;
    char out[256], err[256];
    assert_int_equal(aw_spawn(&o, &c), 0);
    close(leak);

    assert_int_equal(getpgid(c.pid), c.pid);
    int fds[] = { c.in, c.out, c.err, c.pidfd };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (fds[i] < 0)
            continue;                   /* pidfd on a kernel without it */
        assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        if (i < 3)
            assert_true(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
    }
    close(c.in);
    c.in = -1;
    assert_exit(finish(&c, out, err, sizeof out), 0);
    /* ls's listing holds 0, 1, 2 and the directory it reads. */
    assert_string_equal(out, "clean\n4\n");
    assert_string_equal(err, "");
}

/* In a forked process with fds 0, 1 and 2 closed, the pipes land on them:
 * the child's dup2s must not overwrite one another. Returns a distinct
 * status per failure. */
static int spawn_with_closed_std_fds(bool stdin_pipe)
{
    char *argv[] = { "sh", "-c", "read x; echo \"o$x\"; echo e >&2", NULL };
    aw_spawn_opts_t o = { .path = "/bin/sh", .argv = argv, .envp = no_env,
                          .stdin_pipe = stdin_pipe };
    aw_child_t c;
    char out[64] = "", err[64] = "";
    int st;
    close(0);
    close(1);
    close(2);
    if (aw_spawn(&o, &c) < 0)
        return 10;
    if (stdin_pipe && (write(c.in, "1\n", 2) != 2 || close(c.in) < 0))
        return 11;
    if (waitpid(c.pid, &st, 0) != c.pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 12;
    ssize_t n = read(c.out, out, sizeof out - 1);
    ssize_t m = read(c.err, err, sizeof err - 1);
    if (n < 0 || m < 0)
        return 13;
    out[n] = err[m] = '\0';
    if (strcmp(out, stdin_pipe ? "o1\n" : "o\n") != 0)
        return 14;
    if (strcmp(err, "e\n") != 0)
        return 15;
    return 0;
}

static void closed_standard_fds_in_the_parent_are_handled(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(spawn_with_closed_std_fds(i == 0));
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_exit(st, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_prints_and_exits_0),
        cmocka_unit_test(missing_program_is_enoent_and_leaves_nothing),
        cmocka_unit_test(bad_cwd_is_enoent_and_leaves_nothing),
        cmocka_unit_test(exec_errors_come_back_as_errno),
        cmocka_unit_test(job_dies_with_a_sigkilled_parent),
        cmocka_unit_test(job_starts_with_an_empty_mask_and_default_signals),
        cmocka_unit_test(stdin_env_cwd_and_stderr_reach_the_program),
        cmocka_unit_test(job_has_its_own_group_and_only_three_fds),
        cmocka_unit_test(closed_standard_fds_in_the_parent_are_handled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
