"""Lower an IR Unit (one guest block or a trace of several) to LLVM IR text.

The compiled unit is `define i64 @<name>(ptr noalias %state, ptr %membase, ptr noalias %exitinfo)`:
globals live at their byte offsets in %state (i128 as 16 little-endian bytes), guest address a
is host address %membase + a, the return value is the next guest pc and *exitinfo receives the
exit kind's index in EXIT_KINDS (0 = jump) on every exit.

The exit info record (EXITINFO_*: i64 slots at fixed byte offsets, laid out in workers/abi.py;
the native dispatcher, hqemu/native/dispatch.py, appends its own fields after EXITINFO_SIZE):
besides the kind, the unit adds each IR block's guest instruction count to the ICOUNT slot when
the block is entered (the running total in a register, stored, never reloaded),
writes the guest pc of every instruction that touches guest memory to INSN_PC with a volatile
store (so a SIGSEGV handler knows which guest instruction faulted, whatever LLVM reordered
around it), and sets IN_HELPER to 1 while a helper runs (a fault then is the host's own).

    >>> text = lower_unit(unit, "trace_401000")     # then workers.compile.compile_unit_text(text)

Register promotion (HQEMU's key idea): every global the unit uses gets an alloca loaded once
at entry; get/put touch only the alloca, and the globals the unit writes are stored back at
every exit taken and around helpers that read or write state. SROA turns the allocas into
SSA values, so a hot loop keeps guest registers in host registers.

Traces: a `jump` exit (exit, exit_if, or exit_ind at run time) to the pc of one of the unit's
blocks branches to that block when the unit has several blocks, exactly as
hqemu.ir.interp.run_block continues there; other exits return.

A `jump` exit to a pc the unit's `dead_at` names leaves those globals unstored: the code there
writes them before reading them (docs/ir.md), so LLVM drops what only computed them.

Chaining: a `jump` exit to any other pc stores the state back, then looks the pc up in the
dispatch table named by the exit record (workers/abi.py) and tail-calls the unit installed
there, as hqemu_dispatch's loop would, so native code flows from unit to unit without the
round trip through the dispatcher; it returns only on a miss or an interrupt request.

Each op has a function lower_<opname>(fn, op) (checked against OPS at import). Where the IR
leaves a result undefined, the code still computes what the reference interpreter computes
(shifts >= width, INT_MIN / -1, fptosi out of range) and never lets LLVM poison reach state or
memory; integer division by zero divides by 1 instead of trapping the host.

Helpers: `call h` becomes a call of the external `@hqemu_helper_<h>(ptr %state, ptr %membase,
ptr %exitinfo, [ptr %out,] args...)`. Integer arguments of up to 64 bits are passed zero-extended
as i64, i128 as two i64 (low, high), f32 as float, f64 as double. One scalar result is the return
value (i64, float or double), several results or an i128 are written to %out (i64 slots, an
i128 takes two). A helper that raises sets *exitinfo to ABORT: the unit then returns at once
with the pc of the guest instruction that called it (state imprecise, as after a fault).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Collection

from hqemu.ir import (
    EXIT_KINDS,
    F32,
    F64,
    HELPERS,
    I64,
    I128,
    OPS,
    Const,
    F,
    HostInsn,
    Op,
    Temp,
    Ty,
    Unit,
    Value,
)
from hqemu.ir.helpers import host_insn_of

from .abi import (
    ABORT,
    EXITINFO_FAULT_ADDR,
    EXITINFO_ICOUNT,
    EXITINFO_IN_HELPER,
    EXITINFO_IND_FROM,
    EXITINFO_IND_TO,
    EXITINFO_INSN_PC,
    EXITINFO_KIND,
    EXITINFO_MASK,
    EXITINFO_REQUEST,
    EXITINFO_SIZE,
    EXITINFO_UNIT_PC,
    EXITINFO_UNITS,
    EXITINFO_WORDS,
    TOMB,
    lookup_ir,
)

ENTRY_ARGS = "ptr noalias %state, ptr %membase, ptr noalias %exitinfo"
HELPER_PREFIX = "hqemu_helper_"
# exit info slots a unit addresses, by the name of its %x.<slot> pointer
_INFO_OFFSETS = {"insn_pc": EXITINFO_INSN_PC, "icount": EXITINFO_ICOUNT, "in_helper": EXITINFO_IN_HELPER,
                 "unit_pc": EXITINFO_UNIT_PC, "units": EXITINFO_UNITS, "request": EXITINFO_REQUEST,
                 "words": EXITINFO_WORDS, "mask": EXITINFO_MASK, "ind_from": EXITINFO_IND_FROM,
                 "ind_to": EXITINFO_IND_TO}
_LLTY = {"f32": "float", "f64": "double"}
_ICMP = {"eq": "eq", "ne": "ne", "ltu": "ult", "leu": "ule", "gtu": "ugt", "geu": "uge",
         "lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge"}
_FROUND = {"nearest": "roundeven", "floor": "floor", "ceil": "ceil", "trunc": "trunc"}
_IDENT = re.compile(r"[A-Za-z_$.][\w$.]*$")
_PACK_D, _UNPACK_Q = struct.Struct("<d").pack, struct.Struct("<Q").unpack


class LowerError(Exception):
    """A unit that cannot be lowered; the message names the block and op being lowered."""


def llty(t: Ty) -> str:
    return _LLTY.get(t.name, t.name)


def _mangle(t: Ty) -> str:
    """The suffix LLVM's overloaded intrinsics use for a type (llvm.ctpop.i64, llvm.sqrt.f64)."""
    return t.name


def _ident(name: str) -> str:
    return name if _IDENT.match(name) else '"' + name.replace('"', "") + '"'


def _int_lit(value: int, bits: int) -> str:
    if bits == 1:
        return "true" if value & 1 else "false"
    value &= (1 << bits) - 1
    return str(value - (1 << bits) if value >> (bits - 1) else value)


def _float_lit(value: float) -> str:
    # LLVM writes float constants as the bits of the equal double; an f32 value widens exactly
    # (a NaN keeps its payload's top bits, which is how fpext moves it)
    return f"0x{_UNPACK_Q(_PACK_D(value))[0]:016X}"


def literal(c: Const) -> str:
    return _float_lit(c.value) if c.ty.is_float else _int_lit(c.value, c.ty.bits)


def _vec(lane: int) -> str:
    return f"<{128 // lane} x i{lane}>"


class _Fn:
    """The state of one function being lowered: its lines, value names and exits."""

    def __init__(self, unit: Unit, name: str):
        self.unit = unit
        self.name = name
        self.body: list[str] = []  # the current and finished basic blocks
        self.tail: list[str] = []  # exit stubs, appended after the blocks
        self.decls: dict[str, str] = {}  # symbol -> declare line
        self.vals: dict[int, str] = {}  # temp id -> LLVM operand in the block that defines it
        self.n = 0
        self.cur_pc = unit.pc  # guest pc of the instruction being lowered (for helper aborts)
        self.globals = sorted(unit.globals.values(), key=lambda g: g.offset)
        self.written = [g for g in self.globals if any(
            op.name == "put" and op.consts[0] == g.name for op in unit.ops())]
        # per global: %g<sfx> its alloca, %s<sfx> its address in %state, %e<sfx> its entry value
        self.gsfx = {g.name: f".{g.name}" if _IDENT.match(g.name) else str(i)
                     for i, g in enumerate(self.globals)}
        multi = len(unit.blocks) > 1
        # the interpreter continues at the last block with a pc (a dict built in block order)
        self.by_pc = {b.pc: i for i, b in enumerate(unit.blocks)} if multi else {}
        self.def_block: dict[int, int] = {}
        self.temp_ty: dict[int, Ty] = {}
        self.spilled: set[int] = set()  # temps used outside their block: kept in an alloca
        self._find_spills()
        self.has_calls = any(op.name == "call" for op in unit.ops())
        self.entry_extra: list[str] = []  # allocas for call results
        self.fault_pcs = True  # write INSN_PC before the memory accesses of each instruction
        # id() of the insn markers whose instruction may fault: it has ld/st, or a host
        # instruction, which traps when the guest unmasked an FP exception
        self.mem_insns: set[int] = set()
        for b in unit.blocks:
            marker = None
            for op in b.ops:
                if op.name == "insn":
                    marker = op
                elif marker is not None and (op.name in ("ld", "st") or op.name == "call" and (
                        host_insn_of(op.consts[0], unit.host_insns) is not None)):
                    self.mem_insns.add(id(marker))
        self.info_slots: set[str] = set()  # exit info slots the function addresses (%x.<slot>)
        self.chain = True  # jump exits tail-call the unit installed at their target (chain_to)
        self.used = {v.id for op in unit.ops() for v in op.ins if isinstance(v, Temp)}  # temps read

    def _find_spills(self) -> None:
        for i, b in enumerate(self.unit.blocks):
            for op in b.ops:
                for v in op.ins:
                    if isinstance(v, Temp) and self.def_block.get(v.id, i) != i:
                        self.spilled.add(v.id)
                for t in op.outs:
                    self.def_block[t.id] = i
                    self.temp_ty[t.id] = t.ty

    # --- naming and values ---------------------------------------------------------------
    def fresh(self, prefix: str = "v") -> str:
        self.n += 1
        return f"%{prefix}{self.n}"

    def label(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def emit(self, line: str) -> None:
        self.body.append("  " + line)

    def start(self, label: str) -> None:
        self.body.append(f"{label}:")

    def val(self, v: Value) -> str:
        if isinstance(v, Const):
            return literal(v)
        s = self.vals.get(v.id)
        if s is None:
            if v.id not in self.spilled:
                raise LowerError(f"%{v.id} used before its definition")
            s = self.fresh()
            self.emit(f"{s} = load {llty(v.ty)}, ptr %a.t{v.id}")
        return s

    def typed(self, v: Value) -> str:
        return f"{llty(v.ty)} {self.val(v)}"

    def define(self, t: Temp, operand: str) -> None:
        """Bind an output temp to an LLVM operand (an instruction result or a literal)."""
        self.vals[t.id] = operand
        if t.id in self.spilled:
            self.emit(f"store {llty(t.ty)} {operand}, ptr %a.t{t.id}")

    def inst(self, t: Temp, rhs: str) -> None:
        """Emit `%tN = rhs` for output temp t."""
        name = f"%t{t.id}"
        self.emit(f"{name} = {rhs}")
        self.define(t, name)

    def tmp(self, rhs: str) -> str:
        s = self.fresh()
        self.emit(f"{s} = {rhs}")
        return s

    def intrinsic(self, name: str, ret: str, args: str) -> str:
        self.decls.setdefault(name, f"declare {ret} @{name}({args})")
        return name

    def info(self, slot: str) -> str:
        """The pointer to exit info slot `slot` (kind, insn_pc, icount, in_helper)."""
        self.info_slots.add(slot)
        return f"%x.{slot}"

    # --- state ---------------------------------------------------------------------------
    def slot(self, name: str) -> str:
        return f"%g{self.gsfx[name]}"

    def state_ptr(self, name: str) -> str:
        return f"%s{self.gsfx[name]}"

    def store_back(self, out: list[str], dead: Collection[str] = ()) -> None:
        """Store the globals the unit writes, but those the code continued at writes first."""
        for g in self.written:
            if g.name in dead:
                continue
            s = self.fresh()
            t = llty(g.ty)
            out.append(f"  {s} = load {t}, ptr {self.slot(g.name)}")
            out.append(f"  store {t} {s}, ptr {self.state_ptr(g.name)}, align 8")

    def reload(self) -> None:
        for g in self.globals:
            t = llty(g.ty)
            s = self.tmp(f"load {t}, ptr {self.state_ptr(g.name)}, align 8")
            self.emit(f"store {t} {s}, ptr {self.slot(g.name)}")

    # --- exits ---------------------------------------------------------------------------
    def exit_stub(self, kind: str, pc_operand: str, pc: int | None = None) -> str:
        """A block that stores the written globals back and returns (a jump exit first tries
        to chain to the unit installed at its target); its label. pc: the target when static."""
        label = self.label("x")
        out = [f"{label}:"]
        self.store_back(out, self.unit.dead_at.get(pc, ()) if kind == "jump" and pc is not None else ())
        if kind == "jump" and pc_operand.startswith("%"):  # an indirect jump: the edge, for sampling
            out += [f"  store i64 {_int_lit(self.unit.pc, 64)}, ptr {self.info('ind_from')}, align 8",
                    f"  store i64 {pc_operand}, ptr {self.info('ind_to')}, align 8"]
        if kind == "jump" and self.chain:
            self.chain_to(out, pc_operand)
        out.append(f"  store i64 {EXIT_KINDS.index(kind)}, ptr %exitinfo, align 8")
        out.append(f"  ret i64 {pc_operand}")
        self.tail += out
        return label

    def chain_to(self, out: list[str], pc: str) -> None:
        """Look pc up in the dispatch table as hqemu_dispatch does and tail-call the unit found
        (the state is in memory already); on a miss, an interrupt request or a record with no
        table, fall through to the return after `out`. The jump is this exit's own indirect
        branch, which the host predicts far better than the dispatcher's single call site."""
        n = f"ch{self.label('')}"
        x = {s: self.info(s) for s in ("words", "mask", "request", "unit_pc", "units")}
        out += [f"  %{n}.w = load ptr, ptr {x['words']}, align 8",
                f"  %{n}.has = icmp ne ptr %{n}.w, null"]
        if pc.startswith("%"):  # the EMPTY and TOMB keys are no guest pc (a constant pc never is)
            out += [f"  %{n}.low = icmp ult i64 {pc}, {_int_lit(TOMB, 64)}",
                    f"  %{n}.ok = and i1 %{n}.has, %{n}.low"]
        else:
            out.append(f"  %{n}.ok = and i1 %{n}.has, true")
        out.append(f"  br i1 %{n}.ok, label %{n}.load, label %{n}.miss")
        out += [f"{n}.load:", f"  %{n}.mask = load i64, ptr {x['mask']}, align 8", f"  br label %{n}.hash"]
        out += lookup_ir(n, pc, f"%{n}.w", f"%{n}.mask", f"{n}.hit", f"{n}.miss")
        out += [f"{n}.hit:",
                f"  %{n}.rq = load volatile i64, ptr {x['request']}, align 8",
                f"  %{n}.idle = icmp eq i64 %{n}.rq, 0",
                f"  br i1 %{n}.idle, label %{n}.go, label %{n}.miss",
                f"{n}.go:",
                f"  store i64 {pc}, ptr {x['unit_pc']}, align 8",
                f"  %{n}.u = load i64, ptr {x['units']}, align 8",
                f"  %{n}.u1 = add i64 %{n}.u, 1",
                f"  store i64 %{n}.u1, ptr {x['units']}, align 8",
                f"  %{n}.r = musttail call i64 %{n}.code(ptr %state, ptr %membase, ptr %exitinfo)",
                f"  ret i64 %{n}.r",
                f"{n}.miss:"]

    def target(self, kind: str, pc: int) -> str:
        """The label an exit to (kind, pc) goes to: a block of the unit, or a new exit stub."""
        if kind == "jump" and pc in self.by_pc:
            return f"b{self.by_pc[pc]}"
        return self.exit_stub(kind, _int_lit(pc, 64), pc)


# --- moves and integer arithmetic -----------------------------------------------------------
def lower_mov(fn: _Fn, op: Op) -> None:
    fn.define(op.outs[0], fn.val(op.ins[0]))


def _binop(inst: str) -> Callable[[_Fn, Op], None]:
    def lower(fn: _Fn, op: Op) -> None:
        a, b = op.ins
        fn.inst(op.outs[0], f"{inst} {fn.typed(a)}, {fn.val(b)}")
    lower.__doc__ = f"out = {inst} a, b"
    return lower


lower_add = _binop("add")
lower_sub = _binop("sub")
lower_mul = _binop("mul")
lower_and = _binop("and")
lower_or = _binop("or")
lower_xor = _binop("xor")


def lower_neg(fn: _Fn, op: Op) -> None:
    a = op.ins[0]
    fn.inst(op.outs[0], f"sub {llty(a.ty)} {_int_lit(0, a.ty.bits)}, {fn.val(a)}")


def lower_not(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"xor {llty(op.ins[0].ty)} {fn.val(op.ins[0])}, {_int_lit(-1, op.ins[0].ty.bits)}")


def _shift(fn: _Fn, op: Op, inst: str) -> None:
    # LLVM's shifts by >= width are poison; the interpreter's are Python's: 0, or the sign for sar
    a, b = op.ins
    t, w = llty(a.ty), a.ty.bits
    out = op.outs[0]
    if isinstance(b, Const):
        if b.value < w:
            fn.inst(out, f"{inst} {t} {fn.val(a)}, {b.value}")
        elif inst == "ashr":
            fn.inst(out, f"ashr {t} {fn.val(a)}, {w - 1}")
        else:
            fn.define(out, _int_lit(0, w))
        return
    if w == 1:  # a count of 1 is already out of range; sar's sign fill of one bit is a itself
        if inst == "ashr":
            fn.define(out, fn.val(a))
        else:
            fn.inst(out, f"select i1 {fn.val(b)}, i1 false, i1 {fn.val(a)}")
        return
    big = fn.tmp(f"icmp uge {t} {fn.val(b)}, {w}")
    if inst == "ashr":
        cnt = fn.tmp(f"select i1 {big}, {t} {w - 1}, {t} {fn.val(b)}")
        fn.inst(out, f"ashr {t} {fn.val(a)}, {cnt}")
        return
    cnt = fn.tmp(f"and {t} {fn.val(b)}, {w - 1}")  # widths are powers of two
    r = fn.tmp(f"{inst} {t} {fn.val(a)}, {cnt}")
    fn.inst(out, f"select i1 {big}, {t} 0, {t} {r}")


def lower_shl(fn: _Fn, op: Op) -> None: _shift(fn, op, "shl")
def lower_shr(fn: _Fn, op: Op) -> None: _shift(fn, op, "lshr")
def lower_sar(fn: _Fn, op: Op) -> None: _shift(fn, op, "ashr")


def _rot(fn: _Fn, op: Op, name: str) -> None:
    # the funnel-shift intrinsics take the count modulo the width, as rotl/rotr do
    a, b = op.ins
    t = llty(a.ty)
    f = fn.intrinsic(f"llvm.{name}.{_mangle(a.ty)}", t, f"{t}, {t}, {t}")
    fn.inst(op.outs[0], f"call {t} @{f}({fn.typed(a)}, {fn.typed(a)}, {fn.typed(b)})")


def lower_rotl(fn: _Fn, op: Op) -> None: _rot(fn, op, "fshl")
def lower_rotr(fn: _Fn, op: Op) -> None: _rot(fn, op, "fshr")


def _div(fn: _Fn, op: Op, inst: str, signed: bool) -> None:
    # x86's div traps on zero and on INT_MIN / -1: divide by 1 there (the frontend guards zero;
    # INT_MIN / 1 and INT_MIN % 1 are what the interpreter's wrapping gives for / -1)
    a, b = op.ins
    t = llty(a.ty)
    w = a.ty.bits
    bad = fn.tmp(f"icmp eq {t} {fn.val(b)}, {_int_lit(0, w)}")
    if signed and w > 1:
        amin = fn.tmp(f"icmp eq {t} {fn.val(a)}, {_int_lit(1 << (w - 1), w)}")
        bm1 = fn.tmp(f"icmp eq {t} {fn.val(b)}, {_int_lit(-1, w)}")
        ovf = fn.tmp(f"and i1 {amin}, {bm1}")
        bad = fn.tmp(f"or i1 {bad}, {ovf}")
    d = fn.tmp(f"select i1 {bad}, {t} {_int_lit(1, w)}, {t} {fn.val(b)}")
    fn.inst(op.outs[0], f"{inst} {t} {fn.val(a)}, {d}")


def lower_udiv(fn: _Fn, op: Op) -> None: _div(fn, op, "udiv", False)
def lower_urem(fn: _Fn, op: Op) -> None: _div(fn, op, "urem", False)
def lower_sdiv(fn: _Fn, op: Op) -> None: _div(fn, op, "sdiv", True)
def lower_srem(fn: _Fn, op: Op) -> None: _div(fn, op, "srem", True)


def _count(fn: _Fn, op: Op, name: str) -> None:
    a = op.ins[0]
    t = llty(a.ty)
    f = fn.intrinsic(f"llvm.{name}.{_mangle(a.ty)}", t, f"{t}, i1")
    fn.inst(op.outs[0], f"call {t} @{f}({fn.typed(a)}, i1 false)")


def lower_clz(fn: _Fn, op: Op) -> None: _count(fn, op, "ctlz")
def lower_ctz(fn: _Fn, op: Op) -> None: _count(fn, op, "cttz")


def lower_popcnt(fn: _Fn, op: Op) -> None:
    a = op.ins[0]
    t = llty(a.ty)
    f = fn.intrinsic(f"llvm.ctpop.{_mangle(a.ty)}", t, t)
    fn.inst(op.outs[0], f"call {t} @{f}({fn.typed(a)})")


def lower_bswap(fn: _Fn, op: Op) -> None:
    a = op.ins[0]
    t = llty(a.ty)
    f = fn.intrinsic(f"llvm.bswap.{_mangle(a.ty)}", t, t)
    fn.inst(op.outs[0], f"call {t} @{f}({fn.typed(a)})")


def lower_parity(fn: _Fn, op: Op) -> None:
    a = op.ins[0]
    w = a.ty.bits
    if w > 8:
        low = fn.tmp(f"trunc {fn.typed(a)} to i8")
    elif w < 8:
        low = fn.tmp(f"zext {fn.typed(a)} to i8")
    else:
        low = fn.val(a)
    f = fn.intrinsic("llvm.ctpop.i8", "i8", "i8")
    n = fn.tmp(f"call i8 @{f}(i8 {low})")
    odd = fn.tmp(f"trunc i8 {n} to i1")
    fn.inst(op.outs[0], f"xor i1 {odd}, true")


# --- width changes --------------------------------------------------------------------------
def _resize(fn: _Fn, op: Op, inst: str) -> None:
    a, out = op.ins[0], op.outs[0]
    if a.ty == out.ty:
        fn.define(out, fn.val(a))
    else:
        fn.inst(out, f"{inst} {fn.typed(a)} to {llty(out.ty)}")


def lower_zext(fn: _Fn, op: Op) -> None: _resize(fn, op, "zext")
def lower_sext(fn: _Fn, op: Op) -> None: _resize(fn, op, "sext")
def lower_trunc(fn: _Fn, op: Op) -> None: _resize(fn, op, "trunc")
def lower_bitcast(fn: _Fn, op: Op) -> None: _resize(fn, op, "bitcast")


# --- comparisons and selection --------------------------------------------------------------
def lower_setcond(fn: _Fn, op: Op) -> None:
    a, b = op.ins
    fn.inst(op.outs[0], f"icmp {_ICMP[op.consts[0]]} {fn.typed(a)}, {fn.val(b)}")


def lower_select(fn: _Fn, op: Op) -> None:
    c, b, d = op.ins
    fn.inst(op.outs[0], f"select i1 {fn.val(c)}, {fn.typed(b)}, {fn.typed(d)}")


# --- floating point -------------------------------------------------------------------------
lower_fadd = _binop("fadd")
lower_fsub = _binop("fsub")
lower_fmul = _binop("fmul")
lower_fdiv = _binop("fdiv")


def _fintrinsic(fn: _Fn, op: Op, name: str) -> None:
    a = op.ins[0]
    t = llty(a.ty)
    f = fn.intrinsic(f"llvm.{name}.{_mangle(a.ty)}", t, t)
    fn.inst(op.outs[0], f"call {t} @{f}({fn.typed(a)})")


def lower_fsqrt(fn: _Fn, op: Op) -> None: _fintrinsic(fn, op, "sqrt")
def lower_fabs(fn: _Fn, op: Op) -> None: _fintrinsic(fn, op, "fabs")
def lower_fround(fn: _Fn, op: Op) -> None: _fintrinsic(fn, op, _FROUND[op.consts[0]])


def lower_fneg(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"fneg {fn.typed(op.ins[0])}")


def lower_fcmp(fn: _Fn, op: Op) -> None:
    a, b = op.ins
    fn.inst(op.outs[0], f"fcmp {op.consts[0]} {fn.typed(a)}, {fn.val(b)}")  # FCONDS are LLVM's names


def lower_fext(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"fpext {fn.typed(op.ins[0])} to double")


def lower_ftrunc(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"fptrunc {fn.typed(op.ins[0])} to float")


def lower_sitofp(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"sitofp {fn.typed(op.ins[0])} to {llty(op.outs[0].ty)}")


def lower_uitofp(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"uitofp {fn.typed(op.ins[0])} to {llty(op.outs[0].ty)}")


def lower_fptosi(fn: _Fn, op: Op) -> None:
    # the saturating conversion is never poison; NaN and >= 2**(w-1) become INT_MIN as in the
    # interpreter (x86's "integer indefinite"); below the range saturation already gives INT_MIN
    a, out = op.ins[0], op.outs[0]
    ft, it, w = llty(a.ty), llty(out.ty), out.ty.bits
    f = fn.intrinsic(f"llvm.fptosi.sat.{_mangle(out.ty)}.{_mangle(a.ty)}", it, ft)
    sat = fn.tmp(f"call {it} @{f}({fn.typed(a)})")
    top = _float_lit(float(1 << (w - 1)))
    ok = fn.tmp(f"fcmp olt {fn.typed(a)}, {top}")
    fn.inst(out, f"select i1 {ok}, {it} {sat}, {it} {_int_lit(1 << (w - 1), w)}")


# --- 128-bit lanes --------------------------------------------------------------------------
def _as_vec(fn: _Fn, v: Value, lane: int) -> str:
    return fn.tmp(f"bitcast {fn.typed(v)} to {_vec(lane)}")


def _from_vec(fn: _Fn, op: Op, vec: str, lane: int) -> None:
    fn.inst(op.outs[0], f"bitcast {_vec(lane)} {vec} to i128")


def _lane_bin(fn: _Fn, op: Op, inst: str) -> None:
    lane = op.consts[0]
    a, b = (_as_vec(fn, v, lane) for v in op.ins)
    _from_vec(fn, op, fn.tmp(f"{inst} {_vec(lane)} {a}, {b}"), lane)


def _lane_cmp(fn: _Fn, op: Op, pred: str) -> None:
    lane = op.consts[0]
    a, b = (_as_vec(fn, v, lane) for v in op.ins)
    n = 128 // lane
    m = fn.tmp(f"icmp {pred} {_vec(lane)} {a}, {b}")
    _from_vec(fn, op, fn.tmp(f"sext <{n} x i1> {m} to {_vec(lane)}"), lane)


def _lane_minmax(fn: _Fn, op: Op, name: str) -> None:
    lane = op.consts[0]
    a, b = (_as_vec(fn, v, lane) for v in op.ins)
    vt = _vec(lane)
    f = fn.intrinsic(f"llvm.{name}.v{128 // lane}i{lane}", vt, f"{vt}, {vt}")
    _from_vec(fn, op, fn.tmp(f"call {vt} @{f}({vt} {a}, {vt} {b})"), lane)


def lower_vadd(fn: _Fn, op: Op) -> None: _lane_bin(fn, op, "add")
def lower_vsub(fn: _Fn, op: Op) -> None: _lane_bin(fn, op, "sub")
def lower_vcmpeq(fn: _Fn, op: Op) -> None: _lane_cmp(fn, op, "eq")
def lower_vcmpgts(fn: _Fn, op: Op) -> None: _lane_cmp(fn, op, "sgt")
def lower_vminu(fn: _Fn, op: Op) -> None: _lane_minmax(fn, op, "umin")
def lower_vmaxu(fn: _Fn, op: Op) -> None: _lane_minmax(fn, op, "umax")
def lower_vmins(fn: _Fn, op: Op) -> None: _lane_minmax(fn, op, "smin")
def lower_vmaxs(fn: _Fn, op: Op) -> None: _lane_minmax(fn, op, "smax")


def lower_vmsb(fn: _Fn, op: Op) -> None:
    lane = op.consts[0]
    n = 128 // lane
    a = _as_vec(fn, op.ins[0], lane)
    m = fn.tmp(f"icmp slt {_vec(lane)} {a}, zeroinitializer")
    bits = fn.tmp(f"bitcast <{n} x i1> {m} to i{n}")
    out = op.outs[0].ty
    fn.inst(op.outs[0], f"{'zext' if n < out.bits else 'bitcast'} i{n} {bits} to {llty(out)}")


def _lane_shift(fn: _Fn, op: Op, inst: str) -> None:
    lane, count = op.consts
    if count >= lane:
        if inst != "ashr":
            fn.define(op.outs[0], "0")
            return
        count = lane - 1  # arithmetic shifts saturate to the sign, as psraw does
    n = 128 // lane
    a = _as_vec(fn, op.ins[0], lane)
    splat = "<" + ", ".join([f"i{lane} {count}"] * n) + ">"
    _from_vec(fn, op, fn.tmp(f"{inst} {_vec(lane)} {a}, {splat}"), lane)


def lower_vshli(fn: _Fn, op: Op) -> None: _lane_shift(fn, op, "shl")
def lower_vshri(fn: _Fn, op: Op) -> None: _lane_shift(fn, op, "lshr")
def lower_vsari(fn: _Fn, op: Op) -> None: _lane_shift(fn, op, "ashr")


def lower_vshuf(fn: _Fn, op: Op) -> None:
    lane, sel = op.consts
    if isinstance(sel, str):
        sel = tuple(int(s, 0) for s in sel.strip("[]").split(","))
    a, b = (_as_vec(fn, v, lane) for v in op.ins)
    mask = "<" + ", ".join(f"i32 {i}" for i in sel) + ">"
    _from_vec(fn, op, fn.tmp(f"shufflevector {_vec(lane)} {a}, {_vec(lane)} {b}, <{len(sel)} x i32> {mask}"),
              lane)


# --- guest state and memory -----------------------------------------------------------------
def lower_get(fn: _Fn, op: Op) -> None:
    fn.inst(op.outs[0], f"load {llty(op.outs[0].ty)}, ptr {fn.slot(op.consts[0])}")


def lower_put(fn: _Fn, op: Op) -> None:
    fn.emit(f"store {fn.typed(op.ins[0])}, ptr {fn.slot(op.consts[0])}")


def _host_addr(fn: _Fn, a: Value) -> str:
    return fn.tmp(f"getelementptr i8, ptr %membase, {fn.typed(a)}")


def lower_ld(fn: _Fn, op: Op) -> None:
    # a load whose value nothing uses is still a guest access that may fault: LLVM would drop
    # a plain one even at opt 0, so it is volatile
    vol = " volatile" if op.outs[0].id not in fn.used else ""
    p = _host_addr(fn, op.ins[0])
    fn.inst(op.outs[0], f"load{vol} {llty(op.outs[0].ty)}, ptr {p}, align 1")


def lower_st(fn: _Fn, op: Op) -> None:
    p = _host_addr(fn, op.ins[0])
    fn.emit(f"store {fn.typed(op.ins[1])}, ptr {p}, align 1")


# --- control --------------------------------------------------------------------------------
def lower_insn(fn: _Fn, op: Op) -> None:
    fn.cur_pc = op.consts[0]
    if fn.fault_pcs and id(op) in fn.mem_insns:
        # volatile: LLVM may neither drop it as dead nor merge it with the next instruction's
        fn.emit(f"store volatile i64 {_int_lit(op.consts[0], 64)}, ptr {fn.info('insn_pc')}, align 8")


def lower_exit_if(fn: _Fn, op: Op) -> None:
    kind, pc = op.consts
    cont = fn.label("c")
    fn.emit(f"br i1 {fn.val(op.ins[0])}, label %{fn.target(kind, pc)}, label %{cont}")
    fn.start(cont)


def lower_exit(fn: _Fn, op: Op) -> None:
    kind, pc = op.consts
    fn.emit(f"br label %{fn.target(kind, pc)}")


def lower_exit_ind(fn: _Fn, op: Op) -> None:
    a = fn.val(op.ins[0])
    out = fn.exit_stub("jump", a)
    if not fn.by_pc:
        fn.emit(f"br label %{out}")
        return
    cases = " ".join(f"i64 {_int_lit(pc, 64)}, label %b{i}" for pc, i in fn.by_pc.items())
    fn.emit(f"switch i64 {a}, label %{out} [ {cases} ]")


def _abi(t: Ty) -> str:
    return llty(t) if t.is_float else "i64"


def _asm_string(text: str) -> str:
    """text as an LLVM string literal's contents ('"', '\\' and control characters escaped)."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\{ord(c):02X}" for c in text)


# the flags an inline host instruction may change besides its outputs (LLVM's x86 spelling)
_ASM_CLOBBERS = "~{dirflag},~{fpsr},~{flags}"


def lower_host_insn(fn: _Fn, op: Op, h: HostInsn) -> None:
    """A host-instruction helper inline (hqemu.ir.HostInsn): `sideeffect`, so LLVM neither
    drops nor merges nor moves it (the flags it raises are an effect), and its env output is
    its env input: the flags stay in the host's status register (docs/ir.md)."""
    a, b, env = op.ins
    r, env2 = op.outs
    asm = _asm_string(h.asm)
    gi = f"i{h.bits}"
    if h.form == "flags":
        va = fn.tmp(f"bitcast {fn.typed(a)} to <2 x i64>")
        vb = fn.tmp(f"bitcast {fn.typed(b)} to <2 x i64>")
        res = fn.tmp(f'call {{i8, i8, i8}} asm sideeffect "{asm}", "=r,=r,=r,x,x,{_ASM_CLOBBERS}"'
                     f"(<2 x i64> {va}, <2 x i64> {vb})")
        bits = []
        for i, shift in enumerate((0, 2, 6)):  # CF, PF, ZF at their rflags positions
            x = fn.tmp(f"extractvalue {{i8, i8, i8}} {res}, {i}")
            w = fn.tmp(f"zext i8 {x} to i128")
            bits.append(fn.tmp(f"shl i128 {w}, {shift}") if shift else w)
        fn.inst(r, f"or i128 {fn.tmp(f'or i128 {bits[0]}, {bits[1]}')}, {bits[2]}")
    elif h.form == "gpr":
        vb = fn.tmp(f"bitcast {fn.typed(b)} to <2 x i64>")
        x = fn.tmp(f'call {gi} asm sideeffect "{asm}", "=r,x,{_ASM_CLOBBERS}"(<2 x i64> {vb})')
        fn.inst(r, f"zext {gi} {x} to i128")
    elif h.form in ("vec", "int"):
        va = fn.tmp(f"bitcast {fn.typed(a)} to <2 x i64>")
        if h.form == "vec":
            src, cons = f"<2 x i64> {fn.tmp(f'bitcast {fn.typed(b)} to <2 x i64>')}", "x"
        else:
            src, cons = f"{gi} {fn.tmp(f'trunc {fn.typed(b)} to {gi}')}", "r"
        v = fn.tmp(f'call <2 x i64> asm sideeffect "{asm}", "=x,0,{cons},{_ASM_CLOBBERS}"'
                   f"(<2 x i64> {va}, {src})")
        fn.inst(r, f"bitcast <2 x i64> {v} to i128")
    else:
        raise LowerError(f"host instruction of {op.consts[0]}: unknown form {h.form!r}")
    # the high half (the exceptions the guest unmasked that were raised) is zero: they trap
    fn.inst(env2, f"and {fn.typed(env)}, 4294967295")


def lower_call(fn: _Fn, op: Op) -> None:
    name = op.consts[0]
    sig = HELPERS.get(name)
    h = host_insn_of(name, fn.unit.host_insns)
    if h is not None:
        lower_host_insn(fn, op, h)
        return
    # a helper unknown in this process (a worker imports no frontend) may touch anything
    reads = sig is None or sig.reads_state or sig.writes_state
    writes = sig is None or sig.writes_state
    if reads and fn.written:
        fn.store_back(fn.body)
    args, params = [], []
    for v in op.ins:
        if v.ty == I128:
            lo = fn.tmp(f"trunc {fn.typed(v)} to i64")
            sh = fn.tmp(f"lshr {fn.typed(v)}, 64")
            hi = fn.tmp(f"trunc i128 {sh} to i64")
            args += [f"i64 {lo}", f"i64 {hi}"]
            params += ["i64", "i64"]
        elif v.ty.is_float or v.ty == I64:
            args.append(fn.typed(v))
            params.append(_abi(v.ty))
        else:
            args.append(f"i64 {fn.tmp(f'zext {fn.typed(v)} to i64')}")
            params.append("i64")
    outs = op.outs
    direct = len(outs) == 1 and outs[0].ty != I128
    ret = _abi(outs[0].ty) if direct else "void"
    outbuf = None
    if outs and not direct:
        slots = sum(2 if t.ty == I128 else 1 for t in outs)
        outbuf = fn.fresh("out")
        fn.entry_extra.append(f"  {outbuf} = alloca [{slots} x i64], align 16")
        args.insert(0, f"ptr {outbuf}")
        params.insert(0, "ptr")
    sym = _ident(HELPER_PREFIX + name)
    plist = "".join(", " + p for p in params)
    fn.decls.setdefault(sym, f"declare {ret} @{sym}(ptr, ptr, ptr{plist}) nounwind")
    call = f"call {ret} @{sym}(ptr %state, ptr %membase, ptr %exitinfo{''.join(', ' + a for a in args)})"
    # a host fault while Python runs the helper must reach Python's own handling, not the guest's
    in_helper = fn.info("in_helper")
    fn.emit(f"store volatile i64 1, ptr {in_helper}, align 8")
    r = fn.tmp(call) if direct else None
    if r is None:
        fn.emit(call)
    fn.emit(f"store volatile i64 0, ptr {in_helper}, align 8")
    if r is not None:
        t = outs[0].ty
        if t.is_float or t == I64:
            fn.define(outs[0], r)
        else:
            fn.inst(outs[0], f"trunc i64 {r} to {llty(t)}")
    if outbuf is not None:
        slot = 0
        for t in outs:
            p = fn.tmp(f"getelementptr i64, ptr {outbuf}, i64 {slot}")
            if t.ty == I128:
                fn.inst(t, f"load i128, ptr {p}, align 8")
                slot += 2
                continue
            w = fn.tmp(f"load i64, ptr {p}, align 8")
            slot += 1
            if t.ty == I64:
                fn.define(t, w)
            elif t.ty == F64:
                fn.inst(t, f"bitcast i64 {w} to double")
            elif t.ty == F32:
                lo = fn.tmp(f"trunc i64 {w} to i32")
                fn.inst(t, f"bitcast i32 {lo} to float")
            else:
                fn.inst(t, f"trunc i64 {w} to {llty(t.ty)}")
    # a helper that raised: return at once with the pc of the guest instruction that called it
    e = fn.tmp("load i64, ptr %exitinfo, align 8")
    bad = fn.tmp(f"icmp eq i64 {e}, {_int_lit(ABORT, 64)}")
    cont, abort = fn.label("c"), fn.label("abort")
    fn.emit(f"br i1 {bad}, label %{abort}, label %{cont}, !prof !0")
    fn.tail += [f"{abort}:", f"  ret i64 {_int_lit(fn.cur_pc, 64)}"]
    fn.start(cont)
    if writes:
        fn.reload()


LOWER: dict[str, Callable[[_Fn, Op], None]] = {
    name: globals()["lower_" + name] for name in OPS if "lower_" + name in globals()}
assert set(LOWER) == set(OPS), f"lower.py: ops without a lowering: {sorted(set(OPS) - set(LOWER))}"


def lower_unit(unit: Unit, name: str, fault_pcs: bool = True, chain: bool = True) -> str:
    """The LLVM IR text (a module with one function @name) of a unit. fault_pcs=False leaves
    out the INSN_PC stores: faults then report the pc of an earlier instruction, but loops
    with memory accesses can be vectorized (LLVM does not vectorize volatile accesses).
    chain=False: every jump exit returns to the caller (the dispatcher looks the pc up)."""
    if not unit.blocks:
        raise LowerError("unit has no blocks")
    if not _IDENT.match(name):
        raise LowerError(f"bad function name {name!r}")
    fn = _Fn(unit, name)
    fn.fault_pcs = fault_pcs
    fn.chain = chain
    for i, b in enumerate(unit.blocks):
        fn.vals = {}
        fn.cur_pc = b.pc
        fn.start(f"b{i}")
        n_insns = sum(1 for op in b.ops if op.name == "insn")
        if n_insns:  # the running total lives in a local (a register once promoted): plain stores
            c = fn.tmp("load i64, ptr %icount, align 8")
            c2 = fn.tmp(f"add i64 {c}, {n_insns}")
            fn.emit(f"store i64 {c2}, ptr %icount, align 8")
            fn.emit(f"store i64 {c2}, ptr {fn.info('icount')}, align 8")
        ended = False
        for k, op in enumerate(b.ops):
            if ended:
                raise LowerError(f"block 0x{b.pc:x} op {k} `{op.name}`: op after a terminator")
            try:
                LOWER[op.name](fn, op)
            except LowerError:
                raise
            except Exception as e:
                raise LowerError(f"block 0x{b.pc:x} op {k} `{op.name}`: {type(e).__name__}: {e}") from e
            ended = bool(op.d.flags & F.TERM)
        if not ended:
            raise LowerError(f"block 0x{b.pc:x} does not end with exit or exit_ind")
    return _module(fn)


def _module(fn: _Fn) -> str:
    entry = ["entry:"]
    for g in fn.globals:
        t, sfx = llty(g.ty), fn.gsfx[g.name]
        entry.append(f"  %s{sfx} = getelementptr inbounds i8, ptr %state, i64 {g.offset}")
        entry.append(f"  %g{sfx} = alloca {t}, align {16 if g.ty == I128 else 8}")
        entry.append(f"  %e{sfx} = load {t}, ptr %s{sfx}, align 8")
        entry.append(f"  store {t} %e{sfx}, ptr %g{sfx}")
    for tid in sorted(fn.spilled):
        entry.append(f"  %a.t{tid} = alloca {llty(fn.temp_ty[tid])}")
    entry += fn.entry_extra
    icount = fn.info("icount")
    for slot in sorted(fn.info_slots):
        entry.append(f"  %x.{slot} = getelementptr inbounds i8, ptr %exitinfo, i64 {_INFO_OFFSETS[slot]}")
    # the record's count, kept in a register and stored back at every block entered: adding
    # to the record in memory made a loop-carried chain of read-modify-writes (~5 cycles a block)
    entry += ["  %icount = alloca i64, align 8", f"  %icount.0 = load i64, ptr {icount}, align 8",
              "  store i64 %icount.0, ptr %icount, align 8"]
    if fn.has_calls:  # a stale ABORT from an earlier run must not look like a helper's
        entry.append("  store i64 0, ptr %exitinfo, align 8")
    entry.append("  br label %b0")
    lines = [f"; hqemu unit {fn.unit.isa} 0x{fn.unit.pc:x}, {len(fn.unit.blocks)} block(s)"]
    lines += sorted(fn.decls.values())
    lines.append(f"define i64 @{fn.name}({ENTRY_ARGS}) nounwind {{")
    lines += entry + fn.body + fn.tail
    lines.append("}")
    if fn.has_calls:
        lines.append("!0 = !{!\"branch_weights\", i32 1, i32 1048575}")
    return "\n".join(lines) + "\n"


__all__ = ["ABORT", "ENTRY_ARGS", "EXITINFO_FAULT_ADDR", "EXITINFO_ICOUNT", "EXITINFO_INSN_PC",
           "EXITINFO_IN_HELPER", "EXITINFO_KIND", "EXITINFO_SIZE", "HELPER_PREFIX", "LOWER", "LowerError",
           "literal", "llty", "lower_unit"]  # the EXITINFO_* names are workers.abi's, kept here for callers
