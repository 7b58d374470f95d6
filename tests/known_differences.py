"""Every documented exception of the differential tests, in one place, each with its reason.

The differential tests compare hqemu with an oracle: Unicorn (QEMU 5's x86 model), the host
CPU, or both. Where an oracle is known to be wrong, or hqemu deliberately differs, the test
compares around the difference in one of the ways listed here, and counts each case it did
so in SEEN (name -> form -> cases); conftest.py reports the counts with the reasons and writes
them to build/test-artifacts/diff-counts.json. Anything not listed here fails.

    >>> want = unicorn_cmpxchg32(insn, st, want)    # test_x86_int: Unicorn's answer, corrected
    >>> note("bswap16", "bswap")                    # count one case of an exception
    >>> UNICORN_DEVIATIONS["addps: xmm"] += 1       # the host CPU decided where Unicorn differs

A new exception needs a line in KNOWN (with a one-line reason) and the code that applies it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from capstone.x86_const import X86_OP_REG

from hqemu.frontends.x86_64.cpu import GPRS
from hqemu.frontends.x86_64.operands import REGS


@dataclass(frozen=True)
class Known:
    kind: str  # whose behaviour is not the reference: see KINDS
    tests: str  # the test modules that apply it
    reason: str  # one line: what differs and how the test compares around it


KINDS = {
    "unicorn": "Unicorn differs from the hardware: its answer is corrected, or the host CPU decides",
    "host": "the host CPU (the oracle) is not correctly rounded or is model-specific",
    "hqemu": "hqemu differs by design; another test compares it",
}

KNOWN: dict[str, Known] = {
    "cmpxchg32": Known(
        "unicorn", "test_x86_int",
        "32-bit cmpxchg: Unicorn zero-extends both rax and a register destination; the hardware writes "
        "only one (rax on failure, the destination on success): Unicorn's result is corrected, and the "
        "form is left out of sequences"),
    "bswap16": Known(
        "unicorn", "test_x86_int",
        "bswap of a 16-bit register is undefined in the manual (CPUs and hqemu clear the word): "
        "not compared"),
    "rep-bsf-without-bmi1": Known(
        "unicorn", "test_x86_int",
        "F3 0F BC/BD are bsf/bsr on a CPU without BMI1/ABM (the model); Unicorn's CPU has tzcnt/lzcnt: "
        "Unicorn runs the bytes without the F3"),
    "bt-undefined-flags": Known(
        "unicorn", "test_x86_int",
        "bt/bts/btr/btc keep OF SF AF PF on the hardware (checked natively) and in hqemu; Unicorn "
        "derives them from the previous instruction's lazy flags in one block: sequences step Unicorn "
        "one instruction at a time"),
    "popf-cpl0": Known(
        "unicorn", "test_x86_int",
        "Unicorn runs at CPL 0 (popf changes IOPL and IF) and single-steps on TF, user mode does not: "
        "sequences pop flags images with TF and IOPL clear and IF set (the host CPU checks popf itself)"),
    "unicorn-vs-host": Known(
        "unicorn", "test_x86_sse, test_x86_mxcsr, test_x87",
        "SSE/x87 results where Unicorn disagrees with the host CPU (rcp/rsqrt approximations, NaN "
        "payloads and selection, MXCSR flags QEMU 5's softfloat never raises): the host CPU decides"),
    "fxsave-mxcsr-mask": Known(
        "host", "test_x87",
        "the MXCSR_MASK word of an FXSAVE image is CPU-specific (the model says 0xFFFF, an AMD host "
        "0x2FFFF): not compared"),
    "x87-host-rounding": Known(
        "host", "test_x87_transcendental",
        "the host's x87 transcendentals are not always correctly rounded: a result one ulp from hqemu's "
        "correctly rounded one, with the C1/PE/UE that go with it, is accepted"),
}

SEEN: dict[str, Counter] = {name: Counter() for name in KNOWN}
UNICORN_DEVIATIONS = SEEN["unicorn-vs-host"]  # "mnemonic: field" -> cases the host CPU decided
HOST_NOT_CORRECTLY_ROUNDED = SEEN["x87-host-rounding"]  # instruction -> cases accepted one ulp off

FXSAVE_MXCSR_MASK = (28, 4)  # fxsave-mxcsr-mask: (offset, size) of the word in an FXSAVE image


def note(name: str, form: str = "cases", n: int = 1) -> None:
    """Count n cases where the exception `name` (a KNOWN key) was applied."""
    SEEN[name][form] += n


# --- the integer exceptions (test_x86_int), on capstone instructions ---------------------------------
def _name(insn) -> str:
    from hqemu.frontends.x86_64.lift import base_mnemonic

    return base_mnemonic(insn)


def not_compared(insn) -> bool:
    """bswap16: the instruction's result is undefined, so the case is not run at all."""
    if insn is not None and insn.mnemonic == "bswap" and insn.operands[0].size == 2:
        note("bswap16", "bswap")
        return True
    return False


def unicorn_cmpxchg32(insn, st, want):
    """cmpxchg32: Unicorn's outcome of a 32-bit cmpxchg corrected to the hardware's (st: the
    state the case ran from); other instructions' outcomes are returned as they are."""
    if (insn is None or _name(insn) != "cmpxchg" or insn.operands[0].size != 4
            or want.kind != "jump"):
        return want
    regs = list(want.regs)
    reg_dst = insn.operands[0].type == X86_OP_REG
    if want.flags["zf"]:  # success: the accumulator is not written, unless it is the destination
        if not (reg_dst and insn.reg_name(insn.operands[0].reg) == "eax"):
            regs[0] = st.regs[0]
    elif reg_dst:  # failure: a register destination is not written
        i = GPRS.index(REGS[insn.reg_name(insn.operands[0].reg)][0])
        regs[i] = st.regs[i]
    want.regs = regs
    note("cmpxchg32", "corrected")
    return want


def unicorn_bitscan_code(code: bytes) -> bytes:
    """rep-bsf-without-bmi1: the bytes Unicorn runs for a bsf/bsr case (the F3 dropped)."""
    i = 1 if code[0] == 0x66 else 0
    if code[i] != 0xF3:
        return code
    note("rep-bsf-without-bmi1", "f3 dropped")
    return code[:i] + code[i + 1:]


def sequence_part_ok(insn) -> bool:
    """Whether an instruction may go into a random sequence: not bswap16 (not compared), not
    a 32-bit cmpxchg (corrected only alone), not popf of random stack bytes (popf-cpl0)."""
    if insn is None or not_compared(insn):
        return False
    name = _name(insn)
    if name == "cmpxchg" and insn.operands[0].size == 4:
        note("cmpxchg32", "left out of a sequence")
        return False
    if name in ("popf", "popfq"):
        note("popf-cpl0", "left out of a sequence")
        return False
    return True


def report() -> dict[str, dict[str, int]]:
    """{name: {form: cases}} of the exceptions applied so far (what conftest reports)."""
    return {name: dict(sorted(c.items())) for name, c in SEEN.items() if c}


__all__ = ["KNOWN", "KINDS", "Known", "SEEN", "UNICORN_DEVIATIONS", "HOST_NOT_CORRECTLY_ROUNDED",
           "FXSAVE_MXCSR_MASK", "note", "not_compared", "unicorn_cmpxchg32",
           "unicorn_bitscan_code", "sequence_part_ok", "report"]
