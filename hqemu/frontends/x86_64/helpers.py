"""x86-64 helpers: the instructions lifted as a call into Python rather than as IR.

    x86_cpuid(leaf, subleaf) -> (eax, ebx, ecx, edx)     the CPU model of misc.py (pure)
    x86_rdtsc() -> tsc                                    a 1 GHz monotonic counter
    x86_rep_movs / lods (size, addr_size, src_base)       a whole rep loop, exact
    x86_rep_stos (size, addr_size)
    x86_rep_cmps (size, addr_size, while_equal, src_base) repe/repne, stops like hardware
    x86_rep_scas (size, addr_size, while_equal)

The rep helpers read rcx/rsi/rdi/rax/df from env.state and move memory with env.mem.read and
write (checked; writes to code pages are reported by GuestMemory). src_base is the fs/gs base
of a segment override on the source (0 without one): the source is read at src_base + rsi (at
the address size), while rsi itself steps as always. Bulk moves go in chunks of
at most CHUNK bytes; a move whose destination overlaps the source ahead of it, which the
hardware turns into a repeating pattern, is copied in pattern-sized pieces (or element by
element when the distance is not a multiple of the element size), never with memmove.

    >>> IMPLS["x86_rep_movs"](env, 8, 8, 0)     # rep movsq with the registers in env.state
"""

from __future__ import annotations

import time

from hqemu.ir import I64, Helper, register

from .cpu import LAYOUT
from .misc import cpuid

CHUNK = 1 << 20  # bytes moved per read/write pair in the bulk paths
PAGE = 4096
M64 = (1 << 64) - 1
_I = {g: LAYOUT[g].offset >> 3
      for g in ("rax", "rcx", "rsi", "rdi", "df", "cf", "pf", "af", "zf", "sf", "of")}
_T0 = time.monotonic_ns()


def _cpuid(env, leaf: int, sub: int) -> tuple[int, int, int, int]:
    return cpuid(leaf, sub)


def _rdtsc(env) -> int:
    return (time.monotonic_ns() - _T0 + 1_000_000) & M64


# --- rep string ops ------------------------------------------------------------------------------
def _amask(asize: int) -> int:
    return M64 if asize == 8 else 0xFFFFFFFF


def _put(st, name: str, value: int, asize: int) -> None:
    """Write a count/pointer register at the address size (32-bit writes zero-extend)."""
    st[_I[name]] = value & _amask(asize)


def _put_acc(st, size: int, value: int) -> None:
    """al/ax merge into rax; eax zero-extends; rax is whole."""
    i = _I["rax"]
    if size == 8:
        st[i] = value
    elif size == 4:
        st[i] = value & 0xFFFFFFFF
    else:
        m = (1 << (8 * size)) - 1
        st[i] = st[i] & ~m & M64 | value & m


def _move(mem, si: int, di: int, n: int, size: int, down: bool) -> None:
    total = n * size
    if down:  # the bytes covered, lowest first, and the distance the copy runs toward
        lo_s, lo_d, dist = si + size - total, di + size - total, si - di
    else:
        lo_s, lo_d, dist = si, di, di - si
    if not 0 < dist < total:  # the copy never reads a byte it wrote: bulk, in copy order
        piece = max(size, CHUNK - CHUNK % size)
    elif dist % size == 0:  # each piece reads what the previous one wrote: the pattern
        piece = dist
    else:  # elements straddle the pattern: only the element loop is exact
        step = -size if down else size
        for i in range(n):
            mem.write(di + i * step, mem.read(si + i * step, size))
        return
    offsets = range(0, total, piece)
    for off in (reversed(offsets) if down else offsets):
        m = min(piece, total - off)
        mem.write(lo_d + off, mem.read(lo_s + off, m))


def rep_movs(env, size: int, asize: int, src_base: int) -> None:
    st, am = env.state, _amask(asize)
    n = st[_I["rcx"]] & am
    if n == 0:
        return
    down = bool(st[_I["df"]] & 1)
    si, di = st[_I["rsi"]] & am, st[_I["rdi"]] & am
    _move(env.mem, (si + src_base) & M64, di, n, size, down)
    step = -size if down else size
    _put(st, "rsi", si + n * step, asize)
    _put(st, "rdi", di + n * step, asize)
    _put(st, "rcx", 0, asize)


def rep_stos(env, size: int, asize: int) -> None:
    st, am = env.state, _amask(asize)
    n = st[_I["rcx"]] & am
    if n == 0:
        return
    down = bool(st[_I["df"]] & 1)
    di = st[_I["rdi"]] & am
    total = n * size
    lo = di + size - total if down else di
    elem = (st[_I["rax"]] & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    per = max(1, CHUNK // size)
    offsets = range(0, total, per * size)
    for off in (reversed(offsets) if down else offsets):
        m = min(per * size, total - off)
        env.mem.write(lo + off, elem * (m // size))
    _put(st, "rdi", di + n * (-size if down else size), asize)
    _put(st, "rcx", 0, asize)


def rep_lods(env, size: int, asize: int, src_base: int) -> None:
    st, am = env.state, _amask(asize)
    n = st[_I["rcx"]] & am
    if n == 0:
        return
    down = bool(st[_I["df"]] & 1)
    si = st[_I["rsi"]] & am
    lin = (si + src_base) & M64
    step = -size if down else size
    total = n * size
    lo = lin + size - total if down else lin
    for off in range(0, total, CHUNK):  # every element is read (and may fault); the last one stays
        env.mem.read(lo + off, min(CHUNK, total - off))
    _put_acc(st, size, env.mem.load(lin + (n - 1) * step, size))
    _put(st, "rsi", si + n * step, asize)
    _put(st, "rcx", 0, asize)


def _window(addr: int, size: int, down: bool, left: int) -> int:
    """How many elements from addr on (in the copy direction) lie in addr's page; at least one."""
    if down:
        room = (addr & (PAGE - 1)) // size + 1
    else:
        room = (PAGE - (addr & (PAGE - 1))) // size
    return max(1, min(left, room))


def _read_elems(mem, start: int, m: int, size: int, down: bool) -> list[int]:
    """m elements from start on, in the order the instruction visits them."""
    data = mem.read(start - (m - 1) * size if down else start, m * size)
    xs = [int.from_bytes(data[j:j + size], "little") for j in range(0, len(data), size)]
    return xs[::-1] if down else xs


def _sub_flags(st, a: int, c: int, size: int) -> None:
    w = 8 * size
    r = (a - c) & ((1 << w) - 1)
    st[_I["cf"]] = int(a < c)
    st[_I["zf"]] = int(r == 0)
    st[_I["sf"]] = r >> (w - 1)
    st[_I["of"]] = ((a ^ c) & (a ^ r)) >> (w - 1) & 1
    st[_I["af"]] = (a ^ c ^ r) >> 4 & 1
    st[_I["pf"]] = 1 - bin(r & 0xFF).count("1") % 2


def _scan(env, size: int, asize: int, while_equal: int, with_src: bool, src_base: int = 0) -> None:
    """repe/repne cmps (with_src) or scas: compare element by element until the count runs
    out or the condition fails; the flags are those of the last comparison."""
    st, am, mem = env.state, _amask(asize), env.mem
    n = st[_I["rcx"]] & am
    if n == 0:
        return
    down = bool(st[_I["df"]] & 1)
    step = -size if down else size
    si, di = st[_I["rsi"]] & am, st[_I["rdi"]] & am
    lin = (si + src_base) & M64  # where the source elements are read
    acc = st[_I["rax"]] & ((1 << (8 * size)) - 1)
    done = 0
    a = c = 0
    stop = False
    while done < n and not stop:
        # read only the pages the hardware touches: whole elements within the current pages
        m = _window(di + done * step, size, down, n - done)
        if with_src:
            m = _window(lin + done * step, size, down, m)
        cs = _read_elems(mem, di + done * step, m, size, down)
        as_ = _read_elems(mem, lin + done * step, m, size, down) if with_src else [acc] * m
        for a, c in zip(as_, cs):
            done += 1
            if (a == c) != bool(while_equal):
                stop = True
                break
    _sub_flags(st, a, c, size)
    _put(st, "rcx", n - done, asize)
    _put(st, "rdi", di + done * step, asize)
    if with_src:
        _put(st, "rsi", si + done * step, asize)


def rep_cmps(env, size: int, asize: int, while_equal: int, src_base: int) -> None:
    _scan(env, size, asize, while_equal, True, src_base)


def rep_scas(env, size: int, asize: int, while_equal: int) -> None:
    _scan(env, size, asize, while_equal, False)


_STATE_MEM = dict(reads_state=True, writes_state=True, reads_mem=True, writes_mem=True)
register(Helper("x86_cpuid", (I64, I64), (I64, I64, I64, I64), doc="CPUID leaf, subleaf"), _cpuid)
register(Helper("x86_rdtsc", (), (I64,), reads_state=True,
                doc="time stamp counter; reads_state keeps two reads from being merged"), _rdtsc)
register(Helper("x86_rep_movs", (I64, I64, I64), (), **_STATE_MEM,
                doc="rep movs: size, address size, source segment base"), rep_movs)
register(Helper("x86_rep_stos", (I64, I64), (), **_STATE_MEM, doc="rep stos: size, address size"), rep_stos)
register(Helper("x86_rep_lods", (I64, I64, I64), (), **_STATE_MEM,
                doc="rep lods: size, address size, source segment base"), rep_lods)
register(Helper("x86_rep_cmps", (I64, I64, I64, I64), (), **_STATE_MEM,
                doc="repe/repne cmps: size, address size, 1 = while equal, source segment base"), rep_cmps)
register(Helper("x86_rep_scas", (I64, I64, I64), (), **_STATE_MEM,
                doc="repe/repne scas: size, address size, 1 = while equal"), rep_scas)

__all__ = ["rep_movs", "rep_stos", "rep_lods", "rep_cmps", "rep_scas", "CHUNK"]
