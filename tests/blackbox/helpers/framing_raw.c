/*
 * framing_raw.c — sends raw bytes to a TCP port and prints what comes back,
 * for the framing tests (tests/blackbox/test_framing.sh), which need bytes
 * curl will not send: two Content-Length headers, a NUL in a request line,
 * a chunk extension of 9,000 bytes, two requests in one write.
 *
 *   framing_raw PORT TIMEOUT_MS [-s] [-c] < REQUEST_BYTES > ANSWER_BYTES
 *
 * Connects to 127.0.0.1:PORT, writes all of stdin, then (with -s) shuts
 * down its sending side, and reads until the server closes the connection
 * or TIMEOUT_MS pass without it. With -c it closes right after writing
 * (the client that leaves). Exit status: 0 the server closed the
 * connection (read returned EOF or a reset), 3 the connection was still
 * open at the deadline, 2 a usage or connect error.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: framing_raw PORT TIMEOUT_MS [-s] [-c]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long long timeout = atoll(argv[2]);
    int shut = 0, leave = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0)
            shut = 1;
        else if (strcmp(argv[i], "-c") == 0)
            leave = 1;
    }
    static char in[1 << 20];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof in && (k = read(0, in + n, sizeof in - n)) > 0)
        n += (size_t)k;

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("connect");
        return 2;
    }
    for (size_t off = 0; off < n;) {
        k = write(fd, in + off, n - off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;              /* the server may close early: read what it said */
        }
        off += (size_t)k;
    }
    if (leave) {
        close(fd);
        return 0;
    }
    if (shut)
        shutdown(fd, SHUT_WR);
    long long end = now_ms() + timeout;
    char buf[65536];
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0)
            return 3;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 3;
        k = read(fd, buf, sizeof buf);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return 0;
        if (k < 0)
            return 2;
        fwrite(buf, 1, (size_t)k, stdout);
        fflush(stdout);
    }
}
