/* bzip2: block-sorting compression of generated text, modelled on 401.bzip2.
   Each block goes through the Burrows-Wheeler transform (suffix sorting by prefix doubling with a
   radix pass and a three-way quicksort), move-to-front, bzip2's RUNA/RUNB coding of zero runs and
   canonical Huffman coding with a length limit; then the block is decoded again and compared with
   the input. Usage: bzip2 [kilobytes of text] (default 64). */
// bench-group: INT
// bench-quick: 3
// bench-ref: 20000
// bench-doc: BWT + move-to-front + RLE + Huffman coding of generated text, round trip checked (like 401.bzip2)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (48 * 1024)
#define NSYM 258          /* RUNA, RUNB, MTF values 1..255, end of block */
#define MAXLEN 17

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Text with a Zipf-like word distribution and some long repeats, so sorting meets long common
   prefixes as it does on real input. */
static void gen_text(uint8_t *out, long n) {
    static const char *syll[] = {"the", "an", "com", "pre", "ing", "tion", "al", "er", "ex", "con",
                                 "de", "st", "ou", "ma", "ri", "lo", "ve", "qu", "ick", "br"};
    char words[256][16];
    for (int w = 0; w < 256; w++) {
        int k = 1 + (int)(next_rand() % 3), len = 0;
        for (int s = 0; s < k; s++) {
            const char *p = syll[next_rand() % 20];
            while (*p && len < 15) words[w][len++] = *p++;
        }
        words[w][len] = 0;
    }
    long i = 0;
    while (i < n) {
        uint64_t r = next_rand();
        if ((r & 63) == 0 && i > 200) {
            long len = 20 + (long)((r >> 8) % 120), from = i - 1 - (long)((r >> 20) % (i < 4000 ? i - 1 : 4000));
            for (long k = 0; k < len && i < n; k++) out[i++] = out[from + k];
            continue;
        }
        unsigned w = (unsigned)((r >> 8) & 255);
        w = (w * w) >> 8;          /* skew towards the common words */
        for (const char *p = words[w]; *p && i < n; p++) out[i++] = (uint8_t)*p;
        if (i < n) out[i++] = (r >> 40) % 11 == 0 ? '\n' : ((r >> 40) % 7 == 0 ? ',' : ' ');
    }
}

/* --- suffix sorting of the rotations of blk[0..n) by prefix doubling --- */
static int32_t *sa, *rank_, *tmp;

static long key2(int32_t i, long h, long n) {
    return (long)rank_[i] << 32 | rank_[(i + h) % n];
}

static void sort3(int32_t *a, long lo, long hi, long h, long n) {
    while (hi - lo > 12) {
        long p = key2(a[lo + (hi - lo) / 2], h, n), lt = lo, gt = hi, i = lo;
        while (i <= gt) {
            long k = key2(a[i], h, n);
            if (k < p) { int32_t t = a[lt]; a[lt++] = a[i]; a[i++] = t; }
            else if (k > p) { int32_t t = a[gt]; a[gt--] = a[i]; a[i] = t; }
            else i++;
        }
        if (lt - lo < hi - gt) { sort3(a, lo, lt - 1, h, n); lo = gt + 1; }
        else { sort3(a, gt + 1, hi, h, n); hi = lt - 1; }
    }
    for (long i = lo + 1; i <= hi; i++) {
        int32_t v = a[i];
        long k = key2(v, h, n), j = i - 1;
        while (j >= lo && key2(a[j], h, n) > k) { a[j + 1] = a[j]; j--; }
        a[j + 1] = v;
    }
}

/* Returns the row of the original string among the sorted rotations. */
static long bwt(const uint8_t *blk, long n, uint8_t *last) {
    long count[65537];
    memset(count, 0, sizeof count);
    for (long i = 0; i < n; i++) count[(blk[i] << 8 | blk[(i + 1) % n]) + 1]++;
    for (long c = 1; c <= 65536; c++) count[c] += count[c - 1];
    for (long i = 0; i < n; i++) sa[count[blk[i] << 8 | blk[(i + 1) % n]]++] = (int32_t)i;
    for (long i = 0; i < n; i++) rank_[i] = blk[i] << 8 | blk[(i + 1) % n];
    for (long h = 2; h < n; h *= 2) {
        /* sort each group of equal ranks by the rank h positions on */
        long lo = 0;
        while (lo < n) {
            long hi = lo;
            while (hi + 1 < n && rank_[sa[hi + 1]] == rank_[sa[lo]]) hi++;
            if (hi > lo) sort3(sa, lo, hi, h, n);
            lo = hi + 1;
        }
        long groups = 1;
        tmp[sa[0]] = 0;
        for (long i = 1; i < n; i++) {
            if (key2(sa[i], h, n) != key2(sa[i - 1], h, n)) groups++;
            tmp[sa[i]] = (int32_t)(groups - 1);
        }
        memcpy(rank_, tmp, n * sizeof *tmp);
        if (groups == n) break;
    }
    long orig = 0;
    for (long i = 0; i < n; i++) {
        last[i] = blk[(sa[i] + n - 1) % n];
        if (sa[i] == 0) orig = i;
    }
    return orig;
}

/* --- Huffman code lengths, limited to MAXLEN by flattening the frequencies as bzip2 does --- */
static void code_lengths(const long *freq, int nsym, uint8_t *len) {
    long w[2 * NSYM];
    int parent[2 * NSYM], heap[2 * NSYM];
    for (int i = 0; i < nsym; i++) w[i] = (freq[i] ? freq[i] : 1) << 8;
    for (;;) {
        int nh = 0, nn = nsym;
        for (int i = 0; i < nsym; i++) {
            int j = ++nh;           /* sift up */
            while (j > 1 && w[heap[j / 2]] > w[i]) { heap[j] = heap[j / 2]; j /= 2; }
            heap[j] = i;
        }
        while (nh > 1) {
            int pick[2];
            for (int t = 0; t < 2; t++) {
                pick[t] = heap[1];
                int last = heap[nh--], j = 1;
                while (2 * j <= nh) {
                    int c = 2 * j;
                    if (c < nh && w[heap[c + 1]] < w[heap[c]]) c++;
                    if (w[heap[c]] >= w[last]) break;
                    heap[j] = heap[c];
                    j = c;
                }
                heap[j] = last;
            }
            parent[pick[0]] = parent[pick[1]] = nn;
            w[nn] = ((w[pick[0]] & ~0xffL) + (w[pick[1]] & ~0xffL)) |
                    (1 + ((w[pick[0]] & 0xff) > (w[pick[1]] & 0xff) ? w[pick[0]] & 0xff : w[pick[1]] & 0xff));
            int j = ++nh;
            while (j > 1 && w[heap[j / 2]] > w[nn]) { heap[j] = heap[j / 2]; j /= 2; }
            heap[j] = nn++;
        }
        int too_long = 0;
        for (int i = 0; i < nsym; i++) {
            int d = 0;
            for (int k = i; k != nn - 1; k = parent[k]) d++;
            len[i] = (uint8_t)d;
            if (d > MAXLEN) too_long = 1;
        }
        if (!too_long) return;
        for (int i = 0; i < nsym; i++) w[i] = ((1 + (w[i] >> 8) / 2) << 8);
    }
}

static void canonical(const uint8_t *len, int nsym, uint32_t *code) {
    uint32_t c = 0;
    for (int l = 1; l <= MAXLEN; l++) {
        for (int i = 0; i < nsym; i++)
            if (len[i] == l) code[i] = c++;
        c <<= 1;
    }
}

/* --- bit stream --- */
static uint8_t *obuf;
static long opos, obits;
static uint64_t acc;

static void put_bits(uint32_t v, int n) {
    acc = acc << n | v;
    obits += n;
    while (obits >= 8) { obits -= 8; obuf[opos++] = (uint8_t)(acc >> obits); }
}

static long ipos_bits;
static int get_bit(void) {
    int b = (obuf[ipos_bits >> 3] >> (7 - (ipos_bits & 7))) & 1;
    ipos_bits++;
    return b;
}

/* Compresses blk into obuf, then decodes it into out. */
static void round_trip(const uint8_t *blk, long n, uint8_t *out, uint8_t *last, uint16_t *syms) {
    long orig = bwt(blk, n, last);
    uint8_t mtf[256];
    for (int i = 0; i < 256; i++) mtf[i] = (uint8_t)i;
    long nsyms = 0, zrun = 0, freq[NSYM];
    memset(freq, 0, sizeof freq);
    for (long i = 0; i <= n; i++) {
        int j = 0;
        if (i < n) {
            uint8_t c = last[i];
            while (mtf[j] != c) j++;
            memmove(mtf + 1, mtf, (size_t)j);
            mtf[0] = c;
        }
        if (j == 0 && i < n) { zrun++; continue; }
        while (zrun > 0) {   /* bijective base 2: RUNA = 1, RUNB = 2 */
            zrun--;
            syms[nsyms] = (uint16_t)(zrun & 1);
            freq[syms[nsyms++]]++;
            zrun >>= 1;
        }
        if (i < n) { syms[nsyms] = (uint16_t)(j + 1); freq[j + 1]++; nsyms++; }
    }
    syms[nsyms++] = NSYM - 1;
    freq[NSYM - 1]++;
    uint8_t len[NSYM];
    uint32_t code[NSYM];
    code_lengths(freq, NSYM, len);
    canonical(len, NSYM, code);
    put_bits((uint32_t)orig, 24);
    for (int i = 0; i < NSYM; i++) put_bits(len[i], 5);
    for (long i = 0; i < nsyms; i++) put_bits(code[syms[i]], len[syms[i]]);
    if (obits) { put_bits(0, 8 - (int)obits); }

    /* decode: canonical tables (first code and first index per length) */
    uint32_t first[MAXLEN + 2];
    int base[MAXLEN + 2], perm[NSYM], np = 0;
    uint8_t dlen[NSYM];
    long row = 0;
    for (int b = 0; b < 24; b++) row = row << 1 | get_bit();
    for (int i = 0; i < NSYM; i++) {
        uint32_t v = 0;
        for (int b = 0; b < 5; b++) v = v << 1 | (uint32_t)get_bit();
        dlen[i] = (uint8_t)v;
    }
    uint32_t c = 0;
    for (int l = 1; l <= MAXLEN; l++) {
        first[l] = c;
        base[l] = np;
        for (int i = 0; i < NSYM; i++)
            if (dlen[i] == l) { perm[np++] = i; c++; }
        c <<= 1;
    }
    base[MAXLEN + 1] = np;
    for (int i = 0; i < 256; i++) mtf[i] = (uint8_t)i;
    long k = 0, run = 0, runbit = 1;
    for (;;) {
        uint32_t v = 0;
        int l = 0, s;
        do { v = v << 1 | (uint32_t)get_bit(); l++; } while (v - first[l] >= (uint32_t)(base[l + 1] - base[l]));
        s = perm[base[l] + (int)(v - first[l])];
        if (s <= 1) { run += runbit << s; runbit <<= 1; continue; }
        while (run > 0) { last[k++] = mtf[0]; run--; }
        runbit = 1;
        if (s == NSYM - 1) break;
        uint8_t ch = mtf[s - 1];
        memmove(mtf + 1, mtf, (size_t)(s - 1));
        mtf[0] = ch;
        last[k++] = ch;
    }
    /* inverse BWT through the LF mapping */
    long cnt[257];
    memset(cnt, 0, sizeof cnt);
    for (long i = 0; i < k; i++) cnt[last[i] + 1]++;
    for (int i = 1; i <= 256; i++) cnt[i] += cnt[i - 1];
    for (long i = 0; i < k; i++) tmp[cnt[last[i]]++] = (int32_t)i;
    long p = tmp[row];
    for (long i = 0; i < k; i++) { out[i] = last[p]; p = tmp[p]; }
}

int main(int argc, char **argv) {
    long kb = argc > 1 ? atol(argv[1]) : 64;
    long total = kb * 1024;
    uint8_t *text = malloc((size_t)total), *out = malloc(BLOCK), *last = malloc(BLOCK);
    uint16_t *syms = malloc(sizeof(uint16_t) * (2 * BLOCK + 2));
    sa = malloc(sizeof(int32_t) * BLOCK);
    rank_ = malloc(sizeof(int32_t) * BLOCK);
    tmp = malloc(sizeof(int32_t) * BLOCK);
    obuf = malloc(2 * BLOCK + 1024);
    gen_text(text, total);
    uint32_t crc = 0xffffffffu;
    long compressed = 0, bad = 0;
    for (long off = 0; off < total; off += BLOCK) {
        long n = total - off < BLOCK ? total - off : BLOCK;
        opos = obits = 0;
        acc = 0;
        ipos_bits = 0;
        round_trip(text + off, n, out, last, syms);
        if (memcmp(out, text + off, (size_t)n) != 0) bad++;
        for (long i = 0; i < opos; i++) {
            crc ^= obuf[i];
            for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
        }
        compressed += opos;
    }
    /* a failed round trip must change the checksum */
    printf("bzip2 checksum %lu\n", (unsigned long)compressed << 32 ^ (crc ^ 0xffffffffu) ^ (unsigned long)bad << 63);
    free(text); free(out); free(last); free(syms); free(sa); free(rank_); free(tmp); free(obuf);
    return 0;
}
