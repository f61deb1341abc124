/*
 * edge.h — who may drive the API: the decision whether one request may
 * proceed (the Host rule, the Origin rule and CORS, the bearer token and
 * its scopes), made from the request's headers before its body matters.
 *
 * It owns no state: every answer comes from the running configuration and
 * the strings it is given, so a SIGHUP that changes tokens or origins
 * applies to the next request. Refusals are error values of the table in
 * http_error.c (HTTP_EMISDIRECTED, HTTP_EORIGIN, HTTP_EUNAUTHORIZED,
 * HTTP_ESCOPE); http.c answers them.
 */
#ifndef AWAITD_EDGE_H
#define AWAITD_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct MHD_Response;
struct http_ctx;

/* What edge_check needs of a request; NULL for an absent header. */
struct edge_request {
    const char *method;             /* "HEAD" may be given as "GET" */
    const char *path;
    const char *host;
    const char *origin;
    const char *authorization;
    const char *access_token;       /* ?access_token= (used for /v1/events only) */
    const char *preflight_method;   /* Access-Control-Request-Method */
};

struct edge_verdict {
    int         error;              /* 0: may proceed; else an HTTP_E* value */
    unsigned    scopes;             /* CONFIG_SCOPE_* granted (all without auth) */
    const char *scope_needed;       /* with HTTP_ESCOPE: "read" or "write" */
    bool        preflight;          /* a CORS preflight to answer with 204 */
};

/* Decides one request. Never fails: the verdict says proceed or refuse. */
void edge_check(const struct config *c, const struct edge_request *rq,
                struct edge_verdict *v);

/* The scope that creating a task of this kind needs besides write
 * (CONFIG_SCOPE_EXEC, CONFIG_SCOPE_HTTP), or 0. Its name in *name. */
unsigned edge_kind_scope(const char *kind, const char **name);

/* Adds the CORS headers to a response when origin is listed in
 * cors_origins (every answer to such a page, preflight or not). */
void edge_add_cors(const struct config *c, const char *origin, bool preflight,
                   struct MHD_Response *resp);

/* The WWW-Authenticate value of a 401 or 403 insufficient_scope (RFC 6750
 * section 3), written into buf. */
const char *edge_www_authenticate(int error, const char *scope, char *buf, size_t len);

#endif
