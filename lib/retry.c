/*
 * retry.c — the retry policy of a task (see retry.h).
 *
 * The policy is kept twice on purpose: as numbers the engine computes
 * with, and as the normalized JSON text the store writes, so a restart
 * reads back exactly the numbers the create was given (and a policy with
 * defaults filled in shows what the daemon will do).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "errors.h"
#include "json_text.h"
#include "retry.h"

static int bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return AW_EINVAL;
}

/* A member that must be a finite number in [lo, hi] when present. */
static int number(json_t *o, const char *key, double lo, double hi, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < lo || d > hi)
        return -1;
    *out = d;
    return 1;
}

int aw_retry_parse(json_t *v, aw_task_retry_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(v))
        return bad(err, errlen, "retry must be an object {\"attempts\", \"backoff\", "
                   "\"factor\", \"max_backoff\"}");
    json_t *a = json_object_get(v, "attempts");
    json_int_t attempts = 1;
    if (a && !json_is_null(a)) {
        if (!json_is_integer(a) || json_integer_value(a) < 1 ||
            json_integer_value(a) > AW_RETRY_MAX_ATTEMPTS)
            return bad(err, errlen, "retry.attempts must be an integer from 1 to 1000");
        attempts = json_integer_value(a);
    }
    double backoff = AW_RETRY_DEFAULT_BACKOFF, factor = AW_RETRY_DEFAULT_FACTOR, max = 0;
    if (number(v, "backoff", 0, AW_RETRY_MAX_SECONDS, &backoff) < 0)
        return bad(err, errlen, "retry.backoff must be a finite number of seconds from 0 "
                   "to 31536000");
    if (number(v, "factor", 1, 1e6, &factor) < 0)
        return bad(err, errlen, "retry.factor must be a finite number from 1 to 1000000");
    int has_max = number(v, "max_backoff", 0, AW_RETRY_MAX_SECONDS, &max);
    if (has_max < 0)
        return bad(err, errlen, "retry.max_backoff must be a finite number of seconds "
                   "from 0 to 31536000");
    /* The default cap never refuses a long first backoff it was not
     * asked about: it is then the backoff itself. */
    if (!has_max)
        max = backoff > AW_RETRY_DEFAULT_MAX ? backoff : AW_RETRY_DEFAULT_MAX;
    if (max < backoff)
        return bad(err, errlen, "retry.max_backoff must be at least retry.backoff");
    out->attempts = (uint32_t)attempts;
    out->attempt = 1;
    out->backoff_ms = aw_seconds_to_ms(backoff);
    out->max_backoff_ms = aw_seconds_to_ms(max);
    out->factor = factor;
    json_t *norm = json_pack("{sIsfsfsf}", "attempts", attempts, "backoff", backoff,
                             "factor", factor, "max_backoff", max);
    aw_buf_t b;
    aw_buf_init(&b);
    if (norm)
        aw_json_write(&b, norm);
    json_decref(norm);
    if (!norm || !(out->policy = aw_buf_steal(&b, NULL))) {
        aw_buf_close(&b);
        return -ENOMEM;
    }
    return 0;
}

int aw_retry_load(const char *policy, aw_task_retry_t *out, char *err, size_t errlen)
{
    json_t *v = json_loads(policy, 0, NULL);
    int rc = v ? aw_retry_parse(v, out, err, errlen) : bad(err, errlen, "retry is not JSON");
    json_decref(v);
    return rc;
}

bool aw_retry_wants(int state, int type)
{
    (void)type;
    return state == AW_FAILED || state == AW_TIMED_OUT;
}

int64_t aw_retry_delay_ms(const aw_task_retry_t *r, uint32_t n)
{
    /* In doubles: factor^(n-1) may pass any integer; the cap bounds it. */
    double ms = (double)r->backoff_ms * pow(r->factor, n > 0 ? (double)(n - 1) : 0);
    if (!(ms < (double)r->max_backoff_ms))
        return r->max_backoff_ms;
    return (int64_t)ceil(ms);
}
