/*
 * json_text.h — the compact JSON text the engine keeps for a task's args
 * and result: written once from the parsed value, exactly, and read back
 * by looking up members in the text rather than parsing it again.
 *
 * jansson's json_dumps offers only a fixed number of significant digits
 * for reals: 15 loses values (0.30000000000000004 became 0.3, and
 * 1.7976931348623157e308 became a number that no longer parses), 17 turns
 * 0.1 into 0.10000000000000001. aw_json_write writes each real with the
 * fewest digits that read back as the same double.
 */
#ifndef AW_JSON_TEXT_H
#define AW_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* Appends v as compact JSON (no spaces, object members in jansson's
 * insertion order). Reals: the shortest of %.15g, %.16g, %.17g that
 * strtod reads back exactly, with ".0" added when it would read as an
 * integer. Strings may hold NUL (JSON_ALLOW_NUL). Errors are kept in b. */
void aw_json_write(aw_buf_t *b, const json_t *v);

/* Finds the member named key (compared as written: aw_json_write escapes
 * no letters) of the top-level object in text[0..len), which must be
 * compact JSON as aw_json_write writes it. On success *val and *vlen span the
 * member's value text and 1 is returned; 0 when there is no such member
 * or the text is not such an object. Costs one pass over the bytes, with
 * no allocation. */
int  aw_json_member(const char *text, size_t len, const char *key,
                    const char **val, size_t *vlen);

/* The end of the compact JSON value (or quoted string) that starts at p,
 * at most end; NULL when the text ends first. */
const char *aw_json_skip(const char *p, const char *end);

#endif
