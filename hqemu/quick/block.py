"""QuickBlock: one guest block compiled by the quick tier, as the engine's code cache holds it.

    >>> blk = compile_unit(unit, env)
    >>> pc = blk.fn()                      # run it: returns the next guest pc
    >>> blk.count += 1                     # the engine counts runs: the trace tier's hotness signal
    >>> if pc == blk.next_pc0: blk = blk.next0    # chaining slots, filled by the engine

When a GuestFault (or an IndexError from a fast-path table, for an address beyond the guest
reservation) escapes blk.fn, blk.pc_for_traceback(exc.__traceback__) names the guest
instruction that faulted.

A block rebuilt from the persistent code cache (codegen.rebuild_block) has no Unit object: it
keeps the unit's text and parses it on the first read of blk.unit (only the trace tier reads
it), so a cache hit never pays for the IR. The engine's hot loop reads only plain slots.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from hqemu.ir import StateLayout, Unit
from hqemu.ir.passes import written_first
from hqemu.ir.text import format_unit, parse_unit

CACHED_SOURCE = "# (loaded from the persistent code cache: no source kept)\n"


class QuickBlock:
    __slots__ = ("pc", "fn", "n_insns", "size", "exits", "source", "count",
                 "next_pc0", "next0", "next_pc1", "next1", "_unit", "_unit_text", "_layout", "line_pcs",
                 "final", "_written_first")

    def __init__(self, pc: int, fn: Callable[[], int], n_insns: int, size: int, exits: tuple[int, ...],
                 source: str, unit: Unit | None, line_pcs: tuple[int, ...],
                 unit_text: str | None = None, layout: StateLayout | None = None,
                 final: tuple[str, tuple] | None = None):
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
        self._unit = unit  # the IR it was compiled from (the trace tier re-lowers it), or None
        self._unit_text = unit_text  # format_unit of it, once known (a cached block has only this)
        self._layout = layout  # the state layout to parse _unit_text against
        self.line_pcs = line_pcs  # line_pcs[lineno] = guest pc of the instruction on that line
        if final is None and unit is not None and unit.blocks and unit.blocks[-1].ops:
            last = unit.blocks[-1].ops[-1]
            final = (last.name, last.consts)
        # (name, consts) of the unit's last op: how the block ends, known without parsing its IR
        self.final = final
        self._written_first: frozenset[str] | None = None  # see written_first, once asked

    @property
    def unit(self) -> Unit | None:
        """The IR the block was compiled from; parsed from its text on first use if cached."""
        if self._unit is None and self._unit_text is not None:
            self._unit = parse_unit(self._unit_text, self._layout)
        return self._unit

    @unit.setter
    def unit(self, unit: Unit | None) -> None:
        self._unit, self._unit_text = unit, None

    @property
    def written_first(self) -> frozenset[str]:
        """The globals this block writes before reading them (ir.passes.written_first): a
        trace exit jumping here need not store them."""
        if self._written_first is None:
            unit = self.unit
            self._written_first = written_first(unit) if unit is not None else frozenset()
        return self._written_first

    @property
    def loops(self) -> bool:
        """Whether fn takes its own back edge inside one call (the generator's loop mode: the
        function returns its own pc only when its budget of back edges is spent)."""
        code = getattr(self.fn, "__code__", None)
        return code is not None and "lim" in code.co_varnames

    def unit_text(self) -> str | None:
        """format_unit(self.unit), without parsing a cached block's IR."""
        if self._unit_text is None and self._unit is not None:
            self._unit_text = format_unit(self._unit)
        return self._unit_text

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
