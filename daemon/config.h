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

struct config {
    char    *listen_host;           /* "127.0.0.1", "::1", "0.0.0.0" */
    uint16_t listen_port;           /* 0 = any free port */
    char    *auth_token;            /* "" = no authentication */
    size_t   max_body_bytes;
    uint32_t max_json_depth;        /* of a request body */
    uint32_t max_json_elements;     /* values in a request body */
    uint32_t max_connections;
    double   shutdown_grace_seconds;/* SIGTERM: how long running tasks may
                                     * take to stop before the daemon exits */
    uint64_t max_tasks;             /* unfinished tasks */
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
    char    *exec_path;             /* PATH for jobs whose env has none */
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
/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into c. Returns 0 or -1 with err. */
int  config_set_listen(struct config *c, const char *hostport, char *err, size_t errlen);
void config_close(struct config *c);

#endif
