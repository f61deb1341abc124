/*
 * flood.c — creates many tasks fast, for the black-box cases that need a
 * daemon holding hundreds of thousands of them: `flood PORT COUNT BODY
 * [TOKEN]` POSTs BODY to /v1/tasks COUNT times over 8 kept-alive
 * connections (one thread each, one request at a time per connection),
 * and exits 0 only when every answer was 201. curl's per-request cost
 * would make 200,000 creates take a minute.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define THREADS 8

static int port;
static long per_thread, extra;
static char request[8192];
static size_t request_len;

static int connect_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        exit(2);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Reads one answer; returns its status, or -1 when the connection ended. */
static int read_answer(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t)(end - buf) + 4;
            long clen = 0;
            for (char *p = buf; p < end; p = strstr(p, "\r\n") + 2)
                if (strncasecmp(p, "Content-Length:", 15) == 0)
                    clen = strtol(p + 15, NULL, 10);
            while (*have < head + (size_t)clen) {
                if (*have == cap)
                    return -1;
                ssize_t n = read(fd, buf + *have, cap - *have);
                if (n <= 0)
                    return -1;
                *have += (size_t)n;
            }
            int status = atoi(buf + 9);
            memmove(buf, buf + head + clen, *have - head - (size_t)clen);
            *have -= head + (size_t)clen;
            return status;
        }
        if (*have == cap)
            return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
}

static void *run(void *arg)
{
    long n = per_thread + ((long)(intptr_t)arg < extra ? 1 : 0);
    static __thread char buf[65536];
    size_t have = 0;
    int fd = connect_local();
    for (long i = 0; i < n; i++) {
        if (write(fd, request, request_len) != (ssize_t)request_len) {
            perror("write");
            exit(2);
        }
        int st = read_answer(fd, buf, sizeof buf, &have);
        if (st != 201) {
            fprintf(stderr, "flood: answer %d to create %ld\n", st, i);
            exit(1);
        }
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: flood PORT COUNT BODY [TOKEN]\n");
        return 2;
    }
    port = atoi(argv[1]);
    long count = atol(argv[2]);
    per_thread = count / THREADS;
    extra = count % THREADS;
    char auth[512] = "";
    if (argc > 4)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", argv[4]);
    int len = snprintf(request, sizeof request,
                       "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       auth, strlen(argv[3]), argv[3]);
    if (len <= 0 || (size_t)len >= sizeof request) {
        fprintf(stderr, "flood: body too long\n");
        return 2;
    }
    request_len = (size_t)len;
    pthread_t th[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, run, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    return 0;
}
