"""The speed comparison's machinery: the kernel and configuration tables, building, timed runs.

    >>> from bench.runner import WORKLOADS, CONFIGS, run_suite
    >>> result = run_suite([WORKLOADS["int_loop"]], [CONFIGS["native"], CONFIGS["hqemu-hybridm"]],
    ...                    size="quick", reps=1)
    >>> result.cells["int_loop"]["hqemu-hybridm"].best      # seconds, whole process

Two suites share it: issue 4's kernels (bench/kernels, the WORKLOADS table below) and issue 6's
SPEC-like programs (bench/programs, found from their header blocks by bench.suite).

Every run is one process timed from spawn to exit (wall clock, perf_counter) with its user and
system CPU time (wait4). That is the brief's measure: the whole run, Python start-up and warm-up
included. The native run of each workload comes first and its stdout is the expected output
(the checksum) for every other configuration; a mismatch marks the cell failed, it is never
timed. hqemu runs add `-d stats -D FILE` so the guest's stderr stays clean; the summary is
parsed into a dict (native share, traces, compile latency per stage).

Why not pyperf.Runner.bench_command: its process model calibrates and spawns ~20 worker
processes per benchmark with warm-ups, far beyond the time budget for multi-second emulated
runs, and it throws the command's stdout away, so the timed runs could not be checked. Results
are still written in pyperf's JSON format (one file per configuration, one Run per repetition)
so `python -m pyperf stats|compare_to` work on them; issue 6's suite grows by adding rows to
WORKLOADS.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "bench" / "kernels"
PROGRAMS = ROOT / "bench" / "programs"
OUT = ROOT / "build" / "bench"
CFLAGS = ["-O2", "-static", "-std=gnu11", "-Wall"]  # the Makefile's bench-programs rule uses the same
TIMEOUT = 900.0  # seconds per run: a hung emulator is a failure, not a stalled suite
# Every hqemu run starts with a cold translation cache: the comparison is HQEMU's (translate while
# running), and a cache warmed by an earlier repetition would make repetitions disagree.
HQEMU_COMMON = ["-code-cache", ""]  # cold: every run translates and compiles from scratch
WARM_CACHE: Path | None = None  # the code-cache folder of the warm configurations (set by run_suite)


@dataclass(frozen=True)
class Workload:
    name: str
    group: str  # INT or FP: geometric means are per group; START is a baseline, outside the means
    source: Path
    args: dict[str, list[str]]  # size name (quick, ref; kernels also short) -> guest argv[1:]
    doc: str  # one line: what it stresses
    suite: str = "kernels"  # kernels (issue 4) or spec (issue 6: output must be "<name> checksum V")

    @property
    def exe(self) -> Path:
        return OUT / self.name if self.suite == "kernels" else OUT / "programs" / self.name


def _k(name: str, group: str, quick: str, short: str, ref: str, doc: str) -> Workload:
    sizes = {"quick": quick.split(), "short": short.split(), "ref": ref.split()}
    return Workload(name, group, KERNELS / f"{name}.c", sizes, doc)


# Sizes (native seconds on the machine of docs/performance.md; re-measure when a kernel changes):
# "ref" ~2.5 s, the reference size of the SPEC-like suite too (a long-running workload, where the
# start-up is part of the run, not all of it); "short" ~0.3-0.5 s, the first reference size,
# dominated by hqemu's start-up; "quick" ~0.05 s, a smoke run.
WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    _k("startup", "START", "", "", "", "prints its argc: the fixed cost of starting a static glibc program"),
    _k("int_loop", "INT", "5000000", "60000000", "400000000",
       "xorshift and multiplicative hash into a table"),
    _k("mem_stream", "INT", "70", "1000", "5500", "copy/scale/add/triad over three 2 MiB u64 arrays"),
    _k("calls", "INT", "31", "37", "41", "recursive fib and calls through a pointer table"),
    _k("sort", "INT", "5", "60", "340", "hand-written quicksort of 100000 ints, repeated"),
    _k("fp_nbody", "FP", "250000", "3000000", "20000000", "five-body simulation in double precision"),
    _k("fp_matmul", "FP", "20", "250", "2000", "160x160 double matrix multiply, i-k-j order"),
    _k("fp_stencil", "FP", "200", "5000", "34000", "5-point Jacobi relaxation on a 256x256 double grid"),
]}
SIZES = ("quick", "short", "ref")  # the kernels' sizes; the SPEC-like suite has quick and ref


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # native | qemu | hqemu
    mode: str = ""  # hqemu -llvm-mode
    doc: str = ""
    workers: int = 0  # hqemu -workers; 0: hqemu's default
    warm: bool = False  # hqemu's persistent code cache, filled by one untimed run before the timed ones

    def argv(self, exe: Path, args: list[str], stats_file: Path | None) -> list[str]:
        if self.kind == "native":
            return [str(exe), *args]
        if self.kind == "qemu":
            return [shutil.which("qemu-x86_64") or "qemu-x86_64", str(exe), *args]
        extra = ["-d", "stats", "-D", str(stats_file)] if stats_file else []
        if self.workers:
            extra += ["-workers", str(self.workers)]
        cache = ["-code-cache", str(WARM_CACHE / self.name)] if self.warm and WARM_CACHE else HQEMU_COMMON
        return [sys.executable, "-m", "hqemu", "-llvm-mode", self.mode, *cache, *extra, str(exe), *args]

    def unavailable(self) -> str:
        """Why this configuration cannot run on this machine, "" when it can."""
        if self.kind == "qemu" and not shutil.which("qemu-x86_64"):
            return "qemu-x86_64 not found (make deps, or apt-get install qemu-user)"
        return ""


CONFIGS: dict[str, Config] = {c.name: c for c in [
    Config("native", "native", doc="the gcc -O2 -static binary on the host"),
    Config("qemu", "qemu", doc="qemu-x86_64 (TCG), the baseline to beat"),
    Config("hqemu-none", "hqemu", "none", "quick tier only: generated Python per block"),
    Config("hqemu-block", "hqemu", "block", "every block compiled by LLVM"),
    Config("hqemu-hybrids", "hqemu", "hybrids", "traces compiled on the main thread"),
    Config("hqemu-hybridm", "hqemu", "hybridm", "traces compiled by one worker process (hqemu's default)",
           workers=1),
    Config("hqemu-hybridm-2w", "hqemu", "hybridm", "as hybridm with two worker processes", workers=2),
    Config("hqemu-hybridm-warm", "hqemu", "hybridm", "as hybridm, a user's second run: the persistent code "
           "cache holds the first run's translations and traces", warm=True),
]}
# hqemu-none runs ~10 M guest instr/s: minutes per ref kernel, so it is opt-in
DEFAULT_CONFIGS = ["native", "qemu", "hqemu-hybridm"]


def default_configs(suite: str, size: str) -> list[str]:
    """Every configuration at the spec suite's quick size; at ref, and for the kernels, the three that
    take seconds: the quick tier alone (none), block and hybrids (every hot trace compiled while the
    guest waits) take minutes per reference-size workload."""
    return list(CONFIGS) if (suite, size) == ("spec", "quick") else list(DEFAULT_CONFIGS)


def config_named(name: str) -> Config:
    """A configuration by its name or by the hqemu mode alone ("hybridm" for "hqemu-hybridm")."""
    c = CONFIGS.get(name) or CONFIGS.get(f"hqemu-{name}")
    if c is None:
        raise SystemExit(f"unknown configuration '{name}'; known: {', '.join(CONFIGS)}")
    return c


# --- building ------------------------------------------------------------------------------
def build(w: Workload, cc: str = "gcc") -> Path:
    exe = w.exe
    deps = [w.source, *w.source.parent.glob("*.h")]  # bench/programs/fphash.h is shared
    if not exe.exists() or exe.stat().st_mtime < max(p.stat().st_mtime for p in deps):
        exe.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([cc, *CFLAGS, "-o", str(exe), str(w.source), "-lm"], check=True)
    return exe


# --- one run -------------------------------------------------------------------------------
@dataclass
class Sample:
    wall: float  # seconds, spawn to exit
    cpu: float  # user + system seconds of the process and its children (hqemu's workers)
    status: int  # exit status, or -signal
    stdout: str
    stderr: str
    stats: dict = field(default_factory=dict)  # parsed hqemu -d stats, empty for others


def run_once(c: Config, exe: Path, args: list[str], timeout: float = TIMEOUT) -> Sample:
    with tempfile.TemporaryDirectory(prefix="hqemu-bench-") as tmp:
        stats_file = Path(tmp) / "stats.txt" if c.kind == "hqemu" else None
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            before = os.times()
            t0 = time.perf_counter()
            proc = subprocess.Popen(c.argv(exe, args, stats_file), stdout=fo, stderr=fe,
                                    stdin=subprocess.DEVNULL, cwd=ROOT)
            try:
                status = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = -9
                fe.write(f"\nbench: killed after {timeout:.0f} s\n".encode())
            wall = time.perf_counter() - t0
            after = os.times()
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        text = stats_file.read_text(errors="replace") if stats_file and stats_file.exists() else ""
        return Sample(wall, cpu, status, out.read_text(errors="replace"), err.read_text(errors="replace"),
                      parse_stats(text))


# --- hqemu's -d stats ----------------------------------------------------------------------
# Both summary shapes hqemu has printed are read: the counter dump ("pool.codegen: n=6 p50=..ms")
# and HQEMU's "Trace statistic" block ("compile codegen: total .., p50 0.66 ms, p90 1.16 ms").
_STAGE = re.compile(r"^\s*(?:pool\.|compile )(\w+): .*?p50[= ]([\d.]+) ?ms.*?p90[= ]([\d.]+) ?ms", re.M)
_INSNS = re.compile(r"guest instructions: (\d+).*?native ([\d.]+)%", re.M)
_TRACES = re.compile(r"traces formed (\d+), installed (\d+)|^\s*traces_installed: (\d+)", re.M)
_XLATE = re.compile(r"quick tier: (\d+) blocks translated.*? in ([\d.]+) s"
                    r"|^\s*translate_seconds: ([\d.]+)", re.M)
_MISS = re.compile(r"returns to Python: .*?miss=(\d+)|native_returns: .*?miss=(\d+)", re.M)
_RETURNS = re.compile(r"returns to Python: (.*)$", re.M)
_COMPILED = re.compile(r"^\s*compile total: total ([\d.]+) ms", re.M)
_UNITS = re.compile(r"native: (\d+) units entered", re.M)
_MERGED = re.compile(r"traces formed \d+, installed \d+.*?merged (\d+)", re.M)


def parse_stats(text: str) -> dict:
    """The numbers the report shows, from hqemu's -d stats text; keys absent when not printed."""
    d: dict = {}
    if m := _INSNS.search(text):
        d["guest_insns"], d["native_pct"] = int(m[1]), float(m[2])
    if m := _TRACES.search(text):
        d["traces"] = int(m[2] or m[3])
    if m := _XLATE.search(text):
        d["translate_s"] = float(m[2] or m[3])
    if m := _MISS.search(text):
        d["misses"] = int(m[1] or m[2])
    if m := _RETURNS.search(text):  # every reason: miss, syscall, helper, signal, fault, ...
        d["returns"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[1])}
    if m := _COMPILED.search(text):
        d["compile_total_ms"] = float(m[1])
    if m := _UNITS.search(text):
        d["units"] = int(m[1])
    if m := _MERGED.search(text):
        d["merged"] = int(m[1])
    stages = {s: {"p50_ms": float(a), "p90_ms": float(b)} for s, a, b in _STAGE.findall(text)}
    if stages:
        d["compile_ms"] = stages
    return d


# --- the suite -----------------------------------------------------------------------------
@dataclass
class Cell:
    """One workload under one configuration: its repetitions, or why it failed."""
    samples: list[Sample] = field(default_factory=list)
    error: str = ""  # non-empty: checksum mismatch, crash or timeout (then no time is reported)

    @property
    def best(self) -> float:
        return min(s.wall for s in self.samples)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.samples)


@dataclass
class SuiteResult:
    size: str
    reps: int
    workloads: list[Workload]
    configs: list[Config]
    expected: dict[str, str] = field(default_factory=dict)  # workload -> native stdout
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    suite: str = "kernels"
    skipped: dict[str, str] = field(default_factory=dict)  # configuration -> why it was not run


def machine_info() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "missing"

    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "gcc": version(["gcc", "--version"]),
            "qemu": version(["qemu-x86_64", "--version"]), "load_at_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def checksum_error(w: Workload, stdout: str) -> str:
    """Why a spec workload's output is not of the contract's form ("" when it is): its last line
    must be `<name> checksum <value>` (FP programs may add a second value, e.g. a %.10e sum).
    Kernels print their own shapes and are not checked."""
    if w.suite != "spec":
        return ""
    last = stdout.rstrip("\n").rpartition("\n")[2]
    if re.fullmatch(rf"{re.escape(w.name)} checksum( \S+)+", last):
        return ""
    return f"output does not end with '{w.name} checksum <value>': {last[:120]!r}"


def run_suite(workloads: list[Workload], configs: list[Config], size: str, reps: int,
              log: Callable[[str], None] = print, suite: str = "") -> SuiteResult:
    """Build, take each workload's expected output from one native run, then time the configurations.

    Repetitions are the outer loop, so a slow drift of the machine's load spreads over all cells
    instead of biasing one configuration. A configuration that cannot run here (qemu missing) is
    left out and listed in `skipped`; a workload whose native run fails or prints no checksum
    has every cell failed, and the other workloads still run.
    """
    suite = suite or (workloads[0].suite if workloads else "kernels")
    skipped = {c.name: why for c in configs if (why := c.unavailable())}
    for name, why in skipped.items():
        log(f"--- skipping {name}: {why}")
    configs = [c for c in configs if c.name not in skipped]
    r = SuiteResult(size, reps, workloads, configs, machine=machine_info(), suite=suite, skipped=skipped)
    built = {w.name: build(w) for w in workloads}
    # the timed runs use a private copy, so a rebuild in the tree during a long run changes nothing
    global WARM_CACHE
    with tempfile.TemporaryDirectory(prefix="hqemu-bench-exe-") as tmp:
        exes = {n: Path(shutil.copy2(exe, Path(tmp) / n)) for n, exe in built.items()}
        WARM_CACHE = Path(tmp) / "code-cache"
        try:
            _run_cells(r, exes, log)
        finally:
            WARM_CACHE = None
    return r


def _run_cells(r: SuiteResult, exes: dict[str, Path], log: Callable[[str], None]) -> None:
    workloads, configs, size, reps = r.workloads, r.configs, r.size, r.reps
    for w in workloads:
        r.cells[w.name] = {c.name: Cell() for c in configs}
        ref = run_once(CONFIGS["native"], exes[w.name], w.args[size])
        why = (f"native run: exit status {ref.status}: {ref.stderr.strip()[-300:]}" if ref.status != 0
               else checksum_error(w, ref.stdout))
        r.expected[w.name] = ref.stdout
        if why:
            log(f"!!! FAILED {w.name}: {why}")
            for cell in r.cells[w.name].values():
                cell.error = why
    for w in workloads:  # warm configurations: one untimed run fills their cache
        for c in configs:
            if c.warm and not r.cells[w.name][c.name].error:
                run_once(c, exes[w.name], w.args[size])
    for rep in range(reps):
        for w in workloads:
            for c in configs:
                cell = r.cells[w.name][c.name]
                if cell.error:
                    continue
                s = run_once(c, exes[w.name], w.args[size])
                if s.status != 0:
                    cell.error = f"exit status {s.status}: {s.stderr.strip()[-300:]}"
                elif s.stdout != r.expected[w.name]:
                    cell.error = (f"CHECKSUM MISMATCH: expected {r.expected[w.name].strip()!r}, "
                                  f"got {s.stdout.strip()[:200]!r}")
                elif why := checksum_error(w, s.stdout):
                    cell.error = why
                else:
                    cell.samples.append(s)
                if cell.error:
                    log(f"!!! FAILED {w.name} under {c.name}: {cell.error}")
                else:
                    log(f"  [{rep + 1}/{reps}] {w.name:<11} {c.name:<16} {s.wall:8.3f} s")


# --- results on disk -----------------------------------------------------------------------
def prefix(suite: str) -> str:
    """File-name prefix of a suite's results under build/bench: none for spec (the default suite)."""
    return "" if suite == "spec" else f"{suite}-"


def save(r: SuiteResult, out_dir: Path = OUT) -> Path:
    """build/bench/[kernels-]results-<size>-<time>.json (and [kernels-]latest-<size>.json), plus
    pyperf files per configuration ([kernels-]pyperf-<size>-<config>.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"suite": r.suite, "size": r.size, "reps": r.reps, "machine": r.machine,
           "configs": [asdict(c) for c in r.configs], "skipped": r.skipped,
           "workloads": {w.name: {"group": w.group, "args": w.args[r.size], "doc": w.doc,
                                  "expected": r.expected.get(w.name, ""),
                                  "runs": {c: {"error": cell.error,
                                               "wall": [s.wall for s in cell.samples],
                                               "cpu": [s.cpu for s in cell.samples],
                                               "stats": [s.stats for s in cell.samples]}
                                           for c, cell in r.cells[w.name].items()}}
                         for w in r.workloads}}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = prefix(r.suite)
    path = out_dir / f"{tag}results-{r.size}-{stamp}.json"
    text = json.dumps(doc, indent=1)
    path.write_text(text)
    (out_dir / f"{tag}latest-{r.size}.json").write_text(text)
    _save_pyperf(r, out_dir)
    return path


def load(path: Path) -> SuiteResult:
    """A SuiteResult back from a results JSON written by save(), to print its tables again."""
    doc = json.loads(Path(path).read_text())
    suite = doc.get("suite", "kernels")
    configs = [Config(**c) for c in doc["configs"]]
    folder = KERNELS if suite == "kernels" else PROGRAMS
    workloads = [Workload(n, d["group"], folder / f"{n}.c", {doc["size"]: d["args"]}, d["doc"], suite)
                 for n, d in doc["workloads"].items()]
    r = SuiteResult(doc["size"], doc["reps"], workloads, configs, machine=doc["machine"], suite=suite,
                    skipped=doc.get("skipped", {}))
    for n, d in doc["workloads"].items():
        r.expected[n] = d["expected"]
        r.cells[n] = {c: Cell([Sample(wall, cpu, 0, d["expected"], "", st)
                               for wall, cpu, st in zip(run["wall"], run["cpu"], run["stats"])], run["error"])
                      for c, run in d["runs"].items()}
    return r


def _save_pyperf(r: SuiteResult, out_dir: Path) -> None:
    try:
        import pyperf
    except ImportError:
        return
    for c in r.configs:
        benches = []
        for w in r.workloads:
            cell = r.cells[w.name][c.name]
            if not cell.ok:
                continue
            meta = {"name": w.name, "unit": "second", "loops": 1, "command": " ".join(
                c.argv(w.exe, w.args[r.size], None))}
            runs = [pyperf.Run([s.wall], metadata=meta, collect_metadata=False) for s in cell.samples]
            benches.append(pyperf.Benchmark(runs))
        if benches:
            path = out_dir / f"{prefix(r.suite)}pyperf-{r.size}-{c.name}.json"
            pyperf.BenchmarkSuite(benches).dump(str(path), replace=True)


def spread(cell: Cell) -> float:
    """Relative spread of the repetitions ((max - min) / min), 0 with one repetition."""
    walls = [s.wall for s in cell.samples]
    return (max(walls) - min(walls)) / min(walls) if len(walls) > 1 else 0.0


def median_stats(cell: Cell) -> dict:
    """The stats of the repetition with the median wall time (a representative run)."""
    if not cell.samples:
        return {}
    ordered = sorted(cell.samples, key=lambda s: s.wall)
    return ordered[len(ordered) // 2].stats
