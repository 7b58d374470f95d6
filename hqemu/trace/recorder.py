"""The trace recorder: an explicit state machine that profiles candidate heads and records
the blocks executed from a hot one. The decisions are the NetPolicy's (policy.py).

    >>> rec = TraceRecorder(NetPolicy(hot_threshold=50, max_blocks=16))
    >>> # in the engine's loop, for every block blk about to run and the block nxt it led to:
    >>> if rec.state is State.RECORDING and not rec.on_block(blk):
    ...     for trace in rec.take(): submit(trace)          # a RecordedTrace, or nothing (aborted)
    >>> pc = blk.fn(); nxt = lookup(pc)
    >>> if rec.profile(blk, nxt): rec.start(nxt)           # nxt is a hot head: record from it

States: IDLE (profiling: candidate heads count their arrivals), RECORDING (every block run is
appended; the head first), DISABLED (the trace tier is off: every call is a no-op). A
recording ends IDLE again, either with a RecordedTrace (reason: a TraceEnd) or aborted (an
AbortReason). Per head the recorder keeps a HeadState: CANDIDATE, PENDING (recorded, being
compiled), TRACED (installed), BLACKLISTED (too many aborts, or its compile failed).

A block is anything with .pc and .unit (the QuickBlock of the quick tier; unit is its
optimized IR) and, for edge classification, .exits (its static jump targets).

Costs (measured): profile() ~0.2 us on a forward branch, ~0.6 us on a counted arrival;
on_block() ~0.4 us. A loop that chains blocks without Python lookups can skip profile() on the
edges NET never counts: a static exit (pc in blk.exits) to a higher pc.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .policy import AbortReason, Edge, NetPolicy, TraceEnd


class State(Enum):
    IDLE = "profiling candidate heads"
    RECORDING = "appending every executed block to the trace"
    DISABLED = "the trace tier is off"


class HeadState(Enum):
    CANDIDATE = "counting arrivals"
    PENDING = "a trace was recorded and is being compiled"
    TRACED = "a trace is installed"
    BLACKLISTED = "never recorded again"


# enum member lookups cost ~100 ns each: the per-block paths use these
_IDLE, _RECORDING = State.IDLE, State.RECORDING
_CANDIDATE, _PENDING, _TRACED = HeadState.CANDIDATE, HeadState.PENDING, HeadState.TRACED
_DIRECT, _INDIRECT = Edge.DIRECT, Edge.INDIRECT


@dataclass
class Head:
    count: int = 0  # arrivals by candidate edges since it became a candidate (or its last abort)
    aborts: int = 0  # recordings from it that aborted
    status: HeadState = HeadState.CANDIDATE


@dataclass
class TraceStats:
    """The trace recorder's counters (declared once; the lead merges them into hqemu.stats)."""

    candidate_heads: int = 0  # distinct pcs that became candidate heads
    recordings: int = 0  # recordings started
    traces: Counter = field(default_factory=Counter)  # TraceEnd name -> traces recorded
    aborts: Counter = field(default_factory=Counter)  # AbortReason name -> recordings given up
    blacklisted: int = 0  # heads never to be recorded again
    blocks_recorded: int = 0  # guest blocks in recorded traces (repeats included)
    trace_lengths: Counter = field(default_factory=Counter)  # blocks per trace -> traces


@dataclass
class RecordedTrace:
    head_pc: int
    blocks: list[Any]  # the blocks in execution order, the head first; a pc may repeat
    end: TraceEnd
    generation: int = 0  # the recorder's generation: a trace from before a reset() is stale

    @property
    def pcs(self) -> tuple[int, ...]:
        return tuple(b.pc for b in self.blocks)


def edge_kind(src: Any, dst_pc: int) -> Edge:
    """DIRECT if dst_pc is a static exit of src (or src ends otherwise than by exit_ind: the pc
    after a syscall), INDIRECT if src ended with exit_ind."""
    if dst_pc in src.exits:
        return _DIRECT
    final = getattr(src, "final", None)  # a QuickBlock knows how it ends without its IR
    if final is not None:
        return _INDIRECT if final[0] == "exit_ind" else _DIRECT
    unit = src.unit
    last = unit.blocks[-1].ops[-1] if unit is not None and unit.blocks and unit.blocks[-1].ops else None
    return _INDIRECT if last is not None and last.name == "exit_ind" else _DIRECT


class TraceRecorder:
    def __init__(self, policy: NetPolicy, stats: TraceStats | None = None, enabled: bool = True):
        self.policy = policy
        self.stats = stats if stats is not None else TraceStats()
        self.state = State.IDLE if enabled else State.DISABLED
        self.heads: dict[int, Head] = {}  # guest pc -> its profile, once it was a candidate
        self.head_pc = -1  # the head being recorded (RECORDING only)
        self.blocks: list[Any] = []  # blocks recorded so far (RECORDING only)
        self.pcs: list[int] = []  # their pcs
        self.finished: list[RecordedTrace] = []  # recorded, not yet taken by the engine
        self.generation = 0  # bumped by reset(): traces of older generations are stale

    # --- IDLE: profiling ---------------------------------------------------------------
    def profile(self, src: Any, dst: Any, kind: Edge | None = None, arrivals: int = 1) -> bool:
        """Control went from block src to block dst (src may be None for Edge.TRACE_EXIT):
        count the arrival if it makes dst a candidate head; True if dst is now hot, i.e. the
        engine should call start(dst) before running it. arrivals > 1: the edge was taken that
        many times unseen (a quick-tier block looping on itself inside one call)."""
        if self.state is not _IDLE:
            return False
        dst_pc = dst.pc
        src_pc = src.pc if src is not None else -1
        if kind is None:
            if dst_pc > src_pc and dst_pc in src.exits:  # a forward branch: never a candidate
                return False
            kind = edge_kind(src, dst_pc)
        if not self.policy.is_candidate_edge(src_pc, dst_pc, kind):
            return False
        head = self.heads.get(dst_pc)
        if head is None:
            head = self.heads[dst_pc] = Head()
            self.stats.candidate_heads += 1
        if head.status is not _CANDIDATE:
            return False
        head.count += arrivals
        return self.policy.is_hot(head.count)

    def start(self, head_blk: Any) -> bool:
        """Begin recording at head_blk, which the engine runs next (and passes to on_block
        first). False if it cannot be recorded now (not IDLE, or the head has a trace)."""
        if self.state is not State.IDLE:
            return False
        head = self.heads.setdefault(head_blk.pc, Head())
        if head.status is not HeadState.CANDIDATE:
            if head.status is not HeadState.BLACKLISTED:
                self.stats.aborts[AbortReason.HEAD_HAS_TRACE.name] += 1
            return False
        self.state = State.RECORDING
        self.head_pc = head_blk.pc
        self.blocks, self.pcs = [], []
        self.stats.recordings += 1
        return True

    # --- RECORDING -----------------------------------------------------------------------
    def on_block(self, blk: Any) -> bool:
        """blk is about to run while recording; True while the recording goes on. When it
        returns False the recording ended: take() has the trace, unless it aborted."""
        if self.state is not _RECORDING:
            return False
        pc = blk.pc
        if self.pcs:
            nxt = self.heads.get(pc)
            other_trace = nxt is not None and (nxt.status is _PENDING or nxt.status is _TRACED)
            end = self.policy.stop(self.pcs, pc, other_trace)
            if end is not None:
                self._finish(end)
                return False
        elif pc != self.head_pc:
            raise AssertionError(f"recorder: the head 0x{self.head_pc:x} must come first, not 0x{pc:x}")
        reason = self.policy.block_abort(blk.unit)
        if reason is not None:
            self.on_abort(reason)
            return False
        self.blocks.append(blk)
        self.pcs.append(pc)
        return True

    def on_abort(self, reason: AbortReason) -> None:
        """Give up the current recording (the engine calls it on a guest fault, an exit, an
        invalidation); a no-op when not recording."""
        if self.state is not State.RECORDING:
            return
        st = self.stats
        st.aborts[reason.name] += 1
        head = self.heads[self.head_pc]
        head.count = 0
        head.aborts += 1
        if self.policy.blacklisted(head.aborts):
            head.status = HeadState.BLACKLISTED
            st.blacklisted += 1
        self._idle()

    def _finish(self, end: TraceEnd) -> None:
        st = self.stats
        st.traces[end.name] += 1
        st.blocks_recorded += len(self.blocks)
        st.trace_lengths[len(self.blocks)] += 1
        head = self.heads[self.head_pc]
        head.status, head.count = HeadState.PENDING, 0
        self.finished.append(RecordedTrace(self.head_pc, self.blocks, end, self.generation))
        self._idle()

    def _idle(self) -> None:
        self.state = State.IDLE
        self.head_pc = -1
        self.blocks, self.pcs = [], []

    # --- after recording ----------------------------------------------------------------
    def take(self) -> list[RecordedTrace]:
        """The traces recorded since the last take(), oldest first."""
        out, self.finished = self.finished, []
        return out

    def installed(self, head_pc: int) -> None:
        """A trace of head_pc now runs natively."""
        self.heads.setdefault(head_pc, Head()).status = HeadState.TRACED

    def compile_failed(self, head_pc: int) -> None:
        """Its trace could not be compiled: do not record it again."""
        head = self.heads.setdefault(head_pc, Head())
        if head.status is not HeadState.BLACKLISTED:
            head.status = HeadState.BLACKLISTED
            self.stats.blacklisted += 1

    def release(self, head_pc: int) -> None:
        """Its trace was not compiled after all (the queue was full): a candidate again."""
        head = self.heads.get(head_pc)
        if head is not None and head.status is HeadState.PENDING:
            head.status, head.count = HeadState.CANDIDATE, 0

    def reset(self) -> None:
        """Guest code changed: abort the recording, forget every head and unfinished trace."""
        self.on_abort(AbortReason.INVALIDATED)
        self.heads.clear()
        self.finished.clear()
        self.generation += 1

    def disable(self) -> None:
        """Turn the trace tier off for good (e.g. no worker could be started)."""
        self.on_abort(AbortReason.TIER_OFF)
        self.state = State.DISABLED
        self.finished.clear()


__all__ = ["Head", "HeadState", "RecordedTrace", "State", "TraceRecorder", "TraceStats", "edge_kind"]
