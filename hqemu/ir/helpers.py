"""Registered helpers: operations a frontend implements in Python rather than in IR.

A helper is named in the IR by `call`; its signature and effects are declared here so that
the verifier and the optimizer can reason about it without knowing the guest ISA. The trace
tier leaves native code to run a helper ("a helper that needs Python").

    >>> register(Helper("x86_cpuid", (), (), reads_state=True, writes_state=True), impl)

impl(env, *args) gets the runtime env (env.state: memoryview 'Q' over the CPU struct,
env.mem: the GuestMemory, env.cpu: the ctypes struct) and the input values; it returns
None, one value, or a tuple matching `rets`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .core import Ty


@dataclass(frozen=True)
class Helper:
    name: str
    args: tuple[Ty, ...]  # input types
    rets: tuple[Ty, ...]  # output types
    reads_state: bool = False  # reads CPU state from memory: cached globals are stored first
    writes_state: bool = False  # writes CPU state: cached globals are reloaded after
    reads_mem: bool = False
    writes_mem: bool = False
    doc: str = ""

    @property
    def pure(self) -> bool:
        return not (self.writes_state or self.writes_mem or self.reads_mem or self.reads_state)


HELPERS: dict[str, Helper] = {}
IMPLS: dict[str, Callable] = {}
# helper name -> a function giving the address of a native implementation with the ABI of
# workers/lower.py's helper calls: native code then calls it directly instead of IMPLS[name]
# through Python (which the quick tier and the interpreter still use)
NATIVE: dict[str, Callable[[], int]] = {}


def register(sig: Helper, impl: Callable) -> None:
    if sig.name in HELPERS and HELPERS[sig.name] != sig:
        raise ValueError(f"helper {sig.name} registered twice with different signatures")
    HELPERS[sig.name] = sig
    IMPLS[sig.name] = impl
