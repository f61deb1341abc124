/*
 * waiter.h — awaiting one or many tasks, with a timeout (asyncio.wait and
 * asyncio.wait_for).
 *
 * A waiter is a callback fired exactly once: when its condition holds or its
 * timeout passes. It holds a reference on each task, so the tasks stay
 * readable in the callback even if they were forgotten meanwhile. Timeouts
 * live in the engine's deadline heap (16 bytes each), not in a libevent
 * timer per waiter.
 *
 * With cancel_on_timeout (asyncio.wait_for), a timeout cancels the tasks
 * not yet done and the waiter keeps waiting, without a timeout, until each
 * has really finished; kinds bound that time (an exec job's kill grace).
 */
#ifndef AW_WAITER_H
#define AW_WAITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

struct aw_engine;
typedef struct aw_waiter aw_waiter_t;

typedef enum aw_return_when {
    AW_RETURN_ALL = 0,          /* ALL_COMPLETED */
    AW_RETURN_FIRST,            /* FIRST_COMPLETED */
    AW_RETURN_FIRST_EXCEPTION,  /* FIRST_EXCEPTION */
} aw_return_when_t;

/* Called once, from inside the engine (a timer, or whatever finished a
 * task). The waiter is freed right after the callback returns. */
typedef void (*aw_wait_cb)(aw_waiter_t *w, void *arg);

/* Starts waiting on n tasks (n >= 1; a task listed twice counts once).
 * timeout_ms < 0 means no timeout.
 * Returns 1 when there is nothing to wait for (the condition holds, or
 * timeout_ms == 0 and nothing must be waited out): no waiter is made and
 * cb is never called. Returns 0 with *out set, or -ENOMEM. */
int  aw_wait(struct aw_engine *e, aw_task_t *const *tasks, size_t n,
             aw_return_when_t rw, int64_t timeout_ms, bool cancel_on_timeout,
             aw_wait_cb cb, void *arg, aw_waiter_t **out);
/* Frees a waiter that has not fired; its callback is never called. */
void aw_wait_abandon(aw_waiter_t *w);
/* Parses "ALL_COMPLETED" etc.; -1 when unknown. */
int  aw_return_when_parse(const char *s);

#endif
