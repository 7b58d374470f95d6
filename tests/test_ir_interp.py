"""The reference interpreter against independent computations: libc/libm through ctypes (the
native CPU), ctypes' integer types, exact rationals, bit strings and struct lane formats."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import random
import struct
from fractions import Fraction

import pytest
from irgen import FlatMemory, TestEnv

from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import F32, F64, I1, I8, I16, I32, I64, I128, OPS, Builder, Const, Op, Temp, Ty, Unit
from hqemu.ir.interp import (
    DEFAULT_NAN,
    HANDLERS,
    eval_op,
    f32_bits,
    f32_from_bits,
    f64_bits,
    f64_from_bits,
    run_block,
)

RNG = random.Random(1234)
INTS = (I8, I16, I32, I64)
LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
LIBM = ctypes.CDLL(ctypes.util.find_library("m"))


def ev(name: str, out: Ty, *ins, consts=()):
    """Evaluate one pure op on constant inputs (given as Const or (value, type))."""
    vals = tuple(v if isinstance(v, Const) else Const(*v) for v in ins)
    (r,) = eval_op(Op(name, (Temp(0, out),), vals, tuple(consts)), [v.value for v in vals])
    return r


def edges(ty: Ty, n: int = 12) -> list[int]:
    m, top = ty.mask, 1 << (ty.bits - 1)
    fixed = [x & m for x in (0, 1, 2, 3, m, m - 1, top, top - 1, top + 1, 7, m - 6)]
    return sorted(set(fixed)) + [RNG.getrandbits(ty.bits) for _ in range(n)]


def sgn(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def test_every_op_has_a_handler():
    assert set(HANDLERS) == set(OPS)


# --- integers --------------------------------------------------------------------------------
class LLDiv(ctypes.Structure):
    _fields_ = [("quot", ctypes.c_longlong), ("rem", ctypes.c_longlong)]


LIBC.lldiv.restype = LLDiv
LIBC.lldiv.argtypes = [ctypes.c_longlong, ctypes.c_longlong]


@pytest.mark.parametrize("ty", INTS, ids=str)
def test_sdiv_srem_match_c(ty):
    for a in edges(ty):
        for b in edges(ty, 4):
            sa, sb = sgn(a, ty.bits), sgn(b, ty.bits)
            if sb == 0 or (sa == -(1 << (ty.bits - 1)) and sb == -1):
                continue
            r = LIBC.lldiv(sa, sb)  # C: quotient truncated toward zero, remainder takes a's sign
            assert ev("sdiv", ty, (a, ty), (b, ty)) == r.quot & ty.mask
            assert ev("srem", ty, (a, ty), (b, ty)) == r.rem & ty.mask


def test_sdiv_srem_i128_exact():
    for a in edges(I128):
        for b in edges(I128, 3):
            sa, sb = sgn(a, 128), sgn(b, 128)
            if sb == 0 or (sa == -(1 << 127) and sb == -1):
                continue
            q = math.trunc(Fraction(sa, sb))
            assert ev("sdiv", I128, (a, I128), (b, I128)) == q & I128.mask
            assert ev("srem", I128, (a, I128), (b, I128)) == (sa - q * sb) & I128.mask


@pytest.mark.parametrize("ty", INTS + (I128,), ids=str)
def test_udiv_urem_identity(ty):
    for a in edges(ty):
        for b in edges(ty, 3):
            if b == 0:
                continue
            q, r = ev("udiv", ty, (a, ty), (b, ty)), ev("urem", ty, (a, ty), (b, ty))
            assert q * b + r == a and 0 <= r < b


def test_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        ev("udiv", I32, (5, I32), (0, I32))
    with pytest.raises(ZeroDivisionError):
        ev("srem", I32, (5, I32), (0, I32))


@pytest.mark.parametrize("ty", (I1, I8, I16, I32, I64, I128), ids=str)
def test_shifts_and_bit_counts_match_bit_strings(ty):
    w = ty.bits
    for a in edges(ty):
        s = format(a, f"0{w}b")
        for b in {0, 1, w // 2, w - 1, RNG.randrange(w)}:
            assert ev("shl", ty, (a, ty), (b, ty)) == int((s + "0" * b)[-w:], 2)
            assert ev("shr", ty, (a, ty), (b, ty)) == int(("0" * b + s)[:w], 2)
            assert ev("sar", ty, (a, ty), (b, ty)) == int((s[0] * b + s)[:w], 2)
        for b in (0, 1, w - 1, w, w + 3, RNG.getrandbits(ty.bits)):
            r = b % w
            assert ev("rotl", ty, (a, ty), (b, ty)) == int(s[r:] + s[:r], 2)
            assert ev("rotr", ty, (a, ty), (b, ty)) == int(s[w - r:] + s[:w - r], 2)
        assert ev("clz", ty, (a, ty)) == len(s) - len(s.lstrip("0"))
        assert ev("ctz", ty, (a, ty)) == len(s) - len(s.rstrip("0"))
        assert ev("popcnt", ty, (a, ty)) == s.count("1")
        assert ev("parity", I1, (a, ty)) == int(format(a & 0xFF, "08b").count("1") % 2 == 0)
        assert ev("not", ty, (a, ty)) == int(s.translate(str.maketrans("01", "10")), 2)
        assert ev("neg", ty, (a, ty)) == (ev("not", ty, (a, ty)) + 1) % (1 << w)


def test_parity_is_x86_pf():
    # PF = 1 for an even number of set bits in the low byte only: 0 has none, 3 two, 1 one
    assert [ev("parity", I1, (x, I32)) for x in (0, 3, 1, 0x100, 0x1FF, 0x101)] == [1, 1, 0, 1, 1, 0]


@pytest.mark.parametrize("ty,fmt", [(I16, "H"), (I32, "I"), (I64, "Q")], ids=str)
def test_bswap_matches_struct(ty, fmt):
    for a in edges(ty):
        assert ev("bswap", ty, (a, ty)) == struct.unpack(">" + fmt, struct.pack("<" + fmt, a))[0]


CT = {8: (ctypes.c_int8, ctypes.c_uint8), 16: (ctypes.c_int16, ctypes.c_uint16),
      32: (ctypes.c_int32, ctypes.c_uint32), 64: (ctypes.c_int64, ctypes.c_uint64)}


@pytest.mark.parametrize("src", INTS, ids=str)
def test_width_changes_match_ctypes(src):
    for a in edges(src):
        signed = CT[src.bits][0](a).value
        for dst in INTS:
            if dst.bits >= src.bits:
                assert ev("sext", dst, (a, src)) == CT[dst.bits][1](signed).value
                assert ev("zext", dst, (a, src)) == a
            else:
                assert ev("trunc", dst, (a, src)) == CT[dst.bits][1](a).value


@pytest.mark.parametrize("ty", INTS, ids=str)
def test_setcond_matches_ctypes_signedness(ty):
    s, u = CT[ty.bits]
    for a in edges(ty, 5):
        for b in edges(ty, 3):
            sa, sb, ua, ub = s(a).value, s(b).value, u(a).value, u(b).value
            want = {"eq": ua == ub, "ne": ua != ub, "ltu": ua < ub, "leu": ua <= ub, "gtu": ua > ub,
                    "geu": ua >= ub, "lt": sa < sb, "le": sa <= sb, "gt": sa > sb, "ge": sa >= sb}
            for cond, w in want.items():
                assert ev("setcond", I1, (a, ty), (b, ty), consts=(cond,)) == int(w), (cond, a, b)


# --- floats ----------------------------------------------------------------------------------
def f32_values() -> list[float]:
    special = [0.0, -0.0, 1.0, -1.0, 1.5, 3.4028234663852886e38, -3.4028234663852886e38,
               1.401298464324817e-45, 1.1754943508222875e-38, math.inf, -math.inf, 16777217.0, 0.1]
    vals = [struct.unpack("<f", struct.pack("<f", x))[0] for x in special]
    while len(vals) < 40:
        x = f32_from_bits(RNG.getrandbits(32))
        if not math.isnan(x):
            vals.append(x)
    return vals


F32_VALUES = f32_values()
MAX_F32 = Fraction(2) ** 128 - Fraction(2) ** 104


def nearest_f32(q: Fraction) -> float:
    """Round an exact rational to f32 by searching the neighbouring bit patterns (ties to even)."""
    if abs(q) >= MAX_F32 + Fraction(2) ** 103:
        return math.copysign(math.inf, q)
    guess = ctypes.c_float(float(q)).value
    if math.isinf(guess):
        guess = math.copysign(3.4028234663852886e38, guess)
    b0 = f32_bits(guess)
    best = None
    for b in range(max(b0 - 3, 0), b0 + 4):
        if (b >> 23) & 0xFF == 0xFF or (b ^ b0) >> 31:
            continue
        c = f32_from_bits(b)
        key = (abs(Fraction(c) - q), b & 1)
        if best is None or key < best[0]:
            best = (key, c)
    r = best[1]
    return math.copysign(0.0, q) if r == 0 else r


def same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or f64_bits(x) == f64_bits(y)


for _name in ("fmaf", "sqrtf", "nearbyintf", "floorf", "ceilf", "truncf"):
    getattr(LIBM, _name).restype = ctypes.c_float
LIBM.fmaf.argtypes = [ctypes.c_float] * 3
for _name in ("sqrtf", "nearbyintf", "floorf", "ceilf", "truncf"):
    getattr(LIBM, _name).argtypes = [ctypes.c_float]
for _name in ("nearbyint", "floor", "ceil", "trunc"):
    getattr(LIBM, _name).restype = ctypes.c_double
    getattr(LIBM, _name).argtypes = [ctypes.c_double]


def test_f32_arithmetic_matches_native_single_precision():
    for a in F32_VALUES:
        for b in F32_VALUES[:20]:
            # fmaf rounds once: a*1+b is the single-precision sum, a*b-0 the product
            assert same(ev("fadd", F32, (a, F32), (b, F32)), LIBM.fmaf(a, 1.0, b)), (a, b)
            assert same(ev("fsub", F32, (a, F32), (b, F32)), LIBM.fmaf(-b, 1.0, a)), (a, b)
            assert same(ev("fmul", F32, (a, F32), (b, F32)), LIBM.fmaf(a, b, -0.0)), (a, b)
        assert same(ev("fsqrt", F32, (a, F32)), LIBM.sqrtf(a)), a


def test_f32_division_is_correctly_rounded():
    finite = [x for x in F32_VALUES if math.isfinite(x)]
    for a in finite:
        for b in finite[:20]:
            r = ev("fdiv", F32, (a, F32), (b, F32))
            if b != 0 and a != 0:
                assert same(r, nearest_f32(Fraction(a) / Fraction(b))), (a, b)


def test_division_by_zero_is_ieee():
    assert ev("fdiv", F64, (1.0, F64), (0.0, F64)) == math.inf
    assert ev("fdiv", F64, (1.0, F64), (-0.0, F64)) == -math.inf
    assert ev("fdiv", F32, (-2.0, F32), (0.0, F32)) == -math.inf
    assert math.isnan(ev("fdiv", F64, (0.0, F64), (0.0, F64)))
    assert math.isnan(ev("fsqrt", F64, (-1.0, F64)))
    assert same(ev("fsqrt", F64, (-0.0, F64)), -0.0)
    assert f64_bits(ev("fdiv", F64, (-0.0, F64), (0.0, F64))) == f64_bits(DEFAULT_NAN)


def test_int_to_float_rounds_once():
    for ty in (I8, I16, I32, I64, I128):
        for a in edges(ty, 30) + [(1 << 24) + 1, (1 << 53) + 1, (1 << 60) + (1 << 36) + 1]:
            a &= ty.mask
            s = sgn(a, ty.bits)
            assert same(ev("sitofp", F32, (a, ty)), nearest_f32(Fraction(s))), (ty, a)
            assert same(ev("uitofp", F32, (a, ty)), nearest_f32(Fraction(a))), (ty, a)
            assert ev("sitofp", F64, (a, ty)) == float(Fraction(s))
            assert ev("uitofp", F64, (a, ty)) == float(Fraction(a))


def test_f64_to_f32_rounding():
    for _ in range(300):
        x = f64_from_bits(RNG.getrandbits(64))
        if math.isnan(x):
            continue
        assert same(ev("ftrunc", F32, (x, F64)), nearest_f32(Fraction(x)) if math.isfinite(x) else x), x


def test_f32_bits_round_trip_keeps_signalling_nans():
    for b in (0x7F800001, 0xFF800001, 0x7FC00000, 0x7FBFFFFF, 0x7FC12345, 0x00000001, 0x80000000, 0x3F800000):
        x = f32_from_bits(b)
        assert f32_bits(x) == b
        if b & 0x7F800000 != 0x7F800000:
            assert x == struct.unpack("<f", struct.pack("<I", b))[0]
        assert ev("bitcast", I32, (ev("bitcast", F32, (b, I32)), F32)) == b
        assert ev("bitcast", I32, (ev("fneg", F32, (x, F32)), F32)) == b ^ 0x80000000
        assert ev("bitcast", I32, (ev("fabs", F32, (x, F32)), F32)) == b & 0x7FFFFFFF
    # arithmetic quiets a signalling NaN and keeps its payload
    assert f32_bits(ev("fadd", F32, (f32_from_bits(0x7F800001), F32), (1.0, F32))) == 0x7FC00001
    assert f64_bits(ev("fext", F64, (f32_from_bits(0x7F800001), F32))) == 0x7FF8000020000000


def test_fround_matches_libm():
    modes = {"nearest": ("nearbyint", "nearbyintf"), "floor": ("floor", "floorf"),
             "ceil": ("ceil", "ceilf"), "trunc": ("trunc", "truncf")}
    f64s = [0.5, 1.5, 2.5, -0.5, -2.5, -0.4, 0.49999999999999994, 4503599627370495.5, 1e300, -0.0,
            math.inf, -math.inf] + [RNG.uniform(-1e6, 1e6) for _ in range(30)]
    for mode, (d, f) in modes.items():
        for x in f64s:
            assert same(ev("fround", F64, (x, F64), consts=(mode,)), getattr(LIBM, d)(x)), (mode, x)
        for x in F32_VALUES + [2.5, -3.5, 0.5]:
            assert same(ev("fround", F32, (x, F32), consts=(mode,)), getattr(LIBM, f)(x)), (mode, x)


def test_fptosi_truncates_and_saturates_to_indefinite():
    for ty in (I8, I32, I64):
        lo = 1 << (ty.bits - 1)
        for x in (0.0, -0.0, 0.9, -0.9, 1.5, -1.5, 127.9, -128.9, 2.0 ** 31 - 1, -(2.0 ** 31), 1e10, math.nan,
                  math.inf, -math.inf, -(2.0 ** 63), 2.0 ** 63):
            n = math.trunc(x) if math.isfinite(x) else None
            want = n & ty.mask if n is not None and -lo <= n < lo else lo
            assert ev("fptosi", ty, (x, F64), ) == want, (ty, x)


def test_fcmp_truth_table():
    nan = math.nan
    pairs = [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0), (0.0, -0.0), (nan, 1.0), (1.0, nan), (nan, nan),
             (-math.inf, math.inf)]
    # expected results per pair, written out: lt, eq, gt, unordered
    rel = [(1, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0), (0, 1, 0, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 1),
           (1, 0, 0, 0)]
    for (a, b), (lt, eq, gt, un) in zip(pairs, rel):
        want = {"oeq": eq, "one": lt or gt, "olt": lt, "ole": lt or eq, "ogt": gt, "oge": gt or eq,
                "ord": not un, "ueq": un or eq, "une": not eq, "ult": un or lt, "ule": un or lt or eq,
                "ugt": un or gt, "uge": un or gt or eq, "uno": un}
        for cond, w in want.items():
            assert ev("fcmp", I1, (a, F64), (b, F64), consts=(cond,)) == int(bool(w)), (cond, a, b)


# --- lanes -----------------------------------------------------------------------------------
LANE_FMT = {8: ("16B", "16b"), 16: ("8H", "8h"), 32: ("4I", "4i"), 64: ("2Q", "2q")}


def unpack(v: int, fmt: str) -> tuple:
    return struct.unpack("<" + fmt, v.to_bytes(16, "little"))


def pack(xs, fmt: str, lane: int) -> int:
    m = (1 << lane) - 1
    return int.from_bytes(struct.pack("<" + fmt.upper(), *(x & m for x in xs)), "little")


@pytest.mark.parametrize("lane", (8, 16, 32, 64))
def test_lane_ops_match_struct_lanes(lane):
    uf, sf = LANE_FMT[lane]
    vals = [0, I128.mask, 0x80 << 120 | 0x7F] + [RNG.getrandbits(128) for _ in range(3)]
    for a in vals:
        ua, sa = unpack(a, uf), unpack(a, sf)
        for b in vals:
            ub, sb = unpack(b, uf), unpack(b, sf)

            def v(name, a=a, b=b):
                return ev(name, I128, (a, I128), (b, I128), consts=(lane,))

            assert v("vadd") == pack([x + y for x, y in zip(ua, ub)], uf, lane)
            assert v("vsub") == pack([x - y for x, y in zip(ua, ub)], uf, lane)
            assert v("vcmpeq") == pack([-1 if x == y else 0 for x, y in zip(ua, ub)], uf, lane)
            assert v("vcmpgts") == pack([-1 if x > y else 0 for x, y in zip(sa, sb)], uf, lane)
            assert v("vminu") == pack(map(min, ua, ub), uf, lane)
            assert v("vmaxu") == pack(map(max, ua, ub), uf, lane)
            assert v("vmins") == pack(map(min, sa, sb), uf, lane)
            assert v("vmaxs") == pack(map(max, sa, sb), uf, lane)
            n = 128 // lane
            sel = tuple(RNG.randrange(2 * n) for _ in range(n))
            assert ev("vshuf", I128, (a, I128), (b, I128), consts=(lane, sel)) == pack(
                [(ua + ub)[i] for i in sel], uf, lane)
        assert ev("vmsb", I32, (a, I128), consts=(lane,)) == sum(1 << i for i, x in enumerate(sa) if x < 0)
        for c in (0, 1, lane - 1, lane, lane + 1):
            assert ev("vshli", I128, (a, I128), consts=(lane, c)) == pack(
                [x << c if c < lane else 0 for x in ua], uf, lane)
            assert ev("vshri", I128, (a, I128), consts=(lane, c)) == pack([x >> c for x in ua], uf, lane)
            assert ev("vsari", I128, (a, I128), consts=(lane, c)) == pack([x >> c for x in sa], uf, lane)


# --- running blocks --------------------------------------------------------------------------
def env_with(words: dict[str, int] | None = None) -> TestEnv:
    n = max(g.offset // 8 + 2 for g in LAYOUT.globals.values())
    env = TestEnv([0] * n, FlatMemory(0x1000, 0x100))
    for name, v in (words or {}).items():
        g = LAYOUT[name]
        env.state[g.offset // 8] = v & (2**64 - 1)
        if g.ty.bits == 128:
            env.state[g.offset // 8 + 1] = v >> 64
    return env


def test_state_and_memory_layout():
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x400000))
    x = b.get("xmm1")
    b.st(Const(0x1010, I64), x)  # i128: low quadword first
    b.st(Const(0x1020, I64), b.bitcast(Const(0x7F800001, I32), F32))
    f = b.ld(Const(0x1020, I64), F32)
    b.put("rax", b.zext(b.bitcast(f, I32), I64))
    b.put("xmm2", b.ld(Const(0x1008, I64), I128))
    b.exit("jump", 0x400010)
    env = env_with({"xmm1": 0x11223344556677889900AABBCCDDEEFF})
    assert run_block(u, env) == ("jump", 0x400010)
    assert env.mem.read(0x1010, 16) == (0x11223344556677889900AABBCCDDEEFF).to_bytes(16, "little")
    assert env.mem.read(0x1020, 4) == (0x7F800001).to_bytes(4, "little")
    assert env.state[LAYOUT["rax"].offset // 8] == 0x7F800001
    i = LAYOUT["xmm2"].offset // 8
    assert env.state[i] == 0 and env.state[i + 1] == 0x9900AABBCCDDEEFF


def test_exits_and_calls():
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x400000))
    a = b.get("rcx")
    lo, half = b.call("irgen_two", b.trunc(a, I32), Const(3.0, F64))
    b.put("rdx", b.zext(lo, I64))
    b.put("rbx", b.bitcast(half, I64))
    b.exit_if(b.setcond("eq", a, 0), "syscall", 0x400005)
    b.exit_ind(b.add(a, 0x10))
    env = env_with({"rcx": 0x12345})
    assert run_block(u, env) == ("jump", 0x12355)
    assert env.state[LAYOUT["rdx"].offset // 8] == 0x2345
    assert env.state[LAYOUT["rbx"].offset // 8] == f64_bits(1.5)
    assert run_block(u, env_with({"rcx": 0})) == ("syscall", 0x400005)


def test_a_multi_block_unit_loops_through_its_blocks():
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x400000))
    b.put("rax", b.add(b.get("rax"), 3))
    b.exit("jump", 0x400010)
    b = Builder(u, u.new_block(0x400010))
    c = b.sub(b.get("rcx"), 1)
    b.put("rcx", c)
    b.exit_if(b.setcond("ne", c, 0), "jump", 0x400000)
    b.exit("jump", 0x400020)
    env = env_with({"rcx": 5})
    assert run_block(u, env) == ("jump", 0x400020)
    assert env.state[0] == 15


def test_effect_ops_are_not_evaluated_by_eval_op():
    for name in ("get", "ld", "put", "exit", "call"):
        with pytest.raises(ValueError):
            eval_op(Op(name, (), (), ()), [])
