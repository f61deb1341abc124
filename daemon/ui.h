/*
 * ui.h — the web dashboard, GET /ui: one HTML page (daemon/ui/index.html)
 * built into the binary by the Makefile (the generated ui_page.c), so the
 * daemon serves it with no file to install and nothing fetched elsewhere.
 */
#ifndef AWAITD_UI_H
#define AWAITD_UI_H

#include <stddef.h>

#include "http.h"

/* The page's bytes (generated from daemon/ui/index.html). */
extern const unsigned char ui_page[];
extern const size_t ui_page_len;

/* GET /ui: the page, or 404 when [server] ui = false. It needs no token:
 * the page asks for one and its API calls carry it. */
void ui_handle(struct http_ctx *x);

#endif
