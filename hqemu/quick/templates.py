"""The quick tier's code templates: one per IR op, found by name, checked against OPS.

    >>> TEMPLATES["add"](g, op)      # emits `t9 = (t3 + t4) & 0xffffffffffffffff` into g

A template reads its inputs as atoms (g.v), emits lines through the Emitter and records what
it knows of its result (an alias, a bit-length bound, a 0/1 flag, an unreduced value).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hqemu.ir import F32, F64, HELPERS, IMPLS, OPS, Const, Op

from .emitter import M64, Emitter

Template = Callable[[Emitter, Op], None]
TEMPLATES: dict[str, Template] = {}


def _template(*names: str):
    def reg(fn: Template) -> Template:
        for n in names:
            TEMPLATES[n] = fn
        return fn
    return reg


def _expr(fmt: str) -> Template:
    """A template assigning one expression. Fields: a b c (inputs), m w (output mask and width),
    sb (sign bit of the first input)."""

    def emit(g: Emitter, op: Op) -> None:
        out_ty, in_ty = op.outs[0].ty, op.ins[0].ty
        fields = dict(zip("abc", (g.v(x) for x in op.ins)), m=hex(out_ty.mask), w=out_ty.bits,
                      sb=hex(1 << (in_ty.bits - 1)))
        g.assign(op, fmt.format(**fields))

    return emit


def _alias(g: Emitter, op: Op) -> None:
    g.alias_to(op, op.ins[0])


def _identity(g: Emitter, op: Op) -> None:
    """An op that returns its first input (x - 0, x | 0, x << 0): an alias, unless the input is
    unreduced and this result must not be."""
    a = op.ins[0]
    if g.exact(a) or g.loose_ok(op):
        _alias(g, op)
    else:
        g.result(op, f"{g.v(a)} & {hex(op.outs[0].ty.mask)}", op.outs[0].ty.bits)


TEMPLATES.update({
    "mov": _alias,
    "udiv": _expr("{a} // {b}"),
    "sdiv": _expr("SDIV({a}, {b}, {w})"),
    "srem": _expr("SREM({a}, {b}, {w})"),
    "ctz": _expr("(({a} & -{a}).bit_length() - 1 if {a} else {w})"),
    "fneg": _expr("-{a}"),
    "fabs": _expr("FABS({a})"),
    "fext": _expr("({a} if {a} == {a} else QUIET({a}))"),  # widening quiets a NaN
    "ftrunc": _expr("F32({a})"),
})

# Integer templates track a bound on each result's bit length (g.k): a mask is generated only
# where the value may not fit, so 32-bit code's trunc/zext chains cost nothing. A result whose
# uses only need its low bits (analysis.demands) may stay unreduced ("loose"): (a + (b << 3)) & m
# instead of (a + ((b << 3) & m)) & m.
MAX_LOOSE_BITS = 136  # beyond this an unreduced value is reduced anyway: big ints are slow


def _arith(g: Emitter, op: Op, expr: str, k: int, exact_in: bool) -> None:
    """Assign expr, whose magnitude is below 2**k and which is the exact result if exact_in and
    k <= w; otherwise reduce it modulo 2**w, unless its uses allow it to stay loose."""
    w = op.outs[0].ty.bits
    if exact_in and k <= w:
        g.result(op, expr, k)
    elif g.loose_ok(op) and k <= MAX_LOOSE_BITS:
        g.loose_result(op, expr, max(k, w + 1))
    else:
        g.result(op, f"({expr}) & {hex(op.outs[0].ty.mask)}", w)


@_template("add")
def _add(g: Emitter, op: Op) -> None:
    a, b = op.ins
    _arith(g, op, f"{g.v(a)} + {g.v(b)}", max(g.k(a), g.k(b)) + 1, g.exact(a) and g.exact(b))


@_template("sub")
def _sub(g: Emitter, op: Op) -> None:
    a, b = op.ins
    if isinstance(b, Const) and b.value == 0:
        _identity(g, op)
    else:  # may go negative: exact only once reduced
        _arith(g, op, f"{g.v(a)} - {g.v(b)}", max(g.k(a), g.k(b)) + 1, False)


@_template("mul")
def _mul(g: Emitter, op: Op) -> None:
    a, b = op.ins  # exact: demands() keeps products of unreduced values from growing without end
    _arith(g, op, f"{g.v(a)} * {g.v(b)}", g.k(a) + g.k(b), True)


@_template("neg")
def _neg(g: Emitter, op: Op) -> None:
    a = op.ins[0]
    _arith(g, op, f"-{g.v(a)}", g.k(a) + 1, False)


@_template("not")
def _not(g: Emitter, op: Op) -> None:
    a, w = op.ins[0], op.outs[0].ty.bits
    _arith(g, op, f"{g.v(a)} ^ {hex(op.outs[0].ty.mask)}", max(g.k(a), w) + (0 if g.exact(a) else 1),
           g.exact(a))


@_template("and")
def _and(g: Emitter, op: Op) -> None:
    a, b = op.ins
    if isinstance(a, Const):
        a, b = b, a
    if isinstance(b, Const) and g.exact(a) and b.value | ((1 << g.k(a)) - 1) == b.value:
        g.alias_to(op, a)  # keeps every bit a may have
        return
    exact = [g.k(x) for x in (a, b) if g.exact(x)]
    if exact:  # anding with a value in [0, 2**k) gives one, whatever the other operand holds
        g.result(op, f"{g.v(a)} & {g.v(b)}", min(exact))
    else:
        _arith(g, op, f"{g.v(a)} & {g.v(b)}", max(g.k(a), g.k(b)) + 1, False)


@_template("or", "xor")
def _or_xor(g: Emitter, op: Op) -> None:
    a, b = op.ins
    if isinstance(b, Const) and b.value == 0:
        _identity(g, op)
        return
    exact = g.exact(a) and g.exact(b)
    _arith(g, op, f"{g.v(a)} {'|' if op.name == 'or' else '^'} {g.v(b)}",
           max(g.k(a), g.k(b)) + (0 if exact else 1), exact)


@_template("shl")
def _shl(g: Emitter, op: Op) -> None:
    a, b = op.ins
    w = op.outs[0].ty.bits
    if isinstance(b, Const):
        if b.value >= w:
            g.result(op, "0", 0)
        elif b.value == 0:
            _identity(g, op)
        else:
            _arith(g, op, f"{g.v(a)} << {b.value}", g.k(a) + b.value, g.exact(a))
    else:  # a count >= w is undefined; a huge Python shift would not end, so answer 0
        g.result(op, f"({g.v(a)} << {g.v(b)}) & {hex(op.outs[0].ty.mask)} if {g.v(b)} < {w} else 0", w)


@_template("shr", "sar")
def _shr(g: Emitter, op: Op) -> None:
    a, b = op.ins
    w, ka = op.outs[0].ty.bits, g.k(a)
    s = b.value if isinstance(b, Const) else 0
    if s == 0 and isinstance(b, Const):
        _alias(g, op)
    elif op.name == "shr" or ka < w:  # with the sign bit known clear, sar is shr
        g.result(op, f"{g.v(a)} >> {g.v(b)}", ka - s)
    else:
        sb = hex(1 << (w - 1))
        g.result(op, f"((({g.v(a)} ^ {sb}) - {sb}) >> {g.v(b)}) & {hex(op.outs[0].ty.mask)}", w)


@_template("urem")
def _urem(g: Emitter, op: Op) -> None:
    a, b = op.ins
    g.result(op, f"{g.v(a)} % {g.v(b)}", min(g.k(a), g.k(b)))


@_template("clz", "popcnt")
def _count(g: Emitter, op: Op) -> None:
    a, w = op.ins[0], op.outs[0].ty.bits
    expr = f"{w} - ({g.v(a)}).bit_length()" if op.name == "clz" else f"({g.v(a)}).bit_count()"
    g.result(op, expr, w.bit_length())


@_template("parity")
def _parity(g: Emitter, op: Op) -> None:
    a = op.ins[0]
    g.result(op, f"PAR[{g.v(a)}]" if g.exact(a) and g.k(a) <= 8 else f"PAR[{g.v(a)} & 255]", 1)


@_template("select")
def _select(g: Emitter, op: Op) -> None:
    c, a, b = op.ins
    g.assign(op, f"({g.v(a)} if {g.v(c)} else {g.v(b)})")
    if not op.outs[0].ty.is_float and max(g.k(a), g.k(b)) < op.outs[0].ty.bits:
        g.kbits[op.outs[0].id] = max(g.k(a), g.k(b))


@_template("rotl", "rotr")
def _rot(g: Emitter, op: Op) -> None:
    a, b = op.ins
    w, m = op.outs[0].ty.bits, hex(op.outs[0].ty.mask)
    x = g.v(a)
    if isinstance(b, Const):
        s = b.value % w if op.name == "rotl" else (w - b.value % w) % w
        if s == 0:
            _alias(g, op)
        else:
            g.assign(op, f"(({x} << {s}) | ({x} >> {w - s})) & {m}")
        return
    r = f"r{op.outs[0].id}"
    g.line(f"{r} = {g.v(b)} % {w}")
    left, right = ("<<", ">>") if op.name == "rotl" else (">>", "<<")
    g.assign(op, f"(({x} {left} {r}) | ({x} {right} ({w} - {r}))) & {m}")


@_template("bswap")
def _bswap(g: Emitter, op: Op) -> None:
    x, w = g.v(op.ins[0]), op.outs[0].ty.bits
    if w == 16:
        g.assign(op, f"(({x} & 255) << 8) | ({x} >> 8)")
    else:
        g.assign(op, f"IFB(({x}).to_bytes({w // 8}, 'little'), 'big')")


@_template("zext", "trunc", "sext")
def _width(g: Emitter, op: Op) -> None:
    a = op.ins[0]
    wi, out, ka = a.ty.bits, op.outs[0].ty, g.k(a)
    if op.name == "zext" or wi == out.bits or (g.exact(a) and ka <= min(wi - 1, out.bits)):
        _alias(g, op)  # nothing to cut, or no sign bit to copy (an unreduced zext: see _demands)
    elif op.name == "trunc" and g.loose_ok(op):
        _alias(g, op)
        g.loose.add(op.outs[0].id)
    elif op.name == "trunc":
        g.result(op, f"{g.v(a)} & {hex(out.mask)}", out.bits)
    elif wi == 1:
        g.result(op, f"-{g.v(a)} & {hex(out.mask)}", out.bits)
    else:
        sb = hex(1 << (wi - 1))
        g.result(op, f"(({g.v(a)} ^ {sb}) - {sb}) & {hex(out.mask)}", out.bits)


_BITCASTS = {("i64", "f64"): "I2D", ("f64", "i64"): "D2I", ("i32", "f32"): "I2F", ("f32", "i32"): "F2I"}


@_template("bitcast")
def _bitcast(g: Emitter, op: Op) -> None:
    src, dst = op.ins[0].ty, op.outs[0].ty
    if src == dst:
        _alias(g, op)
    else:
        g.assign(op, f"{_BITCASTS[src.name, dst.name]}({g.v(op.ins[0])})")


_UCMP = {"eq": "==", "ne": "!=", "ltu": "<", "leu": "<=", "gtu": ">", "geu": ">="}
_SCMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@_template("setcond")
def _setcond(g: Emitter, op: Op) -> None:
    a, b = op.ins
    cond = op.consts[0]
    out = op.outs[0].id
    if cond in ("eq", "ne") and isinstance(b, Const) and b.value in (0, 1) and g.is_bool(a):
        if (cond == "ne") == (b.value == 0):  # a flag tested for being set is the flag
            _alias(g, op)
        elif g.v(a) in g.negation:  # not (not x) is x, for a 0/1 x
            g.alias[out] = g.negation[g.v(a)]
            g.kbits[out] = 1
        else:
            g.result(op, f"not {g.v(a)}", 1)
            g.negation[f"t{out}"] = g.v(a)
        return
    w = a.ty.bits
    if cond in _SCMP and g.k(a) < w and g.k(b) < w:  # both sign bits clear: signed is unsigned
        cond = {"lt": "ltu", "le": "leu", "gt": "gtu", "ge": "geu"}[cond]
    if cond in _UCMP:
        g.result(op, f"{g.v(a)} {_UCMP[cond]} {g.v(b)}", 1)
        return
    sb = 1 << (w - 1)
    if isinstance(b, Const) and b.value == 0 and cond in ("lt", "ge"):  # the sign flag's shape
        g.result(op, f"{g.v(a)} {'>=' if cond == 'lt' else '<'} {hex(sb)}", 1)
        return

    # signed order is the unsigned one, inverted when the signs differ: three small-int
    # compares, where flipping the sign bits of 64-bit values made two big ints (~2x slower)
    ua, ub, top = g.v(a), g.v(b), hex(sb)
    if isinstance(b, Const):
        differ = f"{'' if b.value < sb else 'not '}{ua} >= {top}"
    elif isinstance(a, Const):
        differ = f"{'' if a.value < sb else 'not '}{ub} >= {top}"
    else:
        differ = f"({ua} >= {top}) != ({ub} >= {top})"
    g.result(op, f"({ua} {_SCMP[cond]} {ub}) != ({differ})", 1)


# --- floats --------------------------------------------------------------------------------
def _round(op: Op, expr: str) -> str:
    """expr as a value of the op's float type: f32 results are rounded after each op (for
    + - * / sqrt, rounding the exact double result again is exact: 53 >= 2 * 24 + 2)."""
    return f"F32({expr})" if op.outs[0].ty is F32 else expr


@_template("fadd", "fsub", "fmul")
def _farith(g: Emitter, op: Op) -> None:
    sym = {"fadd": "+", "fsub": "-", "fmul": "*"}[op.name]
    g.assign(op, _round(op, f"{g.v(op.ins[0])} {sym} {g.v(op.ins[1])}"))


@_template("fdiv")
def _fdiv(g: Emitter, op: Op) -> None:
    a, b = g.v(op.ins[0]), g.v(op.ins[1])
    g.assign(op, _round(op, f"({a} / {b} if {b} else FDIV0({a}, {b}))"))


@_template("fsqrt")
def _fsqrt(g: Emitter, op: Op) -> None:
    a = g.v(op.ins[0])
    g.assign(op, _round(op, f"(SQRT({a}) if {a} >= 0.0 else FSQRT({a}))"))


# ordered compares are Python's own (False on NaN); unordered ones negate an ordered one
_FCMP = {
    "oeq": "{a} == {b}", "olt": "{a} < {b}", "ole": "{a} <= {b}", "ogt": "{a} > {b}", "oge": "{a} >= {b}",
    "one": "({a} < {b} or {a} > {b})", "ord": "({a} == {a} and {b} == {b})",
    "une": "{a} != {b}", "ueq": "not ({a} < {b} or {a} > {b})", "ult": "not {a} >= {b}",
    "ule": "not {a} > {b}", "ugt": "not {a} <= {b}", "uge": "not {a} < {b}",
    "uno": "({a} != {a} or {b} != {b})",
}


@_template("fcmp")
def _fcmp(g: Emitter, op: Op) -> None:
    g.result(op, "(" + _FCMP[op.consts[0]].format(a=g.v(op.ins[0]), b=g.v(op.ins[1])) + ")", 1)


@_template("sitofp", "uitofp")
def _itofp(g: Emitter, op: Op) -> None:
    a, out = op.ins[0], op.outs[0].ty
    wi = a.ty.bits
    x = g.v(a)
    if op.name == "sitofp":
        sb = hex(1 << (wi - 1))
        x = f"-{x}" if wi == 1 else f"(({x} ^ {sb}) - {sb})"
    if out is F64 or wi <= 24:  # CPython's int -> float is correctly rounded
        g.assign(op, f"FLOAT({x})")
    elif wi <= 53:  # exact as a double, so rounded once, to single
        g.assign(op, f"F32(FLOAT({x}))")
    else:
        g.assign(op, f"ITOF32({x})")


@_template("fptosi")
def _fptosi(g: Emitter, op: Op) -> None:
    a, out = g.v(op.ins[0]), op.outs[0].ty
    sb = 1 << (out.bits - 1)
    # float-vs-int comparisons are exact in Python; NaN fails both, inf fails one
    g.assign(op, f"(INT({a}) & {hex(out.mask)} if ({-sb - 1}) < {a} < {sb} else {hex(sb)})")


@_template("fround")
def _fround(g: Emitter, op: Op) -> None:
    g.assign(op, f"FROUND({g.v(op.ins[0])}, {op.consts[0]!r})")


# --- lanes ---------------------------------------------------------------------------------
@_template("vadd", "vsub", "vcmpeq", "vcmpgts", "vminu", "vmaxu", "vmins", "vmaxs")
def _vbin(g: Emitter, op: Op) -> None:
    g.assign(op, f"{op.name.upper()}({g.v(op.ins[0])}, {g.v(op.ins[1])}, {int(op.consts[0])})")


@_template("vmsb")
def _vmsb(g: Emitter, op: Op) -> None:
    g.assign(op, f"VMSB({g.v(op.ins[0])}, {int(op.consts[0])})")


@_template("vshli", "vshri", "vsari")
def _vshift(g: Emitter, op: Op) -> None:
    lane, count = (int(c) for c in op.consts)
    g.assign(op, f"{op.name.upper()}({g.v(op.ins[0])}, {lane}, {count})")


@_template("vshuf")
def _vshuf(g: Emitter, op: Op) -> None:
    lane, sel = int(op.consts[0]), tuple(int(i) for i in op.consts[1])
    g.assign(op, f"VSHUF({g.v(op.ins[0])}, {g.v(op.ins[1])}, {lane}, {sel!r})")


# --- state and memory ----------------------------------------------------------------------
@_template("get")
def _get(g: Emitter, op: Op) -> None:
    name = op.consts[0]
    if name in g.cur:
        g.alias[op.outs[0].id] = g.cur[name]
        return
    g.assign(op, g.load_global(name))
    g.cur[name] = f"t{op.outs[0].id}"


@_template("put")
def _put(g: Emitter, op: Op) -> None:
    name = op.consts[0]
    g.cur[name] = g.v(op.ins[0])
    g.dirty[name] = None


# type -> (fast path on M at address {a}, slow path through the checked GuestMemory)
_LOADS = {
    "i8": ("M[{a}]", "LD({a}, 1)"),
    "i16": ("U16(M, {a})[0]", "LD({a}, 2)"),
    "i32": ("U32(M, {a})[0]", "LD({a}, 4)"),
    "i64": ("U64(M, {a})[0]", "LD({a}, 8)"),
    # 16 bytes as two 8-byte halves, low first: the slow path needs no 16-byte case
    "i128": ("IFB(M[{a}:{a} + 16], 'little')", "LD({a}, 8) | (LD(({a} + 8) & " + hex(M64) + ", 8) << 64)"),
    "f32": ("I2F(U32(M, {a})[0])", "I2F(LD({a}, 4))"),  # not struct 'f': it quiets a signalling NaN
    "f64": ("UF64(M, {a})[0]", "I2D(LD({a}, 8))"),
}
_STORES = {
    "i8": ("M[{a}] = {v}", "ST({a}, 1, {v})"),
    "i16": ("P16(M, {a}, {v})", "ST({a}, 2, {v})"),
    "i32": ("P32(M, {a}, {v})", "ST({a}, 4, {v})"),
    "i64": ("P64(M, {a}, {v})", "ST({a}, 8, {v})"),
    "i128": ("M[{a}:{a} + 16] = ({v}).to_bytes(16, 'little')",
             "ST({a}, 8, {v} & " + hex(M64) + "); ST(({a} + 8) & " + hex(M64) + ", 8, {v} >> 64)"),
    "f32": ("P32(M, {a}, F2I({v}))", "ST({a}, 4, F2I({v}))"),
    "f64": ("PF64(M, {a}, {v})", "ST({a}, 8, D2I({v}))"),
}


@_template("ld")
def _ld(g: Emitter, op: Op) -> None:
    fast, slow = _LOADS[op.outs[0].ty.name]
    a = g.v(op.ins[0])
    g.bind("M")
    g.assign(op, f"{fast.format(a=a)} if FR[{a} >> 12] else {slow.format(a=a)}")


@_template("st")
def _st(g: Emitter, op: Op) -> None:
    fast, slow = _STORES[op.ins[1].ty.name]
    a, v = g.v(op.ins[0]), g.v(op.ins[1])
    g.bind("M")
    g.line(g.bind_used(f"if FW[{a} >> 12]: {fast.format(a=a, v=v)}"))
    # in loop mode a slow-path store (the only kind that can hit translated code) ends the loop
    g.line(g.bind_used(f"else: {slow.format(a=a, v=v)}" + ("; lim -= n; n = 0" if g.loop_iters else "")))


# --- control -------------------------------------------------------------------------------
@_template("insn")
def _insn(g: Emitter, op: Op) -> None:
    g.pc = op.consts[0]


@_template("exit_if")
def _exit_if(g: Emitter, op: Op) -> None:
    kind, pc = op.consts
    c = op.ins[0]
    if isinstance(c, Const) and not c.value:
        return
    g.line(f"if {g.v(c)}:")
    if g.is_back_edge(kind, pc):
        g.back_edge(1)
    else:
        g.leave(kind, pc, 1)


@_template("exit")
def _exit(g: Emitter, op: Op) -> None:
    if op in g.fallthrough:
        return
    if g.is_back_edge(*op.consts):
        g.back_edge(0)
    else:
        g.leave(*op.consts, 0)
    g.dirty.clear()


@_template("exit_ind")
def _exit_ind(g: Emitter, op: Op) -> None:
    g.leave("jump", 0, 0, target=g.v(op.ins[0]))
    g.dirty.clear()


@_template("call")
def _call(g: Emitter, op: Op) -> None:
    name = op.consts[0]
    sig = HELPERS[name]
    fn = g.bind_obj("H_" + re.sub(r"\W", "_", name) + "_", IMPLS[name])
    if sig.reads_state or sig.writes_state:
        g.flush(0)
        g.dirty.clear()
    args = ", ".join([g.bind("ENV")] + [g.v(x) for x in op.ins])
    outs = [f"t{t.id}" for t in op.outs]
    if not outs:
        g.line(f"{fn}({args})")
    elif len(outs) == 1:  # a helper may answer a 1-tuple for one result
        r = outs[0]
        g.line(f"{r} = {fn}({args})")
        g.line(f"if {r}.__class__ is tuple: {r} = {r}[0]")
    else:
        g.line(f"{', '.join(outs)}, = {fn}({args})")
    if sig.writes_state:
        g.cur.clear()


assert set(TEMPLATES) == set(OPS), f"quick tier templates out of sync with OPS: {set(TEMPLATES) ^ set(OPS)}"
