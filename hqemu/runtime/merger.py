"""Trace merging as the running tier does it: which traces are current, their blocks, and the
region units the MergePolicy's decisions turn into.

    >>> m = Merger(MergePolicy())
    >>> m.add(trace_id, head_pc, blocks, exit_targets)    # every installed trace or region
    >>> for job in m.window(samples): ...      # hybridm: one sampling window (head pc -> samples)
    >>> for job in m.static(): ...             # hybrids: every current trace counts as hot

Edges are the traces' static exit targets and, in hybridm, the targets of their indirect jumps
(returns, calls through pointers) that the sampler saw: a loop that calls through a pointer
table becomes one region with the callees, its indirect jumps switches inside it.

A job's blocks are the members' blocks, the entry's first; hqemu.trace.build_trace makes one
unit of them, keeping a block pc present in several members once, so every exit from one
member to another's head becomes a branch inside the region. The region replaces the entry's
trace at its head pc as a new version; the other members stay installed at their own heads
(execution entering there reaches the region at the next arrival at the entry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hqemu.trace.merge import MergePolicy, Region, TraceNode

MAX_INDIRECT_TARGETS = 16  # indirect edges kept per head (a jump table may have hundreds)


@dataclass
class _Current:
    id: int
    head_pc: int
    version: int
    blocks: tuple[Any, ...]  # QuickBlocks (anything with .pc and .unit), entry first
    exit_targets: frozenset[int]
    n_blocks: int  # distinct guest blocks


@dataclass(frozen=True)
class MergeJob:
    region: Region
    version: int  # of the entry head's code once installed
    blocks: tuple[Any, ...]  # the members' blocks, the entry's first: build_trace's input


class Merger:
    def __init__(self, policy: MergePolicy):
        self.policy = policy
        self.current: dict[int, _Current] = {}  # head pc -> the trace or region installed there
        self.indirect: dict[int, set[int]] = {}  # head pc -> targets its indirect exits were seen at

    def add(self, trace_id: int, head_pc: int, blocks: Sequence[Any], exit_targets: frozenset[int],
            version: int = 1) -> None:
        self.current[head_pc] = _Current(trace_id, head_pc, version, tuple(blocks), exit_targets,
                                         len({b.pc for b in blocks}))

    def version_at(self, head_pc: int) -> int:
        cur = self.current.get(head_pc)
        return cur.version if cur is not None else 0

    def _nodes(self) -> list[TraceNode]:
        ind = self.indirect
        return [TraceNode(c.id, c.head_pc, c.exit_targets | ind.get(c.head_pc, frozenset()), c.n_blocks)
                for c in self.current.values()]

    def window(self, samples: Mapping[int, int], edges: Mapping[tuple[int, int], int] | None = None
               ) -> list[MergeJob]:
        """One sampling window: head pc -> samples, and the indirect jumps sampled (unit entry
        pc, target pc) -> samples, which join the static exits as edges for good."""
        for src, dst in edges or ():
            targets = self.indirect.setdefault(src, set())
            if len(targets) < MAX_INDIRECT_TARGETS:
                targets.add(dst)
        return self._jobs(self.policy.observe(self._nodes(), samples))

    def static(self) -> list[MergeJob]:
        """Deterministic merging (hybrids): every current trace is as hot as the policy asks."""
        nodes = self._nodes()
        samples = {n.head_pc: 1 for n in nodes}  # the entry of a region: the lowest trace id
        regions: list[Region] = []
        for _ in range(self.policy.stable_windows):
            regions += self.policy.observe(nodes, samples, all_hot=True)
        return self._jobs(regions)

    def _jobs(self, regions: list[Region]) -> list[MergeJob]:
        by_id = {c.id: c for c in self.current.values()}
        jobs = []
        for r in regions:
            blocks = tuple(b for i in r.members for b in by_id[i].blocks)
            jobs.append(MergeJob(r, self.version_at(r.entry) + 1, blocks))
        return jobs

    def forget(self) -> None:
        self.current.clear()
        self.indirect.clear()
        self.policy.forget()


__all__ = ["MergeJob", "Merger"]
