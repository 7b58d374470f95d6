/* arith.c: integer corner cases at 8/16/32/64 bits, signed and unsigned.
 *
 * Every (op, type) pair prints one checksum over all pairs of corner values, so a wrong
 * flag or a wrong width shows as one named line. Covers add/sub/mul with overflow flags,
 * division and remainder, comparisons, every shift count, rotates, extensions, byte swaps,
 * bit counts and 128-bit multiply/divide.
 *     ./arith
 */
#include <limits.h>
#include <stdlib.h>

#include "guest.h"

static const uint64_t corner[] = {
    0, 1, 2, 3, 5, 7, 10, 100, 1000003,
    0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff,
    0x7ffe, 0x7fff, 0x8000, 0x8001, 0xffff,
    0x7ffffffe, 0x7fffffff, 0x80000000, 0x80000001, 0xffffffff,
    0x7ffffffffffffffeULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL, 0x8000000000000001ULL,
    0xfffffffffffffffeULL, 0xffffffffffffffffULL, 0xfffffffffffffffdULL,
    0x5555555555555555ULL, 0xaaaaaaaaaaaaaaaaULL, 0x123456789abcdef0ULL, 0xfedcba9876543210ULL,
};
#define NCORNER (sizeof corner / sizeof corner[0])

/* One function per type: the arithmetic, compare and overflow results of all pairs. */
#define PAIRS(T, NAME, TMIN, SIGNED)                                                            \
    static void pairs_##NAME(void)                                                              \
    {                                                                                           \
        uint64_t hadd = 0, hsub = 0, hmul = 0, hlog = 0, hdiv = 0, hcmp = 0, hovf = 0, hmm = 0; \
        for (size_t i = 0; i < NCORNER; i++) {                                                  \
            for (size_t j = 0; j < NCORNER; j++) {                                              \
                T a = opaque((T)corner[i]), b = opaque((T)corner[j]), r;                        \
                hadd = mix(hadd, (uint64_t)(T)((uint64_t)a + (uint64_t)b));                     \
                hsub = mix(hsub, (uint64_t)(T)((uint64_t)a - (uint64_t)b));                     \
                hmul = mix(hmul, (uint64_t)(T)((uint64_t)a * (uint64_t)b));                     \
                hlog = mix(hlog, (uint64_t)(T)(a & b) ^ ((uint64_t)(T)(a | b) << 1)             \
                                     ^ ((uint64_t)(T)(a ^ b) << 2) ^ (uint64_t)(T)~a);          \
                unsigned c = (a < b) | (a <= b) << 1 | (a > b) << 2 | (a >= b) << 3             \
                             | (a == b) << 4 | (a != b) << 5;                                   \
                hcmp = mix(hcmp, c);                                                            \
                unsigned o = __builtin_add_overflow(a, b, &r);                                  \
                hovf = mix(hovf, (uint64_t)r ^ o);                                              \
                o = __builtin_sub_overflow(a, b, &r);                                           \
                hovf = mix(hovf, (uint64_t)r ^ o << 1);                                         \
                o = __builtin_mul_overflow(a, b, &r);                                           \
                hovf = mix(hovf, (uint64_t)r ^ o << 2);                                         \
                hmm = mix(hmm, (uint64_t)(a < b ? a : b) ^ (uint64_t)(a > b ? a : b) << 3);     \
                if (b != 0 && !(SIGNED && sizeof(T) >= 4 && a == (T)(TMIN) && b == (T)-1)) {    \
                    hdiv = mix(hdiv, (uint64_t)(T)(a / b));                                     \
                    hdiv = mix(hdiv, (uint64_t)(T)(a % b));                                     \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        PUT("add." #NAME, hadd); PUT("sub." #NAME, hsub); PUT("mul." #NAME, hmul);              \
        PUT("logic." #NAME, hlog); PUT("cmp." #NAME, hcmp); PUT("overflow." #NAME, hovf);       \
        PUT("minmax." #NAME, hmm); PUT("divrem." #NAME, hdiv);                                  \
    }

PAIRS(uint8_t, u8, 0, 0)
PAIRS(int8_t, s8, INT8_MIN, 1)
PAIRS(uint16_t, u16, 0, 0)
PAIRS(int16_t, s16, INT16_MIN, 1)
PAIRS(uint32_t, u32, 0, 0)
PAIRS(int32_t, s32, INT32_MIN, 1)
PAIRS(uint64_t, u64, 0, 0)
PAIRS(int64_t, s64, INT64_MIN, 1)

/* Every shift count 0..width-1, logical and arithmetic, and every rotate. */
#define SHIFTS(U, S, BITS)                                                                      \
    static void shifts_##BITS(void)                                                             \
    {                                                                                           \
        uint64_t hshl = 0, hshr = 0, hsar = 0, hrot = 0;                                        \
        for (size_t i = 0; i < NCORNER; i += 3) {                                               \
            for (unsigned n = 0; n < BITS; n++) {                                               \
                U x = opaque((U)corner[i]);                                                     \
                unsigned c = opaque(n);                                                         \
                hshl = mix(hshl, (U)(x << c));                                                  \
                hshr = mix(hshr, (U)(x >> c));                                                  \
                hsar = mix(hsar, (uint64_t)(S)((S)x >> c));                                     \
                if (c) {                                                                        \
                    hrot = mix(hrot, (U)((U)(x << c) | (U)(x >> (BITS - c))));                  \
                    hrot = mix(hrot, (U)((U)(x >> c) | (U)(x << (BITS - c))));                  \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        PUT("shl." #BITS, hshl); PUT("shr." #BITS, hshr); PUT("sar." #BITS, hsar);              \
        PUT("rot." #BITS, hrot);                                                                \
    }

SHIFTS(uint8_t, int8_t, 8)
SHIFTS(uint16_t, int16_t, 16)
SHIFTS(uint32_t, int32_t, 32)
SHIFTS(uint64_t, int64_t, 64)

static void unary(void)
{
    uint64_t hext = 0, hswap = 0, hbits = 0, habs = 0;
    for (size_t i = 0; i < NCORNER; i++) {
        uint64_t x = opaque(corner[i]);
        hext = mix(hext, (uint64_t)(int64_t)(int8_t)x);
        hext = mix(hext, (uint64_t)(int64_t)(int16_t)x);
        hext = mix(hext, (uint64_t)(int64_t)(int32_t)x);
        hext = mix(hext, (uint64_t)(uint8_t)x ^ (uint64_t)(uint16_t)x << 8 ^ (uint64_t)(uint32_t)x << 24);
        hswap = mix(hswap, __builtin_bswap16((uint16_t)x));
        hswap = mix(hswap, __builtin_bswap32((uint32_t)x));
        hswap = mix(hswap, __builtin_bswap64(x));
        hbits = mix(hbits, (uint64_t)__builtin_popcountll(x) | (uint64_t)__builtin_popcount((uint32_t)x) << 8
                               | (uint64_t)__builtin_parityll(x) << 16 | (uint64_t)__builtin_ffsll((long long)x) << 24
                               | (uint64_t)__builtin_clrsbll((long long)x) << 32);
        if (x)
            hbits = mix(hbits, (uint64_t)__builtin_clzll(x) | (uint64_t)__builtin_ctzll(x) << 8);
        if ((uint32_t)x)
            hbits = mix(hbits, (uint64_t)__builtin_clz((uint32_t)x) | (uint64_t)__builtin_ctz((uint32_t)x) << 8);
        if ((int64_t)x != INT64_MIN)
            habs = mix(habs, (uint64_t)llabs((long long)x));
        if ((int32_t)x != INT32_MIN)
            habs = mix(habs, (uint64_t)(uint32_t)abs((int)x));
    }
    PUT("extend", hext); PUT("bswap", hswap); PUT("bitcount", hbits); PUT("abs", habs);
}

static void wide(void)
{
    uint64_t hmul = 0, hdiv = 0, hhigh = 0;
    for (size_t i = 0; i < NCORNER; i++) {
        for (size_t j = 0; j < NCORNER; j += 2) {
            uint64_t a = opaque(corner[i]), b = opaque(corner[j]);
            unsigned __int128 p = (unsigned __int128)a * b;
            __int128 sp = (__int128)(int64_t)a * (int64_t)b;
            hhigh = mix(hhigh, (uint64_t)(p >> 64));
            hhigh = mix(hhigh, (uint64_t)((unsigned __int128)sp >> 64));
            unsigned __int128 wa = p + a, wb = ((unsigned __int128)b << 17) | (b >> 3);
            hmul = mix(hmul, (uint64_t)(wa * wb) ^ (uint64_t)((wa * wb) >> 64));
            if (wb) {
                unsigned __int128 q = wa / wb, r = wa % wb;
                hdiv = mix(hdiv, (uint64_t)q ^ (uint64_t)(q >> 64));
                hdiv = mix(hdiv, (uint64_t)r ^ (uint64_t)(r >> 64));
                __int128 sa = -(__int128)wa, sb = (__int128)wb;
                hdiv = mix(hdiv, (uint64_t)(sa / sb) ^ (uint64_t)((sa % sb) >> 64));
            }
        }
    }
    PUT("mul128.high", hhigh); PUT("mul128", hmul); PUT("divrem128", hdiv);
    /* a few explicit lines, so a broken 128-bit path shows its values, not just a hash */
    unsigned __int128 big = ((unsigned __int128)opaque(0x0123456789abcdefULL) << 64) | 0xfedcba9876543210ULL;
    unsigned __int128 q = big / opaque(1000000007ULL);
    printf("u128 / 1e9+7 = %016llx%016llx rem %llu\n", (unsigned long long)(q >> 64),
           (unsigned long long)q, (unsigned long long)(big % opaque(1000000007ULL)));
    printf("INT_MIN/1 = %d, INT64_MIN/1 = %lld, INT_MIN%%1 = %d\n", opaque(INT_MIN) / opaque(1),
           opaque(INT64_MIN) / opaque(1LL), opaque(INT_MIN) % opaque(1));
    printf("-7/2 = %d, -7%%2 = %d, 7/-2 = %d, 7%%-2 = %d, 0xffffffffu/7 = %u\n", opaque(-7) / opaque(2),
           opaque(-7) % opaque(2), opaque(7) / opaque(-2), opaque(7) % opaque(-2), opaque(0xffffffffu) / opaque(7u));
}

int main(void)
{
    pairs_u8(); pairs_s8(); pairs_u16(); pairs_s16();
    pairs_u32(); pairs_s32(); pairs_u64(); pairs_s64();
    shifts_8(); shifts_16(); shifts_32(); shifts_64();
    unary();
    wide();
    return 0;
}
