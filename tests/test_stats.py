"""-d stats and --stats-file: the figures must agree with independent observations.

The quick tier and native code count guest instructions separately (blocks run x their
sizes, against per-block increments in the compiled code), so the same deterministic program
must give the same total in every mode; syscall counts must equal the strace lines.
"""

from __future__ import annotations

import json
import re

import guestrun
import pytest

MODES = {"none": ("-llvm-mode", "none"), "block": ("-llvm-mode", "block"),
         "hybrids": ("-llvm-mode", "hybrids", "-hot-threshold", "1")}


def _stats(guest, tmp_path, name: str, opts: tuple[str, ...], args: tuple[str, ...] = ()) -> tuple:
    out = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.json"
    run = guestrun.run_hqemu(guest("x86_64-glibc", name), args, guestrun.clean_env(), tmp_path,
                             (*opts, "-stats-file", str(out)))
    return run, json.loads(out.read_text())


def test_guest_instruction_total_is_the_same_in_every_tier(guest, tmp_path):
    totals = {}
    for mode, opts in MODES.items():
        run, data = _stats(guest, tmp_path, "hello", opts)
        assert run.returncode == 0, run
        t = data["tiers"]
        totals[mode] = t["quick_insns"] + t["native_insns"]
        if mode == "none":
            assert t["native_insns"] == 0
        else:
            assert t["native_insns"] > 0, f"{mode}: nothing ran natively: {t}"
    assert len(set(totals.values())) == 1, f"instruction totals differ between tiers: {totals}"
    t = data["traces"]  # installed units are recorded traces and merged regions
    assert t["installed"] > 0 and t["formed"] + t["merged"] >= t["installed"]


def test_syscall_counts_match_strace(guest, tmp_path):
    log = tmp_path / "strace.log"
    run, data = _stats(guest, tmp_path, "files", ("-strace", "-D", str(log)))
    assert run.returncode == 0, run
    lines = [ln for ln in log.read_text().splitlines() if re.match(r"^\d+ \w+\(", ln)]
    seen: dict[str, int] = {}
    for ln in lines:
        name = re.match(r"^\d+ (\w+)\(", ln).group(1)
        seen[name] = seen.get(name, 0) + 1
    assert seen == data["syscalls"]


def test_stats_file_is_written_when_the_guest_dies_by_a_signal(guest, tmp_path):
    run, data = _stats(guest, tmp_path, "crash_segv", ())
    assert run.returncode == 139
    assert data["guest"]["isa"] == "x86_64" and data["guest"]["program"].endswith("crash_segv")
    t = data["traces"]  # merged regions are the installed units of version 2 and up: zero, never absent
    assert t["merged"] == sum(n for v, n in t["versions"].items() if int(v) > 1)


@pytest.mark.parametrize("opts", [("-d", "stats"), ("-llvm-mode", "none", "-d", "stats")])
def test_d_stats_prints_the_trace_statistic(guest, tmp_path, opts):
    """The human summary says what the JSON of the same run says (the JSON's figures are checked
    against strace and across tiers above)."""
    run, data = _stats(guest, tmp_path, "hello", opts)
    assert run.returncode == 0
    text = run.stderr.decode()
    assert "Trace statistic:" in text
    t = data["tiers"]
    m = re.search(r"guest instructions: (\d+)", text)
    assert m and int(m[1]) == t["quick_insns"] + t["native_insns"]
    m = re.search(r"traces formed (\d+), installed (\d+), .*merged (\d+)", text)
    tr = data["traces"]
    assert m and tuple(map(int, m.groups())) == (tr["formed"], tr["installed"], tr["merged"])
    m = re.search(r"syscalls: (.*)$", text, re.M)
    assert m and dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", m[1])) == data["syscalls"]
