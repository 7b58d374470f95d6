"""Counters, declared once. Every part increments its own; the exit summary (-d stats) and
later the status endpoint only read them.

    >>> env.stats.blocks_translated += 1
    >>> env.stats.syscalls[name] += 1
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    blocks_translated: int = 0  # guest blocks lifted and compiled by the quick tier
    guest_insns_translated: int = 0  # guest instructions in those blocks
    block_executions: int = 0  # block runs counted by the main loop (when counting is on)
    translate_seconds: float = 0.0  # time spent lifting, optimizing and compiling blocks
    syscalls: Counter = field(default_factory=Counter)  # syscall name -> calls
    unknown_syscalls: Counter = field(default_factory=Counter)  # syscall number -> calls (-ENOSYS)
    sigill: Counter = field(default_factory=Counter)  # mnemonic -> unsupported instruction hits
    code_invalidations: int = 0  # blocks dropped because guest code was written
    native_guest_insns: int = 0  # guest instructions entered in native code (per guest block entered)
    native_units: int = 0  # native units entered by the native dispatcher
    native_returns: Counter = field(default_factory=Counter)  # why native code came back to Python

    def summary(self) -> list[str]:
        lines = [f"{k}: {v}" for k, v in vars(self).items() if not isinstance(v, Counter)]
        for k, v in vars(self).items():
            if isinstance(v, Counter) and v:
                top = ", ".join(f"{n}={c}" for n, c in v.most_common(20))
                lines.append(f"{k}: {top}")
        return lines
