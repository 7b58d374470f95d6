/* longdouble.c: the libm long double functions whose x87 paths use the transcendental
 * instructions (expl/exp2l/expm1l/powl: f2xm1; logl/log2l/log10l/log1pl/powl: fyl2x, fyl2xp1;
 * atanl/atan2l/acosl/asinl: fpatan), the ones in plain C (sinl, cosl, tanl), frexpl/ldexpl,
 * printf("%La") and strtold, on fixed and pseudo-random inputs. The exact results are printed
 * as bits (%La); those of the transcendental instructions as doubles (see near()).
 *     ./longdouble
 */
#include <math.h>
#include <stdlib.h>

#include "guest.h"

static const char *const strs[] = {
    "0", "-0", "1", "-1", "0.5", "2", "3", "0.1", "-0.7", "10", "1e-5", "-1e-20", "0.999999999",
    "1.000000001", "3.14159265358979323846", "1.5707963267948966192", "100.25", "-11356.5", "1e30",
    "0x1p-16440", "0x3p-16446", "0x1.8p+13000", "inf", "-inf", "nan", "0x1.fffffffffffffffep+16383", "-2.5e-3",
    "0x1.6a09e667f3bcc908p-1", "0x1.62e42fefa39ef358p-1", "1e-310"};
#define NSTR (sizeof strs / sizeof strs[0])

static uint64_t seed = 0x2545f4914f6cdd1dULL;
static uint64_t next(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* NaN payloads and signs are an ISA detail (and differ between libms): one word for them */
static void put(long double y)
{
    if (isnan(y)) printf(" nan");
    else printf(" %La", y);
}

/* The functions whose result is an x87 transcendental instruction's result (nearly) as is:
 * hqemu's is the correctly rounded one, the hardware's is not always (about 1 in 30 is one
 * ulp off, see tests/test_x87_transcendental.py), so these print the result rounded to a
 * double (a one-ulp difference at 64 bits shows there once in about 2000 cases). */
static void near(long double y)
{
    if (isnan(y)) printf(" nan");
    else printf(" %a", (double)y);
}

static void all(long double x)
{
    int e;
    long double f = frexpl(x, &e);
    printf("%La:", x);
    put(sinl(x)); put(cosl(x)); put(tanl(x)); put(f);
    printf(" %d %La", e, ldexpl(x, -3));
    if (fabsl(x) > 1e-40L && fabsl(x) < 1e40L)  /* the decimal form of the extremes costs millions */
        printf(" %.21Lg", x);
    printf(" |");
    near(expl(x)); near(exp2l(x)); near(expm1l(x)); near(logl(x)); near(log2l(x)); near(log10l(x));
    near(log1pl(x)); near(atanl(x)); near(atan2l(x, 3.0L)); near(atan2l(-2.0L, x)); near(acosl(x / 64));
    near(asinl(x / 64)); near(powl(fabsl(x), 1.25L)); near(powl(1.0001L, x));
    printf("\n");
}

int main(void)
{
    for (unsigned i = 0; i < NSTR; i++) {
        char *end;
        long double x = strtold(opaque(strs[i]), &end);
        printf("%s (%d) ->", strs[i], (int)(end - strs[i]));
        all(x);
    }
    for (int i = 0; i < 12; i++) {
        /* a random 64-bit significand in [1, 2) and an exponent from -40 to 19 */
        uint64_t m = next() | 1ULL << 63;
        long double x = ldexpl((long double)m, -63 + (int)(next() % 60) - 40);
        all(next() & 1 ? -x : x);
    }
    return 0;
}
