/*
 * waiters.c — the HTTP load client of `make bench` (bench/run builds it).
 *
 * It exists because neither curl nor wrk can hold ten thousand requests open
 * at once and say when each one was answered. It has two modes, both a single
 * epoll loop over raw non-blocking sockets speaking just enough HTTP/1.1 to
 * talk to awaitd (responses must carry Content-Length; no chunked bodies):
 *
 *   wait:   open N connections, each sending one GET PATH (a long-poll such as
 *           /v1/tasks/ID/wait?timeout=120), and record the CLOCK_REALTIME time
 *           at which each full answer arrived. Prints, as key=value lines, how
 *           many were answered, how many answers said "done":true, and the
 *           first / median / 99th-percentile / last answer time relative to
 *           the task's "finished_at" (RFC 3339, milliseconds, UTC).
 *   create: send exactly N POST PATH requests with BODY, pipelined over a few
 *           keep-alive connections, and count the 201 answers. It never sends
 *           more than N requests and gives up after a time limit.
 *
 * It is a benchmark tool, not a general HTTP client: no redirects, no TLS,
 * no chunked encoding, loopback in mind.
 */
#define _GNU_SOURCE /* asprintf, strcasestr, timegm */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int     fd;
    bool    connected;
    char   *wbuf;        /* requests not yet written (create mode: owned) */
    size_t  wlen, woff;
    char   *rbuf;        /* bytes read, not yet parsed; NUL-terminated */
    size_t  rlen, rcap;
    long    sent, answered; /* create mode: requests written / answered */
    double  answered_at; /* wait mode: CLOCK_REALTIME seconds, 0 = not yet */
};

static const char *host = "127.0.0.1";
static int          port;
static const char  *path;
static const char  *body;
static long         total = 10000;
static int          max_connecting = 200;
static int          nconns = 16;
static int          depth = 32;
static double       time_limit = 150;

static int          ep;
static struct conn *conns;
static char        *request;     /* the one request every connection sends */
static size_t       request_len;

/* Counters of both modes. */
static long opened, connecting, answered, done_true, status_ok, status_other, errors;
static long requested;           /* create mode: requests handed to a socket */
static char finished_at[64];

static double now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

/* "2026-11-24T22:58:36.139Z" -> seconds since the epoch; < 0 if malformed. */
static double parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
}

static void conn_open(struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    opened++;
    connecting++;
}

static void conn_want(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

/* Create mode: append requests until DEPTH are outstanding or N were sent. */
static void conn_fill(struct conn *c)
{
    while (c->sent - c->answered < depth && requested < total) {
        if (c->woff > 0 && c->woff == c->wlen)
            c->woff = c->wlen = 0;
        c->wbuf = realloc(c->wbuf, c->wlen + request_len);
        if (!c->wbuf)
            die("realloc");
        memcpy(c->wbuf + c->wlen, request, request_len);
        c->wlen += request_len;
        c->sent++;
        requested++;
    }
}

/* Writes what is pending; returns -1 when the connection broke. */
static int conn_flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->woff += (size_t)n;
    }
    conn_want(c, c->woff < c->wlen ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

/*
 * Parses as many complete responses as c->rbuf holds. Returns the number
 * parsed, or -1 on a response this client does not understand.
 */
static int parse_responses(struct conn *c, bool wait_mode, double t)
{
    int parsed = 0;
    size_t off = 0;
    for (;;) {
        char *start = c->rbuf + off;
        char *eoh = strstr(start, "\r\n\r\n");
        if (!eoh)
            break;
        int status = 0;
        if (sscanf(start, "HTTP/1.%*d %d", &status) != 1)
            return -1;
        *eoh = '\0';
        char *cl = strcasestr(start, "\r\ncontent-length:");
        *eoh = '\r';
        if (!cl)
            return -1;
        size_t clen = strtoul(cl + 17, NULL, 10);
        size_t hlen = (size_t)(eoh + 4 - start);
        if (c->rlen - off < hlen + clen)
            break;
        char *b = start + hlen;
        char saved = b[clen];
        b[clen] = '\0';
        if (status == 200 || status == 201)
            status_ok++;
        else
            status_other++;
        if (wait_mode) {
            c->answered_at = t;
            if (strstr(b, "\"done\":true"))
                done_true++;
            const char *f = strstr(b, "\"finished_at\":\"");
            if (f && !finished_at[0])
                sscanf(f + 15, "%63[^\"]", finished_at);
        }
        b[clen] = saved;
        off += hlen + clen;
        parsed++;
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off + 1);
        c->rlen -= off;
    }
    return parsed;
}

/* Reads what is there; returns responses completed, or -1 when it broke. */
static int conn_read(struct conn *c, bool wait_mode)
{
    int got = 0;
    for (;;) {
        if (c->rcap - c->rlen < 1025) {
            c->rcap = c->rcap ? c->rcap * 2 : 4096;
            c->rbuf = realloc(c->rbuf, c->rcap);
            if (!c->rbuf)
                die("realloc");
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1);
        if (n < 0) {
            if (errno == EAGAIN)
                return got;
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return got > 0 && wait_mode ? got : -1;
        c->rlen += (size_t)n;
        c->rbuf[c->rlen] = '\0';
        int k = parse_responses(c, wait_mode, now_real());
        if (k < 0)
            return -1;
        got += k;
        if (wait_mode && got > 0)
            return got;
    }
}

/* CPU seconds this process has used, user and system. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int run_wait(void)
{
    request_len = (size_t)asprintf(&request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    conns = calloc((size_t)total, sizeof *conns);
    if (!conns)
        die("calloc");
    for (long i = 0; i < total; i++)
        conns[i].fd = -1;

    struct epoll_event evs[256];
    double deadline = now_mono() + time_limit;
    long next = 0, written = 0;
    bool said_all = false;
    double cpu_first = 0, cpu_last = 0; /* our CPU time at the first and last answer */
    while (answered + errors < total && now_mono() < deadline) {
        while (next < total && connecting < max_connecting)
            conn_open(&conns[next++]);
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c->connected) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                if (err) {
                    errno = err;
                    errors++;
                    conn_close(c);
                    continue;
                }
                c->connected = true;
                /* One small request: a short write does not happen here. */
                if (write(c->fd, request, request_len) != (ssize_t)request_len) {
                    errors++;
                    conn_close(c);
                    continue;
                }
                written++;
                conn_want(c, EPOLLIN | EPOLLONESHOT);
                continue;
            }
            /*
             * EPOLLONESHOT and no close() here: once answered, a socket is
             * left alone until the process exits, so the burst of answers
             * costs this client one read per answer and its timestamps
             * measure the daemon, not our own close() calls.
             */
            int k = conn_read(c, true);
            if (k > 0) {
                if (answered++ == 0)
                    cpu_first = cpu_seconds();
                free(c->rbuf);
                c->rbuf = NULL;
                c->rlen = c->rcap = 0;
            } else if (k < 0) {
                errors++;
                conn_close(c);
            } else
                conn_want(c, EPOLLIN | EPOLLONESHOT);
        }
        if (!said_all && written == total) {
            fprintf(stderr, "waiters: %ld requests sent\n", written);
            said_all = true;
        }
    }

    /* The loop ends at once after the last answer: no getrusage per answer. */
    cpu_last = cpu_seconds();
    printf("sent=%ld answered=%ld ok=%ld other_status=%ld errors=%ld done_true=%ld\n",
           written, answered, status_ok, status_other, errors, done_true);
    printf("finished_at=%s\n", finished_at[0] ? finished_at : "none");
    double fin = finished_at[0] ? parse_rfc3339(finished_at) : -1;
    double *t = malloc(sizeof *t * (size_t)(answered ? answered : 1));
    long k = 0;
    for (long i = 0; i < total; i++)
        if (conns[i].answered_at > 0)
            t[k++] = conns[i].answered_at;
    qsort(t, (size_t)k, sizeof *t, cmp_double);
    if (k > 0 && fin > 0)
        printf("first_ms=%.1f p50_ms=%.1f p99_ms=%.1f last_ms=%.1f\n",
               (t[0] - fin) * 1e3, (t[k / 2] - fin) * 1e3,
               (t[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1] - fin) * 1e3,
               (t[k - 1] - fin) * 1e3);
    /*
     * If this is close to last - first, the client, not the daemon, was the
     * bottleneck while the answers arrived.
     */
    if (k > 0)
        printf("client_cpu_ms=%.1f answer_span_ms=%.1f\n", (cpu_last - cpu_first) * 1e3,
               (t[k - 1] - t[0]) * 1e3);
    return 0;
}

static int run_create(void)
{
    request_len = (size_t)asprintf(&request,
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\n\r\n%s", path, strlen(body), body);
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns)
        die("calloc");
    for (int i = 0; i < nconns; i++)
        conn_open(&conns[i]);

    struct epoll_event evs[64];
    double t0 = now_mono(), deadline = t0 + time_limit;
    int live = nconns;
    while (answered < total && live > 0 && now_mono() < deadline) {
        int n = epoll_wait(ep, evs, 64, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (!c->connected) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                c->connected = true;
                if (err) {
                    errors++;
                    conn_close(c);
                    live--;
                    continue;
                }
                conn_fill(c);
                if (conn_flush(c) < 0) {
                    errors++;
                    conn_close(c);
                    live--;
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int k = conn_read(c, false);
                if (k < 0) {
                    errors++;
                    conn_close(c);
                    live--;
                    continue;
                }
                c->answered += k;
                answered += k;
            }
            conn_fill(c);
            if (conn_flush(c) < 0) {
                errors++;
                conn_close(c);
                live--;
            }
        }
    }
    double el = now_mono() - t0;
    printf("sent=%ld answered=%ld created=%ld other_status=%ld errors=%ld "
           "seconds=%.2f rate=%.0f\n", requested, answered, status_ok, status_other,
           errors, el, el > 0 ? answered / el : 0.0);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
        "usage: waiters [-n N] [-m MAX_CONNECTING] [-T SECONDS] PORT PATH\n"
        "       waiters -P BODY [-n N] [-C CONNS] [-d DEPTH] [-T SECONDS] PORT PATH\n"
        "  default: N connections each GET PATH once (a long-poll), report answer times\n"
        "  -P BODY: POST BODY to PATH exactly N times, pipelined, and count the 201s\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "n:m:C:d:T:P:h")) != -1) {
        switch (opt) {
        case 'n': total = atol(optarg); break;
        case 'm': max_connecting = atoi(optarg); break;
        case 'C': nconns = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 'T': time_limit = atof(optarg); break;
        case 'P': body = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 2 || total < 1 || max_connecting < 1 || nconns < 1 || depth < 1)
        usage();
    port = atoi(argv[optind]);
    path = argv[optind + 1];
    raise_nofile();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    return body ? run_create() : run_wait();
}
