"""Random valid IR units, and a small env to run them in, for differential tests.

    >>> rng = random.Random(1)
    >>> unit = random_unit(rng, LAYOUT, mem=(0x10000, 0x1000))   # verify(unit) passes
    >>> env = TestEnv.random(rng, LAYOUT, mem=(0x10000, 0x1000))
    >>> kind, pc = run_block(unit, env.copy())

The source of randomness is a random.Random or a hypothesis `data` object (st.data()), so
the same generator serves fast seeded loops and shrinking property tests. Every op of OPS
can appear; inputs are shaped so that the unit has no undefined behaviour (shift counts
below the width, nonzero divisors, no INT_MIN / -1, fptosi only in range), and loads and
stores touch only [mem_base, mem_base + mem_size). Calls go to the irgen_* helpers
registered below (pure, state-reading, state-writing, two results).
"""

from __future__ import annotations

import copy
import random
import struct

from hqemu.errors import GuestFault
from hqemu.ir import (
    CONDS,
    EXIT_KINDS,
    F32,
    F64,
    FCONDS,
    I1,
    I8,
    I16,
    I32,
    I64,
    I128,
    OPS,
    Builder,
    Const,
    Helper,
    StateLayout,
    Temp,
    Ty,
    Unit,
    Value,
    register,
)
from hqemu.ir.interp import f32_from_bits, f64_bits, f64_from_bits

INT_TYS = (I1, I8, I16, I32, I64, I128)
FLOAT_TYS = (F32, F64)
MEM_TYS = (I8, I16, I32, I64, I128, F32, F64)
FROUND_MODES = ("nearest", "floor", "ceil", "trunc")
LANES = (8, 16, 32, 64)
_M64 = 0xFFFFFFFFFFFFFFFF


# --- test helpers, registered once (the state words they touch exist in every real layout) ----
def _h_mix(env, a, b):
    return (a * 0x9E3779B97F4A7C15 + (b ^ (b >> 7))) & _M64


def _h_rd(env, a):
    return (env.state[0] + a) & _M64


def _h_wr(env, a):
    env.state[1] = a


def _h_rw(env, a):
    env.state[0] ^= a
    return env.state[1]


def _h_two(env, a, x):
    return a & 0xFFFF, x * 0.5


HELPER_SIGS = (
    (Helper("irgen_mix", (I64, I64), (I64,), doc="pure"), _h_mix),
    (Helper("irgen_rd", (I64,), (I64,), reads_state=True, doc="reads state word 0"), _h_rd),
    (Helper("irgen_wr", (I64,), (), writes_state=True, doc="writes state word 1"), _h_wr),
    (Helper("irgen_rw", (I64,), (I64,), reads_state=True, writes_state=True, doc="both"), _h_rw),
    (Helper("irgen_two", (I32, F64), (I32, F64), doc="two results"), _h_two),
)
for _sig, _impl in HELPER_SIGS:
    register(_sig, _impl)


# --- randomness from either source -----------------------------------------------------------
class Draw:
    """int(lo, hi) inclusive, choice(seq), chance(percent), from random.Random or hypothesis data."""

    def __init__(self, src):
        if isinstance(src, Draw):
            self._int = src._int
        elif isinstance(src, random.Random):
            self._int = src.randint
        else:
            from hypothesis import strategies as st

            cache: dict[tuple[int, int], object] = {}

            def draw_int(lo: int, hi: int) -> int:
                s = cache.get((lo, hi))
                if s is None:
                    s = cache[(lo, hi)] = st.integers(lo, hi)
                return src.draw(s)

            self._int = draw_int

    def int(self, lo: int, hi: int) -> int:
        return self._int(lo, hi)

    def choice(self, seq):
        return seq[self._int(0, len(seq) - 1)]

    def chance(self, percent: int) -> bool:
        return self._int(0, 99) < percent


def int_value(d: Draw, ty: Ty) -> int:
    """Edge values (0, 1, all ones, the sign bit and its neighbours) half the time."""
    m, top = ty.mask, 1 << (ty.bits - 1)
    k = d.int(0, 7)
    if k == 0:
        return d.int(0, 16) & m
    return (0, 1, m, top, top - 1, m - 1, d.int(0, m), d.int(0, m))[k] & m


_F64_EDGES = (0.0, -0.0, 1.0, -1.5, 0.5, 2.5, -2.5, 1e300, -1e-300, 5e-324, float("inf"), float("-inf"),
              1 / 3, 2.0 ** 63, -(2.0 ** 31), 4503599627370497.0)
_NAN64 = (0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000123, 0x7FF0000000000001)
_F32_EDGES = (0.0, -0.0, 1.0, -1.5, 0.5, 2.5, -2.5, 3.4028234663852886e38, 1.401298464324817e-45,
              float("inf"), float("-inf"), 0.3333333432674408, 2.0 ** 31, 8388609.0)
_NAN32 = (0x7FC00000, 0xFFC00000, 0x7FC00123, 0x7F800001)


def float_value(d: Draw, ty: Ty) -> float:
    """Edges (signed zeros, infinities, subnormals, halves), NaNs with payloads, random bits."""
    k = d.int(0, 5)
    if ty == F32:
        if k <= 2:
            return d.choice(_F32_EDGES)
        if k == 3:
            return f32_from_bits(d.choice(_NAN32))
        return f32_from_bits(d.int(0, 0xFFFFFFFF))
    if k <= 2:
        return d.choice(_F64_EDGES)
    if k == 3:
        return f64_from_bits(d.choice(_NAN64))
    return f64_from_bits(d.int(0, _M64))


def const(d: Draw, ty: Ty) -> Const:
    return Const(float_value(d, ty), ty) if ty.is_float else Const(int_value(d, ty), ty)


# --- the generator ---------------------------------------------------------------------------
class _Gen:
    def __init__(self, d: Draw, unit: Unit, b: Builder, mem: tuple[int, int], pc: int):
        self.d, self.unit, self.b = d, unit, b
        self.mem_base, self.mem_size = mem
        self.pc = pc
        self.pool: dict[Ty, list[Temp]] = {}
        self.globals = list(unit.layout.globals.values())
        self.faults = False

    def add(self, t: Temp | tuple) -> None:
        for x in t if isinstance(t, tuple) else (t,):
            self.pool.setdefault(x.ty, []).append(x)

    def val(self, ty: Ty) -> Value:
        temps = self.pool.get(ty)
        if temps and not self.d.chance(25):
            return self.d.choice(temps)
        return const(self.d, ty)

    def ity(self) -> Ty:
        return self.d.choice(INT_TYS)

    def fty(self) -> Ty:
        return self.d.choice(FLOAT_TYS)

    def addr(self) -> Value:
        d, b = self.d, self.b
        if self.faults and d.chance(10):  # outside the range: the access faults
            return Const(self.mem_base + self.mem_size + d.int(0, 64), I64)
        if d.chance(20):  # a constant address: folding must keep the access
            return Const(self.mem_base + d.int(0, self.mem_size - 16), I64)
        off = b.and_(self.val(I64), Const(self.mem_size // 2 - 1, I64))
        a = b.add(off, Const(self.mem_base + d.int(0, self.mem_size // 2 - 16), I64))
        self.add(a)
        return a

    def emit(self, name: str) -> None:
        """Emit op `name` with valid, well-defined inputs (plus any shaping ops); pool its results."""
        d, b, val = self.d, self.b, self.val
        out: Temp | tuple | None = None
        if name in ("add", "sub", "mul", "and", "or", "xor", "rotl", "rotr"):
            ty = self.ity()
            out = b.emit(name, (ty,), (val(ty), val(ty))).outs[0]
        elif name in ("shl", "shr", "sar"):
            ty = self.ity()
            if d.chance(70):
                cnt = b.and_(val(ty), Const(ty.bits - 1, ty))
            else:
                cnt = Const(d.int(0, ty.bits - 1), ty)
            out = b.emit(name, (ty,), (val(ty), cnt)).outs[0]
        elif name in ("udiv", "urem"):
            ty = self.ity()
            den = b.or_(val(ty), Const(1, ty))
            out = b.emit(name, (ty,), (val(ty), den)).outs[0]
        elif name in ("sdiv", "srem"):
            ty = self.ity()
            num = val(ty)
            num = b.select(b.setcond("eq", num, Const(1 << (ty.bits - 1), ty)), Const(0, ty), num)
            den = b.or_(val(ty), Const(1, ty))
            out = b.emit(name, (ty,), (num, den)).outs[0]
        elif name in ("neg", "not", "clz", "ctz", "popcnt"):
            ty = self.ity()
            out = b.emit(name, (ty,), (val(ty),)).outs[0]
        elif name == "bswap":
            ty = d.choice((I16, I32, I64, I128))
            out = b.emit(name, (ty,), (val(ty),)).outs[0]
        elif name == "mov":
            ty = d.choice(INT_TYS + FLOAT_TYS)
            out = b.emit(name, (ty,), (val(ty),)).outs[0]
        elif name == "parity":
            out = b.emit(name, (I1,), (val(self.ity()),)).outs[0]
        elif name in ("zext", "sext", "trunc"):
            lo, hi = sorted((self.ity(), self.ity()), key=lambda t: t.bits)
            src, dst = (hi, lo) if name == "trunc" else (lo, hi)
            out = b.emit(name, (dst,), (val(src),)).outs[0]
        elif name == "bitcast":
            src, dst = d.choice(((I32, F32), (F32, I32), (I64, F64), (F64, I64), (I64, I64), (F32, F32)))
            out = b.emit(name, (dst,), (val(src),)).outs[0]
        elif name == "setcond":
            ty = self.ity()
            out = b.emit(name, (I1,), (val(ty), val(ty)), (d.choice(CONDS),)).outs[0]
        elif name == "select":
            ty = d.choice(INT_TYS + FLOAT_TYS)
            out = b.emit(name, (ty,), (val(I1), val(ty), val(ty))).outs[0]
        elif name in ("fadd", "fsub", "fmul", "fdiv"):
            ty = self.fty()
            out = b.emit(name, (ty,), (val(ty), val(ty))).outs[0]
        elif name in ("fsqrt", "fneg", "fabs"):
            ty = self.fty()
            out = b.emit(name, (ty,), (val(ty),)).outs[0]
        elif name == "fround":
            ty = self.fty()
            out = b.emit(name, (ty,), (val(ty),), (d.choice(FROUND_MODES),)).outs[0]
        elif name == "fcmp":
            ty = self.fty()
            out = b.emit(name, (I1,), (val(ty), val(ty)), (d.choice(FCONDS),)).outs[0]
        elif name == "fext":
            out = b.emit(name, (F64,), (val(F32),)).outs[0]
        elif name == "ftrunc":
            out = b.emit(name, (F32,), (val(F64),)).outs[0]
        elif name in ("sitofp", "uitofp"):
            out = b.emit(name, (self.fty(),), (val(self.ity()),)).outs[0]
        elif name == "fptosi":
            ty, oty = self.fty(), self.ity()
            x = val(ty)
            in_range = b.fcmp("olt", b.fabs(x), Const(2.0 ** (oty.bits - 1), ty))
            out = b.emit(name, (oty,), (b.select(in_range, x, Const(0.0, ty)),)).outs[0]
        elif name in ("vadd", "vsub", "vcmpeq", "vcmpgts", "vminu", "vmaxu", "vmins", "vmaxs"):
            out = b.emit(name, (I128,), (val(I128), val(I128)), (d.choice(LANES),)).outs[0]
        elif name == "vmsb":
            out = b.emit(name, (I32,), (val(I128),), (d.choice(LANES),)).outs[0]
        elif name in ("vshli", "vshri", "vsari"):
            lane = d.choice(LANES)
            out = b.emit(name, (I128,), (val(I128),), (lane, d.int(0, lane + 1))).outs[0]
        elif name == "vshuf":
            lane = d.choice(LANES)
            n = 128 // lane
            sel = tuple(d.int(0, 2 * n - 1) for _ in range(n))
            out = b.emit(name, (I128,), (val(I128), val(I128)), (lane, sel)).outs[0]
        elif name == "get":
            out = b.get(d.choice(self.globals).name)
        elif name == "put":
            g = d.choice(self.globals)
            b.put(g.name, val(g.ty))
        elif name == "ld":
            out = b.ld(self.addr(), d.choice(MEM_TYS))
        elif name == "st":
            a = self.addr()
            b.st(a, val(d.choice(MEM_TYS)))
        elif name == "insn":
            self.pc += d.int(1, 15)
            b.insn(self.pc, d.int(1, 15))
        elif name == "exit_if":
            # mostly an unlikely condition: a block that always left early would test little
            c = val(I1) if d.chance(30) else b.setcond("eq", val(I64), Const(int_value(d, I64), I64))
            b.exit_if(c, d.choice(EXIT_KINDS), self.pc + d.int(0, 64))
        elif name == "call":
            sig = d.choice(HELPER_SIGS)[0]
            out = b.call(sig.name, *(val(t) for t in sig.args))
        elif name == "exit":
            b.exit(d.choice(EXIT_KINDS), self.pc + d.int(0, 64))
        elif name == "exit_ind":
            b.exit_ind(val(I64))
        else:
            raise AssertionError(f"irgen: no generator for op {name}")
        if out is not None:
            self.add(out)


BODY_OPS = tuple(n for n in OPS if n not in ("exit", "exit_ind"))
_STATE_OPS = ("get", "get", "get", "put", "put", "put", "exit_if", "call", "ld", "st")


def random_unit(src, layout: StateLayout, *, mem: tuple[int, int] = (0x10000, 0x1000), n_ops: int = 30,
                pc: int = 0x400000, ops: tuple[str, ...] | None = None, globals_: int = 6,
                faults: bool = False) -> Unit:
    """A valid one-block unit of n_ops random ops (plus the ops shaping their inputs) and an exit.

    ops restricts the body to those op names (default: every op but the terminators, with
    state ops weighted up so that forwarding and dead stores have something to do). The unit
    uses the globals holding state words 0 and 1 (those the irgen_* helpers touch) and
    `globals_` random others, so that they repeat. With faults, about 1 access in 10 goes
    just past the memory range and faults (GuestFault).
    """
    d = Draw(src)
    unit = Unit(layout.isa, layout)
    b = Builder(unit, unit.new_block(pc))
    g = _Gen(d, unit, b, mem, pc)
    all_globals = list(layout.globals.values())
    helper_words = [x for x in all_globals if x.offset < 16]
    g.globals = helper_words + [d.choice(all_globals) for _ in range(globals_)]
    g.faults = faults
    names = ops if ops is not None else BODY_OPS + _STATE_OPS
    b.insn(pc, d.int(1, 15))
    for _ in range(n_ops):
        g.emit(d.choice(names))
    g.emit("exit_ind" if d.chance(25) else "exit")
    return unit


# --- an env to run units in ------------------------------------------------------------------
class FlatMemory:
    """Guest memory [base, base + size) as one bytearray; any other address faults."""

    def __init__(self, base: int, size: int, data: bytes | None = None):
        self.base, self.size = base, size
        self.data = bytearray(data if data is not None else size)

    def _off(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise GuestFault(addr)
        return off

    def load(self, addr: int, n: int) -> int:
        off = self._off(addr, n)
        return int.from_bytes(self.data[off:off + n], "little")

    def store(self, addr: int, n: int, value: int) -> None:
        off = self._off(addr, n)
        self.data[off:off + n] = value.to_bytes(n, "little")

    def read(self, addr: int, n: int) -> bytes:
        off = self._off(addr, n)
        return bytes(self.data[off:off + n])

    def write(self, addr: int, data: bytes) -> None:
        off = self._off(addr, len(data))
        self.data[off:off + len(data)] = data

    def snapshot(self) -> bytes:
        return bytes(self.data)


class SparseMemory:
    """Every address is valid: unwritten bytes are a fixed pseudo-random function of the address."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.written: dict[int, int] = {}

    def _byte(self, a: int) -> int:
        b = self.written.get(a)
        return b if b is not None else (a * 0x9E3779B1 + self.seed) >> 11 & 0xFF

    def load(self, addr: int, n: int) -> int:
        return sum(self._byte((addr + i) & _M64) << (8 * i) for i in range(n))

    def store(self, addr: int, n: int, value: int) -> None:
        for i in range(n):
            self.written[(addr + i) & _M64] = value >> (8 * i) & 0xFF

    def snapshot(self) -> tuple:
        return tuple(sorted(self.written.items()))


class TestEnv:
    """env.state (memoryview 'Q' over the state words) and env.mem, as run_block expects."""

    __test__ = False  # not a pytest class

    def __init__(self, words: list[int], mem: FlatMemory):
        self.state = memoryview(bytearray(struct.pack(f"<{len(words)}Q", *words))).cast("Q")
        self.mem = mem

    @classmethod
    def random(cls, src, layout: StateLayout, *, mem: tuple[int, int] = (0x10000, 0x1000)) -> TestEnv:
        """State words: edge integers or doubles; memory: a random 64-byte pattern, repeated."""
        d = Draw(src)
        n = max(g.offset // 8 + g.ty.bits // 64 for g in layout.globals.values())
        words = [int_value(d, I64) if d.chance(75) else f64_bits(float_value(d, F64)) for _ in range(n)]
        pattern = bytes(d.int(0, 255) for _ in range(64))
        return cls(words, FlatMemory(mem[0], mem[1], (pattern * (mem[1] // 64 + 1))[:mem[1]]))

    def copy(self) -> TestEnv:
        return TestEnv(list(self.state), copy.deepcopy(self.mem))

    def snapshot(self) -> tuple:
        """Everything a unit can change: the state words and the memory contents."""
        return tuple(self.state), self.mem.snapshot()
