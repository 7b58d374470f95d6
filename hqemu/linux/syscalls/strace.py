"""-strace: one line per guest syscall, in QEMU's shape.

    1234 openat(AT_FDCWD,"/etc/passwd",O_RDONLY|O_CLOEXEC) = 3
    1234 read(3,0x4c72a0,4096) = -1 errno=9 (Bad file descriptor)

Each table entry names the kind of each argument (KINDS below); the table is checked
against KINDS at import. Arguments are formatted before the call (a handler may overwrite
the memory they point to), the result after it.

    >>> head = format_call(env, entry, args); ...; env.log.write(head + format_result(entry, r))
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from hqemu.errors import GuestFault

from .abi import AT_FDCWD, OPEN_FLAGS, s32, s64, strerror

STR_MAX = 32  # bytes of a string or buffer shown before "..."


def _quote(data: bytes, truncated: bool) -> str:
    out = []
    for b in data:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:o}")
    return '"' + "".join(out) + '"' + ("..." if truncated else "")


def _flags(v: int, names: dict[int, str], zero: str = "0") -> str:
    if v == 0:
        return zero
    parts = []
    for bit, name in names.items():
        if v & bit == bit and bit:
            parts.append(name)
            v &= ~bit
    if v:
        parts.append(hex(v))
    return "|".join(parts)


def _enum(v: int, names: dict[int, str], fmt: Callable[[int], str] = str) -> str:
    return names.get(v, fmt(v))


_PROT = {1: "PROT_READ", 2: "PROT_WRITE", 4: "PROT_EXEC", 0x01000000: "PROT_GROWSDOWN",
         0x02000000: "PROT_GROWSUP"}
_MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
_MAP = {0x10: "MAP_FIXED", 0x20: "MAP_ANONYMOUS", 0x40: "MAP_32BIT", 0x100: "MAP_GROWSDOWN",
        0x800: "MAP_DENYWRITE", 0x1000: "MAP_EXECUTABLE", 0x2000: "MAP_LOCKED", 0x4000: "MAP_NORESERVE",
        0x8000: "MAP_POPULATE", 0x10000: "MAP_NONBLOCK", 0x20000: "MAP_STACK", 0x40000: "MAP_HUGETLB",
        0x100000: "MAP_FIXED_NOREPLACE"}
_AT = {0x100: "AT_SYMLINK_NOFOLLOW", 0x200: "AT_REMOVEDIR", 0x400: "AT_SYMLINK_FOLLOW",
       0x800: "AT_NO_AUTOMOUNT", 0x1000: "AT_EMPTY_PATH"}
_AMODE = {4: "R_OK", 2: "W_OK", 1: "X_OK"}
_CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
           3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
           6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME"}
_FUTEX = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE",
          5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI",
          9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 13: "FUTEX_LOCK_PI2"}
_FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
          7: "F_SETLKW", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ"}
_WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
_IOCTL = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x5413: "TIOCGWINSZ",
          0x5414: "TIOCSWINSZ", 0x540F: "TIOCGPGRP", 0x541B: "FIONREAD"}
_PRCTL = {3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE", 15: "PR_SET_NAME", 16: "PR_GET_NAME"}
_ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS"}
_RLIMIT = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK", 4: "RLIMIT_CORE",
           5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE", 8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS"}


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else f"0x{v:x}"


def _sig(v: int) -> str:
    try:
        return signal.Signals(s32(v)).name
    except ValueError:
        return str(s32(v))


def _oflags(env: Any, v: int) -> str:
    v &= 0xFFFFFFFF
    names = {bit: name for name, bit in OPEN_FLAGS[env.fe.isa].items() if bit > 2}
    acc = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(v & 3, str(v & 3))
    rest = _flags(v & ~3, names, "")
    return acc + ("|" + rest if rest else "")


def _mflags(v: int) -> str:
    v &= 0xFFFFFFFF
    t = _MAP_TYPE.get(v & 0xF, hex(v & 0xF))
    rest = _flags(v & ~0xF, _MAP, "")
    return t + ("|" + rest if rest else "")


def _futexop(v: int) -> str:
    v &= 0xFFFFFFFF
    s = _enum(v & 0x7F, _FUTEX)
    if v & 128:
        s += "|FUTEX_PRIVATE_FLAG"
    if v & 256:
        s += "|FUTEX_CLOCK_REALTIME"
    return s


def _cstr(env: Any, v: int) -> str:
    if v == 0:
        return "NULL"
    try:
        s = env.mem.read_cstr(v, STR_MAX + 1)
    except GuestFault:
        return _ptr(v)
    return _quote(s[:STR_MAX], len(s) > STR_MAX)


def _buf(env: Any, v: int, n: int) -> str:
    n &= 0xFFFFFFFFFFFFFFFF
    try:
        data = env.mem.read(v, min(n, STR_MAX))
    except GuestFault:
        return _ptr(v)
    return _quote(data, n > STR_MAX)


# kind -> formatter(env, value) for one argument; "buf@N" (a buffer of arg N bytes) is apart
KINDS: dict[str, Callable[[Any, int], str]] = {
    "int": lambda env, v: str(s32(v)),
    "long": lambda env, v: str(s64(v)),
    "size": lambda env, v: str(v),
    "hex": lambda env, v: hex(v),
    "ptr": lambda env, v: _ptr(v),
    "fd": lambda env, v: "AT_FDCWD" if s32(v) == AT_FDCWD else str(s32(v)),
    "path": _cstr,
    "mode": lambda env, v: f"0{v & 0xFFFFFFFF:o}" if v & 0xFFFFFFFF else "0",  # C printf %#o
    "oflags": _oflags,
    "prot": lambda env, v: _flags(v & 0xFFFFFFFF, _PROT, "PROT_NONE"),
    "mflags": lambda env, v: _mflags(v),
    "atflags": lambda env, v: _flags(v & 0xFFFFFFFF, _AT),
    "amode": lambda env, v: _flags(v & 0xFFFFFFFF, _AMODE, "F_OK"),
    "sig": lambda env, v: _sig(v),
    "clock": lambda env, v: _enum(s32(v), _CLOCKS),
    "futexop": lambda env, v: _futexop(v),
    "fcntl": lambda env, v: _enum(s32(v), _FCNTL),
    "whence": lambda env, v: _enum(s32(v), _WHENCE),
    "how": lambda env, v: _enum(s32(v), _HOW),
    "ioctl": lambda env, v: _enum(v & 0xFFFFFFFF, _IOCTL, hex),
    "prctl": lambda env, v: _enum(s32(v), _PRCTL),
    "archprctl": lambda env, v: _enum(s32(v), _ARCH_PRCTL, hex),
    "rlimit": lambda env, v: _enum(s32(v), _RLIMIT),
}
RESULT_KINDS = ("int", "hex", "none")


def check_kind(kind: str, nargs: int) -> None:
    """Raise ValueError for a kind the formatter does not know (the table calls it at import)."""
    if kind.startswith("buf@"):
        idx = int(kind[4:])
        if not 0 <= idx < nargs:
            raise ValueError(f"{kind}: no argument {idx}")
    elif kind not in KINDS:
        raise ValueError(f"unknown strace kind {kind!r}")


def format_arg(env: Any, kind: str, v: int, args: tuple[int, ...]) -> str:
    if kind.startswith("buf@"):
        return _buf(env, v, args[int(kind[4:])])
    return KINDS[kind](env, v)


def format_call(env: Any, name: str, kinds: tuple[str, ...], args: tuple[int, ...]) -> str:
    shown = ",".join(format_arg(env, k, v, args) for k, v in zip(kinds, args))
    return f"{env.pid} {name}({shown})"


def format_unknown(env: Any, nr: int, args: tuple[int, ...]) -> str:
    return f"{env.pid} Unknown syscall {nr}({','.join(hex(a) for a in args)})"


def format_result(ret_kind: str, r: int) -> str:
    if r < 0 and r >= -4095:
        return f" = -1 errno={-r} ({strerror(-r)})"
    if ret_kind == "hex":
        return f" = 0x{r & 0xFFFFFFFFFFFFFFFF:x}"
    return f" = {r}"
