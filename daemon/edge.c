/*
 * edge.c — who may drive the API (see edge.h).
 *
 * The order of the checks, and why:
 *   1. Host (421 misdirected). A page on a DNS-rebinding name reaches
 *      127.0.0.1 with its own name in Host; a request that is not meant
 *      for this daemon is not looked at any further.
 *   2. Origin (403 origin). A browser adds Origin to every cross-site
 *      fetch, including the no-cors POST with a text/plain body that
 *      needs no preflight. Such a request is refused before the token is
 *      looked at: a cross-site request is refused whether or not a token
 *      is configured or sent, a page cannot tell from the answer whether
 *      auth is on, and a preflight (which browsers send without
 *      Authorization) can be answered at all. The contract's "auth is
 *      checked before anything else" is about the API itself (no path or
 *      method is revealed without the token): Host and Origin reveal
 *      nothing about it.
 *   3. The bearer token (401 unauthorized), then its scope for the
 *      method (403 insufficient_scope). The per-kind scopes (exec, http)
 *      need the body, so api.c checks them where the create is parsed,
 *      with the scopes granted here (edge_kind_scope).
 * Everything here runs on the headers alone, so http.c can make the
 * decision before the body matters and throw a refused body away unread.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "edge.h"
#include "http_error.h"

/* Whether the n bytes at s are one of the whitespace-separated words of
 * list, ignoring case (host names and origins are case-insensitive). */
static bool in_list(const char *list, const char *s, size_t n)
{
    for (const char *w = list + strspn(list, " \t"); *w; w += strspn(w, " \t")) {
        size_t wl = strcspn(w, " \t");
        if (wl == n && strncasecmp(w, s, n) == 0)
            return true;
        w += wl;
    }
    return false;
}

/* The Host rule: an IP literal, localhost, or a name in allowed_hosts,
 * with an optional port. A request without Host is let through: only
 * HTTP/1.0 may omit it (MHD refuses HTTP/1.1 without it), and browsers
 * always send it, so rebinding cannot use that way. */
static bool host_allowed(const struct config *c, const char *host)
{
    char name[256];
    const char *end, *port;
    unsigned char addr[16];

    if (!host)
        return true;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end || (size_t)(end - host - 1) >= sizeof name)
            return false;
        memcpy(name, host + 1, (size_t)(end - host - 1));
        name[end - host - 1] = '\0';
        port = end + 1;
        if (*port && (*port != ':' || strspn(port + 1, "0123456789") != strlen(port + 1)))
            return false;
        return inet_pton(AF_INET6, name, addr) == 1;
    }
    size_t n = strcspn(host, ":");
    port = host + n;
    if (n == 0 || n >= sizeof name ||
        (*port && strspn(port + 1, "0123456789") != strlen(port + 1)))
        return false;
    memcpy(name, host, n);
    name[n] = '\0';
    return inet_pton(AF_INET, name, addr) == 1 || strcasecmp(name, "localhost") == 0 ||
           in_list(c->allowed_hosts, name, n);
}

static bool origin_listed(const struct config *c, const char *origin)
{
    return origin && in_list(c->cors_origins, origin, strlen(origin));
}

/* The daemon's own origin: a page that awaitd served itself (GET /ui)
 * sends scheme://HOST where HOST is exactly the request's Host, port
 * included (browsers leave out a default port in both). */
static bool origin_own(const char *origin, const char *host)
{
    size_t skip = strncasecmp(origin, "http://", 7) == 0 ? 7
                : strncasecmp(origin, "https://", 8) == 0 ? 8 : 0;
    return skip && host && *host && strcasecmp(origin + skip, host) == 0;
}

/* 1 when given equals token, else 0, in time that depends only on the
 * configured token's length: the answer time does not reveal how many
 * leading bytes were right. */
static unsigned token_matches(const char *given, size_t m, const char *token)
{
    size_t n = strlen(token);
    volatile unsigned char diff = (unsigned char)(m != n || n == 0);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? given[i] : 0));
    return (unsigned)(diff == 0);
}

/* The scopes of every configured token that given matches. Every token is
 * compared, to its end, whatever matched before: which token (or whether
 * any) matched does not show in the time taken. */
static unsigned scopes_of(const struct config *c, const char *given, size_t m)
{
    unsigned granted = 0;
    if (!given)
        return 0;
    if (c->auth_token[0])
        granted |= CONFIG_SCOPE_ALL & -token_matches(given, m, c->auth_token);
    for (size_t i = 0; i < c->ntokens; i++)
        granted |= c->tokens[i].scopes & -token_matches(given, m, c->tokens[i].secret);
    return granted;
}

static bool needs_auth(const struct config *c, const char *path)
{
    return config_has_auth(c) &&
           (strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0 ||
            strcmp(path, "/metrics") == 0);
}

/* What the method needs: changes need write; reads, and POST /v1/wait
 * (which only waits), need read. */
static unsigned method_scope(const char *method, const char *path)
{
    bool change = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                  strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
    if (change && strcmp(path, "/v1/wait") != 0)
        return CONFIG_SCOPE_WRITE;
    return CONFIG_SCOPE_READ;
}

void edge_check(const struct config *c, const struct edge_request *rq,
                struct edge_verdict *v)
{
    *v = (struct edge_verdict){ .scopes = CONFIG_SCOPE_ALL };
    if (!host_allowed(c, rq->host)) {
        v->error = HTTP_EMISDIRECTED;
        return;
    }
    /* "Origin: null" (sandboxed frames, file: pages, some redirects) is
     * refused: it is nobody's own origin and cors_origins cannot list it. */
    if (rq->origin && !origin_own(rq->origin, rq->host)) {
        if (!origin_listed(c, rq->origin)) {
            v->error = HTTP_EORIGIN;
            return;
        }
        if (strcmp(rq->method, "OPTIONS") == 0 && rq->preflight_method) {
            v->preflight = true;
            return;
        }
    }
    if (!needs_auth(c, rq->path))
        return;
    const char *h = rq->authorization;
    unsigned granted = 0;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        granted = scopes_of(c, h, strlen(h));
    }
    /* Browsers' EventSource cannot send headers: the event stream also
     * takes the token as ?access_token= (the API reference, GET
     * /v1/events). */
    if (rq->access_token && strcmp(rq->path, "/v1/events") == 0)
        granted |= scopes_of(c, rq->access_token, strlen(rq->access_token));
    if (!granted) {
        v->error = HTTP_EUNAUTHORIZED;
        v->scopes = 0;
        return;
    }
    v->scopes = granted;
    unsigned need = method_scope(rq->method, rq->path);
    if (!(granted & need)) {
        v->error = HTTP_ESCOPE;
        v->scope_needed = need == CONFIG_SCOPE_WRITE ? "write" : "read";
    }
}

unsigned edge_kind_scope(const char *kind, const char **name)
{
    *name = NULL;
    if (strcmp(kind, "exec") == 0) {
        *name = "exec";
        return CONFIG_SCOPE_EXEC;
    }
    if (strcmp(kind, "http") == 0) {
        *name = "http";
        return CONFIG_SCOPE_HTTP;
    }
    return 0;
}

void edge_add_cors(const struct config *c, const char *origin, bool preflight,
                   struct MHD_Response *resp)
{
    if (!origin_listed(c, origin))
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Location");
    if (preflight) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                                "GET, HEAD, POST, DELETE");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
}

const char *edge_www_authenticate(int error, const char *scope, char *buf, size_t len)
{
    if (error != HTTP_ESCOPE || !scope)
        return "Bearer";
    snprintf(buf, len, "Bearer error=\"insufficient_scope\", scope=\"%s\"", scope);
    return buf;
}
