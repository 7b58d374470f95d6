"""The SSE translation mode: fast IR float ops until the guest writes MXCSR, then precise.

Default mode (every run starts in it): SSE float instructions are IR float ops, which round to
nearest-even with no DAZ/FTZ and track no exception flags; that is exactly the hardware while
MXCSR holds its reset value 0x1F80, and it is what the LLVM trace tier can optimize. glibc's and
musl's start-up, printf and the libm paths taken in the default rounding mode never write MXCSR
(libm only reads it; its ldmxcsr runs only under another rounding mode).

Precise mode: each SSE float instruction is a call of its host-instruction helper
(hostsse.py) with the guest's MXCSR, which rounds as RC says, honours DAZ/FTZ, ORs the
exception flags it raised into mxcsr and makes an unmasked exception a SIGFPE at its pc.

The switch: the first MXCSR write (ldmxcsr, or fxrstor through check_mxcsr) calls
x86_fp_precise, which replaces env.fe by the precise variant of the frontend and flushes every
translation (env.invalidate_code; the native tier with it); ldmxcsr also ends its block, so the
next instruction is translated in precise mode. The mode then stays precise for the rest of the
run (execve starts over in default mode). The rule a program sees: exception flags raised
before its first MXCSR write are not recorded. feclearexcept, fesetround, fesetenv and
feholdexcept all write MXCSR, so a program that tests flags after clearing them, or after
changing the rounding mode, sees exactly the hardware's flags.

    >>> precise(ctx)                # which form a lifter emits
    >>> getattr(env.fe, "fp_precise", False)       # True once the guest has written MXCSR
"""

from __future__ import annotations

import functools

from hqemu.ir import Helper, register

from .operands import Ctx

SWITCH_HELPER = "x86_fp_precise"
TRANSLATION_KEY = "sse-precise"  # fe.translation_key in precise mode: a code-cache key part


def precise(ctx: Ctx) -> bool:
    return ctx.fp_precise


def switch_to_precise(ctx: Ctx) -> None:
    """Emit the mode switch for an MXCSR write (nothing once translating in precise mode)."""
    if not ctx.fp_precise:
        ctx.b.call(SWITCH_HELPER)


@functools.cache
def precise_frontend(fe):
    """The frontend object that lifts in precise mode: fe with fp_precise set."""
    from .lift import lift_insn

    class PreciseFrontend(type(fe)):
        fp_precise = True
        translation_key = TRANSLATION_KEY

        @staticmethod
        def lift_insn(b, code: bytes, pc: int) -> int:
            return lift_insn(b, code, pc, fp_precise=True)

    PreciseFrontend.__name__ = PreciseFrontend.__qualname__ = type(fe).__name__ + "Precise"
    return PreciseFrontend()


def enter_precise(env) -> None:
    """x86_fp_precise: translate in precise mode from now on and drop what was translated."""
    fe = getattr(env, "fe", None)
    if fe is None or getattr(fe, "fp_precise", False):
        return
    env.fe = precise_frontend(fe)
    log = getattr(env, "log", None)
    if log is not None and log.on("unimp"):
        log.write("hqemu: the guest wrote MXCSR: SSE float instructions now run under its MXCSR")
    invalidate = getattr(env, "invalidate_code", None)
    if invalidate is not None:
        invalidate(0, 1 << 64)


# reads_state: the state in memory is exact when it runs (it ends the translations in use)
register(Helper(SWITCH_HELPER, (), (), reads_state=True,
                doc="the guest writes MXCSR: translate SSE float ops in precise mode from now on"),
         enter_precise)

__all__ = ["precise", "switch_to_precise", "precise_frontend", "enter_precise", "SWITCH_HELPER",
           "TRANSLATION_KEY"]
