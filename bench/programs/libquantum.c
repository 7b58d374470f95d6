/* libquantum: simulation of a quantum register running Shor-like period finding, modelled on
   462.libquantum. The register is a list of basis states (bit patterns) with complex amplitudes in
   Q30 fixed point, so the work is integer bit manipulation as in libquantum's hot loops (Toffoli,
   CNOT, sigma-x over every basis state), plus Hadamard gates that find partner states through a
   hash table and drop vanishing amplitudes, controlled phases and a quantum Fourier transform.
   Each run computes a^x mod N into a register, exercises a Vedral-Barenco-Ekert ripple adder built
   from Toffoli and CNOT gates (checked and uncomputed), applies the QFT and reads the period from
   the most probable outcome by continued fractions. Usage: libquantum [runs] (default 4). */
// bench-group: INT
// bench-quick: 1
// bench-ref: 4000
// bench-doc: quantum register simulation (Toffoli/CNOT/Hadamard gates, QFT, Shor-like period finding) with integer state bit manipulation (like 462.libquantum)
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONE (1 << 30)
#define EPS 64             /* amplitudes below this (Q30) are dropped, like libquantum's epsilon */

typedef struct {
    uint64_t state;
    int32_t re, im;
} qnode_t;

typedef struct {
    int size, cap, hashw;
    qnode_t *node;
    int *hash;             /* index + 1, 0 for empty */
} qreg_t;

static uint64_t rng = 0xD1B54A32D192ED03ULL;

static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int32_t fmul(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * b + (1 << 29)) >> 30);
}

static unsigned hash64(uint64_t key, int w) {
    return (unsigned)((key * 0x9E3779B97F4A7C15ULL) >> (64 - w));
}

static void reg_reserve(qreg_t *r, int need) {
    if (need <= r->cap) return;
    while (r->cap < need) r->cap *= 2;
    r->node = realloc(r->node, sizeof(qnode_t) * (size_t)r->cap);
}

static void hash_insert(qreg_t *r, uint64_t s, int idx) {
    unsigned mask = (1u << r->hashw) - 1, i = hash64(s, r->hashw);
    while (r->hash[i]) i = (i + 1) & mask;
    r->hash[i] = idx + 1;
}

static int hash_find(const qreg_t *r, uint64_t s) {
    unsigned mask = (1u << r->hashw) - 1, i = hash64(s, r->hashw);
    while (r->hash[i]) {
        if (r->node[r->hash[i] - 1].state == s) return r->hash[i] - 1;
        i = (i + 1) & mask;
    }
    return -1;
}

static void reconstruct_hash(qreg_t *r, int need) {
    int w = 4;
    while ((1 << w) < 2 * need) w++;
    if (w != r->hashw) {
        free(r->hash);
        r->hashw = w;
        r->hash = malloc(sizeof(int) << w);
    }
    memset(r->hash, 0, sizeof(int) << w);
    for (int i = 0; i < r->size; i++) hash_insert(r, r->node[i].state, i);
}

/* --- the permutation gates: pure bit manipulation over every basis state --- */
static void toffoli(qreg_t *r, int c1, int c2, int t) {
    uint64_t m = 1ULL << c1 | 1ULL << c2;
    for (int i = 0; i < r->size; i++)
        if ((r->node[i].state & m) == m) r->node[i].state ^= 1ULL << t;
}

static void cnot(qreg_t *r, int c, int t) {
    for (int i = 0; i < r->size; i++)
        if (r->node[i].state >> c & 1) r->node[i].state ^= 1ULL << t;
}

static void sigma_x(qreg_t *r, int t) {
    for (int i = 0; i < r->size; i++) r->node[i].state ^= 1ULL << t;
}

static int32_t cos_tab[40], sin_tab[40];

/* Multiplies the amplitude of states with both bits set by exp(i*pi/2^k). */
static void cond_phase(qreg_t *r, int c, int t, int k) {
    uint64_t m = 1ULL << c | 1ULL << t;
    int32_t cs = cos_tab[k], sn = sin_tab[k];
    for (int i = 0; i < r->size; i++) {
        qnode_t *n = &r->node[i];
        if ((n->state & m) != m) continue;
        int32_t re = fmul(n->re, cs) - fmul(n->im, sn);
        n->im = fmul(n->re, sn) + fmul(n->im, cs);
        n->re = re;
    }
}

static void hadamard(qreg_t *r, int t) {
    uint64_t bit = 1ULL << t;
    int n0 = r->size;
    reg_reserve(r, 2 * n0);
    reconstruct_hash(r, 2 * n0);
    for (int i = 0; i < n0; i++) {          /* partners not yet present join with amplitude 0 */
        uint64_t p = r->node[i].state ^ bit;
        if (hash_find(r, p) < 0) {
            r->node[r->size] = (qnode_t){p, 0, 0};
            hash_insert(r, p, r->size);
            r->size++;
        }
    }
    const int32_t s = 759250125;           /* 2^30 / sqrt(2) */
    for (int i = 0; i < r->size; i++) {
        if (r->node[i].state & bit) continue;
        qnode_t *a = &r->node[i], *b = &r->node[hash_find(r, a->state | bit)];
        int64_t are = a->re, aim = a->im, bre = b->re, bim = b->im;
        a->re = (int32_t)(((are + bre) * s + (1 << 29)) >> 30);
        a->im = (int32_t)(((aim + bim) * s + (1 << 29)) >> 30);
        b->re = (int32_t)(((are - bre) * s + (1 << 29)) >> 30);
        b->im = (int32_t)(((aim - bim) * s + (1 << 29)) >> 30);
    }
    int k = 0;
    for (int i = 0; i < r->size; i++) {
        qnode_t n = r->node[i];
        if (n.re > -EPS && n.re < EPS && n.im > -EPS && n.im < EPS) continue;
        r->node[k++] = n;
    }
    r->size = k;
}

/* --- a ripple-carry adder b += a from Toffoli and CNOT gates, recorded so it can be undone --- */
typedef struct { int c1, c2, t; } gate_t;      /* c2 < 0: CNOT */
static gate_t gates[4096];
static int ngates;

static void g_tof(int c1, int c2, int t) { gates[ngates++] = (gate_t){c1, c2, t}; }
static void g_cnot(int c, int t) { gates[ngates++] = (gate_t){c, -1, t}; }

static void build_adder(int a0, int b0, int c0, int n) {
    ngates = 0;
    for (int i = 0; i < n; i++) {               /* carry(c_i, a_i, b_i, c_i+1); c_n is b_n */
        int cn = i + 1 < n ? c0 + i + 1 : b0 + n;
        g_tof(a0 + i, b0 + i, cn);
        g_cnot(a0 + i, b0 + i);
        g_tof(c0 + i, b0 + i, cn);
    }
    g_cnot(a0 + n - 1, b0 + n - 1);
    g_cnot(a0 + n - 1, b0 + n - 1);             /* sum(c_n-1, a_n-1, b_n-1) */
    g_cnot(c0 + n - 1, b0 + n - 1);
    for (int i = n - 2; i >= 0; i--) {          /* carry^-1 then sum */
        g_tof(c0 + i, b0 + i, c0 + i + 1);
        g_cnot(a0 + i, b0 + i);
        g_tof(a0 + i, b0 + i, c0 + i + 1);
        g_cnot(a0 + i, b0 + i);
        g_cnot(c0 + i, b0 + i);
    }
}

static void run_gates(qreg_t *r, int backwards) {
    for (int k = 0; k < ngates; k++) {
        gate_t g = gates[backwards ? ngates - 1 - k : k];
        if (g.c2 < 0) cnot(r, g.c1, g.t);
        else toffoli(r, g.c1, g.c2, g.t);
    }
}

static uint64_t field(uint64_t s, int lo, int n) { return s >> lo & ((1ULL << n) - 1); }

static uint64_t powmod(uint64_t a, uint64_t e, uint64_t n) {
    uint64_t r = 1 % n;
    for (a %= n; e; e >>= 1, a = a * a % n)
        if (e & 1) r = r * a % n;
    return r;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) { uint64_t t = a % b; a = b; b = t; }
    return a;
}

static uint64_t shor_run(qreg_t *r, uint64_t n, uint64_t a) {
    int w = 0;
    while ((1ULL << w) <= n) w++;
    int xw = 2 * w, y0 = xw, b0 = y0 + w, c0 = b0 + w + 1;
    r->size = 1;
    r->node[0] = (qnode_t){0, ONE, 0};
    for (int i = 0; i < xw; i++) hadamard(r, i);
    for (int i = 0; i < r->size; i++) {          /* y = a^x mod n, a permutation of basis states */
        uint64_t x = field(r->node[i].state, 0, xw);
        r->node[i].state |= powmod(a, x, n) << y0;
    }
    uint64_t h = 0, bad = 0;
    build_adder(y0, b0, c0, w);
    for (int round = 0; round < 2; round++) {
        sigma_x(r, b0 + round % w);              /* b = 2^k, then b += y and check it */
        run_gates(r, 0);
        for (int i = 0; i < r->size; i++) {
            uint64_t s = r->node[i].state;
            if (field(s, b0, w + 1) != field(s, y0, w) + (1ULL << (round % w)) || field(s, c0, w)) bad++;
        }
        run_gates(r, 1);
        sigma_x(r, b0 + round % w);
    }
    /* measure the y register as Shor does: keep one value, renormalize, clear its bits */
    uint64_t y = field(r->node[next_rand() % (uint64_t)r->size].state, y0, w), kept = 0;
    int k = 0;
    for (int i = 0; i < r->size; i++) {
        if (field(r->node[i].state, y0, w) != y) continue;
        qnode_t q = r->node[i];
        kept += (uint64_t)(((int64_t)q.re * q.re + (int64_t)q.im * q.im) >> 30);
        q.state &= (1ULL << xw) - 1;
        r->node[k++] = q;
    }
    r->size = k;
    int64_t scale = llround(sqrt((double)ONE / (double)kept) * ONE);
    for (int i = 0; i < r->size; i++) {
        r->node[i].re = (int32_t)((r->node[i].re * scale + (1 << 29)) >> 30);
        r->node[i].im = (int32_t)((r->node[i].im * scale + (1 << 29)) >> 30);
    }
    for (int i = xw - 1; i >= 0; i--) {          /* quantum Fourier transform of x */
        for (int j = xw - 1; j > i; j--) cond_phase(r, j, i, j - i);
        hadamard(r, i);
    }
    uint64_t prob[1 << 12];
    memset(prob, 0, sizeof(uint64_t) << xw);
    for (int i = 0; i < r->size; i++) {
        qnode_t *q = &r->node[i];
        uint64_t x = field(q->state, 0, xw), rev = 0;
        for (int b = 0; b < xw; b++) rev |= (x >> b & 1) << (xw - 1 - b);
        prob[rev] += (uint64_t)(((int64_t)q->re * q->re + (int64_t)q->im * q->im) >> 30);
        h = (h ^ (q->state * 0x100000001B3ULL) ^ (uint32_t)q->re ^ (uint64_t)(uint32_t)q->im << 32) * 31;
    }
    uint64_t best = 1;
    for (uint64_t x = 1; x < (1ULL << xw); x++) {
        h = h * 1000003 ^ prob[x];
        if (prob[x] > prob[best]) best = x;
    }
    /* continued fractions of best / 2^xw give the period candidate */
    uint64_t num = best, den = 1ULL << xw, p0 = 0, p1 = 1, q0 = 1, q1 = 0, period = 0;
    while (den && q1 < n) {
        uint64_t t = num / den, rem = num % den;
        uint64_t p2 = t * p1 + p0, q2 = t * q1 + q0;
        p0 = p1; p1 = p2; q0 = q1; q1 = q2;
        num = den;
        den = rem;
        for (uint64_t m = q1; m < n && !period; m += q1)   /* the sample may hit a multiple of 1/r */
            if (powmod(a, m, n) == 1) period = m;
        if (period) break;
    }
    uint64_t f = 0;
    if (period && period % 2 == 0) f = gcd(powmod(a, period / 2, n) + 1, n);
    return h ^ (bad << 32) ^ (r->size * 0x9E37ULL) ^ (period << 48) ^ (f << 56);
}

int main(int argc, char **argv) {
    long runs = argc > 1 ? atol(argv[1]) : 4;
    static const uint64_t moduli[] = {15, 21, 33, 35, 39, 51, 55, 57};
    /* half-angle steps from cos(pi) = -1 with sqrt alone: sqrt is exactly rounded everywhere, while
       glibc's cos and sin pick an FMA variant by CPUID and could differ in the last bit */
    double c = -1.0;
    for (int k = 1; k < 40; k++) {
        double ck = sqrt((1.0 + c) / 2.0), sk = sqrt((1.0 - c) / 2.0);
        cos_tab[k] = (int32_t)llround(ck * ONE);
        sin_tab[k] = (int32_t)llround(sk * ONE);
        c = ck;
    }
    qreg_t r = {0, 64, 0, NULL, NULL};
    r.node = malloc(sizeof(qnode_t) * (size_t)r.cap);
    uint64_t sum = 0;
    for (long i = 0; i < runs; i++) {
        uint64_t n = moduli[next_rand() % 8], a;
        do a = 2 + next_rand() % (n - 3); while (gcd(a, n) != 1);
        sum = sum * 0x100000001B3ULL + shor_run(&r, n, a);
    }
    printf("libquantum checksum %lu\n", (unsigned long)sum);
    free(r.node);
    free(r.hash);
    return 0;
}
