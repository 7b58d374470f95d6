/* entropy.c: the random bytes the kernel hands a process (the 16 AT_RANDOM bytes and
 * getrandom) and a few other auxv entries.
 *
 * Without arguments the output is deterministic (only the shape of the values is printed),
 * so the plain native-vs-hqemu comparison works; with "show" it prints the bytes in hex,
 * which -seed N must make identical from one hqemu run to the next.
 *     ./entropy show
 */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

static void hex(const char *name, const unsigned char *b, int show)
{
    int zero = 1;
    for (int i = 0; i < 16; i++) zero &= b[i] == 0;
    printf("%s:", name);
    if (show)
        for (int i = 0; i < 16; i++) printf(" %02x", b[i]);
    else
        printf(" 16 bytes, %s", zero ? "all zero" : "not all zero");
    printf("\n");
}

int main(int argc, char **argv)
{
    int show = argc > 1 && strcmp(argv[1], "show") == 0;
    const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
    if (!at_random) { printf("no AT_RANDOM\n"); return 1; }
    hex("AT_RANDOM", at_random, show);
    unsigned char buf[16] = {0};
    ssize_t n = getrandom(buf, sizeof buf, 0);
    printf("getrandom returned %zd\n", n);
    hex("getrandom", buf, show);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_PAGESZ %lu, AT_ENTRY %s, AT_PHDR %s, AT_EXECFN %s\n", getauxval(AT_PAGESZ),
           getauxval(AT_ENTRY) ? "set" : "0", getauxval(AT_PHDR) ? "set" : "0",
           !execfn ? "missing" : strcmp(execfn, argv[0]) == 0 ? "= argv[0]" : "differs from argv[0]");
    printf("AT_UID %lu = getuid %s, AT_SECURE %lu\n", getauxval(AT_UID),
           getauxval(AT_UID) == (unsigned long)getuid() ? "yes" : "no", getauxval(AT_SECURE));
    return 0;
}
