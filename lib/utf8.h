/*
 * utf8.h — arbitrary bytes as JSON text.
 *
 * A program's output is bytes, not text, but the contract returns it inside
 * JSON strings, and JSON (and jansson) demand valid UTF-8. This writer
 * replaces every ill-formed sequence with U+FFFD, one per maximal subpart
 * (the Unicode recommendation, what browsers and Python's "replace" do).
 */
#ifndef AW_UTF8_H
#define AW_UTF8_H

#include <stddef.h>

#include "buf.h"

/* Appends p[0..n) as a JSON string literal, quotes included: ill-formed
 * UTF-8 becomes U+FFFD, '"', '\\' and control characters are escaped,
 * NUL bytes included. Errors are kept in b (aw_buf_failed). */
void aw_utf8_add_json(aw_buf_t *b, const void *p, size_t n);
/* The same for a NUL-terminated string (names, messages, ids). */
void aw_utf8_add_json_str(aw_buf_t *b, const char *s);

#endif
