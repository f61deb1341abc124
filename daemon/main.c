/*
 * main.c — awaitd's start-up, reload and shutdown.
 *
 * Order: options -> configuration (and --check-config) -> logging -> the
 * listening socket (systemd's under socket activation, else bind) -> loop.
 * Everything that can be wrong with the configuration or the flags is
 * reported as one line on stderr with exit status 2 before anything
 * listens: that includes a listen address that does not resolve, and
 * exec or http enabled with no token on an address beyond loopback
 * (check_listen, which a SIGHUP applies too); a port in use is exit 2 as
 * well. Signals arrive as libevent events:
 *
 * - SIGTERM, SIGINT: STOPPING=1, stop accepting, interrupt every running
 *   task, wait for them up to shutdown_grace_seconds, then answer every
 *   open wait and stream (http_server_drain) and leave the loop; then
 *   everything is freed, so leak checkers see a clean exit. A second
 *   signal skips the rest of the grace.
 * - SIGHUP: reload the configuration file. The new file is read into a
 *   fresh struct and checked completely before any of it applies; then it
 *   replaces the running one in place (http.c and api.c read it through
 *   the pointer they were given). What cannot change without a restart
 *   (listen, max_connections) keeps its old value, with a warning.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "engine.h"
#include "events.h"
#include "http.h"
#include "kind_exec.h"
#include "clock.h"
#include "curl_loop.h"
#include "kind_http.h"
#include "notify.h"
#include "log.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "tls.h"
#include "unix_socket.h"

#define DEFAULT_CONFIG AWAITD_SYSCONFDIR "/awaitd/awaitd.conf"
/* File descriptors kept back from the connection limit for everything
 * else the daemon opens (epoll, listen socket, and later pipes, sockets). */
#define FD_RESERVE 256

static void usage(FILE *f)
{
    fprintf(f,
        "usage: awaitd [--config FILE] [--listen HOST:PORT|unix:PATH] [--check-config]\n"
        "\n"
        "  -c, --config FILE      configuration file (default " DEFAULT_CONFIG ",\n"
        "                         built-in defaults when it does not exist)\n"
        "  -l, --listen HOST:PORT listen here instead of the configured address\n"
        "                         (port 0: any free port, logged at start),\n"
        "                         or unix:/PATH for a Unix domain socket\n"
        "  -t, --check-config     validate the configuration and exit\n"
        "  -V, --version          print the version and exit\n"
        "  -h, --help             print this help and exit\n");
}

static void die_config(const char *msg)
{
    fprintf(stderr, "%sawaitd: %s\n", log_journal() ? "<3>" : "", msg);
    exit(2);
}

/* Raises the open-file limit to its hard maximum and keeps the connection
 * limit below it, so accept() never fails with EMFILE under load. */
static void fit_connection_limit(struct config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)c->max_connections + FD_RESERVE) {
        uint32_t fit = rl.rlim_cur > 2 * FD_RESERVE ? (uint32_t)(rl.rlim_cur - FD_RESERVE) : 16;
        log_warnx("max_connections %u exceeds the open-file limit %llu; using %u",
                  c->max_connections, (unsigned long long)rl.rlim_cur, fit);
        c->max_connections = fit;
    }
}

/* Logs the address fd listens on, as "listening on HOST:PORT" (what the
 * tests and operators look for), then suffix. */
static void log_listening(int fd, const char *suffix)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX)
        log_info("listening on unix:%.*s%s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                 sun->sun_path[0] ? sun->sun_path : "(unnamed)", suffix);
    else if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        log_info(ss.ss_family == AF_INET6 ? "listening on [%s]:%s%s" : "listening on %s:%s%s",
                 host, serv, suffix);
    else
        log_info("listening on fd %d%s", fd, suffix);
}

/* ---- who can reach the listen address ---- */

/* This machine's own: 127.0.0.0/8, ::1 (also as ::ffff:127.x), or a Unix
 * socket. */
static bool local_address(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_UNIX)
        return true;
    if (sa->sa_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24 == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* The listen address must resolve, and a daemon that runs programs (or
 * makes requests) for whoever asks may listen beyond loopback only with a
 * token: anyone who reaches it, a web page in a visitor's browser
 * included, could use it otherwise. There is no override; the fixes are a
 * token or a loopback address. fd >= 0 is the socket itself (systemd's,
 * or the one bound: getsockname says where it really is); else
 * c->listen_host is resolved as bind_listener will, every address
 * counting (a blocking getaddrinfo: start-up and SIGHUP only). Returns 0
 * or -1 with err set. */
static int check_listen(const struct config *c, int fd, char *err, size_t errlen)
{
    char where[300], port[8];
    bool local = true;
    snprintf(port, sizeof port, "%u", c->listen_port);
    if (fd < 0 && c->listen_unix[0])
        return 0;                       /* a Unix socket is this machine's */
    if (fd >= 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[NI_MAXHOST], serv[NI_MAXSERV];
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
            snprintf(err, errlen, "cannot read the listening socket's address: %s",
                     strerror(errno));
            return -1;
        }
        local = local_address((struct sockaddr *)&ss);
        if (ss.ss_family == AF_UNIX)
            snprintf(where, sizeof where, "a Unix socket");
        else if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                             NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            snprintf(where, sizeof where, ss.ss_family == AF_INET6 ? "[%.200s]:%s" : "%.200s:%s",
                     host, serv);
        else
            snprintf(where, sizeof where, "fd %d", fd);
    } else {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE }, *res;
        int rc = getaddrinfo(c->listen_host, port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "listen address '%s' does not resolve: %s",
                     c->listen_host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            return -1;
        }
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
            local &= local_address(ai->ai_addr);
        freeaddrinfo(res);
        snprintf(where, sizeof where, strchr(c->listen_host, ':') ? "[%.200s]:%u" : "%.200s:%u",
                 c->listen_host, c->listen_port);
    }
    if (local || config_has_auth(c) || !(c->kind_exec || c->kind_http))
        return 0;
    snprintf(err, errlen, "[kinds] %s = true with no auth_token, and the listen address %.300s is "
             "not a loopback address: anyone who can reach it could %s. Set [server] "
             "auth_token, or listen on 127.0.0.1 or [::1]",
             c->kind_exec ? "exec" : "http", where,
             c->kind_exec ? "run programs on this machine" : "make requests from this machine");
    return -1;
}

/* allow_root = true makes exec as root possible; it stays worth a line
 * at every start and reload, since every job then runs as root. */
static void warn_root(const struct config *c)
{
    if (c->kind_exec && geteuid() == 0)
        log_warnx("exec is enabled and awaitd runs as root (allow_root = true): every job "
                  "runs as root; prefer running awaitd as an unprivileged user");
}

/* log_level = debug: one line per task event, from the engine's
 * listener list. The level is looked at first: at info this costs one
 * call per event. */
static void log_task_event(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    (void)arg;
    if (!log_enabled(LOG_LEVEL_DEBUG) || ev == AW_TASK_MARKED)
        return;
    const char *msg = aw_task_error_message(t);
    if (ev == AW_TASK_FORGOTTEN)
        log_debug("task %s (%s) forgotten", t->id, t->kind->name);
    else if (ev == AW_TASK_CREATED)
        log_debug("task %s (%s) created in queue %s", t->id, t->kind->name, t->queue->name);
    else if (t->error_type != AW_ERR_NONE)
        log_debug("task %s (%s) %s: %s: %s", t->id, t->kind->name,
                  aw_task_state_name((aw_task_state_t)t->state),
                  aw_error_type_name((aw_error_type_t)t->error_type), msg ? msg : "");
    else
        log_debug("task %s (%s) %s", t->id, t->kind->name,
                  aw_task_state_name((aw_task_state_t)t->state));
}

/* Binds and listens; logs the real address (port 0 picks one). Returns the
 * socket, or -1 with err set: an address in use is the operator's to fix
 * like a bad file, so main exits with status 2 for it. Runs before the
 * loop starts, so its name resolution may block. */
static int bind_listener(const struct config *c, char *err, size_t errlen)
{
    if (c->listen_unix[0]) {
        int fd = unix_socket_listen(c);     /* logs why it cannot */
        if (fd >= 0)
            log_listening(fd, "");
        err[0] = '\0';
        return fd;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", c->listen_port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res, *ai;
    int rc = getaddrinfo(c->listen_host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address '%s' does not resolve: %s", c->listen_host,
                 gai_strerror(rc));
        return -1;
    }
    int fd = -1, e = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, strchr(c->listen_host, ':') ? "cannot listen on [%s]:%u: %s%s"
                 : "cannot listen on %s:%u: %s%s", c->listen_host, c->listen_port, strerror(e),
                 e == EADDRINUSE ? " (another awaitd, or another program, listens there; "
                 "stop it or choose another port with listen or --listen)" : "");
        return -1;
    }
    log_listening(fd, "");
    return fd;
}

/* Splits a whitespace-separated list for a kind or the notifier, which
 * copy what they keep: *words points into *buf. Returns the count, or -1
 * (out of memory; both freed). */
static long split_words(const char *list, char **buf, const char ***words)
{
    char *save = NULL;
    long n = 0;
    *buf = strdup(list);
    *words = calloc(strlen(list) / 2 + 1, sizeof **words);
    if (!*buf || !*words) {
        free(*buf);
        free(*words);
        return -1;
    }
    for (char *s = strtok_r(*buf, " \t", &save); s; s = strtok_r(NULL, " \t", &save))
        (*words)[n++] = s;
    return n;
}

/* Hands [exec] to the kind. Returns 0 or -1 with err set. */
static int configure_exec(aw_engine_t *e, const struct config *c, char *err, size_t errlen)
{
    char *buf;
    const char **allow;
    long n = split_words(c->exec_allow, &buf, &allow);
    if (n < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    aw_exec_config_t xc = {
        .allow = allow, .nallow = (size_t)n,
        .kill_grace_ms = (int64_t)(c->exec_kill_grace_seconds * 1000),
        .max_output = c->exec_max_output, .allow_root = c->exec_allow_root,
        .allow_loader_env = c->exec_allow_loader_env,
        .path = c->exec_path,
    };
    int rc = aw_engine_configure_kind(e, "exec", &xc, err, errlen) < 0 ? -1 : 0;
    free(buf);
    free(allow);
    return rc;
}

/* Hands [http] to the kind, like configure_exec. */
static int configure_http(aw_engine_t *e, const struct config *c, char *err, size_t errlen)
{
    char *buf;
    const char **allow;
    long n = split_words(c->http_allow, &buf, &allow);
    if (n < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    aw_http_config_t hc = {
        .allow = allow, .nallow = (size_t)n,
        .max_transfers = c->http_max_transfers,
        .max_response_bytes = c->http_max_response_bytes,
        .max_redirects = c->http_max_redirects,
        .max_request_body = c->http_max_request_body_bytes,
        .max_request_headers = c->http_max_request_headers,
        .connect_timeout_ms = (int64_t)(c->http_connect_timeout_seconds * 1000),
        .insecure = c->http_insecure,
        .ca_file = c->http_ca_file[0] ? c->http_ca_file : NULL,
    };
    int rc = aw_engine_configure_kind(e, "http", &hc, err, errlen) < 0 ? -1 : 0;
    free(buf);
    free(allow);
    return rc;
}

/* Hands [notify] to the notifier, like configure_exec. */
static int configure_notify(aw_notify_t *nt, const struct config *c, char *err, size_t errlen)
{
    char *buf;
    const char **allow;
    long n = split_words(c->notify_allow, &buf, &allow);
    if (n < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    aw_notify_config_t nc = {
        .allow = allow, .nallow = (size_t)n,
        .secret = c->notify_secret,
        .max_attempts = c->notify_max_attempts,
        .min_backoff_ms = aw_seconds_to_ms(c->notify_min_backoff_seconds),
        .max_backoff_ms = aw_seconds_to_ms(c->notify_max_backoff_seconds),
        .max_transfers = c->notify_max_transfers,
        .timeout_ms = aw_seconds_to_ms(c->notify_timeout_seconds),
        .connect_timeout_ms = aw_seconds_to_ms(c->notify_connect_timeout_seconds),
        .insecure = c->notify_insecure,
        .ca_file = c->notify_ca_file[0] ? c->notify_ca_file : NULL,
    };
    int rc = aw_notify_configure(nt, &nc, err, errlen) < 0 ? -1 : 0;
    free(buf);
    free(allow);
    return rc;
}

static int register_engine(aw_engine_t *e, const struct config *c)
{
    int rc = aw_engine_add_kind(e, &aw_kind_sleep, c->kind_sleep);
    if (!rc) rc = aw_engine_add_kind(e, &aw_kind_exec, c->kind_exec);
    if (!rc) rc = aw_engine_add_kind(e, &aw_kind_http, c->kind_http);
    /* Always on: a group runs nothing itself; each child's kind is
     * checked as if it were created alone. */
    if (!rc) rc = aw_engine_add_kind(e, &aw_kind_group, true);
    for (size_t i = 0; !rc && i < c->nqueues; i++)
        rc = aw_engine_set_queue(e, c->queues[i].name, c->queues[i].concurrency);
    return rc;
}

/* What the configuration may not say in this build or as this user (the
 * file's syntax is config_load's business). Returns 0 or -1 with err set;
 * used at start-up and by a reload alike. */
static int check_config(const struct config *c, const char *path, char *err, size_t errlen)
{
    char why[256];
    if (c->kind_http && aw_curl_check(why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: [kinds] http = true: %s", path ? path : "config", why);
        return -1;
    }
    if (c->kind_exec && geteuid() == 0 && !c->exec_allow_root) {
        snprintf(err, errlen, "%s: [kinds] exec = true while running as root: "
                 "set [exec] allow_root = true to allow it, or run awaitd as another user",
                 path ? path : "config");
        return -1;
    }
    return 0;
}

struct app {
    struct event_base  *base;
    struct http_server *http;
    aw_engine_t        *engine;
    aw_notify_t        *notify;         /* completion notifications */
    aw_store_t         *store;          /* NULL: memory only */
    struct service     *svc;
    struct config      *cfg;            /* the running configuration */
    const char         *config_path;    /* --config; NULL: the default file */
    const char         *listen_arg;     /* --listen, re-applied on reload */
    uint32_t            max_connections_asked;  /* before the fd-limit fit */
    int                 listen_fd;
    bool                stopping;
    aw_waiter_t        *grace;          /* waits out running tasks at stop */
    struct event       *drain_ev;
};

/* ---- the store ---- */

static void load_warning(void *arg, const char *msg)
{
    (void)arg;
    log_warnx("%s", msg);
}

/* Opens, starts and loads the store. Returns 0, or -1 after printing the
 * one-line reason (exit status 2). */
static int open_store(struct app *app, const struct config *c)
{
    char err[CONFIG_ERR_SIZE];
    aw_store_loaded_t ld;
    int rc = aw_store_open(c->state_dir, c->sync_full ? AW_SYNC_FULL : AW_SYNC_NORMAL,
                           &app->store, err, sizeof err);
    if (rc == 0)
        rc = aw_store_start(app->store, app->base, app->engine, err, sizeof err);
    if (rc == 0) {
        /* Before the load: a task the restart ends interrupted is
         * notified once that end is committed. */
        aw_notify_use_store(app->notify, app->store);
        rc = aw_store_load(app->store, app->engine, (int64_t)(c->retention_seconds * 1000),
                           &ld, load_warning, NULL, err, sizeof err);
    }
    if (rc < 0) {
        fprintf(stderr, "%sawaitd: %s\n", log_journal() ? "<3>" : "", err);
        aw_notify_use_store(app->notify, NULL);
        aw_store_close(app->store);
        app->store = NULL;
        return -1;
    }
    aw_notify_resume(app->notify);
    aw_store_info_t info;
    aw_store_info(app->store, &info);
    log_info("store %s (sync = %s): %llu tasks read back in %lld ms, %llu expired, "
             "%llu skipped, %llu leftover job process groups killed", info.path,
             c->sync_full ? "full" : "normal", (unsigned long long)ld.tasks, (long long)ld.ms,
             (unsigned long long)ld.expired, (unsigned long long)ld.skipped,
             (unsigned long long)ld.killed_groups);
    return 0;
}

static void on_commit(void *arg, uint64_t first, uint64_t last, bool ok,
                      uint64_t durable, const char *message)
{
    struct app *app = arg;
    static bool failing;
    if (!ok && !failing)
        log_warnx("store: a commit failed, refusing writes until one succeeds: %s", message);
    else if (ok && failing)
        log_info("store: commits succeed again");
    failing = !ok;
    (void)first;
    http_server_committed(app->http, last, ok, durable);
    events_committed(durable);
    aw_notify_committed(app->notify, durable);
}

/* ---- status for systemd ---- */

static void status_line(char *buf, size_t len, void *arg)
{
    struct app *app = arg;
    aw_engine_stats_t st;
    aw_engine_stats(app->engine, &st);
    snprintf(buf, len, "%llu running, %llu pending, %llu waiting requests, %u connections",
             (unsigned long long)st.held[AW_RUNNING], (unsigned long long)st.held[AW_PENDING],
             (unsigned long long)st.waiters, http_open_connections(app->http));
}

/* ---- SIGHUP: reload ---- */

/* The file a reload reads: --config, else the default one if it exists now
 * (NULL: built-in defaults, as at start-up). */
static const char *reload_path(const struct app *app)
{
    if (app->config_path)
        return app->config_path;
    return access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

static int keep_string(char **slot, const char *cur)
{
    char *dup = strdup(cur);
    if (!dup)
        return -1;
    free(*slot);
    *slot = dup;
    return 0;
}

/* The Unix socket and whether TLS is on are fixed when the listener is
 * made; the certificate files themselves are re-read (reload_tls). */
static int keep_listeners(const struct config *cur, struct config *next)
{
    if (strcmp(next->listen_unix, cur->listen_unix) != 0) {
        if (next->listen_unix[0])
            log_warnx("SIGHUP: listen changed to unix:%s; that needs a restart, "
                      "still listening on the old address", next->listen_unix);
        else
            log_warnx("SIGHUP: listen changed to a TCP address; that needs a restart, "
                      "still listening on unix:%s", cur->listen_unix);
        if (keep_string(&next->listen_unix, cur->listen_unix) < 0 ||
            keep_string(&next->listen_host, cur->listen_host) < 0)
            return -1;
        next->listen_port = cur->listen_port;
    }
    if (next->unix_mode != cur->unix_mode || strcmp(next->unix_group, cur->unix_group) != 0) {
        if (cur->listen_unix[0])
            log_warnx("SIGHUP: unix_mode or unix_group changed; that needs a restart, "
                      "keeping %04o and %s", (unsigned)cur->unix_mode,
                      cur->unix_group[0] ? cur->unix_group : "the daemon's group");
        next->unix_mode = cur->unix_mode;
        if (keep_string(&next->unix_group, cur->unix_group) < 0)
            return -1;
    }
    if (!next->tls_cert[0] != !cur->tls_cert[0]) {
        log_warnx("SIGHUP: %s; that needs a restart, still serving %s",
                  cur->tls_cert[0] ? "tls_cert and tls_key were removed" : "tls_cert and tls_key were set",
                  cur->tls_cert[0] ? "HTTPS" : "plain HTTP");
        if (keep_string(&next->tls_cert, cur->tls_cert) < 0 ||
            keep_string(&next->tls_key, cur->tls_key) < 0)
            return -1;
    }
    return 0;
}

/* SIGHUP with TLS on: new connections get the pair the files hold now. A
 * pair that cannot be used keeps the served one (and its file names in
 * the running configuration), with a warning; the rest of the file still
 * applies. Never fails: called when nothing else can. */
static void reload_tls(const struct config *cur, struct config *next)
{
    char err[CONFIG_ERR_SIZE], what[512];
    if (!next->tls_cert[0])
        return;
    int rc = tls_reload(next->tls_cert, next->tls_key, err, sizeof err);
    if (rc < 0) {
        log_warnx("SIGHUP: %s; still serving the certificate read from %s", err, cur->tls_cert);
        /* Out of memory leaves the new names; nothing is served from them,
         * and the next reload reads the files again either way. */
        if (keep_string(&next->tls_cert, cur->tls_cert) == 0)
            keep_string(&next->tls_key, cur->tls_key);
        return;
    }
    if (rc == 1) {
        tls_describe(what, sizeof what);
        log_info("SIGHUP: new connections get the %s", what);
    }
}

/* Carries over what only a restart can change, warning when the new file
 * asks for something else. Returns 0, or -1 when out of memory. */
static int keep_restart_only(const struct app *app, struct config *next)
{
    const struct config *cur = app->cfg;
    if (keep_listeners(cur, next) < 0)
        return -1;
    if (strcmp(next->listen_host, cur->listen_host) != 0 ||
        next->listen_port != cur->listen_port) {
        log_warnx("SIGHUP: listen changed from %s:%u to %s:%u; that needs a restart, "
                  "still listening on the old address", cur->listen_host,
                  cur->listen_port, next->listen_host, next->listen_port);
        char *host = strdup(cur->listen_host);
        if (!host)
            return -1;
        free(next->listen_host);
        next->listen_host = host;
        next->listen_port = cur->listen_port;
    }
    if (next->max_connections != app->max_connections_asked)
        log_warnx("SIGHUP: max_connections changed to %u; that needs a restart, "
                  "keeping %u", next->max_connections, cur->max_connections);
    next->max_connections = cur->max_connections;
    if (next->idle_timeout_seconds != cur->idle_timeout_seconds ||
        next->max_connections_per_client != cur->max_connections_per_client)
        log_warnx("SIGHUP: idle_timeout_seconds and max_connections_per_client need a "
                  "restart, keeping %u and %u", cur->idle_timeout_seconds,
                  cur->max_connections_per_client);
    next->idle_timeout_seconds = cur->idle_timeout_seconds;
    next->max_connections_per_client = cur->max_connections_per_client;
    if (strcmp(next->state_dir, cur->state_dir) != 0 || next->sync_full != cur->sync_full) {
        log_warnx("SIGHUP: [storage] changed; that needs a restart, keeping "
                  "state_dir = %s, sync = %s", cur->state_dir[0] ? cur->state_dir : "(memory)",
                  cur->sync_full ? "full" : "normal");
        char *dir = strdup(cur->state_dir);
        if (!dir)
            return -1;
        free(next->state_dir);
        next->state_dir = dir;
        next->sync_full = cur->sync_full;
    }
    for (size_t i = 0; i < cur->nqueues; i++) {
        size_t j = 0;
        while (j < next->nqueues && strcmp(next->queues[j].name, cur->queues[i].name) != 0)
            j++;
        if (j == next->nqueues)
            log_warnx("SIGHUP: [queue:%s] was removed; the queue stays, with concurrency %u, "
                      "until a restart", cur->queues[i].name, cur->queues[i].concurrency);
    }
    return 0;
}

static int set_queues(aw_engine_t *e, const struct config *c)
{
    for (size_t i = 0; i < c->nqueues; i++)
        if (aw_engine_set_queue(e, c->queues[i].name, c->queues[i].concurrency) < 0)
            return -1;
    return 0;
}

/* Reads and checks the whole file first; only then applies it, so a file
 * with a mistake changes nothing. Reading a small local file is the one
 * blocking call here, once per SIGHUP. */
static void reload(struct app *app)
{
    const char *path = reload_path(app);
    const char *name = path ? path : "(built-in defaults)";
    char err[CONFIG_ERR_SIZE];
    struct config next;

    service_reloading(app->svc);
    if (config_init(&next) < 0) {
        log_warnx("SIGHUP: out of memory; keeping the running configuration");
        service_reloaded(app->svc);
        return;
    }
    if ((path && config_load(&next, path, err, sizeof err) < 0) ||
        (app->listen_arg && config_set_listen(&next, app->listen_arg, err, sizeof err) < 0) ||
        check_config(&next, path, err, sizeof err) < 0 ||
        check_listen(&next, app->listen_fd, err, sizeof err) < 0)
        goto keep;
    if (keep_restart_only(app, &next) < 0) {
        snprintf(err, sizeof err, "out of memory");
        goto keep;
    }
    /* The two steps that can still fail (out of memory only: the values
     * were checked) come first, and the first is undone if the second
     * fails. Queues that a failed reload added stay, unused and harmless. */
    if (configure_exec(app->engine, &next, err, sizeof err) < 0)
        goto keep;
    if (configure_http(app->engine, &next, err, sizeof err) < 0) {
        configure_exec(app->engine, app->cfg, err, sizeof err);
        goto keep;
    }
    if (configure_notify(app->notify, &next, err, sizeof err) < 0) {
        configure_exec(app->engine, app->cfg, err, sizeof err);
        configure_http(app->engine, app->cfg, err, sizeof err);
        goto keep;
    }
    if (set_queues(app->engine, &next) < 0) {
        set_queues(app->engine, app->cfg);      /* existing queues: cannot fail */
        configure_exec(app->engine, app->cfg, err, sizeof err);
        configure_http(app->engine, app->cfg, err, sizeof err);
        configure_notify(app->notify, app->cfg, err, sizeof err);
        snprintf(err, sizeof err, "out of memory");
        goto keep;
    }
    aw_engine_enable_kind(app->engine, "sleep", next.kind_sleep);
    aw_engine_enable_kind(app->engine, "exec", next.kind_exec);
    aw_engine_enable_kind(app->engine, "http", next.kind_http);
    aw_engine_limits_t lim = {
        .max_tasks = next.max_tasks,
        .retention_ms = (int64_t)(next.retention_seconds * 1000),
        .max_task_bytes = next.max_task_bytes,
        .max_result_bytes = next.max_result_bytes,
        .max_group_tasks = next.max_group_tasks,
    };
    aw_engine_set_limits(app->engine, &lim);
    log_set_level(next.log_level);
    reload_tls(app->cfg, &next);
    warn_root(&next);

    struct config old = *app->cfg;
    *app->cfg = next;
    config_close(&old);
    log_info("SIGHUP: configuration reloaded from %s", name);
    service_reloaded(app->svc);
    return;
keep:
    config_close(&next);
    log_warnx("SIGHUP: %s; keeping the running configuration", err);
    service_reloaded(app->svc);
}

/* ---- SIGTERM, SIGINT: graceful stop ---- */

static void drained(void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

/* Runs from its own event, never from inside the engine: the drain
 * abandons waiters, which a waiter callback must not do to its siblings. */
static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct app *app = arg;
    /* Everything the daemon did is committed before the last answers go
     * out: the interrupted tasks, and what open requests wait for. The
     * loop is ending, so waiting for the disk here blocks nothing. */
    aw_store_sync(app->store);
    log_info("answering open requests");
    http_server_drain(app->http, drained, app);
}

static size_t count_running(const aw_engine_t *e)
{
    aw_engine_stats_t st;
    aw_engine_stats(e, &st);
    return (size_t)st.held[AW_RUNNING];
}

static void grace_over(aw_waiter_t *w, void *arg)
{
    (void)w;
    struct app *app = arg;
    app->grace = NULL;
    size_t left = count_running(app->engine);
    if (left)
        log_warnx("%zu task(s) still stopping after shutdown_grace_seconds (%g s); "
                  "killing them", left, app->cfg->shutdown_grace_seconds);
    event_active(app->drain_ev, EV_TIMEOUT, 0);
}

/* Stops accepting and interrupts every running task (they end failed with
 * error type "interrupted"; their open waits are answered as they end).
 * Exec jobs may need their kill grace to go: they are awaited up to
 * shutdown_grace_seconds, then the drain answers whatever is still open. */
static void begin_stop(struct app *app, int sig)
{
    app->stopping = true;
    service_stopping(app->svc, "stopping: interrupting running tasks, answering open requests");
    http_server_stop_accepting(app->http);
    size_t n = aw_engine_interrupt_all(app->engine);
    log_info("%s: stopped accepting connections, interrupted the running tasks",
             strsignal(sig));
    if (n == 0) {
        event_active(app->drain_ev, EV_TIMEOUT, 0);
        return;
    }
    aw_task_t **run = malloc(n * sizeof *run);
    size_t k = 0;
    for (aw_task_t *t = aw_task_after(app->engine, NULL); run && t && k < n; t = aw_task_next(t))
        if (t->state == AW_RUNNING && !t->kind->no_slot)  /* a group is not stopped */
            run[k++] = t;
    int64_t grace_ms = (int64_t)(app->cfg->shutdown_grace_seconds * 1000);
    int rc = run && k ? aw_wait(app->engine, run, k, AW_RETURN_ALL, grace_ms, false,
                                grace_over, app, &app->grace) : 1;
    free(run);
    if (rc == 0)
        log_info("waiting up to %g s for %zu task(s) to stop",
                 app->cfg->shutdown_grace_seconds, k);
    else
        event_active(app->drain_ev, EV_TIMEOUT, 0);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct app *app = arg;
    if (sig == SIGHUP) {
        if (app->stopping)
            log_warnx("SIGHUP while stopping: not reloading");
        else
            reload(app);
        return;
    }
    if (!app->stopping) {
        begin_stop(app, (int)sig);
    } else if (app->grace) {
        log_info("%s again: not waiting for running tasks any longer", strsignal((int)sig));
        aw_wait_abandon(app->grace);
        app->grace = NULL;
        event_active(app->drain_ev, EV_TIMEOUT, 0);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "listen", required_argument, NULL, 'l' },
        { "check-config", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL, *listen = NULL;
    bool check_only = false;
    int ch;
    log_init();
    while ((ch = getopt_long(argc, argv, "c:l:tVh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config_path = optarg; break;
        case 'l': listen = optarg; break;
        case 't': check_only = true; break;
        case 'V': printf("awaitd %s\n", AWAITD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default:  usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "awaitd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct config cfg;
    char err[CONFIG_ERR_SIZE];
    struct app app = { .cfg = &cfg, .config_path = config_path, .listen_arg = listen };
    if (config_init(&cfg) < 0)
        die_config("out of memory");
    if (!config_path && access(DEFAULT_CONFIG, F_OK) == 0)
        config_path = DEFAULT_CONFIG;
    if (config_path && config_load(&cfg, config_path, err, sizeof err) < 0)
        die_config(err);
    if (listen && config_set_listen(&cfg, listen, err, sizeof err) < 0) {
        char msg[CONFIG_ERR_SIZE + 32];
        snprintf(msg, sizeof msg, "--listen: %s", err);
        die_config(msg);
    }
    if (check_config(&cfg, config_path, err, sizeof err) < 0)
        die_config(err);
    /* Under socket activation (systemd sets LISTEN_FDS) the configured
     * address is not used: the socket passed is checked once it is known. */
    if ((check_only || !getenv("LISTEN_FDS")) && check_listen(&cfg, -1, err, sizeof err) < 0)
        die_config(err);
    aw_engine_limits_t lim = {
        .max_tasks = cfg.max_tasks,
        .retention_ms = (int64_t)(cfg.retention_seconds * 1000),
        .max_task_bytes = cfg.max_task_bytes,
        .max_result_bytes = cfg.max_result_bytes,
        .max_group_tasks = cfg.max_group_tasks,
    };
    app.base = event_base_new();
    app.engine = app.base ? aw_engine_new(app.base, &lim) : NULL;
    if (!app.engine || register_engine(app.engine, &cfg) < 0 ||
        aw_engine_listen(app.engine, log_task_event, NULL) < 0 ||
        !(app.notify = aw_notify_new(app.engine)))
        die_config("out of memory");
    if (configure_exec(app.engine, &cfg, err, sizeof err) < 0 ||
        configure_http(app.engine, &cfg, err, sizeof err) < 0 ||
        configure_notify(app.notify, &cfg, err, sizeof err) < 0)
        die_config(err);
    /* A certificate that cannot be served and a socket group that does not
     * exist are configuration errors: exit 2 before anything listens. */
    gid_t gid;
    if (cfg.tls_cert[0] && (check_only ? tls_check(cfg.tls_cert, cfg.tls_key, err, sizeof err)
                                       : tls_load(cfg.tls_cert, cfg.tls_key, err, sizeof err)) < 0)
        die_config(err);
    if (cfg.listen_unix[0] && unix_socket_group(&cfg, &gid, err, sizeof err) < 0)
        die_config(err);
    if (check_only) {
        if (cfg.state_dir[0] && aw_store_check(cfg.state_dir, err, sizeof err) < 0)
            die_config(err);
        printf("awaitd: configuration %s is valid\n", config_path ? config_path : "(defaults)");
        aw_notify_free(app.notify);
        aw_engine_free(app.engine);
        event_base_free(app.base);
        config_close(&cfg);
        return 0;
    }

    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    warn_root(&cfg);
    /* A file-size limit (ulimit -f) must make a write fail with EFBIG,
     * which the store answers as a full disk, not kill the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    /* The store comes before the socket: a state_dir that cannot be used
     * is an error before anything listens, and the tasks are back before
     * the first client can ask for them. */
    if (cfg.state_dir[0] && open_store(&app, &cfg) < 0) {
        tls_free();
        aw_notify_free(app.notify);
        aw_engine_free(app.engine);
        event_base_free(app.base);
        config_close(&cfg);
        return 2;
    }
    app.max_connections_asked = cfg.max_connections;
    fit_connection_limit(&cfg);
    int fd = service_listen_fd(err, sizeof err);
    if (fd == -2) {
        log_warnx("%s", err);
        return 1;
    }
    if (fd >= 0) {
        log_listening(fd, " (socket activation)");
        if (listen)
            log_warnx("--listen %s ignored: systemd passed the listening socket", listen);
    } else if ((fd = bind_listener(&cfg, err, sizeof err)) < 0) {
        /* An address in use, a Unix socket path in use or in the way:
         * the operator's configuration to fix, as a bad file is. Everything
         * is freed, as on the store's failure above, so leak checkers stay
         * quiet and the exit status stays 2. */
        if (err[0])
            fprintf(stderr, "%sawaitd: %s\n", log_journal() ? "<3>" : "", err);
        aw_store_close(app.store);
        aw_notify_free(app.notify);
        aw_engine_free(app.engine);
        event_base_free(app.base);
        tls_free();
        config_close(&cfg);
        return 2;
    }
    /* Where it really listens: systemd's socket, or a bound one when
     * LISTEN_FDS named another process. */
    if (check_listen(&cfg, fd, err, sizeof err) < 0)
        die_config(err);
    app.listen_fd = fd;

    api_init(app.notify);
    app.http = http_server_new(app.base, &cfg, app.engine, app.store, fd, api_handle);
    if (!app.http)
        return 1;
    if (app.store)
        aw_store_on_commit(app.store, on_commit, &app);
    app.drain_ev = event_new(app.base, -1, 0, drain_cb, &app);
    app.svc = service_new(app.base, status_line, &app);
    if (!app.drain_ev || !app.svc)
        fatal("out of memory while starting");

    struct event *sigs[3];
    const int signals[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++)
        if (!(sigs[i] = evsignal_new(app.base, signals[i], on_signal, &app)) ||
            evsignal_add(sigs[i], NULL) < 0)
            fatal("cannot install signal handlers");

    if (cfg.tls_cert[0]) {
        char what[512];
        tls_describe(what, sizeof what);
        log_info("serving HTTPS: %s", what);
    }
    log_info("awaitd %s ready", AWAITD_VERSION);
    service_ready(app.svc);
    event_base_dispatch(app.base);

    if (app.store)
        aw_store_on_commit(app.store, NULL, NULL);  /* the server goes first */
    http_server_free(app.http);
    unix_socket_remove();
    tls_free();                         /* after MHD: no handshake is left */
    events_free();
    aw_notify_free(app.notify);         /* undelivered ones stay in the store */
    aw_store_close(app.store);          /* commits the last changes */
    aw_engine_free(app.engine);         /* kills and reaps running jobs; frees
                                         * app.grace if it never fired */
    service_free(app.svc);
    event_free(app.drain_ev);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_base_free(app.base);
    libevent_global_shutdown();
    config_close(&cfg);
    log_info("stopped");
    return 0;
}
