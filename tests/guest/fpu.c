/* fpu.c: floating-point arithmetic as the compiler emits it inline: SSE scalar float and
 * double (add, sub, mul, div, sqrt, compares with NaN, conversions, min/max), the x87 for
 * long double, and all four rounding modes.
 *
 * One checksum of result bit patterns per (operation, type); NaN results are normalized,
 * since their payload is an ISA detail a program cannot portably rely on.
 *     ./fpu
 */
#include <fenv.h>
#include <float.h>
#include <math.h>

#include "guest.h"

static const double vals[] = {0.0, -0.0, 1.0, -1.0, 0.5, 3.0, 0.1, -2.75, 1e300, -1e-300, 4.9e-324,
                              2.2250738585072014e-308, 1.7976931348623157e308, 123456789.0, 1.0 / 3.0,
                              INFINITY, -INFINITY, NAN};
#define N (sizeof vals / sizeof vals[0])

static uint64_t dbits(double d)
{
    uint64_t u;
    if (isnan(d)) return 1;
    memcpy(&u, &d, 8);
    return u;
}

static uint64_t fbits(float f)
{
    uint32_t u;
    if (isnan(f)) return 1;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t lbits(long double x)
{
    unsigned char b[16] = {0};
    if (isnan(x)) return 1;
    memcpy(b, &x, 10);  /* the 80-bit value; the 6 padding bytes are garbage */
    return mix_bytes(0, b, 10);
}

static void doubles(const char *mode)
{
    uint64_t h[8] = {0};
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            double a = opaque(vals[i]), b = opaque(vals[j]);
            h[0] = mix(h[0], dbits(a + b));
            h[1] = mix(h[1], dbits(a - b));
            h[2] = mix(h[2], dbits(a * b));
            h[3] = mix(h[3], dbits(a / b));
            h[4] = mix(h[4], (a < b) | (a <= b) << 1 | (a > b) << 2 | (a >= b) << 3 | (a == b) << 4
                                 | (a != b) << 5 | isunordered(a, b) << 6 | isless(a, b) << 7);
            h[5] = mix(h[5], dbits(a < b ? a : b) ^ dbits(a > b ? a : b) << 1);
        }
        double a = opaque(vals[i]);
        h[6] = mix(h[6], dbits(sqrt(a)) ^ dbits((double)(float)a) << 1);
        h[7] = mix(h[7], fabs(a) < 9e18 ? (uint64_t)(long long)a ^ (uint64_t)llrint(a) << 1 : 3);
    }
    static const char *const names[] = {"add", "sub", "mul", "div", "cmp", "minmax", "sqrt+narrow", "to int"};
    for (int k = 0; k < 8; k++) {
        char name[32];
        snprintf(name, sizeof name, "f64.%s.%s", names[k], mode);
        PUT(name, h[k]);
    }
}

static void floats(const char *mode)
{
    uint64_t h[5] = {0};
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            float a = opaque((float)vals[i]), b = opaque((float)vals[j]);
            h[0] = mix(h[0], fbits(a + b) ^ fbits(a - b) << 32);
            h[1] = mix(h[1], fbits(a * b) ^ fbits(a / b) << 32);
            h[2] = mix(h[2], (a < b) | (a <= b) << 1 | (a == b) << 2 | isunordered(a, b) << 3);
        }
        float a = opaque((float)vals[i]);
        h[3] = mix(h[3], fbits(sqrtf(a)) ^ dbits((double)a) << 1);
        h[4] = mix(h[4], fabsf(a) < 2e9f ? (uint64_t)(int)a : 3);
    }
    static const char *const names[] = {"addsub", "muldiv", "cmp", "sqrt+widen", "to int"};
    for (int k = 0; k < 5; k++) {
        char name[32];
        snprintf(name, sizeof name, "f32.%s.%s", names[k], mode);
        PUT(name, h[k]);
    }
}

static void x87(const char *mode)
{
    uint64_t h[4] = {0};
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j += 2) {
            long double a = vals[i], b = vals[j];
            __asm__ volatile("" : "+m"(a), "+m"(b));
            h[0] = mix(h[0], lbits(a + b) ^ lbits(a - b) << 1);
            h[1] = mix(h[1], lbits(a * b) ^ lbits(a / b) << 1);
            h[2] = mix(h[2], (a < b) | (a <= b) << 1 | (a == b) << 2 | isunordered(a, b) << 3);
        }
        long double a = vals[i] * 3.0L;
        __asm__ volatile("" : "+m"(a));
        h[3] = mix(h[3], lbits(sqrtl(a)) ^ dbits((double)a) ^ (fabsl(a) < 9e18L ? (uint64_t)(long long)a : 3));
    }
    static const char *const names[] = {"addsub", "muldiv", "cmp", "sqrt+convert"};
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "f80.%s.%s", names[k], mode);
        PUT(name, h[k]);
    }
}

int main(void)
{
    static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    static const char *const mode_names[] = {"nearest", "up", "down", "zero"};
    for (int m = 0; m < 4; m++) {
        if (fesetround(modes[m]) != 0) { printf("fesetround %s failed\n", mode_names[m]); continue; }
        doubles(mode_names[m]);
        floats(mode_names[m]);
        x87(mode_names[m]);
        volatile double third = 1.0 / opaque(3.0);
        volatile long double lthird = 1.0L / opaque(3.0);
        fesetround(FE_TONEAREST);  /* print in the default mode */
        printf("1/3 %s: %a %La\n", mode_names[m], third, lthird);
    }
    feclearexcept(FE_ALL_EXCEPT);
    volatile double z = opaque(0.0);
    volatile double r = 1.0 / z;
    int inexact_before = fetestexcept(FE_INEXACT) != 0;
    r = r + opaque(0.1) * 3;
    printf("exceptions: divbyzero %d, inexact before %d after %d, %g\n", fetestexcept(FE_DIVBYZERO) != 0,
           inexact_before, fetestexcept(FE_INEXACT) != 0, r);
    return 0;
}
