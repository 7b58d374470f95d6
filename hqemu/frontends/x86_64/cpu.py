"""The x86-64 CPU state: one ctypes struct shared by every tier.

Every field is an 8-byte slot (16 bytes for vector and x87 registers) so that Python sees it
as a memoryview of unsigned 64-bit words and native code as a plain struct; the IR's
globals (StateLayout) are derived from _fields_ below, one global per field.

    >>> cpu = X86State(); cpu.rsp = 0x7ffff000
"""

from __future__ import annotations

import ctypes

from hqemu.ir import I64, I128, Global, StateLayout

U64 = ctypes.c_uint64
V128 = ctypes.c_uint64 * 2

GPRS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")  # in x86 encoding order
FLAGS = ("cf", "pf", "af", "zf", "sf", "of", "df", "nt", "ac", "id")


class X86State(ctypes.Structure):
    _fields_ = (
        [(r, U64) for r in GPRS]  # general registers, encoding order
        + [
            ("rip", U64),  # guest pc; stored at every unit exit
            ("cf", U64),  # carry flag, 0 or 1 (each flag has its own slot: no lazy packing)
            ("pf", U64),  # parity of the low result byte
            ("af", U64),  # adjust (carry out of bit 3)
            ("zf", U64),  # zero
            ("sf", U64),  # sign
            ("of", U64),  # overflow
            ("df", U64),  # direction flag for string ops
            ("fs_base", U64),  # TLS base (arch_prctl ARCH_SET_FS)
            ("gs_base", U64),  # ARCH_SET_GS
            ("mxcsr", U64),  # SSE control/status, low 32 bits; 0x1f80 at reset
        ]
        + [(f"xmm{i}", V128) for i in range(16)]  # low qword first
        + [(f"st{i}", V128) for i in range(8)]  # x87 physical regs: mantissa, then sign|exp in bits 0-15
        + [
            ("fpu_top", U64),  # x87 stack top (0-7)
            ("fpu_cw", U64),  # x87 control word, 0x37f at reset
            ("fpu_sw", U64),  # x87 status word bits other than TOP (C0-C3, exception flags)
            ("fpu_tag", U64),  # bit i set: physical register i is empty
            # RFLAGS bits user code may change with popf and read with pushf, and nothing else
            # reads (0 or 1): nested task, alignment check (no #AC is raised), CPUID-able (ID)
            ("nt", U64),
            ("ac", U64),
            ("id", U64),
        ]
    )


def _layout() -> StateLayout:
    gl = []
    for name, ctype in X86State._fields_:
        off = getattr(X86State, name).offset
        gl.append(Global(name, I128 if ctype is V128 else I64, off))
    return StateLayout("x86_64", gl)


LAYOUT = _layout()
