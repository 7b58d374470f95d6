"""The generator's state while it emits one function: lines, bindings, and what it knows.

    >>> g = Emitter(unit, env, fallthrough(unit))
    >>> g.assign(op, f"{g.v(a)} + {g.v(b)}")       # a line `t7 = t3 + 1`, tagged with g.pc
    >>> g.leave("jump", 0x401010, 1)                # store the dirty globals, return the pc

What it tracks: the atom each folded temp stands for (alias), bounds on integer values (kbits,
loose), what each global holds now (cur) and which globals S is missing (dirty); in loop mode,
the locals that carry globals from one iteration to the next.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable

from hqemu.errors import GuestSignal
from hqemu.ir import I128, Op, Temp, Unit, Value

from . import rt
from .analysis import EXACT, PURE

SIGNALS = {"sigill": 4, "sigtrap": 5, "sigbus": 7, "sigfpe": 8, "sigsegv": 11}
M64 = (1 << 64) - 1

# Names generated code may use, with what each is bound to (env-dependent ones: from the env
# being compiled for); Emitter.bind binds only those a function uses.
_RT_NAMES: dict[str, object] = {
    "U16": rt.U16, "U32": rt.U32, "U64": rt.U64, "P16": rt.P16, "P32": rt.P32, "P64": rt.P64,
    "UF64": rt.UF64, "PF64": rt.PF64, "IFB": rt.IFB,
    "F32": rt.f32, "I2D": rt.i2d, "D2I": rt.d2i, "I2F": rt.i2f, "F2I": rt.f2i, "QUIET": rt.quiet,
    "FDIV0": rt.fdiv0, "FSQRT": rt.fsqrt, "SQRT": math.sqrt, "FABS": math.fabs,
    "ITOF32": rt.itof32, "FROUND": rt.fround, "FLOAT": float, "INT": int,
    "SDIV": rt.sdiv, "SREM": rt.srem, "PAR": rt.PARITY, "GS": GuestSignal,
    "VADD": rt.vadd, "VSUB": rt.vsub, "VCMPEQ": rt.vcmpeq, "VCMPGTS": rt.vcmpgts,
    "VMINU": rt.vminu, "VMAXU": rt.vmaxu, "VMINS": rt.vmins, "VMAXS": rt.vmaxs, "VMSB": rt.vmsb,
    "VSHLI": rt.vshli, "VSHRI": rt.vshri, "VSARI": rt.vsari, "VSHUF": rt.vshuf,
}
_ENV_NAMES: dict[str, Callable] = {
    "S": lambda env: env.state, "M": lambda env: env.mem.view, "FR": lambda env: env.mem.fast_r,
    "FW": lambda env: env.mem.fast_w, "LD": lambda env: env.mem.load, "ST": lambda env: env.mem.store,
    "SYS": lambda env: env.do_syscall, "ENV": lambda env: env,
    "BLK": lambda env: None,  # the QuickBlock itself, filled in by compile_unit
}
NAMES_RE = re.compile(r"\b([A-Z][A-Z0-9]*)[(\[]")


class Emitter:
    """State of one compilation: the lines so far and what each global currently holds."""

    def __init__(self, unit: Unit, env, fallthrough: set[Op]):
        self.unit = unit
        self.env = env
        self.lines: list[str] = []
        self.pcs: list[int] = []  # guest pc of each line in self.lines
        self.pc = unit.pc  # pc of the instruction being generated
        self.base = 1  # indentation of the straight-line code
        self.binds: dict[str, object] = {}  # default-argument name -> object
        self.alias: dict[int, str] = {}  # temp id -> atom, for ops folded away
        self.kbits: dict[int, int] = {}  # temp id -> bound on the bit length of its Python value
        self.loose: set[int] = set()  # temps held unreduced: right only modulo what their uses need
        self.demand: dict[int, int] = {}  # temp id -> low bits its uses need, or EXACT (_demands)
        self.negation: dict[str, str] = {}  # atom -> the 0/1 atom it is `not` of
        self.check_bounds = False  # tests: assert every bound g.k claims, at run time
        self.cur: dict[str, str] = {}  # global -> atom holding its current value
        self.dirty: dict[str, None] = {}  # globals whose current value may not be in S (ordered)
        self.fallthrough = fallthrough  # exits that continue into the next block
        self.pack_min_run = 3  # adjacent slots stored by one pack_into (0: never); see codegen
        self.loop_iters = 0  # > 0: the function loops on its own head (see start_loop)
        self.loop_globals: dict[str, str] = {}  # loop mode: global -> its loop-carried local
        self.pure_defs: dict[int, str] = {}  # line index -> temp it defines, for pure ops only
        self.no_inline: set[int] = set()  # lines no expression may move into (loop rebinds)
        self.exit_path: dict[int, int] = {}  # line index -> the exit path (first line) it is on

    # --- emitting -----------------------------------------------------------------------
    def line(self, text: str, indent: int = 0) -> None:
        self.lines.append("    " * (self.base + indent) + text)
        self.pcs.append(self.pc)

    def bind(self, *names: str) -> str:
        for name in names:
            if name not in self.binds:
                self.binds[name] = _RT_NAMES[name] if name in _RT_NAMES else _ENV_NAMES[name](self.env)
        return names[0]

    def bind_used(self, text: str) -> str:
        """Bind every NAME( and NAME[ that text uses; return text."""
        for name in NAMES_RE.findall(text):
            self.bind(name)
        return text

    def bind_obj(self, prefix: str, obj: object) -> str:
        name = f"{prefix}{len(self.binds)}"
        self.binds[name] = obj
        return name

    def v(self, x: Value) -> str:
        """Python atom (a name or a literal) for an IR value."""
        if isinstance(x, Temp):
            return self.alias.get(x.id) or f"t{x.id}"
        val = x.value
        if x.ty.is_float:
            if math.isfinite(val) and not (val == 0.0 and math.copysign(1.0, val) < 0):
                return f"({float(val)!r})"
            return self.bind_obj("K", val)  # inf, NaN (its bits), -0.0: the object itself
        return str(val) if val < 4096 else hex(val)

    def k(self, x: Value) -> int:
        """A bound on the bit length of an integer value's magnitude (known-zero high bits)."""
        if isinstance(x, Temp):
            return self.kbits.get(x.id, x.ty.bits)
        return int(x.value).bit_length()

    def exact(self, x: Value) -> bool:
        """Is the Python value the IR value itself (in [0, 2**w)), not just congruent to it?"""
        return not isinstance(x, Temp) or x.id not in self.loose

    def is_bool(self, x: Value) -> bool:
        return self.exact(x) and self.k(x) <= 1

    def result(self, op: Op, expr: str, k: int) -> None:
        """Assign an integer result known to fit in k bits."""
        self.assign(op, expr)
        if k < op.outs[0].ty.bits:
            self.kbits[op.outs[0].id] = k = max(k, 0)
            if self.check_bounds:
                self.line(f"assert 0 <= t{op.outs[0].id} < {1 << k}, 'quick tier: bound {k} bits'")

    def loose_result(self, op: Op, expr: str, k: int) -> None:
        """Assign an unreduced integer result whose magnitude is below 2**k."""
        self.assign(op, expr)
        t = op.outs[0].id
        self.loose.add(t)
        self.kbits[t] = k
        if self.check_bounds:
            self.line(f"assert -{1 << k} < t{t} < {1 << k}, 'quick tier: loose bound {k} bits'")

    def loose_ok(self, op: Op) -> bool:
        return self.demand.get(op.outs[0].id, EXACT) != EXACT

    def assign(self, op: Op, expr: str) -> None:
        if op.name in PURE and op.name != "get":
            self.pure_defs[len(self.lines)] = f"t{op.outs[0].id}"
        self.line(f"t{op.outs[0].id} = {self.bind_used(expr)}")

    def alias_to(self, op: Op, x: Value) -> None:
        out = op.outs[0]
        self.alias[out.id] = self.v(x)
        if not out.ty.is_float:
            if self.k(x) != out.ty.bits:
                self.kbits[out.id] = self.k(x)
            if not self.exact(x):
                self.loose.add(out.id)

    # --- guest state --------------------------------------------------------------------
    def glob(self, name: str):
        g = self.unit.globals.get(name)
        return g if g is not None else self.unit.layout[name]

    def load_global(self, name: str) -> str:
        """Expression reading a global from S."""
        g = self.glob(name)
        i, s = g.offset >> 3, self.bind("S")
        return f"{s}[{i}] | ({s}[{i + 1}] << 64)" if g.ty is I128 else f"{s}[{i}]"

    def store_global(self, name: str, expr: str, indent: int) -> None:
        g = self.glob(name)
        i, s = g.offset >> 3, self.bind("S")
        if g.ty is not I128:
            self.line(f"{s}[{i}] = {expr}", indent)
        elif expr.isdigit() or expr.startswith("0x"):
            val = int(expr, 0)
            self.line(f"{s}[{i}] = {hex(val & M64)}; {s}[{i + 1}] = {hex(val >> 64)}", indent)
        else:
            self.line(f"{s}[{i}] = {expr} & {hex(M64)}; {s}[{i + 1}] = {expr} >> 64", indent)

    def flush(self, indent: int) -> None:
        """Store the dirty globals; a run of 3 or more adjacent 8-byte slots is stored by one
        struct.pack_into call, which measured about a third cheaper than item stores."""
        slots = sorted((self.glob(n).offset >> 3, n) for n in self.dirty if self.glob(n).ty is not I128)
        runs: list[list[tuple[int, str]]] = []
        for i, n in slots:
            if runs and runs[-1][-1][0] == i - 1:
                runs[-1].append((i, n))
            else:
                runs.append([(i, n)])
        for run in runs:
            if self.pack_min_run and len(run) >= self.pack_min_run:
                pk = f"PK{len(run)}"
                if pk not in self.binds:
                    self.binds[pk] = struct.Struct(f"<{len(run)}Q").pack_into
                vals = ", ".join(self.cur[n] for _, n in run)
                self.line(f"{pk}({self.bind('S')}, {run[0][0] * 8}, {vals})", indent)
            else:
                for _, n in run:
                    self.store_global(n, self.cur[n], indent)
        for n in self.dirty:
            if self.glob(n).ty is I128:
                self.store_global(n, self.cur[n], indent)

    def leave(self, kind: str, pc: int, indent: int, target: str | None = None) -> None:
        """Store what must be exact, then leave the function by exit `kind` to guest pc (or
        to the pc in atom target, for exit_ind). The lines form one exit path."""
        start = len(self.lines)
        self.flush(indent)
        if self.loop_iters:
            self.line(f"{self.bind('BLK')}.count += lim - n", indent)
        if target is not None:
            self.line(f"return {target}", indent)
        elif kind == "jump":
            self.line(f"return {pc:#x}", indent)
        elif kind == "syscall":
            self.line(f"return {self.bind('SYS')}({pc:#x})", indent)
        else:
            self.line(f"raise {self.bind('GS')}({SIGNALS[kind]}, {pc:#x})", indent)
        for i in range(start, len(self.lines)):
            self.exit_path[i] = start

    # --- loop mode ----------------------------------------------------------------------
    def start_loop(self, ops: list[Op], iters: int) -> None:
        """Load the globals the body carries from one iteration to the next into locals, and
        open the loop.

        A global the body writes before reading it and before any exit (a flag) is not
        carried: each iteration sets it before anything could store or read it. Every other
        global the body writes counts as dirty from the top of the body on: after a back edge
        its value lives only in its local.
        """
        first_exit = next((i for i, op in enumerate(ops) if op.name in ("exit_if", "exit", "exit_ind")),
                          len(ops))
        touched: dict[str, bool] = {}  # global -> carried?
        for i, op in enumerate(ops):
            if op.name in ("get", "put") and op.consts[0] not in touched:
                touched[op.consts[0]] = op.name == "get" or i > first_exit
        for name, carried in touched.items():
            if carried:
                local = "g_" + re.sub(r"\W", "_", name)
                self.loop_globals[name] = local
                self.line(f"{local} = {self.load_global(name)}")
                self.cur[name] = local
        for op in ops:
            if op.name == "put" and touched[op.consts[0]]:
                self.dirty[op.consts[0]] = None
        self.loop_iters = iters
        self.line(f"lim = n = {iters}")  # back edges left; lim - n of them taken
        self.line("while True:")
        self.base = 2

    def back_edge(self, indent: int) -> None:
        """Continue the loop if the budget allows: the current values become the carried ones."""
        self.line("if n:", indent)
        self.line("n -= 1", indent + 1)
        carry = self.loop_globals
        pairs = [(carry[g], self.cur[g]) for g in self.dirty if g in carry and self.cur[g] != carry[g]]
        carried = set(self.loop_globals.values())
        # values that are themselves carried locals are read before any of them is rebound
        first = [(d, s) for d, s in pairs if s in carried]
        if first:
            self.line(f"{', '.join(d for d, _ in first)} = {', '.join(s for _, s in first)}", indent + 1)
        for d, s in pairs:
            if s not in carried:
                # an expression moved here could read a carried local already rebound above
                self.no_inline.add(len(self.lines))
                self.line(f"{d} = {s}", indent + 1)
        self.line("continue", indent + 1)
        self.leave("jump", self.unit.pc, indent)

    def is_back_edge(self, kind: str, pc: int) -> bool:
        return self.loop_iters > 0 and kind == "jump" and pc == self.unit.pc
