/* fenv.c: the SSE exception flags and rounding modes as a program sees them from hot loops,
 * which hqemu runs as native code: flags raised before the program ever writes MXCSR (no
 * feclearexcept first), flags read inside a loop, every rounding mode inside a loop, and
 * DAZ/FTZ set by hand.
 *     ./fenv
 */
#include <fenv.h>
#include <math.h>

#include "guest.h"

#define ITERS 20000  /* far past hqemu's hot threshold: the loops run as traces */

static void flags(const char *when)
{
    int f = fetestexcept(FE_ALL_EXCEPT);
    printf("%-28s inexact %d underflow %d overflow %d divbyzero %d invalid %d\n", when,
           !!(f & FE_INEXACT), !!(f & FE_UNDERFLOW), !!(f & FE_OVERFLOW), !!(f & FE_DIVBYZERO),
           !!(f & FE_INVALID));
}

#if defined(__x86_64__)
static unsigned mxcsr(void) { unsigned m; __asm__ volatile("stmxcsr %0" : "=m"(m)); return m; }
static void set_mxcsr(unsigned m) { __asm__ volatile("ldmxcsr %0" : : "m"(m)); }
#endif

int main(void)
{
    /* exact arithmetic first: no flag may appear */
    double s = 0;
    for (int i = 0; i < ITERS; i++) s += opaque((double)(i & 255)) * 0.5;
    printf("exact sum %a\n", s);
    flags("after exact loop");
    /* nothing has written MXCSR yet: the flags of a hot loop must still be recorded */
    for (int i = 0; i < ITERS; i++) s += opaque(1.0) / opaque((double)(i % 7 + 3));
    printf("sum %a\n", s);
    flags("after inexact loop");
    double big = 1.0;
    for (int i = 0; i < ITERS; i++) big = big * opaque(1.5) + 1.0;
    printf("big %g\n", big);
    flags("after overflow loop");
    double tiny = 1.0;
    for (int i = 0; i < ITERS; i++) tiny = tiny * opaque(0.75);
    printf("tiny %g\n", tiny);
    flags("after underflow loop");
    uint64_t h = 0;
    for (int i = 0; i < ITERS; i++) {
        double z = opaque((double)(i % 100 == 99 ? 0 : i));
        h = mix(h, (uint64_t)(opaque(1.0) / z > 1e300) + (sqrt(opaque((double)(50 - i % 100))) != 0));
    }
    PUT("divisions", h);
    flags("after divbyzero+invalid loop");

    /* flags read inside a hot loop: how many iterations were inexact */
    int inexact = 0;
    for (int i = 0; i < ITERS; i++) {
        feclearexcept(FE_INEXACT);
        volatile double q = opaque((double)i) / 4.0 + opaque((double)(i % 3)) / 3.0;
        (void)q;
        inexact += fetestexcept(FE_INEXACT) != 0;
    }
    printf("inexact iterations %d\n", inexact);

    /* every rounding mode, set once and then set inside a loop */
    static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    static const char *const names[] = {"nearest", "up", "down", "zero"};
    for (int m = 0; m < 4; m++) {
        fesetround(modes[m]);
        double acc = 0;
        float facc = 0;
        long long conv = 0;
        for (int i = 1; i < ITERS; i++) {
            acc += opaque(1.0) / i;
            facc += opaque(1.0f) / (float)i;
            conv += lrint(opaque((double)i / 7.0));
        }
        fesetround(FE_TONEAREST);
        printf("harmonic %-8s %a %a %lld\n", names[m], acc, (double)facc, conv);
    }
    double alt = 0;
    for (int i = 1; i < ITERS; i++) {
        fesetround(modes[i & 3]);
        alt += opaque(1.0) / i;
    }
    fesetround(FE_TONEAREST);
    printf("alternating modes %a\n", alt);

#if defined(__x86_64__)
    /* DAZ and FTZ: denormals read as zero, tiny results flushed */
    unsigned saved = mxcsr();
    set_mxcsr(saved | 0x8040);
    double d = 0, dn = opaque(4.9e-324);
    for (int i = 0; i < ITERS; i++) d += dn * opaque(2.0) + opaque(1e-310) * opaque(0.5);
    set_mxcsr(saved);
    printf("daz+ftz %a mxcsr flags %#x\n", d, mxcsr() & 0x3f);
#endif
    flags("at the end");
    return 0;
}
