"""The Frontend protocol and the one generic loop that turns guest code into IR units.

Each guest ISA is a package under hqemu/frontends/ with the same file names (cpu.py,
lift.py, ...) and one Frontend object; translate_block owns the rule for where a block
ends, so no frontend decides that on its own.

    >>> fe = frontends.get("x86_64")
    >>> unit = translate_block(fe, mem, 0x401000, max_insns=512)
"""

from __future__ import annotations

import ctypes
from typing import Protocol

from hqemu.ir import Builder, StateLayout, Unit
from hqemu.ir.ops import F


class CodeSource(Protocol):
    def fetch(self, addr: int, n: int) -> bytes:
        """Up to n executable bytes at addr (at least one), or raise GuestFault."""
        ...


class Frontend(Protocol):
    isa: str  # "x86_64"
    elf_machine: str  # pyelftools e_machine, "EM_X86_64"
    cpu_struct: type[ctypes.Structure]  # the CPU state struct
    layout: StateLayout  # its globals
    pc_reg: str  # global holding the guest pc ("rip")
    sp_reg: str  # stack pointer global ("rsp")
    syscall_nr: str  # global holding the syscall number on entry
    syscall_args: tuple[str, ...]  # globals holding the six syscall arguments
    syscall_ret: str  # global receiving the result
    max_insn_len: int  # longest instruction in bytes
    platform: str  # AT_PLATFORM string
    hwcap: tuple[int, int]  # AT_HWCAP, AT_HWCAP2 consistent with the CPU model

    def lift_insn(self, b: Builder, code: bytes, pc: int) -> int:
        """Emit `insn pc len` and the IR of the instruction at pc; return its length.

        An instruction that transfers control must end the block with a TERM op; an
        undecodable or unsupported one emits `exit sigill pc`.
        """
        ...

    def init_cpu(self, cpu: ctypes.Structure, entry: int, sp: int) -> None: ...

    def set_tls(self, cpu: ctypes.Structure, value: int) -> None: ...

    def disasm(self, code: bytes, pc: int) -> list[str]:
        """One 'pc: mnemonic operands' line per instruction, for -d in_asm."""
        ...

    def insn_length(self, code: bytes, pc: int) -> int:
        """Length of the instruction at the start of code, 0 if undecodable (SIGILL messages)."""
        ...


def translate_block(fe: Frontend, code: CodeSource, pc: int, max_insns: int) -> Unit:
    """Lift guest instructions from pc until one ends the block or max_insns is reached."""
    unit = Unit(fe.isa, fe.layout)
    block = unit.new_block(pc)
    b = Builder(unit, block)
    cur = pc
    for _ in range(max_insns):
        length = fe.lift_insn(b, code.fetch(cur, fe.max_insn_len), cur)
        cur += length
        if block.ops and block.ops[-1].d.flags & F.TERM:
            return unit
    b.exit("jump", cur)
    return unit
