"""The main emulation loop: the quick block cache, block chaining and guest faults.

    >>> eng = Engine(env)
    >>> eng.run(entry_pc)       # returns never: raises GuestExit or GuestSignal

A block is translated once (frontend -> IR -> cheap passes -> Python function) and cached by
guest pc; each block remembers up to two direct successors so the loop follows them without
a lookup, and counts its executions (the hotness signal of the trace tier).
"""

from __future__ import annotations

import signal
import time

from hqemu.env import Env
from hqemu.errors import GuestFault, GuestSignal
from hqemu.frontends import translate_block
from hqemu.ir.passes import optimize
from hqemu.ir.text import format_unit
from hqemu.linux.syscalls import dispatch
from hqemu.quick.block import QuickBlock
from hqemu.quick.codegen import compile_unit
from hqemu.trace import Edge, HeadState

from .codecache import CodeCache, RecordingSource


class Engine:
    def __init__(self, env: Env):
        self.env = env
        self.cache: dict[int, QuickBlock] = {}  # guest pc -> translated block
        self._pc_slot = env.fe.layout[env.fe.pc_reg].offset >> 3
        self.retired_insns = 0  # quick-tier guest instructions of blocks that became native
        env.do_syscall = self.do_syscall
        env.invalidate_code = self.invalidate
        env.mem.on_code_write = self.invalidate
        self.codecache = CodeCache.open(env)  # after do_syscall: a cached block binds it
        self.tier = None
        if env.params.llvm_mode != "none":
            from .native_tier import NativeTier  # LLVM is loaded only when a tier needs it

            self.tier = NativeTier(self)

    # --- translation -------------------------------------------------------------------
    def translate(self, pc: int) -> QuickBlock:
        env, log = self.env, self.env.log
        t0 = time.perf_counter()
        cc = self.codecache
        src = env.mem
        if cc is not None:
            hit = cc.lookup(pc)
            if hit is not None:
                blk, sigill = hit
                if sigill >= 0:
                    self._unsupported(sigill)
                return self._add(blk, t0)
            src = RecordingSource(env.mem, pc)
        unit = translate_block(env.fe, src, pc, env.params.max_block_insns)
        if log.on("in_asm"):
            size = sum(op.consts[1] for op in unit.ops() if op.name == "insn")
            log.write("IN:\n" + "\n".join(env.fe.disasm(env.mem.fetch(pc, size), pc)) + "\n")
        if log.on("op"):
            log.write("OP:\n" + format_unit(unit))
        last = unit.blocks[-1].ops[-1]
        sigill = -1
        if last.name == "exit" and last.consts[0] == "sigill":
            sigill = last.consts[1]
            self._unsupported(sigill)
        optimize(unit)
        if log.on("op_opt"):
            log.write("OP after optimization:\n" + format_unit(unit))
        blk = compile_unit(unit, env)
        if cc is not None:
            cc.add(blk, src.window(), sigill)
        return self._add(blk, t0)

    def _unsupported(self, pc: int) -> None:
        self.env.stats.sigill[f"0x{pc:x}"] += 1
        if self.env.log.on("unimp"):
            self.env.log.write(f"hqemu: unsupported instruction at 0x{pc:x}: {self._insn_bytes(pc)}")

    def _add(self, blk: QuickBlock, t0: float) -> QuickBlock:
        """A block made (translated or from the code cache) joins the cache."""
        env, pc = self.env, blk.pc
        env.mem.mark_code(pc, max(blk.size, 1))
        st = env.stats
        st.blocks_translated += 1
        st.guest_insns_translated += blk.n_insns
        st.translate_seconds += time.perf_counter() - t0
        self.cache[pc] = blk
        if self.tier is not None and self.tier.mode == "block":
            self.tier.compile_block(blk)
        return blk

    def retire(self, blk: QuickBlock) -> None:
        """blk's code runs natively from now on: keep its quick-tier instruction count."""
        self.retired_insns += blk.count * blk.n_insns
        blk.count = 0

    def quick_insns(self) -> int:
        """Guest instructions the quick tier ran (a block left by a side exit counts whole)."""
        native = self.tier.native_pcs if self.tier is not None else ()
        live = sum(b.count * b.n_insns for b in self.cache.values() if b.pc not in native)
        return self.retired_insns + live

    def shutdown(self) -> None:
        self.env.stats.quick_guest_insns = self.quick_insns()
        if self.tier is not None:
            self.tier.shutdown()
        if self.codecache is not None:
            self.codecache.save()  # after the tier: the installer may have added objects

    def invalidate(self, addr: int, length: int) -> None:
        """Guest code in [addr, addr+length) changed or went away: drop every translation.

        A flush is what QEMU does on a full code buffer; code writes are rare in the static
        programs we run, so precision is not worth per-page bookkeeping on the hot path.
        """
        if not self.cache:
            return
        for blk in self.cache.values():
            blk.next_pc0, blk.next0, blk.next_pc1, blk.next1 = -1, None, -1, None
        self.env.stats.code_invalidations += len(self.cache)
        self.retired_insns = self.quick_insns()
        self.cache.clear()
        if self.tier is not None:
            self.tier.invalidate()

    # --- execution ---------------------------------------------------------------------
    def do_syscall(self, next_pc: int) -> int:
        env = self.env
        env.state[self._pc_slot] = next_pc
        dispatch(env)
        return env.state[self._pc_slot]

    def run(self, pc: int) -> None:
        blk = self.cache.get(pc) or self.translate(pc)
        try:
            if self.env.log.on("exec"):
                self._loop_logged(blk)
            if self.tier is not None and self.tier.rec is not None:
                self._loop_traced(blk)
            self._loop(blk)
        except GuestFault as e:
            raise GuestSignal(signal.SIGSEGV, self._fault_pc(e), f"bad access at 0x{e.addr:x}") from None
        except IndexError as e:  # a guest address beyond the reservation, seen by a fast-path table
            raise GuestSignal(signal.SIGSEGV, self._fault_pc(e), "address beyond the guest space") from None
        except GuestSignal as e:
            if e.signo == signal.SIGILL and e.pc is not None and not e.detail:
                e.detail = self._insn_bytes(e.pc)
            raise

    def _loop(self, blk: QuickBlock) -> None:
        cache, translate = self.cache, self.translate
        while True:
            blk.count += 1
            pc = blk.fn()
            if pc == blk.next_pc0:
                blk = blk.next0
            elif pc == blk.next_pc1:
                blk = blk.next1
            else:
                nxt = cache.get(pc) or translate(pc)
                if blk.next0 is None:
                    blk.next_pc0, blk.next0 = pc, nxt
                elif blk.next1 is None:
                    blk.next_pc1, blk.next1 = pc, nxt
                blk = nxt

    def _loop_traced(self, blk: QuickBlock) -> None:
        """The loop with NET profiling: only on the paths that miss the successor slots.

        An edge into a candidate head is never chained, so every arrival there is profiled
        until the head has a trace; edges out of native code (trace exits) are not chained
        either, so their targets can become heads.
        """
        cache, translate, tier = self.cache, self.translate, self.tier
        rec, native_pcs, heads = tier.rec, tier.native_pcs, tier.rec.heads
        waiting = (HeadState.CANDIDATE, HeadState.PENDING)
        loop_iters = self.env.params.quick_loop_iters
        while True:
            blk.count += 1
            pc = blk.fn()
            if pc == blk.next_pc0:
                blk = blk.next0
                continue
            if pc == blk.next_pc1:
                blk = blk.next1
                continue
            nxt = cache.get(pc) or translate(pc)
            if blk.pc in native_pcs:
                hot = rec.profile(None, nxt, Edge.TRACE_EXIT)
            else:
                if nxt is blk and blk.loops:
                    # it looped on itself in the quick tier and came back after its budget of
                    # back edges: each was an arrival at its head that the loop never saw
                    hot = rec.profile(blk, nxt, arrivals=loop_iters)
                else:
                    hot = rec.profile(blk, nxt)
                head = heads.get(pc)
                if head is None or head.status not in waiting:
                    if blk.next0 is None:
                        blk.next_pc0, blk.next0 = pc, nxt
                    elif blk.next1 is None:
                        blk.next_pc1, blk.next1 = pc, nxt
            if hot and rec.start(nxt):
                nxt = self._record(nxt)
            blk = nxt

    def _record(self, blk: QuickBlock) -> QuickBlock:
        """Run blocks one by one, appending each to the NET trace, until the recorder stops;
        return the block to run next (not yet run)."""
        cache, translate, rec = self.cache, self.translate, self.tier.rec
        head_pc = blk.pc
        while rec.on_block(blk):
            blk.count += 1
            pc = blk.fn()
            if blk.pc == head_pc and pc != head_pc and head_pc in blk.exits and len(rec.blocks) == 1:
                # the head loops on itself inside its quick-tier function: the cycle closed there
                rec.on_block(blk)
            blk = cache.get(pc) or translate(pc)
        for trace in rec.take():
            self.tier.recorded(trace)
        return blk

    def _loop_logged(self, blk: QuickBlock) -> None:
        cache, translate, log = self.cache, self.translate, self.env.log
        while True:
            log.write(f"Trace: [0x{blk.pc:x}] count={blk.count}")
            blk.count += 1
            pc = blk.fn()
            blk = cache.get(pc) or translate(pc)

    def _fault_pc(self, e: BaseException) -> int | None:
        """The guest pc of the instruction that faulted, from the generated code's frame.

        Generated functions are compiled with the file name "<hqemu:0xPC>", so the traceback
        names the block without the loop having to remember it.
        """
        tb = e.__traceback__
        while tb is not None:
            name = tb.tb_frame.f_code.co_filename
            if name.startswith("<hqemu:"):
                blk = self.cache.get(int(name[7:-1], 16))
                if blk is not None:
                    return blk.pc_for_traceback(tb)
            tb = tb.tb_next
        return None

    def _insn_bytes(self, pc: int) -> str:
        code = b""
        for n in range(self.env.fe.max_insn_len, 0, -1):
            try:
                code = self.env.mem.fetch(pc, n)
                break
            except GuestFault:
                continue
        length = self.env.fe.insn_length(code, pc) or min(len(code), 4)
        return "instruction bytes " + " ".join(f"{b:02x}" for b in code[:length])
