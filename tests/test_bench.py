"""The speed comparison's machinery (bench/): kernels, checksum verification, stats parsing.

No timing is asserted: the kernels' outputs are checked against qemu-x86_64, the -d stats
parser against hqemu's own JSON statistics, the runner's verification against a forged output.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench import runner  # noqa: E402
from bench.report import format_report, geomean  # noqa: E402
from bench.runner import CONFIGS, WORKLOADS, Sample, build, parse_stats, run_suite  # noqa: E402

# smaller than "quick": the kernels' logic, not their speed
TINY = {"startup": [], "int_loop": ["20000"], "mem_stream": ["1"], "calls": ["15"], "sort": ["1"],
        "fp_nbody": ["2000"], "fp_matmul": ["1"], "fp_stencil": ["3"]}

needs_gcc = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc missing")


def test_every_workload_has_tiny_args_and_both_sizes():
    assert set(TINY) == set(WORKLOADS)
    for w in WORKLOADS.values():
        assert set(w.args) == {"quick", "ref"} and w.source.exists() and w.group in ("INT", "FP", "START")


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
