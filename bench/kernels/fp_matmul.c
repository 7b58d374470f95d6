/* Floating-point kernel: dense double matrix multiply C = A * B (i-k-j order), 160 x 160.
   Usage: fp_matmul REPEATS. Prints a checksum of C. */
#include <stdio.h>
#include <stdlib.h>

#define N 160

static double A[N][N], B[N][N], C[N][N];

int main(int argc, char **argv) {
    long reps = argc > 1 ? atol(argv[1]) : 5;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i][j] = (double)((i * 7 + j * 3) % 17) / 16.0 - 0.5;
            B[i][j] = (double)((i * 5 + j * 11) % 13) / 12.0 - 0.25;
        }
    double sum = 0;
    for (long r = 0; r < reps; r++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) C[i][j] = 0;
        for (int i = 0; i < N; i++)
            for (int k = 0; k < N; k++) {
                double a = A[i][k];
                for (int j = 0; j < N; j++) C[i][j] += a * B[k][j];
            }
        /* feed the result back so every repeat is different work */
        A[r % N][(r * 7) % N] += C[(r * 3) % N][r % N] * 1e-3;
        sum += C[r % N][(r * 5) % N];
    }
    for (int i = 0; i < N; i++) sum += C[i][(i * 13) % N];
    printf("fp_matmul %.12e\n", sum);
    return 0;
}
