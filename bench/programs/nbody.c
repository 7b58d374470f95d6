// bench-group: FP
// bench-quick: 8 96
// bench-ref: 4000
// bench-doc: direct O(n^2) gravitational n-body with softening, leapfrog, Plummer sphere (sqrt-heavy FP)
/* nbody.c: a star cluster integrated by direct summation in double precision.
 *
 * N stars drawn from a Plummer sphere (positions and speeds by inverse sampling of its
 * distribution, virialised), integrated with the kick-drift-kick leapfrog. The accelerations
 * are summed over all pairs (each pair once, both sides updated) with Plummer softening, so
 * the inner loop is a sqrt and a division per pair. Every few steps the cluster's diagnostics
 * (energy, virial ratio, closest pair) are taken, as an astrophysics code would.
 *     ./nbody STEPS [N]           # default N = 512
 * Prints `nbody checksum <hash of the final positions' and velocities' bits> <total energy>`.
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
    int n;
    double *x, *y, *z, *vx, *vy, *vz, *ax, *ay, *az, *m;
} Cluster;

static const double EPS2 = 1e-4; /* softening length squared, in units where G = M = 1 */
static const double DT = 1e-3;

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static double uniform(void) /* in (0, 1): xorshift64*, 53 bits, never 0 */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545f4914f6cdd1dULL;
    return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* The cube root by Newton's method with a fixed number of steps: libm's cbrt is not correctly
 * rounded and differs between x86-64 and AArch64, this one is the same everywhere. */
static double cube_root(double v) /* v > 0 */
{
    double y = v > 1.0 ? v : 1.0;
    for (int k = 0; k < 100; k++)
        y = (2.0 * y + v / (y * y)) / 3.0;
    return y;
}

/* A random direction scaled to length r: rejection from the cube, so no sin or cos (whose libm
 * versions differ between CPUs) enters the result. */
static void isotropic(double r, double *x, double *y, double *z)
{
    double a, b, c, s2;
    do {
        a = 2.0 * uniform() - 1.0;
        b = 2.0 * uniform() - 1.0;
        c = 2.0 * uniform() - 1.0;
        s2 = a * a + b * b + c * c;
    } while (s2 > 1.0 || s2 < 1e-6);
    double scale = r / sqrt(s2);
    *x = a * scale;
    *y = b * scale;
    *z = c * scale;
}

static void plummer(Cluster *c)
{
    double cm[6] = {0};
    for (int i = 0; i < c->n; i++) {
        c->m[i] = 1.0 / c->n;
        /* radius from the inverse cumulative mass, clipped so no star starts far away */
        double u;
        do u = uniform(); while (u > 0.99);
        double cu = cube_root(u);
        double r = 1.0 / sqrt(1.0 / (cu * cu) - 1.0);
        isotropic(r, &c->x[i], &c->y[i], &c->z[i]);
        /* speed by rejection from g(q) = q^2 (1 - q^2)^3.5 (Aarseth, Henon, Wielen 1974) */
        double q, w, g;
        do {
            q = uniform();
            w = 1.0 - q * q;
            g = 0.1 * uniform();
        } while (g > q * q * w * w * w * sqrt(w));
        double v = q * M_SQRT2 / sqrt(sqrt(1.0 + r * r));
        isotropic(v, &c->vx[i], &c->vy[i], &c->vz[i]);
        cm[0] += c->m[i] * c->x[i], cm[1] += c->m[i] * c->y[i], cm[2] += c->m[i] * c->z[i];
        cm[3] += c->m[i] * c->vx[i], cm[4] += c->m[i] * c->vy[i], cm[5] += c->m[i] * c->vz[i];
    }
    for (int i = 0; i < c->n; i++) {
        c->x[i] -= cm[0], c->y[i] -= cm[1], c->z[i] -= cm[2];
        c->vx[i] -= cm[3], c->vy[i] -= cm[4], c->vz[i] -= cm[5];
    }
}

static void accelerations(Cluster *c)
{
    int n = c->n;
    memset(c->ax, 0, n * sizeof(double));
    memset(c->ay, 0, n * sizeof(double));
    memset(c->az, 0, n * sizeof(double));
    for (int i = 0; i < n; i++) {
        double xi = c->x[i], yi = c->y[i], zi = c->z[i], mi = c->m[i];
        double axi = 0, ayi = 0, azi = 0;
        for (int j = i + 1; j < n; j++) {
            double dx = c->x[j] - xi, dy = c->y[j] - yi, dz = c->z[j] - zi;
            double r2 = dx * dx + dy * dy + dz * dz + EPS2;
            double inv3 = 1.0 / (r2 * sqrt(r2));
            double si = c->m[j] * inv3, sj = mi * inv3;
            axi += dx * si, ayi += dy * si, azi += dz * si;
            c->ax[j] -= dx * sj, c->ay[j] -= dy * sj, c->az[j] -= dz * sj;
        }
        c->ax[i] += axi, c->ay[i] += ayi, c->az[i] += azi;
    }
}

typedef struct {
    double kinetic, potential, rmin2;
} Diagnostics;

static Diagnostics diagnose(const Cluster *c)
{
    Diagnostics d = {0, 0, INFINITY};
    for (int i = 0; i < c->n; i++) {
        d.kinetic += 0.5 * c->m[i] * (c->vx[i] * c->vx[i] + c->vy[i] * c->vy[i] + c->vz[i] * c->vz[i]);
        for (int j = i + 1; j < c->n; j++) {
            double dx = c->x[j] - c->x[i], dy = c->y[j] - c->y[i], dz = c->z[j] - c->z[i];
            double r2 = dx * dx + dy * dy + dz * dz;
            if (r2 < d.rmin2)
                d.rmin2 = r2;
            d.potential -= c->m[i] * c->m[j] / sqrt(r2 + EPS2);
        }
    }
    return d;
}

static void kick(Cluster *c, double h)
{
    for (int i = 0; i < c->n; i++)
        c->vx[i] += h * c->ax[i], c->vy[i] += h * c->ay[i], c->vz[i] += h * c->az[i];
}

static void drift(Cluster *c, double h)
{
    for (int i = 0; i < c->n; i++)
        c->x[i] += h * c->vx[i], c->y[i] += h * c->vy[i], c->z[i] += h * c->vz[i];
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 10;
    int n = argc > 2 ? atoi(argv[2]) : 512;
    if (steps < 0 || n < 2 || n > 100000) {
        fprintf(stderr, "usage: nbody STEPS [N], 2 <= N <= 100000\n");
        return 2;
    }
    Cluster c = {.n = n};
    double **fields[] = {&c.x, &c.y, &c.z, &c.vx, &c.vy, &c.vz, &c.ax, &c.ay, &c.az, &c.m};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        if (!(*fields[k] = calloc((size_t)n, sizeof(double)))) {
            perror("calloc");
            return 1;
        }
    plummer(&c);
    accelerations(&c);
    Diagnostics d0 = diagnose(&c);
    uint64_t h = 0xcbf29ce484222325ULL;
    double closest = d0.rmin2, virial = 0;
    for (long t = 1; t <= steps; t++) {
        kick(&c, 0.5 * DT);
        drift(&c, DT);
        accelerations(&c);
        kick(&c, 0.5 * DT);
        if (t % 64 == 0 || t == steps) {
            Diagnostics d = diagnose(&c);
            if (d.rmin2 < closest)
                closest = d.rmin2;
            virial = -2.0 * d.kinetic / d.potential;
            h = hash_doubles(h, &virial, 1);
        }
    }
    Diagnostics d = diagnose(&c);
    double drift_e = (d.kinetic + d.potential) - (d0.kinetic + d0.potential);
    h = hash_doubles(h, &closest, 1);
    h = hash_doubles(h, &drift_e, 1);
    for (size_t k = 0; k < 6; k++)
        h = hash_doubles(h, *fields[k], (size_t)n);
    printf("nbody checksum %016llx %.10e\n", (unsigned long long)h, d.kinetic + d.potential);
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
        free(*fields[k]);
    return 0;
}
