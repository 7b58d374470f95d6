"""NET trace recording (hqemu/trace/policy.py, recorder.py) and trace building (build.py).

The recorder is fed block sequences the way the engine's loop feeds it (profile each edge,
start at a hot head, on_block for every block run while recording); the expected traces follow
from the NET rules (a backward, indirect or trace-exit arrival counts; at the threshold the
next blocks are recorded until the head comes round, max_blocks, or an abort), not from the
code under test. Trace units are built from real lifted x86-64 blocks and checked against the
independent oracle of running the same blocks one at a time in the reference interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from x86oracle import CODE, DATA, DATA_SIZE, FLAGS, State, make_env

from hqemu.frontends import get, translate_block
from hqemu.frontends.x86_64.cpu import GPRS, LAYOUT
from hqemu.ir import Builder, Unit
from hqemu.ir.interp import run_block
from hqemu.ir.passes import optimize
from hqemu.ir.text import format_unit, parse_unit, structure
from hqemu.ir.verify import verify
from hqemu.trace import (
    AbortReason,
    Edge,
    HeadState,
    NetPolicy,
    TraceEnd,
    TraceRecorder,
    build_trace,
    build_trace_unit,
    edge_kind,
    trace_name,
)
from hqemu.trace.recorder import State as RecState

FE = get("x86_64")


# --- synthetic blocks ---------------------------------------------------------------------------
@dataclass
class FakeBlock:
    pc: int
    unit: Unit | None
    exits: tuple[int, ...]


def fake(pc: int, term: str = "jump", target: int = 0, side: int | None = None) -> FakeBlock:
    """A block at pc ending in `exit term, target` (or exit_ind when term == "ind")."""
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(pc))
    b.insn(pc, 4)
    if side is not None:
        b.exit_if(b.setcond("eq", b.get("rax"), 0), "jump", side)
    if term == "ind":
        b.exit_ind(b.get("rcx"))
    else:
        b.exit(term, target)
    exits = tuple(op.consts[1] for op in u.ops() if op.name in ("exit", "exit_if") and op.consts[0] == "jump")
    return FakeBlock(pc, u, exits)


def loop(*pcs: int) -> dict[int, FakeBlock]:
    """Blocks that jump to each other in order, the last back to the first."""
    return {pc: fake(pc, target=pcs[(i + 1) % len(pcs)]) for i, pc in enumerate(pcs)}


def drive(rec: TraceRecorder, blocks: dict[int, FakeBlock], path: list[int]) -> tuple[list, list[int]]:
    """Feed rec as the engine does; the traces recorded and the path indexes where one started."""
    traces, starts = [], []
    for i, pc in enumerate(path):
        blk = blocks[pc]
        if rec.state is RecState.RECORDING and not rec.on_block(blk):
            traces += rec.take()
        if i + 1 < len(path):
            nxt = blocks[path[i + 1]]
            if rec.profile(blk, nxt) and rec.start(nxt):
                starts.append(i + 1)
    return traces, starts


# --- the recorder ---------------------------------------------------------------------------------
def test_a_hot_loop_is_recorded_once_and_ends_at_the_cycle():
    blocks = loop(0x100, 0x110, 0x120)
    rec = TraceRecorder(NetPolicy(hot_threshold=5, max_blocks=16))
    traces, starts = drive(rec, blocks, [0x100, 0x110, 0x120] * 40)
    # the head is reached by the back edge 0x120 -> 0x100 once per iteration after the first:
    # the 5th arrival opens the 6th iteration (path index 15), which is recorded
    assert starts == [15]
    assert [(t.head_pc, t.pcs, t.end) for t in traces] == [(0x100, (0x100, 0x110, 0x120), TraceEnd.CYCLE)]
    st = rec.stats
    assert (st.candidate_heads, st.recordings, dict(st.traces), dict(st.aborts)) == (1, 1, {"CYCLE": 1}, {})
    assert rec.heads[0x100].status is HeadState.PENDING
    rec.installed(0x100)
    assert rec.heads[0x100].status is HeadState.TRACED and rec.state is RecState.IDLE


@pytest.mark.parametrize("n, max_blocks, want_len, want_end", [
    (20, 16, 16, TraceEnd.MAX_BLOCKS),
    (17, 16, 16, TraceEnd.MAX_BLOCKS),
    (16, 16, 16, TraceEnd.CYCLE),  # the cycle is tested before the length
    (3, 1, 1, TraceEnd.MAX_BLOCKS),
])
def test_recording_stops_at_max_blocks(n, max_blocks, want_len, want_end):
    pcs = [0x1000 + 0x10 * i for i in range(n)]
    rec = TraceRecorder(NetPolicy(hot_threshold=2, max_blocks=max_blocks))
    traces, _ = drive(rec, loop(*pcs), pcs * 5)
    assert len(traces) == 1
    assert traces[0].pcs == tuple(pcs[:want_len]) and traces[0].end is want_end
    assert rec.stats.trace_lengths == {want_len: 1}


def test_a_syscall_block_aborts_and_the_head_is_blacklisted_after_max_aborts():
    blocks = {0x100: fake(0x100, target=0x110), 0x110: fake(0x110, "syscall", 0x130),
              0x130: fake(0x130, target=0x100)}
    rec = TraceRecorder(NetPolicy(hot_threshold=2, max_blocks=16, max_aborts=3))
    traces, starts = drive(rec, blocks, [0x100, 0x110, 0x130] * 50)
    assert traces == []
    # the head's arrivals are at indexes 3, 6, 9, ...; an abort (at the syscall block right
    # after a start) restarts the count: 2 more arrivals per attempt, 3 attempts, blacklisted
    assert starts == [6, 12, 18]
    st = rec.stats
    assert (st.recordings, dict(st.aborts), st.blacklisted, st.candidate_heads) == (3, {"SYSCALL": 3}, 1, 1)
    assert rec.heads[0x100].status is HeadState.BLACKLISTED


@pytest.mark.parametrize("bad, reason", [
    (fake(0x110, "sigill", 0x110), AbortReason.GUEST_SIGNAL),
    (FakeBlock(0x110, None, ()), AbortReason.UNCOMPILABLE),
])
def test_blocks_that_cannot_be_in_a_trace_abort_with_their_reason(bad, reason):
    blocks = {0x100: fake(0x100, target=0x110), 0x110: bad, 0x120: fake(0x120, target=0x100)}
    rec = TraceRecorder(NetPolicy(hot_threshold=1, max_blocks=16, max_aborts=100))
    drive(rec, blocks, [0x100, 0x110, 0x120] * 4)
    assert dict(rec.stats.aborts) == {reason.name: 3}
    # side exits to a signal are fine: a guarded division's sigfpe is a rarely taken exit
    assert NetPolicy().block_abort(fake(0x100, target=0x100, side=0x200).unit) is None


def test_indirect_arrivals_make_candidates_and_a_trace_head_ends_a_recording():
    # 0x200 ends with exit_ind to 0x300 (forward, but indirect): a candidate from the first
    # iteration on; 0x100 (reached by the back edge from 0x400) only from the second
    blocks = {0x200: fake(0x200, "ind"), 0x300: fake(0x300, target=0x400), 0x400: fake(0x400, target=0x200)}
    assert edge_kind(blocks[0x200], 0x300) is Edge.INDIRECT
    assert edge_kind(blocks[0x300], 0x400) is Edge.DIRECT
    rec = TraceRecorder(NetPolicy(hot_threshold=3, max_blocks=16))
    traces, starts = drive(rec, blocks, [0x200, 0x300, 0x400] * 10)
    assert rec.stats.candidate_heads == 2
    # 0x300's 3rd arrival is in iteration 3 (index 7); 0x200's 3rd opens iteration 4 (index 9),
    # while 0x300 is being recorded; its 4th arrival (iteration 5, index 12) starts it, and the
    # next block, 0x300, is now a trace head
    assert starts == [7, 12]
    assert [(t.pcs, t.end) for t in traces] == [((0x300, 0x400, 0x200), TraceEnd.CYCLE),
                                              ((0x200,), TraceEnd.TRACE_HEAD)]


def test_trace_exit_arrivals_count_and_engine_aborts_reset_and_release():
    blocks = loop(0x100, 0x180)  # 0x180 -> 0x100 is a back edge
    rec = TraceRecorder(NetPolicy(hot_threshold=2, max_blocks=16, max_aborts=10))
    a, b = blocks[0x100], blocks[0x180]
    assert not rec.profile(b, a) and rec.profile(None, a, Edge.TRACE_EXIT)  # 2 arrivals
    assert rec.start(a) and rec.on_block(a)
    assert not rec.start(b)  # one recording at a time
    rec.on_abort(AbortReason.EXCEPTION)
    assert rec.state is RecState.IDLE and rec.take() == [] and rec.stats.aborts == {"EXCEPTION": 1}
    assert rec.start(a) and rec.on_block(a) and rec.on_block(b)
    rec.reset()  # guest code changed mid-recording
    assert rec.stats.aborts["INVALIDATED"] == 1 and rec.generation == 1 and not rec.heads
    assert rec.start(a) and rec.on_block(a) and rec.on_block(b) and not rec.on_block(a)
    (t,) = rec.take()
    assert (t.pcs, t.end, t.generation) == ((0x100, 0x180), TraceEnd.CYCLE, 1)
    assert not rec.start(a) and rec.stats.aborts["HEAD_HAS_TRACE"] == 1  # it is being compiled
    rec.release(0x100)  # ... and was not (the queue was full): a candidate again
    assert rec.start(a)
    rec.disable()
    assert rec.state is RecState.DISABLED and not rec.profile(b, a) and not rec.start(a)


def test_an_inner_loop_repeats_pcs_when_its_own_head_cannot_be_traced():
    blocks = {0x100: fake(0x100, target=0x200), 0x200: fake(0x200, target=0x300),
              0x300: fake(0x300, target=0x200, side=0x400), 0x400: fake(0x400, target=0x100)}
    rec = TraceRecorder(NetPolicy(hot_threshold=2, max_blocks=4))
    rec.compile_failed(0x200)  # the inner head is blacklisted
    inner = [0x200, 0x300] * 3
    traces, _ = drive(rec, blocks, ([0x100] + inner + [0x400]) * 4)
    (t,) = traces
    assert (t.pcs, t.end) == ((0x100, 0x200, 0x300, 0x200), TraceEnd.MAX_BLOCKS)
    unit = build_trace_unit(t.blocks)
    verify(unit)
    assert [b.pc for b in unit.blocks] == [0x100, 0x200, 0x300]  # kept once, at its first place


# --- building traces from lifted x86-64 blocks -----------------------------------------------
# rax += rcx; if rcx odd: rbx += 3; [rdi] += rax; loop while --rcx; ret
LOOP = bytes.fromhex(
    "4801c8"            # 0x2000 add rax, rcx
    "48f7c101000000"    # 0x2003 test rcx, 1
    "7404"              # 0x200a jz 0x2010
    "4883c303"          # 0x200c add rbx, 3
    "480107"            # 0x2010 add [rdi], rax
    "48ffc9"            # 0x2013 dec rcx
    "75e8"              # 0x2016 jnz 0x2000
    "c3")               # 0x2018 ret
# for rcx: rdx = 8; do rax += rdx while --rdx; while --rcx
NESTED = bytes.fromhex(
    "48c7c208000000"    # 0x2000 mov rdx, 8
    "4801d0"            # 0x2007 add rax, rdx
    "48ffca"            # 0x200a dec rdx
    "75f8"              # 0x200d jnz 0x2007
    "48ffc9"            # 0x200f dec rcx
    "75ec"              # 0x2012 jnz 0x2000
    "c3")               # 0x2014 ret


class Program:
    """Guest code at CODE, lifted block by block (optimized as the engine does) on demand."""

    def __init__(self, code: bytes):
        self.code = code
        self.end = CODE + len(code) - 1  # the ret: never part of a test trace
        self.mem = make_env(code, start_state()).mem
        self.blocks: dict[int, SimpleNamespace] = {}

    def block(self, pc: int) -> SimpleNamespace:
        blk = self.blocks.get(pc)
        if blk is None:
            unit = optimize(translate_block(FE, self.mem, pc, 64))
            exits = tuple(op.consts[1] for op in unit.ops()
                          if op.name in ("exit", "exit_if") and op.consts[0] == "jump")
            blk = self.blocks[pc] = SimpleNamespace(pc=pc, unit=unit, exits=exits)
        return blk


def start_state(**regs: int) -> State:
    st = State([0] * len(GPRS), dict.fromkeys(FLAGS, 0), bytes(range(256)) * (DATA_SIZE // 256))
    return st.with_regs(rsp=DATA + 0x2000, rdi=DATA + 0x100, **regs)


def record(prog: Program, rec: TraceRecorder, st: State, max_steps: int = 10_000) -> list:
    """Run prog from CODE in the interpreter, one block at a time, with rec in the loop."""
    env = make_env(prog.code, st)
    blk, traces = prog.block(CODE), []
    for _ in range(max_steps):
        if rec.state is RecState.RECORDING and not rec.on_block(blk):
            traces += rec.take()
        kind, pc = run_block(blk.unit, env)
        if kind != "jump" or pc == prog.end:
            break
        nxt = prog.block(pc)
        if rec.profile(blk, nxt):
            rec.start(nxt)
        blk = nxt
    return traces


def run_one_by_one(units: dict[int, Unit], pc: int, env) -> tuple[str, int]:
    """The oracle: each block run alone, continuing while the next pc is one of them."""
    for _ in range(100_000):
        kind, pc = run_block(units[pc], env)
        if kind != "jump" or pc not in units:
            return kind, pc
    raise AssertionError("no exit")


def snapshot(env) -> tuple:
    return tuple(env.state), bytes(env.mem.regions[DATA])


def check_against_blocks(prog: Program, unit: Unit, st: State) -> tuple[str, int]:
    """Run the trace unit and the blocks it was built from on the same state; they must agree."""
    ref = make_env(prog.code, st)
    ref.state[LAYOUT["rip"].offset >> 3] = unit.pc
    want = run_one_by_one({b.pc: prog.block(b.pc).unit for b in unit.blocks}, unit.pc, ref)
    env = make_env(prog.code, st)
    env.state[LAYOUT["rip"].offset >> 3] = unit.pc
    got = run_block(unit, env)
    assert got == want
    assert snapshot(env) == snapshot(ref)
    return got


def check_unit(unit: Unit) -> None:
    verify(unit)
    text = format_unit(unit)
    again = parse_unit(text, LAYOUT)
    assert format_unit(again) == text and structure(again) == structure(unit)
    ids = [t.id for op in unit.ops() for t in op.outs]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("rcx", [40, 41])
def test_a_recorded_x86_loop_runs_like_its_blocks(rcx):
    prog = Program(LOOP)
    rec = TraceRecorder(NetPolicy(hot_threshold=4, max_blocks=16))
    (trace,) = record(prog, rec, start_state(rcx=rcx))
    # the recorded iteration took the odd or the even path: 0x200c (rbx += 3 and the rest) or 0x2010
    assert trace.head_pc == CODE and trace.pcs in ((0x2000, 0x200c), (0x2000, 0x2010))
    t = build_trace(trace, trace_name(trace.head_pc, 1))
    check_unit(t.unit)
    assert t.text == format_unit(t.unit) and t.info.entry == "trace_2000_1"
    assert t.info.block_pcs == trace.pcs and t.info.end is TraceEnd.CYCLE
    assert t.info.guest_insns == sum(prog.block(pc).unit.guest_insns() for pc in trace.pcs)
    # the exits: the branch the recording did not take, and the loop's fall-through to the ret
    other = 0x2010 if trace.pcs[1] == 0x200c else 0x200c
    assert {(e.kind, e.target) for e in t.info.exits} == {("jump", other), ("jump", 0x2018)}
    for n in (1, 2, 7, 30):  # odd and even counts leave by either exit
        pc = check_against_blocks(prog, t.unit, start_state(rcx=n, rax=n * 7))[1]
        assert pc in (other, 0x2018)


def test_nested_loops_and_a_one_block_trace():
    prog = Program(NESTED)
    rec = TraceRecorder(NetPolicy(hot_threshold=3, max_blocks=16))
    traces = record(prog, rec, start_state(rcx=30))
    # the inner loop (0x2007, jumping to itself) gets hot in the first outer iteration; the
    # outer head (arrivals from 0x200f) at the start of the fourth, and its trace stops where
    # the inner one begins
    assert [(t.pcs, t.end) for t in traces] == [((0x2007,), TraceEnd.CYCLE), ((0x2000,), TraceEnd.TRACE_HEAD)]
    inner = build_trace(traces[0], "inner").unit
    check_unit(inner)
    assert [b.pc for b in inner.blocks] == [0x2007, 0x2007]  # the back edge needs a second block
    assert check_against_blocks(prog, inner, start_state(rdx=9, rax=5)) == ("jump", 0x200f)
    # the whole loop nest as one trace, as if the inner head had not been traced
    blocks = [prog.block(pc) for pc in (0x2000, 0x2007, 0x2007, 0x200f)]
    t = build_trace(SimpleNamespace(blocks=blocks, end=TraceEnd.CYCLE), "nest")
    check_unit(t.unit)
    assert t.info.block_pcs == (0x2000, 0x2007, 0x200f) and t.info.recorded_pcs[2] == 0x2007
    assert {(e.kind, e.target) for e in t.info.exits} == {("jump", 0x2014)}
    assert check_against_blocks(prog, t.unit, start_state(rcx=6)) == ("jump", 0x2014)
