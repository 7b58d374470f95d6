"""Trace-tier compile latency: a 16-block lifted-x86-like trace through every optimization level.

    $ .venv/bin/python bench/compile_latency.py [repeats] [--wall]

Builds one trace with the Builder the way the x86-64 frontend lifts code (register gets and
puts, eager flags for add/sub/cmp, loads and stores through computed addresses, a conditional
side exit per block; the last block jumps back to the first), then for each level of
workers.compile.OPT_LEVELS runs the worker's path (hqemu IR text -> parse + lower -> LLVM parse ->
optimize -> codegen) `repeats` times and prints the median of each stage, the object size,
whether the loop body still loads or stores guest state (it must not, from "cheap" on), and
the speed of the compiled loop (ns per trace iteration, best of 3, loaded with
hqemu.native.loader). Stages are timed in process CPU time (the machines are shared and
noisy; --wall for wall-clock time, which is what a waiting trace sees on an idle machine).
"""

from __future__ import annotations

import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import workers.compile  # noqa: E402
from hqemu.frontends.x86_64.cpu import LAYOUT, X86State  # noqa: E402
from hqemu.ir import I1, I64, Builder, Temp, Unit  # noqa: E402
from hqemu.ir.text import format_unit  # noqa: E402
from hqemu.native.loader import ExitInfo, native  # noqa: E402
from workers.compile import OPT_LEVELS, compile_ir_unit, loop_state_accesses  # noqa: E402

HEAD = 0x401000
EXIT = 0x409000
MEM_SIZE = 1 << 16


def _flags_add(b: Builder, a: Temp, c: Temp, r: Temp, sub: bool = False) -> None:
    """Eager x86 flags of r = a +/- c, as the frontend computes them."""
    b.put("cf", b.zext(b.setcond("ltu", a, c) if sub else b.setcond("ltu", r, a), I64))
    b.put("zf", b.zext(b.setcond("eq", r, 0), I64))
    b.put("sf", b.shr(r, 63))
    ov = b.and_(b.xor(a, c), b.xor(a, r)) if sub else b.and_(b.not_(b.xor(a, c)), b.xor(a, r))
    b.put("of", b.shr(ov, 63))
    b.put("pf", b.zext(b.parity(r), I64))
    b.put("af", b.and_(b.shr(b.xor(b.xor(a, c), r), 4), 1))


def trace_unit(n_blocks: int = 16) -> Unit:
    u = Unit("x86_64", LAYOUT)
    for i in range(n_blocks):
        pc = HEAD + 0x20 * i
        b = Builder(u, u.new_block(pc))
        # mov rax, [rsi + rcx*8 & mask]
        b.insn(pc, 4)
        rcx = b.get("rcx")
        idx = b.and_(b.shl(rcx, 3), MEM_SIZE // 2 - 8)
        addr = b.add(b.get("rsi"), idx)
        v = b.ld(addr, I64)
        b.put("rax", v)
        # add rdx, rax
        b.insn(pc + 4, 3)
        d = b.get("rdx")
        r = b.add(d, v)
        b.put("rdx", r)
        _flags_add(b, d, v, r)
        # xor/shl/rol on a second register
        b.insn(pc + 7, 3)
        r8 = b.get("r8")
        t = b.xor(b.rotl(r8, 5 + i), r)
        b.put("r8", t)
        # mov [rdi + rcx*8 & mask], rdx
        b.insn(pc + 10, 4)
        b.st(b.add(b.get("rdi"), idx), r)
        # inc rcx
        b.insn(pc + 14, 3)
        c1 = b.add(rcx, 1)
        b.put("rcx", c1)
        # cmp rcx, rbx ; jae out (a side exit to code outside the trace)
        b.insn(pc + 17, 3)
        rbx = b.get("rbx")
        diff = b.sub(c1, rbx)
        _flags_add(b, c1, rbx, diff, sub=True)
        b.insn(pc + 20, 2)
        if i == n_blocks - 1:
            # dec r15 ; jz EXIT: the loop counter of the benchmark
            n = b.sub(b.get("r15"), 1)
            b.put("r15", n)
            z = b.setcond("eq", n, 0)
            b.put("zf", b.zext(z, I64))
            b.exit_if(z, "jump", EXIT)
            b.exit("jump", HEAD)
        else:
            cf = b.trunc(b.get("cf"), I1)
            b.exit_if(b.xor(cf, 1), "jump", pc + 0x1000)  # jae: taken when no borrow
            b.exit("jump", pc + 0x20)
    return u


def _run_speed(co, iterations: int = 200_000) -> float:
    """ns per trace iteration of the compiled loop (one run)."""
    nc = native()
    addr = nc.entries.get(co.entry) or nc.load(co.obj, co.entry)
    cpu = X86State()
    mem = (ctypes.c_uint8 * MEM_SIZE)()
    cpu.rsi, cpu.rdi = 0, MEM_SIZE // 2
    cpu.rbx = 1 << 62  # the side exits are never taken
    cpu.r15 = iterations
    info = ExitInfo()  # the units write more than the kind (workers/lower.py EXITINFO_*)
    t0 = time.perf_counter()
    pc = nc.call(addr, ctypes.addressof(cpu), ctypes.addressof(mem), ctypes.addressof(info))
    dt = time.perf_counter() - t0
    assert pc == EXIT and info[0] == 0, (hex(pc), info[0])
    return dt / iterations * 1e9


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if args else 15
    if "--wall" not in sys.argv:
        workers.compile.CLOCK = time.process_time
    unit = trace_unit()
    text = format_unit(unit)
    n_ops = sum(1 for _ in unit.ops())
    print(f"trace: {len(unit.blocks)} blocks, {unit.guest_insns()} guest insns, {n_ops} IR ops, "
          f"{len(text)} bytes of IR text")
    clock = "wall" if "--wall" in sys.argv else "cpu"
    print(f"median of {repeats} compiles, {clock} ms; load average {os.getloadavg()[0]:.1f}")
    print(f"{'opt':6} {'lower':>7} {'parse':>7} {'optim':>7} {'codegen':>8} {'total':>7} {'obj B':>7} "
          f"{'loop state ld/st':>17} {'ns/iter':>8}")
    for opt in OPT_LEVELS:
        runs = [compile_ir_unit(text, f"bench_{opt}_{k}", opt).stats for k in range(repeats)]
        med = {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}
        total = statistics.median(sum(r.values()) for r in runs) * 1e3
        co = compile_ir_unit(text, f"bench_{opt}", opt, keep_ir=True)
        bad = len(loop_state_accesses(co.ir))
        speed = min(_run_speed(co) for _ in range(3))
        print(f"{opt:6} {med['lower']:7.2f} {med['parse']:7.2f} {med['optimize']:7.2f} {med['codegen']:8.2f} "
              f"{total:7.2f} {len(co.obj):7} {('none' if bad == 0 else str(bad)):>17} {speed:8.1f}")


if __name__ == "__main__":
    main()
