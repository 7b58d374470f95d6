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
from typing import TYPE_CHECKING

from hqemu.errors import GuestSignal
from hqemu.ir.text import format_unit
from hqemu.native.dispatch import Dispatcher
from hqemu.native.loader import native
from hqemu.trace import NetPolicy, Request, TraceRecorder, WorkerPool, build_trace, trace_name
from workers.compile import compile_ir_unit

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


SIGNALS = {"sigill": signal.SIGILL, "sigsegv": signal.SIGSEGV, "sigfpe": signal.SIGFPE,
           "sigtrap": signal.SIGTRAP, "sigbus": signal.SIGBUS}


class NativeTier:
    def __init__(self, engine: Engine):
        self.engine = engine
        env = self.env = engine.env
        p = env.params
        self.mode = p.llvm_mode
        self.disp = Dispatcher(env)
        self.native_pcs: set[int] = set()  # guest pcs whose QuickBlock enters native code
        self.traces: list[InstalledTrace] = []  # in installation order
        self.serial = 0  # names compiled units uniquely (MCJIT cannot unload)
        self.rec: TraceRecorder | None = None
        self.pool: WorkerPool | None = None
        if self.mode in ("hybridm", "hybrids"):
            self.rec = TraceRecorder(NetPolicy(p.hot_threshold, p.trace_max_blocks))
            env.stats.trace = self.rec.stats
        if self.mode == "hybridm":
            self.pool = WorkerPool(p.workers, p.opt_level, p.trace_queue_size)
            env.stats.pool = self.pool.stats
            self._lock = threading.Lock()  # the pool is used by the main and the installer thread
            self._done: deque = deque()  # results to install, filled by the installer thread
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._installer, name="hqemu-installer", daemon=True)
            self._thread.start()

    # --- entering native code -------------------------------------------------------------
    def entry(self, pc: int):
        enter = self.enter

        def native_entry() -> int:
            return enter(pc)

        return native_entry

    def enter(self, pc: int) -> int:
        """Run native code from pc; return the guest pc where the quick tier goes on."""
        kind, npc, fault = self.disp.run(pc)
        if kind == "jump":
            return npc
        if kind == "syscall":
            return self.engine.do_syscall(npc)
        detail = f"bad access at 0x{fault:x}" if fault is not None else ""
        raise GuestSignal(SIGNALS[kind], npc, detail)

    def install(self, pc: int, addr: int) -> None:
        """Patch native code for guest pc in: the dispatch table first, then the quick block."""
        self.disp.install(pc, addr)
        self.native_pcs.add(pc)
        blk = self.engine.cache.get(pc)
        if blk is not None:
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
        name = f"hqemu_b{self.serial}_{blk.pc:x}"
        co = compile_ir_unit(format_unit(blk.unit), name, self.env.params.opt_level)
        addr = native().load(co.obj, co.entry)
        self.env.stats.translate_seconds += time.perf_counter() - t0
        self.env.stats.blocks_native += 1
        self.install(blk.pc, addr)

    # --- traces ---------------------------------------------------------------------------
    def recorded(self, tr: RecordedTrace) -> None:
        """A trace was recorded: compile it now (hybrids) or ship it to the workers (hybridm)."""
        self.serial += 1
        built = build_trace(tr, trace_name(tr.head_pc, self.serial))
        info = built.info
        sizes = {b.pc: b.size for b in tr.blocks}
        facts = InstalledTrace(self.serial, tr.head_pc, len(info.block_pcs), info.guest_insns,
                               sum(sizes.get(pc, 0) for pc in info.block_pcs), len(info.exits), 0,
                               end=info.end.name if info.end is not None else "")
        if self.pool is None:
            t0 = time.perf_counter()
            co = compile_ir_unit(built.text, info.entry, self.env.params.opt_level)
            facts.stages = dict(co.stats, total=time.perf_counter() - t0)
            self._install_trace(facts, co.obj, co.entry)
            return
        req = Request(self.serial, built.text, info.entry, meta=(facts, tr.generation))
        with self._lock:
            accepted = self.pool.submit(req)
        if not accepted:
            self.rec.release(tr.head_pc)

    def _install_trace(self, facts: InstalledTrace, obj: bytes, entry: str) -> None:
        self.install(facts.head_pc, native().load(obj, entry))
        self.rec.installed(facts.head_pc)
        facts.host_bytes = len(obj)
        self.traces.append(facts)
        self.env.stats.traces_installed += 1

    def _installer(self) -> None:
        """hybridm: collect compiled traces and patch them in while the guest runs."""
        while not self._stop.is_set():
            with self._lock:
                results = self.pool.poll()
                busy = self.pool.in_flight or self.pool.depth
            for r in results:
                facts, generation = r.meta
                if generation != self.rec.generation:
                    continue  # guest code changed since it was recorded
                if r.ok:
                    facts.stages, facts.worker_pid = dict(r.seconds), r.worker_pid
                    self._install_trace(facts, r.obj, r.entry)
                else:
                    self.env.stats.compile_failures[r.error] += 1
                    self.rec.compile_failed(facts.head_pc)
            self._stop.wait(0.001 if busy else 0.01)

    # --- invalidation and shutdown ----------------------------------------------------------
    def invalidate(self) -> None:
        """Guest code changed: no native code may run any more, no old trace be installed."""
        self.disp.clear()
        self.native_pcs.clear()
        if self.rec is not None:
            self.rec.reset()

    def shutdown(self) -> None:
        if self.pool is not None:
            self._stop.set()
            self._thread.join(timeout=1.0)
            self.pool.shutdown()
