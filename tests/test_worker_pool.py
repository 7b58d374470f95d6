"""The LLVM worker pool (hqemu/trace/pool.py, workers/main.py): traces built from lifted x86-64
blocks are compiled in worker processes, loaded into this process and run natively; the
reference interpreter running the same trace unit is the oracle. Then the failure paths: a
full queue, a compile error, a worker killed mid-compile (replaced, retried once, then
dropped), shutdown with compiles in flight, and hqemu ending without calling shutdown.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import psutil
import pytest
from test_trace_recorder import LOOP, NESTED, Program, record, snapshot, start_state
from x86oracle import DATA, make_env

from hqemu.frontends.x86_64.cpu import LAYOUT
from hqemu.ir import EXIT_KINDS, Unit
from hqemu.ir.interp import run_block
from hqemu.native.loader import ExitInfo, native
from hqemu.trace import NetPolicy, Request, TraceEnd, TraceRecorder, WorkerPool, build_trace
from workers.main import handle

_serial = itertools.count()
RIP = LAYOUT["rip"].offset >> 3


def name() -> str:
    return f"pooltest_{os.getpid()}_{next(_serial)}"  # entry symbols are unique per process


def loop_trace(rcx: int):
    prog = Program(LOOP)
    (trace,) = record(prog, TraceRecorder(NetPolicy(hot_threshold=3)), start_state(rcx=rcx))
    return prog, build_trace(trace, name())


def nest_trace():
    prog = Program(NESTED)
    blocks = [prog.block(pc) for pc in (0x2000, 0x2007, 0x2007, 0x200f)]
    return prog, build_trace(SimpleNamespace(blocks=blocks, end=TraceEnd.MAX_BLOCKS), name())


def collect(pool: WorkerPool, n: int, timeout: float = 30.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += pool.poll()
        time.sleep(0.002)
    assert len(out) == n, f"{len(out)} of {n} results after {timeout}s: {pool.stats}"
    return out


def run_both(prog: Program, unit: Unit, r, **regs: int) -> None:
    """Run the compiled trace and the interpreter on the same state: they must agree."""
    st = start_state(**regs)
    ref = make_env(prog.code, st)
    ref.state[RIP] = unit.pc
    want = run_block(unit, ref)
    env = make_env(prog.code, st)
    env.state[RIP] = unit.pc
    nc = native()
    addr = nc.entries.get(r.entry) or nc.load(r.obj, r.entry)
    data = env.mem.regions[DATA]
    buf = (ctypes.c_char * len(data)).from_buffer(data)
    info = ExitInfo()  # the record the unit writes: exit kind first (workers/lower.py)
    try:
        pc = nc.call(addr, ctypes.addressof(env.cpu), ctypes.addressof(buf) - DATA, ctypes.addressof(info))
    finally:
        del buf
    assert (EXIT_KINDS[info[0]], pc) == want
    words, mem = snapshot(env)
    ref_words, ref_mem = snapshot(ref)
    assert mem == ref_mem
    # the compiled code writes back only the globals the trace uses; rip is the engine's to set
    for g in unit.globals.values():
        for i in range(g.offset >> 3, (g.offset + g.ty.bits // 8 + 7) >> 3):
            assert words[i] == ref_words[i], g.name


def test_handle_turns_every_failure_into_a_one_line_reply():
    prog, t = loop_trace(9)
    ok = handle((1, t.text, t.info.entry, "none", 0.0))
    assert ok[:2] == ("ok", 1) and ok[2][:4] == b"\x7fELF" and ok[3] == t.info.entry and ok[5] == os.getpid()
    assert set(ok[4]) >= {"lower", "parse", "optimize", "codegen", "total"}
    for bad in ((2, "unit x86_64\nblock 0x1000\n  frobnicate %1\n", "f", "cheap", 0.0),
                (3, t.text, "f", "O9", 0.0), "not a request"):
        err = handle(bad)
        assert err[0] == "err" and "\n" not in err[2] and err[2], err


def test_traces_compiled_by_the_workers_run_like_the_interpreter():
    jobs = [(*loop_trace(40), "cheap"), (*loop_trace(41), "O2"), (*nest_trace(), "none")]
    with WorkerPool(n_workers=2, opt="cheap", queue_size=8) as pool:
        for i, (_, t, opt) in enumerate(jobs):
            assert pool.submit(Request(i, t.text, t.info.entry, opt, meta=t.info))
        results = sorted(collect(pool, len(jobs)), key=lambda r: r.id)
        assert sum(w.compiles for w in pool.worker_states()) == len(jobs)
        st = pool.stats
        assert (st.submitted, st.dispatched, st.compiled, st.failed, st.crashes) == (3, 3, 3, 0, 0)
        assert all(len(st.stage_seconds[s]) == 3 for s in ("lower", "codegen", "total", "wait", "latency"))
    for (prog, t, _), r in zip(jobs, results):
        assert r.ok and r.meta is t.info and r.entry == t.info.entry, r.error
        for rcx in (1, 2, 5, 12):
            run_both(prog, t.unit, r, rcx=rcx, rax=3 * rcx)


def test_a_compile_error_is_a_result_and_the_worker_lives_on():
    _, t = loop_trace(9)
    with WorkerPool(n_workers=1, queue_size=4) as pool:
        assert pool.submit(Request(1, "unit x86_64\nblock 0x1000\n  exit jump\n", name()))
        assert pool.submit(Request(2, t.text, t.info.entry))
        bad, good = sorted(collect(pool, 2), key=lambda r: r.id)
        assert not bad.ok and bad.obj is None and bad.error and "\n" not in bad.error
        assert good.ok and good.worker_pid == bad.worker_pid
        assert (pool.stats.failed, pool.stats.compiled, pool.stats.crashes) == (1, 1, 0)


def _mp_helper(p: psutil.Process) -> bool:
    """The forkserver and the resource tracker: multiprocessing's own, shared, long-lived."""
    try:
        return "from multiprocessing." in " ".join(p.cmdline())
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_full_queue_refuses_and_shutdown_with_compiles_in_flight_is_quick_and_clean(method):
    _, t = loop_trace(9)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    pool = WorkerPool(n_workers=1, queue_size=2, start_method=method)
    assert pool.wait_ready(60)
    assert pool.submit(Request(1, t.text, name(), debug_sleep=30))  # in flight for 30 s
    assert pool.submit(Request(2, t.text, name())) and pool.submit(Request(3, t.text, name()))
    assert not pool.submit(Request(4, t.text, name()))
    assert (pool.in_flight, pool.depth, pool.stats.refused_full, pool.stats.queue_high_water) == (1, 2, 1, 2)
    pids = [w.pid for w in pool.worker_states()]
    t0 = time.monotonic()
    pool.shutdown(timeout=2.0)
    assert time.monotonic() - t0 < 2.5
    assert pool.stats.cancelled == 3
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not [p for p in left if p.pid in pids]
    assert all(_mp_helper(p) for p in left), left
    assert not [p for p in left if _zombie(p)]
    pool.shutdown()  # idempotent
    assert not pool.submit(Request(5, t.text, name()))
    assert pool.stats.refused_closed == 1 and pool.poll() == []


def test_a_pool_whose_workers_cannot_start_fails_its_requests_and_refuses_more(monkeypatch):
    def cannot_start(self):
        raise OSError("no processes today")

    monkeypatch.setattr(mp.context.SpawnProcess, "start", cannot_start)
    _, t = loop_trace(9)
    with WorkerPool(n_workers=2, queue_size=4, start_method="spawn") as pool:
        assert pool.submit(Request(1, t.text, name()))  # queued: no worker is up yet
        (r,) = collect(pool, 1, timeout=10)
        assert not r.ok and "no LLVM worker could be started: OSError: no processes today" in r.error
        assert pool.broken and not pool.wait_ready(1) and not pool.submit(Request(2, t.text, name()))
        assert (pool.stats.start_failures, pool.stats.refused_closed, pool.stats.workers_started) == (6, 1, 0)


def _busy_pid(pool: WorkerPool, not_pid: int, timeout: float = 20.0) -> int:
    """Poll until a worker other than not_pid is compiling; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert pool.poll() == []
        busy = [w.pid for w in pool.worker_states() if w.busy and w.pid != not_pid]
        if busy:
            return busy[0]
        time.sleep(0.002)
    raise AssertionError(f"no worker took the request: {pool.stats}")


def test_a_killed_worker_is_replaced_and_its_request_retried_once_then_dropped():
    prog, t = loop_trace(9)
    with WorkerPool(n_workers=1, queue_size=4) as pool:
        assert pool.wait_ready(60)
        first = pool.worker_states()[0].pid
        assert pool.submit(Request(1, t.text, t.info.entry, debug_sleep=0.3))
        os.kill(_busy_pid(pool, 0), signal.SIGKILL)
        (r,) = collect(pool, 1)
        assert r.ok and r.worker_pid != first, r.error
        run_both(prog, t.unit, r, rcx=7)
        st = pool.stats
        assert (st.crashes, st.retried, st.dropped, st.workers_started, st.dispatched) == (1, 1, 0, 2, 2)
        # killed again on its retry: dropped and reported
        second = pool.worker_states()[0].pid
        assert pool.submit(Request(2, t.text, name(), debug_sleep=0.3))
        os.kill(_busy_pid(pool, 0), signal.SIGKILL)
        third = _busy_pid(pool, second)
        os.kill(third, signal.SIGKILL)
        (r,) = collect(pool, 1)
        assert not r.ok and "died twice" in r.error and r.id == 2
        assert (st.crashes, st.retried, st.dropped) == (3, 2, 1)
        # and the pool still works
        _, t2 = loop_trace(10)
        assert pool.submit(Request(3, t2.text, t2.info.entry))
        (r,) = collect(pool, 1)
        assert r.ok and r.worker_pid not in (first, second, third)
        assert not [p for p in psutil.Process().children(recursive=True) if p.pid in (first, second, third)]


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from hqemu.trace import Request, WorkerPool
    pool = WorkerPool(n_workers=2, queue_size=4)
    assert pool.wait_ready(60)
    text = "unit x86_64\\nblock 0x1000\\n  exit jump, 0x1000\\n"
    pool.submit(Request(1, text, "f", debug_sleep={sleep}))
    print("ready", flush=True)
    sys.stdin.readline()
    {end}
""")


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited (an orphan waits for init)
    except psutil.NoSuchProcess:
        return False


def _zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("end, sleep", [
    ("sys.exit(3)", 30),  # the guest exited (or died by a signal: process.run returns the same way)
    ("os.kill(os.getpid(), signal.SIGKILL)", 0),  # hqemu itself killed: no atexit at all
])
def test_no_worker_outlives_hqemu(end, sleep):
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(end=end, sleep=sleep)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert child.stdout.readline().strip() == "ready"
        family = psutil.Process(child.pid).children(recursive=True)
        assert len(family) >= 2  # the workers (and multiprocessing's helpers)
        t0 = time.monotonic()
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait(10)
        while family and time.monotonic() - t0 < 5:
            family = [p for p in family if _running(p)]
            time.sleep(0.005)
        assert not family
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
