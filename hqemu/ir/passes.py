"""The cheap passes TCG runs on every block, each usable alone, all in place.

    >>> optimize(unit)           # forward_globals + fold in one walk, then dse, then dce
    >>> dce(fold(unit))          # or one at a time; each returns the unit

What they may do and may not (docs/ir.md, "Passes"):
- the guest state must stay exact at every exit that can be taken: a `put` is only dropped
  when a later `put` of the same global overwrites it with no exit, no state-reading call
  and no `get` of it in between;
- guest memory accesses are never removed or reordered (a load may fault), nor are calls,
  insn markers or exits; only pure ops whose results are unused are deleted;
- a `get` may reuse the value of an earlier `put` or `get` of the same global in the block,
  unless a call to a helper that writes state (or an unregistered helper) is in between.

Passes work per block, except substitution and liveness, which follow temps across the
blocks of a unit in order (SSA over the whole unit). They rewrite the unit's ops in place:
keep a copy (parse_unit(format_unit(unit), unit.layout)) if the original is still needed.
"""

from __future__ import annotations

from .core import Const, Op, Temp, Unit, Value
from .helpers import HELPERS
from .interp import eval_op
from .ops import OPS, F

_NO_FOLD = frozenset(n for n, d in OPS.items() if not d.pure or d.flags & F.STATE_R or d.n_in <= 0)
_REMOVABLE = frozenset(n for n, d in OPS.items() if d.pure and d.n_out > 0)
_SELF_TRUE = {"eq", "leu", "geu", "le", "ge"}  # setcond x, x holds for these
_SHIFTS = {"shl", "shr", "sar", "rotl", "rotr"}


def _call_reads_state(op: Op) -> bool:
    h = HELPERS.get(op.consts[0])
    return h is None or h.reads_state  # unknown helper: assume the worst


def _call_writes_state(op: Op) -> bool:
    h = HELPERS.get(op.consts[0])
    return h is None or h.writes_state


# ops after which written_first stops looking: those that may leave the block or read the state
_ENDS_WRITTEN_FIRST = frozenset({"exit", "exit_if", "exit_ind", "call"} |
                                {n for n, d in OPS.items() if d.flags & F.STATE_R and n != "get"})


def written_first(unit: Unit) -> frozenset[str]:
    """The globals the unit's first block writes before it reads them and before anything
    that may leave the block or read the state (an exit, a helper call): their values on entry
    are never used, so code jumping to the unit need not store them (Unit.dead_at)."""
    seen: set[str] = set()
    written: set[str] = set()
    for op in unit.blocks[0].ops if unit.blocks else ():
        n = op.name
        if n == "get":
            seen.add(op.consts[0])
        elif n == "put":
            name = op.consts[0]
            if name not in seen:
                written.add(name)
                seen.add(name)
        elif n in _ENDS_WRITTEN_FIRST:
            break
    return frozenset(written)


def _is(v: Value, x: int) -> bool:
    return isinstance(v, Const) and v.value == x


def _simplify(op: Op) -> Value | None:
    """A value equal to op's single output whatever its inputs, or None."""
    n, ins = op.name, op.ins
    if n == "mov":
        return ins[0]
    if n not in _NO_FOLD and all(isinstance(v, Const) for v in ins):
        try:
            (r,) = eval_op(op, [v.value for v in ins])
        except ArithmeticError:  # e.g. a guarded division by zero: leave it to run time
            return None
        return Const(r, op.outs[0].ty)
    ty = op.outs[0].ty if op.outs else None
    if n in ("zext", "sext", "trunc"):
        return ins[0] if ins[0].ty == ty else None
    if n == "select":
        c, b, d = ins
        if isinstance(c, Const):
            return b if c.value else d
        return b if b is d else None
    if n == "setcond" and ins[0] is ins[1] and isinstance(ins[0], Temp):
        return Const(int(op.consts[0] in _SELF_TRUE), ty)
    if len(ins) != 2 or ty.is_float:
        return None
    a, b = ins
    if n in ("add", "or", "xor"):
        if _is(b, 0):
            return a
        if _is(a, 0):
            return b
    if n in ("sub", "xor") and a is b and isinstance(a, Temp):
        return Const(0, ty)
    if n in ("and", "or") and a is b:
        return a
    if n == "sub" and _is(b, 0):
        return a
    if n == "and":
        for x, y in ((a, b), (b, a)):
            if _is(y, ty.mask):
                return x
            if _is(y, 0):
                return Const(0, ty)
    if n == "mul":
        for x, y in ((a, b), (b, a)):
            if _is(y, 1):
                return x
            if _is(y, 0):
                return Const(0, ty)
    if n in _SHIFTS and _is(b, 0):
        return a
    return None


def _forward(unit: Unit, fold: bool, globals_: bool) -> Unit:
    subst: dict[int, Value] = {}
    truncate_ok = len(unit.blocks) == 1  # in a trace, later blocks may use the dropped tail's temps
    for b in unit.blocks:
        known: dict[str, Value] = {}  # global -> its current value, while it is sure
        out: list[Op] = []
        for op in b.ops:
            if subst and any(isinstance(v, Temp) and v.id in subst for v in op.ins):
                op.ins = tuple(subst.get(v.id, v) if isinstance(v, Temp) else v for v in op.ins)
            n = op.name
            if globals_:
                if n == "get":
                    reg = op.consts[0]
                    v = known.get(reg)
                    if v is not None:
                        subst[op.outs[0].id] = v
                        continue
                    known[reg] = op.outs[0]
                elif n == "put":
                    known[op.consts[0]] = op.ins[0]
                elif n == "call" and _call_writes_state(op):
                    known.clear()
            if fold:
                if n == "exit_if" and isinstance(op.ins[0], Const):
                    if not op.ins[0].value:
                        continue
                    if truncate_ok:  # always taken: it is the block's end
                        out.append(Op("exit", (), (), op.consts))
                        break
                elif n == "exit_ind" and isinstance(op.ins[0], Const):
                    op = Op("exit", (), (), ("jump", op.ins[0].value))
                elif len(op.outs) == 1 and n not in ("get", "ld", "call"):
                    v = _simplify(op)
                    if v is not None:
                        subst[op.outs[0].id] = v
                        continue
            out.append(op)
        b.ops = out
    return unit


def fold(unit: Unit) -> Unit:
    """Constant folding, copy propagation (`mov`) and the safe algebraic identities."""
    return _forward(unit, True, False)


def forward_globals(unit: Unit) -> Unit:
    """Replace a `get` by the value of the last `put`/`get` of that global in the block."""
    return _forward(unit, False, True)


def dse(unit: Unit) -> Unit:
    """Drop a `put` that a later `put` of the same global overwrites before anyone can look."""
    for b in unit.blocks:
        dead: set[str] = set()  # globals written later in the block, unobserved until then
        keep: list[Op] = []
        for op in reversed(b.ops):
            n = op.name
            if n == "put":
                reg = op.consts[0]
                if reg in dead:
                    continue
                dead.add(reg)
            elif n == "get":
                dead.discard(op.consts[0])
            elif op.d.flags & F.EXIT or (n == "call" and _call_reads_state(op)):
                dead.clear()
            keep.append(op)
        keep.reverse()
        b.ops = keep
    return unit


def dce(unit: Unit) -> Unit:
    """Delete pure ops whose outputs are never used (loads, stores, calls and exits stay)."""
    used: set[int] = set()
    for b in reversed(unit.blocks):
        keep: list[Op] = []
        for op in reversed(b.ops):
            if op.name in _REMOVABLE and not any(t.id in used for t in op.outs):
                continue
            for v in op.ins:
                if isinstance(v, Temp):
                    used.add(v.id)
            keep.append(op)
        keep.reverse()
        b.ops = keep
    return unit


def optimize(unit: Unit) -> Unit:
    """All cheap passes, in the order that lets each feed the next."""
    _forward(unit, True, True)
    dse(unit)
    return dce(unit)
