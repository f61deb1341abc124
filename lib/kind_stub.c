/*
 * kind_stub.c — `http` before it is built: it checks the shape of args
 * exactly as the contract states (so a malformed request is a 400 even
 * while the kind is disabled, as the contract orders) and can never be
 * enabled. It is replaced by the real kind in its own file, as `exec` was
 * (kind_exec.c).
 */
#include <stdio.h>

#include "engine.h"
#include "errors.h"

static int need_string_map(json_t *args, const char *key, char *err, size_t errlen)
{
    json_t *m = json_object_get(args, key), *v;
    const char *k;
    if (!m)
        return 0;
    if (!json_is_object(m))
        goto bad;
    json_object_foreach(m, k, v)
        if (!json_is_string(v))
            goto bad;
    return 0;
bad:
    snprintf(err, errlen, "args.%s must be an object of strings", key);
    return AW_EINVAL;
}

static int need_optional_string(json_t *args, const char *key, char *err, size_t errlen)
{
    json_t *v = json_object_get(args, key);
    if (v && !json_is_string(v)) {
        snprintf(err, errlen, "args.%s must be a string", key);
        return AW_EINVAL;
    }
    return 0;
}

static int http_prepare(aw_engine_t *e, aw_task_t *t, json_t *args,
                        char *err, size_t errlen)
{
    (void)e;
    (void)t;
    if (!json_is_string(json_object_get(args, "url"))) {
        snprintf(err, errlen, "http needs args.url, a string");
        return AW_EINVAL;
    }
    int rc = need_optional_string(args, "method", err, errlen);
    if (!rc) rc = need_string_map(args, "headers", err, errlen);
    if (!rc) rc = need_optional_string(args, "body", err, errlen);
    return rc ? rc : AW_EDISABLED;
}

/* Never reached: prepare refuses every request. */
static void stub_start(aw_engine_t *e, aw_task_t *t)
{
    aw_task_fail(e, t, AW_ERR_TASK, "kind not available in this build", NULL);
}

static void stub_wake(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    (void)t;
}

static int stub_cancel(aw_engine_t *e, aw_task_t *t)
{
    (void)e;
    (void)t;
    return 0;
}

const aw_kind_t aw_kind_http_stub = {
    .name = "http", .prepare = http_prepare, .start = stub_start, .start_after_commit = 1,
    .wake = stub_wake, .cancel = stub_cancel,
};
