/*
 * unix_client.c — one HTTP request over a Unix socket from a client whose
 * own socket is bound to a path, for the black-box tests. curl's clients
 * are unnamed; a bound client makes accept() return a sockaddr_un longer
 * than any IP address (up to 110 bytes), which the daemon must take.
 *
 * Binds to CLIENT_PATH (removed first and after), connects to SOCKET_PATH,
 * sends "GET PATH HTTP/1.1" with Host: localhost and Connection: close, and
 * copies the answer to stdout.
 *
 *   unix_client CLIENT_PATH SOCKET_PATH PATH
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: unix_client CLIENT_PATH SOCKET_PATH PATH\n");
        return 2;
    }
    struct sockaddr_un me = { .sun_family = AF_UNIX }, srv = { .sun_family = AF_UNIX };
    if (strlen(argv[1]) >= sizeof me.sun_path || strlen(argv[2]) >= sizeof srv.sun_path) {
        fprintf(stderr, "unix_client: path too long\n");
        return 2;
    }
    strcpy(me.sun_path, argv[1]);
    strcpy(srv.sun_path, argv[2]);
    unlink(argv[1]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
        connect(fd, (struct sockaddr *)&srv, sizeof srv) < 0) {
        perror("unix_client");
        unlink(argv[1]);
        return 1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n"
                     "Connection: close\r\n\r\n", argv[3]);
    if (write(fd, req, (size_t)n) != n) {
        perror("unix_client: write");
        unlink(argv[1]);
        return 1;
    }
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)got, stdout);
    close(fd);
    unlink(argv[1]);
    return got < 0 ? 1 : 0;
}
