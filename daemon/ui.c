/*
 * ui.c — serves the dashboard page (see ui.h). The page itself is
 * daemon/ui/index.html; this file only adds the headers that keep it from
 * being framed by another site or loading anything from elsewhere.
 */
#include "ui.h"

#include "http_error.h"

/* The page's script and style are inline, so 'unsafe-inline' is needed for
 * them; everything else is limited to the daemon itself (connect-src) or
 * nothing. frame-ancestors 'none' stops clickjacking from another site's
 * frame, which the Origin rule alone would not (the clicks would be the
 * dashboard's own, same-origin requests). */
static const char *const page_headers[] = {
    "Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options", "DENY",
    "Referrer-Policy", "no-referrer",
    "X-Content-Type-Options", "nosniff",
    "Cache-Control", "no-cache",
    NULL,
};

void ui_handle(struct http_ctx *x)
{
    if (!http_config(x->srv)->ui) {
        http_reply_error(x, HTTP_ENOROUTE, NULL);
        return;
    }
    http_reply_static(x, 200, ui_page, ui_page_len, "text/html; charset=utf-8", page_headers);
}
