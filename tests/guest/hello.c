/* hello.c: the smallest guest: one line through stdio, exit status 0. The first program to
 * bring up on a new frontend or runtime.
 *     ./hello
 */
#include <stdio.h>

int main(void)
{
    puts("hello, world");
    return 0;
}
