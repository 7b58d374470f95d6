"""SSE instructions run on the host CPU under the guest's MXCSR: exact rounding, DAZ/FTZ and flags.

The guest is x86-64 and so is the host, so the most faithful model of an SSE float instruction
is the instruction itself. Each helper `x86_sse_<name>` is a stub of host machine code (built
once per process in an executable page, no compiler involved) that loads the guest's MXCSR
control bits into the host MXCSR with every exception masked and the flags cleared, runs the
one instruction on xmm0 (the destination), xmm1 (the source) or rax (an integer source or
result), reads the flags it raised and restores the host MXCSR. rcpps/rsqrtps ("approximations
as the hardware defines them") come out exactly as this CPU gives them.

    helper x86_sse_<name>(a: i128, b: i128, mxcsr: i64) -> (r: i128, m: i64)
        a  the destination register before the instruction (scalar forms keep its upper lanes)
        b  the source: an xmm value, a memory operand zero-extended, or an integer (cvtsi2*)
        r  the new destination (a gpr result in the low 64 bits, comis: the host rflags)
        m  mxcsr | the flags raised (bits 0-5); bits 32-37: the raised flags the guest had
           unmasked, which on hardware are a #XM fault (the lifter exits with sigfpe)

    >>> IMPLS["x86_sse_addsd"](env, a, b, 0x1F80 | 0x6000)     # round toward zero
    (r, 0x7FA0)                                                 # PE set

The quick tier and the interpreter call the stubs through ctypes, by a no-argument entry per
stub that takes the arguments from a buffer (py_entry: about 2 us a call). Native code does not
call them: each helper also declares its instruction as inline asm (HostOp.inline, an
hqemu.ir.HostInsn), which LLVM-compiled code runs in place under the guest's MXCSR that the
dispatcher installs (mxcsr.py). The stubs keep the units' helper ABI (state, membase, exitinfo,
out, then the arguments as i64 halves) all the same, for units whose text names no inline form.
An unmasked underflow traps on tiny results even when they are exact: a guest with UE unmasked
runs the instruction with FTZ on, which raises UE for every tiny result (the guest dies of it,
so the flushed result is never seen).
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import threading
from dataclasses import dataclass

from hqemu.errors import HqemuError
from hqemu.ir import I64, I128, NATIVE, Helper, HostInsn, register

from .cpu import LAYOUT

M64 = (1 << 64) - 1


@dataclass(frozen=True)
class HostOp:
    name: str  # helper suffix: x86_sse_<name>
    code: bytes  # the host instruction, on xmm0 (reg) / xmm1 (r/m), rax for integers
    result: str = "xmm"  # where the result is: xmm (xmm0), gpr (rax), flags (rflags)
    inline: HostInsn | None = None  # the same instruction as LLVM inline asm, for native code


def _inline(mnemonic: str, form: str = "vec", bits: int = 64, imm: int | None = None) -> HostInsn:
    """The AT&T inline-asm text of one instruction in a HostInsn form (hqemu.ir.HostInsn)."""
    if form == "flags":
        return HostInsn(f"{mnemonic} $4, $3\nsetb $0\nsetp $1\nsete $2", form)
    if form == "gpr":
        return HostInsn(f"{mnemonic} $1, $0", form, bits)
    if form == "int":  # the source's width is in the mnemonic (l or q), as AT&T spells it
        return HostInsn(f"{mnemonic}{'q' if bits == 64 else 'l'} $2, $0", form, bits)
    return HostInsn((f"{mnemonic} $${imm}, $2, $0" if imm is not None else f"{mnemonic} $2, $0"), form)


def _modrm(prefix: str, op: str, modrm: int = 0xC1, rex: int = 0, imm: int | None = None) -> bytes:
    """prefix [REX] 0F op ModRM [imm8]; ModRM C1 = reg xmm0/rax, r/m xmm1 (C0: r/m rax)."""
    out = bytes.fromhex(prefix) + (bytes([rex]) if rex else b"") + bytes.fromhex(op) + bytes([modrm])
    return out + (bytes([imm]) if imm is not None else b"")


SFX_PREFIX = {"ps": "", "pd": "66", "ss": "f3", "sd": "f2"}


def _table() -> list[HostOp]:
    ops: list[HostOp] = []
    for m, op in (("add", "0f58"), ("mul", "0f59"), ("sub", "0f5c"), ("min", "0f5d"), ("div", "0f5e"),
                  ("max", "0f5f"), ("sqrt", "0f51")):
        for sfx, p in SFX_PREFIX.items():
            ops.append(HostOp(m + sfx, _modrm(p, op), inline=_inline(m + sfx)))
    for m, op in (("rcp", "0f53"), ("rsqrt", "0f52")):
        for sfx in ("ps", "ss"):
            ops.append(HostOp(m + sfx, _modrm(SFX_PREFIX[sfx], op), inline=_inline(m + sfx)))
    for pred in range(8):  # cmpps/pd/ss/sd with predicate pred: helper cmp<pred><sfx>
        for sfx, p in SFX_PREFIX.items():
            ops.append(HostOp(f"cmp{pred}{sfx}", _modrm(p, "0fc2", imm=pred),
                              inline=_inline("cmp" + sfx, imm=pred)))
    for m, p, op in (("comiss", "", "0f2f"), ("ucomiss", "", "0f2e"), ("comisd", "66", "0f2f"),
                     ("ucomisd", "66", "0f2e")):
        ops.append(HostOp(m, _modrm(p, op), "flags", _inline(m, "flags")))
    for bits, rex in ((32, 0), (64, 0x48)):
        for sfx in ("ss", "sd"):  # cvtsi2ss xmm0, eax/rax
            ops.append(HostOp(f"cvtsi2{sfx}{bits}", _modrm(SFX_PREFIX[sfx], "0f2a", 0xC0, rex),
                              inline=_inline(f"cvtsi2{sfx}", "int", bits)))
            for t, op in (("", "0f2d"), ("t", "0f2c")):  # cvt(t)ss2si eax/rax, xmm1
                ops.append(HostOp(f"cvt{t}{sfx}2si{bits}", _modrm(SFX_PREFIX[sfx], op, 0xC1, rex), "gpr",
                                  _inline(f"cvt{t}{sfx}2si", "gpr", bits)))
    for m, p, op in (("cvtsd2ss", "f2", "0f5a"), ("cvtss2sd", "f3", "0f5a"), ("cvtps2pd", "", "0f5a"),
                     ("cvtpd2ps", "66", "0f5a"), ("cvtdq2ps", "", "0f5b"), ("cvtps2dq", "66", "0f5b"),
                     ("cvttps2dq", "f3", "0f5b"), ("cvtpd2dq", "f2", "0fe6"), ("cvttpd2dq", "66", "0fe6"),
                     ("cvtdq2pd", "f3", "0fe6")):
        ops.append(HostOp(m, _modrm(p, op), inline=_inline(m)))
    return ops


OPS: dict[str, HostOp] = {o.name: o for o in _table()}

# The stub around each instruction. On entry (System V): rcx = out, r8/r9 = a (low, high),
# [rsp+8] = b low, [rsp+16] = b high, [rsp+24] = the guest's mxcsr. The host MXCSR is saved at
# [rsp-16] and the one the instruction runs under is at [rsp-12], in the red zone (a leaf
# function may use it; signal frames skip it); pushfq writes [rsp-8], which neither uses.
_SETUP = bytes.fromhex(
    "0fae5c24f0"  # stmxcsr [rsp-16]          the host's MXCSR, restored at the end
    "448b542418"  # mov r10d, [rsp+24]        the guest's
    "4589d3"  # mov r11d, r10d
    "4181e3c0ff0000"  # and r11d, 0xffc0      control bits only: flags start cleared
    "4181cb801f0000"  # or r11d, 0x1f80       every exception masked: the host never traps
    "4489d0"  # mov eax, r10d
    "f7d0"  # not eax
    "2500080000"  # and eax, 0x800            UE unmasked by the guest ...
    "c1e004"  # shl eax, 4
    "4109c3"  # or r11d, eax                  ... runs with FTZ, which flags every tiny result
    "44895c24f4"  # mov [rsp-12], r11d
    "66490f6ec0"  # movq xmm0, r8
    "66490f6ed1"  # movq xmm2, r9
    "660f6cc2"  # punpcklqdq xmm0, xmm2       xmm0 = a
    "f30f6f4c2408"  # movdqu xmm1, [rsp+8]    xmm1 = b
    "488b442408"  # mov rax, [rsp+8]          rax = b's low quadword
    "0fae5424f4"  # ldmxcsr [rsp-12]
)
_RFLAGS = bytes.fromhex("9c58")  # pushfq; pop rax
_RESTORE = bytes.fromhex(
    "0fae5c24f4"  # stmxcsr [rsp-12]          control bits and the flags the instruction raised
    "0fae5424f0"  # ldmxcsr [rsp-16]          the host's again
)
_STORE = {
    "xmm": bytes.fromhex("f30f7f01"),  # movdqu [rcx], xmm0
    "gpr": bytes.fromhex("488901" "48c7410800000000"),  # mov [rcx], rax; mov qword [rcx+8], 0
}
_STORE["flags"] = _STORE["gpr"]
_FLAGS_OUT = bytes.fromhex(
    "448b5c24f4"  # mov r11d, [rsp-12]
    "4183e33f"  # and r11d, 0x3f              raised
    "4489d0"  # mov eax, r10d
    "c1e807"  # shr eax, 7                    the masks, down to the flags' positions
    "f7d0"  # not eax
    "4421d8"  # and eax, r11d                 raised and unmasked
    "48c1e020"  # shl rax, 32
    "4d09da"  # or r10, r11                   mxcsr | raised (r10's high half is zero)
    "4c09d0"  # or rax, r10
    "48894110"  # mov [rcx+16], rax
    "c3"  # ret
)


def stub(op: HostOp) -> bytes:
    """The machine code of one helper (tests disassemble it)."""
    flags = _RFLAGS if op.result == "flags" else b""
    return _SETUP + op.code + flags + _RESTORE + _STORE[op.result] + _FLAGS_OUT


def fenv_stubs() -> dict[str, bytes]:
    """mxcsr.py's helpers (the units' helper ABI: rdi = the CPU state): x86_fenv_fold ORs the
    host's MXCSR flags into the guest's mxcsr and clears them; x86_fenv_load loads the host's
    MXCSR from the guest's with the flags cleared."""
    off = LAYOUT["mxcsr"].offset.to_bytes(4, "little")
    fold = bytes.fromhex(
        "0fae5c24f8"  # stmxcsr [rsp-8]
        "8b4424f8"  # mov eax, [rsp-8]
        "83e03f"  # and eax, 0x3f                 the flags raised since the last fold
    ) + b"\x09\x87" + off + bytes.fromhex(  # or [rdi+mxcsr], eax
        "836424f8c0"  # and dword [rsp-8], ~0x3f
        "0fae5424f8"  # ldmxcsr [rsp-8]
        "c3")  # ret
    load = b"\x8b\x87" + off + bytes.fromhex(  # mov eax, [rdi+mxcsr]
        "25c0ff0000"  # and eax, 0xffc0               control bits and masks, no flags
        "894424f8"  # mov [rsp-8], eax
        "0fae5424f8"  # ldmxcsr [rsp-8]
        "c3")  # ret
    return {"x86_fenv_fold": fold, "x86_fenv_load": load}


def py_entry(buf: int, call_rel: int) -> bytes:
    """A no-argument entry for Python: a ctypes call with nine arguments costs about three
    times one without, so Python writes a_lo a_hi b_lo b_hi mxcsr to the 8-word buffer at buf
    and reads the three results after them. call_rel: the stub's address minus the end of
    the call instruction, which is at offset PY_CALL_END."""
    return (b"\x49\xbb" + buf.to_bytes(8, "little")  # mov r11, buf
            + bytes.fromhex("4d8b03" "4d8b4b08")  # mov r8, [r11]; mov r9, [r11+8]
            + bytes.fromhex("498d4b28")  # lea rcx, [r11+40]: the results
            + bytes.fromhex("41ff7320" "41ff7318" "41ff7310")  # push mxcsr, b_hi, b_lo: the stub's stack args
            + b"\xe8" + call_rel.to_bytes(4, "little", signed=True)  # call the stub
            + bytes.fromhex("4883c418" "c3"))  # add rsp, 24; ret


PY_CALL_END = len(py_entry(0, 0)) - 5  # offset of the end of its call (add rsp and ret follow)
_P, _U = ctypes.c_void_p, ctypes.c_uint64
STUB_FN = ctypes.CFUNCTYPE(None, _P, _P, _P, _P, _U, _U, _U, _U, _U)  # state membase exitinfo out a b mxcsr
PY_FN = ctypes.CFUNCTYPE(None)


class _Code:
    """Every stub and its Python entry in one executable region, written once and then made
    read-only; buf is the Python entries' argument and result buffer (only the thread running
    the guest calls them)."""

    ALIGN = 16

    def __init__(self) -> None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise HqemuError("SSE under a non-default MXCSR needs an x86-64 host")
        self.buf = (ctypes.c_uint64 * 8)()
        buf = ctypes.addressof(self.buf)
        blobs = {name: stub(op) for name, op in OPS.items()}
        entry_len = len(py_entry(buf, 0))

        def rounded(n: int) -> int:
            return -(-n // self.ALIGN) * self.ALIGN

        raw = fenv_stubs()  # no Python entry: Python never calls them
        size = sum(rounded(len(b)) + rounded(entry_len) for b in blobs.values())
        size += sum(rounded(len(b)) for b in raw.values())
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        self.page = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        self.addr: dict[str, int] = {}  # the stubs, with the units' helper ABI
        py_addr: dict[str, int] = {}
        off = 0
        for name, blob in blobs.items():
            self.page[off:off + len(blob)] = blob
            self.addr[name] = base + off
            off += rounded(len(blob))
            entry = py_entry(buf, self.addr[name] - (base + off + PY_CALL_END))
            self.page[off:off + len(entry)] = entry
            py_addr[name] = base + off
            off += rounded(entry_len)
        for name, blob in raw.items():
            self.page[off:off + len(blob)] = blob
            self.addr[name] = base + off
            off += rounded(len(blob))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        if libc.mprotect(base, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise HqemuError(f"hostsse: mprotect failed (errno {ctypes.get_errno()})")
        self.fns = {name: STUB_FN(a) for name, a in self.addr.items()}
        self.py = {name: PY_FN(a) for name, a in py_addr.items()}


_code: _Code | None = None
_lock = threading.Lock()


def code() -> _Code:
    global _code
    if _code is None:
        with _lock:
            if _code is None:
                _code = _Code()
    return _code


def run(name: str, a: int, b: int, mxcsr: int) -> tuple[int, int]:
    """Run helper x86_sse_<name> once through the units' ABI (as native code calls it)."""
    c = code()
    out = (ctypes.c_uint64 * 3)()
    c.fns[name](None, None, None, ctypes.addressof(out), a & M64, a >> 64 & M64, b & M64, b >> 64 & M64,
                mxcsr & M64)
    return out[0] | out[1] << 64, out[2]


def helper_name(name: str) -> str:
    return "x86_sse_" + name


def _impl(name: str):
    def impl(env, a: int, b: int, mxcsr: int) -> tuple[int, int]:
        c = _code or code()
        buf = c.buf
        buf[0:5] = (a & M64, a >> 64, b & M64, b >> 64, mxcsr)
        c.py[name]()
        return buf[5] | buf[6] << 64, buf[7]

    impl.__name__ = helper_name(name)
    return impl


for _name in OPS:
    register(Helper(helper_name(_name), (I128, I128, I64), (I128, I64),
                    doc=f"{_name} on the host under the guest's MXCSR: (result, mxcsr | flags)",
                    host_insn=OPS[_name].inline),
             _impl(_name))
    NATIVE[helper_name(_name)] = (lambda n: lambda: code().addr[n])(_name)

__all__ = ["HostOp", "OPS", "stub", "run", "code", "helper_name", "SFX_PREFIX"]
