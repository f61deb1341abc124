/*
 * net_allow.c — the allow-list of outgoing requests (see net_allow.h).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "errors.h"
#include "net_allow.h"

struct allow_entry {
    char *host;                 /* lower case; "*.x" or "*" patterns kept as written */
    char *written;              /* the entry as given, lower case */
    long  port;                 /* -1: any */
};

struct aw_allow {
    char               section[32];  /* "[http] allow", for messages */
    size_t             n;
    struct allow_entry e[];
};

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Splits an entry into host and port. Returns 0, AW_EINVAL or -ENOMEM. */
static int parse_entry(const char *s, struct allow_entry *out)
{
    const char *host = s, *colon = NULL;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return AW_EINVAL;
        hlen = (size_t)(close - s) + 1;
        if (close[1] == ':')
            colon = close + 1;
        else if (close[1])
            return AW_EINVAL;
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return AW_EINVAL;           /* bare IPv6: write it as [addr] */
        hlen = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (hlen == 0 || hlen > 255)
        return AW_EINVAL;
    out->port = -1;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p < 1 || p > 65535)
            return AW_EINVAL;
        out->port = p;
    }
    /* "*" alone, or "*." followed by a name; no other wildcard. */
    const char *star = memchr(host, '*', hlen);
    if (star && !(hlen == 1 || (star == host && host[1] == '.' && hlen > 2 &&
                                !memchr(host + 1, '*', hlen - 1))))
        return AW_EINVAL;
    if (!(out->host = strndup(host, hlen)) || !(out->written = strdup(s)))
        return -ENOMEM;
    lower(out->host);
    lower(out->written);
    return 0;
}

void aw_allow_free(aw_allow_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->e[i].host);
        free(a->e[i].written);
    }
    free(a);
}

int aw_allow_parse(const char *const *entries, size_t n, const char *section,
                   aw_allow_t **out, char *err, size_t errlen)
{
    aw_allow_t *a = calloc(1, sizeof *a + n * sizeof a->e[0]);
    if (!a)
        return -ENOMEM;
    snprintf(a->section, sizeof a->section, "%s", section);
    for (size_t i = 0; i < n; i++) {
        a->n = i + 1;                   /* aw_allow_free frees what parse_entry made */
        int rc = parse_entry(entries[i], &a->e[i]);
        if (rc < 0) {
            aw_allow_free(a);
            if (rc == AW_EINVAL)
                snprintf(err, errlen, "%s entry '%.200s' must be host, host:port, "
                         "[ipv6]:port, *.domain[:port] or *", section, entries[i]);
            return rc;
        }
    }
    *out = a;
    return 0;
}

size_t aw_allow_count(const aw_allow_t *a)
{
    return a ? a->n : 0;
}

const char *aw_allow_entry(const aw_allow_t *a, size_t i)
{
    return a && i < a->n ? a->e[i].written : NULL;
}

/* host is lower case, IPv6 in brackets (as curl_url gives it). */
static bool host_allowed(const aw_allow_t *a, const char *host, long port)
{
    size_t hl = strlen(host);
    for (size_t i = 0; a && i < a->n; i++) {
        const struct allow_entry *x = &a->e[i];
        if (x->port != -1 && x->port != port)
            continue;
        if (strcmp(x->host, "*") == 0 || strcmp(x->host, host) == 0)
            return true;
        /* "*.example.com" matches "a.example.com" and "a.b.example.com". */
        size_t sl = strlen(x->host) - 1;        /* ".example.com" */
        if (x->host[0] == '*' && hl > sl && strcmp(host + hl - sl, x->host + 1) == 0)
            return true;
    }
    return false;
}

/* An address the list must name itself before we connect to it: the
 * host's own and its networks' services, and what is no unicast
 * destination at all. */
static bool internal_v4(uint32_t a)
{
    return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
           (a >> 22) == (100u << 2 | 1) ||         /* 100.64/10, carrier NAT */
           (a >> 16) == (169u << 8 | 254) ||        /* link-local */
           (a >> 20) == (172u << 4 | 1) ||          /* 172.16/12 */
           (a >> 16) == (192u << 8 | 168) ||
           (a >> 28) >= 14;                         /* multicast, reserved */
}

static bool internal_v6(const struct in6_addr *a)
{
    const uint8_t *b = a->s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a))
        return internal_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                           (uint32_t)b[14] << 8 | b[15]) || IN6_IS_ADDR_UNSPECIFIED(a);
    return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
           (b[0] & 0xfe) == 0xfc ||                 /* fc00::/7 unique local */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||   /* fe80::/10 */
           (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||   /* fec0::/10 site-local */
           b[0] == 0xff;                            /* multicast */
}

const char *aw_allow_address(const aw_allow_t *a, const struct sockaddr *sa,
                             char *text, size_t textlen)
{
    char ip[INET6_ADDRSTRLEN];
    long port;
    bool internal;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        internal = internal_v4(ntohl(in->sin_addr.s_addr));
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(text, textlen, "%s", ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        internal = internal_v6(&in6->sin6_addr);
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(text, textlen, "[%s]", ip);
        port = ntohs(in6->sin6_port);
    } else {
        snprintf(text, textlen, "(family %d)", sa->sa_family);
        return "is not an IP address";
    }
    if (!internal)
        return NULL;
    /* Only an entry naming the address itself opens it; "*" does not. */
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->e[i].host, text) == 0 && (a->e[i].port == -1 || a->e[i].port == port))
            return NULL;
    return "is a loopback, private or link-local address that the allow-list does not name";
}

int aw_allow_url(const aw_allow_t *a, const char *url, const char *what,
                 char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = 0;
    if (!u)
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "%s '%.200s' is not a URL with a host", what, url);
        rc = AW_EINVAL;
    } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(err, errlen, "%s: only http and https URLs, not '%.32s'", what, scheme);
        rc = AW_EINVAL;
    } else {
        lower(host);
        long pn = strtol(port, NULL, 10);
        if (!host_allowed(a, host, pn)) {
            snprintf(err, errlen, "%s: %.200s:%ld is not on %s", what, host, pn,
                     a ? a->section : "the allow-list");
            rc = AW_EFORBIDDEN;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}
