/*
 * service.h — awaitd and its service manager (systemd): the listening
 * socket of socket activation, readiness, live status, watchdog pings and
 * the stop notice, through libsystemd's sd_listen_fds and sd_notify.
 *
 * Without systemd (no LISTEN_FDS, no NOTIFY_SOCKET, no WATCHDOG_USEC in the
 * environment) every function here does nothing and costs nothing, so the
 * same binary runs in a terminal, in a container or under systemd.
 */
#ifndef AWAITD_SERVICE_H
#define AWAITD_SERVICE_H

#include <stddef.h>

struct event_base;
struct service;

/* Writes one line of live counts into buf (for STATUS=). */
typedef void (*service_status_fn)(char *buf, size_t len, void *arg);

/* The listening socket passed by systemd (socket activation): returns its
 * fd (SD_LISTEN_FDS_START), -1 when none was passed (bind as usual), or -2
 * with err set when what was passed cannot be used (several sockets, or not
 * a listening stream socket). It unsets LISTEN_FDS and LISTEN_PID, so exec
 * jobs never see them; the fd is close-on-exec. Start-up only. */
int service_listen_fd(char *err, size_t errlen);

/* Starts the watchdog pings (every half WATCHDOG_USEC) and the periodic
 * STATUS= update on base. status(arg) is asked for the counts. Returns
 * NULL when out of memory. */
struct service *service_new(struct event_base *base, service_status_fn status, void *arg);
/* READY=1 with the first status: call once the server listens. */
void service_ready(struct service *s);
/* RELOADING=1 before a configuration reload, READY=1 after it (whether it
 * applied or not: the daemon keeps serving either way). */
void service_reloading(struct service *s);
void service_reloaded(struct service *s);
/* STOPPING=1, with why as the status line. The status timer stops. */
void service_stopping(struct service *s, const char *why);
/* Stops the timers and frees s (NULL is fine). */
void service_free(struct service *s);

#endif
