"""x87 transcendentals and fxtract against the host CPU, one instruction at a time.

f2xm1 fyl2x fyl2xp1 fsin fcos fsincos fptan fpatan fxtract are lifted (x87.py), run by the
reference interpreter and the quick tier (x87_transcendental.py computes them) and compared
with the same instruction run natively from the same state (test_x86_sse.Native): registers,
TOP, tags, condition codes, sticky flags. hqemu returns the correctly rounded result; the
hardware is not always correctly rounded, so a result one ulp away (with the C1 and precision
flag that go with it) is accepted and counted in HOST_NOT_CORRECTLY_ROUNDED
(tests/known_differences.py: x87-host-rounding), the one known difference of this oracle;
anything else fails. Unicorn is not consulted: its x87
transcendentals go through host doubles.

Inputs: seeded random values per instruction (its natural range, every exponent, near
multiples of pi/2, near 1, powers of two) mixed with the edge classes of test_x87.ext_value
(zeros, denormals, pseudo-denormals, unnormals, infinities, NaNs), every rounding and
precision control, empty registers (stack underflow) and full stacks (overflow).
HQEMU_FUZZ=1 raises CASES; HQEMU_SEED draws other inputs.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from fractions import Fraction

import pytest
from known_differences import HOST_NOT_CORRECTLY_ROUNDED
from test_x86_sse import CODE, FUZZ, SEED, native, run_hqemu
from test_x87 import _describe, _x87_diff, ext_value, x87_state

from hqemu.frontends.x86_64 import x87_helpers as H
from hqemu.frontends.x86_64 import x87_math as M
from hqemu.frontends.x86_64 import x87_transcendental as T

CASES = 3000 if FUZZ else 150  # random states per instruction
ENCODING = {"f2xm1": "d9f0", "fyl2x": "d9f1", "fptan": "d9f2", "fpatan": "d9f3", "fxtract": "d9f4",
            "fyl2xp1": "d9f9", "fsincos": "d9fb", "fsin": "d9fe", "fcos": "d9ff"}
CASE_COUNT: Counter = Counter()  # instruction -> cases compared with the host
EXACT: Counter = Counter()  # instruction -> cases where the host's result is bit-exact ours
# HOST_NOT_CORRECTLY_ROUNDED (known_differences.py): instruction -> cases where the host is not
# correctly rounded: its result is one ulp from the correctly rounded one hqemu returns (or
# equal, with C1 telling the other rounding direction)

pytestmark = pytest.mark.skipif(native() is None, reason="needs an x86-64 host CPU as the oracle")


# --- inputs --------------------------------------------------------------------------------------

def _ext(sign: int, m: int, e: int) -> tuple[int, int]:
    """(mantissa, sign|exponent) of sign * m * 2**e (m >= 0), rounded to 64 bits."""
    if m == 0:
        return 0, sign << 15
    (se, mant), _ = H.round80(sign, m, e, H.RN)
    return mant, se


def _scaled(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    """A random 64-bit significand with a random exponent in [lo, hi]."""
    return rng.getrandbits(63) | 1 << 63, rng.getrandbits(1) << 15 | (0x3FFF + rng.randint(lo, hi))


def _near_halfpi(rng: random.Random) -> tuple[int, int]:
    """k * pi/2 (the hardware's pi) give or take a few ulps: the hard cases of the reduction."""
    k = rng.choice([1, 2, 3, 4, 5, 6, 100, 1000, rng.randrange(1, 1 << rng.randint(1, 62))])
    drop = M.PI.bit_length() - T.REDUCTION_PI_BITS
    pi = (M.PI + (1 << (drop - 1))) >> drop
    mant, se = _ext(rng.getrandbits(1), k * pi, drop - M.CONST_BITS - 1)
    return (mant + rng.randint(-3, 3)) & (1 << 64) - 1 | 1 << 63, se


def operand(rng: random.Random, name: str, which: int) -> tuple[int, int]:
    """An input for ST(which) of instruction `name`."""
    r = rng.random()
    if r < 0.25:
        return ext_value(rng)
    if r < 0.3:
        return _ext(rng.getrandbits(1), 1, rng.choice([0, 0, -1, 1, 63, -16000, 5000]))  # powers of 2
    if name == "f2xm1":
        return _scaled(rng, -70 if r < 0.4 else -4, -1) if r < 0.95 else _ext(rng.getrandbits(1), 1, 0)
    if name in ("fsin", "fcos", "fptan", "fsincos"):
        if r < 0.45:
            return _near_halfpi(rng)
        if r < 0.5:  # around the 2**63 limit
            return _scaled(rng, 62, 63)
        return _scaled(rng, -70 if r < 0.6 else -3, 64)
    if name == "fyl2x" and which == 0:  # x: near 1, any positive size
        if r < 0.5:
            return _ext(0, (1 << 63) + rng.randint(-5000, 5000), -63)
        return _ext(0, rng.getrandbits(63) | 1 << 63, rng.randint(-16400, 16300))
    if name == "fyl2xp1" and which == 0:  # |x| < 1 - sqrt(2)/2
        return _scaled(rng, -70 if r < 0.5 else -8, -3)
    return _scaled(rng, -30 if r < 0.9 else -16000, 30 if r < 0.9 else 16000)


def trans_state(rng: random.Random, name: str):
    s = x87_state(rng)
    for i in range(2):
        s.st[(s.fpu_top + i) & 7] = operand(rng, name, i)
    if rng.random() < 0.9:
        s.fpu_tag &= ~(1 << s.fpu_top | 1 << ((s.fpu_top + 1) & 7))
    if rng.random() < 0.7 and s.fpu_tag != 0:  # usually room to push
        s.fpu_tag |= 1 << ((s.fpu_top - 1) & 7)
    return s


# --- comparison ---------------------------------------------------------------------------------

def _value(raw: tuple[int, int]) -> Fraction | None:
    v = H.unpack80(raw[1], raw[0])
    if v.kind != H.FIN:
        return None
    return Fraction(-v.m if v.sign else v.m) * Fraction(2) ** v.e


def _one_ulp(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two finite registers of one sign at most one ulp (of the larger) apart."""
    x, y = _value(a), _value(b)
    if x is None or y is None or (x < 0) != (y < 0):
        return False
    big = max(abs(x), abs(y))
    k = big.numerator.bit_length() - big.denominator.bit_length()  # floor(log2 big) or one more
    if Fraction(2) ** k > big:
        k -= 1
    ulp = Fraction(2) ** max(k - 63, H.EXT.tiny_exp)
    return abs(x - y) <= ulp


def _host_rounding_only(got, want) -> bool:
    """The states differ only where a host that is not correctly rounded would: result registers
    one ulp apart, C1 (the rounding direction), PE and UE."""
    regs = [p for p in range(8) if got.st[p] != tuple(want.st[p])]
    if not all(_one_ulp(got.st[p], want.st[p]) for p in regs):
        return False
    rest = [line for line in _x87_diff(got, want) if not line.startswith("R")]
    sw_mask = ~(H.C1 | H.PE | H.UE) & 0xFFFF
    return all(line.startswith("status word") for line in rest) and \
        got.fpu_sw & sw_mask == want.fpu_sw & sw_mask


def run_one(name: str, s) -> None:
    code = bytes.fromhex(ENCODING[name])
    ex, got = run_hqemu(code, s)
    assert ex == ("jump", CODE + len(code)), f"{name}: exit {ex}"
    want = native().run(code, s)
    CASE_COUNT[name] += 1
    bad = _x87_diff(got, want)
    if not bad:
        EXACT[name] += 1
        return
    assert _host_rounding_only(got, want), f"{name} vs the host CPU: " + "; ".join(bad) + _describe(s)
    HOST_NOT_CORRECTLY_ROUNDED[name] += 1


@pytest.mark.parametrize("name", sorted(ENCODING))
def test_transcendental_vs_host(name: str) -> None:
    rng = random.Random(f"{SEED}-x87t-{name}")
    for _ in range(CASES):
        run_one(name, trans_state(rng, name))


@pytest.mark.parametrize("name", sorted(ENCODING))
def test_rounding_modes_at_edges(name: str) -> None:
    """Every rounding mode on the edge values: 0, -0, 1, -1, tiny, denormal, huge, 2**63."""
    edges = [(0, 0), (0, 0x8000), (1 << 63, 0x3FFF), (1 << 63, 0xBFFF), (1 << 63, 0x3FFE), (1, 0),
             (0xC90FDAA22168C235, 0x3FFF), (1 << 63, 0x3FFF + 63), (0xFFFFFFFFFFFFFFFF, 0x3FFF + 62),
             (1 << 63, 0x7FFF), (0xC000000000000000, 0xFFFF), (0x8000000000000001, 0x7FFF),
             (0x1234, 0x4000), (1 << 63, 0x3FFF - 70), (0xB504F333F9DE6484, 0x3FFE)]
    rng = random.Random(f"{SEED}-x87e-{name}")
    for x in edges:
        for y in edges[:6] + [edges[rng.randrange(len(edges))]]:
            s = trans_state(rng, name)
            s.st[s.fpu_top], s.st[(s.fpu_top + 1) & 7] = x, y
            s.fpu_tag = 0xFF & ~(1 << s.fpu_top | 1 << ((s.fpu_top + 1) & 7))
            s.fpu_cw = 0x7F | rng.choice([0, 2, 3]) << 8 | rng.randrange(4) << 10
            run_one(name, s)


def test_reduction_constant_is_the_hosts() -> None:
    """fsin of large arguments: the hardware reduces by its 66-bit pi; with a true pi nearly
    every one of these would differ (the check that REDUCTION_PI_BITS is measured, not guessed)."""
    rng = random.Random(f"{SEED}-x87pi")
    for _ in range(20):
        s = trans_state(rng, "fsin")
        s.st[s.fpu_top] = _scaled(rng, 40, 62)
        s.fpu_tag = 0xFF & ~(1 << s.fpu_top)
        run_one("fsin", s)


def _bcd_state(rng: random.Random, load: bool):
    s = x87_state(rng)
    mem = bytearray(s.mem)
    if load:  # valid packed BCD: 18 digits, a sign byte of 0x00 or 0x80
        n = rng.choice([0, 1, 10 ** 18 - 1, rng.randrange(10 ** rng.randint(1, 18))])
        lo, b8 = H.bcd_bits(n)
        mem[0x100:0x10A] = struct.pack("<QBB", lo, b8, rng.choice([0, 0x80]))
    else:
        r = rng.random()
        if r < 0.5:  # around the decimal range and the halfway points
            v = rng.choice([10 ** 18 - 1, 10 ** 18, rng.randrange(10 ** rng.randint(1, 18))])
            mant, se = _ext(rng.getrandbits(1), abs(4 * v + rng.randint(-3, 3)), -2)
            s.st[s.fpu_top] = (mant, se)
        else:
            s.st[s.fpu_top] = operand(rng, "fbstp", 0)
        s.fpu_tag &= ~(1 << s.fpu_top) if rng.random() < 0.9 else 0xFF
    s.mem = bytes(mem)
    return s


@pytest.mark.parametrize("name", ["fbld", "fbstp"])
def test_packed_bcd_vs_host(name: str) -> None:
    rng = random.Random(f"{SEED}-x87bcd-{name}")
    code = bytes.fromhex("df26" if name == "fbld" else "df36")  # [rsi]
    for _ in range(CASES // 2):
        s = _bcd_state(rng, name == "fbld")
        ex, got = run_hqemu(code, s)
        assert ex == ("jump", CODE + len(code))
        bad = _x87_diff(got, native().run(code, s))
        assert not bad, f"{name} vs the host CPU: " + "; ".join(bad) + _describe(s)
        CASE_COUNT[name] += 1
        EXACT[name] += 1


def test_lifted_as_helper_calls() -> None:
    from test_x86_sse import lift

    from hqemu.ir.text import format_unit

    for name, code in ENCODING.items():
        text = format_unit(lift(bytes.fromhex(code)))
        assert "x87_trans" in text and "sigill" not in text, (name, text)


def test_report_transcendental_share() -> None:
    """Not a check: the share of cases where the host's result is bit-exact ours, per instruction."""
    print("\nx87 transcendentals, bit-exact with the host / cases:",
          {n: f"{EXACT[n]}/{CASE_COUNT[n]}" for n in sorted(CASE_COUNT)})
    print("host not correctly rounded (known differences):", dict(sorted(HOST_NOT_CORRECTLY_ROUNDED.items())))
