/* crash_abort.c: abort() raises SIGABRT on its own thread (tgkill); the guest must die of
 * it (status 134).
 *     ./crash_abort; echo $?    # 134
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("before abort\n");
    fflush(stdout);
    abort();
}
