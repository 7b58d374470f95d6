"""Native dispatch costs: transitions between units, the dispatcher's start-up, guest faults.

    $ .venv/bin/python bench/dispatch.py [transitions]

Prints, as medians of a few runs on wall-clock time (quiet the machine first):
  transition   ns per unit-to-unit transition of two tiny chained units (each adds to one
               register and jumps to the other) inside hqemu_dispatch, against the same
               units called one by one from a Python loop through ctypes (a dict lookup of
               the next pc included: what a Python dispatcher must do at least);
  run()        ns per Dispatcher.run() round trip that comes straight back (a unit exiting
               with a syscall): the floor of every return to Python;
  fault        us per run() whose unit faults on an unmapped guest page (handler,
               siglongjmp and the Python side), against a run that misses instead;
  start-up     ms to have the dispatcher linked and the handler installed in a fresh
               process: compiled from IR (no cache) and loaded from the disk cache.
"""

from __future__ import annotations

import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hqemu.frontends.x86_64.cpu import LAYOUT, X86State  # noqa: E402
from hqemu.ir import I64, Builder, Const, Unit  # noqa: E402
from hqemu.linux.memory import PROT_READ, PROT_WRITE, GuestMemory  # noqa: E402
from hqemu.native.dispatch import Dispatcher  # noqa: E402
from hqemu.native.loader import UNIT_FN, ExitInfo, native  # noqa: E402
from workers.compile import compile_unit_text  # noqa: E402
from workers.lower import lower_unit  # noqa: E402

A, B, STOP, FAULT = 0x1000, 0x2000, 0x9000, 0x3000


def _unit(pc: int, body) -> int:
    u = Unit("x86_64", LAYOUT)
    body(Builder(u, u.new_block(pc)))
    co = compile_unit_text(lower_unit(u, f"bench_{pc:x}"), "O2")
    return native().load(co.obj, co.entry)


def _a(b: Builder) -> None:
    b.insn(A, 3)
    n = b.sub(b.get("rcx"), 1)
    b.put("rcx", n)
    b.exit_if(b.setcond("eq", n, 0), "syscall", STOP)
    b.exit("jump", B)


def _b(b: Builder) -> None:
    b.insn(B, 3)
    b.put("rax", b.add(b.get("rax"), 1))
    b.exit("jump", A)


def _fault(b: Builder) -> None:
    b.insn(FAULT, 4)
    b.put("rax", b.ld(b.get("rsi"), I64))
    b.exit("syscall", FAULT + 4)


def _quick(b: Builder) -> None:
    b.insn(STOP, 2)
    b.st(Const(0x10000, I64), b.get("rax"))
    b.exit("syscall", STOP + 2)


def _median(f, repeats: int = 5) -> float:
    return statistics.median(f() for _ in range(repeats))


def _startup(cache: str | None) -> tuple[float, bool]:
    """(seconds to dispatch_code() in a fresh process, whether it came from the cache)."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from hqemu.native.dispatch import dispatch_code; "
            f"c = dispatch_code({cache!r}); print(c.seconds, c.cached)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, cached = out.split()
    return float(seconds), cached == "True"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    cpu = X86State()
    mem = GuestMemory(1 << 24)
    mem.map_fixed(0x10000, 0x1000, PROT_READ | PROT_WRITE)
    d = Dispatcher(state_addr=ctypes.addressof(cpu), membase=mem.base, mem_size=mem.size)
    code = {A: _unit(A, _a), B: _unit(B, _b), FAULT: _unit(FAULT, _fault), STOP: _unit(STOP, _quick)}
    for pc in (A, B, FAULT):
        d.install(pc, code[pc])

    def native_loop() -> float:
        cpu.rcx = n
        t0 = time.perf_counter()
        r = d.run(A)
        dt = time.perf_counter() - t0
        assert r == ("syscall", STOP, None)
        return dt / (2 * n - 1) * 1e9

    fns = {pc: UNIT_FN(addr) for pc, addr in code.items()}
    info = ExitInfo()
    state, base, iaddr = ctypes.addressof(cpu), mem.base, ctypes.addressof(info)
    m = n // 20

    def python_loop() -> float:
        cpu.rcx = m
        pc, steps = A, 0
        t0 = time.perf_counter()
        while True:
            pc = fns[pc](state, base, iaddr)
            steps += 1
            if info[0]:
                break
        dt = time.perf_counter() - t0
        assert pc == STOP and steps == 2 * m - 1
        return dt / steps * 1e9

    k = 20_000
    d.install(STOP, code[STOP])

    def run_roundtrip() -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            d.run(STOP)
        return (time.perf_counter() - t0) / k * 1e9

    def fault_roundtrip() -> float:
        cpu.rsi = 0x20000  # unmapped
        t0 = time.perf_counter()
        for _ in range(k):
            r = d.run(FAULT)
        assert r == ("sigsegv", FAULT, 0x20000), r
        return (time.perf_counter() - t0) / k * 1e6

    def miss_roundtrip() -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            d.run(0x7777)
        return (time.perf_counter() - t0) / k * 1e6

    nat, py = _median(native_loop), _median(python_loop)
    print(f"transition   native dispatcher {nat:8.2f} ns   Python loop over ctypes {py:8.1f} ns   "
          f"({py / nat:.0f}x)")
    print(f"run()        round trip to Python and back {_median(run_roundtrip):8.0f} ns")
    f, mi = _median(fault_roundtrip), _median(miss_roundtrip)
    print(f"fault        run() that faults {f:6.2f} us   run() that misses {mi:6.2f} us   "
          f"fault cost {f - mi:6.2f} us")
    with tempfile.TemporaryDirectory() as cache:
        cold = [_startup(None) for _ in range(3)]
        fill = _startup(cache)
        warm = [_startup(cache) for _ in range(3)]
        assert not fill[1] and all(c for _, c in warm) and not any(c for _, c in cold)
        cold, warm = statistics.median(s for s, _ in cold), statistics.median(s for s, _ in warm)
    print(f"start-up     compiled {cold * 1e3:6.1f} ms   from the disk cache {warm * 1e3:6.1f} ms "
          f"(LLVM target set-up and linking included)")
    mem.close()


if __name__ == "__main__":
    main()
