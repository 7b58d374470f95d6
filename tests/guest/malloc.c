/* malloc.c: a PRNG-driven malloc / realloc / free / calloc stress with content checks.
 *
 * Every block carries a pattern derived from its slot and generation; each check reads it
 * back (sparsely for big blocks). Sizes reach past 256 KiB so that glibc serves them with
 * mmap and mremap, and the heap grows and shrinks with brk. calloc must return zeros even
 * where a freed dirty block used to be.
 *     ./malloc
 */
#include <stdlib.h>

#include "guest.h"

#define SLOTS 256
#define OPS 2000

struct slot { unsigned char *p; size_t n; uint32_t tag; };
static struct slot slots[SLOTS];
static unsigned long errors, checks;

static unsigned char pat(uint32_t tag, size_t i) { return (unsigned char)(tag * 31 + i * 7 + (i >> 8)); }

/* The bytes that carry the pattern: the first 16, then one per 23 bytes up to 1 KiB, then
 * one per 4093 (prime steps, so a block moved by a wrong offset shows). The set does not
 * depend on the block size, so a block shrunk or grown by realloc keeps its checked bytes.
 * Writing every byte would cost the quick tier hundreds of millions of instructions. */
#define NEXT(i) ((i) += (i) < 16 ? 1 : (i) < 1024 ? 23 : 4093)

static void put(struct slot *s)
{
    for (size_t i = 0; i < s->n; NEXT(i))
        s->p[i] = pat(s->tag, i);
}

static void check(const struct slot *s, size_t n, const char *what)
{
    for (size_t i = 0; i < n; NEXT(i)) {
        checks++;
        if (s->p[i] != pat(s->tag, i)) {
            if (errors++ < 10)
                printf("%s: slot %ld size %zu: byte %zu is %u, expected %u\n", what, (long)(s - slots), s->n, i,
                       s->p[i], pat(s->tag, i));
            return;
        }
    }
}

static size_t pick_size(void)
{
    uint64_t r = rng();
    switch (r % 16) {
    case 0: return 0;
    case 1: return 300000 + (r >> 8) % 400000;  /* above the mmap threshold */
    case 2: case 3: return 1000 + (r >> 8) % 60000;
    default: return 1 + (r >> 8) % 200;
    }
}

static void stress(void)
{
    uint64_t h = 0;
    size_t live_max = 0, big = 0;
    for (uint32_t op = 1; op <= OPS; op++) {
        struct slot *s = &slots[rng() % SLOTS];
        unsigned kind = rng() % 8;
        if (s->p && kind < 3) {
            check(s, s->n, "free");
            free(s->p);
            s->p = NULL;
            s->n = 0;
        } else if (s->p && kind < 6) {
            size_t n = pick_size();
            unsigned char *q = realloc(s->p, n ? n : 1);
            if (!q) { printf("realloc(%zu) failed\n", n); continue; }
            s->p = q;
            check(s, s->n < n ? s->n : n, "realloc");
            s->n = n;
            put(s);
        } else {
            if (s->p) { check(s, s->n, "replace"); free(s->p); }
            s->n = pick_size();
            s->tag = op;
            s->p = malloc(s->n);
            if (!s->p) { printf("malloc(%zu) failed\n", s->n); s->n = 0; continue; }
            put(s);
        }
        big += s->n > 256 * 1024;
        size_t live = 0;
        for (int i = 0; i < SLOTS; i += 17)
            live += slots[i].n;
        live_max = live > live_max ? live : live_max;
        h = mix(h, s->n);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) { check(&slots[i], slots[i].n, "final"); free(slots[i].p); }
    }
    printf("stress: %d ops, %zu big, sampled live max %zu, sizes %016llx\n", OPS, big, live_max,
           (unsigned long long)h);
}

static void zeroing(void)
{
    unsigned long nonzero = 0;
    for (int round = 0; round < 20; round++) {
        size_t n = round % 8 == 7 ? 300000 + round * 1000 : 24 + round * 40;
        unsigned char *d = malloc(n);
        for (size_t i = 0; i < n; NEXT(i))
            d[i] = 0xa5;
        __asm__ volatile("" : : "r"(d) : "memory");  /* keep the dirtying stores */
        free(d);
        unsigned char *z = calloc(n / 8, 8);
        for (size_t i = 0; i < n / 8 * 8; NEXT(i))
            nonzero += z[i] != 0;
        free(z);
    }
    printf("calloc: %lu nonzero bytes\n", nonzero);
    void *p = calloc(opaque((size_t)1 << 62), 8);  /* overflows size_t: must fail, not wrap */
    printf("calloc overflow: %s\n", p ? "returned memory" : "NULL");
    p = malloc(opaque((size_t)-1 / 2));
    printf("malloc(huge): %s\n", p ? "returned memory" : "NULL");
}

static void aligned(void)
{
    unsigned misaligned = 0;
    for (size_t a = 16; a <= 8192; a *= 2) {
        void *p = aligned_alloc(a, a * 3);
        misaligned += ((uintptr_t)p & (a - 1)) != 0;
        memset(p, 1, a * 3);
        free(p);
        void *q = NULL;
        misaligned += posix_memalign(&q, a, 100) != 0 || ((uintptr_t)q & (a - 1)) != 0;
        free(q);
    }
    printf("aligned: %u misaligned\n", misaligned);
}

int main(void)
{
    rng_seed(12345);
    stress();
    zeroing();
    aligned();
    printf("checks %lu, errors %lu\n", checks, errors);
    return errors != 0;
}
