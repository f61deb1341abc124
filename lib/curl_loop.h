/*
 * curl_loop.h — a libcurl multi handle driven by a libevent base, and the
 * options every outgoing request of awaitd carries. Used by the http kind
 * and by the webhooks (notify.c), each with a loop of its own, so that one
 * cannot take the other's connections.
 *
 * The loop, as curl's hiperfifo example does it: libcurl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); each socket gets one persistent event, the
 * timer is one evtimer, and both end in curl_multi_socket_action. No
 * thread of ours, no poll loop. Name resolution runs in libcurl's own
 * resolver threads (aw_curl_check, required before any transfer), so it
 * never blocks the loop.
 *
 * Ownership: the loop owns the multi handle; each transfer's easy handle
 * stays its owner's, who adds it and removes it (removing an unfinished
 * transfer closes its connection: the server sees it go). done is
 * called for every finished transfer from the loop, never from inside a
 * libcurl callback, so it may add and remove transfers.
 *
 * Precondition: the process ignores SIGPIPE (awaitd's main does);
 * libcurl is told not to touch signals (CURLOPT_NOSIGNAL).
 */
#ifndef AW_CURL_LOOP_H
#define AW_CURL_LOOP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "net_allow.h"

struct event_base;
typedef struct aw_curl_loop aw_curl_loop_t;

/* Called once per finished transfer with its CURLOPT_PRIVATE. */
typedef void (*aw_curl_done_fn)(void *priv, CURLcode code);

/* Whether this process's libcurl can run on the loop at all: it must
 * resolve names without blocking (the threaded or c-ares resolver,
 * CURL_VERSION_ASYNCHDNS) and speak http and https. Returns 0, or
 * AW_EINVAL with err saying what is missing. */
int  aw_curl_check(char *err, size_t errlen);

/* Returns NULL on allocation failure. max_connections caps the
 * connections open at once, idle ones in libcurl's cache included (they
 * are connections at the server too). */
aw_curl_loop_t *aw_curl_loop_new(struct event_base *base, aw_curl_done_fn done,
                                 long max_connections);
/* Every transfer must have been removed. NULL is fine. */
void aw_curl_loop_free(aw_curl_loop_t *l);
void aw_curl_loop_set_max_connections(aw_curl_loop_t *l, long max_connections);
/* Returns 0 or -ENOMEM. */
int  aw_curl_loop_add(aw_curl_loop_t *l, CURL *easy);
void aw_curl_loop_remove(aw_curl_loop_t *l, CURL *easy);

/* What a transfer's address check needs: the list in force (the owner's
 * pointer, so that a reload applies to connections not yet made) and
 * where the refusal is written, for the failure message. */
typedef struct aw_curl_guard {
    aw_allow_t *const *allow;
    char               refused[200];   /* empty unless a connection was refused */
} aw_curl_guard_t;

typedef struct aw_curl_tls {
    const char *ca_file;        /* NULL: the system's CA bundle */
    bool        insecure;       /* no verification at all (tests) */
    long        connect_timeout_ms;
} aw_curl_tls_t;

/* Sets what every request carries: no signals, http and https only, no
 * proxy from the environment (the address check must see the server's
 * address), no redirects (owners follow them themselves, through the
 * allow-list), the address check on every connection (guard, which must
 * outlive the transfer), TLS verification, the connect timeout. */
void aw_curl_secure(CURL *easy, aw_curl_guard_t *guard, const aw_curl_tls_t *tls);

/* Request headers as a client gives them: an object of strings, each
 * name an HTTP token and each value one line (no CR, LF or NUL), at most
 * max entries. what names the object in messages ("args.headers").
 * Returns 0 or AW_EINVAL with err set. NULL and JSON null are fine. */
int  aw_curl_check_headers(json_t *headers, size_t max, const char *what,
                           char *err, size_t errlen);
/* Appends them to *list as libcurl takes them ("Name: value"; an empty
 * value as "Name;"). Returns 0 or -ENOMEM (*list keeps what was added). */
int  aw_curl_add_headers(struct curl_slist **list, json_t *headers);
/* Appends one line. Returns 0 or -ENOMEM. */
int  aw_curl_add_header(struct curl_slist **list, const char *line);
/* Whether s is an HTTP token (a method or a header name). */
bool aw_curl_is_token(const char *s);

#endif
