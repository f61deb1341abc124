/*
 * net_allow.h — where awaitd's outgoing requests may go: an allow-list of
 * hosts (the http kind's [http] allow, the webhooks' [notify] allow), and
 * the rule for the address a name resolves to.
 *
 * Entries, each one of
 *   host            that host, any port ("api.example.com", "10.0.0.7",
 *                   "[::1]")
 *   host:port       that host on that port only
 *   *.example.com   any name below example.com (not example.com itself),
 *                   with or without ":port"
 *   *               any host
 * Host names compare without case. An empty list allows nothing.
 *
 * The address rule: besides the URL's host, the address a connection is
 * about to be made to is checked (aw_allow_address, called from libcurl's
 * CURLOPT_OPENSOCKETFUNCTION). A loopback, private, link-local,
 * unique-local, carrier-NAT, multicast or unspecified address is refused
 * unless that address itself (or address:port) is an entry; "*" does not
 * open it. So an allowed name cannot be pointed at the host's own
 * services, or its network's, through DNS.
 *
 * Ownership: aw_allow_parse returns a list the caller frees with
 * aw_allow_free. Errors are values: AW_EINVAL with err set, -ENOMEM.
 */
#ifndef AW_NET_ALLOW_H
#define AW_NET_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;
typedef struct aw_allow aw_allow_t;

/* Parses entries; section names the list in messages ("[http] allow").
 * Returns 0 with *out set (an empty list for n == 0), AW_EINVAL (err
 * says which entry) or -ENOMEM. */
int  aw_allow_parse(const char *const *entries, size_t n, const char *section,
                    aw_allow_t **out, char *err, size_t errlen);
void aw_allow_free(aw_allow_t *a);
size_t aw_allow_count(const aw_allow_t *a);
/* The i-th entry as written, lower-cased (for reports). */
const char *aw_allow_entry(const aw_allow_t *a, size_t i);

/* Checks url with libcurl's own URL parser (the one the transfer uses):
 * only http and https, and the host and port on the list. what names
 * the URL in messages ("args.url"). Returns 0, AW_EINVAL (not such a
 * URL), AW_EFORBIDDEN (not on the list) with err set, or -ENOMEM. */
int  aw_allow_url(const aw_allow_t *a, const char *url, const char *what,
                  char *err, size_t errlen);

/* The address rule: returns NULL when a connection to sa may be made,
 * else why not; text gets the address as written in entries. */
const char *aw_allow_address(const aw_allow_t *a, const struct sockaddr *sa,
                             char *text, size_t textlen);

#endif
