"""Process syscalls: exit, identity, limits, uname, TLS, randomness, scheduling, prctl.

The guest is hqemu's own process as far as the host is concerned (same pid, uid, groups,
session); it is one thread whose tid is the pid. Limits are pretended: the guest reads back
what it set, the host's limits do not change.

    >>> uname(env, buf)               # machine = env.fe.platform, release = the host's
    >>> exit_group(env, 3)            # raises GuestExit(3)
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

from hqemu.errors import GuestExit

from . import host, uaccess
from .abi import s32
from .state import linux_state
from .structs import RLIMIT, pack_utsname


def exit(env: Any, status: int, *_) -> int:
    raise GuestExit(status)  # one thread: the thread's exit is the process's


def exit_group(env: Any, status: int, *_) -> int:
    raise GuestExit(status)


# --- identity ---------------------------------------------------------------------------
def getpid(env: Any, *_) -> int:
    return env.pid


def gettid(env: Any, *_) -> int:
    return env.pid


def getppid(env: Any, *_) -> int:
    return os.getppid()


def getuid(env: Any, *_) -> int:
    return os.getuid()


def geteuid(env: Any, *_) -> int:
    return os.geteuid()


def getgid(env: Any, *_) -> int:
    return os.getgid()


def getegid(env: Any, *_) -> int:
    return os.getegid()


def getresuid(env: Any, r: int, e: int, s: int, *_) -> int:
    for addr, v in zip((r, e, s), os.getresuid()):
        uaccess.put_u32(env, addr, v)
    return 0


def getresgid(env: Any, r: int, e: int, s: int, *_) -> int:
    for addr, v in zip((r, e, s), os.getresgid()):
        uaccess.put_u32(env, addr, v)
    return 0


def getgroups(env: Any, size: int, lst: int, *_) -> int:
    groups = os.getgroups()
    size = s32(size)
    if size == 0:
        return len(groups)
    if size < len(groups):
        return -errno.EINVAL
    uaccess.put(env, lst, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


def getpgrp(env: Any, *_) -> int:
    return os.getpgrp()


def getpgid(env: Any, pid: int, *_) -> int:
    return os.getpgid(s32(pid))


def setpgid(env: Any, pid: int, pgid: int, *_) -> int:
    os.setpgid(s32(pid), s32(pgid))
    return 0


def getsid(env: Any, pid: int, *_) -> int:
    return os.getsid(s32(pid))


def setsid(env: Any, *_) -> int:
    return os.setsid()


def wait4(env: Any, *_) -> int:
    return -errno.ECHILD  # the guest cannot fork, so it has no children


def socket(env: Any, *_) -> int:
    return -errno.EAFNOSUPPORT  # no networking; counted in stats.syscalls like every call


# --- thread setup -----------------------------------------------------------------------
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
TASK_SIZE_MAX = (1 << 47) - 4096  # x86-64 user space ends here: larger bases are refused


def arch_prctl(env: Any, code: int, addr: int, *_) -> int:
    code = s32(code)
    layout = env.fe.layout
    if code == ARCH_SET_FS:
        if addr >= TASK_SIZE_MAX:
            return -errno.EPERM
        env.fe.set_tls(env.cpu, addr)
        return 0
    if code == ARCH_SET_GS and "gs_base" in layout:
        if addr >= TASK_SIZE_MAX:
            return -errno.EPERM
        env.set_reg("gs_base", addr)
        return 0
    reg = {ARCH_GET_FS: "fs_base", ARCH_GET_GS: "gs_base"}.get(code)
    if reg is not None and reg in layout:
        uaccess.put_u64(env, addr, env.reg(reg))
        return 0
    return -errno.EINVAL


def set_tid_address(env: Any, tidptr: int, *_) -> int:
    linux_state(env).clear_child_tid = tidptr
    return env.pid


ROBUST_LIST_HEAD_SIZE = 24


def set_robust_list(env: Any, head: int, length: int, *_) -> int:
    if length != ROBUST_LIST_HEAD_SIZE:
        return -errno.EINVAL
    linux_state(env).robust_list = (head, length)
    return 0


def rseq(env: Any, *_) -> int:
    # restartable sequences need the kernel to rewrite the guest pc on preemption; like
    # QEMU, refuse, and glibc falls back to its plain code paths
    return -errno.ENOSYS


# --- limits -----------------------------------------------------------------------------
def prlimit64(env: Any, pid: int, res: int, new: int, old: int, *_) -> int:
    pid, res = s32(pid), s32(res)
    if pid not in (0, env.pid):
        return -errno.EPERM  # other processes' limits are not the guest's business
    st = linux_state(env)
    if res not in st.rlimits:
        return -errno.EINVAL
    lim = RLIMIT.unpack(uaccess.get(env, new, RLIMIT.size)) if new else None
    if lim is not None and lim[0] > lim[1]:
        return -errno.EINVAL
    if old:
        uaccess.put(env, old, RLIMIT.pack(*st.rlimits[res]))
    if lim is not None:
        st.rlimits[res] = lim
    return 0


def getrlimit(env: Any, res: int, rlim: int, *_) -> int:
    return prlimit64(env, 0, res, 0, rlim)


def setrlimit(env: Any, res: int, rlim: int, *_) -> int:
    return prlimit64(env, 0, res, rlim, 0)


# --- system information -----------------------------------------------------------------
def _domainname() -> str:
    try:
        with open("/proc/sys/kernel/domainname") as f:
            return f.read().strip()
    except OSError:
        return "(none)"


def uname(env: Any, buf: int, *_) -> int:
    u = os.uname()
    uaccess.put(env, buf, pack_utsname(u.sysname, u.nodename, u.release, u.version, env.fe.platform,
                                       _domainname()))
    return 0


def sysinfo(env: Any, buf: int, *_) -> int:
    uaccess.put(env, buf, host.sysinfo())  # the struct is the same on every 64-bit ISA
    return 0


GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


def getrandom(env: Any, buf: int, n: int, flags: int, *_) -> int:
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or (
            flags & GRND_RANDOM and flags & GRND_INSECURE):
        return -errno.EINVAL
    want = n
    n = uaccess.accessible(env, buf, min(n, uaccess.SLOW_CAP), True)
    if want and not n:
        return -errno.EFAULT
    # env.rng, seeded by -seed, so that a seeded run sees the same bytes every time
    uaccess.put(env, buf, env.rng.randbytes(n))
    return n


def sched_getaffinity(env: Any, pid: int, size: int, mask: int, *_) -> int:
    pid = s32(pid)
    cpus = os.sched_getaffinity(0 if pid == env.pid else pid)
    nr = max(os.cpu_count() or 1, max(cpus) + 1)
    need = (nr + 63) // 64 * 8  # the kernel's cpumask size: whole longs
    size &= 0xFFFFFFFF
    if size * 8 < nr or size & 7:
        return -errno.EINVAL
    bits = sum(1 << c for c in cpus)
    uaccess.put(env, mask, bits.to_bytes(need, "little"))
    return need


def sched_yield(env: Any, *_) -> int:
    os.sched_yield()
    return 0


PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_NAME, PR_GET_NAME = 3, 4, 15, 16


def prctl(env: Any, option: int, arg2: int, *_) -> int:
    option = s32(option)
    st = linux_state(env)
    if option == PR_SET_NAME:
        st.comm = env.mem.read_cstr(arg2, 16)[:15]
        return 0
    if option == PR_GET_NAME:
        uaccess.put(env, arg2, st.comm.ljust(16, b"\0"))
        return 0
    if option == PR_GET_DUMPABLE:
        return 1
    if option == PR_SET_DUMPABLE:
        return 0 if arg2 in (0, 1) else -errno.EINVAL
    return -errno.EINVAL

