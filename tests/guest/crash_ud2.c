/* crash_ud2.c: executes an undefined instruction (ud2 on x86-64, udf on AArch64); the guest
 * must die of SIGILL (status 132).
 *     ./crash_ud2; echo $?      # 132
 */
#include <stdio.h>

int main(void)
{
    printf("before the trap\n");
    fflush(stdout);
    __builtin_trap();
}
