"""Quick-tier speed on a hot integer guest loop, in guest instructions per second.

    $ .venv/bin/python bench/quick_mips.py [iterations]

Builds bench/programs/intloop.c (gcc -O2 -static), runs it under hqemu in this process with
the trace tier off, and divides the guest instructions executed (block executions times
block sizes, so a block left early through a side exit counts whole) by the wall time of
the run, translation included. The native run of the same binary is timed for reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hqemu.errors import GuestExit  # noqa: E402
from hqemu.params import Params  # noqa: E402
from hqemu.runtime import process  # noqa: E402


def build() -> Path:
    out = ROOT / "build" / "bench" / "intloop"
    src = ROOT / "bench" / "programs" / "intloop.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(src)], check=True)
    return out


def main() -> None:
    iters = sys.argv[1] if len(sys.argv) > 1 else "300000"
    exe = build()
    t0 = time.perf_counter()
    subprocess.run([str(exe), iters], check=True, stdout=subprocess.DEVNULL)
    native = time.perf_counter() - t0

    engines = []
    real_engine = process.Engine

    def capture(env):
        eng = real_engine(env)
        engines.append(eng)
        return eng

    process.Engine = capture
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(devnull, 1)
    t0 = time.perf_counter()
    try:
        status = process.run(Params(llvm_mode="none"), str(exe), [iters], [])
    except GuestExit as e:
        status = e.status
    finally:
        os.dup2(saved, 1)
    wall = time.perf_counter() - t0
    eng = engines[0]
    executed = eng.quick_insns()
    st = eng.env.stats
    print(f"intloop {iters}: status {status}, {executed / 1e6:.1f} M guest instructions in {wall:.2f} s")
    print(f"quick tier: {executed / wall / 1e6:.2f} M guest instructions/s "
          f"({st.blocks_translated} blocks translated in {st.translate_seconds:.2f} s)")
    print(f"native: {native:.3f} s; hqemu quick tier / native time: {wall / native:.0f}x")


if __name__ == "__main__":
    main()
