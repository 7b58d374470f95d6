"""The running guest process: everything a syscall handler, a helper or a tier may touch.

    >>> env.state[idx]            # CPU state as 64-bit words (memoryview 'Q' over env.cpu)
    >>> env.mem.read(addr, n)     # guest memory (hqemu.linux.memory.GuestMemory)
    >>> env.reg("rax") / env.set_reg("rax", v)
"""

from __future__ import annotations

import ctypes
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .log import Log
from .params import Params
from .stats import Stats

if TYPE_CHECKING:
    from .frontends.base import Frontend
    from .linux.memory import GuestMemory


@dataclass
class Env:
    params: Params
    fe: Frontend  # the guest ISA
    mem: GuestMemory  # guest address space
    log: Log
    cpu: ctypes.Structure = None  # the ISA's CPU state struct
    state: memoryview = None  # 'Q' view over cpu: state[offset // 8]
    stats: Stats = field(default_factory=Stats)
    rng: random.Random = field(default_factory=random.Random)  # AT_RANDOM, getrandom (seeded by -seed)
    exe_path: str = ""  # host path of the guest program
    argv: list[str] = field(default_factory=list)  # guest argv
    pid: int = 0  # the guest sees hqemu's own pid
    load_bias: int = 0  # where a static-pie was placed minus its link address (loader.load)
    started: float = field(default_factory=time.monotonic)  # when the guest process was built (uptime)
    # called with the guest pages whose translated code is stale (SMC, munmap)
    invalidate_code: Callable[[int, int], None] | None = None
    # set by the engine: do_syscall(next_pc) performs the syscall described by the CPU state
    # (rip already == the syscall's next pc is NOT assumed: it stores it) and returns the guest
    # pc to continue at. The quick tier's `exit syscall, pc` calls it.
    do_syscall: Callable[[int], int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # per-subsystem state (e.g. "linux")

    def __post_init__(self):
        if self.cpu is None:
            self.cpu = self.fe.cpu_struct()
        self.state = memoryview(self.cpu).cast("B").cast("Q")

    def reg(self, name: str) -> int:
        return self.state[self.fe.layout[name].offset >> 3]

    def set_reg(self, name: str, value: int) -> None:
        self.state[self.fe.layout[name].offset >> 3] = value & 0xFFFFFFFFFFFFFFFF
