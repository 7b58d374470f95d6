"""Response time of the status endpoint while the guest runs, per llvm mode and endpoint (issue 5).

    $ .venv/bin/python -m bench.status_latency [--samples 40] [--modes none,block,hybrids,hybridm]
                                               [PROGRAM [ARGS...]]

Runs PROGRAM (default: build/bench/int_loop with 10**12 iterations, so it never ends by itself;
built from bench/kernels/int_loop.c into a temporary directory when build/bench has none) under
`hqemu --status-port 0 -code-cache=` in a clean environment, once per mode. When the guest runs
(in hybrids and hybridm: once a trace is installed; in block mode: once a block is compiled),
it requests /status, /traces and /metrics in turn, one request every --spacing seconds (0.12:
past the 100 ms snapshot cache, so every answer is built afresh), each on a new connection as
curl would, then kills the guest and prints the median, p90 and max per mode and endpoint as a
Markdown table (docs/status.md keeps one). tests/test_status.py runs `measure` with fewer
samples and asserts the median under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "build" / "bench" / "int_loop"
SOURCE = ROOT / "bench" / "kernels" / "int_loop.c"
FOREVER = str(10**12)  # int_loop iterations: hours in any tier
MODES = ("none", "block", "hybrids", "hybridm")
ENDPOINTS = ("status", "traces", "metrics")
SPACING = 0.12  # seconds between requests: more than the snapshot cache's 100 ms


@dataclass
class Measured:
    mode: str
    seconds: dict[str, list[float]]  # endpoint -> response times, in request order
    insns: tuple[int, int]  # guest instructions run at the first and the last /status answer
    running: bool  # the guest still ran when the last answer came

    def median(self, endpoint: str) -> float:
        return quantile(self.seconds[endpoint], 0.5)


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile (the median of an even count is the upper middle value)."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def clean_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C", "LC_ALL": "C",
            "TZ": "UTC", "PYTHONPATH": str(ROOT)}


def build_int_loop(out_dir: Path) -> Path:
    out = out_dir / "int_loop"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(SOURCE)], check=True)
    return out


def _get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
        return r.read()


def _insns(status: dict) -> int:
    return status["tiers"]["quick_insns"] + status["tiers"]["native_insns"]


def _warm(mode: str, status: dict) -> bool:
    """The guest runs in the mode's steady tier (or at least has started to)."""
    if _insns(status) == 0:
        return False
    if mode in ("hybrids", "hybridm"):
        return status["traces"]["installed"] >= 1
    if mode == "block":
        return status["native"]["blocks_compiled"] >= 1
    return True


def measure(mode: str, program: Path | str, args: tuple[str, ...] = (FOREVER,), samples: int = 40,
            spacing: float = SPACING, warm_timeout: float = 60.0, cwd: Path | str | None = None) -> Measured:
    """Start the guest under hqemu in mode, time `samples` requests of each endpoint, kill it."""
    cmd = [sys.executable, "-m", "hqemu", "-U", "PYTHONPATH", "-llvm-mode", mode, "-status-port", "0",
           "-code-cache=", str(program), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(),
                            cwd=cwd, start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 60.0)
        line = proc.stderr.readline().decode() if ready else ""
        m = re.match(r"hqemu: status endpoint at (http://\S+/)$", line)
        if m is None:
            raise RuntimeError(f"{mode}: no endpoint line from hqemu: {line!r}")
        base = m.group(1)
        deadline = time.monotonic() + warm_timeout
        while not _warm(mode, json.loads(_get(base + "status"))):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{mode}: the guest did not warm up in {warm_timeout:g} s")
            time.sleep(0.1)
        seconds: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        first = last = -1
        for _ in range(samples):
            for endpoint in ENDPOINTS:
                time.sleep(spacing)
                t0 = time.perf_counter()
                body = _get(base + endpoint)
                seconds[endpoint].append(time.perf_counter() - t0)
                if endpoint == "status":
                    last = _insns(json.loads(body))
                    first = last if first < 0 else first
        return Measured(mode, seconds, (first, last), proc.poll() is None)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stderr.close()


def table(results: list[Measured]) -> str:
    out = ["| mode | endpoint | median | p90 | max |", "| --- | --- | --- | --- | --- |"]
    ms = lambda s: f"{1e3 * s:.1f} ms"  # noqa: E731
    for r in results:
        for e in ENDPOINTS:
            v = r.seconds[e]
            figures = " | ".join(ms(x) for x in (quantile(v, 0.5), quantile(v, 0.9), max(v)))
            out.append(f"| `{r.mode}` | `/{e}` | {figures} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.status_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=40, help="requests per endpoint and mode (40)")
    ap.add_argument("--spacing", type=float, default=SPACING, help="seconds between requests (0.12)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of llvm modes")
    ap.add_argument("program", nargs="*", help="guest and its arguments (build/bench/int_loop 10**12)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hqemu-status-latency-") as tmp:
        if a.program:
            program, args = Path(a.program[0]), tuple(a.program[1:])
        else:
            program = DEFAULT if DEFAULT.exists() else build_int_loop(Path(tmp))
            args = (FOREVER,)
        results = []
        for mode in a.modes.split(","):
            r = measure(mode, program, args, a.samples, a.spacing, cwd=tmp)
            if not r.running or r.insns[1] <= r.insns[0]:
                print(f"{mode}: the guest did not run during the measurement", file=sys.stderr)
                return 1
            results.append(r)
    print(f"{a.samples} requests per endpoint, {1e3 * a.spacing:.0f} ms apart, guest "
          f"{Path(program).name} {' '.join(args)}:\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
