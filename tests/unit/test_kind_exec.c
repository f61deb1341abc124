/*
 * test_kind_exec.c — the `exec` kind (lib/kind_exec.c with lib/child.c)
 * with real child processes on a real event base. The byte-level UTF-8
 * rules are in test_utf8.c; here only that a job's output reaches the
 * result as valid JSON.
 *
 * Each test drives the loop with event_base_loop(EVLOOP_ONCE) until its
 * task is done, bounded by a deadline timer: nothing sleeps, and a hung job
 * fails the test instead of hanging it. The machine may run the tests as
 * root, so the fixture sets allow_root (one test checks the refusal).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "errors.h"
#include "kind_exec.h"

#define GRACE_MS    200
#define DEADLINE_MS 10000

static const char *const allow[] = { "/bin/*", "/usr/bin/*" };

struct fx {
    struct event_base *base;
    aw_engine_t       *e;
};

static aw_engine_t *cur_engine;         /* the fixture's, for configure() */

static void configure(bool allow_root, size_t max_output)
{
    aw_exec_config_t c = {
        .allow = allow, .nallow = 2, .kill_grace_ms = GRACE_MS,
        .max_output = max_output, .allow_root = allow_root,
    };
    char err[256];
    assert_int_equal(aw_engine_configure_kind(cur_engine, "exec", &c, err, sizeof err), 0);
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);           /* as awaitd does; see kind_exec.h */
    struct fx *f = calloc(1, sizeof *f);
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = 3600 * 1000 };
    if (!f || !(f->base = event_base_new()) || !(f->e = aw_engine_new(f->base, &lim)) ||
        aw_engine_add_kind(f->e, &aw_kind_exec, true) < 0)
        return -1;
    cur_engine = f->e;
    configure(true, 16 << 20);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw_engine_free(f->e);
    event_base_free(f->base);
    free(f);
    cur_engine = NULL;
    return 0;
}

/* ---- helpers ---- */

static void expired_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until done(arg) or DEADLINE_MS; fails on the deadline. */
static void run_until(struct fx *f, bool (*done)(void *), void *arg)
{
    bool expired = false;
    struct event *deadline = evtimer_new(f->base, expired_cb, &expired);
    struct timeval tv = { DEADLINE_MS / 1000, 0 };
    assert_non_null(deadline);
    evtimer_add(deadline, &tv);
    while (!done(arg) && !expired)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(deadline);
    if (expired)
        fail_msg("deadline of %d ms passed", DEADLINE_MS);
}

static bool task_done(void *arg)
{
    return aw_task_done(arg);
}

static void run(struct fx *f, aw_task_t *t)
{
    run_until(f, task_done, t);
}

static int try_create(struct fx *f, json_t *args, int64_t timeout_ms,
                      aw_task_t **out, char *err, size_t errlen)
{
    aw_task_spec_t spec = { .kind = "exec", .args = args, .timeout_ms = timeout_ms };
    *out = NULL;
    err[0] = '\0';
    int rc = aw_task_create(f->e, &spec, out, err, errlen);
    json_decref(args);
    return rc;
}

static aw_task_t *create(struct fx *f, json_t *args, int64_t timeout_ms)
{
    aw_task_t *t;
    char err[256];
    assert_non_null(args);
    int rc = try_create(f, args, timeout_ms, &t, err, sizeof err);
    if (rc != 0)
        fail_msg("create failed: %d %s: %s", rc, aw_strerror(rc), err);
    return t;
}

static aw_task_t *run_argv(struct fx *f, json_t *args)
{
    aw_task_t *t = create(f, args, -1);
    run(f, t);
    return t;
}

static json_t *result_of(const aw_task_t *t)
{
    assert_non_null(t->result);
    json_error_t jerr;
    json_t *r = json_loads(t->result, JSON_ALLOW_NUL, &jerr);
    if (!r)
        fail_msg("result is not JSON (%s): %.200s", jerr.text, t->result);
    return r;
}

static void assert_result(const aw_task_t *t, int exit_code, const char *sig,
                          const char *out, const char *errout, bool truncated)
{
    json_t *r = result_of(t);
    json_t *code = json_object_get(r, "exit_code");
    if (exit_code < 0)
        assert_true(json_is_null(code));
    else
        assert_int_equal(json_integer_value(code), exit_code);
    if (sig)
        assert_string_equal(json_string_value(json_object_get(r, "signal")), sig);
    else
        assert_true(json_is_null(json_object_get(r, "signal")));
    if (out)
        assert_string_equal(json_string_value(json_object_get(r, "stdout")), out);
    if (errout)
        assert_string_equal(json_string_value(json_object_get(r, "stderr")), errout);
    assert_true(json_is_boolean(json_object_get(r, "truncated")));
    assert_int_equal(json_is_true(json_object_get(r, "truncated")), truncated);
    json_decref(r);
}

static void assert_output(const aw_task_t *t, int stream, const char *want)
{
    const char *data;
    size_t len;
    assert_int_equal(aw_task_output(t, stream, &data, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
}

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
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Waits (poll on a pidfd, bounded) until pid has exited. */
static void assert_process_ends(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        assert_int_equal(errno, ESRCH); /* gone already */
        return;
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, 3000);
    close(fd);
    assert_int_equal(n, 1);
}

/* ---- outcomes ---- */

static void echo_succeeds_with_its_output(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[ss]}", "argv", "/bin/echo", "hello"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_int_equal(t->error_type, AW_ERR_NONE);
    assert_result(t, 0, NULL, "hello\n", "", false);
    assert_output(t, AW_STDOUT, "hello\n");
    assert_output(t, AW_STDERR, "");
    assert_no_children();
}

static void nonzero_exit_fails_with_exit_status(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[s]}", "argv", "/bin/false"));
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_EXIT_STATUS);
    assert_string_equal(aw_task_error_message(t), "exited with status 1");
    assert_result(t, 1, NULL, "", "", false);
}

static void death_by_a_foreign_signal_fails_with_signal(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                         "echo out; kill -USR1 $$"));
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_SIGNAL);
    assert_string_equal(aw_task_error_message(t), "killed by signal SIGUSR1");
    assert_result(t, -1, "SIGUSR1", "out\n", "", false);
}

static void stdin_stderr_env_and_cwd_reach_the_program(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[sss],s:s,s:{ss},s:s}", "argv",
        "/bin/sh", "-c", "cat; echo \"$FOO\" >&2; pwd >&2",
        "stdin", "in put", "env", "FOO", "bar", "cwd", "/tmp"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_result(t, 0, NULL, "in put", "bar\n/tmp\n", false);
}

static void environment_is_exactly_env_plus_a_default_path(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[s],s:{ss}}", "argv", "/usr/bin/env",
                                         "env", "FOO", "bar"));
    assert_result(t, 0, NULL, "FOO=bar\nPATH=" AW_EXEC_DEFAULT_PATH "\n", "", false);
    t = run_argv(f, json_pack("{s:[s]}", "argv", "/usr/bin/env"));
    assert_result(t, 0, NULL, "PATH=" AW_EXEC_DEFAULT_PATH "\n", "", false);
    /* A bare name is looked up in the child's PATH. */
    t = run_argv(f, json_pack("{s:[s],s:{ss}}", "argv", "env", "env", "PATH", "/usr/bin"));
    assert_result(t, 0, NULL, "PATH=/usr/bin\n", "", false);
}

static void relative_argv0_is_resolved_against_cwd(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[ss],s:s}", "argv", "./echo", "hi",
                                         "cwd", "/usr/bin"));
    assert_result(t, 0, NULL, "hi\n", "", false);
}

static void large_stdin_is_written_without_blocking(void **state)
{
    struct fx *f = *state;
    size_t n = 300 * 1024;
    char *in = malloc(n + 1);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('a' + i % 26);
    in[n] = '\0';
    aw_task_t *t = run_argv(f, json_pack("{s:[s],s:s}", "argv", "/bin/cat", "stdin", in));
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_output(t, AW_STDOUT, in);
    /* A job that never reads its stdin: the write fails with EPIPE. */
    t = run_argv(f, json_pack("{s:[s],s:s}", "argv", "/bin/true", "stdin", in));
    assert_int_equal(t->state, AW_SUCCEEDED);
    free(in);
}

static void output_is_capped_counted_and_truncated(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[ssss],s:i}", "argv", "/usr/bin/head",
                                         "-c", "10485760", "/dev/zero",
                                         "max_output", 1 << 20));
    assert_int_equal(t->state, AW_SUCCEEDED);
    const char *data;
    size_t len;
    assert_int_equal(aw_task_output(t, AW_STDOUT, &data, &len), 0);
    assert_int_equal(len, 1 << 20);
    assert_int_equal(aw_exec_dropped(t, AW_STDOUT), 10485760 - (1 << 20));
    assert_int_equal(aw_exec_dropped(t, AW_STDERR), 0);
    assert_result(t, 0, NULL, NULL, "", true);
}

static void max_output_is_lowered_to_the_configured_one(void **state)
{
    struct fx *f = *state;
    configure(true, 4);
    aw_task_t *t = run_argv(f, json_pack("{s:[ss],s:i}", "argv", "/bin/echo", "hello",
                                         "max_output", 1000));
    assert_result(t, 0, NULL, "hell", "", true);
    t = run_argv(f, json_pack("{s:[ss],s:i}", "argv", "/bin/echo", "hello",
                              "max_output", 2));
    assert_result(t, 0, NULL, "he", "", true);
}

static void invalid_utf8_becomes_replacement_characters(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[ss]}", "argv", "/usr/bin/printf",
                                         "a\\377b\\303\"\\001\\000z"));
    const char *data;
    size_t len;
    assert_int_equal(aw_task_output(t, AW_STDOUT, &data, &len), 0);
    assert_int_equal(len, 8);                       /* the raw bytes */
    assert_memory_equal(data, "a\377b\303\"\001\000z", 8);
    json_t *r = result_of(t);
    json_t *out = json_object_get(r, "stdout");
    assert_int_equal(json_string_length(out), 12);
    assert_memory_equal(json_string_value(out),
                        "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\"\001\000z", 12);
    json_decref(r);
}

/* ---- stopping ---- */

static bool has_ready(void *arg)
{
    const char *data;
    size_t len;
    aw_task_output(arg, AW_STDOUT, &data, &len);
    return len >= 6 && memcmp(data, "ready\n", 6) == 0;
}

static void cancel_sends_sigterm(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:[ss]}", "argv", "/bin/sleep", "30"), -1);
    assert_int_equal(t->state, AW_RUNNING);
    assert_int_equal(aw_task_cancel(f->e, t), 1);
    assert_int_equal(t->state, AW_RUNNING);         /* until it is reaped */
    run(f, t);
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->error_type, AW_ERR_CANCELLED);
    assert_result(t, -1, "SIGTERM", "", "", false);
    assert_no_children();
}

static void sigterm_ignored_gets_sigkill_after_the_grace(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                       "trap '' TERM; echo ready; sleep 30; echo late"), -1);
    run_until(f, has_ready, t);                     /* the trap is set */
    int64_t t0 = aw_clock_mono_ms();
    assert_int_equal(aw_task_cancel(f->e, t), 1);
    run(f, t);
    int64_t took = aw_clock_mono_ms() - t0;
    assert_int_equal(t->state, AW_CANCELLED);
    assert_result(t, -1, "SIGKILL", "ready\n", "", false);
    assert_true(took >= GRACE_MS - 5);
    assert_true(took < GRACE_MS + 3000);
    assert_no_children();
}

static void timeout_stops_the_group(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                       "sleep 30; echo late"), 100);
    run(f, t);
    assert_int_equal(t->state, AW_TIMED_OUT);
    assert_int_equal(t->error_type, AW_ERR_TIMEOUT);
    assert_result(t, -1, "SIGTERM", "", "", false);
    assert_no_children();
}

static void a_grandchild_holding_stdout_does_not_keep_the_task(void **state)
{
    struct fx *f = *state;
    /* In the group: killed when the program exits. */
    aw_task_t *t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                         "sleep 30 & echo $!"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    const char *data;
    size_t len;
    aw_task_output(t, AW_STDOUT, &data, &len);
    pid_t g = (pid_t)strtol(data, NULL, 10);
    assert_true(g > 1);
    assert_process_ends(g);
    /* Escaped from the group (setsid): not tracked, and not waited for. */
    t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                              "/usr/bin/setsid /bin/sleep 30 & echo $!"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    aw_task_output(t, AW_STDOUT, &data, &len);
    g = (pid_t)strtol(data, NULL, 10);
    assert_true(g > 1);
    assert_int_equal(kill(g, SIGKILL), 0);
    assert_process_ends(g);
    assert_no_children();
}

static void engine_free_kills_and_reaps_running_jobs(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                       "trap '' TERM; sleep 30"), -1);
    assert_int_equal(t->state, AW_RUNNING);
    aw_engine_free(f->e);
    f->e = NULL;
    assert_no_children();
    aw_engine_limits_t lim = { .retention_ms = 1000 };
    f->e = aw_engine_new(f->base, &lim);       /* for teardown */
    assert_non_null(f->e);
}

/* ---- spawn failures ---- */

static void missing_program_is_a_spawn_error(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = create(f, json_pack("{s:[s]}", "argv", "/bin/no-such-program"), -1);
    assert_int_equal(t->state, AW_FAILED);          /* at once, inside create */
    assert_int_equal(t->error_type, AW_ERR_SPAWN);
    assert_non_null(strstr(aw_task_error_message(t), "No such file or directory"));
    assert_result(t, -1, NULL, "", "", false);
    t = create(f, json_pack("{s:[s]}", "argv", "no-such-program-here"), -1);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_SPAWN);
    assert_no_children();
}

static void huge_argument_is_a_spawn_error(void **state)
{
    struct fx *f = *state;
    size_t n = 256 * 1024;                  /* > MAX_ARG_STRLEN (128 KiB) */
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    aw_task_t *t = create(f, json_pack("{s:[ss]}", "argv", "/bin/echo", big), -1);
    free(big);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_SPAWN);
    assert_non_null(strstr(aw_task_error_message(t), strerror(E2BIG)));
}

static void fd_exhaustion_is_a_spawn_error(void **state)
{
    struct fx *f = *state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Leave room for the json/loop internals, but not for 3 pipes. */
    low = old;
    low.rlim_cur = (rlim_t)count_fds() + 2;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    aw_task_t *t = create(f, json_pack("{s:[s],s:s}", "argv", "/bin/true", "stdin", ""), -1);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(t->state, AW_FAILED);
    assert_int_equal(t->error_type, AW_ERR_SPAWN);
    assert_non_null(strstr(aw_task_error_message(t), strerror(EMFILE)));
    assert_no_children();
}

/* ---- refusals at prepare ---- */

static void refusals_happen_at_create(void **state)
{
    struct fx *f = *state;
    static const struct { const char *json; int rc; const char *says; } cases[] = {
        { "{\"argv\":[\"/bin/true\"],\"cwd\":\"/no/such/dir\"}", AW_EINVAL, "cwd" },
        { "{\"argv\":[\"/bin/true\"],\"cwd\":\"/etc/passwd\"}", AW_EINVAL, "not a directory" },
        { "{\"argv\":[\"/bin/true\"],\"cwd\":\"tmp\"}", AW_EINVAL, "absolute" },
        { "{\"argv\":[\"/usr/sbin/nologin\"]}", AW_EFORBIDDEN, "allow-list" },
        { "{\"argv\":[\"nologin\"],\"env\":{\"PATH\":\"/usr/sbin\"}}", AW_EFORBIDDEN, "allow-list" },
        { "{\"argv\":[\"/bin/../usr/sbin/nologin\"]}", AW_EINVAL, ".." },
        { "{\"argv\":[\"bin/true\"]}", AW_EINVAL, "cwd" },
        { "{\"argv\":[\"/bin/true\", 3]}", AW_EINVAL, "argv[1]" },
        { "{\"argv\":[]}", AW_EINVAL, "argv" },
        { "{\"argv\":[\"\"]}", AW_EINVAL, "argv[0]" },
        { "{\"argv\":[\"/bin/true\"],\"env\":{\"A=B\":\"x\"}}", AW_EINVAL, "env" },
        { "{\"argv\":[\"/bin/true\"],\"env\":{\"A\":1}}", AW_EINVAL, "env" },
        { "{\"argv\":[\"/bin/true\"],\"stdin\":5}", AW_EINVAL, "stdin" },
        { "{\"argv\":[\"/bin/true\"],\"max_output\":-1}", AW_EINVAL, "max_output" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aw_task_t *t;
        char err[256];
        int rc = try_create(f, json_loads(cases[i].json, 0, NULL), -1, &t, err, sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].says))
            fail_msg("%s: got %d (%s), want %d with '%s'", cases[i].json, rc, err,
                     cases[i].rc, cases[i].says);
        assert_null(t);
    }
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held[AW_PENDING] + st.held[AW_RUNNING] + st.held[AW_FAILED], 0);
}

static void root_is_refused_unless_allowed(void **state)
{
    struct fx *f = *state;
    if (geteuid() != 0)
        skip();
    configure(false, 1 << 20);
    aw_task_t *t;
    char err[256];
    assert_int_equal(try_create(f, json_pack("{s:[s]}", "argv", "/bin/true"), -1,
                                &t, err, sizeof err), AW_EFORBIDDEN);
    assert_non_null(strstr(err, "root"));
}

static void nothing_is_allowed_by_default(void **state)
{
    struct fx *f = *state;
    aw_exec_config_t c = { .allow_root = true, .max_output = 100 };
    char err[256];
    assert_int_equal(aw_engine_configure_kind(cur_engine, "exec", &c, err, sizeof err), 0);
    aw_task_t *t;
    assert_int_equal(try_create(f, json_pack("{s:[s]}", "argv", "/bin/true"), -1,
                                &t, err, sizeof err), AW_EFORBIDDEN);
    const char *bad[] = { "bin/*" };
    c.allow = bad;
    c.nallow = 1;
    assert_int_equal(aw_engine_configure_kind(f->e, "exec", &c, err, sizeof err), AW_EINVAL);
    assert_non_null(strstr(err, "bin/*"));
}

static void disabled_exec_checks_shape_only(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_exec, false), 0);
    aw_task_t *t;
    char err[256];
    assert_int_equal(try_create(f, json_pack("{s:[s]}", "argv", "/bin/true"), -1,
                                &t, err, sizeof err), AW_EDISABLED);
    assert_int_equal(try_create(f, json_pack("{s:[s],s:s}", "argv", "/bin/true",
                                             "cwd", "/no/such/dir"), -1,
                                &t, err, sizeof err), AW_EDISABLED);
    assert_int_equal(try_create(f, json_pack("{s:s}", "argv", "/bin/true"), -1,
                                &t, err, sizeof err), AW_EINVAL);
}

/* ---- hygiene ---- */

static void child_has_only_its_three_fds(void **state)
{
    struct fx *f = *state;
    /* ls opens the directory itself: that is its fd 3. */
    aw_task_t *t = run_argv(f, json_pack("{s:[ss]}", "argv", "/bin/ls", "/proc/self/fd"));
    assert_result(t, 0, NULL, "0\n1\n2\n3\n", "", false);
    t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                              "grep -E '^(SigBlk|SigIgn)' /proc/self/status"));
    assert_result(t, 0, NULL, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
                  "", false);
    t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                              "ps -o pgid= -p $$ | tr -d ' '; echo $$"));
    const char *data;
    size_t len;
    aw_task_output(t, AW_STDOUT, &data, &len);
    if (t->state == AW_SUCCEEDED) {                  /* ps may be missing */
        long pgid = strtol(data, NULL, 10), pid = strtol(strchr(data, '\n') + 1, NULL, 10);
        assert_int_equal(pgid, pid);                 /* its own process group */
    }
}

static void many_jobs_leak_no_fds_and_no_zombies(void **state)
{
    struct fx *f = *state;
    int before = count_fds();
    for (int i = 0; i < 200; i++) {
        aw_task_t *t = run_argv(f, i % 2 ? json_pack("{s:[ss]}", "argv", "/bin/echo", "x")
                                         : json_pack("{s:[s],s:s}", "argv", "/bin/cat",
                                                     "stdin", "y"));
        assert_int_equal(t->state, AW_SUCCEEDED);
        assert_int_equal(aw_task_forget(f->e, t), 0);
    }
    assert_int_equal(count_fds(), before);
    assert_no_children();
}

/* ---- following output ---- */

struct follow {
    aw_task_t         *t;
    aw_output_watch_t *w;
    int                calls;
    size_t             seen;            /* bytes of stdout read so far */
    char               text[64];
    bool               ended;
    bool               unwatch_in_cb;
};

static void follow_cb(void *arg)
{
    struct follow *fl = arg;
    const char *data;
    size_t len;
    fl->calls++;
    assert_int_equal(aw_task_output(fl->t, AW_STDOUT, &data, &len), 0);
    assert_true(len >= fl->seen);
    assert_true(len < sizeof fl->text);
    memcpy(fl->text + fl->seen, data + fl->seen, len - fl->seen);
    fl->seen = len;
    if (aw_task_done(fl->t)) {
        fl->ended = true;
        if (fl->unwatch_in_cb) {
            aw_task_unwatch_output(fl->t, fl->w);
            fl->w = NULL;
        }
    }
}

static bool follow_ended(void *arg)
{
    return ((struct follow *)arg)->ended;
}

static bool seen_a(void *arg)
{
    return ((struct follow *)arg)->seen >= 2;
}

static void watch_follows_a_running_job(void **state)
{
    struct fx *f = *state;
    /* The job pauses between its lines, so the first is seen while it
     * still runs. */
    aw_task_t *t = create(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                       "echo a; sleep 0.2; echo b"), -1);
    struct follow fl = { .t = t, .unwatch_in_cb = true };
    fl.w = aw_task_watch_output(t, follow_cb, &fl);
    assert_non_null(fl.w);
    assert_int_equal(fl.calls, 0);              /* never from inside watch */
    run_until(f, seen_a, &fl);
    assert_false(aw_task_done(t));              /* live, before the end */
    assert_memory_equal(fl.text, "a\n", 2);
    run_until(f, follow_ended, &fl);
    assert_int_equal(fl.seen, 4);
    assert_memory_equal(fl.text, "a\nb\n", 4);
    assert_null(fl.w);
    assert_true(fl.calls >= 2);
}

static void watch_keeps_a_forgotten_task_readable(void **state)
{
    struct fx *f = *state;
    aw_task_t *t = run_argv(f, json_pack("{s:[ss]}", "argv", "/bin/echo", "kept"));
    struct follow fl = { .t = t };
    fl.w = aw_task_watch_output(t, follow_cb, &fl);
    assert_non_null(fl.w);
    assert_int_equal(aw_task_forget(f->e, t), 0);   /* the table lets go */
    run_until(f, follow_ended, &fl);                /* called once, from the loop */
    assert_int_equal(fl.calls, 1);
    assert_memory_equal(fl.text, "kept\n", 5);
    aw_task_unwatch_output(fl.t, fl.w);                          /* frees the task (ASan) */
}

static void watch_refuses_other_kinds(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_add_kind(f->e, &aw_kind_sleep, true), 0);
    aw_task_spec_t spec = { .kind = "sleep", .args = json_pack("{s:i}", "seconds", 0),
                            .timeout_ms = -1 };
    aw_task_t *t;
    char err[256];
    assert_int_equal(aw_task_create(f->e, &spec, &t, err, sizeof err), 0);
    json_decref(spec.args);
    const char *data;
    size_t len;
    assert_int_equal(aw_task_output(t, AW_STDOUT, &data, &len), AW_ENOOUTPUT);
    assert_null(aw_task_watch_output(t, follow_cb, NULL));
    t = run_argv(f, json_pack("{s:[s]}", "argv", "/bin/true"));
    assert_int_equal(aw_task_output(t, 3, &data, &len), AW_EINVAL);
}

/* ---- the allow-list against links, loader variables and reloads ---- */

static void loader_variables_are_forbidden_unless_allowed(void **state)
{
    struct fx *f = *state;
    static const char *const names[] = { "LD_PRELOAD", "LD_LIBRARY_PATH", "GCONV_PATH",
                                         "GLIBC_TUNABLES" };
    aw_task_t *t;
    char err[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = try_create(f, json_pack("{s:[s],s:{s:s}}", "argv", "/usr/bin/env",
                                         "env", names[i], "x"), -1, &t, err, sizeof err);
        if (rc != AW_EFORBIDDEN || !strstr(err, names[i]))
            fail_msg("%s: got %d (%s), want AW_EFORBIDDEN naming it", names[i], rc, err);
    }
    aw_exec_config_t c = { .allow = allow, .nallow = 2, .kill_grace_ms = GRACE_MS,
                           .max_output = 1 << 20, .allow_root = true,
                           .allow_loader_env = true };
    assert_int_equal(aw_engine_configure_kind(f->e, "exec", &c, err, sizeof err), 0);
    t = run_argv(f, json_pack("{s:[s],s:{s:s}}", "argv", "/usr/bin/env",
                              "env", "LD_BIND_NOW", "1"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_output(t, AW_STDOUT, "LD_BIND_NOW=1\nPATH=/usr/local/bin:/usr/bin:/bin\n");
}

static void a_link_is_judged_by_what_it_resolves_to(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/aw-exec-link.XXXXXX", glob[64], link[64], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(glob, sizeof glob, "%s/*", dir);
    snprintf(link, sizeof link, "%s/innocent", dir);
    assert_int_equal(symlink("/usr/sbin/nologin", link), 0);
    const char *only[] = { glob };
    aw_exec_config_t c = { .allow = only, .nallow = 1, .max_output = 100, .allow_root = true };
    assert_int_equal(aw_engine_configure_kind(f->e, "exec", &c, err, sizeof err), 0);
    aw_task_t *t;
    int rc = try_create(f, json_pack("{s:[s]}", "argv", link), -1, &t, err, sizeof err);
    unlink(link);
    rmdir(dir);
    assert_int_equal(rc, AW_EFORBIDDEN);
    assert_non_null(strstr(err, "resolves to"));
    assert_non_null(strstr(err, "nologin"));
}

static void a_queued_job_fails_forbidden_when_exec_is_disabled_before_its_start(void **state)
{
    struct fx *f = *state;
    assert_int_equal(aw_engine_set_queue(f->e, "one", 1), 0);
    aw_task_spec_t spec = { .kind = "exec", .queue = "one", .timeout_ms = -1 };
    aw_task_t *first, *second;
    char err[256];
    spec.args = json_pack("{s:[s,s]}", "argv", "/bin/sleep", "30");
    assert_int_equal(aw_task_create(f->e, &spec, &first, err, sizeof err), 0);
    json_decref(spec.args);
    aw_task_ref(first);
    spec.args = json_pack("{s:[s]}", "argv", "/bin/true");
    assert_int_equal(aw_task_create(f->e, &spec, &second, err, sizeof err), 0);
    json_decref(spec.args);
    aw_task_ref(second);
    assert_int_equal(second->state, AW_PENDING);
    assert_int_equal(aw_engine_enable_kind(f->e, "exec", false), 0);
    assert_int_equal(aw_task_cancel(f->e, first), 1);
    run(f, second);
    assert_int_equal(second->state, AW_FAILED);
    assert_int_equal(second->error_type, AW_ERR_FORBIDDEN);
    assert_non_null(strstr(aw_task_error_message(second), "disabled"));
    run(f, first);
    assert_int_equal(first->state, AW_CANCELLED);
    aw_task_unref(first);
    aw_task_unref(second);
    assert_no_children();
}

/* max_result_bytes bounds what a job keeps of both streams together, and
 * the engine's budget counts what it kept. */
static void max_result_bytes_caps_both_streams_together(void **state)
{
    struct fx *f = *state;
    aw_engine_limits_t lim = { .retention_ms = 3600 * 1000, .max_result_bytes = 5000 };
    aw_engine_set_limits(f->e, &lim);
    aw_task_t *t = run_argv(f, json_pack("{s:[sss]}", "argv", "/bin/sh", "-c",
                                         "head -c 3000 /dev/zero; head -c 3000 /dev/zero >&2"));
    assert_int_equal(t->state, AW_SUCCEEDED);
    const char *data;
    size_t out, err;
    assert_int_equal(aw_task_output(t, AW_STDOUT, &data, &out), 0);
    assert_int_equal(aw_task_output(t, AW_STDERR, &data, &err), 0);
    /* Which stream is read first is up to the loop: only the sum is sure. */
    assert_int_equal(out + err, 5000);
    assert_true(out >= 2000 && err >= 2000);
    assert_int_equal(aw_exec_dropped(t, AW_STDOUT) + aw_exec_dropped(t, AW_STDERR), 1000);
    json_t *r = result_of(t);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);
    aw_engine_stats_t st;
    aw_engine_stats(f->e, &st);
    assert_int_equal(st.held_bytes, t->bytes);
    /* The kept output, and the result that repeats it. */
    assert_true(t->bytes >= 5000 + strlen(t->result));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(echo_succeeds_with_its_output),
        T(nonzero_exit_fails_with_exit_status),
        T(death_by_a_foreign_signal_fails_with_signal),
        T(stdin_stderr_env_and_cwd_reach_the_program),
        T(environment_is_exactly_env_plus_a_default_path),
        T(relative_argv0_is_resolved_against_cwd),
        T(large_stdin_is_written_without_blocking),
        T(output_is_capped_counted_and_truncated),
        T(max_output_is_lowered_to_the_configured_one),
        T(max_result_bytes_caps_both_streams_together),
        T(invalid_utf8_becomes_replacement_characters),
        T(cancel_sends_sigterm),
        T(sigterm_ignored_gets_sigkill_after_the_grace),
        T(timeout_stops_the_group),
        T(a_grandchild_holding_stdout_does_not_keep_the_task),
        T(engine_free_kills_and_reaps_running_jobs),
        T(missing_program_is_a_spawn_error),
        T(huge_argument_is_a_spawn_error),
        T(fd_exhaustion_is_a_spawn_error),
        T(refusals_happen_at_create),
        T(root_is_refused_unless_allowed),
        T(nothing_is_allowed_by_default),
        T(disabled_exec_checks_shape_only),
        T(loader_variables_are_forbidden_unless_allowed),
        T(a_link_is_judged_by_what_it_resolves_to),
        T(a_queued_job_fails_forbidden_when_exec_is_disabled_before_its_start),
        T(child_has_only_its_three_fds),
        T(many_jobs_leak_no_fds_and_no_zombies),
        T(watch_follows_a_running_job),
        T(watch_keeps_a_forgotten_task_readable),
        T(watch_refuses_other_kinds),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
