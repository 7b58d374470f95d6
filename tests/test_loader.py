"""The ELF loader on real static programs (gcc -static, musl-gcc -static, gcc -static-pie).

Oracles: pyelftools' own ELFFile reading of the file (segments, headers), random.Random for
AT_RANDOM, the host's ids; and the host kernel itself: the program, run natively and run from
the memory the loader built under Unicorn (an independent CPU, with a few syscalls served
here), must print the same argv, environment and auxv facts.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import shutil
import struct
import subprocess

import elfgen
import pytest
from elftools.elf.elffile import ELFFile

from hqemu import frontends
from hqemu.env import Env
from hqemu.errors import HqemuError
from hqemu.linux import loader
from hqemu.linux.memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from hqemu.log import Log
from hqemu.params import Params

SOURCE = r"""
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
extern char **environ;
extern void _start(void);
static char bss[100000];
static int data = 1234;
int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env=%s\n", *e);
    int zero = 1;
    for (size_t i = 0; i < sizeof bss; i++) zero &= bss[i] == 0;
    printf("bss_zero=%d data=%d\n", zero, data);
    printf("pagesz=%lu phent=%lu clktck=%lu secure=%lu\n", getauxval(AT_PAGESZ), getauxval(AT_PHENT),
           getauxval(AT_CLKTCK), getauxval(AT_SECURE));
    const ElfW(Phdr) *ph = (const void *)getauxval(AT_PHDR);
    unsigned long n = getauxval(AT_PHNUM), loads = 0;
    for (unsigned long i = 0; i < n; i++) loads += ph[i].p_type == PT_LOAD;
    printf("phnum=%lu loads=%lu\n", n, loads);
    printf("execfn=%s platform=%s\n", (char *)getauxval(AT_EXECFN), (char *)getauxval(AT_PLATFORM));
    printf("entry_ok=%d\n", getauxval(AT_ENTRY) == (unsigned long)&_start);
    printf("uid=%lu euid=%lu gid=%lu egid=%lu\n", getauxval(AT_UID), getauxval(AT_EUID), getauxval(AT_GID),
           getauxval(AT_EGID));
    printf("random_ok=%d\n", getauxval(AT_RANDOM) != 0);
    fflush(stdout);
    return 3;
}
"""

COMPILERS = {
    "glibc": ["gcc", "-static", "-O2"],
    "musl": ["musl-gcc", "-static", "-O2"],
    "pie": ["gcc", "-static-pie", "-O2", "-fPIE"],
}
ARGV = ["prog", "first arg", "", "ünïcode"]
ENVP = ["A=1", "EMPTY=", "LONG=" + "x" * 300]
SEED = 99


@pytest.fixture(scope="module", params=list(COMPILERS))
def binary(request, tmp_path_factory):
    cmd = COMPILERS[request.param]
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed")
    d = tmp_path_factory.mktemp(request.param)
    (d / "prog.c").write_text(SOURCE)
    r = subprocess.run([*cmd, "-o", str(d / "prog"), str(d / "prog.c")], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"{' '.join(cmd)} failed: {r.stderr.strip()[:200]}")
    return str(d / "prog")


def load(path: str, argv=ARGV, envp=ENVP, **params):
    p = Params(**params)
    env = Env(p, frontends.get("x86_64"), GuestMemory(p.guest_space), Log(set()), rng=random.Random(SEED))
    return env, loader.load(env, path, argv, envp)


@pytest.fixture
def loaded(binary):
    env, image = load(binary)
    yield binary, env, image
    env.mem.close()


def test_segments_hold_the_file_bytes_and_zero_bss(loaded):
    path, env, image = loaded
    mem = env.mem
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert (image.load_bias == 0) == (elf["e_type"] == "ET_EXEC")
        assert image.load_bias % PAGE == 0
        ends = []
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            start = seg["p_vaddr"] + image.load_bias
            assert mem.read(start, seg["p_filesz"]) == seg.data()
            bss = seg["p_memsz"] - seg["p_filesz"]
            assert mem.read(start + seg["p_filesz"], bss) == bytes(bss)
            flags = seg["p_flags"]
            want = ((PROT_READ if flags & 4 else 0) | (PROT_WRITE if flags & 2 else 0)
                    | (PROT_EXEC if flags & 1 else 0))
            first, last = -(-start // PAGE) * PAGE, (start + seg["p_memsz"]) // PAGE * PAGE
            for a in range(first, last, PAGE):  # the pages it has to itself
                assert mem.prot_of(a) == want, hex(a)
            ends.append(start + seg["p_memsz"])
    assert image.brk == -(-max(ends) // PAGE) * PAGE == mem.brk(0)
    assert not mem.is_mapped(image.brk)


def read_cstr(mem, addr: int) -> str:
    return os.fsdecode(mem.read_cstr(addr))


def test_stack_parses_back(loaded):
    path, env, image = loaded
    mem, fe = env.mem, env.fe
    sp = image.sp
    assert sp % 16 == 0
    stack = [(s, e) for s, e, p, n in mem.mappings() if n == "[stack]"]
    assert stack == [(image.stack_top - image.stack_size, image.stack_top)]
    assert mem.prot_of(sp) & PROT_WRITE
    words = lambda a, n: struct.unpack(f"<{n}Q", mem.read(a, 8 * n))  # noqa: E731
    argc = words(sp, 1)[0]
    assert argc == len(ARGV)
    ptrs = words(sp + 8, argc + 1)
    assert ptrs[-1] == 0 and [read_cstr(mem, p) for p in ptrs[:-1]] == ARGV
    a = sp + 8 * (argc + 2)
    envs = []
    while (p := words(a, 1)[0]) != 0:
        envs.append(read_cstr(mem, p))
        a += 8
    assert envs == ENVP
    a += 8
    auxv = {}
    order = []
    while True:
        k, v = words(a, 2)
        a += 16
        if k == 0:
            break
        auxv[k] = v
        order.append(k)
    assert len(order) == len(set(order))
    assert a <= min(ptrs[:-1])  # the strings lie above the vectors
    with open(path, "rb") as f:
        elf = ELFFile(f)
        f.seek(elf["e_phoff"])
        phdrs = f.read(elf["e_phnum"] * elf["e_phentsize"])
        entry = elf["e_entry"] + image.load_bias
    assert mem.read(auxv[loader.AT_PHDR], len(phdrs)) == phdrs
    assert auxv[loader.AT_PHNUM] == len(phdrs) // 56 and auxv[loader.AT_PHENT] == 56
    assert auxv[loader.AT_ENTRY] == entry == image.entry
    assert auxv[loader.AT_PAGESZ] == 4096 and auxv[loader.AT_CLKTCK] == 100
    assert auxv[loader.AT_BASE] == 0 and auxv[loader.AT_SECURE] == 0 and auxv[loader.AT_FLAGS] == 0
    assert (auxv[loader.AT_UID], auxv[loader.AT_EUID], auxv[loader.AT_GID], auxv[loader.AT_EGID]) == (
        os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    assert mem.read(auxv[loader.AT_RANDOM], 16) == random.Random(SEED).randbytes(16)
    assert read_cstr(mem, auxv[loader.AT_EXECFN]) == path
    assert auxv[loader.AT_EXECFN] + len(os.fsencode(path)) + 1 + 8 == image.stack_top  # at the very top
    assert read_cstr(mem, auxv[loader.AT_PLATFORM]) == fe.platform
    assert (auxv[loader.AT_HWCAP], auxv[loader.AT_HWCAP2]) == tuple(fe.hwcap)
    assert [(k, v) for k, v in image.auxv if k] == [(k, auxv[k]) for k in order]
    # every tag we pass is one the host kernel passes too
    with open("/proc/self/auxv", "rb") as f:
        raw = f.read()
    host_tags = {struct.unpack_from("<Q", raw, i)[0] for i in range(0, len(raw), 16)}
    assert set(order) <= host_tags


# ---------------------------------------------------------------------------------------------
# native run vs a run of the loaded image under Unicorn


def run_unicorn(env, image, limit: int = 20_000_000) -> tuple[int, bytes]:
    """Run the loaded program on Unicorn straight from GuestMemory's host pages; serve the few
    syscalls a static libc's start-up and printf need. Returns (exit status, stdout)."""
    from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, Uc
    from unicorn import x86_const as X

    mem = env.mem
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    out = bytearray()
    status = [None]

    def sync():
        for start, end, _ in list(uc.mem_regions()):
            uc.mem_unmap(start, end - start + 1)
        for start, end, prot, _ in mem.mappings():
            uc.mem_map_ptr(start, end - start, prot & 7, mem.base + start)

    def syscall(uc, _):
        nr = uc.reg_read(X.UC_X86_REG_RAX)
        a = [uc.reg_read(r) for r in (X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
                                      X.UC_X86_REG_R10, X.UC_X86_REG_R8, X.UC_X86_REG_R9)]
        ret = -errno.ENOSYS
        if nr in (60, 231):  # exit, exit_group
            status[0] = a[0] & 0xFF
            uc.emu_stop()
            return
        if nr == 1 and a[0] == 1:  # write(1, ...)
            out.extend(mem.read(a[1], a[2]))
            ret = a[2]
        elif nr == 20 and a[0] == 1:  # writev(1, iov, n)
            ret = 0
            for i in range(a[2]):
                base, n = struct.unpack("<QQ", mem.read(a[1] + 16 * i, 16))
                out.extend(mem.read(base, n))
                ret += n
        elif nr == 12:
            ret = mem.brk(a[0])
        elif nr == 9:
            ret = mem.mmap(a[0], a[1], a[2], a[3], -1 if a[3] & 0x20 else ctypes.c_int32(a[4]).value, a[5])
        elif nr == 10:
            ret = mem.mprotect(a[0], a[1], a[2])
        elif nr == 11:
            ret = mem.munmap(a[0], a[1])
        elif nr == 158 and a[0] == 0x1002:  # arch_prctl(ARCH_SET_FS)
            uc.reg_write(X.UC_X86_REG_FS_BASE, a[1])
            ret = 0
        elif nr == 218:  # set_tid_address
            ret = os.getpid()
        elif nr == 16:  # ioctl: not a terminal
            ret = -errno.ENOTTY
        if nr in (9, 10, 11, 12):
            sync()
        uc.reg_write(X.UC_X86_REG_RAX, ret & 0xFFFFFFFFFFFFFFFF)

    sync()
    uc.hook_add(UC_HOOK_INSN, syscall, None, 1, 0, X.UC_X86_INS_SYSCALL)
    uc.reg_write(X.UC_X86_REG_RSP, image.sp)
    uc.emu_start(image.entry, 0, count=limit)
    return status[0], bytes(out)


def test_libc_reads_the_same_stack_as_from_the_kernel(binary):
    pytest.importorskip("unicorn")
    native = subprocess.run(ARGV, executable=binary, env=dict(e.split("=", 1) for e in ENVP),
                            capture_output=True)
    env, image = load(binary)
    try:
        status, out = run_unicorn(env, image)
    finally:
        env.mem.close()
    assert native.returncode == 3 and b"bss_zero=1" in native.stdout
    assert out.decode() == native.stdout.decode()
    assert status == native.returncode


# ---------------------------------------------------------------------------------------------
# smaller cases on the generated file


def test_stack_is_executable_exactly_when_the_kernel_makes_it_so(tmp_path):
    """The oracle: the host kernel runs each variant; the probe exits 42 iff its stack is
    executable, and SIGSEGVs otherwise."""
    m = elfgen.stack_probe()
    cases = {"rw": m, "rwx": elfgen.with_phdr(m, 3, p_flags=7), "none": elfgen.with_phdr(m, 3, p_type=4)}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        path.chmod(0o755)
        native = subprocess.run([str(path)]).returncode
        assert native in (42, -11)
        env, image = load(str(path))
        try:
            assert image.exec_stack is (native == 42), name
            assert bool(env.mem.prot_of(image.sp) & PROT_EXEC) is (native == 42), name
        finally:
            env.mem.close()


def test_argument_list_too_long(tmp_path):
    path = tmp_path / "ok"
    path.write_bytes(elfgen.minimal())
    with pytest.raises(HqemuError, match="argument list too long"):
        load(str(path), argv=["x" * 40000], stack_size=128 << 10)


def test_small_space_puts_static_pie_in_the_middle(tmp_path):
    m = elfgen.with_ehdr(elfgen.minimal(), e_type=3)  # ET_DYN linked at 0x400000
    path = tmp_path / "pie"
    path.write_bytes(m)
    env, image = load(str(path), guest_space=1 << 32)
    try:
        assert image.load_bias + 0x400000 == 1 << 31
        assert env.mem.fetch(image.entry, 12) == elfgen.EXIT42
        assert image.entry < env.mem.mmap_base < image.stack_top - image.stack_size
    finally:
        env.mem.close()


def test_segments_sharing_a_page_get_both_permissions_and_contents(tmp_path):
    """Linux would let the later segment's mapping replace the shared page (losing the code's
    exec right); hqemu keeps both segments' bytes and the union of their rights."""
    B = elfgen.BASE
    data = bytearray(elfgen.minimal())
    data[0x1800:0x1810] = elfgen.DATA
    data = elfgen.with_phdr(bytes(data), 2, p_offset=0x1800, p_vaddr=B + 0x1800, p_paddr=B + 0x1800,
                            p_memsz=0x100)
    path = tmp_path / "shared"
    path.write_bytes(data)
    env, image = load(str(path))
    try:
        mem = env.mem
        assert mem.fetch(image.entry, 12) == elfgen.EXIT42
        assert mem.read(B + 0x1800, 16) == elfgen.DATA
        assert mem.read(B + 0x1810, 0xF0) == bytes(0xF0)
        assert mem.prot_of(B + 0x1000) == PROT_READ | PROT_WRITE | PROT_EXEC
        assert mem.prot_of(B) == PROT_READ
        assert image.brk == B + 0x2000
    finally:
        env.mem.close()
