"""Golden IR files (tests/ir/*.ir): optimize(input) must print exactly as expected, and the
expected unit must behave as the input does in the reference interpreter.

Rewrite the expectations with `python tests/update_golden.py` after an intended change.
"""

from __future__ import annotations

import random

import pytest
from irgen import SparseMemory, TestEnv
from update_golden import GOLDEN_DIR, optimized, parse, split

from hqemu.ir import IMPLS
from hqemu.ir.interp import run_block

FILES = sorted(GOLDEN_DIR.glob("*.ir"))


def test_there_are_golden_files():
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden(path):
    inp, expected = split(path.read_text())
    assert expected is not None, f"{path.name} has no `; expect` section: run tests/update_golden.py"
    assert optimized(inp) == expected, f"{path.name}: run tests/update_golden.py and review the diff"
    before, after = parse(inp), parse(expected)
    if any(op.name == "call" and op.consts[0] not in IMPLS for op in before.ops()):
        return  # an unregistered helper (the passes' worst case) cannot run
    rng = random.Random(path.stem)
    n_words = max(g.offset // 8 + 2 for g in before.layout.globals.values())
    for _ in range(20):
        words = [rng.choice((0, 1, 0x10, 0xFF, 1 << 63, rng.getrandbits(64))) for _ in range(n_words)]
        env = TestEnv(words, SparseMemory(rng.getrandbits(32)))
        e1, e2 = env.copy(), env.copy()
        assert run_block(before, e1) == run_block(after, e2)
        assert e1.snapshot() == e2.snapshot()
