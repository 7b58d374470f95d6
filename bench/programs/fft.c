// bench-group: FP
// bench-quick: 3 10
// bench-ref: 600
// bench-doc: iterative radix-2 complex FFT, forward + inverse: big-number multiplication by convolution with carries
/* fft.c: fast Fourier transforms in double precision, as in the spectral cores of 482.sphinx3
 * and the big-number arithmetic of prime searches.
 *
 * Two big numbers of N/2 base-4096 digits are multiplied: both are transformed by an iterative
 * radix-2 decimation-in-time FFT (bit-reversal permutation, then log2 N butterfly passes over
 * a precomputed twiddle table), multiplied pointwise, transformed back, rounded to integers
 * and carried. A few digits of the product are checked against a direct convolution. The low
 * half of the product is the next left operand, so an error in one round spreads to all later
 * ones. The twiddles come from half-angle recurrences with sqrt only: libm's sin and cos
 * differ between CPUs (glibc picks an FMA version where it can), these do not.
 *     ./fft REPS [LOG2N]          # transforms of 2^LOG2N points, default 2^16
 * Prints `fft checksum <hash of the raw inverse transforms' bits and the digits> <the largest
 * distance of a convolution value from its integer>`.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fphash.h"

/* No fused multiply-add contraction (gcc contracts by default in gnu11 mode on CPUs with FMA,
 * such as AArch64): every multiply and add rounds on its own, so the checksum is the same
 * for every ISA and optimization level. */
#pragma GCC optimize("fp-contract=off")

enum { BASE_BITS = 12, BASE = 1 << BASE_BITS, CHECKS = 8 };

typedef struct {
    double re, im;
} Complex;

typedef struct {
    int n, log2n;
    Complex *twiddle; /* twiddle[k] = exp(-2 pi i k / n), k < n / 2 */
    uint32_t *reversed;
} Plan;

static uint64_t rng_state = 0x510e527fade682d1ULL;

static uint32_t digit(void)
{
    rng_state ^= rng_state << 7;
    rng_state ^= rng_state >> 9;
    return (uint32_t)(rng_state >> 20) & (BASE - 1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

static Complex cmul(Complex a, Complex b)
{
    return (Complex){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

static Plan make_plan(int log2n)
{
    Plan p = {1 << log2n, log2n, NULL, NULL};
    int half = p.n / 2;
    p.twiddle = xcalloc(half > 0 ? half : 1, sizeof(Complex));
    p.reversed = xcalloc(p.n, sizeof(uint32_t));
    /* roots[j] = exp(-2 pi i 2^j / n), from exp(-i pi / 2) by halving the angle */
    Complex roots[32];
    double c = 0.0, s = 1.0; /* cos and sin of pi / 2 */
    for (int j = log2n - 2; j >= 0; j--) {
        roots[j] = (Complex){c, -s};
        double c_half = sqrt(0.5 * (1.0 + c));
        s = s / (2.0 * c_half);
        c = c_half;
    }
    /* each k below 2^(j+1) is one below 2^j times roots[j] */
    if (half > 0)
        p.twiddle[0] = (Complex){1.0, 0.0};
    for (int j = 0; (1 << j) < half; j++)
        for (int k = 0; k < (1 << j); k++)
            p.twiddle[k + (1 << j)] = cmul(p.twiddle[k], roots[j]);
    for (int i = 0; i < p.n; i++) {
        uint32_t r = 0;
        for (int b = 0; b < log2n; b++)
            r |= (uint32_t)((i >> b) & 1) << (log2n - 1 - b);
        p.reversed[i] = r;
    }
    return p;
}

/* In place; inverse transforms use the conjugate twiddles and are not scaled. */
static void transform(const Plan *p, Complex *x, int inverse)
{
    for (int i = 0; i < p->n; i++) {
        uint32_t r = p->reversed[i];
        if ((uint32_t)i < r) {
            Complex t = x[i];
            x[i] = x[r];
            x[r] = t;
        }
    }
    for (int len = 2, shift = p->log2n - 1; len <= p->n; len <<= 1, shift--) {
        int half = len / 2;
        for (int start = 0; start < p->n; start += len) {
            Complex *a = x + start, *b = x + start + half;
            for (int k = 0; k < half; k++) {
                Complex w = p->twiddle[k << shift];
                if (inverse)
                    w.im = -w.im;
                Complex t = cmul(w, b[k]);
                b[k] = (Complex){a[k].re - t.re, a[k].im - t.im};
                a[k] = (Complex){a[k].re + t.re, a[k].im + t.im};
            }
        }
    }
}

int main(int argc, char **argv)
{
    long reps = argc > 1 ? atol(argv[1]) : 8;
    int log2n = argc > 2 ? atoi(argv[2]) : 16;
    if (reps < 0 || log2n < 2 || log2n > 22) {
        fprintf(stderr, "usage: fft REPS [LOG2N], 2 <= LOG2N <= 22\n");
        return 2;
    }
    Plan plan = make_plan(log2n);
    int n = plan.n, digits = n / 2;
    uint32_t *a = xcalloc(digits, sizeof(uint32_t)), *b = xcalloc(digits, sizeof(uint32_t));
    uint64_t *product = xcalloc(n, sizeof(uint64_t));
    Complex *fa = xcalloc(n, sizeof(Complex)), *fb = xcalloc(n, sizeof(Complex));
    for (int i = 0; i < digits; i++)
        a[i] = digit();
    uint64_t h = 0xcbf29ce484222325ULL;
    double worst = 0;
    long wrong = 0;
    for (long rep = 0; rep < reps; rep++) {
        for (int i = 0; i < digits; i++)
            b[i] = digit();
        for (int i = 0; i < n; i++) {
            fa[i] = (Complex){i < digits ? a[i] : 0, 0};
            fb[i] = (Complex){i < digits ? b[i] : 0, 0};
        }
        transform(&plan, fa, 0);
        transform(&plan, fb, 0);
        for (int i = 0; i < n; i++)
            fa[i] = cmul(fa[i], fb[i]);
        transform(&plan, fa, 1);
        h = hash_doubles(h, (const double *)fa, 2 * (size_t)n);
        /* round the convolution to integers and note how far it was from them */
        for (int i = 0; i < n; i++) {
            double v = fa[i].re / n, r = floor(v + 0.5);
            if (fabs(v - r) > worst)
                worst = fabs(v - r);
            product[i] = (uint64_t)r;
        }
        /* spot checks against the direct convolution, before the carries */
        for (int c = 0; c < CHECKS; c++) {
            int i = (int)(((uint64_t)rep * 7919 + (uint64_t)c * 104729) % (uint64_t)(n - 1));
            uint64_t direct = 0;
            for (int j = 0; j <= i; j++)
                if (j < digits && i - j < digits)
                    direct += (uint64_t)a[j] * b[i - j];
            wrong += direct != product[i];
        }
        uint64_t carry = 0;
        for (int i = 0; i < n; i++) {
            uint64_t v = product[i] + carry;
            product[i] = v & (BASE - 1);
            carry = v >> BASE_BITS;
            h = (h ^ product[i]) * 0x100000001b3ULL;
        }
        for (int i = 0; i < digits; i++)
            a[i] = (uint32_t)product[i];
    }
    h ^= (uint64_t)wrong;
    if (wrong)
        fprintf(stderr, "fft: %ld spot checks failed\n", wrong);
    printf("fft checksum %016llx %.10e\n", (unsigned long long)h, worst);
    free(plan.twiddle), free(plan.reversed), free(a), free(b), free(product), free(fa), free(fb);
    return 0;
}
