/*
 * clock.c — monotonic and wall clocks, replaceable by tests (see clock.h).
 */
#include <math.h>
#include <time.h>

#include "clock.h"

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_mono(void) { return read_clock(CLOCK_MONOTONIC); }
static int64_t real_wall(void) { return read_clock(CLOCK_REALTIME); }

static aw_clock_fn mono_source = real_mono;
static aw_clock_fn wall_source = real_wall;

int64_t aw_clock_mono_ms(void) { return mono_source(); }
int64_t aw_clock_wall_ms(void) { return wall_source(); }

int64_t aw_seconds_to_ms(double s)
{
    double ms = s * 1000, r = round(ms);
    ms = fabs(ms - r) < 1e-6 ? r : ceil(ms);
    return ms > 1e15 ? (int64_t)1e15 : (int64_t)ms;
}

void aw_clock_set_source(aw_clock_fn mono, aw_clock_fn wall)
{
    mono_source = mono ? mono : real_mono;
    wall_source = wall ? wall : real_wall;
}
