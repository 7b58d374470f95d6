"""Consistent copies of the running engine's figures, read from the status server's threads.

    >>> snaps = Snapshots(engine, max_age=0.1)
    >>> snaps.status()                  # statistics(engine): the body of GET /status
    >>> snaps.traces()                  # one dict per trace: the rows of GET /traces
    >>> select(snaps.traces(), {"sort": ["-blocks"], "limit": ["5"]})   # ValueError on a bad query

The main thread mutates the counters while a request reads them and is never locked: each
read copies the containers it walks, and a dict that changed size under a reader (the
RuntimeError CPython raises then) makes the whole read start again. A read costs about a
millisecond per thousand traces; the result is kept for max_age seconds, so a burst of
requests (or a dashboard polling several endpoints) reads the engine once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from hqemu.linux.symbols import symbols_for
from hqemu.runtime.report import statistics

if TYPE_CHECKING:
    from hqemu.runtime.engine import Engine
    from hqemu.runtime.native_tier import InstalledTrace

T = TypeVar("T")
TRIES = 50  # reads restarted because the main thread resized a dict meanwhile; then it is an error

# /traces sort keys -> how a row sorts (rows without a value sort last either way)
SORT_FIELDS = ("samples", "id", "version", "head_pc", "symbol", "blocks", "guest_insns", "exits",
               "exec_count", "compile_seconds", "state", "installed_at", "host_bytes")
QUERY_KEYS = ("sort", "order", "limit")
# fields that name or place a trace sort ascending by default; the measures (samples, blocks,
# compile time, ...) descending, so ?sort=samples&limit=20 is the 20 hottest
ASCENDING = ("id", "head_pc", "symbol", "state", "installed_at")
MAX_DIGITS = 18  # a numeric query parameter longer than this is refused, not parsed


def retrying(read: Callable[[], T], tries: int = TRIES) -> T:
    """read(), again while the data it walks changes size under it."""
    for _ in range(tries - 1):
        try:
            return read()
        except RuntimeError:  # "dictionary changed size during iteration" and kin
            time.sleep(0)  # let the main thread finish its update
    return read()


class Snapshots:
    """What the endpoint shows, read at most every max_age seconds (thread-safe)."""

    def __init__(self, engine: Engine, max_age: float = 0.1):
        self.engine = engine
        self.max_age = max_age
        self._lock = threading.Lock()  # between the server's threads only: the guest never takes it
        self._cache: dict[str, tuple[float, Any]] = {}

    def _cached(self, key: str, read: Callable[[], T]) -> T:
        with self._lock:
            hit = self._cache.get(key)
            now = time.monotonic()
            if hit is not None and now - hit[0] < self.max_age:
                return hit[1]
            value = retrying(read)
            self._cache[key] = (time.monotonic(), value)
            return value

    def status(self) -> dict[str, Any]:
        return self._cached("status", lambda: statistics(self.engine))

    def traces(self) -> list[dict[str, Any]]:
        return self._cached("traces", lambda: trace_rows(self.engine))

    def stage_seconds(self) -> dict[str, list[float]]:
        """Compile seconds of every installed trace, by stage (the /metrics histogram)."""
        return self._cached("stages", lambda: stage_seconds(self.engine))


def stage_seconds(engine: Engine) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for t in list(engine.tier.traces) if engine.tier is not None else []:
        for stage, s in dict(t.stages).items():
            out.setdefault(stage, []).append(s)
    return out


def trace_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every trace the tier knows: installed or superseded, queued, compiling, failed (in that order).

    The sampler counts by the guest pc of the unit entered, which is a head pc: a head's
    samples go to the unit installed there last (tier.traces is in installation order), and
    an older unit at the same head (a trace a merged region replaced) is "superseded", with 0
    samples, as are the rows of traces not installed."""
    tier = engine.tier
    if tier is None:
        return []
    sampler = getattr(tier, "sampler", None)
    samples: Mapping[int, int] = {}
    if sampler is not None:
        samples = sampler.snapshot() if hasattr(sampler, "snapshot") else dict(sampler.counts)
    syms = symbols_for(engine.env)
    traces = list(tier.traces)
    current = {t.head_pc: t.id for t in traces if t.state == "installed"}  # the last one installed wins
    rows = []
    for t in traces:
        state = "superseded" if t.state == "installed" and current[t.head_pc] != t.id else t.state
        rows.append(_row(t, state, samples.get(t.head_pc, 0) if state == "installed" else 0, syms.lookup))
    pool = getattr(tier, "pool", None)
    if pool is not None:
        snap = pool.snapshot()
        for state, reqs in (("queued", snap.queued), ("compiling", snap.compiling)):
            rows += [_row(r.meta[0], state, 0, syms.lookup) for r in reqs if _is_trace(r.meta)]
    rows += [_row(t, "failed", 0, syms.lookup) for t in list(getattr(tier, "failed", ()))]
    return rows


def _is_trace(meta: Any) -> bool:
    return isinstance(meta, tuple) and len(meta) >= 1 and hasattr(meta[0], "head_pc")


def _row(t: InstalledTrace, state: str, samples: int, lookup: Callable[[int], str | None]) -> dict[str, Any]:
    stages = dict(t.stages)
    exits = list(getattr(t, "exit_list", ()))
    targets = sorted({e.target for e in exits if e.target is not None})
    return {
        "id": t.id,
        "version": getattr(t, "version", 1),
        "state": state,
        "head_pc": f"0x{t.head_pc:x}",
        "head_pc_int": t.head_pc,
        "symbol": lookup(t.head_pc),
        "blocks": t.blocks,
        "guest_insns": t.guest_insns,
        "guest_bytes": t.guest_bytes,
        "host_bytes": t.host_bytes,
        "exits": t.exits,
        "exit_targets": [f"0x{pc:x}" for pc in targets],
        "exit_list": [{"from": f"0x{e.block_pc:x}", "kind": e.kind,
                       "target": f"0x{e.target:x}" if e.target is not None else None} for e in exits],
        "samples": samples,
        "exec_count": getattr(t, "exec_count", None),  # native code does not count runs (yet)
        "compile_seconds": stages.get("total", sum(stages.values())),
        "stages": stages,
        "end": t.end,
        "worker_pid": t.worker_pid,
        "recorded_at": getattr(t, "recorded_at", None),
        "installed_at": getattr(t, "installed_at", None),
        "error": getattr(t, "error", ""),
    }


def _shown(text: str) -> str:
    """A client's value in an error: quoted (repr: one line), at most 40 characters of it."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _count(query: Mapping[str, list[str]], key: str) -> int | None:
    """A numeric query parameter: ASCII digits only (str.isdigit and int() also take '٣' or
    '３'); None if absent, ValueError (one line) if it is anything else."""
    if key not in query:
        return None
    text = query[key][0]
    if not (0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()):
        raise ValueError(f"{key} must be a non-negative integer in ASCII digits, not {_shown(text)}")
    return int(text)


def select(rows: Sequence[dict[str, Any]], query: Mapping[str, list[str]]) -> dict[str, Any]:
    """The /traces answer for a parsed query string; ValueError (one line) if the query is bad.

    sort=FIELD (-FIELD: descending; a measure such as samples or blocks sorts descending, an
    identifier in ASCENDING ascending), order=asc|desc overrides, limit=N. The default is the
    hottest first: sort=samples, descending; ties go by trace id.
    """
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise ValueError(f"unknown query parameter {_shown(unknown[0])} (accepted: {', '.join(QUERY_KEYS)})")
    for key, values in query.items():
        if len(values) != 1:
            raise ValueError(f"query parameter {_shown(key)} given {len(values)} times")
    sort = query.get("sort", ["samples"])[0]
    field = sort.lstrip("-")
    desc = sort.startswith("-") or (sort == field and field not in ASCENDING)
    if field not in SORT_FIELDS:
        raise ValueError(f"cannot sort by {_shown(field)} (fields: {', '.join(SORT_FIELDS)})")
    order = query.get("order", [None])[0]
    if order is not None:
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be asc or desc, not {_shown(order)}")
        desc = order == "desc"
    limit = _count(query, "limit")
    key = "head_pc_int" if field == "head_pc" else field
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: r["id"])
    present.sort(key=lambda r: r[key], reverse=desc)  # stable: ties stay by id
    out = present + sorted(absent, key=lambda r: r["id"])
    return {"count": len(rows), "sort": field, "order": "desc" if desc else "asc", "limit": limit,
            "traces": out if limit is None else out[:limit]}
