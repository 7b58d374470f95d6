"""Every guest program (tests/guest/*.c) x every build variant, under hqemu and natively.

The native run of the same binary is the oracle: stdout, stderr, the exit status and the
files written in the working directory must be byte-identical. The crash programs must
die of the same signal (status 128 + N), and hqemu must say so in exactly one stderr line.
A new .c file in tests/guest is picked up here without any change; give it a Spec below
only if it needs arguments, input or a signal.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import guestrun
import pytest


@dataclass(frozen=True)
class Spec:
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    signal: int | None = None  # the guest must die of it
    slow: bool = False  # only under `make test-slow`
    gap: str = ""  # a known gap of hqemu's: the case must fail (strict xfail) until it is closed


SPECS: dict[str, Spec] = {
    # options after the program belong to the guest; exit:N sets the status
    "args": Spec(args=("first", "with space", "", "env:HQEMU_TEST_VAR", "env:UNSET_VAR", "-d", "in_asm",
                       "-strace", "--", "exit:3"),
                 env={"HQEMU_TEST_VAR": "x=1 y"}),
    "cat": Spec(stdin=bytes(range(256)) * 37 + b"the end\n"),
    "crash_segv": Spec(signal=signal.SIGSEGV),
    "crash_ud2": Spec(signal=signal.SIGILL),
    "crash_abort": Spec(signal=signal.SIGABRT),
    "crash_fpe": Spec(signal=signal.SIGFPE),
}


# The static-pie build differs from the plain static one in its start-up (it relocates
# itself) and its addressing; by default it runs the programs about the process, and the
# compute-heavy rest only under `make test-slow`.
PIE_BY_DEFAULT = {"hello", "args", "cat", "entropy", "files", "memory", "structs", "crash_segv", "crash_ud2",
                  "crash_abort", "crash_fpe"}


# Every tier configuration must give the native output (STYLE.md 12): the default (hybridm),
# the quick tier alone, every block through LLVM, and traces from the first arrival at a head,
# compiled on the main thread and by the workers. The glibc builds run them all by default;
# the other variants only the default mode unless `make test-slow`.
MODES = {
    "hybridm": (),
    "none": ("-llvm-mode", "none"),
    "block": ("-llvm-mode", "block"),
    "hybrids-hot1": ("-llvm-mode", "hybrids", "-hot-threshold", "1"),
    "hybridm-hot1": ("-llvm-mode", "hybridm", "-hot-threshold", "1"),
}
ALL_MODES_BY_DEFAULT = {"x86_64-glibc"}


def cases():
    for name in guestrun.guest_programs():
        spec = SPECS.get(name, Spec())
        for variant in guestrun.VARIANTS:
            for mode in MODES:
                slow = spec.slow or (variant == "x86_64-pie" and name not in PIE_BY_DEFAULT)
                slow = slow or (mode != "hybridm" and variant not in ALL_MODES_BY_DEFAULT)
                marks = [pytest.mark.slow] if slow else []
                if spec.gap:
                    marks.append(pytest.mark.xfail(strict=True, reason=spec.gap))
                yield pytest.param(name, variant, mode, id=f"{name}-{variant}-{mode}", marks=marks)


@pytest.mark.parametrize("name,variant,mode", list(cases()))
def test_program(name, variant, mode, guest, tmp_path):
    spec = SPECS.get(name, Spec())
    path = guest(variant, name)
    env = guestrun.clean_env(spec.env)
    native_dir, hqemu_dir = guestrun.fresh_dirs(tmp_path)
    runner = guestrun.VARIANTS[variant].runner
    native = guestrun.run_native(path, spec.args, env, native_dir, stdin=spec.stdin, runner=runner)
    emu = guestrun.run_hqemu(path, spec.args, env, hqemu_dir, MODES[mode], stdin=spec.stdin)
    what = f"{name} ({variant}, {mode})"
    if spec.signal is None:
        assert native.returncode < 128, f"{what}: the native run itself failed: {native}"
        guestrun.assert_same_run(native, emu, what=what, files=(native_dir, hqemu_dir))
        return
    assert native.returncode == 128 + spec.signal, f"{what}: native did not die of {spec.signal!r}: {native}"
    if not runner:  # a runner such as qemu-aarch64 reports the signal itself
        assert native.stderr == b"", f"{what}: native stderr is not empty: {native.stderr!r}"
    # stderr is hqemu's own report here, not the guest's: checked apart
    guestrun.assert_same_run(native, emu, what=what, compare_stderr=False, files=(native_dir, hqemu_dir))
    problem = guestrun.signal_line_problem(emu.stderr, int(spec.signal))
    assert problem is None, f"{what}: {problem}"


# --- the harness itself: a comparison that never fails would make every test above vacuous ---

def test_compare_dirs_sees_every_kind_of_difference(tmp_path):
    a, b = guestrun.fresh_dirs(tmp_path)
    for d in (a, b):
        (d / "same.txt").write_bytes(b"x" * 100)
        (d / "sub").mkdir()
    assert guestrun.compare_dirs(a, b) == []
    (a / "sub" / "content").write_bytes(b"abc")
    (b / "sub" / "content").write_bytes(b"abd")
    (a / "only_a").write_bytes(b"")
    (a / "mode").write_bytes(b"m")
    (b / "mode").write_bytes(b"m")
    (b / "mode").chmod(0o600)
    (a / "link").symlink_to("same.txt")
    (b / "link").symlink_to("sub")
    diffs = "\n".join(guestrun.compare_dirs(a, b))
    for name in ("sub/content", "only_a", "mode", "link"):
        assert name in diffs, f"compare_dirs missed {name}:\n{diffs}"
    assert not any(d.startswith("same.txt") for d in diffs.splitlines())
    assert "first difference at byte 2" in diffs


def test_assert_same_run_reports_each_difference():
    ok = guestrun.Run(0, b"out\n", b"")
    guestrun.assert_same_run(ok, guestrun.Run(0, b"out\n", b""), what="same")
    for other, word in [(guestrun.Run(1, b"out\n", b""), "exit status"),
                        (guestrun.Run(0, b"out!\n", b""), "stdout"),
                        (guestrun.Run(0, b"out\n", b"warning\n"), "stderr"),
                        (guestrun.Run(-11, b"out\n", b""), "killed by signal 11")]:
        with pytest.raises(AssertionError, match=word):
            guestrun.assert_same_run(ok, other, what="t")
    guestrun.assert_same_run(ok, guestrun.Run(0, b"out\n", b"x\n"), what="t", compare_stderr=False)


def test_native_runs_are_the_oracle(guest, tmp_path):
    """The native side alone: deterministic output, signals as 128 + N, argv[0] as asked."""
    hello = guest("x86_64-glibc", "hello")
    first = guestrun.run_native(hello, [], guestrun.clean_env(), tmp_path)
    assert first == guestrun.run_native(hello, [], guestrun.clean_env(), tmp_path)
    assert first.returncode == 0 and first.stdout == b"hello, world\n"
    crash = guestrun.run_native(guest("x86_64-glibc", "crash_segv"), [], guestrun.clean_env(), tmp_path)
    assert crash.returncode == 128 + signal.SIGSEGV
    r = guestrun.run_native(guest("x86_64-glibc", "args"), ["exit:7"], guestrun.clean_env(), tmp_path,
                            argv0="zero")
    assert r.returncode == 7 and b"argv[0] (4) [zero]" in r.stdout
    assert guestrun.signal_line_problem(b"hqemu: uncaught target signal 11 (Segmentation fault)\n", 11) \
        is None
    assert guestrun.signal_line_problem(b"hqemu: uncaught target signal 11 (x)\nmore\n", 11) is not None
    assert guestrun.signal_line_problem(b"hqemu: uncaught target signal 4 (x)\n", 11) is not None
