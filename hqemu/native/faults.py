"""The host side of native guest faults: sigaction, alternate signal stacks, the thread key.

Native code touches guest memory directly, so a guest access to an unmapped or protected
page is a host SIGSEGV (or SIGBUS); and it runs under the guest's SSE environment (x86-64
guests on x86-64 hosts, hqemu/native/dispatch.py), so a float instruction raising an
exception the guest unmasked is a host SIGFPE that is the guest's own. The handler itself is
LLVM IR compiled with the native dispatcher (hqemu/native/dispatch.py); this module installs
it through libc with ctypes and keeps what it needs: the pthread key under which each thread
publishes the exit record of the dispatcher it runs (the handler finds the faulting thread's
record and jump buffer there), the previous SIGSEGV/SIGBUS/SIGFPE actions (a signal that is
not the guest's is passed on to them, so host crashes are never swallowed), and one
alternate signal stack per thread.

    >>> key = tls_key()                                  # once per process
    >>> install(handler_addr, chain_addr)                # chain_addr: the handler's table
    >>> ensure_altstack()                                # in every thread that runs native code

Rules: install() must come after anything else that takes these signals (Python's
faulthandler, enabled by pytest at start-up, is fine: it becomes the handler we chain to);
whoever installs a SIGSEGV, SIGBUS or SIGFPE handler later must chain to ours, or guest
faults in native code kill the process. installed() tells whether ours is still in place;
install() again re-takes the signals.
"""

from __future__ import annotations

import ctypes
import signal
import threading

SIGSEGV, SIGBUS, SIGFPE = int(signal.SIGSEGV), int(signal.SIGBUS), int(signal.SIGFPE)
HANDLED = (SIGSEGV, SIGBUS, SIGFPE)  # order of the chain table's entries
SA_SIGINFO, SA_ONSTACK, SA_NODEFER = 0x4, 0x08000000, 0x40000000
SS_DISABLE = 2
SIG_DFL, SIG_IGN = 0, 1
ALTSTACK_SIZE = 64 << 10  # the handler needs a few hundred bytes; a chained one may need more

# how the handler passes on a fault that is not a guest access (the chain table's `how`)
CHAIN_DEFAULT = 0  # restore the default action and raise again: the process dies by the signal
CHAIN_HANDLER = 1  # call the previous sa_handler(sig)
CHAIN_SIGACTION = 2  # call the previous sa_sigaction(sig, info, ucontext)
CHAIN_WORDS = 2 * len(HANDLED)  # {how, function} per handled signal, as i64


class Sigaction(ctypes.Structure):
    """glibc's struct sigaction (the same layout on x86-64 and AArch64)."""

    _fields_ = [("handler", ctypes.c_void_p),  # sa_handler or sa_sigaction
                ("mask", ctypes.c_uint64 * 16),  # sigset_t: 1024 bits
                ("flags", ctypes.c_int),
                ("restorer", ctypes.c_void_p)]


class StackT(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_sigaction = _libc.sigaction
_sigaction.argtypes = [ctypes.c_int, ctypes.POINTER(Sigaction), ctypes.POINTER(Sigaction)]
_sigaction.restype = ctypes.c_int
_sigaltstack = _libc.sigaltstack
_sigaltstack.argtypes = [ctypes.POINTER(StackT), ctypes.POINTER(StackT)]
_sigaltstack.restype = ctypes.c_int
_key_create = _libc.pthread_key_create
_key_create.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
_key_create.restype = ctypes.c_int

_lock = threading.Lock()
_key: int | None = None
_ours: int | None = None  # address of the installed handler
_stacks: dict[int, ctypes.Array] = {}  # thread ident -> its alternate stack (kept alive)
_local = threading.local()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed (errno {err})")


def tls_key() -> int:
    """The pthread key the dispatcher stores its exit record under (created once)."""
    global _key
    with _lock:
        if _key is None:
            k = ctypes.c_uint(0)
            rc = _key_create(ctypes.byref(k), None)
            if rc:
                raise OSError(rc, "pthread_key_create failed")
            _key = k.value
        return _key


def current(sig: int) -> Sigaction:
    """The action installed now for sig."""
    old = Sigaction()
    _check(_sigaction(sig, None, ctypes.byref(old)), "sigaction")
    return old


def _chain_entry(old: Sigaction) -> tuple[int, int]:
    h = old.handler or SIG_DFL
    if h in (SIG_DFL, SIG_IGN):
        # an ignored SIGSEGV would re-fault forever: the kernel kills such a process anyway
        return CHAIN_DEFAULT, 0
    return (CHAIN_SIGACTION if old.flags & SA_SIGINFO else CHAIN_HANDLER), h


def install(handler: int, chain: int) -> None:
    """Make handler(sig, siginfo, ucontext) the handler of the process for the HANDLED signals.

    The actions it replaces are written to the chain table at address `chain` (CHAIN_WORDS
    i64: {how, function} per signal of HANDLED) for the handler to pass other faults on to.
    Calling it again while ours is still installed does nothing."""
    global _ours
    table = (ctypes.c_uint64 * CHAIN_WORDS).from_address(chain)
    with _lock:
        for i, sig in enumerate(HANDLED):
            old = current(sig)
            if old.handler == handler:
                continue
            how, fn = _chain_entry(old)
            # the table is complete before the handler can run and read it
            table[2 * i + 1] = fn
            table[2 * i] = how
            new = Sigaction()
            new.handler = handler
            new.flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER  # NODEFER: siglongjmp needs no mask restore
            _check(_sigaction(sig, ctypes.byref(new), None), "sigaction")
        _ours = handler


def installed() -> bool:
    """True if our handler still takes every HANDLED signal."""
    return _ours is not None and all(current(s).handler == _ours for s in HANDLED)


def ensure_altstack() -> None:
    """Give the calling thread an alternate signal stack unless it has a big enough one."""
    if getattr(_local, "ok", False):
        return
    old = StackT()
    _check(_sigaltstack(None, ctypes.byref(old)), "sigaltstack")
    if old.flags & SS_DISABLE or old.size < ALTSTACK_SIZE // 4:
        buf = (ctypes.c_char * ALTSTACK_SIZE)()
        st = StackT(ctypes.addressof(buf), 0, ALTSTACK_SIZE)
        _check(_sigaltstack(ctypes.byref(st), None), "sigaltstack")
        # a dead thread's ident may be reused: its stack is then no one's and may go
        _stacks[threading.get_ident()] = buf
    _local.ok = True


__all__ = ["ALTSTACK_SIZE", "CHAIN_DEFAULT", "CHAIN_HANDLER", "CHAIN_SIGACTION", "CHAIN_WORDS", "HANDLED",
           "SIGBUS", "SIGFPE", "SIGSEGV", "Sigaction", "current", "ensure_altstack", "install", "installed",
           "tls_key"]
