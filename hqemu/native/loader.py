"""Load objects compiled by the workers into the process's one MCJIT engine, and call them.

    >>> nc = native()                          # one NativeCode (one MCJIT engine) per process
    >>> nc.env = env                           # what helper callbacks pass to IMPLS[name]
    >>> addr = nc.load(co.obj, co.entry)       # co: workers.compile.CompiledObject
    >>> info = ExitInfo()                      # the unit's exit info record (workers/lower.py)
    >>> pc = nc.call(addr, ctypes.addressof(env.cpu), env.mem.base, ctypes.addressof(info))
    >>> kind, pc = nc.run(addr, env)           # the same, exit kind decoded

A compiled unit calls a helper through the external symbol hqemu_helper_<name>; load() binds
each one the object names to a ctypes callback of IMPLS[name] before the object is linked
(the ABI is described in workers/lower.py). A Python exception raised by a helper cannot cross
the native frames: the callback parks it and sets *exitinfo to ABORT, the unit returns at
once, and call() raises it. MCJIT cannot unload code (FACTS.md): objects live as long as the
process.

Floating point: a Dispatcher whose guest has an SSE environment (hqemu/native/dispatch.py)
runs native code under the guest's MXCSR, but Python must never run under it. Its exit
record's address is in fenv_records, and a helper callback called with such a record calls
hqemu_fenv_to_python (the flags raised so far go into the guest's MXCSR word, the host's
MXCSR comes back) before the helper and hqemu_fenv_to_guest (the guest's MXCSR, re-read: the
helper may have changed it) after it, also when it raises. A record the set does not name
(one of a unit called alone, maybe only EXITINFO_SIZE bytes long) is never read past the
units' part. What runs before and after, the ctypes trampoline converting the arguments and
the result, still runs under the guest's MXCSR: no float arithmetic there, but a helper with
f32 arguments or an f32 result would convert them under it (none has any). NATIVE helpers
are called directly and run under the guest's MXCSR.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from functools import cache
from typing import Any

import llvmlite.binding as llvm

from hqemu.errors import HqemuError
from hqemu.ir import EXIT_KINDS, F32, F64, HELPERS, I64, I128, IMPLS, NATIVE
from workers.lower import ABORT, EXITINFO_SIZE, HELPER_PREFIX

UNIT_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
ExitInfo = ctypes.c_uint64 * (EXITINFO_SIZE // 8)  # the record a unit writes (workers/lower.py)
# run()'s record: an ExitInfo and room for the dispatcher's fields (hqemu/native/dispatch.py's
# ExitRecord), all 0 (no guest SSE environment), for native helpers that read them
RUN_RECORD_WORDS = 128
_HELPER_SYM = re.compile(rb"(?<=\x00)" + HELPER_PREFIX.encode() + rb"([A-Za-z_][\w.]*)(?=\x00)")
_M64 = (1 << 64) - 1


def _ctype(t) -> Any:
    return ctypes.c_float if t == F32 else ctypes.c_double if t == F64 else ctypes.c_uint64


class NativeCode:
    """The process's MCJIT engine, the helper symbols bound in it, and the units loaded."""

    def __init__(self) -> None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        # i128 division and conversion compile to libgcc calls (__udivti3, __floattidf, ...)
        try:
            llvm.load_library_permanently("libgcc_s.so.1")
        except RuntimeError:
            llvm.load_library_permanently(ctypes.util.find_library("gcc_s") or "libgcc_s.so.1")
        triple = llvm.get_process_triple()
        tm = llvm.Target.from_triple(triple).create_target_machine(jit=True)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        self.env: Any = None  # passed to helper implementations
        self.pending: BaseException | None = None  # raised by a helper, re-raised by call()
        self.entries: dict[str, int] = {}  # loaded entry symbol -> address
        self.code_bytes = 0  # object bytes loaded
        self._callbacks: dict[str, Any] = {}  # helper name -> its ctypes callback (kept alive)
        self._fns: dict[int, Any] = {}  # address -> UNIT_FN
        self._info = (ctypes.c_uint64 * RUN_RECORD_WORDS)()  # run()'s exit info record
        # exit records (addresses) whose units run under a guest SSE environment, and the
        # native (to_python, to_guest) switches helper callbacks call around a helper with
        # one of them: both kept by hqemu/native/dispatch.py
        self.fenv_records: set[int] = set()
        self.fenv_switch: tuple[Any, Any] | None = None

    # --- loading -------------------------------------------------------------------------
    def load(self, obj: bytes, entry: str) -> int:
        """Link an object into the engine; the address of its function `entry`."""
        if entry in self.entries:
            raise HqemuError(f"native: {entry} is already loaded (entry names must be unique)")
        for m in _HELPER_SYM.finditer(obj):
            self.bind_helper(m.group(1).decode())
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        addr = self.engine.get_function_address(entry)
        if not addr:
            raise HqemuError(f"native: the object defines no {entry}")
        self.entries[entry] = addr
        self.code_bytes += len(obj)
        return addr

    def bind_helper(self, name: str) -> None:
        """Make hqemu_helper_<name> call IMPLS[name](self.env, *args) (once per process)."""
        if name in self._callbacks:
            return
        sig = HELPERS.get(name)
        if sig is None:
            raise HqemuError(f"native: compiled code calls helper {name}, which is not registered")
        if name in NATIVE:  # native code with the units' helper ABI: called directly, no Python
            self._callbacks[name] = None
            llvm.add_symbol(HELPER_PREFIX + name, NATIVE[name]())
            return
        impl = IMPLS[name]
        direct = len(sig.rets) == 1 and sig.rets[0] != I128
        params: list[Any] = [ctypes.c_void_p] * (3 if direct or not sig.rets else 4)
        for t in sig.args:
            params += [ctypes.c_uint64] * 2 if t == I128 else [_ctype(t)]
        restype = _ctype(sig.rets[0]) if direct else None
        args_t, rets_t = sig.args, sig.rets
        nfixed = len(params) - sum(2 if t == I128 else 1 for t in args_t)
        failed = (0.0 if rets_t[0].is_float else 0) if direct else None  # returned after an exception

        def decode(raw: tuple) -> list:
            out, i = [], 0
            for t in args_t:
                if t == I128:
                    out.append(raw[i] | raw[i + 1] << 64)
                    i += 2
                else:
                    out.append(raw[i] if t.is_float else raw[i] & t.mask)
                    i += 1
            return out

        def run_impl(exitinfo, rest):
            try:
                r = impl(self.env, *decode(rest[nfixed - 3:]))
                if direct:
                    r = r[0] if isinstance(r, tuple) else r
                    return r if rets_t[0].is_float else r & _M64
                if rets_t:
                    self._write_results(rest[0], rets_t, r if isinstance(r, tuple) else (r,))
            except BaseException as e:  # noqa: B036 - GuestExit and friends must reach call() too
                self.pending = e
                ctypes.c_uint64.from_address(exitinfo).value = ABORT
            return failed

        records = self.fenv_records

        def callback(state, membase, exitinfo, *rest):
            if exitinfo not in records:
                return run_impl(exitinfo, rest)
            to_python, to_guest = self.fenv_switch
            to_python(exitinfo)
            try:
                return run_impl(exitinfo, rest)
            finally:
                to_guest(exitinfo)

        cb = ctypes.CFUNCTYPE(restype, *params)(callback)
        self._callbacks[name] = cb
        llvm.add_symbol(HELPER_PREFIX + name, ctypes.cast(cb, ctypes.c_void_p).value)

    @staticmethod
    def _write_results(out: int, tys: tuple, vals: tuple) -> None:
        slot = 0
        for t, v in zip(tys, vals, strict=True):
            if t == I128:
                (ctypes.c_uint64 * 2).from_address(out + 8 * slot)[:] = [v & _M64, v >> 64]
                slot += 2
                continue
            if t == F64:
                ctypes.c_double.from_address(out + 8 * slot).value = v
            elif t == F32:
                ctypes.c_float.from_address(out + 8 * slot).value = v
            else:
                ctypes.c_uint64.from_address(out + 8 * slot).value = v & (_M64 if t == I64 else t.mask)
            slot += 1

    # --- calling -------------------------------------------------------------------------
    def function(self, addr: int):
        """The ctypes callable of a loaded unit: fn(state_addr, membase, exitinfo_addr) -> pc."""
        f = self._fns.get(addr)
        if f is None:
            f = self._fns[addr] = UNIT_FN(addr)
        return f

    def call(self, addr: int, state_addr: int, membase: int, exitinfo_addr: int) -> int:
        """Run a loaded unit; the next guest pc (the exit kind is in *exitinfo, a record of at
        least EXITINFO_SIZE bytes: an ExitInfo)."""
        pc = self.function(addr)(state_addr, membase, exitinfo_addr)
        if self.pending is not None:
            e, self.pending = self.pending, None
            raise e
        return pc

    def run(self, addr: int, env: Any) -> tuple[str, int]:
        """Run a loaded unit on env.cpu and env.mem; the exit taken as (kind, pc)."""
        pc = self.call(addr, ctypes.addressof(env.cpu), env.mem.base, ctypes.addressof(self._info))
        return EXIT_KINDS[self._info[0]], pc


@cache
def native() -> NativeCode:
    """The process's one NativeCode (MCJIT engines cannot share symbols, so one is enough)."""
    return NativeCode()
