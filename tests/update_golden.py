"""Golden IR files: tests/ir/*.ir hold an input unit, a line `; expect`, and the expected text
of the unit after passes.optimize. This script rewrites the expectations; the lead's
`make golden` calls it. Review the diff before committing: it is the test.

    $ python tests/update_golden.py                 # every tests/ir/*.ir
    $ python tests/update_golden.py tests/ir/dse.ir  # just these
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from hqemu.frontends.x86_64.cpu import LAYOUT as X86_LAYOUT  # noqa: E402
from hqemu.ir.passes import optimize  # noqa: E402
from hqemu.ir.text import format_unit, parse_unit  # noqa: E402
from hqemu.ir.verify import verify  # noqa: E402

GOLDEN_DIR = ROOT / "tests" / "ir"
EXPECT = "; expect"
LAYOUTS = {"x86_64": X86_LAYOUT}

sys.path.insert(0, str(ROOT / "tests"))
import irgen  # noqa: E402, F401  (registers the irgen_* helpers the golden files call)


def split(text: str) -> tuple[str, str | None]:
    """(input part, expected part or None if the file has no `; expect` line yet)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\n") == EXPECT:
            return "".join(lines[:i]), "".join(lines[i + 1:])
    return text, None


def parse(text: str):
    isa = next(ln.split()[1] for ln in text.splitlines() if ln.startswith("unit "))
    unit = parse_unit(text, LAYOUTS.get(isa))
    verify(unit)
    return unit


def optimized(input_text: str) -> str:
    unit = optimize(parse(input_text))
    verify(unit)
    return format_unit(unit)


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(GOLDEN_DIR.glob("*.ir"))
    for p in paths:
        text = p.read_text()
        inp, old = split(text)
        if not inp.endswith("\n"):
            inp += "\n"
        new = optimized(inp)
        if new != old:
            p.write_text(inp + EXPECT + "\n" + new)
            print(f"updated {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
