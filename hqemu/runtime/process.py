"""Builds the guest process and runs it to its end; maps how it ended to hqemu's exit status.

    >>> status = run(Params(), "./prog", ["arg"], ["HOME=/root"])

The guest's exit status is hqemu's; a guest killed by a signal prints QEMU's one-line
message and hqemu exits with 128+N.
"""

from __future__ import annotations

import gc
import os
import random
import sys

from hqemu.env import Env
from hqemu.errors import GuestExit, GuestSignal
from hqemu.linux import loader
from hqemu.linux.memory import GuestMemory
from hqemu.log import Log
from hqemu.params import Params

from .engine import Engine
from .report import format_summary, statistics, write_json


def log_items(params: Params) -> set[str]:
    items = {i for i in params.log_items.split(",") if i}
    if params.strace:
        items.add("strace")
    return items


def run(params: Params, program: str, guest_args: list[str], envp: list[str]) -> int:
    # Translation allocates many short-lived IR objects and few cycles; without this the
    # collector rescans every long-lived object of the imports at each full collection
    # (callgrind: 3% of the start-up's instructions).
    gc.freeze()
    gc.set_threshold(20000, 50, 1000)
    log = Log(log_items(params), params.log_file)
    path = program
    if params.sysroot and os.path.isabs(program) and os.path.exists(params.sysroot + program):
        path = params.sysroot + program
    fe = loader.probe(path)  # HqemuError with one line for anything that is not our ELF
    mem = GuestMemory(params.guest_space)
    rng = random.Random(params.seed if params.seed is not None else os.urandom(16))
    argv = [params.argv0 if params.argv0 is not None else program, *guest_args]
    env = Env(params, fe, mem, log, rng=rng, exe_path=os.path.abspath(path), argv=argv, pid=os.getpid())
    image = loader.load(env, path, argv, envp)
    fe.init_cpu(env.cpu, image.entry, image.sp)
    engine = Engine(env)
    server = None
    try:
        if params.status_port is not None:
            server = _start_status(engine, params)  # before the first guest instruction
        engine.run(image.entry)
        status = 0  # not reached: the loop ends by an exception
    except GuestExit as e:
        status = e.status
    except GuestSignal as e:
        print(e.message(), file=sys.stderr, flush=True)
        status = 128 + e.signo
    finally:
        if server is not None:
            server.stop()
        engine.shutdown()
    if log.on("stats") or params.stats_file:
        data = statistics(engine)
        if log.on("stats"):
            log.write(format_summary(data))
        if params.stats_file:
            try:
                write_json(data, params.stats_file)
            except OSError as e:
                print(f"hqemu: cannot write the statistics to {params.stats_file}: {e.strerror}",
                      file=sys.stderr)
    log.flush()
    return status


def _start_status(engine: Engine, params: Params):
    """The status endpoint (HqemuError, one line, if it cannot listen); its URL on stderr for port 0."""
    from hqemu.status.server import StatusServer  # late: runs without the endpoint pay nothing

    server = StatusServer(params.status_bind, params.status_port)
    server.start(engine)
    if params.status_port == 0:
        print(f"hqemu: status endpoint at {server.url}", file=sys.stderr, flush=True)
    return server

