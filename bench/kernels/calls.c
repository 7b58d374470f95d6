/* Call kernel: recursive Fibonacci plus many small functions called through a pointer table.
   Usage: calls N (fib(N), then 8 * fib(N) calls through pointers). Prints a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static uint64_t f_add(uint64_t x, uint64_t y) { return x + y; }
static uint64_t f_xor(uint64_t x, uint64_t y) { return x ^ (y << 1); }
static uint64_t f_mul(uint64_t x, uint64_t y) { return x * (y | 1); }
static uint64_t f_rot(uint64_t x, uint64_t y) { return (x << 9 | x >> 55) + y; }

/* the table is volatile so gcc cannot turn the indirect calls into direct ones */
static uint64_t (*volatile ops[4])(uint64_t, uint64_t) = {f_add, f_xor, f_mul, f_rot};

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 25;
    long f = fib(n);
    uint64_t x = 12345;
    for (long r = 0; r < 8 * f; r++)
        x = ops[(x >> 5) & 3](x, (uint64_t)r);
    printf("calls %ld %lu\n", f, (unsigned long)x);
    return 0;
}
