/* Floating-point kernel: 2D Jacobi relaxation (5-point stencil) on a 256 x 256 grid of doubles.
   Usage: fp_stencil ITERATIONS. Prints a checksum of the grid. */
#include <stdio.h>
#include <stdlib.h>

#define N 256

static double g[2][N][N];

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 50;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            g[0][i][j] = g[1][i][j] = (i == 0 || j == 0) ? 1.0 : (i == N - 1 || j == N - 1) ? -0.5 : 0.0;
    int cur = 0;
    for (long t = 0; t < iters; t++) {
        int nxt = cur ^ 1;
        for (int i = 1; i < N - 1; i++)
            for (int j = 1; j < N - 1; j++)
                g[nxt][i][j] = 0.25 * (g[cur][i - 1][j] + g[cur][i + 1][j] + g[cur][i][j - 1] + g[cur][i][j + 1])
                               + 1e-6 * g[cur][i][j];
        cur = nxt;
    }
    double sum = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) sum += g[cur][i][j] * (double)((i ^ j) & 7);
    printf("fp_stencil %.12e\n", sum);
    return 0;
}
