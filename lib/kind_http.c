/*
 * kind_http.c — the `http` kind (see kind_http.h): one request per task,
 * made by a libcurl multi handle that the engine's libevent base drives.
 *
 * The loop, as curl's hiperfifo example does it: libcurl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); each socket gets one persistent event, the
 * timer is one evtimer, and both end in curl_multi_socket_action. No thread
 * of ours, no poll loop. Name resolution runs in libcurl's own resolver
 * threads (checked at init: aw_http_check_libcurl), so it never blocks
 * the loop. The multi handle, its timer and the transfer count belong to
 * the kind's per-engine state.
 *
 * A task's life:
 *   prepare  checks args (shape, limits, scheme, host on [http] allow);
 *            nothing is sent.
 *   start    checks the host again against the configuration of now (a
 *            reload may have narrowed it), builds the easy handle and adds
 *            it to the multi.
 *   connect  CURLOPT_OPENSOCKETFUNCTION sees the address before the
 *            socket exists: a non-public address is refused unless it is
 *            explicitly allowed (SSRF through DNS).
 *   done     the status, headers and body become the result; a redirect
 *            asked for is followed here, by us (see follow), so that every
 *            hop passes the allow-list like the first.
 *   cancel   (cancel or the task's timeout) removes the easy handle at
 *            once: libcurl closes a connection whose transfer did not
 *            complete, so the server sees it go.
 *
 * The transfer cap ([http] max_transfers) is the engine's dispatch asking
 * has_slot: beyond it tasks stay pending in their queue's FIFO (kind.h).
 *
 * Not here: configuration parsing and logging (daemon/), webhooks.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "engine.h"
#include "errors.h"
#include "kind_http.h"
#include "utf8.h"

#define MAX_METHOD       16
#define MAX_HEADER_KEPT  (64 * 1024)    /* response header bytes kept */
#define MAX_HEADERS_KEPT 200            /* response header fields kept */

/* ---- configuration and per-engine state ---- */

struct allow_entry {
    char *host;                 /* lower case; "*.x" or "*" patterns kept as written */
    long  port;                 /* -1: any */
};

struct http_state {
    aw_engine_t       *e;
    struct event_base *base;
    CURLM             *multi;
    struct event      *timer;
    bool               curl_ok;     /* aw_http_check_libcurl passed */
    bool               global;      /* curl_global_init succeeded */
    uint32_t           in_flight;
    struct allow_entry *allow;
    size_t             nallow;
    uint32_t           max_transfers;
    size_t             max_response;
    uint32_t           max_redirects;
    size_t             max_request_body;
    uint32_t           max_request_headers;
    int64_t            connect_timeout_ms;
    bool               insecure;
};

struct header {
    char   *name;               /* lower case */
    aw_buf_t value;             /* repeated fields joined with ", " */
};

struct xfer {
    aw_engine_t        *e;
    aw_task_t          *t;
    struct http_state  *st;
    CURL               *easy;
    struct curl_slist  *hdrs;
    bool                in_multi;
    bool                counted;    /* holds one of in_flight */
    bool                follow;
    bool                fail_on_status;
    uint32_t            redirects;
    size_t              max_body;
    aw_buf_t            body;
    bool                truncated;
    struct header      *headers;
    size_t              nheaders;
    size_t              header_bytes;
    char                refused[160];   /* why opensocket said no */
    char                errbuf[CURL_ERROR_SIZE];
};

static void free_allow(struct http_state *st)
{
    for (size_t i = 0; i < st->nallow; i++)
        free(st->allow[i].host);
    free(st->allow);
    st->allow = NULL;
    st->nallow = 0;
}

int aw_http_check_libcurl(char *err, size_t errlen)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    /* Without an asynchronous resolver libcurl resolves names with a
     * blocking getaddrinfo inside curl_multi_socket_action: one slow DNS
     * answer would stop every task, wait and request of the daemon. Debian's
     * libcurl has the threaded resolver; a build without it is refused. */
    if (!(v->features & CURL_VERSION_ASYNCHDNS)) {
        snprintf(err, errlen, "libcurl %s resolves names by blocking (no AsynchDNS): "
                 "the http kind needs a libcurl built with the threaded resolver or c-ares",
                 v->version);
        return AW_EINVAL;
    }
    bool http = false, https = false;
    for (const char *const *p = v->protocols; p && *p; p++) {
        http |= strcmp(*p, "http") == 0;
        https |= strcmp(*p, "https") == 0;
    }
    if (!http || !https) {
        snprintf(err, errlen, "libcurl %s lacks http or https", v->version);
        return AW_EINVAL;
    }
    return 0;
}

static void on_event(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static int  sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
static int  timer_cb(CURLM *m, long timeout_ms, void *userp);

static void http_fini(void *state)
{
    struct http_state *st = state;
    if (st->multi)
        curl_multi_cleanup(st->multi);
    if (st->timer)
        event_free(st->timer);
    free_allow(st);
    if (st->global)
        curl_global_cleanup();
    free(st);
}

static int http_init(aw_engine_t *e, void **state)
{
    struct http_state *st = calloc(1, sizeof *st);
    char err[256];
    if (!st)
        return -ENOMEM;
    st->e = e;
    st->base = aw_engine_base(e);
    st->max_transfers = AW_HTTP_DEFAULT_MAX_TRANSFERS;
    st->max_response = AW_HTTP_DEFAULT_MAX_RESPONSE;
    st->max_redirects = AW_HTTP_DEFAULT_MAX_REDIRECTS;
    st->max_request_body = AW_HTTP_DEFAULT_MAX_REQUEST_BODY;
    st->max_request_headers = AW_HTTP_DEFAULT_MAX_HEADERS;
    st->connect_timeout_ms = AW_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    /* Reference-counted by libcurl: each engine takes and gives back its own. */
    st->global = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    st->curl_ok = st->global && aw_http_check_libcurl(err, sizeof err) == 0;
    if (!(st->timer = evtimer_new(st->base, on_timer, st)) ||
        !(st->multi = curl_multi_init())) {
        http_fini(st);
        return -ENOMEM;
    }
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
    /* The cap on connections as well as on transfers: idle connections in
     * libcurl's cache are connections at the server too. */
    curl_multi_setopt(st->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)st->max_transfers);
    curl_multi_setopt(st->multi, CURLMOPT_MAXCONNECTS, (long)st->max_transfers);
    *state = st;
    return 0;
}

/* Splits an allow entry into host and port. Returns 0 or AW_EINVAL. */
static int parse_entry(const char *s, struct allow_entry *out)
{
    const char *host = s, *colon = NULL;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return AW_EINVAL;
        hlen = (size_t)(close - s) + 1;
        if (close[1] == ':')
            colon = close + 1;
        else if (close[1])
            return AW_EINVAL;
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return AW_EINVAL;           /* bare IPv6: write it as [addr] */
        hlen = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (hlen == 0 || hlen > 255)
        return AW_EINVAL;
    out->port = -1;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p < 1 || p > 65535)
            return AW_EINVAL;
        out->port = p;
    }
    /* "*" alone, or "*." followed by a name; no other wildcard. */
    const char *star = memchr(host, '*', hlen);
    if (star && !(hlen == 1 || (star == host && host[1] == '.' && hlen > 2 &&
                                !memchr(host + 1, '*', hlen - 1))))
        return AW_EINVAL;
    if (!(out->host = strndup(host, hlen)))
        return -ENOMEM;
    for (char *p = out->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

static int http_configure(void *state, const void *config, char *err, size_t errlen)
{
    struct http_state *st = state;
    const aw_http_config_t *c = config;
    if (c->max_transfers < 1) {
        snprintf(err, errlen, "http max_transfers must be at least 1");
        return AW_EINVAL;
    }
    if (c->connect_timeout_ms <= 0) {
        snprintf(err, errlen, "http connect timeout must be > 0");
        return AW_EINVAL;
    }
    struct allow_entry *allow = c->nallow ? calloc(c->nallow, sizeof *allow) : NULL;
    if (c->nallow && !allow)
        return -ENOMEM;
    for (size_t i = 0; i < c->nallow; i++) {
        int rc = parse_entry(c->allow[i], &allow[i]);
        if (rc < 0) {
            for (size_t j = 0; j < i; j++)
                free(allow[j].host);
            free(allow);
            if (rc == AW_EINVAL)
                snprintf(err, errlen, "http allow entry '%.200s' must be host, host:port, "
                         "[ipv6]:port, *.domain[:port] or *", c->allow[i]);
            return rc;
        }
    }
    free_allow(st);
    st->allow = allow;
    st->nallow = c->nallow;
    st->max_transfers = c->max_transfers;
    st->max_response = c->max_response_bytes;
    st->max_redirects = c->max_redirects;
    st->max_request_body = c->max_request_body;
    st->max_request_headers = c->max_request_headers;
    st->connect_timeout_ms = c->connect_timeout_ms;
    st->insecure = c->insecure;
    curl_multi_setopt(st->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)st->max_transfers);
    curl_multi_setopt(st->multi, CURLMOPT_MAXCONNECTS, (long)st->max_transfers);
    return 0;
}

static bool http_has_slot(const void *state)
{
    const struct http_state *st = state;
    return !st || st->in_flight < st->max_transfers;
}

uint32_t aw_http_in_flight(const aw_engine_t *e)
{
    const struct http_state *st = aw_engine_kind_state(e, &aw_kind_http);
    return st ? st->in_flight : 0;
}

/* ---- the allow-list ---- */

/* host is lower case, IPv6 in brackets (as curl_url gives it). */
static bool host_allowed(const struct http_state *st, const char *host, long port)
{
    size_t hl = strlen(host);
    for (size_t i = 0; i < st->nallow; i++) {
        const struct allow_entry *a = &st->allow[i];
        if (a->port != -1 && a->port != port)
            continue;
        if (strcmp(a->host, "*") == 0 || strcmp(a->host, host) == 0)
            return true;
        /* "*.example.com" matches "a.example.com" and "a.b.example.com". */
        size_t sl = strlen(a->host) - 1;        /* ".example.com" */
        if (a->host[0] == '*' && hl > sl && strcmp(host + hl - sl, a->host + 1) == 0)
            return true;
    }
    return false;
}

/* An address the allow-list must name itself before we connect to it:
 * the host's own and its networks' services, and what is no unicast
 * destination at all. */
static bool internal_v4(uint32_t a)
{
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
           (a >> 22) == (100u << 2 | 1) ||         /* 100.64/10, carrier NAT */
           (a >> 16) == (169u << 8 | 254) ||        /* link-local */
           (a >> 20) == (172u << 4 | 1) ||          /* 172.16/12 */
           (a >> 16) == (192u << 8 | 168) ||
           (a >> 28) >= 14;                         /* multicast, reserved */
}

static bool internal_v6(const struct in6_addr *a)
{
    const uint8_t *b = a->s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a))
        return internal_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                           (uint32_t)b[14] << 8 | b[15]) || IN6_IS_ADDR_UNSPECIFIED(a);
    return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
           (b[0] & 0xfe) == 0xfc ||                 /* fc00::/7 unique local */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||   /* fe80::/10 */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||   /* fec0::/10 site-local */
           b[0] == 0xff;                            /* multicast */
}

/* The address check: returns NULL when we may connect, else why not. */
static const char *address_refused(const struct http_state *st, const struct sockaddr *sa,
                                   char *text, size_t textlen)
{
    char ip[INET6_ADDRSTRLEN];
    long port;
    bool internal;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        internal = internal_v4(ntohl(in->sin_addr.s_addr));
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(text, textlen, "%s", ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        internal = internal_v6(&in6->sin6_addr);
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(text, textlen, "[%s]", ip);
        port = ntohs(in6->sin6_port);
    } else {
        snprintf(text, textlen, "(family %d)", sa->sa_family);
        return "is not an IP address";
    }
    if (!internal)
        return NULL;
    /* Only an entry naming the address itself opens it; "*" does not. */
    for (size_t i = 0; i < st->nallow; i++)
        if (strcmp(st->allow[i].host, text) == 0 &&
            (st->allow[i].port == -1 || st->allow[i].port == port))
            return NULL;
    return "is a loopback, private or link-local address that [http] allow does not name";
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct xfer *x = clientp;
    char text[INET6_ADDRSTRLEN + 8];
    (void)purpose;
    const char *why = address_refused(x->st, &a->addr, text, sizeof text);
    if (why) {
        snprintf(x->refused, sizeof x->refused, "connection to %s refused: it %s", text, why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Parses url with libcurl's own parser (the one the transfer will use)
 * and applies the scheme rule and the allow-list. Returns 0, AW_EINVAL or
 * AW_EFORBIDDEN, err set. */
static int check_url(const struct http_state *st, const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = 0;
    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "args.url '%.200s' is not a URL with a host", url);
        rc = AW_EINVAL;
    } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(err, errlen, "args.url: only http and https URLs, not '%.32s'", scheme);
        rc = AW_EINVAL;
    } else {
        for (char *p = host; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        long pn = strtol(port, NULL, 10);
        if (!host_allowed(st, host, pn)) {
            snprintf(err, errlen, "%.200s:%ld is not on the http allow-list", host, pn);
            rc = AW_EFORBIDDEN;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* ---- args ---- */

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
    return AW_EINVAL;
}

static bool c_string(json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static bool is_token(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    return *s && strspn(s, tchar) == strlen(s);
}

static bool present(json_t *v)
{
    return v && !json_is_null(v);
}

/* The shape, as the contract states it; the limits of the configuration
 * too when st is not NULL (the kind is enabled). */
static int check_shape(const struct http_state *st, json_t *args, char *err, size_t errlen)
{
    json_t *url = json_object_get(args, "url"), *method = json_object_get(args, "method");
    json_t *headers = json_object_get(args, "headers"), *body = json_object_get(args, "body");
    json_t *v;
    const char *k;
    if (!c_string(url))
        return bad(err, errlen, "http needs args.url, a string");
    if (present(method) && (!c_string(method) || !is_token(json_string_value(method)) ||
                            json_string_length(method) > MAX_METHOD))
        return bad(err, errlen, "args.method must be an HTTP method such as GET or POST");
    if (present(headers)) {
        if (!json_is_object(headers))
            return bad(err, errlen, "args.headers must be an object of strings");
        json_object_foreach(headers, k, v) {
            if (!json_is_string(v))
                return bad(err, errlen, "args.headers must be an object of strings");
            if (!is_token(k) || !c_string(v) || strpbrk(json_string_value(v), "\r\n")) {
                snprintf(err, errlen, "args.headers: '%.64s' must be a header name and its "
                         "value a line without CR, LF or NUL", k);
                return AW_EINVAL;
            }
        }
    }
    if (present(body) && !json_is_string(body))
        return bad(err, errlen, "args.body must be a string");
    const char *flags[] = { "follow_redirects", "fail_on_status" };
    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(args, flags[i]);
        if (present(v) && !json_is_boolean(v)) {
            snprintf(err, errlen, "args.%s must be true or false", flags[i]);
            return AW_EINVAL;
        }
    }
    v = json_object_get(args, "max_response_bytes");
    if (present(v) && (!json_is_integer(v) || json_integer_value(v) < 0))
        return bad(err, errlen, "args.max_response_bytes must be an integer >= 0");
    if (!st)
        return 0;
    if (json_object_size(headers) > st->max_request_headers) {
        snprintf(err, errlen, "args.headers has more than the %u headers of "
                 "[http] max_request_headers", st->max_request_headers);
        return AW_EINVAL;
    }
    if (json_string_length(body) > st->max_request_body) {
        snprintf(err, errlen, "args.body is larger than the %zu bytes of "
                 "[http] max_request_body_bytes", st->max_request_body);
        return AW_EINVAL;
    }
    return 0;
}

/* ---- transfers ---- */

static void free_headers(struct xfer *x)
{
    for (size_t i = 0; i < x->nheaders; i++) {
        free(x->headers[i].name);
        aw_buf_close(&x->headers[i].value);
    }
    free(x->headers);
    x->headers = NULL;
    x->nheaders = 0;
    x->header_bytes = 0;
}

/* Takes the easy handle out of the multi and frees it. An unfinished
 * transfer's connection is closed by libcurl then, not kept. */
static void drop_easy(struct xfer *x)
{
    if (x->in_multi) {
        curl_multi_remove_handle(x->st->multi, x->easy);
        x->in_multi = false;
    }
    if (x->easy) {
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    if (x->counted) {
        x->counted = false;
        x->st->in_flight--;
    }
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n, room = x->max_body - x->body.len;
    if (len > room) {
        /* Cut: keep what fits and stop the transfer (returning less than
         * given ends it), so a large answer costs no more than the cap. */
        aw_buf_add(&x->body, p, room);
        x->truncated = true;
        return 0;
    }
    aw_buf_add(&x->body, p, len);
    return aw_buf_failed(&x->body) ? 0 : len;
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    /* A status line starts the headers of a new answer (a 100 Continue,
     * or the next hop): only the last answer's are reported. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        free_headers(x);
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || colon == p || x->header_bytes + len > MAX_HEADER_KEPT)
        return len;                     /* the blank line, or beyond what we keep */
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    struct header *h = NULL;
    for (size_t i = 0; i < x->nheaders && !h; i++)
        if (strlen(x->headers[i].name) == nl && strncasecmp(x->headers[i].name, p, nl) == 0)
            h = &x->headers[i];
    if (!h) {
        if (x->nheaders == MAX_HEADERS_KEPT)
            return len;
        struct header *nh = realloc(x->headers, (x->nheaders + 1) * sizeof *nh);
        if (!nh)
            return len;
        x->headers = nh;
        h = &nh[x->nheaders];
        if (!(h->name = strndup(p, nl)))
            return len;
        for (char *c = h->name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        aw_buf_init(&h->value);
        x->nheaders++;
    } else {
        aw_buf_adds(&h->value, ", ");
    }
    aw_buf_add(&h->value, v, (size_t)(end - v));
    x->header_bytes += len;
    return len;
}

static char *make_result(struct xfer *x, long status)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_buf_printf(&b, "{\"status\":%ld,\"headers\":{", status);
    for (size_t i = 0; i < x->nheaders; i++) {
        if (i)
            aw_buf_addc(&b, ',');
        aw_utf8_add_json_str(&b, x->headers[i].name);
        aw_buf_addc(&b, ':');
        aw_utf8_add_json(&b, x->headers[i].value.data, x->headers[i].value.len);
    }
    aw_buf_adds(&b, "},\"body\":");
    aw_utf8_add_json(&b, x->body.data, x->body.len);
    aw_buf_adds(&b, x->truncated ? ",\"truncated\":true}" : ",\"truncated\":false}");
    return aw_buf_steal(&b, NULL);
}

static void fail_http(struct xfer *x, const char *msg)
{
    drop_easy(x);
    aw_task_fail(x->e, x->t, AW_ERR_HTTP, msg, NULL);
}

/* Sets the request up on x->easy from args (method, headers, body).
 * Returns 0 or -ENOMEM. */
static int setup_request(struct xfer *x, json_t *args, const char *url, const char *method)
{
    CURL *c = x->easy;
    json_t *headers = json_object_get(args, "headers"), *body = json_object_get(args, "body"), *v;
    const char *k;
    bool has_expect = false;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);    /* followed by us: see follow */
    /* No proxy from the environment: the address check must see the
     * server's address, not a proxy's. */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cb);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)x->st->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, x->st->insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, x->st->insecure ? 0L : 2L);
    /* A task's timeout is the engine's; the transfer itself has none. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 || json_is_string(body))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (json_is_string(body)) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)json_string_length(body));
        /* COPYPOSTFIELDS: a body with NUL bytes in it is sent whole. */
        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, json_string_value(body));
    }
    json_object_foreach(headers, k, v) {
        size_t kl = strlen(k), vl = json_string_length(v);
        char *line = malloc(kl + vl + 3);
        if (!line)
            return -ENOMEM;
        /* "Name;" is curl's way to send a header with an empty value. */
        snprintf(line, kl + vl + 3, vl ? "%s: %s" : "%s;", k, json_string_value(v));
        struct curl_slist *l = curl_slist_append(x->hdrs, line);
        free(line);
        if (!l)
            return -ENOMEM;
        x->hdrs = l;
        has_expect |= strcasecmp(k, "expect") == 0;
    }
    if (!has_expect) {
        /* No 100-continue round trip for large bodies. */
        struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
        if (!l)
            return -ENOMEM;
        x->hdrs = l;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
    return 0;
}

static int http_prepare(aw_engine_t *e, aw_task_t *t, json_t *args,
                        char *err, size_t errlen)
{
    bool enabled = aw_engine_kind_enabled(e, t->kind->name);
    struct http_state *st = aw_engine_kind_state(e, &aw_kind_http);
    int rc = check_shape(enabled ? st : NULL, args, err, errlen);
    if (rc < 0 || !enabled)
        return rc;
    if (!st->curl_ok)
        return AW_EDISABLED;            /* main refuses to start so; see aw_http_check_libcurl */
    if ((rc = check_url(st, json_string_value(json_object_get(args, "url")), err, errlen)) < 0)
        return rc;
    struct xfer *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->e = e;
    x->t = t;
    x->st = st;
    x->follow = json_is_true(json_object_get(args, "follow_redirects"));
    x->fail_on_status = json_is_true(json_object_get(args, "fail_on_status"));
    x->max_body = st->max_response;
    json_t *mr = json_object_get(args, "max_response_bytes");
    if (json_is_integer(mr) && (uint64_t)json_integer_value(mr) < x->max_body)
        x->max_body = (size_t)json_integer_value(mr);
    /* The result keeps the body for the task's retention: it stays within
     * max_result_bytes as an exec job's output does. */
    uint64_t kept = aw_engine_limits(e)->max_result_bytes;
    if (kept && kept < x->max_body)
        x->max_body = (size_t)kept;
    aw_buf_init(&x->body);
    t->kdata.p = x;
    return 0;
}

/* Adds the transfer for url to the multi. Returns 0 or -ENOMEM. */
static int launch(struct xfer *x, json_t *args, const char *url, const char *method)
{
    if (!(x->easy = curl_easy_init()))
        return -ENOMEM;
    int rc = setup_request(x, args, url, method);
    if (rc == 0 && curl_multi_add_handle(x->st->multi, x->easy) != CURLM_OK)
        rc = -ENOMEM;
    if (rc < 0) {
        drop_easy(x);
        return rc;
    }
    x->in_multi = true;
    return 0;
}

static void http_start(aw_engine_t *e, aw_task_t *t)
{
    struct xfer *x = t->kdata.p;
    char err[512];
    if (!x) {
        aw_task_fail(e, t, AW_ERR_HTTP, "the request was never prepared", NULL);
        return;
    }
    json_t *args = json_loads(t->args, JSON_ALLOW_NUL, NULL);
    if (!args) {
        aw_task_fail(e, t, AW_ERR_HTTP, "out of memory", NULL);
        return;
    }
    const char *url = json_string_value(json_object_get(args, "url"));
    const char *method = json_string_value(json_object_get(args, "method"));
    /* The configuration of now: a reload may have disabled the kind or
     * narrowed the allow-list since the task was created. */
    int rc = aw_engine_kind_enabled(e, aw_kind_http.name) ? check_url(x->st, url, err, sizeof err)
                                                           : AW_EFORBIDDEN;
    if (rc == AW_EFORBIDDEN) {
        char msg[600];
        snprintf(msg, sizeof msg, "not started: %s", aw_engine_kind_enabled(e, "http") ? err
                 : "the http kind was disabled by configuration after the task was created");
        json_decref(args);
        aw_task_fail(e, t, AW_ERR_FORBIDDEN, msg, NULL);
        return;
    }
    x->counted = true;
    x->st->in_flight++;
    rc = rc < 0 ? rc : launch(x, args, url, method ? method : "GET");
    json_decref(args);
    if (rc < 0)
        fail_http(x, rc == -ENOMEM ? "out of memory" : err);
}

/* A 3xx answer that args.follow_redirects asked to follow: the next hop
 * passes the scheme rule and the allow-list like the first, which
 * libcurl's own CURLOPT_FOLLOWLOCATION could not do. Returns true when
 * the transfer goes on, false when x is finished (failed). */
static bool follow(struct xfer *x, long status)
{
    char *loc = NULL, err[512];
    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
    if (!loc)
        return false;
    if (x->redirects >= x->st->max_redirects) {
        snprintf(err, sizeof err, "more than %u redirects ([http] max_redirects)",
                 x->st->max_redirects);
        fail_http(x, err);
        return true;
    }
    char *next = strdup(loc);
    int rc = next ? check_url(x->st, next, err, sizeof err) : -ENOMEM;
    if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "redirect refused: %s", rc == -ENOMEM ? "out of memory" : err);
        free(next);
        fail_http(x, msg);
        return true;
    }
    json_t *args = json_loads(x->t->args, JSON_ALLOW_NUL, NULL);
    const char *method = json_string_value(json_object_get(args, "method"));
    if (!method)
        method = "GET";
    /* As browsers do: 303 always, and 301/302 after a POST, become a GET
     * without the body; 307 and 308 repeat the request as it was. */
    bool to_get = status == 303 || ((status == 301 || status == 302) && strcmp(method, "POST") == 0);
    if (to_get && args)
        json_object_del(args, "body");
    x->redirects++;
    drop_easy(x);
    x->counted = true;
    x->st->in_flight++;
    aw_buf_reset(&x->body);
    x->truncated = false;
    free_headers(x);
    x->refused[0] = '\0';
    rc = args ? launch(x, args, next, to_get && strcmp(method, "HEAD") ? "GET" : method) : -ENOMEM;
    json_decref(args);
    free(next);
    if (rc < 0)
        fail_http(x, "out of memory");
    return true;
}

/* The transfer ended (libcurl's CURLMSG_DONE). */
static void done(struct xfer *x, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_WRITE_ERROR && x->truncated)
        code = CURLE_OK;                /* our cut, not a failure */
    if (code != CURLE_OK) {
        char msg[CURL_ERROR_SIZE + 256];
        snprintf(msg, sizeof msg, "%s", x->refused[0] ? x->refused
                 : x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        fail_http(x, msg);
        return;
    }
    if (x->follow && status >= 300 && status < 400 && follow(x, status))
        return;
    drop_easy(x);
    char *result = make_result(x, status);
    aw_buf_close(&x->body);
    free_headers(x);
    if (x->fail_on_status && status >= 400) {
        char msg[64];
        snprintf(msg, sizeof msg, "HTTP status %ld", status);
        aw_task_fail(x->e, x->t, AW_ERR_HTTP_STATUS, msg, result);
    } else {
        aw_task_succeed(x->e, x->t, result);
    }
}

/* Finishes every transfer libcurl reports done. Runs after
 * curl_multi_socket_action returned, never inside a libcurl callback, so
 * finishing a task may start the next one (curl_multi_add_handle). */
static void check_done(struct http_state *st)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(st->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            done((struct xfer *)(void *)priv, code);
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    struct http_state *st = arg;
    int running, flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
                         (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(st->multi, fd, flags, &running);
    check_done(st);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_state *st = arg;
    int running;
    curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(st);
}

/* libcurl's socket callback: one persistent event per socket, kept as
 * the socket's data (curl_multi_assign). No libcurl call but that one
 * in here: they would be refused as recursive. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct http_state *st = userp;
    struct event *ev = socketp;
    if (what == CURL_POLL_REMOVE) {
        /* The fd number may come back for another socket: never leave
         * an event behind for it. */
        if (ev)
            event_free(ev);
        return 0;
    }
    short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) |
                         (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
    if (ev) {
        event_del(ev);
        event_assign(ev, st->base, s, kind, on_event, st);
    } else {
        if (!(ev = event_new(st->base, s, kind, on_event, st)))
            return -1;
        curl_multi_assign(st->multi, s, ev);
    }
    event_add(ev, NULL);
    return 0;
}

/* libcurl's timer callback: a new value replaces the old one; -1 stops
 * it. 0 too goes through the loop, since calling libcurl from here is
 * not allowed. */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct http_state *st = userp;
    if (timeout_ms < 0) {
        evtimer_del(st->timer);
        return 0;
    }
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    return evtimer_add(st->timer, &tv) < 0 ? -1 : 0;
}

static void http_wake(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    (void)t;                            /* no wake-ups of its own */
}

/* Cancel and timeout: the transfer is removed now; libcurl closes its
 * connection (an unfinished transfer's connection is never reused). */
static int http_cancel(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    struct xfer *x = t->kdata.p;
    if (x)
        drop_easy(x);
    return 0;
}

static void http_release(aw_task_t *t)
{
    struct xfer *x = t->kdata.p;
    if (!x)
        return;
    drop_easy(x);
    aw_buf_close(&x->body);
    free_headers(x);
    free(x);
    t->kdata.p = NULL;
}

static size_t http_bytes(const aw_task_t *t)
{
    const struct xfer *x = t->kdata.p;
    return x ? sizeof *x + x->body.cap + x->header_bytes : 0;
}

const aw_kind_t aw_kind_http = {
    .name = "http",
    .init = http_init,
    .fini = http_fini,
    .configure = http_configure,
    .prepare = http_prepare,
    .start = http_start,
    .wake = http_wake,
    .cancel = http_cancel,
    .release = http_release,
    .start_after_commit = 1,
    .bytes = http_bytes,
    .has_slot = http_has_slot,
};
