/*
 * metrics.c — Prometheus text exposition (see metrics.h). Every family has
 * HELP and TYPE lines; label values are fixed strings (kinds, states, status
 * codes), so they never need escaping.
 */
#include <stdint.h>

#include "metrics.h"

static uint64_t responses[600];

void metrics_count_status(unsigned status)
{
    if (status < 600)
        responses[status]++;
}

static void family(aw_buf_t *b, const char *name, const char *type, const char *help)
{
    aw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_write(aw_buf_t *b, const aw_engine_t *e, unsigned open_connections)
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

    family(b, "awaitd_tasks", "gauge", "Tasks held, by state (finished ones until forgotten).");
    for (int s = 0; s < AW_NSTATES; s++)
        aw_buf_printf(b, "awaitd_tasks{state=\"%s\"} %llu\n",
                      aw_task_state_name((aw_task_state_t)s), (unsigned long long)st.held[s]);

    family(b, "awaitd_http_requests_total", "counter", "HTTP responses sent, by status code.");
    for (unsigned c = 100; c < 600; c++)
        if (responses[c])
            aw_buf_printf(b, "awaitd_http_requests_total{code=\"%u\"} %llu\n",
                          c, (unsigned long long)responses[c]);

    family(b, "awaitd_waiters", "gauge", "Open wait requests (single and many).");
    aw_buf_printf(b, "awaitd_waiters %llu\n", (unsigned long long)st.waiters);

    family(b, "awaitd_http_connections", "gauge", "Open HTTP connections.");
    aw_buf_printf(b, "awaitd_http_connections %u\n", open_connections);
}
