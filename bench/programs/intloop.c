/* A hot integer loop for measuring the quick tier: xorshift, adds, compares, a table load and
   store, a data-dependent branch. Usage: intloop [iterations] (default 2000000). */
#include <stdio.h>
#include <stdlib.h>

static unsigned table[256];

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    unsigned long x = 88172645463325252UL, sum = 0;
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned k = x & 255;
        table[k] += (unsigned)i;
        if (x & 256)
            sum += table[(k + 1) & 255];
        else
            sum ^= x;
    }
    printf("%lu\n", sum);
    return 0;
}
