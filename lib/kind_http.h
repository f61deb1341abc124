/*
 * kind_http.h — the `http` kind: one HTTP(S) request per task, made by
 * libcurl's multi interface on the engine's libevent base (contract:
 * "Built-in kinds" http and "Kind `http` — fuller arguments").
 *
 * The kind itself (aw_kind_http, declared in kind.h) is registered with
 * the engine like any other. This header adds what only http has: the
 * shape of its configuration, and the check that this libcurl can run on
 * the loop at all.
 *
 * Precondition: the process ignores SIGPIPE (awaitd's main does); libcurl
 * is told not to touch signals (CURLOPT_NOSIGNAL).
 */
#ifndef AW_KIND_HTTP_H
#define AW_KIND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kind.h"

#define AW_HTTP_DEFAULT_MAX_TRANSFERS      50
#define AW_HTTP_DEFAULT_MAX_RESPONSE       ((size_t)1 << 20)
#define AW_HTTP_DEFAULT_MAX_REDIRECTS      5
#define AW_HTTP_DEFAULT_MAX_REQUEST_BODY   ((size_t)1 << 20)
#define AW_HTTP_DEFAULT_MAX_HEADERS        64
#define AW_HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000

typedef struct aw_http_config {
    /* Where requests may go: the forms and the address rule of
     * net_allow.h. Empty: nothing may be asked. */
    const char *const *allow;
    size_t      nallow;
    uint32_t    max_transfers;      /* transfers at once; >= 1 */
    size_t      max_response_bytes; /* default and ceiling of
                                       args.max_response_bytes */
    uint32_t    max_redirects;      /* with args.follow_redirects */
    size_t      max_request_body;   /* bytes of args.body */
    uint32_t    max_request_headers;/* entries of args.headers */
    int64_t     connect_timeout_ms; /* > 0 */
    bool        insecure;           /* skip TLS verification (tests only) */
    const char *ca_file;            /* CA bundle (PEM); NULL: the system's */
} aw_http_config_t;

/* The configuration goes to the kind through aw_engine_configure_kind(e,
 * "http", &config, err, errlen), which copies it. Errors: AW_EINVAL with
 * err set (a malformed allow entry, max_transfers 0) or -ENOMEM; the old
 * configuration then stays. Before any, nothing may be asked. */

/* The kind refuses every task while aw_curl_check (curl_loop.h) fails. */

/* Answers by status class, and transport failures. */
enum { AW_HTTP_RESULT_2XX, AW_HTTP_RESULT_3XX, AW_HTTP_RESULT_4XX, AW_HTTP_RESULT_5XX,
       AW_HTTP_RESULT_ERROR, AW_HTTP_RESULT_CLASSES };

typedef struct aw_http_stats {
    uint32_t in_flight;                         /* transfers now */
    uint64_t results[AW_HTTP_RESULT_CLASSES];   /* tasks that got an answer
                                                   (or failed in transport) */
} aw_http_stats_t;
/* For reports; zeros when the kind is not registered. */
void aw_http_stats(const struct aw_engine *e, aw_http_stats_t *out);

#endif
