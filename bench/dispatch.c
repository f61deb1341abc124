/*
 * dispatch.c — what priorities and delays cost the engine, measured in
 * process (no HTTP, no store): the figure behind "1,000,000 pending tasks
 * across priorities and 100,000 delayed tasks must not make a dispatch or
 * a tick O(n)".
 *
 * For each mode (every task priority 0; priorities spread over
 * -100..100) it creates N pending sleep tasks behind one running task in a
 * queue of concurrency 1 and reports creates/s; then it finishes the
 * running task K times and reports the latency of a start (the time from
 * the slot freeing to the next task running: a heap pop and a start) and
 * of a cancel of a pending task from the middle (a heap removal). Then
 * D delayed tasks: creates/s, the cost of a tick with none due, and of
 * one that starts one task.
 *
 * Time is the engine's fake clock (clock.h seam) so that deadlines come
 * when the program says; durations are measured with CLOCK_MONOTONIC.
 * Output: one "name value" line per figure (bench/run reads them).
 * Usage: dispatch [N [D]]   (defaults 1000000 and 100000)
 */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "engine.h"
#include "queue.h"

static int64_t fake_mono_ms = 5000000, fake_wall_ms = 1700000000000LL;
static int64_t mono(void) { return fake_mono_ms; }
static int64_t wall(void) { return fake_wall_ms; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static aw_task_t *make(aw_engine_t *e, json_t *args, const char *queue, int priority,
                       int64_t not_before)
{
    aw_task_spec_t spec = { .kind = "sleep", .args = args, .queue = queue,
                            .timeout_ms = -1, .priority = priority,
                            .not_before = not_before };
    aw_task_t *t = NULL;
    char err[256];
    if (aw_task_create(e, &spec, &t, err, sizeof err) != 0) {
        fprintf(stderr, "dispatch: create failed: %s\n", err);
        exit(1);
    }
    return t;
}

static aw_task_t *last_started;
static void on_task(void *arg, aw_task_event_t ev, aw_task_t *t)
{
    (void)arg;
    if (ev == AW_TASK_CHANGED && t->state == AW_RUNNING)
        last_started = t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run_mode(const char *mode, long n, bool spread)
{
    struct event_base *base = event_base_new();
    aw_engine_limits_t lim = { .retention_ms = 3600000 };
    aw_engine_t *e = aw_engine_new(base, &lim);
    aw_engine_add_kind(e, &aw_kind_sleep, true);
    aw_engine_set_queue(e, "one", 1);
    aw_engine_listen(e, on_task, NULL);
    json_t *forever = json_pack("{s:i}", "seconds", 1000000);
    aw_task_t *running = make(e, forever, "one", 0, 0);
    srand(1);
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        make(e, forever, "one", spread ? rand() % 201 - 100 : 0, 0);
    double t1 = now_s();
    printf("%s.creates_per_s %.0f\n", mode, (double)n / (t1 - t0));

    /* Starts: cancel the running task; the heap's top starts inside the
     * cancel (the listener names it). Timed: the finish, the pop and the
     * start. */
    enum { K = 2000 };
    static double lat[K], rem[K];
    for (int k = 0; k < K; k++) {
        last_started = NULL;
        double a = now_s();
        aw_task_cancel(e, running);
        lat[k] = (now_s() - a) * 1e6;
        if (!(running = last_started)) {
            fprintf(stderr, "dispatch: no task started\n");
            exit(1);
        }
    }
    qsort(lat, K, sizeof lat[0], cmp_double);
    printf("%s.start_us_p50 %.2f\n", mode, lat[K / 2]);
    printf("%s.start_us_p99 %.2f\n", mode, lat[K * 99 / 100]);

    /* Cancels of pending tasks spread over the whole heap (a removal
     * from anywhere). The walk to find them is not timed. */
    long step = n / K > 1 ? n / K : 1, i = 0;
    int done = 0;
    for (aw_task_t *t = aw_task_after(e, NULL); t && done < K; i++) {
        aw_task_t *next = aw_task_next(t);
        if (i % step == 0 && t->state == AW_PENDING) {
            double a = now_s();
            aw_task_cancel(e, t);
            rem[done++] = (now_s() - a) * 1e6;
        }
        t = next;
    }
    qsort(rem, (size_t)done, sizeof rem[0], cmp_double);
    printf("%s.cancel_pending_us_p50 %.2f\n", mode, rem[done / 2]);
    printf("%s.pending_tasks %llu\n", mode,
           (unsigned long long)aw_engine_queue(e, "one")->npending);
    json_decref(forever);
    aw_engine_free(e);
    event_base_free(base);
}

static void run_delayed(long d)
{
    struct event_base *base = event_base_new();
    aw_engine_limits_t lim = { .retention_ms = 3600000 };
    aw_engine_t *e = aw_engine_new(base, &lim);
    aw_engine_add_kind(e, &aw_kind_sleep, true);
    json_t *forever = json_pack("{s:i}", "seconds", 1000000);
    srand(2);
    double t0 = now_s();
    for (long i = 0; i < d; i++)
        make(e, forever, NULL, 0, fake_wall_ms + 1000 + rand() % d);  /* ~1 a ms */
    double t1 = now_s();
    printf("delayed.creates_per_s %.0f\n", (double)d / (t1 - t0));
    enum { K = 2000 };
    static double idle[K], due[K];
    for (int k = 0; k < K; k++) {
        double a = now_s();
        aw_engine_run_due(e);           /* nothing due */
        idle[k] = (now_s() - a) * 1e6;
    }
    /* Ticks of 1 ms, each starting what that millisecond made due
     * (about one task). */
    long started = 0;
    const aw_queue_t *q = aw_engine_queue(e, "default");
    fake_mono_ms += 1000;
    fake_wall_ms += 1000;
    for (int k = 0; k < K; k++) {
        uint64_t before = q->running;
        fake_mono_ms += 1;
        fake_wall_ms += 1;
        double a = now_s();
        aw_engine_run_due(e);
        due[k] = (now_s() - a) * 1e6;
        started += (long)(q->running - before);
    }
    qsort(idle, K, sizeof idle[0], cmp_double);
    qsort(due, K, sizeof due[0], cmp_double);
    printf("delayed.tick_idle_us_p50 %.2f\n", idle[K / 2]);
    printf("delayed.tick_due_us_p50 %.2f\n", due[K / 2]);
    printf("delayed.tick_due_us_p99 %.2f\n", due[K * 99 / 100]);
    printf("delayed.started_per_tick %.2f\n", (double)started / K);
    json_decref(forever);
    aw_engine_free(e);
    event_base_free(base);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long d = argc > 2 ? atol(argv[2]) : 100000;
    aw_clock_set_source(mono, wall);
    run_mode("prio0", n, false);
    run_mode("prio_spread", n, true);
    run_delayed(d);
    return 0;
}
