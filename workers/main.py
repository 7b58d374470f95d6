"""The LLVM worker process: receive a compile request, compile it, send the result back.

    >>> ctx.Process(target=serve, args=(child_conn, "cheap"), daemon=True).start()   # pool.py
    >>> parent_conn.send((7, ir_text, "trace_401000_7", "cheap", 0.0))
    >>> parent_conn.recv()     # ("ok", 7, obj_bytes, "trace_401000_7", {"lower": ..., ...}, pid)

The wire format is plain tuples (cheap to pickle): a request is (id, hqemu IR text, entry
symbol, opt level, debug sleep seconds), or None to stop. A reply is ("ok", id, object bytes,
entry, per-stage seconds, pid) or ("err", id, one-line message, pid, per-stage seconds). An
exception while compiling becomes an "err" reply and the worker goes on; only a crash of the
process itself (an LLVM assertion, SIGKILL) loses a request, and the pool retries it.

The worker exits when its connection closes (the main process ended, even by SIGKILL), so no
worker outlives hqemu. It ignores SIGINT: ^C in a terminal reaches the whole process group,
and the main process decides when the workers stop. Imports: hqemu.ir and workers.* only;
llvmlite is imported by serve(), not at import time, so the main process can name serve as a
Process target without loading LLVM.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

Request = tuple[int, str, str, str, float]
_WARM_UP = "unit warm_up\nblock 0x1000\n  exit jump, 0x1000\n"


def handle(msg: Request) -> tuple:
    """Compile one request; the reply tuple. Never raises for a bad request."""
    from .compile import CLOCK, compile_ir_unit

    rid = msg[0] if isinstance(msg, tuple) and msg else -1
    stats: dict[str, float] = {}
    t0 = CLOCK()
    try:
        rid, text, entry, opt, sleep = msg
        if sleep:
            time.sleep(sleep)  # tests: a slow compile, to kill the worker in the middle of one
        co = compile_ir_unit(text, entry, opt)
        stats = dict(co.stats)
        stats["total"] = CLOCK() - t0
        return ("ok", rid, co.obj, co.entry, stats, os.getpid())
    except Exception as e:  # every failure becomes a reply: the worker lives on
        stats["total"] = CLOCK() - t0
        return ("err", rid, _one_line(e), os.getpid(), stats)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def serve(conn: Any, default_opt: str = "cheap") -> None:
    """The worker's loop over one duplex connection to the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # LLVM's lazy setup (targets, pass registries, codegen tables) made the first compile of a
    # worker ~3x slower than the next: pay it now, before a request waits for it
    handle((-1, _WARM_UP, "hqemu_warm_up", default_opt, 0.0))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the pool (or the whole main process) is gone
        if msg is None:
            return
        if isinstance(msg, tuple) and len(msg) == 5 and not msg[3]:
            msg = (*msg[:3], default_opt, msg[4])
        reply = handle(msg)
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


__all__ = ["handle", "serve"]
