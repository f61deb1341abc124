/*
 * unix_socket.h — listen = unix:PATH: making the socket file, with its
 * mode and group, and removing it at exit.
 *
 * Runs before the loop starts and after it ends (group lookups may block
 * in NSS). Errors are logged here (log_warn/log_warnx) and returned as -1;
 * main() exits with status 2, as for any configuration to fix.
 */
#ifndef AWAITD_UNIX_SOCKET_H
#define AWAITD_UNIX_SOCKET_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Resolves [server] unix_group: *gid is (gid_t)-1 when it is empty.
 * Returns 0, or -1 with err set ("[server] unix_group = x: no such group"). */
int  unix_socket_group(const struct config *c, gid_t *gid, char *err, size_t errlen);
/* Binds and listens on c->listen_unix with unix_mode and unix_group. A
 * socket file already there is removed only if nobody listens on it; a
 * live socket, or anything else at the path (a symlink is never followed),
 * is an error. Returns the non-blocking listening socket, or -1 after
 * logging why. */
int  unix_socket_listen(const struct config *c);
/* Removes the file unix_socket_listen made, if the path still holds that
 * very socket (a daemon started during a graceful stop may have replaced
 * it with its own). Idempotent; nothing to do without a listen. */
void unix_socket_remove(void);

#endif
