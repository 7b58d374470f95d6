"""The quick tier's code generator: one IR unit becomes one generated Python function.

    >>> blk = compile_unit(unit, env)     # a QuickBlock
    >>> next_pc = blk.fn()                # runs the guest block against env.state / env.mem

Design (FACTS.md: generated Python peaks at 17-34 M guest instr/s, so every bytecode counts):
- temps are Python locals `t<id>`; constants are inlined; mov/zext/fext-free moves and the
  second `get` of a global are folded away (SSA: a name never changes once assigned), and a
  pure op computed twice is computed once (value numbering);
- a global is read from S into a local on its first `get`; `put` only changes which
  expression is the global's current value and marks it dirty; dirty globals are stored to S
  only where state must be exact: in the body of a taken exit_if, before the final exit, and
  before a helper that reads or writes state (after one that writes state, globals are
  re-read);
- pure ops whose results are never used are not generated (a flag overwritten before any exit
  costs nothing);
- integer results are masked only where the op can overflow; signed compares flip the sign
  bit instead of sign-extending; 0/1 values are tracked so that `x == 0` on a flag is `not x`;
- memory goes through memoryview + struct on the fast path, guarded by the per-page tables
  FR/FW, and through the checked GuestMemory.load/store otherwise;
- everything the function uses is bound as a default argument, i.e. a local (LOAD_FAST);
- a one-block unit that jumps back to its own head (a rotated loop) becomes a `while` loop
  inside the function, its globals kept in locals across iterations and stored only when the
  loop is left (after at most `loop_iters` back edges, or at once after a store took the slow
  path, which is where writes to translated code are seen).

The code templates are found by op name in TEMPLATES, which must cover OPS exactly.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from collections.abc import Callable

from hqemu.errors import GuestSignal
from hqemu.ir import F32, F64, HELPERS, I1, I128, IMPLS, OPS, Const, F, Op, Temp, Unit, Value

from . import rt
from .block import QuickBlock

SIGNALS = {"sigill": 4, "sigtrap": 5, "sigbus": 7, "sigfpe": 8, "sigsegv": 11}
M64 = (1 << 64) - 1
DEFAULT_LOOP_ITERS = 1024  # back edges a self-looping block runs before returning to the engine
# Code-shape choices, measured with bench/quick_codegen.py (which can flip them for an A/B run)
PACK_MIN_RUN = 3  # adjacent state slots stored by one struct.pack_into (0: item stores only)
INLINE_SINGLE_USE = True  # fold a pure expression into its only use

# Names generated code may use, with what each is bound to; env-dependent ones are resolved
# in _Gen._resolve.
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
_NAMES_RE = re.compile(r"\b([A-Z][A-Z0-9]*)[(\[]")
# op properties by name (OpDef's Flag arithmetic is slow enough to show in compile times)
_PURE = frozenset(n for n, d in OPS.items() if d.pure)
_COMM = frozenset(n for n, d in OPS.items() if d.flags & F.COMM)
_TERM = frozenset(n for n, d in OPS.items() if d.flags & F.TERM)


class _Gen:
    """State of one compilation: the lines so far and what each global currently holds."""

    def __init__(self, unit: Unit, env):
        self.unit = unit
        self.env = env
        self.lines: list[str] = []
        self.pcs: list[int] = []  # guest pc of each line in self.lines
        self.pc = unit.pc  # pc of the instruction being generated
        self.base = 1  # indentation of the straight-line code
        self.binds: dict[str, object] = {}  # default-argument name -> object
        self.alias: dict[int, str] = {}  # temp id -> atom, for ops folded away
        self.bools: set[int] = set()  # temps known to hold 0 or 1
        self.cur: dict[str, str] = {}  # global -> atom holding its current value
        self.dirty: dict[str, None] = {}  # globals whose current value may not be in S (ordered)
        self.fallthrough = _fallthrough(unit)  # exits that continue into the next block
        self.loop_iters = 0  # > 0: the function loops on its own head (see start_loop)
        self.loop_globals: dict[str, str] = {}  # loop mode: global -> its loop-carried local
        self.pure_defs: dict[int, str] = {}  # line index -> temp it defines, for pure ops only
        self.no_inline: set[int] = set()  # lines no expression may move into (loop rebinds)

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
        self.bind(*_NAMES_RE.findall(text)) if _NAMES_RE.search(text) else None
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

    def is_bool(self, x: Value) -> bool:
        return x.id in self.bools if isinstance(x, Temp) else x.value in (0, 1)

    def assign(self, op: Op, expr: str) -> None:
        if op.name in _PURE and op.name != "get":
            self.pure_defs[len(self.lines)] = f"t{op.outs[0].id}"
        self.line(f"t{op.outs[0].id} = {self.bind_used(expr)}")

    def alias_to(self, op: Op, x: Value) -> None:
        self.alias[op.outs[0].id] = self.v(x)
        if self.is_bool(x):
            self.bools.add(op.outs[0].id)

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
            if PACK_MIN_RUN and len(run) >= PACK_MIN_RUN:
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

    def leave(self, kind: str, pc: int, indent: int) -> None:
        """Store what must be exact, then leave the function by exit `kind` to guest pc."""
        self.flush(indent)
        if self.loop_iters:
            self.line(f"{self.bind('BLK')}.count += lim - n", indent)
        if kind == "jump":
            self.line(f"return {pc:#x}", indent)
        elif kind == "syscall":
            self.line(f"return {self.bind('SYS')}({pc:#x})", indent)
        else:
            self.line(f"raise {self.bind('GS')}({SIGNALS[kind]}, {pc:#x})", indent)

    # --- loop mode ----------------------------------------------------------------------
    def start_loop(self, ops: list[Op], iters: int) -> None:
        """Load every global the body touches into a loop-carried local, open the loop.

        Every global the body writes counts as dirty from the top of the body on: after a
        back edge its value lives only in the local.
        """
        touched: dict[str, None] = {}
        for op in ops:
            if op.name in ("get", "put"):
                touched[op.consts[0]] = None
        for name in touched:
            local = "g_" + re.sub(r"\W", "_", name)
            self.loop_globals[name] = local
            self.line(f"{local} = {self.load_global(name)}")
            self.cur[name] = local
        for op in ops:
            if op.name == "put":
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
        pairs = [(carry[g], self.cur[g]) for g in self.dirty if self.cur[g] != carry[g]]
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


# --- templates -----------------------------------------------------------------------------
Template = Callable[[_Gen, Op], None]
TEMPLATES: dict[str, Template] = {}


def _template(*names: str):
    def reg(fn: Template) -> Template:
        for n in names:
            TEMPLATES[n] = fn
        return fn
    return reg


def _expr(fmt: str) -> Template:
    """A template assigning one expression. Fields: a b c (inputs), m w (output mask and width),
    sb (sign bit of the first input)."""

    def emit(g: _Gen, op: Op) -> None:
        out_ty, in_ty = op.outs[0].ty, op.ins[0].ty
        fields = dict(zip("abc", (g.v(x) for x in op.ins)), m=hex(out_ty.mask), w=out_ty.bits,
                      sb=hex(1 << (in_ty.bits - 1)))
        g.assign(op, fmt.format(**fields))

    return emit


def _alias(g: _Gen, op: Op) -> None:
    g.alias_to(op, op.ins[0])


TEMPLATES.update({
    "mov": _alias,
    "add": _expr("({a} + {b}) & {m}"),
    "sub": _expr("({a} - {b}) & {m}"),
    "mul": _expr("({a} * {b}) & {m}"),
    "neg": _expr("-{a} & {m}"),
    "xor": _expr("{a} ^ {b}"),
    "not": _expr("{a} ^ {m}"),
    "sar": _expr("((({a} ^ {sb}) - {sb}) >> {b}) & {m}"),
    "udiv": _expr("{a} // {b}"),
    "urem": _expr("{a} % {b}"),
    "sdiv": _expr("SDIV({a}, {b}, {w})"),
    "srem": _expr("SREM({a}, {b}, {w})"),
    "clz": _expr("{w} - ({a}).bit_length()"),
    "ctz": _expr("(({a} & -{a}).bit_length() - 1 if {a} else {w})"),
    "popcnt": _expr("({a}).bit_count()"),
    "fneg": _expr("-{a}"),
    "fabs": _expr("FABS({a})"),
    "fext": _expr("({a} if {a} == {a} else QUIET({a}))"),  # widening quiets a NaN
    "ftrunc": _expr("F32({a})"),
})


@_template("and", "or")
def _andor(g: _Gen, op: Op) -> None:
    a, b = op.ins
    sym = "&" if op.name == "and" else "|"
    g.assign(op, f"{g.v(a)} {sym} {g.v(b)}")
    if (g.is_bool(a) and g.is_bool(b)) or (op.name == "and" and (g.is_bool(a) or g.is_bool(b))):
        g.bools.add(op.outs[0].id)


@_template("shr")
def _shr(g: _Gen, op: Op) -> None:
    a, b = op.ins
    g.assign(op, f"{g.v(a)} >> {g.v(b)}")
    if isinstance(b, Const) and b.value == a.ty.bits - 1:
        g.bools.add(op.outs[0].id)


@_template("shl")
def _shl(g: _Gen, op: Op) -> None:
    a, b = op.ins
    w, m = op.outs[0].ty.bits, hex(op.outs[0].ty.mask)
    if isinstance(b, Const):
        g.assign(op, f"({g.v(a)} << {b.value}) & {m}" if b.value < w else "0")
    else:  # a count >= w is undefined; a huge Python shift would not end, so answer 0
        g.assign(op, f"({g.v(a)} << {g.v(b)}) & {m} if {g.v(b)} < {w} else 0")


@_template("parity")
def _parity(g: _Gen, op: Op) -> None:
    g.assign(op, f"PAR[{g.v(op.ins[0])} & 255]")
    g.bools.add(op.outs[0].id)


@_template("select")
def _select(g: _Gen, op: Op) -> None:
    c, a, b = op.ins
    g.assign(op, f"({g.v(a)} if {g.v(c)} else {g.v(b)})")
    if g.is_bool(a) and g.is_bool(b):
        g.bools.add(op.outs[0].id)


@_template("rotl", "rotr")
def _rot(g: _Gen, op: Op) -> None:
    a, b = op.ins
    w, m = op.outs[0].ty.bits, hex(op.outs[0].ty.mask)
    x = g.v(a)
    if isinstance(b, Const):
        s = b.value % w if op.name == "rotl" else (w - b.value % w) % w
        if s == 0:
            _alias(g, op)
        else:
            g.assign(op, f"(({x} << {s}) | ({x} >> {w - s})) & {m}")
        return
    r = f"r{op.outs[0].id}"
    g.line(f"{r} = {g.v(b)} % {w}")
    left, right = ("<<", ">>") if op.name == "rotl" else (">>", "<<")
    g.assign(op, f"(({x} {left} {r}) | ({x} {right} ({w} - {r}))) & {m}")


@_template("bswap")
def _bswap(g: _Gen, op: Op) -> None:
    x, w = g.v(op.ins[0]), op.outs[0].ty.bits
    if w == 16:
        g.assign(op, f"(({x} & 255) << 8) | ({x} >> 8)")
    else:
        g.assign(op, f"IFB(({x}).to_bytes({w // 8}, 'little'), 'big')")


@_template("zext", "trunc", "sext")
def _width(g: _Gen, op: Op) -> None:
    a = op.ins[0]
    wi, out = a.ty.bits, op.outs[0].ty
    if wi == out.bits or op.name == "zext" or (op.name == "trunc" and g.is_bool(a)):
        _alias(g, op)
    elif op.name == "trunc":
        g.assign(op, f"{g.v(a)} & {hex(out.mask)}")
        if out is I1:
            g.bools.add(op.outs[0].id)
    elif wi == 1:
        g.assign(op, f"-{g.v(a)} & {hex(out.mask)}")
    else:
        sb = hex(1 << (wi - 1))
        g.assign(op, f"(({g.v(a)} ^ {sb}) - {sb}) & {hex(out.mask)}")


_BITCASTS = {("i64", "f64"): "I2D", ("f64", "i64"): "D2I", ("i32", "f32"): "I2F", ("f32", "i32"): "F2I"}


@_template("bitcast")
def _bitcast(g: _Gen, op: Op) -> None:
    src, dst = op.ins[0].ty, op.outs[0].ty
    if src == dst:
        _alias(g, op)
    else:
        g.assign(op, f"{_BITCASTS[src.name, dst.name]}({g.v(op.ins[0])})")


_UCMP = {"eq": "==", "ne": "!=", "ltu": "<", "leu": "<=", "gtu": ">", "geu": ">="}
_SCMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@_template("setcond")
def _setcond(g: _Gen, op: Op) -> None:
    a, b = op.ins
    cond = op.consts[0]
    g.bools.add(op.outs[0].id)
    if cond in ("eq", "ne") and isinstance(b, Const) and b.value in (0, 1) and g.is_bool(a):
        if (cond == "ne") == (b.value == 0):  # a flag tested for being set is the flag
            _alias(g, op)
        else:
            g.assign(op, f"not {g.v(a)}")
        return
    if cond in _UCMP:
        g.assign(op, f"{g.v(a)} {_UCMP[cond]} {g.v(b)}")
        return
    sb = 1 << (a.ty.bits - 1)
    if isinstance(b, Const) and b.value == 0 and cond in ("lt", "ge"):  # the sign flag's shape
        g.assign(op, f"{g.v(a)} {'>=' if cond == 'lt' else '<'} {hex(sb)}")
        return

    def flipped(x: Value) -> str:
        return hex(x.value ^ sb) if isinstance(x, Const) else f"({g.v(x)} ^ {hex(sb)})"
    g.assign(op, f"{flipped(a)} {_SCMP[cond]} {flipped(b)}")


# --- floats --------------------------------------------------------------------------------
def _round(op: Op, expr: str) -> str:
    """expr as a value of the op's float type: f32 results are rounded after each op (for
    + - * / sqrt, rounding the exact double result again is exact: 53 >= 2 * 24 + 2)."""
    return f"F32({expr})" if op.outs[0].ty is F32 else expr


@_template("fadd", "fsub", "fmul")
def _farith(g: _Gen, op: Op) -> None:
    sym = {"fadd": "+", "fsub": "-", "fmul": "*"}[op.name]
    g.assign(op, _round(op, f"{g.v(op.ins[0])} {sym} {g.v(op.ins[1])}"))


@_template("fdiv")
def _fdiv(g: _Gen, op: Op) -> None:
    a, b = g.v(op.ins[0]), g.v(op.ins[1])
    g.assign(op, _round(op, f"({a} / {b} if {b} else FDIV0({a}, {b}))"))


@_template("fsqrt")
def _fsqrt(g: _Gen, op: Op) -> None:
    a = g.v(op.ins[0])
    g.assign(op, _round(op, f"(SQRT({a}) if {a} >= 0.0 else FSQRT({a}))"))


# ordered compares are Python's own (False on NaN); unordered ones negate an ordered one
_FCMP = {
    "oeq": "{a} == {b}", "olt": "{a} < {b}", "ole": "{a} <= {b}", "ogt": "{a} > {b}", "oge": "{a} >= {b}",
    "one": "({a} < {b} or {a} > {b})", "ord": "({a} == {a} and {b} == {b})",
    "une": "{a} != {b}", "ueq": "not ({a} < {b} or {a} > {b})", "ult": "not {a} >= {b}",
    "ule": "not {a} > {b}", "ugt": "not {a} <= {b}", "uge": "not {a} < {b}",
    "uno": "({a} != {a} or {b} != {b})",
}


@_template("fcmp")
def _fcmp(g: _Gen, op: Op) -> None:
    g.assign(op, "(" + _FCMP[op.consts[0]].format(a=g.v(op.ins[0]), b=g.v(op.ins[1])) + ")")
    g.bools.add(op.outs[0].id)


@_template("sitofp", "uitofp")
def _itofp(g: _Gen, op: Op) -> None:
    a, out = op.ins[0], op.outs[0].ty
    wi = a.ty.bits
    x = g.v(a)
    if op.name == "sitofp":
        sb = hex(1 << (wi - 1))
        x = f"-{x}" if wi == 1 else f"(({x} ^ {sb}) - {sb})"
    if out is F64 or wi <= 24:  # CPython's int -> float is correctly rounded
        g.assign(op, f"FLOAT({x})")
    elif wi <= 53:  # exact as a double, so rounded once, to single
        g.assign(op, f"F32(FLOAT({x}))")
    else:
        g.assign(op, f"ITOF32({x})")


@_template("fptosi")
def _fptosi(g: _Gen, op: Op) -> None:
    a, out = g.v(op.ins[0]), op.outs[0].ty
    sb = 1 << (out.bits - 1)
    # float-vs-int comparisons are exact in Python; NaN fails both, inf fails one
    g.assign(op, f"(INT({a}) & {hex(out.mask)} if ({-sb - 1}) < {a} < {sb} else {hex(sb)})")


@_template("fround")
def _fround(g: _Gen, op: Op) -> None:
    g.assign(op, f"FROUND({g.v(op.ins[0])}, {op.consts[0]!r})")


# --- lanes ---------------------------------------------------------------------------------
@_template("vadd", "vsub", "vcmpeq", "vcmpgts", "vminu", "vmaxu", "vmins", "vmaxs")
def _vbin(g: _Gen, op: Op) -> None:
    g.assign(op, f"{op.name.upper()}({g.v(op.ins[0])}, {g.v(op.ins[1])}, {int(op.consts[0])})")


@_template("vmsb")
def _vmsb(g: _Gen, op: Op) -> None:
    g.assign(op, f"VMSB({g.v(op.ins[0])}, {int(op.consts[0])})")


@_template("vshli", "vshri", "vsari")
def _vshift(g: _Gen, op: Op) -> None:
    lane, count = (int(c) for c in op.consts)
    g.assign(op, f"{op.name.upper()}({g.v(op.ins[0])}, {lane}, {count})")


@_template("vshuf")
def _vshuf(g: _Gen, op: Op) -> None:
    lane, sel = int(op.consts[0]), tuple(int(i) for i in op.consts[1])
    g.assign(op, f"VSHUF({g.v(op.ins[0])}, {g.v(op.ins[1])}, {lane}, {sel!r})")


# --- state and memory ----------------------------------------------------------------------
@_template("get")
def _get(g: _Gen, op: Op) -> None:
    name = op.consts[0]
    if name in g.cur:
        g.alias[op.outs[0].id] = g.cur[name]
        return
    g.assign(op, g.load_global(name))
    g.cur[name] = f"t{op.outs[0].id}"


@_template("put")
def _put(g: _Gen, op: Op) -> None:
    name = op.consts[0]
    g.cur[name] = g.v(op.ins[0])
    g.dirty[name] = None


# type -> (fast path on M at address {a}, slow path through the checked GuestMemory)
_LOADS = {
    "i8": ("M[{a}]", "LD({a}, 1)"),
    "i16": ("U16(M, {a})[0]", "LD({a}, 2)"),
    "i32": ("U32(M, {a})[0]", "LD({a}, 4)"),
    "i64": ("U64(M, {a})[0]", "LD({a}, 8)"),
    # 16 bytes as two 8-byte halves, low first: the slow path needs no 16-byte case
    "i128": ("IFB(M[{a}:{a} + 16], 'little')", "LD({a}, 8) | (LD(({a} + 8) & " + hex(M64) + ", 8) << 64)"),
    "f32": ("I2F(U32(M, {a})[0])", "I2F(LD({a}, 4))"),  # not struct 'f': it quiets a signalling NaN
    "f64": ("UF64(M, {a})[0]", "I2D(LD({a}, 8))"),
}
_STORES = {
    "i8": ("M[{a}] = {v}", "ST({a}, 1, {v})"),
    "i16": ("P16(M, {a}, {v})", "ST({a}, 2, {v})"),
    "i32": ("P32(M, {a}, {v})", "ST({a}, 4, {v})"),
    "i64": ("P64(M, {a}, {v})", "ST({a}, 8, {v})"),
    "i128": ("M[{a}:{a} + 16] = ({v}).to_bytes(16, 'little')",
             "ST({a}, 8, {v} & " + hex(M64) + "); ST(({a} + 8) & " + hex(M64) + ", 8, {v} >> 64)"),
    "f32": ("P32(M, {a}, F2I({v}))", "ST({a}, 4, F2I({v}))"),
    "f64": ("PF64(M, {a}, {v})", "ST({a}, 8, D2I({v}))"),
}


@_template("ld")
def _ld(g: _Gen, op: Op) -> None:
    fast, slow = _LOADS[op.outs[0].ty.name]
    a = g.v(op.ins[0])
    g.bind("M")
    g.assign(op, f"{fast.format(a=a)} if FR[{a} >> 12] else {slow.format(a=a)}")


@_template("st")
def _st(g: _Gen, op: Op) -> None:
    fast, slow = _STORES[op.ins[1].ty.name]
    a, v = g.v(op.ins[0]), g.v(op.ins[1])
    g.bind("M")
    g.line(g.bind_used(f"if FW[{a} >> 12]: {fast.format(a=a, v=v)}"))
    # in loop mode a slow-path store (the only kind that can hit translated code) ends the loop
    g.line(g.bind_used(f"else: {slow.format(a=a, v=v)}" + ("; lim -= n; n = 0" if g.loop_iters else "")))


# --- control -------------------------------------------------------------------------------
@_template("insn")
def _insn(g: _Gen, op: Op) -> None:
    g.pc = op.consts[0]


@_template("exit_if")
def _exit_if(g: _Gen, op: Op) -> None:
    kind, pc = op.consts
    c = op.ins[0]
    if isinstance(c, Const) and not c.value:
        return
    g.line(f"if {g.v(c)}:")
    if g.is_back_edge(kind, pc):
        g.back_edge(1)
    else:
        g.leave(kind, pc, 1)


@_template("exit")
def _exit(g: _Gen, op: Op) -> None:
    if op in g.fallthrough:
        return
    if g.is_back_edge(*op.consts):
        g.back_edge(0)
    else:
        g.leave(*op.consts, 0)
    g.dirty.clear()


@_template("exit_ind")
def _exit_ind(g: _Gen, op: Op) -> None:
    target = g.v(op.ins[0])
    g.flush(0)
    if g.loop_iters:
        g.line(f"{g.bind('BLK')}.count += lim - n")
    g.line(f"return {target}")
    g.dirty.clear()


@_template("call")
def _call(g: _Gen, op: Op) -> None:
    name = op.consts[0]
    sig = HELPERS[name]
    fn = g.bind_obj("H_" + re.sub(r"\W", "_", name) + "_", IMPLS[name])
    if sig.reads_state or sig.writes_state:
        g.flush(0)
        g.dirty.clear()
    args = ", ".join([g.bind("ENV")] + [g.v(x) for x in op.ins])
    outs = [f"t{t.id}" for t in op.outs]
    if not outs:
        g.line(f"{fn}({args})")
    elif len(outs) == 1:  # a helper may answer a 1-tuple for one result
        r = outs[0]
        g.line(f"{r} = {fn}({args})")
        g.line(f"if {r}.__class__ is tuple: {r} = {r}[0]")
    else:
        g.line(f"{', '.join(outs)}, = {fn}({args})")
    if sig.writes_state:
        g.cur.clear()


assert set(TEMPLATES) == set(OPS), f"quick tier templates out of sync with OPS: {set(TEMPLATES) ^ set(OPS)}"


# --- analyses ------------------------------------------------------------------------------
def _fallthrough(unit: Unit) -> set[Op]:
    """Final `exit jump` ops that target the next block of the unit (blocks laid out in order):
    they fall through instead of returning."""
    out = set()
    for b, nxt in zip(unit.blocks, unit.blocks[1:]):
        last = b.ops[-1] if b.ops else None
        if last is not None and last.name == "exit" and tuple(last.consts) == ("jump", nxt.pc):
            out.add(last)
    return out


def _vkey(x: Value):
    if isinstance(x, Temp):
        return x.id
    if x.ty.is_float:
        return (x.ty.name, struct.pack("<d", x.value))  # by bits: -0.0 != 0.0, NaN == itself
    return (x.ty.name, x.value)


def _value_number(ops: list[Op]) -> list[Op]:
    """Drop a pure op that repeats an earlier one (same op, inputs and attributes), and a get
    of a global whose value is known; their uses take the earlier value. Ops are copied when
    their inputs change: the unit is not touched."""
    subst: dict[int, Value] = {}
    seen: dict[tuple, Temp] = {}
    cur: dict[str, Value] = {}  # global -> its current value, while known
    out: list[Op] = []
    for op in ops:
        if subst and any(isinstance(x, Temp) and x.id in subst for x in op.ins):
            op = Op(op.name, op.outs, tuple(subst.get(x.id, x) if isinstance(x, Temp) else x
                                            for x in op.ins), op.consts)
        if op.name == "get":
            name = op.consts[0]
            if name in cur:  # a global read again is the value it holds
                subst[op.outs[0].id] = cur[name]
                continue
            cur[name] = op.outs[0]
        elif op.name == "put":
            cur[op.consts[0]] = op.ins[0]
        elif op.name == "call" and HELPERS[op.consts[0]].writes_state:
            cur.clear()
        elif op.name in _PURE and op.name != "get" and len(op.outs) == 1:
            ins = [_vkey(x) for x in op.ins]
            if op.name in _COMM:
                ins.sort(key=repr)
            try:
                key = (op.name, op.outs[0].ty.name, tuple(ins),
                       tuple(tuple(c) if isinstance(c, list) else c for c in op.consts))
                prev = seen.get(key)
            except TypeError:  # an unhashable attribute: leave the op alone
                key, prev = None, None
            if prev is not None:
                subst[op.outs[0].id] = prev
                continue
            if key is not None:
                seen[key] = op.outs[0]
        out.append(op)
    return out


def _needed(ops: list[Op], fallthrough: set[Op]) -> list[bool]:
    """Which ops must be generated: effects, exits, puts, and pure ops whose results are used.

    Mirrors the generator's view of globals: a put's value is used only if some exit or helper
    stores it before it is overwritten, or a later get reads it.
    """
    cur: dict[str, Value] = {}
    pending: dict[str, int] = {}
    flushed: set[int] = set()
    get_src: dict[int, Value] = {}
    for i, op in enumerate(ops):
        n = op.name
        if n == "get":
            name = op.consts[0]
            if name in cur:
                get_src[i] = cur[name]
            else:
                cur[name] = op.outs[0]
        elif n == "put":
            cur[op.consts[0]] = op.ins[0]
            pending[op.consts[0]] = i
        elif n == "exit_if":
            flushed.update(pending.values())
        elif n in ("exit", "exit_ind") and op not in fallthrough:
            flushed.update(pending.values())
            pending.clear()
        elif n == "call":
            sig = HELPERS[op.consts[0]]
            if sig.reads_state or sig.writes_state:
                flushed.update(pending.values())
                pending.clear()
            if sig.writes_state:
                cur.clear()
    live: set[int] = set()
    keep = [False] * len(ops)

    def use(*vals: Value) -> None:
        live.update(x.id for x in vals if isinstance(x, Temp))

    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        n = op.name
        if n == "put":  # always generated: it moves no data, but the generator tracks it
            keep[i] = True
            if i in flushed:
                use(*op.ins)
        elif n == "get" and i in get_src:
            if op.outs[0].id in live:
                keep[i] = True
                use(get_src[i])
        elif n in _PURE or (n == "call" and HELPERS[op.consts[0]].pure):
            if any(t.id in live for t in op.outs):
                keep[i] = True
                use(*op.ins)
        else:
            keep[i] = True
            use(*op.ins)
    return keep


def _loopable(unit: Unit, ops: list[Op]) -> bool:
    """A one-block unit with a jump back to its own head and no helper calls (a helper may
    read state at any time, which loop-carried locals would hide from it)."""
    if len(unit.blocks) != 1:
        return False
    back = any(op.name in ("exit_if", "exit") and tuple(op.consts) == ("jump", unit.pc) for op in ops)
    return back and not any(op.name == "call" for op in ops)


_TEMP_RE = re.compile(r"\bt\d+\b")


def _inline_single_use(g: _Gen) -> None:
    """Fold a pure op's expression into its only textual use (saves a store and a load of a
    local). Safe because the op is pure and its inputs are never rebound before the use: temps
    are SSA, and loop-carried locals change only on a back edge, which leaves the path."""
    uses = Counter(_TEMP_RE.findall("\n".join(g.lines)))
    dead: set[int] = set()
    for i, name in g.pure_defs.items():
        if uses[name] != 2:  # its definition and one use
            continue
        expr = g.lines[i].split(" = ", 1)[1]
        pat = re.compile(rf"\b{name}\b")
        for j in range(i + 1, len(g.lines)):
            if pat.search(g.lines[j]):
                if j in g.no_inline:
                    break
                g.lines[j] = pat.sub(lambda _m, e=expr: f"({e})", g.lines[j], count=1)
                dead.add(i)
                break
    g.lines[:] = [t for k, t in enumerate(g.lines) if k not in dead]
    g.pcs[:] = [p for k, p in enumerate(g.pcs) if k not in dead]


# --- entry points --------------------------------------------------------------------------
def generate(unit: Unit, env, loop_iters: int = 0) -> tuple[str, dict[str, object], list[int]]:
    """Python source of the unit's function `blk`, its default-argument bindings, and the
    guest pc of each source line (index = line number)."""
    ops = _value_number(list(unit.ops()))
    if not ops or ops[-1].name not in _TERM:
        raise ValueError(f"unit at 0x{unit.pc:x} does not end with a terminator")
    g = _Gen(unit, env)
    g.pc = next((op.consts[0] for op in ops if op.name == "insn"), unit.pc)
    first_pc = g.pc
    if loop_iters > 0 and _loopable(unit, ops):
        g.start_loop(ops, loop_iters)
    for op, k in zip(ops, _needed(ops, g.fallthrough)):
        if k:
            TEMPLATES[op.name](g, op)
    if INLINE_SINGLE_USE:
        _inline_single_use(g)
    header = "def blk(" + ", ".join(f"{n}={n}" for n in g.binds) + "):"
    source = "\n".join([header, *g.lines]) + "\n"
    return source, g.binds, [first_pc, first_pc, *g.pcs]  # line 1 is the header


def compile_unit(unit: Unit, env, loop_iters: int | None = None) -> QuickBlock:
    """Compile an IR unit into a QuickBlock whose fn() runs it and returns the next guest pc.

    loop_iters: how many back edges a block that jumps to its own head may take inside one
    call (0: none, every call runs the block once, e.g. for -d exec or trace recording);
    None: env.params.quick_loop_iters if env has params with that knob, else 1024.
    env.do_syscall is bound now: set it before compiling.
    """
    if loop_iters is None:
        loop_iters = getattr(getattr(env, "params", None), "quick_loop_iters", DEFAULT_LOOP_ITERS)
    source, binds, line_pcs = generate(unit, env, loop_iters)
    insns = [op for op in unit.ops() if op.name == "insn"]
    ft = _fallthrough(unit)
    exits = tuple(op.consts[1] for op in unit.ops()
                  if op.name in ("exit_if", "exit") and op.consts[0] == "jump" and op not in ft)
    blk = QuickBlock(unit.pc, None, len(insns), sum(op.consts[1] for op in insns), exits,
                     source, unit, tuple(line_pcs))
    code = compile(source, f"<hqemu:0x{unit.pc:x}>", "exec")
    ns = dict(binds)
    if "BLK" in ns:
        ns["BLK"] = blk
    exec(code, ns)
    blk.fn = ns["blk"]
    return blk


__all__ = ["TEMPLATES", "compile_unit", "generate", "DEFAULT_LOOP_ITERS"]
