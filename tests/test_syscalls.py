"""The syscall layer driven through dispatch() with a real GuestMemory; the host is the oracle.

Each test sets the syscall number and arguments in the CPU state as a guest would, calls
dispatch, and compares what the guest got (result, bytes in guest memory) with what the
host's own calls (os.*, the host kernel's raw syscalls, or qemu-aarch64 for AArch64 structs)
say about the same files.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import random
import re
import resource
import select
import shutil
import struct
import subprocess

import pytest

from hqemu.env import Env
from hqemu.errors import GuestExit, GuestSignal, HqemuError
from hqemu.frontends.x86_64.cpu import LAYOUT, X86State
from hqemu.ir import I64, Global, StateLayout
from hqemu.linux.memory import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    GuestMemory,
)
from hqemu.linux.syscalls import BY_NAME, TABLE, dispatch, linux_state
from hqemu.log import Log
from hqemu.params import Params

AT_FDCWD = -100
SCRATCH = 0x100000  # a read/write guest region for arguments and results
SCRATCH_LEN = 0x40000
HOLE = 0x900000  # never mapped
HOST_X86 = platform.machine() == "x86_64"


class FakeX86:
    isa = "x86_64"
    cpu_struct = X86State
    layout = LAYOUT
    pc_reg, sp_reg = "rip", "rsp"
    syscall_nr = "rax"
    syscall_args = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
    syscall_ret = "rax"
    platform = "x86_64"

    def set_tls(self, cpu, value):
        cpu.fs_base = value


class A64State(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in [f"x{i}" for i in range(9)] + ["sp", "pc", "tpidr_el0"]]


class FakeA64:
    isa = "aarch64"
    cpu_struct = A64State
    layout = StateLayout("aarch64", [Global(n, I64, getattr(A64State, n).offset)
                                     for n, _ in A64State._fields_])
    pc_reg, sp_reg = "pc", "sp"
    syscall_nr = "x8"
    syscall_args = ("x0", "x1", "x2", "x3", "x4", "x5")
    syscall_ret = "x0"
    platform = "aarch64"

    def set_tls(self, cpu, value):
        cpu.tpidr_el0 = value


@pytest.fixture
def mem():
    m = GuestMemory(1 << 32)
    assert m.mmap(SCRATCH, SCRATCH_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                  -1, 0) == SCRATCH
    yield m
    m.close()


@pytest.fixture
def make_env(mem, tmp_path):
    def make(isa="x86_64", items=(), **params):
        fe = FakeX86() if isa == "x86_64" else FakeA64()
        log = Log(set(items), str(tmp_path / "log.txt"))
        return Env(Params(**params), fe, mem, log, rng=random.Random(params.get("seed", 1)),
                   exe_path=str(tmp_path / "prog"), pid=os.getpid())
    return make


@pytest.fixture
def env(make_env):
    return make_env()


def sc(env, name, *args):
    """Perform syscall `name` as the guest would; the signed result."""
    fe = env.fe
    env.set_reg(fe.syscall_nr, BY_NAME[name].nr[fe.isa])
    for reg, a in zip(fe.syscall_args, [*args, 0, 0, 0, 0, 0, 0]):
        env.set_reg(reg, a)
    dispatch(env)
    v = env.reg(fe.syscall_ret)
    return v - (1 << 64) if v >> 63 else v


def cstr(env, s, addr=SCRATCH):
    env.mem.write(addr, os.fsencode(s) + b"\0")
    return addr


def log_lines(tmp_path):
    p = tmp_path / "log.txt"
    return p.read_text().splitlines() if p.exists() else []


# --- the table against the kernel headers -------------------------------------------------
def _header_numbers(cc, header, names):
    src = "".join(f"{n} __NR_{n}\n" for n in names)
    out = subprocess.run([cc, "-E", "-P", "-include", header, "-"], input=src, capture_output=True,
                         text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0] in names:
            try:
                got[parts[0]] = eval(parts[1], {})  # a number or a parenthesized sum of numbers
            except (NameError, SyntaxError):
                got[parts[0]] = None  # still __NR_x: no such call on this ISA
    return got


@pytest.mark.parametrize("isa,cc", [("x86_64", "gcc"), ("aarch64", "aarch64-linux-gnu-gcc")])
def test_numbers_match_kernel_headers(isa, cc):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    names = [e.name for e in TABLE]
    want = _header_numbers(cc, "asm/unistd.h", names)
    for e in TABLE:
        assert e.nr.get(isa) == want[e.name], (isa, e.name)


# --- files: open, read, write, stat --------------------------------------------------------
def test_openat_write_read_fstat_like_host(env, tmp_path):
    path = tmp_path / "f.txt"
    p = cstr(env, path)
    fd = sc(env, "openat", AT_FDCWD, p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o640)
    assert fd >= 0
    data = bytes(range(256)) * 40
    env.mem.write(SCRATCH + 0x1000, data)
    assert sc(env, "write", fd, SCRATCH + 0x1000, len(data)) == len(data)
    assert sc(env, "close", fd) == 0
    assert path.read_bytes() == data
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640 & ~_umask())

    fd = sc(env, "openat", AT_FDCWD, p, os.O_RDONLY, 0)
    assert sc(env, "lseek", fd, 100, os.SEEK_SET) == 100
    assert sc(env, "read", fd, SCRATCH + 0x10000, 1000) == 1000
    assert env.mem.read(SCRATCH + 0x10000, 1000) == data[100:1100]
    assert sc(env, "pread64", fd, SCRATCH + 0x20000, 50, 7) == 50
    assert env.mem.read(SCRATCH + 0x20000, 50) == data[7:57]
    assert sc(env, "fstat", fd, SCRATCH + 0x3000) == 0
    st = env.mem.read(SCRATCH + 0x3000, 144)
    sc(env, "close", fd)
    if HOST_X86:
        assert st == _host_stat_bytes(path)
    assert struct.unpack_from("<Q", st, 48)[0] == os.stat(path).st_size  # st_size, x86-64 offset 48


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def _host_stat_bytes(path):
    """The host kernel's own x86-64 struct stat of path (raw newfstatat)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(144)
    r = libc.syscall(ctypes.c_long(262), ctypes.c_long(AT_FDCWD), os.fsencode(path), buf, ctypes.c_long(0))
    assert r == 0
    return buf.raw


@pytest.mark.skipif(not HOST_X86, reason="the raw host struct stat is the x86-64 one")
def test_stat_lstat_newfstatat_equal_host_kernel(env, tmp_path):
    f = tmp_path / "target"
    f.write_bytes(b"x" * 5000)
    link = tmp_path / "link"
    link.symlink_to(f)
    for name, args, path in [("stat", (cstr(env, link), SCRATCH + 0x1000), f),
                             ("lstat", (cstr(env, link), SCRATCH + 0x1000), None),
                             ("newfstatat", (AT_FDCWD, cstr(env, link), SCRATCH + 0x1000, 0), f)]:
        assert sc(env, name, *args) == 0
        got = env.mem.read(SCRATCH + 0x1000, 144)
        if path is not None:
            assert got == _host_stat_bytes(path), name
        else:
            st = os.lstat(link)
            assert struct.unpack_from("<QQQI", got) == (st.st_dev, st.st_ino, st.st_nlink, st.st_mode)
    assert sc(env, "stat", cstr(env, tmp_path / "nope"), SCRATCH + 0x1000) == -errno.ENOENT


_AARCH64_STAT_C = r"""
#include <stdio.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    struct stat st;
    if (stat(argv[1], &st)) return 1;
    fwrite(&st, sizeof st, 1, stdout);
    return 0;
}
"""


def test_aarch64_stat_layout_equals_qemu(make_env, tmp_path):
    if not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")):
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64")
    src = tmp_path / "st.c"
    src.write_text(_AARCH64_STAT_C)
    exe = tmp_path / "st"
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True)
    f = tmp_path / "data"
    f.write_bytes(b"y" * 12345)
    os.utime(f, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    want = subprocess.run(["qemu-aarch64", str(exe), str(f)], capture_output=True, check=True).stdout
    env = make_env("aarch64")
    assert sc(env, "newfstatat", AT_FDCWD, cstr(env, f), SCRATCH + 0x1000, 0) == 0
    assert len(want) == 128
    assert env.mem.read(SCRATCH + 0x1000, 128) == want


def test_statx_fields_equal_host_statx(env, tmp_path):
    f = tmp_path / "sx"
    f.write_bytes(b"z" * 777)
    assert sc(env, "statx", AT_FDCWD, cstr(env, f), 0, 0xFFF, SCRATCH + 0x1000) == 0
    got = env.mem.read(SCRATCH + 0x1000, 256)
    libc = ctypes.CDLL(None, use_errno=True)
    want = ctypes.create_string_buffer(256)
    assert libc.statx(AT_FDCWD, os.fsencode(f), 0, 0xFFF, want) == 0
    want = want.raw
    # blksize, nlink, uid, gid, mode; ino, size, blocks; a/c/m times; rdev and dev numbers
    for off, fmt in [(4, "<I"), (16, "<III"), (28, "<H"), (32, "<QQQ"), (64, "<qI"), (96, "<qI"),
                     (112, "<qI"), (128, "<IIII")]:
        assert struct.unpack_from(fmt, got, off) == struct.unpack_from(fmt, want, off), off
    assert struct.unpack_from("<I", got)[0] & 0x7FF == 0x7FF  # the basic stats are all valid


def test_getdents64_lists_like_listdir(env, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    names = {f"entry{i:03}" for i in range(150)} | {"sub"}
    for n in names:
        (d / n).mkdir() if n == "sub" else (d / n).write_text(n)
    fd = sc(env, "openat", AT_FDCWD, cstr(env, d), os.O_RDONLY | os.O_DIRECTORY, 0)
    seen = {}
    while True:
        n = sc(env, "getdents64", fd, SCRATCH + 0x1000, 2048)  # small: several calls needed
        assert n >= 0
        if n == 0:
            break
        buf = env.mem.read(SCRATCH + 0x1000, n)
        pos = 0
        while pos < n:
            ino, _off, reclen, dtype = struct.unpack_from("<QqHB", buf, pos)
            name = buf[pos + 19:pos + reclen].split(b"\0")[0].decode()
            seen[name] = (ino, dtype)
            pos += reclen
    sc(env, "close", fd)
    assert set(seen) - {".", ".."} == set(os.listdir(d))
    assert seen["sub"][1] == 4 and seen["entry000"][1] == 8  # DT_DIR, DT_REG
    assert seen["entry007"][0] == os.stat(d / "entry007").st_ino


def test_fallocate_like_host(env, tmp_path):
    """busybox fallocate: the guest's file must end up as the host's own fallocate leaves a twin."""
    libc = ctypes.CDLL(None, use_errno=True)
    data = bytes(range(256)) * 64
    for mode, off, length in [(0, 0, 100_000), (0, 50_000, 3), (1, 0, 70_000), (3, 4096, 8192)]:
        guest, twin = tmp_path / "g", tmp_path / "t"
        for f in (guest, twin):
            f.write_bytes(data)
        fd = sc(env, "openat", AT_FDCWD, cstr(env, guest), os.O_RDWR, 0)
        got = sc(env, "fallocate", fd, mode, off, length)
        sc(env, "close", fd)
        tfd = os.open(twin, os.O_RDWR)
        want = libc.fallocate(tfd, mode, ctypes.c_int64(off), ctypes.c_int64(length))
        want = -ctypes.get_errno() if want < 0 else want
        os.close(tfd)
        assert got == want, (mode, off, length)
        assert guest.read_bytes() == twin.read_bytes(), (mode, off, length)
        assert os.stat(guest).st_blocks == os.stat(twin).st_blocks, (mode, off, length)
    assert sc(env, "fallocate", 987, 0, 0, 10) == -errno.EBADF


def test_sendfile_like_host(env, tmp_path):
    """busybox cp and cat use sendfile: the guest's copy and offsets must be what the host
    kernel's sendfile gives on twin files (raw libc calls, not os.sendfile)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sendfile.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    libc.sendfile.restype = ctypes.c_ssize_t
    data = bytes(random.Random(7).getrandbits(8) for _ in range(20_000))
    src = tmp_path / "src"
    src.write_bytes(data)
    offp = SCRATCH + 0x800
    results = {}
    for who in ("guest", "host"):
        dst = tmp_path / f"dst-{who}"
        i = os.open(src, os.O_RDONLY)
        o = os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.lseek(i, 100, os.SEEK_SET)
        got = []
        for off, count in [(None, 1000), (5000, 300), (19_900, 4096), (None, 50_000), (30_000, 10)]:
            if who == "guest":
                if off is not None:
                    env.mem.write(offp, struct.pack("<q", off))
                n = sc(env, "sendfile", o, i, 0 if off is None else offp, count)
                new_off = None if off is None else struct.unpack("<q", env.mem.read(offp, 8))[0]
            else:
                c_off = ctypes.c_int64(off or 0)
                n = libc.sendfile(o, i, None if off is None else ctypes.addressof(c_off), count)
                new_off = None if off is None else c_off.value
            got.append((n, new_off, os.lseek(i, 0, os.SEEK_CUR)))
        os.close(i)
        os.close(o)
        results[who] = (got, dst.read_bytes())
    assert results["guest"] == results["host"]
    assert results["guest"][1][:1000] == data[100:1100]
    assert sc(env, "sendfile", 1, 987, 0, 10) == -errno.EBADF


def test_readv_writev_like_host(env, tmp_path):
    f = tmp_path / "v"
    fd = sc(env, "openat", AT_FDCWD, cstr(env, f), os.O_CREAT | os.O_RDWR, 0o600)
    env.mem.write(SCRATCH + 0x2000, b"hello ")
    env.mem.write(SCRATCH + 0x3000, b"world")
    env.mem.write(SCRATCH + 0x1000, struct.pack("<QQQQ", SCRATCH + 0x2000, 6, SCRATCH + 0x3000, 5))
    assert sc(env, "writev", fd, SCRATCH + 0x1000, 2) == 11
    assert f.read_bytes() == b"hello world"
    sc(env, "lseek", fd, 0, 0)
    env.mem.write(SCRATCH + 0x1000, struct.pack("<QQQQ", SCRATCH + 0x5000, 4, SCRATCH + 0x6000, 100))
    assert sc(env, "readv", fd, SCRATCH + 0x1000, 2) == 11
    assert env.mem.read(SCRATCH + 0x5000, 4) + env.mem.read(SCRATCH + 0x6000, 7) == b"hello world"
    sc(env, "close", fd)


def test_read_into_code_page_takes_the_checked_path(env, tmp_path):
    f = tmp_path / "c"
    f.write_bytes(b"0123456789")
    hits = []
    env.mem.on_code_write = lambda a, n: hits.append((a, n))
    env.mem.mark_code(SCRATCH + 0x8000, 16)
    fd = os.open(f, os.O_RDONLY)
    try:
        assert sc(env, "read", fd, SCRATCH + 0x8000, 10) == 10
    finally:
        os.close(fd)
    assert env.mem.read(SCRATCH + 0x8000, 10) == b"0123456789"
    assert hits == [(SCRATCH + 0x8000, 10)]


# --- paths -------------------------------------------------------------------------------
def test_path_calls_act_on_the_host(env, tmp_path):
    d = tmp_path / "d"
    assert sc(env, "mkdir", cstr(env, d), 0o755) == 0 and d.is_dir()
    assert sc(env, "mkdir", cstr(env, d), 0o755) == -errno.EEXIST
    f = d / "a"
    f.write_text("a")
    b = d / "b"
    assert sc(env, "rename", cstr(env, f), cstr(env, b, SCRATCH + 0x800)) == 0
    assert not f.exists() and b.read_text() == "a"
    assert sc(env, "symlink", cstr(env, "b"), cstr(env, d / "l", SCRATCH + 0x800)) == 0
    n = sc(env, "readlink", cstr(env, d / "l"), SCRATCH + 0x1000, 100)
    assert env.mem.read(SCRATCH + 0x1000, n) == os.fsencode(os.readlink(d / "l"))
    assert sc(env, "readlink", cstr(env, d / "l"), SCRATCH + 0x1000, 1) == 1  # truncated, like the kernel
    assert sc(env, "access", cstr(env, b), os.R_OK) == 0
    assert sc(env, "faccessat", AT_FDCWD, cstr(env, d / "zz"), os.R_OK) == -errno.ENOENT
    assert sc(env, "chmod", cstr(env, b), 0o600) == 0 and os.stat(b).st_mode & 0o777 == 0o600
    assert sc(env, "truncate", cstr(env, b), 10) == 0 and os.stat(b).st_size == 10
    assert sc(env, "unlink", cstr(env, d / "l")) == 0 and not os.path.lexists(d / "l")
    assert sc(env, "unlinkat", AT_FDCWD, cstr(env, d), 0x200) == -errno.ENOTEMPTY
    os.unlink(b)
    assert sc(env, "rmdir", cstr(env, d)) == 0 and not d.exists()


def test_getcwd_chdir(env, tmp_path):
    old = os.getcwd()
    try:
        assert sc(env, "chdir", cstr(env, tmp_path)) == 0
        assert os.getcwd() == str(tmp_path)
        n = sc(env, "getcwd", SCRATCH + 0x1000, 4096)
        assert env.mem.read(SCRATCH + 0x1000, n) == os.getcwdb() + b"\0"
        assert sc(env, "getcwd", SCRATCH + 0x1000, 2) == -errno.ERANGE
    finally:
        os.chdir(old)


def test_readlink_proc_self_exe_is_the_guest_program(env, tmp_path):
    n = sc(env, "readlinkat", AT_FDCWD, cstr(env, "/proc/self/exe"), SCRATCH + 0x1000, 4096)
    assert env.mem.read(SCRATCH + 0x1000, n) == os.fsencode(os.path.realpath(env.exe_path))


def test_sysroot_prefixes_existing_absolute_paths(make_env, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hqemu-test-only").write_text("inside")
    env = make_env(sysroot=str(root))
    fd = sc(env, "open", cstr(env, "/etc/hqemu-test-only"), os.O_RDONLY, 0)
    assert fd >= 0
    assert os.read(fd, 100) == b"inside"
    os.close(fd)
    assert sc(env, "access", cstr(env, "/proc/self"), 0) == 0  # not under the root: the host's


def test_aarch64_open_flags_are_translated(make_env, tmp_path):
    env = make_env("aarch64")
    f = tmp_path / "file"
    f.write_text("x")
    a64_directory = 0o40000  # O_DIRECTORY on AArch64 (O_DIRECT on x86-64)
    fd = sc(env, "openat", AT_FDCWD, cstr(env, tmp_path), a64_directory, 0)
    assert fd >= 0
    assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECTORY
    assert sc(env, "fcntl", fd, 3, 0) & a64_directory  # F_GETFL answers in the guest's bits
    os.close(fd)
    assert sc(env, "openat", AT_FDCWD, cstr(env, f), a64_directory, 0) == -errno.ENOTDIR


# --- descriptors ---------------------------------------------------------------------------
def test_pipe_dup_fcntl_like_host(env):
    assert sc(env, "pipe2", SCRATCH + 0x1000, 0o2000000) == 0  # O_CLOEXEC
    r, w = struct.unpack("<ii", env.mem.read(SCRATCH + 0x1000, 8))
    try:
        assert fcntl.fcntl(r, fcntl.F_GETFD) == fcntl.FD_CLOEXEC
        assert sc(env, "fcntl", r, 1, 0) == fcntl.fcntl(r, fcntl.F_GETFD)
        d = sc(env, "dup", w)
        assert fcntl.fcntl(d, fcntl.F_GETFD) == 0  # dup never copies close-on-exec
        env.mem.write(SCRATCH + 0x2000, b"ping")
        assert sc(env, "write", d, SCRATCH + 0x2000, 4) == 4
        assert os.read(r, 10) == b"ping"
        assert sc(env, "fcntl", r, 4, os.O_NONBLOCK) == 0
        assert sc(env, "fcntl", r, 3, 0) == fcntl.fcntl(r, fcntl.F_GETFL)
        assert sc(env, "read", r, SCRATCH + 0x2000, 4) == -errno.EAGAIN
        assert sc(env, "dup3", d, d, 0) == -errno.EINVAL
        assert sc(env, "close", d) == 0
        assert sc(env, "close", d) == -errno.EBADF
    finally:
        os.close(r)
        os.close(w)


def test_poll_matches_host_poll(env):
    r, w = os.pipe()
    try:
        env.mem.write(SCRATCH + 0x1000, struct.pack("<ihhihh", r, select.POLLIN, 0, w, select.POLLOUT, 0))
        env.mem.write(SCRATCH + 0x2000, struct.pack("<qq", 0, 0))
        n = sc(env, "ppoll", SCRATCH + 0x1000, 2, SCRATCH + 0x2000, 0, 8)
        revents = struct.unpack("<ihhihh", env.mem.read(SCRATCH + 0x1000, 16))
        p = select.poll()
        p.register(r, select.POLLIN)
        p.register(w, select.POLLOUT)
        host = dict(p.poll(0))
        assert n == len(host) and revents[2] == host.get(r, 0) and revents[5] == host.get(w, 0)
        os.write(w, b"x")
        assert sc(env, "ppoll", SCRATCH + 0x1000, 2, SCRATCH + 0x2000, 0, 8) == 2
        assert struct.unpack("<ihh", env.mem.read(SCRATCH + 0x1000, 8))[2] == select.POLLIN
    finally:
        os.close(r)
        os.close(w)


def test_ioctl_tcgets_forwards_to_the_host(env, tmp_path):
    f = tmp_path / "plain"
    f.write_text("")
    fd = os.open(f, os.O_RDONLY)
    try:
        assert sc(env, "ioctl", fd, 0x5401, SCRATCH + 0x1000) == -errno.ENOTTY
        assert sc(env, "ioctl", fd, 0x1234, SCRATCH + 0x1000) == -errno.ENOTTY
    finally:
        os.close(fd)
    master, slave = os.openpty()
    try:
        assert sc(env, "ioctl", slave, 0x5401, SCRATCH + 0x1000) == 0
        assert env.mem.read(SCRATCH + 0x1000, 36) == fcntl.ioctl(slave, 0x5401, bytes(36))
        assert sc(env, "ioctl", slave, 0x5413, SCRATCH + 0x1000) == 0
        assert env.mem.read(SCRATCH + 0x1000, 8) == fcntl.ioctl(slave, 0x5413, bytes(8))
    finally:
        os.close(master)
        os.close(slave)


# --- memory --------------------------------------------------------------------------------
def test_mmap_munmap_brk_mprotect(env, tmp_path):
    mem = env.mem
    a = sc(env, "mmap", 0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    assert a > 0 and a % 4096 == 0 and mem.prot_of(a) == PROT_READ | PROT_WRITE
    f = tmp_path / "m"
    content = os.urandom(5000)
    f.write_bytes(content)
    fd = os.open(f, os.O_RDONLY)
    b = sc(env, "mmap", 0, 5000, PROT_READ, MAP_PRIVATE, fd, 0)
    os.close(fd)
    assert mem.read(b, 5000) == content and mem.read(b + 5000, 100) == bytes(100)
    assert sc(env, "mmap", 0, 4096, PROT_READ, MAP_PRIVATE, 999, 0) == -errno.EBADF
    invalidated = []
    env.invalidate_code = lambda addr, n: invalidated.append((addr, n))
    assert sc(env, "mprotect", a, 4096, PROT_READ) == 0 and mem.prot_of(a) == PROT_READ
    assert invalidated == []  # no exec page lost its permission
    assert sc(env, "mprotect", a, 4096, PROT_READ | PROT_EXEC) == 0
    assert sc(env, "munmap", a, 3 * 4096) == 0 and mem.prot_of(a) == 0
    assert invalidated == [(a, 3 * 4096)]
    mem.set_brk_base(0x40000000)
    assert sc(env, "brk", 0) == 0x40000000
    assert sc(env, "brk", 0x40002000) == 0x40002000 and mem.prot_of(0x40001000) & PROT_WRITE


# --- bad pointers, unknown numbers, strace --------------------------------------------------
def test_bad_pointers_give_efault(env, tmp_path):
    f = tmp_path / "e"
    f.write_bytes(b"data")
    fd = os.open(f, os.O_RDONLY)
    try:
        assert sc(env, "read", fd, HOLE, 4) == -errno.EFAULT
        assert sc(env, "fstat", fd, HOLE) == -errno.EFAULT
        assert sc(env, "write", 1, HOLE, 4) == -errno.EFAULT
    finally:
        os.close(fd)
    assert sc(env, "openat", AT_FDCWD, HOLE, 0, 0) == -errno.EFAULT
    assert sc(env, "openat", AT_FDCWD, 0, 0, 0) == -errno.EFAULT
    assert sc(env, "uname", HOLE) == -errno.EFAULT
    assert sc(env, "clock_gettime", 0, HOLE) == -errno.EFAULT


def test_unknown_syscall_is_enosys_counted_and_logged(make_env, tmp_path):
    env = make_env(items=("unimp", "strace"))
    env.set_reg("rax", 999)
    dispatch(env)
    assert env.reg("rax") == (-errno.ENOSYS) & (2**64 - 1)
    assert env.stats.unknown_syscalls[999] == 1
    env.set_reg("rax", BY_NAME["clone"].nr["x86_64"])
    dispatch(env)
    assert env.stats.unknown_syscalls[56] == 1
    text = "\n".join(log_lines(tmp_path))
    assert "syscall 999" in text and "clone (56)" in text
    assert re.search(r"^\d+ Unknown syscall 999\(.*\) = -1 errno=38 \(Function not implemented\)$", text,
                     re.M)


def test_strace_lines_have_qemu_shape(make_env, tmp_path):
    env = make_env(strace=True)
    f = tmp_path / "exists"
    f.write_text("hi")
    fd = sc(env, "openat", AT_FDCWD, cstr(env, f), os.O_RDONLY | 0o2000000, 0)
    sc(env, "openat", AT_FDCWD, cstr(env, tmp_path / "missing"), os.O_RDONLY, 0)
    env.mem.write(SCRATCH + 0x1000, b"hello\n" + b"x" * 100)
    r, w = os.pipe()
    sc(env, "write", w, SCRATCH + 0x1000, 106)
    os.close(r)
    os.close(w)
    sc(env, "close", fd)
    sc(env, "mmap", 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    lines = log_lines(tmp_path)
    pid = os.getpid()
    assert lines[0] == f'{pid} openat(AT_FDCWD,"{str(f)[:32]}"{"..." if len(str(f)) > 32 else ""},' \
                       f"O_RDONLY|O_CLOEXEC,0) = {fd}"
    assert re.fullmatch(rf"{pid} openat\(AT_FDCWD,\".*,O_RDONLY,0\) = -1 errno=2 "
                        r"\(No such file or directory\)", lines[1])
    assert lines[2] == f'{pid} write({w},"hello\\nxxxxxxxxxxxxxxxxxxxxxxxxxx"...,106) = 106'
    assert lines[3] == f"{pid} close({fd}) = 0"
    assert re.fullmatch(rf"{pid} mmap\(NULL,4096,PROT_READ,MAP_PRIVATE\|MAP_ANONYMOUS,-1,0x0\) = 0x[0-9a-f]+",
                        lines[4])
    assert env.stats.syscalls["openat"] == 2 and env.stats.syscalls["write"] == 1


# --- process -------------------------------------------------------------------------------
def test_uname_matches_host(make_env):
    for isa in ("x86_64", "aarch64"):
        env = make_env(isa)
        assert sc(env, "uname", SCRATCH + 0x1000) == 0
        raw = env.mem.read(SCRATCH + 0x1000, 390)
        fields = [raw[i * 65:(i + 1) * 65].split(b"\0")[0].decode() for i in range(6)]
        u = os.uname()
        assert fields[:5] == [u.sysname, u.nodename, u.release, u.version, isa]


def test_ids_and_limits_match_host(env):
    assert sc(env, "getpid") == os.getpid() == sc(env, "gettid")
    assert sc(env, "getppid") == os.getppid()
    assert (sc(env, "getuid"), sc(env, "geteuid"), sc(env, "getgid"), sc(env, "getegid")) == \
        (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    n = sc(env, "getgroups", 0, 0)
    assert n == len(os.getgroups())
    assert sc(env, "prlimit64", 0, resource.RLIMIT_NOFILE, 0, SCRATCH + 0x1000) == 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = 2**64 - 1
    assert struct.unpack("<QQ", env.mem.read(SCRATCH + 0x1000, 16)) == \
        tuple(inf if v == resource.RLIM_INFINITY else v for v in (soft, hard))
    env.mem.write(SCRATCH + 0x2000, struct.pack("<QQ", 64, 128))
    assert sc(env, "setrlimit", resource.RLIMIT_NOFILE, SCRATCH + 0x2000) == 0
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)  # pretended only
    assert sc(env, "getrlimit", resource.RLIMIT_NOFILE, SCRATCH + 0x1000) == 0
    assert struct.unpack("<QQ", env.mem.read(SCRATCH + 0x1000, 16)) == (64, 128)
    assert sc(env, "set_tid_address", SCRATCH) == os.getpid()
    assert sc(env, "set_robust_list", SCRATCH, 24) == 0
    assert sc(env, "rseq", SCRATCH, 32, 0, 0) == -errno.ENOSYS
    assert sc(env, "wait4", -1, 0, 0, 0) == -errno.ECHILD
    assert sc(env, "socket", 2, 1, 0) == -errno.EAFNOSUPPORT
    assert sc(env, "sched_getaffinity", 0, 128, SCRATCH + 0x1000) > 0
    mask = int.from_bytes(env.mem.read(SCRATCH + 0x1000, 8), "little")
    assert {c for c in range(64) if mask >> c & 1} == {c for c in os.sched_getaffinity(0) if c < 64}


def test_arch_prctl_sets_and_gets_fs(env):
    assert sc(env, "arch_prctl", 0x1002, 0x7000_1234) == 0
    assert env.cpu.fs_base == 0x7000_1234
    assert sc(env, "arch_prctl", 0x1003, SCRATCH + 0x1000) == 0
    assert struct.unpack("<Q", env.mem.read(SCRATCH + 0x1000, 8))[0] == 0x7000_1234
    assert sc(env, "arch_prctl", 0x1001, 0x5000) == 0 and env.reg("gs_base") == 0x5000
    assert sc(env, "arch_prctl", 0x1002, 1 << 48) == -errno.EPERM
    assert sc(env, "arch_prctl", 0x9999, 0) == -errno.EINVAL


def test_getrandom_follows_the_seed(make_env):
    a = make_env(seed=42)
    assert sc(a, "getrandom", SCRATCH + 0x1000, 64, 0) == 64
    first = a.mem.read(SCRATCH + 0x1000, 64)
    b = make_env(seed=42)
    sc(b, "getrandom", SCRATCH + 0x1000, 64, 0)
    assert b.mem.read(SCRATCH + 0x1000, 64) == first
    c = make_env(seed=43)
    sc(c, "getrandom", SCRATCH + 0x1000, 64, 0)
    assert c.mem.read(SCRATCH + 0x1000, 64) != first
    assert sc(c, "getrandom", SCRATCH + 0x1000, 8, 0x80) == -errno.EINVAL


def test_exit_group_raises_guest_exit(env):
    with pytest.raises(GuestExit) as e:
        sc(env, "exit_group", 0x103)
    assert e.value.status == 3


def test_prctl_name(env):
    env.mem.write(SCRATCH + 0x1000, b"worker-thread-name-long\0")
    assert sc(env, "prctl", 15, SCRATCH + 0x1000) == 0
    assert sc(env, "prctl", 16, SCRATCH + 0x2000) == 0
    assert env.mem.read(SCRATCH + 0x2000, 16) == b"worker-thread-n\0"


# --- time ----------------------------------------------------------------------------------
def test_clocks_lie_between_host_readings(env):
    import time
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    assert sc(env, "clock_gettime", 1, SCRATCH + 0x1000) == 0
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    sec, nsec = struct.unpack("<qq", env.mem.read(SCRATCH + 0x1000, 16))
    assert before <= sec * 10**9 + nsec <= after
    t0 = time.time()
    assert sc(env, "gettimeofday", SCRATCH + 0x1000, 0) == 0
    sec, usec = struct.unpack("<qq", env.mem.read(SCRATCH + 0x1000, 16))
    assert int(t0) <= sec <= time.time() and 0 <= usec < 10**6
    assert sc(env, "clock_gettime", 12345, SCRATCH + 0x1000) == -errno.EINVAL
    env.mem.write(SCRATCH + 0x1000, struct.pack("<qq", 0, 2_000_000))
    t0 = time.monotonic()
    assert sc(env, "nanosleep", SCRATCH + 0x1000, 0) == 0
    assert time.monotonic() - t0 >= 0.002
    env.mem.write(SCRATCH + 0x1000, struct.pack("<qq", 0, 10**9))
    assert sc(env, "nanosleep", SCRATCH + 0x1000, 0) == -errno.EINVAL


# --- signals and futex ---------------------------------------------------------------------
def test_sigaction_reports_the_old_action(env):
    act = struct.pack("<QQQQ", 0x401000, 0x04000000, 0x402000, 1 << 1)
    env.mem.write(SCRATCH + 0x1000, act)
    assert sc(env, "rt_sigaction", 2, SCRATCH + 0x1000, SCRATCH + 0x2000, 8) == 0
    assert env.mem.read(SCRATCH + 0x2000, 32) == bytes(32)  # SIG_DFL before
    assert sc(env, "rt_sigaction", 2, 0, SCRATCH + 0x2000, 8) == 0
    assert env.mem.read(SCRATCH + 0x2000, 32) == act
    assert linux_state(env).sigactions[2].handler == 0x401000
    assert sc(env, "rt_sigaction", 9, SCRATCH + 0x1000, 0, 8) == -errno.EINVAL
    assert sc(env, "rt_sigaction", 2, SCRATCH + 0x1000, 0, 4) == -errno.EINVAL


def test_raise_kills_unless_ignored_and_waits_while_blocked(env):
    pid = os.getpid()
    assert sc(env, "kill", pid, 0) == 0
    assert sc(env, "tgkill", pid, pid, 17) == 0  # SIGCHLD: ignored by default
    env.mem.write(SCRATCH + 0x1000, struct.pack("<QQQQ", 1, 0, 0, 0))  # SIG_IGN
    sc(env, "rt_sigaction", 10, SCRATCH + 0x1000, 0, 8)
    assert sc(env, "tgkill", pid, pid, 10) == 0
    env.mem.write(SCRATCH + 0x1000, struct.pack("<Q", 1 << 5))  # block SIGABRT
    assert sc(env, "rt_sigprocmask", 0, SCRATCH + 0x1000, 0, 8) == 0
    assert sc(env, "tgkill", pid, pid, 6) == 0  # pending
    assert sc(env, "rt_sigprocmask", 2, 0, SCRATCH + 0x2000, 8) == 0
    assert struct.unpack("<Q", env.mem.read(SCRATCH + 0x2000, 8))[0] == 1 << 5
    env.mem.write(SCRATCH + 0x1000, struct.pack("<Q", 0))
    with pytest.raises(GuestSignal) as e:
        sc(env, "rt_sigprocmask", 2, SCRATCH + 0x1000, 0, 8)  # unblocking delivers it
    assert e.value.signo == 6
    with pytest.raises(GuestSignal) as e:
        sc(env, "tkill", pid, 11)
    assert e.value.signo == 11


def test_sigaltstack_round_trip(env):
    assert sc(env, "sigaltstack", 0, SCRATCH + 0x2000) == 0
    assert struct.unpack("<Qi4xQ", env.mem.read(SCRATCH + 0x2000, 24)) == (0, 2, 0)  # SS_DISABLE
    env.mem.write(SCRATCH + 0x1000, struct.pack("<Qi4xQ", 0x7000, 0, 8192))
    assert sc(env, "sigaltstack", SCRATCH + 0x1000, 0) == 0
    assert sc(env, "sigaltstack", 0, SCRATCH + 0x2000) == 0
    assert struct.unpack("<Qi4xQ", env.mem.read(SCRATCH + 0x2000, 24)) == (0x7000, 0, 8192)
    env.mem.write(SCRATCH + 0x1000, struct.pack("<Qi4xQ", 0x7000, 0, 100))
    assert sc(env, "sigaltstack", SCRATCH + 0x1000, 0) == -errno.ENOMEM


def test_futex_single_thread(env):
    word = SCRATCH + 0x1000
    env.mem.write(word, struct.pack("<I", 5))
    assert sc(env, "futex", word, 128, 4, 0, 0, 0) == -errno.EAGAIN  # FUTEX_WAIT_PRIVATE, changed
    assert sc(env, "futex", word, 129, 1, 0, 0, 0) == 0  # FUTEX_WAKE_PRIVATE: nobody to wake
    env.mem.write(SCRATCH + 0x2000, struct.pack("<qq", 0, 1_000_000))
    assert sc(env, "futex", word, 128, 5, SCRATCH + 0x2000, 0, 0) == -errno.ETIMEDOUT
    with pytest.raises(HqemuError):
        sc(env, "futex", word, 128, 5, 0, 0, 0)
    assert sc(env, "futex", word + 1, 128, 5, 0, 0, 0) == -errno.EINVAL
    # FUTEX_WAKE_OP: *uaddr2 += 3 (op ADD, oparg 3, cmp EQ 0)
    env.mem.write(word + 4, struct.pack("<I", 10))
    assert sc(env, "futex", word, 5, 1, 1, word + 4, (1 << 28) | (3 << 12)) == 0
    assert struct.unpack("<I", env.mem.read(word + 4, 4))[0] == 13


# --- real static programs: libc's own use of the layer, under Unicorn --------------------
# A minimal loader and a Unicorn CPU stand in for hqemu's loader and tiers, so the syscall
# layer meets real glibc/musl startup and stdio; the oracle is the same program run natively
# (x86-64) or under qemu-aarch64.
_PROGRAM_C = r"""
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char path[512], buf[100];
    snprintf(path, sizeof path, "%s/out.txt", argv[1]);
    struct utsname u; uname(&u); printf("machine=%s\n", u.machine);
    FILE *f = fopen(path, "w"); fprintf(f, "line %d\n", 42); fclose(f);
    f = fopen(path, "r"); fgets(buf, sizeof buf, f); fclose(f); printf("read back: %s", buf);
    struct stat st; stat(path, &st); printf("size=%ld mode=%o\n", (long)st.st_size, st.st_mode & 0777);
    DIR *d = opendir(argv[1]); struct dirent *e; int n = 0;
    while ((e = readdir(d))) n++;
    closedir(d); printf("entries=%d\n", n);
    char *p = malloc(1 << 20); memset(p, 1, 1 << 20); free(p);
    void *m = mmap(0, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("munmap=%d\n", munmap(m, 1 << 16));
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); printf("clock ok %d\n", ts.tv_sec > 1600000000);
    if (open("/nonexistent", O_RDONLY) < 0) printf("errno=%d\n", errno);
    char exe[512]; ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[k > 0 ? k : 0] = 0; printf("exe=%s\n", strrchr(exe, '/'));
    signal(SIGUSR1, SIG_IGN); raise(SIGUSR1); printf("survived SIGUSR1\n");
    return 3;
}
"""


class _Loaded:
    def __init__(self, entry, sp):
        self.entry, self.sp = entry, sp


def _load_static(env, path, argv):
    from elftools.elf.elffile import ELFFile
    mem = env.mem
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        top = 0
        for seg in loads:
            va, fl = seg["p_vaddr"], seg["p_flags"]
            start, end = va & ~0xFFF, (va + seg["p_memsz"] + 0xFFF) & ~0xFFF
            mem.map_fixed(start, end - start, (fl & 4 and 1) | (fl & 2) | (fl & 1 and 4))
            mem._poke(va, seg.data())
            top = max(top, end)
        phdr = min(s["p_vaddr"] - s["p_offset"] for s in loads) + elf["e_phoff"]
        entry, phnum = elf["e_entry"], elf["e_phnum"]
    mem.set_brk_base(top)
    stack_top = mem.size - (16 << 20)  # above mmap_base, where Linux puts it too
    mem.map_fixed(stack_top - (1 << 20), 1 << 20, PROT_READ | PROT_WRITE)
    sp = stack_top - 0x1000
    ptrs = []
    for s in [*argv, "PATH=/usr/bin", env.fe.platform]:
        b = s.encode() + b"\0"
        sp -= len(b)
        mem.write(sp, b)
        ptrs.append(sp)
    sp = (sp - 16) & ~15
    mem.write(sp, bytes(range(16)))  # AT_RANDOM
    aux = [3, phdr, 4, 56, 5, phnum, 6, 4096, 9, entry, 23, 0, 25, sp, 15, ptrs[-1], 16, 0, 0, 0]
    words = [len(argv), *ptrs[:len(argv)], 0, ptrs[len(argv)], 0, *aux]
    sp = (sp - 8 * len(words)) & ~15
    mem.write(sp, struct.pack(f"<{len(words)}Q", *words))
    return _Loaded(entry, sp)


def _run_under_unicorn(env, path, argv):
    """Run a static program; its stdout (fd 1 redirected to a pipe) and how it ended."""
    import unicorn as U
    from unicorn import arm64_const as A
    from unicorn import x86_const as X
    img = _load_static(env, path, argv)
    x86 = env.fe.isa == "x86_64"
    uc = U.Uc(U.UC_ARCH_X86, U.UC_MODE_64) if x86 else U.Uc(U.UC_ARCH_ARM64, U.UC_MODE_ARM)
    if not x86:
        uc.reg_write(A.UC_ARM64_REG_CPACR_EL1, 3 << 20)  # FP/SIMD on
    mapped = []

    def sync():  # Unicorn sees exactly GuestMemory's mappings, over the same host pages
        for s, e in mapped:
            uc.mem_unmap(s, e - s)
        mapped.clear()
        for s, e, prot, _ in env.mem.mappings():
            if prot:
                perms = U.UC_PROT_READ | (prot & 2 and U.UC_PROT_WRITE) | (prot & 4 and U.UC_PROT_EXEC)
                uc.mem_map_ptr(s, e - s, perms, env.mem.base + s)
                mapped.append((s, e))

    names = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9")
    regs = ({n: getattr(X, f"UC_X86_REG_{n.upper()}") for n in names} if x86
            else {f"x{i}": A.UC_ARM64_REG_X0 + i for i in range(9)})
    ended = []

    def on_syscall(uc, *_):
        for n, r in regs.items():
            env.set_reg(n, uc.reg_read(r))
        try:
            dispatch(env)
        except (GuestExit, GuestSignal) as e:
            ended.append(e)
            uc.emu_stop()
            return
        uc.reg_write(regs[env.fe.syscall_ret], env.reg(env.fe.syscall_ret))
        if x86:
            uc.reg_write(X.UC_X86_REG_FS_BASE, env.reg("fs_base"))
        sync()

    sync()
    if x86:
        uc.hook_add(U.UC_HOOK_INSN, on_syscall, None, 1, 0, X.UC_X86_INS_SYSCALL)
        uc.reg_write(X.UC_X86_REG_RSP, img.sp)
    else:
        uc.hook_add(U.UC_HOOK_INTR, on_syscall)
        uc.reg_write(A.UC_ARM64_REG_SP, img.sp)
    r, w = os.pipe()
    saved = os.dup(1)
    os.dup2(w, 1)
    try:
        uc.emu_start(img.entry, 1 << 62)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    return out, ended[0] if ended else None


@pytest.mark.parametrize("isa", ["x86_64", "aarch64"])
def test_static_program_matches_native(isa, make_env, tmp_path):
    pytest.importorskip("unicorn")
    cc, runner = ("musl-gcc", []) if isa == "x86_64" else ("aarch64-linux-gnu-gcc", ["qemu-aarch64"])
    if not shutil.which(cc) or (runner and not shutil.which(runner[0])):
        pytest.skip(f"needs {cc} {' '.join(runner)}")
    src = tmp_path / "prog.c"
    src.write_text(_PROGRAM_C)
    exe = tmp_path / "prog"
    subprocess.run([cc, "-static", "-O1", "-o", str(exe), str(src)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "a").write_text("a")
    native = subprocess.run([*runner, str(exe), str(work)], capture_output=True)
    os.unlink(work / "out.txt")
    env = make_env(isa)
    env.exe_path = str(exe)
    out, end = _run_under_unicorn(env, str(exe), [str(exe), str(work)])
    assert out == native.stdout and b"survived" in out
    assert isinstance(end, GuestExit) and end.status == native.returncode == 3
    assert not env.stats.unknown_syscalls
