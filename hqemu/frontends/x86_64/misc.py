"""x86-64 data moves, flag instructions, the CPU model (CPUID) and the system instructions.

The CPU model advertises a feature only when every instruction that feature adds has a
lifter (FEATURES: one line per bit, checked against LIFTERS once all lifting modules are
imported), so glibc never picks a string function we would answer with SIGILL. POPCNT,
LZCNT (ABM) and BMI1 are kept off on purpose (POLICY_OFF): without them `rep bsf`, which
gcc emits for __builtin_ctz, is the plain bsf that old CPUs execute, and glibc keeps its
SSE2 string functions.

    >>> cpuid(0, 0)                     # (7, ebx, ecx, edx): vendor "AuthenticAMD" in ebx:edx:ecx
    >>> has_feature("cx16")             # True once cmpxchg16b has a lifter
    >>> hwcap()                         # AT_HWCAP: CPUID.1:EDX

rdtsc reads a 1 GHz monotonic counter (helpers.py); syscall leaves the unit with
`exit syscall` after setting rcx and r11 as the kernel does.
"""

from __future__ import annotations

import functools
import struct

from capstone import x86_const as X

from hqemu.ir import I8, I16, I32, I64

from .flags import CONDITION_CODES, FLAG_BITS, cond, load_rflags, rflags
from .operands import REGS, Ctx, Place, ea, ity, read_op, read_reg, write_op, write_reg
from .registry import LIFTERS, lifter

# --- the CPU model -------------------------------------------------------------------------------
VENDOR = b"AuthenticAMD"
# An AMD K8-like part (family 0xf): glibc sizes its caches from leaves 0x80000005/6 on AMD,
# and a family below 0x17 keeps it off leaf 0x8000001d, which we do not model.
FAMILY, MODEL, STEPPING = 0xF, 0x6B, 2
BRAND = b"hqemu virtual x86-64 CPU"
MAX_BASIC_LEAF = 7
MAX_EXT_LEAF = 0x80000008

_SSE3 = ("addsubpd", "addsubps", "haddpd", "haddps", "hsubpd", "hsubps", "lddqu", "movddup",
         "movshdup", "movsldup")
_SSSE3 = ("pabsb", "pabsw", "pabsd", "palignr", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd",
          "phsubsw", "pmaddubsw", "pmulhrsw", "pshufb", "psignb", "psignw", "psignd")
_SSE41 = ("blendpd", "blendps", "blendvpd", "blendvps", "dppd", "dpps", "extractps", "insertps",
          "movntdqa", "mpsadbw", "packusdw", "pblendvb", "pblendw", "pcmpeqq", "pextrb", "pextrd",
          "pextrq", "phminposuw", "pinsrb", "pinsrd", "pinsrq", "pmaxsb", "pmaxsd", "pmaxud", "pmaxuw",
          "pminsb", "pminsd", "pminud", "pminuw", "pmovsxbw", "pmovsxbd", "pmovsxbq", "pmovsxwd",
          "pmovsxwq", "pmovsxdq", "pmovzxbw", "pmovzxbd", "pmovzxbq", "pmovzxwd", "pmovzxwq",
          "pmovzxdq", "pmuldq", "pmulld", "ptest", "roundpd", "roundps", "roundsd", "roundss")
_SSE42 = ("crc32", "pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm", "pcmpgtq")

# name, leaf, register, bit, the mnemonics that must all have a lifter for it to be advertised
FEATURES: tuple[tuple[str, int, str, int, tuple[str, ...]], ...] = (
    ("fpu", 1, "edx", 0, ("fld", "fstp", "fldcw", "fnstcw")),
    ("tsc", 1, "edx", 4, ("rdtsc",)),
    ("cx8", 1, "edx", 8, ("cmpxchg8b",)),
    ("clflush", 1, "edx", 19, ("clflush",)),  # with the line size in CPUID.1:EBX[15:8]
    ("cmov", 1, "edx", 15, tuple("cmov" + cc for cc in CONDITION_CODES)),
    ("mmx", 1, "edx", 23, ("emms", "paddb")),  # sse.py lifts no mm-register forms yet
    ("fxsr", 1, "edx", 24, ("fxsave", "fxrstor")),
    ("sse", 1, "edx", 25, ("movaps", "addps", "mulps", "ldmxcsr", "stmxcsr")),
    ("sse2", 1, "edx", 26, ("movdqa", "paddq", "addpd", "cvtsi2sd", "cvttsd2si")),
    ("sse3", 1, "ecx", 0, _SSE3),
    ("ssse3", 1, "ecx", 9, _SSSE3),
    ("cx16", 1, "ecx", 13, ("cmpxchg16b",)),
    ("sse4_1", 1, "ecx", 19, _SSE41),
    ("sse4_2", 1, "ecx", 20, _SSE42),
    ("popcnt", 1, "ecx", 23, ("popcnt",)),
    ("bmi1", 7, "ebx", 3, ("tzcnt", "andn", "bextr", "blsi", "blsmsk", "blsr")),
    ("lahf_lm", 0x80000001, "ecx", 0, ("lahf", "sahf")),
    ("abm", 0x80000001, "ecx", 5, ("lzcnt",)),
    ("syscall", 0x80000001, "edx", 11, ("syscall",)),
    ("nx", 0x80000001, "edx", 20, ()),
    ("rdtscp", 0x80000001, "edx", 27, ("rdtscp",)),
    ("lm", 0x80000001, "edx", 29, ()),
)
# implemented but not advertised, see the module docstring; a test may empty this set
POLICY_OFF = {"popcnt", "abm", "bmi1"}
# leaf-1 EDX bits AMD repeats in leaf 0x80000001 EDX
_AMD_MIRROR = 0x0183F3FF


@functools.cache
def features() -> frozenset[str]:
    """The advertised features; call only after every lifting module is imported (lift.py)."""
    return frozenset(name for name, _, _, _, mnems in FEATURES
                     if name not in POLICY_OFF and all(m in LIFTERS for m in mnems))


def has_feature(name: str) -> bool:
    return name in features()


def _bits(leaf: int, reg: str) -> int:
    have = features()
    return sum(1 << bit for name, lf, r, bit, _ in FEATURES if lf == leaf and r == reg and name in have)


def _signature() -> int:
    base_fam, ext_fam = (FAMILY, 0) if FAMILY < 0xF else (0xF, FAMILY - 0xF)
    return (STEPPING | (MODEL & 0xF) << 4 | base_fam << 8 | (MODEL >> 4) << 16 | ext_fam << 20)


def _words(s: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(s) // 4}I", s)


def cpuid(leaf: int, sub: int = 0) -> tuple[int, int, int, int]:
    """(eax, ebx, ecx, edx) of CPUID leaf/subleaf; unknown leaves read as zeros, as on AMD."""
    leaf &= 0xFFFFFFFF
    if leaf == 0:
        ebx, edx, ecx = _words(VENDOR)
        return MAX_BASIC_LEAF, ebx, ecx, edx
    if leaf == 1:
        # ebx: the CLFLUSH line size in qwords (only with CLFSH), one logical processor, APIC id 0
        line = 64 // 8 if has_feature("clflush") else 0
        return _signature(), line << 8 | 1 << 16, _bits(1, "ecx"), _bits(1, "edx")
    if leaf == 7:
        return (0, _bits(7, "ebx"), 0, 0) if sub == 0 else (0, 0, 0, 0)
    if leaf == 0x80000000:
        ebx, edx, ecx = _words(VENDOR)
        return MAX_EXT_LEAF, ebx, ecx, edx
    if leaf == 0x80000001:
        edx = _bits(leaf, "edx") | (_bits(1, "edx") & _AMD_MIRROR)
        return _signature(), 0, _bits(leaf, "ecx"), edx
    if 0x80000002 <= leaf <= 0x80000004:
        i = (leaf - 0x80000002) * 4
        return _words(BRAND.ljust(48, b"\0"))[i:i + 4]
    if leaf == 0x80000005:  # L1: 32 KiB, 8-way, 64-byte lines (data in ecx, instructions in edx)
        l1 = 32 << 24 | 8 << 16 | 1 << 8 | 64
        return 0, 0, l1, l1
    if leaf == 0x80000006:  # L2 512 KiB 16-way; L3 8 MiB 16-way (AMD's way code 8 = 16 ways)
        return 0, 0, 512 << 16 | 8 << 12 | 1 << 8 | 64, 16 << 18 | 8 << 12 | 1 << 8 | 64
    if leaf == 0x80000008:  # 48-bit physical and virtual addresses, one core
        return 48 | 48 << 8, 0, 0, 0
    return 0, 0, 0, 0


def hwcap() -> tuple[int, int]:
    """AT_HWCAP (CPUID.1:EDX on x86-64) and AT_HWCAP2 (no FSGSBASE)."""
    return cpuid(1)[3], 0


# --- data moves ----------------------------------------------------------------------------------
def _ops(ctx: Ctx):
    return ctx.insn.operands


@lifter("mov", "movabs")
def lift_mov(ctx: Ctx) -> None:
    dst, src = _ops(ctx)
    for op in (dst, src):  # moves to and from segment or control registers: not in user mode
        if op.type == X.X86_OP_REG and ctx.insn.reg_name(op.reg) not in REGS:
            raise NotImplementedError("mov with a segment register")
    write_op(ctx, dst, read_op(ctx, src, ity(dst.size * 8)))


@lifter("movzx", "movsx", "movsxd")
def lift_movx(ctx: Ctx) -> None:
    dst, src = _ops(ctx)
    v = read_op(ctx, src)
    ty = ity(dst.size * 8)
    if v.ty.bits > ty.bits:
        v = ctx.b.trunc(v, ty)
    else:
        v = ctx.b.zext(v, ty) if ctx.mnemonic == "movzx" else ctx.b.sext(v, ty)
    write_op(ctx, dst, v)


@lifter("lea")
def lift_lea(ctx: Ctx) -> None:
    dst, src = _ops(ctx)
    addr = ea(ctx, src, segment=False)  # lea ignores segment overrides
    write_op(ctx, dst, ctx.b.trunc(addr, ity(dst.size * 8)))


@lifter("xchg")
def lift_xchg(ctx: Ctx) -> None:
    a, c = _ops(ctx)
    pa = Place(ctx, a)
    pc_ = Place(ctx, c, pa.ty)
    va, vc = pa.read(), pc_.read()
    pa.write(vc)
    pc_.write(va)


@lifter("cbw", "cwde", "cdqe")
def lift_cbw(ctx: Ctx) -> None:
    src, dst = {"cbw": ("al", "ax"), "cwde": ("ax", "eax"), "cdqe": ("eax", "rax")}[ctx.mnemonic]
    write_reg(ctx, dst, ctx.b.sext(read_reg(ctx, src), ity(REGS[dst][2])))


@lifter("cwd", "cdq", "cqo")
def lift_cwd(ctx: Ctx) -> None:
    a, d = {"cwd": ("ax", "dx"), "cdq": ("eax", "edx"), "cqo": ("rax", "rdx")}[ctx.mnemonic]
    v = read_reg(ctx, a)
    write_reg(ctx, d, ctx.b.sar(v, v.ty.bits - 1))


@lifter("bswap")
def lift_bswap(ctx: Ctx) -> None:
    (op,) = _ops(ctx)
    v = read_op(ctx, op)
    if v.ty.bits == 16:  # undefined in the manual; real CPUs and Unicorn give zero
        write_op(ctx, op, ctx.b.c(0, I16))
        return
    write_op(ctx, op, ctx.b.bswap(v))


@lifter("xlatb")
def lift_xlat(ctx: Ctx) -> None:
    b = ctx.b
    base = b.get("rbx") if ctx.insn.addr_size == 8 else b.zext(read_reg(ctx, "ebx"), I64)
    addr = b.add(base, b.zext(read_reg(ctx, "al"), I64))
    if ctx.insn.addr_size == 4:
        addr = b.zext(b.trunc(addr, I32), I64)
    write_reg(ctx, "al", b.ld(addr, I8))


@lifter(*("set" + cc for cc in CONDITION_CODES))
def lift_setcc(ctx: Ctx) -> None:
    (dst,) = _ops(ctx)
    write_op(ctx, dst, ctx.b.zext(cond(ctx.b, ctx.mnemonic[3:]), I8))


@lifter(*("cmov" + cc for cc in CONDITION_CODES))
def lift_cmov(ctx: Ctx) -> None:
    """The source is read (and may fault) and a 32-bit destination is zero-extended even when
    the condition is false, as on hardware."""
    dst, src = _ops(ctx)
    ty = ity(dst.size * 8)
    v = read_op(ctx, src, ty)
    old = read_op(ctx, dst, ty)
    write_op(ctx, dst, ctx.b.select(cond(ctx.b, ctx.mnemonic[4:]), v, old))


# --- flag instructions ---------------------------------------------------------------------------
@lifter("clc", "stc", "cmc", "cld", "std")
def lift_flag_op(ctx: Ctx) -> None:
    b, m = ctx.b, ctx.mnemonic
    if m == "cmc":
        b.put("cf", b.xor(b.get("cf"), 1))
    else:
        b.put("df" if m[2] == "d" else "cf", int(m[0] == "s"))


@lifter("lahf")
def lift_lahf(ctx: Ctx) -> None:
    write_reg(ctx, "ah", ctx.b.trunc(rflags(ctx.b), I8))


@lifter("sahf")
def lift_sahf(ctx: Ctx) -> None:
    load_rflags(ctx.b, ctx.b.zext(read_reg(ctx, "ah"), I64), ("cf", "pf", "af", "zf", "sf"))


assert FLAG_BITS["sf"] == 7  # lahf/sahf rely on the arithmetic flags living in RFLAGS' low byte


# --- system --------------------------------------------------------------------------------------
@lifter("cpuid")
def lift_cpuid(ctx: Ctx) -> None:
    b = ctx.b
    leaf = b.zext(read_reg(ctx, "eax"), I64)
    sub = b.zext(read_reg(ctx, "ecx"), I64)
    outs = b.call("x86_cpuid", leaf, sub)
    for name, v in zip(("eax", "ebx", "ecx", "edx"), outs):
        write_reg(ctx, name, b.trunc(v, I32))


@lifter("rdtsc", "rdtscp")
def lift_rdtsc(ctx: Ctx) -> None:
    b = ctx.b
    (t,) = b.call("x86_rdtsc")
    write_reg(ctx, "eax", b.trunc(t, I32))
    write_reg(ctx, "edx", b.trunc(b.shr(t, 32), I32))
    if ctx.mnemonic == "rdtscp":
        write_reg(ctx, "ecx", b.c(0, I32))  # IA32_TSC_AUX: cpu 0


@lifter("syscall")
def lift_syscall(ctx: Ctx) -> None:
    """The kernel returns with rcx = the next rip and r11 = RFLAGS: programs may see both."""
    b = ctx.b
    b.put("rcx", ctx.next_pc)
    b.put("r11", rflags(b))
    b.exit("syscall", ctx.next_pc)


# How Linux reports the instructions a user-mode program may not run.
_TRAPS = {
    "ud2": "sigill", "ud1": "sigill", "ud0": "sigill",
    "hlt": "sigsegv", "cli": "sigsegv", "sti": "sigsegv", "in": "sigsegv", "out": "sigsegv",
    "insb": "sigsegv", "insw": "sigsegv", "insd": "sigsegv",
    "outsb": "sigsegv", "outsw": "sigsegv", "outsd": "sigsegv",
    "int": "sigsegv",  # int n: the IDT gates are kernel-only (except int3)
    "int1": "sigtrap", "int3": "sigtrap",
}


@lifter(*_TRAPS)
def lift_trap(ctx: Ctx) -> None:
    ctx.b.exit(_TRAPS[ctx.mnemonic], ctx.pc)


@lifter("nop", "endbr64", "endbr32", "pause", "lfence", "mfence", "sfence", "prefetchnta",
        "prefetcht0", "prefetcht1", "prefetcht2", "prefetchw", "prefetch", "clflush")
def lift_nop(ctx: Ctx) -> None:
    """No effect: single-threaded, no caches to hint or flush; a nop's memory operand is not
    accessed (clflush of an unmapped address does not fault here, as in QEMU)."""


__all__ = ["cpuid", "features", "has_feature", "hwcap", "FEATURES", "POLICY_OFF", "VENDOR"]
