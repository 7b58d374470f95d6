"""The Linux user ABI as the guest sees it: constants, argument decoding, open-flag translation.

Errno values, signal numbers, AT_*, mmap and fcntl constants are the same for every guest ISA
hqemu runs (x86-64 and AArch64 both use the generic numbering); the open(2) flags are not:
O_DIRECT, O_LARGEFILE, O_DIRECTORY and O_NOFOLLOW move between the ISAs, so a guest's flags
are translated bit by bit, by name, into the host's.

    >>> fd = s32(a0)                                   # an int argument in a 64-bit register
    >>> host = open_flags_to_host("aarch64", 0o40000)  # O_DIRECTORY on AArch64
"""

from __future__ import annotations

import os
import platform

MASK64 = (1 << 64) - 1
PAGE = 4096


def s32(x: int) -> int:
    """A C int argument: the low 32 bits of the register, signed."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >> 31 else x


def s64(x: int) -> int:
    x &= MASK64
    return x - (1 << 64) if x >> 63 else x


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20

SIG_DFL, SIG_IGN = 0, 1
SIGKILL, SIGSTOP = 9, 19
NSIG = 64  # signals are 1..64; a sigset is one 64-bit word on both ISAs
SIGSET_SIZE = 8

# signals whose default action is not to die (ignore, or stop/continue, which hqemu ignores)
DEFAULT_HARMLESS = frozenset({17, 18, 19, 20, 21, 22, 23, 28})  # CHLD CONT STOP TSTP TTIN TTOU URG WINCH

# open(2) flags that every Linux ISA places at the same bit
_OPEN_COMMON = {
    "O_WRONLY": 0o1, "O_RDWR": 0o2, "O_CREAT": 0o100, "O_EXCL": 0o200, "O_NOCTTY": 0o400,
    "O_TRUNC": 0o1000, "O_APPEND": 0o2000, "O_NONBLOCK": 0o4000, "O_DSYNC": 0o10000,
    "O_ASYNC": 0o20000, "O_NOATIME": 0o1000000, "O_CLOEXEC": 0o2000000, "__O_SYNC": 0o4000000,
    "O_PATH": 0o10000000, "__O_TMPFILE": 0o20000000,
}
OPEN_FLAGS: dict[str, dict[str, int]] = {
    "x86_64": _OPEN_COMMON | {"O_DIRECT": 0o40000, "O_LARGEFILE": 0o100000, "O_DIRECTORY": 0o200000,
                              "O_NOFOLLOW": 0o400000},
    "aarch64": _OPEN_COMMON | {"O_DIRECTORY": 0o40000, "O_NOFOLLOW": 0o100000, "O_DIRECT": 0o200000,
                               "O_LARGEFILE": 0o400000},
}
O_CLOEXEC = 0o2000000  # same bit everywhere

HOST_ISA = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
    platform.machine().lower(), "x86_64")


def _translate(flags: int, src: dict[str, int], dst: dict[str, int]) -> int:
    if src is dst:
        return flags
    out = 0
    by_bit = {v: k for k, v in src.items()}
    for bit in range(64):
        b = 1 << bit
        if flags & b:
            name = by_bit.get(b)
            # bits no table names pass through: the kernel ignores or rejects them the same way
            out |= dst[name] if name in dst else b
    return out


def open_flags_to_host(isa: str, flags: int) -> int:
    return _translate(flags & 0xFFFFFFFF, OPEN_FLAGS[isa], OPEN_FLAGS[HOST_ISA])


def open_flags_to_guest(isa: str, flags: int) -> int:
    return _translate(flags & 0xFFFFFFFF, OPEN_FLAGS[HOST_ISA], OPEN_FLAGS[isa])


MINSIGSTKSZ = {"x86_64": 2048, "aarch64": 5120}

# RLIM_INFINITY as the guest sees it; Python's resource module says -1
RLIM_INFINITY = MASK64


def errno_of(e: OSError) -> int:
    return e.errno if e.errno else 5  # EIO: an OSError without errno should not pass for success


def strerror(err: int) -> str:
    try:
        return os.strerror(err)
    except ValueError:
        return f"Unknown error {err}"
