// bench-group: FP
// bench-quick: 2 160
// bench-ref: 1300
// bench-doc: molecular dynamics: Lennard-Jones + Coulomb with a cutoff, cell + Verlet neighbour lists, velocity Verlet (like 444.namd)
/* namd.c: short-range molecular dynamics in double precision, modelled on 444.namd's inner loop.
 *
 * A periodic box of charged Lennard-Jones particles (a molten salt: two species of opposite
 * charge and different masses, started on a jittered rock-salt lattice). Forces are
 * Lennard-Jones plus shifted-force Coulomb, both cut off at RC. Pairs come from a Verlet
 * neighbour list built from linked-list cells and rebuilt only when some particle moved more
 * than half the skin; time stepping is velocity Verlet with a weak Berendsen thermostat.
 *     ./namd STEPS [N]            # default N = 4000 particles
 * Prints `namd checksum <hash of the final positions' and velocities' bits> <total energy>`.
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

static const double DENSITY = 0.8, RC = 2.5, SKIN = 0.3, DT = 0.004, TEMP = 1.0, CHARGE = 0.5;

typedef struct {
    double x, y, z;
} Vec;

typedef struct {
    int n;
    double box, half;
    Vec *pos, *vel, *force, *pos0; /* pos0: positions when the list was built */
    double *charge, *inv_mass;
    /* linked-list cells */
    int ncell, *head, *next;
    /* half neighbour list in CSR form: the partners j > i of i are list[start[i] .. start[i+1]) */
    int *start, *list;
    size_t list_cap;
    long rebuilds;
} System;

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static double uniform(void) /* in [0, 1), a 64-bit LCG's top 53 bits */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
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

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

static double wrap(double v, double box)
{
    while (v >= box)
        v -= box;
    while (v < 0)
        v += box;
    return v;
}

static double min_image(double d, double box, double half)
{
    if (d > half)
        return d - box;
    if (d < -half)
        return d + box;
    return d;
}

static void setup(System *s)
{
    int k = 1;
    while (k * k * k < s->n)
        k++;
    if (k % 2)
        k++; /* an even lattice keeps the rock-salt pattern periodic */
    double a = s->box / k;
    long sites = (long)k * k * k;
    for (int i = 0; i < s->n; i++) {
        /* spread the particles evenly over the sites when the lattice is not full */
        long site = (long)i * sites / s->n;
        int ix = (int)(site / (k * k)), iy = (int)(site / k % k), iz = (int)(site % k);
        Vec *p = &s->pos[i];
        p->x = wrap((ix + 0.5 + 0.1 * (uniform() - 0.5)) * a, s->box);
        p->y = wrap((iy + 0.5 + 0.1 * (uniform() - 0.5)) * a, s->box);
        p->z = wrap((iz + 0.5 + 0.1 * (uniform() - 0.5)) * a, s->box);
        int anion = (ix + iy + iz) & 1;
        s->charge[i] = anion ? -CHARGE : CHARGE;
        s->inv_mass[i] = anion ? 0.5 : 1.0;
    }
    Vec p = {0, 0, 0};
    double mass = 0;
    for (int i = 0; i < s->n; i++) {
        double m = 1.0 / s->inv_mass[i];
        s->vel[i] = (Vec){uniform() - 0.5, uniform() - 0.5, uniform() - 0.5};
        p.x += m * s->vel[i].x, p.y += m * s->vel[i].y, p.z += m * s->vel[i].z;
        mass += m;
    }
    for (int i = 0; i < s->n; i++)
        s->vel[i].x -= p.x / mass, s->vel[i].y -= p.y / mass, s->vel[i].z -= p.z / mass;
}

static int cell_of(const System *s, const Vec *p)
{
    int nc = s->ncell;
    if (nc < 3)
        return 0;
    int cx = (int)(p->x / s->box * nc), cy = (int)(p->y / s->box * nc), cz = (int)(p->z / s->box * nc);
    cx = cx >= nc ? nc - 1 : cx, cy = cy >= nc ? nc - 1 : cy, cz = cz >= nc ? nc - 1 : cz;
    return (cx * nc + cy) * nc + cz;
}

static void push_pair(System *s, size_t *len, int j)
{
    if (*len == s->list_cap) {
        s->list_cap *= 2;
        s->list = realloc(s->list, s->list_cap * sizeof(int));
        if (!s->list) {
            perror("realloc");
            exit(1);
        }
    }
    s->list[(*len)++] = j;
}

static const int HALF_SHELL[13][3] = {
    {0, 0, 1}, {0, 1, -1}, {0, 1, 0}, {0, 1, 1}, {1, -1, -1}, {1, -1, 0}, {1, -1, 1},
    {1, 0, -1}, {1, 0, 0}, {1, 0, 1}, {1, 1, -1}, {1, 1, 0}, {1, 1, 1},
};

static int in_range(const System *s, const Vec *pi, int j, double rl2)
{
    double dx = min_image(s->pos[j].x - pi->x, s->box, s->half);
    double dy = min_image(s->pos[j].y - pi->y, s->box, s->half);
    double dz = min_image(s->pos[j].z - pi->z, s->box, s->half);
    return dx * dx + dy * dy + dz * dz < rl2;
}

/* Wraps the positions into the box, sorts them into cells and rebuilds the neighbour list. */
static void build_list(System *s)
{
    const double rl2 = (RC + SKIN) * (RC + SKIN);
    int nc = s->ncell, ncells = nc < 3 ? 1 : nc * nc * nc;
    for (int c = 0; c < ncells; c++)
        s->head[c] = -1;
    for (int i = s->n - 1; i >= 0; i--) {
        Vec *p = &s->pos[i];
        p->x = wrap(p->x, s->box), p->y = wrap(p->y, s->box), p->z = wrap(p->z, s->box);
        s->pos0[i] = *p;
        int c = cell_of(s, p);
        s->next[i] = s->head[c];
        s->head[c] = i;
    }
    size_t len = 0;
    for (int i = 0; i < s->n; i++) {
        s->start[i] = (int)len;
        Vec pi = s->pos[i];
        if (nc < 3) {
            /* a box too small for cells: every later particle is a candidate */
            for (int j = i + 1; j < s->n; j++)
                if (in_range(s, &pi, j, rl2))
                    push_pair(s, &len, j);
            continue;
        }
        int c = cell_of(s, &pi), cx = c / (nc * nc), cy = c / nc % nc, cz = c % nc;
        for (int j = s->head[c]; j >= 0; j = s->next[j])
            if (j > i && in_range(s, &pi, j, rl2))
                push_pair(s, &len, j);
        /* the half shell: each pair of neighbouring cells is visited from one side only */
        for (int d = 0; d < 13; d++) {
            int dx = HALF_SHELL[d][0], dy = HALF_SHELL[d][1], dz = HALF_SHELL[d][2];
            int nb = (((cx + dx + nc) % nc) * nc + (cy + dy + nc) % nc) * nc + (cz + dz + nc) % nc;
            for (int j = s->head[nb]; j >= 0; j = s->next[j])
                if (in_range(s, &pi, j, rl2))
                    push_pair(s, &len, j);
        }
    }
    s->start[s->n] = (int)len;
    s->rebuilds++;
}

/* Forces into s->force; returns the potential energy. */
static double compute_forces(System *s)
{
    const double rc2 = RC * RC, inv_rc = 1.0 / RC, inv_rc2 = 1.0 / rc2;
    const double s6c = inv_rc2 * inv_rc2 * inv_rc2, elj_shift = 4.0 * s6c * (s6c - 1.0);
    memset(s->force, 0, s->n * sizeof(Vec));
    double epot = 0;
    for (int i = 0; i < s->n; i++) {
        Vec pi = s->pos[i], fi = {0, 0, 0};
        double qi = s->charge[i];
        for (int k = s->start[i]; k < s->start[i + 1]; k++) {
            int j = s->list[k];
            double dx = min_image(pi.x - s->pos[j].x, s->box, s->half);
            double dy = min_image(pi.y - s->pos[j].y, s->box, s->half);
            double dz = min_image(pi.z - s->pos[j].z, s->box, s->half);
            double r2 = dx * dx + dy * dy + dz * dz;
            if (r2 >= rc2)
                continue;
            double inv_r2 = 1.0 / r2, s6 = inv_r2 * inv_r2 * inv_r2;
            double r = sqrt(r2), qq = qi * s->charge[j];
            /* shifted-force Coulomb: force and energy both go to zero at RC */
            double fscal = 24.0 * s6 * (2.0 * s6 - 1.0) * inv_r2 + qq * (inv_r2 - inv_rc2) / r;
            epot += 4.0 * s6 * (s6 - 1.0) - elj_shift + qq * (1.0 / r - inv_rc + (r - RC) * inv_rc2);
            fi.x += fscal * dx, fi.y += fscal * dy, fi.z += fscal * dz;
            s->force[j].x -= fscal * dx, s->force[j].y -= fscal * dy, s->force[j].z -= fscal * dz;
        }
        s->force[i].x += fi.x, s->force[i].y += fi.y, s->force[i].z += fi.z;
    }
    return epot;
}

static double kinetic(const System *s)
{
    double e = 0;
    for (int i = 0; i < s->n; i++) {
        const Vec *v = &s->vel[i];
        e += 0.5 * (v->x * v->x + v->y * v->y + v->z * v->z) / s->inv_mass[i];
    }
    return e;
}

static void half_kick(System *s)
{
    for (int i = 0; i < s->n; i++) {
        double h = 0.5 * DT * s->inv_mass[i];
        s->vel[i].x += h * s->force[i].x, s->vel[i].y += h * s->force[i].y, s->vel[i].z += h * s->force[i].z;
    }
}

/* Moves the particles; returns whether one went further than half the skin since the last build. */
static int drift(System *s)
{
    double max2 = 0;
    for (int i = 0; i < s->n; i++) {
        Vec *p = &s->pos[i];
        p->x += DT * s->vel[i].x, p->y += DT * s->vel[i].y, p->z += DT * s->vel[i].z;
        double dx = p->x - s->pos0[i].x, dy = p->y - s->pos0[i].y, dz = p->z - s->pos0[i].z;
        double d2 = dx * dx + dy * dy + dz * dz;
        if (d2 > max2)
            max2 = d2;
    }
    return 4.0 * max2 > SKIN * SKIN;
}

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 20;
    int n = argc > 2 ? atoi(argv[2]) : 4000;
    System s = {.n = n};
    s.box = cube_root(n / DENSITY);
    s.half = 0.5 * s.box;
    s.ncell = (int)(s.box / (RC + SKIN));
    if (steps < 0 || n > 2000000 || s.half < RC + SKIN) {
        fprintf(stderr, "usage: namd STEPS [N], 150 <= N <= 2000000\n");
        return 2;
    }
    s.pos = xcalloc(n, sizeof(Vec)), s.vel = xcalloc(n, sizeof(Vec));
    s.force = xcalloc(n, sizeof(Vec)), s.pos0 = xcalloc(n, sizeof(Vec));
    s.charge = xcalloc(n, sizeof(double)), s.inv_mass = xcalloc(n, sizeof(double));
    s.head = xcalloc(s.ncell < 3 ? 1 : (size_t)s.ncell * s.ncell * s.ncell, sizeof(int));
    s.next = xcalloc(n, sizeof(int)), s.start = xcalloc(n + 1, sizeof(int));
    s.list_cap = (size_t)n * 16;
    s.list = xcalloc(s.list_cap, sizeof(int));
    setup(&s);
    build_list(&s);
    double epot = compute_forces(&s);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (long t = 1; t <= steps; t++) {
        half_kick(&s);
        if (drift(&s))
            build_list(&s);
        epot = compute_forces(&s);
        half_kick(&s);
        if (t % 10 == 0) {
            /* Berendsen: pull the temperature a tenth of the way to TEMP */
            double temp = 2.0 * kinetic(&s) / (3.0 * n);
            double lambda = sqrt(1.0 + 0.1 * (TEMP / temp - 1.0));
            for (int i = 0; i < n; i++)
                s.vel[i].x *= lambda, s.vel[i].y *= lambda, s.vel[i].z *= lambda;
            h = hash_doubles(h, &temp, 1);
        }
    }
    double etot = epot + kinetic(&s);
    h = hash_doubles(h, (const double *)s.pos, 3 * (size_t)n);
    h = hash_doubles(h, (const double *)s.vel, 3 * (size_t)n);
    h ^= (uint64_t)s.rebuilds;
    printf("namd checksum %016llx %.10e\n", (unsigned long long)h, etot);
    free(s.pos), free(s.vel), free(s.force), free(s.pos0), free(s.charge), free(s.inv_mass);
    free(s.head), free(s.next), free(s.start), free(s.list);
    return 0;
}
