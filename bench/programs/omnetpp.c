/* omnetpp: discrete event simulation of a packet network, modelled on 471.omnetpp. Routers on a
   generated topology (a ring with random chords) forward packets along shortest-path routing
   tables; every link has a bounded FIFO queue, a bandwidth and a propagation delay; sources send
   in bursts. Timed events live in a pairing heap ordered by (time, sequence); events, packets and
   their payloads are allocated with malloc and freed when consumed. The checksum folds the
   delivery statistics. Usage: omnetpp [thousands of events] (default 100). */
// bench-group: INT
// bench-quick: 3
// bench-ref: 30000
// bench-doc: discrete event simulation of a queueing network with a pairing-heap event list and malloc'd messages (like 471.omnetpp)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES 48
#define MAXDEG 8
#define QUEUE_LIMIT 24

typedef struct msg {
    int src, dst, size, hops;
    uint64_t created, digest;
    uint32_t *payload;
    struct msg *next;
} msg_t;

enum { EV_GENERATE, EV_ARRIVE, EV_TX_DONE };

typedef struct event {
    uint64_t time, seq;
    int type, node, link;
    msg_t *msg;
    struct event *child, *sibling;
} event_t;

typedef struct {
    int to, delay, ticks_per_unit;
    int busy, qlen, max_qlen;
    msg_t *head, *tail;
    long sent, dropped;
} link_t;

typedef struct {
    link_t link[MAXDEG];
    int degree, burst_left;
    int route[NODES];        /* outgoing link index towards each destination */
    long received, forwarded;
} node_t;

static node_t net[NODES];
static event_t *queue_root;
static uint64_t now, next_seq;

static uint64_t rng = 0x243F6A8885A308D3ULL;

static uint32_t next_rand(void) {
    rng ^= rng << 7;
    rng ^= rng >> 9;
    return (uint32_t)(rng >> 16);
}

/* --- pairing heap --- */
static int before(const event_t *a, const event_t *b) {
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static event_t *meld(event_t *a, event_t *b) {
    if (!a) return b;
    if (!b) return a;
    if (before(b, a)) { event_t *t = a; a = b; b = t; }
    b->sibling = a->child;
    a->child = b;
    return a;
}

static void schedule(uint64_t t, int type, int node, int link, msg_t *m) {
    event_t *e = malloc(sizeof *e);
    e->time = t;
    e->seq = next_seq++;
    e->type = type;
    e->node = node;
    e->link = link;
    e->msg = m;
    e->child = e->sibling = NULL;
    queue_root = meld(queue_root, e);
}

static event_t *pop_event(void) {
    event_t *top = queue_root, *pairs = NULL, *c = top->child;
    while (c) {                 /* first pass: meld children pairwise, left to right */
        event_t *a = c, *b = c->sibling;
        c = b ? b->sibling : NULL;
        a->sibling = NULL;
        if (b) b->sibling = NULL;
        event_t *m = meld(a, b);
        m->sibling = pairs;
        pairs = m;
    }
    event_t *root = NULL;
    while (pairs) {             /* second pass: meld the pairs right to left */
        event_t *n = pairs->sibling;
        pairs->sibling = NULL;
        root = meld(root, pairs);
        pairs = n;
    }
    queue_root = root;
    return top;
}

/* --- topology and routing --- */
static void add_link(int a, int b) {
    if (net[a].degree >= MAXDEG || net[b].degree >= MAXDEG || a == b) return;
    for (int i = 0; i < net[a].degree; i++)
        if (net[a].link[i].to == b) return;
    int delay = 5 + (int)(next_rand() % 40), speed = 1 + (int)(next_rand() % 4);
    net[a].link[net[a].degree++] = (link_t){.to = b, .delay = delay, .ticks_per_unit = speed};
    net[b].link[net[b].degree++] = (link_t){.to = a, .delay = delay, .ticks_per_unit = speed};
}

static void build_network(void) {
    for (int i = 0; i < NODES; i++) add_link(i, (i + 1) % NODES);
    for (int k = 0; k < NODES; k++) {
        int a = (int)(next_rand() % NODES), b = (int)(next_rand() % NODES);  /* declarators are sequenced, call arguments not */
        add_link(a, b);
    }
    for (int dst = 0; dst < NODES; dst++) {   /* BFS from each destination over the reverse links */
        int dist[NODES], q[NODES], qh = 0, qt = 0;
        for (int i = 0; i < NODES; i++) dist[i] = -1;
        dist[dst] = 0;
        q[qt++] = dst;
        net[dst].route[dst] = -1;
        while (qh < qt) {
            int u = q[qh++];
            for (int l = 0; l < net[u].degree; l++) {
                int v = net[u].link[l].to;
                if (dist[v] >= 0) continue;
                dist[v] = dist[u] + 1;
                for (int k = 0; k < net[v].degree; k++)
                    if (net[v].link[k].to == u) net[v].route[dst] = k;
                q[qt++] = v;
            }
        }
    }
}

/* --- the model --- */
static long delivered, dropped, generated, hop_sum, payload_bad;
static uint64_t latency_sum, latency_max;

static void start_tx(int node, int l) {
    link_t *lk = &net[node].link[l];
    msg_t *m = lk->head;
    lk->head = m->next;
    if (!lk->head) lk->tail = NULL;
    lk->qlen--;
    lk->busy = 1;
    lk->sent++;
    uint64_t done = now + (uint64_t)(m->size * lk->ticks_per_unit);
    schedule(done, EV_TX_DONE, node, l, NULL);
    schedule(done + (uint64_t)lk->delay, EV_ARRIVE, lk->to, -1, m);
}

static void enqueue(int node, msg_t *m) {
    link_t *lk = &net[node].link[net[node].route[m->dst]];
    if (lk->qlen >= QUEUE_LIMIT) {
        dropped++;
        lk->dropped++;
        free(m->payload);
        free(m);
        return;
    }
    m->next = NULL;
    if (lk->tail) lk->tail->next = m;
    else lk->head = m;
    lk->tail = m;
    if (++lk->qlen > lk->max_qlen) lk->max_qlen = lk->qlen;
    if (!lk->busy) start_tx(node, (int)(lk - net[node].link));
}

static void handle(event_t *e) {
    node_t *n = &net[e->node];
    switch (e->type) {
    case EV_GENERATE: {
        msg_t *m = malloc(sizeof *m);
        m->src = e->node;
        do m->dst = (int)(next_rand() % NODES); while (m->dst == e->node);
        m->size = 4 + (int)(next_rand() % 60);
        m->hops = 0;
        m->created = now;
        m->payload = malloc(sizeof(uint32_t) * (size_t)m->size);
        m->digest = 0;
        for (int i = 0; i < m->size; i++) {
            m->payload[i] = next_rand();
            m->digest = m->digest * 31 + m->payload[i];
        }
        generated++;
        enqueue(e->node, m);
        /* bursts of back-to-back packets separated by idle gaps */
        uint64_t gap = n->burst_left > 0 ? 2 + next_rand() % 30 : 100 + next_rand() % 1200;
        if (n->burst_left-- <= 0) n->burst_left = (int)(next_rand() % 12);
        schedule(now + gap, EV_GENERATE, e->node, -1, NULL);
        break;
    }
    case EV_ARRIVE: {
        msg_t *m = e->msg;
        m->hops++;
        n->received++;
        if (m->dst == e->node) {
            uint64_t d = 0, lat = now - m->created;
            for (int i = 0; i < m->size; i++) d = d * 31 + m->payload[i];
            if (d != m->digest) payload_bad++;
            delivered++;
            hop_sum += m->hops;
            latency_sum += lat;
            if (lat > latency_max) latency_max = lat;
            free(m->payload);
            free(m);
        } else {
            n->forwarded++;
            enqueue(e->node, m);
        }
        break;
    }
    case EV_TX_DONE: {
        link_t *lk = &n->link[e->link];
        lk->busy = 0;
        if (lk->head) start_tx(e->node, e->link);
        break;
    }
    }
}

int main(int argc, char **argv) {
    long events = (argc > 1 ? atol(argv[1]) : 100) * 1000;
    build_network();
    for (int i = 0; i < NODES; i++) schedule(next_rand() % 1000, EV_GENERATE, i, -1, NULL);
    for (long k = 0; k < events; k++) {
        event_t *e = pop_event();
        now = e->time;
        handle(e);
        free(e);
    }
    uint64_t sum = (uint64_t)delivered * 1000003 + (uint64_t)dropped;
    sum = sum * 1000003 + latency_sum;
    sum = sum * 1000003 + latency_max + (uint64_t)hop_sum + ((uint64_t)payload_bad << 50);
    for (int i = 0; i < NODES; i++) {
        sum = sum * 31 + (uint64_t)net[i].received * 7 + (uint64_t)net[i].forwarded;
        for (int l = 0; l < net[i].degree; l++)
            sum = sum * 31 + (uint64_t)net[i].link[l].sent + (uint64_t)net[i].link[l].max_qlen * 131 +
                  (uint64_t)net[i].link[l].dropped;
    }
    while (queue_root) {         /* drain the rest so every allocation is released */
        event_t *e = pop_event();
        if (e->msg) { free(e->msg->payload); free(e->msg); }
        free(e);
    }
    for (int i = 0; i < NODES; i++)
        for (int l = 0; l < net[i].degree; l++)
            for (msg_t *m = net[i].link[l].head, *nx; m; m = nx) { nx = m->next; free(m->payload); free(m); }
    printf("omnetpp checksum %lu\n", (unsigned long)(sum ^ (uint64_t)generated << 40));
    return 0;
}
