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
    /* Where requests may go. Each entry is one of
     *   host            that host, any port ("api.example.com", "10.0.0.7",
     *                   "[::1]")
     *   host:port       that host on that port only
     *   *.example.com   any name below example.com (not example.com
     *                   itself), with or without ":port"
     *   *               any host (addresses below are still checked)
     * Host names compare without case. Empty: nothing may be asked.
     * Besides the URL's host, the address libcurl is about to connect to
     * is checked: a loopback, private, link-local, unique-local,
     * multicast or unspecified address is refused unless that address
     * itself (or address:port) is an entry, so an allowed name cannot be
     * pointed at the host's own services through DNS. */
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
} aw_http_config_t;

/* The configuration goes to the kind through aw_engine_configure_kind(e,
 * "http", &config, err, errlen), which copies it. Errors: AW_EINVAL with
 * err set (a malformed allow entry, max_transfers 0) or -ENOMEM; the old
 * configuration then stays. Before any, nothing may be asked. */

/* Whether this process's libcurl can run the kind: it must resolve names
 * without blocking (the threaded or c-ares resolver, CURL_VERSION_ASYNCHDNS)
 * and speak HTTP. Returns 0, or AW_EINVAL with err saying what is missing.
 * The kind refuses every task while this fails. */
int aw_http_check_libcurl(char *err, size_t errlen);

/* Transfers in flight in this engine (for reports). */
uint32_t aw_http_in_flight(const struct aw_engine *e);

#endif
