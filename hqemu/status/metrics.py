"""The /status figures in the Prometheus text exposition format 0.0.4, written by hand.

    >>> text = render(snaps.status(), snaps.stage_seconds())
    >>> CONTENT_TYPE
    'text/plain; version=0.0.4; charset=utf-8'

Every name starts with hqemu_; counters end in _total; times are in seconds, sizes in bytes.
Each family has its HELP and TYPE lines; label values are escaped as the format says. The
trace compile latency is a histogram by stage (hqemu_trace_compile_seconds, cumulative
buckets, _sum, _count). docs/status.md lists every family.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# compile stages take 0.5 ms (parse) to a few 100 ms (a queued trace's latency)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: Any) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(v: float | int) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(float(v))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str,
               samples: Iterable[tuple[Mapping[str, Any], float | int]]) -> None:
        """One metric family; samples are (labels, value)."""
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: Mapping[str, Any], value: float | int) -> None:
        lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")

    def one(self, name: str, kind: str, help_: str, value: float | int) -> None:
        self.family(name, kind, help_, [({}, value)])

    def by(self, name: str, kind: str, help_: str, label: str, values: Mapping[str, float | int]) -> None:
        self.family(name, kind, help_, [({label: k}, v) for k, v in sorted(values.items())])


def render(d: Mapping[str, Any], stage_seconds: Mapping[str, list[float]]) -> str:
    """The exposition text for a statistics() dict and the per-stage compile times."""
    w = _Writer()
    g, tiers, q, n, t, qu = d["guest"], d["tiers"], d["quick"], d["native"], d["traces"], d["queue"]
    w.family("hqemu_info", "gauge", "Constant 1, labelled with the hqemu version, the guest ISA and the "
             "LLVM mode", [({"version": d["hqemu"]["version"], "isa": g["isa"],
                             "llvm_mode": d["params"]["llvm_mode"], "program": g["program"]}, 1)])
    w.one("hqemu_uptime_seconds", "gauge", "Seconds since the guest process was built", g["uptime_seconds"])
    w.one("hqemu_start_time_seconds", "gauge", "Unix time when the guest process was built", g["started_at"])
    w.family("hqemu_guest_instructions_total", "counter", "Guest instructions run, by tier",
             [({"tier": "quick"}, tiers["quick_insns"]), ({"tier": "native"}, tiers["native_insns"])])
    w.one("hqemu_native_share", "gauge", "Share of the guest instructions run natively (0 to 1)",
          tiers["native_share"])
    w.one("hqemu_blocks_translated_total", "counter", "Guest blocks translated by the quick tier",
          q["blocks_translated"])
    w.one("hqemu_guest_instructions_translated_total", "counter",
          "Guest instructions in the blocks the quick tier translated", q["guest_insns_translated"])
    w.one("hqemu_block_cache_blocks", "gauge", "Translated blocks in the quick tier's cache",
          q["block_cache"])
    w.one("hqemu_translate_seconds_total", "counter", "Seconds spent translating guest blocks",
          q["translate_seconds"])
    w.one("hqemu_code_invalidations_total", "counter", "Translated blocks dropped because guest code "
          "changed", q["code_invalidations"])
    w.one("hqemu_native_units_entered_total", "counter", "Native units (traces, blocks) entered by the "
          "dispatcher", n["units_entered"])
    w.one("hqemu_native_blocks_compiled_total", "counter", "Single blocks compiled by LLVM (block mode)",
          n["blocks_compiled"])
    w.by("hqemu_native_returns_total", "counter", "Returns from native code to Python, by reason",
         "reason", n["returns_to_python"])
    w.by("hqemu_syscalls_total", "counter", "Guest system calls, by name", "name", d["syscalls"])
    w.by("hqemu_unknown_syscalls_total", "counter", "Guest system calls answered -ENOSYS, by number",
         "number", d["unknown_syscalls"])
    w.one("hqemu_unsupported_instructions_total", "counter", "Guest instructions hqemu cannot run (SIGILL)",
          sum(d["unsupported_instructions"].values()))
    # --- traces -------------------------------------------------------------------------------
    w.one("hqemu_traces_formed_total", "counter", "NET traces recorded", t["formed"])
    w.one("hqemu_traces_installed_total", "counter", "Traces compiled and patched in", t["installed"])
    w.one("hqemu_traces_merged_total", "counter", "Trace regions formed by trace merging", t["merged"])
    w.one("hqemu_traces_failed_total", "counter", "Traces whose compile failed", t["failed"])
    w.by("hqemu_traces_ended_total", "counter", "Traces recorded, by why recording stopped", "reason",
         t["ended_by"])
    w.by("hqemu_traces_aborted_total", "counter", "Recordings given up, by reason", "reason", t["aborted_by"])
    w.one("hqemu_traces_queued", "gauge", "Traces waiting for an LLVM worker", t["queued"])
    w.one("hqemu_traces_compiling", "gauge", "Traces being compiled by a worker", t["compiling"])
    w.by("hqemu_trace_versions", "gauge", "Installed traces, by version (merged regions are version 2+)",
         "version", t["versions"])
    w.one("hqemu_trace_candidate_heads_total", "counter", "Guest pcs that became candidate trace heads",
          t["candidate_heads"])
    w.one("hqemu_trace_blacklisted_heads_total", "counter", "Trace heads never to be recorded again",
          t["blacklisted_heads"])
    w.one("hqemu_trace_guest_code_bytes", "gauge", "Guest code bytes covered by installed traces",
          t["guest_code_bytes"])
    w.one("hqemu_trace_host_code_bytes", "gauge", "Object bytes of installed traces", t["host_code_bytes"])
    _histogram(w, stage_seconds)
    # --- queue and workers ---------------------------------------------------------------------
    w.one("hqemu_trace_queue_depth", "gauge", "Optimization requests waiting for a worker", qu["depth"])
    w.one("hqemu_trace_queue_high_water", "gauge", "Most requests ever waiting for a worker",
          qu["high_water"])
    w.one("hqemu_trace_queue_capacity", "gauge", "Requests the queue holds before it refuses more",
          qu["capacity"])
    w.one("hqemu_trace_requests_submitted_total", "counter", "Optimization requests accepted",
          qu["submitted"])
    w.one("hqemu_trace_requests_refused_total", "counter", "Optimization requests refused (queue full)",
          qu["refused_full"])
    w.one("hqemu_worker_crashes_total", "counter", "LLVM workers that died", qu["worker_crashes"])
    w.one("hqemu_workers_started_total", "counter", "LLVM worker processes started", qu["workers_started"])
    workers = d["workers"]

    def per_worker(key: str) -> list[tuple[dict[str, Any], float | int]]:
        return [({"slot": x["slot"], "pid": x["pid"]}, x[key]) for x in workers]

    w.family("hqemu_worker_up", "gauge", "1 while the LLVM worker process lives", per_worker("alive"))
    w.family("hqemu_worker_busy", "gauge", "1 while the worker compiles a trace", per_worker("busy"))
    w.family("hqemu_worker_compiles_total", "counter", "Results the worker returned", per_worker("compiles"))
    w.family("hqemu_worker_cpu_seconds_total", "counter", "CPU seconds the worker used",
             per_worker("cpu_seconds"))
    w.family("hqemu_worker_resident_bytes", "gauge", "Resident memory of the worker", per_worker("rss_bytes"))
    w.one("hqemu_samples_total", "counter", "Profiler samples taken (0 without a sampler)",
          d["samples"]["total"])
    return "\n".join(w.lines) + "\n"


def _histogram(w: _Writer, stage_seconds: Mapping[str, list[float]]) -> None:
    name = "hqemu_trace_compile_seconds"
    w.lines.append(f"# HELP {name} Trace compile time by stage (wait and latency are measured from submit)")
    w.lines.append(f"# TYPE {name} histogram")
    for stage, xs in sorted(stage_seconds.items()):
        xs = sorted(xs)
        i = 0
        for le in BUCKETS:
            while i < len(xs) and xs[i] <= le:
                i += 1
            w.sample(f"{name}_bucket", {"stage": stage, "le": _num(le)}, i)
        w.sample(f"{name}_bucket", {"stage": stage, "le": "+Inf"}, len(xs))
        w.sample(f"{name}_sum", {"stage": stage}, float(sum(xs)))
        w.sample(f"{name}_count", {"stage": stage}, len(xs))
