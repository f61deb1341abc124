/*
 * notify.c — completion notifications (see notify.h).
 *
 * Every delivery under way is in exactly one list of the notifier, in
 * the order it got there:
 *   fresh    heard of (a listener may not call the store): the next loop
 *            turn gives it the batch that holds the task's final state;
 *   gated    waiting for that batch's commit;
 *   ready    waiting for a transfer slot (FIFO);
 *   backoff  waiting for its retry time (a timer of its own);
 *   flight   its attempt is under way.
 * A task points to its delivery (aw_task_notify_t.delivery) and the
 * delivery holds a reference on its task.
 */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "curl_loop.h"
#include "errors.h"
#include "json_text.h"
#include "notify.h"
#include "store.h"
#include "task_json.h"

enum { L_FRESH, L_GATED, L_READY, L_BACKOFF, L_FLIGHT, L_COUNT };

struct delivery {
    aw_notify_t       *n;
    aw_task_t         *t;               /* referenced */
    struct delivery   *prev, *next;     /* in n->lists[list] */
    int                list;
    uint64_t           seq;             /* the batch that holds the final state */
    struct event      *timer;           /* backoff; made when first needed */
    CURL              *easy;
    struct curl_slist *hdrs;
    aw_buf_t           body;
    aw_curl_guard_t    guard;
    char               errbuf[CURL_ERROR_SIZE];
};

struct dlist {
    struct delivery *head, *tail;
    size_t           n;
};

struct aw_notify {
    aw_engine_t        *e;
    aw_store_t         *store;
    uint64_t            durable;        /* UINT64_MAX without a store */
    aw_curl_loop_t     *loop;
    struct event       *kick;           /* the next turn takes the fresh ones */
    struct dlist        lists[L_COUNT];
    aw_notify_stats_t   stats;
    bool                curl_ok;
    /* the configuration */
    aw_allow_t         *allow;
    char               *secret;
    size_t              secret_len;
    uint32_t            max_attempts, max_transfers;
    int64_t             min_backoff_ms, max_backoff_ms, timeout_ms;
    aw_curl_tls_t       tls;            /* tls.ca_file owned */
};

/* ---- the lists ---- */

static void list_put(aw_notify_t *n, struct delivery *d, int list)
{
    struct dlist *l = &n->lists[list];
    d->list = list;
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    l->n++;
}

static void list_take(aw_notify_t *n, struct delivery *d)
{
    struct dlist *l = &n->lists[d->list];
    if (d->prev)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = d->next = NULL;
    l->n--;
}

static void move(aw_notify_t *n, struct delivery *d, int list)
{
    list_take(n, d);
    list_put(n, d, list);
}

/* Ends an attempt's transfer, if one is under way. */
static void drop_transfer(struct delivery *d)
{
    if (d->easy) {
        aw_curl_loop_remove(d->n->loop, d->easy);
        curl_easy_cleanup(d->easy);
        d->easy = NULL;
        d->n->stats.in_flight--;
    }
    curl_slist_free_all(d->hdrs);
    d->hdrs = NULL;
    aw_buf_close(&d->body);
}

/* The delivery ends (or is abandoned): the task keeps its state. */
static void delivery_free(struct delivery *d)
{
    aw_notify_t *n = d->n;
    drop_transfer(d);
    list_take(n, d);
    if (d->timer)
        event_free(d->timer);
    aw_task_notify(d->t)->delivery = NULL;
    aw_task_unref(d->t);
    free(d);
}

static void pump(aw_notify_t *n);

/* ---- attempts ---- */

/* The retry delay after `attempts` attempts: the minimum doubled per
 * attempt, capped, then a random point in its upper half, so that many
 * deliveries that failed together do not come back together. */
static int64_t backoff_ms(const aw_notify_t *n, uint32_t attempts)
{
    int64_t d = n->min_backoff_ms;
    for (uint32_t i = 1; i < attempts && d < n->max_backoff_ms; i++)
        d *= 2;
    if (d > n->max_backoff_ms)
        d = n->max_backoff_ms;
    int64_t half = d / 2;
    return d - half + (half > 0 ? (int64_t)arc4random_uniform((uint32_t)(half + 1)) : 0);
}

/* Records the outcome of an attempt on the task and plans what follows. */
static void outcome(struct delivery *d, int status, bool retryable, const char *error)
{
    aw_notify_t *n = d->n;
    aw_task_notify_t *tn = aw_task_notify(d->t);
    tn->attempts++;
    tn->last_status = status;
    free(tn->last_error);
    tn->last_error = error ? strdup(error) : NULL;
    bool again = retryable && tn->attempts < n->max_attempts;
    if (!error)
        tn->state = AW_NOTIFY_DELIVERED;
    else if (!again)
        tn->state = AW_NOTIFY_FAILED;
    tn->next_at = again ? aw_clock_wall_ms() + backoff_ms(n, tn->attempts) : 0;
    if (!error)
        n->stats.delivered++;
    else if (again)
        n->stats.retried++;
    else
        n->stats.failed++;
    aw_task_changed(n->e, d->t);        /* the store writes it */
    if (!again) {
        delivery_free(d);
        return;
    }
    int64_t wait = tn->next_at - aw_clock_wall_ms();
    struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };
    move(n, d, L_BACKOFF);
    event_add(d->timer, &tv);
}

static void transfer_done(void *priv, CURLcode code)
{
    struct delivery *d = priv;
    aw_notify_t *n = d->n;              /* d may be gone after outcome */
    long status = 0;
    char msg[CURL_ERROR_SIZE + 64];
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK) {
        snprintf(msg, sizeof msg, "%s", d->guard.refused[0] ? d->guard.refused
                 : d->errbuf[0] ? d->errbuf : curl_easy_strerror(code));
        drop_transfer(d);
        outcome(d, status > 0 ? (int)status : -1, true, msg);
    } else {
        drop_transfer(d);
        if (status >= 200 && status < 300) {
            outcome(d, (int)status, false, NULL);
        } else {
            snprintf(msg, sizeof msg, "the receiver answered HTTP status %ld", status);
            outcome(d, (int)status, status == 429 || status >= 500, msg);
        }
    }
    pump(n);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
    (void)p;
    (void)arg;
    return size * nmemb;
}

/* Builds the attempt's request on d->easy. Returns 0 or -ENOMEM. */
static int setup(struct delivery *d, const char *url, json_t *headers)
{
    aw_notify_t *n = d->n;
    char line[256], ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)(aw_clock_wall_ms() / 1000));
    aw_buf_init(&d->body);
    aw_task_write_json(&d->body, d->t);
    if (aw_buf_failed(&d->body))
        return -ENOMEM;
    snprintf(line, sizeof line, "X-Awaitd-Delivery: d_%s", d->t->id + 2);
    int rc = aw_curl_add_header(&d->hdrs, line);
    snprintf(line, sizeof line, "X-Awaitd-Timestamp: %s", ts);
    rc = rc ? rc : aw_curl_add_header(&d->hdrs, line);
    if (n->secret_len) {
        /* Over "<timestamp>.<body>": a receiver that checks the
         * timestamp's age also refuses a captured request replayed. */
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        aw_buf_t signed_text;
        aw_buf_init(&signed_text);
        aw_buf_printf(&signed_text, "%s.", ts);
        aw_buf_add(&signed_text, d->body.data, d->body.len);
        if (aw_buf_failed(&signed_text) ||
            !HMAC(EVP_sha256(), n->secret, (int)n->secret_len,
                  (const unsigned char *)signed_text.data, signed_text.len, mac, &maclen))
            rc = rc ? rc : -ENOMEM;
        aw_buf_close(&signed_text);
        char *p = line + snprintf(line, sizeof line, "X-Awaitd-Signature: sha256=");
        for (unsigned int i = 0; i < maclen; i++)
            p += sprintf(p, "%02x", mac[i]);
        rc = rc ? rc : aw_curl_add_header(&d->hdrs, line);
    }
    rc = rc ? rc : aw_curl_add_header(&d->hdrs, "Content-Type: application/json");
    rc = rc ? rc : aw_curl_add_header(&d->hdrs, "User-Agent: awaitd-webhook");
    rc = rc ? rc : aw_curl_add_header(&d->hdrs, "Expect:");
    rc = rc ? rc : aw_curl_add_headers(&d->hdrs, headers);
    if (rc < 0)
        return rc;
    CURL *c = d->easy;
    d->guard.allow = &n->allow;
    d->errbuf[0] = '\0';
    aw_curl_secure(c, &d->guard, &n->tls);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PRIVATE, d);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, d->errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)n->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, d->hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body.data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body.len);
    /* The receiver's answer is not kept: only its status counts. */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    return 0;
}

static void start_attempt(struct delivery *d)
{
    aw_notify_t *n = d->n;
    aw_task_notify_t *tn = aw_task_notify(d->t);
    json_t *target = json_loads(tn->target, 0, NULL);
    const char *url = json_string_value(json_object_get(target, "url"));
    char err[512];
    int rc = url ? aw_allow_url(n->allow, url, "notify.url", err, sizeof err) : AW_EINVAL;
    move(n, d, L_FLIGHT);
    if (rc == AW_EFORBIDDEN || rc == AW_EINVAL) {
        /* A reload narrowed [notify] allow since the create. */
        json_decref(target);
        outcome(d, -1, false, url ? err : "the stored notify target has no url");
        return;
    }
    if (rc == 0 && !n->curl_ok)
        rc = AW_EINVAL;
    if (rc == 0 && !(d->easy = curl_easy_init()))
        rc = -ENOMEM;
    if (d->easy)
        n->stats.in_flight++;
    if (rc == 0)
        rc = setup(d, url, json_object_get(target, "headers"));
    if (rc == 0)
        rc = aw_curl_loop_add(n->loop, d->easy);
    json_decref(target);
    if (rc < 0) {
        drop_transfer(d);
        outcome(d, -1, true, rc == -ENOMEM ? "out of memory" : "libcurl cannot run here");
    }
}

/* Starts what waits for a slot, oldest first. */
static void pump(aw_notify_t *n)
{
    while (n->lists[L_READY].head && n->lists[L_FLIGHT].n < n->max_transfers)
        start_attempt(n->lists[L_READY].head);
}

/* A delivery whose state is committed: now, or at its retry time. */
static void schedule(aw_notify_t *n, struct delivery *d)
{
    int64_t wait = aw_task_notify(d->t)->next_at - aw_clock_wall_ms();
    if (wait <= 0) {
        move(n, d, L_READY);
        return;
    }
    struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };
    move(n, d, L_BACKOFF);
    event_add(d->timer, &tv);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct delivery *d = arg;
    move(d->n, d, L_READY);
    pump(d->n);
}

static void release_gated(aw_notify_t *n)
{
    struct delivery *d;
    while ((d = n->lists[L_GATED].head) && d->seq <= n->durable)
        schedule(n, d);
    pump(n);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aw_notify_t *n = arg;
    struct delivery *d;
    /* One barrier for the whole turn: every final state heard of so far
     * is in that batch or an earlier one. */
    uint64_t seq = n->store ? aw_store_barrier(n->store) : 0;
    while ((d = n->lists[L_FRESH].head)) {
        d->seq = seq;
        move(n, d, L_GATED);
    }
    release_gated(n);
}

/* A task with a delivery to make: it gets one, first in `list`. */
static void begin(aw_notify_t *n, aw_task_t *t, int list)
{
    struct delivery *d = calloc(1, sizeof *d);
    if (!d || !(d->timer = evtimer_new(aw_engine_base(n->e), on_backoff, d))) {
        /* It stays pending in the store: the next start tries again. */
        free(d);
        return;
    }
    d->n = n;
    d->t = t;
    aw_task_ref(t);
    aw_buf_init(&d->body);
    aw_task_notify(t)->delivery = d;
    list_put(n, d, list);
}

static bool wants_delivery(const aw_task_t *t)
{
    const aw_task_notify_t *tn = aw_task_notify(t);
    return tn && aw_task_done(t) && tn->state == AW_NOTIFY_PENDING && !tn->delivery;
}

static void on_task(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    aw_notify_t *n = arg;
    aw_task_notify_t *tn = aw_task_notify(t);
    if (!tn)
        return;
    if (ev == AW_TASK_FORGOTTEN && tn->delivery) {
        delivery_free(tn->delivery);
        pump(n);
    } else if (ev == AW_TASK_CHANGED && wants_delivery(t)) {
        begin(n, t, L_FRESH);
        event_active(n->kick, EV_TIMEOUT, 0);
    }
}

void aw_notify_resume(aw_notify_t *n)
{
    /* What was loaded is committed: no gate. */
    for (aw_task_t *t = aw_task_after(n->e, NULL); t; t = aw_task_next(t))
        if (wants_delivery(t)) {
            begin(n, t, L_GATED);
            if (aw_task_notify(t)->delivery)
                schedule(n, aw_task_notify(t)->delivery);
        }
    pump(n);
}

/* ---- the create check ---- */

static bool reserved_header(const char *k)
{
    return strncasecmp(k, "x-awaitd-", 9) == 0 || strcasecmp(k, "content-type") == 0 ||
           strcasecmp(k, "content-length") == 0 || strcasecmp(k, "transfer-encoding") == 0 ||
           strcasecmp(k, "host") == 0;
}

static int check(void *arg, json_t *notify, char **target, char *err, size_t errlen)
{
    aw_notify_t *n = arg;
    json_t *url = json_object_get(notify, "url"), *headers = json_object_get(notify, "headers");
    const char *k;
    json_t *v;
    if (!json_is_object(notify)) {
        snprintf(err, errlen, "notify must be an object {\"url\": ..., \"headers\": {...}}");
        return AW_EINVAL;
    }
    if (!json_is_string(url) || strlen(json_string_value(url)) != json_string_length(url)) {
        snprintf(err, errlen, "notify.url is required and must be a string");
        return AW_EINVAL;
    }
    int rc = aw_curl_check_headers(headers, AW_NOTIFY_MAX_HEADERS, "notify.headers",
                                   err, errlen);
    if (rc < 0)
        return rc;
    json_object_foreach(headers, k, v)
        if (reserved_header(k)) {
            snprintf(err, errlen, "notify.headers: '%.64s' is set by awaitd itself", k);
            return AW_EINVAL;
        }
    rc = aw_allow_url(n->allow, json_string_value(url), "notify.url", err, errlen);
    if (rc == AW_EINVAL || rc == -ENOMEM)
        return rc;
    if (aw_allow_count(n->allow) == 0 || !n->curl_ok) {
        snprintf(err, errlen, "completion notifications are off: [notify] allow names no "
                 "receiver");
        return AW_EFORBIDDEN;
    }
    if (rc < 0)
        return rc;
    json_t *o = json_pack("{s:O}", "url", url);
    if (o && json_is_object(headers) && json_object_size(headers))
        json_object_set(o, "headers", headers);
    aw_buf_t b;
    aw_buf_init(&b);
    if (o)
        aw_json_write(&b, o);
    json_decref(o);
    if (!o || aw_buf_failed(&b)) {
        aw_buf_close(&b);
        return -ENOMEM;
    }
    *target = aw_buf_steal(&b, NULL);
    return *target ? 0 : -ENOMEM;
}

/* ---- life ---- */

aw_notify_t *aw_notify_new(aw_engine_t *e)
{
    aw_notify_t *n = calloc(1, sizeof *n);
    char err[256];
    if (!n)
        return NULL;
    n->e = e;
    n->durable = UINT64_MAX;
    n->max_attempts = AW_NOTIFY_DEFAULT_MAX_ATTEMPTS;
    n->max_transfers = AW_NOTIFY_DEFAULT_MAX_TRANSFERS;
    n->min_backoff_ms = AW_NOTIFY_DEFAULT_MIN_BACKOFF_MS;
    n->max_backoff_ms = AW_NOTIFY_DEFAULT_MAX_BACKOFF_MS;
    n->timeout_ms = AW_NOTIFY_DEFAULT_TIMEOUT_MS;
    n->tls.connect_timeout_ms = AW_NOTIFY_DEFAULT_TIMEOUT_MS;
    n->curl_ok = aw_curl_check(err, sizeof err) == 0;
    if (!(n->loop = aw_curl_loop_new(aw_engine_base(e), transfer_done, (long)n->max_transfers)) ||
        !(n->kick = event_new(aw_engine_base(e), -1, 0, on_kick, n)) ||
        aw_allow_parse(NULL, 0, "[notify] allow", &n->allow, err, sizeof err) < 0 ||
        aw_engine_listen(e, on_task, n) < 0) {
        aw_curl_loop_free(n->loop);
        if (n->kick)
            event_free(n->kick);
        aw_allow_free(n->allow);
        free(n);
        return NULL;
    }
    aw_engine_set_notify_check(e, check, n);
    return n;
}

int aw_notify_configure(aw_notify_t *n, const aw_notify_config_t *c, char *err, size_t errlen)
{
    if (c->max_attempts < 1 || c->max_transfers < 1 || c->min_backoff_ms <= 0 ||
        c->max_backoff_ms < c->min_backoff_ms || c->timeout_ms <= 0 ||
        c->connect_timeout_ms <= 0) {
        snprintf(err, errlen, "[notify]: max_attempts and max_transfers must be at least 1, "
                 "the timeouts and min_backoff_seconds > 0, max_backoff_seconds >= "
                 "min_backoff_seconds");
        return AW_EINVAL;
    }
    aw_allow_t *allow;
    int rc = aw_allow_parse(c->allow, c->nallow, "[notify] allow", &allow, err, errlen);
    if (rc < 0)
        return rc;
    char *secret = c->secret && c->secret[0] ? strdup(c->secret) : NULL;
    char *ca = c->ca_file ? strdup(c->ca_file) : NULL;
    if ((c->secret && c->secret[0] && !secret) || (c->ca_file && !ca)) {
        aw_allow_free(allow);
        free(secret);
        free(ca);
        return -ENOMEM;
    }
    aw_allow_free(n->allow);
    n->allow = allow;
    if (n->secret)
        OPENSSL_cleanse(n->secret, n->secret_len);
    free(n->secret);
    n->secret = secret;
    n->secret_len = secret ? strlen(secret) : 0;
    free((char *)n->tls.ca_file);
    n->tls.ca_file = ca;
    n->tls.insecure = c->insecure;
    n->tls.connect_timeout_ms = c->connect_timeout_ms;
    n->max_attempts = c->max_attempts;
    n->max_transfers = c->max_transfers;
    n->min_backoff_ms = c->min_backoff_ms;
    n->max_backoff_ms = c->max_backoff_ms;
    n->timeout_ms = c->timeout_ms;
    aw_curl_loop_set_max_connections(n->loop, (long)n->max_transfers);
    pump(n);
    return 0;
}

void aw_notify_use_store(aw_notify_t *n, aw_store_t *s)
{
    n->store = s;
    n->durable = s ? aw_store_durable(s) : UINT64_MAX;
}

void aw_notify_committed(aw_notify_t *n, uint64_t durable)
{
    if (!n || durable == n->durable)
        return;
    n->durable = durable;
    release_gated(n);
}

void aw_notify_stats(const aw_notify_t *n, aw_notify_stats_t *out)
{
    *out = n->stats;
    out->pending = 0;
    for (int i = 0; i < L_COUNT; i++)
        out->pending += n->lists[i].n;
}

void aw_notify_free(aw_notify_t *n)
{
    if (!n)
        return;
    aw_engine_unlisten(n->e, on_task, n);
    aw_engine_set_notify_check(n->e, NULL, NULL);
    for (int i = 0; i < L_COUNT; i++)
        while (n->lists[i].head)
            delivery_free(n->lists[i].head);
    aw_curl_loop_free(n->loop);
    event_free(n->kick);
    aw_allow_free(n->allow);
    if (n->secret)
        OPENSSL_cleanse(n->secret, n->secret_len);
    free(n->secret);
    free((char *)n->tls.ca_file);
    free(n);
}
