"""Kernel structs in the guest's layout: one packer per ISA where the layouts differ.

struct stat is the one that differs between hqemu's guests (x86-64: 144 bytes, nlink 64-bit
before mode; the generic layout AArch64 uses: 128 bytes, mode before a 32-bit nlink); the
others (statx, timespec, dirent64, sigaction, stack_t, rlimit, rusage, utsname) are the same
on every 64-bit Linux ISA and have a single packer.

    >>> data = pack_stat("aarch64", os.stat("/etc/passwd"))   # 128 bytes
    >>> sec, nsec = unpack_timespec(env.mem.read(addr, 16))
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

_STAT_X86_64 = struct.Struct("<QQQIIIiQqqqqQqQqQ24x")
_STAT_GENERIC = struct.Struct("<QQIIIIQQqiiqqQqQqQII")
_TIMESPEC = struct.Struct("<qq")
_STATX_TS = struct.Struct("<qIi")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
I32 = struct.Struct("<i")


def _ts(ns: int) -> tuple[int, int]:
    return divmod(ns, 1_000_000_000)  # floor: a time before 1970 keeps 0 <= nsec < 1e9, as the kernel


def _stat_x86_64(st: os.stat_result) -> bytes:
    a, m, c = _ts(st.st_atime_ns), _ts(st.st_mtime_ns), _ts(st.st_ctime_ns)
    return _STAT_X86_64.pack(st.st_dev, st.st_ino, st.st_nlink, st.st_mode, st.st_uid, st.st_gid, 0,
                             st.st_rdev, st.st_size, st.st_blksize, st.st_blocks, *a, *m, *c)


def _stat_generic(st: os.stat_result) -> bytes:
    a, m, c = _ts(st.st_atime_ns), _ts(st.st_mtime_ns), _ts(st.st_ctime_ns)
    return _STAT_GENERIC.pack(st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                              st.st_rdev, 0, st.st_size, st.st_blksize, 0, st.st_blocks, *a, *m, *c, 0, 0)


STAT_PACKERS: dict[str, Callable[[os.stat_result], bytes]] = {
    "x86_64": _stat_x86_64,  # 144 bytes
    "aarch64": _stat_generic,  # 128 bytes
}


def pack_stat(isa: str, st: os.stat_result) -> bytes:
    return STAT_PACKERS[isa](st)


STATX_BASIC_STATS = 0x7FF  # type, mode, nlink, uid, gid, atime, mtime, ctime, ino, size, blocks


def pack_statx(st: os.stat_result) -> bytes:
    """struct statx (256 bytes) from a host stat: the basic fields only (no btime, no mount id)."""
    head = struct.pack("<IIQIIIHHQQQQ", STATX_BASIC_STATS, st.st_blksize, 0, st.st_nlink, st.st_uid,
                       st.st_gid, st.st_mode, 0, st.st_ino, st.st_size, st.st_blocks, 0)
    times = b"".join(_STATX_TS.pack(*_ts(ns), 0)
                     for ns in (st.st_atime_ns, 0, st.st_ctime_ns, st.st_mtime_ns))  # a, b, c, m
    devs = struct.pack("<IIII", os.major(st.st_rdev), os.minor(st.st_rdev), os.major(st.st_dev),
                       os.minor(st.st_dev))
    out = head + times + devs
    return out + bytes(256 - len(out))


def pack_timespec(ns: int) -> bytes:
    return _TIMESPEC.pack(*_ts(ns))


def unpack_timespec(data: bytes) -> tuple[int, int]:
    return _TIMESPEC.unpack(data)


def pack_timeval(ns: int) -> bytes:
    sec, rem = _ts(ns)
    return _TIMESPEC.pack(sec, rem // 1000)


_UTS_FIELD = 65


def pack_utsname(sysname: str, nodename: str, release: str, version: str, machine: str,
                 domainname: str) -> bytes:
    out = b""
    for s in (sysname, nodename, release, version, machine, domainname):
        out += s.encode()[:_UTS_FIELD - 1].ljust(_UTS_FIELD, b"\0")
    return out  # 390 bytes


# struct sigaction as the rt_sigaction syscall sees it (not libc's): handler, flags, restorer, mask.
# AArch64 defines SA_RESTORER too, so the generic layout is the x86-64 one.
SIGACTION = struct.Struct("<QQQQ")
STACK_T = struct.Struct("<Qi4xQ")  # ss_sp, ss_flags, ss_size
RLIMIT = struct.Struct("<QQ")
POLLFD = struct.Struct("<ihh")
IOVEC = struct.Struct("<QQ")
FLOCK_SIZE = 32  # struct flock: same layout on both 64-bit ISAs


def pack_rusage(ru) -> bytes:
    """struct rusage from resource.getrusage(): two timevals then fourteen longs (144 bytes)."""
    def tv(seconds: float) -> bytes:
        us = round(seconds * 1_000_000)
        return _TIMESPEC.pack(*divmod(us, 1_000_000))

    longs = (ru.ru_maxrss, ru.ru_ixrss, ru.ru_idrss, ru.ru_isrss, ru.ru_minflt, ru.ru_majflt, ru.ru_nswap,
             ru.ru_inblock, ru.ru_oublock, ru.ru_msgsnd, ru.ru_msgrcv, ru.ru_nsignals, ru.ru_nvcsw,
             ru.ru_nivcsw)
    return tv(ru.ru_utime) + tv(ru.ru_stime) + struct.pack("<14q", *longs)
