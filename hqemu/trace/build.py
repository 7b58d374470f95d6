"""Recorded blocks -> one trace IR unit, its text for the worker, and its exit metadata.

    >>> t = build_trace(recorded, trace_name(recorded.head_pc, 7))    # recorded: a RecordedTrace
    >>> t.text                 # format_unit(t.unit): what crosses to the LLVM worker
    >>> t.info.exits           # every way out of the trace, each with its guest target pc

The unit's blocks are the recorded guest blocks' IR in recording order, the head first, each
op copied with its temps renumbered so they are unique across the unit; the globals are the
union of the blocks'. The unit is single-entry (the head, its first block) and multi-exit.

What a jump means inside a trace (the contract of workers/lower.py and of the reference
interpreter, hqemu.ir.interp.run_block): in a unit of several blocks, a `jump` exit (exit,
exit_if, or exit_ind at run time) to the pc of one of the unit's blocks branches to that block;
any other exit leaves the trace. So the head's pc coming round is the trace's loop.

A guest pc recorded twice (an inner loop, when max_blocks is reached inside it) is kept once,
at its first place: both recordings are the same guest code, so every jump to that pc
branching to the one copy is exact, and the inner loop becomes a loop of the trace. (Both
consumers branch to the *last* block with a pc, so a second copy would make the first dead.)
A trace of a single block that jumps to itself holds that block twice: both consumers branch
only inside units of several blocks, and the back edge then targets the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hqemu.ir import Op, Temp, Unit
from hqemu.ir.errors import IRError
from hqemu.ir.passes import written_first
from hqemu.ir.text import format_unit

from .policy import TraceEnd


@dataclass(frozen=True)
class TraceExit:
    block_pc: int  # the guest block holding the exit
    kind: str  # an EXIT_KINDS name, or "indirect" (exit_ind: a jump to a computed pc)
    target: int | None  # the guest pc it continues at; None for "indirect"


@dataclass(frozen=True)
class TraceInfo:
    head_pc: int
    entry: str  # the symbol of the compiled trace
    recorded_pcs: tuple[int, ...]  # the guest blocks as recorded (a pc may repeat)
    block_pcs: tuple[int, ...]  # the guest blocks of the unit, in order (see the module doc)
    exits: tuple[TraceExit, ...]  # every op that leaves the trace, in unit order
    guest_insns: int  # guest instructions in the trace's distinct blocks
    end: TraceEnd | None  # why the recording stopped

    @property
    def exit_targets(self) -> frozenset[int]:
        """The static guest pcs the trace may continue at (for linking exits)."""
        return frozenset(e.target for e in self.exits if e.target is not None and e.kind == "jump")


@dataclass
class BuiltTrace:
    unit: Unit
    text: str  # format_unit(unit)
    info: TraceInfo


def trace_name(head_pc: int, serial: int) -> str:
    """The entry symbol of a trace: unique per process, as the native loader requires."""
    return f"trace_{head_pc:x}_{serial}"


def _unit_of(b: Any) -> Unit:
    unit = b if isinstance(b, Unit) else b.unit
    if unit is None:
        raise IRError(f"trace: block 0x{b.pc:x} has no IR")
    return unit


def build_trace_unit(blocks: Sequence[Any]) -> Unit:
    """One unit from recorded blocks (QuickBlocks, or anything with .pc and .unit, or Units)."""
    if not blocks:
        raise IRError("trace: no blocks")
    units: list[Unit] = []
    seen: set[int] = set()
    for b in blocks:
        u = _unit_of(b)
        if u.pc not in seen:
            seen.add(u.pc)
            units.append(u)
    if len(units) == 1 and len(units[0].blocks) == 1 and _jumps_to(units[0], units[0].pc):
        units.append(units[0])
    first = units[0]
    out = Unit(first.isa, first.layout)
    for u in units:
        if u.isa != out.isa:
            raise IRError(f"trace: block 0x{u.pc:x} is {u.isa}, the trace {out.isa}")
        for name, g in u.globals.items():
            have = out.globals.setdefault(name, g)
            if have != g:
                raise IRError(f"trace: global {name} differs between blocks ({have} vs {g})")
        _copy_into(out, u)
    return out


def _copy_into(out: Unit, u: Unit) -> None:
    ren: dict[int, Temp] = {}

    def new(t: Temp) -> Temp:
        r = ren[t.id] = out.temp(t.ty)
        return r

    for b in u.blocks:
        nb = out.new_block(b.pc)
        ops = nb.ops
        for op in b.ops:
            ins = tuple(ren[v.id] if v.__class__ is Temp else v for v in op.ins)
            ops.append(Op(op.name, tuple(new(t) for t in op.outs), ins, op.consts))


def _jumps_to(u: Unit, pc: int) -> bool:
    return any(op.name in ("exit", "exit_if") and op.consts == ("jump", pc) for op in u.ops())


def trace_exits(unit: Unit) -> tuple[TraceExit, ...]:
    """Every op of a trace unit that leaves it, with where it goes."""
    inside = {b.pc for b in unit.blocks} if len(unit.blocks) > 1 else set()
    out = []
    for b in unit.blocks:
        for op in b.ops:
            if op.name == "exit_ind":
                out.append(TraceExit(b.pc, "indirect", None))
            elif op.name in ("exit", "exit_if"):
                kind, pc = op.consts
                if kind != "jump" or pc not in inside:
                    out.append(TraceExit(b.pc, kind, pc))
    return tuple(out)


def build_trace(recorded: Any, entry: str, block_at: Callable[[int], Any] | None = None) -> BuiltTrace:
    """A RecordedTrace (or anything with .blocks and .end) -> unit, text and metadata.
    block_at(pc): the translated block at a guest pc, if any (the quick tier's cache): the
    unit then says, for each exit target known there, which globals it writes first."""
    blocks = recorded.blocks
    unit = build_trace_unit(blocks)
    distinct = {u.pc: u for u in map(_unit_of, blocks)}
    info = TraceInfo(
        head_pc=unit.pc,
        entry=entry,
        recorded_pcs=tuple(_unit_of(b).pc for b in blocks),
        block_pcs=tuple(b.pc for b in unit.blocks),
        exits=trace_exits(unit),
        guest_insns=sum(u.guest_insns() for u in distinct.values()),
        end=getattr(recorded, "end", None),
    )
    if block_at is not None:
        unit.dead_at = dead_at_exits(unit, info.exit_targets, block_at)
    return BuiltTrace(unit, format_unit(unit), info)


def dead_at_exits(unit: Unit, targets: frozenset[int], block_at: Callable[[int], Any]
                  ) -> dict[int, frozenset[str]]:
    """For each exit target with a translated block: the globals the unit writes that the
    block there writes before reading (most often the flags: the next cmp or test sets them
    anew), so the exit need not store them and LLVM drops what only computed them."""
    written = {op.consts[0] for op in unit.ops() if op.name == "put"}
    out = {}
    for pc in targets:
        blk = block_at(pc)  # a QuickBlock (it caches the answer) or a Unit
        if blk is None:
            continue
        dead = (written_first(blk) if isinstance(blk, Unit) else blk.written_first) & written
        if dead:
            out[pc] = dead
    return out


__all__ = ["BuiltTrace", "TraceExit", "TraceInfo", "build_trace", "build_trace_unit", "dead_at_exits",
           "trace_exits", "trace_name"]
