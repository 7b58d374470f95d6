/* sjeng: game-tree search on connect-four, modelled on 458.sjeng. Bitboard positions, negamax
   alpha-beta with iterative deepening, a transposition table indexed by Zobrist keys, the
   transposition-table move and the history heuristic for move ordering, and an evaluation that
   counts open threats with shifted bitboards. Each position comes from a random opening and is
   searched to a fixed depth. Usage: sjeng [positions] (default 10). */
// bench-group: INT
// bench-quick: 1
// bench-ref: 25000
// bench-doc: alpha-beta search with iterative deepening, Zobrist transposition table and history heuristic on connect-four (like 458.sjeng)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 7
#define H 6
#define H1 (H + 1)
#define WIN 10000
#define DEPTH 7
#define TT_BITS 16

typedef struct {
    uint64_t cur, mask, key;   /* stones of the side to move, all stones, Zobrist key */
    int moves;
} pos_t;

typedef struct {
    uint64_t key;
    int16_t score;
    int8_t depth, flag, move;
} tt_entry_t;

enum { EXACT, LOWER, UPPER };

static const uint64_t BOTTOM = 0x40810204081ULL;         /* bit 0 of each column */
static const uint64_t BOARD = 0x40810204081ULL * 0x3f;   /* the 6 playable rows */
static uint64_t zobrist[2][W * H1];
static tt_entry_t *tt;
static long history[W];
static uint64_t nodes;

static uint64_t rng = 0x6A09E667F3BCC909ULL;

static uint64_t next_rand(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int popcount(uint64_t x) {
    int n = 0;
    for (; x; x &= x - 1) n++;
    return n;
}

/* Empty cells where one more stone of pos's owner makes four in a row. */
static uint64_t threats(uint64_t pos, uint64_t mask) {
    uint64_t r = (pos << 1) & (pos << 2) & (pos << 3), p;
    static const int dirs[3] = {H1, H1 - 1, H1 + 1};
    for (int d = 0; d < 3; d++) {
        int s = dirs[d];
        p = (pos << s) & (pos << 2 * s);
        r |= p & (pos << 3 * s);
        r |= p & (pos >> s);
        p = (pos >> s) & (pos >> 2 * s);
        r |= p & (pos << s);
        r |= p & (pos >> 3 * s);
    }
    return r & (BOARD ^ mask);
}

static uint64_t column_mask(int c) { return ((1ULL << H) - 1) << (c * H1); }

static pos_t play(pos_t p, int c) {
    uint64_t stone = (p.mask + (BOTTOM & column_mask(c))) & column_mask(c);
    int bit = __builtin_ctzll(stone);
    p.key ^= zobrist[p.moves & 1][bit];
    p.cur ^= p.mask;
    p.mask |= stone;
    p.moves++;
    return p;
}

static int evaluate(const pos_t *p) {
    uint64_t opp = p->cur ^ p->mask;
    uint64_t mine = threats(p->cur, p->mask), theirs = threats(opp, p->mask);
    int score = 4 * (popcount(mine) - popcount(theirs));
    /* a threat on an odd row favours the first player, on an even row the second */
    uint64_t odd = BOTTOM * 0x15, side_rows = (p->moves & 1) ? ~odd : odd;
    score += 3 * (popcount(mine & side_rows) - popcount(theirs & ~side_rows));
    uint64_t centre = column_mask(3), near = column_mask(2) | column_mask(4);
    score += 2 * (popcount(p->cur & centre) - popcount(opp & centre)) + popcount(p->cur & near) -
             popcount(opp & near);
    return score;
}

static int negamax(pos_t p, int depth, int alpha, int beta, int ply) {
    nodes++;
    if (p.moves == W * H) return 0;
    uint64_t possible = (p.mask + BOTTOM) & BOARD;
    if (threats(p.cur, p.mask) & possible) return WIN - ply;
    if (depth == 0) return evaluate(&p);
    tt_entry_t *e = &tt[p.key & ((1u << TT_BITS) - 1)];
    int tt_move = -1, alpha0 = alpha;
    if (e->key == p.key) {
        tt_move = e->move;
        if (e->depth >= depth) {
            if (e->flag == EXACT) return e->score;
            if (e->flag == LOWER && e->score > alpha) alpha = e->score;
            else if (e->flag == UPPER && e->score < beta) beta = e->score;
            if (alpha >= beta) return e->score;
        }
    }
    /* forced: the opponent threatens a playable cell, so only that column can be played */
    uint64_t opp_win = threats(p.cur ^ p.mask, p.mask) & possible;
    int order[W], n = 0;
    long key[W];
    for (int c = 0; c < W; c++) {
        if (!(possible & column_mask(c))) continue;
        if (opp_win && !(opp_win & column_mask(c))) continue;
        long k = c == tt_move ? 1L << 40 : history[c] * 8 + (3 - abs(3 - c));
        int j = n++;
        while (j > 0 && key[j - 1] < k) { key[j] = key[j - 1]; order[j] = order[j - 1]; j--; }
        key[j] = k;
        order[j] = c;
    }
    int best = -WIN - 1, best_move = order[0];
    for (int i = 0; i < n; i++) {
        int s = -negamax(play(p, order[i]), depth - 1, -beta, -alpha, ply + 1);
        if (s > best) { best = s; best_move = order[i]; }
        if (s > alpha) alpha = s;
        if (alpha >= beta) { history[order[i]] += depth * depth; break; }
    }
    e->key = p.key;
    e->score = (int16_t)best;
    e->depth = (int8_t)depth;
    e->move = (int8_t)best_move;
    e->flag = best <= alpha0 ? UPPER : best >= beta ? LOWER : EXACT;
    return best;
}

int main(int argc, char **argv) {
    long npos = argc > 1 ? atol(argv[1]) : 10;
    for (int s = 0; s < 2; s++)
        for (int b = 0; b < W * H1; b++) zobrist[s][b] = next_rand();
    tt = calloc((size_t)1 << TT_BITS, sizeof(tt_entry_t));
    uint64_t sum = 0;
    for (long n = 0; n < npos; n++) {
        pos_t p = {0, 0, 0, 0};
        int plies = 4 + (int)(next_rand() % 10);
        for (int i = 0; i < plies; i++) {     /* random opening that does not end the game */
            uint64_t possible = (p.mask + BOTTOM) & BOARD;
            int c = (int)(next_rand() % W);
            if (!(possible & column_mask(c)) || (threats(p.cur, p.mask) & possible)) continue;
            p = play(p, c);
        }
        memset(history, 0, sizeof history);
        int score = 0, move = -1;
        for (int d = 1; d <= DEPTH; d++) {      /* iterative deepening; the table keeps the best move */
            score = negamax(p, d, -WIN - 1, WIN + 1, 0);
            tt_entry_t *e = &tt[p.key & ((1u << TT_BITS) - 1)];
            move = e->key == p.key ? e->move : -1;
            if (score >= WIN - 64 || score <= -WIN + 64) break;
        }
        sum = sum * 1000003 + (uint64_t)(score + WIN) * 8 + (uint64_t)(move + 1);
    }
    printf("sjeng checksum %lu\n", (unsigned long)(sum ^ nodes << 32 ^ nodes));
    free(tt);
    return 0;
}
