/* primes.c: the workload of `make run`: count the primes below N with a sieve of
 * Eratosthenes, then check a sample of them by trial division, and print a checksum.
 *
 * About 14 million guest instructions at the default N, so the quick tier finishes in
 * seconds; pass a larger N to make the run long enough for the trace tier to pay off.
 *     ./primes            # primes below 1000000
 *     ./primes 20000000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int is_prime_slow(uint32_t n)
{
    if (n < 2) return 0;
    for (uint32_t d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n < 2 || n > (1L << 32)) {
        fprintf(stderr, "usage: primes [N], 2 <= N <= 2^32\n");
        return 2;
    }
    unsigned char *composite = calloc((size_t)n, 1);
    if (!composite) { perror("calloc"); return 1; }
    for (long i = 2; i * i < n; i++)
        if (!composite[i])
            for (long j = i * i; j < n; j += i)
                composite[j] = 1;
    long count = 0;
    uint64_t sum = 0, hash = 1469598103934665603ULL;
    for (long i = 2; i < n; i++) {
        if (!composite[i]) {
            count++;
            sum += (uint64_t)i;
            hash = (hash ^ (uint64_t)i) * 1099511628211ULL;
        }
    }
    /* trial division agrees with the sieve on a sample of numbers */
    long disagree = 0, step = n / 2000 + 1;
    for (long i = 0; i < n; i += step)
        disagree += is_prime_slow((uint32_t)i) != !composite[i] && i >= 2;
    printf("primes below %ld: %ld\n", n, count);
    printf("sum %llu, hash %016llx, sample disagreements %ld\n", (unsigned long long)sum, (unsigned long long)hash,
           disagree);
    free(composite);
    return disagree != 0;
}
