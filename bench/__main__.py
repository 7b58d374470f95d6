"""`python -m bench`: the SPEC-like programs (or issue 4's kernels) under native, qemu-x86_64 and
hqemu's modes: tables of time ratios, an SVG chart, pyperf JSON.

    $ .venv/bin/python -m bench [--suite spec|kernels] [--size quick|short|ref] [--only NAME,...]
                                [--configs native,qemu,hybridm,...] [--reps N] [--chart FILE]
                                [--list] [--report FILE]

Exits 1 if any run failed or printed a wrong checksum (the failures are listed loudly at the end),
2 on a malformed workload header. Results: build/bench/[kernels-]results-<size>-<time>.json,
[kernels-]latest-<size>.json, [kernels-]pyperf-<size>-<config>.json, [kernels-]chart-<size>.svg.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .chart import write_chart
from .report import format_report
from .runner import (
    CONFIGS,
    OUT,
    SIZES,
    WORKLOADS,
    Workload,
    config_named,
    default_configs,
    load,
    prefix,
    run_suite,
    save,
)
from .suite import SuiteError, discover


def workloads_of(suite: str) -> dict[str, Workload]:
    if suite == "kernels":
        return dict(WORKLOADS)
    return {w.name: w for w in discover()}


def main(argv: list[str] | None = None) -> int:
    first_paragraph = " ".join(__doc__.split("\n\n")[0].split())
    ap = argparse.ArgumentParser(prog="python -m bench", description=first_paragraph)
    ap.add_argument("--suite", choices=("spec", "kernels"), default="spec",
                    help="spec: bench/programs (issue 6, default); kernels: bench/kernels (issue 4)")
    ap.add_argument("--size", choices=SIZES, default="ref",
                    help="ref (default): ~2.5 s natively; quick: a smoke run; short (kernels only): "
                    "the first reference size, ~0.3-0.5 s natively, dominated by hqemu's start-up")
    ap.add_argument("--only", default="", help="comma list of workloads (default: all)")
    ap.add_argument("--configs", default="",
                    help=f"comma list of {', '.join(CONFIGS)} (hqemu- may be left out); default: all at "
                    "the spec suite's quick size, else native,qemu,hqemu-hybridm")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per cell (default: 1 quick, 2 ref)")
    ap.add_argument("--chart", metavar="FILE",
                    help="also write the SVG chart here (e.g. docs/performance-quick.svg)")
    ap.add_argument("--list", action="store_true", help="list workloads and configurations, then exit")
    ap.add_argument("--report", metavar="FILE", help="print the tables of a saved results JSON (and write "
                    "--chart if given), run nothing")
    a = ap.parse_args(argv)
    if a.report:
        result = load(Path(a.report))
        print(format_report(result))
        if a.chart:
            print(f"chart: {write_chart(result, Path(a.chart))}")
        return 0
    try:
        known = workloads_of(a.suite)
    except SuiteError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    if any(a.size not in w.args for w in known.values()):
        ap.error(f"the {a.suite} suite has no size {a.size} (the kernels have short)")
    if a.list:
        for w in known.values():
            sizes = " ".join(f"{k} {' '.join(v):<9}" for k, v in w.args.items())
            print(f"{w.name:<11} {w.group:<5} {sizes} {w.doc}")
        for c in CONFIGS.values():
            print(f"{c.name:<16} {c.doc}" + (f" [unavailable: {why}]" if (why := c.unavailable()) else ""))
        return 0
    names = [n for n in a.only.split(",") if n] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not names:
        print(f"bench: no workloads in the {a.suite} suite", file=sys.stderr)
        return 2
    wanted = a.configs.split(",") if a.configs else default_configs(a.suite, a.size)
    configs = [config_named(n) for n in wanted if n]
    if "native" not in [c.name for c in configs]:
        configs.insert(0, CONFIGS["native"])  # the reference of every ratio
    reps = a.reps or (1 if a.size == "quick" else 2)
    result = run_suite([known[n] for n in names], configs, a.size, reps, suite=a.suite)
    path = save(result)
    print()
    print(format_report(result))
    chart = write_chart(result, OUT / f"{prefix(a.suite)}chart-{a.size}.svg")
    if a.chart:
        shutil.copyfile(chart, a.chart)
    print(f"\nresults: {path}\nchart: {chart}" + (f" and {a.chart}" if a.chart else ""))
    return 1 if any(c.error for cells in result.cells.values() for c in cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
