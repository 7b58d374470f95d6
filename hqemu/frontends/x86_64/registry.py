"""Lifters by capstone mnemonic: each lifting module registers its handlers here.

    @lifter("add", "adc")
    def lift_add(ctx: Ctx) -> None: ...

    @lifter("movsd", when=has_xmm)   # a mnemonic two extensions share: SSE2 movsd vs the string op
    def lift_movsd_sse(ctx: Ctx) -> None: ...

lift.py imports every lifting module (alu.py, control.py, sse.py, x87.py, ...) so that the
table is complete; a mnemonic with no lifter becomes a guest SIGILL.
"""

from __future__ import annotations

from collections.abc import Callable

LIFTERS: dict[str, Callable] = {}
# mnemonic -> [(predicate on the capstone insn, lifter), ...] for mnemonics capstone gives to two
# different instructions (movsd, cmpsd); the plain @lifter of that mnemonic is the fallback.
_VARIANTS: dict[str, list[tuple[Callable, Callable]]] = {}
_FALLBACK: dict[str, Callable] = {}


def _dispatcher(m: str) -> Callable:
    def dispatch(ctx):
        for when, fn in _VARIANTS[m]:
            if when(ctx.insn):
                return fn(ctx)
        fallback = _FALLBACK.get(m)
        if fallback is None:
            raise NotImplementedError(f"no lifter for this form of {m}")
        return fallback(ctx)

    dispatch.__name__ = f"dispatch_{m}"
    return dispatch


def lifter(*mnemonics: str, when: Callable | None = None):
    """Register fn for mnemonics; with `when`, only for the instructions when(insn) accepts."""

    def reg(fn):
        for m in mnemonics:
            if when is None:
                if m in _VARIANTS:
                    if m in _FALLBACK:
                        raise ValueError(f"two lifters for {m}")
                    _FALLBACK[m] = fn
                    continue
                if m in LIFTERS:
                    raise ValueError(f"two lifters for {m}")
                LIFTERS[m] = fn
            else:
                if m not in _VARIANTS:
                    if m in LIFTERS:  # a plain lifter came first: it becomes the fallback
                        _FALLBACK[m] = LIFTERS[m]
                    _VARIANTS[m] = []
                    LIFTERS[m] = _dispatcher(m)
                _VARIANTS[m].append((when, fn))
        return fn

    return reg
