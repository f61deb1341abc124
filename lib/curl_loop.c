/*
 * curl_loop.c — libcurl's multi interface on a libevent base (see
 * curl_loop.h).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "curl_loop.h"
#include "errors.h"

struct aw_curl_loop {
    struct event_base *base;
    CURLM             *multi;
    struct event      *timer;
    aw_curl_done_fn    done;
    bool               global;      /* curl_global_init succeeded */
};

int aw_curl_check(char *err, size_t errlen)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    /* Without an asynchronous resolver libcurl resolves names with a
     * blocking getaddrinfo inside curl_multi_socket_action: one slow DNS
     * answer would stop every task, wait and request of the daemon.
     * Debian's libcurl has the threaded resolver; a build without it is
     * refused. */
    if (!(v->features & CURL_VERSION_ASYNCHDNS)) {
        snprintf(err, errlen, "libcurl %s resolves names by blocking (no AsynchDNS): "
                 "awaitd needs a libcurl built with the threaded resolver or c-ares",
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

/* Hands every finished transfer to done. Runs after
 * curl_multi_socket_action returned, never inside a libcurl callback. */
static void check_done(aw_curl_loop_t *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            l->done(priv, code);
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    aw_curl_loop_t *l = arg;
    int running, flags = (what & EV_READ ? CURL_CSELECT_IN : 0) |
                         (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(l->multi, fd, flags, &running);
    check_done(l);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aw_curl_loop_t *l = arg;
    int running;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(l);
}

/* libcurl's socket callback: one persistent event per socket, kept as
 * the socket's data (curl_multi_assign). No libcurl call but that one
 * in here: they would be refused as recursive. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    aw_curl_loop_t *l = userp;
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
        event_assign(ev, l->base, s, kind, on_event, l);
    } else {
        if (!(ev = event_new(l->base, s, kind, on_event, l)))
            return -1;
        curl_multi_assign(l->multi, s, ev);
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
    aw_curl_loop_t *l = userp;
    if (timeout_ms < 0) {
        evtimer_del(l->timer);
        return 0;
    }
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
    return evtimer_add(l->timer, &tv) < 0 ? -1 : 0;
}

void aw_curl_loop_free(aw_curl_loop_t *l)
{
    if (!l)
        return;
    if (l->multi)
        curl_multi_cleanup(l->multi);
    if (l->timer)
        event_free(l->timer);
    if (l->global)
        curl_global_cleanup();
    free(l);
}

aw_curl_loop_t *aw_curl_loop_new(struct event_base *base, aw_curl_done_fn done,
                                 long max_connections)
{
    aw_curl_loop_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base = base;
    l->done = done;
    /* Reference-counted by libcurl: each loop takes and gives back its own. */
    l->global = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!l->global || !(l->timer = evtimer_new(base, on_timer, l)) ||
        !(l->multi = curl_multi_init())) {
        aw_curl_loop_free(l);
        return NULL;
    }
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    aw_curl_loop_set_max_connections(l, max_connections);
    return l;
}

void aw_curl_loop_set_max_connections(aw_curl_loop_t *l, long max_connections)
{
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, max_connections);
}

int aw_curl_loop_add(aw_curl_loop_t *l, CURL *easy)
{
    return curl_multi_add_handle(l->multi, easy) == CURLM_OK ? 0 : -ENOMEM;
}

void aw_curl_loop_remove(aw_curl_loop_t *l, CURL *easy)
{
    curl_multi_remove_handle(l->multi, easy);
}

static curl_socket_t open_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    aw_curl_guard_t *g = clientp;
    char text[64];
    (void)purpose;
    const char *why = aw_allow_address(*g->allow, &a->addr, text, sizeof text);
    if (why) {
        snprintf(g->refused, sizeof g->refused, "connection to %s refused: it %s", text, why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

void aw_curl_secure(CURL *c, aw_curl_guard_t *guard, const aw_curl_tls_t *tls)
{
    guard->refused[0] = '\0';
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_cb);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, guard);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, tls->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, tls->insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, tls->insecure ? 0L : 2L);
    if (tls->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca_file);
}

bool aw_curl_is_token(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    return *s && strspn(s, tchar) == strlen(s);
}

int aw_curl_check_headers(json_t *headers, size_t max, const char *what,
                          char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    if (!headers || json_is_null(headers))
        return 0;
    if (!json_is_object(headers)) {
        snprintf(err, errlen, "%s must be an object of strings", what);
        return AW_EINVAL;
    }
    json_object_foreach(headers, k, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s must be an object of strings", what);
            return AW_EINVAL;
        }
        if (!aw_curl_is_token(k) || strlen(json_string_value(v)) != json_string_length(v) ||
            strpbrk(json_string_value(v), "\r\n")) {
            snprintf(err, errlen, "%s: '%.64s' must be a header name and its value a line "
                     "without CR, LF or NUL", what, k);
            return AW_EINVAL;
        }
    }
    if (json_object_size(headers) > max) {
        snprintf(err, errlen, "%s has more than %zu headers", what, max);
        return AW_EINVAL;
    }
    return 0;
}

int aw_curl_add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -ENOMEM;
    *list = l;
    return 0;
}

int aw_curl_add_headers(struct curl_slist **list, json_t *headers)
{
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v) {
        size_t kl = strlen(k), vl = json_string_length(v);
        char *line = malloc(kl + vl + 3);
        if (!line)
            return -ENOMEM;
        /* "Name;" is libcurl's way to send a header with an empty value. */
        snprintf(line, kl + vl + 3, vl ? "%s: %s" : "%s;", k, json_string_value(v));
        int rc = aw_curl_add_header(list, line);
        free(line);
        if (rc < 0)
            return rc;
    }
    return 0;
}
