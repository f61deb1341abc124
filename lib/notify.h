/*
 * notify.h — completion notifications (webhooks): when a task that asked
 * for one ends, its final object is POSTed to the receiver, signed, and
 * retried with backoff until it is delivered or given up (contract:
 * "Completion notifications (webhooks)").
 *
 * A delivery's life:
 *   create   the engine asks the check installed here (aw_notify_new):
 *            the shape of "notify", the URL on [notify] allow. The task
 *            keeps the target and the delivery state (task.h), and the
 *            store keeps both with the task.
 *   end      the task reaches a terminal state. The delivery waits until
 *            that state is committed (a receiver is never told what a
 *            crash could take back), then for a transfer slot.
 *   attempt  POST of the task object as it is then, with
 *            X-Awaitd-Delivery (the same on every attempt),
 *            X-Awaitd-Timestamp and, with a secret, X-Awaitd-Signature:
 *            sha256=HMAC-SHA256(secret, "<timestamp>.<body>") from
 *            OpenSSL's libcrypto. 2xx: delivered. A connection failure,
 *            a timeout, 429 or 5xx: retried after an exponential backoff
 *            with jitter, until max_attempts; any other answer: failed.
 *            Each attempt's outcome is written to the task (and so to the
 *            store) before the next one is planned.
 *   restart  aw_notify_resume picks up every delivery a previous run left
 *            pending, at the time its backoff said: at least once.
 * Deliveries have a libcurl loop of their own with its own cap
 * (max_transfers), and each attempt has a time limit, so a slow or dead
 * receiver never holds up a task or the http kind, nor other deliveries
 * beyond that cap. A task deleted before its
 * delivery ended takes the delivery with it.
 *
 * Threads: the loop thread only. Errors: 0 or a negative code
 * (errors.h); an error changes nothing.
 */
#ifndef AW_NOTIFY_H
#define AW_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct aw_store;
typedef struct aw_notify aw_notify_t;

#define AW_NOTIFY_DEFAULT_MAX_ATTEMPTS   8
#define AW_NOTIFY_DEFAULT_MIN_BACKOFF_MS 1000
#define AW_NOTIFY_DEFAULT_MAX_BACKOFF_MS 300000
#define AW_NOTIFY_DEFAULT_MAX_TRANSFERS  16
#define AW_NOTIFY_DEFAULT_TIMEOUT_MS     10000
#define AW_NOTIFY_MAX_HEADERS            32

typedef struct aw_notify_config {
    const char *const *allow;       /* net_allow.h forms; empty: webhooks off */
    size_t      nallow;
    const char *secret;             /* HMAC key; NULL or empty: unsigned */
    uint32_t    max_attempts;       /* attempts in all, >= 1 */
    int64_t     min_backoff_ms;     /* the first retry's delay, > 0 */
    int64_t     max_backoff_ms;     /* the cap of the doubling, >= min */
    uint32_t    max_transfers;      /* attempts at once, >= 1 */
    int64_t     timeout_ms;         /* one attempt, connect to last byte, > 0 */
    int64_t     connect_timeout_ms; /* > 0 */
    bool        insecure;           /* skip TLS verification (tests only) */
    const char *ca_file;            /* CA bundle (PEM); NULL: the system's */
} aw_notify_config_t;

typedef struct aw_notify_stats {
    uint32_t in_flight;             /* attempts under way */
    uint64_t pending;               /* deliveries not ended (waiting included) */
    uint64_t delivered;             /* outcomes since start: */
    uint64_t retried;               /*   attempts that will be tried again */
    uint64_t failed;                /*   deliveries given up */
} aw_notify_stats_t;

/* Listens to e and installs the create check; webhooks stay off until a
 * configuration with an allow-list arrives. NULL on ENOMEM. */
aw_notify_t *aw_notify_new(aw_engine_t *e);
/* Start-up and reload: copies c. Returns 0, AW_EINVAL with err set, or
 * -ENOMEM; on error the old configuration stays. A narrower allow-list
 * applies to attempts not yet started (they fail as forbidden). */
int  aw_notify_configure(aw_notify_t *n, const aw_notify_config_t *c,
                         char *err, size_t errlen);
/* With a durable store: attempts wait for the commit of the state they
 * report; main passes every commit on with aw_notify_committed. */
void aw_notify_use_store(aw_notify_t *n, struct aw_store *s);
void aw_notify_committed(aw_notify_t *n, uint64_t durable);
/* After aw_store_load: plans every pending delivery of a finished task. */
void aw_notify_resume(aw_notify_t *n);
void aw_notify_stats(const aw_notify_t *n, aw_notify_stats_t *out);
/* Stops every attempt (their deliveries stay pending in the store, for
 * the next start) and frees n. Call before aw_engine_free. NULL is fine. */
void aw_notify_free(aw_notify_t *n);

#endif
