/*
 * rawclient.c — raw-socket HTTP clients for the hostile-client cases
 * (test_hostile.sh), for what curl cannot do: many sockets at once,
 * half-closed sockets, partial and mutated requests, bytes trickled.
 * Every mode talks to 127.0.0.1:PORT and prints its findings as
 * "key value" lines on stdout; errors go to stderr with exit status 2.
 *
 *   rawclient hold PORT N idle|partial [shutwr]
 *       opens N connections (partial: each sends half a request; shutwr:
 *       then shuts its writing side), prints "held N", waits for EOF on
 *       stdin, closes them all and prints "closed".
 *   rawclient limit PORT N
 *       opens N idle connections, then one client sends GET /healthz;
 *       prints "early 1" if it was answered within 500 ms (it should not
 *       be, at a limit of N), then closes one of the N and prints
 *       "served_ms T", the time from that close to the answer (-1: none
 *       within 10 s).
 *   rawclient fuzz PORT N SEED [TOKEN]
 *       N times: one connection sends a mutated or cut request, shuts its
 *       writing side, reads what comes for at most 10 ms and closes;
 *       then GET /v1/info on a fresh connection must answer 200. Prints
 *       "info_ok K" and "info_failed F".
 *   rawclient loris PORT N SECONDS
 *       opens N connections that trickle header bytes (one every 100 ms
 *       per connection, round robin) while one keep-alive client asks
 *       GET /healthz every 10 ms for SECONDS; prints "requests R",
 *       "p50_ms", "p99_ms", "max_ms" (each time from the request's own
 *       send to the end of its answer), "loris_open" (trickling
 *       connections still open at the end) and "failed F".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;

static void die(const char *what)
{
    fprintf(stderr, "rawclient: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;                     /* the daemon closed: fine here */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until one whole answer (headers + Content-Length body) is in, the
 * peer closes, or timeout_ms passes. Returns the status, 0 for none. */
static int read_answer(int fd, int timeout_ms)
{
    char buf[65536];
    size_t len = 0;
    double end = now_ms() + timeout_ms;
    for (;;) {
        buf[len] = 0;
        char *h = strstr(buf, "\r\n\r\n");
        if (h) {
            size_t want = 0;
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl && cl < h)
                want = strtoul(cl + 17, NULL, 10);
            if (len >= (size_t)(h + 4 - buf) + want) {
                int st = 0;
                sscanf(buf, "HTTP/1.%*d %d", &st);
                return st;
            }
        }
        int left = (int)(end - now_ms());
        if (left <= 0 || len >= sizeof buf - 1)
            return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, left) <= 0)
            return 0;
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0)
            return 0;
        len += (size_t)r;
    }
}

static const char partial_req[] = "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"kind\":";

static int mode_hold(int n, int partial, int shutwr)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = dial();
        if (partial)
            send_all(fds[i], partial_req, sizeof partial_req - 1);
        if (shutwr)
            shutdown(fds[i], SHUT_WR);
    }
    printf("held %d\n", n);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    printf("closed\n");
    return 0;
}

static const char healthz[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static int mode_limit(int n)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++)
        fds[i] = dial();
    usleep(300 * 1000);                 /* let the daemon take them in */
    int c = dial();
    send_all(c, healthz, sizeof healthz - 1);
    int st = read_answer(c, 500);
    printf("early %d\n", st ? 1 : 0);
    double t0 = now_ms();
    close(fds[0]);
    if (!st)
        st = read_answer(c, 10000);
    printf("served_ms %.1f\n", st ? now_ms() - t0 : -1.0);
    return 0;
}

/* Requests to mutate: valid ones, so that a mutation lands anywhere in a
 * realistic request. */
static const char *const seeds[] = {
    "GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    "Content-Length: 40\r\n\r\n{\"kind\":\"sleep\",\"args\":{\"seconds\":0.01}}",
    "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    "10\r\n{\"kind\":\"sleep\",\r\n1a\r\n\"args\":{\"seconds\":0.01}}\r\n0\r\n\r\n",
    "GET /v1/tasks?limit=5&state=running HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v1/tasks/t_nothing/wait?timeout=0.2 HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /v1/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 25\r\n\r\n{\"ids\":[\"a\"],\"timeout\":0}",
    "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
};

static int mode_fuzz(int n, unsigned seed, const char *token)
{
    srand(seed);
    char info[512];
    snprintf(info, sizeof info, "GET /v1/info HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n",
             token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    int ok = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        char m[4096];
        const char *s = seeds[rand() % (int)(sizeof seeds / sizeof *seeds)];
        size_t len = strlen(s);
        memcpy(m, s, len);
        int k = rand() % 4;
        for (int j = 0; j <= k; j++) {
            size_t at = (size_t)rand() % len;
            switch (rand() % 5) {
            case 0: m[at] = (char)(rand() % 256); break;        /* flip a byte */
            case 1: len = at + 1; break;                        /* cut */
            case 2: m[at] = "\r\n :;,\0"[rand() % 7]; break;    /* syntax */
            case 3:                                             /* repeat a run */
                if (len + 64 < sizeof m) {
                    memmove(m + at + 32, m + at, len - at);
                    memset(m + at, m[at], 32);
                    len += 32;
                }
                break;
            default: break;                                     /* as it is */
            }
        }
        int fd = dial();
        send_all(fd, m, len);
        shutdown(fd, SHUT_WR);
        read_answer(fd, 10);
        close(fd);
        int c = dial();
        send_all(c, info, strlen(info));
        if (read_answer(c, 10000) == 200)
            ok++;
        else
            bad++;
        close(c);
    }
    printf("info_ok %d\ninfo_failed %d\n", ok, bad);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int mode_loris(int n, double seconds)
{
    int *fds = calloc((size_t)n, sizeof *fds);
    int open_n = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = dial();
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        send_all(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n", 33);
        open_n++;
    }
    static const char trickle[] = "X-Slow-Loris: aaaaaaaaaaaaaaaaaaaa\r\n";
    size_t tpos = 0;
    int c = dial();
    size_t cap = 100000, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    int failed = 0;
    double end = now_ms() + seconds * 1000, next_trickle = now_ms();
    int cursor = 0;
    while (now_ms() < end) {
        /* Each loris connection gets a byte every 100 ms: n bytes per
         * 100 ms, spread over the round. */
        double t = now_ms();
        while (next_trickle <= t) {
            int tries = 0;
            while (fds[cursor] < 0 && tries++ < n)
                cursor = (cursor + 1) % n;
            if (fds[cursor] >= 0 &&
                send(fds[cursor], trickle + tpos, 1, MSG_NOSIGNAL) < 0 &&
                errno != EAGAIN) {
                close(fds[cursor]);
                fds[cursor] = -1;
                open_n--;
            }
            cursor = (cursor + 1) % n;
            if (cursor == 0)
                tpos = (tpos + 1) % (sizeof trickle - 1);
            next_trickle += 100.0 / n;
        }
        double t0 = now_ms();
        send_all(c, healthz, sizeof healthz - 1);
        if (read_answer(c, 5000) == 200) {
            if (nlat < cap)
                lat[nlat++] = now_ms() - t0;
        } else {
            failed++;
            close(c);
            c = dial();
        }
        usleep(10 * 1000);
    }
    qsort(lat, nlat, sizeof *lat, cmp_d);
    printf("requests %zu\n", nlat);
    printf("p50_ms %.2f\n", nlat ? lat[nlat / 2] : -1);
    printf("p99_ms %.2f\n", nlat ? lat[(nlat * 99) / 100] : -1);
    printf("max_ms %.2f\n", nlat ? lat[nlat - 1] : -1);
    printf("loris_open %d\nfailed %d\n", open_n, failed);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 4) {
        fprintf(stderr, "usage: rawclient hold|limit|fuzz|loris PORT N ...\n");
        return 2;
    }
    port = atoi(argv[2]);
    int n = atoi(argv[3]);
    if (strcmp(argv[1], "hold") == 0)
        return mode_hold(n, argc > 4 && strcmp(argv[4], "partial") == 0,
                         argc > 5 && strcmp(argv[5], "shutwr") == 0);
    if (strcmp(argv[1], "limit") == 0)
        return mode_limit(n);
    if (strcmp(argv[1], "fuzz") == 0 && argc > 4)
        return mode_fuzz(n, (unsigned)strtoul(argv[4], NULL, 10), argc > 5 ? argv[5] : NULL);
    if (strcmp(argv[1], "loris") == 0 && argc > 4)
        return mode_loris(n, atof(argv[4]));
    fprintf(stderr, "rawclient: unknown mode or missing argument\n");
    return 2;
}
