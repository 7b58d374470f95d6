"""The trace tier's Python side: NET trace selection, trace building and the LLVM worker pool.

    >>> rec = TraceRecorder(NetPolicy(params.hot_threshold, params.trace_max_blocks))
    >>> pool = WorkerPool(params.workers, opt="cheap", queue_size=32)     # start it early
    >>> # engine loop: rec.profile / rec.start / rec.on_block (see recorder.py), then per trace:
    >>> t = build_trace(trace, trace_name(trace.head_pc, serial))
    >>> pool.submit(Request(serial, t.text, t.info.entry, meta=t.info)) or rec.release(trace.head_pc)
    >>> for r in pool.poll(): ...                     # r.ok: native().load(r.obj, r.entry)

Modules: policy.py (when a head is hot, when a recording stops; the named reasons),
recorder.py (the recording state machine), build.py (recorded blocks -> one IR unit and its
exit metadata), pool.py (the bounded request queue and the worker processes, which run
workers/main.py). This package imports hqemu.ir, and workers.main for the process target.
"""

from .build import BuiltTrace, TraceExit, TraceInfo, build_trace, build_trace_unit, trace_exits, trace_name
from .policy import AbortReason, Edge, NetPolicy, TraceEnd
from .pool import PoolStats, Request, Result, WorkerPool, WorkerState, percentiles
from .recorder import Head, HeadState, RecordedTrace, State, TraceRecorder, TraceStats, edge_kind

__all__ = [
    "AbortReason", "BuiltTrace", "Edge", "Head", "HeadState", "NetPolicy", "PoolStats", "RecordedTrace",
    "Request", "Result", "State", "TraceEnd", "TraceExit", "TraceInfo", "TraceRecorder", "TraceStats",
    "WorkerPool", "WorkerState", "build_trace", "build_trace_unit", "edge_kind", "percentiles",
    "trace_exits", "trace_name",
]
