"""SSE/SSE2 floating point lifters: scalar and packed arithmetic, compares, conversions, MXCSR.

The guest is x86-64 and so is the host, so every SSE float instruction is the host's own
instruction (hostsse.py): a helper call x86_sse_<name>(dst, src, mxcsr) -> (dst', mxcsr'),
which runs it under the guest's MXCSR: rounding mode, DAZ, FTZ, NaN propagation and the sticky
exception flags are the hardware's by construction, and an exception the guest unmasked is a
SIGFPE at its pc. The quick tier calls the helper's stub; native code runs the instruction
inline (hqemu.ir.HostInsn) under the guest's MXCSR, which the dispatcher installs, and the
flags it raises are folded into the guest's mxcsr when native code returns to Python, or
before a guest instruction reads MXCSR (mxcsr.py).

    >>> LIFTERS["addsd"](ctx)     # call x86_sse_addsd(xmm0, xmm1, mxcsr); put xmm0, mxcsr
"""

from __future__ import annotations

from capstone import x86_const as X

from hqemu.ir import I32, I64, I128, Temp, Value

from . import hostsse
from .mxcsr import fold_flags, load_mxcsr
from .operands import Ctx, ea, ity, read_op, write_op
from .registry import lifter
from .sse import has_xmm, xput, xreg, xsrc

DEFAULT_MXCSR = 0x1F80  # reset value: round to nearest, all exceptions masked, no DAZ/FTZ

# suffix -> lane width, scalar?
FORMATS: dict[str, tuple[int, bool]] = {
    "ss": (32, True), "sd": (64, True), "ps": (32, False), "pd": (64, False)}


def host_op(ctx: Ctx, name: str, a: Value, s: Value) -> Temp:
    """The host instruction hostsse.OPS[name] on the destination a and the source s (I128, or
    narrower: zero-extended) under the guest's MXCSR; its flags go into mxcsr and an exception
    the guest unmasked exits with sigfpe."""
    b = ctx.b
    if s.ty != I128:
        s = b.zext(s, I128)
    r, m = b.call(hostsse.helper_name(name), a, s, b.get("mxcsr"))
    b.put("mxcsr", b.and_(m, b.c(0xFFFFFFFF, I64)))
    b.exit_if(b.setcond("gtu", m, b.c(0xFFFFFFFF, I64)), "sigfpe", ctx.pc)
    return r


def fsrc(ctx: Ctx, op, bits: int, aligned: bool = False) -> Value:
    """An SSE source: a whole xmm register (the instruction reads only what it needs), or
    `bits` of memory (a packed 128-bit operand must be aligned)."""
    if op.type == X.X86_OP_REG and bits < 128:
        bits = 128
    return xsrc(ctx, op, bits, aligned=aligned and bits == 128)


def host_lane_op(ctx: Ctx, name: str, sfx: str, src_index: int = 1) -> None:
    """dst = the host instruction on (dst, src): a scalar source is its low lane (or that many
    bytes of memory), a packed memory source must be aligned."""
    w, scalar = FORMATS[sfx]
    ops = ctx.insn.operands
    dst, src = ops[0], ops[src_index]
    xput(ctx, dst, host_op(ctx, name, xreg(ctx, dst), fsrc(ctx, src, w if scalar else 128, aligned=True)))


def _lift_fbin(ctx: Ctx) -> None:
    m = ctx.insn.mnemonic
    host_lane_op(ctx, m, m[-2:])


for _op in ("add", "sub", "mul", "div", "min", "max", "sqrt", "rcp", "rsqrt"):
    lifter(*(_op + s for s in FORMATS if _op + s in hostsse.OPS))(_lift_fbin)

# cmpps/cmpss predicates 0-7: eq lt le unord neq nlt nle ord
CMP_NAMES = ("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord")


def _lift_cmp(ctx: Ctx, pred: int) -> None:
    sfx = ctx.insn.mnemonic[-2:]
    host_lane_op(ctx, f"cmp{pred & 7}{sfx}", sfx)


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
    w, _ = FORMATS[ctx.insn.mnemonic[-2:]]
    dst, src = ctx.insn.operands
    r = b.trunc(host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), fsrc(ctx, src, w)), I64)
    for flag, bit in (("cf", 0), ("pf", 2), ("zf", 6)):
        b.put(flag, b.and_(b.shr(r, b.c(bit, I64)), b.c(1, I64)))
    for flag in ("of", "sf", "af"):
        b.put(flag, b.c(0, I64))


# --- conversions -------------------------------------------------------------------------------

@lifter("cvtsd2si", "cvtss2si", "cvttsd2si", "cvttss2si")
def lift_cvt2si(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.insn.mnemonic
    w = 32 if "ss2" in m else 64
    dst, src = ctx.insn.operands
    bits = dst.size * 8
    r = host_op(ctx, f"{m}{bits}", b.c(0, I128), fsrc(ctx, src, w))
    write_op(ctx, dst, b.trunc(r, ity(bits)))


@lifter("cvtsi2sd", "cvtsi2ss")
def lift_cvtsi2f(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    xput(ctx, dst, host_op(ctx, f"{ctx.insn.mnemonic}{src.size * 8}", xreg(ctx, dst), read_op(ctx, src)))


@lifter("cvtsd2ss", "cvtss2sd")
def lift_cvt_f2f(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    w = 64 if ctx.insn.mnemonic == "cvtsd2ss" else 32
    xput(ctx, dst, host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), fsrc(ctx, src, w)))


# mnemonic: the bits of the source it reads (from memory: unaligned when fewer than 128)
PACKED_CVT: dict[str, int] = {
    "cvtdq2pd": 64, "cvtdq2ps": 128, "cvtpd2dq": 128, "cvttpd2dq": 128, "cvtps2dq": 128,
    "cvttps2dq": 128, "cvtps2pd": 64, "cvtpd2ps": 128,
}


@lifter(*PACKED_CVT)
def lift_cvt_packed(ctx: Ctx) -> None:
    dst, src = ctx.insn.operands
    s = fsrc(ctx, src, PACKED_CVT[ctx.insn.mnemonic], aligned=True)
    xput(ctx, dst, host_op(ctx, ctx.insn.mnemonic, xreg(ctx, dst), s))


# --- MXCSR -------------------------------------------------------------------------------------

MXCSR_MASK = 0xFFFF  # the bits ldmxcsr accepts (DAZ included); x87_helpers stores it in fxsave images


def check_mxcsr(ctx: Ctx, v: Value) -> None:
    """An MXCSR write (ldmxcsr, fxrstor) of v: reserved bits set are a #GP, which Linux delivers
    as SIGSEGV."""
    b = ctx.b
    bad = b.setcond("ne", b.and_(v, b.c(~MXCSR_MASK & 0xFFFFFFFF, I32)), b.c(0, I32))
    b.exit_if(bad, "sigsegv", ctx.pc)


@lifter("ldmxcsr")
def lift_ldmxcsr(ctx: Ctx) -> None:
    b = ctx.b
    v = b.ld(ea(ctx, ctx.insn.operands[0]), I32)
    check_mxcsr(ctx, v)
    b.put("mxcsr", b.zext(v, I64))
    load_mxcsr(ctx)


@lifter("stmxcsr")
def lift_stmxcsr(ctx: Ctx) -> None:
    b = ctx.b
    fold_flags(ctx)
    b.st(ea(ctx, ctx.insn.operands[0]), b.trunc(b.get("mxcsr"), I32))


__all__ = ["FORMATS", "PACKED_CVT", "MXCSR_MASK", "check_mxcsr", "host_op", "host_lane_op", "fsrc"]
