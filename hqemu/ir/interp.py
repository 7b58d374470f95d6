"""The reference interpreter: the IR's meaning, written to be obviously correct, not fast.

It is the oracle the quick tier's generated code and the LLVM lowering are compared with,
and constant folding (passes.fold) evaluates pure ops through eval_op.

    >>> kind, pc = run_block(unit, env)    # env.state: memoryview 'Q'; env.mem.load/store
    >>> eval_op(op, (3, 4))                # (7,) for `add` on any integer type

Every op has a handler op_<name>(x, op, *input_values) returning its output value (None
without outputs, a tuple for a multi-output call); an assertion at import checks that OPS
and the handlers agree. x is the running block's context (None inside eval_op).

Where the op table says "undefined", the interpreter still answers without crashing: shifts
by >= width give what Python's shifts give (0, or the sign for sar), INT_MIN / -1 wraps,
fptosi of NaN or out-of-range gives the minimum signed value. Only integer division by zero
raises (ZeroDivisionError); a frontend guards it with an exit before the division.
NaN results of arithmetic are the host's (sign and payload are not part of the IR's meaning),
but moving bits never changes them: bitcast, ld/st, fneg and fabs keep every NaN bit, f32
included (struct would quiet a signalling f32 NaN; f32_bits/f32_from_bits do not).
"""

from __future__ import annotations

import ctypes
import math
import struct
from typing import Any

from .core import F32, F64, Op, Temp, Ty, Unit
from .errors import IRError
from .helpers import IMPLS
from .ops import OPS

_PACK_D, _UNPACK_D = struct.Struct("<d").pack, struct.Struct("<d").unpack
_PACK_Q, _UNPACK_Q = struct.Struct("<Q").pack, struct.Struct("<Q").unpack
_PACK_F, _UNPACK_F = struct.Struct("<f").pack, struct.Struct("<f").unpack
_PACK_I, _UNPACK_I = struct.Struct("<I").pack, struct.Struct("<I").unpack

_SIGN64 = 1 << 63
_QUIET64 = 1 << 51  # the quiet bit of a double NaN; also the f32 quiet bit once widened (22 + 29)
INF = math.inf
DEFAULT_NAN = INF - INF  # what the host FPU makes of an invalid operation (x86: negative quiet NaN)


# --- float bits ------------------------------------------------------------------------------
def f64_bits(x: float) -> int:
    return _UNPACK_Q(_PACK_D(x))[0]


def f64_from_bits(b: int) -> float:
    return _UNPACK_D(_PACK_Q(b))[0]


def f32_bits(x: float) -> int:
    """Bits of an f32 value held in a Python float; NaN payloads move as the hardware moves them."""
    if x != x:
        d = f64_bits(x)
        return (d >> 32) & 0x80000000 | 0x7F800000 | (d >> 29) & 0x7FFFFF
    return _UNPACK_I(_PACK_F(x))[0]


def f32_from_bits(b: int) -> float:
    """The Python float holding f32 bits b, a signalling NaN staying signalling."""
    if b & 0x7F800000 == 0x7F800000 and b & 0x7FFFFF:
        return f64_from_bits((b & 0x80000000) << 32 | 0x7FF << 52 | (b & 0x7FFFFF) << 29)
    return _UNPACK_F(_PACK_I(b))[0]


def quiet(x: float) -> float:
    """x with its quiet bit set if it is a NaN (what an arithmetic op does to a NaN operand)."""
    return f64_from_bits(f64_bits(x) | _QUIET64) if x != x else x


def round_f32(x: float) -> float:
    """The f32 nearest to x (ties to even, overflow to infinity); a NaN keeps its top payload bits."""
    if x != x:
        d = f64_bits(x) | _QUIET64
        return f64_from_bits(d & ~((1 << 29) - 1))
    return ctypes.c_float(x).value


def int_to_f32(n: int) -> float:
    """Round an integer of any size to f32 once (float(n) first could round twice)."""
    if -(1 << 53) <= n <= 1 << 53:
        return round_f32(float(n))  # exact in a double, so one rounding
    m = abs(n)
    shift = m.bit_length() - 24
    q, r = divmod(m, 1 << shift)
    half = 1 << (shift - 1)
    if r > half or (r == half and q & 1):
        q += 1
    return round_f32(math.copysign(float(q << shift), n))  # q << shift is exact; may overflow to inf


def _float_of(ty: Ty, bits: int) -> float:
    return f32_from_bits(bits) if ty == F32 else f64_from_bits(bits)


def _bits_of(ty: Ty, x: float) -> int:
    return f32_bits(x) if ty == F32 else f64_bits(x)


def _rnd(ty: Ty, x: float) -> float:
    return round_f32(x) if ty == F32 else x


# --- integer helpers -------------------------------------------------------------------------
def signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def _w(op: Op) -> int:
    return op.outs[0].ty.bits


def _m(op: Op) -> int:
    return op.outs[0].ty.mask


def _in_bits(op: Op, i: int = 0) -> int:
    return op.ins[i].ty.bits


# --- moves and integer arithmetic ------------------------------------------------------------
def op_mov(x, op, a): return a
def op_add(x, op, a, b): return (a + b) & _m(op)
def op_sub(x, op, a, b): return (a - b) & _m(op)
def op_mul(x, op, a, b): return (a * b) & _m(op)
def op_neg(x, op, a): return -a & _m(op)
def op_and(x, op, a, b): return a & b
def op_or(x, op, a, b): return a | b
def op_xor(x, op, a, b): return a ^ b
def op_not(x, op, a): return ~a & _m(op)
def op_shl(x, op, a, b): return (a << b) & _m(op) if b < _w(op) else 0  # a << 2**64 would not end
def op_shr(x, op, a, b): return a >> b
def op_sar(x, op, a, b): return (signed(a, _w(op)) >> b) & _m(op)


def op_rotl(x, op, a, b):
    w = _w(op)
    r = b % w
    return ((a << r) | (a >> (w - r))) & _m(op)


def op_rotr(x, op, a, b):
    w = _w(op)
    r = b % w
    return ((a >> r) | (a << (w - r))) & _m(op)


def op_udiv(x, op, a, b): return a // b
def op_urem(x, op, a, b): return a % b


def _sdivrem(op: Op, a: int, b: int) -> tuple[int, int]:
    w = _w(op)
    sa, sb = signed(a, w), signed(b, w)
    if sb == 0:
        raise ZeroDivisionError("sdiv/srem by zero")
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return q, sa - sb * q  # C semantics: quotient toward zero, remainder has a's sign


def op_sdiv(x, op, a, b): return _sdivrem(op, a, b)[0] & _m(op)
def op_srem(x, op, a, b): return _sdivrem(op, a, b)[1] & _m(op)
def op_clz(x, op, a): return _w(op) - a.bit_length()
def op_ctz(x, op, a): return _w(op) if a == 0 else (a & -a).bit_length() - 1
def op_popcnt(x, op, a): return bin(a).count("1")


def op_bswap(x, op, a):
    n = _w(op) // 8
    return int.from_bytes(a.to_bytes(n, "little"), "big")


def op_parity(x, op, a): return 1 - bin(a & 0xFF).count("1") % 2


# --- width changes ---------------------------------------------------------------------------
def op_zext(x, op, a): return a
def op_sext(x, op, a): return signed(a, _in_bits(op)) & _m(op)
def op_trunc(x, op, a): return a & _m(op)


def op_bitcast(x, op, a):
    src, dst = op.ins[0].ty, op.outs[0].ty
    bits = _bits_of(src, a) if src.is_float else a
    return _float_of(dst, bits) if dst.is_float else bits


# --- comparisons and selection ---------------------------------------------------------------
def _icmp(cond: str, a: int, b: int, w: int) -> bool:
    if cond in ("lt", "le", "gt", "ge"):
        a, b = signed(a, w), signed(b, w)
        cond = cond + "u"
    return {"eq": a == b, "ne": a != b, "ltu": a < b, "leu": a <= b, "gtu": a > b, "geu": a >= b}[cond]


def op_setcond(x, op, a, b): return int(_icmp(op.consts[0], a, b, _in_bits(op)))
def op_select(x, op, c, b, d): return b if c else d


# --- floating point --------------------------------------------------------------------------
def op_fadd(x, op, a, b): return _rnd(op.outs[0].ty, a + b)
def op_fsub(x, op, a, b): return _rnd(op.outs[0].ty, a - b)
def op_fmul(x, op, a, b): return _rnd(op.outs[0].ty, a * b)


def op_fdiv(x, op, a, b):
    if b == 0.0:  # Python raises where IEEE answers
        if a != a:
            r = quiet(a)
        elif a == 0.0:
            r = DEFAULT_NAN
        else:
            r = math.copysign(INF, math.copysign(1.0, a) * math.copysign(1.0, b))
    else:
        r = a / b
    return _rnd(op.outs[0].ty, r)


def op_fsqrt(x, op, a):
    if a != a:
        return _rnd(op.outs[0].ty, quiet(a))
    if a < 0.0:
        return _rnd(op.outs[0].ty, DEFAULT_NAN)
    return _rnd(op.outs[0].ty, math.sqrt(a))


def op_fneg(x, op, a): return f64_from_bits(f64_bits(a) ^ _SIGN64)
def op_fabs(x, op, a): return f64_from_bits(f64_bits(a) & ~_SIGN64)


def _fcmp(cond: str, a: float, b: float) -> bool:
    unordered = a != a or b != b
    if cond == "ord":
        return not unordered
    if cond == "uno":
        return unordered
    rel = {"eq": a == b, "ne": a != b and not unordered, "lt": a < b, "le": a <= b, "gt": a > b,
           "ge": a >= b}[cond[1:]]
    return (not unordered and rel) if cond[0] == "o" else (unordered or rel)


def op_fcmp(x, op, a, b): return int(_fcmp(op.consts[0], a, b))
def op_fext(x, op, a): return quiet(a)
def op_ftrunc(x, op, a): return round_f32(a)


def _int_to_float(ty: Ty, n: int) -> float:
    return int_to_f32(n) if ty == F32 else float(n)  # float(int) rounds once, to nearest even


def op_sitofp(x, op, a): return _int_to_float(op.outs[0].ty, signed(a, _in_bits(op)))
def op_uitofp(x, op, a): return _int_to_float(op.outs[0].ty, a)


def op_fptosi(x, op, a):
    w = _w(op)
    lo = 1 << (w - 1)
    if math.isfinite(a):
        n = math.trunc(a)
        if -lo <= n < lo:
            return n & _m(op)
    return lo  # x86's "integer indefinite"; the IR leaves it undefined


_ROUND = {"nearest": round, "floor": math.floor, "ceil": math.ceil, "trunc": math.trunc}


def op_fround(x, op, a):
    if not math.isfinite(a):
        return quiet(a)
    # round() on a float rounds half to even; copysign keeps -0.0 for -0.4 and the like
    return math.copysign(float(_ROUND[op.consts[0]](a)), a)


# --- 128-bit lanes ---------------------------------------------------------------------------
def lanes(v: int, lane: int) -> list[int]:
    m = (1 << lane) - 1
    return [(v >> (i * lane)) & m for i in range(128 // lane)]


def join(ls: list[int], lane: int) -> int:
    m = (1 << lane) - 1
    return sum((x & m) << (i * lane) for i, x in enumerate(ls))


def _lanewise(op: Op, a: int, b: int, f) -> int:
    lane = op.consts[0]
    return join([f(p, q, lane) for p, q in zip(lanes(a, lane), lanes(b, lane))], lane)


def op_vadd(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: p + q)
def op_vsub(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: p - q)
def op_vcmpeq(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: -1 if p == q else 0)
def op_vcmpgts(x, op, a, b):
    return _lanewise(op, a, b, lambda p, q, w: -1 if signed(p, w) > signed(q, w) else 0)


def op_vminu(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: min(p, q))
def op_vmaxu(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: max(p, q))
def op_vmins(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: min(signed(p, w), signed(q, w)))
def op_vmaxs(x, op, a, b): return _lanewise(op, a, b, lambda p, q, w: max(signed(p, w), signed(q, w)))


def op_vmsb(x, op, a):
    lane = op.consts[0]
    return sum((p >> (lane - 1)) << i for i, p in enumerate(lanes(a, lane)))


def op_vshli(x, op, a):
    lane, n = op.consts
    return join([p << n if n < lane else 0 for p in lanes(a, lane)], lane)


def op_vshri(x, op, a):
    lane, n = op.consts
    return join([p >> n for p in lanes(a, lane)], lane)


def op_vsari(x, op, a):
    lane, n = op.consts
    return join([signed(p, lane) >> min(n, lane - 1) for p in lanes(a, lane)], lane)


def op_vshuf(x, op, a, b):
    lane, sel = op.consts
    src = lanes(a, lane) + lanes(b, lane)
    return join([src[i] for i in sel], lane)


# --- state, memory, control ------------------------------------------------------------------
class _Exec:
    """What a running block sees: the unit (for its globals), the env, the exit taken."""

    def __init__(self, unit: Unit, env: Any):
        self.unit = unit
        self.env = env
        self.exit: tuple[str, int] | None = None


def op_get(x: _Exec, op):
    g = x.unit.globals[op.consts[0]]
    i, st = g.offset >> 3, x.env.state
    return st[i] | st[i + 1] << 64 if g.ty.bits == 128 else st[i]


def op_put(x: _Exec, op, a):
    g = x.unit.globals[op.consts[0]]
    i, st = g.offset >> 3, x.env.state
    st[i] = a & 0xFFFFFFFFFFFFFFFF
    if g.ty.bits == 128:
        st[i + 1] = a >> 64


def _load(mem, addr: int, n: int) -> int:
    if n == 16:  # as two aligned-size halves, low first: the slow path needs no 16-byte case
        return mem.load(addr, 8) | mem.load((addr + 8) & 0xFFFFFFFFFFFFFFFF, 8) << 64
    return mem.load(addr, n)


def op_ld(x: _Exec, op, a):
    ty = op.outs[0].ty
    v = _load(x.env.mem, a, ty.bits // 8)
    return _float_of(ty, v) if ty.is_float else v


def op_st(x: _Exec, op, a, b):
    ty = op.ins[1].ty
    v = _bits_of(ty, b) if ty.is_float else b
    mem = x.env.mem
    if ty.bits == 128:
        mem.store(a, 8, v & 0xFFFFFFFFFFFFFFFF)
        mem.store((a + 8) & 0xFFFFFFFFFFFFFFFF, 8, v >> 64)
    else:
        mem.store(a, ty.bits // 8, v)


def op_insn(x, op): return None


def op_exit_if(x: _Exec, op, c):
    if c:
        x.exit = op.consts


def op_exit(x: _Exec, op):
    x.exit = op.consts


def op_exit_ind(x: _Exec, op, a):
    x.exit = ("jump", a)


def op_call(x: _Exec, op, *args):
    r = IMPLS[op.consts[0]](x.env, *args)
    n = len(op.outs)
    if n == 0:
        return None
    if n == 1:
        return r[0] if isinstance(r, tuple) else r
    return tuple(r)


HANDLERS = {name: globals()["op_" + name] for name in OPS if "op_" + name in globals()}
assert set(HANDLERS) == set(OPS), f"interp.py: ops without a handler: {sorted(set(OPS) - set(HANDLERS))}"

_EFFECT = frozenset(n for n, d in OPS.items() if not d.pure or n == "get")


def eval_op(op: Op, values) -> tuple:
    """Evaluate a pure op on input values; (value,) for its one output. Raises
    ZeroDivisionError for an integer division by zero (callers folding constants skip it)."""
    if op.name in _EFFECT:
        raise ValueError(f"eval_op: {op.name} is not a pure op")
    return (HANDLERS[op.name](None, op, *values),)


def _check_out(t: Temp, v) -> None:
    if t.ty.is_float:
        ok = isinstance(v, float) and (t.ty == F64 or v != v or round_f32(v) == v)
    else:
        ok = isinstance(v, int) and 0 <= v <= t.ty.mask
    if not ok:
        raise IRError(f"interp: %{t.id}:{t.ty.name} got {v!r}")


def run_block(unit: Unit, env: Any, max_blocks: int = 1_000_000) -> tuple[str, int]:
    """Run unit from its first block; return the exit taken as (kind, guest pc).

    In a unit of several blocks (a trace), a `jump` exit to the pc of one of its blocks
    continues in that block; a one-block unit always returns at its exit.
    """
    x = _Exec(unit, env)
    vals: dict[int, Any] = {}
    by_pc = {b.pc: b for b in unit.blocks} if len(unit.blocks) > 1 else {}
    block = unit.blocks[0]
    for _ in range(max_blocks):
        for op in block.ops:
            args = [vals[v.id] if isinstance(v, Temp) else v.value for v in op.ins]
            r = HANDLERS[op.name](x, op, *args)
            if op.outs:
                rs = (r,) if len(op.outs) == 1 else r
                for t, v in zip(op.outs, rs, strict=True):
                    _check_out(t, v)
                    vals[t.id] = v
            if x.exit is not None:
                kind, pc = x.exit
                nxt = by_pc.get(pc) if kind == "jump" else None
                if nxt is None:
                    return kind, pc
                x.exit, block = None, nxt
                break
        else:
            raise IRError("block ended without an exit", block_pc=block.pc)
    raise IRError(f"more than {max_blocks} blocks run: an endless loop in the unit?")
