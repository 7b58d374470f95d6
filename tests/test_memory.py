"""GuestMemory against the host kernel: the same mmap/munmap/mprotect/mremap sequences run on a
window of the host's own address space and on guest memory must give the same results, page
protections and bytes; the fast tables and the host protections of the reservation are
recomputed by brute force from /proc/self/maps and the mapping list."""

from __future__ import annotations

import ctypes
import errno
import mmap as pymmap
import os
import random

import pytest

from hqemu.errors import GuestFault
from hqemu.linux import hostmm
from hqemu.linux.memory import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    GuestMemory,
)

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
SPACE = 64 << 20


@pytest.fixture
def mem():
    m = GuestMemory(SPACE)
    yield m
    m.close()


def host_maps(lo: int, hi: int) -> list[tuple[int, int, str]]:
    """(start, end, 'rwx' flags) of the host mappings overlapping [lo, hi), clipped."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            rng, perms = line.split()[:2]
            s, e = (int(x, 16) for x in rng.split("-"))
            if s < hi and e > lo:
                out.append((max(s, lo), min(e, hi), perms[:3]))
    return out


def perms_to_prot(p: str) -> int:
    return ((PROT_READ if p[0] == "r" else 0) | (PROT_WRITE if p[1] == "w" else 0)
            | (PROT_EXEC if p[2] == "x" else 0))


def page_prots(maps, lo: int, npages: int) -> list[int | None]:
    """Per page: None if unmapped, else its PROT bits."""
    out: list[int | None] = [None] * npages
    for s, e, p in maps:
        for a in range(s, e, PAGE):
            out[(a - lo) // PAGE] = p if isinstance(p, int) else perms_to_prot(p)
    return out


# ---------------------------------------------------------------------------------------------
# differential: guest memory vs the host kernel on a window of the host address space

HOST_WIN = 0x300000000000  # far below where the host kernel places mappings on its own
GUEST_WIN = 0x1000000
NPG = 24
KERNEL = tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit())


@pytest.fixture
def host_window():
    size = NPG * PAGE
    r = hostmm.raw_mmap(HOST_WIN, size, 0, ANON | MAP_FIXED_NOREPLACE)
    if r != HOST_WIN:
        pytest.skip("host window not free")
    hostmm.unmap(HOST_WIN, size)
    yield HOST_WIN
    hostmm.raw_munmap(HOST_WIN, size)


def readable_host(p: str) -> bool:
    return p[0] == "r" or p[1] == "w"  # exec-only pages may be unreadable (protection keys)


def random_op(rng: random.Random):
    kind = rng.choice(["mmap", "mmap", "noreplace", "munmap", "mprotect", "mprotect", "mremap", "move",
                       "dontunmap"])
    pg = rng.randrange(NPG)
    off = pg * PAGE + (0x10 if rng.random() < 0.04 else 0)
    room = NPG - pg
    npg = rng.randrange(0, room + 1) if rng.random() < 0.1 else rng.randrange(1, min(room, 8) + 1)
    length = npg * PAGE - (rng.randrange(1, PAGE) if npg and rng.random() < 0.2 else 0)
    prot = rng.choice([0, PROT_READ, RW, PROT_READ | PROT_EXEC, RW | PROT_EXEC, PROT_WRITE])
    if kind in ("mmap", "noreplace"):
        return (kind, off, length, prot)
    if kind in ("munmap", "mprotect"):
        return (kind, off, length, prot)
    new_len = rng.randrange(1, room + 1) * PAGE
    if kind == "mremap":
        return (kind, off, length, new_len, 0, 0)
    if kind == "dontunmap":
        new_len = max(PAGE, length + PAGE - 1) & ~(PAGE - 1)
    dst = rng.randrange(0, NPG - new_len // PAGE + 1) * PAGE
    flags = MREMAP_MAYMOVE | MREMAP_FIXED | (MREMAP_DONTUNMAP if kind == "dontunmap" else 0)
    return ("mremap", off, length if kind != "dontunmap" else new_len, new_len, flags, dst)


def apply_host(op, w: int) -> int:
    kind, off = op[0], op[1]
    if kind == "mmap":
        return hostmm.raw_mmap(w + off, op[2], op[3], ANON | MAP_FIXED)
    if kind == "noreplace":
        return hostmm.raw_mmap(w + off, op[2], op[3], ANON | MAP_FIXED_NOREPLACE)
    if kind == "munmap":
        return hostmm.raw_munmap(w + off, op[2])
    if kind == "mprotect":
        return hostmm.raw_mprotect(w + off, op[2], op[3])
    return hostmm.raw_mremap(w + off, op[2], op[3], op[4], w + op[5])


def apply_guest(op, m: GuestMemory, g: int) -> int:
    kind, off = op[0], op[1]
    if kind == "mmap":
        return m.mmap(g + off, op[2], op[3], ANON | MAP_FIXED, -1, 0)
    if kind == "noreplace":
        return m.mmap(g + off, op[2], op[3], ANON | MAP_FIXED_NOREPLACE, -1, 0)
    if kind == "munmap":
        return m.munmap(g + off, op[2])
    if kind == "mprotect":
        return m.mprotect(g + off, op[2], op[3])
    return m.mremap(g + off, op[2], op[3], op[4], g + op[5])


def compare_state(m: GuestMemory, w: int, g: int, ctx: str) -> None:
    hmaps = host_maps(w, w + NPG * PAGE)
    hp = page_prots(hmaps, w, NPG)
    gp = page_prots([(max(s, g), min(e, g + NPG * PAGE), p) for s, e, p, _ in m.mappings()
                     if s < g + NPG * PAGE and e > g], g, NPG)
    assert hp == gp, ctx
    for s, e, p in hmaps:
        if readable_host(p):
            assert ctypes.string_at(s, e - s) == m.read(g + (s - w), e - s), ctx


def same_vma_bounds(op, m: GuestMemory, w: int, g: int) -> bool:
    """Whether the mapping holding mremap's source has the same bounds on both sides. Linux
    does not merge neighbours whose pages came from different places (an anon_vma detail), so
    its mapping list can be finer than ours; an mremap that depends on that is skipped."""
    off = op[1]
    hmaps = host_maps(w, w + NPG * PAGE)
    h = [(s - w, e - w) for s, e, _ in hmaps if s <= w + off < e]
    gv = [(max(s, g) - g, min(e, g + NPG * PAGE) - g) for s, e, _, _ in m.mappings() if s <= g + off < e]
    if h and off + op[2] > h[0][1] and KERNEL < (6, 17):
        return False  # a move of several mappings: refused before Linux 6.17, hqemu does it
    return h == gv



@pytest.mark.parametrize("seed", range(8))
def test_matches_host_kernel(mem, host_window, seed):
    rng = random.Random(seed)
    w, g = host_window, GUEST_WIN
    history = []
    for step in range(120):
        op = random_op(rng)
        if op[0] == "mremap" and not same_vma_bounds(op, mem, w, g):
            continue
        history.append(op)
        hr, gr = apply_host(op, w), apply_guest(op, mem, g)
        if hr >= 0 and gr >= 0 and op[0] != "munmap" and op[0] != "mprotect":
            hr, gr = hr - w, gr - g
        assert hr == gr, f"step {step}: {op} host {hr} guest {gr}; history {history[-8:]}"
        compare_state(mem, w, g, f"after step {step}: {history[-8:]}")
        # scribble on a writable page, identically on both sides
        for s, e, p in host_maps(w, w + NPG * PAGE):
            if p[1] == "w" and rng.random() < 0.5:
                a = rng.randrange(s, e - 8)
                data = rng.randbytes(8)
                ctypes.memmove(a, data, 8)
                mem.write(g + (a - w), data)


def test_mmap_errors_match_host(mem, host_window, tmp_path):
    w, g = host_window, GUEST_WIN
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    fd_ro = os.open(path, os.O_RDONLY)
    fd_wo = os.open(path, os.O_WRONLY)
    fd_dir = os.open(tmp_path, os.O_RDONLY)
    closed = os.open(path, os.O_RDONLY)
    os.close(closed)
    try:
        cases = [
            (0, 0, RW, ANON | MAP_FIXED, -1, 0),  # length 0
            (0x10, PAGE, RW, ANON | MAP_FIXED, -1, 0),  # unaligned fixed address
            (0, PAGE, RW, MAP_ANONYMOUS, -1, 0),  # neither private nor shared
            (0, PAGE, RW, MAP_PRIVATE, closed, 0),  # closed fd
            (0, PAGE, PROT_READ, MAP_PRIVATE, fd_wo, 0),  # write-only file
            (0, PAGE, PROT_READ, MAP_PRIVATE, fd_dir, 0),  # a directory
            (0, PAGE, RW, MAP_SHARED, fd_ro, 0),  # shared writable on a read-only fd
            (0, PAGE, PROT_READ, MAP_PRIVATE, fd_ro, 100),  # unaligned offset
        ]
        for a, n, prot, flags, fd, off in cases:
            hr = hostmm.raw_mmap(w + a if flags & MAP_FIXED else 0, n, prot, flags, fd, off)
            if hr >= 0:
                hostmm.raw_munmap(hr, n)
            gr = mem.mmap(g + a if flags & MAP_FIXED else 0, n, prot, flags, fd, off)
            assert gr < 0 and hr == gr, (a, n, prot, flags, fd, off)
        # MAP_FIXED_NOREPLACE over an existing mapping
        assert hostmm.raw_mmap(w, PAGE, RW, ANON | MAP_FIXED) == w
        assert mem.mmap(g, PAGE, RW, ANON | MAP_FIXED, -1, 0) == g
        hr = hostmm.raw_mmap(w, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE)
        assert hr == mem.mmap(g, 2 * PAGE, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0) == -errno.EEXIST
        # unaligned munmap / mremap, mprotect with bad bits
        assert hostmm.raw_munmap(w + 1, PAGE) == mem.munmap(g + 1, PAGE) == -errno.EINVAL
        assert hostmm.raw_munmap(w, 0) == mem.munmap(g, 0) == -errno.EINVAL
        assert hostmm.raw_mprotect(w, PAGE, 0x40) == mem.mprotect(g, PAGE, 0x40) == -errno.EINVAL
        assert hostmm.raw_mremap(w, PAGE, 0, 0) == mem.mremap(g, PAGE, 0, 0) == -errno.EINVAL
        assert hostmm.raw_mremap(w, PAGE, PAGE, 8) == mem.mremap(g, PAGE, PAGE, 8) == -errno.EINVAL
        assert (hostmm.raw_mremap(w, PAGE, PAGE, MREMAP_FIXED, w + 4 * PAGE)
                == mem.mremap(g, PAGE, PAGE, MREMAP_FIXED, g + 4 * PAGE) == -errno.EINVAL)
        assert (hostmm.raw_mremap(w + 8 * PAGE, PAGE, 2 * PAGE, MREMAP_MAYMOVE)
                == mem.mremap(g + 8 * PAGE, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == -errno.EFAULT)
    finally:
        for fd in (fd_ro, fd_wo, fd_dir):
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# the fast tables and the host protections, recomputed by brute force


def check_tables(m: GuestMemory, code_pages: set[int]) -> None:
    npages = m.npages
    prots = page_prots([(s, e, p) for s, e, p, _ in m.mappings()], 0, npages)

    def readable(p: int) -> bool:
        return p < npages and prots[p] is not None and prots[p] != 0

    def writable(p: int) -> bool:
        return p < npages and prots[p] is not None and bool(prots[p] & PROT_WRITE) and p not in code_pages

    fr = bytes(1 if readable(p) and readable(p + 1) else 0 for p in range(npages))
    fw = bytes(1 if writable(p) and writable(p + 1) else 0 for p in range(npages))
    assert bytes(m.fast_r[:npages]) == fr
    assert bytes(m.fast_w[:npages]) == fw
    # the host pages of the reservation carry the guest's protection
    host = page_prots(host_maps(m.base, m.base + m.size), m.base, npages)
    for p in range(npages):
        g = prots[p] or 0
        want = "rw-" if g & PROT_WRITE else "r--" if g else "---"
        got = host[p]
        assert got is not None, f"page {p} left the reservation"
        assert got == perms_to_prot(want), f"page {p}: host {got} guest {g}"


def test_fast_tables_exact_under_random_changes():
    rng = random.Random(7)
    with GuestMemory(4 << 20) as m:  # 1024 pages: the brute force stays cheap
        lo = 0x10000
        code: set[int] = set()
        npages = m.npages
        for _ in range(150):
            p = rng.randrange(lo // PAGE, npages)
            n = rng.randrange(1, min(40, npages - p) + 1) * PAGE
            a = p * PAGE
            prot = rng.choice([0, PROT_READ, RW, PROT_READ | PROT_EXEC, PROT_WRITE, PROT_EXEC])
            k = rng.randrange(6)
            if k == 0:
                assert m.mmap(a, n, prot, ANON | MAP_FIXED, -1, 0) == a
                code -= set(range(p, p + n // PAGE))
            elif k == 1:
                assert m.munmap(a, n) == 0
                code -= set(range(p, p + n // PAGE))
            elif k == 2:
                m.mprotect(a, n, prot)
            elif k == 3:
                m.mark_code(a, n)
                code |= {q for q in range(p, p + n // PAGE) if m.is_mapped(q * PAGE)}
            elif k == 4:
                m.clear_code(a, n)
                code -= set(range(p, p + n // PAGE))
            else:
                r = m.mmap(0, n, prot, ANON, -1, 0)
                assert r > 0 and r % PAGE == 0
            check_tables(m, code)
        # the last page: page p+1 is outside the space, so fast_r must be 0 there
        assert m.mmap(m.size - PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0) == m.size - PAGE
        assert m.fast_r[npages - 1] == 0 and m.fast_w[npages - 1] == 0
        check_tables(m, code)


# ---------------------------------------------------------------------------------------------
# faults


def test_every_bad_access_faults(mem):
    a = mem.mmap(0, 2 * PAGE, PROT_READ, ANON, -1, 0)
    b = a + 2 * PAGE
    assert not mem.is_mapped(b)
    assert mem.mmap(a - PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0) == a - PAGE

    def fault(fn, *args):
        with pytest.raises(GuestFault) as e:
            fn(*args)
        return e.value

    assert fault(mem.load, 0, 8).addr == 0  # page 0 is never mapped
    assert fault(mem.load, b, 1).addr == b  # unmapped
    assert fault(mem.load, b - 4, 8).addr == b  # read across into an unmapped page
    e = fault(mem.store, a, 4, 1)  # read-only
    assert e.addr == a and e.write
    assert fault(mem.store, a - 4, 8, 1).addr == a  # write across into a read-only page
    assert fault(mem.write, a + 10, b"xy").write
    assert fault(mem.read, b - 1, 2).addr == b
    assert fault(mem.fetch, a, 16).addr == a  # not executable
    assert fault(mem.load, SPACE, 1).addr == SPACE  # beyond the space
    assert fault(mem.load, -8, 8).addr == -8
    assert fault(mem.load, SPACE - 4, 8).addr == SPACE - 4  # the last page is not mapped here
    mem.mprotect(a, PAGE, 0)  # mapped but PROT_NONE: inaccessible
    assert fault(mem.load, a, 1).addr == a
    assert mem.load(a - 8, 8) == 0


def test_read_cstr_stops_at_nul_or_fault(mem):
    a = mem.mmap(0, PAGE, RW, ANON, -1, 0)
    mem.write(a + PAGE - 5, b"abcde")  # no NUL before the end of the mapping
    with pytest.raises(GuestFault) as e:
        mem.read_cstr(a + PAGE - 5)
    assert e.value.addr == a + PAGE
    mem.write(a, b"hello\0world")
    assert mem.read_cstr(a) == b"hello"
    assert mem.read_cstr(a + 6, limit=3) == b"wor"


def test_fetch_stops_at_non_executable_page(mem):
    a = mem.mmap(0, 3 * PAGE, PROT_READ | PROT_EXEC, ANON, -1, 0)
    mem.mprotect(a + 2 * PAGE, PAGE, PROT_READ)
    assert len(mem.fetch(a + PAGE - 3, 16)) == 16  # crosses into the next executable page
    assert len(mem.fetch(a + 2 * PAGE - 3, 16)) == 3
    assert len(mem.fetch(a, 1 << 20)) == 2 * PAGE


def test_poke_opens_read_only_pages_and_restores_them(mem):
    a = mem.mmap(0, 2 * PAGE, PROT_READ | PROT_EXEC, ANON, -1, 0)
    mem._poke(a + PAGE - 2, b"\x90\x90\xc3\xcc")
    assert mem.read(a + PAGE - 2, 4) == b"\x90\x90\xc3\xcc"
    with pytest.raises(GuestFault):
        mem.write(a, b"x")  # a guest write (read() into this buffer) still fails: EFAULT
    h = mem.base + a
    assert host_maps(h, h + 2 * PAGE) == [(h, h + 2 * PAGE, "r--")]
    with pytest.raises(GuestFault):
        mem._poke(a + 2 * PAGE, b"x")  # not mapped at all


def test_code_pages_take_the_slow_path_and_report_writes(mem):
    a = mem.mmap(0, 3 * PAGE, RW | PROT_EXEC, ANON, -1, 0)
    p = a // PAGE
    seen = []
    mem.on_code_write = lambda addr, n: seen.append((addr, n, mem.load(addr, n)))
    assert mem.fast_w[p] == mem.fast_w[p + 1] == 1
    mem.mark_code(a + PAGE, 10)
    assert (mem.fast_w[p - 1], mem.fast_w[p], mem.fast_w[p + 1], mem.fast_w[p + 2]) == (0, 0, 0, 0)
    assert mem.fast_r[p] == 1
    mem.store(a, 8, 1)  # not a code page: no report
    mem.store(a + PAGE + 8, 4, 0xDEADBEEF)  # reported after the write: the callback sees the value
    mem.write(a + PAGE - 2, b"abcd")  # crosses into the code page
    assert seen == [(a + PAGE + 8, 4, 0xDEADBEEF), (a + PAGE - 2, 4, int.from_bytes(b"abcd", "little"))]
    seen.clear()
    mem.munmap(a, 3 * PAGE)  # code that goes away is stale too
    assert seen and seen[0][:2] == (a + PAGE, PAGE)


# ---------------------------------------------------------------------------------------------
# address choice, files, mremap, brk


def test_mmap_places_top_down_below_mmap_base_and_never_overlaps(mem):
    got = []
    for n in (PAGE, 3 * PAGE, 5 * PAGE, PAGE):
        a = mem.mmap(0, n, RW, ANON, -1, 0)
        assert a + n <= mem.mmap_base and a % PAGE == 0
        got.append((a, a + n))
    assert got[0][1] == mem.mmap_base
    for upper, lower in zip(got, got[1:]):
        assert lower[1] == upper[0]  # each one right below the previous
    hint = 0x200000
    assert mem.mmap(hint, PAGE, RW, ANON, -1, 0) == hint  # a free hint is honoured
    b = mem.mmap(hint, PAGE, RW, ANON, -1, 0)  # an occupied one is not
    assert b != hint and b < got[-1][0]
    assert mem.mmap(0, SPACE, RW, ANON, -1, 0) == -errno.ENOMEM
    assert mem.mmap(0, SPACE * 4, RW, ANON, -1, 0) == -errno.ENOMEM
    starts = sorted(mem.mappings())
    for x, y in zip(starts, starts[1:]):
        assert x[1] <= y[0]


def test_file_mapping_matches_host_mmap(mem, tmp_path):
    data = bytes(random.Random(3).randbytes(3 * PAGE + 123))
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in (0, PAGE, 3 * PAGE):
            n = len(data) - off
            a = mem.mmap(0, n, PROT_READ, MAP_PRIVATE, fd, off)
            assert a > 0
            with pymmap.mmap(fd, n, pymmap.MAP_PRIVATE, pymmap.PROT_READ, offset=off) as ref:
                assert mem.read(a, n) == ref[:n]
                # the rest of the last page reads as zero on the host too
                tail = (-n) % PAGE
                assert mem.read(a + n, tail) == bytes(tail)
            assert mem.prot_of(a) == PROT_READ
            assert any(s == a and name == str(path) for s, e, p, name in mem.mappings())
        # a private writable copy: writes stay in memory, the file keeps its bytes
        a = mem.mmap(0, PAGE, RW, MAP_PRIVATE, fd, 0)
        mem.write(a, b"XYZ")
        assert path.read_bytes() == data
    finally:
        os.close(fd)


def test_mremap_grows_in_place_or_moves_with_contents(mem):
    a = mem.mmap(0, 2 * PAGE, RW, ANON, -1, 0)
    mem.write(a, b"first")
    mem.write(a + PAGE, b"second")
    mem.mmap(a + 2 * PAGE, PAGE, PROT_READ, ANON | MAP_FIXED, -1, 0)  # blocks growth in place
    assert mem.mremap(a, 2 * PAGE, 4 * PAGE, 0) == -errno.ENOMEM
    b = mem.mremap(a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE)
    assert b > 0 and b != a
    assert mem.read(b, 5) == b"first" and mem.read(b + PAGE, 6) == b"second"
    assert mem.read(b + 2 * PAGE, 2 * PAGE) == bytes(2 * PAGE)
    assert not mem.is_mapped(a) and mem.prot_of(b + 3 * PAGE) == RW
    assert mem.mremap(b, 4 * PAGE, PAGE, 0) == b  # shrink
    assert not mem.is_mapped(b + PAGE)
    c = mem.mremap(b, PAGE, 3 * PAGE, 0)  # in place: the pages above are free again
    assert c == b and mem.read(c, 5) == b"first"


def test_brk(mem):
    top_seg = 0x400000
    mem.mmap(top_seg, 0x3000, RW, ANON | MAP_FIXED, -1, 0)
    mem.set_brk_base(top_seg + 0x2F00)
    base = top_seg + 0x3000
    assert mem.brk(0) == base  # a query
    assert mem.brk(base - 1) == base  # below the start: refused
    assert mem.brk(base + 10) == base + 10
    mem.write(base, b"\xff" * 10)
    assert mem.brk(base + 3 * PAGE + 1) == base + 3 * PAGE + 1
    assert mem.read(base + 10, 3 * PAGE - 9) == bytes(3 * PAGE - 9)  # grown pages are zero
    assert mem.brk(base) == base
    assert not mem.is_mapped(base)
    assert mem.brk(base + PAGE) == base + PAGE
    assert mem.read(base, 10) == bytes(10)  # shrunk then regrown: zero again
    assert [n for s, e, p, n in mem.mappings() if s <= base < e] == ["[heap]"]
    # a mapping in the way (or right above the new break) stops the heap
    mem.mmap(base + 8 * PAGE, PAGE, RW, ANON | MAP_FIXED, -1, 0)
    assert mem.brk(base + 8 * PAGE) == base + PAGE
    assert mem.brk(base + 7 * PAGE + 1) == base + PAGE  # Linux keeps a free page above the break
    assert mem.brk(base + 7 * PAGE) == base + 7 * PAGE
    assert mem.brk(base + 6 * PAGE) == base + 6 * PAGE
    assert mem.brk(SPACE + PAGE) == base + 6 * PAGE


def test_host_view_is_shared_with_native_code(mem):
    a = mem.mmap(0, PAGE, RW, ANON, -1, 0)
    ctypes.memmove(mem.base + a + 16, b"native", 6)  # what translated code would do
    assert mem.read(a + 16, 6) == b"native"
    assert mem.view[a + 16] == ord("n")
