/* astar: grid path-finding, modelled on 473.astar. Generated maps (random obstacles grown into
   blobs, walls with gaps) are searched by A* with 8-way moves (cost 10 straight, 14 diagonal),
   an octile heuristic and a binary-heap open list with decrease-key; per-query state is reset by
   generation stamps instead of clearing the grid. Each query's path is walked back to check it.
   Usage: astar [queries] (default 100). */
// bench-group: INT
// bench-quick: 4
// bench-ref: 30000
// bench-doc: A* path-finding with a binary-heap open list on generated grid maps, many queries (like 473.astar)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MW 256
#define MH 256
#define QUERIES_PER_MAP 200

static uint8_t grid[MH][MW];     /* 1: blocked */
static int g_cost[MH * MW], parent[MH * MW], heap_pos[MH * MW];
static unsigned stamp[MH * MW], closed_stamp[MH * MW], generation;
static int heap[MH * MW], heap_f[MH * MW], hsize;

static uint64_t rng = 0xA0761D6478BD642FULL;

static uint32_t next_rand(void) {
    rng = rng * 0x5851F42D4C957F2DULL + 0x14057B7EF767814FULL;
    return (uint32_t)(rng >> 32);
}

static void make_map(void) {
    memset(grid, 0, sizeof grid);
    for (int k = 0; k < MW * MH / 120; k++) {         /* blobs */
        int x = (int)(next_rand() % MW), y = (int)(next_rand() % MH), r = 1 + (int)(next_rand() % 4);
        for (int dy = -r; dy <= r; dy++)
            for (int dx = -r; dx <= r; dx++)
                if (dx * dx + dy * dy <= r * r && x + dx >= 0 && x + dx < MW && y + dy >= 0 && y + dy < MH)
                    grid[y + dy][x + dx] = 1;
    }
    for (int k = 0; k < 8; k++) {                    /* long walls with a few gaps */
        int horiz = (int)(next_rand() & 1), at = (int)(next_rand() % (horiz ? MH : MW));
        for (int t = 0; t < (horiz ? MW : MH); t++) {
            if (next_rand() % 9 == 0) { t += 3; continue; }
            if (horiz) grid[at][t] = 1;
            else grid[t][at] = 1;
        }
    }
}

static int heuristic(int a, int b) {
    int dx = abs(a % MW - b % MW), dy = abs(a / MW - b / MW);
    return dx < dy ? 14 * dx + 10 * (dy - dx) : 14 * dy + 10 * (dx - dy);
}

static void sift_up(int i) {
    int n = heap[i], f = heap_f[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (heap_f[p] <= f) break;
        heap[i] = heap[p];
        heap_f[i] = heap_f[p];
        heap_pos[heap[i]] = i;
        i = p;
    }
    heap[i] = n;
    heap_f[i] = f;
    heap_pos[n] = i;
}

static int pop_min(void) {
    int top = heap[0], n = heap[--hsize], f = heap_f[hsize], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= hsize) break;
        if (c + 1 < hsize && heap_f[c + 1] < heap_f[c]) c++;
        if (heap_f[c] >= f) break;
        heap[i] = heap[c];
        heap_f[i] = heap_f[c];
        heap_pos[heap[i]] = i;
        i = c;
    }
    if (hsize > 0) { heap[i] = n; heap_f[i] = f; heap_pos[n] = i; }
    return top;
}

/* Returns the path cost or -1; *expanded counts closed nodes. */
static int astar(int start, int goal, long *expanded) {
    static const int dx[8] = {1, -1, 0, 0, 1, 1, -1, -1}, dy[8] = {0, 0, 1, -1, 1, -1, 1, -1};
    generation++;
    hsize = 0;
    g_cost[start] = 0;
    parent[start] = -1;
    stamp[start] = generation;
    heap[0] = start;
    heap_f[0] = heuristic(start, goal);
    heap_pos[start] = 0;
    hsize = 1;
    while (hsize > 0) {
        int u = pop_min();
        if (u == goal) return g_cost[u];
        closed_stamp[u] = generation;
        (*expanded)++;
        int ux = u % MW, uy = u / MW;
        for (int d = 0; d < 8; d++) {
            int vx = ux + dx[d], vy = uy + dy[d];
            if (vx < 0 || vx >= MW || vy < 0 || vy >= MH || grid[vy][vx]) continue;
            if (d >= 4 && (grid[uy][vx] || grid[vy][ux])) continue;     /* no corner cutting */
            int v = vy * MW + vx, g = g_cost[u] + (d < 4 ? 10 : 14);
            if (closed_stamp[v] == generation) continue;
            if (stamp[v] != generation) {
                stamp[v] = generation;
                g_cost[v] = g;
                parent[v] = u;
                heap[hsize] = v;
                heap_f[hsize] = g + heuristic(v, goal);
                sift_up(hsize++);
            } else if (g < g_cost[v]) {
                g_cost[v] = g;
                parent[v] = u;
                heap_f[heap_pos[v]] = g + heuristic(v, goal);
                sift_up(heap_pos[v]);
            }
        }
    }
    return -1;
}

static int free_cell_near(int x, int y) {
    for (int r = 0; r < MW; r++)
        for (int t = 0; t < 8 * r + 1; t++) {
            int cx = (x + (int)(next_rand() % (uint32_t)(2 * r + 1)) - r + MW) % MW;
            int cy = (y + (int)(next_rand() % (uint32_t)(2 * r + 1)) - r + MH) % MH;
            if (!grid[cy][cx]) return cy * MW + cx;
        }
    return 0;
}

int main(int argc, char **argv) {
    long queries = argc > 1 ? atol(argv[1]) : 100;
    uint64_t sum = 0;
    long expanded = 0, unreachable = 0, steps = 0;
    for (long q = 0; q < queries; q++) {
        if (q % QUERIES_PER_MAP == 0) make_map();
        int sx = (int)(next_rand() % MW), sy = (int)(next_rand() % MH);
        int range = 20 + (int)(next_rand() % 40);
        int start = free_cell_near(sx, sy);
        int gx = (start % MW + (int)(next_rand() % (uint32_t)(2 * range)) - range + MW) % MW;
        int gy = (start / MW + (int)(next_rand() % (uint32_t)(2 * range)) - range + MH) % MH;
        int goal = free_cell_near(gx, gy);
        int cost = astar(start, goal, &expanded);
        if (cost < 0) { unreachable++; continue; }
        int check = 0;                               /* walk the path back and re-add its cost */
        for (int v = goal; parent[v] >= 0 && v != start; v = parent[v], steps++)
            check += (v % MW != parent[v] % MW && v / MW != parent[v] / MW) ? 14 : 10;
        sum = sum * 1000003 + (uint64_t)cost + ((uint64_t)(check != cost) << 40);
    }
    printf("astar checksum %lu\n", (unsigned long)(sum ^ (uint64_t)expanded << 20 ^ (uint64_t)unreachable << 50 ^ (uint64_t)steps));
    return 0;
}
