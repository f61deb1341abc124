/*
 * kind_http.c — the `http` kind (see kind_http.h): one request per task,
 * made by a libcurl multi handle that the engine's libevent base drives.
 *
 * The multi handle on the loop (curl_loop.h, with name resolution in
 * libcurl's resolver threads, checked at init) and the transfer count
 * belong to the kind's per-engine state.
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
 * Not here: the allow-list (net_allow.c), configuration parsing and
 * logging (daemon/), webhooks (notify.c).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "curl_loop.h"
#include "engine.h"
#include "errors.h"
#include "kind_http.h"
#include "utf8.h"

#define MAX_METHOD       16
#define MAX_HEADER_KEPT  (64 * 1024)    /* response header bytes kept */
#define MAX_HEADERS_KEPT 200            /* response header fields kept */

/* ---- configuration and per-engine state ---- */

struct http_state {
    aw_engine_t       *e;
    aw_curl_loop_t    *loop;
    bool               curl_ok;     /* aw_curl_check passed */
    uint32_t           in_flight;
    uint64_t           results[AW_HTTP_RESULT_CLASSES];
    aw_allow_t        *allow;
    uint32_t           max_transfers;
    size_t             max_response;
    uint32_t           max_redirects;
    size_t             max_request_body;
    uint32_t           max_request_headers;
    aw_curl_tls_t      tls;         /* tls.ca_file owned */
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
    aw_curl_guard_t     guard;
    char                errbuf[CURL_ERROR_SIZE];
};

static void transfer_done(void *priv, CURLcode code);

static void http_fini(void *state)
{
    struct http_state *st = state;
    aw_curl_loop_free(st->loop);
    aw_allow_free(st->allow);
    free((char *)st->tls.ca_file);
    free(st);
}

static int http_init(aw_engine_t *e, void **state)
{
    struct http_state *st = calloc(1, sizeof *st);
    char err[256];
    if (!st)
        return -ENOMEM;
    st->e = e;
    st->max_transfers = AW_HTTP_DEFAULT_MAX_TRANSFERS;
    st->max_response = AW_HTTP_DEFAULT_MAX_RESPONSE;
    st->max_redirects = AW_HTTP_DEFAULT_MAX_REDIRECTS;
    st->max_request_body = AW_HTTP_DEFAULT_MAX_REQUEST_BODY;
    st->max_request_headers = AW_HTTP_DEFAULT_MAX_HEADERS;
    st->tls.connect_timeout_ms = AW_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    st->curl_ok = aw_curl_check(err, sizeof err) == 0;
    /* The cap on connections as well as on transfers. */
    if (!(st->loop = aw_curl_loop_new(aw_engine_base(e), transfer_done,
                                      (long)st->max_transfers)) ||
        aw_allow_parse(NULL, 0, "[http] allow", &st->allow, err, sizeof err) < 0) {
        http_fini(st);
        return -ENOMEM;
    }
    *state = st;
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
    aw_allow_t *allow;
    char *ca = NULL;
    int rc = aw_allow_parse(c->allow, c->nallow, "[http] allow", &allow, err, errlen);
    if (rc < 0)
        return rc;
    if (c->ca_file && !(ca = strdup(c->ca_file))) {
        aw_allow_free(allow);
        return -ENOMEM;
    }
    aw_allow_free(st->allow);
    st->allow = allow;
    free((char *)st->tls.ca_file);
    st->tls.ca_file = ca;
    st->max_transfers = c->max_transfers;
    st->max_response = c->max_response_bytes;
    st->max_redirects = c->max_redirects;
    st->max_request_body = c->max_request_body;
    st->max_request_headers = c->max_request_headers;
    st->tls.connect_timeout_ms = c->connect_timeout_ms;
    st->tls.insecure = c->insecure;
    aw_curl_loop_set_max_connections(st->loop, (long)st->max_transfers);
    return 0;
}

static bool http_has_slot(const void *state)
{
    const struct http_state *st = state;
    return !st || st->in_flight < st->max_transfers;
}

void aw_http_stats(const aw_engine_t *e, aw_http_stats_t *out)
{
    const struct http_state *st = aw_engine_kind_state(e, &aw_kind_http);
    memset(out, 0, sizeof *out);
    if (!st)
        return;
    out->in_flight = st->in_flight;
    memcpy(out->results, st->results, sizeof out->results);
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
    if (!c_string(url))
        return bad(err, errlen, "http needs args.url, a string");
    if (present(method) && (!c_string(method) || !aw_curl_is_token(json_string_value(method)) ||
                            json_string_length(method) > MAX_METHOD))
        return bad(err, errlen, "args.method must be an HTTP method such as GET or POST");
    int rc = aw_curl_check_headers(headers, st ? st->max_request_headers : SIZE_MAX,
                                   "args.headers", err, errlen);
    if (rc < 0)
        return rc;
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
        aw_curl_loop_remove(x->st->loop, x->easy);
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
    x->guard.allow = &x->st->allow;
    aw_curl_secure(c, &x->guard, &x->st->tls);      /* redirects: see follow */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
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
    json_object_foreach(headers, k, v)
        has_expect |= strcasecmp(k, "expect") == 0;
    /* No 100-continue round trip for large bodies. */
    if (aw_curl_add_headers(&x->hdrs, headers) < 0 ||
        (!has_expect && aw_curl_add_header(&x->hdrs, "Expect:") < 0))
        return -ENOMEM;
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
        return AW_EDISABLED;            /* main refuses to start so; see aw_curl_check */
    if ((rc = aw_allow_url(st->allow, json_string_value(json_object_get(args, "url")), "args.url",
                            err, errlen)) < 0)
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
    if (rc == 0)
        rc = aw_curl_loop_add(x->st->loop, x->easy);
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
    int rc = aw_engine_kind_enabled(e, aw_kind_http.name) ? aw_allow_url(x->st->allow, url, "args.url", err, sizeof err)
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
    int rc = next ? aw_allow_url(x->st->allow, next, "redirect", err, sizeof err) : -ENOMEM;
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
        snprintf(msg, sizeof msg, "%s", x->guard.refused[0] ? x->guard.refused
                 : x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        x->st->results[AW_HTTP_RESULT_ERROR]++;
        fail_http(x, msg);
        return;
    }
    if (x->follow && status >= 300 && status < 400 && follow(x, status))
        return;
    x->st->results[status >= 200 && status < 600 ? status / 100 - 2 : AW_HTTP_RESULT_ERROR]++;
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

static void transfer_done(void *priv, CURLcode code)
{
    done(priv, code);
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
