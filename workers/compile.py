"""Compile LLVM IR text to a relocatable object with llvmlite: the worker side of the trace tier.

    >>> co = compile_ir_unit(format_unit(unit), "trace_401000", opt="cheap")
    >>> co.obj, co.entry, co.stats      # ELF bytes for hqemu.native.loader, "trace_401000",
    ...                                 # seconds per stage: lower, parse, optimize, codegen

Optimization levels (OPT_LEVELS): "none" (no IR pass, fastest codegen), "cheap" (SROA, InstCombine,
SimplifyCFG, DSE: promotes the guest registers and cleans up; about 1.5 ms), and LLVM's
own O1/O2/O3 module pipelines. A module pass manager runs once and is then discarded: running
one twice aborts the process (FACTS.md). The target machines are made once per process for
the host CPU, so the main process on the same machine can load the objects; target_key()
names what they were compiled for (a cache key).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import cache

import llvmlite.binding as llvm

from hqemu.ir.text import parse_unit

from .lower import lower_unit

OPT_LEVELS = ("none", "cheap", "O1", "O2", "O3")
# the clock of CompiledObject.stats; a benchmark on a shared machine may set time.process_time
CLOCK = time.perf_counter
# backend optimization per level: codegen at opt 0 is ~10x cheaper than at 2 (FACTS.md)
CODEGEN_OPT = {"none": 0, "cheap": 1, "O1": 1, "O2": 2, "O3": 3}


@dataclass
class CompiledObject:
    obj: bytes  # an ELF relocatable object holding the function `entry`
    entry: str  # the symbol to call (see workers.lower for its signature)
    stats: dict[str, float] = field(default_factory=dict)  # seconds: lower, parse, optimize, codegen
    ir: str | None = None  # the optimized LLVM IR, when asked for (tests, benchmarks)


@cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    # Loop strength reduction took two thirds of codegen on a 16-block trace (its address
    # arithmetic gives it many induction variables) for no measurable speed: off, process-wide
    llvm.set_option("hqemu", "-disable-lsr")


@cache
def target_key() -> tuple[str, str, str]:
    """(triple, cpu, features) the objects of this process are compiled for."""
    _init()
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


@cache
def target_machine(codegen_opt: int) -> llvm.TargetMachine:
    triple, cpu, features = target_key()
    # the large code model: helpers and libgcc routines may lie anywhere in the loading process
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=cpu, features=features, opt=codegen_opt, reloc="default", codemodel="jitdefault")


def optimize(module: llvm.ModuleRef, opt: str) -> None:
    """Run the pipeline of level opt on module, with a pass manager made for it alone."""
    if opt == "none":
        return
    tm = target_machine(CODEGEN_OPT[opt])
    pto = llvm.create_pipeline_tuning_options(speed_level=1 if opt == "cheap" else int(opt[1]))
    if opt == "O3":
        pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    if opt == "cheap":
        pm = llvm.create_new_module_pass_manager()
        pm.add_sroa_pass()
        pm.add_instruction_combine_pass()
        pm.add_simplify_cfg_pass()
        # no NewGVN: llvmlite's LLVM has assertions on, and NewGVN's "processed the same value
        # a lot" assertion aborted the process on a trace of bench/kernels/calls.c (the
        # classic GVN is not exposed); bench/kernels ran as fast without it
        pm.add_dead_store_elimination_pass()
    else:
        pm = pb.getModulePassManager()
    pm.run(module, pb)


_DEFINE = re.compile(r"^define [^@]*@\"?([\w$.]+)\"?\(", re.M)


def compile_unit_text(ir_text: str, opt: str = "cheap", keep_ir: bool = False) -> CompiledObject:
    """Parse, optimize and compile the LLVM IR of one lowered unit (its one defined function)."""
    if opt not in OPT_LEVELS:
        raise ValueError(f"opt must be one of {OPT_LEVELS}, not {opt!r}")
    m = _DEFINE.search(ir_text)
    if m is None:
        raise ValueError("the IR text defines no function")
    _init()
    t0 = CLOCK()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    t1 = CLOCK()
    optimize(module, opt)
    t2 = CLOCK()
    ir = str(module) if keep_ir else None  # before codegen, whose IR passes rewrite the module
    t3 = CLOCK()
    obj = target_machine(CODEGEN_OPT[opt]).emit_object(module)
    t4 = CLOCK()
    stats = {"lower": 0.0, "parse": t1 - t0, "optimize": t2 - t1, "codegen": t4 - t3}
    return CompiledObject(obj, m.group(1), stats, ir)


def compile_ir_unit(unit_text: str, name: str, opt: str = "cheap", keep_ir: bool = False) -> CompiledObject:
    """hqemu IR text (hqemu.ir.text.format_unit) in, an object defining `name` out."""
    t0 = CLOCK()
    ir_text = lower_unit(parse_unit(unit_text), name)
    lower = CLOCK() - t0
    co = compile_unit_text(ir_text, opt, keep_ir)
    co.stats["lower"] = lower
    return co


# --- inspecting optimized IR -------------------------------------------------------------------
_LABEL = re.compile(r"^([\w$.-]+):")
_SUCC = re.compile(r"label %([\w$.-]+)")
_DEF = re.compile(r"^\s*(%[\w$.-]+) = (.*)$")
_PTR = re.compile(r"ptr (%[\w$.-]+)")


def loop_state_accesses(ir_text: str, fn: str | None = None) -> list[str]:
    """The loads and stores through %state inside a cycle of function fn's CFG (the first
    defined function by default): none means the guest registers of its loops were promoted."""
    body = _function_body(ir_text, fn)
    blocks: dict[str, list[str]] = {}
    cur = "entry"
    for line in body:
        m = _LABEL.match(line)
        if m:
            cur = m.group(1)
            continue
        blocks.setdefault(cur, []).append(line)
    succ = {b: {s for ln in lines for s in _SUCC.findall(ln)} for b, lines in blocks.items()}
    state = {"%state"}
    for lines in blocks.values():
        for ln in lines:
            m = _DEF.match(ln)
            if m and "getelementptr" in m.group(2) and any(p in state for p in _PTR.findall(m.group(2))):
                state.add(m.group(1))
    bad = []
    for b, lines in blocks.items():
        if b not in _reachable(succ, succ.get(b, set())):
            continue  # not on a cycle
        for ln in lines:
            words = ln.split()
            is_mem = "load" in words[2:3] or words[:1] == ["store"]
            if is_mem and any(p in state for p in _PTR.findall(ln)):
                bad.append(f"{b}: {ln.strip()}")
    return bad


def _function_body(ir_text: str, fn: str | None) -> list[str]:
    lines = ir_text.splitlines()
    for i, ln in enumerate(lines):
        m = _DEFINE.match(ln)
        if m and (fn is None or m.group(1) == fn):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("}"))
            return lines[i + 1:end]
    raise ValueError(f"no function {fn!r} in the IR text")


def _reachable(succ: dict[str, set[str]], start: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        b = todo.pop()
        if b not in seen:
            seen.add(b)
            todo += succ.get(b, ())
    return seen
