/*
 * rfc3339.h — reads an RFC 3339 date-time ("start_at" of a create).
 *
 * The writer is buf.h's aw_buf_add_time (UTC, milliseconds); this is its
 * reader for what clients send: "2026-11-24T21:55:44Z",
 * "2026-11-24T21:55:44.123+01:00", lower-case t and z, any number of
 * fraction digits (kept to the millisecond, truncated). A leap second
 * (:60) is read as the second after :59.
 */
#ifndef AW_RFC3339_H
#define AW_RFC3339_H

#include <stdint.h>

/* Returns 0 with *wall_ms set (Unix time in ms, may be negative before
 * 1970), or AW_EINVAL when s is not such a date-time. */
int aw_rfc3339_parse(const char *s, int64_t *wall_ms);

#endif
