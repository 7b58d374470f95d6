"""End-to-end harness: run a guest program natively and under hqemu, compare what each did.

The oracle is always a native run of the same binary (for a foreign ISA: its runner, e.g.
qemu-aarch64), in its own fresh directory with the same environment; hqemu must reproduce
its stdout, stderr, exit status and the files it wrote, byte for byte.

    native = run_native(path, ["a b"], clean_env(), cwd=tmp / "native")
    emu = run_hqemu(path, ["a b"], clean_env(), cwd=tmp / "hqemu")
    assert_same_run(native, emu, files=(tmp / "native", tmp / "hqemu"))

Exit statuses are shell-shaped: a guest killed by signal N reports 128 + N, as the shell
and qemu do. A negative status from run_hqemu means the hqemu process itself died.

Environment knobs of the harness (read here, never passed to the guest):
    HQEMU_TEST_TIMEOUT=300          seconds an hqemu run may take
    HQEMU_TEST_OPTS="-d unimp"      hqemu options added to every run, e.g. another tier set-up
"""

from __future__ import annotations

import difflib
import functools
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
GUEST_SRC = ROOT / "tests" / "guest"
GUEST_BUILD = ROOT / "build" / "guest"

NATIVE_TIMEOUT = 60.0
# the quick tier runs a few million guest instructions per second: generous, but a hang
# must still end the test rather than the CI job
HQEMU_TIMEOUT = float(os.environ.get("HQEMU_TEST_TIMEOUT", "300"))
EXTRA_OPTS = tuple(shlex.split(os.environ.get("HQEMU_TEST_OPTS", "")))


@dataclass(frozen=True)
class Variant:
    """One way of building the guest programs (the Makefile has the matching rule)."""

    name: str
    compiler: str  # must be on PATH, or the variant's tests skip
    package: str  # the Debian package that provides it, for the skip message
    runner: tuple[str, ...] = ()  # how the host runs the binary natively (foreign ISAs)

    def missing(self) -> str | None:
        """Why this variant cannot run here, or None."""
        for tool in (self.compiler, *self.runner[:1]):
            if shutil.which(tool) is None:
                return f"{tool} not found (apt-get install {self.package})"
        return None


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("x86_64-glibc", "gcc", "gcc"),
        Variant("x86_64-pie", "gcc", "gcc"),
        Variant("x86_64-musl", "musl-gcc", "musl-tools"),
    )
}
# built by `make guest-aarch64`; moves into VARIANTS (and the Makefile's guest target) with
# the AArch64 frontend. Its crash_ud2 dies of SIGTRAP: __builtin_trap is brk there.
AARCH64_VARIANTS: dict[str, Variant] = {
    "aarch64-glibc": Variant("aarch64-glibc", "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu",
                             ("qemu-aarch64",)),
}


class Run(NamedTuple):
    returncode: int  # shell-style for guests: 128 + N when killed by signal N
    stdout: bytes
    stderr: bytes


def guest_programs() -> list[str]:
    """Every guest program: one per tests/guest/*.c."""
    return sorted(p.stem for p in GUEST_SRC.glob("*.c"))


def binary(variant: str, name: str) -> Path:
    return GUEST_BUILD / variant / name


@functools.cache
def build_guests() -> str | None:
    """Bring build/guest up to date with `make guest` once per session; the error text or None."""
    if shutil.which("make") is None:
        return "make not found"
    r = subprocess.run(["make", "-s", "--no-print-directory", "guest"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    return None if r.returncode == 0 else f"make guest failed ({r.returncode}):\n{r.stdout}{r.stderr}"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small fixed environment, the same for both runs: nothing of the host leaks into output."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C", "LC_ALL": "C",
           "TZ": "UTC"}
    env.update(extra or {})
    return env


def shell_status(returncode: int) -> int:
    """subprocess reports death by signal N as -N; the shell and qemu say 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_command(cmd: Sequence[str], env: Mapping[str, str] | None, cwd: Path | str | None,
                stdin: bytes | None, timeout: float,
                executable: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run cmd with stdin (None: /dev/null), capturing both outputs; a timeout kills the
    process group and fails with what was printed so far."""
    # a new session, so a timeout can kill hqemu's compile workers along with it
    proc = subprocess.Popen(list(cmd), executable=executable, env=dict(env) if env is not None else None,
                            cwd=cwd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout:.0f} s: {' '.join(map(str, cmd))}\n"
                             f"stdout tail:\n{_tail(out)}\nstderr tail:\n{_tail(err)}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_native(path: Path | str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
               cwd: Path | str | None = None, *, stdin: bytes | None = None, argv0: str | None = None,
               runner: Sequence[str] = (), timeout: float = NATIVE_TIMEOUT) -> Run:
    """Run the binary on the host (through `runner` for a foreign ISA); argv[0] is the path
    unless argv0 is given."""
    path = str(path)
    if runner:
        cmd = [*runner, *(["-0", argv0] if argv0 is not None else []), path, *args]
        r = run_command(cmd, env, cwd, stdin, timeout)
    else:
        argv = [argv0 if argv0 is not None else path, *args]
        r = run_command(argv, env, cwd, stdin, timeout, executable=path)
    return Run(shell_status(r.returncode), r.stdout, r.stderr)


@functools.cache
def _hqemu_installed() -> bool:
    """Whether `python -m hqemu` works from any directory, as after `pip install -e .`."""
    r = subprocess.run([sys.executable, "-c", "import hqemu"], cwd="/", capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return r.returncode == 0


def hqemu_command(opts: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """The command line that starts hqemu with opts, and what to add to its environment.

    Without an installed hqemu the package is found through PYTHONPATH; -U PYTHONPATH then
    keeps that variable out of the guest's environment, so the guest sees what a native run
    sees."""
    if _hqemu_installed():
        return [sys.executable, "-m", "hqemu", *opts], {}
    return [sys.executable, "-m", "hqemu", "-U", "PYTHONPATH", *opts], {"PYTHONPATH": str(ROOT)}


def run_hqemu(path: Path | str, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
              cwd: Path | str | None = None, extra_opts: Sequence[str] = (), *, stdin: bytes | None = None,
              timeout: float = HQEMU_TIMEOUT) -> Run:
    """Run `python -m hqemu [extra_opts] path args`; its environment is the guest's. The
    returncode is hqemu's own: negative only if the hqemu process itself was killed."""
    cmd, add = hqemu_command((*EXTRA_OPTS, *extra_opts))
    full_env = dict(os.environ if env is None else env)
    full_env.update(add)
    r = run_command([*cmd, str(path), *args], full_env, cwd, stdin, timeout)
    return Run(r.returncode, r.stdout, r.stderr)


# --- comparing ---------------------------------------------------------------------------

def _entry(path: Path) -> tuple:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", oct(st.st_mode & 0o7777))
    if stat.S_ISREG(st.st_mode):
        return ("file", oct(st.st_mode & 0o7777), path.read_bytes())
    return ("other", stat.S_IFMT(st.st_mode))


def _tree(root: Path) -> dict[str, tuple]:
    return {str(p.relative_to(root)): _entry(p) for p in sorted(root.rglob("*"))}


def compare_dirs(a: Path | str, b: Path | str) -> list[str]:
    """The differences between two directory trees (names, kinds, permission bits, file
    contents, link targets); empty when they hold the same files. Times are ignored."""
    ta, tb = _tree(Path(a)), _tree(Path(b))
    diffs = []
    for name in sorted(ta.keys() | tb.keys()):
        ea, eb = ta.get(name), tb.get(name)
        if ea is None or eb is None:
            diffs.append(f"{name}: only in {'first' if eb is None else 'second'} ({(ea or eb)[0]})")
        elif ea[:2] != eb[:2]:
            diffs.append(f"{name}: {ea[:2]} vs {eb[:2]}")
        elif ea != eb:
            diffs.append(f"{name}: contents differ: {len(ea[2])} vs {len(eb[2])} bytes, "
                         f"first difference at byte {_first_difference(ea[2], eb[2])}")
    return diffs


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _tail(data: bytes, limit: int = 3000) -> str:
    text = data.decode("utf-8", "backslashreplace")
    return text if len(text) <= limit else "...\n" + text[-limit:]


def text_diff(expected: bytes, actual: bytes, name: str, limit: int = 60) -> str:
    """A unified diff of two outputs, cut to `limit` lines."""
    a = expected.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    b = actual.decode("utf-8", "backslashreplace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(a, b, f"{name} (native)", f"{name} (hqemu)", n=2))
    if len(lines) > limit:
        lines = lines[:limit] + [f"... {len(lines) - limit} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n\\ no newline\n" for line in lines)


def describe_status(status: int) -> str:
    if status < 0:
        return f"hqemu itself was killed by signal {-status} ({signal.Signals(-status).name})"
    if status > 128:
        try:
            return f"{status} (signal {status - 128}, {signal.Signals(status - 128).name})"
        except ValueError:
            pass
    return str(status)


def assert_same_run(native: Run, emu: Run, *, what: str = "", compare_stderr: bool = True,
                    files: tuple[Path, Path] | None = None) -> None:
    """Fail with one readable message listing every way the hqemu run differs from the native one."""
    problems = []
    if emu.returncode != native.returncode:
        problems.append(f"exit status: native {describe_status(native.returncode)}, "
                        f"hqemu {describe_status(emu.returncode)}")
    if emu.stdout != native.stdout:
        problems.append("stdout differs:\n" + text_diff(native.stdout, emu.stdout, "stdout"))
    if compare_stderr and emu.stderr != native.stderr:
        problems.append("stderr differs:\n" + text_diff(native.stderr, emu.stderr, "stderr"))
    if files is not None:
        diffs = compare_dirs(*files)
        if diffs:
            problems.append("files written differ (native vs hqemu):\n  " + "\n  ".join(diffs[:30]))
    if problems:
        # the end of hqemu's stderr names an internal error; the diff above may have cut it
        if emu.stderr and (not compare_stderr or emu.stderr.count(b"\n") > 40):
            problems.append("hqemu stderr tail:\n" + _tail(emu.stderr))
        raise AssertionError(f"{what}: hqemu differs from the native run\n" + "\n".join(problems))


def signal_line_problem(stderr: bytes, signo: int) -> str | None:
    """hqemu reports a guest killed by a signal with exactly one line on stderr,
    "hqemu: uncaught target signal N (Name) ..."; what is wrong with stderr, or None."""
    lines = stderr.decode("utf-8", "backslashreplace").splitlines()
    want = f"hqemu: uncaught target signal {signo} ("
    if len(lines) != 1 or not lines[0].startswith(want):
        return f"expected one line starting {want!r} on stderr, got {len(lines)} lines:\n{_tail(stderr)}"
    return None


def one_error_line(stderr: bytes) -> str | None:
    """An hqemu usage error is one line "hqemu: ..." on stderr; what is wrong, or None."""
    lines = stderr.decode("utf-8", "backslashreplace").splitlines()
    if len(lines) != 1 or not lines[0].startswith("hqemu: "):
        return f"expected one line 'hqemu: ...' on stderr, got {len(lines)} lines:\n{_tail(stderr)}"
    return None


def fresh_dirs(base: Path, names: Iterable[str] = ("native", "hqemu")) -> list[Path]:
    """Empty sibling directories, one per run, so each run writes its files apart."""
    dirs = []
    for name in names:
        d = base / name
        d.mkdir(parents=True, exist_ok=False)
        dirs.append(d)
    return dirs
