/*
 * siphash.c — SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012), written from the paper's reference code, and the
 * process's secret hash key (see siphash.h).
 *
 * Why not a library: of what awaitd links or could link on Debian bookworm,
 * nettle 3.8 has no SipHash (it came in 3.9), OpenSSL offers it only as an
 * EVP_MAC that allocates a context per call, and libsodium would be a new
 * dependency for forty lines. tests/unit/test_siphash.c checks this code
 * against the paper's test vectors.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                        \
    do {                                                                \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);       \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                          \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                          \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);       \
    } while (0)

/* Little-endian load, whatever the host's byte order. */
static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t aw_siphash24(const uint8_t key[16], const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    const uint8_t *end = p + (n - n % 8);

    for (; p != end; p += 8) {
        uint64_t m = load64(p);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    /* The last block: the remaining bytes, and the length in the top byte. */
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < n % 8; i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint8_t        process_key[16];
static int            key_rc;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void draw_key(void)
{
    size_t got = 0;
    while (got < sizeof process_key) {
        ssize_t r = getrandom(process_key + got, sizeof process_key - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            key_rc = -errno;
            return;
        }
        got += (size_t)r;
    }
}

int aw_strhash_init(void)
{
    pthread_once(&key_once, draw_key);
    return key_rc;
}

uint64_t aw_strhash(const char *s)
{
    return aw_siphash24(process_key, s, strlen(s));
}
