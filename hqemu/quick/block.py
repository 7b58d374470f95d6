"""QuickBlock: one guest block compiled by the quick tier, as the engine's code cache holds it.

    >>> blk = compile_unit(unit, env)
    >>> pc = blk.fn()                      # run it: returns the next guest pc
    >>> blk.count += 1                     # the engine counts runs: the trace tier's hotness signal
    >>> if pc == blk.next_pc0: blk = blk.next0    # chaining slots, filled by the engine

When a GuestFault (or an IndexError from a fast-path table, for an address beyond the guest
reservation) escapes blk.fn, blk.pc_for_traceback(exc.__traceback__) names the guest
instruction that faulted.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from hqemu.ir import Unit


class QuickBlock:
    __slots__ = ("pc", "fn", "n_insns", "size", "exits", "source", "count",
                 "next_pc0", "next0", "next_pc1", "next1", "unit", "line_pcs")

    def __init__(self, pc: int, fn: Callable[[], int], n_insns: int, size: int, exits: tuple[int, ...],
                 source: str, unit: Unit | None, line_pcs: tuple[int, ...]):
        self.pc = pc  # guest pc of the first instruction
        self.fn = fn  # the generated function: no arguments, returns the next guest pc
        self.n_insns = n_insns  # guest instructions in the block
        self.size = size  # guest code bytes covered
        self.exits = exits  # static jump targets: side exits in order, then the final one
        self.source = source  # generated Python source, for -d and debugging
        self.count = 0  # executions, incremented by the engine
        self.next_pc0 = -1  # chained successor slots (engine-owned); -1 = empty
        self.next0: QuickBlock | None = None
        self.next_pc1 = -1
        self.next1: QuickBlock | None = None
        self.unit = unit  # the IR it was compiled from (the trace tier re-lowers it)
        self.line_pcs = line_pcs  # line_pcs[lineno] = guest pc of the instruction on that line

    def pc_for_traceback(self, tb: TracebackType | None) -> int | None:
        """Guest pc of the instruction that was running in this block's frame, if it is in tb."""
        code = self.fn.__code__
        found = None
        while tb is not None:
            if tb.tb_frame.f_code is code and 0 <= tb.tb_lineno < len(self.line_pcs):
                found = self.line_pcs[tb.tb_lineno]
            tb = tb.tb_next
        return found

    def __repr__(self) -> str:
        return f"<QuickBlock 0x{self.pc:x} insns={self.n_insns} count={self.count}>"
