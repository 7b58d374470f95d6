/* strings.c: the libc string functions at every alignment 0..31 and every length 0..70.
 *
 * The libc picks vectorized variants (SSE2, AVX2, ...) from CPUID, which read past the
 * end of strings up to a page boundary and branch on alignment: exactly what breaks in a
 * translator. Each function gets one checksum line over all (alignment, length) cases, and
 * the whole destination buffer is hashed at the end so any stray write shows.
 *     ./strings
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>

#include "guest.h"

#define MAXLEN 70
#define NALIGN 32
#define BUF (2 * NALIGN + MAXLEN + 64)

static unsigned char src[BUF], dst[BUF];

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    rng_seed(seed);
    for (size_t i = 0; i < n; i++)
        p[i] = 'a' + rng() % 26;
}

/* The cases: every length 0..70 with 8 source alignments, chosen so that every (alignment
 * mod 16, length mod 16) pair occurs and every alignment 0..31 occurs with every length
 * class; the destination alignment is spread the same way. The full 32 x 32 x 71 product
 * would cost a quick tier tens of millions of guest instructions. */
#define FOR_CASES(len, sa)                                  \
    for (size_t len = 0; len <= MAXLEN; len++)              \
        for (size_t k_ = 0, sa; k_ < 8 && (sa = (len + 4 * k_ + len / 16) % NALIGN, 1); k_++)

static size_t dalign(size_t sa, size_t len) { return (sa * 13 + len * 7) % NALIGN; }

static uint64_t window(uint64_t h, const unsigned char *p, size_t at, size_t len)
{
    return mix_bytes(h, p + at - 1, len + 2);
}

static void copies(void)
{
    uint64_t hcpy = 0, hmove = 0, hset = 0;
    fill(src, BUF, 1);
    fill(dst, BUF, 2);
    FOR_CASES(len, sa) {
        {
            size_t da = dalign(sa, len) + 8;
            memcpy(dst + da, src + sa + 8, len);
            hcpy = window(hcpy, dst, da, len);
            /* overlapping both ways: the source is the destination buffer itself */
            size_t from = da + (sa & 7) + 1;
            memmove(dst + da, dst + from, len);
            hmove = window(hmove, dst, da, len);
            memmove(dst + from, dst + da, len);
            hmove = window(hmove, dst, from, len);
            memset(dst + da, (int)(len * 37 + sa), len);
            hset = window(hset, dst, da, len);
        }
    }
    PUT("memcpy", hcpy); PUT("memmove", hmove); PUT("memset", hset);
    PUT("dst.after.copies", mix_bytes(0, dst, BUF));
}

static int sign(int x) { return (x > 0) - (x < 0); }

static void compares(void)
{
    uint64_t hmemcmp = 0, hstrcmp = 0, hstrncmp = 0;
    fill(src, BUF, 3);
    FOR_CASES(len, sa) {
        {
            size_t da = dalign(sa, len);
            memcpy(dst + da, src + sa, len);
            dst[da + len] = src[sa + len] = 0;
            /* equal, then differing at the last byte, then differing in the middle */
            hmemcmp = mix(hmemcmp, sign(memcmp(dst + da, src + sa, len)));
            hstrcmp = mix(hstrcmp, sign(strcmp((char *)dst + da, (char *)src + sa)));
            hstrncmp = mix(hstrncmp, sign(strncmp((char *)dst + da, (char *)src + sa, len / 2 + 1)));
            if (len) {
                dst[da + len - 1] ^= 0x81;
                hmemcmp = mix(hmemcmp, sign(memcmp(dst + da, src + sa, len)));
                hstrcmp = mix(hstrcmp, sign(strcmp((char *)dst + da, (char *)src + sa)));
                hstrncmp = mix(hstrncmp, sign(strncmp((char *)dst + da, (char *)src + sa, len)));
                hstrncmp = mix(hstrncmp, sign(strncmp((char *)dst + da, (char *)src + sa, len - 1)));
                dst[da + len / 2] += 1;
                hmemcmp = mix(hmemcmp, sign(memcmp(dst + da, src + sa, len)));
                hstrcmp = mix(hstrcmp, sign(strcmp((char *)src + sa, (char *)dst + da)));
            }
            src[sa + len] = 'q';
        }
    }
    PUT("memcmp", hmemcmp); PUT("strcmp", hstrcmp); PUT("strncmp", hstrncmp);
}

static uint64_t pos(const void *found, const void *base)
{
    return found ? (uint64_t)((const char *)found - (const char *)base) : 0xffffULL;
}

static void searches(void)
{
    uint64_t hlen = 0, hchr = 0, hrchr = 0, hmemchr = 0, hcpy = 0, hstr = 0;
    fill(src, BUF, 4);
    FOR_CASES(len, sa) {
        {
            src[sa + len] = 0;
            char *s = (char *)src + sa;
            hlen = mix(hlen, strlen(s));
            /* a char present (maybe twice), then one absent, then the terminator itself */
            int c = len ? s[len * 2 / 3] : 'x';
            hchr = mix(hchr, pos(strchr(s, c), s) | pos(strchr(s, 'A'), s) << 16 | pos(strchr(s, 0), s) << 32);
            hrchr = mix(hrchr, pos(strrchr(s, c), s) | pos(strrchr(s, 'A'), s) << 16 | pos(strrchr(s, 0), s) << 32);
            hmemchr = mix(hmemchr, pos(memchr(s, c, len), s) | pos(memchr(s, 0, len + 1), s) << 16);
            size_t da = dalign(sa, len);
            memset(dst + da, '#', len + 2);
            strcpy((char *)dst + da, s);
            hcpy = window(hcpy, dst, da ? da : 1, len + 1);
            /* needles cut from the haystack itself, at its start, middle and end */
            char needle[8];
            size_t nl = len < 5 ? len : 5;
            memcpy(needle, s + len - nl, nl);
            needle[nl] = 0;
            hstr = mix(hstr, pos(strstr(s, needle), s));
            if (len > 3) {
                memcpy(needle, s + len / 3, 3);
                needle[3] = 0;
                hstr = mix(hstr, pos(strstr(s, needle), s));
                needle[1] = 'Z';
                hstr = mix(hstr, pos(strstr(s, needle), s));
            }
            src[sa + len] = 'q';
        }
    }
    PUT("strlen", hlen); PUT("strchr", hchr); PUT("strrchr", hrchr); PUT("memchr", hmemchr);
    PUT("strcpy", hcpy); PUT("strstr", hstr);
}

static void page_edge(void)
{
    /* strings that end right before an inaccessible page: vector code may read ahead only
     * within the page, so none of these may fault */
    unsigned char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + 4096, 4096, PROT_NONE) != 0) {
        puts("mmap failed");
        return;
    }
    memset(p, 'k', 4096);
    p[4095] = 0;
    uint64_t h = 0;
    for (size_t k = 1; k < 80; k++) {
        unsigned char *s = p + 4096 - k;
        h = mix(h, strlen((char *)s));
        h = mix(h, pos(strchr((char *)s, 'z'), s) | pos(strrchr((char *)s, 'k'), s) << 16);
        h = mix(h, pos(memchr(s, 0, k), s) | pos(memrchr(s, 'k', k), s) << 16);
        h = mix(h, (uint64_t)sign(strcmp((char *)s, "kkkk")) + 1);
        h = mix(h, (uint64_t)sign(memcmp(s, p, k)) + 1);
    }
    PUT("page.edge", h);
    munmap(p, 2 * 4096);
}

int main(void)
{
    copies();
    compares();
    searches();
    page_edge();
    printf("strlen(\"hello\") = %zu, strcmp(\"a\", \"b\") < 0: %d\n", strlen(opaque("hello")),
           strcmp(opaque("a"), opaque("b")) < 0);
    return 0;
}
