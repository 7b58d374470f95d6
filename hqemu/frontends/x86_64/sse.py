"""SSE/SSE2 lifters: xmm moves, packed integer and bitwise ops, and the lane toolkit fp.py shares.

An xmm register is one I128 global. Packed ops are table entries (PACKED: mnemonic -> how the
result lane vector is built from the destination and source values), mostly one IR lane op;
the few without a lane op (saturation, multiplies, pack, sad) are composed from lane ops or,
lane by lane, from scalar ops (map_lanes). A new packed instruction is one table line.

    >>> PACKED["paddw"](b, dst, src)        # -> vadd lane=16
    >>> lane(b, v, 32, 2)                   # the third 32-bit lane of v as an I32 temp

Legacy-SSE 128-bit memory operands must be 16-byte aligned except in the explicitly unaligned
moves; a misaligned one is a #GP, which Linux delivers as SIGSEGV, so those reads check it.
MMX forms (mm0-mm7 operands) are not implemented: they become SIGILL. maskmovdqu is a helper
(x86_maskmov) that stores only the selected bytes, as the hardware touches no others.
"""

from __future__ import annotations

from collections.abc import Callable

from capstone import x86_const as X

from hqemu.ir import I16, I32, I64, I128, Builder, Helper, Temp, Value, register

from .operands import Ctx, ea, ity, read_op, read_reg, write_op, write_reg
from .registry import lifter

ONES128 = (1 << 128) - 1


# --- the lane toolkit ------------------------------------------------------------------------

def rep(value: int, w: int) -> int:
    """value replicated into every w-bit lane of a 128-bit constant."""
    value &= (1 << w) - 1
    return sum(value << (i * w) for i in range(128 // w))


def k128(b: Builder, value: int) -> Value:
    return b.c(value, I128)


def lane(b: Builder, v: Value, w: int, i: int) -> Temp:
    """Lane i (w bits wide) of the I128 value v, as a w-bit temp."""
    if i:
        v = b.shr(v, k128(b, i * w))
    return b.trunc(v, ity(w))


def join(b: Builder, lanes: list[Value], w: int) -> Value:
    """The I128 value whose w-bit lanes are `lanes`, lane 0 first."""
    acc: Value | None = None
    for i, x in enumerate(lanes):
        x = b.zext(x, I128)
        if i:
            x = b.shl(x, k128(b, i * w))
        acc = x if acc is None else b.or_(acc, x)
    assert acc is not None
    return acc


def map_lanes(b: Builder, w: int, fn: Callable, *vs: Value, out_w: int | None = None) -> Value:
    """Apply fn(b, lane_of_v0, lane_of_v1, ...) to every w-bit lane; results are out_w wide."""
    n = 128 // w
    res = [fn(b, *(lane(b, v, w, i) for v in vs)) for i in range(n)]
    return join(b, res, out_w or w)


def insert_low(b: Builder, old: Value, v: Value, bits: int) -> Value:
    """old with its low `bits` replaced by v (a bits-wide value): the scalar-op merge."""
    kept = b.and_(old, k128(b, ONES128 ^ ((1 << bits) - 1)))
    return b.or_(kept, b.zext(v, I128))


def vshuf(b: Builder, w: int, x: Value, y: Value, sel: list[int]) -> Temp:
    """Lanes picked from x (0..n-1) and y (n..2n-1)."""
    return b.vop("vshuf", w, x, y, extra=(tuple(sel),))


def is_xmm(insn, op) -> bool:
    return op.type == X.X86_OP_REG and insn.reg_name(op.reg).startswith("xmm")


def has_xmm(insn) -> bool:
    """The SSE form of a mnemonic a string instruction shares (movsd, cmpsd)."""
    return any(is_xmm(insn, op) for op in insn.operands)


def uses_mmx(insn) -> bool:
    return any(op.type == X.X86_OP_REG and insn.reg_name(op.reg).startswith("mm")
               for op in insn.operands)


def sigill(ctx: Ctx) -> None:
    ctx.b.exit("sigill", ctx.pc)


def check_aligned(ctx: Ctx, addr: Value, n: int = 16) -> None:
    b = ctx.b
    mis = b.setcond("ne", b.and_(addr, b.c(n - 1, I64)), b.c(0, I64))
    b.exit_if(mis, "sigsegv", ctx.pc)


def xreg(ctx: Ctx, op) -> Temp:
    return read_reg(ctx, ctx.insn.reg_name(op.reg))


def xsrc(ctx: Ctx, op, bits: int = 128, aligned: bool = False) -> Value:
    """A source operand's low `bits` (an xmm register) or `bits` loaded from memory."""
    b = ctx.b
    if op.type == X.X86_OP_MEM:
        addr = ea(ctx, op)
        if aligned and bits == 128:
            check_aligned(ctx, addr)
        return b.ld(addr, ity(bits))
    if op.type == X.X86_OP_REG:
        name = ctx.insn.reg_name(op.reg)
        v = read_reg(ctx, name)
        if v.ty.bits > bits:
            v = b.trunc(v, ity(bits))
        elif v.ty.bits < bits:
            v = b.zext(v, ity(bits))
        return v
    return b.c(op.imm, ity(bits))


def xput(ctx: Ctx, op, v: Value) -> None:
    write_reg(ctx, ctx.insn.reg_name(op.reg), v)


def same_reg(ctx: Ctx) -> bool:
    o = ctx.insn.operands
    return len(o) == 2 and o[0].type == o[1].type == X.X86_OP_REG and o[0].reg == o[1].reg


def _mmx_guard(fn: Callable) -> Callable:
    def lift(ctx: Ctx) -> None:
        if uses_mmx(ctx.insn):
            sigill(ctx)
        else:
            fn(ctx)

    lift.__name__ = fn.__name__
    lift.__doc__ = fn.__doc__
    return lift


# --- moves -----------------------------------------------------------------------------------

ALIGNED_MOVES = {"movaps", "movapd", "movdqa", "movntdq", "movntps", "movntpd"}


@lifter("movaps", "movups", "movapd", "movupd", "movdqa", "movdqu", "movntdq", "movntps", "movntpd")
def lift_mov128(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    aligned = ctx.insn.mnemonic in ALIGNED_MOVES
    if dst.type == X.X86_OP_MEM:
        v = xreg(ctx, src)
        addr = ea(ctx, dst)
        if aligned:
            check_aligned(ctx, addr)
        ctx.b.st(addr, v)
    else:
        xput(ctx, dst, xsrc(ctx, src, 128, aligned))


@lifter("movd", "movq")
@_mmx_guard
def lift_movd(ctx: Ctx) -> None:
    """movd/movq between xmm, general registers and memory; writes to an xmm zero the rest."""
    b, insn = ctx.b, ctx.insn
    dst, src = insn.operands
    bits = 32 if insn.mnemonic == "movd" else 64
    if is_xmm(insn, dst):
        v = xsrc(ctx, src, bits) if src.type == X.X86_OP_MEM else b.trunc(read_op(ctx, src), ity(bits))
        xput(ctx, dst, b.zext(v, I128))
    else:
        write_op(ctx, dst, b.trunc(xreg(ctx, src), ity(bits)))


def _lift_movs(ctx: Ctx, bits: int) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    if dst.type == X.X86_OP_MEM:
        b.st(ea(ctx, dst), b.trunc(xreg(ctx, src), ity(bits)))
    elif src.type == X.X86_OP_MEM:  # the load form zeroes the upper part
        xput(ctx, dst, b.zext(xsrc(ctx, src, bits), I128))
    else:  # register to register merges
        xput(ctx, dst, insert_low(b, xreg(ctx, dst), xsrc(ctx, src, bits), bits))


@lifter("movss")
def lift_movss(ctx: Ctx) -> None:
    _lift_movs(ctx, 32)


@lifter("movsd", when=has_xmm)
def lift_movsd(ctx: Ctx) -> None:
    _lift_movs(ctx, 64)


@lifter("movlps", "movlpd", "movhps", "movhpd")
def lift_movlh(ctx: Ctx) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    high = ctx.insn.mnemonic in ("movhps", "movhpd")
    if dst.type == X.X86_OP_MEM:
        v = xreg(ctx, src)
        if high:
            v = b.shr(v, k128(b, 64))
        b.st(ea(ctx, dst), b.trunc(v, I64))
        return
    old = xreg(ctx, dst)
    m = xsrc(ctx, src, 64)
    if high:
        r = b.or_(b.and_(old, k128(b, (1 << 64) - 1)), b.shl(b.zext(m, I128), k128(b, 64)))
    else:
        r = insert_low(b, old, m, 64)
    xput(ctx, dst, r)


@lifter("movhlps", "movlhps")
def lift_movhl(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    a, s = xreg(ctx, dst), xreg(ctx, src)
    sel = [3, 1] if ctx.insn.mnemonic == "movhlps" else [0, 2]
    xput(ctx, dst, vshuf(ctx.b, 64, a, s, sel))


@lifter("movnti")
def lift_movnti(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    write_op(ctx, dst, read_op(ctx, src))


# --- packed integer and bitwise: the table -----------------------------------------------------

PackedFn = Callable[[Builder, Value, Value], Value]


def _lane_op(name: str, w: int) -> PackedFn:
    return lambda b, a, s: b.vop(name, w, a, s)


def _addus(b: Builder, w: int, a: Value, s: Value) -> Value:
    # a + min(s, ~a) never wraps and reaches all-ones exactly when a + s would
    return b.vop("vadd", w, a, b.vop("vminu", w, s, b.not_(a)))


def _subus(b: Builder, w: int, a: Value, s: Value) -> Value:
    return b.vop("vsub", w, a, b.vop("vminu", w, a, s))


def _sat_signed(b: Builder, w: int, a: Value, s: Value, sub: bool) -> Value:
    """Signed saturating a +/- s through the unsigned saturating forms on biased lanes."""
    bias = k128(b, rep(1 << (w - 1), w))
    x = b.xor(a, bias)
    neg_s = b.vop("vsub", w, k128(b, 0), s)
    zero = k128(b, 0)
    if sub:  # s > 0 moves down, s <= 0 moves up by -s
        m = b.vop("vcmpgts", w, s, zero)
        down, up = _subus(b, w, x, s), _addus(b, w, x, neg_s)
    else:  # s < 0 moves down by -s, s >= 0 moves up
        m = b.vop("vcmpgts", w, zero, s)
        down, up = _subus(b, w, x, neg_s), _addus(b, w, x, s)
    r = b.or_(b.and_(m, down), b.and_(b.not_(m), up))
    return b.xor(r, bias)


def _clamp_s(b: Builder, w: int, v: Value, lo: int, hi: int) -> Value:
    v = b.vop("vmaxs", w, v, k128(b, rep(lo, w)))
    return b.vop("vmins", w, v, k128(b, rep(hi, w)))


def _pack(w: int, lo: int, hi: int) -> PackedFn:
    """Saturate the w-bit lanes of both operands to [lo, hi] and keep their low halves."""
    n = 128 // w

    def fn(b: Builder, a: Value, s: Value) -> Value:
        ca, cs = _clamp_s(b, w, a, lo, hi), _clamp_s(b, w, s, lo, hi)
        return vshuf(b, w // 2, ca, cs, [2 * i for i in range(n)] + [2 * n + 2 * i for i in range(n)])

    return fn


def _unpack(w: int, high: bool) -> PackedFn:
    n = 128 // w
    base = n // 2 if high else 0
    sel = [x for i in range(n // 2) for x in (base + i, n + base + i)]
    return lambda b, a, s: vshuf(b, w, a, s, sel)


def _mul16(kind: str) -> PackedFn:
    def lane_mul(b: Builder, x: Value, y: Value) -> Value:
        if kind == "lo":
            return b.mul(x, y)
        ext = b.sext if kind == "hs" else b.zext
        p = b.mul(ext(x, I32), ext(y, I32))
        return b.trunc(b.shr(p, b.c(16, I32)), I16)

    return lambda b, a, s: map_lanes(b, 16, lane_mul, a, s)


def _pmuludq(b: Builder, a: Value, s: Value) -> Value:
    lo32 = (1 << 32) - 1
    return map_lanes(b, 64, lambda b, x, y: b.mul(b.and_(x, b.c(lo32, I64)), b.and_(y, b.c(lo32, I64))), a, s)


def _pmaddwd(b: Builder, a: Value, s: Value) -> Value:
    def dot(b: Builder, x: Value, y: Value) -> Value:
        xl, yl = b.sext(b.trunc(x, I16), I32), b.sext(b.trunc(y, I16), I32)
        xh = b.sext(b.trunc(b.shr(x, b.c(16, I32)), I16), I32)
        yh = b.sext(b.trunc(b.shr(y, b.c(16, I32)), I16), I32)
        return b.add(b.mul(xl, yl), b.mul(xh, yh))  # wraps for 0x8000^2 * 2, as hardware does

    return map_lanes(b, 32, dot, a, s)


def _psadbw(b: Builder, a: Value, s: Value) -> Value:
    d = b.vop("vsub", 8, b.vop("vmaxu", 8, a, s), b.vop("vminu", 8, a, s))
    # sum the 8 byte differences of each quadword by halving folds; sums never cross lanes
    for w in (8, 16, 32):
        m = k128(b, rep((1 << w) - 1, 2 * w))
        d = b.add(b.and_(d, m), b.and_(b.shr(d, k128(b, w)), m))
    return d


def _pavg(w: int) -> PackedFn:
    # (a + s + 1) >> 1 without the carry bit: (a | s) - ((a ^ s) >> 1)
    return lambda b, a, s: b.vop("vsub", w, b.or_(a, s), b.vop("vshri", w, b.xor(a, s), extra=(1,)))


PACKED: dict[str, PackedFn] = {
    "pand": lambda b, a, s: b.and_(a, s),
    "por": lambda b, a, s: b.or_(a, s),
    "pxor": lambda b, a, s: b.xor(a, s),
    "pandn": lambda b, a, s: b.and_(b.not_(a), s),
    "paddusb": lambda b, a, s: _addus(b, 8, a, s),
    "paddusw": lambda b, a, s: _addus(b, 16, a, s),
    "psubusb": lambda b, a, s: _subus(b, 8, a, s),
    "psubusw": lambda b, a, s: _subus(b, 16, a, s),
    "paddsb": lambda b, a, s: _sat_signed(b, 8, a, s, False),
    "paddsw": lambda b, a, s: _sat_signed(b, 16, a, s, False),
    "psubsb": lambda b, a, s: _sat_signed(b, 8, a, s, True),
    "psubsw": lambda b, a, s: _sat_signed(b, 16, a, s, True),
    "packuswb": _pack(16, 0, 255),
    "packsswb": _pack(16, -128, 127),
    "packssdw": _pack(32, -32768, 32767),
    "pmullw": _mul16("lo"),
    "pmulhw": _mul16("hs"),
    "pmulhuw": _mul16("hu"),
    "pmuludq": _pmuludq,
    "pmaddwd": _pmaddwd,
    "psadbw": _psadbw,
    "pavgb": _pavg(8),
    "pavgw": _pavg(16),
    "unpcklps": _unpack(32, False),
    "unpckhps": _unpack(32, True),
    "unpcklpd": _unpack(64, False),
    "unpckhpd": _unpack(64, True),
    # the float bitwise ops are the integer ones on other types
    "andps": lambda b, a, s: b.and_(a, s),
    "andpd": lambda b, a, s: b.and_(a, s),
    "orps": lambda b, a, s: b.or_(a, s),
    "orpd": lambda b, a, s: b.or_(a, s),
    "xorps": lambda b, a, s: b.xor(a, s),
    "xorpd": lambda b, a, s: b.xor(a, s),
    "andnps": lambda b, a, s: b.and_(b.not_(a), s),
    "andnpd": lambda b, a, s: b.and_(b.not_(a), s),
}
for _sfx, _w in (("b", 8), ("w", 16), ("d", 32), ("q", 64)):
    PACKED["padd" + _sfx] = _lane_op("vadd", _w)
    PACKED["psub" + _sfx] = _lane_op("vsub", _w)
    if _w < 64:
        PACKED["pcmpeq" + _sfx] = _lane_op("vcmpeq", _w)
        PACKED["pcmpgt" + _sfx] = _lane_op("vcmpgts", _w)
for _sfx, _w in (("bw", 8), ("wd", 16), ("dq", 32), ("qdq", 64)):
    PACKED["punpckl" + _sfx] = _unpack(_w, False)
    PACKED["punpckh" + _sfx] = _unpack(_w, True)
PACKED.update({"pminub": _lane_op("vminu", 8), "pmaxub": _lane_op("vmaxu", 8),
               "pminsw": _lane_op("vmins", 16), "pmaxsw": _lane_op("vmaxs", 16)})

# x op x with both operands the same register: a constant (the usual way to zero a register)
SAME_REG_CONST = {m: 0 for m in ("pxor", "xorps", "xorpd", "pandn", "andnps", "andnpd",
                                 "psubb", "psubw", "psubd", "psubq", "pcmpgtb", "pcmpgtw", "pcmpgtd")}
SAME_REG_CONST.update({m: ONES128 for m in ("pcmpeqb", "pcmpeqw", "pcmpeqd")})


@lifter(*PACKED)
@_mmx_guard
def lift_packed(ctx: Ctx) -> None:
    m = ctx.insn.mnemonic
    dst, src = ctx.insn.operands
    if m in SAME_REG_CONST and same_reg(ctx):
        xput(ctx, dst, k128(ctx.b, SAME_REG_CONST[m]))
        return
    a = xreg(ctx, dst)
    s = xsrc(ctx, src, 128, aligned=True)
    xput(ctx, dst, PACKED[m](ctx.b, a, s))


# --- shifts ------------------------------------------------------------------------------------

SHIFTS = {  # mnemonic -> (kind, lane width); kind l = left, r = logical right, a = arithmetic right
    "psllw": ("l", 16), "pslld": ("l", 32), "psllq": ("l", 64),
    "psrlw": ("r", 16), "psrld": ("r", 32), "psrlq": ("r", 64),
    "psraw": ("a", 16), "psrad": ("a", 32),
}


def _shift_var(b: Builder, kind: str, w: int, a: Value, count: Value) -> Value:
    """Lane shift by a run-time count (I64): shift the whole I128 and mask what crossed lanes."""
    lane_ones = (1 << w) - 1
    big = b.setcond("gtu", count, b.c(w - 1, I64))
    c = b.select(big, b.c(w - 1 if kind == "a" else 0, I64), count)
    c128 = b.zext(c, I128)
    if kind == "l":
        lane_mask = b.and_(b.shl(b.c(lane_ones, I64), c), b.c(lane_ones, I64))
        shifted = b.shl(a, c128)
    else:
        lane_mask = b.shr(b.c(lane_ones, I64), c)
        shifted = b.shr(a, c128)
    mask = b.mul(b.zext(lane_mask, I128), k128(b, rep(1, w)))
    r = b.and_(shifted, mask)
    if kind == "a":  # fill the vacated high bits of negative lanes
        neg = b.vop("vcmpgts", w, k128(b, 0), a)
        return b.or_(r, b.and_(neg, b.not_(mask)))
    return b.select(big, k128(b, 0), r)


@lifter(*SHIFTS)
@_mmx_guard
def lift_shift(ctx: Ctx) -> None:
    b = ctx.b
    kind, w = SHIFTS[ctx.insn.mnemonic]
    dst, src = ctx.insn.operands
    a = xreg(ctx, dst)
    if src.type == X.X86_OP_IMM:
        n = src.imm & 0xFF
        if kind == "a":
            r = b.vop("vsari", w, a, extra=(min(n, w - 1),))
        elif n >= w:
            r = k128(b, 0)
        else:
            r = b.vop("vshli" if kind == "l" else "vshri", w, a, extra=(n,))
    else:
        r = _shift_var(b, kind, w, a, xsrc(ctx, src, 64) if src.type == X.X86_OP_MEM
                       else b.trunc(xreg(ctx, src), I64))
    xput(ctx, dst, r)


@lifter("pslldq", "psrldq")
def lift_byteshift(ctx: Ctx) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    n = src.imm & 0xFF
    a = xreg(ctx, dst)
    if n > 15:
        r = k128(b, 0)
    elif n == 0:
        r = a
    else:
        r = (b.shl if ctx.insn.mnemonic == "pslldq" else b.shr)(a, k128(b, 8 * n))
    xput(ctx, dst, r)


# --- shuffles, inserts, extracts, masks ----------------------------------------------------------

@lifter("pshufd", "pshuflw", "pshufhw")
def lift_pshuf(ctx: Ctx) -> None:
    dst, src, imm = ctx.insn.operands
    s = xsrc(ctx, src, 128, aligned=True)
    pick = [(imm.imm >> (2 * i)) & 3 for i in range(4)]
    m = ctx.insn.mnemonic
    if m == "pshufd":
        r = vshuf(ctx.b, 32, s, s, pick)
    elif m == "pshuflw":
        r = vshuf(ctx.b, 16, s, s, pick + [4, 5, 6, 7])
    else:
        r = vshuf(ctx.b, 16, s, s, [0, 1, 2, 3] + [4 + p for p in pick])
    xput(ctx, dst, r)


@lifter("shufps", "shufpd")
def lift_shufp(ctx: Ctx) -> None:
    dst, src, imm = ctx.insn.operands
    a, s = xreg(ctx, dst), xsrc(ctx, src, 128, aligned=True)
    k = imm.imm
    if ctx.insn.mnemonic == "shufps":
        sel = [k & 3, (k >> 2) & 3, 4 + ((k >> 4) & 3), 4 + ((k >> 6) & 3)]
        xput(ctx, dst, vshuf(ctx.b, 32, a, s, sel))
    else:
        xput(ctx, dst, vshuf(ctx.b, 64, a, s, [k & 1, 2 + ((k >> 1) & 1)]))


@lifter("pinsrw")
@_mmx_guard
def lift_pinsrw(ctx: Ctx) -> None:
    b = ctx.b
    dst, src, imm = ctx.insn.operands
    i = imm.imm & 7
    v = xsrc(ctx, src, 16) if src.type == X.X86_OP_MEM else b.trunc(read_op(ctx, src), I16)
    old = xreg(ctx, dst)
    kept = b.and_(old, k128(b, ONES128 ^ (0xFFFF << (16 * i))))
    xput(ctx, dst, b.or_(kept, b.shl(b.zext(v, I128), k128(b, 16 * i))))


@lifter("pextrw")
@_mmx_guard
def lift_pextrw(ctx: Ctx) -> None:
    dst, src, imm = ctx.insn.operands
    if dst.type != X.X86_OP_REG:  # the SSE4.1 memory form
        sigill(ctx)
        return
    w = lane(ctx.b, xreg(ctx, src), 16, imm.imm & 7)
    write_op(ctx, dst, ctx.b.zext(w, ity(dst.size * 8)))


MSB_LANE = {"pmovmskb": 8, "movmskps": 32, "movmskpd": 64}


@lifter(*MSB_LANE)
@_mmx_guard
def lift_movmsk(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    m = ctx.b.vop("vmsb", MSB_LANE[ctx.insn.mnemonic], xreg(ctx, src), out=I32)
    write_op(ctx, dst, ctx.b.zext(m, ity(dst.size * 8)))


# --- maskmovdqu ------------------------------------------------------------------------------------

def maskmov(env, addr: int, data: int, mask: int) -> None:
    """x86_maskmov: store byte i of data at addr + i where byte i of mask has its top bit set;
    the other bytes are not accessed (they may be unmapped or code)."""
    for i in range(16):
        if mask >> (8 * i + 7) & 1:
            env.mem.store(addr + i, 1, data >> (8 * i) & 0xFF)


register(Helper("x86_maskmov", (I64, I128, I128), (), reads_mem=True, writes_mem=True,
                doc="maskmovdqu: addr, data, mask (bytes stored where the mask byte's top bit is set)"),
         maskmov)


@lifter("maskmovdqu")
@_mmx_guard
def lift_maskmovdqu(ctx: Ctx) -> None:
    """A byte-masked store of the first operand to [rdi] ([edi] with 0x67; fs/gs overrides)."""
    b, insn = ctx.b, ctx.insn
    src, mask = insn.operands
    addr = b.get("rdi")
    if insn.addr_size == 4:
        addr = b.zext(b.trunc(addr, I32), I64)
    seg = {0x64: "fs_base", 0x65: "gs_base"}.get(insn.prefix[1])
    if seg is not None:
        addr = b.add(addr, b.get(seg))
    b.call("x86_maskmov", addr, xreg(ctx, src), xreg(ctx, mask))


__all__ = ["PACKED", "SHIFTS", "rep", "k128", "lane", "join", "map_lanes", "insert_low", "vshuf",
           "is_xmm", "has_xmm", "uses_mmx", "sigill", "check_aligned", "xreg", "xsrc", "xput"]
