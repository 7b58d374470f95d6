// bench-group: FP
// bench-quick: 3 64 32
// bench-ref: 1300
// bench-doc: D2Q9 lattice Boltzmann channel flow with obstacles, BGK collision + streaming (like 470.lbm)
/* lbm.c: a lattice Boltzmann fluid solver in double precision, modelled on 470.lbm.
 *
 * A 2-D channel (D2Q9 lattice) with walls at the top and bottom, periodic left and right,
 * a cylinder and scattered square obstacles, driven by a body force. Each time step is one
 * sweep that pulls the populations from the neighbours (bounce-back where a neighbour is an
 * obstacle), computes density and velocity, relaxes towards equilibrium (BGK) and writes the
 * other grid; the grids swap. Like 470.lbm, the cell array is array-of-structures and the
 * loop is memory bound at the reference size.
 *     ./lbm STEPS [NX [NY]]      # default grid 400 x 200
 * Prints `lbm checksum <hash of the final populations' bits> <kinetic energy>`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fphash.h"

/* No fused multiply-add contraction (gcc contracts by default in gnu11 mode on CPUs with FMA,
 * such as AArch64): every multiply and add rounds on its own, so the checksum is the same
 * for every ISA and optimization level. */
#pragma GCC optimize("fp-contract=off")

enum { Q = 9 };
enum { FLUID = 0, OBSTACLE = 1 }; /* cell flags; calloc makes every cell FLUID */

/* D2Q9 velocities: rest, the four axes, the four diagonals; OPP[i] is the reversed one. */
static const int CX[Q] = {0, 1, 0, -1, 0, 1, -1, -1, 1};
static const int CY[Q] = {0, 0, 1, 0, -1, 1, 1, -1, -1};
static const int OPP[Q] = {0, 3, 4, 1, 2, 7, 8, 5, 6};
static const double W[Q] = {4.0 / 9, 1.0 / 9, 1.0 / 9, 1.0 / 9, 1.0 / 9,
                            1.0 / 36, 1.0 / 36, 1.0 / 36, 1.0 / 36};

static const double OMEGA = 1.85;     /* relaxation rate 1/tau: low viscosity, still stable */
static const double FORCE_X = 2.0e-6; /* body force driving the flow along x */

typedef struct {
    int nx, ny;
    double *src, *dst; /* nx * ny cells of Q doubles each */
    uint8_t *flags;
} Lattice;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t xorshift64(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static double uniform(void) /* in [0, 1) with 53 random bits */
{
    return (double)(xorshift64() >> 11) * (1.0 / 9007199254740992.0);
}

static void place_obstacles(Lattice *lat)
{
    int nx = lat->nx, ny = lat->ny;
    for (int x = 0; x < nx; x++) {
        lat->flags[x] = OBSTACLE;
        lat->flags[(size_t)(ny - 1) * nx + x] = OBSTACLE;
    }
    /* a cylinder a quarter of the way down the channel */
    int cx = nx / 4, cy = ny / 2, r = ny / 8 > 1 ? ny / 8 : 1;
    for (int y = 1; y < ny - 1; y++)
        for (int x = 0; x < nx; x++)
            if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
                lat->flags[(size_t)y * nx + x] = OBSTACLE;
    /* porous debris: small squares at random places */
    int count = nx * ny / 300;
    for (int k = 0; k < count; k++) {
        int side = 1 + (int)(xorshift64() % 3);
        int x0 = (int)(xorshift64() % (uint64_t)nx);
        int y0 = 2 + (int)(xorshift64() % (uint64_t)(ny - 4 - side));
        for (int y = y0; y < y0 + side && y < ny - 1; y++)
            for (int x = x0; x < x0 + side; x++)
                lat->flags[(size_t)y * nx + x % nx] = OBSTACLE;
    }
}

static void init_populations(Lattice *lat)
{
    size_t cells = (size_t)lat->nx * lat->ny;
    for (size_t c = 0; c < cells; c++) {
        double *f = lat->src + c * Q;
        if (lat->flags[c] == OBSTACLE) {
            memset(f, 0, Q * sizeof(double));
            continue;
        }
        /* density 1 with a small perturbation, at rest: breaks the symmetry of the flow */
        double rho = 1.0 + 0.01 * (uniform() - 0.5);
        for (int i = 0; i < Q; i++)
            f[i] = W[i] * rho;
    }
    memcpy(lat->dst, lat->src, cells * Q * sizeof(double));
}

/* One pull-stream + BGK collide sweep from src into dst. */
static void stream_collide(const Lattice *lat)
{
    const int nx = lat->nx, ny = lat->ny;
    const double *src = lat->src;
    double *dst = lat->dst;
    for (int y = 0; y < ny; y++) {
        int yn[3] = {y == 0 ? ny - 1 : y - 1, y, y == ny - 1 ? 0 : y + 1};
        for (int x = 0; x < nx; x++) {
            size_t c = (size_t)y * nx + x;
            double *out = dst + c * Q;
            if (lat->flags[c] == OBSTACLE) {
                memcpy(out, src + c * Q, Q * sizeof(double));
                continue;
            }
            int xn[3] = {x == 0 ? nx - 1 : x - 1, x, x == nx - 1 ? 0 : x + 1};
            double f[Q];
#pragma GCC unroll 9
            for (int i = 0; i < Q; i++) {
                /* the population moving along c_i comes from the cell behind */
                size_t from = (size_t)yn[1 - CY[i]] * nx + xn[1 - CX[i]];
                if (lat->flags[from] == OBSTACLE)
                    f[i] = src[c * Q + OPP[i]]; /* halfway bounce-back */
                else
                    f[i] = src[from * Q + i];
            }
            double rho = 0, jx = 0, jy = 0;
#pragma GCC unroll 9
            for (int i = 0; i < Q; i++) {
                rho += f[i];
                jx += CX[i] * f[i];
                jy += CY[i] * f[i];
            }
            double ux = jx / rho, uy = jy / rho;
            double usq = 1.5 * (ux * ux + uy * uy);
#pragma GCC unroll 9
            for (int i = 0; i < Q; i++) {
                double cu = 3.0 * (CX[i] * ux + CY[i] * uy);
                double feq = W[i] * rho * (1.0 + cu + 0.5 * cu * cu - usq);
                out[i] = f[i] - OMEGA * (f[i] - feq) + 3.0 * W[i] * CX[i] * FORCE_X;
            }
        }
    }
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 100;
    int nx = argc > 2 ? atoi(argv[2]) : 400;
    int ny = argc > 3 ? atoi(argv[3]) : 200;
    if (steps < 0 || nx < 8 || ny < 8 || (long)nx * ny > 4000000) {
        fprintf(stderr, "usage: lbm STEPS [NX [NY]], 8 <= NX, NY and NX * NY <= 4e6\n");
        return 2;
    }
    size_t cells = (size_t)nx * ny;
    Lattice lat = {nx, ny, malloc(cells * Q * sizeof(double)), malloc(cells * Q * sizeof(double)),
                   calloc(cells, 1)};
    if (!lat.src || !lat.dst || !lat.flags) {
        perror("malloc");
        return 1;
    }
    place_obstacles(&lat);
    init_populations(&lat);
    for (long t = 0; t < steps; t++) {
        stream_collide(&lat);
        double *swap = lat.src;
        lat.src = lat.dst;
        lat.dst = swap;
    }
    double energy = 0;
    for (size_t c = 0; c < cells; c++) {
        if (lat.flags[c] == OBSTACLE)
            continue;
        const double *f = lat.src + c * Q;
        double rho = 0, jx = 0, jy = 0;
        for (int i = 0; i < Q; i++) {
            rho += f[i];
            jx += CX[i] * f[i];
            jy += CY[i] * f[i];
        }
        energy += 0.5 * (jx * jx + jy * jy) / rho;
    }
    uint64_t h = hash_doubles(0xcbf29ce484222325ULL, lat.src, cells * Q);
    printf("lbm checksum %016llx %.10e\n", (unsigned long long)h, energy);
    free(lat.src);
    free(lat.dst);
    free(lat.flags);
    return 0;
}
