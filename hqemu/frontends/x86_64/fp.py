"""SSE/SSE2 floating point lifters: scalar and packed arithmetic, compares, conversions, MXCSR.

Float lanes live in the I128 xmm values as bit patterns: a lane is extracted (trunc/shr),
bitcast to f32/f64, computed, bitcast back and inserted. Every arithmetic mnemonic comes from
two tables, FBINOPS (add sub mul div min max) x FORMATS (ss sd ps pd), so each new lane
operation is one line.

    >>> LIFTERS["addsd"](ctx)     # low f64 lane of dst = dst + src, upper lane kept

MXCSR (mxcsr.py): until the guest first writes MXCSR the lifters emit IR float ops, which round
to nearest-even with no DAZ/FTZ and no exception flags, as the hardware does under MXCSR's reset
value. From the first write on (ctx.fp_precise) every float instruction is a call of its host
instruction (hostsse.py) under the guest's MXCSR: rounding mode, DAZ, FTZ and the sticky
exception flags are the hardware's, and an exception the guest unmasked is a SIGFPE.
rcpss/rcpps/rsqrtss/rsqrtps always run on the host: their approximations are the CPU's own.

In the IR forms a NaN first operand is returned quieted, explicitly; a single NaN operand and
the default NaN of an invalid operation come from the host, which on an x86-64 host is the guest.
"""

from __future__ import annotations

from collections.abc import Callable

from hqemu.ir import F32, F64, I32, I64, I128, Builder, Temp, Ty, Value

from . import hostsse
from .mxcsr import switch_to_precise
from .operands import Ctx, ea, ity, read_op, write_op
from .registry import lifter
from .sse import has_xmm, insert_low, join, lane, map_lanes, xput, xreg, xsrc

DEFAULT_MXCSR = 0x1F80  # reset value: round to nearest, all exceptions masked, no DAZ/FTZ

# suffix -> (float type, lane width, scalar?)
FORMATS: dict[str, tuple[Ty, int, bool]] = {
    "ss": (F32, 32, True), "sd": (F64, 64, True), "ps": (F32, 32, False), "pd": (F64, 64, False),
}


def fbits(b: Builder, v: Value, fty: Ty) -> Temp:
    """The float whose bit pattern is the integer v."""
    return b.bitcast(v, fty)


def ibits(b: Builder, f: Value) -> Temp:
    return b.bitcast(f, ity(f.ty.bits))


def host_op(ctx: Ctx, name: str, a: Value, s: Value, track: bool = True) -> Temp:
    """The host instruction hostsse.OPS[name] on the destination a and the source s (I128, or
    narrower: zero-extended) under the guest's MXCSR; its flags go into mxcsr and an exception
    the guest unmasked exits with sigfpe. track=False: under the reset MXCSR, flags dropped."""
    b = ctx.b
    if s.ty != I128:
        s = b.zext(s, I128)
    if not track:
        return b.call(hostsse.helper_name(name), a, s, b.c(DEFAULT_MXCSR, I64))[0]
    r, m = b.call(hostsse.helper_name(name), a, s, b.get("mxcsr"))
    b.put("mxcsr", b.and_(m, b.c(0xFFFFFFFF, I64)))
    b.exit_if(b.setcond("gtu", m, b.c(0xFFFFFFFF, I64)), "sigfpe", ctx.pc)
    return r


def host_lane_op(ctx: Ctx, name: str, sfx: str, src_index: int = 1, track: bool = True) -> None:
    """dst = the host instruction on (dst, src): a scalar source is its low lane (or that many
    bytes of memory), a packed memory source must be aligned."""
    _, w, scalar = FORMATS[sfx]
    ops = ctx.insn.operands
    dst, src = ops[0], ops[src_index]
    a = xreg(ctx, dst)
    s = xsrc(ctx, src, w if scalar else 128, aligned=not scalar)
    xput(ctx, dst, host_op(ctx, name, a, s, track))


# An op takes the two lanes as integer bit patterns and returns the result's bit pattern, so that
# min/max can pass an operand through untouched (a signalling NaN survives) and arithmetic
# converts only where it computes.
LaneOp = Callable[[Builder, Value, Value, Ty], Value]


QUIET_BIT = {32: 1 << 22, 64: 1 << 51}


def _arith(name: str) -> LaneOp:
    # SSE returns the first operand, quieted, whenever it is a NaN. The IR leaves the choice
    # between two NaN operands to the host (CPython computes a * b as b * a, and optimizers may
    # commute), so that case is made explicit; a lone NaN second operand comes out quieted on
    # any IEEE host, and an invalid operation gives the host's default NaN (x86's on x86-64).
    def op(b: Builder, x: Value, y: Value, fty: Ty) -> Value:
        xf = fbits(b, x, fty)
        r = ibits(b, b.emit(name, (fty,), (xf, fbits(b, y, fty))).outs[0])
        return b.select(b.fcmp("uno", xf, xf), b.or_(x, b.c(QUIET_BIT[fty.bits], x.ty)), r)

    return op


def _minmax(cond: str) -> LaneOp:
    # x86: the first operand if it is strictly less (greater), else the second: a NaN in either
    # or two zeros of any signs give the second operand
    def op(b: Builder, x: Value, y: Value, fty: Ty) -> Value:
        return b.select(b.fcmp(cond, fbits(b, x, fty), fbits(b, y, fty)), x, y)

    return op


FBINOPS: dict[str, LaneOp] = {
    "add": _arith("fadd"), "sub": _arith("fsub"), "mul": _arith("fmul"), "div": _arith("fdiv"),
    "min": _minmax("olt"), "max": _minmax("ogt"),
}


def _sqrt(b: Builder, x: Value, y: Value, fty: Ty) -> Value:
    return ibits(b, b.fsqrt(fbits(b, y, fty)))


# cmpps/cmpss predicates 0-7 as fcmp conditions: eq lt le unord neq nlt nle ord
CMP_PREDS = ("oeq", "olt", "ole", "uno", "une", "uge", "ugt", "ord")
CMP_NAMES = ("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord")


def _cmp(pred: int) -> LaneOp:
    def op(b: Builder, x: Value, y: Value, fty: Ty) -> Value:
        c = b.fcmp(CMP_PREDS[pred & 7], fbits(b, x, fty), fbits(b, y, fty))
        return b.select(c, b.c(-1, x.ty), b.c(0, x.ty))

    return op


def apply_lane_op(ctx: Ctx, sfx: str, fn: LaneOp, src_index: int = 1) -> None:
    """dst = fn(dst, src) in the low lane (scalar: upper lanes kept) or in every lane (packed)."""
    fty, w, scalar = FORMATS[sfx]
    ops = ctx.insn.operands
    dst, src = ops[0], ops[src_index]
    b = ctx.b
    a = xreg(ctx, dst)
    if scalar:
        r = fn(b, b.trunc(a, ity(w)), xsrc(ctx, src, w), fty)
        xput(ctx, dst, insert_low(b, a, r, w))
    else:
        s = xsrc(ctx, src, 128, aligned=True)
        xput(ctx, dst, map_lanes(b, w, lambda b, x, y: fn(b, x, y, fty), a, s))


def _lift_fbin(ctx: Ctx) -> None:
    m = ctx.insn.mnemonic
    if ctx.fp_precise:
        host_lane_op(ctx, m, m[-2:])
    else:
        apply_lane_op(ctx, m[-2:], FBINOPS[m[:-2]])


for _op in FBINOPS:
    lifter(*(_op + s for s in FORMATS))(_lift_fbin)


@lifter("sqrtss", "sqrtsd", "sqrtps", "sqrtpd")
def lift_sqrt(ctx: Ctx) -> None:
    m = ctx.insn.mnemonic
    if ctx.fp_precise:
        host_lane_op(ctx, m, m[-2:])
    else:
        apply_lane_op(ctx, m[-2:], _sqrt)


@lifter("rcpss", "rcpps", "rsqrtss", "rsqrtps")
def lift_rcp(ctx: Ctx) -> None:
    """The CPU's own approximations (12 bits on every x86, the rest model-specific)."""
    m = ctx.insn.mnemonic
    host_lane_op(ctx, m, m[-2:], track=ctx.fp_precise)


def _lift_cmp(ctx: Ctx, pred: int) -> None:
    sfx = ctx.insn.mnemonic[-2:]
    if ctx.fp_precise:
        host_lane_op(ctx, f"cmp{pred & 7}{sfx}", sfx)
    else:
        apply_lane_op(ctx, sfx, _cmp(pred))


def _lift_cmp_named(ctx: Ctx) -> None:
    _lift_cmp(ctx, CMP_NAMES.index(ctx.insn.mnemonic[3:-2]))


lifter(*(f"cmp{n}{s}" for n in CMP_NAMES for s in FORMATS))(_lift_cmp_named)


def _lift_cmp_imm(ctx: Ctx) -> None:
    """cmpss/cmpsd/cmpps/cmppd with an immediate capstone did not name (bits 3-7 are ignored)."""
    _lift_cmp(ctx, ctx.insn.operands[2].imm & 7)


lifter("cmpss", "cmpps", "cmppd")(_lift_cmp_imm)
lifter("cmpsd", when=has_xmm)(_lift_cmp_imm)


@lifter("comiss", "comisd", "ucomiss", "ucomisd")
def lift_comis(ctx: Ctx) -> None:
    """ZF PF CF = 111 unordered, 000 greater, 001 less, 100 equal; OF SF AF cleared."""
    b = ctx.b
    fty, w, _ = FORMATS[ctx.insn.mnemonic[-2:]]
    dst, src = ctx.insn.operands
    if ctx.fp_precise:  # the host's rflags
        r = b.trunc(host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), xsrc(ctx, src, w)), I64)
        for flag, bit in (("cf", 0), ("pf", 2), ("af", 4), ("zf", 6), ("sf", 7), ("of", 11)):
            b.put(flag, b.and_(b.shr(r, b.c(bit, I64)), b.c(1, I64)))
        return
    x = fbits(b, b.trunc(xreg(ctx, dst), ity(w)), fty)
    y = fbits(b, xsrc(ctx, src, w), fty)
    for flag, cond in (("zf", "ueq"), ("pf", "uno"), ("cf", "ult")):
        b.put(flag, b.zext(b.fcmp(cond, x, y), I64))
    for flag in ("of", "sf", "af"):
        b.put(flag, b.c(0, I64))


# --- conversions -------------------------------------------------------------------------------

def to_int(b: Builder, x: Value, bits: int, truncate: bool) -> Value:
    """f32/f64 -> signed int of `bits`; NaN and out of range give the integer indefinite."""
    if x.ty == F32:
        x = b.fext(x, F64)  # exact, and f64 holds every threshold below exactly
    if not truncate:
        x = b.fround(x, "nearest")
    lim = 1 << (bits - 1)
    lo = -lim - 1
    # valid iff trunc(x) is in [-lim, lim): x > -lim - 1 when that bound is a double, else x >= -lim
    low_ok = b.fcmp("ogt", x, b.c(lo, F64)) if float(lo) == lo else b.fcmp("oge", x, b.c(-lim, F64))
    ok = b.and_(low_ok, b.fcmp("olt", x, b.c(lim, F64)))
    xs = b.select(ok, x, b.c(0.0, F64))  # fptosi of NaN/out of range is undefined: feed it 0
    return b.select(ok, b.fptosi(xs, ity(bits)), b.c(lim, ity(bits)))


@lifter("cvtsd2si", "cvtss2si", "cvttsd2si", "cvttss2si")
def lift_cvt2si(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.insn.mnemonic
    fty, w, _ = FORMATS["ss" if "ss2" in m else "sd"]
    dst, src = ctx.insn.operands
    if ctx.fp_precise:
        bits = dst.size * 8
        r = host_op(ctx, f"{m}{bits}", b.c(0, I128), xsrc(ctx, src, w))
        write_op(ctx, dst, b.trunc(r, ity(bits)))
        return
    x = fbits(b, xsrc(ctx, src, w), fty)
    write_op(ctx, dst, to_int(b, x, dst.size * 8, truncate=m.startswith("cvtt")))


@lifter("cvtsi2sd", "cvtsi2ss")
def lift_cvtsi2f(ctx: Ctx) -> None:
    b = ctx.b
    fty, w, _ = FORMATS[ctx.insn.mnemonic[-2:]]
    dst, src = ctx.insn.operands
    v = read_op(ctx, src)
    if ctx.fp_precise:
        xput(ctx, dst, host_op(ctx, f"{ctx.insn.mnemonic}{src.size * 8}", xreg(ctx, dst), v))
        return
    f = b.sitofp(v, fty)
    xput(ctx, dst, insert_low(b, xreg(ctx, dst), ibits(b, f), w))


@lifter("cvtsd2ss", "cvtss2sd")
def lift_cvt_f2f(ctx: Ctx) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    if ctx.fp_precise:
        w = 64 if ctx.insn.mnemonic == "cvtsd2ss" else 32
        xput(ctx, dst, host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), xsrc(ctx, src, w)))
        return
    if ctx.insn.mnemonic == "cvtsd2ss":
        r = ibits(b, b.ftrunc(fbits(b, xsrc(ctx, src, 64), F64), F32))
        w = 32
    else:
        r = ibits(b, b.fext(fbits(b, xsrc(ctx, src, 32), F32), F64))
        w = 64
    xput(ctx, dst, insert_low(b, xreg(ctx, dst), r, w))


def _src_lanes(ctx: Ctx, op, w: int, n: int) -> list[Temp]:
    """The low n lanes of width w of a source (memory reads only n*w bits, unaligned if < 128)."""
    bits = w * n
    v = xsrc(ctx, op, bits, aligned=bits == 128)
    v = ctx.b.zext(v, I128)
    return [lane(ctx.b, v, w, i) for i in range(n)]


def _cvt_packed(ctx: Ctx, in_w: int, n: int, fn: Callable[[Builder, Value], Value], out_w: int) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    res = [fn(b, x) for x in _src_lanes(ctx, src, in_w, n)]
    xput(ctx, dst, join(b, res, out_w))  # lanes above the n results are zero


PACKED_CVT: dict[str, tuple[int, int, Callable[[Builder, Value], Value], int]] = {
    # mnemonic: (source lane width, lanes, lane conversion, result lane width)
    "cvtdq2pd": (32, 2, lambda b, x: ibits(b, b.sitofp(x, F64)), 64),
    "cvtdq2ps": (32, 4, lambda b, x: ibits(b, b.sitofp(x, F32)), 32),
    "cvtpd2dq": (64, 2, lambda b, x: to_int(b, fbits(b, x, F64), 32, False), 32),
    "cvttpd2dq": (64, 2, lambda b, x: to_int(b, fbits(b, x, F64), 32, True), 32),
    "cvtps2dq": (32, 4, lambda b, x: to_int(b, fbits(b, x, F32), 32, False), 32),
    "cvttps2dq": (32, 4, lambda b, x: to_int(b, fbits(b, x, F32), 32, True), 32),
    "cvtps2pd": (32, 2, lambda b, x: ibits(b, b.fext(fbits(b, x, F32), F64)), 64),
    "cvtpd2ps": (64, 2, lambda b, x: ibits(b, b.ftrunc(fbits(b, x, F64), F32)), 32),
}


@lifter(*PACKED_CVT)
def lift_cvt_packed(ctx: Ctx) -> None:
    in_w, n, fn, out_w = PACKED_CVT[ctx.insn.mnemonic]
    if ctx.fp_precise:
        dst, src = ctx.insn.operands
        bits = in_w * n
        s = xsrc(ctx, src, bits, aligned=bits == 128)
        xput(ctx, dst, host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), s))
        return
    _cvt_packed(ctx, in_w, n, fn, out_w)


# --- MXCSR -------------------------------------------------------------------------------------

MXCSR_MASK = 0xFFFF  # the bits ldmxcsr accepts (DAZ included); x87_helpers stores it in fxsave images


def check_mxcsr(ctx: Ctx, v: Value) -> None:
    """An MXCSR write (ldmxcsr, fxrstor) of v: reserved bits set are a #GP, which Linux delivers
    as SIGSEGV; a valid value switches translation to precise mode (mxcsr.py)."""
    b = ctx.b
    bad = b.setcond("ne", b.and_(v, b.c(~MXCSR_MASK & 0xFFFFFFFF, I32)), b.c(0, I32))
    b.exit_if(bad, "sigsegv", ctx.pc)
    switch_to_precise(ctx)


@lifter("ldmxcsr")
def lift_ldmxcsr(ctx: Ctx) -> None:
    b = ctx.b
    v = b.ld(ea(ctx, ctx.insn.operands[0]), I32)
    check_mxcsr(ctx, v)
    b.put("mxcsr", b.zext(v, I64))
    if not ctx.fp_precise:  # what follows must be translated in precise mode
        b.exit("jump", ctx.next_pc)


@lifter("stmxcsr")
def lift_stmxcsr(ctx: Ctx) -> None:
    b = ctx.b
    b.st(ea(ctx, ctx.insn.operands[0]), b.trunc(b.get("mxcsr"), I32))


__all__ = ["FORMATS", "FBINOPS", "CMP_PREDS", "PACKED_CVT", "to_int", "apply_lane_op"]
