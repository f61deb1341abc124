/*
 * sockact_unix.c — socket activation with a Unix domain socket, for the
 * black-box tests: what systemd does for ListenStream=/run/awaitd/api.sock.
 *
 * Binds and listens on PATH (which must not exist), prints
 * "sockact_unix: passing PATH as fd 3" to stderr, moves the socket to fd 3
 * and execs the command with LISTEN_FDS=1 and LISTEN_PID set to its own
 * pid (sd_listen_fds(3)). The socket file is the caller's to remove, as
 * systemd removes its own.
 *
 *   sockact_unix PATH PROGRAM [ARG...]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sockact_unix PATH PROGRAM [ARG...]\n");
        return 2;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(argv[1]) >= sizeof sa.sun_path) {
        fprintf(stderr, "sockact_unix: path too long\n");
        return 2;
    }
    strcpy(sa.sun_path, argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0) {
        perror("sockact_unix: socket");
        return 1;
    }
    fprintf(stderr, "sockact_unix: passing %s as fd 3\n", argv[1]);
    if (fd != 3) {
        if (dup2(fd, 3) < 0) {
            perror("sockact_unix: dup2");
            return 1;
        }
        close(fd);
    }
    fcntl(3, F_SETFD, 0);
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_PID", pid, 1);
    execvp(argv[2], argv + 2);
    perror("sockact_unix: exec");
    return 127;
}
