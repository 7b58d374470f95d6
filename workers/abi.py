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
    """The first slot probed for pc (lookup_ir computes the same)."""
    return ((pc * HASH_MUL & _M64) >> 32) & mask


def lookup_ir(p: str, pc: str, words: str, mask: str, hit: str, miss: str) -> list[str]:
    """LLVM IR blocks that look guest pc (an i64 operand, never EMPTY or TOMB) up in the
    table's array `words` (a ptr operand) of capacity `mask` + 1, then branch to label `hit`
    with the code address in %<p>.code, or to label `miss`. The first block is <p>.hash: the
    caller branches there. Names are prefixed by p, so a function may hold several lookups.
    Used by the dispatcher's loop and by every chaining exit of a unit: one lookup, written once."""
    mul = HASH_MUL - (1 << 64)
    return [f"{p}.hash:",
            f"  %{p}.h0 = mul i64 {pc}, {mul}",
            f"  %{p}.h1 = lshr i64 %{p}.h0, 32",
            f"  %{p}.i0 = and i64 %{p}.h1, {mask}",
            f"  br label %{p}.probe",
            f"{p}.probe:",
            f"  %{p}.i = phi i64 [ %{p}.i0, %{p}.hash ], [ %{p}.i2, %{p}.step ]",
            f"  %{p}.slot = getelementptr inbounds [2 x i64], ptr {words}, i64 %{p}.i",
            # acquire: the code address written before the key is visible once the key is
            f"  %{p}.k = load atomic i64, ptr %{p}.slot acquire, align 8",
            f"  %{p}.eq = icmp eq i64 %{p}.k, {pc}",
            f"  br i1 %{p}.eq, label %{p}.found, label %{p}.other",
            f"{p}.other:",
            f"  %{p}.empty = icmp eq i64 %{p}.k, -1",
            f"  br i1 %{p}.empty, label %{miss}, label %{p}.step",
            f"{p}.step:",
            f"  %{p}.i1 = add i64 %{p}.i, 1",
            f"  %{p}.i2 = and i64 %{p}.i1, {mask}",
            f"  br label %{p}.probe",
            f"{p}.found:",
            f"  %{p}.cp = getelementptr inbounds i8, ptr %{p}.slot, i64 8",
            f"  %{p}.code = load ptr, ptr %{p}.cp, align 8",
            f"  br label %{hit}"]


__all__ = ["ABORT", "EMPTY", "EXITINFO_FAULT_ADDR", "EXITINFO_ICOUNT", "EXITINFO_IND_FROM", "EXITINFO_IND_TO",
           "EXITINFO_INSN_PC", "EXITINFO_IN_HELPER", "EXITINFO_KIND", "EXITINFO_MASK", "EXITINFO_REQUEST",
           "EXITINFO_SIZE", "EXITINFO_UNITS", "EXITINFO_UNIT_PC", "EXITINFO_WORDS", "HASH_MUL", "TOMB",
           "lookup_ir", "slot_of"]
