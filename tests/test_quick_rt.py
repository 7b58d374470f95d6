"""The quick tier's runtime support against independent oracles: ctypes' C float conversion,
exact rational arithmetic, and struct for bit patterns."""

from __future__ import annotations

import ctypes
import math
import random
import struct
from fractions import Fraction

from hqemu.quick import rt

F32_MAX = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]


def _c_float(x: float) -> float:
    return ctypes.c_float(x).value  # the C cast: IEEE round to nearest even, overflow to inf


def test_f32_rounds_like_the_c_cast():
    rng = random.Random(5)
    edges = [0.0, -0.0, 1e-46, 1.5e-45, F32_MAX, -F32_MAX, 3.4028235677973366e38, 3.4028235677973362e38,
             1e300, -1e300, math.inf, -math.inf, 1 / 3, 2.0 ** -149, 2.0 ** -150, 3 * 2.0 ** -151]
    values = edges + [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(2000)]
    for x in values:
        if x != x:
            continue
        got, exp = rt.f32(x), _c_float(x)
        assert struct.pack("<d", got) == struct.pack("<d", exp), x


def _round_rational(q: Fraction) -> float:
    """q rounded to the nearest f32, ties to even, by exact arithmetic."""
    if q == 0:
        return 0.0
    sign, q = (-1.0 if q < 0 else 1.0), abs(q)
    e = math.floor(math.log2(q))
    while Fraction(2) ** e > q:
        e -= 1
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    ulp = Fraction(2) ** (max(e, -126) - 23)
    n, rest = divmod(q, ulp)
    if rest > ulp / 2 or (rest == ulp / 2 and n % 2):
        n += 1
    r = n * ulp
    return sign * (math.inf if r >= Fraction(2) ** 128 else float(r))


def test_itof32_rounds_once():
    rng = random.Random(6)
    values = [(1 << 63) - 1, -(1 << 63), (1 << 64) - 1, (1 << 53) + 1, (1 << 24) + 1, 0x7FFFFF80_00000000,
              (1 << 128) - 1]
    values += [rng.getrandbits(rng.randint(1, 64)) * rng.choice((1, -1)) for _ in range(3000)]
    # 24 significant bits then exactly half (a tie: to even), or half and a low bit (above half,
    # which rounding to a double first would turn into a tie)
    values += [((1 << 23) | rng.getrandbits(23)) << 40 | 1 << 39 | rng.getrandbits(1) for _ in range(400)]
    for v in values:
        assert rt.itof32(v) == _round_rational(Fraction(v)), v


def test_float_bits_survive_a_round_trip():
    rng = random.Random(7)
    for _ in range(2000):
        b32, b64 = rng.getrandbits(32), rng.getrandbits(64)
        if rng.random() < 0.3:  # NaNs, signalling ones included
            b32 |= 0x7F800000 | (1 if not b32 & 0x7FFFFF else 0)
            b64 |= 0x7FF0000000000000 | (1 if not b64 & 0xFFFFFFFFFFFFF else 0)
        assert rt.f2i(rt.i2f(b32)) == b32
        assert rt.d2i(rt.i2d(b64)) == b64
        assert rt.d2i(rt.i2d(b64)) == struct.unpack("<Q", struct.pack("<Q", b64))[0]


def test_parity_table():
    for b in range(256):
        assert rt.PARITY[b] == (bin(b).count("1") % 2 == 0)
