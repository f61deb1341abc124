/*
 * edge_static.c — the "attacker" web server of test_edge.sh: serves one
 * HTML file at every path, from 127.0.0.1 on a free port, so a page runs
 * in Chromium with an origin other than awaitd's.
 *
 * usage: edge_static FILE PORTFILE
 * Writes the port it listens on to PORTFILE, then answers one connection
 * at a time (GET of the page, and a 204 for Chromium's /favicon.ico) until
 * it is killed. Not a web server to copy: it reads one request head,
 * answers with Connection: close and never looks at a body.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: edge_static FILE PORTFILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static char page[1 << 20];
    size_t len = fread(page, 1, sizeof page, f);
    fclose(f);
    signal(SIGPIPE, SIG_IGN);

    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) < 0) {
        perror("edge_static: listen");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
    FILE *pf = fopen(tmp, "w");
    if (!pf || fprintf(pf, "%u\n", ntohs(a.sin_port)) < 0 || fclose(pf) != 0 ||
        rename(tmp, argv[2]) < 0) {
        perror(argv[2]);
        return 1;
    }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        char req[8192];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t r = read(c, req + got, sizeof req - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[got] = '\0';
        char head[256];
        if (strncmp(req, "GET /favicon", 12) == 0) {
            snprintf(head, sizeof head, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            write_all(c, head, strlen(head));
        } else {
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/html; "
                     "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
            write_all(c, head, strlen(head));
            write_all(c, page, len);
        }
        close(c);
    }
}
