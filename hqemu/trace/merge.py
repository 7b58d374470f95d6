"""Trace merging (HQEMU, CGO 2012, section 4): hot traces that jump among themselves become one
region with a real control-flow graph, compiled again as a new version of the entry trace.

    >>> policy = MergePolicy(min_samples=8, stable_windows=2)     # defaults: 1 sample, 0.5%, 2 windows
    >>> nodes = [TraceNode(1, 0x401000, frozenset({0x401040}), 2),
    ...          TraceNode(2, 0x401040, frozenset({0x401000, 0x401080}), 1)]
    >>> policy.observe(nodes, {0x401000: 40, 0x401040: 30})      # first window: not stable yet
    []
    >>> policy.observe(nodes, {0x401000: 35, 0x401040: 33})
    [Region(entry=0x401000, members=(1, 2))]

NET traces are short: a loop whose body has an `if` becomes one trace per arm, and every
iteration leaves one trace for the dispatcher and enters the next, storing the guest state
back and loading it again. A region holds the blocks of all its traces, so the exits between
them become branches (workers/lower.py: a jump to the pc of one of the unit's blocks branches),
and the registers stay promoted across the whole loop.

The policy is fed windows of samples (how often the sampler found each trace's head pc
running: hqemu.trace.sampler) and the static exits of the installed traces. A trace is hot in
a window when it has at least min_samples samples and hot_share of the window; the hot traces
and their exit edges form a graph; each strongly connected component of two or more traces
that stayed the same for stable_windows windows in a row is a region. Its entry is its hottest
head. A region is formed once per member set; a later, larger component (a new trace joined
the cycle) forms a new version. This module only decides; NativeTier builds (with
build.build_trace_unit), compiles and installs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TraceNode:
    """What merging needs of one installed trace (or region)."""

    id: int
    head_pc: int
    exit_targets: frozenset[int]  # static guest pcs its exits continue at
    blocks: int  # distinct guest blocks in it


@dataclass(frozen=True)
class Region:
    entry: int  # head pc the region is installed at
    members: tuple[int, ...]  # trace ids, the entry's first, then by samples

    def __repr__(self) -> str:
        return f"Region(entry=0x{self.entry:x}, members={self.members})"


@dataclass
class MergePolicy:
    min_samples: int = 1  # samples of a trace in one window before it counts as hot
    hot_share: float = 0.005  # ... and at least this share of the window's samples
    stable_windows: int = 2  # windows in a row a component must stay the same
    max_blocks: int = 128  # a bigger region is not formed (LLVM compile time grows with it)
    memory: int = 4  # the last windows whose samples are summed to judge what is hot

    def __post_init__(self) -> None:
        self._streak: dict[frozenset[int], int] = {}  # component (trace ids) -> windows seen
        self.formed: set[frozenset[int]] = set()  # member sets already merged
        self._recent: deque[Mapping[int, int]] = deque(maxlen=self.memory)  # the last windows

    def observe(self, nodes: Sequence[TraceNode], samples: Mapping[int, int], all_hot: bool = False
                ) -> list[Region]:
        """One window: the regions to form now. samples: head pc -> samples in this window;
        all_hot: every node counts as hot (deterministic merging on the static graph). What
        is hot is judged on the last `memory` windows together: ~20 samples a window (5 ms
        sampling, 100 ms windows) often miss one member of a hot loop of several traces,
        which broke the component and its streak every other window."""
        self._recent.append(samples)
        if len(self._recent) > 1:
            summed: dict[int, int] = {}
            for w in self._recent:
                for pc, n in w.items():
                    summed[pc] = summed.get(pc, 0) + n
            samples = summed
        total = sum(samples.values())
        floor = max(self.min_samples, self.hot_share * total)
        hot = list(nodes) if all_hot else [n for n in nodes if samples.get(n.head_pc, 0) >= floor]
        comps = [c for c in components(hot) if len(c) >= 2]
        by_id = {n.id: n for n in hot}
        streak: dict[frozenset[int], int] = {}
        out = []
        for comp in comps:
            key = frozenset(comp)
            streak[key] = self._streak.get(key, 0) + 1
            if key in self.formed or streak[key] < self.stable_windows:
                continue
            if sum(by_id[i].blocks for i in comp) > self.max_blocks:
                continue
            order = sorted(comp, key=lambda i: (-samples.get(by_id[i].head_pc, 0), i))
            self.formed.add(key)
            out.append(Region(by_id[order[0]].head_pc, tuple(order)))
        self._streak = streak
        return out

    def forget(self) -> None:
        """Guest code changed: every trace is gone."""
        self._streak.clear()
        self.formed.clear()
        self._recent.clear()


def components(nodes: Sequence[TraceNode]) -> list[list[int]]:
    """Strongly connected components (trace ids) of the graph where a trace has an edge to
    every trace whose head one of its exits targets. Iterative Tarjan: traces are few, but
    recursion depth must not depend on the guest."""
    heads: dict[int, list[int]] = {}
    for n in nodes:
        heads.setdefault(n.head_pc, []).append(n.id)
    succ = {n.id: [t for pc in sorted(n.exit_targets) for t in heads.get(pc, ())] for n in nodes}
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    out: list[list[int]] = []
    for root in succ:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            edges = succ[v]
            if i < len(edges):
                work.append((v, i + 1))
                w = edges[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


__all__ = ["MergePolicy", "Region", "TraceNode", "components"]
