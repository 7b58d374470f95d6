"""The contract between compiled units and the native dispatcher: the exit record and the table.

    >>> from workers.abi import EXITINFO_KIND, slot_of
    >>> slot_of(0x401000, mask=(1 << 16) - 1)       # the first slot a lookup probes

Compiled units (workers/lower.py) and the dispatcher (hqemu/native/dispatch.py) share two
pieces of memory, laid out here once:

- the exit record, i64 slots at fixed byte offsets: what a unit writes when it exits (the
  kind, the guest pc of the instruction that touches memory, instruction counts, ...) and
  what it reads to chain to the next unit without returning (the dispatch table's array and
  mask, the interrupt request). The dispatcher appends its own fields after EXITINFO_SIZE.
- the dispatch table, an open-addressed array of {guest pc, code address} pairs, probed
  linearly from slot_of(pc); an EMPTY key ends a probe, a TOMB key is a removed entry.

A unit chains at a `jump` exit by the same lookup as the dispatcher (its exits are
hqemu_dispatch's loop, inlined): hit -> tail call of the code found, miss -> return the pc.
A record whose EXITINFO_WORDS slot is 0 (a unit called alone, as the tests do) never chains.
"""

from __future__ import annotations

# --- the exit record: byte offsets of its i64 slots ------------------------------------------
EXITINFO_KIND = 0  # EXIT_KINDS index of the exit taken, or ABORT
EXITINFO_INSN_PC = 8  # guest pc of the last started instruction that accesses guest memory
EXITINFO_ICOUNT = 16  # guest instructions entered in native code (cumulative; callers reset it)
EXITINFO_FAULT_ADDR = 24  # guest address of a faulting access (written by the fault handler)
EXITINFO_IN_HELPER = 32  # 1 while a helper runs: a host fault then is not a guest access
EXITINFO_UNIT_PC = 40  # guest pc of the last unit entered (a sampling profiler reads it)
EXITINFO_UNITS = 48  # units entered (transitions between units, cumulative)
EXITINFO_REQUEST = 56  # nonzero: another thread asks the run to return at the next transition
EXITINFO_WORDS = 64  # address of the dispatch table's array (0: units do not chain)
EXITINFO_MASK = 72  # the table's capacity - 1
EXITINFO_IND_FROM = 80  # the last indirect jump exit taken: the guest pc of its unit's entry,
EXITINFO_IND_TO = 88  # ... and its target (a sampler reads them: trace merging's indirect edges)
EXITINFO_SIZE = 96  # bytes the units touch; a caller's record may be longer, never shorter

ABORT = (1 << 64) - 1  # EXITINFO_KIND after a helper raised; the caller re-raises its exception

# --- the dispatch table ------------------------------------------------------------------------
EMPTY = (1 << 64) - 1  # key of a slot never used
TOMB = (1 << 64) - 2  # key of a removed entry (probing goes on past it)
HASH_MUL = 0x9E3779B97F4A7C15  # Fibonacci hashing: x86 pcs cluster, their products do not
_M64 = (1 << 64) - 1


def slot_of(pc: int, mask: int) -> int:
    """The first slot probed for pc (the IR of the units and of the dispatcher computes the same)."""
    return ((pc * HASH_MUL & _M64) >> 32) & mask


__all__ = ["ABORT", "EMPTY", "EXITINFO_FAULT_ADDR", "EXITINFO_ICOUNT", "EXITINFO_IND_FROM", "EXITINFO_IND_TO",
           "EXITINFO_INSN_PC", "EXITINFO_IN_HELPER", "EXITINFO_KIND", "EXITINFO_MASK", "EXITINFO_REQUEST",
           "EXITINFO_SIZE", "EXITINFO_UNITS", "EXITINFO_UNIT_PC", "EXITINFO_WORDS", "HASH_MUL", "TOMB",
           "slot_of"]
