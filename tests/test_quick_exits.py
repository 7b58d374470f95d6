"""Quick-tier exits and faults: state exact where it must be, faults mapped to guest pcs.

The expected pcs are the `insn` markers the units are written with; the expected state is
the reference interpreter's.
"""

from __future__ import annotations

import pytest
from test_quick_fakes import PAGE, FakeEnv, R

from hqemu.errors import GuestFault, GuestSignal
from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import I64, Helper, register
from hqemu.ir.interp import run_block
from hqemu.ir.text import parse_unit
from hqemu.quick import compile_unit


def _fault(env, a):
    raise GuestFault(a)


register(Helper("qtest_fault", (I64,), (), reads_mem=True, doc="faults at its argument"), _fault)

HEADER = """unit x86_64
global rax i64 0
global rcx i64 8
global rdx i64 16
global rbx i64 24
global zf i64 160
"""

# three instructions: a load through rax, a store through rdx, a helper that faults at rbx
FAULTING = parse_unit(HEADER + """block 0x1000
  insn 0x1000, 4
  %0:i64 = get rax
  %1:i64 = add %0, 0x8:i64
  put rcx, %1
  insn 0x1004, 3
  %2:i64 = ld %0
  put rax, %2
  insn 0x1007, 3
  %3:i64 = get rdx
  st %3, %2
  insn 0x100a, 5
  %4:i64 = get rbx
  %5:i1 = setcond ne, %4, 0x0:i64
  exit_if jump, 0x100f, %5
  call qtest_fault, %4
  exit jump, 0x100f
""", LAYOUT)


def _env(**regs) -> FakeEnv:
    env = FakeEnv.new(pages=8)
    env.mem.protect(5, 0)  # unmapped
    env.mem.protect(6, R)  # read-only
    for k, v in regs.items():
        env.set_reg(k, v)
    return env


@pytest.mark.parametrize("loop_iters", [0, 4])
@pytest.mark.parametrize("regs, exc, pc", [
    (dict(rax=0x5000, rdx=0x1000, rbx=1), GuestFault, 0x1004),  # load from an unmapped page
    (dict(rax=0x4ffc, rdx=0x1000, rbx=1), GuestFault, 0x1004),  # load crossing into it
    (dict(rax=1 << 40, rdx=0x1000, rbx=1), IndexError, 0x1004),  # beyond the reservation
    (dict(rax=0x1000, rdx=0x6000, rbx=1), GuestFault, 0x1007),  # store to a read-only page
    (dict(rax=0x1000, rdx=0x2000, rbx=0), GuestFault, 0x100a),  # inside a helper
])
def test_fault_reports_the_guest_pc(regs, exc, pc, loop_iters):
    env = _env(**regs)
    blk = compile_unit(FAULTING, env, loop_iters=loop_iters)
    with pytest.raises(exc) as info:
        blk.fn()
    assert blk.pc_for_traceback(info.value.__traceback__) == pc
    if exc is GuestFault:  # the interpreter faults too (it cannot say where)
        with pytest.raises(GuestFault):
            run_block(FAULTING, _env(**regs))


def test_no_fault_runs_through():
    env, ref = _env(rax=0x1000, rdx=0x2000, rbx=1), _env(rax=0x1000, rdx=0x2000, rbx=1)
    blk = compile_unit(FAULTING, env)
    assert blk.fn() == run_block(FAULTING, ref)[1]
    assert list(env.state) == list(ref.state)
    assert blk.exits == (0x100F, 0x100F) and blk.n_insns == 4 and blk.size == 15


def test_traceback_of_another_frame_is_none():
    blk = compile_unit(FAULTING, _env())
    try:
        raise GuestFault(0)
    except GuestFault as e:
        assert blk.pc_for_traceback(e.__traceback__) is None


# puts before each exit; a later put overwrites; exits of every kind
DIRTY = HEADER + """block 0x2000
  insn 0x2000, 3
  put rax, 0x1:i64
  put rbx, 0x2:i64
  %0:i64 = get rcx
  %1:i1 = setcond eq, %0, 0x0:i64
  exit_if {kind}, 0x2003, %1
  insn 0x2003, 3
  put rax, 0x3:i64
  %2:i64 = get rax
  %3:i64 = add %2, %0
  put zf, %3
  %4:i1 = setcond eq, %0, 0x1:i64
  exit_if jump, 0x2010, %4
  put zf, 0x9:i64
  exit jump, 0x2006
"""


@pytest.mark.parametrize("kind", ["jump", "syscall", "sigsegv", "sigill"])
@pytest.mark.parametrize("rcx", [0, 1, 2])
def test_state_is_exact_at_every_exit(kind, rcx):
    unit = parse_unit(DIRTY.format(kind=kind), LAYOUT)
    env, ref = _env(rcx=rcx, rax=0x77, zf=0x55), _env(rcx=rcx, rax=0x77, zf=0x55)
    seen_by_syscall = []
    env.do_syscall = lambda pc: seen_by_syscall.append(list(env.state)) or pc + 100
    blk = compile_unit(unit, env)
    kind_ref, pc_ref = run_block(unit, ref)
    try:
        got = ("jump", blk.fn())
    except GuestSignal as e:
        got = ({4: "sigill", 11: "sigsegv"}[e.signo], e.pc)
    if kind_ref == "syscall":
        assert seen_by_syscall == [list(ref.state)]  # the syscall saw the exact state
        assert got == ("jump", pc_ref + 100)  # and the block continued where it said
    else:
        assert got == (kind_ref, pc_ref)
    assert list(env.state) == list(ref.state)


def test_globals_are_stored_only_on_the_way_out():
    """The put that is overwritten before any exit is never stored; a value is stored once
    per exit path (read from the generated source: the discipline is a code shape)."""
    unit = parse_unit(DIRTY.format(kind="jump"), LAYOUT)
    src = compile_unit(unit, _env()).source
    assert "S[20] = 9" in src and src.count("S[20] =") == 2  # zf: at the second exit and the last
    assert src.count("S[0] =") == 3  # rax: once per exit


def test_self_loop_stops_after_a_slow_path_store():
    """A store that takes the slow path (where writes to translated code are caught) ends the
    loop after the current iteration, with the state stored."""
    unit = parse_unit(HEADER + """block 0x3000
  insn 0x3000, 4
  %0:i64 = get rax
  %1:i64 = add %0, 0x1:i64
  put rax, %1
  %2:i64 = get rdx
  st %2, %1
  insn 0x3004, 2
  %3:i1 = setcond ltu, %1, 0x64:i64
  exit_if jump, 0x3000, %3
  exit jump, 0x3006
""", LAYOUT)
    env = _env(rax=0, rdx=0x1000)
    env.mem.fast_w[1] = 0  # as if page 1 held translated code
    blk = compile_unit(unit, env, loop_iters=50)
    assert blk.fn() == 0x3000 and env.reg("rax") == 1 and blk.count == 0
    env.mem.fast_w[1] = 1
    assert blk.fn() == 0x3000 and env.reg("rax") == 52 and blk.count == 50
    assert blk.fn() == 0x3006 and env.reg("rax") == 100
    assert int.from_bytes(env.mem.buf[0x1000:0x1008], "little") == 100
    assert PAGE == 0x1000


TWO_BLOCKS = HEADER + """block 0x4000
  insn 0x4000, 3
  %0:i64 = get rax
  %1:i64 = add %0, 0x1:i64
  put rax, %1
  put zf, 0x1:i64
  %2:i1 = setcond eq, %1, 0x10:i64
  exit_if jump, 0x4100, %2
  exit jump, 0x4003
block 0x4003
  insn 0x4003, 3
  %3:i64 = get rax
  %4:i64 = get zf
  %5:i64 = add %3, %4
  put rcx, %5
  put zf, 0x0:i64
  %6:i1 = setcond ltu, %5, 0x8:i64
  exit_if sigfpe, 0x4003, %6
  exit jump, 0x4006
"""


@pytest.mark.parametrize("rax", [0, 0xF, 0x5, 0x40])
def test_blocks_laid_out_in_order_fall_through(rax):
    """A unit of two blocks (a trace) whose first ends by jumping to the second runs both in
    one call, the state flowing through locals; its exits agree with the interpreter."""
    unit = parse_unit(TWO_BLOCKS, LAYOUT)
    env, ref = _env(rax=rax), _env(rax=rax)
    blk = compile_unit(unit, env)
    exp = run_block(unit, ref)
    try:
        got = ("jump", blk.fn())
    except GuestSignal as e:
        got = ("sigfpe", e.pc)
    assert got == exp and list(env.state) == list(ref.state)
    assert blk.exits == (0x4100, 0x4006) and blk.n_insns == 2
