"""The cheap passes preserve semantics: on random units and random initial state and memory,
the reference interpreter gives the same exit, state and memory before and after each pass;
plus the rules the passes must keep (loads stay, barriers hold, undefined folds are skipped)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from irgen import TestEnv, random_unit

from hqemu.errors import GuestFault
from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import I32, I64, Builder, Const, Unit
from hqemu.ir.interp import run_block
from hqemu.ir.passes import dce, dse, fold, forward_globals, optimize
from hqemu.ir.text import format_unit, parse_unit
from hqemu.ir.verify import verify

PASSES = {"optimize": optimize, "fold": fold, "dce": dce, "dse": dse, "forward_globals": forward_globals}
MEM = (0x10000, 0x1000)


def outcome(unit: Unit, env: TestEnv) -> tuple:
    """The exit and everything observable after it; after a fault, its address and the memory
    (registers may be imprecise at a fault, memory accesses are never removed or reordered)."""
    env = env.copy()
    try:
        exit_ = run_block(unit, env)
    except GuestFault as f:
        return ("fault", f.addr, env.mem.snapshot())
    return exit_, env.snapshot()


ALL_PASSES = tuple(PASSES.values())


def check_preserves(unit: Unit, envs: list[TestEnv], passes=ALL_PASSES) -> None:
    verify(unit)
    text = format_unit(unit)
    before = [outcome(unit, env) for env in envs]
    for p in passes:
        opt = p(parse_unit(text, LAYOUT))
        verify(opt)
        for env, want in zip(envs, before):
            assert outcome(opt, env) == want, (p.__name__, text, format_unit(opt))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_passes_preserve_semantics(data):
    unit = random_unit(data, LAYOUT, mem=MEM, n_ops=data.draw(st.integers(1, 40)))
    rng = random.Random(data.draw(st.integers(0, 2**32)))  # the env need not shrink: faster draws
    envs = [TestEnv.random(rng, LAYOUT, mem=MEM) for _ in range(2)]
    check_preserves(unit, envs)


STATE_HEAVY = ("get", "put", "exit_if", "call", "add", "xor", "setcond", "ld", "st", "mov", "sub", "and")
# few globals, many gets, puts and calls: what forwarding and dead-store elimination reason about
FORWARD_HEAVY = ("get", "get", "put", "put", "call", "call", "exit_if", "add", "xor", "st")
MIXES = ((None, 6), (STATE_HEAVY, 3), (FORWARD_HEAVY, 1))  # (ops, random globals)


def test_passes_preserve_semantics_seeded():
    """Many more units than hypothesis runs, in three mixes; a fifth of them with faulting accesses."""
    for seed in range(150):
        rng = random.Random(seed)
        ops, n_globals = MIXES[seed % 3]
        unit = random_unit(rng, LAYOUT, mem=MEM, n_ops=rng.randint(5, 40), ops=ops, globals_=n_globals,
                           faults=seed % 5 == 0)
        check_preserves(unit, [TestEnv.random(rng, LAYOUT, mem=MEM) for _ in range(2)])


def test_optimize_reaches_a_fixpoint():
    for seed in range(60):
        unit = optimize(random_unit(random.Random(seed), LAYOUT, mem=MEM, n_ops=40))
        once = format_unit(unit)
        assert format_unit(optimize(unit)) == once


def _unit():
    u = Unit("x86_64", LAYOUT)
    return u, Builder(u, u.new_block(0x1000))


def test_loads_are_never_removed():
    u, b = _unit()
    b.ld(Const(0x10, I64), I64)  # unused, constant address, and it may fault
    b.ld(b.add(b.get("rax"), 0), I32)
    b.exit("jump", 0x1004)
    assert [op.name for op in optimize(u).ops()] == ["ld", "get", "ld", "exit"]


def test_division_by_constant_zero_is_not_folded():
    u, b = _unit()
    q = b.udiv(Const(7, I64), Const(0, I64))
    b.exit_if(b.setcond("eq", b.get("rbx"), 0), "sigfpe", 0x1000)
    b.put("rax", q)
    b.exit("jump", 0x1004)
    fold(u)  # must not raise
    verify(u)
    assert [op.name for op in u.ops()][:1] == ["udiv"]


def test_forwarding_stops_at_state_writing_calls():
    u, b = _unit()
    b.put("rax", Const(5, I64))
    b.call("irgen_mix", b.get("rax"), Const(1, I64))  # pure: rax still known
    r = b.call("irgen_rw", b.get("rax"))[0]  # writes state
    b.put("rdx", b.add(b.get("rax"), r))
    b.exit("jump", 0x1004)
    text = format_unit(forward_globals(u))
    assert "call irgen_mix, 0x5:i64, 0x1:i64" in text and "call irgen_rw, 0x5:i64" in text
    assert text.count("= get rax") == 1  # the reload after irgen_rw


@pytest.mark.parametrize("barrier", ["exit_if", "irgen_rd", "irgen_rw", "get"])
def test_dead_store_barriers(barrier):
    u, b = _unit()
    b.put("rcx", Const(1, I64))
    if barrier == "exit_if":
        b.exit_if(b.setcond("eq", b.get("rax"), 0), "jump", 0x2000)
    elif barrier == "get":
        b.put("rdx", b.get("rcx"))
    else:
        b.call(barrier, Const(0, I64))
    b.put("rcx", Const(2, I64))
    b.exit("jump", 0x1004)
    assert [op.consts for op in dse(u).ops() if op.name == "put" and op.consts == ("rcx",)] == [("rcx",)] * 2


def test_dead_store_across_loads_stores_and_pure_calls():
    u, b = _unit()
    b.put("rcx", Const(1, I64))
    v = b.ld(Const(0x10, I64), I64)
    b.st(Const(0x18, I64), v)
    b.call("irgen_mix", v, v)
    b.call("irgen_wr", v)  # writes, does not read: the first put is still dead
    b.put("rcx", Const(2, I64))
    b.exit("jump", 0x1004)
    puts = [op for op in dse(u).ops() if op.name == "put"]
    assert len(puts) == 1 and puts[0].ins[0].value == 2


BIN_INT = ("add", "sub", "mul", "and", "or", "xor", "shl", "shr", "sar", "rotl", "rotr", "udiv", "urem",
           "sdiv", "srem", "setcond")


@pytest.mark.parametrize("name", BIN_INT)
def test_fold_identities_on_edge_constants(name):
    """Each binary op with an edge constant on either side, or the same temp twice: every
    algebraic identity the folder knows is exercised against the interpreter."""
    from hqemu.ir import CONDS, I1, I8, I128, INT_BY_BITS

    rng = random.Random(name)
    envs = [TestEnv.random(rng, LAYOUT, mem=MEM) for _ in range(6)]
    for ty in (I1, I8, I32, I64, I128):
        top = 1 << (ty.bits - 1)
        for c in sorted({0, 1, ty.mask, top, ty.bits - 1}):
            for shape in ("tc", "ct", "tt"):
                u, b = _unit()
                t = b.get("xmm0") if ty == I128 else b.trunc(b.get("rax"), ty)
                if name in ("udiv", "urem", "sdiv", "srem"):
                    if shape == "tc" and c == 0:
                        continue
                    if shape == "tc" and name in ("sdiv", "srem") and c == ty.mask:
                        t = b.and_(t, top - 1)  # no INT_MIN / -1
                    if shape != "tc":
                        t = b.or_(t, 1) if name in ("udiv", "urem") else b.and_(b.or_(t, 1), (top - 1) | 1)
                if name in ("shl", "shr", "sar") and shape != "ct":
                    if shape == "tc" and c >= ty.bits:
                        continue
                    t = b.and_(t, ty.bits - 1) if shape == "tt" else t
                k = Const(c, ty)
                x, y = {"tc": (t, k), "ct": (k, t), "tt": (t, t)}[shape]
                if name in ("shl", "shr", "sar") and shape == "ct":
                    y = b.and_(t, ty.bits - 1)
                if name == "setcond":
                    r = b.setcond(rng.choice(CONDS), x, y)
                else:
                    r = b.emit(name, (ty,), (x, y)).outs[0]
                r = b.zext(r, I64) if r.ty.bits < 64 else b.trunc(r, INT_BY_BITS[64])
                b.put("rdx", r)
                b.exit("jump", 0x1004)
                check_preserves(u, envs, passes=(fold, optimize))


def test_written_first_stops_at_reads_exits_and_calls():
    """What a jump into the block need not store: written before read, before any exit."""
    from hqemu.ir.passes import written_first

    def unit(body):
        u = Unit("x86_64", LAYOUT)
        b = Builder(u, u.new_block(0x2000))
        b.insn(0x2000, 3)
        body(b)
        return u

    def cmp_then_branch(b):  # cmp; jne: the flags are set anew, rax is read first
        r = b.sub(b.get("rax"), b.get("rbx"))
        b.put("zf", b.zext(b.setcond("eq", r, 0), I64))
        b.put("cf", b.zext(b.setcond("ltu", b.get("rax"), b.get("rbx")), I64))
        b.put("rax", r)
        b.exit_if(b.setcond("ne", b.get("zf"), 0), "jump", 0x3000)
        b.put("sf", Const(0, I64))  # after the side exit: live through it
        b.exit("jump", 0x2008)

    def reads_flag_first(b):  # adc: cf read before written
        c = b.get("cf")
        b.put("cf", b.and_(c, Const(1, I64)))
        b.exit("jump", 0x2008)

    def helper_first(b):
        b.call("x86_fenv_fold")
        b.put("zf", Const(1, I64))
        b.exit("jump", 0x2008)

    assert written_first(unit(cmp_then_branch)) == {"zf", "cf"}
    assert written_first(unit(reads_flag_first)) == frozenset()
    assert written_first(unit(helper_first)) == frozenset()


def test_dead_at_round_trips_through_the_text():
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x1000))
    b.insn(0x1000, 2)
    b.put("zf", Const(1, I64))
    b.exit("jump", 0x2000)
    u.dead_at = {0x2000: frozenset({"zf", "cf"})}
    text = format_unit(u)
    assert "deadat 0x2000 cf zf" in text
    back = parse_unit(text, LAYOUT)
    assert back.dead_at == u.dead_at and format_unit(back) == text
    verify(back)
