/*
 * notify_recv.c — a stand-in for systemd's notification socket, for the
 * black-box tests.
 *
 * Binds an AF_UNIX datagram socket at PATH, prints "bound" once it can
 * receive, then prints every datagram it gets on one line (its newlines
 * turned into spaces: "READY=1 STATUS=..."), flushed at once, until it is
 * killed. Point a daemon's NOTIFY_SOCKET at PATH to see what it tells
 * systemd.
 *
 *   notify_recv PATH
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: notify_recv PATH (shorter than 108 bytes)\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, argv[1]);
    unlink(argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("notify_recv: bind");
        return 1;
    }
    printf("bound\n");
    fflush(stdout);
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        buf[n] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
}
