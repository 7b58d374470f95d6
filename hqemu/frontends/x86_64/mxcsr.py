"""MXCSR in native code: the flags SSE instructions raise there, and the guest's writes.

The quick tier runs each SSE float instruction through its host stub (hostsse.py) with the
guest's mxcsr as an argument, so there mxcsr in the CPU state is always exact. Native code runs
the same instructions inline under the host's MXCSR, which the dispatcher loads with the
guest's control bits (rounding, DAZ, FTZ and the exception masks) when native code is entered;
the flags they raise collect in the host's MXCSR, and the dispatcher ORs them into the guest's
when native code returns to Python (hqemu/native/dispatch.py; the frontend names the register
in host_fp_env). An exception the guest unmasked traps on the host, and the dispatcher turns
the host's SIGFPE into the guest's at that instruction.

Two helpers keep native code exact where the guest itself reads or writes MXCSR; each is a few
bytes of host code called directly from native code, and does nothing in the quick tier, where
nothing is pending:

    x86_fenv_fold   before stmxcsr, fxsave: OR the host's flags into mxcsr, clear them
    x86_fenv_load   after ldmxcsr, fxrstor: load the host's MXCSR from mxcsr (flags cleared:
                    the guest's write replaced the pending ones)

Both assume what every x86-64 run has: a dispatcher that installed the guest's MXCSR (its
record's fenv word set from host_fp_env). A unit run without one would fold Python's flags.

    >>> fold_flags(ctx)     # emitted by the lifters of stmxcsr and fxsave
    >>> load_mxcsr(ctx)     # emitted by the lifters of ldmxcsr and fxrstor
"""

from __future__ import annotations

from hqemu.ir import NATIVE, Helper, register

from . import hostsse
from .operands import Ctx

FOLD_HELPER = "x86_fenv_fold"
LOAD_HELPER = "x86_fenv_load"


def fold_flags(ctx: Ctx) -> None:
    ctx.b.call(FOLD_HELPER)


def load_mxcsr(ctx: Ctx) -> None:
    ctx.b.call(LOAD_HELPER)


def _nothing(env) -> None:
    """The quick tier's and the interpreter's side: the host's flags hold nothing of the guest."""


for _name, _doc in ((FOLD_HELPER, "native code: OR the flags the host's MXCSR collected into mxcsr"),
                    (LOAD_HELPER, "native code: load the host's MXCSR from the guest's mxcsr")):
    # reads_state/writes_state: mxcsr is in memory when it runs, and reloaded after
    register(Helper(_name, (), (), reads_state=True, writes_state=True, doc=_doc), _nothing)
    NATIVE[_name] = (lambda n: lambda: hostsse.code().addr[n])(_name)

__all__ = ["FOLD_HELPER", "LOAD_HELPER", "fold_flags", "load_mxcsr"]
