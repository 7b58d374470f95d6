"""-perfmap: name hqemu's native code for `perf report` in /tmp/perf-PID.map, as QEMU and Instrew do.

    >>> pm = PerfMap(symbolize=syms.lookup)            # opens /tmp/perf-<pid>.map on first add
    >>> addr = native().load(co.obj, co.entry)
    >>> pm.add_object(addr, co.obj, co.entry, unit_name("trace", 3, 0x401130))
    >>> pm.close()

perf's JIT interface (tools/perf/Documentation/jit-interface.txt): one "START SIZE name" line
per code range, START and SIZE in hex without 0x, the name the rest of the line. perf reads
the file when it reports, so entries must reach the file while the guest runs: every line is
flushed at once (an install is rare next to the code it names). The size of a unit is its
entry function's st_size in the object's symbol table, where MCJIT loaded the function at the
address get_function_address gave. The file is truncated when opened: a pid is reused, and a
stale map from an earlier process would name the wrong code. A /tmp that cannot be written
costs one warning line, never the guest.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection


def default_path(pid: int | None = None) -> str:
    return f"/tmp/perf-{os.getpid() if pid is None else pid}.map"


def object_symbol_size(obj: bytes, name: str) -> int:
    """st_size of the function `name` defined in the relocatable ELF object `obj`; 0 if absent."""
    try:
        elf = ELFFile(io.BytesIO(obj))
        for sec in elf.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.get_symbol_by_name(name) or ():
                    if sym["st_shndx"] != "SHN_UNDEF":
                        return int(sym["st_size"])
    except (ELFError, ValueError):
        pass
    return 0


def unit_name(kind: str, serial: int, pc: int, symbol: str | None = None) -> str:
    """'hqemu-trace-3@0x401130 main+0x20': the kind and serial of the unit, its guest pc, and
    the guest function holding that pc when the ELF has symbols."""
    base = f"hqemu-{kind}-{serial}@0x{pc:x}"
    return f"{base} {symbol}" if symbol else base


class PerfMap:
    """Appends named code ranges to a perf map file; any thread may add."""

    def __init__(self, path: str | None = None, symbolize: Callable[[int], str | None] | None = None,
                 warn: Callable[[str], None] | None = None):
        self.path = path or default_path()
        self.symbolize = symbolize  # guest pc -> 'func+0xoff' or None
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.entries = 0  # lines written
        self._f: TextIO | None = None
        self._failed = False  # the file could not be opened or written: stay quiet from now on
        self._lock = threading.Lock()

    def symbol(self, pc: int) -> str | None:
        if self.symbolize is None:
            return None
        try:
            return self.symbolize(pc)
        except Exception:  # noqa: BLE001 - a name is a nicety, never worth a failed install
            return None

    def add(self, start: int, size: int, name: str) -> None:
        """One line: code at host address `start`, `size` bytes, called `name`."""
        line = f"{start:x} {size:x} {name}\n"
        with self._lock:
            if self._failed:
                return
            try:
                if self._f is None:
                    self._f = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
                self._f.write(line)
                self._f.flush()
                self.entries += 1
            except OSError as e:
                self._failed = True
                self.warn(f"hqemu: -perfmap: cannot write {self.path}: {e.strerror or e}")

    def add_object(self, addr: int, obj: bytes, entry: str, name: str) -> int:
        """Name the function `entry` of a loaded object (at `addr`); its size (0: unknown, not
        written, as perf would give the whole rest of the space to it)."""
        size = object_symbol_size(obj, entry)
        if size:
            self.add(addr, size, name)
        return size

    def add_unit(self, kind: str, serial: int, pc: int, addr: int, obj: bytes, entry: str) -> int:
        """add_object with the standard name for a unit of guest code at pc."""
        return self.add_object(addr, obj, entry, unit_name(kind, serial, pc, self.symbol(pc)))

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                try:
                    self._f.close()
                except OSError:
                    pass
                self._f = None


__all__ = ["PerfMap", "default_path", "object_symbol_size", "unit_name"]
