"""Time syscalls: the host's clocks, read and slept on directly (clock ids are the same numbers).

    >>> clock_gettime(env, 1, ts_ptr)       # CLOCK_MONOTONIC into a guest struct timespec
"""

from __future__ import annotations

import errno
import os
import resource
import time
from typing import Any

from . import uaccess
from .abi import s32
from .structs import pack_rusage, pack_timespec, pack_timeval, unpack_timespec

TIMER_ABSTIME = 1
_NS = 1_000_000_000


def clock_gettime(env: Any, clk: int, tp: int, *_) -> int:
    uaccess.put(env, tp, pack_timespec(time.clock_gettime_ns(s32(clk))))
    return 0


def clock_getres(env: Any, clk: int, res: int, *_) -> int:
    r = time.clock_getres(s32(clk))
    if res:
        uaccess.put(env, res, pack_timespec(round(r * _NS)))
    return 0


def gettimeofday(env: Any, tv: int, tz: int, *_) -> int:
    if tv:
        uaccess.put(env, tv, pack_timeval(time.time_ns()))
    if tz:
        uaccess.put(env, tz, bytes(8))  # the kernel's sys_tz: UTC, no DST, unless root set it
    return 0


def time_(env: Any, tloc: int, *_) -> int:
    t = time.time_ns() // _NS
    if tloc:
        uaccess.put_u64(env, tloc, t)
    return t


def _req_ns(env: Any, req: int) -> int:
    sec, nsec = unpack_timespec(uaccess.get(env, req, 16))
    if sec < 0 or not 0 <= nsec < _NS:
        raise OSError(errno.EINVAL, "timespec")
    return sec * _NS + nsec


def nanosleep(env: Any, req: int, rem: int, *_) -> int:
    time.sleep(_req_ns(env, req) / _NS)
    return 0  # never interrupted: rem is left alone, as the kernel does then


def clock_nanosleep(env: Any, clk: int, flags: int, req: int, rem: int, *_) -> int:
    clk = s32(clk)
    ns = _req_ns(env, req)
    now = time.clock_gettime_ns(clk)  # EINVAL for a bad clock before sleeping
    if flags & TIMER_ABSTIME:
        ns -= now
    if ns > 0:
        time.sleep(ns / _NS)
    return 0


def times(env: Any, buf: int, *_) -> int:
    tck = os.sysconf("SC_CLK_TCK")
    t = os.times()
    if buf:
        uaccess.put(env, buf, b"".join(round(v * tck).to_bytes(8, "little", signed=True)
                                       for v in (t.user, t.system, t.children_user, t.children_system)))
    return round(t.elapsed * tck)


def getrusage(env: Any, who: int, buf: int, *_) -> int:
    who = s32(who)
    if who not in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN, 1):  # 1: RUSAGE_THREAD
        return -errno.EINVAL
    uaccess.put(env, buf, pack_rusage(resource.getrusage(who)))
    return 0
