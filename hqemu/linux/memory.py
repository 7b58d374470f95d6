"""The guest address space: one host reservation, guest pages mapped into it with Linux semantics.

Guest address a lives at host address base + a. Every guest page has one byte in a page table
(its PROT bits, whether it is mapped, whether it holds translated code); the host protection
of each page is kept equal to the guest's, so native code may touch guest memory directly and
rely on SIGSEGV. Python must never touch a page the host has closed (that kills the
interpreter), so every Python-side access checks the page table first.

The quick tier reads two derived tables, one byte per page: fast_r[p] (pages p and p+1 are
readable) and fast_w[p] (both writable, neither holds translated code); an access of up to
16 bytes at a with fast_r[a >> 12] set cannot fault, whichever page it ends in.

    >>> mem = GuestMemory(1 << 32)
    >>> a = mem.mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    >>> mem.store(a, 8, 0x1122334455667788); hex(mem.load(a + 4, 4))
    '0x11223344'
    >>> mem.load(0, 8)          # raises GuestFault(0)
"""

from __future__ import annotations

import bisect
import ctypes
import errno
import fcntl
import mmap as _pymmap
import os
import re
import resource
import stat
from collections.abc import Callable
from dataclasses import dataclass

from hqemu.errors import GuestFault, HqemuError

from . import hostmm

PAGE_SHIFT = 12
PAGE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE - 1

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0, 1, 2, 4
PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP = 0x8, 0x01000000, 0x02000000
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 0x01, 0x02, 0x03, 0x0F
MAP_FIXED, MAP_ANONYMOUS, MAP_32BIT = 0x10, 0x20, 0x40
MAP_GROWSDOWN, MAP_NORESERVE, MAP_STACK = 0x100, 0x4000, 0x20000
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4

MMAP_MIN_ADDR = 0x10000  # Linux's default vm.mmap_min_addr: page 0 and its neighbours stay unmapped
MIN_STACK_GAP = 128 << 20  # Linux keeps at least this much between the stack top and the mmap base
STACK_GUARD_GAP = 256 * PAGE  # Linux's stack_guard_gap

# page-table byte: PROT bits in bits 0-2, then
_MAPPED = 0x10  # part of a mapping (a PROT_NONE mapping is mapped, yet inaccessible)
_CODE = 0x20  # holds translated code: stores take the slow path and report the write

_PROT_BITS = PROT_READ | PROT_WRITE | PROT_EXEC


def _table(fn: Callable[[int], int]) -> bytes:
    return bytes(fn(v) for v in range(256))


# x86 and AArch64 hardware let a writable or executable page be read, and so does the host
# kernel: a guest page is readable if it has any PROT bit.
_READABLE = _table(lambda v: 1 if v & _PROT_BITS else 0)
_WRITABLE = _table(lambda v: 1 if v & PROT_WRITE else 0)
_EXECUTABLE = _table(lambda v: 1 if v & PROT_EXEC else 0)
_FAST_W = _table(lambda v: 1 if v & PROT_WRITE and not v & _CODE else 0)
_HOST_PROT = _table(lambda v: hostmm.PROT_READ | hostmm.PROT_WRITE if v & PROT_WRITE
                    else hostmm.PROT_READ if v & _PROT_BITS else hostmm.PROT_NONE)
_IS_CODE = _table(lambda v: 1 if v & _CODE else 0)
_MARK_CODE = _table(lambda v: v | _CODE if v & _MAPPED else v)  # mark_code's rewrite of a page entry
_IS_MAPPED = _table(lambda v: 1 if v & _MAPPED else 0)
_RUNS = re.compile(rb"(.)\1*", re.S)


def _page_up(x: int) -> int:
    return (x + PAGE_MASK) & ~PAGE_MASK


def _and_next(flags: bytes) -> bytes:
    """out[i] = flags[i] & flags[i + 1] for 0/1 bytes, in C speed through one big int."""
    x = int.from_bytes(flags, "little")
    return (x & (x >> 8)).to_bytes(len(flags), "little")[:-1]


@dataclass(slots=True)
class Vma:
    start: int
    end: int
    prot: int  # PROT_* bits
    name: str  # file path, "[heap]", "[stack]" or "" (anonymous)
    offset: int = 0  # file offset of start, for file mappings

    @property
    def is_file(self) -> bool:
        return self.name.startswith("/")

    def mergeable(self, nxt: Vma) -> bool:
        if self.end != nxt.start or self.prot != nxt.prot or self.name != nxt.name:
            return False
        return not self.is_file or nxt.offset == self.offset + (self.end - self.start)


class GuestMemory:
    """Guest address space of `size` bytes (a multiple of the page size)."""

    def __init__(self, size: int, mmap_base: int | None = None):
        if size <= 0 or size & PAGE_MASK:
            raise HqemuError(f"guest space size 0x{size:x} is not a positive multiple of {PAGE}")
        if resource.getpagesize() != PAGE:
            raise HqemuError(f"host page size {resource.getpagesize()} is not supported (4096 only)")
        try:
            self.base = hostmm.reserve(size)
        except OSError as e:
            raise HqemuError(f"cannot reserve 0x{size:x} bytes of address space for the guest: "
                             f"{e.strerror}") from None
        self.size = size
        self.npages = size >> PAGE_SHIFT
        self.view = memoryview((ctypes.c_char * size).from_address(self.base)).cast("B")
        # The tables are anonymous mmaps rather than bytearrays: the kernel hands out zero pages
        # lazily, so a 256 GiB space costs no time and no memory for the pages never mapped.
        # _pt has one extra zero byte so page p+1 of the last page reads as unmapped.
        self._maps = [_pymmap.mmap(-1, self.npages + 1) for _ in range(3)]
        self._pt = memoryview(self._maps[0])
        self.fast_r = memoryview(self._maps[1])
        self.fast_w = memoryview(self._maps[2])
        self._vmas: list[Vma] = []  # sorted, disjoint
        self._starts: list[int] = []  # vma starts, for bisect
        default_gap = min(max(MIN_STACK_GAP, (8 << 20) + STACK_GUARD_GAP), size // 2)
        self.mmap_base = mmap_base if mmap_base is not None else (size - default_gap) & ~PAGE_MASK
        self.brk_start = 0  # first heap byte (page aligned); set by the loader
        self.brk_cur = 0  # current program break
        self.on_code_write: Callable[[int, int], None] | None = None

    def close(self) -> None:
        """Give the reservation back. Nothing may use this memory (or its view) afterwards."""
        if self.view is None:
            return
        for v in (self.view, self._pt, self.fast_r, self.fast_w):
            try:
                v.release()
            except BufferError:  # someone still holds a buffer of it: the GC frees it later
                pass
        for m in self._maps:
            try:
                m.close()
            except BufferError:
                pass
        hostmm.unmap(self.base, self.size)
        self.view = None

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ checked accesses
    def _check(self, addr: int, n: int, table: bytes, write: bool) -> None:
        """Raise GuestFault at the first byte of [addr, addr + n) whose page fails `table`."""
        if addr < 0 or addr >= self.size:
            raise GuestFault(addr, write)
        end = addr + n
        p0 = addr >> PAGE_SHIFT
        p1 = (min(end, self.size) - 1 >> PAGE_SHIFT) + 1
        bad = self._pt[p0:p1].tobytes().translate(table).find(0)
        if bad >= 0:
            raise GuestFault(max(addr, (p0 + bad) << PAGE_SHIFT), write)
        if end > self.size:
            raise GuestFault(self.size, write)

    def _code_hit(self, addr: int, n: int) -> bool:
        p0 = addr >> PAGE_SHIFT
        return any(self._pt[p0:((addr + n - 1) >> PAGE_SHIFT) + 1].tobytes().translate(_IS_CODE))

    def load(self, addr: int, n: int) -> int:
        """Little-endian unsigned load of n bytes; GuestFault if any byte is unreadable."""
        # the usual slow-path caller stays inside one page: one table lookup instead of _check
        if not (0 <= addr < self.size and (addr & PAGE_MASK) + n <= PAGE
                and _READABLE[self._pt[addr >> PAGE_SHIFT]]):
            self._check(addr, n, _READABLE, False)
        return int.from_bytes(self.view[addr:addr + n], "little")

    def store(self, addr: int, n: int, value: int) -> None:
        if 0 <= addr < self.size and (addr & PAGE_MASK) + n <= PAGE:
            v = self._pt[addr >> PAGE_SHIFT]
            if not v & PROT_WRITE:
                raise GuestFault(addr, True)
            code = v & _CODE
        else:
            self._check(addr, n, _WRITABLE, True)
            code = self._code_hit(addr, n)
        self.view[addr:addr + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
        if code and self.on_code_write is not None:
            self.on_code_write(addr, n)

    def read(self, addr: int, n: int) -> bytes:
        if n <= 0:
            return b""
        self._check(addr, n, _READABLE, False)
        return self.view[addr:addr + n].tobytes()

    def write(self, addr: int, data: bytes) -> None:
        n = len(data)
        if n == 0:
            return
        self._check(addr, n, _WRITABLE, True)
        self.view[addr:addr + n] = data
        if self.on_code_write is not None and self._code_hit(addr, n):
            self.on_code_write(addr, n)

    def read_cstr(self, addr: int, limit: int = 1 << 20) -> bytes:
        """The bytes at addr up to (not including) a NUL. Without a NUL in the first `limit`
        bytes, returns those `limit` bytes (the caller reports ENAMETOOLONG or E2BIG)."""
        out = []
        got = 0
        a = addr
        while got < limit:
            chunk = min(_page_up(a + 1) - a, limit - got)
            data = self.read(a, chunk)
            i = data.find(0)
            if i >= 0:
                out.append(data[:i])
                break
            out.append(data)
            got += chunk
            a += chunk
        return b"".join(out)

    def fetch(self, addr: int, n: int) -> bytes:
        """Up to n bytes of executable memory at addr (at least 1) or GuestFault(addr)."""
        if addr < 0 or addr >= self.size or not self._pt[addr >> PAGE_SHIFT] & PROT_EXEC:
            raise GuestFault(addr)
        end = min(addr + n, self.size)
        p, last = addr >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        while p < last and self._pt[p + 1] & PROT_EXEC:
            p += 1
        return self.view[addr:min(end, (p + 1) << PAGE_SHIFT)].tobytes()

    def prot_of(self, addr: int) -> int:
        """PROT_* bits of the page holding addr (0: unmapped or PROT_NONE)."""
        return self._pt[addr >> PAGE_SHIFT] & _PROT_BITS if 0 <= addr < self.size else 0

    def is_mapped(self, addr: int) -> bool:
        return 0 <= addr < self.size and bool(self._pt[addr >> PAGE_SHIFT] & _MAPPED)

    def _poke(self, addr: int, data: bytes) -> None:
        """Write into mapped pages whatever their guest protection (the loader fills text
        segments this way); GuestFault if a page is not mapped."""
        n = len(data)
        if n == 0:
            return
        self._check(addr, n, _IS_MAPPED, True)
        p0, p1 = addr >> PAGE_SHIFT, ((addr + n - 1) >> PAGE_SHIFT) + 1
        hostmm.protect(self.base + (p0 << PAGE_SHIFT), (p1 - p0) << PAGE_SHIFT,
                       hostmm.PROT_READ | hostmm.PROT_WRITE)
        try:
            self.view[addr:addr + n] = data
        finally:
            self._sync_host(p0, p1)
        if self.on_code_write is not None and self._code_hit(addr, n):
            self.on_code_write(addr, n)

    # ------------------------------------------------------------------ self-modifying code
    def mark_code(self, addr: int, length: int) -> None:
        """The mapped pages of [addr, addr + length) now hold translated code: stores to them
        take the slow path, which calls on_code_write(addr, n) after writing."""
        p0, p1 = self._page_range(addr, length)
        seg = self._pt[p0:p1].tobytes()
        if seg.translate(_MARK_CODE) != seg:  # most blocks land on pages already marked: no work
            self._retable(p0, p1, _MARK_CODE)

    def clear_code(self, addr: int, length: int) -> None:
        """The translations of these pages are gone: stores may take the fast path again."""
        p0, p1 = self._page_range(addr, length)
        self._retable(p0, p1, _table(lambda v: v & ~_CODE))

    def _page_range(self, addr: int, length: int) -> tuple[int, int]:
        a = max(addr, 0)
        e = min(addr + length, self.size)
        return a >> PAGE_SHIFT, max(_page_up(e) >> PAGE_SHIFT, a >> PAGE_SHIFT)

    def _notify_code(self, p0: int, p1: int) -> None:
        """Report runs of code pages in [p0, p1) as written: they are about to be unmapped."""
        if self.on_code_write is None:
            return
        flags = self._pt[p0:p1].tobytes().translate(_IS_CODE)
        for m in _RUNS.finditer(flags):
            if m.group(1) == b"\x01":
                self.on_code_write((p0 + m.start()) << PAGE_SHIFT, (m.end() - m.start()) << PAGE_SHIFT)

    # ------------------------------------------------------------------ page-table maintenance
    def _retable(self, p0: int, p1: int, table: bytes, host: bool = False) -> None:
        """Rewrite page-table bytes [p0, p1) through `table`, then the tables derived from them."""
        if p1 <= p0:
            return
        self._pt[p0:p1] = self._pt[p0:p1].tobytes().translate(table)
        if host:
            self._sync_host(p0, p1)
        self._refresh(p0, p1)

    def _sync_host(self, p0: int, p1: int) -> None:
        prots = self._pt[p0:p1].tobytes().translate(_HOST_PROT)
        for m in _RUNS.finditer(prots):
            hostmm.protect(self.base + ((p0 + m.start()) << PAGE_SHIFT), (m.end() - m.start()) << PAGE_SHIFT,
                           m.group(1)[0])

    def _refresh(self, p0: int, p1: int) -> None:
        # fast_r[p] depends on pages p and p+1: entries p0-1 .. p1-1 may have changed
        lo = max(p0 - 1, 0)
        seg = self._pt[lo:p1 + 1].tobytes()  # p1 <= npages, and _pt[npages] is the zero sentinel
        self.fast_r[lo:p1] = _and_next(seg.translate(_READABLE))
        self.fast_w[lo:p1] = _and_next(seg.translate(_FAST_W))

    # ------------------------------------------------------------------ mapping list
    def _split(self, addr: int) -> None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            v = self._vmas[i]
            if v.start < addr < v.end:
                tail = Vma(addr, v.end, v.prot, v.name, v.offset + (addr - v.start) if v.is_file else 0)
                v.end = addr
                self._vmas.insert(i + 1, tail)
                self._starts.insert(i + 1, addr)

    def _span(self, a: int, e: int) -> tuple[int, int]:
        """Indices [i, j) of the vmas overlapping [a, e)."""
        i = bisect.bisect_right(self._starts, a) - 1
        if i < 0 or self._vmas[i].end <= a:
            i += 1
        j = bisect.bisect_left(self._starts, e)
        return i, j

    def _merge(self, i0: int, i1: int) -> None:
        """Merge neighbours among vmas i0 .. i1 where Linux would."""
        k = min(i1, len(self._vmas) - 1) - 1
        while k >= max(i0, 0):
            if self._vmas[k].mergeable(self._vmas[k + 1]):
                self._vmas[k].end = self._vmas[k + 1].end
                del self._vmas[k + 1], self._starts[k + 1]
            k -= 1

    def _overlaps(self, a: int, e: int) -> bool:
        i, j = self._span(a, e)
        return i < j

    def mappings(self) -> list[tuple[int, int, int, str]]:
        """(start, end, prot, name) of every mapping, ascending, like /proc/self/maps."""
        return [(v.start, v.end, v.prot, v.name) for v in self._vmas]

    def vmas(self) -> list[Vma]:
        """Copies of the mappings with their file offsets."""
        return [Vma(v.start, v.end, v.prot, v.name, v.offset) for v in self._vmas]

    # ------------------------------------------------------------------ primitive map / unmap
    def _unmap(self, a: int, e: int) -> None:
        """Unmap [a, e) (page aligned): pages become PROT_NONE zero pages, code there is stale."""
        i, j = self._span(a, e)
        if i == j:
            return
        self._split(a)
        self._split(e)
        i, j = self._span(a, e)
        gone = self._vmas[i:j]
        del self._vmas[i:j], self._starts[i:j]
        for v in gone:
            p0, p1 = v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT
            self._notify_code(p0, p1)
            hostmm.discard(self.base + v.start, v.end - v.start)
            self._pt[p0:p1] = bytes(p1 - p0)
            self._refresh(p0, p1)

    def _map(self, a: int, e: int, prot: int, name: str = "", offset: int = 0, data: bytes = b"") -> None:
        """Map the free range [a, e) (page aligned) with zero pages, then `data` at a."""
        p0, p1 = a >> PAGE_SHIFT, e >> PAGE_SHIFT
        if data:
            hostmm.protect(self.base + a, len(data), hostmm.PROT_READ | hostmm.PROT_WRITE)
            self.view[a:a + len(data)] = data
        self._pt[p0:p1] = bytes([_MAPPED | (prot & _PROT_BITS)]) * (p1 - p0)
        self._sync_host(p0, p1)
        self._refresh(p0, p1)
        i = bisect.bisect_left(self._starts, a)
        self._vmas.insert(i, Vma(a, e, prot & _PROT_BITS, name, offset if name.startswith("/") else 0))
        self._starts.insert(i, a)
        self._merge(i - 1, i + 1)

    def _protect(self, a: int, e: int, prot: int) -> None:
        """Set the protection of the mapped range [a, e) (page aligned, no holes)."""
        self._split(a)
        self._split(e)
        i, j = self._span(a, e)
        for v in self._vmas[i:j]:
            v.prot = prot
        prot_t = _table(lambda v: (v & ~_PROT_BITS) | prot if v & _MAPPED else v)
        self._retable(a >> PAGE_SHIFT, e >> PAGE_SHIFT, prot_t, host=True)
        self._merge(i - 1, j)

    def map_fixed(self, addr: int, length: int, prot: int, name: str = "", offset: int = 0) -> None:
        """A zero-filled mapping at [addr, addr + length) replacing whatever was there."""
        if addr & PAGE_MASK or addr < 0 or length <= 0 or addr + length > self.size:
            raise ValueError(f"map_fixed(0x{addr:x}, 0x{length:x}): not a page-aligned range of the space")
        e = _page_up(addr + length)
        self._unmap(addr, e)
        self._map(addr, e, prot, name, offset)

    # ------------------------------------------------------------------ address choice
    def _gaps(self, bottom: int, top: int) -> list[tuple[int, int]]:
        """Free ranges inside [bottom, top), ascending."""
        out = []
        cur = bottom
        i, j = self._span(bottom, top)
        for v in self._vmas[i:j]:
            if v.start > cur:
                out.append((cur, v.start))
            cur = max(cur, v.end)
        if cur < top:
            out.append((cur, top))
        return out

    def _choose(self, length: int, hint: int, low32: bool = False) -> int:
        """Where a non-fixed mapping goes: the hint if free, else top-down below mmap_base
        (then anywhere), as Linux does; -1 if nothing fits."""
        if hint:
            hint = max(hint & ~PAGE_MASK, MMAP_MIN_ADDR)
            if hint + length <= self.size and not self._overlaps(hint, hint + length):
                return hint
        if low32:  # MAP_32BIT: x86-64 Linux searches [1 GiB, 2 GiB) bottom-up
            for lo, hi in self._gaps(1 << 30, min(1 << 31, self.size)):
                if hi - lo >= length:
                    return lo
            return -1
        for top in (min(self.mmap_base, self.size), self.size):
            for lo, hi in reversed(self._gaps(MMAP_MIN_ADDR, top)):
                if hi - lo >= length:
                    return hi - length
        return -1

    # ------------------------------------------------------------------ the Linux calls
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
        """Linux mmap; fd is a host file descriptor (the syscall layer translates guest fds).

        MAP_PRIVATE file mappings are copies of the file's bytes. MAP_SHARED file mappings are
        the host's own shared mapping of the file at the guest address, so writes reach the
        file and other mappers, as on Linux. Pages past the end of the file read as zero
        instead of raising SIGBUS (they are not part of the host file mapping: Python touching
        them would take the SIGBUS itself).
        """
        if offset & PAGE_MASK or offset < 0:
            return -errno.EINVAL
        anon = bool(flags & MAP_ANONYMOUS)
        name = ""
        if not anon:
            try:
                st = os.fstat(fd)
                acc = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
            except (OSError, ValueError, OverflowError):
                return -errno.EBADF
        if length == 0:
            return -errno.EINVAL
        mtype = flags & MAP_TYPE
        if mtype not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            return -errno.EINVAL
        length = _page_up(length)
        if length > self.size:
            return -errno.ENOMEM
        data = b""
        if not anon:
            if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 5:
                anon = True  # /dev/zero is an anonymous mapping
            elif not stat.S_ISREG(st.st_mode):
                return -errno.ENODEV
            elif acc == os.O_WRONLY:
                return -errno.EACCES
            elif mtype != MAP_PRIVATE and prot & PROT_WRITE and acc != os.O_RDWR:
                return -errno.EACCES
            if not anon:
                try:
                    data = os.pread(fd, length, offset)
                except OSError as e:
                    return -(e.errno or errno.EIO)
                try:
                    name = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    name = "/?"
                if not name.startswith("/"):
                    name = "/" + name  # "anon_inode:..." etc: still a file mapping
        if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            a = addr
            if a & PAGE_MASK:
                return -errno.EINVAL
            if a < 0 or a + length > self.size:
                return -errno.ENOMEM
            if a < MMAP_MIN_ADDR:
                return -errno.EPERM
            if flags & MAP_FIXED_NOREPLACE and self._overlaps(a, a + length):
                return -errno.EEXIST
        else:
            a = self._choose(length, addr if 0 < addr < self.size else 0, bool(flags & MAP_32BIT))
            if a < 0:
                return -errno.ENOMEM
        self._unmap(a, a + length)
        if not anon and mtype != MAP_PRIVATE:
            return self._map_shared(a, length, prot, name, fd, offset, st.st_size)
        self._map(a, a + length, prot, name, offset, data)
        return a

    def _map_shared(self, a: int, length: int, prot: int, name: str, fd: int, offset: int, fsize: int) -> int:
        """Map [a, a + length) as the host's MAP_SHARED mapping of fd (the file's pages only)."""
        file_len = min(length, max(0, _page_up(fsize - offset)))
        self._map(a, a + length, prot, name, offset)
        if file_len:
            try:
                hostmm.mmap(self.base + a, file_len, hostmm.PROT_NONE,
                            hostmm.MAP_SHARED | hostmm.MAP_FIXED, fd, offset)
            except OSError as e:
                self._unmap(a, a + length)
                return -(e.errno or errno.ENOMEM)
            self._sync_host(a >> PAGE_SHIFT, (a + file_len) >> PAGE_SHIFT)
        return a

    def munmap(self, addr: int, length: int) -> int:
        if addr & PAGE_MASK or addr < 0 or addr > self.size or length > self.size - addr:
            return -errno.EINVAL
        length = _page_up(length)
        if length == 0:
            return -errno.EINVAL
        self._unmap(addr, addr + length)
        return 0

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        """Linux mprotect: on a hole, the mapped part before it is changed and ENOMEM returned."""
        if addr & PAGE_MASK or addr < 0:
            return -errno.EINVAL
        if prot & ~(_PROT_BITS | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP) or (
                prot & PROT_GROWSDOWN and prot & PROT_GROWSUP):
            return -errno.EINVAL
        if length == 0:
            return 0
        e = _page_up(addr + length)
        if e <= addr:
            return -errno.ENOMEM
        prot &= _PROT_BITS
        # the mapped prefix of [addr, e)
        i, j = self._span(addr, min(e, self.size))
        cur = addr
        while i < j and self._vmas[i].start <= cur:
            cur = self._vmas[i].end
            i += 1
        stop = min(cur, e)
        if stop > addr:
            self._protect(addr, stop, prot)
        return 0 if stop >= e else -errno.ENOMEM

    def mremap(self, old: int, old_len: int, new_len: int, flags: int, new_addr: int = 0) -> int:
        """Linux mremap, with its order of checks (a shrink may span several mappings, a grow or
        a move may not)."""
        if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) or old & PAGE_MASK or old < 0:
            return -errno.EINVAL
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) and not flags & MREMAP_MAYMOVE:
            return -errno.EINVAL
        if flags & MREMAP_DONTUNMAP and old_len != new_len:
            return -errno.EINVAL
        old_len, new_len = _page_up(old_len), _page_up(new_len)
        if new_len == 0:
            return -errno.EINVAL
        if flags & MREMAP_FIXED:
            if new_addr & PAGE_MASK or not 0 <= new_addr <= self.size - new_len:
                return -errno.EINVAL
            if new_addr < old + old_len and old < new_addr + new_len:
                return -errno.EINVAL
        v = self._vma_at(old)
        if v is None:
            return -errno.EFAULT
        keep = bool(flags & MREMAP_DONTUNMAP)
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP):
            if old_len == 0:
                return -errno.EINVAL
            if old + min(old_len, new_len) > v.end:  # checked before anything is unmapped
                # Linux 6.17+ moves several mappings at once, but only as a pure move: fixed
                # target, same length
                if not flags & MREMAP_FIXED or old_len != new_len:
                    return -errno.EFAULT
                i, j = self._span(old, old + old_len)
                pieces = [Vma(max(u.start, old), min(u.end, old + old_len), u.prot, u.name,
                              u.offset + (max(u.start, old) - u.start) if u.is_file else 0)
                          for u in self._vmas[i:j]]
                for u in pieces:  # each replaces its part of the target; the rest stays as it was
                    self._move(u, u.start, u.end - u.start, new_addr + (u.start - old), u.end - u.start, keep)
                return new_addr
            if flags & MREMAP_FIXED:
                self._unmap(new_addr, new_addr + new_len)
            if old_len > new_len:
                self._unmap(old + new_len, old + old_len)
                old_len = new_len
            v = self._vma_at(old)
            if not flags & MREMAP_FIXED:
                new_addr = self._choose(new_len, new_addr if 0 < new_addr < self.size else 0)
                if new_addr < 0:
                    return -errno.ENOMEM
            self._move(v, old, old_len, new_addr, new_len, keep)
            return new_addr
        if old_len >= new_len:  # always allowed: unmaps the tail, whatever is mapped there
            self._unmap(old + new_len, old + old_len)
            return old
        if old_len == 0:  # would duplicate a shared mapping; private ones refuse
            return -errno.EINVAL
        if old + old_len > v.end:
            return -errno.EFAULT
        end = old + new_len
        if old + old_len == v.end and end <= self.size and not self._overlaps(v.end, end):
            off = v.offset + (v.end - v.start) if v.is_file else 0
            self._map(v.end, end, v.prot, v.name, off)
            return old
        if not flags & MREMAP_MAYMOVE:
            return -errno.ENOMEM
        a = self._choose(new_len, 0)
        if a < 0:
            return -errno.ENOMEM
        self._move(v, old, old_len, a, new_len, False)
        return a

    def _vma_at(self, addr: int) -> Vma | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        return self._vmas[i] if i >= 0 and addr < self._vmas[i].end else None

    def _move(self, v: Vma, old: int, old_len: int, new: int, new_len: int, keep_old: bool) -> None:
        """Move [old, old + old_len) of vma v to new (growing to new_len with zero pages)."""
        po0, po1 = old >> PAGE_SHIFT, (old + old_len) >> PAGE_SHIFT
        hostmm.protect(self.base + old, old_len, hostmm.PROT_READ)
        data = self.view[old:old + old_len].tobytes()
        self._sync_host(po0, po1)
        prot, name = v.prot, v.name
        offset = v.offset + (old - v.start) if v.is_file else 0
        self._unmap(new, new + new_len)
        self._unmap(old, old + old_len)
        if keep_old:  # MREMAP_DONTUNMAP: the old range stays mapped, its pages empty
            self._map(old, old + old_len, prot, name, offset)
        self._map(new, new + new_len, prot, name, offset, data)

    def set_brk_base(self, addr: int) -> None:
        self.brk_start = self.brk_cur = _page_up(addr)

    def brk(self, new: int) -> int:
        """Linux brk: returns the new break, or the unchanged one when the request fails."""
        cur = self.brk_cur
        if new < self.brk_start or new > self.size:
            return cur
        old_top, new_top = _page_up(cur), _page_up(new)
        if new_top < old_top:
            self._unmap(new_top, old_top)
        elif new_top > old_top:
            # Linux also wants one free page above the new break
            if new_top + PAGE > self.size or self._overlaps(old_top, new_top + PAGE):
                return cur
            self._map(old_top, new_top, PROT_READ | PROT_WRITE, "[heap]")
        self.brk_cur = new
        return new
