/*
 * config.h — awaitd's configuration: defaults, the INI file (libinih), and
 * validation.
 *
 * config_load() never logs or exits: it returns -1 with a one-line message
 * in err that names the file, the line and the key, and main() prints it and
 * exits with status 2 before anything listens.
 */
#ifndef AWAITD_CONFIG_H
#define AWAITD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_ERR_SIZE 512

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

struct config_queue {
    char    *name;
    uint32_t concurrency;           /* 0 = unlimited */
};

/* What a bearer token may do (edge.c decides which request needs which).
 * auth_token and auth_token_file grant all of them. */
enum {
    CONFIG_SCOPE_READ  = 1u << 0,   /* GET endpoints, events, metrics, waits */
    CONFIG_SCOPE_WRITE = 1u << 1,   /* create, cancel, delete, queue control */
    CONFIG_SCOPE_EXEC  = 1u << 2,   /* creating a task of kind exec (with write) */
    CONFIG_SCOPE_HTTP  = 1u << 3,   /* creating a task of kind http (with write) */
    CONFIG_SCOPE_ALL   = (1u << 4) - 1,
};

/* One [auth] tokens entry, NAME:SCOPES:FILE; secret is FILE's content. */
struct config_token {
    char    *name;
    unsigned scopes;
    char    *secret;
};

struct config {
    char    *listen_host;           /* "127.0.0.1", "::1", "0.0.0.0" */
    uint16_t listen_port;           /* 0 = any free port */
    char    *listen_unix;           /* listen = unix:PATH: the path; "" = TCP */
    uint32_t unix_mode;             /* permission bits of that socket file */
    char    *unix_group;            /* its group; "" = the daemon's own */
    char    *tls_cert, *tls_key;    /* PEM files; both "" = plain HTTP */
    char    *auth_token;            /* "" = no authentication */
    char    *auth_token_file;       /* read into auth_token by config_load */
    char    *cors_origins;          /* whitespace-separated origins, or "" */
    char    *allowed_hosts;         /* whitespace-separated Host names, or "" */
    bool     ui;                    /* GET /ui serves the dashboard */
    /* [auth] tokens: the raw value, and what config_load read from it */
    char    *auth_tokens;
    struct config_token *tokens;
    size_t   ntokens;
    size_t   max_body_bytes;
    uint32_t max_json_depth;        /* of a request body */
    uint32_t max_json_elements;     /* values in a request body */
    uint32_t max_connections;
    uint32_t max_connections_per_client; /* 0 = no limit */
    uint32_t idle_timeout_seconds;  /* keep-alive connection with no request */
    double   request_timeout_seconds;/* first byte to complete request */
    double   shutdown_grace_seconds;/* SIGTERM: how long running tasks may
                                     * take to stop before the daemon exits */
    uint64_t max_tasks;             /* unfinished tasks */
    uint64_t max_task_bytes;        /* every held task together; 0 = no budget */
    uint64_t max_result_bytes;      /* one task's result; 0 = no cap */
    uint64_t max_group_tasks;       /* tasks in one group, nested ones counted */
    size_t   max_list_bytes;        /* one GET /v1/tasks answer (its first task aside) */
    uint32_t max_list_scan;         /* tasks one list page looks at */
    double   retention_seconds;
    double   max_wait_seconds;
    uint32_t max_wait_ids;
    bool     kind_sleep, kind_exec, kind_http;
    /* [exec] */
    char    *exec_allow;            /* whitespace-separated absolute paths or
                                     * globs; "" = nothing may run */
    double   exec_kill_grace_seconds;
    size_t   exec_max_output;       /* bytes per stream: default and ceiling */
    bool     exec_allow_root;
    bool     exec_allow_loader_env; /* args.env may set LD_* and the like */
    char    *exec_path;             /* PATH for jobs whose env has none */
    /* [http] */
    char    *http_allow;            /* whitespace-separated host[:port],
                                     * *.domain[:port] or *; "" = nowhere */
    uint32_t http_max_transfers;
    size_t   http_max_response_bytes;
    uint32_t http_max_redirects;
    size_t   http_max_request_body_bytes;
    uint32_t http_max_request_headers;
    double   http_connect_timeout_seconds;
    bool     http_insecure;         /* no TLS verification */
    char    *http_ca_file;          /* "" = the system's CA bundle */
    /* [notify] */
    char    *notify_allow;          /* as http_allow; "" = webhooks off */
    char    *notify_secret;         /* HMAC key; "" = unsigned */
    char    *notify_secret_file;    /* read into notify_secret at load */
    uint32_t notify_max_attempts;
    double   notify_min_backoff_seconds;
    double   notify_max_backoff_seconds;
    uint32_t notify_max_transfers;
    double   notify_timeout_seconds;
    double   notify_connect_timeout_seconds;
    bool     notify_insecure;
    char    *notify_ca_file;
    /* [storage] */
    char    *state_dir;             /* "" = memory only */
    bool     sync_full;             /* sync = full (else normal) */
    enum log_level log_level;
    bool     access_log;            /* one info line per answered request */
    struct config_queue *queues;
    size_t   nqueues;
};

/* Fills c with the built-in defaults (they match config/awaitd.conf). */
int  config_init(struct config *c);
/* Reads an INI file over the current values. Returns 0, or -1 with err set
 * ("FILE:LINE: key 'max_tasks': expected a positive integer"). */
int  config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Parses "HOST:PORT", "[V6]:PORT", ":PORT" or "unix:/ABSOLUTE/PATH" into c.
 * Returns 0 or -1 with err. */
int  config_set_listen(struct config *c, const char *hostport, char *err, size_t errlen);
/* Whether any bearer token is configured (auth_token, auth_token_file or
 * [auth] tokens): without one, anyone who can connect may do anything. */
bool config_has_auth(const struct config *c);
void config_close(struct config *c);

#endif
