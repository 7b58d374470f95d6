"""Host virtual-memory calls (mmap, munmap, mprotect, madvise) through ctypes, raising OSError.

The guest address space is one host reservation whose pages hqemu opens and closes itself;
Python's mmap module cannot map at a fixed address, so these thin wrappers call libc.

    >>> base = hostmm.reserve(1 << 30)                  # PROT_NONE, nothing committed
    >>> hostmm.protect(base, 4096, hostmm.PROT_READ | hostmm.PROT_WRITE)
    >>> hostmm.discard(base, 4096)                      # back to PROT_NONE and zero
"""

from __future__ import annotations

import ctypes
import os

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x01, 0x02, 0x10, 0x20, 0x4000
MAP_FAILED = ctypes.c_void_p(-1).value
PAGE = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_mremap = _libc.mremap
_mremap.restype = ctypes.c_void_p
_mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    """Raw host mmap; returns the address or raises OSError."""
    r = _mmap(addr or None, length, prot, flags, fd, offset)
    if r is None or r == MAP_FAILED:
        raise _fail("mmap")
    return r


def reserve(size: int) -> int:
    """Reserve size bytes of address space: PROT_NONE and NORESERVE, so it costs no memory."""
    return mmap(0, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)


def protect(addr: int, length: int, prot: int) -> None:
    if _mprotect(addr, length, prot) != 0:
        raise _fail("mprotect")


def discard(addr: int, length: int) -> None:
    """Replace the pages by fresh PROT_NONE zero pages in one atomic call: their memory is freed
    and the reservation keeps no hole another host thread could map into."""
    mmap(addr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED)


def unmap(addr: int, length: int) -> None:
    if _munmap(addr, length) != 0:
        raise _fail("munmap")


def raw_mprotect(addr: int, length: int, prot: int) -> int:
    """mprotect returning 0 or -errno (for tests that compare with the host kernel)."""
    return 0 if _mprotect(addr, length, prot) == 0 else -ctypes.get_errno()


def raw_munmap(addr: int, length: int) -> int:
    return 0 if _munmap(addr, length) == 0 else -ctypes.get_errno()


def raw_mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    r = _mmap(addr or None, length, prot, flags, fd, offset)
    return -ctypes.get_errno() if r is None or r == MAP_FAILED else r


def raw_mremap(old: int, old_len: int, new_len: int, flags: int, new_addr: int = 0) -> int:
    r = _mremap(old or None, old_len, new_len, flags, new_addr or None)
    return -ctypes.get_errno() if r is None or r == MAP_FAILED else r
