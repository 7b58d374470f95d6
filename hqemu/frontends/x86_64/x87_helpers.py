"""x87 as helpers: exact 80-bit extended soft float over the X86State registers.

Each x87 instruction that computes becomes one `call` of a helper registered here (x87.py
emits them); the helpers keep the register stack (st0..st7 physical slots, fpu_top, fpu_tag)
and the status word (fpu_sw: C0-C3 and the sticky exception flags) exactly as the hardware
does with every exception masked, which is how Linux starts a process.

    >>> call x87_fld, 1:i64, %bits:i64, 0:i64      # fld m64: push the double with bits %bits
    >>> %lo, %hi = call x87_fst, 2:i64, 0:i64, 1:i64   # fstp m80: the 10 bytes to store, popped

Arithmetic is done on Python integers: a finite value is sign, m, e meaning m * 2**e, results
are computed exactly and rounded once (round_to) to the precision control's 24/53/64 bits with
the control word's rounding mode. Unmasked exceptions are not delivered (the flags are set,
nothing traps). The transcendental instructions and fxtract are in x87_transcendental.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

from hqemu.ir import I64, Helper, register

from .cpu import LAYOUT

# --- where the state lives (64-bit word indexes into env.state) ------------------------------
ST_WORD = tuple(LAYOUT[f"st{i}"].offset >> 3 for i in range(8))  # physical register i
TOP_W = LAYOUT["fpu_top"].offset >> 3
CW_W = LAYOUT["fpu_cw"].offset >> 3
SW_W = LAYOUT["fpu_sw"].offset >> 3
TAG_W = LAYOUT["fpu_tag"].offset >> 3
FLAG_W = {f: LAYOUT[f].offset >> 3 for f in ("zf", "pf", "cf", "of", "sf", "af")}
XMM_WORD = tuple(LAYOUT[f"xmm{i}"].offset >> 3 for i in range(16))
MXCSR_W = LAYOUT["mxcsr"].offset >> 3

# --- status word bits ---------------------------------------------------------------------------
IE, DE, ZE, OE, UE, PE, SF = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
C0, C1, C2, C3 = 0x100, 0x200, 0x400, 0x4000
CC = C0 | C1 | C2 | C3
RN, RD, RU, RZ = 0, 1, 2, 3  # control word bits 10-11
PREC = {0: 24, 1: 24, 2: 53, 3: 64}  # control word bits 8-9 (1 is reserved: treated as 24)

# The real indefinite (the default NaN of an invalid operation) as (sign|exponent, mantissa)
INDEFINITE = (0xFFFF, 0xC000000000000000)
INT_BIT = 1 << 63
QUIET_BIT = 1 << 62


@dataclass(frozen=True)
class Fmt:
    """A binary floating-point format: p significant bits (incl. the leading one), exponent range."""

    prec: int
    emin: int
    emax: int
    ebits: int

    @property
    def bias(self) -> int:
        return self.emax

    @property
    def tiny_exp(self) -> int:  # exponent of the least denormal's unit
        return self.emin - (self.prec - 1)


EXT = Fmt(64, -16382, 16383, 15)
DBL = Fmt(53, -1022, 1023, 11)
SGL = Fmt(24, -126, 127, 8)


# --- values -------------------------------------------------------------------------------------
ZERO, FIN, INF, NAN, BAD = "zero", "finite", "inf", "nan", "unsupported"


@dataclass(frozen=True)
class Val:
    """An unpacked extended value: finite ones are sign * m * 2**e; NaNs keep their 80 bits."""

    kind: str
    sign: int
    m: int = 0
    e: int = 0
    denormal: bool = False
    raw: tuple[int, int] = (0, 0)  # (se, mant) of NaNs

    @property
    def snan(self) -> bool:
        return self.kind == NAN and not self.raw[1] & QUIET_BIT


def unpack80(se: int, mant: int) -> Val:
    sign, exp = se >> 15 & 1, se & 0x7FFF
    if exp == 0x7FFF:
        if not mant & INT_BIT:  # pseudo-infinity / pseudo-NaN
            return Val(BAD, sign)
        if mant == INT_BIT:
            return Val(INF, sign)
        return Val(NAN, sign, raw=(se & 0xFFFF, mant))
    if exp == 0:
        if mant == 0:
            return Val(ZERO, sign)
        # denormals and pseudo-denormals both mean mant * 2**-16445
        return Val(FIN, sign, mant, EXT.tiny_exp, denormal=True)
    if not mant & INT_BIT:  # unnormal
        return Val(BAD, sign)
    return Val(FIN, sign, mant, exp - EXT.bias - 63)


def unpack_ieee(bits: int, f: Fmt) -> Val:
    """f32/f64 bits as an extended value (exact); NaN payloads move to the top of the mantissa."""
    fb = f.prec - 1
    sign = bits >> (fb + f.ebits) & 1
    exp = bits >> fb & ((1 << f.ebits) - 1)
    frac = bits & ((1 << fb) - 1)
    if exp == (1 << f.ebits) - 1:
        if frac == 0:
            return Val(INF, sign)
        return Val(NAN, sign, raw=(sign << 15 | 0x7FFF, INT_BIT | frac << (63 - fb)))
    if exp == 0:
        if frac == 0:
            return Val(ZERO, sign)
        return Val(FIN, sign, frac, f.tiny_exp, denormal=True)
    return Val(FIN, sign, frac | 1 << fb, exp - f.bias - fb)


def quiet(v: Val) -> tuple[int, int]:
    return (v.raw[0], v.raw[1] | QUIET_BIT)


def pack_special(kind: str, sign: int) -> tuple[int, int]:
    if kind == ZERO:
        return (sign << 15, 0)
    return (sign << 15 | 0x7FFF, INT_BIT)  # infinity


# --- rounding -----------------------------------------------------------------------------------
def round_to(f: Fmt, sign: int, m: int, e: int, rc: int, prec: int | None = None):
    """Round sign * m * 2**e (m > 0) into format f with `prec` bits.

    Returns (biased exponent, significand of f.prec bits, status flags, rounded away from 0).
    Overflow gives infinity or the largest finite value, as the rounding mode says.
    """
    prec = prec or f.prec
    n = m.bit_length()
    top = e + n - 1  # exponent of the leading bit
    # exponent of the last kept bit's unit; with reduced precision (x87 PC) denormals lose bits
    # at the same rate: the least denormal is 2**(emin - prec + 1), as the hardware rounds
    q = max(top - (prec - 1), f.emin - (prec - 1))
    flags, up = 0, False
    if q > e:
        sh = q - e
        kept, rem = m >> sh, m & ((1 << sh) - 1)
        if rem:
            flags |= PE
            half = 1 << (sh - 1)
            if rc == RN:
                up = rem > half or (rem == half and bool(kept & 1))
            elif rc == RD:
                up = bool(sign)
            elif rc == RU:
                up = not sign
            if up:
                kept += 1
    else:
        kept = m << (e - q)
    if top < f.emin and flags & PE:  # tiny before rounding, and inexact
        flags |= UE
    if kept == 0:
        return 0, 0, flags, False
    if kept.bit_length() > prec:  # rounding carried into a new leading bit: drop a zero bit
        kept >>= 1
        q += 1
    top2 = q + kept.bit_length() - 1
    if top2 > f.emax:
        flags |= OE | PE
        if rc == RN or (rc == RU and not sign) or (rc == RD and sign):
            return (1 << f.ebits) - 1, 1 << (f.prec - 1), flags, True  # infinity
        return f.emax + f.bias, ((1 << prec) - 1) << (f.prec - prec), flags, False
    if top2 >= f.emin:
        return top2 + f.bias, kept << (f.prec - kept.bit_length()), flags, up
    return 0, kept << (q - f.tiny_exp), flags, up


def encode80(sign: int, biased: int, sig: int) -> tuple[int, int]:
    return (sign << 15 | biased, sig)


def encode_ieee(f: Fmt, sign: int, biased: int, sig: int) -> int:
    fb = f.prec - 1
    if biased == (1 << f.ebits) - 1:
        sig = 0
    return sign << (fb + f.ebits) | biased << fb | (sig & ((1 << fb) - 1))


def round80(sign: int, m: int, e: int, rc: int, prec: int = 64) -> tuple[tuple[int, int], int]:
    """An exact nonzero result rounded to an extended register; (raw, flags incl. C1)."""
    biased, sig, flags, up = round_to(EXT, sign, m, e, rc, prec)
    if up:
        flags |= C1
    return encode80(sign, biased, sig), flags


def exact_zero_sign(rc: int) -> int:
    """The sign of an exact zero sum of opposite values: -0 only when rounding down."""
    return 1 if rc == RD else 0


def pick_nan(x: Val, y: Val) -> tuple[int, int]:
    """x87 NaN propagation (Intel SDM table 4-7): the NaN operand; of a signalling and a quiet
    NaN the quiet one; of two of a kind the larger significand; all quieted."""
    if x.kind == NAN and y.kind == NAN and x.snan != y.snan:
        return quiet(y if x.snan else x)
    if x.kind == NAN and y.kind == NAN:
        mx, my = x.raw[1] & ~QUIET_BIT & ~INT_BIT, y.raw[1] & ~QUIET_BIT & ~INT_BIT
        if mx != my:
            return quiet(x if mx > my else y)
        return quiet(x if x.sign <= y.sign else y)  # equal significands: the positive one
    return quiet(x if x.kind == NAN else y)


# --- exact arithmetic -------------------------------------------------------------------------
def _sum(x: Val, y: Val, negate_y: bool, rc: int, prec: int):
    ys = y.sign ^ negate_y
    if x.kind == INF or y.kind == INF:
        if x.kind == INF and y.kind == INF and x.sign != ys:
            return INDEFINITE, IE
        return pack_special(INF, x.sign if x.kind == INF else ys), 0
    if x.kind == ZERO and y.kind == ZERO:
        return pack_special(ZERO, x.sign if x.sign == ys else exact_zero_sign(rc)), 0
    if x.kind == ZERO:
        return round80(ys, y.m, y.e, rc, prec)
    if y.kind == ZERO:
        return round80(x.sign, x.m, x.e, rc, prec)
    e = min(x.e, y.e)
    total = (-1 if x.sign else 1) * (x.m << (x.e - e)) + (-1 if ys else 1) * (y.m << (y.e - e))
    if total == 0:
        return pack_special(ZERO, exact_zero_sign(rc)), 0
    return round80(int(total < 0), abs(total), e, rc, prec)


def _mul(x: Val, y: Val, rc: int, prec: int):
    sign = x.sign ^ y.sign
    if (x.kind == INF and y.kind == ZERO) or (x.kind == ZERO and y.kind == INF):
        return INDEFINITE, IE
    if INF in (x.kind, y.kind):
        return pack_special(INF, sign), 0
    if ZERO in (x.kind, y.kind):
        return pack_special(ZERO, sign), 0
    return round80(sign, x.m * y.m, x.e + y.e, rc, prec)


def _div(x: Val, y: Val, rc: int, prec: int):
    sign = x.sign ^ y.sign
    if (x.kind == y.kind == INF) or (x.kind == y.kind == ZERO):
        return INDEFINITE, IE
    if x.kind == INF:
        return pack_special(INF, sign), 0
    if y.kind == INF or x.kind == ZERO:
        return pack_special(ZERO, sign), 0
    if y.kind == ZERO:
        return pack_special(INF, sign), ZE
    k = max(0, y.m.bit_length() - x.m.bit_length()) + 68
    q, r = divmod(x.m << k, y.m)
    return round80(sign, q << 1 | (r != 0), x.e - y.e - k - 1, rc, prec)  # sticky bit below q


def _sqrt(x: Val, rc: int, prec: int):
    if x.kind == ZERO:
        return pack_special(ZERO, x.sign), 0
    if x.sign:
        return INDEFINITE, IE
    if x.kind == INF:
        return pack_special(INF, 0), 0
    sh = max(0, 140 - x.m.bit_length())
    if (x.e - sh) & 1:
        sh += 1
    big = x.m << sh
    r = isqrt(big)
    return round80(0, r << 1 | (r * r != big), (x.e - sh) // 2 - 1, rc, prec)


def round_int(v: Val, rc: int) -> tuple[int, int, bool]:
    """A finite value rounded to an integer: (signed integer, flags, rounded away from 0)."""
    if v.e >= 0:
        n = v.m << v.e
        return (-n if v.sign else n), 0, False
    sh = -v.e
    if sh > v.m.bit_length():
        n, rem = 0, v.m
    else:
        n, rem = v.m >> sh, v.m & ((1 << sh) - 1)
    up = False
    flags = 0
    if rem:
        flags = PE
        half = 1 << (sh - 1)
        if rc == RN:
            up = rem > half or (rem == half and bool(n & 1))
        elif rc == RD:
            up = bool(v.sign)
        elif rc == RU:
            up = not v.sign
        n += up
    return (-n if v.sign else n), flags, up


def int_to80(n: int) -> tuple[int, int]:
    """An integer as an exact extended value (|n| <= 2**64)."""
    if n == 0:
        return (0, 0)
    sign, m = int(n < 0), abs(n)
    top = m.bit_length() - 1
    return encode80(sign, top + EXT.bias, m << (63 - top) if top <= 63 else m >> (top - 63))


# --- the x87 machine --------------------------------------------------------------------------
class Fpu:
    """The x87 registers of one env.state, for the duration of one helper call."""

    __slots__ = ("s", "top", "tag", "sw", "cw")

    def __init__(self, env):
        s = self.s = env.state
        self.top = s[TOP_W] & 7
        self.tag = s[TAG_W] & 0xFF
        self.sw = s[SW_W] & 0xFFFF & ~0x3800
        self.cw = s[CW_W] & 0xFFFF

    @property
    def rc(self) -> int:
        return self.cw >> 10 & 3

    @property
    def prec(self) -> int:
        return PREC[self.cw >> 8 & 3]

    def phys(self, i: int) -> int:
        return (self.top + i) & 7

    def empty(self, i: int) -> bool:
        return bool(self.tag >> self.phys(i) & 1)

    def raw(self, i: int) -> tuple[int, int]:
        w = ST_WORD[self.phys(i)]
        return (self.s[w + 1] & 0xFFFF, self.s[w])

    def set_raw(self, i: int, raw: tuple[int, int]) -> None:
        p = self.phys(i)
        w = ST_WORD[p]
        self.s[w + 1] = raw[0] & 0xFFFF
        self.s[w] = raw[1]
        self.tag &= ~(1 << p)

    def read(self, i: int) -> Val | None:
        """ST(i) unpacked, or None after flagging a stack underflow if it is empty."""
        if self.empty(i):
            self.flag(IE | SF)
            return None
        return unpack80(*self.raw(i))

    def flag(self, bits: int) -> None:
        self.sw |= bits

    def push(self, raw: tuple[int, int], underflow: bool = False) -> None:
        self.top = (self.top - 1) & 7
        if not self.tag >> self.top & 1 and not underflow:  # overflow: the indefinite instead
            self.flag(IE | SF | C1)
            raw = INDEFINITE
        self.set_raw(0, raw)

    def pop(self) -> None:
        self.tag |= 1 << self.top
        self.top = (self.top + 1) & 7

    def done(self) -> None:
        s = self.s
        s[TOP_W] = self.top
        s[TAG_W] = self.tag
        s[SW_W] = self.sw


def _start(env) -> Fpu:
    f = Fpu(env)
    f.sw &= ~C1  # C1 is cleared unless the operation sets it (round up, stack overflow, fxam sign)
    return f


# --- operands from memory ---------------------------------------------------------------------
K_F32, K_F64, K_F80, K_INT, K_CONST, K_ST = 0, 1, 2, 3, 4, 5
K_BCD = 12  # fbld / fbstp: 18 packed decimal digits and a sign byte (10 bytes, like K_F80)
BCD_INDEFINITE = (0xFFFF, 0xC0 << 56)  # (bytes 8-9, bytes 0-7) stored for an invalid fbstp


def bcd_value(lo: int, hi: int) -> int:
    """The magnitude of a packed BCD operand (the sign is bit 15 of hi); a nibble above 9
    counts with its binary value (the hardware's result is undefined then)."""
    bits = (lo & ((1 << 64) - 1)) | (hi & 0xFF) << 64
    n = 0
    for k in range(17, -1, -1):
        n = n * 10 + (bits >> (4 * k) & 0xF)
    return n


def bcd_bits(n: int) -> tuple[int, int]:
    """|n| < 10**18 as packed BCD digits: (bytes 0-7, byte 8)."""
    bits = 0
    for k in range(18):
        n, d = divmod(n, 10)
        bits |= d << (4 * k)
    return bits & ((1 << 64) - 1), bits >> 64


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def mem_operand(kind: int, lo: int, hi: int = 0) -> Val:
    """A memory operand (f32/f64/f80 bits, or a sign-extended integer) as a value."""
    if kind == K_F32:
        return unpack_ieee(lo & 0xFFFFFFFF, SGL)
    if kind == K_F64:
        return unpack_ieee(lo & ((1 << 64) - 1), DBL)
    if kind == K_F80:
        return unpack80(hi & 0xFFFF, lo & ((1 << 64) - 1))
    if kind == K_BCD:
        n = bcd_value(lo, hi)
        if n == 0:
            return Val(ZERO, hi >> 15 & 1)
        return unpack80(*int_to80(-n if hi >> 15 & 1 else n))
    n = _signed64(lo)
    return unpack80(*int_to80(n))


def _hp(bits: int) -> tuple[int, int]:
    """Constants to `bits` fractional bits, exact integers: pi, ln 2, ln 10."""
    one = 1 << bits

    def atan_inv(k: int) -> int:  # atan(1/k) * one
        total, term, n, sign = 0, one // k, 1, 1
        while term:
            total += sign * (term // n)
            term //= k * k
            n += 2
            sign = -sign
        return total

    def atanh_inv(k: int) -> int:  # atanh(1/k) * one
        total, term, n = 0, one // k, 1
        while term:
            total += term // n
            term //= k * k
            n += 2
        return total

    pi = 4 * (4 * atan_inv(5) - atan_inv(239))
    ln2 = 2 * atanh_inv(3)
    ln10 = 3 * ln2 + 2 * atanh_inv(9)  # ln 10 = ln 8 + ln(5/4)
    return pi, ln2, ln10


def _constants() -> list[tuple[int, int, int]]:
    """fld1, fldl2t, fldl2e, fldpi, fldlg2, fldln2, fldz as (sign, m, e) at 200 bits."""
    bits = 220
    pi, ln2, ln10 = _hp(bits)
    one = 1 << bits
    vals = [one, (ln10 << bits) // ln2, (one << bits) // ln2, pi, (ln2 << bits) // ln10, ln2, 0]
    return [(0, v, -bits) for v in vals]


CONSTS = _constants()  # order of D9 E8..EE


def const_value(idx: int, rc: int) -> tuple[tuple[int, int], int]:
    sign, m, e = CONSTS[idx]
    if m == 0:
        return (0, 0), 0
    raw, _ = round80(sign, m, e, rc)
    return raw, 0  # the hardware reports neither inexact nor C1 for its constants


# --- the helpers --------------------------------------------------------------------------------
def h_fld(env, kind: int, lo: int, hi: int) -> None:
    """Push a value: f32/f64/f80 bits, a sign-extended integer, a constant, or ST(lo)."""
    f = _start(env)
    if kind == K_ST and f.empty(lo & 7):  # reported as the underflow it is (C1 = 0)
        f.flag(IE | SF)
        f.push(INDEFINITE, underflow=True)
        f.done()
        return
    if not f.tag >> ((f.top - 1) & 7) & 1:  # overflow: the operand is not even looked at
        f.push(INDEFINITE)
        f.done()
        return
    if kind == K_ST:
        raw = f.raw(lo & 7)
    elif kind == K_CONST:
        raw, fl = const_value(lo, f.rc)
        f.flag(fl)
    elif kind == K_F80:
        raw = (hi & 0xFFFF, lo & ((1 << 64) - 1))
    else:
        v = mem_operand(kind, lo, hi)
        if v.kind == NAN:
            if v.snan:
                f.flag(IE)
            raw = quiet(v)
        elif v.kind == FIN:
            if v.denormal:
                f.flag(DE)
            raw, _ = round80(v.sign, v.m, v.e, RN)  # exact
        else:
            raw = pack_special(v.kind, v.sign)
    f.push(raw)
    f.done()


# store kinds beyond the loads': integer widths, and truncating integer stores (fisttp)
S_I16, S_I32, S_I64, S_T16, S_T32, S_T64 = 6, 7, 8, 9, 10, 11
_INT_BITS = {S_I16: 16, S_I32: 32, S_I64: 64, S_T16: 16, S_T32: 32, S_T64: 64}


def _store_ieee(f: Fpu, v: Val | None, fmt: Fmt) -> int:
    if v is None or v.kind == BAD:
        if v is not None:
            f.flag(IE)
        v = unpack80(*INDEFINITE)
    if v.kind == NAN:
        if v.snan:
            f.flag(IE)
        fb = fmt.prec - 1
        frac = ((v.raw[1] | QUIET_BIT) >> (63 - fb)) & ((1 << fb) - 1)  # quieted, payload truncated
        return v.sign << (fb + fmt.ebits) | ((1 << fmt.ebits) - 1) << fb | frac
    if v.kind in (ZERO, INF):
        biased = 0 if v.kind == ZERO else (1 << fmt.ebits) - 1
        return encode_ieee(fmt, v.sign, biased, 0)
    biased, sig, flags, up = round_to(fmt, v.sign, v.m, v.e, f.rc)
    f.flag(flags | (C1 if up else 0))
    return encode_ieee(fmt, v.sign, biased, sig)


def _store_int(f: Fpu, v: Val | None, bits: int, truncate: bool) -> int:
    lim = 1 << (bits - 1)
    if v is None or v.kind in (NAN, INF, BAD):
        if v is not None:
            f.flag(IE)
        return lim
    if v.kind == ZERO:
        return 0
    n, flags, up = round_int(v, RZ if truncate else f.rc)
    if not -lim <= n < lim:
        f.flag(IE)
        return lim
    f.flag(flags | (C1 if up else 0))
    return n & ((1 << bits) - 1)


def _store_bcd(f: Fpu, v: Val | None) -> tuple[int, int]:
    """fbstp: ST(0) rounded to an integer by the rounding control, as (bytes 8-9, bytes 0-7)."""
    if v is None or v.kind in (NAN, INF, BAD):
        if v is not None:
            f.flag(IE)
        return BCD_INDEFINITE
    if v.kind == ZERO:
        return v.sign << 15, 0
    n, flags, up = round_int(v, f.rc)
    if abs(n) >= 10 ** 18:
        f.flag(IE)
        return BCD_INDEFINITE
    f.flag(flags | (C1 if up else 0))  # a denormal operand is not reported (as for fist)
    lo, byte8 = bcd_bits(abs(n))
    return v.sign << 15 | byte8, lo


def h_fst(env, kind: int, i: int, pop: int) -> tuple[int, int]:
    """Store ST(0) as kind (to memory: the returned (low 64 bits, high bits)) or into ST(i)."""
    f = _start(env)
    lo = hi = 0
    if kind == K_ST:
        if f.empty(0):
            f.flag(IE | SF)
            raw = INDEFINITE
        else:
            raw = f.raw(0)
        f.set_raw(i & 7, raw)
    elif kind == K_F80:
        if f.empty(0):
            f.flag(IE | SF)
            hi, lo = INDEFINITE
        else:
            hi, lo = f.raw(0)
    elif kind == K_BCD:
        hi, lo = _store_bcd(f, f.read(0))
    else:
        v = f.read(0)
        if kind == K_F32:
            lo = _store_ieee(f, v, SGL)
        elif kind == K_F64:
            lo = _store_ieee(f, v, DBL)
        else:
            lo = _store_int(f, v, _INT_BITS[kind], kind >= S_T16)
    if pop:
        f.pop()
    f.done()
    return lo, hi


# arithmetic: ST(dst) = ST(dst) op other, where other is ST(val) (kind K_ST) or a memory value
OPS = ("add", "mul", "sub", "subr", "div", "divr")


def _binary(f: Fpu, op: str, x: Val, y: Val) -> tuple[tuple[int, int], int]:
    if op in ("subr", "divr"):
        x, y, op = y, x, op[:-1]
    if x.kind == BAD or y.kind == BAD:
        return INDEFINITE, IE
    if x.kind == NAN or y.kind == NAN:
        return pick_nan(x, y), IE if (x.snan or y.snan) else 0
    flags = DE if (x.denormal or y.denormal) else 0
    rc, prec = f.rc, f.prec
    if op == "add":
        raw, fl = _sum(x, y, False, rc, prec)
    elif op == "sub":
        raw, fl = _sum(x, y, True, rc, prec)
    elif op == "mul":
        raw, fl = _mul(x, y, rc, prec)
    else:
        raw, fl = _div(x, y, rc, prec)
    if fl & (IE | ZE):  # the hardware reports no denormal operand for 0/0 or x/0
        flags &= ~DE
    return raw, flags | fl


def h_arith(env, op: int, dst: int, kind: int, val: int, pop: int) -> None:
    f = _start(env)
    dst &= 7
    x = f.read(dst)
    y = f.read(val & 7) if kind == K_ST else mem_operand(kind, val)
    if x is None or y is None:
        raw = INDEFINITE
    else:
        raw, flags = _binary(f, OPS[op], x, y)
        f.flag(flags)
    f.set_raw(dst, raw)
    if pop:
        f.pop()
    f.done()


def _compare(f: Fpu, x: Val | None, y: Val | None, unordered_ok: bool) -> int:
    """The relation as C3 C2 C0 bits: 000 >, 001 <, 100 =, 111 unordered; flags set on f."""
    if x is None or y is None:
        return C3 | C2 | C0
    if x.kind == BAD or y.kind == BAD:
        f.flag(IE)
        return C3 | C2 | C0
    if x.kind == NAN or y.kind == NAN:
        if not unordered_ok or x.snan or y.snan:
            f.flag(IE)
        return C3 | C2 | C0
    if x.denormal or y.denormal:
        f.flag(DE)
    c = _cmp_vals(x, y)
    return C0 if c < 0 else C3 if c == 0 else 0


def _cmp_vals(x: Val, y: Val) -> int:
    """-1, 0, 1 as x <, ==, > y for non-NaN values (zeros of both signs are equal)."""
    if x.kind == INF or y.kind == INF:
        xv = (-2 if x.sign else 2) if x.kind == INF else 0
        yv = (-2 if y.sign else 2) if y.kind == INF else 0
        return (xv > yv) - (xv < yv)
    a = 0 if x.kind == ZERO else (-1 if x.sign else 1) * x.m
    b = 0 if y.kind == ZERO else (-1 if y.sign else 1) * y.m
    e = min(x.e, y.e)
    a <<= x.e - e
    b <<= y.e - e
    return (a > b) - (a < b)


def h_fcom(env, kind: int, val: int, pops: int, unordered: int) -> None:
    """fcom/fucom/ficom/ftst: compare ST(0) with ST(val) or a memory value; pop pops times."""
    f = _start(env)
    x = f.read(0)
    y = f.read(val & 7) if kind == K_ST else mem_operand(kind, val)
    c = _compare(f, x, y, bool(unordered))  # may raise flags: before reading f.sw
    f.sw = (f.sw & ~(C0 | C2 | C3)) | c
    for _ in range(pops):
        f.pop()
    f.done()


def h_fcomi(env, i: int, pop: int, unordered: int) -> tuple[int, int, int]:
    """fcomi/fucomi(p): the relation of ST(0) and ST(i) as (zf, pf, cf). C1 changes only on a
    stack underflow (P6 behaviour, seen on current CPUs too)."""
    f = Fpu(env)
    if f.empty(0) or f.empty(i & 7):
        f.sw &= ~C1
    c = _compare(f, f.read(0), f.read(i & 7), bool(unordered))
    if pop:
        f.pop()
    f.done()
    return int(bool(c & C3)), int(bool(c & C2)), int(bool(c & C0))


def _fscale(f: Fpu, x: Val, y: Val) -> tuple[tuple[int, int], int]:
    if x.kind == BAD or y.kind == BAD:
        return INDEFINITE, IE
    if x.kind == NAN or y.kind == NAN:
        return pick_nan(x, y), IE if (x.snan or y.snan) else 0
    flags = DE if (x.denormal or y.denormal) else 0
    if y.kind == INF:
        if (x.kind == ZERO and not y.sign) or (x.kind == INF and y.sign):
            return INDEFINITE, IE
        if x.kind in (ZERO, INF):
            return pack_special(x.kind, x.sign), flags
        return pack_special(INF if not y.sign else ZERO, x.sign), flags
    if x.kind in (ZERO, INF):
        return pack_special(x.kind, x.sign), flags
    n = 0 if y.kind == ZERO else round_int(y, RZ)[0]
    n = max(-(1 << 17), min(1 << 17, n))  # far beyond the exponent range either way
    raw, fl = round80(x.sign, x.m, x.e + n, f.rc)
    return raw, flags | fl


def _fprem(x: Val, y: Val, ieee: bool) -> tuple[tuple[int, int], int, int | None]:
    """fprem / fprem1 (ieee: quotient rounded to nearest even): (result, flags, C0-C3 bits).

    An exponent difference D >= 64 only reduces partially (C2 = 1): by ST(1) * 2**s with s the
    largest multiple of 32 not above D - 32 (Intel: "N between 32 and 63"; this is the choice
    the hardware makes), so that a loop on C2 converges in steps of at least 32 bits.
    """
    if x.kind == BAD or y.kind == BAD:  # the invalid cases clear C2 only (cc None)
        return INDEFINITE, IE, None
    if x.kind == NAN or y.kind == NAN:
        return pick_nan(x, y), IE if (x.snan or y.snan) else 0, None
    if x.kind == INF or y.kind == ZERO:
        return INDEFINITE, IE, None
    flags = DE if (x.denormal or y.denormal) else 0
    if x.kind == ZERO or y.kind == INF:
        return (x.sign << 15 | (0x7FFF if x.kind == INF else 0), x.m if x.kind == FIN else 0) \
            if x.kind != FIN else round80(x.sign, x.m, x.e, RN)[0], flags, 0
    d = (x.e + x.m.bit_length()) - (y.e + y.m.bit_length())
    e = min(x.e, y.e)
    a, b = x.m << (x.e - e), y.m << (y.e - e)
    if d >= 64:
        s = (d - 32) // 32 * 32
        q, r = divmod(a, b << s)
        cc = C2
    else:
        q, r = divmod(a, b)
        if ieee and (2 * r > b or (2 * r == b and q & 1)):
            q += 1
            r -= b
        cc = (C0 if q & 4 else 0) | (C3 if q & 2 else 0) | (C1 if q & 1 else 0)
    if r == 0:
        return (x.sign << 15, 0), flags, cc
    sign = x.sign ^ (r < 0)
    raw, _ = round80(sign, abs(r), e, RN)  # exact: |r| < |y|
    return raw, flags, cc


def _fxam(f: Fpu) -> int:
    p = f.phys(0)
    w = ST_WORD[p]
    se, mant = f.s[w + 1] & 0xFFFF, f.s[w]
    c1 = C1 if se & 0x8000 else 0
    if f.tag >> p & 1:
        return c1 | C3 | C0
    v = unpack80(se, mant)
    cls = {BAD: 0, NAN: C0, INF: C2 | C0, ZERO: C3}.get(v.kind)
    if cls is None:
        cls = C3 | C2 if v.denormal else C2
    return c1 | cls


def h_unary(env, op: int) -> None:
    """fchs fabs fsqrt frndint fscale ftst fxam fprem fprem1, by index into UNARY."""
    f = _start(env)
    name = UNARY[op]
    if name == "fxam":
        f.sw = (f.sw & ~CC) | _fxam(f)
        f.done()
        return
    x = f.read(0)
    if name == "ftst":
        c = _compare(f, x, Val(ZERO, 0), False)
        f.sw = (f.sw & ~(C0 | C2 | C3)) | c
        f.done()
        return
    if x is None:
        if name in ("fprem", "fprem1"):
            f.sw &= ~C2
        f.set_raw(0, INDEFINITE)
        f.done()
        return
    se, mant = f.raw(0)
    if name in ("fscale", "fprem", "fprem1"):  # two operands: ST(1) is checked before ST(0)'s class
        y = f.read(1)
        if y is None:
            raw = INDEFINITE
            if name != "fscale":
                f.sw &= ~C2
        elif name == "fscale":
            raw, fl = _fscale(f, x, y)
            f.flag(fl)
        else:
            raw, fl, cc = _fprem(x, y, name == "fprem1")
            f.sw = (f.sw & ~C2) if cc is None else (f.sw & ~CC) | cc
            f.flag(fl)
    elif name == "fchs":
        raw = (se ^ 0x8000, mant)
    elif name == "fabs":
        raw = (se & 0x7FFF, mant)
    elif x.kind == BAD:
        raw = INDEFINITE
        f.flag(IE)
    elif x.kind == NAN:
        raw = quiet(x)
        f.flag(IE if x.snan else 0)
    elif name == "fsqrt":
        raw, fl = _sqrt(x, f.rc, f.prec)
        f.flag(fl | (DE if x.denormal and not fl & IE else 0))
    else:  # frndint
        if x.kind != FIN or x.e >= 0:  # already integral
            raw = (se, mant)
            f.flag(DE if x.denormal else 0)
        else:
            n, fl, up = round_int(x, f.rc)
            raw = int_to80(n) if n else (x.sign << 15, 0)
            f.flag(fl | (C1 if up else 0) | (DE if x.denormal else 0))
    f.set_raw(0, raw)
    f.done()


UNARY = ("fchs", "fabs", "fsqrt", "frndint", "fscale", "ftst", "fxam", "fprem", "fprem1")


def h_fxch(env, i: int) -> None:
    f = _start(env)
    i &= 7
    a = INDEFINITE if f.empty(0) else f.raw(0)
    b = INDEFINITE if f.empty(i) else f.raw(i)
    if f.empty(0) or f.empty(i):
        f.flag(IE | SF)
    f.set_raw(0, b)
    f.set_raw(i, a)
    f.done()


def h_ffree(env, i: int, pop: int) -> None:
    f = _start(env)
    f.tag |= 1 << f.phys(i & 7)
    if pop:
        f.pop()
    f.done()


def h_fstp_top(env, delta: int) -> None:
    """fincstp (+1) / fdecstp (+7): move TOP without touching tags; C1 cleared."""
    f = _start(env)
    f.top = (f.top + delta) & 7
    f.done()


def h_fcmov(env, i: int, cond: int) -> None:
    """ST(0) = ST(i) if cond. Either register empty is a stack underflow whatever cond says (the
    indefinite lands in ST(0)); C1 is left alone otherwise (observed on hardware)."""
    f = Fpu(env)
    if f.empty(0) or f.empty(i & 7):
        f.sw &= ~C1
        f.flag(IE | SF)
        f.set_raw(0, INDEFINITE)
    elif cond:
        f.set_raw(0, f.raw(i & 7))
    f.done()


# --- the environment image (fnstenv/fldenv, fnsave/frstor), 32-bit protected-mode layout ---------
ENV_SIZE = 28  # then, for fnsave/frstor, ST(0)..ST(7) at 10 bytes each: 108 bytes in all


def _tag2(se: int, mant: int) -> int:
    """The two-bit tag of a non-empty register: 0 valid, 1 zero, 2 special."""
    exp = se & 0x7FFF
    if exp == 0x7FFF:
        return 2
    if exp == 0:
        return 1 if mant == 0 else 2
    return 0 if mant & INT_BIT else 2


def full_tag_word(f: Fpu) -> int:
    tw = 0
    for p in range(8):
        w = ST_WORD[p]
        t = 3 if f.tag >> p & 1 else _tag2(f.s[w + 1] & 0xFFFF, f.s[w])
        tw |= t << (2 * p)
    return tw


def h_fnstenv(env, addr: int, save: int) -> None:
    """fnstenv (save 0) / fnsave (save 1) to guest memory at addr. The instruction and operand
    pointers are stored as 0, as the host CPU does for a state without unmasked exceptions."""
    f = Fpu(env)
    mem = env.mem
    sw = f.sw | f.top << 11
    words = (f.cw | 0xFFFF0000, sw | 0xFFFF0000, full_tag_word(f) | 0xFFFF0000, 0, 0, 0, 0xFFFF0000)
    for k, v in enumerate(words):
        mem.store(addr + 4 * k, 4, v)
    if save:
        for i in range(8):
            se, mant = f.raw(i)
            mem.store(addr + ENV_SIZE + 10 * i, 8, mant)
            mem.store(addr + ENV_SIZE + 10 * i + 8, 2, se)
        f.cw, f.sw, f.top, f.tag = 0x37F, 0, 0, 0xFF  # then fninit
    else:
        f.cw |= 0x3F  # fnstenv masks every exception after storing
    env.state[CW_W] = f.cw
    f.done()


def h_fldenv(env, addr: int, restore: int) -> None:
    """fldenv (restore 0) / frstor (restore 1) from guest memory at addr."""
    f = Fpu(env)
    mem = env.mem
    cw = mem.load(addr, 2)
    sw = mem.load(addr + 4, 2)
    tw = mem.load(addr + 8, 2)
    regs = []
    if restore:
        regs = [(mem.load(addr + ENV_SIZE + 10 * i + 8, 2), mem.load(addr + ENV_SIZE + 10 * i, 8))
                for i in range(8)]
    f.cw, f.sw, f.top = cw, sw & ~0x3800, sw >> 11 & 7
    for i, raw in enumerate(regs):  # the image holds ST(i): physical register (TOP + i) & 7
        p = (f.top + i) & 7
        f.s[ST_WORD[p]] = raw[1]
        f.s[ST_WORD[p] + 1] = raw[0]
    f.tag = sum(1 << p for p in range(8) if (tw >> (2 * p)) & 3 == 3)
    env.state[CW_W] = f.cw
    f.done()


# --- fxsave / fxrstor: the 512-byte x87 + SSE image ---------------------------------------------
MXCSR_MASK = 0xFFFF  # the MXCSR bits ldmxcsr accepts (DAZ included): fp.MXCSR_MASK


def h_fxsave(env, addr: int) -> None:
    """Store the x87 and SSE state at addr (16-byte aligned; the lifter checks). Bytes 416-511
    are left alone, as the hardware does; the instruction/operand pointers are stored as 0."""
    f = Fpu(env)
    mem, s = env.mem, env.state
    mem.store(addr, 8, f.cw | (f.sw | f.top << 11) << 16 | (~f.tag & 0xFF) << 32)
    mem.store(addr + 8, 8, 0)
    mem.store(addr + 16, 8, 0)
    mem.store(addr + 24, 8, (s[MXCSR_W] & 0xFFFFFFFF) | MXCSR_MASK << 32)
    for i in range(8):
        se, mant = f.raw(i)
        mem.store(addr + 32 + 16 * i, 8, mant)
        mem.store(addr + 40 + 16 * i, 8, se)
    for i in range(16):
        mem.store(addr + 160 + 16 * i, 8, s[XMM_WORD[i]])
        mem.store(addr + 168 + 16 * i, 8, s[XMM_WORD[i] + 1])


def h_fxrstor(env, addr: int) -> None:
    """Load the x87 and SSE state from the image at addr."""
    f = Fpu(env)
    mem, s = env.mem, env.state
    head = mem.load(addr, 8)
    mxcsr = mem.load(addr + 24, 4)
    st = [(mem.load(addr + 40 + 16 * i, 2), mem.load(addr + 32 + 16 * i, 8)) for i in range(8)]
    xmm = [(mem.load(addr + 160 + 16 * i, 8), mem.load(addr + 168 + 16 * i, 8)) for i in range(16)]
    f.cw = head & 0xFFFF
    sw = head >> 16 & 0xFFFF
    f.sw, f.top = sw & ~0x3800, sw >> 11 & 7
    for i, (se, mant) in enumerate(st):
        w = ST_WORD[(f.top + i) & 7]
        s[w], s[w + 1] = mant, se
    f.tag = ~(head >> 32) & 0xFF
    s[CW_W] = f.cw
    s[MXCSR_W] = mxcsr
    for i, (lo, hi) in enumerate(xmm):
        s[XMM_WORD[i]], s[XMM_WORD[i] + 1] = lo, hi
    f.done()


def _reg(name: str, args: int, rets: int, impl, doc: str, **mem: bool) -> None:
    register(Helper(name, (I64,) * args, (I64,) * rets, reads_state=True, writes_state=True, doc=doc, **mem),
             impl)


_reg("x87_fld", 3, 0, h_fld, "push (kind, lo, hi): f32/f64/f80 bits, an integer, a constant or ST(lo)")
_reg("x87_fst", 3, 2, h_fst, "store ST(0) as (kind, i, pop): returns (low, high) memory bits")
_reg("x87_arith", 5, 0, h_arith, "ST(dst) = ST(dst) op source: (op, dst, kind, val, pop)")
_reg("x87_fcom", 4, 0, h_fcom, "C3 C2 C0 from comparing ST(0): (kind, val, pops, unordered)")
_reg("x87_fcomi", 3, 3, h_fcomi, "(zf, pf, cf) from comparing ST(0) and ST(i): (i, pop, unordered)")
_reg("x87_unary", 1, 0, h_unary, "fchs fabs fsqrt frndint fscale ftst fxam fprem fprem1 by index")
_reg("x87_fxch", 1, 0, h_fxch, "swap ST(0) and ST(i)")
_reg("x87_ffree", 2, 0, h_ffree, "mark ST(i) empty, then pop if asked")
_reg("x87_fstp_top", 1, 0, h_fstp_top, "fincstp / fdecstp")
_reg("x87_fcmov", 2, 0, h_fcmov, "ST(0) = ST(i) if cond")
_reg("x87_fnstenv", 2, 0, h_fnstenv, "store the environment (and with save=1 the registers, then fninit)",
     writes_mem=True)
_reg("x87_fldenv", 2, 0, h_fldenv, "load the environment (and with restore=1 the registers)", reads_mem=True)
_reg("x87_fxsave", 1, 0, h_fxsave, "store the 512-byte x87+SSE image at addr", writes_mem=True)
_reg("x87_fxrstor", 1, 0, h_fxrstor, "load the 512-byte x87+SSE image at addr", reads_mem=True)

__all__ = ["K_F32", "K_F64", "K_F80", "K_INT", "K_CONST", "K_ST", "K_BCD", "S_I16", "S_I32", "S_I64", "S_T16",
           "S_T32", "S_T64", "OPS", "UNARY", "unpack80", "round_to", "Fpu", "EXT", "DBL", "SGL"]
