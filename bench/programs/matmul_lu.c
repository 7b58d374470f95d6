// bench-group: FP
// bench-quick: 2 48
// bench-ref: 60
// bench-doc: dense linear algebra: blocked matrix multiply, LU with partial pivoting, triangular solves, residual
/* matmul_lu.c: dense double-precision linear algebra, the kernels of LINPACK-style codes.
 *
 * REPS times: C = A B by a cache-blocked triple loop, then C is factored P C = L U with partial
 * pivoting (row exchanges done in place, as LAPACK's dgetrf does), C x = b is solved by forward
 * and back substitution, and the residual b - C x is measured against the unfactored product.
 * Between repetitions one row of A is perturbed, so every product and factorization differs.
 *     ./matmul_lu REPS [N]        # N x N matrices, default N = 384
 * Prints `matmul_lu checksum <hash of the solutions' and pivots' bits> <sum of residual norms>`.
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

enum { BLOCK = 32 };

static uint64_t rng_state = 0x6a09e667f3bcc909ULL;

static double symmetric_uniform(void) /* in [-1, 1) */
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static double *matrix(int n)
{
    double *m = calloc((size_t)n * n, sizeof(double));
    if (!m) {
        perror("calloc");
        exit(1);
    }
    return m;
}

/* c = a b, all n x n row-major; blocked so that the three tiles stay in the cache */
static void matmul(const double *a, const double *b, double *c, int n)
{
    memset(c, 0, (size_t)n * n * sizeof(double));
    for (int ii = 0; ii < n; ii += BLOCK)
        for (int kk = 0; kk < n; kk += BLOCK)
            for (int jj = 0; jj < n; jj += BLOCK) {
                int imax = ii + BLOCK < n ? ii + BLOCK : n;
                int kmax = kk + BLOCK < n ? kk + BLOCK : n;
                int jmax = jj + BLOCK < n ? jj + BLOCK : n;
                for (int i = ii; i < imax; i++) {
                    double *ci = c + (size_t)i * n;
                    for (int k = kk; k < kmax; k++) {
                        double aik = a[(size_t)i * n + k];
                        const double *bk = b + (size_t)k * n;
                        for (int j = jj; j < jmax; j++)
                            ci[j] += aik * bk[j];
                    }
                }
            }
}

/* In-place LU with partial pivoting; piv[k] is the row exchanged with row k. Returns 0 if singular. */
static int lu_factor(double *a, int *piv, int n)
{
    for (int k = 0; k < n; k++) {
        int p = k;
        double best = fabs(a[(size_t)k * n + k]);
        for (int i = k + 1; i < n; i++) {
            double v = fabs(a[(size_t)i * n + k]);
            if (v > best) {
                best = v;
                p = i;
            }
        }
        piv[k] = p;
        if (best == 0.0)
            return 0;
        if (p != k) {
            double *rk = a + (size_t)k * n, *rp = a + (size_t)p * n;
            for (int j = 0; j < n; j++) {
                double t = rk[j];
                rk[j] = rp[j];
                rp[j] = t;
            }
        }
        const double *rk = a + (size_t)k * n;
        double inv = 1.0 / rk[k];
        for (int i = k + 1; i < n; i++) {
            double *ri = a + (size_t)i * n;
            double l = ri[k] * inv;
            ri[k] = l;
            if (l == 0.0)
                continue;
            for (int j = k + 1; j < n; j++)
                ri[j] -= l * rk[j];
        }
    }
    return 1;
}

/* Solves L U x = P b for the factors of lu_factor; x holds b on entry. */
static void lu_solve(const double *lu, const int *piv, double *x, int n)
{
    for (int k = 0; k < n; k++)
        if (piv[k] != k) {
            double t = x[k];
            x[k] = x[piv[k]];
            x[piv[k]] = t;
        }
    for (int i = 0; i < n; i++) {
        const double *ri = lu + (size_t)i * n;
        double s = x[i];
        for (int j = 0; j < i; j++)
            s -= ri[j] * x[j];
        x[i] = s;
    }
    for (int i = n - 1; i >= 0; i--) {
        const double *ri = lu + (size_t)i * n;
        double s = x[i];
        for (int j = i + 1; j < n; j++)
            s -= ri[j] * x[j];
        x[i] = s / ri[i];
    }
}

/* max |b - c x| / (max |c| * max |x| * n): the backward error LINPACK reports */
static double residual(const double *c, const double *x, const double *b, int n)
{
    double rmax = 0, cmax = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        const double *ci = c + (size_t)i * n;
        double s = b[i];
        for (int j = 0; j < n; j++) {
            s -= ci[j] * x[j];
            if (fabs(ci[j]) > cmax)
                cmax = fabs(ci[j]);
        }
        if (fabs(s) > rmax)
            rmax = fabs(s);
        if (fabs(x[i]) > xmax)
            xmax = fabs(x[i]);
    }
    return rmax / (cmax * xmax * n);
}

int main(int argc, char **argv)
{
    long reps = argc > 1 ? atol(argv[1]) : 4;
    int n = argc > 2 ? atoi(argv[2]) : 384;
    if (reps < 0 || n < 1 || n > 4000) {
        fprintf(stderr, "usage: matmul_lu REPS [N], 1 <= N <= 4000\n");
        return 2;
    }
    double *a = matrix(n), *b = matrix(n), *c = matrix(n), *lu = matrix(n);
    double *rhs = calloc((size_t)n, sizeof(double)), *x = calloc((size_t)n, sizeof(double));
    int *piv = calloc((size_t)n, sizeof(int));
    if (!rhs || !x || !piv) {
        perror("calloc");
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = symmetric_uniform();
        b[i] = symmetric_uniform();
    }
    for (int i = 0; i < n; i++)
        rhs[i] = symmetric_uniform();
    uint64_t h = 0xcbf29ce484222325ULL;
    double residuals = 0;
    int singular = 0;
    for (long rep = 0; rep < reps; rep++) {
        double *row = a + (size_t)(rep % n) * n;
        for (int j = 0; j < n; j++)
            row[j] = 0.5 * row[j] + 0.5 * symmetric_uniform();
        matmul(a, b, c, n);
        memcpy(lu, c, (size_t)n * n * sizeof(double));
        if (!lu_factor(lu, piv, n)) {
            singular++;
            continue;
        }
        memcpy(x, rhs, (size_t)n * sizeof(double));
        lu_solve(lu, piv, x, n);
        residuals += residual(c, x, rhs, n);
        h = hash_doubles(h, x, (size_t)n);
        for (int k = 0; k < n; k++)
            h = (h ^ (uint64_t)piv[k]) * 0x100000001b3ULL;
    }
    h = hash_doubles(h, lu, (size_t)n * n);
    h ^= (uint64_t)singular;
    printf("matmul_lu checksum %016llx %.10e\n", (unsigned long long)h, residuals);
    free(a), free(b), free(c), free(lu), free(rhs), free(x), free(piv);
    return 0;
}
