/*
 * service.c — the glue between awaitd and systemd (see service.h).
 *
 * Everything goes through libsystemd: sd_listen_fds for socket activation,
 * sd_notify for READY=1, STATUS=, WATCHDOG=1, RELOADING=1 and STOPPING=1.
 * The watchdog ping and the status update are timers on the daemon's own
 * loop, not a thread: a loop that hangs stops pinging, which is exactly
 * what the watchdog is meant to notice. This file is not a general service
 * abstraction; it is the few notifications systemd.service(5) defines for
 * Type=notify.
 *
 * sd_notify sends one datagram on a fresh AF_UNIX socket. It could block
 * only if the manager's notification queue were full; systemd reads it
 * from its own loop, and awaitd sends at most one datagram per status
 * interval and watchdog period, so that is not a real risk to the loop.
 */
#include "service.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

/* How often STATUS= is refreshed: often enough for `systemctl status` to
 * look alive, rare enough to cost nothing. */
#define STATUS_INTERVAL_SEC 5

struct service {
    service_status_fn status;
    void             *arg;
    bool              notify;       /* NOTIFY_SOCKET is set */
    struct event     *watchdog_ev;  /* NULL when WatchdogSec is unset */
    struct event     *status_ev;    /* NULL when notify is false */
};

int service_listen_fd(char *err, size_t errlen)
{
    /* 1: unset LISTEN_* so that nothing started later inherits them. */
    int n = sd_listen_fds(1);
    if (n < 0) {
        snprintf(err, errlen, "socket activation: %s", strerror(-n));
        return -2;
    }
    if (n == 0)
        return -1;
    if (n > 1) {
        snprintf(err, errlen, "socket activation: systemd passed %d sockets; "
                 "awaitd listens on one (one ListenStream= in awaitd.socket)", n);
        return -2;
    }
    int fd = SD_LISTEN_FDS_START;
    int r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
    if (r <= 0) {
        snprintf(err, errlen, "socket activation: fd %d is not a listening stream "
                 "socket%s%s", fd, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
        return -2;
    }
    return fd;
}

static void notify_status(struct service *s, const char *extra)
{
    char line[256], msg[320];
    if (!s->notify)
        return;
    line[0] = '\0';
    s->status(line, sizeof line, s->arg);
    snprintf(msg, sizeof msg, "%s%sSTATUS=%s", extra ? extra : "", extra ? "\n" : "", line);
    sd_notify(0, msg);
}

static void status_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    notify_status(arg, NULL);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

struct service *service_new(struct event_base *base, service_status_fn status, void *arg)
{
    struct service *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->status = status;
    s->arg = arg;
    s->notify = getenv("NOTIFY_SOCKET") != NULL;

    uint64_t usec = 0;
    /* 0: keep WATCHDOG_USEC, a later reload may read it again; it is no
     * secret and exec jobs get an environment of their own. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        /* Ping at half the period, as sd_watchdog_enabled(3) advises. */
        uint64_t half = usec / 2;
        struct timeval tv = { .tv_sec = (time_t)(half / 1000000),
                              .tv_usec = (suseconds_t)(half % 1000000) };
        s->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, s);
        if (!s->watchdog_ev || event_add(s->watchdog_ev, &tv) < 0)
            goto fail;
    }
    if (s->notify) {
        struct timeval tv = { .tv_sec = STATUS_INTERVAL_SEC };
        s->status_ev = event_new(base, -1, EV_PERSIST, status_cb, s);
        if (!s->status_ev || event_add(s->status_ev, &tv) < 0)
            goto fail;
    }
    return s;
fail:
    service_free(s);
    return NULL;
}

void service_ready(struct service *s)
{
    notify_status(s, "READY=1");
    if (s->watchdog_ev)
        sd_notify(0, "WATCHDOG=1");
}

void service_reloading(struct service *s)
{
    if (s->notify)
        sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void service_reloaded(struct service *s)
{
    notify_status(s, "READY=1");
}

void service_stopping(struct service *s, const char *why)
{
    if (s->status_ev)
        event_del(s->status_ev);
    if (s->notify) {
        char msg[320];
        snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s", why);
        sd_notify(0, msg);
    }
}

void service_free(struct service *s)
{
    if (!s)
        return;
    if (s->watchdog_ev)
        event_free(s->watchdog_ev);
    if (s->status_ev)
        event_free(s->status_ev);
    free(s);
}
