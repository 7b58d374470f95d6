"""The trace tier end to end: NET heads, trace exits and coverage (hybrids is deterministic).

A loop with an if/else in its body: NET records the head's trace along one arm; the other
arm's block is reached through a trace exit, must become a head itself, and from then on the
loop runs natively. Before the fix, a head's quick-tier successor links survived its
installation, so trace exits bypassed profiling and one arm returned to Python every time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import guestrun
import pytest

ROOT = Path(__file__).resolve().parent.parent
ITERATIONS = 200_000


@pytest.fixture(scope="module")
def intloop(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is missing")
    out = tmp_path_factory.mktemp("intloop") / "intloop"
    src = ROOT / "bench" / "programs" / "intloop.c"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(src)], check=True)
    return out


def test_both_arms_of_a_hot_loop_run_natively(intloop, tmp_path):
    native = guestrun.run_native(intloop, [str(ITERATIONS)])
    stats = tmp_path / "stats.json"
    emu = guestrun.run_hqemu(intloop, [str(ITERATIONS)], None, tmp_path,
                             ("-llvm-mode", "hybrids", "-stats-file", str(stats)))
    guestrun.assert_same_run(native, emu, what="intloop")
    data = json.loads(stats.read_text())
    misses = data["native"]["returns_to_python"].get("miss", 0)
    assert misses < ITERATIONS // 100, f"{misses} returns to Python for {ITERATIONS} iterations"
    assert data["tiers"]["native_share"] > 0.99, data["tiers"]
    assert data["traces"]["ended_by"].get("TRACE_HEAD", 0) >= 1  # the other arm's trace joins the head's


def test_a_worker_killed_during_a_run_changes_nothing(intloop, tmp_path):
    """SIGKILL every LLVM worker as soon as it appears: the pool replaces them and retries or
    drops their requests, the guest keeps running in the quick tier, its output is native."""
    import os
    import signal
    import time

    import psutil

    iters = str(ITERATIONS * 20)
    native = guestrun.run_native(intloop, [iters])
    stats = tmp_path / "stats.json"
    cmd, extra = guestrun.hqemu_command(("-llvm-mode", "hybridm", "-hot-threshold", "1",
                                         "-stats-file", str(stats)))
    proc = subprocess.Popen([*cmd, str(intloop), iters], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **extra}, cwd=tmp_path)
    killed = 0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and killed < 3:
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
        # the workers are the forkserver's children (they share its command line)
        servers = {k.pid for k in kids if k.ppid() == proc.pid and "forkserver" in " ".join(k.cmdline())}
        for kid in kids:
            try:
                if kid.ppid() in servers:
                    kid.send_signal(signal.SIGKILL)
                    killed += 1
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.02)
    out, err = proc.communicate(timeout=300)
    emu = guestrun.Run(proc.returncode, out, err)
    guestrun.assert_same_run(native, emu, what="intloop with workers killed")
    assert killed >= 1, "no worker process was ever seen"
    queue = json.loads(stats.read_text())["queue"]
    assert queue["worker_crashes"] >= 1 and queue["workers_started"] >= 2, queue


@pytest.fixture(scope="module")
def int_loop(tmp_path_factory) -> Path:
    """bench/kernels/int_loop.c: its loop is two traces that jump to each other's heads."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is missing")
    out = tmp_path_factory.mktemp("int_loop") / "int_loop"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(ROOT / "bench" / "kernels" / "int_loop.c")],
                   check=True)
    return out


def test_traces_of_a_loop_are_merged_into_one_region(int_loop, tmp_path):
    """The loop's traces jump to each other's heads: merging makes them one region, a second
    version of the head, and the loop stops leaving native code between them. hybrids merges on
    the static graph, deterministically (hybridm on sampled windows: see the next test).
    Oracle: the native run, and the same run unmerged."""
    iters = str(ITERATIONS * 10)
    native = guestrun.run_native(int_loop, [iters])
    data = {}
    for merge in ("on", "off"):
        stats = tmp_path / f"stats-{merge}.json"
        opts = ("-llvm-mode", "hybrids", f"-trace-merge={merge}", "-stats-file", str(stats))
        emu = guestrun.run_hqemu(int_loop, [iters], None, tmp_path, opts)
        guestrun.assert_same_run(native, emu, what=f"int_loop merge {merge}")
        data[merge] = json.loads(stats.read_text())
    assert data["off"]["traces"]["merged"] == 0
    assert data["on"]["traces"]["merged"] >= 1, data["on"]["traces"]
    assert data["on"]["traces"]["versions"].get("2", 0) >= 1, data["on"]["traces"]["versions"]
    # the loop iterates inside the region: far fewer entries into native units
    assert data["on"]["native"]["units_entered"] * 2 < data["off"]["native"]["units_entered"]


def test_sampled_merging_keeps_the_output(int_loop, tmp_path):
    """hybridm merges what the sampler finds hot and stable, at a time that depends on the
    machine (and the NET traces it forms depend on when earlier ones got installed), so only
    the output is asserted: identical to native with merging on, and every region counted."""
    iters = str(ITERATIONS * 300)
    native = guestrun.run_native(int_loop, [iters])
    stats = tmp_path / "stats.json"
    emu = guestrun.run_hqemu(int_loop, [iters], None, tmp_path,
                             ("-llvm-mode", "hybridm", "-trace-merge=on", "-stats-file", str(stats)))
    guestrun.assert_same_run(native, emu, what="int_loop hybridm")
    t = json.loads(stats.read_text())["traces"]
    assert t["merged"] == sum(n for v, n in t["versions"].items() if int(v) > 1)


SELF_LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
static unsigned v[1500];
int main(int argc, char **argv) {
    long rounds = atol(argv[1]);
    unsigned long s = 1;
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < 1500; i++)     /* one guest block that jumps to itself */
            s = s * 31 + v[i];
        v[r % 1500] = (unsigned)s;
    }
    printf("%lu\n", s);
    return 0;
}
"""


def test_a_block_looping_on_itself_becomes_a_trace(tmp_path):
    """The quick tier runs a block that jumps to its own head up to 1024 times inside one call,
    so the engine sees one arrival at the head per 1024 back edges: a loop entered fewer than
    --hot-threshold times that iterates ~1500 times never got hot. Each return now counts
    as the back edges it took. Oracle: the native output, and the quick-tier instruction
    counts of a short and a long run (the extra rounds must run natively)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is missing")
    prog = tmp_path / "selfloop"
    (tmp_path / "selfloop.c").write_text(SELF_LOOP_C)
    subprocess.run(["gcc", "-O2", "-static", "-o", str(prog), str(tmp_path / "selfloop.c")], check=True)
    quick = {}
    for rounds in (5, 45):  # both below the hot threshold of 50 entries
        native = guestrun.run_native(prog, [str(rounds)])
        stats = tmp_path / f"stats-{rounds}.json"
        emu = guestrun.run_hqemu(prog, [str(rounds)], None, tmp_path,
                                 ("-llvm-mode", "hybrids", "-stats-file", str(stats)))
        guestrun.assert_same_run(native, emu, what=f"selfloop {rounds}")
        quick[rounds] = json.loads(stats.read_text())["tiers"]["quick_insns"]
    extra_loop_insns = 40 * 1500 * 4  # at least 4 guest instructions per iteration
    assert quick[45] - quick[5] < extra_loop_insns // 20, quick
