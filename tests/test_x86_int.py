"""The x86-64 integer lifters against Unicorn, one instruction at a time (tests/x86oracle.py).

Each family below encodes its instructions here (every operand size, register and memory
forms, immediates) and runs them from seeded random states mixed with edge values (0, 1, -1,
signed min/max, shift counts 0, 1, w-1, w, > w); every GPR, flag, the next pc and the data
page must match Unicorn. CASES cases per family; `make fuzz` (HQEMU_FUZZ=1) multiplies them.
Random sequences of 3-8 instructions (test_sequences_vs_unicorn) run through the frontend and
the quick tier, with and without the cheap passes, against Unicorn; SEQ_CASES of them.
HQEMU_SEED=... draws other inputs.

The documented differences from Unicorn (QEMU 5's x86 model), where hqemu follows the
hardware, are in tests/known_differences.py (cmpxchg32, bswap16, rep-bsf-without-bmi1,
bt-undefined-flags, popf-cpl0), with the code that compares around them. Everything else,
undefined flags included, is compared as Unicorn computes it.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass

import known_differences as KD
import pytest
from x86oracle import (
    CODE,
    DATA,
    DATA_SIZE,
    M64,
    State,
    compare,
    describe_state,
    make_env,
    outcome_of,
    rand_value,
    run_hqemu,
    run_quick,
    run_unicorn,
    run_unicorn_steps,
)

from hqemu.frontends import get, translate_block
from hqemu.frontends.x86_64 import FRONTEND, lift, misc
from hqemu.frontends.x86_64.cpu import GPRS, LAYOUT
from hqemu.frontends.x86_64.registry import LIFTERS
from hqemu.ir import Builder, Const, Unit
from hqemu.ir.interp import run_block
from hqemu.ir.passes import optimize
from hqemu.ir.verify import verify

FUZZ = int(os.environ.get("HQEMU_FUZZ", "0") or 0)
CASES = 60 * (50 if FUZZ else 1)
SEED = os.environ.get("HQEMU_SEED", str(0x86_64))  # another value explores other inputs


def seeded(tag: str, default: int) -> random.Random:
    """The generator of a test with a fixed seed: HQEMU_SEED, when set, draws other inputs."""
    return random.Random(f"{SEED}-{tag}" if "HQEMU_SEED" in os.environ else default)
RAN: Counter[str] = Counter()  # family -> cases compared (printed by test_report)


# --- encoding -----------------------------------------------------------------------------------
@dataclass
class RM:
    """The r/m operand: a register (mod 3) or [base + disp8]."""

    reg: int | None = None
    base: int | None = None
    disp: int = 0


def imm(v: int, n: int) -> bytes:
    return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def enc(opcode: bytes, w: int, reg: int, rm: RM, tail: bytes = b"", pre: bytes = b"",
        rex8: bool = False) -> bytes:
    """prefixes, REX, opcode, ModRM (+ SIB for an rsp/r12 base, + disp8), tail (immediates)."""
    out = bytearray(b"\x66" if w == 16 else b"") + pre
    b = rm.reg if rm.reg is not None else rm.base
    rex = 0x40 | (8 if w == 64 else 0) | (reg >> 3 & 1) << 2 | (b >> 3 & 1)
    if rex != 0x40 or rex8:
        out.append(rex)
    out += opcode
    if rm.reg is not None:
        out.append(0xC0 | (reg & 7) << 3 | (b & 7))
    else:
        out.append(0x40 | (reg & 7) << 3 | (b & 7))
        if b & 7 == 4:
            out.append(0x24)
        out.append(rm.disp & 0xFF)
    return bytes(out + tail)


def enc_plain(opcode: bytes, w: int) -> bytes:
    """No ModRM: operand-size prefix or REX.W, then the opcode (acc/imm forms, moffs, cbw...)."""
    return (b"\x66" if w == 16 else b"\x48" if w == 64 else b"") + opcode


def enc_short(opcode: int, w: int, reg: int, tail: bytes = b"", rex8: bool = False) -> bytes:
    """Register in the opcode's low bits (push r, mov r, imm, bswap, xchg rax, r)."""
    out = bytearray(b"\x66" if w == 16 else b"")
    rex = 0x40 | (8 if w == 64 else 0) | (reg >> 3 & 1)
    if rex != 0x40 or rex8:
        out.append(rex)
    out.append(opcode + (reg & 7))
    return bytes(out + tail)


BASES = (3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)  # base registers a memory operand may use


def mem_rm(rng: random.Random, st: State, avoid=(), margin: int = 0x200) -> tuple[RM, State]:
    base = rng.choice([b for b in BASES if b not in avoid])
    st = st.with_regs(**{GPRS[base]: DATA + rng.randrange(margin, DATA_SIZE - margin)})
    return RM(base=base, disp=rng.randrange(-128, 128)), st


def any_rm(rng: random.Random, st: State, avoid=(), p_mem: float = 0.35) -> tuple[RM, State]:
    if rng.random() < p_mem:
        return mem_rm(rng, st, avoid)
    return RM(reg=rng.randrange(16)), st


W = (8, 16, 32, 64)
Case = tuple[bytes, State]


# --- families: each yields (code, state) --------------------------------------------------------
def fam_alu(rng, st) -> Case:
    op, w = rng.randrange(8), rng.choice(W)
    wide = w != 8
    reg = rng.randrange(16)
    rm, st = any_rm(rng, st)
    isz = {8: 1, 16: 2, 32: 4, 64: 4}[w]
    form = rng.randrange(5)
    lock = b"\xf0" if rm.base is not None and op != 7 and rng.random() < 0.3 else b""
    if form == 0:
        return enc(bytes([8 * op + wide]), w, reg, rm, pre=lock, rex8=rng.random() < 0.5), st
    if form == 1:
        return enc(bytes([8 * op + 2 + wide]), w, reg, rm, rex8=rng.random() < 0.5), st
    if form == 2:
        v = rng.choice((0, 1, -1, 0x7F, -0x80, rng.getrandbits(32)))
        return enc_plain(bytes([8 * op + 4 + wide]), w) + imm(v, isz), st
    if form == 3:
        v = rng.getrandbits(32) if rng.random() < 0.5 else rng.choice((0, 1, -1, 0x80000000))
        return enc(b"\x80" if w == 8 else b"\x81", w, op, rm, imm(v, isz), pre=lock), st
    if w == 8:
        return enc(b"\x80", w, op, rm, imm(rng.getrandbits(8), 1)), st
    return enc(b"\x83", w, op, rm, imm(rng.choice((0, 1, -1, 0x7F, -0x80, rng.getrandbits(8))), 1)), st


def fam_test(rng, st) -> Case:
    w = rng.choice(W)
    wide = w != 8
    isz = {8: 1, 16: 2, 32: 4, 64: 4}[w]
    rm, st = any_rm(rng, st)
    form = rng.randrange(3)
    if form == 0:
        return enc(bytes([0x84 + wide]), w, rng.randrange(16), rm, rex8=rng.random() < 0.5), st
    if form == 1:
        return enc_plain(bytes([0xA8 + wide]), w) + imm(rng.getrandbits(32), isz), st
    return enc(bytes([0xF6 + wide]), w, 0, rm, imm(rng.getrandbits(32), isz)), st


def fam_unary(rng, st) -> Case:
    w = rng.choice(W)
    rm, st = any_rm(rng, st)
    if rng.random() < 0.5:
        return enc(bytes([0xFE if w == 8 else 0xFF]), w, rng.randrange(2), rm, rex8=rng.random() < 0.5), st
    return enc(bytes([0xF6 if w == 8 else 0xF7]), w, rng.choice((2, 3)), rm, rex8=rng.random() < 0.5), st


def _count(rng, w: int) -> int:
    return rng.choice((0, 1, 2, w - 1, w, w + 1, 31, 32, 33, 63, 64, rng.randrange(256)))


def _shift_case(rng, st, digits) -> Case:
    w = rng.choice(W)
    wide = w != 8
    rm, st = any_rm(rng, st, avoid=(1,))
    d = rng.choice(digits)
    form = rng.randrange(3)
    rex8 = rng.random() < 0.5
    if form == 0:
        return enc(bytes([0xC0 + wide]), w, d, rm, imm(_count(rng, w), 1), rex8=rex8), st
    if form == 1:
        return enc(bytes([0xD0 + wide]), w, d, rm, rex8=rex8), st
    st = st.with_regs(rcx=(st.reg("rcx") & ~0xFF) | _count(rng, w))
    return enc(bytes([0xD2 + wide]), w, d, rm, rex8=rex8), st


def fam_shift(rng, st) -> Case:
    return _shift_case(rng, st, (4, 5, 6, 7))  # shl shr sal sar


def fam_rotate(rng, st) -> Case:
    return _shift_case(rng, st, (0, 1, 2, 3))  # rol ror rcl rcr


def fam_shld(rng, st) -> Case:
    w = rng.choice((16, 32, 64))
    rm, st = any_rm(rng, st, avoid=(1,))
    base = rng.choice((0xA4, 0xAC))  # shld, shrd
    if rng.random() < 0.5:
        return enc(bytes([0x0F, base]), w, rng.randrange(16), rm, imm(_count(rng, w), 1)), st
    st = st.with_regs(rcx=(st.reg("rcx") & ~0xFF) | _count(rng, w))
    return enc(bytes([0x0F, base + 1]), w, rng.randrange(16), rm), st


def fam_muldiv(rng, st) -> Case:
    w = rng.choice(W)
    digit = rng.choice((4, 5, 6, 7))  # mul imul div idiv
    rm, st = any_rm(rng, st, avoid=(0, 2))
    if digit >= 6 and rng.random() < 0.8:  # mostly divisions that do not trap
        m = (1 << w) - 1
        if digit == 6:
            hi = rng.randrange(0, 4) if w > 8 else 0
            st = st.with_regs(rdx=st.reg("rdx") & ~m | hi, rax=st.reg("rax"))
        else:
            lo = st.reg("rax") & m
            sign = m if lo >> (w - 1) else 0
            if w == 8:
                st = st.with_regs(rax=st.reg("rax") & ~0xFFFF | (sign & 0xFF) << 8 | lo)
            else:
                st = st.with_regs(rdx=st.reg("rdx") & ~m | sign)
    return enc(bytes([0xF6 if w == 8 else 0xF7]), w, digit, rm, rex8=rng.random() < 0.5), st


def fam_imul(rng, st) -> Case:
    w = rng.choice((16, 32, 64))
    rm, st = any_rm(rng, st)
    reg = rng.randrange(16)
    form = rng.randrange(3)
    if form == 0:
        return enc(b"\x0f\xaf", w, reg, rm), st
    if form == 1:
        return enc(b"\x69", w, reg, rm, imm(rng.getrandbits(32), 2 if w == 16 else 4)), st
    return enc(b"\x6b", w, reg, rm, imm(rng.getrandbits(8), 1)), st


def fam_bt(rng, st) -> Case:
    w = rng.choice((16, 32, 64))
    if rng.random() < 0.5:
        rm, st = any_rm(rng, st)
        return enc(b"\x0f\xba", w, rng.choice((4, 5, 6, 7)), rm, imm(rng.randrange(256), 1)), st
    reg = rng.randrange(16)
    rm, st = any_rm(rng, st, avoid=(reg,), p_mem=0.5)
    if rm.base is not None:  # a bit offset that keeps the word inside the data
        st = st.with_regs(**{GPRS[reg]: rng.randrange(-2048, 2048)})
    return enc(bytes([0x0F, rng.choice((0xA3, 0xAB, 0xB3, 0xBB))]), w, reg, rm), st


def fam_bitscan(rng, st) -> Case:
    """bsf/bsr, and F3 0F BC/BD with the CPU model's default (no BMI1/ABM: they are bsf/bsr)."""
    w = rng.choice((16, 32, 64))
    rm, st = any_rm(rng, st)
    if rng.random() < 0.3:
        st = st.with_regs(**{GPRS[rm.reg if rm.reg is not None else 0]: 0})
    op = rng.choice((0xBC, 0xBD))
    return enc(bytes([0x0F, op]), w, rng.randrange(16), rm, pre=rng.choice((b"", b"\xf3"))), st


def fam_counts(rng, st) -> Case:
    """popcnt/tzcnt/lzcnt with the features switched on (see test_family_counts)."""
    w = rng.choice((16, 32, 64))
    rm, st = any_rm(rng, st)
    if rng.random() < 0.3:
        st = st.with_regs(**{GPRS[rm.reg if rm.reg is not None else 0]: 0})
    return enc(bytes([0x0F, rng.choice((0xB8, 0xBC, 0xBD))]), w, rng.randrange(16), rm, pre=b"\xf3"), st


def fam_mov(rng, st) -> Case:
    w = rng.choice(W)
    wide = w != 8
    isz = {8: 1, 16: 2, 32: 4, 64: 4}[w]
    rm, st = any_rm(rng, st)
    reg = rng.randrange(16)
    form = rng.randrange(7)
    if form == 0:
        return enc(bytes([0x88 + rng.choice((0, 2)) + wide]), w, reg, rm, rex8=rng.random() < 0.5), st
    if form == 6:  # fs:/gs: overrides, with and without a 0x67 prefix (the base is added after)
        seg = rng.choice(("fs_base", "gs_base"))
        setattr(st, seg, DATA + rng.randrange(0x200, DATA_SIZE - 0x400))
        base, a32 = rng.choice(BASES), rng.random() < 0.3
        low = rng.randrange(0, 0x100)
        st = st.with_regs(**{GPRS[base]: (rng.getrandbits(32) << 32 | low) if a32 else low})
        pre = (b"\x64" if seg == "fs_base" else b"\x65") + (b"\x67" if a32 else b"")
        rm = RM(base=base, disp=rng.randrange(0, 128))
        return enc(bytes([0x88 + rng.choice((0, 2)) + wide]), w, reg, rm, pre=pre), st
    if form == 1:
        return enc(bytes([0xC6 + wide]), w, 0, rm, imm(rng.getrandbits(32), isz)), st
    if form == 2:  # mov r, imm (movabs for 64)
        n = {8: 1, 16: 2, 32: 4, 64: 8}[w]
        tail = imm(rng.getrandbits(64), n)
        return enc_short(0xB0 if w == 8 else 0xB8, w, reg, tail, rng.random() < 0.5), st
    if form == 3:  # moffs: A0-A3 with a 64-bit absolute address in the data
        addr = DATA + rng.randrange(0, DATA_SIZE - 8)
        return enc_plain(bytes([0xA0 + rng.choice((0, 2)) + wide]), w) + imm(addr, 8), st
    if form == 4:  # movzx / movsx
        src_w = rng.choice((8, 16))
        dst_w = rng.choice([x for x in (16, 32, 64) if x > src_w])
        op = rng.choice((0xB6, 0xBE)) + (src_w == 16)
        return enc(bytes([0x0F, op]), dst_w, reg, rm, rex8=rng.random() < 0.5), st
    return enc(b"\x63", rng.choice((32, 64)), reg, rm), st  # movsxd


def fam_lea(rng, st) -> Case:
    w = rng.choice((16, 32, 64))
    reg = rng.randrange(16)
    pre = rng.choice((b"", b"", b"", b"\x67", b"\x64"))  # lea ignores a segment override
    form = rng.randrange(3)
    if form == 0:  # [base + disp8]
        base = rng.randrange(16)
        return enc(b"\x8d", w, reg, RM(base=base, disp=rng.randrange(-128, 128)), pre=pre), st
    if form == 1:  # rip-relative
        out = bytearray(b"\x66" if w == 16 else b"") + pre
        rex = 0x40 | (8 if w == 64 else 0) | (reg >> 3) << 2
        if rex != 0x40:
            out.append(rex)
        return bytes(out + bytes([0x8D, (reg & 7) << 3 | 5]) + imm(rng.getrandbits(32), 4)), st
    base, index = rng.randrange(16), rng.choice([i for i in range(16) if i != 4])
    scale = rng.randrange(4)
    out = bytearray(b"\x66" if w == 16 else b"") + pre
    out.append(0x40 | (8 if w == 64 else 0) | (reg >> 3) << 2 | (index >> 3) << 1 | base >> 3)
    out += bytes([0x8D, 0x84 | (reg & 7) << 3, scale << 6 | (index & 7) << 3 | (base & 7)])
    return bytes(out + imm(rng.getrandbits(32), 4)), st


def fam_xchg(rng, st) -> Case:
    w = rng.choice(W)
    form = rng.randrange(4)
    if form == 0 and w != 8:
        return enc_short(0x90, w, rng.randrange(1, 16)), st
    if form == 1 and w in (32, 64):  # bswap
        return _bswap(w, rng.randrange(16)), st
    rm, st = any_rm(rng, st)
    return enc(bytes([0x86 + (w != 8)]), w, rng.randrange(16), rm, rex8=rng.random() < 0.5), st


def _bswap(w: int, reg: int) -> bytes:
    rex = 0x40 | (8 if w == 64 else 0) | reg >> 3
    return (bytes([rex]) if rex != 0x40 else b"") + bytes([0x0F, 0xC8 + (reg & 7)])


def fam_convert(rng, st) -> Case:
    """cbw cwde cdqe cwd cdq cqo, xlat."""
    if rng.random() < 0.2:
        return b"\xd7", st.with_regs(rbx=DATA + rng.randrange(0, DATA_SIZE - 256))
    pre = rng.choice((b"\x66", b"", b"\x48"))
    return pre + rng.choice((b"\x98", b"\x99")), st


def fam_setcc_cmov(rng, st) -> Case:
    cc = rng.randrange(16)
    rm, st = any_rm(rng, st)
    if rng.random() < 0.5:
        return enc(bytes([0x0F, 0x90 + cc]), 8, 0, rm, rex8=rng.random() < 0.5), st
    return enc(bytes([0x0F, 0x40 + cc]), rng.choice((16, 32, 64)), rng.randrange(16), rm), st


def fam_jcc(rng, st) -> Case:
    cc = rng.randrange(16)
    if rng.random() < 0.5:
        return bytes([0x70 + cc, rng.randrange(256)]), st
    return bytes([0x0F, 0x80 + cc]) + imm(rng.randrange(-0x800, 0x800), 4), st


def fam_atomic(rng, st) -> Case:
    """cmpxchg, xadd (with and without lock), cmpxchg8b/16b."""
    lock = b"\xf0" if rng.random() < 0.5 else b""
    form = rng.randrange(5)
    if form == 4:
        rm, st = mem_rm(rng, st)
        w = rng.choice((32, 64))
        addr = st.regs[rm.base] + rm.disp
        if w == 64 and rng.random() < 0.8:  # cmpxchg16b needs 16-byte alignment (else #GP)
            st = st.with_regs(**{GPRS[rm.base]: st.regs[rm.base] - (addr & 15)})
        if rng.random() < 0.5:  # make the compare succeed
            a = st.regs[rm.base] + rm.disp - DATA
            n = 8 if w == 64 else 4
            data = bytearray(st.data)
            data[a:a + 2 * n] = imm(st.reg("rax"), n) + imm(st.reg("rdx"), n)
            st.data = bytes(data)
        return enc(b"\x0f\xc7", w, 1, rm, pre=lock), st
    w = rng.choice(W)
    rm, st = any_rm(rng, st, p_mem=0.5)
    if rm.reg is None and not lock:
        lock = b""
    op = rng.choice((0xB0, 0xC0)) + (w != 8)
    if op in (0xB0, 0xB1) and rng.random() < 0.5:  # make the compare succeed now and then
        if rm.reg is not None:
            st = st.with_regs(rax=st.regs[rm.reg])
        else:
            a = st.regs[rm.base] + rm.disp - DATA
            st = st.with_regs(rax=int.from_bytes(st.data[a:a + 8], "little"))
    return enc(bytes([0x0F, op]), w, rng.randrange(16), rm, pre=lock if rm.reg is None else b"",
               rex8=rng.random() < 0.5), st


def fam_stack(rng, st) -> Case:
    form = rng.randrange(9)
    if form == 0:
        return enc_short(0x50, rng.choice((16, 64)), rng.randrange(16)), st
    if form == 1:
        return enc_short(0x58, rng.choice((16, 64)), rng.randrange(16)), st
    if form == 2:
        return rng.choice((b"\x6a" + imm(rng.getrandbits(8), 1), b"\x68" + imm(rng.getrandbits(32), 4),
                           b"\x66\x6a" + imm(rng.getrandbits(8), 1))), st
    if form == 3:
        rm, st = mem_rm(rng, st)
        return enc(b"\xff", 32, 6, rm), st  # push qword [mem]
    if form == 4:  # pop qword [mem], including [rsp + disp] (addressed after the pop)
        if rng.random() < 0.3:
            return bytes([0x8F, 0x44, 0x24, rng.randrange(0, 64) & 0xF8]), st
        rm, st = mem_rm(rng, st)
        return enc(b"\x8f", 32, 0, rm), st
    if form == 5:
        return rng.choice((b"\x9c", b"\x9d", b"\x66\x9c")), st
    if form == 6:
        return b"\xc9", st.with_regs(rbp=DATA + 0x100 + 8 * rng.randrange(0, 0x300))
    if form == 7:
        st = st.with_regs(rbp=DATA + 0x1000 + 8 * rng.randrange(0, 0x100))
        return b"\xc8" + imm(rng.randrange(0, 0x200), 2) + bytes([rng.randrange(0, 5)]), st
    return b"\x48\x8d\x64\x24" + imm(rng.randrange(-128, 128) & ~7, 1), st  # lea rsp, [rsp+d]


def _code_target(rng) -> int:
    return CODE + rng.randrange(0x20, 0x800)


def fam_branch(rng, st) -> Case:
    form = rng.randrange(9)
    if form == 0:
        return b"\xe8" + imm(rng.randrange(0, 0x800), 4), st
    if form == 1:
        reg = rng.choice([r for r in range(16) if r != 4])
        st = st.with_regs(**{GPRS[reg]: _code_target(rng)})
        return enc(b"\xff", 32, rng.choice((2, 4)), RM(reg=reg)), st  # call / jmp reg
    if form == 2:  # call / jmp [mem]
        rm, st = mem_rm(rng, st)
        a = st.regs[rm.base] + rm.disp - DATA
        data = bytearray(st.data)
        data[a:a + 8] = imm(_code_target(rng), 8)
        st.data = bytes(data)
        return enc(b"\xff", 32, rng.choice((2, 4)), rm), st
    if form in (3, 4):  # ret, ret imm16
        a = st.reg("rsp") - DATA
        data = bytearray(st.data)
        data[a:a + 8] = imm(_code_target(rng), 8)
        st.data = bytes(data)
        return (b"\xc3" if form == 3 else b"\xc2" + imm(rng.randrange(0, 0x100), 2)), st
    if form == 5:
        short, near = b"\xeb" + imm(rng.randrange(256), 1), b"\xe9" + imm(rng.randrange(0, 0x800), 4)
        return rng.choice((short, near)), st
    if form == 6:  # loop family and jrcxz/jecxz, small counts
        st = st.with_regs(rcx=rng.choice((0, 1, 2, 0x100000000, 0x100000001, st.reg("rcx"))))
        op = bytes([rng.choice((0xE0, 0xE1, 0xE2, 0xE3)), rng.randrange(256)])
        return rng.choice((b"", b"\x67")) + op, st
    if form == 7:  # bnd / notrack prefixes
        return rng.choice((b"\xf2\xe9" + imm(0x100, 4), b"\xf2\xc3")), _with_ret(st, rng)
    return b"\xf3\xc3", _with_ret(st, rng)  # repz ret


def _with_ret(st: State, rng) -> State:
    a = st.reg("rsp") - DATA
    data = bytearray(st.data)
    data[a:a + 8] = imm(_code_target(rng), 8)
    st.data = bytes(data)
    return st


def fam_flagops(rng, st) -> Case:
    return rng.choice((b"\xf8", b"\xf9", b"\xf5", b"\xfc", b"\xfd", b"\x9f", b"\x9e")), st


def fam_nop(rng, st) -> Case:
    if rng.random() < 0.4:  # prefetcht0/t1/t2 (0f 18 /1 /2 /3), clflush (0f ae /7): any address, no fault
        rm = RM(base=rng.randrange(16), disp=rng.randrange(-128, 128))
        if rng.random() < 0.25:
            return enc(b"\x0f\xae", 32, 7, rm, rex8=rng.random() < 0.3), st
        return enc(b"\x0f\x18", 32, rng.choice((1, 2, 3)), rm, rex8=rng.random() < 0.3), st
    return rng.choice((b"\x90", b"\x66\x90", b"\x0f\x1f\x44\x00\x00", b"\xf3\x90", b"\xf3\x0f\x1e\xfa",
                       b"\x0f\xae\xf0", b"\x0f\xae\xe8", b"\x0f\xae\xf8", b"\x0f\x18\x00", b"\x0f\x0d\x08",
                       b"\x66\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00")), st


def fam_string(rng, st) -> Case:
    """movs cmps stos lods scas at every size, with rep/repe/repne or none, either DF; now and
    then an fs:/gs: override (it moves the rsi side of movs/cmps/lods; stos/scas ignore it) and
    a 0x67 prefix (esi/edi/ecx, with garbage in the upper halves)."""
    op = rng.choice((0xA4, 0xA6, 0xAA, 0xAC, 0xAE))
    size = rng.choice((1, 2, 4, 8))
    prefixes = [rng.choice((b"", b"\xf3", b"\xf2"))]
    seg = rng.choice((None, None, "fs_base", "gs_base"))
    if seg is not None:
        prefixes.append(b"\x64" if seg == "fs_base" else b"\x65")
    a32 = rng.random() < 0.2
    if a32:
        prefixes.append(b"\x67")
    rng.shuffle(prefixes)
    code = b"".join(prefixes) + (b"\x66" if size == 2 else b"") + (b"\x48" if size == 8 else b"") \
        + bytes([op + (size > 1)])
    n = rng.choice((0, 1, 2, 3, rng.randrange(0, 40), rng.randrange(0, 300)))
    si = DATA + rng.randrange(0x800, DATA_SIZE - 0x800)  # where the source really is
    di = si + rng.choice((0, 1, 3, 8, 16, -8, -3, rng.randrange(-0x700, 0x700)))
    rsi = si
    if seg is not None:  # the base is added to rsi; where it is ignored, a wrong add leaves the data
        base = rng.choice((0, rng.randrange(0, si), 0x7FFF0000))
        setattr(st, seg, base)
        rsi = si - base if op in (0xA4, 0xA6, 0xAC) else si
    high = (lambda: rng.getrandbits(32) << 32) if a32 else (lambda: 0)
    count = n if rng.random() < 0.9 else st.reg("rcx") & ~M64 >> 32 << 32 | n
    st = st.with_regs(rcx=count | high(), rsi=rsi & M64 | high(), rdi=di | high())
    st.flags["df"] = rng.randrange(2)
    data = bytearray(st.data)
    if op in (0xA6, 0xAE) and rng.random() < 0.7:  # runs of equal elements for repe/repne to stop in
        run = rng.randrange(0, 64)
        pat = imm(st.reg("rax"), size) if op == 0xAE else bytes(data[si - DATA:si - DATA + size])
        start = (di if st.flags["df"] == 0 else di - run * size) - DATA
        for k in range(run):
            data[start + k * size:start + (k + 1) * size] = pat
        if op == 0xA6:
            data[start:start + run * size] = data[si - DATA - (di - DATA - start):][:run * size]
    st.data = bytes(data)
    return code, st


FAMILIES = {
    "alu": fam_alu, "test": fam_test, "unary": fam_unary, "shift": fam_shift, "rotate": fam_rotate,
    "shld": fam_shld, "muldiv": fam_muldiv, "imul": fam_imul, "bt": fam_bt, "bitscan": fam_bitscan,
    "mov": fam_mov, "lea": fam_lea, "xchg": fam_xchg, "convert": fam_convert,
    "setcc_cmov": fam_setcc_cmov, "jcc": fam_jcc, "atomic": fam_atomic, "stack": fam_stack,
    "branch": fam_branch, "flagops": fam_flagops, "nop": fam_nop, "string": fam_string,
}


# --- documented differences (tests/known_differences.py) ---------------------------------------
def _skip(code: bytes) -> bool:
    """Cases not compared at all (known_differences: bswap16)."""
    return KD.not_compared(lift.decode(code, CODE))


# the families with the most corner cases get twice the cases
HEAVY = {"alu", "shift", "rotate", "shld", "muldiv", "string", "atomic", "bitscan", "counts"}


def run_family(name: str, n: int | None = None, unicorn_code=None) -> None:
    n = n or CASES * (2 if name in HEAVY else 1)
    rng = random.Random(f"{SEED}-{name}")
    gen = FAMILIES[name]
    failures = []
    for i in range(n):
        code, st = gen(rng, State.random(rng))
        if _skip(code):
            continue
        until, count = (CODE + len(code), 0) if name == "string" else (None, 1)
        want = run_unicorn(unicorn_code(code) if unicorn_code else code, st, until, count)
        if unicorn_code and want.kind == "jump" and want.pc == CODE + len(unicorn_code(code)):
            want.pc = CODE + len(code)
        want = KD.unicorn_cmpxchg32(lift.decode(code, CODE), st, want)
        got = run_hqemu(code, st)
        diffs = compare(want, got)
        RAN[name] += 1
        if diffs:
            insn = lift.decode(code, CODE)
            text = f"{insn.mnemonic} {insn.op_str}" if insn else "(bad)"
            failures.append(f"case {i}: {code.hex()} {text}: " + "; ".join(diffs) + "\n"
                            + describe_state(code, st))
    assert not failures, f"{len(failures)} of {n} differ (HQEMU_SEED={SEED}):\n" + "\n".join(failures[:8])


@pytest.mark.parametrize("name", [f for f in FAMILIES if f != "bitscan"])
def test_family(name: str) -> None:
    run_family(name)


def test_family_bitscan() -> None:
    """Without BMI1/ABM a CPU runs F3 0F BC/BD as bsf/bsr; Unicorn's model has them, so it
    runs the bytes without the F3 (known_differences: rep-bsf-without-bmi1)."""
    assert not misc.has_feature("bmi1") and not misc.has_feature("abm")
    run_family("bitscan", unicorn_code=KD.unicorn_bitscan_code)


def test_family_counts(monkeypatch) -> None:
    """popcnt, tzcnt and lzcnt as the CPU model would lift them with the features on."""
    monkeypatch.setattr(misc, "features", lambda: frozenset({"popcnt", "abm", "bmi1"}))
    monkeypatch.setitem(FAMILIES, "counts", fam_counts)
    run_family("counts")


# --- blocks -------------------------------------------------------------------------------------
LOOP = bytes.fromhex(
    "48 03 06"        # add rax, [rsi]
    "48 83 c6 08"     # add rsi, 8
    "48 31 c3"        # xor rbx, rax
    "48 d1 c3"        # rol rbx, 1
    "ff c9"           # dec ecx
    "75 ef"           # jnz -17 (to the add)
    "48 0f af c3"     # imul rax, rbx
    .replace(" ", ""))


@pytest.mark.parametrize("opt", [False, True])
def test_loop_block(opt: bool) -> None:
    """A loop body lifted by translate_block and run block by block until it falls out,
    against Unicorn running the same loop; with and without the cheap passes."""
    rng = seeded("loop", 7)
    for _ in range(5):
        st = State.random(rng).with_regs(rsi=DATA + 0x100, rcx=rng.randrange(1, 40))
        end = CODE + len(LOOP) - 4  # before the imul: the loop's fall-through
        want = run_unicorn(LOOP, st, until=end, count=0)
        env = make_env(LOOP, st)
        unit = translate_block(get("x86_64"), env.mem, CODE, 64)
        assert unit.guest_insns() == 6  # the jnz ends the block
        if opt:
            optimize(unit)
            verify(unit)
        pc = CODE
        while pc == CODE:
            kind, pc = run_block(unit, env)
        got = outcome_of(env, kind, pc)
        assert not compare(want, got), "; ".join(compare(want, got)) + "\n" + describe_state(LOOP, st)


def test_straight_block_with_passes() -> None:
    """Several flag writers in one block: the passes drop the dead flag writes; what is left
    must still be the state Unicorn computes, through a conditional exit."""
    code = bytes.fromhex("4801d8" "4829cb" "4c0fafc0" "480fbae305" "4819c8" "48d3e2" "7c02" "90" "90")
    rng = seeded("straight", 3)
    for _ in range(30):
        st = State.random(rng)
        want = run_unicorn(code, st, None, count=7)
        for opt in (None, optimize):
            diffs = compare(want, run_hqemu(code, st, max_insns=7, optimize=opt))
            assert not diffs, f"passes {opt is not None}: {'; '.join(diffs)}\n{describe_state(code, st)}"


# --- random instruction sequences -----------------------------------------------------------------
# Short straight-line runs (3-8 instructions, sometimes ending in a jcc) drawn from the families
# above plus chains that make flags flow: adc/sbb after a carry producer, shifts by cl after a
# count is loaded, cmov/setcc/jcc after a compare, push imm; popf. hqemu runs them through
# the frontend and the quick tier, without and with the cheap passes (blocks end where the
# frontend ends them); Unicorn runs them from the same state. Every GPR, flag and data byte.
SEQ_CASES = 300 * (20 if FUZZ else 1)
SEQ_RAN: Counter[str] = Counter()  # "N insns" -> sequences compared (each with and without passes)
SEQ_FAMILIES = ("alu", "test", "unary", "shift", "rotate", "shld", "muldiv", "imul", "bt", "mov", "lea",
                "xchg", "convert", "setcc_cmov", "atomic", "flagops", "nop", "stack", "string")


def seq_adc_chain(rng, st) -> list[Case]:
    """A carry producer (add/sub/cmp/neg/stc/clc/shift) then 1-3 adc/sbb, register or memory."""
    w = rng.choice((32, 64, 64, 16, 8))
    wide = w != 8
    first = rng.choice(("add", "sub", "cmp", "neg", "stc", "clc", "shr"))
    a, c = rng.randrange(16), rng.randrange(16)
    if first in ("stc", "clc"):
        out = [(b"\xf9" if first == "stc" else b"\xf8", st)]
    elif first == "neg":
        out = [(enc(bytes([0xF6 + wide]), w, 3, RM(reg=a)), st)]
    elif first == "shr":
        out = [(enc(bytes([0xD0 + wide]), w, 5, RM(reg=a)), st)]
    else:
        out = [(enc(bytes([{"add": 0x01, "sub": 0x29, "cmp": 0x39}[first] - 1 + wide]), w, c, RM(reg=a)), st)]
    for _ in range(rng.randint(1, 3)):
        op = rng.choice((2, 3))  # adc, sbb
        form = rng.randrange(4)
        reg = rng.randrange(16)
        if form == 0:
            code = enc(bytes([8 * op + wide]), w, reg, RM(reg=rng.randrange(16)))
        elif form == 1:
            rm, st = mem_rm(rng, st)
            code = enc(bytes([8 * op + rng.choice((0, 2)) + wide]), w, reg, rm)
        elif form == 2:
            code = enc(b"\x80" if w == 8 else b"\x83", w, op, RM(reg=reg), imm(rng.choice((0, 1, -1)), 1))
        else:
            isz = {8: 1, 16: 2}.get(w, 4)
            code = enc_plain(bytes([8 * op + 4 + wide]), w) + imm(rng.getrandbits(32), isz)
        out.append((code, st))
    return out


def seq_shift_cl(rng, st) -> list[Case]:
    """mov cl/ecx, count; then a shift, rotate (rcl/rcr too) or shld/shrd by cl."""
    n = _count(rng, 64)
    load = rng.choice((b"\xb1" + imm(n, 1), b"\xb9" + imm(n | rng.getrandbits(24) << 8, 4)))
    w = rng.choice(W)
    rm, st = any_rm(rng, st, avoid=(1,))
    if w != 8 and rng.random() < 0.3:
        w = rng.choice((16, 32, 64))
        return [(load, st), (enc(bytes([0x0F, rng.choice((0xA5, 0xAD))]), w, rng.randrange(16), rm), st)]
    return [(load, st), (enc(bytes([0xD2 + (w != 8)]), w, rng.randrange(8), rm), st)]


def seq_compare_cc(rng, st) -> list[Case]:
    """cmp/test/sub then cmov or setcc on the flags it made."""
    w = rng.choice((16, 32, 64))
    a, c = rng.randrange(16), rng.randrange(16)
    first = enc(bytes([rng.choice((0x39, 0x85, 0x29, 0x31, 0x11))]), w, c, RM(reg=a))
    cc = rng.randrange(16)
    rm, st = any_rm(rng, st)
    if rng.random() < 0.5:
        return [(first, st), (enc(bytes([0x0F, 0x90 + cc]), 8, 0, rm, rex8=rng.random() < 0.5), st)]
    return [(first, st), (enc(bytes([0x0F, 0x40 + cc]), w, rng.randrange(16), rm), st)]


def seq_popf(rng, st) -> list[Case]:
    """push imm32; popf: a flags image with TF, IF and IOPL as user code keeps them (clear, set,
    zero), every other bit random; popf of random stack bytes is in the stack family alone
    (known_differences: popf-cpl0)."""
    v = (rng.getrandbits(32) & ~0x3100 | 0x200) & 0x7FFFFFFF  # positive: push sign-extends
    KD.note("popf-cpl0", "user flags image")
    return [(b"\x68" + imm(v, 4), st), (b"\x9d", st)]


SEQ_CHAINS = {"adc_chain": seq_adc_chain, "shift_cl": seq_shift_cl, "compare_cc": seq_compare_cc,
              "popf": seq_popf}
SEQ_CHAIN_WEIGHTS = (3, 3, 3, 1)


def gen_sequence(rng) -> tuple[list[bytes], State, bool]:
    """(the instructions, the initial state, whether the last is a jcc)."""
    st = State.random(rng)
    parts: list[bytes] = []
    target = rng.randint(3, 8)
    while len(parts) < target:
        if rng.random() < 0.35:
            chain = rng.choices(list(SEQ_CHAINS.values()), SEQ_CHAIN_WEIGHTS)[0](rng, st)
            if len(parts) + len(chain) <= target:
                parts += [code for code, _ in chain]
                st = chain[-1][1]
            continue
        code, st = FAMILIES[rng.choice(SEQ_FAMILIES)](rng, st)
        if KD.sequence_part_ok(lift.decode(code, CODE)):
            parts.append(code)
    branch = len(parts) < 8 and rng.random() < 0.25
    if branch:
        parts.append(FAMILIES["jcc"](rng, st)[0])
    return parts, st, branch


def unicorn_steps(parts: list[bytes], branch: bool) -> list[tuple[int | None, int]]:
    """One Unicorn step per instruction (known_differences: bt-undefined-flags): up to the next
    instruction's address (a rep string op counts one instruction per iteration in Unicorn),
    and a final jcc as one instruction."""
    KD.note("bt-undefined-flags", "sequences stepped")
    steps, end = [], CODE
    for k, part in enumerate(parts):
        end += len(part)
        steps.append((None, 1) if branch and k == len(parts) - 1 else (end, 0))
    return steps


def _check_sequence(label: str, parts: list[bytes], st, branch, failures: list[str],
                    outcomes: Counter) -> None:
    """Run the instructions in Unicorn (one step each) and in the quick tier with and without
    the passes from the same state; a difference goes into failures with the input state."""
    code, n = b"".join(parts), len(parts)
    want = run_unicorn_steps(code, st, unicorn_steps(parts, branch))
    outcomes[want.kind] += 1
    for passes in (False, True):
        diffs = compare(want, run_quick(code, st, n, passes))
        if diffs:
            listing = "; ".join(FRONTEND.disasm(code, CODE))
            failures.append(f"{label} ({'with' if passes else 'without'} passes): {code.hex()}\n"
                            f"  {listing}\n  " + "; ".join(diffs) + "\n" + describe_state(code, st))


def test_sequences_vs_unicorn() -> None:
    rng = random.Random(f"{SEED}-sequences")
    failures, outcomes = [], Counter()
    for i in range(SEQ_CASES):
        parts, st, branch = gen_sequence(rng)
        _check_sequence(f"sequence {i}", parts, st, branch, failures, outcomes)
        SEQ_RAN[f"{len(parts)} insns"] += 1
    assert not failures, f"{len(failures)} of {2 * SEQ_CASES} differ (HQEMU_SEED={SEED}):\n" \
        + "\n".join(failures[:6])
    # most sequences must run to their end, or the test would compare little but signals
    assert outcomes["jump"] >= 0.7 * SEQ_CASES, outcomes


# --- compare fusion --------------------------------------------------------------------------------
# flags.cond computes a condition from the operands of the instruction that last set the flags it
# reads (cmp a, c; jl -> a < c signed) when every one of those flags is still that instruction's.
# These sequences put a flag writer, then 0-3 instructions that write some of the flags (inc/dec
# keep CF, bt/clc/stc/cmc write only CF, rol/ror only CF and OF, sahf five of them, a shift by cl
# maybe none, popf all, rep cmps/scas through a helper), none of them (mov, lea, setcc, lahf, a
# write to the writer's operand registers) or all of them, then setcc/cmovcc and maybe a final
# jcc or loope/loopne: a fusion that ignores an intervening writer, or a wrong fused condition,
# gives a wrong result here.
FUSE_CASES = 500 * (20 if FUZZ else 1)
# not rsp (push/popf need the stack) nor rsi/rdi (cmps/scas address memory through them)
FUSE_REGS = tuple(r for r in range(16) if r not in (4, 6, 7))


def _fuse_operands(rng, st, a: int, c: int) -> State:
    """Related values in the writer's two registers: equal, one apart, opposite signs, or random."""
    x = rand_value(rng)
    how = rng.random()
    if how < 0.3:
        y = x
    elif how < 0.55:
        y = x + rng.choice((1, -1))
    elif how < 0.75:
        y = x ^ rng.choice((0x80, 0x8000, 0x80000000, 1 << 63))
    else:
        return st
    return st.with_regs(**{GPRS[a]: x, GPRS[c]: y})


FUSE_WRITERS = ("cmp", "cmp", "cmp", "cmp", "sub", "sub", "cmp_imm", "cmp_mem", "test", "test", "and",
                "or", "xor", "test_imm", "add", "adc", "sbb", "inc", "dec", "neg", "shl_imm", "sar_imm",
                "imul", "bsf")


def fuse_writer(rng, st, name: str) -> tuple[bytes, State]:
    w = rng.choice((8, 16, 32, 32, 64, 64))
    wide = w != 8
    a, c = rng.choice(FUSE_REGS), rng.choice(FUSE_REGS)
    st = _fuse_operands(rng, st, a, c)
    rex8 = rng.random() < 0.5
    ops = {"cmp": 0x38, "sub": 0x28, "test": 0x84, "and": 0x20, "or": 0x08, "xor": 0x30, "add": 0x00,
           "adc": 0x10, "sbb": 0x18}
    if name in ops:
        return enc(bytes([ops[name] + wide]), w, c, RM(reg=a), rex8=rex8), st
    if name == "cmp_imm":
        v = rng.choice((0, 1, -1, 0x7F, -0x80, rng.getrandbits(8)))
        return enc(b"\x80" if w == 8 else b"\x83", w, 7, RM(reg=a), imm(v, 1), rex8=rex8), st
    if name == "test_imm":
        isz = {8: 1, 16: 2}.get(w, 4)
        return enc(bytes([0xF6 + wide]), w, 0, RM(reg=a), imm(rng.getrandbits(32), isz), rex8=rex8), st
    if name == "cmp_mem":
        rm, st = mem_rm(rng, st, avoid=(c,))
        return enc(bytes([rng.choice((0x38, 0x3A)) + wide]), w, c, rm), st
    if name in ("inc", "dec"):
        return enc(bytes([0xFE + wide]), w, int(name == "dec"), RM(reg=a), rex8=rex8), st
    if name == "neg":
        return enc(bytes([0xF6 + wide]), w, 3, RM(reg=a), rex8=rex8), st
    if name in ("shl_imm", "sar_imm"):
        n = rng.choice((0, 1, 2, w - 1, rng.randrange(32)))
        op = 4 if name == "shl_imm" else 7
        return enc(bytes([0xC0 + wide]), w, op, RM(reg=a), imm(n, 1), rex8=rex8), st
    w = rng.choice((16, 32, 64))
    if name == "imul":
        return enc(b"\x0f\xaf", w, c, RM(reg=a)), st
    return enc(bytes([0x0F, rng.choice((0xBC, 0xBD))]), w, c, RM(reg=a)), st  # bsf/bsr


def fuse_between(rng, st) -> list[tuple[bytes, State]]:
    """One instruction (two for push; popf) that writes some, none or all of the flags."""
    w = rng.choice((16, 32, 64))
    r = rng.choice(FUSE_REGS)
    kind = rng.choice((0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 11, 12))
    if kind == 0:  # inc/dec: CF kept
        return [(enc(bytes([0xFF]), w, rng.randrange(2), RM(reg=r)), st)]
    if kind == 1:  # bt/bts/btr/btc r, imm: CF only
        return [(enc(b"\x0f\xba", w, rng.choice((4, 5, 6, 7)), RM(reg=r), imm(rng.randrange(256), 1)), st)]
    if kind == 2:
        return [(b"\x9e", st)]  # sahf
    if kind == 3:
        return [(rng.choice((b"\xf8", b"\xf9", b"\xf5")), st)]  # clc stc cmc
    if kind == 4:  # rol/ror/rcl/rcr by an immediate: CF and OF (nothing for a count of 0)
        return [(enc(b"\xc1", w, rng.randrange(4), RM(reg=r), imm(rng.choice((0, 1, 3, w)), 1)), st)]
    if kind == 5:  # shl/shr/sar by cl: all, or nothing for a count of 0
        st = st.with_regs(rcx=rng.choice((0, 1, 5, 64, rng.getrandbits(8))))
        return [(enc(b"\xd3", w, rng.choice((4, 5, 7)), RM(reg=r)), st)]
    if kind == 6:  # push imm; popf: all
        v = (rng.getrandbits(32) & ~0x3100 | 0x200) & 0x7FFFFFFF
        KD.note("popf-cpl0", "user flags image")
        return [(b"\x68" + imm(v, 4), st), (b"\x9d", st)]
    if kind == 7:  # mov r, imm32: maybe over one of the writer's operands; no flags
        return [(enc_short(0xB8, 32, r, imm(rand_value(rng), 4)), st)]
    if kind == 8:
        return [(enc(b"\x8d", w, r, RM(base=rng.choice(BASES), disp=rng.randrange(-128, 128))), st)]  # lea
    if kind == 9:
        return [(b"\x9f", st)]  # lahf
    if kind == 10:  # setcc / cmovcc: read the flags, write none
        return [FAMILIES["setcc_cmov"](rng, st)]
    if kind == 12:  # cmps/scas: all flags; with repe/repne a helper call that writes them (if rcx != 0)
        si = DATA + rng.randrange(0x800, DATA_SIZE - 0x800)
        st = st.with_regs(rcx=rng.choice((0, 1, 2, 5)), rsi=si, rdi=si + rng.choice((0, 8, 100)))
        return [(rng.choice((b"", b"\xf3", b"\xf2")) + bytes([rng.choice((0xA6, 0xA7, 0xAE, 0xAF))]), st)]
    return [fuse_writer(rng, st, rng.choice(FUSE_WRITERS))]  # another writer: all (or most)


def fuse_condition(rng, st) -> tuple[bytes, State]:
    cc = rng.randrange(16)
    r = rng.choice(FUSE_REGS)
    if rng.random() < 0.5:
        return enc(bytes([0x0F, 0x90 + cc]), 8, 0, RM(reg=r), rex8=rng.random() < 0.5), st
    return enc(bytes([0x0F, 0x40 + cc]), rng.choice((16, 32, 64)), rng.choice(FUSE_REGS), RM(reg=r)), st


def gen_fusion(rng) -> tuple[list[bytes], State, bool, str]:
    """(the instructions, the initial state, whether the last is a branch, the writer)."""
    st = State.random(rng)
    name = rng.choice(FUSE_WRITERS)
    code, st = fuse_writer(rng, st, name)
    parts = [code]
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
        between = fuse_between(rng, st)
        parts += [code for code, _ in between]
        st = between[-1][1]
        if rng.random() < 0.3:
            code, st = fuse_condition(rng, st)
            parts.append(code)
    for _ in range(rng.randint(1, 3)):
        code, st = fuse_condition(rng, st)
        parts.append(code)
    branch = rng.random() < 0.5
    if branch:
        if rng.random() < 0.2:  # loope/loopne: rcx - 1 != 0 and ZF / not ZF
            st = st.with_regs(rcx=rng.choice((1, 2, rng.getrandbits(16))))
            parts.append(bytes([rng.choice((0xE0, 0xE1)), rng.randrange(256)]))
        else:
            parts.append(FAMILIES["jcc"](rng, st)[0])
    return parts, st, branch, name


def test_fused_conditions_vs_unicorn() -> None:
    rng = random.Random(f"{SEED}-fusion")
    failures, outcomes = [], Counter()
    for i in range(FUSE_CASES):
        parts, st, branch, name = gen_fusion(rng)
        if any(not KD.sequence_part_ok(lift.decode(p, CODE)) for p in parts if p != b"\x9d"):
            continue
        _check_sequence(f"fusion {i}", parts, st, branch, failures, outcomes)
        SEQ_RAN[f"fusion after {name}"] += 1  # reported with the integer sequences
    assert not failures, f"{len(failures)} differ (HQEMU_SEED={SEED}):\n" + "\n".join(failures[:6])
    assert outcomes["jump"] >= 0.8 * sum(outcomes.values()), outcomes


def _conds(code: bytes) -> list[tuple[str, bool]]:
    """The optimized unit's setconds in its last guest instruction: (condition, whether it
    compares an i64 with 0, as a condition read back from the flag slots does)."""
    n = len(FRONTEND.disasm(code, CODE))
    unit = translate_block(get("x86_64"), make_env(code, State.random(random.Random(1))).mem, CODE, n)
    optimize(unit)
    ops = unit.blocks[0].ops
    last = max(i for i, op in enumerate(ops) if op.name == "insn")
    return [(op.consts[0], op.ins[0].ty.bits == 64 and isinstance(op.ins[1], Const) and op.ins[1].value == 0)
            for op in ops[last:] if op.name == "setcond"]


def test_fusion_happens_only_when_valid() -> None:
    """cmp eax, ebx (39 d8) then a condition: fused into one setcond on the 32-bit operands
    when the flags it reads are the cmp's, read back from the flag slots otherwise."""
    fused = {"7c00": "lt", "0f9fc1": "gt", "0f42ca": "ltu", "7600": "leu", "7400": "eq", "7900": "ge",
             "7300": "geu", "7f00": "gt", "7d00": "ge", "7700": "gtu"}
    for tail, cc in fused.items():
        assert _conds(bytes.fromhex("39d8" + tail)) == [(cc, False)], tail
    assert _conds(bytes.fromhex("85c07e00")) == [("le", False)]  # test eax, eax; jle: res <= 0
    # between the cmp and jl (SF, OF) / jbe (CF, ZF): whether each still fuses
    mids = {"ffc1": (False, False),        # inc ecx: CF kept, the others are inc's
            "0fbae105": (True, False),     # bt ecx, 5: CF only
            "f5": (True, False),           # cmc
            "9e": (False, False),          # sahf
            "d1c1": (False, False),        # rol ecx, 1: CF and OF
            "d3e1": (False, False),        # shl ecx, cl: all or none
            "68000200009d": (False, False),  # push; popf
            "89c0": (True, True),          # mov eax, eax: no flags (the cmp's eax is still used)
            "0f94c1": (True, True)}        # sete cl
    for mid, (jl, jbe) in mids.items():
        for tail, ok, cc in (("7c00", jl, "lt"), ("7600", jbe, "leu")):
            want = [(cc, False)] if ok else [("ne", True)]
            assert _conds(bytes.fromhex("39d8" + mid + tail))[-1:] == want, (mid, tail)
    assert _conds(bytes.fromhex("39d8ffc17200")) == [("ltu", False)]  # inc keeps the cmp's CF


# --- what Unicorn cannot judge -------------------------------------------------------------------
def _lift_one(code: bytes):
    st = State.random(random.Random(1))
    return run_hqemu(code, st), st


def test_traps() -> None:
    for code, kind in ((b"\x0f\x0b", "sigill"), (b"\xf4", "sigsegv"), (b"\xcc", "sigtrap"),
                       (b"\xcd\x80", "sigsegv"), (b"\xfa", "sigsegv")):
        out, _ = _lift_one(code)
        assert (out.kind, out.pc) == (kind, CODE), code.hex()


def test_unsupported_and_undecodable() -> None:
    before = sum(lift.UNSUPPORTED.values())
    out, _ = _lift_one(b"\x0f\x04")  # not an x86-64 opcode
    assert (out.kind, out.pc) == ("sigill", CODE)
    out, _ = _lift_one(b"\xc5\xf9\x6f\xc1")  # vmovdqa: AVX, which the CPU model lacks
    assert (out.kind, out.pc) == ("sigill", CODE)
    assert sum(lift.UNSUPPORTED.values()) == before + 2
    assert lift.UNSUPPORTED["vmovdqa"] >= 1


def test_truncated_instruction_faults() -> None:
    unit = Unit("x86_64", FRONTEND.layout)
    b = Builder(unit, unit.new_block(CODE))
    n = FRONTEND.lift_insn(b, b"\x48\xb8\x01\x02", CODE)  # movabs rax, imm64 cut after 4 bytes
    assert n == 1 and unit.blocks[0].ops[-1].consts == ("sigsegv", CODE)


def _run_once(code: bytes, st: State):
    env = make_env(code, st)
    unit = translate_block(get("x86_64"), env.mem, CODE, 1)
    kind, pc = run_block(unit, env)
    return kind, pc, lambda name: env.state[LAYOUT[name].offset >> 3]


def _host_popf_pushf(v: int, wide: bool) -> int:
    """What the host CPU pushes (pushfq) after popping v with popfq (wide) or, from a baseline
    with AC and ID set, with a 16-bit popf; the host's flags are restored after."""
    import ctypes
    import mmap

    # [push 0x240202; popfq;] push rdi; popfq | popfw, lea rsp, [rsp+6]; pushfq; pop rax; push 0x202;
    # popfq; ret
    code = (b"\x57\x9d" if wide else bytes.fromhex("6802022400" "9d" "57" "669d" "488d642406")) \
        + bytes.fromhex("9c58" "6802020000" "9d" "c3")
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
    out = fn(v)
    del fn
    return out


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the host CPU is the oracle")
def test_popf_keeps_the_user_flags_like_the_host() -> None:
    """popf then pushf: the bits user mode may change (CF PF AF ZF SF DF OF NT AC ID) come
    back, IF stays set, IOPL clear, as on the host CPU (Unicorn runs at CPL 0 and differs).
    TF stays clear in the inputs: it would single-step the test process."""
    rng = seeded("popf", 9)
    values = [0x240203, 0x244ED7, 0x4202, 0x40202, 0x200202, 0x3FFEFF, 0xFFFFFFFF & ~0x100]
    values += [rng.getrandbits(32) & ~0x100 for _ in range(40)]
    for wide in (True, False):
        for v in values:
            v &= 0xFFFFFFFF if wide else 0xFFFF
            st = State.random(rng)
            st.flags.update(ac=1, id=1, nt=0)  # the 16-bit case's baseline: AC and ID set
            a = st.reg("rsp") - DATA
            st.data = st.data[:a] + imm(v, 8 if wide else 2) + st.data[a + (8 if wide else 2):]
            code = b"\x9d\x9c" if wide else b"\x66\x9d\x9c"
            got = run_hqemu(code, st, max_insns=2)
            top = got.regs[4] - DATA
            pushed = int.from_bytes(got.data[top:top + 8], "little")
            want = _host_popf_pushf(v, wide)
            assert pushed == want, f"{'popfq' if wide else 'popfw'} {v:#x}: hqemu pushes {pushed:#x}, " \
                f"the host {want:#x}"


def test_syscall_sets_rcx_r11() -> None:
    """The kernel's sysret leaves rcx = the next rip and r11 = RFLAGS."""
    st = State.random(random.Random(2))
    kind, pc, reg = _run_once(b"\x0f\x05", st)
    assert (kind, pc) == ("syscall", CODE + 2)
    assert reg("rcx") == CODE + 2
    assert reg("r11") == st.eflags()


def test_rdtscp() -> None:
    st = State.random(random.Random(4))
    kind, pc, reg = _run_once(b"\x0f\x01\xf9", st)
    assert (kind, pc, reg("rcx")) == ("jump", CODE + 3, 0)  # TSC_AUX: cpu 0
    assert reg("rax") >> 32 == reg("rdx") >> 32 == 0


def test_rdtsc_is_monotonic() -> None:
    env = make_env(b"\x0f\x31", State.random(random.Random(4)))
    unit = translate_block(get("x86_64"), env.mem, CODE, 1)
    seen = []
    for _ in range(3):
        run_block(unit, env)
        lo, hi = (env.state[LAYOUT[r].offset >> 3] for r in ("rax", "rdx"))
        assert lo >> 32 == 0 and hi >> 32 == 0
        seen.append(hi << 32 | lo)
    assert seen == sorted(seen) and seen[0] < seen[-1]


def _cpuid_insn(leaf: int, sub: int = 0) -> tuple[int, int, int, int]:
    """CPUID as a guest sees it: the instruction lifted and run."""
    _, _, reg = _run_once(b"\x0f\xa2", State.random(random.Random(5)).with_regs(rax=leaf, rcx=sub))
    return reg("rax"), reg("rbx"), reg("rcx"), reg("rdx")


# (leaf, register, bit (Intel SDM vol. 2A, CPUID), feature, an instruction it adds (or None)):
# bits the model must not set, since their instructions are not lifted; policy-off features
# (misc.POLICY_OFF: lifted, not advertised) are exempt from the SIGILL check
_EAX, _EBX, _ECX, _EDX = range(4)
NOT_ADVERTISED = (
    (1, _ECX, 1, "pclmulqdq", "660f3a44c100"),
    (1, _ECX, 12, "fma", "c4e2f1a8c2"),
    (1, _ECX, 22, "movbe", "0f38f006"),
    (1, _ECX, 23, "popcnt", "f30fb8c1"),
    (1, _ECX, 25, "aes", "660f38dcc1"),
    (1, _ECX, 26, "xsave", "0fae26"),
    (1, _ECX, 27, "osxsave", "0f01d0"),  # xgetbv
    (1, _ECX, 28, "avx", "c5f96fc1"),
    (1, _ECX, 29, "f16c", "c4e27913c1"),
    (1, _ECX, 30, "rdrand", "0fc7f0"),
    (1, _EDX, 23, "mmx", "0ffcc1"),  # paddb mm0, mm1: sse.py lifts only the xmm forms
    (7, _EBX, 3, "bmi1", "c4e278f2c1"),  # andn
    (7, _EBX, 5, "avx2", "c5fdfec1"),
    (7, _EBX, 8, "bmi2", "c4e263f5c1"),  # pdep
    (7, _EBX, 18, "rdseed", "0fc7f8"),
    (7, _EBX, 19, "adx", "660f38f6c1"),  # adcx
    (7, _EBX, 23, "clflushopt", "660fae3e"),
    (7, _EBX, 29, "sha", "0f38c8c1"),
    (0x80000001, _ECX, 5, "abm", "f30fbdc1"),  # lzcnt
    (0x80000001, _EDX, 22, "mmxext", None),
    (0x80000001, _EDX, 30, "3dnowext", None),
    (0x80000001, _EDX, 31, "3dnow", "0f0e"),  # femms
)
# every feature the model may advertise: one instruction it adds, which must lift and run
# (compared with Unicorn where Unicorn runs it; None: no instruction of its own)
FEATURE_PROBES = {
    "fpu": "d9e8", "tsc": "0f31", "cx8": "0fc70e", "clflush": "0fae3e", "cmov": "0f44c1",
    "fxsr": "0fae06", "sse": "0f58c1", "sse2": "660fd4c1", "sse3": "f20f7cc1", "ssse3": "660f3800c1",
    "cx16": "480fc70e", "sse4_1": "660f3840c1", "sse4_2": "660f3837c1", "popcnt": "f30fb8c1",
    "bmi1": "c4e278f2c1", "lahf_lm": "9f", "abm": "f30fbdc1", "syscall": "0f05", "nx": None,
    "rdtscp": "0f01f9", "lm": "4801d8",
}


def test_cpuid_model() -> None:
    """The model's identity and its consistency with what is lifted."""
    eax, ebx, ecx, edx = _cpuid_insn(0)
    vendor = b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx))
    assert vendor == misc.VENDOR and eax == misc.MAX_BASIC_LEAF
    assert _cpuid_insn(1) == misc.cpuid(1)
    assert FRONTEND.hwcap == (misc.cpuid(1)[3], 0)
    for name, _, _, _, mnems in misc.FEATURES:  # advertised only when implemented
        if misc.has_feature(name):
            assert all(m in LIFTERS for m in mnems), name
    for name in misc.POLICY_OFF:
        assert not misc.has_feature(name)
    brand = b"".join(w.to_bytes(4, "little") for leaf in (0x80000002, 0x80000003, 0x80000004)
                     for w in misc.cpuid(leaf))
    assert brand.rstrip(b"\0") == misc.BRAND
    l2 = misc.cpuid(0x80000006)[2]
    assert (l2 >> 6) & 0x3FFFC00 == 512 << 10  # glibc's reading of the L2 size
    assert misc.cpuid(0x12345) == (0, 0, 0, 0)


def test_cpuid_advertises_nothing_unimplemented() -> None:
    """The bits of features whose instructions are not lifted are clear, as read by the guest's
    cpuid instruction, and those instructions are SIGILL (a CPU without the feature gives #UD)."""
    for leaf, r, bit, name, probe in NOT_ADVERTISED:
        word = _cpuid_insn(leaf)[r]
        assert not word >> bit & 1, f"CPUID.{leaf:#x}:{'abcd'[r]}x bit {bit} ({name}) is set"
        assert not misc.has_feature(name)
        if probe is not None and name not in misc.POLICY_OFF:
            out, _ = _lift_one(bytes.fromhex(probe))
            assert (out.kind, out.pc) == ("sigill", CODE), f"{name}: {probe} gives {out.kind}"
    assert _cpuid_insn(7)[2:] == (0, 0), "CPUID.7:ECX/EDX advertise features"  # no AVX-512 etc.
    assert misc.has_feature("popcnt") == bool(_cpuid_insn(1)[_ECX] >> 23 & 1)
    # the CLFLUSH line size (EBX[15:8], in qwords) goes with the CLFSH bit (EDX bit 19)
    _, ebx, _, edx = _cpuid_insn(1)
    clfsh = edx >> 19 & 1
    assert clfsh == misc.has_feature("clflush")
    assert (ebx >> 8 & 0xFF) == (8 if clfsh else 0), hex(ebx)


@pytest.mark.parametrize("name", sorted(misc.features()))
def test_cpuid_feature_has_lifters(name: str) -> None:
    """Each advertised feature's probe instruction lifts (no SIGILL) and, where Unicorn runs
    it, gives Unicorn's result; features without a probe cannot be advertised."""
    assert misc.has_feature(name)
    assert name in FEATURE_PROBES, f"{name} is advertised but has no probe instruction here"
    probe = FEATURE_PROBES[name]
    if probe is None:
        return
    code = bytes.fromhex(probe)
    rng = random.Random(f"{SEED}-probe-{name}")
    for _ in range(8):
        st = State.random(rng).with_regs(rsi=DATA + 0x100)
        got = run_hqemu(code, st)
        assert got.kind not in ("sigill", "sigsegv"), f"{name}: {probe} gives {got.kind}"
        # a clock, the kernel: nothing to compare; fxsave stores the x87/SSE state, which this
        # oracle does not load (test_x87.py compares it)
        if name not in ("tsc", "rdtscp", "syscall", "fxsr"):
            diffs = compare(run_unicorn(code, st), got)
            assert not diffs, f"{name}: {probe}: " + "; ".join(diffs)


# --- the guest's view of an unimplemented instruction: hqemu's one-line report -------------------
# mov eax, 1; add rbx, rax; jmp over a ud2; lea rcx, [rip]; 5-byte nop: the instruction under test
# comes after a block boundary and is not the first of its block
PRELUDE = bytes.fromhex("b801000000" "4801c3" "eb02" "0f0b" "488d0d00000000" "0f1f440000")
UNIMPLEMENTED = (("movbe", "0f38f00424", "-llvm-mode none"), ("movbe", "0f38f00424", "-llvm-mode block"),
                 ("rdrand", "0fc7f0", "-llvm-mode none"), ("xgetbv", "0f01d0", "-llvm-mode none"),
                 ("paddb", "0ffcc1", "-llvm-mode none"))


def _sigill_line(pc: int, code: bytes) -> str:
    return f"hqemu: uncaught target signal 4 (Illegal instruction) at pc {pc:#x}: instruction bytes " \
        + " ".join(f"{b:02x}" for b in code)


@pytest.mark.parametrize("mnemonic, hexcode, opts", UNIMPLEMENTED, ids=[f"{m}-{o.split()[-1]}"
                                                                        for m, _, o in UNIMPLEMENTED])
def test_unimplemented_instruction_report(mnemonic: str, hexcode: str, opts: str, tmp_path) -> None:
    """An ELF (tests/elfgen.py) runs into an instruction hqemu does not implement: the guest dies
    of SIGILL (status 132) with one stderr line naming the pc where the ELF has the instruction
    and exactly its bytes (the length capstone decodes from the file at that address)."""
    import elfgen
    import guestrun
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    insn = bytes.fromhex(hexcode)
    code = PRELUDE + insn + elfgen.EXIT42
    image = bytearray(elfgen.minimal())
    image[0x1000:0x1000 + len(code)] = code
    image = elfgen.with_phdr(bytes(image), 1, p_filesz=len(code), p_memsz=len(code))
    path = tmp_path / "prog"
    path.write_bytes(image)
    path.chmod(0o755)
    pc = elfgen.BASE + 0x1000 + len(PRELUDE)  # segment 1 maps file offset 0x1000 there
    at_pc = next(Cs(CS_ARCH_X86, CS_MODE_64).disasm(image[0x1000 + len(PRELUDE):][:16], pc, 1))
    assert (at_pc.mnemonic, bytes(at_pc.bytes)) == (mnemonic, insn)
    r = guestrun.run_hqemu(path, [], guestrun.clean_env(), tmp_path, opts.split(), timeout=120)
    assert r.returncode == 128 + 4 and r.stdout == b"", r
    assert r.stderr.decode().splitlines() == [_sigill_line(pc, insn)]


@pytest.mark.parametrize("variant", ["x86_64-glibc", "x86_64-musl"])
def test_ud2_report_names_its_address(variant: str, guest, tmp_path) -> None:
    """tests/guest/crash_ud2.c: the pc in hqemu's SIGILL line is where the ud2 is in main, as the
    ELF's symbol table and capstone find it."""
    import guestrun
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs
    from elftools.elf.elffile import ELFFile

    path = guest(variant, "crash_ud2")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        main = elf.get_section_by_name(".symtab").get_symbol_by_name("main")[0]
        start, size = main["st_value"], main["st_size"]
        text = next(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_flags"] & 1
                    and s["p_vaddr"] <= start < s["p_vaddr"] + s["p_memsz"])
        body = text.data()[start - text["p_vaddr"]:][:size]
    ud2 = [i.address for i in Cs(CS_ARCH_X86, CS_MODE_64).disasm(body, start) if i.mnemonic == "ud2"]
    assert len(ud2) == 1, ud2
    r = guestrun.run_hqemu(path, [], guestrun.clean_env(), tmp_path, ["-llvm-mode", "none"], timeout=120)
    assert r.returncode == 128 + 4, r
    assert r.stderr.decode().splitlines() == [_sigill_line(ud2[0], b"\x0f\x0b")]


def test_init_cpu() -> None:
    cpu = FRONTEND.cpu_struct()
    cpu.rax = 5
    FRONTEND.init_cpu(cpu, 0x401000, 0x7FFF0000)
    assert (cpu.rip, cpu.rsp, cpu.rax, cpu.mxcsr, cpu.fpu_cw, cpu.fpu_tag, cpu.df) == \
        (0x401000, 0x7FFF0000, 0, 0x1F80, 0x37F, 0xFF, 0)
    FRONTEND.set_tls(cpu, 0x1234)
    assert cpu.fs_base == 0x1234
    assert FRONTEND.disasm(b"\x48\x01\xd8\xc3", 0x1000) == ["0x1000: add rax, rbx", "0x1003: ret"]


def test_report() -> None:
    """Per-family case counts (visible with -s); runs last in this module."""
    print("\nx86 integer differential cases:", dict(sorted(RAN.items())))
    print("x86 integer sequences:", dict(sorted(SEQ_RAN.items())))
