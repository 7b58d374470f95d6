"""The quick tier's code generator: one IR unit becomes one generated Python function.

    >>> blk = compile_unit(unit, env)     # a QuickBlock
    >>> next_pc = blk.fn()                # runs the guest block against env.state / env.mem

Design (FACTS.md: generated Python peaks at 17-34 M guest instr/s, so every bytecode counts):
- temps are Python locals `t<id>`; constants are inlined; moves, widenings that change no bits
  and the second `get` of a global are folded away (SSA: a name never changes once assigned),
  and a pure op computed twice is computed once (value numbering);
- a global is read from S into a local on its first `get`; `put` only changes which atom is
  the global's current value and marks it dirty; dirty globals are stored to S only where
  state must be exact: in the body of a taken exit_if, before the final exit, and before a
  helper that reads or writes state (after one that writes state, globals are re-read);
- pure ops whose results are never used are not generated (a flag overwritten before any exit
  costs nothing), and a pure expression used once is folded into its use;
- integer results are masked only where they may not fit: bounds on bit lengths make 32-bit
  trunc/zext chains free, and a result only used modulo 2**w by other modular ops stays
  unreduced until one needs it exact; signed compares flip the sign bit instead of
  sign-extending; a 0/1 flag tested against 0 is the flag or its `not`;
- memory goes through memoryview + struct on the fast path, guarded by the per-page tables
  FR/FW, and through the checked GuestMemory.load/store otherwise;
- everything the function uses is bound as a default argument, i.e. a local (LOAD_FAST);
- a one-block unit that jumps back to its own head (a rotated loop) becomes a `while` loop
  inside the function, its globals kept in locals across iterations and stored only when the
  loop is left (after at most `loop_iters` back edges, or at once after a store took the slow
  path, which is where writes to translated code are seen).

Modules: analysis.py (value numbering, liveness, demanded bits, over the IR), emitter.py (the
state of one function being written), templates.py (one template per op, by name, covering
OPS exactly), rt.py (what generated code calls), block.py (the result).
"""

from __future__ import annotations

import builtins
import re
import struct
from types import CodeType, FunctionType

from hqemu.ir import IMPLS, Unit

from .analysis import TERM, demands, fallthrough, loopable, needed, value_number
from .block import CACHED_SOURCE, QuickBlock
from .emitter import _ENV_NAMES, _RT_NAMES, SIGNALS, Emitter
from .templates import TEMPLATES

DEFAULT_LOOP_ITERS = 1024  # back edges a self-looping block runs before returning to the engine
# Code-shape choices, measured with bench/quick_codegen.py (which can flip them for an A/B run)
PACK_MIN_RUN = 3  # adjacent state slots stored by one struct.pack_into (0: item stores only)
INLINE_SINGLE_USE = True  # fold pure expressions into their uses (see _fold_expressions)


_TEMP_RE = re.compile(r"\bt\d+\b")


def _fold_expressions(g: Emitter) -> None:
    """Rewrite the lines of pure ops (safe to move later: their inputs are SSA temps, or
    loop-carried locals, which change only on a back edge, and that leaves the path):

    - drop a definition nothing reads any more (after peepholes such as not (not x));
    - in loop mode, sink a value read only on exit paths (a flag: stored when the loop is
      left, never read on the way round) into each use there: paths exclude each other, so
      it is computed once or twice on the way out (two uses per path at most, short
      expressions only, so that text cannot grow without bound) and not at all per iteration;
    - fold an expression into its only use (saves storing and loading a local).
    """
    where: dict[str, list[int]] = {}  # temp -> lines it occurs on (once per occurrence)
    for j, text in enumerate(g.lines):
        for name in _TEMP_RE.findall(text):
            where.setdefault(name, []).append(j)
    dead: set[int] = set()

    def substitute(name: str, expr: str, j: int) -> None:
        text = g.lines[j]
        m = next(m for m in _TEMP_RE.finditer(text) if m.group() == name)
        g.lines[j] = f"{text[:m.start()]}({expr}){text[m.end():]}"

    def move(i: int, name: str, to: list[int]) -> None:
        """Replace the use of name on each line of `to` by the expression defined on line i."""
        expr = g.lines[i].split(" = ", 1)[1]
        for j in to:
            substitute(name, expr, j)
        dead.add(i)
        for other in _TEMP_RE.findall(expr):  # its inputs now occur where it moved
            where[other].remove(i)
            where[other].extend(to)

    for i in sorted(g.pure_defs, reverse=True):  # later lines first: chains sink together
        name = g.pure_defs[i]
        uses = [j for j in where[name] if j != i]
        if not uses:
            dead.add(i)
            for other in _TEMP_RE.findall(g.lines[i]):
                if other != name:
                    where[other].remove(i)
        elif g.loop_iters and len(uses) > 1 and all(j in g.exit_path for j in uses) \
                and len(uses) <= 2 * len({g.exit_path[j] for j in uses}) and len(g.lines[i]) < 120:
            move(i, name, uses)
    for i, name in g.pure_defs.items():  # in line order, so chains fold from the inside out
        if i in dead:
            continue
        uses = [j for j in where[name] if j != i]
        if len(uses) == 1 and uses[0] > i and uses[0] not in g.no_inline:
            move(i, name, uses)
    g.lines[:] = [t for k, t in enumerate(g.lines) if k not in dead]
    g.pcs[:] = [p for k, p in enumerate(g.pcs) if k not in dead]


# --- entry points --------------------------------------------------------------------------
def generate(unit: Unit, env, loop_iters: int = 0, check_bounds: bool = False
             ) -> tuple[str, dict[str, object], list[int]]:
    """Python source of the unit's function `blk`, its default-argument bindings, and the
    guest pc of each source line (index = line number). check_bounds (for tests) asserts at
    run time every bit-length bound the generator relied on."""
    ops = value_number(list(unit.ops()))
    if not ops or ops[-1].name not in TERM:
        raise ValueError(f"unit at 0x{unit.pc:x} does not end with a terminator")
    g = Emitter(unit, env, fallthrough(unit))
    g.check_bounds = check_bounds
    g.pack_min_run = PACK_MIN_RUN
    g.pc = next((op.consts[0] for op in ops if op.name == "insn"), unit.pc)
    first_pc = g.pc
    if loop_iters > 0 and loopable(unit, ops):
        g.start_loop(ops, loop_iters)
    keep = needed(ops, g.fallthrough)
    g.demand = demands(ops, keep)
    for op, k in zip(ops, keep):
        if k:
            TEMPLATES[op.name](g, op)
    if INLINE_SINGLE_USE:
        _fold_expressions(g)
    header = "def blk(" + ", ".join(f"{n}={n}" for n in g.binds) + "):"
    source = "\n".join([header, *g.lines]) + "\n"
    return source, g.binds, [first_pc, first_pc, *g.pcs]  # line 1 is the header


def loop_iters_for(env) -> int:
    """The loop_iters compile_unit uses for env by default (a code cache key part)."""
    log = getattr(env, "log", None)
    if log is not None and log.on("exec"):
        return 0
    return getattr(getattr(env, "params", None), "quick_loop_iters", DEFAULT_LOOP_ITERS)


def compile_unit(unit: Unit, env, loop_iters: int | None = None, check_bounds: bool = False) -> QuickBlock:
    """Compile an IR unit into a QuickBlock whose fn() runs it and returns the next guest pc.

    loop_iters: how many back edges a block that jumps to its own head may take inside one
    call (0: none, every call runs the block once, e.g. for trace recording); None: 0 when
    env.log shows every block executed (-d exec), else env.params.quick_loop_iters (1024 for
    an env without params). env.do_syscall is bound now: set it before compiling.
    check_bounds (for tests) asserts at run time every bound the generator relied on.
    """
    if loop_iters is None:
        loop_iters = loop_iters_for(env)
    source, binds, line_pcs = generate(unit, env, loop_iters, check_bounds)
    insns = [op for op in unit.ops() if op.name == "insn"]
    ft = fallthrough(unit)
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


# --- the persistent code cache's side: a block as data, and back ------------------------------
Recipe = dict[str, tuple]  # default-argument name -> how to recreate its object (see bind_recipe)
_PK_RE = re.compile(r"PK(\d+)$")
_K_RE = re.compile(r"K\d+$")


def bind_recipe(blk: QuickBlock) -> Recipe | None:
    """How to recreate blk.fn's default arguments for another env, from their names and values;
    None if one of them is not known to be recreatable (the block is then not cached).

    Env objects are never stored: ("env",) names an _ENV_NAMES entry; ("rt",) an _RT_NAMES one;
    ("h", name) a registered helper; ("pk", n) a pack_into of n words; ("f", bits) a float.
    """
    fn = blk.fn
    code = getattr(fn, "__code__", None)
    if code is None or code.co_kwonlyargcount or fn.__kwdefaults__:
        return None
    names = code.co_varnames[:code.co_argcount]
    values = fn.__defaults__ or ()
    if len(values) != len(names):
        return None
    helpers = {id(impl): name for name, impl in IMPLS.items()}
    out: Recipe = {}
    for name, obj in zip(names, values):
        if name in _RT_NAMES and obj is _RT_NAMES[name]:
            out[name] = ("rt",)
        elif name in _ENV_NAMES:
            out[name] = ("env",)
        elif _PK_RE.match(name) and getattr(getattr(obj, "__self__", None), "format", None) == \
                f"<{_PK_RE.match(name).group(1)}Q":
            out[name] = ("pk", int(_PK_RE.match(name).group(1)))
        elif _K_RE.match(name) and type(obj) is float:
            out[name] = ("f", struct.unpack("<Q", struct.pack("<d", obj))[0])
        elif name.startswith("H_") and id(obj) in helpers:
            out[name] = ("h", helpers[id(obj)])
        else:
            return None
    return out


def _rebind(name: str, how: tuple, env) -> object:
    kind = how[0]
    if kind == "rt":
        return _RT_NAMES[name]
    if kind == "env":
        return _ENV_NAMES[name](env)
    if kind == "pk":
        return struct.Struct(f"<{how[1]}Q").pack_into
    if kind == "f":
        return struct.unpack("<d", struct.pack("<Q", how[1]))[0]
    if kind == "h":
        return IMPLS[how[1]]
    raise ValueError(f"unknown bind recipe {how!r} for {name}")


def rebuild_block(pc: int, code: CodeType, recipe: Recipe, n_insns: int, size: int,
                  exits: tuple[int, ...], line_pcs: tuple[int, ...], unit_text: str,
                  final: tuple[str, tuple] | None, env) -> QuickBlock:
    """The QuickBlock compile_unit made, from blk.fn.__code__, bind_recipe(blk) and its facts:
    no lifting, optimizing, generating or compile(). KeyError/ValueError on a recipe that does
    not fit this hqemu (the caller treats it as a miss)."""
    names = code.co_varnames[:code.co_argcount]
    blk = QuickBlock(pc, None, n_insns, size, exits, CACHED_SOURCE, None, line_pcs,
                     unit_text=unit_text, layout=env.fe.layout, final=final)
    binds = {name: blk if name == "BLK" else _rebind(name, recipe[name], env) for name in names}
    ns = {"__builtins__": builtins, **binds}
    blk.fn = FunctionType(code, ns, "blk", tuple(binds[n] for n in names))
    return blk


__all__ = ["TEMPLATES", "SIGNALS", "compile_unit", "generate", "DEFAULT_LOOP_ITERS", "bind_recipe",
           "rebuild_block", "Recipe", "loop_iters_for"]
