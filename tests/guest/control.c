/* control.c: control flow a translator must get right.
 *
 * setjmp/longjmp (glibc mangles the saved pointers with a TLS guard), recursion 100000
 * deep, calls through function pointers, a dense switch compiled to a jump table
 * (indirect jumps), qsort with a comparator, bsearch, variadic functions, and mutual
 * recursion through a table of pointers.
 *     ./control
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>

#include "guest.h"

static jmp_buf env;
static int depth_reached;

static __attribute__((noinline)) void dive(int n)
{
    volatile char pad[32];
    pad[0] = (char)n;
    depth_reached = n;
    if (n == 500) longjmp(env, n + pad[0] - pad[0]);
    if (n > 1000) return;  /* never: tells the compiler the recursion ends */
    dive(n + 1);
}

static void jumps(void)
{
    volatile int rounds = 0;
    int v = setjmp(env);
    rounds++;
    if (v == 0) dive(0);
    printf("longjmp: value %d after %d levels, setjmp returned %d times\n", v, depth_reached, rounds);
    if (rounds < 3) longjmp(env, 0);  /* 0 becomes 1 */
}

/* The address of `local` escapes, so the call is not in tail position: the recursion stays
 * a real recursion with one frame per level. */
static __attribute__((noinline)) long recurse(long n, long *up)
{
    long local = n ^ *up;
    if (n == 0) return local;
    return recurse(n - 1, &local) + (local & 3);
}

static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }
static long shl(long a, long b) { return (long)((unsigned long)a << (b & 15)); }
static long (*const ops[])(long, long) = {add, sub, mul, shl};

static __attribute__((noinline)) uint64_t dense_switch(unsigned x, uint64_t h)
{
    switch (x) {
    case 0: return h * 3 + 1;
    case 1: return h ^ 0x1234;
    case 2: return h + (h >> 7);
    case 3: return h - 99;
    case 4: return ~h;
    case 5: return h * h;
    case 6: return h << 3 | h >> 61;
    case 7: return h / 3 + 7;
    case 8: return h % 1000003;
    case 9: return h & 0xffff0000ffffULL;
    case 10: return h | 0x80;
    case 11: return h + 0x9e3779b97f4a7c15ULL;
    case 12: return __builtin_bswap64(h);
    case 13: return h >> 1;
    case 14: return h * 0x5bd1e995;
    case 15: return h ^ (h >> 31);
    default: return h + x;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_desc(const void *a, const void *b) { return -cmp_u32(a, b); }

static long sum(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    long s = 0;
    for (int i = 0; i < n; i++)
        s = s * 31 + (i % 2 ? (long)va_arg(ap, double) : va_arg(ap, long));
    va_end(ap);
    return s;
}

static int is_even(unsigned n);
static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }
static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }
static int (*volatile parity_fn[])(unsigned) = {is_even, is_odd};

int main(void)
{
    jumps();
    long up = 5;
    printf("recursion 100000: %ld\n", recurse(opaque(100000L), &up));

    long acc = 1;
    for (int i = 0; i < 1000; i++)
        acc = ops[opaque(i) & 3](acc, i + 1);
    printf("function pointers: %ld\n", acc);

    uint64_t h = 7;
    for (unsigned i = 0; i < 5000; i++)
        h = dense_switch(opaque((unsigned)(i * 7 + (unsigned)(h >> 60)) % 18), h);
    printf("switch: %016llx\n", (unsigned long long)h);

    enum { N = 500 };
    static uint32_t a[N];
    rng_seed(99);
    for (int i = 0; i < N; i++) a[i] = (uint32_t)rng() % 5000;
    qsort(a, N, sizeof a[0], cmp_u32);
    int sorted = 1;
    for (int i = 1; i < N; i++) sorted &= a[i - 1] <= a[i];
    printf("qsort: sorted %d, first %u, median %u, last %u, hash %016llx\n", sorted, a[0], a[N / 2], a[N - 1],
           (unsigned long long)mix_bytes(0, a, sizeof a));
    int found = 0, absent = 0;
    for (uint32_t k = 0; k < 5000; k += 11) {
        uint32_t *p = bsearch(&k, a, N, sizeof a[0], cmp_u32);
        if (p) { found++; if (*p != k) printf("bsearch: wrong element for %u\n", k); }
        else absent++;
    }
    printf("bsearch: %d found, %d absent\n", found, absent);
    qsort(a, N, sizeof a[0], cmp_desc);
    printf("qsort desc: first %u, last %u\n", a[0], a[N - 1]);

    printf("varargs: %ld %ld\n", sum(3, 1L, 2.5, 3L), sum(8, 10L, -1.5, 20L, 1e3, 30L, 7.9, -4L, 0.1));
    printf("mutual recursion: %d %d\n", parity_fn[0](opaque(1001u)), parity_fn[1](opaque(2000u)));
    return 0;
}
