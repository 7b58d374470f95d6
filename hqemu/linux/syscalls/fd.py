"""Syscalls on file descriptors: I/O, duplication, pipes, fcntl, ioctl, poll.

Guest fds are host fds: the guest reads and writes the real 0, 1, 2 and whatever it opened.
Python's own fd calls (os.dup, os.pipe, os.open) make close-on-exec descriptors; these
handlers use the calls that do not, so F_GETFD tells the guest what it asked for.

    >>> read(env, 0, buf, 4096)       # handler(env, *six u64 args) -> int (negative: -errno)
"""

from __future__ import annotations

import errno
import fcntl as _fcntl
import os
import select
import time
from typing import Any

from . import host, uaccess
from .abi import O_CLOEXEC, open_flags_to_guest, open_flags_to_host, s32, s64
from .structs import FLOCK_SIZE, IOVEC, POLLFD, pack_timespec, unpack_timespec

IOV_MAX = 1024


def read(env: Any, fd: int, buf: int, count: int, *_) -> int:
    return uaccess.read_into(env, s32(fd), buf, count)


def write(env: Any, fd: int, buf: int, count: int, *_) -> int:
    return uaccess.write_from(env, s32(fd), buf, count)


def pread64(env: Any, fd: int, buf: int, count: int, off: int, *_) -> int:
    return uaccess.read_into(env, s32(fd), buf, count, s64(off))


def pwrite64(env: Any, fd: int, buf: int, count: int, off: int, *_) -> int:
    return uaccess.write_from(env, s32(fd), buf, count, s64(off))


def _iovecs(env: Any, iov: int, cnt: int) -> list[tuple[int, int]]:
    cnt = s32(cnt)
    if cnt < 0 or cnt > IOV_MAX:
        raise OSError(errno.EINVAL, "iovcnt")
    raw = uaccess.get(env, iov, cnt * IOVEC.size)
    segs = [IOVEC.unpack_from(raw, i * IOVEC.size) for i in range(cnt)]
    if sum(ln for _, ln in segs) > uaccess.MAX_RW or any(ln >> 63 for _, ln in segs):
        raise OSError(errno.EINVAL, "iov_len")
    return segs


def readv(env: Any, fd: int, iov: int, cnt: int, *_) -> int:
    segs = _iovecs(env, iov, cnt)
    views = [uaccess.view(env, b, ln, True) for b, ln in segs if ln]
    if all(v is not None for v in views):
        return os.readv(s32(fd), views) if views else len(os.read(s32(fd), 0))
    # one host read for all segments: a second read on a pipe or tty could block
    total = min(sum(ln for _, ln in segs), uaccess.SLOW_CAP)
    data = os.read(s32(fd), total)
    uaccess.scatter(env, segs, data)
    return len(data)


def writev(env: Any, fd: int, iov: int, cnt: int, *_) -> int:
    bufs = uaccess.gather(env, _iovecs(env, iov, cnt))
    return os.writev(s32(fd), bufs) if bufs else os.write(s32(fd), b"")


def close(env: Any, fd: int, *_) -> int:
    os.close(s32(fd))
    return 0


def lseek(env: Any, fd: int, off: int, whence: int, *_) -> int:
    return os.lseek(s32(fd), s64(off), s32(whence))


def ftruncate(env: Any, fd: int, length: int, *_) -> int:
    os.ftruncate(s32(fd), s64(length))
    return 0


def fsync(env: Any, fd: int, *_) -> int:
    os.fsync(s32(fd))
    return 0


def fdatasync(env: Any, fd: int, *_) -> int:
    os.fdatasync(s32(fd))
    return 0


def fadvise64(env: Any, fd: int, off: int, length: int, advice: int, *_) -> int:
    os.posix_fadvise(s32(fd), s64(off), s64(length), s32(advice))
    return 0


def fallocate(env: Any, fd: int, mode: int, off: int, length: int, *_) -> int:
    host.fallocate(s32(fd), s32(mode), s64(off), s64(length))
    return 0


def sendfile(env: Any, out_fd: int, in_fd: int, offp: int, count: int, *_) -> int:
    # with an offset pointer the kernel reads from there and leaves in_fd's position alone
    count = min(count, uaccess.MAX_RW)
    if not offp:
        return os.sendfile(s32(out_fd), s32(in_fd), None, count)
    off = s64(uaccess.get_u64(env, offp))
    if off < 0:
        return -errno.EINVAL
    n = os.sendfile(s32(out_fd), s32(in_fd), off, count)
    uaccess.put_u64(env, offp, off + n)
    return n


def getdents64(env: Any, fd: int, dirp: int, count: int, *_) -> int:
    n = min(count & 0xFFFFFFFF, 1 << 16)  # fewer entries per call is fine: the guest loops to 0
    if n and not uaccess.accessible(env, dirp, n, True):
        raise OSError(errno.EFAULT, "dirp")
    data = host.getdents64(s32(fd), n)
    uaccess.put(env, dirp, data)
    return len(data)


# --- duplication and pipes ------------------------------------------------------------
def dup(env: Any, fd: int, *_) -> int:
    return _fcntl.fcntl(s32(fd), _fcntl.F_DUPFD, 0)


def dup2(env: Any, old: int, new: int, *_) -> int:
    old, new = s32(old), s32(new)
    if old == new:
        _fcntl.fcntl(old, _fcntl.F_GETFD)  # EBADF if old is not open
        return new
    return os.dup2(old, new, inheritable=True)


def dup3(env: Any, old: int, new: int, flags: int, *_) -> int:
    old, new, flags = s32(old), s32(new), flags & 0xFFFFFFFF
    if old == new or flags & ~O_CLOEXEC:
        return -errno.EINVAL
    return os.dup2(old, new, inheritable=not flags & O_CLOEXEC)


def pipe2(env: Any, fds: int, flags: int, *_) -> int:
    r, w = os.pipe2(open_flags_to_host(env.fe.isa, flags))
    try:
        uaccess.put(env, fds, r.to_bytes(4, "little") + w.to_bytes(4, "little"))
    except Exception:
        os.close(r)
        os.close(w)
        raise
    return 0


def pipe(env: Any, fds: int, *_) -> int:
    return pipe2(env, fds, 0)


# --- fcntl ------------------------------------------------------------------------------
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_DUPFD_CLOEXEC = 1030
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032


def fcntl(env: Any, fd: int, cmd: int, arg: int, *_) -> int:
    fd, cmd = s32(fd), s32(cmd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        return _fcntl.fcntl(fd, cmd, s32(arg))
    if cmd in (F_GETFD, F_GETPIPE_SZ):
        return _fcntl.fcntl(fd, cmd)
    if cmd in (F_SETFD, F_SETPIPE_SZ):
        return _fcntl.fcntl(fd, cmd, s32(arg))
    if cmd == F_GETFL:
        return open_flags_to_guest(env.fe.isa, _fcntl.fcntl(fd, F_GETFL))
    if cmd == F_SETFL:
        return _fcntl.fcntl(fd, F_SETFL, open_flags_to_host(env.fe.isa, arg))
    if cmd in (F_GETLK, F_SETLK, F_SETLKW):
        out = _fcntl.fcntl(fd, cmd, uaccess.get(env, arg, FLOCK_SIZE))
        if cmd == F_GETLK:
            uaccess.put(env, arg, out)
        return 0
    return -errno.EINVAL


# --- ioctl ------------------------------------------------------------------------------
TCGETS, TIOCGWINSZ = 0x5401, 0x5413
_IOCTL_OUT = {TCGETS: 36, TIOCGWINSZ: 8}  # struct termios (kernel's), struct winsize


def ioctl(env: Any, fd: int, req: int, arg: int, *_) -> int:
    size = _IOCTL_OUT.get(req & 0xFFFFFFFF)
    if size is None:
        return -errno.ENOTTY
    out = _fcntl.ioctl(s32(fd), req & 0xFFFFFFFF, bytes(size))
    uaccess.put(env, arg, out)
    return 0


# --- poll -------------------------------------------------------------------------------
_POLL_ALWAYS = select.POLLERR | select.POLLHUP | select.POLLNVAL


def _poll(env: Any, fds: int, nfds: int, timeout_ms: float | None) -> int:
    nfds &= 0xFFFFFFFF
    if nfds > 1 << 20:
        return -errno.EINVAL
    raw = uaccess.get(env, fds, nfds * POLLFD.size)
    entries = [POLLFD.unpack_from(raw, i * POLLFD.size) for i in range(nfds)]
    p = select.poll()
    wanted: dict[int, int] = {}
    for fd, events, _ in entries:
        if fd >= 0:
            wanted[fd] = wanted.get(fd, 0) | (events & 0xFFFF)
    for fd, ev in wanted.items():
        p.register(fd, ev)
    got = dict(p.poll(timeout_ms)) if wanted or timeout_ms != 0 else {}
    out = bytearray()
    ready = 0
    for fd, events, _ in entries:
        rev = got.get(fd, 0) & ((events & 0xFFFF) | _POLL_ALWAYS) if fd >= 0 else 0
        ready += rev != 0
        out += POLLFD.pack(fd, events, rev - 0x10000 if rev & 0x8000 else rev)
    uaccess.put(env, fds, bytes(out))
    return ready


def poll(env: Any, fds: int, nfds: int, timeout: int, *_) -> int:
    t = s32(timeout)
    return _poll(env, fds, nfds, None if t < 0 else t)


def ppoll(env: Any, fds: int, nfds: int, tmo: int, sigmask: int, *_) -> int:
    # the temporary signal mask is not applied: hqemu delivers no signals while blocked in poll
    if not tmo:
        return _poll(env, fds, nfds, None)
    sec, nsec = unpack_timespec(uaccess.get(env, tmo, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -errno.EINVAL
    ns = sec * 1_000_000_000 + nsec
    t0 = time.monotonic_ns()
    r = _poll(env, fds, nfds, -(-ns // 1_000_000))
    uaccess.put(env, tmo, pack_timespec(max(0, ns - (time.monotonic_ns() - t0))))  # Linux's ppoll does
    return r
