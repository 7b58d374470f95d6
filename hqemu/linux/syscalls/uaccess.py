"""Guest memory as the syscall handlers touch it (the kernel's copy_to_user/copy_from_user).

Every access is checked: a bad pointer raises GuestFault, which dispatch turns into -EFAULT.
Bulk I/O goes straight between the host fd and the guest's pages (a zero-copy slice of
mem.view) when the fast tables say every page is plainly readable/writable; otherwise it goes
through a bounded host buffer and the checked slow path (code pages, partly mapped buffers).

    >>> n = read_into(env, fd, buf, count)        # read(2) into guest memory
    >>> path = path_arg(env, a1)                  # a guest C string, for the host
"""

from __future__ import annotations

import os
from typing import Any

from hqemu.errors import GuestFault

from .abi import PAGE, PROT_READ, PROT_WRITE
from .structs import U32, U64

MAX_RW = 0x7FFFF000  # the kernel's MAX_RW_COUNT: longest single read/write
SLOW_CAP = 1 << 24  # bytes staged in a host buffer per call on the slow path
PATH_MAX = 4096


class NameTooLong(OSError):
    def __init__(self):
        super().__init__(36, os.strerror(36))  # ENAMETOOLONG


def get(env: Any, addr: int, n: int) -> bytes:
    return env.mem.read(addr, n)


def put(env: Any, addr: int, data: bytes) -> None:
    env.mem.write(addr, data)


def get_u32(env: Any, addr: int) -> int:
    return U32.unpack(env.mem.read(addr, 4))[0]


def get_u64(env: Any, addr: int) -> int:
    return U64.unpack(env.mem.read(addr, 8))[0]


def put_u32(env: Any, addr: int, v: int) -> None:
    env.mem.write(addr, U32.pack(v & 0xFFFFFFFF))


def put_u64(env: Any, addr: int, v: int) -> None:
    env.mem.write(addr, U64.pack(v & 0xFFFFFFFFFFFFFFFF))


def cstr(env: Any, addr: int, limit: int = PATH_MAX) -> bytes:
    """A NUL-terminated guest string; longer than limit - 1 bytes: ENAMETOOLONG."""
    if addr == 0:
        raise GuestFault(0)
    s = env.mem.read_cstr(addr, limit)
    if len(s) >= limit:
        raise NameTooLong()
    return s


def view(env: Any, addr: int, n: int, write: bool) -> memoryview | None:
    """A zero-copy slice of guest memory if every page of [addr, addr+n) is on the fast path."""
    mem = env.mem
    fast = getattr(mem, "fast_w" if write else "fast_r", None)
    if fast is None or n <= 0 or addr + n > mem.size:
        return None
    # fast[p] also vouches for page p+1: demanding it for the last page is conservative only
    if fast[addr >> 12:((addr + n - 1) >> 12) + 1].tobytes().find(0) >= 0:
        return None
    return mem.view[addr:addr + n]


def accessible(env: Any, addr: int, n: int, write: bool) -> int:
    """How many bytes from addr (at most n) the guest may read (or write): the kernel's short count."""
    need = PROT_WRITE if write else PROT_READ
    end = addr + n
    p = addr & ~(PAGE - 1)
    while p < end:
        if not env.mem.prot_of(p) & need:
            return max(0, p - addr)
        p += PAGE
    return n


def read_into(env: Any, fd: int, addr: int, n: int, offset: int | None = None) -> int:
    """read(2)/pread(2) of up to n bytes from a host fd into guest memory."""
    n = min(n, MAX_RW)
    if n == 0:  # still a syscall: a bad fd must give EBADF
        os.read(fd, 0) if offset is None else os.pread(fd, 0, offset)
        return 0
    v = view(env, addr, n, True)
    if v is not None:
        return os.readv(fd, [v]) if offset is None else os.preadv(fd, [v], offset)
    m = accessible(env, addr, min(n, SLOW_CAP), True)
    if m == 0:
        raise GuestFault(addr, True)
    data = os.read(fd, m) if offset is None else os.pread(fd, m, offset)
    env.mem.write(addr, data)
    return len(data)


def write_from(env: Any, fd: int, addr: int, n: int, offset: int | None = None) -> int:
    """write(2)/pwrite(2) of up to n bytes of guest memory to a host fd."""
    n = min(n, MAX_RW)
    v = view(env, addr, n, False)
    if v is None:
        m = accessible(env, addr, min(n, SLOW_CAP), False)
        if m == 0 and n:
            raise GuestFault(addr)
        v = env.mem.read(addr, m)
    return os.write(fd, v) if offset is None else os.pwrite(fd, v, offset)


def gather(env: Any, segs: list[tuple[int, int]]) -> list[bytes | memoryview]:
    """The guest buffers of a writev, in order, each as a zero-copy view where possible."""
    out: list[bytes | memoryview] = []
    for base, ln in segs:
        if ln:
            v = view(env, base, ln, False)
            out.append(v if v is not None else env.mem.read(base, ln))
    return out


def scatter(env: Any, segs: list[tuple[int, int]], data: bytes) -> None:
    """The bytes of one readv, written back segment by segment."""
    pos = 0
    for base, ln in segs:
        if pos >= len(data):
            break
        chunk = data[pos:pos + ln]
        env.mem.write(base, chunk)
        pos += len(chunk)
