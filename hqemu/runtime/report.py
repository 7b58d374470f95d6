"""The statistics of a run, as one JSON-able dict, and HQEMU's "Trace statistic" summary of it.

    >>> data = statistics(engine)          # what --stats-file writes and GET /status answers
    >>> print(format_summary(data))        # what -d stats prints at exit

Everything here only reads counters (hqemu.stats.Stats and the tier's records); nothing
changes the emulation.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import psutil

from hqemu import __version__
from hqemu.trace.pool import WorkerState, percentiles

if TYPE_CHECKING:
    from .engine import Engine


def _dist(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"count": 0, "total": 0.0, "max": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0}
    p50, p90, p99 = percentiles(xs, (50, 90, 99))
    return {"count": len(xs), "total": sum(xs), "max": max(xs), "p50": p50, "p90": p90, "p99": p99}


def statistics(engine: Engine) -> dict[str, Any]:
    """Every figure of the run; also the body of GET /status, so it may run in another thread
    while the guest runs: it only reads, and copies each container once. A dict that grows while
    it is read raises RuntimeError; hqemu.status.snapshot calls this again then."""
    env, tier = engine.env, engine.tier
    st = env.stats
    quick, native = engine.quick_insns(), st.native_guest_insns
    if tier is not None:  # live: the guest may have been in native code since its last return
        native += max(0, tier.disp.unaccounted_insns)
    total = quick + native
    uptime = time.monotonic() - env.started
    data: dict[str, Any] = {
        "hqemu": {"version": __version__},
        "generated_at": time.time(),  # Unix seconds when these figures were read
        "params": dataclasses.asdict(env.params),
        "guest": {"program": env.exe_path, "argv": env.argv, "isa": env.fe.isa, "pid": env.pid,
                  "uptime_seconds": uptime, "started_at": time.time() - uptime},
        "tiers": {"quick_insns": quick, "native_insns": native,
                  "native_share": native / total if total else 0.0,
                  "quick_share": quick / total if total else 0.0},
        "quick": {"blocks_translated": st.blocks_translated, "block_cache": len(engine.cache),
                  "guest_insns_translated": st.guest_insns_translated,
                  "translate_seconds": st.translate_seconds, "code_invalidations": st.code_invalidations},
        "native": {"units_entered": st.native_units, "blocks_compiled": st.blocks_native,
                   "returns_to_python": dict(st.native_returns)},
        "syscalls": dict(st.syscalls),
        "unknown_syscalls": {str(k): v for k, v in dict(st.unknown_syscalls).items()},
        "unsupported_instructions": dict(st.sigill),
    }
    traces = list(tier.traces) if tier is not None else []
    pool = tier.pool if tier is not None else None
    snap = pool.snapshot() if pool is not None else None
    rec = st.trace
    lengths = Counter(t.blocks for t in traces)
    stages: dict[str, list[float]] = {}
    for t in traces:
        for k, v in dict(t.stages).items():
            stages.setdefault(k, []).append(v)
    aborted = dict(rec.aborts) if rec else {}
    compile_failed = dict(st.compile_failures)
    data["traces"] = {
        "formed": sum(dict(rec.traces).values()) if rec else 0,
        "queued": len(snap.queued) if snap else 0,
        "compiling": len(snap.compiling) if snap else 0,
        "installed": st.traces_installed,
        "failed": sum(compile_failed.values()),
        "aborted": sum(aborted.values()),
        "ended_by": dict(rec.traces) if rec else {},
        "aborted_by": aborted,
        "candidate_heads": rec.candidate_heads if rec else 0,
        "blacklisted_heads": rec.blacklisted if rec else 0,
        "compile_failed": compile_failed,
        # regions installed by trace merging (version 2 and up): 0 until merging runs, never absent
        "merged": sum(1 for t in traces if getattr(t, "version", 1) > 1),
        "versions": {str(k): v for k, v in sorted(Counter(getattr(t, "version", 1) for t in traces).items())},
        "blocks_per_trace": {"avg": sum(t.blocks for t in traces) / len(traces) if traces else 0.0,
                             "max": max((t.blocks for t in traces), default=0),
                             "distribution": {str(k): v for k, v in sorted(lengths.items())}},
        "exits_per_trace": {"avg": sum(t.exits for t in traces) / len(traces) if traces else 0.0,
                            "max": max((t.exits for t in traces), default=0)},
        "guest_code_bytes": sum(t.guest_bytes for t in traces),
        "host_code_bytes": sum(t.host_bytes for t in traces),
        "compile_seconds": {k: _dist(v) for k, v in stages.items()},
    }
    ps = st.pool
    data["queue"] = {"depth": len(snap.queued) if snap else 0,
                     "in_flight": len(snap.compiling) if snap else 0,
                     "capacity": pool.queue_size if pool is not None else 0}
    data["queue"].update({k: getattr(ps, a, 0) if ps is not None else 0 for k, a in _POOL_FIGURES})
    data["workers"] = [_worker(w) for w in snap.workers] if snap else []
    sampler = getattr(tier, "sampler", None)
    data["samples"] = {"total": getattr(sampler, "total", 0), "python": getattr(sampler, "python", 0)}
    data["samples"]["native"] = data["samples"]["total"] - data["samples"]["python"]
    return data


# /status queue field -> PoolStats attribute
_POOL_FIGURES = (("high_water", "queue_high_water"), ("submitted", "submitted"),
                 ("refused_full", "refused_full"), ("compiled", "compiled"), ("failed", "failed"),
                 ("worker_crashes", "crashes"), ("retried", "retried"), ("dropped", "dropped"),
                 ("workers_started", "workers_started"), ("main_thread_seconds", "main_seconds"))


def _worker(w: WorkerState) -> dict[str, Any]:
    """One worker's figures; a worker that died (and is not yet replaced) is reported, not raised."""
    row = {"slot": w.slot, "pid": w.pid, "busy": w.busy, "request": w.request, "compiles": w.compiles,
           "alive": False, "cpu_seconds": 0.0, "rss_bytes": 0}
    try:
        p = psutil.Process(w.pid)
        with p.oneshot():
            if p.status() == psutil.STATUS_ZOMBIE:
                return row
            cpu = p.cpu_times()
            row.update(alive=True, cpu_seconds=cpu.user + cpu.system, rss_bytes=p.memory_info().rss)
    except (psutil.Error, OSError):
        pass
    return row


def format_summary(d: dict[str, Any]) -> str:
    t, tiers, q = d["traces"], d["tiers"], d["quick"]
    out = ["hqemu statistics:",
           f"  guest instructions: {tiers['quick_insns'] + tiers['native_insns']} "
           f"(native {100 * tiers['native_share']:.3f}%, quick tier {100 * (1 - tiers['native_share']):.3f}%)"
           if tiers["quick_insns"] + tiers["native_insns"] else "  guest instructions: 0",
           f"  quick tier: {q['blocks_translated']} blocks translated ({q['guest_insns_translated']} insns) "
           f"in {q['translate_seconds']:.3f} s, {q['code_invalidations']} invalidated",
           "Trace statistic:",
           f"  traces formed {t['formed']}, installed {t['installed']}, "
           f"candidate heads {t['candidate_heads']}, blacklisted {t['blacklisted_heads']}, "
           f"merged {t['merged']}",
           f"  ended by: {_kv(t['ended_by'])}; aborted by: {_kv(t['aborted_by'])}",
           f"  blocks per trace: avg {t['blocks_per_trace']['avg']:.1f}, max {t['blocks_per_trace']['max']}, "
           f"distribution {_kv(t['blocks_per_trace']['distribution'])}",
           f"  exits per trace: avg {t['exits_per_trace']['avg']:.1f}, max {t['exits_per_trace']['max']}",
           f"  code size: guest {t['guest_code_bytes']} bytes, host {t['host_code_bytes']} bytes"]
    for stage, s in t["compile_seconds"].items():
        out.append(f"  compile {stage}: total {s['total'] * 1e3:.1f} ms, max {s['max'] * 1e3:.2f} ms, "
                   f"p50 {s['p50'] * 1e3:.2f} ms, p90 {s['p90'] * 1e3:.2f} ms")
    if t["compile_failed"]:
        out.append(f"  compile failures: {_kv(t['compile_failed'])}")
    if d["params"]["llvm_mode"] == "hybridm":
        qd = d["queue"]
        out.append(f"  queue: high water {qd['high_water']}, refused {qd['refused_full']}, "
                   f"worker crashes {qd['worker_crashes']}, retried {qd['retried']}, dropped {qd['dropped']}")
    n = d["native"]
    out.append(f"  native: {n['units_entered']} units entered, "
               f"returns to Python: {_kv(n['returns_to_python'])}")
    out.append(f"  syscalls: {_kv(d['syscalls'])}")
    if d["unknown_syscalls"]:
        out.append(f"  unknown syscalls (-ENOSYS): {_kv(d['unknown_syscalls'])}")
    if d["unsupported_instructions"]:
        out.append(f"  unsupported instructions (SIGILL) at: {_kv(d['unsupported_instructions'])}")
    return "\n".join(out)


def _kv(m: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in m.items()) or "none"


def write_json(d: dict[str, Any], path: str) -> None:
    with open(path, "w") as f:
        json.dump(d, f, indent=1, sort_keys=True)
        f.write("\n")
