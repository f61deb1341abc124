/*
 * kind_exec.c — the `exec` kind (see kind_exec.h): one program per task,
 * started with aw_spawn (child.c), driven entirely by loop events.
 *
 * A job's life, all on the libevent base:
 *   prepare  checks args, resolves argv[0] to an absolute path, applies the
 *            allow-list (to its realpath), the loader-variable rule and the
 *            root rule; nothing runs yet.
 *   start    checks all of that again against the configuration of now (a
 *            reload may have narrowed it; a link may have moved: the task
 *            then fails "forbidden"), and spawns the resolved file that
 *            passed, never the path as given (see recheck for the window
 *            left), in its own process group; its stdout and stderr are
 *            non-blocking read events, stdin (when given) a write event,
 *            and its exit a read event on a pidfd (a short poll timer
 *            where the kernel has no pidfd_open). SIGCHLD stays at its
 *            default and nobody calls a blocking waitpid.
 *   exit     the pidfd turns readable when the child is a zombie. Its pid
 *            (= its process group id) cannot be reused before we reap it, so
 *            that is the one moment at which SIGKILL to the group can only
 *            reach this job's leftovers; then the child is reaped, the pipes
 *            are drained of what is buffered, and the task finishes.
 *   cancel   (cancel or task timeout) SIGTERM (+SIGCONT) to the group and a
 *            wake-up after kill_grace_ms; at the wake-up SIGKILL to the group.
 *            The task ends cancelled or timed_out when the child is reaped.
 *
 * Why a job ends with its program and not at EOF: a grandchild that
 * inherited stdout (`sh -c 'daemon &'`) would otherwise keep the task
 * running for as long as it lives. The job is the process group: when the
 * program exits, what it left in its group is killed (like systemd's
 * KillMode=control-group), and output still in the pipes is read then. A
 * process that left the group (setsid) is not tracked; whatever it writes
 * later is not captured.
 *
 * Not here: the HTTP side of output (daemon/api.c reads it through the
 * kind's output functions, aw_task_output / aw_task_watch_output), and
 * logging (lib never logs).
 */
#include <errno.h>
#include <event2/event.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "engine.h"
#include "errors.h"
#include "json_text.h"
#include "kind_exec.h"
#include "child.h"
#include "utf8.h"

/* One read(2) into a scratch buffer, and at most this many per event, so
 * that a job writing without pause cannot starve the rest of the loop. */
#define READ_CHUNK      (64 * 1024)
#define READS_PER_EVENT 16
/* Where pidfd_open is missing, the exit is polled: 5 ms, doubling to 500. */
#define POLL_FIRST_MS   5
#define POLL_MAX_MS     500

/* ---- configuration: per engine (the kind's state) ---- */

struct exec_cfg {
    char  **allow;
    char  **canon;                  /* allow[i] with the symlinks of its
                                     * directory resolved; NULL: same or
                                     * unresolvable */
    size_t  nallow;
    int64_t kill_grace_ms;
    size_t  max_output;
    bool    allow_root;
    bool    allow_loader_env;
    char   *path;                   /* NULL: AW_EXEC_DEFAULT_PATH */
};

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void cfg_clear(struct exec_cfg *cfg)
{
    free_strings(cfg->allow, cfg->nallow);
    free_strings(cfg->canon, cfg->nallow);
    free(cfg->path);
    *cfg = (struct exec_cfg){ .kill_grace_ms = AW_EXEC_DEFAULT_GRACE_MS,
                              .max_output = AW_EXEC_DEFAULT_MAX_OUTPUT };
}

static int exec_init(aw_engine_t *e, void **state)
{
    (void)e;
    struct exec_cfg *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    cfg_clear(cfg);
    *state = cfg;
    return 0;
}

static void exec_fini(void *state)
{
    cfg_clear(state);
    free(state);
}

/* The allow entry with the symlinks of its fixed part resolved: programs
 * are matched by their realpath, so "/bin/true" must also be known as
 * "/usr/bin/true" where /bin is a link to usr/bin, and a glob's directory
 * likewise. The fixed part is the whole entry when it has no glob
 * character (a link to the program then allows its target), else the
 * directories before the first component that has one. NULL when that
 * part does not resolve (yet) or nothing changes: the entry still matches
 * as written. Blocking file system calls, at start-up and SIGHUP only. */
static char *canonical_entry(const char *entry)
{
    char real[PATH_MAX], prefix[PATH_MAX];
    size_t glob = strcspn(entry, "*?[\\");
    const char *rest;
    if (entry[glob] == '\0') {
        if (realpath(entry, real))
            return strcmp(real, entry) ? strdup(real) : NULL;
        rest = strrchr(entry, '/');                 /* the program may not exist yet */
    } else {
        rest = entry + glob;
        while (rest > entry && *rest != '/')
            rest--;
    }
    size_t n = (size_t)(rest - entry);
    if (n >= sizeof prefix)
        return NULL;
    memcpy(prefix, entry, n);
    prefix[n] = '\0';
    if (!realpath(n ? prefix : "/", real))
        return NULL;
    size_t rl = strlen(real);
    if (rl == 1)
        rl = 0;                                     /* "/" + "/x", not "//x" */
    char *out = malloc(rl + strlen(rest) + 1);
    if (!out)
        return NULL;
    memcpy(out, real, rl);
    strcpy(out + rl, rest);
    if (strcmp(out, entry) == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int exec_configure(void *state, const void *config, char *err, size_t errlen)
{
    struct exec_cfg *cfg = state;
    const aw_exec_config_t *c = config;
    if (c->kill_grace_ms < 0) {
        snprintf(err, errlen, "exec kill grace must be >= 0");
        return AW_EINVAL;
    }
    for (size_t i = 0; i < c->nallow; i++) {
        if (c->allow[i][0] != '/') {
            snprintf(err, errlen, "exec allow entry '%s' must be an absolute path or "
                     "a glob starting with '/'", c->allow[i]);
            return AW_EINVAL;
        }
    }
    char **allow = c->nallow ? calloc(c->nallow, sizeof *allow) : NULL;
    char **canon = c->nallow ? calloc(c->nallow, sizeof *canon) : NULL;
    char *path = c->path ? strdup(c->path) : NULL;
    bool failed = (c->nallow && (!allow || !canon)) || (c->path && !path);
    for (size_t i = 0; !failed && i < c->nallow; i++) {
        failed = !(allow[i] = strdup(c->allow[i]));
        canon[i] = failed ? NULL : canonical_entry(c->allow[i]);
    }
    if (failed) {
        free_strings(allow, c->nallow);
        free_strings(canon, c->nallow);
        free(path);
        return -ENOMEM;
    }
    cfg_clear(cfg);
    cfg->allow = allow;
    cfg->canon = canon;
    cfg->nallow = c->nallow;
    cfg->kill_grace_ms = c->kill_grace_ms;
    cfg->max_output = c->max_output;
    cfg->allow_root = c->allow_root;
    cfg->allow_loader_env = c->allow_loader_env;
    cfg->path = path;
    return 0;
}

static bool allowed(const struct exec_cfg *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->nallow; i++)
        if (fnmatch(cfg->allow[i], path, FNM_PATHNAME) == 0 ||
            (cfg->canon[i] && fnmatch(cfg->canon[i], path, FNM_PATHNAME) == 0))
            return true;
    return false;
}

/* Variables that make the dynamic loader or glibc load code or data of
 * the client's choosing into an allowed program: every LD_* (LD_PRELOAD,
 * LD_LIBRARY_PATH, LD_AUDIT...), and from glibc's own list of variables
 * it drops for set-user-ID programs (unsecvars.h) those that load modules
 * or files it parses as code or formats: GCONV_PATH (iconv modules),
 * GETCONF_DIR (getconf runs programs from it), GLIBC_TUNABLES, LOCPATH,
 * NLSPATH (format strings) and MALLOC_TRACE (writes where it says).
 * Not the resolver's variables, TMPDIR or TZDIR: they choose data, not
 * code, and jobs need TMPDIR. */
static bool loader_var(const char *name)
{
    static const char *const names[] = {
        "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH", "MALLOC_TRACE",
    };
    if (strncmp(name, "LD_", 3) == 0)
        return true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* ---- the job ---- */

struct output {
    char    *data;
    size_t   len, cap;
    uint64_t dropped;               /* bytes beyond max_output */
    int      fd;                    /* -1 once closed */
    struct event *ev;
};

struct aw_output_watch {
    aw_output_watch_t *next;
    struct job        *job;
    aw_task_t         *task;        /* referenced while the watch lives */
    aw_output_cb       cb;          /* NULL: unwatched during a notify */
    void              *arg;
};

struct job {
    aw_engine_t       *e;
    aw_task_t         *t;
    const struct exec_cfg *cfg;     /* the engine's: it outlives every task */
    struct event_base *base;
    char              *path;        /* resolved program; NULL: not found */
    size_t             max_output;
    uint64_t           max_kept;    /* stdout and stderr together: the
                                       engine's max_result_bytes; 0: no cap */
    pid_t              pid;         /* 0 before start */
    int                pidfd;
    struct event      *exit_ev;     /* on the pidfd, or the poll timer */
    int64_t            poll_ms;
    bool               reaped;
    bool               lost;        /* reaped by someone else: no status */
    int                status;      /* waitpid status once reaped */
    int                sent;        /* last signal awaitd sent, 0: none */
    struct output      out[2];      /* stdout, stderr */
    int                in_fd;
    struct event      *in_ev;
    char              *in_data;
    size_t             in_len, in_off;
    struct event      *notify;      /* made at the first watch */
    aw_output_watch_t *watches;
    bool               notifying;
    bool               dead_watches;
};

static void free_event(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void close_stdin(struct job *j)
{
    free_event(&j->in_ev);
    close_fd(&j->in_fd);
    free(j->in_data);
    j->in_data = NULL;
}

static void close_output(struct output *o)
{
    free_event(&o->ev);
    close_fd(&o->fd);
}

static void wake_watchers(struct job *j)
{
    if (j->watches && j->notify)
        event_active(j->notify, EV_READ, 0);
}

/* Keeps up to max_output bytes, counts the rest. Returns false on ENOMEM
 * (the bytes are then counted as dropped). */
static bool keep(struct job *j, struct output *o, const char *p, size_t n)
{
    size_t room = o->len < j->max_output ? j->max_output - o->len : 0;
    /* The result keeps both streams for the task's retention: together
     * they stay within max_result_bytes as well. */
    uint64_t both = (uint64_t)j->out[0].len + j->out[1].len;
    if (j->max_kept && room > 0)
        room = both >= j->max_kept ? 0
             : (uint64_t)room < j->max_kept - both ? room : (size_t)(j->max_kept - both);
    size_t take = n < room ? n : room;
    if (take && o->cap - o->len < take) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < take)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (cap > j->max_output)
            cap = j->max_output;
        char *d = realloc(o->data, cap);
        if (!d) {
            o->dropped += n;
            return false;
        }
        o->data = d;
        o->cap = cap;
    }
    if (take)
        memcpy(o->data + o->len, p, take);
    o->len += take;
    o->dropped += n - take;
    return true;
}

/* Reads what the pipe holds, at most max_reads times. Closes the pipe at
 * EOF or on an error. Returns whether bytes were kept. */
static bool drain(struct job *j, struct output *o, int max_reads)
{
    static char scratch[READ_CHUNK];    /* the loop is single-threaded */
    size_t before = o->len;
    for (int i = 0; o->fd >= 0 && i < max_reads; i++) {
        ssize_t n = read(o->fd, scratch, sizeof scratch);
        if (n > 0) {
            keep(j, o, scratch, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            close_output(o);            /* EOF, or an error (EIO) */
        }
    }
    return o->len != before;
}

static void output_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct job *j = arg;
    struct output *o = &j->out[fd == j->out[0].fd ? 0 : 1];
    if (drain(j, o, READS_PER_EVENT))
        wake_watchers(j);
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    while (j->in_off < j->in_len) {
        ssize_t n = write(j->in_fd, j->in_data + j->in_off, j->in_len - j->in_off);
        if (n > 0)
            j->in_off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && errno == EAGAIN)
            return;
        else
            break;                      /* EPIPE: the job stopped reading */
    }
    close_stdin(j);                     /* all written: the job sees EOF */
}

/* ---- the result ---- */

/* {"exit_code":N|null,"signal":null|"SIG...","stdout":"...","stderr":"...",
 * "truncated":bool}. NULL on ENOMEM. */
static char *make_result(const struct job *j, int exit_code, int sig)
{
    aw_buf_t b;
    char name[16];
    aw_buf_init(&b);
    aw_buf_reserve(&b, 96 + j->out[0].len + j->out[1].len);
    if (exit_code >= 0)
        aw_buf_printf(&b, "{\"exit_code\":%d,\"signal\":", exit_code);
    else
        aw_buf_adds(&b, "{\"exit_code\":null,\"signal\":");
    if (sig > 0)
        aw_buf_printf(&b, "\"%s\"", aw_signal_name(sig, name));
    else
        aw_buf_adds(&b, "null");
    aw_buf_adds(&b, ",\"stdout\":");
    aw_utf8_add_json(&b, j->out[0].data, j->out[0].len);
    aw_buf_adds(&b, ",\"stderr\":");
    aw_utf8_add_json(&b, j->out[1].data, j->out[1].len);
    aw_buf_adds(&b, j->out[0].dropped || j->out[1].dropped ? ",\"truncated\":true}"
                                                           : ",\"truncated\":false}");
    return aw_buf_steal(&b, NULL);
}

static void spawn_failed(struct job *j, int errnum)
{
    char msg[PATH_MAX + 128];
    snprintf(msg, sizeof msg, "cannot run %s: %s",
             j->path ? j->path : "program", strerror(errnum));
    aw_task_fail(j->e, j->t, AW_ERR_SPAWN, msg, make_result(j, -1, 0));
}

/* The child is reaped and the pipes are closed: say how it ended. */
static void finish(struct job *j)
{
    int st = j->status, code = -1, sig = 0;
    if (!j->lost && WIFEXITED(st))
        code = WEXITSTATUS(st);
    else if (!j->lost && WIFSIGNALED(st))
        sig = WTERMSIG(st);
    /* The output is final: give back what doubling over-allocated. */
    for (int i = 0; i < 2; i++) {
        struct output *o = &j->out[i];
        char *d;
        if (o->len == 0) {
            free(o->data);
            o->data = NULL;
            o->cap = 0;
        } else if (o->len < o->cap && (d = realloc(o->data, o->len))) {
            o->data = d;
            o->cap = o->len;
        }
    }
    aw_engine_t *e = j->e;
    aw_task_t *t = j->t;
    wake_watchers(j);
    if (t->stop_reason != AW_STOP_NONE) {
        /* The contract: a stopped job reports no exit code, and the signal
         * that ended it (ours, if it chose to exit on SIGTERM). */
        aw_task_finish_cancelled(e, t, make_result(j, -1, sig ? sig : j->sent));
        return;
    }
    char *result = make_result(j, code, sig);
    char msg[64];
    if (code == 0) {
        aw_task_succeed(e, t, result);
    } else if (code > 0) {
        snprintf(msg, sizeof msg, "exited with status %d", code);
        aw_task_fail(e, t, AW_ERR_EXIT_STATUS, msg, result);
    } else if (sig) {
        char name[16];
        snprintf(msg, sizeof msg, "killed by signal %s", aw_signal_name(sig, name));
        aw_task_fail(e, t, AW_ERR_SIGNAL, msg, result);
    } else {
        aw_task_fail(e, t, AW_ERR_SIGNAL, "ended, but its exit status was lost", result);
    }
}

/* Reaps the child if it has exited. Returns true when it did. */
static bool try_reap(struct job *j)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* Look without reaping first: while the child is a zombie its pid is
     * still taken, so the process group id names only this job. */
    while (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        if (errno != EINTR) {
            /* ECHILD: someone else reaped it; its status is lost. */
            j->reaped = j->lost = true;
            return true;
        }
    }
    if (si.si_pid == 0)
        return false;
    kill(-j->pid, SIGKILL);             /* leftovers; see the file comment */
    int st = 0;
    pid_t r;
    while ((r = waitpid(j->pid, &st, WNOHANG)) < 0 && errno == EINTR)
        ;
    j->reaped = true;
    j->lost = r != j->pid;
    j->status = st;
    return true;
}

static void exited(struct job *j)
{
    free_event(&j->exit_ev);
    close_fd(&j->pidfd);
    /* The program is gone: everything it wrote is in the pipes. The bound
     * only matters if an escaped process keeps writing. */
    for (int i = 0; i < 2; i++) {
        drain(j, &j->out[i], 4 * READS_PER_EVENT);
        close_output(&j->out[i]);
    }
    close_stdin(j);
    finish(j);
}

static void arm_poll(struct job *j)
{
    struct timeval tv = { .tv_sec = j->poll_ms / 1000, .tv_usec = (j->poll_ms % 1000) * 1000 };
    evtimer_add(j->exit_ev, &tv);
    j->poll_ms = j->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : j->poll_ms * 2;
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    if (try_reap(j))
        exited(j);
    else if (j->pidfd < 0)
        arm_poll(j);
}

/* Only for a child that is already SIGKILLed: the wait is short, but it
 * does block. Used at shutdown and when the loop cannot watch the child. */
static void kill_and_reap(struct job *j)
{
    pid_t r;
    kill(-j->pid, SIGKILL);
    while ((r = waitpid(j->pid, &j->status, 0)) < 0 && errno == EINTR)
        ;
    j->reaped = true;
    j->lost = r != j->pid;
}

/* ---- the kind ---- */

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return AW_EINVAL;
}

/* A JSON string that C can use: no NUL inside. */
static bool c_string(json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int check_shape(json_t *args, char *err, size_t errlen)
{
    json_t *argv = json_object_get(args, "argv"), *v;
    json_t *env = json_object_get(args, "env");
    json_t *cwd = json_object_get(args, "cwd");
    json_t *in = json_object_get(args, "stdin");
    json_t *max_output = json_object_get(args, "max_output");
    const char *k;
    size_t i;
    if (!json_is_array(argv) || json_array_size(argv) == 0)
        return bad(err, errlen, "exec needs args.argv, a non-empty array of strings");
    json_array_foreach(argv, i, v) {
        if (!c_string(v)) {
            snprintf(err, errlen, "args.argv[%zu] must be a string without NUL", i);
            return AW_EINVAL;
        }
    }
    if (json_string_value(json_array_get(argv, 0))[0] == '\0')
        return bad(err, errlen, "args.argv[0] must not be empty");
    if (env && !json_is_null(env)) {
        if (!json_is_object(env))
            return bad(err, errlen, "args.env must be an object of strings");
        json_object_foreach(env, k, v) {
            if (!c_string(v) || !k[0] || strchr(k, '=')) {
                snprintf(err, errlen, "args.env: '%.64s' must be a non-empty name "
                         "without '=' and its value a string without NUL", k);
                return AW_EINVAL;
            }
        }
    }
    if (cwd && !json_is_null(cwd) && (!c_string(cwd) || json_string_value(cwd)[0] != '/'))
        return bad(err, errlen, "args.cwd must be an absolute path");
    /* "Paths with .. are refused" holds for cwd too, also when a bare
     * argv[0] means cwd is never joined with it in resolve(). */
    char joined[PATH_MAX];
    if (cwd && !json_is_null(cwd) &&
        aw_path_join(NULL, json_string_value(cwd), joined, sizeof joined) == -EINVAL)
        return bad(err, errlen, "args.cwd must not contain '..'");
    if (in && !json_is_null(in) && !json_is_string(in))
        return bad(err, errlen, "args.stdin must be a string");
    if (max_output && !json_is_null(max_output) &&
        (!json_is_integer(max_output) || json_integer_value(max_output) < 0))
        return bad(err, errlen, "args.max_output must be an integer >= 0");
    return 0;
}

static const char *optional_string(json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));   /* NULL if absent/null */
}

/* The PATH the child will see: env.PATH, else the configured one. */
static const char *child_path(const struct exec_cfg *cfg, json_t *args)
{
    const char *p = json_string_value(json_object_get(json_object_get(args, "env"), "PATH"));
    return p ? p : cfg->path ? cfg->path : AW_EXEC_DEFAULT_PATH;
}

/* The allow-list applied to the file that path names: its realpath, with
 * no symlink left, must match, so a link inside an allowed directory
 * cannot lead out of it. Returns 0 with real set, or real[0] == '\0' and
 * *errnum set when path does not resolve (no such file, yet): then the
 * path as written must match, and the job fails with spawn_error at its
 * start, where this is checked again. Else AW_EFORBIDDEN with err set. */
static int check_program(const struct exec_cfg *cfg, const char *path, char *real,
                         int *errnum, char *err, size_t errlen)
{
    *errnum = 0;
    if (realpath(path, real)) {
        if (allowed(cfg, real))
            return 0;
        if (strcmp(real, path) == 0)
            snprintf(err, errlen, "'%.200s' is not on the exec allow-list", path);
        else
            snprintf(err, errlen, "'%.200s' resolves to '%.200s', which is not on the "
                     "exec allow-list", path, real);
        return AW_EFORBIDDEN;
    }
    *errnum = errno;
    real[0] = '\0';
    if (allowed(cfg, path))
        return 0;
    snprintf(err, errlen, "'%.200s' is not on the exec allow-list", path);
    return AW_EFORBIDDEN;
}

/* Refused rather than dropped: a job whose environment differs from what
 * its client sent would fail later for a reason nobody can see, while a
 * 403 says at once what is wrong and what the operator can change. */
static int check_env(const struct exec_cfg *cfg, json_t *args, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    if (cfg->allow_loader_env)
        return 0;
    json_object_foreach(json_object_get(args, "env"), k, v) {
        if (loader_var(k)) {
            snprintf(err, errlen, "args.env: '%.64s' would change what the dynamic loader "
                     "or the C library loads into the program; it is refused unless the "
                     "configuration sets allow_loader_env", k);
            return AW_EFORBIDDEN;
        }
    }
    return 0;
}

/* Resolves argv[0] into path (PATH_MAX). Returns 0 (path[0] == '\0' when
 * a bare name is nowhere in PATH but would be allowed: the task then fails
 * with spawn_error), AW_EINVAL or AW_EFORBIDDEN. */
static int resolve(const struct exec_cfg *cfg, json_t *args, char *path,
                   char *err, size_t errlen)
{
    const char *argv0 = json_string_value(json_array_get(json_object_get(args, "argv"), 0));
    const char *cwd = optional_string(args, "cwd");
    int rc;
    char real[PATH_MAX];
    int errnum;
    if (strchr(argv0, '/')) {
        if (argv0[0] != '/' && !cwd)
            return bad(err, errlen, "a relative args.argv[0] needs args.cwd");
        rc = aw_path_join(cwd, argv0, path, PATH_MAX);
        if (rc == -EINVAL)
            return bad(err, errlen, "args.argv[0] must not contain '..'");
        if (rc < 0)
            return bad(err, errlen, "args.argv[0] is too long");
        return check_program(cfg, path, real, &errnum, err, errlen);
    }
    if (cfg->nallow && aw_path_lookup(argv0, child_path(cfg, args), path, PATH_MAX) == 0)
        return check_program(cfg, path, real, &errnum, err, errlen);
    /* Not found: allowed if it would be where PATH could have had it, so
     * that a missing program is a spawn_error as for an absolute path. */
    const char *p = child_path(cfg, args);
    while (cfg->nallow && *p) {
        size_t n = strcspn(p, ":");
        if (n > 0 && p[0] == '/' && n < PATH_MAX) {
            char dir[PATH_MAX];
            memcpy(dir, p, n);
            dir[n] = '\0';
            if (aw_path_join(dir, argv0, path, PATH_MAX) == 0 && allowed(cfg, path)) {
                path[0] = '\0';
                return 0;
            }
        }
        p += n + (p[n] == ':');
    }
    snprintf(err, errlen, "'%.200s' is not on the exec allow-list (looked up in PATH)",
             argv0);
    return AW_EFORBIDDEN;
}

static int exec_prepare(aw_engine_t *e, aw_task_t *t, json_t *args,
                        char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat st;
    int rc = check_shape(args, err, errlen);
    if (rc < 0)
        return rc;
    /* A disabled kind says so (403 kind_disabled) without looking at the
     * file system: clients learn nothing about it. */
    if (!aw_engine_kind_enabled(e, t->kind->name))
        return 0;
    const struct exec_cfg *cfg = aw_engine_kind_state(e, &aw_kind_exec);
    if (geteuid() == 0 && !cfg->allow_root) {
        snprintf(err, errlen, "the daemon runs as root and its configuration does "
                 "not allow exec as root (allow_root)");
        return AW_EFORBIDDEN;
    }
    if ((rc = resolve(cfg, args, path, err, errlen)) < 0)
        return rc;
    if ((rc = check_env(cfg, args, err, errlen)) < 0)
        return rc;
    const char *cwd = optional_string(args, "cwd");
    if (cwd && stat(cwd, &st) < 0) {
        snprintf(err, errlen, "args.cwd '%.200s': %s", cwd, strerror(errno));
        return AW_EINVAL;
    }
    if (cwd && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "args.cwd '%.200s' is not a directory", cwd);
        return AW_EINVAL;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j || (path[0] && !(j->path = strdup(path)))) {
        free(j);
        return -ENOMEM;
    }
    json_t *mo = json_object_get(args, "max_output");
    j->cfg = cfg;
    j->max_output = cfg->max_output;
    if (json_is_integer(mo) && (uint64_t)json_integer_value(mo) < j->max_output)
        j->max_output = (size_t)json_integer_value(mo);
    j->max_kept = aw_engine_limits(e)->max_result_bytes;
    j->e = e;
    j->t = t;
    j->base = aw_engine_base(e);
    j->pidfd = j->in_fd = j->out[0].fd = j->out[1].fd = -1;
    t->kdata.p = j;
    return 0;
}

/* argv and envp for aw_spawn, from the stored args. The strings of argv
 * point into args; envp's are allocated ("K=V"). */
static int build_vectors(const struct exec_cfg *cfg, json_t *args,
                         char ***argvp, char ***envpp)
{
    json_t *argv = json_object_get(args, "argv"), *env = json_object_get(args, "env"), *v;
    size_t n = json_array_size(argv), nenv = json_object_size(env), i = 0;
    const char *k;
    char **av = calloc(n + 1, sizeof *av);
    char **ev = calloc(nenv + 2, sizeof *ev);
    *argvp = av;
    *envpp = ev;
    if (!av || !ev)
        return -ENOMEM;
    for (size_t a = 0; a < n; a++)
        av[a] = (char *)json_string_value(json_array_get(argv, a));
    bool has_path = false;
    json_object_foreach(env, k, v) {
        size_t kl = strlen(k), vl = json_string_length(v);
        if (!(ev[i] = malloc(kl + vl + 2)))
            return -ENOMEM;
        memcpy(ev[i], k, kl);
        ev[i][kl] = '=';
        memcpy(ev[i] + kl + 1, json_string_value(v), vl + 1);
        has_path |= strcmp(k, "PATH") == 0;
        i++;
    }
    if (!has_path) {
        const char *p = cfg->path ? cfg->path : AW_EXEC_DEFAULT_PATH;
        if (!(ev[i] = malloc(strlen(p) + 6)))
            return -ENOMEM;
        strcpy(ev[i], "PATH=");
        strcat(ev[i], p);
    }
    return 0;
}

static void free_vectors(char **av, char **ev)
{
    free(av);
    for (size_t i = 0; ev && ev[i]; i++)
        free(ev[i]);
    free(ev);
}

/* Watches the running child on the loop. Returns 0 or -ENOMEM. */
static int watch_child(struct job *j, const aw_child_t *c)
{
    j->out[0].fd = c->out;
    j->out[1].fd = c->err;
    j->in_fd = c->in;
    j->pidfd = c->pidfd;
    for (int i = 0; i < 2; i++)
        if (!(j->out[i].ev = event_new(j->base, j->out[i].fd, EV_READ | EV_PERSIST,
                                       output_cb, j)) ||
            event_add(j->out[i].ev, NULL) < 0)
            return -ENOMEM;
    if (j->in_fd >= 0 && j->in_off == j->in_len) {
        close_stdin(j);                 /* "" : EOF at once */
    } else if (j->in_fd >= 0) {
        if (!(j->in_ev = event_new(j->base, j->in_fd, EV_WRITE | EV_PERSIST, stdin_cb, j)) ||
            event_add(j->in_ev, NULL) < 0)
            return -ENOMEM;
    }
    if (j->pidfd >= 0) {
        if (!(j->exit_ev = event_new(j->base, j->pidfd, EV_READ | EV_PERSIST, exit_cb, j)) ||
            event_add(j->exit_ev, NULL) < 0)
            return -ENOMEM;
    } else {
        if (!(j->exit_ev = evtimer_new(j->base, exit_cb, j)))
            return -ENOMEM;
        j->poll_ms = POLL_FIRST_MS;
        arm_poll(j);
    }
    return 0;
}

/* The configuration now, at the moment the program would run: a reload
 * may have disabled exec or narrowed the allow-list since the task was
 * created, and the file a path names may have changed. Returns 0 with real
 * set to the checked file to execute (real[0] == '\0': it does not
 * resolve, *errnum says why), or AW_EFORBIDDEN with err set.
 *
 * Why the resolved path and not an fd (fexecve): a script run from an fd
 * needs that fd open in its interpreter (/dev/fd/N), which would break
 * the promise of fds 0-2 only, or scripts. What is left is the moment
 * between this realpath and the execve: a path with no symlink in it can
 * only change by a write to one of its directories, and whoever can do
 * that can replace an allowed program anyway. */
static int recheck(aw_engine_t *e, const struct job *j, json_t *args, char *real,
                   int *errnum, char *err, size_t errlen)
{
    const struct exec_cfg *cfg = j->cfg;
    if (!aw_engine_kind_enabled(e, aw_kind_exec.name)) {
        snprintf(err, errlen, "not started: the exec kind was disabled by configuration "
                 "after the task was created");
        return AW_EFORBIDDEN;
    }
    if (geteuid() == 0 && !cfg->allow_root) {
        snprintf(err, errlen, "not started: the daemon runs as root and its configuration "
                 "does not allow exec as root (allow_root)");
        return AW_EFORBIDDEN;
    }
    char why[PATH_MAX + 200];
    int rc = check_env(cfg, args, why, sizeof why);
    if (rc == 0 && j->path) {
        rc = check_program(cfg, j->path, real, errnum, why, sizeof why);
    } else if (rc == 0) {
        real[0] = '\0';                   /* a bare name found nowhere */
        *errnum = ENOENT;
    }
    if (rc < 0)
        snprintf(err, errlen, "not started: %s", why);
    return rc;
}

static void exec_start(aw_engine_t *e, aw_task_t *t)
{
    struct job *j = t->kdata.p;
    if (!j) {
        /* Never prepared for running (the engine starts only prepared
         * tasks; this guards the invariant rather than crash on it). */
        aw_task_fail(e, t, AW_ERR_SPAWN, "the job was never prepared", NULL);
        return;
    }
    j->e = e;
    j->t = t;
    json_t *args = json_loads(t->args, JSON_ALLOW_NUL, NULL);
    char real[PATH_MAX], why[PATH_MAX + 256];
    int errnum = 0;
    if (args && recheck(e, j, args, real, &errnum, why, sizeof why) < 0) {
        json_decref(args);
        aw_task_fail(e, t, AW_ERR_FORBIDDEN, why, NULL);
        return;
    }
    if (args && !real[0]) {
        json_decref(args);
        spawn_failed(j, errnum);
        return;
    }
    char **argv = NULL, **envp = NULL;
    int rc = args ? build_vectors(j->cfg, args, &argv, &envp) : -ENOMEM;
    json_t *in = json_object_get(args, "stdin");
    if (rc == 0 && json_is_string(in)) {
        j->in_len = json_string_length(in);
        if (!(j->in_data = malloc(j->in_len + 1)))
            rc = -ENOMEM;
        else
            memcpy(j->in_data, json_string_value(in), j->in_len);
    }
    aw_child_t c;
    if (rc == 0) {
        aw_spawn_opts_t o = {
            .path = real, .argv = argv, .envp = envp,
            .cwd = json_string_value(json_object_get(args, "cwd")),
            .stdin_pipe = json_is_string(in),
        };
        /* On the loop thread, which lives as long as the daemon: the
         * kernel kills the job when the thread that spawned it exits. */
        rc = aw_spawn(&o, &c);
    }
    free_vectors(argv, envp);
    json_decref(args);
    if (rc < 0) {
        free(j->in_data);
        j->in_data = NULL;
        spawn_failed(j, -rc);
        return;
    }
    j->pid = c.pid;
    if (watch_child(j, &c) < 0) {
        /* Without events nobody would ever reap it: stop it now. */
        kill_and_reap(j);
        free_event(&j->exit_ev);
        close_fd(&j->pidfd);
        close_output(&j->out[0]);
        close_output(&j->out[1]);
        close_stdin(j);
        spawn_failed(j, ENOMEM);
    }
}

static void exec_wake(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    struct job *j = t->kdata.p;
    if (t->stop_reason != AW_STOP_NONE && !j->reaped) {
        kill(-j->pid, SIGKILL);
        j->sent = SIGKILL;
    }
}

static int exec_cancel(aw_engine_t *e, aw_task_t *t)
{
    struct job *j = t->kdata.p;
    if (!j || j->reaped || j->pid <= 0)
        return 0;
    /* SIGCONT: a stopped group would otherwise hold SIGTERM pending until
     * the SIGKILL. */
    if (j->cfg->kill_grace_ms == 0) {
        kill(-j->pid, SIGKILL);
        j->sent = SIGKILL;
    } else {
        kill(-j->pid, SIGTERM);
        kill(-j->pid, SIGCONT);
        j->sent = SIGTERM;
        if (aw_task_set_wake(e, t, aw_clock_mono_ms() + j->cfg->kill_grace_ms) < 0) {
            kill(-j->pid, SIGKILL);
            j->sent = SIGKILL;
        }
    }
    return 1;       /* it ends when the child is reaped (exit_cb) */
}

/* A retry's next attempt: the job starts over as prepare left it, with
 * no child, no pipes and no output (the attempt before's output went with
 * its result), but keeps its program, its watchers and their event, so
 * that an output follow goes on with the new attempt. */
static void exec_reset(aw_engine_t *e, aw_task_t *t)
{
    struct job *j = t->kdata.p;
    if (!j)
        return;
    if (j->pid > 0 && !j->reaped)
        kill_and_reap(j);
    free_event(&j->exit_ev);
    close_fd(&j->pidfd);
    for (int i = 0; i < 2; i++) {
        close_output(&j->out[i]);
        free(j->out[i].data);
        j->out[i] = (struct output){ .fd = -1 };
    }
    close_stdin(j);
    j->in_len = j->in_off = 0;
    j->pid = 0;
    j->reaped = j->lost = false;
    j->status = j->sent = 0;
    j->poll_ms = 0;
    j->max_kept = aw_engine_limits(e)->max_result_bytes;
    wake_watchers(j);
}

/* Frees the job. A child still running here means the engine is being
 * freed (shutdown): it is SIGKILLed and reaped with a blocking waitpid,
 * which returns as soon as the kernel has torn the process down. */
static void exec_release(aw_task_t *t)
{
    struct job *j = t->kdata.p;
    if (!j)
        return;
    if (j->pid > 0 && !j->reaped)
        kill_and_reap(j);
    free_event(&j->exit_ev);
    close_fd(&j->pidfd);
    for (int i = 0; i < 2; i++) {
        close_output(&j->out[i]);
        free(j->out[i].data);
    }
    close_stdin(j);
    free_event(&j->notify);
    /* Watches hold a reference, so none is left; free defensively. */
    while (j->watches) {
        aw_output_watch_t *w = j->watches;
        j->watches = w->next;
        free(w);
    }
    free(j->path);
    free(j);
    t->kdata.p = NULL;
}

/* ---- output for the HTTP layer ---- */

static struct job *job_of(const aw_task_t *t)
{
    return t->kind == &aw_kind_exec ? t->kdata.p : NULL;
}

/* A job read back from the store has no pipes left, only its result:
 * the output is the result's stdout or stderr, decoded into a buffer that
 * the next call reuses (the contract of aw_task_output allows that). Its
 * bytes are the text the result kept (invalid UTF-8 already replaced). */
static int stored_output(const aw_task_t *t, int stream, const char **data, size_t *len)
{
    static char *scratch;
    /* Only the one string is decoded, not the whole result (the other
     * stream can be megabytes too). */
    const char *text;
    size_t tlen;
    json_t *v = t->result && aw_json_member(t->result, strlen(t->result),
                                            stream == AW_STDOUT ? "stdout" : "stderr",
                                            &text, &tlen)
        ? json_loadb(text, tlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
    size_t n = json_string_length(v);
    char *p = json_is_string(v) ? realloc(scratch, n + 1) : NULL;
    if (p) {
        scratch = p;
        memcpy(p, json_string_value(v), n);
    }
    *data = p ? p : "";
    *len = p ? n : 0;
    json_decref(v);
    return 0;
}

static int exec_output(const aw_task_t *t, int stream, const char **data, size_t *len)
{
    if (stream != AW_STDOUT && stream != AW_STDERR)
        return AW_EINVAL;
    struct job *j = job_of(t);
    if (!j && aw_task_done(t))
        return stored_output(t, stream, data, len);
    const struct output *o = j ? &j->out[stream - 1] : NULL;
    *data = o && o->data ? o->data : "";
    *len = o ? o->len : 0;
    return 0;
}

uint64_t aw_exec_dropped(const aw_task_t *t, int stream)
{
    struct job *j = job_of(t);
    if (!j || (stream != AW_STDOUT && stream != AW_STDERR))
        return 0;
    return j->out[stream - 1].dropped;
}

/* Calls every live watch once; unwatches made meanwhile are only marked
 * (cb = NULL) and swept afterwards, so the list stays walkable. The task
 * reference keeps the job alive if a callback drops the last watch. */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    aw_task_t *t = j->t;
    aw_task_ref(t);
    j->notifying = true;
    for (aw_output_watch_t *w = j->watches; w; w = w->next)
        if (w->cb)
            w->cb(w->arg);
    j->notifying = false;
    if (j->dead_watches) {
        aw_output_watch_t **pp = &j->watches;
        while (*pp) {
            aw_output_watch_t *w = *pp;
            if (w->cb) {
                pp = &w->next;
            } else {
                *pp = w->next;
                free(w);
            }
        }
        j->dead_watches = false;
    }
    aw_task_unref(t);
}

static aw_output_watch_t *exec_watch(aw_task_t *t, aw_output_cb cb, void *arg)
{
    struct job *j = job_of(t);
    if (!j)
        return NULL;
    if (!j->notify && !(j->notify = event_new(j->base, -1, 0, notify_cb, j)))
        return NULL;
    aw_output_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->job = j;
    w->task = t;
    w->cb = cb;
    w->arg = arg;
    w->next = j->watches;
    j->watches = w;
    aw_task_ref(t);
    event_active(j->notify, EV_READ, 0);    /* the first call, from the loop */
    return w;
}

static void exec_unwatch(aw_output_watch_t *w)
{
    if (!w)
        return;
    struct job *j = w->job;
    aw_task_t *t = w->task;
    if (j->notifying) {
        w->cb = NULL;
        j->dead_watches = true;
    } else {
        aw_output_watch_t **pp = &j->watches;
        while (*pp != w)
            pp = &(*pp)->next;
        *pp = w->next;
        free(w);
    }
    aw_task_unref(t);
}

/* The job and what it keeps: its output buffers and what stdin has
 * still to write. */
static size_t exec_bytes(const aw_task_t *t)
{
    const struct job *j = t->kdata.p;
    if (!j)
        return 0;
    return sizeof *j + j->out[0].cap + j->out[1].cap + (j->in_data ? j->in_len : 0) +
           (j->path ? strlen(j->path) + 1 : 0);
}

static pid_t exec_process_group(const aw_task_t *t)
{
    const struct job *j = t->kdata.p;
    return j && j->pid > 0 && !j->reaped ? j->pid : 0;
}

const aw_kind_t aw_kind_exec = {
    .name = "exec",
    .init = exec_init,
    .fini = exec_fini,
    .configure = exec_configure,
    .prepare = exec_prepare,
    .start = exec_start,
    .wake = exec_wake,
    .cancel = exec_cancel,
    .release = exec_release,
    .start_after_commit = 1,
    .output = exec_output,
    .watch = exec_watch,
    .unwatch = exec_unwatch,
    .process_group = exec_process_group,
    .bytes = exec_bytes,
    .reset = exec_reset,
};
