"""Tables of a SuiteResult: times, ratios against native and qemu with geometric means per group,
and for hqemu's LLVM modes the native share and compile latency per stage. Markdown, so a run
pastes into docs/performance.md as it is.

    >>> print(format_report(run_suite(...)))

Times are the best of the repetitions (the least disturbed run on a shared machine); a ratio
below 1 means hqemu took less time than the other configuration.
"""

from __future__ import annotations

import math

from .runner import Cell, SuiteResult, median_stats, spread

GROUPS = ("INT", "FP")  # the groups with geometric means; START is the fixed-cost baseline
# Issue 4's targets: hqemu/qemu time ratio at most this, per group
TARGETS = {"INT": 1.0, "FP": 1 / 3}


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def _group_mean(ratio: dict[str, float], members: list[str]) -> str:
    # a mean over part of a group would compare different kernel sets: only over all of it
    return f"{geomean([ratio[m] for m in members]):.2f}" if all(m in ratio for m in members) else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                                 enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return [line(header), sep, *(line(r) for r in rows)]


def _time(cell: Cell) -> str:
    if cell.error:
        return "FAIL"
    if not cell.samples:
        return "-"
    sp = spread(cell)
    return f"{cell.best:.2f}" + (f" ±{50 * sp:.0f}%" if sp >= 0.05 else "")


def ratios(r: SuiteResult, hq: str, base: str, steady: bool = False) -> dict[str, float]:
    """workload -> best time of hq / best time of base, where both succeeded.

    steady: each time minus its configuration's time on the startup workload first, which
    estimates the ratio once both emulators are warm (start-up and glibc's start-up removed).
    """
    start = r.cells.get("startup", {}) if steady else {}
    if steady and not (start.get(hq) and start[hq].ok and start.get(base) and start[base].ok):
        return {}
    out = {}
    for w in r.workloads:
        a, b = r.cells[w.name].get(hq), r.cells[w.name].get(base)
        if a and b and a.ok and b.ok and w.group in GROUPS:
            ta, tb = a.best, b.best
            if steady:
                ta, tb = ta - start[hq].best, tb - start[base].best
                if ta <= 0 or tb <= 0:
                    continue
            out[w.name] = ta / tb
        elif a and b and a.ok and b.ok and not steady:
            out[w.name] = a.best / b.best
    return out


def format_report(r: SuiteResult) -> str:
    names = [c.name for c in r.configs]
    hq = [c.name for c in r.configs if c.kind == "hqemu"]
    bases = [b for b in ("native", "qemu") if b in names]
    pairs = [(h, b) for h in hq for b in bases]
    ratio = {p: ratios(r, *p) for p in pairs}
    steady = {(h, "qemu"): ratios(r, h, "qemu", steady=True) for h in hq if "qemu" in names}
    steady = {p: v for p, v in steady.items() if v}

    def short(n: str) -> str:
        return n.removeprefix("hqemu-")

    head = ["kernel", "group", *(f"{n} s" for n in names), *(f"{short(h)}/{b}" for h, b in pairs),
            *(f"{short(h)}/qemu warm" for h, _ in steady)]
    rows = []
    for w in r.workloads:
        cells = r.cells[w.name]
        rows.append([w.name, w.group, *(_time(cells[n]) for n in names),
                     *(f"{ratio[p][w.name]:.2f}" if w.name in ratio[p] else "-" for p in pairs),
                     *(f"{steady[p][w.name]:.2f}" if w.name in steady[p] else "-" for p in steady)])
    for g in GROUPS:
        members = [w.name for w in r.workloads if w.group == g]
        if not members:
            continue
        rows.append([f"geomean {g}", g, *("" for _ in names),
                     *(_group_mean(ratio[p], members) for p in pairs),
                     *(_group_mean(steady[p], members) for p in steady)])
    out = [f"size {r.size}, {r.reps} repetition(s), best wall time in seconds of the whole process "
           f"(± half the range of the repetitions when >= 5%); ratio < 1: hqemu faster; "
           f"'warm': both times minus their startup time", "", *_table(head, rows)]

    if "qemu" in names:
        out.append("")
        for h in hq:
            for g in GROUPS:
                members = [w.name for w in r.workloads if w.group == g]
                vals = [ratio[(h, "qemu")][m] for m in members if m in ratio[(h, "qemu")]]
                if members and len(vals) == len(members):
                    gm, target = geomean(vals), TARGETS[g]
                    verdict = "met" if gm <= target else "NOT met"
                    out.append(f"target {g}: {short(h)}/qemu geomean {gm:.2f}, "
                               f"wanted <= {target:.2f}: {verdict}")

    stat_rows, stages = [], []
    for w in r.workloads:
        for h in hq:
            st = median_stats(r.cells[w.name][h])
            for s in st.get("compile_ms", {}):
                if s not in stages:
                    stages.append(s)
    for w in r.workloads:
        for h in hq:
            st = median_stats(r.cells[w.name][h])
            if not st:
                continue
            comp = st.get("compile_ms", {})
            stat_rows.append([w.name, short(h),
                              f"{st['native_pct']:.2f}" if "native_pct" in st else "-",
                              str(st.get("traces", "-")), str(st.get("misses", "-")),
                              f"{st['translate_s']:.2f}" if "translate_s" in st else "-",
                              *(f"{comp[s]['p50_ms']:.1f} / {comp[s]['p90_ms']:.1f}" if s in comp else "-"
                                for s in stages)])
    if stat_rows:
        out += ["", "hqemu -d stats of the median run: native share of guest instructions, traces installed, "
                "returns to Python on a dispatch miss, quick-tier translation seconds, and compile latency "
                "per trace p50 / p90 in ms per stage", "",
                *_table(["kernel", "mode", "native %", "traces", "misses", "quick xlate s",
                         *(f"{s} ms" for s in stages)], stat_rows)]
    failed = [(w.name, n, c.error) for w in r.workloads for n, c in r.cells[w.name].items() if c.error]
    if failed:
        out += ["", "FAILURES (no time reported for these):"]
        out += [f"  {w} under {n}: {e}" for w, n, e in failed]
    return "\n".join(out)
