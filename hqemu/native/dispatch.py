"""The native dispatcher: run compiled guest code from unit to unit without coming back to Python.

    >>> d = Dispatcher(env)                      # or Dispatcher(state_addr=, membase=, mem_size=)
    >>> d.install(0x401000, native().load(co.obj, co.entry))
    >>> kind, pc, fault_addr = d.run(0x401000)   # ("syscall", 0x401234, None), ...
    >>> d.returns["miss"], d.guest_insns         # counters, also added to env.stats.native_*

hqemu_dispatch, a few dozen lines of LLVM IR compiled once per process (and cached on disk
keyed by llvmlite, LLVM, host CPU and the IR text itself, as Numba keys its cache), loops:
look the guest pc up in the dispatch table, call the unit found there, continue with the pc
it returns while it exits with kind `jump`. run() enters it through hqemu_run(record, pc),
which finds the CPU state, guest memory and table in the exit record (every ctypes argument
costs about 100 ns). It returns to Python on
  a miss        the pc has no native code: run() returns ("jump", pc, None), for the quick tier;
  an exit       any other kind (syscall, sigtrap, ...): (kind, pc, None), pc as the unit set it;
  a helper      that raised (kind ABORT): run() re-raises the helper's exception;
  a fault       a guest access the host refused: ("sigsegv" or "sigbus", guest pc of the
                faulting instruction, guest address); the CPU state is imprecise (the unit's
                promoted registers are lost: as of the unit's entry or of a later exit);
                a float exception the guest unmasked: ("sigfpe", that pc, None), the same;
  interrupt()   asked from another thread: ("jump", pc, None) at the next transition (a unit
                looping inside itself is not interrupted).

Faults: hqemu_dispatch calls sigsetjmp before entering guest code; the SIGSEGV/SIGBUS/SIGFPE
handler (also in the IR below, installed by hqemu.native.faults) siglongjmps back when the
faulting thread is inside guest code (its record armed and no helper running) and otherwise
passes the signal to the previous handler, so a crash of the host or of Python still kills
the process as it would without us. Any host address counts while guest code runs: a guest
address past the reservation faults outside it (fault_in_guest_space() tells), and the guest
address reported is host address - membase (meaningless when the kernel gives no address,
as for a non-canonical one). The record the handler finds is the calling thread's own,
published with pthread_setspecific: several threads may run dispatchers, each with its own
Dispatcher (a Dispatcher is one thread's at a time, and run() is not re-entrant from a
helper), sharing one DispatchTable.

Floating point (x86-64 hosts): native code runs under the guest's SSE environment when the
record's `fenv` names the guest's MXCSR word in the CPU state (1 + its byte offset; 0: none,
as for AArch64 guests), so the host's own SSE instructions in it round as the guest asks and
raise its flags. hqemu_run saves the host MXCSR (in `host_mxcsr`), loads the guest's control
bits (DAZ, exception masks, RC, FTZ) with the flags clear, and after hqemu_dispatch returns
(after a fault too) ORs the flags raised (bits 0-5) into the guest's word and restores the
host's: Python never runs under the guest's MXCSR. Python helpers switch the same way around
the helper (hqemu_fenv_to_python / hqemu_fenv_to_guest, called by the callbacks of
hqemu/native/loader.py). With an exception unmasked, a float instruction in guest code traps:
the host SIGFPE is the guest's (kind sigfpe, the pc of the last started instruction that
touches memory, as for a SIGSEGV). The kernel runs signal handlers under a fresh MXCSR, and
siglongjmp keeps it: the handler reloads the one guest code had (from the ucontext) first,
so the flags raised before the fault, the trapping one included, still reach the guest.

The dispatch table is an open-addressed hash table of {guest pc, code address} in ctypes
memory, linear probing, EMPTY keys at 2**64-1. install() writes the code address first and the
key second, each an aligned 8-byte store (ordered on x86-64 hosts), so a dispatcher running in
another thread sees a complete entry or none. remove() turns a key into a tombstone; a run
already inside the removed code finishes that unit (MCJIT never unloads code, so it stays
valid). The table grows (and drops its tombstones) when half full, but only while no
dispatcher runs on it (the dispatcher reads the array without a lock): while one runs,
installs go on up to 3/4, then they are queued and land when the runs are over.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from hqemu.errors import HqemuError
from hqemu.ir import EXIT_KINDS
from workers.abi import (
    ABORT,
    EMPTY,
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
    slot_of,
)

from . import faults
from .loader import RUN_RECORD_WORDS, native

MIN_CAPACITY = 1 << 16
JMPBUF_BYTES = 512  # glibc's sigjmp_buf: 200 bytes on x86-64, 312 on AArch64


# --- the exit record: the units' part (workers/lower.py), then the dispatcher's --------------
class Stop(Enum):
    """Why hqemu_dispatch returned (the record's `stop` field)."""

    EXIT = 0  # a unit exited with a kind other than jump (or ABORT)
    MISS = 1  # the pc has no native code
    FAULT = 2  # a guest access faulted (the handler siglongjmp'ed back)
    INTERRUPT = 3  # interrupt() was asked
    BUSY = 4  # hqemu_run found the table being moved: nothing ran, try again


class ExitRecord(ctypes.Structure):
    """One per Dispatcher: what the units, the dispatcher and the fault handler write."""

    _fields_ = [
        ("kind", ctypes.c_uint64),  # EXIT_KINDS index of the exit taken, or ABORT
        ("insn_pc", ctypes.c_uint64),  # guest pc of the last started instruction that touches memory
        ("icount", ctypes.c_uint64),  # guest instructions entered in native code (cumulative)
        ("fault_addr", ctypes.c_uint64),  # guest address of the last fault
        ("in_helper", ctypes.c_uint64),  # 1 while a helper runs
        ("unit_pc", ctypes.c_uint64),  # guest pc of the last unit entered
        ("units", ctypes.c_uint64),  # units entered (native transitions, cumulative)
        ("request", ctypes.c_uint64),  # nonzero: return at the next transition
        ("words", ctypes.c_uint64),  # the table's array while a run is on (units chain through it)
        ("mask", ctypes.c_uint64),  # its capacity - 1
        ("ind_from", ctypes.c_uint64),  # the last indirect jump exit: its unit's entry pc,
        ("ind_to", ctypes.c_uint64),  # ... and its target
        # --- the dispatcher's fields (after the units' EXITINFO_SIZE bytes) ---
        ("stop", ctypes.c_uint64),  # Stop value of the last return
        ("armed", ctypes.c_uint64),  # 1 while the jump buffer is valid (guest code may run)
        ("membase", ctypes.c_uint64),  # host address of guest address 0, for the handler
        ("signo", ctypes.c_uint64),  # signal of the last fault
        ("host_addr", ctypes.c_uint64),  # host address of the last fault (si_addr)
        ("host_pc", ctypes.c_uint64),  # host instruction of the last fault (x86-64 hosts only)
        ("state", ctypes.c_uint64),  # hqemu_run's CPU state address
        ("table", ctypes.c_uint64),  # hqemu_run's TableHeader address
        ("jmpbuf", ctypes.c_uint8 * JMPBUF_BYTES),  # sigjmp_buf of the running hqemu_dispatch
        # the guest's SSE environment (x86-64 hosts; see "Floating point" above)
        ("fenv", ctypes.c_uint64),  # 0: none; else 1 + state offset of the guest's MXCSR word
        ("host_mxcsr", ctypes.c_uint64),  # the host MXCSR hqemu_run saved (Python's), low 32 bits
    ]


def _off(name: str) -> int:
    return getattr(ExitRecord, name).offset


assert tuple(map(_off, ("kind", "insn_pc", "icount", "fault_addr", "in_helper", "unit_pc", "units", "request",
                        "words", "mask", "ind_from", "ind_to", "stop"))) == (
    EXITINFO_KIND, EXITINFO_INSN_PC, EXITINFO_ICOUNT, EXITINFO_FAULT_ADDR, EXITINFO_IN_HELPER,
    EXITINFO_UNIT_PC, EXITINFO_UNITS, EXITINFO_REQUEST, EXITINFO_WORDS, EXITINFO_MASK, EXITINFO_IND_FROM,
    EXITINFO_IND_TO, EXITINFO_SIZE)
assert _off("jmpbuf") % 16 == 0
assert ctypes.sizeof(ExitRecord) <= 8 * RUN_RECORD_WORDS  # NativeCode.run's record holds it


class TableHeader(ctypes.Structure):
    """What hqemu_run reads to find a DispatchTable's array, and how it registers as a runner."""

    _fields_ = [
        ("runners", ctypes.c_int64),  # dispatchers inside hqemu_run on this table (atomic add/sub)
        ("moving", ctypes.c_int64),  # 1 while Python replaces the array: runners back off
        ("words", ctypes.c_uint64),  # address of the array of {key, code} pairs
        ("mask", ctypes.c_uint64),  # capacity - 1
    ]


# --- the dispatcher and fault handler, in LLVM IR -------------------------------------------
_HOST_PC_OFFSET = {"x86_64": 168}  # ucontext_t.uc_mcontext.gregs[REG_RIP]
HOST_SSE = platform.machine() == "x86_64"  # the host has MXCSR: guest SSE environments apply
_FPREGS_OFFSET = 224  # x86-64 ucontext_t.uc_mcontext.fpregs (struct _libc_fpstate *)
_FPSTATE_MXCSR = 24  # struct _libc_fpstate.mxcsr
MXCSR_FLAGS = 0x3F  # IE DE ZE OE UE PE: sticky, folded into the guest's word
MXCSR_CONTROL = 0xFFC0  # DAZ, the six masks, RC, FTZ: installed from the guest's word
# the exit kind of each signal the handler takes for the guest (the order of faults.HANDLED)
_SIGNAL_KINDS = {faults.SIGSEGV: "sigsegv", faults.SIGBUS: "sigbus", faults.SIGFPE: "sigfpe"}
assert tuple(_SIGNAL_KINDS) == faults.HANDLED


def _select_chain(var: str, sig: str, ty: str, values: list[int]) -> list[str]:
    """IR lines computing i64 %<var> = values[i] where sig (a `ty` operand) is faults.HANDLED[i]
    (values[0] for any other signal)."""
    lines, cur = [], str(values[0])
    for i, (signo, v) in enumerate(zip(faults.HANDLED[1:], values[1:], strict=True), 1):
        name = f"%{var}" if i == len(values) - 1 else f"%{var}.{i}"
        lines += [f"  %{var}.is{i} = icmp eq {ty} {sig}, {signo}",
                  f"  {name} = select i1 %{var}.is{i}, i64 {v}, i64 {cur}"]
        cur = name
    return lines


def _fenv_ir(o: dict[str, int]) -> str:
    """hqemu_fenv_to_python, hqemu_fenv_to_guest and hqemu_get_mxcsr (no-ops without SSE)."""
    if not HOST_SSE:
        return """define void @hqemu_fenv_to_python(ptr %info) nounwind {
  ret void
}

define void @hqemu_fenv_to_guest(ptr %info) nounwind {
  ret void
}

define i64 @hqemu_get_mxcsr() nounwind {
  ret i64 0
}
"""
    head = f"""entry:
  %fep = getelementptr inbounds i8, ptr %info, i64 {o['fenv']}
  %fenv = load i64, ptr %fep, align 8
  %has = icmp ne i64 %fenv, 0
  br i1 %has, label %go, label %done
go:
  %sp = getelementptr inbounds i8, ptr %info, i64 {o['state']}
  %state = load ptr, ptr %sp, align 8
  %off = sub i64 %fenv, 1
  %gp = getelementptr inbounds i8, ptr %state, i64 %off"""
    return f"""declare void @llvm.x86.sse.stmxcsr(ptr) nounwind
declare void @llvm.x86.sse.ldmxcsr(ptr) nounwind

; leaving guest code for Python (the end of a run, a Python helper): the flags guest code
; raised go into the guest's MXCSR word, the host gets back the MXCSR hqemu_run saved
define void @hqemu_fenv_to_python(ptr %info) nounwind {{
{head}
  %cw = alloca i32, align 4
  call void @llvm.x86.sse.stmxcsr(ptr %cw)
  %now = load i32, ptr %cw, align 4
  %fl = and i32 %now, {MXCSR_FLAGS}
  %fl64 = zext i32 %fl to i64
  %g = load i64, ptr %gp, align 4
  %g1 = or i64 %g, %fl64
  store i64 %g1, ptr %gp, align 4
  %hp = getelementptr inbounds i8, ptr %info, i64 {o['host_mxcsr']}
  call void @llvm.x86.sse.ldmxcsr(ptr %hp)
  br label %done
done:
  ret void
}}

; entering guest code (a run, the return from a Python helper, which may have changed the
; guest's MXCSR): the guest's control bits, exception masks included, and no flag
define void @hqemu_fenv_to_guest(ptr %info) nounwind {{
{head}
  %cw = alloca i32, align 4
  %g = load i64, ptr %gp, align 4
  %c = and i64 %g, {MXCSR_CONTROL}
  %c32 = trunc i64 %c to i32
  store i32 %c32, ptr %cw, align 4
  call void @llvm.x86.sse.ldmxcsr(ptr %cw)
  br label %done
done:
  ret void
}}

define i64 @hqemu_get_mxcsr() nounwind {{
  %cw = alloca i32, align 4
  call void @llvm.x86.sse.stmxcsr(ptr %cw)
  %v = load i32, ptr %cw, align 4
  %v64 = zext i32 %v to i64
  ret i64 %v64
}}
"""


def dispatch_ir() -> str:
    """The LLVM IR module of hqemu_dispatch and hqemu_fault_handler for this host."""
    o = {name: _off(name) for name, *_ in ExitRecord._fields_}
    pc_off = _HOST_PC_OFFSET.get(platform.machine())
    if pc_off is None:
        host_pc = "  %hpc = add i64 0, 0"
    else:
        host_pc = (f"  %hpcp = getelementptr inbounds i8, ptr %uc, i64 {pc_off}\n"
                   "  %hpc = load i64, ptr %hpcp, align 8")
    lookup = "\n".join(lookup_ir("d", "%pc", "%table", "%mask", "call", "miss"))
    kind_of_signal = "\n".join(_select_chain(
        "kind", "%sig", "i64", [EXIT_KINDS.index(_SIGNAL_KINDS[s]) for s in faults.HANDLED]))
    chain_index = "\n".join(_select_chain("idx", "%sig", "i32", [2 * i for i in range(len(faults.HANDLED))]))
    dispatch_args = "ptr %state, ptr %membase, ptr %info, ptr %words, i64 %mask, i64 %pc"
    if HOST_SSE:
        run_alloca = "  %hcw = alloca i32, align 4\n"
        run_call = f"""  %fep = getelementptr inbounds i8, ptr %info, i64 {o['fenv']}
  %fenv = load i64, ptr %fep, align 8
  %hasfe = icmp ne i64 %fenv, 0
  br i1 %hasfe, label %fe_run, label %plain_run
fe_run:
  ; the guest's SSE environment: the host's (Python's) MXCSR saved, the guest's installed
  call void @llvm.x86.sse.stmxcsr(ptr %hcw)
  %hcv = load i32, ptr %hcw, align 4
  %hcv64 = zext i32 %hcv to i64
  %hmp = getelementptr inbounds i8, ptr %info, i64 {o['host_mxcsr']}
  store i64 %hcv64, ptr %hmp, align 8
  call void @hqemu_fenv_to_guest(ptr %info)
  %r1 = call i64 @hqemu_dispatch({dispatch_args})
  ; after a fault too: the handler gave back the MXCSR guest code had
  call void @hqemu_fenv_to_python(ptr %info)
  br label %ran
plain_run:
  %r0 = call i64 @hqemu_dispatch({dispatch_args})
  br label %ran
ran:
  %r = phi i64 [ %r1, %fe_run ], [ %r0, %plain_run ]"""
        handler_fenv = f"""  %hfep = getelementptr inbounds i8, ptr %rec, i64 {o['fenv']}
  %hfe = load i64, ptr %hfep, align 8
  %hhas = icmp ne i64 %hfe, 0
  br i1 %hhas, label %fpregs, label %unwind
fpregs:
  ; the kernel runs a handler under a fresh FP environment, and siglongjmp keeps it: give
  ; back the MXCSR guest code had (its control bits and the flags raised so far, a trapping
  ; one included) for hqemu_run to fold into the guest's word
  %fpp = getelementptr inbounds i8, ptr %uc, i64 {_FPREGS_OFFSET}
  %fpr = load ptr, ptr %fpp, align 8
  %hasfp = icmp ne ptr %fpr, null
  br i1 %hasfp, label %fpload, label %unwind
fpload:
  %mxp = getelementptr inbounds i8, ptr %fpr, i64 {_FPSTATE_MXCSR}
  call void @llvm.x86.sse.ldmxcsr(ptr %mxp)
  br label %unwind"""
    else:
        run_alloca = ""
        run_call = f"  %r = call i64 @hqemu_dispatch({dispatch_args})"
        handler_fenv = "  br label %unwind"
    return f"""; hqemu native dispatcher and guest fault handler (hqemu/native/dispatch.py)
@hqemu_tls_key = global i32 0
@hqemu_chain = global [{faults.CHAIN_WORDS} x i64] zeroinitializer

declare ptr @pthread_getspecific(i32) nounwind
declare i32 @pthread_setspecific(i32, ptr) nounwind
declare i32 @__sigsetjmp(ptr, i32) nounwind returns_twice
declare void @siglongjmp(ptr, i32) nounwind noreturn
declare ptr @signal(i32, ptr) nounwind
declare i32 @raise(i32) nounwind

; run() enters here: everything but the pc comes from the record, as few ctypes arguments
; cost least (about 100 ns each); the table cannot move while a runner is registered
define i64 @hqemu_run(ptr %info, i64 %pc) nounwind {{
entry:
{run_alloca}  %sp = getelementptr inbounds i8, ptr %info, i64 {o['state']}
  %state = load ptr, ptr %sp, align 8
  %mp = getelementptr inbounds i8, ptr %info, i64 {o['membase']}
  %membase = load ptr, ptr %mp, align 8
  %tp = getelementptr inbounds i8, ptr %info, i64 {o['table']}
  %hdr = load ptr, ptr %tp, align 8
  %runners = getelementptr inbounds i8, ptr %hdr, i64 {TableHeader.runners.offset}
  %in = atomicrmw add ptr %runners, i64 1 seq_cst
  %movp = getelementptr inbounds i8, ptr %hdr, i64 {TableHeader.moving.offset}
  %moving = load atomic i64, ptr %movp seq_cst, align 8
  %busy = icmp ne i64 %moving, 0
  br i1 %busy, label %back_off, label %go, !prof !0
go:
  %wp = getelementptr inbounds i8, ptr %hdr, i64 {TableHeader.words.offset}
  %words = load ptr, ptr %wp, align 8
  %kp = getelementptr inbounds i8, ptr %hdr, i64 {TableHeader.mask.offset}
  %mask = load i64, ptr %kp, align 8
{run_call}
  %out = atomicrmw sub ptr %runners, i64 1 seq_cst
  ret i64 %r
back_off:
  %out2 = atomicrmw sub ptr %runners, i64 1 seq_cst
  store i64 0, ptr %info, align 8
  %stp = getelementptr inbounds i8, ptr %info, i64 {o['stop']}
  store i64 {Stop.BUSY.value}, ptr %stp, align 8
  ret i64 %pc
}}

; a full barrier for the Python side of the runner/mover handshake
define i64 @hqemu_xchg(ptr %p, i64 %v) nounwind {{
  %old = atomicrmw xchg ptr %p, i64 %v seq_cst
  ret i64 %old
}}

define i64 @hqemu_dispatch(ptr %state, ptr %membase, ptr %info, ptr %table, i64 %mask, i64 %pc) nounwind {{
entry:
  %key = load i32, ptr @hqemu_tls_key, align 4
  %set = call i32 @pthread_setspecific(i32 %key, ptr %info)
  %mbp = getelementptr inbounds i8, ptr %info, i64 {o['membase']}
  %mb = ptrtoint ptr %membase to i64
  store i64 %mb, ptr %mbp, align 8
  %armed = getelementptr inbounds i8, ptr %info, i64 {o['armed']}
  %jb = getelementptr inbounds i8, ptr %info, i64 {o['jmpbuf']}
  %sj = call i32 @__sigsetjmp(ptr %jb, i32 0) returns_twice
  %first = icmp eq i32 %sj, 0
  br i1 %first, label %run, label %fault
run:
  %hp = getelementptr inbounds i8, ptr %info, i64 {o['in_helper']}
  store volatile i64 0, ptr %hp, align 8
  ; the units chain through the table while this run is on (it cannot move meanwhile)
  %wdp = getelementptr inbounds i8, ptr %info, i64 {o['words']}
  store ptr %table, ptr %wdp, align 8
  %mkp = getelementptr inbounds i8, ptr %info, i64 {o['mask']}
  store i64 %mask, ptr %mkp, align 8
  store volatile i64 1, ptr %armed, align 8
  %next = call i64 @hqemu_dispatch_loop(ptr %state, ptr %membase, ptr %info, ptr %table, i64 %mask, i64 %pc)
  store volatile i64 0, ptr %armed, align 8
  store ptr null, ptr %wdp, align 8
  ret i64 %next
fault:
  ; the handler disarmed the record and wrote the fault's fields
  %sigp = getelementptr inbounds i8, ptr %info, i64 {o['signo']}
  %sig = load volatile i64, ptr %sigp, align 8
{kind_of_signal}
  store i64 %kind, ptr %info, align 8
  %stp = getelementptr inbounds i8, ptr %info, i64 {o['stop']}
  store i64 {Stop.FAULT.value}, ptr %stp, align 8
  %ipp = getelementptr inbounds i8, ptr %info, i64 {o['insn_pc']}
  %fpc = load volatile i64, ptr %ipp, align 8
  ret i64 %fpc
}}

define internal i64 @hqemu_dispatch_loop(ptr %state, ptr %membase, ptr %info, ptr %table, i64 %mask,
                                         i64 %pc0) nounwind noinline {{
entry:
  %reqp = getelementptr inbounds i8, ptr %info, i64 {o['request']}
  %upcp = getelementptr inbounds i8, ptr %info, i64 {o['unit_pc']}
  %unp = getelementptr inbounds i8, ptr %info, i64 {o['units']}
  %stp = getelementptr inbounds i8, ptr %info, i64 {o['stop']}
  br label %look
look:
  %pc = phi i64 [ %pc0, %entry ], [ %next, %again ]
  %req = load volatile i64, ptr %reqp, align 8
  %stop = icmp ne i64 %req, 0
  br i1 %stop, label %interrupted, label %key, !prof !0
key:
  ; the EMPTY and TOMB key values are no guest pc: such a pc would match a free slot
  %nokey = icmp uge i64 %pc, {TOMB - (1 << 64)}
  br i1 %nokey, label %miss, label %d.hash, !prof !0
{lookup}
call:
  store i64 %pc, ptr %upcp, align 8
  %n = load i64, ptr %unp, align 8
  %n1 = add i64 %n, 1
  store i64 %n1, ptr %unp, align 8
  %next = call i64 %d.code(ptr %state, ptr %membase, ptr %info)
  %kind = load i64, ptr %info, align 8
  %jump = icmp eq i64 %kind, 0
  br i1 %jump, label %again, label %exit, !prof !1
again:
  br label %look
exit:
  store i64 {Stop.EXIT.value}, ptr %stp, align 8
  ret i64 %next
miss:
  store i64 0, ptr %info, align 8
  store i64 {Stop.MISS.value}, ptr %stp, align 8
  ret i64 %pc
interrupted:
  store volatile i64 0, ptr %reqp, align 8
  store i64 0, ptr %info, align 8
  store i64 {Stop.INTERRUPT.value}, ptr %stp, align 8
  ret i64 %pc
}}

define void @hqemu_fault_handler(i32 %sig, ptr %si, ptr %uc) nounwind {{
entry:
  %key = load i32, ptr @hqemu_tls_key, align 4
  %rec = call ptr @pthread_getspecific(i32 %key)
  %has = icmp ne ptr %rec, null
  br i1 %has, label %check, label %chain
check:
  %ap = getelementptr inbounds i8, ptr %rec, i64 {o['armed']}
  %armed = load volatile i64, ptr %ap, align 8
  %hp = getelementptr inbounds i8, ptr %rec, i64 {o['in_helper']}
  %helper = load volatile i64, ptr %hp, align 8
  %a1 = icmp ne i64 %armed, 0
  %h0 = icmp eq i64 %helper, 0
  %guest = and i1 %a1, %h0
  br i1 %guest, label %ours, label %chain
ours:
  %sap = getelementptr inbounds i8, ptr %si, i64 16
  %addr = load i64, ptr %sap, align 8
  %mbp = getelementptr inbounds i8, ptr %rec, i64 {o['membase']}
  %mb = load i64, ptr %mbp, align 8
  %ga = sub i64 %addr, %mb
  %fap = getelementptr inbounds i8, ptr %rec, i64 {o['fault_addr']}
  store volatile i64 %ga, ptr %fap, align 8
  %hap = getelementptr inbounds i8, ptr %rec, i64 {o['host_addr']}
  store volatile i64 %addr, ptr %hap, align 8
  %sig64 = zext i32 %sig to i64
  %sgp = getelementptr inbounds i8, ptr %rec, i64 {o['signo']}
  store volatile i64 %sig64, ptr %sgp, align 8
{host_pc}
  %hpp = getelementptr inbounds i8, ptr %rec, i64 {o['host_pc']}
  store volatile i64 %hpc, ptr %hpp, align 8
{handler_fenv}
unwind:
  store volatile i64 0, ptr %ap, align 8
  %jb = getelementptr inbounds i8, ptr %rec, i64 {o['jmpbuf']}
  call void @siglongjmp(ptr %jb, i32 1)
  unreachable
chain:
{chain_index}
  %howp = getelementptr inbounds i64, ptr @hqemu_chain, i64 %idx
  %how = load volatile i64, ptr %howp, align 8
  %fnp = getelementptr inbounds i64, ptr %howp, i64 1
  %fn = load volatile ptr, ptr %fnp, align 8
  switch i64 %how, label %default [ i64 {faults.CHAIN_HANDLER}, label %plain
                                    i64 {faults.CHAIN_SIGACTION}, label %withinfo ]
plain:
  call void %fn(i32 %sig)
  ret void
withinfo:
  call void %fn(i32 %sig, ptr %si, ptr %uc)
  ret void
default:
  ; the default action (core dump) as if we had never been installed
  %old = call ptr @signal(i32 %sig, ptr null)
  %r = call i32 @raise(i32 %sig)
  ret void
}}

{_fenv_ir(o)}
!0 = !{{!"branch_weights", i32 1, i32 1048575}}
!1 = !{{!"branch_weights", i32 1048575, i32 1}}
"""


# --- compiling it once per process, cached on disk ------------------------------------------
@dataclass(frozen=True)
class DispatchCode:
    dispatch: int  # address of hqemu_dispatch (the loop; table and mask as arguments)
    run: int  # address of hqemu_run(record, pc): the loop on the record's state and table
    xchg: int  # address of hqemu_xchg(ptr, value) -> old value, a full barrier
    handler: int  # address of hqemu_fault_handler
    chain: int  # address of the handler's chain table (faults.CHAIN_WORDS i64)
    fenv_to_python: int  # address of hqemu_fenv_to_python(record): guest flags folded, host MXCSR back
    fenv_to_guest: int  # address of hqemu_fenv_to_guest(record): the guest's MXCSR controls installed
    get_mxcsr: int  # address of hqemu_get_mxcsr() -> the host MXCSR now (0 on hosts without SSE)
    seconds: float  # compile (or cache load) time, link included
    cached: bool  # the object came from the disk cache


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hqemu"


def _cache_key(ir: str, opt: str) -> str:
    import llvmlite
    import llvmlite.binding as llvm

    from workers.compile import target_key

    parts = (llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), *target_key(), opt, ir)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _object(ir: str, cache_dir: Path | None, opt: str = "O2") -> tuple[bytes, bool]:
    from workers.compile import compile_unit_text

    path = cache_dir / f"dispatch-{_cache_key(ir, opt)}.o" if cache_dir is not None else None
    if path is not None:
        try:
            return path.read_bytes(), True
        except OSError:
            pass
    obj = compile_unit_text(ir, opt).obj
    if path is not None:
        try:  # a unique temporary name, then an atomic rename: concurrent processes never see half
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dispatch-")
            with os.fdopen(fd, "wb") as f:
                f.write(obj)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache only costs the compile
    return obj, False


_code_lock = threading.Lock()
_code: DispatchCode | None = None


def dispatch_code(cache_dir: Path | str | None | bool = True) -> DispatchCode:
    """hqemu_dispatch and the fault handler, linked into the process's engine (once), with the
    handler installed. cache_dir: a directory, True for default_cache_dir(), None/False: none."""
    global _code
    with _code_lock:
        if _code is None:
            t0 = time.perf_counter()
            where = default_cache_dir() if cache_dir is True else Path(cache_dir) if cache_dir else None
            ir = dispatch_ir()
            obj, cached = _object(ir, where)
            nc = native()
            addr = nc.load(obj, "hqemu_dispatch")
            handler = nc.engine.get_function_address("hqemu_fault_handler")
            run = nc.engine.get_function_address("hqemu_run")
            xchg = nc.engine.get_function_address("hqemu_xchg")
            key = nc.engine.get_global_value_address("hqemu_tls_key")
            chain = nc.engine.get_global_value_address("hqemu_chain")
            fenv = [nc.engine.get_function_address(f"hqemu_{f}")
                    for f in ("fenv_to_python", "fenv_to_guest", "get_mxcsr")]
            if not (handler and run and xchg and key and chain and all(fenv)):
                raise HqemuError("native: the dispatcher object lacks its handler or globals")
            ctypes.c_uint32.from_address(key).value = faults.tls_key()
            _code = DispatchCode(addr, run, xchg, handler, chain, *fenv, time.perf_counter() - t0, cached)
            # what Python helper callbacks call around the helper (hqemu/native/loader.py)
            nc.fenv_switch = (FENV_FN(_code.fenv_to_python), FENV_FN(_code.fenv_to_guest))
        faults.install(_code.handler, _code.chain)
        return _code


DISPATCH_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)
RUN_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)
XCHG_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)
# a few ns of native code: PYFUNCTYPE keeps the GIL (releasing and taking it back costs more)
FENV_FN = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)
MXCSR_FN = ctypes.PYFUNCTYPE(ctypes.c_uint64)


_get_mxcsr: Any = None


def host_mxcsr() -> int:
    """The calling thread's MXCSR now (0 on hosts without SSE)."""
    global _get_mxcsr
    if _get_mxcsr is None:
        _get_mxcsr = MXCSR_FN(dispatch_code().get_mxcsr)
    return _get_mxcsr()


# --- the table -------------------------------------------------------------------------------
class DispatchTable:
    """guest pc -> native code address, read by hqemu_dispatch while Python writes it.

    Moving the array (growth, clear) waits for a moment when no dispatcher runs on it: a
    runner (hqemu_run) increments header.runners and then reads header.moving, a mover sets
    `moving` and then reads `runners`, each step behind a full barrier, so they cannot both
    go ahead; a runner that backs off returns Stop.BUSY and run() retries after the move."""

    def __init__(self, capacity: int = MIN_CAPACITY):
        if capacity < 8 or capacity & (capacity - 1):
            raise ValueError("the capacity must be a power of two >= 8")
        self.lock = threading.Lock()  # serializes the writers (install, remove, clear, moves)
        self.header = TableHeader()  # what the native side reads
        self._xchg = XCHG_FN(dispatch_code().xchg)
        self.pending: dict[int, int] = {}  # installs waiting for the runs to end (table too full)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        """A fresh empty array. @assume no runner, or the table not published yet."""
        words = (ctypes.c_uint64 * (2 * capacity))()
        ctypes.memset(words, 0xFF, ctypes.sizeof(words))
        self.words = words  # the old array is freed here, once no runner can hold it
        self.header.words = self.addr = ctypes.addressof(words)
        self.capacity = capacity
        self.header.mask = self.mask = capacity - 1
        self.live = 0  # entries with a pc
        self.used = 0  # slots that are not EMPTY (live + tombstones)

    @property
    def running(self) -> int:
        """Dispatchers inside hqemu_run on this table now."""
        return self.header.runners

    def __len__(self) -> int:
        return self.live + len(self.pending)

    def _find(self, pc: int) -> tuple[int, int]:
        """(slot holding pc or -1, slot to insert pc at)."""
        w, mask = self.words, self.mask
        i = slot_of(pc, mask)
        free = -1
        while True:
            k = w[2 * i]
            if k == pc:
                return i, i
            if k == EMPTY:
                return -1, (i if free < 0 else free)
            if k == TOMB and free < 0:
                free = i
            i = (i + 1) & mask

    def lookup(self, pc: int) -> int | None:
        """The code address installed for pc."""
        with self.lock:
            if pc in self.pending:
                return self.pending[pc]
            i, _ = self._find(pc)
            return self.words[2 * i + 1] if i >= 0 else None

    def install(self, pc: int, code: int) -> None:
        """pc runs code from now on (at once in a running dispatcher, unless queued)."""
        if not 0 <= pc < TOMB:
            raise ValueError(f"guest pc 0x{pc:x} cannot be a key")
        with self.lock:
            self._install(pc, code)

    def _install(self, pc: int, code: int) -> None:
        """@assume lock held."""
        at, free = self._find(pc)
        if at < 0 and 2 * (self.used + 1) > self.capacity and self._move(len(self.pending) + 1):
            at, free = self._find(pc)
        if at < 0 and 4 * (self.used + 1) > 3 * self.capacity:
            self.pending[pc] = code  # full while a dispatcher runs: the array cannot move now
            return
        w = self.words
        if at >= 0:
            w[2 * at + 1] = code  # one aligned store: the old code or the new one runs
            return
        if w[2 * free] == EMPTY:
            self.used += 1
        w[2 * free + 1] = code  # the code first, then the key that publishes it
        w[2 * free] = pc
        self.live += 1
        self.pending.pop(pc, None)

    def remove(self, pc: int) -> bool:
        """pc has no native code from now on (a run already inside its code finishes it)."""
        with self.lock:
            found = self.pending.pop(pc, None) is not None
            i, _ = self._find(pc)
            if i >= 0:
                self.words[2 * i] = TOMB  # one store: probing goes on past it
                self.live -= 1
                found = True
            return found

    def clear(self) -> None:
        """Forget every entry."""
        with self.lock:
            self.pending.clear()
            if not self._move(0, shrink=True):
                w = self.words
                for i in range(self.capacity):
                    if w[2 * i] < TOMB:
                        w[2 * i] = TOMB
                self.live = 0

    def _move(self, extra: int, shrink: bool = False) -> bool:
        """Rehash the live entries (none if shrink) into a fresh array, doubled while they and
        `extra` more would fill it over a quarter; False if a dispatcher runs. @assume lock held."""
        hdr = ctypes.addressof(self.header)
        self._xchg(hdr + TableHeader.moving.offset, 1)  # the barrier before reading runners
        try:
            if self.header.runners:
                return False
            old, cap = self.words, self.capacity
            entries = [] if shrink else [(old[2 * i], old[2 * i + 1])
                                         for i in range(cap) if old[2 * i] < TOMB]
            while 4 * (len(entries) + extra) > cap:
                cap *= 2
            self._alloc(cap)
            for pc, code in entries:
                self._install(pc, code)
            return True
        finally:
            self.header.moving = 0

    def settle(self) -> None:
        """After a run: land the queued installs if no dispatcher runs any more; wait for a move
        in progress to finish."""
        with self.lock:
            if self.pending and not self.header.runners:
                self._flush()

    def _flush(self) -> None:
        """@assume lock held, no runner."""
        todo, self.pending = self.pending, {}
        for pc, code in todo.items():
            self._install(pc, code)


# --- the Python API --------------------------------------------------------------------------
# why run() came back to Python, as counted in Dispatcher.returns and env.stats.native_returns
RETURN_REASONS = ("miss", "syscall", "trap", "signal", "fault", "helper", "interrupt")
_REASON_OF_KIND = {i: "syscall" if k == "syscall" else "trap" if k == "sigtrap" else "signal"
                   for i, k in enumerate(EXIT_KINDS)}
_KIND, _STOP = _off("kind") // 8, _off("stop") // 8
_ARMED, _IN_HELPER, _UNIT_PC = _off("armed") // 8, _off("in_helper") // 8, _off("unit_pc") // 8
_IND_FROM, _IND_TO = _off("ind_from") // 8, _off("ind_to") // 8
_EXIT, _MISS, _FAULT, _BUSY = Stop.EXIT.value, Stop.MISS.value, Stop.FAULT.value, Stop.BUSY.value
_SIGFPE_KIND = EXIT_KINDS.index("sigfpe")


class Dispatcher:
    """Runs native code for one guest thread: its CPU state, its exit record, a shared table."""

    def __init__(self, env: Any = None, *, state_addr: int | None = None, membase: int | None = None,
                 mem_size: int | None = None, table: DispatchTable | None = None,
                 cache_dir: Path | str | None | bool = True, fenv_offset: int | None = None):
        """fenv_offset: the byte offset in the CPU state of the guest's MXCSR word (its low 32
        bits), if native code runs under the guest's SSE environment; with an env, taken from
        the register env.fe.host_fp_env names (None or absent: no guest SSE environment)."""
        if env is not None:
            state_addr = ctypes.addressof(env.cpu)
            membase, mem_size = env.mem.base, env.mem.size
            native().env = env  # what helper callbacks receive
            fe = getattr(env, "fe", None)  # (test envs may have none)
            reg = getattr(fe, "host_fp_env", None)
            if reg is not None and fenv_offset is None:
                fenv_offset = fe.layout[reg].offset
        if state_addr is None or membase is None or mem_size is None:
            raise TypeError("Dispatcher needs an env or state_addr, membase and mem_size")
        self.env = env
        self.code = dispatch_code(cache_dir)
        self.table = table if table is not None else DispatchTable()
        self.rec = ExitRecord()
        self._words = memoryview(self.rec).cast("B").cast("Q")  # the record, read cheaply
        self.state_addr, self.membase, self.mem_size = state_addr, membase, mem_size
        self._run = RUN_FN(self.code.run)
        self._rec_addr = ctypes.addressof(self.rec)
        rec = self.rec
        rec.state, rec.membase, rec.table = state_addr, membase, ctypes.addressof(self.table.header)
        if fenv_offset is not None and fenv_offset < 0:
            raise ValueError("fenv_offset must be a byte offset in the CPU state")
        if fenv_offset is not None and HOST_SSE:  # (a host without MXCSR has no SSE environment)
            rec.fenv = 1 + fenv_offset
            # Python helpers switch to Python's MXCSR and back (hqemu/native/loader.py)
            nc, addr = native(), self._rec_addr
            nc.fenv_records.add(addr)
            weakref.finalize(rec, nc.fenv_records.discard, addr)
        self.returns: dict[str, int] = dict.fromkeys(RETURN_REASONS, 0)  # reason -> returns to Python
        stats = getattr(env, "stats", None)
        self._stats = stats if hasattr(stats, "native_returns") else None
        self._seen_insns = self._seen_units = 0  # record counts already added to the stats
        self._alt_thread = -1  # the last thread whose alternate signal stack was checked

    # --- the table ---------------------------------------------------------------------
    def install(self, pc: int, addr: int) -> None:
        self.table.install(pc, addr)

    def remove(self, pc: int) -> bool:
        return self.table.remove(pc)

    def clear(self) -> None:
        self.table.clear()

    def interrupt(self) -> None:
        """Make a run in another thread return at its next transition between units."""
        self.rec.request = 1

    # --- running -----------------------------------------------------------------------
    @property
    def guest_insns(self) -> int:
        """Guest instructions entered in native code (counted per guest block entered)."""
        return self.rec.icount

    @property
    def unaccounted_insns(self) -> int:
        """Guest instructions run natively since the last return to Python (not yet in
        env.stats.native_guest_insns): what a reader in another thread adds for a live figure."""
        return self.rec.icount - self._seen_insns

    @property
    def transitions(self) -> int:
        """Units entered by the dispatcher."""
        return self.rec.units

    def run(self, pc: int) -> tuple[str, int, int | None]:
        """Run native code from guest pc until it needs Python: (kind, pc, fault address)."""
        tid = threading.get_ident()
        if tid != self._alt_thread:
            faults.ensure_altstack()
            self._alt_thread = tid
        table, w = self.table, self._words
        if table.pending:
            table.settle()
        npc = self._run(self._rec_addr, pc)
        while w[_STOP] == _BUSY:  # a writer was moving the array: wait for it, then go
            table.settle()
            npc = self._run(self._rec_addr, pc)
        if table.pending:
            table.settle()
        kind, stop = w[_KIND], w[_STOP]
        fault_addr = None
        if stop == _MISS:
            reason = "miss"
        elif stop == _EXIT:
            reason = "helper" if kind == ABORT else _REASON_OF_KIND[kind]
        elif stop == _FAULT:  # a SIGFPE's host address is the instruction's: no guest address
            reason, fault_addr = "fault", None if kind == _SIGFPE_KIND else self.rec.fault_addr
        else:
            reason = "interrupt"
        self.returns[reason] += 1
        if self._stats is not None:
            self._account(reason)
        if reason == "helper":
            nc = native()
            e, nc.pending = nc.pending, None
            if e is None:
                raise HqemuError(f"native: a unit aborted at 0x{npc:x} with no exception parked")
            raise e
        return EXIT_KINDS[kind], npc, fault_addr

    def _account(self, reason: str) -> None:
        st, rec = self._stats, self.rec
        st.native_returns[reason] += 1
        st.native_guest_insns += rec.icount - self._seen_insns
        st.native_units += rec.units - self._seen_units
        self._seen_insns, self._seen_units = rec.icount, rec.units

    def sample_pc(self) -> int:
        """From any thread: the guest pc of the unit this dispatcher entered last while its
        thread runs guest code natively, else -1 (in Python, or in a helper). A sampling
        profiler's probe (hqemu.trace.sampler): three loads, no lock, no effect on the run."""
        w = self._words
        return w[_UNIT_PC] if w[_ARMED] and not w[_IN_HELPER] else -1

    def sample_edge(self) -> tuple[int, int]:
        """From any thread: (entry pc of the unit, target pc) of the last indirect jump a unit
        took, (0, 0) before any. Two unlocked loads: a pair torn by a concurrent exit is
        possible and harmless to a profile that needs repeated evidence."""
        w = self._words
        return w[_IND_FROM], w[_IND_TO]

    def fault_in_guest_space(self) -> bool:
        """Whether the last fault's host address lies inside the guest reservation (if not,
        the guest computed an address beyond the space, or native code has a bug)."""
        return 0 <= self.rec.host_addr - self.membase < self.mem_size


__all__ = ["DISPATCH_FN", "EMPTY", "FENV_FN", "HOST_SSE", "MXCSR_CONTROL", "MXCSR_FLAGS", "MXCSR_FN",
           "RETURN_REASONS", "RUN_FN", "TOMB", "DispatchCode", "DispatchTable", "Dispatcher", "ExitRecord",
           "Stop", "TableHeader", "default_cache_dir", "dispatch_code", "dispatch_ir", "host_mxcsr",
           "slot_of"]
