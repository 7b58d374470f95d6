"""Builder: the API frontends use to emit IR into a Unit's current block.

    >>> b = Builder(unit, unit.new_block(pc))
    >>> b.insn(pc, 3)
    >>> rax = b.get("rax")                      # I64 temp
    >>> r = b.add(rax, b.c(1, I64))
    >>> b.put("rax", r)
    >>> b.exit("jump", pc + 3)

Binary ops take their type from the first input; constants are made with c(value, ty) or
passed as plain ints (they then take the type of the other operand).
"""

from __future__ import annotations

from .core import I1, Block, Const, Op, Temp, Ty, Unit, Value
from .helpers import HELPERS


class Builder:
    def __init__(self, unit: Unit, block: Block):
        self.unit = unit
        self.block = block

    # --- basics -------------------------------------------------------------------------
    @staticmethod
    def c(value: int | float, ty: Ty) -> Const:
        if ty.is_float:
            return Const(float(value), ty)
        return Const(int(value) & ty.mask, ty)

    def emit(self, name: str, out_tys: tuple[Ty, ...], ins: tuple[Value, ...], consts: tuple = ()) -> Op:
        outs = tuple(self.unit.temp(t) for t in out_tys)
        op = Op(name, outs, ins, consts)
        self.block.ops.append(op)
        return op

    def _v(self, x: Value | int, ty: Ty) -> Value:
        return x if isinstance(x, (Temp, Const)) else self.c(x, ty)

    def _bin(self, name: str, a: Value, b: Value | int) -> Temp:
        b = self._v(b, a.ty)
        return self.emit(name, (a.ty,), (a, b)).outs[0]

    def _un(self, name: str, a: Value, ty: Ty | None = None, consts: tuple = ()) -> Temp:
        return self.emit(name, (ty or a.ty,), (a,), consts).outs[0]

    # --- integer ------------------------------------------------------------------------
    def mov(self, a): return self._un("mov", a)
    def add(self, a, b): return self._bin("add", a, b)
    def sub(self, a, b): return self._bin("sub", a, b)
    def mul(self, a, b): return self._bin("mul", a, b)
    def and_(self, a, b): return self._bin("and", a, b)
    def or_(self, a, b): return self._bin("or", a, b)
    def xor(self, a, b): return self._bin("xor", a, b)
    def shl(self, a, b): return self._bin("shl", a, b)
    def shr(self, a, b): return self._bin("shr", a, b)
    def sar(self, a, b): return self._bin("sar", a, b)
    def rotl(self, a, b): return self._bin("rotl", a, b)
    def rotr(self, a, b): return self._bin("rotr", a, b)
    def udiv(self, a, b): return self._bin("udiv", a, b)
    def urem(self, a, b): return self._bin("urem", a, b)
    def sdiv(self, a, b): return self._bin("sdiv", a, b)
    def srem(self, a, b): return self._bin("srem", a, b)
    def neg(self, a): return self._un("neg", a)
    def not_(self, a): return self._un("not", a)
    def clz(self, a): return self._un("clz", a)
    def ctz(self, a): return self._un("ctz", a)
    def popcnt(self, a): return self._un("popcnt", a)
    def bswap(self, a): return self._un("bswap", a)
    def parity(self, a): return self._un("parity", a, I1)
    def zext(self, a, ty: Ty): return a if a.ty == ty else self._un("zext", a, ty)
    def sext(self, a, ty: Ty): return a if a.ty == ty else self._un("sext", a, ty)
    def trunc(self, a, ty: Ty): return a if a.ty == ty else self._un("trunc", a, ty)
    def bitcast(self, a, ty: Ty): return self._un("bitcast", a, ty)

    def setcond(self, cond: str, a, b) -> Temp:
        b = self._v(b, a.ty)
        return self.emit("setcond", (I1,), (a, b), (cond,)).outs[0]

    def select(self, c, a, b) -> Temp:
        ty = a.ty if isinstance(a, (Temp, Const)) else b.ty
        return self.emit("select", (ty,), (c, self._v(a, ty), self._v(b, ty))).outs[0]

    # --- float --------------------------------------------------------------------------
    def fadd(self, a, b): return self._bin("fadd", a, b)
    def fsub(self, a, b): return self._bin("fsub", a, b)
    def fmul(self, a, b): return self._bin("fmul", a, b)
    def fdiv(self, a, b): return self._bin("fdiv", a, b)
    def fsqrt(self, a): return self._un("fsqrt", a)
    def fneg(self, a): return self._un("fneg", a)
    def fabs(self, a): return self._un("fabs", a)
    def fext(self, a, ty: Ty): return self._un("fext", a, ty)
    def ftrunc(self, a, ty: Ty): return self._un("ftrunc", a, ty)
    def sitofp(self, a, ty: Ty): return self._un("sitofp", a, ty)
    def uitofp(self, a, ty: Ty): return self._un("uitofp", a, ty)
    def fptosi(self, a, ty: Ty): return self._un("fptosi", a, ty)
    def fround(self, a, mode: str): return self._un("fround", a, None, (mode,))

    def fcmp(self, cond: str, a, b) -> Temp:
        return self.emit("fcmp", (I1,), (a, b), (cond,)).outs[0]

    # --- lanes --------------------------------------------------------------------------
    def vop(self, name: str, lane: int, *ins, extra: tuple = (), out: Ty | None = None) -> Temp:
        return self.emit(name, (out or ins[0].ty,), tuple(ins), (lane, *extra)).outs[0]

    # --- state, memory, control -----------------------------------------------------------
    def get(self, reg: str) -> Temp:
        g = self.unit.use_global(reg)
        return self.emit("get", (g.ty,), (), (reg,)).outs[0]

    def put(self, reg: str, v: Value | int) -> None:
        g = self.unit.use_global(reg)
        self.emit("put", (), (self._v(v, g.ty),), (reg,))

    def ld(self, addr: Value, ty: Ty) -> Temp:
        return self.emit("ld", (ty,), (addr,)).outs[0]

    def st(self, addr: Value, v: Value) -> None:
        self.emit("st", (), (addr, v))

    def insn(self, pc: int, length: int) -> None:
        self.emit("insn", (), (), (pc, length))

    def exit_if(self, c: Value, kind: str, pc: int) -> None:
        self.emit("exit_if", (), (c,), (kind, pc))

    def exit(self, kind: str, pc: int) -> None:
        self.emit("exit", (), (), (kind, pc))

    def exit_ind(self, target: Value) -> None:
        self.emit("exit_ind", (), (target,))

    def call(self, helper: str, *args: Value) -> tuple[Temp, ...]:
        sig = HELPERS[helper]
        return self.emit("call", sig.rets, tuple(args), (helper,)).outs
