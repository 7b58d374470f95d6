"""The native dispatcher (hqemu/native/dispatch.py) and native guest faults (hqemu/native/faults.py).

Small IR units are compiled by the LLVM workers' code, installed in a dispatch table and run
by hqemu_dispatch on a real GuestMemory; the oracle is the reference interpreter run_block,
run unit after unit by pc on a second, identically mapped memory and CPU struct. Faults are
checked against the interpreter's GuestFault and the guest instruction it was in; host
crashes run in a subprocess and must still kill it by SIGSEGV.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hqemu.errors import GuestExit, GuestFault
from hqemu.frontends.x86_64.cpu import LAYOUT, X86State
from hqemu.ir import I64, Builder, Const, Helper, Unit, interp, register
from hqemu.linux.memory import PROT_READ, PROT_WRITE, GuestMemory
from hqemu.native import dispatch as dmod
from hqemu.native import faults
from hqemu.native.dispatch import EMPTY, TOMB, Dispatcher, DispatchTable, Stop
from hqemu.native.loader import native
from hqemu.stats import Stats
from workers.compile import compile_unit_text
from workers.lower import EXITINFO_SIZE, lower_unit

ROOT = Path(__file__).resolve().parent.parent
SPACE = 1 << 24
DATA, RO, HOLE = 0x10000, 0x12000, 0x20000  # a read-write page pair, a read-only page, nothing
_names = itertools.count()


# --- a guest: CPU struct, memory, units --------------------------------------------------------
class Guest:
    """What run_block and the Dispatcher both need: env.cpu/state/mem (and stats)."""

    def __init__(self):
        self.cpu = X86State()
        self.state = memoryview(self.cpu).cast("B").cast("Q")
        self.mem = GuestMemory(SPACE)
        self.mem.map_fixed(DATA, 0x2000, PROT_READ | PROT_WRITE)
        self.mem.map_fixed(RO, 0x1000, PROT_READ | PROT_WRITE)
        for i in range(0, 0x3000, 8):
            self.mem.store(DATA + i, 8, (i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1))
        self.mem.mprotect(RO, 0x1000, PROT_READ)
        self.stats = Stats()

    def set(self, **regs: int) -> None:
        for r, v in regs.items():
            self.state[LAYOUT[r].offset >> 3] = v

    def get(self, r: str) -> int:
        return self.state[LAYOUT[r].offset >> 3]

    def snapshot(self) -> tuple:
        return tuple(self.state), self.mem.read(DATA, 0x2000), self.mem.read(RO, 0x1000)

    def close(self) -> None:
        self.state.release()
        self.mem.close()


@pytest.fixture
def guests():
    made: list[Guest] = []

    def make() -> Guest:
        made.append(Guest())
        return made[-1]

    yield make
    for g in made:
        g.close()


def unit(pc: int, body) -> Unit:
    u = Unit("x86_64", LAYOUT)
    body(Builder(u, u.new_block(pc)))
    return u


def compile_units(units: list[Unit], opt: str = "O2") -> dict[int, int]:
    """guest pc -> native code address."""
    out = {}
    for u in units:
        co = compile_unit_text(lower_unit(u, f"nd_{u.pc:x}_{next(_names)}"), opt)
        out[u.pc] = native().load(co.obj, co.entry)
    return out


def reference(units: list[Unit], g: Guest, pc: int, limit: int = 100_000) -> tuple[str, int, int, int]:
    """run_block unit after unit as the dispatcher would: (kind, pc, units run, insns entered)."""
    by_pc = {u.pc: u for u in units}
    n = insns = 0
    while pc in by_pc and n < limit:
        u = by_pc[pc]
        insns += u.guest_insns()
        kind, pc = interp.run_block(u, g)
        n += 1
        if kind != "jump":
            return kind, pc, n, insns
    return "jump", pc, n, insns


def fault_reference(units: list[Unit], g: Guest, pc: int) -> tuple[int, int]:
    """(guest pc of the instruction, guest address) of the fault the interpreter meets."""
    where = {}
    saved = interp.HANDLERS["insn"]

    def insn(x, op):
        where["pc"] = op.consts[0]

    interp.HANDLERS["insn"] = insn
    try:
        with pytest.raises(GuestFault) as e:
            reference(units, g, pc)
    finally:
        interp.HANDLERS["insn"] = saved
    return where["pc"], e.value.addr


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def dispatcher(g: Guest, **kw) -> Dispatcher:
    return Dispatcher(g, **kw)


# --- units -------------------------------------------------------------------------------------
def ping_pong(end: int = 0x9000) -> list[Unit]:
    """0x1000 counts rcx down and stores it, 0x2000 accumulates memory into rax; at 0 -> end."""
    def a(b):
        b.insn(0x1000, 4)
        c = b.sub(b.get("rcx"), 1)
        b.put("rcx", c)
        b.insn(0x1004, 4)
        b.st(b.add(b.and_(b.shl(c, 3), 0xFF8), Const(DATA, I64)), b.mul(c, 7))
        b.insn(0x1008, 2)
        b.exit_if(b.setcond("eq", c, 0), "jump", end)
        b.exit("jump", 0x2000)

    def bb(b):
        b.insn(0x2000, 3)
        v = b.ld(b.add(b.and_(b.shl(b.get("rcx"), 4), 0x1FF8), Const(DATA, I64)), I64)
        b.put("rax", b.add(b.xor(b.get("rax"), v), b.get("rcx")))
        b.insn(0x2003, 2)
        b.exit("jump", 0x1000)

    return [unit(0x1000, a), unit(0x2000, bb)]


# --- chaining ---------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["none", "O2"])
def test_units_chain_natively_until_a_miss(guests, opt):
    units = ping_pong()
    code = compile_units(units, opt)
    got, ref = guests(), guests()
    for g in (got, ref):
        g.set(rcx=500, rax=3)
    d = dispatcher(got)
    for pc, addr in code.items():
        d.install(pc, addr)
    want_kind, want_pc, n, insns = reference(units, ref, 0x1000)
    assert (want_kind, want_pc) == ("jump", 0x9000) and n == 999
    assert d.run(0x1000) == ("jump", want_pc, None)
    assert got.snapshot() == ref.snapshot()
    assert d.transitions == n and d.guest_insns == insns
    assert nonzero(d.returns) == {"miss": 1}
    assert (got.stats.native_units, got.stats.native_guest_insns) == (n, insns)
    assert got.stats.native_returns == {"miss": 1}
    assert d.rec.stop == Stop.MISS.value


@pytest.mark.parametrize("indirect", [False, True])
def test_a_unit_chains_through_the_table_its_record_names(guests, indirect):
    """A jump exit looks its target up in the table of the exit record and tail-calls it
    (workers/abi.py); a record with no table, and an interrupt request, make it return."""
    def a(b):
        b.insn(0x1000, 2)
        b.put("rax", b.add(b.get("rax"), 5))
        if indirect:
            b.exit_ind(b.add(b.get("rbx"), 0x1000))  # rbx = 0x1000: the target is 0x2000
        else:
            b.exit("jump", 0x2000)

    def bb(b):
        b.insn(0x2000, 2)
        b.put("rax", b.mul(b.get("rax"), 3))
        b.exit("syscall", 0x2002)

    code = compile_units([unit(0x1000, a), unit(0x2000, bb)])
    g = guests()
    table = DispatchTable()
    for pc, addr in code.items():
        table.install(pc, addr)
    rec = dmod.ExitRecord()
    call = native().function(code[0x1000])
    cases = ((0, 0, 0x2000, 15), (table.addr, 0, 0x2002, 45), (table.addr, 1, 0x2000, 15))
    for words, request, want_pc, want_rax in cases:
        g.set(rax=10, rbx=0x1000)
        rec.words, rec.mask, rec.request, rec.units = words, table.mask, request, 0
        assert call(ctypes.addressof(g.cpu), g.mem.base, ctypes.addressof(rec)) == want_pc
        assert g.get("rax") == want_rax and rec.units == (want_pc == 0x2002)
        assert rec.unit_pc == (0x2000 if want_pc == 0x2002 else 0)
        rec.unit_pc = 0
        # an indirect jump exit leaves its edge for the sampler, chained or not
        assert (rec.ind_from, rec.ind_to) == ((0x1000, 0x2000) if indirect else (0, 0))


def test_instruction_count_is_live_inside_a_looping_unit(guests):
    """A unit that loops inside itself never comes back to the dispatcher: the record's count
    must still grow while it runs (the status endpoint reads it from another thread), and end
    exact (oracle: blocks entered times their instructions)."""
    u = Unit("x86_64", LAYOUT)
    b = Builder(u, u.new_block(0x1000))
    b.insn(0x1000, 3)
    b.exit("jump", 0x1003)
    b = Builder(u, u.new_block(0x1003))
    b.insn(0x1003, 4)
    b.insn(0x1007, 2)
    c = b.sub(b.get("rcx"), 1)
    b.put("rcx", c)
    b.exit_if(b.setcond("ne", c, 0), "jump", 0x1003)
    b.exit("syscall", 0x1009)
    code = compile_units([u], "cheap")  # O2 would delete the counting loop
    g = guests()
    n = 1 << 28
    g.set(rcx=n)
    d = dispatcher(g)
    d.install(0x1000, code[0x1000])
    out: list = []
    t = threading.Thread(target=lambda: out.append(d.run(0x1000)))
    t.start()
    seen = []
    while t.is_alive() and len(seen) < 3:
        time.sleep(0.02)
        seen.append(d.guest_insns)
    t.join(60)
    assert out == [("syscall", 0x1009, None)]
    assert d.guest_insns == 1 + 2 * n
    live = [x for x in seen if 0 < x < 1 + 2 * n]
    assert live and live == sorted(live), seen


def test_exit_kinds_come_back_to_python(guests):
    def a(b):
        b.insn(0x1000, 2)
        b.put("rax", b.add(b.get("rax"), 1))
        b.exit_if(b.setcond("eq", b.get("rdx"), 1), "sigtrap", 0x1002)
        b.exit("syscall", 0x1002)

    units = [unit(0x1000, a)]
    code = compile_units(units)
    got, ref = guests(), guests()
    d = dispatcher(got)
    d.install(0x1000, code[0x1000])
    for rdx, kind in ((0, "syscall"), (1, "sigtrap")):
        for g in (got, ref):
            g.set(rdx=rdx)
        want = reference(units, ref, 0x1000)
        assert (want[0], want[1]) == (kind, 0x1002)
        assert d.run(0x1000) == (kind, 0x1002, None)
        assert got.snapshot() == ref.snapshot()
    assert nonzero(d.returns) == {"syscall": 1, "trap": 1}
    assert d.run(0x1002) == ("jump", 0x1002, None)  # nothing installed there


# --- faults ------------------------------------------------------------------------------------
def faulty(where: str) -> list[Unit]:
    """A chain 0x1000 -> 0x2000 -> 0x3000; 0x3000's second memory instruction accesses rsi
    (loads) or stores to rdi: the fault happens after some native transitions."""
    def a(b):
        b.insn(0x1000, 3)
        b.put("rbx", b.add(b.get("rbx"), 1))
        b.exit("jump", 0x2000)

    def bb(b):
        b.insn(0x2000, 4)
        b.st(Const(DATA + 8, I64), b.get("rbx"))
        b.exit_if(b.setcond("ltu", b.get("rbx"), 5), "jump", 0x1000)
        b.exit("jump", 0x3000)

    def c(b):
        b.insn(0x3000, 4)
        v = b.ld(Const(DATA, I64), I64)
        b.put("rax", v)
        b.insn(0x3004, 2)
        b.put("rcx", b.add(v, 1))
        b.insn(0x3006, 5)
        if where == "load":
            b.put("rdx", b.ld(b.get("rsi"), I64))
        else:
            b.st(b.get("rdi"), v)
        b.insn(0x300B, 4)
        b.st(Const(DATA + 16, I64), v)
        b.exit("jump", 0x9000)

    return [unit(0x1000, a), unit(0x2000, bb), unit(0x3000, c)]


@pytest.mark.parametrize("opt", ["none", "cheap", "O2"])
@pytest.mark.parametrize("where,regs", [("load", {"rsi": HOLE + 0x18}), ("load", {"rsi": RO + 0xFFC}),
                                        ("store", {"rdi": RO + 8}), ("store", {"rdi": RO - 4})])
def test_guest_fault_reports_pc_and_address(guests, opt, where, regs):
    units = faulty(where)
    code = compile_units(units, opt)
    got, ref = guests(), guests()
    for g in (got, ref):
        g.set(**{"rsi": DATA, "rdi": DATA + 32, **regs})
    d = dispatcher(got)
    for pc, addr in code.items():
        d.install(pc, addr)
    want_pc, want_addr = fault_reference(units, ref, 0x1000)
    kind, pc, addr = d.run(0x1000)
    assert (kind, pc, addr) == ("sigsegv", want_pc, want_addr)
    assert d.fault_in_guest_space() and d.rec.signo == signal.SIGSEGV
    assert nonzero(d.returns) == {"fault": 1} and got.stats.native_returns == {"fault": 1}
    # the handler is armed again: the same dispatcher runs cleanly, and faults again
    for g in (got, ref):
        g.set(**{"rbx": 0, "rsi": DATA, "rdi": DATA + 32})
    want = reference(units, ref, 0x1000)
    assert d.run(0x1000) == (want[0], want[1], None)
    assert got.snapshot() == ref.snapshot()
    got.set(rbx=0, **regs)
    assert d.run(0x1000) == ("sigsegv", want_pc, want_addr)


def test_wild_guest_address_is_a_guest_fault(guests):
    """An address past the reservation is still the guest's fault, marked as outside the space."""
    units = faulty("load")
    code = compile_units(units[2:])
    g = guests()
    g.set(rsi=1 << 63)  # host address non-canonical: the kernel reports no address
    d = dispatcher(g)
    d.install(0x3000, code[0x3000])
    kind, pc, _ = d.run(0x3000)
    assert (kind, pc) == ("sigsegv", 0x3006)
    assert not d.fault_in_guest_space()


def test_dead_load_still_faults(guests):
    """A load nobody reads is a guest access all the same (x86 `test [mem], r` with dead flags)."""
    def a(b):
        b.insn(0x1000, 3)
        b.ld(b.get("rsi"), I64)
        b.insn(0x1003, 2)
        b.exit("jump", 0x9000)

    code = compile_units([unit(0x1000, a)], "O2")
    g = guests()
    g.set(rsi=HOLE + 8)
    d = dispatcher(g)
    d.install(0x1000, code[0x1000])
    assert d.run(0x1000) == ("sigsegv", 0x1000, HOLE + 8)


def test_pcs_that_are_table_markers_miss(guests):
    """2**64-1 and 2**64-2 mark free and removed slots: as guest pcs they must miss, not
    match a free slot and call its garbage."""
    def a(b):
        b.insn(0x1000, 2)
        b.exit_ind(b.get("rax"))

    code = compile_units([unit(0x1000, a)])
    g = guests()
    d = dispatcher(g)
    d.install(0x1000, code[0x1000])
    d.install(0x2000, code[0x1000])
    d.remove(0x2000)  # leaves a tombstone
    for target in (EMPTY, TOMB):
        g.set(rax=target)
        assert d.run(0x1000) == ("jump", target, None)
        assert d.run(target) == ("jump", target, None)


def test_sigbus_of_a_truncated_shared_file(guests, tmp_path):
    """Linux raises SIGBUS for a shared file mapping's pages past the file's end: the guest
    gets sigbus at the loading instruction (Python must not touch that page: no interpreter)."""
    from hqemu.linux.memory import MAP_FIXED, MAP_SHARED

    units = faulty("load")
    code = compile_units(units[2:])
    g = guests()
    path = tmp_path / "shared"
    path.write_bytes(bytes(range(256)) * 32)
    fd = os.open(path, os.O_RDWR)
    try:
        assert g.mem.mmap(0x30000, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == 0x30000
        os.ftruncate(fd, 0x1000)
    finally:
        os.close(fd)
    d = dispatcher(g)
    d.install(0x3000, code[0x3000])
    g.set(rsi=0x30FF8)  # still inside the file: the load works
    assert d.run(0x3000) == ("jump", 0x9000, None)
    assert g.get("rdx") == int.from_bytes(bytes(range(0xF8, 0x100)), "little")
    g.set(rsi=0x31010)
    assert d.run(0x3000) == ("sigbus", 0x3006, 0x31010)
    assert d.rec.signo == signal.SIGBUS and nonzero(d.returns) == {"miss": 1, "fault": 1}


def test_fault_in_a_thread(guests):
    units = faulty("store")
    code = compile_units(units)
    g = guests()
    g.set(rdi=RO)
    d = dispatcher(g)
    for pc, addr in code.items():
        d.install(pc, addr)
    out = []
    t = threading.Thread(target=lambda: out.append(d.run(0x1000)))
    t.start()
    t.join(10)
    assert out == [("sigsegv", 0x3006, RO)]


# --- helpers -----------------------------------------------------------------------------------
def _h_exit(env, a):
    if a == 7:
        raise GuestExit(3)
    return a * 2


register(Helper("test_nd_exit", (I64,), (I64,), reads_state=True), _h_exit)


def test_helper_exception_reaches_run(guests):
    def a(b):
        b.insn(0x1000, 2)
        (r,) = b.call("test_nd_exit", b.get("rax"))
        b.put("rax", r)
        b.insn(0x1002, 2)
        b.exit_if(b.setcond("gtu", r, 1000), "syscall", 0x1004)
        b.exit("jump", 0x1000)

    code = compile_units([unit(0x1000, a)])
    g = guests()
    d = dispatcher(g)
    d.install(0x1000, code[0x1000])
    g.set(rax=7)
    with pytest.raises(GuestExit) as e:
        d.run(0x1000)
    assert e.value.status == 3 and nonzero(d.returns) == {"helper": 1}
    assert d.rec.in_helper == 0
    g.set(rax=1)
    assert d.run(0x1000) == ("syscall", 0x1004, None)
    assert g.get("rax") == 1024


# --- host crashes must stay crashes -------------------------------------------------------------
_CRASH = """
import ctypes, sys
sys.path.insert(0, {root!r})
if {faulthandler}:
    import faulthandler; faulthandler.enable()
from hqemu.frontends.x86_64.cpu import LAYOUT, X86State
from hqemu.ir import I64, Builder, Helper, Unit, register
from hqemu.linux.memory import GuestMemory
from hqemu.native.dispatch import Dispatcher
from hqemu.native.loader import native
from workers.compile import compile_unit_text
from workers.lower import lower_unit

mem = GuestMemory(1 << 24)
cpu = X86State()
d = Dispatcher(state_addr=ctypes.addressof(cpu), membase=mem.base, mem_size=mem.size, cache_dir=None)
register(Helper("crash", (I64,), (I64,)), lambda env, a: ctypes.string_at(a, 8)[0])
u = Unit("x86_64", LAYOUT)
b = Builder(u, u.new_block(0x1000))
b.insn(0x1000, 2)
(r,) = b.call("crash", b.get("rax"))
b.put("rax", r)
b.exit("syscall", 0x1002)
co = compile_unit_text(lower_unit(u, "crashy"), "cheap")
d.install(0x1000, native().load(co.obj, co.entry))
cpu.rax = {addr}
print(d.run(0x1000), flush=True)
if {python_crash}:
    ctypes.string_at(16, 8)
print("survived", flush=True)
"""


def _crash(addr: str, python_crash: bool, faulthandler: bool = False) -> subprocess.CompletedProcess:
    code = _CRASH.format(root=str(ROOT), addr=addr, python_crash=python_crash, faulthandler=faulthandler)
    env = dict(os.environ, PYTHONFAULTHANDLER="")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_host_segv_outside_native_code_kills_the_process():
    r = _crash(addr="id(mem)", python_crash=True)  # the helper reads valid host memory
    assert re.search(r"\('syscall', 4098, None\)", r.stdout), r.stderr
    assert "survived" not in r.stdout
    assert r.returncode == -signal.SIGSEGV, r.stderr


def test_host_segv_inside_a_helper_is_not_a_guest_fault():
    """The helper (Python, called from native code) reads address 16: the previous handler
    (Python's faulthandler here) reports it and the process dies by SIGSEGV."""
    r = _crash(addr="16", python_crash=False, faulthandler=True)
    assert "syscall" not in r.stdout and "survived" not in r.stdout
    assert "Segmentation fault" in r.stderr
    assert r.returncode == -signal.SIGSEGV, r.stderr


# --- the table, with a dispatcher reading it ---------------------------------------------------
def test_install_from_another_thread_is_seen(guests):
    """0x1000 and 0x2000 bounce until another thread installs 0x3000 and re-points 0x2000."""
    def a(b):
        b.insn(0x1000, 2)
        n = b.add(b.get("rax"), 1)
        b.put("rax", n)
        b.exit_if(b.setcond("geu", n, 1 << 31), "sigtrap", 0x1000)  # never, unless unseen
        b.exit("jump", 0x2000)

    def bounce(b):
        b.insn(0x2000, 2)
        b.exit("jump", 0x1000)

    def onward(b):
        b.insn(0x2000, 2)
        b.put("rbx", b.get("rax"))
        b.exit("jump", 0x3000)

    def last(b):
        b.insn(0x3000, 2)
        b.exit("syscall", 0x3002)

    code = compile_units([unit(0x1000, a), unit(0x2000, bounce)])
    later = compile_units([unit(0x2000, onward), unit(0x3000, last)])
    g = guests()
    d = dispatcher(g)
    for pc, addr in code.items():
        d.install(pc, addr)
    out = []
    t = threading.Thread(target=lambda: out.append(d.run(0x1000)))
    t.start()
    time.sleep(0.05)
    assert not out  # still bouncing natively, with the GIL released
    d.install(0x3000, later[0x3000])  # a new key
    d.install(0x2000, later[0x2000])  # then a new code address for a live key
    t.join(10)
    assert out == [("syscall", 0x3002, None)]
    assert g.get("rbx") == g.get("rax") > 1000
    assert d.transitions == g.get("rax") * 2 + 1


def test_interrupt_from_another_thread(guests):
    code = compile_units(ping_pong())
    g = guests()
    g.set(rcx=0)  # counts down from 2**64: practically forever
    d = dispatcher(g)
    for pc, addr in code.items():
        d.install(pc, addr)
    threading.Timer(0.05, d.interrupt).start()
    kind, pc, fa = d.run(0x1000)
    assert kind == "jump" and pc in code and fa is None
    assert nonzero(d.returns) == {"interrupt": 1} and d.transitions > 1000


def test_table_against_a_dict(guests):
    """Installs past two growths, removals (tombstones), replacement and clear: every pc
    either runs its own unit (which returns its pc with kind syscall) or misses."""
    def stub(b):
        b.insn(0x5000, 1)
        b.exit("syscall", 0x5001)

    stub_addr = compile_units([unit(0x5000, stub)])[0x5000]
    g = guests()
    table = DispatchTable(capacity=64)
    d = dispatcher(g, table=table)
    want: dict[int, int] = {}
    pcs = [0x400000 + 3 * i for i in range(200)] + [i << 32 for i in range(1, 60)]
    for i, pc in enumerate(pcs):
        d.install(pc, stub_addr)
        want[pc] = stub_addr
        if i % 3 == 0:
            assert d.remove(pcs[i // 2]) == (pcs[i // 2] in want)
            want.pop(pcs[i // 2], None)
    assert table.capacity > 64 and len(table) == len(want)
    assert any(table.words[2 * i] == TOMB for i in range(table.capacity))
    for pc in pcs + [0x400001, 5 << 32]:
        hit = pc in want
        assert table.lookup(pc) == want.get(pc)
        assert d.run(pc) == (("syscall", 0x5001, None) if hit else ("jump", pc, None)), hex(pc)
    d.clear()
    assert len(table) == 0 and d.run(pcs[-1]) == ("jump", pcs[-1], None)


def test_installs_queue_while_a_dispatcher_runs():
    table = DispatchTable(capacity=8)
    table.header.runners = 1  # as if a dispatcher were inside hqemu_run
    addr = table.addr
    for pc in range(0x100, 0x110):
        table.install(pc, pc * 2)
    assert table.addr == addr and table.capacity == 8  # the array did not move
    assert table.pending and table.used < table.capacity
    assert all(table.lookup(pc) == pc * 2 for pc in range(0x100, 0x110))
    table.header.runners = 0
    table.settle()
    assert not table.pending and table.capacity > 8 and table.header.words != addr
    assert all(table.lookup(pc) == pc * 2 for pc in range(0x100, 0x110))


def test_a_run_backs_off_while_the_table_moves(guests):
    """hqemu_run finds `moving` set: nothing runs, and run() goes once the mover is done."""
    def stub(b):
        b.insn(0x5000, 1)
        b.exit("syscall", 0x5001)

    g = guests()
    d = dispatcher(g, table=DispatchTable(capacity=8))
    d.install(0x5000, compile_units([unit(0x5000, stub)])[0x5000])
    d.table.header.moving = 1
    d.table.lock.acquire()  # the mover's lock, released by a timer

    released = threading.Event()

    def done():
        released.set()
        d.table.header.moving = 0
        d.table.lock.release()

    threading.Timer(0.05, done).start()
    assert d.run(0x5000) == ("syscall", 0x5001, None)
    assert released.is_set()  # it waited for the mover (not a timing: the load cannot fool it)
    assert d.transitions == 1 and d.table.running == 0


# --- the lowering's side of the record -----------------------------------------------------------
def test_lowering_counts_instructions_and_writes_fault_pcs():
    units = faulty("load")
    text = lower_unit(units[2], "rec_check")
    co = compile_unit_text(text, "O2", keep_ir=True)
    assert co.ir.count("store volatile i64") == 3  # the three instructions that touch memory
    assert lower_unit(units[2], "rec_check2", fault_pcs=False).count("store volatile") == 0
    g = Guest()
    try:
        g.set(rsi=DATA)
        info = (ctypes.c_uint64 * (EXITINFO_SIZE // 8))()
        pc = native().call(native().load(co.obj, co.entry), ctypes.addressof(g.cpu), g.mem.base,
                           ctypes.addressof(info))
        assert (pc, info[0], info[1], info[2]) == (0x9000, 0, 0x300B, units[2].guest_insns())
    finally:
        g.close()


def test_dispatcher_object_is_cached_on_disk(tmp_path):
    ir = dmod.dispatch_ir()
    obj, cached = dmod._object(ir, tmp_path)
    assert not cached and len(list(tmp_path.glob("dispatch-*.o"))) == 1
    again, cached = dmod._object(ir, tmp_path)
    assert cached and again == obj
    other, cached = dmod._object(ir.replace("1048575", "1048574"), tmp_path)  # other IR: other key
    assert not cached and len(list(tmp_path.glob("dispatch-*.o"))) == 2


def test_handler_stays_installed():
    dmod.dispatch_code()
    assert faults.installed()
