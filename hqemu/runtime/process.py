"""Builds the guest process and runs it to its end; maps how it ended to hqemu's exit status.

    >>> status = run(Params(), "./prog", ["arg"], ["HOME=/root"])

The guest's exit status is hqemu's; a guest killed by a signal prints QEMU's one-line
message and hqemu exits with 128+N.
"""

from __future__ import annotations

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


def log_items(params: Params) -> set[str]:
    items = {i for i in params.log_items.split(",") if i}
    if params.strace:
        items.add("strace")
    return items


def run(params: Params, program: str, guest_args: list[str], envp: list[str]) -> int:
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
    try:
        engine.run(image.entry)
        status = 0  # not reached: the loop ends by an exception
    except GuestExit as e:
        status = e.status
    except GuestSignal as e:
        print(e.message(), file=sys.stderr, flush=True)
        status = 128 + e.signo
    finally:
        engine.shutdown()
    if log.on("stats"):
        log.write("\n".join(["hqemu statistics:", *("  " + line for line in env.stats.summary())]))
    log.flush()
    return status
