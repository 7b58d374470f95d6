"""The x86-64 frontend: FRONTEND implements hqemu.frontends.base.Frontend.

    >>> from hqemu.frontends import get, translate_block
    >>> fe = get("x86_64")
    >>> unit = translate_block(fe, mem, entry, max_insns=512)
    >>> fe.init_cpu(cpu, entry, sp); fe.hwcap          # (CPUID.1:EDX, 0)
"""

from __future__ import annotations

import ctypes

from .cpu import LAYOUT, X86State
from .lift import decode, disasm, lift_insn
from .misc import hwcap


class X86_64Frontend:
    isa = "x86_64"
    elf_machine = "EM_X86_64"
    cpu_struct = X86State
    layout = LAYOUT
    pc_reg = "rip"
    sp_reg = "rsp"
    syscall_nr = "rax"
    syscall_args = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
    syscall_ret = "rax"
    max_insn_len = 15
    platform = "x86_64"
    host_fp_env = "mxcsr"  # the register native code runs under as the host's MXCSR (mxcsr.py)

    def __init__(self) -> None:
        self.hwcap = hwcap()  # every lifting module is imported by now (lift.py)

    @staticmethod
    def lift_insn(b, code: bytes, pc: int) -> int:
        return lift_insn(b, code, pc)

    @staticmethod
    def init_cpu(cpu: X86State, entry: int, sp: int) -> None:
        """Linux's state at a static program's entry: every register zero but rsp and rip,
        DF clear, SSE and x87 control words at their reset values, the x87 stack empty."""
        ctypes.memset(ctypes.addressof(cpu), 0, ctypes.sizeof(cpu))
        cpu.rip = entry
        cpu.rsp = sp
        cpu.mxcsr = 0x1F80
        cpu.fpu_cw = 0x37F
        cpu.fpu_tag = 0xFF

    @staticmethod
    def set_tls(cpu: X86State, value: int) -> None:
        cpu.fs_base = value

    @staticmethod
    def disasm(code: bytes, pc: int) -> list[str]:
        return disasm(code, pc)

    @staticmethod
    def insn_length(code: bytes, pc: int) -> int:
        insn = decode(code, pc)
        return insn.size if insn is not None else 0


FRONTEND = X86_64Frontend()

__all__ = ["FRONTEND", "X86_64Frontend"]
