/* memory.c: the address-space system calls: brk, mmap (anonymous, fixed, file-backed shared
 * and private), munmap of a part, mprotect, mremap, and their error numbers.
 *
 * Only sizes, contents and errno values are printed, never an address. Runs in a fresh
 * temporary directory (it creates map.bin there and leaves it).
 *     cd /tmp/x && ./memory
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"

#define PAGE 4096

static uint64_t sum_pages(const unsigned char *p, size_t pages)
{
    uint64_t h = 0;
    for (size_t i = 0; i < pages; i++)
        h = mix(h, p[i * PAGE] | (uint64_t)p[i * PAGE + PAGE - 1] << 8);
    return h;
}

/* the raw brk system call, before stdio allocates anything: the libc's sbrk differs */
static long brk_grow, brk_shrink, brk_sum;

static void raw_brk(void)
{
    long cur = syscall(SYS_brk, 0);
    long up = syscall(SYS_brk, cur + 20 * PAGE + 123);
    brk_grow = up - cur;
    unsigned char *p = (unsigned char *)cur;
    for (int i = 0; i < 20 * PAGE; i += 512) p[i] = (unsigned char)i + 1;
    for (int i = 0; i < 20 * PAGE; i += 512) brk_sum += p[i];
    long down = syscall(SYS_brk, cur);
    brk_shrink = up - down;
}

static void anonymous(void)
{
    size_t n = 64 << 20;  /* 64 MiB, touched sparsely: only touched pages may cost memory */
    unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    unsigned zero = 1;
    for (size_t off = 0; off < n; off += 1 << 20) { zero &= p[off] == 0; p[off + 5] = (unsigned char)(off >> 20); }
    uint64_t h = 0;
    for (size_t off = 0; off < n; off += 1 << 20) h = mix(h, p[off + 5]);
    printf("anonymous 64 MiB: zero-filled %u, hash %016llx\n", zero, (unsigned long long)h);
    /* punch a hole in the middle and map it again: the new pages are zero */
    CHECK(munmap(p + 8 * PAGE, 4 * PAGE) == 0);
    unsigned char *q = mmap(p + 8 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                            -1, 0);
    CHECK(q == p + 8 * PAGE);
    CHECK(q[0] == 0 && q[4 * PAGE - 1] == 0);
    /* MAP_FIXED over a live mapping replaces it */
    p[0] = 77;
    CHECK(mmap(p, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
    printf("after MAP_FIXED: %u\n", p[0]);
    CHECK(mprotect(p, 2 * PAGE, PROT_READ) == 0);
    printf("read-only page reads %u\n", p[5]);
    CHECK(mprotect(p, 2 * PAGE, PROT_READ | PROT_WRITE) == 0);
    p[1] = 9;
    CHECK(munmap(p, n) == 0);
}

static void remap(void)
{
    unsigned char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    for (int i = 0; i < 4 * PAGE; i++) p[i] = (unsigned char)(i * 3);
    unsigned char *q = mremap(p, 4 * PAGE, 300 * PAGE, MREMAP_MAYMOVE);
    CHECK(q != MAP_FAILED);
    int same = 1;
    for (int i = 0; i < 4 * PAGE; i++) same &= q[i] == (unsigned char)(i * 3);
    printf("mremap grow: contents kept %d, new pages zero %d\n", same, q[299 * PAGE] == 0 && q[4 * PAGE] == 0);
    q = mremap(q, 300 * PAGE, 2 * PAGE, 0);
    CHECK(q != MAP_FAILED);
    printf("mremap shrink: %u %u\n", q[PAGE + 7], q[2 * PAGE - 1]);
    CHECK(munmap(q, 2 * PAGE) == 0);
}

static void file_backed(void)
{
    int fd = open("map.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    unsigned char page[PAGE];
    for (int i = 0; i < 3; i++) {
        memset(page, 'A' + i, PAGE);
        CHECK(write(fd, page, PAGE) == PAGE);
    }
    CHECK(write(fd, "tail", 4) == 4);  /* the last page is partial: the rest maps as zeros */
    unsigned char *s = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(s != MAP_FAILED);
    printf("shared map: %c %c %c %.4s then %u\n", s[0], s[PAGE], s[2 * PAGE + 100], (char *)s + 3 * PAGE,
           s[3 * PAGE + 4]);
    memcpy(s + PAGE + 10, "SHARED", 6);
    CHECK(msync(s, 4 * PAGE, MS_SYNC) == 0);
    char back[6];
    CHECK(pread(fd, back, 6, PAGE + 10) == 6);
    printf("file after shared write: %.6s\n", back);
    unsigned char *pv = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
    CHECK(pv != MAP_FAILED);
    printf("private map at offset 1 page: %c %.6s\n", pv[0], (char *)pv + 10);
    memcpy(pv, "PRIVATE", 7);
    CHECK(pread(fd, back, 6, PAGE) == 6);
    printf("file after private write: %.6s\n", back);
    CHECK(munmap(s, 4 * PAGE) == 0 && munmap(pv, 2 * PAGE) == 0);
    close(fd);
}

static void errors(void)
{
    errno = 0;
    CHECK(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED);
    printf("mmap length 0: errno %d\n", errno);
    errno = 0;
    CHECK(munmap((void *)(uintptr_t)opaque(0x10001), PAGE) == -1);
    printf("munmap misaligned: errno %d\n", errno);
    errno = 0;
    CHECK(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 1000, 0) == MAP_FAILED);
    printf("mmap bad fd: errno %d\n", errno);
    unsigned char *p = mmap(NULL, 3 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(munmap(p + PAGE, PAGE) == 0);
    errno = 0;
    CHECK(mprotect(p, 3 * PAGE, PROT_READ | PROT_WRITE) == -1);
    printf("mprotect over a hole: errno %d\n", errno);
    munmap(p, 3 * PAGE);
}

int main(void)
{
    raw_brk();
    printf("brk: grew %ld (asked %d), shrank %ld, sum %ld\n", brk_grow, 20 * PAGE + 123, brk_shrink, brk_sum);
    anonymous();
    remap();
    file_backed();
    errors();
    printf("failures: %d\n", failures);
    return failures != 0;
}
