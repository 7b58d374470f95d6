"""The NET policy of the trace tier: which blocks become trace heads, when one is hot, and
when a recording stops. The recorder (recorder.py) owns the mechanics; this module only decides.

    >>> p = NetPolicy(hot_threshold=50, max_blocks=16)
    >>> p.is_candidate_edge(0x401020, 0x401000, Edge.DIRECT)     # a backward branch
    True
    >>> p.stop((0x401000, 0x401010), 0x401000)                   # the head came round again
    <TraceEnd.CYCLE: 'the head was reached again (a cycle)'>

Relaxed Next-Executing-Tail (HQEMU, CGO 2012, section 2.3): a block reached by a backward
branch, by an indirect branch or from a trace exit becomes a candidate head and counts its
arrivals; at the hot threshold the blocks executed next are recorded until the head's pc comes
round again, max_blocks are recorded, or the recording aborts for a named reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from hqemu.ir import Unit


class _Reason(Enum):
    """An Enum whose value is its message (what -d and the statistics print)."""

    @property
    def message(self) -> str:
        return self.value


class Edge(_Reason):
    """How control went from one block to the next."""

    DIRECT = "a direct branch or fall-through (a static exit of the block, or a syscall's return)"
    INDIRECT = "an indirect branch (exit_ind: ret, jmp reg, a jump table)"
    TRACE_EXIT = "leaving a native trace through one of its exits"


_DIRECT = Edge.DIRECT  # enum member lookups cost ~100 ns: the hot paths use module constants


class TraceEnd(_Reason):
    """Why a recording finished with a trace."""

    CYCLE = "the head was reached again (a cycle)"
    MAX_BLOCKS = "the trace reached --trace-max-blocks blocks"
    TRACE_HEAD = "the next block is the head of another trace"


class AbortReason(_Reason):
    """Why a recording was given up without a trace."""

    SYSCALL = "a block ends in a system call"
    GUEST_SIGNAL = "a block ends in a guest signal (sigill, sigsegv, sigfpe, ...)"
    EXCEPTION = "a guest fault or signal was raised while recording"
    UNCOMPILABLE = "a block has no IR the trace tier can compile"
    INVALIDATED = "guest code was modified or unmapped while recording"
    HEAD_HAS_TRACE = "the head already has a trace (installed or being compiled)"
    GUEST_EXIT = "the guest exited while recording"
    TIER_OFF = "the trace tier was turned off"


@dataclass(frozen=True)
class NetPolicy:
    hot_threshold: int = 50  # arrivals at a candidate head before it is recorded (HQEMU: 50)
    max_blocks: int = 16  # longest trace in guest blocks (HQEMU: 16)
    max_aborts: int = 3  # aborted recordings of one head before it is never tried again

    def __post_init__(self) -> None:
        if self.hot_threshold < 1 or self.max_blocks < 1 or self.max_aborts < 1:
            raise ValueError(f"NetPolicy: thresholds must be >= 1: {self}")

    def is_candidate_edge(self, src_pc: int, dst_pc: int, kind: Edge) -> bool:
        """Does arriving at dst_pc this way make it a candidate head (and count)?"""
        return kind is not _DIRECT or dst_pc <= src_pc

    def is_hot(self, count: int) -> bool:
        return count >= self.hot_threshold

    def stop(self, recorded_pcs: Sequence[int], next_pc: int, next_is_trace_head: bool = False
             ) -> TraceEnd | None:
        """Whether the recording ends before next_pc, the block about to run, is added.

        The cycle is tested before the length, so a loop of exactly max_blocks blocks still
        closes on itself.
        """
        if next_pc == recorded_pcs[0]:
            return TraceEnd.CYCLE
        if next_is_trace_head:
            return TraceEnd.TRACE_HEAD
        if len(recorded_pcs) >= self.max_blocks:
            return TraceEnd.MAX_BLOCKS
        return None

    def block_abort(self, unit: Unit | None) -> AbortReason | None:
        """Why a block cannot be part of a trace, or None if it can.

        Its side exits may be anything (a guarded division's sigfpe is a rarely taken exit),
        but a block whose final exit is a syscall or a signal would leave the trace every time.
        Helper calls are fine: native code calls back into Python for them.
        """
        if unit is None or not unit.blocks or not unit.blocks[-1].ops:
            return AbortReason.UNCOMPILABLE
        last = unit.blocks[-1].ops[-1]
        if last.name != "exit" or last.consts[0] == "jump":
            return None
        return AbortReason.SYSCALL if last.consts[0] == "syscall" else AbortReason.GUEST_SIGNAL

    def blacklisted(self, aborts: int) -> bool:
        """A head whose recordings keep aborting (a syscall in its loop, ...) is not retried."""
        return aborts >= self.max_aborts


__all__ = ["AbortReason", "Edge", "NetPolicy", "TraceEnd"]
