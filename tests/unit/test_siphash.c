/*
 * test_siphash.c — SipHash-2-4 (lib/siphash.c) against the published test
 * vectors, and the reason it is there: Idempotency-Keys crafted to share one
 * FNV-1a bucket no longer share a chain in the task table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siphash.h"
#include "task_table.h"

/* Key 00 01 .. 0f, message 00 01 .. (n-1): the reference implementation's
 * vectors.h (vectors_sip64[n], bytes read little-endian). */
static void matches_the_reference_vectors(void **state)
{
    (void)state;
    static const struct { size_t n; uint64_t want; } v[] = {
        { 0,  0x726fdb47dd0e0e31ULL },
        { 1,  0x74f839c593dc67fdULL },
        { 2,  0x0d6c8009d9a94f5aULL },
        { 3,  0x85676696d7fb7e2dULL },
        { 8,  0x93f5f5799a932462ULL },
        { 15, 0xa129ca6149be45e5ULL },      /* the paper's Appendix A */
        { 63, 0x958a324ceb064572ULL },
    };
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_true(aw_siphash24(key, msg, v[i].n) == v[i].want);
}

static void process_key_is_drawn_once(void **state)
{
    (void)state;
    assert_int_equal(aw_strhash_init(), 0);
    uint64_t a = aw_strhash("some key");
    assert_int_equal(aw_strhash_init(), 0);
    assert_true(aw_strhash("some key") == a);
    assert_true(aw_strhash("some kez") != a);
}

/* The hash the table used before. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
    return h;
}

#define NKEYS 16384
#define KEYLEN 16

/* Keys whose FNV-1a hashes share their low 16 bits, so they fall in one
 * bucket of any table of up to 65,536 buckets: the attack. The low bits of
 * FNV-1a depend only on the low bits of its state, and the last step
 * (multiplying by an odd prime) can be undone, so for each prefix and two
 * letters the third letter that lands on the target is computed, not
 * searched for. */
static void craft_colliding(char (*keys)[KEYLEN])
{
    static const char az[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const uint16_t prime = 0x01b3, target = 0x5eed;
    uint16_t inv = 1;                   /* prime^-1 mod 2^16, by Newton */
    for (int i = 0; i < 5; i++)
        inv = (uint16_t)(inv * (2 - prime * inv));
    const uint16_t before_last = (uint16_t)(target * inv);
    size_t made = 0;
    for (unsigned p = 0; made < NKEYS; p++) {
        char s[KEYLEN];
        snprintf(s, sizeof s, "k%08x", p);
        uint64_t hp = fnv1a(s);
        for (int a = 0; a < 62 && made < NKEYS; a++)
            for (int b = 0; b < 62 && made < NKEYS; b++) {
                uint64_t h = (hp ^ (unsigned char)az[a]) * 0x100000001b3ULL;
                h = (h ^ (unsigned char)az[b]) * 0x100000001b3ULL;
                if ((uint16_t)(h ^ before_last) > 0xff)
                    continue;           /* no byte fixes the high bits */
                char c = (char)((h ^ before_last) & 0xff);
                if (!c || !strchr(az, c))
                    continue;
                s[9] = az[a]; s[10] = az[b]; s[11] = c; s[12] = 0;
                memcpy(keys[made++], s, KEYLEN);
            }
    }
}

static void make_random(char (*keys)[KEYLEN])
{
    for (size_t i = 0; i < NKEYS; i++)
        snprintf(keys[i], KEYLEN, "r%08zx%03x", i, (unsigned)rand() & 0xfff);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds to index the keys in a fresh table and look each one up. */
static double table_cost(char (*keys)[KEYLEN])
{
    aw_task_table_t tb;
    aw_task_id_gen_t ids;
    assert_int_equal(aw__table_init(&tb), 0);
    assert_int_equal(aw_task_id_gen_init(&ids), 0);
    double t0 = now_s();
    for (size_t i = 0; i < NKEYS; i++) {
        aw_task_t *t = calloc(1, sizeof *t + sizeof "{}");
        assert_non_null(t);
        memcpy(t->args, "{}", sizeof "{}");
        t->refs = 1;
        aw_task_id_next(&ids, 1700000000000LL + (int64_t)i, t->id);
        assert_int_equal(aw__task_set_string(t, AW_TASK_IDEMPOTENCY_KEY, keys[i]), 0);
        assert_null(aw__table_find_key(&tb, keys[i]));
        assert_int_equal(aw__table_insert(&tb, t), 0);
        aw_task_unref(t);
    }
    for (size_t i = 0; i < NKEYS; i++)
        assert_non_null(aw__table_find_key(&tb, keys[i]));
    double spent = now_s() - t0;
    aw__table_close(&tb);
    return spent;
}

/* With FNV-1a the crafted keys cost about NKEYS/2 string comparisons per
 * lookup (over 1,000 times the random keys); with a keyed hash they cost
 * what random keys cost. The bound is relative, taken as the best of three
 * runs, so a loaded machine slows both sides alike. */
static void crafted_fnv_collisions_cost_what_random_keys_cost(void **state)
{
    (void)state;
    char (*crafted)[KEYLEN] = calloc(NKEYS, KEYLEN);
    char (*random)[KEYLEN] = calloc(NKEYS, KEYLEN);
    assert_non_null(crafted);
    assert_non_null(random);
    craft_colliding(crafted);
    for (size_t i = 1; i < NKEYS; i++)          /* the attack is real */
        assert_true((fnv1a(crafted[i]) & 0xffff) == 0x5eed);
    make_random(random);

    double best_crafted = 1e9, best_random = 1e9;
    for (int run = 0; run < 3; run++) {
        double c = table_cost(crafted), r = table_cost(random);
        if (c < best_crafted) best_crafted = c;
        if (r < best_random) best_random = r;
    }
    print_message("crafted %.2f ms, random %.2f ms\n", best_crafted * 1e3, best_random * 1e3);
    assert_true(best_crafted < 4 * best_random + 0.005);
    free(crafted);
    free(random);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_the_reference_vectors),
        cmocka_unit_test(process_key_is_drawn_once),
        cmocka_unit_test(crafted_fnv_collisions_cost_what_random_keys_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
