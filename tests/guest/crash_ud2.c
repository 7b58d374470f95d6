/* crash_ud2.c: __builtin_trap(), which is ud2 on x86-64: the guest must die of SIGILL
 * (status 132). On AArch64 the compiler emits brk #1000 instead, which raises SIGTRAP (133).
 *     ./crash_ud2; echo $?      # 132
 */
#include <stdio.h>

int main(void)
{
    printf("before the trap\n");
    fflush(stdout);
    __builtin_trap();
}
