"""Runtime support for quick-tier generated code: what does not fit in one Python expression.

Generated functions bind these names as locals (see codegen.py), so a call costs one
LOAD_FAST and the call itself. Everything here works on the IR's value conventions:
integers are unsigned bit patterns, floats are Python floats, f32 values are already
rounded to single precision.

    >>> f32(0.1) == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    True
    >>> vadd(0xFF, 0x01, 8)      # lane-wise: 0xFF + 1 wraps inside the byte lane
    0
"""

from __future__ import annotations

import math
import struct

# --- memory access through struct (bound methods: no attribute lookup per access) ----------
_S16, _S32, _S64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_SF, _SD = struct.Struct("<f"), struct.Struct("<d")
U16, U32, U64 = _S16.unpack_from, _S32.unpack_from, _S64.unpack_from
P16, P32, P64 = _S16.pack_into, _S32.pack_into, _S64.pack_into
UF32, UF64 = _SF.unpack_from, _SD.unpack_from
PF32, PF64 = _SF.pack_into, _SD.pack_into
IFB = int.from_bytes

_pack_f, _unpack_f = _SF.pack, _SF.unpack
_pack_d, _unpack_d = _SD.pack, _SD.unpack
_pack_i, _unpack_i = _S32.pack, _S32.unpack
_pack_q, _unpack_q = _S64.pack, _S64.unpack

INF = math.inf
# What the host FPU produces for an invalid operation (x86: the negative quiet NaN). Computed,
# not written down, so that it is whatever a native tier on this host would produce.
DEFAULT_NAN = INF - INF


# --- floats ----------------------------------------------------------------------------------
def f32(x: float) -> float:
    """Round a double to the nearest single (ties to even); overflow gives a signed infinity."""
    try:
        return _unpack_f(_pack_f(x))[0]
    except OverflowError:  # struct refuses exactly the values that round to infinity
        return math.copysign(INF, x)


def i2d(x: int) -> float:
    return _unpack_d(_pack_q(x))[0]


def d2i(x: float) -> int:
    return _unpack_q(_pack_d(x))[0]


# f32 values live in Python floats; a NaN's f32 bits sit in the double's sign, top payload
# bits and quiet bit, as the hardware widens them, except that a signalling NaN stays
# signalling (struct's 'f' would quiet it): moving bits must not change them.
def i2f(x: int) -> float:
    if x & 0x7F800000 == 0x7F800000 and x & 0x7FFFFF:
        return _unpack_d(_pack_q((x & 0x80000000) << 32 | 0x7FF0000000000000 | (x & 0x7FFFFF) << 29))[0]
    return _unpack_f(_pack_i(x))[0]


def f2i(x: float) -> int:
    if x != x:
        d = _unpack_q(_pack_d(x))[0]
        return (d >> 32) & 0x80000000 | 0x7F800000 | (d >> 29) & 0x7FFFFF
    return _unpack_i(_pack_f(x))[0]


def quiet(x: float) -> float:
    """What an arithmetic op or a widening makes of a NaN operand: the same NaN, quiet."""
    if x != x:
        return _unpack_d(_pack_q(_unpack_q(_pack_d(x))[0] | 1 << 51))[0]
    return x


def fdiv0(a: float, b: float) -> float:
    """a / b for b == +-0.0, which Python refuses: IEEE gives NaN or a signed infinity."""
    if a != a:
        return quiet(a)
    if a == 0.0:
        return DEFAULT_NAN
    neg = (math.copysign(1.0, a) < 0) != (math.copysign(1.0, b) < 0)
    return -INF if neg else INF


def fsqrt(a: float) -> float:
    """IEEE square root: NaN in, NaN out; negative (other than -0.0) gives the invalid NaN."""
    if a >= 0.0:
        return math.sqrt(a)
    if a != a:
        return quiet(a)
    return DEFAULT_NAN


def itof32(v: int) -> float:
    """A (signed Python) int to the nearest single, ties to even, without double rounding."""
    if -(1 << 53) <= v <= (1 << 53):
        return f32(float(v))  # exact as a double: one rounding only
    mag = -v if v < 0 else v
    drop = mag.bit_length() - 24
    keep, rest = mag >> drop, mag & ((1 << drop) - 1)
    half = 1 << (drop - 1)
    if rest > half or (rest == half and keep & 1):
        keep += 1
    r = f32(float(keep << drop))  # exact unless it overflows, which f32 turns into inf
    return -r if v < 0 else r


def fround(x: float, mode: str) -> float:
    """Round to an integral value in the same format; the sign of zero is kept."""
    if x != x:
        return quiet(x)
    if x in (INF, -INF) or abs(x) >= 4503599627370496.0:  # 2**52: already integral
        return x
    if mode == "nearest":
        r = float(round(x))  # Python's round is ties-to-even
    elif mode == "floor":
        r = float(math.floor(x))
    elif mode == "ceil":
        r = float(math.ceil(x))
    else:
        r = float(math.trunc(x))
    return math.copysign(r, x)


# --- integers --------------------------------------------------------------------------------
def sdiv(a: int, b: int, bits: int) -> int:
    sb = 1 << (bits - 1)
    sa, sbv = (a ^ sb) - sb, (b ^ sb) - sb
    q = abs(sa) // abs(sbv)
    return (-q if (sa < 0) != (sbv < 0) else q) & ((1 << bits) - 1)


def srem(a: int, b: int, bits: int) -> int:
    sb = 1 << (bits - 1)
    sa, sbv = (a ^ sb) - sb, (b ^ sb) - sb
    r = abs(sa) % abs(sbv)
    return (-r if sa < 0 else r) & ((1 << bits) - 1)


# PARITY[b] is 1 when byte b has an even number of set bits (x86 PF)
PARITY = bytes(1 - (i.bit_count() & 1) for i in range(256))


# --- 128-bit lanes ---------------------------------------------------------------------------
def _split(x: int, lane: int) -> list[int]:
    m = (1 << lane) - 1
    return [(x >> i) & m for i in range(0, 128, lane)]


def _join(vals, lane: int) -> int:
    m = (1 << lane) - 1
    r = 0
    for i, v in enumerate(vals):
        r |= (v & m) << (i * lane)
    return r


def _signed(v: int, lane: int) -> int:
    sb = 1 << (lane - 1)
    return (v ^ sb) - sb


def vadd(a: int, b: int, lane: int) -> int:
    return _join([x + y for x, y in zip(_split(a, lane), _split(b, lane))], lane)


def vsub(a: int, b: int, lane: int) -> int:
    return _join([x - y for x, y in zip(_split(a, lane), _split(b, lane))], lane)


def vcmpeq(a: int, b: int, lane: int) -> int:
    return _join([-(x == y) for x, y in zip(_split(a, lane), _split(b, lane))], lane)


def vcmpgts(a: int, b: int, lane: int) -> int:
    return _join([-(_signed(x, lane) > _signed(y, lane)) for x, y in zip(_split(a, lane), _split(b, lane))],
                 lane)


def vminu(a: int, b: int, lane: int) -> int:
    return _join([min(x, y) for x, y in zip(_split(a, lane), _split(b, lane))], lane)


def vmaxu(a: int, b: int, lane: int) -> int:
    return _join([max(x, y) for x, y in zip(_split(a, lane), _split(b, lane))], lane)


def vmins(a: int, b: int, lane: int) -> int:
    return _join([min(_signed(x, lane), _signed(y, lane)) for x, y in zip(_split(a, lane), _split(b, lane))],
                 lane)


def vmaxs(a: int, b: int, lane: int) -> int:
    return _join([max(_signed(x, lane), _signed(y, lane)) for x, y in zip(_split(a, lane), _split(b, lane))],
                 lane)


def vmsb(a: int, lane: int) -> int:
    r = 0
    for i, v in enumerate(_split(a, lane)):
        r |= (v >> (lane - 1)) << i
    return r


def vshli(a: int, lane: int, count: int) -> int:
    if count >= lane:
        return 0
    return _join([v << count for v in _split(a, lane)], lane)


def vshri(a: int, lane: int, count: int) -> int:
    if count >= lane:
        return 0
    return _join([v >> count for v in _split(a, lane)], lane)


def vsari(a: int, lane: int, count: int) -> int:
    count = min(count, lane - 1)
    return _join([_signed(v, lane) >> count for v in _split(a, lane)], lane)


def vshuf(a: int, b: int, lane: int, sel: tuple[int, ...]) -> int:
    src = _split(a, lane) + _split(b, lane)
    return _join([src[i] for i in sel], lane)
