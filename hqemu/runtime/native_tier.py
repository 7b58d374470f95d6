"""The trace tier as the main loop sees it: NET recording, compiling, installing, entering.

    >>> tier = NativeTier(engine)              # for --llvm-mode hybridm, hybrids or block
    >>> tier.recorded(trace)                   # a RecordedTrace from the recorder
    >>> blk.fn = tier.entry(pc)                # what install() does for a head's QuickBlock

hybridm ships each recorded trace as IR text to the worker pool and an installer thread
loads the returned object and patches it in while the guest runs; hybrids compiles at once on
the main thread (deterministic, for tests); block compiles every block on first execution.
Installing a trace is one store into the native dispatch table (guest pc -> code) plus one
store of the head QuickBlock's fn, so the quick tier's next arrival at the head enters the
native dispatcher, which then follows trace exits into other traces without Python.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING

from hqemu.errors import GuestSignal
from hqemu.native.dispatch import Dispatcher
from hqemu.native.loader import native
from hqemu.native.perfmap import PerfMap
from hqemu.trace import NetPolicy, Request, TraceRecorder, WorkerPool, build_trace, trace_name
from hqemu.trace.merge import MergePolicy
from hqemu.trace.sampler import Sampler
from workers.compile import compile_ir_unit

from .merger import MergeJob, Merger

if TYPE_CHECKING:
    from hqemu.quick.block import QuickBlock
    from hqemu.trace import RecordedTrace

    from .engine import Engine

@dataclass
class InstalledTrace:
    """What the statistics and (later) the status endpoint show of one installed trace."""

    id: int  # the trace's serial number (also in its entry symbol)
    head_pc: int
    blocks: int  # guest blocks in the unit
    guest_insns: int  # guest instructions in them
    guest_bytes: int  # guest code bytes in them
    exits: int  # ops that may leave the trace
    host_bytes: int  # size of the object file loaded
    stages: dict[str, float] = field(default_factory=dict)  # compile seconds per stage
    end: str = ""  # why recording stopped (a TraceEnd name)
    worker_pid: int = 0  # 0: compiled on the main thread
    host_addr: int = 0  # address of its native code (the entry function) in this process
    version: int = 1  # a merged region of traces is max(versions of its parts) + 1
    state: str = "queued"  # queued (compiling is the pool's to tell), installed, failed or invalidated
    exit_list: tuple = ()  # the TraceExit records (block pc, kind, target pc) of info.exits
    recorded_at: float = 0.0  # seconds since the guest started, when recording ended
    installed_at: float | None = None  # seconds since the guest started; None until installed
    error: str = ""  # why the compile failed (state "failed")
    merged_from: tuple[int, ...] = ()  # a region: the ids of the traces merged into it


def _load(obj: bytes, entry: str) -> int:
    """The address of entry, loading obj unless this process has it already: with the code
    cache, symbols are named by content, so the same trace may come twice (after an
    invalidation); MCJIT cannot define a symbol twice, and the code is the same."""
    nc = native()
    addr = nc.entries.get(entry)
    return addr if addr is not None else nc.load(obj, entry)


YIELD_ENTRIES = 64  # native entries between looks at the clock (NativeTier.enter)
YIELD_BUSY = 0.005  # ... which took less than this many seconds: the guest thread ping-pongs
YIELD_EVERY = 0.010  # seconds at least between its GIL hand-overs
YIELD_SLEEP = 50e-6  # seconds the guest thread sleeps then: a waiting thread wakes in that time
MERGE_WINDOW = 0.1  # seconds of samples per trace-merging decision (hybridm): ~20 at 5 ms


SIGNALS = {"sigill": signal.SIGILL, "sigsegv": signal.SIGSEGV, "sigfpe": signal.SIGFPE,
           "sigtrap": signal.SIGTRAP, "sigbus": signal.SIGBUS}


class NativeTier:
    def __init__(self, engine: Engine):
        self.engine = engine
        env = self.env = engine.env
        p = env.params
        self.mode = p.llvm_mode
        self.disp = Dispatcher(env)
        self._entries = 0  # native entries since the last look at the clock (enter)
        self._look = 0.0  # time.monotonic() of that look
        self._next_yield = 0.0  # time.monotonic() before which no GIL hand-over happens
        self.native_pcs: set[int] = set()  # guest pcs whose QuickBlock enters native code
        self.traces: list[InstalledTrace] = []  # in installation order
        self.failed: list[InstalledTrace] = []  # traces whose compile failed (the status endpoint lists them)
        self.serial = 0  # names compiled units uniquely (MCJIT cannot unload)
        self.rec: TraceRecorder | None = None
        self.codecache = engine.codecache  # objects compiled by earlier runs, or None
        self._install_lock = threading.Lock()  # hybridm installs from both threads on a cache hit
        self.pool: WorkerPool | None = None
        self.sampler: Sampler | None = None  # samples the trace being run; started at the first install
        self.perfmap = PerfMap(symbolize=self._symbol) if p.perfmap else None  # -perfmap
        if self.mode in ("hybridm", "hybrids"):
            self.rec = TraceRecorder(NetPolicy(p.hot_threshold, p.trace_max_blocks))
            env.stats.trace = self.rec.stats
            self.sampler = Sampler(self.disp.sample_pc, read_edge=self.disp.sample_edge)
        # trace merging: hybridm decides on sampled windows, hybrids on the static graph alone
        self.merger = Merger(MergePolicy()) if p.trace_merge and self.rec is not None else None
        self._blocks: dict[int, tuple] = {}  # trace id -> (blocks, exit targets) until installed
        if self.mode == "hybridm":
            if self.codecache is None or not self.codecache.objs:
                self._start_pool()  # now, so the first trace does not wait for the workers' start
            # else on the first trace not in the cache: a warm run may never need a worker
            self._lock = threading.Lock()  # the pool is used by the main and the installer thread
            self._done: deque = deque()  # results to install, filled by the installer thread
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._installer, name="hqemu-installer", daemon=True)
            self._thread.start()

    def _start_pool(self) -> None:
        p = self.env.params
        self.pool = WorkerPool(p.workers, p.opt_level, p.trace_queue_size)
        self.env.stats.pool = self.pool.stats

    # --- entering native code -------------------------------------------------------------
    def entry(self, pc: int):
        enter = self.enter

        def native_entry() -> int:
            return enter(pc)

        return native_entry

    def enter(self, pc: int) -> int:
        """Run native code from pc; return the guest pc where the quick tier goes on."""
        self._entries += 1
        if self._entries >= YIELD_ENTRIES:
            self._maybe_yield_gil()
        kind, npc, fault = self.disp.run(pc)
        if kind == "jump":
            return npc
        if kind == "syscall":
            return self.engine.do_syscall(npc)
        detail = f"bad access at 0x{fault:x}" if fault is not None else ""
        raise GuestSignal(SIGNALS[kind], npc, detail)

    def _maybe_yield_gil(self) -> None:
        """Let the other threads (installer, sampler, status server) take the GIL when the
        guest thread gives it back too briefly for them to wake up.

        Every native run releases the GIL and takes it back when it returns. A guest that
        crosses between native code and the quick tier many thousand times a second takes it
        back before a waiting thread is scheduled, and CPython's forced switch never comes:
        a waiter asks for it only after a whole switch interval without any switch. Seen:
        compiled traces waited seconds for the installer (calls kernel, 330k returns to
        Python). So when YIELD_ENTRIES runs took less than YIELD_BUSY, a short sleep hands
        the GIL over, at most every YIELD_EVERY (~1% of such a run; nothing for a guest whose
        native runs are long, which leave the GIL free long enough).
        """
        now = time.monotonic()
        busy = now - self._look < YIELD_BUSY
        self._entries, self._look = 0, now
        if busy and now >= self._next_yield:
            time.sleep(YIELD_SLEEP)
            self._next_yield = now + YIELD_EVERY

    def install(self, pc: int, addr: int) -> None:
        """Patch native code for guest pc in: the dispatch table first, then the quick block."""
        self.disp.install(pc, addr)
        again = pc in self.native_pcs  # a new version (a merged region): its count is of native entries
        self.native_pcs.add(pc)
        blk = self.engine.cache.get(pc)
        if blk is not None:
            if again:
                blk.count = 0
            else:
                self.engine.retire(blk)
            # its successors were chained while it ran in the quick tier; from now on its exits
            # are trace exits, which NET profiles (the engine never chains them again). Only
            # the pcs are reset: this may run in the installer thread while the main loop is
            # between comparing next_pc0 and loading next0, which must still be a real block.
            blk.next_pc0 = blk.next_pc1 = -1
            blk.fn = self.entry(pc)

    # --- block mode ---------------------------------------------------------------------
    def compile_block(self, blk: QuickBlock) -> None:
        """--llvm-mode block: compile the block with LLVM now and enter it natively."""
        self.serial += 1
        t0 = time.perf_counter()
        text, opt, cc = blk.unit_text(), self.env.params.opt_level, self.codecache
        if cc is None:
            co = compile_ir_unit(text, f"hqemu_b{self.serial}_{blk.pc:x}", opt)
        else:  # an object of an earlier run, or compiled now under the name its key gives
            key = cc.obj_key(text, opt, "block")
            co = cc.get_obj(key) or compile_ir_unit(text, cc.symbol("hqemu_b", blk.pc, key), opt)
            cc.put_obj(key, co.entry, co.obj)
        addr = _load(co.obj, co.entry)
        if self.perfmap is not None:
            self.perfmap.add_unit("block", self.serial, blk.pc, addr, co.obj, co.entry)
        self.env.stats.translate_seconds += time.perf_counter() - t0
        self.env.stats.blocks_native += 1
        self.install(blk.pc, addr)

    # --- traces ---------------------------------------------------------------------------
    def recorded(self, tr: RecordedTrace) -> None:
        """A trace was recorded: compile it now (hybrids) or ship it to the workers (hybridm)."""
        end = tr.end.name if tr.end is not None else ""
        if not self._compile(tr, end, tr.generation) and self.mode == "hybridm":
            self.rec.release(tr.head_pc)
        if self.merger is not None and self.mode == "hybrids":
            self._merge(self.merger.static())

    def _merge(self, jobs: list[MergeJob]) -> None:
        for job in jobs:
            self.env.stats.merges_formed += 1
            region = SimpleNamespace(blocks=job.blocks, end=None, head_pc=job.region.entry)
            self._compile(region, "MERGED", self.rec.generation, job.version, job.region.members)

    def _compile(self, tr, end: str, generation: int, version: int = 1, merged_from: tuple = ()) -> bool:
        """Build the unit of tr's blocks (a recorded trace, or a region of merged traces), then
        install it from the object cache, compile it here (hybrids) or submit it (hybridm).
        False: the pool refused it (queue full)."""
        self.serial += 1
        built = build_trace(tr, trace_name(tr.head_pc, self.serial), self.engine.cache.get)
        info = built.info
        sizes = {b.pc: b.size for b in tr.blocks}
        facts = InstalledTrace(self.serial, tr.head_pc, len(info.block_pcs), info.guest_insns,
                               sum(sizes.get(pc, 0) for pc in info.block_pcs), len(info.exits), 0,
                               end=end, exit_list=info.exits, version=version, merged_from=merged_from,
                               recorded_at=time.monotonic() - self.env.started)
        self._blocks[facts.id] = (tuple(tr.blocks), info.exit_targets)
        entry, key, cc = info.entry, None, self.codecache
        if cc is not None:  # the object of an earlier run is installed at once, not compiled
            key = cc.obj_key(built.text, self.env.params.opt_level, "trace")
            entry = cc.symbol("trace", tr.head_pc, key)
            got = cc.get_obj(key)
            if got is not None:
                self._install_trace(facts, got.obj, got.entry)
                return True
        if self.mode != "hybridm":
            t0 = time.perf_counter()
            co = compile_ir_unit(built.text, entry, self.env.params.opt_level)
            if key is not None:
                cc.put_obj(key, co.entry, co.obj)
            facts.stages = dict(co.stats, total=time.perf_counter() - t0)
            self._install_trace(facts, co.obj, co.entry)
            return True
        req = Request(self.serial, built.text, entry, meta=(facts, generation, key))
        with self._lock:
            if self.pool is None:
                self._start_pool()
            accepted = self.pool.submit(req)
        if not accepted:
            self._blocks.pop(facts.id, None)
        return accepted

    def _install_trace(self, facts: InstalledTrace, obj: bytes, entry: str) -> None:
        with self._install_lock:  # hybridm: the installer thread, and the main one on a cache hit
            self._install_locked(facts, obj, entry)

    def _install_locked(self, facts: InstalledTrace, obj: bytes, entry: str) -> None:
        addr = _load(obj, entry)
        if self.perfmap is not None:  # named before it can run, so perf never sees it anonymous
            self.perfmap.add_unit("trace", facts.id, facts.head_pc, addr, obj, entry)
        self.install(facts.head_pc, addr)
        self.rec.installed(facts.head_pc)
        blocks, targets = self._blocks.pop(facts.id, ((), frozenset()))
        if self.merger is not None:
            self.merger.add(facts.id, facts.head_pc, blocks, targets, facts.version)
        facts.host_bytes, facts.host_addr = len(obj), addr
        facts.state, facts.installed_at = "installed", time.monotonic() - self.env.started
        self.traces.append(facts)
        self.env.stats.traces_installed += 1
        if self.sampler is not None and not self.sampler.running:
            self.sampler.start()

    def _symbol(self, pc: int) -> str | None:
        """The guest function holding pc, for names (read from the ELF on first use)."""
        from hqemu.linux.symbols import symbols_for

        return symbols_for(self.env).lookup(pc)

    def _installer(self) -> None:
        """hybridm: collect compiled traces and patch them in while the guest runs; every
        MERGE_WINDOW, hand the sampler's window to trace merging."""
        next_window = 0.0
        while not self._stop.is_set():
            results, busy = [], False
            if self.pool is not None:  # None until a trace is not in the code cache
                with self._lock:
                    results = self.pool.poll()
                    busy = self.pool.in_flight or self.pool.depth
            for r in results:
                facts, generation, *rest = r.meta
                key = rest[0] if rest else None  # the object cache's key, when it is on
                if r.ok and key is not None:  # valid for its IR text whatever happened since
                    self.codecache.put_obj(key, r.entry, r.obj)
                if generation != self.rec.generation:
                    continue  # guest code changed since it was recorded
                if r.ok:
                    facts.stages, facts.worker_pid = dict(r.seconds), r.worker_pid
                    self._install_trace(facts, r.obj, r.entry)
                else:
                    self.env.stats.compile_failures[r.error] += 1
                    facts.state, facts.error = "failed", r.error
                    self._blocks.pop(facts.id, None)
                    self.failed.append(facts)
                    if not facts.merged_from:  # a region that fails leaves its traces installed
                        self.rec.compile_failed(facts.head_pc)
            if self.merger is not None and self.sampler.running and time.monotonic() >= next_window:
                next_window = time.monotonic() + MERGE_WINDOW
                with self._install_lock:
                    jobs = self.merger.window(self.sampler.take_window(), self.sampler.take_edges())
                self._merge(jobs)
            self._stop.wait(0.001 if busy else 0.01)

    # --- invalidation and shutdown ----------------------------------------------------------
    def invalidate(self) -> None:
        """Guest code changed: no native code may run any more, no old trace be installed."""
        self.disp.clear()
        self.native_pcs.clear()
        for t in self.traces:
            t.state = "invalidated"  # its code never runs again (the guest code it came from changed)
        if self.rec is not None:
            self.rec.reset()
        if self.merger is not None:
            self.merger.forget()

    def shutdown(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.perfmap is not None:
            self.perfmap.close()
        if self.mode == "hybridm":
            self._stop.set()
            self._thread.join(timeout=1.0)
            if self.pool is not None:
                self.pool.shutdown()
