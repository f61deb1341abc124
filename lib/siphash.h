/*
 * siphash.h — SipHash-2-4, a keyed hash for tables indexed by strings that
 * clients choose.
 *
 * An unkeyed hash (FNV-1a, what the task table used) lets a client compute
 * keys that all land in one bucket and turn every lookup into a walk of a
 * long chain. SipHash with a secret key drawn at start makes such keys
 * impossible to find without the key.
 */
#ifndef AW_SIPHASH_H
#define AW_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of p[0..n) under a 16-byte key, 64-bit output (the paper's
 * result read as a little-endian integer). Pure; callable from any thread. */
uint64_t aw_siphash24(const uint8_t key[16], const void *p, size_t n);

/* Draws the process's hash key from getrandom(2) the first time it is
 * called; later calls return the first call's result. Returns 0 or -errno.
 * Thread-safe. */
int      aw_strhash_init(void);
/* SipHash-2-4 of a NUL-terminated string under the process's key. Call
 * aw_strhash_init first (aw__table_init does). */
uint64_t aw_strhash(const char *s);

#endif
