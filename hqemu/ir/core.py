"""IR data structures: types, values, ops, blocks, units, and the CPU-state layout.

A Unit is what a frontend produces for one guest basic block (one IR Block) and what the
trace tier ships to a worker for a trace (several Blocks, one per guest block, in order).
Temps are numbered per unit and assigned exactly once (SSA within the unit).

    >>> u = Unit("x86_64", layout)            # layout: the ISA's StateLayout
    >>> b = u.new_block(0x401000)
    >>> t = u.temp(I64)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from .ops import OPS

if TYPE_CHECKING:
    from .helpers import HostInsn


@dataclass(frozen=True)
class Ty:
    name: str  # text name, e.g. "i64"
    bits: int  # width in bits
    is_float: bool = False

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def __repr__(self) -> str:
        return self.name


I1 = Ty("i1", 1)
I8 = Ty("i8", 8)
I16 = Ty("i16", 16)
I32 = Ty("i32", 32)
I64 = Ty("i64", 64)
I128 = Ty("i128", 128)
F32 = Ty("f32", 32, True)
F64 = Ty("f64", 64, True)
TYPES: dict[str, Ty] = {t.name: t for t in (I1, I8, I16, I32, I64, I128, F32, F64)}
INT_BY_BITS: dict[int, Ty] = {t.bits: t for t in (I1, I8, I16, I32, I64, I128)}


@dataclass(frozen=True, eq=False)
class Temp:
    id: int  # unique within the unit
    ty: Ty

    def __repr__(self) -> str:
        return f"%{self.id}"


@dataclass(frozen=True)
class Const:
    value: int | float  # ints: unsigned bit pattern < 2**bits; floats: a Python float
    ty: Ty

    def __repr__(self) -> str:
        return f"{self.value}:{self.ty.name}"


Value = Union[Temp, Const]


@dataclass(eq=False)
class Op:
    name: str  # a key of OPS
    outs: tuple[Temp, ...]  # temps this op defines
    ins: tuple[Value, ...]  # value inputs
    consts: tuple = ()  # constant attributes, in the order OPS[name].consts names them

    @property
    def d(self):
        return OPS[self.name]

    def const(self, key: str):
        return self.consts[OPS[self.name].consts.index(key)]


@dataclass(frozen=True)
class Global:
    name: str  # e.g. "rax"
    ty: Ty  # I64 for 8-byte slots, I128 for 16-byte slots
    offset: int  # byte offset in the ISA's CPU struct (a multiple of 8)


class StateLayout:
    """The CPU-state globals of one guest ISA, derived from its ctypes struct."""

    def __init__(self, isa: str, globals_: list[Global]):
        self.isa = isa
        self.globals = {g.name: g for g in globals_}

    def __getitem__(self, name: str) -> Global:
        return self.globals[name]

    def __contains__(self, name: str) -> bool:
        return name in self.globals


@dataclass(eq=False)
class Block:
    pc: int  # guest pc of the first instruction
    ops: list[Op] = field(default_factory=list)


class Unit:
    """A translation unit: one or more IR blocks over one ISA's state layout."""

    def __init__(self, isa: str, layout: StateLayout | None = None):
        self.isa = isa
        self.layout = layout  # None only for units parsed from text without a layout
        self.globals: dict[str, Global] = {}  # the globals this unit uses (filled by get/put)
        self.blocks: list[Block] = []
        self.next_temp = 0
        # exit target pc -> globals the guest code there writes before it reads them: a `jump`
        # exit to that pc need not store their values (docs/ir.md, "Dead at a target")
        self.dead_at: dict[int, frozenset[str]] = {}
        # helper name -> its inline host instruction: filled by parse_unit from `hostinsn`
        # lines (a worker knows no frontend's helpers); format_unit writes them from HELPERS
        self.host_insns: dict[str, HostInsn] = {}

    def temp(self, ty: Ty) -> Temp:
        t = Temp(self.next_temp, ty)
        self.next_temp += 1
        return t

    def new_block(self, pc: int) -> Block:
        b = Block(pc)
        self.blocks.append(b)
        return b

    def use_global(self, name: str) -> Global:
        g = self.globals.get(name)
        if g is None:
            if self.layout is None:
                raise KeyError(f"unknown global {name}")
            g = self.globals[name] = self.layout[name]
        return g

    @property
    def pc(self) -> int:
        return self.blocks[0].pc

    def ops(self):
        for b in self.blocks:
            yield from b.ops

    def guest_insns(self) -> int:
        return sum(1 for op in self.ops() if op.name == "insn")
