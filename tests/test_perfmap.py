"""-perfmap (hqemu/native/perfmap.py): /tmp/perf-PID.map names every installed trace and block.

Oracles: the child's own records (the NativeTier's InstalledTrace addresses and the MCJIT
engine's entry addresses, dumped by test_sampler's driver), the guest's ELF symbol table read
here with pyelftools, and, when perf is installed, `perf report` itself naming the JIT code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import guestrun
import pytest
from test_sampler import LOOP_C, build, run_inproc

from hqemu.native.perfmap import PerfMap, unit_name

LINE = re.compile(r"([0-9a-f]+) ([0-9a-f]+) (hqemu-(trace|block)-(\d+)@0x([0-9a-f]+))(?: (\S+))?\n")


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("perfmap"), "loop", LOOP_C)


def read_map(pid: int) -> list[re.Match]:
    path = Path(f"/tmp/perf-{pid}.map")
    assert path.exists(), f"{path} was not written"
    try:
        lines = path.read_text().splitlines(keepends=True)
    finally:
        path.unlink()
    out = [LINE.fullmatch(line) for line in lines]
    bad = [line for line, m in zip(lines, out, strict=True) if m is None]
    assert not bad, f"lines not in perf's format: {bad[:5]}"
    return out


def elf_symbol(exe: Path, pc: int) -> str | None:
    """The function holding pc, as 'name' or 'name+0xoff' (an independent lookup)."""
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            lo, size = sym["st_value"], sym["st_size"]
            if sym["st_info"]["type"] == "STT_FUNC" and lo <= pc < lo + size:
                return sym.name if pc == lo else f"{sym.name}+0x{pc - lo:x}"
    return None


def check_entries(lines: list[re.Match], rec: dict, exe: Path, kind: str) -> None:
    entries = set(rec["entries"].values())
    spans = []
    for m in lines:
        start, size = int(m[1], 16), int(m[2], 16)
        assert m[4] == kind, m[0]
        assert start in entries, f"{m[0]!r}: no unit loaded at that address"
        assert size > 0
        spans.append((start, start + size))
        pc = int(m[6], 16)
        assert m[7] == elf_symbol(exe, pc), m[0]
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "overlapping code ranges"


def test_traces_are_named_at_their_code(loop, tmp_path):
    rec, _ = run_inproc(tmp_path, loop, ["3000000"], llvm_mode="hybrids", perfmap=True)
    lines = read_map(rec["pid"])
    assert rec["traces"], "no trace was installed"
    check_entries(lines, rec, loop, "trace")
    by_id = {t["id"]: t for t in rec["traces"]}
    assert len(lines) == len(by_id)
    for m in lines:
        t = by_id[int(m[5])]
        assert (int(m[1], 16), int(m[6], 16)) == (t["host_addr"], t["head_pc"])
        assert int(m[2], 16) <= t["host_bytes"]  # the function lies inside its object's bytes
    assert any(m[7] and m[7].startswith("spin") for m in lines), "the hot loop's trace is not named spin"


def test_blocks_are_named_in_block_mode(loop, tmp_path):
    rec, _ = run_inproc(tmp_path, loop, ["100"], llvm_mode="block", perfmap=True)
    lines = read_map(rec["pid"])
    assert rec["samples"] is None, "block mode has no traces to sample"
    check_entries(lines, rec, loop, "block")
    units = {a for name, a in rec["entries"].items() if name != "hqemu_dispatch"}
    assert {int(m[1], 16) for m in lines} == units and len(lines) == len(units)


def test_cli_flag_in_hybridm(loop, tmp_path):
    """-perfmap on the command line, traces compiled by a worker; the guest's output unchanged."""
    cmd, extra = guestrun.hqemu_command(("-llvm-mode", "hybridm", "-perfmap"))
    proc = subprocess.Popen([*cmd, str(loop), "30000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **extra}, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    native = guestrun.run_native(loop, ["30000000"])
    assert (proc.returncode, out) == (native.returncode, native.stdout), err.decode()[-2000:]
    lines = read_map(proc.pid)
    assert lines and all(m[4] == "trace" for m in lines)


def test_unwritable_map_warns_once_and_never_raises(tmp_path):
    warnings: list[str] = []
    pm = PerfMap(str(tmp_path / "missing" / "perf-1.map"), warn=warnings.append)
    pm.add(0x1000, 0x10, unit_name("trace", 1, 0x401000))
    pm.add(0x2000, 0x10, unit_name("trace", 2, 0x402000))
    pm.close()
    assert len(warnings) == 1 and "perf-1.map" in warnings[0] and pm.entries == 0


def test_symbol_lookup_failure_only_drops_the_name(tmp_path):
    def broken(pc: int) -> str:
        raise RuntimeError("no symbols")

    path = tmp_path / "perf.map"
    pm = PerfMap(str(path), symbolize=broken)
    assert pm.symbol(0x401000) is None
    pm.add(0xABC000, 0x20, unit_name("block", 7, 0x401000, pm.symbol(0x401000)))
    pm.close()
    assert path.read_text() == "abc000 20 hqemu-block-7@0x401000\n"


def test_perf_report_names_the_trace(loop, tmp_path):
    """With perf installed, a software-clock profile attributes the hot loop to its trace."""
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed (linux-perf); the map format is checked above")
    data, pidfile = tmp_path / "perf.data", tmp_path / "pid"
    cmd, extra = guestrun.hqemu_command(("-llvm-mode", "hybrids", "-perfmap"))
    # the shell writes its pid and becomes hqemu: the map's name
    wrap = ["sh", "-c", f'echo $$ > {pidfile}; exec "$@"', "sh", *cmd, str(loop), "150000000"]
    r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "500", "-o", str(data), "--", *wrap],
                       capture_output=True, env={**os.environ, **extra}, cwd=tmp_path, timeout=120)
    if r.returncode != 0 or not data.exists():
        pytest.skip(f"perf record cannot sample here: {r.stderr.decode()[-300:]}")
    rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "sym"],
                         capture_output=True, text=True, timeout=60)
    read_map(int(pidfile.read_text()))  # checks and removes it
    assert re.search(r"hqemu-trace-\d+@0x[0-9a-f]+ spin", rep.stdout), rep.stdout[:3000]
