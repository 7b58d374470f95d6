"""The quick tier on real frontend output: x86-64 instructions lifted and optimized as the
engine does, compiled, and run against the reference interpreter on the same unit.

The instruction families and random states are those of test_x86_int (where the interpreter
is checked against Unicorn), so together: quick tier == interpreter == Unicorn.
"""

from __future__ import annotations

import random

import pytest
from test_quick_fakes import FakeEnv
from test_x86_int import FAMILIES, LOOP, _skip
from x86oracle import CODE, DATA, DATA_SIZE, State, make_env

from hqemu.errors import GuestFault, GuestSignal
from hqemu.frontends import get, translate_block
from hqemu.ir.interp import run_block
from hqemu.ir.passes import optimize
from hqemu.ir.text import format_unit
from hqemu.quick import compile_unit
from hqemu.quick.codegen import SIGNALS

FE = get("x86_64")
KINDS = {v: k for k, v in SIGNALS.items()}


def _interp(unit, env, loop_iters: int):
    try:
        out = run_block(unit, env)
        runs = 1
        while loop_iters and out == ("jump", unit.pc) and runs <= loop_iters:
            out = run_block(unit, env)
            runs += 1
        return out
    except GuestFault:
        return ("fault", None)


def _quick(blk, env):
    try:
        pc = blk.fn()
    except GuestSignal as e:
        return (KINDS[e.signo], e.pc)
    except (GuestFault, IndexError):
        return ("fault", None)
    return ("syscall", pc) if env.syscalls else ("jump", pc)


def check(code: bytes, st: State, max_insns: int, loop_iters: int = 0) -> None:
    ref = make_env(code, st)
    unit = translate_block(FE, ref.mem, CODE, max_insns)
    optimize(unit)
    env = FakeEnv.window(DATA, DATA_SIZE, st.data, list(ref.state))
    blk = compile_unit(unit, env, loop_iters=loop_iters, check_bounds=True)
    exp, got = _interp(unit, ref, loop_iters), _quick(blk, env)
    where = f"{code.hex()}\n{format_unit(unit)}\n{blk.source}"
    assert got == exp, where
    if exp[0] != "fault":  # after a fault registers may be imprecise
        assert list(env.state) == list(ref.state), where
        assert env.mem.buf[DATA:DATA + DATA_SIZE] == ref.mem.regions[DATA], where


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_matches_the_interpreter(name):
    rng = random.Random(f"quick-{name}")
    for _ in range(12):
        code, st = FAMILIES[name](rng, State.random(rng))
        if not _skip(code):
            check(code, st, max_insns=1)


def test_instruction_runs_match_the_interpreter():
    """Blocks of several instructions from mixed families: flags flow between them."""
    rng = random.Random(11)
    names = sorted(n for n in FAMILIES if n not in ("branch", "jcc", "string", "stack"))
    for _ in range(40):
        st = State.random(rng)
        code = b""
        for _ in range(rng.randint(2, 6)):
            part, st = FAMILIES[rng.choice(names)](rng, st)
            code += part
        check(code, st, max_insns=6)


def test_self_loop_matches_the_interpreter():
    """A loop body that jumps to its own head runs inside one call (loop mode)."""
    rng = random.Random(7)
    for _ in range(8):
        st = State.random(rng).with_regs(rsi=DATA + 0x100, rcx=rng.randrange(1, 40))
        check(LOOP, st, max_insns=64, loop_iters=rng.choice((1, 5, 50)))
