/* mcf: minimum-cost flow for vehicle scheduling by the primal network simplex method, modelled on
   429.mcf. Each instance is a generated timetable of trips served from a few depots: the end of
   trip i supplies one vehicle, the start of trip j demands one, and a vehicle either dead-heads
   from one trip to a later compatible one or pulls in to a depot and out again (each depot has a
   fleet arc of limited capacity, an uncapacitated rental arc beside it and a transfer arc to the
   next depot). The basis is a spanning tree rooted at an artificial node (one big-M artificial arc
   per node to start), kept as parent / first-child / sibling links with depths and node
   potentials in pointer-linked node and arc records; the entering arc comes from a candidate
   list refilled by scanning blocks of arcs (multiple partial pricing), the leaving arc from the
   ratio test round the cycle with Cunningham's strongly-feasible-tree rule (no cycling), and the
   subtree cut off by the leaving arc is re-rooted and hung under the entering arc. At the end
   the flow is checked for conservation and bounds, and its optimality by a certificate: node
   potentials recomputed from the final basis, reduced costs of the right sign on every arc and
   primal cost equal to the dual objective. Usage: mcf [instances [trips]] (default 1 2000).
   Built with -DMCF_CHECK it also solves every instance by successive shortest paths and
   compares the costs. */
// bench-group: INT
// bench-quick: 1 100
// bench-ref: 1 25000
// bench-doc: min-cost flow by the primal network simplex (spanning-tree basis, block candidate-list pricing) for generated vehicle schedules (like 429.mcf)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { BASIC, AT_LOWER, AT_UPPER };

typedef struct arc arc_t;
typedef struct node node_t;

struct node {
    int64_t potential;             /* reduced cost of tail->head: cost + pot(tail) - pot(head) */
    node_t *parent, *child, *sibling, *sibling_prev;
    arc_t *basic_arc;              /* the tree arc between this node and its parent */
    int64_t supply;                /* > 0: flow leaves here */
    int depth, id;
};

struct arc {
    node_t *tail, *head;
    int64_t cost, cap, flow;
    int ident;
};

#define INF_CAP ((int64_t)1 << 40)
#define CAND_MAX 48                /* candidate list length */
#define CAND_REFILL 16             /* scan more blocks while fewer candidates than this remain */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next_rand(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static int rand_below(int n) { return (int)(next_rand() % (uint64_t)n); }

/* ---- the instance ------------------------------------------------------------------------ */
static node_t *nodes, *root;       /* nnodes real nodes, then the artificial root */
static arc_t *arcs;                /* narcs real arcs, then one artificial arc per real node */
static int nnodes, narcs, ntotal;

static void add_arc(int from, int to, int64_t cap, int64_t cost) {
    arc_t *a = &arcs[narcs++];
    a->tail = &nodes[from];
    a->head = &nodes[to];
    a->cap = cap;
    a->cost = cost;
    a->flow = 0;
    a->ident = AT_LOWER;
}

typedef struct { int start, end, from, to; } trip_t;

static void generate(int ntrips) {
    int nstations = 10 + rand_below(40), ndepots = 2 + rand_below(3);
    trip_t *trips = malloc(sizeof(trip_t) * (size_t)ntrips);
    int *depot_dist = malloc(sizeof(int) * (size_t)(nstations * ndepots));
    for (int k = 0; k < nstations * ndepots; k++) depot_dist[k] = 4 + rand_below(45);
    int t0 = 0;
    for (int i = 0; i < ntrips; i++) {
        t0 += rand_below(6);
        trips[i].start = t0;
        trips[i].end = t0 + 20 + rand_below(100);
        trips[i].from = rand_below(nstations);
        trips[i].to = rand_below(nstations);
    }
    /* nodes: trip ends 0..n-1 (supply 1), trip starts n..2n-1 (supply -1), then per depot d an
       "in" node 2n+2d and an "out" node 2n+2d+1 */
    nnodes = 2 * ntrips + 2 * ndepots;
    int maxarcs = ntrips * (18 + 2 * ndepots) + 3 * ndepots;
    nodes = calloc((size_t)nnodes + 1, sizeof(node_t));
    arcs = calloc((size_t)(maxarcs + nnodes), sizeof(arc_t));
    root = &nodes[nnodes];
    narcs = 0;
    for (int i = 0; i < nnodes + 1; i++) nodes[i].id = i;
    for (int i = 0; i < ntrips; i++) {
        nodes[i].supply = 1;
        nodes[ntrips + i].supply = -1;
    }
    for (int i = 0; i < ntrips; i++) {
        int found = 0;
        for (int j = i + 1; j < ntrips && j < i + 400 && found < 18; j++) {
            int d = trips[i].to - trips[j].from;
            int deadhead = trips[i].to == trips[j].from ? 0 : 5 + (d * d) % 37;
            int wait = trips[j].start - trips[i].end - deadhead;
            if (wait < 0) continue;
            add_arc(i, ntrips + j, 1, 3 * deadhead + wait);
            found++;
        }
        for (int d = 0; d < ndepots; d++) {
            int base = 2 * ntrips + 2 * d;
            add_arc(i, base, 1, 2 * depot_dist[trips[i].to * ndepots + d]);                  /* pull in */
            add_arc(base + 1, ntrips + i, 1, 1000 + 2 * depot_dist[trips[i].from * ndepots + d]); /* pull out */
        }
    }
    for (int d = 0; d < ndepots; d++) {
        int base = 2 * ntrips + 2 * d, next = 2 * ntrips + 2 * ((d + 1) % ndepots);
        add_arc(base, base + 1, ntrips / (10 * ndepots) + 1 + rand_below(8), 0); /* own fleet */
        add_arc(base, base + 1, INF_CAP, 250 + rand_below(100));                /* rented vehicles */
        add_arc(base, next + 1, INF_CAP, 60 + rand_below(60));                  /* transfer */
    }
    free(trips);
    free(depot_dist);
}

/* ---- the tree ------------------------------------------------------------------------------ */
static void cut(node_t *n) {
    if (n->sibling_prev) n->sibling_prev->sibling = n->sibling;
    else n->parent->child = n->sibling;
    if (n->sibling) n->sibling->sibling_prev = n->sibling_prev;
}

static void hang(node_t *n, node_t *p, arc_t *a) {
    n->parent = p;
    n->basic_arc = a;
    n->sibling_prev = NULL;
    n->sibling = p->child;
    if (p->child) p->child->sibling_prev = n;
    p->child = n;
}

/* The initial basis: every real node hangs from the root by its artificial arc, directed so that
   it carries the node's supply (node -> root when supply >= 0); that tree is strongly feasible:
   every node can send a positive flow to the root along its tree path. */
static void initial_basis(void) {
    int64_t maxcost = 0;
    for (int i = 0; i < narcs; i++)
        if (arcs[i].cost > maxcost) maxcost = arcs[i].cost;
    int64_t big_m = (maxcost + 1) * (nnodes + 1);
    root->potential = 0;
    root->depth = 0;
    for (int i = 0; i < nnodes; i++) {
        node_t *n = &nodes[i];
        arc_t *a = &arcs[narcs + i];
        a->cost = big_m;
        a->cap = INF_CAP;
        a->ident = BASIC;
        if (n->supply >= 0) {
            a->tail = n, a->head = root, a->flow = n->supply;
            n->potential = -big_m;
        } else {
            a->tail = root, a->head = n, a->flow = -n->supply;
            n->potential = big_m;
        }
        n->depth = 1;
        hang(n, root, a);
    }
    ntotal = narcs + nnodes;
}

/* ---- pricing: a candidate list refilled from blocks of arcs -------------------------------- */
static arc_t *cand[CAND_MAX];
static int ncand, block_size, scan_pos;

static inline int64_t violation(const arc_t *a) {   /* > 0: the arc may enter */
    if (a->ident == BASIC) return 0;
    int64_t rc = a->cost + a->tail->potential - a->head->potential;
    return a->ident == AT_LOWER ? -rc : rc;
}

static arc_t *select_entering(void) {
    int k = 0;
    for (int i = 0; i < ncand; i++)
        if (violation(cand[i]) > 0) cand[k++] = cand[i];
    ncand = k;
    for (int scanned = 0; ncand < CAND_REFILL && scanned < ntotal; scanned += block_size) {
        int end = scan_pos + block_size, wrap = 0;
        if (end > ntotal) wrap = end - ntotal, end = ntotal;
        for (int i = scan_pos; i < end && ncand < CAND_MAX; i++)
            if (violation(&arcs[i]) > 0) cand[ncand++] = &arcs[i];
        for (int i = 0; i < wrap && ncand < CAND_MAX; i++)
            if (violation(&arcs[i]) > 0) cand[ncand++] = &arcs[i];
        scan_pos = wrap ? wrap : end;
    }
    if (ncand == 0) return NULL;
    int best = 0;
    int64_t best_v = violation(cand[0]);
    for (int i = 1; i < ncand; i++) {
        int64_t v = violation(cand[i]);
        if (v > best_v) best_v = v, best = i;
    }
    arc_t *e = cand[best];
    cand[best] = cand[--ncand];
    return e;
}

/* ---- one pivot ------------------------------------------------------------------------------ */
/* Residual capacity of n's tree arc for flow moving up (n -> parent) or down (parent -> n). */
static inline int64_t res_up(const node_t *n) {
    const arc_t *a = n->basic_arc;
    return a->tail == n ? a->cap - a->flow : a->flow;
}
static inline int64_t res_down(const node_t *n) {
    const arc_t *a = n->basic_arc;
    return a->tail == n ? a->flow : a->cap - a->flow;
}

static void pivot(arc_t *e) {
    int64_t rc = e->cost + e->tail->potential - e->head->potential;
    /* the flow goes round apex -> ... -> down (along the tree), over e, up -> ... -> apex */
    node_t *up, *down;
    if (e->ident == AT_LOWER) up = e->head, down = e->tail;
    else up = e->tail, down = e->head;
    node_t *a = up, *b = down;
    while (a != b) {
        if (a->depth > b->depth) a = a->parent;
        else if (b->depth > a->depth) b = b->parent;
        else a = a->parent, b = b->parent;
    }
    node_t *apex = a;
    /* ratio test; among ties the last blocking arc met going round from the apex leaves */
    int64_t delta = INF_CAP + 1;
    node_t *leave = NULL;
    int leave_up = 0;
    for (node_t *n = down; n != apex; n = n->parent) {
        int64_t r = res_down(n);
        if (r < delta) delta = r, leave = n;
    }
    if (e->cap <= delta) delta = e->cap, leave = NULL;
    for (node_t *n = up; n != apex; n = n->parent) {
        int64_t r = res_up(n);
        if (r <= delta) delta = r, leave = n, leave_up = 1;
    }
    if (delta >= INF_CAP) {
        fprintf(stderr, "mcf: unbounded pivot\n");
        exit(1);
    }
    if (delta > 0) {
        e->flow += e->ident == AT_LOWER ? delta : -delta;
        for (node_t *n = down; n != apex; n = n->parent)
            n->basic_arc->flow += n->basic_arc->tail == n ? -delta : delta;
        for (node_t *n = up; n != apex; n = n->parent)
            n->basic_arc->flow += n->basic_arc->tail == n ? delta : -delta;
    }
    if (!leave) {                          /* e goes from one bound to the other */
        e->ident = e->ident == AT_LOWER ? AT_UPPER : AT_LOWER;
        return;
    }
    arc_t *out = leave->basic_arc;
    out->ident = out->flow == 0 ? AT_LOWER : AT_UPPER;
    e->ident = BASIC;
    /* the subtree below the leaving arc holds x, one end of e; re-root it at x, hang x from y */
    node_t *x = leave_up ? up : down, *y = leave_up ? down : up;
    int64_t shift = x == e->head ? rc : -rc;
    node_t *new_parent = y, *cur = x;
    arc_t *new_arc = e;
    for (;;) {
        node_t *old_parent = cur->parent;
        arc_t *old_arc = cur->basic_arc;
        cut(cur);
        hang(cur, new_parent, new_arc);
        if (cur == leave) break;
        new_parent = cur, new_arc = old_arc, cur = old_parent;
    }
    /* new depths and potentials over the moved subtree, in preorder */
    node_t *n = x;
    for (;;) {
        n->depth = n->parent->depth + 1;
        n->potential += shift;
        if (n->child) {
            n = n->child;
            continue;
        }
        while (n != x && !n->sibling) n = n->parent;
        if (n == x) break;
        n = n->sibling;
    }
}

/* ---- the certificate ------------------------------------------------------------------------ */
/* Returns the number of violated conditions (0: the flow is feasible and optimal). */
static long verify(int64_t *cost_out) {
    long bad = 0;
    int nall = nnodes + 1;
    int64_t *balance = calloc((size_t)nall, sizeof(int64_t)), *pot = calloc((size_t)nall, sizeof(int64_t));
    int *deg = calloc((size_t)nall + 1, sizeof(int)), *adj = malloc(sizeof(int) * 2 * (size_t)nall);
    int *queue = malloc(sizeof(int) * (size_t)nall);
    char *seen = calloc((size_t)nall, 1);
    int64_t cost = 0;
    int nbasic = 0;
    for (int i = 0; i < ntotal; i++) {
        arc_t *a = &arcs[i];
        if (a->flow < 0 || a->flow > a->cap) bad++;
        if (a->ident == AT_LOWER && a->flow != 0) bad++;
        if (a->ident == AT_UPPER && a->flow != a->cap) bad++;
        if (i >= narcs && a->flow != 0) bad++;          /* an artificial arc still used */
        balance[a->tail->id] += a->flow;
        balance[a->head->id] -= a->flow;
        cost += a->cost * a->flow;
        if (a->ident == BASIC) {
            nbasic++;
            deg[a->tail->id]++;
            deg[a->head->id]++;
        }
    }
    for (int i = 0; i < nall; i++)
        if (balance[i] != nodes[i].supply) bad++;
    if (nbasic != nnodes) bad++;
    /* potentials from the basic arcs alone: breadth-first from the root, reduced cost 0 */
    for (int i = 1; i <= nall; i++) deg[i] += deg[i - 1];
    for (int i = 0; i < ntotal && nbasic == nnodes; i++) {
        arc_t *a = &arcs[i];
        if (a->ident != BASIC) continue;
        adj[--deg[a->tail->id]] = i;
        adj[--deg[a->head->id]] = i;
    }
    int qh = 0, qt = 0;
    queue[qt++] = root->id;
    seen[root->id] = 1;
    pot[root->id] = 0;
    while (qh < qt && nbasic == nnodes) {
        int u = queue[qh++];
        for (int k = deg[u]; k < deg[u + 1]; k++) {
            arc_t *a = &arcs[adj[k]];
            int t = a->tail->id, h = a->head->id;
            if (t == u && !seen[h]) seen[h] = 1, pot[h] = pot[u] + a->cost, queue[qt++] = h;
            else if (h == u && !seen[t]) seen[t] = 1, pot[t] = pot[u] - a->cost, queue[qt++] = t;
        }
    }
    if (qt != nall) bad++;                              /* the basis is not a spanning tree */
    for (int i = 0; i < nall && qt == nall; i++)
        if (pot[i] != nodes[i].potential) bad++;        /* the maintained potentials drifted */
    /* reduced costs: 0 on the tree, >= 0 at the lower bound, <= 0 at the upper bound; and
       complementary slackness gives cost = sum over upper-bound arcs of rc*cap - sum pot*supply */
    int64_t dual = 0;
    for (int i = 0; i < ntotal && qt == nall; i++) {
        arc_t *a = &arcs[i];
        int64_t rc = a->cost + pot[a->tail->id] - pot[a->head->id];
        if ((a->ident == BASIC && rc != 0) || (a->ident == AT_LOWER && rc < 0) || (a->ident == AT_UPPER && rc > 0)) bad++;
        if (a->ident == AT_UPPER) dual += rc * a->cap;
    }
    for (int i = 0; i < nall; i++) dual -= pot[i] * nodes[i].supply;
    if (qt != nall || dual != cost) bad++;
    free(balance), free(pot), free(deg), free(adj), free(queue), free(seen);
    *cost_out = cost;
    return bad;
}

#ifdef MCF_CHECK
/* ---- cross-check: successive shortest paths (Dijkstra with potentials) --------------------- */
typedef struct { int head, next; int64_t cap, cost; } rarc_t;
static rarc_t *rarcs;
static int *rfirst, *rpred, *rheap, *rpos, rsize, nr;
static int64_t *rpot, *rdist;

static void radd(int from, int to, int64_t cap, int64_t cost) {
    rarcs[nr] = (rarc_t){to, rfirst[from], cap, cost};
    rfirst[from] = nr++;
    rarcs[nr] = (rarc_t){from, rfirst[to], 0, -cost};
    rfirst[to] = nr++;
}

static void rheap_up(int i) {
    int v = rheap[i];
    while (i > 0 && rdist[rheap[(i - 1) / 2]] > rdist[v]) {
        rheap[i] = rheap[(i - 1) / 2];
        rpos[rheap[i]] = i;
        i = (i - 1) / 2;
    }
    rheap[i] = v;
    rpos[v] = i;
}

static int rheap_pop(void) {
    int top = rheap[0], last = rheap[--rsize], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= rsize) break;
        if (c + 1 < rsize && rdist[rheap[c + 1]] < rdist[rheap[c]]) c++;
        if (rdist[rheap[c]] >= rdist[last]) break;
        rheap[i] = rheap[c];
        rpos[rheap[i]] = i;
        i = c;
    }
    if (rsize > 0) rheap[i] = last, rpos[last] = i;
    rpos[top] = -2;
    return top;
}

static int64_t ssp_cost(void) {
    int n = nnodes + 2, s = nnodes, t = nnodes + 1;
    int64_t need = 0, cost = 0, unreached = (int64_t)1 << 60;
    rarcs = malloc(sizeof(rarc_t) * 2 * (size_t)(narcs + nnodes));
    rfirst = malloc(sizeof(int) * (size_t)n), rpred = malloc(sizeof(int) * (size_t)n);
    rheap = malloc(sizeof(int) * (size_t)n), rpos = malloc(sizeof(int) * (size_t)n);
    rpot = calloc((size_t)n, sizeof(int64_t)), rdist = malloc(sizeof(int64_t) * (size_t)n);
    nr = 0;
    for (int i = 0; i < n; i++) rfirst[i] = -1;
    for (int i = 0; i < narcs; i++) radd(arcs[i].tail->id, arcs[i].head->id, arcs[i].cap, arcs[i].cost);
    for (int i = 0; i < nnodes; i++) {
        if (nodes[i].supply > 0) radd(s, i, nodes[i].supply, 0), need += nodes[i].supply;
        if (nodes[i].supply < 0) radd(i, t, -nodes[i].supply, 0);
    }
    while (need > 0) {
        for (int i = 0; i < n; i++) rpos[i] = -1;
        rsize = 0;
        rdist[s] = 0, rpred[s] = -1, rheap[rsize++] = s, rpos[s] = 0;
        int64_t reached = unreached;
        while (rsize > 0) {
            int u = rheap_pop();
            if (u == t) { reached = rdist[u]; break; }
            for (int k = rfirst[u]; k >= 0; k = rarcs[k].next) {
                if (rarcs[k].cap == 0) continue;
                int v = rarcs[k].head;
                int64_t d = rdist[u] + rarcs[k].cost + rpot[u] - rpot[v];
                if (rpos[v] == -1) {
                    rdist[v] = d, rpred[v] = k, rpos[v] = rsize, rheap[rsize++] = v;
                    rheap_up(rsize - 1);
                } else if (rpos[v] >= 0 && d < rdist[v]) {
                    rdist[v] = d, rpred[v] = k;
                    rheap_up(rpos[v]);
                }
            }
        }
        if (reached == unreached) return -1;
        for (int i = 0; i < n; i++)
            rpot[i] += rpos[i] == -1 ? reached : rdist[i] < reached ? rdist[i] : reached;
        int64_t push = need;
        for (int v = t; v != s; v = rarcs[rpred[v] ^ 1].head)
            if (rarcs[rpred[v]].cap < push) push = rarcs[rpred[v]].cap;
        for (int v = t; v != s; v = rarcs[rpred[v] ^ 1].head) {
            rarcs[rpred[v]].cap -= push;
            rarcs[rpred[v] ^ 1].cap += push;
            cost += push * rarcs[rpred[v]].cost;
        }
        need -= push;
    }
    free(rarcs), free(rfirst), free(rpred), free(rheap), free(rpos), free(rpot), free(rdist);
    return cost;
}
#endif

/* ---- driver ---------------------------------------------------------------------------------- */
int main(int argc, char **argv) {
    long instances = argc > 1 ? atol(argv[1]) : 1;
    int trips = argc > 2 ? atoi(argv[2]) : 2000;
    if (instances < 1 || trips < 2 || trips > 5000000) {
        fprintf(stderr, "usage: mcf [INSTANCES [TRIPS]], 2 <= TRIPS <= 5000000\n");
        return 2;
    }
    uint64_t sum = 0;
    long failed = 0, pivots_total = 0;
    int64_t cost_total = 0;
    for (long k = 0; k < instances; k++) {
        generate(trips);
        initial_basis();
        block_size = ntotal / 64 < 32 ? 32 : ntotal / 64;
        if (block_size > ntotal) block_size = ntotal;
        scan_pos = 0, ncand = 0;
        long pivots = 0;
        for (arc_t *e; (e = select_entering()); pivots++) pivot(e);
        int64_t cost;
        long bad = verify(&cost);
#ifdef MCF_CHECK
        int64_t other = ssp_cost();
        printf("instance %ld: %d nodes, %d arcs, %ld pivots, simplex cost %lld, ssp cost %lld: %s\n", k,
               nnodes, narcs, pivots, (long long)cost, (long long)other, other == cost ? "same" : "DIFFERENT");
        if (other != cost) bad++;
#endif
        if (bad) {
            fprintf(stderr, "mcf: instance %ld fails its certificate (%ld violations)\n", k, bad);
            failed++;
        }
        uint64_t h = ((uint64_t)cost * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)pivots << 20) ^ (uint64_t)bad;
        for (int i = 0; i < narcs; i++)
            if (arcs[i].flow) h = (h ^ (uint64_t)((int64_t)i * 131 + arcs[i].flow)) * 0x100000001B3ULL;
        sum = sum * 31 + h;
        cost_total += cost;
        pivots_total += pivots;
        free(nodes);
        free(arcs);
    }
    sum ^= (uint64_t)failed << 56;
    printf("mcf %s: %ld instances, total cost %lld, %ld pivots\n", failed ? "certificate FAILED" : "optimal",
           instances, (long long)cost_total, pivots_total);
    printf("mcf checksum %llu\n", (unsigned long long)sum);
    return failed ? 1 : 0;
}
