"""The optimization-request queue and the LLVM worker processes that serve it.

    >>> pool = WorkerPool(n_workers=1, opt="cheap", queue_size=32)    # starts workers in the background
    >>> pool.submit(Request(1, format_unit(unit), "trace_401000_1", meta=info))   # False: queue full
    >>> for r in pool.poll():                     # never blocks; call it every few ms
    ...     if r.ok: addr = native().load(r.obj, r.entry)
    >>> pool.shutdown(timeout=2.0)                # also runs at interpreter exit

Design. Each worker is a multiprocessing Process (forkserver by default: fork is unsafe once
the main process has native threads, FACTS.md) with its own duplex Pipe, and holds at most one
request; the bounded queue of requests waiting for a worker lives here, in the main process.
So the pool always knows which request each worker is compiling: when a worker dies (its
connection reads EOF), its request is retried once on a replacement and then dropped and
counted. A shared multiprocessing.Queue could not tell that, and a worker killed while
holding its lock would hang the others.

The main thread never waits: submit() pickles a small tuple into an idle worker's pipe or
appends to the queue; poll() does one select() over the busy workers' connections. Starting a
process blocks (the forkserver's first start takes ~200 ms), so a launcher thread starts the
workers and their replacements; poll() adopts them when they are up. The forkserver preloads
workers.compile (llvmlite), so a replacement is ready in ~15 ms.

Shutdown terminates and joins every worker (no zombies), is idempotent, and is registered
with atexit, which also runs when the guest exits or dies by a signal (process.run returns
normally then). If hqemu itself is killed, the workers read EOF on their connection and exit.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from workers.main import serve

CLOCK = time.perf_counter
START_METHODS = ("forkserver", "spawn")
MAX_START_TRIES = 3  # consecutive failed starts of one worker slot before it is given up
MAX_RESTARTS = 64  # replacements of crashed workers per pool: a crash loop ends in failures
_STOP = None  # the launcher's stop command


@dataclass
class Request:
    id: int  # chosen by the caller, unique per pool
    ir_text: str  # hqemu IR (hqemu.ir.text.format_unit): what crosses the process boundary
    entry: str  # the symbol the object will define (unique per process: MCJIT cannot replace one)
    opt: str | None = None  # optimization level (workers.compile.OPT_LEVELS); None = the pool's
    meta: Any = None  # kept in the main process and handed back in the Result (e.g. a TraceInfo)
    debug_sleep: float = 0.0  # seconds the worker sleeps before compiling (tests: a slow compile)
    attempts: int = 0  # times sent to a worker (a worker crash makes it 2)
    t_submit: float = 0.0  # CLOCK() at submit
    t_dispatch: float = 0.0  # CLOCK() when last sent to a worker


@dataclass
class Result:
    id: int
    ok: bool
    obj: bytes | None  # the ELF object for hqemu.native.loader (ok only)
    entry: str
    seconds: dict[str, float]  # worker stages (lower, parse, optimize, codegen, total), then
    # wait (submit -> sent to a worker) and latency (submit -> seen by poll), measured here
    worker_pid: int  # 0 when no worker produced it
    error: str = ""  # one line when not ok
    meta: Any = None  # the request's meta


@dataclass
class WorkerState:
    slot: int
    pid: int
    busy: bool
    request: int | None  # the id of the request being compiled
    compiles: int  # results it returned


@dataclass
class PoolSnapshot:
    queued: list[Request]  # waiting for a worker, oldest first
    compiling: list[Request]  # with a worker
    workers: list[WorkerState]  # the live workers, by slot order of the pool's list


@dataclass
class PoolStats:
    """The pool's counters (declared once; the lead merges them into hqemu.stats)."""

    submitted: int = 0  # requests accepted by submit()
    refused_full: int = 0  # submit() found the queue full
    refused_closed: int = 0  # submit() after shutdown, or with no worker able to start
    dispatched: int = 0  # sends to a worker (retries included)
    compiled: int = 0  # ok results
    failed: int = 0  # error results: the worker raised (bad IR, lowering error)
    crashes: int = 0  # workers that died (SIGKILL, an LLVM abort)
    retried: int = 0  # requests sent again after their worker died
    dropped: int = 0  # requests given up after their second worker died
    cancelled: int = 0  # requests queued or in flight at shutdown
    workers_started: int = 0  # processes started, replacements included
    start_failures: int = 0  # processes that could not be started
    queue_high_water: int = 0  # most requests ever waiting for a worker
    compile_seconds: float = 0.0  # worker time over all results
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)  # stage -> one per result
    main_seconds: float = 0.0  # main-thread time in submit() and poll()
    main_calls: int = 0  # submit() and poll() calls that did some work

    def summary(self) -> list[str]:
        lines = [f"{k}: {v}" for k, v in vars(self).items() if not isinstance(v, dict)]
        for stage, xs in self.stage_seconds.items():
            p = percentiles(xs, (50, 90, 99))
            lines.append(f"{stage}: n={len(xs)} p50={p[0] * 1e3:.2f}ms p90={p[1] * 1e3:.2f}ms "
                         f"p99={p[2] * 1e3:.2f}ms max={max(xs) * 1e3:.2f}ms")
        return lines


def percentiles(xs: list[float], ps: tuple[int, ...]) -> list[float]:
    """Nearest-rank percentiles of xs (0.0 for an empty list)."""
    if not xs:
        return [0.0 for _ in ps]
    s = sorted(xs)
    return [s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))] for p in ps]


class _Worker:
    __slots__ = ("slot", "proc", "conn", "pid", "busy", "compiles")

    def __init__(self, slot: int, proc: Any, conn: Any):
        self.slot = slot  # index of its place in the pool (a replacement keeps it)
        self.proc = proc  # the multiprocessing Process
        self.conn = conn  # the main process's end of its Pipe
        self.pid = proc.pid
        self.busy: Request | None = None  # the request it is compiling
        self.compiles = 0  # results returned


class WorkerPool:
    def __init__(self, n_workers: int = 1, opt: str = "cheap", queue_size: int = 32,
                 start_method: str = "forkserver"):
        if n_workers < 1:
            raise ValueError("WorkerPool needs at least one worker")
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS} (fork is unsafe with "
                             f"native threads), not {start_method!r}")
        self.n_workers = n_workers
        self.opt = opt
        self.queue_size = queue_size
        self.stats = PoolStats()
        self.pending: deque[Request] = deque()  # waiting for a worker, oldest first
        self.workers: list[_Worker] = []  # live workers
        self.idle: list[_Worker] = []  # the live workers with no request
        self.closed = False
        self.broken = ""  # why no worker can run (every start failed); requests then fail
        self._results: list[Result] = []  # results not yet returned by poll()
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            # llvmlite is imported once, in the forkserver (if this pool starts it): a worker is
            # then ready in ~15 ms instead of ~170. ("__main__" cannot be preloaded in 3.11: the
            # forkserver is never told the main path; each worker re-imports a script main.)
            self._ctx.set_forkserver_preload(["workers.compile"])
        self._launching = 0  # starts requested and not yet adopted
        self._start_tries = [0] * n_workers  # consecutive failed starts per slot
        self._restarts = 0
        self._launch_q: queue.SimpleQueue = queue.SimpleQueue()
        self._ready_q: queue.SimpleQueue = queue.SimpleQueue()
        self._launcher = threading.Thread(target=self._launch_loop, name="hqemu-pool-launcher", daemon=True)
        self._launcher.start()
        for slot in range(n_workers):
            self._launch(slot)
        atexit.register(self.shutdown)

    # --- the launcher thread --------------------------------------------------------------
    def _launch(self, slot: int) -> None:
        self._launching += 1
        self._launch_q.put(slot)

    def _launch_loop(self) -> None:
        """Runs in the launcher thread: start processes, hand them to the main thread."""
        while True:
            slot = self._launch_q.get()
            if slot is _STOP:
                return
            here, there = self._ctx.Pipe(duplex=True)
            try:
                proc = self._ctx.Process(target=serve, args=(there, self.opt), daemon=True,
                                         name=f"hqemu-llvm-worker-{slot}")
                proc.start()
            except Exception as e:  # reported to the main thread, which decides to retry
                here.close()
                self._ready_q.put((slot, None, None, f"{type(e).__name__}: {e}"))
                continue
            finally:
                there.close()  # the worker's end lives in the worker only: its death reads as EOF
            self._ready_q.put((slot, proc, here, ""))

    def _adopt(self) -> None:
        """Take the processes the launcher started into the pool."""
        while self._launching:
            try:
                slot, proc, conn, error = self._ready_q.get_nowait()
            except queue.Empty:
                return
            self._launching -= 1
            if self.closed:
                if proc is not None:
                    _stop_process(proc, conn, 1.0)
                continue
            if proc is None:
                self.stats.start_failures += 1
                self._start_tries[slot] += 1
                if self._start_tries[slot] < MAX_START_TRIES:
                    self._launch(slot)
                elif not self.workers and not self._launching:
                    self._break(f"no LLVM worker could be started: {error}")
                continue
            self._start_tries[slot] = 0
            self.stats.workers_started += 1
            w = _Worker(slot, proc, conn)
            self.workers.append(w)
            self.idle.append(w)

    def _break(self, why: str) -> None:
        self.broken = why
        while self.pending:
            self._results.append(self._failure(self.pending.popleft(), why, 0))

    # --- the main thread's API ------------------------------------------------------------
    def submit(self, req: Request) -> bool:
        """Queue a compile; False (counted) if the queue is full or the pool is closed."""
        t0 = CLOCK()
        st = self.stats
        if self.closed or self.broken:
            st.refused_closed += 1
            return False
        if len(self.pending) >= self.queue_size and not self.idle:
            st.refused_full += 1
            return False
        req.t_submit = t0
        st.submitted += 1
        if self.idle and not self.pending:
            self._dispatch(self.idle.pop(), req)
        else:
            self.pending.append(req)
            st.queue_high_water = max(st.queue_high_water, len(self.pending))
            while self.pending and self.idle:
                self._dispatch(self.idle.pop(), self.pending.popleft())
        st.main_seconds += CLOCK() - t0
        st.main_calls += 1
        return True

    def poll(self) -> list[Result]:
        """The results that arrived since the last poll (compiled objects and failures)."""
        busy = len(self.workers) - len(self.idle)
        if not (busy or self._launching or self._results or (self.pending and self.idle)) or self.closed:
            return []
        t0 = CLOCK()
        if self._launching:
            self._adopt()
        if busy:
            conns = [w.conn for w in self.workers if w.busy is not None]
            for conn in wait(conns, 0):
                w = next(w for w in self.workers if w.conn is conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    self._lost(w)
                    continue
                self._received(w, msg)
        while self.pending and self.idle:
            self._dispatch(self.idle.pop(), self.pending.popleft())
        out, self._results = self._results, []
        self.stats.main_seconds += CLOCK() - t0
        self.stats.main_calls += 1
        return out

    @property
    def depth(self) -> int:
        """Requests waiting for a worker."""
        return len(self.pending)

    @property
    def in_flight(self) -> int:
        return sum(1 for w in self.workers if w.busy is not None)

    def worker_states(self) -> list[WorkerState]:
        return [WorkerState(w.slot, w.pid, w.busy is not None, w.busy.id if w.busy else None, w.compiles)
                for w in sorted(self.workers, key=lambda w: w.slot)]

    def snapshot(self) -> PoolSnapshot:
        """A copy of the queue and the workers for another thread (the status endpoint): it
        changes nothing and takes no lock, so the main thread never waits for a reader. A
        deque mutated while it is copied raises RuntimeError: the caller tries again."""
        workers, compiling = [], []
        for w in list(self.workers):
            req = w.busy  # read once: the main thread may clear it meanwhile
            workers.append(WorkerState(w.slot, w.pid, req is not None, req.id if req is not None else None,
                                       w.compiles))
            if req is not None:
                compiling.append(req)
        return PoolSnapshot(list(self.pending), compiling, workers)

    def wait_ready(self, timeout: float) -> bool:
        """Block until every worker is up (tests and benchmarks; the engine never waits)."""
        deadline = CLOCK() + timeout
        while self._launching and CLOCK() < deadline and not self.closed:
            self._adopt()
            if self.broken:
                return False
            time.sleep(0.002)
        while self.pending and self.idle:
            self._dispatch(self.idle.pop(), self.pending.popleft())
        return not self._launching and bool(self.workers)

    # --- internals ------------------------------------------------------------------------
    def _dispatch(self, w: _Worker, req: Request) -> None:
        try:
            w.conn.send((req.id, req.ir_text, req.entry, req.opt or self.opt, req.debug_sleep))
        except (OSError, ValueError):  # it died while idle: the request never reached it
            self.pending.appendleft(req)
            self._lost(w)
            return
        w.busy = req
        req.attempts += 1
        req.t_dispatch = CLOCK()
        self.stats.dispatched += 1

    def _received(self, w: _Worker, msg: tuple) -> None:
        req = w.busy
        w.busy = None
        w.compiles += 1
        self.idle.append(w)
        now = CLOCK()
        st = self.stats
        if req is None:  # cannot happen: a worker replies only to the request it was sent
            return
        if msg[0] == "ok":
            _, rid, obj, entry, secs, pid = msg
            st.compiled += 1
            error = ""
        else:
            _, rid, error, pid, secs = msg
            obj, entry = None, req.entry
            st.failed += 1
        secs = dict(secs)
        st.compile_seconds += secs.get("total", 0.0)
        secs["wait"] = req.t_dispatch - req.t_submit
        secs["latency"] = now - req.t_submit
        for stage, s in secs.items():
            st.stage_seconds.setdefault(stage, []).append(s)
        self._results.append(Result(rid, obj is not None, obj, entry, secs, pid, error, req.meta))

    def _lost(self, w: _Worker) -> None:
        """Worker w died: reap it, start a replacement, retry its request once."""
        self.workers.remove(w)
        if w in self.idle:
            self.idle.remove(w)
        code = _stop_process(w.proc, w.conn, 0.2)
        st = self.stats
        st.crashes += 1
        req, w.busy = w.busy, None
        if req is not None:
            if req.attempts < 2:
                st.retried += 1
                self.pending.appendleft(req)
            else:
                st.dropped += 1
                self._results.append(
                    self._failure(req, f"the worker died twice compiling it (exit code {code})", w.pid))
        if self.closed:
            return
        if self._restarts < MAX_RESTARTS:
            self._restarts += 1
            self._launch(w.slot)
        elif not self.workers and not self._launching:
            self._break(f"LLVM workers crashed {st.crashes} times; the trace tier is off")

    def _failure(self, req: Request, why: str, pid: int) -> Result:
        return Result(req.id, False, None, req.entry, {"latency": CLOCK() - req.t_submit}, pid, why, req.meta)

    # --- shutdown -------------------------------------------------------------------------
    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop every worker (in-flight compiles are abandoned) and reap it; idempotent."""
        if self.closed:
            return
        self.closed = True
        deadline = CLOCK() + timeout
        atexit.unregister(self.shutdown)
        self._launch_q.put(_STOP)
        self._launcher.join(max(0.0, deadline - CLOCK()))
        # processes started after the last poll: adopt them to stop them (closed: stops at once)
        while self._launching:
            try:
                _, proc, conn, _ = self._ready_q.get_nowait()
            except queue.Empty:
                break  # the launcher is stuck in a start: its daemon process dies with us
            self._launching -= 1
            if proc is not None:
                self.workers.append(_Worker(-1, proc, conn))
        self.stats.cancelled += len(self.pending) + self.in_flight
        self.pending.clear()
        for w in self.workers:
            if w.proc.is_alive():
                w.proc.terminate()
        for w in self.workers:
            _stop_process(w.proc, w.conn, max(0.05, deadline - CLOCK()))
        self.workers.clear()
        self.idle.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _stop_process(proc: Any, conn: Any, timeout: float) -> int | None:
    """Join proc (SIGKILL if it does not end within timeout), close conn; its exit code."""
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join(1.0)
    try:
        conn.close()
    except OSError:
        pass
    code = proc.exitcode
    try:
        proc.close()  # frees the sentinel; the process is reaped
    except ValueError:
        pass  # still running after SIGKILL and a second: nothing more to do here
    return code


__all__ = ["PoolSnapshot", "PoolStats", "Request", "Result", "WorkerPool", "WorkerState", "percentiles"]
