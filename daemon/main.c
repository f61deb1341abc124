/*
 * main.c — awaitd's start-up and shutdown.
 *
 * Order: options -> configuration (and --check-config) -> logging -> bind
 * -> loop. Everything that can be wrong with the configuration or the flags
 * is reported as one line on stderr with exit status 2 before anything
 * listens. Signals arrive as libevent events: SIGTERM and SIGINT drain the
 * HTTP server (every open wait is answered) and leave the loop; then
 * everything is freed, so leak checkers see a clean exit.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "engine.h"
#include "http.h"
#include "kind_exec.h"
#include "log.h"

#define DEFAULT_CONFIG AWAITD_SYSCONFDIR "/awaitd/awaitd.conf"
/* File descriptors kept back from the connection limit for everything
 * else the daemon opens (epoll, listen socket, and later pipes, sockets). */
#define FD_RESERVE 256

static void usage(FILE *f)
{
    fprintf(f,
        "usage: awaitd [--config FILE] [--listen HOST:PORT] [--check-config]\n"
        "\n"
        "  -c, --config FILE      configuration file (default " DEFAULT_CONFIG ",\n"
        "                         built-in defaults when it does not exist)\n"
        "  -l, --listen HOST:PORT listen here instead of the configured address\n"
        "                         (port 0: any free port, logged at start)\n"
        "  -t, --check-config     validate the configuration and exit\n"
        "  -V, --version          print the version and exit\n"
        "  -h, --help             print this help and exit\n");
}

static void die_config(const char *msg)
{
    fprintf(stderr, "awaitd: %s\n", msg);
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

/* Binds and listens; logs the real address (port 0 picks one). Returns the
 * socket, or -1 after logging why. Runs before the loop starts, so its
 * name resolution may block. */
static int bind_listener(const struct config *c)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->listen_port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res, *ai;
    int rc = getaddrinfo(c->listen_host, port, &hints, &res);
    if (rc != 0) {
        log_warnx("cannot resolve listen address %s: %s", c->listen_host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_warn("cannot listen on %s:%u", c->listen_host, c->listen_port);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        log_info(ss.ss_family == AF_INET6 ? "listening on [%s]:%s" : "listening on %s:%s",
                 host, serv);
    return fd;
}

struct app {
    struct event_base  *base;
    struct http_server *http;
    bool                stopping;
};

static void drained(void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct app *app = arg;
    if (sig == SIGHUP) {
        log_warnx("SIGHUP: configuration reload is not supported yet; keeping the running one");
        return;
    }
    if (app->stopping)
        return;
    app->stopping = true;
    log_info("%s: answering open requests and stopping", strsignal((int)sig));
    http_server_drain(app->http, drained, app);
}

/* Hands [exec] to the kind. The allow string is split in place of a copy;
 * aw_exec_configure copies what it keeps. Returns 0 or -1 with err set. */
static int configure_exec(const struct config *c, char *err, size_t errlen)
{
    char *list = strdup(c->exec_allow), *save = NULL;
    const char **allow = calloc(strlen(c->exec_allow) / 2 + 1, sizeof *allow);
    size_t n = 0;
    int rc = -1;
    if (list && allow) {
        for (char *s = strtok_r(list, " \t", &save); s; s = strtok_r(NULL, " \t", &save))
            allow[n++] = s;
        aw_exec_config_t xc = {
            .allow = allow, .nallow = n,
            .kill_grace_ms = (int64_t)(c->exec_kill_grace_seconds * 1000),
            .max_output = c->exec_max_output, .allow_root = c->exec_allow_root,
            .path = c->exec_path,
        };
        rc = aw_exec_configure(&xc, err, errlen) < 0 ? -1 : 0;
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(list);
    free(allow);
    return rc;
}

static int register_engine(aw_engine_t *e, const struct config *c)
{
    int rc = aw_engine_add_kind(e, &aw_kind_sleep, c->kind_sleep);
    if (!rc) rc = aw_engine_add_kind(e, &aw_kind_exec, c->kind_exec);
    if (!rc) rc = aw_engine_add_kind(e, &aw_kind_http_stub, false);
    for (size_t i = 0; !rc && i < c->nqueues; i++)
        rc = aw_engine_set_queue(e, c->queues[i].name, c->queues[i].concurrency);
    return rc;
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
    if (cfg.kind_http) {
        snprintf(err, sizeof err, "%s: [kinds] http = true: this version of awaitd "
                 "does not have the http kind yet", config_path ? config_path : "config");
        die_config(err);
    }
    if (cfg.kind_exec && geteuid() == 0 && !cfg.exec_allow_root) {
        snprintf(err, sizeof err, "%s: [kinds] exec = true while running as root: "
                 "set [exec] allow_root = true to allow it, or run awaitd as another user",
                 config_path ? config_path : "config");
        die_config(err);
    }
    if (configure_exec(&cfg, err, sizeof err) < 0)
        die_config(err);
    if (check_only) {
        printf("awaitd: configuration %s is valid\n", config_path ? config_path : "(defaults)");
        config_close(&cfg);
        return 0;
    }

    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    fit_connection_limit(&cfg);
    int fd = bind_listener(&cfg);
    if (fd < 0)
        return 1;

    struct app app = { 0 };
    aw_engine_limits_t lim = {
        .max_tasks = cfg.max_tasks,
        .retention_ms = (int64_t)(cfg.retention_seconds * 1000),
    };
    app.base = event_base_new();
    aw_engine_t *engine = app.base ? aw_engine_new(app.base, &lim) : NULL;
    if (!engine || register_engine(engine, &cfg) < 0)
        fatal("out of memory while starting");
    api_init();
    app.http = http_server_new(app.base, &cfg, engine, fd, api_handle);
    if (!app.http)
        return 1;

    struct event *sigs[3];
    const int signals[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++)
        if (!(sigs[i] = evsignal_new(app.base, signals[i], on_signal, &app)) ||
            evsignal_add(sigs[i], NULL) < 0)
            fatal("cannot install signal handlers");

    log_info("awaitd %s ready", AWAITD_VERSION);
    event_base_dispatch(app.base);

    http_server_free(app.http);
    aw_engine_free(engine);             /* kills and reaps running jobs */
    aw_exec_configure(NULL, NULL, 0);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_base_free(app.base);
    libevent_global_shutdown();
    config_close(&cfg);
    log_info("stopped");
    return 0;
}
