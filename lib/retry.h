/*
 * retry.h — a task's retry policy: the "retry" member of a create, its
 * stored text, which ends of an attempt it retries, and the backoff
 * before the next attempt.
 *
 * The engine (engine.c) decides and requeues; this file only knows the
 * policy. Errors are values: AW_EINVAL with err set, or -ENOMEM.
 */
#ifndef AW_RETRY_H
#define AW_RETRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

/* Limits of the policy's numbers (contract: "retry values out of range"). */
#define AW_RETRY_MAX_ATTEMPTS    1000
#define AW_RETRY_MAX_SECONDS     31536000.0    /* backoff and max_backoff: a year */
#define AW_RETRY_DEFAULT_BACKOFF 1.0
#define AW_RETRY_DEFAULT_FACTOR  2.0
#define AW_RETRY_DEFAULT_MAX     300.0

/* Parses v, a create's "retry" (an object; members attempts, backoff,
 * factor, max_backoff, each optional; others are ignored), into *out with
 * attempt 1 and out->policy the normalized compact JSON (owned by the
 * caller: free it). Returns 0, AW_EINVAL with err set, or -ENOMEM. */
int aw_retry_parse(json_t *v, aw_task_retry_t *out, char *err, size_t errlen);
/* Reads back a stored policy text (made by aw_retry_parse): the same. */
int aw_retry_load(const char *policy, aw_task_retry_t *out, char *err, size_t errlen);
/* Whether an attempt that ended in state s with error type type is one
 * the policy retries: failed (any type) or timed_out; never cancelled.
 * (The contract's "dependency" failures are not retried either; that
 * type joins with the dependencies.) */
bool aw_retry_wants(int state, int type);
/* The wait after attempt n (1-based) failed: backoff * factor^(n-1),
 * at most max_backoff. */
int64_t aw_retry_delay_ms(const aw_task_retry_t *r, uint32_t n);

#endif
