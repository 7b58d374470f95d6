"""The IR op table: every op of hqemu's IR is declared here, once.

The verifier, the text printer/parser, the reference interpreter, the quick tier's code
templates and (later) the LLVM lowering are all derived from or checked against OPS.

    >>> OPS["add"].n_in, OPS["add"].consts
    (2, ())

Values are typed (see core.TYPES). Ops are width-generic: `add` works on any integer type,
its width is the type of its output. Integer values are unsigned bit patterns; signedness
lives in the op (sar, sdiv, setcond lt vs ltu, sext).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto


class F(Flag):
    """Properties of an op. An op with none of the effect flags is pure (DCE may drop it)."""

    NONE = 0
    MEM_R = auto()  # reads guest memory (may fault)
    MEM_W = auto()  # writes guest memory (may fault)
    STATE_R = auto()  # reads CPU state (a global)
    STATE_W = auto()  # writes CPU state (a global)
    EXIT = auto()  # may leave the unit (side exit or terminator)
    TERM = auto()  # ends an IR block: nothing may follow it in the block
    COMM = auto()  # commutative in its two inputs
    MARK = auto()  # a marker with no runtime effect (kept by DCE)
    CALL = auto()  # calls a registered helper; effects are the helper's own


@dataclass(frozen=True)
class OpDef:
    name: str
    n_out: int  # number of output temps
    n_in: int  # number of value inputs (temps or typed constants); -1 = variadic (call)
    consts: tuple[str, ...]  # names of the constant attributes, in order
    flags: F
    doc: str

    @property
    def pure(self) -> bool:
        return not (self.flags & (F.MEM_R | F.MEM_W | F.STATE_W | F.EXIT | F.MARK | F.CALL))


def _d(name: str, n_out: int, n_in: int, consts: str, flags: F, doc: str) -> OpDef:
    return OpDef(name, n_out, n_in, tuple(consts.split()) if consts else (), flags, doc)


N, C = F.NONE, F.COMM
# Integer conditions for setcond / select / exit_if (unsigned: ltu..., signed: lt...).
CONDS = ("eq", "ne", "ltu", "leu", "gtu", "geu", "lt", "le", "gt", "ge")
# Float conditions for fcmp: o* are ordered (false if either is NaN), u* unordered-or.
FCONDS = ("oeq", "one", "olt", "ole", "ogt", "oge", "ord", "ueq", "une", "ult", "ule", "ugt", "uge", "uno")
# How a unit is left: a jump to guest code, a system call, or a guest signal.
EXIT_KINDS = ("jump", "syscall", "sigill", "sigsegv", "sigfpe", "sigtrap", "sigbus")

_TABLE = [
    # --- moves and constants ------------------------------------------------------------
    _d("mov", 1, 1, "", N, "out = a (same type)"),
    # --- integer arithmetic (result type = output type = input types) -------------------
    _d("add", 1, 2, "", C, "out = a + b modulo 2**w"),
    _d("sub", 1, 2, "", N, "out = a - b modulo 2**w"),
    _d("mul", 1, 2, "", C, "out = a * b modulo 2**w"),
    _d("neg", 1, 1, "", N, "out = -a modulo 2**w"),
    _d("and", 1, 2, "", C, "out = a & b"),
    _d("or", 1, 2, "", C, "out = a | b"),
    _d("xor", 1, 2, "", C, "out = a ^ b"),
    _d("not", 1, 1, "", N, "out = ~a"),
    _d("shl", 1, 2, "", N, "out = a << b; b must be < w (else undefined)"),
    _d("shr", 1, 2, "", N, "out = a >> b, logical; b must be < w"),
    _d("sar", 1, 2, "", N, "out = a >> b, arithmetic; b must be < w"),
    _d("rotl", 1, 2, "", N, "rotate left by b mod w"),
    _d("rotr", 1, 2, "", N, "rotate right by b mod w"),
    _d("udiv", 1, 2, "", N, "unsigned a / b; b must be nonzero (the frontend guards)"),
    _d("urem", 1, 2, "", N, "unsigned a % b; b must be nonzero"),
    _d("sdiv", 1, 2, "", N, "signed a / b truncated toward zero; b != 0, no overflow"),
    _d("srem", 1, 2, "", N, "signed remainder, sign of a; b != 0, no overflow"),
    _d("clz", 1, 1, "", N, "count leading zeros; w if a == 0"),
    _d("ctz", 1, 1, "", N, "count trailing zeros; w if a == 0"),
    _d("popcnt", 1, 1, "", N, "number of set bits"),
    _d("bswap", 1, 1, "", N, "reverse the bytes of a (w a multiple of 16)"),
    _d("parity", 1, 1, "", N, "i1: 1 if the low 8 bits of a have an even number of set bits"),
    # --- width changes (input type from the input, output type from the output) ---------
    _d("zext", 1, 1, "", N, "zero-extend a to the (wider or equal) output type"),
    _d("sext", 1, 1, "", N, "sign-extend a to the (wider or equal) output type"),
    _d("trunc", 1, 1, "", N, "keep the low bits of a in the (narrower or equal) output type"),
    _d("bitcast", 1, 1, "", N, "reinterpret bits between same-size int and float types"),
    # --- comparisons and selection --------------------------------------------------------
    _d("setcond", 1, 2, "cond", N, "i1: a <cond> b (integer; see CONDS)"),
    _d("select", 1, 3, "", N, "out = b if c (i1) else d; inputs: c, b, d"),
    # --- floating point (f32/f64; IEEE round-to-nearest-even) -----------------------------
    _d("fadd", 1, 2, "", C, "IEEE a + b"),
    _d("fsub", 1, 2, "", N, "IEEE a - b"),
    _d("fmul", 1, 2, "", C, "IEEE a * b"),
    _d("fdiv", 1, 2, "", N, "IEEE a / b"),
    _d("fsqrt", 1, 1, "", N, "IEEE square root"),
    _d("fneg", 1, 1, "", N, "flip the sign bit"),
    _d("fabs", 1, 1, "", N, "clear the sign bit"),
    _d("fcmp", 1, 2, "cond", N, "i1: a <cond> b (float; see FCONDS)"),
    _d("fext", 1, 1, "", N, "f32 -> f64, exact"),
    _d("ftrunc", 1, 1, "", N, "f64 -> f32, rounded to nearest even"),
    _d("sitofp", 1, 1, "", N, "signed integer -> float, rounded to nearest even"),
    _d("uitofp", 1, 1, "", N, "unsigned integer -> float, rounded to nearest even"),
    _d("fptosi", 1, 1, "", N, "float -> signed int, truncated; NaN/out of range: undefined"),
    _d("fround", 1, 1, "mode", N, "round to an integral float: mode = nearest|floor|ceil|trunc"),
    # --- 128-bit lane ops (SIMD registers as i128; lane = lane width in bits) -------------
    _d("vadd", 1, 2, "lane", C, "lane-wise a + b modulo 2**lane"),
    _d("vsub", 1, 2, "lane", N, "lane-wise a - b modulo 2**lane"),
    _d("vcmpeq", 1, 2, "lane", C, "lane-wise all-ones where a == b, else 0"),
    _d("vcmpgts", 1, 2, "lane", N, "lane-wise all-ones where a > b signed, else 0"),
    _d("vminu", 1, 2, "lane", C, "lane-wise unsigned minimum"),
    _d("vmaxu", 1, 2, "lane", C, "lane-wise unsigned maximum"),
    _d("vmins", 1, 2, "lane", C, "lane-wise signed minimum"),
    _d("vmaxs", 1, 2, "lane", C, "lane-wise signed maximum"),
    _d("vmsb", 1, 1, "lane", N, "i32: bit i = top bit of lane i (pmovmskb/movmskps shape)"),
    _d("vshli", 1, 1, "lane count", N, "lane-wise shift left by a constant (>= lane gives 0)"),
    _d("vshri", 1, 1, "lane count", N, "lane-wise logical shift right by a constant"),
    _d("vsari", 1, 1, "lane count", N, "lane-wise arithmetic shift right by a constant"),
    _d("vshuf", 1, 2, "lane sel", N, "lanes picked from a (0..n-1) and b (n..2n-1) by sel, a comma list"),
    # --- guest state and memory ----------------------------------------------------------
    _d("get", 1, 0, "reg", F.STATE_R, "read CPU-state global reg (its type is the output's)"),
    _d("put", 0, 1, "reg", F.STATE_W, "write CPU-state global reg"),
    _d("ld", 1, 1, "", F.MEM_R, "load the output's type from guest address a (little-endian)"),
    _d("st", 0, 2, "", F.MEM_W, "store b at guest address a (width of b's type)"),
    # --- control --------------------------------------------------------------------------
    _d("insn", 0, 0, "pc len", F.MARK, "start of a guest instruction at pc, len bytes long"),
    _d("exit_if", 0, 1, "kind pc", F.EXIT, "if c: leave the unit (kind, guest pc)"),
    _d("exit", 0, 0, "kind pc", F.EXIT | F.TERM, "leave the unit (kind, guest pc)"),
    _d("exit_ind", 0, 1, "", F.EXIT | F.TERM, "jump to the guest pc in a"),
    _d("call", -1, -1, "helper", F.CALL, "call a registered helper (see helpers.py)"),
]

OPS: dict[str, OpDef] = {d.name: d for d in _TABLE}
assert len(OPS) == len(_TABLE), "duplicate op name"
