"""bench/isa_mips.py measures what it says: each class's loop runs natively and under hqemu,
and the guest instructions counted per iteration are the loop's 16 plus dec and jnz.

    .venv/bin/pytest -q tests/test_bench_isa.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench import isa_mips  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def exe():
    return isa_mips.build()


@pytest.mark.parametrize("cls", [c for c in isa_mips.LOOPS if c != "branch"])
def test_counts_per_iteration(exe, cls: str) -> None:
    native = subprocess.run([str(exe), cls, "1000"], capture_output=True, text=True, check=True)
    assert native.stdout == "done\n"
    n0, _ = isa_mips.run_once(exe, cls, 100, "none")
    n1, _ = isa_mips.run_once(exe, cls, 200, "none")
    assert n1 - n0 == 100 * 18


def test_branch_class_runs(exe) -> None:
    n0, _ = isa_mips.run_once(exe, "branch", 100, "none")
    n1, _ = isa_mips.run_once(exe, "branch", 200, "none")
    assert 100 * 12 < n1 - n0 < 100 * 20  # taken jumps skip nothing here; the count varies by the path
