"""An SVG bar chart of a SuiteResult in the form of the HQEMU paper's Fig. 5, as plain SVG text.

    >>> from bench.chart import write_chart
    >>> write_chart(result, Path("build/bench/chart-quick.svg"))

x: the workloads, INT then FP, each group closed by its geometric mean; one bar per emulated
configuration (qemu and hqemu's modes); y: execution time normalized to native on a log scale
with labelled gridlines (1 is native speed). A failed cell is an "x" on the axis, never a bar.
Every bar carries a <title> with its exact ratio, which a browser shows on hover. No plotting
library: the file is readable by any browser or SVG viewer.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape

from .report import GROUPS, group_means, members, ratios
from .runner import SuiteResult

# qemu in grey, hqemu's modes from the slowest tier (none) to the default (hybridm) in hues
COLORS = {"qemu": "#8c8c8c", "hqemu-none": "#f0b64f", "hqemu-block": "#d9623b",
          "hqemu-hybrids": "#7fb8da", "hqemu-hybridm": "#1f5fa8", "hqemu-hybridm-2w": "#5aa469"}
SPARE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
BAR, GAP, CLUSTER_GAP, GROUP_GAP = 9, 1, 12, 26  # pixels
LEFT, RIGHT, TOP, PLOT_H, BOTTOM = 64, 20, 92, 360, 120
MIN_WIDTH = 760  # room for the title and the legend when few workloads are drawn


def _ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 gridlines between lo and hi (powers of ten only when the range is wide)."""
    steps = (1, 2, 5) if math.log10(hi / lo) <= 3 else (1,)
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [s * 10.0 ** e for s in steps if lo * 0.999 <= s * 10.0 ** e <= hi * 1.001]
    return out


def _label(v: float) -> str:
    return f"{v:g}" if v >= 0.01 else f"{v:.0e}"


def chart_svg(r: SuiteResult, title: str = "") -> str:
    """The chart as SVG text (the configurations other than native, against native)."""
    cfgs = [c.name for c in r.configs if c.name != "native"]
    colors = {c: COLORS.get(c) or SPARE[i % len(SPARE)] for i, c in enumerate(cfgs)}
    ratio = {c: ratios(r, c, "native") for c in cfgs}
    means = group_means(r, "native")
    # clusters: (label, group, {config: ratio or None for a failure})
    clusters: list[tuple[str, str, dict[str, float | None]]] = []
    for g in GROUPS:
        names = members(r, g)
        for n in names:
            clusters.append((n, g, {c: ratio[c].get(n) for c in cfgs if n in r.cells and c in r.cells[n]}))
        if names:
            clusters.append((f"geomean {g}", g, {c: means[c][g] for c in cfgs}))
    values = [v for _, _, d in clusters for v in d.values() if v]
    lo = 10 ** math.floor(math.log10(min([1.0, *values])))
    hi = 10 ** math.ceil(math.log10(max([2.0, *values])))
    if math.log10(hi / lo) <= 1:
        hi *= 10

    def y(v: float) -> float:
        return TOP + PLOT_H * (1 - math.log10(v / lo) / math.log10(hi / lo))

    cw = len(cfgs) * (BAR + GAP) - GAP
    xs, x, prev = [], LEFT + CLUSTER_GAP, None
    for _, g, _ in clusters:
        if prev is not None and g != prev:
            x += GROUP_GAP
        xs.append(x)
        x += cw + CLUSTER_GAP
        prev = g
    width = max(x + RIGHT, MIN_WIDTH)
    height = TOP + PLOT_H + BOTTOM
    m = r.machine
    title = title or (f"Execution time normalized to native, {r.suite} suite, size {r.size} "
                      f"(best of {r.reps})")
    sub = f"{m.get('cpu', '')}, {m.get('cores', '?')} cores, {m.get('date', '')}".strip(", ")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" '
           f'font-size="11">',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="15" font-weight="bold">'
           f'{escape(title)}</text>',
           f'<text x="{width / 2:.0f}" y="37" text-anchor="middle" fill="#555">{escape(sub)}</text>']
    # legend under the title, one row (item widths estimated from the 11px font)
    lx = LEFT
    for c in cfgs:
        svg.append(f'<rect x="{lx}" y="52" width="12" height="12" fill="{colors[c]}"/>'
                   f'<text x="{lx + 16}" y="62">{escape(c)}</text>')
        lx += 16 + 6.5 * len(c) + 14
    # gridlines with labels; native (1.0) drawn heavier
    for t in _ticks(lo, hi):
        yy = y(t)
        major = abs(math.log10(t) - round(math.log10(t))) < 1e-9
        stroke = "#000" if t == 1 else ("#bbb" if major else "#e3e3e3")
        svg.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{stroke}" '
                   f'stroke-width="{1.2 if t == 1 else 0.8}"/>'
                   f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    svg.append(f'<text transform="translate(16 {TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle">'
               f'time / native (log scale)</text>')
    base = TOP + PLOT_H
    svg.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#000"/>')
    prev = None
    for (label, g, vals), x0 in zip(clusters, xs):
        if prev is not None and g != prev:
            sx = x0 - CLUSTER_GAP / 2 - GROUP_GAP / 2
            svg.append(f'<line x1="{sx:.1f}" x2="{sx:.1f}" y1="{TOP}" y2="{base + 40}" stroke="#999" '
                       f'stroke-dasharray="4 3"/>')
        prev = g
        is_mean = label.startswith("geomean")
        if is_mean:
            svg.append(f'<rect x="{x0 - 4}" y="{TOP}" width="{cw + 8}" height="{PLOT_H}" fill="#f3f3f3" '
                       f'fill-opacity="0.6"/>')
        for i, c in enumerate(cfgs):
            if c not in vals:
                continue
            bx = x0 + i * (BAR + GAP)
            v = vals[c]
            if v is None:
                svg.append(f'<text x="{bx + BAR / 2:.1f}" y="{base - 3}" text-anchor="middle" fill="#c00" '
                           f'font-weight="bold">x<title>{escape(label)}, {escape(c)}: failed</title></text>')
                continue
            top = y(v)
            svg.append(f'<rect x="{bx}" y="{top:.1f}" width="{BAR}" height="{base - top:.1f}" '
                       f'fill="{colors[c]}"><title>{escape(label)}, {escape(c)}: {v:.2f}x native</title>'
                       f'</rect>')
            if is_mean:  # the numbers the text quotes, readable without hovering
                num = f"{v:.0f}" if v >= 100 else f"{v:.3g}"
                svg.append(f'<text transform="translate({bx + BAR / 2 + 3:.1f} {top - 3:.1f}) rotate(-90)" '
                           f'font-size="9">{num}</text>')
        tx, ty = x0 + cw / 2, base + 10
        weight = ' font-weight="bold"' if is_mean else ""
        svg.append(f'<text transform="translate({tx:.1f} {ty}) rotate(-50)" text-anchor="end"{weight}>'
                   f'{escape(label)}</text>')
    # group names under the labels
    for g in GROUPS:
        gx = [x0 for (_, gg, _), x0 in zip(clusters, xs) if gg == g]
        if gx:
            mid = (gx[0] + gx[-1] + cw) / 2
            svg.append(f'<text x="{mid:.1f}" y="{height - 12}" text-anchor="middle" font-size="13" '
                       f'font-weight="bold">{g}</text>')
    svg.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{base}" y2="{base}" stroke="#000"/>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def write_chart(r: SuiteResult, path: Path, title: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chart_svg(r, title))
    return path

