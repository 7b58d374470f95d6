"""The IR's text form: printer and parser, an exact round trip.

The text is self-contained (ISA, the globals the unit uses with type and byte offset, then
blocks labelled by guest pc, one op per line), because it is what crosses the process
boundary to the LLVM workers and what golden tests are written in.

    >>> s = format_unit(unit)
    >>> format_unit(parse_unit(s)) == s
    True

Shape (an op's constant attributes come first, then its value inputs):

    unit x86_64
    global rax i64 0
    block 0x401000
      insn 0x401000, 3
      %0:i64 = get rax
      %1:i64 = add %0, 0x1:i64
      put rax, %1
      %2:i1 = setcond eq, %1, 0x0:i64
      exit_if jump, 0x401010, %2
      exit jump, 0x401003

A unit calling helpers that native code runs as one host instruction names them after its
globals, with the instruction (`hostinsn x86_sse_addsd vec 64 addsd $2, $0`: docs/ir.md, "Host
instructions"), so that a worker, which imports no frontend, can emit it inline.

A trace may say, after its globals, which globals the code at an exit's target writes before
reading them (`deadat 0x401200 cf pf`: docs/ir.md, "Dead at a target").

Integer constants are printed in hex; floats with float.hex, except NaN, printed with the
bits of its Python double, `nan(0x7ff8000000000000)`, so payload and sign survive. Lines
that are empty or start with ';' are comments.
"""

from __future__ import annotations

import math
import re
import struct

from .core import TYPES, Block, Const, Global, Op, StateLayout, Temp, Ty, Unit, Value
from .errors import IRError
from .helpers import HostInsn, host_insn_of
from .ops import OPS

_PACK_D, _UNPACK_D = struct.Struct("<d").pack, struct.Struct("<d").unpack
_PACK_Q, _UNPACK_Q = struct.Struct("<Q").pack, struct.Struct("<Q").unpack

# Constant attributes printed in hex (guest addresses); every other int attribute is decimal.
_HEX_ATTRS = frozenset({"pc"})


# --- printing --------------------------------------------------------------------------------
def format_float(x: float) -> str:
    if math.isnan(x):
        return f"nan(0x{_UNPACK_Q(_PACK_D(x))[0]:016x})"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x.hex()


def format_value(v: Value) -> str:
    if v.__class__ is Temp:
        return f"%{v.id}"
    if v.ty.is_float:
        return f"{format_float(v.value)}:{v.ty.name}"
    return f"0x{v.value:x}:{v.ty.name}"


def format_attr(name: str, x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (tuple, list)):  # vshuf's sel: no spaces, so ", " still splits operands
        return "[" + ",".join(str(i) for i in x) + "]"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"0x{x:x}" if name in _HEX_ATTRS else str(x)
    raise IRError(f"constant attribute {name}={x!r} has no text form")


_ATTR_NAMES = {name: d.consts for name, d in OPS.items()}


def format_op(op: Op) -> str:
    if op.consts:
        names = _ATTR_NAMES.get(op.name, ())
        args = [c if c.__class__ is str else format_attr(names[i] if i < len(names) else "", c)
                for i, c in enumerate(op.consts)]
        args += [format_value(v) for v in op.ins]
    else:
        args = [format_value(v) for v in op.ins]
    text = f"{op.name} {', '.join(args)}" if args else op.name
    if op.outs:
        return ", ".join([f"%{t.id}:{t.ty.name}" for t in op.outs]) + " = " + text
    return text


def host_insns(unit: Unit) -> dict[str, HostInsn]:
    """The inline host instructions of the helpers the unit calls: the registered helpers'
    (hqemu.ir.helpers.HELPERS) and those its own text named."""
    out: dict[str, HostInsn] = {}
    for op in unit.ops():
        if op.name == "call":
            name = op.consts[0]
            h = host_insn_of(name, unit.host_insns)
            if h is not None:
                out[name] = h
    return out


def format_unit(unit: Unit) -> str:
    lines = [f"unit {unit.isa}"]
    lines += [f"global {g.name} {g.ty.name} {g.offset}" for g in unit.globals.values()]
    lines += [f"hostinsn {name} {h.form} {h.bits} {h.asm.encode('unicode_escape').decode()}"
              for name, h in sorted(host_insns(unit).items())]
    lines += [f"deadat 0x{pc:x} {' '.join(sorted(names))}" for pc, names in sorted(unit.dead_at.items())
              if names]
    for b in unit.blocks:
        lines.append(f"block 0x{b.pc:x}")
        lines += ["  " + format_op(op) for op in b.ops]
    return "\n".join(lines) + "\n"


# --- parsing ---------------------------------------------------------------------------------
_INT = re.compile(r"(?:0x[0-9a-fA-F]+|\d+)$")
_NAME = re.compile(r"[A-Za-z_][\w.]*$")
_NAN = re.compile(r"(-?)nan\((0x[0-9a-fA-F]{1,16})\)$")


def parse_float(s: str) -> float:
    m = _NAN.match(s)
    if m:
        if m.group(1):
            raise ValueError("the sign of a NaN is in its bits")
        x = _UNPACK_D(_PACK_Q(int(m.group(2), 16)))[0]
        if not math.isnan(x):
            raise ValueError(f"{s} is not a NaN")
        return x
    if s in ("inf", "-inf"):
        return float(s)
    if "0x" not in s:  # decimal text would not round-trip bit-exactly
        raise ValueError(f"float {s} must be written with float.hex")
    return float.fromhex(s)


def _parse_attr(s: str):
    if s.startswith("[") and s.endswith("]"):
        body = s[1:-1]
        return tuple(int(x, 0) for x in body.split(",")) if body else ()
    if _INT.match(s):
        return int(s, 0)
    if _NAME.match(s):
        return s
    raise ValueError(f"bad constant attribute {s!r}")


class _Parser:
    def __init__(self, layout: StateLayout | None):
        self.layout = layout
        self.temps: dict[int, Temp] = {}
        self.consts: dict[str, Const] = {}  # constants repeat a lot; Const is immutable
        self.attrs: dict[str, object] = {}

    def ty(self, name: str) -> Ty:
        t = TYPES.get(name)
        if t is None:
            raise ValueError(f"unknown type {name!r}")
        return t

    def value(self, s: str) -> Value:
        if s[:1] == "%":
            try:
                return self.temps[int(s[1:])]
            except (KeyError, ValueError):
                if not s[1:].isdigit():
                    raise ValueError(f"bad temp {s!r}") from None
                raise ValueError(f"temp {s} used before its definition") from None
        c = self.consts.get(s)
        if c is None:
            c = self.consts[s] = self.const(s)
        return c

    def const(self, s: str) -> Const:
        lit, sep, tyname = s.rpartition(":")
        if not sep:
            raise ValueError(f"constant {s!r} has no type (write value:type)")
        ty = self.ty(tyname)
        if ty.is_float:
            return Const(parse_float(lit), ty)
        if not _INT.match(lit):
            raise ValueError(f"bad integer constant {lit!r}")
        return Const(int(lit, 0), ty)

    def attr(self, s: str):
        a = self.attrs.get(s)
        if a is None:
            a = self.attrs[s] = _parse_attr(s)
        return a

    def op(self, text: str) -> Op:
        outs: list[Temp] = []
        lhs, sep, rhs = text.partition(" = ")
        if sep:
            for o in lhs.split(", "):
                tid, _, tyname = o[1:].partition(":")
                if o[:1] != "%" or not tid.isdigit():
                    raise ValueError(f"bad output {o!r}")
                t = Temp(int(tid), self.ty(tyname))
                if t.id in self.temps:
                    raise ValueError(f"temp %{t.id} defined twice")
                outs.append(t)
        else:
            rhs = text
        name, _, rest = rhs.partition(" ")
        nc = _N_ATTRS.get(name)
        if nc is None:
            raise ValueError(f"unknown op {name!r}")
        args = rest.split(", ") if rest else []
        if len(args) < nc:
            raise ValueError(f"{name} takes {nc} constant attribute(s) before its inputs")
        value = self.value
        if nc:
            consts = tuple([self.attr(a) for a in args[:nc]])
            ins = tuple([value(a) for a in args[nc:]])
        else:
            consts = ()
            ins = tuple([value(a) for a in args])
        for t in outs:  # defined after the inputs are read: an op cannot use its own output
            self.temps[t.id] = t
        return Op(name, tuple(outs), ins, consts)


_N_ATTRS = {name: len(d.consts) for name, d in OPS.items()}


def parse_unit(text: str, layout: StateLayout | None = None) -> Unit:
    """Parse format_unit's text; raise IRError naming the line on malformed input.

    With a layout, the globals of the header must agree with it and the unit keeps it.
    """
    p = _Parser(layout)
    unit: Unit | None = None
    block: Block | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        try:
            word, _, rest = line.partition(" ")
            if word == "unit" and unit is None:
                unit = Unit(rest.strip(), layout)
            elif unit is None:
                raise ValueError("text must start with `unit <isa>`")
            elif word == "global" and not unit.blocks:
                name, tyname, off = rest.split()
                g = Global(name, p.ty(tyname), int(off, 0))
                if name in unit.globals:
                    raise ValueError(f"global {name} declared twice")
                if layout is not None and (name not in layout or layout[name] != g):
                    raise ValueError(f"global {name} does not match the layout")
                unit.globals[name] = g
            elif word == "hostinsn" and not unit.blocks:
                name, form, bits, asm = rest.split(" ", 3)
                if form not in HostInsn.FORMS:
                    raise ValueError(f"hostinsn form {form!r} is not one of {', '.join(HostInsn.FORMS)}")
                unit.host_insns[name] = HostInsn(asm.encode().decode("unicode_escape"), form, int(bits, 0))
            elif word == "deadat" and not unit.blocks:
                pc, *names = rest.split()
                if not names:
                    raise ValueError("deadat needs a pc and at least one global")
                unit.dead_at[int(pc, 0)] = frozenset(names)
            elif word == "block":
                block = unit.new_block(int(rest, 0))
            elif block is None:
                raise ValueError(f"unexpected {word!r} before the first block")
            else:
                block.ops.append(p.op(line))
        except IRError:
            raise
        except (ValueError, KeyError, IndexError) as e:
            raise IRError(str(e), line=no) from None
    if unit is None:
        raise IRError("empty text: no `unit` line")
    unit.next_temp = max(p.temps, default=-1) + 1
    return unit


def structure(unit: Unit) -> tuple:
    """A hashable, comparable picture of a unit: equal iff the units are the same IR.

    Float constants appear as their bits, so NaN == NaN and 0.0 != -0.0 here.
    """
    def val(v: Value):
        if isinstance(v, Temp):
            return ("t", v.id, v.ty.name)
        if v.ty.is_float:
            return ("c", _UNPACK_Q(_PACK_D(v.value))[0], v.ty.name)
        return ("c", v.value, v.ty.name)

    def const(x):
        return tuple(x) if isinstance(x, list) else x

    return (
        unit.isa,
        tuple((g.name, g.ty.name, g.offset) for g in unit.globals.values()),
        tuple((pc, tuple(sorted(names))) for pc, names in sorted(unit.dead_at.items()) if names),
        tuple(
            (b.pc, tuple((op.name, tuple(val(t) for t in op.outs), tuple(val(v) for v in op.ins),
                          tuple(const(c) for c in op.consts)) for op in b.ops))
            for b in unit.blocks
        ),
    )
