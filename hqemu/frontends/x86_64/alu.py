"""x86-64 integer arithmetic: add..xor, inc/dec/neg/not, shifts and rotates, mul/imul/div/idiv,
the bit tests and scans, cmpxchg and xadd, at 8/16/32/64 bits.

Values are computed at the operand width; shifts work on the value widened to 64 bits (128
for rcl/rcr of a quadword) so that QEMU's formulas for the last bit shifted out hold for every
count. Divisions exit with SIGFPE before dividing when the divisor is zero or the quotient does
not fit (the checks are done without dividing, so the division that follows is always
defined); the 64-bit forms divide a 128-bit rdx:rax.

    48 01 d8        add rax, rbx   ->  res = add a, c; put rax; flags_add(...)
    48 f7 f1        div rcx        ->  exit_if hi >= rcx, sigfpe; udiv/urem in i128
"""

from __future__ import annotations

from capstone import x86_const as X

from hqemu.ir import I1, I8, I16, I32, I64, I128, Temp, Value

from .flags import (
    bit,
    flags_adc,
    flags_add,
    flags_bitscan,
    flags_count,
    flags_dec,
    flags_inc,
    flags_logic,
    flags_mul,
    flags_neg,
    flags_popcnt,
    flags_rotate,
    flags_sbb,
    flags_shift,
    flags_sub,
    is_zero,
    msb,
    put_flags,
    put_flags_if,
)
from .misc import has_feature
from .operands import REGS, Ctx, Place, ea, ity, read_op, read_reg, write_op, write_reg
from .registry import lifter

_ACC = {8: "al", 16: "ax", 32: "eax", 64: "rax"}
_DX = {16: "dx", 32: "edx", 64: "rdx"}


def _carry_in(ctx: Ctx) -> Temp:
    return ctx.b.trunc(ctx.b.get("cf"), I1)


# --- two-operand arithmetic and logic ------------------------------------------------------------
@lifter("add", "adc", "sub", "sbb", "cmp", "and", "or", "xor", "test")
def lift_binop(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.mnemonic
    dst, src = ctx.insn.operands
    p = Place(ctx, dst)
    a = p.read()
    c = read_op(ctx, src, p.ty)
    if m == "add":
        r = b.add(a, c)
        flags_add(b, a, c, r)
    elif m == "adc":
        cin = _carry_in(ctx)
        r = b.add(b.add(a, c), b.zext(cin, p.ty))
        flags_adc(b, a, c, cin, r)
    elif m in ("sub", "cmp"):
        r = b.sub(a, c)
        flags_sub(b, a, c, r)
    elif m == "sbb":
        cin = _carry_in(ctx)
        r = b.sub(b.sub(a, c), b.zext(cin, p.ty))
        flags_sbb(b, a, c, cin, r)
    else:
        r = {"and": b.and_, "test": b.and_, "or": b.or_, "xor": b.xor}[m](a, c)
        flags_logic(b, r)
    if m not in ("cmp", "test"):
        p.write(r)


@lifter("inc", "dec", "neg", "not")
def lift_unop(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.mnemonic
    p = Place(ctx, ctx.insn.operands[0])
    a = p.read()
    if m == "inc":
        r = b.add(a, 1)
        flags_inc(b, a, r)
    elif m == "dec":
        r = b.sub(a, 1)
        flags_dec(b, a, r)
    elif m == "neg":
        r = b.neg(a)
        flags_neg(b, a, r)
    else:
        r = b.not_(a)
    p.write(r)


# --- shifts and rotates --------------------------------------------------------------------------
def _count(ctx: Ctx, op, w: int) -> tuple[Value, Value | bool, int | None]:
    """The masked count as an i64 value, whether it is nonzero (i1, or a bool if known), and
    the count itself when it is an immediate."""
    b = ctx.b
    mask = 0x3F if w == 64 else 0x1F
    if op.type == X.X86_OP_IMM:
        k = op.imm & mask
        return b.c(k, I64), k != 0, k
    cnt = b.and_(b.zext(read_op(ctx, op, I8), I64), mask)
    return cnt, b.setcond("ne", cnt, 0), None


def _minus1(ctx: Ctx, cnt: Value, k: int | None) -> Value:
    """count - 1, kept in range for a count of zero (whose result is then never used)."""
    if k is not None:
        return ctx.b.c(max(k - 1, 0), I64)
    return ctx.b.and_(ctx.b.sub(cnt, 1), 63)


@lifter("shl", "sal", "shr", "sar")
def lift_shift(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.mnemonic
    dst, cop = ctx.insn.operands
    p = Place(ctx, dst)
    w = p.ty.bits
    a = p.read()
    cnt, nz, k = _count(ctx, cop, w)
    if k == 0:  # no flags; the register is still written (a 32-bit one is zero-extended)
        p.write(a)
        return
    left = m in ("shl", "sal")
    a64 = b.sext(a, I64) if m == "sar" else b.zext(a, I64)
    op = {"shl": b.shl, "sal": b.shl, "shr": b.shr, "sar": b.sar}[m]
    shm1 = op(a64, _minus1(ctx, cnt, k))
    res64 = op(a64, cnt)
    p.write(b.trunc(res64, p.ty))
    flags_shift(b, w, left, res64, shm1, nz)


@lifter("rol", "ror")
def lift_rotate(ctx: Ctx) -> None:
    b = ctx.b
    dst, cop = ctx.insn.operands
    p = Place(ctx, dst)
    a = p.read()
    cnt, nz, k = _count(ctx, cop, p.ty.bits)
    if k == 0:
        p.write(a)
        return
    n = b.c(k, p.ty) if k is not None else b.trunc(cnt, p.ty)  # rotl/rotr take the count mod w
    left = ctx.mnemonic == "rol"
    r = b.rotl(a, n) if left else b.rotr(a, n)
    p.write(r)
    flags_rotate(b, left, r, nz)


@lifter("rcl", "rcr")
def lift_rotate_carry(ctx: Ctx) -> None:
    """A rotate of the w+1 bits CF:value, done in a wider type: the count is taken mod 9 or 17
    for bytes and words, and a count that is then zero changes nothing."""
    b = ctx.b
    dst, cop = ctx.insn.operands
    p = Place(ctx, dst)
    w = p.ty.bits
    a = p.read()
    cnt, nz, k = _count(ctx, cop, w)
    if w < 32:
        if k is not None:
            k %= w + 1
            cnt, nz = b.c(k, I64), k != 0
        else:
            cnt = b.urem(cnt, w + 1)
            nz = b.setcond("ne", cnt, 0)
    if k == 0:
        p.write(a)
        return
    T = I128 if w == 64 else I64
    n = b.zext(cnt, T)
    v = b.or_(b.zext(a, T), b.shl(b.zext(b.get("cf"), T), w))
    back = b.sub(b.c(w + 1, T), n)  # in 1..w+1: below T's width
    if ctx.mnemonic == "rcl":
        r = b.or_(b.shl(v, n), b.shr(v, back))
    else:
        r = b.or_(b.shr(v, n), b.shl(v, back))
    res = b.trunc(r, p.ty)
    p.write(res)
    put_flags_if(b, nz, cf=bit(b, r, w), of=msb(b, b.xor(a, res)))


@lifter("shld", "shrd")
def lift_double_shift(ctx: Ctx) -> None:
    """QEMU's (and Intel's) meaning, counts above 16 included: a word shifts A:B:A."""
    b = ctx.b
    dst, src, cop = ctx.insn.operands
    p = Place(ctx, dst)
    w = p.ty.bits
    A = p.read()
    B = read_op(ctx, src, p.ty)
    cnt, nz, k = _count(ctx, cop, w)
    if k == 0:
        p.write(A)
        return
    right = ctx.mnemonic == "shrd"
    cm1 = _minus1(ctx, cnt, k)
    if w < 64:
        a64, b64 = b.zext(A, I64), b.zext(B, I64)
        if w == 16:
            val = b.or_(b.or_(b.shl(a64, 32), b.shl(b64, 16)), a64)
        else:
            val = b.or_(b.shl(b64, 32), a64) if right else b.or_(b.shl(a64, 32), b64)
        if right:
            res64, shm1 = b.shr(val, cnt), b.shr(val, cm1)
        else:
            res64, shm1 = b.shr(b.shl(val, cnt), 32), b.shr(b.shl(val, cm1), 32)
    else:
        back = b.and_(b.sub(b.c(64, I64), cnt), 63)
        if right:
            res64 = b.or_(b.shr(A, cnt), b.shl(B, back))
            shm1 = b.shr(A, cm1)
        else:
            res64 = b.or_(b.shl(A, cnt), b.shr(B, back))
            shm1 = b.shl(A, cm1)
        if k is None:  # a zero count would have or-ed in all of B
            res64 = b.select(nz, res64, A)
    p.write(b.trunc(res64, p.ty))
    flags_shift(b, w, not right, res64, shm1, nz)


# --- multiply and divide -------------------------------------------------------------------------
def _wide(w: int):
    return ity(2 * w)


@lifter("mul")
def lift_mul(ctx: Ctx) -> None:
    b = ctx.b
    x = read_op(ctx, ctx.insn.operands[0])
    w = x.ty.bits
    T = _wide(w)
    prod = b.mul(b.zext(read_reg(ctx, _ACC[w]), T), b.zext(x, T))
    lo, hi = b.trunc(prod, x.ty), b.trunc(b.shr(prod, w), x.ty)
    _put_product(ctx, w, prod, lo, hi)
    flags_mul(b, lo, b.setcond("ne", hi, 0))


def _put_product(ctx: Ctx, w: int, prod: Value, lo: Value, hi: Value) -> None:
    if w == 8:
        write_reg(ctx, "ax", prod)
    else:
        write_reg(ctx, _ACC[w], lo)
        write_reg(ctx, _DX[w], hi)


@lifter("imul")
def lift_imul(ctx: Ctx) -> None:
    b = ctx.b
    ops = ctx.insn.operands
    if len(ops) == 1:
        x = read_op(ctx, ops[0])
        w = x.ty.bits
        a = read_reg(ctx, _ACC[w])
    else:
        ty = ity(ops[0].size * 8)
        w = ty.bits
        a = read_op(ctx, ops[0] if len(ops) == 2 else ops[1], ty)
        x = read_op(ctx, ops[-1], ty)
    T = _wide(w)
    prod = b.mul(b.sext(a, T), b.sext(x, T))
    lo = b.trunc(prod, a.ty)
    overflow = b.setcond("ne", prod, b.sext(lo, T))
    if len(ops) == 1:
        _put_product(ctx, w, prod, lo, b.trunc(b.shr(prod, w), a.ty))
    else:
        write_op(ctx, ops[0], lo)
    flags_mul(b, lo, overflow)


def _dividend(ctx: Ctx, w: int) -> Value:
    """ax for a byte divide, else dx:ax / edx:eax / rdx:rax as one 2w-bit value."""
    b = ctx.b
    if w == 8:
        return read_reg(ctx, "ax")
    T = _wide(w)
    return b.or_(b.shl(b.zext(read_reg(ctx, _DX[w]), T), w), b.zext(read_reg(ctx, _ACC[w]), T))


def _put_quotient(ctx: Ctx, w: int, q: Value, r: Value) -> None:
    b = ctx.b
    ty = ity(w)
    q, r = b.trunc(q, ty), b.trunc(r, ty)
    if w == 8:
        write_reg(ctx, "ax", b.or_(b.shl(b.zext(r, I16), 8), b.zext(q, I16)))
    else:
        write_reg(ctx, _ACC[w], q)
        write_reg(ctx, _DX[w], r)


@lifter("div")
def lift_div(ctx: Ctx) -> None:
    """#DE when the divisor is zero or the quotient needs more than w bits: both are
    hi >= divisor, hi being the dividend's upper half. Flags are left as they were."""
    b = ctx.b
    x = read_op(ctx, ctx.insn.operands[0])
    w = x.ty.bits
    n = _dividend(ctx, w)
    T = n.ty
    hi = b.trunc(b.shr(n, w), x.ty)
    b.exit_if(b.setcond("geu", hi, x), "sigfpe", ctx.pc)
    d = b.zext(x, T)
    _put_quotient(ctx, w, b.udiv(n, d), b.urem(n, d))


@lifter("idiv")
def lift_idiv(ctx: Ctx) -> None:
    """#DE when |n| >= (limit + 1) * |d|, limit being the largest quotient magnitude allowed
    for the quotient's sign; d == 0 fails that test too. After it, sdiv cannot overflow."""
    b = ctx.b
    x = read_op(ctx, ctx.insn.operands[0])
    w = x.ty.bits
    n = _dividend(ctx, w)
    T = n.ty
    d = b.sext(x, T)
    nneg, dneg = b.setcond("lt", n, 0), b.setcond("lt", d, 0)
    an = b.select(nneg, b.neg(n), n)
    ad = b.select(dneg, b.neg(d), d)
    qneg = b.xor(nneg, dneg)
    top = 1 << (w - 1)
    bound = b.mul(b.select(qneg, b.c(top + 1, T), b.c(top, T)), ad)
    b.exit_if(b.setcond("geu", an, bound), "sigfpe", ctx.pc)
    _put_quotient(ctx, w, b.sdiv(n, d), b.srem(n, d))


# --- bit test, bit scan, counts ------------------------------------------------------------------
@lifter("bt", "bts", "btr", "btc")
def lift_bt(ctx: Ctx) -> None:
    """A register bit offset into memory addresses a bit string: the word at
    ea + (offset >> log2 w) * w/8 (offset signed), bit offset mod w."""
    b, m = ctx.b, ctx.mnemonic
    dst, src = ctx.insn.operands
    ty = ity(dst.size * 8)
    w = ty.bits
    addr = None
    if src.type == X.X86_OP_IMM:
        pos: Value = b.c(src.imm & (w - 1), ty)
    else:
        off = read_op(ctx, src, ty)
        pos = b.and_(off, w - 1)
        if dst.type == X.X86_OP_MEM:
            words = b.sar(b.sext(off, I64), w.bit_length() - 1)
            addr = b.add(ea(ctx, dst), b.shl(words, (w // 8).bit_length() - 1))
    if addr is None and dst.type == X.X86_OP_MEM:
        addr = ea(ctx, dst)
    v = b.ld(addr, ty) if addr is not None else read_op(ctx, dst, ty)
    put_flags(b, cf=b.trunc(b.shr(v, pos), I1))
    if m == "bt":
        return
    mask = b.shl(b.c(1, ty), pos)
    if m == "bts":
        r = b.or_(v, mask)
    elif m == "btr":
        r = b.and_(v, b.not_(mask))
    else:
        r = b.xor(v, mask)
    if addr is not None:
        b.st(addr, r)
    else:
        write_op(ctx, dst, r)


def _bitscan(ctx: Ctx, reverse: bool) -> None:
    """bsf/bsr: a zero source leaves the destination's value (QEMU and real CPUs do), though a
    32-bit destination is still zero-extended."""
    b = ctx.b
    dst, src = ctx.insn.operands
    ty = ity(dst.size * 8)
    s = read_op(ctx, src, ty)
    old = read_op(ctx, dst, ty)
    idx = b.sub(b.c(ty.bits - 1, ty), b.clz(s)) if reverse else b.ctz(s)
    write_op(ctx, dst, b.select(is_zero(b, s), old, idx))
    flags_bitscan(b, s)


@lifter("bsf")
def lift_bsf(ctx: Ctx) -> None:
    _bitscan(ctx, False)


@lifter("bsr")
def lift_bsr(ctx: Ctx) -> None:
    _bitscan(ctx, True)


def _count_op(ctx: Ctx, reverse: bool) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    s = read_op(ctx, src, ity(dst.size * 8))
    r = b.clz(s) if reverse else b.ctz(s)
    write_op(ctx, dst, r)
    flags_count(b, s, r)


@lifter("tzcnt")
def lift_tzcnt(ctx: Ctx) -> None:
    """Without BMI1 in the CPU model, F3 0F BC is `rep bsf`, i.e. bsf (gcc relies on it)."""
    if has_feature("bmi1"):
        _count_op(ctx, False)
    else:
        _bitscan(ctx, False)


@lifter("lzcnt")
def lift_lzcnt(ctx: Ctx) -> None:
    """Without ABM in the CPU model, F3 0F BD is `rep bsr`, i.e. bsr."""
    if has_feature("abm"):
        _count_op(ctx, True)
    else:
        _bitscan(ctx, True)


@lifter("popcnt")
def lift_popcnt(ctx: Ctx) -> None:
    b = ctx.b
    if not has_feature("popcnt"):
        b.exit("sigill", ctx.pc)
        return
    dst, src = ctx.insn.operands
    s = read_op(ctx, src, ity(dst.size * 8))
    write_op(ctx, dst, b.popcnt(s))
    flags_popcnt(b, s)


# --- atomics (single-threaded guest: a lock prefix changes nothing) ------------------------------
@lifter("xadd")
def lift_xadd(ctx: Ctx) -> None:
    b = ctx.b
    dst, src = ctx.insn.operands
    p = Place(ctx, dst)
    a = p.read()
    c = read_op(ctx, src, p.ty)
    r = b.add(a, c)
    flags_add(b, a, c, r)
    write_op(ctx, src, a)
    p.write(r)  # after the source: xadd of a register with itself leaves the sum


@lifter("cmpxchg")
def lift_cmpxchg(ctx: Ctx) -> None:
    """Hardware semantics: a memory destination is always written (the old value on failure);
    a register destination only on success, the accumulator only on failure. So a 32-bit
    register destination or accumulator that is not written keeps its upper half (Unicorn,
    following QEMU 5, zero-extends both: the tests allow that difference)."""
    b = ctx.b
    dst, src = ctx.insn.operands
    p = Place(ctx, dst)
    w = p.ty.bits
    old = p.read()
    acc = read_reg(ctx, _ACC[w])
    s = read_op(ctx, src, p.ty)
    eq = b.setcond("eq", acc, old)
    flags_sub(b, acc, old, b.sub(acc, old))
    _write_unless(ctx, _ACC[w], eq, old)
    if p.is_mem:
        p.write(b.select(eq, s, old))
    else:
        _write_unless(ctx, ctx.insn.reg_name(dst.reg), b.xor(eq, 1), s)


def _write_unless(ctx: Ctx, reg: str, keep: Value, v: Value) -> None:
    """Write v to reg unless keep (i1) holds; a kept 32-bit register keeps its upper half."""
    b = ctx.b
    g, off, bits = REGS[reg]
    if bits == 32:
        b.put(g, b.select(keep, b.get(g), b.zext(v, I64)))
    else:
        write_reg(ctx, reg, b.select(keep, read_reg(ctx, reg), v))


@lifter("cmpxchg8b", "cmpxchg16b")
def lift_cmpxchg_wide(ctx: Ctx) -> None:
    """Compare edx:eax (rdx:rax) with the memory operand; equal: store ecx:ebx (rcx:rbx),
    else load it into edx:eax. Only ZF changes. The 16-byte form needs 16-byte alignment."""
    b = ctx.b
    (op,) = ctx.insn.operands
    half = I64 if ctx.mnemonic == "cmpxchg16b" else I32
    n = half.bits // 8
    addr = ea(ctx, op)
    if n == 8:
        b.exit_if(b.setcond("ne", b.and_(addr, 15), 0), "sigsegv", ctx.pc)
    addr_hi = b.add(addr, n)
    lo, hi = b.ld(addr, half), b.ld(addr_hi, half)
    eq = b.and_(b.setcond("eq", lo, b.trunc(b.get("rax"), half)),
                b.setcond("eq", hi, b.trunc(b.get("rdx"), half)))
    b.st(addr, b.select(eq, b.trunc(b.get("rbx"), half), lo))
    b.st(addr_hi, b.select(eq, b.trunc(b.get("rcx"), half), hi))
    b.put("rax", b.select(eq, b.get("rax"), b.zext(lo, I64)))
    b.put("rdx", b.select(eq, b.get("rdx"), b.zext(hi, I64)))
    put_flags(b, zf=eq)


__all__ = ["lift_binop", "lift_shift", "lift_div", "lift_idiv"]
