"""The statistics of a run, as one JSON-able dict, and HQEMU's "Trace statistic" summary of it.

    >>> data = statistics(engine)          # what --stats-file writes (and, later, GET /status)
    >>> print(format_summary(data))        # what -d stats prints at exit

Everything here only reads counters (hqemu.stats.Stats and the tier's records); nothing
changes the emulation.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from hqemu.trace.pool import percentiles

if TYPE_CHECKING:
    from .engine import Engine


def _dist(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"count": 0, "total": 0.0, "max": 0.0, "p50": 0.0, "p90": 0.0}
    p50, p90 = percentiles(xs, (50, 90))
    return {"count": len(xs), "total": sum(xs), "max": max(xs), "p50": p50, "p90": p90}


def statistics(engine: Engine) -> dict[str, Any]:
    env, tier = engine.env, engine.tier
    st = env.stats
    quick, native = engine.quick_insns(), st.native_guest_insns
    total = quick + native
    data: dict[str, Any] = {
        "params": dataclasses.asdict(env.params),
        "guest": {"program": env.exe_path, "argv": env.argv, "isa": env.fe.isa, "pid": env.pid},
        "tiers": {"quick_insns": quick, "native_insns": native,
                  "native_share": native / total if total else 0.0},
        "quick": {"blocks_translated": st.blocks_translated, "block_cache": len(engine.cache),
                  "guest_insns_translated": st.guest_insns_translated,
                  "translate_seconds": st.translate_seconds, "code_invalidations": st.code_invalidations},
        "native": {"units_entered": st.native_units, "blocks_compiled": st.blocks_native,
                   "returns_to_python": dict(st.native_returns)},
        "syscalls": dict(st.syscalls),
        "unknown_syscalls": {str(k): v for k, v in st.unknown_syscalls.items()},
        "unsupported_instructions": dict(st.sigill),
    }
    traces = tier.traces if tier is not None else []
    rec = st.trace
    lengths = Counter(t.blocks for t in traces)
    stages: dict[str, list[float]] = {}
    for t in traces:
        for k, v in t.stages.items():
            stages.setdefault(k, []).append(v)
    data["traces"] = {
        "formed": sum(rec.traces.values()) if rec else 0,
        "ended_by": dict(rec.traces) if rec else {},
        "aborted_by": dict(rec.aborts) if rec else {},
        "candidate_heads": rec.candidate_heads if rec else 0,
        "blacklisted_heads": rec.blacklisted if rec else 0,
        "installed": st.traces_installed,
        "compile_failed": dict(st.compile_failures),
        "merged": 0,  # trace merging is not built yet: zero, not absent
        "blocks_per_trace": {"avg": sum(t.blocks for t in traces) / len(traces) if traces else 0.0,
                             "max": max((t.blocks for t in traces), default=0),
                             "distribution": {str(k): v for k, v in sorted(lengths.items())}},
        "exits_per_trace": {"avg": sum(t.exits for t in traces) / len(traces) if traces else 0.0,
                            "max": max((t.exits for t in traces), default=0)},
        "guest_code_bytes": sum(t.guest_bytes for t in traces),
        "host_code_bytes": sum(t.host_bytes for t in traces),
        "compile_seconds": {k: _dist(v) for k, v in stages.items()},
    }
    pool = st.pool
    data["queue"] = ({"high_water": pool.queue_high_water, "submitted": pool.submitted,
                      "refused_full": pool.refused_full, "compiled": pool.compiled, "failed": pool.failed,
                      "worker_crashes": pool.crashes, "retried": pool.retried, "dropped": pool.dropped,
                      "workers_started": pool.workers_started, "main_thread_seconds": pool.main_seconds}
                     if pool is not None else {})
    return data


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
    if d["queue"]:
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
