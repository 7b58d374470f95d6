"""Syscalls on paths: open, stat, access, directories, links, renames, modes, owners, times.

Paths are guest C strings used as host bytes paths. With -L PREFIX (params.sysroot) an
absolute path that exists under the prefix is taken from there; /proc/self/exe names the
guest program, not hqemu's Python. The *at variants pass the guest's dirfd through, since
guest fds are host fds. Old calls (open, stat, mkdir, ...) exist only on x86-64 and are the
*at calls with AT_FDCWD.

    >>> openat(env, AT_FDCWD & MASK64, path_ptr, O_RDONLY, 0)
"""

from __future__ import annotations

import errno
import os
from typing import Any

from . import host, uaccess
from .abi import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_NO_AUTOMOUNT,
    AT_REMOVEDIR,
    AT_STATX_SYNC_TYPE,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    MASK64,
    O_CLOEXEC,
    open_flags_to_host,
    s32,
)
from .structs import pack_stat, pack_statx

_CWD = AT_FDCWD & MASK64


def _dirfd(x: int) -> int | None:
    d = s32(x)
    return None if d == AT_FDCWD else d


def _exe_alias(env: Any, p: bytes) -> bool:
    return p in (b"/proc/self/exe", b"/proc/thread-self/exe", f"/proc/{env.pid}/exe".encode())


def host_path(env: Any, p: bytes) -> bytes:
    """The host path for a guest path: sysroot-prefixed when that exists, else unchanged."""
    root = env.params.sysroot
    if root and p.startswith(b"/"):
        cand = os.fsencode(root) + p
        if os.path.lexists(cand):
            return cand
    return p


def _path(env: Any, addr: int) -> bytes:
    return host_path(env, uaccess.cstr(env, addr))


# --- open -------------------------------------------------------------------------------
def openat(env: Any, dirfd: int, path: int, flags: int, mode: int, *_) -> int:
    raw = uaccess.cstr(env, path)
    p = os.fsencode(os.path.realpath(env.exe_path)) if _exe_alias(env, raw) and env.exe_path else \
        host_path(env, raw)
    fd = os.open(p, open_flags_to_host(env.fe.isa, flags), mode & 0o7777, dir_fd=_dirfd(dirfd))
    if not flags & O_CLOEXEC:
        os.set_inheritable(fd, True)  # os.open adds O_CLOEXEC on its own
    return fd


def open(env: Any, path: int, flags: int, mode: int, *_) -> int:
    return openat(env, _CWD, path, flags, mode)


def creat(env: Any, path: int, mode: int, *_) -> int:
    return openat(env, _CWD, path, 0o1101, mode)  # O_CREAT | O_WRONLY | O_TRUNC, guest bits


# --- stat -------------------------------------------------------------------------------
_STAT_FLAGS = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT


def _stat_at(env: Any, dirfd: int, path: int, flags: int, allowed: int = _STAT_FLAGS) -> os.stat_result:
    if flags & ~allowed:
        raise OSError(errno.EINVAL, "flags")
    p = _path(env, path)
    if not p and flags & AT_EMPTY_PATH:
        d = _dirfd(dirfd)
        return os.stat(".") if d is None else os.fstat(d)
    return os.stat(p, dir_fd=_dirfd(dirfd), follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)


def _put_stat(env: Any, buf: int, st: os.stat_result) -> int:
    uaccess.put(env, buf, pack_stat(env.fe.isa, st))
    return 0


def fstat(env: Any, fd: int, buf: int, *_) -> int:
    return _put_stat(env, buf, os.fstat(s32(fd)))


def newfstatat(env: Any, dirfd: int, path: int, buf: int, flags: int, *_) -> int:
    return _put_stat(env, buf, _stat_at(env, dirfd, path, s32(flags)))


def stat(env: Any, path: int, buf: int, *_) -> int:
    return newfstatat(env, _CWD, path, buf, 0)


def lstat(env: Any, path: int, buf: int, *_) -> int:
    return newfstatat(env, _CWD, path, buf, AT_SYMLINK_NOFOLLOW)


def statx(env: Any, dirfd: int, path: int, flags: int, mask: int, buf: int, *_) -> int:
    st = _stat_at(env, dirfd, path, s32(flags), _STAT_FLAGS | AT_STATX_SYNC_TYPE)
    uaccess.put(env, buf, pack_statx(st))
    return 0


def statfs(env: Any, path: int, buf: int, *_) -> int:
    uaccess.put(env, buf, host.statfs(_path(env, path)))
    return 0


def fstatfs(env: Any, fd: int, buf: int, *_) -> int:
    uaccess.put(env, buf, host.fstatfs(s32(fd)))
    return 0


# --- access -----------------------------------------------------------------------------
def faccessat2(env: Any, dirfd: int, path: int, mode: int, flags: int, *_) -> int:
    d = s32(dirfd)
    host.faccessat(d, _path(env, path), s32(mode), s32(flags) & (AT_EACCESS | AT_SYMLINK_NOFOLLOW |
                                                                  AT_EMPTY_PATH))
    return 0


def faccessat(env: Any, dirfd: int, path: int, mode: int, *_) -> int:
    return faccessat2(env, dirfd, path, mode, 0)


def access(env: Any, path: int, mode: int, *_) -> int:
    return faccessat2(env, _CWD, path, mode, 0)


# --- directories ------------------------------------------------------------------------
def getcwd(env: Any, buf: int, size: int, *_) -> int:
    cwd = os.getcwdb() + b"\0"
    if len(cwd) > size:
        return -errno.ERANGE
    uaccess.put(env, buf, cwd)
    return len(cwd)  # the raw syscall counts the NUL


def chdir(env: Any, path: int, *_) -> int:
    os.chdir(_path(env, path))
    return 0


def fchdir(env: Any, fd: int, *_) -> int:
    os.fchdir(s32(fd))
    return 0


def mkdirat(env: Any, dirfd: int, path: int, mode: int, *_) -> int:
    os.mkdir(_path(env, path), mode & 0o7777, dir_fd=_dirfd(dirfd))
    return 0


def mkdir(env: Any, path: int, mode: int, *_) -> int:
    return mkdirat(env, _CWD, path, mode)


def unlinkat(env: Any, dirfd: int, path: int, flags: int, *_) -> int:
    flags = s32(flags)
    if flags & ~AT_REMOVEDIR:
        return -errno.EINVAL
    p, d = _path(env, path), _dirfd(dirfd)
    if flags & AT_REMOVEDIR:
        os.rmdir(p, dir_fd=d)
    else:
        os.unlink(p, dir_fd=d)
    return 0


def rmdir(env: Any, path: int, *_) -> int:
    return unlinkat(env, _CWD, path, AT_REMOVEDIR)


def unlink(env: Any, path: int, *_) -> int:
    return unlinkat(env, _CWD, path, 0)


# --- rename and links -------------------------------------------------------------------
def renameat2(env: Any, olddirfd: int, old: int, newdirfd: int, new: int, flags: int, *_) -> int:
    src, dst = _path(env, old), _path(env, new)
    flags &= 0xFFFFFFFF
    if flags:  # RENAME_NOREPLACE / EXCHANGE / WHITEOUT: os.rename has no flags
        host.renameat2(s32(olddirfd), src, s32(newdirfd), dst, flags)
    else:
        os.rename(src, dst, src_dir_fd=_dirfd(olddirfd), dst_dir_fd=_dirfd(newdirfd))
    return 0


def renameat(env: Any, olddirfd: int, old: int, newdirfd: int, new: int, *_) -> int:
    return renameat2(env, olddirfd, old, newdirfd, new, 0)


def rename(env: Any, old: int, new: int, *_) -> int:
    return renameat2(env, _CWD, old, _CWD, new, 0)


def linkat(env: Any, olddirfd: int, old: int, newdirfd: int, new: int, flags: int, *_) -> int:
    flags = s32(flags)
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    if flags & AT_EMPTY_PATH:
        return -errno.ENOENT  # linking an fd needs CAP_DAC_READ_SEARCH; not offered
    os.link(_path(env, old), _path(env, new), src_dir_fd=_dirfd(olddirfd), dst_dir_fd=_dirfd(newdirfd),
            follow_symlinks=bool(flags & AT_SYMLINK_FOLLOW))
    return 0


def link(env: Any, old: int, new: int, *_) -> int:
    return linkat(env, _CWD, old, _CWD, new, 0)


def symlinkat(env: Any, target: int, newdirfd: int, linkpath: int, *_) -> int:
    # the target is the link's contents, not a path looked up now: no sysroot prefix
    os.symlink(uaccess.cstr(env, target), _path(env, linkpath), dir_fd=_dirfd(newdirfd))
    return 0


def symlink(env: Any, target: int, linkpath: int, *_) -> int:
    return symlinkat(env, target, _CWD, linkpath)


def readlinkat(env: Any, dirfd: int, path: int, buf: int, size: int, *_) -> int:
    size = s32(size)
    if size <= 0:
        return -errno.EINVAL
    raw = uaccess.cstr(env, path)
    if _exe_alias(env, raw) and env.exe_path:
        target = os.fsencode(os.path.realpath(env.exe_path))
    else:
        target = os.readlink(host_path(env, raw), dir_fd=_dirfd(dirfd))
    target = target[:size]  # no NUL, silently truncated, as readlink(2)
    uaccess.put(env, buf, target)
    return len(target)


def readlink(env: Any, path: int, buf: int, size: int, *_) -> int:
    return readlinkat(env, _CWD, path, buf, size)


# --- modes, owners, sizes, times --------------------------------------------------------
def fchmod(env: Any, fd: int, mode: int, *_) -> int:
    os.fchmod(s32(fd), mode & 0o7777)
    return 0


def fchmodat(env: Any, dirfd: int, path: int, mode: int, *_) -> int:
    os.chmod(_path(env, path), mode & 0o7777, dir_fd=_dirfd(dirfd))
    return 0


def chmod(env: Any, path: int, mode: int, *_) -> int:
    return fchmodat(env, _CWD, path, mode)


def fchown(env: Any, fd: int, uid: int, gid: int, *_) -> int:
    os.fchown(s32(fd), s32(uid), s32(gid))  # -1 (0xffffffff) leaves the id unchanged
    return 0


def fchownat(env: Any, dirfd: int, path: int, uid: int, gid: int, flags: int, *_) -> int:
    flags = s32(flags)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    p = _path(env, path)
    if not p and flags & AT_EMPTY_PATH and _dirfd(dirfd) is not None:
        return fchown(env, dirfd, uid, gid)
    os.chown(p, s32(uid), s32(gid), dir_fd=_dirfd(dirfd), follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)
    return 0


def chown(env: Any, path: int, uid: int, gid: int, *_) -> int:
    return fchownat(env, _CWD, path, uid, gid, 0)


def lchown(env: Any, path: int, uid: int, gid: int, *_) -> int:
    return fchownat(env, _CWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


def truncate(env: Any, path: int, length: int, *_) -> int:
    os.truncate(_path(env, path), length - (1 << 64) if length >> 63 else length)
    return 0


def utimensat(env: Any, dirfd: int, path: int, times: int, flags: int, *_) -> int:
    flags = s32(flags)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    ts = uaccess.get(env, times, 32) if times else None
    p = _path(env, path) if path else None
    host.utimensat(s32(dirfd), p, ts, flags)
    return 0


def umask(env: Any, mask: int, *_) -> int:
    return os.umask(mask & 0o777)

