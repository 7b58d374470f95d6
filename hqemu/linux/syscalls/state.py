"""Per-process kernel state the syscall layer keeps for the guest, in env.extra["linux"].

Signal actions, the signal mask, pending signals, the alternate stack, rlimits and the thread
name live here so that a later signal-delivery layer finds the guest's handlers where the
syscalls recorded them.

    >>> st = linux_state(env)
    >>> st.sigactions.get(11, SigAction()).handler      # SIG_DFL unless the guest set one
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from typing import Any

from .abi import RLIM_INFINITY

SS_DISABLE = 2


@dataclass
class SigAction:
    handler: int = 0  # SIG_DFL (0), SIG_IGN (1) or a guest function address
    flags: int = 0  # SA_* as the guest passed them
    restorer: int = 0  # guest address of the sigreturn trampoline (SA_RESTORER)
    mask: int = 0  # signals blocked while the handler runs, bit n-1 for signal n


@dataclass
class LinuxState:
    sigactions: dict[int, SigAction] = field(default_factory=dict)  # signo -> action; absent = default
    sigmask: int = 0  # blocked signals, bit n-1 for signal n
    pending: int = 0  # signals raised while blocked, acted on when unblocked
    altstack: tuple[int, int, int] = (0, SS_DISABLE, 0)  # sigaltstack: sp, flags, size
    clear_child_tid: int = 0  # set_tid_address
    robust_list: tuple[int, int] = (0, 0)  # set_robust_list: head, len
    comm: bytes = b""  # PR_SET_NAME / PR_GET_NAME, at most 15 bytes
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)  # resource -> (soft, hard), guest view


def _rlim(v: int) -> int:
    return RLIM_INFINITY if v == resource.RLIM_INFINITY or v < 0 else v


def _initial_rlimits(stack_size: int) -> dict[int, tuple[int, int]]:
    out = {}
    for res in range(16):  # RLIMIT_CPU .. RLIMIT_RTTIME: the same numbers on both guest ISAs
        try:
            soft, hard = resource.getrlimit(res)
        except (ValueError, OSError):
            continue
        out[res] = (_rlim(soft), _rlim(hard))
    if resource.RLIMIT_STACK in out:
        # the guest's main stack is params.stack_size, whatever hqemu's own limit is
        out[resource.RLIMIT_STACK] = (stack_size, out[resource.RLIMIT_STACK][1])
    return out


def linux_state(env: Any) -> LinuxState:
    st = env.extra.get("linux")
    if st is None:
        st = LinuxState(comm=os.path.basename(env.exe_path or "").encode()[:15],
                        rlimits=_initial_rlimits(env.params.stack_size))
        env.extra["linux"] = st
    return st
