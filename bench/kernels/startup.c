/* Baseline: does nothing but print. Its time under each configuration is the fixed cost of a run
   (process and emulator start-up, glibc's start-up code, exit). Usage: startup [ARGS...]. */
#include <stdio.h>

int main(int argc, char **argv) {
    (void)argv;
    printf("startup %d\n", argc);
    return 0;
}
