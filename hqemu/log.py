"""The -d / -D log: named items, one destination.

    >>> log = Log({"in_asm", "unimp"}, path="")   # "" = stderr
    >>> if log.on("unimp"): log.write("unknown syscall 999")
"""

from __future__ import annotations

import sys
from typing import TextIO


class Log:
    def __init__(self, items: set[str], path: str = ""):
        self.items = frozenset(items)
        self._path = path
        self._f: TextIO | None = None

    def on(self, item: str) -> bool:
        return item in self.items

    def write(self, line: str) -> None:
        if self._f is None:
            self._f = open(self._path, "a", buffering=1) if self._path else sys.stderr
        self._f.write(line if line.endswith("\n") else line + "\n")

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()
