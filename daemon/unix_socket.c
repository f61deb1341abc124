/*
 * unix_socket.c — the listener of listen = unix:PATH (see unix_socket.h).
 *
 * A Unix domain socket is a file, so unlike a TCP port it can be left
 * behind, be in the way, or be a trap: a daemon that died leaves its
 * socket file, which must not stop the next start; a live one (another
 * awaitd) must; and a path that someone replaced with a symlink or a
 * regular file must never be followed, removed or chmod'ed. Each step
 * below works on the path with lstat/unlink/fchownat(AT_SYMLINK_NOFOLLOW),
 * none with a call that follows links. The directory holding the socket is
 * the operator's to protect (systemd's RuntimeDirectory= does it); within
 * it, nothing here trusts what is at the path.
 *
 * Not here: serving the socket (MHD takes an AF_UNIX listen socket as it
 * takes a TCP one), socket activation (service.c), and logging the
 * address (main.c's log_listening).
 */
#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* The socket file of listen = unix:PATH while this process owns it: exit
 * removes it only if it is still the file bind() made (a daemon started
 * during our graceful stop may have replaced it with its own). */
static struct {
    char  path[sizeof ((struct sockaddr_un *)0)->sun_path];
    dev_t dev;
    ino_t ino;
} unix_file;

/* config.c, which has no socket headers, checks paths against 108. */
_Static_assert(sizeof ((struct sockaddr_un *)0)->sun_path == 108,
               "config.c's UNIX_PATH_MAX must match sockaddr_un.sun_path");

int unix_socket_group(const struct config *c, gid_t *gid, char *err, size_t errlen)
{
    *gid = (gid_t)-1;
    if (!c->unix_group[0])
        return 0;
    errno = 0;
    struct group *g = getgrnam(c->unix_group);
    if (!g) {
        /* getgrnam(3): "not found" may come with any of these errnos. */
        int e = errno;
        bool absent = e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
        snprintf(err, errlen, "[server] unix_group = %s: %s", c->unix_group,
                 absent ? "no such group" : strerror(e));
        return -1;
    }
    *gid = g->gr_gid;
    return 0;
}

/* Whether someone accepts connections on the socket file at sa: a
 * non-blocking connect succeeds or finds the backlog full (in use), or is
 * refused (a file left by a daemon that died). Returns 1, 0, or -1 with
 * errno set when it cannot tell. */
static int unix_in_use(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
        return 1;
    if (e == ECONNREFUSED)
        return 0;
    errno = e;
    return -1;
}

/* The file gets exactly unix_mode from bind itself (umask around it), so
 * it is never more open than asked, not even between bind and a chmod;
 * fchownat with AT_SYMLINK_NOFOLLOW gives it the group without following
 * whatever might have been put at the path since. */
int unix_socket_listen(const struct config *c)
{
    const char *path = c->listen_unix;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char err[CONFIG_ERR_SIZE];
    struct stat st;
    gid_t gid;

    memcpy(sa.sun_path, path, strlen(path) + 1);    /* length checked by config.c */
    if (unix_socket_group(c, &gid, err, sizeof err) < 0) {
        log_warnx("cannot listen on unix:%s: %s", path, err);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        int busy = S_ISSOCK(st.st_mode) ? unix_in_use(&sa) : -2;
        if (busy == -2) {
            log_warnx("cannot listen on unix:%s: a file that is not a socket is in the way "
                      "(symlinks are not followed); remove it", path);
            return -1;
        }
        if (busy == 1) {
            log_warnx("cannot listen on unix:%s: another process is listening on it", path);
            return -1;
        }
        if (busy < 0) {
            log_warn("cannot listen on unix:%s: cannot tell whether the socket there is in use",
                     path);
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            log_warn("cannot listen on unix:%s: cannot remove the stale socket file", path);
            return -1;
        }
        log_info("removed the stale socket file %s (nobody was listening on it)", path);
    } else if (errno != ENOENT) {
        log_warn("cannot listen on unix:%s", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_warn("cannot listen on unix:%s: socket", path);
        return -1;
    }
    mode_t old = umask((mode_t)(0777 & ~c->unix_mode));
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0) {
        log_warn("cannot listen on unix:%s", path);
        close(fd);
        return -1;
    }
    if (lstat(path, &st) < 0 ||
        (gid != (gid_t)-1 && fchownat(AT_FDCWD, path, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) < 0) ||
        listen(fd, 4096) < 0) {
        log_warn("cannot listen on unix:%s: %s", path,
                 gid != (gid_t)-1 ? "cannot give it unix_group" : "listen");
        unlink(path);
        close(fd);
        return -1;
    }
    memcpy(unix_file.path, sa.sun_path, sizeof unix_file.path);
    unix_file.dev = st.st_dev;
    unix_file.ino = st.st_ino;
    return fd;
}

void unix_socket_remove(void)
{
    struct stat st;
    if (unix_file.path[0] && lstat(unix_file.path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == unix_file.dev && st.st_ino == unix_file.ino)
        unlink(unix_file.path);
    unix_file.path[0] = '\0';
}
