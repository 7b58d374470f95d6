"""The quick tier against the reference interpreter, on random units (tests/irgen.py).

Each unit runs twice from the same state and memory: interpreted (hqemu.ir.interp.run_block)
and compiled (compile_unit); the exit, every state word and every memory byte must agree.
"""

from __future__ import annotations

import math
import random

import pytest
from irgen import BODY_OPS, TestEnv, random_unit
from test_quick_fakes import FakeEnv

from hqemu.errors import GuestSignal
from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import I1, I8, I16, I32, I64, OPS, Block, Builder, Const, Op, Unit
from hqemu.ir.interp import run_block
from hqemu.ir.text import format_unit
from hqemu.ir.verify import verify
from hqemu.quick import TEMPLATES, compile_unit
from hqemu.quick.codegen import SIGNALS

MEM = (0x10000, 0x3000)  # three pages: fast paths inside, the slow path on the last one


def _envs(rng: random.Random, spare_page: bool = False) -> tuple[FakeEnv, FakeEnv]:
    """Two identical envs; with spare_page the window's last page is on the fast path too."""
    t = TestEnv.random(rng, LAYOUT, mem=MEM)
    words, data = list(t.state), bytes(t.mem.data)
    window = (MEM[0], MEM[1] + 0x1000 * spare_page)
    return (FakeEnv.window(*window, data, words), FakeEnv.window(*window, data, words))


def _run_quick(blk, env: FakeEnv) -> tuple[str, int]:
    """The exit the compiled block took, in run_block's terms."""
    try:
        pc = blk.fn()
    except GuestSignal as e:
        kind = {v: k for k, v in SIGNALS.items()}[e.signo]
        return kind, e.pc
    if env.syscalls:
        assert env.syscalls == [pc]
        return "syscall", pc
    return "jump", pc


def _snapshot(env: FakeEnv) -> tuple[list[int], bytes]:
    return list(env.state), bytes(env.mem.buf)


def _check(unit, ref: FakeEnv, env: FakeEnv, blk, loop_iters: int = 0) -> None:
    exp = run_block(unit, ref)
    runs = 1
    while loop_iters and exp == ("jump", unit.pc) and runs <= loop_iters:
        exp = run_block(unit, ref)
        runs += 1
    got = _run_quick(blk, env)
    where = f"\n{format_unit(unit)}\n{blk.source}"
    assert got == exp, where
    s_ref, m_ref = _snapshot(ref)
    s_got, m_got = _snapshot(env)
    bad = [(i, hex(a), hex(b)) for i, (a, b) in enumerate(zip(s_ref, s_got)) if a != b]
    assert not bad, f"state words differ (index, interp, quick): {bad}{where}"
    assert m_ref == m_got, f"memory differs{where}"
    if loop_iters:
        assert blk.count == runs - 1, where  # back edges taken inside the call


def test_every_op_has_a_template():
    assert set(TEMPLATES) == set(OPS)


@pytest.mark.parametrize("seed", range(4))
def test_random_units_match_the_interpreter(seed):
    rng = random.Random(1000 + seed)
    for i in range(60):
        unit = random_unit(rng, LAYOUT, mem=MEM, n_ops=rng.randint(5, 40))
        verify(unit)
        ref, env = _envs(rng)
        _check(unit, ref, env, compile_unit(unit, env, loop_iters=0, check_bounds=bool(i % 2)))


def _count_down_exit(unit, env: FakeEnv, after: int) -> None:
    """Put a side exit first in the body, taken in iteration after + 1, counted in a global
    the rest of the unit does not touch: the state must be exact there too, after iterations
    whose writes lived only in locals."""
    name = next(g for g in ("r15", "r14", "r13", "r12") if g not in unit.globals)
    pos = next(i for i, op in enumerate(unit.blocks[0].ops) if op.name == "insn") + 1
    b = Builder(unit, Block(unit.pc))
    c = b.get(name)
    c1 = b.add(c, Const(1, I64))
    b.put(name, c1)
    b.exit_if(b.setcond("eq", c1, Const((env.reg(name) + after + 1) & (2**64 - 1), I64)), "jump", 0x7000)
    unit.blocks[0].ops[pos:pos] = b.block.ops


@pytest.mark.parametrize("seed", range(2))
def test_self_loops_match_repeated_interpretation(seed):
    """A block that jumps to its own head loops inside the call, its globals in locals."""
    rng = random.Random(2000 + seed)
    body = tuple(n for n in BODY_OPS if n != "call") + ("get", "put", "put", "ld", "st")
    for i in range(40):
        unit = random_unit(rng, LAYOUT, mem=MEM, n_ops=rng.randint(5, 30), ops=body)
        ops = unit.blocks[0].ops
        ops[-1] = Op("exit", (), (), ("jump", unit.pc))  # the final exit becomes a back edge
        ref, env = _envs(rng, spare_page=True)  # a slow-path store would end the loop early
        if i % 2:
            _count_down_exit(unit, env, rng.randint(1, 3))
        verify(unit)
        blk = compile_unit(unit, env, loop_iters=3)
        assert "while True" in blk.source
        _check(unit, ref, env, blk, loop_iters=3)


_FOCUS = {
    "floats": ("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fneg", "fabs", "fcmp", "fext", "ftrunc",
               "sitofp", "uitofp", "fptosi", "fround", "bitcast", "select", "mov", "ld", "st", "st"),
    "ints": ("add", "sub", "mul", "neg", "and", "or", "xor", "not", "shl", "shr", "sar", "rotl", "rotr",
             "udiv", "urem", "sdiv", "srem", "clz", "ctz", "popcnt", "bswap", "parity", "zext", "sext",
             "trunc", "setcond", "select", "get", "put", "put", "exit_if"),
    "lanes": ("vadd", "vsub", "vcmpeq", "vcmpgts", "vminu", "vmaxu", "vmins", "vmaxs", "vmsb", "vshli",
              "vshri", "vsari", "vshuf", "ld", "st", "put"),
    "state": ("get", "put", "call", "exit_if", "ld", "st", "add", "setcond", "zext"),
}


_NAN_FROM_HOST = {"fadd", "fsub", "fmul", "fdiv", "fsqrt", "fround", "fext", "ftrunc", "sitofp", "uitofp"}


def _observe_all(unit) -> None:
    """Store every temp the unit defines to memory before its final exit, so that a wrong
    result shows even when nothing else reads it (at the cost of testing no dead code)."""
    block = unit.blocks[0]
    term = block.ops.pop()
    temps = [t for op in list(block.ops) for t in op.outs]
    b = Builder(unit, block)
    made_by = {t.id: op.name for op in block.ops for t in op.outs}
    for k, t in enumerate(temps[:MEM[1] // 16]):
        v = b.zext(t, I8) if t.ty == I1 else t
        if t.ty.is_float and made_by[t.id] in _NAN_FROM_HOST:
            # the sign and payload of an arithmetic NaN are the host's (docs/ir.md): one NaN
            v = b.select(b.fcmp("uno", t, t), Const(math.nan, t.ty), t)
        b.st(Const(MEM[0] + 16 * k, I64), v)
    block.ops.append(term)


@pytest.mark.parametrize("focus", sorted(_FOCUS))
@pytest.mark.parametrize("observe", [False, True])
def test_focused_units_match_the_interpreter(focus, observe):
    """Units drawn from one family of ops; with observe, every result is stored to memory."""
    rng = random.Random(f"{focus}{observe}")
    for _ in range(40):
        unit = random_unit(rng, LAYOUT, mem=MEM, n_ops=rng.randint(5, 30), ops=_FOCUS[focus])
        if observe:
            _observe_all(unit)
            verify(unit)
        ref, env = _envs(rng)
        _check(unit, ref, env, compile_unit(unit, env, loop_iters=0, check_bounds=observe))


def _narrow_unit(rng: random.Random):
    """A unit whose values have known-zero high bits (masks, shifts, narrowing, 0/1 flags) fed
    to ops whose masks the generator drops when it can prove them useless."""
    unit = Unit("x86_64", LAYOUT)
    b = Builder(unit, unit.new_block(0x500000))
    b.insn(0x500000, 4)
    gprs = ("rax", "rcx", "rdx", "rbx", "rsi", "rdi")
    pool = [b.get(r) for r in gprs[:3]]
    tys = (I1, I8, I16, I32, I64)

    def pick(ty=None):
        v = rng.choice(pool[-3:] if rng.random() < 0.7 else pool)  # mostly chains
        if ty is not None and v.ty != ty:
            v = b.trunc(v, ty) if v.ty.bits > ty.bits else b.zext(v, ty)
        return v

    for _ in range(rng.randint(4, 24)):
        k = rng.randrange(13)
        ty = rng.choice(tys[1:])
        if k == 0:
            mask = (1 << rng.randint(1, ty.bits)) - 1
            v = b.and_(pick(ty), Const(mask if rng.random() < 0.5 else rng.getrandbits(ty.bits) & mask, ty))
        elif k == 1:
            v = b.shr(pick(ty), Const(rng.randrange(ty.bits), ty))
        elif k == 2:
            v = b.sar(pick(ty), Const(rng.randrange(ty.bits), ty))
        elif k == 3:
            v = b.emit(rng.choice(("add", "sub", "mul", "or", "xor")), (ty,), (pick(ty), pick(ty))).outs[0]
        elif k == 4:
            v = b.shl(pick(ty), Const(rng.randrange(ty.bits), ty))
        elif k == 5:
            src = rng.choice(tys)
            v = b.sext(pick(src), rng.choice([t for t in tys if t.bits >= src.bits]))
        elif k == 6:
            v = b.setcond(rng.choice(("lt", "le", "gt", "ge", "ltu", "eq")), pick(ty), pick(ty))
        elif k == 7:  # the flag shapes: a flag tested for zero, and that tested again
            c = pick(I1) if rng.random() < 0.5 else b.setcond("ne", pick(ty), Const(0, ty))
            v = b.setcond("eq", b.setcond("eq", c, Const(0, I1)), Const(0, I1))
        elif k == 8:
            v = b.select(pick(I1), pick(ty), pick(ty))
        elif k == 9:
            v = rng.choice((b.clz, b.popcnt, b.parity))(pick(ty))
        elif k == 10:
            v = b.urem(pick(ty), b.or_(pick(ty), Const(1, ty)))
        elif k == 11:  # a narrow sum widened and shifted to its edge: only some of its bits matter
            src = rng.choice((I8, I16, I32))
            wide = rng.choice([t for t in (I16, I32, I64) if t.bits > src.bits])
            z = b.zext(b.emit(rng.choice(("add", "sub")), (src,), (pick(src), pick(src))).outs[0], wide)
            v = b.shl(z, Const(wide.bits - src.bits + rng.choice((-1, 0, 1)), wide))
        else:  # identities on a fresh sum or difference, which may be held unreduced
            name = rng.choice(("add", "sub", "neg"))
            s = b.emit(name, (ty,), (pick(ty),) if name == "neg" else (pick(ty), pick(ty)))
            v = b.emit(rng.choice(("xor", "or", "sub", "shl")), (ty,), (s.outs[0], Const(0, ty))).outs[0]
        pool.append(v)
    for i, v in enumerate(pool[-6:]):
        b.put(gprs[i], b.zext(v, I64))
    b.exit("jump", 0x500004)
    return unit


def test_narrow_values_match_the_interpreter():
    rng = random.Random(77)
    for i in range(150):
        unit = _narrow_unit(rng)
        if i % 2:
            _observe_all(unit)
        verify(unit)
        ref, env = _envs(rng)
        _check(unit, ref, env, compile_unit(unit, env, loop_iters=0, check_bounds=True))
