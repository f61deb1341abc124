/*
 * sockpass.c — socket activation on a chosen IPv4 address, for the
 * black-box tests of who may reach a daemon (test_operator.sh).
 *
 * Like sockact.c, but binds ADDR:0 (0.0.0.0 for every address, 127.0.0.1
 * for loopback) and says so on stderr ("sockpass: passing ADDR:PORT as
 * fd 3"), then execs PROGRAM with LISTEN_FDS=1 and LISTEN_PID = its own pid,
 * as systemd does for a service with a .socket unit.
 *
 *   sockpass ADDR PROGRAM [ARG...]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sockpass ADDR PROGRAM [ARG...]\n");
        return 2;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "sockpass: not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("sockpass: socket");
        return 1;
    }
    fprintf(stderr, "sockpass: passing %s:%u as fd 3\n", argv[1], ntohs(sa.sin_port));
    if (fd != 3) {
        if (dup2(fd, 3) < 0) {
            perror("sockpass: dup2");
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
    perror("sockpass: exec");
    return 127;
}
