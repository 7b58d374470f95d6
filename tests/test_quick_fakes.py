"""A small stand-in for the runtime Env and GuestMemory, for quick-tier tests (no tests here).

    >>> env = FakeEnv.new(pages=16)          # guest pages 0..15, all read/write
    >>> env.mem.protect(3, 0)                # page 3 now unmapped: accesses fault

It follows the GuestMemory contract the quick tier relies on: view, fast_r, fast_w, load,
store (checked, raising GuestFault), so tests need no host reservation.
"""

from __future__ import annotations

import struct

from hqemu.errors import GuestFault
from hqemu.frontends.x86_64.cpu import LAYOUT, X86State
from hqemu.stats import Stats

PAGE = 4096
R, W = 1, 2


class FakeMemory:
    def __init__(self, pages: int):
        self.size = pages * PAGE
        self.buf = bytearray(self.size)
        self.view = memoryview(self.buf)
        self.prot = [R | W] * pages
        self.fast_r = bytearray(pages)
        self.fast_w = bytearray(pages)
        self.code_pages: set[int] = set()
        self._refresh()

    def protect(self, page: int, prot: int) -> None:
        self.prot[page] = prot
        self._refresh()

    def _refresh(self) -> None:
        n = len(self.prot)
        for p in range(n):
            both = [self.prot[p], self.prot[p + 1] if p + 1 < n else 0]
            self.fast_r[p] = all(x & R for x in both)
            code = p in self.code_pages or p + 1 in self.code_pages
            self.fast_w[p] = all(x & W for x in both) and not code

    def _check(self, addr: int, n: int, bit: int) -> None:
        for a in (addr, addr + n - 1):
            if a >= self.size or not self.prot[a // PAGE] & bit:
                raise GuestFault(a if a >= addr else addr, bit == W)

    def load(self, addr: int, n: int) -> int:
        self._check(addr, n, R)
        return int.from_bytes(self.buf[addr:addr + n], "little")

    def store(self, addr: int, n: int, value: int) -> None:
        self._check(addr, n, W)
        self.buf[addr:addr + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")

    def read(self, addr: int, n: int) -> bytes:
        self._check(addr, n, R)
        return bytes(self.buf[addr:addr + n])

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data), W)
        self.buf[addr:addr + len(data)] = data


class FakeEnv:
    """Just what generated code and the reference interpreter touch."""

    def __init__(self, mem: FakeMemory, words: list[int] | None = None):
        self.mem = mem
        self.cpu = X86State()
        self.state = memoryview(self.cpu).cast("B").cast("Q")
        if words is not None:
            self.state[:len(words)] = memoryview(struct.pack(f"<{len(words)}Q", *words)).cast("Q")
        self.stats = Stats()
        self.syscalls: list[int] = []
        self.do_syscall = self._syscall

    @classmethod
    def new(cls, pages: int = 16) -> FakeEnv:
        return cls(FakeMemory(pages))

    @classmethod
    def window(cls, base: int, size: int, data: bytes, words: list[int]) -> FakeEnv:
        """Guest pages [base, base + size) read/write holding data; every other page unmapped,
        including one after the window (so its last page takes the slow path)."""
        first, end = base // PAGE, (base + size + PAGE - 1) // PAGE
        mem = FakeMemory(end + 1)
        for p in range(end + 1):
            mem.prot[p] = R | W if first <= p < end else 0
        mem._refresh()
        mem.buf[base:base + len(data)] = data
        return cls(mem, words)

    def _syscall(self, pc: int) -> int:
        self.syscalls.append(pc)
        return pc

    def reg(self, name: str) -> int:
        return self.state[LAYOUT[name].offset >> 3]

    def set_reg(self, name: str, value: int) -> None:
        self.state[LAYOUT[name].offset >> 3] = value
