/* Integer kernel: xorshift64 and a multiplicative hash folded into a small table.
   Usage: int_loop ITERATIONS. Prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static uint32_t table[1024];

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    uint64_t x = 0x9E3779B97F4A7C15ULL, h = 1469598103934665603ULL, acc = 0;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h = (h ^ (x & 0xff)) * 1099511628211ULL;
        h = rotl(h, 23) + (uint64_t)i;
        uint32_t k = (uint32_t)(h >> 40) & 1023;
        table[k] += (uint32_t)x;
        if (h & 0x100)
            acc += table[(k + 7) & 1023];
        else
            acc ^= h >> 3;
    }
    for (int i = 0; i < 1024; i++)
        acc = acc * 31 + table[i];
    printf("int_loop %lu\n", (unsigned long)acc);
    return 0;
}
