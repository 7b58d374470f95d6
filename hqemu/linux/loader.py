"""The ELF loader: maps a static Linux executable into guest memory and builds its first stack.

Every malformed input becomes one HqemuError, "PATH: what is wrong" (the CLI prints it after
"hqemu: "): the file is checked byte range by byte range before pyelftools parses a structure,
so no parser exception (and no traceback) can reach the user.

    >>> fe = loader.probe("./a.out")                      # checks the header, picks the frontend
    >>> env = Env(params, fe, GuestMemory(params.guest_space), log)
    >>> image = loader.load(env, "./a.out", ["a.out", "x"], ["PATH=/bin"])
    >>> fe.init_cpu(env.cpu, image.entry, image.sp)
"""

from __future__ import annotations

import mmap as _pymmap
import os
import stat
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from elftools.elf.enums import ENUM_E_MACHINE
from elftools.elf.structs import ELFStructs

from hqemu import frontends
from hqemu.errors import HqemuError

from . import memory as M
from .memory import PAGE, PAGE_MASK, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory

if TYPE_CHECKING:
    from hqemu.env import Env
    from hqemu.frontends.base import Frontend

EHDR_SIZE, PHDR_SIZE = 64, 56
PF_X, PF_W, PF_R = 1, 2, 4
ET_DYN_BASE = 0x555555554000  # where Linux puts a PIE when ASLR is off, if the space is that large

# auxiliary vector tags (include/uapi/linux/auxvec.h)
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51

_MACHINE_NAMES = {v: k for k, v in ENUM_E_MACHINE.items() if isinstance(v, int)}
_E_TYPES = {1: "a relocatable object (ET_REL)", 4: "a core dump (ET_CORE)"}


@dataclass
class LoadedImage:
    path: str  # as given on the command line
    fe: Frontend  # chosen by e_machine
    entry: int  # guest pc to start at (load bias included)
    sp: int  # initial stack pointer: points at argc, 16-byte aligned
    phdr: int  # guest address of the program headers (AT_PHDR)
    phnum: int  # AT_PHNUM
    load_bias: int  # 0 for ET_EXEC; where a static-pie was placed minus its link address
    brk: int  # first heap byte (page aligned, right after the highest segment)
    stack_top: int  # end of the stack mapping
    stack_size: int  # bytes mapped below stack_top
    exec_stack: bool  # PT_GNU_STACK asked for an executable stack
    auxv: list[tuple[int, int]] = field(default_factory=list)  # as written on the stack, AT_NULL last


@dataclass
class _Seg:
    index: int  # position in the program header table, as readelf -l numbers it
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def prot(self) -> int:
        return ((PROT_READ if self.flags & PF_R else 0) | (PROT_WRITE if self.flags & PF_W else 0)
                | (PROT_EXEC if self.flags & PF_X else 0))


@dataclass
class _Elf:
    machine: str
    e_type: int
    entry: int
    phoff: int
    phnum: int
    loads: list[_Seg]  # PT_LOAD with memsz > 0, ascending vaddr
    pt_phdr: int | None
    exec_stack: bool


def _err(path: str, what: str) -> HqemuError:
    return HqemuError(f"{path}: {what}")


def _open(path: str) -> _pymmap.mmap | bytes:
    """The file's bytes, or a one-line error for everything that makes it unreadable."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise _err(path, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise _err(path, "not a regular file")
        with open(path, "rb") as f:
            if st.st_size == 0:
                return b""
            return _pymmap.mmap(f.fileno(), 0, prot=_pymmap.PROT_READ)
    except OSError as e:
        raise _err(path, e.strerror or str(e)) from None
    except ValueError as e:  # a path with a NUL byte
        raise _err(path, str(e)) from None


def _parse(path: str, data) -> _Elf:
    n = len(data)
    if data[:4] != b"\x7fELF":
        if data[:2] == b"#!":
            line = bytes(data[:80]).split(b"\n")[0].decode(errors="replace")
            raise _err(path, f"not an ELF file (a script for {line[2:].strip() or '?'}; "
                             f"run its interpreter under hqemu instead)")
        raise _err(path, "not an ELF file" + (" (empty file)" if n == 0 else ""))
    if n < 6:
        raise _err(path, f"truncated ELF: file is {n} bytes, shorter than the ELF header")
    if data[4] == 1:
        raise _err(path, "32-bit ELF (ELFCLASS32) is not supported (64-bit only)")
    if data[4] != 2:
        raise _err(path, f"invalid ELF class {data[4]}")
    if data[5] == 2:
        raise _err(path, "big-endian ELF is not supported")
    if data[5] != 1:
        raise _err(path, f"invalid ELF data encoding {data[5]}")
    if n < EHDR_SIZE:
        raise _err(path, f"truncated ELF: file is {n} bytes, shorter than the {EHDR_SIZE}-byte ELF header")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type not in (2, 3):
        raise _err(path, f"{_E_TYPES.get(e_type, f'ELF type {e_type}')}, not an executable")
    machine = _MACHINE_NAMES.get(e_machine, f"{e_machine}")
    try:
        s = ELFStructs(little_endian=True, elfclass=64)
        s.create_basic_structs()
        eh = s.Elf_Ehdr.parse(bytes(data[:EHDR_SIZE]))
        s.create_advanced_structs(eh.e_type, eh.e_machine, eh.e_ident.EI_OSABI)
    except Exception as e:  # pyelftools/construct error on a header we already bounds-checked
        raise _err(path, f"malformed ELF header ({type(e).__name__})") from None
    if eh.e_phentsize != PHDR_SIZE:
        raise _err(path, f"bad program header size {eh.e_phentsize} (expected {PHDR_SIZE})")
    if eh.e_phnum == 0:
        raise _err(path, "no program headers")
    if eh.e_phnum * PHDR_SIZE > 65536:  # Linux's limit; also excludes PN_XNUM
        raise _err(path, f"too many program headers ({eh.e_phnum})")
    phs = []
    for i in range(eh.e_phnum):
        off = eh.e_phoff + i * PHDR_SIZE
        if off + PHDR_SIZE > n:
            raise _err(path, f"truncated ELF: program header {i} beyond end of file")
        try:
            phs.append(s.Elf_Phdr.parse(bytes(data[off:off + PHDR_SIZE])))
        except Exception as e:
            raise _err(path, f"malformed program header {i} ({type(e).__name__})") from None

    loads: list[_Seg] = []
    pt_phdr = None
    exec_stack = False  # no PT_GNU_STACK: 64-bit Linux (since 5.8) keeps the stack non-executable
    for i, ph in enumerate(phs):
        if ph.p_type == "PT_INTERP":
            interp = "?"
            if ph.p_offset + ph.p_filesz <= n and 0 < ph.p_filesz < 4096:
                interp = bytes(data[ph.p_offset:ph.p_offset + ph.p_filesz]).split(b"\0")[0].decode(
                    errors="replace")
            raise _err(path, f"dynamically linked programs are not supported (PT_INTERP {interp}); "
                             f"build with -static")
        if ph.p_type == "PT_PHDR":
            pt_phdr = ph.p_vaddr
        elif ph.p_type == "PT_GNU_STACK":
            exec_stack = bool(ph.p_flags & PF_X)
        elif ph.p_type == "PT_LOAD":
            seg = _Seg(i, ph.p_flags, ph.p_offset, ph.p_vaddr, ph.p_filesz, ph.p_memsz, ph.p_align)
            if seg.filesz > seg.memsz:
                raise _err(path, f"segment {i}: file size 0x{seg.filesz:x} exceeds memory size "
                                 f"0x{seg.memsz:x}")
            if seg.offset + seg.filesz > n:
                raise _err(path, f"truncated ELF: segment {i} beyond end of file "
                                 f"(ends at 0x{seg.offset + seg.filesz:x}, file is 0x{n:x} bytes)")
            if (seg.vaddr - seg.offset) & PAGE_MASK:
                raise _err(path, f"segment {i}: address 0x{seg.vaddr:x} and file offset 0x{seg.offset:x} "
                                 f"differ modulo the page size")
            if seg.memsz:
                loads.append(seg)
    if not loads:
        raise _err(path, "no loadable segment")
    loads.sort(key=lambda g: g.vaddr)
    for a, b in zip(loads, loads[1:]):
        if b.vaddr < a.vaddr + a.memsz:
            hi, lo = max(a.index, b.index), min(a.index, b.index)
            raise _err(path, f"segment {hi} overlaps segment {lo}")
    return _Elf(machine, e_type, eh.e_entry, eh.e_phoff, eh.e_phnum, loads, pt_phdr, exec_stack)


def _frontend(path: str, elf: _Elf) -> Frontend:
    fe = frontends.for_elf_machine(elf.machine)
    if fe is None:
        known = ", ".join(frontends.supported_isas())
        raise _err(path, f"ELF for machine {elf.machine} is not supported ({known} only)")
    return fe


def probe(path: str) -> Frontend:
    """Check that path is a loadable executable (header and program headers) and return the
    frontend of its ISA; raises HqemuError with the one line to show otherwise."""
    data = _open(path)
    try:
        return _frontend(path, _parse(path, data))
    finally:
        if isinstance(data, _pymmap.mmap):
            data.close()


def _layout(mem: GuestMemory, stack_size: int) -> tuple[int, int, int]:
    """(stack_top, stack_size, mmap_base) for this space, as Linux lays them out without ASLR:
    the stack ends one page below the top, mappings go below a gap of at least 128 MiB."""
    stack_top = mem.size - PAGE
    stack_size = max((stack_size + PAGE_MASK) & ~PAGE_MASK, 16 * PAGE)
    if stack_size > stack_top // 2:
        raise HqemuError(f"stack size 0x{stack_size:x} does not fit in the guest space "
                         f"(0x{mem.size:x} bytes)")
    gap = min(max(stack_size + M.STACK_GUARD_GAP, M.MIN_STACK_GAP), mem.size // 2)
    return stack_top, stack_size, (stack_top - gap) & ~PAGE_MASK


def _place(path: str, elf: _Elf, size: int, mmap_base: int) -> int:
    """The load bias: 0 for ET_EXEC; for a static-pie the place Linux would pick, if the space
    has room there, else the middle of the space (heap above it, mappings below mmap_base)."""
    if elf.e_type == 2:
        return 0
    lo = elf.loads[0].vaddr & ~PAGE_MASK
    span = max(g.vaddr + g.memsz for g in elf.loads) - lo
    align = max([g.align for g in elf.loads if g.align & (g.align - 1) == 0] + [PAGE])
    align = min(align, 1 << 30)
    for base in (ET_DYN_BASE, size // 2, mmap_base // 2):
        base &= ~(align - 1)
        if base >= M.MMAP_MIN_ADDR and base + span <= mmap_base:
            return base - lo
    raise _err(path, f"static-pie of 0x{span:x} bytes does not fit in the guest space")


def load(env: Env, path: str, argv: list[str], envp: list[str]) -> LoadedImage:
    """Map the executable at path into env.mem and build the initial stack.

    Sets env.fe (and a fresh env.cpu if the ISA changes), env.exe_path, env.argv and the
    memory's mmap base and brk. The caller then runs fe.init_cpu(env.cpu, entry, sp).
    """
    mem = env.mem
    data = _open(path)
    try:
        elf = _parse(path, data)
        fe = _frontend(path, elf)
        stack_top, stack_size, mmap_base = _layout(mem, env.params.stack_size)
        bias = _place(path, elf, mem.size, mmap_base)
        limit = stack_top - stack_size - M.STACK_GUARD_GAP
        for g in elf.loads:
            start, end = g.vaddr + bias, g.vaddr + bias + g.memsz
            if start & ~PAGE_MASK < M.MMAP_MIN_ADDR:
                raise _err(path, f"segment {g.index} at 0x{start:x} is below the lowest mappable address "
                                 f"0x{M.MMAP_MIN_ADDR:x}")
            if end > limit:
                raise _err(path, f"segment {g.index} (0x{start:x}-0x{end:x}) does not fit in the guest space "
                                 f"(0x{mem.size:x} bytes with the stack at the top)")
        entry = elf.entry + bias
        if not any(g.flags & PF_X and g.vaddr + bias <= entry < g.vaddr + bias + g.memsz for g in elf.loads):
            raise _err(path, f"entry point 0x{entry:x} is not in an executable segment")
        mem.mmap_base = mmap_base
        _map_segments(mem, path, data, elf.loads, bias)
    finally:
        if isinstance(data, _pymmap.mmap):
            data.close()

    phdr = _phdr_address(elf, bias)
    brk = max(g.vaddr + g.memsz for g in elf.loads) + bias
    mem.set_brk_base(brk)
    exe = os.path.abspath(path)
    image = LoadedImage(path, fe, entry, 0, phdr, elf.phnum, bias, mem.brk_start, stack_top, stack_size,
                        elf.exec_stack)
    image.sp = _build_stack(env, fe, image, argv, envp)
    if env.fe is not fe:
        env.fe = fe
        if not isinstance(env.cpu, fe.cpu_struct):
            env.cpu = fe.cpu_struct()
            env.state = memoryview(env.cpu).cast("B").cast("Q")
    env.exe_path = exe
    env.load_bias = bias
    env.argv = list(argv)
    return image


def _phdr_address(elf: _Elf, bias: int) -> int:
    if elf.pt_phdr is not None:
        return elf.pt_phdr + bias
    for g in elf.loads:
        if g.offset <= elf.phoff < g.offset + g.filesz:
            return elf.phoff - g.offset + g.vaddr + bias
    first = elf.loads[0]
    return first.vaddr - first.offset + elf.phoff + bias  # what older kernels pass; likely unmapped


def _map_segments(mem: GuestMemory, path: str, data, loads: list[_Seg], bias: int) -> None:
    """Map each PT_LOAD with its permissions and copy its file bytes; the rest stays zero (bss).

    Like Linux, which maps whole file pages, the bytes of the file that share a segment's first
    and last page are visible too; a page two segments share gets both permissions.
    """
    name = os.path.abspath(path)
    mapped_end = 0  # end of the pages mapped so far
    prev_end = 0  # end of the previous segment's bytes
    prev_prot = 0
    n = len(data)
    for k, g in enumerate(loads):
        start, end = g.vaddr + bias, g.vaddr + bias + g.memsz
        ps, pe = start & ~PAGE_MASK, (end + PAGE_MASK) & ~PAGE_MASK
        if ps < mapped_end:  # the previous segment's last page is this one's first
            mem.mprotect(ps, PAGE, prev_prot | g.prot)
        if pe > max(ps, mapped_end):
            first = max(ps, mapped_end)
            mem.map_fixed(first, pe - first, g.prot, name, g.offset - (start - first))
        # file bytes from the first page's start (never over the previous segment's bytes) to the
        # end of the data, or to the end of its page when no bss follows
        lo = max(ps, prev_end)
        hi = start + g.filesz
        if g.memsz == g.filesz:
            nxt = loads[k + 1].vaddr + bias if k + 1 < len(loads) else pe
            hi = min(pe, nxt, start + (n - g.offset))
        if hi > lo:
            mem._poke(lo, bytes(data[g.offset - (start - lo):g.offset + (hi - start)]))
        mapped_end = max(mapped_end, pe)
        prev_end = end
        prev_prot = g.prot


def _build_stack(env: Env, fe: Frontend, image: LoadedImage, argv: list[str], envp: list[str]) -> int:
    """Map the stack and write what the kernel puts there (create_elf_tables), highest first:
    8 zero bytes, AT_EXECFN's path, the env strings, the arg strings, AT_PLATFORM's string,
    AT_RANDOM's 16 bytes, then from sp upwards: argc, argv[], NULL, envp[], NULL, auxv."""
    mem = env.mem
    top, size = image.stack_top, image.stack_size
    prot = PROT_READ | PROT_WRITE | (PROT_EXEC if image.exec_stack else 0)
    mem.map_fixed(top - size, size, prot, "[stack]")

    def enc(s: str) -> bytes:
        return os.fsencode(s) + b"\0"

    args, envs = [enc(a) for a in argv], [enc(e) for e in envp]
    execfn = enc(image.path)
    strings = sum(map(len, args + envs)) + len(execfn)
    if strings + 8 * (len(args) + len(envs)) > size // 4:  # Linux: ARG_MAX is a quarter of the stack
        raise HqemuError(f"{image.path}: argument list too long")

    p = top - 8
    p -= len(execfn)
    execfn_addr = p
    mem.write(p, execfn)
    p -= sum(map(len, args + envs))
    arg_ptrs, env_ptrs = [], []
    q = p
    for s, ptrs in [(s, arg_ptrs) for s in args] + [(s, env_ptrs) for s in envs]:
        ptrs.append(q)
        mem.write(q, s)
        q += len(s)
    p &= ~15
    platform = fe.platform.encode() + b"\0"
    p -= len(platform)
    platform_addr = p
    mem.write(p, platform)
    p -= 16
    random_addr = p
    mem.write(p, env.rng.randbytes(16))

    hwcap, hwcap2 = fe.hwcap
    auxv = [
        (AT_HWCAP, hwcap), (AT_PAGESZ, PAGE), (AT_CLKTCK, 100),
        (AT_PHDR, image.phdr), (AT_PHENT, PHDR_SIZE), (AT_PHNUM, image.phnum),
        (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, image.entry),
        (AT_UID, os.getuid()), (AT_EUID, os.geteuid()), (AT_GID, os.getgid()), (AT_EGID, os.getegid()),
        (AT_SECURE, 0), (AT_RANDOM, random_addr), (AT_HWCAP2, hwcap2),
        (AT_EXECFN, execfn_addr), (AT_PLATFORM, platform_addr),
    ]
    minsig = getattr(fe, "minsigstksz", 0)
    if minsig:
        auxv.append((AT_MINSIGSTKSZ, minsig))
    auxv.append((AT_NULL, 0))
    words = [len(args)] + arg_ptrs + [0] + env_ptrs + [0] + [x for pair in auxv for x in pair]
    sp = (p - 8 * len(words)) & ~15
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    image.auxv = auxv
    return sp
