"""The speed comparison's machinery (bench/): kernels, workload headers, checksum verification,
stats parsing, tables, the SVG chart and the pyperf files.

No timing is asserted: the kernels' outputs are checked against qemu-x86_64, the -d stats
parser against hqemu's own JSON statistics, the runner's verification against a forged output,
the tables' and chart's means against statistics.geometric_mean, the pyperf files against pyperf.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench import runner  # noqa: E402
from bench.__main__ import main as bench_main  # noqa: E402
from bench.chart import chart_svg  # noqa: E402
from bench.report import format_report, geomean  # noqa: E402
from bench.runner import (  # noqa: E402
    CONFIGS,
    SIZES,
    WORKLOADS,
    Cell,
    Sample,
    SuiteResult,
    Workload,
    build,
    checksum_error,
    parse_stats,
    run_suite,
)
from bench.suite import SuiteError, discover, parse_header  # noqa: E402

# smaller than "quick": the kernels' logic, not their speed
TINY = {"startup": [], "int_loop": ["20000"], "mem_stream": ["1"], "calls": ["15"], "sort": ["1"],
        "fp_nbody": ["2000"], "fp_matmul": ["1"], "fp_stencil": ["3"]}

needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc missing")


def test_every_workload_has_tiny_args_and_every_size():
    assert set(TINY) == set(WORKLOADS)
    for w in WORKLOADS.values():
        assert set(w.args) == set(SIZES) and w.source.exists() and w.group in ("INT", "FP", "START")


@needs_gcc
@pytest.mark.skipif(not shutil.which("qemu-x86_64"), reason="qemu-x86_64 missing")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_kernel_output_matches_qemu(name):
    exe = build(WORKLOADS[name])
    native = subprocess.run([exe, *TINY[name]], capture_output=True, text=True, check=True).stdout
    emulated = subprocess.run(["qemu-x86_64", exe, *TINY[name]], capture_output=True, text=True,
                              check=True).stdout
    assert native == emulated and native.startswith(name)


@needs_gcc
def test_checksum_mismatch_is_a_failure_not_a_time(monkeypatch, tmp_path):
    real = runner.run_once

    def forged(c, exe, args, timeout=runner.TIMEOUT):
        s = real(CONFIGS["native"], exe, args, timeout)
        if c.name == "qemu":
            s.stdout = s.stdout.replace("1", "2")
        return s

    monkeypatch.setattr(runner, "run_once", forged)
    r = run_suite([WORKLOADS["calls"]], [CONFIGS["native"], CONFIGS["qemu"]], "quick", 2, log=lambda _: None)
    assert r.cells["calls"]["native"].ok and len(r.cells["calls"]["native"].samples) == 2
    bad = r.cells["calls"]["qemu"]
    assert "CHECKSUM MISMATCH" in bad.error and not bad.samples
    text = format_report(r)
    assert "FAIL" in text and "CHECKSUM MISMATCH" in text
    assert format_report(runner.load(runner.save(r, tmp_path))) == text


def test_geomean_agrees_with_statistics():
    xs = [0.5, 2.0, 3.7, 11.0]
    assert geomean(xs) == pytest.approx(statistics.geometric_mean(xs))


@needs_gcc
def test_stats_text_parse_agrees_with_stats_json(tmp_path):
    """hqemu's -d stats text, parsed, against the JSON its -stats-file writes for the same run."""
    help_text = subprocess.run([sys.executable, "-m", "hqemu", "--help"], capture_output=True, text=True,
                               cwd=ROOT).stdout
    if "stats-file" not in help_text:
        pytest.skip("this hqemu has no -stats-file")
    exe = build(WORKLOADS["int_loop"])
    txt, js = tmp_path / "stats.txt", tmp_path / "stats.json"
    subprocess.run([sys.executable, "-m", "hqemu", "-llvm-mode", "hybrids", "-d", "stats", "-D", str(txt),
                    "-stats-file", str(js), exe, "200000"], check=True, capture_output=True, cwd=ROOT)
    got, want = parse_stats(txt.read_text()), json.loads(js.read_text())
    tiers = want["tiers"]
    assert got["guest_insns"] == tiers["quick_insns"] + tiers["native_insns"]
    assert got["native_pct"] == pytest.approx(100 * tiers["native_share"], abs=1e-3)
    assert got["traces"] == want["traces"]["installed"]
    for stage, d in want["traces"]["compile_seconds"].items():
        assert got["compile_ms"][stage]["p50_ms"] == pytest.approx(1e3 * d["p50"], abs=0.01)
        assert got["compile_ms"][stage]["p90_ms"] == pytest.approx(1e3 * d["p90"], abs=0.01)


def test_parse_stats_reads_the_counter_dump_shape():
    # the older -d stats shape (a counter dump with pool.<stage> lines) must still parse
    text = ("  traces_installed: 6\n  translate_seconds: 0.89\n  native_returns: miss=3010\n"
            "  guest instructions: 58526988, native 99.768%, quick 0.232%\n"
            "  pool.codegen: n=6 p50=6.78ms p90=10.77ms p99=10.77ms max=10.77ms\n")
    d = parse_stats(text)
    assert (d["traces"], d["misses"], d["guest_insns"]) == (6, 3010, 58526988)
    assert d["compile_ms"]["codegen"] == {"p50_ms": 6.78, "p90_ms": 10.77}
    assert Sample(1.0, 1.0, 0, "", "").stats == {}


# --- issue 6: the SPEC-like suite's machinery ---------------------------------------------
HEADER = """/* a test workload */
// bench-group: {group}
// bench-quick: 3 64
// bench-ref: 400
// bench-doc: a loop that prints its checksum
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {{
    unsigned long x = 88172645463325252ul, n = argc > 1 ? strtoul(argv[1], 0, 10) : 1;
    for (unsigned long i = 0; i < n * 1000; i++) x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    printf({fmt}, x);
    return 0;
}}
"""


def _write(folder: Path, name: str, group: str = "INT", fmt: str = '"NAME checksum %lu\\n"') -> Path:
    path = folder / f"{name}.c"
    path.write_text(HEADER.format(group=group, fmt=fmt.replace("NAME", name)))
    return path


def test_header_is_parsed(tmp_path):
    w = parse_header(_write(tmp_path, "toy", "FP"))
    assert (w.name, w.group, w.args, w.doc, w.suite) == (
        "toy", "FP", {"quick": ["3", "64"], "ref": ["400"]}, "a loop that prints its checksum", "spec")
    (tmp_path / "demo.c").write_text("int main(void) { return 0; }\n")
    assert parse_header(tmp_path / "demo.c") is None  # make run's demos are not workloads
    assert [w.name for w in discover(tmp_path)] == ["toy"]


@pytest.mark.parametrize("change, words", [
    (("// bench-group: INT", "// bench-group: MIXED"), "bench-group"),
    (("// bench-doc: a loop that prints its checksum\n", ""), "lacks bench-doc"),
    (("// bench-ref: 400", "// bench-ref: 400\n// bench-ref: 500"), "twice"),
    (("// bench-ref: 400", "// bench-reff: 400"), "unknown key"),
])
def test_malformed_header_is_a_one_line_error_naming_the_file(tmp_path, change, words):
    path = _write(tmp_path, "bad")
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(SuiteError) as e:
        discover(tmp_path)
    assert str(path) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_cli_reports_a_malformed_header(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, "bad")
    path.write_text(path.read_text().replace("bench-group: INT", "bench-group: int"))
    monkeypatch.setattr(runner, "PROGRAMS", tmp_path)
    assert bench_main(["--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and len(err.splitlines()) == 1


def test_the_real_programs_have_headers_and_make_builds_the_same_set():
    ws = discover()
    assert all(w.group in ("INT", "FP") and w.args["quick"] and w.args["ref"] and w.source.exists()
               for w in ws)
    dry = subprocess.run(["make", "-n", "-B", "bench-programs"], capture_output=True, text=True, cwd=ROOT)
    assert dry.returncode == 0, dry.stderr
    built = {Path(ln.split(" -o ")[1].split()[0]).name for ln in dry.stdout.splitlines() if " -o " in ln}
    assert built == {w.name for w in ws}


def test_checksum_form():
    w = Workload("toy", "INT", Path("toy.c"), {}, "", suite="spec")
    assert checksum_error(w, "toy checksum 123\n") == ""
    assert checksum_error(w, "warming up\ntoy checksum 1a2b 4.4949523079e-04\n") == ""
    assert checksum_error(w, "toy 123\n") and checksum_error(w, "other checksum 1\n")
    assert checksum_error(w, "toy checksum\n") and checksum_error(w, "")
    assert checksum_error(WORKLOADS["calls"], "calls 1 2\n") == ""  # kernels have their own shapes


@needs_gcc
def test_spec_workload_without_checksum_line_fails_every_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "OUT", tmp_path / "out")
    good = parse_header(_write(tmp_path, "good"))
    bad = parse_header(_write(tmp_path, "bad", fmt='"bad %lu\\n"'))
    r = run_suite([good, bad], [CONFIGS["native"]], "quick", 1, log=lambda _: None)
    assert r.cells["good"]["native"].ok
    assert "checksum" in r.cells["bad"]["native"].error and not r.cells["bad"]["native"].samples


@needs_gcc
def test_missing_qemu_is_a_skip_with_the_reason(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(runner.shutil, "which", lambda n: None if n == "qemu-x86_64" else real(n))
    r = run_suite([WORKLOADS["startup"]], [CONFIGS["native"], CONFIGS["qemu"]], "quick", 1,
                  log=lambda _: None)
    assert [c.name for c in r.configs] == ["native"] and "qemu-x86_64 not found" in r.skipped["qemu"]
    assert "skipped qemu: qemu-x86_64 not found" in format_report(r)


def _forged(walls: dict[str, dict[str, float]], groups: dict[str, str], fail: tuple = ()) -> SuiteResult:
    """A SuiteResult with given best times (no runs): workload -> config -> seconds."""
    configs = [CONFIGS[c] for c in next(iter(walls.values()))]
    ws = [Workload(n, groups[n], Path(f"{n}.c"), {"quick": ["1"]}, "doc", "spec") for n in walls]
    r = SuiteResult("quick", 2, ws, configs, suite="spec", machine={"cpu": "test cpu", "cores": 2})
    for n, row in walls.items():
        r.expected[n] = f"{n} checksum 1\n"
        r.cells[n] = {c: Cell([Sample(t * 1.01, t, 0, r.expected[n], ""), Sample(t, t, 0, r.expected[n], "")])
                      for c, t in row.items()}
        for c in row:
            if (n, c) in fail:
                r.cells[n][c] = Cell(error="CHECKSUM MISMATCH")
    return r


WALLS = {"a": {"native": 0.5, "qemu": 2.0, "hqemu-hybridm": 1.5, "hqemu-none": 40.0},
         "b": {"native": 0.2, "qemu": 3.0, "hqemu-hybridm": 0.9, "hqemu-none": 70.0},
         "c": {"native": 1.0, "qemu": 30.0, "hqemu-hybridm": 4.0, "hqemu-none": 400.0}}
GROUP = {"a": "INT", "b": "INT", "c": "FP"}


def test_report_geomeans_per_group_and_against_qemu(tmp_path):
    r = _forged(WALLS, GROUP)
    text = format_report(r)
    hq_int = statistics.geometric_mean([WALLS[n]["hqemu-hybridm"] / WALLS[n]["native"] for n in "ab"])
    hq_qemu_int = statistics.geometric_mean([WALLS[n]["hqemu-hybridm"] / WALLS[n]["qemu"] for n in "ab"])
    native_table, qemu_table = text.split("Time / native")[1].split("hqemu / qemu-x86_64")[:2]
    assert f"{hq_int:.2f}" in next(ln for ln in native_table.splitlines() if "geomean INT" in ln)
    assert f"{hq_qemu_int:.2f}" in next(ln for ln in qemu_table.splitlines() if "geomean INT" in ln)
    assert format_report(runner.load(runner.save(r, tmp_path))) == text


def test_chart_is_svg_with_one_bar_per_cell_on_a_log_scale():
    r = _forged(WALLS, GROUP, fail={("b", "hqemu-none")})
    root = ET.fromstring(chart_svg(r))
    bars = {}
    for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
        t = rect.find("{http://www.w3.org/2000/svg}title")
        if t is not None:
            label, cfg = t.text.split(": ")[0].rsplit(", ", 1)
            bars[(label, cfg)] = (float(t.text.split(": ")[1].split("x")[0]), float(rect.get("height")))
    ratio = {(n, c): WALLS[n][c] / WALLS[n]["native"] for n in WALLS for c in WALLS[n] if c != "native"}
    del ratio[("b", "hqemu-none")]  # failed: drawn as an x, not a bar; no INT geomean for it either
    for g, names in (("INT", "ab"), ("FP", "c")):
        for c in ("qemu", "hqemu-hybridm", "hqemu-none"):
            if all((n, c) in ratio for n in names):
                ratio[(f"geomean {g}", c)] = statistics.geometric_mean([ratio[(n, c)] for n in names])
    assert set(bars) == set(ratio)
    for k, (v, _) in bars.items():
        assert v == pytest.approx(ratio[k], abs=0.005)
    # log scale: the height is a linear function of log(ratio), the same one for every bar
    (v0, h0), (v1, h1) = bars[("a", "qemu")], bars[("c", "hqemu-none")]
    slope = (h1 - h0) / (math.log(v1) - math.log(v0))
    for v, h in bars.values():
        assert h == pytest.approx(h0 + slope * (math.log(v) - math.log(v0)), abs=0.2)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "hqemu-hybridm" in texts and "geomean FP" in texts and "quick" in texts


def test_pyperf_files_load_with_pyperf(tmp_path):
    pyperf = pytest.importorskip("pyperf")
    r = _forged(WALLS, GROUP)
    runner.save(r, tmp_path)
    suite = pyperf.BenchmarkSuite.load(str(tmp_path / "pyperf-quick-hqemu-hybridm.json"))
    got = {b.get_name(): sorted(b.get_values()) for b in suite.get_benchmarks()}
    want = {n: sorted(s.wall for s in r.cells[n]["hqemu-hybridm"].samples) for n in WALLS}
    assert got.keys() == want.keys()
    for n in want:
        assert got[n] == pytest.approx(want[n])
