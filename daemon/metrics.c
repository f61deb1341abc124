/*
 * metrics.c — Prometheus text exposition (see metrics.h). Every family has
 * HELP and TYPE lines; label values are fixed strings (kinds, states,
 * routes, status codes), so they never need escaping.
 *
 * Loop lag: a timer asks to run every LAG_PERIOD_MS; how much later than
 * asked it runs is how long something held the loop. The last value and
 * the largest since start are exported.
 */
#include <event2/event.h>
#include <stdio.h>
#include <unistd.h>

#include "clock.h"
#include "kind_http.h"
#include "metrics.h"
#include "notify.h"

#define LAG_PERIOD_MS 500

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_OTHER] = "other", [ROUTE_HEALTHZ] = "healthz", [ROUTE_METRICS] = "metrics",
    [ROUTE_INFO] = "info", [ROUTE_EVENTS] = "events",
    [ROUTE_TASK_CREATE] = "task_create", [ROUTE_TASK_LIST] = "task_list",
    [ROUTE_TASK_GET] = "task_get", [ROUTE_TASK_DELETE] = "task_delete",
    [ROUTE_TASK_CANCEL] = "task_cancel", [ROUTE_TASK_WAIT] = "task_wait",
    [ROUTE_TASK_OUTPUT] = "task_output", [ROUTE_WAIT_MANY] = "wait_many",
};

/* Upper bounds in microseconds; waits fill the long buckets. */
static const int64_t bounds_us[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 300000000,
};
#define NBOUNDS (sizeof bounds_us / sizeof bounds_us[0])

struct histogram {
    uint64_t buckets[NBOUNDS];      /* non-cumulative; summed when written */
    uint64_t count;
    int64_t  sum_us;
};

static uint64_t responses[600];
static struct histogram latency[ROUTE_COUNT];

static struct event *lag_timer;
static int64_t lag_expected_ms, lag_last_ms, lag_max_ms;

void metrics_observe(enum metrics_route route, unsigned status, int64_t micros)
{
    if (status < 600)
        responses[status]++;
    if ((unsigned)route >= ROUTE_COUNT)
        route = ROUTE_OTHER;
    struct histogram *h = &latency[route];
    size_t i = 0;
    while (i < NBOUNDS && micros > bounds_us[i])
        i++;
    if (i < NBOUNDS)
        h->buckets[i]++;
    h->count++;
    h->sum_us += micros;
}

static void arm_lag(void)
{
    struct timeval tv = { .tv_sec = 0, .tv_usec = LAG_PERIOD_MS * 1000 };
    lag_expected_ms = aw_clock_mono_ms() + LAG_PERIOD_MS;
    evtimer_add(lag_timer, &tv);
}

static void lag_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    int64_t late = aw_clock_mono_ms() - lag_expected_ms;
    lag_last_ms = late > 0 ? late : 0;
    if (lag_last_ms > lag_max_ms)
        lag_max_ms = lag_last_ms;
    arm_lag();
}

int metrics_start(struct event_base *base)
{
    if (!(lag_timer = evtimer_new(base, lag_cb, NULL)))
        return -1;
    arm_lag();
    return 0;
}

void metrics_stop(void)
{
    if (lag_timer)
        event_free(lag_timer);
    lag_timer = NULL;
}

static void family(aw_buf_t *b, const char *name, const char *type, const char *help)
{
    aw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static long long resident_bytes(void)
{
    /* /proc is in memory: reading it does not wait on a disk. */
    FILE *f = fopen("/proc/self/statm", "re");
    long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static void write_latency(aw_buf_t *b)
{
    family(b, "awaitd_http_request_duration_seconds", "histogram",
           "Time from a request being read to its answer being queued, by route "
           "(for waits: the time held).");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        const struct histogram *h = &latency[r];
        if (!h->count)
            continue;
        uint64_t cumulative = 0;
        for (size_t i = 0; i < NBOUNDS; i++) {
            cumulative += h->buckets[i];
            aw_buf_printf(b, "awaitd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                          route_names[r], (double)bounds_us[i] / 1e6,
                          (unsigned long long)cumulative);
        }
        aw_buf_printf(b, "awaitd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                      "awaitd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                      "awaitd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                      route_names[r], (unsigned long long)h->count, route_names[r],
                      (double)h->sum_us / 1e6, route_names[r], (unsigned long long)h->count);
    }
}

static void write_buckets(aw_buf_t *b, const char *name, const uint64_t *counts,
                          const double *bounds, size_t n, double scale, double sum,
                          uint64_t count)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i < n; i++) {
        cumulative += counts[i];
        aw_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i] * scale,
                      (unsigned long long)cumulative);
    }
    aw_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                  name, (unsigned long long)count, name, sum, name,
                  (unsigned long long)count);
}

static void write_store(aw_buf_t *b, const aw_store_t *store)
{
    aw_store_info_t in;
    aw_store_info(store, &in);
    family(b, "awaitd_store_commit_duration_seconds", "histogram",
           "Time from a batch being handed to the writer thread to its commit.");
    write_buckets(b, "awaitd_store_commit_duration_seconds", in.latency,
                  aw_store_latency_bounds, AW_STORE_LATENCY_BUCKETS, 1e-3,
                  in.commit_ms_sum / 1000, in.commits);
    family(b, "awaitd_store_batch_records", "histogram",
           "Records (task writes and deletes) per committed transaction.");
    write_buckets(b, "awaitd_store_batch_records", in.batch, aw_store_batch_bounds,
                  AW_STORE_BATCH_BUCKETS, 1, (double)in.records, in.commits);
    family(b, "awaitd_store_commit_failures_total", "counter",
           "Transactions that failed (disk full, I/O error).");
    aw_buf_printf(b, "awaitd_store_commit_failures_total %llu\n",
                  (unsigned long long)in.failures);
    family(b, "awaitd_store_bytes", "gauge", "Size of the database and its write-ahead log.");
    aw_buf_printf(b, "awaitd_store_bytes %llu\n", (unsigned long long)in.bytes);
}

/* The http kind's transfers and the webhooks' deliveries. */
static void write_outgoing(aw_buf_t *b, const aw_engine_t *e, const aw_notify_t *n)
{
    static const char *const classes[AW_HTTP_RESULT_CLASSES] = {
        "2xx", "3xx", "4xx", "5xx", "error" };
    aw_http_stats_t hs;
    aw_http_stats(e, &hs);
    family(b, "awaitd_http_transfers_in_flight", "gauge", "Transfers of http tasks under way.");
    aw_buf_printf(b, "awaitd_http_transfers_in_flight %u\n", hs.in_flight);
    family(b, "awaitd_http_results_total", "counter",
           "http tasks that got an answer, by status class; error: a transport failure.");
    for (int i = 0; i < AW_HTTP_RESULT_CLASSES; i++)
        aw_buf_printf(b, "awaitd_http_results_total{class=\"%s\"} %llu\n", classes[i],
                      (unsigned long long)hs.results[i]);
    if (!n)
        return;
    aw_notify_stats_t ns;
    aw_notify_stats(n, &ns);
    family(b, "awaitd_notify_transfers_in_flight", "gauge", "Webhook attempts under way.");
    aw_buf_printf(b, "awaitd_notify_transfers_in_flight %u\n", ns.in_flight);
    family(b, "awaitd_notify_pending", "gauge",
           "Webhook deliveries not ended (waiting for a commit, a slot, a retry, or in flight).");
    aw_buf_printf(b, "awaitd_notify_pending %llu\n", (unsigned long long)ns.pending);
    family(b, "awaitd_notify_deliveries_total", "counter",
           "Webhook outcomes: delivered, retried (an attempt to be tried again), failed.");
    aw_buf_printf(b, "awaitd_notify_deliveries_total{outcome=\"delivered\"} %llu\n"
                  "awaitd_notify_deliveries_total{outcome=\"retried\"} %llu\n"
                  "awaitd_notify_deliveries_total{outcome=\"failed\"} %llu\n",
                  (unsigned long long)ns.delivered, (unsigned long long)ns.retried,
                  (unsigned long long)ns.failed);
}

void metrics_write(aw_buf_t *b, const aw_engine_t *e, const struct metrics_http *http)
{
    aw_engine_stats_t st;
    aw_engine_stats(e, &st);

    family(b, "awaitd_tasks_created_total", "counter", "Tasks created, by kind.");
    for (size_t k = 0; k < st.nkinds; k++)
        aw_buf_printf(b, "awaitd_tasks_created_total{kind=\"%s\"} %llu\n",
                      st.kinds[k].kind->name, (unsigned long long)st.kinds[k].created);

    family(b, "awaitd_tasks_finished_total", "counter", "Tasks finished, by kind and final state.");
    for (size_t k = 0; k < st.nkinds; k++)
        for (int s = AW_SUCCEEDED; s < AW_NSTATES; s++)
            aw_buf_printf(b, "awaitd_tasks_finished_total{kind=\"%s\",state=\"%s\"} %llu\n",
                          st.kinds[k].kind->name, aw_task_state_name((aw_task_state_t)s),
                          (unsigned long long)st.kinds[k].finished[s]);

    family(b, "awaitd_task_retries_total", "counter",
           "Attempts that failed or timed out and went back to pending for another.");
    aw_buf_printf(b, "awaitd_task_retries_total %llu\n", (unsigned long long)st.retries);

    family(b, "awaitd_tasks", "gauge", "Tasks held, by state (finished ones until forgotten).");
    for (int s = 0; s < AW_NSTATES; s++)
        aw_buf_printf(b, "awaitd_tasks{state=\"%s\"} %llu\n",
                      aw_task_state_name((aw_task_state_t)s), (unsigned long long)st.held[s]);

    family(b, "awaitd_http_requests_total", "counter", "HTTP responses sent, by status code.");
    for (unsigned c = 100; c < 600; c++)
        if (responses[c])
            aw_buf_printf(b, "awaitd_http_requests_total{code=\"%u\"} %llu\n",
                          c, (unsigned long long)responses[c]);

    write_latency(b);

    family(b, "awaitd_waiters", "gauge", "Open wait requests (single and many).");
    aw_buf_printf(b, "awaitd_waiters %llu\n", (unsigned long long)st.waiters);

    family(b, "awaitd_http_connections", "gauge", "Open HTTP connections.");
    aw_buf_printf(b, "awaitd_http_connections %u\n", http->open_connections);

    family(b, "awaitd_sse_clients", "gauge", "Open GET /v1/events streams.");
    aw_buf_printf(b, "awaitd_sse_clients %u\n", http->sse_clients);

    family(b, "awaitd_loop_lag_seconds", "gauge",
           "How late the event loop last served a 500 ms timer.");
    aw_buf_printf(b, "awaitd_loop_lag_seconds %.3f\n", (double)lag_last_ms / 1000);
    family(b, "awaitd_loop_lag_max_seconds", "gauge", "The largest loop lag seen since start.");
    aw_buf_printf(b, "awaitd_loop_lag_max_seconds %.3f\n", (double)lag_max_ms / 1000);

    if (http->store)
        write_store(b, http->store);
    write_outgoing(b, e, http->notify);

    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    aw_buf_printf(b, "process_resident_memory_bytes %lld\n", resident_bytes());
}
