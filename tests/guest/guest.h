/* guest.h: what the guest test programs share.
 *
 * A 64-bit mixing checksum, a xorshift PRNG and an optimization barrier, all independent of
 * the libc so that every variant (glibc, static-pie, musl) computes the same numbers.
 * Each program prints deterministic text only: no addresses, times or pids, because the
 * harness compares its output under hqemu byte for byte with its native run.
 *
 *     #include "guest.h"
 *     uint64_t h = 0;
 *     h = mix(h, opaque(x) * 3);
 *     PUT("mul", h);
 */
#ifndef GUEST_H
#define GUEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Hides a value from the optimizer, so the operation under test really runs on the guest
 * CPU instead of being folded at compile time (and is not vectorized away either). */
#define opaque(x) ({ __auto_type o_ = (x); __asm__ volatile("" : "+r"(o_)); o_; })

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static inline uint64_t mix_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t w;
    while (n >= 8) { memcpy(&w, b, 8); h = mix(h, w); b += 8; n -= 8; }
    w = 0;
    while (n) { w = (w << 8) | b[--n]; }
    return mix(h, w);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static inline uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return rng_state = x;
}

static inline void rng_seed(uint64_t s) { rng_state = s ? s : 1; }

#define PUT(name, h) printf("%-24s %016llx\n", (name), (unsigned long long)(h))

/* CHECK(cond): report a failed check with its line and errno and count it; a program
 * prints `failures` at the end (its exit status says nothing the output does not). */
#include <errno.h>
static int failures __attribute__((unused));
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("FAILED line %d: %s (errno %d)\n", __LINE__, #cond, errno); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#endif
