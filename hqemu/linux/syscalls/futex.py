"""futex(2) for a single-threaded guest: nobody else can wait or wake.

So a wake wakes no one (0); FUTEX_WAKE_OP still performs its atomic update; a wait whose
word changed returns -EAGAIN as the kernel's does; a wait on an unchanged word with a
timeout sleeps it out and returns -ETIMEDOUT; without a timeout no thread could ever wake
it, so instead of hanging forever hqemu stops with an HqemuError naming the deadlock. PI
locks are taken and released on the word when the guest owns or can own them.

    >>> futex(env, uaddr, FUTEX_WAIT_PRIVATE, expected, 0, 0, 0)    # -EAGAIN if *uaddr changed
"""

from __future__ import annotations

import errno
import time
from typing import Any

from hqemu.errors import HqemuError

from . import uaccess
from .structs import unpack_timespec

FUTEX_WAIT, FUTEX_WAKE, FUTEX_FD, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 2, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_LOCK_PI2 = 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_TID_MASK = 0x3FFFFFFF
_NS = 1_000_000_000


def _sext12(v: int) -> int:
    return v - 0x1000 if v & 0x800 else v


_OPS = {0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
        3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}
_CMPS = range(6)  # FUTEX_OP_CMP_EQ .. GE: with no waiters the comparison decides nothing


def _wait(env: Any, uaddr: int, val: int, timeout: int, absolute: bool, realtime: bool) -> int:
    if uaccess.get_u32(env, uaddr) != val & 0xFFFFFFFF:
        return -errno.EAGAIN
    if not timeout:
        raise HqemuError(f"hqemu: guest deadlock: futex wait on 0x{uaddr:x} with no timeout, and no other "
                         "thread to wake it")
    sec, nsec = unpack_timespec(uaccess.get(env, timeout, 16))
    if sec < 0 or not 0 <= nsec < _NS:
        return -errno.EINVAL
    ns = sec * _NS + nsec
    if absolute:
        ns -= time.clock_gettime_ns(time.CLOCK_REALTIME if realtime else time.CLOCK_MONOTONIC)
    if ns > 0:
        time.sleep(ns / _NS)
    return -errno.ETIMEDOUT


def _wake_op(env: Any, uaddr2: int, val3: int) -> int:
    op, cmp = (val3 >> 28) & 7, (val3 >> 24) & 15
    oparg = _sext12((val3 >> 12) & 0xFFF)
    if val3 & (1 << 31):  # FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
    if op not in _OPS or cmp not in _CMPS:
        return -errno.ENOSYS
    old = uaccess.get_u32(env, uaddr2)
    uaccess.put_u32(env, uaddr2, _OPS[op](old, oparg))
    return 0  # woken: none, whatever the comparison says


def futex(env: Any, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int, *_) -> int:
    cmd = op & 0xFFFFFFFF & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    if uaddr & 3:
        return -errno.EINVAL
    val3 &= 0xFFFFFFFF
    if cmd == FUTEX_WAIT:
        return _wait(env, uaddr, val, timeout, False, False)
    if cmd == FUTEX_WAIT_BITSET:
        return -errno.EINVAL if not val3 else _wait(env, uaddr, val, timeout, True,
                                                     bool(op & FUTEX_CLOCK_REALTIME))
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return -errno.EINVAL if cmd == FUTEX_WAKE_BITSET and not val3 else 0
    if cmd == FUTEX_REQUEUE:
        return 0
    if cmd == FUTEX_CMP_REQUEUE:
        return -errno.EAGAIN if uaccess.get_u32(env, uaddr) != val3 else 0
    if cmd == FUTEX_WAKE_OP:
        return _wake_op(env, uaddr2, val3)
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI):
        word = uaccess.get_u32(env, uaddr)
        owner = word & FUTEX_TID_MASK
        if owner == env.pid:
            return -errno.EDEADLK
        if owner == 0:
            uaccess.put_u32(env, uaddr, (word & ~FUTEX_TID_MASK) | env.pid)
            return 0
        if cmd == FUTEX_TRYLOCK_PI:
            return -errno.EAGAIN
        raise HqemuError(f"hqemu: guest deadlock: PI futex 0x{uaddr:x} held by tid {owner}, which is not "
                         "running")
    if cmd == FUTEX_UNLOCK_PI:
        if uaccess.get_u32(env, uaddr) & FUTEX_TID_MASK != env.pid:
            return -errno.EPERM
        uaccess.put_u32(env, uaddr, 0)
        return 0
    return -errno.ENOSYS
