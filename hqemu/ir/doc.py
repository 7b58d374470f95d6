"""Writes the op-table section of docs/ir.md from OPS, so the documentation cannot drift.

    $ python -m hqemu.ir.doc            # rewrite docs/ir.md between the ops markers
    $ python -m hqemu.ir.doc --check    # exit 1 if docs/ir.md is out of date

The section lies between `<!-- ops:begin -->` and `<!-- ops:end -->`; the prose around it is
written by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .ops import OPS, F

BEGIN, END = "<!-- ops:begin -->", "<!-- ops:end -->"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "ir.md"


def _flags(f: F) -> str:
    names = [m.name.lower() for m in F if m and m.name != "NONE" and m in f]
    return " ".join(names) if names else "-"


def _count(n: int) -> str:
    return "any" if n < 0 else str(n)


def op_table() -> str:
    """The generated section, markers excluded."""
    rows = ["| op | out | in | consts | flags | meaning |", "|---|---|---|---|---|---|"]
    for d in OPS.values():
        doc = d.doc.replace("|", "\\|")
        rows.append(f"| `{d.name}` | {_count(d.n_out)} | {_count(d.n_in)} | {' '.join(d.consts)} "
                    f"| {_flags(d.flags)} | {doc} |")
    return "\n".join(rows)


def render(text: str) -> str:
    """text with its op-table section replaced by the current one."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC_PATH} lacks the {BEGIN} ... {END} markers")
    return text[: start + len(BEGIN)] + "\n" + op_table() + "\n" + text[end:]


def main(argv: list[str]) -> int:
    text = DOC_PATH.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC_PATH} is out of date: run python -m hqemu.ir.doc", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC_PATH.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
