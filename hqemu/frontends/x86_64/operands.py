"""x86-64 operands for the lifters: registers by capstone name, effective addresses, and
read/write of any operand at its width.

    >>> v = read_op(ctx, insn.operands[1])       # Temp of I8/I16/I32/I64/I128
    >>> write_op(ctx, insn.operands[0], v)       # 32-bit register writes zero-extend

Every lifter gets a Ctx: the builder, the capstone instruction and its pc and next pc.
"""

from __future__ import annotations

from dataclasses import dataclass

from capstone import x86_const as X

from hqemu.ir import I8, I16, I32, I64, I128, INT_BY_BITS, Builder, Temp, Ty, Value

from .cpu import GPRS


@dataclass
class Ctx:
    b: Builder
    insn: object  # capstone CsInsn with detail
    pc: int  # address of this instruction
    next_pc: int  # address of the next one
    mnemonic: str = ""  # the mnemonic the lifter was found by, without lock/rep/bnd/notrack
    # Per-block cache of capstone register id -> name (capstone's reg_name is slow)


def _reg_map() -> dict[str, tuple[str, int, int]]:
    """capstone register name -> (global, bit offset, width in bits)."""
    m: dict[str, tuple[str, int, int]] = {}
    legacy = {"rax": "a", "rcx": "c", "rdx": "d", "rbx": "b"}
    for g, l in legacy.items():
        m[g] = (g, 0, 64)
        m[f"e{l}x"] = (g, 0, 32)
        m[f"{l}x"] = (g, 0, 16)
        m[f"{l}l"] = (g, 0, 8)
        m[f"{l}h"] = (g, 8, 8)
    for g, short in (("rsp", "sp"), ("rbp", "bp"), ("rsi", "si"), ("rdi", "di")):
        m[g] = (g, 0, 64)
        m[f"e{short}"] = (g, 0, 32)
        m[short] = (g, 0, 16)
        m[f"{short}l"] = (g, 0, 8)
    for i in range(8, 16):
        g = f"r{i}"
        m[g] = (g, 0, 64)
        m[f"{g}d"] = (g, 0, 32)
        m[f"{g}w"] = (g, 0, 16)
        m[f"{g}b"] = (g, 0, 8)
    for i in range(16):
        m[f"xmm{i}"] = (f"xmm{i}", 0, 128)
    assert all(v[0] in GPRS or v[0].startswith("xmm") for v in m.values())
    return m


REGS = _reg_map()


def ity(bits: int) -> Ty:
    return INT_BY_BITS[bits]


def reg_name(insn, reg_id: int) -> str:
    return insn.reg_name(reg_id)


def read_reg(ctx: Ctx, name: str) -> Temp:
    """The value of a register (any width) as a temp of its width."""
    g, off, bits = REGS[name]
    b = ctx.b
    v = b.get(g)
    if bits == 128 or bits == 64:
        return v
    if off:
        v = b.shr(v, off)
    return b.trunc(v, ity(bits))


def write_reg(ctx: Ctx, name: str, v: Value) -> None:
    """Write a register: 32-bit writes zero-extend, 8/16-bit writes merge (x86 rules)."""
    g, off, bits = REGS[name]
    b = ctx.b
    if bits in (64, 128):
        b.put(g, v)
    elif bits == 32:
        b.put(g, b.zext(v, I64))
    else:
        old = b.get(g)
        mask = ((1 << bits) - 1) << off
        kept = b.and_(old, b.c(~mask, I64))
        new = b.zext(v, I64)
        if off:
            new = b.shl(new, b.c(off, I64))
        b.put(g, b.or_(kept, new))


def ea(ctx: Ctx, op, segment: bool = True) -> Temp:
    """Effective (guest virtual) address of a memory operand, with fs/gs bases applied
    (segment=False: without them, as lea computes it)."""
    b, insn, m = ctx.b, ctx.insn, op.mem
    addr: Value | None = None
    if m.base in (X.X86_REG_RIP, X.X86_REG_EIP):  # eip: rip-relative with a 0x67 prefix
        addr = b.c(ctx.next_pc + m.disp, I64)
    else:
        if m.base != 0:
            addr = _addr_reg(ctx, insn.reg_name(m.base))
        if m.index != 0:
            idx = _addr_reg(ctx, insn.reg_name(m.index))
            if m.scale != 1:
                idx = b.shl(idx, b.c(m.scale.bit_length() - 1, I64))
            addr = idx if addr is None else b.add(addr, idx)
        if addr is None:
            addr = b.c(m.disp, I64)
        elif m.disp:
            addr = b.add(addr, b.c(m.disp, I64))
    if insn.addr_size == 4:  # 0x67 prefix: 32-bit address arithmetic (the segment base is added after)
        addr = b.zext(b.trunc(addr, I32), I64)
    if segment and m.segment == X.X86_REG_FS:
        addr = b.add(addr, b.get("fs_base"))
    elif segment and m.segment == X.X86_REG_GS:
        addr = b.add(addr, b.get("gs_base"))
    return addr if isinstance(addr, Temp) else b.mov(addr)


def _addr_reg(ctx: Ctx, name: str) -> Temp:
    v = read_reg(ctx, name)
    return ctx.b.zext(v, I64) if v.ty != I64 else v


def read_op(ctx: Ctx, op, ty: Ty | None = None) -> Value:
    """Read a register, immediate or memory operand at its size (or at ty if given)."""
    b = ctx.b
    size_ty = ty or ity(op.size * 8)
    if op.type == X.X86_OP_REG:
        v = read_reg(ctx, ctx.insn.reg_name(op.reg))
        if v.ty != size_ty:
            v = b.trunc(v, size_ty) if v.ty.bits > size_ty.bits else b.zext(v, size_ty)
        return v
    if op.type == X.X86_OP_IMM:
        return b.c(op.imm, size_ty)
    if op.type == X.X86_OP_MEM:
        return b.ld(ea(ctx, op), size_ty)
    raise NotImplementedError(f"operand type {op.type}")


def write_op(ctx: Ctx, op, v: Value) -> None:
    if op.type == X.X86_OP_REG:
        write_reg(ctx, ctx.insn.reg_name(op.reg), v)
    elif op.type == X.X86_OP_MEM:
        ctx.b.st(ea(ctx, op), v)
    else:
        raise NotImplementedError(f"write to operand type {op.type}")


class Place:
    """An operand resolved once, for read-modify-write instructions (add [mem], reg; xchg;
    bts; ...): a memory operand's address is computed a single time.

        >>> p = Place(ctx, insn.operands[0]); p.write(ctx.b.add(p.read(), one))
    """

    def __init__(self, ctx: Ctx, op, ty: Ty | None = None):
        self.ctx = ctx
        self.op = op
        self.ty = ty or ity(op.size * 8)
        self.addr = ea(ctx, op) if op.type == X.X86_OP_MEM else None

    @property
    def is_mem(self) -> bool:
        return self.addr is not None

    def read(self) -> Value:
        if self.addr is not None:
            return self.ctx.b.ld(self.addr, self.ty)
        return read_op(self.ctx, self.op, self.ty)

    def write(self, v: Value) -> None:
        if self.addr is not None:
            self.ctx.b.st(self.addr, v)
        else:
            write_op(self.ctx, self.op, v)


__all__ = ["Ctx", "Place", "REGS", "ea", "read_op", "write_op", "read_reg", "write_reg", "ity",
           "I8", "I16", "I32", "I64", "I128"]
