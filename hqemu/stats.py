"""Counters, declared once. Every part increments its own; the exit summary (-d stats) and
later the status endpoint only read them.

    >>> env.stats.blocks_translated += 1
    >>> env.stats.syscalls[name] += 1

hqemu.runtime.report turns them (with the tier's per-trace records) into the JSON of
--stats-file and the summary of -d stats.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    blocks_translated: int = 0  # guest blocks lifted and compiled by the quick tier
    guest_insns_translated: int = 0  # guest instructions in those blocks
    block_executions: int = 0  # block runs counted by the main loop (when counting is on)
    translate_seconds: float = 0.0  # time spent lifting, optimizing and compiling blocks
    syscalls: Counter = field(default_factory=Counter)  # syscall name -> calls
    unknown_syscalls: Counter = field(default_factory=Counter)  # syscall number -> calls (-ENOSYS)
    sigill: Counter = field(default_factory=Counter)  # mnemonic -> unsupported instruction hits
    code_invalidations: int = 0  # blocks dropped because guest code was written
    # --- the persistent code cache (hqemu/runtime/codecache.py) -------------------------
    code_cache_hits: int = 0  # blocks rebuilt from the cache (also in blocks_translated)
    code_cache_misses: int = 0  # blocks looked up and not in the cache
    code_cache_stale: int = 0  # blocks in the cache whose guest bytes differ from the live code
    code_cache_uncacheable: int = 0  # blocks translated whose bindings cannot be recreated
    code_cache_errors: int = 0  # files or entries ignored (corrupt, foreign) and failed writes
    code_cache_bytes_read: int = 0  # size of the cache file loaded at start-up
    code_cache_bytes_written: int = 0  # size of the cache file written at exit
    code_cache_seconds: float = 0.0  # loading and writing the file (lookups are in translate_seconds)
    obj_cache_hits: int = 0  # LLVM objects (traces, blocks) taken from the cache, not compiled
    obj_cache_misses: int = 0  # LLVM objects looked up and compiled
    # --- native code (the trace tier) ---------------------------------------------------
    native_guest_insns: int = 0  # guest instructions entered in native code
    native_units: int = 0  # native units (traces, blocks) entered by the dispatcher
    native_returns: Counter = field(default_factory=Counter)  # reason -> returns from native code to Python
    traces_installed: int = 0  # traces loaded and patched into the dispatch table
    merges_formed: int = 0  # regions of merged traces built (each compiled as a new version)
    blocks_native: int = 0  # single blocks compiled by LLVM (block mode)
    compile_failures: Counter = field(default_factory=Counter)  # one-line reason -> traces not compiled
    quick_guest_insns: int = 0  # guest instructions run by the quick tier (set at exit)
    trace: Any = None  # hqemu.trace.TraceStats of the recorder (NET heads, traces, aborts by reason)
    pool: Any = None  # hqemu.trace.PoolStats of the worker pool (queue, crashes, compile times)
