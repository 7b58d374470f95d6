"""x86 string instructions: movs, stos, lods, cmps, scas at every width, with and without rep.

A single iteration is plain IR (load, store, pointer steps of +-size chosen by DF). A rep
form is one call to a helper (helpers.py) that runs the whole loop at Python speed: musl's
memcpy/memset are `rep movsq`/`rep stosq`, and a self-looping block would pay one block
dispatch per element. The helpers keep the exact element-by-element meaning, including
overlapping forward moves that replicate a pattern, and leave rcx/rsi/rdi/flags as the last
iteration does. A fault inside a rep helper may leave the registers at a chunk boundary
(the contract only requires the pc to be exact). The source (rsi side of movs, lods, cmps)
may carry an fs: or gs: override: its base is added to rsi's address, and the helper gets
it as an argument; the es:rdi destination cannot be overridden in 64-bit mode.

    f3 48 a5   rep movsq   ->  call x86_rep_movs(8, 8, 0)
    64 f3 a4   rep movsb fs:[rsi] ->  call x86_rep_movs(1, 8, fs_base)
    aa         stosb       ->  st rdi, al; rdi += 1 - 2*df
"""

from __future__ import annotations

from capstone import x86_const as X

from hqemu.ir import I64, Temp, Value

from .flags import flags_sub
from .operands import Ctx, ea, ity, read_reg, write_reg
from .registry import lifter

# opcode byte (the even one of each pair) -> kind
_KINDS = {0xA4: "movs", 0xA6: "cmps", 0xAA: "stos", 0xAC: "lods", 0xAE: "scas"}
_ACC = {1: "al", 2: "ax", 4: "eax", 8: "rax"}


def is_string_op(insn) -> bool:
    """The string form of a mnemonic SSE shares (movsd, cmpsd): a one-byte opcode A4-AF."""
    return (insn.opcode[0] & 0xFE) in _KINDS and insn.opcode[1] == 0


def _step(ctx: Ctx, size: int) -> Temp:
    """+size when DF is clear, -size when set: size - 2 * size * df."""
    b = ctx.b
    return b.sub(b.c(size, I64), b.shl(b.get("df"), (2 * size).bit_length() - 1))


def _advance(ctx: Ctx, reg: str, step: Value) -> None:
    """reg += step at the address size (a 0x67 prefix steps esi/edi, zero-extending)."""
    b = ctx.b
    if ctx.insn.addr_size == 4:
        name = {"rsi": "esi", "rdi": "edi"}[reg]
        write_reg(ctx, name, b.trunc(b.add(b.get(reg), step), ity(32)))
    else:
        b.put(reg, b.add(b.get(reg), step))


def _mem_ops(ctx: Ctx):
    """The operands as (rsi side, rdi side); either may be absent (stos, lods, scas)."""
    src = dst = None
    for op in ctx.insn.operands:
        if op.type == X.X86_OP_MEM:
            base = ctx.insn.reg_name(op.mem.base)
            if base in ("rsi", "esi"):
                src = op
            elif base in ("rdi", "edi"):
                dst = op
    return src, dst


_LEGACY_PREFIXES = frozenset((0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67))


def _rep_kind(ctx: Ctx) -> int:
    """0: no rep; 1: rep/repe/repz (F3); 2: repne/repnz (F2). Read from the bytes: capstone
    drops the F2 of `f2 a5`, taking it for the mandatory prefix of SSE's movsd."""
    kind = 0
    for byte in ctx.insn.bytes:
        if byte in (0xF2, 0xF3):
            kind = 1 if byte == 0xF3 else 2
        elif byte not in _LEGACY_PREFIXES and not 0x40 <= byte <= 0x4F:
            break
    return kind


def _segment_base(ctx: Ctx, op) -> Value:
    """The fs/gs base an operand's segment override adds (0 without one)."""
    seg = op.mem.segment
    if seg == X.X86_REG_FS:
        return ctx.b.get("fs_base")
    if seg == X.X86_REG_GS:
        return ctx.b.get("gs_base")
    return ctx.b.c(0, I64)


def lift_string(ctx: Ctx) -> None:
    b, insn = ctx.b, ctx.insn
    kind = _KINDS[insn.opcode[0] & 0xFE]
    size = insn.operands[0].size  # every operand of a string op has the element size
    rep = _rep_kind(ctx)
    src, dst = _mem_ops(ctx)
    if rep:
        args = [b.c(size, I64), b.c(insn.addr_size, I64)]
        if kind in ("cmps", "scas"):
            args.append(b.c(int(rep == 1), I64))  # 1: repeat while equal, 0: while not equal
        if kind in ("movs", "lods", "cmps"):
            args.append(_segment_base(ctx, src))
        b.call(f"x86_rep_{kind}", *args)
        return
    ty = ity(size * 8)
    step = _step(ctx, size)
    if kind == "movs":
        v = b.ld(ea(ctx, src), ty)
        b.st(ea(ctx, dst), v)
    elif kind == "stos":
        b.st(ea(ctx, dst), read_reg(ctx, _ACC[size]))
    elif kind == "lods":
        write_reg(ctx, _ACC[size], b.ld(ea(ctx, src), ty))
    elif kind == "scas":
        a = read_reg(ctx, _ACC[size])
        c = b.ld(ea(ctx, dst), ty)
        flags_sub(b, a, c, b.sub(a, c))
    else:  # cmps compares [rsi] with [rdi]: flags of [rsi] - [rdi]
        a = b.ld(ea(ctx, src), ty)
        c = b.ld(ea(ctx, dst), ty)
        flags_sub(b, a, c, b.sub(a, c))
    if src is not None:
        _advance(ctx, "rsi", step)
    if dst is not None:
        _advance(ctx, "rdi", step)


lifter("movsb", "movsw", "movsq", "stosb", "stosw", "stosd", "stosq", "lodsb", "lodsw", "lodsd",
       "lodsq", "cmpsb", "cmpsw", "cmpsq", "scasb", "scasw", "scasd", "scasq")(lift_string)
lifter("movsd", "cmpsd", when=is_string_op)(lift_string)

__all__ = ["lift_string", "is_string_op"]
