/*
 * fake_clock.h — the engine's clocks under a unit test's control, so time
 * is moved by the test instead of slept through (clock.h's seam).
 * Header-only: each test file is a program of its own.
 */
#ifndef AW_TEST_FAKE_CLOCK_H
#define AW_TEST_FAKE_CLOCK_H

#include <stdint.h>

#include "clock.h"
#include "engine.h"

#define T0_MONO 5000000LL

static int64_t mono_now, wall_now;
static inline int64_t fake_mono(void) { return mono_now; }
static inline int64_t fake_wall(void) { return wall_now; }

/* Installs the fake clocks: monotonic at T0_MONO, wall at wall_t0 (ms). */
static inline void fake_clock_start(int64_t wall_t0)
{
    mono_now = T0_MONO;
    wall_now = wall_t0;
    aw_clock_set_source(fake_mono, fake_wall);
}

static inline void fake_clock_stop(void)
{
    aw_clock_set_source(NULL, NULL);
}

/* Moves both clocks forward and lets e handle what has come due. */
static inline void fake_clock_advance(aw_engine_t *e, int64_t ms)
{
    mono_now += ms;
    wall_now += ms;
    aw_engine_run_due(e);
}

#endif
