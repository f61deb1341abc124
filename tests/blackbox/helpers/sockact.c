/*
 * sockact.c — socket activation without systemd, for the black-box tests.
 *
 * Binds a TCP socket on 127.0.0.1:0, listens, prints the chosen port to
 * stderr ("sockact: passing 127.0.0.1:PORT as fd 3"), moves the socket to
 * fd 3 and execs the given command with LISTEN_FDS=1 and LISTEN_PID set to
 * its own pid, which exec keeps: exactly what systemd does for a service
 * with a .socket unit (sd_listen_fds(3)). With --wrong-pid, LISTEN_PID
 * names another process, and the daemon must then ignore fd 3.
 *
 *   sockact [--wrong-pid] PROGRAM [ARG...]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int i = 1, wrong_pid = 0;
    if (i < argc && strcmp(argv[i], "--wrong-pid") == 0) {
        wrong_pid = 1;
        i++;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: sockact [--wrong-pid] PROGRAM [ARG...]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("sockact: socket");
        return 1;
    }
    fprintf(stderr, "sockact: passing 127.0.0.1:%u as fd 3\n", ntohs(sa.sin_port));
    if (fd != 3) {
        if (dup2(fd, 3) < 0) {
            perror("sockact: dup2");
            return 1;
        }
        close(fd);
    }
    fcntl(3, F_SETFD, 0);       /* dup2 clears FD_CLOEXEC; be explicit */
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", wrong_pid ? 1L : (long)getpid());
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_PID", pid, 1);
    execvp(argv[i], argv + i);
    perror("sockact: exec");
    return 127;
}
