"""The IR verifier: is a unit well formed? Derived from the op table plus per-family typing.

    >>> verify(unit)          # returns None or raises IRError("block 0x401000 op 3 `...`: why")

Checked: arity and constant attributes against OPS (a call's against its registered helper),
SSA over the whole unit (each temp defined once, before any use, in block order), the typing
rules of each op family, constants in range, and that every block ends with exactly one
terminator and nothing after it.
"""

from __future__ import annotations

import ctypes
import math
import re

from .core import F32, F64, I1, I32, I64, I128, Const, Op, Temp, Ty, Unit
from .errors import IRError
from .helpers import HELPERS
from .ops import CONDS, EXIT_KINDS, FCONDS, OPS, F
from .text import format_op

__all__ = ["IRError", "verify", "FROUND_MODES", "LANES"]

FROUND_MODES = ("nearest", "floor", "ceil", "trunc")
LANES = (8, 16, 32, 64)
_NAME = re.compile(r"[A-Za-z_][\w.]*$")

# Op families by typing rule (every op of OPS is in exactly one; checked at import).
_SAME_INT_BIN = {"add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "rotl", "rotr",
                 "udiv", "urem", "sdiv", "srem"}
_SAME_INT_UN = {"neg", "not", "clz", "ctz", "popcnt", "bswap"}
_SAME_FLOAT_BIN = {"fadd", "fsub", "fmul", "fdiv"}
_SAME_FLOAT_UN = {"fsqrt", "fneg", "fabs", "fround"}
_LANE_BIN = {"vadd", "vsub", "vcmpeq", "vcmpgts", "vminu", "vmaxu", "vmins", "vmaxs", "vshuf"}
_LANE_UN = {"vshli", "vshri", "vsari"}
_OTHER = {"mov", "parity", "zext", "sext", "trunc", "bitcast", "setcond", "select", "fcmp", "fext",
          "ftrunc", "sitofp", "uitofp", "fptosi", "vmsb", "get", "put", "ld", "st", "insn",
          "exit_if", "exit", "exit_ind", "call"}
_FAMILIES = (_SAME_INT_BIN, _SAME_INT_UN, _SAME_FLOAT_BIN, _SAME_FLOAT_UN, _LANE_BIN, _LANE_UN, _OTHER)
assert sorted(n for f in _FAMILIES for n in f) == sorted(OPS), "verify.py: op families out of date"


_TERMS = frozenset(n for n, d in OPS.items() if d.flags & F.TERM)


class _Bad(Exception):
    """A rule broken by the op being checked; verify() adds where."""


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_const(v: Const) -> None:
    if not isinstance(v.ty, Ty):
        raise _Bad(f"constant {v!r} has no type")
    if v.ty.is_float:
        if not isinstance(v.value, float):
            raise _Bad(f"float constant {v!r} is not a Python float")
        if v.ty == F32 and not math.isnan(v.value) and not math.isinf(v.value):
            if ctypes.c_float(v.value).value != v.value:
                raise _Bad(f"f32 constant {v!r} is not single precision")
    else:
        if not (_is_int(v.value) and 0 <= v.value <= v.ty.mask):
            raise _Bad(f"integer constant {v!r} is not an unsigned {v.ty.bits}-bit pattern")


def _int(t: Ty, what: str) -> None:
    if t.is_float:
        raise _Bad(f"{what} must be an integer type, not {t.name}")


def _check_types(op: Op, unit: Unit) -> None:
    n = op.name
    ins = [v.ty for v in op.ins]
    out = op.outs[0].ty if op.outs else None
    if n in _SAME_INT_BIN:
        _int(ins[0], "operand")
        if not (ins[0] == ins[1] == out):
            raise _Bad(f"{n} needs equal types, got {ins[0]}, {ins[1]} -> {out}")
    elif n in _SAME_INT_UN:
        _int(ins[0], "operand")
        if ins[0] != out:
            raise _Bad(f"{n} needs equal types, got {ins[0]} -> {out}")
        if n == "bswap":
            if out.bits % 16 != 0:
                raise _Bad(f"bswap needs a width multiple of 16, got {out}")
    elif n in _SAME_FLOAT_BIN:
        if not (ins[0] in (F32, F64) and ins[0] == ins[1] == out):
            raise _Bad(f"{n} needs equal float types, got {ins[0]}, {ins[1]} -> {out}")
    elif n in _SAME_FLOAT_UN:
        if not (ins[0] in (F32, F64) and ins[0] == out):
            raise _Bad(f"{n} needs equal float types, got {ins[0]} -> {out}")
    elif n in _LANE_BIN:
        if not (ins[0] == ins[1] == out == I128):
            raise _Bad(f"{n} works on i128, got {ins[0]}, {ins[1]} -> {out}")
    elif n in _LANE_UN:
        if not (ins[0] == out == I128):
            raise _Bad(f"{n} works on i128, got {ins[0]} -> {out}")
    elif n == "mov":
        if ins[0] != out:
            raise _Bad(f"mov needs equal types, got {ins[0]} -> {out}")
    elif n == "parity":
        _int(ins[0], "operand")
        if out != I1:
            raise _Bad("parity returns i1")
    elif n in ("zext", "sext", "trunc"):
        _int(ins[0], "operand")
        _int(out, "result")
        if n == "trunc":
            if out.bits > ins[0].bits:
                raise _Bad(f"trunc must not widen ({ins[0]} -> {out})")
        else:
            if out.bits < ins[0].bits:
                raise _Bad(f"{n} must not narrow ({ins[0]} -> {out})")
    elif n == "bitcast":
        if ins[0].bits != out.bits:
            raise _Bad(f"bitcast needs equal sizes ({ins[0]} -> {out})")
    elif n == "setcond":
        _int(ins[0], "operand")
        if ins[0] != ins[1]:
            raise _Bad(f"setcond needs equal types, got {ins[0]}, {ins[1]}")
        if out != I1:
            raise _Bad("setcond returns i1")
    elif n == "select":
        if ins[0] != I1:
            raise _Bad(f"select's condition must be i1, got {ins[0]}")
        if not (ins[1] == ins[2] == out):
            raise _Bad(f"select needs equal types, got {ins[1]}, {ins[2]} -> {out}")
    elif n == "fcmp":
        if not (ins[0] in (F32, F64) and ins[0] == ins[1]):
            raise _Bad(f"fcmp needs equal float types, got {ins}")
        if out != I1:
            raise _Bad("fcmp returns i1")
    elif n == "fext":
        if not (ins[0] == F32 and out == F64):
            raise _Bad(f"fext is f32 -> f64, got {ins[0]} -> {out}")
    elif n == "ftrunc":
        if not (ins[0] == F64 and out == F32):
            raise _Bad(f"ftrunc is f64 -> f32, got {ins[0]} -> {out}")
    elif n in ("sitofp", "uitofp"):
        _int(ins[0], "operand")
        if out not in (F32, F64):
            raise _Bad(f"{n} returns a float type, got {out}")
    elif n == "fptosi":
        if ins[0] not in (F32, F64):
            raise _Bad(f"fptosi takes a float type, got {ins[0]}")
        _int(out, "result")
    elif n == "vmsb":
        if not (ins[0] == I128 and out == I32):
            raise _Bad(f"vmsb is i128 -> i32, got {ins[0]} -> {out}")
    elif n in ("get", "put"):
        g = unit.globals.get(op.consts[0])
        if g is None:
            raise _Bad(f"global {op.consts[0]!r} is not declared by the unit")
        t = out if n == "get" else ins[0]
        if t != g.ty:
            raise _Bad(f"{n} {g.name} has type {g.ty}, got {t}")
    elif n == "ld":
        if ins[0] != I64:
            raise _Bad(f"ld's address must be i64, got {ins[0]}")
        if out == I1:
            raise _Bad("ld cannot load an i1")
    elif n == "st":
        if ins[0] != I64:
            raise _Bad(f"st's address must be i64, got {ins[0]}")
        if ins[1] == I1:
            raise _Bad("st cannot store an i1")
    elif n == "exit_if":
        if ins[0] != I1:
            raise _Bad(f"exit_if's condition must be i1, got {ins[0]}")
    elif n == "exit_ind":
        if ins[0] != I64:
            raise _Bad(f"exit_ind's target must be i64, got {ins[0]}")
    elif n == "call":
        h = HELPERS.get(op.consts[0])
        if h is not None:  # unregistered helpers (e.g. parsed in a worker) are taken as written
            if tuple(ins) != h.args:
                raise _Bad(f"call {h.name} takes {h.args}, got {tuple(ins)}")
            if not (tuple(t.ty for t in op.outs) == h.rets):
                raise _Bad(f"call {h.name} returns {h.rets}, got {tuple(t.ty for t in op.outs)}")


def _check_attrs(op: Op) -> None:
    d = OPS[op.name]
    if not isinstance(op.consts, tuple):
        raise _Bad("consts must be a tuple")
    if len(op.consts) != len(d.consts):
        raise _Bad(f"{op.name} takes {len(d.consts)} constant attribute(s) {d.consts}, got {len(op.consts)}")
    lane = None
    for name, x in zip(d.consts, op.consts):
        if name == "cond":
            allowed = FCONDS if op.name == "fcmp" else CONDS
            if x not in allowed:
                raise _Bad(f"condition {x!r} is not one of {allowed}")
        elif name == "kind":
            if x not in EXIT_KINDS:
                raise _Bad(f"exit kind {x!r} is not one of {EXIT_KINDS}")
        elif name == "mode":
            if x not in FROUND_MODES:
                raise _Bad(f"rounding mode {x!r} is not one of {FROUND_MODES}")
        elif name in ("reg", "helper"):
            if not (isinstance(x, str) and _NAME.match(x) is not None):
                raise _Bad(f"{name} {x!r} is not a name")
        elif name == "pc":
            if not (_is_int(x) and 0 <= x < 1 << 64):
                raise _Bad(f"pc {x!r} is not a 64-bit address")
        elif name == "len":
            if not (_is_int(x) and 0 < x < 64):
                raise _Bad(f"instruction length {x!r} out of range")
        elif name == "lane":
            if not (_is_int(x) and x in LANES):
                raise _Bad(f"lane width {x!r} is not one of {LANES}")
            lane = x
        elif name == "count":
            if not (_is_int(x) and x >= 0):
                raise _Bad(f"shift count {x!r} is not a non-negative int")
        elif name == "sel":
            n = 128 // lane if lane else 0
            if not (isinstance(x, (tuple, list)) and len(x) == n
                    and all(_is_int(i) and 0 <= i < 2 * n for i in x)):
                raise _Bad(f"sel {x!r} must list {n} lane indexes in [0, {2 * n})")
        else:  # an attribute added to OPS without a rule here
            raise _Bad(f"verify.py has no rule for constant attribute {name!r}")


def _check_op(op: Op, unit: Unit, defined: dict[int, Temp]) -> None:
    d = OPS.get(op.name)
    if d is None:
        raise _Bad(f"unknown op {op.name!r}")
    if not (isinstance(op.ins, tuple) and isinstance(op.outs, tuple)):
        raise _Bad("ins and outs must be tuples")
    if d.n_in >= 0:
        if len(op.ins) != d.n_in:
            raise _Bad(f"{op.name} takes {d.n_in} input(s), got {len(op.ins)}")
    if d.n_out >= 0:
        if len(op.outs) != d.n_out:
            raise _Bad(f"{op.name} defines {d.n_out} output(s), got {len(op.outs)}")
    _check_attrs(op)
    for v in op.ins:
        if isinstance(v, Temp):
            t = defined.get(v.id)
            if t is None:
                raise _Bad(f"%{v.id} is used before it is defined")
            if t.ty != v.ty:
                raise _Bad(f"%{v.id} is used as {v.ty} but defined as {t.ty}")
        else:
            if not isinstance(v, Const):
                raise _Bad(f"input {v!r} is neither a Temp nor a Const")
            _check_const(v)
    _check_types(op, unit)
    for t in op.outs:
        if not isinstance(t, Temp):
            raise _Bad(f"output {t!r} is not a Temp")
        if t.id in defined:
            raise _Bad(f"%{t.id} is defined twice")
        if not (0 <= t.id < unit.next_temp):
            raise _Bad(f"%{t.id} is beyond the unit's next_temp {unit.next_temp}")
        defined[t.id] = t


def verify(unit: Unit) -> None:
    """Raise IRError at the first malformed op (or block/global); return None if the unit is valid."""
    if not unit.blocks:
        raise IRError("unit has no blocks")
    for name, g in unit.globals.items():
        if g.name != name or g.ty not in (I64, I128) or g.offset % 8:
            raise IRError(f"global {name} is malformed: {g}")
        if unit.layout is not None and (name not in unit.layout or unit.layout[name] != g):
            raise IRError(f"global {name} does not match the layout")
    for pc, names in unit.dead_at.items():
        if not 0 <= pc < 1 << 64 or (unit.layout is not None and any(n not in unit.layout for n in names)):
            raise IRError(f"dead_at 0x{pc:x} names what is no global of the layout: {sorted(names)}")
    defined: dict[int, Temp] = {}
    for b in unit.blocks:
        if not b.ops:
            raise IRError("empty block: it must end with a terminator", block_pc=b.pc)
        last = len(b.ops) - 1
        for i, op in enumerate(b.ops):
            try:
                _check_op(op, unit, defined)
                is_term = op.name in _TERMS
                if is_term != (i == last):
                    raise _Bad("nothing may follow a terminator" if is_term
                               else "the block must end with a terminator")
            except _Bad as e:
                raise IRError(str(e), block_pc=b.pc, index=i, op_text=_safe_text(op)) from None


def _safe_text(op: Op) -> str:
    try:
        return format_op(op)
    except Exception:  # the op may be too malformed to print
        return repr(op)
