"""SSE/SSE2 lifters against Unicorn: one instruction, lifted and run by the reference interpreter,
must leave the same registers, flags and memory as Unicorn's x86-64 CPU given the same state.

Instructions are encoded here from a table (prefix, opcode, operand form), decoded by
capstone, lifted by the registered lifters and run with hqemu.ir.interp; inputs are seeded
random values mixed with edge values (zeros of both signs, denormals, infinities, NaNs with
both signs and payloads, extreme integers). CASES inputs per encoding; HQEMU_FUZZ=1 raises it.

MXCSR is compared whole, exception flags included; tests/test_x86_mxcsr.py adds every rounding
mode, DAZ/FTZ and unmasked exceptions.

Known, documented differences (tests/known_differences.py, compared around):
  - unicorn-vs-host: where Unicorn differs from the host CPU (rcpps/rsqrtps approximations,
    NaN payloads) the host CPU is the oracle and the deviation is counted in
    UNICORN_DEVIATIONS.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import struct
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from known_differences import UNICORN_DEVIATIONS

from hqemu.errors import GuestFault
from hqemu.frontends.x86_64 import fp as _fp  # noqa: F401  (these imports register the lifters)
from hqemu.frontends.x86_64 import sse as _sse  # noqa: F401
from hqemu.frontends.x86_64 import x87 as _x87  # noqa: F401
from hqemu.frontends.x86_64.cpu import GPRS, LAYOUT, X86State
from hqemu.frontends.x86_64.operands import Ctx
from hqemu.frontends.x86_64.registry import LIFTERS
from hqemu.ir import Builder, Unit
from hqemu.ir.ops import F

unicorn = pytest.importorskip("unicorn")
import unicorn.x86_const as U  # noqa: E402
from capstone import CS_ARCH_X86, CS_MODE_64, Cs  # noqa: E402

FUZZ = os.environ.get("HQEMU_FUZZ") == "1"
CASES = 400 if FUZZ else 4  # random inputs per encoding
SEED = os.environ.get("HQEMU_SEED", "0x5EED")  # another value explores other inputs

CODE = 0x1000
DATA = 0x10000  # one page; rsi points into it
DATA_SIZE = 0x1000
BUF = DATA + 0x100  # 16-byte aligned operand buffer

_md = Cs(CS_ARCH_X86, CS_MODE_64)
_md.detail = True

FLAG_BITS = {"cf": 0, "pf": 2, "af": 4, "zf": 6, "sf": 7, "df": 10, "of": 11}
_decoded: dict[bytes, object] = {}


def decode(code: bytes):
    """The capstone instruction at the start of code, decoded once per byte string."""
    insn = _decoded.get(code)
    if insn is None:
        insn = _decoded[code] = next(_md.disasm(code, CODE, count=1))
    return insn


# --- running one instruction under hqemu -----------------------------------------------------

class FlatMem:
    """Guest memory for the interpreter: one page at DATA, everything else faults."""

    def __init__(self, data: bytes):
        self.buf = bytearray(data)

    def _off(self, addr: int, n: int) -> int:
        off = addr - DATA
        if off < 0 or off + n > len(self.buf):
            raise GuestFault(addr)
        return off

    def load(self, addr: int, n: int) -> int:
        o = self._off(addr, n)
        return int.from_bytes(self.buf[o:o + n], "little")

    def store(self, addr: int, n: int, value: int) -> None:
        o = self._off(addr, n)
        self.buf[o:o + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


_units: dict[tuple[bytes, bool], object] = {}


def lift(code: bytes, pc: int = CODE):
    """The IR unit of the one instruction at the start of code (cached by its bytes)."""
    from hqemu.ir.verify import verify

    if code in _units:
        return _units[code]
    insn = next(_md.disasm(code, pc, count=1))
    unit = Unit("x86_64", LAYOUT)
    b = Builder(unit, unit.new_block(pc))
    b.insn(pc, insn.size)
    fn = LIFTERS.get(insn.mnemonic)
    assert fn is not None, f"no lifter for {insn.mnemonic}"
    fn(Ctx(b, insn, pc, pc + insn.size))
    if not (unit.blocks[0].ops[-1].d.flags & F.TERM):
        b.exit("jump", pc + insn.size)
    verify(unit)
    _units[code] = unit
    return unit


@dataclass
class State:
    """The architectural state a test compares."""

    gpr: dict[str, int]
    xmm: list[int]
    flags: dict[str, int]
    mxcsr: int
    mem: bytes
    st: list[tuple[int, int]]  # physical x87 registers (mantissa, sign|exponent)
    fpu_top: int = 0
    fpu_cw: int = 0x37F
    fpu_sw: int = 0  # without TOP
    fpu_tag: int = 0xFF  # bit i: physical register i empty


def _cpu_from(s: State) -> X86State:
    cpu = X86State()
    for r, v in s.gpr.items():
        setattr(cpu, r, v)
    for i, v in enumerate(s.xmm):
        getattr(cpu, f"xmm{i}")[0] = v & (2**64 - 1)
        getattr(cpu, f"xmm{i}")[1] = v >> 64
    for f, v in s.flags.items():
        setattr(cpu, f, v)
    cpu.mxcsr = s.mxcsr
    for i, (mant, se) in enumerate(s.st):
        getattr(cpu, f"st{i}")[0] = mant
        getattr(cpu, f"st{i}")[1] = se
    cpu.fpu_top, cpu.fpu_cw, cpu.fpu_sw, cpu.fpu_tag = s.fpu_top, s.fpu_cw, s.fpu_sw, s.fpu_tag
    return cpu


def _state_of(cpu: X86State, mem: bytes) -> State:
    return State(
        gpr={r: getattr(cpu, r) for r in GPRS},
        xmm=[getattr(cpu, f"xmm{i}")[0] | getattr(cpu, f"xmm{i}")[1] << 64 for i in range(16)],
        flags={f: getattr(cpu, f) for f in FLAG_BITS},
        mxcsr=cpu.mxcsr, mem=mem,
        st=[(getattr(cpu, f"st{i}")[0], getattr(cpu, f"st{i}")[1] & 0xFFFF) for i in range(8)],
        fpu_top=cpu.fpu_top, fpu_cw=cpu.fpu_cw, fpu_sw=cpu.fpu_sw, fpu_tag=cpu.fpu_tag)


def run_hqemu(code: bytes, s: State) -> tuple[tuple[str, int], State]:
    """Run the instruction with the reference interpreter and, when the quick tier is there, also
    compiled by it: both must agree exactly (the interpreter's result is returned)."""
    from hqemu.ir.interp import run_block

    cpu = _cpu_from(s)
    env = SimpleNamespace(cpu=cpu, state=memoryview(cpu).cast("B").cast("Q"), mem=FlatMem(s.mem))
    ex = run_block(lift(code), env)
    out = _state_of(cpu, bytes(env.mem.buf))
    quick = run_quick(code, s)
    if quick is not None:
        qex, qout = quick
        assert (qex, qout) == (ex, out), f"{code.hex()}: the quick tier disagrees with the interpreter: " \
            f"{qex} vs {ex}; " + "; ".join(diff(qout, out)) + "".join(
                f"; R{p} {qout.st[p]} vs {out.st[p]}" for p in range(8) if qout.st[p] != out.st[p])
    return ex, out


_quick: dict[bytes, tuple] = {}
QUICK = os.environ.get("HQEMU_NO_QUICK") != "1"


def run_quick(code: bytes, s: State) -> tuple[tuple[str, int], State] | None:
    """The same instruction compiled by the quick tier (compiled once per encoding over one
    reusable fake env whose state and memory are refilled per case); None if unavailable."""
    if not QUICK:
        return None
    try:
        from test_quick_fakes import FakeEnv

        from hqemu.errors import GuestSignal
        from hqemu.quick import compile_unit
        from hqemu.quick.codegen import SIGNALS
    except ImportError:
        return None
    if code not in _quick:
        env = FakeEnv.window(DATA, DATA_SIZE, s.mem, [0] * (ctypes.sizeof(X86State) // 8))
        _quick[code] = (env, compile_unit(lift(code), env, loop_iters=0))
    env, blk = _quick[code]
    env.cpu_words = memoryview(_cpu_from(s)).cast("B").cast("Q")
    env.state[:] = env.cpu_words
    env.mem.buf[DATA:DATA + DATA_SIZE] = s.mem
    try:
        ex = ("jump", blk.fn())
    except GuestSignal as e:
        ex = ({v: k for k, v in SIGNALS.items()}[e.signo], e.pc)
    except GuestFault:
        return None  # the interpreter reports the same fault as an exception
    return ex, _state_of(env.cpu, bytes(env.mem.buf[DATA:DATA + DATA_SIZE]))


# --- running it under Unicorn ------------------------------------------------------------------

_UC_GPR = {r: getattr(U, f"UC_X86_REG_{r.upper()}") for r in GPRS}


class Uni:
    def __init__(self):
        self.mu = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        self.mu.mem_map(CODE, 0x1000)
        self.mu.mem_map(DATA, DATA_SIZE)

    def run(self, code: bytes, s: State, x87: bool = False) -> State:
        mu = self.mu
        mu.mem_write(CODE, code + b"\x90" * 16)
        mu.mem_write(DATA, s.mem)
        for r, v in s.gpr.items():
            mu.reg_write(_UC_GPR[r], v)
        for i, v in enumerate(s.xmm):
            mu.reg_write(U.UC_X86_REG_XMM0 + i, v)
        mu.reg_write(U.UC_X86_REG_EFLAGS, sum(v << FLAG_BITS[f] for f, v in s.flags.items()) | 2)
        mu.reg_write(U.UC_X86_REG_MXCSR, s.mxcsr)
        if x87:
            mu.reg_write(U.UC_X86_REG_FPCW, s.fpu_cw)
            mu.reg_write(U.UC_X86_REG_FPSW, (s.fpu_sw & ~0x3800) | s.fpu_top << 11)
            mu.reg_write(U.UC_X86_REG_FPTAG, sum(3 << (2 * i) for i in range(8) if s.fpu_tag >> i & 1))
            for i, (mant, se) in enumerate(s.st):
                mu.reg_write(U.UC_X86_REG_FP0 + i, (mant, se))
        n = decode(code).size
        mu.emu_start(CODE, CODE + n, count=1)
        ef = mu.reg_read(U.UC_X86_REG_EFLAGS)
        out = State(
            gpr={r: mu.reg_read(_UC_GPR[r]) for r in GPRS},
            xmm=[mu.reg_read(U.UC_X86_REG_XMM0 + i) for i in range(16)],
            flags={f: ef >> b & 1 for f, b in FLAG_BITS.items()},
            mxcsr=mu.reg_read(U.UC_X86_REG_MXCSR), mem=bytes(mu.mem_read(DATA, DATA_SIZE)), st=s.st)
        if x87:
            sw = mu.reg_read(U.UC_X86_REG_FPSW)
            tag = mu.reg_read(U.UC_X86_REG_FPTAG)
            out.st = [mu.reg_read(U.UC_X86_REG_FP0 + i) for i in range(8)]
            out.fpu_top, out.fpu_cw, out.fpu_sw = sw >> 11 & 7, mu.reg_read(U.UC_X86_REG_FPCW), sw & ~0x3800
            out.fpu_tag = sum(1 << i for i in range(8) if (tag >> (2 * i)) & 3 == 3)
        return out


_uni: Uni | None = None


def uni() -> Uni:
    global _uni
    if _uni is None:
        _uni = Uni()
    return _uni


# --- running it on the host CPU ----------------------------------------------------------------

class Native:
    """Runs one instruction on the host CPU (x86-64 only): the hardware is the final word where
    Unicorn and hqemu disagree. A thunk saves the host's callee-saved registers and FPU/SSE state,
    loads the test state (FXRSTOR, flags, all 16 GPRs), runs the instruction, stores everything
    back (FXSAVE) and restores the host. Memory operands go through rsi (rdi for maskmovdqu),
    which point into a host copy of the DATA page; both are translated both ways."""

    FX, GPR, FLAGS, HOST_RSP, HOST_FX = 0, 512, 640, 648, 1024

    def __init__(self):
        import mmap

        self.page = mmap.mmap(-1, 8192, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.code_addr = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        self.ctx_raw = (ctypes.c_uint8 * (2048 + 64))()
        self.ctx = (ctypes.addressof(self.ctx_raw) + 63) & ~63
        self.data_raw = (ctypes.c_uint8 * (DATA_SIZE + 64))()
        self.data = (ctypes.addressof(self.data_raw) + 63) & ~63
        self.slot_ctx, self.slot_scratch = 0x1000, 0x1008  # page offsets of two 8-byte variables
        self.page[self.slot_ctx:self.slot_ctx + 8] = self.ctx.to_bytes(8, "little")
        self.fn = ctypes.CFUNCTYPE(None)(self.code_addr)
        self._thunks: dict[bytes, bytes] = {}

    def _thunk(self, insn: bytes) -> bytes:
        c = bytearray()

        def d32(v: int) -> bytes:
            return struct.pack("<i", v)

        def rip(slot: int, opcode: bytes) -> None:  # opcode with a rip-relative operand last
            c.extend(opcode)
            c.extend(d32(slot - (len(c) + 4)))

        c += bytes.fromhex("53 55 4154 4155 4156 4157")  # push rbx rbp r12-r15
        rip(self.slot_ctx, b"\x48\x8b\x3d")  # mov rdi, [rip+ctx]
        c += b"\x48\x89\xa7" + d32(self.HOST_RSP)  # mov [rdi+HOST_RSP], rsp
        c += b"\x0f\xae\x87" + d32(self.HOST_FX)  # fxsave [rdi+HOST_FX]
        c += b"\x0f\xae\x0f"  # fxrstor [rdi]
        c += b"\xff\xb7" + d32(self.FLAGS) + b"\x9d"  # push qword [rdi+FLAGS]; popfq
        for r in list(range(16)):
            if r == 7:
                continue
            rex = 0x48 | (4 if r >= 8 else 0)
            c += bytes([rex, 0x8B, 0x80 | (r & 7) << 3 | 7]) + d32(self.GPR + 8 * r)  # mov r, [rdi+..]
        c += b"\x48\x8b\xbf" + d32(self.GPR + 8 * 7)  # mov rdi, [rdi+..]
        c += insn
        rip(self.slot_scratch, b"\x48\x89\x05")  # mov [rip+scratch], rax
        rip(self.slot_ctx, b"\x48\x8b\x05")  # mov rax, [rip+ctx]
        for r in range(1, 16):
            rex = 0x48 | (4 if r >= 8 else 0)
            c += bytes([rex, 0x89, 0x80 | (r & 7) << 3]) + d32(self.GPR + 8 * r)  # mov [rax+..], r
        rip(self.slot_scratch, b"\x48\x8b\x0d")  # mov rcx, [rip+scratch]
        c += b"\x48\x89\x88" + d32(self.GPR)  # mov [rax+GPR], rcx
        c += b"\x48\x8b\xa0" + d32(self.HOST_RSP)  # mov rsp, [rax+HOST_RSP]
        c += b"\x9c\x59" + b"\x48\x89\x88" + d32(self.FLAGS)  # pushfq; pop rcx; mov [rax+FLAGS], rcx
        c += b"\x0f\xae\x00"  # fxsave [rax]
        c += b"\x0f\xae\x88" + d32(self.HOST_FX)  # fxrstor [rax+HOST_FX]
        c += b"\xfc" + bytes.fromhex("415f 415e 415d 415c 5d 5b c3")  # cld; pop r15-r12 rbp rbx; ret
        assert len(c) < self.slot_ctx
        return bytes(c)

    def run(self, code: bytes, s: State) -> State:
        gpr = self.prepare(code, s)
        self.fn()
        return self.result(s, gpr)

    def prepare(self, code: bytes, s: State) -> list[int]:
        """Load the thunk and the state; self.fn() then runs it (a forked child may)."""
        n = decode(code).size
        thunk = self._thunks.get(code[:n])
        if thunk is None:
            thunk = self._thunks[code[:n]] = self._thunk(code[:n])
        self.page[0:len(thunk)] = thunk
        ctypes.memmove(self.data, bytes(s.mem), DATA_SIZE)
        fx = bytearray(512)
        struct.pack_into("<HHB", fx, 0, s.fpu_cw, (s.fpu_sw & ~0x3800) | s.fpu_top << 11, ~s.fpu_tag & 0xFF)
        struct.pack_into("<II", fx, 24, s.mxcsr, 0xFFFF)
        for i in range(8):
            mant, se = s.st[(s.fpu_top + i) & 7]  # FXSAVE holds ST(i), not physical registers
            struct.pack_into("<QH", fx, 32 + 16 * i, mant, se)
        for i in range(16):
            fx[160 + 16 * i:176 + 16 * i] = s.xmm[i].to_bytes(16, "little")
        ctypes.memmove(self.ctx + self.FX, bytes(fx), 512)
        gpr = [s.gpr[r] for r in GPRS]

        def to_host(v: int) -> int:
            return v - DATA + self.data if DATA <= v < DATA + DATA_SIZE else v

        gpr = [to_host(v) if r in ("rsi", "rdi") else v for r, v in zip(GPRS, gpr)]
        ctypes.memmove(self.ctx + self.GPR, struct.pack("<16Q", *gpr), 128)
        flags = sum(v << FLAG_BITS[f] for f, v in s.flags.items()) | 2
        ctypes.memmove(self.ctx + self.FLAGS, struct.pack("<Q", flags), 8)
        return gpr

    def result(self, s: State, gpr: list[int]) -> State:
        out_fx = ctypes.string_at(self.ctx + self.FX, 512)
        out_gpr = list(struct.unpack("<16Q", ctypes.string_at(self.ctx + self.GPR, 128)))
        for i, r in ((6, "rsi"), (7, "rdi")):
            if out_gpr[i] == gpr[i]:
                out_gpr[i] = s.gpr[r]
        ef = struct.unpack("<Q", ctypes.string_at(self.ctx + self.FLAGS, 8))[0]
        cw, sw, ftw = struct.unpack_from("<HHB", out_fx, 0)
        top = sw >> 11 & 7
        st = [(0, 0)] * 8
        for i in range(8):
            st[(top + i) & 7] = struct.unpack_from("<QH", out_fx, 32 + 16 * i)
        return State(
            gpr=dict(zip(GPRS, out_gpr)),
            xmm=[int.from_bytes(out_fx[160 + 16 * i:176 + 16 * i], "little") for i in range(16)],
            flags={f: ef >> b & 1 for f, b in FLAG_BITS.items()},
            mxcsr=struct.unpack_from("<I", out_fx, 24)[0], mem=ctypes.string_at(self.data, DATA_SIZE),
            st=st, fpu_top=top, fpu_cw=cw, fpu_sw=sw & ~0x3800, fpu_tag=~ftw & 0xFF)


_native: Native | None = None
HAVE_NATIVE = platform.machine() in ("x86_64", "AMD64") and os.environ.get("HQEMU_NO_NATIVE") != "1"


def native() -> Native | None:
    global _native
    if _native is None and HAVE_NATIVE:
        _native = Native()
    return _native


# --- inputs ------------------------------------------------------------------------------------

F32_EDGE = [0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,
            0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFA00005, 0x7FC12345,
            0x3F800000, 0xBF800000, 0x3F000000, 0x4F000000, 0xCF000000, 0x4EFFFFFF, 0x5F000000,
            0xDF000000, 0x3FC00000, 0x40200000, 0xBFC00000]
F64_EDGE = [0, 1 << 63, 1, 0x800FFFFFFFFFFFFF, 0x0010000000000000, 0x7FEFFFFFFFFFFFFF,
            0xFFEFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000, 0x7FF8000000000000,
            0xFFF8000000000000, 0x7FF0000000000001, 0xFFF4000000000123, 0x7FF8DEADBEEF0001,
            0x3FF0000000000000, 0xBFF0000000000000, 0x3FE0000000000000, 0x41E0000000000000,
            0xC1E0000000000000, 0x41DFFFFFFFC00000, 0xC1E0000000200000, 0x43E0000000000000,
            0xC3E0000000000000, 0x43DFFFFFFFFFFFFF, 0x3FF8000000000000, 0x4004000000000000,
            0xC004000000000000, 0x4002000000000000, 0xC1E00000001FFFFF]
INT_EDGE = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
            0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF]


def _finite_float(rng: random.Random, bits: int) -> int:
    """A random ordinary value of moderate exponent, so arithmetic results are interesting."""
    x = rng.choice([1.0, -1.0]) * rng.uniform(0.5, 2.0) * 2.0 ** rng.randint(-40, 40)
    if rng.random() < 0.2:
        x = float(rng.randint(-3_000_000_000, 3_000_000_000)) + rng.choice([0.0, 0.5, 0.25, 0.75])
    return struct.unpack("<Q", struct.pack("<d", x))[0] if bits == 64 else \
        struct.unpack("<I", struct.pack("<f", x))[0]


def vec(rng: random.Random, kind: str) -> int:
    """A 128-bit value: lanes of f32 ("s") or f64 ("d") values or integers ("i")."""
    if kind == "i":
        if rng.random() < 0.3:
            return sum(rng.choice([0, 0xFF, 0x80, 0x7F, 1]) << (8 * i) for i in range(16))
        if rng.random() < 0.3:
            return sum((rng.choice(INT_EDGE) & 0xFFFF) << (16 * i) for i in range(8))
        return rng.getrandbits(128)
    w, edge = (32, F32_EDGE) if kind == "s" else (64, F64_EDGE)
    v = 0
    for i in range(128 // w):
        r = rng.random()
        x = rng.choice(edge) if r < 0.45 else _finite_float(rng, w) if r < 0.9 else rng.getrandbits(w)
        v |= x << (i * w)
    return v


def gpr_value(rng: random.Random) -> int:
    if rng.random() < 0.5:
        return rng.choice(INT_EDGE)
    return rng.getrandbits(64) >> rng.choice([0, 0, 32, 48, 56])


def random_state(rng: random.Random, kind: str) -> State:
    mem = bytearray(rng.randbytes(DATA_SIZE))
    for off in range(0x100, 0x140, 16):  # the operand buffer gets lane-shaped values
        mem[off:off + 16] = vec(rng, kind).to_bytes(16, "little")
    gpr = {r: gpr_value(rng) for r in GPRS}
    gpr["rsi"] = BUF
    gpr["rsp"] = DATA + 0x800
    return State(gpr=gpr, xmm=[vec(rng, kind) for _ in range(16)],
                 flags={f: rng.getrandbits(1) if f != "df" else 0 for f in FLAG_BITS},
                 mxcsr=0x1F80, mem=bytes(mem), st=[(0, 0)] * 8)


# --- encodings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Enc:
    """One instruction form: mandatory prefix, opcode, how ModRM is used, input kind."""

    mnemonic: str
    prefix: bytes
    opcode: bytes
    form: str  # xx: xmm, xmm/m; mx: m, xmm (store); xg: xmm, r/m; gx: r/m, xmm (reg=xmm);
    #            g_x: r, xmm/m (reg=gpr); ext/N: the ModRM reg is N and rm the xmm (shift imm)
    kind: str = "i"  # input lanes: i, s, d
    imm: bool = False
    w: bool = False  # REX.W
    mem_ok: bool = True  # has a memory form for the rm operand
    mem_only: bool = False
    mem_size: int = 16


def encode(e: Enc, reg: int, rm: int | None, imm: int = 0) -> bytes:
    """rm None: memory operand [rsi]."""
    rex = 0x40 | (8 if e.w else 0) | (4 if reg >= 8 else 0) | (1 if rm is not None and rm >= 8 else 0)
    modrm = (0x06 if rm is None else 0xC0 | (rm & 7)) | (reg & 7) << 3
    out = e.prefix + (bytes([rex]) if rex != 0x40 else b"") + e.opcode + bytes([modrm])
    return out + (bytes([imm]) if e.imm else b"")


def _e(spec: str, prefix: str, opcode: str, form: str = "xx", **kw) -> Enc:
    return Enc(spec, bytes.fromhex(prefix), bytes.fromhex(opcode), form, **kw)


ENCODINGS: list[Enc] = [
    # moves
    _e("movaps", "", "0f28"), _e("movaps", "", "0f29", "mx"), _e("movups", "", "0f10"),
    _e("movups", "", "0f11", "mx"), _e("movapd", "66", "0f28"), _e("movupd", "66", "0f11", "mx"),
    _e("movdqa", "66", "0f6f"), _e("movdqa", "66", "0f7f", "mx"), _e("movdqu", "f3", "0f6f"),
    _e("movdqu", "f3", "0f7f", "mx"), _e("movntdq", "66", "0fe7", "mx", mem_only=True),
    _e("movntps", "", "0f2b", "mx", mem_only=True), _e("movntpd", "66", "0f2b", "mx", mem_only=True),
    _e("movapd", "66", "0f29", "mx"), _e("movupd", "66", "0f10"),
    _e("movd", "66", "0f6e", "xg", mem_size=4), _e("movq", "66", "0f6e", "xg", w=True, mem_size=8),
    _e("movd", "66", "0f7e", "gx", mem_size=4), _e("movq", "66", "0f7e", "gx", w=True, mem_size=8),
    _e("movq", "f3", "0f7e", mem_size=8), _e("movq", "66", "0fd6", "mx", mem_size=8),
    _e("movss", "f3", "0f10", kind="s", mem_size=4), _e("movss", "f3", "0f11", "mx", kind="s", mem_size=4),
    _e("movsd", "f2", "0f10", kind="d", mem_size=8), _e("movsd", "f2", "0f11", "mx", kind="d", mem_size=8),
    _e("movlps", "", "0f12", mem_only=True, mem_size=8), _e("movlps", "", "0f13", "mx", mem_only=True),
    _e("movhps", "", "0f16", mem_only=True, mem_size=8), _e("movhps", "", "0f17", "mx", mem_only=True),
    _e("movlpd", "66", "0f12", mem_only=True, mem_size=8), _e("movhpd", "66", "0f17", "mx", mem_only=True),
    _e("movhpd", "66", "0f16", mem_only=True, mem_size=8), _e("movlpd", "66", "0f13", "mx", mem_only=True),
    _e("movhlps", "", "0f12", mem_ok=False), _e("movlhps", "", "0f16", mem_ok=False),
    _e("movnti", "", "0fc3", "gx_store", mem_only=True), _e("movnti", "", "0fc3", "gx_store", w=True,
                                                            mem_only=True),
    # packed integer
    *[_e(m, "66", op) for m, op in [
        ("pxor", "0fef"), ("por", "0feb"), ("pand", "0fdb"), ("pandn", "0fdf"), ("paddb", "0ffc"),
        ("paddw", "0ffd"), ("paddd", "0ffe"), ("paddq", "0fd4"), ("psubb", "0ff8"), ("psubw", "0ff9"),
        ("psubd", "0ffa"), ("psubq", "0ffb"), ("pcmpeqb", "0f74"), ("pcmpeqw", "0f75"),
        ("pcmpeqd", "0f76"), ("pcmpgtb", "0f64"), ("pcmpgtw", "0f65"), ("pcmpgtd", "0f66"),
        ("pminub", "0fda"), ("pmaxub", "0fde"), ("pminsw", "0fea"), ("pmaxsw", "0fee"),
        ("psllw", "0ff1"), ("pslld", "0ff2"), ("psllq", "0ff3"), ("psrlw", "0fd1"), ("psrld", "0fd2"),
        ("psrlq", "0fd3"), ("psraw", "0fe1"), ("psrad", "0fe2"),
        ("punpcklbw", "0f60"), ("punpcklwd", "0f61"), ("punpckldq", "0f62"), ("punpcklqdq", "0f6c"),
        ("punpckhbw", "0f68"), ("punpckhwd", "0f69"), ("punpckhdq", "0f6a"), ("punpckhqdq", "0f6d"),
        ("packuswb", "0f67"), ("packsswb", "0f63"), ("packssdw", "0f6b"), ("pmullw", "0fd5"),
        ("pmulhw", "0fe5"), ("pmulhuw", "0fe4"), ("pmuludq", "0ff4"), ("pmaddwd", "0ff5"),
        ("psadbw", "0ff6"), ("pavgb", "0fe0"), ("pavgw", "0fe3"), ("paddusb", "0fdc"),
        ("paddusw", "0fdd"), ("psubusb", "0fd8"), ("psubusw", "0fd9"), ("paddsb", "0fec"),
        ("paddsw", "0fed"), ("psubsb", "0fe8"), ("psubsw", "0fe9")]],
    *[_e(m, "66", op, f"ext/{n}", imm=True, mem_ok=False) for m, op, n in [
        ("psllw", "0f71", 6), ("psrlw", "0f71", 2), ("psraw", "0f71", 4), ("pslld", "0f72", 6),
        ("psrld", "0f72", 2), ("psrad", "0f72", 4), ("psllq", "0f73", 6), ("psrlq", "0f73", 2),
        ("pslldq", "0f73", 7), ("psrldq", "0f73", 3)]],
    _e("pshufd", "66", "0f70", imm=True), _e("pshuflw", "f2", "0f70", imm=True),
    _e("pshufhw", "f3", "0f70", imm=True),
    _e("pinsrw", "66", "0fc4", "xg", imm=True, mem_size=2), _e("pextrw", "66", "0fc5", "g_x", imm=True,
                                                               mem_ok=False),
    _e("pmovmskb", "66", "0fd7", "g_x", mem_ok=False), _e("movmskps", "", "0f50", "g_x", kind="s",
                                                          mem_ok=False),
    _e("movmskpd", "66", "0f50", "g_x", kind="d", mem_ok=False),
    _e("shufps", "", "0fc6", imm=True, kind="s"), _e("shufpd", "66", "0fc6", imm=True, kind="d"),
    _e("unpcklps", "", "0f14", kind="s"), _e("unpckhps", "", "0f15", kind="s"),
    _e("unpcklpd", "66", "0f14", kind="d"), _e("unpckhpd", "66", "0f15", kind="d"),
    *[_e(m, p, op, kind=k) for m, p, op, k in [
        ("andps", "", "0f54", "s"), ("andpd", "66", "0f54", "d"), ("andnps", "", "0f55", "s"),
        ("andnpd", "66", "0f55", "d"), ("orps", "", "0f56", "s"), ("orpd", "66", "0f56", "d"),
        ("xorps", "", "0f57", "s"), ("xorpd", "66", "0f57", "d")]],
]

# scalar and packed float arithmetic: (prefix, kind, memory size) per suffix
_FSFX = {"ps": ("", "s", 16), "ss": ("f3", "s", 4), "pd": ("66", "d", 16), "sd": ("f2", "d", 8)}
for _m, _op in [("add", "58"), ("mul", "59"), ("sub", "5c"), ("min", "5d"), ("div", "5e"),
                ("max", "5f"), ("sqrt", "51")]:
    for _s, (_p, _k, _n) in _FSFX.items():
        ENCODINGS.append(_e(_m + _s, _p, "0f" + _op, kind=_k, mem_size=_n))
for _m, _op in [("rcp", "53"), ("rsqrt", "52")]:  # the host CPU's approximations
    for _s in ("ps", "ss"):
        _p, _k, _n = _FSFX[_s]
        ENCODINGS.append(_e(_m + _s, _p, "0f" + _op, kind=_k, mem_size=_n))
ENCODINGS.append(_e("maskmovdqu", "66", "0ff7", mem_ok=False))  # stores to [rdi]
for _pred, _name in enumerate(("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord")):
    for _s, (_p, _k, _n) in _FSFX.items():
        ENCODINGS.append(Enc(f"cmp{_name}{_s}", bytes.fromhex(_p), b"\x0f\xc2", "xx", _k, imm=True,
                             mem_size=_n))
ENCODINGS += [
    _e("comiss", "", "0f2f", kind="s", mem_size=4), _e("ucomiss", "", "0f2e", kind="s", mem_size=4),
    _e("comisd", "66", "0f2f", kind="d", mem_size=8), _e("ucomisd", "66", "0f2e", kind="d", mem_size=8),
    _e("cvtsi2sd", "f2", "0f2a", "xg", mem_size=4), _e("cvtsi2sd", "f2", "0f2a", "xg", w=True, mem_size=8),
    _e("cvtsi2ss", "f3", "0f2a", "xg", mem_size=4), _e("cvtsi2ss", "f3", "0f2a", "xg", w=True, mem_size=8),
    *[_e(m, p, op, "g_x", kind=k, w=w, mem_size=n) for m, p, op, k, n in [
        ("cvtsd2si", "f2", "0f2d", "d", 8), ("cvttsd2si", "f2", "0f2c", "d", 8),
        ("cvtss2si", "f3", "0f2d", "s", 4), ("cvttss2si", "f3", "0f2c", "s", 4)] for w in (False, True)],
    _e("cvtsd2ss", "f2", "0f5a", kind="d", mem_size=8), _e("cvtss2sd", "f3", "0f5a", kind="s", mem_size=4),
    _e("cvtdq2pd", "f3", "0fe6", mem_size=8), _e("cvtpd2dq", "f2", "0fe6", kind="d"),
    _e("cvttpd2dq", "66", "0fe6", kind="d"), _e("cvtdq2ps", "", "0f5b"),
    _e("cvtps2dq", "66", "0f5b", kind="s"), _e("cvttps2dq", "f3", "0f5b", kind="s"),
    _e("cvtps2pd", "", "0f5a", kind="s", mem_size=8), _e("cvtpd2ps", "66", "0f5a", kind="d"),
    _e("ldmxcsr", "", "0fae", "ext/2", mem_only=True), _e("stmxcsr", "", "0fae", "ext/3", mem_only=True),
]


def variants(e: Enc, rng: random.Random) -> list[bytes]:
    """A few register choices (incl. xmm8-15 and the same register twice) and the memory form."""
    out: list[bytes] = []
    imm = 0
    if e.imm:
        imm = rng.getrandbits(8)
        if e.mnemonic.startswith("cmp"):
            imm = ("eq", "lt", "le", "unord", "neq", "nlt", "nle", "ord").index(
                e.mnemonic[3:-2])
        elif e.form.startswith("ext"):
            imm = rng.choice([0, 1, 3, 7, 8, 15, 16, 31, 32, 63, 64, 200])
    if e.form.startswith("ext/"):
        n = int(e.form[4:])
        if e.mem_only:
            return [encode(e, n, None)]
        return [encode(e, n, r, imm) for r in (1, 9)]
    if not e.mem_only:
        out += [encode(e, 1, 2, imm), encode(e, 10, 12, imm)]
        if e.form == "xx":
            out.append(encode(e, 5, 5, imm))
    if e.mem_ok or e.mem_only:  # rsi holds the address; a stored gpr must not be rsi
        out.append(encode(e, 1 if e.form == "gx_store" else 6, None, imm))
    return out


def _ids(e: Enc) -> str:
    return f"{e.mnemonic}-{e.prefix.hex()}{e.opcode.hex()}{'-w' if e.w else ''}-{e.form.replace('/', '')}"


CASE_COUNT: Counter = Counter()


# UNICORN_DEVIATIONS (known_differences.py): "mnemonic: what" -> cases where Unicorn disagreed
# with the host CPU (what: xmm, R (an x87 register), status, flags, ...); these are Unicorn's
# (QEMU softfloat's) deviations, not ours


ALL_FIELDS = ("xmm", "gpr", "flags", "mxcsr", "mem")


def diff(got: State, want: State, fields: tuple[str, ...] = ALL_FIELDS) -> list[str]:
    """What differs between two states, as readable lines (empty: equal)."""
    out = []
    if "xmm" in fields:
        out += [f"xmm{i} = {got.xmm[i]:032x}, expected {want.xmm[i]:032x}"
                for i in range(16) if got.xmm[i] != want.xmm[i]]
    if "gpr" in fields:
        out += [f"{r} = {got.gpr[r]:#x}, expected {want.gpr[r]:#x}" for r in GPRS
                if got.gpr[r] != want.gpr[r]]
    if "flags" in fields:
        out += [f"{f} = {got.flags[f]}, expected {want.flags[f]}" for f in FLAG_BITS
                if got.flags[f] != want.flags[f]]
    if "mxcsr" in fields and got.mxcsr != want.mxcsr:
        out.append(f"mxcsr = {got.mxcsr:#x}, expected {want.mxcsr:#x}")
    if "mem" in fields and got.mem != want.mem:
        first = next(i for i in range(len(got.mem)) if got.mem[i] != want.mem[i])
        out.append(f"memory at {DATA + first:#x}: {got.mem[first:first + 16].hex()}, "
                   f"expected {want.mem[first:first + 16].hex()}")
    return out


def describe_input(code: bytes, s: State, x87: bool = False) -> str:
    """The part of the input state the instruction uses, for a mismatch report: each register
    it reads or writes (capstone's regs_access, explicit and implicit), the flags, MXCSR, the
    bytes of each memory operand (and maskmovdqu's [rdi] block), the x87 stack for x87 cases."""
    from x86oracle import mem_operands, window

    from hqemu.frontends.x86_64.operands import REGS

    insn = decode(code)
    read, written = insn.regs_access()
    names = {insn.reg_name(r) for r in (*read, *written)}
    used = {REGS[n][0] for n in names if n in REGS}
    lines = ["  input: " + " ".join([f"xmm{i}={s.xmm[i]:032x}" for i in range(16) if f"xmm{i}" in used]
                                    + [f"{r}={s.gpr[r]:#x}" for r in GPRS if r in used]),
             f"  mxcsr={s.mxcsr:#x} flags: " + " ".join(f"{f}={v}" for f, v in s.flags.items())]
    places = mem_operands(code, s.gpr, pc=CODE)
    if insn.mnemonic == "maskmovdqu":
        places.append((s.gpr["rdi"], 16))
    for addr, n in places:
        shown = window(s.mem, DATA, addr, n)
        lines.append(f"  memory {addr:#x}+{n}: {shown}" if shown else f"  memory {addr:#x}: outside the data")
    if x87:
        lines.append(f"  x87: cw={s.fpu_cw:#06x} sw={s.fpu_sw:#06x} top={s.fpu_top} tag={s.fpu_tag:#04x} "
                     + " ".join(f"R{p}={se:04x}:{m:016x}" for p, (m, se) in enumerate(s.st)))
    return "\n" + "\n".join(lines)


def check(code: bytes, s: State, got: State, what: str = "", fields=ALL_FIELDS, differ=diff,
          x87: bool = False) -> None:
    """hqemu's result must equal the host CPU's (when it can run the instruction) and Unicorn's,
    except where Unicorn itself disagrees with the host CPU (counted in UNICORN_DEVIATIONS)."""
    insn = decode(code)
    ctx = f"{insn.mnemonic} {insn.op_str} [{code.hex()}] {what}"
    inputs = describe_input(code, s, x87)
    want_u = uni().run(code, s, x87)
    bad_u = differ(got, want_u, fields)
    nat = native()
    if nat is None:
        assert not bad_u, f"{ctx}: vs Unicorn: " + "; ".join(bad_u) + inputs
        return
    want_n = nat.run(code, s)
    bad_n = differ(got, want_n, fields)
    assert not bad_n, f"{ctx}: vs the host CPU: " + "; ".join(bad_n) + inputs
    for what in {line.split(" ")[0].rstrip("0123456789") for line in bad_u}:
        UNICORN_DEVIATIONS[f"{insn.mnemonic}: {what}"] += 1


def compare(code: bytes, s: State, got: State, what: str = "") -> None:
    check(code, s, got, what)


@pytest.mark.parametrize("enc", ENCODINGS, ids=_ids)
def test_sse_vs_unicorn(enc: Enc) -> None:
    rng = random.Random(f"{SEED}-{_ids(enc)}")
    for code in variants(enc, rng):
        insn = decode(code)
        assert insn.mnemonic == enc.mnemonic or (enc.mnemonic.startswith("cmp")), \
            f"{code.hex()} decodes as {insn.mnemonic}, table says {enc.mnemonic}"
        for _ in range(CASES):
            s = random_state(rng, enc.kind)
            if enc.mnemonic == "maskmovdqu":
                s.gpr["rdi"] = BUF + rng.choice([0, 3, 16])
            if enc.mnemonic == "ldmxcsr":  # only valid MXCSR values load without #GP
                mem = bytearray(s.mem)
                mem[0x100:0x104] = (0x1F80 | rng.choice([0, 0x3F])).to_bytes(4, "little")
                s.mem = bytes(mem)
            ex, got = run_hqemu(code, s)
            assert ex == ("jump", CODE + len(code)), f"{insn.mnemonic} {insn.op_str}: exit {ex}"
            compare(code, s, got)
            CASE_COUNT[enc.mnemonic] += 1


# --- beyond the table: rounding, alignment, MMX ------------------------------------------------

def test_cvtsd2si_rounds_half_to_even() -> None:
    """Ties go to even under the default MXCSR; truncation ignores them (oracle: Unicorn)."""
    for x in (0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2147483647.5, -2147483648.5, 4503599627370495.5):
        for enc in (Enc("cvtsd2si", b"\xf2", b"\x0f\x2d", "g_x", "d", w=True),
                    Enc("cvtsd2si", b"\xf2", b"\x0f\x2d", "g_x", "d"),
                    Enc("cvttsd2si", b"\xf2", b"\x0f\x2c", "g_x", "d")):
            code = encode(enc, 0, 1)
            s = random_state(random.Random(1), "d")
            s.xmm[1] = struct.unpack("<Q", struct.pack("<d", x))[0]
            ex, got = run_hqemu(code, s)
            compare(code, s, got, f"x={x}")


@pytest.mark.parametrize("mn, code", [
    ("movaps", "0f2806"), ("movdqa", "660f6f06"), ("pxor", "660fef06"), ("addps", "0f5806"),
    ("pshufd", "660f700600"), ("movntdq", "660fe706")])
def test_misaligned_aligned_forms_fault(mn: str, code: str) -> None:
    """A legacy-SSE 16-byte memory operand must be aligned (Intel SDM: #GP(0); Linux: SIGSEGV)."""
    c = bytes.fromhex(code)
    s = random_state(random.Random(2), "i")
    s.gpr["rsi"] = BUF + 8
    assert run_hqemu(c, s)[0] == ("sigsegv", CODE)
    s.gpr["rsi"] = BUF + 16
    assert run_hqemu(c, s)[0] == ("jump", CODE + len(c))


@pytest.mark.parametrize("code", ["f30f6f06", "0f1006", "f20f5806"])
def test_unaligned_forms_do_not_fault(code: str) -> None:
    """movdqu/movups and scalar memory operands have no alignment rule (compared with Unicorn)."""
    c = bytes.fromhex(code)
    s = random_state(random.Random(3), "d")
    s.gpr["rsi"] = BUF + 3
    ex, got = run_hqemu(c, s)
    assert ex == ("jump", CODE + len(c))
    compare(c, s, got)


def test_reserved_mxcsr_bits_fault() -> None:
    """ldmxcsr/fxrstor of an MXCSR with reserved bits set is a #GP (SIGSEGV); valid values load."""
    s = random_state(random.Random(5), "i")
    for bad, want in ((0x1F80 | 1 << 16, "sigsegv"), (0x1F80 | 1 << 31, "sigsegv"), (0xFFFF, "jump")):
        mem = bytearray(s.mem)
        mem[0x100:0x104] = bad.to_bytes(4, "little")  # ldmxcsr [rsi]
        mem[0x118:0x11C] = bad.to_bytes(4, "little")  # the MXCSR word of an fxrstor image at [rsi]
        s.mem = bytes(mem)
        for code in ("0fae16", "0fae0e"):
            assert run_hqemu(bytes.fromhex(code), s)[0][0] == want, (code, hex(bad))


def test_mmx_forms_are_sigill() -> None:
    """MMX is not implemented (and not advertised): its forms must stop the guest, not corrupt."""
    for code in ("0fefc1", "0f6ec0", "0fd7c1"):  # pxor mm0, mm1; movd mm0, eax; pmovmskb eax, mm1
        c = bytes.fromhex(code)
        assert run_hqemu(c, random_state(random.Random(4), "i"))[0] == ("sigill", CODE)


def test_report_case_counts() -> None:
    """Not a check: prints how many cases each family ran (pytest -s shows it)."""
    print("\nSSE cases per mnemonic:", dict(sorted(CASE_COUNT.items())))
    print("Unicorn deviations from the host CPU:", dict(sorted(UNICORN_DEVIATIONS.items())))
    assert ctypes.sizeof(X86State) > 0
