"""The SPEC-like suite: workloads found from the header blocks of bench/programs/*.c.

    >>> from bench.suite import discover
    >>> ws = discover()                     # [Workload(name='bzip2', group='INT', ...), ...]
    >>> ws[0].args["quick"], ws[0].doc

A workload file carries, near its top, one `// bench-KEY: value` line per key:

    // bench-group: INT
    // bench-quick: 3
    // bench-ref: 400
    // bench-doc: BWT + move-to-front + Huffman coding of generated text (like 401.bzip2)

group is INT or FP; quick and ref are the guest's argv[1:] (split on spaces) for the two sizes;
doc is one line. A file without any `// bench-` line is not a workload (bench/programs also
holds `make run`'s demo programs); a file with some but not all keys, an unknown or repeated
key, or another group is a SuiteError whose message names the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import runner
from .runner import Workload

KEYS = ("group", "quick", "ref", "doc")
GROUPS = ("INT", "FP")
HEADER_LINES = 80  # "near the top": a bench- line further down is ordinary text
_LINE = re.compile(r"^\s*//\s*bench-([\w-]*)\s*:(.*)$")
_NAME = re.compile(r"^[A-Za-z_][\w]*$")


class SuiteError(ValueError):
    """A malformed workload header; str() is one line naming the file."""


def parse_header(path: Path) -> Workload | None:
    """The workload a C file declares, None when it declares none."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()[:HEADER_LINES]
    except OSError as e:
        raise SuiteError(f"{path}: cannot read: {e.strerror}") from None
    found: dict[str, str] = {}
    for no, text in enumerate(lines, 1):
        m = _LINE.match(text)
        if not m:
            continue
        key, value = m[1], m[2].strip()
        if key not in KEYS:
            raise SuiteError(f"{path}:{no}: unknown key 'bench-{key}' (known: {', '.join(KEYS)})")
        if key in found:
            raise SuiteError(f"{path}:{no}: 'bench-{key}' given twice")
        found[key] = value
    if not found:
        return None
    missing = [k for k in KEYS if k not in found]
    if missing:
        raise SuiteError(f"{path}: header lacks {', '.join('bench-' + k for k in missing)}")
    if found["group"] not in GROUPS:
        raise SuiteError(f"{path}: bench-group is '{found['group']}', wanted one of {', '.join(GROUPS)}")
    if not found["doc"]:
        raise SuiteError(f"{path}: bench-doc is empty")
    name = Path(path).stem
    if not _NAME.match(name):
        raise SuiteError(f"{path}: '{name}' is not a usable workload name (letters, digits, _)")
    return Workload(name, found["group"], Path(path),
                    {"quick": found["quick"].split(), "ref": found["ref"].split()}, found["doc"],
                    suite="spec")


def discover(folder: Path | None = None) -> list[Workload]:
    """Every workload of the folder (default bench/programs), INT before FP, by name within a group."""
    ws = [w for p in sorted(Path(folder or runner.PROGRAMS).glob("*.c")) if (w := parse_header(p))]
    return sorted(ws, key=lambda w: (GROUPS.index(w.group), w.name))
