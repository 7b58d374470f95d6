/* hmmer: profile HMM search, modelled on 456.hmmer. A Plan7-like model (match, insert and delete
   states per node, begin/end and the N, C, J flanking states) with integer log-odds scores is
   generated; sequences are emitted from the model (true hits) or from the background, and each
   one is scored by the Viterbi dynamic programming of hmmer's P7Viterbi, row by row. The
   best-scoring hits are realigned with a full matrix and traced back. Usage: hmmer [sequences]. */
// bench-group: INT
// bench-quick: 6
// bench-ref: 70000
// bench-doc: Plan7 profile HMM Viterbi search with integer log-odds scores over generated sequences (like 456.hmmer)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M 80               /* model length */
#define ALPHA 20
#define NEG_INF (-987654321)
#define MAXL 400

enum { TMM, TMI, TMD, TIM, TII, TDM, TDD, NTRANS };
enum { XN, XE, XC, XJ, NX };
enum { LOOP, MOVE };

static int msc[ALPHA][M + 1], isc[ALPHA][M + 1], tsc[NTRANS][M + 1], bsc[M + 1], esc[M + 1];
static int xsc[NX][2];
static uint8_t consensus[M + 1];

static uint64_t rng = 0x853C49E6748FEA9BULL;

static uint32_t next_rand(void) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng >> 33);
}

static int jitter(int base, int spread) { return base + (int)(next_rand() % (uint32_t)(2 * spread + 1)) - spread; }

static void make_model(void) {
    for (int k = 1; k <= M; k++) {
        consensus[k] = (uint8_t)(next_rand() % ALPHA);
        for (int a = 0; a < ALPHA; a++) {
            msc[a][k] = a == consensus[k] ? jitter(2500, 600) : jitter(-700, 900);
            isc[a][k] = jitter(-100, 300);
        }
        tsc[TMM][k] = jitter(-60, 40);
        tsc[TMI][k] = jitter(-3200, 600);
        tsc[TMD][k] = jitter(-3000, 700);
        tsc[TIM][k] = jitter(-1100, 300);
        tsc[TII][k] = jitter(-800, 300);
        tsc[TDM][k] = jitter(-1400, 400);
        tsc[TDD][k] = jitter(-700, 300);
        bsc[k] = k == 1 ? -300 : jitter(-6000, 1500);
        esc[k] = k == M ? 0 : jitter(-6000, 1500);
    }
    xsc[XN][LOOP] = -20; xsc[XN][MOVE] = -6000;
    xsc[XE][LOOP] = -1000; xsc[XE][MOVE] = -1000;
    xsc[XC][LOOP] = -20; xsc[XC][MOVE] = -6000;
    xsc[XJ][LOOP] = -20; xsc[XJ][MOVE] = -6000;
}

/* A sequence emitted along a path through the model with random inserts and deletions, inside
   random flanks, or (for decoys) drawn from the background alone. */
static int make_sequence(uint8_t *seq, int hit) {
    int L = 0, flank = (int)(next_rand() % 40);
    for (int i = 0; i < flank; i++) seq[L++] = (uint8_t)(next_rand() % ALPHA);
    if (hit) {
        int from = 1 + (int)(next_rand() % (M / 3)), to = M - (int)(next_rand() % (M / 3));
        for (int k = from; k <= to && L < MAXL - 50; k++) {
            uint32_t r = next_rand() % 100;
            if (r < 4) continue;                                    /* delete */
            seq[L++] = r < 80 ? consensus[k] : (uint8_t)(next_rand() % ALPHA);
            if (r >= 95) seq[L++] = (uint8_t)(next_rand() % ALPHA); /* insert */
        }
    } else {
        int len = 50 + (int)(next_rand() % 60);
        for (int i = 0; i < len; i++) seq[L++] = (uint8_t)(next_rand() % ALPHA);
    }
    flank = (int)(next_rand() % 40);
    for (int i = 0; i < flank; i++) seq[L++] = (uint8_t)(next_rand() % ALPHA);
    return L;
}

static inline int max2(int a, int b) { return a > b ? a : b; }

/* P7Viterbi over rows 0..L of mx, dx, ix (each (L+1) x (M+1)) and xmx ((L+1) x NX + B). */
static int viterbi(const uint8_t *seq, int L, int *mx, int *ix, int *dx, int *xmx, int full) {
    int xb_prev, *mpp, *ipp, *dpp, *mc, *ic, *dc;
    int xn = 0, xj = NEG_INF, xc = NEG_INF, xe;
    xb_prev = xsc[XN][MOVE];
    for (int k = 0; k <= M; k++) mx[k] = ix[k] = dx[k] = NEG_INF;
    for (int i = 1; i <= L; i++) {
        int row = full ? i : (i & 1), prow = full ? i - 1 : ((i - 1) & 1);
        mc = mx + row * (M + 1); ic = ix + row * (M + 1); dc = dx + row * (M + 1);
        mpp = mx + prow * (M + 1); ipp = ix + prow * (M + 1); dpp = dx + prow * (M + 1);
        const int *ms = &msc[seq[i - 1]][0], *is = &isc[seq[i - 1]][0];
        mc[0] = ic[0] = dc[0] = NEG_INF;
        xe = NEG_INF;
        for (int k = 1; k <= M; k++) {
            int sc = mpp[k - 1] + tsc[TMM][k - 1];
            sc = max2(sc, ipp[k - 1] + tsc[TIM][k - 1]);
            sc = max2(sc, dpp[k - 1] + tsc[TDM][k - 1]);
            sc = max2(sc, xb_prev + bsc[k]);
            sc += ms[k];
            mc[k] = sc < NEG_INF ? NEG_INF : sc;
            sc = max2(dc[k - 1] + tsc[TDD][k - 1], mc[k - 1] + tsc[TMD][k - 1]);
            dc[k] = sc < NEG_INF ? NEG_INF : sc;
            if (k < M) {
                sc = max2(mpp[k] + tsc[TMI][k], ipp[k] + tsc[TII][k]) + is[k];
                ic[k] = sc < NEG_INF ? NEG_INF : sc;
            } else {
                ic[k] = NEG_INF;
            }
            xe = max2(xe, mc[k] + esc[k]);
        }
        xj = max2(xj + xsc[XJ][LOOP], xe + xsc[XE][LOOP]);
        xc = max2(xc + xsc[XC][LOOP], xe + xsc[XE][MOVE]);
        xn = xn + xsc[XN][LOOP];
        xb_prev = max2(xn + xsc[XN][MOVE], xj + xsc[XJ][MOVE]);
        if (full) {
            int *x = xmx + i * (NX + 1);
            x[XN] = xn; x[XE] = xe; x[XC] = xc; x[XJ] = xj; x[NX] = xb_prev;
        }
    }
    return xc + xsc[XC][MOVE];
}

/* Traces the best path back through the full matrices; returns the number of match states used,
   with deletes and inserts folded into the high bits. */
static uint64_t traceback(const uint8_t *seq, int L, const int *mx, const int *ix, const int *dx) {
    int i = L, k = 0, best = NEG_INF;
    for (int j = 1; j <= M; j++) {         /* end state: the match cell that reached E in some row */
        for (int r = L; r >= 1; r--) {
            int s = mx[r * (M + 1) + j] + esc[j];
            if (s > best) { best = s; i = r; k = j; }
        }
    }
    uint64_t nm = 0, ni = 0, nd = 0;
    char st = 'M';
    while (i > 0 && k > 0) {
        const int *ms = &msc[seq[i - 1]][0];
        if (st == 'M') {
            nm++;
            int want = mx[i * (M + 1) + k] - ms[k];
            if (k > 1 && mx[(i - 1) * (M + 1) + k - 1] + tsc[TMM][k - 1] == want) st = 'M';
            else if (k > 1 && ix[(i - 1) * (M + 1) + k - 1] + tsc[TIM][k - 1] == want) st = 'I';
            else if (k > 1 && dx[(i - 1) * (M + 1) + k - 1] + tsc[TDM][k - 1] == want) st = 'D';
            else break;                    /* entered from B */
            i--;
            k--;
        } else if (st == 'I') {
            ni++;
            int want = ix[i * (M + 1) + k] - isc[seq[i - 1]][k];
            st = mx[(i - 1) * (M + 1) + k] + tsc[TMI][k] == want ? 'M' : 'I';
            i--;
        } else {
            nd++;
            int want = dx[i * (M + 1) + k];
            st = mx[i * (M + 1) + k - 1] + tsc[TMD][k - 1] == want ? 'M' : 'D';
            k--;
        }
    }
    return nm | ni << 20 | nd << 40;
}

int main(int argc, char **argv) {
    long nseq = argc > 1 ? atol(argv[1]) : 100;
    make_model();
    uint8_t *seq = malloc(MAXL);
    int *mx = malloc(sizeof(int) * (MAXL + 1) * (M + 1)), *ix = malloc(sizeof(int) * (MAXL + 1) * (M + 1));
    int *dx = malloc(sizeof(int) * (MAXL + 1) * (M + 1)), *xmx = malloc(sizeof(int) * (MAXL + 1) * (NX + 1));
    uint64_t sum = 0;
    long hist[64], hits = 0;
    memset(hist, 0, sizeof hist);
    for (long s = 0; s < nseq; s++) {
        int L = make_sequence(seq, (next_rand() & 3) != 0);
        int sc = viterbi(seq, L, mx, ix, dx, xmx, 0);
        int bin = sc / 2000 + 32;
        hist[bin < 0 ? 0 : bin > 63 ? 63 : bin]++;
        sum = sum * 1000003 + (uint64_t)(int64_t)sc;
        if (sc > 60000) {                  /* a hit: realign with the whole matrix and trace back */
            hits++;
            int sc2 = viterbi(seq, L, mx, ix, dx, xmx, 1);
            sum ^= traceback(seq, L, mx, ix, dx) + (uint64_t)(sc2 != sc);
        }
    }
    for (int b = 0; b < 64; b++) sum = sum * 31 + (uint64_t)hist[b];
    printf("hmmer checksum %lu\n", (unsigned long)(sum + (uint64_t)hits));
    free(seq); free(mx); free(ix); free(dx); free(xmx);
    return 0;
}
