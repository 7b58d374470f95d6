"""High-precision real functions on exact dyadic inputs, for the x87 transcendental helpers.

A finite input is an exact value m * 2**e (Python integers); a result is an approximation
(m, e) of the real function's value with a relative error far below 2**-200, which the caller
rounds once to the 64-bit x87 significand (the value is irrational unless the caller handled
the exact cases first, so the approximation never sits on a rounding boundary).

    >>> m, e = expm1_2(1, -1)                  # 2**0.5 - 1
    >>> round(m * 2.0 ** e, 12)
    0.414213562373

Series are summed in fixed point with WORK fractional bits; inputs are first reduced to a
range where the series converge quickly (|t| < 0.7 for expm1, |z| < 0.2 for atanh and atan).
Negative terms are rounded toward -inf, and a series whose terms all vanish is nudged below 1
where the function is below its first term (sin, cos, atan of a tiny argument), so that an
approximation never lands on a representable value the true result is not.
"""

from __future__ import annotations

from math import isqrt

WORK = 320  # fractional bits of the fixed-point series
CONST_BITS = 640  # pi and ln 2 to this many fractional bits (reduction of x up to 2**64 by pi/2)


def _consts(bits: int) -> tuple[int, int]:
    """pi and ln 2 times 2**bits, from Machin's formula and atanh(1/3)."""
    one = 1 << (bits + 16)

    def series(k: int, alternate: bool) -> int:
        total, term, n, sign = 0, one // k, 1, 1
        while term:
            total += sign * (term // n)
            term //= k * k
            n += 2
            if alternate:
                sign = -sign
        return total

    pi = 4 * (4 * series(5, True) - series(239, True))
    ln2 = 2 * series(3, False)
    return pi >> 16, ln2 >> 16


PI, LN2 = _consts(CONST_BITS)  # value * 2**CONST_BITS


def fixed(m: int, e: int, bits: int = WORK) -> int:
    """m * 2**e as a fixed-point integer with `bits` fractional bits (rounded toward -inf)."""
    s = e + bits
    return m << s if s >= 0 else m >> -s


def _expm1_ratio(t: int) -> int:
    """(e**t - 1) / t in fixed point, for a fixed-point t with |t| < 0.75."""
    one = 1 << WORK
    total, term, n = one, one, 1
    while term:
        n += 1
        term = (term * t >> WORK) // n
        total += term
    return total


def expm1_2(m: int, e: int) -> tuple[int, int]:
    """2**x - 1 for x = m * 2**e with |x| <= 1 (m signed), as t * ratio with t = x ln 2."""
    tm, te = m * LN2, e - CONST_BITS
    return tm * _expm1_ratio(fixed(tm, te)), te - WORK


def _atanh_ratio(z2: int) -> int:
    """atanh(z) / z in fixed point, from z*z in fixed point (|z| < 0.4)."""
    one = 1 << WORK
    total, power, n = one, one, 1
    while power:
        power = power * z2 >> WORK
        n += 2
        total += power // n
    return total


def atanh_q(p: int, q: int) -> tuple[int, int]:
    """atanh(p/q) (q > 0, |p/q| < 0.4) as (m, e): p/q carried to WORK relative bits."""
    sh = WORK + max(0, q.bit_length() - p.bit_length() if p else 0)
    z = (p << sh) // q if p >= 0 else -((-p << sh) // q)  # p/q * 2**sh, relative precision
    z2 = (p * p << WORK) // (q * q)
    return z * _atanh_ratio(z2), -sh - WORK


def log2_q(num: int, den: int) -> tuple[int, int]:
    """log2(num/den) for integers num, den > 0, as (m, e); the caller handles the exact powers
    of two. Reduces to y in [sqrt(1/2), sqrt(2)) times 2**k; log2 y = 2 atanh((y-1)/(y+1)) / ln 2."""
    k = num.bit_length() - den.bit_length()
    if k >= 0:
        den <<= k
    else:
        num <<= -k
    # now num/den is in (1/2, 2): move it into [sqrt(1/2), sqrt(2))
    if 2 * num * num < den * den:
        num <<= 1
        k -= 1
    elif num * num >= 2 * den * den:
        den <<= 1
        k += 1
    am, ae = atanh_q(num - den, num + den)  # atanh(z), relative precision
    # log2 y = 2 atanh(z) / ln2: as (m, e) with ln2 from CONST_BITS
    lm, le = (2 * am << CONST_BITS) // LN2, ae
    if k == 0:
        return lm, le
    return (k << -le) + lm if le < 0 else k + (lm << le), min(le, 0)


def log2_1p(m: int, e: int) -> tuple[int, int]:
    """log2(1 + x) for x = m * 2**e > -1, x != 0: atanh(x / (2 + x)) keeps the precision of a
    tiny x; larger ones go through log2_q."""
    if e >= 0:
        return log2_q((m << e) + 1, 1)
    d = 1 << -e  # 1 + x = (d + m) / d
    if 4 * abs(m) < d:
        am, ae = atanh_q(m, 2 * d + m)
        return (2 * am << CONST_BITS) // LN2, ae
    return log2_q(d + m, d)


def _sin_ratio(r2: int) -> int:
    """sin(r) / r from r*r in fixed point (|r| < 0.8)."""
    one = 1 << WORK
    if r2 == 0:  # r*r below the fixed point: the ratio is still below 1 (a rounding must see it)
        return one - 1
    total, term, n = one, one, 1
    while term:
        term = -(term * r2 >> WORK) // ((n + 1) * (n + 2))
        n += 2
        total += term
    return total


def _cos(r2: int) -> int:
    """cos(r) in fixed point from r*r in fixed point."""
    one = 1 << WORK
    if r2 == 0:
        return one - 1
    total, term, n = one, one, 0
    while term:
        term = -(term * r2 >> WORK) // ((n + 1) * (n + 2))
        n += 2
        total += term
    return total


def sincos_reduced(m: int, e: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(sin r, cos r) for r = m * 2**e with |r| <= pi/4 + a little, as (m, e) pairs."""
    r2 = fixed(m * m, 2 * e)
    return (m * _sin_ratio(r2), e - WORK), (_cos(r2), -WORK)


def reduce_halfpi(m: int, e: int, pi_bits: int) -> tuple[int, int, int]:
    """x = m * 2**e (m > 0) minus k * pi/2 with pi rounded to pi_bits significant bits (the
    reduction constant of the hardware): (k mod 4, rm, re) with r = rm * 2**re exact."""
    drop = PI.bit_length() - pi_bits
    pi = (PI + (1 << (drop - 1))) >> drop  # pi to pi_bits bits, rounded to nearest
    pb = CONST_BITS - drop + 1  # pi/2 = pi * 2**-pb
    if e + pb >= 0:
        xs, s = m << (e + pb), pb
    else:
        xs, s = m, -e
        pi <<= s - pb
    k = (2 * xs + pi) // (2 * pi)  # nearest integer to x / (pi/2)
    return k & 3, xs - k * pi, -s


def atan_q(p: int, q: int) -> tuple[int, int]:
    """atan(p/q) for integers p >= 0, q > 0, as (m, e) with relative precision."""
    if p > q:  # pi/2 - atan(q/p): at least pi/4, no cancellation
        am, ae = atan_q(q, p)
        return (PI << (WORK - 1)) - fixed(am, ae, CONST_BITS + WORK), -CONST_BITS - WORK
    sh = WORK + max(0, q.bit_length() - p.bit_length())
    z = (p << sh) // q  # p/q * 2**sh
    # two halvings, z -> z / (1 + sqrt(1 + z*z)), bring z below tan(pi/16) ~ 0.2
    halvings = 0
    while z >> (sh - 3) >= 2 and halvings < 2:  # z >= 0.25
        one = 1 << sh
        root = isqrt(one * one + z * z)
        z = (z << sh) // (one + root)
        halvings += 1
    z2 = fixed(z * z, -2 * sh)
    total, power, n, sign = 1 << WORK, 1 << WORK, 1, 1
    if z2 == 0:
        total -= 1  # atan(z) < z, however tiny z is
    while power:
        power = power * z2 >> WORK
        n += 2
        sign = -sign
        total += (sign * power) // n
    return z * total << halvings, -sh - WORK


def pi_times(num: int, den: int = 1) -> tuple[int, int]:
    """pi * num / den as (m, e)."""
    return (PI * num << WORK) // den, -CONST_BITS - WORK


__all__ = ["expm1_2", "log2_q", "log2_1p", "sincos_reduced", "reduce_halfpi", "atan_q", "pi_times",
           "atanh_q", "fixed", "PI", "LN2", "CONST_BITS", "WORK"]
