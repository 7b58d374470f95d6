/* crash_segv.c: a write through a bad pointer; the guest must die of SIGSEGV (status 139).
 * stdout is flushed first, so the harness can check that output before the crash survives.
 *     ./crash_segv; echo $?     # 139
 */
#include <stdio.h>

int main(void)
{
    printf("before the crash\n");
    fflush(stdout);
    volatile int *volatile bad = (int *)16;  /* volatile: no compile-time warning or folding */
    *bad = 1;
    printf("not reached\n");
    return 0;
}
