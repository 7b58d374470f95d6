"""Trace merging's policy (hqemu/trace/merge.py): components checked against reachability,
stability over windows, hotness, and the one-region-per-member-set rule."""

from __future__ import annotations

import random

import pytest

from hqemu.trace.merge import MergePolicy, Region, TraceNode, components


def reach(nodes: list[TraceNode]) -> dict[int, set[int]]:
    """Transitive closure by repeated relaxation: the independent oracle for components()."""
    heads: dict[int, set[int]] = {}
    for n in nodes:
        heads.setdefault(n.head_pc, set()).add(n.id)
    r = {n.id: {t for pc in n.exit_targets for t in heads.get(pc, ())} for n in nodes}
    changed = True
    while changed:
        changed = False
        for v in r:
            new = set().union(*(r[w] for w in r[v])) - r[v] if r[v] else set()
            if new:
                r[v] |= new
                changed = True
    return r


@pytest.mark.parametrize("seed", range(40))
def test_components_match_reachability(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 14)
    pcs = [0x400000 + 16 * i for i in range(n)]
    targets = pcs + [0x999999]  # one exit to code no trace covers
    k = min(3, len(targets))
    nodes = [TraceNode(i + 1, pcs[i], frozenset(rng.sample(targets, rng.randint(0, k))), 1) for i in range(n)]
    r = reach(nodes)
    got = components(nodes)
    assert sorted(x for c in got for x in c) == [nd.id for nd in nodes]  # a partition
    for c in got:
        for a in c:
            for b in c:
                assert a == b or (b in r[a] and a in r[b])
    # and maximal: two ids that reach each other are in the same component
    where = {x: i for i, c in enumerate(got) for x in c}
    for a in r:
        for b in r[a]:
            if a in r[b]:
                assert where[a] == where[b]


def loop_pair():
    return [TraceNode(1, 0x1000, frozenset({0x1040, 0x2000}), 2),
            TraceNode(2, 0x1040, frozenset({0x1000}), 1),
            TraceNode(3, 0x2000, frozenset({0x3000}), 4)]


def test_region_needs_stable_windows_and_forms_once():
    p = MergePolicy(min_samples=5, stable_windows=3)
    s = {0x1000: 50, 0x1040: 20, 0x2000: 30}
    assert p.observe(loop_pair(), s) == []
    assert p.observe(loop_pair(), s) == []
    assert p.observe(loop_pair(), s) == [Region(0x1000, (1, 2))]
    assert p.observe(loop_pair(), s) == []  # formed already


def test_hottest_head_is_the_entry():
    p = MergePolicy(min_samples=1, stable_windows=1)
    assert p.observe(loop_pair(), {0x1000: 10, 0x1040: 90}) == [Region(0x1040, (2, 1))]


def test_cold_member_breaks_the_cycle_and_the_streak():
    p = MergePolicy(min_samples=10, stable_windows=2, memory=1)
    assert p.observe(loop_pair(), {0x1000: 50, 0x1040: 20}) == []
    assert p.observe(loop_pair(), {0x1000: 50, 0x1040: 3}) == []  # 0x1040 not hot: no cycle
    assert p.observe(loop_pair(), {0x1000: 50, 0x1040: 20}) == []  # the streak starts again
    assert p.observe(loop_pair(), {0x1000: 50, 0x1040: 20}) == [Region(0x1000, (1, 2))]


def test_a_member_missing_one_window_stays_hot_within_the_memory():
    """~20 samples a window can miss a member of a hot loop: judged on the last windows
    together it stays hot, the component and its streak survive (oracle: memory=1 breaks)."""
    windows = [{0x1000: 12, 0x1040: 8}, {0x1000: 20, 0x1040: 0}, {0x1000: 11, 0x1040: 9}]
    short, long = MergePolicy(stable_windows=3, memory=1), MergePolicy(stable_windows=3, memory=4)
    assert [short.observe(loop_pair(), w) for w in windows] == [[], [], []]
    assert [long.observe(loop_pair(), w) for w in windows] == [[], [], [Region(0x1000, (1, 2))]]


def test_share_floor_and_size_cap():
    p = MergePolicy(min_samples=1, hot_share=0.05, stable_windows=1, memory=1)
    assert p.observe(loop_pair(), {0x1000: 1000, 0x1040: 40}) == []  # 40 < 5% of 1040
    big = MergePolicy(min_samples=1, stable_windows=1, max_blocks=2)
    assert big.observe(loop_pair(), {0x1000: 10, 0x1040: 10}) == []
    p.forget()
    assert p.observe(loop_pair(), {0x1000: 100, 0x1040: 90}) == [Region(0x1000, (1, 2))]


def test_sampled_indirect_edges_join_the_graph():
    """A loop calling through a pointer: its trace reaches the callee's only by an indirect
    jump, which no static exit shows. The merger adds the sampled edge for good (oracle: the
    same nodes without it form no region)."""
    from hqemu.runtime.merger import Merger

    class Blk:
        def __init__(self, pc):
            self.pc = pc

    m = Merger(MergePolicy())
    m.add(1, 0x1000, [Blk(0x1000)], frozenset())  # calls through a pointer: exit_ind only
    m.add(2, 0x2000, [Blk(0x2000), Blk(0x1010)], frozenset({0x1000}))  # the callee returns, loops
    samples = {0x1000: 50, 0x2000: 40}
    assert m.window(samples) == [] and m.window(samples) == []  # no cycle without the edge
    assert m.window(samples, {(0x1000, 0x2000): 2}) == []  # the first window with the cycle
    jobs = m.window(samples)  # the edge stays: the component is stable for a second window
    assert [j.region for j in jobs] == [Region(0x1000, (1, 2))]
    assert [b.pc for b in jobs[0].blocks] == [0x1000, 0x2000, 0x1010]
