"""The Linux syscall layer: dispatch(env) performs the syscall the CPU state describes.

The number and six arguments are read from the globals the frontend names (fe.syscall_nr,
fe.syscall_args), the handler from the table (table.py) runs, and the result goes to
fe.syscall_ret as the kernel would leave it: a value, or -errno mod 2**64. Handlers raise
freely: a host OSError becomes -errno, a bad guest pointer (GuestFault) -EFAULT; GuestExit
and GuestSignal end the guest. Unknown numbers give -ENOSYS and are counted, never a crash.

    >>> env.set_reg("rax", 39)         # getpid
    >>> dispatch(env); env.reg("rax") == env.pid
    True

Handler modules by area: fd.py (descriptor I/O), fs.py (paths, stat), mm.py (memory),
proc.py (process, identity, limits), futex.py, signals.py, clock.py. Support: abi.py (constants,
argument decoding, open-flag translation), structs.py (kernel structs in the guest ISA's
layout), uaccess.py (checked guest memory access), host.py (libc calls os lacks), state.py
(signal actions, mask, limits kept in env.extra["linux"]), strace.py (-strace lines).
"""

from __future__ import annotations

import errno
from typing import Any

from hqemu.errors import GuestExit, GuestFault, GuestSignal

from . import strace
from .abi import errno_of
from .state import LinuxState, SigAction, linux_state
from .table import BY_NAME, BY_NR, TABLE, Syscall

_MAX_ERRNO = 4095


def dispatch(env: Any) -> None:
    fe = env.fe
    # the kernels index their tables with the low 32 bits (x86-64 casts rax to int, AArch64 reads w8)
    nr = env.reg(fe.syscall_nr) & 0xFFFFFFFF
    args = tuple(env.reg(r) for r in fe.syscall_args)
    entry = BY_NR[fe.isa].get(nr)
    tracing = env.params.strace or env.log.on("strace")
    if entry is None or entry.handler is None:
        _unknown(env, nr, entry, args, tracing)
        return
    env.stats.syscalls[entry.name] += 1
    head = strace.format_call(env, entry.name, entry.args, args) if tracing else ""
    try:
        result = entry.handler(env, *args)
    except GuestFault:
        result = -errno.EFAULT
    except OSError as e:
        result = -errno_of(e)
    except (OverflowError, ValueError):  # an argument the host call cannot even take
        result = -errno.EINVAL
    except (GuestExit, GuestSignal):
        if tracing:
            env.log.write(head if entry.ret == "none" else head + " = ?")
        raise
    if tracing:
        env.log.write(head + strace.format_result(entry.ret, result))
    env.set_reg(fe.syscall_ret, result)


def _unknown(env: Any, nr: int, entry: Syscall | None, args: tuple[int, ...], tracing: bool) -> None:
    env.stats.unknown_syscalls[nr] += 1
    name = entry.name if entry is not None else ""
    if env.log.on("unimp"):
        what = f"{name} ({nr})" if name else str(nr)
        env.log.write(f"hqemu: unsupported {env.fe.isa} syscall {what}: -ENOSYS")
    if tracing:
        head = strace.format_call(env, name, entry.args, args) if entry is not None else \
            strace.format_unknown(env, nr, args)
        env.log.write(head + strace.format_result("int", -errno.ENOSYS))
    env.set_reg(env.fe.syscall_ret, -errno.ENOSYS)


def is_error(ret: int) -> bool:
    """Whether a raw syscall return value (as a u64) is -errno."""
    return ret >= (1 << 64) - _MAX_ERRNO


__all__ = ["dispatch", "is_error", "TABLE", "BY_NR", "BY_NAME", "Syscall", "LinuxState", "SigAction",
           "linux_state"]
