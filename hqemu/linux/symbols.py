"""Guest pc -> "function+0xoff", from the executable's ELF symbol table (pyelftools).

    >>> syms = Symbols("/path/to/prog", load_bias=0)
    >>> syms.lookup(0x401136)          # 'main+0x6', or None (no symbol covers the pc, stripped ELF)
    >>> symbols_for(env).lookup(pc)    # one table per guest process, read on first use

The table is read once, lazily (the status endpoint and the perf map ask for it only when
they name a trace), and is immutable afterwards, so any thread may look up. Only function
symbols with an address count; a pc past a symbol's size belongs to no symbol (padding, or
code of a stripped function), except for a size-0 symbol, which extends to the next one.
"""

from __future__ import annotations

import bisect
import struct
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

if TYPE_CHECKING:
    from hqemu.env import Env


class Symbols:
    def __init__(self, path: str, load_bias: int = 0):
        self.path = path
        self.load_bias = load_bias  # a static-pie's symbols are link addresses: add the bias
        self._starts: list[int] | None = None  # sorted guest addresses
        self._entries: list[tuple[int, int, str]] = []  # (start, size, name), same order
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._starts is not None:
                return
            best: dict[int, tuple[int, str]] = {}
            try:
                with open(self.path, "rb") as f:
                    elf = ELFFile(f)
                    for sec in elf.iter_sections():
                        if isinstance(sec, SymbolTableSection):
                            for name, addr, size in _functions(elf, sec):
                                # aliases share an address: keep the sized one with the shortest name
                                old = best.get(addr)
                                if old is None or (size, -len(name)) > (old[0], -len(old[1])):
                                    best[addr] = (size, name)
            except (OSError, ELFError, ValueError, struct.error):
                best = {}  # no symbols is an answer, never an error: the caller shows the pc
            self._entries = [(a + self.load_bias, s, n) for a, (s, n) in sorted(best.items())]
            self._starts = [e[0] for e in self._entries]

    def __len__(self) -> int:
        if self._starts is None:
            self._load()
        return len(self._entries)

    def lookup(self, pc: int) -> str | None:
        """'name' or 'name+0xoff' for the function holding pc, or None."""
        if self._starts is None:
            self._load()
        i = bisect.bisect_right(self._starts, pc) - 1
        if i < 0:
            return None
        start, size, name = self._entries[i]
        if size and pc >= start + size:
            return None
        off = pc - start
        return f"{name}+0x{off:x}" if off else name


STT_FUNC, STT_GNU_IFUNC = 2, 10
_SYM64 = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size


def _functions(elf: ELFFile, sec: SymbolTableSection) -> Iterator[tuple[str, int, int]]:
    """(name, address, size) of the function symbols of sec with an address.

    pyelftools builds one object per symbol (0.1 s per thousand); a 64-bit little-endian table
    is read with one struct pass instead, so a large static binary is named in milliseconds.
    """
    if elf.elfclass == 64 and elf.little_endian and sec["sh_entsize"] == _SYM64.size:
        strtab = elf.get_section(sec["sh_link"]).data()
        for name_off, info, _, _, value, size in _SYM64.iter_unpack(sec.data()):
            if info & 0xF in (STT_FUNC, STT_GNU_IFUNC) and value and name_off:
                end = strtab.find(b"\0", name_off)
                yield strtab[name_off:end].decode("utf-8", "replace"), value, size
        return
    for sym in sec.iter_symbols():
        kind = sym["st_info"]["type"]
        if kind in ("STT_FUNC", "STT_GNU_IFUNC") and sym.name and sym["st_value"]:
            yield sym.name, sym["st_value"], sym["st_size"]


def symbols_for(env: Env) -> Symbols:
    """The guest executable's symbols, one table per Env (created on first call)."""
    syms = env.extra.get("symbols")
    if syms is None:
        syms = env.extra.setdefault("symbols", Symbols(env.exe_path, env.load_bias))
    return syms
