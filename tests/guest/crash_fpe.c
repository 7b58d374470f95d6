/* crash_fpe.c: the program unmasks the SSE divide-by-zero exception, then a hot loop (run as
 * native code by hqemu) divides by zero at its 10000th iteration; the guest must die of
 * SIGFPE (status 136) there, with the output before it intact.
 *     ./crash_fpe; echo $?     # 136
 */
#include <signal.h>

#include "guest.h"

int main(void)
{
    double s = 0;
    for (int i = 0; i < 20000; i++) s += opaque(1.0) / opaque((double)(i % 5 + 1));
    printf("before unmasking %a\n", s);
    fflush(stdout);
#if defined(__x86_64__)
    unsigned m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    m &= ~0x200u;  /* ZM */
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
#else
    raise(SIGFPE);
#endif
    for (int i = 0; i < 20000; i++) {
        s += opaque(1.0) / opaque((double)(10000 - i));
        if (i % 1000 == 0) { printf("%d %a\n", i, s); fflush(stdout); }
    }
    printf("not reached %a\n", s);
    return 0;
}
