"""Native code under the guest's SSE environment (hqemu/native/dispatch.py, "Floating point").

Small units on a small CPU state (a few i64 words, one of them the guest's MXCSR word) divide
f64 values taken from the state or from guest memory, so LLVM cannot fold them: the host's
divsd must round as the guest's MXCSR says, its flags must reach the guest's word, an
exception the guest unmasked must come back as the guest's sigfpe, and Python (after a run,
inside a helper) must find its own MXCSR again. The oracle for rounding is exact arithmetic
(fractions.Fraction) on Python's round-to-nearest quotient and its neighbours.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import pytest

from hqemu.ir import F64, I64, Builder, Const, Global, Helper, StateLayout, Unit, register
from hqemu.native import dispatch as dmod
from hqemu.native import faults
from hqemu.native.dispatch import Dispatcher, Stop
from hqemu.native.loader import native
from workers.compile import compile_unit_text
from workers.lower import lower_unit

pytestmark = pytest.mark.skipif(not dmod.HOST_SSE, reason="the guest SSE environment needs an x86-64 host")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = 0x1F80  # every exception masked, round to nearest, no flag
FLAGS = 0x3F
IE, ZE, PE = 0x01, 0x04, 0x20
ZM = 0x200
RC_NEAREST, RC_DOWN, RC_UP, RC_ZERO = 0x0000, 0x2000, 0x4000, 0x6000
_names = itertools.count()


class State(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("a", "b", "r", "r2", "h", "m", "pad", "mxcsr")]


LAYOUT = StateLayout("x86_64", [Global(name, I64, getattr(State, name).offset) for name, _ in State._fields_])
MXCSR = State.mxcsr.offset
MEM_WORDS = 64


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def rounded(a: float, b: float, rc: int) -> float:
    """a / b rounded as the MXCSR rounding control rc says."""
    n = a / b  # Python: round to nearest
    exact = Fraction(a) / Fraction(b)
    if Fraction(n) == exact:
        return n
    down, up = (n, math.nextafter(n, math.inf)) if Fraction(n) < exact else (math.nextafter(n, -math.inf), n)
    return {RC_NEAREST: n, RC_DOWN: down, RC_UP: up, RC_ZERO: down if exact > 0 else up}[rc]


class Guest:
    """A CPU state, a few words of guest memory, a Dispatcher (fenv: under the guest's MXCSR)."""

    def __init__(self, fenv: bool = True, mxcsr: int = DEFAULT):
        self.cpu = State()
        self.cpu.mxcsr = mxcsr
        self.mem = (ctypes.c_uint64 * MEM_WORDS)()
        self.d = Dispatcher(state_addr=ctypes.addressof(self.cpu), membase=ctypes.addressof(self.mem),
                            mem_size=ctypes.sizeof(self.mem), fenv_offset=MXCSR if fenv else None)

    def install(self, *units: Unit) -> None:
        for u in units:
            co = compile_unit_text(lower_unit(u, f"fenv_{u.pc:x}_{next(_names)}"), "O2")
            self.d.install(u.pc, native().load(co.obj, co.entry))

    def run(self, pc: int = 0x1000) -> tuple:
        before = dmod.host_mxcsr()
        out = self.d.run(pc)
        if self.d.rec.fenv:
            assert dmod.host_mxcsr() == before  # Python's MXCSR again, whatever happened
        else:  # native code ran under Python's MXCSR: its flags stay there, nothing else changes
            assert dmod.host_mxcsr() & ~FLAGS == before & ~FLAGS
        return out


def unit(body, pc: int = 0x1000) -> Unit:
    u = Unit("x86_64", LAYOUT)
    body(Builder(u, u.new_block(pc)))
    return u


def f64(b: Builder, reg: str):
    return b.bitcast(b.get(reg), F64)


def divide(b: Builder) -> None:
    """r = a / b (f64 bits in the state), then a syscall exit."""
    b.insn(0x1000, 4)
    b.put("r", b.bitcast(b.fdiv(f64(b, "a"), f64(b, "b")), I64))
    b.insn(0x1004, 2)
    b.exit("syscall", 0x1006)


# --- flags ---------------------------------------------------------------------------------------
def test_flags_raised_by_native_code_reach_the_guest_word():
    g = Guest()
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(1.0), bits(0.0)
    assert g.run() == ("syscall", 0x1006, None)
    assert g.cpu.r == bits(math.inf)
    assert g.cpu.mxcsr == DEFAULT | ZE
    # sticky: a later run raising another flag adds it, ZE stays
    g.cpu.a, g.cpu.b = bits(1.0), bits(3.0)
    assert g.run() == ("syscall", 0x1006, None)
    assert g.cpu.mxcsr == DEFAULT | ZE | PE
    # flags clear in the word: none raised, none added (the host's own flags never leak in)
    g.cpu.mxcsr = DEFAULT
    g.cpu.a, g.cpu.b = bits(1.0), bits(4.0)
    assert g.run() == ("syscall", 0x1006, None)
    assert g.cpu.r == bits(0.25) and g.cpu.mxcsr == DEFAULT


def test_the_host_mxcsr_is_saved_and_restored_around_a_run():
    """Python's MXCSR after a run is the one before it, also when that is not the default and
    carries flags of its own (which must not reach the guest)."""
    g = Guest()
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(1.0), bits(4.0)
    saved = ctypes.c_uint32()
    ldmxcsr = _host_ldmxcsr()
    old = dmod.host_mxcsr()
    try:
        saved.value = DEFAULT | RC_ZERO | PE | IE
        ldmxcsr(ctypes.addressof(saved))
        assert dmod.host_mxcsr() == DEFAULT | RC_ZERO | PE | IE
        assert g.d.run(0x1000) == ("syscall", 0x1006, None)
        now = dmod.host_mxcsr()
    finally:
        saved.value = old
        ldmxcsr(ctypes.addressof(saved))
    assert now == DEFAULT | RC_ZERO | PE | IE
    assert g.cpu.mxcsr == DEFAULT and g.d.rec.host_mxcsr == DEFAULT | RC_ZERO | PE | IE


_ldmxcsr = None


def _host_ldmxcsr():
    """A ctypes-callable ldmxcsr(ptr), compiled here (the dispatcher has no setter)."""
    global _ldmxcsr
    if _ldmxcsr is None:
        ir = """declare void @llvm.x86.sse.ldmxcsr(ptr) nounwind
define void @test_fenv_ldmxcsr(ptr %p) nounwind {
  call void @llvm.x86.sse.ldmxcsr(ptr %p)
  ret void
}
"""
        co = compile_unit_text(ir, "O2")
        _ldmxcsr = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(native().load(co.obj, "test_fenv_ldmxcsr"))
    return _ldmxcsr


# --- rounding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rc", [RC_NEAREST, RC_DOWN, RC_UP, RC_ZERO])
@pytest.mark.parametrize("a", [1.0, -1.0])
def test_rounding_follows_the_guest(rc, a):
    g = Guest(mxcsr=DEFAULT | rc)
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(a), bits(3.0)
    assert g.run() == ("syscall", 0x1006, None)
    want = rounded(a, 3.0, rc)
    assert g.cpu.r == bits(want), (hex(g.cpu.r), want.hex())
    assert g.cpu.mxcsr == DEFAULT | rc | PE


def test_round_up_is_one_ulp_above_nearest():
    """The plainest statement of the goal: 1/3 rounded up is not Python's 1/3."""
    g = Guest(mxcsr=DEFAULT | RC_UP)
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(1.0), bits(3.0)
    g.run()
    assert g.cpu.r == bits(1 / 3) + 1 == bits(math.nextafter(1 / 3, math.inf))


def test_daz_and_ftz_follow_the_guest():
    """DAZ (bit 6) and FTZ (bit 15) are control bits too: a denormal quotient flushes to 0."""
    tiny = 2.0 ** -1060  # a denormal
    g = Guest(mxcsr=DEFAULT | 0x8000)
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(tiny), bits(1.0)
    g.run()
    assert g.cpu.r == 0  # FTZ: a tiny result is +0
    g.cpu.mxcsr = DEFAULT | 0x40
    g.run()
    assert g.cpu.r == 0  # DAZ: the denormal operand is +0, so is the quotient


# --- traps ---------------------------------------------------------------------------------------
def trapping(b: Builder) -> None:
    """0x1000: loads a word (insn_pc = 0x1000), t = a / 3 (inexact: PE);
    0x1004: z = t * mem[8] (+0.0 from guest memory: insn_pc = 0x1004), r = a / z."""
    b.insn(0x1000, 4)
    b.put("h", b.ld(Const(0, I64), I64))
    t = b.fdiv(f64(b, "a"), b.c(3.0, F64))
    b.insn(0x1004, 4)
    z = b.fmul(t, b.bitcast(b.ld(Const(8, I64), I64), F64))
    b.put("r", b.bitcast(b.fdiv(f64(b, "a"), z), I64))
    b.insn(0x1008, 2)
    b.exit("syscall", 0x100A)


def test_an_unmasked_exception_is_the_guest_sigfpe():
    g = Guest(mxcsr=DEFAULT & ~ZM)
    g.install(unit(trapping))
    g.cpu.a, g.cpu.r = bits(1.0), 0x5A5A
    g.mem[1] = bits(0.0)
    assert g.run() == ("sigfpe", 0x1004, None)
    assert g.d.rec.stop == Stop.FAULT.value and g.d.rec.signo == signal.SIGFPE
    assert g.d.returns["fault"] == 1
    assert g.cpu.r == 0x5A5A  # the division did not complete
    # the flags raised before the trap and the trapping one, as the hardware leaves them
    assert g.cpu.mxcsr == (DEFAULT & ~ZM) | PE | ZE
    # the process goes on, and so do native runs: masked again, the same code completes
    g.cpu.mxcsr = DEFAULT
    assert g.run() == ("syscall", 0x100A, None)
    assert g.cpu.r == bits(math.inf) and g.cpu.mxcsr == DEFAULT | PE | ZE
    # and an unmasked run that raises nothing unmasked traps not
    g.cpu.mxcsr = DEFAULT & ~ZM
    g.mem[1] = bits(1.0)
    assert g.run() == ("syscall", 0x100A, None)
    assert g.cpu.mxcsr == (DEFAULT & ~ZM) | PE


def test_a_masked_exception_does_not_trap():
    g = Guest(mxcsr=DEFAULT & ~0x1000)  # PM unmasked, ZM masked: 1/0 is exact, no PE
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(1.0), bits(0.0)
    assert g.run() == ("syscall", 0x1006, None)
    assert g.cpu.mxcsr == (DEFAULT & ~0x1000) | ZE
    g.cpu.b = bits(3.0)  # inexact, with PM unmasked: traps (the unit touches no memory: no pc)
    assert g.run()[0] == "sigfpe"
    assert g.cpu.mxcsr & FLAGS == ZE | PE


def test_handler_takes_sigfpe():
    code = dmod.dispatch_code()
    assert faults.SIGFPE in faults.HANDLED and faults.installed()
    assert faults.current(faults.SIGFPE).handler == code.handler


_FPE = """
import ctypes, signal, sys
sys.path.insert(0, {root!r})
from hqemu.native.dispatch import Dispatcher
mem = (ctypes.c_uint64 * 8)()
state = (ctypes.c_uint64 * 8)()
d = Dispatcher(state_addr=ctypes.addressof(state), membase=ctypes.addressof(mem), mem_size=64,
               fenv_offset=56, cache_dir=None)
if {run}:
    print(d.run(0x1000), flush=True)
signal.raise_signal(signal.SIGFPE)
print("survived", flush=True)
"""


@pytest.mark.parametrize("run", [False, True])
def test_host_sigfpe_outside_guest_code_kills_the_process(run):
    """A SIGFPE while no guest code runs (before any run, after one) goes to the previous
    action: the default one here, death by SIGFPE."""
    code = textwrap.dedent(_FPE.format(root=str(ROOT), run=run))
    env = dict(os.environ, PYTHONFAULTHANDLER="")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "survived" not in r.stdout
    assert ("('jump', 4096, None)" in r.stdout) == run, r.stderr
    assert r.returncode == -signal.SIGFPE, r.stderr


# --- without a guest SSE environment ---------------------------------------------------------------
def test_fenv_0_changes_nothing():
    """No fenv: native code runs under Python's MXCSR, the guest's word is not read or written
    (it asks for round down with ZE unmasked: neither happens)."""
    word = (DEFAULT & ~ZM) | RC_DOWN
    g = Guest(fenv=False, mxcsr=word)
    assert g.d.rec.fenv == 0
    g.install(unit(divide))
    g.cpu.a, g.cpu.b = bits(1.0), bits(0.0)
    assert g.run() == ("syscall", 0x1006, None)
    assert g.cpu.r == bits(math.inf) and g.cpu.mxcsr == word
    g.cpu.a, g.cpu.b = bits(-1.0), bits(3.0)
    g.run()
    assert g.cpu.r == bits(-1 / 3) != bits(rounded(-1.0, 3.0, RC_DOWN))
    assert g.cpu.mxcsr == word and g.d.rec.host_mxcsr == 0
    assert dmod.host_mxcsr() & ZE  # the flag raised went where it always went: to the host's


def test_fenv_comes_from_the_frontend_register():
    """Dispatcher(env) takes the offset of the register env.fe.host_fp_env names, if any."""
    cpu = State()
    mem = (ctypes.c_uint64 * 8)()
    env = SimpleNamespace(cpu=cpu, mem=SimpleNamespace(base=ctypes.addressof(mem), size=64),
                          fe=SimpleNamespace(layout=LAYOUT, host_fp_env="mxcsr"))
    keep = native().env
    try:
        assert Dispatcher(env).rec.fenv == 1 + MXCSR
        env.fe.host_fp_env = None
        assert Dispatcher(env).rec.fenv == 0
        del env.fe.host_fp_env
        assert Dispatcher(env).rec.fenv == 0
    finally:
        native().env = keep


def test_record_layout():
    """The units' part of the record is workers/abi.py's; fenv and host_mxcsr come after."""
    from workers.abi import EXITINFO_SIZE

    assert dmod.ExitRecord.fenv.offset >= EXITINFO_SIZE
    assert dmod.ExitRecord.host_mxcsr.offset == dmod.ExitRecord.fenv.offset + 8
    assert dmod.ExitRecord.jmpbuf.offset % 16 == 0


# --- Python helpers ------------------------------------------------------------------------------
_seen: list[int] = []


def _h_third(env, a, new_word):
    """Python's 1/3 (divsd under the MXCSR Python runs under) and that MXCSR; a nonzero
    new_word replaces the guest's MXCSR word, as an fxrstor helper would."""
    q = float(a) / 3.0  # computed now, not folded by the compiler
    _seen.append(dmod.host_mxcsr())
    if new_word:
        env.cpu.mxcsr = new_word
    return bits(q), _seen[-1]


def _h_raise(env, a):
    _seen.append(dmod.host_mxcsr())
    raise ValueError(a)


register(Helper("test_fenv_third", (I64, I64), (I64, I64), reads_state=True, writes_state=True), _h_third)
register(Helper("test_fenv_raise", (I64,), (I64,)), _h_raise)


def helping(b: Builder) -> None:
    """r = a / b; (h, m) = test_fenv_third(1, pad); r2 = -a / b."""
    b.insn(0x1000, 4)
    b.put("r", b.bitcast(b.fdiv(f64(b, "a"), f64(b, "b")), I64))
    b.insn(0x1004, 4)
    h, m = b.call("test_fenv_third", Const(1, I64), b.get("pad"))
    b.put("h", h)
    b.put("m", m)
    b.insn(0x1008, 4)
    b.put("r2", b.bitcast(b.fdiv(b.fneg(f64(b, "a")), f64(b, "b")), I64))
    b.insn(0x100C, 2)
    b.exit("syscall", 0x100E)


@pytest.fixture
def helper_env():
    keep = native().env
    yield
    native().env = keep


def test_python_helpers_run_under_python_mxcsr(helper_env):
    g = Guest(mxcsr=DEFAULT | RC_UP)
    native().env = g  # what the helper receives (env.cpu)
    g.install(unit(helping))
    g.cpu.a, g.cpu.b = bits(1.0), bits(3.0)
    host = dmod.host_mxcsr()
    assert host & 0xFFC0 == DEFAULT  # the test's premise: Python's own MXCSR
    assert g.run() == ("syscall", 0x100E, None)
    assert g.cpu.r == bits(rounded(1.0, 3.0, RC_UP)) != bits(1 / 3)  # guest code: rounded up
    assert g.cpu.h == bits(1 / 3)  # the helper: round to nearest
    assert g.cpu.m & 0xFFC0 == host & 0xFFC0  # exceptions masked, RC nearest, no DAZ/FTZ
    assert g.cpu.r2 == bits(rounded(-1.0, 3.0, RC_UP)) == bits(-1 / 3)
    assert g.cpu.mxcsr == DEFAULT | RC_UP | PE


def test_the_guest_mxcsr_is_reloaded_after_a_helper(helper_env):
    """The helper sets the guest's RC to down: the division after it rounds down (not up as
    before it, not to nearest as Python)."""
    g = Guest(mxcsr=DEFAULT | RC_UP)
    native().env = g
    g.install(unit(helping))
    g.cpu.a, g.cpu.b, g.cpu.pad = bits(1.0), bits(3.0), DEFAULT | RC_DOWN
    assert g.run() == ("syscall", 0x100E, None)
    assert g.cpu.r == bits(rounded(1.0, 3.0, RC_UP))
    assert g.cpu.h == bits(1 / 3)
    down = rounded(-1.0, 3.0, RC_DOWN)
    assert g.cpu.r2 == bits(down) and down != -1 / 3
    # the PE of the first division was folded before the helper wrote the word: the helper's
    # word wins (as an fxrstor would), the second division's PE is added
    assert g.cpu.mxcsr == DEFAULT | RC_DOWN | PE


def test_a_helper_that_raises_still_switches_back(helper_env):
    def body(b):
        b.insn(0x1000, 4)
        (r,) = b.call("test_fenv_raise", b.get("a"))
        b.put("r", r)
        b.exit("syscall", 0x1004)

    g = Guest(mxcsr=DEFAULT | RC_UP | ZE)
    native().env = g
    g.install(unit(body))
    _seen.clear()
    host = dmod.host_mxcsr()
    with pytest.raises(ValueError):
        g.run()
    assert _seen == [host] and dmod.host_mxcsr() == host
    assert g.cpu.mxcsr == DEFAULT | RC_UP | ZE


def test_records_without_fenv_are_not_read_past_the_units_part():
    """A helper called with a record that is no fenv Dispatcher's (a unit called alone with an
    EXITINFO_SIZE record) calls no switch: the host MXCSR is Python's throughout."""
    from workers.abi import EXITINFO_SIZE

    g = Guest()
    native().env, keep = g, native().env
    try:
        co = compile_unit_text(lower_unit(unit(helping), f"fenv_alone_{next(_names)}"), "O2")
        addr = native().load(co.obj, co.entry)
        info = (ctypes.c_uint64 * (EXITINFO_SIZE // 8))()
        assert ctypes.addressof(info) not in native().fenv_records
        g.cpu.mxcsr = DEFAULT | RC_UP
        g.cpu.a, g.cpu.b = bits(1.0), bits(3.0)
        before = dmod.host_mxcsr()
        assert native().call(addr, ctypes.addressof(g.cpu), ctypes.addressof(g.mem), ctypes.addressof(info)) \
            == 0x100E
        assert dmod.host_mxcsr() == before
        assert g.cpu.r == bits(1 / 3) and g.cpu.mxcsr == DEFAULT | RC_UP  # nothing switched, nothing folded
    finally:
        native().env = keep


def test_a_dead_dispatcher_leaves_the_record_set():
    import gc

    g = Guest()
    addr = g.d._rec_addr
    assert addr in native().fenv_records
    del g
    gc.collect()
    assert addr not in native().fenv_records
