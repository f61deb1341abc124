/*
 * config.c — reads awaitd.conf into a struct config.
 *
 * Every key is one line of the keys[] table (section, name, type, where it
 * is stored, lower bound, default), so config_init() takes its defaults from
 * the same place the parser checks values, and adding a key is one line.
 * libinih splits the file into keys and values; this file decides what they
 * mean. It never logs or exits: the first problem becomes a one-line
 * "FILE:LINE: ..." message and main() decides what to do with it. It knows
 * nothing about sockets: a host such as "localhost" stays a string that
 * main() resolves.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#define QUEUE_NAME_MAX 64
#define QUEUE_CHARS    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
/* RFC 6750 b64token, minus the trailing '=' padding checked separately. */
#define TOKEN_CHARS    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
/* Durations are turned into milliseconds and timestamps elsewhere; a bound
 * (about 31 years) keeps that arithmetic far from overflow. */
#define MAX_SECONDS    1e9
/* sizeof(struct sockaddr_un.sun_path) on Linux; config.c has no socket
 * headers of its own (main.c checks the two agree). */
#define UNIX_PATH_MAX  108
/* Host names in allowed_hosts and cors_origins. */
#define HOST_CHARS     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."

enum type {
    T_LISTEN,           /* HOST:PORT, parsed by config_set_listen() */
    T_TOKEN,            /* a bearer token, or empty */
    T_BOOL,
    T_LOG_LEVEL,
    T_U32,              /* decimal integers >= min */
    T_U64,
    T_SIZE,
    T_SECONDS,          /* a number >= 0 */
    T_SECONDS_POSITIVE, /* a number > 0 */
    T_ALLOW,            /* whitespace-separated absolute paths or globs */
    T_PATH_LIST,        /* colon-separated absolute directories */
    T_DIR,              /* a directory path, or empty */
    T_SYNC,             /* full or normal */
    T_FILE,             /* a file path, or empty */
    T_MODE,             /* octal permission bits, 0 to 0777 */
    T_GROUP,            /* a group name (resolved by main), or empty */
    T_ORIGINS,          /* whitespace-separated scheme://host[:port] */
    T_HOSTS,            /* whitespace-separated host names */
    T_HTTP_ALLOW,       /* whitespace-separated host[:port] patterns (the
                           http kind checks their form) */
    T_TOKENS,           /* whitespace-separated NAME:SCOPES:FILE */
};

#define OFF(field) offsetof(struct config, field)

static const struct key {
    const char *section;    /* "queue" stands for every [queue:NAME] */
    const char *name;
    enum type   type;
    size_t      offset;     /* in struct config, or struct config_queue for "queue" */
    uint64_t    min;        /* integers only */
    const char *def;        /* the default, as config/awaitd.conf writes it */
} keys[] = {
    { "server", "listen",            T_LISTEN,           0,                      0, "127.0.0.1:8080" },
    { "server", "auth_token",        T_TOKEN,            OFF(auth_token),        0, "" },
    { "server", "max_body_bytes",    T_SIZE,             OFF(max_body_bytes),    1, "1048576" },
    { "server", "max_json_depth",    T_U32,              OFF(max_json_depth),    1, "64" },
    { "server", "max_json_elements", T_U32,              OFF(max_json_elements), 1, "100000" },
    { "server", "max_connections",   T_U32,              OFF(max_connections),   1, "12000" },
    { "server", "max_connections_per_client", T_U32,    OFF(max_connections_per_client), 0, "0" },
    { "server", "idle_timeout_seconds", T_U32,          OFF(idle_timeout_seconds), 1, "120" },
    { "server", "request_timeout_seconds", T_SECONDS_POSITIVE, OFF(request_timeout_seconds), 0, "30" },
    { "server", "log_level",         T_LOG_LEVEL,        OFF(log_level),         0, "info" },
    { "server", "access_log",        T_BOOL,             OFF(access_log),        0, "false" },
    { "server", "shutdown_grace_seconds", T_SECONDS,    OFF(shutdown_grace_seconds), 0, "10" },
    { "server", "tls_cert",          T_FILE,             OFF(tls_cert),          0, "" },
    { "server", "tls_key",           T_FILE,             OFF(tls_key),           0, "" },
    { "server", "unix_mode",         T_MODE,             OFF(unix_mode),         0, "0660" },
    { "server", "unix_group",        T_GROUP,            OFF(unix_group),        0, "" },
    { "server", "auth_token_file",   T_FILE,             OFF(auth_token_file),   0, "" },
    { "server", "cors_origins",      T_ORIGINS,          OFF(cors_origins),      0, "" },
    { "server", "allowed_hosts",     T_HOSTS,            OFF(allowed_hosts),     0, "" },
    { "server", "ui",                T_BOOL,             OFF(ui),                0, "true" },
    { "server", "max_list_bytes",    T_SIZE,             OFF(max_list_bytes),    1, "8388608" },
    { "server", "max_list_scan",     T_U32,              OFF(max_list_scan),     1, "10000" },
    { "auth",   "tokens",            T_TOKENS,           OFF(auth_tokens),       0, "" },
    { "tasks",  "max_tasks",         T_U64,              OFF(max_tasks),         1, "1000000" },
    { "tasks",  "retention_seconds", T_SECONDS,          OFF(retention_seconds), 0, "3600" },
    { "tasks",  "max_task_bytes",    T_U64,              OFF(max_task_bytes),    0, "1073741824" },
    { "tasks",  "max_result_bytes",  T_U64,              OFF(max_result_bytes),  0, "1048576" },
    { "tasks",  "max_group_tasks",   T_U64,              OFF(max_group_tasks),   1, "1000" },
    { "tasks",  "max_wait_seconds",  T_SECONDS_POSITIVE, OFF(max_wait_seconds),  0, "300" },
    { "tasks",  "max_wait_ids",      T_U32,              OFF(max_wait_ids),      1, "1000" },
    { "kinds",  "sleep",             T_BOOL,             OFF(kind_sleep),        0, "true" },
    { "kinds",  "exec",              T_BOOL,             OFF(kind_exec),         0, "false" },
    { "kinds",  "http",              T_BOOL,             OFF(kind_http),         0, "false" },
    { "exec",   "allow",             T_ALLOW,            OFF(exec_allow),        0, "" },
    { "exec",   "kill_grace_seconds", T_SECONDS,         OFF(exec_kill_grace_seconds), 0, "5" },
    { "exec",   "max_output_bytes",  T_SIZE,             OFF(exec_max_output),   0, "1048576" },
    { "exec",   "allow_root",        T_BOOL,             OFF(exec_allow_root),   0, "false" },
    { "exec",   "allow_loader_env",  T_BOOL,             OFF(exec_allow_loader_env), 0, "false" },
    { "exec",   "path",              T_PATH_LIST,        OFF(exec_path),         0, "/usr/local/bin:/usr/bin:/bin" },
    { "http",   "allow",             T_HTTP_ALLOW,       OFF(http_allow),        0, "" },
    { "http",   "max_transfers",     T_U32,              OFF(http_max_transfers), 1, "50" },
    { "http",   "max_response_bytes", T_SIZE,            OFF(http_max_response_bytes), 0, "1048576" },
    { "http",   "max_redirects",     T_U32,              OFF(http_max_redirects), 0, "5" },
    { "http",   "max_request_body_bytes", T_SIZE,        OFF(http_max_request_body_bytes), 0, "1048576" },
    { "http",   "max_request_headers", T_U32,            OFF(http_max_request_headers), 0, "64" },
    { "http",   "connect_timeout_seconds", T_SECONDS_POSITIVE, OFF(http_connect_timeout_seconds), 0, "10" },
    { "http",   "insecure",          T_BOOL,             OFF(http_insecure),     0, "false" },
    { "http",   "ca_file",           T_FILE,             OFF(http_ca_file),      0, "" },
    { "notify", "allow",             T_HTTP_ALLOW,       OFF(notify_allow),      0, "" },
    { "notify", "secret",            T_TOKEN,            OFF(notify_secret),     0, "" },
    { "notify", "secret_file",       T_FILE,             OFF(notify_secret_file), 0, "" },
    { "notify", "max_attempts",      T_U32,              OFF(notify_max_attempts), 1, "8" },
    { "notify", "min_backoff_seconds", T_SECONDS_POSITIVE, OFF(notify_min_backoff_seconds), 0, "1" },
    { "notify", "max_backoff_seconds", T_SECONDS_POSITIVE, OFF(notify_max_backoff_seconds), 0, "300" },
    { "notify", "max_transfers",     T_U32,              OFF(notify_max_transfers), 1, "16" },
    { "notify", "timeout_seconds",   T_SECONDS_POSITIVE, OFF(notify_timeout_seconds), 0, "10" },
    { "notify", "connect_timeout_seconds", T_SECONDS_POSITIVE, OFF(notify_connect_timeout_seconds), 0, "10" },
    { "notify", "insecure",          T_BOOL,             OFF(notify_insecure),   0, "false" },
    { "notify", "ca_file",           T_FILE,             OFF(notify_ca_file),    0, "" },
    { "storage", "state_dir",        T_DIR,              OFF(state_dir),         0, "" },
    { "storage", "sync",             T_SYNC,             OFF(sync_full),         0, "full" },
    { "queue",  "concurrency",       T_U32, offsetof(struct config_queue, concurrency), 0, "0" },
};

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_DEBUG] = "debug",
};

static const struct { const char *word; bool value; } bool_words[] = {
    { "true", true }, { "false", false }, { "yes", true }, { "no", false },
    { "on", true },   { "off", false },   { "1", true },   { "0", false },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The state of one config_load(). inih does not tell the handler its line
 * number (INI_HANDLER_LINENO is 0 in Debian's build) and cuts section names
 * at 49 characters, so our own reader counts lines and tracks sections. */
struct parse {
    struct config *c;
    const char    *path;
    FILE          *f;
    unsigned       line;        /* lines read so far = the line being parsed */
    const char    *section;     /* a keys[].section, or NULL before the first */
    size_t         queue;       /* index in c->queues when section is "queue" */
    bool           key_seen;    /* a key was read since the last section line */
    bool           failed;
    unsigned       err_line;
    char          *err;
    size_t         errlen;
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Records the first error only: the reader stops at it, but a message for a
 * later line must never replace the one the operator needs to fix first. */
__attribute__((format(printf, 2, 3)))
static void fail(struct parse *p, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->failed)
        return;
    p->failed = true;
    p->err_line = p->line;
    if (p->errlen == 0)
        return;
    n = snprintf(p->err, p->errlen, "%s:%u: ", p->path, p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static int replace_string(char **slot, const char *value, char *why, size_t len)
{
    char *dup = strdup(value);

    if (!dup) {
        set_err(why, len, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = dup;
    return 0;
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    /* strtoull would skip spaces and accept "+1" and "-1" (as a huge value). */
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, bool positive, double *out)
{
    double v;
    char *end;

    /* strtod would also take signs, hex, "inf" and "nan"; a duration is a
     * plain decimal number such as 300, 0.5 or 1e3. */
    if (!isdigit((unsigned char)*s) && *s != '.')
        return -1;
    if (s[strspn(s, "0123456789.eE+-")] != '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > MAX_SECONDS
        || (positive && v <= 0))
        return -1;
    *out = v;
    return 0;
}

static int int_error(char *why, size_t len, uint64_t min, uint64_t max, const char *v)
{
    if (max == UINT64_MAX)
        set_err(why, len, "expected an integer >= %" PRIu64 ", got \"%s\"", min, v);
    else
        set_err(why, len, "expected an integer from %" PRIu64 " to %" PRIu64
                ", got \"%s\"", min, max, v);
    return -1;
}

/* One [auth] tokens entry, NAME:SCOPES:FILE, pointing into the value. */
struct token_entry {
    const char *name, *file;
    size_t      name_len, file_len;
    unsigned    scopes;
};

static const struct { const char *word; unsigned bit; } scope_words[] = {
    { "read", CONFIG_SCOPE_READ }, { "write", CONFIG_SCOPE_WRITE },
    { "exec", CONFIG_SCOPE_EXEC }, { "http", CONFIG_SCOPE_HTTP },
};

/* Parses the n bytes at s as NAME:SCOPES:FILE (SCOPES: read, write, exec,
 * http separated by commas). FILE is the rest, so it may hold ':'.
 * Returns 0, or -1 with why set. */
static int parse_token_entry(const char *s, size_t n, struct token_entry *e,
                             char *why, size_t len)
{
    const char *c1 = memchr(s, ':', n);
    const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - s)) : NULL;
    size_t i;

    if (!c1 || !c2 || c1 == s || c2 + 1 == s + n ||
        strspn(s, QUEUE_CHARS) < (size_t)(c1 - s)) {
        set_err(why, len, "expected NAME:SCOPES:FILE entries (NAME from A-Z a-z 0-9 _ . -,"
                " SCOPES such as read,write,exec), got \"%.*s\"", (int)n, s);
        return -1;
    }
    e->name = s;
    e->name_len = (size_t)(c1 - s);
    e->file = c2 + 1;
    e->file_len = (size_t)(s + n - e->file);
    e->scopes = 0;
    for (const char *w = c1 + 1; w < c2; ) {
        size_t wl = strcspn(w, ",:");
        for (i = 0; i < COUNT(scope_words); i++)
            if (strlen(scope_words[i].word) == wl && memcmp(scope_words[i].word, w, wl) == 0)
                break;
        if (i == COUNT(scope_words)) {
            set_err(why, len, "token '%.*s': unknown scope \"%.*s\" (expected read, write,"
                    " exec or http)", (int)e->name_len, s, (int)wl, w);
            return -1;
        }
        e->scopes |= scope_words[i].bit;
        w += wl + (w[wl] == ',');
    }
    if (!e->scopes) {
        set_err(why, len, "token '%.*s': no scopes", (int)e->name_len, s);
        return -1;
    }
    return 0;
}

/* Reads a bearer token from the file at path: its content with trailing
 * whitespace (the usual final newline) removed. The secret is never put
 * into a message. Returns 0 with *out allocated, or -1 with why set. */
static int read_token_file(const char *path, char **out, char *why, size_t len)
{
    char buf[4097];
    size_t n, k;
    FILE *f = fopen(path, "r");

    if (!f) {
        set_err(why, len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    if (ferror(f) || n == sizeof buf - 1) {
        set_err(why, len, "%s: %s", path, ferror(f) ? strerror(errno)
                : "longer than 4096 bytes; expected one bearer token");
        fclose(f);
        return -1;
    }
    fclose(f);
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
        n--;
    buf[n] = '\0';
    k = strspn(buf, TOKEN_CHARS);
    if (n == 0 || k == 0 || k + strspn(buf + k, "=") != n) {
        set_err(why, len, "%s: expected one bearer token (letters, digits and - . _ ~ + /)"
                " and nothing else", path);
        explicit_bzero(buf, sizeof buf);
        return -1;
    }
    *out = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    if (!*out) {
        set_err(why, len, "out of memory");
        return -1;
    }
    return 0;
}

static void free_tokens(struct config *c)
{
    for (size_t i = 0; i < c->ntokens; i++) {
        free(c->tokens[i].name);
        if (c->tokens[i].secret) {
            explicit_bzero(c->tokens[i].secret, strlen(c->tokens[i].secret));
            free(c->tokens[i].secret);
        }
    }
    free(c->tokens);
    c->tokens = NULL;
    c->ntokens = 0;
}

/* Reads the token files named by auth_token_file and [auth] tokens, once
 * the whole file is parsed (so the order of keys does not matter). Each
 * config_load reads them again: a SIGHUP picks up a rotated secret.
 * Returns 0, or -1 with err set. */
static int read_secrets(struct config *c, const char *path, char *err, size_t errlen)
{
    char why[CONFIG_ERR_SIZE];
    char *secret = NULL, file[4096];
    struct token_entry e;

    if (c->auth_token_file[0]) {
        if (c->auth_token[0]) {
            set_err(err, errlen, "%s: [server] auth_token and auth_token_file are both set;"
                    " keep one", path);
            return -1;
        }
        if (read_token_file(c->auth_token_file, &secret, why, sizeof why) < 0) {
            set_err(err, errlen, "%s: [server] auth_token_file: %s", path, why);
            return -1;
        }
        free(c->auth_token);
        c->auth_token = secret;
    }
    if (c->notify_secret_file[0]) {
        if (c->notify_secret[0]) {
            set_err(err, errlen, "%s: [notify] secret and secret_file are both set; keep one",
                    path);
            return -1;
        }
        if (read_token_file(c->notify_secret_file, &secret, why, sizeof why) < 0) {
            set_err(err, errlen, "%s: [notify] secret_file: %s", path, why);
            return -1;
        }
        free(c->notify_secret);
        c->notify_secret = secret;
    }
    free_tokens(c);
    for (const char *s = c->auth_tokens + strspn(c->auth_tokens, " \t"); *s;
         s += strspn(s, " \t")) {
        size_t n = strcspn(s, " \t");
        struct config_token *t;
        if (parse_token_entry(s, n, &e, why, sizeof why) < 0 ||
            e.file_len >= sizeof file) {
            set_err(err, errlen, "%s: [auth] tokens: %s", path, why);
            return -1;
        }
        memcpy(file, e.file, e.file_len);
        file[e.file_len] = '\0';
        if (read_token_file(file, &secret, why, sizeof why) < 0) {
            set_err(err, errlen, "%s: [auth] tokens: token '%.*s': %s", path,
                    (int)e.name_len, e.name, why);
            return -1;
        }
        t = realloc(c->tokens, (c->ntokens + 1) * sizeof *t);
        if (t)
            c->tokens = t;
        if (!t || !(c->tokens[c->ntokens].name = strndup(e.name, e.name_len))) {
            free(secret);
            set_err(err, errlen, "out of memory");
            return -1;
        }
        c->tokens[c->ntokens].scopes = e.scopes;
        c->tokens[c->ntokens++].secret = secret;
        s += n;
    }
    return 0;
}

/* Stores value v for key k in base (the config, or a queue). Returns 0, or
 * -1 with why set to "expected ..., got ..." or "out of memory"; on error
 * the stored value is unchanged. */
static int set_value(struct config *c, const struct key *k, void *base,
                     const char *v, char *why, size_t len)
{
    void *slot = (char *)base + k->offset;
    uint64_t u;
    double d;
    size_t i, n;

    switch (k->type) {
    case T_LISTEN:
        return config_set_listen(c, v, why, len);
    case T_TOKEN:
        /* Catches the usual slip of quoting the token, which inih would
         * keep as part of it. The value is not echoed: it is a secret. */
        n = strspn(v, TOKEN_CHARS);
        if ((*v != '\0' && n == 0) || v[n + strspn(v + n, "=")] != '\0') {
            set_err(why, len, "expected letters, digits and - . _ ~ + / only"
                    " (an RFC 6750 bearer token, no quotes)");
            return -1;
        }
        return replace_string(slot, v, why, len);
    case T_BOOL:
        for (i = 0; i < COUNT(bool_words); i++) {
            if (strcasecmp(v, bool_words[i].word) == 0) {
                *(bool *)slot = bool_words[i].value;
                return 0;
            }
        }
        set_err(why, len, "expected true or false (or yes/no, on/off, 1/0), got \"%s\"", v);
        return -1;
    case T_LOG_LEVEL:
        for (i = 0; i < COUNT(level_names); i++) {
            if (strcasecmp(v, level_names[i]) == 0) {
                *(enum log_level *)slot = (enum log_level)i;
                return 0;
            }
        }
        set_err(why, len, "expected error, warn, info or debug, got \"%s\"", v);
        return -1;
    case T_U32:
        if (parse_uint(v, k->min, UINT32_MAX, &u) < 0)
            return int_error(why, len, k->min, UINT32_MAX, v);
        *(uint32_t *)slot = (uint32_t)u;
        return 0;
    case T_U64:
        if (parse_uint(v, k->min, UINT64_MAX, &u) < 0)
            return int_error(why, len, k->min, UINT64_MAX, v);
        *(uint64_t *)slot = u;
        return 0;
    case T_SIZE:
        if (parse_uint(v, k->min, SIZE_MAX, &u) < 0)
            return int_error(why, len, k->min, SIZE_MAX, v);
        *(size_t *)slot = (size_t)u;
        return 0;
    case T_ALLOW:
        /* Each entry is matched against an absolute path (fnmatch with
         * FNM_PATHNAME), so a relative one could never match: refuse it. */
        for (const char *s = v + strspn(v, " \t"); *s; s += strspn(s, " \t")) {
            n = strcspn(s, " \t");
            if (*s != '/') {
                set_err(why, len, "expected absolute paths or globs starting with '/',"
                        " separated by spaces, got \"%.*s\"", (int)n, s);
                return -1;
            }
            s += n;
        }
        return replace_string(slot, v, why, len);
    case T_PATH_LIST:
        for (const char *s = v; *s; s += *s == ':') {
            n = strcspn(s, ":");
            if (n == 0 || *s != '/') {
                set_err(why, len, "expected absolute directories separated by ':',"
                        " got \"%s\"", v);
                return -1;
            }
            s += n;
        }
        if (*v == '\0') {
            set_err(why, len, "expected absolute directories separated by ':', got \"\"");
            return -1;
        }
        return replace_string(slot, v, why, len);
    case T_DIR:
        if (strlen(v) >= 2048) {
            set_err(why, len, "expected a directory path shorter than 2048 bytes");
            return -1;
        }
        return replace_string(slot, v, why, len);
    case T_SYNC:
        if (strcasecmp(v, "full") == 0 || strcasecmp(v, "normal") == 0) {
            *(bool *)slot = strcasecmp(v, "full") == 0;
            return 0;
        }
        set_err(why, len, "expected full or normal, got \"%s\"", v);
        return -1;
    case T_FILE:
        if (strlen(v) >= 4096) {
            set_err(why, len, "expected a file path shorter than 4096 bytes");
            return -1;
        }
        return replace_string(slot, v, why, len);
    case T_MODE:
        /* Written as chmod takes it; a leading 0 is usual but optional. */
        n = strlen(v);
        if (n == 0 || n > 4 || strspn(v, "01234567") != n || strtoul(v, NULL, 8) > 0777) {
            set_err(why, len, "expected octal permission bits from 0 to 0777"
                    " (such as 0660), got \"%s\"", v);
            return -1;
        }
        *(uint32_t *)slot = (uint32_t)strtoul(v, NULL, 8);
        return 0;
    case T_GROUP:
        n = strlen(v);
        if (n >= 256 || strcspn(v, " \t:/") != n) {
            set_err(why, len, "expected a group name (no spaces, ':' or '/'), got \"%s\"", v);
            return -1;
        }
        return replace_string(slot, v, why, len);
    case T_ORIGINS:
        /* Compared byte for byte with a browser's Origin header, which
         * never carries a path or a trailing slash: such an entry could
         * never match, so it is a mistake worth naming. */
        for (const char *s = v + strspn(v, " \t"); *s; s += strspn(s, " \t")) {
            n = strcspn(s, " \t");
            size_t scheme = strncmp(s, "http://", 7) == 0 ? 7
                          : strncmp(s, "https://", 8) == 0 ? 8 : 0;
            if (!scheme || n == scheme || memchr(s + scheme, '/', n - scheme) ||
                strspn(s + scheme, HOST_CHARS ":[]") < n - scheme) {
                set_err(why, len, "expected origins such as https://dash.example:8443"
                        " (scheme://host[:port], no path), separated by spaces, got \"%.*s\"",
                        (int)n, s);
                return -1;
            }
            s += n;
        }
        return replace_string(slot, v, why, len);
    case T_HOSTS:
        for (const char *s = v + strspn(v, " \t"); *s; s += strspn(s, " \t")) {
            n = strcspn(s, " \t");
            if (strspn(s, HOST_CHARS) < n) {
                set_err(why, len, "expected host names (letters, digits, '-' and '.',"
                        " no port) separated by spaces, got \"%.*s\"", (int)n, s);
                return -1;
            }
            s += n;
        }
        return replace_string(slot, v, why, len);
    case T_HTTP_ALLOW:
        for (const char *s = v + strspn(v, " \t"); *s; s += strspn(s, " \t")) {
            n = strcspn(s, " \t");
            if (strspn(s, HOST_CHARS "*:[]") < n) {
                set_err(why, len, "expected hosts such as api.example.com, host:port,"
                        " *.example.com or [::1]:8080, separated by spaces, got \"%.*s\"",
                        (int)n, s);
                return -1;
            }
            s += n;
        }
        return replace_string(slot, v, why, len);
    case T_TOKENS:
        /* Only the syntax here; the files are read once the whole
         * configuration is known (read_secrets). */
        for (const char *s = v + strspn(v, " \t"); *s; s += strspn(s, " \t")) {
            struct token_entry e;
            n = strcspn(s, " \t");
            if (parse_token_entry(s, n, &e, why, len) < 0)
                return -1;
            s += n;
        }
        return replace_string(slot, v, why, len);
    case T_SECONDS:
    case T_SECONDS_POSITIVE:
        if (parse_seconds(v, k->type == T_SECONDS_POSITIVE, &d) < 0) {
            set_err(why, len, "expected a number of seconds %s 0 and at most %.0f,"
                    " got \"%s\"", k->type == T_SECONDS ? ">=" : ">", MAX_SECONDS, v);
            return -1;
        }
        *(double *)slot = d;
        return 0;
    }
    set_err(why, len, "internal error: key type %d", (int)k->type);
    return -1;
}

/* Applies the defaults of the queue keys (queue) or of all the others to
 * base. Fails only when out of memory. */
static int set_defaults(struct config *c, bool queue, void *base)
{
    char why[CONFIG_ERR_SIZE];
    size_t i;

    for (i = 0; i < COUNT(keys); i++) {
        if ((strcmp(keys[i].section, "queue") == 0) == queue
            && set_value(c, &keys[i], base, keys[i].def, why, sizeof why) < 0)
            return -1;
    }
    return 0;
}

/* Returns 0 with *idx set, or -1 when out of memory. */
static int find_or_add_queue(struct config *c, const char *name, size_t *idx)
{
    struct config_queue *q;
    size_t i;

    for (i = 0; i < c->nqueues; i++) {
        if (strcmp(c->queues[i].name, name) == 0) {
            *idx = i;
            return 0;
        }
    }
    q = realloc(c->queues, (c->nqueues + 1) * sizeof *q);
    if (!q)
        return -1;
    c->queues = q;
    q += c->nqueues;
    *q = (struct config_queue){ .name = strdup(name) };
    if (!q->name || set_defaults(c, true, q) < 0) {
        free(q->name);
        return -1;
    }
    *idx = c->nqueues++;
    return 0;
}

int config_init(struct config *c)
{
    size_t idx;

    memset(c, 0, sizeof *c);
    if (set_defaults(c, false, c) < 0 || find_or_add_queue(c, "default", &idx) < 0) {
        config_close(c);
        return -1;
    }
    return 0;
}

/* Splits s into host and port. Returns NULL, or what is wrong with s. */
static const char *split_listen(const char *s, const char **host, size_t *hostlen,
                                uint16_t *port)
{
    const char *colon, *close;
    unsigned long v;
    size_t n;

    if (*s == '[') {
        close = strchr(s, ']');
        if (!close)
            return "'[' without ']'";
        *host = s + 1;
        *hostlen = (size_t)(close - *host);
        if (*hostlen == 0)
            return "empty address in brackets";
        colon = close + 1;
        if (*colon != ':')
            return "missing :PORT after ']'";
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return "missing port";
        *host = s;
        *hostlen = (size_t)(colon - s);
        if (memchr(s, ':', *hostlen))
            return "an IPv6 address needs brackets, as in [::1]:8080";
    }
    n = strlen(colon + 1);
    if (n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n)
        return "the port must be a number from 0 to 65535";
    v = strtoul(colon + 1, NULL, 10);
    if (v > 65535)
        return "the port must be a number from 0 to 65535";
    *port = (uint16_t)v;
    return NULL;
}

int config_set_listen(struct config *c, const char *hostport, char *err, size_t errlen)
{
    const char *host = NULL, *why;
    size_t hostlen = 0;
    uint16_t port = 0;
    char *dup;

    /* A Unix domain socket: the path must be absolute (the daemon may
     * change directory) and fit sockaddr_un's sun_path with its NUL. */
    if (strncmp(hostport, "unix:", 5) == 0) {
        const char *path = hostport + 5;
        if (path[0] != '/' || strlen(path) >= UNIX_PATH_MAX) {
            set_err(err, errlen, "expected unix:/ABSOLUTE/PATH (shorter than %d bytes),"
                    " got \"%s\"", UNIX_PATH_MAX, hostport);
            return -1;
        }
        return replace_string(&c->listen_unix, path, err, errlen);
    }
    why = split_listen(hostport, &host, &hostlen, &port);
    if (why) {
        set_err(err, errlen, "expected HOST:PORT, [IPV6]:PORT, :PORT or unix:PATH, got \"%s\": %s",
                hostport, why);
        return -1;
    }
    /* Only ":PORT" has an empty host: brackets with nothing inside are
     * rejected above. */
    dup = hostlen == 0 ? strdup("0.0.0.0") : strndup(host, hostlen);
    if (!dup) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (replace_string(&c->listen_unix, "", err, errlen) < 0) {
        free(dup);
        return -1;
    }
    free(c->listen_host);
    c->listen_host = dup;
    c->listen_port = port;
    return 0;
}

/* Opens a section. Queues are created here rather than at their first key,
 * so that a bare "[queue:jobs]" declares a queue with default settings. */
static void enter_section(struct parse *p, const char *name, size_t len)
{
    static const char *const plain[] = { "server", "tasks", "kinds", "exec", "http", "notify", "storage", "auth" };
    char qname[QUEUE_NAME_MAX + 1];
    const char *q;
    size_t i, qlen;

    p->key_seen = false;
    for (i = 0; i < COUNT(plain); i++) {
        if (strlen(plain[i]) == len && memcmp(plain[i], name, len) == 0) {
            p->section = plain[i];
            return;
        }
    }
    if (len < 6 || memcmp(name, "queue:", 6) != 0) {
        fail(p, "unknown section [%.*s]", (int)len, name);
        return;
    }
    q = name + 6;
    qlen = len - 6;
    /* strspn stops at the ']' that ends the name, at the latest. */
    if (qlen == 0 || qlen > QUEUE_NAME_MAX || strspn(q, QUEUE_CHARS) < qlen) {
        fail(p, "invalid queue name '%.*s' in [%.*s]: expected 1 to %d characters"
             " from A-Z a-z 0-9 _ . -", (int)qlen, q, (int)len, name, QUEUE_NAME_MAX);
        return;
    }
    memcpy(qname, q, qlen);
    qname[qlen] = '\0';
    if (find_or_add_queue(p->c, qname, &p->queue) < 0) {
        fail(p, "out of memory");
        return;
    }
    p->section = "queue";
}

/* inih's line reader. Besides counting lines, it rejects what inih would
 * silently get wrong: an over-long line (inih cuts it and reads the rest as
 * a new line) and an indented line after a key (inih appends it to that
 * key's value, so indenting a whole section would set the first key to the
 * text of the others). The checks mirror inih's order: comment, then
 * continuation, then section. Returning NULL ends the parse. */
static char *read_line(char *buf, int size, void *user)
{
    struct parse *p = user;
    const char *s;
    size_t len;
    int ch;

    if (p->failed)
        return NULL;
    if (!fgets(buf, size, p->f)) {
        if (ferror(p->f)) {
            p->failed = true;
            p->err_line = p->line + 1;
            set_err(p->err, p->errlen, "%s: cannot read: %s", p->path, strerror(errno));
        }
        return NULL;
    }
    p->line++;
    len = strlen(buf);
    if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
        ch = getc(p->f);
        if (ch != '\n' && ch != EOF) {
            fail(p, "line longer than %d characters", size - 1);
            return NULL;
        }
    }
    if (p->line == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0)
        memmove(buf, buf + 3, strlen(buf + 3) + 1);

    s = buf + strspn(buf, " \t\r\n\v\f");
    if (*s == '\0' || *s == ';' || *s == '#')
        return buf;
    if (s > buf && p->key_seen) {
        fail(p, "an indented line continues the value of the key above;"
             " remove the leading whitespace");
        return NULL;
    }
    /* Without ']' it is inih's syntax error, reported by config_load. */
    if (*s == '[' && strchr(s, ']'))
        enter_section(p, s + 1, strcspn(s + 1, "]"));
    return p->failed ? NULL : buf;
}

/* inih's handler: returns 1 for a key it stored, 0 for an error. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    char why[CONFIG_ERR_SIZE];
    const char *prefix = "", *sname = p->section;
    void *base = p->c;
    size_t i;

    (void)section;      /* cut at 49 characters by inih; read_line tracks it */
    p->key_seen = true;
    if (!p->section) {
        fail(p, "key '%s' is outside any section", name);
        return 0;
    }
    if (strcmp(p->section, "queue") == 0) {
        base = &p->c->queues[p->queue];
        prefix = "queue:";
        sname = p->c->queues[p->queue].name;
    }
    for (i = 0; i < COUNT(keys); i++) {
        if (strcmp(keys[i].section, p->section) != 0 || strcmp(keys[i].name, name) != 0)
            continue;
        if (set_value(p->c, &keys[i], base, value, why, sizeof why) < 0) {
            fail(p, "key '%s': %s", name, why);
            return 0;
        }
        return 1;
    }
    fail(p, "unknown key '%s' in [%s%s]", name, prefix, sname);
    return 0;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    struct parse p = { .c = c, .path = path, .err = err, .errlen = errlen };
    int ret;

    p.f = fopen(path, "r");
    if (!p.f) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    ret = ini_parse_stream(read_line, &p, on_key, &p);
    fclose(p.f);
    if (ret == -2) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    /* inih reports lines it cannot split (no '=', no ']') only through its
     * return value, the first line with any error; ours may come later. */
    if (ret > 0 && (!p.failed || (unsigned)ret < p.err_line)) {
        set_err(err, errlen, "%s:%d: expected [section], key = value, or a comment",
                path, ret);
        return -1;
    }
    if (p.failed)
        return -1;
    /* One without the other is a half-done edit: refuse it rather than
     * guess whether plain HTTP was meant. */
    if (!c->tls_cert[0] != !c->tls_key[0]) {
        set_err(err, errlen, "%s: [server] tls_cert and tls_key go together: set both"
                " (PEM files) or neither", path);
        return -1;
    }
    if (c->notify_max_backoff_seconds < c->notify_min_backoff_seconds) {
        set_err(err, errlen, "%s: [notify] max_backoff_seconds is less than "
                "min_backoff_seconds", path);
        return -1;
    }
    return read_secrets(c, path, err, errlen);
}

bool config_has_auth(const struct config *c)
{
    return c->auth_token[0] != '\0' || c->ntokens > 0;
}

void config_close(struct config *c)
{
    size_t i;

    if (c->auth_token)
        explicit_bzero(c->auth_token, strlen(c->auth_token));
    free(c->listen_host);
    free(c->listen_unix);
    free(c->unix_group);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->auth_token);
    free(c->auth_token_file);
    free(c->cors_origins);
    free(c->allowed_hosts);
    free(c->auth_tokens);
    free_tokens(c);
    free(c->exec_allow);
    free(c->exec_path);
    free(c->http_allow);
    free(c->http_ca_file);
    free(c->notify_allow);
    if (c->notify_secret)
        explicit_bzero(c->notify_secret, strlen(c->notify_secret));
    free(c->notify_secret);
    free(c->notify_secret_file);
    free(c->notify_ca_file);
    free(c->state_dir);
    for (i = 0; i < c->nqueues; i++)
        free(c->queues[i].name);
    free(c->queues);
    memset(c, 0, sizeof *c);
}

