"""How emulation ends, as exceptions with a reason, never a bare None.

    HqemuError   the emulator refuses (no such file, not an ELF, ...): one line, exit 1
    GuestExit    the guest called exit/exit_group: hqemu exits with that status
    GuestSignal  the guest dies by a signal: one line, exit 128+N
    GuestFault   a guest memory access hit an unmapped/protected page (becomes SIGSEGV)
"""

from __future__ import annotations

import signal


class HqemuError(Exception):
    """An emulator error: str(e) is the one line shown to the user."""


class GuestExit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status & 0xFF


class GuestSignal(Exception):
    def __init__(self, signo: int, pc: int | None = None, detail: str = ""):
        super().__init__(signo, pc, detail)
        self.signo = signo
        self.pc = pc  # guest pc of the instruction that raised it, when known
        self.detail = detail  # e.g. the instruction bytes of a SIGILL, the fault address

    def message(self) -> str:
        try:
            name = signal.strsignal(self.signo) or f"signal {self.signo}"
        except ValueError:
            name = f"signal {self.signo}"
        text = f"hqemu: uncaught target signal {self.signo} ({name})"
        if self.pc is not None:
            text += f" at pc 0x{self.pc:x}"
        if self.detail:
            text += f": {self.detail}"
        return text


class GuestFault(Exception):
    def __init__(self, addr: int, write: bool = False):
        super().__init__(addr, write)
        self.addr = addr
        self.write = write
