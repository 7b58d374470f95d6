"""Lifters by capstone mnemonic: each lifting module registers its handlers here.

    @lifter("add", "adc")
    def lift_add(ctx: Ctx) -> None: ...

lift.py imports every lifting module (alu.py, control.py, sse.py, x87.py, ...) so that the
table is complete; a mnemonic with no lifter becomes a guest SIGILL.
"""

from __future__ import annotations

from collections.abc import Callable

LIFTERS: dict[str, Callable] = {}


def lifter(*mnemonics: str):
    def reg(fn):
        for m in mnemonics:
            if m in LIFTERS:
                raise ValueError(f"two lifters for {m}")
            LIFTERS[m] = fn
        return fn

    return reg
