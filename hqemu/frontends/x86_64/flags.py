"""x86 arithmetic flags as IR, computed eagerly: one small function per instruction family.

Each flag (cf pf af zf sf of) has its own 0/1 slot in X86State; a flag-setting instruction
writes the flags it defines right away and the cheap passes drop the writes a later
instruction of the block overwrites. The values for the flags the manual calls undefined are
the ones Unicorn (QEMU's x86 model) produces, so that the differential tests can compare them.

    >>> res = b.add(a, c)
    >>> flags_add(b, a, c, res)                  # puts all six flags
    >>> b.exit_if(cond(b, "le"), "jump", target) # jcc / setcc / cmovcc read them back

A flag value is an i1 temp, a Python int 0/1, or None (left unchanged).

Compare fusion (QEMU's lazy cc_op, done at lift time): the flag writers of the common
families also remember what they computed (a FlagSource: sub/cmp's operands, a logic op's
result, ...) for each flag they put. cond() looks up the latest put, in the IR block being
built, of every flag the condition reads; when all of them came from one writer whose kind
gives that condition from its operands, the condition is computed from them (`jl` after
`cmp a, c` is `setcond lt, a, c`) instead of from the flag bits. The flags are still put as
before; the passes and LLVM drop the ones nobody reads. Any other writer in between (popf,
sahf, bt, clc, a partial writer such as inc, a helper call that writes state) breaks the
match and cond() reads the flags back as usual.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from hqemu.ir import HELPERS, I1, I64, INT_BY_BITS, Builder, Op, Temp, Value

FLAG_NAMES = ("cf", "pf", "af", "zf", "sf", "of")
# RFLAGS bit of each flag (pushfq/popfq/lahf/sahf/syscall's r11); NT, AC and ID only go
# through pushf/popf (and syscall's r11), as user mode sees them on hardware
FLAG_BITS = {"cf": 0, "pf": 2, "af": 4, "zf": 6, "sf": 7, "df": 10, "of": 11, "nt": 14, "ac": 18, "id": 21}

Flag = Value | int | None


def _as64(b: Builder, v: Value | int) -> Value:
    if isinstance(v, int):
        return b.c(v, I64)
    return b.zext(v, I64)


def put_flags(b: Builder, **flags: Flag) -> None:
    """Write each given flag (i1 value or 0/1); None leaves it alone."""
    for name, v in flags.items():
        if v is not None:
            b.put(name, _as64(b, v))


class FlagSource:
    """What one flag-setting instruction computed. kind: "sub" (res = a - c: sub, cmp, the
    flags of cmpxchg/scas/cmps), "logic" (ZF, SF from res and CF = OF = 0: and, or, xor, test,
    bsf/bsr) or "res" (only ZF and SF are known to come from res: add, adc, sbb, inc, dec, neg,
    shifts by a constant, mul/imul, tzcnt/lzcnt)."""

    __slots__ = ("kind", "a", "c", "res")

    def __init__(self, kind: str, res: Value, a: Value | None = None, c: Value | None = None):
        self.kind, self.res, self.a, self.c = kind, res, a, c


# the put op of a flag -> the FlagSource of the instruction that emitted it (only the writers
# below register; an op dropped from its block, or never registered, is not found)
_WRITER: WeakKeyDictionary[Op, FlagSource] = WeakKeyDictionary()


def _put_from(b: Builder, src: FlagSource, **flags: Flag) -> None:
    """put_flags, remembering src as the writer of each flag put."""
    ops = b.block.ops
    for name, v in flags.items():
        if v is not None:
            b.put(name, _as64(b, v))
            _WRITER[ops[-1]] = src


def put_flags_if(b: Builder, nz: Value | bool, **flags: Flag) -> None:
    """Write the flags only when nz (an i1, or a constant known at lift time) holds: the
    variable-count shifts, where a count of zero leaves every flag as it was."""
    if isinstance(nz, bool):
        if nz:
            put_flags(b, **flags)
        return
    for name, v in flags.items():
        if v is not None:
            b.put(name, b.select(nz, _as64(b, v), b.get(name)))


def bit(b: Builder, x: Value, i: int) -> Temp:
    """Bit i of x as an i1."""
    return b.trunc(b.shr(x, i) if i else x, I1) if x.ty != I1 else b.mov(x)


def msb(b: Builder, x: Value, w: int | None = None) -> Temp:
    """The sign bit of x's low w bits (w defaults to x's width)."""
    return bit(b, x, (w or x.ty.bits) - 1)


def is_zero(b: Builder, x: Value) -> Temp:
    return b.setcond("eq", x, 0)


def szp(b: Builder, res: Value) -> dict[str, Temp]:
    """ZF, SF and PF of a result."""
    return {"zf": is_zero(b, res), "sf": msb(b, res), "pf": b.parity(res)}


def _af(b: Builder, a: Value, c: Value, res: Value) -> Temp:
    return bit(b, b.xor(b.xor(a, c), res), 4)


def flags_add(b: Builder, a: Value, c: Value, res: Value) -> None:
    of = msb(b, b.and_(b.xor(a, res), b.xor(c, res)))
    _put_from(b, FlagSource("res", res), cf=b.setcond("ltu", res, a), af=_af(b, a, c, res), of=of,
              **szp(b, res))


def flags_adc(b: Builder, a: Value, c: Value, cin: Value, res: Value) -> None:
    """cin: the carry in, an i1. With it, res == a also means a carry (c was all ones)."""
    carry = b.or_(b.setcond("ltu", res, a), b.and_(cin, b.setcond("eq", res, a)))
    of = msb(b, b.and_(b.xor(a, res), b.xor(c, res)))
    _put_from(b, FlagSource("res", res), cf=carry, af=_af(b, a, c, res), of=of, **szp(b, res))


def flags_sub(b: Builder, a: Value, c: Value, res: Value) -> None:
    """sub, cmp (and the flags of cmpxchg, scas, cmps): res = a - c."""
    of = msb(b, b.and_(b.xor(a, c), b.xor(a, res)))
    _put_from(b, FlagSource("sub", res, a, c), cf=b.setcond("ltu", a, c), af=_af(b, a, c, res), of=of,
              **szp(b, res))


def flags_sbb(b: Builder, a: Value, c: Value, cin: Value, res: Value) -> None:
    """res = a - c - cin: a borrow when a < c + cin, i.e. a <= c when cin is set."""
    borrow = b.select(cin, b.setcond("leu", a, c), b.setcond("ltu", a, c))
    of = msb(b, b.and_(b.xor(a, c), b.xor(a, res)))
    _put_from(b, FlagSource("res", res), cf=borrow, af=_af(b, a, c, res), of=of, **szp(b, res))


def flags_neg(b: Builder, a: Value, res: Value) -> None:
    w = a.ty.bits
    _put_from(b, FlagSource("res", res), cf=b.setcond("ne", a, 0), af=bit(b, b.xor(a, res), 4),
              of=b.setcond("eq", res, 1 << (w - 1)), **szp(b, res))


def flags_logic(b: Builder, res: Value) -> None:
    """and, or, xor, test: CF = OF = 0; AF is undefined, 0 as on Unicorn."""
    _put_from(b, FlagSource("logic", res), cf=0, of=0, af=0, **szp(b, res))


def flags_inc(b: Builder, a: Value, res: Value) -> None:
    """CF is preserved."""
    w = a.ty.bits
    _put_from(b, FlagSource("res", res), af=bit(b, b.xor(a, res), 4), of=b.setcond("eq", res, 1 << (w - 1)),
              **szp(b, res))


def flags_dec(b: Builder, a: Value, res: Value) -> None:
    w = a.ty.bits
    _put_from(b, FlagSource("res", res), af=bit(b, b.xor(a, res), 4),
              of=b.setcond("eq", res, (1 << (w - 1)) - 1), **szp(b, res))


def flags_shift(b: Builder, w: int, left: bool, res: Value, shm1: Value, nz: Value | bool) -> None:
    """shl/shr/sar/shld/shrd. res: the result, shm1: the value shifted by count - 1 (both
    possibly wider than w; only their low w bits count). CF is the last bit shifted out,
    OF = MSB(shm1) ^ MSB(res) (the manual's value for a count of 1, QEMU's for the others),
    AF = 0. A count of zero (nz false) leaves all flags unchanged."""
    cf = msb(b, shm1, w) if left else bit(b, shm1, 0)
    of = msb(b, b.xor(shm1, res), w)
    low = b.trunc(res, INT_BY_BITS[w]) if res.ty.bits != w else res
    if nz is True:  # a constant nonzero count: the flags are those of the result
        _put_from(b, FlagSource("res", low), cf=cf, of=of, af=0, **szp(b, low))
    else:
        put_flags_if(b, nz, cf=cf, of=of, af=0, **szp(b, low))


def flags_rotate(b: Builder, left: bool, res: Value, nz: Value | bool) -> None:
    """rol/ror: only CF and OF change. rol: CF = LSB, OF = CF ^ MSB; ror: CF = MSB,
    OF = the two top bits xored."""
    w = res.ty.bits
    top = msb(b, res)
    if left:
        cf = bit(b, res, 0)
        of = b.xor(cf, top)
    else:
        cf = top
        of = b.xor(top, bit(b, res, w - 2))
    put_flags_if(b, nz, cf=cf, of=of)


def flags_mul(b: Builder, low: Value, overflow: Value) -> None:
    """mul/imul: CF = OF = the result does not fit the low half; SF/ZF/PF of the low half as
    Unicorn gives them; AF = 0."""
    _put_from(b, FlagSource("res", low), cf=overflow, of=overflow, af=0, **szp(b, low))


def flags_bitscan(b: Builder, src: Value) -> None:
    """bsf/bsr: ZF = (src == 0); the rest are undefined: Unicorn's are those of a logic op on src."""
    _put_from(b, FlagSource("logic", src), cf=0, of=0, af=0, **szp(b, src))


def flags_count(b: Builder, src: Value, res: Value) -> None:
    """tzcnt/lzcnt: CF = (src == 0), ZF = (res == 0); Unicorn's SF of res, others 0."""
    _put_from(b, FlagSource("res", res), cf=is_zero(b, src), zf=is_zero(b, res), sf=msb(b, res), pf=0, af=0,
              of=0)


def flags_popcnt(b: Builder, src: Value) -> None:
    put_flags(b, zf=is_zero(b, src), cf=0, pf=0, af=0, sf=0, of=0)


# --- conditions ------------------------------------------------------------------------------
def _f(b: Builder, name: str) -> Temp:
    return b.get(name)


# the flags each base condition reads (p and o are never fused: they stay on the flag bits)
_READS = {"b": ("cf",), "e": ("zf",), "s": ("sf",), "be": ("cf", "zf"), "l": ("sf", "of"),
          "le": ("zf", "sf", "of")}
# kind -> base condition -> (setcond cond, left, right) over a FlagSource's fields, or a
# constant 0/1; the negated conditions use the inverse setcond
_FUSED: dict[str, dict[str, tuple[str, str, str | int] | int]] = {
    "sub": {"b": ("ltu", "a", "c"), "e": ("eq", "a", "c"), "be": ("leu", "a", "c"),
            "l": ("lt", "a", "c"), "le": ("le", "a", "c"), "s": ("lt", "res", 0)},
    "logic": {"b": 0, "e": ("eq", "res", 0), "be": ("eq", "res", 0), "s": ("lt", "res", 0),
              "l": ("lt", "res", 0), "le": ("le", "res", 0)},
    "res": {"e": ("eq", "res", 0), "s": ("lt", "res", 0)},
}
_INVERSE = {"eq": "ne", "ltu": "geu", "leu": "gtu", "lt": "ge", "le": "gt"}


def flag_source(b: Builder, names: tuple[str, ...]) -> FlagSource | None:
    """The one FlagSource that put the current value of every named flag, if there is one: the
    latest put of each in the block being built is a put it registered, and no helper call
    that may write state comes after any of them."""
    found: dict[str, Op] = {}
    for op in reversed(b.block.ops):
        name = op.name
        if name == "put":
            reg = op.consts[0]
            if reg in names and reg not in found:
                found[reg] = op
                if len(found) == len(names):
                    break
        elif name == "call":
            h = HELPERS.get(op.consts[0])
            if h is None or h.writes_state:
                return None
    else:
        return None
    src = None
    for op in found.values():
        s = _WRITER.get(op)
        if s is None or (src is not None and s is not src):
            return None
        src = s
    return src


def _fused_cond(b: Builder, base: str, neg: bool) -> Value | None:
    names = _READS.get(base)
    if names is None:
        return None
    src = flag_source(b, names)
    if src is None:
        return None
    how = _FUSED[src.kind].get(base)
    if how is None:
        return None
    if isinstance(how, int):
        return b.c(how ^ neg, I1)
    cc, left, right = how
    x = getattr(src, left)
    y = getattr(src, right) if isinstance(right, str) else right
    return b.setcond(_INVERSE[cc] if neg else cc, x, y)


def cond(b: Builder, cc: str) -> Value:
    """The i1 value of condition code cc (o no b ae e ne be a s ns p np l ge le g, with the
    usual aliases: c nc z nz nae nb na nbe pe po nge nl ng nle): fused with the instruction
    that set the flags when that is known (see the module's docstring), else from the flags."""
    cc = CC_ALIASES.get(cc, cc)
    neg = cc in _NEGATED
    base = _NEGATED.get(cc, cc)
    fused = _fused_cond(b, base, neg)
    if fused is not None:
        return fused
    if base in ("o", "b", "e", "s", "p"):
        v = _f(b, {"o": "of", "b": "cf", "e": "zf", "s": "sf", "p": "pf"}[base])
    elif base == "be":
        v = b.or_(_f(b, "cf"), _f(b, "zf"))
    elif base == "l":
        v = b.xor(_f(b, "sf"), _f(b, "of"))
    elif base == "le":
        v = b.or_(_f(b, "zf"), b.xor(_f(b, "sf"), _f(b, "of")))
    else:
        raise ValueError(f"unknown condition {cc}")
    return b.setcond("eq" if neg else "ne", v, 0)


# the negated condition -> its base
_NEGATED = {"no": "o", "ae": "b", "ne": "e", "a": "be", "ns": "s", "np": "p", "ge": "l", "g": "le"}
CC_ALIASES = {"c": "b", "nc": "ae", "z": "e", "nz": "ne", "nae": "b", "nb": "ae", "na": "be",
              "nbe": "a", "pe": "p", "po": "np", "nge": "l", "nl": "ge", "ng": "le", "nle": "g"}
CONDITION_CODES = ("o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g")


def rflags(b: Builder) -> Temp:
    """The user-visible RFLAGS as pushfq pushes it: bit 1 and IF (bit 9) set, as Linux shows."""
    v: Value = b.c(0x202, I64)
    for name, pos in FLAG_BITS.items():
        f = b.get(name)
        v = b.or_(v, b.shl(f, pos) if pos else f)
    return v


# what popf may change in user mode: not IF or IOPL (kept), nor TF (single-stepping is not
# modelled), RF, VM, VIF, VIP
USER_FLAGS = ("cf", "pf", "af", "zf", "sf", "df", "of", "nt", "ac", "id")


def load_rflags(b: Builder, v: Value, names: tuple[str, ...] = USER_FLAGS) -> None:
    """Set the named flags from the bits of an RFLAGS value (popfq, sahf)."""
    for name in names:
        pos = FLAG_BITS[name]
        b.put(name, b.and_(b.shr(v, pos) if pos else v, 1))


__all__ = ["FLAG_NAMES", "FLAG_BITS", "CONDITION_CODES", "CC_ALIASES", "put_flags", "put_flags_if",
           "bit", "msb", "is_zero", "szp", "flags_add", "flags_adc", "flags_sub", "flags_sbb",
           "flags_neg", "flags_logic", "flags_inc", "flags_dec", "flags_shift", "flags_rotate",
           "flags_mul", "flags_bitscan", "flags_count", "flags_popcnt", "cond", "rflags", "FlagSource",
           "flag_source",
           "load_rflags", "USER_FLAGS"]
