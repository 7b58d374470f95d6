/* Memory kernel: STREAM-like copy, scale, add and triad on 64-bit integer arrays of 2 MiB each.
   Usage: mem_stream PASSES. Prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#define N (256 * 1024)

static uint64_t a[N], b[N], c[N];

int main(int argc, char **argv) {
    long passes = argc > 1 ? atol(argv[1]) : 10;
    for (long i = 0; i < N; i++) {
        a[i] = (uint64_t)i * 2654435761u;
        b[i] = (uint64_t)i ^ 0x5555;
        c[i] = 0;
    }
    for (long p = 0; p < passes; p++) {
        uint64_t s = (uint64_t)p | 3;
        for (long i = 0; i < N; i++) c[i] = a[i];
        for (long i = 0; i < N; i++) b[i] = s * c[i];
        for (long i = 0; i < N; i++) c[i] = a[i] + b[i];
        for (long i = 0; i < N; i++) a[i] = b[i] + s * c[i] + (a[i] >> 7);
    }
    uint64_t sum = 0;
    for (long i = 0; i < N; i++) sum = sum * 1000003 + (a[i] ^ b[i] ^ c[i]);
    printf("mem_stream %lu\n", (unsigned long)sum);
    return 0;
}
