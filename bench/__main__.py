"""`python -m bench`: loop-heavy kernels under native, qemu-x86_64 and hqemu's modes, one table.

    $ .venv/bin/python -m bench [--size quick|ref] [--only NAME,...] [--configs native,qemu,hybridm,...]
                                [--reps N] [--list] [--report FILE]

Exits 1 if any run failed or printed a wrong checksum (the failures are listed loudly at the end).
Results: build/bench/results-<size>-<time>.json, latest-<size>.json, pyperf-<size>-<config>.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .report import format_report
from .runner import CONFIGS, DEFAULT_CONFIGS, WORKLOADS, config_named, load, run_suite, save


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("quick", "ref"), default="ref")
    ap.add_argument("--only", default="", help="comma list of workloads (default: all)")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma list of {', '.join(CONFIGS)} (hqemu- may be left out)")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per cell (default: 1 quick, 2 ref)")
    ap.add_argument("--list", action="store_true", help="list workloads and configurations, then exit")
    ap.add_argument("--report", metavar="FILE", help="print the tables of a saved results JSON, run nothing")
    a = ap.parse_args(argv)
    if a.report:
        print(format_report(load(Path(a.report))))
        return 0
    if a.list:
        for w in WORKLOADS.values():
            print(f"{w.name:<11} {w.group:<5} quick {' '.join(w.args['quick']):<9} "
                  f"ref {' '.join(w.args['ref']):<9} {w.doc}")
        for c in CONFIGS.values():
            print(f"{c.name:<14} {c.doc}")
        return 0
    names = [n for n in a.only.split(",") if n] or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    configs = [config_named(n) for n in a.configs.split(",") if n]
    if any(c.kind == "qemu" for c in configs) and not shutil.which("qemu-x86_64"):
        print("qemu-x86_64 not found (apt-get install qemu-user): no qemu column", file=sys.stderr)
        configs = [c for c in configs if c.kind != "qemu"]
    reps = a.reps or (1 if a.size == "quick" else 2)
    result = run_suite([WORKLOADS[n] for n in names], configs, a.size, reps)
    path = save(result)
    print()
    print(format_report(result))
    print(f"\nresults: {path}")
    return 1 if any(c.error for cells in result.cells.values() for c in cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
