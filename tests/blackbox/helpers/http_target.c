/*
 * http_target.c — a small HTTP/1.1 server for the black-box tests of the
 * http kind: the real server on loopback that awaitd's requests reach.
 *
 * Listens on 127.0.0.1 (port 0 unless given), prints the port on stdout
 * and then writes one line per event to LOG, flushed at once:
 *   open N          a connection was accepted (N: open now)
 *   slow            a request for /slow arrived (it is never answered)
 *   closed MS       a connection ended (MS: wall-clock ms since the epoch)
 * and keeps the number of connections open now and the most ever open at
 * once (idle keep-alive connections count: they are open) for /stats.
 *
 * Paths:
 *   /echo        200, body "METHOD|X-Test header|request body", header X-Reply: yes
 *   /status/N    status N, body "status N"
 *   /slow        never answers
 *   /delay       200 after 200 ms (so that transfers overlap)
 *   /delay/MS    200 after MS ms (at most 60000)
 *   /big         200 with 100000 bytes of 'x'
 *   /latin1      200 with the bytes "caf\xe9" (not UTF-8)
 *   /redirect    302 to /echo
 *   /stats       200, body "open=N max=M" (N counts the connection asking)
 *
 *   http_target LOG [PORT]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 4096

struct conn {
    int    fd;
    char   in[65536];
    size_t inlen;
    long long due;          /* ms when a delayed answer goes out; 0 none */
    int    slow;
};

static struct conn conns[MAXC];
static int nopen, maxopen;
static FILE *logfp;

static long long now_ms(int realtime)
{
    struct timespec ts;
    clock_gettime(realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void answer(int fd, int status, const char *extra, const char *body, size_t blen)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n",
                     status, blen, extra ? extra : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, blen);
}

static void close_conn(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
    nopen--;
    fprintf(logfp, "closed %lld\n", now_ms(1));
}

/* Handles every complete request in c->in. */
static void serve(struct conn *c)
{
    for (;;) {
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end || c->slow || c->due)
            return;
        size_t hlen = (size_t)(end - c->in) + 4, blen = 0;
        char *cl = memmem(c->in, hlen, "\r\nContent-Length:", 17);
        if (!cl)
            cl = memmem(c->in, hlen, "\r\ncontent-length:", 17);
        if (cl)
            blen = strtoul(cl + 17, NULL, 10);
        if (c->inlen < hlen + blen)
            return;
        char method[16] = "", path[256] = "";
        sscanf(c->in, "%15s %255s", method, path);
        char xtest[256] = "";
        char *xt = memmem(c->in, hlen, "\r\nX-Test: ", 10);
        if (xt)
            sscanf(xt + 10, "%255[^\r]", xtest);
        if (strcmp(path, "/echo") == 0) {
            char body[70000];
            int n = snprintf(body, sizeof body, "%s|%s|%.*s", method, xtest,
                             (int)blen, c->in + hlen);
            answer(c->fd, 200, "X-Reply: yes\r\nX-Multi: a\r\nX-Multi: b\r\n", body, (size_t)n);
        } else if (strncmp(path, "/status/", 8) == 0) {
            char body[64];
            int st = atoi(path + 8);
            int n = snprintf(body, sizeof body, "status %d", st);
            answer(c->fd, st, NULL, body, (size_t)n);
        } else if (strcmp(path, "/slow") == 0) {
            c->slow = 1;
            fprintf(logfp, "slow\n");
        } else if (strcmp(path, "/delay") == 0) {
            c->due = now_ms(0) + 200;
        } else if (strncmp(path, "/delay/", 7) == 0) {
            long ms = strtol(path + 7, NULL, 10);
            c->due = now_ms(0) + (ms < 0 ? 0 : ms > 60000 ? 60000 : ms);
        } else if (strcmp(path, "/big") == 0) {
            static char big[100000];
            memset(big, 'x', sizeof big);
            answer(c->fd, 200, NULL, big, sizeof big);
        } else if (strcmp(path, "/latin1") == 0) {
            answer(c->fd, 200, NULL, "caf\xe9", 4);
        } else if (strcmp(path, "/redirect") == 0) {
            answer(c->fd, 302, "Location: /echo\r\n", "", 0);
        } else if (strcmp(path, "/stats") == 0) {
            char body[64];
            int n = snprintf(body, sizeof body, "open=%d max=%d", nopen, maxopen);
            answer(c->fd, 200, NULL, body, (size_t)n);
        } else {
            answer(c->fd, 404, NULL, "no", 2);
        }
        memmove(c->in, c->in + hlen + blen, c->inlen - hlen - blen);
        c->inlen -= hlen + blen;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: http_target LOG [PORT]\n");
        return 2;
    }
    logfp = fopen(argv[1], "a");
    if (!logfp)
        return 1;
    setvbuf(logfp, NULL, _IOLBF, 0);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons(argc > 2 ? (unsigned short)atoi(argv[2]) : 0) };
    socklen_t sl = sizeof sa;
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
        perror("http_target");
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (int i = 0; i < MAXC; i++)
        conns[i].fd = -1;
    static struct pollfd pf[MAXC + 1];
    static int idx[MAXC + 1];
    for (;;) {
        int n = 0, timeout = -1;
        long long t = now_ms(0);
        pf[n].fd = ls;
        pf[n++].events = POLLIN;
        for (int i = 0; i < MAXC; i++) {
            if (conns[i].fd < 0)
                continue;
            if (conns[i].due) {
                int left = conns[i].due > t ? (int)(conns[i].due - t) : 0;
                if (timeout < 0 || left < timeout)
                    timeout = left;
            }
            idx[n] = i;
            pf[n].fd = conns[i].fd;
            pf[n++].events = POLLIN;
        }
        poll(pf, (nfds_t)n, timeout);
        t = now_ms(0);
        for (int k = 1; k < n; k++) {
            struct conn *c = &conns[idx[k]];
            if (c->fd < 0)
                continue;
            if (pf[k].revents) {
                ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
                if (r <= 0) {
                    close_conn(c);
                    continue;
                }
                c->inlen += (size_t)r;
                serve(c);
            }
            if (c->fd >= 0 && c->due && c->due <= t) {
                c->due = 0;
                answer(c->fd, 200, NULL, "delayed", 7);
                char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
                size_t hlen = end ? (size_t)(end - c->in) + 4 : c->inlen;
                memmove(c->in, c->in + hlen, c->inlen - hlen);
                c->inlen -= hlen;
                serve(c);
            }
        }
        if (pf[0].revents & POLLIN) {
            int fd = accept(ls, NULL, NULL);
            int slot = -1;
            for (int i = 0; fd >= 0 && i < MAXC && slot < 0; i++)
                if (conns[i].fd < 0)
                    slot = i;
            if (slot < 0) {
                if (fd >= 0)
                    close(fd);
                continue;
            }
            conns[slot].fd = fd;
            conns[slot].inlen = 0;
            conns[slot].due = 0;
            conns[slot].slow = 0;
            nopen++;
            if (nopen > maxopen)
                maxopen = nopen;
            fprintf(logfp, "open %d\n", nopen);
        }
    }
}
