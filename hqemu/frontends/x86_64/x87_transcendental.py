"""x87 transcendental instructions and fxtract as one helper, over x87_helpers' register stack.

f2xm1, fyl2x, fyl2xp1, fsin, fcos, fsincos, fptan, fpatan and fxtract: x87.py emits
`call x87_trans, <index into TRANS>`. Values come from x87_math (relative error far below
2**-200) and are rounded once to 64 bits with the control word's rounding mode, so the result
is the correctly rounded one; the precision control does not apply (as on the hardware).
fsin/fcos/fptan/fsincos reduce their argument by multiples of pi/2 with pi rounded to
REDUCTION_PI_BITS bits, as the hardware does, and leave an operand of |x| >= 2**63 alone with
C2 = 1.

    >>> call x87_trans, 0x3:i64          # fsin: ST(0) = sin ST(0)
"""

from __future__ import annotations

from hqemu.ir import I64, Helper, register

from . import x87_math as M
from .x87_helpers import (
    BAD,
    C1,
    C2,
    DE,
    FIN,
    IE,
    INDEFINITE,
    INF,
    NAN,
    PE,
    SF,
    ZE,
    ZERO,
    Fpu,
    Val,
    _start,
    int_to80,
    pack_special,
    pick_nan,
    quiet,
    round80,
)

TRANS = ("f2xm1", "fyl2x", "fyl2xp1", "fsin", "fcos", "fsincos", "fptan", "fpatan", "fxtract")
# Significant bits of the pi that fsin/fcos/fptan/fsincos reduce with (measured: see tests)
REDUCTION_PI_BITS = 66
ONE = (0x3FFF, 1 << 63)


def _round(sign: int, m: int, e: int, rc: int, exact: bool = False) -> tuple[tuple[int, int], int]:
    """An approximation (or, with exact, the value itself) rounded to the 64-bit register format;
    a sticky bit below the approximation marks the irrational value as inexact."""
    if m < 0:
        sign, m = sign ^ 1, -m
    if not exact:
        m, e = m << 1 | 1, e - 1
    return round80(sign, m, e, rc)


def _f2xm1(x: Val, rc: int) -> tuple[tuple[int, int], int]:
    """2**x - 1; outside [-1, 1] the operand is returned unchanged, flagged inexact (as the host
    does: the manuals leave it undefined)."""
    if x.kind == ZERO:
        return pack_special(ZERO, x.sign), 0
    if x.kind == INF:  # 2**inf - 1 and 2**-inf - 1
        return (ONE[0] | 0x8000, ONE[1]) if x.sign else pack_special(INF, 0), 0
    if x.m.bit_length() + x.e > 1 or (x.m.bit_length() + x.e == 1 and x.m << 1 != 1 << x.m.bit_length()):
        return (x.sign << 15 | (x.e + x.m.bit_length() - 1 + 0x3FFF), x.m << (64 - x.m.bit_length())), PE
    if x.m.bit_length() + x.e == 1:  # +-1 are computed as inexact (measured on the host: AMD)
        if x.sign:
            return (0xBFFE, 1 << 63), PE
        return _round(0, (1 << 70) - 1, -70, rc, exact=True)
    m = -x.m if x.sign else x.m
    rm, re = M.expm1_2(m, x.e)
    return _round(0, rm, re, rc)


def _log_product(y: Val, lm: int, le: int, lexact: bool, rc: int) -> tuple[tuple[int, int], int]:
    """y * L for a finite nonzero y and a finite L = lm * 2**le."""
    if lm == 0:
        return pack_special(ZERO, y.sign), 0
    m = y.m * lm
    return _round(y.sign, m, y.e + le, rc, exact=lexact)


def _log2_of(x: Val) -> tuple[int, int, bool]:
    """log2 x for a finite positive x: (m, e, exact)."""
    n = x.m.bit_length() - 1
    if x.m == 1 << n:  # a power of two: an exact integer
        return x.e + n, 0, True
    if x.e >= 0:
        lm, le = M.log2_q(x.m << x.e, 1)
    else:
        lm, le = M.log2_q(x.m, 1 << -x.e)
    return lm, le, False


def _fyl2x(x: Val, y: Val, plus1: bool, rc: int) -> tuple[tuple[int, int], int]:
    """y * log2(x) (fyl2x) or y * log2(x + 1) (fyl2xp1); NaNs and unsupported values handled
    by the caller."""
    # the class of L = log2(x [+ 1]): sign and kind
    lexact = False
    flags = 0
    if plus1:
        if x.kind == ZERO:
            lkind, lsign = ZERO, x.sign
        elif x.kind == INF:
            if x.sign:
                return INDEFINITE, IE
            lkind, lsign = INF, 0
        else:
            if _cmp_minus1(x) <= 0:  # undefined: the host returns x (y * -0 for a zero y)
                if y.kind != FIN:
                    return pack_special(y.kind, y.sign ^ 1), 0
                return (x.sign << 15 | (x.e + x.m.bit_length() + 0x3FFE), x.m << (64 - x.m.bit_length())), PE
            else:
                lkind, lsign = FIN, x.sign
                lm, le = M.log2_1p(-x.m if x.sign else x.m, x.e)
    else:
        if x.kind == ZERO:
            lkind, lsign = INF, 1
            flags = ZE if y.kind == FIN else 0
        elif x.sign:
            return INDEFINITE, IE
        elif x.kind == INF:
            lkind, lsign = INF, 0
        else:
            lm, le, lexact = _log2_of(x)
            lkind = ZERO if lm == 0 else FIN
            lsign = int(lm < 0)
    sign = y.sign ^ lsign
    if lkind == INF:
        if y.kind == ZERO:
            return INDEFINITE, IE
        return pack_special(INF, sign), flags
    if lkind == ZERO:
        if y.kind == INF:
            return INDEFINITE, IE
        return pack_special(ZERO, sign), 0
    if y.kind == INF:
        return pack_special(INF, sign), 0
    if y.kind == ZERO:
        return pack_special(ZERO, sign), 0
    return _log_product(y, lm, le, lexact, rc)


def _cmp_minus1(x: Val) -> int:
    """Compare a finite nonzero x with -1."""
    if not x.sign:
        return 1
    n = x.m.bit_length() + x.e - 1  # exponent of the leading bit
    if n > 0:
        return -1
    if n < 0:
        return 1
    return 0 if x.m == 1 << (x.m.bit_length() - 1) else -1


def _fpatan(x: Val, y: Val, rc: int) -> tuple[tuple[int, int], int]:
    """atan2(y, x), x = ST(0), y = ST(1)."""
    s = y.sign
    if y.kind == ZERO:
        if x.sign:  # -0 or negative: +-pi
            return _round(s, *M.pi_times(1), rc)
        return pack_special(ZERO, s), 0
    if y.kind == INF:
        if x.kind == INF:
            return _round(s, *M.pi_times(3 if x.sign else 1, 4), rc)
        return _round(s, *M.pi_times(1, 2), rc)
    if x.kind == ZERO:
        return _round(s, *M.pi_times(1, 2), rc)
    if x.kind == INF:
        if x.sign:
            return _round(s, *M.pi_times(1), rc)
        return pack_special(ZERO, s), 0
    e = min(x.e, y.e)
    p, q = y.m << (y.e - e), x.m << (x.e - e)
    am, ae = M.atan_q(p, q)
    if x.sign:  # pi - atan(|y/x|)
        pm, pe = M.pi_times(1)
        am = (pm << (pe - ae)) - am if pe > ae else pm - (am << (ae - pe))
        ae = min(ae, pe)
    return _round(s, am, ae, rc)


def _trig(name: str, x: Val, rc: int) -> tuple[list[tuple[tuple[int, int], int]], int]:
    """fsin / fcos / fptan / fsincos of a finite nonzero x with |x| < 2**63: the results (in
    push order for the two-result forms) and the flags common to them."""
    k, rm, re = M.reduce_halfpi(x.m, x.e, REDUCTION_PI_BITS)
    (sm, se), (cm, ce) = M.sincos_reduced(rm, re)
    sin = (sm, se) if k % 2 == 0 else (cm, ce)
    cos = (cm, ce) if k % 2 == 0 else (-sm, se)
    if k >= 2:
        sin, cos = (-sin[0], sin[1]), (-cos[0], cos[1])
    sin = (-sin[0], sin[1]) if x.sign else sin
    out = []
    if name in ("fsin", "fsincos"):
        out.append(_round(0, *sin, rc))
    if name in ("fcos", "fsincos"):
        out.append(_round(0, *cos, rc))
    if name == "fptan":
        extra = M.WORK + 8
        out.append(_round(0, (sin[0] << extra) // abs(cos[0]) * (1 if cos[0] > 0 else -1),
                          sin[1] - cos[1] - extra, rc))
    return out, 0


def _fxtract(x: Val) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(exponent, significand, flags) of a non-NaN supported x."""
    if x.kind == ZERO:
        return pack_special(INF, 1), pack_special(ZERO, x.sign), ZE
    if x.kind == INF:
        return pack_special(INF, 0), pack_special(INF, x.sign), 0
    n = x.m.bit_length() - 1
    sig = (x.sign << 15 | 0x3FFF, x.m << (63 - n))
    return int_to80(x.e + n), sig, DE if x.denormal else 0


def _nan_or_bad(*vals: Val) -> tuple[tuple[int, int], int] | None:
    """The result of an operation with an unsupported or NaN operand, or None."""
    if any(v.kind == BAD for v in vals):
        return INDEFINITE, IE
    nans = [v for v in vals if v.kind == NAN]
    if not nans:
        return None
    raw = pick_nan(vals[0], vals[1]) if len(nans) == 2 else quiet(nans[0])
    return raw, IE if any(v.snan for v in nans) else 0


def _denormal(*vals: Val) -> int:
    return DE if any(v.denormal for v in vals) else 0


def h_trans(env, op: int) -> None:
    """The instruction TRANS[op] on the register stack of env."""
    f = _start(env)
    name = TRANS[op]
    if name in ("fyl2x", "fyl2xp1", "fpatan"):
        _binary(f, name)
    elif name in ("fsincos", "fptan", "fxtract"):
        _pushing(f, name)
    else:
        _unary(f, name)
    f.done()


def _unary(f: Fpu, name: str) -> None:
    trig = name != "f2xm1"
    if trig:
        f.sw &= ~C2
    x = f.read(0)
    if x is None:
        f.set_raw(0, INDEFINITE)
        return
    special = _nan_or_bad(x)
    if special is None and trig and x.kind == INF:
        special = INDEFINITE, IE
    if special is not None:
        f.set_raw(0, special[0])
        f.flag(special[1])
        return
    if trig and _out_of_range(x):
        f.sw |= C2
        return
    if x.kind == ZERO:
        raw, fl = (ONE, 0) if name == "fcos" else (pack_special(ZERO, x.sign), 0)
    elif name == "f2xm1":
        raw, fl = _f2xm1(x, f.rc)
    else:
        raw, fl = _trig(name, x, f.rc)[0][0]
    f.flag(fl | _denormal(x))
    f.set_raw(0, raw)


def _out_of_range(x: Val) -> bool:
    return x.kind == FIN and x.m.bit_length() + x.e > 63


def _binary(f: Fpu, name: str) -> None:
    x, y = f.read(0), f.read(1)
    if x is None or y is None:
        raw = INDEFINITE
    else:
        special = _nan_or_bad(x, y)
        if special is not None:
            raw, fl = special
        elif name == "fpatan":
            raw, fl = _fpatan(x, y, f.rc)
            fl |= _denormal(x, y)
        else:
            raw, fl = _fyl2x(x, y, name == "fyl2xp1", f.rc)
            if not fl & (IE | ZE):  # as for a division by zero, no denormal operand reported
                fl |= _denormal(x, y)
        f.flag(fl)
    f.set_raw(1, raw)
    f.pop()


def _pushing(f: Fpu, name: str) -> None:
    """fptan / fsincos / fxtract: ST(0) is replaced and one more value pushed."""
    if name != "fxtract":
        f.sw &= ~C2
    x = f.read(0)
    if x is None:  # underflow: the indefinite in ST(0), then pushed again
        f.set_raw(0, INDEFINITE)
        f.push(INDEFINITE, underflow=True)
        return
    if not f.tag >> ((f.top - 1) & 7) & 1:  # overflow
        f.flag(IE | SF | C1)
        f.set_raw(0, INDEFINITE)
        f.push(INDEFINITE, underflow=True)
        return
    special = _nan_or_bad(x)
    if special is None and name != "fxtract" and x.kind == INF:
        special = INDEFINITE, IE
    if special is not None:
        f.flag(special[1])
        f.set_raw(0, special[0])
        f.push(special[0])
        return
    if name != "fxtract" and _out_of_range(x):
        f.sw |= C2
        return
    if name == "fxtract":
        e, sig, fl = _fxtract(x)
        f.flag(fl)
        f.set_raw(0, e)
        f.push(sig)
        return
    if x.kind == ZERO:
        first, second = (pack_special(ZERO, x.sign), 0), (ONE, 0)
    elif name == "fsincos":
        first, second = _trig(name, x, f.rc)[0]
    else:
        first, second = _trig(name, x, f.rc)[0][0], (ONE, 0)
    f.flag(first[1] | second[1] | _denormal(x))
    if name == "fptan":  # C1 tells the direction of the tangent's rounding only
        f.sw = (f.sw & ~C1) | (first[1] & C1)
    f.set_raw(0, first[0])
    f.push(second[0])


def _reg(name: str, args: int, rets: int, impl, doc: str) -> None:
    register(Helper(name, (I64,) * args, (I64,) * rets, reads_state=True, writes_state=True, doc=doc), impl)


_reg("x87_trans", 1, 0, h_trans, "f2xm1 fyl2x fyl2xp1 fsin fcos fsincos fptan fpatan fxtract by index")

__all__ = ["TRANS", "REDUCTION_PI_BITS", "h_trans"]
