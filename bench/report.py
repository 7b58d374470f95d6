"""Tables of a SuiteResult: times, time ratios to native and hqemu/qemu with geometric means per
group, and where hqemu's time went (tier shares, traces, compile time, returns to Python).
Markdown, so a run pastes into docs/performance.md as it is.

    >>> print(format_report(run_suite(...)))
    >>> group_means(result, "native")["hqemu-hybridm"]["INT"]     # a geomean of time ratios

Times are the best of the repetitions (the least disturbed run on a shared machine); a ratio
below 1 means the first configuration took less time than the second.
"""

from __future__ import annotations

import math

from .runner import Cell, SuiteResult, median_stats, spread

GROUPS = ("INT", "FP")  # the groups with geometric means; START is the fixed-cost baseline
# Issue 4's targets for its kernels: hqemu/qemu time ratio at most this, per group
TARGETS = {"INT": 1.0, "FP": 1 / 3}


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def short(name: str) -> str:
    return name.removeprefix("hqemu-")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                                 enumerate(zip(cells, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return [line(header), sep, *(line(r) for r in rows)]


def _time(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    if cell.error:
        return "FAIL"
    if not cell.samples:
        return "-"
    sp, t = spread(cell), cell.best
    # native runs at the quick size take milliseconds: three significant digits, not 0.00
    return (f"{t:.2f}" if t >= 1 else f"{t:.3g}") + (f" ±{50 * sp:.0f}%" if sp >= 0.05 else "")


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
        if not (a and b and a.ok and b.ok):
            continue
        ta, tb = a.best, b.best
        if steady:
            if w.group not in GROUPS:
                continue
            ta, tb = ta - start[hq].best, tb - start[base].best
            if ta <= 0 or tb <= 0:
                continue
        if tb > 0:
            out[w.name] = ta / tb
    return out


def group_mean(ratio: dict[str, float], members: list[str]) -> float | None:
    # a mean over part of a group would compare different workload sets: only over all of it
    return geomean([ratio[m] for m in members]) if members and all(m in ratio for m in members) else None


def members(r: SuiteResult, group: str) -> list[str]:
    return [w.name for w in r.workloads if w.group == group]


def group_means(r: SuiteResult, base: str) -> dict[str, dict[str, float | None]]:
    """configuration -> group -> geomean of its time ratios to base (None: a member failed)."""
    return {c.name: {g: group_mean(ratios(r, c.name, base), members(r, g)) for g in GROUPS}
            for c in r.configs if c.name != base}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ratio_table(r: SuiteResult, cols: list[str], base: str, steady: bool = False) -> list[str]:
    ratio = {c: ratios(r, c, base, steady) for c in cols}
    rows = [[w.name, w.group, *(_fmt(ratio[c].get(w.name)) for c in cols)] for w in r.workloads]
    for g in GROUPS:
        if m := members(r, g):
            rows.append([f"geomean {g}", g, *(_fmt(group_mean(ratio[c], m)) for c in cols)])
    return _table(["workload", "group", *(f"{short(c)}" for c in cols)], rows)


def _stats_table(r: SuiteResult, hq: list[str]) -> list[str]:
    rows = []
    for w in r.workloads:
        for h in hq:
            st = median_stats(r.cells[w.name][h])
            if not st:
                continue
            comp = st.get("compile_ms", {})

            def pp(stage: str, comp: dict = comp) -> str:
                return f"{comp[stage]['p50_ms']:.0f} / {comp[stage]['p90_ms']:.0f}" if stage in comp else "-"

            rows.append([w.name, short(h),
                         f"{st['guest_insns'] / 1e6:.1f}" if "guest_insns" in st else "-",
                         f"{st['native_pct']:.2f}" if "native_pct" in st else "-",
                         str(st.get("traces", "-")), str(st.get("merged", "-")),
                         str(st.get("units", "-")), str(st.get("misses", "-")),
                         str(sum(v for k, v in st["returns"].items() if k != "miss"))
                         if "returns" in st else "-",
                         f"{st['translate_s']:.2f}" if "translate_s" in st else "-",
                         f"{st['compile_total_ms'] / 1e3:.2f}" if "compile_total_ms" in st else "-",
                         pp("total"), pp("latency")])
    if not rows:
        return []
    return ["", "Where hqemu's time went (its -d stats, of the median run): guest instructions (millions), "
            "share run as native code, traces installed and merged, native units entered, returns to "
            "Python on a dispatch miss and for other reasons (syscalls, helpers, signals, faults), "
            "seconds of quick-tier translation and of LLVM compilation "
            "(summed over traces, in workers for hybridm), compile time per trace and latency from "
            "submission to installation (p50 / p90 ms)", "",
            *_table(["workload", "mode", "M insns", "native %", "traces", "merged", "units", "misses",
                     "other returns", "quick xlate s", "compile s", "compile ms", "latency ms"], rows)]


def format_report(r: SuiteResult) -> str:
    names = [c.name for c in r.configs]
    hq = [c.name for c in r.configs if c.kind == "hqemu"]
    m = r.machine
    out = [f"suite {r.suite}, size {r.size}, {r.reps} repetition(s); machine: {m.get('cpu', '?')}, "
           f"{m.get('cores', '?')} cores, load {_load(m)} at start, {m.get('date', '')}"]
    out += [f"skipped {n}: {why}" for n, why in r.skipped.items()]
    times = [[w.name, w.group, *(_time(r.cells[w.name].get(n)) for n in names)] for w in r.workloads]
    out += ["", "Best wall time of the whole process in seconds (± half the range of the repetitions "
            "when >= 5%)", "", *_table(["workload", "group", *names], times)]
    if "native" in names and len(names) > 1:
        out += ["", "Time / native (lower is better)", "",
                *_ratio_table(r, [n for n in names if n != "native"], "native")]
    if "qemu" in names and hq:
        out += ["", "hqemu / qemu-x86_64 (below 1: hqemu faster)", "", *_ratio_table(r, hq, "qemu")]
        if "startup" in r.cells:
            out += ["", "hqemu / qemu-x86_64 warm: both times minus their configuration's startup time", "",
                    *_ratio_table(r, hq, "qemu", steady=True)]
        if r.suite == "kernels":
            out.append("")
            for h in hq:
                ratio = ratios(r, h, "qemu")
                for g in GROUPS:
                    gm = group_mean(ratio, members(r, g))
                    if gm is not None:
                        verdict = "met" if gm <= TARGETS[g] else "NOT met"
                        out.append(f"target {g}: {short(h)}/qemu geomean {gm:.2f}, "
                                   f"wanted <= {TARGETS[g]:.2f}: {verdict}")
    out += _stats_table(r, hq)
    failed = [(w.name, n, c.error) for w in r.workloads for n, c in r.cells[w.name].items() if c.error]
    if failed:
        out += ["", "FAILURES (no time reported for these):"]
        out += [f"  {w} under {n}: {e}" for w, n, e in failed]
    return "\n".join(out)


def _load(machine: dict) -> str:
    load = machine.get("load_at_start")
    return f"{load[0]:.1f}" if load else "?"
