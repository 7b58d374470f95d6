/* libm.c: the common libm functions on a fixed set of inputs, printed with %.17g.
 *
 * glibc and musl round differently in the last place: each binary is compared only with
 * its own native run. Also covers the SSE conversions and NaN / infinity / signed zero.
 *     ./libm
 */
#include <math.h>

#include "guest.h"

static const double in[] = {0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 3.0, 0.1, -2.5, 10.0, 100.5, 1e-10, 1e10,
                            1e300, -1e300, 5e-324, 3.141592653589793, 1.5707963267948966, 0.7853981633974483,
                            709.78, -745.1, 123456.789, INFINITY, -INFINITY, NAN};
#define N (sizeof in / sizeof in[0])

/* NaN payloads and signs vary between libms and with the operation order: a NaN prints as
 * one word, so the comparison stays about the value */
static void put(double y)
{
    if (isnan(y)) printf(" nan");
    else printf(" %.17g", y);
}

/* the less common functions go into one checksum line each: formatting every result with
 * %.17g would cost millions of guest instructions in printf alone */
static uint64_t bits(double y)
{
    uint64_t u;
    if (isnan(y)) return 0x7ff8000000000000ULL;
    memcpy(&u, &y, 8);
    return u;
}

enum { TRUNC, ROUND, RINT, ATAN, LOG10, EXPM1, LOG1P, SINF, SQRTF, FREXP, FMIN, COPYSIGN, NSUM };
static const char *const sum_names[NSUM] = {"trunc", "round", "rint", "atan", "log10", "expm1", "log1p",
                                            "sinf", "sqrtf", "frexp+ldexp", "fmin+fmax", "copysign"};
static uint64_t sums[NSUM];
#define SUM(k, y) (sums[k] = mix(sums[k], bits(y)))

int main(void)
{
    printf("x: sin cos tan exp log sqrt fabs floor ceil cbrt, lround lrint\n");
    for (size_t i = 0; i < N; i++) {
        double x = opaque(in[i]);
        printf("%.17g:", x);
        put(sin(x)); put(cos(x)); put(tan(x)); put(exp(x)); put(log(x));
        put(sqrt(x)); put(fabs(x)); put(floor(x)); put(ceil(x)); put(cbrt(x));
        if (fabs(x) < 1e18) printf(", %ld %ld", lround(x), lrint(x));
        printf("\n");
        SUM(TRUNC, trunc(x)); SUM(ROUND, round(x)); SUM(RINT, rint(x)); SUM(ATAN, atan(x));
        SUM(LOG10, log10(x)); SUM(EXPM1, expm1(x)); SUM(LOG1P, log1p(x));
        SUM(SINF, (double)sinf((float)x)); SUM(SQRTF, (double)sqrtf((float)x));
        int e = 0;
        double m = frexp(x, &e);
        SUM(FREXP, m); SUM(FREXP, (double)e); SUM(FREXP, ldexp(m, e));
    }
    static const double ys[] = {0.0, -1.0, 0.5, 2.0, 3.0, -2.5, 1e10, INFINITY};
    printf("x y: pow atan2 fmod hypot\n");
    for (size_t i = 0; i < N; i += 3) {
        for (size_t j = 0; j < sizeof ys / sizeof ys[0]; j++) {
            double x = opaque(in[i]), y = opaque(ys[j]);
            printf("%.17g %g:", x, y);
            put(pow(x, y)); put(atan2(x, y)); put(fmod(x, y)); put(hypot(x, y));
            printf("\n");
            SUM(FMIN, fmin(x, y)); SUM(FMIN, fmax(x, y)); SUM(COPYSIGN, copysign(x, y));
        }
    }
    for (int k = 0; k < NSUM; k++)
        PUT(sum_names[k], sums[k]);
    /* conversions the compiler emits inline (cvttsd2si, cvtsi2sd, the unsigned 64-bit dance) */
    static const double cv[] = {0.0, 0.9, -0.9, 1.5, -1.5, 2147483647.0, -2147483648.0, 4294967295.0,
                                9.2233720368547748e18, 1.8446744073709550e19, 1e15 + 0.5};
    for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++) {
        double x = opaque(cv[i]);
        long long s = x < 9.2e18 ? (long long)x : 0;
        unsigned long long u = x >= 0 ? (unsigned long long)x : 0;
        int si = x >= -2147483648.0 && x < 2147483648.0 ? (int)x : 0;
        printf("cvt %.17g: ll %lld ull %llu int %d float %.9g\n", x, s, u, si, (double)(float)x);
    }
    static const unsigned long long ints[] = {0, 1, 3, 1ULL << 53, (1ULL << 53) + 1, 1ULL << 63, ~0ULL, 12345678901234567ULL};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        unsigned long long u = opaque(ints[i]);
        printf("to double %llu: %.17g signed %.17g float %.9g\n", u, (double)u, (double)(long long)u, (double)(float)u);
    }
    double z = opaque(0.0);
    printf("1/0 = %g, -1/0 = %g, 0/0 is nan: %d, signbit(-0.0) = %d, -0.0 == 0.0: %d\n", 1 / z, -1 / z,
           isnan(z / z), signbit(-z), -z == z);
    return 0;
}
