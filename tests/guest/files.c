/* files.c: file-system system calls in the current directory (the harness makes it a fresh
 * temporary directory for each run).
 *
 * create / write / read back / lseek / pread / pwrite / ftruncate / fstat / stat / rename /
 * mkdir / readdir (sorted) / unlink / rmdir / dup / pipe / fcntl, errno of the failures, and
 * stdio on top. It leaves out.txt and keep/data.bin behind for the harness to compare.
 *     mkdir /tmp/x && cd /tmp/x && ./files
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "guest.h"


static void show_stat(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("stat %s: errno %d\n", path, errno);
        return;
    }
    printf("stat %s: %s size %lld mode %03o nlink %ld\n", path,
           S_ISDIR(st.st_mode) ? "dir" : S_ISREG(st.st_mode) ? "file" : "other",
           S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size, (unsigned)(st.st_mode & 0777),
           S_ISDIR(st.st_mode) ? 0L : (long)st.st_nlink);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path)
{
    DIR *d = opendir(path);
    if (!d) { printf("opendir %s: errno %d\n", path, errno); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    printf("ls %s:", path);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

static void raw_io(void)
{
    unsigned char buf[4096], back[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + (i >> 5));
    int fd = open("raw.bin", O_CREAT | O_EXCL | O_RDWR, 0640);
    CHECK(fd >= 0);
    CHECK(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf);
    CHECK(write(fd, buf, 100) == 100);
    CHECK(lseek(fd, 0, SEEK_CUR) == 4196);
    CHECK(lseek(fd, 10, SEEK_SET) == 10);
    CHECK(read(fd, back, 20) == 20 && memcmp(back, buf + 10, 20) == 0);
    CHECK(lseek(fd, -50, SEEK_END) == 4146);
    ssize_t r = read(fd, back, 1000);
    printf("read at end-50: %zd\n", r);
    CHECK(read(fd, back, 10) == 0);
    CHECK(pwrite(fd, "PWRITE", 6, 1000) == 6);
    CHECK(pread(fd, back, 10, 998) == 10 && memcmp(back + 2, "PWRITE", 6) == 0);
    CHECK(lseek(fd, 0, SEEK_CUR) == 4196);  /* pread/pwrite leave the offset alone */
    /* a hole: seek past the end, write, the gap reads as zeros */
    CHECK(lseek(fd, 10000, SEEK_SET) == 10000);
    CHECK(write(fd, "end", 3) == 3);
    CHECK(pread(fd, back, 16, 5000) == 16);
    int zeros = 0;
    for (int i = 0; i < 16; i++) zeros += back[i] == 0;
    printf("hole zeros: %d\n", zeros);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    printf("fstat raw.bin: size %lld mode %03o\n", (long long)st.st_size, (unsigned)(st.st_mode & 0777));
    CHECK(ftruncate(fd, 123) == 0);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 123);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(read(fd, back, sizeof back) == 123 && memcmp(back, buf, 123) == 0);
    CHECK(close(fd) == 0);
    CHECK(close(fd) == -1 && errno == EBADF);
    CHECK(open("raw.bin", O_CREAT | O_EXCL | O_WRONLY, 0600) == -1 && errno == EEXIST);
    CHECK(open("missing", O_RDONLY) == -1 && errno == ENOENT);
    CHECK(read(-1, back, 1) == -1 && errno == EBADF);
    /* O_APPEND writes at the end whatever the offset */
    fd = open("raw.bin", O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    CHECK(write(fd, "APP", 3) == 3);
    CHECK(fstat(fd, &st) == 0 && st.st_size == 126);
    close(fd);
    show_stat("raw.bin");
}

static void fds(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], "through a pipe", 14) == 14);
    char buf[32] = {0};
    CHECK(read(p[0], buf, sizeof buf) == 14);
    printf("pipe: %s\n", buf);
    int d = dup(p[1]);
    CHECK(d > p[1]);
    CHECK(dup2(p[0], 40) == 40);
    CHECK(write(d, "dup", 3) == 3);
    CHECK(read(40, buf, 3) == 3 && memcmp(buf, "dup", 3) == 0);
    CHECK((fcntl(40, F_GETFD) & FD_CLOEXEC) == 0);
    CHECK(fcntl(40, F_SETFD, FD_CLOEXEC) == 0 && (fcntl(40, F_GETFD) & FD_CLOEXEC) != 0);
    int fl = fcntl(p[0], F_GETFL);
    CHECK(fl != -1 && (fl & O_ACCMODE) == O_RDONLY);
    CHECK(fcntl(p[0], F_SETFL, fl | O_NONBLOCK) == 0);
    CHECK(read(p[0], buf, 1) == -1 && errno == EAGAIN);
    int n = fcntl(d, F_DUPFD, 50);
    CHECK(n >= 50);
    close(p[0]); close(p[1]); close(d); close(40); close(n);
    CHECK(fcntl(40, F_GETFD) == -1 && errno == EBADF);
}

static void tree(void)
{
    CHECK(mkdir("d", 0755) == 0);
    CHECK(mkdir("d", 0755) == -1 && errno == EEXIST);
    CHECK(mkdir("d/sub", 0700) == 0);
    const char *names[] = {"d/b.txt", "d/a.txt", "d/c-longer-name.txt", "d/sub/deep.txt"};
    for (int i = 0; i < 4; i++) {
        int fd = open(names[i], O_CREAT | O_WRONLY | O_TRUNC, 0644);
        CHECK(fd >= 0);
        dprintf(fd, "file %d: %s\n", i, names[i]);
        close(fd);
    }
    list("d");
    list("d/sub");
    show_stat("d");
    show_stat("d/a.txt");
    CHECK(rename("d/a.txt", "d/renamed.txt") == 0);
    CHECK(rename("d/missing", "d/x") == -1 && errno == ENOENT);
    CHECK(access("d/renamed.txt", R_OK | W_OK) == 0);
    CHECK(access("d/a.txt", F_OK) == -1 && errno == ENOENT);
    CHECK(link("d/b.txt", "d/b-link.txt") == 0);
    show_stat("d/b.txt");
    CHECK(symlink("renamed.txt", "d/sym") == 0);
    char target[64] = {0};
    CHECK(readlink("d/sym", target, sizeof target - 1) == 11);
    printf("readlink: %s\n", target);
    list("d");
    CHECK(rmdir("d") == -1 && errno == ENOTEMPTY);
    CHECK(unlink("d/sub") == -1 && (errno == EISDIR || errno == EPERM));
    CHECK(chdir("d/sub") == 0);
    CHECK(unlink("deep.txt") == 0);
    CHECK(chdir("../..") == 0);
    CHECK(rmdir("d/sub") == 0);
    const char *rm[] = {"d/b.txt", "d/b-link.txt", "d/c-longer-name.txt", "d/renamed.txt", "d/sym"};
    for (int i = 0; i < 5; i++)
        CHECK(unlink(rm[i]) == 0);
    CHECK(rmdir("d") == 0);
    show_stat("d");
    CHECK(unlink("raw.bin") == 0);
}

static void stdio(void)
{
    FILE *f = fopen("out.txt", "w+");
    CHECK(f != NULL);
    for (int i = 0; i < 200; i++)
        fprintf(f, "line %03d %s\n", i, i % 3 ? "abc" : "defghij");
    CHECK(fflush(f) == 0);
    long end = ftell(f);
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    char line[64];
    int lines = 0;
    uint64_t h = 0;
    while (fgets(line, sizeof line, f)) { lines++; h = mix_bytes(h, line, strlen(line)); }
    printf("out.txt: %ld bytes, %d lines, %016llx\n", end, lines, (unsigned long long)h);
    CHECK(fseek(f, -9, SEEK_END) == 0 && fgets(line, sizeof line, f) != NULL);
    printf("tail: %s", line);
    fclose(f);
    CHECK(mkdir("keep", 0750) == 0);
    f = fopen("keep/data.bin", "wb");
    CHECK(f != NULL);
    for (int i = 0; i < 5000; i++) fputc((i * 13) ^ (i >> 4), f);
    fclose(f);
    show_stat("keep/data.bin");
    show_stat("out.txt");
}

int main(void)
{
    umask(022);
    raw_io();
    fds();
    tree();
    stdio();
    list(".");
    printf("failures: %d\n", failures);
    return failures != 0;
}
