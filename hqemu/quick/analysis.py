"""IR analyses the quick tier's generator runs on a unit before emitting code.

    >>> ops = value_number(list(unit.ops()))      # CSE, and gets of known globals forwarded
    >>> keep = needed(ops, fallthrough(unit))     # which ops to generate
    >>> dem = demands(ops, keep)                  # which temps may stay unreduced

Each works on the straight line of ops the generator sees and never changes the unit (ops
whose inputs change are copied).
"""

from __future__ import annotations

import struct

from hqemu.ir import HELPERS, OPS, Const, F, Op, Temp, Unit, Value

# op properties by name (OpDef's Flag arithmetic is slow enough to show in compile times)
PURE = frozenset(n for n, d in OPS.items() if d.pure)
COMM = frozenset(n for n, d in OPS.items() if d.flags & F.COMM)
TERM = frozenset(n for n, d in OPS.items() if d.flags & F.TERM)
EXACT = -1  # a demand: the use needs the value itself, reduced to [0, 2**w)


def fallthrough(unit: Unit) -> set[Op]:
    """Final `exit jump` ops that target the next block of the unit (blocks laid out in order):
    they fall through instead of returning."""
    out = set()
    for b, nxt in zip(unit.blocks, unit.blocks[1:]):
        last = b.ops[-1] if b.ops else None
        if last is not None and last.name == "exit" and tuple(last.consts) == ("jump", nxt.pc):
            out.add(last)
    return out


def value_number(ops: list[Op]) -> list[Op]:
    """Drop a pure op that repeats an earlier one (same op, inputs and attributes), and a get
    of a global whose value is known; their uses take the earlier value. Ops are copied when
    their inputs change: the unit is not touched."""
    subst: dict[int, Value] = {}
    seen: dict[tuple, Temp] = {}
    cur: dict[str, Value] = {}  # global -> its current value, while known
    out: list[Op] = []
    for op in ops:
        name = op.name
        keys = []  # inputs as hashable keys: a temp by id; a constant by type and bits
        changed = False
        for x in op.ins:
            if x.__class__ is Temp:
                if x.id in subst:
                    changed = True
                    x = subst[x.id]
            if x.__class__ is Temp:
                keys.append(x.id)
            elif x.ty.is_float:
                keys.append((x.ty.name, struct.pack("<d", x.value)))  # -0.0 != 0.0; NaN == itself
            else:
                keys.append((x.ty.name, x.value))
        if changed:
            op = Op(name, op.outs, tuple(subst.get(x.id, x) if x.__class__ is Temp else x for x in op.ins),
                    op.consts)
        if name == "get":
            reg = op.consts[0]
            if reg in cur:  # a global read again is the value it holds
                subst[op.outs[0].id] = cur[reg]
                continue
            cur[reg] = op.outs[0]
        elif name == "put":
            cur[op.consts[0]] = op.ins[0]
        elif name == "call":
            if HELPERS[op.consts[0]].writes_state:
                cur.clear()
        elif name in PURE and len(op.outs) == 1:
            if name in COMM:
                keys.sort(key=repr)
            try:
                key = (name, op.outs[0].ty.name, tuple(keys),
                       tuple(tuple(c) if isinstance(c, list) else c for c in op.consts))
                prev = seen.get(key)
            except TypeError:  # an unhashable attribute: leave the op alone
                key, prev = None, None
            if prev is not None:
                subst[op.outs[0].id] = prev
                continue
            if key is not None:
                seen[key] = op.outs[0]
        out.append(op)
    return out


def needed(ops: list[Op], fallthrough: set[Op]) -> list[bool]:
    """Which ops must be generated: effects, exits, puts, and pure ops whose results are used.

    Mirrors the generator's view of globals: a put's value is used only if some exit or helper
    stores it before it is overwritten, or a later get reads it.
    """
    cur: dict[str, Value] = {}
    pending: dict[str, int] = {}
    flushed: set[int] = set()
    get_src: dict[int, Value] = {}
    for i, op in enumerate(ops):
        n = op.name
        if n == "get":
            name = op.consts[0]
            if name in cur:
                get_src[i] = cur[name]
            else:
                cur[name] = op.outs[0]
        elif n == "put":
            cur[op.consts[0]] = op.ins[0]
            pending[op.consts[0]] = i
        elif n == "exit_if":
            flushed.update(pending.values())
        elif n in ("exit", "exit_ind") and op not in fallthrough:
            flushed.update(pending.values())
            pending.clear()
        elif n == "call":
            sig = HELPERS[op.consts[0]]
            if sig.reads_state or sig.writes_state:
                flushed.update(pending.values())
                pending.clear()
            if sig.writes_state:
                cur.clear()
    live: set[int] = set()
    keep = [False] * len(ops)

    def use(*vals: Value) -> None:
        live.update(x.id for x in vals if isinstance(x, Temp))

    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        n = op.name
        if n == "put":  # always generated: it moves no data, but the generator tracks it
            keep[i] = True
            if i in flushed:
                use(*op.ins)
        elif n == "get" and i in get_src:
            if op.outs[0].id in live:
                keep[i] = True
                use(get_src[i])
        elif n in PURE or (n == "call" and HELPERS[op.consts[0]].pure):
            if any(t.id in live for t in op.outs):
                keep[i] = True
                use(*op.ins)
        else:
            keep[i] = True
            use(*op.ins)
    return keep


_LOW_BITS_OPS = frozenset({"add", "sub", "neg", "not", "and", "or", "xor"})


def demands(ops: list[Op], keep: list[bool]) -> dict[int, int]:
    """For each integer temp, what its uses need: EXACT, or only its low d bits (then any
    congruent value modulo 2**d will do). Demanded bits, as in LLVM, for the ops whose
    templates can leave a result unreduced or reduce an unreduced input."""
    dem: dict[int, int] = {}

    def need(x: Value, d: int) -> None:
        if isinstance(x, Temp) and not x.ty.is_float:
            cur = dem.get(x.id, 0)
            dem[x.id] = EXACT if EXACT in (cur, d) else max(cur, min(d, x.ty.bits))

    for i in range(len(ops) - 1, -1, -1):
        if not keep[i]:
            continue
        op = ops[i]
        n, ins = op.name, op.ins
        out = op.outs[0] if len(op.outs) == 1 and not op.outs[0].ty.is_float else None
        if out is None or n not in _LOW_BITS_OPS | {"shl", "trunc", "zext", "mov", "parity"}:
            for x in ins:
                need(x, EXACT)
            continue
        d = dem.get(out.id, 0)
        low = out.ty.bits if d == EXACT else d  # an exact result is reduced by the op itself
        if n in _LOW_BITS_OPS:
            c = next((x for x in ins if isinstance(x, Const)), None) if n == "and" else None
            for x in ins:
                need(x, min(low, c.value.bit_length()) if c is not None else low)
        elif n == "shl":
            a, b = ins
            need(a, max(low - b.value, 0) if isinstance(b, Const) else EXACT)
            need(b, EXACT)
        elif n == "trunc":
            need(ins[0], min(low, out.ty.bits))
        elif n == "zext":  # the bits above the input's width must really be zero
            need(ins[0], EXACT if d == EXACT or d > ins[0].ty.bits else d)
        elif n == "mov":
            need(ins[0], d)
        else:  # parity reads the low byte
            need(ins[0], 8)
    return dem


def loopable(unit: Unit, ops: list[Op]) -> bool:
    """A one-block unit with a jump back to its own head and no helper calls (a helper may
    read state at any time, which loop-carried locals would hide from it)."""
    if len(unit.blocks) != 1:
        return False
    back = any(op.name in ("exit_if", "exit") and tuple(op.consts) == ("jump", unit.pc) for op in ops)
    return back and not any(op.name == "call" for op in ops)
