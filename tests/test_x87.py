"""x87 lifters and soft-float helpers against the host CPU and Unicorn.

One x87 instruction at a time is lifted (x87.py), run by the reference interpreter (the
helpers of x87_helpers.py do the arithmetic) and compared, register by register including
the status word's condition codes and sticky exception flags, the tag bits and TOP, with the
host CPU (the final word; x86-64 hosts only) and with Unicorn. Unicorn's x87 (QEMU softfloat)
differs from hardware in places (NaN selection, some flags): those cases are counted in
UNICORN_DEVIATIONS (tests/known_differences.py: unicorn-vs-host) instead of failing, and only
where the host CPU decides. FXSAVE's MXCSR_MASK word is not compared (fxsave-mxcsr-mask).
Without a usable host CPU the comparison falls back to Unicorn alone.

Inputs: random stack contents (zeros, denormals, pseudo-denormals, unnormals, infinities,
NaNs of both kinds and signs, extreme and ordinary exponents, integers and halfway values),
random TOP and tags (so stack underflow and overflow happen), every rounding and precision
control, random condition codes. HQEMU_FUZZ=1 raises CASES; HQEMU_SEED=... draws other inputs.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import known_differences as KD
import pytest
from test_x86_sse import (
    BUF,
    CODE,
    DATA,
    FLAG_BITS,
    FUZZ,
    GPRS,
    SEED,
    State,
    check,
    native,
    random_state,
    run_hqemu,
)

from hqemu.frontends.x86_64 import x87_helpers as H

CASES = 300 if FUZZ else 8  # random states per encoding
CASE_COUNT: Counter = Counter()


# --- inputs -----------------------------------------------------------------------------------

def _from_double(x: float) -> tuple[int, int]:
    """The extended value of a double, exactly."""
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    v = H.unpack_ieee(bits, H.DBL)
    if v.kind == H.ZERO:
        return 0, v.sign << 15
    se, mant = H.round80(v.sign, v.m, v.e, H.RN)[0] if v.kind == H.FIN else H.pack_special(v.kind, v.sign)
    return mant, se


def ext_value(rng: random.Random) -> tuple[int, int]:
    """(mantissa, sign|exponent) drawn from edge classes and ordinary values."""
    sign = rng.getrandbits(1) << 15
    r = rng.random()
    mant = rng.getrandbits(64)
    if r < 0.05:
        return 0, sign
    if r < 0.10:  # denormal
        return mant >> rng.randint(1, 63), sign
    if r < 0.12:  # pseudo-denormal
        return mant | 1 << 63, sign
    if r < 0.14:  # unnormal (unsupported)
        return mant & ~(1 << 63), sign | rng.randint(1, 0x7FFE)
    if r < 0.18:
        return 1 << 63, sign | 0x7FFF  # infinity
    if r < 0.24:  # NaNs: quiet or signalling, random payloads, the indefinite
        m = rng.choice([1 << 63 | 1 << 62, 1 << 63 | 1 << 62 | mant >> 3, 1 << 63 | (mant >> 2 or 1),
                        0xC000000000000000])
        return m, sign | 0x7FFF
    if r < 0.25:  # pseudo-NaN / pseudo-infinity
        return mant >> 1, sign | 0x7FFF
    if r < 0.30:  # near the ends of the exponent range
        return mant | 1 << 63, sign | rng.choice([1, 2, 0x7FFE, 0x7FFD, 64, 0x7FFF - 64])
    if r < 0.45:  # small integers and halfway values
        return _from_double(rng.randint(-70000, 70000) + rng.choice([0.0, 0.5, 0.25, -0.5, 0.75]))
    if r < 0.55:  # exactly representable in f64 / f32, so stores are exact or barely inexact
        return _from_double(rng.uniform(-1e6, 1e6))
    if r < 0.60:  # beyond int64 / near int16/32 limits
        return _from_double(rng.choice([2.0 ** 63, -2.0 ** 63, 2.0 ** 31 - 0.5, -2.0 ** 31 - 0.5, 32767.5,
                                        -32768.5, 2.0 ** 64, 1e300, -1e-300]))
    return mant | 1 << 63, sign | (0x3FFF + rng.randint(-80, 80))


def x87_state(rng: random.Random) -> State:
    s = random_state(rng, "d")
    s.st = [ext_value(rng) for _ in range(8)]
    s.fpu_top = rng.randrange(8)
    s.fpu_tag = rng.getrandbits(8)
    if rng.random() < 0.7:  # usually ST(0) and ST(1) hold values
        s.fpu_tag &= ~(1 << s.fpu_top | 1 << ((s.fpu_top + 1) & 7))
    if rng.random() < 0.3:  # a full or an empty stack now and then
        s.fpu_tag = rng.choice([0, 0xFF])
    pc = rng.choice([3, 3, 3, 2, 0])
    s.fpu_cw = 0x7F | pc << 8 | rng.randrange(4) << 10  # every exception masked, as Linux starts
    s.fpu_sw = rng.getrandbits(16) & (H.CC | 0x7F) if rng.random() < 0.5 else 0
    mem = bytearray(s.mem)  # memory operands: a float/ext/int edge value at [rsi]
    kind = rng.randrange(4)
    if kind == 0:
        mant, se = ext_value(rng)
        mem[0x100:0x10A] = struct.pack("<QH", mant, se)
    elif kind == 1:
        from test_x86_sse import F64_EDGE
        mem[0x100:0x108] = struct.pack("<Q", rng.choice(F64_EDGE) if rng.random() < 0.5 else
                                       struct.unpack("<Q", struct.pack("<d", rng.uniform(-1e5, 1e5)))[0])
    elif kind == 2:
        from test_x86_sse import F32_EDGE
        mem[0x100:0x104] = struct.pack("<I", rng.choice(F32_EDGE))
    else:
        mem[0x100:0x108] = struct.pack("<q", rng.choice([0, 1, -1, 32767, -32768, 2**31 - 1, -2**31,
                                                         2**63 - 1, -2**63, rng.randint(-99999, 99999)]))
    s.mem = bytes(mem)
    return s


# --- encodings -----------------------------------------------------------------------------------

def _reg_forms() -> list[tuple[str, int, int]]:
    """(name, opcode, modrm base): the +i register forms (i chosen per case)."""
    out = []
    out += [(f"d8/{r}", 0xD8, 0xC0 | r << 3) for r in range(8)]
    out += [(f"dc/{r}", 0xDC, 0xC0 | r << 3) for r in (0, 1, 4, 5, 6, 7)]  # DC D0-DF: capstone says no
    out += [(f"de/{r}", 0xDE, 0xC0 | r << 3) for r in (0, 1, 4, 5, 6, 7)]
    out += [("fld sti", 0xD9, 0xC0), ("fxch", 0xD9, 0xC8), ("ffree", 0xDD, 0xC0), ("fst sti", 0xDD, 0xD0),
            ("fstp sti", 0xDD, 0xD8), ("fucom", 0xDD, 0xE0), ("fucomp", 0xDD, 0xE8), ("fucomi", 0xDB, 0xE8),
            ("fcomi", 0xDB, 0xF0), ("fucomip", 0xDF, 0xE8), ("fcomip", 0xDF, 0xF0)]
    out += [(f"fcmov da/{r}", 0xDA, 0xC0 | r << 3) for r in range(4)]
    out += [(f"fcmov db/{r}", 0xDB, 0xC0 | r << 3) for r in range(4)]
    return out


SINGLE = {  # fixed encodings
    "fchs": "d9e0", "fabs": "d9e1", "ftst": "d9e4", "fxam": "d9e5", "fld1": "d9e8", "fldl2t": "d9e9",
    "fldl2e": "d9ea", "fldpi": "d9eb", "fldlg2": "d9ec", "fldln2": "d9ed", "fldz": "d9ee",
    "fdecstp": "d9f6", "fincstp": "d9f7", "fsqrt": "d9fa", "frndint": "d9fc", "fscale": "d9fd",
    "fcompp": "ded9", "fucompp": "dae9", "fnstsw ax": "dfe0", "fninit": "dbe3", "fnclex": "dbe2",
    "fnop": "d9d0", "fwait": "9b", "fprem": "d9f8", "fprem1": "d9f5",
}

MEM_FORMS = [(f"{opc:x}/{r}", opc, r) for opc in (0xD8, 0xDC, 0xDA, 0xDE) for r in range(8)]
MEM_FORMS += [(f"{opc:x}/{r}", opc, r) for opc, regs in
              ((0xD9, (0, 2, 3, 4, 5, 6, 7)), (0xDD, (0, 1, 2, 3, 4, 6, 7)), (0xDB, (0, 1, 2, 3, 5, 7)),
               (0xDF, (0, 1, 2, 3, 5, 7))) for r in regs]


def _x87_diff(got: State, want: State, fields=()) -> list[str]:
    out = []
    for p in range(8):
        if got.st[p] != tuple(want.st[p]):
            out.append(f"R{p} = {got.st[p][1]:04x}:{got.st[p][0]:016x}, expected "
                       f"{want.st[p][1]:04x}:{want.st[p][0]:016x}")
    if got.fpu_top != want.fpu_top:
        out.append(f"TOP = {got.fpu_top}, expected {want.fpu_top}")
    if got.fpu_tag != want.fpu_tag:
        out.append(f"empty tags = {got.fpu_tag:08b}, expected {want.fpu_tag:08b}")
    if got.fpu_sw != want.fpu_sw:
        out.append(f"status word (no TOP) = {got.fpu_sw:#06x}, expected {want.fpu_sw:#06x}")
    if got.fpu_cw != want.fpu_cw:
        out.append(f"control word = {got.fpu_cw:#06x}, expected {want.fpu_cw:#06x}")
    out += [f"{r} = {got.gpr[r]:#x}, expected {want.gpr[r]:#x}" for r in GPRS if got.gpr[r] != want.gpr[r]]
    out += [f"{f} = {got.flags[f]}, expected {want.flags[f]}" for f in FLAG_BITS
            if got.flags[f] != want.flags[f]]
    if got.mem != want.mem:
        first = next(i for i in range(len(got.mem)) if got.mem[i] != want.mem[i])
        out.append(f"memory at {DATA + first:#x}: {got.mem[first:first + 10].hex()}, "
                   f"expected {want.mem[first:first + 10].hex()}")
    return out


def _describe(s: State) -> str:
    regs = []
    for i in range(8):
        p = (s.fpu_top + i) & 7
        tag = "empty " if s.fpu_tag >> p & 1 else ""
        regs.append(f"ST{i}={tag}{s.st[p][1]:04x}:{s.st[p][0]:016x}")
    return (f"\n  cw={s.fpu_cw:#06x} sw={s.fpu_sw:#06x} top={s.fpu_top} " + " ".join(regs)
            + f"\n  mem={s.mem[0x100:0x10A].hex()}")


def run_case(code: bytes, s: State) -> None:
    ex, got = run_hqemu(code, s)
    assert ex == ("jump", CODE + len(code)), f"{code.hex()}: exit {ex}"
    check(code, s, got, _describe(s), differ=_x87_diff, x87=True)


@pytest.mark.parametrize("name, opc, base", _reg_forms(), ids=[f[0] for f in _reg_forms()])
def test_x87_reg_forms(name: str, opc: int, base: int) -> None:
    rng = random.Random(f"{SEED}-x87-{name}")
    for _ in range(CASES):
        code = bytes([opc, base | rng.randrange(8)])
        run_case(code, x87_state(rng))
        CASE_COUNT[name] += 1


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_x87_single(name: str) -> None:
    rng = random.Random(f"{SEED}-x87-{name}")
    code = bytes.fromhex(SINGLE[name])
    for _ in range(CASES):
        run_case(code, x87_state(rng))
        CASE_COUNT[name] += 1


@pytest.mark.parametrize("name, opc, reg", MEM_FORMS, ids=[f[0] for f in MEM_FORMS])
def test_x87_mem_forms(name: str, opc: int, reg: int) -> None:
    rng = random.Random(f"{SEED}-x87m-{name}")
    code = bytes([opc, reg << 3 | 6])  # [rsi]
    for _ in range(CASES):
        s = x87_state(rng)
        if (opc, reg) == (0xD9, 5):  # fldcw: keep every exception masked so the host cannot trap
            mem = bytearray(s.mem)
            mem[0x100:0x102] = struct.pack("<H", 0x7F | rng.choice([0, 2, 3]) << 8 | rng.randrange(4) << 10)
            s.mem = bytes(mem)
        elif (opc, reg) in ((0xD9, 4), (0xDD, 4)):  # fldenv/frstor: an image with every exception masked
            mem = bytearray(s.mem)
            img = x87_state(rng)
            cw = 0x7F | rng.choice([0, 2, 3]) << 8 | rng.randrange(4) << 10
            sw = img.fpu_sw | img.fpu_top << 11
            tw = sum((3 if img.fpu_tag >> p & 1 else rng.randrange(3)) << (2 * p) for p in range(8))
            mem[0x100:0x11C] = struct.pack("<7I", cw | 0xFFFF0000, sw, tw, 0, 0, 0, 0)
            for i in range(8):
                mem[0x11C + 10 * i:0x126 + 10 * i] = struct.pack("<QH", *img.st[i])
            s.mem = bytes(mem)
        run_case(code, s)
        CASE_COUNT[name] += 1


FXSAVE_AT = BUF + 0x100  # a 16-byte aligned 512-byte area inside the DATA page


def _fx_differ(got: State, want: State, fields=()) -> list[str]:
    """_x87_diff plus xmm/mxcsr, ignoring the image's MXCSR_MASK word (known_differences:
    fxsave-mxcsr-mask)."""
    at, n = KD.FXSAVE_MXCSR_MASK
    off = FXSAVE_AT - DATA + at
    got = State(**{**got.__dict__, "mem": got.mem[:off] + want.mem[off:off + n] + got.mem[off + n:]})
    from test_x86_sse import diff
    return _x87_diff(got, want) + diff(got, want, ("xmm", "mxcsr"))


@pytest.mark.parametrize("code", ["0fae06", "480fae06", "0fae0e", "480fae0e"])
def test_fxsave_fxrstor(code: str) -> None:
    rng = random.Random(f"{SEED}-fx-{code}")
    c = bytes.fromhex(code)
    for _ in range(CASES):
        s = x87_state(rng)
        s.gpr["rsi"] = FXSAVE_AT
        if c[-1] == 0x0E:  # fxrstor: a valid image (exceptions masked, MXCSR reserved bits clear)
            img = x87_state(rng)
            mem = bytearray(s.mem)
            o = FXSAVE_AT - DATA
            cw = 0x7F | rng.choice([0, 2, 3]) << 8 | rng.randrange(4) << 10
            struct.pack_into("<HHB", mem, o, cw, img.fpu_sw | img.fpu_top << 11, ~img.fpu_tag & 0xFF)
            struct.pack_into("<I", mem, o + 24, 0x1F80 | rng.getrandbits(6) | rng.getrandbits(2) << 13)
            for i in range(8):
                struct.pack_into("<QH", mem, o + 32 + 16 * i, *img.st[i])
            s.mem = bytes(mem)
        ex, got = run_hqemu(c, s)
        assert ex == ("jump", CODE + len(c))
        check(c, s, got, _describe(s), differ=_fx_differ, x87=True)
        CASE_COUNT["fxsave" if c[-1] == 0x06 else "fxrstor"] += 1
        if c[-1] == 0x06:
            KD.note("fxsave-mxcsr-mask", "fxsave")
    s.gpr["rsi"] = FXSAVE_AT + 8
    assert run_hqemu(c, s)[0] == ("sigsegv", CODE)  # misaligned: #GP


# --- targeted cases ------------------------------------------------------------------------------

@pytest.mark.parametrize("rc", range(4))
def test_constants_round_by_rc(rc: int) -> None:
    """fldpi & co. round their internal constant by the rounding control (oracle: the host CPU)."""
    for name in ("fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz"):
        s = x87_state(random.Random(rc))
        s.fpu_tag, s.fpu_cw, s.fpu_sw = 0xFF, 0x37F & ~0xC00 | rc << 10, 0
        run_case(bytes.fromhex(SINGLE[name]), s)


def test_long_double_round_trip() -> None:
    """fld m80 / fstp m80 moves every bit pattern unchanged, NaNs and unsupported ones too."""
    rng = random.Random(7)
    for _ in range(40):
        s = x87_state(rng)
        mant, se = ext_value(rng)
        mem = bytearray(s.mem)
        mem[0x100:0x10A] = struct.pack("<QH", mant, se)
        s.mem = bytes(mem)
        s.fpu_tag = 0xFF
        _, after_load = run_hqemu(bytes.fromhex("db2e"), s)  # fld tbyte [rsi]
        after_load.mem = bytes(bytearray(after_load.mem[:0x100]) + b"\0" * 10 + after_load.mem[0x10A:])
        _, after_store = run_hqemu(bytes.fromhex("db3e"), after_load)  # fstp tbyte [rsi]
        assert after_store.mem[0x100:0x10A] == bytes(mem[0x100:0x10A])
        assert after_store.fpu_tag == 0xFF and after_store.fpu_top == s.fpu_top


def test_helpers_registered_with_effects() -> None:
    from hqemu.ir import HELPERS

    for name in ("x87_fld", "x87_fst", "x87_arith", "x87_fcom", "x87_fcomi", "x87_unary"):
        h = HELPERS[name]
        assert h.reads_state and h.writes_state and not h.reads_mem and not h.writes_mem


# --- a whole program: printf/strtold/long double arithmetic in glibc and musl ---------------------

LONG_DOUBLE_C = r"""/* long double and double conversions and arithmetic: printf, strtold, x87 arithmetic */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long long seed = 88172645463325252ULL;
static unsigned long long rnd(void) {
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed;
}

int main(void) {
    static const char *strs[] = {
        "0", "-0", "1", "0.1", "3.14159265358979323846264338327950288", "1e4932",
        "1.18973149535723176502e+4932",
        "3.3621031431120935063e-4932", "3.6451995318824746025e-4951", "1e-4960", "-2.5e-4940", "0x1.8p3",
        "0x1.fffffffffffffffep16383", "123456789012345678901234567890", "nan", "-inf", "inf", "1e-4951",
        "0.3333333333333333333333333", "4.9406564584124654e-324", "2.2250738585072014e-308", "1.5", "2.5",
        "-7.5e-3", "18446744073709551615", "9223372036854775808", "65504.00000001", "1e300", "1e-300"};
    int n = sizeof strs / sizeof strs[0];
    for (int i = 0; i < n; i++) {
        long double x = strtold(strs[i], 0);
        double d = strtod(strs[i], 0);
        float f = strtof(strs[i], 0);
        printf("%s: %.21Lg %La %Le | %.17g %a | %.9g\n", strs[i], x, x, x, d, d, (double)f);
    }
    long double acc = 1.0L;
    for (int i = 0; i < 60; i++) {
        long double a = (long double)(long long)rnd() / (long double)(rnd() | 1), b = (long double)(int)rnd();
        volatile long double s = a + b, p = a * b, q = b != 0 ? a / b : 0, r = sqrtl(fabsl(a));
        acc = acc * 1.0001L + s / (fabsl(p) + 1.0L);
        if (i % 20 == 0)
            printf("%d: %.20Le %.20Le %.20Le %.20Le %.20Lg\n", i, s, p, q, r, acc);
        printf("%lld %lld %lld %.3Lf %.3Lf %d\n", (long long)a, llrintl(a), (long long)rintl(b / 7),
               fmodl(a, b ? b : 1), remainderl(a, 3.0L), a < b);
    }
    for (int e = -16400; e < 16400; e += 997) {
        long double x = ldexpl(1.2345L, e);
        double d = (double)x; float f = (float)x;
        printf("%d %Lg %.17g %.9g %d\n", e, x, d, (double)f, (int)(x > 1.0L));
    }
    unsigned long long u = 0xFFFFFFFFFFFFFFFFULL;
    long double lu = u;
    printf("%Lf %llu %llu\n", lu, (unsigned long long)lu, (unsigned long long)(lu / 3));
    printf("%.30Lf\n%.0Lf\n%Lg\n", 1.0L / 3, 1e30L, 1e-30L);
    return 0;
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("cc", ["gcc", "musl-gcc"])
def test_long_double_program_matches_native(cc: str, tmp_path: Path) -> None:
    """printf("%Lf")/strtold/fmodl/remainderl/ldexpl/llrintl and x87 arithmetic: hqemu's output
    must be byte-identical to the native run's (the oracle), for glibc and for musl."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    (tmp_path / "ld.c").write_text(LONG_DOUBLE_C)
    exe = tmp_path / "ld"
    subprocess.run([cc, "-static", "-O2", "-o", str(exe), str(tmp_path / "ld.c"), "-lm"], check=True)
    want = subprocess.run([str(exe)], capture_output=True, timeout=60)
    got = subprocess.run([sys.executable, "-m", "hqemu", str(exe)], capture_output=True, timeout=600,
                         cwd=Path(__file__).resolve().parent.parent)
    assert got.returncode == want.returncode, got.stderr.decode()[-2000:]
    assert got.stdout == want.stdout


def test_report_x87_case_counts() -> None:
    """Not a check: how many cases each form ran, and where Unicorn disagreed with the CPU."""
    print("\nx87 cases per form:", dict(sorted(CASE_COUNT.items())))
    print("Unicorn deviations from the host CPU (all tests):", dict(sorted(KD.UNICORN_DEVIATIONS.items())))
    print("host CPU oracle:", "yes" if native() is not None else "no (Unicorn only)", hex(BUF))
