"""Signal syscalls: actions, mask, alternate stack, and signals a guest sends itself.

hqemu does not deliver signals to guest handlers yet. What it does keep exact: the actions
and mask a guest reads back, and the fate of a signal the guest sends itself (abort() and
raise()): ignored if the guest ignores it (or its default is to ignore it), held pending
while blocked and acted on when unblocked (glibc's raise() blocks everything around its
tgkill), otherwise the guest dies by it (GuestSignal), including when a guest handler is
installed, since that handler cannot run.

    >>> rt_sigaction(env, 2, act_ptr, oldact_ptr, 8)
    >>> tgkill(env, env.pid, env.pid, 6)          # raises GuestSignal(6)
"""

from __future__ import annotations

import errno
import os
from typing import Any

from hqemu.errors import GuestSignal

from . import uaccess
from .abi import DEFAULT_HARMLESS, MINSIGSTKSZ, NSIG, SIG_DFL, SIG_IGN, SIGKILL, SIGSET_SIZE, SIGSTOP, s32
from .state import SS_DISABLE, SigAction, linux_state
from .structs import SIGACTION, STACK_T, U64

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SS_ONSTACK, SS_AUTODISARM = 1, 1 << 31
_UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


def rt_sigaction(env: Any, sig: int, act: int, oact: int, sigsetsize: int, *_) -> int:
    sig = s32(sig)
    if sigsetsize != SIGSET_SIZE or not 1 <= sig <= NSIG or (act and sig in (SIGKILL, SIGSTOP)):
        return -errno.EINVAL
    st = linux_state(env)
    new = SigAction(*SIGACTION.unpack(uaccess.get(env, act, SIGACTION.size))) if act else None
    if oact:
        old = st.sigactions.get(sig, SigAction())
        uaccess.put(env, oact, SIGACTION.pack(old.handler, old.flags, old.restorer, old.mask))
    if new is not None:
        new.mask &= ~_UNBLOCKABLE
        st.sigactions[sig] = new
        if _ignored(new.handler, sig):
            st.pending &= ~_bit(sig)  # POSIX: setting SIG_IGN discards a pending signal
    return 0


def _ignored(handler: int, sig: int) -> bool:
    return handler == SIG_IGN or (handler == SIG_DFL and sig in DEFAULT_HARMLESS)


def rt_sigprocmask(env: Any, how: int, set_: int, oset: int, sigsetsize: int, *_) -> int:
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    st = linux_state(env)
    how = s32(how)
    new = None
    if set_:
        bits = U64.unpack(uaccess.get(env, set_, 8))[0]
        if how == SIG_BLOCK:
            new = st.sigmask | bits
        elif how == SIG_UNBLOCK:
            new = st.sigmask & ~bits
        elif how == SIG_SETMASK:
            new = bits
        else:
            return -errno.EINVAL
    if oset:
        uaccess.put(env, oset, U64.pack(st.sigmask))
    if new is not None:
        st.sigmask = new & ~_UNBLOCKABLE
        _run_pending(env)
    return 0


def _run_pending(env: Any) -> None:
    st = linux_state(env)
    ready = st.pending & ~st.sigmask
    if ready:
        sig = (ready & -ready).bit_length()  # lowest first, as the kernel
        st.pending &= ~_bit(sig)
        _act(env, sig)


def _act(env: Any, sig: int) -> int:
    """The guest sent itself sig: ignore it, hold it pending, or die by it."""
    st = linux_state(env)
    if sig == SIGKILL:
        raise GuestSignal(sig)
    handler = st.sigactions.get(sig, SigAction()).handler
    if _ignored(handler, sig):
        return 0
    if st.sigmask & _bit(sig):
        st.pending |= _bit(sig)
        return 0
    if handler != SIG_DFL and env.log.on("unimp"):
        env.log.write(f"hqemu: signal {sig} has a guest handler at 0x{handler:x}; delivery is not "
                      "implemented, the guest dies by it")
    raise GuestSignal(sig)


def _send_own(env: Any, sig: int) -> int:
    if not 0 <= sig <= NSIG:
        return -errno.EINVAL
    return 0 if sig == 0 else _act(env, sig)


def kill(env: Any, pid: int, sig: int, *_) -> int:
    pid, sig = s32(pid), s32(sig)
    if pid in (env.pid, 0):  # 0: our process group, which includes us; others in it are spared
        return _send_own(env, sig)
    if pid == -1:
        return -errno.EPERM  # every process the user owns: not from inside an emulator
    os.kill(pid, sig)
    return 0


def tgkill(env: Any, tgid: int, tid: int, sig: int, *_) -> int:
    tgid, tid, sig = s32(tgid), s32(tid), s32(sig)
    if tgid <= 0 or tid <= 0:
        return -errno.EINVAL
    if tid == env.pid:
        return _send_own(env, sig) if tgid == env.pid else -errno.ESRCH
    if tgid != tid:
        return -errno.ESRCH  # a thread of another process: Python cannot aim at it
    os.kill(tid, sig)
    return 0


def tkill(env: Any, tid: int, sig: int, *_) -> int:
    t = s32(tid)
    return tgkill(env, t, t, sig) if t > 0 else -errno.EINVAL


def sigaltstack(env: Any, ss: int, old: int, *_) -> int:
    st = linux_state(env)
    prev = st.altstack
    if ss:
        sp, flags, size = STACK_T.unpack(uaccess.get(env, ss, STACK_T.size))
        mode = flags & ~SS_AUTODISARM
        if mode not in (0, SS_ONSTACK, SS_DISABLE):
            return -errno.EINVAL
        if mode == SS_DISABLE:
            st.altstack = (0, SS_DISABLE, 0)
        elif size < MINSIGSTKSZ[env.fe.isa]:
            return -errno.ENOMEM
        else:
            st.altstack = (sp, flags & SS_AUTODISARM, size)
    if old:
        uaccess.put(env, old, STACK_T.pack(*prev))
    return 0
