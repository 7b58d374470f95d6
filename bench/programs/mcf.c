/* mcf: minimum-cost flow for vehicle scheduling, modelled on 429.mcf. Each instance is a generated
   timetable of trips; a vehicle leaves the depot, serves compatible trips one after another
   (dead-head arcs between them) and returns. The cheapest cover is a min-cost flow, solved by
   successive shortest paths: Dijkstra with node potentials and a binary heap over a residual graph
   of node and arc records linked by pointers. Usage: mcf [instances] (default 4). */
// bench-group: INT
// bench-quick: 1
// bench-ref: 7000
// bench-doc: min-cost flow (successive shortest paths, Dijkstra with potentials) for generated vehicle schedules (like 429.mcf)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct arc arc_t;
typedef struct node {
    arc_t *first;
    arc_t *pred;           /* arc used to reach this node in the last search */
    long potential, dist;
    int heap_pos, mark;
} node_t;

struct arc {
    node_t *head;
    arc_t *next, *rev;
    long cost;
    int cap, orig_cap;
};

static uint64_t rng = 0x2545F4914F6CDD1DULL;

static uint64_t next_rand(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static node_t *nodes;
static arc_t *arcs;
static int nnodes, narcs;

static void add_arc(int from, int to, int cap, long cost) {
    arc_t *a = &arcs[narcs++], *r = &arcs[narcs++];
    a->head = &nodes[to];
    r->head = &nodes[from];
    a->rev = r;
    r->rev = a;
    a->cost = cost;
    r->cost = -cost;
    a->cap = a->orig_cap = cap;
    r->cap = r->orig_cap = 0;
    a->next = nodes[from].first;
    nodes[from].first = a;
    r->next = nodes[to].first;
    nodes[to].first = r;
}

/* --- binary heap of nodes keyed by dist --- */
static node_t **heap;
static int hsize;

static void heap_up(int i) {
    node_t *n = heap[i];
    while (i > 0 && heap[(i - 1) / 2]->dist > n->dist) {
        heap[i] = heap[(i - 1) / 2];
        heap[i]->heap_pos = i;
        i = (i - 1) / 2;
    }
    heap[i] = n;
    n->heap_pos = i;
}

static node_t *heap_pop(void) {
    node_t *top = heap[0], *last = heap[--hsize];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= hsize) break;
        if (c + 1 < hsize && heap[c + 1]->dist < heap[c]->dist) c++;
        if (heap[c]->dist >= last->dist) break;
        heap[i] = heap[c];
        heap[i]->heap_pos = i;
        i = c;
    }
    if (hsize > 0) { heap[i] = last; last->heap_pos = i; }
    top->heap_pos = -1;
    return top;
}

#define INF (1L << 60)

/* Dijkstra on reduced costs from s; returns 1 if t is reachable. */
static int shortest_path(node_t *s, node_t *t, int stamp) {
    hsize = 0;
    s->dist = 0;
    s->mark = stamp;
    s->pred = NULL;
    heap[hsize++] = s;
    s->heap_pos = 0;
    long reached = INF;
    while (hsize > 0) {
        node_t *u = heap_pop();
        if (u == t) { reached = u->dist; break; }
        for (arc_t *a = u->first; a; a = a->next) {
            if (a->cap == 0) continue;
            node_t *v = a->head;
            long d = u->dist + a->cost + u->potential - v->potential;
            if (v->mark != stamp) {
                v->mark = stamp;
                v->dist = d;
                v->pred = a;
                v->heap_pos = hsize;
                heap[hsize++] = v;
                heap_up(hsize - 1);
            } else if (d < v->dist && v->heap_pos >= 0) {
                v->dist = d;
                v->pred = a;
                heap_up(v->heap_pos);
            }
        }
    }
    if (reached == INF) return 0;
    /* nodes not settled keep their potential shift bounded by the distance to t */
    for (int i = 0; i < nnodes; i++) {
        node_t *n = &nodes[i];
        if (n->mark == stamp) n->potential += n->dist < reached ? n->dist : reached;
        else n->potential += reached;
    }
    return 1;
}

typedef struct { int start, end, from, to; } trip_t;

/* Builds and solves one timetable; returns (cost, flow hash) folded together. */
static uint64_t solve_instance(int ntrips, int nstations, int *stamp) {
    trip_t *trips = malloc(sizeof(trip_t) * (size_t)ntrips);
    int t0 = 0;
    for (int i = 0; i < ntrips; i++) {
        t0 += (int)(next_rand() % 12);
        trips[i].start = t0;
        trips[i].end = t0 + 20 + (int)(next_rand() % 90);
        trips[i].from = (int)(next_rand() % (uint64_t)nstations);
        trips[i].to = (int)(next_rand() % (uint64_t)nstations);
    }
    /* nodes: 0 source, 1 sink, 2 depot out, 3 depot in, then trip ends (out) and trip starts (in) */
    nnodes = 4 + 2 * ntrips;
    int maxarcs = 2 * (ntrips * 24 + 1);
    nodes = calloc((size_t)nnodes, sizeof(node_t));
    arcs = calloc((size_t)maxarcs, sizeof(arc_t));
    heap = malloc(sizeof(node_t *) * (size_t)nnodes);
    narcs = 0;
    for (int i = 0; i < ntrips; i++) {
        int out = 4 + i, in = 4 + ntrips + i;
        add_arc(0, out, 1, 0);
        add_arc(in, 1, 1, 0);
        add_arc(out, 3, 1, 15 + (trips[i].to * 7) % 40);            /* pull in */
        add_arc(2, in, 1, 1000 + (trips[i].from * 11) % 40);        /* new vehicle + pull out */
        int found = 0;
        for (int j = i + 1; j < ntrips && found < 18; j++) {
            int deadhead = 5 + ((trips[i].to - trips[j].from) * (trips[i].to - trips[j].from)) % 37;
            if (trips[i].to == trips[j].from) deadhead = 0;
            int wait = trips[j].start - trips[i].end - deadhead;
            if (wait < 0) continue;
            add_arc(out, 4 + ntrips + j, 1, 3 * deadhead + wait);
            found++;
        }
    }
    add_arc(3, 2, ntrips, 0);
    long cost = 0;
    int flow = 0;
    node_t *s = &nodes[0], *t = &nodes[1];
    for (int i = 0; i < nnodes; i++) nodes[i].potential = 0;
    while (flow < ntrips && shortest_path(s, t, ++*stamp)) {
        int push = ntrips - flow;
        for (node_t *v = t; v != s; v = v->pred->rev->head)
            if (v->pred->cap < push) push = v->pred->cap;
        for (node_t *v = t; v != s; v = v->pred->rev->head) {
            v->pred->cap -= push;
            v->pred->rev->cap += push;
            cost += (long)push * v->pred->cost;
        }
        flow += push;
    }
    /* optimality certificate: no residual arc with a negative reduced cost */
    long bad = 0;
    for (int i = 0; i < narcs; i++)
        if (arcs[i].cap > 0 && arcs[i].cost + arcs[i].rev->head->potential - arcs[i].head->potential < 0) bad++;
    uint64_t h = (uint64_t)cost * 1000003u + (uint64_t)flow + ((uint64_t)bad << 48);
    for (int i = 0; i < narcs; i += 2) {
        int used = arcs[i].orig_cap - arcs[i].cap;
        if (used) h = (h ^ (uint64_t)(i * 31 + used)) * 0x100000001B3ULL;
    }
    free(trips);
    free(nodes);
    free(arcs);
    free(heap);
    return h;
}

int main(int argc, char **argv) {
    long instances = argc > 1 ? atol(argv[1]) : 4;
    uint64_t sum = 0;
    int stamp = 0;
    for (long k = 0; k < instances; k++) {
        int ntrips = 48 + (int)(next_rand() % 32), nstations = 8 + (int)(next_rand() % 24);
        sum = sum * 31 + solve_instance(ntrips, nstations, &stamp);
    }
    printf("mcf checksum %lu\n", (unsigned long)sum);
    return 0;
}
