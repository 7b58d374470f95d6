"""SSE float instructions under a guest MXCSR (hqemu/frontends/x86_64/fp.py, mxcsr.py) against
the host CPU: every rounding mode, DAZ and FTZ on and off, the exception flags clear or
all set, with edge inputs (denormals, NaNs, infinities, values that overflow, underflow, round
exactly or not); the whole MXCSR is compared after each case, flags included.

The oracle is test_x86_sse's: the host CPU runs the same instruction from the same state (and
Unicorn, whose deviations from the host are counted, not failed: QEMU 5's softfloat raises no
MXCSR flags). Unmasked exceptions cannot run in the test process (the host would trap), so a
forked child runs them and its death by SIGFPE is the oracle. Also here: what ldmxcsr and
stmxcsr lift to, native code running the instructions inline under the MXCSR the dispatcher
installs (flags folded, unmasked exceptions a guest SIGFPE), and the stubs' machine code
checked by capstone.

    HQEMU_FUZZ=1 pytest tests/test_x86_mxcsr.py -s      # more cases; -s prints the counts
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import random
import re
import signal
import struct
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import test_x86_sse as T

from hqemu.frontends.x86_64 import hostsse
from hqemu.frontends.x86_64.fp import CMP_NAMES
from hqemu.frontends.x86_64.mxcsr import FOLD_HELPER, LOAD_HELPER

pytestmark = pytest.mark.skipif(not T.HAVE_NATIVE, reason="SSE runs on an x86-64 host")

CASES = 256 if T.FUZZ else 32  # per encoding: all 32 (RC, DAZ/FTZ, flags) settings once
UNMASKED_CASES = 400 if T.FUZZ else 48
FAMILY = re.compile(r"^(?:(?P<arith>add|sub|mul|div|min|max)(?:ps|pd|ss|sd)|(?P<sqrt>sqrt)(?:ps|pd|ss|sd)"
                    r"|(?P<rcp>rcp|rsqrt)(?:ps|ss)|(?P<cmp>cmp\w+)|(?P<comis>u?comis[sd])|(?P<cvt>cvt\w+))$")
MXCSR_ENCODINGS = [e for e in T.ENCODINGS if FAMILY.match(e.mnemonic)]
CASE_COUNT: Counter = Counter()  # family -> cases run


def family(mnemonic: str) -> str:
    m = FAMILY.match(mnemonic)
    assert m is not None
    return next(k for k, v in m.groupdict().items() if v)


def setting(i: int) -> int:
    """The i-th MXCSR of the 32 combinations: RC, then none/DAZ/FTZ/both, then flags 0 or all."""
    return 0x1F80 | (i % 4) << 13 | (0, 0x40, 0x8000, 0x8040)[i // 4 % 4] | (0x3F if i // 16 % 2 else 0)


# values that make every flag happen: tiny and huge operands, inexact quotients, exact halves
F64_EXC = [0x0010000000000000, 0x0018000000000000, 0x0000000000000003, 0x8000000000000001,
           0x1FF0000000000000, 0x5FF0000000000000, 0x7FE1CCF385EBC8A0, 0x3FB999999999999A,
           0x3FD5555555555555, 0x4008000000000000, 0x3CB0000000000000, 0x41DFFFFFFFFFFFFF,
           0x43E0000000000001, 0xC3E0000000000000]
F32_EXC = [0x00800000, 0x00C00000, 0x00000003, 0x80000001, 0x0F800000, 0x6F800000, 0x7E967699,
           0x3DCCCCCD, 0x3EAAAAAB, 0x40400000, 0x33800000, 0x4EFFFFFF, 0x5F000001, 0xCF000000]


def vec(rng: random.Random, kind: str) -> int:
    if kind == "i" or rng.random() < 0.4:
        return T.vec(rng, kind)
    w, pool = (32, F32_EXC) if kind == "s" else (64, F64_EXC)
    return sum(rng.choice(pool) << (i * w) for i in range(128 // w))


def state(rng: random.Random, kind: str, mxcsr: int) -> T.State:
    s = T.random_state(rng, kind)
    s.xmm = [vec(rng, kind) for _ in range(16)]
    mem = bytearray(s.mem)
    for off in range(0x100, 0x140, 16):
        mem[off:off + 16] = vec(rng, kind).to_bytes(16, "little")
    s.mem = bytes(mem)
    s.mxcsr = mxcsr
    return s


def diff_all(got: T.State, want: T.State, fields=T.ALL_FIELDS) -> list[str]:
    """test_x86_sse.diff, but the MXCSR flags count too."""
    out = T.diff(got, want, tuple(f for f in fields if f != "mxcsr"))
    if "mxcsr" in fields and got.mxcsr != want.mxcsr:
        out.append(f"mxcsr = {got.mxcsr:#x}, expected {want.mxcsr:#x}")
    return out


def _ids(e: T.Enc) -> str:
    return T._ids(e)


@pytest.mark.parametrize("enc", MXCSR_ENCODINGS, ids=_ids)
def test_mxcsr_vs_host(enc: T.Enc) -> None:
    rng = random.Random(f"{T.SEED}-mxcsr-{_ids(enc)}")
    variants = T.variants(enc, rng)
    for i in range(CASES):
        code = variants[i % len(variants)]
        s = state(rng, enc.kind, setting(i))
        ex, got = T.run_hqemu(code, s)
        assert ex == ("jump", T.CODE + len(code)), f"{enc.mnemonic} mxcsr={s.mxcsr:#x}: exit {ex}"
        T.check(code, s, got, f"mxcsr={s.mxcsr:#x}", differ=diff_all)
        CASE_COUNT[family(enc.mnemonic)] += 1


# --- unmasked exceptions: a child process is the oracle ---------------------------------------------

def host_traps(code: bytes, s: T.State) -> bool:
    """Whether the host CPU raises #XM (SIGFPE) running code from s, in a forked child. The
    parent prepares everything; the child only makes one ctypes call, so it never needs a
    lock another thread of the parent might have held at the fork."""
    nat = T.native()
    nat.prepare(code, s)
    pid = os.fork()
    if pid == 0:
        faulthandler.disable()  # the child's SIGFPE is the answer, not a crash to report
        nat.fn()
        os._exit(0)
    for _ in range(2000):  # 20 s: a child that hangs must not hang the suite
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the native child hung")
    assert not os.WIFSIGNALED(status) or os.WTERMSIG(status) == signal.SIGFPE, status
    return os.WIFSIGNALED(status)


def test_unmasked_exceptions_are_sigfpe() -> None:
    rng = random.Random(f"{T.SEED}-unmasked")
    traps = Counter()
    for _ in range(UNMASKED_CASES):
        enc = rng.choice(MXCSR_ENCODINGS)
        code = rng.choice(T.variants(enc, rng))
        unmask = rng.choice([1 << rng.randrange(6), rng.getrandbits(6), 0x3F])
        s = state(rng, enc.kind, setting(rng.randrange(32)) & ~0x3F & ~(unmask << 7))
        ex, got = T.run_hqemu(code, s)
        trapped = host_traps(code, s)
        insn = T.decode(code)
        what = f"{insn.mnemonic} {insn.op_str} [{code.hex()}] mxcsr={s.mxcsr:#x}" + T.describe_input(code, s)
        if trapped:
            assert ex == ("sigfpe", T.CODE), f"{what}: the host traps, hqemu exits {ex}"
        else:
            assert ex == ("jump", T.CODE + len(code)), f"{what}: the host does not trap, hqemu exits {ex}"
            bad = diff_all(got, T.native().run(code, s))
            assert not bad, f"{what}: " + "; ".join(bad)
        traps[trapped] += 1
    assert traps[True] and traps[False], traps  # both outcomes were exercised
    CASE_COUNT["unmasked (trapped)"] += traps[True]
    CASE_COUNT["unmasked (not trapped)"] += traps[False]


def test_unmasked_underflow_traps_on_exact_tiny_results() -> None:
    """With UE unmasked the hardware traps on a tiny result even when it is exact (masked, an
    exact tiny result raises nothing): 2**-1000 * 2**-30 is an exact denormal."""
    enc = T.Enc("mulsd", b"\xf2", b"\x0f\x59", "xx", "d")
    code = T.encode(enc, 1, 2)
    s = state(random.Random(7), "d", 0x1F80 & ~0x800)
    s.xmm[1] = struct.unpack("<Q", struct.pack("<d", 2.0 ** -1000))[0]
    s.xmm[2] = struct.unpack("<Q", struct.pack("<d", 2.0 ** -30))[0]
    assert host_traps(code, s)
    assert T.run_hqemu(code, s)[0] == ("sigfpe", T.CODE)
    s.mxcsr = 0x1F80
    ex, got = T.run_hqemu(code, s)
    T.check(code, s, got, differ=diff_all)
    assert got.mxcsr == 0x1F80  # exact: no flag at all


# --- ldmxcsr and stmxcsr ---------------------------------------------------------------------------

def test_ldmxcsr_loads_the_host_mxcsr_and_stmxcsr_folds_first() -> None:
    """Native code keeps the flags in the host's MXCSR: stmxcsr folds them into mxcsr before it
    reads it, ldmxcsr loads the host's from the value it wrote; neither ends the block."""
    from x86oracle import FakeMemory

    from hqemu.frontends import get, translate_block

    fe = get("x86_64")
    code = bytes.fromhex("0fae16" "f20f58c1" "0fae1e" "f4")  # ldmxcsr [rsi]; addsd; stmxcsr [rsi]; hlt
    mem = FakeMemory({T.CODE: bytearray(code + bytes(64))})
    unit = translate_block(fe, mem, T.CODE, 8)
    assert len(unit.blocks) == 1
    ops = list(unit.ops())
    calls = [(i, op.consts[0]) for i, op in enumerate(ops) if op.name == "call"]
    assert [c for _, c in calls] == [LOAD_HELPER, hostsse.helper_name("addsd"), FOLD_HELPER]
    put = next(i for i, op in enumerate(ops) if op.name == "put" and op.consts[0] == "mxcsr")
    store = max(i for i, op in enumerate(ops) if op.name == "st")
    assert put < calls[0][0] and calls[2][0] < store


# --- the stubs and the trace tier ------------------------------------------------------------------

def test_stubs_disassemble_to_their_instruction() -> None:
    from capstone import CS_ARCH_X86, CS_MODE_64, Cs

    md = Cs(CS_ARCH_X86, CS_MODE_64)
    for name, op in hostsse.OPS.items():
        code = hostsse.stub(op)
        insns = list(md.disasm(code, 0))
        assert sum(i.size for i in insns) == len(code), name
        middle = [i.mnemonic for i in insns if i.bytes == op.code]
        want = re.sub(r"(32|64)$", "", name)
        pred = re.match(r"cmp(\d)(\w\w)$", name)
        if pred:
            want = "cmp" + CMP_NAMES[int(pred.group(1))] + pred.group(2)
        assert middle == [want], (name, middle)
        assert insns[-1].mnemonic == "ret"


def _native_dispatcher(cpu):
    from hqemu.frontends.x86_64.cpu import LAYOUT
    from hqemu.native.dispatch import Dispatcher

    return Dispatcher(state_addr=ctypes.addressof(cpu), membase=0, mem_size=1 << 47,
                      fenv_offset=LAYOUT["mxcsr"].offset)


def _compiled(unit, name: str) -> int:
    """The unit through its text form, as a worker gets it, compiled and loaded."""
    from hqemu.ir.text import format_unit, parse_unit
    from hqemu.native.loader import native
    from workers.compile import compile_unit_text
    from workers.lower import lower_unit

    text = lower_unit(parse_unit(format_unit(unit)), name)
    assert "asm sideeffect" in text and "hqemu_helper_x86_sse" not in text  # inline, no call
    co = compile_unit_text(text, "O2")
    return native().load(co.obj, co.entry)


def test_native_code_runs_the_instructions_inline() -> None:
    """LLVM-compiled code runs the SSE instruction itself under the MXCSR the dispatcher
    installs and folds its flags on the way out: the same state as the stubs' interpreter run,
    for every rounding mode, DAZ/FTZ and flag setting."""
    pytest.importorskip("llvmlite")
    from hqemu.ir.interp import run_block

    rng = random.Random(11)
    for n, code in enumerate([bytes.fromhex(c) for c in ("f20f5ec1", "0f51ca", "660f2fc1", "f2480f2dc1",
                                                         "0fc2c101", "0f53c1", "f20f2ac0", "0f58c1")]):
        unit = T.lift(code)
        addr = _compiled(unit, f"mxcsr_inline_{n}")
        for _ in range(8):
            s = state(rng, "d" if code[0] in (0xF2, 0x66) else "s", setting(rng.randrange(32)))
            want_cpu = T._cpu_from(s)
            env = SimpleNamespace(cpu=want_cpu, state=memoryview(want_cpu).cast("B").cast("Q"), mem=None)
            assert run_block(unit, env) == ("jump", T.CODE + len(code))
            got_cpu = T._cpu_from(s)
            d = _native_dispatcher(got_cpu)
            d.install(T.CODE, addr)
            assert d.run(T.CODE)[:2] == ("jump", T.CODE + len(code))
            assert bytes(got_cpu) == bytes(want_cpu), (code.hex(), hex(s.mxcsr))


def test_native_code_traps_an_unmasked_exception() -> None:
    """An exception the guest unmasked traps on the host inside native code: the guest's SIGFPE
    at that instruction, and Python goes on under its own MXCSR."""
    pytest.importorskip("llvmlite")
    code = bytes.fromhex("f20f5ec1")  # divsd xmm0, xmm1
    addr = _compiled(T.lift(code), "mxcsr_trap")
    s = state(random.Random(3), "d", 0x1F80 & ~0x200)  # ZM clear: division by zero traps
    s.xmm[0], s.xmm[1] = struct.unpack("<Q", struct.pack("<d", 1.0))[0], 0
    cpu = T._cpu_from(s)
    d = _native_dispatcher(cpu)
    d.install(T.CODE, addr)
    assert d.run(T.CODE)[:2] == ("sigfpe", T.CODE)
    assert host_traps(code, s)
    assert 1.0 / 3.0 == 0.3333333333333333  # Python's own rounding is untouched


def test_report_case_counts() -> None:
    """Not a check: prints how many cases each family ran (pytest -s shows it)."""
    print("\nMXCSR cases per family:", dict(sorted(CASE_COUNT.items())))
    print("Unicorn deviations from the host CPU:", dict(sorted(T.UNICORN_DEVIATIONS.items())))
