"""Start-up cost with the persistent code cache: off, cold (an empty cache, filled at exit)
and warm (the cache of the previous run), per program and LLVM mode.

    $ .venv/bin/python -m bench.startup [--reps 3] [--modes none,hybridm] [PROGRAM [ARGS...]]

Default program: build/bench/startup (printf of one line: glibc's start-up is the whole run;
`python -m bench --only startup` builds it). Each cold run gets a fresh cache directory, so it
pays the translation and the write at exit; the warm run then uses what it wrote. The cache
directories are temporary: the user's ~/.cache is never read or written. Prints the best wall
time and the CPU time (user + sys of hqemu and its workers) of each, over --reps.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "build" / "bench" / "startup"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (which must succeed)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0, _children_cpu() - c0


def measure(program: list[str], mode: str, reps: int) -> dict[str, tuple[float, float]]:
    hqemu = [sys.executable, "-m", "hqemu", "-llvm-mode", mode]
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, got: tuple[float, float]) -> None:
        old = best.get(name)
        best[name] = got if old is None else (min(old[0], got[0]), min(old[1], got[1]))

    for _ in range(reps):
        keep("off", timed([*hqemu, "-code-cache", "", *program]))
        with tempfile.TemporaryDirectory(prefix="hqemu-bench-cache-") as d:
            keep("cold", timed([*hqemu, "-code-cache", d, *program]))
            keep("warm", timed([*hqemu, "-code-cache", d, *program]))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="none,hybridm")
    ap.add_argument("program", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    program = args.program or [str(DEFAULT)]
    if not Path(program[0]).exists():
        print(f"{program[0]} is missing (python -m bench --only startup builds it)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    subprocess.run(program, check=True, stdout=subprocess.DEVNULL)
    native = time.perf_counter() - t0
    print(f"{' '.join(program)}: native {native:.3f} s; best of {args.reps}, wall s / cpu s")
    print(f"{'mode':8} {'cache off':>15} {'cold':>15} {'warm':>15} {'warm/off':>9}")
    for mode in args.modes.split(","):
        b = measure(program, mode, args.reps)
        cells = [f"{b[k][0]:6.3f} / {b[k][1]:6.3f}" for k in ("off", "cold", "warm")]
        print(f"{mode:8} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {b['warm'][0] / b['off'][0]:9.2f}")
    return 0


if __name__ == "__main__":
    os.environ.pop("HQEMU_CODE_CACHE", None)  # the -code-cache of each run decides
    sys.exit(main())
