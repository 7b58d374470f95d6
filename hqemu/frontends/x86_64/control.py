"""x86-64 control transfer and the stack: jmp, jcc, call, ret, loop, jrcxz, push, pop, pushfq,
popfq, leave, enter.

Every transfer ends the IR block: a direct one with `exit jump target`, a conditional one
with `exit_if cond, jump, target` then `exit jump next_pc`, an indirect one with `exit_ind`.
Operands are read before the stack pointer moves (push rsp pushes the old value, call [rsp]
jumps through the old top), and pop computes a memory destination's address after rsp has
moved, as the manual says.

    e8 xx xx xx xx   call f   ->  st rsp-8, next_pc; put rsp; exit jump f
    c3               ret      ->  t = ld rsp; put rsp, rsp+8; exit_ind t
"""

from __future__ import annotations

from capstone import x86_const as X

from hqemu.ir import I16, I64, Temp, Value

from .flags import CONDITION_CODES, FLAG_BITS, USER_FLAGS, cond, load_rflags, rflags
from .operands import Ctx, read_op, read_reg, write_op, write_reg
from .registry import lifter


def push(ctx: Ctx, v: Value) -> None:
    """Store v (i64, or i16 with a 0x66 prefix) below rsp, then move rsp."""
    b = ctx.b
    sp = b.sub(b.get("rsp"), v.ty.bits // 8)
    b.st(sp, v)
    b.put("rsp", sp)


def pop(ctx: Ctx, ty=I64) -> Temp:
    b = ctx.b
    sp = b.get("rsp")
    v = b.ld(sp, ty)
    b.put("rsp", b.add(sp, ty.bits // 8))
    return v


def _target(ctx: Ctx, op) -> int | Value:
    """A direct target as an int, an indirect one (register or memory) as an i64 value."""
    if op.type == X.X86_OP_IMM:
        return op.imm & 0xFFFFFFFFFFFFFFFF
    return read_op(ctx, op, I64)


def _goto(ctx: Ctx, t: int | Value) -> None:
    if isinstance(t, int):
        ctx.b.exit("jump", t)
    else:
        ctx.b.exit_ind(t)


@lifter("jmp")
def lift_jmp(ctx: Ctx) -> None:
    _goto(ctx, _target(ctx, ctx.insn.operands[0]))


@lifter(*("j" + cc for cc in CONDITION_CODES))
def lift_jcc(ctx: Ctx) -> None:
    b = ctx.b
    b.exit_if(cond(b, ctx.mnemonic[1:]), "jump", _target(ctx, ctx.insn.operands[0]))
    b.exit("jump", ctx.next_pc)


@lifter("call")
def lift_call(ctx: Ctx) -> None:
    t = _target(ctx, ctx.insn.operands[0])
    push(ctx, ctx.b.c(ctx.next_pc, I64))
    _goto(ctx, t)


@lifter("ret")
def lift_ret(ctx: Ctx) -> None:
    b = ctx.b
    sp = b.get("rsp")
    t = b.ld(sp, I64)
    extra = ctx.insn.operands[0].imm if ctx.insn.operands else 0
    b.put("rsp", b.add(sp, 8 + extra))
    b.exit_ind(t)


def _count_reg(ctx: Ctx) -> str:
    return "ecx" if ctx.insn.addr_size == 4 else "rcx"


@lifter("loop", "loope", "loopne")
def lift_loop(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.mnemonic
    reg = _count_reg(ctx)
    c = b.sub(read_reg(ctx, reg), 1)
    write_reg(ctx, reg, c)
    go = b.setcond("ne", c, 0)
    if m != "loop":
        go = b.and_(go, cond(b, "e" if m == "loope" else "ne"))
    b.exit_if(go, "jump", _target(ctx, ctx.insn.operands[0]))
    b.exit("jump", ctx.next_pc)


@lifter("jrcxz", "jecxz")
def lift_jrcxz(ctx: Ctx) -> None:
    b = ctx.b
    c = read_reg(ctx, "rcx" if ctx.mnemonic == "jrcxz" else "ecx")
    b.exit_if(b.setcond("eq", c, 0), "jump", _target(ctx, ctx.insn.operands[0]))
    b.exit("jump", ctx.next_pc)


# --- stack ---------------------------------------------------------------------------------------
@lifter("push")
def lift_push(ctx: Ctx) -> None:
    (op,) = ctx.insn.operands
    push(ctx, read_op(ctx, op, I16 if op.size == 2 else I64))


@lifter("pop")
def lift_pop(ctx: Ctx) -> None:
    (op,) = ctx.insn.operands
    v = pop(ctx, I16 if op.size == 2 else I64)
    write_op(ctx, op, v)  # a [rsp+...] destination sees the incremented rsp


@lifter("pushfq", "pushf")
def lift_pushf(ctx: Ctx) -> None:
    f = rflags(ctx.b)
    push(ctx, f if ctx.mnemonic == "pushfq" else ctx.b.trunc(f, I16))


@lifter("popfq", "popf")
def lift_popf(ctx: Ctx) -> None:
    """The flags a user program can change: CF PF AF ZF SF DF OF NT AC ID (flags.USER_FLAGS);
    the 16-bit popf leaves the upper ones (AC, ID) as they were."""
    wide = ctx.mnemonic == "popfq"
    v = pop(ctx, I64 if wide else I16)
    names = USER_FLAGS if wide else tuple(f for f in USER_FLAGS if FLAG_BITS[f] < 16)
    load_rflags(ctx.b, ctx.b.zext(v, I64), names)


@lifter("leave")
def lift_leave(ctx: Ctx) -> None:
    b = ctx.b
    fp = b.get("rbp")
    v = b.ld(fp, I64)
    b.put("rsp", b.add(fp, 8))
    b.put("rbp", v)


@lifter("enter")
def lift_enter(ctx: Ctx) -> None:
    """enter size, level: the manual's nested-frame algorithm, unrolled (level < 32)."""
    b = ctx.b
    size_op, level_op = ctx.insn.operands
    size, level = size_op.imm & 0xFFFF, level_op.imm & 0x1F
    push(ctx, b.get("rbp"))
    frame = b.get("rsp")
    if level:
        fp = b.get("rbp")
        for i in range(1, level):
            push(ctx, b.ld(b.sub(fp, 8 * i), I64))
        push(ctx, frame)
    b.put("rbp", frame)
    b.put("rsp", b.sub(b.get("rsp"), size))


__all__ = ["push", "pop"]
