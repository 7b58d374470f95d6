"""x87 lifters: each instruction becomes IR loads/stores around one x87 helper call.

Decoding goes by the opcode byte (D8-DF) and the ModRM byte rather than by capstone's
mnemonic, whose names for the reversed subtractions and divisions of the DC/DE forms are the
classic source of bugs; capstone still supplies the effective address. Memory traffic stays
in the IR (so a fault is an ordinary guest fault at this pc); the arithmetic lives in
x87_helpers.py. The control word, fnstsw, fninit and fnclex are plain IR on the globals.

    >>> fld qword ptr [rdi]   ->  %1:i64 = ld %0 ; call x87_fld, 0x1:i64, %1, 0x0:i64
    >>> faddp st(1)           ->  call x87_arith, 0x0:i64, 0x1:i64, 0x5:i64, 0x0:i64, 0x1:i64

fxsave/fxrstor (the x87 + SSE image) are here too, and fbld/fbstp (packed BCD). The
transcendental instructions and fxtract are one `x87_trans` call each (x87_transcendental.py).
Not implemented yet (SIGILL): the 16-bit (0x66) environment layouts.
"""

from __future__ import annotations

from capstone import x86_const as X

from hqemu.ir import I16, I32, I64, Value

from . import x87_helpers as H
from . import x87_transcendental as T
from .fp import check_mxcsr
from .mxcsr import fold_flags, load_mxcsr
from .operands import Ctx, ea, write_reg
from .registry import lifter
from .sse import check_aligned

ARITH = {"add": 0, "mul": 1, "sub": 2, "subr": 3, "div": 4, "divr": 5}
# ModRM reg field of D8/DA/DC/DE memory forms and of D8 register forms
GROUP = ("add", "mul", "com", "comp", "sub", "subr", "div", "divr")
# DC/DE register forms: ST(i) is the destination and the reversed pairs swap places
GROUP_STI = ("add", "mul", "com", "comp", "subr", "sub", "divr", "div")
CONST_ORDER = {0xE8: 0, 0xE9: 1, 0xEA: 2, 0xEB: 3, 0xEC: 4, 0xED: 5, 0xEE: 6}  # fld1 .. fldz
UNARY_D9 = {0xE0: "fchs", 0xE1: "fabs", 0xE4: "ftst", 0xE5: "fxam", 0xFA: "fsqrt", 0xFC: "frndint",
            0xFD: "fscale", 0xF8: "fprem", 0xF5: "fprem1"}
TRANS_D9 = {0xF0: "f2xm1", 0xF1: "fyl2x", 0xF2: "fptan", 0xF3: "fpatan", 0xF4: "fxtract", 0xF9: "fyl2xp1",
            0xFB: "fsincos", 0xFE: "fsin", 0xFF: "fcos"}
FCMOV = {  # (opcode, reg field) -> the condition on the flags
    (0xDA, 0): ("cf",), (0xDA, 1): ("zf",), (0xDA, 2): ("cf", "zf"), (0xDA, 3): ("pf",),
    (0xDB, 0): ("!cf",), (0xDB, 1): ("!zf",), (0xDB, 2): ("!cf", "!zf"), (0xDB, 3): ("!pf",),
}


def k(ctx: Ctx, v: int) -> Value:
    return ctx.b.c(v, I64)


def call(ctx: Ctx, helper: str, *args: int | Value):
    return ctx.b.call(helper, *(k(ctx, a) if isinstance(a, int) else a for a in args))


def _mem(ctx: Ctx) -> Value:
    op = next(o for o in ctx.insn.operands if o.type == X.X86_OP_MEM)
    return ea(ctx, op)


def _load(ctx: Ctx, addr: Value, kind: int, nbytes: int = 0) -> tuple[Value, Value]:
    """The (lo, hi) helper arguments for a memory operand of `kind` (ints: nbytes wide)."""
    b = ctx.b
    if kind == H.K_F32:
        return b.zext(b.ld(addr, I32), I64), k(ctx, 0)
    if kind == H.K_F64:
        return b.ld(addr, I64), k(ctx, 0)
    if kind in (H.K_F80, H.K_BCD):
        lo = b.ld(addr, I64)
        hi = b.ld(b.add(addr, k(ctx, 8)), I16)
        return lo, b.zext(hi, I64)
    ty = {2: I16, 4: I32, 8: I64}[nbytes]
    return b.sext(b.ld(addr, ty), I64), k(ctx, 0)


def _store(ctx: Ctx, addr: Value, kind: int, pop: int) -> None:
    b = ctx.b
    lo, hi = call(ctx, "x87_fst", kind, 0, pop)
    if kind in (H.K_F80, H.K_BCD):
        b.st(addr, lo)
        b.st(b.add(addr, k(ctx, 8)), b.trunc(hi, I16))
        return
    width = {H.K_F32: I32, H.K_F64: I64, H.S_I16: I16, H.S_I32: I32, H.S_I64: I64,
             H.S_T16: I16, H.S_T32: I32, H.S_T64: I64}[kind]
    b.st(addr, b.trunc(lo, width))


def _group(ctx: Ctx, name: str, dst: int, kind: int, val: int | Value, pop: int) -> None:
    if name in ("com", "comp"):
        call(ctx, "x87_fcom", kind, val, int(name == "comp"), 0)
    else:
        call(ctx, "x87_arith", ARITH[name], dst, kind, val, pop)


def _status_word(ctx: Ctx) -> Value:
    b = ctx.b
    sw = b.and_(b.get("fpu_sw"), k(ctx, 0xFFFF & ~0x3800))
    top = b.shl(b.and_(b.get("fpu_top"), k(ctx, 7)), k(ctx, 11))
    return b.trunc(b.or_(sw, top), I16)


def _cond(ctx: Ctx, terms: tuple[str, ...]) -> Value:
    b = ctx.b
    v: Value | None = None
    for t in terms:
        x = b.get(t.lstrip("!"))
        v = x if v is None else b.or_(v, x)
    assert v is not None
    if terms[0].startswith("!"):  # the negated forms negate the whole disjunction
        v = b.xor(v, k(ctx, 1))
    return v


# --- memory forms ------------------------------------------------------------------------------

def _lift_mem(ctx: Ctx, opc: int, reg: int) -> bool:
    b = ctx.b
    if opc in (0xD8, 0xDC):
        kind = H.K_F32 if opc == 0xD8 else H.K_F64
        lo, _ = _load(ctx, _mem(ctx), kind)
        _group(ctx, GROUP[reg], 0, kind, lo, 0)
    elif opc in (0xDA, 0xDE):
        lo, _ = _load(ctx, _mem(ctx), H.K_INT, 4 if opc == 0xDA else 2)
        _group(ctx, GROUP[reg], 0, H.K_INT, lo, 0)
    elif (opc, reg) in _MEM_LOADS:
        kind, n = _MEM_LOADS[(opc, reg)]
        lo, hi = _load(ctx, _mem(ctx), kind, n)
        call(ctx, "x87_fld", kind, lo, hi)
    elif (opc, reg) in _MEM_STORES:
        kind, pop = _MEM_STORES[(opc, reg)]
        _store(ctx, _mem(ctx), kind, pop)
    elif (opc, reg) == (0xD9, 5):  # fldcw
        b.put("fpu_cw", b.zext(b.ld(_mem(ctx), I16), I64))
    elif (opc, reg) == (0xD9, 7):  # fnstcw
        b.st(_mem(ctx), b.trunc(b.get("fpu_cw"), I16))
    elif (opc, reg) == (0xDD, 7):  # fnstsw m16
        b.st(_mem(ctx), _status_word(ctx))
    elif (opc, reg) in _ENV_FORMS:
        if 0x66 in ctx.insn.prefix:  # the 14-byte 16-bit layout is not implemented
            return False
        helper, flag = _ENV_FORMS[(opc, reg)]
        call(ctx, helper, _mem(ctx), flag)
    else:
        return False
    return True


_ENV_FORMS = {  # (opcode, reg) -> (helper, registers too)
    (0xD9, 6): ("x87_fnstenv", 0), (0xDD, 6): ("x87_fnstenv", 1),
    (0xD9, 4): ("x87_fldenv", 0), (0xDD, 4): ("x87_fldenv", 1),
}
_MEM_LOADS = {  # (opcode, reg) -> (kind, integer bytes)
    (0xD9, 0): (H.K_F32, 0), (0xDD, 0): (H.K_F64, 0), (0xDB, 5): (H.K_F80, 0),
    (0xDF, 0): (H.K_INT, 2), (0xDB, 0): (H.K_INT, 4), (0xDF, 5): (H.K_INT, 8), (0xDF, 4): (H.K_BCD, 0),
}
_MEM_STORES = {  # (opcode, reg) -> (store kind, pop)
    (0xD9, 2): (H.K_F32, 0), (0xD9, 3): (H.K_F32, 1), (0xDD, 2): (H.K_F64, 0), (0xDD, 3): (H.K_F64, 1),
    (0xDB, 7): (H.K_F80, 1),
    (0xDF, 2): (H.S_I16, 0), (0xDF, 3): (H.S_I16, 1), (0xDB, 2): (H.S_I32, 0), (0xDB, 3): (H.S_I32, 1),
    (0xDF, 7): (H.S_I64, 1), (0xDF, 6): (H.K_BCD, 1),
    (0xDF, 1): (H.S_T16, 1), (0xDB, 1): (H.S_T32, 1), (0xDD, 1): (H.S_T64, 1),
}


# --- register forms ----------------------------------------------------------------------------

def _lift_reg(ctx: Ctx, opc: int, modrm: int) -> bool:
    b = ctx.b
    reg, i = modrm >> 3 & 7, modrm & 7
    if opc == 0xD8:
        _group(ctx, GROUP[reg], 0, H.K_ST, i, 0)
    elif opc == 0xDC:
        _group(ctx, GROUP_STI[reg], i, H.K_ST, 0, 0)
    elif opc == 0xDE:
        if reg == 3:
            if i != 1:
                return False
            call(ctx, "x87_fcom", H.K_ST, 1, 2, 0)  # fcompp
        elif reg == 2:  # fcomp alias
            call(ctx, "x87_fcom", H.K_ST, i, 1, 0)
        else:
            call(ctx, "x87_arith", ARITH[GROUP_STI[reg]], i, H.K_ST, 0, 1)
    elif opc == 0xD9:
        if reg == 0:
            call(ctx, "x87_fld", H.K_ST, i, 0)
        elif reg == 1:
            call(ctx, "x87_fxch", i)
        elif reg == 3:  # fstp1 alias
            call(ctx, "x87_fst", H.K_ST, i, 1)
        elif modrm == 0xD0:  # fnop
            pass
        elif modrm in CONST_ORDER:
            call(ctx, "x87_fld", H.K_CONST, CONST_ORDER[modrm], 0)
        elif modrm in UNARY_D9:
            call(ctx, "x87_unary", H.UNARY.index(UNARY_D9[modrm]))
        elif modrm in TRANS_D9:
            call(ctx, "x87_trans", T.TRANS.index(TRANS_D9[modrm]))
        elif modrm in (0xF6, 0xF7):
            call(ctx, "x87_fstp_top", 1 if modrm == 0xF7 else 7)  # +7 = -1 mod 8
        else:
            return False
    elif opc == 0xDA:
        if reg < 4:
            call(ctx, "x87_fcmov", i, _cond(ctx, FCMOV[(opc, reg)]))
        elif modrm == 0xE9:
            call(ctx, "x87_fcom", H.K_ST, 1, 2, 1)  # fucompp
        else:
            return False
    elif opc == 0xDB:
        if reg < 4:
            call(ctx, "x87_fcmov", i, _cond(ctx, FCMOV[(opc, reg)]))
        elif modrm == 0xE2:  # fnclex
            b.put("fpu_sw", b.and_(b.get("fpu_sw"), k(ctx, ~0x80FF & 0xFFFF)))
        elif modrm == 0xE3:  # fninit
            for name, v in (("fpu_cw", 0x37F), ("fpu_sw", 0), ("fpu_top", 0), ("fpu_tag", 0xFF)):
                b.put(name, k(ctx, v))
        elif modrm in (0xE0, 0xE1, 0xE4):  # feni/fdisi/fsetpm: no-ops since the 287
            pass
        elif reg in (5, 6):
            _comi(ctx, i, 0, int(reg == 5))
        else:
            return False
    elif opc == 0xDD:
        if reg == 0:
            call(ctx, "x87_ffree", i, 0)
        elif reg == 1:
            call(ctx, "x87_fxch", i)
        elif reg in (2, 3):
            call(ctx, "x87_fst", H.K_ST, i, reg - 2)
        elif reg in (4, 5):
            call(ctx, "x87_fcom", H.K_ST, i, reg - 4, 1)
        else:
            return False
    elif opc == 0xDF:
        if modrm == 0xE0:  # fnstsw ax
            write_reg(ctx, "ax", _status_word(ctx))
        elif reg == 0:  # ffreep
            call(ctx, "x87_ffree", i, 1)
        elif reg == 1:
            call(ctx, "x87_fxch", i)
        elif reg in (2, 3):
            call(ctx, "x87_fst", H.K_ST, i, 1)
        elif reg in (5, 6):
            _comi(ctx, i, 1, int(reg == 5))
        else:
            return False
    else:
        return False
    return True


def _comi(ctx: Ctx, i: int, pop: int, unordered: int) -> None:
    b = ctx.b
    zf, pf, cf = call(ctx, "x87_fcomi", i, pop, unordered)
    for name, v in (("zf", zf), ("pf", pf), ("cf", cf)):
        b.put(name, v)
    for name in ("of", "sf", "af"):
        b.put(name, k(ctx, 0))


MNEMONICS = (
    "fabs fadd faddp fchs fcmovb fcmovbe fcmove fcmovnb fcmovnbe fcmovne fcmovnu fcmovu fcom fcomi "
    "fcomp fcompi fcompp fdecstp fdisi8087_nop fdiv fdivp fdivr fdivrp feni8087_nop ffree ffreep fiadd "
    "ficom ficomp fidiv fidivr fild fimul fincstp fist fistp fisttp fisub fisubr fld fld1 fldcw fldl2e "
    "fldl2t fldlg2 fldln2 fldpi fldz fmul fmulp fnclex fninit fnop fnstcw fnstsw fprem fprem1 frndint fscale "
    "fnstenv fldenv fnsave frstor "
    "fsetpm fsqrt fst fstp fstpnce fsub fsubp fsubr fsubrp ftst fucom fucomi fucomp fucompi fucompp "
    "fxam fxch f2xm1 fyl2x fyl2xp1 fptan fpatan fxtract fsin fcos fsincos fbld fbstp"
).split()


@lifter(*MNEMONICS)
def lift_x87(ctx: Ctx) -> None:
    insn = ctx.insn
    opc, modrm = insn.opcode[0], insn.modrm
    ok = False
    if 0xD8 <= opc <= 0xDF:
        ok = _lift_reg(ctx, opc, modrm) if modrm >= 0xC0 else _lift_mem(ctx, opc, modrm >> 3 & 7)
    if not ok:
        ctx.b.exit("sigill", ctx.pc)


@lifter("fxsave", "fxsave64", "fxrstor", "fxrstor64")
def lift_fxsave(ctx: Ctx) -> None:
    """The 512-byte image must be 16-byte aligned (#GP otherwise: SIGSEGV). The 64-bit forms
    differ only in how the (always zero) instruction and operand pointers are laid out."""
    addr = _mem(ctx)
    check_aligned(ctx, addr)
    if ctx.insn.mnemonic.startswith("fxsave"):
        fold_flags(ctx)  # the image holds MXCSR with every flag raised so far
        call(ctx, "x87_fxsave", addr)
    else:
        check_mxcsr(ctx, ctx.b.ld(ctx.b.add(addr, k(ctx, 24)), I32))
        call(ctx, "x87_fxrstor", addr)
        load_mxcsr(ctx)  # native code goes on under the MXCSR of the image


@lifter("wait")
def lift_fwait(ctx: Ctx) -> None:
    """fwait: nothing to wait for, and every exception is masked (none is ever pending)."""


__all__ = ["MNEMONICS", "lift_x87"]
