/*
 * clock.h — the two clocks the engine reads, behind a seam.
 *
 * Deadlines use a monotonic clock so that a wall-clock jump neither fires nor
 * delays timers; timestamps shown to users (created_at, ...) and task ids use
 * the wall clock. Unit tests replace both through aw_clock_set_source() to
 * test time without sleeping.
 */
#ifndef AW_CLOCK_H
#define AW_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t aw_clock_mono_ms(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t aw_clock_wall_ms(void);

/* Seconds (finite, >= 0) as milliseconds, rounded up so that a tiny
 * positive duration never becomes zero, but without the float noise of
 * 2.007 * 1000 = 2007.0000000000002 adding a millisecond. Capped at about
 * 31,700 years so deadline arithmetic cannot overflow. */
int64_t aw_seconds_to_ms(double s);

typedef int64_t (*aw_clock_fn)(void);
/* Replaces the sources (NULL restores the real one). For tests only. */
void aw_clock_set_source(aw_clock_fn mono, aw_clock_fn wall);

#endif
