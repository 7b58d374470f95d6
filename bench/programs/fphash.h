/* The FP workloads' checksum: a 64-bit FNV-style hash of the raw bits of doubles, so that one
   differently rounded result anywhere changes it (the point: it checks the emulator). */
#ifndef FPHASH_H
#define FPHASH_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint64_t hash_doubles(uint64_t h, const double *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        h = (h ^ bits) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}
#endif
