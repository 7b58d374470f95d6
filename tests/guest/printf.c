/* printf.c: formatted output and input, and the string-to-number conversions.
 *
 * Integers with every length modifier and flag, doubles with %f %e %g %a at several
 * precisions, long doubles (x87 80-bit) with %Lf %Le %La, sscanf back, and strtod / strtold /
 * strtol / strtoull round trips. Every formatted string is printed, so a difference shows
 * the exact value.
 *     ./printf
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "guest.h"

static void integers(void)
{
    static const long long vals[] = {0, 1, -1, 42, -42, 127, -128, 255, 32767, -32768, 65535,
                                     INT_MAX, INT_MIN, UINT_MAX, LLONG_MAX, LLONG_MIN, 0x123456789abcLL};
    char buf[128];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        long long v = opaque(vals[i]);
        printf("%d|%i|%u|%x|%X|%o|%hhd|%hhu|%hd|%hu|%hx\n", (int)v, (int)v, (unsigned)v, (unsigned)v,
               (unsigned)v, (unsigned)v, (signed char)v, (unsigned char)v, (short)v, (unsigned short)v,
               (unsigned short)v);
        printf("%ld|%lu|%lx|%lld|%llu|%llo|%jd|%ju|%zd|%zu|%td|%" PRId64 "|%" PRIx32 "\n", (long)v,
               (unsigned long)v, (unsigned long)v, v, (unsigned long long)v, (unsigned long long)v, (intmax_t)v,
               (uintmax_t)v, (ssize_t)v, (size_t)v, (ptrdiff_t)v, (int64_t)v, (uint32_t)v);
        printf("[%+d] [% d] [%-8d] [%08d] [%8.5d] [%-+8.3d] [%#x] [%#o] [%#08x] [%.0d] [%*d] [%-*d]\n",
               (int)v, (int)v, (int)v, (int)v, (int)v, (int)v, (unsigned)v, (unsigned)v, (unsigned)v,
               (int)v, 6, (int)v, 6, (int)v);
        snprintf(buf, sizeof buf, "%lld %llx %hhd", v, (unsigned long long)v, (signed char)v);
        long long a = 0; unsigned long long b = 0; signed char c = 0;
        int n = sscanf(buf, "%lld %llx %hhd", &a, &b, &c);
        printf("sscanf %d: %lld %llx %d ok=%d\n", n, a, b, c, a == v && b == (unsigned long long)v);
    }
    int n1 = 0, n2 = 0; short sh = 0; unsigned ux = 0; char word[16] = "";
    int n = sscanf("  -123 0x7fff abc 077 rest", "%d %hi %15s %o%n", &n1, &sh, word, &ux, &n2);
    printf("sscanf mixed: %d %d %d %s %u %d\n", n, n1, sh, word, ux, n2);
    n = snprintf(buf, opaque(8), "%s=%d", "truncated", 12345);
    printf("snprintf truncated: %d \"%s\"\n", n, buf);
    printf("chars: [%c] [%5c] [%-3c] [%%] [%s] [%.3s] [%8s] [%-8s]|\n", 'A', 'b', 'c', "str", "abcdef", "ab", "cd");
}

static void doubles(void)
{
    static const double vals[] = {0.0, -0.0, 1.0, -1.5, 0.1, 2.5, 3.5, 1e-5, 123456.789, 1e21, 1e-300,
                                  5e-324, DBL_MAX, DBL_MIN, M_PI, -M_E, 1.0 / 3.0, 999.9995, 0.5e-6};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double v = opaque(vals[i]);
        if (fabs(v) < 1e30)  /* DBL_MAX has 309 digits: once is enough */
            printf("%f|%.0f|%.3f|%10.2f|%-12.1f|%+f\n", v, v, v, v, v, v);
        else
            printf("%f\n", v);
        printf("%e|%.0e|%.12e|%E|%g|%.3g|%.17g|%#g|%G\n", v, v, v, v, v, v, v, v, v);
        printf("%a|%.3a|%A|%.0a\n", v, v, v, v);
    }
    printf("%f %f %f %e %g %a\n", opaque(INFINITY), opaque(-INFINITY), opaque(NAN), opaque(INFINITY),
           opaque(-NAN) * 0.0 + opaque(1.0), opaque(-INFINITY));
    printf("%.60f\n%.40e\n", opaque(0.1), opaque(1.0 / 3.0));
    float f = opaque(1.1f);
    printf("float: %f %.9g %a\n", f, f, f);
}

static void long_doubles(void)
{
    static const long double vals[] = {0.0L, 1.0L, -2.25L, 0.1L, 3.14159265358979323846264338327950288L,
                                       1.0L / 3.0L, 123456789.125L, -1e-20L, 1e25L};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        long double v = vals[i];
        __asm__ volatile("" : : "m"(v));
        printf("%Lf|%.3Lf|%Le|%.20Le|%Lg|%.21Lg|%La\n", v, v, v, v, v, v, v);
    }
    /* the extremes only in hex: their decimal forms cost millions of instructions */
    static const long double ext[] = {1e-4000L, 1e4000L, LDBL_MAX, LDBL_MIN, LDBL_TRUE_MIN, -LDBL_EPSILON};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        long double v = ext[i];
        __asm__ volatile("" : : "m"(v));
        printf("%La %.5La\n", v, v);
    }
    long double x = opaque(2.0), y = opaque(3.0);
    long double q = x / y, s = q * y + 1.0L;
    printf("2/3 = %.25Lf, *3+1 = %.25Lf\n", q, s);
}

static void conversions(void)
{
    static const char *const strs[] = {"0", "-0", "1", "1.5", "-2.75e3", "0.1", "1e-310", "1e310", "-1e310",
                                       "0x1.8p3", "0X.8P-2", "inf", "-Infinity", "nan", "3.14159265358979323846",
                                       "2.2250738585072011e-308", "123abc", "  42", "", "abc", "1e", "9999999999999999999",
                                       "-9223372036854775808", "18446744073709551616", "0777", "0x7fffffffffffffff"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *s = strs[i];
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        int e1 = errno; long o1 = end - s;
        errno = 0;
        long double ld = strtold(s, &end);
        int e2 = errno; long o2 = end - s;
        errno = 0;
        long l = strtol(s, &end, 0);
        int e3 = errno; long o3 = end - s;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        int e4 = errno; long o4 = end - s;
        float f = strtof(s, NULL);
        char back[64];
        snprintf(back, sizeof back, "%.17g", d);
        printf("\"%s\": strtod %.17g (%ld, %s) strtold %.21Lg (%ld, %s) strtol %ld (%ld, %s) strtoull %llu (%ld, %s) "
               "strtof %.9g back %s\n", s, d, o1, e1 ? "err" : "ok", ld, o2, e2 ? "err" : "ok", l, o3,
               e3 ? "err" : "ok", u, o4, e4 ? "err" : "ok", (double)f, strtod(back, NULL) == d || d != d ? "same" : "DIFF");
    }
    printf("atoi %d atol %ld atof %.3f strtol base 36 %ld base 2 %ld\n", atoi("-77x"), atol(" 123456789012"),
           atof("2.5e2"), strtol("zz", NULL, 36), strtol("-101101", NULL, 2));
}

int main(void)
{
    integers();
    doubles();
    long_doubles();
    conversions();
    return 0;
}
