/* args.c: what the guest sees of its command line and environment.
 *
 * Prints argc and every argv[i] with its length (so empty strings and spaces show), then
 * handles two kinds of argument: "env:NAME" prints NAME's value or (unset), "exit:N" makes
 * N the exit status. Everything else is only printed, so options like "-d" pass through.
 *     ./args "a b" "" env:HOME exit:3     # prints 5 arguments and HOME, exits with 3
 */
#include <stdlib.h>

#include "guest.h"

extern char **environ;

int main(int argc, char **argv)
{
    int status = 0;
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d] (%zu) [%s]\n", i, strlen(argv[i]), argv[i]);
    printf("argv[argc] is %s\n", argv[argc] ? "not NULL" : "NULL");
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "env:", 4) == 0) {
            const char *v = getenv(argv[i] + 4);
            printf("env %s %s%s%s\n", argv[i] + 4, v ? "[" : "(unset)", v ? v : "", v ? "]" : "");
        } else if (strncmp(argv[i], "exit:", 5) == 0) {
            status = atoi(argv[i] + 5);
        }
    }
    /* the environment block ends with NULL and every entry has the NAME=VALUE shape */
    int n = 0, malformed = 0;
    for (char **e = environ; *e; e++, n++)
        malformed += strchr(*e, '=') == NULL;
    printf("environ: %d entries, %s\n", n, malformed ? "malformed" : "well formed");
    fflush(stdout);
    return status;
}
