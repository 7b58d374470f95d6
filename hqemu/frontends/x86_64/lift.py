"""Decode one x86-64 instruction with capstone and dispatch it to its lifter by mnemonic.

lift.py imports every lifting module (its own and, when present, sse.py / fp.py / x87.py) so
that LIFTERS is complete before the first instruction is lifted. A mnemonic without a lifter,
a form its lifter refuses (NotImplementedError) and undecodable bytes all become
`exit sigill pc`, counted in UNSUPPORTED by mnemonic; bytes that would decode only with more
bytes than the code page holds become `exit sigsegv pc`, as the fetch of the next page would.

    >>> n = lift_insn(b, b"\\x48\\x01\\xd8", 0x401000)     # add rax, rbx -> 3
    >>> UNSUPPORTED.most_common(5)
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter

from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from hqemu.ir import Builder

from .operands import Ctx
from .registry import LIFTERS

# The lifting modules, in the order they register; a missing one is skipped (its
# instructions then raise SIGILL), which lets them be written independently.
LIFTING_MODULES = ("alu", "control", "strings", "misc", "sse", "fp", "x87")
for _name in LIFTING_MODULES:
    if importlib.util.find_spec(f"{__package__}.{_name}") is not None:
        importlib.import_module(f"{__package__}.{_name}")
from . import helpers as _helpers  # noqa: E402,F401  (registers the x86 helpers)

MAX_INSN_LEN = 15
CS = Cs(CS_ARCH_X86, CS_MODE_64)
CS.detail = True
UNSUPPORTED: Counter[str] = Counter()  # mnemonic (or "(bad)") -> times lifted as SIGILL
# prefixes capstone folds into the mnemonic: the lifter is found by the instruction's own name
_PREFIX_WORDS = frozenset({"lock", "rep", "repe", "repz", "repne", "repnz", "bnd", "notrack",
                           "xacquire", "xrelease"})


def decode(code: bytes, pc: int):
    """The capstone instruction at the start of code, or None."""
    for insn in CS.disasm(code, pc, 1):
        return insn
    return None


def base_mnemonic(insn) -> str:
    words = insn.mnemonic.split()
    while len(words) > 1 and words[0] in _PREFIX_WORDS:
        words = words[1:]
    return " ".join(words)


def _refuse(b: Builder, pc: int, length: int, why: str, kind: str = "sigill") -> int:
    b.insn(pc, length)
    b.exit(kind, pc)
    if kind == "sigill":
        UNSUPPORTED[why] += 1
    return length


def lift_insn(b: Builder, code: bytes, pc: int) -> int:
    """Emit `insn pc len` and the instruction's IR; return its length in bytes."""
    insn = decode(code, pc)
    if insn is None:
        if len(code) < MAX_INSN_LEN:
            longer = decode(code + bytes(MAX_INSN_LEN), pc)
            if longer is not None and longer.size > len(code):
                return _refuse(b, pc, 1, "(truncated)", "sigsegv")
        return _refuse(b, pc, 1, "(bad)")
    length = insn.size
    name = base_mnemonic(insn)
    fn = LIFTERS.get(name)
    if fn is None:
        return _refuse(b, pc, length, name)
    mark = len(b.block.ops)
    b.insn(pc, length)
    try:
        fn(Ctx(b, insn, pc, pc + length, name))
    except (NotImplementedError, KeyError):  # a form of the instruction we do not lift
        del b.block.ops[mark:]
        return _refuse(b, pc, length, f"{name} {insn.op_str}".strip())
    return length


def disasm(code: bytes, pc: int) -> list[str]:
    """'0x401000: add rax, rbx' per instruction; undecodable bytes end the listing."""
    return [f"0x{i.address:x}: {i.mnemonic} {i.op_str}".rstrip() for i in CS.disasm(code, pc)]


__all__ = ["lift_insn", "decode", "disasm", "base_mnemonic", "UNSUPPORTED", "LIFTING_MODULES"]
