"""Issue 6's SPEC-like programs (bench/programs) at their quick size: every checksum under hqemu
equals the native run's, in the quick tier alone (-llvm-mode none) and with every block going
through LLVM traces at once (-llvm-mode hybrids -hot-threshold 1). No timing.

The oracle is the same binary run natively on this x86-64 host. One case per workload and mode,
so a failure names both; a malformed header block fails test_headers_parse with the file's name.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.runner import build, checksum_error  # noqa: E402
from bench.suite import SuiteError, discover  # noqa: E402

try:
    WORKLOADS, HEADER_ERROR = {w.name: w for w in discover()}, ""
except SuiteError as e:
    WORKLOADS, HEADER_ERROR = {}, str(e)

MODES = {"none": ["-llvm-mode", "none"], "hybrids-hot1": ["-llvm-mode", "hybrids", "-hot-threshold", "1"]}
TIMEOUT = 600  # seconds: a hung emulator fails the case instead of stalling the suite

pytestmark = pytest.mark.skipif(not shutil.which("gcc"), reason="gcc missing")


@functools.cache
def native(name: str) -> tuple[Path, str]:
    """The built program and its native stdout at the quick size (once per workload)."""
    w = WORKLOADS[name]
    exe = build(w)
    out = subprocess.run([exe, *w.args["quick"]], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, f"{name} natively: exit status {out.returncode}\n{out.stderr[-2000:]}"
    assert not checksum_error(w, out.stdout), checksum_error(w, out.stdout)
    return exe, out.stdout


def test_headers_parse():
    assert not HEADER_ERROR, HEADER_ERROR


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_checksum_under_hqemu(name, mode):
    exe, want = native(name)
    cmd = [sys.executable, "-m", "hqemu", *MODES[mode], "-code-cache", "", str(exe),
           *WORKLOADS[name].args["quick"]]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert got.returncode == 0, f"exit status {got.returncode}\n{got.stderr[-2000:]}"
    assert got.stdout == want
