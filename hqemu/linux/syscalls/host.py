"""Host libc calls the os module lacks, through ctypes, raising OSError like os does.

getdents64 keeps the directory offset in the guest's fd (os.scandir would rewind it),
fallocate takes the mode bits (punch hole, keep size) os.posix_fallocate has no room for,
faccessat gives the errno os.access hides, renameat2 and utimensat take flags and special
values os.rename/os.utime cannot express. Every struct these calls use has the same layout
on all 64-bit Linux ISAs, so the host's bytes are the guest's.

    >>> data = host.getdents64(fd, 4096)         # raw struct linux_dirent64 records
    >>> host.faccessat(AT_FDCWD, b"/etc", os.R_OK, 0)
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)


def _fn(name: str, res, *args):
    f = getattr(_libc, name)
    f.restype = res
    f.argtypes = list(args)
    return f


_c_int, _c_char_p, _c_void_p, _c_size_t = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t
_getdents64 = _fn("getdents64", ctypes.c_ssize_t, _c_int, _c_void_p, _c_size_t)
_faccessat = _fn("faccessat", _c_int, _c_int, _c_char_p, _c_int, _c_int)
_renameat2 = _fn("renameat2", _c_int, _c_int, _c_char_p, _c_int, _c_char_p, ctypes.c_uint)
_utimensat = _fn("utimensat", _c_int, _c_int, _c_char_p, _c_void_p, _c_int)
_futimens = _fn("futimens", _c_int, _c_int, _c_void_p)
_sysinfo = _fn("sysinfo", _c_int, _c_void_p)
_statfs = _fn("statfs", _c_int, _c_char_p, _c_void_p)
_fstatfs = _fn("fstatfs", _c_int, _c_int, _c_void_p)
_fallocate = _fn("fallocate", _c_int, _c_int, _c_int, ctypes.c_int64, ctypes.c_int64)

SYSINFO_SIZE = 112  # struct sysinfo on 64-bit Linux
STATFS_SIZE = 120  # struct statfs on 64-bit Linux: eleven longs and four spare ones (fsid is two ints)


def _check(r: int) -> int:
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def getdents64(fd: int, n: int) -> bytes:
    buf = ctypes.create_string_buffer(n)
    got = _check(_getdents64(fd, buf, n))
    return buf.raw[:got]


def faccessat(dirfd: int, path: bytes, mode: int, flags: int) -> None:
    _check(_faccessat(dirfd, path, mode, flags))


def renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    _check(_renameat2(olddirfd, old, newdirfd, new, flags))


def utimensat(dirfd: int, path: bytes | None, times: bytes | None, flags: int) -> None:
    """times: two struct timespec (32 bytes, UTIME_NOW/UTIME_OMIT allowed) or None for now."""
    buf = ctypes.create_string_buffer(times, 32) if times is not None else None
    if path is None:  # the syscall's NULL path means the fd itself; glibc's utimensat refuses it
        _check(_futimens(dirfd, buf))
    else:
        _check(_utimensat(dirfd, path, buf, flags))


def sysinfo() -> bytes:
    buf = ctypes.create_string_buffer(SYSINFO_SIZE)
    _check(_sysinfo(buf))
    return buf.raw


def statfs(path: bytes) -> bytes:
    buf = ctypes.create_string_buffer(STATFS_SIZE)
    _check(_statfs(path, buf))
    return buf.raw


def fstatfs(fd: int) -> bytes:
    buf = ctypes.create_string_buffer(STATFS_SIZE)
    _check(_fstatfs(fd, buf))
    return buf.raw


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(_fallocate(fd, mode, offset, length))
