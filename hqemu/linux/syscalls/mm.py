"""Memory syscalls: brk, mmap, munmap, mprotect, mremap, madvise, all served by env.mem.

GuestMemory implements the Linux semantics (it reads a file mapping's bytes through the fd);
this layer decodes the arguments and tells the engine when pages that may hold translated
code lose their exec permission or go away (env.invalidate_code).

    >>> mmap(env, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, MASK64, 0)
"""

from __future__ import annotations

import errno
from typing import Any

from .abi import MAP_ANONYMOUS, PROT_EXEC, s32


def _had_exec(env: Any, addr: int, length: int) -> bool:
    end = addr + length
    return any(s < end and addr < e and prot & PROT_EXEC for s, e, prot, _ in env.mem.mappings())


def _invalidate(env: Any, addr: int, length: int) -> None:
    if env.invalidate_code is not None:
        env.invalidate_code(addr, length)


def brk(env: Any, addr: int, *_) -> int:
    return env.mem.brk(addr)


def mmap(env: Any, addr: int, length: int, prot: int, flags: int, fd: int, off: int, *_) -> int:
    flags &= 0xFFFFFFFF
    fd = -1 if flags & MAP_ANONYMOUS else s32(fd)
    # MAP_FIXED over code drops it inside mem.mmap (its unmap reports code pages written)
    return env.mem.mmap(addr, length, prot & 0xFFFFFFFF, flags, fd, off)


def munmap(env: Any, addr: int, length: int, *_) -> int:
    had = _had_exec(env, addr, length)
    r = env.mem.munmap(addr, length)
    if r == 0 and had:
        _invalidate(env, addr, length)
    return r


def mprotect(env: Any, addr: int, length: int, prot: int, *_) -> int:
    had = not prot & PROT_EXEC and _had_exec(env, addr, length)
    r = env.mem.mprotect(addr, length, prot & 0xFFFFFFFF)
    if had:  # even on ENOMEM: the mapped prefix did change
        _invalidate(env, addr, length)
    return r


def mremap(env: Any, old: int, old_len: int, new_len: int, flags: int, new_addr: int, *_) -> int:
    had = _had_exec(env, old, old_len)
    r = env.mem.mremap(old, old_len, new_len, flags & 0xFFFFFFFF, new_addr)
    if had and r >= 0 and (r != old or new_len < old_len):
        _invalidate(env, old, old_len)
    return r


def msync(env: Any, addr: int, length: int, flags: int, *_) -> int:
    """File mappings are private copies (see memory.py), so there is nothing to write back;
    the arguments are checked as Linux checks them."""
    if addr & 0xFFF or flags & ~7 or (flags & 1 and flags & 4):  # MS_ASYNC=1 MS_INVALIDATE=2 MS_SYNC=4
        return -errno.EINVAL
    end = addr + ((length + 0xFFF) & ~0xFFF)
    if any(not env.mem.is_mapped(a) for a in range(addr, end, 0x1000)):
        return -errno.ENOMEM
    return 0


def madvise(env: Any, addr: int, length: int, advice: int, *_) -> int:
    # MADV_DONTNEED would zero anonymous pages; the allocators glibc and musl ship only use it
    # on memory they have freed, so keeping the bytes is not observable to them
    return 0
