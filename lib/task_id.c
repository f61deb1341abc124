/*
 * task_id.c — time-ordered task ids (ULIDs), see task_id.h.
 *
 * The random part comes from a splitmix64 generator seeded once from
 * getrandom(2): ids need to be unique, not secret, and a syscall per id
 * would cost more than the rest of a create.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "task_id.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

typedef struct { uint64_t s; } prng_t;
static prng_t prng;

static uint64_t splitmix64(prng_t *p)
{
    uint64_t z = (p->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fill_random(uint8_t r[10])
{
    uint64_t a = splitmix64(&prng), b = splitmix64(&prng);
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 2);
    r[0] &= 0x7f;   /* leave headroom so increments within a ms never wrap */
}

int aw_task_id_gen_init(aw_task_id_gen_t *g)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        return errno ? -errno : -EIO;
    prng.s ^= seed;
    g->last_ms = -1;
    fill_random(g->random);
    return 0;
}

static void increment(uint8_t r[10])
{
    for (int i = 9; i >= 0; i--)
        if (++r[i] != 0)
            return;
}

void aw_task_id_next(aw_task_id_gen_t *g, int64_t wall_ms, char out[AW_TASK_ID_SIZE])
{
    if (wall_ms > g->last_ms) {
        g->last_ms = wall_ms;
        fill_random(g->random);
    } else {
        increment(g->random);
    }
    out[0] = 't';
    out[1] = '_';
    uint64_t t = (uint64_t)g->last_ms;
    for (int i = 9; i >= 0; i--, t >>= 5)
        out[2 + i] = crockford[t & 31];
    /* 80 random bits = 16 characters of 5 bits, most significant first. */
    for (int i = 0; i < 16; i++) {
        int bit = i * 5, v = 0;
        for (int k = 0; k < 5; k++, bit++)
            v = v << 1 | ((g->random[bit / 8] >> (7 - bit % 8)) & 1);
        out[12 + i] = crockford[v];
    }
    out[AW_TASK_ID_LEN] = '\0';
}

static int decode(char c)
{
    const char *p = c ? strchr(crockford, c) : NULL;
    return p ? (int)(p - crockford) : -1;
}

bool aw_task_id_valid(const char *s)
{
    if (strncmp(s, "t_", 2) != 0 || strlen(s) != AW_TASK_ID_LEN || s[2] > '7')
        return false;
    for (int i = 2; i < AW_TASK_ID_LEN; i++)
        if (decode(s[i]) < 0)
            return false;
    return true;
}

int64_t aw_task_id_time(const char *id)
{
    int64_t t = 0;
    for (int i = 2; i < 12; i++)
        t = t << 5 | decode(id[i]);
    return t;
}
