// bench-group: FP
// bench-quick: 1 16
// bench-ref: 6
// bench-doc: sparse linear algebra: CSR assembly, Jacobi-preconditioned conjugate gradient, ratio tests and basis-like updates (like 450.soplex)
/* soplex.c: the numeric core of a sparse solver, modelled on 450.soplex.
 *
 * A sparse symmetric positive definite system (a variable-coefficient 2-D grid operator plus
 * random long-range couplings, made diagonally dominant) is assembled from unsorted triplets
 * into compressed rows: bucket by row, insertion-sort each row by column, merge duplicates.
 * Then ROUNDS times, like the pivots of a simplex method: a right-hand side is made from a
 * target vector, the system is solved by Jacobi-preconditioned conjugate gradients warm-started
 * at the previous solution, a ratio test over the step picks a blocking row, and that row's
 * diagonal is raised (an update that changes the matrix for the next solve).
 *     ./soplex ROUNDS [SIDE]      # SIDE x SIDE grid, default 480 (230400 rows)
 * Prints `soplex checksum <hash of the solutions' bits> <sum of b.x over the rounds>`.
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

typedef struct {
    int row, col;
    double val;
} Triplet;

typedef struct {
    int n;
    int *start, *col, *diag; /* diag[i]: position of a[i][i] in col/val */
    double *val;
} Csr;

static const double TOL = 1e-10;
static const int MAX_ITER = 1000;

static uint64_t rng_state = 0xda3e39cb94b95bdbULL;

static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(splitmix64() >> 11) * (1.0 / 9007199254740992.0);
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) {
        perror("malloc");
        exit(1);
    }
    return p;
}

/* Both halves of a symmetric coupling, plus its weight on the two diagonals. */
static size_t couple(Triplet *t, size_t k, double *diag, int i, int j, double w)
{
    t[k++] = (Triplet){i, j, -w};
    t[k++] = (Triplet){j, i, -w};
    diag[i] += w;
    diag[j] += w;
    return k;
}

static size_t generate(int side, Triplet *t, double *diag)
{
    int n = side * side;
    size_t k = 0;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int i = y * side + x;
            if (x + 1 < side)
                k = couple(t, k, diag, i, i + 1, 1.0 + uniform());
            if (y + 1 < side)
                k = couple(t, k, diag, i, i + side, 0.5 + 2.0 * uniform());
            /* long-range couplings; the same pair may come up twice and must be merged */
            for (int r = 0; r < 2; r++) {
                int j = (int)(splitmix64() % (uint64_t)n);
                if (j != i)
                    k = couple(t, k, diag, i, j, 0.05 * uniform());
            }
        }
    for (int i = 0; i < n; i++)
        t[k++] = (Triplet){i, i, diag[i] * (1.0 + 0.02 * uniform()) + 1e-3};
    return k;
}

static void assemble(Csr *a, int n, const Triplet *t, size_t nt)
{
    a->n = n;
    a->start = calloc((size_t)n + 1, sizeof(int));
    a->diag = xmalloc((size_t)n * sizeof(int));
    int *col = xmalloc(nt * sizeof(int));
    double *val = xmalloc(nt * sizeof(double));
    if (!a->start) {
        perror("calloc");
        exit(1);
    }
    for (size_t k = 0; k < nt; k++)
        a->start[t[k].row + 1]++;
    for (int i = 0; i < n; i++)
        a->start[i + 1] += a->start[i];
    int *fill = xmalloc((size_t)n * sizeof(int));
    memcpy(fill, a->start, (size_t)n * sizeof(int));
    for (size_t k = 0; k < nt; k++) {
        int p = fill[t[k].row]++;
        col[p] = t[k].col;
        val[p] = t[k].val;
    }
    free(fill);
    /* sort each row by column, then merge equal columns in place */
    int out = 0;
    for (int i = 0; i < n; i++) {
        int lo = a->start[i], hi = a->start[i + 1];
        for (int p = lo + 1; p < hi; p++) {
            int c = col[p];
            double v = val[p];
            int q = p - 1;
            while (q >= lo && col[q] > c) {
                col[q + 1] = col[q];
                val[q + 1] = val[q];
                q--;
            }
            col[q + 1] = c;
            val[q + 1] = v;
        }
        a->start[i] = out;
        for (int p = lo; p < hi; p++) {
            if (out > a->start[i] && col[out - 1] == col[p]) {
                val[out - 1] += val[p];
                continue;
            }
            col[out] = col[p];
            val[out] = val[p];
            if (col[p] == i)
                a->diag[i] = out;
            out++;
        }
    }
    a->start[n] = out;
    a->col = col;
    a->val = val;
}

static void spmv(const Csr *a, const double *x, double *y)
{
    for (int i = 0; i < a->n; i++) {
        double s = 0;
        for (int p = a->start[i]; p < a->start[i + 1]; p++)
            s += a->val[p] * x[a->col[p]];
        y[i] = s;
    }
}

static double dot(const double *x, const double *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i] * y[i];
    return s;
}

/* Preconditioned CG on a x = b from the x given; returns the iterations taken. */
static int pcg(const Csr *a, const double *b, double *x, double *r, double *z, double *p, double *q)
{
    int n = a->n;
    spmv(a, x, q);
    for (int i = 0; i < n; i++) {
        r[i] = b[i] - q[i];
        z[i] = r[i] / a->val[a->diag[i]];
        p[i] = z[i];
    }
    double rz = dot(r, z, n), bnorm = sqrt(dot(b, b, n));
    int it = 0;
    while (it < MAX_ITER && sqrt(dot(r, r, n)) > TOL * bnorm) {
        spmv(a, p, q);
        double alpha = rz / dot(p, q, n);
        for (int i = 0; i < n; i++) {
            x[i] += alpha * p[i];
            r[i] -= alpha * q[i];
            z[i] = r[i] / a->val[a->diag[i]];
        }
        double rz_new = dot(r, z, n);
        double beta = rz_new / rz;
        rz = rz_new;
        for (int i = 0; i < n; i++)
            p[i] = z[i] + beta * p[i];
        it++;
    }
    return it;
}

/* The row that blocks the step first when x moves along d and must stay above -1 (-1: none). */
static int ratio_test(const double *x, const double *d, int n)
{
    int best = -1;
    double best_ratio = INFINITY;
    for (int i = 0; i < n; i++) {
        if (d[i] >= -1e-12)
            continue;
        double ratio = (x[i] + 1.0) / -d[i];
        if (ratio < best_ratio) {
            best_ratio = ratio;
            best = i;
        }
    }
    return best;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2;
    int side = argc > 2 ? atoi(argv[2]) : 480;
    if (rounds < 0 || side < 2 || side > 3000) {
        fprintf(stderr, "usage: soplex ROUNDS [SIDE], 2 <= SIDE <= 3000\n");
        return 2;
    }
    int n = side * side;
    double *diag = calloc((size_t)n, sizeof(double));
    Triplet *t = xmalloc((size_t)n * 9 * sizeof(Triplet));
    if (!diag) {
        perror("calloc");
        return 1;
    }
    size_t nt = generate(side, t, diag);
    Csr a;
    assemble(&a, n, t, nt);
    free(t);
    free(diag);
    double *v[8];
    for (int k = 0; k < 8; k++)
        v[k] = calloc((size_t)n, sizeof(double));
    for (int k = 0; k < 8; k++)
        if (!v[k]) {
            perror("calloc");
            return 1;
        }
    double *target = v[0], *b = v[1], *x = v[2], *x_old = v[3], *r = v[4], *z = v[5], *p = v[6], *q = v[7];
    for (int i = 0; i < n; i++)
        target[i] = uniform() - 0.5;
    uint64_t h = 0xcbf29ce484222325ULL;
    double energy = 0;
    long iterations = 0;
    for (long round = 0; round < rounds; round++) {
        spmv(&a, target, b);
        memcpy(x_old, x, (size_t)n * sizeof(double));
        iterations += pcg(&a, b, x, r, z, p, q);
        energy += dot(b, x, n);
        for (int i = 0; i < n; i++)
            r[i] = x[i] - x_old[i];
        int row = ratio_test(x_old, r, n);
        if (row >= 0) {
            /* the blocking row becomes stiffer and its target moves: the next system differs */
            a.val[a.diag[row]] *= 2.0;
            target[row] = -target[row];
        }
        for (int i = 0; i < n; i++)
            target[i] += 0.01 * (uniform() - 0.5);
        h = hash_doubles(h, x, (size_t)n);
        h ^= (uint64_t)row * 0x9e3779b97f4a7c15ULL;
    }
    h ^= (uint64_t)iterations;
    printf("soplex checksum %016llx %.10e\n", (unsigned long long)h, energy);
    for (int k = 0; k < 8; k++)
        free(v[k]);
    free(a.start), free(a.col), free(a.val), free(a.diag);
    return 0;
}
