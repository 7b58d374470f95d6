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


class Engine:
    def __init__(self, env: Env):
        self.env = env
        self.cache: dict[int, QuickBlock] = {}  # guest pc -> translated block
        self._pc_slot = env.fe.layout[env.fe.pc_reg].offset >> 3
        env.do_syscall = self.do_syscall
        env.invalidate_code = self.invalidate
        env.mem.on_code_write = self.invalidate

    # --- translation -------------------------------------------------------------------
    def translate(self, pc: int) -> QuickBlock:
        env, log = self.env, self.env.log
        t0 = time.perf_counter()
        unit = translate_block(env.fe, env.mem, pc, env.params.max_block_insns)
        if log.on("in_asm"):
            size = sum(op.consts[1] for op in unit.ops() if op.name == "insn")
            log.write("IN:\n" + "\n".join(env.fe.disasm(env.mem.fetch(pc, size), pc)) + "\n")
        if log.on("op"):
            log.write("OP:\n" + format_unit(unit))
        optimize(unit)
        if log.on("op_opt"):
            log.write("OP after optimization:\n" + format_unit(unit))
        blk = compile_unit(unit, env)
        env.mem.mark_code(pc, max(blk.size, 1))
        st = env.stats
        st.blocks_translated += 1
        st.guest_insns_translated += blk.n_insns
        st.translate_seconds += time.perf_counter() - t0
        self.cache[pc] = blk
        return blk

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
        self.cache.clear()

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
        length = getattr(self.env.fe, "insn_length", lambda c, p: 0)(code, pc) or min(len(code), 4)
        return "instruction bytes " + " ".join(f"{b:02x}" for b in code[:length])
