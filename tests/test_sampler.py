"""The sampling profiler of native code (hqemu/trace/sampler.py) on a real guest loop.

The guest runs in hybrids mode in a child Python process (MCJIT names must be unique per
process, and a run installs signal handlers), which dumps the NativeTier's trace records and
the sampler's counts as JSON. The oracles: the trace records (every sampled pc must be the
head of an installed trace), the guest's ELF symbol table read here with pyelftools (the
hottest head lies in main, the only hot code), and the native run of the same binary (the
sampler must not change the output).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import guestrun
import pytest

from hqemu.trace.sampler import Sampler

ROOT = Path(__file__).resolve().parent.parent

# no libc (its start-up and printf would only add quick-tier time): spin() is one loop without a
# data-dependent branch, one trace closed on its head (CYCLE)
LOOP_C = r"""
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

__attribute__((noinline)) unsigned long spin(unsigned long n) {
    unsigned long x = 1, s = 0;
    for (unsigned long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        s += x >> 33;
    }
    return s;
}

__attribute__((noinline)) unsigned long parse(const char *p) {
    unsigned long v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (unsigned long)(*p++ - '0');
    return v;
}

__attribute__((used)) void start_c(long *sp) {
    char **argv = (char **)(sp + 1);
    unsigned long s = spin(sp[0] > 1 ? parse(argv[1]) : 1000);
    char buf[17];
    for (int i = 15; i >= 0; i--, s >>= 4)
        buf[i] = "0123456789abcdef"[s & 15];
    buf[16] = '\n';
    sys3(1, 1, (long)buf, 17);
    sys3(60, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");
"""
ITERATIONS = 200_000_000  # about 0.5 s of native code: some 100 samples at 5 ms

# the child: run the guest through hqemu.runtime.process.run, as the CLI does, and dump what
# the tier recorded
DRIVER = r"""
import json, os, sys
import hqemu.runtime.process as P
from hqemu.native.loader import native
from hqemu.params import Params

engines = []

class Recorded(P.Engine):
    def __init__(self, env):
        super().__init__(env)
        engines.append(self)

P.Engine = Recorded
out, params, prog, *args = sys.argv[1:]
status = P.run(Params(**json.loads(params)), prog, args, [])
tier = engines[0].tier
s = tier.sampler
json.dump({
    "pid": os.getpid(), "status": status,
    "traces": [{"id": t.id, "head_pc": t.head_pc, "end": t.end, "host_addr": t.host_addr,
                "host_bytes": t.host_bytes} for t in tier.traces],
    "samples": None if s is None else {str(k): v for k, v in s.counts.items()},
    "python": None if s is None else s.python, "total": None if s is None else s.total,
    "sampler_alive": s is not None and s.running,
    "entries": native().entries,
}, open(out, "w"))
"""


def build(tmp: Path, name: str, source: str, *flags: str) -> Path:
    """A static program without libc (its _start in the source)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is missing")
    src, exe = tmp / f"{name}.c", tmp / name
    src.write_text(source)
    subprocess.run(["gcc", "-O1", "-static", "-nostdlib", "-fno-stack-protector", "-fno-builtin", *flags,
                    "-o", str(exe), str(src)], check=True)
    return exe


def run_inproc(tmp: Path, exe: Path, args: list[str], **params) -> tuple[dict, str]:
    """Run exe under hqemu in a child process; (the tier's records, the guest's stdout)."""
    out = tmp / "records.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", DRIVER, str(out), json.dumps(params), str(exe), *args],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text()), r.stdout


def function_range(exe: Path, name: str) -> tuple[int, int]:
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)[0]
        return sym["st_value"], sym["st_value"] + sym["st_size"]


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("loop"), "loop", LOOP_C)


def test_samples_land_on_trace_heads_and_the_loop_is_hottest(loop, tmp_path):
    rec, stdout = run_inproc(tmp_path, loop, [str(ITERATIONS)], llvm_mode="hybrids")
    native = guestrun.run_native(loop, [str(ITERATIONS)])
    assert (rec["status"], stdout) == (native.returncode, native.stdout.decode())
    assert not rec["sampler_alive"], "shutdown must stop the sampler"
    samples = {int(pc): n for pc, n in rec["samples"].items()}
    heads = {t["head_pc"] for t in rec["traces"]}
    assert samples, f"no native samples in {rec['total']} ({rec['python']} in Python)"
    assert set(samples) <= heads, f"sampled pcs that head no trace: {sorted(set(samples) - heads)}"
    assert rec["total"] == rec["python"] + sum(samples.values())
    lo, hi = function_range(loop, "spin")
    loops = [t["head_pc"] for t in rec["traces"] if t["end"] == "CYCLE" and lo <= t["head_pc"] < hi]
    assert len(loops) == 1, rec["traces"]
    hottest = max(samples, key=samples.get)
    assert hottest == loops[0], f"hottest 0x{hottest:x}, loop head 0x{loops[0]:x}: {samples}"


def test_sampler_thread_counts_and_stops():
    """The thread alone: every read is counted once, negative reads as Python, and stop() ends
    the thread promptly (a daemon that never holds the process)."""
    seq = iter(range(10**9))
    s = Sampler(lambda: -1 if next(seq) % 3 == 0 else 0x1000, interval=0.001)
    s.start()
    s.start()  # idempotent
    deadline = time.monotonic() + 5
    while s.total < 30 and time.monotonic() < deadline:
        time.sleep(0.005)
    s.stop()
    assert not s.running and not any(t.name == "hqemu-sampler" for t in threading.enumerate())
    total = s.total
    assert total >= 30 and s.total == s.python + s.counts[0x1000]
    assert abs(s.python - total / 3) <= 1
    time.sleep(0.01)
    assert s.total == total, "samples after stop()"
    assert s.take_window() == {0x1000: s.counts[0x1000]}
    s.read_pc = lambda: 0x2000
    s.sample()
    assert s.take_window() == {0x2000: 1} and s.take_window() == {}


def test_indirect_edges_are_sampled_in_native_code_only():
    state = {"pc": -1, "edge": (0x1000, 0x2000)}
    s = Sampler(lambda: state["pc"], read_edge=lambda: state["edge"])
    s.sample()  # in Python: no edge is read
    state["pc"] = 0x1000
    s.sample()
    s.sample()
    state["edge"] = (0, 0)  # no indirect jump taken yet
    s.sample()
    assert s.take_edges() == {(0x1000, 0x2000): 2}
    assert s.take_edges() == {}
    assert (s.total, s.python, s.counts[0x1000]) == (4, 1, 3)
