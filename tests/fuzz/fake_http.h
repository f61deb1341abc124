/*
 * fake_http.h — daemon/http.h without libmicrohttpd and without sockets,
 * for the request fuzzer (fuzz_request.c).
 *
 * fake_http.c implements every function of http.h over in-memory
 * requests: a "connection" is one request with its method, path, query,
 * headers and body already split, and its answer is recorded instead of
 * sent. The fake owns every connection it is handed and frees it when
 * the answer is out (or the client "closes" it), as MHD's
 * request-completed callback does in http.c.
 *
 * It checks the invariants of the edge and abort()s when one breaks, so
 * that libFuzzer reports the input:
 *   - every request is answered exactly once (a reply, a suspension that
 *     ends in one, or a stream), never twice, never not at all;
 *   - an answer with status >= 400 carries {"error":{"code":S,"message":S}};
 *   - an application/json answer is valid JSON (jansson, UTF-8 checked).
 */
#ifndef AWAITD_FAKE_HTTP_H
#define AWAITD_FAKE_HTTP_H

#include <stddef.h>

#include "http.h"

/* One request as the client sent it (after HTTP parsing): strings are
 * NUL-terminated; query pairs are already percent-decoded. */
#define FAKE_MAX_PAIRS 16
struct fake_pair {
    const char *name, *value;
};
struct fake_request {
    const char      *method;
    const char      *path;
    struct fake_pair query[FAKE_MAX_PAIRS];
    size_t           nquery;
    struct fake_pair headers[FAKE_MAX_PAIRS];
    size_t           nheaders;
    const char      *body;          /* NULL: no body was sent */
    size_t           body_len;
};

struct http_server *fake_server_new(struct event_base *base, const struct config *cfg,
                                    aw_engine_t *engine);
/* Runs one request through the handler (the strings are copied). */
void fake_request(struct http_server *s, const struct fake_request *rq,
                  http_handler_fn handler);
/* What MHD_run would do now: sends resumed answers, reads unparked
 * streams a little, and completes the connections that are done. */
void fake_pump(struct http_server *s);
/* The client of the i-th open connection (modulo their number) goes away. */
void fake_close(struct http_server *s, size_t i);
/* Shutdown: answers everything still open (as http_server_drain),
 * completes every connection and frees the server. */
void fake_server_free(struct http_server *s);
/* The id in the Location of the last 201 (a created task), "" if none. */
const char *fake_last_id(const struct http_server *s);
/* Answers sent, in all, since the start (for the harness's statistics). */
unsigned long fake_answers(void);

#endif
