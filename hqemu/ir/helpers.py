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
class HostInsn:
    """A helper whose whole effect is one host instruction (docs/ir.md, "Host instructions"):
    native code runs `asm` inline instead of calling the helper. The helper's signature is
    (a: i128, b: i128, env: i64) -> (r: i128, env2: i64); inline, env2 is env, because the
    exception flags the instruction raises stay in the host's FP status register, which the
    runtime folds into the guest's at every return to Python (and a helper that reads them
    asks for that fold first). form says where the operands are (LLVM inline-asm syntax, AT&T):
        vec    r = asm(a, b): $0 is r (tied to a), $2 is b; 128-bit vector registers
        int    r = asm(a, low 64 bits of b): $2 is a general register (its width: `bits`)
        gpr    r = zero-extended asm(b): $0 is a general register of `bits`, $1 a vector register
        flags  r = the host flags an ordered compare of a with b sets: CF at bit 0, PF bit 2,
               ZF bit 6 (the rflags positions); asm compares $4 (b) with $3 (a) and sets the
               three bytes $0 $1 $2 with setb, setp, sete
    """
    asm: str
    form: str  # vec, int, gpr, flags
    bits: int = 64  # the width of the general register of the int and gpr forms

    FORMS = ("vec", "int", "gpr", "flags")


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
    host_insn: HostInsn | None = None  # its inline form in native code, if it has one

    @property
    def pure(self) -> bool:
        return not (self.writes_state or self.writes_mem or self.reads_mem or self.reads_state)


HELPERS: dict[str, Helper] = {}
IMPLS: dict[str, Callable] = {}
# helper name -> a function giving the address of a native implementation with the ABI of
# workers/lower.py's helper calls: native code then calls it directly instead of IMPLS[name]
# through Python (which the quick tier and the interpreter still use)
NATIVE: dict[str, Callable[[], int]] = {}


def host_insn_of(name: str, named: dict[str, HostInsn]) -> HostInsn | None:
    """The inline form of helper name: the registered helper's, else the one a unit's text
    named (`named`: Unit.host_insns; a worker registers no frontend's helpers)."""
    sig = HELPERS.get(name)
    return sig.host_insn if sig is not None else named.get(name)


def register(sig: Helper, impl: Callable) -> None:
    if sig.name in HELPERS and HELPERS[sig.name] != sig:
        raise ValueError(f"helper {sig.name} registered twice with different signatures")
    HELPERS[sig.name] = sig
    IMPLS[sig.name] = impl
