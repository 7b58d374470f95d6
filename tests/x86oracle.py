"""Run x86-64 instructions on Unicorn and on hqemu from the same state and compare the results.

Unicorn (QEMU's x86 model in a library) is the independent oracle; hqemu's side lifts the
bytes with translate_block and runs the unit in the reference interpreter (hqemu.ir.interp)
over a fake memory of plain bytearrays, or (run_quick) compiles the blocks with the quick tier.
Both see one code page at CODE (readable, not writable) and DATA_SIZE bytes of data at DATA
(the stack lives there too); Unicorn also maps the pages around the code, execute-only, so
that a branch target can be fetched while a data access there faults as in hqemu.

    >>> st = State.random(rng)                   # 16 GPRs, 10 flags, the data bytes
    >>> diffs = compare(run_unicorn(code, st), run_hqemu(code, st))
    >>> assert not diffs, diffs

An outcome is how the instruction ended (("jump", next rip), ("sigfpe", pc), ...) plus the
registers, flags and data after it; on a signal only the kind and pc are compared, since a
faulting instruction may leave registers imprecise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from unicorn import (
    UC_ARCH_X86,
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_INTR,
    UC_MODE_64,
    UC_PROT_EXEC,
    UC_PROT_READ,
    Uc,
    UcError,
)
from unicorn import x86_const as U

from hqemu.errors import GuestFault
from hqemu.frontends import get, translate_block
from hqemu.frontends.x86_64.cpu import GPRS, LAYOUT
from hqemu.ir.interp import run_block
from hqemu.ir.verify import verify

CODE = 0x2000
CODE_SIZE = 0x1000
CODE_MAP = (CODE - 0x1000, 0x3000)  # Unicorn maps the pages around too: branch targets get fetched
DATA = 0x10000
DATA_SIZE = 0x4000
M64 = (1 << 64) - 1
FLAGS = ("cf", "pf", "af", "zf", "sf", "of", "df", "nt", "ac", "id")  # what pushf shows, popf sets
FLAG_BIT = {"cf": 0, "pf": 2, "af": 4, "zf": 6, "sf": 7, "df": 10, "of": 11, "nt": 14, "ac": 18, "id": 21}
_UC_GPR = [getattr(U, f"UC_X86_REG_{r.upper()}") for r in GPRS]
# x86 exception vector -> how Linux reports it
_VECTORS = {0: "sigfpe", 1: "sigtrap", 3: "sigtrap", 6: "sigill", 13: "sigsegv", 14: "sigsegv", 17: "sigbus"}
_UC_ERRORS = {UC_ERR_INSN_INVALID: "sigill", UC_ERR_READ_UNMAPPED: "sigsegv",
              UC_ERR_WRITE_UNMAPPED: "sigsegv",
              UC_ERR_FETCH_UNMAPPED: "sigsegv", UC_ERR_READ_PROT: "sigsegv", UC_ERR_WRITE_PROT: "sigsegv",
              UC_ERR_FETCH_PROT: "sigsegv"}

EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
         0x7FFFFFFFFFFFFFFF, 0x8000000000000000, M64, M64 - 1, 0x100000000, 0x0F0F0F0F0F0F0F0F)


def rand_value(rng: random.Random) -> int:
    """A 64-bit value biased toward the edges of every operand width."""
    r = rng.random()
    if r < 0.35:
        v = rng.choice(EDGES)
        if rng.random() < 0.5:  # keep the edge in the low bits, random bits above it
            bits = rng.choice((8, 16, 32))
            v = (v & ((1 << bits) - 1)) | (rng.getrandbits(64) << bits & M64)
        return v
    if r < 0.5:
        return rng.randrange(0, 64)
    return rng.getrandbits(64)


@dataclass
class State:
    regs: list[int]  # the 16 GPRs in encoding order (cpu.GPRS)
    flags: dict[str, int]  # cf pf af zf sf of df nt ac id, 0/1
    data: bytes  # DATA_SIZE bytes at DATA
    fs_base: int = 0
    gs_base: int = 0

    @classmethod
    def random(cls, rng: random.Random) -> State:
        regs = [rand_value(rng) for _ in GPRS]
        regs[4] = DATA + 0x2000 + 8 * rng.randrange(-64, 64)  # rsp: a stack inside the data
        flags = {f: rng.randrange(2) for f in FLAGS}
        flags["df"] = 0
        return cls(regs, flags, rng.randbytes(DATA_SIZE))

    def reg(self, name: str) -> int:
        return self.regs[GPRS.index(name)]

    def with_regs(self, **kw: int) -> State:
        regs = list(self.regs)
        for name, v in kw.items():
            regs[GPRS.index(name)] = v & M64
        return replace(self, regs=regs)

    def eflags(self) -> int:
        return 0x202 | sum(v << FLAG_BIT[f] for f, v in self.flags.items())


@dataclass
class Outcome:
    kind: str  # "jump" (ran to completion or branched) or the signal name
    pc: int  # the next rip, or the pc of the faulting instruction
    regs: list[int] = field(default_factory=list)
    flags: dict[str, int] = field(default_factory=dict)
    data: bytes = b""


# --- Unicorn -------------------------------------------------------------------------------------
class _Unicorn:
    """One Uc reused for every case: creating one costs a millisecond, a run 0.1 ms."""

    def __init__(self) -> None:
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc.mem_map(CODE_MAP[0], CODE - CODE_MAP[0], UC_PROT_EXEC)
        self.uc.mem_map(CODE, CODE_SIZE, UC_PROT_READ | UC_PROT_EXEC)
        end = CODE + CODE_SIZE
        self.uc.mem_map(end, CODE_MAP[0] + CODE_MAP[1] - end, UC_PROT_EXEC)
        self.uc.mem_map(DATA, DATA_SIZE)
        self.vector: int | None = None
        self.uc.hook_add(UC_HOOK_INTR, self._intr)

    def _intr(self, uc, intno, user) -> None:
        self.vector = intno
        uc.emu_stop()

    def run(self, code: bytes, st: State, steps: list[tuple[int | None, int]]) -> Outcome:
        out = self._run(code, st, steps)
        if out.kind != "jump":  # Unicorn remembers the exception (the next one becomes a #DF)
            self.__init__()
        return out

    def _run(self, code: bytes, st: State, steps: list[tuple[int | None, int]]) -> Outcome:
        uc = self.uc
        uc.mem_write(CODE_MAP[0], bytes(CODE_MAP[1]))
        uc.mem_write(CODE, code)
        uc.ctl_remove_cache(CODE_MAP[0], CODE_MAP[0] + CODE_MAP[1])
        uc.mem_write(DATA, st.data)
        for r, v in zip(_UC_GPR, st.regs):
            uc.reg_write(r, v)
        uc.reg_write(U.UC_X86_REG_EFLAGS, st.eflags())
        uc.reg_write(U.UC_X86_REG_FS_BASE, st.fs_base)
        uc.reg_write(U.UC_X86_REG_GS_BASE, st.gs_base)
        self.vector = None
        rip = CODE
        for until, count in steps:  # each step is a new emu_start: Unicorn starts a new block
            try:
                uc.emu_start(rip, until if until is not None else M64, count=count)
            except UcError as e:
                kind = _UC_ERRORS.get(e.errno)
                if kind is None:
                    raise
                return Outcome(kind, uc.reg_read(U.UC_X86_REG_RIP))
            rip = uc.reg_read(U.UC_X86_REG_RIP)
            if self.vector is not None:
                return Outcome(_VECTORS.get(self.vector, f"vector{self.vector}"), rip)
        ef = uc.reg_read(U.UC_X86_REG_EFLAGS)
        return Outcome("jump", rip, [uc.reg_read(r) for r in _UC_GPR],
                       {f: ef >> FLAG_BIT[f] & 1 for f in FLAGS}, bytes(uc.mem_read(DATA, DATA_SIZE)))


_UC: _Unicorn | None = None


def _uc() -> _Unicorn:
    global _UC
    if _UC is None:
        _UC = _Unicorn()
    return _UC


def run_unicorn(code: bytes, st: State, until: int | None = None, count: int = 1) -> Outcome:
    """Run count instructions (or up to until) from CODE."""
    return _uc().run(code, st, [(until, count)])


def run_unicorn_steps(code: bytes, st: State, steps: list[tuple[int | None, int]]) -> Outcome:
    """Run from CODE in steps of (until, count), each a separate emu_start from the rip the last
    one reached: one step per instruction makes every instruction start a Unicorn block, so the
    flags the manual leaves undefined come out as for an instruction alone (QEMU derives them
    from the previous instruction's lazy flags; the hardware and hqemu do not: see
    test_x86_int's docstring)."""
    return _uc().run(code, st, steps)


# --- hqemu ---------------------------------------------------------------------------------------
class FakeMemory:
    """Guest memory as bytearrays: the parts of GuestMemory that lifting, the interpreter and
    the x86 helpers use (fetch, load, store, read, write)."""

    def __init__(self, regions: dict[int, bytearray], readonly: frozenset[int] = frozenset()):
        self.regions = regions
        self.readonly = readonly  # the bases of regions that fault on a write

    def _at(self, addr: int, n: int, write: bool = False) -> tuple[bytearray, int]:
        for base, buf in self.regions.items():
            if base <= addr and addr + n <= base + len(buf) and not (write and base in self.readonly):
                return buf, addr - base
        raise GuestFault(addr, write)

    def fetch(self, addr: int, n: int) -> bytes:
        buf, off = self._at(addr, 1)
        return bytes(buf[off:off + n])

    def load(self, addr: int, n: int) -> int:
        buf, off = self._at(addr, n)
        return int.from_bytes(buf[off:off + n], "little")

    def store(self, addr: int, n: int, value: int) -> None:
        buf, off = self._at(addr, n, True)
        buf[off:off + n] = (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")

    def read(self, addr: int, n: int) -> bytes:
        buf, off = self._at(addr, n)
        return bytes(buf[off:off + n])

    def write(self, addr: int, data: bytes) -> None:
        buf, off = self._at(addr, len(data), True)
        buf[off:off + len(data)] = data


FE = get("x86_64")
_IDX = {name: LAYOUT[name].offset >> 3 for name in (*GPRS, *FLAGS, "rip")}


def make_env(code: bytes, st: State) -> SimpleNamespace:
    cpu = FE.cpu_struct()
    FE.init_cpu(cpu, CODE, st.reg("rsp"))
    env = SimpleNamespace(cpu=cpu, state=memoryview(cpu).cast("B").cast("Q"))
    for name, v in zip(GPRS, st.regs):
        env.state[_IDX[name]] = v
    for f, v in st.flags.items():
        env.state[_IDX[f]] = v
    cpu.fs_base, cpu.gs_base = st.fs_base, st.gs_base
    code_page = bytearray(CODE_SIZE)
    code_page[:len(code)] = code
    env.mem = FakeMemory({CODE: code_page, DATA: bytearray(st.data)}, frozenset({CODE}))
    return env


def outcome_of(env: SimpleNamespace, kind: str, pc: int) -> Outcome:
    if kind != "jump":
        return Outcome(kind, pc)
    return Outcome(kind, pc, [env.state[_IDX[r]] for r in GPRS], {f: env.state[_IDX[f]] for f in FLAGS},
                   bytes(env.mem.regions[DATA]))


def run_hqemu(code: bytes, st: State, max_insns: int = 1, optimize=None) -> Outcome:
    """Lift max_insns instructions from CODE into one unit and run it once."""
    env = make_env(code, st)
    unit = translate_block(FE, env.mem, CODE, max_insns)
    verify(unit)
    if optimize is not None:
        optimize(unit)
        verify(unit)
    try:
        kind, pc = run_block(unit, env)
    except GuestFault:
        return Outcome("sigsegv", _fault_pc(unit))
    return outcome_of(env, kind, pc)


def run_quick(code: bytes, st: State, n_insns: int, passes: bool = False) -> Outcome:
    """Run n_insns instructions from CODE as the engine does: a block lifted by the frontend at
    each pc reached (up to the instructions still to run), optimized by the cheap passes when
    passes, compiled by the quick tier and run over a fake guest memory, until n_insns have run
    (or the guest left the code). A GuestFault, or an IndexError of a fast-path table, is the
    SIGSEGV of the instruction the traceback names, as in the engine."""
    from test_quick_fakes import FakeEnv

    from hqemu.errors import GuestSignal
    from hqemu.ir.passes import optimize
    from hqemu.quick import compile_unit
    from hqemu.quick.codegen import SIGNALS

    lift_env = make_env(code, st)  # the code page to lift from; its state is the initial one
    env = FakeEnv.window(DATA, DATA_SIZE, st.data, list(lift_env.state))
    env.mem.prot[CODE // 4096] = 1  # the code page: readable, as in run_hqemu and Unicorn
    env.mem.buf[CODE:CODE + CODE_SIZE] = lift_env.mem.regions[CODE]
    env.mem._refresh()
    pc, done = CODE, 0
    while done < n_insns and CODE <= pc < CODE + len(code):
        unit = translate_block(FE, lift_env.mem, pc, n_insns - done)
        verify(unit)
        n = unit.guest_insns()
        if passes:
            optimize(unit)
            verify(unit)
        blk = compile_unit(unit, env, loop_iters=0, check_bounds=True)
        try:
            pc = blk.fn()
        except GuestSignal as e:
            return Outcome({v: k for k, v in SIGNALS.items()}[e.signo], e.pc)
        except (GuestFault, IndexError) as e:
            return Outcome("sigsegv", blk.pc_for_traceback(e.__traceback__))
        done += n
    return Outcome("jump", pc, [env.state[_IDX[r]] for r in GPRS], {f: env.state[_IDX[f]] for f in FLAGS},
                   bytes(env.mem.buf[DATA:DATA + DATA_SIZE]))


def _fault_pc(unit) -> int:
    """The pc of a one-instruction unit (where a fault is reported)."""
    return unit.blocks[0].pc


def compare(want: Outcome, got: Outcome, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Differences as readable lines; `ignore` names flags or registers not to compare."""
    if (want.kind, want.pc) != (got.kind, got.pc):
        return [f"exit: unicorn {want.kind} 0x{want.pc:x}, hqemu {got.kind} 0x{got.pc:x}"]
    if want.kind != "jump":
        return []
    out = []
    for name, a, b in zip(GPRS, want.regs, got.regs):
        if name not in ignore and a != b:
            out.append(f"{name}: unicorn 0x{a:x}, hqemu 0x{b:x}")
    for f in FLAGS:
        if f not in ignore and want.flags[f] != got.flags[f]:
            out.append(f"{f}: unicorn {want.flags[f]}, hqemu {got.flags[f]}")
    if want.data != got.data:
        i = next(i for i in range(DATA_SIZE) if want.data[i] != got.data[i])
        out.append(f"data differs first at 0x{DATA + i:x}: unicorn {want.data[i:i + 8].hex()}, "
                   f"hqemu {got.data[i:i + 8].hex()}")
    return out


# --- mismatch reports -------------------------------------------------------------------------
_CS = None


def _decode(code: bytes, pc: int = CODE):
    global _CS
    if _CS is None:
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs

        _CS = Cs(CS_ARCH_X86, CS_MODE_64)
        _CS.detail = True
    return next(_CS.disasm(code, pc, 1), None)


def mem_operands(code: bytes, regs: dict[str, int], fs_base: int = 0, gs_base: int = 0,
                 pc: int = CODE) -> list[tuple[int, int]]:
    """(address, size) of each explicit memory operand of the instruction at the start of code,
    from the register values regs (64-bit names); segment bases and 0x67 truncation applied."""
    from capstone import x86_const as X

    from hqemu.frontends.x86_64.operands import REGS

    insn = _decode(code, pc)
    if insn is None:
        return []
    out = []
    for op in insn.operands:
        if op.type != X.X86_OP_MEM:
            continue
        m = op.mem
        addr = m.disp
        for reg, scale in ((m.base, 1), (m.index, m.scale)):
            if reg:
                name = insn.reg_name(reg)
                if name == "rip":
                    addr += pc + insn.size
                elif name in REGS:
                    g, off, bits = REGS[name]
                    addr += scale * ((regs[g] >> off) & ((1 << bits) - 1))
        if insn.addr_size == 4:
            addr &= 0xFFFFFFFF
        seg = insn.reg_name(m.segment) if m.segment else ""
        addr += {"fs": fs_base, "gs": gs_base}.get(seg, 0)
        out.append((addr & M64, max(op.size, 1)))
    return out


def window(data: bytes, base: int, addr: int, n: int) -> str:
    """n bytes of data (which starts at guest address base) from addr, as hex; '' outside it."""
    lo, hi = max(addr - base, 0), min(addr - base + n, len(data))
    return data[lo:hi].hex() if lo < hi else ""


def describe_state(code: bytes, st: State) -> str:
    """The input state a case ran from, as the report of a mismatch shows it: every GPR, the
    flags, the segment bases, and the data bytes at each memory operand and at the stack top."""
    regs = dict(zip(GPRS, st.regs))
    lines = ["  input: " + " ".join(f"{r}={v:#x}" for r, v in regs.items()),
             "  flags: " + " ".join(f"{f}={v}" for f, v in st.flags.items())
             + f" (rflags {st.eflags():#x}) fs_base={st.fs_base:#x} gs_base={st.gs_base:#x}"]
    for addr, n in [*mem_operands(code, regs, st.fs_base, st.gs_base), (regs["rsp"], 16)]:
        n = max(n, 8)
        shown = window(st.data, DATA, addr, n)
        lines.append(f"  memory {addr:#x}+{n}: {shown}" if shown else f"  memory {addr:#x}: outside the data")
    return "\n".join(lines)


__all__ = ["CODE", "DATA", "DATA_SIZE", "State", "Outcome", "FakeMemory", "run_unicorn", "run_hqemu",
           "compare", "rand_value", "make_env", "outcome_of", "EDGES", "FLAGS", "describe_state", "run_quick",
           "run_unicorn_steps",
           "mem_operands", "window"]
