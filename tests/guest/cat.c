/* cat.c: copies the files named on its command line, or stdin without arguments, to stdout
 * with read/write; a file that cannot be opened prints one line and makes the status 1.
 * The harness feeds it stdin and uses it to check -L path rewriting.
 *     echo hi | ./cat;  ./cat /etc/hostname
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int copy(int fd)
{
    char buf[1000];  /* not a power of two, so reads end at odd offsets */
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, (size_t)(n - off));
            if (w <= 0) return 1;
            off += w;
        }
    }
    return n < 0;
}

int main(int argc, char **argv)
{
    int status = 0;
    if (argc < 2) return copy(0);
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0) {
            printf("cat: %s: errno %d\n", argv[i], errno);
            fflush(stdout);
            status = 1;
            continue;
        }
        status |= copy(fd);
        close(fd);
    }
    return status;
}
