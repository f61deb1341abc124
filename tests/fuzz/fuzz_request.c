/*
 * fuzz_request.c — libFuzzer target: the whole request path without
 * sockets. Method, URL, query, headers and body go through api_handle
 * (router, JSON validation, engine) over the fake transport of
 * fake_http.c, which aborts when an answer breaks the contract.
 *
 * Input: requests separated by a line "%%". Each request is
 *     METHOD TARGET\n          TARGET = path[?query], percent-encoded
 *     Name: value\n            headers, up to an empty line
 *     \n
 *     body                     the rest (absent if empty and no
 *                              Content-Length header)
 * Pseudo-methods drive time, clients and the configuration: "TICK MS"
 * moves the engine's clock forward MS milliseconds (sleeps end, waits
 * time out, finished tasks are forgotten); "CLOSE N" makes the client of
 * the N-th open connection go away; "SET KEY VALUE" changes a limit for
 * the rest of the input, as a reload would (max_tasks, retention_seconds,
 * max_wait_seconds, max_wait_ids, max_body_bytes, sleep 0|1, queue:NAME N,
 * and the edge's auth_token, cors_origins, allowed_hosts). "@@" anywhere
 * stands for the id of the last
 * task created (from the Location of its 201), so that a mutated input
 * can wait for, cancel and delete what it made.
 *
 * Each input gets a fresh engine (sleep on; exec and http registered but
 * disabled: a fuzzer must never run programs), memory only, on a fake
 * clock; at its end every open request is drained, as at shutdown, so
 * LeakSanitizer sees anything one input leaves behind.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "events.h"
#include "fake_http.h"
#include "kind.h"
#include "kind_exec.h"
#include "log.h"

#define MAX_REQUESTS 32
#define MAX_RECORD   (64 * 1024)

static struct config cfg;
static struct event_base *base;
static int64_t mono_now, wall_now;

static int64_t fake_mono(void) { return mono_now; }
static int64_t fake_wall(void) { return wall_now; }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init();
    log_set_level(LOG_LEVEL_ERROR);
    if (config_init(&cfg) < 0)
        abort();
    cfg.kind_sleep = true;
    cfg.kind_exec = false;
    cfg.kind_http = false;
    cfg.max_tasks = 64;
    cfg.max_body_bytes = 64 * 1024;
    base = event_base_new();
    if (!base)
        abort();
    mono_now = 5000000;
    wall_now = 1767225600000;           /* 2026-01-01 */
    aw_clock_set_source(fake_mono, fake_wall);
    api_init(NULL);
    return 0;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place, as MHD does for the path and, with '+' as
 * a space, for query arguments. A %00 ends the string, as it does there. */
static void unescape(char *s, bool plus)
{
    char *d = s;
    for (; *s; s++) {
        int h, l;
        if (*s == '%' && (h = hexval(s[1])) >= 0 && (l = hexval(s[2])) >= 0) {
            *d++ = (char)(h * 16 + l);
            s += 2;
        } else {
            *d++ = plus && *s == '+' ? ' ' : *s;
        }
    }
    *d = '\0';
}

/* Copies rec (len bytes) with "@@" replaced by id, NUL-terminated;
 * *outlen is the copy's length (NULs inside count). */
static char *substitute(const char *rec, size_t len, const char *id, size_t *outlen)
{
    size_t idl = strlen(id), n = 0;
    char *out = malloc(len * (idl > 2 ? idl : 2) / 2 + len + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (rec[i] == '@' && i + 1 < len && rec[i + 1] == '@') {
            memcpy(out + n, id, idl);
            n += idl;
            i++;
        } else {
            out[n++] = rec[i];
        }
    }
    out[n] = '\0';
    *outlen = n;
    return out;
}

static void advance(aw_engine_t *e, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms > 1000LL * 86400 * 365)
        ms = 1000LL * 86400 * 365;
    mono_now += ms;
    wall_now += ms;
    aw_engine_run_due(e);
}

/* "SET KEY VALUE": what a reload may change, on this input's copy of
 * the configuration. Values are clamped to what config.c would accept. */
static void set_option(struct config *c, aw_engine_t *e, char *kv)
{
    char *v = strchr(kv, ' ');
    if (!v)
        return;
    *v++ = '\0';
    double d = strtod(v, NULL);
    unsigned long long u = strtoull(v, NULL, 10);
    if (strcmp(kv, "max_tasks") == 0) {
        c->max_tasks = u ? u : 1;
    } else if (strcmp(kv, "retention_seconds") == 0) {
        c->retention_seconds = d >= 0 && d < 1e9 ? d : 0;
    } else if (strcmp(kv, "max_wait_seconds") == 0) {
        c->max_wait_seconds = d > 0 && d < 1e9 ? d : 1;
    } else if (strcmp(kv, "max_wait_ids") == 0) {
        c->max_wait_ids = u && u < 100000 ? (uint32_t)u : 1;
    } else if (strcmp(kv, "max_body_bytes") == 0) {
        c->max_body_bytes = u && u < MAX_RECORD ? (size_t)u : 1;
    } else if (strcmp(kv, "auth_token") == 0 || strcmp(kv, "cors_origins") == 0 ||
               strcmp(kv, "allowed_hosts") == 0) {
        /* The edge's strings; this input's copy points at static room
         * (cfg's own strings are freed once, by config_close). */
        static char room[3][128];
        int i = kv[0] == 'a' && kv[1] == 'u' ? 0 : kv[0] == 'c' ? 1 : 2;
        snprintf(room[i], sizeof room[i], "%s", v);
        char **slot = i == 0 ? &c->auth_token : i == 1 ? &c->cors_origins : &c->allowed_hosts;
        *slot = room[i];
        return;
    } else if (strcmp(kv, "sleep") == 0) {
        aw_engine_enable_kind(e, "sleep", u != 0);
    } else if (strncmp(kv, "queue:", 6) == 0) {
        const char *name = kv + 6;      /* config.c's rule for queue names */
        size_t len = strlen(name);
        if (len < 1 || len > 64 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "abcdefghijklmnopqrstuvwxyz0123456789_.-") != len)
            return;
        if (aw_engine_set_queue(e, name, (uint32_t)(u > 1000 ? 1000 : u)) < 0)
            abort();
        return;
    }
    aw_engine_limits_t lim = {
        .max_tasks = c->max_tasks,
        .retention_ms = (int64_t)(c->retention_seconds * 1000),
    };
    aw_engine_set_limits(e, &lim);
}

/* One record: parses it and runs it. raw holds n bytes (NULs included). */
static void run_record(struct http_server *s, struct config *c, aw_engine_t *e,
                       const char *raw, size_t n)
{
    size_t len;
    char *rec = substitute(raw, n, fake_last_id(s), &len);
    char *line_end = strchr(rec, '\n');
    char *rest = line_end ? line_end + 1 : rec + strlen(rec);
    if (line_end)
        *line_end = '\0';
    char root[] = "/";
    char *method = rec, *target = strchr(rec, ' ');
    if (target)
        *target++ = '\0';
    else
        target = root;

    if (strcmp(method, "TICK") == 0) {
        advance(e, strtoll(target, NULL, 10));
        free(rec);
        return;
    }
    if (strcmp(method, "SET") == 0) {
        set_option(c, e, target);
        free(rec);
        return;
    }
    if (strcmp(method, "CLOSE") == 0) {
        fake_close(s, (size_t)strtoul(target, NULL, 10));
        free(rec);
        return;
    }

    struct fake_request rq = { .method = method };
    char *q = strchr(target, '?');
    if (q)
        *q++ = '\0';
    unescape(target, false);
    rq.path = target;
    for (char *arg = q; arg && *arg && rq.nquery < FAKE_MAX_PAIRS;) {
        char *amp = strchr(arg, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(arg, '=');
        if (eq) {                        /* "?a" alone has no value: absent */
            *eq = '\0';
            unescape(arg, true);
            unescape(eq + 1, true);
            rq.query[rq.nquery++] = (struct fake_pair){ arg, eq + 1 };
        }
        arg = amp ? amp + 1 : NULL;
    }
    bool has_length = false;
    while (*rest && *rest != '\n') {
        char *nl = strchr(rest, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(rest, ':');
        if (colon && rq.nheaders < FAKE_MAX_PAIRS) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (strcasecmp(rest, "Content-Length") == 0)
                has_length = true;
            rq.headers[rq.nheaders++] = (struct fake_pair){ rest, v };
        }
        rest = nl ? nl + 1 : rest + strlen(rest);
    }
    if (*rest == '\n')
        rest++;
    /* The body may hold NULs (the head ends at the first one). */
    rq.body_len = len - (size_t)(rest - rec);
    rq.body = rq.body_len || has_length ? rest : NULL;
    fake_request(s, &rq, api_handle);
    free(rec);
}

static const char *find_sep(const char *p, const char *end)
{
    for (; p + 4 <= end; p++)
        if (p[0] == '\n' && p[1] == '%' && p[2] == '%' && p[3] == '\n')
            return p;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_RECORD)
        return -1;
    aw_engine_limits_t lim = {
        .max_tasks = cfg.max_tasks,
        .retention_ms = (int64_t)(cfg.retention_seconds * 1000),
    };
    aw_engine_t *e = aw_engine_new(base, &lim);
    if (!e ||
        aw_engine_add_kind(e, &aw_kind_sleep, true) < 0 ||
        aw_engine_add_kind(e, &aw_kind_exec, false) < 0 ||
        aw_engine_add_kind(e, &aw_kind_http, false) < 0 ||
        aw_engine_set_queue(e, "serial", 1) < 0 ||
        aw_engine_set_queue(e, "pair", 2) < 0)
        abort();
    struct config run_cfg = cfg;        /* SET changes this input's copy */
    struct http_server *s = fake_server_new(base, &run_cfg, e);

    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < MAX_REQUESTS && p < end; i++) {
        const char *sep = find_sep(p, end);
        const char *rec_end = sep ? sep : end;
        run_record(s, &run_cfg, e, p, (size_t)(rec_end - p));
        event_base_loop(base, EVLOOP_NONBLOCK);
        fake_pump(s);
        p = sep ? sep + 4 : end;
    }
    fake_pump(s);
    fake_server_free(s);
    events_free();
    aw_engine_free(e);
    event_base_loop(base, EVLOOP_NONBLOCK);
    return 0;
}
