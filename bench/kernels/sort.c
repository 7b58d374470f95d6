/* Sort kernel: a hand-written quicksort (median of three, insertion sort below 16) on
   pseudo-random ints, repeated. Usage: sort ROUNDS (100000 ints each). Prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#define N 100000

static int v[N];

static void isort(int *a, long n) {
    for (long i = 1; i < n; i++) {
        int x = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > x) { a[j + 1] = a[j]; j--; }
        a[j + 1] = x;
    }
}

static void qs(int *a, long n) {
    while (n > 16) {
        long m = n / 2;
        int p0 = a[0], p1 = a[m], p2 = a[n - 1];
        int p = p0 < p1 ? (p1 < p2 ? p1 : (p0 < p2 ? p2 : p0)) : (p0 < p2 ? p0 : (p1 < p2 ? p2 : p1));
        long i = 0, j = n - 1;
        for (;;) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i >= j) break;
            int t = a[i]; a[i] = a[j]; a[j] = t;
            i++; j--;
        }
        /* recurse into the smaller half, loop on the larger: bounded stack */
        if (j + 1 < n - j - 1) { qs(a, j + 1); a += j + 1; n -= j + 1; }
        else { qs(a + j + 1, n - j - 1); n = j + 1; }
    }
    isort(a, n);
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 5;
    uint32_t x = 2463534242u;
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            v[i] = (int)(x % 1000000) - 500000;
        }
        qs(v, N);
        for (long i = 1; i < N; i++)
            if (v[i - 1] > v[i]) { printf("sort: not sorted at %ld\n", i); return 1; }
        for (long i = 0; i < N; i += 97) sum = sum * 31 + (uint32_t)v[i];
    }
    printf("sort %lu\n", (unsigned long)sum);
    return 0;
}
