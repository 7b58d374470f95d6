/* structs.c: data layout and the calling convention.
 *
 * Structs passed and returned by value in registers and in memory (the SysV classes:
 * INTEGER, SSE, mixed, MEMORY), bit-fields, unions, packed structs with unaligned fields,
 * thread-local variables (%fs-relative on x86-64) and static initializers.
 *     ./structs
 */
#include <stdlib.h>

#include "guest.h"

struct small { int a; short b; char c; };                  /* one INTEGER register */
struct pair { long x; long y; };                           /* two INTEGER registers */
struct mixed { double d; int i; };                         /* SSE + INTEGER */
struct floats { float f[4]; };                             /* two SSE registers */
struct big { long v[9]; char tag[5]; };                    /* MEMORY: hidden pointer */
struct ld { long double x; int k; };                       /* x87 class in memory */

static __attribute__((noinline)) struct small mk_small(int a) { return (struct small){a, (short)(a * 3), (char)(a + 1)}; }
static __attribute__((noinline)) struct pair swap(struct pair p) { return (struct pair){p.y * 2, p.x - 1}; }
static __attribute__((noinline)) struct mixed scale(struct mixed m, double k) { return (struct mixed){m.d * k, m.i + (int)k}; }
static __attribute__((noinline)) struct floats addf(struct floats a, struct floats b)
{
    struct floats r;
    for (int i = 0; i < 4; i++) r.f[i] = a.f[i] + b.f[i] * 0.5f;
    return r;
}
static __attribute__((noinline)) struct big grow(struct big b, int k)
{
    for (int i = 0; i < 9; i++) b.v[i] = b.v[i] * k + i;
    b.tag[k % 4] = 'X';
    return b;
}
static __attribute__((noinline)) struct ld halve(struct ld v) { v.x /= 2; v.k++; return v; }
/* more arguments than registers: the rest go on the stack, mixed with floats */
static __attribute__((noinline)) double many(int a, double b, long c, float d, int e, double f, long g, int h,
                                             double i, long j, double k, double l, double m, double n, double o,
                                             double p, double q, int r)
{
    return a + b + c + d + e + f + g + h + i + j + k + l + m + n + o + p + q + r;
}

struct flags {
    unsigned ready : 1;
    unsigned mode : 3;
    signed delta : 5;
    unsigned long long wide : 40;
    unsigned tail : 7;
};

union pun { double d; uint64_t u; uint32_t w[2]; unsigned char b[8]; float f; };

struct __attribute__((packed)) wire { char kind; uint32_t len; uint64_t id; uint16_t port; };

static __thread long tls_counter = 42;
static __thread char tls_buf[64];
static long shared_counter = 7;
static const struct pair table[] = {{1, 2}, {3, 4}, {.y = 9}};

int main(void)
{
    struct small s = mk_small(opaque(20));
    printf("small: %d %d %d (size %zu)\n", s.a, s.b, s.c, sizeof s);
    struct pair p = swap((struct pair){opaque(5L), 11});
    printf("pair: %ld %ld\n", p.x, p.y);
    struct mixed m = scale((struct mixed){1.25, 3}, opaque(4.0));
    printf("mixed: %g %d\n", m.d, m.i);
    struct floats f = addf((struct floats){{1, 2, 3, 4}}, (struct floats){{10, 20, 30, 40}});
    printf("floats: %g %g %g %g\n", f.f[0], f.f[1], f.f[2], f.f[3]);
    struct big b = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, "abcd"};
    struct big b2 = grow(b, opaque(3));
    printf("big: %ld %ld %s (original %ld %s)\n", b2.v[0], b2.v[8], b2.tag, b.v[8], b.tag);
    struct ld l = halve((struct ld){opaque(3.0), 1});
    printf("long double struct: %.5Lf %d\n", l.x, l.k);
    printf("many args: %.3f\n", many(1, 2.5, 3, 4.5f, 5, 6.5, 7, 8, 9.5, 10, 11, 12, 13, 14, 15, 16, 17, opaque(18)));

    struct flags fl = {0};
    for (int i = 0; i < 40; i++) {
        fl.ready ^= 1;
        fl.mode += (unsigned)i;
        fl.delta = (signed)(fl.delta - 3);
        fl.wide = fl.wide * 3 + (unsigned long long)i;
        fl.tail = (fl.tail + (unsigned)fl.mode) & 0x7f;
    }
    printf("bitfields: %u %u %d %llu %u (size %zu)\n", fl.ready, fl.mode, fl.delta, (unsigned long long)fl.wide,
           fl.tail, sizeof fl);

    union pun u;
    u.d = opaque(-1.5);
    printf("union: %016llx %08x %08x %02x\n", (unsigned long long)u.u, u.w[0], u.w[1], u.b[7]);
    u.u = 0;
    u.f = opaque(0.1f);
    printf("union float: %08x\n", u.w[0]);

    unsigned char raw[64];
    for (int i = 0; i < 64; i++) raw[i] = (unsigned char)(i * 11);
    uint64_t h = 0;
    for (int off = 0; off < 40; off++) {
        struct wire *w = (struct wire *)(raw + off);  /* every misalignment */
        h = mix(h, w->kind ^ (uint64_t)w->len << 8 ^ w->id ^ (uint64_t)w->port << 40);
        w->port = (uint16_t)(w->port + 1);
    }
    printf("packed: size %zu, hash %016llx\n", sizeof(struct wire), (unsigned long long)h);

    for (int i = 0; i < 1000; i++) { tls_counter += i; tls_buf[i % 64] ^= (char)i; }
    shared_counter += tls_counter;
    printf("tls: %ld %d %d, shared %ld\n", tls_counter, tls_buf[3], tls_buf[63], shared_counter);
    printf("initializers: %ld %ld %ld %ld\n", table[0].y, table[1].x, table[2].x, table[2].y);
    return 0;
}
